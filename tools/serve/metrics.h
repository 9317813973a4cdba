/*
 * metrics.h: the server's counters, gauges and latency histograms, and their Prometheus text
 * (exposition format 0.0.4), served at GET /metrics. Thread-safe: one mutex around everything;
 * every update is a few additions.
 *
 *   trit_requests_waiting, trit_requests_running     gauges (the scheduler's queue and batch)
 *   trit_kv_blocks_used, trit_kv_blocks_total        gauges (the KV pool, TRIT_KV_BLOCK tokens each)
 *   trit_prompt_tokens_total, trit_generated_tokens_total   counters
 *   trit_preemptions_total                           counter (requests sent back to recompute)
 *   trit_requests_total{status="ok|cancelled|rejected|error"}   counter, one per completion request
 *   trit_time_to_first_token_seconds, trit_inter_token_latency_seconds   histograms
 *   trit_embedding_requests_total{status=...}, trit_embedding_tokens_total   counters (POST /v1/embeddings)
 */
#ifndef TRIT_SERVE_METRICS_H
#define TRIT_SERVE_METRICS_H

#include <pthread.h>
#include <stdint.h>

#include "util.h"

/* How a completion (or embeddings) request ended: a label of trit_requests_total
 * (trit_embedding_requests_total). */
enum serve_outcome {
    SERVE_OK = 0,        /* answered (finish_reason stop or length) */
    SERVE_CANCELLED = 1, /* the client left, or the server shut down before it finished */
    SERVE_REJECTED = 2,  /* refused before it ran: 4xx (malformed, too long, queue full, ...) */
    SERVE_ERROR = 3,     /* failed while it ran: 5xx */
};
#define SERVE_N_OUTCOMES 4

#define SERVE_TTFT_BUCKETS 14
#define SERVE_ITL_BUCKETS 13
struct serve_histogram {
    const double *bounds; /* upper bounds, ascending; +Inf is implicit */
    int n_bounds;
    uint64_t counts[16]; /* [n_bounds + 1], not cumulative: the last is above every bound */
    double sum;
    uint64_t count;
};

struct serve_metrics {
    pthread_mutex_t mu;
    int64_t waiting, running, blocks_used, blocks_total;
    uint64_t prompt_tokens, generated_tokens, preemptions;
    uint64_t requests[SERVE_N_OUTCOMES];
    uint64_t embed_requests[SERVE_N_OUTCOMES], embed_tokens;
    struct serve_histogram ttft, itl;
};
void serve_metrics_init(struct serve_metrics *m);
void serve_metrics_destroy(struct serve_metrics *m);
void serve_metrics_gauges(struct serve_metrics *m, int64_t waiting, int64_t running, int64_t blocks_used,
                          int64_t blocks_total);
void serve_metrics_tokens(struct serve_metrics *m, uint64_t prompt, uint64_t generated);
void serve_metrics_preemption(struct serve_metrics *m);
void serve_metrics_request(struct serve_metrics *m, enum serve_outcome outcome);
/* An embeddings request ended; tokens: those it ran (all its inputs', when ok). */
void serve_metrics_embed(struct serve_metrics *m, enum serve_outcome outcome, uint64_t tokens);
void serve_metrics_ttft(struct serve_metrics *m, double seconds);
void serve_metrics_itl(struct serve_metrics *m, double seconds);
/* Appends the Prometheus text of every metric to *out; -1 when out of memory. */
int serve_metrics_render(struct serve_metrics *m, struct sv_buf *out);

#endif /* TRIT_SERVE_METRICS_H */
