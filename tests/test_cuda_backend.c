// labels: gpu
/* test_cuda_backend.c: the CUDA backend end to end (cuda/backend.cu through host/backend.h): small
 * random models of each graph family, built here, run by the CPU backend and the CUDA backend on
 * the same tokens (a prompt, then single-token decode steps through the CUDA graph), logits compared
 * within the tolerance derived below and greedy tokens equal at decisive positions; the graph
 * replay against eager launches bit for bit; positions rewritten after a truncation; the memory
 * check and bad inputs; the int8 head against the CPU's int8 head; forward_argmax (device greedy) and
 * forward_topk (device top-k with the repetition penalty); batches of several sequences over the
 * paged cache (forward_batch: each row equal to its sequence alone, bit for bit; forks and kv_copy;
 * forward's identity block table). Skips without a GPU (fails with TRIT_REQUIRE_GPU=1).
 *
 *   ctest --test-dir build -R test_cuda_backend --output-on-failure
 *   compute-sanitizer build/tests/test_cuda_backend --jobs 1 --filter '*decode_loop*'   (gpu_session.sh) */
#include <criterion/criterion.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "support.h"

#ifdef TRIT_HAVE_CUDA_BACKEND

#include "backend.h"
#include "model/model.h"
#include "quant/quant.h"
#include "trit_cuda_backend.h"

/* End-to-end tolerance, as the RMS of the logit differences over the RMS of the CPU's logits.
 * The two forward passes differ by fp32 rounding (sums in another order, CUDA's expf), the fp16 KV
 * cache (2^-11 relative per element) and fp16 copies of f32 embeddings and heads. Each of the 4
 * int8 requantizations per layer turns such differences into one-step code flips, and in the
 * worst case every code of a row moves by one step: 1/127 of the row's absmax, which is ~4x its
 * RMS for these activations, so each quantized matmul input moves by up to 4/127 of its scale and
 * the hidden state after L layers by up to 4 L x 4/127 = 0.25 for L = 2, a relative change the
 * fixed final norm and head pass on to the logits. (A CPU emulation of the CUDA numerics, fp16 KV
 * cache included, measured at most 0.037 on these shapes over 3 seeds, and 0.13 of the RMS for the
 * largest single logit difference.) */
#define E2E_NRMSE_TOL (4.0 * 2 * 4.0 / 127.0)
/* Greedy tokens must agree where the CPU's top-2 gap exceeds that bound on both logits. */
#define E2E_DECISIVE_GAP (2.0 * E2E_NRMSE_TOL)

#define OK(expr)                                                                                   \
    do {                                                                                           \
        enum trit_status st_ = (expr);                                                             \
        cr_assert_eq(st_, TRIT_OK, "%s: %s", #expr, trit_last_error());                           \
    } while (0)

/* ---- small random models ------------------------------------------------------------------------ */

struct shape {
    const char *name;
    struct trit_hparams hp;
    enum trit_dtype embd_dtype, head_dtype; /* head_dtype unused when tied */
    enum trit_scale_kind kind;
    int64_t group; /* > 0: every ternary matrix group-scaled (the group rule), codes with a few +2 */
};

/* Odd sizes on purpose (dim 96 and ffn 160 are not multiples of 128; head_dim 24); one of each
 * graph family; every dense dtype; both scale kinds; both RoPE styles; GQA groups of 3, 1 and 2. */
static const struct shape SHAPES[] = {
    {"2b4t-like",
     {.family = TRIT_FAMILY_BITNET_B158, .n_vocab = 300, .dim = 96, .n_layers = 2, .n_heads = 6, .n_kv_heads = 2,
      .head_dim = 16, .ffn_dim = 160, .ctx_train = 256, .norm_eps = 1e-5f, .rope_theta = 500000.0f,
      .act = TRIT_ACT_RELU2, .rope_style = TRIT_ROPE_NEOX, .sub_norms = true, .tied_embeddings = true},
     TRIT_DTYPE_F16, TRIT_DTYPE_F16, TRIT_SCALE_MUL, 0},
    {"llama-like",
     {.family = TRIT_FAMILY_LLAMA, .n_vocab = 300, .dim = 96, .n_layers = 2, .n_heads = 4, .n_kv_heads = 4,
      .head_dim = 24, .ffn_dim = 160, .ctx_train = 256, .norm_eps = 1e-5f, .rope_theta = 10000.0f,
      .act = TRIT_ACT_SILU, .rope_style = TRIT_ROPE_NORM, .sub_norms = false, .tied_embeddings = false},
     TRIT_DTYPE_BF16, TRIT_DTYPE_BF16, TRIT_SCALE_DIV, 0},
    {"hd128",
     {.family = TRIT_FAMILY_BITNET, .n_vocab = 1000, .dim = 256, .n_layers = 2, .n_heads = 2, .n_kv_heads = 1,
      .head_dim = 128, .ffn_dim = 512, .ctx_train = 256, .norm_eps = 1e-6f, .rope_theta = 10000.0f,
      .act = TRIT_ACT_SILU, .rope_style = TRIT_ROPE_NEOX, .sub_norms = true, .tied_embeddings = false},
     TRIT_DTYPE_F32, TRIT_DTYPE_F32, TRIT_SCALE_MUL, 0},
};
#define N_SHAPES (sizeof SHAPES / sizeof SHAPES[0])

/* The group rule's models (docs/design.md section 3): Qwen3 (q/k norms, activations per 64
 * columns) with groups of 64 and of 128, tied and untied; a BitNet b1.58 model in Q2_0 (groups of
 * 64, activations per token, sub-norms). */
static const struct shape GROUP_SHAPES[] = {
    {"qwen3-g64",
     {.family = TRIT_FAMILY_QWEN3, .n_vocab = 300, .dim = 128, .n_layers = 2, .n_heads = 4, .n_kv_heads = 2,
      .head_dim = 32, .ffn_dim = 192, .ctx_train = 256, .norm_eps = 1e-6f, .rope_theta = 1000000.0f,
      .act = TRIT_ACT_SILU, .rope_style = TRIT_ROPE_NEOX, .qk_norm = true, .act_block = 64, .tied_embeddings = true},
     TRIT_DTYPE_F16, TRIT_DTYPE_F16, TRIT_SCALE_MUL, 64},
    {"qwen3-g128",
     {.family = TRIT_FAMILY_QWEN3, .n_vocab = 300, .dim = 256, .n_layers = 2, .n_heads = 2, .n_kv_heads = 1,
      .head_dim = 64, .ffn_dim = 384, .ctx_train = 256, .norm_eps = 1e-6f, .rope_theta = 1000000.0f,
      .act = TRIT_ACT_SILU, .rope_style = TRIT_ROPE_NEOX, .qk_norm = true, .act_block = 64, .tied_embeddings = false},
     TRIT_DTYPE_BF16, TRIT_DTYPE_BF16, TRIT_SCALE_MUL, 128},
    {"bitnet-q2_0",
     {.family = TRIT_FAMILY_BITNET_B158, .n_vocab = 300, .dim = 128, .n_layers = 2, .n_heads = 4, .n_kv_heads = 2,
      .head_dim = 32, .ffn_dim = 192, .ctx_train = 256, .norm_eps = 1e-5f, .rope_theta = 500000.0f,
      .act = TRIT_ACT_RELU2, .rope_style = TRIT_ROPE_NEOX, .sub_norms = true, .tied_embeddings = true},
     TRIT_DTYPE_F16, TRIT_DTYPE_F16, TRIT_SCALE_MUL, 64},
};
#define N_GROUP_SHAPES (sizeof GROUP_SHAPES / sizeof GROUP_SHAPES[0])

static uint64_t rng_next(uint64_t *s) {
    uint64_t x = *s;
    x ^= x >> 12, x ^= x << 25, x ^= x >> 27;
    *s = x;
    return x * 0x2545F4914F6CDD1Dull;
}
static float rng_unit(uint64_t *s) { return (float)(rng_next(s) >> 40) * (1.0f / 16777216.0f); }
static float rng_normal(uint64_t *s) {
    const float u = rng_unit(s) + 1e-7f, v = rng_unit(s);
    return sqrtf(-2.0f * logf(u)) * cosf(6.2831853f * v);
}

static float *make_norm(int64_t n, uint64_t *s) {
    float *w = trit_alloc((size_t)n * sizeof *w);
    cr_assert_not_null(w);
    for (int64_t i = 0; i < n; i++) w[i] = 0.5f + rng_unit(s);
    return w;
}

/* Random codes; alpha = 1 / sqrt(2/3 n_cols) keeps every projection near unit RMS (2/3 of t are
 * nonzero), stored as its reciprocal for divide-style scales. */
static void make_ternary(struct trit_ternary *w, int64_t rows, int64_t cols, enum trit_scale_kind kind, uint64_t *s) {
    OK(trit_ternary_init(w, rows, cols));
    for (int64_t r = 0; r < rows; r++)
        for (int64_t c = 0; c < cols; c++) trit_ternary_set(w, r, c, (int)(rng_next(s) % 3) - 1);
    const float alpha = 1.0f / sqrtf((2.0f / 3.0f) * (float)cols);
    w->scale_kind = kind;
    w->scale = kind == TRIT_SCALE_MUL ? alpha : 1.0f / alpha;
}

/* N(0, 4 / dim): logits of unit-RMS hidden states come out with an RMS near 2. */
static void make_dense(struct trit_dense *d, int64_t rows, int64_t cols, enum trit_dtype dt, uint64_t *s) {
    const size_t es = dt == TRIT_DTYPE_F32 ? 4 : 2;
    void *v = trit_alloc((size_t)(rows * cols) * es);
    cr_assert_not_null(v);
    const float sd = 2.0f / sqrtf((float)cols);
    for (int64_t i = 0; i < rows * cols; i++) {
        const float x = sd * rng_normal(s);
        if (dt == TRIT_DTYPE_F32) ((float *)v)[i] = x;
        else ((uint16_t *)v)[i] = dt == TRIT_DTYPE_F16 ? trit_fp32_to_fp16(x) : trit_fp32_to_bf16(x);
    }
    *d = (struct trit_dense){.dtype = dt, .n_rows = rows, .n_cols = cols, .data = v, .owned = v};
}

/* Group-scaled: the same codes with about one +2 in 50, and group scales around alpha. */
static void make_grouped(struct trit_ternary *w, int64_t rows, int64_t cols, int64_t group, uint64_t *s) {
    OK(trit_ternary_init_grouped(w, rows, cols, group));
    for (int64_t r = 0; r < rows; r++)
        for (int64_t c = 0; c < cols; c++) trit_ternary_set(w, r, c, rng_next(s) % 50 == 0 ? 2 : (int)(rng_next(s) % 3) - 1);
    const float alpha = 1.0f / sqrtf((2.0f / 3.0f) * (float)cols);
    for (int64_t i = 0; i < rows * trit_ternary_n_groups(w); i++) w->group_scales[i] = alpha * (0.5f + rng_unit(s));
}

static void make_matrix(struct trit_ternary *w, int64_t rows, int64_t cols, const struct shape *sh, uint64_t *s) {
    if (sh->group > 0) make_grouped(w, rows, cols, sh->group, s);
    else make_ternary(w, rows, cols, sh->kind, s);
}

static void make_model(const struct shape *sh, uint64_t seed, struct trit_model *m) {
    memset(m, 0, sizeof *m);
    uint64_t s = seed * 0x9E3779B97F4A7C15ull + 1;
    const struct trit_hparams *hp = &sh->hp;
    m->hp = *hp;
    make_dense(&m->tok_embd, hp->n_vocab, hp->dim, sh->embd_dtype, &s);
    if (hp->tied_embeddings) {
        m->output = m->tok_embd;
        m->output.owned = NULL;
    } else {
        make_dense(&m->output, hp->n_vocab, hp->dim, sh->head_dtype, &s);
    }
    m->out_norm = make_norm(hp->dim, &s);
    m->layers = trit_alloc((size_t)hp->n_layers * sizeof *m->layers);
    cr_assert_not_null(m->layers);
    const int64_t D = hp->dim, F = hp->ffn_dim, qd = hp->n_heads * hp->head_dim, kvd = hp->n_kv_heads * hp->head_dim;
    for (int64_t i = 0; i < hp->n_layers; i++) {
        struct trit_layer *l = &m->layers[i];
        l->attn_norm = make_norm(D, &s);
        l->ffn_norm = make_norm(D, &s);
        if (hp->sub_norms) {
            l->attn_sub_norm = make_norm(qd, &s);
            l->ffn_sub_norm = make_norm(F, &s);
        }
        if (hp->qk_norm) {
            l->attn_q_norm = make_norm(hp->head_dim, &s);
            l->attn_k_norm = make_norm(hp->head_dim, &s);
        }
        make_matrix(&l->w[TRIT_W_Q], qd, D, sh, &s);
        make_matrix(&l->w[TRIT_W_K], kvd, D, sh, &s);
        make_matrix(&l->w[TRIT_W_V], kvd, D, sh, &s);
        make_matrix(&l->w[TRIT_W_O], D, qd, sh, &s);
        make_matrix(&l->w[TRIT_W_GATE], F, D, sh, &s);
        make_matrix(&l->w[TRIT_W_UP], F, D, sh, &s);
        make_matrix(&l->w[TRIT_W_DOWN], D, F, sh, &s);
    }
    OK(trit_model_validate(m));
}

static void random_tokens(int32_t *t, int64_t n, int64_t n_vocab, uint64_t seed) {
    uint64_t s = seed | 1;
    for (int64_t i = 0; i < n; i++) t[i] = (int32_t)(rng_next(&s) % (uint64_t)n_vocab);
}

/* ---- comparison ------------------------------------------------------------------------------------ */

struct cmp_stats {
    double worst_nrmse;
    int n_decisive, n_rows;
};

/* Compares one row of logits; returns its NRMSE. Fails on NaN/Inf, on an NRMSE above the
 * tolerance, and on a different greedy token where the CPU's top-2 gap is decisive. */
static double compare_row(const float *cpu, const float *gpu, int64_t n_vocab, const char *what, int64_t pos,
                          struct cmp_stats *st) {
    double ss = 0.0, sd = 0.0;
    int64_t a_cpu = 0, a_gpu = 0;
    float top2 = -INFINITY;
    for (int64_t j = 0; j < n_vocab; j++) {
        cr_assert(isfinite(gpu[j]), "%s pos %ld: logit %ld is %g", what, (long)pos, (long)j, (double)gpu[j]);
        ss += (double)cpu[j] * cpu[j];
        sd += ((double)gpu[j] - cpu[j]) * ((double)gpu[j] - cpu[j]);
        if (cpu[j] > cpu[a_cpu]) a_cpu = j;
        if (gpu[j] > gpu[a_gpu]) a_gpu = j;
    }
    for (int64_t j = 0; j < n_vocab; j++)
        if (j != a_cpu && cpu[j] > top2) top2 = cpu[j];
    const double rms = sqrt(ss / (double)n_vocab), nrmse = sqrt(sd / (double)n_vocab) / rms;
    cr_assert(nrmse <= E2E_NRMSE_TOL, "%s pos %ld: logits NRMSE %.4f > %.4f", what, (long)pos, nrmse, E2E_NRMSE_TOL);
    if (cpu[a_cpu] - top2 > E2E_DECISIVE_GAP * rms) {
        st->n_decisive++;
        cr_assert_eq(a_gpu, a_cpu, "%s pos %ld: greedy token %ld on the GPU, %ld on the CPU (gap %.3f rms)", what,
                     (long)pos, (long)a_gpu, (long)a_cpu, (cpu[a_cpu] - top2) / rms);
    }
    st->n_rows++;
    if (nrmse > st->worst_nrmse) st->worst_nrmse = nrmse;
    return nrmse;
}

static struct trit_backend_config config(int64_t n_ctx, int64_t n_batch, bool logits_all) {
    return (struct trit_backend_config){.n_ctx = n_ctx, .n_batch = n_batch, .n_threads = 2, .logits_all = logits_all};
}

/* ---- two backend states on one model ------------------------------------------------------------------ */

/* State a of backend ops_a and state b of ops_b (the CPU and CUDA, or CUDA twice), on one model and
 * config, fed the same tokens. */
struct twin {
    const struct trit_backend_ops *ops_a, *ops_b;
    void *a, *b;
};

static void twin_init(struct twin *t, const struct trit_backend_ops *ops_a, const struct trit_backend_ops *ops_b,
                      const struct trit_model *m, const struct trit_backend_config *cfg) {
    *t = (struct twin){.ops_a = ops_a, .ops_b = ops_b};
    OK(ops_a->init(m, cfg, &t->a));
    OK(ops_b->init(m, cfg, &t->b));
}

/* Both states run tok[0..n) at positions pos0..pos0+n-1: a's logits to la, b's to lb. */
static void twin_forward(const struct twin *t, const int32_t *tok, int64_t n, int64_t pos0, float *la, float *lb) {
    OK(t->ops_a->forward(t->a, tok, n, pos0, la));
    OK(t->ops_b->forward(t->b, tok, n, pos0, lb));
}

static void twin_free(struct twin *t) {
    t->ops_a->free(t->a);
    t->ops_b->free(t->b);
}

/* The CPU (state a) against the CUDA backend (state b), both with cfg.logits_all: the prompt
 * tok[0..n_prompt) in one batch, then tok[n_prompt..n) one token at a time, then compare_row on all
 * n rows. expect_graphs: every single-token call after the first must replay the CUDA graph. */
static struct cmp_stats prompt_then_steps_match(const struct twin *t, const int32_t *tok, int64_t n_prompt, int64_t n,
                                                int64_t V, bool expect_graphs, const char *what) {
    float *lc = malloc((size_t)(n * V) * sizeof *lc), *lg = malloc((size_t)(n * V) * sizeof *lg);
    twin_forward(t, tok, n_prompt, 0, lc, lg);
    for (int64_t i = n_prompt; i < n; i++) {
        twin_forward(t, tok + i, 1, i, lc + i * V, lg + i * V);
        if (expect_graphs)
            cr_assert_eq(trit_cuda_backend_last_call_graphed(t->b), i > n_prompt, "step %ld: graph replay expected "
                         "from the second single-token call", (long)i);
    }
    struct cmp_stats st = {0};
    for (int64_t i = 0; i < n; i++) compare_row(lc + i * V, lg + i * V, V, what, i, &st);
    free(lc), free(lg);
    return st;
}

/* ---- end to end against the CPU backend -------------------------------------------------------------- */

/* The CPU against CUDA with batches of at most 8 (the GEMV path with the prefill attention): the
 * last token's logits after pieces of 5, 8, 2, 1, 7, 3, 1, 1 of tok (28 tokens). */
static void small_batches_match(const struct trit_model *m, const int32_t *tok, const char *what) {
    const int64_t V = m->hp.n_vocab;
    const struct trit_backend_config cfg = config(64, 8, false);
    struct twin t;
    twin_init(&t, &trit_cpu_backend, &trit_cuda_backend, m, &cfg);
    float *lc = malloc((size_t)V * sizeof *lc), *lg = malloc((size_t)V * sizeof *lg);
    const int64_t chunks[] = {5, 8, 2, 1, 7, 3, 1, 1};
    struct cmp_stats st = {0};
    int64_t pos = 0;
    for (size_t c = 0; c < sizeof chunks / sizeof chunks[0]; c++) {
        twin_forward(&t, tok + pos, chunks[c], pos, lc, lg);
        pos += chunks[c];
        compare_row(lc, lg, V, what, pos - 1, &st);
    }
    free(lc), free(lg);
    twin_free(&t);
}


/* A prompt of 40 tokens with every row's logits (the GEMM path and the head GEMV in pieces of 8), then 24
 * single-token steps (GEMV, decode attention, the CUDA graph from the second step on). */
Test(cuda_backend, prefill_and_decode_loop_match_cpu) {
    if (!test_require_gpu()) return;
    for (size_t si = 0; si < N_SHAPES; si++) {
        struct trit_model m;
        make_model(&SHAPES[si], 11 + si, &m);
        const int64_t V = m.hp.n_vocab, n_prompt = 40, n_gen = 24, n = n_prompt + n_gen;
        int32_t tok[64];
        random_tokens(tok, n, V, 0x77 + si);
        const struct trit_backend_config cfg = config(128, 64, true);
        struct twin t;
        twin_init(&t, &trit_cpu_backend, &trit_cuda_backend, &m, &cfg);
        const struct cmp_stats st = prompt_then_steps_match(&t, tok, n_prompt, n, V, true, SHAPES[si].name);
        cr_log_info("%s: worst NRMSE %.4f over %d rows, %d decisive greedy tokens equal", SHAPES[si].name,
                    st.worst_nrmse, st.n_rows, st.n_decisive);
        twin_free(&t);
        trit_model_release(&m);
    }
}

/* The group rule's models (Qwen3 with q/k norms and activations per 64 columns, groups of 64 and
 * 128; a BitNet b1.58 model in Q2_0) against the CPU backend: a 40-token prompt with every row (the
 * group GEMM), then 24 single-token steps (the group GEMV, graph replays), then pieces of at most 8
 * tokens (the group GEMV with the prefill attention). (qwen3-g64's FFN has K = 192: a K that ends
 * mid-chunk.) */
Test(cuda_backend, group_rule_models_match_cpu) {
    if (!test_require_gpu()) return;
    for (size_t si = 0; si < N_GROUP_SHAPES; si++) {
        struct trit_model m;
        make_model(&GROUP_SHAPES[si], 91 + si, &m);
        cr_assert(trit_model_group_rule(&m));
        const int64_t V = m.hp.n_vocab, n_prompt = 40, n = 64;
        int32_t tok[64];
        random_tokens(tok, n, V, 0x177 + si);
        struct trit_backend_config cfg = config(128, 64, true);
        struct twin t;
        twin_init(&t, &trit_cpu_backend, &trit_cuda_backend, &m, &cfg);
        const struct cmp_stats st = prompt_then_steps_match(&t, tok, n_prompt, n, V, true, GROUP_SHAPES[si].name);
        cr_log_info("%s: worst NRMSE %.4f over %d rows, %d decisive greedy tokens equal", GROUP_SHAPES[si].name,
                    st.worst_nrmse, st.n_rows, st.n_decisive);
        twin_free(&t);

        small_batches_match(&m, tok, GROUP_SHAPES[si].name);
        trit_model_release(&m);
    }
}

/* What the device does not run is refused with a message: a model mixing group sizes. */
Test(cuda_backend, group_rule_refusals) {
    if (!test_require_gpu()) return;
    struct trit_model m;
    make_model(&GROUP_SHAPES[0], 97, &m);
    trit_ternary_free(&m.layers[1].w[TRIT_W_DOWN]);
    make_grouped(&m.layers[1].w[TRIT_W_DOWN], m.hp.dim, m.hp.ffn_dim, 128, &(uint64_t){5});
    const struct trit_backend_config cfg = config(64, 8, false);
    void *gpu = NULL;
    cr_assert_eq(trit_cuda_backend.init(&m, &cfg, &gpu), TRIT_ERR_UNSUPPORTED);
    cr_assert(strstr(trit_last_error(), "mixes group sizes") != NULL, "%s", trit_last_error());
    trit_model_release(&m);
}

/* Batches of at most 8 (the GEMV path with the prefill attention) and the last token's logits. */
Test(cuda_backend, small_batches_last_token_match_cpu) {
    if (!test_require_gpu()) return;
    for (size_t si = 0; si < N_SHAPES; si++) {
        struct trit_model m;
        make_model(&SHAPES[si], 21 + si, &m);
        int32_t tok[40];
        random_tokens(tok, 40, m.hp.n_vocab, 0x99 + si);
        small_batches_match(&m, tok, SHAPES[si].name);
        trit_model_release(&m);
    }
}

/* The add-only and the dp4a decode GEMV give the same int32 accumulators, so the whole forward pass
 * gives the same logits, bit for bit: pieces of at most 8 tokens (the GEMV path) with every row's
 * logits, on every shape. The describe line names the GEMV. */
Test(cuda_backend, add_only_and_dp4a_gemv_agree_bit_for_bit) {
    if (!test_require_gpu()) return;
    for (size_t si = 0; si < N_SHAPES; si++) {
        struct trit_model m;
        make_model(&SHAPES[si], 41 + si, &m);
        const int64_t V = m.hp.n_vocab;
        int32_t tok[24];
        random_tokens(tok, 24, V, 0x5A + si);
        struct trit_backend_config cfg_add = config(64, 8, true), cfg_dp4a = config(64, 8, true);
        cfg_add.cuda_gemv = TRIT_CUDA_GEMV_ADD;
        cfg_dp4a.cuda_gemv = TRIT_CUDA_GEMV_DP4A;
        void *a = NULL, *d = NULL;
        OK(trit_cuda_backend.init(&m, &cfg_add, &a));
        OK(trit_cuda_backend.init(&m, &cfg_dp4a, &d));
        cr_assert(strstr(trit_cuda_backend.describe(a), "add-only decode GEMV"), "%s", trit_cuda_backend.describe(a));
        cr_assert(strstr(trit_cuda_backend.describe(d), "dp4a decode GEMV"), "%s", trit_cuda_backend.describe(d));
        float *la = malloc((size_t)(8 * V) * sizeof *la), *ld = malloc((size_t)(8 * V) * sizeof *ld);
        const int64_t chunks[] = {5, 8, 1, 1, 3, 6};
        int64_t pos = 0;
        for (size_t c = 0; c < sizeof chunks / sizeof chunks[0]; c++) {
            OK(trit_cuda_backend.forward(a, tok + pos, chunks[c], pos, la));
            OK(trit_cuda_backend.forward(d, tok + pos, chunks[c], pos, ld));
            cr_assert_arr_eq(la, ld, (size_t)(chunks[c] * V) * sizeof *la, "%s: positions %ld..%ld differ",
                             SHAPES[si].name, (long)pos, (long)(pos + chunks[c] - 1));
            pos += chunks[c];
        }
        free(la), free(ld);
        trit_cuda_backend.free(a);
        trit_cuda_backend.free(d);
        trit_model_release(&m);
    }
}

/* The captured graph replays exactly what the eager launches compute (the kernels are
 * deterministic: no atomics on the single-token path), at every position. */
Test(cuda_backend, decode_loop_graph_equals_eager) {
    if (!test_require_gpu()) return;
    struct trit_model m;
    make_model(&SHAPES[0], 31, &m);
    const int64_t V = m.hp.n_vocab, n = 30;
    int32_t tok[30];
    random_tokens(tok, n, V, 0x55);
    const struct trit_backend_config cfg = config(64, 16, false);
    struct twin t;
    twin_init(&t, &trit_cuda_backend, &trit_cuda_backend, &m, &cfg);
    void *eager = t.a, *graphed = t.b;
    trit_cuda_backend_set_graphs(eager, false);
    float *le = malloc((size_t)V * sizeof *le), *lg = malloc((size_t)V * sizeof *lg);
    twin_forward(&t, tok, 6, 0, le, lg);
    cr_assert(memcmp(le, lg, (size_t)V * sizeof *le) == 0, "prompt logits");
    for (int64_t i = 6; i < n; i++) {
        twin_forward(&t, tok + i, 1, i, le, lg);
        cr_assert(!trit_cuda_backend_last_call_graphed(eager));
        cr_assert(memcmp(le, lg, (size_t)V * sizeof *le) == 0, "step %ld: graph and eager logits differ", (long)i);
    }
    cr_assert(trit_cuda_backend_last_call_graphed(graphed));
    free(le), free(lg);
    twin_free(&t);
    trit_model_release(&m);
}

/* After a truncation the same positions are written again: the same tokens give the same logits,
 * bit for bit (the graph reads the position from the device, so it replays at any position). */
Test(cuda_backend, rewritten_positions_repeat_exactly) {
    if (!test_require_gpu()) return;
    struct trit_model m;
    make_model(&SHAPES[1], 41, &m);
    const int64_t V = m.hp.n_vocab;
    int32_t tok[40];
    random_tokens(tok, 40, V, 0x66);
    const struct trit_backend_config cfg = config(64, 32, false);
    void *gpu = NULL;
    OK(trit_cuda_backend.init(&m, &cfg, &gpu));
    float *first = malloc((size_t)(10 * V) * sizeof *first), *again = malloc((size_t)V * sizeof *again);
    OK(trit_cuda_backend.forward(gpu, tok, 20, 0, again));
    for (int64_t i = 20; i < 30; i++) OK(trit_cuda_backend.forward(gpu, tok + i, 1, i, first + (i - 20) * V));
    for (int64_t i = 20; i < 30; i++) {
        OK(trit_cuda_backend.forward(gpu, tok + i, 1, i, again));
        cr_assert(memcmp(first + (i - 20) * V, again, (size_t)V * sizeof *again) == 0, "position %ld", (long)i);
    }
    free(first), free(again);
    trit_cuda_backend.free(gpu);
    trit_model_release(&m);
}

/* ---- init and input errors ----------------------------------------------------------------------------- */

Test(cuda_backend, describe_and_memory) {
    if (!test_require_gpu()) return;
    struct trit_model m;
    make_model(&SHAPES[2], 51, &m);
    const struct trit_backend_config cfg = config(256, 64, true);
    void *gpu = NULL;
    OK(trit_cuda_backend.init(&m, &cfg, &gpu));
    const char *d = trit_cuda_backend.describe(gpu);
    cr_assert(strncmp(d, "CUDA ", 5) == 0 && strstr(d, ", sm_") && strstr(d, " GiB"), "describe: %s", d);
    /* at least the weights (2 bits each), two heads of fp16, and the fp16 KV cache */
    const struct trit_hparams *hp = &m.hp;
    const uint64_t kv = (uint64_t)(2 * hp->n_layers * 256 * hp->n_kv_heads * hp->head_dim * 2);
    const uint64_t dense = (uint64_t)(2 * hp->n_vocab * hp->dim * 2);
    cr_assert_geq(trit_cuda_backend.memory_bytes(gpu), (uint64_t)trit_model_ternary_params(&m) / 4 + kv + dense);
    cr_assert_geq(trit_cuda_backend_n_splits(gpu), 1);
    trit_cuda_backend.free(gpu);
    trit_model_release(&m);
}

Test(cuda_backend, refuses_what_it_cannot_hold_or_run) {
    if (!test_require_gpu()) return;
    struct trit_model m;
    make_model(&SHAPES[0], 61, &m);
    void *gpu = (void *)1;
    /* 2^30 positions: 256 GiB of KV cache, checked before anything is allocated */
    struct trit_backend_config cfg = config((int64_t)1 << 30, 8, false);
    cr_assert_eq(trit_cuda_backend.init(&m, &cfg, &gpu), TRIT_ERR_OUT_OF_MEMORY);
    cr_assert_null(gpu);
    cr_assert(strstr(trit_last_error(), "GiB of device memory") && strstr(trit_last_error(), "GiB free"), "%s",
              trit_last_error());
    trit_model_release(&m);
}

/* The int8 head (cfg.head_int8): the same codes and scales as the CPU's int8 head (quantized on the
 * host by host/cpu/head_int8.c), so the logits differ only as the hidden states do; a 12-token
 * prompt with every row (two passes of the 8-row kernel), then single-token steps (graph). */
Test(cuda_backend, int8_head_matches_cpu_int8_head) {
    if (!test_require_gpu()) return;
    for (size_t si = 0; si < N_SHAPES; si++) {
        struct trit_model m;
        make_model(&SHAPES[si], 81 + si, &m);
        const int64_t V = m.hp.n_vocab, n_prompt = 12, n = 20;
        int32_t tok[20];
        random_tokens(tok, n, V, 0x99 + si);
        struct trit_backend_config cfg = config(64, 16, true);
        cfg.head_int8 = true;
        struct twin t;
        twin_init(&t, &trit_cpu_backend, &trit_cuda_backend, &m, &cfg);
        cr_assert(strstr(trit_cuda_backend.describe(t.b), "int8 head"), "%s", trit_cuda_backend.describe(t.b));
        const struct cmp_stats st = prompt_then_steps_match(&t, tok, n_prompt, n, V, false, SHAPES[si].name);
        cr_log_info("%s int8 head: worst NRMSE %.4f over %d rows", SHAPES[si].name, st.worst_nrmse, st.n_rows);
        twin_free(&t);
        trit_model_release(&m);
    }
}

/* forward_argmax equals the argmax (lowest id on ties) of forward's logits on a twin state, token
 * for token, eager and graphed, fp16 and int8 heads, greedy tokens fed back. */
Test(cuda_backend, forward_argmax_matches_forward) {
    if (!test_require_gpu()) return;
    for (int i8 = 0; i8 < 2; i8++) {
        struct trit_model m;
        make_model(&SHAPES[0], 91, &m);
        const int64_t V = m.hp.n_vocab;
        int32_t tok[8];
        random_tokens(tok, 8, V, 0x42);
        struct trit_backend_config cfg = config(64, 8, false);
        cfg.head_int8 = i8;
        struct twin t;
        twin_init(&t, &trit_cuda_backend, &trit_cuda_backend, &m, &cfg);
        void *a = t.a, *b = t.b;
        float *lg = malloc((size_t)V * sizeof *lg);
        int32_t next = -1, in = 0;
        OK(trit_cuda_backend.forward(a, tok, 8, 0, lg));
        OK(trit_cuda_backend.forward_argmax(b, tok, 8, 0, &next));
        for (int64_t pos = 8; pos < 24; pos++) {
            int64_t best = 0;
            for (int64_t j = 1; j < V; j++)
                if (lg[j] > lg[best]) best = j;
            cr_assert_eq(next, (int32_t)best, "int8 %d pos %ld: device argmax %d, host %ld", i8, (long)pos, next,
                         (long)best);
            in = next;
            OK(trit_cuda_backend.forward(a, &in, 1, pos, lg));
            OK(trit_cuda_backend.forward_argmax(b, &in, 1, pos, &next));
        }
        free(lg);
        twin_free(&t);
        trit_model_release(&m);
    }
}

/* forward_topk equals trit_topk_penalized (host/sampler.c) of forward's logits on a twin state, bit
 * for bit, step by step (eager, then graphed), for k from 1 to TRIT_TOPK_MAX and penalty lists with
 * repeats and ids outside the vocabulary; a penalty of 1 and an empty list; bad arguments refused. */
Test(cuda_backend, forward_topk_matches_host_selection) {
    if (!test_require_gpu()) return;
    struct trit_model m;
    make_model(&SHAPES[2], 93, &m); /* vocabulary 1000 > TRIT_TOPK_MAX */
    const int64_t V = m.hp.n_vocab;
    int32_t tok[8];
    random_tokens(tok, 8, V, 0x43);
    const struct trit_backend_config cfg = config(64, 8, false);
    struct twin t;
    twin_init(&t, &trit_cuda_backend, &trit_cuda_backend, &m, &cfg);
    void *a = t.a, *b = t.b;
    float *lg = malloc((size_t)V * sizeof *lg), vals[TRIT_TOPK_MAX], want_v[TRIT_TOPK_MAX];
    int32_t ids[TRIT_TOPK_MAX], want_i[TRIT_TOPK_MAX];
    const int32_t pen[] = {5, 17, 5, -3, 999, 1000, 123456, 17, 0, 42};
    const int32_t ks[] = {1, 2, 40, 255, TRIT_TOPK_MAX};
    const float penalties[] = {1.3f, 1.0f, 0.7f};
    OK(trit_cuda_backend.forward(a, tok, 8, 0, lg));
    for (int64_t pos = 8, step = 0; pos < 20; pos++, step++) {
        const int32_t k = ks[step % 5], n_pen = step % 4 == 3 ? 0 : (int32_t)(sizeof pen / sizeof pen[0]);
        const float p = penalties[step % 3];
        const int32_t *in = pos == 8 ? tok : &tok[step % 8];
        const int64_t n = pos == 8 ? 8 : 1, p0 = pos == 8 ? 0 : pos - 1;
        if (pos > 8) OK(trit_cuda_backend.forward(a, in, n, p0, lg));
        OK(trit_cuda_backend.forward_topk(b, in, n, p0, k, pen, n_pen, p, vals, ids));
        trit_topk_penalized(lg, (int32_t)V, pen, n_pen, p, k, want_v, want_i);
        for (int32_t r = 0; r < k; r++)
            cr_assert(ids[r] == want_i[r] && memcmp(&vals[r], &want_v[r], sizeof(float)) == 0,
                      "step %ld k %d rank %d: (%d, %a) vs host (%d, %a)", (long)step, k, r, ids[r], (double)vals[r],
                      want_i[r], (double)want_v[r]);
    }
    cr_assert_eq(trit_cuda_backend.forward_topk(b, tok, 1, 30, 0, pen, 2, 1.1f, vals, ids), TRIT_ERR_INVALID_ARG);
    cr_assert_eq(trit_cuda_backend.forward_topk(b, tok, 1, 30, TRIT_TOPK_MAX + 1, pen, 2, 1.1f, vals, ids),
                 TRIT_ERR_INVALID_ARG);
    cr_assert_eq(trit_cuda_backend.forward_topk(b, tok, 1, 30, 4, pen, 2, INFINITY, vals, ids), TRIT_ERR_INVALID_ARG);
    free(lg);
    twin_free(&t);
    trit_model_release(&m);
}

Test(cuda_backend, bad_tokens_and_positions) {
    if (!test_require_gpu()) return;
    struct trit_model m;
    make_model(&SHAPES[0], 71, &m);
    const struct trit_backend_config cfg = config(16, 8, false);
    void *gpu = NULL;
    OK(trit_cuda_backend.init(&m, &cfg, &gpu));
    float *logits = malloc((size_t)m.hp.n_vocab * sizeof *logits);
    const int32_t bad[2] = {3, 300}, good[9] = {1, 2, 3, 4, 5, 6, 7, 8, 9};
    cr_assert_eq(trit_cuda_backend.forward(gpu, bad, 2, 0, logits), TRIT_ERR_INVALID_ARG);
    cr_assert_eq(trit_cuda_backend.forward(gpu, good, 9, 0, logits), TRIT_ERR_INVALID_ARG); /* batch holds 8 */
    cr_assert_eq(trit_cuda_backend.forward(gpu, good, 2, 15, logits), TRIT_ERR_CONTEXT_FULL);
    OK(trit_cuda_backend.forward(gpu, good, 8, 8, logits)); /* the last 8 positions */
    free(logits);
    trit_cuda_backend.free(gpu);
    trit_model_release(&m);
}

/* ---- batches of several sequences over the paged cache (forward_batch, kv_copy) ------------------- */

static trit_context *cuda_context(const struct trit_model *m, int32_t n_ctx, int32_t n_batch, int32_t n_seq) {
    struct trit_context_params cp = trit_context_default_params();
    cp.device = TRIT_DEVICE_CUDA;
    cp.n_ctx = n_ctx;
    cp.n_batch = n_batch;
    cp.n_seq_max = n_seq;
    trit_context *ctx = NULL;
    OK(trit_context_init(m, &cp, &ctx));
    cr_assert_str_eq(trit_context_backend(ctx), "cuda");
    return ctx;
}

#define B_SEQ 5
#define B_MAX_TOK 200

/* A sequence: its tokens, and the rows of logits running it alone gives after its prompt and after
 * each later token. */
struct bseq {
    int32_t ids[B_MAX_TOK];
    int32_t n_prompt, n_total;
    float *alone;
};

/* Tokens ids[0..n) of sequence 0 at positions len0 ..: trit_decode_batch, the last row. (Not
 * trit_decode: a one-sequence context may run it through forward and the prefill tiles, whose bits
 * differ from the decode attention's that forward_batch gives every token.) */
static const float *decode_one_seq(trit_context *ctx, const int32_t *ids, int32_t n, int32_t len0) {
    int32_t pos[256], sid[256];
    cr_assert_leq(n, 256);
    for (int32_t i = 0; i < n; i++) pos[i] = len0 + i, sid[i] = 0;
    const struct trit_batch b = {.n_tokens = n, .token = ids, .pos = pos, .seq_id = sid};
    const float *row = NULL;
    int32_t n_rows = 0;
    OK(trit_decode_batch(ctx, &b, &row, &n_rows));
    cr_assert_eq(n_rows, 1);
    return row;
}

/* Alone, as tests/test_batch.c: the prompt in one call, then one token at a time, in a context of
 * one sequence. */
static void bseq_alone(const struct trit_model *m, struct bseq *s) {
    const int64_t V = m->hp.n_vocab;
    trit_context *ctx = cuda_context(m, 256, 256, 1);
    const float *row = decode_one_seq(ctx, s->ids, s->n_prompt, 0);
    s->alone = malloc((size_t)((s->n_total - s->n_prompt + 1) * V) * sizeof(float));
    memcpy(s->alone, row, (size_t)V * sizeof(float));
    for (int32_t i = s->n_prompt; i < s->n_total; i++) {
        row = decode_one_seq(ctx, &s->ids[i], 1, i);
        memcpy(s->alone + (size_t)((i - s->n_prompt + 1) * V), row, (size_t)V * sizeof(float));
    }
    trit_context_free(ctx);
}

/* Five sequences at once (prompts of 1, 63, 64, 65 and 150 tokens: across block edges), each step
 * a random chunk of each running prompt or its next token, interleaved at random; every row that
 * comes back equals the sequence alone, bit for bit (support.h's test_batch_run, which
 * tests/test_batch.c runs on the CPU). */
static void bseq_batched(const struct trit_model *m, struct test_rng *rng, struct bseq seqs[B_SEQ], int32_t n_batch) {
    trit_context *ctx = cuda_context(m, 256, n_batch, B_SEQ);
    struct test_bseq view[B_SEQ];
    for (int k = 0; k < B_SEQ; k++)
        view[k] = (struct test_bseq){.ids = seqs[k].ids, .alone = seqs[k].alone, .n_prompt = seqs[k].n_prompt,
                                     .n_total = seqs[k].n_total, .src = -1, .junk_from = -1};
    const struct test_batch_target t = test_batch_ctx(ctx);
    char what[64];
    snprintf(what, sizeof what, "batches of at most %d tokens", n_batch);
    test_batch_run(&t, rng, view, B_SEQ, m->hp.n_vocab, n_batch, what);
    trit_context_free(ctx);
}

Test(cuda_backend, batch_of_five_sequences_equals_each_alone) {
    if (!test_require_gpu()) return;
    for (size_t si = 0; si < N_SHAPES; si++) {
        struct trit_model m;
        make_model(&SHAPES[si], 101 + si, &m);
        uint64_t rng = 0xB47C4 + si;
        static const int32_t prompts[B_SEQ] = {1, 63, 64, 65, 150};
        struct bseq seqs[B_SEQ];
        for (int k = 0; k < B_SEQ; k++) {
            seqs[k].n_prompt = prompts[k];
            seqs[k].n_total = prompts[k] + 3 + (int32_t)(rng_next(&rng) % 18);
            random_tokens(seqs[k].ids, seqs[k].n_total, m.hp.n_vocab, rng_next(&rng));
            bseq_alone(&m, &seqs[k]);
        }
        struct test_rng sched = {.state = rng | 1}; /* the schedules' draws (xorshift: never 0) */
        bseq_batched(&m, &sched, seqs, 96);
        bseq_batched(&m, &sched, seqs, 7); /* small batches: sequences cut mid-prompt */
        for (int k = 0; k < B_SEQ; k++) free(seqs[k].alone);
        trit_model_release(&m);
    }
}

/* A fork shares the prefix's blocks (70 tokens: block 1 is partly filled); when both branches write
 * into block 1 in one batch, the pool gives one of them a copy (kv_copy on the device) and each
 * branch's logits equal its tokens run alone, bit for bit. The copy's bounds are checked. */
Test(cuda_backend, kv_copy_and_fork) {
    if (!test_require_gpu()) return;
    struct trit_model m;
    make_model(&SHAPES[0], 111, &m);
    const int64_t V = m.hp.n_vocab;
    int32_t prefix[72], ids[3][80];
    random_tokens(prefix, 70, V, 0xF0);
    for (int k = 0; k < 3; k++) {
        memcpy(ids[k], prefix, 70 * sizeof(int32_t));
        random_tokens(ids[k] + 70, 8, V, 0xF1 + (uint64_t)k);
    }
    /* alone: each branch's 78 tokens, the prompt of 70 then one at a time */
    float *alone = malloc((size_t)(3 * 8 * V) * sizeof(float));
    for (int k = 0; k < 3; k++) {
        trit_context *one = cuda_context(&m, 128, 80, 1);
        (void)decode_one_seq(one, ids[k], 70, 0);
        for (int i = 0; i < 8; i++) {
            const float *row = decode_one_seq(one, &ids[k][70 + i], 1, 70 + i);
            memcpy(alone + (size_t)((k * 8 + i) * V), row, (size_t)V * sizeof(float));
        }
        trit_context_free(one);
    }
    trit_context *ctx = cuda_context(&m, 128, 80, 3);
    const float *logits;
    int32_t n_rows;
    int32_t pos[80], sid[80];
    for (int i = 0; i < 70; i++) pos[i] = i, sid[i] = 0;
    const struct trit_batch pre = {.n_tokens = 70, .token = prefix, .pos = pos, .seq_id = sid};
    OK(trit_decode_batch(ctx, &pre, &logits, &n_rows));
    OK(trit_seq_fork(ctx, 0, 1, 70));
    OK(trit_seq_fork(ctx, 0, 2, 70));
    struct trit_kv_stats kv0, kv1;
    trit_kv_stats(ctx, &kv0);
    for (int i = 0; i < 8; i++) { /* the three branches' next tokens in one batch each step */
        int32_t tok[3], p3[3], s3[3];
        for (int k = 0; k < 3; k++) tok[k] = ids[k][70 + i], p3[k] = 70 + i, s3[k] = k;
        const struct trit_batch b = {.n_tokens = 3, .token = tok, .pos = p3, .seq_id = s3};
        OK(trit_decode_batch(ctx, &b, &logits, &n_rows));
        cr_assert_eq(n_rows, 3);
        for (int k = 0; k < 3; k++)
            cr_assert_arr_eq(logits + (size_t)(k * V), alone + (size_t)((k * 8 + i) * V), (size_t)V * sizeof(float),
                             "branch %d, token %d", k, 70 + i);
    }
    trit_kv_stats(ctx, &kv1);
    cr_assert_eq(kv0.n_free - kv1.n_free, 2, "two of the three holders of block 1 took a copy");
    trit_context_free(ctx);

    void *gpu = NULL;
    struct trit_backend_config cfg = config(128, 8, false);
    cfg.n_kv_blocks = 4;
    OK(trit_cuda_backend.init(&m, &cfg, &gpu));
    OK(trit_cuda_backend.kv_copy(gpu, 0, 3));
    cr_assert_eq(trit_cuda_backend.kv_copy(gpu, 0, 4), TRIT_ERR_INVALID_ARG);
    cr_assert_eq(trit_cuda_backend.kv_copy(gpu, -1, 2), TRIT_ERR_INVALID_ARG);
    trit_cuda_backend.free(gpu);
    free(alone);
    trit_model_release(&m);
}

/* forward keeps one sequence in blocks 0, 1, 2, ... (the identity table): token by token it equals
 * forward_batch given that same table, bit for bit (both run the single-token decode attention, with
 * the same splits), graph replays included; a prompt through forward (the prefill tiles) and through
 * forward_batch (the decode kernel per token) both match the CPU; a batch with no rows of logits
 * writes the cache all the same; bad batches are refused. */
Test(cuda_backend, identity_table_single_sequence_unchanged) {
    if (!test_require_gpu()) return;
    for (size_t si = 0; si < N_SHAPES; si++) {
        struct trit_model m;
        make_model(&SHAPES[si], 121 + si, &m);
        const int64_t V = m.hp.n_vocab, n = 100; /* past the first two blocks */
        int32_t tok[100], ident[2], pos[64], out[64];
        const int32_t *blocks[64];
        random_tokens(tok, n, V, 0x1D + si);
        for (int i = 0; i < 2; i++) ident[i] = i;
        const struct trit_backend_config cfg = config(128, 64, false);
        void *fw = NULL, *fb = NULL, *cpu = NULL;
        OK(trit_cuda_backend.init(&m, &cfg, &fw));
        OK(trit_cuda_backend.init(&m, &cfg, &fb));
        float *la = malloc((size_t)V * sizeof *la), *lb = malloc((size_t)V * sizeof *lb);
        for (int64_t i = 0; i < n; i++) {
            OK(trit_cuda_backend.forward(fw, tok + i, 1, i, la));
            pos[0] = (int32_t)i, blocks[0] = ident, out[0] = 0;
            const struct trit_forward_batch b = {.tokens = tok + i, .n = 1, .n_out = 1, .pos = pos, .blocks = blocks, .out = out};
            OK(trit_cuda_backend.forward_batch(fb, &b, lb));
            cr_assert(memcmp(la, lb, (size_t)V * sizeof *la) == 0, "%s position %ld: forward and forward_batch differ",
                      SHAPES[si].name, (long)i);
        }
        cr_assert(trit_cuda_backend_last_call_graphed(fw), "forward replays its graph");
        trit_cuda_backend.free(fw);
        trit_cuda_backend.free(fb);

        /* a prompt of 40 as one batch (no rows: a prefill chunk), then 24 single tokens, against the CPU */
        struct trit_backend_config cfg2 = config(128, 64, false);
        cfg2.n_seq_max = 2; /* two rows of logits at most: the refusal of rows out of order below */
        OK(trit_cpu_backend.init(&m, &cfg2, &cpu));
        OK(trit_cuda_backend.init(&m, &cfg2, &fb));
        for (int32_t i = 0; i < 40; i++) pos[i] = i, blocks[i] = ident;
        const struct trit_forward_batch pre = {.tokens = tok, .n = 40, .n_out = 0, .pos = pos, .blocks = blocks, .out = out};
        OK(trit_cuda_backend.forward_batch(fb, &pre, NULL));
        OK(trit_cpu_backend.forward(cpu, tok, 40, 0, la));
        struct cmp_stats st = {0};
        for (int64_t i = 40; i < 64; i++) {
            pos[0] = (int32_t)i, out[0] = 0;
            const struct trit_forward_batch b = {.tokens = tok + i, .n = 1, .n_out = 1, .pos = pos, .blocks = blocks, .out = out};
            OK(trit_cuda_backend.forward_batch(fb, &b, lb));
            OK(trit_cpu_backend.forward(cpu, tok + i, 1, i, la));
            compare_row(la, lb, V, SHAPES[si].name, i, &st);
        }
        /* refused: a position past the context, a block outside the pool, rows out of order */
        const int32_t far = 128, bad_tab[2] = {0, 9999}, late = 65, two[2] = {1, 0};
        const int32_t *bad_blocks[2] = {bad_tab, bad_tab};
        const struct trit_forward_batch b1 = {.tokens = tok, .n = 1, .n_out = 1, .pos = &far, .blocks = blocks, .out = out};
        const struct trit_forward_batch b2 = {.tokens = tok, .n = 1, .n_out = 1, .pos = &late, .blocks = bad_blocks, .out = out};
        const struct trit_forward_batch b3 = {.tokens = tok, .n = 2, .n_out = 2, .pos = pos, .blocks = blocks, .out = two};
        cr_assert_eq(trit_cuda_backend.forward_batch(fb, &b1, lb), TRIT_ERR_INVALID_ARG);
        cr_assert_eq(trit_cuda_backend.forward_batch(fb, &b2, lb), TRIT_ERR_INVALID_ARG);
        cr_assert_eq(trit_cuda_backend.forward_batch(fb, &b3, lb), TRIT_ERR_INVALID_ARG);
        free(la), free(lb);
        trit_cpu_backend.free(cpu);
        trit_cuda_backend.free(fb);
        trit_model_release(&m);
    }
}

/* Through the public API: --device cuda picks this backend. */
Test(cuda_backend, public_api_device_cuda) {
    if (!test_require_gpu()) return;
    struct trit_model m;
    make_model(&SHAPES[0], 81, &m);
    struct trit_context_params cp = trit_context_default_params();
    cp.n_ctx = 32;
    cp.device = TRIT_DEVICE_CUDA;
    trit_context *ctx = NULL;
    OK(trit_context_init(&m, &cp, &ctx));
    cr_assert_str_eq(trit_context_backend(ctx), "cuda");
    const int32_t t[3] = {5, 6, 7};
    const float *logits = NULL;
    OK(trit_decode(ctx, t, 3, &logits));
    OK(trit_decode(ctx, t, 1, &logits));
    cr_assert(isfinite(logits[0]));
    trit_context_free(ctx);
    trit_model_release(&m);
}

#else /* no CUDA backend in this build: the gate still reports the skip */

Test(cuda_backend, needs_cuda_build) {
    if (!test_require_gpu()) return;
    cr_assert_fail("a GPU was found but trit was built without the CUDA backend");
}

#endif
