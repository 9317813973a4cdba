/*
 * cmd_embed.c: `trit embed`: sentence embeddings from a decoder, Qwen3-Embedding's way: the hidden
 * state of each text's last token after the final norm (trit_embed), L2-normalized, as a float32
 * .npy of shape (n_texts, dim) or as JSON lines on stdout.
 *
 *   trit embed -m TERNARY-QWEN3-EMBEDDING-DIR -f texts.txt -o vectors.npy
 *   trit embed -m model.gguf -p "What is the capital of China?" --instruct "Given a web search query, retrieve relevant passages that answer the query"
 *
 * The tokens of a text (docs/api.md "Embeddings"): BOS when the vocabulary adds one, the text with
 * control tokens written in it matched (as Hugging Face tokenizers do), then the end-of-text token:
 * <|endoftext|> when the vocabulary has it (what Qwen3-Embedding's tokenizer appends), else EOS;
 * nothing is appended when the text already ends with it, or with --no-eos.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "commands.h"
#include "common.h"
#include "core/core.h"

/* A file of texts is read whole: more than this (about 16 million tokens of text) is refused once that
 * much is read, before the rest (it may be endless: -f /dev/stdin < /dev/zero). */
#define EMBED_MAX_FILE_BYTES ((size_t)64 << 20)

static void usage(FILE *out) {
    fprintf(out,
            "usage: trit embed [options] (-p TEXT | -f FILE) [-o OUT.npy]\n"
            "\n"
            "Sentence embeddings: the hidden state of each text's last token after the model's final\n"
            "norm (the LM head's input), L2-normalized, one vector of the model's dim per text.\n"
            "Without -o, one JSON line per text on stdout: {\"index\": I, \"n_tokens\": N, \"embedding\": [...]}.\n"
            "\n"
            "  -p, --prompt TEXT    one text\n"
            "  -f, --file FILE      one text per line (\\n or \\r\\n; an empty line is an error; 64 MiB at\n"
            "                       most: split larger files)\n"
            "  -o, --output PATH    write float32 [n_texts, dim] as .npy (numpy.load reads it); an existing\n"
            "                       regular file is replaced, a folder or device refused\n"
            "  --instruct TASK      embed \"Instruct: TASK\\nQuery:TEXT\" (Qwen3-Embedding's query format;\n"
            "                       documents are embedded without it)\n"
            "  --no-normalize       the raw final-norm hidden states, not L2-normalized\n"
            "  --no-eos             append no end-of-text token (by default <|endoftext|> when the\n"
            "                       vocabulary has it, else EOS, unless the text already ends with it)\n"
            "%s"
            "  (embeddings run on the CPU backend in one process: --device auto means cpu here, and\n"
            "   --device cuda, --tp and --tp-mpi are refused; --head does not apply: no logits are computed)\n"
            "  -h, --help           this text\n",
            tool_opts_help);
}

/* The texts: one (-p), or the lines of a file, as pointers into buf (NUL-terminated in place). */
struct texts {
    char **s;
    size_t *len;
    long n;
};

/* Splits buf[0..len) into lines; refuses an empty file, an empty line, and a NUL byte. */
static int split_lines(const char *path, char *buf, size_t len, struct texts *t) {
    if (len == 0) return tool_fail("embed", "%s: the file is empty: give one text per line", path);
    long n = 0;
    for (size_t i = 0; i < len; i++) n += buf[i] == '\n';
    if (buf[len - 1] != '\n') n++;
    t->s = calloc((size_t)n, sizeof *t->s);
    t->len = calloc((size_t)n, sizeof *t->len);
    if (!t->s || !t->len) return tool_fail("embed", "out of memory for %ld lines", n);
    size_t start = 0;
    for (long k = 0; k < n; k++) {
        size_t end = start;
        while (end < len && buf[end] != '\n') end++;
        size_t l = end - start;
        if (l > 0 && buf[start + l - 1] == '\r') l--;
        if (l == 0) return tool_fail("embed", "%s: line %ld is empty (one text per line)", path, k + 1);
        if (memchr(buf + start, '\0', l)) return tool_fail("embed", "%s: line %ld holds a NUL byte", path, k + 1);
        buf[start + l] = '\0';
        t->s[k] = buf + start;
        t->len[k] = l;
        start = end + 1;
    }
    t->n = n;
    return 0;
}

/* The ids of one text (the file header's rule, trit_embed_tokenize): *ids (n_ids of them) is a new
 * array, the caller frees it. */
static enum trit_status text_ids(const struct trit_tokenizer *tok, const char *instruct, const char *text, size_t len,
                                 bool add_end, int32_t **ids, size_t *n_ids) {
    *ids = NULL;
    char *joined = NULL;
    if (instruct) { /* Qwen3-Embedding's get_detailed_instruct: f"Instruct: {task}\nQuery:{query}" */
        const size_t li = strlen(instruct);
        joined = malloc(li + len + 32);
        if (!joined) return trit_error(TRIT_ERR_OUT_OF_MEMORY, "out of memory");
        memcpy(joined, "Instruct: ", 10);
        memcpy(joined + 10, instruct, li);
        memcpy(joined + 10 + li, "\nQuery:", 7);
        memcpy(joined + 17 + li, text, len);
        text = joined;
        len += 17 + li;
    }
    struct trit_tokens t = {0};
    enum trit_status st = trit_embed_tokenize(tok, text, len, add_end ? 0 : TRIT_EMBED_NO_END, &t);
    free(joined);
    if (st != TRIT_OK) {
        trit_tokens_free(&t);
        return st;
    }
    *ids = t.ids; /* the caller owns the array (trit_tokens_free would free it the same way) */
    *n_ids = t.n;
    return TRIT_OK;
}

/* One JSON line: {"index": i, "n_tokens": n, "embedding": [...]}; %.9g gives every float32 back exactly. */
static void print_json(long index, size_t n_tokens, const float *v, int dim) {
    printf("{\"index\": %ld, \"n_tokens\": %zu, \"embedding\": [", index, n_tokens);
    for (int i = 0; i < dim; i++) printf(i ? ", %.9g" : "%.9g", (double)v[i]);
    printf("]}\n");
}

int cmd_embed(int argc, char **argv) {
    struct tool_opts o;
    tool_opts_init(&o);
    const char *prompt = NULL, *file = NULL, *out_path = NULL, *instruct = NULL;
    bool normalize = true, add_end = true;
    for (int i = 1; i < argc;) {
        int r = tool_opts_parse(&o, NULL, argc, argv, &i, "embed", usage);
        if (r == TOOL_OPT_TAKEN) continue;
        if (r != TOOL_OPT_OWN) return r;
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--no-normalize")) {
            normalize = false;
            i += 1;
            continue;
        } else if (!strcmp(a, "--no-eos")) {
            add_end = false;
            i += 1;
            continue;
        } else if (!strcmp(a, "-p") || !strcmp(a, "--prompt")) {
            if (!v) return tool_fail("embed", "%s needs a text", a) + 1;
            prompt = v;
        } else if (!strcmp(a, "-f") || !strcmp(a, "--file")) {
            if (!v) return tool_fail("embed", "%s needs a path", a) + 1;
            file = v;
        } else if (!strcmp(a, "-o") || !strcmp(a, "--output")) {
            if (!v) return tool_fail("embed", "%s needs a path", a) + 1;
            out_path = v;
        } else if (!strcmp(a, "--instruct")) {
            if (!v) return tool_fail("embed", "--instruct needs a task description") + 1;
            instruct = v;
        } else {
            usage(stderr);
            return tool_fail("embed", "unknown option '%s'", a) + 1;
        }
        i += 2;
    }
    if (!prompt == !file) {
        usage(stderr);
        return tool_fail("embed", prompt ? "give -p TEXT or -f FILE, not both" : "give a text with -p TEXT or -f FILE") + 1;
    }
    if (o.device == TRIT_DEVICE_CUDA || o.tp > 0 || o.tp_mpi)
        return tool_fail("embed", "embeddings run on the CPU backend, in one process: drop --device cuda, --tp and "
                                  "--tp-mpi") + 1;
    o.device = TRIT_DEVICE_CPU;
    /* the output and the input are checked before the model loads (a folder, /dev/null, a FIFO ...) */
    struct trit_out out = {.fd = -1};
    if (out_path) {
        enum trit_status st = trit_out_open(out_path, &out);
        if (st == TRIT_OK) st = trit_out_check_input(&out, tool_model_path(&o));
        if (st != TRIT_OK) return tool_fail_status("embed", st, "output");
    }
    const int fd = file ? tool_open_input("embed", file) : -1;
    if (file && fd < 0) {
        trit_out_abort(&out);
        return 1;
    }
    struct tool_session s;
    if (tool_session_open(&s, &o, 0, "embed")) {
        if (fd >= 0) close(fd);
        trit_out_abort(&out);
        return 1;
    }
    int rc = 1;
    char *buf = NULL;
    struct texts t = {0};
    int32_t **ids = NULL;
    size_t *n_ids = NULL;
    float *vecs = NULL;
    if (file) {
        size_t len = 0;
        buf = tool_read_input("embed", file, fd, EMBED_MAX_FILE_BYTES, "more than trit embed reads at once (split the file)", &len);
        if (!buf || split_lines(file, buf, len, &t)) goto done;
    } else {
        t.n = 1;
        t.s = calloc(1, sizeof *t.s);
        t.len = calloc(1, sizeof *t.len);
        if (!t.s || !t.len) {
            tool_fail("embed", "out of memory");
            goto done;
        }
        t.s[0] = (char *)prompt;
        t.len[0] = strlen(prompt);
    }
    /* every text is tokenized and checked against the context before any is run */
    const int32_t n_ctx = trit_context_n_ctx(s.ctx);
    ids = calloc((size_t)t.n, sizeof *ids);
    n_ids = calloc((size_t)t.n, sizeof *n_ids);
    if (!ids || !n_ids) {
        tool_fail("embed", "out of memory for %ld texts", t.n);
        goto done;
    }
    for (long k = 0; k < t.n; k++) {
        enum trit_status st = text_ids(s.tok, instruct, t.s[k], t.len[k], add_end, &ids[k], &n_ids[k]);
        if (st != TRIT_OK) {
            tool_fail_status("embed", st, "tokenize");
            goto done;
        }
        if (n_ids[k] == 0) {
            tool_fail("embed", "text %ld has no tokens (the model adds neither BOS nor an end-of-text token)", k + 1);
            goto done;
        }
        if (n_ids[k] > (size_t)n_ctx) {
            tool_fail("embed", "text %ld is %zu tokens, more than the context of %d (raise -c, up to the memory you have)",
                      k + 1, n_ids[k], n_ctx);
            goto done;
        }
    }
    struct trit_model_shape shape;
    trit_model_shape(s.model, &shape);
    const int dim = shape.dim;
    vecs = malloc((size_t)t.n * (size_t)dim * sizeof *vecs);
    if (!vecs) {
        tool_fail("embed", "out of memory for %ld vectors of %d floats", t.n, dim);
        goto done;
    }
    const double t0 = tool_now_ms();
    size_t n_tokens = 0;
    for (long k = 0; k < t.n; k++) {
        float *v = vecs + (size_t)k * (size_t)dim;
        enum trit_status st = trit_embed(s.ctx, 0, ids[k], (int32_t)n_ids[k], normalize ? 0 : TRIT_EMBED_RAW, v);
        if (st != TRIT_OK) {
            tool_fail_status("embed", st, "embed");
            goto done;
        }
        for (int i = 0; i < dim; i++)
            if (!isfinite(v[i])) {
                tool_fail("embed", "text %ld: the model gave a non-finite value at element %d", k + 1, i);
                goto done;
            }
        n_tokens += n_ids[k];
        if (!out_path) {
            print_json(k, n_ids[k], v, dim);
            if (tool_stdout_check("embed")) goto done;
        }
    }
    const double ms = tool_now_ms() - t0;
    if (out_path) {
        enum trit_status st = tool_write_npy_f32(&out, vecs, t.n, dim);
        if (st != TRIT_OK) {
            tool_fail_status("embed", st, "output");
            goto done;
        }
    }
    if (!o.quiet)
        fprintf(stderr, "embedded %ld text%s, %zu tokens, in %.0f ms (%.1f tok/s)%s%s: float32 [%ld, %d]%s\n", t.n,
                t.n == 1 ? "" : "s", n_tokens, ms, ms > 0 ? 1e3 * (double)n_tokens / ms : 0.0, out_path ? ", wrote " : "",
                out_path ? out_path : "", t.n, dim, normalize ? ", L2-normalized" : ", not normalized");
    rc = 0;
done:
    trit_out_abort(&out); /* nothing after a commit */
    if (ids)
        for (long k = 0; k < t.n; k++) free(ids[k]);
    free(ids);
    free(n_ids);
    free(vecs);
    free(t.s);
    free(t.len);
    free(buf);
    tool_session_close(&s);
    return rc;
}
