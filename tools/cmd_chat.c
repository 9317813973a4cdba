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
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "chat/template.h"
#include "commands.h"
#include "common.h"

static const char chat_commands_help[] =
    "  /help                this list\n"
    "  /reset               forget the conversation (the --system message stays)\n"
    "  /exit, /quit         end the session (so does the end of the input)\n"
    "  //text               send \"/text\": a message that starts with / is written with two\n";

static void usage(FILE *out) {
    fprintf(out,
            "usage: trit chat [options]\n"
            "\n"
            "Reads your messages from stdin, one per line, and answers each on stdout; notes go to stderr.\n"
            "A line that starts with / is a command (an unknown one is refused, not sent):\n"
            "\n"
            "%s"
            "\n"
            "When the conversation no longer fits in the context (-c), it is cleared and the message is\n"
            "sent alone; a message too long even alone is refused with its token count, and the session\n"
            "goes on. An answer that fills the context stops there, and the conversation is cleared.\n"
            "A line holding a NUL byte is refused. The session ends with exit 1 when stdout cannot be\n"
            "written.\n"
            "\n"
            "  --system TEXT        a system message first (if the template accepts one)\n"
            "  -n, --n-predict N    most tokens per answer (default 256)\n"
            "%s"
            "%s"
            "  -h, --help           this text\n",
            chat_commands_help, tool_sampling_help, tool_opts_help);
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

/* msgs[0..n) through the model's template (the plain one when it has none), with the assistant's
 * generation prompt, into a new string (*out). */
static enum trit_status render(const char *tmpl, const struct trit_chat_message *msgs, size_t n, const char *bos,
                               const char *eos, char **out) {
    struct trit_chat_vars vars = {msgs, n, bos, eos, true};
    return trit_chat_render(tmpl ? tmpl : trit_chat_template_plain, &vars, out);
}

/* One line of stdin, its newline kept, into *line (grown as needed, NUL-terminated): its length,
 * -1 at the end of the input (or an allocation failure), -2 when it runs past max bytes (it is not
 * read further). */
static ssize_t read_line_bounded(char **line, size_t *cap, size_t max) {
    size_t n = 0;
    for (int c; (c = getchar()) != EOF;) {
        if (n + 2 > *cap) {
            const size_t bigger = *cap ? 2 * *cap : 256;
            char *p = realloc(*line, bigger);
            if (!p) return -1;
            *line = p, *cap = bigger;
        }
        (*line)[n++] = (char)c;
        if (c == '\n') break;
        if (n > max) return -2;
    }
    if (n == 0) return -1;
    (*line)[n] = '\0';
    return (ssize_t)n;
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
    char *tmpl = tool_chat_template(s.path);
    if (!tmpl) fprintf(stderr, "chat: the model has no chat template; using a plain \"role: content\" one\n");
    char *bos = tool_token_text(s.tok, trit_tokenizer_bos(s.tok)), *eos = tool_token_text(s.tok, trit_tokenizer_eos(s.tok));
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
    /* a line longer than this cannot fit the context: reading stops there (stdin may be endless) */
    const size_t line_max = tool_text_max_bytes(s.tok, trit_context_n_ctx(s.ctx));
    for (;;) {
        if (tty) fprintf(stderr, "> ");
        ssize_t got = read_line_bounded(&line, &line_cap, line_max);
        if (got == -2) {
            rc = tool_fail("chat", "stdin: a line of more than %zu bytes, more than a context of %d tokens can hold",
                           line_max, trit_context_n_ctx(s.ctx));
            break;
        }
        if (got < 0) break;
        size_t len = (size_t)got;
        while (len && (line[len - 1] == '\n' || line[len - 1] == '\r')) len--;
        line[len] = '\0';
        if (len == 0) continue;
        /* The template and the tokenizer's caller take C strings: a NUL would cut the message. */
        const char *nul = memchr(line, '\0', len);
        if (nul) {
            fprintf(stderr, "(not sent: the line holds a NUL byte at byte %zu)\n", (size_t)(nul - line) + 1);
            continue;
        }
        const char *msg = line;
        if (line[0] == '/' && line[1] == '/') {
            msg = line + 1; /* //text sends "/text" */
        } else if (line[0] == '/') {
            if (!strcmp(line, "/exit") || !strcmp(line, "/quit")) break;
            if (!strcmp(line, "/reset")) {
                conv_clear(&conv, n_fixed);
                trit_context_truncate(s.ctx, 0);
                fed[0] = '\0';
                trit_sampler_reset(sampler);
                fprintf(stderr, "(conversation cleared)\n");
            } else if (!strcmp(line, "/help")) {
                fputs(chat_commands_help, stderr);
            } else {
                size_t n_word = strcspn(line, " \t");
                fprintf(stderr, "unknown command %.*s; /help lists them\n", (int)(n_word < 64 ? n_word : 64), line);
            }
            continue;
        }
        if (conv_add(&conv, "user", strdup(msg))) {
            rc = tool_fail("chat", "out of memory");
            break;
        }
        char *text = NULL;
        st = render(tmpl, conv.msgs, conv.n, bos, eos, &text);
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
            fed[0] = '\0';
        }
        struct trit_tokens ids = {0};
        st = trit_tokenize(s.tok, fresh, strlen(fresh), TRIT_TOKENIZE_PARSE_SPECIAL, &ids);
        const int64_t n_ctx = trit_context_n_ctx(s.ctx);
        if (st == TRIT_OK && trit_context_n_past(s.ctx) + (int64_t)ids.n + 1 > n_ctx) {
            /* It does not fit after the conversation: with the fixed messages alone, then? */
            struct trit_chat_message alone[2];
            memcpy(alone, conv.msgs, n_fixed * sizeof *alone);
            alone[n_fixed] = conv.msgs[conv.n - 1];
            free(text);
            text = NULL;
            trit_tokens_free(&ids);
            st = render(tmpl, alone, n_fixed + 1, bos, eos, &text);
            if (st == TRIT_OK) st = trit_tokenize(s.tok, text, strlen(text), TRIT_TOKENIZE_PARSE_SPECIAL, &ids);
            if (st == TRIT_OK && (int64_t)ids.n + 1 > n_ctx) {
                /* Never: the message alone is too long. Say by how much (the template's own tokens:
                 * the same render with an empty message); the conversation goes on. */
                struct trit_tokens own = {0};
                char *bare = NULL;
                alone[n_fixed].content = "";
                st = render(tmpl, alone, n_fixed + 1, bos, eos, &bare);
                if (st == TRIT_OK) st = trit_tokenize(s.tok, bare, strlen(bare), TRIT_TOKENIZE_PARSE_SPECIAL, &own);
                free(bare);
                int64_t n_msg = (int64_t)ids.n - (int64_t)own.n, fit = n_ctx - 1 - (int64_t)own.n;
                if (st == TRIT_OK)
                    fprintf(stderr, "(not sent: the message is %lld tokens and at most %lld fit in the context of %lld)\n",
                            (long long)n_msg, (long long)(fit > 0 ? fit : 0), (long long)n_ctx);
                trit_tokens_free(&own);
                trit_tokens_free(&ids);
                free(text);
                conv_clear(&conv, conv.n - 1);
                if (st != TRIT_OK) {
                    rc = tool_fail_status("chat", st, "tokenize");
                    break;
                }
                continue;
            }
            if (st == TRIT_OK) { /* it fits alone: forget the conversation before it */
                fprintf(stderr, "(the context is full: conversation cleared; /reset to do this yourself)\n");
                struct trit_chat_message last = conv.msgs[--conv.n];
                conv_clear(&conv, n_fixed);
                conv.msgs[conv.n++] = last;
                trit_context_truncate(s.ctx, 0);
                fed[0] = '\0';
            }
        }
        const float *logits = NULL;
        for (size_t i = 0; st == TRIT_OK && i < ids.n; i++) trit_sampler_accept(sampler, ids.ids[i]);
        if (st == TRIT_OK && ids.n) st = trit_decode(s.ctx, ids.ids, (int32_t)ids.n, &logits);
        trit_tokens_free(&ids);
        if (st != TRIT_OK || !logits) {
            free(text);
            rc = st != TRIT_OK ? tool_fail_status("chat", st, "prompt") : tool_fail("chat", "nothing to run");
            break;
        }
        /* Generate the answer. A failed write to stdout (a full disk, a closed pipe) ends the session. */
        struct trit_tok_stream ts;
        trit_tok_stream_init(&ts, s.tok, 0);
        struct tool_buf { char *p; size_t n, cap; } reply = {0};
        int32_t next = -1;
        bool full = false, lost = false;
        for (int n = 0; n < n_predict; n++) {
            int32_t tok = n == 0 ? trit_sampler_sample(sampler, logits) : next;
            if (trit_tokenizer_is_eog(s.tok, tok)) break;
            trit_sampler_accept(sampler, tok);
            size_t n_out = 0;
            if (trit_tok_stream_feed(&ts, tok, piece, out_cap, &n_out) == TRIT_OK && n_out) {
                if (fwrite(piece, 1, n_out, stdout) != n_out || fflush(stdout)) {
                    lost = true;
                    break;
                }
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
            if (trit_context_n_past(s.ctx) + 1 >= n_ctx) {
                full = true;
                break;
            }
            st = trit_decode_sample(s.ctx, &tok, 1, sampler, &next);
            if (st != TRIT_OK) break;
        }
        size_t n_tail = 0; /* a character left incomplete at the end shows as U+FFFD */
        if (!lost && trit_tok_stream_flush(&ts, piece, out_cap, &n_tail) == TRIT_OK && n_tail)
            fwrite(piece, 1, n_tail, stdout);
        if (lost || fputc('\n', stdout) == EOF || fflush(stdout)) {
            free(text);
            free(reply.p);
            rc = tool_fail("chat", "cannot write to stdout: %s", strerror(errno));
            break;
        }
        if (st != TRIT_OK) {
            free(text);
            free(reply.p);
            rc = tool_fail_status("chat", st, "generate");
            break;
        }
        if (full) {
            /* The next message could not follow: start over now, and say it once. */
            fprintf(stderr, "(the context is full: the answer stops here, and the conversation is cleared)\n");
            free(text);
            free(reply.p);
            conv_clear(&conv, n_fixed);
            trit_context_truncate(s.ctx, 0);
            fed[0] = '\0';
            continue;
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
