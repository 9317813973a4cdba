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
 * finalizes at exit, or aborts at exit when a communicator broke, so that no rank is left waiting.
 */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

static void mpi_at_exit(void) {
    int finalized = 0;
    MPI_Finalized(&finalized);
    if (finalized) return;
    if (atomic_load(&g_mpi_broken)) MPI_Abort(MPI_COMM_WORLD, TRIT_COMM_ABORT_CODE);
    MPI_Finalize();
}

static enum trit_status mpi_ensure_init(void) {
    enum trit_status st = TRIT_OK;
    pthread_mutex_lock(&g_mpi_mu);
    int inited = 0, finalized = 0;
    MPI_Initialized(&inited);
    MPI_Finalized(&finalized);
    if (finalized) {
        st = trit_error(TRIT_ERR_COMM, "tensor parallel: MPI was already finalized in this process");
    } else if (!inited) {
        int provided = 0;
        int e = MPI_Init_thread(NULL, NULL, MPI_THREAD_MULTIPLE, &provided);
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
    .barrier = mpi_barrier,
    .sync = NULL,
    .poll = NULL,
    .abort = mpi_abort,
    .destroy = mpi_destroy,
};

static enum trit_status mpi_setup(struct trit_comm *c, const struct trit_comm_params *p) {
    struct mpi_impl *im = c->impl;
    if (p && p->split_color >= 0) {
        int world_rank = 0;
        TRIT_MPI_CHECK(MPI_Comm_rank(MPI_COMM_WORLD, &world_rank));
        TRIT_MPI_CHECK(MPI_Comm_split(MPI_COMM_WORLD, p->split_color, world_rank, &im->comm));
    } else {
        TRIT_MPI_CHECK(MPI_Comm_dup(MPI_COMM_WORLD, &im->comm));
    }
    TRIT_MPI_CHECK(MPI_Comm_set_errhandler(im->comm, MPI_ERRORS_RETURN));
    TRIT_MPI_CHECK(MPI_Comm_rank(im->comm, &c->rank));
    TRIT_MPI_CHECK(MPI_Comm_size(im->comm, &c->size));
    MPI_Comm node = MPI_COMM_NULL;
    TRIT_MPI_CHECK(MPI_Comm_split_type(im->comm, MPI_COMM_TYPE_SHARED, 0, MPI_INFO_NULL, &node));
    int local = 1, local_rank = 0;
    int e = MPI_Comm_size(node, &local);
    if (e == MPI_SUCCESS) e = MPI_Comm_rank(node, &local_rank);
    MPI_Comm_free(&node);
    TRIT_MPI_CHECK(e);
    c->local_size = local;
    c->local_rank = local_rank;
    return TRIT_OK;
}

bool trit_comm_mpi_compiled(void) { return true; }

enum trit_status trit_comm_mpi_create(const struct trit_comm_params *p, struct trit_comm **out) {
    if (!out) return trit_error(TRIT_ERR_INVALID_ARG, "trit_comm_mpi_create: NULL argument");
    *out = NULL;
    TRIT_TRY(mpi_ensure_init());
    struct trit_comm *c;
    TRIT_TRY(trit_comm_alloc(p, &c));
    c->ops = &mpi_ops;
    c->backend = TRIT_COMM_MPI;
    struct mpi_impl *im = trit_alloc(sizeof *im);
    enum trit_status st = TRIT_OK;
    if (!im) {
        st = trit_error(TRIT_ERR_OUT_OF_MEMORY, "tensor parallel: out of memory");
    } else {
        im->comm = MPI_COMM_NULL;
        c->impl = im;
        st = mpi_setup(c, p);
    }
    if (st == TRIT_OK) st = trit_comm_start_watchdog(c);
    if (st != TRIT_OK) {
        trit_comm_free(c);
        return st;
    }
    *out = c;
    return TRIT_OK;
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
