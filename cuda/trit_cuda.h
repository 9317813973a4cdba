/*
 * trit_cuda.h: the CUDA backend's op-level entry points, callable from C (tests, benchmarks, the
 * CUDA backend). No CUDA types: device pointers are plain pointers (d_ prefix), a stream is a
 * void * holding a cudaStream_t (NULL = the legacy default stream). Every function returns a
 * trit_status and records a message with trit_error on failure (TRIT_ERR_DEVICE names the CUDA
 * statement, file and line); none synchronizes unless its name says so; all launches are async.
 *
 * Layouts are those of ternary_layout.h:
 *   weights      struct trit_cuda_ternary: the tile layout on the device (16 x 128 tiles)
 *   activations  int8 (m, trit_cuda_act_stride(k)) in the act layout, zero padded, with per-token
 *                qsum (m) int32 = sum of q and act_scale (m) fp32 = s, as trit_cuda_act_quantize
 *                writes them
 *   outputs      int32 acc (m, n) row major, equal bit for bit to trit_gemm_ref; or fp32
 *                y (m, n) = trit_epilogue_ref(acc), also bit for bit
 *
 *   trit_cuda_act_quantize   per-token absmax -> int8 (half to even), sums, scales
 *   trit_cuda_gemv_add_i32   decode GEMV, m <= 8, adds/subtracts only (no weight x activation multiply)
 *   trit_cuda_gemv_dp4a_i32  decode GEMV, m <= 8, dp4a            (+ _f32: fused fp32 epilogue)
 *   trit_cuda_gemm_mma_i32   prefill GEMM, any m, int8 tensor cores (+ _f32: fused fp32 epilogue)
 *   trit_cuda_act_quantize_blocks, trit_cuda_gemv_group_f32, trit_cuda_gemm_group_f32
 *                            the group rule (group scales, activations per 64-col block): fp32 out
 */
#ifndef TRIT_CUDA_H
#define TRIT_CUDA_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" { /* quant.h and core.h are C headers without their own guards */
#endif

#include "quant/quant.h"

/* ---- device memory (thin checked wrappers, so C callers need no CUDA headers) --------------- */

enum trit_status trit_cuda_malloc(void **d_ptr, size_t n_bytes); /* 256-byte aligned; n_bytes 0 ok */
void trit_cuda_free(void *d_ptr);                                 /* accepts NULL */
enum trit_status trit_cuda_upload(void *d_dst, const void *src, size_t n_bytes);   /* synchronous */
enum trit_status trit_cuda_download(void *dst, const void *d_src, size_t n_bytes); /* synchronous */
enum trit_status trit_cuda_memset(void *d_dst, int byte, size_t n_bytes, void *stream);
enum trit_status trit_cuda_stream_sync(void *stream);
/* Multiprocessor count of the current device (launch heuristics, benchmarks). */
enum trit_status trit_cuda_sm_count(int *n_sm);

/* ---- weights ---------------------------------------------------------------------------------- */

/* A ternary matrix resident on the device in the tile layout. Owned by the struct. */
struct trit_cuda_ternary {
    int64_t n_rows, n_cols;         /* N output features, K input features */
    int64_t n_rows_pad, n_cols_pad; /* multiples of 16 and 128 */
    void *d_tiles;                  /* trit_tl_bytes(n_rows, n_cols) bytes */
    int32_t *d_row_bias;            /* (n_rows_pad): 128 n_pos + 127 n_neg, for the add-only GEMV */
    float scale;                    /* the weight scale, and whether it multiplies or divides */
    enum trit_scale_kind scale_kind;
    int64_t group;                  /* 0: the one scale above; else columns per group scale (64, 128, ...) */
    int64_t n_groups;               /* ceil(n_cols / group), 0 without group scales */
    float *d_group_scales;          /* (n_rows, n_groups) fp32: the group rule's d (quant.h), or NULL */
};

/* Repacks w on the host and uploads it (synchronous), with its group scales when it has them.
 * out is overwritten; on failure it is left zeroed. TRIT_ERR_INVALID_ARG for a code 3 in a matrix
 * with one scale (a group-scaled one's code 3 is t = +2), TRIT_ERR_UNSUPPORTED for n_cols > 2^22. */
enum trit_status trit_cuda_ternary_upload(const struct trit_ternary *w, struct trit_cuda_ternary *out);
/* Frees the device buffers; accepts NULL and a zeroed struct. Leaves *w zeroed. */
void trit_cuda_ternary_free(struct trit_cuda_ternary *w);

/* ---- activations ------------------------------------------------------------------------------ */

/* Row stride in bytes of device int8 activations for k input features: k rounded up to 128. */
int64_t trit_cuda_act_stride(int64_t k);

/* d_x (m, k) fp32 row major -> d_q (m, trit_cuda_act_stride(k)) int8 in the act layout (padding
 * written as 0), d_qsum (m) = sum of each row of q, d_act_scale (m) = s = 127 / max(absmax, 1e-5)
 * (IEEE fp32 divide). q equals trit_quantize_row_i8 bit for bit. */
enum trit_status trit_cuda_act_quantize(const float *d_x, int64_t m, int64_t k, int8_t *d_q, int32_t *d_qsum,
                                        float *d_act_scale, void *stream);
/* The same with the absmax given per token, d_amax (m), instead of each row's own (tensor
 * parallelism: the all-reduced absmax of the whole row, host/tp/tp.h exact mode). */
enum trit_status trit_cuda_act_quantize_amax(const float *d_x, int64_t m, int64_t k, const float *d_amax,
                                             int8_t *d_q, int32_t *d_qsum, float *d_act_scale, void *stream);

/* The activations of the group rule (trit_gemm_group_ref): d_x (m, k) fp32 -> d_q (m,
 * trit_cuda_act_stride(k)) int8 in the act layout, d_bsum (m, n_kb) = the sum of q over each k-block
 * of 64 cols (n_kb = ceil(k / 64)), and the scales: act_block 64, one per token and k-block, d_act_scale
 * and d_act_inv (m, n_kb), equal bit for bit to trit_quantize_row_i8_blocks; act_block 0, one per
 * token, (m), as trit_cuda_act_quantize. d_act_inv = 1.0f / s (IEEE): the rule's inv. */
enum trit_status trit_cuda_act_quantize_blocks(const float *d_x, int64_t m, int64_t k, int64_t act_block,
                                               int8_t *d_q, int32_t *d_bsum, float *d_act_scale, float *d_act_inv,
                                               void *stream);
/* For q (m, trit_cuda_act_stride(k)) already quantized per token (trit_cuda_act_quantize, or a
 * fused norm that quantizes): d_bsum (m, n_kb) its block sums and d_act_inv (m) = 1.0f / act_scale,
 * what trit_cuda_act_quantize_blocks gives with act_block 0. */
enum trit_status trit_cuda_act_block_sums(const int8_t *d_q, int64_t m, int64_t k, const float *d_act_scale,
                                          int32_t *d_bsum, float *d_act_inv, void *stream);

/* ---- ternary matmul: acc (m, n) = q (m, k) . t (n, k)^T -------------------------------------- */

#define TRIT_CUDA_GEMV_MAX_M 8

/* Decode GEMV, add-only variant. 1 <= m <= 8. Needs no qsum (the row bias replaces it). */
enum trit_status trit_cuda_gemv_add_i32(const struct trit_cuda_ternary *w, const int8_t *d_q, int64_t m,
                                        int32_t *d_acc, void *stream);
/* Decode GEMV, dp4a variant. 1 <= m <= 8. */
enum trit_status trit_cuda_gemv_dp4a_i32(const struct trit_cuda_ternary *w, const int8_t *d_q,
                                         const int32_t *d_qsum, int64_t m, int32_t *d_acc, void *stream);
/* The dp4a GEMV with the epilogue fused: d_y (m, n) fp32 = trit_epilogue_ref of the accumulators. */
enum trit_status trit_cuda_gemv_dp4a_f32(const struct trit_cuda_ternary *w, const int8_t *d_q,
                                         const int32_t *d_qsum, const float *d_act_scale, int64_t m, float *d_y,
                                         void *stream);

/* Prefill GEMM on int8 tensor cores (sm_80+), any m >= 1. split_k: 0 picks a split from the shape
 * and the SM count; >= 1 forces it (clamped to the number of 128-col chunks). With a split > 1 the
 * partial sums meet through int32 atomics (exact, so the result is still bit for bit) after a
 * memset of d_acc on the same stream. */
enum trit_status trit_cuda_gemm_mma_i32(const struct trit_cuda_ternary *w, const int8_t *d_q,
                                        const int32_t *d_qsum, int64_t m, int split_k, int32_t *d_acc,
                                        void *stream);
/* The GEMM with the epilogue fused (no split-K: one CTA owns each output). */
enum trit_status trit_cuda_gemm_mma_f32(const struct trit_cuda_ternary *w, const int8_t *d_q,
                                        const int32_t *d_qsum, const float *d_act_scale, int64_t m, float *d_y,
                                        void *stream);

/* ---- the group rule: y (m, n) fp32 = trit_gemm_group_ref, bit for bit --------------------------- */

/* For a group-scaled w (w->group > 0) and the activations trit_cuda_act_quantize_blocks wrote with
 * act_block (0 or 64): per k-block j of 64 cols, ascending, the exact int32 sum isum_j, then
 * y += ((float)isum_j * inv_j) * d_j from 0.0f, one IEEE op each (ternary_layout.h trit_group_step).
 * The decode GEMV (1 <= m <= 8, dp4a) and the prefill GEMM (any m, int8 tensor cores, no split-K: a
 * warp owns its outputs over the whole of K, so that the order holds). */
enum trit_status trit_cuda_gemv_group_f32(const struct trit_cuda_ternary *w, const int8_t *d_q, const int32_t *d_bsum,
                                          const float *d_act_inv, int64_t act_block, int64_t m, float *d_y,
                                          void *stream);
enum trit_status trit_cuda_gemm_group_f32(const struct trit_cuda_ternary *w, const int8_t *d_q, const int32_t *d_bsum,
                                          const float *d_act_inv, int64_t act_block, int64_t m, float *d_y,
                                          void *stream);

#ifdef __cplusplus
}
#endif

#endif /* TRIT_CUDA_H */
