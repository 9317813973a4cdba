/*
 * backend_forward.cu: the CUDA backend's ops of the forward pass (host/forward.h), enqueued on its
 * stream; enqueue runs the one program (host/forward.c) over them. Also the one synchronization of
 * a call (cuda_sync) and the forward op (cuda_forward_impl).
 *
 * The ops, kernel for kernel (B tokens; D, Hq, Hkv, F: this rank's widths):
 *
 *   embed        io = {pos0, tokens}: one H2D copy from pinned memory (a graph node); x = embed(tokens)
 *   norm_quant   q8 = quant(rmsnorm(x [+= epilogue(pending sums)]) * norm)   trit_cuda_residual_norm_quant
 *   matmul_in    acc = [wq; wk; wv] . q8, or [w_gate; w_up] . q8: one int32 GEMV/GEMM over the
 *                concatenated rows
 *   rope_cache   q, K/V cache rows = rope(epilogue(acc))                     trit_cuda_rope_kv (fp16 cache)
 *   attention    decode: split-K, merged in-kernel (m = 1); prefill: causal tiles
 *   shard_quant  q8 = quant([rmsnorm(att) * attn_sub_norm]), or quant([rmsnorm] act(gate) * up)
 *                (trit_cuda_ffn_act_quant); with TP in exact mode the statistics of the whole row
 *   matmul_out   acc = wo . q8 or w_down . q8 (grouped TP: the fp32 epilogue fused, into tp.y)
 *   reduce       TP: the all-reduce; the residual add then rides in the next norm
 *   head         xn = rmsnorm(x += down) * out_norm (last token, or all with logits_all); logits =
 *                head . xn: own fp32 GEMV, in pieces of 8 rows for more (ops_head.cu); the int8 head
 *                (cfg.head_int8) quantizes xn per token and runs int8 rows . q in int32, scaled
 *   gather       TP: every rank's vocabulary slice
 *   logits -> host                              the one synchronization of a call
 *   (forward_argmax: argmax of the last row on the device, one int32 -> host instead;
 *    forward_topk: the penalized top-k of the last row on the device, k (value, id) pairs -> host)
 *
 * Every ternary matmul runs as int32 (for m <= 8 the add-only GEMV trit_cuda_gemv_add_i32, or
 * trit_cuda_gemv_dp4a_i32 with cfg.cuda_gemv DP4A; trit_cuda_gemm_mma_i32 above; grouped TP's fused
 * fp32 epilogue exists for dp4a only, so that path runs dp4a) and the kernel that reads its output
 * applies the epilogue (trit_epilogue_one, bit for bit the CPU's) with that matrix's scale: that is
 * what lets q|k|v and gate|up, whose scales differ, run as one launch each, and the residual adds
 * ride in the norms. 10 launches per layer.
 */
#include "backend_internal.cuh"

namespace trit_cuda_be {

// ---- forward ----------------------------------------------------------------------------------------

// acc (m, w->n_rows) int32 = w . q8: the decode GEMV the config chose for m <= 8, the tensor-core
// GEMM above.
enum trit_status matmul(cuda_state *st, const trit_cuda_ternary *w, int64_t m) {
    if (m > TRIT_CUDA_GEMV_MAX_M) return trit_cuda_gemm_mma_i32(w, st->q8, st->qsum, m, 0, st->acc, st->stream);
    return st->gemv_add ? trit_cuda_gemv_add_i32(w, st->q8, m, st->acc, st->stream)
                        : trit_cuda_gemv_dp4a_i32(w, st->q8, st->qsum, m, st->acc, st->stream);
}

namespace {

// The ops of the forward pass (host/forward.h), enqueued on st->stream. They read the positions and
// tokens from the device copy io, never from the batch: a decode step is captured once as a graph
// and replayed at every position (backend_graph.cu). The residual add of a block's output is fused
// into the next norm (st->pend: the int32 sums and their scales, NULL when nothing is pending).

cuda_state *state_of(void *be) { return static_cast<cuda_state *>(be); }

enum trit_status op_embed(void *be, const trit_forward_batch *b) {
    cuda_state *st = state_of(be);
    TRIT_CUDA_CHECK(cudaMemcpyAsync(st->io, st->h_io, (size_t)(b->n + 1) * sizeof(int32_t), cudaMemcpyHostToDevice,
                                    st->stream));
    st->pend = NULL;
    st->pend_ws = trit_cuda_wscale{1.0f, 0};
    return trit_cuda_embed(st->embd, st->embd_bf16, st->m->hp.n_vocab, st->d, st->io + 1, b->n, st->x, st->stream);
}

enum trit_status op_norm_quant(void *be, int64_t il, trit_block blk, const trit_forward_batch *b) {
    cuda_state *st = state_of(be);
    const cuda_layer *L = &st->layers[il];
    TRIT_TRY(trit_cuda_residual_norm_quant(st->x, b->n, st->d, st->pend, st->d, st->pend_ws,
                                           blk == TRIT_BLOCK_ATTN ? L->attn_norm : L->ffn_norm, st->m->hp.norm_eps,
                                           st->q8, st->qsum, st->act_scale, st->stream));
    st->pend = NULL;
    return TRIT_OK;
}

// One launch for q|k|v and one for gate|up: their scales differ, so the epilogue waits for the
// kernel that reads the sums (trit_cuda_rope_kv, trit_cuda_ffn_act_quant).
enum trit_status op_matmul_in(void *be, int64_t il, trit_block blk, const trit_forward_batch *b) {
    cuda_state *st = state_of(be);
    return matmul(st, blk == TRIT_BLOCK_ATTN ? &st->layers[il].qkv : &st->layers[il].gu, b->n);
}

enum trit_status op_rope_cache(void *be, int64_t il, const trit_forward_batch *b) {
    cuda_state *st = state_of(be);
    const cuda_layer *L = &st->layers[il];
    return trit_cuda_rope_kv(st->acc, b->n, st->act_scale, L->ws_qkv, st->shape, (int)st->m->hp.rope_style,
                             st->rope_cos, st->rope_sin, st->io, st->q, L->k_cache, L->v_cache, st->stream);
}

// decode: split-K, merged in-kernel (m = 1); prefill: causal tiles. Output (m, Hq) in buf.
enum trit_status op_attention(void *be, int64_t il, const trit_forward_batch *b) {
    cuda_state *st = state_of(be);
    const cuda_layer *L = &st->layers[il];
    if (b->n == 1)
        return trit_cuda_attn_decode(st->q, L->k_cache, L->v_cache, st->shape, st->io, st->n_splits, st->part_o,
                                     st->part_ml, st->counters, st->buf, st->stream);
    return trit_cuda_attn_prefill(st->q, b->n, L->k_cache, L->v_cache, st->shape, st->io, st->buf, st->stream);
}

enum trit_status op_shard_quant(void *be, int64_t il, trit_block blk, const trit_forward_batch *b) {
    cuda_state *st = state_of(be);
    const trit_hparams *hp = &st->m->hp;
    const cuda_layer *L = &st->layers[il];
    const int64_t m = b->n;
    const float eps = hp->norm_eps;
    void *s = st->stream;
    if (blk == TRIT_BLOCK_ATTN) {
        // the attention output (m, Hq) in buf; this rank's own heads of the computed ones (all of
        // them at one rank): [attn_sub_norm], quantized for o_proj
        float *att = st->buf;
        if (st->tp.att_own) {
            TRIT_CUDA_CHECK(cudaMemcpy2DAsync(st->tp.att_own, (size_t)st->tp.q_own * sizeof(float),
                                              st->buf + st->tp.own_off, (size_t)st->hq * sizeof(float),
                                              (size_t)st->tp.q_own * sizeof(float), (size_t)m, cudaMemcpyDeviceToDevice,
                                              st->stream));
            att = st->tp.att_own;
        }
        return tp_shard_quant(st, att, m, st->tp.q_own, hp->n_heads * hp->head_dim, L->attn_sub_norm);
    }
    if (st->tp.quant == TRIT_TP_QUANT_GROUPED) // the shard's own statistics (one GPU: the row's)
        return trit_cuda_ffn_act_quant(st->acc, m, st->f, L->ws_gate, L->ws_up, (int)hp->act, L->ffn_sub_norm, eps,
                                       st->buf, st->q8, st->qsum, st->act_scale, s);
    // h (m, F_shard) into buf, then the statistics of the whole row
    TRIT_TRY(trit_cuda_ffn_act_quant(st->acc, m, st->f, L->ws_gate, L->ws_up, (int)hp->act, NULL, eps, st->buf, NULL,
                                     NULL, st->act_scale, s));
    return tp_shard_quant(st, st->buf, m, st->f, hp->ffn_dim, L->ffn_sub_norm);
}

enum trit_status op_matmul_out(void *be, int64_t il, trit_block blk, const trit_forward_batch *b) {
    cuda_state *st = state_of(be);
    const cuda_layer *L = &st->layers[il];
    const trit_cuda_ternary *w = blk == TRIT_BLOCK_ATTN ? &L->o : &L->down;
    if (st->multi_rank && st->tp.quant == TRIT_TP_QUANT_GROUPED)
        return tp_matmul_grouped(st, w, blk == TRIT_BLOCK_ATTN ? L->ws_o : L->ws_down, b->n);
    return matmul(st, w, b->n);
}

enum trit_status op_reduce(void *be, int64_t il, trit_block blk, const trit_forward_batch *b) {
    cuda_state *st = state_of(be);
    st->pend = st->acc; // int32 sums (exact mode, or one rank): the next norm adds their epilogue to x
    st->pend_ws = blk == TRIT_BLOCK_ATTN ? st->layers[il].ws_o : st->layers[il].ws_down;
    return tp_reduce(st, b->n);
}

// The final norm (x += the last down_proj) of the wanted rows, and this rank's rows of the head:
// the own fp32 GEMV for any number of rows (pieces of 8), or the int8 head.
enum trit_status op_head(void *be, const trit_forward_batch *b) {
    cuda_state *st = state_of(be);
    const int64_t D = st->d, V = st->m->hp.n_vocab, first = b->first_out, n_out = b->n_out;
    void *s = st->stream;
    TRIT_TRY(trit_cuda_residual_norm_out(st->x + first * D, n_out, D, st->pend ? st->pend + first * D : NULL, D,
                                         st->pend_ws, st->act_scale + first, st->out_norm, st->m->hp.norm_eps, st->xn,
                                         NULL, st->head_bf16, s));
    st->pend = NULL;
    if (st->head_int8)
        return trit_cuda_head_i8(st->head8_w, st->head8_d, V, D, st->head8_ld, st->xn, n_out, st->head8_q,
                                 st->head8_dx, st->logits, s);
    const int64_t Vh = st->v_head;
    float *out = st->multi_rank ? st->tp.logits_loc : st->logits; // one rank: whole rows
    return trit_cuda_head_gemv(st->head, st->head_bf16, Vh, D, st->xn, n_out, out, s);
}

enum trit_status op_gather_logits(void *be, const trit_forward_batch *b) {
    cuda_state *st = state_of(be);
    return st->multi_rank ? tp_gather_logits(st, b->n_out) : TRIT_OK;
}

const trit_layer_ops cuda_ops = {
    .embed = op_embed,
    .norm_quant = op_norm_quant,
    .matmul_in = op_matmul_in,
    .rope_cache = op_rope_cache,
    .attention = op_attention,
    .shard_quant = op_shard_quant,
    .matmul_out = op_matmul_out,
    .reduce = op_reduce,
    .head = op_head,
    .gather_logits = op_gather_logits,
};

} // namespace

// Enqueues the forward pass (host/forward.c) of m tokens whose {pos0, tokens} are in h_io; logits
// land in st->logits.
enum trit_status enqueue(cuda_state *st, int64_t m) {
    trit_forward_batch b = {};
    b.tokens = st->h_io + 1;
    b.n = m;
    b.pos0 = st->h_io[0];
    b.first_out = st->cfg.logits_all ? 0 : m - 1;
    b.n_out = m - b.first_out;
    return trit_forward_run(&cuda_ops, st, &st->m->hp, &b);
}

// The one synchronization of a call. With TP it waits through the communicator, which polls NCCL
// for errors and aborts the group after its timeout (a dead or hung peer), then sums the time the
// call's collectives took.
enum trit_status cuda_sync(cuda_state *st, int64_t n_tokens) {
    if (!st->nccl) {
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
    if (!tokens || (!logits && !st->nccl))
        return trit_error(TRIT_ERR_INVALID_ARG, "cuda forward: NULL tokens or logits");
    TRIT_TRY(cuda_run(st, tokens, n, pos0));
    const int64_t n_out = st->cfg.logits_all ? n : 1;
    const size_t bytes = (size_t)(n_out * hp->n_vocab) * sizeof(float);
    if (!st->nccl) {
        TRIT_CUDA_CHECK(cudaMemcpyAsync(logits, st->logits, bytes, cudaMemcpyDeviceToHost, st->stream));
        return cuda_sync(st, n);
    }
    // A copy to pageable memory blocks the host until the stream has run up to it, NCCL included,
    // outside the communicator's polling and abort (review finding 5). A NCCL rank waits in cuda_sync
    // first (which polls NCCL and aborts a hung group), and copies once the stream is idle.
    TRIT_TRY(cuda_sync(st, n));
    if (!logits) return TRIT_OK;
    TRIT_CUDA_CHECK(cudaMemcpyAsync(logits, st->logits, bytes, cudaMemcpyDeviceToHost, st->stream));
    TRIT_CUDA_CHECK(cudaStreamSynchronize(st->stream)); // only this copy is left on the stream
    return TRIT_OK;
}

} // namespace trit_cuda_be
