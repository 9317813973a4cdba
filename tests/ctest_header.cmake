# include/trit.h compiles as strict C11 and as C++ (the extern "C" guards), and names no CUDA type.
find_program(TRIT_CXX_FOR_HEADER_TEST NAMES g++ c++ clang++)
add_test(NAME header_c11
         COMMAND ${CMAKE_C_COMPILER} -std=c11 -pedantic-errors -Wall -Wextra -Werror -fsyntax-only
                 -x c ${PROJECT_SOURCE_DIR}/include/trit.h)
set_tests_properties(header_c11 PROPERTIES LABELS unit)
if(TRIT_CXX_FOR_HEADER_TEST)
  add_test(NAME header_cxx
           COMMAND ${TRIT_CXX_FOR_HEADER_TEST} -std=c++11 -pedantic-errors -Wall -Wextra -Werror -fsyntax-only
                   -x c++ ${PROJECT_SOURCE_DIR}/include/trit.h)
  set_tests_properties(header_cxx PROPERTIES LABELS unit)
endif()
add_test(NAME header_no_cuda_types
         COMMAND sh -c "! grep -nE 'cuda[A-Z_][A-Za-z_]*_t|cublas[A-Z]|nccl[A-Z]|__device__|__global__|#include <(cuda|cublas|nccl)' ${PROJECT_SOURCE_DIR}/include/trit.h")
set_tests_properties(header_no_cuda_types PROPERTIES LABELS unit)
