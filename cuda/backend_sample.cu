/*
 * backend_sample.cu: the CUDA backend's sampling ops, forward_argmax and forward_topk: the step
 * (cuda_run), then the argmax or the penalized top-k of the last row of logits on the device, so
 * that one int32, or k (value, id) pairs, cross to the host instead of the whole row.
 */
#include <string.h>

#include "backend_internal.cuh"

namespace trit_cuda_be {

// Greedy on the device: the last token's row of st->logits never leaves the GPU; one int32 does.
// The argmax runs after the (graphed or eager) step, on the same stream.
enum trit_status cuda_forward_argmax_impl(cuda_state *st, const int32_t *tokens, int64_t n, int64_t pos0,
                                          int32_t *token) {
    const trit_hparams *hp = &st->m->hp;
    if (!tokens || !token) return trit_error(TRIT_ERR_INVALID_ARG, "cuda forward_argmax: NULL tokens or token");
    TRIT_TRY(cuda_run(st, tokens, n, pos0));
    const int64_t last = st->cfg.logits_all ? n - 1 : 0;
    TRIT_TRY(trit_cuda_argmax(st->logits + last * hp->n_vocab, hp->n_vocab, st->argmax, st->stream));
    int32_t *h = st->h_io + st->cfg.n_batch + 1; // pinned; no graph copy reads past h_io[n_batch]
    TRIT_CUDA_CHECK(cudaMemcpyAsync(h, st->argmax, sizeof(int32_t), cudaMemcpyDeviceToHost, st->stream));
    TRIT_TRY(cuda_sync(st, n));
    if (*h < 0) return trit_error(TRIT_ERR_INTERNAL, "cuda forward_argmax: every logit is NaN");
    *token = *h;
    return TRIT_OK;
}

// Top-k sampling's candidates on the device: the last row of st->logits never leaves the GPU; k
// (value, id) pairs do. The penalty list is filtered to vocabulary ids and deduplicated on the host
// (so it fits the V-entry device buffer whatever its length), then copied with the step.
enum trit_status cuda_forward_topk_impl(cuda_state *st, const int32_t *tokens, int64_t n, int64_t pos0, int32_t k,
                                        const int32_t *pen_ids, int32_t n_pen, float penalty, float *vals,
                                        int32_t *ids) {
    const int64_t V = st->m->hp.n_vocab;
    if (!tokens || !vals || !ids || n_pen < 0 || (n_pen > 0 && !pen_ids))
        return trit_error(TRIT_ERR_INVALID_ARG, "cuda forward_topk: NULL or negative argument");
    if (k < 1 || k > TRIT_TOPK_MAX || k > V)
        return trit_error(TRIT_ERR_INVALID_ARG, "cuda forward_topk: k %d (1 .. %d, at most the vocabulary)", k,
                          TRIT_TOPK_MAX);
    if (n_pen > 0 && penalty != 1.0f && !(penalty > 0.0f && penalty < INFINITY))
        return trit_error(TRIT_ERR_INVALID_ARG, "cuda forward_topk: repetition penalty %g (finite and > 0)",
                          (double)penalty);
    int32_t np = 0;
    if (penalty != 1.0f) { // a penalty of 1 changes no logit
        for (int32_t i = 0; i < n_pen; i++) {
            const int32_t id = pen_ids[i];
            if (id < 0 || id >= V || (st->pen_mark[id >> 3] >> (id & 7) & 1)) continue;
            st->pen_mark[id >> 3] |= (uint8_t)(1u << (id & 7));
            st->h_aux[np++] = id;
        }
        for (int32_t i = 0; i < np; i++) st->pen_mark[st->h_aux[i] >> 3] = 0;
    }
    TRIT_TRY(cuda_run(st, tokens, n, pos0));
    if (np > 0)
        TRIT_CUDA_CHECK(cudaMemcpyAsync(st->pen, st->h_aux, (size_t)np * sizeof(int32_t), cudaMemcpyHostToDevice,
                                        st->stream));
    const int64_t last = st->cfg.logits_all ? n - 1 : 0;
    TRIT_TRY(trit_cuda_topk(st->logits + last * V, V, np > 0 ? st->pen : NULL, np, penalty, k, st->topk_keys,
                            st->topk_vals, st->topk_ids, st->stream));
    int32_t *h_ids = st->h_aux + V;
    float *h_vals = reinterpret_cast<float *>(h_ids + TRIT_TOPK_MAX);
    TRIT_CUDA_CHECK(cudaMemcpyAsync(h_ids, st->topk_ids, (size_t)k * sizeof(int32_t), cudaMemcpyDeviceToHost, st->stream));
    TRIT_CUDA_CHECK(cudaMemcpyAsync(h_vals, st->topk_vals, (size_t)k * sizeof(float), cudaMemcpyDeviceToHost, st->stream));
    TRIT_TRY(cuda_sync(st, n));
    memcpy(ids, h_ids, (size_t)k * sizeof(int32_t));
    memcpy(vals, h_vals, (size_t)k * sizeof(float));
    return TRIT_OK;
}

} // namespace trit_cuda_be
