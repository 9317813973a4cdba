/*
 * act_quant.cu: per-token activation quantization on the device (v1).
 *
 *   x (m, k) fp32  ->  q (m, k_pad) int8 in the act layout (ternary_layout.h), qsum (m), s (m)
 *   s = 127 / max(max|x|, 1e-5) (IEEE divide), q = clamp(rint(x * s), -128, 127) (half to even):
 *   bit for bit the CPU's trit_quantize_row_i8, through the shared trit_act_quant_one.
 *
 * Design: one CTA of 256 threads per token. Pass 1 reduces absmax (shuffles, then shared memory);
 * pass 2 quantizes 4 consecutive cols per thread into one 32-bit word and stores it at its
 * act-layout word (a permutation inside each 128-byte chunk, so stores stay within the chunk's
 * line), and reduces sum(q) for the GEMV/GEMM bias correction. Padding words are written as 0.
 *
 * Napkin math: reads 4k bytes and writes k bytes per token; k = 2560 is 13 KB, a few microseconds
 * of latency at M = 1 whatever the code (the next step is fusing it into the previous norm).
 */
#include <cuda_runtime.h>
#include <stdint.h>

#include "cuda_check.h"
#include "ternary_layout.h"
#include "trit_cuda.h"

namespace {

constexpr int QUANT_THREADS = 256;
constexpr int QUANT_WARPS = QUANT_THREADS / 32;

__device__ __forceinline__ float block_max(float v, float *smem) {
    for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xFFFFFFFFu, v, o));
    if ((threadIdx.x & 31) == 0) smem[threadIdx.x >> 5] = v;
    __syncthreads();
    v = smem[0];
    for (int w = 1; w < QUANT_WARPS; w++) v = fmaxf(v, smem[w]);
    return v;
}

__device__ __forceinline__ int32_t block_sum(int32_t v, int32_t *smem) {
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xFFFFFFFFu, v, o);
    if ((threadIdx.x & 31) == 0) smem[threadIdx.x >> 5] = v;
    __syncthreads();
    v = 0;
    for (int w = 0; w < QUANT_WARPS; w++) v += smem[w];
    return v;
}

// amax_in: NULL = this row's absmax; else the absmax to scale by (tensor parallelism's global one).
static __global__ void __launch_bounds__(QUANT_THREADS)
trit_act_quant_kernel(const float *__restrict__ x, int64_t k, int64_t k_pad, const float *__restrict__ amax_in,
                      int8_t *__restrict__ q, int32_t *__restrict__ qsum, float *__restrict__ act_scale) {
    __shared__ float smax[QUANT_WARPS];
    __shared__ int32_t ssum[QUANT_WARPS];
    const int64_t row = blockIdx.x;
    const float *xr = x + row * k;

    float amax = 0.0f;
    if (amax_in) {
        amax = amax_in[row];
    } else {
        for (int64_t c = threadIdx.x; c < k; c += QUANT_THREADS) amax = fmaxf(amax, fabsf(xr[c]));
        amax = block_max(amax, smax);
    }
    const float s = __fdiv_rn(TRIT_ACT_QMAX, fmaxf(amax, TRIT_ACT_EPS));

    uint32_t *qr = reinterpret_cast<uint32_t *>(q + row * k_pad);
    int32_t sum = 0;
    for (int64_t kw = threadIdx.x; kw < k_pad / 4; kw += QUANT_THREADS) {
        uint32_t word = 0;
#pragma unroll
        for (int b = 0; b < 4; b++) {
            const int64_t c = kw * 4 + b;
            const int32_t v = c < k ? trit_act_quant_one(xr[c], s) : 0;
            sum += v;
            word |= ((uint32_t)v & 0xFFu) << (8 * b);
        }
        qr[trit_al_word(kw)] = word;
    }
    sum = block_sum(sum, ssum);
    if (threadIdx.x == 0) {
        qsum[row] = sum;
        act_scale[row] = s;
    }
}

// PRECOND: m >= 1; q 4-byte aligned with room for m * trit_tl_cols_pad(k) bytes; x (m, k) fp32.
enum trit_status trit_act_quant_cuda(const float *x, int64_t m, int64_t k, const float *amax, int8_t *q, int32_t *qsum,
                                     float *act_scale, cudaStream_t stream) {
    TRIT_CUDA_LAUNCH(trit_act_quant_kernel<<<(unsigned)m, QUANT_THREADS, 0, stream>>>(
        x, k, trit_tl_cols_pad(k), amax, q, qsum, act_scale));
    return TRIT_OK;
}

} // namespace

static enum trit_status act_quantize(const float *d_x, int64_t m, int64_t k, const float *d_amax, int8_t *d_q,
                                     int32_t *d_qsum, float *d_act_scale, void *stream) {
    if (!d_x || !d_q || !d_qsum || !d_act_scale)
        return trit_error(TRIT_ERR_INVALID_ARG, "trit_cuda_act_quantize: NULL pointer");
    if (m < 1 || m > INT32_MAX || k < 1 || k > TRIT_TL_MAX_COLS)
        return trit_error(TRIT_ERR_INVALID_ARG, "trit_cuda_act_quantize: bad shape m %lld k %lld", (long long)m,
                          (long long)k);
    if ((uintptr_t)d_q % 16 != 0)
        return trit_error(TRIT_ERR_INVALID_ARG, "trit_cuda_act_quantize: q must be 16-byte aligned");
    return trit_act_quant_cuda(d_x, m, k, d_amax, d_q, d_qsum, d_act_scale, (cudaStream_t)stream);
}

extern "C" enum trit_status trit_cuda_act_quantize(const float *d_x, int64_t m, int64_t k, int8_t *d_q,
                                                   int32_t *d_qsum, float *d_act_scale, void *stream) {
    return act_quantize(d_x, m, k, NULL, d_q, d_qsum, d_act_scale, stream);
}

extern "C" enum trit_status trit_cuda_act_quantize_amax(const float *d_x, int64_t m, int64_t k, const float *d_amax,
                                                        int8_t *d_q, int32_t *d_qsum, float *d_act_scale,
                                                        void *stream) {
    if (!d_amax) return trit_error(TRIT_ERR_INVALID_ARG, "trit_cuda_act_quantize_amax: NULL amax");
    return act_quantize(d_x, m, k, d_amax, d_q, d_qsum, d_act_scale, stream);
}
