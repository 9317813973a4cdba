/*
 * backend_arena.cu: the CUDA backend's device memory (layout) and the upload of a model into it.
 *
 * Memory: one cudaMalloc (the "arena") holds everything: weights in the tile layout, norms fp32,
 * embedding and head fp16 or bf16 (f32 files are rounded to fp16; a tied head shares the
 * embedding's bytes), RoPE tables, the fp16 KV cache (a pool of n_kv_blocks blocks of TRIT_KV_BLOCK
 * rows per layer, and the block tables' upload buffer), the activations and the cuBLAS workspace.
 * Its size is known before anything is allocated and checked against cudaMemGetInfo. forward()
 * allocates nothing.
 *
 * Upload: the ternary matrices are repacked on the host (a thread pool) into two pinned staging
 * buffers that the DMA engine drains in turn; with tensor parallelism, this rank's slices
 * (backend_tp.cu) instead of the whole matrices. A group-scaled model's matrices carry their group
 * scales (fp32, beside the tiles) and may hold +2 codes.
 */
#include <string.h>

extern "C" {
#include "core/threadpool.h"
#include "cpu/head_int8.h"
#include "cpu/ops.h"
}
#include "backend_internal.cuh"
#include "ternary_layout.h"

namespace trit_cuda_be {
namespace {

// Pinned staging buffers for the upload: at least this large, and at least the largest matrix.
constexpr size_t STAGE_MIN_BYTES = (size_t)16 << 20;
// Models above this size log their upload every 10%.
constexpr uint64_t PROGRESS_MIN_BYTES = (uint64_t)256 << 20;
constexpr int64_t ARENA_ALIGN = 256;

// ---- arena layout ---------------------------------------------------------------------------------

// Hands out 256-byte aligned pieces of [base, base + total): called once with base 0 to size the
// arena, then again with the real base to set every pointer.
struct carver {
    uintptr_t base;
    int64_t off;
    template <class T> T *take(int64_t n) {
        T *p = reinterpret_cast<T *>(base + (uintptr_t)off);
        off += (n * (int64_t)sizeof(T) + ARENA_ALIGN - 1) / ARENA_ALIGN * ARENA_ALIGN;
        return p;
    }
};

// group > 0: the matrix carries its group scales, (n_rows, ceil(n_cols / group)) fp32.
void ternary_desc(trit_cuda_ternary *w, int64_t n_rows, int64_t n_cols, int64_t group, carver &c) {
    *w = trit_cuda_ternary{};
    w->n_rows = n_rows, w->n_cols = n_cols;
    w->n_rows_pad = trit_tl_rows_pad(n_rows), w->n_cols_pad = trit_tl_cols_pad(n_cols);
    w->d_tiles = c.take<uint8_t>(trit_tl_bytes(n_rows, n_cols));
    w->d_row_bias = c.take<int32_t>(w->n_rows_pad);
    w->scale = 1.0f, w->scale_kind = TRIT_SCALE_MUL; // the consumers apply the real scales (ws_*)
    if (group > 0) {
        w->group = group;
        w->n_groups = (n_cols + group - 1) / group;
        w->d_group_scales = c.take<float>(n_rows * w->n_groups);
    }
}

bool head_is_tied(const trit_model *m) {
    return m->output.data == m->tok_embd.data && m->output.dtype == m->tok_embd.dtype &&
           m->output.n_rows == m->tok_embd.n_rows && m->output.n_cols == m->tok_embd.n_cols;
}

} // namespace

// Sets every pointer of st (base 0: offsets only) and returns the arena's size in bytes.
int64_t layout(cuda_state *st, uintptr_t base) {
    const trit_model *m = st->m;
    const trit_hparams *hp = &m->hp;
    const int64_t B = st->cfg.n_batch, C = st->cfg.n_ctx, V = hp->n_vocab, D = st->d, F = st->f;
    carver c = {base, 0};
    for (int64_t i = 0; i < hp->n_layers; i++) {
        cuda_layer *L = &st->layers[i];
        ternary_desc(&L->qkv, st->n_qkv, D, st->group, c);
        ternary_desc(&L->o, D, st->o_cols, st->group, c);
        ternary_desc(&L->gu, 2 * F, D, st->group, c);
        ternary_desc(&L->down, D, F, st->group, c);
        L->attn_norm = c.take<float>(D);
        L->ffn_norm = c.take<float>(D);
        L->attn_sub_norm = hp->sub_norms ? c.take<float>(st->o_cols) : NULL;
        L->ffn_sub_norm = hp->sub_norms ? c.take<float>(F) : NULL;
        L->q_norm = hp->qk_norm ? c.take<float>(hp->head_dim) : NULL;
        L->k_norm = hp->qk_norm ? c.take<float>(hp->head_dim) : NULL;
        L->k_cache = c.take<__half>(st->n_kv_blocks * TRIT_KV_BLOCK * st->hkv); // the pool
        L->v_cache = c.take<__half>(st->n_kv_blocks * TRIT_KV_BLOCK * st->hkv);
    }
    st->embd = c.take<uint16_t>(V * D);
    st->head = head_is_tied(m) && !st->multi_rank ? st->embd : st->head_int8 ? NULL : c.take<uint16_t>(st->v_head * D);
    if (st->head_int8) {
        st->head8_ld = (D + 63) / 64 * 64;
        st->head8_w = c.take<int8_t>(V * st->head8_ld);
        st->head8_d = c.take<float>(V);
        st->head8_q = c.take<int8_t>(st->n_out_rows * st->head8_ld);
        st->head8_dx = c.take<float>(st->n_out_rows);
    }
    st->argmax = c.take<int32_t>(1);
    st->topk_keys = c.take<uint32_t>(V);
    st->topk_vals = c.take<float>(TRIT_TOPK_MAX);
    st->topk_ids = c.take<int32_t>(TRIT_TOPK_MAX);
    st->pen = c.take<int32_t>(V);
    st->out_norm = c.take<float>(D);
    st->rope_cos = c.take<float>(C * (hp->head_dim / 2));
    st->rope_sin = c.take<float>(C * (hp->head_dim / 2));

    int64_t wide = D > st->hq ? D : st->hq;
    if (F > wide) wide = F;
    int64_t n_acc = st->n_qkv > 2 * F ? st->n_qkv : 2 * F;
    if (D > n_acc) n_acc = D;
    st->io = c.take<int32_t>(B + 1);
    st->batch = c.take<int32_t>(batch_ints(st));
    st->ident = c.take<int32_t>(st->max_blocks);
    st->x = c.take<float>(B * D);
    st->q8 = c.take<int8_t>(B * trit_cuda_act_stride(wide));
    st->qsum = c.take<int32_t>(B);
    st->act_scale = c.take<float>(B);
    st->acc = c.take<int32_t>(B * n_acc);
    st->q = c.take<float>(B * st->hq);
    st->buf = c.take<float>(B * wide); // wide: D too, for the group rule's normalized rows
    st->n_kb = st->group_rule ? (wide + TRIT_GROUP_UNIT - 1) / TRIT_GROUP_UNIT : 0;
    st->bsum = st->group_rule ? c.take<int32_t>(B * st->n_kb) : NULL;
    st->act_inv = st->group_rule ? c.take<float>(B * st->n_kb) : NULL;
    st->act_sblk = st->group_rule ? c.take<float>(B * st->n_kb) : NULL;
    st->part_o = c.take<float>(st->dec_tokens * st->n_splits * st->hq);
    st->part_ml = c.take<float>(st->dec_tokens * st->n_splits * hp->n_heads * 2);
    st->counters = c.take<uint32_t>(st->dec_tokens * hp->n_kv_heads);
    st->xn = c.take<float>(st->n_out_rows * D);
    st->logits = c.take<float>(st->n_out_rows * V);
    // tensor parallelism's buffers: none for one GPU (rank 0 of 1, grouped)
    cuda_tp *t = &st->tp;
    const int64_t N = t->plan.n_ranks;
    const bool exact = t->quant == TRIT_TP_QUANT_EXACT;
    t->att_own = t->own_off != 0 || t->q_own != st->hq ? c.take<float>(B * t->q_own) : NULL;
    t->pairs = exact ? c.take<double>(B * 2) : NULL;
    t->pairs_all = exact ? c.take<double>(N * B * 2) : NULL;
    t->amax = exact ? c.take<float>(B) : NULL;
    t->y = !exact && st->multi_rank ? c.take<float>(B * D) : NULL;
    t->logits_loc = st->multi_rank ? c.take<float>(st->n_out_rows * t->plan.vocab_stride) : NULL;
    t->logits_all = st->multi_rank ? c.take<float>(N * st->n_out_rows * t->plan.vocab_stride) : NULL;
    return c.off;
}

namespace {

// ---- upload ---------------------------------------------------------------------------------------

// Two pinned staging buffers: the host fills one (repacking or converting) while the DMA engine
// copies the other; an event per buffer says when its last copy is done.
struct loader {
    cudaStream_t stream;
    uint8_t *stage[2];
    cudaEvent_t done[2];
    size_t stage_bytes;
    int next;
    trit_pool *pool;
    uint64_t sent, total;
    int decile;
};

enum trit_status loader_buffer(loader *ld, uint8_t **buf) {
    TRIT_CUDA_CHECK(cudaEventSynchronize(ld->done[ld->next]));
    *buf = ld->stage[ld->next];
    return TRIT_OK;
}

// Copies the first n_bytes of the current buffer to d_dst and moves to the other buffer.
enum trit_status loader_send(loader *ld, void *d_dst, size_t n_bytes) {
    const int i = ld->next;
    TRIT_CUDA_CHECK(cudaMemcpyAsync(d_dst, ld->stage[i], n_bytes, cudaMemcpyHostToDevice, ld->stream));
    TRIT_CUDA_CHECK(cudaEventRecord(ld->done[i], ld->stream));
    ld->next ^= 1;
    ld->sent += n_bytes;
    const int decile = (int)(ld->sent * 10 / (ld->total ? ld->total : 1));
    if (ld->total >= PROGRESS_MIN_BYTES && decile > ld->decile) {
        ld->decile = decile;
        TRIT_LOG_I("cuda: uploading weights: %d%% of %.2f GiB", 10 * decile, (double)ld->total / (1 << 30));
    }
    return TRIT_OK;
}

// Repacks the rows of up to 3 canonical matrices (same n_cols), stacked, into the tile layout:
// strip s (16 rows) is gathered into a per-thread scratch and packed by trit_tl_pack. Tasks are
// contiguous strip ranges; a code 3 marks its thread's flag.
struct pack_job {
    const trit_ternary *parts[3];
    int n_parts;
    int64_t row_end[3]; // cumulative rows
    int64_t n_rows, n_cols, row_bytes, n_strips, n_tasks;
    int plus2_ok;           // group-scaled: a code 3 is t = +2
    uint8_t *dst, *scratch; // scratch: n_threads x 16 rows
    int *bad;               // per thread
};

void pack_task(void *ctx, int64_t task, int thread) {
    const pack_job *j = static_cast<const pack_job *>(ctx);
    const int64_t s0 = j->n_strips * task / j->n_tasks, s1 = j->n_strips * (task + 1) / j->n_tasks;
    const int64_t strip_bytes = trit_tl_cols_pad(j->n_cols) / TRIT_TL_CHUNK * TRIT_TL_TILE_BYTES;
    uint8_t *tmp = j->scratch + (int64_t)thread * TRIT_TL_STRIP * j->row_bytes;
    for (int64_t s = s0; s < s1; s++) {
        const int64_t r0 = s * TRIT_TL_STRIP, r1 = r0 + TRIT_TL_STRIP < j->n_rows ? r0 + TRIT_TL_STRIP : j->n_rows;
        for (int64_t r = r0; r < r1; r++) {
            int p = 0;
            while (r >= j->row_end[p]) p++;
            const int64_t local = r - (p ? j->row_end[p - 1] : 0);
            memcpy(tmp + (r - r0) * j->row_bytes, j->parts[p]->codes + local * j->row_bytes, (size_t)j->row_bytes);
        }
        if (trit_tl_pack_codes(tmp, j->row_bytes, r1 - r0, j->n_cols, j->plus2_ok, j->dst + s * strip_bytes) != 0)
            j->bad[thread] = 1;
    }
}

enum trit_status upload_ternary(loader *ld, const trit_ternary *const *parts, int n_parts, const trit_cuda_ternary *w,
                                const char *what, int64_t layer, uint8_t *scratch, int *bad) {
    pack_job j = {};
    j.n_parts = n_parts;
    for (int i = 0; i < n_parts; i++) {
        j.parts[i] = parts[i];
        j.row_end[i] = (i ? j.row_end[i - 1] : 0) + parts[i]->n_rows;
    }
    j.n_rows = w->n_rows, j.n_cols = w->n_cols, j.row_bytes = parts[0]->row_bytes;
    j.plus2_ok = w->group > 0;
    j.n_strips = w->n_rows_pad / TRIT_TL_STRIP;
    const int n_threads = trit_pool_n_threads(ld->pool);
    j.n_tasks = j.n_strips < 4 * n_threads ? j.n_strips : 4 * n_threads;
    j.scratch = scratch;
    j.bad = bad;
    memset(bad, 0, (size_t)n_threads * sizeof *bad);
    TRIT_TRY(loader_buffer(ld, &j.dst));
    trit_pool_parallel_for(ld->pool, j.n_tasks, pack_task, &j);
    for (int t = 0; t < n_threads; t++)
        if (bad[t])
            return trit_error(TRIT_ERR_INVALID_ARG, "cuda backend: layer %lld %s holds a 2-bit code 3 (not ternary)",
                              (long long)layer, what);
    TRIT_TRY(loader_send(ld, w->d_tiles, (size_t)trit_tl_bytes(w->n_rows, w->n_cols)));
    // The add-only GEMV's row biases of the stacked parts: each part's own (trit_tl_row_bias writes
    // its padding rows too, as zeros, and the next part overwrites them), 0 for the padding rows.
    uint8_t *buf = NULL;
    TRIT_TRY(loader_buffer(ld, &buf));
    int32_t *bias = reinterpret_cast<int32_t *>(buf); // the staging buffer holds the largest matrix
    memset(bias, 0, (size_t)(w->n_rows_pad + TRIT_TL_STRIP) * sizeof(int32_t));
    for (int i = 0, r0 = 0; i < n_parts; r0 += (int)parts[i]->n_rows, i++)
        trit_tl_row_bias(parts[i]->codes, parts[i]->row_bytes, parts[i]->n_rows, parts[i]->n_cols, bias + r0);
    TRIT_TRY(loader_send(ld, w->d_row_bias, (size_t)w->n_rows_pad * sizeof(int32_t)));
    if (w->group <= 0) return TRIT_OK;
    // the group scales of the stacked parts, row after row (n_rows x n_groups fp32: a quarter of the
    // codes' bytes at G = 64, so the staging buffer, which holds the largest tiles, holds them)
    TRIT_TRY(loader_buffer(ld, &buf));
    float *gs = reinterpret_cast<float *>(buf);
    for (int i = 0; i < n_parts; i++) {
        const size_t n = (size_t)(parts[i]->n_rows * w->n_groups);
        memcpy(gs, parts[i]->group_scales, n * sizeof(float));
        gs += n;
    }
    return loader_send(ld, w->d_group_scales, (size_t)(w->n_rows * w->n_groups) * sizeof(float));
}

// A dense (n_vocab, dim) matrix as fp16 (fp16 and f32 sources) or bf16, in staging-sized row chunks.
enum trit_status upload_dense(loader *ld, const trit_dense *src, const uint16_t *d_dst) {
    const int64_t n_cols = src->n_cols, rows_per = (int64_t)(ld->stage_bytes / (size_t)(2 * n_cols));
    for (int64_t r0 = 0; r0 < src->n_rows; r0 += rows_per) {
        const int64_t n = (src->n_rows - r0 < rows_per ? src->n_rows - r0 : rows_per) * n_cols;
        uint8_t *buf = NULL;
        TRIT_TRY(loader_buffer(ld, &buf));
        if (src->dtype == TRIT_DTYPE_F32) {
            const float *s = static_cast<const float *>(src->data) + r0 * n_cols;
            uint16_t *h = reinterpret_cast<uint16_t *>(buf);
            for (int64_t i = 0; i < n; i++) h[i] = trit_fp32_to_fp16(s[i]);
        } else {
            memcpy(buf, static_cast<const uint16_t *>(src->data) + r0 * n_cols, (size_t)n * 2);
        }
        TRIT_TRY(loader_send(ld, const_cast<uint16_t *>(d_dst) + r0 * n_cols, (size_t)n * 2));
    }
    return TRIT_OK;
}

// Small fp32 arrays (norms, RoPE tables), in stream order with the rest of the upload. From pageable
// memory the call returns once the source has been staged, so the caller may free it after.
enum trit_status upload_f32(cudaStream_t stream, float *d_dst, const float *src, int64_t n) {
    TRIT_CUDA_CHECK(cudaMemcpyAsync(d_dst, src, (size_t)n * sizeof(float), cudaMemcpyHostToDevice, stream));
    return TRIT_OK;
}

// The int8 head: quantized on the host by host/cpu/head_int8.c itself (the CPU backend's codes and
// scales, bit for bit), rows padded to head8_ld with zeros, then copied; the host copy is freed.
enum trit_status upload_head_i8(cuda_state *st, trit_pool *pool) {
    trit_head_i8 h;
    TRIT_TRY(trit_head_i8_init(&st->m->output, 1, TRIT_HEAD_I8_SCALAR, pool, &h));
    enum trit_status status = TRIT_OK;
    if (h.ld != st->head8_ld) {
        status = trit_error(TRIT_ERR_INTERNAL, "cuda backend: int8 head row stride %lld, expected %lld",
                            (long long)h.ld, (long long)st->head8_ld);
        goto done;
    }
    TRIT_CUDA_CHECK_GOTO(cudaMemcpyAsync(st->head8_w, h.w, (size_t)(h.n_rows * h.ld), cudaMemcpyHostToDevice,
                                         st->stream), status, done);
    TRIT_CUDA_CHECK_GOTO(cudaMemcpyAsync(st->head8_d, h.d, (size_t)h.n_rows * sizeof(float), cudaMemcpyHostToDevice,
                                         st->stream), status, done);
    TRIT_CUDA_CHECK_GOTO(cudaStreamSynchronize(st->stream), status, done); // pageable source: wait before freeing
done:
    trit_head_i8_free(&h);
    return status;
}

uint64_t upload_total(const cuda_state *st) {
    uint64_t t = 0;
    for (int64_t i = 0; i < st->m->hp.n_layers; i++) {
        const cuda_layer *L = &st->layers[i];
        const trit_cuda_ternary *ws[] = {&L->qkv, &L->o, &L->gu, &L->down};
        for (const trit_cuda_ternary *w : ws)
            t += (uint64_t)trit_tl_bytes(w->n_rows, w->n_cols) + (uint64_t)(w->n_rows * w->n_groups) * sizeof(float);
    }
    const uint64_t dense = (uint64_t)(st->m->hp.n_vocab * st->d * 2);
    if (st->head_int8) return t + dense / 2 + (uint64_t)(st->m->hp.n_vocab * (st->head8_ld + 4));
    return t + dense + (st->head == st->embd ? 0 : (uint64_t)(st->v_head * st->d * 2));
}

} // namespace

enum trit_status upload_weights(cuda_state *st) {
    const trit_model *m = st->m;
    const trit_hparams *hp = &m->hp;
    loader ld = {};
    ld.stream = st->stream;
    ld.total = upload_total(st);
    ld.decile = 0;
    size_t largest = 0;
    for (int64_t i = 0; i < hp->n_layers; i++) {
        const cuda_layer *L = &st->layers[i];
        const trit_cuda_ternary *ws[] = {&L->qkv, &L->o, &L->gu, &L->down};
        for (const trit_cuda_ternary *w : ws)
            if ((size_t)trit_tl_bytes(w->n_rows, w->n_cols) > largest) largest = (size_t)trit_tl_bytes(w->n_rows, w->n_cols);
    }
    ld.stage_bytes = largest > STAGE_MIN_BYTES ? largest : STAGE_MIN_BYTES;
    if ((size_t)(2 * st->d) > ld.stage_bytes) ld.stage_bytes = (size_t)(2 * st->d);
    enum trit_status status = trit_pool_create(st->cfg.n_threads > 0 ? st->cfg.n_threads : 1, &ld.pool);
    const int n_threads = trit_pool_n_threads(ld.pool);
    int64_t widest = st->f > st->hq ? st->f : st->hq; // the widest n_cols of a ternary matrix
    if (st->d > widest) widest = st->d;
    const int64_t max_row_bytes = (widest + 3) / 4;
    uint8_t *scratch = (uint8_t *)trit_alloc((size_t)(n_threads * TRIT_TL_STRIP * max_row_bytes));
    int *bad = (int *)trit_alloc((size_t)n_threads * sizeof(int));
    if (status == TRIT_OK && (!scratch || !bad))
        status = trit_error(TRIT_ERR_OUT_OF_MEMORY, "cuda backend: out of host memory for the weight repacking");
    for (int i = 0; i < 2 && status == TRIT_OK; i++) {
        TRIT_CUDA_CHECK_GOTO(cudaMallocHost((void **)&ld.stage[i], ld.stage_bytes), status, done);
        TRIT_CUDA_CHECK_GOTO(cudaEventCreateWithFlags(&ld.done[i], cudaEventDisableTiming), status, done);
    }

    for (int64_t i = 0; i < hp->n_layers && status == TRIT_OK; i++) {
        const trit_layer *L = &m->layers[i];
        const cuda_layer *W = &st->layers[i];
        tp_slices sl = {};
        if (st->multi_rank && (status = tp_slices_make(st, L, &sl)) != TRIT_OK) break;
        const trit_ternary *const *src = NULL;
        const trit_ternary *whole[TRIT_N_W], *shard[TRIT_N_W];
        for (int j = 0; j < TRIT_N_W; j++) whole[j] = &L->w[j], shard[j] = &sl.t[j];
        src = st->multi_rank ? shard : whole; // one rank's shards are the whole matrices
        const trit_ternary *qkv[] = {src[0], src[1], src[2]}, *o[] = {src[3]}, *gu[] = {src[4], src[5]},
                           *down[] = {src[6]};
        // the pack copies from the sources before upload_ternary returns, so the slices may go after
        if (status == TRIT_OK) status = upload_ternary(&ld, qkv, 3, &W->qkv, "q|k|v", i, scratch, bad);
        if (status == TRIT_OK) status = upload_ternary(&ld, o, 1, &W->o, "o_proj", i, scratch, bad);
        if (status == TRIT_OK) status = upload_ternary(&ld, gu, 2, &W->gu, "gate|up", i, scratch, bad);
        if (status == TRIT_OK) status = upload_ternary(&ld, down, 1, &W->down, "down_proj", i, scratch, bad);
        tp_slices_free(&sl);
        if (status != TRIT_OK) break;
        if ((status = upload_f32(st->stream, W->attn_norm, L->attn_norm, st->d)) != TRIT_OK) break;
        if ((status = upload_f32(st->stream, W->ffn_norm, L->ffn_norm, st->d)) != TRIT_OK) break;
        if (hp->qk_norm) { // one GPU only (init refuses the group rule with tensor parallelism)
            if ((status = upload_f32(st->stream, W->q_norm, L->attn_q_norm, hp->head_dim)) != TRIT_OK) break;
            if ((status = upload_f32(st->stream, W->k_norm, L->attn_k_norm, hp->head_dim)) != TRIT_OK) break;
        }
        if (hp->sub_norms) {
            const int64_t a0 = st->tp.plan.head0 * hp->head_dim, f0 = st->tp.plan.ffn0; // 0 for one rank
            if ((status = upload_f32(st->stream, W->attn_sub_norm, L->attn_sub_norm + a0, st->o_cols)) != TRIT_OK) break;
            if ((status = upload_f32(st->stream, W->ffn_sub_norm, L->ffn_sub_norm + f0, st->f)) != TRIT_OK) break;
        }
    }
    if (status == TRIT_OK) status = upload_dense(&ld, &m->tok_embd, st->embd);
    if (status == TRIT_OK && !st->head_int8 && st->head != st->embd) {
        trit_dense rows = m->output; // with TP: this rank's vocabulary rows
        if (st->multi_rank) {
            const size_t esz = rows.dtype == TRIT_DTYPE_F32 ? 4 : 2;
            rows.data = static_cast<const char *>(rows.data) + (size_t)(st->tp.plan.vocab0 * st->d) * esz;
            rows.n_rows = st->v_head;
        }
        status = upload_dense(&ld, &rows, st->head);
    }
    if (status == TRIT_OK && st->head_int8) status = upload_head_i8(st, ld.pool);
    if (status == TRIT_OK) status = upload_f32(st->stream, st->out_norm, m->out_norm, st->d);
    if (status == TRIT_OK) TRIT_CUDA_CHECK_GOTO(cudaStreamSynchronize(st->stream), status, done);
done:
    (void)cudaStreamSynchronize(st->stream); // no copy may still read a staging buffer freed below
    for (int i = 0; i < 2; i++) {
        if (ld.stage[i]) (void)cudaFreeHost(ld.stage[i]);
        if (ld.done[i]) (void)cudaEventDestroy(ld.done[i]);
    }
    trit_free(scratch);
    trit_free(bad);
    trit_pool_free(ld.pool);
    return status;
}

enum trit_status upload_rope(cuda_state *st) {
    const trit_hparams *hp = &st->m->hp;
    const int64_t n = st->cfg.n_ctx * (hp->head_dim / 2);
    float *cos_t = (float *)trit_alloc((size_t)n * sizeof(float)), *sin_t = (float *)trit_alloc((size_t)n * sizeof(float));
    enum trit_status status = TRIT_OK;
    if (!cos_t || !sin_t) status = trit_error(TRIT_ERR_OUT_OF_MEMORY, "cuda backend: out of host memory for RoPE tables");
    if (status == TRIT_OK) {
        trit_rope_table(st->cfg.n_ctx, hp->head_dim, hp->rope_theta, cos_t, sin_t); // the CPU's own angles
        status = upload_f32(st->stream, st->rope_cos, cos_t, n);
    }
    if (status == TRIT_OK) status = upload_f32(st->stream, st->rope_sin, sin_t, n);
    trit_free(cos_t);
    trit_free(sin_t);
    return status;
}

} // namespace trit_cuda_be
