/*
 * backend.cu: the CUDA backend for one GPU (host/backend.h): init (the model checked, the arena
 * sized against the free memory, allocated and filled), free, describe and the ops table
 * trit_cuda_backend. With tensor parallelism the same state is one rank of a NCCL group.
 *
 *   trit --device cuda ...        (host/api.c picks this table: trit_cuda_backend)
 *
 * The backend by concern (backend_internal.cuh holds what the pieces share):
 *   backend.cu          init, free, describe, the ops table
 *   backend_arena.cu    the arena's layout; the upload (repacking to tiles, pinned staging buffers)
 *   backend_forward.cu  the forward pass on the stream (its data flow is drawn there), the call's sync
 *   backend_graph.cu    a call's checks; the single-token step captured into a CUDA graph and replayed
 *   backend_sample.cu   forward_argmax and forward_topk: argmax and top-k of the last row on the device
 *   backend_tp.cu       tensor parallelism: a rank's widths and weight slices, the collectives, timing
 */
#include <stdio.h>
#include <string.h>

#include "backend_internal.cuh"
#include "ops_hd.h"

namespace trit_cuda_be {

// ---- init / free --------------------------------------------------------------------------------------

namespace {

bool dense_is_bf16(const trit_dense &d) { return d.dtype == TRIT_DTYPE_BF16; } // f32 and fp16 -> fp16

trit_cuda_wscale wscale_of(const trit_ternary &w) { return trit_cuda_wscale{w.scale, w.scale_kind == TRIT_SCALE_DIV}; }

// The group rule on the device (docs/design.md section 3) takes one group size for every ternary
// matrix of the model (64 or 128: Q2_0's two layouts, HF group-ternary folders), activations per
// token or per 64 columns, and q/k norms only with it (their fp32 path). *group: 0 without the rule.
enum trit_status group_rule_of(const trit_model *m, int64_t *group) {
    const trit_hparams *hp = &m->hp;
    const char *name = m->arch_name[0] ? m->arch_name : "this";
    *group = 0;
    if (!trit_model_group_rule(m)) {
        if (hp->qk_norm)
            return trit_error(TRIT_ERR_UNSUPPORTED, "cuda backend: %s model has q/k norms without group scales; it runs "
                              "on the CPU (--device cpu)", name);
        return TRIT_OK;
    }
    if (hp->act_block != 0 && hp->act_block != TRIT_GROUP_UNIT)
        return trit_error(TRIT_ERR_UNSUPPORTED, "cuda backend: activations quantized per %lld columns (0 or %d); this "
                          "model runs on the CPU (--device cpu)", (long long)hp->act_block, TRIT_GROUP_UNIT);
    if (hp->act_block > 0 && hp->sub_norms)
        return trit_error(TRIT_ERR_UNSUPPORTED, "cuda backend: sub-norms with activations quantized per block; this "
                          "model runs on the CPU (--device cpu)");
    for (int64_t i = 0; i < hp->n_layers; i++)
        for (const trit_ternary &w : m->layers[i].w) {
            if ((w.group != TRIT_GROUP_UNIT && w.group != 2 * TRIT_GROUP_UNIT) || !w.group_scales)
                return trit_error(TRIT_ERR_UNSUPPORTED,
                                  "cuda backend: %s model has a matrix %s in layer %lld (the device takes group scales "
                                  "per 64 or 128 columns on every matrix of a group-scaled model); it runs on the CPU "
                                  "(--device cpu)",
                                  name, w.group > 0 ? "with groups of another size" : "with one scale", (long long)i);
            if (*group == 0) *group = w.group;
            if (w.group != *group)
                return trit_error(TRIT_ERR_UNSUPPORTED,
                                  "cuda backend: %s model mixes group sizes (layer %lld: %lld, %lld elsewhere; the "
                                  "device takes one of 64 or 128 for every matrix); it runs on the CPU (--device cpu)",
                                  name, (long long)i, (long long)w.group, (long long)*group);
        }
    if (hp->qk_norm)
        for (int64_t i = 0; i < hp->n_layers; i++)
            if (!m->layers[i].attn_q_norm || !m->layers[i].attn_k_norm)
                return trit_error(TRIT_ERR_INVALID_ARG, "cuda backend: layer %lld lacks its q/k norms", (long long)i);
    return TRIT_OK;
}

enum trit_status check_group_rule(const trit_model *m) {
    int64_t group = 0;
    return group_rule_of(m, &group);
}

enum trit_status check_model(const trit_model *m, const trit_backend_config *cfg) {
    const trit_hparams *hp = &m->hp;
    TRIT_TRY(trit_model_validate(m)); // every shape the arena layout relies on
    if (cfg->head_q4)
        return trit_error(TRIT_ERR_UNSUPPORTED, "cuda backend: the 4-bit LM head runs on the CPU only (use --head int8)");
    const char *cpu_only = trit_model_cpu_only(m);
    if (cpu_only) return trit_error(TRIT_ERR_UNSUPPORTED, "cuda backend: %s runs on the CPU only (--device cpu)", cpu_only);
    if (hp->family != TRIT_FAMILY_BITNET_B158 && hp->family != TRIT_FAMILY_BITNET && hp->family != TRIT_FAMILY_LLAMA &&
        hp->family != TRIT_FAMILY_QWEN3)
        return trit_error(TRIT_ERR_UNSUPPORTED, "cuda backend: the %s graph runs on the CPU only (--device cpu)",
                          trit_family_name(hp->family));
    TRIT_TRY(check_group_rule(m));
    if (cfg->n_ctx <= 0 || cfg->n_batch <= 0 || cfg->n_ctx > INT32_MAX - 1)
        return trit_error(TRIT_ERR_INVALID_ARG, "cuda backend: context %lld and batch %lld must be positive",
                          (long long)cfg->n_ctx, (long long)cfg->n_batch);
    if (hp->n_layers < 1 || hp->n_vocab < 1 || hp->n_vocab > INT32_MAX || hp->dim < 1 || hp->ffn_dim < 1)
        return trit_error(TRIT_ERR_INVALID_ARG, "cuda backend: bad model shape");
    if (hp->n_heads < 1 || hp->n_kv_heads < 1 || hp->n_heads % hp->n_kv_heads != 0 ||
        hp->n_heads / hp->n_kv_heads > TRIT_CUDA_ATT_MAX_GROUP || hp->head_dim % 2 != 0 ||
        hp->head_dim > TRIT_CUDA_ATT_MAX_HEAD_DIM || hp->head_dim < 2)
        return trit_error(TRIT_ERR_UNSUPPORTED,
                          "cuda backend: %lld query heads over %lld KV heads of dim %lld: the kernels take at most %d "
                          "query heads per KV head and an even head_dim <= %d",
                          (long long)hp->n_heads, (long long)hp->n_kv_heads, (long long)hp->head_dim,
                          TRIT_CUDA_ATT_MAX_GROUP, TRIT_CUDA_ATT_MAX_HEAD_DIM);
    const int64_t widest = hp->ffn_dim > hp->n_heads * hp->head_dim ? hp->ffn_dim : hp->n_heads * hp->head_dim;
    if (widest > TRIT_CUDA_ROW_MAX || hp->dim > TRIT_CUDA_ROW_MAX)
        return trit_error(TRIT_ERR_UNSUPPORTED,
                          "cuda backend: dim %lld, ffn %lld, heads x head_dim %lld: the row kernels take at most %d",
                          (long long)hp->dim, (long long)hp->ffn_dim, (long long)(hp->n_heads * hp->head_dim),
                          TRIT_CUDA_ROW_MAX);
    if (cfg->n_batch > 65535)
        return trit_error(TRIT_ERR_INVALID_ARG, "cuda backend: batch of %lld tokens (at most 65535 per call)",
                          (long long)cfg->n_batch);
    for (int64_t i = 0; i < hp->n_layers; i++) {
        const trit_layer *L = &m->layers[i];
        if (!L->attn_norm || !L->ffn_norm || (hp->sub_norms && (!L->attn_sub_norm || !L->ffn_sub_norm)))
            return trit_error(TRIT_ERR_INVALID_ARG, "cuda backend: layer %lld lacks a norm", (long long)i);
        for (const trit_ternary &w : L->w)
            if (!w.codes || w.row_bytes != (w.n_cols + 3) / 4)
                return trit_error(TRIT_ERR_INVALID_ARG, "cuda backend: layer %lld has a malformed ternary matrix",
                                  (long long)i);
    }
    const trit_dense *ds[] = {&m->tok_embd, &m->output};
    for (const trit_dense *d : ds)
        if (!d->data || d->n_rows != hp->n_vocab || d->n_cols != hp->dim ||
            (d->dtype != TRIT_DTYPE_F32 && d->dtype != TRIT_DTYPE_F16 && d->dtype != TRIT_DTYPE_BF16))
            return trit_error(TRIT_ERR_INVALID_ARG, "cuda backend: the embedding or head is not (n_vocab, dim)");
    return TRIT_OK;
}

} // namespace

void cuda_free_impl(cuda_state *st) {
    if (!st) return;
    if (st->graph) (void)cudaGraphExecDestroy(st->graph);
    if (st->stream) {
        (void)cudaStreamSynchronize(st->stream);
        if (st->own_stream) (void)cudaStreamDestroy(st->stream);
    }
    if (st->arena) (void)cudaFree(st->arena);
    if (st->h_io) (void)cudaFreeHost(st->h_io);
    if (st->h_batch) (void)cudaFreeHost(st->h_batch);
    if (st->h_aux) (void)cudaFreeHost(st->h_aux);
    trit_free(st->pen_mark);
    trit_free(st->seen);
    trit_free(st->seen_last);
    for (int i = 0; i < st->tp.n_ev; i++)
        if (st->tp.ev[i]) (void)cudaEventDestroy(st->tp.ev[i]);
    trit_free(st->tp.ev);
    if (st->tp.own_comm) trit_comm_free(st->tp.comm);
    trit_free(st->layers);
    trit_free(st);
}

enum trit_status cuda_init_impl(const trit_model *m, const trit_backend_config *cfg, const tp_args *tp,
                                cuda_state **out) {
    *out = NULL;
    TRIT_TRY(check_model(m, cfg));
    const trit_hparams *hp = &m->hp;
    int dev = 0, n_sm = 0;
    cudaDeviceProp prop;
    TRIT_CUDA_CHECK(cudaGetDevice(&dev));
    TRIT_CUDA_CHECK(cudaGetDeviceProperties(&prop, dev));
    TRIT_CUDA_CHECK(cudaDeviceGetAttribute(&n_sm, cudaDevAttrMultiProcessorCount, dev));

    cuda_state *st = (cuda_state *)trit_alloc(sizeof *st);
    if (!st) return trit_error(TRIT_ERR_OUT_OF_MEMORY, "cuda backend: out of memory");
    st->m = m;
    st->cfg = *cfg;
    if (st->cfg.n_batch > st->cfg.n_ctx) st->cfg.n_batch = st->cfg.n_ctx;
    st->d = hp->dim; // this rank's widths (the model's for one GPU): tp_setup, from the plan
    st->shape = trit_cuda_attn_shape{hp->n_heads, hp->n_kv_heads, hp->head_dim, st->cfg.n_ctx};
    // decode splits: about one CTA per SM over the KV heads, no split shorter than TRIT_ATT_SPLIT_MIN.
    // With TP this counts the model's KV heads, not the rank's: every rank splits each head alike,
    // which keeps exact mode's logits independent of the GPU count (at some cost in occupancy).
    int64_t splits = (n_sm + hp->n_kv_heads - 1) / hp->n_kv_heads;
    const int64_t by_ctx = (st->cfg.n_ctx + TRIT_ATT_SPLIT_MIN - 1) / TRIT_ATT_SPLIT_MIN;
    if (splits > by_ctx) splits = by_ctx;
    if (splits > TRIT_CUDA_ATT_MAX_SPLITS) splits = TRIT_CUDA_ATT_MAX_SPLITS;
    st->n_splits = splits < 1 ? 1 : (int)splits;
    {
        const int64_t B = st->cfg.n_batch, seqs = st->cfg.n_seq_max > 1 ? st->cfg.n_seq_max : 1;
        st->n_out_rows = trit_backend_out_rows(&st->cfg);
        st->n_tables = (int32_t)(seqs < B ? seqs : B);
        st->max_blocks = (int32_t)((st->cfg.n_ctx + TRIT_KV_BLOCK - 1) / TRIT_KV_BLOCK);
        st->n_kv_blocks = st->cfg.n_kv_blocks > 0 ? st->cfg.n_kv_blocks : st->max_blocks;
        st->dec_tokens = B < TRIT_CUDA_ATT_DEC_TOKENS ? B : TRIT_CUDA_ATT_DEC_TOKENS;
    }
    st->head_int8 = cfg->head_int8;
    st->gemv_add = cfg->cuda_gemv != TRIT_CUDA_GEMV_DP4A;
    st->embd_bf16 = dense_is_bf16(m->tok_embd);
    st->head_bf16 = dense_is_bf16(m->output);
    st->graphs_enabled = true;

    enum trit_status status = TRIT_OK;
    size_t free_b = 0, total_b = 0;
    if (st->n_kv_blocks > INT32_MAX / TRIT_KV_BLOCK) { // cache rows are int32 in the kernels (ops_hd.h)
        status = trit_error(TRIT_ERR_INVALID_ARG, "cuda backend: a KV pool of %lld blocks (at most %d)",
                            (long long)st->n_kv_blocks, INT32_MAX / TRIT_KV_BLOCK);
        goto fail;
    }
    if ((status = tp_setup(st, tp)) != TRIT_OK) goto fail; // one GPU: rank 0 of 1
    if ((status = group_rule_of(m, &st->group)) != TRIT_OK) goto fail;
    st->group_rule = st->group > 0;
    st->act_block = hp->act_block;
    if (st->group_rule && (st->multi_rank || st->nccl)) { // as the CPU's ranks refuse them, at any count
        status = trit_error(TRIT_ERR_UNSUPPORTED, "cuda backend: tensor parallelism does not take group-scaled models "
                            "(%s) yet; run it on one GPU or the CPU", m->arch_name[0] ? m->arch_name : "this one");
        goto fail;
    }
    st->layers = (cuda_layer *)trit_alloc((size_t)hp->n_layers * sizeof(cuda_layer));
    if (!st->layers) {
        status = trit_error(TRIT_ERR_OUT_OF_MEMORY, "cuda backend: out of memory");
        goto fail;
    }
    st->arena_bytes = (size_t)layout(st, 0);
    // (a NCCL group ran its warm-up collectives before any rank got here: trit_cuda_tp_warm_up)
    TRIT_CUDA_CHECK_GOTO(cudaMemGetInfo(&free_b, &total_b), status, fail);
    if (trit_cuda_device_need(st->arena_bytes, st->nccl) > free_b) {
        status = trit_error(TRIT_ERR_OUT_OF_MEMORY,
                            "model needs %.2f GiB of device memory (+ %.2f GiB working room), %.2f GiB free on %s "
                            "(context %lld, batch %lld, KV pool of %lld blocks of %d tokens%s)",
                            (double)st->arena_bytes / (1 << 30),
                            (double)(trit_cuda_device_need(st->arena_bytes, st->nccl) - st->arena_bytes) / (1 << 30),
                            (double)free_b / (1 << 30), prop.name, (long long)st->cfg.n_ctx,
                            (long long)st->cfg.n_batch, (long long)st->n_kv_blocks, TRIT_KV_BLOCK,
                            st->cfg.logits_all ? ", logits for every token" : "");
        goto fail;
    }
    if (st->cfg.mem_limit > 0 && st->arena_bytes > st->cfg.mem_limit) {
        status = trit_error(TRIT_ERR_OUT_OF_MEMORY,
                            "model needs %.2f GiB of device memory, more than the memory limit (--mem-limit) of "
                            "%.2f GiB (context %lld, batch %lld)",
                            (double)st->arena_bytes / (1 << 30), (double)st->cfg.mem_limit / (1 << 30),
                            (long long)st->cfg.n_ctx, (long long)st->cfg.n_batch);
        goto fail;
    }
    // Everything below runs on st->stream, a non-blocking stream: nothing is ordered with the legacy
    // default stream, so no cudaMemset / cudaMemcpy without a stream here.
    if (st->nccl) {
        st->stream = (cudaStream_t)trit_comm_stream(st->tp.comm); // collectives and kernels in one order
    } else {
        TRIT_CUDA_CHECK_GOTO(cudaStreamCreateWithFlags(&st->stream, cudaStreamNonBlocking), status, fail);
        st->own_stream = true;
    }
    TRIT_CUDA_CHECK_GOTO(cudaMalloc(&st->arena, st->arena_bytes), status, fail);
    layout(st, (uintptr_t)st->arena);
    TRIT_CUDA_CHECK_GOTO(cudaMemsetAsync(st->arena, 0, st->arena_bytes, st->stream), status, fail); // defined cache
    TRIT_CUDA_CHECK_GOTO(cudaMallocHost((void **)&st->h_io, (size_t)(st->cfg.n_batch + 2) * sizeof(int32_t)), status,
                         fail);
    TRIT_CUDA_CHECK_GOTO(cudaMallocHost((void **)&st->h_batch, (size_t)batch_ints(st) * sizeof(int32_t)), status, fail);
    for (int32_t i = 0; i < st->max_blocks; i++) st->h_batch[i] = i; // forward's identity table
    TRIT_CUDA_CHECK_GOTO(cudaMemcpyAsync(st->ident, st->h_batch, (size_t)st->max_blocks * sizeof(int32_t),
                                         cudaMemcpyHostToDevice, st->stream),
                         status, fail); // (h_batch is next written after init's last sync)
    TRIT_CUDA_CHECK_GOTO(cudaMallocHost((void **)&st->h_aux, (size_t)(hp->n_vocab + 2 * TRIT_TOPK_MAX) * sizeof(int32_t)),
                         status, fail);
    st->pen_mark = (uint8_t *)trit_alloc((size_t)(hp->n_vocab + 7) / 8);
    st->seen = (const int32_t **)trit_alloc((size_t)st->n_tables * sizeof *st->seen);
    st->seen_last = (int32_t *)trit_alloc((size_t)st->n_tables * sizeof *st->seen_last);
    if (!st->pen_mark || !st->seen || !st->seen_last) {
        status = trit_error(TRIT_ERR_OUT_OF_MEMORY, "cuda backend: out of memory");
        goto fail;
    }
    for (int64_t i = 0; i < hp->n_layers; i++) {
        const trit_layer *L = &m->layers[i];
        cuda_layer *W = &st->layers[i];
        W->ws_qkv[0] = wscale_of(L->w[TRIT_W_Q]), W->ws_qkv[1] = wscale_of(L->w[TRIT_W_K]), W->ws_qkv[2] = wscale_of(L->w[TRIT_W_V]);
        W->ws_o = wscale_of(L->w[TRIT_W_O]), W->ws_gate = wscale_of(L->w[TRIT_W_GATE]), W->ws_up = wscale_of(L->w[TRIT_W_UP]);
        W->ws_down = wscale_of(L->w[TRIT_W_DOWN]);
        if (st->group_rule) { // the group kernels write scaled fp32 values: their consumers take them as they are
            const trit_cuda_wscale f32 = {1.0f, TRIT_EPI_F32};
            W->ws_qkv[0] = W->ws_qkv[1] = W->ws_qkv[2] = W->ws_o = W->ws_gate = W->ws_up = W->ws_down = f32;
        }
    }
    if ((status = upload_weights(st)) != TRIT_OK) goto fail;
    if ((status = upload_rope(st)) != TRIT_OK) goto fail;
    TRIT_CUDA_CHECK_GOTO(cudaStreamSynchronize(st->stream), status, fail);
    snprintf(st->desc, sizeof st->desc, "CUDA %.200s, sm_%d%d, %.2f GiB, %s decode GEMV%s", prop.name, prop.major,
             prop.minor, (double)st->arena_bytes / (1 << 30),
             st->group_rule ? "group-rule dp4a" : st->gemv_add ? "add-only" : "dp4a", st->head_int8 ? ", int8 head" : "");
    if (st->nccl) {
        const size_t len = strlen(st->desc);
        snprintf(st->desc + len, sizeof st->desc - len, ", TP rank %d of %d (%s)", st->tp.plan.rank,
                 st->tp.plan.n_ranks, st->tp.quant == TRIT_TP_QUANT_EXACT ? "exact" : "grouped");
    }
    *out = st;
    return TRIT_OK;
fail:
    cuda_free_impl(st);
    return status;
}

} // namespace trit_cuda_be

// The C entry points stay outside the namespace: its hidden visibility would hide them too.
using namespace trit_cuda_be;

// ---- the backend table --------------------------------------------------------------------------------

static enum trit_status cuda_init(const struct trit_model *m, const struct trit_backend_config *cfg, void **state) {
    if (!m || !cfg || !state) return trit_error(TRIT_ERR_INVALID_ARG, "cuda backend: NULL argument");
    cuda_state *st = NULL;
    const enum trit_status status = cuda_init_impl(m, cfg, NULL, &st);
    *state = st;
    return status;
}

static enum trit_status cuda_forward(void *state, const int32_t *tokens, int64_t n, int64_t pos0, float *logits) {
    return cuda_forward_impl(static_cast<cuda_state *>(state), tokens, n, pos0, logits);
}

static enum trit_status cuda_forward_argmax(void *state, const int32_t *tokens, int64_t n, int64_t pos0,
                                            int32_t *token) {
    return cuda_forward_argmax_impl(static_cast<cuda_state *>(state), tokens, n, pos0, token);
}

static enum trit_status cuda_forward_topk(void *state, const int32_t *tokens, int64_t n, int64_t pos0, int32_t k,
                                         const int32_t *pen_ids, int32_t n_pen, float penalty, float *vals,
                                         int32_t *ids) {
    return cuda_forward_topk_impl(static_cast<cuda_state *>(state), tokens, n, pos0, k, pen_ids, n_pen, penalty, vals,
                                  ids);
}

static void cuda_free(void *state) { cuda_free_impl(static_cast<cuda_state *>(state)); }

static const char *cuda_describe(void *state) { return static_cast<cuda_state *>(state)->desc; }

static uint64_t cuda_memory_bytes(void *state) { return static_cast<cuda_state *>(state)->arena_bytes; }

static enum trit_status cuda_forward_batch(void *state, const struct trit_forward_batch *b, float *logits) {
    return cuda_forward_batch_impl(static_cast<cuda_state *>(state), b, logits);
}

static enum trit_status cuda_kv_copy(void *state, int32_t from, int32_t to) {
    return cuda_kv_copy_impl(static_cast<cuda_state *>(state), from, to);
}

// Each slot labelled (C++17 has no designated initializers; ggml-cuda's backend table does the same).
extern "C" const struct trit_backend_ops trit_cuda_backend = {
    .name = "cuda",
    .init = cuda_init,
    .forward = cuda_forward,
    .free = cuda_free,
    .describe = cuda_describe,
    .memory_bytes = cuda_memory_bytes,
    .forward_argmax = cuda_forward_argmax,
    .forward_topk = cuda_forward_topk,
    .plan = nullptr, // cuda_init checks its one device allocation against the free memory
    .tp_info = nullptr,
    .forward_batch = cuda_forward_batch, // several sequences over the paged cache (backend_forward.cu)
    .kv_copy = cuda_kv_copy,
};

extern "C" int trit_cuda_backend_n_splits(const void *state) { return static_cast<const cuda_state *>(state)->n_splits; }
