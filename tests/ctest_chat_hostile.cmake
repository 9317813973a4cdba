# ctest_chat_hostile.cmake: `trit chat` fed hostile input on stdin, on the shipped model (greedy).
# Each test compares the notes chat writes on stderr (its lines that start with "(", "unknown
# command", "  /" or "trit chat: ", in order) exactly with the expected ones, and counts the answer
# lines on stdout (one per message that reached the model):
#
#   chat_hostile_commands   /bogus and / are refused with "unknown command ...", not sent; /help
#                           lists the commands; //hello is sent; nothing is read after /exit
#   chat_hostile_context    -c 48: a message of 38 tokens (the most that fit) is answered until the
#                           context is full, said once; one of 39 is refused with its count and the
#                           session goes on; //text is sent as /text (its count shows the one /);
#                           short messages then fill the context and clear the conversation
#   chat_hostile_nul        a line with a NUL byte is refused, not cut at the NUL
#   chat_hostile_full       stdout on /dev/full: exit 1 at the first answer, nothing read after it
#
#   ctest --test-dir build -R '^chat_hostile' --output-on-failure
#
# Each test runs this file again as a `cmake -P` script (the branch just below): no shell or Python.
#   TRIT, MODEL, INPUT (stdin), ARGS (joined by "^^"), OUT (a file for stdout; else it is captured),
#   EXPECT_RC, NOTES_FILE (the expected notes), LINES (the expected number of stdout lines)

if(CMAKE_SCRIPT_MODE_FILE)
  string(REPLACE "^^" ";" args "${ARGS}")
  set(out_args OUTPUT_VARIABLE out)
  if(OUT)
    set(out_args OUTPUT_FILE "${OUT}")
  endif()
  execute_process(COMMAND "${TRIT}" chat -m "${MODEL}" --temp 0 -t 1 ${args} INPUT_FILE "${INPUT}"
                  ${out_args} ERROR_VARIABLE err RESULT_VARIABLE rc)
  message("stdout:\n${out}\nstderr:\n${err}")
  set(notes "")
  set(rest "${err}")
  while(NOT rest STREQUAL "")
    string(FIND "${rest}" "\n" nl)
    if(nl EQUAL -1)
      set(line "${rest}")
      set(rest "")
    else()
      string(SUBSTRING "${rest}" 0 ${nl} line)
      math(EXPR nl "${nl} + 1")
      string(SUBSTRING "${rest}" ${nl} -1 rest)
    endif()
    if(line MATCHES "^(\\(|unknown command|  /|trit chat: )")
      string(APPEND notes "${line}\n")
    endif()
  endwhile()
  file(READ "${NOTES_FILE}" want)
  if(NOT notes STREQUAL want)
    message(FATAL_ERROR "the notes on stderr are\n${notes}expected\n${want}")
  endif()
  if(NOT "${rc}" STREQUAL "${EXPECT_RC}")
    message(FATAL_ERROR "exit status ${rc}, expected ${EXPECT_RC}")
  endif()
  if(DEFINED LINES)
    string(REGEX MATCHALL "\n" nls "${out}")
    list(LENGTH nls n)
    if(NOT n EQUAL LINES)
      message(FATAL_ERROR "${n} answer lines on stdout, expected ${LINES}")
    endif()
  endif()
  return()
endif()

# ---- declarations (configure time) ---------------------------------------------------------------

set(chat_dir ${CMAKE_CURRENT_BINARY_DIR}/chat_hostile)
set(chat_help "  /help                this list
  /reset               forget the conversation (the --system message stays)
  /exit, /quit         end the session (so does the end of the input)
  //text               send \"/text\": a message that starts with / is written with two
")

# chat_hostile_test(NAME INPUT <file> NOTES <text> EXPECT_RC <n> [LINES <n>] [OUT <file>] [ARGS <a>...])
function(chat_hostile_test name)
  cmake_parse_arguments(PARSE_ARGV 1 T "" "INPUT;NOTES;EXPECT_RC;LINES;OUT" "ARGS")
  file(WRITE ${chat_dir}/${name}.notes "${T_NOTES}")
  string(REPLACE ";" "^^" args "${T_ARGS}")
  set(defs -DTRIT=$<TARGET_FILE:trit> -DMODEL=${PROJECT_SOURCE_DIR}/models/trit-kjv-4m.gguf -DINPUT=${T_INPUT}
           -DARGS=${args} -DEXPECT_RC=${T_EXPECT_RC} -DNOTES_FILE=${chat_dir}/${name}.notes)
  if(DEFINED T_LINES)
    list(APPEND defs -DLINES=${T_LINES})
  endif()
  if(T_OUT)
    list(APPEND defs -DOUT=${T_OUT})
  endif()
  add_test(NAME ${name} COMMAND ${CMAKE_COMMAND} ${defs} -P ${CMAKE_CURRENT_LIST_FILE})
  set_tests_properties(${name} PROPERTIES LABELS unit TIMEOUT 300)
endfunction()

if(NOT CMAKE_CROSSCOMPILING)
  file(WRITE ${chat_dir}/commands.txt "/bogus x\n/\n/help\n//hello\nhello\n/exit\nnever\n")
  chat_hostile_test(chat_hostile_commands INPUT ${chat_dir}/commands.txt EXPECT_RC 0 LINES 2 ARGS -n 4 -c 64
    NOTES "unknown command /bogus; /help lists them\nunknown command /; /help lists them\n${chat_help}")

  # "the LORD" is 3 tokens, each " the LORD" 2 more, "," and " and" 1 each: m37 is 37 tokens. The
  # template adds 9 to a message (<|begin_of_text|>, "us" "er" ":\n", <|eot_id|>, "ass" "ist" "ant"
  # ":\n"), and one position is kept for the answer: 48 - 1 - 9 = 38 fit. "/" adds one token.
  string(REPEAT " the LORD" 17 tail)
  set(m37 "the LORD${tail}")
  file(WRITE ${chat_dir}/context.txt "${m37},\n${m37}, and\n//${m37}\n//${m37}, and\n"
       "In the beginning God created\nAnd the earth was\nwithout form and void\nand darkness was upon\n")
  set(cut "(the context is full: the answer stops here, and the conversation is cleared)\n")
  chat_hostile_test(chat_hostile_context INPUT ${chat_dir}/context.txt EXPECT_RC 0 LINES 6 ARGS -n 4 -c 48
    NOTES "${cut}(not sent: the message is 39 tokens and at most 38 fit in the context of 48)\n${cut}(not sent: the message is 40 tokens and at most 38 fit in the context of 48)\n(the context is full: conversation cleared; /reset to do this yourself)\n")

  chat_hostile_test(chat_hostile_nul INPUT ${CMAKE_CURRENT_LIST_DIR}/data/chat/nul_line.txt EXPECT_RC 0 LINES 1
    ARGS -n 4 -c 64 NOTES "(not sent: the line holds a NUL byte at byte 2)\n")

  if(EXISTS /dev/full)
    file(WRITE ${chat_dir}/full.txt "hello\nagain\n/bogus\n")
    chat_hostile_test(chat_hostile_full INPUT ${chat_dir}/full.txt OUT /dev/full EXPECT_RC 1 ARGS -n 4 -c 64
      NOTES "trit chat: error: cannot write to stdout: No space left on device\n")
  endif()
endif()
