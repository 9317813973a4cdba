/*
 * backend.h: what a backend is. A small table of functions: create its state from a loaded model
 * (repacking weights once into its own layout, allocating the KV cache and every buffer), run a
 * batch of tokens at given positions, free. Each backend owns its fusions.
 */
#ifndef TRIT_BACKEND_H
#define TRIT_BACKEND_H

#include <stdbool.h>
#include <stdint.h>

#include "core/core.h"
#include "forward.h"
#include "model/model.h"

struct trit_comm;

struct trit_backend_config {
    int64_t n_ctx;     /* KV cache length in tokens */
    int64_t n_batch;   /* most tokens one forward call takes */
    int n_threads;     /* CPU threads (the CPU backend; others use one host thread) */
    bool logits_all;   /* keep logits for every token of a batch, not just the last */
    bool head_int8;    /* int8 LM head (opt-in; measured cost in docs) */
    bool head_q4;      /* 4-bit LM head (opt-in, CPU backend only; measured cost in docs) */
    uint64_t mem_limit; /* trit_context_params.mem_limit: 0 = what the machine has left */
    enum trit_cuda_gemv cuda_gemv; /* resolved by trit_context_init: ADD or DP4A, never AUTO */
    /* Tensor parallelism, read by the TP backends (trit_tp_cpu_backend, the CUDA module's
     * tp_backend) and ignored by the others: the quantization mode, the GPUs this process drives
     * (devices 0 .. tp_n_devices - 1; 0: one GPU per MPI rank) and the number of ranks the MPI job
     * must have (0: any). */
    enum trit_tp_quant tp_quant;
    int tp_n_devices;
    int tp_expect_ranks;
    /* The paged KV cache (backends with forward_batch): blocks of TRIT_KV_BLOCK tokens in the pool, and
     * the most sequences one batch holds (how many rows of logits it may ask for, logits_all aside). */
    int64_t n_kv_blocks;
    int32_t n_seq_max;
};

/* What a backend will allocate for a config, counted before anything is (the memory plan,
 * trit_context_init). Host memory, or device memory for a GPU backend (on_device). */
struct trit_mem_plan {
    uint64_t weights_bytes; /* the weights in the backend's own layout */
    uint64_t kv_bytes;      /* the KV cache: n_ctx tokens */
    uint64_t scratch_bytes; /* activations, attention scores, per-thread scratch, rope tables */
    bool on_device;
};
/* Their sum, saturating. */
uint64_t trit_mem_plan_total(const struct trit_mem_plan *p);

/* Rows of logits one call may return (cfg->n_batch already cut to n_ctx): n_batch with logits_all,
 * else one per sequence, at most n_batch. host/api.c's logits buffer, and what the GPU backends size
 * and gather. */
static inline int64_t trit_backend_out_rows(const struct trit_backend_config *cfg) {
    const int64_t seqs = cfg->n_seq_max > 1 ? cfg->n_seq_max : 1;
    return cfg->logits_all || seqs > cfg->n_batch ? cfg->n_batch : seqs;
}

struct trit_backend_ops {
    const char *name; /* "cpu", "cuda" */
    enum trit_status (*init)(const struct trit_model *m, const struct trit_backend_config *cfg, void **state);
    /* Runs tokens[0..n) at positions pos0..pos0+n-1, writing their K/V into the cache. Logits go to
     * `logits`: (n, n_vocab) when cfg.logits_all, else (1, n_vocab) for the last token. */
    enum trit_status (*forward)(void *state, const int32_t *tokens, int64_t n, int64_t pos0, float *logits);
    void (*free)(void *state);
    /* One line about the device ("CPU AVX-512 VNNI, 2 threads"); valid while the state lives. */
    const char *(*describe)(void *state);
    /* Bytes of weights and cache the backend holds (device memory for CUDA). */
    uint64_t (*memory_bytes)(void *state);
    /* Optional (NULL: the caller runs forward and takes the argmax itself). Runs forward on the same
     * terms, then *token = argmax of the last token's logits (the lowest id among equal maxima, like
     * host/sampler.c's greedy), without handing the vocabulary's logits to the host. */
    enum trit_status (*forward_argmax)(void *state, const int32_t *tokens, int64_t n, int64_t pos0, int32_t *token);
    /* Optional (NULL: the caller runs forward and samples the whole row). Runs forward on the same
     * terms, then on the last token's logits: applies the repetition penalty to pen_ids[0..n_pen)
     * (each id once, however often it is listed; ids outside the vocabulary ignored; positive / penalty,
     * negative * penalty; NaN -> -inf everywhere), and writes the k best (logit desc, id asc) as
     * vals[0..k), ids[0..k), in that order. 1 <= k <= TRIT_TOPK_MAX, k <= n_vocab. */
    enum trit_status (*forward_topk)(void *state, const int32_t *tokens, int64_t n, int64_t pos0, int32_t k,
                                     const int32_t *pen_ids, int32_t n_pen, float penalty, float *vals, int32_t *ids);
    /* Optional (NULL: no plan, as for GPU backends whose init checks device memory itself). Counts
     * what init would allocate for cfg (cfg.n_threads resolved, > 0), allocating nothing. */
    void (*plan)(const struct trit_model *m, const struct trit_backend_config *cfg, struct trit_mem_plan *out);
    /* Optional (NULL: one rank, no collectives). This process's rank, the number of ranks, and the
     * microseconds its collectives have taken since init. */
    void (*tp_info)(void *state, int *rank, int *size, int64_t *comm_us);
    /* Optional (NULL: the backend decodes one sequence at a time, in a contiguous cache, through
     * forward). Runs a batch of several sequences over the paged cache: b->pos, b->blocks and b->out
     * say where each token is and which rows of logits are wanted (host/forward.h); logits
     * (b->n_out, n_vocab). The caller (host/api.c) checked the batch and took the blocks
     * (host/kv_pool.h). forward then runs one sequence in blocks 0, 1, 2, ... */
    enum trit_status (*forward_batch)(void *state, const struct trit_forward_batch *b, float *logits);
    /* With forward_batch: copies every layer's K and V rows of block `from` to block `to`. */
    enum trit_status (*kv_copy)(void *state, int32_t from, int32_t to);
    /* Optional (NULL: none). The group's host-memory communicator when its ranks are the processes
     * of an MPI job (CPU ranks, or one GPU per rank), else NULL: what a leading context sends its
     * steps over (trit_tp_lead, host/tp/lead.h). */
    struct trit_comm *(*host_comm)(void *state);
    /* Optional (NULL: the backend gives no embeddings; trit_embed says so). Runs b (b->hidden NULL) over
     * the paged cache as forward_batch does, except that its out rows end at the final norm: hidden
     * (b->n_out, dim) receives rmsnorm(x) * out_norm, the LM head's input, and no logits are computed. */
    enum trit_status (*forward_hidden)(void *state, const struct trit_forward_batch *b, float *hidden);
};

/* The most candidates forward_topk hands back. */
#define TRIT_TOPK_MAX 256

/* The host reference of forward_topk's selection (host/sampler.c) on one row of n_vocab logits;
 * k is clamped to TRIT_TOPK_MAX and n_vocab. */
void trit_topk_penalized(const float *logits, int32_t n_vocab, const int32_t *pen_ids, int32_t n_pen, float penalty,
                         int32_t k, float *vals, int32_t *ids);

extern const struct trit_backend_ops trit_cpu_backend;

/* The lowest id among the largest of n logits, NaN ranking below every number (host/sampler.c):
 * the greedy choice everywhere on the host. */
int32_t trit_argmax(const float *logits, int32_t n);
/* The CUDA backend (cuda/backend.cu) lives in the CUDA module (cuda_module.h), where
 * TRIT_HAVE_CUDA_BACKEND is defined; libtrit reaches it through trit_cuda_module_load(). */
#ifdef TRIT_HAVE_CUDA_BACKEND
extern const struct trit_backend_ops trit_cuda_backend;
#endif

#endif /* TRIT_BACKEND_H */
