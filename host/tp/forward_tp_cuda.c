/*
 * forward_tp_cuda.c: tensor parallelism on GPUs (tp.h, "GPUs"): the ranks of a NCCL group, each a
 * CUDA backend state holding its shard (trit_cuda_tp_rank_init, cuda/backend_tp.cu), driven in
 * lockstep.
 *
 *   one process, N GPUs   N worker threads, worker i bound to device i (cudaSetDevice is per
 *                         thread); a call posts a job, every worker runs it on its rank, the
 *                         caller waits for all of them. NCCL needs this: a collective completes
 *                         only once every rank has called it.
 *   one GPU per process   the one local rank runs in the caller's thread (which it leaves with
 *                         that GPU current); MPI carries the ncclUniqueId and the init verdict.
 *
 * Every call of the backend table is one job: forward, forward_argmax and forward_topk (one
 * sequence in blocks 0, 1, 2, ...), forward_batch (several sequences over the paged cache: every
 * rank holds the pool's blocks for its own KV heads, and gets the same batch and block tables) and
 * kv_copy (each rank copies its own heads' rows of a block). The logits go to the first local rank;
 * the others run the same collectives and leave theirs on the device.
 *
 * Errors: a worker's message (thread-local in core/status.c) is copied out and re-raised on the
 * caller's thread; the root cause wins over the TRIT_ERR_COMM of the ranks that then timed out.
 * A call that fails for a reason other than its arguments (checked alike on every rank before
 * anything is enqueued) may have left collectives half issued, so it breaks the group: the NCCL
 * communicators are aborted (later calls fail at once) and, with one GPU per process, the MPI job
 * ends. Ranks can never go on out of step.
 */
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "tp/plan.h"
#include "tp/tp.h"

#if defined(TRIT_HAVE_CUDA_BACKEND) && defined(TRIT_HAVE_NCCL)

#include "trit_cuda_backend.h" /* the CUDA backend's narrow C interface: the ranks' entry points */

/* One GPU per process: the MPI bootstrap communicator's timeout, which bounds start-up (ranks wait
 * for each other to load and upload their shards) and nothing after it. */
#define BOOT_TIMEOUT_MS 600000

enum job { JOB_WARM, JOB_INIT, JOB_FORWARD, JOB_ARGMAX, JOB_TOPK, JOB_BATCH, JOB_KVCOPY, JOB_QUIT };

struct rank {
    struct tpc *owner;
    int index, device;
    struct trit_comm *comm;
    void *state;
    pthread_t thread;
    bool thread_started;
    enum trit_status status;
    int32_t token;
    char err[1024];
};

struct tpc {
    const struct trit_model *m;
    struct trit_backend_config cfg;
    enum trit_tp_quant quant;
    int n_local, n_ranks, rank0; /* ranks in this process; in the group; this process's first */
    struct rank *r;
    struct trit_comm *boot;      /* MPI: the bootstrap communicator */

    pthread_mutex_t mu;
    pthread_cond_t go, done;
    bool sync_ready;
    uint64_t gen;
    int n_done;
    enum job job;
    const int32_t *tokens;
    int64_t n_tok, pos0;
    float *logits;
    int32_t k, n_pen;
    const int32_t *pen_ids;
    float penalty, *vals;
    int32_t *ids;
    const struct trit_forward_batch *batch; /* JOB_BATCH */
    int32_t copy_from, copy_to;             /* JOB_KVCOPY */

    char desc[512];
};

/* Runs the current job on rank r (in its own thread, or the caller's with one local rank). */
static void run_job(struct tpc *t, struct rank *r) {
    enum trit_status st = TRIT_OK;
    const int e = trit_cuda_set_device_impl(r->device);
    if (e != 0) {
        st = trit_error(TRIT_ERR_DEVICE, "cudaSetDevice(%d) failed (CUDA error %d)", r->device, e);
    } else {
        switch (t->job) {
        case JOB_WARM: { /* NCCL's buffers before any rank checks its memory: the step's largest sizes */
            struct trit_backend_config cut = t->cfg; /* as the ranks' init will cut it */
            if (cut.n_batch > cut.n_ctx) cut.n_batch = cut.n_ctx;
            const int64_t stride = trit_div_ceil(t->m->hp.n_vocab, t->n_ranks), n_red = cut.n_batch * t->m->hp.dim;
            const int64_t n_gat = trit_backend_out_rows(&cut) * stride; /* the most rows a call gathers */
            st = trit_cuda_tp_warm_up(r->comm, n_red, n_gat < n_red ? n_gat : n_red);
            break;
        }
        case JOB_INIT: st = trit_cuda_tp_rank_init(t->m, &t->cfg, r->comm, t->quant, &r->state); break;
        case JOB_FORWARD:
            st = trit_cuda_backend.forward(r->state, t->tokens, t->n_tok, t->pos0, r->index == 0 ? t->logits : NULL);
            break;
        case JOB_ARGMAX: st = trit_cuda_backend.forward_argmax(r->state, t->tokens, t->n_tok, t->pos0, &r->token); break;
        case JOB_TOPK: /* the first local rank selects; the others run the same collectives */
            if (r->index == 0)
                st = trit_cuda_backend.forward_topk(r->state, t->tokens, t->n_tok, t->pos0, t->k, t->pen_ids, t->n_pen,
                                                    t->penalty, t->vals, t->ids);
            else st = trit_cuda_backend.forward(r->state, t->tokens, t->n_tok, t->pos0, NULL);
            break;
        case JOB_BATCH: st = trit_cuda_backend.forward_batch(r->state, t->batch, r->index == 0 ? t->logits : NULL); break;
        case JOB_KVCOPY: st = trit_cuda_backend.kv_copy(r->state, t->copy_from, t->copy_to); break;
        case JOB_QUIT: break;
        }
    }
    r->status = st;
    if (st != TRIT_OK) snprintf(r->err, sizeof r->err, "%s", trit_last_error());
}

static void *worker(void *arg) {
    struct rank *r = arg;
    struct tpc *t = r->owner;
    uint64_t seen = 0;
    for (;;) {
        pthread_mutex_lock(&t->mu);
        while (t->gen == seen) pthread_cond_wait(&t->go, &t->mu);
        seen = t->gen;
        const enum job job = t->job;
        pthread_mutex_unlock(&t->mu);
        if (job == JOB_QUIT) break;
        run_job(t, r);
        pthread_mutex_lock(&t->mu);
        if (++t->n_done == t->n_local) pthread_cond_signal(&t->done);
        pthread_mutex_unlock(&t->mu);
    }
    return NULL;
}

/* Runs t->job on every local rank and returns the first root-cause error. */
static enum trit_status dispatch(struct tpc *t, enum job job) {
    t->job = job;
    if (t->n_local == 1) {
        run_job(t, &t->r[0]);
    } else {
        pthread_mutex_lock(&t->mu);
        t->n_done = 0;
        t->gen++;
        pthread_cond_broadcast(&t->go);
        while (t->n_done < t->n_local) pthread_cond_wait(&t->done, &t->mu);
        pthread_mutex_unlock(&t->mu);
    }
    const struct rank *bad = NULL;
    for (int i = 0; i < t->n_local; i++) {
        const struct rank *r = &t->r[i];
        if (r->status == TRIT_OK) continue;
        if (!bad || (bad->status == TRIT_ERR_COMM && r->status != TRIT_ERR_COMM)) bad = r;
    }
    if (!bad) return TRIT_OK;
    const enum trit_status st =
        trit_error(bad->status, "GPU %d (TP rank %d): %s", bad->device, t->rank0 + bad->index, bad->err);
    if (job == JOB_INIT || job == JOB_WARM) return st; /* a failed warm-up aborted the group itself */
    /* refused arguments, alike on every rank, enqueue nothing; anything else breaks the group */
    bool refused = bad->status == TRIT_ERR_INVALID_ARG || bad->status == TRIT_ERR_CONTEXT_FULL;
    for (int i = 0; i < t->n_local; i++) refused = refused && t->r[i].status == bad->status;
    if (!refused) {
        char why[1200];
        snprintf(why, sizeof why, "tensor parallel: a step failed, the GPU group is broken: %s", trit_last_error());
        for (int i = 0; i < t->n_local; i++)
            if (t->r[i].comm) trit_comm_abort(t->r[i].comm, why);
        if (t->boot) trit_comm_abort(t->boot, why); /* ends the MPI job; does not return */
        (void)trit_error(st, "%s", why);
    }
    return st;
}

static void tpc_free(void *state) {
    struct tpc *t = state;
    if (!t) return;
    if (t->r) {
        for (int i = 0; i < t->n_local; i++)
            if (t->r[i].state) {
                (void)trit_cuda_set_device_impl(t->r[i].device);
                trit_cuda_backend.free(t->r[i].state);
            }
        if (t->n_local > 1 && t->sync_ready) {
            pthread_mutex_lock(&t->mu);
            t->job = JOB_QUIT;
            t->gen++;
            pthread_cond_broadcast(&t->go);
            pthread_mutex_unlock(&t->mu);
            for (int i = 0; i < t->n_local; i++)
                if (t->r[i].thread_started) pthread_join(t->r[i].thread, NULL);
        }
        for (int i = 0; i < t->n_local; i++) trit_comm_free(t->r[i].comm);
    }
    if (t->sync_ready) {
        pthread_mutex_destroy(&t->mu);
        pthread_cond_destroy(&t->go);
        pthread_cond_destroy(&t->done);
    }
    trit_comm_free(t->boot);
    trit_free(t->r);
    trit_free(t);
}

/* One GPU per process, before NCCL: every rank checks that it has a GPU of its own, that the job
 * has the expected size and that all ranks run the same model and parameters (plan.h's
 * fingerprint), and all of them fail alike when one check fails anywhere. */
static enum trit_status mpi_agree(struct tpc *t, const struct trit_tp_cuda_config *tp, int n_dev) {
    const int size = trit_comm_size(t->boot), local = trit_comm_local_size(t->boot);
    const int32_t fp = (int32_t)trit_tp_fingerprint(t->m, t->cfg.n_ctx, t->cfg.n_batch, t->cfg.logits_all, (int)t->quant);
    const bool no_gpu = n_dev < 1 || local > n_dev, bad_size = tp->expect_ranks > 0 && tp->expect_ranks != size;
    int32_t v[3] = {fp, -fp, no_gpu || bad_size};
    TRIT_TRY(trit_comm_allreduce(t->boot, v, 3, TRIT_COMM_I32, TRIT_COMM_MAX));
    if (no_gpu)
        return trit_error(TRIT_ERR_NO_DEVICE,
                          "--tp-mpi --device cuda: rank %d's node runs %d rank%s and has %d CUDA device%s (one GPU "
                          "per rank)", t->rank0, local, local == 1 ? "" : "s", n_dev, n_dev == 1 ? "" : "s");
    if (bad_size) return trit_error(TRIT_ERR_INVALID_ARG, "--tp %d, but the MPI job has %d ranks", tp->expect_ranks, size);
    if (v[2]) return trit_error(TRIT_ERR_COMM, "--tp-mpi --device cuda: another rank cannot start (see its message)");
    if (v[0] != -v[1])
        return trit_error(TRIT_ERR_INVALID_ARG,
                          "tensor parallel: rank %d: the ranks disagree on the model or the context parameters "
                          "(fingerprint %08x here, %08x..%08x over the ranks); start every rank with the same "
                          "model, -c, -b and --tp-quant",
                          t->rank0, (unsigned)fp, (unsigned)-v[1], (unsigned)v[0]);
    return TRIT_OK;
}

/* The communicators: ncclCommInitAll over devices 0 .. n - 1, or one rank bootstrapped over MPI. */
static enum trit_status make_comms(struct tpc *t, const struct trit_tp_cuda_config *tp) {
    struct trit_comm_params p = trit_comm_default_params();
    p.timeout_ms = tp->timeout_ms;
    const int n_dev = trit_cuda_device_count();
    if (tp->n_devices > 0) {
        if (n_dev < tp->n_devices)
            return trit_error(TRIT_ERR_NO_DEVICE, "--tp %d: this process sees %d CUDA device%s", tp->n_devices, n_dev,
                              n_dev == 1 ? "" : "s");
        t->n_local = t->n_ranks = tp->n_devices;
        t->r = trit_alloc((size_t)t->n_local * sizeof *t->r);
        int devices[64];
        struct trit_comm *comms[64];
        if (!t->r) return trit_error(TRIT_ERR_OUT_OF_MEMORY, "out of memory");
        if (t->n_local > 64) return trit_error(TRIT_ERR_UNSUPPORTED, "--tp %d: at most 64 GPUs in one process", t->n_local);
        for (int i = 0; i < t->n_local; i++) devices[i] = i;
        TRIT_TRY(trit_comm_nccl_create_all(t->n_local, devices, &p, comms));
        for (int i = 0; i < t->n_local; i++) t->r[i].comm = comms[i], t->r[i].device = i;
        return TRIT_OK;
    }
    struct trit_comm_params pb = p;
    pb.timeout_ms = tp->timeout_ms > BOOT_TIMEOUT_MS ? tp->timeout_ms : BOOT_TIMEOUT_MS;
    TRIT_TRY(trit_comm_mpi_create(&pb, &t->boot));
    t->n_local = 1;
    t->n_ranks = trit_comm_size(t->boot);
    t->rank0 = trit_comm_rank(t->boot);
    t->r = trit_alloc(sizeof *t->r);
    if (!t->r) return trit_error(TRIT_ERR_OUT_OF_MEMORY, "out of memory");
    TRIT_TRY(mpi_agree(t, tp, n_dev));
    t->r[0].device = trit_comm_local_rank(t->boot); /* the rank's index on its node: < n_dev (checked) */
    return trit_comm_nccl_create_mpi(t->boot, t->r[0].device, &p, &t->r[0].comm);
}

enum trit_status trit_tp_cuda_init(const struct trit_model *m, const struct trit_backend_config *cfg,
                                   const struct trit_tp_cuda_config *tp, void **state) {
    if (!m || !cfg || !tp || !state) return trit_error(TRIT_ERR_INVALID_ARG, "cuda tp backend: NULL argument");
    *state = NULL;
    if (tp->n_devices < 0) return trit_error(TRIT_ERR_INVALID_ARG, "cuda tp backend: %d devices", tp->n_devices);
    struct tpc *t = trit_alloc(sizeof *t);
    if (!t) return trit_error(TRIT_ERR_OUT_OF_MEMORY, "out of memory");
    t->m = m;
    t->cfg = *cfg;
    t->quant = tp->quant;
    enum trit_status st = make_comms(t, tp);
    if (st == TRIT_OK && t->cfg.n_threads <= 0) { /* the upload's repacking: this node's cores, shared */
        const long cores = sysconf(_SC_NPROCESSORS_ONLN);
        const int sharing = t->boot ? trit_comm_local_size(t->boot) : t->n_local;
        t->cfg.n_threads = cores > sharing ? (int)(cores / sharing) : 1;
    }
    if (st == TRIT_OK && t->n_local > 1) {
        const bool mu = pthread_mutex_init(&t->mu, NULL) == 0, go = mu && pthread_cond_init(&t->go, NULL) == 0,
                   done = go && pthread_cond_init(&t->done, NULL) == 0;
        if (done) {
            t->sync_ready = true;
        } else {
            if (go) pthread_cond_destroy(&t->go);
            if (mu) pthread_mutex_destroy(&t->mu);
            st = trit_error(TRIT_ERR_INTERNAL, "cuda tp backend: pthread init failed");
        }
        for (int i = 0; i < t->n_local && st == TRIT_OK; i++) {
            t->r[i].owner = t, t->r[i].index = i;
            if (pthread_create(&t->r[i].thread, NULL, worker, &t->r[i]) != 0)
                st = trit_error(TRIT_ERR_INTERNAL, "cuda tp backend: cannot start the thread of GPU %d", i);
            else t->r[i].thread_started = true;
        }
    }
    if (st == TRIT_OK) {
        t->r[0].owner = t;
        st = dispatch(t, JOB_WARM); /* the group's first collectives, before any rank sizes its arena */
        if (st == TRIT_OK) st = dispatch(t, JOB_INIT); /* every rank uploads its shard, in parallel */
    }
    if (t->boot && t->r && t->r[0].comm) { /* one GPU per process: whether every rank is ready */
        int32_t failed = st != TRIT_OK;
        char err[1024];
        snprintf(err, sizeof err, "%s", trit_last_error());
        if (st != TRIT_OK) trit_log(TRIT_LOG_ERROR, "rank %d: %s", t->rank0, err); /* before a timeout ends the job */
        const enum trit_status cs = trit_comm_allreduce(t->boot, &failed, 1, TRIT_COMM_I32, TRIT_COMM_MAX);
        if (st != TRIT_OK) st = trit_error(st, "%s", err);
        else if (cs != TRIT_OK) st = cs;
        else if (failed) st = trit_error(TRIT_ERR_COMM, "cuda tp backend: another rank failed to load its shard");
    }
    if (st != TRIT_OK) {
        tpc_free(t);
        return st;
    }
    snprintf(t->desc, sizeof t->desc, "%d GPU%s (NCCL, %s): %s", t->n_ranks, t->n_ranks == 1 ? "" : "s",
             t->quant == TRIT_TP_QUANT_EXACT ? "exact" : "grouped", trit_cuda_backend.describe(t->r[0].state));
    *state = t;
    return TRIT_OK;
}

/* The backend table's init: the mode, the GPUs and the job size of cfg. */
static enum trit_status tpc_init(const struct trit_model *m, const struct trit_backend_config *cfg, void **state) {
    const struct trit_tp_cuda_config tp = {
        .quant = cfg->tp_quant, .n_devices = cfg->tp_n_devices, .expect_ranks = cfg->tp_expect_ranks};
    return trit_tp_cuda_init(m, cfg, &tp, state);
}

static enum trit_status tpc_forward(void *state, const int32_t *tokens, int64_t n, int64_t pos0, float *logits) {
    struct tpc *t = state;
    if (!tokens || !logits) return trit_error(TRIT_ERR_INVALID_ARG, "cuda tp forward: NULL tokens or logits");
    t->tokens = tokens, t->n_tok = n, t->pos0 = pos0, t->logits = logits;
    return dispatch(t, JOB_FORWARD);
}

static enum trit_status tpc_forward_argmax(void *state, const int32_t *tokens, int64_t n, int64_t pos0,
                                           int32_t *token) {
    struct tpc *t = state;
    if (!tokens || !token) return trit_error(TRIT_ERR_INVALID_ARG, "cuda tp forward_argmax: NULL tokens or token");
    t->tokens = tokens, t->n_tok = n, t->pos0 = pos0, t->logits = NULL;
    TRIT_TRY(dispatch(t, JOB_ARGMAX));
    *token = t->r[0].token; /* every rank gathered the same logits, so took the same argmax */
    return TRIT_OK;
}

static enum trit_status tpc_forward_topk(void *state, const int32_t *tokens, int64_t n, int64_t pos0, int32_t k,
                                        const int32_t *pen_ids, int32_t n_pen, float penalty, float *vals,
                                        int32_t *ids) {
    struct tpc *t = state;
    if (!tokens || !vals || !ids || n_pen < 0 || (n_pen > 0 && !pen_ids))
        return trit_error(TRIT_ERR_INVALID_ARG, "cuda tp forward_topk: NULL or negative argument");
    /* checked here as well as on the device's rank: the other ranks would not refuse them */
    if (k < 1 || k > TRIT_TOPK_MAX || k > t->m->hp.n_vocab)
        return trit_error(TRIT_ERR_INVALID_ARG, "cuda tp forward_topk: k %d (1 .. %d, at most the vocabulary)", k,
                          TRIT_TOPK_MAX);
    if (n_pen > 0 && penalty != 1.0f && !(penalty > 0.0f && penalty < INFINITY))
        return trit_error(TRIT_ERR_INVALID_ARG, "cuda tp forward_topk: repetition penalty %g (finite and > 0)",
                          (double)penalty);
    t->tokens = tokens, t->n_tok = n, t->pos0 = pos0, t->logits = NULL;
    t->k = k, t->pen_ids = pen_ids, t->n_pen = n_pen, t->penalty = penalty, t->vals = vals, t->ids = ids;
    return dispatch(t, JOB_TOPK);
}

/* Several sequences (host/backend.h): every rank runs the batch on its shard and its own KV heads;
 * the rows of logits go to the first local rank. The ranks check the batch alike (cuda/
 * backend_forward.cu), so a refused one enqueues nothing anywhere and the group goes on. */
static enum trit_status tpc_forward_batch(void *state, const struct trit_forward_batch *b, float *logits) {
    struct tpc *t = state;
    /* checked here: a rank other than the first runs without logits and would not refuse */
    if (!b || (b->n_out > 0 && !logits))
        return trit_error(TRIT_ERR_INVALID_ARG, "cuda tp forward_batch: NULL batch or logits");
    t->batch = b, t->logits = logits;
    return dispatch(t, JOB_BATCH);
}

/* Copy-on-write of a shared block (host/kv_pool.h): each rank copies its own KV heads' rows, on its
 * communicator's stream, ahead of the batch that writes into `to`. Bounds are the pool's, alike on
 * every rank. */
static enum trit_status tpc_kv_copy(void *state, int32_t from, int32_t to) {
    struct tpc *t = state;
    t->copy_from = from, t->copy_to = to;
    return dispatch(t, JOB_KVCOPY);
}

static const char *tpc_describe(void *state) {
    struct tpc *t = state;
    const double ms = trit_cuda_tp_comm_ms(t->r[0].state);
    const int64_t n = trit_cuda_tp_tokens(t->r[0].state);
    char *p = strstr(t->desc, "; comm ");
    if (p) *p = '\0';
    const size_t len = strlen(t->desc);
    if (n > 0)
        snprintf(t->desc + len, sizeof t->desc - len, "; comm %.1f us/token", 1000.0 * ms / (double)n);
    return t->desc;
}

static uint64_t tpc_memory_bytes(void *state) {
    struct tpc *t = state;
    uint64_t b = 0;
    for (int i = 0; i < t->n_local; i++) b += trit_cuda_backend.memory_bytes(t->r[i].state);
    return b;
}

/* one GPU per MPI process: the bootstrap communicator (MPI), which trit_tp_lead sends steps over */
static struct trit_comm *tpc_host_comm(void *state) { return ((struct tpc *)state)->boot; }

static void tpc_info(void *state, int *rank, int *size, int64_t *comm_us) {
    *rank = trit_tp_cuda_rank(state);
    *size = trit_tp_cuda_size(state);
    *comm_us = trit_tp_cuda_comm_us(state);
}

const struct trit_backend_ops trit_tp_cuda_backend = {
    .name = "cuda-tp",
    .init = tpc_init,
    .forward = tpc_forward,
    .free = tpc_free,
    .describe = tpc_describe,
    .memory_bytes = tpc_memory_bytes,
    .forward_argmax = tpc_forward_argmax,
    .forward_topk = tpc_forward_topk,
    .tp_info = tpc_info,
    .host_comm = tpc_host_comm,
    .forward_batch = tpc_forward_batch,
    .kv_copy = tpc_kv_copy,
};

bool trit_tp_cuda_compiled(void) { return true; }
int trit_tp_cuda_rank(const void *state) { return ((const struct tpc *)state)->rank0; }
int trit_tp_cuda_size(const void *state) { return ((const struct tpc *)state)->n_ranks; }
int64_t trit_tp_cuda_comm_us(const void *state) {
    return (int64_t)(1000.0 * trit_cuda_tp_comm_ms(((const struct tpc *)state)->r[0].state));
}
int64_t trit_tp_cuda_tokens(const void *state) { return trit_cuda_tp_tokens(((const struct tpc *)state)->r[0].state); }

#else /* no CUDA backend or no NCCL */

static const char *why(void) {
#ifndef TRIT_HAVE_CUDA_BACKEND
    return "this trit was built without the CUDA backend";
#else
    return "this trit was built without NCCL (install it and rebuild: docs/tensor-parallel.md)";
#endif
}

enum trit_status trit_tp_cuda_init(const struct trit_model *m, const struct trit_backend_config *cfg,
                                   const struct trit_tp_cuda_config *tp, void **state) {
    (void)m, (void)cfg, (void)tp;
    if (state) *state = NULL;
    return trit_error(TRIT_ERR_UNSUPPORTED, "tensor parallelism on GPUs: %s", why());
}

static enum trit_status tpc_init(const struct trit_model *m, const struct trit_backend_config *cfg, void **state) {
    return trit_tp_cuda_init(m, cfg, NULL, state);
}
static void tpc_info(void *state, int *rank, int *size, int64_t *comm_us) {
    (void)state;
    *rank = 0, *size = 1, *comm_us = 0;
}
static enum trit_status tpc_forward(void *state, const int32_t *tokens, int64_t n, int64_t pos0, float *logits) {
    (void)state, (void)tokens, (void)n, (void)pos0, (void)logits;
    return trit_error(TRIT_ERR_UNSUPPORTED, "tensor parallelism on GPUs: %s", why());
}
static void tpc_free(void *state) { (void)state; }
static const char *tpc_describe(void *state) {
    (void)state;
    return "unavailable";
}
static uint64_t tpc_memory_bytes(void *state) {
    (void)state;
    return 0;
}

const struct trit_backend_ops trit_tp_cuda_backend = {
    .name = "cuda-tp",
    .init = tpc_init,
    .forward = tpc_forward,
    .free = tpc_free,
    .describe = tpc_describe,
    .memory_bytes = tpc_memory_bytes,
    .tp_info = tpc_info,
};

bool trit_tp_cuda_compiled(void) { return false; }
int trit_tp_cuda_rank(const void *state) { return (void)state, 0; }
int trit_tp_cuda_size(const void *state) { return (void)state, 1; }
int64_t trit_tp_cuda_comm_us(const void *state) { return (void)state, 0; }
int64_t trit_tp_cuda_tokens(const void *state) { return (void)state, 0; }

#endif
