/* device.c: CUDA device discovery as seen from the C side of the library. */
#include "core/core.h"

#ifdef TRIT_HAVE_CUDA
int trit_cuda_device_count_impl(void); /* cuda/device.cu */
int trit_cuda_device_count(void) { return trit_cuda_device_count_impl(); }
int trit_cuda_compiled(void) { return 1; }
#else
int trit_cuda_device_count(void) { return 0; }
int trit_cuda_compiled(void) { return 0; }
#endif
