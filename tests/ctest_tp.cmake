# ctest_tp.cmake: the tensor-parallel tests under mpirun (label mpi), with 2 and 4 ranks.
#
# Included by tests/CMakeLists.txt: every test of test_tp_mpi.c runs in its own mpirun (MPI can be
# initialized once per process), plus two fault tests in which rank 1 dies (SIGKILL) or hangs in its
# second forward call. Those must end every rank with a clear error well before the ctest timeout;
# this file, run as a script (cmake -P), checks that:
#
#   ctest --test-dir build -L mpi --output-on-failure
#   ctest --test-dir build -R tp_mpi_hang --output-on-failure -V
#
# As root, OpenMPI needs OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 (set below).

if(CMAKE_SCRIPT_MODE_FILE)
  # -DMPIEXEC=... -DNP=... -DPREFLAGS=... -DPROG=... -DLIMIT_S=... -DEXPECT=<regex>
  string(TIMESTAMP t0 "%s")
  separate_arguments(pre UNIX_COMMAND "${PREFLAGS}")
  execute_process(COMMAND ${MPIEXEC} -n ${NP} ${pre} ${PROG} --filter tp_mpi/fault --jobs 1 --short-filename
                  RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err TIMEOUT ${LIMIT_S})
  string(TIMESTAMP t1 "%s")
  math(EXPR dt "${t1} - ${t0}")
  message("${out}${err}")
  if(rc MATCHES "[Tt]ime")
    message(FATAL_ERROR "FAIL: the job did not end within ${LIMIT_S} s (${rc})")
  elseif(rc EQUAL 0)
    message(FATAL_ERROR "FAIL: the job succeeded although a rank was made to fail")
  elseif(NOT "${out}${err}" MATCHES "${EXPECT}")
    message(FATAL_ERROR "FAIL: exit ${rc} after ${dt} s, but no line matches '${EXPECT}'")
  endif()
  message("PASS: every rank ended (exit ${rc}) after ${dt} s with the expected message")
  return()
endif()

if(NOT TRIT_HAVE_MPI OR NOT MPIEXEC_EXECUTABLE)
  return()
endif()

# --oversubscribe: more ranks than cores (CI has two). OpenMPI only.
set(tp_mpi_pre "")
execute_process(COMMAND ${MPIEXEC_EXECUTABLE} --version OUTPUT_VARIABLE tp_mpi_version ERROR_QUIET)
if(tp_mpi_version MATCHES "Open MPI|OpenRTE")
  set(tp_mpi_pre --oversubscribe)
endif()
set(tp_mpi_env OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 "TRIT_TEST_DATA=${CMAKE_CURRENT_SOURCE_DIR}/data")

foreach(np 2 4)
  foreach(t collectives exact_accumulators exact_logits grouped_perplexity_tiny grouped_perplexity_model public_api)
    add_test(NAME tp_mpi_${t}_np${np}
             COMMAND ${MPIEXEC_EXECUTABLE} ${MPIEXEC_NUMPROC_FLAG} ${np} ${tp_mpi_pre} ${MPIEXEC_PREFLAGS}
                     $<TARGET_FILE:test_tp_mpi> ${MPIEXEC_POSTFLAGS} --filter tp_mpi/${t} --jobs 1 --short-filename)
    set_tests_properties(tp_mpi_${t}_np${np} PROPERTIES LABELS mpi TIMEOUT 300 ENVIRONMENT "${tp_mpi_env}")
  endforeach()
endforeach()

# A rank that dies: mpirun (or, failing that, the watchdog) ends the others.
# A rank that hangs: the others' watchdog reports the collective and calls MPI_Abort after 3 s.
foreach(fault kill hang)
  if(fault STREQUAL "kill")
    set(fault_env TRIT_TP_TEST_KILL_RANK=1 TRIT_TP_TIMEOUT_MS=5000)
    set(expect "signal 9|Killed|CRASH|job to be terminated|did not complete within|MPI_ABORT")
  else()
    set(fault_env TRIT_TP_TEST_HANG_RANK=1 TRIT_TP_TIMEOUT_MS=3000)
    set(expect "did not complete within 3000 ms")
  endif()
  foreach(np 2 4)
    add_test(NAME tp_mpi_${fault}_np${np}
             COMMAND ${CMAKE_COMMAND} -DMPIEXEC=${MPIEXEC_EXECUTABLE} -DNP=${np} "-DPREFLAGS=${tp_mpi_pre} ${MPIEXEC_PREFLAGS}"
                     -DPROG=$<TARGET_FILE:test_tp_mpi> -DLIMIT_S=60 "-DEXPECT=${expect}" -P ${CMAKE_CURRENT_LIST_FILE})
    set_tests_properties(tp_mpi_${fault}_np${np} PROPERTIES LABELS mpi TIMEOUT 120 ENVIRONMENT "${tp_mpi_env};${fault_env}")
  endforeach()
endforeach()
