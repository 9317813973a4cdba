// labels: unit model
// cpu families: each
/* test_embed.c: trit_embed (include/trit.h "Embeddings"): last-token pooling of the final-norm hidden
 * state, its L2 normalization, the cache it leaves, hostile arguments; parity with transformers on
 * the qwen3 embedding fixture (tools/reference/make_embed_fixture.py) and the head-input identity on
 * the shipped BitNet model.
 *
 *   ctest --test-dir build -R test_embed --output-on-failure
 */
#include <cjson/cJSON.h>
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/core.h"
#include "cpu/ops.h"
#include "default_model.h"
#include "io/json.h"
#include "model/model.h"
#include "support.h"
#include "trit.h"

/* ---- tolerances (the fixture's measurements are in tests/data/fixtures/qwen3-embed-tiny/embed.json) --
 *
 * EMBED_TOL_SAME_CODES: on the fixture's "robust" sequences no int8 code sits at a near-tie: perturbing
 * every linear input by 5e-7 x max|x| (a few fp32 ulps, more than trit's and torch's norms and sums
 * differ by) moved the normalized vector by less than the fixture's flip_free, 1e-5, in 20 trials.
 * trit then computes the same codes and differs by fp32 rounding only: flip_free bounds it.
 *
 * EMBED_TOL: any sequence, code flips at near-ties allowed: 2 x the largest move of the normalized
 * vector under 1e-6 x max|x| perturbations of the linear inputs (the largest relative difference
 * between two fp32 engines measured by make_fixtures.py), 0.0102 on the fixture.
 *
 * EMBED_FLOAT_TOL: against transformers' float model (no activation quantization): the triangle
 * inequality, EMBED_TOL + the largest |act8 - float| element on the fixture (0.0129).
 */
#define EMBED_TOL_SAME_CODES 1e-5
#define EMBED_TOL (2 * 0.0102)
#define EMBED_FLOAT_TOL (EMBED_TOL + 0.0129)
/* TRIT_EMBED_RAW against raw_act8 on the robust sequences, relative to max|raw|: the same flip-free
 * bound, on the unnormalized vector (|raw| is O(1) here: the norm weights are in [0.6, 1.4]). */
#define EMBED_RAW_REL_TOL_SAME_CODES 1e-5

#define FIXTURE "fixtures/qwen3-embed-tiny"

struct embed_seq {
    int32_t ids[64];
    int n;
    bool robust;
    float act8[64], raw[64], flt[64];
};

static int load_fixture_json(struct embed_seq *seqs, int max, int *dim) {
    char *text = NULL;
    size_t len = 0;
    cr_assert_eq(json_read_file(test_data_path(FIXTURE "/embed.json"), 1 << 22, &text, &len), TRIT_OK, "%s",
                 trit_last_error());
    cJSON *root = cJSON_Parse(text);
    cr_assert_not_null(root, "embed.json does not parse");
    *dim = cJSON_GetObjectItem(root, "dim")->valueint;
    cr_assert(*dim > 0 && *dim <= 64);
    const cJSON *arr = cJSON_GetObjectItem(root, "sequences"), *s;
    int n = 0;
    cJSON_ArrayForEach(s, arr) {
        cr_assert_lt(n, max);
        struct embed_seq *e = &seqs[n++];
        const cJSON *ids = cJSON_GetObjectItem(s, "ids"), *v;
        e->n = 0;
        cJSON_ArrayForEach(v, ids) {
            cr_assert_lt(e->n, 64);
            e->ids[e->n++] = v->valueint;
        }
        e->robust = cJSON_IsTrue(cJSON_GetObjectItem(s, "robust"));
        const char *keys[3] = {"act8", "raw_act8", "float"};
        float *dst[3] = {e->act8, e->raw, e->flt};
        for (int k = 0; k < 3; k++) {
            int i = 0;
            cJSON_ArrayForEach(v, cJSON_GetObjectItem(s, keys[k])) {
                cr_assert_lt(i, *dim);
                dst[k][i++] = (float)v->valuedouble;
            }
            cr_assert_eq(i, *dim, "%s", keys[k]);
        }
    }
    cJSON_Delete(root);
    trit_free(text);
    return n;
}

static trit_context *make_ctx(trit_model *m, int32_t n_ctx, int32_t n_batch, int32_t n_seq) {
    struct trit_context_params p = trit_context_default_params();
    p.device = TRIT_DEVICE_CPU;
    p.n_ctx = n_ctx;
    p.n_batch = n_batch;
    p.n_threads = 2;
    p.n_seq_max = n_seq;
    trit_context *ctx = NULL;
    cr_assert_eq(trit_context_init(m, &p, &ctx), TRIT_OK, "%s", trit_last_error());
    return ctx;
}

static double max_abs_diff(const float *a, const float *b, int n) {
    double d = 0;
    for (int i = 0; i < n; i++) {
        cr_assert(isfinite(a[i]), "element %d is %g", i, (double)a[i]);
        d = fmax(d, fabs((double)a[i] - (double)b[i]));
    }
    return d;
}

static double cosine(const float *a, const float *b, int n) {
    double ab = 0, aa = 0, bb = 0;
    for (int i = 0; i < n; i++) {
        ab += (double)a[i] * b[i];
        aa += (double)a[i] * a[i];
        bb += (double)b[i] * b[i];
    }
    return ab / sqrt(aa * bb);
}

/* trit.h's normalization, written out: double sum of squares in ascending order, one division each. */
static void normalize_ref(const float *h, int n, float *out) {
    double ss = 0;
    for (int i = 0; i < n; i++) ss += (double)h[i] * (double)h[i];
    const double norm = fmax(sqrt(ss), 1e-12);
    for (int i = 0; i < n; i++) out[i] = (float)((double)h[i] / norm);
}

/* ---- parity with transformers ------------------------------------------------------------------ */

/* Every fixture sequence, in one batch piece (n_batch 64) and in pieces of 16: the pieces give the same
 * bits (a token's computation does not depend on its batch, design.md section 3), the vector is within
 * the tolerances above of transformers' with trit's activation quantization and of its float model, the
 * normalization is trit.h's formula bit for bit, and the sequence is empty again after each call. */
Test(embed, qwen3_matches_transformers) {
    static struct embed_seq seqs[8];
    int D = 0;
    const int n_seqs = load_fixture_json(seqs, 8, &D);
    cr_assert_geq(n_seqs, 4);
    trit_model *m = NULL;
    cr_assert_eq(trit_model_load(test_data_path(FIXTURE), NULL, &m), TRIT_OK, "%s", trit_last_error());
    struct trit_model_shape shape;
    trit_model_shape(m, &shape);
    cr_assert_eq(shape.dim, D);
    trit_context *whole = make_ctx(m, 64, 64, 1), *pieces = make_ctx(m, 64, 16, 1);
    double worst_same = 0, worst = 0, worst_float = 0, worst_raw = 0, min_cos = 1;
    for (int s = 0; s < n_seqs; s++) {
        const struct embed_seq *e = &seqs[s];
        float v[64], v16[64], raw[64], ref[64];
        cr_assert_eq(trit_embed(whole, 0, e->ids, e->n, 0, v), TRIT_OK, "%s", trit_last_error());
        cr_assert_eq(trit_seq_length(whole, 0), 0);
        cr_assert_eq(trit_embed(pieces, 0, e->ids, e->n, 0, v16), TRIT_OK, "%s", trit_last_error());
        cr_assert_eq(memcmp(v, v16, (size_t)D * sizeof(float)), 0, "sequence %d: pieces of 16 differ", s);
        cr_assert_eq(trit_embed(whole, 0, e->ids, e->n, TRIT_EMBED_RAW, raw), TRIT_OK, "%s", trit_last_error());
        normalize_ref(raw, D, ref);
        cr_assert_eq(memcmp(v, ref, (size_t)D * sizeof(float)), 0, "sequence %d: not raw / max(||raw||, eps)", s);

        const double d = max_abs_diff(v, e->act8, D), df = max_abs_diff(v, e->flt, D);
        const double cos = cosine(v, e->flt, D);
        double raw_max = 0; /* (a comparison, not fmax: GCC 12's aarch64 vectorizer crashes on that reduction) */
        for (int i = 0; i < D; i++)
            if (fabs((double)e->raw[i]) > raw_max) raw_max = fabs((double)e->raw[i]);
        const double draw = max_abs_diff(raw, e->raw, D) / raw_max;
        fprintf(stderr, "qwen3 embed: %2d tokens%s: |trit - act8| %.3g, |trit - float| %.3g, cos(trit, float) %.6f, "
                        "raw rel %.3g\n", e->n, e->robust ? " (robust)" : "", d, df, cos, draw);
        if (e->robust) {
            cr_expect_leq(d, EMBED_TOL_SAME_CODES, "sequence %d (%d tokens): %g", s, e->n, d);
            cr_expect_leq(draw, EMBED_RAW_REL_TOL_SAME_CODES, "sequence %d raw: %g", s, draw);
            worst_same = fmax(worst_same, d);
            worst_raw = fmax(worst_raw, draw);
        }
        cr_expect_leq(d, EMBED_TOL, "sequence %d (%d tokens): %g", s, e->n, d);
        cr_expect_leq(df, EMBED_FLOAT_TOL, "sequence %d (%d tokens) against the float model: %g", s, e->n, df);
        worst = fmax(worst, d);
        worst_float = fmax(worst_float, df);
        min_cos = fmin(min_cos, cos);
    }
    fprintf(stderr, "qwen3 embed: worst |trit - act8| %.3g on robust sequences (tol %g), %.3g on all (tol %g); "
                    "|trit - float| %.3g (tol %g); lowest cosine to the float model %.6f\n",
            worst_same, EMBED_TOL_SAME_CODES, worst, EMBED_TOL, worst_float, EMBED_FLOAT_TOL, min_cos);
    trit_context_free(whole);
    trit_context_free(pieces);
    trit_model_free(m);
}

/* ---- gemma3 ---------------------------------------------------------------------------------------- */

/* gemma3-ternary-tiny's embed.json (tools/reference/make_gemma3_fixture.py): three sequences of 1, 5 and
 * 13 tokens (the 13 crosses the sliding window of 8). Against the act8 reference: a change below 1e-5
 * is fp32 rounding, not a code flip (a flip moves a unit vector by ~1e-3; make_embed_fixture.py's
 * FLIP_FREE); the parity test shows this model's codes reproduced on 24 ids. Against the float model:
 * 2 x the largest act8-vs-float distance transformers itself gives on these sequences (1.12e-3). */
#define GEMMA3_EMBED_TOL_SAME_CODES 1e-5
#define GEMMA3_EMBED_FLOAT_TOL 2.3e-3
#define GEMMA3_DIM 128

Test(embed, gemma3_matches_transformers) {
    char *text = NULL;
    size_t len = 0;
    cr_assert_eq(json_read_file(test_data_path("fixtures/gemma3-ternary-tiny/embed.json"), 1 << 22, &text, &len), TRIT_OK,
                 "%s", trit_last_error());
    cJSON *root = cJSON_Parse(text);
    cr_assert_not_null(root);
    cr_assert_eq(cJSON_GetObjectItem(root, "dim")->valueint, GEMMA3_DIM);
    trit_model *m = NULL;
    cr_assert_eq(trit_model_load(test_data_path("fixtures/gemma3-ternary-tiny"), NULL, &m), TRIT_OK, "%s", trit_last_error());
    trit_context *ctx = make_ctx(m, 64, 64, 1);
    const cJSON *s;
    int n_seqs = 0;
    cJSON_ArrayForEach(s, cJSON_GetObjectItem(root, "sequences")) {
        int32_t ids[64];
        int n = 0;
        float ref[2][GEMMA3_DIM], v[GEMMA3_DIM];
        const cJSON *x;
        cJSON_ArrayForEach(x, cJSON_GetObjectItem(s, "ids")) {
            cr_assert_lt(n, 64);
            ids[n++] = x->valueint;
        }
        const char *keys[2] = {"act8", "float"};
        for (int k = 0; k < 2; k++) {
            int i = 0;
            cJSON_ArrayForEach(x, cJSON_GetObjectItem(s, keys[k])) {
                cr_assert_lt(i, GEMMA3_DIM);
                ref[k][i++] = (float)x->valuedouble;
            }
            cr_assert_eq(i, GEMMA3_DIM);
        }
        cr_assert_eq(trit_embed(ctx, 0, ids, n, 0, v), TRIT_OK, "%s", trit_last_error());
        const double d = max_abs_diff(v, ref[0], GEMMA3_DIM), df = max_abs_diff(v, ref[1], GEMMA3_DIM);
        fprintf(stderr, "gemma3 embed: %2d tokens: |trit - act8| %.3g, |trit - float| %.3g, cos(trit, float) %.6f\n", n, d,
                df, cosine(v, ref[1], GEMMA3_DIM));
        cr_expect_leq(d, GEMMA3_EMBED_TOL_SAME_CODES, "%d tokens: %g from act8", n, d);
        cr_expect_leq(df, GEMMA3_EMBED_FLOAT_TOL, "%d tokens: %g from the float model", n, df);
        n_seqs++;
    }
    cr_assert_eq(n_seqs, 3);
    cJSON_Delete(root);
    trit_free(text);
    trit_context_free(ctx);
    trit_model_free(m);
}

/* ---- the shipped BitNet model -------------------------------------------------------------------- */

/* Any decoder: the raw vector is the LM head's input, so the head's own row product on it gives the
 * logits trit_decode returns for the same tokens, bit for bit; the normalized one has norm 1. Random
 * ids (TRIT_TEST_SEED). */
Test(embed, default_model_raw_is_the_head_input) {
    trit_model *m = NULL;
    cr_assert_eq(trit_model_load(DEFAULT_MODEL_PATH, NULL, &m), TRIT_OK, "%s", trit_last_error());
    struct trit_model_shape shape;
    trit_model_shape(m, &shape);
    const int D = shape.dim, V = shape.n_vocab;
    struct test_rng rng;
    test_rng_seed(&rng, 0xe3bed);
    const int n = (int)test_rng_int(&rng, 1, 100);
    int32_t ids[100];
    for (int i = 0; i < n; i++) ids[i] = (int32_t)test_rng_int(&rng, 0, V - 1);
    trit_context *ctx = make_ctx(m, DEFAULT_MODEL_N_CTX, 32, 1);
    float *raw = malloc((size_t)D * sizeof *raw), *v = malloc((size_t)D * sizeof *v);
    float *head = malloc((size_t)V * sizeof *head);
    cr_assert(raw && v && head);
    cr_assert_eq(trit_embed(ctx, 0, ids, n, TRIT_EMBED_RAW, raw), TRIT_OK, "%s", trit_last_error());
    cr_assert_eq(trit_embed(ctx, 0, ids, n, 0, v), TRIT_OK, "%s", trit_last_error());
    const float *logits = NULL;
    cr_assert_eq(trit_decode(ctx, ids, n, &logits), TRIT_OK, "%s", trit_last_error());
    trit_dense_gemv_rows(&m->output, raw, 0, V, head);
    cr_assert_eq(memcmp(head, logits, (size_t)V * sizeof(float)), 0, "%d tokens: head(raw) != the logits", n);
    double ss = 0;
    for (int i = 0; i < D; i++) ss += (double)v[i] * v[i];
    cr_assert(fabs(sqrt(ss) - 1.0) < 4 * D * 0x1p-24, "norm %.9f", sqrt(ss)); /* D roundings of 2^-24 each, x4 */
    free(raw);
    free(v);
    free(head);
    trit_context_free(ctx);
    trit_model_free(m);
}

/* ---- the cache ------------------------------------------------------------------------------------ */

/* An embedding in a free sequence while another sequence is mid-generation: the other sequence's next
 * logits are bit-identical to those of a context that never embedded, and the pool's free blocks are
 * as before. */
Test(embed, other_sequences_untouched) {
    trit_model *m = NULL;
    cr_assert_eq(trit_model_load(DEFAULT_MODEL_PATH, NULL, &m), TRIT_OK, "%s", trit_last_error());
    const int32_t V = trit_model_n_vocab(m);
    struct test_rng rng;
    test_rng_seed(&rng, 0xcac4e);
    int32_t a[40], e[150];
    for (int i = 0; i < 40; i++) a[i] = (int32_t)test_rng_int(&rng, 0, V - 1);
    for (int i = 0; i < 150; i++) e[i] = (int32_t)test_rng_int(&rng, 0, V - 1);
    trit_context *ctx = make_ctx(m, DEFAULT_MODEL_N_CTX, 64, 2), *ref = make_ctx(m, DEFAULT_MODEL_N_CTX, 64, 2);
    int32_t pos[40], seq[40];
    for (int i = 0; i < 40; i++) pos[i] = i, seq[i] = 0;
    struct trit_batch b = {.n_tokens = 39, .token = a, .pos = pos, .seq_id = seq};
    cr_assert_eq(trit_decode_batch(ctx, &b, NULL, NULL), TRIT_OK, "%s", trit_last_error());
    cr_assert_eq(trit_decode_batch(ref, &b, NULL, NULL), TRIT_OK, "%s", trit_last_error());
    struct trit_kv_stats k0, k1;
    trit_kv_stats(ctx, &k0);
    float vec[512];
    struct trit_model_shape shape;
    trit_model_shape(m, &shape);
    cr_assert_leq(shape.dim, 512);
    cr_assert_eq(trit_embed(ctx, 1, e, 150, 0, vec), TRIT_OK, "%s", trit_last_error());
    trit_kv_stats(ctx, &k1);
    cr_assert_eq(k1.n_free, k0.n_free);
    cr_assert_eq(trit_seq_length(ctx, 1), 0);
    cr_assert_eq(trit_seq_length(ctx, 0), 39);
    struct trit_batch b1 = {.n_tokens = 1, .token = a + 39, .pos = pos + 39, .seq_id = seq};
    const float *l0, *l1;
    cr_assert_eq(trit_decode_batch(ctx, &b1, &l0, NULL), TRIT_OK, "%s", trit_last_error());
    cr_assert_eq(trit_decode_batch(ref, &b1, &l1, NULL), TRIT_OK, "%s", trit_last_error());
    cr_assert_eq(memcmp(l0, l1, (size_t)V * sizeof(float)), 0);
    trit_context_free(ctx);
    trit_context_free(ref);
    trit_model_free(m);
}

/* ---- hostile arguments ------------------------------------------------------------------------------ */

Test(embed, hostile_arguments_are_status_codes) {
    trit_model *m = NULL;
    cr_assert_eq(trit_model_load(DEFAULT_MODEL_PATH, NULL, &m), TRIT_OK, "%s", trit_last_error());
    const int32_t V = trit_model_n_vocab(m);
    trit_context *ctx = make_ctx(m, 64, 16, 2);
    int32_t ids[80] = {0};
    float out[512];
    cr_assert_eq(trit_embed(NULL, 0, ids, 4, 0, out), TRIT_ERR_INVALID_ARG);
    cr_assert_eq(trit_embed(ctx, 0, NULL, 4, 0, out), TRIT_ERR_INVALID_ARG);
    cr_assert_eq(trit_embed(ctx, 0, ids, 4, 0, NULL), TRIT_ERR_INVALID_ARG);
    cr_assert_eq(trit_embed(ctx, 0, ids, 0, 0, out), TRIT_ERR_INVALID_ARG);
    cr_assert_eq(trit_embed(ctx, 0, ids, -3, 0, out), TRIT_ERR_INVALID_ARG);
    cr_assert_eq(trit_embed(ctx, 0, ids, 4, 0x80u, out), TRIT_ERR_INVALID_ARG);
    cr_assert_eq(trit_embed(ctx, 2, ids, 4, 0, out), TRIT_ERR_INVALID_ARG);
    cr_assert_eq(trit_embed(ctx, -1, ids, 4, 0, out), TRIT_ERR_INVALID_ARG);
    cr_assert_eq(trit_embed(ctx, 0, ids, 65, 0, out), TRIT_ERR_CONTEXT_FULL);
    cr_assert(strstr(trit_last_error(), "65") != NULL, "%s", trit_last_error());
    ids[3] = V;
    cr_assert_eq(trit_embed(ctx, 0, ids, 4, 0, out), TRIT_ERR_INVALID_ARG);
    ids[3] = -1;
    cr_assert_eq(trit_embed(ctx, 0, ids, 4, 0, out), TRIT_ERR_INVALID_ARG);
    ids[3] = 0;
    cr_assert_eq(trit_seq_length(ctx, 0), 0);
    /* a sequence that holds tokens is refused and kept */
    cr_assert_eq(trit_decode(ctx, ids, 5, NULL), TRIT_OK, "%s", trit_last_error());
    cr_assert_eq(trit_embed(ctx, 0, ids, 4, 0, out), TRIT_ERR_INVALID_ARG);
    cr_assert(strstr(trit_last_error(), "empty") != NULL, "%s", trit_last_error());
    cr_assert_eq(trit_seq_length(ctx, 0), 5);
    /* beside it, a sequence that fits the pool runs and gives its block back */
    struct trit_kv_stats k0, k1;
    trit_kv_stats(ctx, &k0);
    cr_assert_eq(trit_embed(ctx, 1, ids, 64, 0, out), TRIT_OK, "%s", trit_last_error());
    trit_kv_stats(ctx, &k1);
    cr_assert_eq(k1.n_free, k0.n_free);
    /* a pool of one block, held by sequence 0: the next sequence finds it full, and nothing changes */
    struct trit_context_params p = trit_context_default_params();
    p.device = TRIT_DEVICE_CPU;
    p.n_ctx = 64;
    p.n_threads = 1;
    p.n_seq_max = 2;
    p.n_kv = TRIT_KV_BLOCK;
    trit_context *small = NULL;
    cr_assert_eq(trit_context_init(m, &p, &small), TRIT_OK, "%s", trit_last_error());
    cr_assert_eq(trit_decode(small, ids, 5, NULL), TRIT_OK, "%s", trit_last_error());
    cr_assert_eq(trit_embed(small, 1, ids, 3, 0, out), TRIT_ERR_CONTEXT_FULL);
    cr_assert_eq(trit_seq_length(small, 0), 5);
    cr_assert_eq(trit_seq_length(small, 1), 0);
    trit_context_free(small);
    trit_context_free(ctx);
    trit_model_free(m);
}

/* trit_embed_tokenize, the one rule trit embed, trit serve and the Python package use: on Qwen2's
 * vocabulary (no BOS added, EOS <|im_end|>, <|endoftext|> present) the text's own ids then
 * <|endoftext|>, not doubled when the text ends with it written out, none with TRIT_EMBED_NO_END;
 * the ids are trit_tokenize's with control tokens matched; bad flags leave *out as it was. */
Test(embed, embed_tokenize_rule) {
    trit_tokenizer *tok = NULL;
    cr_assert_eq(trit_tokenizer_load(test_data_path("tokenizers/qwen2-tiny/tokenizer.json"), &tok), TRIT_OK, "%s",
                 trit_last_error());
    struct trit_tokens want = {0}, got = {0}, eot = {0};
    const char *text = "Hello world", *with_end = "Hello world<|endoftext|>";
    cr_assert_eq(trit_tokenize(tok, "<|endoftext|>", 13, TRIT_TOKENIZE_PARSE_SPECIAL, &eot), TRIT_OK);
    cr_assert_eq(eot.n, 1, "<|endoftext|> is one control token");
    cr_assert_neq(eot.ids[0], trit_tokenizer_eos(tok), "the rule must pick <|endoftext|>, not EOS <|im_end|>");
    cr_assert_eq(trit_tokenize(tok, text, strlen(text), TRIT_TOKENIZE_PARSE_SPECIAL, &want), TRIT_OK);

    cr_assert_eq(trit_embed_tokenize(tok, text, strlen(text), 0, &got), TRIT_OK);
    cr_assert_eq(got.n, want.n + 1);
    cr_assert(memcmp(got.ids, want.ids, want.n * sizeof *got.ids) == 0);
    cr_assert_eq(got.ids[want.n], eot.ids[0]);
    got.n = 0;
    cr_assert_eq(trit_embed_tokenize(tok, with_end, strlen(with_end), 0, &got), TRIT_OK);
    cr_assert_eq(got.n, want.n + 1, "an end written in the text is not doubled");
    cr_assert_eq(got.ids[want.n], eot.ids[0]);
    got.n = 0;
    cr_assert_eq(trit_embed_tokenize(tok, text, strlen(text), TRIT_EMBED_NO_END, &got), TRIT_OK);
    cr_assert_eq(got.n, want.n);
    cr_assert_eq(trit_embed_tokenize(tok, text, strlen(text), 0x80, &got), TRIT_ERR_INVALID_ARG);
    cr_assert_eq(got.n, want.n, "a refused call appends nothing");
    cr_assert_eq(trit_embed_tokenize(NULL, text, strlen(text), 0, &got), TRIT_ERR_INVALID_ARG);
    trit_tokens_free(&want), trit_tokens_free(&got), trit_tokens_free(&eot);
    trit_tokenizer_free(tok);
}
