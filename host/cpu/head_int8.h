/*
 * head_int8.h: the opt-in quantized LM heads of the CPU backend: int8 (struct
 * trit_backend_config.head_int8, `--head int8`) and 4-bit (head_q4, `--head q4`). The head is never
 * ternary; it stays the model's fp16/bf16 by default, and these smaller heads are features whose
 * perplexity cost is measured (docs/perf.md). Both quantize the activations the same way and give
 * exact int32 dot products; they differ in the weights.
 *
 * Numerics of the int8 head (the scalar trit_head_i8_acc_rows_ref is the specification):
 *   weights, once at init, per row r of the (n_vocab, dim) head W:
 *     s_r = 127 / max(max_k |W[r,k]|, 1e-5);  w[r,k] = clamp(rint(W[r,k] * s_r), -127, 127)
 *   activations, per token (the final normed hidden state x, dim values):
 *     s_x = 127 / max(max_k |x[k]|, 1e-5);    q[k] = clamp(rint(x[k] * s_x), -127, 127)
 *   acc[r] = sum_k w[r,k] * q[k]   (int32, exact: every kernel gives the same bits)
 *   logit[r] = (float)acc[r] * (d_r * d_x),  d_r = 1 / s_r, d_x = 1 / s_x   (fp32, in this order)
 * The clamp at -127 (not -128) keeps both operands symmetric, which the AVX2 kernel's sign trick
 * needs (|w| <= 127 and |q| <= 127: two products fit int16 without saturation); the values never
 * reach it anyway, since |x * s_x| <= 127 up to one rounding.
 *
 * The 4-bit head (trit_head_q4_init; the scalar trit_head_i8_acc_rows_ref is its specification too):
 *   per row r, d_r = max(max_k |W[r,k]|, 1e-5) / (7 * 63); per block b of 32 columns an integer
 *   sub-scale s_b in [0, 63] and weights q[r,k] = rint(W / (d_r s_b)) in [-7, 7], W ~ d_r * s_b * q:
 *   s_b is the one of the three smallest integers with max_{k in b} |W[r,k]| / (d_r s_b) < 7.5 (so
 *   no weight clips: |W - d_r s_b q| <= d_r s_b / 2) that minimizes the block's squared error;
 *   acc[r] = sum_b s_b * sum_{k in b} q[r,k] * x_q[k]      (int32, exact: every kernel gives the same bits)
 *   logit[r] = (float)acc[r] * (d_r * d_x)                   (the int8 head's epilogue)
 * Storage per row: ceil64(dim) / 2 bytes of nibbles holding q + 8 (a 64-column chunk's 32 bytes: byte
 * j has column j in its low nibble and column 32 + j in its high one), then ceil64(dim) / 32
 * sub-scale bytes: 4.25 bits a weight (2B-4T: 174 MB, against 328 MB in int8 and 657 MB in fp16).
 *
 * Kernels: AVX-512 VNNI (vpdpbusd takes u8 x s8: it multiplies u = q + 128, stored as q ^ 0x80,
 * by w and subtracts the precomputed 128 * sum of the row's integer weights), AVX2 (int8: vpmaddubsw
 * on |w| and sign(q, w), then vpmaddwd; 4 bits: vpmaddubsw on u and the weights, vpmaddwd by the
 * sub-scale, the same correction), scalar. Rows are stored padded to a multiple of 64 columns with
 * zero weights, so a kernel reads whole vectors and the padding adds nothing. No kernel assumes
 * any alignment of the weights or of a caller's activations (unaligned loads throughout).
 *
 * Bytes per token: n_vocab * (ceil64(dim) + 8) in int8, half of fp16 (2B-4T: 328 MB instead of
 * 657 MB); n_vocab * (ceil64(dim) * 17 / 32 + 8) in 4 bits.
 */
#ifndef TRIT_CPU_HEAD_INT8_H
#define TRIT_CPU_HEAD_INT8_H

#include <stdint.h>

#include "core/core.h"
#include "core/threadpool.h"
#include "model/model.h"

enum trit_head_i8_kernel {
    TRIT_HEAD_I8_AUTO = 0,   /* the active family's (trit_cpu_isa_active; NEON runs scalar) */
    TRIT_HEAD_I8_SCALAR = 1,
    TRIT_HEAD_I8_AVX2 = 2,
    TRIT_HEAD_I8_VNNI = 3,   /* AVX-512 F/BW + VNNI */
};

#define HEAD_Q4_BLOCK 32 /* columns per sub-scale of the 4-bit head */
#define HEAD_Q4_QMAX 7   /* 4-bit weights are in [-7, 7] */
#define HEAD_Q4_SMAX 63  /* sub-scales are in [0, 63] */

struct trit_head_i8 {
    int bits;               /* 8 or 4 */
    int64_t n_rows, n_cols; /* (n_vocab, dim) */
    int64_t ld;             /* n_cols rounded up to 64: the row stride of q, and of w in columns */
    int8_t *w;              /* 8 bits: (n_rows, ld), padding columns 0; 4 bits: (n_rows, ld / 2) nibble bytes */
    uint8_t *sub;           /* 4 bits: (n_rows, ld / 32) sub-scales; NULL for 8 bits */
    float *d;               /* (n_rows) d_r: 1 / s_r (8 bits), the row scale (4 bits) */
    int32_t *wsum128;       /* (n_rows) 128 * the sum of the row's integer weights (4 bits: times s_b): the
                             * correction for kernels that offset the activations to u8 */
    int64_t max_x;          /* tokens one trit_head_i8_logits call takes */
    int8_t *q;              /* (max_x, ld) scratch: quantized activations, padding 0 */
    float *dx;              /* (max_x) scratch: d_x = 1 / s_x */
    enum trit_head_i8_kernel kernel; /* resolved, never AUTO */
};

/* Quantizes a dense (n_vocab, dim) matrix (f32, f16 or bf16) row by row into *out, using the
 * pool's threads (NULL: the caller alone), and allocates scratch for max_x tokens per call.
 * kernel AUTO picks the best one; naming one this machine cannot run is TRIT_ERR_UNSUPPORTED.
 * *out is zeroed on failure. */
enum trit_status trit_head_i8_init(const struct trit_dense *m, int64_t max_x, enum trit_head_i8_kernel kernel,
                                   struct trit_pool *pool, struct trit_head_i8 *out);
/* The 4-bit head (above), otherwise as trit_head_i8_init. */
enum trit_status trit_head_q4_init(const struct trit_dense *m, int64_t max_x, enum trit_head_i8_kernel kernel,
                                   struct trit_pool *pool, struct trit_head_i8 *out);
/* Frees and zeroes; accepts NULL and a zeroed struct. */
void trit_head_i8_free(struct trit_head_i8 *h);
/* Bytes the head streams per token (weights + per-row d and wsum128). */
int64_t trit_head_i8_bytes(const struct trit_head_i8 *h);
/* What trit_head_i8_init (bits 8) or trit_head_q4_init (bits 4) allocates for an (n_rows, n_cols)
 * matrix, max_x tokens and a pool of n_threads: *weights_bytes, the bytes above (what
 * trit_head_i8_bytes will say), and *scratch_bytes, the scratch for max_x tokens and the per-thread
 * rows that init quantizes through. */
void trit_head_i8_plan(int64_t n_rows, int64_t n_cols, int bits, int64_t max_x, int n_threads, uint64_t *weights_bytes,
                       uint64_t *scratch_bytes);
const char *trit_head_i8_kernel_name(enum trit_head_i8_kernel k);

/* logits (n_x, n_rows) = the int8 head of x (n_x, n_cols) fp32, row stride ldx, 1 <= n_x <= max_x.
 * Quantizes x into the head's scratch, then splits the rows over the pool. No allocation. */
enum trit_status trit_head_i8_logits(struct trit_pool *pool, struct trit_head_i8 *h, const float *x, int64_t n_x,
                                     int64_t ldx, float *logits);

/* ---- pieces, exported for tests and benchmarks -------------------------------------------------- */

/* q[k] for k < n (and 0 for n <= k < ld) from x[n]; returns s_x (the numerics above). */
float trit_head_i8_quantize(const float *x, int64_t n, int64_t ld, int8_t *q);
/* acc[r - r0] for rows [r0, r1) and one token q (ld bytes), with the head's kernel; exact int32. */
void trit_head_i8_acc_rows(const struct trit_head_i8 *h, const int8_t *q, int64_t r0, int64_t r1, int32_t *acc);
/* The scalar specification of trit_head_i8_acc_rows. */
void trit_head_i8_acc_rows_ref(const struct trit_head_i8 *h, const int8_t *q, int64_t r0, int64_t r1,
                               int32_t *acc);

#endif /* TRIT_CPU_HEAD_INT8_H */
