/*
 * tp_nccl.cu: NCCL communicators for tensor parallelism across GPUs (tp_nccl.h). Every NCCL call
 * goes through TRIT_NCCL_CHECK, which records "file:line: statement: NCCL error (last error)" and
 * returns TRIT_ERR_COMM; CUDA calls go through TRIT_CUDA_CHECK (cuda_check.h).
 *
 * Without NCCL (TRIT_HAVE_NCCL unset) this file compiles to nothing and comm_nccl.c reports
 * TRIT_ERR_UNSUPPORTED.
 */
#ifdef TRIT_HAVE_NCCL

#include <cuda_runtime.h>
#include <nccl.h>
#include <stdint.h>
#include <string.h>
#include <time.h>

#include <atomic>
#include <mutex>
#include <new>

#include "cuda_check.h"
#include "tp_nccl.h"

static_assert(TRIT_NCCL_ID_BYTES == NCCL_UNIQUE_ID_BYTES, "ncclUniqueId size");

/* ---- the check macro ---------------------------------------------------------------------------- */

static enum trit_status nccl_fail(ncclResult_t r, ncclComm_t comm, const char *stmt, const char *file, int line) {
    const char *base = strrchr(file, '/');
#if NCCL_VERSION_CODE >= NCCL_VERSION(2, 13, 0)
    const char *last = ncclGetLastError(comm);
#else
    (void)comm;
    const char *last = "";
#endif
    return trit_error(TRIT_ERR_COMM, "%s:%d: %s: %s%s%s", base ? base + 1 : file, line, stmt, ncclGetErrorString(r),
                      last && *last ? ": " : "", last ? last : "");
}

/* NCCL_CHECK for calls that may report ncclInProgress on a non-blocking communicator: that is
 * settled by the caller (settle()), anything else but success fails. */
#define TRIT_NCCL_CHECK_COMM(call, comm)                                                           \
    do {                                                                                           \
        const ncclResult_t trit_nccl_r_ = (call);                                                  \
        if (trit_nccl_r_ != ncclSuccess && trit_nccl_r_ != ncclInProgress)                         \
            return nccl_fail(trit_nccl_r_, (comm), #call, __FILE__, __LINE__);                     \
    } while (0)
#define TRIT_NCCL_CHECK(call) TRIT_NCCL_CHECK_COMM(call, nullptr)

struct trit_nccl {
    ncclComm_t comm;
    cudaStream_t stream;
    int device, rank, n_ranks;
    int timeout_ms; /* bound on polling a non-blocking call to completion */
    int *d_scratch; /* one int for the barrier */
    std::mutex mu;  /* orders enqueues, async-error polls and the abort */
    std::atomic<bool> aborted;
};

static int64_t now_us(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static void sleep_us(long us) {
    struct timespec ts = {0, us * 1000L};
    nanosleep(&ts, nullptr);
}

/* Non-blocking communicators: poll until the last call is done (not ncclInProgress). */
static enum trit_status settle(trit_nccl *h, int timeout_ms) {
    const int64_t t0 = now_us();
    for (;;) {
        ncclResult_t state = ncclSuccess;
        TRIT_NCCL_CHECK_COMM(ncclCommGetAsyncError(h->comm, &state), h->comm);
        if (state == ncclSuccess) return TRIT_OK;
        if (state != ncclInProgress)
            return nccl_fail(state, h->comm, "ncclCommGetAsyncError(comm, &state)", __FILE__, __LINE__);
        if (now_us() - t0 > (int64_t)timeout_ms * 1000)
            return trit_error(TRIT_ERR_COMM, "NCCL rank %d of %d: a call did not complete within %d ms",
                              h->rank, h->n_ranks, timeout_ms);
        sleep_us(100);
    }
}

static ncclDataType_t nccl_type(enum trit_comm_dtype t) {
    switch (t) {
    case TRIT_COMM_I32: return ncclInt32;
    case TRIT_COMM_F32: return ncclFloat32;
    case TRIT_COMM_F64: return ncclFloat64;
    }
    return ncclInt8;
}

static enum trit_status aborted_error(const trit_nccl *h) {
    return trit_error(TRIT_ERR_COMM, "NCCL rank %d of %d: the communicator was aborted", h->rank, h->n_ranks);
}

static enum trit_status new_handle(int device, int rank, int n_ranks, int timeout_ms, trit_nccl **out) {
    *out = nullptr;
    trit_nccl *h = new (std::nothrow) trit_nccl();
    if (!h) return trit_error(TRIT_ERR_OUT_OF_MEMORY, "NCCL: out of memory");
    h->device = device;
    h->rank = rank;
    h->n_ranks = n_ranks;
    h->timeout_ms = timeout_ms;
    h->aborted = false;
    enum trit_status st = TRIT_OK;
    TRIT_CUDA_CHECK_GOTO(cudaSetDevice(device), st, fail);
    TRIT_CUDA_CHECK_GOTO(cudaStreamCreateWithFlags(&h->stream, cudaStreamNonBlocking), st, fail);
    TRIT_CUDA_CHECK_GOTO(cudaMalloc((void **)&h->d_scratch, sizeof(int)), st, fail);
    *out = h;
    return TRIT_OK;
fail:
    if (h->stream) cudaStreamDestroy(h->stream);
    delete h;
    return st;
}

/* ---- creation ---------------------------------------------------------------------------------- */

extern "C" enum trit_status trit_nccl_version(int *version) {
    TRIT_NCCL_CHECK(ncclGetVersion(version));
    return TRIT_OK;
}

extern "C" enum trit_status trit_nccl_unique_id(uint8_t id[TRIT_NCCL_ID_BYTES]) {
    ncclUniqueId uid;
    TRIT_NCCL_CHECK(ncclGetUniqueId(&uid));
    memcpy(id, uid.internal, TRIT_NCCL_ID_BYTES);
    return TRIT_OK;
}

extern "C" enum trit_status trit_nccl_init_rank(int device, int n_ranks, int rank, const uint8_t id[TRIT_NCCL_ID_BYTES],
                                                int timeout_ms, struct trit_nccl **out) {
    trit_nccl *h;
    TRIT_TRY(new_handle(device, rank, n_ranks, timeout_ms, &h));
    ncclUniqueId uid;
    memcpy(uid.internal, id, TRIT_NCCL_ID_BYTES);
    enum trit_status st = TRIT_OK;
    ncclResult_t r;
#if NCCL_VERSION_CODE >= NCCL_VERSION(2, 14, 0)
    ncclConfig_t config = NCCL_CONFIG_INITIALIZER;
    config.blocking = 0; /* a peer that never arrives must not hang the init: poll with a timeout */
    r = ncclCommInitRankConfig(&h->comm, n_ranks, uid, rank, &config);
    if (r != ncclSuccess && r != ncclInProgress)
        st = nccl_fail(r, h->comm, "ncclCommInitRankConfig(&h->comm, n_ranks, uid, rank, &config)", __FILE__, __LINE__);
    else
        st = settle(h, timeout_ms);
#else
    (void)timeout_ms;
    r = ncclCommInitRank(&h->comm, n_ranks, uid, rank);
    if (r != ncclSuccess) st = nccl_fail(r, nullptr, "ncclCommInitRank(&h->comm, n_ranks, uid, rank)", __FILE__, __LINE__);
#endif
    if (st != TRIT_OK) {
        if (h->comm) {
            ncclCommAbort(h->comm);
            h->comm = nullptr;
        }
        trit_nccl_free(h);
        return st;
    }
    *out = h;
    return TRIT_OK;
}

extern "C" enum trit_status trit_nccl_init_all(int n, const int *devices, int timeout_ms, struct trit_nccl **out) {
    for (int i = 0; i < n; i++) out[i] = nullptr;
    ncclComm_t comms[64];
    if (n < 1 || n > 64) return trit_error(TRIT_ERR_INVALID_ARG, "NCCL: %d devices (1..64)", n);
    enum trit_status st = TRIT_OK;
    for (int i = 0; i < n && st == TRIT_OK; i++) st = new_handle(devices[i], i, n, timeout_ms, &out[i]);
    if (st == TRIT_OK) {
        const ncclResult_t r = ncclCommInitAll(comms, n, devices);
        if (r != ncclSuccess) st = nccl_fail(r, nullptr, "ncclCommInitAll(comms, n, devices)", __FILE__, __LINE__);
        else
            for (int i = 0; i < n; i++) out[i]->comm = comms[i];
    }
    if (st != TRIT_OK)
        for (int i = 0; i < n; i++) {
            trit_nccl_free(out[i]);
            out[i] = nullptr;
        }
    return st;
}

/* ---- collectives ------------------------------------------------------------------------------- */

extern "C" enum trit_status trit_nccl_allreduce(struct trit_nccl *h, void *d_buf, int64_t n, enum trit_comm_dtype dtype,
                                                enum trit_comm_op op) {
    std::lock_guard<std::mutex> lock(h->mu);
    if (h->aborted) return aborted_error(h);
    TRIT_CUDA_CHECK(cudaSetDevice(h->device));
    TRIT_NCCL_CHECK_COMM(ncclAllReduce(d_buf, d_buf, (size_t)n, nccl_type(dtype), op == TRIT_COMM_SUM ? ncclSum : ncclMax,
                                       h->comm, h->stream),
                         h->comm);
    return settle(h, h->timeout_ms);
}

extern "C" enum trit_status trit_nccl_allgather(struct trit_nccl *h, const void *d_send, void *d_recv, int64_t n,
                                                enum trit_comm_dtype dtype) {
    std::lock_guard<std::mutex> lock(h->mu);
    if (h->aborted) return aborted_error(h);
    TRIT_CUDA_CHECK(cudaSetDevice(h->device));
    TRIT_NCCL_CHECK_COMM(ncclAllGather(d_send, d_recv, (size_t)n, nccl_type(dtype), h->comm, h->stream), h->comm);
    return settle(h, h->timeout_ms);
}

extern "C" enum trit_status trit_nccl_broadcast(struct trit_nccl *h, void *d_buf, int64_t n_bytes, int root) {
    std::lock_guard<std::mutex> lock(h->mu);
    if (h->aborted) return aborted_error(h);
    TRIT_CUDA_CHECK(cudaSetDevice(h->device));
    TRIT_NCCL_CHECK_COMM(ncclBroadcast(d_buf, d_buf, (size_t)n_bytes, ncclUint8, root, h->comm, h->stream), h->comm);
    return settle(h, h->timeout_ms);
}

extern "C" enum trit_status trit_nccl_async_error(struct trit_nccl *h) {
    std::lock_guard<std::mutex> lock(h->mu);
    if (h->aborted) return aborted_error(h);
    ncclResult_t state = ncclSuccess;
    TRIT_NCCL_CHECK_COMM(ncclCommGetAsyncError(h->comm, &state), h->comm);
    if (state != ncclSuccess && state != ncclInProgress)
        return nccl_fail(state, h->comm, "ncclCommGetAsyncError(h->comm, &state)", __FILE__, __LINE__);
    return TRIT_OK;
}

extern "C" enum trit_status trit_nccl_sync(struct trit_nccl *h, int timeout_ms) {
    TRIT_CUDA_CHECK(cudaSetDevice(h->device));
    const int64_t t0 = now_us();
    for (;;) {
        const cudaError_t e = cudaStreamQuery(h->stream);
        if (e == cudaSuccess) return h->aborted ? aborted_error(h) : TRIT_OK;
        if (e != cudaErrorNotReady) TRIT_CUDA_CHECK(e);
        TRIT_TRY(trit_nccl_async_error(h));
        if (timeout_ms > 0 && now_us() - t0 > (int64_t)timeout_ms * 1000) {
            trit_nccl_abort(h);
            return trit_error(TRIT_ERR_COMM,
                              "NCCL rank %d of %d: collectives did not complete within %d ms (a peer died or hangs); "
                              "the communicator was aborted",
                              h->rank, h->n_ranks, timeout_ms);
        }
        sleep_us(20);
    }
}

extern "C" enum trit_status trit_nccl_barrier(struct trit_nccl *h, int timeout_ms) {
    TRIT_TRY(trit_nccl_allreduce(h, h->d_scratch, 1, TRIT_COMM_I32, TRIT_COMM_SUM));
    return trit_nccl_sync(h, timeout_ms);
}

extern "C" void trit_nccl_abort(struct trit_nccl *h) {
    if (!h) return;
    std::lock_guard<std::mutex> lock(h->mu);
    if (h->aborted.exchange(true) || !h->comm) return;
    (void)cudaSetDevice(h->device);
    (void)ncclCommAbort(h->comm); /* ends the kernels in flight; nothing is left to report to */
    h->comm = nullptr;
}

extern "C" void trit_nccl_free(struct trit_nccl *h) {
    if (!h) return;
    (void)cudaSetDevice(h->device);
    if (h->comm && !h->aborted) {
        /* A communicator with work in flight that never completes would hang ncclCommDestroy. */
        if (cudaStreamQuery(h->stream) == cudaSuccess) (void)ncclCommDestroy(h->comm);
        else (void)ncclCommAbort(h->comm);
    }
    if (h->d_scratch) (void)cudaFree(h->d_scratch);
    if (h->stream) (void)cudaStreamDestroy(h->stream);
    delete h;
}

extern "C" void *trit_nccl_stream(struct trit_nccl *h) { return (void *)h->stream; }

#endif /* TRIT_HAVE_NCCL */
