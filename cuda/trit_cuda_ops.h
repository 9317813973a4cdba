/*
 * trit_cuda_ops.h: op-level entry points of the CUDA backend's non-ternary kernels (cuda/ops_*.cu),
 * callable from C (the backend, tests, benchmarks). Conventions of trit_cuda.h: no CUDA types, d_
 * pointers are device memory, a stream is a void * holding a cudaStream_t, every function returns a
 * trit_status, checks its shapes, launches asynchronously and never synchronizes.
 *
 * Shapes (m tokens; D = dim, Hq = n_heads * head_dim, Hkv = n_kv_heads * head_dim, F = ffn_dim):
 *   residual x        (m, D) fp32
 *   int32 accumulators of a ternary matmul (m, n) (trit_cuda_gemv_dp4a_i32 / trit_cuda_gemm_mma_i32),
 *                     turned into fp32 here with trit_epilogue_one and that matrix's scale
 *   quantized output  q (m, trit_cuda_act_stride(k)) int8 in the act layout, qsum (m), act_scale (m),
 *                     exactly as trit_cuda_act_quantize writes them
 *   KV cache          one layer: (rows, Hkv) fp16 for K and for V; row = position (the entries
 *                     without a map), or the paged pool (n_kv_blocks, TRIT_CUDA_KV_BLOCK, Hkv) read
 *                     through block tables (struct trit_cuda_kv_map, the *_paged entries)
 *   attention output  att (m, Hq) fp32, softmax-weighted V rows per query head
 *
 * Where an op reads act_scale (to finish the previous matmul) and writes it (its own quantized
 * output), each token's CTA reads its value before writing the new one: one buffer serves both.
 */
#ifndef TRIT_CUDA_OPS_H
#define TRIT_CUDA_OPS_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#include "core/core.h"

/* A ternary matrix's scale, as its int32 accumulators' consumer applies it. div 2 (TRIT_EPI_F32,
 * ternary_layout.h): the buffer holds fp32 values already scaled, the group rule's outputs
 * (trit_cuda_gemv_group_f32 / trit_cuda_gemm_group_f32 writing into it), taken as they are. */
struct trit_cuda_wscale {
    float scale;
    int div; /* 1 for TRIT_SCALE_DIV; 2 for fp32 values */
};

/* The largest GQA group (query heads per KV head), head_dim and decode split count the attention
 * kernels take. */
#define TRIT_CUDA_ATT_MAX_GROUP 8
#define TRIT_CUDA_ATT_MAX_HEAD_DIM 256
#define TRIT_CUDA_ATT_MAX_SPLITS 64
/* The longest row the row kernels (norms, FFN activation) hold in registers: 16 words of 4 values
 * per thread x 512 threads. Every supported shape fits (Llama-3-70B's ffn_dim is 28672). */
#define TRIT_CUDA_ROW_MAX 32768
/* The most tokens the LM-head GEMV takes in one call. */
#define TRIT_CUDA_HEAD_MAX_M 8

/* x (m, dim) fp32 = rows tokens[i] of the (n_vocab, dim) fp16 (bf16 = 0) or bf16 table. A token
 * outside [0, n_vocab) gives a row of NaN (the backend checks ids on the host first). */
enum trit_status trit_cuda_embed(const void *d_table, int bf16, int64_t n_vocab, int64_t dim, const int32_t *d_tokens,
                                 int64_t m, float *d_x, void *stream);

/* Per token: if d_acc, x += epilogue(acc (m, acc_stride), act_scale, ws) (a residual add; the first
 * `dim` columns of acc); then y = rmsnorm(x) * norm (eps), or y = x when d_norm is NULL; then y is
 * quantized to q, qsum, act_scale. dim <= TRIT_CUDA_ROW_MAX. */
enum trit_status trit_cuda_residual_norm_quant(float *d_x, int64_t m, int64_t dim, const int32_t *d_acc,
                                               int64_t acc_stride, struct trit_cuda_wscale ws, const float *d_norm,
                                               float eps, int8_t *d_q, int32_t *d_qsum, float *d_act_scale,
                                               void *stream);

/* The final norm: as trit_cuda_residual_norm_quant, but y (m, dim) fp32 is written to d_y and, when
 * d_yh is not NULL, also rounded to fp16 (yh_bf16 = 0) or bf16 in d_yh (m, dim) (the cuBLAS head's
 * input). act_scale is only read (for the residual add). */
enum trit_status trit_cuda_residual_norm_out(float *d_x, int64_t m, int64_t dim, const int32_t *d_acc,
                                             int64_t acc_stride, struct trit_cuda_wscale ws, const float *d_act_scale,
                                             const float *d_norm, float eps, float *d_y, void *d_yh, int yh_bf16,
                                             void *stream);

/* trit_cuda_residual_norm_out of the rows d_rows[0..m) of x (and of acc and act_scale), which must be
 * distinct: output row i (d_y, d_yh) is input row d_rows[i] (device memory). */
enum trit_status trit_cuda_residual_norm_out_rows(float *d_x, int64_t m, int64_t dim, const int32_t *d_rows,
                                                  const int32_t *d_acc, int64_t acc_stride, struct trit_cuda_wscale ws,
                                                  const float *d_act_scale, const float *d_norm, float eps, float *d_y,
                                                  void *d_yh, int yh_bf16, void *stream);

/* The gated FFN after gate|up: acc (m, 2F) holds gate in columns [0, F) and up in [F, 2F);
 * h = act(epilogue(gate)) * epilogue(up) (act 0 = relu^2, 1 = silu, enum trit_act), then
 * h = rmsnorm(h) * sub_norm when d_sub_norm, then h is quantized. d_h (m, F) fp32 receives h before
 * the norm (for tests). F <= TRIT_CUDA_ROW_MAX. With d_q NULL (and d_sub_norm, d_qsum NULL) only
 * d_h is written: act_scale is still read, for the epilogue. */
enum trit_status trit_cuda_ffn_act_quant(const int32_t *d_acc, int64_t m, int64_t ffn_dim,
                                         struct trit_cuda_wscale gate, struct trit_cuda_wscale up, int act,
                                         const float *d_sub_norm, float eps, float *d_h, int8_t *d_q,
                                         int32_t *d_qsum, float *d_act_scale, void *stream);

/* Per-head RMSNorm in place (Qwen3's q and k norms, before RoPE): in each of m rows of d_x (row
 * stride `stride` floats), the n_heads heads of head_dim values from column col0 become
 * rmsnorm(head) * d_w (head_dim weights), with trit_rms_inv / trit_rms_apply (ops_hd.h). One warp
 * per (token, head). head_dim <= TRIT_CUDA_ATT_MAX_HEAD_DIM. */
enum trit_status trit_cuda_head_rmsnorm(float *d_x, int64_t m, int64_t stride, int64_t col0, int64_t n_heads,
                                        int64_t head_dim, const float *d_w, float eps, void *stream);

/* The attention geometry shared by the ops below. */
struct trit_cuda_attn_shape {
    int64_t n_heads, n_kv_heads, head_dim;
    int64_t n_ctx; /* rows of the KV cache */
};

/* After q|k|v: acc (m, Hq + 2 Hkv) holds q, k, v in that column order, with scales ws[0..2].
 * Token t sits at position pos = *d_pos0 + t. q (m, Hq) fp32 = rope(epilogue(q)); the cache rows
 * pos of d_k_cache and d_v_cache (fp16) = rope(epilogue(k)) and epilogue(v). rope_style as enum
 * trit_rope_style; d_cos, d_sin (n_ctx, head_dim / 2) as trit_rope_table writes them.
 * PRECOND: *d_pos0 + m <= n_ctx (the backend checks it on the host). */
enum trit_status trit_cuda_rope_kv(const int32_t *d_acc, int64_t m, const float *d_act_scale,
                                   const struct trit_cuda_wscale ws[3], struct trit_cuda_attn_shape shape,
                                   int rope_style, const float *d_cos, const float *d_sin, const int32_t *d_pos0,
                                   float *d_q, void *d_k_cache, void *d_v_cache, void *stream);

/* Decode attention for one token at position *d_pos0 over cache positions 0 .. *d_pos0 (split-K,
 * flash-decoding, 1 <= n_splits <= TRIT_CUDA_ATT_MAX_SPLITS): d_att (1, Hq). Scratch: d_part_o
 * (n_splits, Hq) unnormalized outputs and d_part_ml (n_splits, n_heads, 2) (max, sum) of each
 * split's online softmax; d_counters (n_kv_heads) must be zero and are left zero (the last CTA of a
 * KV head's splits merges them). Launches that share counters must run in stream order. */
enum trit_status trit_cuda_attn_decode(const float *d_q, const void *d_k_cache, const void *d_v_cache,
                                       struct trit_cuda_attn_shape shape, const int32_t *d_pos0, int n_splits,
                                       float *d_part_o, float *d_part_ml, uint32_t *d_counters, float *d_att,
                                       void *stream);

/* Causal attention of m tokens at positions *d_pos0 .. *d_pos0 + m - 1 over the cache (their own
 * K/V already written): d_att (m, Hq). Query rows per CTA (head_dim <= 128) by the device: 32 where
 * two such CTAs fit an SM's shared memory, else 16. */
enum trit_status trit_cuda_attn_prefill(const float *d_q, int64_t m, const void *d_k_cache, const void *d_v_cache,
                                        struct trit_cuda_attn_shape shape, const int32_t *d_pos0, float *d_att,
                                        void *stream);
/* The same with the query rows per CTA chosen: 0 (by the device), 16 or 32; for tests, which run
 * both tiles on any GPU. */
enum trit_status trit_cuda_attn_prefill_rows(const float *d_q, int64_t m, const void *d_k_cache, const void *d_v_cache,
                                             struct trit_cuda_attn_shape shape, const int32_t *d_pos0, int rows,
                                             float *d_att, void *stream);

/* Where the tokens of a batch sit in a paged KV cache (cuda/ops_hd.h, "the paged KV cache"): token t
 * is at position d_pos[t] (d_pos NULL: *d_pos0 + t) of the sequence whose block table is row
 * d_tok_table[t] (NULL: row 0) of d_tables (n_tables, max_blocks); d_tables NULL is the identity
 * table (row = position). Every pointer is device memory, read by the kernels when they run (a
 * captured graph replays with whatever they then hold). */
struct trit_cuda_kv_map {
    const int32_t *d_pos0, *d_pos, *d_tables, *d_tok_table;
    int32_t max_blocks;
};

/* trit_cuda_rope_kv with each token at its own position, written into its block: the cache row of
 * token t is trit_kv_row(its table, its position). PRECOND: positions < the rows of d_cos / d_sin;
 * rows < the cache's rows. */
enum trit_status trit_cuda_rope_kv_paged(const int32_t *d_acc, int64_t m, const float *d_act_scale,
                                         const struct trit_cuda_wscale ws[3], struct trit_cuda_attn_shape shape,
                                         int rope_style, const float *d_cos, const float *d_sin,
                                         struct trit_cuda_kv_map map, float *d_q, void *d_k_cache, void *d_v_cache,
                                         void *stream);

/* The most tokens one launch of the paged decode attention takes (its scratch is per token); the
 * op entry runs more in launches of this many, each token's result the same. */
#define TRIT_CUDA_ATT_DEC_TOKENS 16

/* Decode attention for m tokens, each over positions 0 .. its own position of its own sequence
 * through its block table (1 <= m): d_att (m, Hq); token t's result is what trit_cuda_attn_decode
 * gives for it alone over its sequence's rows (the same n_splits, summation order and bits),
 * whatever else the batch holds. Scratch for min(m, TRIT_CUDA_ATT_DEC_TOKENS) tokens: d_part_o
 * (tokens, n_splits, Hq), d_part_ml (tokens, n_splits, n_heads, 2), d_counters (tokens, n_kv_heads)
 * zero and left zero. */
enum trit_status trit_cuda_attn_decode_paged(const float *d_q, int64_t m, const void *d_k_cache,
                                             const void *d_v_cache, struct trit_cuda_attn_shape shape,
                                             struct trit_cuda_kv_map map, int n_splits, float *d_part_o,
                                             float *d_part_ml, uint32_t *d_counters, float *d_att, void *stream);

/* trit_cuda_attn_prefill_rows for one sequence's run of m tokens at *d_pos0 .. *d_pos0 + m - 1 whose
 * cache is read through block table 0 of the map (map.d_pos and map.d_tok_table must be NULL). */
enum trit_status trit_cuda_attn_prefill_paged(const float *d_q, int64_t m, const void *d_k_cache,
                                              const void *d_v_cache, struct trit_cuda_attn_shape shape,
                                              struct trit_cuda_kv_map map, int rows, float *d_att, void *stream);

/* LM head for 1 <= m <= 65535 tokens, in pieces of TRIT_CUDA_HEAD_MAX_M: logits (m, n_vocab) fp32 = x (m, dim) fp32 . W^T with
 * W (n_vocab, dim) fp16 (bf16 = 0) or bf16, accumulated in fp32. */
enum trit_status trit_cuda_head_gemv(const void *d_w, int bf16, int64_t n_vocab, int64_t dim, const float *d_x,
                                     int64_t m, float *d_logits, void *stream);

/* The int8 LM head (host/cpu/head_int8.h's numerics, per-thread math in ops_hd.h) for m tokens:
 * each row x[t] (m, dim) fp32 is quantized to d_q (m, ld) int8 (padding 0) with d_dx[t] = 1 / s_x,
 * then logits (m, n_vocab) = (float)(w . q) * (d[r] * dx[t]), the dot products exact in int32 (dp4a).
 * d_w (n_vocab, ld) int8 rows quantized per row (padding 0), d_d (n_vocab) = 1 / s_r. ld >= dim and a
 * multiple of 16; d_w and d_q 16-byte aligned; dim <= TRIT_CUDA_ROW_MAX. Any m >= 1 (8 rows a pass). */
enum trit_status trit_cuda_head_i8(const int8_t *d_w, const float *d_d, int64_t n_vocab, int64_t dim, int64_t ld,
                                   const float *d_x, int64_t m, int8_t *d_q, float *d_dx, float *d_logits,
                                   void *stream);

/* Greedy sampling on the device: *d_index = the first index of the largest of n values (NaN never
 * wins). The backend's forward_argmax (device-side greedy) runs it on the last token's logits. */
enum trit_status trit_cuda_argmax(const float *d_x, int64_t n, int32_t *d_index, void *stream);

/* Sampling's top-k on the device (forward_topk's selection, host/sampler.c's trit_topk_penalized bit
 * for bit): on the row d_x (n) the ids listed in d_pen[0..n_pen) get the repetition penalty (each
 * once; ids outside [0, n) ignored), NaN ranks as -inf, and the k best (value desc, id asc) go to
 * d_vals[0..k) (penalized values) and d_ids[0..k), in that order. d_keys: scratch of n uint32,
 * 16-byte aligned, overlapping no other argument. List each id once where you can (the backend
 * does): a repeated id is written by several threads, with the same value. 1 <= k <= min(n, TRIT_TOPK_MAX), n <= INT32_MAX; penalty finite and > 0 when
 * n_pen > 0 (d_pen may be NULL when n_pen is 0). One CTA (cuda/ops_topk.cu). */
enum trit_status trit_cuda_topk(const float *d_x, int64_t n, const int32_t *d_pen, int32_t n_pen, float penalty,
                                int32_t k, uint32_t *d_keys, float *d_vals, int32_t *d_ids, void *stream);

#ifdef __cplusplus
}
#endif

#endif /* TRIT_CUDA_OPS_H */
