# ctest_tokenize_json.cmake: `trit tokenize` output read back by Python's strict JSON parser
# (tests/tokenize_json_check.py says what it checks): --pieces is valid JSON in valid UTF-8 for
# byte tokens, split characters and control characters, and gives back the text's bytes; --jsonl
# tokenizes "\u0000" as the byte 0; stdout on /dev/full stops the command with exit 1.
#
#   ctest --test-dir build -R '^tool_tokenize_json' --output-on-failure
#
# Without python3 at configure time the test is reported as skipped, not left out.

find_program(TRIT_PYTHON3 python3)
if(TRIT_PYTHON3 AND NOT CMAKE_CROSSCOMPILING)
  add_test(NAME tool_tokenize_json
    COMMAND ${TRIT_PYTHON3} ${CMAKE_CURRENT_LIST_DIR}/tokenize_json_check.py $<TARGET_FILE:trit>
            ${CMAKE_CURRENT_LIST_DIR}/data ${PROJECT_SOURCE_DIR}/models/trit-kjv-4m.gguf)
else()
  add_test(NAME tool_tokenize_json COMMAND ${CMAKE_COMMAND} -E echo "SKIPPED: needs python3 on the build machine")
  set_tests_properties(tool_tokenize_json PROPERTIES SKIP_REGULAR_EXPRESSION "SKIPPED: needs python3")
endif()
set_tests_properties(tool_tokenize_json PROPERTIES LABELS unit TIMEOUT 300)
