# ctest_embed.cmake: `trit embed` writes a .npy that numpy reads (label python: it needs .venv's numpy,
# as ctest_python.cmake's tests do; without it the entry fails and says how to make it).
#
#   embed_npy_numpy   three texts of the shipped model: the .npy is format 1.0, '<f4', C order, its
#                     header padded to 64 bytes, shape (3, dim); every row has norm 1; the JSON lines
#                     that trit embed prints without -o hold the same floats, bit for bit; the
#                     --no-normalize rows, divided by their norm, give the normalized ones
#
#   ctest --test-dir build -R embed_npy --output-on-failure
#
# The hostile cases (an output folder or device, stdout on a full disk, empty and endless input, a text
# longer than the context) are in ctest_output.cmake, with the other commands'.

if(CMAKE_SCRIPT_MODE_FILE)
  set(python "${SRC}/.venv/bin/python")
  if(NOT EXISTS "${python}")
    message(FATAL_ERROR "embed_npy_numpy needs ${SRC}/.venv with numpy: run tools/pyenv.sh")
  endif()
  file(MAKE_DIRECTORY "${WORK}")
  file(WRITE "${WORK}/texts.txt" "In the beginning God created the heaven and the earth.\r\nAnd God said, Let there be light\nJesus wept.\n")
  foreach(step "-o;${WORK}/e.npy" "--no-normalize;-o;${WORK}/raw.npy" "")
    set(out_args)
    if(step STREQUAL "")
      set(out_args OUTPUT_FILE "${WORK}/e.jsonl")
    endif()
    execute_process(COMMAND ${EMU} "${TRIT}" embed -m "${MODEL}" -f "${WORK}/texts.txt" -t 1 ${step} ${out_args}
                    RESULT_VARIABLE rc ERROR_VARIABLE err)
    if(NOT rc EQUAL 0)
      message(FATAL_ERROR "trit embed ${step}: exit ${rc}\n${err}")
    endif()
  endforeach()
  execute_process(COMMAND "${python}" -c "
import json, sys, numpy as np
w = sys.argv[1]
raw_bytes = open(w + '/e.npy', 'rb').read()
assert raw_bytes[:8] == b'\\x93NUMPY\\x01\\x00', raw_bytes[:8]
hlen = raw_bytes[8] | raw_bytes[9] << 8
assert (10 + hlen) % 64 == 0 and raw_bytes[10 + hlen - 1:10 + hlen] == b'\\n', hlen
a = np.load(w + '/e.npy')
r = np.load(w + '/raw.npy')
assert a.dtype == np.dtype('<f4') and a.flags.c_contiguous and a.ndim == 2 and a.shape[0] == 3, (a.dtype, a.shape)
assert len(raw_bytes) == 10 + hlen + a.size * 4
n = np.linalg.norm(a.astype(np.float64), axis=1)
assert np.all(np.abs(n - 1) < 1e-5), n
lines = [json.loads(l) for l in open(w + '/e.jsonl')]
assert [l['index'] for l in lines] == [0, 1, 2]
j = np.array([l['embedding'] for l in lines], dtype=np.float32)
assert np.array_equal(j.view(np.uint32), a.view(np.uint32)), 'the JSON lines and the .npy differ'
rn = r.astype(np.float64) / np.maximum(np.linalg.norm(r.astype(np.float64), axis=1, keepdims=True), 1e-12)
assert np.array_equal(rn.astype(np.float32), a), np.abs(rn - a).max()
print('embed_npy_numpy: shape', a.shape, 'norms', n)
" "${WORK}" RESULT_VARIABLE rc)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "the numpy checks failed (exit ${rc})")
  endif()
  return()
endif()

set(embed_emu)
if(CMAKE_CROSSCOMPILING AND CMAKE_CROSSCOMPILING_EMULATOR)
  set(embed_emu ${CMAKE_CROSSCOMPILING_EMULATOR})
endif()
add_test(NAME embed_npy_numpy
         COMMAND ${CMAKE_COMMAND} -DSRC=${PROJECT_SOURCE_DIR} -DTRIT=$<TARGET_FILE:trit> "-DEMU=${embed_emu}"
                 -DMODEL=${PROJECT_SOURCE_DIR}/models/trit-kjv-4m.gguf -DWORK=${CMAKE_CURRENT_BINARY_DIR}/embed_npy
                 -P ${CMAKE_CURRENT_LIST_FILE})
set_tests_properties(embed_npy_numpy PROPERTIES LABELS python TIMEOUT 120)
