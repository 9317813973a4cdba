/*
 * sched.h: the continuous-batching scheduler of `trit serve` (docs/serve.md "Scheduling").
 *
 * One thread owns the context: it admits queued requests while a sequence id and enough free KV
 * blocks exist (first come, first served), and runs one trit_decode_batch per step holding a decode
 * token of every generating sequence and prefill chunks of admitted prompts (at most `chunk` tokens
 * of a prompt per step, n_batch in all). Each choice samples with its own sampler; text goes through
 * trit_tok_stream and the stop matcher into the request, where the HTTP thread that waits on it
 * takes it. When the pool runs out, the most recently admitted request is preempted: its sequences
 * are freed and it goes back to the front of the queue, to recompute its prompt and the tokens it
 * generated (kept, not sampled again) when it is admitted again. A request's answer does not depend
 * on what else runs: the library's logits are batch-independent and nothing else is shared.
 *
 * Embeddings requests (POST /v1/embeddings) wait in a queue of their own. Between two decode steps
 * the scheduler runs one input of the first of them (trit_embed, all its tokens at once) in a
 * sequence no request holds, when the KV pool has the blocks for it; trit_embed empties that
 * sequence again before the next step, so the generating sequences and the blocks they are owed are
 * untouched. An input waits while every sequence is held, or the pool is short, until a request
 * gives some back.
 *
 * A request is shared by the HTTP thread that made it and the scheduler; each holds a reference
 * (serve_req_release). Fields are marked by who writes them: [const] after submission, [sched] the
 * scheduler thread only, [mu] under req->mu.
 */
#ifndef TRIT_SERVE_SCHED_H
#define TRIT_SERVE_SCHED_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "metrics.h"
#include "openai.h"
#include "stop.h"
#include "trit.h"
#include "util.h"

enum serve_finish { SERVE_FINISH_NONE = 0, SERVE_FINISH_STOP, SERVE_FINISH_LENGTH };
/* "stop", "length", or NULL. */
const char *serve_finish_name(enum serve_finish f);

struct serve_choice {
    /* [sched] */
    int32_t seq;               /* its sequence id, -1 when it holds none */
    int32_t n_cached;          /* tokens of prompt ++ gen in the sequence's cache */
    trit_sampler *sampler;     /* made at first admission, kept through preemption */
    struct trit_tok_stream ts; /* text of the accepted tokens, whole characters only */
    struct serve_stop stop;
    char *piece;               /* [trit_tok_stream_max_out + 8] */
    double t_last;             /* when its last token was sampled (inter-token latency) */
    /* [mu] (gen[i] and lps[i] are written once, before n_gen passes i) */
    int32_t *gen;              /* [max_tokens] the tokens of its answer (an end-of-generation token is not one) */
    struct serve_logprob *lps; /* [max_tokens] when logprobs were asked for */
    int32_t n_gen;
    struct sv_buf text;        /* answer text the HTTP side has not taken yet */
    size_t n_text_total;       /* bytes of text produced so far */
    enum serve_finish finish;
};

struct serve_req {
    /* [const] */
    struct serve_params p;
    int32_t *prompt; /* [n_prompt] */
    int32_t n_prompt;
    int32_t max_tokens; /* per choice, >= 1; prompt + max_tokens fits the context */
    double t_arrival;
    /* [sched] */
    struct serve_choice *ch; /* [p.n] */
    int64_t admitted;        /* admission order; 0 while waiting */
    bool prompt_done;        /* choice 0 ran the whole prompt and the others were forked from it */
    bool first_token;        /* TTFT recorded */
    bool counted;            /* prompt tokens counted in the metrics */
    struct serve_req *prev, *next; /* the waiting list (under the scheduler's mutex) */
    /* [mu] */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    uint64_t version; /* bumped at every change the HTTP side may wait for */
    bool done;        /* every choice finished, or the request failed or was cancelled */
    enum serve_outcome outcome;
    struct serve_error error; /* outcome SERVE_ERROR: why */
    int refs;
    /* any thread */
    atomic_bool cancel; /* the client left: the scheduler drops it at its next step */
};

/* A request for p (which it takes over: *p is zeroed) with its prompt tokens (copied). NULL when out
 * of memory. One reference, the caller's. */
struct serve_req *serve_req_new(struct serve_params *p, const int32_t *prompt, int32_t n_prompt, int32_t max_tokens);
void serve_req_release(struct serve_req *r);

/* An embeddings request: the token ids of its inputs and their vectors (fields marked as above). */
struct serve_embed {
    /* [const] */
    int32_t n_input, dim;
    int32_t **ids;   /* [n_input] each 1 .. n_ctx ids, and no more blocks than the pool holds */
    int32_t *n_ids;  /* [n_input] */
    double t_arrival;
    /* [sched] until done, then read by the HTTP thread */
    float *out;      /* [n_input][dim] L2-normalized vectors */
    int32_t n_done;  /* inputs embedded */
    struct serve_embed *next; /* the embeddings queue (under the scheduler's mutex) */
    /* [mu] */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool done;
    enum serve_outcome outcome;
    struct serve_error error; /* outcome SERVE_ERROR, or SERVE_REJECTED (a backend without embeddings): why */
    int refs;
    /* any thread */
    atomic_bool cancel;
};
/* An embeddings request over ids[i][0 .. n_ids[i]) (it takes over both arrays and each ids[i]; on
 * failure they are freed). NULL when out of memory. One reference, the caller's. */
struct serve_embed *serve_embed_new(int32_t n_input, int32_t dim, int32_t **ids, int32_t *n_ids);
void serve_embed_release(struct serve_embed *r);

struct serve_sched_config {
    int32_t n_seq;     /* sequences at once: the context's n_seq_max */
    int32_t n_batch;   /* tokens per step: the context's n_batch (>= n_seq) */
    int32_t chunk;     /* prompt tokens of one request per step */
    int32_t queue_max; /* waiting requests; more are refused */
};

struct serve_sched;
/* Starts the scheduler thread on ctx (which it then owns until serve_sched_free; the caller keeps
 * ownership and frees it after). tok may be NULL (token ids only). Returns TRIT_OK or a status. */
enum trit_status serve_sched_start(trit_context *ctx, const trit_tokenizer *tok, const struct serve_sched_config *cfg,
                                   struct serve_metrics *metrics, struct serve_sched **out);
enum serve_submit { SERVE_SUBMITTED = 0, SERVE_QUEUE_FULL = 1, SERVE_CLOSED = 2 };
/* Queues r (the scheduler takes its own reference when it is queued). */
enum serve_submit serve_sched_submit(struct serve_sched *s, struct serve_req *r);
/* The client of r left: the scheduler frees its sequences at its next step. */
void serve_sched_cancel(struct serve_sched *s, struct serve_req *r);
/* The same for embeddings requests (they share the --queue bound with completion requests). */
enum serve_submit serve_sched_submit_embed(struct serve_sched *s, struct serve_embed *r);
void serve_sched_cancel_embed(struct serve_sched *s, struct serve_embed *r);
/* Refuses new requests from now on (SERVE_CLOSED). */
void serve_sched_close(struct serve_sched *s);
/* Waits until no request is waiting or running, or `seconds` have passed; returns how many remain. */
int serve_sched_drain(struct serve_sched *s, double seconds);
/* Cancels what remains and stops the thread; afterwards submissions are refused and cancellations
 * do nothing, but the scheduler stays valid for HTTP threads that still hold requests. */
void serve_sched_stop(struct serve_sched *s);
/* Stops it if needed and frees it (not the context). Accepts NULL. */
void serve_sched_free(struct serve_sched *s);

#endif /* TRIT_SERVE_SCHED_H */
