/*
 * forward_common.h: what the one-device CPU forward pass (cpu/forward.c) and a tensor-parallel
 * rank's (tp/forward_tp.c) share, so that both run the same arithmetic on the same layouts: the
 * packed layer, the checks and embedding that open a pass, and RoPE with the KV-cache write.
 * Internal to host/.
 */
#ifndef TRIT_CPU_FORWARD_COMMON_H
#define TRIT_CPU_FORWARD_COMMON_H

#include <stdint.h>

#include "backend.h"
#include "cpu/kernels.h"
#include "model/model.h"

/* A layer's seven ternary matrices packed for the CPU kernels (a TP rank holds its shards). */
struct trit_cpu_layer {
    struct trit_cpu_matrix w[TRIT_N_W]; /* enum trit_weight */
};

/* Frees the matrices of layers[0..n_layers) (not the array); accepts NULL. */
void trit_cpu_layers_free(struct trit_cpu_layer *layers, int64_t n_layers);
/* Bytes of packed weights in layers[0..n_layers). */
uint64_t trit_cpu_layers_bytes(const struct trit_cpu_layer *layers, int64_t n_layers);

/* Opens a forward pass: checks 1 <= n_tok <= cfg->n_batch (TRIT_ERR_INVALID_ARG, the message names
 * `who`), that positions pos0 .. pos0 + n_tok - 1 fit in cfg->n_ctx (TRIT_ERR_CONTEXT_FULL), and
 * that every token is in the vocabulary (TRIT_ERR_INVALID_ARG); writes the embeddings to
 * x (n_tok, dim). */
enum trit_status trit_cpu_forward_begin(const struct trit_model *m, const struct trit_backend_config *cfg,
                                        const char *who, const int32_t *tokens, int64_t n_tok, int64_t pos0, float *x);

/* For token b at position pos0 + b: RoPE on its n_q_heads query heads q (n_tok, n_q_heads * head_dim)
 * and n_kv_heads key heads k (n_tok, kv_dim), kv_dim = n_kv_heads * head_dim, with the tables
 * rope_cos/rope_sin (n_ctx, head_dim / 2); then its k and v rows to the layer's cache rows
 * kc, vc (n_ctx, kv_dim) at that position. */
void trit_cpu_rope_to_cache(const struct trit_hparams *hp, const float *rope_cos, const float *rope_sin, int64_t n_tok,
                            int64_t pos0, int64_t n_q_heads, int64_t n_kv_heads, float *q, float *k, const float *v,
                            float *kc, float *vc);

#endif /* TRIT_CPU_FORWARD_COMMON_H */
