/* eval.c: perplexity over a token stream, llama.cpp's method (include/trit.h). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/core.h"

/* -log softmax(logits)[target], in double with the max subtracted. */
static double token_nll(const float *logits, int32_t n_vocab, int32_t target) {
    float max = logits[0];
    for (int32_t i = 1; i < n_vocab; i++)
        if (logits[i] > max) max = logits[i];
    double sum = 0.0;
    for (int32_t i = 0; i < n_vocab; i++) sum += exp((double)logits[i] - max);
    return log(sum) - ((double)logits[target] - max);
}

enum trit_status trit_perplexity(trit_context *ctx, const int32_t *tokens, int64_t n_tokens, int32_t bos,
                                 int64_t max_chunks, bool (*on_chunk)(int64_t chunk, double ppl, void *user),
                                 void *user, struct trit_perplexity_result *out) {
    if (!ctx || !tokens || !out) return trit_error(TRIT_ERR_INVALID_ARG, "perplexity: NULL argument");
    memset(out, 0, sizeof *out);
    const int32_t n_ctx = trit_context_n_ctx(ctx), n_vocab = trit_model_n_vocab(trit_context_model(ctx));
    if (!trit_context_logits_all(ctx))
        return trit_error(TRIT_ERR_INVALID_ARG, "perplexity: the context must keep every token's logits (logits_all)");
    /* positions n_ctx/2 .. n_ctx-2 are scored: none below 3 */
    if (n_ctx < 3)
        return trit_error(TRIT_ERR_INVALID_ARG, "perplexity: a context of %d tokens scores nothing (it needs at least 3)", n_ctx);
    if (n_tokens < 0) return trit_error(TRIT_ERR_INVALID_ARG, "perplexity: %lld tokens", (long long)n_tokens);
    int64_t n_chunks = n_tokens / n_ctx;
    if (max_chunks > 0 && max_chunks < n_chunks) n_chunks = max_chunks;
    if (n_chunks == 0)
        return trit_error(TRIT_ERR_INVALID_ARG, "perplexity: %lld tokens are fewer than one chunk of %d", (long long)n_tokens, n_ctx);
    int32_t *chunk = malloc((size_t)n_ctx * sizeof *chunk);
    if (!chunk) return trit_error(TRIT_ERR_OUT_OF_MEMORY, "perplexity: out of memory");
    double nll = 0.0, nll2 = 0.0;
    int64_t count = 0;
    enum trit_status st = TRIT_OK;
    for (int64_t c = 0; c < n_chunks && st == TRIT_OK; c++) {
        const int32_t *src = tokens + c * n_ctx;
        memcpy(chunk, src, (size_t)n_ctx * sizeof *chunk);
        if (bos >= 0) chunk[0] = bos;
        st = trit_context_truncate(ctx, 0);
        const float *logits = NULL;
        if (st == TRIT_OK) st = trit_decode(ctx, chunk, n_ctx, &logits);
        if (st != TRIT_OK) break;
        for (int32_t j = n_ctx / 2; j < n_ctx - 1; j++) {
            double v = token_nll(logits + (size_t)j * (size_t)n_vocab, n_vocab, src[j + 1]);
            nll += v;
            nll2 += v * v;
            count++;
        }
        if (on_chunk && !on_chunk(c, exp(nll / (double)count), user)) {
            n_chunks = c + 1;
            break;
        }
    }
    free(chunk);
    if (st != TRIT_OK) return st;
    const double mean = nll / (double)count;
    const double var = nll2 / (double)count - mean * mean;
    out->mean_nll = mean;
    out->ppl = exp(mean);
    out->ppl_err = count > 1 ? out->ppl * sqrt(var > 0.0 ? var / (double)(count - 1) : 0.0) : 0.0;
    out->n_chunks = n_chunks;
    out->n_scored = count;
    return TRIT_OK;
}
