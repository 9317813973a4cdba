/*
 * http.h: the HTTP side of `trit serve`, on libmicrohttpd: routing, the API key, body limits, the
 * OpenAI endpoints over the scheduler, server-sent event streams and client disconnects
 * (docs/serve.md), and POST /v1/embeddings over the scheduler's embeddings queue. Each connection
 * has a thread of its own (MHD_USE_THREAD_PER_CONNECTION): a request's thread renders the chat
 * template, tokenizes, queues the request and then waits on it, which is why waiting may block.
 *
 * Lifecycle: serve_http_start (listening, state loading: completions get 503), serve_http_ready
 * once the model and the scheduler exist, serve_http_quiesce on a signal (no new connections;
 * new requests on open ones get 503), serve_http_stop after the scheduler stopped (joins every
 * connection thread).
 */
#ifndef TRIT_SERVE_HTTP_H
#define TRIT_SERVE_HTTP_H

#include <stddef.h>
#include <stdint.h>

#include "metrics.h"
#include "sched.h"
#include "trit.h"

struct serve_http_config {
    const char *host;       /* an address or a name; 127.0.0.1 by default */
    uint16_t port;          /* 0: any free port */
    const char *api_key;    /* NULL: no key; else every route but /health needs "Authorization: Bearer KEY" */
    size_t max_body;        /* bytes of a request body */
    unsigned conn_limit;    /* open connections (each a thread) */
    const char *model_name; /* the name /v1/models gives and requests must use */
};

/* What the endpoints need once the model is loaded. Everything stays valid until serve_http_stop. */
struct serve_model_info {
    struct serve_sched *sched;
    const trit_tokenizer *tok;  /* NULL: token-id prompts only */
    const char *chat_template;  /* NULL: the plain one (host/chat/template.h) */
    const char *bos_text, *eos_text;
    int32_t n_ctx, n_vocab, n_seq, n_blocks;
    int32_t dim; /* the model's dim: an embedding's length */
};

struct serve_http;
/* Starts listening. *port receives the bound port. Returns 0, or -1 with why in err. */
int serve_http_start(const struct serve_http_config *cfg, struct serve_metrics *metrics, struct serve_http **out,
                     uint16_t *port, char *err, size_t n_err);
void serve_http_ready(struct serve_http *h, const struct serve_model_info *info);
void serve_http_quiesce(struct serve_http *h);
/* Waits up to 2 s for the answers of completion requests still being sent, stops the daemon (joins
 * its connection threads) and frees h. Accepts NULL. */
void serve_http_stop(struct serve_http *h);

#endif /* TRIT_SERVE_HTTP_H */
