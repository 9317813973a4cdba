// labels: soak
/* test_soak.c: a long run through the C API in one process, as a server would do it: 1000
 * generations, each in a fresh context with its own sampler, a perplexity run every 25th, the
 * model and tokenizer loaded again every 250th. After a warm-up, resident memory must stay flat and
 * no file descriptor may be left open.
 *
 *   ctest --test-dir build -L soak --output-on-failure
 *   TRIT_SOAK_ITERATIONS=10000 build/tests/test_soak        (longer, by hand)
 *
 * The run takes about 10 s on two cores with the shipped 4M-parameter model. */
#include <criterion/criterion.h>
#include <dirent.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "default_model.h"
#include "support.h"
#include "trit.h"

#define SOAK_ITERATIONS 1000
#define SOAK_WARMUP 300 /* after the first reload */
#define SOAK_WINDOW 100
#define SOAK_PPL_EVERY 25
#define SOAK_RELOAD_EVERY 250
#define SOAK_TOKENS 24
/* The late window's peak may exceed the early one's by this much: a page or two of stdio, TLS and
 * the allocator's bookkeeping come and go. A leak of one 4 KiB buffer per generation grows it by
 * 2.4 MiB over the 600 iterations between the windows, one context per iteration by far more. */
#define SOAK_RSS_SLACK_KIB 1024

/* Resident memory of this process in KiB (/proc/self/statm: the second field, in pages). */
static int64_t rss_kib(void) {
    FILE *f = fopen("/proc/self/statm", "re");
    cr_assert_not_null(f);
    unsigned long long size = 0, resident = 0;
    cr_assert_eq(fscanf(f, "%llu %llu", &size, &resident), 2);
    fclose(f);
    return (int64_t)resident * (sysconf(_SC_PAGESIZE) / 1024);
}

/* Open file descriptors of this process. */
static int open_fds(void) {
    DIR *d = opendir("/proc/self/fd");
    cr_assert_not_null(d);
    int n = 0;
    for (struct dirent *e; (e = readdir(d));)
        if (e->d_name[0] != '.') n++;
    closedir(d);
    return n - 1; /* the directory's own descriptor */
}

static int64_t iterations(void) {
    const char *v = getenv("TRIT_SOAK_ITERATIONS");
    const long long n = v && *v ? atoll(v) : SOAK_ITERATIONS;
    return n > SOAK_WARMUP + 2 * SOAK_WINDOW ? n : SOAK_WARMUP + 2 * SOAK_WINDOW;
}

static void load(trit_model **m, trit_tokenizer **tok) {
    cr_assert_eq(trit_model_load(DEFAULT_MODEL_PATH, NULL, m), TRIT_OK, "%s", trit_last_error());
    cr_assert_eq(trit_tokenizer_load(DEFAULT_MODEL_PATH, tok), TRIT_OK, "%s", trit_last_error());
}

/* One generation: a prompt that changes with i, SOAK_TOKENS sampled tokens, detokenized. Returns
 * the number of bytes of text, so that the work cannot be skipped. */
static size_t generate(const trit_model *m, const trit_tokenizer *tok, int64_t i) {
    struct trit_context_params cp = trit_context_default_params();
    cp.device = TRIT_DEVICE_CPU;
    cp.n_ctx = 64 + (int32_t)(i % 3) * 32; /* buffers of three sizes, as requests of several lengths */
    cp.n_threads = 2;
    trit_context *ctx = NULL;
    cr_assert_eq(trit_context_init(m, &cp, &ctx), TRIT_OK, "%s", trit_last_error());
    struct trit_sampler_params sp = trit_sampler_default_params();
    sp.seed = (uint64_t)i;
    trit_sampler *s = NULL;
    cr_assert_eq(trit_sampler_init(&sp, trit_model_n_vocab(m), &s), TRIT_OK, "%s", trit_last_error());

    char prompt[64];
    const int len = snprintf(prompt, sizeof prompt, "In the beginning %" PRId64 " and", i);
    struct trit_tokens ids = {0};
    cr_assert_eq(trit_tokenize(tok, prompt, (size_t)len, TRIT_TOKENIZE_ADD_SPECIAL, &ids), TRIT_OK, "%s", trit_last_error());
    int32_t out[SOAK_TOKENS], next = 0;
    cr_assert_eq(trit_decode_sample(ctx, ids.ids, (int32_t)ids.n, s, &next), TRIT_OK, "%s", trit_last_error());
    for (int t = 0; t < SOAK_TOKENS; t++) {
        out[t] = next;
        trit_sampler_accept(s, next);
        cr_assert_eq(trit_decode_sample(ctx, &next, 1, s, &next), TRIT_OK, "%s", trit_last_error());
    }
    char text[1024];
    size_t n_text = 0;
    cr_assert_eq(trit_detokenize(tok, out, SOAK_TOKENS, 0, text, sizeof text, &n_text), TRIT_OK, "%s",
                 trit_last_error());
    trit_tokens_free(&ids);
    trit_sampler_free(s);
    trit_context_free(ctx);
    return n_text;
}

/* A perplexity run over the first 2 chunks of a text, in a context of its own. */
static double perplexity(const trit_model *m, const trit_tokenizer *tok, const struct trit_tokens *text) {
    struct trit_context_params cp = trit_context_default_params();
    cp.device = TRIT_DEVICE_CPU;
    cp.n_ctx = 128;
    cp.n_batch = 128;
    cp.n_threads = 2;
    cp.logits_all = true;
    trit_context *ctx = NULL;
    cr_assert_eq(trit_context_init(m, &cp, &ctx), TRIT_OK, "%s", trit_last_error());
    struct trit_perplexity_result r;
    cr_assert_eq(trit_perplexity(ctx, text->ids, (int64_t)text->n, trit_tokenizer_bos(tok), 2, NULL, NULL, &r),
                 TRIT_OK, "%s", trit_last_error());
    trit_context_free(ctx);
    return r.ppl;
}

Test(soak, a_thousand_generations_keep_memory_and_descriptors_flat, .timeout = 600) {
    const int64_t n = iterations();
    trit_model *m = NULL;
    trit_tokenizer *tok = NULL;
    load(&m, &tok);
    /* the first 4 KiB of the validation excerpt: enough for two chunks of 128 tokens */
    FILE *f = fopen(test_data_path("default-model/val_excerpt.txt"), "rb");
    cr_assert_not_null(f);
    char excerpt[4096];
    const size_t n_excerpt = fread(excerpt, 1, sizeof excerpt, f);
    fclose(f);
    struct trit_tokens text = {0};
    cr_assert_eq(trit_tokenize(tok, excerpt, n_excerpt, 0, &text), TRIT_OK);
    cr_assert_geq(text.n, 256, "the excerpt is %zu tokens, fewer than two chunks", text.n);

    int64_t rss0 = 0, rss1 = 0;
    int fds0 = 0;
    size_t bytes = 0;
    double ppl0 = 0.0;
    for (int64_t i = 0; i < n; i++) {
        if (i > 0 && i % SOAK_RELOAD_EVERY == 0) {
            trit_tokenizer_free(tok);
            trit_model_free(m);
            load(&m, &tok);
        }
        bytes += generate(m, tok, i);
        if (i % SOAK_PPL_EVERY == 0) {
            const double ppl = perplexity(m, tok, &text);
            /* the same text, model and context: the same number, bit for bit, every time */
            if (i == 0) ppl0 = ppl;
            cr_assert_eq(ppl, ppl0, "perplexity %.17g at iteration %lld, %.17g at the first", ppl, (long long)i,
                         ppl0);
        }
        /* the peak over a window right after the warm-up and over the last one: every phase of the
         * cycle of context sizes and perplexity runs is in both (the heap's size moves within it) */
        const int64_t rss = rss_kib();
        if (i >= SOAK_WARMUP && i < SOAK_WARMUP + SOAK_WINDOW && rss > rss0) rss0 = rss;
        if (i >= n - SOAK_WINDOW && rss > rss1) rss1 = rss;
        if (i == SOAK_WARMUP) fds0 = open_fds();
    }
    const int fds1 = open_fds();
    cr_log_info("soak: %lld generations, %zu bytes of text, peak resident %lld KiB after the warm-up, %lld KiB at the end, "
                "%d descriptors",
                (long long)n, bytes, (long long)rss0, (long long)rss1, fds1);
    cr_assert_gt(bytes, 0);
    cr_assert_leq(rss1 - rss0, SOAK_RSS_SLACK_KIB, "resident memory grew by %lld KiB over %lld iterations",
                  (long long)(rss1 - rss0), (long long)(n - SOAK_WARMUP));
    cr_assert_eq(fds1, fds0, "%d descriptors open after the warm-up, %d at the end", fds0, fds1);
    trit_tokens_free(&text);
    trit_tokenizer_free(tok);
    trit_model_free(m);
}
