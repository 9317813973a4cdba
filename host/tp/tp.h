/*
 * tp.h: the tensor-parallel CPU backend: the CPU backend (host/cpu/backend_cpu.c) as one rank of a
 * communicator (forward_tp.c makes the MPI one), running the one forward pass (host/forward.c) with
 * every layer sharded over the ranks (plan.h); one process is the same backend at one rank:
 *
 *   mpirun -np 4 trit run --tp-mpi [--tp-quant exact|grouped] -m model -p "..."
 *
 * Quantization modes (enum trit_tp_quant, trit.h; docs/tensor-parallel.md):
 *   exact    every statistic of a sharded row is global: the sub-norm's sum of squares (an
 *            all-gather of 16 bytes per rank and token, combined so that the result does not
 *            depend on the split: plan.h) and the activation absmax (an all-reduce max); weight
 *            alpha is the checkpoint's; row-parallel layers all-reduce their int32 accumulators
 *            before the epilogue. The accumulators equal trit_gemm_ref's for the same activations,
 *            and the logits of N ranks equal those of 1 rank bit for bit. Against the CPU backend:
 *            bit for bit for graphs without sub-norms (Llama; for SiLU when each rank's FFN width
 *            is a multiple of the vector width, docs/tensor-parallel.md); with sub-norms the CPU backend's
 *            float-lane sum of squares rounds differently (ops.c), so logits agree to float
 *            rounding and greedy tokens agree.
 *   grouped  each rank normalizes and quantizes its shard with the shard's own RMS and absmax, and
 *            (given float weights, trit_tp_config.floats) its own absmean alpha per shard;
 *            row-parallel layers all-reduce fp32 partial outputs. No other communication.
 *            A model that holds only ternary codes (every loaded checkpoint: trit_model keeps no
 *            float weights) keeps its checkpoint alpha. With 1 rank, grouped is the CPU
 *            backend: trit_cpu_backend is grouped mode on a communicator of one rank.
 * Per token and layer: 2 all-reduces of dim values (int32 exact, fp32 grouped); exact adds 2
 * all-reduces of one fp32 per token and, with sub-norms, 2 all-gathers of 16 bytes per token. The
 * LM head all-gathers the logits (vocab_stride fp32 per rank and token), so every rank holds the
 * full row and samples the same token with the same seed.
 *
 * Fault injection for tests: TRIT_TP_TEST_KILL_RANK=r makes rank r raise SIGKILL, and
 * TRIT_TP_TEST_HANG_RANK=r makes it sleep forever, in layer 0 of its second forward call, between
 * two collectives; the other ranks must end with a clear error within the timeout.
 */
#ifndef TRIT_TP_TP_H
#define TRIT_TP_TP_H

#include "backend.h"
#include "tp/comm.h"

/* The float weights the model was ternarized from: get returns matrix `which` of `layer`, row-major
 * (n_rows, n_cols) as in struct trit_ternary, or NULL when it has none. Read only during init. */
struct trit_tp_float_source {
    const float *(*get)(void *user, int64_t layer, enum trit_weight which);
    void *user;
};

struct trit_tp_config {
    enum trit_tp_quant quant;
    /* Borrowed communicator (any backend with host memory: MPI). NULL = create an MPI communicator
     * over MPI_COMM_WORLD, owned by the backend. */
    struct trit_comm *comm;
    int timeout_ms;      /* when creating: 0 = the default (comm.h) */
    int expect_ranks;    /* when creating: 0 = any; else the world must have this many ranks */
    /* grouped mode: per-shard alpha from these; NULL = the model's alpha */
    const struct trit_tp_float_source *floats;
};

/* Creates the backend state for this rank. Collective: every rank of the communicator calls it
 * with the same model and configuration (checked: a fingerprint of the shapes, the context and
 * the first weights is compared), and it fails on every rank when it fails on one.
 * cfg->n_threads 0 = the online cores divided by the ranks on this node. cfg->head_int8 is
 * TRIT_ERR_UNSUPPORTED. */
enum trit_status trit_tp_cpu_init(const struct trit_model *m, const struct trit_backend_config *cfg,
                                  const struct trit_tp_config *tp, void **state);

/* init (trit_tp_cpu_init over MPI_COMM_WORLD with cfg's tp_quant and tp_expect_ranks), forward,
 * free, describe, memory_bytes, tp_info. forward is collective too. The describe line includes the
 * time spent in collectives so far. */
extern const struct trit_backend_ops trit_tp_cpu_backend;

int trit_tp_rank(const void *state);
int trit_tp_size(const void *state);
/* Microseconds inside collectives since init (init's own excluded), and tokens run through
 * forward since init. */
int64_t trit_tp_comm_us(const void *state);
int64_t trit_tp_tokens(const void *state);

/* ---- GPUs: host/tp/forward_tp_cuda.c ----------------------------------------------------------
 * The CUDA backend's forward pass with the same sharding and the same two modes (cuda/backend.cu
 * with a communicator; trit_cuda_backend.h), over NCCL:
 *
 *   trit run --tp N -m model ...                      one process drives GPUs 0 .. N-1, one host
 *                                                     thread each (ncclCommInitAll)
 *   mpirun -np N trit run --tp-mpi --device cuda ...  one process per GPU (the rank's index on its
 *                                                     node picks the device), any number of nodes;
 *                                                     the ncclUniqueId goes over MPI
 *
 * Differences from the CPU ranks: a rank computes the query heads of whole GQA groups (the GPU
 * attention kernels map a query head to its KV head by division) and keeps its own; CUDA graphs
 * are off (the collectives run eagerly, each timed by CUDA events: trit_tp_cuda_comm_us). In exact
 * mode the logits of N GPUs equal those of 1 GPU bit for bit, as on CPU ranks (the head is the
 * backend's own fp32 GEMV for any number of rows, in pieces of 8). */
struct trit_tp_cuda_config {
    enum trit_tp_quant quant;
    int n_devices;  /* > 0: this process drives devices 0 .. n_devices - 1; 0: one GPU per MPI rank */
    int timeout_ms; /* collectives; 0 = the default (comm.h) */
    int expect_ranks; /* one GPU per MPI rank: 0 = any; else the job must have this many ranks */
};

/* true when this build has the CUDA backend and NCCL. */
bool trit_tp_cuda_compiled(void);
/* Creates the ranks (uploading every shard in parallel) and their communicator. With MPI it is
 * collective over MPI_COMM_WORLD and fails on every rank when it fails on one. */
enum trit_status trit_tp_cuda_init(const struct trit_model *m, const struct trit_backend_config *cfg,
                                   const struct trit_tp_cuda_config *tp, void **state);
/* init (trit_tp_cuda_init with cfg's tp_quant, tp_n_devices and tp_expect_ranks), forward (rank
 * 0's logits; every process's with MPI), forward_argmax, forward_topk, forward_batch and kv_copy
 * (several sequences over the paged cache, each rank the pool's blocks of its own KV heads; logits
 * as forward's), free, describe (with the communication time so far), memory_bytes (this process's
 * GPUs), tp_info. */
extern const struct trit_backend_ops trit_tp_cuda_backend;

/* This process's rank (0 with one process) and the number of GPU ranks. */
int trit_tp_cuda_rank(const void *state);
int trit_tp_cuda_size(const void *state);
/* Microseconds the collectives took on rank 0's (this process's) stream, and tokens run. */
int64_t trit_tp_cuda_comm_us(const void *state);
int64_t trit_tp_cuda_tokens(const void *state);

#endif /* TRIT_TP_TP_H */
