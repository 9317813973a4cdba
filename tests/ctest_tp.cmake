# ctest_tp.cmake: the tensor-parallel tests under mpirun (label mpi), with 2 and 4 ranks.
#
# Included by tests/CMakeLists.txt: every test of test_tp_mpi.c runs in its own mpirun (MPI can be
# initialized once per process), plus fault tests in which rank 1 dies (SIGKILL) or hangs in its
# second forward call, or stops (SIGSTOP) in MPI_Init, a communicator's creation, the forward pass or
# at exit. Those must end every rank with a clear error well before the ctest timeout, and leave no
# process behind; this file, run as a script (cmake -P), checks that:
#
#   ctest --test-dir build -L mpi --output-on-failure
#   ctest --test-dir build -R 'tp_mpi_(hang|stop)' --output-on-failure -V
#
# As root, OpenMPI needs OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 (set below).

if(CMAKE_SCRIPT_MODE_FILE)
  # -DMPIEXEC=... -DNP=... -DPREFLAGS=... -DPROG=... -DLIMIT_S=... -DEXPECT=<regex>
  # [-DFILTER=tp_mpi/fault] [-DPIDDIR=<dir>: the ranks record their pids there (tp_mpi/stop); any
  # left alive afterwards (a stopped rank mpirun did not end) is killed and fails the test]
  if(NOT FILTER)
    set(FILTER tp_mpi/fault)
  endif()
  if(PIDDIR)
    file(REMOVE_RECURSE "${PIDDIR}")
    file(MAKE_DIRECTORY "${PIDDIR}")
    set(ENV{TRIT_TP_TEST_PIDDIR} "${PIDDIR}")
  endif()
  string(TIMESTAMP t0 "%s")
  separate_arguments(pre UNIX_COMMAND "${PREFLAGS}")
  execute_process(COMMAND ${MPIEXEC} -n ${NP} ${pre} ${PROG} --filter ${FILTER} --jobs 1 --short-filename
                  RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err TIMEOUT ${LIMIT_S})
  string(TIMESTAMP t1 "%s")
  math(EXPR dt "${t1} - ${t0}")
  message("${out}${err}")
  set(left "")
  if(PIDDIR)
    # mpirun has exited; give the ranks it signalled a moment to go, then end (SIGCONT, SIGKILL)
    # whatever is still there. A zombie (state Z) is gone already.
    foreach(try RANGE 20)
      set(left "")
      file(GLOB pids RELATIVE "${PIDDIR}" "${PIDDIR}/*")
      foreach(pid IN LISTS pids)
        if(EXISTS "/proc/${pid}/stat")
          file(READ "/proc/${pid}/stat" stat)
          if(stat MATCHES "^[0-9]+ \\(test_tp_mpi\\) [^Z]")
            list(APPEND left ${pid})
          endif()
        endif()
      endforeach()
      if(NOT left)
        break()
      endif()
      execute_process(COMMAND ${CMAKE_COMMAND} -E sleep 0.1)
    endforeach()
    if(left)
      execute_process(COMMAND kill -CONT ${left} ERROR_QUIET)
      execute_process(COMMAND kill -KILL ${left} ERROR_QUIET)
    endif()
  endif()
  set(killed "")
  if(left)
    set(killed "; processes ${left} were left behind (killed now)")
  endif()
  if(rc MATCHES "[Tt]ime")
    message(FATAL_ERROR "FAIL: the job did not end within ${LIMIT_S} s (${rc})${killed}")
  elseif(rc EQUAL 0)
    message(FATAL_ERROR "FAIL: the job succeeded although a rank was made to fail")
  elseif(NOT "${out}${err}" MATCHES "${EXPECT}")
    message(FATAL_ERROR "FAIL: exit ${rc} after ${dt} s, but no line matches '${EXPECT}'")
  elseif(left)
    message(FATAL_ERROR "FAIL: exit ${rc} after ${dt} s, but${killed}")
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
  foreach(t collectives group_scaled_models_refused exact_accumulators exact_logits grouped_perplexity_tiny grouped_perplexity_model public_api batched_sequences lead_follow)
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

# A rank that stops (SIGSTOP on itself: it answers nothing but keeps its connections) at each place
# where the others wait for it: MPI_Init, a communicator's creation, a collective of the forward
# pass, and the barrier at exit before MPI_Finalize. The others end the job within the 3 s timeout;
# the bound, 3 s + 12 s, covers starting mpirun on a loaded 2-core machine. About 4 s each here.
foreach(at init setup step exit)
  if(at STREQUAL "init")
    set(expect "rank 0: MPI_Init_thread did not complete within 3000 ms")
  elseif(at STREQUAL "setup")
    set(expect "rank 0 of 2: MPI communicator creation [(]MPI_Comm_dup of MPI_COMM_WORLD[)] [(]called at [^)]*[)] did not complete within 3000 ms")
  elseif(at STREQUAL "step")
    set(expect "rank 0 of 2: MPI [a-z-]+ [^(]*[(]called at cpu/backend_cpu.c:[0-9]+[)] did not complete within 3000 ms")
  else()
    set(expect "rank 0 of 2: MPI communicator creation [(]MPI_Comm_dup of MPI_COMM_WORLD[)] at exit, before MPI_Finalize [(]called at [^)]*[)] did not complete within 3000 ms")
  endif()
  add_test(NAME tp_mpi_stop_${at}_np2
           COMMAND ${CMAKE_COMMAND} -DMPIEXEC=${MPIEXEC_EXECUTABLE} -DNP=2 "-DPREFLAGS=${tp_mpi_pre} ${MPIEXEC_PREFLAGS}"
                   -DPROG=$<TARGET_FILE:test_tp_mpi> -DFILTER=tp_mpi/stop -DLIMIT_S=15 "-DEXPECT=${expect}"
                   -DPIDDIR=${CMAKE_CURRENT_BINARY_DIR}/tp_mpi_stop_${at}.pids -P ${CMAKE_CURRENT_LIST_FILE})
  set_tests_properties(tp_mpi_stop_${at}_np2 PROPERTIES LABELS mpi TIMEOUT 40 ENVIRONMENT
                       "${tp_mpi_env};TRIT_TP_TEST_STOP_RANK=1;TRIT_TP_TEST_STOP_AT=${at};TRIT_TP_TIMEOUT_MS=3000")
endforeach()

# `trit serve --tp-mpi` with real clients (tests/serve/test_tp_mpi.py, through ctest_serve.cmake)
add_test(NAME serve_tp_mpi
         COMMAND ${CMAKE_COMMAND} -DTRIT=$<TARGET_FILE:trit> -DSRC=${PROJECT_SOURCE_DIR}
                 -DMPIEXEC=${MPIEXEC_EXECUTABLE} "-DMPIPRE=${tp_mpi_pre} ${MPIEXEC_PREFLAGS}"
                 -P ${CMAKE_CURRENT_LIST_DIR}/ctest_serve.cmake)
set_tests_properties(serve_tp_mpi PROPERTIES LABELS "serve;mpi" TIMEOUT 300
                     ENVIRONMENT "OMPI_ALLOW_RUN_AS_ROOT=1;OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1")
