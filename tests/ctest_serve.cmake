# ctest_serve.cmake: the `trit serve` tests with real clients (tests/serve, pytest and the official
# openai package), one ctest entry, label `serve`:
#
#   serve         .venv/bin/python -m pytest -x -q tests/serve, with TRIT_BIN = the trit built here;
#                 the tests start their own servers on 127.0.0.1 (--port 0) and stop them
#   serve_tp_mpi  tests/serve/test_tp_mpi.py alone, `trit serve --tp-mpi` under mpirun (labels serve
#                 and mpi; added by ctest_tp.cmake in builds with MPI, which passes -DMPIEXEC)
#
#   bash tools/pyenv.sh                                    # once: .venv with the pinned packages
#   ctest --test-dir build -L serve --output-on-failure
#
# Without .venv the entry fails (never skips) and says to run tools/pyenv.sh. The entry runs this
# file again as a `cmake -P` script (the branch just below).

if(CMAKE_SCRIPT_MODE_FILE)
  set(python "${SRC}/.venv/bin/python")
  if(NOT EXISTS "${python}")
    message(FATAL_ERROR "the serve tests need ${SRC}/.venv (the openai client and pytest): run tools/pyenv.sh "
                        "(on Debian it needs the python3-venv package)")
  endif()
  if(MPIEXEC)
    set(what tests/serve/test_tp_mpi.py)
    set(env "TRIT_MPIEXEC=${MPIEXEC}" "TRIT_MPIEXEC_PREFLAGS=${MPIPRE}")
  else()
    set(what tests/serve --ignore=tests/serve/test_tp_mpi.py)
    set(env "")
  endif()
  execute_process(COMMAND "${CMAKE_COMMAND}" -E env "TRIT_BIN=${TRIT}" PYTHONDONTWRITEBYTECODE=1 ${env}
                          "${python}" -m pytest -x -q ${what}
                  WORKING_DIRECTORY "${SRC}" RESULT_VARIABLE rc)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "pytest ${what} exited ${rc}")
  endif()
  return()
endif()

add_test(NAME serve
         COMMAND ${CMAKE_COMMAND} -DTRIT=$<TARGET_FILE:trit> -DSRC=${PROJECT_SOURCE_DIR}
                 -P ${CMAKE_CURRENT_LIST_DIR}/ctest_serve.cmake)
# About 30 s on two cores (most of it the load test); the bound is for a machine under other load.
set_tests_properties(serve PROPERTIES LABELS serve TIMEOUT 300)
