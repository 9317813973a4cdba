/*
 * comm.h: the tensor-parallel communicator (docs/tensor-parallel.md). One handle is one rank's end of
 * a group of ranks that run collectives together:
 *
 *   MPI   CPU ranks, one process each (mpirun -np N, one node or several): comm_mpi.c
 *   NCCL  GPU ranks: one process driving N devices (one host thread per device), or one process
 *         per device bootstrapped over MPI (the ncclUniqueId is broadcast): comm_nccl.c and
 *         cuda/tp_nccl.cu
 *   self  one rank, host memory: every collective is what it is over one rank (an all-reduce leaves
 *         the buffer as it is, an all-gather copies), with no timing, watchdog or statistics. The
 *         one-process CPU backend runs on it: one device is tensor parallelism with one rank
 *         (comm_self.c).
 *
 * Memory: the buffers of a collective live where the communicator computes: host memory for MPI,
 * device memory of the rank's GPU for NCCL. MPI collectives are complete when they return. NCCL
 * collectives are enqueued on trit_comm_stream(c) and complete at trit_comm_sync(c) (or later
 * stream work); the buffers must stay valid until then.
 *
 * Every rank of a group must call the same collectives in the same order with the same counts.
 * A NCCL group driven by one process needs one host thread per device: a collective completes only
 * after every rank has called it.
 *
 * Failure and timeout: a collective that fails returns TRIT_ERR_COMM with the MPI or NCCL statement,
 * file and line in trit_last_error(), and the communicator is then "broken" (every later call fails
 * at once). A collective that has not completed after timeout_ms (a peer died or hung) is ended by
 * a watchdog thread: it logs one error line naming the collective and its call site, then calls
 * MPI_Abort (which ends every rank of the job; the process does not return) or ncclCommAbort (the
 * waiting call then returns TRIT_ERR_COMM). MPI_Abort from the watchdog thread is the only way out
 * of a blocking MPI collective (Open MPI busy-polls inside it and never returns). The same bound
 * covers the other calls in which MPI waits for every rank: creating a communicator, MPI_Init
 * (before which MPI_Abort is not allowed: the timer _exits with TRIT_COMM_ABORT_CODE, the one exit
 * in the library) and, in a process that initialized MPI itself through this module, exit: there a
 * bounded barrier precedes MPI_Finalize (which has no timeout), or MPI_Abort replaces it when one of
 * its communicators broke, so that no rank waits for a dead or stopped peer.
 *
 * Statistics: time spent inside collectives (and in trit_comm_sync), payload bytes and call counts,
 * per handle, for the backend's comm-time-per-token report.
 */
#ifndef TRIT_TP_COMM_H
#define TRIT_TP_COMM_H

#include <stdbool.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" { /* core.h is a C header without its own guard */
#endif

#include "core/core.h"

enum trit_comm_backend {
    TRIT_COMM_MPI = 0,
    TRIT_COMM_NCCL = 1,
    TRIT_COMM_SELF = 2,
};

enum trit_comm_dtype {
    TRIT_COMM_I32 = 0,
    TRIT_COMM_F32 = 1,
    TRIT_COMM_F64 = 2,
};

enum trit_comm_op {
    TRIT_COMM_SUM = 0,
    TRIT_COMM_MAX = 1,
};

/* Default collective timeout; TRIT_TP_TIMEOUT_MS in the environment overrides it. It must exceed
 * the longest time one rank can wait for another between two collectives (model loading skew). */
#define TRIT_COMM_TIMEOUT_MS_DEFAULT 60000
/* MPI_Abort's error code after a timeout (mpirun exits with it). */
#define TRIT_COMM_ABORT_CODE 75

struct trit_comm;

struct trit_comm_params {
    int timeout_ms;  /* 0 = $TRIT_TP_TIMEOUT_MS, else TRIT_COMM_TIMEOUT_MS_DEFAULT */
    int split_color; /* MPI only: -1 = every rank of MPI_COMM_WORLD; >= 0 = the ranks that pass the
                        same color form one group (MPI_Comm_split; collective over the world) */
};
struct trit_comm_params trit_comm_default_params(void);

/* ---- creation ----------------------------------------------------------------------------------- */

/* true when this build has the MPI communicator (TRIT_HAVE_MPI). */
bool trit_comm_mpi_compiled(void);
/* An MPI communicator over a duplicate of MPI_COMM_WORLD (or the split group). Initializes MPI
 * (MPI_THREAD_MULTIPLE) when nobody has, and then finalizes it at exit. Errors return rather than
 * abort (MPI_ERRORS_RETURN). TRIT_ERR_UNSUPPORTED without MPI. *out is NULL on failure. */
enum trit_status trit_comm_mpi_create(const struct trit_comm_params *p, struct trit_comm **out);

/* A communicator of one rank (rank 0 of 1, host memory). Never fails but for memory. */
enum trit_status trit_comm_self_create(struct trit_comm **out);

/* true when this build has the NCCL communicator (TRIT_HAVE_NCCL). */
bool trit_comm_nccl_compiled(void);
/* One process per GPU: every rank of `boot` (an MPI communicator, host memory) calls this with the
 * CUDA device it drives; rank 0 makes the ncclUniqueId and broadcasts it over `boot`. The NCCL
 * rank and size equal boot's. Initialization is non-blocking and bounded by the timeout. */
enum trit_status trit_comm_nccl_create_mpi(struct trit_comm *boot, int device, const struct trit_comm_params *p,
                                           struct trit_comm **out);
/* One process driving n devices (ncclCommInitAll): out[i] is rank i on devices[i]. Drive each from
 * its own host thread. On failure every out[i] is NULL. */
enum trit_status trit_comm_nccl_create_all(int n, const int *devices, const struct trit_comm_params *p,
                                           struct trit_comm **out);

/* Stops the watchdog and releases the communicator (not MPI itself: see above). Accepts NULL. */
void trit_comm_free(struct trit_comm *c);

/* ---- properties --------------------------------------------------------------------------------- */

int trit_comm_rank(const struct trit_comm *c);
int trit_comm_size(const struct trit_comm *c);
/* Ranks of this group on this node (MPI_COMM_TYPE_SHARED), for splitting the cores; 1 for NCCL. */
int trit_comm_local_size(const struct trit_comm *c);
/* This rank's index among those ranks (MPI; 0 for NCCL): which GPU of its node it takes. */
int trit_comm_local_rank(const struct trit_comm *c);
enum trit_comm_backend trit_comm_backend(const struct trit_comm *c);
int trit_comm_timeout_ms(const struct trit_comm *c);
/* The cudaStream_t (as void *) NCCL collectives are ordered on; NULL for MPI. */
void *trit_comm_stream(const struct trit_comm *c);
/* true once a collective failed or timed out. */
bool trit_comm_broken(const struct trit_comm *c);

/* ---- collectives -------------------------------------------------------------------------------
 * Called through the macros, which record the call site for error and timeout messages.
 * Counts are elements of dtype, except broadcast (bytes). n == 0 is a no-op that still checks the
 * arguments. */

/* buf[0..n) = op over ranks of buf[0..n), in place. SUM and MAX on I32, F32 and F64. */
#define trit_comm_allreduce(c, buf, n, dtype, op) trit_comm_allreduce_at((c), (buf), (n), (dtype), (op), __FILE__, __LINE__)
/* recv (size, n) = every rank's send (n), in rank order. send and recv must not overlap. */
#define trit_comm_allgather(c, send, recv, n, dtype) trit_comm_allgather_at((c), (send), (recv), (n), (dtype), __FILE__, __LINE__)
/* buf[0..n_bytes) of rank root, copied to every rank. */
#define trit_comm_broadcast(c, buf, n_bytes, root) trit_comm_broadcast_at((c), (buf), (n_bytes), (root), __FILE__, __LINE__)
/* A broadcast for a rank that waits for root's next request, however long that takes (a server's
 * followers between two steps): the wait is not bounded by the timeout, not counted in the
 * statistics, and sleeps between polls (at most 1 ms) instead of spinning. MPI only (and one rank,
 * where it is nothing); every rank of the group calls it for the same message, root included (it
 * does not match trit_comm_broadcast). */
#define trit_comm_broadcast_idle(c, buf, n_bytes, root) trit_comm_broadcast_idle_at((c), (buf), (n_bytes), (root), __FILE__, __LINE__)
/* Returns when every rank has entered the barrier. */
#define trit_comm_barrier(c) trit_comm_barrier_at((c), __FILE__, __LINE__)
/* Waits until the enqueued collectives are complete (NCCL); nothing to do for MPI. */
#define trit_comm_sync(c) trit_comm_sync_at((c), __FILE__, __LINE__)

enum trit_status trit_comm_allreduce_at(struct trit_comm *c, void *buf, int64_t n, enum trit_comm_dtype dtype,
                                        enum trit_comm_op op, const char *file, int line);
enum trit_status trit_comm_allgather_at(struct trit_comm *c, const void *send, void *recv, int64_t n,
                                        enum trit_comm_dtype dtype, const char *file, int line);
enum trit_status trit_comm_broadcast_at(struct trit_comm *c, void *buf, int64_t n_bytes, int root, const char *file,
                                        int line);
enum trit_status trit_comm_broadcast_idle_at(struct trit_comm *c, void *buf, int64_t n_bytes, int root,
                                             const char *file, int line);
enum trit_status trit_comm_barrier_at(struct trit_comm *c, const char *file, int line);
enum trit_status trit_comm_sync_at(struct trit_comm *c, const char *file, int line);

/* Ends the whole group now, from any thread: logs `why`, marks c broken, then MPI_Abort (every
 * rank of the job ends; does not return) or ncclCommAbort (pending and later calls fail). */
void trit_comm_abort(struct trit_comm *c, const char *why);

/* ---- statistics --------------------------------------------------------------------------------- */

struct trit_comm_stats {
    int64_t time_us; /* wall time inside collectives and syncs */
    int64_t n_calls; /* collectives (syncs not counted) */
    int64_t bytes;   /* payload: allreduce n, allgather size * n, broadcast n_bytes (element bytes) */
};
void trit_comm_get_stats(const struct trit_comm *c, struct trit_comm_stats *out);
void trit_comm_reset_stats(struct trit_comm *c);

/* Bytes of one element. */
int64_t trit_comm_dtype_bytes(enum trit_comm_dtype dtype);
const char *trit_comm_dtype_name(enum trit_comm_dtype dtype);
const char *trit_comm_op_name(enum trit_comm_op op);

#ifdef __cplusplus
}
#endif

#endif /* TRIT_TP_COMM_H */
