/*
 * comm_mpi.c: the MPI communicator (comm.h) for CPU ranks, one process each:
 *
 *   mpirun -np 4 trit run --tp-mpi -m model.gguf -p "..."              (one node)
 *   mpirun -np 8 -H a:4,b:4 trit run --tp-mpi -m model.gguf -p "..."   (two nodes)
 *
 * Each communicator is a duplicate of MPI_COMM_WORLD (or an MPI_Comm_split of it) with
 * MPI_ERRORS_RETURN, so a failed call comes back as TRIT_ERR_COMM through TRIT_MPI_CHECK, which
 * records the statement, file and line. A hung peer is handled by comm.c's watchdog, which calls
 * this file's abort: MPI_Abort on MPI_COMM_WORLD, so that mpirun ends every rank.
 *
 * MPI is initialized here (MPI_THREAD_MULTIPLE: the watchdog may call MPI_Abort while the main
 * thread waits inside a collective) unless the program did it first. What this file initialized it
 * finalizes at exit, after a barrier the watchdog bounds, or aborts at exit when a communicator
 * broke, so that no rank is left waiting. MPI_Init, communicator creation and that exit barrier
 * wait for every rank as a collective does, so each is bounded by the timeout too (a rank stopped
 * with SIGSTOP keeps its connections open: nothing but the timeout notices it).
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "tp/comm_internal.h"

#ifdef TRIT_HAVE_MPI

#include <mpi.h>

/* ---- the check macro ---------------------------------------------------------------------------- */

static enum trit_status mpi_fail(int code, const char *stmt, const char *file, int line) {
    char msg[MPI_MAX_ERROR_STRING + 1];
    int len = 0;
    if (MPI_Error_string(code, msg, &len) != MPI_SUCCESS) len = snprintf(msg, sizeof msg, "MPI error %d", code);
    msg[len < 0 ? 0 : len > MPI_MAX_ERROR_STRING ? MPI_MAX_ERROR_STRING : len] = '\0';
    const char *base = strrchr(file, '/');
    return trit_error(TRIT_ERR_COMM, "%s:%d: %s: %s", base ? base + 1 : file, line, stmt, msg);
}

/* Every MPI call goes through this: on failure it records "file:line: statement: MPI message" and
 * returns TRIT_ERR_COMM from the enclosing function. */
#define TRIT_MPI_CHECK(call)                                                                       \
    do {                                                                                           \
        const int trit_mpi_e_ = (call);                                                            \
        if (trit_mpi_e_ != MPI_SUCCESS) return mpi_fail(trit_mpi_e_, #call, __FILE__, __LINE__);   \
    } while (0)

/* ---- process-wide MPI state ----------------------------------------------------------------------
 * MPI itself is process-wide: whether this module initialized it, and whether any communicator
 * broke (then exit aborts the job instead of waiting in MPI_Finalize for ranks that never come). */
static pthread_mutex_t g_mpi_mu = PTHREAD_MUTEX_INITIALIZER;
static bool g_mpi_ours;
static atomic_bool g_mpi_broken;

static _Atomic int g_mpi_timeout_ms; /* the last communicator's, for the barrier at exit */

static enum trit_status mpi_exit_barrier(void);

static void mpi_at_exit(void) {
    int finalized = 0;
    MPI_Finalized(&finalized);
    if (finalized) return;
    /* MPI_Finalize waits for every rank (Open MPI: a PMIx fence) without a timeout, so a rank that
     * stopped answering (SIGSTOP, a hung device) would hold this one there forever. Meet the others
     * first in a barrier that the watchdog bounds: it aborts the job after the timeout. */
    if (!atomic_load(&g_mpi_broken) && mpi_exit_barrier() != TRIT_OK) {
        trit_log(TRIT_LOG_ERROR, "tensor parallel: at exit: %s", trit_last_error());
        atomic_store(&g_mpi_broken, true);
    }
    if (atomic_load(&g_mpi_broken)) MPI_Abort(MPI_COMM_WORLD, TRIT_COMM_ABORT_CODE);
    MPI_Finalize();
}

/* MPI_Init waits for every rank of the job too (Open MPI: a PMIx fence), without a timeout, and
 * MPI_Abort is not allowed before it returns. So a timer thread bounds it: after timeout_ms it logs
 * and ends this process with _exit, the one exit in the library (nothing else can stop a blocked
 * MPI_Init); mpirun then ends the other ranks, as for a rank that dies. */
struct init_timer {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool done;
    int timeout_ms;
};

static void *init_timer_main(void *arg) {
    struct init_timer *t = arg;
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    const int64_t ns = ts.tv_nsec + (int64_t)(t->timeout_ms % 1000) * 1000000;
    ts.tv_sec += t->timeout_ms / 1000 + ns / 1000000000;
    ts.tv_nsec = ns % 1000000000;
    pthread_mutex_lock(&t->mu);
    while (!t->done && pthread_cond_timedwait(&t->cv, &t->mu, &ts) != ETIMEDOUT) {}
    const bool done = t->done;
    pthread_mutex_unlock(&t->mu);
    if (done) return NULL;
    const char *r = getenv("OMPI_COMM_WORLD_RANK");
    if (!r) r = getenv("PMI_RANK");
    trit_log(TRIT_LOG_ERROR,
             "tensor parallel: rank %s: MPI_Init_thread did not complete within %d ms: a peer rank died, hangs or "
             "never started; ending this rank (exit %d) so that mpirun ends every rank",
             r ? r : "?", t->timeout_ms, TRIT_COMM_ABORT_CODE);
    _exit(TRIT_COMM_ABORT_CODE);
}

/* MPI_Init_thread under init_timer_main's bound. */
static int mpi_init_bounded(int timeout_ms, int *provided) {
    struct init_timer t = {.timeout_ms = timeout_ms};
    pthread_condattr_t ca;
    pthread_t thread;
    bool timed = pthread_condattr_init(&ca) == 0;
    timed = timed && pthread_condattr_setclock(&ca, CLOCK_MONOTONIC) == 0;
    timed = timed && pthread_mutex_init(&t.mu, NULL) == 0;
    timed = timed && pthread_cond_init(&t.cv, &ca) == 0;
    timed = timed && pthread_create(&thread, NULL, init_timer_main, &t) == 0;
    pthread_condattr_destroy(&ca);
    if (!timed) TRIT_LOG_W("tensor parallel: cannot start a timer thread; MPI_Init_thread runs without a timeout");
    const int e = MPI_Init_thread(NULL, NULL, MPI_THREAD_MULTIPLE, provided);
    if (timed) {
        pthread_mutex_lock(&t.mu);
        t.done = true;
        pthread_cond_signal(&t.cv);
        pthread_mutex_unlock(&t.mu);
        pthread_join(thread, NULL);
        pthread_cond_destroy(&t.cv);
        pthread_mutex_destroy(&t.mu);
    }
    return e;
}

static enum trit_status mpi_ensure_init(int timeout_ms) {
    enum trit_status st = TRIT_OK;
    pthread_mutex_lock(&g_mpi_mu);
    int inited = 0, finalized = 0;
    MPI_Initialized(&inited);
    MPI_Finalized(&finalized);
    if (finalized) {
        st = trit_error(TRIT_ERR_COMM, "tensor parallel: MPI was already finalized in this process");
    } else if (!inited) {
        int provided = 0;
        int e = mpi_init_bounded(timeout_ms, &provided);
        if (e != MPI_SUCCESS) {
            st = mpi_fail(e, "MPI_Init_thread(NULL, NULL, MPI_THREAD_MULTIPLE, &provided)", __FILE__, __LINE__);
        } else {
            g_mpi_ours = true;
            atexit(mpi_at_exit);
            /* Our own process: errors on the world communicator return too. */
            MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
            if (provided < MPI_THREAD_MULTIPLE)
                TRIT_LOG_W("tensor parallel: this MPI gives thread level %d, not MPI_THREAD_MULTIPLE; the watchdog "
                           "still calls MPI_Abort from its own thread", provided);
        }
    }
    pthread_mutex_unlock(&g_mpi_mu);
    return st;
}

/* ---- the implementation ------------------------------------------------------------------------- */

struct mpi_impl {
    MPI_Comm comm;
};

static MPI_Datatype mpi_type(enum trit_comm_dtype t) {
    switch (t) {
    case TRIT_COMM_I32: return MPI_INT32_T;
    case TRIT_COMM_F32: return MPI_FLOAT;
    case TRIT_COMM_F64: return MPI_DOUBLE;
    }
    return MPI_DATATYPE_NULL;
}

static MPI_Comm comm_of(struct trit_comm *c) { return ((struct mpi_impl *)c->impl)->comm; }

/* MPI counts are int: long buffers go in pieces of at most this many elements. */
#define MPI_CHUNK ((int64_t)1 << 30)

static enum trit_status mpi_allreduce(struct trit_comm *c, void *buf, int64_t n, enum trit_comm_dtype dtype,
                                      enum trit_comm_op op) {
    const MPI_Op mop = op == TRIT_COMM_SUM ? MPI_SUM : MPI_MAX;
    const int64_t esz = trit_comm_dtype_bytes(dtype);
    for (int64_t i = 0; i < n; i += MPI_CHUNK) {
        const int cnt = (int)(n - i < MPI_CHUNK ? n - i : MPI_CHUNK);
        TRIT_MPI_CHECK(MPI_Allreduce(MPI_IN_PLACE, (char *)buf + i * esz, cnt, mpi_type(dtype), mop, comm_of(c)));
    }
    return TRIT_OK;
}

static enum trit_status mpi_allgather(struct trit_comm *c, const void *send, void *recv, int64_t n,
                                      enum trit_comm_dtype dtype) {
    if (n > INT_MAX / c->size)
        return trit_error(TRIT_ERR_UNSUPPORTED, "tensor parallel: all-gather of %lld elements per rank is more than MPI's int count",
                          (long long)n);
    TRIT_MPI_CHECK(MPI_Allgather(send, (int)n, mpi_type(dtype), recv, (int)n, mpi_type(dtype), comm_of(c)));
    return TRIT_OK;
}

static enum trit_status mpi_broadcast(struct trit_comm *c, void *buf, int64_t n_bytes, int root) {
    for (int64_t i = 0; i < n_bytes; i += MPI_CHUNK) {
        const int cnt = (int)(n_bytes - i < MPI_CHUNK ? n_bytes - i : MPI_CHUNK);
        TRIT_MPI_CHECK(MPI_Bcast((char *)buf + i, cnt, MPI_BYTE, root, comm_of(c)));
    }
    return TRIT_OK;
}

/* MPI_Ibcast, then MPI_Test until it completes: spinning for the first polls (a step that follows
 * at once), then sleeping 10 us, doubling to 1 ms (an idle server's followers). */
static enum trit_status mpi_broadcast_idle(struct trit_comm *c, void *buf, int64_t n_bytes, int root) {
    MPI_Request req;
    TRIT_MPI_CHECK(MPI_Ibcast(buf, (int)n_bytes, MPI_BYTE, root, comm_of(c), &req));
    long sleep_ns = 10000;
    for (int polls = 0;; polls++) {
        int done = 0;
        TRIT_MPI_CHECK(MPI_Test(&req, &done, MPI_STATUS_IGNORE));
        if (done) return TRIT_OK;
        if (polls < 1000) continue;
        const struct timespec ts = {0, sleep_ns};
        nanosleep(&ts, NULL);
        if (sleep_ns < 1000000) sleep_ns *= 2;
    }
}

static enum trit_status mpi_barrier(struct trit_comm *c) {
    TRIT_MPI_CHECK(MPI_Barrier(comm_of(c)));
    return TRIT_OK;
}

static void mpi_abort(struct trit_comm *c) {
    (void)c;
    atomic_store(&g_mpi_broken, true);
    /* The whole job: a tensor-parallel group without one rank cannot go on, and the other groups of
     * a split world would wait for it too. Does not return. */
    MPI_Abort(MPI_COMM_WORLD, TRIT_COMM_ABORT_CODE);
}

static void mpi_destroy(struct trit_comm *c) {
    struct mpi_impl *im = c->impl;
    if (!im) return;
    if (atomic_load(&c->broken)) {
        /* A peer may be gone: freeing the communicator could wait for it. Leave it to exit. */
        atomic_store(&g_mpi_broken, true);
    } else if (im->comm != MPI_COMM_NULL) {
        int finalized = 0;
        MPI_Finalized(&finalized);
        if (!finalized && MPI_Comm_free(&im->comm) != MPI_SUCCESS)
            TRIT_LOG_W("tensor parallel: MPI_Comm_free failed; the communicator is left to MPI_Finalize");
    }
    trit_free(im);
    c->impl = NULL;
}

static const struct trit_comm_ops mpi_ops = {
    .name = "MPI",
    .allreduce = mpi_allreduce,
    .allgather = mpi_allgather,
    .broadcast = mpi_broadcast,
    .broadcast_idle = mpi_broadcast_idle,
    .barrier = mpi_barrier,
    .sync = NULL,
    .poll = NULL,
    .abort = mpi_abort,
    .destroy = mpi_destroy,
};

/* The watchdog reads rank and size under desc_mu. */
static void set_rank(struct trit_comm *c, int rank, int size) {
    pthread_mutex_lock(&c->desc_mu);
    c->rank = rank;
    c->size = size;
    pthread_mutex_unlock(&c->desc_mu);
}

/* Runs with the watchdog started: creating a communicator is collective over the world, so a rank
 * that stopped answering would hold the others here without it. Until the new communicator exists,
 * c->rank and c->size are the world's, for the watchdog's message. */
static enum trit_status mpi_setup(struct trit_comm *c, const struct trit_comm_params *p, const char *when) {
    struct mpi_impl *im = c->impl;
    char what[160];
    int rank = 0, size = 0;
    TRIT_MPI_CHECK(MPI_Comm_rank(MPI_COMM_WORLD, &rank));
    TRIT_MPI_CHECK(MPI_Comm_size(MPI_COMM_WORLD, &size));
    set_rank(c, rank, size);
    int e;
    if (p && p->split_color >= 0) {
        snprintf(what, sizeof what, "communicator split (MPI_Comm_split of MPI_COMM_WORLD)%s", when);
        trit_comm_wait_begin(c, what);
        e = MPI_Comm_split(MPI_COMM_WORLD, p->split_color, rank, &im->comm);
    } else {
        snprintf(what, sizeof what, "communicator creation (MPI_Comm_dup of MPI_COMM_WORLD)%s", when);
        trit_comm_wait_begin(c, what);
        e = MPI_Comm_dup(MPI_COMM_WORLD, &im->comm);
    }
    trit_comm_wait_end(c);
    TRIT_MPI_CHECK(e);
    TRIT_MPI_CHECK(MPI_Comm_set_errhandler(im->comm, MPI_ERRORS_RETURN));
    TRIT_MPI_CHECK(MPI_Comm_rank(im->comm, &rank));
    TRIT_MPI_CHECK(MPI_Comm_size(im->comm, &size));
    set_rank(c, rank, size);
    MPI_Comm node = MPI_COMM_NULL;
    snprintf(what, sizeof what, "node split (MPI_Comm_split_type)%s", when);
    trit_comm_wait_begin(c, what);
    e = MPI_Comm_split_type(im->comm, MPI_COMM_TYPE_SHARED, 0, MPI_INFO_NULL, &node);
    trit_comm_wait_end(c);
    TRIT_MPI_CHECK(e);
    int local = 1, local_rank = 0;
    e = MPI_Comm_size(node, &local);
    if (e == MPI_SUCCESS) e = MPI_Comm_rank(node, &local_rank);
    MPI_Comm_free(&node);
    TRIT_MPI_CHECK(e);
    c->local_size = local;
    c->local_rank = local_rank;
    return TRIT_OK;
}

bool trit_comm_mpi_compiled(void) { return true; }

/* when: "" or where the call is, for the watchdog's message (" at exit, before MPI_Finalize"). */
static enum trit_status mpi_create(const struct trit_comm_params *p, const char *when, struct trit_comm **out) {
    *out = NULL;
    struct trit_comm *c;
    TRIT_TRY(trit_comm_alloc(p, &c));
    c->ops = &mpi_ops;
    c->backend = TRIT_COMM_MPI;
    enum trit_status st = mpi_ensure_init(c->timeout_ms);
    if (st != TRIT_OK) {
        trit_comm_free(c);
        return st;
    }
    struct mpi_impl *im = trit_alloc(sizeof *im);
    if (!im) {
        st = trit_error(TRIT_ERR_OUT_OF_MEMORY, "tensor parallel: out of memory");
    } else {
        im->comm = MPI_COMM_NULL;
        c->impl = im;
        st = trit_comm_start_watchdog(c);
    }
    if (st == TRIT_OK) st = mpi_setup(c, p, when);
    if (st != TRIT_OK) {
        trit_comm_free(c);
        return st;
    }
    atomic_store(&g_mpi_timeout_ms, c->timeout_ms);
    *out = c;
    return TRIT_OK;
}

enum trit_status trit_comm_mpi_create(const struct trit_comm_params *p, struct trit_comm **out) {
    if (!out) return trit_error(TRIT_ERR_INVALID_ARG, "trit_comm_mpi_create: NULL argument");
    return mpi_create(p, "", out);
}

/* Every rank at exit: a barrier over a fresh duplicate of the world, both bounded by the watchdog. */
static enum trit_status mpi_exit_barrier(void) {
    struct trit_comm_params p = trit_comm_default_params();
    p.timeout_ms = atomic_load(&g_mpi_timeout_ms);
    struct trit_comm *c;
    TRIT_TRY(mpi_create(&p, " at exit, before MPI_Finalize", &c));
    trit_comm_wait_begin(c, "barrier at exit, before MPI_Finalize");
    const int e = MPI_Barrier(comm_of(c));
    trit_comm_wait_end(c);
    const enum trit_status st = e == MPI_SUCCESS ? TRIT_OK : mpi_fail(e, "MPI_Barrier(comm)", __FILE__, __LINE__);
    if (st != TRIT_OK) trit_comm_fail(c, st);
    trit_comm_free(c);
    return st;
}

#else /* !TRIT_HAVE_MPI */

bool trit_comm_mpi_compiled(void) { return false; }

enum trit_status trit_comm_mpi_create(const struct trit_comm_params *p, struct trit_comm **out) {
    (void)p;
    if (out) *out = NULL;
    return trit_error(TRIT_ERR_UNSUPPORTED,
                      "tensor parallel over MPI: this trit was built without MPI (install libopenmpi-dev and "
                      "configure with -DTRIT_MPI=ON)");
}

#endif /* TRIT_HAVE_MPI */
