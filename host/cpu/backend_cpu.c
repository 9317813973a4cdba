/*
 * backend_cpu.c: the CPU backend: the ops of the forward pass (host/forward.h) on the CPU kernels,
 * for one rank of a tensor-parallel group. One process is rank 0 of 1 on the one-rank communicator
 * (trit_cpu_backend); an MPI rank holds its shards (host/tp/forward_tp.c creates the communicator:
 * trit_tp_cpu_backend). The layer itself is host/forward.c.
 *
 * Buffers (B = n_batch rows each; q, kv, f = this rank's query, KV and FFN widths; docs/design.md
 * section 4): the residual stream x (B, D), the same on every rank;
 * the normed input xn; the quantized activations q8 with their scales s; q, k, v; the attention
 * output att (B, qo); gate and up (B, f); the KV cache of this rank's KV heads; with partial sums to
 * reduce (exact mode, or more than one rank) acc or y (B, D); exact mode's statistics; with more
 * than one rank the head's slice and the gathered slices. All of them are in one table (bufs),
 * which the memory plan, init and free read. Nothing is allocated after init.
 */
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "backend.h"
#include "core/cpu_features.h"
#include "core/threadpool.h"
#include "cpu/backend_cpu.h"
#include "cpu/cpu.h"
#include "cpu/head_int8.h"
#include "cpu/kernels.h"
#include "cpu/ops.h"
#include "forward.h"
#include "tp/plan.h"

/* A layer's seven ternary matrices packed for the CPU kernels: this rank's shards. */
struct cpu_layer {
    struct trit_cpu_matrix w[TRIT_N_W]; /* enum trit_weight */
};

/* Query heads of one attention task: own heads [h0, h0 + n) (indices among this rank's) that read
 * KV head kv (its index among this rank's). */
struct attn_span {
    int64_t h0, n, kv;
};

enum tp_fault { FAULT_NONE = 0, FAULT_KILL = 1, FAULT_HANG = 2 };

/* The buffer table: one entry per buffer, in this order. */
enum {
    BUF_K_CACHE, BUF_V_CACHE, /* (n_layers, n_kv_blocks, TRIT_KV_BLOCK, kv) fp32: the paged cache */
    BUF_ROPE_COS, BUF_ROPE_SIN, /* (n_ctx, head_dim / 2) */
    BUF_ROPE_COS_LOCAL, BUF_ROPE_SIN_LOCAL, /* with a sliding window: the sliding layers' (n_ctx, head_dim / 2) */
    BUF_X, BUF_XN,            /* (B, D) */
    BUF_Q8,                   /* (B, widest of D, q, f) int8 */
    BUF_S,                    /* (B) activation scales */
    BUF_Q, BUF_K, BUF_V,      /* (B, q), (B, kv), (B, kv) */
    BUF_ATT,                  /* (B, q) */
    BUF_GATE, BUF_UP,         /* (B, f) */
    BUF_SCORES,               /* (n_threads, n_ctx) attention scratch */
    BUF_ACC,                  /* exact mode: (B, D) int32 row-parallel sums */
    BUF_Y,                    /* partial sums to reduce, or a block's output before its post-norm: (B, D) fp32 */
    BUF_AMAX, BUF_INV,        /* exact mode: (B) absmax, (B) 1 / rms */
    BUF_SS, BUF_SS_ALL, BUF_SS_TOK, /* exact mode: (B, 2), (P, B, 2), (P, 2) sum-of-squares pairs, double */
    BUF_HEAD_LOC,             /* more than one rank: (rows out, vocab_stride) this rank's logits */
    BUF_HEAD_ALL,             /* (P, gather_tok, vocab_stride) */
    N_BUF
};

struct cpu_state {
    const struct trit_model *m;
    struct trit_backend_config cfg;
    struct trit_comm *comm;
    bool own_comm;
    enum trit_tp_quant quant;
    struct trit_tp_plan plan;
    struct trit_pool *pool;
    struct cpu_layer *layers;
    int64_t q, kv, f;          /* widths: this rank's query and KV heads (x head_dim), FFN rows */
    bool partial;              /* row-parallel outputs are partial sums to reduce */
    int64_t gather_tok; /* gather_rows() */
    struct attn_span *spans;
    int64_t n_spans;
    void *buf[N_BUF];
    struct trit_head_i8 head8; /* the quantized LM head, when cfg.head_int8 or cfg.head_q4 (one rank) */
    float *logits;             /* the running call's output */
    int64_t n_kv_blocks;       /* kv_blocks() */
    /* forward's one sequence in blocks 0, 1, 2, ...: its block table and the batch arrays (B rows) */
    int32_t *ident, *one_pos, *one_out;
    const int32_t **one_blocks;

    int64_t n_tokens, n_forward;
    int64_t comm_us0, comm_calls0; /* the communicator's totals after init (it may be shared) */
    enum tp_fault fault;
    char desc[384];
};

#define F32(st, i) ((float *)(st)->buf[i])

/* ---- the buffer table --------------------------------------------------------------------------- */

static uint64_t mul_sat(uint64_t a, uint64_t b) {
    uint64_t r;
    return __builtin_mul_overflow(a, b, &r) ? UINT64_MAX : r;
}

static uint64_t add_sat(uint64_t a, uint64_t b) { return a + b < a ? UINT64_MAX : a + b; }

/* Blocks of the paged cache: cfg's, or enough for one sequence of n_ctx tokens. */
static int64_t kv_blocks(const struct trit_backend_config *cfg) {
    return cfg->n_kv_blocks > 0 ? cfg->n_kv_blocks : (cfg->n_ctx + TRIT_KV_BLOCK - 1) / TRIT_KV_BLOCK;
}

/* Rows of logits a call can produce (cfg's batch, clamped to the context, with logits_all; else one
 * per sequence, at most the batch), and how many of them one all-gather of the head's slices carries
 * (pieces of at most 16 MiB received). */
static int64_t out_rows(const struct trit_backend_config *cfg) {
    const int64_t B = cfg->n_batch < cfg->n_ctx ? cfg->n_batch : cfg->n_ctx, seqs = cfg->n_seq_max > 1 ? cfg->n_seq_max : 1;
    return cfg->logits_all ? B : seqs < B ? seqs : B;
}
static int64_t gather_rows(const struct trit_backend_config *cfg, const struct trit_tp_plan *pl) {
    const int64_t g = ((int64_t)4 << 20) / ((int64_t)pl->n_ranks * pl->vocab_stride), n_out = out_rows(cfg);
    return g < 1 ? 1 : g > n_out ? n_out : g;
}

/* The bytes of every buffer for this rank (saturating: a hostile context length must not wrap
 * around to a small number). */
static void buffer_bytes(const struct trit_model *m, const struct trit_backend_config *cfg,
                         const struct trit_tp_plan *pl, enum trit_tp_quant quant, uint64_t out[N_BUF]) {
    const struct trit_hparams *hp = &m->hp;
    const uint64_t C = (uint64_t)cfg->n_ctx, B = (uint64_t)(cfg->n_batch < cfg->n_ctx ? cfg->n_batch : cfg->n_ctx);
    const uint64_t D = (uint64_t)hp->dim, hd = (uint64_t)hp->head_dim, P = (uint64_t)pl->n_ranks;
    const uint64_t q_own = (uint64_t)pl->n_heads * hd;
    const uint64_t kv = (uint64_t)pl->n_kv_heads * hd, f = (uint64_t)pl->n_ffn, f4 = 4, f8 = 8;
    uint64_t wide = D > q_own ? D : q_own;
    if (f > wide) wide = f;
    const bool exact = quant == TRIT_TP_QUANT_EXACT, partial = exact || P > 1;
    const uint64_t n_out = (uint64_t)out_rows(cfg), stride = (uint64_t)pl->vocab_stride;
    const uint64_t gather = (uint64_t)gather_rows(cfg, pl);
    memset(out, 0, N_BUF * sizeof *out);
    const uint64_t kv_tok = mul_sat((uint64_t)kv_blocks(cfg), TRIT_KV_BLOCK);
    out[BUF_K_CACHE] = out[BUF_V_CACHE] = mul_sat(mul_sat((uint64_t)hp->n_layers * kv, kv_tok), f4);
    out[BUF_ROPE_COS] = out[BUF_ROPE_SIN] = mul_sat(C, hd / 2 * f4);
    if (hp->sliding_window > 0) out[BUF_ROPE_COS_LOCAL] = out[BUF_ROPE_SIN_LOCAL] = mul_sat(C, hd / 2 * f4);
    out[BUF_X] = out[BUF_XN] = B * D * f4;
    out[BUF_Q8] = B * wide;
    /* activation scales: one per token, or one per 64 values of the widest row (act_block) */
    out[BUF_S] = B * (hp->act_block > 0 ? (wide + (uint64_t)hp->act_block - 1) / (uint64_t)hp->act_block : 1) * f4;
    out[BUF_Q] = B * q_own * f4;
    out[BUF_K] = out[BUF_V] = B * kv * f4;
    out[BUF_ATT] = B * q_own * f4;
    out[BUF_GATE] = out[BUF_UP] = B * f * f4;
    out[BUF_SCORES] = mul_sat(mul_sat((uint64_t)cfg->n_threads, C), f4);
    if (exact) {
        out[BUF_ACC] = B * D * 4;
        out[BUF_AMAX] = out[BUF_INV] = B * f4;
        out[BUF_SS] = B * 2 * f8;
        out[BUF_SS_ALL] = P * B * 2 * f8;
        out[BUF_SS_TOK] = P * 2 * f8;
    }
    if (partial || hp->post_norms) out[BUF_Y] = B * D * f4;
    if (P > 1) {
        out[BUF_HEAD_LOC] = n_out * stride * f4;
        out[BUF_HEAD_ALL] = P * gather * stride * f4;
    }
}

/* The packed weights of this rank's shards. */
static uint64_t shard_weight_bytes(const struct trit_model *m, const struct trit_tp_plan *pl) {
    uint64_t total = 0;
    for (int j = 0; j < TRIT_N_W; j++) {
        int64_t rows, cols;
        trit_weight_shape(&m->hp, (enum trit_weight)j, &rows, &cols);
        const struct trit_tp_shard sh = trit_tp_shard_of(pl, &m->hp, (enum trit_weight)j, false);
        const int64_t r = sh.by_rows ? sh.n : rows, c = sh.by_rows ? cols : sh.n;
        const int64_t b = trit_cpu_matrix_plan_bytes(r, c);
        total = add_sat(total, mul_sat(b < 0 ? UINT64_MAX : (uint64_t)b, (uint64_t)m->hp.n_layers));
        const int64_t group = m->layers ? m->layers[0].w[j].group : 0; /* the packed copy of the group scales */
        if (group > 0)
            total = add_sat(total, mul_sat(mul_sat((uint64_t)r, (uint64_t)trit_div_ceil(c, group)) * 4u, (uint64_t)m->hp.n_layers));
    }
    return total;
}

static void plan_for(const struct trit_model *m, const struct trit_backend_config *cfg, const struct trit_tp_plan *pl,
                     enum trit_tp_quant quant, struct trit_mem_plan *out) {
    uint64_t bytes[N_BUF];
    buffer_bytes(m, cfg, pl, quant, bytes);
    memset(out, 0, sizeof *out);
    out->weights_bytes = shard_weight_bytes(m, pl);
    uint64_t head_w = 0, head_scratch = 0;
    if (cfg->head_int8 || cfg->head_q4)
        trit_head_i8_plan(m->output.n_rows, m->output.n_cols, cfg->head_q4 ? 4 : 8,
                          out_rows(cfg), cfg->n_threads, &head_w, &head_scratch);
    out->weights_bytes = add_sat(out->weights_bytes, head_w);
    out->kv_bytes = add_sat(bytes[BUF_K_CACHE], bytes[BUF_V_CACHE]);
    uint64_t scratch = add_sat(mul_sat((uint64_t)cfg->n_threads, TRIT_POOL_SCRATCH_BYTES), head_scratch);
    for (int i = BUF_K_CACHE + 2; i < N_BUF; i++) scratch = add_sat(scratch, bytes[i]);
    out->scratch_bytes = scratch;
}

/* The backend table's plan: one process, rank 0 of 1. */
static void cpu_plan(const struct trit_model *m, const struct trit_backend_config *cfg, struct trit_mem_plan *out) {
    struct trit_tp_plan pl;
    memset(out, 0, sizeof *out);
    if (trit_tp_plan_make(&m->hp, 0, 1, &pl) != TRIT_OK) {
        out->scratch_bytes = UINT64_MAX; /* init refuses the model with the reason */
        return;
    }
    plan_for(m, cfg, &pl, TRIT_TP_QUANT_GROUPED, out);
}

/* ---- the ops ------------------------------------------------------------------------------------ */

static enum trit_status op_embed(void *be, const struct trit_forward_batch *b) {
    struct cpu_state *st = be;
    const struct trit_model *m = st->m;
    for (int64_t i = 0; i < b->n; i++) {
        float *x = F32(st, BUF_X) + i * m->hp.dim;
        trit_dense_row_f32(&m->tok_embd, b->tokens[i], x);
        if (m->hp.embd_scale > 0.0f) /* Gemma: row * sqrt(dim), in fp32 */
            for (int64_t j = 0; j < m->hp.dim; j++) x[j] *= m->hp.embd_scale;
    }
    return TRIT_OK;
}

/* The CPU adds each block's output to x in reduce, so nothing is pending here. */
static enum trit_status op_norm_quant(void *be, int64_t il, enum trit_block blk, const struct trit_forward_batch *b) {
    struct cpu_state *st = be;
    const struct trit_hparams *hp = &st->m->hp;
    const struct trit_layer *L = &st->m->layers[il];
    trit_prepare_matmul_input(st->pool, b->n, hp->dim, F32(st, BUF_X), NULL, hp->act,
                              blk == TRIT_BLOCK_ATTN ? L->attn_norm : L->ffn_norm, hp->norm_eps, F32(st, BUF_XN),
                              st->buf[BUF_Q8], hp->act_block, F32(st, BUF_S));
    return TRIT_OK;
}

static enum trit_status op_matmul_in(void *be, int64_t il, enum trit_block blk, const struct trit_forward_batch *b) {
    struct cpu_state *st = be;
    const struct cpu_layer *W = &st->layers[il];
    if (blk == TRIT_BLOCK_ATTN) {
        const struct trit_cpu_matrix *w[3] = {&W->w[TRIT_W_Q], &W->w[TRIT_W_K], &W->w[TRIT_W_V]};
        float *y[3] = {F32(st, BUF_Q), F32(st, BUF_K), F32(st, BUF_V)};
        return trit_cpu_gemm_f32_multi(st->pool, 3, w, st->buf[BUF_Q8], b->n, F32(st, BUF_S), y);
    }
    const struct trit_cpu_matrix *w[2] = {&W->w[TRIT_W_GATE], &W->w[TRIT_W_UP]};
    float *y[2] = {F32(st, BUF_GATE), F32(st, BUF_UP)};
    return trit_cpu_gemm_f32_multi(st->pool, 2, w, st->buf[BUF_Q8], b->n, F32(st, BUF_S), y);
}

/* Floats of one layer's K (or V) cache, and of one block of it. */
static int64_t layer_floats(const struct cpu_state *st) { return st->n_kv_blocks * TRIT_KV_BLOCK * st->kv; }
static int64_t block_floats(const struct cpu_state *st) { return TRIT_KV_BLOCK * st->kv; }

static enum trit_status op_rope_cache(void *be, int64_t il, const struct trit_forward_batch *b) {
    struct cpu_state *st = be;
    const struct trit_hparams *hp = &st->m->hp;
    const int64_t hd = hp->head_dim, kv = st->kv;
    float *kc = F32(st, BUF_K_CACHE) + il * layer_floats(st), *vc = F32(st, BUF_V_CACHE) + il * layer_floats(st);
    const bool local = st->m->layers[il].sliding; /* Gemma3's sliding layers: their own theta */
    for (int64_t i = 0; i < b->n; i++) {
        const int64_t pos = b->pos[i];
        const int64_t row = b->blocks[i][pos / TRIT_KV_BLOCK] * block_floats(st) + pos % TRIT_KV_BLOCK * kv;
        const float *c = F32(st, local ? BUF_ROPE_COS_LOCAL : BUF_ROPE_COS) + pos * (hd / 2);
        const float *s = F32(st, local ? BUF_ROPE_SIN_LOCAL : BUF_ROPE_SIN) + pos * (hd / 2);
        float *q = F32(st, BUF_Q) + i * st->q, *k = F32(st, BUF_K) + i * kv;
        if (hp->qk_norm) { /* Qwen3, Gemma3: every q and k head normalized before RoPE */
            const struct trit_layer *L = &st->m->layers[il];
            for (int64_t h = 0; h < st->plan.n_heads; h++) trit_rmsnorm_f32(q + h * hd, L->attn_q_norm, hd, hp->norm_eps, q + h * hd);
            for (int64_t h = 0; h < st->plan.n_kv_heads; h++) trit_rmsnorm_f32(k + h * hd, L->attn_k_norm, hd, hp->norm_eps, k + h * hd);
        }
        for (int64_t h = 0; h < st->plan.n_heads; h++) trit_rope_f32(q + h * hd, hd, c, s, hp->rope_style);
        for (int64_t h = 0; h < st->plan.n_kv_heads; h++) trit_rope_f32(k + h * hd, hd, c, s, hp->rope_style);
        memcpy(kc + row, k, (size_t)kv * sizeof(float));
        memcpy(vc + row, F32(st, BUF_V) + i * kv, (size_t)kv * sizeof(float));
    }
    return TRIT_OK;
}

struct attn_job {
    struct cpu_state *st;
    const struct trit_forward_batch *b;
    int64_t layer, n_tok;
};

/* One task per (token, span of heads); the scores scratch belongs to the running thread. Spans
 * major, so that a thread's consecutive tasks read the same KV head's cache (it stays in L2); tokens
 * in the order 0, n-1, 1, n-2, ...: the pool gives each thread a contiguous range of tasks, and
 * pairing short and long contexts gives every range the same work at any thread count. */
static void attn_task(void *ctx, int64_t task, int thread) {
    const struct attn_job *j = ctx;
    const struct cpu_state *st = j->st;
    const struct trit_hparams *hp = &st->m->hp;
    const int64_t hd = hp->head_dim, C = st->cfg.n_ctx;
    const struct attn_span *sp = &st->spans[task / j->n_tok];
    const int64_t i = task % j->n_tok, b = i % 2 == 0 ? i / 2 : j->n_tok - 1 - i / 2;
    const float *kc = F32(st, BUF_K_CACHE) + j->layer * layer_floats(st) + sp->kv * hd;
    const float *vc = F32(st, BUF_V_CACHE) + j->layer * layer_floats(st) + sp->kv * hd;
    /* a sliding layer sees positions > pos - W (transformers' sliding_window_overlay); the cache
     * keeps every position, the older ones are only not read */
    const int64_t pos = j->b->pos[b], W = hp->sliding_window;
    const int64_t t_begin = st->m->layers[j->layer].sliding && pos >= W ? pos - W + 1 : 0;
    const float scale = hp->attn_scale > 0.0f ? hp->attn_scale : 1.0f / sqrtf((float)hd);
    trit_attention_f32_window(F32(st, BUF_Q) + b * st->q + sp->h0 * hd, kc, vc, j->b->blocks[b], block_floats(st), t_begin,
                              pos + 1, scale, sp->n, 1, hd, st->kv, F32(st, BUF_SCORES) + (int64_t)thread * C,
                              F32(st, BUF_ATT) + b * st->q + sp->h0 * hd, 0, sp->n);
}

static enum trit_status op_attention(void *be, int64_t il, const struct trit_forward_batch *b) {
    struct cpu_state *st = be;
    struct attn_job j = {.st = st, .b = b, .layer = il, .n_tok = b->n};
    trit_pool_parallel_for(st->pool, b->n * st->n_spans, attn_task, &j);
    return TRIT_OK;
}

/* Exact mode's sharded row, in three passes over the tokens with a collective between them. */
struct shard_job {
    struct cpu_state *st;
    float *x;        /* (n, n_loc) */
    const float *up; /* act(x) * up first, or NULL */
    const float *w;  /* this rank's sub-norm weights, or NULL */
    int64_t n_loc;
    int pass;
};

static void shard_task(void *ctx, int64_t t, int thread) {
    (void)thread;
    const struct shard_job *j = ctx;
    struct cpu_state *st = j->st;
    float *row = j->x + t * j->n_loc;
    if (j->pass == 0) { /* act; this rank's sum of squares */
        if (j->up) trit_gated_act_f32(row, j->up + t * j->n_loc, j->n_loc, st->m->hp.act);
        if (j->w) trit_tp_sumsq_partial(row, j->n_loc, (double *)st->buf[BUF_SS] + 2 * t);
    } else if (j->pass == 1) { /* trit_rmsnorm_f32's expressions with the whole row's 1 / rms; absmax */
        if (j->w) {
            const float inv = F32(st, BUF_INV)[t];
            for (int64_t i = 0; i < j->n_loc; i++) row[i] = j->w[i] * (row[i] * inv);
        }
        float a = 0.0f;
        for (int64_t i = 0; i < j->n_loc; i++) a = fmaxf(a, fabsf(row[i]));
        F32(st, BUF_AMAX)[t] = a;
    } else { /* the scale of the whole row's absmax */
        F32(st, BUF_S)[t] = trit_act_scale(F32(st, BUF_AMAX)[t]);
        trit_quantize_row_i8_scaled(row, j->n_loc, F32(st, BUF_S)[t], (int8_t *)st->buf[BUF_Q8] + t * j->n_loc);
    }
}

static enum trit_status shard_quant_exact(struct cpu_state *st, struct shard_job *j, int64_t n, int64_t n_tot) {
    const int P = st->plan.n_ranks;
    const double *all = st->buf[BUF_SS_ALL];
    double *tok = st->buf[BUF_SS_TOK];
    trit_pool_parallel_for(st->pool, n, shard_task, j);
    if (j->w) {
        TRIT_TRY(trit_comm_allgather(st->comm, st->buf[BUF_SS], st->buf[BUF_SS_ALL], 2 * n, TRIT_COMM_F64));
        for (int64_t t = 0; t < n; t++) {
            for (int p = 0; p < P; p++) {
                tok[2 * p] = all[(int64_t)p * 2 * n + 2 * t];
                tok[2 * p + 1] = all[(int64_t)p * 2 * n + 2 * t + 1];
            }
            F32(st, BUF_INV)[t] = 1.0f / sqrtf(trit_tp_sumsq_combine(tok, P) / (float)n_tot + st->m->hp.norm_eps);
        }
    }
    j->pass = 1;
    trit_pool_parallel_for(st->pool, n, shard_task, j);
    TRIT_TRY(trit_comm_allreduce(st->comm, st->buf[BUF_AMAX], n, TRIT_COMM_F32, TRIT_COMM_MAX));
    j->pass = 2;
    trit_pool_parallel_for(st->pool, n, shard_task, j);
    return TRIT_OK;
}

static enum trit_status op_shard_quant(void *be, int64_t il, enum trit_block blk, const struct trit_forward_batch *b) {
    struct cpu_state *st = be;
    const struct trit_hparams *hp = &st->m->hp;
    const struct trit_layer *L = &st->m->layers[il];
    const bool attn = blk == TRIT_BLOCK_ATTN;
    const float *sub = !hp->sub_norms  ? NULL
                       : attn          ? L->attn_sub_norm + st->plan.head0 * hp->head_dim
                                       : L->ffn_sub_norm + st->plan.ffn0;
    float *x = attn ? F32(st, BUF_ATT) : F32(st, BUF_GATE);
    const float *up = attn ? NULL : F32(st, BUF_UP);
    const int64_t n_loc = attn ? st->q : st->f;
    if (st->quant == TRIT_TP_QUANT_GROUPED) { /* this rank's own statistics: one rank's arithmetic */
        trit_prepare_matmul_input(st->pool, b->n, n_loc, x, up, hp->act, sub, hp->norm_eps, x, st->buf[BUF_Q8],
                                  hp->act_block, F32(st, BUF_S));
        return TRIT_OK;
    }
    struct shard_job j = {.st = st, .x = x, .up = up, .w = sub, .n_loc = n_loc};
    return shard_quant_exact(st, &j, b->n, attn ? hp->n_heads * hp->head_dim : hp->ffn_dim);
}

static void maybe_fault(const struct cpu_state *st, int64_t layer) {
    if (st->fault == FAULT_NONE || st->n_forward != 1 || layer != 0) return;
    if (st->fault == FAULT_KILL) raise(SIGKILL);
    for (;;) pause(); /* FAULT_HANG: until mpirun ends the job */
}

static enum trit_status op_matmul_out(void *be, int64_t il, enum trit_block blk, const struct trit_forward_batch *b) {
    struct cpu_state *st = be;
    const struct trit_cpu_matrix *w = &st->layers[il].w[blk == TRIT_BLOCK_ATTN ? TRIT_W_O : TRIT_W_DOWN];
    if (blk == TRIT_BLOCK_ATTN) maybe_fault(st, il);
    if (st->quant == TRIT_TP_QUANT_EXACT) return trit_cpu_gemm_i32(st->pool, w, st->buf[BUF_Q8], b->n, st->buf[BUF_ACC]);
    /* grouped: with one rank the part is the whole sum, added to x in the kernel (after its post-norm
     * in reduce, where the graph has one) */
    if (!st->partial && !st->m->hp.post_norms) return trit_cpu_gemm_f32_add(st->pool, w, st->buf[BUF_Q8], b->n, F32(st, BUF_S), F32(st, BUF_X));
    return trit_cpu_gemm_f32(st->pool, w, st->buf[BUF_Q8], b->n, F32(st, BUF_S), F32(st, BUF_Y));
}

static enum trit_status op_reduce(void *be, int64_t il, enum trit_block blk, const struct trit_forward_batch *b) {
    struct cpu_state *st = be;
    const struct trit_hparams *hp = &st->m->hp;
    if (!st->partial && !hp->post_norms) return TRIT_OK; /* one rank, grouped: matmul_out added it */
    const int64_t n = b->n * hp->dim;
    float *y = F32(st, BUF_Y), *x = F32(st, BUF_X);
    if (!st->partial) { /* one rank: y is the whole output; Gemma's sandwich norm before the add */
        const struct trit_layer *L = &st->m->layers[il];
        const float *w = blk == TRIT_BLOCK_ATTN ? L->attn_post_norm : L->ffn_post_norm;
        for (int64_t t = 0; t < b->n; t++) trit_rmsnorm_f32(y + t * hp->dim, w, hp->dim, hp->norm_eps, y + t * hp->dim);
    } else if (hp->post_norms) { /* tensor parallelism refuses these models (setup: the group rule) */
        return trit_error(TRIT_ERR_UNSUPPORTED, "tensor parallel: post-norms are not supported");
    } else if (st->quant == TRIT_TP_QUANT_EXACT) {
        const struct trit_cpu_matrix *w = &st->layers[il].w[blk == TRIT_BLOCK_ATTN ? TRIT_W_O : TRIT_W_DOWN];
        TRIT_TRY(trit_comm_allreduce(st->comm, st->buf[BUF_ACC], n, TRIT_COMM_I32, TRIT_COMM_SUM));
        trit_epilogue_ref(st->buf[BUF_ACC], b->n, st->m->hp.dim, F32(st, BUF_S), w->scale, w->scale_kind, y);
    } else {
        TRIT_TRY(trit_comm_allreduce(st->comm, y, n, TRIT_COMM_F32, TRIT_COMM_SUM));
    }
    trit_add_f32(x, y, n);
    return TRIT_OK;
}

static enum trit_status op_head(void *be, const struct trit_forward_batch *b) {
    struct cpu_state *st = be;
    const struct trit_model *m = st->m;
    const int64_t D = m->hp.dim;
    float *xn = b->hidden ? b->hidden : F32(st, BUF_XN); /* (n_out, D) */
    if (b->n_out == 0) return TRIT_OK; /* a prefill chunk that wants no logits */
    for (int64_t i = 0; i < b->n_out; i++)
        trit_rmsnorm_f32(F32(st, BUF_X) + b->out[i] * D, m->out_norm, D, m->hp.norm_eps, xn + i * D);
    if (b->hidden) return TRIT_OK; /* embeddings: the head's input is the answer */
    if (st->cfg.head_int8 || st->cfg.head_q4) return trit_head_i8_logits(st->pool, &st->head8, xn, b->n_out, D, st->logits);
    if (st->plan.n_ranks == 1) {
        trit_dense_logits(st->pool, &m->output, xn, b->n_out, D, m->hp.n_vocab, st->logits);
        return TRIT_OK;
    }
    struct trit_dense shard = m->output; /* this rank's vocabulary rows */
    shard.data = (const char *)m->output.data + (size_t)(st->plan.vocab0 * D) * (m->output.dtype == TRIT_DTYPE_F32 ? 4 : 2);
    shard.n_rows = st->plan.n_vocab;
    trit_dense_logits(st->pool, &shard, xn, b->n_out, D, st->plan.vocab_stride, st->buf[BUF_HEAD_LOC]);
    return TRIT_OK;
}

static enum trit_status op_gather_logits(void *be, const struct trit_forward_batch *b) {
    struct cpu_state *st = be;
    const struct trit_tp_plan *pl = &st->plan;
    const int64_t V = st->m->hp.n_vocab;
    if (pl->n_ranks == 1) return TRIT_OK; /* the head wrote whole rows */
    for (int64_t t0 = 0; t0 < b->n_out; t0 += st->gather_tok) {
        const int64_t nt = b->n_out - t0 < st->gather_tok ? b->n_out - t0 : st->gather_tok;
        TRIT_TRY(trit_comm_allgather(st->comm, F32(st, BUF_HEAD_LOC) + t0 * pl->vocab_stride, st->buf[BUF_HEAD_ALL],
                                     nt * pl->vocab_stride, TRIT_COMM_F32));
        for (int p = 0; p < pl->n_ranks; p++) {
            int64_t v0, nv;
            trit_tp_split(V, pl->n_ranks, p, &v0, &nv);
            for (int64_t t = 0; t < nt; t++)
                memcpy(st->logits + (t0 + t) * V + v0, F32(st, BUF_HEAD_ALL) + ((int64_t)p * nt + t) * pl->vocab_stride,
                       (size_t)nv * sizeof(float));
        }
    }
    return TRIT_OK;
}

static const struct trit_layer_ops cpu_ops = {
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

static enum trit_status cpu_forward_batch(void *state, const struct trit_forward_batch *b, float *logits) {
    struct cpu_state *st = state;
    if ((!logits && !b->hidden) || !b->pos || !b->blocks || !b->out || b->n < 1 || b->n > st->cfg.n_batch || b->n_out < 0 ||
        b->n_out > out_rows(&st->cfg))
        return trit_error(TRIT_ERR_INVALID_ARG, "cpu forward: a batch of %lld tokens and %lld rows of logits (%lld and %lld at most)",
                          (long long)b->n, (long long)b->n_out, (long long)st->cfg.n_batch, (long long)out_rows(&st->cfg));
    st->logits = logits;
    TRIT_TRY(trit_forward_run(&cpu_ops, st, &st->m->hp, b));
    st->n_tokens += b->n;
    st->n_forward++;
    return TRIT_OK;
}

/* forward_batch, its out rows ending at the final norm (written to hidden); no logits. */
static enum trit_status cpu_forward_hidden(void *state, const struct trit_forward_batch *b, float *hidden) {
    if (!hidden || b->hidden) return trit_error(TRIT_ERR_INVALID_ARG, "cpu forward_hidden: no hidden-state buffer");
    struct trit_forward_batch h = *b;
    h.hidden = hidden;
    return cpu_forward_batch(state, &h, NULL);
}

/* One sequence in blocks 0, 1, 2, ... of the pool: the contiguous cache's layout. */
static enum trit_status cpu_forward(void *state, const int32_t *tokens, int64_t n, int64_t pos0, float *logits) {
    struct cpu_state *st = state;
    struct trit_forward_batch b;
    TRIT_TRY(trit_forward_batch_make(&st->m->hp, st->cfg.n_ctx, st->cfg.n_batch, st->cfg.logits_all, tokens, n, pos0, &b));
    if (pos0 + n > st->n_kv_blocks * TRIT_KV_BLOCK)
        return trit_error(TRIT_ERR_CONTEXT_FULL, "context full: positions up to %lld do not fit the KV pool's %lld tokens",
                          (long long)(pos0 + n - 1), (long long)(st->n_kv_blocks * TRIT_KV_BLOCK));
    for (int64_t i = 0; i < n; i++) {
        st->one_pos[i] = (int32_t)(pos0 + i);
        st->one_blocks[i] = st->ident;
    }
    for (int64_t i = 0; i < b.n_out; i++) st->one_out[i] = (int32_t)(b.first_out + i);
    b.pos = st->one_pos;
    b.blocks = st->one_blocks;
    b.out = st->one_out;
    return cpu_forward_batch(st, &b, logits);
}

static enum trit_status cpu_kv_copy(void *state, int32_t from, int32_t to) {
    struct cpu_state *st = state;
    if (from < 0 || to < 0 || from >= st->n_kv_blocks || to >= st->n_kv_blocks)
        return trit_error(TRIT_ERR_INVALID_ARG, "cpu kv copy: block %d -> %d outside the pool of %lld", from, to,
                          (long long)st->n_kv_blocks);
    const int64_t bf = block_floats(st);
    for (int c = BUF_K_CACHE; c <= BUF_V_CACHE; c++)
        for (int64_t il = 0; il < st->m->hp.n_layers; il++) {
            float *base = F32(st, c) + il * layer_floats(st);
            memcpy(base + to * bf, base + from * bf, (size_t)bf * sizeof(float));
        }
    return TRIT_OK;
}

/* ---- init / free -------------------------------------------------------------------------------- */

static void cpu_free(void *state) {
    struct cpu_state *st = state;
    if (!st) return;
    if (st->layers) {
        for (int64_t i = 0; i < st->m->hp.n_layers; i++)
            for (int j = 0; j < TRIT_N_W; j++) trit_cpu_matrix_free(&st->layers[i].w[j]);
    }
    trit_free(st->layers);
    trit_free(st->spans);
    trit_free(st->ident);
    trit_free(st->one_pos);
    trit_free(st->one_out);
    trit_free(st->one_blocks);
    for (int i = 0; i < N_BUF; i++) trit_free(st->buf[i]);
    trit_head_i8_free(&st->head8);
    trit_pool_free(st->pool);
    if (st->own_comm) trit_comm_free(st->comm);
    trit_free(st);
}

static uint64_t layers_bytes(const struct cpu_state *st) {
    uint64_t w = 0;
    for (int64_t i = 0; i < st->m->hp.n_layers; i++)
        for (int j = 0; j < TRIT_N_W; j++) w += (uint64_t)trit_cpu_matrix_bytes(&st->layers[i].w[j]);
    return w;
}

/* This rank's part of a canonical matrix, packed (plan.h's shard table). The whole matrix (one rank)
 * is packed in place; grouped mode with float weights ternarizes the shard with its own alpha. */
static enum trit_status pack_shard(const struct trit_ternary *w, const float *wf, struct trit_tp_shard sh,
                                   struct trit_cpu_matrix *out) {
    if (!wf && sh.start == 0 && sh.n == (sh.by_rows ? w->n_rows : w->n_cols)) return trit_cpu_matrix_pack(w, out);
    struct trit_ternary t;
    enum trit_status st;
    if (wf && sh.by_rows) st = trit_ternarize(wf + sh.start * w->n_cols, sh.n, w->n_cols, &t);
    else if (wf) st = trit_ternarize_cols(wf, w->n_rows, w->n_cols, sh.start, sh.start + sh.n, &t);
    else if (sh.by_rows) st = trit_tp_ternary_rows(w, sh.start, sh.n, &t);
    else st = trit_tp_ternary_cols(w, sh.start, sh.n, &t);
    if (st != TRIT_OK) return st;
    st = trit_cpu_matrix_pack(&t, out);
    trit_ternary_free(&t);
    return st;
}

/* Attention tasks: this rank's own query heads, in spans of up to 4 that share a KV head. */
static enum trit_status make_spans(struct cpu_state *st) {
    const struct trit_hparams *hp = &st->m->hp;
    const struct trit_tp_plan *pl = &st->plan;
    const int64_t group = hp->n_heads / hp->n_kv_heads, per = group < 4 ? group : 4;
    st->spans = trit_alloc((size_t)pl->n_heads * sizeof *st->spans);
    if (!st->spans) return trit_error(TRIT_ERR_OUT_OF_MEMORY, "cpu backend: out of memory");
    for (int64_t h = pl->head0; h < pl->head0 + pl->n_heads;) {
        const int64_t kv = h / group, end_group = (kv + 1) * group, end_own = pl->head0 + pl->n_heads;
        int64_t n = end_group < end_own ? end_group - h : end_own - h;
        if (n > per) n = per;
        st->spans[st->n_spans++] = (struct attn_span){.h0 = h - pl->head0, .n = n, .kv = kv - pl->kv_head0};
        h += n;
    }
    return TRIT_OK;
}

/* The memory plan of an MPI rank (one process is planned by trit_context_init through cpu_plan; a
 * rank's shards are known only here): the buffers, checked against what is left once the shards
 * are packed, before any is allocated. */
static enum trit_status check_buffers(const struct cpu_state *st) {
    struct trit_mem_plan p;
    plan_for(st->m, &st->cfg, &st->plan, st->quant, &p);
    const uint64_t need = add_sat(p.kv_bytes, p.scratch_bytes), held = layers_bytes(st), left = trit_mem_available();
    const bool by_limit = st->cfg.mem_limit > 0 && (st->cfg.mem_limit < held || st->cfg.mem_limit - held < left);
    const uint64_t limit = by_limit ? (st->cfg.mem_limit > held ? st->cfg.mem_limit - held : 0) : left;
    if (need <= limit) return TRIT_OK;
    return trit_error(TRIT_ERR_OUT_OF_MEMORY,
                      "tensor parallel: rank %d: a context of %lld tokens needs %.1f MiB of cache and buffers beside "
                      "its %.1f MiB of weights, more than %s (%.1f MiB); shorten it (-c)",
                      st->plan.rank, (long long)st->cfg.n_ctx, (double)need / 1048576.0, (double)held / 1048576.0,
                      by_limit ? "the memory limit leaves (--mem-limit)" : "this machine has left",
                      (double)limit / 1048576.0);
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

/* The same model and parameters on every rank. */
static enum trit_status check_fingerprint(const struct cpu_state *st, int rank) {
    const uint32_t h = trit_tp_fingerprint(st->m, st->cfg.n_ctx, st->cfg.n_batch, st->cfg.logits_all, (int)st->quant);
    /* and the pool: every rank takes the same blocks for the same calls */
    const int32_t fp = (int32_t)((h * 31u + (uint32_t)kv_blocks(&st->cfg) * 7u + (uint32_t)st->cfg.n_seq_max) & 0x7fffffffu);
    int32_t range[2] = {fp, -fp};
    TRIT_TRY(trit_comm_allreduce(st->comm, range, 2, TRIT_COMM_I32, TRIT_COMM_MAX));
    if (range[0] != -range[1])
        return trit_error(TRIT_ERR_INVALID_ARG,
                          "tensor parallel: rank %d: the ranks disagree on the model or the context parameters "
                          "(fingerprint %08x here, %08x..%08x over the ranks); start every rank with the same "
                          "model, -c, -b, --tp-quant and sequence options",
                          rank, (unsigned)fp, (unsigned)-range[1], (unsigned)range[0]);
    return TRIT_OK;
}

static enum trit_status setup(struct cpu_state *st, const struct trit_tp_float_source *floats) {
    const struct trit_model *m = st->m;
    const struct trit_hparams *hp = &m->hp;
    const int rank = trit_comm_rank(st->comm), P = trit_comm_size(st->comm);
    TRIT_TRY(check_fingerprint(st, rank));

    enum trit_status status = trit_tp_plan_make(hp, rank, P, &st->plan);
    const struct trit_tp_plan *pl = &st->plan;
    if (status == TRIT_OK && st->quant != TRIT_TP_QUANT_EXACT && st->quant != TRIT_TP_QUANT_GROUPED)
        status = trit_error(TRIT_ERR_INVALID_ARG, "tensor parallel: unknown quantization mode %d", (int)st->quant);
    const bool mpi = trit_comm_backend(st->comm) != TRIT_COMM_SELF;
    if (status == TRIT_OK && trit_model_group_rule(m) && (P > 1 || st->quant == TRIT_TP_QUANT_EXACT))
        status = trit_error(TRIT_ERR_UNSUPPORTED, "tensor parallel: %s models (group scales or activations quantized per "
                                                  "block) run on one rank only for now",
                            m->arch_name[0] ? m->arch_name : "these");
    if (status == TRIT_OK && mpi && (st->cfg.head_int8 || st->cfg.head_q4))
        status = trit_error(TRIT_ERR_UNSUPPORTED, "tensor parallel: the quantized LM heads are not supported yet; drop --head");
    if (status == TRIT_OK) {
        if (st->cfg.n_threads <= 0) {
            const long cores = sysconf(_SC_NPROCESSORS_ONLN);
            const int n = (int)((cores > 0 ? cores : 1) / trit_comm_local_size(st->comm));
            st->cfg.n_threads = n < 1 ? 1 : n;
        }
        status = trit_pool_create(st->cfg.n_threads, &st->pool);
    }
    if (status == TRIT_OK) {
        st->layers = trit_alloc((size_t)hp->n_layers * sizeof *st->layers);
        if (!st->layers) status = trit_error(TRIT_ERR_OUT_OF_MEMORY, "cpu backend: out of memory");
    }
    for (int64_t il = 0; il < hp->n_layers && status == TRIT_OK; il++) {
        for (int j = 0; j < TRIT_N_W && status == TRIT_OK; j++) {
            const float *wf = st->quant == TRIT_TP_QUANT_GROUPED && floats && floats->get
                                  ? floats->get(floats->user, il, (enum trit_weight)j)
                                  : NULL;
            status = pack_shard(&m->layers[il].w[j], wf, trit_tp_shard_of(pl, hp, (enum trit_weight)j, false),
                                &st->layers[il].w[j]);
            st->layers[il].w[j].act_block = hp->act_block;
        }
    }
    if (status == TRIT_OK) {
        const int64_t hd = hp->head_dim;
        st->q = pl->n_heads * hd;
        st->kv = pl->n_kv_heads * hd;
        st->f = pl->n_ffn;
        st->partial = st->quant == TRIT_TP_QUANT_EXACT || P > 1;
        st->gather_tok = gather_rows(&st->cfg, pl);
        status = make_spans(st);
    }
    if (status == TRIT_OK) { /* forward's identity block table, as long as the pool or the context */
        st->n_kv_blocks = kv_blocks(&st->cfg);
        const int64_t n_ident = st->n_kv_blocks, B = st->cfg.n_batch;
        st->ident = trit_alloc((size_t)n_ident * sizeof *st->ident);
        st->one_pos = trit_alloc((size_t)B * sizeof *st->one_pos);
        st->one_out = trit_alloc((size_t)B * sizeof *st->one_out);
        st->one_blocks = trit_alloc((size_t)B * sizeof *st->one_blocks);
        if (!st->ident || !st->one_pos || !st->one_out || !st->one_blocks)
            status = trit_error(TRIT_ERR_OUT_OF_MEMORY, "cpu backend: out of memory");
        for (int64_t i = 0; status == TRIT_OK && i < n_ident; i++) st->ident[i] = (int32_t)i;
    }
    if (status == TRIT_OK && mpi) status = check_buffers(st);
    if (status == TRIT_OK) {
        uint64_t bytes[N_BUF];
        buffer_bytes(m, &st->cfg, pl, st->quant, bytes);
        for (int i = 0; i < N_BUF && status == TRIT_OK; i++) {
            /* uninitialized: every buffer is written before it is read */
            if (bytes[i] > 0 && !(st->buf[i] = trit_alloc_uninit((size_t)bytes[i])))
                status = trit_error(TRIT_ERR_OUT_OF_MEMORY, "cpu backend: out of memory allocating %llu MiB",
                                    (unsigned long long)(bytes[i] >> 20));
        }
    }
    if (status == TRIT_OK && st->cfg.head_int8)
        status = trit_head_i8_init(&m->output, out_rows(&st->cfg), TRIT_HEAD_I8_AUTO, st->pool, &st->head8);
    else if (status == TRIT_OK && st->cfg.head_q4)
        status = trit_head_q4_init(&m->output, out_rows(&st->cfg), TRIT_HEAD_I8_AUTO, st->pool, &st->head8);
    if (status == TRIT_OK)
        trit_rope_table(st->cfg.n_ctx, hp->head_dim, hp->rope_theta, F32(st, BUF_ROPE_COS), F32(st, BUF_ROPE_SIN));
    if (status == TRIT_OK && hp->sliding_window > 0)
        trit_rope_table(st->cfg.n_ctx, hp->head_dim, hp->rope_theta_local, F32(st, BUF_ROPE_COS_LOCAL), F32(st, BUF_ROPE_SIN_LOCAL));
    /* everyone succeeded, or everyone fails */
    return agree(st->comm, status);
}

static int env_rank(const char *name) {
    const char *v = getenv(name);
    return v && *v ? atoi(v) : -1;
}

enum trit_status trit_cpu_rank_init(const struct trit_model *m, const struct trit_backend_config *cfg,
                                    struct trit_comm *comm, bool own_comm, enum trit_tp_quant quant,
                                    const struct trit_tp_float_source *floats, void **out) {
    *out = NULL;
    if (cfg->n_ctx <= 0 || cfg->n_batch <= 0 || cfg->n_threads < 0) {
        if (own_comm) trit_comm_free(comm);
        return trit_error(TRIT_ERR_INVALID_ARG, "cpu backend: context %lld, batch %lld and threads %d out of range",
                          (long long)cfg->n_ctx, (long long)cfg->n_batch, cfg->n_threads);
    }
    struct cpu_state *st = trit_alloc(sizeof *st);
    if (!st) {
        if (own_comm) trit_comm_free(comm);
        return trit_error(TRIT_ERR_OUT_OF_MEMORY, "cpu backend: out of memory");
    }
    st->m = m;
    st->cfg = *cfg;
    if (st->cfg.n_batch > st->cfg.n_ctx) st->cfg.n_batch = st->cfg.n_ctx;
    st->comm = comm;
    st->own_comm = own_comm;
    st->quant = quant;
    enum trit_status status = TRIT_OK;
    if (trit_comm_backend(comm) != TRIT_COMM_MPI && trit_comm_backend(comm) != TRIT_COMM_SELF)
        status = trit_error(TRIT_ERR_INVALID_ARG, "cpu backend: the communicator must hold host memory (MPI)");
    if (status == TRIT_OK) status = setup(st, floats);
    if (status != TRIT_OK) {
        cpu_free(st);
        return status;
    }
    struct trit_comm_stats cs;
    trit_comm_get_stats(st->comm, &cs);
    st->comm_us0 = cs.time_us;
    st->comm_calls0 = cs.n_calls;
    const int rank = trit_comm_rank(st->comm);
    const bool mpi = trit_comm_backend(st->comm) != TRIT_COMM_SELF; /* the test hooks are for MPI jobs */
    if (mpi && env_rank("TRIT_TP_TEST_KILL_RANK") == rank) st->fault = FAULT_KILL;
    if (mpi && env_rank("TRIT_TP_TEST_HANG_RANK") == rank) st->fault = FAULT_HANG;
    *out = st;
    return TRIT_OK;
}

/* The backend table's init: one process, rank 0 of 1 on the one-rank communicator. Grouped mode,
 * because over one rank a shard's own statistics are the row's: the plain model's arithmetic. */
static enum trit_status cpu_init(const struct trit_model *m, const struct trit_backend_config *cfg, void **out) {
    *out = NULL;
    if (cfg->n_threads <= 0)
        return trit_error(TRIT_ERR_INVALID_ARG, "cpu backend: context %lld, batch %lld and threads %d must be positive",
                          (long long)cfg->n_ctx, (long long)cfg->n_batch, cfg->n_threads);
    struct trit_comm *self;
    TRIT_TRY(trit_comm_self_create(&self));
    return trit_cpu_rank_init(m, cfg, self, true, TRIT_TP_QUANT_GROUPED, NULL, out);
}

static const char *cpu_describe(void *state) {
    struct cpu_state *st = state;
    const struct trit_backend_config *c = &st->cfg;
    if (trit_comm_backend(st->comm) == TRIT_COMM_SELF) {
        snprintf(st->desc, sizeof st->desc, "CPU %s, %d thread%s%s%s", trit_cpu_kernel_name(), c->n_threads,
                 c->n_threads == 1 ? "" : "s", c->head_int8 ? ", int8 head " : c->head_q4 ? ", 4-bit head " : "",
                 c->head_int8 || c->head_q4 ? trit_head_i8_kernel_name(st->head8.kernel) : "");
        return st->desc;
    }
    struct trit_comm_stats cs;
    trit_comm_get_stats(st->comm, &cs);
    cs.time_us -= st->comm_us0;
    cs.n_calls -= st->comm_calls0;
    const struct trit_tp_plan *pl = &st->plan;
    snprintf(st->desc, sizeof st->desc,
             "CPU %s, %d thread%s, tensor parallel rank %d of %d over MPI (%s%s); comm %.1f ms in %lld collectives, "
             "%.1f us/token",
             trit_cpu_kernel_name(), c->n_threads, c->n_threads == 1 ? "" : "s", pl->rank, pl->n_ranks,
             st->quant == TRIT_TP_QUANT_EXACT ? "exact" : "grouped", pl->kv_replicated ? ", KV heads replicated" : "",
             (double)cs.time_us / 1e3, (long long)cs.n_calls,
             st->n_tokens > 0 ? (double)cs.time_us / (double)st->n_tokens : 0.0);
    return st->desc;
}

static uint64_t cpu_memory_bytes(void *state) {
    const struct cpu_state *st = state;
    const uint64_t kv = (uint64_t)(2 * st->m->hp.n_layers * layer_floats(st)) * sizeof(float);
    return kv + layers_bytes(st) + (uint64_t)trit_head_i8_bytes(&st->head8);
}

static void cpu_tp_info(void *state, int *rank, int *size, int64_t *comm_us) {
    *rank = trit_tp_rank(state);
    *size = trit_tp_size(state);
    *comm_us = trit_tp_comm_us(state);
}

int trit_tp_rank(const void *state) { return ((const struct cpu_state *)state)->plan.rank; }
int trit_tp_size(const void *state) { return ((const struct cpu_state *)state)->plan.n_ranks; }
int64_t trit_tp_tokens(const void *state) { return ((const struct cpu_state *)state)->n_tokens; }
int64_t trit_tp_comm_us(const void *state) {
    const struct cpu_state *st = state;
    struct trit_comm_stats cs;
    trit_comm_get_stats(st->comm, &cs);
    return cs.time_us - st->comm_us0;
}

static struct trit_comm *cpu_host_comm(void *state) {
    struct cpu_state *st = state;
    return trit_comm_backend(st->comm) == TRIT_COMM_MPI ? st->comm : NULL;
}

const struct trit_backend_ops trit_cpu_backend = {
    .name = "cpu",
    .init = cpu_init,
    .forward = cpu_forward,
    .free = cpu_free,
    .describe = cpu_describe,
    .memory_bytes = cpu_memory_bytes,
    .plan = cpu_plan,
    .forward_batch = cpu_forward_batch,
    .kv_copy = cpu_kv_copy,
    .forward_hidden = cpu_forward_hidden,
};

/* The MPI ranks' table (host/tp/forward_tp.c's init creates the communicator). */
const struct trit_backend_ops trit_tp_cpu_backend = {
    .name = "cpu-tp",
    .init = trit_tp_cpu_init_cfg,
    .forward = cpu_forward,
    .free = cpu_free,
    .describe = cpu_describe,
    .memory_bytes = cpu_memory_bytes,
    .tp_info = cpu_tp_info,
    .forward_batch = cpu_forward_batch,
    .kv_copy = cpu_kv_copy,
    .host_comm = cpu_host_comm,
};
