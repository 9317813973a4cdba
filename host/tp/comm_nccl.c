/*
 * comm_nccl.c: the NCCL communicator (comm.h) for GPU ranks, as a struct trit_comm over the C
 * entry points of cuda/tp_nccl.cu (no CUDA header here). Two ways to build a group:
 *
 *   one process, N GPUs     trit_comm_nccl_create_all: ncclCommInitAll; one host thread per device
 *   one process per GPU     trit_comm_nccl_create_mpi: rank 0's ncclUniqueId is broadcast over an
 *                           MPI communicator (any number of nodes: mpirun -np 16 -H a:8,b:8 ...)
 *
 * Timeouts: every wait (trit_comm_sync, barrier) polls ncclCommGetAsyncError and aborts the NCCL
 * communicator after the timeout; comm.c's watchdog also polls it between calls and calls
 * ncclCommAbort on an asynchronous error or an overlong wait. A process-per-GPU job should then
 * end its MPI bootstrap communicator too (trit_comm_abort), which ends every rank.
 */
#include <stdio.h>

#include "tp/comm_internal.h"

#ifdef TRIT_HAVE_NCCL

#include "tp_nccl.h"

static struct trit_nccl *h_of(struct trit_comm *c) { return c->impl; }

static enum trit_status nccl_allreduce(struct trit_comm *c, void *buf, int64_t n, enum trit_comm_dtype dtype,
                                       enum trit_comm_op op) {
    return trit_nccl_allreduce(h_of(c), buf, n, dtype, op);
}
static enum trit_status nccl_allgather(struct trit_comm *c, const void *send, void *recv, int64_t n,
                                       enum trit_comm_dtype dtype) {
    return trit_nccl_allgather(h_of(c), send, recv, n, dtype);
}
static enum trit_status nccl_broadcast(struct trit_comm *c, void *buf, int64_t n_bytes, int root) {
    return trit_nccl_broadcast(h_of(c), buf, n_bytes, root);
}
static enum trit_status nccl_barrier(struct trit_comm *c) { return trit_nccl_barrier(h_of(c), c->timeout_ms); }
static enum trit_status nccl_sync(struct trit_comm *c) { return trit_nccl_sync(h_of(c), c->timeout_ms); }
static enum trit_status nccl_poll(struct trit_comm *c) { return trit_nccl_async_error(h_of(c)); }
static void nccl_abort(struct trit_comm *c) { trit_nccl_abort(h_of(c)); }
static void nccl_destroy(struct trit_comm *c) {
    trit_nccl_free(h_of(c));
    c->impl = NULL;
}

static const struct trit_comm_ops nccl_ops = {
    .name = "NCCL",
    .allreduce = nccl_allreduce,
    .allgather = nccl_allgather,
    .broadcast = nccl_broadcast,
    .barrier = nccl_barrier,
    .sync = nccl_sync,
    .poll = nccl_poll,
    .abort = nccl_abort,
    .destroy = nccl_destroy,
};

/* Wraps a handle; frees it on failure. */
static enum trit_status wrap(struct trit_nccl *h, int rank, int size, const struct trit_comm_params *p,
                             struct trit_comm **out) {
    struct trit_comm *c;
    enum trit_status st = trit_comm_alloc(p, &c);
    if (st != TRIT_OK) {
        trit_nccl_free(h);
        return st;
    }
    c->ops = &nccl_ops;
    c->backend = TRIT_COMM_NCCL;
    c->impl = h;
    c->rank = rank;
    c->size = size;
    c->stream = trit_nccl_stream(h);
    st = trit_comm_start_watchdog(c);
    if (st != TRIT_OK) {
        trit_comm_free(c);
        return st;
    }
    *out = c;
    return TRIT_OK;
}

bool trit_comm_nccl_compiled(void) { return true; }

enum trit_status trit_comm_nccl_create_mpi(struct trit_comm *boot, int device, const struct trit_comm_params *p,
                                           struct trit_comm **out) {
    if (!boot || !out) return trit_error(TRIT_ERR_INVALID_ARG, "trit_comm_nccl_create_mpi: NULL argument");
    *out = NULL;
    if (trit_comm_backend(boot) != TRIT_COMM_MPI)
        return trit_error(TRIT_ERR_INVALID_ARG, "trit_comm_nccl_create_mpi: the bootstrap communicator must be MPI (host memory)");
    uint8_t id[TRIT_NCCL_ID_BYTES] = {0};
    enum trit_status st = TRIT_OK;
    if (trit_comm_rank(boot) == 0) st = trit_nccl_unique_id(id);
    /* Every rank takes part in the broadcast, so a rank 0 failure still releases the others: it
     * broadcasts a zero id, which they refuse below. */
    const enum trit_status bst = trit_comm_broadcast(boot, id, TRIT_NCCL_ID_BYTES, 0);
    if (st != TRIT_OK) return st;
    TRIT_TRY(bst);
    bool any = false;
    for (int i = 0; i < TRIT_NCCL_ID_BYTES; i++) any |= id[i] != 0;
    if (!any) return trit_error(TRIT_ERR_COMM, "tensor parallel: rank 0 could not create the NCCL unique id");
    struct trit_comm_params pp = p ? *p : trit_comm_default_params();
    if (pp.timeout_ms <= 0) pp.timeout_ms = trit_comm_timeout_ms(boot);
    struct trit_nccl *h;
    TRIT_TRY(trit_nccl_init_rank(device, trit_comm_size(boot), trit_comm_rank(boot), id, pp.timeout_ms, &h));
    return wrap(h, trit_comm_rank(boot), trit_comm_size(boot), &pp, out);
}

enum trit_status trit_comm_nccl_create_all(int n, const int *devices, const struct trit_comm_params *p,
                                           struct trit_comm **out) {
    if (!devices || !out || n < 1 || n > 64)
        return trit_error(TRIT_ERR_INVALID_ARG, "trit_comm_nccl_create_all: %d devices (1..64) or NULL argument", n);
    for (int i = 0; i < n; i++) out[i] = NULL;
    struct trit_comm *probe; /* resolves the timeout the way every communicator does */
    TRIT_TRY(trit_comm_alloc(p, &probe));
    const int timeout_ms = probe->timeout_ms;
    trit_comm_free(probe);
    struct trit_nccl *h[64];
    TRIT_TRY(trit_nccl_init_all(n, devices, timeout_ms, h));
    const struct trit_comm_params pp = {.timeout_ms = timeout_ms, .split_color = -1};
    enum trit_status st = TRIT_OK;
    for (int i = 0; i < n; i++) {
        if (st == TRIT_OK) st = wrap(h[i], i, n, &pp, &out[i]);
        else trit_nccl_free(h[i]);
    }
    if (st != TRIT_OK)
        for (int i = 0; i < n; i++) {
            trit_comm_free(out[i]);
            out[i] = NULL;
        }
    return st;
}

#else /* !TRIT_HAVE_NCCL */

bool trit_comm_nccl_compiled(void) { return false; }

static enum trit_status no_nccl(void) {
#ifdef TRIT_HAVE_CUDA
    return trit_error(TRIT_ERR_UNSUPPORTED, "tensor parallel over NCCL: CMake did not find NCCL (nccl.h and libnccl) "
                                            "beside the CUDA toolkit; set NCCL_HOME and reconfigure");
#else
    return trit_error(TRIT_ERR_UNSUPPORTED, "tensor parallel over NCCL: this trit was built without CUDA");
#endif
}

enum trit_status trit_comm_nccl_create_mpi(struct trit_comm *boot, int device, const struct trit_comm_params *p,
                                           struct trit_comm **out) {
    (void)boot, (void)device, (void)p;
    if (out) *out = NULL;
    return no_nccl();
}

enum trit_status trit_comm_nccl_create_all(int n, const int *devices, const struct trit_comm_params *p,
                                           struct trit_comm **out) {
    (void)devices, (void)p;
    if (out)
        for (int i = 0; i < n && i < 64; i++) out[i] = NULL;
    return no_nccl();
}

#endif /* TRIT_HAVE_NCCL */
