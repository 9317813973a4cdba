/* http.c: see http.h. */
#include "http.h"

#include <errno.h>
#include <math.h>
#include <microhttpd.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "chat/template.h"
#include "tokenizer/tokenizer.h"

enum state { LOADING = 0, READY = 1, DRAINING = 2 };

struct serve_http {
    struct serve_http_config cfg;
    struct serve_metrics *metrics;
    struct MHD_Daemon *daemon;
    MHD_socket quiesced; /* the listening socket after serve_http_quiesce, closed after the stop */
    atomic_int state;
    struct serve_model_info info; /* valid once state is READY (written before, read after: seq_cst) */
    int64_t created;              /* the server's start, Unix seconds: the model's "created" */
    atomic_uint_fast64_t counter; /* request ids and default seeds */
    atomic_int open_requests;     /* completion and embeddings requests whose answer is not yet sent */
    uint64_t salt;
};

/* Routes. */
enum route { R_NONE = 0, R_HEALTH, R_METRICS, R_MODELS, R_MODEL, R_CHAT, R_COMPLETIONS, R_EMBEDDINGS };
static bool is_post(enum route r) { return r == R_CHAT || r == R_COMPLETIONS || r == R_EMBEDDINGS; }

/* Per connection and request (MHD's con_cls): the body as it arrives. */
struct conn {
    enum route route;
    struct sv_buf body;
    bool responded; /* a response was queued before the body ended: the rest is read and dropped */
    bool too_long;  /* the body passed --max-body while it arrived: the rest is dropped, then 413 */
    size_t dropped;
    bool refused;   /* the headers decided an error (`error`), answered after the body */
    struct serve_error error;
    struct serve_http *h; /* set for a POST request: counted in h->open_requests until sent */
};

/* Bytes of a too long body read and dropped before the connection is closed instead. */
#define DRAIN_MAX ((size_t)64 << 20)

/* How long a waiting thread sleeps between checks that its client is still there. */
#define POLL_NS 100000000L

/* ---- small things ----------------------------------------------------------------------------- */

static uint64_t mix64(uint64_t x) { /* splitmix64's finalizer */
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9ULL;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebULL;
    return x ^ (x >> 31);
}

static uint64_t next_random(struct serve_http *h) {
    return mix64(h->salt + 0x9e3779b97f4a7c15ULL * (uint64_t)atomic_fetch_add(&h->counter, 1));
}

/* Whether the peer of fd has closed the connection (or it broke). Peeks, consuming nothing; only
 * this connection's own thread reads the socket, and it is here. */
static bool client_gone(MHD_socket fd) {
    char c;
    const ssize_t n = recv(fd, &c, 1, MSG_PEEK | MSG_DONTWAIT);
    return n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR);
}

static MHD_socket conn_fd(struct MHD_Connection *con) {
    const union MHD_ConnectionInfo *ci = MHD_get_connection_info(con, MHD_CONNECTION_INFO_CONNECTION_FD);
    return ci ? ci->connect_fd : MHD_INVALID_SOCKET;
}

static void deadline_in(struct timespec *t, long ns) {
    clock_gettime(CLOCK_REALTIME, t);
    t->tv_nsec += ns;
    while (t->tv_nsec >= 1000000000L) {
        t->tv_nsec -= 1000000000L;
        t->tv_sec++;
    }
}

/* ---- responses --------------------------------------------------------------------------------- */

static enum MHD_Result send_bytes(struct MHD_Connection *con, unsigned status, const char *type, const char *data,
                                  size_t n, const char *h1, const char *v1) {
    struct MHD_Response *resp = MHD_create_response_from_buffer(n, (void *)(uintptr_t)data, MHD_RESPMEM_MUST_COPY);
    if (!resp) return MHD_NO;
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, type);
    if (h1) MHD_add_response_header(resp, h1, v1);
    const enum MHD_Result r = MHD_queue_response(con, status, resp);
    MHD_destroy_response(resp);
    return r;
}

static enum MHD_Result send_json(struct MHD_Connection *con, unsigned status, const struct sv_buf *b) {
    if (b->failed) return MHD_NO;
    return send_bytes(con, status, "application/json", b->p ? b->p : "", b->n, NULL, NULL);
}

/* An error in OpenAI's shape, with the headers its status calls for. A completion or embeddings
 * request refused here is counted (rejected, or error for a 5xx other than 503). */
static enum MHD_Result send_error(struct serve_http *h, struct MHD_Connection *con, enum route route,
                                  const struct serve_error *e) {
    struct sv_buf b = {0};
    serve_json_error(e, &b);
    const char *hn = NULL, *hv = NULL;
    if (e->http == 429 || e->http == 503) hn = MHD_HTTP_HEADER_RETRY_AFTER, hv = "1";
    else if (e->http == 401) hn = MHD_HTTP_HEADER_WWW_AUTHENTICATE, hv = "Bearer";
    else if (e->http == 405) hn = MHD_HTTP_HEADER_ALLOW, hv = is_post(route) ? "POST" : "GET, HEAD";
    const enum serve_outcome outcome = e->http >= 500 && e->http != 503 ? SERVE_ERROR : SERVE_REJECTED;
    if (route == R_CHAT || route == R_COMPLETIONS) serve_metrics_request(h->metrics, outcome);
    if (route == R_EMBEDDINGS) serve_metrics_embed(h->metrics, outcome, 0);
    const enum MHD_Result r = b.failed ? MHD_NO : send_bytes(con, (unsigned)e->http, "application/json", b.p, b.n, hn, hv);
    sv_buf_free(&b);
    return r;
}

static enum MHD_Result fail(struct serve_http *h, struct MHD_Connection *con, enum route route, int http,
                            const char *type, const char *code, const char *fmt, ...) __attribute__((format(printf, 7, 8)));
static enum MHD_Result fail(struct serve_http *h, struct MHD_Connection *con, enum route route, int http,
                            const char *type, const char *code, const char *fmt, ...) {
    struct serve_error e;
    serve_error_set(&e, http, type, NULL, code, "%s", "");
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e.message, sizeof e.message, fmt, ap);
    va_end(ap);
    return send_error(h, con, route, &e);
}

/* ---- routing ------------------------------------------------------------------------------------ */

static enum route route_of(const char *url, bool *post) {
    *post = false;
    if (!strcmp(url, "/health")) return R_HEALTH;
    if (!strcmp(url, "/metrics")) return R_METRICS;
    if (!strcmp(url, "/v1/models")) return R_MODELS;
    if (!strncmp(url, "/v1/models/", 11) && url[11]) return R_MODEL;
    *post = true;
    if (!strcmp(url, "/v1/chat/completions")) return R_CHAT;
    if (!strcmp(url, "/v1/completions")) return R_COMPLETIONS;
    if (!strcmp(url, "/v1/embeddings")) return R_EMBEDDINGS;
    return R_NONE;
}

static enum MHD_Result get_route(struct serve_http *h, struct MHD_Connection *con, enum route route, const char *url) {
    struct sv_buf b = {0};
    enum MHD_Result r;
    const int state = atomic_load(&h->state);
    switch (route) {
    case R_HEALTH:
        if (state == READY) return send_bytes(con, 200, "application/json", "{\"status\":\"ok\"}", 15, NULL, NULL);
        sv_buf_printf(&b, "{\"status\":\"%s\"}", state == LOADING ? "loading" : "shutting down");
        r = b.failed ? MHD_NO
                     : send_bytes(con, 503, "application/json", b.p, b.n, MHD_HTTP_HEADER_RETRY_AFTER, "1");
        break;
    case R_METRICS:
        serve_metrics_render(h->metrics, &b);
        r = b.failed ? MHD_NO : send_bytes(con, 200, "text/plain; version=0.0.4; charset=utf-8", b.p, b.n, NULL, NULL);
        break;
    case R_MODELS:
        serve_json_models(h->cfg.model_name, h->created, &b);
        r = send_json(con, 200, &b);
        break;
    default: /* R_MODEL */
        if (strcmp(url + 11, h->cfg.model_name) != 0)
            return fail(h, con, route, 404, "invalid_request_error", "model_not_found",
                        "The model '%.200s' does not exist; this server runs '%.200s'", url + 11, h->cfg.model_name);
        serve_json_model(h->cfg.model_name, h->created, &b);
        r = send_json(con, 200, &b);
        break;
    }
    sv_buf_free(&b);
    return r;
}

/* Why POST requests get 503 now (loading, shutting down), or NULL when the server is ready. */
static const char *unready(struct serve_http *h) {
    const int state = atomic_load(&h->state);
    if (state == READY) return NULL;
    return state == LOADING ? "the model is loading; try again shortly" : "the server is shutting down";
}

/* The answer to a request the scheduler did not take: 429 (queue full) or 503 (shutting down). */
static enum MHD_Result refused(struct serve_http *h, struct MHD_Connection *con, enum route route, enum serve_submit sub) {
    if (sub == SERVE_QUEUE_FULL)
        return fail(h, con, route, 429, "server_busy", "queue_full",
                    "the server is busy: the queue of waiting requests is full (--queue); retry later");
    return fail(h, con, route, 503, "server_error", NULL, "the server is shutting down");
}

/* Waits under mu until *done, looking at the client every POLL_NS of wall time (the scheduler
 * wakes us at every token, and a deadline renewed at each wake would never pass while tokens come
 * faster than that). Returns true when done, false when the client left first. */
static bool wait_done(pthread_mutex_t *mu, pthread_cond_t *cv, const bool *done, MHD_socket fd) {
    pthread_mutex_lock(mu);
    struct timespec t;
    deadline_in(&t, POLL_NS);
    while (!*done) {
        if (pthread_cond_timedwait(cv, mu, &t) != ETIMEDOUT) continue;
        deadline_in(&t, POLL_NS);
        if (!*done && fd != MHD_INVALID_SOCKET && client_gone(fd)) {
            pthread_mutex_unlock(mu);
            return false;
        }
    }
    pthread_mutex_unlock(mu);
    return true;
}

/* ---- completions: the prompt ------------------------------------------------------------------------ */

/* The prompt's token ids into *ids (messages through the chat template; text with BOS as the
 * vocabulary says and control tokens parsed). Returns 0, or -1 with *e set. */
static int prompt_ids(const struct serve_model_info *info, struct serve_params *p, struct trit_tokens *ids,
                      struct serve_error *e) {
    if (p->has_prompt_ids) { /* given as ids: they move over (trit_tokens_free frees them) */
        *ids = (struct trit_tokens){p->prompt_ids, (size_t)p->n_prompt_ids, (size_t)p->n_prompt_ids};
        p->prompt_ids = NULL;
        return 0;
    }
    if (!info->tok)
        return serve_error_set(e, 400, "invalid_request_error", p->kind == SERVE_CHAT ? "messages" : "prompt", NULL,
                               "this model has no tokenizer (a synthetic model): give the prompt as token ids to "
                               "/v1/completions");
    enum trit_status st;
    if (p->kind == SERVE_CHAT) {
        struct trit_chat_message *msgs = malloc(p->n_messages * sizeof *msgs);
        if (!msgs) return serve_error_set(e, 500, "server_error", NULL, NULL, "out of memory");
        for (size_t i = 0; i < p->n_messages; i++) msgs[i] = (struct trit_chat_message){p->messages[i].role, p->messages[i].content};
        const struct trit_chat_vars vars = {msgs, p->n_messages, info->bos_text, info->eos_text, true};
        char *text = NULL;
        st = trit_chat_render(info->chat_template ? info->chat_template : trit_chat_template_plain, &vars, &text);
        free(msgs);
        if (st != TRIT_OK)
            return serve_error_set(e, 400, "invalid_request_error", "messages", NULL, "the chat template: %s",
                                   trit_last_error());
        st = trit_tokenize(info->tok, text, strlen(text), TRIT_TOKENIZE_PARSE_SPECIAL, ids);
        free(text);
    } else {
        st = trit_tokenize(info->tok, p->prompt_text, p->prompt_len, TRIT_TOKENIZE_ADD_SPECIAL | TRIT_TOKENIZE_PARSE_SPECIAL,
                           ids);
    }
    if (st != TRIT_OK) return serve_error_set(e, 500, "server_error", NULL, NULL, "tokenize: %s", trit_last_error());
    return 0;
}

/* max_tokens checked against the context and the KV pool, or chosen (up to both) when absent. */
static int fit_length(const struct serve_model_info *info, const struct serve_params *p, int32_t n_prompt,
                      int32_t *max_tokens, struct serve_error *e) {
    const char *param = p->kind == SERVE_CHAT ? "messages" : "prompt";
    if (n_prompt == 0)
        return serve_error_set(e, 400, "invalid_request_error", param, NULL,
                               "the prompt is empty (and the model adds no BOS token)");
    if (n_prompt >= info->n_ctx)
        return serve_error_set(e, 400, "invalid_request_error", param, "context_length_exceeded",
                               "the prompt is %d tokens; the context holds %d, and at least one token must be generated",
                               n_prompt, info->n_ctx);
    /* each choice may come to hold its own blocks: n of them must fit the pool */
    const int64_t pool_tokens = (int64_t)(info->n_blocks / p->n) * TRIT_KV_BLOCK;
    const int64_t longest = pool_tokens < info->n_ctx ? pool_tokens : info->n_ctx;
    if (p->max_tokens) {
        const int64_t total = (int64_t)n_prompt + p->max_tokens;
        if (total > info->n_ctx)
            return serve_error_set(e, 400, "invalid_request_error", "max_tokens", "context_length_exceeded",
                                   "the prompt is %d tokens and max_tokens is %d: %lld in all, more than the context of %d "
                                   "tokens",
                                   n_prompt, p->max_tokens, (long long)total, info->n_ctx);
        if (total > longest)
            return serve_error_set(e, 400, "invalid_request_error", "max_tokens", "context_length_exceeded",
                                   "the prompt is %d tokens and max_tokens is %d: %lld in all, more than the KV pool "
                                   "holds for %d choice%s (%lld tokens each; --kv-tokens)",
                                   n_prompt, p->max_tokens, (long long)total, p->n, p->n == 1 ? "" : "s",
                                   (long long)longest);
        *max_tokens = p->max_tokens;
        return 0;
    }
    if (longest - n_prompt < 1)
        return serve_error_set(e, 400, "invalid_request_error", param, "context_length_exceeded",
                               "the prompt is %d tokens; the KV pool holds %lld tokens for each of %d choice%s (--kv-tokens)",
                               n_prompt, (long long)longest, p->n, p->n == 1 ? "" : "s");
    *max_tokens = (int32_t)(longest - n_prompt);
    return 0;
}

/* ---- completions: answers ------------------------------------------------------------------------------ */

static void resp_init(struct serve_http *h, const struct serve_req *r, struct serve_resp *resp, char *id, size_t n_id) {
    snprintf(id, n_id, "%s%016llx", r->p.kind == SERVE_CHAT ? "chatcmpl-" : "cmpl-", (unsigned long long)next_random(h));
    *resp = (struct serve_resp){.kind = r->p.kind,
                                .id = id,
                                .created = (int64_t)time(NULL),
                                .model = h->cfg.model_name,
                                .tok = h->info.tok,
                                .logprobs = r->p.logprobs,
                                .token_ids = r->p.return_token_ids};
}

static int64_t completion_tokens(const struct serve_req *r) {
    int64_t n = 0;
    for (int32_t c = 0; c < r->p.n; c++) n += r->ch[c].n_gen;
    return n;
}

/* The client of a running request left: one line, the request is cancelled. */
static void left_log(const struct serve_req *r) {
    fprintf(stderr, "trit serve: %s: the client left after %.3f s; cancelled\n",
            r->p.kind == SERVE_CHAT ? "chat" : "completion", sv_now_s() - r->t_arrival);
}

static void access_log(const struct serve_req *r, int status) {
    static const char *const names[] = {"ok", "cancelled", "rejected", "error"};
    fprintf(stderr, "trit serve: %s %d %s: %d prompt + %lld generated tokens, %.3f s\n",
            r->p.kind == SERVE_CHAT ? "chat" : "completion", status, names[r->outcome], r->n_prompt,
            (long long)completion_tokens(r), sv_now_s() - r->t_arrival);
}

/* The error a finished request that is not OK answers with. Under r->mu. */
static void outcome_error(const struct serve_req *r, struct serve_error *e) {
    if (r->outcome == SERVE_ERROR) *e = r->error;
    else serve_error_set(e, 503, "server_error", NULL, NULL, "the server is shutting down");
}

/* stream false: waits for the whole answer (or the client to leave). */
static enum MHD_Result answer_whole(struct serve_http *h, struct MHD_Connection *con, enum route route,
                                    struct serve_req *r) {
    if (!wait_done(&r->mu, &r->cv, &r->done, conn_fd(con))) {
        left_log(r);
        serve_sched_cancel(h->info.sched, r);
        serve_req_release(r);
        return MHD_NO; /* nobody to answer: close */
    }
    /* done: the scheduler writes nothing more */
    enum MHD_Result res;
    if (r->outcome != SERVE_OK) {
        struct serve_error e;
        outcome_error(r, &e);
        access_log(r, e.http);
        struct sv_buf b = {0};
        serve_json_error(&e, &b);
        res = b.failed ? MHD_NO
                       : send_bytes(con, (unsigned)e.http, "application/json", b.p, b.n,
                                    e.http == 503 ? MHD_HTTP_HEADER_RETRY_AFTER : NULL, "1");
        sv_buf_free(&b);
        serve_req_release(r);
        return res;
    }
    char id[48];
    struct serve_resp resp;
    resp_init(h, r, &resp, id, sizeof id);
    struct serve_piece *pieces = calloc((size_t)r->p.n, sizeof *pieces);
    struct sv_buf b = {0};
    if (pieces) {
        for (int32_t c = 0; c < r->p.n; c++) {
            const struct serve_choice *ch = &r->ch[c];
            pieces[c] = (struct serve_piece){c, ch->text.p ? ch->text.p : "", ch->text.n, ch->gen, (size_t)ch->n_gen,
                                             ch->lps, 0, serve_finish_name(ch->finish)};
        }
        serve_json_response(&resp, pieces, r->p.n, r->n_prompt, completion_tokens(r), &b);
    }
    access_log(r, 200);
    res = pieces && !b.failed ? send_json(con, 200, &b) : MHD_NO;
    (void)route;
    free(pieces);
    sv_buf_free(&b);
    serve_req_release(r);
    return res;
}

/* stream true: the state of one event stream (MHD's content reader). */
struct stream {
    struct serve_http *h;
    struct serve_req *r;
    MHD_socket fd;
    char id[48];
    struct serve_resp resp;
    struct sv_buf out; /* formatted events not yet handed to MHD */
    size_t off;
    uint64_t seen;       /* r->version last formatted */
    int32_t *ids_sent;   /* [n] tokens of each choice already in a chunk */
    size_t *text_offset; /* [n] completions' logprobs text_offset */
    bool *finish_sent;   /* [n] */
    bool ended;          /* [DONE] is formatted: end after it */
    bool broken;         /* close the connection without an end */
};

/* Formats what is new in r into st->out. Under r->mu. */
static void format_news(struct stream *st) {
    struct serve_req *r = st->r;
    for (int32_t c = 0; c < r->p.n; c++) {
        struct serve_choice *ch = &r->ch[c];
        const int32_t n_ids = ch->n_gen - st->ids_sent[c];
        if (ch->text.n || n_ids > 0) {
            const struct serve_piece piece = {c, ch->text.p, ch->text.n, ch->gen + st->ids_sent[c], (size_t)n_ids,
                                              ch->lps ? ch->lps + st->ids_sent[c] : NULL, st->text_offset[c], NULL};
            serve_sse_chunk(&st->resp, &piece, false, &st->out);
            if (ch->lps && st->h->info.tok)
                for (int32_t i = 0; i < n_ids; i++) {
                    size_t n = 0;
                    trit_tokenizer_piece(st->h->info.tok, ch->gen[st->ids_sent[c] + i], TRIT_DECODE_SPECIAL, &n);
                    st->text_offset[c] += n;
                }
            sv_buf_consume(&ch->text, ch->text.n);
            st->ids_sent[c] = ch->n_gen;
        }
        if (ch->finish && !st->finish_sent[c]) {
            const struct serve_piece last = {c, "", 0, NULL, 0, NULL, 0, serve_finish_name(ch->finish)};
            serve_sse_chunk(&st->resp, &last, false, &st->out);
            st->finish_sent[c] = true;
        }
    }
    st->seen = r->version;
    if (!r->done) return;
    if (r->outcome == SERVE_OK) {
        if (r->p.include_usage) serve_sse_usage(&st->resp, r->n_prompt, completion_tokens(r), &st->out);
        serve_sse_done(&st->out);
        st->ended = true;
    } else if (r->outcome == SERVE_ERROR) {
        serve_sse_error(&r->error, &st->out);
        st->ended = true;
    } else {
        st->broken = true; /* shut down before it finished: the stream just closes */
    }
}

static ssize_t stream_read(void *cls, uint64_t pos, char *buf, size_t max) {
    (void)pos;
    struct stream *st = cls;
    while (st->off == st->out.n) {
        sv_buf_consume(&st->out, st->out.n);
        st->off = 0;
        if (st->out.failed || st->broken) return MHD_CONTENT_READER_END_WITH_ERROR;
        if (st->ended) return MHD_CONTENT_READER_END_OF_STREAM;
        struct serve_req *r = st->r;
        pthread_mutex_lock(&r->mu);
        while (r->version == st->seen && !r->done) {
            struct timespec t;
            deadline_in(&t, POLL_NS);
            if (pthread_cond_timedwait(&r->cv, &r->mu, &t) == ETIMEDOUT && r->version == st->seen && !r->done &&
                st->fd != MHD_INVALID_SOCKET && client_gone(st->fd)) {
                pthread_mutex_unlock(&r->mu);
                return MHD_CONTENT_READER_END_WITH_ERROR; /* stream_free cancels the request */
            }
        }
        format_news(st);
        pthread_mutex_unlock(&r->mu);
    }
    size_t n = st->out.n - st->off;
    if (n > max) n = max;
    memcpy(buf, st->out.p + st->off, n);
    st->off += n;
    return (ssize_t)n;
}

/* MHD is done with the stream (sent, or the connection broke): a request still running has lost
 * its client. */
static void stream_free(void *cls) {
    struct stream *st = cls;
    pthread_mutex_lock(&st->r->mu);
    const bool done = st->r->done;
    pthread_mutex_unlock(&st->r->mu);
    if (!done) {
        left_log(st->r);
        serve_sched_cancel(st->h->info.sched, st->r);
    } else {
        access_log(st->r, st->r->outcome == SERVE_ERROR ? st->r->error.http : 200);
    }
    serve_req_release(st->r);
    free(st->ids_sent);
    free(st->text_offset);
    free(st->finish_sent);
    sv_buf_free(&st->out);
    free(st);
}

static enum MHD_Result answer_stream(struct serve_http *h, struct MHD_Connection *con, struct serve_req *r) {
    struct stream *st = calloc(1, sizeof *st);
    const size_t n = (size_t)r->p.n;
    if (st) {
        st->ids_sent = calloc(n, sizeof *st->ids_sent);
        st->text_offset = calloc(n, sizeof *st->text_offset);
        st->finish_sent = calloc(n, sizeof *st->finish_sent);
    }
    if (!st || !st->ids_sent || !st->text_offset || !st->finish_sent) {
        if (st) {
            free(st->ids_sent);
            free(st->text_offset);
            free(st->finish_sent);
            free(st);
        }
        serve_sched_cancel(h->info.sched, r);
        serve_req_release(r);
        return MHD_NO;
    }
    st->h = h;
    st->r = r;
    st->fd = conn_fd(con);
    resp_init(h, r, &st->resp, st->id, sizeof st->id);
    if (r->p.kind == SERVE_CHAT) /* each choice's first chunk names the role, at once */
        for (int32_t c = 0; c < r->p.n; c++) {
            const struct serve_piece first = {c, "", 0, NULL, 0, NULL, 0, NULL};
            serve_sse_chunk(&st->resp, &first, true, &st->out);
        }
    struct MHD_Response *resp = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 4096, stream_read, st, stream_free);
    if (!resp) {
        stream_free(st);
        return MHD_NO;
    }
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "text/event-stream");
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-cache");
    MHD_add_response_header(resp, "X-Accel-Buffering", "no"); /* a proxy in front must not hold chunks back */
    const enum MHD_Result res = MHD_queue_response(con, 200, resp);
    MHD_destroy_response(resp); /* stream_free runs when MHD lets go of it */
    return res;
}

static enum MHD_Result completion(struct serve_http *h, struct MHD_Connection *con, struct conn *c) {
    const char *why = unready(h);
    if (why) return fail(h, con, c->route, 503, "server_error", NULL, "%s", why);
    const struct serve_model_info *info = &h->info;
    const struct serve_limits lim = {h->cfg.model_name, info->n_vocab, info->n_ctx, info->n_seq, info->dim};
    struct serve_params p;
    struct serve_error e;
    struct trit_tokens ids = {0};
    int32_t max_tokens = 0;
    const enum serve_kind kind = c->route == R_CHAT ? SERVE_CHAT : SERVE_COMPLETION;
    if (serve_params_parse(kind, c->body.p ? c->body.p : "", c->body.n, &lim, &p, &e) || prompt_ids(info, &p, &ids, &e) ||
        fit_length(info, &p, (int32_t)(ids.n < (size_t)INT32_MAX ? ids.n : INT32_MAX), &max_tokens, &e)) {
        serve_params_free(&p);
        trit_tokens_free(&ids);
        return send_error(h, con, c->route, &e);
    }
    if (!p.has_seed) p.seed = next_random(h);
    struct serve_req *r = serve_req_new(&p, ids.ids, (int32_t)ids.n, max_tokens);
    serve_params_free(&p); /* empty when the request took it */
    trit_tokens_free(&ids);
    if (!r) return fail(h, con, c->route, 500, "server_error", NULL, "out of memory");
    const enum serve_submit sub = serve_sched_submit(info->sched, r);
    if (sub != SERVE_SUBMITTED) {
        serve_req_release(r);
        return refused(h, con, c->route, sub);
    }
    return r->p.stream ? answer_stream(h, con, r) : answer_whole(h, con, c->route, r);
}

/* ---- embeddings -------------------------------------------------------------------------------------- */

/* The ids of one text as `trit embed` makes them: trit_embed_tokenize (docs/api.md "Embeddings"). */
static int embed_text_ids(const trit_tokenizer *tok, const char *text, int32_t **out, int32_t *n_out,
                          struct serve_error *e) {
    struct trit_tokens t = {0};
    if (trit_embed_tokenize(tok, text, strlen(text), 0, &t) != TRIT_OK) {
        trit_tokens_free(&t);
        return serve_error_set(e, 500, "server_error", NULL, NULL, "tokenize: %s", trit_last_error());
    }
    if (t.n == 0 || t.n > (size_t)INT32_MAX) {
        trit_tokens_free(&t);
        return serve_error_set(e, 400, "invalid_request_error", "input", NULL, "a text of %zu tokens", t.n);
    }
    *out = t.ids;
    *n_out = (int32_t)t.n;
    return 0;
}

/* Each input's ids (texts tokenized; ids moved out of p) checked against the context and the pool. */
static int embed_inputs(const struct serve_model_info *info, struct serve_embed_params *p, int32_t **ids, int32_t *n_ids,
                        struct serve_error *e) {
    if (!p->has_ids && !info->tok)
        return serve_error_set(e, 400, "invalid_request_error", "input", NULL,
                               "this model has no tokenizer (a synthetic model): give the input as token ids");
    const int64_t pool_tokens = (int64_t)info->n_blocks * TRIT_KV_BLOCK;
    for (int32_t i = 0; i < p->n_input; i++) {
        if (p->has_ids) {
            ids[i] = p->ids[i], n_ids[i] = p->n_ids[i];
            p->ids[i] = NULL;
        } else if (embed_text_ids(info->tok, p->texts[i], &ids[i], &n_ids[i], e)) {
            return -1;
        }
        if (n_ids[i] > info->n_ctx || n_ids[i] > pool_tokens)
            return serve_error_set(e, 400, "invalid_request_error", "input", "context_length_exceeded",
                                   "input %d is %d tokens, more than the %s of %lld tokens", i, n_ids[i],
                                   n_ids[i] > info->n_ctx ? "context" : "KV pool (--kv-tokens)",
                                   (long long)(n_ids[i] > info->n_ctx ? info->n_ctx : pool_tokens));
    }
    return 0;
}

static enum MHD_Result embeddings(struct serve_http *h, struct MHD_Connection *con, struct conn *c) {
    const char *why = unready(h);
    if (why) return fail(h, con, c->route, 503, "server_error", NULL, "%s", why);
    const struct serve_model_info *info = &h->info;
    const struct serve_limits lim = {h->cfg.model_name, info->n_vocab, info->n_ctx, info->n_seq, info->dim};
    struct serve_embed_params p;
    struct serve_error e;
    if (serve_embed_parse(c->body.p ? c->body.p : "", c->body.n, &lim, &p, &e)) {
        serve_embed_params_free(&p);
        return send_error(h, con, c->route, &e);
    }
    int32_t **ids = calloc((size_t)p.n_input, sizeof *ids);
    int32_t *n_ids = calloc((size_t)p.n_input, sizeof *n_ids);
    const bool base64 = p.base64;
    if (!ids || !n_ids || embed_inputs(info, &p, ids, n_ids, &e)) {
        if (!ids || !n_ids) serve_error_set(&e, 500, "server_error", NULL, NULL, "out of memory");
        if (ids)
            for (int32_t i = 0; i < p.n_input; i++) free(ids[i]);
        free(ids);
        free(n_ids);
        serve_embed_params_free(&p);
        return send_error(h, con, c->route, &e);
    }
    const int32_t n_input = p.n_input;
    serve_embed_params_free(&p);
    struct serve_embed *r = serve_embed_new(n_input, info->dim, ids, n_ids);
    if (!r) return fail(h, con, c->route, 500, "server_error", NULL, "out of memory");
    const enum serve_submit sub = serve_sched_submit_embed(info->sched, r);
    if (sub != SERVE_SUBMITTED) {
        serve_embed_release(r);
        return refused(h, con, c->route, sub);
    }
    if (!wait_done(&r->mu, &r->cv, &r->done, conn_fd(con))) {
        fprintf(stderr, "trit serve: embeddings: the client left after %.3f s; cancelled\n", sv_now_s() - r->t_arrival);
        serve_sched_cancel_embed(info->sched, r);
        serve_embed_release(r);
        return MHD_NO;
    }
    int64_t tokens = 0;
    for (int32_t i = 0; i < r->n_input; i++) tokens += r->n_ids[i];
    if (r->outcome == SERVE_OK) /* JSON has no NaN or infinity: a model that gives one is a server error */
        for (size_t k = 0; k < (size_t)r->n_input * (size_t)r->dim; k++)
            if (!isfinite(r->out[k])) {
                r->outcome = SERVE_ERROR;
                serve_error_set(&r->error, 500, "server_error", NULL, NULL,
                                "input %zu: the model gave a non-finite value at element %zu", k / (size_t)r->dim,
                                k % (size_t)r->dim);
                break;
            }
    enum MHD_Result res;
    struct sv_buf b = {0};
    int status = 200;
    if (r->outcome != SERVE_OK) {
        if (r->outcome == SERVE_ERROR || r->outcome == SERVE_REJECTED) e = r->error;
        else serve_error_set(&e, 503, "server_error", NULL, NULL, "the server is shutting down");
        status = e.http;
        serve_json_error(&e, &b);
        res = b.failed ? MHD_NO
                       : send_bytes(con, (unsigned)e.http, "application/json", b.p, b.n,
                                    e.http == 503 ? MHD_HTTP_HEADER_RETRY_AFTER : NULL, "1");
    } else {
        serve_json_embeddings(h->cfg.model_name, r->out, r->n_input, r->dim, base64, tokens, &b);
        res = send_json(con, 200, &b);
    }
    fprintf(stderr, "trit serve: embeddings %d: %d input%s, %lld tokens, %.3f s\n", status, r->n_input,
            r->n_input == 1 ? "" : "s", (long long)tokens, sv_now_s() - r->t_arrival);
    sv_buf_free(&b);
    serve_embed_release(r);
    return res;
}

/* ---- MHD callbacks ------------------------------------------------------------------------------------ */

/* The error the request line and headers already decide (404, 405, 401, 413 by Content-Length), in
 * *e; false when there is none. */
static bool header_error(struct serve_http *h, struct MHD_Connection *con, struct conn *c, const char *url,
                         const char *method, bool post, struct serve_error *e) {
    const bool is_post = !strcmp(method, "POST"), is_get = !strcmp(method, "GET") || !strcmp(method, "HEAD");
    if (c->route == R_NONE)
        return serve_error_set(e, 404, "invalid_request_error", NULL, "not_found", "no such path: %.200s", url), true;
    if (post ? !is_post : !is_get)
        return serve_error_set(e, 405, "invalid_request_error", NULL, "method_not_allowed",
                               "%.16s is not allowed on %.200s (%s)", method, url, post ? "POST" : "GET"),
               true;
    if (h->cfg.api_key && c->route != R_HEALTH &&
        !sv_bearer_ok(MHD_lookup_connection_value(con, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION), h->cfg.api_key))
        return serve_error_set(e, 401, "authentication_error", NULL, "invalid_api_key",
                               "a missing or wrong API key: send \"Authorization: Bearer KEY\""),
               true;
    const char *cl = MHD_lookup_connection_value(con, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
    if (post && cl && strtoull(cl, NULL, 10) > h->cfg.max_body)
        return serve_error_set(e, 413, "invalid_request_error", NULL, "body_too_large",
                               "the body is %.24s bytes; this server takes at most %zu (--max-body)", cl, h->cfg.max_body),
               true;
    return false;
}

/* MHD calls this once when the headers are in, then with each piece of the body, then once with
 * none. Answers go out on that last call, so that the connection stays open for the next request
 * (MHD closes it after an answer queued earlier); only a refused request that still has a body to
 * send is answered at once, and its connection closed, rather than read. */
static enum MHD_Result handler(void *cls, struct MHD_Connection *con, const char *url, const char *method,
                               const char *version, const char *upload_data, size_t *upload_data_size, void **con_cls) {
    (void)version;
    struct serve_http *h = cls;
    struct conn *c = *con_cls;
    if (!c) {
        if (!(c = calloc(1, sizeof *c))) return MHD_NO;
        *con_cls = c;
        bool post = false;
        c->route = route_of(url, &post);
        if (is_post(c->route)) {
            c->h = h;
            atomic_fetch_add(&h->open_requests, 1);
        }
        c->refused = header_error(h, con, c, url, method, post, &c->error);
        const char *cl = MHD_lookup_connection_value(con, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
        const bool body = (cl && strtoull(cl, NULL, 10) > 0) ||
                          MHD_lookup_connection_value(con, MHD_HEADER_KIND, MHD_HTTP_HEADER_TRANSFER_ENCODING);
        if (c->refused && body) {
            c->responded = true;
            return send_error(h, con, c->route, &c->error);
        }
        return MHD_YES;
    }
    if (c->responded) { /* the answer is out; the rest of the body is dropped */
        *upload_data_size = 0;
        return MHD_YES;
    }
    if (*upload_data_size) {
        /* MHD takes no answer in the middle of a body: one too long (sent without a length) is read
         * to its end and dropped, then answered; past DRAIN_MAX more the connection is closed. A GET
         * with a body has it dropped. */
        const size_t n = *upload_data_size;
        *upload_data_size = 0;
        const bool keep = is_post(c->route);
        if (keep && !c->too_long && n > h->cfg.max_body - c->body.n) {
            c->too_long = true;
            sv_buf_free(&c->body);
        }
        if (!keep || c->too_long) return (c->dropped += n) > DRAIN_MAX ? MHD_NO : MHD_YES;
        return sv_buf_add(&c->body, upload_data, n) ? MHD_NO : MHD_YES;
    }
    c->responded = true;
    if (c->refused) return send_error(h, con, c->route, &c->error);
    if (!is_post(c->route)) return get_route(h, con, c->route, url);
    if (c->too_long)
        return fail(h, con, c->route, 413, "invalid_request_error", "body_too_large",
                    "the body is more than %zu bytes (--max-body)", h->cfg.max_body);
    return c->route == R_EMBEDDINGS ? embeddings(h, con, c) : completion(h, con, c);
}

static void completed(void *cls, struct MHD_Connection *con, void **con_cls, enum MHD_RequestTerminationCode toe) {
    (void)cls, (void)con, (void)toe;
    struct conn *c = *con_cls;
    if (!c) return;
    if (c->h) atomic_fetch_sub(&c->h->open_requests, 1);
    sv_buf_free(&c->body);
    free(c);
    *con_cls = NULL;
}

static void mhd_log(void *cls, const char *fmt, va_list ap) {
    (void)cls;
    char line[512];
    vsnprintf(line, sizeof line, fmt, ap);
    size_t n = strlen(line);
    while (n && line[n - 1] == '\n') line[--n] = '\0';
    /* how MHD reports the connections this file closes on purpose (a client that left) */
    if (strstr(line, "application error generating response") || strstr(line, "Application reported internal error"))
        return;
    fprintf(stderr, "trit serve: http: %s\n", line);
}

/* ---- lifecycle ------------------------------------------------------------------------------------------- */

int serve_http_start(const struct serve_http_config *cfg, struct serve_metrics *metrics, struct serve_http **out,
                     uint16_t *port, char *err, size_t n_err) {
    *out = NULL;
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE}, *ai = NULL;
    const int gai = getaddrinfo(cfg->host, NULL, &hints, &ai);
    if (gai != 0 || !ai) {
        snprintf(err, n_err, "--host %s: %s", cfg->host, gai ? gai_strerror(gai) : "no address");
        return -1;
    }
    struct sockaddr_storage addr;
    memset(&addr, 0, sizeof addr);
    memcpy(&addr, ai->ai_addr, ai->ai_addrlen < sizeof addr ? ai->ai_addrlen : sizeof addr);
    const bool v6 = ai->ai_family == AF_INET6;
    freeaddrinfo(ai);
    if (v6) ((struct sockaddr_in6 *)&addr)->sin6_port = htons(cfg->port);
    else ((struct sockaddr_in *)&addr)->sin_port = htons(cfg->port);

    struct serve_http *h = calloc(1, sizeof *h);
    if (!h) {
        snprintf(err, n_err, "out of memory");
        return -1;
    }
    h->cfg = *cfg;
    h->metrics = metrics;
    h->quiesced = MHD_INVALID_SOCKET;
    h->created = (int64_t)time(NULL);
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    h->salt = mix64((uint64_t)now.tv_nsec ^ ((uint64_t)now.tv_sec << 20) ^ ((uint64_t)getpid() << 40));
    atomic_init(&h->state, LOADING);
    atomic_init(&h->counter, 0);
    atomic_init(&h->open_requests, 0);
    /* A thread per connection: a request's thread blocks while its answer is generated (streams
     * included), with no suspend/resume bookkeeping; docs/serve.md "Threads" gives the trade-off. */
    const unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION | MHD_USE_POLL | MHD_USE_ITC |
                           MHD_USE_ERROR_LOG | (v6 ? MHD_USE_IPv6 : 0);
    h->daemon = MHD_start_daemon(flags, cfg->port, NULL, NULL, handler, h, MHD_OPTION_EXTERNAL_LOGGER, mhd_log, h,
                                 MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&addr, MHD_OPTION_CONNECTION_LIMIT,
                                 cfg->conn_limit, MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)300,
                                 MHD_OPTION_NOTIFY_COMPLETED, completed, h, MHD_OPTION_END);
    if (!h->daemon) {
        snprintf(err, n_err, "cannot listen on %s port %u (the line above says why)", cfg->host, (unsigned)cfg->port);
        free(h);
        return -1;
    }
    const union MHD_DaemonInfo *di = MHD_get_daemon_info(h->daemon, MHD_DAEMON_INFO_BIND_PORT);
    *port = di && di->port ? di->port : cfg->port;
    *out = h;
    return 0;
}

void serve_http_ready(struct serve_http *h, const struct serve_model_info *info) {
    h->info = *info;
    atomic_store(&h->state, READY);
}

void serve_http_quiesce(struct serve_http *h) {
    atomic_store(&h->state, DRAINING);
    if (h->quiesced == MHD_INVALID_SOCKET) h->quiesced = MHD_quiesce_daemon(h->daemon);
    /* new connections are refused at once (not left waiting in the backlog until the exit); the
     * descriptor itself is closed only after MHD_stop_daemon, as libmicrohttpd asks */
    if (h->quiesced != MHD_INVALID_SOCKET) shutdown(h->quiesced, SHUT_RDWR);
}

void serve_http_stop(struct serve_http *h) {
    if (!h) return;
    /* the answers of the requests the scheduler just ended (503s, closing streams) go out before
     * MHD closes every connection; a client that does not read gets 2 s */
    for (int i = 0; i < 200 && atomic_load(&h->open_requests) > 0; i++) nanosleep(&(struct timespec){0, 10000000L}, NULL);
    MHD_stop_daemon(h->daemon);
    if (h->quiesced != MHD_INVALID_SOCKET) close(h->quiesced);
    free(h);
}
