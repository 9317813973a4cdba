/*
 * cmd_serve.c: `trit serve`: an OpenAI-compatible HTTP server (POST /v1/chat/completions,
 * /v1/completions, /v1/embeddings; GET /v1/models, /health, /metrics) over a continuous-batching
 * scheduler (tools/serve/, docs/serve.md).
 *
 *   trit serve                                  # the shipped model on http://127.0.0.1:8080
 *   trit serve -m model.gguf --port 0 --parallel 4 --api-key secret
 *
 * It listens first, prints "trit serve: listening on http://HOST:PORT" on stdout, then loads the
 * model (/health answers 503 until it is ready). SIGINT or SIGTERM: no new connections, requests in
 * flight finish for up to --shutdown-timeout seconds, the rest are cancelled; exit 0.
 *
 *   mpirun -np 2 trit serve --tp-mpi -m model.gguf   # tensor parallel: rank 0 serves, rank 1 follows
 *
 * With --tp-mpi every rank loads its shard first; rank 0 then listens and decides each step, and the
 * other ranks repeat it (trit_tp_follow) until rank 0 stops.
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
            "with \"stream\": true), POST /v1/embeddings (CPU backend), GET /v1/models, /health and\n"
            "/metrics (Prometheus). Requests run in\n"
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
            "Tensor parallel: under mpirun with --tp-mpi, rank 0 listens (once every rank has loaded) and\n"
            "the other ranks follow its steps; stop it with SIGTERM to rank 0. --tp N: the GPUs of this process.\n"
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
            fprintf(stderr, "trit serve: (--parallel 1 decodes one sequence at a time on any backend)\n");
        return 1;
    }
    struct trit_kv_stats kvs;
    trit_kv_stats(l->ctx, &kvs);
    if (trit_context_tp_rank(l->ctx) == 0) /* MPI ranks: rank 0 speaks for the group */
        fprintf(stderr,
                "trit serve: model %s\n  %s\n  device: %s (%s), context %d per sequence, %d sequences, "
                "KV pool %d blocks of %d tokens, %.1f MiB, loaded in %.0f ms\n",
                path, trit_model_desc(l->model), trit_context_backend(l->ctx), trit_context_device_desc(l->ctx),
                trit_context_n_ctx(l->ctx), parallel, kvs.n_blocks, kvs.block_tokens,
                (double)trit_context_memory_bytes(l->ctx) / (1024.0 * 1024.0), tool_now_ms() - t0);
    return 0;
}

/* ---- signals -------------------------------------------------------------------------------------
 * SIGINT and SIGTERM are blocked in every thread (the connection threads, the scheduler, the CPU
 * backend's pool, MPI's own threads) and taken by one thread, sig_main, with sigwait. While the model
 * loads (minutes for a large file) nothing is in flight, and a signal ends the process at once, as
 * its default action does; after that each one is counted for the main thread (wait_signal). An MPI
 * rank other than 0 never waits for them: mpirun passes them to every rank, and rank 0 decides when
 * the group stops. */
static struct {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    sigset_t set;
    bool loading;
    int pending, last;
} g_sig = {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER, .loading = true};

static void *sig_main(void *arg) {
    (void)arg;
    for (;;) {
        int sig = 0;
        if (sigwait(&g_sig.set, &sig) != 0) continue;
        pthread_mutex_lock(&g_sig.mu);
        if (g_sig.loading) { /* the default action, from this thread, where the signal is now unblocked */
            signal(sig, SIG_DFL);
            pthread_sigmask(SIG_UNBLOCK, &g_sig.set, NULL);
            raise(sig);
        }
        g_sig.pending++;
        g_sig.last = sig;
        pthread_cond_broadcast(&g_sig.cv);
        pthread_mutex_unlock(&g_sig.mu);
    }
    return NULL;
}

/* Blocks SIGINT and SIGTERM in this thread (every thread started later inherits it) and starts
 * sig_main. SIGPIPE: a client that closed its socket is a failed write, not an exit. */
static int signals_start(void) {
    sigemptyset(&g_sig.set);
    sigaddset(&g_sig.set, SIGINT);
    sigaddset(&g_sig.set, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &g_sig.set, NULL);
    signal(SIGPIPE, SIG_IGN);
    pthread_t t;
    if (pthread_create(&t, NULL, sig_main, NULL) != 0) return tool_fail("serve", "cannot start the signal thread");
    pthread_detach(t);
    return 0;
}

/* The model is loaded: signals now stop the server in order. */
static void signals_loaded(void) {
    pthread_mutex_lock(&g_sig.mu);
    g_sig.loading = false;
    pthread_mutex_unlock(&g_sig.mu);
}

/* Waits up to `seconds` (< 0: forever) for a SIGINT or SIGTERM not yet taken; returns it or 0. */
static int wait_signal(double seconds) {
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    const double end = (double)until.tv_sec + (double)until.tv_nsec * 1e-9 + (seconds > 0 ? seconds : 0);
    until.tv_sec = (time_t)end;
    until.tv_nsec = (long)((end - (double)until.tv_sec) * 1e9);
    pthread_mutex_lock(&g_sig.mu);
    while (g_sig.pending == 0) {
        if (seconds < 0) pthread_cond_wait(&g_sig.cv, &g_sig.mu);
        else if (pthread_cond_timedwait(&g_sig.cv, &g_sig.mu, &until) == ETIMEDOUT) break;
    }
    const int sig = g_sig.pending > 0 ? g_sig.last : 0;
    if (g_sig.pending > 0) g_sig.pending--;
    pthread_mutex_unlock(&g_sig.mu);
    return sig;
}

/* An MPI rank other than 0: repeats rank 0's steps until it stops. Its output is silenced, as the
 * other commands' followers are, but for warnings and errors ("[rank N] ..."). */
static int follow(struct loaded *l) {
    tool_tp_follower(l->ctx);
    if (trit_tp_follow(l->ctx) != TRIT_OK) return tool_fail("serve", "%s", trit_last_error());
    return 0;
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

    if (signals_start()) {
        free(name);
        return 1;
    }

    struct serve_metrics metrics;
    serve_metrics_init(&metrics);
    struct serve_http *http = NULL;
    struct serve_sched *sched = NULL;
    struct loaded l = {0};
    int rc = 0;
    char err[256];
    /* One process listens first and loads while /health says 503. MPI ranks load first (which rank
     * is 0 is known once the context exists); then rank 0 listens and leads, the others follow. */
    if (o.tp_mpi) {
        if ((rc = load(&l, &o, path, parallel, kv_tokens)) != 0) goto done;
        signals_loaded();
        if (trit_context_tp_rank(l.ctx) != 0) {
            rc = follow(&l);
            goto done;
        }
        if (trit_tp_lead(l.ctx) != TRIT_OK) {
            rc = tool_fail("serve", "%s", trit_last_error());
            goto done;
        }
    }
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
    if (!o.tp_mpi && (rc = load(&l, &o, path, parallel, kv_tokens)) != 0) goto done;
    signals_loaded();
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
    struct trit_model_shape shape;
    trit_model_shape(l.model, &shape);
    const struct serve_model_info info = {sched, l.tok, l.tmpl, l.bos ? l.bos : "", l.eos ? l.eos : "",
                                          trit_context_n_ctx(l.ctx), trit_model_n_vocab(l.model), parallel, kv.n_blocks,
                                          shape.dim};
    serve_http_ready(http, &info);
    fprintf(stderr, "trit serve: ready: model '%s'%s\n", name, hc.api_key ? ", API key required" : "");

    const int sig = wait_signal(-1);
    fprintf(stderr, "trit serve: %s: no new requests; those in flight have %d s to finish (a second signal: now)\n",
            sig == SIGINT ? "SIGINT" : "SIGTERM", shutdown_s);
    serve_http_quiesce(http);
    serve_sched_close(sched);
    int left = serve_sched_drain(sched, 0.0);
    for (double waited = 0.0; left > 0 && waited < shutdown_s; waited += 0.1) {
        if (wait_signal(0.0)) break;
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
