/*
 * ops.h: the fp32 operations of the CPU forward pass (everything outside the ternary matmuls):
 * RMSNorm, RoPE, the gated activations, softmax, attention over the KV cache, and the dense LM
 * head. Shapes are in each comment; outputs are fully written. The loops are written so that
 * GCC vectorizes them, and the hot ones are compiled for AVX-512, AVX2 and baseline x86-64 with
 * runtime selection (target_clones), so one binary is right and fast everywhere.
 */
#ifndef TRIT_CPU_OPS_H
#define TRIT_CPU_OPS_H

#include <stdint.h>

#include "model/model.h"

/* y[i] = w[i] * (x[i] / sqrt(mean(x^2) + eps)), over n values. y may alias x. */
void trit_rmsnorm_f32(const float *x, const float *w, int64_t n, float eps, float *y);

/* Rotates one head vector v[head_dim] at a position whose angles are cos/sin[head_dim/2]:
 *   NEOX: pairs (i, i + head_dim/2)     NORM: pairs (2i, 2i + 1). */
void trit_rope_f32(float *v, int64_t head_dim, const float *cos_t, const float *sin_t, enum trit_rope_style style);
/* cos/sin tables (n_pos, head_dim/2): angle = pos * theta^(-2i/head_dim), computed in fp32 as
 * transformers does. */
void trit_rope_table(int64_t n_pos, int64_t head_dim, float theta, float *cos_t, float *sin_t);

/* gate[i] = act(gate[i]) * up[i] over n values. */
void trit_gated_act_f32(float *gate, const float *up, int64_t n, enum trit_act act);

/* dot(a, b) over n fp32 values. */
float trit_dot_f32(const float *a, const float *b, int64_t n);
/* y[i] += a * x[i] over n values. */
void trit_axpy_f32(float *y, float a, const float *x, int64_t n);
/* y[i] += x[i] over n values. */
void trit_add_f32(float *y, const float *x, int64_t n);

/* Causal attention of one query token over the cache, for every head:
 *   q      (n_heads, head_dim), already rotated
 *   k, v   cache rows for positions 0..n_pos-1, each row (n_kv_heads, head_dim), row stride kv_stride
 *   out    (n_heads, head_dim)
 *   scores scratch of n_pos floats
 * Query head h reads kv head h / (n_heads / n_kv_heads). Scale 1/sqrt(head_dim). */
void trit_attention_f32(const float *q, const float *k, const float *v, int64_t n_pos, int64_t n_heads,
                        int64_t n_kv_heads, int64_t head_dim, int64_t kv_stride, float *scores, float *out,
                        int64_t head_begin, int64_t head_end);

/* logits[r] = dot(x, row r of m) for rows [r0, r1) of a dense (n_vocab, dim) matrix. */
void trit_dense_gemv_rows(const struct trit_dense *m, const float *x, int64_t r0, int64_t r1, float *logits);

#endif /* TRIT_CPU_OPS_H */
