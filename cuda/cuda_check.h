/*
 * cuda_check.h: the one macro family through which every CUDA runtime call and every kernel
 * launch in cuda/ is checked. A failure records "file:line: statement: error name (message)" with
 * trit_error and returns (or jumps with) TRIT_ERR_DEVICE. CUDA C++ only.
 *
 *   TRIT_CUDA_CHECK(cudaMemcpyAsync(...));                 returns the status on failure
 *   TRIT_CUDA_CHECK_GOTO(cudaMalloc(&p, n), st, fail);     sets st and jumps to the cleanup label
 *   TRIT_CUDA_LAUNCH(kernel<<<grid, block, 0, s>>>(...));  launches, then checks cudaGetLastError
 */
#ifndef TRIT_CUDA_CHECK_H
#define TRIT_CUDA_CHECK_H

#include <cuda_runtime.h>

#include "trit_cuda.h" /* brings trit_error and enum trit_status with C linkage */

static inline enum trit_status trit_cuda_fail(cudaError_t e, const char *stmt, const char *file, int line) {
    return trit_error(TRIT_ERR_DEVICE, "%s:%d: %s: %s (%s)", file, line, stmt, cudaGetErrorName(e),
                      cudaGetErrorString(e));
}

/* Blackwell (sm_100 and later): ptxas there trades registers for occupancy until a kernel spills
 * (the GEMM's fp32 variants, the 8-token dp4a GEMV, the decode attention and the one-token int8
 * head did). Those kernels append this to their launch bounds, which asks for one CTA per SM at
 * least on Blackwell only: `__launch_bounds__(128 TRIT_BLACKWELL_MIN1)`. __CUDA_ARCH__ is defined in
 * the device passes only, which is where launch bounds count. */
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 1000
#define TRIT_BLACKWELL_MIN1 , 1
#else
#define TRIT_BLACKWELL_MIN1
#endif

#define TRIT_CUDA_CHECK(call)                                                                      \
    do {                                                                                           \
        const cudaError_t trit_cuda_e_ = (call);                                                   \
        if (trit_cuda_e_ != cudaSuccess) return trit_cuda_fail(trit_cuda_e_, #call, __FILE__, __LINE__); \
    } while (0)

#define TRIT_CUDA_CHECK_GOTO(call, status, label)                                                  \
    do {                                                                                           \
        const cudaError_t trit_cuda_e_ = (call);                                                   \
        if (trit_cuda_e_ != cudaSuccess) {                                                         \
            (status) = trit_cuda_fail(trit_cuda_e_, #call, __FILE__, __LINE__);                    \
            goto label;                                                                            \
        }                                                                                          \
    } while (0)

/* The launch statement itself is recorded; cudaGetLastError catches bad configurations and
 * launch failures (errors inside the kernel surface at the next synchronizing call). */
#define TRIT_CUDA_LAUNCH(...)                                                                      \
    do {                                                                                           \
        __VA_ARGS__;                                                                               \
        const cudaError_t trit_cuda_e_ = cudaGetLastError();                                       \
        if (trit_cuda_e_ != cudaSuccess) return trit_cuda_fail(trit_cuda_e_, #__VA_ARGS__, __FILE__, __LINE__); \
    } while (0)

#endif /* TRIT_CUDA_CHECK_H */
