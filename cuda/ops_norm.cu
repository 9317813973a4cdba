/*
 * ops_norm.cu: the row-wise kernels of the CUDA forward pass (v1), one CTA of 256 threads per
 * token. Each ends in the activation quantization the next ternary matmul needs (act layout, qsum,
 * act_scale: the arithmetic of act_quant.cu), so that a matmul's input costs no extra launch:
 *
 *   trit_embed_kernel             x = table[token] (fp16/bf16 -> fp32)
 *   trit_residual_norm_kernel     x += epilogue(acc);  y = rmsnorm(x) * w;  quantize y  (or write y)
 *   trit_ffn_act_kernel           h = act(epilogue(gate)) * epilogue(up);  [rmsnorm];  quantize h
 *   trit_attn_merge_kernel        att = merge of the split-K softmax partials;  [rmsnorm];  quantize
 *
 * Design: a thread owns the column words kw = tid, tid + 256, ... (cols 4kw .. 4kw + 3) in every
 * pass, so it re-reads only what it wrote itself; the passes meet only in the block reductions
 * (sum of squares, absmax, sum of q: warp shuffles, then the 8 warp results in a fixed order, so
 * the result does not depend on timing). Pass 1 makes the row's values (and writes them: x for the
 * residual, a scratch row otherwise) and their sum of squares; pass 2 takes absmax of the normed
 * values; pass 3 recomputes them (same IEEE ops, same bits) and stores the int8 words at their
 * act-layout positions. Float ops go through ops_hd.h (no FMA contraction), so a value computed from
 * the same inputs equals the CPU's bit for bit; only the order of the sum of squares differs.
 *
 * Napkin math: at decode (m = 1) each kernel reads and writes a few rows of <= 28672 floats from L2
 * (2B-4T: 2560 to 6912 values, 10-40 KB): one CTA, a few microseconds of latency, ~4 launches per
 * layer. At prefill (m = 512) 512 CTAs fill the GPU; the rows are re-read from L1/L2, not DRAM.
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

constexpr int ROW_THREADS = 256;
constexpr int ROW_WARPS = ROW_THREADS / 32;

struct row_smem {
    float f[ROW_WARPS];
    int32_t i[ROW_WARPS];
};

// Block reductions: the warps' results are combined in warp order by every thread. The trailing
// barrier lets the next reduction reuse the same shared memory.
__device__ __forceinline__ float block_sum_f(float v, row_smem &sm) {
    for (int o = 16; o > 0; o >>= 1) v = __fadd_rn(v, __shfl_xor_sync(0xFFFFFFFFu, v, o));
    if ((threadIdx.x & 31) == 0) sm.f[threadIdx.x >> 5] = v;
    __syncthreads();
    float r = sm.f[0];
    for (int w = 1; w < ROW_WARPS; w++) r = __fadd_rn(r, sm.f[w]);
    __syncthreads();
    return r;
}

__device__ __forceinline__ float block_max_f(float v, row_smem &sm) {
    for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xFFFFFFFFu, v, o));
    if ((threadIdx.x & 31) == 0) sm.f[threadIdx.x >> 5] = v;
    __syncthreads();
    float r = sm.f[0];
    for (int w = 1; w < ROW_WARPS; w++) r = fmaxf(r, sm.f[w]);
    __syncthreads();
    return r;
}

__device__ __forceinline__ int32_t block_sum_i(int32_t v, row_smem &sm) {
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xFFFFFFFFu, v, o);
    if ((threadIdx.x & 31) == 0) sm.i[threadIdx.x >> 5] = v;
    __syncthreads();
    int32_t r = 0;
    for (int w = 0; w < ROW_WARPS; w++) r += sm.i[w];
    __syncthreads();
    return r;
}

// The normed value of column c: src[c], or rmsnorm's w[c] * (src[c] * inv) when w is given.
struct normed {
    const float *src;
    const float *w; // NULL: no norm
    float inv;
    __device__ __forceinline__ float operator()(int64_t c) const {
        return w ? trit_rms_apply(src[c], inv, w[c]) : src[c];
    }
};

// 1 / rms of the row's values when a norm follows (sum_sq is this thread's partial sum).
__device__ __forceinline__ float row_inv(float sum_sq, int64_t n, const float *w, float eps, row_smem &sm) {
    if (!w) return 1.0f; // uniform: the whole CTA takes the same branch
    return trit_rms_inv(block_sum_f(sum_sq, sm), n, eps);
}

// Quantizes the n values v(c) of a row into q_row (k_pad bytes, act layout, padding 0), *qsum and
// *act_scale, as trit_quantize_row_i8 (absmax, s = 127 / max(absmax, 1e-5), rint half to even).
template <class V>
__device__ __forceinline__ void quant_row(const V &v, int64_t n, int64_t k_pad, int8_t *q_row, int32_t *qsum,
                                          float *act_scale, row_smem &sm) {
    float amax = 0.0f;
    for (int64_t kw = threadIdx.x; kw < k_pad / 4; kw += ROW_THREADS)
#pragma unroll
        for (int b = 0; b < 4; b++)
            if (kw * 4 + b < n) amax = fmaxf(amax, fabsf(v(kw * 4 + b)));
    amax = block_max_f(amax, sm);
    const float s = __fdiv_rn(TRIT_ACT_QMAX, fmaxf(amax, TRIT_ACT_EPS));
    uint32_t *qw = reinterpret_cast<uint32_t *>(q_row);
    int32_t sum = 0;
    for (int64_t kw = threadIdx.x; kw < k_pad / 4; kw += ROW_THREADS) {
        uint32_t word = 0;
#pragma unroll
        for (int b = 0; b < 4; b++) {
            const int64_t c = kw * 4 + b;
            const int32_t q = c < n ? trit_act_quant_one(v(c), s) : 0;
            sum += q;
            word |= ((uint32_t)q & 0xFFu) << (8 * b);
        }
        qw[trit_al_word(kw)] = word;
    }
    sum = block_sum_i(sum, sm);
    if (threadIdx.x == 0) {
        *qsum = sum;
        *act_scale = s;
    }
}

__device__ __forceinline__ float load_f16(const uint16_t *p) { return __half2float(__ushort_as_half(*p)); }
__device__ __forceinline__ float load_bf16(const uint16_t *p) { return __uint_as_float((uint32_t)*p << 16); }

// ---- embedding -------------------------------------------------------------------------------

static __global__ void __launch_bounds__(ROW_THREADS)
trit_embed_kernel(const uint16_t *__restrict__ table, int bf16, int64_t n_vocab, int64_t dim,
                  const int32_t *__restrict__ tokens, float *__restrict__ x) {
    const int64_t t = blockIdx.x;
    const int32_t id = tokens[t];
    float *xr = x + t * dim;
    if (id < 0 || id >= n_vocab) {
        for (int64_t c = threadIdx.x; c < dim; c += ROW_THREADS) xr[c] = __int_as_float(0x7FC00000); // NaN
        return;
    }
    const uint16_t *row = table + (int64_t)id * dim;
    for (int64_t c = threadIdx.x; c < dim; c += ROW_THREADS) xr[c] = bf16 ? load_bf16(row + c) : load_f16(row + c);
}

// ---- residual add + RMSNorm (+ quantization) ----------------------------------------------------

// Per token: x += epilogue(acc) when acc; y = rmsnorm(x) * w; quantized (q != NULL) or written as
// fp32 y (+ a 16-bit copy yh). The token's act_scale is read (for the epilogue) before the
// quantization overwrites it.
static __global__ void __launch_bounds__(ROW_THREADS)
trit_residual_norm_kernel(float *__restrict__ x, int64_t dim, const int32_t *__restrict__ acc, int64_t acc_stride,
                          float w_scale, int scale_div, const float *__restrict__ w, float eps, int64_t k_pad,
                          int8_t *__restrict__ q, int32_t *__restrict__ qsum, float *act_scale,
                          float *__restrict__ y, uint16_t *__restrict__ yh, int yh_bf16) {
    __shared__ row_smem sm;
    const int64_t t = blockIdx.x;
    float *xr = x + t * dim;
    const float s_in = acc ? act_scale[t] : 1.0f;
    float sum_sq = 0.0f;
    for (int64_t kw = threadIdx.x; kw * 4 < dim; kw += ROW_THREADS)
#pragma unroll
        for (int b = 0; b < 4; b++) {
            const int64_t c = kw * 4 + b;
            if (c >= dim) break;
            float v = xr[c];
            if (acc) {
                v = __fadd_rn(v, trit_epilogue_one(acc[t * acc_stride + c], s_in, w_scale, scale_div));
                xr[c] = v;
            }
            sum_sq = __fadd_rn(sum_sq, __fmul_rn(v, v));
        }
    const normed val{xr, w, row_inv(sum_sq, dim, w, eps, sm)};
    if (q) {
        quant_row(val, dim, k_pad, q + t * k_pad, qsum + t, act_scale + t, sm);
        return;
    }
    __syncthreads(); // from here a thread reads columns other threads updated
    for (int64_t c = threadIdx.x; c < dim; c += ROW_THREADS) {
        const float v = val(c);
        y[t * dim + c] = v;
        if (yh)
            yh[t * dim + c] = yh_bf16 ? __bfloat16_as_ushort(__float2bfloat16_rn(v)) : __half_as_ushort(__float2half_rn(v));
    }
}

// ---- gated FFN activation (+ sub-norm) + quantization ---------------------------------------------

static __global__ void __launch_bounds__(ROW_THREADS)
trit_ffn_act_kernel(const int32_t *__restrict__ acc, int64_t ffn_dim, float g_scale, int g_div, float u_scale,
                    int u_div, int act, const float *__restrict__ w, float eps, float *__restrict__ h, int64_t k_pad,
                    int8_t *__restrict__ q, int32_t *__restrict__ qsum, float *act_scale) {
    __shared__ row_smem sm;
    const int64_t t = blockIdx.x;
    const int32_t *ar = acc + t * 2 * ffn_dim;
    float *hr = h + t * ffn_dim;
    const float s_in = act_scale[t];
    float sum_sq = 0.0f;
    for (int64_t kw = threadIdx.x; kw * 4 < ffn_dim; kw += ROW_THREADS)
#pragma unroll
        for (int b = 0; b < 4; b++) {
            const int64_t c = kw * 4 + b;
            if (c >= ffn_dim) break;
            const float g = trit_epilogue_one(ar[c], s_in, g_scale, g_div);
            const float u = trit_epilogue_one(ar[ffn_dim + c], s_in, u_scale, u_div);
            const float v = trit_gated_one(g, u, act);
            hr[c] = v;
            sum_sq = __fadd_rn(sum_sq, __fmul_rn(v, v));
        }
    const normed val{hr, w, row_inv(sum_sq, ffn_dim, w, eps, sm)};
    quant_row(val, ffn_dim, k_pad, q + t * k_pad, qsum + t, act_scale + t, sm);
}

// ---- attention: merge of the split-K partials (+ sub-norm) + quantization -------------------------

// Dynamic shared memory: n_heads * n_parts merge weights.
static __global__ void __launch_bounds__(ROW_THREADS)
trit_attn_merge_kernel(const float *__restrict__ part_o, const float *__restrict__ part_ml, int n_parts, int64_t m,
                       int64_t n_heads, int64_t head_dim, const float *__restrict__ w, float eps,
                       float *__restrict__ att, int64_t k_pad, int8_t *__restrict__ q, int32_t *__restrict__ qsum,
                       float *act_scale) {
    extern __shared__ float mw[]; // (n_heads, n_parts)
    __shared__ row_smem sm;
    const int64_t t = blockIdx.x, q_dim = n_heads * head_dim;
    const int64_t ml_stride = 2 * m * n_heads; // from part p to part p + 1 of the same (token, head)
    for (int64_t h = threadIdx.x; h < n_heads; h += ROW_THREADS) {
        const float *ml = part_ml + (t * n_heads + h) * 2;
        trit_softmax_merge_weights(ml, ml + 1, ml_stride, n_parts, mw + h * n_parts);
    }
    __syncthreads();
    float *ar = att + t * q_dim;
    float sum_sq = 0.0f;
    for (int64_t kw = threadIdx.x; kw * 4 < q_dim; kw += ROW_THREADS)
#pragma unroll
        for (int b = 0; b < 4; b++) {
            const int64_t c = kw * 4 + b;
            if (c >= q_dim) break;
            const float *wh = mw + (c / head_dim) * n_parts;
            float v = 0.0f;
            for (int p = 0; p < n_parts; p++)
                if (wh[p] != 0.0f) v = __fadd_rn(v, __fmul_rn(wh[p], part_o[((int64_t)p * m + t) * q_dim + c]));
            ar[c] = v;
            sum_sq = __fadd_rn(sum_sq, __fmul_rn(v, v));
        }
    const normed val{ar, w, row_inv(sum_sq, q_dim, w, eps, sm)};
    quant_row(val, q_dim, k_pad, q + t * k_pad, qsum + t, act_scale + t, sm);
}

// ---- launchers ---------------------------------------------------------------------------------

// PRECOND (all): 1 <= m <= 2^31 - 1 (one CTA per token); q 4-byte aligned with m * k_pad bytes,
// k_pad = trit_tl_cols_pad(n); rows of x / acc / h / att as the op entries describe.
enum trit_status trit_embed_cuda(const uint16_t *table, int bf16, int64_t n_vocab, int64_t dim, const int32_t *tokens,
                                 int64_t m, float *x, cudaStream_t stream) {
    TRIT_CUDA_LAUNCH(trit_embed_kernel<<<(unsigned)m, ROW_THREADS, 0, stream>>>(table, bf16, n_vocab, dim, tokens, x));
    return TRIT_OK;
}

enum trit_status trit_residual_norm_cuda(float *x, int64_t m, int64_t dim, const int32_t *acc, int64_t acc_stride,
                                         trit_cuda_wscale ws, const float *w, float eps, int8_t *q, int32_t *qsum,
                                         float *act_scale, float *y, uint16_t *yh, int yh_bf16, cudaStream_t stream) {
    TRIT_CUDA_LAUNCH(trit_residual_norm_kernel<<<(unsigned)m, ROW_THREADS, 0, stream>>>(
        x, dim, acc, acc_stride, ws.scale, ws.div, w, eps, trit_tl_cols_pad(dim), q, qsum, act_scale, y, yh, yh_bf16));
    return TRIT_OK;
}

enum trit_status trit_ffn_act_cuda(const int32_t *acc, int64_t m, int64_t ffn_dim, trit_cuda_wscale g,
                                   trit_cuda_wscale u, int act, const float *w, float eps, float *h, int8_t *q,
                                   int32_t *qsum, float *act_scale, cudaStream_t stream) {
    TRIT_CUDA_LAUNCH(trit_ffn_act_kernel<<<(unsigned)m, ROW_THREADS, 0, stream>>>(
        acc, ffn_dim, g.scale, g.div, u.scale, u.div, act, w, eps, h, trit_tl_cols_pad(ffn_dim), q, qsum, act_scale));
    return TRIT_OK;
}

// PRECOND: n_heads * n_parts * 4 <= 48 KB (the default dynamic shared memory limit).
enum trit_status trit_attn_merge_cuda(const float *part_o, const float *part_ml, int n_parts, int64_t m,
                                      int64_t n_heads, int64_t head_dim, const float *w, float eps, float *att,
                                      int8_t *q, int32_t *qsum, float *act_scale, cudaStream_t stream) {
    const size_t smem = (size_t)(n_heads * n_parts) * sizeof(float);
    TRIT_CUDA_LAUNCH(trit_attn_merge_kernel<<<(unsigned)m, ROW_THREADS, smem, stream>>>(
        part_o, part_ml, n_parts, m, n_heads, head_dim, w, eps, att, trit_tl_cols_pad(n_heads * head_dim), q, qsum,
        act_scale));
    return TRIT_OK;
}

enum trit_status rows_check(const char *op, int64_t m, int64_t n) {
    if (m < 1 || m > INT32_MAX || n < 1 || n > TRIT_TL_MAX_COLS)
        return trit_error(TRIT_ERR_INVALID_ARG, "%s: bad shape m %lld n %lld", op, (long long)m, (long long)n);
    return TRIT_OK;
}

enum trit_status quant_out_check(const char *op, const int8_t *q, const int32_t *qsum, const float *act_scale) {
    if (!q || !qsum || !act_scale) return trit_error(TRIT_ERR_INVALID_ARG, "%s: NULL quantized output", op);
    if ((uintptr_t)q % 16 != 0) return trit_error(TRIT_ERR_INVALID_ARG, "%s: q must be 16-byte aligned", op);
    return TRIT_OK;
}

} // namespace

// ---- op entries ----------------------------------------------------------------------------------

extern "C" enum trit_status trit_cuda_embed(const void *d_table, int bf16, int64_t n_vocab, int64_t dim,
                                            const int32_t *d_tokens, int64_t m, float *d_x, void *stream) {
    if (!d_table || !d_tokens || !d_x) return trit_error(TRIT_ERR_INVALID_ARG, "trit_cuda_embed: NULL argument");
    TRIT_TRY(rows_check("trit_cuda_embed", m, dim));
    if (n_vocab < 1 || n_vocab > INT32_MAX)
        return trit_error(TRIT_ERR_INVALID_ARG, "trit_cuda_embed: n_vocab %lld", (long long)n_vocab);
    return trit_embed_cuda(static_cast<const uint16_t *>(d_table), bf16, n_vocab, dim, d_tokens, m, d_x,
                           (cudaStream_t)stream);
}

extern "C" enum trit_status trit_cuda_residual_norm_quant(float *d_x, int64_t m, int64_t dim, const int32_t *d_acc,
                                                          int64_t acc_stride, struct trit_cuda_wscale ws,
                                                          const float *d_norm, float eps, int8_t *d_q, int32_t *d_qsum,
                                                          float *d_act_scale, void *stream) {
    const char *op = "trit_cuda_residual_norm_quant";
    if (!d_x || !d_norm) return trit_error(TRIT_ERR_INVALID_ARG, "%s: NULL argument", op);
    TRIT_TRY(rows_check(op, m, dim));
    TRIT_TRY(quant_out_check(op, d_q, d_qsum, d_act_scale));
    if (d_acc && acc_stride < dim) return trit_error(TRIT_ERR_INVALID_ARG, "%s: acc_stride < dim", op);
    return trit_residual_norm_cuda(d_x, m, dim, d_acc, acc_stride, ws, d_norm, eps, d_q, d_qsum, d_act_scale, NULL,
                                   NULL, 0, (cudaStream_t)stream);
}

extern "C" enum trit_status trit_cuda_residual_norm_out(float *d_x, int64_t m, int64_t dim, const int32_t *d_acc,
                                                        int64_t acc_stride, struct trit_cuda_wscale ws,
                                                        const float *d_act_scale, const float *d_norm, float eps,
                                                        float *d_y, void *d_yh, int yh_bf16, void *stream) {
    const char *op = "trit_cuda_residual_norm_out";
    if (!d_x || !d_norm || !d_y || (d_acc && !d_act_scale))
        return trit_error(TRIT_ERR_INVALID_ARG, "%s: NULL argument", op);
    TRIT_TRY(rows_check(op, m, dim));
    if (d_acc && acc_stride < dim) return trit_error(TRIT_ERR_INVALID_ARG, "%s: acc_stride < dim", op);
    // act_scale is only read on this path; the kernel takes a writable pointer for the quantizing one
    return trit_residual_norm_cuda(d_x, m, dim, d_acc, acc_stride, ws, d_norm, eps, NULL, NULL,
                                   const_cast<float *>(d_act_scale), d_y, static_cast<uint16_t *>(d_yh), yh_bf16,
                                   (cudaStream_t)stream);
}

extern "C" enum trit_status trit_cuda_ffn_act_quant(const int32_t *d_acc, int64_t m, int64_t ffn_dim,
                                                    struct trit_cuda_wscale gate, struct trit_cuda_wscale up, int act,
                                                    const float *d_sub_norm, float eps, float *d_h, int8_t *d_q,
                                                    int32_t *d_qsum, float *d_act_scale, void *stream) {
    const char *op = "trit_cuda_ffn_act_quant";
    if (!d_acc || !d_h) return trit_error(TRIT_ERR_INVALID_ARG, "%s: NULL argument", op);
    TRIT_TRY(rows_check(op, m, ffn_dim));
    TRIT_TRY(quant_out_check(op, d_q, d_qsum, d_act_scale));
    if (act != 0 && act != 1) return trit_error(TRIT_ERR_INVALID_ARG, "%s: unknown activation %d", op, act);
    return trit_ffn_act_cuda(d_acc, m, ffn_dim, gate, up, act, d_sub_norm, eps, d_h, d_q, d_qsum, d_act_scale,
                             (cudaStream_t)stream);
}

extern "C" enum trit_status trit_cuda_attn_merge_quant(const float *d_part_o, const float *d_part_ml, int n_parts,
                                                       int64_t m, struct trit_cuda_attn_shape shape,
                                                       const float *d_sub_norm, float eps, float *d_att, int8_t *d_q,
                                                       int32_t *d_qsum, float *d_act_scale, void *stream) {
    const char *op = "trit_cuda_attn_merge_quant";
    if (!d_part_o || !d_part_ml || !d_att) return trit_error(TRIT_ERR_INVALID_ARG, "%s: NULL argument", op);
    if (shape.n_heads < 1 || shape.head_dim < 1)
        return trit_error(TRIT_ERR_INVALID_ARG, "%s: bad attention shape", op);
    TRIT_TRY(rows_check(op, m, shape.n_heads * shape.head_dim));
    TRIT_TRY(quant_out_check(op, d_q, d_qsum, d_act_scale));
    if (n_parts < 1 || shape.n_heads * n_parts > 12 * 1024)
        return trit_error(TRIT_ERR_INVALID_ARG, "%s: %d partials of %lld heads (at most 12288 weights)", op, n_parts,
                          (long long)shape.n_heads);
    return trit_attn_merge_cuda(d_part_o, d_part_ml, n_parts, m, shape.n_heads, shape.head_dim, d_sub_norm, eps, d_att,
                                d_q, d_qsum, d_act_scale, (cudaStream_t)stream);
}
