# ctest_python.cmake: the Python package's tests (tests/python, pytest and numpy), one ctest entry,
# label `python`:
#
#   python        .venv/bin/python -m pytest -q tests/python, with the package imported from python/
#                 (PYTHONPATH) and bound to this build's libtrit.so (TRIT_LIBRARY), and this build's
#                 trit (TRIT_BIN) as the reference it is compared with; about 50 s on two cores,
#                 most of it 1000 create/free cycles of the shipped model (test_memory.py)
#
#   bash tools/pyenv.sh                                    # once: .venv with the pinned packages
#   ctest --test-dir build -L python --output-on-failure
#
# Without .venv, or with a .venv that lacks numpy or pytest, the entry fails (never skips) and says
# to run tools/pyenv.sh. `pip install .` itself is checked by .ci/run, not here. The entry runs this
# file again as a `cmake -P` script (the branch just below).

if(CMAKE_SCRIPT_MODE_FILE)
  set(python "${SRC}/.venv/bin/python")
  set(hint "run tools/pyenv.sh (on Debian it needs the python3-venv package)")
  if(NOT EXISTS "${python}")
    message(FATAL_ERROR "the Python package's tests need ${SRC}/.venv (numpy and pytest): ${hint}")
  endif()
  execute_process(COMMAND "${python}" -c "import numpy, pytest" RESULT_VARIABLE rc OUTPUT_QUIET ERROR_QUIET)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "${SRC}/.venv has no numpy or pytest: ${hint}")
  endif()
  execute_process(COMMAND "${CMAKE_COMMAND}" -E env "TRIT_LIBRARY=${LIB}" "TRIT_BIN=${TRIT}" "PYTHONPATH=${SRC}/python"
                          PYTHONDONTWRITEBYTECODE=1 "${python}" -m pytest -q tests/python
                  WORKING_DIRECTORY "${SRC}" RESULT_VARIABLE rc)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "pytest tests/python exited ${rc}")
  endif()
  return()
endif()

# An instrumented libtrit (ASan, libFuzzer) cannot be loaded into an uninstrumented interpreter, and
# a cross-built one not into this machine's: those builds have no entry (the plain build runs it).
if(TRIT_SANITIZE OR TRIT_FUZZ OR CMAKE_CROSSCOMPILING)
  return()
endif()
add_test(NAME python
         COMMAND ${CMAKE_COMMAND} -DLIB=$<TARGET_FILE:tritlib> -DTRIT=$<TARGET_FILE:trit> -DSRC=${PROJECT_SOURCE_DIR}
                 -P ${CMAKE_CURRENT_LIST_DIR}/ctest_python.cmake)
# About 50 s on two cores; the bound is for a machine under other load.
set_tests_properties(python PROPERTIES LABELS python TIMEOUT 300)
