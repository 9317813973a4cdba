/*
 * forward.c: the forward pass, once (forward.h). Every backend runs it over its own ops.
 *
 * Per layer (n tokens; every rank holds the residual stream x whole, and its shard of each matrix:
 * host/tp/plan.h):
 *
 *   attention block                              feed-forward block
 *     q8 = quant(rmsnorm(x) * attn_norm)           q8 = quant(rmsnorm(x) * ffn_norm)
 *     q, k, v = ternary(wq|wk|wv, q8)              g, u = ternary(w_gate|w_up, q8)
 *     rope(q, k); k, v -> cache
 *     a = attention(q, cache)
 *     q8 = quant([rmsnorm(a) * attn_sub_norm])     q8 = quant([rmsnorm(act(g) * u) * ffn_sub_norm])
 *     part = ternary(wo, q8)                       part = ternary(w_down, q8)
 *     x += sum of every rank's part                x += sum of every rank's part
 *
 * then logits = head(rmsnorm(x) * out_norm) for the wanted rows, each rank its vocabulary slice,
 * gathered; or, for embeddings (b->hidden), rmsnorm(x) * out_norm of those rows and no head. The sub-norms are those of the graph families that have them (model.h).
 */
#include "forward.h"

enum trit_status trit_forward_batch_make(const struct trit_hparams *hp, int64_t n_ctx, int64_t n_batch,
                                         bool logits_all, const int32_t *tokens, int64_t n, int64_t pos0,
                                         struct trit_forward_batch *out) {
    if (!tokens || n <= 0 || n > n_batch)
        return trit_error(TRIT_ERR_INVALID_ARG, "forward: %lld tokens (batch holds 1..%lld)", (long long)n,
                          (long long)n_batch);
    if (pos0 < 0 || pos0 > n_ctx - n) {
        const int64_t last = pos0 > INT64_MAX - n ? INT64_MAX : pos0 + n - 1; /* a hostile pos0 must not overflow */
        return trit_error(TRIT_ERR_CONTEXT_FULL, "context full: positions %lld..%lld do not fit in %lld",
                          (long long)pos0, (long long)last, (long long)n_ctx);
    }
    for (int64_t i = 0; i < n; i++) {
        if (tokens[i] < 0 || tokens[i] >= hp->n_vocab)
            return trit_error(TRIT_ERR_INVALID_ARG, "token id %d is outside the vocabulary (0..%lld)", tokens[i],
                              (long long)hp->n_vocab - 1);
    }
    *out = (struct trit_forward_batch){.tokens = tokens, .n = n, .pos0 = pos0};
    out->first_out = logits_all ? 0 : n - 1;
    out->n_out = n - out->first_out;
    return TRIT_OK;
}

enum trit_status trit_forward_run(const struct trit_layer_ops *ops, void *be, const struct trit_hparams *hp,
                                  const struct trit_forward_batch *b) {
    TRIT_TRY(ops->embed(be, b));
    for (int64_t il = 0; il < hp->n_layers; il++) {
        for (enum trit_block blk = TRIT_BLOCK_ATTN; blk <= TRIT_BLOCK_FFN; blk++) {
            TRIT_TRY(ops->norm_quant(be, il, blk, b));
            TRIT_TRY(ops->matmul_in(be, il, blk, b));
            if (blk == TRIT_BLOCK_ATTN) {
                TRIT_TRY(ops->rope_cache(be, il, b));
                TRIT_TRY(ops->attention(be, il, b));
            }
            TRIT_TRY(ops->shard_quant(be, il, blk, b));
            TRIT_TRY(ops->matmul_out(be, il, blk, b));
            TRIT_TRY(ops->reduce(be, il, blk, b));
        }
    }
    TRIT_TRY(ops->head(be, b));
    return b->hidden ? TRIT_OK : ops->gather_logits(be, b); /* hidden states: whole rows on every rank */
}
