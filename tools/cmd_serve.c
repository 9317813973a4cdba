/*
 * cmd_serve.c: `trit serve`: an OpenAI-compatible HTTP server (POST /v1/chat/completions,
 * /v1/completions; GET /v1/models, /health, /metrics) over a continuous-batching scheduler
 * (tools/serve/, docs/serve.md).
 *
 *   trit serve                                  # the shipped model on http://127.0.0.1:8080
 *   trit serve -m model.gguf --port 0 --parallel 4 --api-key secret
 *
 * It listens first, prints "trit serve: listening on http://HOST:PORT" on stdout, then loads the
 * model (/health answers 503 until it is ready). SIGINT or SIGTERM: no new connections, requests in
 * flight finish for up to --shutdown-timeout seconds, the rest are cancelled; exit 0.
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "commands.h"
#include "common.h"
#include "serve/http.h"
#include "serve/metrics.h"
#include "serve/sched.h"

static void usage(FILE *out) {
    fprintf(out,
            "usage: trit serve [options]\n"
            "\n"
            "An OpenAI-compatible HTTP server: POST /v1/chat/completions and /v1/completions (streaming\n"
            "with \"stream\": true), GET /v1/models, /health and /metrics (Prometheus). Requests run in\n"
            "one continuously batched context: up to --parallel sequences decode together while new\n"
            "prompts are prefilled in chunks. When it listens it prints one line on stdout,\n"
            "\"trit serve: listening on http://HOST:PORT\"; logs go to stderr. SIGINT/SIGTERM stop it:\n"
            "requests in flight get --shutdown-timeout seconds to finish. docs/serve.md has the details.\n"
            "\n"
            "  --host ADDR          address to listen on (default 127.0.0.1: this machine only)\n"
            "  --port N             TCP port (default 8080; 0 = any free port, printed)\n"
            "  --parallel N         sequences decoded at once, and the largest n of a request (default 8;\n"
            "                       at most -b)\n"
            "  --kv-tokens N        tokens of KV cache all sequences share (default: the context times\n"
            "                       --parallel, halved until the memory plan fits, down to one context)\n"
            "  --queue N            requests that may wait for a sequence; more get 429 (default 64)\n"
            "  --chunk N            most prompt tokens of one request per step, so that generating\n"
            "                       sequences keep their pace while long prompts are read (default 256)\n"
            "  --api-key KEY        require \"Authorization: Bearer KEY\" on every route but /health\n"
            "                       (default: $TRIT_API_KEY when set, else no key)\n"
            "  --max-body SIZE      largest request body, in bytes or with K, M (default 1M)\n"
            "  --shutdown-timeout S seconds requests in flight may take to finish after SIGINT/SIGTERM\n"
            "                       (default 10; 0 cancels them at once)\n"
            "%s"
            "  -h, --help           this text\n"
            "\n"
            "--tp-mpi is not supported by serve (one process); --tp N needs --parallel 1 for now.\n"
            "Sampling is per request (temperature, top_p, top_k, min_p, repetition_penalty, seed);\n"
            "-c is the longest one sequence may grow (prompt + answer), -b the tokens of one step.\n",
            tool_opts_help);
}

/* The name requests use for the model: the path's last component ("trit-kjv-4m.gguf"), or a
 * synthetic model's name as given ("synthetic:2b"). */
static char *model_name(const char *path) {
    if (!strncmp(path, "synthetic:", 10)) return strdup(path);
    size_t n = strlen(path);
    while (n > 1 && path[n - 1] == '/') n--;
    size_t start = n;
    while (start > 0 && path[start - 1] != '/') start--;
    return strndup(path + start, n - start);
}

struct loaded {
    trit_model *model;
    trit_tokenizer *tok;
    trit_context *ctx;
    char *tmpl, *bos, *eos;
};

static void loaded_free(struct loaded *l) {
    trit_context_free(l->ctx);
    trit_tokenizer_free(l->tok);
    trit_model_free(l->model);
    free(l->tmpl);
    free(l->bos);
    free(l->eos);
    memset(l, 0, sizeof *l);
}

/* Model, tokenizer (not for synthetic models), chat template and the context with its KV pool.
 * Returns 0, or prints why and returns 1. */
static int load(struct loaded *l, const struct tool_opts *o, const char *path, int32_t parallel, int32_t kv_tokens) {
    const double t0 = tool_now_ms();
    struct trit_model_params mp = trit_model_default_params();
    mp.i2s_layout = o->i2s_layout;
    enum trit_status st = trit_model_load(path, &mp, &l->model);
    if (st != TRIT_OK) return tool_fail_status("serve", st, path);
    if (strncmp(path, "synthetic:", 10) != 0) {
        st = trit_tokenizer_load(path, &l->tok);
        if (st != TRIT_OK) return tool_fail_status("serve", st, "tokenizer");
        l->tmpl = tool_chat_template(path);
        l->bos = tool_token_text(l->tok, trit_tokenizer_bos(l->tok));
        l->eos = tool_token_text(l->tok, trit_tokenizer_eos(l->tok));
        if (!l->bos || !l->eos) return tool_fail("serve", "out of memory");
        if (!l->tmpl) fprintf(stderr, "trit serve: the model has no chat template; chat uses a plain \"role: content\" one\n");
    } else {
        fprintf(stderr, "trit serve: %s has no tokenizer: prompts must be token ids (/v1/completions)\n", path);
    }
    struct trit_context_params cp = tool_context_params(o, 0);
    cp.n_seq_max = parallel;
    const int64_t one = o->ctx ? o->ctx : trit_model_n_ctx_train(l->model);
    int64_t kv = kv_tokens ? kv_tokens : one * parallel;
    if (kv > TOOL_MAX_TOKENS) kv = TOOL_MAX_TOKENS;
    for (;;) {
        cp.n_kv = (int32_t)kv;
        st = trit_context_init(l->model, &cp, &l->ctx);
        if (st != TRIT_ERR_OUT_OF_MEMORY || kv_tokens || kv / 2 < one) break;
        fprintf(stderr, "trit serve: a KV pool of %lld tokens does not fit (%s); trying %lld\n", (long long)kv,
                trit_last_error(), (long long)(kv / 2));
        kv /= 2;
    }
    if (st != TRIT_OK) {
        tool_fail_status("serve", st, "context");
        if (st == TRIT_ERR_UNSUPPORTED && parallel > 1)
            fprintf(stderr, "trit serve: (--parallel 1 decodes one sequence at a time on any backend; --device cpu "
                            "batches sequences on the CPU)\n");
        return 1;
    }
    struct trit_kv_stats kvs;
    trit_kv_stats(l->ctx, &kvs);
    fprintf(stderr,
            "trit serve: model %s\n  %s\n  device: %s (%s), context %d per sequence, %d sequences, KV pool %d blocks of "
            "%d tokens, %.1f MiB, loaded in %.0f ms\n",
            path, trit_model_desc(l->model), trit_context_backend(l->ctx), trit_context_device_desc(l->ctx),
            trit_context_n_ctx(l->ctx), parallel, kvs.n_blocks, kvs.block_tokens,
            (double)trit_context_memory_bytes(l->ctx) / (1024.0 * 1024.0), tool_now_ms() - t0);
    return 0;
}

/* Waits for SIGINT or SIGTERM (blocked in every thread) up to `seconds` (< 0: forever); returns the
 * signal or 0. */
static int wait_signal(const sigset_t *set, double seconds) {
    if (seconds < 0) {
        int sig = 0;
        return sigwait(set, &sig) == 0 ? sig : 0;
    }
    const struct timespec t = {(time_t)seconds, (long)((seconds - (double)(time_t)seconds) * 1e9)};
    const int sig = sigtimedwait(set, NULL, &t);
    return sig > 0 ? sig : 0;
}

int cmd_serve(int argc, char **argv) {
    struct tool_opts o;
    tool_opts_init(&o);
    struct serve_http_config hc = {.host = "127.0.0.1", .port = 8080, .max_body = 1u << 20};
    int32_t port = 8080, parallel = 8, kv_tokens = 0, queue = 64, chunk = 256, shutdown_s = 10;
    uint64_t max_body = 1u << 20;
    const char *env_key = getenv("TRIT_API_KEY");
    hc.api_key = env_key && *env_key ? env_key : NULL;
    for (int i = 1; i < argc;) {
        int r = tool_opts_parse(&o, NULL, argc, argv, &i, "serve", usage);
        if (r == TOOL_OPT_TAKEN) continue;
        if (r != TOOL_OPT_OWN) return r;
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        int bad = 0;
        if (!strcmp(a, "--host")) {
            if (!v || !*v) return tool_fail("serve", "--host needs an address") + 1;
            hc.host = v;
        } else if (!strcmp(a, "--port")) bad = tool_parse_i32("serve", a, v, 0, 65535, &port);
        else if (!strcmp(a, "--parallel")) bad = tool_parse_i32("serve", a, v, 1, 1024, &parallel);
        else if (!strcmp(a, "--kv-tokens")) bad = tool_parse_i32("serve", a, v, 1, TOOL_MAX_TOKENS, &kv_tokens);
        else if (!strcmp(a, "--queue")) bad = tool_parse_i32("serve", a, v, 1, 1 << 20, &queue);
        else if (!strcmp(a, "--chunk")) bad = tool_parse_i32("serve", a, v, 1, TOOL_MAX_TOKENS, &chunk);
        else if (!strcmp(a, "--shutdown-timeout")) bad = tool_parse_i32("serve", a, v, 0, 86400, &shutdown_s);
        else if (!strcmp(a, "--max-body")) bad = tool_parse_size("serve", a, v, &max_body);
        else if (!strcmp(a, "--api-key")) {
            if (!v || !*v) return tool_fail("serve", "--api-key needs a key") + 1;
            hc.api_key = v;
        } else {
            usage(stderr);
            return tool_fail("serve", "unknown option '%s'", a) + 1;
        }
        if (bad) return 2;
        i += 2;
    }
    if (o.tp_mpi) return tool_fail("serve", "trit serve runs in one process: --tp-mpi is not supported") + 1;
    if (parallel > o.batch)
        return tool_fail("serve", "--parallel %d is more than -b %d: every generating sequence adds a token to each step",
                         parallel, o.batch) + 1;
    if (max_body > (1u << 30)) return tool_fail("serve", "--max-body is at most 1G") + 1;
    hc.port = (uint16_t)port;
    hc.max_body = (size_t)max_body;
    hc.conn_limit = (unsigned)(2 * (queue + parallel) + 64);
    const char *path = tool_model_path(&o);
    struct stat st_path;
    if (strncmp(path, "synthetic:", 10) != 0 && stat(path, &st_path) != 0) /* before listening, not after */
        return tool_fail("serve", "%s: %s", path, strerror(errno));
    char *name = model_name(path);
    if (!name) return tool_fail("serve", "out of memory");
    hc.model_name = name;

    /* SIGINT and SIGTERM are taken by this thread alone (sigwait): every thread started from here on
     * inherits the mask. SIGPIPE: a client that closed its socket is a failed write, not an exit. */
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);

    struct serve_metrics metrics;
    serve_metrics_init(&metrics);
    struct serve_http *http = NULL;
    struct serve_sched *sched = NULL;
    struct loaded l = {0};
    int rc = 0;
    char err[256];
    uint16_t bound = 0;
    if (serve_http_start(&hc, &metrics, &http, &bound, err, sizeof err)) {
        rc = tool_fail("serve", "%s", err);
        goto done;
    }
    const bool v6 = strchr(hc.host, ':') != NULL;
    printf("trit serve: listening on http://%s%s%s:%u\n", v6 ? "[" : "", hc.host, v6 ? "]" : "", (unsigned)bound);
    if (tool_stdout_check("serve")) {
        rc = 1;
        goto done;
    }
    /* while the model loads (minutes for a large file) SIGINT and SIGTERM end the process at once:
     * nothing is in flight, and the connection threads keep them blocked */
    pthread_sigmask(SIG_UNBLOCK, &set, NULL);
    const int loaded = load(&l, &o, path, parallel, kv_tokens);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    if (loaded) {
        rc = 1;
        goto done;
    }
    struct trit_kv_stats kv;
    trit_kv_stats(l.ctx, &kv);
    /* the context cuts its batch to its length, whatever -b says */
    const int32_t n_ctx = trit_context_n_ctx(l.ctx), n_batch = o.batch < n_ctx ? o.batch : n_ctx;
    if (parallel > n_batch) {
        rc = tool_fail("serve", "--parallel %d is more than the %d tokens of a step (-b %d, context %d): every "
                       "generating sequence adds a token to each step", parallel, n_batch, o.batch, n_ctx);
        goto done;
    }
    const struct serve_sched_config sc = {parallel, n_batch, chunk, queue};
    enum trit_status st = serve_sched_start(l.ctx, l.tok, &sc, &metrics, &sched);
    if (st != TRIT_OK) {
        rc = tool_fail("serve", "the scheduler: %s", trit_status_str(st));
        goto done;
    }
    const struct serve_model_info info = {sched, l.tok, l.tmpl, l.bos ? l.bos : "", l.eos ? l.eos : "",
                                          trit_context_n_ctx(l.ctx), trit_model_n_vocab(l.model), parallel, kv.n_blocks};
    serve_http_ready(http, &info);
    fprintf(stderr, "trit serve: ready: model '%s'%s\n", name, hc.api_key ? ", API key required" : "");

    const int sig = wait_signal(&set, -1);
    fprintf(stderr, "trit serve: %s: no new requests; those in flight have %d s to finish (a second signal: now)\n",
            sig == SIGINT ? "SIGINT" : "SIGTERM", shutdown_s);
    serve_http_quiesce(http);
    serve_sched_close(sched);
    int left = serve_sched_drain(sched, 0.0);
    for (double waited = 0.0; left > 0 && waited < shutdown_s; waited += 0.1) {
        if (wait_signal(&set, 0.0)) break;
        left = serve_sched_drain(sched, 0.1);
    }
    if (left > 0) fprintf(stderr, "trit serve: cancelling %d request%s\n", left, left == 1 ? "" : "s");
done:
    if (sched) serve_sched_stop(sched); /* cancels what remains: every waiting connection thread returns */
    serve_http_stop(http);              /* joins the connection threads */
    serve_sched_free(sched);
    loaded_free(&l);
    serve_metrics_destroy(&metrics);
    free(name);
    if (rc == 0) fprintf(stderr, "trit serve: stopped\n");
    return rc;
}
