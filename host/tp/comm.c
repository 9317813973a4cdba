/*
 * comm.c: the implementation-independent half of the communicator (comm.h): argument checks,
 * the call-site record, timing and statistics, and the watchdog thread that ends a group whose
 * collective has not completed within the timeout.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "tp/comm_internal.h"

struct trit_comm_params trit_comm_default_params(void) {
    struct trit_comm_params p = {.timeout_ms = 0, .split_color = -1};
    return p;
}

int64_t trit_comm_dtype_bytes(enum trit_comm_dtype dtype) {
    switch (dtype) {
    case TRIT_COMM_I32: return 4;
    case TRIT_COMM_F32: return 4;
    case TRIT_COMM_F64: return 8;
    }
    return 0;
}

const char *trit_comm_dtype_name(enum trit_comm_dtype dtype) {
    switch (dtype) {
    case TRIT_COMM_I32: return "int32";
    case TRIT_COMM_F32: return "fp32";
    case TRIT_COMM_F64: return "fp64";
    }
    return "?";
}

const char *trit_comm_op_name(enum trit_comm_op op) {
    switch (op) {
    case TRIT_COMM_SUM: return "sum";
    case TRIT_COMM_MAX: return "max";
    }
    return "?";
}

/* ---- creation and properties ---------------------------------------------------------------- */

static int timeout_from_env(void) {
    const char *v = getenv("TRIT_TP_TIMEOUT_MS");
    if (!v || !*v) return TRIT_COMM_TIMEOUT_MS_DEFAULT;
    char *end;
    errno = 0;
    long t = strtol(v, &end, 10);
    if (errno || *end || t <= 0 || t > 24L * 3600 * 1000) {
        TRIT_LOG_W("TRIT_TP_TIMEOUT_MS='%s' is not a positive number of milliseconds; using %d", v,
                   TRIT_COMM_TIMEOUT_MS_DEFAULT);
        return TRIT_COMM_TIMEOUT_MS_DEFAULT;
    }
    return (int)t;
}

enum trit_status trit_comm_alloc(const struct trit_comm_params *p, struct trit_comm **out) {
    *out = NULL;
    struct trit_comm *c = trit_alloc(sizeof *c);
    if (!c) return trit_error(TRIT_ERR_OUT_OF_MEMORY, "tensor parallel: out of memory for a communicator");
    c->timeout_ms = p && p->timeout_ms > 0 ? p->timeout_ms : timeout_from_env();
    c->local_size = 1;
    atomic_init(&c->busy_since_us, 0);
    atomic_init(&c->broken, false);
    const int e = pthread_mutex_init(&c->desc_mu, NULL);
    if (e != 0) {
        trit_free(c);
        return trit_error(TRIT_ERR_INTERNAL, "tensor parallel: pthread_mutex_init: %s", strerror(e));
    }
    *out = c;
    return TRIT_OK;
}

int trit_comm_rank(const struct trit_comm *c) { return c->rank; }
int trit_comm_size(const struct trit_comm *c) { return c->size; }
int trit_comm_local_size(const struct trit_comm *c) { return c->local_size; }
int trit_comm_local_rank(const struct trit_comm *c) { return c->local_rank; }
enum trit_comm_backend trit_comm_backend(const struct trit_comm *c) { return c->backend; }
int trit_comm_timeout_ms(const struct trit_comm *c) { return c->timeout_ms; }
void *trit_comm_stream(const struct trit_comm *c) { return c->stream; }
bool trit_comm_broken(const struct trit_comm *c) { return atomic_load(&((struct trit_comm *)c)->broken); }

void trit_comm_get_stats(const struct trit_comm *c, struct trit_comm_stats *out) { *out = c->stats; }
void trit_comm_reset_stats(struct trit_comm *c) { memset(&c->stats, 0, sizeof c->stats); }

/* Marks c broken; the first reason is kept. */
static void mark_broken(struct trit_comm *c, const char *why) {
    pthread_mutex_lock(&c->desc_mu);
    if (!atomic_load(&c->broken)) {
        snprintf(c->broken_why, sizeof c->broken_why, "%s", why);
        atomic_store(&c->broken, true);
    }
    pthread_mutex_unlock(&c->desc_mu);
}

enum trit_status trit_comm_fail(struct trit_comm *c, enum trit_status st) {
    mark_broken(c, trit_last_error());
    return st;
}

/* ---- the watchdog --------------------------------------------------------------------------- */

static void *watchdog_main(void *arg) {
    struct trit_comm *c = arg;
    /* Poll often enough that a timeout is noticed within 5% of it (at least every 100 ms). */
    int64_t tick_ms = c->timeout_ms / 20;
    if (tick_ms < 5) tick_ms = 5;
    if (tick_ms > 100) tick_ms = 100;
    pthread_mutex_lock(&c->mu);
    while (!c->stop) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        int64_t ns = ts.tv_nsec + tick_ms * 1000000;
        ts.tv_sec += ns / 1000000000;
        ts.tv_nsec = ns % 1000000000;
        pthread_cond_timedwait(&c->cv, &c->mu, &ts);
        if (c->stop || atomic_load(&c->broken)) continue;

        char why[512] = "", desc[sizeof c->busy_desc];
        /* rank and size may change while a communicator is set up (comm_mpi.c: the world's until
         * the split exists); desc_mu orders them. */
        pthread_mutex_lock(&c->desc_mu);
        const int rank = c->rank, size = c->size;
        const int64_t since = atomic_load(&c->busy_since_us);
        memcpy(desc, c->busy_desc, sizeof desc);
        pthread_mutex_unlock(&c->desc_mu);
        if (c->ops->poll && c->ops->poll(c) != TRIT_OK) {
            snprintf(why, sizeof why, "tensor parallel: rank %d of %d: %s communicator error: %s; ending every rank",
                     rank, size, c->ops->name, trit_last_error());
        } else {
            const int64_t waited_ms = since ? (trit_time_us() - since) / 1000 : 0;
            if (since && waited_ms >= c->timeout_ms)
                snprintf(why, sizeof why,
                         "tensor parallel: rank %d of %d: %s did not complete within %d ms (waited %lld ms): "
                         "a peer rank died or hangs; ending every rank",
                         rank, size, desc, c->timeout_ms, (long long)waited_ms);
        }
        if (why[0]) {
            pthread_mutex_unlock(&c->mu);
            trit_comm_abort(c, why); /* MPI: does not return */
            pthread_mutex_lock(&c->mu);
        }
    }
    pthread_mutex_unlock(&c->mu);
    return NULL;
}

enum trit_status trit_comm_start_watchdog(struct trit_comm *c) {
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    int e = pthread_mutex_init(&c->mu, NULL);
    if (e == 0) e = pthread_cond_init(&c->cv, &ca);
    pthread_condattr_destroy(&ca);
    if (e == 0) e = pthread_create(&c->watchdog, NULL, watchdog_main, c);
    if (e != 0) return trit_error(TRIT_ERR_INTERNAL, "tensor parallel: cannot start the watchdog thread: %s", strerror(e));
    c->watchdog_running = true;
    return TRIT_OK;
}

void trit_comm_abort(struct trit_comm *c, const char *why) {
    if (!c) return;
    trit_log(TRIT_LOG_ERROR, "%s", why && *why ? why : "tensor parallel: abort requested");
    mark_broken(c, why ? why : "aborted");
    c->ops->abort(c);
}

void trit_comm_free(struct trit_comm *c) {
    if (!c) return;
    if (c->watchdog_running) {
        pthread_mutex_lock(&c->mu);
        c->stop = true;
        pthread_cond_signal(&c->cv);
        pthread_mutex_unlock(&c->mu);
        pthread_join(c->watchdog, NULL);
        pthread_cond_destroy(&c->cv);
        pthread_mutex_destroy(&c->mu);
    }
    if (c->ops && c->ops->destroy) c->ops->destroy(c);
    pthread_mutex_destroy(&c->desc_mu);
    trit_free(c);
}

/* ---- collectives ------------------------------------------------------------------------------ */

/* The last two components of a path: "tp/forward_tp.c". */
static const char *short_path(const char *file) {
    const char *last = strrchr(file, '/');
    if (!last) return file;
    const char *p = last;
    while (p > file && p[-1] != '/') p--;
    return p > file ? p : file;
}

void trit_comm_wait_begin_at(struct trit_comm *c, const char *what, const char *file, int line) {
    /* NCCL: the wait runs from the first enqueue to the sync, so keep an earlier start. */
    if (atomic_load(&c->busy_since_us) != 0) return;
    pthread_mutex_lock(&c->desc_mu);
    snprintf(c->busy_desc, sizeof c->busy_desc, "%s %s (called at %s:%d)", c->ops->name, what, short_path(file), line);
    atomic_store(&c->busy_since_us, trit_time_us());
    pthread_mutex_unlock(&c->desc_mu);
}

void trit_comm_wait_end(struct trit_comm *c) { atomic_store(&c->busy_since_us, 0); }

/* Checks what every collective needs, and marks the start of the wait for the watchdog. */
static enum trit_status begin(struct trit_comm *c, const char *what, const char *file, int line, int64_t *t0) {
    if (!c) return trit_error(TRIT_ERR_INVALID_ARG, "tensor parallel: %s on a NULL communicator", what);
    if (atomic_load(&c->broken)) {
        char why[sizeof c->broken_why];
        pthread_mutex_lock(&c->desc_mu);
        memcpy(why, c->broken_why, sizeof why);
        pthread_mutex_unlock(&c->desc_mu);
        return trit_error(TRIT_ERR_COMM, "tensor parallel: %s at %s:%d: the communicator failed earlier: %s", what,
                          short_path(file), line, why);
    }
    *t0 = trit_time_us();
    trit_comm_wait_begin_at(c, what, file, line);
    return TRIT_OK;
}

static enum trit_status end(struct trit_comm *c, enum trit_status st, int64_t t0, int64_t bytes, bool counted) {
    if (!c->ops->sync || st != TRIT_OK) atomic_store(&c->busy_since_us, 0);
    c->stats.time_us += trit_time_us() - t0;
    if (counted) {
        c->stats.n_calls++;
        c->stats.bytes += bytes;
    }
    return st == TRIT_OK ? TRIT_OK : trit_comm_fail(c, st);
}

static bool dtype_ok(enum trit_comm_dtype t) { return t == TRIT_COMM_I32 || t == TRIT_COMM_F32 || t == TRIT_COMM_F64; }

enum trit_status trit_comm_allreduce_at(struct trit_comm *c, void *buf, int64_t n, enum trit_comm_dtype dtype,
                                        enum trit_comm_op op, const char *file, int line) {
    if (!dtype_ok(dtype) || (op != TRIT_COMM_SUM && op != TRIT_COMM_MAX) || n < 0 || (n > 0 && !buf))
        return trit_error(TRIT_ERR_INVALID_ARG, "tensor parallel: all-reduce at %s:%d: bad arguments (n %lld, dtype %d, op %d)",
                          short_path(file), line, (long long)n, (int)dtype, (int)op);
    if (c && c->backend == TRIT_COMM_SELF) return TRIT_OK; /* the reduction over one rank: buf itself */
    char what[96];
    snprintf(what, sizeof what, "all-reduce %s of %lld %s", trit_comm_op_name(op), (long long)n, trit_comm_dtype_name(dtype));
    int64_t t0;
    TRIT_TRY(begin(c, what, file, line, &t0));
    enum trit_status st = n == 0 ? TRIT_OK : c->ops->allreduce(c, buf, n, dtype, op);
    return end(c, st, t0, n * trit_comm_dtype_bytes(dtype), true);
}

enum trit_status trit_comm_allgather_at(struct trit_comm *c, const void *send, void *recv, int64_t n,
                                        enum trit_comm_dtype dtype, const char *file, int line) {
    if (!dtype_ok(dtype) || n < 0 || (n > 0 && (!send || !recv)))
        return trit_error(TRIT_ERR_INVALID_ARG, "tensor parallel: all-gather at %s:%d: bad arguments (n %lld, dtype %d)",
                          short_path(file), line, (long long)n, (int)dtype);
    if (c && c->backend == TRIT_COMM_SELF) return c->ops->allgather(c, send, recv, n, dtype); /* nothing to wait for */
    char what[96];
    snprintf(what, sizeof what, "all-gather of %lld %s per rank", (long long)n, trit_comm_dtype_name(dtype));
    int64_t t0;
    TRIT_TRY(begin(c, what, file, line, &t0));
    enum trit_status st = n == 0 ? TRIT_OK : c->ops->allgather(c, send, recv, n, dtype);
    return end(c, st, t0, n * c->size * trit_comm_dtype_bytes(dtype), true);
}

enum trit_status trit_comm_broadcast_at(struct trit_comm *c, void *buf, int64_t n_bytes, int root, const char *file,
                                        int line) {
    if (!c || n_bytes < 0 || (n_bytes > 0 && !buf) || root < 0 || root >= c->size)
        return trit_error(TRIT_ERR_INVALID_ARG, "tensor parallel: broadcast at %s:%d: bad arguments (%lld bytes, root %d of %d)",
                          short_path(file), line, (long long)n_bytes, root, c ? c->size : 0);
    char what[96];
    snprintf(what, sizeof what, "broadcast of %lld bytes from rank %d", (long long)n_bytes, root);
    int64_t t0;
    TRIT_TRY(begin(c, what, file, line, &t0));
    enum trit_status st = n_bytes == 0 ? TRIT_OK : c->ops->broadcast(c, buf, n_bytes, root);
    return end(c, st, t0, n_bytes, true);
}

enum trit_status trit_comm_broadcast_idle_at(struct trit_comm *c, void *buf, int64_t n_bytes, int root,
                                             const char *file, int line) {
    if (!c || n_bytes < 0 || n_bytes > INT32_MAX || (n_bytes > 0 && !buf) || root < 0 || root >= c->size)
        return trit_error(TRIT_ERR_INVALID_ARG,
                          "tensor parallel: idle broadcast at %s:%d: bad arguments (%lld bytes, root %d of %d)",
                          short_path(file), line, (long long)n_bytes, root, c ? c->size : 0);
    if (c->size == 1) return TRIT_OK;
    if (!c->ops->broadcast_idle)
        return trit_error(TRIT_ERR_UNSUPPORTED, "tensor parallel: %s has no idle broadcast (at %s:%d)", c->ops->name,
                          short_path(file), line);
    int64_t t0; /* begin() for its checks; the watchdog must not bound this wait */
    TRIT_TRY(begin(c, "idle broadcast", file, line, &t0));
    trit_comm_wait_end(c);
    const enum trit_status st = c->ops->broadcast_idle(c, buf, n_bytes, root);
    return st == TRIT_OK ? TRIT_OK : trit_comm_fail(c, st);
}

enum trit_status trit_comm_barrier_at(struct trit_comm *c, const char *file, int line) {
    int64_t t0;
    TRIT_TRY(begin(c, "barrier", file, line, &t0));
    enum trit_status st = c->ops->barrier(c);
    return end(c, st, t0, 0, true);
}

enum trit_status trit_comm_sync_at(struct trit_comm *c, const char *file, int line) {
    if (!c) return trit_error(TRIT_ERR_INVALID_ARG, "tensor parallel: sync on a NULL communicator");
    if (!c->ops->sync) return TRIT_OK;
    int64_t t0;
    TRIT_TRY(begin(c, "sync", file, line, &t0));
    enum trit_status st = c->ops->sync(c);
    atomic_store(&c->busy_since_us, 0);
    return end(c, st, t0, 0, false);
}
