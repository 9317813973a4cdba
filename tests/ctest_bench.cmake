# ctest_bench.cmake: smoke tests of the benchmark programs (label unit; one gpu test). They check
# that the programs run, validate before they time, and write what they claim; never their speed.
#
#   bench_cpu_gemm_quick          --quick on small shapes with row and column tails: exit 0, timing
#                                 rows, and the "# validation passed" marker
#   bench_cpu_gemm_corrupt_gate   TRIT_BENCH_CORRUPT=1 (one output bit of every kernel call flipped
#                                 before validation): exit 1, "validation FAILED", and not one timed
#                                 kernel row: nothing timed is reported without its correctness check
#   bench_kernels_help            (CUDA builds) --help exits 0 with the usage
#   bench_kernels_no_device       (CUDA builds) CUDA_VISIBLE_DEVICES= hides every GPU: "no CUDA
#                                 device", exit 0; exit 1 with TRIT_REQUIRE_GPU=1
#   bench_kernels_corrupt_gate    (CUDA builds, label gpu) the same gate on the GPU benchmark: every
#                                 variant INVALID with no time, exit 1; skipped without a GPU
#   trit_bench_tiny_json          `trit bench -m synthetic:tiny ... -o json`: exit 0, stdout is JSON
#                                 with one entry per test and positive tokens/s
#
# ctest_tools.cmake declares its CLI checks with trit_bench_test too (it includes this file; the
# guard below makes that one inclusion).
#
#   ctest --test-dir build -R '^(bench_|trit_bench_)' --output-on-failure
#
# Each test runs this file again as a `cmake -P` script (the branch just below): no shell or Python.
#   CMD       the command, arguments joined by "^^";  ENVS  VAR=VALUE pairs joined by "^^"
#   INPUT     a file for its stdin
#   EXPECT_RC the exit status;  MATCH / NOMATCH  regexes that stdout + stderr must / must not match
#   JSON_TESTS  stdout must be a JSON array whose "test" fields are exactly these (joined by "^^"),
#               each with "avg_ts" > 0
#   SKIP_NO_GPU a "no CUDA device" answer makes the test print "SKIPPED: no GPU" (and fails instead
#               when TRIT_REQUIRE_GPU=1)

if(CMAKE_SCRIPT_MODE_FILE)
  string(REPLACE "^^" ";" cmd "${CMD}")
  set(env_cmd)
  if(ENVS)
    string(REPLACE "^^" ";" envs "${ENVS}")
    set(env_cmd ${CMAKE_COMMAND} -E env ${envs})
  endif()
  set(input_args)
  if(INPUT)
    set(input_args INPUT_FILE "${INPUT}")
  endif()
  execute_process(COMMAND ${env_cmd} ${cmd} ${input_args} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
  if(SKIP_NO_GPU AND "${out}${err}" MATCHES "bench_kernels: no CUDA device")
    if("$ENV{TRIT_REQUIRE_GPU}" STREQUAL "1")
      message(FATAL_ERROR "TRIT_REQUIRE_GPU=1 but bench_kernels found no GPU")
    endif()
    message("SKIPPED: no GPU")
    return()
  endif()
  string(LENGTH "${out}${err}" n)
  if(n GREATER 6000)
    string(SUBSTRING "${out}${err}" 0 6000 shown)
  else()
    set(shown "${out}${err}")
  endif()
  message("${shown}")
  if(NOT "${rc}" STREQUAL "${EXPECT_RC}")
    message(FATAL_ERROR "exit status ${rc}, expected ${EXPECT_RC}")
  endif()
  if(DEFINED MATCH AND NOT "${out}${err}" MATCHES "${MATCH}")
    message(FATAL_ERROR "the output does not match /${MATCH}/")
  endif()
  if(DEFINED NOMATCH AND "${out}${err}" MATCHES "${NOMATCH}")
    message(FATAL_ERROR "the output matches /${NOMATCH}/ (\"${CMAKE_MATCH_0}\"), which it must not")
  endif()
  if(DEFINED JSON_TESTS)
    string(REPLACE "^^" ";" want "${JSON_TESTS}")
    string(JSON type ERROR_VARIABLE jerr TYPE "${out}")
    if(jerr OR NOT type STREQUAL "ARRAY")
      message(FATAL_ERROR "stdout is not a JSON array (${jerr})")
    endif()
    string(JSON len LENGTH "${out}")
    list(LENGTH want n_want)
    if(NOT len EQUAL n_want)
      message(FATAL_ERROR "${len} JSON entries, expected ${n_want}")
    endif()
    math(EXPR last "${len} - 1")
    foreach(i RANGE ${last})
      string(JSON test GET "${out}" ${i} test)
      string(JSON ts GET "${out}" ${i} avg_ts)
      list(GET want ${i} w)
      if(NOT test STREQUAL w)
        message(FATAL_ERROR "entry ${i}: test ${test}, expected ${w}")
      endif()
      if(NOT ts GREATER 0)
        message(FATAL_ERROR "entry ${i} (${test}): avg_ts ${ts} is not positive")
      endif()
    endforeach()
  endif()
  return()
endif()

# ---- declarations (configure time) ---------------------------------------------------------------

include_guard(GLOBAL)
set(TRIT_BENCH_SCRIPT ${CMAKE_CURRENT_LIST_FILE})

# trit_bench_test(NAME EXPECT_RC <n> [MATCH <re>] [NOMATCH <re>] [JSON_TESTS <t>...] [ENV <V=x>...]
#                 [INPUT <file>] [LABELS <l>...] [SKIP_NO_GPU] COMMAND <args>...)
function(trit_bench_test name)
  cmake_parse_arguments(T "SKIP_NO_GPU" "EXPECT_RC;MATCH;NOMATCH;INPUT" "COMMAND;ENV;JSON_TESTS;LABELS" ${ARGN})
  # Every COMMAND here is a program of this build: on a cross build it runs under the emulator
  # (cmake/aarch64-linux-gnu.cmake), as ctest runs the Criterion programs.
  if(CMAKE_CROSSCOMPILING AND CMAKE_CROSSCOMPILING_EMULATOR)
    list(PREPEND T_COMMAND ${CMAKE_CROSSCOMPILING_EMULATOR})
  endif()
  string(REPLACE ";" "^^" cmd "${T_COMMAND}")
  set(args -DCMD=${cmd} -DEXPECT_RC=${T_EXPECT_RC})
  foreach(opt MATCH NOMATCH INPUT)
    if(DEFINED T_${opt})
      list(APPEND args "-D${opt}=${T_${opt}}")
    endif()
  endforeach()
  if(T_ENV)
    string(REPLACE ";" "^^" envs "${T_ENV}")
    list(APPEND args "-DENVS=${envs}")
  endif()
  if(T_JSON_TESTS)
    string(REPLACE ";" "^^" tests "${T_JSON_TESTS}")
    list(APPEND args "-DJSON_TESTS=${tests}")
  endif()
  if(T_SKIP_NO_GPU)
    list(APPEND args -DSKIP_NO_GPU=ON)
  endif()
  if(NOT T_LABELS)
    set(T_LABELS unit)
  endif()
  add_test(NAME ${name} COMMAND ${CMAKE_COMMAND} ${args} -P ${TRIT_BENCH_SCRIPT})
  set_tests_properties(${name} PROPERTIES LABELS "${T_LABELS}" TIMEOUT 300)
  if(T_SKIP_NO_GPU)
    set_tests_properties(${name} PROPERTIES SKIP_REGULAR_EXPRESSION "SKIPPED: no GPU")
  endif()
endfunction()

# A kernel row of the bench_cpu_gemm table with a time in it (the INVALID rows have none).
set(TRIT_CPU_TIMED_ROW "(scalar|avx2|avx512|amx|neon|neon_dotprod) +[0-9]+ +[0-9]+ +[0-9]+\\.[0-9]")

if(EXISTS ${PROJECT_SOURCE_DIR}/bench/bench_cpu_gemm.c)
  # small shapes: a fused pair (64 + 32 rows) and one with a row tail and a column tail (k % 4 != 0);
  # m = 9 takes the AMX path where there is one; 1 and 2 threads
  set(quick_args --quick --shapes 64+32x256,130x333 --m 1,9 --threads 1,2)
  trit_bench_test(bench_cpu_gemm_quick EXPECT_RC 0
    MATCH "${TRIT_CPU_TIMED_ROW}.*# validation passed: [1-9][0-9]* of [1-9][0-9]* kernel rows bit-exact"
    COMMAND $<TARGET_FILE:bench_cpu_gemm> ${quick_args})
  trit_bench_test(bench_cpu_gemm_corrupt_gate EXPECT_RC 1 ENV TRIT_BENCH_CORRUPT=1
    MATCH "INVALID, not timed: matrix 0 token 0 row 0.*# validation FAILED: [1-9][0-9]* of"
    NOMATCH "${TRIT_CPU_TIMED_ROW}"
    COMMAND $<TARGET_FILE:bench_cpu_gemm> ${quick_args})
endif()

if(TRIT_HAVE_CUDA AND EXISTS ${PROJECT_SOURCE_DIR}/bench/bench_kernels.cu)
  trit_bench_test(bench_kernels_help EXPECT_RC 0 MATCH "usage: .*bench_kernels.*--models"
    COMMAND $<TARGET_FILE:bench_kernels> --help)
  trit_bench_test(bench_kernels_no_device EXPECT_RC 0 ENV CUDA_VISIBLE_DEVICES= TRIT_REQUIRE_GPU=0
    MATCH "bench_kernels: no CUDA device .*nothing measured"
    COMMAND $<TARGET_FILE:bench_kernels> --models 2b --m 1 --iters 10 --out ${CMAKE_CURRENT_BINARY_DIR}/bench_no_device)
  trit_bench_test(bench_kernels_no_device_required EXPECT_RC 1 ENV CUDA_VISIBLE_DEVICES= TRIT_REQUIRE_GPU=1
    MATCH "bench_kernels: no CUDA device"
    COMMAND $<TARGET_FILE:bench_kernels> --models 2b --m 1 --iters 10 --out ${CMAKE_CURRENT_BINARY_DIR}/bench_no_device)
  # on a GPU: every ternary variant INVALID, none timed (median 0.00), exit 1
  trit_bench_test(bench_kernels_corrupt_gate EXPECT_RC 1 ENV TRIT_BENCH_CORRUPT=1 LABELS gpu SKIP_NO_GPU
    MATCH "INVALID: 2b o gemv_dp4a m 1 differs.*INVALID: 2b o gemm_mma_f32 m 1 differs"
    NOMATCH "(gemv_dp4a|gemv_dp4a_f32|gemv_add|gemm_mma|gemm_mma_f32) +[0-9]+\\.[0-9]+ +([0-9]*[1-9][0-9]*\\.[0-9]+|0\\.[0-9]*[1-9][0-9]*) "
    COMMAND $<TARGET_FILE:bench_kernels> --models 2b --m 1 --iters 10 --out ${CMAKE_CURRENT_BINARY_DIR}/bench_corrupt)
endif()

if(EXISTS ${PROJECT_SOURCE_DIR}/host/model/synthetic.c)
  trit_bench_test(trit_bench_tiny_json EXPECT_RC 0 JSON_TESTS pp16 tg4
    COMMAND $<TARGET_FILE:trit> bench -m synthetic:tiny -p 16 -n 4 -r 1 -o json --device cpu)
endif()
