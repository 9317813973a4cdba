/* sched.c: see sched.h.
 *
 * A choice's tokens are T = prompt ++ gen (gen: what it generated). Its sequence caches the first
 * n_cached of them; the model still has to run T[n_cached .. N) with N = n_prompt + n_gen, and the
 * logits after T[N - 1] pick its next token. N - n_cached == 1 is an ordinary decode step; more is
 * prefill: a fresh prompt (n_gen 0), or after preemption the prompt and every generated token but
 * the last recomputed (its sampler kept its state, so nothing is sampled again). A choice c > 0 of a
 * request with n > 1 waits until choice 0 has run the prompt, then forks the prompt's sequence and
 * samples from the same logits row with its own sampler (seed + c). */
#include "sched.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct serve_sched {
    trit_context *ctx;
    const trit_tokenizer *tok; /* NULL: token ids only */
    struct serve_sched_config cfg;
    struct serve_metrics *metrics;
    int32_t n_vocab;
    pthread_t thread;
    /* under mu */
    pthread_mutex_t mu;
    pthread_cond_t wake; /* the scheduler: a request, a cancellation, stop */
    pthread_cond_t idle; /* serve_sched_drain: a request ended */
    struct serve_req *wait_head, *wait_tail;
    int32_t n_waiting, n_running_pub, n_seq_free_pub;
    struct serve_embed *emb_head, *emb_tail; /* embeddings requests, the first one running */
    int32_t n_emb;
    bool closed, stop, poke, joined;
    /* the scheduler thread's own */
    struct serve_req **running; /* [n_seq] in admission order (each holds at least one sequence) */
    int32_t n_running;
    bool *seq_used; /* [n_seq] */
    int32_t n_seq_free;
    int64_t n_admitted;
    int32_t *b_token, *b_pos, *b_seq; /* [n_batch] the step's batch */
    int8_t *b_logits;
    struct serve_choice **b_choice; /* [n_batch] whose token each is */
    struct serve_req **row_req;     /* [n_seq] whose logits row each is */
    int32_t *row_choice;
    struct sv_buf emit; /* scratch: text a token releases */
};

const char *serve_finish_name(enum serve_finish f) {
    switch (f) {
    case SERVE_FINISH_STOP: return "stop";
    case SERVE_FINISH_LENGTH: return "length";
    case SERVE_FINISH_NONE: break;
    }
    return NULL;
}

/* ---- requests ---------------------------------------------------------------------------------- */

struct serve_req *serve_req_new(struct serve_params *p, const int32_t *prompt, int32_t n_prompt, int32_t max_tokens) {
    struct serve_req *r = calloc(1, sizeof *r);
    if (!r) return NULL;
    r->ch = calloc((size_t)p->n, sizeof *r->ch);
    r->prompt = malloc((size_t)n_prompt * sizeof *r->prompt);
    if (!r->ch || !r->prompt) {
        free(r->ch);
        free(r->prompt);
        free(r);
        return NULL;
    }
    memcpy(r->prompt, prompt, (size_t)n_prompt * sizeof *prompt);
    r->p = *p;
    memset(p, 0, sizeof *p);
    r->n_prompt = n_prompt;
    r->max_tokens = max_tokens;
    r->t_arrival = sv_now_s();
    for (int32_t c = 0; c < r->p.n; c++) r->ch[c].seq = -1;
    pthread_mutex_init(&r->mu, NULL);
    pthread_cond_init(&r->cv, NULL);
    r->refs = 1;
    atomic_init(&r->cancel, false);
    return r;
}

void serve_req_release(struct serve_req *r) {
    if (!r) return;
    pthread_mutex_lock(&r->mu);
    const int left = --r->refs;
    pthread_mutex_unlock(&r->mu);
    if (left > 0) return;
    for (int32_t c = 0; c < r->p.n; c++) {
        struct serve_choice *ch = &r->ch[c];
        trit_sampler_free(ch->sampler);
        serve_stop_free(&ch->stop);
        free(ch->piece);
        free(ch->gen);
        free(ch->lps);
        sv_buf_free(&ch->text);
    }
    free(r->ch);
    free(r->prompt);
    serve_params_free(&r->p);
    pthread_mutex_destroy(&r->mu);
    pthread_cond_destroy(&r->cv);
    free(r);
}

struct serve_embed *serve_embed_new(int32_t n_input, int32_t dim, int32_t **ids, int32_t *n_ids) {
    struct serve_embed *r = calloc(1, sizeof *r);
    float *out = malloc((size_t)n_input * (size_t)dim * sizeof *out);
    if (!r || !out) {
        for (int32_t i = 0; i < n_input; i++) free(ids[i]);
        free(ids);
        free(n_ids);
        free(out);
        free(r);
        return NULL;
    }
    r->n_input = n_input;
    r->dim = dim;
    r->ids = ids;
    r->n_ids = n_ids;
    r->out = out;
    r->t_arrival = sv_now_s();
    pthread_mutex_init(&r->mu, NULL);
    pthread_cond_init(&r->cv, NULL);
    r->refs = 1;
    atomic_init(&r->cancel, false);
    return r;
}

void serve_embed_release(struct serve_embed *r) {
    if (!r) return;
    pthread_mutex_lock(&r->mu);
    const int left = --r->refs;
    pthread_mutex_unlock(&r->mu);
    if (left > 0) return;
    for (int32_t i = 0; i < r->n_input; i++) free(r->ids[i]);
    free(r->ids);
    free(r->n_ids);
    free(r->out);
    pthread_mutex_destroy(&r->mu);
    pthread_cond_destroy(&r->cv);
    free(r);
}

/* Marks r done with an outcome and wakes its HTTP thread. */
static void req_done(struct serve_req *r, enum serve_outcome outcome, const struct serve_error *e) {
    pthread_mutex_lock(&r->mu);
    r->done = true;
    r->outcome = outcome;
    if (e) r->error = *e;
    r->version++;
    pthread_cond_broadcast(&r->cv);
    pthread_mutex_unlock(&r->mu);
}

/* The first token id of T = prompt ++ gen at index k. */
static int32_t token_at(const struct serve_req *r, const struct serve_choice *ch, int32_t k) {
    return k < r->n_prompt ? r->prompt[k] : ch->gen[k - r->n_prompt];
}

/* N: the tokens whose last one's logits the choice needs next. */
static int32_t target(const struct serve_req *r, const struct serve_choice *ch) { return r->n_prompt + ch->n_gen; }

/* Whether choice c waits for choice 0's prompt (n > 1 before the fork). */
static bool waits_fork(const struct serve_req *r, int32_t c) { return c > 0 && !r->prompt_done; }

/* ---- the waiting list (under s->mu) ------------------------------------------------------------ */

static void list_unlink(struct serve_sched *s, struct serve_req *r) {
    if (r->prev) r->prev->next = r->next;
    else s->wait_head = r->next;
    if (r->next) r->next->prev = r->prev;
    else s->wait_tail = r->prev;
    r->prev = r->next = NULL;
    s->n_waiting--;
}

static void list_push(struct serve_sched *s, struct serve_req *r, bool front) {
    r->prev = front ? NULL : s->wait_tail;
    r->next = front ? s->wait_head : NULL;
    if (front) {
        if (s->wait_head) s->wait_head->prev = r;
        else s->wait_tail = r;
        s->wait_head = r;
    } else {
        if (s->wait_tail) s->wait_tail->next = r;
        else s->wait_head = r;
        s->wait_tail = r;
    }
    s->n_waiting++;
}

/* ---- sequences --------------------------------------------------------------------------------- */

static int32_t seq_take(struct serve_sched *s) {
    for (int32_t i = 0; i < s->cfg.n_seq; i++)
        if (!s->seq_used[i]) {
            s->seq_used[i] = true;
            s->n_seq_free--;
            return i;
        }
    return -1;
}

static void seq_drop(struct serve_sched *s, struct serve_choice *ch) {
    if (ch->seq < 0) return;
    trit_seq_remove(s->ctx, ch->seq);
    s->seq_used[ch->seq] = false;
    s->n_seq_free++;
    ch->seq = -1;
    ch->n_cached = 0;
}

/* Removes r from the running list (its sequences freed), keeping the order of the others. */
static void running_remove(struct serve_sched *s, struct serve_req *r) {
    for (int32_t c = 0; c < r->p.n; c++) seq_drop(s, &r->ch[c]);
    for (int32_t i = 0; i < s->n_running; i++)
        if (s->running[i] == r) {
            memmove(&s->running[i], &s->running[i + 1], (size_t)(s->n_running - i - 1) * sizeof *s->running);
            s->n_running--;
            break;
        }
    pthread_mutex_lock(&s->mu);
    s->n_running_pub = s->n_running;
    s->n_seq_free_pub = s->n_seq_free;
    pthread_mutex_unlock(&s->mu);
}

/* r leaves the scheduler: done with an outcome, counted, its reference dropped. */
static void retire(struct serve_sched *s, struct serve_req *r, enum serve_outcome outcome, const struct serve_error *e) {
    req_done(r, outcome, e);
    serve_metrics_request(s->metrics, outcome);
    serve_req_release(r);
    pthread_mutex_lock(&s->mu);
    pthread_cond_broadcast(&s->idle);
    pthread_mutex_unlock(&s->mu);
}

static void fail_running(struct serve_sched *s, struct serve_req *r, enum trit_status st, const char *what) {
    struct serve_error e;
    const char *msg = trit_last_error();
    serve_error_set(&e, 500, "server_error", NULL, NULL, "%s: %s", what, msg && *msg ? msg : trit_status_str(st));
    running_remove(s, r);
    retire(s, r, SERVE_ERROR, &e);
}

/* ---- tokens ------------------------------------------------------------------------------------- */

/* The log-probability of `id` under row (log-softmax of the raw logits) and the n_top most likely
 * tokens (by logit, the lower id first on a tie). NaN logits count as -inf. */
static void logprobs_of(const float *row, int32_t n_vocab, int32_t id, int32_t n_top, struct serve_logprob *out) {
    float mx = -INFINITY;
    for (int32_t i = 0; i < n_vocab; i++)
        if (row[i] > mx) mx = row[i];
    double sum = 0.0;
    for (int32_t i = 0; i < n_vocab; i++)
        if (row[i] > -INFINITY) sum += exp((double)row[i] - (double)mx);
    const double lse = (double)mx + log(sum);
    const float x = row[id];
    out->id = id;
    out->logprob = x == x ? (float)((double)x - lse) : -INFINITY;
    out->n_top = 0;
    for (int32_t i = 0; i < n_vocab && n_top > 0; i++) {
        const float v = row[i];
        if (!(v == v)) continue;
        int32_t k = out->n_top;
        if (k == n_top && !(v > out->top_logprob[k - 1])) continue;
        if (k < n_top) out->n_top++;
        else k--;
        while (k > 0 && v > out->top_logprob[k - 1]) { /* insertion: strictly greater moves up, so ties keep id order */
            out->top_logprob[k] = out->top_logprob[k - 1];
            out->top_id[k] = out->top_id[k - 1];
            k--;
        }
        out->top_logprob[k] = v;
        out->top_id[k] = i;
    }
    for (int32_t k = 0; k < out->n_top; k++) out->top_logprob[k] = (float)((double)out->top_logprob[k] - lse);
}

/* Appends released text to the choice's output and wakes the HTTP side. */
static void publish(struct serve_req *r, struct serve_choice *ch, const struct sv_buf *text, bool token) {
    pthread_mutex_lock(&r->mu);
    if (text->n) {
        sv_buf_add(&ch->text, text->p, text->n);
        ch->n_text_total += text->n;
    }
    if (token) ch->n_gen++;
    r->version++;
    pthread_cond_broadcast(&r->cv);
    pthread_mutex_unlock(&r->mu);
}

/* The choice ends: held-back text released (unless a stop string matched), its sequence freed. */
static void finish_choice(struct serve_sched *s, struct serve_req *r, struct serve_choice *ch, enum serve_finish why) {
    sv_buf_consume(&s->emit, s->emit.n);
    if (!ch->stop.matched) {
        size_t n = 0;
        if (s->tok && trit_tok_stream_flush(&ch->ts, ch->piece, trit_tok_stream_max_out(s->tok) + 8, &n) == TRIT_OK && n &&
            serve_stop_feed(&ch->stop, ch->piece, n, &s->emit) == 1)
            why = SERVE_FINISH_STOP; /* a character completed at the end finished a stop string */
        serve_stop_flush(&ch->stop, &s->emit);
        if (ch->stop.matched) why = SERVE_FINISH_STOP; /* one held behind a longer stop's possible start */
    }
    seq_drop(s, ch);
    pthread_mutex_lock(&r->mu);
    if (s->emit.n) {
        sv_buf_add(&ch->text, s->emit.p, s->emit.n);
        ch->n_text_total += s->emit.n;
    }
    ch->finish = why;
    r->version++;
    pthread_cond_broadcast(&r->cv);
    pthread_mutex_unlock(&r->mu);
}

/* Samples choice c's next token from row and takes it into the answer. */
static void sample(struct serve_sched *s, struct serve_req *r, int32_t c, const float *row) {
    struct serve_choice *ch = &r->ch[c];
    const int32_t id = trit_sampler_sample(ch->sampler, row);
    const double now = sv_now_s();
    if (!r->first_token) {
        r->first_token = true;
        serve_metrics_ttft(s->metrics, now - r->t_arrival);
    } else if (ch->t_last > 0.0) {
        serve_metrics_itl(s->metrics, now - ch->t_last);
    }
    ch->t_last = now;
    if (s->tok && !r->p.ignore_eos && trit_tokenizer_is_eog(s->tok, id)) {
        finish_choice(s, r, ch, SERVE_FINISH_STOP);
        return;
    }
    trit_sampler_accept(ch->sampler, id);
    ch->gen[ch->n_gen] = id;
    if (ch->lps) logprobs_of(row, s->n_vocab, id, r->p.top_logprobs, &ch->lps[ch->n_gen]);
    sv_buf_consume(&s->emit, s->emit.n);
    size_t n = 0;
    int matched = 0;
    if (s->tok && trit_tok_stream_feed(&ch->ts, id, ch->piece, trit_tok_stream_max_out(s->tok) + 8, &n) == TRIT_OK && n)
        matched = serve_stop_feed(&ch->stop, ch->piece, n, &s->emit);
    publish(r, ch, &s->emit, true);
    serve_metrics_tokens(s->metrics, 0, 1);
    if (matched == 1) finish_choice(s, r, ch, SERVE_FINISH_STOP);
    else if (ch->n_gen == r->max_tokens) finish_choice(s, r, ch, SERVE_FINISH_LENGTH);
}

/* ---- admission ------------------------------------------------------------------------------------ */

/* Blocks a choice has yet to take to reach its target: what admission must leave free for it. */
static int32_t blocks_owed(const struct serve_req *r, int32_t c) {
    const struct serve_choice *ch = &r->ch[c];
    if (ch->finish) return 0;
    if (waits_fork(r, c)) return 1; /* the copy of the prompt's last block, or its first own block */
    return trit_kv_blocks_for(target(r, ch)) - trit_kv_blocks_for(ch->n_cached);
}

/* Blocks r needs free to be admitted: its prompt (or each choice's recomputation) and one more
 * token; choices that fork share the prompt's blocks. */
static int32_t blocks_to_admit(const struct serve_req *r) {
    if (!r->prompt_done) return trit_kv_blocks_for(r->n_prompt + 1) + (r->p.n - 1);
    int32_t need = 0;
    for (int32_t c = 0; c < r->p.n; c++)
        if (!r->ch[c].finish) need += trit_kv_blocks_for(target(r, &r->ch[c]) + 1);
    return need;
}

static int32_t choices_left(const struct serve_req *r) {
    int32_t n = 0;
    for (int32_t c = 0; c < r->p.n; c++) n += !r->ch[c].finish;
    return n;
}

/* A request's first admission: samplers (seed + c, the prompt accepted), text streams, stop
 * matchers and answer buffers. */
static enum trit_status prepare(struct serve_sched *s, struct serve_req *r) {
    const size_t piece = (s->tok ? trit_tok_stream_max_out(s->tok) : 0) + 8;
    for (int32_t c = 0; c < r->p.n; c++) {
        struct serve_choice *ch = &r->ch[c];
        struct trit_sampler_params sp = trit_sampler_default_params();
        sp.temperature = r->p.temperature;
        sp.top_k = r->p.top_k;
        sp.top_p = r->p.top_p;
        sp.min_p = r->p.min_p;
        sp.repeat_penalty = r->p.repeat_penalty;
        sp.seed = r->p.seed + (uint64_t)c;
        const enum trit_status st = trit_sampler_init(&sp, s->n_vocab, &ch->sampler);
        if (st != TRIT_OK) return st;
        for (int32_t i = 0; i < r->n_prompt; i++) trit_sampler_accept(ch->sampler, r->prompt[i]);
        if (s->tok) trit_tok_stream_init(&ch->ts, s->tok, 0);
        serve_stop_init(&ch->stop, (const char *const *)r->p.stop, r->p.n_stop);
        ch->piece = malloc(piece);
        ch->gen = malloc((size_t)r->max_tokens * sizeof *ch->gen);
        if (r->p.logprobs) ch->lps = malloc((size_t)r->max_tokens * sizeof *ch->lps);
        if (!ch->piece || !ch->gen || (r->p.logprobs && !ch->lps)) return TRIT_ERR_OUT_OF_MEMORY;
    }
    return TRIT_OK;
}

/* Admits waiting requests, first come first served, while each finds sequence ids for its
 * unfinished choices and the blocks it needs beyond what admitted requests are still owed. */
static void admit(struct serve_sched *s) {
    struct trit_kv_stats kv;
    trit_kv_stats(s->ctx, &kv);
    int64_t free_blocks = kv.n_free;
    for (int32_t i = 0; i < s->n_running; i++)
        for (int32_t c = 0; c < s->running[i]->p.n; c++) free_blocks -= blocks_owed(s->running[i], c);
    for (;;) {
        pthread_mutex_lock(&s->mu);
        struct serve_req *r = s->wait_head;
        const bool fits = r && choices_left(r) <= s->n_seq_free && blocks_to_admit(r) <= free_blocks;
        if (fits) list_unlink(s, r);
        pthread_mutex_unlock(&s->mu);
        if (!fits) {
            if (r && s->n_running == 0) { /* never: the HTTP side refuses what an empty pool cannot hold */
                pthread_mutex_lock(&s->mu);
                list_unlink(s, r);
                pthread_mutex_unlock(&s->mu);
                struct serve_error e;
                serve_error_set(&e, 500, "server_error", NULL, NULL,
                                "the request needs %d KV blocks and %d sequences; the pool has %d blocks, %d sequences",
                                blocks_to_admit(r), choices_left(r), kv.n_blocks, s->cfg.n_seq);
                retire(s, r, SERVE_ERROR, &e);
                continue;
            }
            return;
        }
        free_blocks -= blocks_to_admit(r);
        if (!r->ch[0].sampler) {
            const enum trit_status st = prepare(s, r);
            if (st != TRIT_OK) {
                struct serve_error e;
                serve_error_set(&e, 500, "server_error", NULL, NULL, "preparing the request: %s", trit_status_str(st));
                retire(s, r, SERVE_ERROR, &e);
                continue;
            }
        }
        for (int32_t c = 0; c < r->p.n; c++)
            if (!r->ch[c].finish) r->ch[c].seq = seq_take(s);
        r->admitted = ++s->n_admitted;
        s->running[s->n_running++] = r;
        pthread_mutex_lock(&s->mu);
        s->n_running_pub = s->n_running;
        s->n_seq_free_pub = s->n_seq_free;
        pthread_mutex_unlock(&s->mu);
    }
}

/* The most recently admitted request gives its sequences back and waits at the front of the queue
 * to recompute them (its samplers and answer so far are kept). */
static void preempt(struct serve_sched *s) {
    struct serve_req *r = s->running[0];
    for (int32_t i = 1; i < s->n_running; i++)
        if (s->running[i]->admitted > r->admitted) r = s->running[i];
    running_remove(s, r);
    r->admitted = 0;
    pthread_mutex_lock(&s->mu);
    list_push(s, r, true);
    pthread_mutex_unlock(&s->mu);
    serve_metrics_preemption(s->metrics);
}

/* ---- one step ----------------------------------------------------------------------------------- */

/* Adds T[from .. from + n) of a choice to the batch; the last one's logits when `logits`. */
static int32_t batch_add(struct serve_sched *s, int32_t at, struct serve_req *r, int32_t c, int32_t n, bool logits,
                         int32_t *rows) {
    struct serve_choice *ch = &r->ch[c];
    for (int32_t k = 0; k < n; k++) {
        s->b_token[at + k] = token_at(r, ch, ch->n_cached + k);
        s->b_pos[at + k] = ch->n_cached + k;
        s->b_seq[at + k] = ch->seq;
        s->b_logits[at + k] = 0;
        s->b_choice[at + k] = ch;
    }
    /* A context of one sequence may run on a backend without batches (CUDA today), which returns
     * the last token's logits always: the row is asked for and dropped. */
    if (logits || s->cfg.n_seq == 1) {
        s->b_logits[at + n - 1] = 1;
        s->row_req[*rows] = logits ? r : NULL;
        s->row_choice[*rows] = c;
        (*rows)++;
    }
    return at + n;
}

/* The step's batch: a decode token of every generating choice, then prefill chunks in admission
 * order until n_batch. Returns its length; *rows the logits rows asked for. */
static int32_t build(struct serve_sched *s, int32_t *rows) {
    int32_t n = 0;
    *rows = 0;
    for (int32_t i = 0; i < s->n_running; i++) {
        struct serve_req *r = s->running[i];
        for (int32_t c = 0; c < r->p.n; c++) {
            const struct serve_choice *ch = &r->ch[c];
            if (!ch->finish && !waits_fork(r, c) && target(r, ch) - ch->n_cached == 1) n = batch_add(s, n, r, c, 1, true, rows);
        }
    }
    for (int32_t i = 0; i < s->n_running && n < s->cfg.n_batch; i++) {
        struct serve_req *r = s->running[i];
        for (int32_t c = 0; c < r->p.n && n < s->cfg.n_batch; c++) {
            const struct serve_choice *ch = &r->ch[c];
            const int32_t left = target(r, ch) - ch->n_cached;
            if (ch->finish || waits_fork(r, c) || left <= 1) continue;
            int32_t take = left < s->cfg.chunk ? left : s->cfg.chunk;
            if (take > s->cfg.n_batch - n) take = s->cfg.n_batch - n;
            n = batch_add(s, n, r, c, take, take == left, rows);
        }
    }
    return n;
}

/* Choice 0 of r ran the prompt: the other choices fork its sequence; then every choice samples
 * from the prompt's logits. */
static void prompt_finished(struct serve_sched *s, struct serve_req *r, const float *row) {
    for (int32_t c = 1; c < r->p.n; c++) {
        struct serve_choice *ch = &r->ch[c];
        const enum trit_status st = trit_seq_fork(s->ctx, r->ch[0].seq, ch->seq, r->n_prompt);
        if (st != TRIT_OK) {
            fail_running(s, r, st, "forking the prompt");
            return;
        }
        ch->n_cached = r->n_prompt;
    }
    r->prompt_done = true;
    if (!r->counted) {
        r->counted = true;
        serve_metrics_tokens(s->metrics, (uint64_t)r->n_prompt, 0);
    }
    for (int32_t c = 0; c < r->p.n; c++) sample(s, r, c, row);
}

static void step(struct serve_sched *s) {
    int32_t n = 0, rows = 0, n_rows = 0;
    const float *logits = NULL;
    enum trit_status st;
    for (;;) {
        n = build(s, &rows);
        if (n == 0) return;
        const struct trit_batch b = {n, s->b_token, s->b_pos, s->b_seq, s->b_logits};
        st = trit_decode_batch(s->ctx, &b, &logits, &n_rows);
        if (st == TRIT_OK) break;
        if (st == TRIT_ERR_CONTEXT_FULL && s->n_running > 1) {
            preempt(s);
            continue;
        }
        while (s->n_running) fail_running(s, s->running[0], st, "decode");
        return;
    }
    for (int32_t i = 0; i < n; i++) s->b_choice[i]->n_cached++;
    for (int32_t j = 0; j < n_rows && j < rows; j++) {
        struct serve_req *r = s->row_req[j];
        const float *row = logits + (size_t)j * (size_t)s->n_vocab;
        if (!r) continue; /* a prefill chunk's row nobody needs */
        if (!r->prompt_done) prompt_finished(s, r, row);
        else sample(s, r, s->row_choice[j], row);
    }
    /* requests whose every choice finished leave (a failed fork already left: not running) */
    for (int32_t i = 0; i < s->n_running;) {
        struct serve_req *r = s->running[i];
        if (choices_left(r) == 0) {
            running_remove(s, r);
            retire(s, r, SERVE_OK, NULL);
        } else {
            i++;
        }
    }
}

/* ---- embeddings ----------------------------------------------------------------------------------- */

/* r leaves the embeddings queue: done with an outcome, counted, its reference dropped. */
static void embed_retire(struct serve_sched *s, struct serve_embed *r, enum serve_outcome outcome,
                         const struct serve_error *e) {
    pthread_mutex_lock(&s->mu);
    struct serve_embed **at = &s->emb_head, *prev = NULL;
    while (*at && *at != r) prev = *at, at = &(*at)->next;
    if (*at) {
        *at = r->next;
        if (s->emb_tail == r) s->emb_tail = prev;
        r->next = NULL;
        s->n_emb--;
    }
    pthread_mutex_unlock(&s->mu);
    uint64_t tokens = 0;
    for (int32_t i = 0; i < r->n_done; i++) tokens += (uint64_t)r->n_ids[i];
    serve_metrics_embed(s->metrics, outcome, tokens);
    pthread_mutex_lock(&r->mu);
    r->done = true;
    r->outcome = outcome;
    if (e) r->error = *e;
    pthread_cond_broadcast(&r->cv);
    pthread_mutex_unlock(&r->mu);
    serve_embed_release(r);
    pthread_mutex_lock(&s->mu);
    pthread_cond_broadcast(&s->idle);
    pthread_mutex_unlock(&s->mu);
}

/* Runs the next input of the first embeddings request when a sequence and the blocks for it are
 * free (the sequence is empty again when trit_embed returns, so nothing a request holds or is owed
 * changes). Otherwise it waits for a request to give some back: one is running, since an idle
 * context has every sequence and block free and the HTTP side refuses inputs longer than the pool. */
static void embed_step(struct serve_sched *s) {
    pthread_mutex_lock(&s->mu);
    struct serve_embed *r = s->emb_head;
    pthread_mutex_unlock(&s->mu);
    if (!r) return;
    const int32_t i = r->n_done, n = r->n_ids[i];
    struct trit_kv_stats kv;
    trit_kv_stats(s->ctx, &kv);
    if (s->n_seq_free == 0 || trit_kv_blocks_for(n) > kv.n_free) {
        if (s->n_running > 0) return;
        struct serve_error e; /* never: see above */
        serve_error_set(&e, 500, "server_error", NULL, NULL, "input %d needs %d KV blocks; the pool has %d", i,
                        trit_kv_blocks_for(n), kv.n_blocks);
        embed_retire(s, r, SERVE_ERROR, &e);
        return;
    }
    const int32_t seq = seq_take(s);
    const enum trit_status st = trit_embed(s->ctx, seq, r->ids[i], n, 0, r->out + (size_t)i * (size_t)r->dim);
    s->seq_used[seq] = false;
    s->n_seq_free++;
    if (st != TRIT_OK) {
        /* a backend without embeddings (CUDA, tensor parallelism) is the client's to know: 400, as
         * for other features this server does not have */
        const char *msg = trit_last_error();
        struct serve_error e;
        if (st == TRIT_ERR_UNSUPPORTED)
            serve_error_set(&e, 400, "invalid_request_error", NULL, NULL, "%s", msg && *msg ? msg : trit_status_str(st));
        else
            serve_error_set(&e, 500, "server_error", NULL, NULL, "embed: %s", msg && *msg ? msg : trit_status_str(st));
        embed_retire(s, r, e.http < 500 ? SERVE_REJECTED : SERVE_ERROR, &e);
        return;
    }
    if (++r->n_done == r->n_input) embed_retire(s, r, SERVE_OK, NULL);
}

/* ---- the thread ----------------------------------------------------------------------------------- */

static void publish_gauges(struct serve_sched *s) {
    struct trit_kv_stats kv;
    trit_kv_stats(s->ctx, &kv);
    pthread_mutex_lock(&s->mu);
    const int32_t waiting = s->n_waiting;
    s->n_seq_free_pub = s->n_seq_free;
    pthread_mutex_unlock(&s->mu);
    serve_metrics_gauges(s->metrics, waiting, s->n_running, kv.n_blocks - kv.n_free, kv.n_blocks);
}

/* Cancelled requests leave: waiting ones from the queue, running ones with their sequences. */
static void drop_cancelled(struct serve_sched *s) {
    for (;;) {
        pthread_mutex_lock(&s->mu);
        struct serve_embed *r = s->emb_head;
        while (r && !atomic_load(&r->cancel)) r = r->next;
        pthread_mutex_unlock(&s->mu);
        if (!r) break;
        embed_retire(s, r, SERVE_CANCELLED, NULL);
    }
    for (;;) {
        pthread_mutex_lock(&s->mu);
        struct serve_req *r = s->wait_head;
        while (r && !atomic_load(&r->cancel)) r = r->next;
        if (r) list_unlink(s, r);
        pthread_mutex_unlock(&s->mu);
        if (!r) break;
        retire(s, r, SERVE_CANCELLED, NULL);
    }
    for (int32_t i = 0; i < s->n_running;) {
        struct serve_req *r = s->running[i];
        if (atomic_load(&r->cancel)) {
            running_remove(s, r);
            retire(s, r, SERVE_CANCELLED, NULL);
        } else {
            i++;
        }
    }
}

static void *sched_main(void *arg) {
    struct serve_sched *s = arg;
    for (;;) {
        publish_gauges(s);
        pthread_mutex_lock(&s->mu);
        while (!s->stop && !s->poke && !s->wait_head && !s->emb_head && s->n_running == 0)
            pthread_cond_wait(&s->wake, &s->mu);
        const bool stop = s->stop;
        s->poke = false;
        pthread_mutex_unlock(&s->mu);
        if (stop) break;
        drop_cancelled(s);
        embed_step(s); /* before admission: a sequence freed by the last step goes to a waiting input first */
        admit(s);
        if (s->n_running) step(s);
    }
    /* shutting down: whatever remains is cancelled */
    for (;;) {
        pthread_mutex_lock(&s->mu);
        struct serve_embed *r = s->emb_head;
        pthread_mutex_unlock(&s->mu);
        if (!r) break;
        embed_retire(s, r, SERVE_CANCELLED, NULL);
    }
    while (s->n_running) {
        struct serve_req *r = s->running[0];
        running_remove(s, r);
        retire(s, r, SERVE_CANCELLED, NULL);
    }
    for (;;) {
        pthread_mutex_lock(&s->mu);
        struct serve_req *r = s->wait_head;
        if (r) list_unlink(s, r);
        pthread_mutex_unlock(&s->mu);
        if (!r) break;
        retire(s, r, SERVE_CANCELLED, NULL);
    }
    publish_gauges(s);
    return NULL;
}

/* ---- the interface ---------------------------------------------------------------------------------- */

static void sched_free_arrays(struct serve_sched *s) {
    free(s->running);
    free(s->seq_used);
    free(s->b_token);
    free(s->b_pos);
    free(s->b_seq);
    free(s->b_logits);
    free(s->b_choice);
    free(s->row_req);
    free(s->row_choice);
    sv_buf_free(&s->emit);
}

enum trit_status serve_sched_start(trit_context *ctx, const trit_tokenizer *tok, const struct serve_sched_config *cfg,
                                   struct serve_metrics *metrics, struct serve_sched **out) {
    *out = NULL;
    if (!ctx || cfg->n_seq < 1 || cfg->n_batch < cfg->n_seq || cfg->chunk < 1 || cfg->queue_max < 1)
        return TRIT_ERR_INVALID_ARG;
    struct serve_sched *s = calloc(1, sizeof *s);
    if (!s) return TRIT_ERR_OUT_OF_MEMORY;
    s->ctx = ctx;
    s->tok = tok;
    s->cfg = *cfg;
    s->metrics = metrics;
    s->n_vocab = trit_model_n_vocab(trit_context_model(ctx));
    s->n_seq_free = s->n_seq_free_pub = cfg->n_seq;
    const size_t S = (size_t)cfg->n_seq, B = (size_t)cfg->n_batch;
    s->running = calloc(S, sizeof *s->running);
    s->seq_used = calloc(S, sizeof *s->seq_used);
    s->b_token = malloc(B * sizeof *s->b_token);
    s->b_pos = malloc(B * sizeof *s->b_pos);
    s->b_seq = malloc(B * sizeof *s->b_seq);
    s->b_logits = malloc(B * sizeof *s->b_logits);
    s->b_choice = malloc(B * sizeof *s->b_choice);
    s->row_req = malloc(S * sizeof *s->row_req);
    s->row_choice = malloc(S * sizeof *s->row_choice);
    if (!s->running || !s->seq_used || !s->b_token || !s->b_pos || !s->b_seq || !s->b_logits || !s->b_choice ||
        !s->row_req || !s->row_choice) {
        sched_free_arrays(s);
        free(s);
        return TRIT_ERR_OUT_OF_MEMORY;
    }
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->wake, NULL);
    pthread_cond_init(&s->idle, NULL);
    if (pthread_create(&s->thread, NULL, sched_main, s) != 0) {
        pthread_mutex_destroy(&s->mu);
        pthread_cond_destroy(&s->wake);
        pthread_cond_destroy(&s->idle);
        sched_free_arrays(s);
        free(s);
        return TRIT_ERR_OUT_OF_MEMORY;
    }
    *out = s;
    return TRIT_OK;
}

enum serve_submit serve_sched_submit(struct serve_sched *s, struct serve_req *r) {
    pthread_mutex_lock(&s->mu);
    enum serve_submit res = SERVE_SUBMITTED;
    if (s->closed || s->stop) res = SERVE_CLOSED;
    /* requests the next step admits at once (free sequences) are not waiting in the queue's sense */
    else if (s->n_waiting + s->n_emb >= s->cfg.queue_max + s->n_seq_free_pub) res = SERVE_QUEUE_FULL;
    if (res == SERVE_SUBMITTED) {
        pthread_mutex_lock(&r->mu);
        r->refs++;
        pthread_mutex_unlock(&r->mu);
        list_push(s, r, false);
        pthread_cond_signal(&s->wake);
    }
    pthread_mutex_unlock(&s->mu);
    return res;
}

enum serve_submit serve_sched_submit_embed(struct serve_sched *s, struct serve_embed *r) {
    pthread_mutex_lock(&s->mu);
    enum serve_submit res = SERVE_SUBMITTED;
    if (s->closed || s->stop) res = SERVE_CLOSED;
    else if (s->n_waiting + s->n_emb >= s->cfg.queue_max + s->n_seq_free_pub) res = SERVE_QUEUE_FULL;
    if (res == SERVE_SUBMITTED) {
        pthread_mutex_lock(&r->mu);
        r->refs++;
        pthread_mutex_unlock(&r->mu);
        r->next = NULL;
        if (s->emb_tail) s->emb_tail->next = r;
        else s->emb_head = r;
        s->emb_tail = r;
        s->n_emb++;
        pthread_cond_signal(&s->wake);
    }
    pthread_mutex_unlock(&s->mu);
    return res;
}

/* Wakes the scheduler to look at cancellations. */
static void poke(struct serve_sched *s) {
    pthread_mutex_lock(&s->mu);
    s->poke = true;
    pthread_cond_signal(&s->wake);
    pthread_mutex_unlock(&s->mu);
}

void serve_sched_cancel_embed(struct serve_sched *s, struct serve_embed *r) {
    atomic_store(&r->cancel, true);
    poke(s);
}

void serve_sched_cancel(struct serve_sched *s, struct serve_req *r) {
    atomic_store(&r->cancel, true);
    poke(s);
}

void serve_sched_close(struct serve_sched *s) {
    pthread_mutex_lock(&s->mu);
    s->closed = true;
    pthread_mutex_unlock(&s->mu);
}

int serve_sched_drain(struct serve_sched *s, double seconds) {
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    const double end = (double)until.tv_sec + (double)until.tv_nsec * 1e-9 + seconds;
    until.tv_sec = (time_t)end;
    until.tv_nsec = (long)((end - (double)until.tv_sec) * 1e9);
    pthread_mutex_lock(&s->mu);
    int left;
    while ((left = s->n_waiting + s->n_running_pub + s->n_emb) > 0)
        if (pthread_cond_timedwait(&s->idle, &s->mu, &until) == ETIMEDOUT) {
            left = s->n_waiting + s->n_running_pub + s->n_emb;
            break;
        }
    pthread_mutex_unlock(&s->mu);
    return left;
}

void serve_sched_stop(struct serve_sched *s) {
    pthread_mutex_lock(&s->mu);
    const bool joined = s->joined;
    s->stop = s->closed = s->joined = true;
    pthread_cond_signal(&s->wake);
    pthread_mutex_unlock(&s->mu);
    if (!joined) pthread_join(s->thread, NULL);
}

void serve_sched_free(struct serve_sched *s) {
    if (!s) return;
    serve_sched_stop(s);
    pthread_mutex_destroy(&s->mu);
    pthread_cond_destroy(&s->wake);
    pthread_cond_destroy(&s->idle);
    sched_free_arrays(s);
    free(s);
}
