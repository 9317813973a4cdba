# ctest_tools.cmake: CLI tests of `trit tokenize`, `trit inspect` and `trit convert`.
#
# Included by tests/CMakeLists.txt, where it declares the tests. A test of one command's exit code
# and output (trit_tool_test) is run and checked by ctest_bench.cmake's script (trit_bench_test); the
# round trips run this same file again as a `cmake -P` script (the branch just below), so no shell or
# Python is needed at test time:
#   MODE=roundtrip  make a tiny HF folder (make_tiny_model KIND), convert it, convert the result
#                   again (must be byte-identical), inspect it, tokenize with both; with LLAMA3 (the
#                   llama3 test vocabulary folder) also convert with --tokenizer LLAMA3, which must be
#                   refused (a larger vocabulary than the model's); with COMPARE_LOGITS compare the
#                   logits of source and conversion (bit-identical .npy files); with RUN, `trit run`
#                   on the conversion must print the prompt and a stderr matching RUN
#
#   ctest --test-dir build -R '^tool_' --output-on-failure
#
# It also links tests/tiny_model.c into test_convert and test_outfile and builds make_tiny_model
# (the fixture writer for the round trip).

if(CMAKE_SCRIPT_MODE_FILE)
  # Runs a command list; fails the test with its output when it exits non-zero.
  macro(run_step)
    execute_process(COMMAND ${ARGN} RESULT_VARIABLE _rc OUTPUT_VARIABLE _out ERROR_VARIABLE _err)
    if(NOT _rc EQUAL 0)
      string(REPLACE ";" " " _shown "${ARGN}")
      message(FATAL_ERROR "`${_shown}` exited ${_rc}\n${_out}${_err}")
    endif()
  endmacro()

  # EMU: the cross-compiling emulator, words joined by "^^" (empty on a native build)
  string(REPLACE "^^" ";" emu "${EMU}")
  set(TRIT ${emu} "${TRIT}")
  set(MAKE ${emu} "${MAKE}")

  if(MODE STREQUAL "roundtrip")
    file(REMOVE_RECURSE "${WORK}")
    file(MAKE_DIRECTORY "${WORK}")
    run_step(${MAKE} "${KIND}" "${WORK}/hf")
    run_step(${TRIT} convert "${WORK}/hf" -o "${WORK}/a.gguf")
    message("${_err}")
    run_step(${TRIT} convert "${WORK}/a.gguf" -o "${WORK}/b.gguf" -q)
    execute_process(COMMAND "${CMAKE_COMMAND}" -E compare_files "${WORK}/a.gguf" "${WORK}/b.gguf" RESULT_VARIABLE same)
    if(NOT same EQUAL 0)
      message(FATAL_ERROR "converting the converted file changed it")
    endif()
    run_step(${TRIT} inspect "${WORK}/a.gguf")
    if(NOT _out MATCHES "model: runs on trit" OR NOT _out MATCHES "weight scales: +${SCALES}"
       OR NOT _out MATCHES "tokenizer: byte-level BPE")
      message(FATAL_ERROR "inspect output:\n${_out}")
    endif()
    run_step(${TRIT} tokenize -m "${WORK}/hf" -p "the cat in the hat" --bos)
    set(ids_hf "${_out}")
    run_step(${TRIT} tokenize -m "${WORK}/a.gguf" -p "the cat in the hat" --bos)
    if(NOT ids_hf STREQUAL _out OR NOT _out MATCHES "^261 116 257 ")
      message(FATAL_ERROR "tokenize: '${ids_hf}' from the folder, '${_out}' from the conversion")
    endif()
    if(LLAMA3)
      # a vocabulary larger than the model's (128256 tokens for 264 embedding rows) is refused,
      # naming both; test_outfile converts this vocabulary into a model that holds it
      execute_process(COMMAND ${TRIT} convert "${WORK}/hf" -o "${WORK}/llama3.gguf" --tokenizer "${LLAMA3}" -q
                      RESULT_VARIABLE _rc OUTPUT_VARIABLE _out ERROR_VARIABLE _err)
      if(NOT _rc EQUAL 1 OR NOT _err MATCHES "has 128256 tokens, more than the model's vocabulary of 264"
         OR EXISTS "${WORK}/llama3.gguf")
        message(FATAL_ERROR "convert --tokenizer LLAMA3 exited ${_rc}:\n${_out}${_err}")
      endif()
    endif()
    if(RUN)
      # the file generates text as a user would run it (a Ternary-Bonsai-like file: qwen3, Q2_0)
      run_step(${TRIT} run -m "${WORK}/a.gguf" --device cpu -t 2 -p "the cat in the hat" -n 12 --seed 3)
      if(NOT _out MATCHES "^the cat in the hat" OR NOT _err MATCHES "${RUN}")
        message(FATAL_ERROR "trit run:\n${_out}${_err}")
      endif()
    endif()
    if(COMPARE_LOGITS)
      run_step(${TRIT} logits -m "${WORK}/hf" --device cpu -t 2 --ids 261,116,257,32,99 -o "${WORK}/hf.npy")
      run_step(${TRIT} logits -m "${WORK}/a.gguf" --device cpu -t 2 --ids 261,116,257,32,99 -o "${WORK}/a.npy")
      execute_process(COMMAND "${CMAKE_COMMAND}" -E compare_files "${WORK}/hf.npy" "${WORK}/a.npy" RESULT_VARIABLE same)
      if(NOT same EQUAL 0)
        message(FATAL_ERROR "the logits of the folder and of its conversion differ")
      endif()
    endif()
    file(REMOVE_RECURSE "${WORK}")
  else()
    message(FATAL_ERROR "ctest_tools.cmake: unknown MODE '${MODE}'")
  endif()
  return()
endif()

# ---- declarations (configure time) ---------------------------------------------------------------

target_sources(test_convert PRIVATE ${CMAKE_CURRENT_SOURCE_DIR}/tiny_model.c)
target_sources(test_outfile PRIVATE ${CMAKE_CURRENT_SOURCE_DIR}/tiny_model.c)

add_executable(make_tiny_model ${CMAKE_CURRENT_SOURCE_DIR}/make_tiny_model.c ${CMAKE_CURRENT_SOURCE_DIR}/tiny_model.c)
target_link_libraries(make_tiny_model PRIVATE trit_internal)
target_compile_options(make_tiny_model PRIVATE ${TRIT_C_WARNINGS})

set(TRIT_TOOL_SCRIPT ${CMAKE_CURRENT_LIST_FILE})
set(TRIT_TOOL_DATA ${CMAKE_CURRENT_SOURCE_DIR}/data)
# small JSON-lines inputs, written at configure time
set(TRIT_TOOL_INPUTS ${CMAKE_CURRENT_BINARY_DIR}/tool_inputs)
file(WRITE ${TRIT_TOOL_INPUTS}/two_lines.jsonl "{\"text\":\"Hello world\"}\n{\"text\":\"Hello world\",\"n\":2,\"ids\":[1]}\n")
file(WRITE ${TRIT_TOOL_INPUTS}/bad_line3.jsonl "{\"text\":\"a\"}\n\n{\"text\": nope}\n")
file(WRITE ${TRIT_TOOL_INPUTS}/wrong_ids.jsonl "{\"text\":\"Hello world\",\"ids\":[9906,1918]}\n")

# trit_tool_test(NAME EXPECT_RC <n> [MATCH <regex>] [INPUT <file>] COMMAND <args>...): label unit,
# exit status EXPECT_RC, stdout + stderr matching MATCH, stdin from INPUT; trit_bench_test's checks
include(${CMAKE_CURRENT_LIST_DIR}/ctest_bench.cmake)
function(trit_tool_test name)
  trit_bench_test(${name} ${ARGN})
endfunction()

# tokenize: the expected ids of two vocabularies that nobody here wrote (no BOS, as in the files)
trit_tool_test(tool_tokenize_llama3_jsonl EXPECT_RC 0 MATCH "checked 135 lines: 0 differ"
  COMMAND $<TARGET_FILE:trit> tokenize -m ${TRIT_TOOL_DATA}/tokenizers/llama3/tokenizer.json --jsonl
          -f ${TRIT_TOOL_DATA}/tokenizers/llama3/cases.jsonl --check)
trit_tool_test(tool_tokenize_spm_jsonl_stdin EXPECT_RC 0 MATCH "checked 135 lines: 0 differ"
  INPUT ${TRIT_TOOL_DATA}/tokenizers/llama-spm/cases.jsonl
  COMMAND $<TARGET_FILE:trit> tokenize -m ${TRIT_TOOL_DATA}/tokenizers/llama-spm/ggml-vocab-llama-spm.gguf --jsonl --check)
# --jsonl keeps every field and adds "ids"
trit_tool_test(tool_tokenize_jsonl_output EXPECT_RC 0
  MATCH "\\{\"text\":\"Hello world\",\"ids\":\\[9906,1917\\]\\}\n\\{\"text\":\"Hello world\",\"n\":2,\"ids\":\\[9906,1917\\]\\}"
  INPUT ${TRIT_TOOL_INPUTS}/two_lines.jsonl
  COMMAND $<TARGET_FILE:trit> tokenize -m ${TRIT_TOOL_DATA}/tokenizers/llama3 --jsonl)
# a bad line is an error that names it
trit_tool_test(tool_tokenize_bad_json EXPECT_RC 1 MATCH "line 3: not valid JSON"
  INPUT ${TRIT_TOOL_INPUTS}/bad_line3.jsonl
  COMMAND $<TARGET_FILE:trit> tokenize -m ${TRIT_TOOL_DATA}/tokenizers/llama3 --jsonl)
# a wrong expectation fails --check
trit_tool_test(tool_tokenize_check_mismatch EXPECT_RC 1 MATCH "line 1: ids differ"
  INPUT ${TRIT_TOOL_INPUTS}/wrong_ids.jsonl
  COMMAND $<TARGET_FILE:trit> tokenize -m ${TRIT_TOOL_DATA}/tokenizers/llama3 --jsonl --check)
trit_tool_test(tool_tokenize_prompt_bos_special EXPECT_RC 0 MATCH "^128000 9906 1917 128009\n$"
  COMMAND $<TARGET_FILE:trit> tokenize -m ${TRIT_TOOL_DATA}/tokenizers/llama3 -p "Hello world<|eot_id|>" --bos --special)

# tensor parallelism asked of GPUs that are not there, or of the CPU without mpirun: clear errors
trit_tool_test(tool_run_tp_more_gpus_than_present EXPECT_RC 1
  MATCH "--tp 1000: tensor parallelism in one process runs on 1000 CUDA devices, and this process sees [0-9]+"
  COMMAND $<TARGET_FILE:trit> run --tp 1000 -n 1 -p "In the beginning")
trit_tool_test(tool_run_tp_on_cpu_points_to_mpi EXPECT_RC 1 MATCH "--tp 2 runs on 2 GPUs of this process.*--tp-mpi"
  COMMAND $<TARGET_FILE:trit> run --tp 2 --device cpu -n 1 -p "In the beginning")

# inspect: a vocabulary-only GGUF reads (exit 0), shows its tokenizer and says why it cannot run
trit_tool_test(tool_inspect_vocab_gguf EXPECT_RC 0
  MATCH "model: cannot run on trit: the file holds no tensors.*tokenizer: SentencePiece BPE \\(GGUF model 'llama'\\), 32000 tokens.*bos 1 \"<s>\", eos 2 \"</s>\""
  COMMAND $<TARGET_FILE:trit> inspect ${TRIT_TOOL_DATA}/tokenizers/llama-spm/ggml-vocab-llama-spm.gguf)
trit_tool_test(tool_inspect_json EXPECT_RC 0 MATCH "\"runnable\":[ \t]*false"
  COMMAND $<TARGET_FILE:trit> inspect ${TRIT_TOOL_DATA}/tokenizers/gpt2/ggml-vocab-gpt-2.gguf --json)
trit_tool_test(tool_inspect_missing EXPECT_RC 1 MATCH "cannot open"
  COMMAND $<TARGET_FILE:trit> inspect ${TRIT_TOOL_DATA}/no-such-file.gguf)
# inspect names the family a config.json describes (Falcon3-*-1.58bit and Falcon-E share
# llama-bitlinear-tiny's format, docs/formats.md section 1)
trit_tool_test(tool_inspect_recognized_llama_bitlinear EXPECT_RC 0
  MATCH "recognized: +Llama \\+ BitLinear \\(quant_method bitnet\\): the format of HF1BitLLM Llama3-8B-1.58, Falcon3-\\*-1.58bit and Falcon-E.*model: runs on trit"
  COMMAND $<TARGET_FILE:trit> inspect ${TRIT_TOOL_DATA}/fixtures/llama-bitlinear-tiny --no-tensors)

# convert: HF folder -> GGUF -> GGUF, for the divide kind (Q/K permuted) and the multiply kind
# (whose logits must then equal the folder's bit for bit)
set(trit_tool_emu "")
if(CMAKE_CROSSCOMPILING AND CMAKE_CROSSCOMPILING_EMULATOR)
  string(REPLACE ";" "^^" trit_tool_emu "${CMAKE_CROSSCOMPILING_EMULATOR}")
endif()
add_test(NAME tool_convert_roundtrip_divide
  COMMAND ${CMAKE_COMMAND} -DMODE=roundtrip -DKIND=bitlinear-llama -DSCALES=divide
          -DLLAMA3=${TRIT_TOOL_DATA}/tokenizers/llama3
          -DTRIT=$<TARGET_FILE:trit> -DMAKE=$<TARGET_FILE:make_tiny_model> "-DEMU=${trit_tool_emu}"
          -DWORK=${CMAKE_CURRENT_BINARY_DIR}/tool_convert_divide -P ${TRIT_TOOL_SCRIPT})
add_test(NAME tool_convert_roundtrip_multiply
  COMMAND ${CMAKE_COMMAND} -DMODE=roundtrip -DKIND=autobitlinear -DSCALES=multiply -DCOMPARE_LOGITS=ON
          -DTRIT=$<TARGET_FILE:trit> -DMAKE=$<TARGET_FILE:make_tiny_model> "-DEMU=${trit_tool_emu}"
          -DWORK=${CMAKE_CURRENT_BINARY_DIR}/tool_convert_multiply -P ${TRIT_TOOL_SCRIPT})
# a Ternary-Bonsai-like model: a qwen3 folder of group-ternary F16 weights becomes a Q2_0 GGUF
# (groups of 64) whose logits equal the folder's, and which trit run generates from
add_test(NAME tool_convert_roundtrip_qwen3_q2_0
  COMMAND ${CMAKE_COMMAND} -DMODE=roundtrip -DKIND=qwen3-grouped "-DSCALES=multiply, one per 64 columns" -DCOMPARE_LOGITS=ON
          "-DRUN=qwen3.*generated 12 tokens"
          -DTRIT=$<TARGET_FILE:trit> -DMAKE=$<TARGET_FILE:make_tiny_model> "-DEMU=${trit_tool_emu}"
          -DWORK=${CMAKE_CURRENT_BINARY_DIR}/tool_convert_qwen3 -P ${TRIT_TOOL_SCRIPT})
set_tests_properties(tool_convert_roundtrip_divide tool_convert_roundtrip_multiply tool_convert_roundtrip_qwen3_q2_0
                     PROPERTIES LABELS unit TIMEOUT 300)
trit_tool_test(tool_convert_refuses_vocab_only EXPECT_RC 1 MATCH "trit convert: error: .*token_embd.weight"
  COMMAND $<TARGET_FILE:trit> convert ${TRIT_TOOL_DATA}/tokenizers/llama-spm/ggml-vocab-llama-spm.gguf
          -o ${CMAKE_CURRENT_BINARY_DIR}/tool_refused.gguf)

# option values: a missing or malformed value is a usage error (exit 2) that names the flag, before
# any model loads (no model is given; the shipped one need not exist)
trit_tool_test(tool_cli_run_bad_count EXPECT_RC 2 MATCH "trit run: error: -n needs an integer .*'abc'"
  COMMAND $<TARGET_FILE:trit> run -m /nonexistent.gguf -p x -n abc)
trit_tool_test(tool_cli_run_empty_number EXPECT_RC 2 MATCH "trit run: error: --temp needs a number"
  COMMAND $<TARGET_FILE:trit> run -m /nonexistent.gguf -p x --temp "")
trit_tool_test(tool_cli_run_sampling_range EXPECT_RC 2 MATCH "trit run: error: sampling options: .*top-p"
  COMMAND $<TARGET_FILE:trit> run -m /nonexistent.gguf -p x --top-p 2)
trit_tool_test(tool_cli_run_missing_value EXPECT_RC 2 MATCH "trit run: error: --seed needs"
  COMMAND $<TARGET_FILE:trit> run -m /nonexistent.gguf -p x --seed)
trit_tool_test(tool_cli_chat_trailing_text EXPECT_RC 2 MATCH "trit chat: error: --top-k needs an integer .*'4x'"
  COMMAND $<TARGET_FILE:trit> chat -m /nonexistent.gguf --top-k 4x)
trit_tool_test(tool_cli_perplexity_chunks EXPECT_RC 2 MATCH "trit perplexity: error: --chunks needs an integer"
  COMMAND $<TARGET_FILE:trit> perplexity -m /nonexistent.gguf -f /nonexistent.txt --chunks 2x)
trit_tool_test(tool_cli_bench_reps EXPECT_RC 2 MATCH "trit bench: error: -r needs an integer from 1 to 64"
  COMMAND $<TARGET_FILE:trit> bench -m /nonexistent.gguf -r 3x)
trit_tool_test(tool_cli_inspect_no_path EXPECT_RC 2 MATCH "trit inspect: error: give a GGUF file"
  COMMAND $<TARGET_FILE:trit> inspect)
