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
 *   rope_cache   q, K/V cache rows = rope(epilogue(acc))              trit_cuda_rope_kv_paged (fp16 pool)
 *   attention    decode: split-K, merged in-kernel (m = 1); prefill: causal tiles; forward_batch:
 *                every token through the decode kernel at its own position and block table
 *   shard_quant  q8 = quant([rmsnorm(att) * attn_sub_norm]), or quant([rmsnorm] act(gate) * up)
 *                (trit_cuda_ffn_act_quant); with TP in exact mode the statistics of the whole row
 *   matmul_out   acc = wo . q8 or w_down . q8 (grouped TP: the fp32 epilogue fused, into tp.y)
 *   reduce       TP: the all-reduce; the residual add then rides in the next norm
 *   head         xn = rmsnorm(x += down) * out_norm (last token, or all with logits_all, or
 *                forward_batch's wanted rows, gathered by the norm); logits =
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
 *
 * Group-scaled models (Q2_0, Qwen3; docs/design.md section 3; one GPU): every matmul runs the group
 * rule's kernels (trit_cuda_gemv_group_f32 / _gemm_group_f32), which write fp32 values into acc, and
 * every scale a consumer applies is TRIT_EPI_F32 (take the value as it is). Their inputs come from
 * group_quant: with activations per 64 columns the norm (or the attention output, or the FFN's h)
 * is written as fp32 rows into buf and quantized per block; per token, the usual fused quantization
 * is completed with each block's sum. Qwen3's q and k heads are normalized in acc before RoPE
 * (trit_cuda_head_rmsnorm). 11 to 14 launches per layer.
 *
 * The KV cache is a pool of blocks (docs/design.md section 9): every op reads where a token sits
 * through st->map. forward runs one sequence in blocks 0, 1, 2, ... (the identity table st->ident,
 * as the CPU backend's forward does), so its kernels, its graph and its bits are those of a
 * contiguous cache; forward_batch uploads each token's position, its sequence's block table and
 * the wanted rows, and runs every token through the decode attention, so that a token's result
 * is the same whatever else the batch holds (host/forward.h; tests/test_cuda_backend.c). A
 * tensor-parallel rank runs both over its own KV heads' cache, with its collectives
 * (tests/test_cuda_tp.c).
 */
#include <string.h>

#include "backend_internal.cuh"
#include "ops_hd.h"

static_assert(TRIT_CUDA_KV_BLOCK == TRIT_KV_BLOCK, "the kernels' KV block is the pool's");

namespace trit_cuda_be {

// ---- forward ----------------------------------------------------------------------------------------

// acc (m, w->n_rows) int32 = w . q8: the decode GEMV the config chose for m <= 8, the tensor-core
// GEMM above. A group-scaled w: the group rule's fp32 values into acc (its consumers read them with
// TRIT_EPI_F32 scales), from q8, the block sums and 1 / s that group_quant wrote.
enum trit_status matmul(cuda_state *st, const trit_cuda_ternary *w, int64_t m) {
    if (w->group > 0) {
        float *y = reinterpret_cast<float *>(st->acc);
        if (m > TRIT_CUDA_GEMV_MAX_M)
            return trit_cuda_gemm_group_f32(w, st->q8, st->bsum, st->act_inv, st->act_block, m, y, st->stream);
        return trit_cuda_gemv_group_f32(w, st->q8, st->bsum, st->act_inv, st->act_block, m, y, st->stream);
    }
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

// The group rule's matmul inputs: the fp32 rows x (m, k) quantized per 64 columns (act_block 64), or
// rows already quantized per token into q8 (x NULL; act_block 0) completed with their block sums.
enum trit_status group_quant(cuda_state *st, const float *x, int64_t m, int64_t k) {
    if (!x) return trit_cuda_act_block_sums(st->q8, m, k, st->act_scale, st->bsum, st->act_inv, st->stream);
    return trit_cuda_act_quantize_blocks(x, m, k, st->act_block, st->q8, st->bsum, st->act_sblk, st->act_inv,
                                         st->stream);
}

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
    if (st->group_rule && st->act_block > 0) { // the normalized rows (fp32, in buf), then per 64 columns
        TRIT_TRY(trit_cuda_residual_norm_out(st->x, b->n, st->d, st->pend, st->d, st->pend_ws, st->act_scale,
                                             blk == TRIT_BLOCK_ATTN ? L->attn_norm : L->ffn_norm, st->m->hp.norm_eps,
                                             st->buf, NULL, 0, st->stream));
        st->pend = NULL;
        return group_quant(st, st->buf, b->n, st->d);
    }
    TRIT_TRY(trit_cuda_residual_norm_quant(st->x, b->n, st->d, st->pend, st->d, st->pend_ws,
                                           blk == TRIT_BLOCK_ATTN ? L->attn_norm : L->ffn_norm, st->m->hp.norm_eps,
                                           st->q8, st->qsum, st->act_scale, st->stream));
    st->pend = NULL;
    return st->group_rule ? group_quant(st, NULL, b->n, st->d) : TRIT_OK;
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
    const trit_hparams *hp = &st->m->hp;
    if (L->q_norm) { // Qwen3: every q and k head normalized before RoPE, in the fp32 values of acc
        float *a = reinterpret_cast<float *>(st->acc);
        TRIT_TRY(trit_cuda_head_rmsnorm(a, b->n, st->n_qkv, 0, hp->n_heads, hp->head_dim, L->q_norm, hp->norm_eps,
                                        st->stream));
        TRIT_TRY(trit_cuda_head_rmsnorm(a, b->n, st->n_qkv, hp->n_heads * hp->head_dim, hp->n_kv_heads, hp->head_dim,
                                        L->k_norm, hp->norm_eps, st->stream));
    }
    return trit_cuda_rope_kv_paged(st->acc, b->n, st->act_scale, L->ws_qkv, st->shape, (int)st->m->hp.rope_style,
                                   st->rope_cos, st->rope_sin, st->map, st->q, L->k_cache, L->v_cache, st->stream);
}

// decode: split-K, merged in-kernel (m = 1, and every token of forward_batch); prefill (forward,
// m > 1): causal tiles. Output (m, Hq) in buf.
enum trit_status op_attention(void *be, int64_t il, const trit_forward_batch *b) {
    cuda_state *st = state_of(be);
    const cuda_layer *L = &st->layers[il];
    if (b->n == 1 || st->batched)
        return trit_cuda_attn_decode_paged(st->q, b->n, L->k_cache, L->v_cache, st->shape, st->map, st->n_splits,
                                           st->part_o, st->part_ml, st->counters, st->buf, st->stream);
    return trit_cuda_attn_prefill_paged(st->q, b->n, L->k_cache, L->v_cache, st->shape, st->map, 0, st->buf,
                                        st->stream);
}

enum trit_status op_shard_quant(void *be, int64_t il, trit_block blk, const trit_forward_batch *b) {
    cuda_state *st = state_of(be);
    const trit_hparams *hp = &st->m->hp;
    const cuda_layer *L = &st->layers[il];
    const int64_t m = b->n;
    const float eps = hp->norm_eps;
    void *s = st->stream;
    if (st->group_rule && st->act_block > 0) { // one GPU, no sub-norms (init): fp32 rows, then per 64 columns
        if (blk == TRIT_BLOCK_ATTN) return group_quant(st, st->buf, m, st->hq);
        TRIT_TRY(trit_cuda_ffn_act_quant(st->acc, m, st->f, L->ws_gate, L->ws_up, (int)hp->act, NULL, eps, st->buf,
                                         NULL, NULL, st->act_scale, s));
        return group_quant(st, st->buf, m, st->f);
    }
    if (st->group_rule) { // per token, as below, then the block sums
        if (blk == TRIT_BLOCK_ATTN)
            TRIT_TRY(tp_shard_quant(st, st->buf, m, st->hq, hp->n_heads * hp->head_dim, L->attn_sub_norm));
        else
            TRIT_TRY(trit_cuda_ffn_act_quant(st->acc, m, st->f, L->ws_gate, L->ws_up, (int)hp->act, L->ffn_sub_norm,
                                             eps, st->buf, st->q8, st->qsum, st->act_scale, s));
        return group_quant(st, NULL, m, blk == TRIT_BLOCK_ATTN ? st->hq : st->f);
    }
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
// the own fp32 GEMV for any number of rows (pieces of 8), or the int8 head. forward_batch's rows
// (b->out, uploaded to batch + 2 B) are gathered by the norm; none: nothing to do.
enum trit_status op_head(void *be, const trit_forward_batch *b) {
    cuda_state *st = state_of(be);
    const int64_t D = st->d, V = st->m->hp.n_vocab, first = b->first_out, n_out = b->n_out;
    void *s = st->stream;
    if (n_out == 0) return TRIT_OK; // a prefill chunk that wants no logits
    if (st->batched)
        TRIT_TRY(trit_cuda_residual_norm_out_rows(st->x, n_out, D, st->batch + 2 * st->cfg.n_batch, st->pend, D,
                                                  st->pend_ws, st->act_scale, st->out_norm, st->m->hp.norm_eps,
                                                  st->xn, NULL, st->head_bf16, s));
    else
        TRIT_TRY(trit_cuda_residual_norm_out(st->x + first * D, n_out, D, st->pend ? st->pend + first * D : NULL, D,
                                             st->pend_ws, st->act_scale + first, st->out_norm, st->m->hp.norm_eps,
                                             st->xn, NULL, st->head_bf16, s));
    st->pend = NULL;
    if (st->head_int8)
        return trit_cuda_head_i8(st->head8_w, st->head8_d, V, D, st->head8_ld, st->xn, n_out, st->head8_q,
                                 st->head8_dx, st->logits, s);
    const int64_t Vh = st->v_head;
    float *out = st->multi_rank ? st->tp.logits_loc : st->logits; // one rank: whole rows
    return trit_cuda_head_gemv(st->head, st->head_bf16, Vh, D, st->xn, n_out, out, s);
}

// (n_out is the batch's, alike on every rank: a prefill chunk that wants no logits skips the
// all-gather on all of them.)
enum trit_status op_gather_logits(void *be, const trit_forward_batch *b) {
    cuda_state *st = state_of(be);
    return st->multi_rank && b->n_out > 0 ? tp_gather_logits(st, b->n_out) : TRIT_OK;
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

namespace {

// The end of a call whose step is enqueued: its one synchronization, and `bytes` of st->logits to
// the host (logits NULL: none, as on the TP ranks whose logits nobody reads). One GPU: the copy
// queues behind the step. A copy to pageable memory blocks the host until the stream has run up to
// it, NCCL included, outside the communicator's polling and abort (review finding 5): a NCCL rank
// waits in cuda_sync first (which polls NCCL and aborts a hung group), and copies once the stream
// is idle.
enum trit_status finish_logits(cuda_state *st, float *logits, size_t bytes, int64_t n_tokens) {
    if (!st->nccl) {
        if (logits) TRIT_CUDA_CHECK(cudaMemcpyAsync(logits, st->logits, bytes, cudaMemcpyDeviceToHost, st->stream));
        return cuda_sync(st, n_tokens);
    }
    TRIT_TRY(cuda_sync(st, n_tokens));
    if (!logits) return TRIT_OK;
    TRIT_CUDA_CHECK(cudaMemcpyAsync(logits, st->logits, bytes, cudaMemcpyDeviceToHost, st->stream));
    TRIT_CUDA_CHECK(cudaStreamSynchronize(st->stream)); // only this copy is left on the stream
    return TRIT_OK;
}

} // namespace

// logits may be NULL with TP (the ranks whose logits nobody reads).
enum trit_status cuda_forward_impl(cuda_state *st, const int32_t *tokens, int64_t n, int64_t pos0, float *logits) {
    const trit_hparams *hp = &st->m->hp;
    if (!tokens || (!logits && !st->nccl))
        return trit_error(TRIT_ERR_INVALID_ARG, "cuda forward: NULL tokens or logits");
    TRIT_TRY(cuda_run(st, tokens, n, pos0));
    const int64_t n_out = st->cfg.logits_all ? n : 1;
    return finish_logits(st, logits, (size_t)(n_out * hp->n_vocab) * sizeof(float), n);
}

// ---- forward_batch: several sequences over the paged cache ----------------------------------------

namespace {

// The index of block table `tab` among the batch's distinct ones (st->seen, added when new), or -1
// when the batch holds more distinct sequences than n_tables. last: the previous token's answer (a
// sequence's tokens usually come together).
int32_t table_index(cuda_state *st, int32_t *n_seen, const int32_t *tab, int32_t last) {
    if (last >= 0 && st->seen[last] == tab) return last;
    for (int32_t j = 0; j < *n_seen; j++)
        if (st->seen[j] == tab) return j;
    if (*n_seen == st->n_tables) return -1;
    st->seen[*n_seen] = tab;
    st->seen_last[*n_seen] = -1;
    return (*n_seen)++;
}

} // namespace

// Checks the batch against the state (host/forward.h's contract; api.c checked it against the pool
// already), fills the pinned arrays (h_io: the tokens; h_batch: positions, each token's table, the
// wanted rows, and each distinct table up to the block of its furthest position), uploads them in
// two copies, enqueues the forward pass and copies the n_out rows of logits back: one sync.
//
// A tensor-parallel rank (st->nccl) runs the same program with its collectives; logits may be NULL
// on the ranks whose logits nobody reads. Every rank of the group gets the same batch and has the
// same context, batch size, pool and tables, so each check below gives the same verdict on every
// rank: a refused batch enqueues nothing anywhere, and no rank waits on a collective another rank
// never issues. (Only the logits pointer differs between ranks: a NCCL rank does not check it, the
// driver does, once for the group: host/tp/forward_tp_cuda.c.)
enum trit_status cuda_forward_batch_impl(cuda_state *st, const trit_forward_batch *b, float *logits) {
    const trit_hparams *hp = &st->m->hp;
    const int64_t B = st->cfg.n_batch, n = b ? b->n : 0;
    if (!b || !b->tokens || !b->pos || !b->blocks || (b->n_out > 0 && (!b->out || (!logits && !st->nccl))) || n < 1 ||
        n > B || b->n_out < 0 || b->n_out > st->n_out_rows)
        return trit_error(TRIT_ERR_INVALID_ARG,
                          "cuda forward_batch: a batch of %lld tokens and %lld rows of logits (%lld and %lld at most)",
                          (long long)n, b ? (long long)b->n_out : 0LL, (long long)B, (long long)st->n_out_rows);
    int32_t *pos = st->h_batch, *tok_tab = pos + B, *out = tok_tab + B, *tables = out + B;
    int32_t n_seen = 0, last = -1;
    for (int64_t i = 0; i < n; i++) {
        const int32_t p = b->pos[i];
        if (b->tokens[i] < 0 || b->tokens[i] >= hp->n_vocab || p < 0 || p >= st->cfg.n_ctx || !b->blocks[i])
            return trit_error(TRIT_ERR_INVALID_ARG, "cuda forward_batch: token %lld: id %d at position %d (context %lld)",
                              (long long)i, b->tokens[i], p, (long long)st->cfg.n_ctx);
        if ((last = table_index(st, &n_seen, b->blocks[i], last)) < 0)
            return trit_error(TRIT_ERR_INVALID_ARG, "cuda forward_batch: more than %d sequences in one batch",
                              st->n_tables);
        st->h_io[1 + i] = b->tokens[i];
        pos[i] = p;
        tok_tab[i] = last;
        if (p > st->seen_last[last]) st->seen_last[last] = p;
    }
    for (int64_t r = 0; r < b->n_out; r++) { // distinct rows of the batch, ascending (the norm writes x in place)
        if (b->out[r] < 0 || b->out[r] >= n || (r > 0 && b->out[r] <= b->out[r - 1]))
            return trit_error(TRIT_ERR_INVALID_ARG, "cuda forward_batch: logits row %lld is token %d of %lld (ascending)",
                              (long long)r, b->out[r], (long long)n);
        out[r] = b->out[r];
    }
    for (int32_t j = 0; j < n_seen; j++) { // the blocks each sequence's tokens reach
        const int32_t n_blk = st->seen_last[j] / TRIT_KV_BLOCK + 1;
        for (int32_t k = 0; k < n_blk; k++) {
            const int32_t id = st->seen[j][k];
            if (id < 0 || id >= st->n_kv_blocks)
                return trit_error(TRIT_ERR_INVALID_ARG, "cuda forward_batch: block %d outside the pool of %lld", id,
                                  (long long)st->n_kv_blocks);
            tables[(int64_t)j * st->max_blocks + k] = id;
        }
    }
    st->h_io[0] = 0; // (no pos0: every token has its position)
    st->map = trit_cuda_kv_map{st->io, st->batch, st->batch + 3 * B, st->batch + B, st->max_blocks};
    st->batched = true;
    st->last_graphed = false;
    st->tp.ev_used = 0; // a failed call may have left some recorded
    const size_t up = (size_t)(3 * B + (int64_t)n_seen * st->max_blocks) * sizeof(int32_t);
    enum trit_status status = TRIT_OK;
    TRIT_CUDA_CHECK_GOTO(cudaMemcpyAsync(st->batch, st->h_batch, up, cudaMemcpyHostToDevice, st->stream), status, done);
    {
        trit_forward_batch fb = *b; // the ops read the device copies; op_embed uploads h_io's tokens
        fb.pos0 = 0;
        fb.first_out = 0;
        status = trit_forward_run(&cuda_ops, st, hp, &fb);
    }
    if (status == TRIT_OK)
        status = finish_logits(st, b->n_out > 0 ? logits : NULL, (size_t)(b->n_out * hp->n_vocab) * sizeof(float), n);
done:
    st->batched = false;
    // One GPU: h_batch and h_io are free again once the stream is. A NCCL rank does not wait here (as
    // cuda_forward_impl): its stream may hold a collective that a failed peer never issues, and the
    // failure breaks the group (host/tp/forward_tp_cuda.c aborts the communicators, which ends what
    // is pending); the arrays were read by the call's first copies, ahead of its first collective.
    if (status != TRIT_OK && !st->nccl) (void)cudaStreamSynchronize(st->stream);
    return status;
}

// Block `from`'s K and V rows of every layer into block `to`, on the stream (before the batch that
// writes into `to`). A tensor-parallel rank copies the rows of its own KV heads (st->hkv), on its
// communicator's stream (st->stream): ordered with the collectives and kernels of the next batch.
// The bounds are the pool's, alike on every rank, so a refusal is too.
enum trit_status cuda_kv_copy_impl(cuda_state *st, int32_t from, int32_t to) {
    if (from < 0 || to < 0 || from >= st->n_kv_blocks || to >= st->n_kv_blocks)
        return trit_error(TRIT_ERR_INVALID_ARG, "cuda kv copy: block %d -> %d outside the pool of %lld", from, to,
                          (long long)st->n_kv_blocks);
    const int64_t rows = TRIT_KV_BLOCK * st->hkv; // halves of one block
    const size_t bytes = (size_t)rows * sizeof(__half);
    for (int64_t il = 0; il < st->m->hp.n_layers; il++) {
        const cuda_layer *L = &st->layers[il];
        TRIT_CUDA_CHECK(cudaMemcpyAsync(L->k_cache + to * rows, L->k_cache + from * rows, bytes,
                                        cudaMemcpyDeviceToDevice, st->stream));
        TRIT_CUDA_CHECK(cudaMemcpyAsync(L->v_cache + to * rows, L->v_cache + from * rows, bytes,
                                        cudaMemcpyDeviceToDevice, st->stream));
    }
    return TRIT_OK;
}

} // namespace trit_cuda_be
