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
 *   trit perplexity -f tests/data/kjv_val_excerpt.txt
 */
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
            "  -h, --help           this text\n",
            tool_opts_help);
}

/* -log softmax(logits)[target], computed stably in double. */
static double nll_of(const float *logits, int32_t n_vocab, int32_t target) {
    float max = logits[0];
    for (int32_t i = 1; i < n_vocab; i++)
        if (logits[i] > max) max = logits[i];
    double sum = 0.0;
    for (int32_t i = 0; i < n_vocab; i++) sum += exp((double)logits[i] - max);
    return log(sum) - ((double)logits[target] - max);
}

int cmd_perplexity(int argc, char **argv) {
    struct tool_opts o;
    tool_opts_init(&o);
    const char *file = NULL;
    long max_chunks = -1;
    for (int i = 1; i < argc;) {
        int r = tool_opts_parse(&o, argc, argv, &i, "perplexity");
        if (r < 0) return 2;
        if (r > 0) continue;
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            return 0;
        } else if (!strcmp(a, "-f") || !strcmp(a, "--file")) {
            if (!v) return tool_fail("perplexity", "%s needs a path", a) + 1;
            file = v;
        } else if (!strcmp(a, "--chunks")) {
            if (!v || (max_chunks = atol(v)) <= 0) return tool_fail("perplexity", "--chunks needs a count > 0") + 1;
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
    char *text = tool_read_file(file, &len);
    if (!text) return tool_fail("perplexity", "cannot read '%s'", file);

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
    const int32_t n_ctx = trit_context_n_ctx(s.ctx), n_vocab = trit_model_n_vocab(s.model);
    long n_chunks = (long)(ids.n / (size_t)n_ctx);
    if (max_chunks > 0 && max_chunks < n_chunks) n_chunks = max_chunks;
    if (n_chunks == 0) {
        rc = tool_fail("perplexity", "the text is %zu tokens, fewer than one chunk of %d (lower -c)", ids.n, n_ctx);
        goto done;
    }
    fprintf(stderr, "perplexity: %zu tokens, %ld chunks of %d, scoring positions %d..%d of each\n", ids.n, n_chunks,
            n_ctx, n_ctx / 2, n_ctx - 2);
    const int32_t bos = trit_tokenizer_bos(s.tok);
    const bool add_bos = trit_tokenizer_add_bos(s.tok) && bos >= 0;
    int32_t *chunk = malloc((size_t)n_ctx * sizeof *chunk);
    double nll = 0.0, nll2 = 0.0;
    long count = 0;
    const int32_t first = n_ctx / 2;
    double t0 = tool_now_ms();
    for (long c = 0; c < n_chunks && chunk; c++) {
        memcpy(chunk, ids.ids + c * n_ctx, (size_t)n_ctx * sizeof *chunk);
        if (add_bos) chunk[0] = bos;
        trit_context_truncate(s.ctx, 0);
        const float *logits;
        st = trit_decode(s.ctx, chunk, n_ctx, &logits);
        if (st != TRIT_OK) {
            rc = tool_fail_status("perplexity", st, "decode");
            break;
        }
        for (int32_t j = first; j < n_ctx - 1; j++) {
            double v = nll_of(logits + (size_t)j * (size_t)n_vocab, n_vocab, ids.ids[c * n_ctx + j + 1]);
            nll += v;
            nll2 += v * v;
            count++;
        }
        printf("[%ld]%.4f,", c + 1, exp(nll / (double)count));
        fflush(stdout);
    }
    free(chunk);
    if (rc == 0) {
        double mean = nll / (double)count;
        double var = nll2 / (double)count - mean * mean;
        double err = count > 1 ? sqrt(var / (double)(count - 1)) : 0.0;
        double ppl = exp(mean);
        printf("\nFinal estimate: PPL = %.4f +/- %.5f\n", ppl, ppl * err);
        fprintf(stderr, "perplexity: %ld tokens scored in %.2f s (%.1f tokens/s processed)\n", count,
                (tool_now_ms() - t0) / 1e3, (double)(n_chunks * n_ctx) / ((tool_now_ms() - t0) / 1e3));
    }
done:
    trit_tokens_free(&ids);
    tool_session_close(&s);
    free(text);
    return rc;
}
