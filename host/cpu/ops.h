/*
 * ops.h: the fp32 operations of the CPU forward pass (everything outside the ternary matmuls):
 * RMSNorm, RoPE, the gated activations, softmax, attention over the KV cache, and the dense LM
 * head. Shapes are in each comment; outputs are fully written. Each op runs the code of the active
 * kernel family's vector level (core/cpu_features.h): AVX-512, AVX2 + FMA + F16C, or portable C, so
 * one binary is right and fast everywhere and TRIT_CPU selects what runs. No pointer argument
 * needs more than its element's alignment.
 */
#ifndef TRIT_CPU_OPS_H
#define TRIT_CPU_OPS_H

#include <stdint.h>

#include "core/threadpool.h"
#include "model/model.h"

/* y[i] = w[i] * (x[i] / sqrt(mean(x^2) + eps)), over n values. y may alias x. */
void trit_rmsnorm_f32(const float *x, const float *w, int64_t n, float eps, float *y);

/* Rotates one head vector v[head_dim] at a position whose angles are cos/sin[head_dim/2]:
 *   NEOX: pairs (i, i + head_dim/2)     NORM: pairs (2i, 2i + 1). */
void trit_rope_f32(float *v, int64_t head_dim, const float *cos_t, const float *sin_t, enum trit_rope_style style);
/* cos/sin tables (n_pos, head_dim/2): angle = pos * theta^(-2i/head_dim), computed in fp32 as
 * transformers does. */
void trit_rope_table(int64_t n_pos, int64_t head_dim, float theta, float *cos_t, float *sin_t);

/* gate[i] = act(gate[i]) * up[i] over n values. ReLU^2 is exact (the same bits at every vector
 * level); SiLU's exponential is libm's expf on the portable level and within 6 ulp of the exact
 * result on AVX2 and AVX-512. */
void trit_gated_act_f32(float *gate, const float *up, int64_t n, enum trit_act act);

/* trit_quantize_row_i8 (quant.h) bit for bit, vectorized where the CPU allows:
 *   s = 127 / max(max|x|, 1e-5);  q = clamp(rint(x * s), q_min, 127), a NaN element gives 0.
 * q_min = -128 is the activation contract of docs/design.md section 3; the int8 LM head passes -127.
 * Returns s. */
float trit_quantize_row_i8_fast(const float *x, int64_t k, int q_min, int8_t *q);
/* The same over m token rows of k values (x (m, k), q (m, k), act_scale (m)), q_min = -128: a
 * drop-in for trit_quantize_rows_i8 (cpu.h), which stays the reference. */
void trit_quantize_rows_i8_fast(const float *x, int64_t m, int64_t k, int8_t *q, float *act_scale);

/* The input of a ternary matmul, for n_tok token rows of n values (x, up, y: (n_tok, n); q (n_tok, n);
 * act_scale (n_tok), or (n_tok, ceil(n / act_block)) with act_block > 0), row by row:
 *   y = act(x) * up          when up != NULL   (trit_gated_act_f32)
 *   y = rmsnorm(y) * norm_w  when norm_w != NULL (trit_rmsnorm_f32; on x when up == NULL)
 *   q, act_scale = quantize(y)                 (trit_quantize_row_i8_fast, q_min -128; each block of
 *                                               act_block values on its own when act_block > 0, as
 *                                               trit_quantize_row_i8_blocks)
 * With neither step, x is quantized as it is and y is not written. y may alias x. The rows are
 * split over the pool when n_tok > 1; one row runs on the caller. Results do not depend on the
 * thread count (each row is computed whole by one thread). */
void trit_prepare_matmul_input(struct trit_pool *pool, int64_t n_tok, int64_t n, float *x, const float *up,
                               enum trit_act act, const float *norm_w, float eps, float *y, int8_t *q,
                               int64_t act_block, float *act_scale);

/* dot(a, b) over n fp32 values. */
float trit_dot_f32(const float *a, const float *b, int64_t n);
/* y[i] += a * x[i] over n values. */
void trit_axpy_f32(float *y, float a, const float *x, int64_t n);
/* y[i] += x[i] over n values. */
void trit_add_f32(float *y, const float *x, int64_t n);

/* Causal attention of one query token over the cache, for heads [head_begin, head_end):
 *   q      (n_heads, head_dim), already rotated
 *   k, v   cache rows for positions 0..n_pos-1, each row (n_kv_heads, head_dim), row stride kv_stride
 *   out    (n_heads, head_dim); rows head_begin..head_end-1 written
 *   scores scratch of n_pos floats (used by the reference path only)
 * Query head h reads kv head h / (n_heads / n_kv_heads). Scale 1/sqrt(head_dim), n_pos >= 1.
 * trit_attention_f32 streams the cache once per KV head with an online softmax (AVX-512 when
 * head_dim % 16 == 0, AVX2 when head_dim % 8 == 0, else it runs the reference); trit_attention_f32_ref is the two-pass
 * specification. They agree to fp32 rounding. */
void trit_attention_f32(const float *q, const float *k, const float *v, int64_t n_pos, int64_t n_heads,
                        int64_t n_kv_heads, int64_t head_dim, int64_t kv_stride, float *scores, float *out,
                        int64_t head_begin, int64_t head_end);
/* The same over a paged cache (include/trit.h's KV pool): position t's K row is at
 * k + blocks[t / TRIT_KV_BLOCK] * block_stride + (t % TRIT_KV_BLOCK) * kv_stride (V likewise); blocks
 * NULL is the contiguous cache above. Bit for bit what the contiguous cache with the same rows gives. */
void trit_attention_f32_paged(const float *q, const float *k, const float *v, const int32_t *blocks,
                              int64_t block_stride, int64_t n_pos, int64_t n_heads, int64_t n_kv_heads,
                              int64_t head_dim, int64_t kv_stride, float *scores, float *out, int64_t head_begin,
                              int64_t head_end);
/* The same over positions t_begin .. n_pos - 1 only (a sliding window; 0 <= t_begin < n_pos), with the
 * scores scaled by `scale` (Gemma3: query_pre_attn_scalar^-1/2). With t_begin 0 and scale
 * 1 / sqrtf(head_dim) it is trit_attention_f32_paged bit for bit. */
void trit_attention_f32_window(const float *q, const float *k, const float *v, const int32_t *blocks,
                               int64_t block_stride, int64_t t_begin, int64_t n_pos, float scale, int64_t n_heads,
                               int64_t n_kv_heads, int64_t head_dim, int64_t kv_stride, float *scores, float *out,
                               int64_t head_begin, int64_t head_end);
void trit_attention_f32_ref(const float *q, const float *k, const float *v, int64_t n_pos, int64_t n_heads,
                            int64_t n_kv_heads, int64_t head_dim, int64_t kv_stride, float *scores, float *out,
                            int64_t head_begin, int64_t head_end);

/* Row r of a dense matrix as fp32 (n_cols values): trit_dense_row_f32 (model.h), bit for bit, with
 * the f16/bf16 widening vectorized. */
void trit_dense_row_f32_fast(const struct trit_dense *m, int64_t r, float *dst);

/* logits[r] = dot(x, row r of m) for rows [r0, r1) of a dense (n_vocab, dim) matrix. */
void trit_dense_gemv_rows(const struct trit_dense *m, const float *x, int64_t r0, int64_t r1, float *logits);
/* The LM head: logits (n_x, n_vocab; row stride ldy) = x (n_x, dim; row stride ldx) times m^T, rows split over the
 * pool. With n_x > 1 the head is read from memory once (row blocks that stay in L2 while every token
 * passes), not once per token. A token's logits are bit-identical to trit_dense_gemv_rows's and
 * independent of n_x and of the thread count. */
void trit_dense_logits(struct trit_pool *pool, const struct trit_dense *m, const float *x, int64_t n_x, int64_t ldx,
                       int64_t ldy, float *logits);

#endif /* TRIT_CPU_OPS_H */
