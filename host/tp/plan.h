/*
 * plan.h: Megatron-style sharding of a ternary transformer over n ranks (docs/tensor-parallel.md),
 * and the numerics of the two quantization modes that need care across shards.
 *
 * Per layer, rank r holds:
 *   wq, wk, wv    column-parallel (output rows), by whole heads:
 *                   query heads [head0, head0 + n_heads): a balanced split of n_heads, and
 *                   KV heads [kv_head0, kv_head0 + n_kv_heads): those its query heads read
 *                   (GQA group = n_heads / n_kv_heads query heads per KV head). When a group
 *                   straddles two ranks, both compute that KV head: the KV head is replicated,
 *                   so any n_ranks <= n_heads works (2B-4T's 20/5 heads over 8 ranks included).
 *   wo            row-parallel (input columns): the columns of its query heads, then all-reduce
 *   w_gate, w_up  column-parallel: rows [ffn0, ffn0 + n_ffn), a balanced split of ffn_dim
 *   w_down        row-parallel: the same columns, then all-reduce
 *   LM head       vocab-parallel: rows [vocab0, vocab0 + n_vocab), then an all-gather of the logits
 *                 in slots of vocab_stride = ceil(n_vocab / n_ranks) per rank
 * Norm weights and the embedding are read in place from the model. Balanced splits: part p of n
 * over P gets n / P + (p < n % P) consecutive elements, so 6912 over 5 is 1383,1383,1382,1382,1382;
 * any shard size works because the CPU kernels accept any n_rows and n_cols.
 */
#ifndef TRIT_TP_PLAN_H
#define TRIT_TP_PLAN_H

#include <stdbool.h>
#include <stdint.h>

#include "model/model.h"

struct trit_tp_plan {
    int rank, n_ranks;
    int64_t head0, n_heads;       /* query heads */
    int64_t kv_head0, n_kv_heads; /* KV heads read by those query heads */
    bool kv_replicated;           /* a KV head of this rank is also computed by a neighbour */
    int64_t head_c0, n_heads_c;   /* query heads computed: the whole GQA groups of those KV heads
                                     (= the query heads unless kv_replicated); wq's rows */
    int64_t ffn0, n_ffn;          /* gate/up rows and down columns */
    int64_t vocab0, n_vocab;      /* LM head rows */
    int64_t vocab_stride;         /* all-gather slot: ceil(n_vocab_total / n_ranks) */
};

/* Part `part` of n elements split over n_parts: [*begin, *begin + *count). */
void trit_tp_split(int64_t n, int n_parts, int part, int64_t *begin, int64_t *count);

/* The shards of `rank` of n_ranks. TRIT_ERR_UNSUPPORTED, naming the dimension, when a rank would
 * get no whole query head, no FFN row or no vocabulary row. */
enum trit_status trit_tp_plan_make(const struct trit_hparams *hp, int rank, int n_ranks, struct trit_tp_plan *out);

/* The part of matrix `w` (enum trit_weight) that `plan`'s rank holds: output rows [start, start + n)
 * when by_rows (column-parallel: q over its own query heads, or over the computed heads when
 * whole_groups, k and v over its KV heads, gate and up over its FFN rows), else input columns
 * (row-parallel: o over its own heads' columns, down over its FFN columns). The one shard table;
 * CPU ranks pack from it with their own heads (their attention finds each head's KV head), GPU
 * ranks with whole groups (their kernels take a query head's KV head as head / group). */
struct trit_tp_shard {
    bool by_rows;
    int64_t start, n;
};
struct trit_tp_shard trit_tp_shard_of(const struct trit_tp_plan *plan, const struct trit_hparams *hp,
                                      enum trit_weight w, bool whole_groups);

/* Rows [r0, r0 + n) of w as a new matrix (scale and kind copied). *out is zeroed on failure. */
enum trit_status trit_tp_ternary_rows(const struct trit_ternary *w, int64_t r0, int64_t n, struct trit_ternary *out);
/* Columns [c0, c0 + n) of w as a new matrix (scale and kind copied), any c0. */
enum trit_status trit_tp_ternary_cols(const struct trit_ternary *w, int64_t c0, int64_t n, struct trit_ternary *out);

/* ---- exact mode: a sum of squares that does not depend on the split --------------------------
 *
 * A sub-norm's input is sharded; exact mode needs sum(x^2) over the whole row. Adding per-rank
 * float sums would round differently for every split. Instead each rank sums its x_i^2 (exact in
 * double) with Neumaier compensation into a (sum, correction) pair, the pairs are all-gathered, and
 * every rank combines them in rank order the same way. The pair carries about 100 bits, so the
 * combined double is the double nearest the exact sum, whatever the split, unless the exact sum
 * lies within ~n 2^-106 (relative) of a midpoint between two doubles; the float that the norm uses
 * is that double rounded once more. So 1, 2 or 5 ranks give the same bits (tests check it). */
void trit_tp_sumsq_partial(const float *x, int64_t n, double pair[2]);
/* pairs is (n_pairs, 2) in rank order. */
float trit_tp_sumsq_combine(const double *pairs, int n_pairs);

/* A 31-bit hash of what every rank of a group must agree on: the shapes, the context parameters,
 * the quantization mode, every scale and the first bytes of every ternary matrix. Ranks compare it
 * at init (an all-reduce of {fp, -fp} under max) and refuse to run when it differs. */
uint32_t trit_tp_fingerprint(const struct trit_model *m, int64_t n_ctx, int64_t n_batch, bool logits_all, int quant);

#endif /* TRIT_TP_PLAN_H */
