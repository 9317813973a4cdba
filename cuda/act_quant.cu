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
 * The group rule's variant (trit_cuda_act_quantize_blocks): one warp per k-block of 64 cols, whose
 * 16 lanes each quantize one act-layout word; absmax and sum by shuffles; scale, inverse and sum per
 * block (act_block 64), or the per-token kernel followed by a per-block sum of q (act_block 0).
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
    const float s = trit_act_scale_of(amax);

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
        if (qsum) qsum[row] = sum;
        act_scale[row] = s;
    }
}

// ---- the group rule's activations (trit_cuda_act_quantize_blocks) ------------------------------

constexpr int BLOCK_COLS = TRIT_GROUP_UNIT; // 64: a k-block
constexpr int BLOCK_WORDS = BLOCK_COLS / 4; // 16 act-layout words, one per lane of a half warp

// One warp per k-block of 64 cols of a token (QUANT_WARPS blocks per CTA, blockIdx.y = token):
// lane l < 16 quantizes cols 64 kb + 4l .. + 3 into one act-layout word; the block's absmax and sum
// of q come from xor-shuffles over the 16 lanes. Blocks past the row's last (k_pad's padding) are
// written as zero words. Scales per block: s, and inv = 1 / s for the group rule.
static __global__ void __launch_bounds__(QUANT_THREADS)
trit_act_quant_blocks_kernel(const float *__restrict__ x, int64_t k, int64_t k_pad, int64_t n_kb,
                             int8_t *__restrict__ q, int32_t *__restrict__ bsum, float *__restrict__ act_scale,
                             float *__restrict__ act_inv) {
    const int lane = threadIdx.x & 31;
    const int64_t row = blockIdx.y, kb = (int64_t)blockIdx.x * QUANT_WARPS + (threadIdx.x >> 5);
    if (kb * BLOCK_COLS >= k_pad) return; // whole warps only
    const int64_t kw = kb * BLOCK_WORDS + (lane & 15);
    const float *xr = x + row * k;
    float v[4] = {0.0f, 0.0f, 0.0f, 0.0f};
    float amax = 0.0f;
#pragma unroll
    for (int b = 0; b < 4; b++) {
        const int64_t c = kw * 4 + b;
        if (lane < 16 && c < k) v[b] = xr[c], amax = fmaxf(amax, fabsf(v[b]));
    }
    for (int o = 8; o > 0; o >>= 1) amax = fmaxf(amax, __shfl_xor_sync(0xFFFFFFFFu, amax, o));
    const float s = trit_act_scale_of(amax);
    uint32_t word = 0;
    int32_t sum = 0;
#pragma unroll
    for (int b = 0; b < 4; b++) {
        const int32_t qv = kw * 4 + b < k ? trit_act_quant_one(v[b], s) : 0;
        sum += qv;
        word |= ((uint32_t)qv & 0xFFu) << (8 * b);
    }
    for (int o = 8; o > 0; o >>= 1) sum += __shfl_xor_sync(0xFFFFFFFFu, sum, o);
    if (lane < 16) reinterpret_cast<uint32_t *>(q + row * k_pad)[trit_al_word(kw)] = word;
    if (lane == 0 && kb < n_kb) {
        bsum[row * n_kb + kb] = sum;
        act_scale[row * n_kb + kb] = s;
        act_inv[row * n_kb + kb] = trit_group_inv(s);
    }
}

// Per-token scales (act_block 0): after trit_act_quant_kernel, the sum of q over each k-block of a
// token (one warp per block: 16 words, a byte sum by dp4a each) and the token's inv = 1 / s.
static __global__ void __launch_bounds__(QUANT_THREADS)
trit_act_block_sums_kernel(const int8_t *__restrict__ q, int64_t k_pad, int64_t n_kb, const float *__restrict__ act_scale,
                           int32_t *__restrict__ bsum, float *__restrict__ act_inv) {
    const int lane = threadIdx.x & 31;
    const int64_t row = blockIdx.y, kb = (int64_t)blockIdx.x * QUANT_WARPS + (threadIdx.x >> 5);
    if (kb >= n_kb) return; // whole warps only
    const uint32_t *qr = reinterpret_cast<const uint32_t *>(q + row * k_pad);
    int32_t sum = lane < 16 ? trit_dp4a(qr[trit_al_word(kb * BLOCK_WORDS + lane)], 0x01010101u, 0) : 0;
    for (int o = 8; o > 0; o >>= 1) sum += __shfl_xor_sync(0xFFFFFFFFu, sum, o);
    if (lane == 0) bsum[row * n_kb + kb] = sum;
    if (lane == 0 && kb == 0) act_inv[row] = trit_group_inv(act_scale[row]);
}

// PRECOND: m >= 1; q 4-byte aligned with room for m * trit_tl_cols_pad(k) bytes; x (m, k) fp32.
enum trit_status trit_act_quant_cuda(const float *x, int64_t m, int64_t k, const float *amax, int8_t *q, int32_t *qsum,
                                     float *act_scale, cudaStream_t stream) {
    TRIT_CUDA_LAUNCH(trit_act_quant_kernel<<<(unsigned)m, QUANT_THREADS, 0, stream>>>(
        x, k, trit_tl_cols_pad(k), amax, q, qsum, act_scale));
    return TRIT_OK;
}

// PRECOND: q (m, trit_tl_cols_pad(k)) in the act layout; bsum (m, n_kb); act_scale, act_inv (m).
enum trit_status trit_act_block_sums_cuda(const int8_t *q, int64_t m, int64_t k, const float *act_scale, int32_t *bsum,
                                          float *act_inv, cudaStream_t stream) {
    const int64_t n_kb = (k + BLOCK_COLS - 1) / BLOCK_COLS;
    const dim3 grid((unsigned)((n_kb + QUANT_WARPS - 1) / QUANT_WARPS), (unsigned)m);
    TRIT_CUDA_LAUNCH(trit_act_block_sums_kernel<<<grid, QUANT_THREADS, 0, stream>>>(q, trit_tl_cols_pad(k), n_kb,
                                                                                    act_scale, bsum, act_inv));
    return TRIT_OK;
}

// PRECOND: as trit_act_quant_cuda; act_block 0 or 64; bsum (m, n_kb); scales (m, n_kb) or (m).
enum trit_status trit_act_quant_blocks_cuda(const float *x, int64_t m, int64_t k, int64_t act_block, int8_t *q,
                                            int32_t *bsum, float *act_scale, float *act_inv, cudaStream_t stream) {
    const int64_t k_pad = trit_tl_cols_pad(k), n_kb = (k + BLOCK_COLS - 1) / BLOCK_COLS;
    if (act_block == 0) {
        TRIT_TRY(trit_act_quant_cuda(x, m, k, NULL, q, NULL, act_scale, stream));
        return trit_act_block_sums_cuda(q, m, k, act_scale, bsum, act_inv, stream);
    }
    const int64_t n_kb_pad = k_pad / BLOCK_COLS; // the padding blocks are zeroed too
    const dim3 grid((unsigned)((n_kb_pad + QUANT_WARPS - 1) / QUANT_WARPS), (unsigned)m);
    TRIT_CUDA_LAUNCH(trit_act_quant_blocks_kernel<<<grid, QUANT_THREADS, 0, stream>>>(x, k, k_pad, n_kb, q, bsum,
                                                                                      act_scale, act_inv));
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

extern "C" enum trit_status trit_cuda_act_quantize_blocks(const float *d_x, int64_t m, int64_t k, int64_t act_block,
                                                          int8_t *d_q, int32_t *d_bsum, float *d_act_scale,
                                                          float *d_act_inv, void *stream) {
    if (!d_x || !d_q || !d_bsum || !d_act_scale || !d_act_inv)
        return trit_error(TRIT_ERR_INVALID_ARG, "trit_cuda_act_quantize_blocks: NULL pointer");
    if (m < 1 || m > 65535 || k < 1 || k > TRIT_TL_MAX_COLS)
        return trit_error(TRIT_ERR_INVALID_ARG, "trit_cuda_act_quantize_blocks: bad shape m %lld k %lld",
                          (long long)m, (long long)k);
    if (act_block != 0 && act_block != TRIT_GROUP_UNIT)
        return trit_error(TRIT_ERR_INVALID_ARG, "trit_cuda_act_quantize_blocks: act_block %lld (0 or %d)",
                          (long long)act_block, TRIT_GROUP_UNIT);
    if ((uintptr_t)d_q % 16 != 0)
        return trit_error(TRIT_ERR_INVALID_ARG, "trit_cuda_act_quantize_blocks: q must be 16-byte aligned");
    return trit_act_quant_blocks_cuda(d_x, m, k, act_block, d_q, d_bsum, d_act_scale, d_act_inv, (cudaStream_t)stream);
}

extern "C" enum trit_status trit_cuda_act_block_sums(const int8_t *d_q, int64_t m, int64_t k, const float *d_act_scale,
                                                     int32_t *d_bsum, float *d_act_inv, void *stream) {
    if (!d_q || !d_act_scale || !d_bsum || !d_act_inv)
        return trit_error(TRIT_ERR_INVALID_ARG, "trit_cuda_act_block_sums: NULL pointer");
    if (m < 1 || m > 65535 || k < 1 || k > TRIT_TL_MAX_COLS)
        return trit_error(TRIT_ERR_INVALID_ARG, "trit_cuda_act_block_sums: bad shape m %lld k %lld", (long long)m,
                          (long long)k);
    if ((uintptr_t)d_q % 4 != 0)
        return trit_error(TRIT_ERR_INVALID_ARG, "trit_cuda_act_block_sums: q must be 4-byte aligned");
    return trit_act_block_sums_cuda(d_q, m, k, d_act_scale, d_bsum, d_act_inv, (cudaStream_t)stream);
}
