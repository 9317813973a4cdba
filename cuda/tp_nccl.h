/*
 * tp_nccl.h: the NCCL half of the tensor-parallel communicator, exported from tp_nccl.cu with C
 * linkage so that host/tp/comm_nccl.c can wrap it in a struct trit_comm without CUDA headers.
 * Compiled only when CMake found NCCL (TRIT_HAVE_NCCL). Buffers are device pointers (d_) of the
 * handle's device; every call sets that device on the calling thread first.
 *
 * Thread model: one host thread drives one handle. The comm.c watchdog may call
 * trit_nccl_async_error and trit_nccl_abort from its own thread: a mutex orders them against the
 * enqueues, and after an abort every call fails with TRIT_ERR_COMM.
 */
#ifndef TRIT_TP_NCCL_H
#define TRIT_TP_NCCL_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#include "tp/comm.h"

#define TRIT_NCCL_ID_BYTES 128 /* NCCL_UNIQUE_ID_BYTES, asserted in tp_nccl.cu */

struct trit_nccl;

/* The linked NCCL's version code (NCCL_VERSION(major, minor, patch)). */
enum trit_status trit_nccl_version(int *version);
/* A new ncclUniqueId (rank 0 of an MPI-bootstrapped group). */
enum trit_status trit_nccl_unique_id(uint8_t id[TRIT_NCCL_ID_BYTES]);
/* Rank `rank` of n_ranks on `device`, from the id every rank got. Non-blocking initialization
 * (NCCL >= 2.14) polled until done or timeout_ms, then ncclCommAbort. Owns a new stream. */
enum trit_status trit_nccl_init_rank(int device, int n_ranks, int rank, const uint8_t id[TRIT_NCCL_ID_BYTES],
                                     int timeout_ms, struct trit_nccl **out);
/* n ranks in this process, rank i on devices[i] (ncclCommInitAll). out has n entries, all NULL on
 * failure. timeout_ms bounds the polling of later calls. */
enum trit_status trit_nccl_init_all(int n, const int *devices, int timeout_ms, struct trit_nccl **out);

/* Enqueued on the handle's stream; complete at trit_nccl_sync. */
enum trit_status trit_nccl_allreduce(struct trit_nccl *h, void *d_buf, int64_t n, enum trit_comm_dtype dtype,
                                     enum trit_comm_op op);
enum trit_status trit_nccl_allgather(struct trit_nccl *h, const void *d_send, void *d_recv, int64_t n,
                                     enum trit_comm_dtype dtype);
enum trit_status trit_nccl_broadcast(struct trit_nccl *h, void *d_buf, int64_t n_bytes, int root);
/* An all-reduce of one int followed by a sync. */
enum trit_status trit_nccl_barrier(struct trit_nccl *h, int timeout_ms);
/* Waits for the stream, polling ncclCommGetAsyncError; aborts the communicator after timeout_ms. */
enum trit_status trit_nccl_sync(struct trit_nccl *h, int timeout_ms);
/* TRIT_OK, or TRIT_ERR_COMM when NCCL reports an asynchronous error (or the handle was aborted). */
enum trit_status trit_nccl_async_error(struct trit_nccl *h);
/* ncclCommAbort once; safe from any thread. */
void trit_nccl_abort(struct trit_nccl *h);
/* ncclCommDestroy (ncclCommAbort when broken) and the stream. Accepts NULL. */
void trit_nccl_free(struct trit_nccl *h);
void *trit_nccl_stream(struct trit_nccl *h);

#ifdef __cplusplus
}
#endif

#endif /* TRIT_TP_NCCL_H */
