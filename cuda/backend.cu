/*
 * backend.cu: the CUDA backend for one GPU (host/backend.h): loading a trit_model onto the device,
 * the forward pass over a batch of tokens, and the CUDA graph of the single-token step.
 *
 *   trit --device cuda ...        (host/api.c picks this table: trit_cuda_backend)
 *
 * The forward pass is host/cpu/forward.c's, kernel for kernel (B tokens; D, Hq, Hkv, F as there):
 *
 *   io    = {pos0, tokens}                      one H2D copy from pinned memory (a graph node)
 *   x     = embed(tokens)                       (B, D) fp32 residual stream
 *   per layer:
 *     q8  = quant(rmsnorm(x [+= down of the previous layer]) * attn_norm)      trit_cuda_residual_norm_quant
 *     acc = [wq; wk; wv] . q8                   one int32 GEMV/GEMM over the concatenated rows
 *     q, K/V cache rows = rope(epilogue(acc))   trit_cuda_rope_kv (fp16 cache)
 *     att = attention                           decode: split-K, merged in-kernel (m = 1); prefill: causal tiles
 *     q8  = quant([rmsnorm(att) * attn_sub_norm])
 *     acc = wo . q8
 *     q8  = quant(rmsnorm(x += epilogue(acc)) * ffn_norm)
 *     acc = [w_gate; w_up] . q8
 *     q8  = quant([rmsnorm] act(gate) * up)     trit_cuda_ffn_act_quant
 *     acc = w_down . q8                         (its residual add is fused into the next norm)
 *   xn    = rmsnorm(x += down) * out_norm       last token, or all with logits_all
 *   logits = head . xn                          own GEMV (m <= 8) or cublasGemmEx (fp16/bf16, fp32 out)
 *   (int8 head, cfg.head_int8: xn quantized per token, int8 rows . q in int32, scaled: ops_head.cu)
 *   logits -> host                              the one synchronization of a call
 *   (forward_argmax: argmax of the last row on the device, one int32 -> host instead;
 *    forward_topk: the penalized top-k of the last row on the device, k (value, id) pairs -> host)
 *
 * Every ternary matmul runs as int32 (for m <= 8 the add-only GEMV trit_cuda_gemv_add_i32, or
 * trit_cuda_gemv_dp4a_i32 with cfg.cuda_gemv DP4A; trit_cuda_gemm_mma_i32 above; grouped TP's fused
 * fp32 epilogue exists for dp4a only, so that path runs dp4a) and the kernel that reads its output applies the epilogue (trit_epilogue_one, bit for bit
 * the CPU's) with that matrix's scale: that is what lets q|k|v and gate|up, whose scales differ,
 * run as one launch each, and the residual adds ride in the norms. 10 launches per layer.
 *
 * Memory: one cudaMalloc (the "arena") holds everything: weights in the tile layout, norms fp32,
 * embedding and head fp16 or bf16 (f32 files are rounded to fp16; a tied head shares the
 * embedding's bytes), RoPE tables, the fp16 KV cache, the activations and the cuBLAS workspace.
 * Its size is known before anything is allocated and checked against cudaMemGetInfo. forward()
 * allocates nothing.
 *
 * Decode (m = 1): the second single-token call captures the whole step into a CUDA graph; later
 * calls replay it. Nothing in it depends on the position except through the device scalar io[0]
 * (RoPE rows, cache rows, the attention's length and splits), and the tokens and position are read
 * from pinned host memory by the graph's first node, so one graph serves every position.
 */
#include <cublas_v2.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

extern "C" {
#include "backend.h"
#include "core/threadpool.h"
#include "cpu/head_int8.h"
#include "cpu/ops.h"
#include "tp/comm.h"
#include "tp/plan.h"
}
#include "cuda_check.h"
#include "ops_hd.h"
#include "ternary_layout.h"
#include "trit_cuda.h"
#include "trit_cuda_backend.h"
#include "trit_cuda_ops.h"
#include "trit_cuda_tp.h"

#define TRIT_CUBLAS_CHECK(call)                                                                    \
    do {                                                                                           \
        const cublasStatus_t trit_cublas_s_ = (call);                                              \
        if (trit_cublas_s_ != CUBLAS_STATUS_SUCCESS)                                               \
            return trit_error(TRIT_ERR_DEVICE, "%s:%d: %s: %s", __FILE__, __LINE__, #call,          \
                              cublasGetStatusString(trit_cublas_s_));                              \
    } while (0)

namespace {

// Device memory kept free beyond the arena: the cuBLAS handle, kernel code, per-thread stacks.
constexpr size_t HEADROOM_BYTES = (size_t)64 << 20;
// cuBLAS workspace (NVIDIA recommends 32 MiB on Hopper); also what lets cuBLAS run in a graph.
constexpr size_t CUBLAS_WS_BYTES = (size_t)32 << 20;
// Pinned staging buffers for the upload: at least this large, and at least the largest matrix.
constexpr size_t STAGE_MIN_BYTES = (size_t)16 << 20;
// Models above this size log their upload every 10%.
constexpr uint64_t PROGRESS_MIN_BYTES = (uint64_t)256 << 20;
constexpr int64_t ARENA_ALIGN = 256;

struct cuda_layer {
    trit_cuda_ternary qkv, o, gu, down; // tiles and the add-only GEMV's row biases, in the arena
    trit_cuda_wscale ws_qkv[3], ws_o, ws_gate, ws_up, ws_down;
    float *attn_norm, *attn_sub_norm, *ffn_norm, *ffn_sub_norm; // (D), (Hq), (D), (F); subs NULL without
    __half *k_cache, *v_cache;                                  // (n_ctx, Hkv)
};

// Tensor parallelism (host/tp/tp.h's math on the device): this rank's shard and the buffers its
// collectives use. Absent (comm NULL) for one GPU running the whole model.
struct cuda_tp {
    trit_comm *comm; // NCCL, borrowed; the backend runs on its stream
    trit_tp_plan plan;
    enum trit_tp_quant quant;
    int64_t head_c0;          // first computed query head: plan.kv_head0 * group (whole GQA groups)
    int64_t own_off;          // floats from a row of computed heads to this rank's own heads
    int64_t q_own;            // own heads x head_dim: o_proj's columns here
    float *att_own;           // (B, q_own): own heads compacted, when they are not the whole row
    double *pairs, *pairs_all; // exact mode with sub-norms: (B, 2), (N, B, 2)
    float *amax;              // (B) exact mode: the all-reduced absmax
    float *y;                 // (B, D) grouped mode: the all-reduced fp32 row-parallel output
    float *logits_loc;        // (n_out_rows, vocab_stride) this rank's head rows
    float *logits_all;        // (N, n_out_rows, vocab_stride) the all-gather
    // collective timing: an event pair per collective of a call, summed after the call's sync
    cudaEvent_t *ev;
    int n_ev, ev_used;
    double comm_ms;
    int64_t n_tokens;
};

struct cuda_state {
    const trit_model *m;
    trit_backend_config cfg;
    int64_t d, f, hq, hkv, n_qkv; // D, F, Hq, Hkv, Hq + 2 Hkv: this rank's (computed) widths with TP
    int64_t o_cols, v_head;       // o_proj's input columns (Hq, or q_own) and head rows (V, or this rank's)
    cuda_tp tp;
    bool has_tp, own_stream;
    trit_cuda_attn_shape shape;
    int n_splits;
    int64_t n_out_rows; // rows of logits a call can produce: B with logits_all, else 1
    bool use_cublas;    // logits_all with batches above the head GEMV's 8 rows (never with the int8 head)
    bool head_int8;     // cfg.head_int8: the int8 head below replaces the fp16/bf16 one
    bool gemv_add;      // cfg.cuda_gemv ADD: decode matmuls on the add-only GEMV, else dp4a

    cudaStream_t stream;
    cublasHandle_t cublas;
    void *arena;
    size_t arena_bytes;
    cuda_layer *layers;

    const uint16_t *embd, *head; // (V, D) fp16 or bf16; head == embd when tied; NULL: untied int8 head
    int8_t *head8_w;             // int8 head: (V, head8_ld) rows as host/cpu/head_int8.c quantizes them
    float *head8_d;              // (V) 1 / s_r
    int64_t head8_ld;            // D rounded up to 64 (head_int8.c's padding)
    int8_t *head8_q;             // (n_out_rows, head8_ld) quantized final norm
    float *head8_dx;             // (n_out_rows) 1 / s_x
    int32_t *argmax;             // (1) forward_argmax's result
    uint32_t *topk_keys;         // (V) forward_topk's scratch
    float *topk_vals;            // (TRIT_TOPK_MAX) its candidates
    int32_t *topk_ids;           // (TRIT_TOPK_MAX)
    int32_t *pen;                // (V) the penalized ids, each once
    int32_t *h_aux;              // pinned: (V) penalized ids, then TRIT_TOPK_MAX ids and vals back
    uint8_t *pen_mark;           // host (V / 8): which ids h_aux already lists
    int embd_bf16, head_bf16;
    float *out_norm, *rope_cos, *rope_sin; // (D), (n_ctx, hd / 2) x 2
    int32_t *io, *h_io;                    // (B + 1) = {pos0, tokens}: device, pinned host
    float *x;                              // (B, D)
    int8_t *q8;                            // (B, act_stride(max(D, Hq, F)))
    int32_t *qsum;                         // (B)
    float *act_scale;                      // (B)
    int32_t *acc;                          // (B, max(Hq + 2 Hkv, 2F, D))
    float *q;                              // (B, Hq) rotated queries
    float *buf;                            // (B, max(Hq, F)) attention output / FFN hidden, fp32
    float *part_o, *part_ml;               // decode split partials: (n_splits, Hq), (n_splits, n_heads, 2)
    uint32_t *counters;                    // (n_kv_heads) the decode attention's merge tickets, zero
    float *xn;                             // (n_out_rows, D) final norm
    uint16_t *xh;                          // (n_out_rows, D) its fp16/bf16 copy (cuBLAS path)
    float *logits;                         // (n_out_rows, V)
    void *cublas_ws;

    bool graphs_enabled, last_graphed;
    int64_t n_single_calls;
    cudaGraphExec_t graph;
    char desc[320]; /* cudaDeviceProp::name is up to 256 bytes */
};

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

void ternary_desc(trit_cuda_ternary *w, int64_t n_rows, int64_t n_cols, carver &c) {
    *w = trit_cuda_ternary{};
    w->n_rows = n_rows, w->n_cols = n_cols;
    w->n_rows_pad = trit_tl_rows_pad(n_rows), w->n_cols_pad = trit_tl_cols_pad(n_cols);
    w->d_tiles = c.take<uint8_t>(trit_tl_bytes(n_rows, n_cols));
    w->d_row_bias = c.take<int32_t>(w->n_rows_pad);
    w->scale = 1.0f, w->scale_kind = TRIT_SCALE_MUL; // the consumers apply the real scales (ws_*)
}

bool dense_is_bf16(const trit_dense &d) { return d.dtype == TRIT_DTYPE_BF16; } // f32 and fp16 -> fp16
bool head_is_tied(const trit_model *m) {
    return m->output.data == m->tok_embd.data && m->output.dtype == m->tok_embd.dtype &&
           m->output.n_rows == m->tok_embd.n_rows && m->output.n_cols == m->tok_embd.n_cols;
}

// Sets every pointer of st (base 0: offsets only) and returns the arena's size in bytes.
int64_t layout(cuda_state *st, uintptr_t base) {
    const trit_model *m = st->m;
    const trit_hparams *hp = &m->hp;
    const int64_t B = st->cfg.n_batch, C = st->cfg.n_ctx, V = hp->n_vocab, D = st->d, F = st->f;
    carver c = {base, 0};
    for (int64_t i = 0; i < hp->n_layers; i++) {
        cuda_layer *L = &st->layers[i];
        ternary_desc(&L->qkv, st->n_qkv, D, c);
        ternary_desc(&L->o, D, st->o_cols, c);
        ternary_desc(&L->gu, 2 * F, D, c);
        ternary_desc(&L->down, D, F, c);
        L->attn_norm = c.take<float>(D);
        L->ffn_norm = c.take<float>(D);
        L->attn_sub_norm = hp->sub_norms ? c.take<float>(st->o_cols) : NULL;
        L->ffn_sub_norm = hp->sub_norms ? c.take<float>(F) : NULL;
        L->k_cache = c.take<__half>(C * st->hkv);
        L->v_cache = c.take<__half>(C * st->hkv);
    }
    st->embd = c.take<uint16_t>(V * D);
    st->head = head_is_tied(m) && !st->has_tp ? st->embd : st->head_int8 ? NULL : c.take<uint16_t>(st->v_head * D);
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
    st->x = c.take<float>(B * D);
    st->q8 = c.take<int8_t>(B * trit_cuda_act_stride(wide));
    st->qsum = c.take<int32_t>(B);
    st->act_scale = c.take<float>(B);
    st->acc = c.take<int32_t>(B * n_acc);
    st->q = c.take<float>(B * st->hq);
    st->buf = c.take<float>(B * (st->hq > F ? st->hq : F));
    st->part_o = c.take<float>(st->n_splits * st->hq);
    st->part_ml = c.take<float>(st->n_splits * hp->n_heads * 2);
    st->counters = c.take<uint32_t>(hp->n_kv_heads);
    st->xn = c.take<float>(st->n_out_rows * D);
    st->xh = st->use_cublas ? c.take<uint16_t>(st->n_out_rows * D) : NULL;
    st->logits = c.take<float>(st->n_out_rows * V);
    st->cublas_ws = st->use_cublas ? c.take<uint8_t>((int64_t)CUBLAS_WS_BYTES) : NULL;
    if (st->has_tp) {
        cuda_tp *t = &st->tp;
        const int64_t N = t->plan.n_ranks;
        t->att_own = t->own_off != 0 || t->q_own != st->hq ? c.take<float>(B * t->q_own) : NULL;
        t->pairs = c.take<double>(B * 2);
        t->pairs_all = c.take<double>(N * B * 2);
        t->amax = c.take<float>(B);
        t->y = t->quant == TRIT_TP_QUANT_GROUPED ? c.take<float>(B * D) : NULL;
        t->logits_loc = c.take<float>(st->n_out_rows * t->plan.vocab_stride);
        t->logits_all = c.take<float>(N * st->n_out_rows * t->plan.vocab_stride);
    }
    return c.off;
}

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
        if (trit_tl_pack(tmp, j->row_bytes, r1 - r0, j->n_cols, j->dst + s * strip_bytes) != 0) j->bad[thread] = 1;
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
    return loader_send(ld, w->d_row_bias, (size_t)w->n_rows_pad * sizeof(int32_t));
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
        for (const trit_cuda_ternary *w : ws) t += (uint64_t)trit_tl_bytes(w->n_rows, w->n_cols);
    }
    const uint64_t dense = (uint64_t)(st->m->hp.n_vocab * st->d * 2);
    if (st->head_int8) return t + dense / 2 + (uint64_t)(st->m->hp.n_vocab * (st->head8_ld + 4));
    return t + dense + (st->head == st->embd ? 0 : (uint64_t)(st->v_head * st->d * 2));
}

// Tensor parallelism: this rank's shards of a layer's matrices as host copies (plan.h), in the
// order wq, wk, wv (rows of the computed heads), wo (columns of the own heads), gate, up (rows),
// down (columns).
struct tp_slices {
    trit_ternary t[TRIT_N_W]; // enum trit_weight
};

void tp_slices_free(tp_slices *sl) {
    for (trit_ternary &t : sl->t) trit_ternary_free(&t);
}

enum trit_status tp_slices_make(const cuda_state *st, const trit_layer *L, tp_slices *sl) {
    const cuda_tp *t = &st->tp;
    const int64_t hd = st->m->hp.head_dim;
    const struct {
        bool rows;
        int64_t start, n;
    } parts[TRIT_N_W] = {
        // in enum trit_weight order: q (the computed heads), k, v, o (the own heads' columns), gate, up, down
        {true, t->head_c0 * hd, st->hq},       {true, t->plan.kv_head0 * hd, st->hkv},
        {true, t->plan.kv_head0 * hd, st->hkv}, {false, t->plan.head0 * hd, t->q_own},
        {true, t->plan.ffn0, st->f},           {true, t->plan.ffn0, st->f},
        {false, t->plan.ffn0, st->f},
    };
    *sl = tp_slices{};
    for (int i = 0; i < TRIT_N_W; i++) {
        const enum trit_status status = parts[i].rows
                                            ? trit_tp_ternary_rows(&L->w[i], parts[i].start, parts[i].n, &sl->t[i])
                                            : trit_tp_ternary_cols(&L->w[i], parts[i].start, parts[i].n, &sl->t[i]);
        if (status != TRIT_OK) {
            tp_slices_free(sl);
            return status;
        }
    }
    return TRIT_OK;
}

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
        if (st->has_tp && (status = tp_slices_make(st, L, &sl)) != TRIT_OK) break;
        const trit_ternary *const *src = NULL;
        const trit_ternary *whole[TRIT_N_W], *shard[TRIT_N_W];
        for (int j = 0; j < TRIT_N_W; j++) whole[j] = &L->w[j], shard[j] = &sl.t[j];
        src = st->has_tp ? shard : whole;
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
        if (hp->sub_norms) {
            const int64_t a0 = st->has_tp ? st->tp.plan.head0 * hp->head_dim : 0, f0 = st->has_tp ? st->tp.plan.ffn0 : 0;
            if ((status = upload_f32(st->stream, W->attn_sub_norm, L->attn_sub_norm + a0, st->o_cols)) != TRIT_OK) break;
            if ((status = upload_f32(st->stream, W->ffn_sub_norm, L->ffn_sub_norm + f0, st->f)) != TRIT_OK) break;
        }
    }
    if (status == TRIT_OK) status = upload_dense(&ld, &m->tok_embd, st->embd);
    if (status == TRIT_OK && !st->head_int8 && st->head != st->embd) {
        trit_dense rows = m->output; // with TP: this rank's vocabulary rows
        if (st->has_tp) {
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

// ---- forward ----------------------------------------------------------------------------------------

trit_cuda_wscale wscale_of(const trit_ternary &w) { return trit_cuda_wscale{w.scale, w.scale_kind == TRIT_SCALE_DIV}; }

// acc (m, w->n_rows) int32 = w . q8: the decode GEMV the config chose for m <= 8, the tensor-core
// GEMM above.
enum trit_status matmul(cuda_state *st, const trit_cuda_ternary *w, int64_t m) {
    if (m > TRIT_CUDA_GEMV_MAX_M) return trit_cuda_gemm_mma_i32(w, st->q8, st->qsum, m, 0, st->acc, st->stream);
    return st->gemv_add ? trit_cuda_gemv_add_i32(w, st->q8, m, st->acc, st->stream)
                        : trit_cuda_gemv_dp4a_i32(w, st->q8, st->qsum, m, st->acc, st->stream);
}

// ---- tensor parallelism ---------------------------------------------------------------------------
// The collectives run on the communicator's stream, which is st->stream: they are ordered with the
// kernels without events. Each is bracketed by a timing event pair (tp_sum_comm_time reads them).

enum trit_status tp_mark(cuda_state *st, bool end) {
    cuda_tp *t = &st->tp;
    const int i = 2 * t->ev_used + (end ? 1 : 0);
    if (i >= t->n_ev) return TRIT_OK; // more collectives than pairs: the rest go untimed
    TRIT_CUDA_CHECK(cudaEventRecord(t->ev[i], st->stream));
    if (end) t->ev_used++;
    return TRIT_OK;
}

#define TP_COLLECTIVE(st, call)                                                                    \
    do {                                                                                           \
        TRIT_TRY(tp_mark((st), false));                                                            \
        TRIT_TRY(call);                                                                            \
        TRIT_TRY(tp_mark((st), true));                                                             \
    } while (0)

// After the call's sync: adds the time between each pair of events to comm_ms.
enum trit_status tp_sum_comm_time(cuda_state *st) {
    cuda_tp *t = &st->tp;
    for (int i = 0; i < t->ev_used; i++) {
        float ms = 0.0f;
        TRIT_CUDA_CHECK(cudaEventElapsedTime(&ms, t->ev[2 * i], t->ev[2 * i + 1]));
        t->comm_ms += ms;
    }
    t->ev_used = 0;
    return TRIT_OK;
}

// x (m, n): this rank's n of a sharded row of n_full values (its heads' attention output or its FFN
// columns), with its part of the sub-norm w (NULL: none). Normalizes and quantizes it into q8,
// qsum, act_scale for the row-parallel matmul that follows (host/tp/tp.h).
enum trit_status tp_shard_quant(cuda_state *st, float *x, int64_t m, int64_t n, int64_t n_full, const float *w) {
    cuda_tp *t = &st->tp;
    const float eps = st->m->hp.norm_eps;
    void *s = st->stream;
    if (t->quant == TRIT_TP_QUANT_GROUPED) // the shard's own statistics: the one-GPU kernel on the shard
        return trit_cuda_residual_norm_quant(x, m, n, NULL, 0, trit_cuda_wscale{1.0f, 0}, w, eps, st->q8, st->qsum,
                                             st->act_scale, s);
    if (w) {
        TRIT_TRY(trit_cuda_tp_sumsq(x, m, n, t->pairs, s));
        TP_COLLECTIVE(st, trit_comm_allgather(t->comm, t->pairs, t->pairs_all, 2 * m, TRIT_COMM_F64));
    }
    TRIT_TRY(trit_cuda_tp_norm_absmax(x, m, n, n_full, t->pairs_all, t->plan.n_ranks, w, eps, t->amax, s));
    TP_COLLECTIVE(st, trit_comm_allreduce(t->comm, t->amax, m, TRIT_COMM_F32, TRIT_COMM_MAX));
    return trit_cuda_act_quantize_amax(x, m, n, t->amax, st->q8, st->qsum, st->act_scale, s);
}

// The row-parallel matmul w (this rank's input columns) . q8, summed over the ranks: exact mode
// leaves the int32 sum in st->acc for the next norm's residual add (scale ws); grouped mode leaves
// the fp32 sum of each rank's epilogue in t->y (added by tp_residual).
enum trit_status tp_row_parallel(cuda_state *st, const trit_cuda_ternary *w, trit_cuda_wscale ws, int64_t m) {
    cuda_tp *t = &st->tp;
    const int64_t D = st->d;
    if (t->quant == TRIT_TP_QUANT_EXACT) {
        TRIT_TRY(matmul(st, w, m));
        TP_COLLECTIVE(st, trit_comm_allreduce(t->comm, st->acc, m * D, TRIT_COMM_I32, TRIT_COMM_SUM));
        return TRIT_OK;
    }
    trit_cuda_ternary scaled = *w; // the tiles carry a unit scale; the fused epilogue needs the real one
    scaled.scale = ws.scale;
    scaled.scale_kind = ws.div ? TRIT_SCALE_DIV : TRIT_SCALE_MUL;
    TRIT_TRY(m <= TRIT_CUDA_GEMV_MAX_M
                 ? trit_cuda_gemv_dp4a_f32(&scaled, st->q8, st->qsum, st->act_scale, m, t->y, st->stream)
                 : trit_cuda_gemm_mma_f32(&scaled, st->q8, st->qsum, st->act_scale, m, t->y, st->stream));
    TP_COLLECTIVE(st, trit_comm_allreduce(t->comm, t->y, m * D, TRIT_COMM_F32, TRIT_COMM_SUM));
    return TRIT_OK;
}

// The int32 accumulators the next norm adds to the residual (NULL: none, or grouped mode, whose
// fp32 sum is added here first).
enum trit_status tp_residual(cuda_state *st, int64_t m, const int32_t **acc) {
    if (!st->has_tp || st->tp.quant == TRIT_TP_QUANT_EXACT || !*acc) return TRIT_OK;
    *acc = NULL;
    return trit_cuda_tp_add(st->x, st->tp.y, m * st->d, st->stream);
}

// The vocab-parallel head's rows of every rank, all-gathered into st->logits (n_out, V).
enum trit_status tp_gather_logits(cuda_state *st, int64_t n_out) {
    cuda_tp *t = &st->tp;
    const int64_t V = st->m->hp.n_vocab, slot = n_out * t->plan.vocab_stride;
    TP_COLLECTIVE(st, trit_comm_allgather(t->comm, t->logits_loc, t->logits_all, slot, TRIT_COMM_F32));
    for (int p = 0; p < t->plan.n_ranks; p++) {
        int64_t v0 = 0, nv = 0;
        trit_tp_split(V, t->plan.n_ranks, p, &v0, &nv);
        TRIT_CUDA_CHECK(cudaMemcpy2DAsync(st->logits + v0, (size_t)V * sizeof(float), t->logits_all + p * slot,
                                          (size_t)nv * sizeof(float), (size_t)nv * sizeof(float), (size_t)n_out,
                                          cudaMemcpyDeviceToDevice, st->stream));
    }
    return TRIT_OK;
}

// Enqueues the forward pass of m tokens whose {pos0, tokens} are in h_io; logits land in st->logits.
enum trit_status enqueue(cuda_state *st, int64_t m) {
    const trit_model *mod = st->m;
    const trit_hparams *hp = &mod->hp;
    const int64_t D = st->d, V = hp->n_vocab;
    const float eps = hp->norm_eps;
    void *s = st->stream;
    const int32_t *d_pos0 = st->io, *d_tokens = st->io + 1;
    TRIT_CUDA_CHECK(cudaMemcpyAsync(st->io, st->h_io, (size_t)(m + 1) * sizeof(int32_t), cudaMemcpyHostToDevice,
                                    st->stream));
    TRIT_TRY(trit_cuda_embed(st->embd, st->embd_bf16, V, D, d_tokens, m, st->x, s));

    for (int64_t il = 0; il < hp->n_layers; il++) {
        const cuda_layer *L = &st->layers[il];
        // attention block (the previous layer's down_proj output joins the residual here)
        const int32_t *prev = il > 0 ? st->acc : NULL;
        const trit_cuda_wscale prev_ws = il > 0 ? st->layers[il - 1].ws_down : trit_cuda_wscale{1.0f, 0};
        TRIT_TRY(tp_residual(st, m, &prev));
        TRIT_TRY(trit_cuda_residual_norm_quant(st->x, m, D, prev, D, prev_ws, L->attn_norm, eps, st->q8, st->qsum,
                                               st->act_scale, s));
        TRIT_TRY(matmul(st, &L->qkv, m));
        TRIT_TRY(trit_cuda_rope_kv(st->acc, m, st->act_scale, L->ws_qkv, st->shape, (int)hp->rope_style, st->rope_cos,
                                   st->rope_sin, d_pos0, st->q, L->k_cache, L->v_cache, s));
        if (m == 1)
            TRIT_TRY(trit_cuda_attn_decode(st->q, L->k_cache, L->v_cache, st->shape, d_pos0, st->n_splits, st->part_o,
                                           st->part_ml, st->counters, st->buf, s));
        else
            TRIT_TRY(trit_cuda_attn_prefill(st->q, m, L->k_cache, L->v_cache, st->shape, d_pos0, st->buf, s));
        if (!st->has_tp) {
            // attention output (m, Hq) in buf: [attn_sub_norm], quantized for o_proj
            TRIT_TRY(trit_cuda_residual_norm_quant(st->buf, m, st->hq, NULL, 0, trit_cuda_wscale{1.0f, 0},
                                                   L->attn_sub_norm, eps, st->q8, st->qsum, st->act_scale, s));
            TRIT_TRY(matmul(st, &L->o, m));
        } else {
            // this rank's own heads of the computed ones, then the row-parallel o_proj
            float *att = st->buf;
            if (st->tp.att_own) {
                TRIT_CUDA_CHECK(cudaMemcpy2DAsync(st->tp.att_own, (size_t)st->tp.q_own * sizeof(float),
                                                  st->buf + st->tp.own_off, (size_t)st->hq * sizeof(float),
                                                  (size_t)st->tp.q_own * sizeof(float), (size_t)m,
                                                  cudaMemcpyDeviceToDevice, st->stream));
                att = st->tp.att_own;
            }
            TRIT_TRY(tp_shard_quant(st, att, m, st->tp.q_own, hp->n_heads * hp->head_dim, L->attn_sub_norm));
            TRIT_TRY(tp_row_parallel(st, &L->o, L->ws_o, m));
        }
        // feed-forward block
        const int32_t *o_acc = st->acc;
        TRIT_TRY(tp_residual(st, m, &o_acc));
        TRIT_TRY(trit_cuda_residual_norm_quant(st->x, m, D, o_acc, D, L->ws_o, L->ffn_norm, eps, st->q8, st->qsum,
                                               st->act_scale, s));
        TRIT_TRY(matmul(st, &L->gu, m));
        if (!st->has_tp || st->tp.quant == TRIT_TP_QUANT_GROUPED) {
            // one GPU, or a shard normalized and quantized with its own statistics
            TRIT_TRY(trit_cuda_ffn_act_quant(st->acc, m, st->f, L->ws_gate, L->ws_up, (int)hp->act, L->ffn_sub_norm,
                                             eps, st->buf, st->q8, st->qsum, st->act_scale, s));
        } else {
            // h (m, F_shard) into buf, then the global statistics
            TRIT_TRY(trit_cuda_ffn_act_quant(st->acc, m, st->f, L->ws_gate, L->ws_up, (int)hp->act, NULL, eps, st->buf,
                                             NULL, NULL, st->act_scale, s));
            TRIT_TRY(tp_shard_quant(st, st->buf, m, st->f, hp->ffn_dim, L->ffn_sub_norm));
        }
        if (st->has_tp) TRIT_TRY(tp_row_parallel(st, &L->down, L->ws_down, m));
        else TRIT_TRY(matmul(st, &L->down, m));
    }

    // final norm and head: every token with logits_all, else the last one
    const int64_t first = st->cfg.logits_all ? 0 : m - 1, n_out = m - first;
    const trit_cuda_wscale last_ws = st->layers[hp->n_layers - 1].ws_down;
    const bool gemm_head = !st->head_int8 && n_out > TRIT_CUDA_HEAD_MAX_M;
    const int32_t *down_acc = st->acc;
    TRIT_TRY(tp_residual(st, m, &down_acc)); // grouped mode: x += y of every token, then no acc
    TRIT_TRY(trit_cuda_residual_norm_out(st->x + first * D, n_out, D, down_acc ? down_acc + first * D : NULL, D,
                                         last_ws, st->act_scale + first, st->out_norm, eps, st->xn,
                                         gemm_head ? st->xh : NULL, st->head_bf16, s));
    if (st->head_int8)
        return trit_cuda_head_i8(st->head8_w, st->head8_d, V, D, st->head8_ld, st->xn, n_out, st->head8_q,
                                 st->head8_dx, st->logits, s);
    // with TP: this rank's st->v_head rows into logits_loc, then the all-gather
    const int64_t Vh = st->v_head;
    float *out = st->has_tp ? st->tp.logits_loc : st->logits;
    if (!gemm_head) {
        TRIT_TRY(trit_cuda_head_gemv(st->head, st->head_bf16, Vh, D, st->xn, n_out, out, s));
    } else {
        // out^T (Vh, n_out) column major = head (Vh, D) row major . xh^T
        const float one = 1.0f, zero = 0.0f;
        const cudaDataType_t t = st->head_bf16 ? CUDA_R_16BF : CUDA_R_16F;
        TRIT_CUBLAS_CHECK(cublasGemmEx(st->cublas, CUBLAS_OP_T, CUBLAS_OP_N, (int)Vh, (int)n_out, (int)D, &one, st->head,
                                       t, (int)D, st->xh, t, (int)D, &zero, out, CUDA_R_32F, (int)Vh, CUBLAS_COMPUTE_32F,
                                       CUBLAS_GEMM_DEFAULT));
    }
    return st->has_tp ? tp_gather_logits(st, n_out) : TRIT_OK;
}

// Captures enqueue(st, 1) into st->graph.
enum trit_status capture_single(cuda_state *st) {
    TRIT_CUDA_CHECK(cudaStreamBeginCapture(st->stream, cudaStreamCaptureModeThreadLocal));
    const enum trit_status status = enqueue(st, 1);
    cudaGraph_t g = NULL;
    const cudaError_t e = cudaStreamEndCapture(st->stream, &g); // always: it leaves capture mode
    if (status != TRIT_OK) {
        if (g) (void)cudaGraphDestroy(g);
        (void)cudaGetLastError();
        return status;
    }
    TRIT_CUDA_CHECK(e);
    const cudaError_t ei = cudaGraphInstantiate(&st->graph, g, 0);
    (void)cudaGraphDestroy(g);
    if (ei != cudaSuccess) st->graph = NULL;
    TRIT_CUDA_CHECK(ei);
    return TRIT_OK;
}

// Checks and enqueues the forward pass (graph replay for single tokens); st->logits holds the result
// once the stream gets there.
enum trit_status cuda_run(cuda_state *st, const int32_t *tokens, int64_t n, int64_t pos0) {
    const trit_hparams *hp = &st->m->hp;
    if (n <= 0 || n > st->cfg.n_batch)
        return trit_error(TRIT_ERR_INVALID_ARG, "cuda forward: %lld tokens (batch holds 1..%lld)", (long long)n,
                          (long long)st->cfg.n_batch);
    if (pos0 < 0 || pos0 + n > st->cfg.n_ctx)
        return trit_error(TRIT_ERR_CONTEXT_FULL, "context full: positions %lld..%lld do not fit in %lld",
                          (long long)pos0, (long long)(pos0 + n - 1), (long long)st->cfg.n_ctx);
    for (int64_t b = 0; b < n; b++)
        if (tokens[b] < 0 || tokens[b] >= hp->n_vocab)
            return trit_error(TRIT_ERR_INVALID_ARG, "token id %d is outside the vocabulary (0..%lld)", tokens[b],
                              (long long)hp->n_vocab - 1);
    st->h_io[0] = (int32_t)pos0; // read by the first copy of the step (or graph), after the last call synced
    memcpy(st->h_io + 1, tokens, (size_t)n * sizeof(int32_t));

    st->last_graphed = false;
    st->tp.ev_used = 0; // a failed call may have left some recorded
    if (n == 1 && st->graphs_enabled) {
        if (!st->graph && st->n_single_calls++ >= 1) TRIT_TRY(capture_single(st)); // after one eager call
        if (st->graph) {
            TRIT_CUDA_CHECK(cudaGraphLaunch(st->graph, st->stream));
            st->last_graphed = true;
        } else {
            TRIT_TRY(enqueue(st, 1));
        }
    } else {
        TRIT_TRY(enqueue(st, n));
    }
    return TRIT_OK;
}

// The one synchronization of a call. With TP it waits through the communicator, which polls NCCL
// for errors and aborts the group after its timeout (a dead or hung peer), then sums the time the
// call's collectives took.
enum trit_status cuda_sync(cuda_state *st, int64_t n_tokens) {
    if (!st->has_tp) {
        TRIT_CUDA_CHECK(cudaStreamSynchronize(st->stream));
        return TRIT_OK;
    }
    TRIT_TRY(trit_comm_sync(st->tp.comm));
    TRIT_TRY(tp_sum_comm_time(st));
    st->tp.n_tokens += n_tokens;
    return TRIT_OK;
}

// logits may be NULL with TP (the ranks whose logits nobody reads).
enum trit_status cuda_forward_impl(cuda_state *st, const int32_t *tokens, int64_t n, int64_t pos0, float *logits) {
    const trit_hparams *hp = &st->m->hp;
    if (!tokens || (!logits && !st->has_tp))
        return trit_error(TRIT_ERR_INVALID_ARG, "cuda forward: NULL tokens or logits");
    TRIT_TRY(cuda_run(st, tokens, n, pos0));
    const int64_t n_out = st->cfg.logits_all ? n : 1;
    if (logits)
        TRIT_CUDA_CHECK(cudaMemcpyAsync(logits, st->logits, (size_t)(n_out * hp->n_vocab) * sizeof(float),
                                        cudaMemcpyDeviceToHost, st->stream));
    return cuda_sync(st, n);
}

// Greedy on the device: the last token's row of st->logits never leaves the GPU; one int32 does.
// The argmax runs after the (graphed or eager) step, on the same stream.
enum trit_status cuda_forward_argmax_impl(cuda_state *st, const int32_t *tokens, int64_t n, int64_t pos0,
                                          int32_t *token) {
    const trit_hparams *hp = &st->m->hp;
    if (!tokens || !token) return trit_error(TRIT_ERR_INVALID_ARG, "cuda forward_argmax: NULL tokens or token");
    TRIT_TRY(cuda_run(st, tokens, n, pos0));
    const int64_t last = st->cfg.logits_all ? n - 1 : 0;
    TRIT_TRY(trit_cuda_argmax(st->logits + last * hp->n_vocab, hp->n_vocab, st->argmax, st->stream));
    int32_t *h = st->h_io + st->cfg.n_batch + 1; // pinned; no graph copy reads past h_io[n_batch]
    TRIT_CUDA_CHECK(cudaMemcpyAsync(h, st->argmax, sizeof(int32_t), cudaMemcpyDeviceToHost, st->stream));
    TRIT_TRY(cuda_sync(st, n));
    if (*h < 0) return trit_error(TRIT_ERR_INTERNAL, "cuda forward_argmax: every logit is NaN");
    *token = *h;
    return TRIT_OK;
}

// Top-k sampling's candidates on the device: the last row of st->logits never leaves the GPU; k
// (value, id) pairs do. The penalty list is filtered to vocabulary ids and deduplicated on the host
// (so it fits the V-entry device buffer whatever its length), then copied with the step.
enum trit_status cuda_forward_topk_impl(cuda_state *st, const int32_t *tokens, int64_t n, int64_t pos0, int32_t k,
                                        const int32_t *pen_ids, int32_t n_pen, float penalty, float *vals,
                                        int32_t *ids) {
    const int64_t V = st->m->hp.n_vocab;
    if (!tokens || !vals || !ids || n_pen < 0 || (n_pen > 0 && !pen_ids))
        return trit_error(TRIT_ERR_INVALID_ARG, "cuda forward_topk: NULL or negative argument");
    if (k < 1 || k > TRIT_TOPK_MAX || k > V)
        return trit_error(TRIT_ERR_INVALID_ARG, "cuda forward_topk: k %d (1 .. %d, at most the vocabulary)", k,
                          TRIT_TOPK_MAX);
    if (n_pen > 0 && penalty != 1.0f && !(penalty > 0.0f && penalty < INFINITY))
        return trit_error(TRIT_ERR_INVALID_ARG, "cuda forward_topk: repetition penalty %g (finite and > 0)",
                          (double)penalty);
    int32_t np = 0;
    if (penalty != 1.0f) { // a penalty of 1 changes no logit
        for (int32_t i = 0; i < n_pen; i++) {
            const int32_t id = pen_ids[i];
            if (id < 0 || id >= V || (st->pen_mark[id >> 3] >> (id & 7) & 1)) continue;
            st->pen_mark[id >> 3] |= (uint8_t)(1u << (id & 7));
            st->h_aux[np++] = id;
        }
        for (int32_t i = 0; i < np; i++) st->pen_mark[st->h_aux[i] >> 3] = 0;
    }
    TRIT_TRY(cuda_run(st, tokens, n, pos0));
    if (np > 0)
        TRIT_CUDA_CHECK(cudaMemcpyAsync(st->pen, st->h_aux, (size_t)np * sizeof(int32_t), cudaMemcpyHostToDevice,
                                        st->stream));
    const int64_t last = st->cfg.logits_all ? n - 1 : 0;
    TRIT_TRY(trit_cuda_topk(st->logits + last * V, V, np > 0 ? st->pen : NULL, np, penalty, k, st->topk_keys,
                            st->topk_vals, st->topk_ids, st->stream));
    int32_t *h_ids = st->h_aux + V;
    float *h_vals = reinterpret_cast<float *>(h_ids + TRIT_TOPK_MAX);
    TRIT_CUDA_CHECK(cudaMemcpyAsync(h_ids, st->topk_ids, (size_t)k * sizeof(int32_t), cudaMemcpyDeviceToHost, st->stream));
    TRIT_CUDA_CHECK(cudaMemcpyAsync(h_vals, st->topk_vals, (size_t)k * sizeof(float), cudaMemcpyDeviceToHost, st->stream));
    TRIT_TRY(cuda_sync(st, n));
    memcpy(ids, h_ids, (size_t)k * sizeof(int32_t));
    memcpy(vals, h_vals, (size_t)k * sizeof(float));
    return TRIT_OK;
}

// ---- init / free --------------------------------------------------------------------------------------

void cuda_free_impl(cuda_state *st) {
    if (!st) return;
    if (st->graph) (void)cudaGraphExecDestroy(st->graph);
    if (st->cublas) (void)cublasDestroy(st->cublas);
    if (st->stream) {
        (void)cudaStreamSynchronize(st->stream);
        if (st->own_stream) (void)cudaStreamDestroy(st->stream);
    }
    if (st->arena) (void)cudaFree(st->arena);
    if (st->h_io) (void)cudaFreeHost(st->h_io);
    if (st->h_aux) (void)cudaFreeHost(st->h_aux);
    trit_free(st->pen_mark);
    for (int i = 0; i < st->tp.n_ev; i++)
        if (st->tp.ev[i]) (void)cudaEventDestroy(st->tp.ev[i]);
    trit_free(st->tp.ev);
    trit_free(st->layers);
    trit_free(st);
}

enum trit_status check_model(const trit_model *m, const trit_backend_config *cfg) {
    const trit_hparams *hp = &m->hp;
    TRIT_TRY(trit_model_validate(m)); // every shape the arena layout relies on
    if (cfg->head_q4)
        return trit_error(TRIT_ERR_UNSUPPORTED, "cuda backend: the 4-bit LM head runs on the CPU only (use --head int8)");
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

// Tensor parallelism's arguments to cuda_init_impl (NULL comm: one GPU, the whole model).
struct tp_args {
    trit_comm *comm;
    enum trit_tp_quant quant;
};

// This rank's widths (plan.h): its query heads widened to whole GQA groups (the attention kernels
// take a query head's KV head as head / group), its KV heads, FFN rows and vocabulary rows.
enum trit_status tp_setup(cuda_state *st, const tp_args *tp) {
    const trit_hparams *hp = &st->m->hp;
    cuda_tp *t = &st->tp;
    if (trit_comm_backend(tp->comm) != TRIT_COMM_NCCL)
        return trit_error(TRIT_ERR_INVALID_ARG, "cuda backend: tensor parallelism on GPUs needs a NCCL communicator");
    if (st->cfg.head_int8)
        return trit_error(TRIT_ERR_UNSUPPORTED, "cuda backend: the int8 head does not run tensor-parallel (fp16 head only)");
    if ((unsigned)tp->quant > TRIT_TP_QUANT_GROUPED)
        return trit_error(TRIT_ERR_INVALID_ARG, "cuda backend: tp quant mode %d", (int)tp->quant);
    TRIT_TRY(trit_tp_plan_make(hp, trit_comm_rank(tp->comm), trit_comm_size(tp->comm), &t->plan));
    const int64_t hd = hp->head_dim, group = hp->n_heads / hp->n_kv_heads;
    t->comm = tp->comm;
    t->quant = tp->quant;
    t->head_c0 = t->plan.kv_head0 * group;
    t->own_off = (t->plan.head0 - t->head_c0) * hd;
    t->q_own = t->plan.n_heads * hd;
    st->has_tp = true;
    st->hq = t->plan.n_kv_heads * group * hd;
    st->hkv = t->plan.n_kv_heads * hd;
    st->n_qkv = st->hq + 2 * st->hkv;
    st->f = t->plan.n_ffn;
    st->o_cols = t->q_own;
    st->v_head = t->plan.n_vocab;
    st->shape.n_heads = t->plan.n_kv_heads * group;
    st->shape.n_kv_heads = t->plan.n_kv_heads;
    st->graphs_enabled = false; // collectives run eagerly, each one timed by events
    // an event pair per collective of a call: 3 per sharded row in exact mode, 1 in grouped, + logits
    const int n_ev = 2 * (int)(6 * hp->n_layers + 1);
    t->ev = (cudaEvent_t *)trit_alloc((size_t)n_ev * sizeof(cudaEvent_t));
    if (!t->ev) return trit_error(TRIT_ERR_OUT_OF_MEMORY, "cuda backend: out of memory");
    for (; t->n_ev < n_ev; t->n_ev++) TRIT_CUDA_CHECK(cudaEventCreate(&t->ev[t->n_ev])); // n_ev: created so far
    return TRIT_OK;
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
    st->d = hp->dim, st->f = hp->ffn_dim;
    st->hq = hp->n_heads * hp->head_dim, st->hkv = hp->n_kv_heads * hp->head_dim;
    st->n_qkv = st->hq + 2 * st->hkv;
    st->shape = trit_cuda_attn_shape{hp->n_heads, hp->n_kv_heads, hp->head_dim, st->cfg.n_ctx};
    // decode splits: about one CTA per SM over the KV heads, no split shorter than TRIT_ATT_SPLIT_MIN.
    // With TP this counts the model's KV heads, not the rank's: every rank splits each head alike,
    // which keeps exact mode's logits independent of the GPU count (at some cost in occupancy).
    int64_t splits = (n_sm + hp->n_kv_heads - 1) / hp->n_kv_heads;
    const int64_t by_ctx = (st->cfg.n_ctx + TRIT_ATT_SPLIT_MIN - 1) / TRIT_ATT_SPLIT_MIN;
    if (splits > by_ctx) splits = by_ctx;
    if (splits > TRIT_CUDA_ATT_MAX_SPLITS) splits = TRIT_CUDA_ATT_MAX_SPLITS;
    st->n_splits = splits < 1 ? 1 : (int)splits;
    st->n_out_rows = st->cfg.logits_all ? st->cfg.n_batch : 1;
    st->head_int8 = cfg->head_int8;
    st->gemv_add = cfg->cuda_gemv != TRIT_CUDA_GEMV_DP4A;
    st->use_cublas = !st->head_int8 && st->n_out_rows > TRIT_CUDA_HEAD_MAX_M;
    st->embd_bf16 = dense_is_bf16(m->tok_embd);
    st->head_bf16 = dense_is_bf16(m->output);
    st->graphs_enabled = true;
    st->o_cols = st->hq;
    st->v_head = hp->n_vocab;

    enum trit_status status = TRIT_OK;
    size_t free_b = 0, total_b = 0;
    if (tp && tp->comm && (status = tp_setup(st, tp)) != TRIT_OK) goto fail;
    st->layers = (cuda_layer *)trit_alloc((size_t)hp->n_layers * sizeof(cuda_layer));
    if (!st->layers) {
        status = trit_error(TRIT_ERR_OUT_OF_MEMORY, "cuda backend: out of memory");
        goto fail;
    }
    st->arena_bytes = (size_t)layout(st, 0);
    TRIT_CUDA_CHECK_GOTO(cudaMemGetInfo(&free_b, &total_b), status, fail);
    if (st->arena_bytes + HEADROOM_BYTES > free_b) {
        status = trit_error(TRIT_ERR_OUT_OF_MEMORY,
                            "model needs %.2f GiB of device memory (+ %.2f GiB working room), %.2f GiB free on %s "
                            "(context %lld, batch %lld%s)",
                            (double)st->arena_bytes / (1 << 30), (double)HEADROOM_BYTES / (1 << 30),
                            (double)free_b / (1 << 30), prop.name, (long long)st->cfg.n_ctx,
                            (long long)st->cfg.n_batch, st->cfg.logits_all ? ", logits for every token" : "");
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
    if (st->has_tp) {
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
    TRIT_CUDA_CHECK_GOTO(cudaMallocHost((void **)&st->h_aux, (size_t)(hp->n_vocab + 2 * TRIT_TOPK_MAX) * sizeof(int32_t)),
                         status, fail);
    st->pen_mark = (uint8_t *)trit_alloc((size_t)(hp->n_vocab + 7) / 8);
    if (!st->pen_mark) {
        status = trit_error(TRIT_ERR_OUT_OF_MEMORY, "cuda backend: out of memory");
        goto fail;
    }
    for (int64_t i = 0; i < hp->n_layers; i++) {
        const trit_layer *L = &m->layers[i];
        cuda_layer *W = &st->layers[i];
        W->ws_qkv[0] = wscale_of(L->w[TRIT_W_Q]), W->ws_qkv[1] = wscale_of(L->w[TRIT_W_K]), W->ws_qkv[2] = wscale_of(L->w[TRIT_W_V]);
        W->ws_o = wscale_of(L->w[TRIT_W_O]), W->ws_gate = wscale_of(L->w[TRIT_W_GATE]), W->ws_up = wscale_of(L->w[TRIT_W_UP]);
        W->ws_down = wscale_of(L->w[TRIT_W_DOWN]);
    }
    if ((status = upload_weights(st)) != TRIT_OK) goto fail;
    if ((status = upload_rope(st)) != TRIT_OK) goto fail;
    TRIT_CUDA_CHECK_GOTO(cudaStreamSynchronize(st->stream), status, fail);
    if (st->use_cublas) {
        const cublasStatus_t cs = cublasCreate(&st->cublas);
        if (cs != CUBLAS_STATUS_SUCCESS) {
            st->cublas = NULL;
            status = trit_error(TRIT_ERR_DEVICE, "cuda backend: cublasCreate: %s", cublasGetStatusString(cs));
            goto fail;
        }
        if (cublasSetStream(st->cublas, st->stream) != CUBLAS_STATUS_SUCCESS ||
            cublasSetWorkspace(st->cublas, st->cublas_ws, CUBLAS_WS_BYTES) != CUBLAS_STATUS_SUCCESS) {
            status = trit_error(TRIT_ERR_DEVICE, "cuda backend: cuBLAS stream or workspace setup failed");
            goto fail;
        }
    }
    snprintf(st->desc, sizeof st->desc, "CUDA %.200s, sm_%d%d, %.2f GiB, %s decode GEMV%s", prop.name, prop.major,
             prop.minor, (double)st->arena_bytes / (1 << 30), st->gemv_add ? "add-only" : "dp4a",
             st->head_int8 ? ", int8 head" : "");
    if (st->has_tp) {
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

} // namespace

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

// Each slot labelled (C++17 has no designated initializers; ggml-cuda's backend table does the same).
extern "C" const struct trit_backend_ops trit_cuda_backend = {
    /* .name           = */ "cuda",
    /* .init           = */ cuda_init,
    /* .forward        = */ cuda_forward,
    /* .free           = */ cuda_free,
    /* .describe       = */ cuda_describe,
    /* .memory_bytes   = */ cuda_memory_bytes,
    /* .forward_argmax = */ cuda_forward_argmax,
    /* .forward_topk   = */ cuda_forward_topk,
    /* .plan           = */ nullptr, // cuda_init checks its one device allocation against the free memory
};

extern "C" void trit_cuda_backend_set_graphs(void *state, bool enabled) {
    cuda_state *st = static_cast<cuda_state *>(state);
    if (st->has_tp) return; // a TP step runs its collectives eagerly
    st->graphs_enabled = enabled;
    if (!enabled && st->graph) {
        (void)cudaGraphExecDestroy(st->graph);
        st->graph = NULL;
        st->n_single_calls = 0;
    }
}

extern "C" bool trit_cuda_backend_last_call_graphed(const void *state) {
    return static_cast<const cuda_state *>(state)->last_graphed;
}

extern "C" int trit_cuda_backend_n_splits(const void *state) { return static_cast<const cuda_state *>(state)->n_splits; }

// ---- tensor parallelism: one rank's backend (host/tp/forward_tp_cuda.c drives the ranks) ------------

extern "C" enum trit_status trit_cuda_tp_rank_init(const struct trit_model *m, const struct trit_backend_config *cfg,
                                                   struct trit_comm *comm, enum trit_tp_quant quant, void **state) {
    if (!m || !cfg || !comm || !state) return trit_error(TRIT_ERR_INVALID_ARG, "cuda tp backend: NULL argument");
    const tp_args tp = {comm, quant};
    cuda_state *st = NULL;
    const enum trit_status status = cuda_init_impl(m, cfg, &tp, &st);
    *state = st;
    return status;
}

extern "C" double trit_cuda_tp_comm_ms(const void *state) { return static_cast<const cuda_state *>(state)->tp.comm_ms; }
extern "C" int64_t trit_cuda_tp_tokens(const void *state) { return static_cast<const cuda_state *>(state)->tp.n_tokens; }
