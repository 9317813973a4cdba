/*
 * forward_tp.c: the tensor-parallel CPU backend (tp.h). forward.c's pass, one rank's shard of it:
 *
 * Per layer (B tokens, D = dim; q, kv, f = this rank's query-head, KV-head and FFN widths; every
 * rank holds the full residual stream x):
 *   xn  = rmsnorm(x) * attn_norm                      (B, D)   replicated, as forward.c
 *   q8  = quant_i8(xn)                                (B, D)   replicated
 *   q, k, v = ternary(wq|wk|wv shard, q8, s)          (B, q), (B, kv), (B, kv)   column-parallel
 *   rope; k, v -> this rank's cache; attention of this rank's heads -> a (B, q)
 *   a   = subnorm(a); q8 = quant_i8(a)                sharded row: global or shard statistics
 *   x  += allreduce(wo shard . q8)                    row-parallel: int32 acc (exact) or fp32 y (grouped)
 *   xn  = rmsnorm(x) * ffn_norm; q8 = quant_i8(xn)    replicated
 *   g, u = ternary(w_gate|w_up shard, q8)             (B, f)   column-parallel
 *   h   = act(g) * u; h = subnorm(h); q8 = quant_i8(h)
 *   x  += allreduce(w_down shard . q8)                row-parallel
 * then logits: rmsnorm(x) * out_norm (replicated), this rank's vocabulary rows, all-gathered.
 */
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/threadpool.h"
#include "cpu/cpu.h"
#include "cpu/forward_common.h"
#include "cpu/kernels.h"
#include "cpu/ops.h"
#include "tp/plan.h"
#include "tp/tp.h"

enum tp_fault { FAULT_NONE = 0, FAULT_KILL = 1, FAULT_HANG = 2 };

struct tp_state {
    const struct trit_model *m;
    struct trit_backend_config cfg;
    enum trit_tp_quant quant;
    struct trit_comm *comm;
    bool own_comm;
    struct trit_tp_plan plan;
    struct trit_pool *pool;
    struct trit_cpu_layer *layers;
    int64_t q_loc, kv_loc; /* this rank's query and KV widths: n_heads * head_dim, n_kv_heads * head_dim */

    /* KV cache of this rank's KV heads: (n_layers, n_ctx, kv_loc) each, fp32 */
    float *k_cache, *v_cache;
    float *rope_cos, *rope_sin; /* (n_ctx, head_dim / 2) */

    /* activations, B = cfg.n_batch rows each */
    float *x;        /* (B, D) residual stream, the same on every rank */
    float *xn;       /* (B, D) */
    int8_t *q8;      /* (B, max(D, q_loc, n_ffn)) */
    float *s;        /* (B) activation scales */
    float *amax;     /* (B) exact mode: absmax, all-reduced */
    double *ss;      /* (B, 2) exact mode: this rank's sum-of-squares pairs */
    double *ss_all;  /* (n_ranks, B, 2) all of them */
    double *ss_tok;  /* (n_ranks, 2) one token's pairs in rank order */
    float *q, *k, *v, *att; /* (B, q_loc), (B, kv_loc) x 2, (B, q_loc) */
    float *gate, *up;       /* (B, n_ffn) */
    int32_t *acc;           /* (B, D) exact mode: row-parallel accumulators */
    float *y;               /* (B, D) row-parallel output */
    float *scores;          /* (n_threads, n_ctx) */
    float *head_x;          /* (B_out, D) */
    float *head_loc;        /* (B_out, vocab_stride) this rank's logits */
    float *head_all;        /* (n_ranks, gather_tok, vocab_stride) */
    int64_t n_out_max, gather_tok;

    int64_t n_tokens, n_forward;
    int64_t comm_us0, comm_calls0; /* the communicator's totals after init (it may be shared) */
    enum tp_fault fault;
    char desc[384];
};

/* ---- parallel pieces ------------------------------------------------------------------------ */

struct attn_job {
    struct tp_state *st;
    int64_t layer, pos0;
};

/* One task per (token, local query head). A query head reads its KV head, which sits at a local
 * index that need not follow from the local head index (replicated KV heads), so each head is one
 * single-head call of trit_attention_f32: the same arithmetic as forward.c's grouped call. */
static void attn_task(void *ctx, int64_t task, int thread) {
    const struct attn_job *j = ctx;
    const struct tp_state *st = j->st;
    const struct trit_hparams *hp = &st->m->hp;
    const int64_t hd = hp->head_dim, nh = st->plan.n_heads, group = hp->n_heads / hp->n_kv_heads;
    const int64_t b = task / nh, hl = task % nh;
    const int64_t kvl = (st->plan.head0 + hl) / group - st->plan.kv_head0;
    const float *kc = st->k_cache + j->layer * st->cfg.n_ctx * st->kv_loc;
    const float *vc = st->v_cache + j->layer * st->cfg.n_ctx * st->kv_loc;
    trit_attention_f32(st->q + b * st->q_loc + hl * hd, kc + kvl * hd, vc + kvl * hd, j->pos0 + b + 1, 1, 1, hd,
                       st->kv_loc, st->scores + (int64_t)thread * st->cfg.n_ctx, st->att + b * st->q_loc + hl * hd, 0, 1);
}

struct head_job {
    struct trit_dense shard; /* this rank's vocabulary rows */
    const float *x;          /* (n_x, D) */
    float *out;              /* (n_x, stride) */
    int64_t stride, n_x, chunk;
};

static void head_task(void *ctx, int64_t task, int thread) {
    (void)thread;
    const struct head_job *j = ctx;
    const int64_t r0 = task * j->chunk, r1 = r0 + j->chunk < j->shard.n_rows ? r0 + j->chunk : j->shard.n_rows;
    for (int64_t b = 0; b < j->n_x && r0 < r1; b++)
        trit_dense_gemv_rows(&j->shard, j->x + b * j->shard.n_cols, r0, r1, j->out + b * j->stride);
}

/* ---- sharded rows: sub-norm and quantization ------------------------------------------------ */

/* trit_quantize_row_i8 (quant.h) with a given s: the same expression per element. */
static void quantize_row_with_scale(const float *x, int64_t k, float s, int8_t *q) {
    for (int64_t i = 0; i < k; i++) {
        const float v = rintf(x[i] * s);
        q[i] = (int8_t)(v >= 127.0f ? 127 : v <= -128.0f ? -128 : v == v ? (int)v : 0);
    }
}

/* in (n_tok, n_loc): this rank's part of rows of n_tot values. Applies the sub-norm (w_loc: its
 * weights, NULL for none) in place and quantizes into st->q8, st->s. */
static enum trit_status shard_norm_quant(struct tp_state *st, float *in, int64_t n_tok, int64_t n_loc, int64_t n_tot,
                                         const float *w_loc) {
    const float eps = st->m->hp.norm_eps;
    if (st->quant == TRIT_TP_QUANT_GROUPED) {
        if (w_loc)
            for (int64_t b = 0; b < n_tok; b++) trit_rmsnorm_f32(in + b * n_loc, w_loc, n_loc, eps, in + b * n_loc);
        trit_quantize_rows_i8(in, n_tok, n_loc, st->q8, st->s);
        return TRIT_OK;
    }
    const int P = st->plan.n_ranks;
    if (w_loc) {
        for (int64_t b = 0; b < n_tok; b++) trit_tp_sumsq_partial(in + b * n_loc, n_loc, st->ss + 2 * b);
        TRIT_TRY(trit_comm_allgather(st->comm, st->ss, st->ss_all, 2 * n_tok, TRIT_COMM_F64));
        for (int64_t b = 0; b < n_tok; b++) {
            for (int p = 0; p < P; p++) {
                st->ss_tok[2 * p] = st->ss_all[(int64_t)p * 2 * n_tok + 2 * b];
                st->ss_tok[2 * p + 1] = st->ss_all[(int64_t)p * 2 * n_tok + 2 * b + 1];
            }
            const float ss = trit_tp_sumsq_combine(st->ss_tok, P);
            /* trit_rmsnorm_f32's expressions, with the whole row's sum of squares */
            const float inv = 1.0f / sqrtf(ss / (float)n_tot + eps);
            float *row = in + b * n_loc;
            for (int64_t i = 0; i < n_loc; i++) row[i] = w_loc[i] * (row[i] * inv);
        }
    }
    for (int64_t b = 0; b < n_tok; b++) {
        float a = 0.0f;
        const float *row = in + b * n_loc;
        for (int64_t i = 0; i < n_loc; i++) a = fmaxf(a, fabsf(row[i]));
        st->amax[b] = a;
    }
    TRIT_TRY(trit_comm_allreduce(st->comm, st->amax, n_tok, TRIT_COMM_F32, TRIT_COMM_MAX));
    for (int64_t b = 0; b < n_tok; b++) {
        st->s[b] = TRIT_ACT_QMAX / fmaxf(st->amax[b], TRIT_ACT_EPS);
        quantize_row_with_scale(in + b * n_loc, n_loc, st->s[b], st->q8 + b * n_loc);
    }
    return TRIT_OK;
}

/* x += the row-parallel product of w (this rank's columns) and st->q8, summed over the ranks. */
static enum trit_status row_parallel_add(struct tp_state *st, const struct trit_cpu_matrix *w, int64_t n_tok) {
    const int64_t D = st->m->hp.dim, n = n_tok * D;
    if (st->quant == TRIT_TP_QUANT_EXACT) {
        TRIT_TRY(trit_cpu_gemm_i32(st->pool, w, st->q8, n_tok, st->acc));
        TRIT_TRY(trit_comm_allreduce(st->comm, st->acc, n, TRIT_COMM_I32, TRIT_COMM_SUM));
        trit_epilogue_ref(st->acc, n_tok, D, st->s, w->scale, w->scale_kind, st->y);
    } else {
        TRIT_TRY(trit_cpu_gemm_f32(st->pool, w, st->q8, n_tok, st->s, st->y));
        TRIT_TRY(trit_comm_allreduce(st->comm, st->y, n, TRIT_COMM_F32, TRIT_COMM_SUM));
    }
    for (int64_t i = 0; i < n; i++) st->x[i] += st->y[i];
    return TRIT_OK;
}

static void maybe_fault(const struct tp_state *st, int64_t layer) {
    if (st->fault == FAULT_NONE || st->n_forward != 1 || layer != 0) return;
    if (st->fault == FAULT_KILL) raise(SIGKILL);
    for (;;) pause(); /* FAULT_HANG: until mpirun ends the job */
}

/* ---- the forward pass ----------------------------------------------------------------------- */

static enum trit_status tp_forward(void *state, const int32_t *tokens, int64_t n_tok, int64_t pos0, float *logits) {
    struct tp_state *st = state;
    const struct trit_model *m = st->m;
    const struct trit_hparams *hp = &m->hp;
    const struct trit_tp_plan *pl = &st->plan;
    const int64_t D = hp->dim, hd = hp->head_dim, qd = st->q_loc, kvd = st->kv_loc, F = pl->n_ffn;
    TRIT_TRY(trit_cpu_forward_begin(m, &st->cfg, "tp forward", tokens, n_tok, pos0, st->x));

    for (int64_t il = 0; il < hp->n_layers; il++) {
        const struct trit_layer *L = &m->layers[il];
        const struct trit_cpu_layer *W = &st->layers[il];
        float *kc = st->k_cache + il * st->cfg.n_ctx * kvd;
        float *vc = st->v_cache + il * st->cfg.n_ctx * kvd;

        /* attention block: column-parallel Q, K, V on the replicated normed input */
        for (int64_t b = 0; b < n_tok; b++) trit_rmsnorm_f32(st->x + b * D, L->attn_norm, D, hp->norm_eps, st->xn + b * D);
        trit_quantize_rows_i8(st->xn, n_tok, D, st->q8, st->s);
        const struct trit_cpu_matrix *qkv[3] = {&W->w[TRIT_W_Q], &W->w[TRIT_W_K], &W->w[TRIT_W_V]};
        float *qkv_out[3] = {st->q, st->k, st->v};
        TRIT_TRY(trit_cpu_gemm_f32_multi(st->pool, 3, qkv, st->q8, n_tok, st->s, qkv_out));
        trit_cpu_rope_to_cache(hp, st->rope_cos, st->rope_sin, n_tok, pos0, pl->n_heads, pl->n_kv_heads, st->q, st->k,
                               st->v, kc, vc);
        struct attn_job aj = {.st = st, .layer = il, .pos0 = pos0};
        trit_pool_parallel_for(st->pool, n_tok * pl->n_heads, attn_task, &aj);
        /* row-parallel o_proj over this rank's heads */
        TRIT_TRY(shard_norm_quant(st, st->att, n_tok, qd, hp->n_heads * hd,
                                  hp->sub_norms ? L->attn_sub_norm + pl->head0 * hd : NULL));
        maybe_fault(st, il);
        TRIT_TRY(row_parallel_add(st, &W->w[TRIT_W_O], n_tok));

        /* feed-forward block: column-parallel gate and up, row-parallel down */
        for (int64_t b = 0; b < n_tok; b++) trit_rmsnorm_f32(st->x + b * D, L->ffn_norm, D, hp->norm_eps, st->xn + b * D);
        trit_quantize_rows_i8(st->xn, n_tok, D, st->q8, st->s);
        const struct trit_cpu_matrix *gu[2] = {&W->w[TRIT_W_GATE], &W->w[TRIT_W_UP]};
        float *gu_out[2] = {st->gate, st->up};
        TRIT_TRY(trit_cpu_gemm_f32_multi(st->pool, 2, gu, st->q8, n_tok, st->s, gu_out));
        trit_gated_act_f32(st->gate, st->up, n_tok * F, hp->act);
        TRIT_TRY(shard_norm_quant(st, st->gate, n_tok, F, hp->ffn_dim, hp->sub_norms ? L->ffn_sub_norm + pl->ffn0 : NULL));
        TRIT_TRY(row_parallel_add(st, &W->w[TRIT_W_DOWN], n_tok));
    }

    /* vocab-parallel head: this rank's rows, then every rank gathers the full rows */
    const int64_t first = st->cfg.logits_all ? 0 : n_tok - 1, n_out = n_tok - first;
    for (int64_t b = 0; b < n_out; b++)
        trit_rmsnorm_f32(st->x + (first + b) * D, m->out_norm, D, hp->norm_eps, st->head_x + b * D);
    const size_t esz = m->output.dtype == TRIT_DTYPE_F32 ? 4 : 2;
    struct head_job hj = {.shard = m->output, .x = st->head_x, .out = st->head_loc, .stride = pl->vocab_stride, .n_x = n_out};
    hj.shard.data = (const char *)m->output.data + (size_t)(pl->vocab0 * D) * esz;
    hj.shard.n_rows = pl->n_vocab;
    const int64_t n_chunks = 4 * (int64_t)trit_pool_n_threads(st->pool);
    hj.chunk = (pl->n_vocab + n_chunks - 1) / n_chunks;
    trit_pool_parallel_for(st->pool, n_chunks, head_task, &hj);
    const int P = pl->n_ranks;
    for (int64_t t0 = 0; t0 < n_out; t0 += st->gather_tok) {
        const int64_t nt = n_out - t0 < st->gather_tok ? n_out - t0 : st->gather_tok;
        TRIT_TRY(trit_comm_allgather(st->comm, st->head_loc + t0 * pl->vocab_stride, st->head_all, nt * pl->vocab_stride,
                                     TRIT_COMM_F32));
        for (int p = 0; p < P; p++) {
            int64_t v0, nv;
            trit_tp_split(hp->n_vocab, P, p, &v0, &nv);
            for (int64_t t = 0; t < nt; t++)
                memcpy(logits + (t0 + t) * hp->n_vocab + v0, st->head_all + ((int64_t)p * nt + t) * pl->vocab_stride,
                       (size_t)nv * sizeof(float));
        }
    }
    st->n_tokens += n_tok;
    st->n_forward++;
    return TRIT_OK;
}

/* ---- init / free ---------------------------------------------------------------------------- */

static void tp_free(void *state) {
    struct tp_state *st = state;
    if (!st) return;
    trit_cpu_layers_free(st->layers, st->m->hp.n_layers);
    trit_free(st->layers);
    void *bufs[] = {st->k_cache, st->v_cache, st->rope_cos, st->rope_sin, st->x, st->xn, st->q8, st->s, st->amax,
                    st->ss, st->ss_all, st->ss_tok, st->q, st->k, st->v, st->att, st->gate, st->up, st->acc, st->y,
                    st->scores, st->head_x, st->head_loc, st->head_all};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) trit_free(bufs[i]);
    trit_pool_free(st->pool);
    if (st->own_comm) trit_comm_free(st->comm);
    trit_free(st);
}

/* One shard of a canonical matrix, packed: rows [start, start + n) (column-parallel) or columns
 * (row-parallel). Grouped mode with float weights ternarizes the shard with its own alpha. */
static enum trit_status pack_shard(const struct trit_ternary *w, const float *wf, bool by_rows, int64_t start, int64_t n,
                                   struct trit_cpu_matrix *out) {
    struct trit_ternary t;
    enum trit_status st;
    if (wf && by_rows) st = trit_ternarize(wf + start * w->n_cols, n, w->n_cols, &t);
    else if (wf) st = trit_ternarize_cols(wf, w->n_rows, w->n_cols, start, start + n, &t);
    else if (by_rows) st = trit_tp_ternary_rows(w, start, n, &t);
    else st = trit_tp_ternary_cols(w, start, n, &t);
    if (st != TRIT_OK) return st;
    st = trit_cpu_matrix_pack(&t, out);
    trit_ternary_free(&t);
    return st;
}

static enum trit_status pack_layer(struct tp_state *st, int64_t il, const struct trit_tp_float_source *floats) {
    const struct trit_hparams *hp = &st->m->hp;
    const struct trit_layer *L = &st->m->layers[il];
    struct trit_cpu_layer *W = &st->layers[il];
    const struct trit_tp_plan *pl = &st->plan;
    const int64_t hd = hp->head_dim;
    /* this rank's slice of each matrix: whole output rows (column-parallel) or input columns */
    const struct {
        bool by_rows;
        int64_t start, n;
    } shard[TRIT_N_W] = {
        [TRIT_W_Q] = {true, pl->head0 * hd, pl->n_heads * hd},
        [TRIT_W_K] = {true, pl->kv_head0 * hd, pl->n_kv_heads * hd},
        [TRIT_W_V] = {true, pl->kv_head0 * hd, pl->n_kv_heads * hd},
        [TRIT_W_O] = {false, pl->head0 * hd, pl->n_heads * hd},
        [TRIT_W_GATE] = {true, pl->ffn0, pl->n_ffn},
        [TRIT_W_UP] = {true, pl->ffn0, pl->n_ffn},
        [TRIT_W_DOWN] = {false, pl->ffn0, pl->n_ffn},
    };
    for (int j = 0; j < TRIT_N_W; j++) {
        const float *wf = st->quant == TRIT_TP_QUANT_GROUPED && floats && floats->get
                              ? floats->get(floats->user, il, (enum trit_weight)j)
                              : NULL;
        TRIT_TRY(pack_shard(&L->w[j], wf, shard[j].by_rows, shard[j].start, shard[j].n, &W->w[j]));
    }
    return TRIT_OK;
}

/* An uninitialized buffer (each is written before it is read); after a failure nothing more is
 * allocated. */
static void *alloc_bytes(int64_t n, enum trit_status *status) {
    if (*status != TRIT_OK) return NULL;
    void *p = trit_alloc_uninit((size_t)n);
    if (!p)
        *status = trit_error(TRIT_ERR_OUT_OF_MEMORY, "tp backend: out of memory allocating %lld MiB", (long long)(n >> 20));
    return p;
}

/* The memory plan of a rank (trit_context_init's, for the one-process backends): the buffers below
 * for n_ctx C and batch B, checked against what is left once the shards are packed, before any of
 * them is allocated. Saturating double arithmetic: C may be hostile (a file's context_length). */
static enum trit_status check_buffers(const struct tp_state *st, int P, int64_t wide) {
    const struct trit_hparams *hp = &st->m->hp;
    const struct trit_tp_plan *pl = &st->plan;
    const double C = (double)st->cfg.n_ctx, B = (double)st->cfg.n_batch, D = (double)hp->dim, f4 = 4, f8 = 8;
    /* k/v caches, rope tables, scores (per thread); then per batch row: x, xn, y, acc, q8, s, amax,
     * ss, ss_all, q, k, v, att, gate, up; head_x, head_loc (logits_all); head_all */
    const double per_ctx = 2.0 * (double)hp->n_layers * (double)st->kv_loc * f4 + (double)hp->head_dim * f4 +
                           (double)st->cfg.n_threads * f4;
    const double per_row = 4 * D * f4 + (double)wide + 2 * f4 + 2 * f8 + (double)P * 2 * f8 +
                           2 * (double)(st->q_loc + st->kv_loc) * f4 + 2 * (double)pl->n_ffn * f4;
    const double head = (double)st->n_out_max * (D + (double)pl->vocab_stride) * f4 +
                        (double)P * (double)st->gather_tok * (double)pl->vocab_stride * f4;
    const double need = C * per_ctx + B * per_row + head;
    const uint64_t held = trit_cpu_layers_bytes(st->layers, hp->n_layers), left = trit_mem_available();
    const bool by_limit = st->cfg.mem_limit > 0 && (double)st->cfg.mem_limit - (double)held < (double)left;
    const double limit = by_limit ? (double)st->cfg.mem_limit - (double)held : (double)left;
    if (need <= limit) return TRIT_OK;
    return trit_error(TRIT_ERR_OUT_OF_MEMORY,
                      "tensor parallel: rank %d: a context of %lld tokens needs %.1f MiB of cache and buffers beside "
                      "its %.1f MiB of weights, more than %s (%.1f MiB); shorten it (-c)",
                      pl->rank, (long long)st->cfg.n_ctx, need / 1048576.0, (double)held / 1048576.0,
                      by_limit ? "the memory limit leaves (--mem-limit)" : "this machine has left",
                      limit < 0 ? 0.0 : limit / 1048576.0);
}

/* Every rank learns whether any rank failed, so that none goes on to wait for a missing peer. */
static enum trit_status agree(struct trit_comm *comm, enum trit_status local) {
    int32_t bad = local != TRIT_OK;
    char why[512];
    snprintf(why, sizeof why, "%s", trit_last_error());
    TRIT_TRY(trit_comm_allreduce(comm, &bad, 1, TRIT_COMM_I32, TRIT_COMM_MAX));
    if (local != TRIT_OK) return trit_error(local, "%s", why);
    if (bad) return trit_error(TRIT_ERR_COMM, "tensor parallel: another rank failed to initialize (see its message)");
    return TRIT_OK;
}

static enum trit_status tp_setup(struct tp_state *st, const struct trit_tp_config *tp) {
    const struct trit_model *m = st->m;
    const struct trit_hparams *hp = &m->hp;
    const int rank = trit_comm_rank(st->comm), P = trit_comm_size(st->comm);

    /* 1. the same model and parameters everywhere */
    const int32_t fp =
        (int32_t)trit_tp_fingerprint(m, st->cfg.n_ctx, st->cfg.n_batch, st->cfg.logits_all, (int)st->quant);
    int32_t range[2] = {fp, -fp};
    TRIT_TRY(trit_comm_allreduce(st->comm, range, 2, TRIT_COMM_I32, TRIT_COMM_MAX));
    if (range[0] != -range[1])
        return trit_error(TRIT_ERR_INVALID_ARG,
                          "tensor parallel: rank %d: the ranks disagree on the model or the context parameters "
                          "(fingerprint %08x here, %08x..%08x over the ranks); start every rank with the same "
                          "model, -c, -b and --tp-quant",
                          rank, (unsigned)fp, (unsigned)-range[1], (unsigned)range[0]);

    /* 2. this rank's shards and buffers */
    enum trit_status status = trit_tp_plan_make(hp, rank, P, &st->plan);
    const struct trit_tp_plan *pl = &st->plan;
    if (status == TRIT_OK && tp->quant != TRIT_TP_QUANT_EXACT && tp->quant != TRIT_TP_QUANT_GROUPED)
        status = trit_error(TRIT_ERR_INVALID_ARG, "tensor parallel: unknown quantization mode %d", (int)tp->quant);
    if (status == TRIT_OK && (st->cfg.head_int8 || st->cfg.head_q4))
        status = trit_error(TRIT_ERR_UNSUPPORTED, "tensor parallel: the quantized LM heads are not supported yet; drop --head");
    if (status == TRIT_OK) {
        int n_threads = st->cfg.n_threads;
        if (n_threads <= 0) {
            const long cores = sysconf(_SC_NPROCESSORS_ONLN);
            n_threads = (int)((cores > 0 ? cores : 1) / trit_comm_local_size(st->comm));
            if (n_threads < 1) n_threads = 1;
            st->cfg.n_threads = n_threads;
        }
        status = trit_pool_create(n_threads, &st->pool);
    }
    if (status == TRIT_OK) {
        st->layers = alloc_bytes(hp->n_layers * (int64_t)sizeof *st->layers, &status);
        for (int64_t i = 0; i < hp->n_layers && status == TRIT_OK; i++) status = pack_layer(st, i, tp->floats);
    }
    if (status == TRIT_OK) {
        const int64_t B = st->cfg.n_batch, C = st->cfg.n_ctx, D = hp->dim, hd = hp->head_dim;
        st->q_loc = pl->n_heads * hd;
        st->kv_loc = pl->n_kv_heads * hd;
        int64_t wide = D > st->q_loc ? D : st->q_loc;
        if (pl->n_ffn > wide) wide = pl->n_ffn;
        st->n_out_max = st->cfg.logits_all ? B : 1;
        /* the logits all-gather goes in pieces of at most 16 MiB received */
        st->gather_tok = ((int64_t)4 << 20) / ((int64_t)P * pl->vocab_stride);
        if (st->gather_tok < 1) st->gather_tok = 1;
        if (st->gather_tok > st->n_out_max) st->gather_tok = st->n_out_max;
        const int64_t f4 = sizeof(float);
        status = check_buffers(st, P, wide);
        st->k_cache = alloc_bytes(hp->n_layers * C * st->kv_loc * f4, &status);
        st->v_cache = alloc_bytes(hp->n_layers * C * st->kv_loc * f4, &status);
        st->rope_cos = alloc_bytes(C * (hd / 2) * f4, &status);
        st->rope_sin = alloc_bytes(C * (hd / 2) * f4, &status);
        st->x = alloc_bytes(B * D * f4, &status);
        st->xn = alloc_bytes(B * D * f4, &status);
        st->q8 = alloc_bytes(B * wide, &status);
        st->s = alloc_bytes(B * f4, &status);
        st->amax = alloc_bytes(B * f4, &status);
        st->ss = alloc_bytes(B * 2 * (int64_t)sizeof(double), &status);
        st->ss_all = alloc_bytes((int64_t)P * B * 2 * (int64_t)sizeof(double), &status);
        st->ss_tok = alloc_bytes((int64_t)P * 2 * (int64_t)sizeof(double), &status);
        st->q = alloc_bytes(B * st->q_loc * f4, &status);
        st->k = alloc_bytes(B * st->kv_loc * f4, &status);
        st->v = alloc_bytes(B * st->kv_loc * f4, &status);
        st->att = alloc_bytes(B * st->q_loc * f4, &status);
        st->gate = alloc_bytes(B * pl->n_ffn * f4, &status);
        st->up = alloc_bytes(B * pl->n_ffn * f4, &status);
        st->acc = alloc_bytes(B * D * (int64_t)sizeof(int32_t), &status);
        st->y = alloc_bytes(B * D * f4, &status);
        st->scores = alloc_bytes((int64_t)st->cfg.n_threads * C * f4, &status);
        st->head_x = alloc_bytes(st->n_out_max * D * f4, &status);
        st->head_loc = alloc_bytes(st->n_out_max * pl->vocab_stride * f4, &status);
        st->head_all = alloc_bytes((int64_t)P * st->gather_tok * pl->vocab_stride * f4, &status);
        if (status == TRIT_OK) trit_rope_table(C, hd, hp->rope_theta, st->rope_cos, st->rope_sin);
    }

    /* 3. everyone succeeded, or everyone fails */
    return agree(st->comm, status);
}

static int env_rank(const char *name) {
    const char *v = getenv(name);
    return v && *v ? atoi(v) : -1;
}

enum trit_status trit_tp_cpu_init(const struct trit_model *m, const struct trit_backend_config *cfg,
                                  const struct trit_tp_config *tp, void **out) {
    if (!m || !cfg || !tp || !out) return trit_error(TRIT_ERR_INVALID_ARG, "trit_tp_cpu_init: NULL argument");
    *out = NULL;
    if (cfg->n_ctx <= 0 || cfg->n_batch <= 0 || cfg->n_threads < 0)
        return trit_error(TRIT_ERR_INVALID_ARG, "tp backend: context %lld, batch %lld and threads %d out of range",
                          (long long)cfg->n_ctx, (long long)cfg->n_batch, cfg->n_threads);
    struct tp_state *st = trit_alloc(sizeof *st);
    if (!st) return trit_error(TRIT_ERR_OUT_OF_MEMORY, "tp backend: out of memory");
    st->m = m;
    st->cfg = *cfg;
    if (st->cfg.n_batch > st->cfg.n_ctx) st->cfg.n_batch = st->cfg.n_ctx;
    st->quant = tp->quant;
    enum trit_status status = TRIT_OK;
    if (tp->comm) {
        st->comm = tp->comm;
    } else {
        struct trit_comm_params cp = trit_comm_default_params();
        cp.timeout_ms = tp->timeout_ms;
        status = trit_comm_mpi_create(&cp, &st->comm);
        st->own_comm = status == TRIT_OK;
        if (status == TRIT_OK && tp->expect_ranks > 0 && trit_comm_size(st->comm) != tp->expect_ranks)
            status = trit_error(TRIT_ERR_INVALID_ARG, "--tp %d: the MPI job has %d ranks (mpirun -np %d)",
                                tp->expect_ranks, trit_comm_size(st->comm), tp->expect_ranks);
    }
    if (status == TRIT_OK && trit_comm_backend(st->comm) != TRIT_COMM_MPI)
        status = trit_error(TRIT_ERR_INVALID_ARG, "tp CPU backend: the communicator must hold host memory (MPI)");
    if (status == TRIT_OK) status = tp_setup(st, tp);
    if (status != TRIT_OK) {
        tp_free(st);
        return status;
    }
    struct trit_comm_stats cs;
    trit_comm_get_stats(st->comm, &cs);
    st->comm_us0 = cs.time_us;
    st->comm_calls0 = cs.n_calls;
    const int rank = trit_comm_rank(st->comm);
    if (env_rank("TRIT_TP_TEST_KILL_RANK") == rank) st->fault = FAULT_KILL;
    if (env_rank("TRIT_TP_TEST_HANG_RANK") == rank) st->fault = FAULT_HANG;
    *out = st;
    return TRIT_OK;
}

/* The backend table's init: an MPI communicator over MPI_COMM_WORLD, the mode and the job size of cfg. */
static enum trit_status tp_init_cfg(const struct trit_model *m, const struct trit_backend_config *cfg, void **out) {
    const struct trit_tp_config tp = {.quant = cfg->tp_quant, .expect_ranks = cfg->tp_expect_ranks};
    return trit_tp_cpu_init(m, cfg, &tp, out);
}

static void tp_info(void *state, int *rank, int *size, int64_t *comm_us) {
    *rank = trit_tp_rank(state);
    *size = trit_tp_size(state);
    *comm_us = trit_tp_comm_us(state);
}

static const char *tp_describe(void *state) {
    struct tp_state *st = state;
    struct trit_comm_stats cs;
    trit_comm_get_stats(st->comm, &cs);
    cs.time_us -= st->comm_us0;
    cs.n_calls -= st->comm_calls0;
    const struct trit_tp_plan *pl = &st->plan;
    snprintf(st->desc, sizeof st->desc,
             "CPU %s, %d thread%s, tensor parallel rank %d of %d over %s (%s%s); comm %.1f ms in %lld collectives, "
             "%.1f us/token",
             trit_cpu_kernel_name(), st->cfg.n_threads, st->cfg.n_threads == 1 ? "" : "s", pl->rank, pl->n_ranks,
             trit_comm_backend(st->comm) == TRIT_COMM_MPI ? "MPI" : "NCCL",
             st->quant == TRIT_TP_QUANT_EXACT ? "exact" : "grouped", pl->kv_replicated ? ", KV heads replicated" : "",
             (double)cs.time_us / 1e3, (long long)cs.n_calls,
             st->n_tokens > 0 ? (double)cs.time_us / (double)st->n_tokens : 0.0);
    return st->desc;
}

static uint64_t tp_memory_bytes(void *state) {
    const struct tp_state *st = state;
    const struct trit_hparams *hp = &st->m->hp;
    uint64_t kv = (uint64_t)(2 * hp->n_layers * st->cfg.n_ctx * st->kv_loc) * sizeof(float);
    return kv + trit_cpu_layers_bytes(st->layers, hp->n_layers);
}

int trit_tp_rank(const void *state) { return ((const struct tp_state *)state)->plan.rank; }
int trit_tp_size(const void *state) { return ((const struct tp_state *)state)->plan.n_ranks; }
int64_t trit_tp_tokens(const void *state) { return ((const struct tp_state *)state)->n_tokens; }
int64_t trit_tp_comm_us(const void *state) {
    const struct tp_state *st = state;
    struct trit_comm_stats cs;
    trit_comm_get_stats(st->comm, &cs);
    return cs.time_us - st->comm_us0;
}

const struct trit_backend_ops trit_tp_cpu_backend = {
    .name = "cpu-tp",
    .init = tp_init_cfg,
    .forward = tp_forward,
    .free = tp_free,
    .describe = tp_describe,
    .memory_bytes = tp_memory_bytes,
    .tp_info = tp_info,
};
