/*
 * cmd_chat.c: `trit chat`: an interactive conversation. Each turn is rendered with the model's
 * chat template (tokenizer_config.json "chat_template" or GGUF "tokenizer.chat_template"; a plain
 * "role: content" template when the model has none), and only the text that is new since the last
 * turn is run, so the conversation stays in the KV cache.
 *
 *   trit chat                       # the shipped model
 *   trit chat -m DIR --system "You are terse."
 *   echo "Who was Moses?" | trit chat --temp 0
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "chat/template.h"
#include "commands.h"
#include "common.h"
#include "io/gguf.h"
#include "io/hf.h"

static void usage(FILE *out) {
    fprintf(out,
            "usage: trit chat [options]\n"
            "\n"
            "Reads your messages from stdin, one per line, and answers each. Lines starting with /\n"
            "are commands: /reset forgets the conversation, /exit ends it (so does end of input).\n"
            "\n"
            "  --system TEXT        a system message first (if the template accepts one)\n"
            "  -n, --n-predict N    most tokens per answer (default 256)\n"
            "%s"
            "%s"
            "  -h, --help           this text\n",
            tool_sampling_help, tool_opts_help);
}

/* The model's chat template, or NULL. The caller frees it. */
static char *model_template(const char *path) {
    if (hf_is_folder(path)) {
        struct hf_folder f;
        if (hf_folder_open(path, &f) != TRIT_OK) return NULL;
        struct hf_tokenizer_config tc = {0};
        char *t = NULL;
        if (hf_folder_tokenizer_config(&f, &tc) == TRIT_OK && tc.chat_template) t = strdup(tc.chat_template);
        hf_tokenizer_config_free(&tc);
        hf_folder_close(&f);
        return t;
    }
    struct gguf_file g;
    if (gguf_open(path, &g) != TRIT_OK) return NULL;
    const struct gguf_kv *kv = gguf_find_kv(&g, "tokenizer.chat_template");
    char *t = kv && kv->type == GGUF_TYPE_STRING ? strndup(kv->str.ptr, kv->str.len) : NULL;
    gguf_close(&g);
    return t;
}

static char *token_text(const struct trit_tokenizer *tok, int32_t id) {
    size_t n = 0;
    const char *s = id >= 0 ? trit_tokenizer_token_text(tok, id, &n) : NULL;
    return s ? strndup(s, n) : strdup("");
}

struct conv {
    struct trit_chat_message *msgs;
    size_t n, cap;
};

/* Appends a message that owns `content` (freed here when it cannot be added); -1 when content is
 * NULL or out of memory. */
static int conv_add(struct conv *c, const char *role, char *content) {
    if (!content) return -1;
    if (c->n == c->cap) {
        size_t cap = c->cap ? c->cap * 2 : 16;
        struct trit_chat_message *m = realloc(c->msgs, cap * sizeof *m);
        if (!m) {
            free(content);
            return -1;
        }
        c->msgs = m;
        c->cap = cap;
    }
    c->msgs[c->n++] = (struct trit_chat_message){role, content};
    return 0;
}

static void conv_clear(struct conv *c, size_t keep) {
    for (size_t i = keep; i < c->n; i++) free((char *)c->msgs[i].content);
    c->n = keep;
}

int cmd_chat(int argc, char **argv) {
    struct tool_opts o;
    tool_opts_init(&o);
    struct trit_sampler_params sp = trit_sampler_default_params();
    sp.seed = 1;
    const char *system = NULL;
    int32_t n_predict = 256;
    for (int i = 1; i < argc;) {
        int r = tool_opts_parse(&o, &sp, argc, argv, &i, "chat", usage);
        if (r == TOOL_OPT_TAKEN) continue;
        if (r != TOOL_OPT_OWN) return r;
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--system")) {
            if (!v) return tool_fail("chat", "%s needs text", a) + 1;
            system = v;
        } else if (!strcmp(a, "-n") || !strcmp(a, "--n-predict")) {
            if (tool_parse_i32("chat", a, v, 1, INT32_MAX, &n_predict)) return 2;
        } else {
            usage(stderr);
            return tool_fail("chat", "unknown option '%s'", a) + 1;
        }
        i += 2;
    }
    if (tool_sampling_check(&sp, "chat")) return 2;

    struct tool_session s;
    if (tool_session_open(&s, &o, 0, "chat")) return 1;
    int rc = 0;
    char *tmpl = model_template(s.path);
    if (!tmpl) fprintf(stderr, "chat: the model has no chat template; using a plain \"role: content\" one\n");
    char *bos = token_text(s.tok, trit_tokenizer_bos(s.tok)), *eos = token_text(s.tok, trit_tokenizer_eos(s.tok));
    trit_sampler *sampler = NULL;
    enum trit_status st = trit_sampler_init(&sp, trit_model_n_vocab(s.model), &sampler);
    if (st != TRIT_OK) {
        rc = tool_fail_status("chat", st, "sampler");
        goto done;
    }
    struct conv conv = {0};
    size_t n_fixed = 0;
    char *fed = strdup(""); /* the text whose tokens are in the cache */
    size_t out_cap = trit_tok_stream_max_out(s.tok) + 8;
    char *piece = malloc(out_cap);
    char *line = NULL;
    if (!fed || !piece || (system && conv_add(&conv, "system", strdup(system)))) {
        rc = tool_fail("chat", "out of memory");
        goto end;
    }
    n_fixed = system ? 1 : 0;
    size_t line_cap = 0;
    const bool tty = isatty(0);
    for (;;) {
        if (tty) fprintf(stderr, "> ");
        ssize_t got = getline(&line, &line_cap, stdin);
        if (got < 0) break;
        while (got > 0 && (line[got - 1] == '\n' || line[got - 1] == '\r')) line[--got] = '\0';
        if (got == 0) continue;
        if (!strcmp(line, "/exit") || !strcmp(line, "/quit")) break;
        if (!strcmp(line, "/reset")) {
            conv_clear(&conv, n_fixed);
            trit_context_truncate(s.ctx, 0);
            fed[0] = '\0';
            trit_sampler_reset(sampler);
            fprintf(stderr, "(conversation cleared)\n");
            continue;
        }
        if (conv_add(&conv, "user", strdup(line))) {
            rc = tool_fail("chat", "out of memory");
            break;
        }
        struct trit_chat_vars vars = {conv.msgs, conv.n, bos, eos, true};
        char *text = NULL;
        st = trit_chat_render(tmpl ? tmpl : trit_chat_template_plain, &vars, &text);
        if (st != TRIT_OK) {
            rc = tool_fail_status("chat", st, "chat template");
            break;
        }
        /* Run only what is new. If the template rewrote earlier text (e.g. trimmed a reply),
         * start over from an empty cache. */
        size_t n_fed = strlen(fed);
        const char *fresh = text;
        if (strncmp(text, fed, n_fed) == 0) {
            fresh = text + n_fed;
        } else {
            trit_context_truncate(s.ctx, 0);
        }
        struct trit_tokens ids = {0};
        st = trit_tokenize(s.tok, fresh, strlen(fresh), TRIT_TOKENIZE_PARSE_SPECIAL, &ids);
        const float *logits = NULL;
        if (st == TRIT_OK && ids.n) {
            if (trit_context_n_past(s.ctx) + (int64_t)ids.n + 1 > trit_context_n_ctx(s.ctx)) {
                fprintf(stderr, "(the context is full: conversation cleared; /reset to do this yourself)\n");
                conv_clear(&conv, n_fixed);
                if (conv_add(&conv, "user", strdup(line))) st = trit_error(TRIT_ERR_OUT_OF_MEMORY, "out of memory");
                free(text);
                text = NULL;
                vars = (struct trit_chat_vars){conv.msgs, conv.n, bos, eos, true};
                if (st == TRIT_OK) st = trit_chat_render(tmpl ? tmpl : trit_chat_template_plain, &vars, &text);
                trit_context_truncate(s.ctx, 0);
                trit_tokens_free(&ids);
                if (st == TRIT_OK) st = trit_tokenize(s.tok, text, strlen(text), TRIT_TOKENIZE_PARSE_SPECIAL, &ids);
            }
            for (size_t i = 0; st == TRIT_OK && i < ids.n; i++) trit_sampler_accept(sampler, ids.ids[i]);
            if (st == TRIT_OK) st = trit_decode(s.ctx, ids.ids, (int32_t)ids.n, &logits);
        }
        trit_tokens_free(&ids);
        if (st != TRIT_OK || !logits) {
            free(text);
            rc = st != TRIT_OK ? tool_fail_status("chat", st, "prompt") : tool_fail("chat", "nothing to run");
            break;
        }
        /* Generate the answer. */
        struct trit_tok_stream ts;
        trit_tok_stream_init(&ts, s.tok, 0);
        struct tool_buf { char *p; size_t n, cap; } reply = {0};
        int32_t next = -1;
        for (int n = 0; n < n_predict; n++) {
            int32_t tok = n == 0 ? trit_sampler_sample(sampler, logits) : next;
            if (trit_tokenizer_is_eog(s.tok, tok)) break;
            trit_sampler_accept(sampler, tok);
            size_t n_out = 0;
            if (trit_tok_stream_feed(&ts, tok, piece, out_cap, &n_out) == TRIT_OK && n_out) {
                fwrite(piece, 1, n_out, stdout);
                fflush(stdout);
                if (reply.n + n_out + 1 > reply.cap) {
                    reply.cap = (reply.n + n_out + 1) * 2;
                    char *p = realloc(reply.p, reply.cap);
                    if (!p) break;
                    reply.p = p;
                }
                memcpy(reply.p + reply.n, piece, n_out);
                reply.n += n_out;
                reply.p[reply.n] = '\0';
            }
            if (trit_context_n_past(s.ctx) + 1 >= trit_context_n_ctx(s.ctx)) {
                fprintf(stderr, "\n(the context is full)");
                break;
            }
            st = trit_decode_sample(s.ctx, &tok, 1, sampler, &next);
            if (st != TRIT_OK) break;
        }
        size_t n_tail = 0; /* a character left incomplete at the end shows as U+FFFD */
        if (trit_tok_stream_flush(&ts, piece, out_cap, &n_tail) == TRIT_OK && n_tail) fwrite(piece, 1, n_tail, stdout);
        fputc('\n', stdout);
        fflush(stdout);
        if (st != TRIT_OK) {
            free(text);
            free(reply.p);
            rc = tool_fail_status("chat", st, "generate");
            break;
        }
        /* The cache now holds the rendered prompt and the reply's tokens. */
        size_t n_text = strlen(text), n_reply = reply.n;
        char *now = malloc(n_text + n_reply + 1);
        if (now) {
            memcpy(now, text, n_text);
            if (n_reply) memcpy(now + n_text, reply.p, n_reply);
            now[n_text + n_reply] = '\0';
            free(fed);
            fed = now;
        }
        free(text);
        if (conv_add(&conv, "assistant", reply.p ? reply.p : strdup(""))) {
            rc = tool_fail("chat", "out of memory");
            break;
        }
    }
end:
    free(line);
    free(piece);
    free(fed);
    conv_clear(&conv, 0);
    free(conv.msgs);
done:
    trit_sampler_free(sampler);
    free(tmpl);
    free(bos);
    free(eos);
    tool_session_close(&s);
    return rc;
}
