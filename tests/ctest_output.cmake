# ctest_output.cmake: what `trit` writes and the numbers it takes, on hostile ground (issue 13).
#
#   output_full_*      each command with stdout on /dev/full (a disk that is always full): exit
#                      nonzero with the reason ("trit run: error: writing the output: No space left
#                      on device"). run and perplexity stop at the first lost write (their last
#                      lines never come); convert and logits write their file and only notes on
#                      stderr, so they succeed
#   output_file_*      -o a device, a folder or a dangling link: refused, naming it, before the
#                      model loads; the file a link points to is replaced, the link kept
#   threads_*          -t above the online CPUs runs that many, with one warning line; -t 0 is a
#                      usage error in every command; bench's lists are checked like any number
#   mem_limit_*        --mem-limit SIZE: suffixes, junk, 0 and overflow; the limit reaches the
#                      memory plan (run and bench)
#   input_*            -f a folder or a device: "PATH: is a folder, not a file"; /dev/stdin reads
#   sampling_*         --temp -1 is a usage error (exit 2) in run and chat
#   synthetic_*        a synthetic model given to a command that needs a tokenizer: said so once
#
#   ctest --test-dir build -R '^(output|threads|mem_limit|input|sampling|synthetic)_' --output-on-failure
#
# Each test runs this file again as a `cmake -P` script (the branch just below): no shell or Python.
#   CMD        the command, arguments joined by "^^"
#   OUT        a file for its stdout (/dev/full); else stdout is captured with stderr
#   INPUT      a file for its stdin
#   EXPECT_RC  the exit status;  MATCH / NOMATCH  regexes stdout + stderr must / must not match
#   COUNT_RE, COUNT   the regex matches this many times in stdout + stderr
#   CREATES    a file the command must leave (removed before it runs)
#   SAME_CPUS  the warning's online CPU count equals the thread count the context reports
#   KEPT_LINK  a symbolic link that must still be one, its target written

if(CMAKE_SCRIPT_MODE_FILE)
  string(REPLACE "^^" ";" cmd "${CMD}")
  set(io_args OUTPUT_VARIABLE out)
  if(OUT)
    set(io_args OUTPUT_FILE "${OUT}")
  endif()
  if(INPUT)
    list(APPEND io_args INPUT_FILE "${INPUT}")
  endif()
  if(CREATES)
    file(REMOVE "${CREATES}")
  endif()
  execute_process(COMMAND ${cmd} ${io_args} ERROR_VARIABLE err RESULT_VARIABLE rc)
  set(all "${out}${err}")
  message("${all}")
  if(NOT "${rc}" STREQUAL "${EXPECT_RC}")
    message(FATAL_ERROR "exit status ${rc}, expected ${EXPECT_RC}")
  endif()
  if(DEFINED MATCH AND NOT all MATCHES "${MATCH}")
    message(FATAL_ERROR "the output does not match /${MATCH}/")
  endif()
  if(DEFINED NOMATCH AND all MATCHES "${NOMATCH}")
    message(FATAL_ERROR "the output matches /${NOMATCH}/ (\"${CMAKE_MATCH_0}\"), which it must not")
  endif()
  if(DEFINED COUNT_RE)
    string(REGEX MATCHALL "${COUNT_RE}" found "${all}")
    list(LENGTH found n)
    if(NOT n EQUAL COUNT)
      message(FATAL_ERROR "/${COUNT_RE}/ matches ${n} times, expected ${COUNT}")
    endif()
  endif()
  if(CREATES AND NOT EXISTS "${CREATES}")
    message(FATAL_ERROR "${CREATES} was not written")
  endif()
  if(SAME_CPUS)
    if(NOT all MATCHES "this machine has ([0-9]+) online CPUs?; using ([0-9]+) threads?\n")
      message(FATAL_ERROR "no thread warning")
    endif()
    set(online ${CMAKE_MATCH_1})
    set(using ${CMAKE_MATCH_2})
    if(NOT using EQUAL online)
      message(FATAL_ERROR "the warning says ${online} online CPUs, ${using} threads")
    endif()
    if(NOT all MATCHES "CPU [a-z0-9_-]+, ([0-9]+) threads?\\)")
      message(FATAL_ERROR "no thread count in the device line")
    endif()
    if(NOT CMAKE_MATCH_1 EQUAL online)
      message(FATAL_ERROR "the context runs ${CMAKE_MATCH_1} threads on ${online} online CPUs")
    endif()
  endif()
  if(KEPT_LINK)
    # the link is still a link, and the file it names holds the new bytes (not "old")
    file(READ_SYMLINK "${KEPT_LINK}" target)
    get_filename_component(dir "${KEPT_LINK}" DIRECTORY)
    file(SIZE "${dir}/${target}" size)
    if(NOT IS_SYMLINK "${KEPT_LINK}" OR size LESS 128)
      message(FATAL_ERROR "${KEPT_LINK}: the link was replaced, or its target ${target} was not (${size} bytes)")
    endif()
  endif()
  return()
endif()

# ---- declarations (configure time) ---------------------------------------------------------------

set(out_dir ${CMAKE_CURRENT_BINARY_DIR}/output_tests)
file(MAKE_DIRECTORY ${out_dir})
file(WRITE ${out_dir}/hello.txt "hello\n")
file(WRITE ${out_dir}/prompt.txt "In the beginning")
set(out_model ${PROJECT_SOURCE_DIR}/models/trit-kjv-4m.gguf)
set(out_text ${CMAKE_CURRENT_SOURCE_DIR}/data/default-model/val_excerpt.txt)
set(out_full "writing the output: No space left on device")

# output_test(NAME EXPECT_RC <n> [MATCH <re>] [NOMATCH <re>] [OUT <file>] [INPUT <file>]
#             [COUNT_RE <re> COUNT <n>] [CREATES <file>] [KEPT_LINK <link>] [SAME_CPUS] COMMAND <args>...)
function(output_test name)
  cmake_parse_arguments(PARSE_ARGV 1 T "SAME_CPUS" "EXPECT_RC;MATCH;NOMATCH;OUT;INPUT;COUNT_RE;COUNT;CREATES;KEPT_LINK"
                        "COMMAND")
  if(CMAKE_CROSSCOMPILING AND CMAKE_CROSSCOMPILING_EMULATOR)
    list(PREPEND T_COMMAND ${CMAKE_CROSSCOMPILING_EMULATOR})
  endif()
  string(REPLACE ";" "^^" cmd "${T_COMMAND}")
  set(args -DCMD=${cmd} -DEXPECT_RC=${T_EXPECT_RC} -DSAME_CPUS=${T_SAME_CPUS})
  foreach(opt MATCH NOMATCH OUT INPUT COUNT_RE COUNT CREATES KEPT_LINK)
    if(DEFINED T_${opt})
      list(APPEND args "-D${opt}=${T_${opt}}")
    endif()
  endforeach()
  add_test(NAME ${name} COMMAND ${CMAKE_COMMAND} ${args} -P ${CMAKE_CURRENT_LIST_FILE})
  set_tests_properties(${name} PROPERTIES LABELS unit TIMEOUT 120)
endfunction()

set(out_trit $<TARGET_FILE:trit>)

# ---- stdout on a full disk -------------------------------------------------------------------------

if(EXISTS /dev/full)
  # run stops at the first lost write: its statistics line never comes
  output_test(output_full_run OUT /dev/full EXPECT_RC 1 MATCH "trit run: error: ${out_full}\n" NOMATCH "first token"
    COMMAND ${out_trit} run -m ${out_model} -p "In the beginning" -n 8 -t 1)
  output_test(output_full_run_help OUT /dev/full EXPECT_RC 1 MATCH "^trit run: error: ${out_full}\n$"
    COMMAND ${out_trit} run --help)
  output_test(output_full_chat OUT /dev/full INPUT ${out_dir}/hello.txt EXPECT_RC 1
    MATCH "trit chat: error: [^\n]*No space left on device" COMMAND ${out_trit} chat -m ${out_model} -n 4 -c 64 -t 1)
  # perplexity stops after the first chunk's running value: its closing line on stderr never comes
  output_test(output_full_perplexity OUT /dev/full EXPECT_RC 1 MATCH "trit perplexity: error: ${out_full}\n"
    NOMATCH "tokens scored" COMMAND ${out_trit} perplexity -m ${out_model} -f ${out_text} -c 64 --chunks 4 -t 1)
  output_test(output_full_bench OUT /dev/full EXPECT_RC 1 MATCH "trit bench: error: ${out_full}\n"
    COMMAND ${out_trit} bench -m synthetic:tiny -p 8 -n 4 -r 1 -t 1)
  output_test(output_full_tokenize OUT /dev/full EXPECT_RC 1 MATCH "trit tokenize: error: [^\n]*No space left on device"
    COMMAND ${out_trit} tokenize -m ${out_model} -p "In the beginning")
  output_test(output_full_inspect OUT /dev/full EXPECT_RC 1 MATCH "^trit inspect: error: ${out_full}\n$"
    COMMAND ${out_trit} inspect ${out_model})
  output_test(output_full_inspect_json OUT /dev/full EXPECT_RC 1 MATCH "^trit inspect: error: ${out_full}\n$"
    COMMAND ${out_trit} inspect ${out_model} --json)
  output_test(output_full_version OUT /dev/full EXPECT_RC 1 MATCH "^trit version: error: ${out_full}\n$"
    COMMAND ${out_trit} version)
  output_test(output_full_help OUT /dev/full EXPECT_RC 1 MATCH "^trit: error: ${out_full}\n$"
    COMMAND ${out_trit} --help)
  output_test(output_full_convert_help OUT /dev/full EXPECT_RC 1 MATCH "^trit convert: error: ${out_full}\n$"
    COMMAND ${out_trit} convert --help)
  # convert and logits print nothing on stdout: their file is written, their notes are on stderr
  output_test(output_full_convert OUT /dev/full EXPECT_RC 0 MATCH "trit convert: wrote " CREATES ${out_dir}/full.gguf
    COMMAND ${out_trit} convert ${out_model} -o ${out_dir}/full.gguf -q)
  output_test(output_full_logits OUT /dev/full EXPECT_RC 0 MATCH "wrote [^\n]*full.npy: float32 \\[3, 4096\\]"
    CREATES ${out_dir}/full.npy COMMAND ${out_trit} logits -m ${out_model} --ids 1,2,3 -o ${out_dir}/full.npy -t 1)
endif()

# ---- output files ----------------------------------------------------------------------------------

# /dev/null was replaced by a regular file (as root) before; now nothing reads the source first
output_test(output_file_convert_dev_null EXPECT_RC 1
  MATCH "trit convert: error: [^\n]*convert: output /dev/null: is a character device, not a regular file"
  COMMAND ${out_trit} convert /nonexistent.gguf -o /dev/null)
output_test(output_file_convert_folder EXPECT_RC 1 MATCH "convert: output ${out_dir}: is a folder, not a regular file"
  COMMAND ${out_trit} convert ${out_model} -o ${out_dir})
output_test(output_file_logits_dev_null EXPECT_RC 1
  MATCH "^trit logits: error: output: /dev/null: is a character device, not a regular file\n$"
  COMMAND ${out_trit} logits -m ${out_model} --ids 1,2,3 -o /dev/null)
file(REMOVE ${out_dir}/dangling.npy ${out_dir}/to-null.npy ${out_dir}/link.npy)
file(CREATE_LINK nowhere.npy ${out_dir}/dangling.npy SYMBOLIC)
output_test(output_file_logits_dangling_link EXPECT_RC 1
  MATCH "output: ${out_dir}/dangling.npy: is a symbolic link to nowhere.npy, which does not exist"
  COMMAND ${out_trit} logits -m ${out_model} --ids 1,2,3 -o ${out_dir}/dangling.npy)
file(CREATE_LINK /dev/null ${out_dir}/to-null.npy SYMBOLIC)
output_test(output_file_logits_link_to_device EXPECT_RC 1
  MATCH "output: ${out_dir}/to-null.npy: is a symbolic link to /dev/null, which is a character device, not a regular file"
  COMMAND ${out_trit} logits -m ${out_model} --ids 1,2,3 -o ${out_dir}/to-null.npy)
file(WRITE ${out_dir}/linked.npy "old")
file(CREATE_LINK linked.npy ${out_dir}/link.npy SYMBOLIC)
output_test(output_file_logits_through_link EXPECT_RC 0 MATCH "wrote [^\n]*link.npy: float32 \\[3, 4096\\]"
  KEPT_LINK ${out_dir}/link.npy
  COMMAND ${out_trit} logits -m ${out_model} --ids 1,2,3 -o ${out_dir}/link.npy -t 1)

# ---- threads and numbers -------------------------------------------------------------------------

output_test(threads_run_capped EXPECT_RC 0 SAME_CPUS COUNT_RE "warning: -t" COUNT 1
  MATCH "trit run: warning: -t 100000: this machine has [0-9]+ online CPUs?; using [0-9]+ threads?\n"
  COMMAND ${out_trit} run -m ${out_model} -t 100000 -p "In the beginning" -n 1 --device cpu)
output_test(threads_logits_capped EXPECT_RC 0 SAME_CPUS MATCH "trit logits: warning: -t 100000: this machine has"
  COMMAND ${out_trit} logits -m ${out_model} -t 100000 --ids 1,2,3 -o ${out_dir}/threads.npy --device cpu)
# the list is capped, then repeats dropped: one row per test, not two
output_test(threads_bench_capped EXPECT_RC 0 COUNT_RE ",pp8," COUNT 1
  MATCH "trit bench: warning: -t 100000,100001: this machine has [0-9]+ online CPUs?; using [0-9]+ threads?\n"
  COMMAND ${out_trit} bench -m synthetic:tiny -t 100000,100001 -p 8 -n 4 -r 1 -o csv --device cpu)
foreach(c run chat perplexity logits bench)
  output_test(threads_${c}_zero EXPECT_RC 2
    MATCH "^trit ${c}: error: -t needs an integer from 1 to 2147483647 \\(got '0'\\)\n$"
    COMMAND ${out_trit} ${c} -m /nonexistent.gguf -t 0)
endforeach()
output_test(threads_bench_list_junk EXPECT_RC 2 MATCH "^trit bench: error: -t needs an integer from 1 to 2147483647 \\(got '2x'\\)\n$"
  COMMAND ${out_trit} bench -m /nonexistent.gguf -t 1,2x)
output_test(threads_bench_list_empty_item EXPECT_RC 2 MATCH "^trit bench: error: -p needs an integer from 0 to 1073741824 \\(got ''\\)\n$"
  COMMAND ${out_trit} bench -m /nonexistent.gguf -p 8,,16)
output_test(threads_bench_list_too_long EXPECT_RC 2 MATCH "^trit bench: error: -n takes 1 to 16 comma-separated integers from 0 to 1073741824"
  COMMAND ${out_trit} bench -m /nonexistent.gguf -n 1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17)
output_test(threads_bench_list_range EXPECT_RC 2 MATCH "^trit bench: error: -p needs an integer from 0 to 1073741824 \\(got '-1'\\)\n$"
  COMMAND ${out_trit} bench -m /nonexistent.gguf -p -1)

# ---- --mem-limit ---------------------------------------------------------------------------------

set(mem_usage "needs a size in bytes from 1, with an optional K, M, G or T \\(powers of 1024: 512M, 8G\\)")
foreach(bad 12Q 0 0K 1.5G -1 " 8G" 8GB 8g8 16777216T 18446744073709551616)
  string(MAKE_C_IDENTIFIER "${bad}" id)
  output_test(mem_limit_refuses_${id}_ EXPECT_RC 2 MATCH "^trit run: error: --mem-limit ${mem_usage} \\(got '${bad}'\\)\n$"
    COMMAND ${out_trit} run -m /nonexistent.gguf -p x --mem-limit "${bad}")
endforeach()
output_test(mem_limit_bench_refuses EXPECT_RC 2 MATCH "^trit bench: error: --mem-limit ${mem_usage} \\(got '1X'\\)\n$"
  COMMAND ${out_trit} bench -m /nonexistent.gguf --mem-limit 1X)
output_test(mem_limit_in_help EXPECT_RC 0 MATCH "--mem-limit SIZE" COMMAND ${out_trit} perplexity --help)
# the limit reaches the memory plan: 1 KiB holds no context; 16777215T (just under 2^64) any
output_test(mem_limit_run_too_small EXPECT_RC 1 MATCH "trit run: error: context: [^\n]*more than the memory limit"
  COMMAND ${out_trit} run -m ${out_model} --mem-limit 1K -p "In the beginning" -n 1 --device cpu)
output_test(mem_limit_bench_too_small EXPECT_RC 1 MATCH "trit bench: error: context: [^\n]*more than the memory limit"
  COMMAND ${out_trit} bench -m synthetic:tiny --mem-limit 1k -p 8 -n 0 -r 1 --device cpu)
output_test(mem_limit_run_large EXPECT_RC 0 MATCH "generated 1 tokens"
  COMMAND ${out_trit} run -m ${out_model} --mem-limit 16777215T -p "In the beginning" -n 1 --device cpu -t 1)

# ---- input files, sampling, synthetic models -----------------------------------------------------

foreach(c run perplexity)
  output_test(input_${c}_folder EXPECT_RC 1 MATCH "^trit ${c}: error: ${out_dir}: is a folder, not a file\n$"
    COMMAND ${out_trit} ${c} -m ${out_model} -f ${out_dir})
  output_test(input_${c}_device EXPECT_RC 1
    MATCH "^trit ${c}: error: /dev/zero: is a character device, not a file \\(give a regular file, a FIFO or /dev/stdin\\)\n$"
    COMMAND ${out_trit} ${c} -m ${out_model} -f /dev/zero)
endforeach()
output_test(input_run_missing EXPECT_RC 1 MATCH "^trit run: error: ${out_dir}/none.txt: cannot open: No such file or directory\n$"
  COMMAND ${out_trit} run -m ${out_model} -f ${out_dir}/none.txt)
output_test(input_run_stdin EXPECT_RC 0 INPUT ${out_dir}/prompt.txt MATCH "^In the beginning"
  COMMAND ${out_trit} run -m ${out_model} -f /dev/stdin -n 2 -t 1 --temp 0)

set(negative_temp "sampling options: sampler: temperature -1 is out of range \\(0 = greedy, or a finite T > 0\\)")
output_test(sampling_run_negative_temp EXPECT_RC 2 MATCH "^trit run: error: ${negative_temp}\n$"
  COMMAND ${out_trit} run -m /nonexistent.gguf -p x --temp -1)
output_test(sampling_chat_negative_temp EXPECT_RC 2 MATCH "^trit chat: error: ${negative_temp}\n$"
  COMMAND ${out_trit} chat -m /nonexistent.gguf --temp -1)
output_test(sampling_run_infinite_temp EXPECT_RC 2 MATCH "^trit run: error: --temp needs a number \\(got 'inf'\\)\n$"
  COMMAND ${out_trit} run -m /nonexistent.gguf -p x --temp inf)

set(synthetic_says "synthetic:tiny is a synthetic model \\(random weights of a shape\\) and has no tokenizer: it runs token ids \\(trit logits -m synthetic:tiny --ids 1,2,3 -o out.npy\\) and speed tests \\(trit bench -m synthetic:tiny\\)")
output_test(synthetic_run_no_tokenizer EXPECT_RC 1 MATCH "^trit run: error: ${synthetic_says}\n$"
  COMMAND ${out_trit} run -m synthetic:tiny -p x)
output_test(synthetic_perplexity_no_tokenizer EXPECT_RC 1 MATCH "^trit perplexity: error: ${synthetic_says}\n$"
  COMMAND ${out_trit} perplexity -m synthetic:tiny -f ${out_dir}/prompt.txt)

# --cuda-gemv: a usage error before the model loads; on the CPU the choice is accepted and unused
output_test(cuda_gemv_bad EXPECT_RC 2 MATCH "^trit run: error: --cuda-gemv takes add or dp4a\n$"
  COMMAND ${out_trit} run -m /nonexistent.gguf -p x --cuda-gemv mul)
output_test(cuda_gemv_cpu EXPECT_RC 0 MATCH "device: cpu"
  COMMAND ${out_trit} run --device cpu -p x -n 1 --cuda-gemv dp4a)

# an output that is the model being read: refused before it is loaded, the model left intact
file(MAKE_DIRECTORY ${out_dir})
file(COPY_FILE ${out_model} ${out_dir}/victim.gguf)
output_test(output_file_logits_over_model EXPECT_RC 1
  MATCH "trit logits: error: output: [^\n]*victim.gguf: would replace [^\n]*victim.gguf, which this command reads"
  COMMAND ${out_trit} logits -m ${out_dir}/victim.gguf --ids 1,2 -o ${out_dir}/victim.gguf)

# closed standard descriptors: with stderr closed, the output file must not become fd 2 and receive
# the status lines (the file is still a valid .npy); with stdout closed, a command that prints fails.
# The shell closes them, so these run where the shell can start trit itself: not in a cross build,
# whose binaries start through the CROSSCOMPILING_EMULATOR.
if(NOT CMAKE_CROSSCOMPILING)
  output_test(output_closed_stderr_logits EXPECT_RC 0 MATCH "NUMPY"
    COMMAND sh -c "'$<TARGET_FILE:trit>' logits --ids 1,2 -o '${out_dir}/closed2.npy' -t 1 2>&- && head -c 6 '${out_dir}/closed2.npy'")
  output_test(output_closed_stdout_run EXPECT_RC 1 MATCH "trit run: error: writing the output: Bad file descriptor"
    COMMAND sh -c "'$<TARGET_FILE:trit>' run -p hi -n 2 -t 1 >&-")
  output_test(output_closed_stdout_logits EXPECT_RC 0 MATCH "wrote [^\n]*closed1.npy"
    COMMAND sh -c "'$<TARGET_FILE:trit>' logits --ids 1,2 -o '${out_dir}/closed1.npy' -t 1 >&-")
endif()

# endless input: a chat line or a prompt file longer than the context could hold is refused once
# that many bytes are read (before: memory grew until the machine ran out)
output_test(input_chat_endless_line EXPECT_RC 1 INPUT /dev/zero
  MATCH "trit chat: error: stdin: a line of more than [0-9]+ bytes, more than a context of 256 tokens can hold"
  COMMAND ${out_trit} chat -t 1)
output_test(input_run_endless_prompt EXPECT_RC 1 INPUT /dev/zero
  MATCH "trit run: error: /dev/stdin: more than [0-9]+ bytes, more than a context of 256 tokens can hold \\(raise -c\\)"
  COMMAND ${out_trit} run -t 1 -f /dev/stdin)
# ---- trit embed -----------------------------------------------------------------------------------
# (the .npy it writes is read back by numpy in ctest_embed.cmake)
file(WRITE ${out_dir}/embed_empty.txt "")
file(WRITE ${out_dir}/embed_gap.txt "In the beginning\n\nthe word\n")
string(REPEAT "and the LORD said " 40 out_long_text)
file(WRITE ${out_dir}/embed_long.txt "In the beginning\n${out_long_text}\n")
if(EXISTS /dev/full)
  output_test(output_full_embed OUT /dev/full EXPECT_RC 1 MATCH "trit embed: error: ${out_full}\n" NOMATCH "embedded"
    COMMAND ${out_trit} embed -m ${out_model} -p "In the beginning" -t 1)
  output_test(output_file_embed_device EXPECT_RC 1
    MATCH "^trit embed: error: output: /dev/full: is a character device, not a regular file"
    COMMAND ${out_trit} embed -m ${out_model} -p "In the beginning" -o /dev/full)
endif()
output_test(output_file_embed_folder EXPECT_RC 1 MATCH "^trit embed: error: output: ${out_dir}: is a folder, not a regular file"
  COMMAND ${out_trit} embed -m ${out_model} -p "In the beginning" -o ${out_dir})
output_test(input_embed_empty_file EXPECT_RC 1 MATCH "trit embed: error: [^\n]*embed_empty.txt: the file is empty" NOMATCH "embedded"
  COMMAND ${out_trit} embed -m ${out_model} -f ${out_dir}/embed_empty.txt -t 1)
output_test(input_embed_empty_line EXPECT_RC 1 MATCH "trit embed: error: [^\n]*embed_gap.txt: line 2 is empty" NOMATCH "embedding"
  COMMAND ${out_trit} embed -m ${out_model} -f ${out_dir}/embed_gap.txt -t 1)
output_test(input_embed_too_long EXPECT_RC 1 NOMATCH "embedding"
  MATCH "trit embed: error: text 2 is [0-9]+ tokens, more than the context of 64 \\(raise -c"
  COMMAND ${out_trit} embed -m ${out_model} -f ${out_dir}/embed_long.txt -c 64 -t 1)
output_test(input_embed_endless EXPECT_RC 1 INPUT /dev/zero MATCH "trit embed: error: /dev/stdin: more than 67108864 bytes"
  COMMAND ${out_trit} embed -m ${out_model} -f /dev/stdin -t 1)
output_test(embed_refuses_cuda EXPECT_RC 2 MATCH "^trit embed: error: embeddings run on the CPU backend"
  COMMAND ${out_trit} embed -m /nonexistent.gguf -p x --device cuda)
output_test(embed_help EXPECT_RC 0 MATCH "--instruct TASK[^\n]*\n[^\n]*\n[^\n]*--no-normalize" COMMAND ${out_trit} embed --help)
