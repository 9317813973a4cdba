# ctest_cuda_resources.cmake: checks of the CUDA kernels' compiled form that need no GPU
# (docs/design.md section 7), run by cuda/check/resources.cmake. Only in CUDA builds.
#   cuda_resources_spills   every kernel of cuda/*.cu, every arch: no stack frame, no spills (the
#                           build's objects, read by cuobjdump; compiled again when it is missing)
#   cuda_resources_ptx      the GEMV/GEMM kernels load weights with ld.global.nc...v4 (16 bytes)
#   cuda_resources_sass     the same in the SASS (LDG.E.NA.128); skipped when cuobjdump is missing
#
#   ctest --test-dir build -R cuda_resources --output-on-failure
if(TRIT_HAVE_CUDA)
  find_program(TRIT_CUOBJDUMP cuobjdump HINTS ${CUDAToolkit_BIN_DIR})
  # commas: add_test would split "80;86;..." into separate arguments, and only the first
  # architecture would be checked
  string(REPLACE ";" "," trit_res_archs "${CMAKE_CUDA_ARCHITECTURES}")
  # the build's own objects (no second compile when cuobjdump reads them), commas as above
  set(trit_res_args -DNVCC=${CMAKE_CUDA_COMPILER} "-DARCHS=${trit_res_archs}"
      "-DOBJS=$<JOIN:$<TARGET_OBJECTS:trit_cuda>,,>"
      -DSRC=${PROJECT_SOURCE_DIR} -DOUT=${CMAKE_CURRENT_BINARY_DIR}/cuda_resources)
  foreach(mode spills ptx sass)
    add_test(NAME cuda_resources_${mode}
             COMMAND ${CMAKE_COMMAND} ${trit_res_args} -DMODE=${mode} -DCUOBJDUMP=${TRIT_CUOBJDUMP}
                     -P ${PROJECT_SOURCE_DIR}/cuda/check/resources.cmake)
    set_tests_properties(cuda_resources_${mode} PROPERTIES LABELS unit TIMEOUT 1800
                         SKIP_REGULAR_EXPRESSION "SKIPPED: ")
  endforeach()
endif()
