/*
 * forward.c: the CPU backend. One straight-line forward pass for the three graph families
 * (model.h), over a batch of tokens at consecutive positions, with a KV cache allocated at init.
 * Nothing is allocated after init.
 *
 * Per layer (B tokens, D = dim, Hq = n_heads * head_dim, Hkv = n_kv_heads * head_dim, F = ffn_dim):
 *   xn  = rmsnorm(x) * attn_norm                      (B, D)
 *   q8  = quant_i8(xn)                                (B, D) int8, s (B)
 *   q, k, v = ternary(wq|wk|wv, q8, s)                (B, Hq), (B, Hkv), (B, Hkv)
 *   rope(q, k) at positions pos0 .. pos0+B-1; k, v -> cache
 *   a   = causal attention over the cache             (B, Hq)
 *   a   = rmsnorm(a) * attn_sub_norm                  (sub-norm families)
 *   x  += ternary(wo, quant_i8(a))                    (B, D)
 *   xn  = rmsnorm(x) * ffn_norm
 *   g, u = ternary(w_gate|w_up, quant_i8(xn))         (B, F)
 *   h   = act(g) * u ; h = rmsnorm(h) * ffn_sub_norm   (sub-norm families)
 *   x  += ternary(w_down, quant_i8(h))
 * then logits = head(rmsnorm(x) * out_norm) for the last token, or for all when logits_all.
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "backend.h"
#include "core/cpu_features.h"
#include "core/threadpool.h"
#include "cpu/cpu.h"
#include "cpu/forward_common.h"
#include "cpu/head_int8.h"
#include "cpu/kernels.h"
#include "cpu/ops.h"

struct cpu_state {
    const struct trit_model *m;
    struct trit_backend_config cfg;
    struct trit_pool *pool;
    struct trit_cpu_layer *layers;

    /* KV cache: (n_layers, n_ctx, Hkv) each, fp32 */
    float *k_cache, *v_cache;
    /* RoPE tables: (n_ctx, head_dim / 2) */
    float *rope_cos, *rope_sin;

    /* activations, B = cfg.n_batch rows each */
    float *x;      /* (B, D) residual stream */
    float *xn;     /* (B, max(D, Hq, F)) normed input of a matmul */
    int8_t *q8;    /* (B, max(D, Hq, F)) */
    float *s;      /* (B) activation scales */
    float *q;      /* (B, Hq) */
    float *k;      /* (B, Hkv) */
    float *v;      /* (B, Hkv) */
    float *att;    /* (B, Hq) attention output */
    float *gate;   /* (B, F) */
    float *up;     /* (B, F) */
    float *scores; /* (n_threads, n_ctx) attention scratch */
    struct trit_head_i8 head8; /* the quantized LM head, when cfg.head_int8 or cfg.head_q4 */
    char desc[160];
};

/* ---- ternary matmul through the kernels ----------------------------------------------------- */

/* y[i] (B, n_i) = ternary(w[i], q8 (B, k), s) for matrices that share their input. */
static enum trit_status matmul_multi(struct cpu_state *st, int n, const struct trit_cpu_matrix *const *w,
                                     int64_t n_tok, float *const *y) {
    return trit_cpu_gemm_f32_multi(st->pool, n, w, st->q8, n_tok, st->s, y);
}

/* ---- parallel pieces ------------------------------------------------------------------------ */

struct attn_job {
    struct cpu_state *st;
    int64_t layer, pos0, n_tok;
    int64_t heads; /* query heads per task: up to 4 of one KV head's group */
};

/* Query heads per attention task: the heads that share a KV head read its cache once together
 * (ops.c), up to 4; fewer when the groups are smaller, so that a model with few heads still gives
 * every thread a task at decode. */
static int64_t attn_heads_per_task(const struct trit_hparams *hp) {
    const int64_t group = hp->n_heads / hp->n_kv_heads;
    return group < 4 ? group : 4;
}

/* One task per (token, group of heads): scores scratch belongs to the running thread. */
static void attn_task(void *ctx, int64_t task, int thread) {
    struct attn_job *j = ctx;
    struct cpu_state *st = j->st;
    const struct trit_hparams *hp = &st->m->hp;
    /* head-group major, so that a thread's consecutive tasks read the same KV head's cache (it stays in
     * L2); tokens in the order 0, n-1, 1, n-2, ...: the pool gives each thread a contiguous range of
     * tasks, and pairing short and long contexts gives every range the same work at any thread count */
    const int64_t hs = task / j->n_tok, i = task % j->n_tok;
    const int64_t b = i % 2 == 0 ? i / 2 : j->n_tok - 1 - i / 2;
    const int64_t h0 = hs * j->heads, h1 = h0 + j->heads < hp->n_heads ? h0 + j->heads : hp->n_heads;
    const int64_t kv_dim = hp->n_kv_heads * hp->head_dim, q_dim = hp->n_heads * hp->head_dim;
    const float *kc = st->k_cache + j->layer * st->cfg.n_ctx * kv_dim;
    const float *vc = st->v_cache + j->layer * st->cfg.n_ctx * kv_dim;
    trit_attention_f32(st->q + b * q_dim, kc, vc, j->pos0 + b + 1, hp->n_heads, hp->n_kv_heads, hp->head_dim,
                       kv_dim, st->scores + (int64_t)thread * st->cfg.n_ctx, st->att + b * q_dim, h0, h1);
}

/* ---- the forward pass ----------------------------------------------------------------------- */

static enum trit_status cpu_forward(void *state, const int32_t *tokens, int64_t n_tok, int64_t pos0, float *logits) {
    struct cpu_state *st = state;
    const struct trit_model *m = st->m;
    const struct trit_hparams *hp = &m->hp;
    const int64_t D = hp->dim, F = hp->ffn_dim, hd = hp->head_dim;
    const int64_t q_dim = hp->n_heads * hd, kv_dim = hp->n_kv_heads * hd;
    TRIT_TRY(trit_cpu_forward_begin(m, &st->cfg, "cpu forward", tokens, n_tok, pos0, st->x));

    for (int64_t il = 0; il < hp->n_layers; il++) {
        const struct trit_layer *L = &m->layers[il];
        const struct trit_cpu_layer *W = &st->layers[il];
        float *kc = st->k_cache + il * st->cfg.n_ctx * kv_dim;
        float *vc = st->v_cache + il * st->cfg.n_ctx * kv_dim;

        /* attention block */
        trit_prepare_matmul_input(st->pool, n_tok, D, st->x, NULL, hp->act, L->attn_norm, hp->norm_eps, st->xn, st->q8, st->s);
        const struct trit_cpu_matrix *qkv[3] = {&W->w[TRIT_W_Q], &W->w[TRIT_W_K], &W->w[TRIT_W_V]};
        float *qkv_out[3] = {st->q, st->k, st->v};
        TRIT_TRY(matmul_multi(st, 3, qkv, n_tok, qkv_out));
        trit_cpu_rope_to_cache(hp, st->rope_cos, st->rope_sin, n_tok, pos0, hp->n_heads, hp->n_kv_heads, st->q, st->k,
                               st->v, kc, vc);
        struct attn_job aj = {.st = st, .layer = il, .pos0 = pos0, .n_tok = n_tok, .heads = attn_heads_per_task(hp)};
        trit_pool_parallel_for(st->pool, n_tok * trit_div_ceil(hp->n_heads, aj.heads), attn_task, &aj);
        trit_prepare_matmul_input(st->pool, n_tok, q_dim, st->att, NULL, hp->act, hp->sub_norms ? L->attn_sub_norm : NULL,
                                  hp->norm_eps, st->att, st->q8, st->s);
        TRIT_TRY(trit_cpu_gemm_f32_add(st->pool, &W->w[TRIT_W_O], st->q8, n_tok, st->s, st->x));

        /* feed-forward block */
        trit_prepare_matmul_input(st->pool, n_tok, D, st->x, NULL, hp->act, L->ffn_norm, hp->norm_eps, st->xn, st->q8, st->s);
        const struct trit_cpu_matrix *gu[2] = {&W->w[TRIT_W_GATE], &W->w[TRIT_W_UP]};
        float *gu_out[2] = {st->gate, st->up};
        TRIT_TRY(matmul_multi(st, 2, gu, n_tok, gu_out));
        trit_prepare_matmul_input(st->pool, n_tok, F, st->gate, st->up, hp->act, hp->sub_norms ? L->ffn_sub_norm : NULL,
                                  hp->norm_eps, st->gate, st->q8, st->s);
        TRIT_TRY(trit_cpu_gemm_f32_add(st->pool, &W->w[TRIT_W_DOWN], st->q8, n_tok, st->s, st->x));
    }

    /* head: every token's logits, or the last token's */
    const int64_t first = st->cfg.logits_all ? 0 : n_tok - 1, n_out = n_tok - first;
    for (int64_t b = 0; b < n_out; b++)
        trit_rmsnorm_f32(st->x + (first + b) * D, m->out_norm, D, hp->norm_eps, st->xn + b * D);
    if (st->cfg.head_int8 || st->cfg.head_q4) return trit_head_i8_logits(st->pool, &st->head8, st->xn, n_out, D, logits);
    trit_dense_logits(st->pool, &m->output, st->xn, n_out, D, logits);
    return TRIT_OK;
}

/* ---- init / free ---------------------------------------------------------------------------- */

static void cpu_free(void *state) {
    struct cpu_state *st = state;
    if (!st) return;
    trit_cpu_layers_free(st->layers, st->m->hp.n_layers);
    trit_free(st->layers);
    float *bufs[] = {st->k_cache, st->v_cache, st->rope_cos, st->rope_sin, st->x, st->xn, st->s, st->q,
                     st->k, st->v, st->att, st->gate, st->up, st->scores};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) trit_free(bufs[i]);
    trit_free(st->q8);
    trit_head_i8_free(&st->head8);
    trit_pool_free(st->pool);
    trit_free(st);
}

/* An uninitialized buffer of n floats (every one is written before it is read); after a failure
 * nothing more is allocated, so that init gives up at the first buffer that does not fit. */
static float *alloc_f32(int64_t n, enum trit_status *status) {
    if (*status != TRIT_OK) return NULL;
    float *p = trit_alloc_uninit((size_t)n * sizeof(float));
    if (!p)
        *status = trit_error(TRIT_ERR_OUT_OF_MEMORY, "cpu backend: out of memory allocating %lld MiB",
                             (long long)((n * 4) >> 20));
    return p;
}

/* The widest activation row: dim, the query width or the FFN width. */
static int64_t widest_row(const struct trit_hparams *hp) {
    const int64_t q_dim = hp->n_heads * hp->head_dim;
    int64_t wide = hp->dim > q_dim ? hp->dim : q_dim;
    return hp->ffn_dim > wide ? hp->ffn_dim : wide;
}

/* The memory plan: exactly what cpu_init allocates, buffer by buffer (saturating: a hostile
 * context length must not wrap around to a small number). */
static uint64_t mul_sat(uint64_t a, uint64_t b) {
    uint64_t r;
    return __builtin_mul_overflow(a, b, &r) ? UINT64_MAX : r;
}

static uint64_t add_sat(uint64_t a, uint64_t b) { return a + b < a ? UINT64_MAX : a + b; }

static void cpu_plan(const struct trit_model *m, const struct trit_backend_config *cfg, struct trit_mem_plan *out) {
    const struct trit_hparams *hp = &m->hp;
    const uint64_t C = (uint64_t)cfg->n_ctx, B = (uint64_t)(cfg->n_batch < cfg->n_ctx ? cfg->n_batch : cfg->n_ctx);
    const uint64_t D = (uint64_t)hp->dim, F = (uint64_t)hp->ffn_dim, T = (uint64_t)cfg->n_threads;
    const uint64_t q_dim = (uint64_t)(hp->n_heads * hp->head_dim), kv_dim = (uint64_t)(hp->n_kv_heads * hp->head_dim);
    const uint64_t wide = (uint64_t)widest_row(hp), f4 = sizeof(float);
    memset(out, 0, sizeof *out);
    for (int64_t i = 0; i < hp->n_layers; i++) {
        for (int j = 0; j < TRIT_N_W; j++) {
            const struct trit_ternary *w = &m->layers[i].w[j];
            const int64_t b = trit_cpu_matrix_plan_bytes(w->n_rows, w->n_cols);
            out->weights_bytes = add_sat(out->weights_bytes, b < 0 ? UINT64_MAX : (uint64_t)b);
        }
    }
    uint64_t head_w = 0, head_scratch = 0;
    if (cfg->head_int8 || cfg->head_q4)
        trit_head_i8_plan(m->output.n_rows, m->output.n_cols, cfg->head_q4 ? 4 : 8, cfg->logits_all ? (int64_t)B : 1,
                          cfg->n_threads, &head_w, &head_scratch);
    out->weights_bytes = add_sat(out->weights_bytes, head_w);
    out->kv_bytes = mul_sat(mul_sat(2 * (uint64_t)hp->n_layers * kv_dim, C), f4);
    /* rope tables (C, head_dim / 2) x 2; x, xn, s, q, k, v, att, gate, up; q8; scores (T, C);
     * the pool's per-thread scratch */
    uint64_t scratch = mul_sat(mul_sat(C, (uint64_t)hp->head_dim), f4);
    scratch = add_sat(scratch, B * (D + wide + 1 + 2 * q_dim + 2 * kv_dim + 2 * F) * f4 + B * wide);
    scratch = add_sat(scratch, mul_sat(mul_sat(T, C), f4));
    out->scratch_bytes = add_sat(add_sat(scratch, T * TRIT_POOL_SCRATCH_BYTES), head_scratch);
}

static enum trit_status cpu_init(const struct trit_model *m, const struct trit_backend_config *cfg, void **out) {
    const struct trit_hparams *hp = &m->hp;
    *out = NULL;
    if (cfg->n_ctx <= 0 || cfg->n_batch <= 0 || cfg->n_threads <= 0)
        return trit_error(TRIT_ERR_INVALID_ARG, "cpu backend: context %lld, batch %lld and threads %d must be positive",
                          (long long)cfg->n_ctx, (long long)cfg->n_batch, cfg->n_threads);
    struct cpu_state *st = trit_alloc(sizeof *st);
    if (!st) return trit_error(TRIT_ERR_OUT_OF_MEMORY, "cpu backend: out of memory");
    st->m = m;
    st->cfg = *cfg;
    if (st->cfg.n_batch > st->cfg.n_ctx) st->cfg.n_batch = st->cfg.n_ctx;
    enum trit_status status = trit_pool_create(cfg->n_threads, &st->pool);
    if (status != TRIT_OK) {
        cpu_free(st);
        return status;
    }

    st->layers = trit_alloc((size_t)hp->n_layers * sizeof *st->layers);
    if (!st->layers) status = trit_error(TRIT_ERR_OUT_OF_MEMORY, "cpu backend: out of memory");
    for (int64_t i = 0; i < hp->n_layers && status == TRIT_OK; i++) {
        const struct trit_layer *L = &m->layers[i];
        struct trit_cpu_layer *W = &st->layers[i];
        for (int j = 0; j < TRIT_N_W && status == TRIT_OK; j++) status = trit_cpu_matrix_pack(&L->w[j], &W->w[j]);
    }

    const int64_t B = st->cfg.n_batch, C = st->cfg.n_ctx, D = hp->dim, F = hp->ffn_dim;
    const int64_t q_dim = hp->n_heads * hp->head_dim, kv_dim = hp->n_kv_heads * hp->head_dim;
    const int64_t wide = widest_row(hp);
    st->k_cache = alloc_f32(hp->n_layers * C * kv_dim, &status);
    st->v_cache = alloc_f32(hp->n_layers * C * kv_dim, &status);
    st->rope_cos = alloc_f32(C * (hp->head_dim / 2), &status);
    st->rope_sin = alloc_f32(C * (hp->head_dim / 2), &status);
    st->x = alloc_f32(B * D, &status);
    st->xn = alloc_f32(B * wide, &status);
    if (status == TRIT_OK && !(st->q8 = trit_alloc_uninit((size_t)(B * wide))))
        status = trit_error(TRIT_ERR_OUT_OF_MEMORY, "cpu backend: out of memory");
    st->s = alloc_f32(B, &status);
    st->q = alloc_f32(B * q_dim, &status);
    st->k = alloc_f32(B * kv_dim, &status);
    st->v = alloc_f32(B * kv_dim, &status);
    st->att = alloc_f32(B * q_dim, &status);
    st->gate = alloc_f32(B * F, &status);
    st->up = alloc_f32(B * F, &status);
    st->scores = alloc_f32((int64_t)cfg->n_threads * C, &status);
    if (status == TRIT_OK && cfg->head_int8)
        status = trit_head_i8_init(&m->output, cfg->logits_all ? B : 1, TRIT_HEAD_I8_AUTO, st->pool, &st->head8);
    else if (status == TRIT_OK && cfg->head_q4)
        status = trit_head_q4_init(&m->output, cfg->logits_all ? B : 1, TRIT_HEAD_I8_AUTO, st->pool, &st->head8);
    if (status != TRIT_OK) {
        cpu_free(st);
        return status;
    }
    trit_rope_table(C, hp->head_dim, hp->rope_theta, st->rope_cos, st->rope_sin);
    snprintf(st->desc, sizeof st->desc, "CPU %s, %d thread%s%s%s", trit_cpu_kernel_name(), cfg->n_threads,
             cfg->n_threads == 1 ? "" : "s", cfg->head_int8 ? ", int8 head " : cfg->head_q4 ? ", 4-bit head " : "",
             cfg->head_int8 || cfg->head_q4 ? trit_head_i8_kernel_name(st->head8.kernel) : "");
    *out = st;
    return TRIT_OK;
}

static const char *cpu_describe(void *state) { return ((struct cpu_state *)state)->desc; }

static uint64_t cpu_memory_bytes(void *state) {
    const struct cpu_state *st = state;
    const struct trit_hparams *hp = &st->m->hp;
    uint64_t kv = (uint64_t)(2 * hp->n_layers * st->cfg.n_ctx * hp->n_kv_heads * hp->head_dim) * sizeof(float);
    return kv + trit_cpu_layers_bytes(st->layers, hp->n_layers) + (uint64_t)trit_head_i8_bytes(&st->head8);
}

const struct trit_backend_ops trit_cpu_backend = {
    .name = "cpu",
    .init = cpu_init,
    .forward = cpu_forward,
    .free = cpu_free,
    .describe = cpu_describe,
    .memory_bytes = cpu_memory_bytes,
    .plan = cpu_plan,
};
