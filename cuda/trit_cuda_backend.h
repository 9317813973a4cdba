/*
 * trit_cuda_backend.h: the one narrow C interface between host code and the CUDA backend
 * (cuda/backend*.cu) beyond the ops table of host/backend.h (trit_cuda_backend): what tests reach
 * and what host/tp/forward_tp_cuda.c needs to drive the ranks of tensor parallelism. C callable,
 * no CUDA types; it includes only the public trit.h. Host files include no other cuda/ header for
 * the backend, and the backend's own state (cuda/backend_internal.cuh) stays out of their sight.
 */
#ifndef TRIT_CUDA_BACKEND_H
#define TRIT_CUDA_BACKEND_H

#include <stdbool.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#include "trit.h" /* enum trit_status, enum trit_tp_quant */

/* Turns the CUDA graph of the single-token forward on (the default) or off; off also drops a
 * captured graph. state is what trit_cuda_backend.init returned. */
void trit_cuda_backend_set_graphs(void *state, bool enabled);
/* Whether the last forward call ran a captured graph (for tests of the capture path). */
bool trit_cuda_backend_last_call_graphed(const void *state);
/* Split-K factor of the decode attention chosen at init. */
int trit_cuda_backend_n_splits(const void *state);

/* ---- tensor parallelism: one rank (host/tp/forward_tp_cuda.c drives them) -------------------------
 * A CUDA backend state for rank trit_comm_rank(comm) of a NCCL group, on the calling thread's
 * current device (the communicator's): this rank's shards (host/tp/plan.h; query heads widened to
 * whole GQA groups, of which it keeps its own), the math of host/tp/tp.h, the collectives on the
 * communicator's stream, no CUDA graph. Free it and run it with trit_cuda_backend's free, forward,
 * forward_argmax, forward_topk, forward_batch and kv_copy (collective: every rank calls them in the
 * same order with the same arguments; logits may be NULL on ranks whose logits nobody reads; every
 * rank ends with the full logits on its device). */
struct trit_model;
struct trit_backend_config;
struct trit_comm;
enum trit_status trit_cuda_tp_rank_init(const struct trit_model *m, const struct trit_backend_config *cfg,
                                        struct trit_comm *comm, enum trit_tp_quant quant, void **state);
/* Every rank of a NCCL group, on its device, before any rank's init: one all-reduce of n_reduce
 * floats and one all-gather of n_gather floats a rank, so that NCCL allocates its buffers before the
 * arenas are checked against the free memory. On failure the group is aborted. */
enum trit_status trit_cuda_tp_warm_up(struct trit_comm *comm, int64_t n_reduce, int64_t n_gather);
/* Milliseconds the rank's collectives took on its stream (CUDA events around each), and tokens run. */
double trit_cuda_tp_comm_ms(const void *state);
int64_t trit_cuda_tp_tokens(const void *state);
/* ---- device memory beyond the arena ----------------------------------------------------------------
 * The backend allocates one arena and checks it against cudaMemGetInfo with room to spare: kernel
 * code, per-thread stacks, the driver's own (64 MiB); a NCCL rank also keeps 256 MiB for what NCCL
 * allocates after its warm-up collectives (buffers of protocols and algorithms they did not use;
 * docs/tensor-parallel.md "Device memory"). A NCCL group runs one all-reduce and one all-gather of
 * the forward pass's sizes before its ranks read the free memory (trit_cuda_tp_warm_up), which make
 * NCCL (2.22 and later allocate lazily) take its channel buffers first. */
#define TRIT_CUDA_HEADROOM_BYTES ((uint64_t)64 << 20)
#define TRIT_CUDA_TP_HEADROOM_BYTES ((uint64_t)256 << 20)
/* What the check asks to be free for an arena of `arena` bytes (saturating). */
static inline uint64_t trit_cuda_device_need(uint64_t arena, bool nccl) {
    const uint64_t room = TRIT_CUDA_HEADROOM_BYTES + (nccl ? TRIT_CUDA_TP_HEADROOM_BYTES : 0);
    return arena > UINT64_MAX - room ? UINT64_MAX : arena + room;
}

/* Makes dev the calling thread's current device (one host thread per GPU); 0 or the CUDA error
 * code (cuda/device.cu). */
int trit_cuda_set_device_impl(int dev);

#ifdef __cplusplus
}
#endif

#endif /* TRIT_CUDA_BACKEND_H */
