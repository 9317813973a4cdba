/*
 * backend_tp.cu: tensor parallelism in the CUDA backend (host/tp/tp.h's math on the device): a
 * rank's widths (tp_setup), its slices of the weights (tp_slices_make, uploaded by
 * backend_arena.cu), the collectives of the forward pass and their timing, and the C entry points
 * of one rank (trit_cuda_backend.h; host/tp/forward_tp_cuda.c drives the ranks).
 */
#include <stdio.h>

#include "backend_internal.cuh"
#include "trit_cuda_tp.h"

namespace trit_cuda_be {

// This rank's communicator and widths (plan.h): its query heads widened to whole GQA groups (the
// attention kernels take a query head's KV head as head / group), its KV heads, FFN rows and
// vocabulary rows. Without a communicator (one GPU) it is rank 0 of 1 on the one-rank one, in
// grouped mode: every width is the model's.
enum trit_status tp_setup(cuda_state *st, const tp_args *tp) {
    const trit_hparams *hp = &st->m->hp;
    cuda_tp *t = &st->tp;
    if (tp && tp->comm) {
        if (trit_comm_backend(tp->comm) != TRIT_COMM_NCCL)
            return trit_error(TRIT_ERR_INVALID_ARG, "cuda backend: tensor parallelism on GPUs needs a NCCL communicator");
        if (st->cfg.head_int8)
            return trit_error(TRIT_ERR_UNSUPPORTED, "cuda backend: the int8 head does not run tensor-parallel (fp16 head only)");
        if ((unsigned)tp->quant > TRIT_TP_QUANT_GROUPED)
            return trit_error(TRIT_ERR_INVALID_ARG, "cuda backend: tp quant mode %d", (int)tp->quant);
        t->comm = tp->comm;
        t->quant = tp->quant;
        st->nccl = true;
    } else {
        TRIT_TRY(trit_comm_self_create(&t->comm));
        t->own_comm = true;
        t->quant = TRIT_TP_QUANT_GROUPED;
    }
    TRIT_TRY(trit_tp_plan_make(hp, trit_comm_rank(t->comm), trit_comm_size(t->comm), &t->plan));
    const int64_t hd = hp->head_dim;
    st->multi_rank = t->plan.n_ranks > 1;
    t->own_off = (t->plan.head0 - t->plan.head_c0) * hd;
    t->q_own = t->plan.n_heads * hd;
    st->hq = t->plan.n_heads_c * hd;
    st->hkv = t->plan.n_kv_heads * hd;
    st->n_qkv = st->hq + 2 * st->hkv;
    st->f = t->plan.n_ffn;
    st->o_cols = t->q_own;
    st->v_head = t->plan.n_vocab;
    st->shape.n_heads = t->plan.n_heads_c;
    st->shape.n_kv_heads = t->plan.n_kv_heads;
    if (!st->nccl) return TRIT_OK;
    st->graphs_enabled = false; // collectives run eagerly, each one timed by events
    // an event pair per collective of a call: 3 per sharded row in exact mode, 1 in grouped, + logits
    const int n_ev = 2 * (int)(6 * hp->n_layers + 1);
    t->ev = (cudaEvent_t *)trit_alloc((size_t)n_ev * sizeof(cudaEvent_t));
    if (!t->ev) return trit_error(TRIT_ERR_OUT_OF_MEMORY, "cuda backend: out of memory");
    for (; t->n_ev < n_ev; t->n_ev++) TRIT_CUDA_CHECK(cudaEventCreate(&t->ev[t->n_ev])); // n_ev: created so far
    return TRIT_OK;
}

void tp_slices_free(tp_slices *sl) {
    for (trit_ternary &t : sl->t) trit_ternary_free(&t);
}

enum trit_status tp_slices_make(const cuda_state *st, const trit_layer *L, tp_slices *sl) {
    *sl = tp_slices{};
    for (int i = 0; i < TRIT_N_W; i++) {
        // the one shard table (plan.h): q over the computed heads (whole groups), o over the own heads' columns
        const trit_tp_shard part = trit_tp_shard_of(&st->tp.plan, &st->m->hp, (enum trit_weight)i, true);
        const enum trit_status status = part.by_rows ? trit_tp_ternary_rows(&L->w[i], part.start, part.n, &sl->t[i])
                                                     : trit_tp_ternary_cols(&L->w[i], part.start, part.n, &sl->t[i]);
        if (status != TRIT_OK) {
            tp_slices_free(sl);
            return status;
        }
    }
    return TRIT_OK;
}

// ---- tensor parallelism ---------------------------------------------------------------------------
// The collectives run on the communicator's stream, which is st->stream: they are ordered with the
// kernels without events. Each is bracketed by a timing event pair (tp_sum_comm_time reads them).

namespace {

enum trit_status tp_mark(cuda_state *st, bool end) {
    cuda_tp *t = &st->tp;
    const int i = 2 * t->ev_used + (end ? 1 : 0);
    if (i >= t->n_ev) return TRIT_OK; // more collectives than pairs: the rest go untimed
    TRIT_CUDA_CHECK(cudaEventRecord(t->ev[i], st->stream));
    if (end) t->ev_used++;
    return TRIT_OK;
}

} // namespace

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

// Grouped mode over several ranks: this rank's part of a row-parallel matmul, w (its input
// columns) . q8, with each rank's epilogue fused, into t->y. (Exact mode, and one rank, take the
// int32 matmul: its sums are what is reduced.)
enum trit_status tp_matmul_grouped(cuda_state *st, const trit_cuda_ternary *w, trit_cuda_wscale ws, int64_t m) {
    cuda_tp *t = &st->tp;
    trit_cuda_ternary scaled = *w; // the tiles carry a unit scale; the fused epilogue needs the real one
    scaled.scale = ws.scale;
    scaled.scale_kind = ws.div ? TRIT_SCALE_DIV : TRIT_SCALE_MUL;
    return m <= TRIT_CUDA_GEMV_MAX_M ? trit_cuda_gemv_dp4a_f32(&scaled, st->q8, st->qsum, st->act_scale, m, t->y, st->stream)
                                     : trit_cuda_gemm_mma_f32(&scaled, st->q8, st->qsum, st->act_scale, m, t->y, st->stream);
}

// The parts of every rank summed: exact mode all-reduces the int32 sums in st->acc, which the next
// norm adds to x (st->pend); grouped mode over several ranks adds the all-reduced fp32 sum to x here
// and leaves nothing pending; over one rank the int32 sums are the whole sum.
enum trit_status tp_reduce(cuda_state *st, int64_t m) {
    cuda_tp *t = &st->tp;
    const int64_t n = m * st->d;
    if (t->quant == TRIT_TP_QUANT_EXACT) {
        TP_COLLECTIVE(st, trit_comm_allreduce(t->comm, st->acc, n, TRIT_COMM_I32, TRIT_COMM_SUM));
        return TRIT_OK;
    }
    if (!st->multi_rank) return TRIT_OK;
    TP_COLLECTIVE(st, trit_comm_allreduce(t->comm, t->y, n, TRIT_COMM_F32, TRIT_COMM_SUM));
    st->pend = NULL;
    return trit_cuda_tp_add(st->x, t->y, n, st->stream);
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

} // namespace trit_cuda_be

// The C entry points stay outside the namespace: its hidden visibility would hide them too.
using namespace trit_cuda_be;

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

// NCCL 2.22 and later allocate a communicator's channel buffers at its first collectives (review
// finding 3). One all-reduce of n_reduce floats and one all-gather of n_gather floats per rank,
// the forward pass's sizes, make NCCL take them before any rank reads its free memory. A failure
// aborts the group, so that no peer waits on a collective this rank will not finish and no buffer
// is freed under a pending one.
extern "C" enum trit_status trit_cuda_tp_warm_up(struct trit_comm *comm, int64_t n_reduce, int64_t n_gather) {
    if (!comm || n_reduce < 1 || n_gather < 1)
        return trit_error(TRIT_ERR_INVALID_ARG, "cuda tp warm-up: bad arguments");
    const int64_t n_ranks = trit_comm_size(comm), total = n_reduce + n_ranks * n_gather;
    float *buf = NULL;
    enum trit_status status = TRIT_OK;
    cudaError_t e = cudaMalloc((void **)&buf, (size_t)total * sizeof(float));
    if (e == cudaSuccess) e = cudaMemsetAsync(buf, 0, (size_t)total * sizeof(float), (cudaStream_t)trit_comm_stream(comm));
    if (e != cudaSuccess) status = trit_error(TRIT_ERR_DEVICE, "cuda tp warm-up: %s", cudaGetErrorString(e));
    if (status == TRIT_OK) status = trit_comm_allreduce(comm, buf, n_reduce, TRIT_COMM_F32, TRIT_COMM_SUM);
    if (status == TRIT_OK) status = trit_comm_allgather(comm, buf, buf + n_reduce, n_gather, TRIT_COMM_F32);
    if (status == TRIT_OK) status = trit_comm_sync(comm);
    if (status != TRIT_OK) {
        char why[512];
        snprintf(why, sizeof why, "%s", trit_last_error());
        trit_comm_abort(comm, why); // NCCL: pending collectives end; the buffer is then safe to free
        (void)trit_error(status, "%s", why);
    }
    if (buf) (void)cudaFree(buf);
    return status;
}

extern "C" double trit_cuda_tp_comm_ms(const void *state) { return static_cast<const cuda_state *>(state)->tp.comm_ms; }
extern "C" int64_t trit_cuda_tp_tokens(const void *state) { return static_cast<const cuda_state *>(state)->tp.n_tokens; }
