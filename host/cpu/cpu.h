/*
 * cpu.h: the CPU backend's op-level kernels. The *_ref functions are the scalar specification
 * (docs/design.md section 3): naive, obviously right, and the answer every SIMD and CUDA kernel must
 * reproduce bit for bit on the int32 accumulators.
 *
 * Shapes: W is (n, k) = (w->n_rows, w->n_cols); activations are (m, k) row-major; accumulators and
 * outputs are (m, n) row-major. The caller allocates every output.
 */
#ifndef TRIT_CPU_H
#define TRIT_CPU_H

#include <stdint.h>

#include "quant/quant.h"

/* ---- scalar reference ------------------------------------------------------------------------- */

/* acc[i][j] = (sum of q[i][c] over t[j][c] = +1) - (sum of q[i][c] over t[j][c] = -1), by adds and
 * subtracts only (a group-scaled matrix's t = +2 adds q[i][c] twice). q is (m, w->n_cols) int8, acc is (m, w->n_rows) int32, fully written.
 * PRECOND: w->n_cols <= 2^24, so that |acc| <= 128 * n_cols cannot overflow int32. */
void trit_gemm_ref(const struct trit_ternary *w, const int8_t *q, int64_t m, int32_t *acc);
/* trit_gemm_ref with m = 1: q is (w->n_cols), acc is (w->n_rows). */
void trit_gemv_ref(const struct trit_ternary *w, const int8_t *q, int32_t *acc);

/* y[i][j] from acc[i][j], act_scale[i] = s_i (the activation scale of token i) and the weight scale:
 *   TRIT_SCALE_MUL: y = ((float)acc / s_i) * w_scale
 *   TRIT_SCALE_DIV: y = (float)acc / (s_i * w_scale)
 * acc and y are (m, n); act_scale is (m). Each operation is one fp32 IEEE op in this order. */
void trit_epilogue_ref(const int32_t *acc, int64_t m, int64_t n, const float *act_scale, float w_scale,
                       enum trit_scale_kind kind, float *y);

/* The group rule (quant.h, docs/design.md section 3): y (m, n) for a group-scaled w, or for any w
 * whose activations are quantized per block. For each k-block j of 64 columns, ascending:
 *   isum_j = sum over the block of t * q          (int32, exact; t = +2 adds q twice)
 *   term_j = ((float)isum_j * (1.0f / s_j)) * d_j   MUL (d_j = the row's group scale of column 64 j,
 *                                                  or the matrix's scale)
 *          = (float)isum_j / (s_j * scale)        DIV (one scale only)
 *   y = ((0.0f + term_0) + term_1) + ...
 * s_j = act_scale[i * n_ab + j] with act_block = 64 (n_ab = ceil(k / 64): each block of 64
 * activations quantized on its own), act_scale[i] with act_block = 0. Each operation is one fp32
 * IEEE op in this order. (The reciprocal is taken once per token and block, so that no kernel divides
 * in its inner loop; a GPU computes 1.0f / s_j with an IEEE division too.) */
void trit_gemm_group_ref(const struct trit_ternary *w, const int8_t *q, int64_t m, const float *act_scale,
                         int64_t act_block, float *y);

/* trit_quantize_row_i8 over m token rows: x is (m, k) fp32, q is (m, k) int8, act_scale is (m). */
void trit_quantize_rows_i8(const float *x, int64_t m, int64_t k, int8_t *q, float *act_scale);

#endif /* TRIT_CPU_H */
