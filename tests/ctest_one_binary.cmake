# ctest_one_binary.cmake: one x86-64 binary runs right on every x86-64 CPU, whatever machine built
# it (docs/testing.md). Where qemu-x86_64 is installed (Debian: qemu-user), the trit built here runs
# under it as older CPUs and must pick their family and compute exactly what the native run forced
# to that family (TRIT_CPU) computes:
#
#   one_binary_haswell   -cpu Haswell-noTSX (AVX2, FMA, F16C; no AVX-512): the avx2 family
#   one_binary_nehalem   -cpu Nehalem (SSE4.2; no AVX): the scalar family
#
# Compared: the greedy text of `trit run` and the perplexity of two chunks of the held-out excerpt,
# character for character (integer kernels, one fp32 order per family), and the family the run
# reports. An instruction beyond the emulated CPU would end the emulated run with SIGILL. Skipped
# where this machine cannot run the family natively. Each takes about half a minute (QEMU's TCG).
#
#   ctest --test-dir build -R one_binary --output-on-failure

if(CMAKE_SCRIPT_MODE_FILE)
  # -DTRIT=<trit> -DQEMU=<qemu-x86_64> -DQEMU_CPU=<cpu> -DFAMILY=<family> -DTEXT=<file>
  set(run_args run -p "In the beginning" -n 24 --temp 0 --device cpu -t 2)
  set(ppl_args perplexity -f ${TEXT} --chunks 2 --device cpu -t 2)
  foreach(what run ppl)
    execute_process(COMMAND ${CMAKE_COMMAND} -E env TRIT_CPU=${FAMILY} ${TRIT} ${${what}_args}
                    RESULT_VARIABLE rc_native OUTPUT_VARIABLE out_native ERROR_VARIABLE err_native)
    if(NOT rc_native EQUAL 0)
      if("${err_native}" MATCHES "cannot run that kernel family")
        message("SKIPPED: this CPU cannot run the ${FAMILY} family natively")
        return()
      endif()
      message(FATAL_ERROR "native TRIT_CPU=${FAMILY} trit ${what} failed (${rc_native}):\n${err_native}")
    endif()
    execute_process(COMMAND ${QEMU} -cpu ${QEMU_CPU} ${TRIT} ${${what}_args}
                    RESULT_VARIABLE rc_emu OUTPUT_VARIABLE out_emu ERROR_VARIABLE err_emu)
    message("${what} under qemu -cpu ${QEMU_CPU}:\n${out_emu}${err_emu}")
    if(NOT rc_emu EQUAL 0)
      message(FATAL_ERROR "trit ${what} under qemu -cpu ${QEMU_CPU} failed (${rc_emu})")
    endif()
    if(what STREQUAL "run")
      if(NOT "${err_emu}" MATCHES "CPU ${FAMILY}, ")
        message(FATAL_ERROR "under -cpu ${QEMU_CPU} trit did not choose the ${FAMILY} family")
      endif()
      set(native "${out_native}")
      set(emu "${out_emu}")
    else()
      string(REGEX MATCH "Final estimate: [^\n]*" native "${out_native}${err_native}")
      string(REGEX MATCH "Final estimate: [^\n]*" emu "${out_emu}${err_emu}")
    endif()
    if(NOT "${native}" STREQUAL "${emu}" OR "${native}" STREQUAL "")
      message(FATAL_ERROR "trit ${what}: native TRIT_CPU=${FAMILY} gave\n${native}\nand qemu -cpu ${QEMU_CPU}\n${emu}")
    endif()
  endforeach()
  return()
endif()

# Not in sanitizer builds: AddressSanitizer's shadow memory does not fit under qemu-user.
if(CMAKE_SYSTEM_PROCESSOR MATCHES "^(x86_64|AMD64|amd64)$" AND NOT CMAKE_CROSSCOMPILING AND NOT TRIT_SANITIZE
   AND NOT TRIT_FUZZ)
  find_program(TRIT_QEMU_X86 qemu-x86_64)
  if(TRIT_QEMU_X86)
    foreach(pair "haswell;Haswell-noTSX;avx2" "nehalem;Nehalem;scalar")
      list(GET pair 0 name)
      list(GET pair 1 cpu)
      list(GET pair 2 family)
      add_test(NAME one_binary_${name}
               COMMAND ${CMAKE_COMMAND} -DTRIT=$<TARGET_FILE:trit> -DQEMU=${TRIT_QEMU_X86} -DQEMU_CPU=${cpu}
                       -DFAMILY=${family} -DTEXT=${CMAKE_CURRENT_SOURCE_DIR}/data/default-model/val_excerpt.txt
                       -P ${CMAKE_CURRENT_LIST_FILE})
      set_tests_properties(one_binary_${name} PROPERTIES LABELS "unit;qemu" TIMEOUT 600
                           SKIP_REGULAR_EXPRESSION "SKIPPED: ")
    endforeach()
  endif()
endif()
