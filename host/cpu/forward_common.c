/* forward_common.c: see forward_common.h. */
#include "cpu/forward_common.h"

#include <string.h>

#include "cpu/ops.h"

void trit_cpu_layers_free(struct trit_cpu_layer *layers, int64_t n_layers) {
    if (!layers) return;
    for (int64_t i = 0; i < n_layers; i++) {
        for (int j = 0; j < TRIT_N_W; j++) trit_cpu_matrix_free(&layers[i].w[j]);
    }
}

uint64_t trit_cpu_layers_bytes(const struct trit_cpu_layer *layers, int64_t n_layers) {
    uint64_t w = 0;
    for (int64_t i = 0; i < n_layers; i++) {
        for (int j = 0; j < TRIT_N_W; j++) w += (uint64_t)trit_cpu_matrix_bytes(&layers[i].w[j]);
    }
    return w;
}

enum trit_status trit_cpu_forward_begin(const struct trit_model *m, const struct trit_backend_config *cfg,
                                        const char *who, const int32_t *tokens, int64_t n_tok, int64_t pos0, float *x) {
    const struct trit_hparams *hp = &m->hp;
    if (n_tok <= 0 || n_tok > cfg->n_batch)
        return trit_error(TRIT_ERR_INVALID_ARG, "%s: %lld tokens (batch holds 1..%lld)", who, (long long)n_tok,
                          (long long)cfg->n_batch);
    if (pos0 < 0 || pos0 + n_tok > cfg->n_ctx)
        return trit_error(TRIT_ERR_CONTEXT_FULL, "context full: positions %lld..%lld do not fit in %lld",
                          (long long)pos0, (long long)(pos0 + n_tok - 1), (long long)cfg->n_ctx);
    for (int64_t b = 0; b < n_tok; b++) {
        if (tokens[b] < 0 || tokens[b] >= hp->n_vocab)
            return trit_error(TRIT_ERR_INVALID_ARG, "token id %d is outside the vocabulary (0..%lld)", tokens[b],
                              (long long)hp->n_vocab - 1);
        trit_dense_row_f32(&m->tok_embd, tokens[b], x + b * hp->dim);
    }
    return TRIT_OK;
}

void trit_cpu_rope_to_cache(const struct trit_hparams *hp, const float *rope_cos, const float *rope_sin, int64_t n_tok,
                            int64_t pos0, int64_t n_q_heads, int64_t n_kv_heads, float *q, float *k, const float *v,
                            float *kc, float *vc) {
    const int64_t hd = hp->head_dim, q_dim = n_q_heads * hd, kv_dim = n_kv_heads * hd;
    for (int64_t b = 0; b < n_tok; b++) {
        const int64_t pos = pos0 + b;
        const float *c = rope_cos + pos * (hd / 2), *s = rope_sin + pos * (hd / 2);
        for (int64_t h = 0; h < n_q_heads; h++) trit_rope_f32(q + b * q_dim + h * hd, hd, c, s, hp->rope_style);
        for (int64_t h = 0; h < n_kv_heads; h++) trit_rope_f32(k + b * kv_dim + h * hd, hd, c, s, hp->rope_style);
        memcpy(kc + pos * kv_dim, k + b * kv_dim, (size_t)kv_dim * sizeof(float));
        memcpy(vc + pos * kv_dim, v + b * kv_dim, (size_t)kv_dim * sizeof(float));
    }
}
