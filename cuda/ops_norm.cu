/*
 * ops_norm.cu: the row-wise kernels of the CUDA forward pass (v2), one CTA per token. Each ends in
 * the activation quantization the next ternary matmul needs (act layout, qsum, act_scale: the
 * arithmetic of act_quant.cu), so that a matmul's input costs no extra launch:
 *
 *   trit_embed_kernel          x = table[token] (fp16/bf16 -> fp32), one element per thread
 *   trit_residual_norm_kernel  x += epilogue(acc);  y = [rmsnorm(x) * w];  quantize y  (or write y)
 *   trit_ffn_act_kernel        h = act(epilogue(gate)) * epilogue(up);  [rmsnorm];  quantize h
 *   trit_head_rmsnorm_kernel   each head of q or k (fp32, in place) = rmsnorm(head) * w  (Qwen3)
 *
 * Design: a row of n <= TRIT_CUDA_ROW_MAX values lives in registers. The CTA has T threads (a
 * multiple of 32, up to 512, about 2 column words per thread); thread t owns the column words
 * kw = t + T i (i < ROW_WORDS, cols 4kw .. 4kw + 3), reads them once (pass 1: values, sum of
 * squares), normalizes them in place, takes the absmax and writes the int8 words at their
 * act-layout positions. The CTA meets only in three block reductions (sum of squares, absmax,
 * sum of q: warp shuffles, then the warps' results in warp order, so the result does not depend
 * on timing). Float ops go through ops_hd.h (no FMA contraction), so a value computed from the
 * same inputs equals the CPU's bit for bit; only the order of the sum of squares differs.
 *
 * v1 (one 256-thread CTA that re-read the row from L2 in each of three passes) cost ~3 L2 round
 * trips per word per thread: ~10 us for a 6912-wide row at m = 1. Napkin math for v2 at decode:
 * one L2 round trip for the inputs (~1 us), three barriers, one store; 2B-4T's rows of 2560 and
 * 6912 values take 320 and 512 threads. At prefill (m = 512) the CTAs fill every SM. Resources:
 * <= 128 registers (512 threads), no spills, on sm_80 .. sm_90.
 */
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>
#include <stdint.h>

#include "cuda_check.h"
#include "ops_hd.h"
#include "ternary_layout.h"
#include "trit_cuda.h"
#include "trit_cuda_ops.h"

namespace {

constexpr int ROW_MAX_THREADS = 512; // 128 registers per thread: a row of 64 values stays in registers
constexpr int ROW_WORDS = TRIT_CUDA_ROW_MAX / 4 / ROW_MAX_THREADS; // column words per thread, at most
static_assert(ROW_WORDS * 4 * ROW_MAX_THREADS == TRIT_CUDA_ROW_MAX, "a row fits one CTA's registers");

// Threads for a row of n values: ~2 words each, a multiple of 32, 64 .. 512. PRECOND: n <= ROW_MAX.
int row_threads(int64_t n) {
    const int64_t words = trit_tl_cols_pad(n) / 4;
    int64_t t = ((words + 1) / 2 + 31) / 32 * 32;
    if (t < 64) t = 64;
    return (int)(t > ROW_MAX_THREADS ? ROW_MAX_THREADS : t);
}

struct row_smem {
    float f[32];
    int32_t i[32];
};

// Block reductions over blockDim.x / 32 warps, combined in warp order; the trailing barrier lets the
// next reduction reuse the shared memory. Op: a commutative operation on T.
template <class T, class Op> __device__ __forceinline__ T block_reduce(T v, Op op, T *sm) {
    for (int o = 16; o > 0; o >>= 1) v = op(v, __shfl_xor_sync(0xFFFFFFFFu, v, o));
    if ((threadIdx.x & 31) == 0) sm[threadIdx.x >> 5] = v;
    __syncthreads();
    T r = sm[0];
    for (int w = 1; w < (int)(blockDim.x >> 5); w++) r = op(r, sm[w]);
    __syncthreads();
    return r;
}
struct op_add_f {
    __device__ __forceinline__ float operator()(float a, float b) const { return __fadd_rn(a, b); }
};
struct op_max_f {
    __device__ __forceinline__ float operator()(float a, float b) const { return fmaxf(a, b); }
};
struct op_add_i {
    __device__ __forceinline__ int32_t operator()(int32_t a, int32_t b) const { return a + b; }
};

// This thread's share of a row: v[i][b] is column 4 (tid + T i) + b (0 past the row's end).
// Columns fit int: n <= TRIT_CUDA_ROW_MAX (32-bit index math: fewer registers).
struct row_regs {
    float v[ROW_WORDS][4];
    __device__ __forceinline__ static int col(int i, int b) { return 4 * ((int)threadIdx.x + (int)blockDim.x * i) + b; }
};

// v = rmsnorm(v) * w in place when w is given (sum_sq: this thread's partial sum of squares).
__device__ __forceinline__ void row_norm(row_regs &r, int n, const float *__restrict__ w, float eps, float sum_sq,
                                         row_smem &sm) {
    if (!w) return; // uniform: the whole CTA takes the same branch
    const float inv = trit_rms_inv(block_reduce(sum_sq, op_add_f{}, sm.f), n, eps);
#pragma unroll
    for (int i = 0; i < ROW_WORDS; i++)
#pragma unroll
        for (int b = 0; b < 4; b++) {
            const int c = row_regs::col(i, b);
            if (c < n) r.v[i][b] = trit_rms_apply(r.v[i][b], inv, w[c]);
        }
}

// Quantizes the row into q_row (k_pad bytes, act layout, padding 0), *qsum and *act_scale, as
// trit_quantize_row_i8: absmax, s = 127 / max(absmax, 1e-5), q = rint(v s) half to even.
__device__ __forceinline__ void row_quant(const row_regs &r, int n, int8_t *q_row, int32_t *qsum, float *act_scale,
                                          row_smem &sm) {
    float amax = 0.0f;
#pragma unroll
    for (int i = 0; i < ROW_WORDS; i++)
#pragma unroll
        for (int b = 0; b < 4; b++)
            if (row_regs::col(i, b) < n) amax = fmaxf(amax, fabsf(r.v[i][b]));
    amax = block_reduce(amax, op_max_f{}, sm.f);
    const float s = __fdiv_rn(TRIT_ACT_QMAX, fmaxf(amax, TRIT_ACT_EPS));
    const int n_words = (n + 127) / 128 * 32; // trit_tl_cols_pad(n) / 4
    uint32_t *qw = reinterpret_cast<uint32_t *>(q_row);
    int32_t sum = 0;
#pragma unroll
    for (int i = 0; i < ROW_WORDS; i++) {
        const int kw = (int)threadIdx.x + (int)blockDim.x * i;
        if (kw >= n_words) break;
        uint32_t word = 0;
#pragma unroll
        for (int b = 0; b < 4; b++) {
            const int32_t q = 4 * kw + b < n ? trit_act_quant_one(r.v[i][b], s) : 0;
            sum += q;
            word |= ((uint32_t)q & 0xFFu) << (8 * b);
        }
        qw[trit_al_word(kw)] = word;
    }
    sum = block_reduce(sum, op_add_i{}, sm.i);
    if (threadIdx.x == 0) {
        *qsum = sum;
        *act_scale = s;
    }
}

__device__ __forceinline__ float load_f16(const uint16_t *p) { return __half2float(__ushort_as_half(*p)); }
__device__ __forceinline__ float load_bf16(const uint16_t *p) { return __uint_as_float((uint32_t)*p << 16); }

// ---- embedding: grid (ceil(dim / 256), m) ------------------------------------------------------------

constexpr int EMBED_THREADS = 256;

static __global__ void __launch_bounds__(EMBED_THREADS)
trit_embed_kernel(const uint16_t *__restrict__ table, int bf16, int64_t n_vocab, int64_t dim,
                  const int32_t *__restrict__ tokens, float *__restrict__ x) {
    const int64_t t = blockIdx.y, c = (int64_t)blockIdx.x * EMBED_THREADS + threadIdx.x;
    if (c >= dim) return;
    const int32_t id = tokens[t];
    if (id < 0 || id >= n_vocab) {
        x[t * dim + c] = __int_as_float(0x7FC00000); // NaN: the backend checks ids on the host first
        return;
    }
    const uint16_t *p = table + (int64_t)id * dim + c;
    x[t * dim + c] = bf16 ? load_bf16(p) : load_f16(p);
}

// ---- residual add + RMSNorm (+ quantization) --------------------------------------------------------

// Per token: x += epilogue(acc) when acc; y = rmsnorm(x) * w (when w); quantized (q != NULL) or
// written as fp32 y (+ a 16-bit copy yh). act_scale[t] is read (for the epilogue) before the
// quantization overwrites it: the write comes after two block barriers. With rows (the y path only),
// CTA i reads token rows[i] and writes output row i (a batch's wanted rows, in any order).
// F32: acc holds fp32 values (TRIT_EPI_F32), added as they are; a template, so that the int32 path
// stays as it was (this kernel sits at its 128-register cap).
template <bool F32>
static __global__ void __launch_bounds__(ROW_MAX_THREADS)
trit_residual_norm_kernel(float *__restrict__ x, int dim, const int32_t *__restrict__ acc, int64_t acc_stride,
                          float w_scale, int scale_div, const float *__restrict__ w, float eps, int8_t *__restrict__ q,
                          int32_t *__restrict__ qsum, float *act_scale, float *__restrict__ y,
                          uint16_t *__restrict__ yh, int yh_bf16, const int32_t *__restrict__ rows) {
    __shared__ row_smem sm;
    const int64_t t_out = blockIdx.x, t = rows ? (int64_t)rows[t_out] : t_out;
    float *xr = x + t * dim;
    const int32_t *ar = acc ? acc + t * acc_stride : NULL;
    const float s_in = acc ? act_scale[t] : 1.0f;
    row_regs r;
    float sum_sq = 0.0f;
#pragma unroll
    for (int i = 0; i < ROW_WORDS; i++)
#pragma unroll
        for (int b = 0; b < 4; b++) {
            const int c = row_regs::col(i, b);
            float v = 0.0f;
            if (c < dim) {
                v = xr[c];
                if (acc) {
                    v = __fadd_rn(v, F32 ? trit_f32_bits(ar[c]) : trit_epilogue_one(ar[c], s_in, w_scale, scale_div));
                    xr[c] = v;
                }
            }
            r.v[i][b] = v;
            sum_sq = __fadd_rn(sum_sq, __fmul_rn(v, v));
        }
    row_norm(r, dim, w, eps, sum_sq, sm);
    if (q) {
        row_quant(r, dim, q + t * trit_tl_cols_pad(dim), qsum + t, act_scale + t, sm);
        return;
    }
#pragma unroll
    for (int i = 0; i < ROW_WORDS; i++)
#pragma unroll
        for (int b = 0; b < 4; b++) {
            const int c = row_regs::col(i, b);
            if (c >= dim) continue;
            const float v = r.v[i][b];
            y[t_out * dim + c] = v;
            if (yh)
                yh[t_out * dim + c] = yh_bf16 ? __bfloat16_as_ushort(__float2bfloat16_rn(v)) : __half_as_ushort(__float2half_rn(v));
        }
}

// ---- gated FFN activation (+ sub-norm) + quantization ------------------------------------------------

static __global__ void __launch_bounds__(ROW_MAX_THREADS)
trit_ffn_act_kernel(const int32_t *__restrict__ acc, int ffn_dim, float g_scale, int g_div, float u_scale,
                    int u_div, int act, const float *__restrict__ w, float eps, float *__restrict__ h,
                    int8_t *__restrict__ q, int32_t *__restrict__ qsum, float *act_scale) {
    __shared__ row_smem sm;
    const int64_t t = blockIdx.x;
    const int32_t *ar = acc + t * 2 * ffn_dim;
    float *hr = h + t * ffn_dim;
    const float s_in = act_scale[t];
    row_regs r;
    float sum_sq = 0.0f;
#pragma unroll
    for (int i = 0; i < ROW_WORDS; i++)
#pragma unroll
        for (int b = 0; b < 4; b++) {
            const int c = row_regs::col(i, b);
            float v = 0.0f;
            if (c < ffn_dim) {
                const float g = trit_pending_one(ar[c], s_in, g_scale, g_div);
                const float u = trit_pending_one(ar[ffn_dim + c], s_in, u_scale, u_div);
                v = trit_gated_one(g, u, act);
                hr[c] = v; // before the norm (tests read it)
            }
            r.v[i][b] = v;
            sum_sq = __fadd_rn(sum_sq, __fmul_rn(v, v));
        }
    if (!q) return; // h only (tensor parallelism's exact mode normalizes it over every rank)
    row_norm(r, ffn_dim, w, eps, sum_sq, sm);
    row_quant(r, ffn_dim, q + t * trit_tl_cols_pad(ffn_dim), qsum + t, act_scale + t, sm);
}

// ---- per-head RMSNorm in place (q and k norms) -----------------------------------------------------------

constexpr int HEAD_NORM_WARPS = 8;
constexpr int HEAD_NORM_PER_LANE = TRIT_CUDA_ATT_MAX_HEAD_DIM / 32;

// Warp w of CTA (bx, t) normalizes head 8 bx + w of row t: lane l holds elements l, l + 32, ...; the
// sum of squares is reduced by xor-shuffles.
static __global__ void __launch_bounds__(HEAD_NORM_WARPS * 32)
trit_head_rmsnorm_kernel(float *__restrict__ x, int64_t stride, int64_t col0, int64_t n_heads, int head_dim,
                         const float *__restrict__ w, float eps) {
    const int lane = threadIdx.x & 31;
    const int64_t head = (int64_t)blockIdx.x * HEAD_NORM_WARPS + (threadIdx.x >> 5), t = blockIdx.y;
    if (head >= n_heads) return; // whole warps only
    float *h = x + t * stride + col0 + head * head_dim;
    float v[HEAD_NORM_PER_LANE];
    float sum_sq = 0.0f;
#pragma unroll
    for (int i = 0; i < HEAD_NORM_PER_LANE; i++) {
        const int e = lane + 32 * i;
        v[i] = e < head_dim ? h[e] : 0.0f;
        sum_sq = __fadd_rn(sum_sq, __fmul_rn(v[i], v[i]));
    }
    for (int o = 16; o > 0; o >>= 1) sum_sq = __fadd_rn(sum_sq, __shfl_xor_sync(0xFFFFFFFFu, sum_sq, o));
    const float inv = trit_rms_inv(sum_sq, head_dim, eps);
#pragma unroll
    for (int i = 0; i < HEAD_NORM_PER_LANE; i++) {
        const int e = lane + 32 * i;
        if (e < head_dim) h[e] = trit_rms_apply(v[i], inv, w[e]);
    }
}

// ---- launchers -----------------------------------------------------------------------------------------

// PRECOND: 1 <= m <= 65535; x (m, dim), tokens (m).
enum trit_status trit_embed_cuda(const uint16_t *table, int bf16, int64_t n_vocab, int64_t dim, const int32_t *tokens,
                                 int64_t m, float *x, cudaStream_t stream) {
    const dim3 grid((unsigned)((dim + EMBED_THREADS - 1) / EMBED_THREADS), (unsigned)m);
    TRIT_CUDA_LAUNCH(trit_embed_kernel<<<grid, EMBED_THREADS, 0, stream>>>(table, bf16, n_vocab, dim, tokens, x));
    return TRIT_OK;
}

// PRECOND (both): 1 <= m <= 2^31 - 1 (one CTA per token); n <= TRIT_CUDA_ROW_MAX; q 4-byte aligned
// with m * trit_tl_cols_pad(n) bytes; rows of x / acc / h as the op entries describe.
enum trit_status trit_residual_norm_cuda(float *x, int64_t m, int64_t dim, const int32_t *acc, int64_t acc_stride,
                                         trit_cuda_wscale ws, const float *w, float eps, int8_t *q, int32_t *qsum,
                                         float *act_scale, float *y, uint16_t *yh, int yh_bf16, const int32_t *rows,
                                         cudaStream_t stream) {
    if (ws.div == TRIT_EPI_F32)
        TRIT_CUDA_LAUNCH(trit_residual_norm_kernel<true><<<(unsigned)m, row_threads(dim), 0, stream>>>(
            x, (int)dim, acc, acc_stride, ws.scale, ws.div, w, eps, q, qsum, act_scale, y, yh, yh_bf16, rows));
    else
        TRIT_CUDA_LAUNCH(trit_residual_norm_kernel<false><<<(unsigned)m, row_threads(dim), 0, stream>>>(
            x, (int)dim, acc, acc_stride, ws.scale, ws.div, w, eps, q, qsum, act_scale, y, yh, yh_bf16, rows));
    return TRIT_OK;
}

enum trit_status trit_ffn_act_cuda(const int32_t *acc, int64_t m, int64_t ffn_dim, trit_cuda_wscale g,
                                   trit_cuda_wscale u, int act, const float *w, float eps, float *h, int8_t *q,
                                   int32_t *qsum, float *act_scale, cudaStream_t stream) {
    TRIT_CUDA_LAUNCH(trit_ffn_act_kernel<<<(unsigned)m, row_threads(ffn_dim), 0, stream>>>(
        acc, (int)ffn_dim, g.scale, g.div, u.scale, u.div, act, w, eps, h, q, qsum, act_scale));
    return TRIT_OK;
}

enum trit_status rows_check(const char *op, int64_t m, int64_t n) {
    if (m < 1 || m > INT32_MAX || n < 1)
        return trit_error(TRIT_ERR_INVALID_ARG, "%s: bad shape m %lld n %lld", op, (long long)m, (long long)n);
    if (n > TRIT_CUDA_ROW_MAX)
        return trit_error(TRIT_ERR_UNSUPPORTED, "%s: rows of %lld values (the kernels hold up to %d in registers)", op,
                          (long long)n, TRIT_CUDA_ROW_MAX);
    return TRIT_OK;
}

enum trit_status quant_out_check(const char *op, const int8_t *q, const int32_t *qsum, const float *act_scale) {
    if (!q || !qsum || !act_scale) return trit_error(TRIT_ERR_INVALID_ARG, "%s: NULL quantized output", op);
    if ((uintptr_t)q % 16 != 0) return trit_error(TRIT_ERR_INVALID_ARG, "%s: q must be 16-byte aligned", op);
    return TRIT_OK;
}

} // namespace

// ---- op entries ------------------------------------------------------------------------------------------

extern "C" enum trit_status trit_cuda_embed(const void *d_table, int bf16, int64_t n_vocab, int64_t dim,
                                            const int32_t *d_tokens, int64_t m, float *d_x, void *stream) {
    if (!d_table || !d_tokens || !d_x) return trit_error(TRIT_ERR_INVALID_ARG, "trit_cuda_embed: NULL argument");
    if (m < 1 || m > 65535 || dim < 1 || n_vocab < 1 || n_vocab > INT32_MAX)
        return trit_error(TRIT_ERR_INVALID_ARG, "trit_cuda_embed: m %lld (1..65535), dim %lld, vocab %lld", (long long)m,
                          (long long)dim, (long long)n_vocab);
    return trit_embed_cuda(static_cast<const uint16_t *>(d_table), bf16, n_vocab, dim, d_tokens, m, d_x,
                           (cudaStream_t)stream);
}

extern "C" enum trit_status trit_cuda_residual_norm_quant(float *d_x, int64_t m, int64_t dim, const int32_t *d_acc,
                                                          int64_t acc_stride, struct trit_cuda_wscale ws,
                                                          const float *d_norm, float eps, int8_t *d_q, int32_t *d_qsum,
                                                          float *d_act_scale, void *stream) {
    const char *op = "trit_cuda_residual_norm_quant";
    if (!d_x) return trit_error(TRIT_ERR_INVALID_ARG, "%s: NULL x", op);
    TRIT_TRY(rows_check(op, m, dim));
    TRIT_TRY(quant_out_check(op, d_q, d_qsum, d_act_scale));
    if (d_acc && acc_stride < dim) return trit_error(TRIT_ERR_INVALID_ARG, "%s: acc_stride < dim", op);
    return trit_residual_norm_cuda(d_x, m, dim, d_acc, acc_stride, ws, d_norm, eps, d_q, d_qsum, d_act_scale, NULL,
                                   NULL, 0, NULL, (cudaStream_t)stream);
}

// The final norm's two entries: every row (d_rows NULL), or the rows d_rows names.
static enum trit_status residual_norm_out(const char *op, float *d_x, int64_t m, int64_t dim, const int32_t *d_rows,
                                          const int32_t *d_acc, int64_t acc_stride, struct trit_cuda_wscale ws,
                                          const float *d_act_scale, const float *d_norm, float eps, float *d_y,
                                          void *d_yh, int yh_bf16, void *stream) {
    if (!d_x || !d_norm || !d_y || (d_acc && !d_act_scale))
        return trit_error(TRIT_ERR_INVALID_ARG, "%s: NULL argument", op);
    TRIT_TRY(rows_check(op, m, dim));
    if (d_acc && acc_stride < dim) return trit_error(TRIT_ERR_INVALID_ARG, "%s: acc_stride < dim", op);
    // act_scale is only read on this path; the kernel takes a writable pointer for the quantizing one
    return trit_residual_norm_cuda(d_x, m, dim, d_acc, acc_stride, ws, d_norm, eps, NULL, NULL,
                                   const_cast<float *>(d_act_scale), d_y, static_cast<uint16_t *>(d_yh), yh_bf16,
                                   d_rows, (cudaStream_t)stream);
}

extern "C" enum trit_status trit_cuda_residual_norm_out(float *d_x, int64_t m, int64_t dim, const int32_t *d_acc,
                                                        int64_t acc_stride, struct trit_cuda_wscale ws,
                                                        const float *d_act_scale, const float *d_norm, float eps,
                                                        float *d_y, void *d_yh, int yh_bf16, void *stream) {
    return residual_norm_out("trit_cuda_residual_norm_out", d_x, m, dim, NULL, d_acc, acc_stride, ws, d_act_scale,
                             d_norm, eps, d_y, d_yh, yh_bf16, stream);
}

extern "C" enum trit_status trit_cuda_residual_norm_out_rows(float *d_x, int64_t m, int64_t dim, const int32_t *d_rows,
                                                             const int32_t *d_acc, int64_t acc_stride,
                                                             struct trit_cuda_wscale ws, const float *d_act_scale,
                                                             const float *d_norm, float eps, float *d_y, void *d_yh,
                                                             int yh_bf16, void *stream) {
    if (!d_rows) return trit_error(TRIT_ERR_INVALID_ARG, "trit_cuda_residual_norm_out_rows: NULL rows");
    return residual_norm_out("trit_cuda_residual_norm_out_rows", d_x, m, dim, d_rows, d_acc, acc_stride, ws,
                             d_act_scale, d_norm, eps, d_y, d_yh, yh_bf16, stream);
}

extern "C" enum trit_status trit_cuda_ffn_act_quant(const int32_t *d_acc, int64_t m, int64_t ffn_dim,
                                                    struct trit_cuda_wscale gate, struct trit_cuda_wscale up, int act,
                                                    const float *d_sub_norm, float eps, float *d_h, int8_t *d_q,
                                                    int32_t *d_qsum, float *d_act_scale, void *stream) {
    const char *op = "trit_cuda_ffn_act_quant";
    if (!d_acc || !d_h) return trit_error(TRIT_ERR_INVALID_ARG, "%s: NULL argument", op);
    TRIT_TRY(rows_check(op, m, ffn_dim));
    if (d_q || d_sub_norm) TRIT_TRY(quant_out_check(op, d_q, d_qsum, d_act_scale));
    else if (!d_act_scale) return trit_error(TRIT_ERR_INVALID_ARG, "%s: NULL act_scale", op);
    if (act != 0 && act != 1) return trit_error(TRIT_ERR_INVALID_ARG, "%s: unknown activation %d", op, act);
    return trit_ffn_act_cuda(d_acc, m, ffn_dim, gate, up, act, d_sub_norm, eps, d_h, d_q, d_qsum, d_act_scale,
                             (cudaStream_t)stream);
}

extern "C" enum trit_status trit_cuda_head_rmsnorm(float *d_x, int64_t m, int64_t stride, int64_t col0, int64_t n_heads,
                                                   int64_t head_dim, const float *d_w, float eps, void *stream) {
    const char *op = "trit_cuda_head_rmsnorm";
    if (!d_x || !d_w) return trit_error(TRIT_ERR_INVALID_ARG, "%s: NULL argument", op);
    if (m < 1 || m > 65535 || n_heads < 1 || head_dim < 1 || head_dim > TRIT_CUDA_ATT_MAX_HEAD_DIM || col0 < 0 ||
        col0 + n_heads * head_dim > stride)
        return trit_error(TRIT_ERR_INVALID_ARG, "%s: m %lld, %lld heads of %lld from column %lld in rows of %lld", op,
                          (long long)m, (long long)n_heads, (long long)head_dim, (long long)col0, (long long)stride);
    const dim3 grid((unsigned)((n_heads + HEAD_NORM_WARPS - 1) / HEAD_NORM_WARPS), (unsigned)m);
    TRIT_CUDA_LAUNCH(trit_head_rmsnorm_kernel<<<grid, HEAD_NORM_WARPS * 32, 0, (cudaStream_t)stream>>>(
        d_x, stride, col0, n_heads, (int)head_dim, d_w, eps));
    return TRIT_OK;
}
