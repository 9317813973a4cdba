/*
 * ops_tp.cu: the row kernels that tensor parallelism adds to the CUDA forward pass (cuda/backend.cu
 * with a communicator; host/tp/tp.h has the math). One CTA of TP_THREADS per token.
 *
 * Exact mode, a sharded row (this rank's n of the row's n_full values: its attention heads, or its
 * FFN columns) before a row-parallel matmul:
 *   trit_tp_sumsq_kernel       pairs[t] = Neumaier (sum, correction) of x[t]^2 over the shard
 *     (all-gather of the pairs: 16 bytes per token and rank)
 *   trit_tp_norm_absmax_kernel x[t] = w * (x[t] * inv), inv from the combined pairs (tp_hd.h), when
 *                              there is a sub-norm; amax[t] = max |x[t]| over the shard
 *     (all-reduce max of amax: 4 bytes per token)
 *   trit_cuda_act_quantize_amax (act_quant.cu) quantizes with the global amax.
 * Grouped mode, after a row-parallel matmul's fp32 output was all-reduced:
 *   trit_tp_add_kernel         x += y (the residual add the int32 path fuses into the next norm)
 *
 * Cost: each reads its (m, n) fp32 row once; at decode (m = 1) a launch is a few microseconds of
 * latency whatever the code, and there are two of them per sharded row. Not measured: no GPU here.
 */
#include <cuda_runtime.h>
#include <stdint.h>

#include "cuda_check.h"
#include "ops_hd.h"
#include "tp_hd.h"
#include "trit_cuda_tp.h"

namespace {

constexpr int TP_THREADS = 256;
constexpr int TP_WARPS = TP_THREADS / 32;

static __global__ void __launch_bounds__(TP_THREADS)
trit_tp_sumsq_kernel(const float *__restrict__ x, int64_t n, double *__restrict__ pairs) {
    __shared__ double ss[TP_WARPS], sc[TP_WARPS];
    const float *row = x + (int64_t)blockIdx.x * n;
    double s = 0.0, c = 0.0;
    for (int64_t i = threadIdx.x; i < n; i += TP_THREADS) trit_tp_sumsq_add(&s, &c, row[i]);
    for (int o = 16; o > 0; o >>= 1) {
        const double s2 = __shfl_xor_sync(0xFFFFFFFFu, s, o), c2 = __shfl_xor_sync(0xFFFFFFFFu, c, o);
        trit_tp_pair_merge(&s, &c, s2, c2);
    }
    if ((threadIdx.x & 31) == 0) ss[threadIdx.x >> 5] = s, sc[threadIdx.x >> 5] = c;
    __syncthreads();
    if (threadIdx.x == 0) {
        s = ss[0], c = sc[0];
        for (int w = 1; w < TP_WARPS; w++) trit_tp_pair_merge(&s, &c, ss[w], sc[w]);
        pairs[2 * (int64_t)blockIdx.x] = s;
        pairs[2 * (int64_t)blockIdx.x + 1] = c;
    }
}

static __global__ void __launch_bounds__(TP_THREADS)
trit_tp_norm_absmax_kernel(float *__restrict__ x, int64_t n, int64_t n_full, const double *__restrict__ pairs_all,
                           int n_ranks, int64_t m, const float *__restrict__ w, float eps, float *__restrict__ amax) {
    __shared__ float smax[TP_WARPS];
    const int64_t t = blockIdx.x;
    float *row = x + t * n;
    float a = 0.0f;
    if (w) {
        // pairs_all is (n_ranks, m, 2): rank p's pair of token t at (p m + t) 2
        const float inv = trit_rms_inv(trit_tp_pairs_combine(pairs_all + 2 * t, n_ranks, 2 * m), n_full, eps);
        for (int64_t i = threadIdx.x; i < n; i += TP_THREADS) {
            const float y = trit_rms_apply(row[i], inv, w[i]);
            row[i] = y;
            a = fmaxf(a, fabsf(y));
        }
    } else {
        for (int64_t i = threadIdx.x; i < n; i += TP_THREADS) a = fmaxf(a, fabsf(row[i]));
    }
    for (int o = 16; o > 0; o >>= 1) a = fmaxf(a, __shfl_xor_sync(0xFFFFFFFFu, a, o));
    if ((threadIdx.x & 31) == 0) smax[threadIdx.x >> 5] = a;
    __syncthreads();
    if (threadIdx.x == 0) {
        for (int i = 1; i < TP_WARPS; i++) a = fmaxf(a, smax[i]);
        amax[t] = a;
    }
}

static __global__ void trit_tp_add_kernel(float *__restrict__ x, const float *__restrict__ y, int64_t n) {
    const int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) x[i] = TRIT_FADD(x[i], y[i]);
}

} // namespace

extern "C" enum trit_status trit_cuda_tp_sumsq(const float *d_x, int64_t m, int64_t n, double *d_pairs, void *stream) {
    if (!d_x || !d_pairs) return trit_error(TRIT_ERR_INVALID_ARG, "trit_cuda_tp_sumsq: NULL argument");
    if (m < 1 || m > INT32_MAX || n < 1)
        return trit_error(TRIT_ERR_INVALID_ARG, "trit_cuda_tp_sumsq: m %lld, n %lld", (long long)m, (long long)n);
    TRIT_CUDA_LAUNCH(trit_tp_sumsq_kernel<<<(unsigned)m, TP_THREADS, 0, (cudaStream_t)stream>>>(d_x, n, d_pairs));
    return TRIT_OK;
}

extern "C" enum trit_status trit_cuda_tp_norm_absmax(float *d_x, int64_t m, int64_t n, int64_t n_full,
                                                     const double *d_pairs_all, int n_ranks, const float *d_w,
                                                     float eps, float *d_amax, void *stream) {
    if (!d_x || !d_amax || (d_w && !d_pairs_all))
        return trit_error(TRIT_ERR_INVALID_ARG, "trit_cuda_tp_norm_absmax: NULL argument");
    if (m < 1 || m > INT32_MAX || n < 1 || n_full < n || n_ranks < 1)
        return trit_error(TRIT_ERR_INVALID_ARG, "trit_cuda_tp_norm_absmax: m %lld, n %lld of %lld, %d ranks",
                          (long long)m, (long long)n, (long long)n_full, n_ranks);
    TRIT_CUDA_LAUNCH(trit_tp_norm_absmax_kernel<<<(unsigned)m, TP_THREADS, 0, (cudaStream_t)stream>>>(
        d_x, n, n_full, d_pairs_all, n_ranks, m, d_w, eps, d_amax));
    return TRIT_OK;
}

extern "C" enum trit_status trit_cuda_tp_add(float *d_x, const float *d_y, int64_t n, void *stream) {
    if (!d_x || !d_y || n < 1) return trit_error(TRIT_ERR_INVALID_ARG, "trit_cuda_tp_add: bad argument");
    const int threads = 256;
    const int64_t blocks = (n + threads - 1) / threads;
    if (blocks > INT32_MAX) return trit_error(TRIT_ERR_INVALID_ARG, "trit_cuda_tp_add: n %lld", (long long)n);
    TRIT_CUDA_LAUNCH(trit_tp_add_kernel<<<(unsigned)blocks, threads, 0, (cudaStream_t)stream>>>(d_x, d_y, n));
    return TRIT_OK;
}
