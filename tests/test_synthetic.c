// labels: unit
// cpu families: each
/*
 * test_synthetic.c: synthetic models (model.h, host/model/synthetic.c): the path syntax, the
 * shapes, determinism in the seed, valid codes in the stated proportions, and a forward pass through
 * the public API (trit_model_load("synthetic:tiny") + trit_context_init + trit_decode) with
 * finite logits, for each graph family.
 *
 *   ctest --test-dir build -R test_synthetic --output-on-failure
 */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "model/model.h"
#include "support.h"
#include "trit.h"

static const char *const tiny_names[] = {"tiny", "tiny-bitnet", "tiny-llama"};

static int64_t count_code(const struct trit_ternary *w, unsigned code) {
    int64_t n = 0;
    for (int64_t r = 0; r < w->n_rows; r++)
        for (int64_t c = 0; c < w->n_cols; c++) n += trit_ternary_get(w, r, c) + 1 == (int)code;
    return n;
}

Test(synthetic, tiny_models_validate_and_have_their_family) {
    const enum trit_family fam[] = {TRIT_FAMILY_BITNET_B158, TRIT_FAMILY_BITNET, TRIT_FAMILY_LLAMA};
    for (size_t i = 0; i < sizeof tiny_names / sizeof tiny_names[0]; i++) {
        struct trit_model m;
        cr_assert_eq(trit_model_synthetic(tiny_names[i], 7, &m), TRIT_OK, "%s: %s", tiny_names[i], trit_last_error());
        cr_expect_eq(m.hp.family, fam[i]);
        cr_expect_eq(trit_model_validate(&m), TRIT_OK);
        cr_expect_eq(m.hp.tied_embeddings, m.output.data == m.tok_embd.data);
        cr_expect_str_eq(m.source, "synthetic");
        trit_model_release(&m);
    }
}

Test(synthetic, codes_are_valid_with_the_stated_distribution) {
    struct trit_model m;
    cr_assert_eq(trit_model_synthetic("tiny", 3, &m), TRIT_OK);
    const struct trit_ternary *w = &m.layers[0].w[TRIT_W_GATE]; /* 160 x 96 = 15360 codes */
    const int64_t n = w->n_rows * w->n_cols;
    cr_expect_eq(count_code(w, 3), 0);
    /* P(t = -1, 0, +1) = 5/16, 6/16, 5/16 per weight (synthetic.c); 6 binomial standard deviations
     * (sqrt(n p (1-p)), about 60 for n = 15360) bound each count for any seed in practice. */
    const double p[3] = {5.0 / 16.0, 6.0 / 16.0, 5.0 / 16.0};
    for (unsigned code = 0; code < 3; code++) {
        const double sd = sqrt((double)n * p[code] * (1.0 - p[code]));
        cr_expect(fabs((double)count_code(w, code) - (double)n * p[code]) < 6.0 * sd, "code %u: %lld of %lld", code,
                  (long long)count_code(w, code), (long long)n);
    }
    cr_expect(m.layers[0].w[TRIT_W_Q].scale > 0.0f && isfinite(m.layers[0].w[TRIT_W_Q].scale));
    trit_model_release(&m);
}

Test(synthetic, same_seed_same_bytes_other_seed_other_bytes) {
    struct trit_model a, b, c;
    cr_assert_eq(trit_model_synthetic("tiny-llama", 11, &a), TRIT_OK);
    cr_assert_eq(trit_model_synthetic("tiny-llama", 11, &b), TRIT_OK);
    cr_assert_eq(trit_model_synthetic("tiny-llama", 12, &c), TRIT_OK);
    for (int64_t i = 0; i < a.hp.n_layers; i++) {
        cr_expect(trit_ternary_equal(&a.layers[i].w[TRIT_W_DOWN], &b.layers[i].w[TRIT_W_DOWN]));
        cr_expect(!trit_ternary_equal(&a.layers[i].w[TRIT_W_DOWN], &c.layers[i].w[TRIT_W_DOWN]));
        cr_expect(memcmp(a.layers[i].attn_norm, b.layers[i].attn_norm, (size_t)a.hp.dim * sizeof(float)) == 0);
    }
    /* the layers draw from different streams */
    cr_expect(!trit_ternary_equal(&a.layers[0].w[TRIT_W_DOWN], &a.layers[1].w[TRIT_W_DOWN]));
    const size_t emb_bytes = (size_t)(a.hp.n_vocab * a.hp.dim) * 2;
    cr_expect(memcmp(a.tok_embd.data, b.tok_embd.data, emb_bytes) == 0);
    cr_expect(memcmp(a.tok_embd.data, c.tok_embd.data, emb_bytes) != 0);
    cr_expect(memcmp(a.tok_embd.data, a.output.data, emb_bytes) != 0, "untied: head and embedding differ");
    trit_model_release(&a);
    trit_model_release(&b);
    trit_model_release(&c);
}

Test(synthetic, path_syntax) {
    struct trit_load_params lp = {0};
    struct trit_model m;
    cr_assert_eq(trit_model_load_path("synthetic:tiny", &lp, &m), TRIT_OK, "%s", trit_last_error());
    cr_expect_str_eq(m.path, "synthetic:tiny:1");
    trit_model_release(&m);
    cr_assert_eq(trit_model_load_path("synthetic:tiny:0x10", &lp, &m), TRIT_OK, "%s", trit_last_error());
    cr_expect_str_eq(m.path, "synthetic:tiny:16");
    trit_model_release(&m);

    cr_expect_eq(trit_model_load_path("synthetic:huge", &lp, &m), TRIT_ERR_NOT_FOUND);
    cr_expect(strstr(trit_last_error(), "2b4t") != NULL, "the error lists the names: %s", trit_last_error());
    cr_expect_eq(m.layers, NULL);
    cr_expect_eq(trit_model_load_path("synthetic:", &lp, &m), TRIT_ERR_INVALID_ARG);
    cr_expect_eq(trit_model_load_path("synthetic:tiny:", &lp, &m), TRIT_ERR_INVALID_ARG);
    cr_expect_eq(trit_model_load_path("synthetic:tiny:12x", &lp, &m), TRIT_ERR_INVALID_ARG);
    cr_expect_eq(trit_model_load_path("synthetic:tiny:-1", &lp, &m), TRIT_ERR_INVALID_ARG);
}

/* The public API end to end: a prompt, then tokens one by one; every logit finite, not all equal. */
/* head_bits: 0 the model's own head, 8 int8, 4 the 4-bit head */
static void run_public(const char *path, int n_threads, int head_bits) {
    trit_model *model = NULL;
    cr_assert_eq(trit_model_load(path, NULL, &model), TRIT_OK, "%s: %s", path, trit_last_error());
    struct trit_context_params cp = trit_context_default_params();
    cp.device = TRIT_DEVICE_CPU;
    cp.n_threads = n_threads;
    cp.n_ctx = 64;
    cp.head_int8 = head_bits == 8;
    cp.head_q4 = head_bits == 4;
    trit_context *ctx = NULL;
    cr_assert_eq(trit_context_init(model, &cp, &ctx), TRIT_OK, "%s", trit_last_error());
    const int32_t n_vocab = trit_model_n_vocab(model);
    const int32_t prompt[] = {1, 17, 299, 42, 0, 5, 123};
    const float *logits = NULL;
    cr_assert_eq(trit_decode(ctx, prompt, 7, &logits), TRIT_OK, "%s", trit_last_error());
    for (int step = 0; step < 5; step++) {
        float lo = INFINITY, hi = -INFINITY;
        int32_t best = 0;
        for (int32_t i = 0; i < n_vocab; i++) {
            cr_assert(isfinite(logits[i]), "%s step %d: logit %d is %g", path, step, i, (double)logits[i]);
            if (logits[i] > hi) hi = logits[i], best = i;
            if (logits[i] < lo) lo = logits[i];
        }
        cr_expect(hi > lo, "%s: all logits equal", path);
        cr_assert_eq(trit_decode(ctx, &best, 1, &logits), TRIT_OK, "%s", trit_last_error());
    }
    cr_expect_eq(trit_context_n_past(ctx), 12);
    trit_context_free(ctx);
    trit_model_free(model);
}

Test(synthetic, forward_through_public_api_gives_finite_logits) {
    for (size_t i = 0; i < sizeof tiny_names / sizeof tiny_names[0]; i++) {
        char path[64];
        snprintf(path, sizeof path, "synthetic:%s", tiny_names[i]);
        run_public(path, 1, 0);
        run_public(path, 2, 0);
        run_public(path, 2, 8);
        run_public(path, 2, 4);
    }
}

/* Every op of the forward pass is per token and the integer core is exact, so a prompt in one
 * batch and the same tokens one at a time give the same logits bit for bit. */
Test(synthetic, batch_equals_token_by_token) {
    trit_model *model = NULL;
    cr_assert_eq(trit_model_load("synthetic:tiny:5", NULL, &model), TRIT_OK, "%s", trit_last_error());
    struct trit_context_params cp = trit_context_default_params();
    cp.device = TRIT_DEVICE_CPU;
    cp.n_threads = 2;
    cp.n_ctx = 32;
    cp.logits_all = true;
    trit_context *a = NULL, *b = NULL;
    cr_assert_eq(trit_context_init(model, &cp, &a), TRIT_OK);
    cr_assert_eq(trit_context_init(model, &cp, &b), TRIT_OK);
    enum { N = 9 };
    const int32_t toks[N] = {3, 1, 4, 1, 5, 9, 2, 6, 5};
    const int32_t n_vocab = trit_model_n_vocab(model);
    const float *la = NULL, *lb = NULL;
    cr_assert_eq(trit_decode(a, toks, N, &la), TRIT_OK);
    for (int i = 0; i < N; i++) {
        cr_assert_eq(trit_decode(b, &toks[i], 1, &lb), TRIT_OK);
        cr_expect(memcmp(la + (size_t)i * (size_t)n_vocab, lb, (size_t)n_vocab * sizeof(float)) == 0,
                  "token %d: batched and single logits differ", i);
    }
    trit_context_free(a);
    trit_context_free(b);
    trit_model_free(model);
}
