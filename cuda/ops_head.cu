/*
 * ops_head.cu: the LM head GEMV for decode (v1) and a device argmax.
 *
 *   logits (m, V) fp32 = x (m, D) fp32 . W^T,  W (V, D) fp16 or bf16, m <= 8, fp32 accumulation
 *
 * The head is the largest single stream of a decode step (2B-4T: 128256 x 2560 x 2 B = 657 MB,
 * half of all bytes per token), so this kernel only has to stream W at bandwidth: one warp per
 * vocabulary row, 16-byte no-L1-allocate loads (8 weights per lane), HEAD_UNROLL of them in flight
 * per lane before any is used (8 warps x 32 lanes x 4 x 16 B = 16 KB per CTA, ~2 CTAs per SM cover
 * the ~18 KB per SM that Little's law asks of an H100); x (m x D fp32, <= 80 KB) stays in L1/L2.
 * Keeping x in fp32 (the CPU's trit_dense_gemv_rows does the same) avoids rounding the hidden state
 * to 16 bits; the rows' weights are widened in registers. Napkin math: 657 MB at ~3.0 TB/s is
 * ~220 us per token on an H100 SXM, the floor for a bf16/fp16 head. More than 8 tokens (logits for
 * a whole prompt: perplexity) run in pieces of 8 through the same kernel, so a token's logits do not
 * depend on how many tokens share the call, on the GPU count of tensor parallelism (each rank runs
 * the same rows' arithmetic on its vocabulary slice) or on a library's algorithm choice: the head
 * stays fp32 for every row count. The cost is one pass over W per 8 tokens (2B-4T: 64 passes, about
 * 14 ms per 512-token chunk on an H100, against about 0.5 ms for an fp16 tensor-core GEMM); see
 * docs/perf.md for the measurement that decides whether a GEMM of our own is worth it.
 *
 * The int8 head (opt-in): trit_head_i8_quant_kernel quantizes each token's row (one CTA per token,
 * absmax reduced over the CTA, codes by trit_i8_code); trit_head_i8_kernel is the GEMV above on
 * int8 rows, one warp per vocabulary row, 16-byte loads of 16 weights, four dp4a per load and token,
 * exact int32 sums, then trit_head_i8_logit. Half the bytes of the fp16 head.
 *
 * trit_argmax_kernel: one CTA of 1024 threads scans the row (first index of the maximum): the
 * greedy sampler's work, for a device-side sampling path.
 */
#include <cuda_fp16.h>
#include <cuda_runtime.h>
#include <math.h>
#include <stdint.h>

#include "cuda_check.h"
#include "ops_hd.h"
#include "trit_cuda.h"
#include "trit_cuda_ops.h"

namespace {

constexpr int HEAD_WARPS = 8;
constexpr int HEAD_UNROLL = 4;

__device__ __forceinline__ uint4 ld_stream(const uint4 *p) {
    uint4 v;
    asm("ld.global.nc.L1::no_allocate.v4.u32 {%0, %1, %2, %3}, [%4];"
        : "=r"(v.x), "=r"(v.y), "=r"(v.z), "=r"(v.w)
        : "l"(p));
    return v;
}

// The two 16-bit weights of a 32-bit word as fp32 (element 2i in the low half).
template <bool BF16> __device__ __forceinline__ float2 widen2(uint32_t w) {
    if constexpr (BF16) return make_float2(__uint_as_float(w << 16), __uint_as_float(w & 0xFFFF0000u));
    return __half22float2(*reinterpret_cast<const __half2 *>(&w));
}
template <bool BF16> __device__ __forceinline__ float widen1(uint16_t w) {
    if constexpr (BF16) return __uint_as_float((uint32_t)w << 16);
    return __half2float(__ushort_as_half(w));
}

// M: tokens held in registers (1, or 8 with the rows >= m skipped). VEC: dim % 8 == 0, rows and x
// 16-byte aligned.
template <int M, bool BF16, bool VEC>
static __global__ void __launch_bounds__(HEAD_WARPS * 32)
trit_head_gemv_kernel(const uint16_t *__restrict__ w, int64_t n_vocab, int64_t dim, const float *__restrict__ x,
                      int64_t m, float *__restrict__ logits) {
    const int lane = threadIdx.x & 31;
    const int64_t row = (int64_t)blockIdx.x * HEAD_WARPS + (threadIdx.x >> 5);
    if (row >= n_vocab) return; // whole warps; no block barrier below
    const uint16_t *wr = w + row * dim;
    float acc[M];
#pragma unroll
    for (int t = 0; t < M; t++) acc[t] = 0.0f;
    if constexpr (VEC) {
        const uint4 *w8 = reinterpret_cast<const uint4 *>(wr);
        const int64_t n8 = dim / 8;
        for (int64_t c0 = lane; c0 < n8; c0 += 32 * HEAD_UNROLL) {
            uint4 wv[HEAD_UNROLL];
#pragma unroll
            for (int u = 0; u < HEAD_UNROLL; u++) {
                const int64_t c = c0 + 32 * u;
                wv[u] = c < n8 ? ld_stream(w8 + c) : make_uint4(0, 0, 0, 0);
            }
#pragma unroll
            for (int u = 0; u < HEAD_UNROLL; u++) {
                const int64_t c = c0 + 32 * u;
                if (c >= n8) break;
                const float2 a = widen2<BF16>(wv[u].x), b = widen2<BF16>(wv[u].y), e = widen2<BF16>(wv[u].z),
                             f = widen2<BF16>(wv[u].w);
#pragma unroll
                for (int t = 0; t < M; t++) {
                    if (t >= m) break;
                    const float4 *xp = reinterpret_cast<const float4 *>(x + t * dim + 8 * c);
                    const float4 x0 = __ldg(xp), x1 = __ldg(xp + 1);
                    acc[t] += a.x * x0.x + a.y * x0.y + b.x * x0.z + b.y * x0.w + e.x * x1.x + e.y * x1.y +
                              f.x * x1.z + f.y * x1.w;
                }
            }
        }
    } else {
        for (int64_t c = lane; c < dim; c += 32) {
            const float wf = widen1<BF16>(wr[c]);
#pragma unroll
            for (int t = 0; t < M; t++)
                if (t < m) acc[t] += wf * x[t * dim + c];
        }
    }
#pragma unroll
    for (int t = 0; t < M; t++) {
        float v = acc[t];
        for (int off = 16; off > 0; off >>= 1) v += __shfl_xor_sync(0xFFFFFFFFu, v, off);
        if (lane == 0 && t < m) logits[t * n_vocab + row] = v;
    }
}

template <int M, bool BF16>
enum trit_status head_launch(const uint16_t *w, int64_t n_vocab, int64_t dim, const float *x, int64_t m,
                             float *logits, bool vec, cudaStream_t stream) {
    const unsigned grid = (unsigned)((n_vocab + HEAD_WARPS - 1) / HEAD_WARPS);
    if (vec)
        TRIT_CUDA_LAUNCH(trit_head_gemv_kernel<M, BF16, true><<<grid, HEAD_WARPS * 32, 0, stream>>>(w, n_vocab, dim, x,
                                                                                                    m, logits));
    else
        TRIT_CUDA_LAUNCH(trit_head_gemv_kernel<M, BF16, false><<<grid, HEAD_WARPS * 32, 0, stream>>>(w, n_vocab, dim,
                                                                                                     x, m, logits));
    return TRIT_OK;
}

// PRECOND: m >= 1; ceil(n_vocab / 8) <= 2^31 - 1. One token (decode) takes the M = 1 kernel; more
// go in pieces of TRIT_CUDA_HEAD_MAX_M through the M = 8 kernel, the last piece too, so that a row's
// arithmetic does not depend on where the batch ends. The vector path needs dim % 8 == 0 and w, x
// 16-byte aligned (the pieces start at whole rows of x, 32 bytes apart at least).
enum trit_status trit_head_gemv_cuda(const uint16_t *w, int bf16, int64_t n_vocab, int64_t dim, const float *x,
                                     int64_t m, float *logits, cudaStream_t stream) {
    const bool vec = dim % 8 == 0 && (uintptr_t)w % 16 == 0 && (uintptr_t)x % 16 == 0;
    if (m == 1)
        return bf16 ? head_launch<1, true>(w, n_vocab, dim, x, m, logits, vec, stream)
                    : head_launch<1, false>(w, n_vocab, dim, x, m, logits, vec, stream);
    for (int64_t t0 = 0; t0 < m; t0 += TRIT_CUDA_HEAD_MAX_M) {
        const int64_t mt = m - t0 < TRIT_CUDA_HEAD_MAX_M ? m - t0 : TRIT_CUDA_HEAD_MAX_M;
        const float *xt = x + t0 * dim;
        float *lt = logits + t0 * n_vocab;
        const enum trit_status st = bf16 ? head_launch<TRIT_CUDA_HEAD_MAX_M, true>(w, n_vocab, dim, xt, mt, lt, vec, stream)
                                         : head_launch<TRIT_CUDA_HEAD_MAX_M, false>(w, n_vocab, dim, xt, mt, lt, vec, stream);
        if (st != TRIT_OK) return st;
    }
    return TRIT_OK;
}

// ---- int8 head ------------------------------------------------------------------------------------

constexpr int I8Q_THREADS = 512;

static __global__ void __launch_bounds__(I8Q_THREADS)
trit_head_i8_quant_kernel(const float *__restrict__ x, int64_t dim, int64_t ld, int8_t *__restrict__ q,
                          float *__restrict__ dx) {
    __shared__ float sm[I8Q_THREADS / 32];
    const float *xr = x + (int64_t)blockIdx.x * dim;
    int8_t *qr = q + (int64_t)blockIdx.x * ld;
    float amax = 0.0f;
    for (int64_t i = threadIdx.x; i < dim; i += I8Q_THREADS) {
        const float a = fabsf(xr[i]);
        if (a > amax) amax = a; // false for NaN, as on the CPU
    }
    for (int off = 16; off > 0; off >>= 1) {
        const float o = __shfl_xor_sync(0xFFFFFFFFu, amax, off);
        if (o > amax) amax = o;
    }
    if ((threadIdx.x & 31) == 0) sm[threadIdx.x >> 5] = amax;
    __syncthreads();
    amax = sm[0];
    for (int w = 1; w < I8Q_THREADS / 32; w++)
        if (sm[w] > amax) amax = sm[w];
    const float s = trit_i8_scale(amax);
    for (int64_t i = threadIdx.x; i < ld; i += I8Q_THREADS) qr[i] = i < dim ? trit_i8_code(xr[i], s) : (int8_t)0;
    if (threadIdx.x == 0) dx[blockIdx.x] = trit_i8_inv_scale(s);
}

template <int M>
static __global__ void __launch_bounds__(HEAD_WARPS * 32 TRIT_BLACKWELL_MIN1) // cuda_check.h
trit_head_i8_kernel(const int8_t *__restrict__ w, const float *__restrict__ d, int64_t n_vocab, int64_t ld,
                    const int8_t *__restrict__ q, const float *__restrict__ dx, int64_t m,
                    float *__restrict__ logits) {
    const int lane = threadIdx.x & 31;
    const int64_t row = (int64_t)blockIdx.x * HEAD_WARPS + (threadIdx.x >> 5);
    if (row >= n_vocab) return; // whole warps; no block barrier below
    const uint4 *w16 = reinterpret_cast<const uint4 *>(w + row * ld);
    const int64_t n16 = ld / 16;
    int acc[M];
#pragma unroll
    for (int t = 0; t < M; t++) acc[t] = 0;
    for (int64_t c0 = lane; c0 < n16; c0 += 32 * HEAD_UNROLL) {
        uint4 wv[HEAD_UNROLL];
#pragma unroll
        for (int u = 0; u < HEAD_UNROLL; u++) {
            const int64_t c = c0 + 32 * u;
            wv[u] = c < n16 ? ld_stream(w16 + c) : make_uint4(0, 0, 0, 0);
        }
        // Guards instead of breaks, so the loops unroll fully and acc[] stays in registers (a
        // break here left a stack frame and spills on sm_80).
#pragma unroll
        for (int u = 0; u < HEAD_UNROLL; u++) {
            const int64_t c = c0 + 32 * u;
#pragma unroll
            for (int t = 0; t < M; t++) {
                if (c < n16 && t < m) {
                    const uint4 qv = __ldg(reinterpret_cast<const uint4 *>(q + t * ld) + c);
                    int a = acc[t];
                    a = __dp4a((int)wv[u].x, (int)qv.x, a);
                    a = __dp4a((int)wv[u].y, (int)qv.y, a);
                    a = __dp4a((int)wv[u].z, (int)qv.z, a);
                    a = __dp4a((int)wv[u].w, (int)qv.w, a);
                    acc[t] = a;
                }
            }
        }
    }
    const float dr = d[row];
#pragma unroll
    for (int t = 0; t < M; t++) {
        int v = acc[t];
#pragma unroll
        for (int off = 16; off > 0; off >>= 1) v += __shfl_xor_sync(0xFFFFFFFFu, v, off);
        if (lane == 0 && t < m) logits[t * n_vocab + row] = trit_head_i8_logit(v, dr, dx[t]);
    }
}

// PRECOND: shapes checked by trit_cuda_head_i8.
enum trit_status trit_head_i8_cuda(const int8_t *w, const float *d, int64_t n_vocab, int64_t dim, int64_t ld,
                                   const float *x, int64_t m, int8_t *q, float *dx, float *logits,
                                   cudaStream_t stream) {
    TRIT_CUDA_LAUNCH(trit_head_i8_quant_kernel<<<(unsigned)m, I8Q_THREADS, 0, stream>>>(x, dim, ld, q, dx));
    const unsigned grid = (unsigned)((n_vocab + HEAD_WARPS - 1) / HEAD_WARPS);
    for (int64_t t0 = 0; t0 < m; t0 += TRIT_CUDA_HEAD_MAX_M) {
        const int64_t mt = m - t0 < TRIT_CUDA_HEAD_MAX_M ? m - t0 : TRIT_CUDA_HEAD_MAX_M;
        if (mt == 1)
            TRIT_CUDA_LAUNCH(trit_head_i8_kernel<1><<<grid, HEAD_WARPS * 32, 0, stream>>>(
                w, d, n_vocab, ld, q + t0 * ld, dx + t0, mt, logits + t0 * n_vocab));
        else
            TRIT_CUDA_LAUNCH(trit_head_i8_kernel<TRIT_CUDA_HEAD_MAX_M><<<grid, HEAD_WARPS * 32, 0, stream>>>(
                w, d, n_vocab, ld, q + t0 * ld, dx + t0, mt, logits + t0 * n_vocab));
    }
    return TRIT_OK;
}

// ---- argmax ------------------------------------------------------------------------------------

constexpr int ARGMAX_THREADS = 1024;

// (v, i) beats (bv, bi) when larger, or equal with a smaller index; a NaN never beats anything.
__device__ __forceinline__ bool argmax_better(float v, int32_t i, float bv, int32_t bi) {
    return v > bv || (v == bv && i < bi);
}

static __global__ void __launch_bounds__(ARGMAX_THREADS)
trit_argmax_kernel(const float *__restrict__ x, int64_t n, int32_t *__restrict__ out) {
    __shared__ float sv[ARGMAX_THREADS / 32];
    __shared__ int32_t si[ARGMAX_THREADS / 32];
    float bv = -INFINITY;
    int32_t bi = INT32_MAX; // no candidate yet
    for (int64_t i = threadIdx.x; i < n; i += ARGMAX_THREADS)
        if (argmax_better(x[i], (int32_t)i, bv, bi)) bv = x[i], bi = (int32_t)i;
    for (int off = 16; off > 0; off >>= 1) {
        const float v = __shfl_xor_sync(0xFFFFFFFFu, bv, off);
        const int32_t i = __shfl_xor_sync(0xFFFFFFFFu, bi, off);
        if (argmax_better(v, i, bv, bi)) bv = v, bi = i;
    }
    if ((threadIdx.x & 31) == 0) sv[threadIdx.x >> 5] = bv, si[threadIdx.x >> 5] = bi;
    __syncthreads();
    if (threadIdx.x == 0) {
        for (int w = 1; w < ARGMAX_THREADS / 32; w++)
            if (argmax_better(sv[w], si[w], bv, bi)) bv = sv[w], bi = si[w];
        *out = bi == INT32_MAX ? -1 : bi;
    }
}

// PRECOND: 1 <= n <= INT32_MAX.
enum trit_status trit_argmax_cuda(const float *x, int64_t n, int32_t *out, cudaStream_t stream) {
    TRIT_CUDA_LAUNCH(trit_argmax_kernel<<<1, ARGMAX_THREADS, 0, stream>>>(x, n, out));
    return TRIT_OK;
}

} // namespace

extern "C" enum trit_status trit_cuda_head_gemv(const void *d_w, int bf16, int64_t n_vocab, int64_t dim,
                                                const float *d_x, int64_t m, float *d_logits, void *stream) {
    if (!d_w || !d_x || !d_logits) return trit_error(TRIT_ERR_INVALID_ARG, "trit_cuda_head_gemv: NULL argument");
    if (m < 1 || m > 65535 || n_vocab < 1 || n_vocab > INT32_MAX || dim < 1)
        return trit_error(TRIT_ERR_INVALID_ARG, "trit_cuda_head_gemv: m %lld (1..65535), vocab %lld, dim %lld",
                          (long long)m, (long long)n_vocab, (long long)dim);
    return trit_head_gemv_cuda(static_cast<const uint16_t *>(d_w), bf16, n_vocab, dim, d_x, m, d_logits,
                               (cudaStream_t)stream);
}

extern "C" enum trit_status trit_cuda_argmax(const float *d_x, int64_t n, int32_t *d_index, void *stream) {
    if (!d_x || !d_index) return trit_error(TRIT_ERR_INVALID_ARG, "trit_cuda_argmax: NULL argument");
    if (n < 1 || n > INT32_MAX) return trit_error(TRIT_ERR_INVALID_ARG, "trit_cuda_argmax: n = %lld", (long long)n);
    return trit_argmax_cuda(d_x, n, d_index, (cudaStream_t)stream);
}

extern "C" enum trit_status trit_cuda_head_i8(const int8_t *d_w, const float *d_d, int64_t n_vocab, int64_t dim,
                                              int64_t ld, const float *d_x, int64_t m, int8_t *d_q, float *d_dx,
                                              float *d_logits, void *stream) {
    if (!d_w || !d_d || !d_x || !d_q || !d_dx || !d_logits)
        return trit_error(TRIT_ERR_INVALID_ARG, "trit_cuda_head_i8: NULL argument");
    if (m < 1 || m > 65535 || n_vocab < 1 || n_vocab > INT32_MAX || dim < 1 || dim > TRIT_CUDA_ROW_MAX || ld < dim ||
        ld % 16 != 0 || (uintptr_t)d_w % 16 != 0 || (uintptr_t)d_q % 16 != 0)
        return trit_error(TRIT_ERR_INVALID_ARG, "trit_cuda_head_i8: m %lld, vocab %lld, dim %lld, ld %lld (a multiple "
                          "of 16, >= dim; 16-byte aligned rows)", (long long)m, (long long)n_vocab, (long long)dim,
                          (long long)ld);
    return trit_head_i8_cuda(d_w, d_d, n_vocab, dim, ld, d_x, m, d_q, d_dx, d_logits, (cudaStream_t)stream);
}
