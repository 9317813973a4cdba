/*
 * forward.h: the model's forward pass, written once (forward.c), over the ops every backend
 * implements. The CPU backend (host/cpu/backend_cpu.c, one process or one MPI rank of several) and the
 * CUDA backend (cuda/backend_forward.cu, one GPU or one NCCL rank of several) run this same
 * program; a backend file holds only its ops. docs/design.md section 5 says how to add one.
 *
 * Every backend is one rank of a tensor-parallel group (host/tp/plan.h; one device is one rank of
 * one). Each op acts on the backend's own buffers (its residual stream x, its quantized activations
 * q8 with their scales, its cache); the program only says which op runs next, for which layer and
 * block, over which tokens. Where a rank holds part of a row, the op that needs the whole row calls
 * the communicator (host/tp/comm.h); with one rank those calls cost nothing.
 */
#ifndef TRIT_FORWARD_H
#define TRIT_FORWARD_H

#include <stdbool.h>
#include <stdint.h>

#include "core/core.h"
#include "model/model.h"

/* The two blocks of a layer: attention (q|k|v, o) and feed-forward (gate|up, down). */
enum trit_block {
    TRIT_BLOCK_ATTN,
    TRIT_BLOCK_FFN,
};

/* One batch of n tokens (the ops read it from here). Two forms:
 *   - one sequence in a contiguous cache (the CUDA backend today): positions pos0 .. pos0 + n - 1,
 *     logits of rows first_out .. first_out + n_out - 1 (all, or the last); pos, blocks, out NULL;
 *   - tokens of several sequences over the paged cache (the CPU backend, always): token i is at
 *     position pos[i] of the sequence whose block table is blocks[i] (position t in block
 *     blocks[i][t / TRIT_KV_BLOCK]); out[0 .. n_out) are the tokens whose logits are wanted, in
 *     ascending order. pos0 and first_out are then unused. */
struct trit_forward_batch {
    const int32_t *tokens;
    int64_t n, pos0;
    int64_t first_out, n_out; /* the token rows whose logits are wanted: all, or the last */
    const int32_t *pos;
    const int32_t *const *blocks;
    const int32_t *out;
    /* NULL: the out rows' logits, as above. Else (n_out, dim): the head op writes the out rows' final-norm
     * hidden states here (rmsnorm(x) * out_norm, the LM head's input), computes no logits, and
     * gather_logits is not run (backend forward_hidden, trit_embed). */
    float *hidden;
};

struct trit_layer_ops {
    /* x (n, dim) = the embeddings of the tokens. */
    enum trit_status (*embed)(void *be, const struct trit_forward_batch *b);
    /* x += what the block before left pending (the row-parallel sum; a backend may fuse the add here);
     * q8, scales = quantize(rmsnorm(x) * the block's input norm (attn_norm or ffn_norm)). Replicated:
     * every rank holds the whole row. */
    enum trit_status (*norm_quant)(void *be, int64_t layer, enum trit_block blk, const struct trit_forward_batch *b);
    /* Column-parallel ternary matmul of the block's input (q|k|v, or gate|up; this rank's output rows),
     * int32 sums scaled by each matrix's epilogue (a backend may defer the epilogue to the next op). */
    enum trit_status (*matmul_in)(void *be, int64_t layer, enum trit_block blk, const struct trit_forward_batch *b);
    /* RoPE on q and k at their positions; k and v into the layer's cache. */
    enum trit_status (*rope_cache)(void *be, int64_t layer, const struct trit_forward_batch *b);
    /* Causal attention of this rank's query heads over the cache. */
    enum trit_status (*attention)(void *be, int64_t layer, const struct trit_forward_batch *b);
    /* The block's sharded row (the attention output, or act(gate) * up): its sub-norm when the graph has
     * one, then quantized for the row-parallel matmul. Exact mode takes the row's statistics over every
     * rank (collectives); grouped mode and one rank take this rank's. */
    enum trit_status (*shard_quant)(void *be, int64_t layer, enum trit_block blk, const struct trit_forward_batch *b);
    /* Row-parallel ternary matmul (o or down over this rank's input columns): this rank's part of the
     * block's output. */
    enum trit_status (*matmul_out)(void *be, int64_t layer, enum trit_block blk, const struct trit_forward_batch *b);
    /* The parts of every rank summed (an all-reduce: int32 sums in exact mode, fp32 outputs in grouped
     * mode) and added to x, now or at the next norm_quant or head. */
    enum trit_status (*reduce)(void *be, int64_t layer, enum trit_block blk, const struct trit_forward_batch *b);
    /* x += what is pending; the final norm of rows first_out .. first_out + n_out - 1; the head's rows
     * this rank holds (its vocabulary slice). With b->hidden, the final norm only, written there. */
    enum trit_status (*head)(void *be, const struct trit_forward_batch *b);
    /* Every rank's vocabulary slice, gathered into whole rows of logits (nothing to do with one rank). */
    enum trit_status (*gather_logits)(void *be, const struct trit_forward_batch *b);
};

/* Checks a batch against the context: 1 <= n <= n_batch (TRIT_ERR_INVALID_ARG), positions inside
 * n_ctx (TRIT_ERR_CONTEXT_FULL), every token inside the vocabulary (TRIT_ERR_INVALID_ARG); fills
 * *out (with logits_all every row's logits are wanted, else the last). The one check of a decode
 * call's arguments, for every backend. */
enum trit_status trit_forward_batch_make(const struct trit_hparams *hp, int64_t n_ctx, int64_t n_batch,
                                         bool logits_all, const int32_t *tokens, int64_t n, int64_t pos0,
                                         struct trit_forward_batch *out);

/* The forward pass of batch b: embed, every layer's two blocks, the head and the logits gather (with
 * b->hidden: the final norm, no logits, no gather). */
enum trit_status trit_forward_run(const struct trit_layer_ops *ops, void *be, const struct trit_hparams *hp,
                                  const struct trit_forward_batch *b);

#endif /* TRIT_FORWARD_H */
