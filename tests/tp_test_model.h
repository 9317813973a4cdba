/*
 * tp_test_model.h: small random models for the tensor-parallel tests (test_tp_*.c), built in
 * memory from float weights that are kept, so that grouped mode can ternarize each shard with its
 * own alpha (struct trit_tp_float_source). Every rank of an MPI test builds the same model: the
 * generator is seeded by the caller only, never by the clock.
 */
#ifndef TRIT_TEST_TP_MODEL_H
#define TRIT_TEST_TP_MODEL_H

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "model/model.h"
#include "tp/tp.h"

struct tp_test_model {
    struct trit_model m;
    float *w[8][TRIT_N_W]; /* float weights of up to 8 layers, by enum trit_weight */
    struct trit_tp_float_source floats;
};

static inline uint64_t tp_test_next(uint64_t *s) { /* splitmix64 */
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}
static inline float tp_test_uniform(uint64_t *s) { return (float)(tp_test_next(s) >> 40) / (float)(1u << 24); }
/* Roughly normal: the sum of 4 uniforms, centred, unit variance. */
static inline float tp_test_normal(uint64_t *s) {
    float a = 0.0f;
    for (int i = 0; i < 4; i++) a += tp_test_uniform(s);
    return (a - 2.0f) * 1.7320508f;
}

static inline const float *tp_test_model_get(void *user, int64_t layer, enum trit_weight which) {
    struct tp_test_model *t = user;
    return layer < 8 ? t->w[layer][which] : NULL;
}

static inline float *tp_test_vec(uint64_t *s, int64_t n, float lo, float hi) {
    float *v = trit_alloc((size_t)n * sizeof(float));
    for (int64_t i = 0; v && i < n; i++) v[i] = lo + (hi - lo) * tp_test_uniform(s);
    return v;
}

static inline void tp_test_model_free(struct tp_test_model *t) {
    for (int i = 0; i < 8; i++)
        for (int j = 0; j < 7; j++) trit_free(t->w[i][j]);
    trit_model_release(&t->m);
    memset(t, 0, sizeof *t);
}

/* hp must have n_layers <= 8. Embedding and head are F32 (tied when hp->tied_embeddings). */
static inline enum trit_status tp_test_model_build(const struct trit_hparams *hp, uint64_t seed, struct tp_test_model *t) {
    memset(t, 0, sizeof *t);
    if (hp->n_layers > 8) return TRIT_ERR_INVALID_ARG;
    uint64_t s = seed;
    struct trit_model *m = &t->m;
    m->hp = *hp;
    snprintf(m->source, sizeof m->source, "test");
    snprintf(m->arch_name, sizeof m->arch_name, "tp-test");
    const int64_t D = hp->dim, F = hp->ffn_dim, qd = hp->n_heads * hp->head_dim, kvd = hp->n_kv_heads * hp->head_dim;
    m->layers = trit_alloc((size_t)hp->n_layers * sizeof *m->layers);
    if (!m->layers) return TRIT_ERR_OUT_OF_MEMORY;
    enum trit_status st = TRIT_OK;
    for (int64_t i = 0; i < hp->n_layers && st == TRIT_OK; i++) {
        struct trit_layer *L = &m->layers[i];
        L->attn_norm = tp_test_vec(&s, D, 0.5f, 1.5f);
        L->ffn_norm = tp_test_vec(&s, D, 0.5f, 1.5f);
        if (hp->sub_norms) {
            L->attn_sub_norm = tp_test_vec(&s, qd, 0.5f, 1.5f);
            L->ffn_sub_norm = tp_test_vec(&s, F, 0.5f, 1.5f);
        }
        const int64_t shapes[TRIT_N_W][2] = {{qd, D}, {kvd, D}, {kvd, D}, {D, qd}, {F, D}, {F, D}, {D, F}};
        struct trit_ternary *dst[TRIT_N_W];
        for (int j = 0; j < TRIT_N_W; j++) dst[j] = &L->w[j];
        for (int j = 0; j < TRIT_N_W && st == TRIT_OK; j++) {
            const int64_t n = shapes[j][0] * shapes[j][1];
            float *w = trit_alloc((size_t)n * sizeof(float));
            if (!w) return TRIT_ERR_OUT_OF_MEMORY;
            /* Rows of different magnitude, so that shards have different alphas in grouped mode. */
            for (int64_t r = 0; r < shapes[j][0]; r++) {
                const float row_scale = 0.5f + tp_test_uniform(&s);
                for (int64_t c = 0; c < shapes[j][1]; c++) w[r * shapes[j][1] + c] = 0.02f * row_scale * tp_test_normal(&s);
            }
            t->w[i][j] = w;
            st = trit_ternarize(w, shapes[j][0], shapes[j][1], dst[j]);
        }
    }
    m->out_norm = tp_test_vec(&s, D, 0.5f, 1.5f);
    float *embd = tp_test_vec(&s, hp->n_vocab * D, -0.4f, 0.4f); /* logits of a few units: a perplexity that means something */
    m->tok_embd = (struct trit_dense){.dtype = TRIT_DTYPE_F32, .n_rows = hp->n_vocab, .n_cols = D, .data = embd, .owned = embd};
    if (hp->tied_embeddings) {
        m->output = m->tok_embd;
    } else {
        float *out = tp_test_vec(&s, hp->n_vocab * D, -0.4f, 0.4f);
        m->output = (struct trit_dense){.dtype = TRIT_DTYPE_F32, .n_rows = hp->n_vocab, .n_cols = D, .data = out, .owned = out};
    }
    if (st == TRIT_OK) st = trit_model_validate(m);
    t->floats.get = tp_test_model_get;
    t->floats.user = t;
    return st;
}

/* Shapes of the three graph families, with dimensions that do not divide evenly: dim 96 is not a
 * multiple of the 64-column k-block, ffn 100 splits 34/33/33 over 3 ranks and 25 each over 4,
 * 6 query heads over 4 ranks split 2/2/1/1 with their 2 KV heads replicated, vocab 301 is odd. */
static inline struct trit_hparams tp_test_hparams(enum trit_family family) {
    struct trit_hparams hp = {.family = family, .n_vocab = 301, .dim = 96, .n_layers = 2, .n_heads = 6,
                              .n_kv_heads = 2, .head_dim = 16, .ffn_dim = 100, .ctx_train = 64, .norm_eps = 1e-5f,
                              .rope_theta = 10000.0f, .act = TRIT_ACT_SILU, .rope_style = TRIT_ROPE_NEOX,
                              .sub_norms = false, .tied_embeddings = false};
    if (family == TRIT_FAMILY_BITNET_B158) {
        hp.act = TRIT_ACT_RELU2;
        hp.sub_norms = true;
        hp.tied_embeddings = true;
        hp.rope_theta = 500000.0f;
    } else if (family == TRIT_FAMILY_BITNET) {
        hp.n_kv_heads = 6; /* MHA */
        hp.sub_norms = true;
        hp.rope_style = TRIT_ROPE_NORM;
    }
    return hp;
}

#endif /* TRIT_TEST_TP_MODEL_H */
