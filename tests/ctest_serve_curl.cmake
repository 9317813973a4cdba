# ctest_serve_curl.cmake: `trit serve` over raw HTTP with curl (tests/serve_curl.sh), one ctest
# entry, label `serve`: the exact shapes of answers, stream events and errors (400, 401, 404, 405,
# 413, 429), greedy text against `trit run`, /metrics, preemption that leaves answers unchanged, a
# client that leaves mid-answer, embeddings (trit embed's numbers as text, 400, 405, a client that
# leaves), and shutdown with requests in flight. It needs bash and curl
# (tools/setup.sh installs curl) and about 20 s, most of it synthetic:2b4t's load and tokens.
#
#   ctest --test-dir build -R serve_curl --output-on-failure

add_test(NAME serve_curl COMMAND bash ${CMAKE_CURRENT_LIST_DIR}/serve_curl.sh $<TARGET_FILE:trit> ${PROJECT_SOURCE_DIR})
set_tests_properties(serve_curl PROPERTIES LABELS serve TIMEOUT 300)
