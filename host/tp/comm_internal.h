/*
 * comm_internal.h: what a communicator implementation fills in (comm_mpi.c, comm_nccl.c), and
 * the shared machinery of comm.c: argument checks, timing, statistics and the watchdog thread.
 * C only (C11 atomics); cuda/tp_nccl.cu sees its own header, tp_nccl.h.
 */
#ifndef TRIT_TP_COMM_INTERNAL_H
#define TRIT_TP_COMM_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>

#include "tp/comm.h"

/* The implementation's half. Arguments are checked by comm.c before these run; each returns
 * TRIT_ERR_COMM with the failing statement recorded (TRIT_MPI_CHECK / TRIT_NCCL_CHECK). */
struct trit_comm_ops {
    const char *name; /* "mpi", "nccl" */
    enum trit_status (*allreduce)(struct trit_comm *c, void *buf, int64_t n, enum trit_comm_dtype dtype,
                                  enum trit_comm_op op);
    enum trit_status (*allgather)(struct trit_comm *c, const void *send, void *recv, int64_t n,
                                  enum trit_comm_dtype dtype);
    enum trit_status (*broadcast)(struct trit_comm *c, void *buf, int64_t n_bytes, int root);
    /* NULL when the implementation has none (NCCL): trit_comm_broadcast_idle's unbounded, sleeping wait. */
    enum trit_status (*broadcast_idle)(struct trit_comm *c, void *buf, int64_t n_bytes, int root);
    enum trit_status (*barrier)(struct trit_comm *c);
    /* NULL when every call completes before it returns (MPI). */
    enum trit_status (*sync)(struct trit_comm *c);
    /* NULL or a check for errors raised outside any call (ncclCommGetAsyncError); the watchdog
     * calls it from its own thread. TRIT_OK when healthy. */
    enum trit_status (*poll)(struct trit_comm *c);
    /* Ends the group from any thread (MPI_Abort / ncclCommAbort). */
    void (*abort)(struct trit_comm *c);
    /* Releases impl (the watchdog is already stopped). */
    void (*destroy)(struct trit_comm *c);
};

struct trit_comm {
    const struct trit_comm_ops *ops;
    enum trit_comm_backend backend;
    int rank, size, local_size, local_rank;
    int timeout_ms;
    void *impl;   /* the implementation's state */
    void *stream; /* NCCL: cudaStream_t */

    /* The collective in flight, for the watchdog: busy_since_us is 0 when idle. desc_mu orders
     * busy_desc (written with busy_since_us when a wait starts, read by the watchdog with it),
     * broken_why (written once, with broken, by whichever thread fails first) and rank and size
     * when they change after the watchdog started (an MPI communicator's setup). */
    pthread_mutex_t desc_mu;
    _Atomic int64_t busy_since_us;
    char busy_desc[224];
    atomic_bool broken;
    char broken_why[256]; /* the first failure, for the errors of later calls */

    /* statistics; the thread that runs the collectives owns them */
    struct trit_comm_stats stats;

    /* watchdog thread */
    pthread_t watchdog;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool watchdog_running, stop;
};

/* Allocates a zeroed communicator with its timeout resolved from p and the environment. */
enum trit_status trit_comm_alloc(const struct trit_comm_params *p, struct trit_comm **out);
/* Starts the watchdog once ops, rank and size are set. */
enum trit_status trit_comm_start_watchdog(struct trit_comm *c);
/* A wait the watchdog bounds outside the collectives (an implementation's setup and teardown
 * calls, which are collective too): after timeout_ms between begin and end it reports
 * "<ops->name> <what> (called at file:line)" and aborts the group, as for a collective. Begin keeps
 * an earlier start that has not ended (NCCL's enqueue-to-sync). Needs the watchdog running. */
#define trit_comm_wait_begin(c, what) trit_comm_wait_begin_at((c), (what), __FILE__, __LINE__)
void trit_comm_wait_begin_at(struct trit_comm *c, const char *what, const char *file, int line);
void trit_comm_wait_end(struct trit_comm *c);
/* Marks c broken (first reason wins) and returns TRIT_ERR_COMM with trit_last_error() kept. */
enum trit_status trit_comm_fail(struct trit_comm *c, enum trit_status st);

#endif /* TRIT_TP_COMM_INTERNAL_H */
