/*
 * backend_forward.cu: the CUDA backend's forward pass, enqueued on its stream (enqueue), the one
 * synchronization of a call (cuda_sync) and the forward op (cuda_forward_impl).
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
 */
#include "backend_internal.cuh"

#define TRIT_CUBLAS_CHECK(call)                                                                    \
    do {                                                                                           \
        const cublasStatus_t trit_cublas_s_ = (call);                                              \
        if (trit_cublas_s_ != CUBLAS_STATUS_SUCCESS)                                               \
            return trit_error(TRIT_ERR_DEVICE, "%s:%d: %s: %s", __FILE__, __LINE__, #call,          \
                              cublasGetStatusString(trit_cublas_s_));                              \
    } while (0)

namespace trit_cuda_be {

// ---- forward ----------------------------------------------------------------------------------------

// acc (m, w->n_rows) int32 = w . q8: the decode GEMV the config chose for m <= 8, the tensor-core
// GEMM above.
enum trit_status matmul(cuda_state *st, const trit_cuda_ternary *w, int64_t m) {
    if (m > TRIT_CUDA_GEMV_MAX_M) return trit_cuda_gemm_mma_i32(w, st->q8, st->qsum, m, 0, st->acc, st->stream);
    return st->gemv_add ? trit_cuda_gemv_add_i32(w, st->q8, m, st->acc, st->stream)
                        : trit_cuda_gemv_dp4a_i32(w, st->q8, st->qsum, m, st->acc, st->stream);
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

} // namespace trit_cuda_be
