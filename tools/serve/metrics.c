/* metrics.c: see metrics.h. */
#include "metrics.h"

#include <string.h>

/* Time to first token: from 1 ms (a short prompt on a small model) to a minute (a long queue). */
static const double ttft_bounds[SERVE_TTFT_BUCKETS] = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
                                                       0.25,  0.5,    1.0,   2.5,  5.0,   10.0, 60.0};
/* Between two tokens of one answer: from 0.5 ms (the shipped model) to 2.5 s (a large model on a
 * busy CPU). */
static const double itl_bounds[SERVE_ITL_BUCKETS] = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                                     0.1,    0.25,  0.5,    1.0,   2.5,  5.0};
_Static_assert(SERVE_TTFT_BUCKETS < 16 && SERVE_ITL_BUCKETS < 16, "serve_histogram.counts holds the buckets and +Inf");

static const char *const outcome_names[SERVE_N_OUTCOMES] = {"ok", "cancelled", "rejected", "error"};

void serve_metrics_init(struct serve_metrics *m) {
    memset(m, 0, sizeof *m);
    pthread_mutex_init(&m->mu, NULL);
    m->ttft.bounds = ttft_bounds;
    m->ttft.n_bounds = SERVE_TTFT_BUCKETS;
    m->itl.bounds = itl_bounds;
    m->itl.n_bounds = SERVE_ITL_BUCKETS;
}

void serve_metrics_destroy(struct serve_metrics *m) { pthread_mutex_destroy(&m->mu); }

void serve_metrics_gauges(struct serve_metrics *m, int64_t waiting, int64_t running, int64_t blocks_used,
                          int64_t blocks_total) {
    pthread_mutex_lock(&m->mu);
    m->waiting = waiting;
    m->running = running;
    m->blocks_used = blocks_used;
    m->blocks_total = blocks_total;
    pthread_mutex_unlock(&m->mu);
}

void serve_metrics_tokens(struct serve_metrics *m, uint64_t prompt, uint64_t generated) {
    pthread_mutex_lock(&m->mu);
    m->prompt_tokens += prompt;
    m->generated_tokens += generated;
    pthread_mutex_unlock(&m->mu);
}

void serve_metrics_preemption(struct serve_metrics *m) {
    pthread_mutex_lock(&m->mu);
    m->preemptions++;
    pthread_mutex_unlock(&m->mu);
}

void serve_metrics_request(struct serve_metrics *m, enum serve_outcome outcome) {
    pthread_mutex_lock(&m->mu);
    m->requests[outcome]++;
    pthread_mutex_unlock(&m->mu);
}

void serve_metrics_embed(struct serve_metrics *m, enum serve_outcome outcome, uint64_t tokens) {
    pthread_mutex_lock(&m->mu);
    m->embed_requests[outcome]++;
    m->embed_tokens += tokens;
    pthread_mutex_unlock(&m->mu);
}

static void observe(struct serve_histogram *h, double v) {
    int b = 0;
    while (b < h->n_bounds && v > h->bounds[b]) b++; /* Prometheus buckets are le: v <= bound */
    h->counts[b]++;
    h->sum += v;
    h->count++;
}

void serve_metrics_ttft(struct serve_metrics *m, double seconds) {
    pthread_mutex_lock(&m->mu);
    observe(&m->ttft, seconds);
    pthread_mutex_unlock(&m->mu);
}

void serve_metrics_itl(struct serve_metrics *m, double seconds) {
    pthread_mutex_lock(&m->mu);
    observe(&m->itl, seconds);
    pthread_mutex_unlock(&m->mu);
}

static void gauge(struct sv_buf *o, const char *name, const char *help, int64_t v) {
    sv_buf_printf(o, "# HELP %s %s\n# TYPE %s gauge\n%s %lld\n", name, help, name, name, (long long)v);
}

static void counter(struct sv_buf *o, const char *name, const char *help, uint64_t v) {
    sv_buf_printf(o, "# HELP %s %s\n# TYPE %s counter\n%s %llu\n", name, help, name, name, (unsigned long long)v);
}

static void histogram(struct sv_buf *o, const char *name, const char *help, const struct serve_histogram *h) {
    sv_buf_printf(o, "# HELP %s %s\n# TYPE %s histogram\n", name, help, name);
    uint64_t cum = 0;
    for (int b = 0; b < h->n_bounds; b++) {
        cum += h->counts[b];
        sv_buf_printf(o, "%s_bucket{le=\"%g\"} %llu\n", name, h->bounds[b], (unsigned long long)cum);
    }
    cum += h->counts[h->n_bounds];
    sv_buf_printf(o, "%s_bucket{le=\"+Inf\"} %llu\n%s_sum %.9g\n%s_count %llu\n", name, (unsigned long long)cum, name,
                  h->sum, name, (unsigned long long)h->count);
}

int serve_metrics_render(struct serve_metrics *m, struct sv_buf *o) {
    pthread_mutex_lock(&m->mu);
    const struct serve_metrics s = *m; /* a consistent copy; rendering allocates */
    pthread_mutex_unlock(&m->mu);
    gauge(o, "trit_requests_waiting", "Completion requests queued, not yet admitted to the batch.", s.waiting);
    gauge(o, "trit_requests_running", "Completion requests admitted to the batch (prefilling or generating).",
          s.running);
    gauge(o, "trit_kv_blocks_used", "KV cache blocks held by sequences.", s.blocks_used);
    gauge(o, "trit_kv_blocks_total", "KV cache blocks in the pool.", s.blocks_total);
    counter(o, "trit_prompt_tokens_total", "Prompt tokens of admitted requests (each prompt once).", s.prompt_tokens);
    counter(o, "trit_generated_tokens_total", "Tokens generated into answers.", s.generated_tokens);
    counter(o, "trit_preemptions_total", "Requests preempted when the KV pool ran out (recomputed later).",
            s.preemptions);
    sv_buf_printf(o, "# HELP trit_requests_total Completion requests by outcome.\n# TYPE trit_requests_total counter\n");
    for (int i = 0; i < SERVE_N_OUTCOMES; i++)
        sv_buf_printf(o, "trit_requests_total{status=\"%s\"} %llu\n", outcome_names[i],
                      (unsigned long long)s.requests[i]);
    sv_buf_printf(o, "# HELP trit_embedding_requests_total Embeddings requests by outcome.\n"
                     "# TYPE trit_embedding_requests_total counter\n");
    for (int i = 0; i < SERVE_N_OUTCOMES; i++)
        sv_buf_printf(o, "trit_embedding_requests_total{status=\"%s\"} %llu\n", outcome_names[i],
                      (unsigned long long)s.embed_requests[i]);
    counter(o, "trit_embedding_tokens_total", "Tokens run through the model for embeddings.", s.embed_tokens);
    histogram(o, "trit_time_to_first_token_seconds", "From a request's arrival to its first generated token.", &s.ttft);
    histogram(o, "trit_inter_token_latency_seconds", "Between consecutive generated tokens of one answer.", &s.itl);
    return o->failed ? -1 : 0;
}
