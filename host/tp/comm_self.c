/*
 * comm_self.c: the communicator of one rank (comm.h). Tensor parallelism over one rank is the
 * plain model, so the one-process CPU backend runs its collectives here: an all-reduce over one
 * rank is the buffer itself (comm.c returns before reaching this file), an all-gather is a copy.
 * Nothing waits, so there is no watchdog and nothing to time.
 */
#include <string.h>

#include "tp/comm_internal.h"

static enum trit_status self_allreduce(struct trit_comm *c, void *buf, int64_t n, enum trit_comm_dtype dtype,
                                       enum trit_comm_op op) {
    (void)c, (void)buf, (void)n, (void)dtype, (void)op;
    return TRIT_OK;
}

static enum trit_status self_allgather(struct trit_comm *c, const void *send, void *recv, int64_t n,
                                       enum trit_comm_dtype dtype) {
    (void)c;
    if (n > 0) memcpy(recv, send, (size_t)(n * trit_comm_dtype_bytes(dtype)));
    return TRIT_OK;
}

static enum trit_status self_broadcast(struct trit_comm *c, void *buf, int64_t n_bytes, int root) {
    (void)c, (void)buf, (void)n_bytes, (void)root;
    return TRIT_OK;
}

static enum trit_status self_barrier(struct trit_comm *c) {
    (void)c;
    return TRIT_OK;
}

static void self_abort(struct trit_comm *c) { (void)c; }

static const struct trit_comm_ops self_ops = {
    .name = "self",
    .allreduce = self_allreduce,
    .allgather = self_allgather,
    .broadcast = self_broadcast,
    .barrier = self_barrier,
    .abort = self_abort,
};

enum trit_status trit_comm_self_create(struct trit_comm **out) {
    if (!out) return trit_error(TRIT_ERR_INVALID_ARG, "trit_comm_self_create: NULL argument");
    const struct trit_comm_params p = {.timeout_ms = TRIT_COMM_TIMEOUT_MS_DEFAULT}; /* nothing waits: no $TRIT_TP_TIMEOUT_MS */
    TRIT_TRY(trit_comm_alloc(&p, out));
    (*out)->ops = &self_ops;
    (*out)->backend = TRIT_COMM_SELF;
    (*out)->rank = 0;
    (*out)->size = 1;
    (*out)->local_size = 1;
    return TRIT_OK;
}
