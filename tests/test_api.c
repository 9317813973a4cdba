// labels: unit
// cpu families: each
/* test_api.c: the public API in include/trit.h, as a program that links only against it would use
 * it: loading, contexts, decoding with and without the KV cache, errors, tokenizers. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "support.h"
#include "trit.h"

static trit_model *load_fixture(void) {
    char path[512];
    snprintf(path, sizeof path, "%s", test_data_path("fixtures/bitnet-2b4t-tiny"));
    trit_model *m = NULL;
    cr_assert_eq(trit_model_load(path, NULL, &m), TRIT_OK, "%s", trit_last_error());
    return m;
}

static trit_context *make_ctx_on(trit_model *m, enum trit_device device, int32_t n_ctx, int32_t n_batch, bool all) {
    struct trit_context_params p = trit_context_default_params();
    p.device = device;
    p.n_ctx = n_ctx;
    p.n_batch = n_batch;
    p.n_threads = 2;
    p.logits_all = all;
    trit_context *ctx = NULL;
    cr_assert_eq(trit_context_init(m, &p, &ctx), TRIT_OK, "%s", trit_last_error());
    return ctx;
}

static trit_context *make_ctx(trit_model *m, int32_t n_ctx, int32_t n_batch, bool all) {
    return make_ctx_on(m, TRIT_DEVICE_CPU, n_ctx, n_batch, all);
}

/* n token ids drawn uniformly from the vocabulary, from a generator seeded with `seed`. */
static void random_ids(int32_t *ids, int n, int32_t n_vocab, uint64_t seed) {
    struct test_rng rng;
    test_rng_seed(&rng, seed);
    for (int i = 0; i < n; i++) ids[i] = (int32_t)test_rng_int(&rng, 0, n_vocab - 1);
}

Test(api, missing_file_is_a_clear_error) {
    trit_model *m = (trit_model *)1;
    cr_assert_eq(trit_model_load("/nonexistent/model.gguf", NULL, &m), TRIT_ERR_NOT_FOUND);
    cr_assert_null(m);
    cr_assert(strstr(trit_last_error(), "/nonexistent/model.gguf") != NULL, "%s", trit_last_error());
    trit_model_free(NULL);
    trit_context_free(NULL);
    trit_tokenizer_free(NULL);
}

/* trit_model_shape: the shipped model's shape, field by field, as trit_model_desc prints it. */
Test(api, model_shape) {
    trit_model *m = NULL;
    cr_assert_eq(trit_model_load(TRIT_SOURCE_DIR "/models/trit-kjv-4m.gguf", NULL, &m), TRIT_OK, "%s", trit_last_error());
    struct trit_model_shape s;
    trit_model_shape(m, &s);
    cr_assert_str_eq(s.architecture, "bitnet-b1.58");
    cr_assert(s.n_layers == 4 && s.dim == 256 && s.n_heads == 4 && s.n_kv_heads == 2 && s.head_dim == 64 &&
              s.ffn_dim == 768 && s.n_vocab == trit_model_n_vocab(m) && s.n_ctx_train == trit_model_n_ctx_train(m));
    /* each layer: q, o (256 x 256), k, v (128 x 256), gate, up (768 x 256), down (256 x 768) */
    cr_assert_eq(s.n_ternary_params, 4 * (2 * 256 * 256 + 2 * 128 * 256 + 3 * 768 * 256));
    char want[64];
    snprintf(want, sizeof want, "%.2f M ternary params", (double)s.n_ternary_params / 1e6);
    cr_assert(strstr(trit_model_desc(m), want), "%s", trit_model_desc(m));
    trit_model_free(m);
}

/* The KV cache: one batch of n tokens, n single-token decodes, and uneven batch splits all give the
 * same last-token logits, bit for bit (integer products are exact; every fp32 op runs per token in
 * the same order whatever the batch). */
Test(api, batch_and_cache_paths_agree_bit_for_bit) {
    trit_model *m = load_fixture();
    const int32_t n_vocab = trit_model_n_vocab(m);
    int32_t ids[20];
    random_ids(ids, 20, n_vocab, 5);
    float *ref = malloc((size_t)n_vocab * sizeof *ref);
    const float *logits;

    trit_context *a = make_ctx(m, 32, 32, false);
    cr_assert_eq(trit_decode(a, ids, 20, &logits), TRIT_OK);
    memcpy(ref, logits, (size_t)n_vocab * sizeof *ref);
    cr_assert_eq(trit_context_n_past(a), 20);
    for (int v = 0; v < n_vocab; v++) cr_assert(isfinite(ref[v]));

    trit_context *b = make_ctx(m, 32, 32, false);
    for (int i = 0; i < 20; i++) cr_assert_eq(trit_decode(b, &ids[i], 1, &logits), TRIT_OK);
    cr_assert_arr_eq(logits, ref, (size_t)n_vocab * sizeof *ref, "one token at a time differs from one batch");

    trit_context *c = make_ctx(m, 32, 7, false); /* 20 = 7 + 7 + 6 inside trit_decode */
    cr_assert_eq(trit_decode(c, ids, 20, &logits), TRIT_OK);
    cr_assert_arr_eq(logits, ref, (size_t)n_vocab * sizeof *ref, "split batches differ from one batch");

    /* truncate and redo the tail: the cache positions are rewritten, not appended */
    cr_assert_eq(trit_context_truncate(b, 12), TRIT_OK);
    cr_assert_eq(trit_decode(b, ids + 12, 8, &logits), TRIT_OK);
    cr_assert_arr_eq(logits, ref, (size_t)n_vocab * sizeof *ref, "truncate + redo differs");
    cr_assert_eq(trit_context_truncate(b, 21), TRIT_ERR_INVALID_ARG);

    trit_context_free(a);
    trit_context_free(b);
    trit_context_free(c);
    free(ref);
    trit_model_free(m);
}

Test(api, logits_all_rows_match_single_rows) {
    trit_model *m = load_fixture();
    const int32_t n_vocab = trit_model_n_vocab(m);
    int32_t ids[6] = {1, 17, 99, 3, 250, 42};
    trit_context *all = make_ctx(m, 8, 8, true);
    const float *rows;
    cr_assert_eq(trit_decode(all, ids, 6, &rows), TRIT_OK);
    trit_context *one = make_ctx(m, 8, 8, false);
    for (int i = 0; i < 6; i++) {
        const float *last;
        cr_assert_eq(trit_decode(one, &ids[i], 1, &last), TRIT_OK);
        cr_assert_arr_eq(rows + (size_t)i * n_vocab, last, (size_t)n_vocab * sizeof(float), "row %d", i);
    }
    trit_context_free(all);
    trit_context_free(one);
    trit_model_free(m);
}

Test(api, errors_from_decode_and_context) {
    trit_model *m = load_fixture();
    trit_context *ctx = make_ctx(m, 4, 4, false);
    int32_t ids[5] = {1, 2, 3, 4, 5};
    const float *logits;
    cr_assert_eq(trit_decode(ctx, ids, 5, &logits), TRIT_ERR_CONTEXT_FULL);
    cr_assert(strstr(trit_last_error(), "context") != NULL);
    int32_t bad = trit_model_n_vocab(m);
    cr_assert_eq(trit_decode(ctx, &bad, 1, &logits), TRIT_ERR_INVALID_ARG);
    cr_assert_eq(trit_context_n_past(ctx), 0, "a failed decode must not advance the cache");
    cr_assert_eq(trit_decode(ctx, ids, 0, &logits), TRIT_ERR_INVALID_ARG);
    trit_context_free(ctx);

    struct trit_context_params p = trit_context_default_params();
    p.device = TRIT_DEVICE_CUDA;
    trit_context *g = NULL;
    if (trit_cuda_device_count() == 0) {
        cr_assert_eq(trit_context_init(m, &p, &g), TRIT_ERR_NO_DEVICE);
        cr_assert_null(g);
    }
    p = trit_context_default_params();
    p.n_batch = 0;
    cr_assert_eq(trit_context_init(m, &p, &g), TRIT_ERR_INVALID_ARG);
    /* the CUDA decode GEMV: an unknown one, or an unknown $TRIT_CUDA_GEMV, is refused on any device */
    p = trit_context_default_params();
    p.device = TRIT_DEVICE_CPU;
    p.cuda_gemv = (enum trit_cuda_gemv)7;
    cr_assert_eq(trit_context_init(m, &p, &g), TRIT_ERR_INVALID_ARG);
    p.cuda_gemv = TRIT_CUDA_GEMV_AUTO;
    setenv("TRIT_CUDA_GEMV", "mul", 1);
    cr_assert_eq(trit_context_init(m, &p, &g), TRIT_ERR_INVALID_ARG);
    cr_assert(strstr(trit_last_error(), "TRIT_CUDA_GEMV='mul'") != NULL, "%s", trit_last_error());
    setenv("TRIT_CUDA_GEMV", "dp4a", 1);
    cr_assert_eq(trit_context_init(m, &p, &g), TRIT_OK, "%s", trit_last_error());
    trit_context_free(g);
    unsetenv("TRIT_CUDA_GEMV");
    trit_model_free(m);
}

Test(api, tokenizer_round_trip_and_stream) {
    trit_tokenizer *tok = NULL;
    cr_assert_eq(trit_tokenizer_load(test_data_path("tokenizers/llama-spm/ggml-vocab-llama-spm.gguf"), &tok), TRIT_OK,
                 "%s", trit_last_error());
    cr_assert_eq(trit_tokenizer_n_vocab(tok), 32000);
    cr_assert_eq(trit_tokenizer_bos(tok), 1);
    cr_assert(trit_tokenizer_is_eog(tok, trit_tokenizer_eos(tok)));
    const char *text = "In the beginning God created the heaven and the earth.";
    struct trit_tokens ids = {0};
    cr_assert_eq(trit_tokenize(tok, text, strlen(text), TRIT_TOKENIZE_ADD_SPECIAL, &ids), TRIT_OK);
    cr_assert_eq(ids.ids[0], 1, "BOS first");
    char out[256];
    size_t n = 0;
    cr_assert_eq(trit_detokenize(tok, ids.ids + 1, ids.n - 1, TRIT_DECODE_STRIP_SPACE, out, sizeof out, &n), TRIT_OK);
    cr_assert_eq(n, strlen(text));
    cr_assert_arr_eq(out, text, n);
    /* the streaming decoder gives the same bytes */
    struct trit_tok_stream ts;
    trit_tok_stream_init(&ts, tok, TRIT_DECODE_STRIP_SPACE);
    char *piece = malloc(trit_tok_stream_max_out(tok));
    size_t total = 0;
    for (size_t i = 1; i < ids.n; i++) {
        size_t k = 0;
        cr_assert_eq(trit_tok_stream_feed(&ts, ids.ids[i], piece, trit_tok_stream_max_out(tok), &k), TRIT_OK);
        cr_assert_leq(total + k, sizeof out);
        memcpy(out + total, piece, k);
        total += k;
    }
    cr_assert_eq(total, strlen(text));
    cr_assert_arr_eq(out, text, total);
    free(piece);
    trit_tokens_free(&ids);
    trit_tokenizer_free(tok);
}

/* trit_perplexity against the same method written out over trit_decode's logits_all rows, and its
 * argument errors: a context too short to score anything (n_ctx < 3) and a negative count are
 * errors, not a NaN perplexity. */
static bool stop_after_one(int64_t chunk, double ppl, void *user) {
    (void)chunk;
    (void)ppl;
    ++*(int *)user;
    return false;
}

Test(api, perplexity_matches_its_definition) {
    trit_model *m = load_fixture();
    const int32_t n_vocab = trit_model_n_vocab(m), n_ctx = 8, bos = 1;
    int32_t ids[20];
    random_ids(ids, 20, n_vocab, 11);
    trit_context *ctx = make_ctx(m, n_ctx, n_ctx, true);

    double nll = 0.0;
    int64_t count = 0;
    for (int c = 0; c < 2; c++) { /* 20 tokens: two chunks of 8, 4 dropped */
        int32_t chunk[8];
        memcpy(chunk, ids + c * n_ctx, sizeof chunk);
        chunk[0] = bos;
        const float *logits;
        cr_assert_eq(trit_context_truncate(ctx, 0), TRIT_OK);
        cr_assert_eq(trit_decode(ctx, chunk, n_ctx, &logits), TRIT_OK, "%s", trit_last_error());
        for (int j = n_ctx / 2; j < n_ctx - 1; j++) {
            const float *row = logits + (size_t)j * (size_t)n_vocab;
            float mx = row[0];
            for (int v = 1; v < n_vocab; v++) mx = row[v] > mx ? row[v] : mx;
            double sum = 0.0;
            for (int v = 0; v < n_vocab; v++) sum += exp((double)row[v] - mx);
            nll += log(sum) - ((double)row[ids[c * n_ctx + j + 1]] - mx);
            count++;
        }
    }
    struct trit_perplexity_result r;
    cr_assert_eq(trit_perplexity(ctx, ids, 20, bos, 0, NULL, NULL, &r), TRIT_OK, "%s", trit_last_error());
    cr_assert_eq(r.n_chunks, 2);
    cr_assert_eq(r.n_scored, count);
    /* the same double arithmetic in the same order */
    cr_assert_float_eq(r.mean_nll, nll / (double)count, 1e-12 * fabs(nll));
    cr_assert(isfinite(r.ppl) && isfinite(r.ppl_err) && r.ppl_err > 0.0);

    /* a callback that returns false stops the run after its chunk: the first chunk's numbers */
    int calls = 0;
    cr_assert_eq(trit_perplexity(ctx, ids, 20, bos, 0, stop_after_one, &calls, &r), TRIT_OK, "%s", trit_last_error());
    cr_assert_eq(calls, 1);
    cr_assert_eq(r.n_chunks, 1);
    cr_assert_eq(r.n_scored, count / 2);

    cr_assert_eq(trit_perplexity(ctx, ids, -16, bos, 0, NULL, NULL, &r), TRIT_ERR_INVALID_ARG);
    trit_context_free(ctx);
    ctx = make_ctx(m, 2, 2, true); /* scores positions 1..0: nothing */
    cr_assert_eq(trit_perplexity(ctx, ids, 20, bos, 0, NULL, NULL, &r), TRIT_ERR_INVALID_ARG);
    cr_assert(strstr(trit_last_error(), "3") != NULL, "%s", trit_last_error());
    trit_context_free(ctx);
    trit_model_free(m);
}

/* trit_decode_argmax is the argmax of trit_decode's last row (lowest id on ties), bit for bit, over
 * a split prompt and a greedy continuation fed back token by token; with logits_all too. */
static int32_t host_argmax(const float *x, int32_t n) {
    int32_t best = 0;
    for (int32_t i = 1; i < n; i++)
        if (x[i] > x[best]) best = i;
    return best;
}

Test(api, decode_argmax_matches_decode_logits) {
    trit_model *m = load_fixture();
    const int32_t n_vocab = trit_model_n_vocab(m);
    int32_t ids[6];
    random_ids(ids, 6, n_vocab, 9);
    for (int all = 0; all < 2; all++) {
        trit_context *a = make_ctx(m, 32, all ? 8 : 4, all), *b = make_ctx(m, 32, all ? 8 : 4, all);
        const float *logits;
        int32_t tok = -1;
        cr_assert_eq(trit_decode(a, ids, 6, &logits), TRIT_OK, "%s", trit_last_error());
        cr_assert_eq(trit_decode_argmax(b, ids, 6, &tok), TRIT_OK, "%s", trit_last_error());
        for (int step = 0; step < 12; step++) {
            const int32_t want = host_argmax(logits + (all ? (step == 0 ? 5 : 0) : 0) * (int64_t)n_vocab, n_vocab);
            cr_assert_eq(tok, want, "step %d (logits_all %d): argmax %d, decode's logits say %d", step, all, tok, want);
            cr_assert_eq(trit_context_n_past(b), trit_context_n_past(a));
            int32_t in = tok;
            cr_assert_eq(trit_decode(a, &in, 1, &logits), TRIT_OK);
            cr_assert_eq(trit_decode_argmax(b, &in, 1, &tok), TRIT_OK);
        }
        cr_assert_eq(trit_decode_argmax(b, ids, 0, &tok), TRIT_ERR_INVALID_ARG);
        cr_assert_eq(trit_decode_argmax(b, ids, 1, NULL), TRIT_ERR_INVALID_ARG);
        trit_context_free(a);
        trit_context_free(b);
    }
    trit_model_free(m);
}

/* trit_decode_sample = trit_decode + trit_sampler_sample on the last row, token for token over a
 * split prompt and 20 sampled steps fed back, for samplers with and without top-k (1, 40, 256 of
 * the 300 tokens, or off), top-p, min-p, temperatures from greedy to 1.5 and repetition penalties
 * above and below 1: two samplers from one seed must stay in step (same tokens, same RNG advance).
 * On the CPU, and on CUDA when a device exists (its forward_topk path once the backend has one). */
static void check_decode_sample(trit_model *m, enum trit_device device) {
    const int32_t n_vocab = trit_model_n_vocab(m);
    static const struct {
        float temperature, top_p, min_p, penalty;
        int32_t top_k;
    } cfgs[] = {{0.8f, 0.95f, 0.05f, 1.3f, 40}, {0.0f, 1.0f, 0.0f, 1.2f, 40}, {1.5f, 0.9f, 0.0f, 0.8f, 256},
                {0.7f, 1.0f, 0.05f, 1.1f, 1},   {1.0f, 0.95f, 0.05f, 1.3f, 0}, {1.2f, 1.0f, 0.0f, 1.0f, 40}};
    int32_t prompt[6];
    random_ids(prompt, 6, n_vocab, 10);
    for (size_t ci = 0; ci < sizeof cfgs / sizeof cfgs[0]; ci++)
        for (int all = 0; all < 2; all++) {
            struct trit_sampler_params sp = trit_sampler_default_params();
            sp.temperature = cfgs[ci].temperature;
            sp.top_k = cfgs[ci].top_k;
            sp.top_p = cfgs[ci].top_p;
            sp.min_p = cfgs[ci].min_p;
            sp.repeat_penalty = cfgs[ci].penalty;
            sp.repeat_last_n = 8;
            sp.seed = 0xABCDu + ci;
            trit_sampler *sa = NULL, *sb = NULL;
            cr_assert_eq(trit_sampler_init(&sp, n_vocab, &sa), TRIT_OK);
            cr_assert_eq(trit_sampler_init(&sp, n_vocab, &sb), TRIT_OK);
            trit_context *a = make_ctx_on(m, device, 64, all ? 8 : 4, all);
            trit_context *b = make_ctx_on(m, device, 64, all ? 8 : 4, all);
            for (int i = 0; i < 6; i++) trit_sampler_accept(sa, prompt[i]), trit_sampler_accept(sb, prompt[i]);
            const int32_t *in = prompt;
            int32_t n_in = 6, tok = -1, last;
            for (int step = 0; step < 20; step++) {
                const float *logits;
                cr_assert_eq(trit_decode(a, in, n_in, &logits), TRIT_OK, "%s", trit_last_error());
                const int32_t want = trit_sampler_sample(sa, logits + (all ? n_in - 1 : 0) * (int64_t)n_vocab);
                cr_assert_eq(trit_decode_sample(b, in, n_in, sb, &tok), TRIT_OK, "%s", trit_last_error());
                cr_assert_eq(tok, want, "%s config %zu logits_all %d step %d: decode_sample %d, decode + sample %d",
                             trit_context_backend(b), ci, all, step, tok, want);
                cr_assert_eq(trit_context_n_past(b), trit_context_n_past(a));
                trit_sampler_accept(sa, want);
                trit_sampler_accept(sb, tok);
                last = tok;
                in = &last, n_in = 1;
            }
            cr_assert_eq(trit_decode_sample(b, prompt, 0, sb, &tok), TRIT_ERR_INVALID_ARG);
            cr_assert_eq(trit_decode_sample(b, prompt, 1, NULL, &tok), TRIT_ERR_INVALID_ARG);
            trit_context_free(a);
            trit_context_free(b);
            trit_sampler_free(sa);
            trit_sampler_free(sb);
        }
}

Test(api, decode_sample_matches_decode_then_sample) {
    trit_model *m = load_fixture();
    check_decode_sample(m, TRIT_DEVICE_CPU);
    if (trit_cuda_device_count() > 0) check_decode_sample(m, TRIT_DEVICE_CUDA);
    else cr_log_info("no CUDA device: decode_sample checked on the CPU only");
    trit_model_free(m);
}

/* ---- alignment ----------------------------------------------------------------------------------
 * A file decides where its tensors start: safetensors data begins at 8 + the header length, which
 * a writer may pad to anything. The fixture's folder copied with a header one byte longer (a space,
 * as the format allows) puts every tensor at an odd address; the model must load and give the same
 * logits bit for bit, in every kernel family. */

static void write_file(const char *path, const void *data, size_t n) {
    FILE *f = fopen(path, "wb");
    cr_assert_not_null(f, "%s", path);
    cr_assert_eq(fwrite(data, 1, n, f), n);
    cr_assert_eq(fclose(f), 0);
}

static unsigned char *read_file(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    cr_assert_not_null(f, "%s", path);
    cr_assert_eq(fseek(f, 0, SEEK_END), 0);
    const long len = ftell(f);
    cr_assert_geq(len, 8);
    rewind(f);
    unsigned char *buf = malloc((size_t)len);
    cr_assert_eq(fread(buf, 1, (size_t)len, f), (size_t)len);
    fclose(f);
    *n = (size_t)len;
    return buf;
}

Test(api, misaligned_tensor_data_gives_the_same_logits) {
    char dir[64] = "/tmp/trit-align-XXXXXX", path[640], src[512];
    cr_assert_not_null(mkdtemp(dir));
    size_t n_cfg, n_st;
    snprintf(src, sizeof src, "%s", test_data_path("fixtures/bitnet-2b4t-tiny/config.json"));
    unsigned char *cfg = read_file(src, &n_cfg);
    snprintf(src, sizeof src, "%s", test_data_path("fixtures/bitnet-2b4t-tiny/model.safetensors"));
    unsigned char *st = read_file(src, &n_st);
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--) hlen = hlen << 8 | st[i];
    cr_assert_leq(hlen, n_st - 8);
    cr_assert_eq((8 + hlen) % 2, 0, "the fixture's data is already at an odd offset: the test needs an even one");
    unsigned char *shifted = malloc(n_st + 1);
    const uint64_t hlen1 = hlen + 1;
    for (int i = 0; i < 8; i++) shifted[i] = (unsigned char)(hlen1 >> (8 * i));
    memcpy(shifted + 8, st + 8, hlen);
    shifted[8 + hlen] = ' ';
    memcpy(shifted + 9 + hlen, st + 8 + hlen, n_st - 8 - hlen);
    snprintf(path, sizeof path, "%s/config.json", dir);
    write_file(path, cfg, n_cfg);
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    write_file(path, shifted, n_st + 1);

    trit_model *a = load_fixture(), *b = NULL;
    cr_assert_eq(trit_model_load(dir, NULL, &b), TRIT_OK, "%s", trit_last_error());
    const int32_t n_vocab = trit_model_n_vocab(a);
    int32_t ids[9];
    random_ids(ids, 9, n_vocab, 0xa119);
    trit_context *ca = make_ctx(a, 32, 16, false), *cb = make_ctx(b, 32, 16, false);
    const float *la = NULL, *lb = NULL;
    cr_assert_eq(trit_decode(ca, ids, 9, &la), TRIT_OK, "%s", trit_last_error());
    cr_assert_eq(trit_decode(cb, ids, 9, &lb), TRIT_OK, "%s", trit_last_error());
    cr_expect(memcmp(la, lb, (size_t)n_vocab * sizeof(float)) == 0, "logits differ with the data at odd addresses");
    trit_context_free(ca);
    trit_context_free(cb);
    trit_model_free(a);
    trit_model_free(b);
    snprintf(path, sizeof path, "%s/config.json", dir);
    remove(path);
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    remove(path);
    remove(dir);
    free(cfg);
    free(st);
    free(shifted);
}

/* ---- the CUDA module (host/cuda_module.h) --------------------------------------------------------
 * A CPU run maps none of the CUDA libraries: they live behind libtrit-cuda.so, which is opened only
 * when a device is asked for or may be present. */
Test(api, cpu_runs_map_no_cuda_library) {
    trit_model *m = load_fixture();
    trit_context *ctx = make_ctx(m, 32, 8, false);
    const int32_t ids[3] = {1, 2, 3};
    const float *logits = NULL;
    cr_assert_eq(trit_decode(ctx, ids, 3, &logits), TRIT_OK, "%s", trit_last_error());
    (void)trit_cuda_compiled();
    FILE *f = fopen("/proc/self/maps", "r");
    cr_assert_not_null(f);
    char line[4096];
    const char *libs[] = {"libcudart", "libcublas", "libnccl", "libtrit-cuda", "libcuda.so"};
    while (fgets(line, sizeof line, f))
        for (size_t i = 0; i < sizeof libs / sizeof libs[0]; i++)
            cr_expect(strstr(line, libs[i]) == NULL, "a CPU run mapped %s", line);
    fclose(f);
    trit_context_free(ctx);
    trit_model_free(m);
}

/* --device cuda with a module that cannot be loaded: TRIT_ERR_NO_DEVICE naming what was tried. */
Test(api, unloadable_cuda_module_is_a_clear_error) {
    setenv("TRIT_CUDA_MODULE", "/nonexistent/libtrit-cuda.so", 1);
    trit_model *m = load_fixture();
    struct trit_context_params p = trit_context_default_params();
    p.device = TRIT_DEVICE_CUDA;
    trit_context *ctx = NULL;
    cr_assert_eq(trit_context_init(m, &p, &ctx), TRIT_ERR_NO_DEVICE);
    cr_assert_null(ctx);
    const char *why = trit_cuda_compiled() ? "/nonexistent/libtrit-cuda.so" : "built without";
    cr_expect(strstr(trit_last_error(), why) != NULL, "%s", trit_last_error());
    cr_expect_eq(trit_cuda_device_count(), 0);
    p.device = TRIT_DEVICE_AUTO; /* auto falls back to the CPU, as without a device */
    cr_assert_eq(trit_context_init(m, &p, &ctx), TRIT_OK, "%s", trit_last_error());
    cr_expect_str_eq(trit_context_backend(ctx), "cpu");
    trit_context_free(ctx);
    trit_model_free(m);
    unsetenv("TRIT_CUDA_MODULE");
}
