/*
 * cmd_perplexity.c: `trit perplexity`: perplexity of a text file, computed the way llama.cpp's
 * llama-perplexity does, so the numbers compare:
 *   - the text is tokenized without special tokens and cut into non-overlapping chunks of n_ctx
 *     tokens (the remainder is dropped);
 *   - each chunk starts from an empty cache, its first token replaced by BOS when the vocab adds
 *     one;
 *   - only the second half is scored: the predictions made at positions n_ctx/2 .. n_ctx-2;
 *   - PPL = exp(mean NLL), +/- exp(mean NLL) x the standard error of the mean NLL.
 *
 *   trit perplexity -f tests/data/default-model/val_excerpt.txt
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "commands.h"
#include "common.h"

static void usage(FILE *out) {
    fprintf(out,
            "usage: trit perplexity [options] -f FILE\n"
            "\n"
            "Prints running and final perplexity (llama.cpp's method: non-overlapping chunks of\n"
            "-c tokens, second half of each scored). The last line is\n"
            "  Final estimate: PPL = x +/- y\n"
            "\n"
            "  -f, --file PATH      the text\n"
            "  --chunks N           score at most N chunks (default: all)\n"
            "%s"
            "  (-b is ignored: each chunk of -c tokens is one batch)\n"
            "  -h, --help           this text\n",
            tool_opts_help);
}

/* A running value that does not reach stdout stops the run: the chunks left would be computed for
 * nobody. *user is set to 1 then. */
static bool print_chunk(int64_t chunk, double ppl, void *user) {
    printf("[%lld]%.4f,", (long long)chunk + 1, ppl);
    if (!tool_stdout_check("perplexity")) return true;
    *(int *)user = 1;
    return false;
}

int cmd_perplexity(int argc, char **argv) {
    struct tool_opts o;
    tool_opts_init(&o);
    const char *file = NULL;
    int32_t max_chunks = -1;
    for (int i = 1; i < argc;) {
        int r = tool_opts_parse(&o, NULL, argc, argv, &i, "perplexity", usage);
        if (r == TOOL_OPT_TAKEN) continue;
        if (r != TOOL_OPT_OWN) return r;
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "-f") || !strcmp(a, "--file")) {
            if (!v) return tool_fail("perplexity", "%s needs a path", a) + 1;
            file = v;
        } else if (!strcmp(a, "--chunks")) {
            if (tool_parse_i32("perplexity", a, v, 1, INT32_MAX, &max_chunks)) return 2;
        } else {
            usage(stderr);
            return tool_fail("perplexity", "unknown option '%s'", a) + 1;
        }
        i += 2;
    }
    if (!file) {
        usage(stderr);
        return tool_fail("perplexity", "give the text with -f FILE") + 1;
    }
    size_t len;
    char *text = tool_read_file("perplexity", file, &len);
    if (!text) return 1;

    /* Every chunk is one batch with logits for all of its tokens. */
    struct tool_session s;
    struct tool_opts so = o;
    if (so.ctx > 0) so.batch = so.ctx;
    else so.batch = 1 << 30; /* clamped to the context by the library */
    if (tool_session_open(&s, &so, TOOL_LOGITS_ALL, "perplexity")) {
        free(text);
        return 1;
    }
    int rc = 0;
    struct trit_tokens ids = {0};
    enum trit_status st = trit_tokenize(s.tok, text, len, 0, &ids);
    if (st != TRIT_OK) {
        rc = tool_fail_status("perplexity", st, "tokenize");
        goto done;
    }
    const int32_t n_ctx = trit_context_n_ctx(s.ctx);
    if ((int64_t)ids.n < n_ctx) {
        rc = tool_fail("perplexity", "the text is %zu tokens, fewer than one chunk of %d (lower -c)", ids.n, n_ctx);
        goto done;
    }
    const int32_t bos = trit_tokenizer_add_bos(s.tok) ? trit_tokenizer_bos(s.tok) : -1;
    fprintf(stderr, "perplexity: %zu tokens, chunks of %d, scoring positions %d..%d of each\n", ids.n, n_ctx,
            n_ctx / 2, n_ctx - 2);
    double t0 = tool_now_ms();
    struct trit_perplexity_result r;
    int lost = 0;
    st = trit_perplexity(s.ctx, ids.ids, (int64_t)ids.n, bos, max_chunks, print_chunk, &lost, &r);
    if (lost) {
        rc = 1;
        goto done;
    }
    if (st != TRIT_OK) {
        rc = tool_fail_status("perplexity", st, "decode");
        goto done;
    }
    const double sec = (tool_now_ms() - t0) / 1e3;
    printf("\nFinal estimate: PPL = %.4f +/- %.5f\n", r.ppl, r.ppl_err);
    if (tool_stdout_check("perplexity")) {
        rc = 1;
        goto done;
    }
    fprintf(stderr, "perplexity: %lld chunks, %lld tokens scored in %.2f s (%.1f tokens/s processed)\n",
            (long long)r.n_chunks, (long long)r.n_scored, sec, (double)(r.n_chunks * n_ctx) / sec);
done:
    trit_tokens_free(&ids);
    tool_session_close(&s);
    free(text);
    return rc;
}
