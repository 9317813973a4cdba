/*
 * api.c: the public model and context API (include/trit.h) over host/model and the backends.
 */
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "backend.h"
#include "core/core.h"
#include "cuda_module.h"
#include "kv_pool.h"
#include "model/model.h"
#include "tp/lead.h"
#include "tp/tp.h"

struct trit_context {
    const struct trit_model *model;
    const struct trit_backend_ops *ops;
    void *state;
    struct trit_backend_config cfg;
    struct trit_kv_pool pool; /* the sequences' blocks; sequence 0 is the single-sequence calls' */
    int64_t n_rows;           /* rows of logits: trit_backend_out_rows() */
    float *logits;            /* (n_rows, n_vocab) */
    /* a batch's arrays: n_batch entries each, and n_seq_max for the per-sequence ones */
    int32_t *pos, *out;
    const int32_t **blocks;
    int32_t *seq_len0, *seq_next, *seq_last;
    struct trit_comm *lead; /* trit_tp_lead: the communicator each step is sent over first */
};

/* ---- models --------------------------------------------------------------------------------- */

struct trit_model_params trit_model_default_params(void) {
    struct trit_model_params p = {0};
    return p;
}

enum trit_status trit_model_load(const char *path, const struct trit_model_params *params, trit_model **out) {
    if (!path || !out) return trit_error(TRIT_ERR_INVALID_ARG, "trit_model_load: NULL argument");
    *out = NULL;
    struct trit_model *m = trit_alloc(sizeof *m);
    if (!m) return trit_error(TRIT_ERR_OUT_OF_MEMORY, "out of memory");
    struct trit_load_params lp = {0};
    if (params) {
        lp.progress = params->progress;
        lp.progress_user = params->progress_user;
        if ((unsigned)params->i2s_layout > TRIT_I2S_ARM) {
            trit_free(m);
            return trit_error(TRIT_ERR_INVALID_ARG, "trit_model_load: unknown I2_S layout %d", (int)params->i2s_layout);
        }
        lp.i2s_layout = params->i2s_layout;
    }
    enum trit_status st = trit_model_load_path(path, &lp, m);
    if (st != TRIT_OK) {
        trit_free(m);
        return st;
    }
    *out = m;
    return TRIT_OK;
}

void trit_model_free(trit_model *model) {
    if (!model) return;
    trit_model_release(model);
    trit_free(model);
}

int32_t trit_model_n_vocab(const trit_model *model) { return (int32_t)model->hp.n_vocab; }
int32_t trit_model_n_ctx_train(const trit_model *model) { return (int32_t)model->hp.ctx_train; }
const char *trit_model_head_dtype(const trit_model *model) {
    switch (model->output.dtype) {
    case TRIT_DTYPE_F32: return "f32";
    case TRIT_DTYPE_F16: return "f16";
    case TRIT_DTYPE_BF16: return "bf16";
    }
    return "?";
}

void trit_model_shape(const trit_model *model, struct trit_model_shape *out) {
    const struct trit_hparams *hp = &model->hp;
    *out = (struct trit_model_shape){.architecture = model->arch_name, .n_layers = (int32_t)hp->n_layers,
                                     .dim = (int32_t)hp->dim, .n_heads = (int32_t)hp->n_heads,
                                     .n_kv_heads = (int32_t)hp->n_kv_heads, .head_dim = (int32_t)hp->head_dim,
                                     .ffn_dim = (int32_t)hp->ffn_dim, .n_vocab = (int32_t)hp->n_vocab,
                                     .n_ctx_train = (int32_t)hp->ctx_train,
                                     .n_ternary_params = trit_model_ternary_params(model)};
}

const char *trit_model_desc(const trit_model *model) {
    static _Thread_local char buf[256];
    const struct trit_hparams *hp = &model->hp;
    snprintf(buf, sizeof buf, "%s, %lld layers, dim %lld, heads %lld/%lld, ffn %lld, vocab %lld, %.2f M ternary params",
             model->arch_name, (long long)hp->n_layers, (long long)hp->dim, (long long)hp->n_heads,
             (long long)hp->n_kv_heads, (long long)hp->ffn_dim, (long long)hp->n_vocab,
             (double)trit_model_ternary_params(model) / 1e6);
    return buf;
}

/* ---- contexts ------------------------------------------------------------------------------- */

struct trit_context_params trit_context_default_params(void) {
    struct trit_context_params p = {.n_ctx = 0, .n_batch = 512, .n_threads = 0, .device = TRIT_DEVICE_AUTO, .n_seq_max = 1};
    return p;
}

static int online_cores(void) {
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (int)n : 1;
}

/* ---- the memory plan ------------------------------------------------------------------------- */

uint64_t trit_mem_plan_total(const struct trit_mem_plan *p) {
    uint64_t t = p->weights_bytes;
    t = t + p->kv_bytes < t ? UINT64_MAX : t + p->kv_bytes;
    return t + p->scratch_bytes < t ? UINT64_MAX : t + p->scratch_bytes;
}

/* "1.5 GiB", "12.0 MiB" */
static const char *fmt_bytes(uint64_t b, char buf[32]) {
    if (b == UINT64_MAX) snprintf(buf, 32, "more than 16 EiB");
    else if (b >= (1ull << 30)) snprintf(buf, 32, "%.1f GiB", (double)b / (double)(1ull << 30));
    else if (b >= (1ull << 20)) snprintf(buf, 32, "%.1f MiB", (double)b / (double)(1ull << 20));
    else if (b >= (1ull << 10)) snprintf(buf, 32, "%.1f KiB", (double)b / (double)(1ull << 10));
    else snprintf(buf, 32, "%llu bytes", (unsigned long long)b);
    return buf;
}

/* The pool when n_kv is 0: every sequence can grow to n_ctx. */
static int64_t kv_blocks_default(const struct trit_backend_config *cfg) {
    return (int64_t)trit_kv_pool_blocks(cfg->n_ctx) * cfg->n_seq_max;
}

/* What a context of cfg->n_ctx tokens takes: the backend's plan, with the logits buffer (trit_backend_out_rows)
 * counted as scratch. cfg->n_batch is cut to the context here, as init will. */
static uint64_t context_need(const struct trit_model *m, const struct trit_backend_ops *ops,
                             struct trit_backend_config *cfg, int64_t n_batch_asked, struct trit_mem_plan *p) {
    cfg->n_batch = n_batch_asked < cfg->n_ctx ? n_batch_asked : cfg->n_ctx;
    const int64_t kv_asked = cfg->n_kv_blocks;
    if (kv_asked == 0) cfg->n_kv_blocks = kv_blocks_default(cfg); /* follows the context as it is cut */
    ops->plan(m, cfg, p);
    cfg->n_kv_blocks = kv_asked;
    const uint64_t rows = (uint64_t)trit_backend_out_rows(cfg);
    const uint64_t logits = rows * (uint64_t)m->hp.n_vocab * sizeof(float);
    p->scratch_bytes = p->scratch_bytes + logits < logits ? UINT64_MAX : p->scratch_bytes + logits;
    return trit_mem_plan_total(p);
}

/* The smallest context worth running when the training context does not fit. */
#define PLAN_MIN_CTX 64

/* The longest context of at most `asked` tokens whose need is within `budget`, rounded down to a
 * multiple of 256 when that is at least 256 (0: none). The need grows with n_ctx. */
static int64_t longest_fit(const struct trit_model *m, const struct trit_backend_ops *ops,
                           struct trit_backend_config *cfg, int64_t n_batch, int64_t asked, uint64_t budget) {
    int64_t lo = 0, hi = asked;
    struct trit_mem_plan q;
    while (lo < hi) {
        const int64_t mid = lo + (hi - lo + 1) / 2;
        cfg->n_ctx = mid;
        if (context_need(m, ops, cfg, n_batch, &q) <= budget) lo = mid;
        else hi = mid - 1;
    }
    return lo >= 256 ? lo / 256 * 256 : lo;
}

/* Checks the plan of cfg against the limit before anything is allocated. A context the caller left
 * at 0 (cfg->n_ctx = the training context) that does not fit is cut, with a warning, to the longest
 * multiple of 256 tokens that fits in the --mem-limit, or in half of what the machine has left (a
 * file's context_length of 2^31 must not take all of it); one the caller asked for fails, with both
 * numbers and the longest that fits. */
static enum trit_status check_plan(const struct trit_model *m, const struct trit_backend_ops *ops,
                                   struct trit_backend_config *cfg, const struct trit_context_params *params) {
    const uint64_t left = trit_mem_available();
    const bool by_limit = params->mem_limit > 0 && params->mem_limit < left;
    const uint64_t limit = by_limit ? params->mem_limit : left;
    const int64_t asked = cfg->n_ctx, n_batch = cfg->n_batch;
    struct trit_mem_plan p;
    const uint64_t need = context_need(m, ops, cfg, n_batch, &p);
    if (need <= limit) return TRIT_OK;
    struct trit_mem_plan q;
    const int64_t fits = longest_fit(m, ops, cfg, n_batch, asked, limit);
    char b0[32], b1[32], b2[32], b3[32], b4[32];
    char whose[96];
    if (by_limit) snprintf(whose, sizeof whose, "the memory limit of %s (--mem-limit)", fmt_bytes(limit, b4));
    else snprintf(whose, sizeof whose, "the %s this machine has left", fmt_bytes(limit, b4));
    const int64_t cut = by_limit ? fits : longest_fit(m, ops, cfg, n_batch, asked, limit / 2);
    if (params->n_ctx == 0 && cut >= PLAN_MIN_CTX) {
        cfg->n_ctx = cut;
        context_need(m, ops, cfg, n_batch, &q);
        TRIT_LOG_W("context: the model's training context of %lld tokens needs %s, more than %s; using %lld "
                   "tokens%s (-c sets it)",
                   (long long)asked, fmt_bytes(need, b0), whose, (long long)cut, by_limit ? "" : ", half of that");
        return TRIT_OK;
    }
    cfg->n_ctx = asked;
    cfg->n_batch = n_batch;
    char hint[64] = "not even a context of 1 token fits";
    if (fits >= 1) snprintf(hint, sizeof hint, "at most %lld tokens fit", (long long)fits);
    return trit_error(TRIT_ERR_OUT_OF_MEMORY, "%lld tokens need %s (weights %s, KV cache %s, scratch %s), more than %s; %s",
                      (long long)asked, fmt_bytes(need, b0), fmt_bytes(p.weights_bytes, b1), fmt_bytes(p.kv_bytes, b2),
                      fmt_bytes(p.scratch_bytes, b3), whose, hint);
}

enum trit_status trit_context_init(const trit_model *model, const struct trit_context_params *params, trit_context **out) {
    if (!model || !params || !out) return trit_error(TRIT_ERR_INVALID_ARG, "trit_context_init: NULL argument");
    *out = NULL;
    if (params->n_ctx < 0 || params->n_batch <= 0 || params->n_threads < 0)
        return trit_error(TRIT_ERR_INVALID_ARG, "context: n_ctx %d, n_batch %d, n_threads %d out of range",
                          params->n_ctx, params->n_batch, params->n_threads);
    const struct trit_backend_ops *ops = &trit_cpu_backend;
    /* Tensor parallelism (docs/tensor-parallel.md): --tp N drives N GPUs from this process (NCCL);
     * --tp-mpi makes every MPI process a rank, on the CPU, or on one GPU each with --device cuda. */
    const bool tp = params->tp_mpi || params->tp_size > 1;
    if (params->tp_size < 0 || (unsigned)params->tp_quant > TRIT_TP_QUANT_GROUPED)
        return trit_error(TRIT_ERR_INVALID_ARG, "context: tp_size %d or tp_quant %d out of range", params->tp_size,
                          (int)params->tp_quant);
    if ((unsigned)params->device > TRIT_DEVICE_CUDA)
        return trit_error(TRIT_ERR_INVALID_ARG, "context: unknown device %d", (int)params->device);
    enum trit_cuda_gemv gemv = params->cuda_gemv;
    if ((unsigned)gemv > TRIT_CUDA_GEMV_DP4A)
        return trit_error(TRIT_ERR_INVALID_ARG, "context: unknown CUDA GEMV %d", (int)gemv);
    if (gemv == TRIT_CUDA_GEMV_AUTO) {
        const char *env = getenv("TRIT_CUDA_GEMV");
        if (!env || !*env || !strcmp(env, "add")) gemv = TRIT_CUDA_GEMV_ADD;
        else if (!strcmp(env, "dp4a")) gemv = TRIT_CUDA_GEMV_DP4A;
        else return trit_error(TRIT_ERR_INVALID_ARG, "TRIT_CUDA_GEMV='%s': it takes add or dp4a", env);
    }
    if (params->n_seq_max < 0 || params->n_seq_max > TRIT_SEQ_MAX || params->n_kv < 0)
        return trit_error(TRIT_ERR_INVALID_ARG, "context: n_seq_max %d (0..%d) or n_kv %d out of range", params->n_seq_max,
                          TRIT_SEQ_MAX, params->n_kv);
    if (params->head_int8 && params->head_q4)
        return trit_error(TRIT_ERR_INVALID_ARG, "context: head_int8 and head_q4 are exclusive: pick one LM head");
    const bool tp_cuda = tp && (!params->tp_mpi || params->device == TRIT_DEVICE_CUDA);
    if (tp && !params->tp_mpi) {
        if (params->device == TRIT_DEVICE_CPU)
            return trit_error(TRIT_ERR_INVALID_ARG,
                              "--tp %d runs on %d GPUs of this process; for CPU ranks, run under mpirun with --tp-mpi",
                              params->tp_size, params->tp_size);
        const int n_dev = trit_cuda_device_count();
        if (n_dev < params->tp_size)
            return trit_error(TRIT_ERR_NO_DEVICE,
                              "--tp %d: tensor parallelism in one process runs on %d CUDA devices, and this process "
                              "sees %d%s; for CPU ranks, run under mpirun with --tp-mpi",
                              params->tp_size, params->tp_size, n_dev,
                              trit_cuda_compiled() ? "" : " (this trit was built without CUDA)");
    }
    const char *cpu_only = trit_model_cpu_only(model);
    if (cpu_only && (tp || params->device == TRIT_DEVICE_CUDA))
        return trit_error(TRIT_ERR_UNSUPPORTED, "%s: %s runs on the CPU only so far (--device cpu, no --tp)",
                          tp ? "tensor parallelism" : "--device cuda", cpu_only);
    const struct trit_cuda_module *cuda = NULL;
    if (tp_cuda || params->device == TRIT_DEVICE_CUDA) {
        cuda = trit_cuda_module_load();
        if (!cuda) {
            char why[1600];
            snprintf(why, sizeof why, "%s", trit_last_error());
            return trit_error(TRIT_ERR_NO_DEVICE, "%s: %s", tp_cuda ? "tensor parallelism on GPUs" : "--device cuda", why);
        }
        if (!tp && cuda->device_count() == 0)
            return trit_error(TRIT_ERR_NO_DEVICE, "--device cuda: no CUDA device is visible to this process");
    } else if (!tp && params->device == TRIT_DEVICE_AUTO && trit_cuda_device_count() > 0) {
        cuda = trit_cuda_module_load(); /* loaded by the count above */
    }
    if (cpu_only && cuda) { /* device auto: said so, not silently */
        TRIT_LOG_I("device auto: %s runs on the CPU only so far", cpu_only);
        cuda = NULL;
    }
    if (tp) ops = tp_cuda ? cuda->tp_backend : &trit_tp_cpu_backend;
    else if (cuda) ops = cuda->backend;
    if (!tp && params->device == TRIT_DEVICE_AUTO)
        TRIT_LOG_I("device auto: %s", cuda ? "using CUDA device 0" : "no CUDA device, using the CPU");

    struct trit_backend_config cfg = {
        .n_ctx = params->n_ctx > 0 ? params->n_ctx : model->hp.ctx_train,
        .n_batch = params->n_batch,
        /* 0 threads: every core, or the cores of this node divided by its ranks (the TP backend) */
        .n_threads = params->n_threads > 0 ? params->n_threads : tp ? 0 : online_cores(),
        .logits_all = params->logits_all,
        .head_int8 = params->head_int8,
        .head_q4 = params->head_q4,
        .mem_limit = params->mem_limit,
        .cuda_gemv = gemv,
        /* --tp N without MPI: N GPUs of this process; with MPI the job's size, one rank each */
        .tp_quant = params->tp_quant,
        .tp_n_devices = tp_cuda && !params->tp_mpi ? params->tp_size : 0,
        .tp_expect_ranks = params->tp_mpi ? params->tp_size : 0,
        /* 0: every sequence can grow to n_ctx (the context may still be cut to fit) */
        .n_kv_blocks = params->n_kv > 0 ? trit_kv_pool_blocks(params->n_kv) : 0,
        .n_seq_max = params->n_seq_max > 0 ? params->n_seq_max : 1,
    };
    if (cfg.n_seq_max > 1 && !ops->forward_batch)
        return trit_error(TRIT_ERR_UNSUPPORTED,
                          "context: %d sequences at once: the %s backend decodes one sequence at a time",
                          cfg.n_seq_max, ops->name);
    if (params->n_ctx > model->hp.ctx_train)
        TRIT_LOG_W("context: %d tokens is longer than the %lld the model was trained on; past that, expect its text "
                   "to lose coherence",
                   params->n_ctx, (long long)model->hp.ctx_train);
    if (!tp && ops->plan) TRIT_TRY(check_plan(model, ops, &cfg, params));
    cfg.n_batch = cfg.n_batch < cfg.n_ctx ? cfg.n_batch : cfg.n_ctx;
    /* the pool: as asked, or one sequence of the (possibly cut) context; a backend without
     * forward_batch keeps its contiguous cache of n_ctx, and the pool only counts its one sequence */
    if (cfg.n_kv_blocks == 0 || !ops->forward_batch) cfg.n_kv_blocks = kv_blocks_default(&cfg);
    if (cfg.n_kv_blocks > INT32_MAX) return trit_error(TRIT_ERR_INVALID_ARG, "context: a KV pool of %lld blocks", (long long)cfg.n_kv_blocks);

    trit_context *ctx = trit_alloc(sizeof *ctx);
    if (!ctx) return trit_error(TRIT_ERR_OUT_OF_MEMORY, "out of memory");
    ctx->model = model;
    ctx->ops = ops;
    ctx->cfg = cfg;
    ctx->n_rows = trit_backend_out_rows(&cfg);
    enum trit_status st = trit_kv_pool_init(&ctx->pool, (int32_t)cfg.n_kv_blocks, cfg.n_seq_max, cfg.n_ctx);
    const size_t B = (size_t)cfg.n_batch, S = (size_t)cfg.n_seq_max;
    if (st == TRIT_OK) {
        ctx->logits = trit_alloc_uninit((size_t)(ctx->n_rows * model->hp.n_vocab) * sizeof(float));
        ctx->pos = trit_alloc(B * sizeof *ctx->pos);
        ctx->out = trit_alloc(B * sizeof *ctx->out);
        ctx->blocks = trit_alloc(B * sizeof *ctx->blocks);
        ctx->seq_len0 = trit_alloc(S * sizeof *ctx->seq_len0);
        ctx->seq_next = trit_alloc(S * sizeof *ctx->seq_next);
        ctx->seq_last = trit_alloc(S * sizeof *ctx->seq_last);
        if (!ctx->logits || !ctx->pos || !ctx->out || !ctx->blocks || !ctx->seq_len0 || !ctx->seq_next || !ctx->seq_last)
            st = trit_error(TRIT_ERR_OUT_OF_MEMORY, "out of memory for logits (%lld x %lld) and the batch arrays",
                            (long long)ctx->n_rows, (long long)model->hp.n_vocab);
    }
    if (st == TRIT_OK) st = ops->init(model, &ctx->cfg, &ctx->state);
    if (st != TRIT_OK) {
        trit_context_free(ctx);
        return st;
    }
    *out = ctx;
    return TRIT_OK;
}

void trit_context_free(trit_context *ctx) {
    if (!ctx) return;
    if (ctx->lead) { /* the followers return; a broken group has nobody to tell */
        const struct trit_lead_msg quit = {.op = TRIT_LEAD_QUIT};
        if (trit_lead_send(ctx->lead, &quit, NULL) != TRIT_OK)
            TRIT_LOG_W("tensor parallel: could not tell the other ranks to stop: %s", trit_last_error());
    }
    if (ctx->state) ctx->ops->free(ctx->state);
    trit_kv_pool_free(&ctx->pool);
    trit_free(ctx->logits);
    trit_free(ctx->pos);
    trit_free(ctx->out);
    trit_free(ctx->blocks);
    trit_free(ctx->seq_len0);
    trit_free(ctx->seq_next);
    trit_free(ctx->seq_last);
    trit_free(ctx);
}

/* ---- sequences and the pool ------------------------------------------------------------------ */

/* Sequence s takes the blocks of positions up to new_len, a shared block it writes into copied. */
static enum trit_status seq_grow(trit_context *ctx, int32_t s, int32_t new_len) {
    int32_t from, to;
    TRIT_TRY(trit_kv_pool_grow(&ctx->pool, s, new_len, &from, &to));
    if (from >= 0) return ctx->ops->kv_copy(ctx->state, from, to); /* only forks share, only forward_batch forks */
    return TRIT_OK;
}

/* Batch arrays for tokens [i0, i0 + n) of sequence s at its positions len0 .. */
static void one_sequence(trit_context *ctx, int32_t s, int32_t len0, int32_t n, bool all_rows, struct trit_forward_batch *b,
                         const int32_t *tokens) {
    for (int32_t i = 0; i < n; i++) {
        ctx->pos[i] = len0 + i;
        ctx->blocks[i] = ctx->pool.seq[s].blocks;
        ctx->out[i] = i;
    }
    *b = (struct trit_forward_batch){.tokens = tokens, .n = n, .pos0 = len0, .pos = ctx->pos, .blocks = ctx->blocks};
    b->first_out = all_rows ? 0 : n - 1;
    b->n_out = n - b->first_out;
    b->out = ctx->out + b->first_out;
}

static bool seq_ok(const trit_context *ctx, int32_t s) { return s >= 0 && s < ctx->pool.n_seq; }

int32_t trit_seq_length(const trit_context *ctx, int32_t seq) {
    return ctx && seq_ok(ctx, seq) ? ctx->pool.seq[seq].len : -1;
}

enum trit_status trit_seq_trim(trit_context *ctx, int32_t seq, int32_t n_keep) {
    if (!ctx || !seq_ok(ctx, seq)) return trit_error(TRIT_ERR_INVALID_ARG, "sequence %d: the context holds 0..%d", seq, ctx ? ctx->pool.n_seq - 1 : 0);
    if (n_keep < 0 || n_keep > ctx->pool.seq[seq].len)
        return trit_error(TRIT_ERR_INVALID_ARG, "trim sequence %d to %d: it holds %d tokens", seq, n_keep,
                          ctx->pool.seq[seq].len);
    if (ctx->lead) {
        const struct trit_lead_msg m = {.op = TRIT_LEAD_TRIM, .seq = seq, .n_keep = n_keep};
        TRIT_TRY(trit_lead_send(ctx->lead, &m, NULL));
    }
    trit_kv_pool_trim(&ctx->pool, seq, n_keep); /* later positions are overwritten before they are read */
    return TRIT_OK;
}

enum trit_status trit_seq_remove(trit_context *ctx, int32_t seq) { return trit_seq_trim(ctx, seq, 0); }

enum trit_status trit_seq_fork(trit_context *ctx, int32_t src, int32_t dst, int32_t n_keep) {
    if (!ctx || !seq_ok(ctx, src) || !seq_ok(ctx, dst) || src == dst)
        return trit_error(TRIT_ERR_INVALID_ARG, "fork %d -> %d: two different sequences of 0..%d", src, dst,
                          ctx ? ctx->pool.n_seq - 1 : 0);
    if (ctx->pool.seq[dst].len != 0)
        return trit_error(TRIT_ERR_INVALID_ARG, "fork %d -> %d: sequence %d is not empty (%d tokens)", src, dst, dst,
                          ctx->pool.seq[dst].len);
    if (n_keep < 0 || n_keep > ctx->pool.seq[src].len)
        return trit_error(TRIT_ERR_INVALID_ARG, "fork %d -> %d: %d tokens of %d", src, dst, n_keep, ctx->pool.seq[src].len);
    if (ctx->lead) {
        const struct trit_lead_msg m = {.op = TRIT_LEAD_FORK, .seq = src, .seq2 = dst, .n_keep = n_keep};
        TRIT_TRY(trit_lead_send(ctx->lead, &m, NULL));
    }
    trit_kv_pool_fork(&ctx->pool, src, dst, n_keep);
    return TRIT_OK;
}

void trit_kv_stats(const trit_context *ctx, struct trit_kv_stats *out) {
    *out = (struct trit_kv_stats){.block_tokens = TRIT_KV_BLOCK, .n_blocks = ctx->pool.n_blocks, .n_free = ctx->pool.n_free};
}

int32_t trit_kv_blocks_for(int32_t n_tokens) { return n_tokens <= 0 ? 0 : trit_kv_pool_blocks(n_tokens); }

/* The batch's checks (batch.h's contract), filling seq_len0, seq_next (the lengths before and after)
 * and seq_last (each sequence's last token, -1 if none), and the rows wanted in ctx->out. */
static enum trit_status check_batch(trit_context *ctx, const struct trit_batch *b, int32_t *n_out) {
    if (!b || b->n_tokens < 1 || b->n_tokens > ctx->cfg.n_batch || !b->token || !b->pos || !b->seq_id)
        return trit_error(TRIT_ERR_INVALID_ARG, "trit_decode_batch: %d tokens (1..%lld, with token, pos and seq_id arrays)",
                          b ? b->n_tokens : 0, (long long)ctx->cfg.n_batch);
    const int32_t S = ctx->pool.n_seq;
    for (int32_t s = 0; s < S; s++) {
        ctx->seq_len0[s] = ctx->seq_next[s] = ctx->pool.seq[s].len;
        ctx->seq_last[s] = -1;
    }
    for (int32_t i = 0; i < b->n_tokens; i++) {
        const int32_t s = b->seq_id[i];
        if (!seq_ok(ctx, s))
            return trit_error(TRIT_ERR_INVALID_ARG, "batch token %d: sequence %d (the context holds 0..%d)", i, s, S - 1);
        if (b->token[i] < 0 || b->token[i] >= ctx->model->hp.n_vocab)
            return trit_error(TRIT_ERR_INVALID_ARG, "batch token %d: id %d is outside the vocabulary (0..%lld)", i,
                              b->token[i], (long long)ctx->model->hp.n_vocab - 1);
        if (b->pos[i] != ctx->seq_next[s])
            return trit_error(TRIT_ERR_INVALID_ARG, "batch token %d: position %d, but sequence %d continues at %d", i,
                              b->pos[i], s, ctx->seq_next[s]);
        if (ctx->seq_next[s] >= ctx->cfg.n_ctx)
            return trit_error(TRIT_ERR_CONTEXT_FULL, "context full: sequence %d would pass %lld tokens", s,
                              (long long)ctx->cfg.n_ctx);
        ctx->seq_next[s]++;
        ctx->seq_last[s] = i;
    }
    int32_t rows = 0;
    for (int32_t i = 0; i < b->n_tokens; i++) {
        const bool want = b->logits ? b->logits[i] != 0 : ctx->seq_last[b->seq_id[i]] == i;
        if (!want) continue;
        if (rows == ctx->n_rows)
            return trit_error(TRIT_ERR_INVALID_ARG, "trit_decode_batch: more than %lld rows of logits asked for (n_seq_max%s)",
                              (long long)ctx->n_rows, ctx->cfg.logits_all ? ", n_batch with logits_all" : "");
        ctx->out[rows++] = i;
    }
    /* blocks the grows take: new blocks, and a copy of each shared block written into, except by the
     * last of its holders to write (it then holds the block alone: seq_grow writes in place) */
    int64_t need = 0;
    for (int32_t s = 0; s < S; s++) {
        if (ctx->seq_next[s] == ctx->seq_len0[s]) continue;
        need += trit_kv_pool_need(&ctx->pool, s, ctx->seq_next[s]);
        const int32_t blk = trit_kv_pool_shared_write(&ctx->pool, s, ctx->seq_next[s]);
        if (blk < 0) continue;
        int32_t before = 0; /* earlier writers into block blk: each one's copy leaves one holder fewer */
        for (int32_t t = 0; t < s; t++)
            before += ctx->seq_next[t] > ctx->seq_len0[t] && trit_kv_pool_shared_write(&ctx->pool, t, ctx->seq_next[t]) == blk;
        if (before >= ctx->pool.ref[blk] - 1) need--; /* the last holder: no copy */
    }
    if (need > ctx->pool.n_free)
        return trit_error(TRIT_ERR_CONTEXT_FULL, "KV cache full: the batch needs %lld blocks of %d tokens, %d of %d are free",
                          (long long)need, TRIT_KV_BLOCK, ctx->pool.n_free, ctx->pool.n_blocks);
    *n_out = rows;
    return TRIT_OK;
}

/* Every sequence back to its length before the batch. */
static void rollback(trit_context *ctx) {
    for (int32_t s = 0; s < ctx->pool.n_seq; s++)
        if (ctx->pool.seq[s].len > ctx->seq_len0[s]) trit_kv_pool_trim(&ctx->pool, s, ctx->seq_len0[s]);
}

enum trit_status trit_decode_batch(trit_context *ctx, const struct trit_batch *batch, const float **logits,
                                   int32_t *n_rows) {
    if (!ctx) return trit_error(TRIT_ERR_INVALID_ARG, "trit_decode_batch: NULL context");
    int32_t rows = 0;
    TRIT_TRY(check_batch(ctx, batch, &rows));
    struct trit_forward_batch fb = {.tokens = batch->token, .n = batch->n_tokens, .n_out = rows, .out = ctx->out};
    if (!ctx->ops->forward_batch) { /* one sequence (n_seq_max is 1), its rows as forward gives them */
        const bool all = ctx->cfg.logits_all;
        if (rows != (all ? batch->n_tokens : 1) || ctx->out[0] != (all ? 0 : batch->n_tokens - 1))
            return trit_error(TRIT_ERR_INVALID_ARG, "trit_decode_batch: the %s backend returns the logits of %s",
                              ctx->ops->name, all ? "every token (logits_all)" : "the last token only");
    }
    if (ctx->lead) { /* checked: the followers will run it as it is */
        const struct trit_lead_msg m = {.op = TRIT_LEAD_BATCH, .n_tokens = batch->n_tokens, .has_logits = batch->logits != NULL};
        TRIT_TRY(trit_lead_send(ctx->lead, &m, batch));
    }
    enum trit_status st = TRIT_OK;
    for (int32_t s = 0; s < ctx->pool.n_seq && st == TRIT_OK; s++)
        if (ctx->seq_next[s] > ctx->seq_len0[s]) st = seq_grow(ctx, s, ctx->seq_next[s]);
    if (st == TRIT_OK && ctx->ops->forward_batch) {
        for (int32_t i = 0; i < batch->n_tokens; i++) ctx->blocks[i] = ctx->pool.seq[batch->seq_id[i]].blocks;
        fb.pos = batch->pos;
        fb.blocks = ctx->blocks;
        st = ctx->ops->forward_batch(ctx->state, &fb, ctx->logits);
    } else if (st == TRIT_OK) {
        st = ctx->ops->forward(ctx->state, batch->token, batch->n_tokens, batch->pos[0], ctx->logits);
    }
    if (st != TRIT_OK) {
        rollback(ctx);
        return st;
    }
    if (logits) *logits = ctx->logits;
    if (n_rows) *n_rows = rows;
    return TRIT_OK;
}

/* How the last piece of a decode call ends: with logits in ctx->logits, or with the backend's
 * device-side argmax or top-k (the caller checked that the backend has the op). */
struct last_piece {
    enum { LAST_LOGITS, LAST_ARGMAX, LAST_TOPK } kind;
    int32_t *token;                         /* LAST_ARGMAX */
    int32_t k, n_pen;                       /* LAST_TOPK */
    const int32_t *pen_ids;
    float penalty;
    float *vals;
    int32_t *ids;
};

/* The checks every decode call shares, then the tokens through the cache in pieces of at most
 * n_batch: every piece through forward except the last, which `last` ends. */
static enum trit_status decode_pieces(trit_context *ctx, const int32_t *tokens, int32_t n_tokens, const char *who,
                                      const struct last_piece *last) {
    if (ctx->lead)
        return trit_error(TRIT_ERR_INVALID_ARG, "%s: this context leads other ranks (trit_tp_lead), which follow "
                                                "trit_decode_batch only", who);
    const int32_t n_past = ctx->pool.seq[0].len;
    if (n_past + (int64_t)n_tokens > ctx->cfg.n_ctx)
        return trit_error(TRIT_ERR_CONTEXT_FULL, "context full: %d tokens in the cache + %d new > context length %lld",
                          n_past, n_tokens, (long long)ctx->cfg.n_ctx);
    if (ctx->cfg.logits_all && n_tokens > ctx->cfg.n_batch)
        return trit_error(TRIT_ERR_INVALID_ARG, "%s: %d tokens with logits_all exceed n_batch %lld", who, n_tokens,
                          (long long)ctx->cfg.n_batch);
    for (int32_t i = 0; i < n_tokens; i++)
        if (tokens[i] < 0 || tokens[i] >= ctx->model->hp.n_vocab)
            return trit_error(TRIT_ERR_INVALID_ARG, "token id %d is outside the vocabulary (0..%lld)", tokens[i],
                              (long long)ctx->model->hp.n_vocab - 1);
    const int32_t need = trit_kv_pool_need(&ctx->pool, 0, n_past + n_tokens);
    if (need > ctx->pool.n_free)
        return trit_error(TRIT_ERR_CONTEXT_FULL, "KV cache full: %d more blocks of %d tokens needed, %d of %d are free",
                          need, TRIT_KV_BLOCK, ctx->pool.n_free, ctx->pool.n_blocks);
    for (int32_t done = 0; done < n_tokens;) {
        int32_t n = n_tokens - done;
        if (n > ctx->cfg.n_batch) n = (int32_t)ctx->cfg.n_batch;
        const int32_t *t = tokens + done, len0 = ctx->pool.seq[0].len;
        TRIT_TRY(seq_grow(ctx, 0, len0 + n));
        enum trit_status st;
        /* One sequence in all (n_seq_max 1) holds blocks 0, 1, 2, ... (the pool hands out the lowest free
         * block first, and nothing else takes any), the layout `forward` runs: the backend's own
         * single-sequence path, with its device argmax, top-k and captured graphs. */
        if (ctx->ops->forward_batch && ctx->pool.n_seq > 1) {
            struct trit_forward_batch b;
            one_sequence(ctx, 0, len0, n, ctx->cfg.logits_all, &b, t);
            st = ctx->ops->forward_batch(ctx->state, &b, ctx->logits);
        } else if (ctx->pool.seq[0].blocks[ctx->pool.seq[0].n_blocks - 1] != ctx->pool.seq[0].n_blocks - 1) {
            st = trit_error(TRIT_ERR_INTERNAL, "KV pool: sequence 0 left blocks 0, 1, 2, ...");
        } else if (done + n < n_tokens || last->kind == LAST_LOGITS) {
            st = ctx->ops->forward(ctx->state, t, n, len0, ctx->logits);
        } else if (last->kind == LAST_ARGMAX) {
            st = ctx->ops->forward_argmax(ctx->state, t, n, len0, last->token);
        } else {
            st = ctx->ops->forward_topk(ctx->state, t, n, len0, last->k, last->pen_ids, last->n_pen, last->penalty,
                                        last->vals, last->ids);
        }
        if (st != TRIT_OK) {
            trit_kv_pool_trim(&ctx->pool, 0, len0); /* the pieces before stay */
            return st;
        }
        done += n;
    }
    return TRIT_OK;
}

/* The last token's row of ctx->logits after decode_pieces(LAST_LOGITS) of n_tokens. */
static const float *last_row(const trit_context *ctx, int32_t n_tokens) {
    const int64_t row = ctx->cfg.logits_all ? (n_tokens - 1) % ctx->cfg.n_batch : 0;
    return ctx->logits + row * ctx->model->hp.n_vocab;
}

enum trit_status trit_decode(trit_context *ctx, const int32_t *tokens, int32_t n_tokens, const float **logits) {
    if (!ctx || !tokens || n_tokens <= 0) return trit_error(TRIT_ERR_INVALID_ARG, "trit_decode: no tokens");
    const struct last_piece last = {.kind = LAST_LOGITS};
    TRIT_TRY(decode_pieces(ctx, tokens, n_tokens, "trit_decode", &last));
    if (logits) *logits = ctx->logits;
    return TRIT_OK;
}

enum trit_status trit_decode_argmax(trit_context *ctx, const int32_t *tokens, int32_t n_tokens, int32_t *token) {
    if (!ctx || !tokens || n_tokens <= 0 || !token)
        return trit_error(TRIT_ERR_INVALID_ARG, "trit_decode_argmax: no tokens or a NULL token");
    if (ctx->ops->forward_argmax) {
        const struct last_piece last = {.kind = LAST_ARGMAX, .token = token};
        return decode_pieces(ctx, tokens, n_tokens, "trit_decode_argmax", &last);
    }
    const struct last_piece last = {.kind = LAST_LOGITS}; /* no device argmax: the host's of the last row */
    TRIT_TRY(decode_pieces(ctx, tokens, n_tokens, "trit_decode_argmax", &last));
    *token = trit_argmax(last_row(ctx, n_tokens), (int32_t)ctx->model->hp.n_vocab);
    return TRIT_OK;
}

enum trit_status trit_decode_sample(trit_context *ctx, const int32_t *tokens, int32_t n_tokens, trit_sampler *s,
                                    int32_t *token) {
    if (!ctx || !tokens || n_tokens <= 0 || !s || !token)
        return trit_error(TRIT_ERR_INVALID_ARG, "trit_decode_sample: no tokens or a NULL sampler or token");
    const int32_t k = trit_sampler_top_k(s);
    const int32_t *pen_ids;
    float penalty;
    const int32_t n_pen = trit_sampler_penalty(s, &pen_ids, &penalty);
    /* the device selection takes a finite positive penalty; anything else samples the whole row */
    const bool pen_ok = n_pen == 0 || penalty == 1.0f || (penalty > 0.0f && penalty <= FLT_MAX);
    if (!ctx->ops->forward_topk || k < 1 || k > TRIT_TOPK_MAX || k > ctx->model->hp.n_vocab || !pen_ok) {
        const struct last_piece last = {.kind = LAST_LOGITS};
        TRIT_TRY(decode_pieces(ctx, tokens, n_tokens, "trit_decode_sample", &last));
        *token = trit_sampler_sample(s, last_row(ctx, n_tokens));
        return TRIT_OK;
    }
    float vals[TRIT_TOPK_MAX];
    int32_t ids[TRIT_TOPK_MAX];
    const struct last_piece last = {.kind = LAST_TOPK, .k = k, .n_pen = n_pen, .pen_ids = pen_ids, .penalty = penalty,
                                    .vals = vals, .ids = ids};
    TRIT_TRY(decode_pieces(ctx, tokens, n_tokens, "trit_decode_sample", &last));
    *token = trit_sampler_sample_candidates(s, vals, ids, k);
    if (*token < 0) return trit_error(TRIT_ERR_INTERNAL, "trit_decode_sample: the candidates did not fit the sampler");
    return TRIT_OK;
}

/* ---- embeddings ------------------------------------------------------------------------------- */

/* out = h / max(||h||_2, 1e-12) in double (trit.h states the order). */
static void l2_normalize(float *h, int64_t n) {
    double ss = 0.0;
    for (int64_t i = 0; i < n; i++) ss += (double)h[i] * (double)h[i];
    double norm = sqrt(ss);
    if (!(norm >= 1e-12)) norm = norm != norm ? norm : 1e-12; /* NaN stays NaN, as in torch */
    for (int64_t i = 0; i < n; i++) h[i] = (float)((double)h[i] / norm);
}

enum trit_status trit_embed(trit_context *ctx, int32_t seq, const int32_t *tokens, int32_t n_tokens, unsigned flags,
                            float *out) {
    if (!ctx || !tokens || !out || n_tokens < 1 || (flags & ~TRIT_EMBED_RAW))
        return trit_error(TRIT_ERR_INVALID_ARG, "trit_embed: %d tokens (1 or more), flags 0x%x, %s", n_tokens, flags,
                          !ctx || !tokens || !out ? "a NULL argument" : "non-NULL arguments");
    if (!ctx->ops->forward_hidden)
        return trit_error(TRIT_ERR_UNSUPPORTED, "trit_embed: embeddings run on the CPU backend, in one process "
                                                "(this context runs on %s)", ctx->ops->name);
    if (ctx->lead)
        return trit_error(TRIT_ERR_INVALID_ARG, "trit_embed: this context leads other ranks (trit_tp_lead)");
    if (!seq_ok(ctx, seq))
        return trit_error(TRIT_ERR_INVALID_ARG, "trit_embed: sequence %d (the context holds 0..%d)", seq, ctx->pool.n_seq - 1);
    if (ctx->pool.seq[seq].len != 0)
        return trit_error(TRIT_ERR_INVALID_ARG, "trit_embed: sequence %d holds %d tokens; an embedding starts from an "
                                                "empty sequence", seq, ctx->pool.seq[seq].len);
    if (n_tokens > ctx->cfg.n_ctx)
        return trit_error(TRIT_ERR_CONTEXT_FULL, "context full: %d tokens to embed > context length %lld", n_tokens,
                          (long long)ctx->cfg.n_ctx);
    for (int32_t i = 0; i < n_tokens; i++)
        if (tokens[i] < 0 || tokens[i] >= ctx->model->hp.n_vocab)
            return trit_error(TRIT_ERR_INVALID_ARG, "token id %d is outside the vocabulary (0..%lld)", tokens[i],
                              (long long)ctx->model->hp.n_vocab - 1);
    const int32_t need = trit_kv_pool_need(&ctx->pool, seq, n_tokens);
    if (need > ctx->pool.n_free)
        return trit_error(TRIT_ERR_CONTEXT_FULL, "KV cache full: %d blocks of %d tokens needed, %d of %d are free", need,
                          TRIT_KV_BLOCK, ctx->pool.n_free, ctx->pool.n_blocks);
    enum trit_status st = TRIT_OK;
    for (int32_t done = 0; done < n_tokens && st == TRIT_OK;) {
        const int32_t n = n_tokens - done < ctx->cfg.n_batch ? n_tokens - done : (int32_t)ctx->cfg.n_batch;
        if ((st = seq_grow(ctx, seq, done + n)) != TRIT_OK) break;
        struct trit_forward_batch b;
        one_sequence(ctx, seq, done, n, false, &b, tokens + done); /* out row: the piece's last token */
        if (done + n < n_tokens) b.n_out = 0;                     /* earlier pieces only fill the cache */
        st = ctx->ops->forward_hidden(ctx->state, &b, out);
        done += n;
    }
    trit_kv_pool_trim(&ctx->pool, seq, 0);
    if (st == TRIT_OK && !(flags & TRIT_EMBED_RAW)) l2_normalize(out, ctx->model->hp.dim);
    return st;
}

int32_t trit_context_n_past(const trit_context *ctx) { return ctx->pool.seq[0].len; }
int32_t trit_context_n_ctx(const trit_context *ctx) { return (int32_t)ctx->cfg.n_ctx; }
const trit_model *trit_context_model(const trit_context *ctx) { return ctx->model; }
bool trit_context_logits_all(const trit_context *ctx) { return ctx->cfg.logits_all; }

enum trit_status trit_context_truncate(trit_context *ctx, int32_t n_keep) {
    if (n_keep < 0 || n_keep > ctx->pool.seq[0].len)
        return trit_error(TRIT_ERR_INVALID_ARG, "truncate to %d: the cache holds %d tokens", n_keep, ctx->pool.seq[0].len);
    return trit_seq_trim(ctx, 0, n_keep);
}

const char *trit_context_backend(const trit_context *ctx) { return ctx->ops->name; }
const char *trit_context_device_desc(const trit_context *ctx) { return ctx->ops->describe(ctx->state); }
uint64_t trit_context_memory_bytes(const trit_context *ctx) { return ctx->ops->memory_bytes(ctx->state); }
/* rank, size and collective time: the backend's tp_info, or one rank without it */
static void tp_info(const trit_context *ctx, int *rank, int *size, int64_t *comm_us) {
    *rank = 0, *size = 1, *comm_us = 0;
    if (ctx->ops->tp_info) ctx->ops->tp_info(ctx->state, rank, size, comm_us);
}
int32_t trit_context_tp_rank(const trit_context *ctx) {
    int rank, size;
    int64_t us;
    tp_info(ctx, &rank, &size, &us);
    return rank;
}
int32_t trit_context_tp_size(const trit_context *ctx) {
    int rank, size;
    int64_t us;
    tp_info(ctx, &rank, &size, &us);
    return size;
}
int64_t trit_context_comm_us(const trit_context *ctx) {
    int rank, size;
    int64_t us;
    tp_info(ctx, &rank, &size, &us);
    return us;
}

/* ---- one rank leads, the others follow (trit_tp_lead) ---------------------------------------- */

/* The job's host communicator when the context has other ranks to lead or follow, else NULL. */
static struct trit_comm *job_comm(const trit_context *ctx) {
    struct trit_comm *c = ctx->ops->host_comm ? ctx->ops->host_comm(ctx->state) : NULL;
    return c && trit_comm_size(c) > 1 ? c : NULL;
}

enum trit_status trit_tp_lead(trit_context *ctx) {
    if (!ctx) return trit_error(TRIT_ERR_INVALID_ARG, "trit_tp_lead: NULL context");
    struct trit_comm *c = job_comm(ctx);
    if (c && trit_comm_rank(c) != 0)
        return trit_error(TRIT_ERR_INVALID_ARG, "trit_tp_lead: rank %d follows (rank 0 leads)", trit_comm_rank(c));
    ctx->lead = c;
    return TRIT_OK;
}

/* Runs one step rank 0 sent; its checks passed there, so they pass here unless the ranks differ. */
static enum trit_status follow_step(trit_context *ctx, const struct trit_lead_msg *m, const struct trit_batch *b) {
    switch (m->op) {
    case TRIT_LEAD_BATCH: return trit_decode_batch(ctx, b, NULL, NULL);
    case TRIT_LEAD_TRIM: return trit_seq_trim(ctx, m->seq, m->n_keep);
    case TRIT_LEAD_FORK: return trit_seq_fork(ctx, m->seq, m->seq2, m->n_keep);
    default: return trit_error(TRIT_ERR_INTERNAL, "trit_tp_follow: step %d", m->op);
    }
}

enum trit_status trit_tp_follow(trit_context *ctx) {
    if (!ctx) return trit_error(TRIT_ERR_INVALID_ARG, "trit_tp_follow: NULL context");
    struct trit_comm *c = job_comm(ctx);
    if (!c) return TRIT_OK;
    if (trit_comm_rank(c) == 0) return trit_error(TRIT_ERR_INVALID_ARG, "trit_tp_follow: rank 0 leads (trit_tp_lead)");
    const size_t B = (size_t)ctx->cfg.n_batch;
    int32_t *ints = trit_alloc(3 * B * sizeof *ints);
    int8_t *flags = trit_alloc(B);
    enum trit_status st = ints && flags ? TRIT_OK : trit_error(TRIT_ERR_OUT_OF_MEMORY, "trit_tp_follow: out of memory");
    while (st == TRIT_OK) {
        struct trit_lead_msg m;
        struct trit_batch b;
        st = trit_lead_receive(c, (int32_t)B, ints, ints + B, ints + 2 * B, flags, &m, &b);
        if (st != TRIT_OK || m.op == TRIT_LEAD_QUIT) break;
        if ((st = follow_step(ctx, &m, &b)) != TRIT_OK) {
            char why[1024];
            snprintf(why, sizeof why, "%s", trit_last_error());
            st = trit_error(st, "tensor parallel: rank %d cannot repeat rank 0's step: %s", trit_comm_rank(c), why);
        }
    }
    trit_free(ints);
    trit_free(flags);
    return st;
}
