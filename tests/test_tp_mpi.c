// labels: mpi
/*
 * test_tp_mpi.c: tensor parallelism over MPI ranks (host/tp): the communicator's collectives, exact
 * mode's int32 accumulators and logits against one rank and against the CPU backend, grouped
 * mode's perplexity cost, the public API, and a rank that dies, hangs or stops (SIGSTOP).
 *
 * MPI can be initialized once per process, so each test runs in its own mpirun (ctest_tp.cmake
 * runs every test with 2 and 4 ranks); run directly, every test runs as a 1-rank MPI singleton:
 *
 *   mpirun -np 4 --oversubscribe build/tests/test_tp_mpi --filter 'tp_mpi/exact_logits' --jobs 1
 *   ctest --test-dir build -L mpi --output-on-failure
 *
 * The perplexity test runs the shipped default model (models/trit-kjv-4m.gguf) on the committed
 * held-out excerpt (tests/data/default-model/val_excerpt.txt); TRIT_TP_PPL_MODEL and TRIT_TP_PPL_TEXT
 * point it elsewhere.
 */
#include <criterion/criterion.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cpu/cpu.h"
#include "cpu/kernels.h"
#include "support.h"
#include "tp/plan.h"
#include "tp/tp.h"
#include "tp_test_model.h"

/* Grouped mode's perplexity relative to exact mode's, rel = ppl_grouped / ppl_exact - 1: recorded
 * measurements and regression bounds (empirical: changing the numbers is what grouped mode does).
 *
 * The shipped model models/trit-kjv-4m.gguf (4 layers, dim 256, 4/2 heads of 64, ffn 768; trained
 * without grouped statistics), 8 chunks of 128 tokens of tests/data/default-model/val_excerpt.txt,
 * checkpoint alpha (exact-mode perplexity 60.52 at this context), by rank count:
 *   1: 0%   2: +23.19%   3: +32.34%   4: +62.59%
 * Nearly all of it is the attention sub-norm taken per rank, i.e. per head group, which this small
 * model never saw in training. Bound: 1.25 x the recorded delta + 0.5 points. Another model:
 * TRIT_TP_PPL_MODEL, TRIT_TP_PPL_TEXT and TRIT_TP_PPL_MAX_REL (the bound, as a fraction).
 *
 * The tiny random models (per-shard alpha from their float weights), by rank count 2 / 3 / 4:
 *   bitnet-b1.58 graph +0.04% / -4.37% / -1.65%     llama graph -0.19% / -0.20% / -0.20%
 * bound |rel| <= 10%: a guard against a broken grouped path, which moves it by orders more. */
static const double shipped_model_recorded_rel[] = {0.0, 0.0, 0.2319, 0.3234, 0.6259};
#define GROUPED_PPL_TINY_MAX_REL 0.10

static struct trit_comm *make_comm(int split_color) {
    struct trit_comm_params p = trit_comm_default_params();
    p.split_color = split_color;
    struct trit_comm *c = NULL;
    cr_assert_eq(trit_comm_mpi_create(&p, &c), TRIT_OK, "%s", trit_last_error());
    return c;
}

static void *tp_init(const struct trit_model *m, const struct trit_backend_config *cfg, struct trit_comm *c,
                     enum trit_tp_quant q, const struct trit_tp_float_source *floats) {
    const struct trit_tp_config tp = {.quant = q, .comm = c, .floats = floats};
    void *st = NULL;
    cr_assert_eq(trit_tp_cpu_init(m, cfg, &tp, &st), TRIT_OK, "%s", trit_last_error());
    return st;
}

static int32_t argmax(const float *x, int64_t n) {
    int32_t best = 0;
    for (int64_t i = 1; i < n; i++)
        if (x[i] > x[best]) best = (int32_t)i;
    return best;
}

static void check_finite(const float *x, int64_t n, const char *what) {
    for (int64_t i = 0; i < n; i++) cr_assert(isfinite(x[i]), "%s: element %lld is %g", what, (long long)i, (double)x[i]);
}

/* ---- the communicator ------------------------------------------------------------------------ */

Test(tp_mpi, collectives) {
    struct trit_comm *c = make_comm(-1);
    const int r = trit_comm_rank(c), P = trit_comm_size(c);
    cr_assert(P >= 1 && r >= 0 && r < P && trit_comm_backend(c) == TRIT_COMM_MPI);
    cr_assert(trit_comm_local_size(c) >= 1 && trit_comm_local_size(c) <= P);
    /* one node here: the local ranks are the ranks (the GPU a rank takes with --device cuda) */
    const int lr = trit_comm_local_rank(c);
    cr_assert(lr >= 0 && lr < trit_comm_local_size(c));
    if (trit_comm_local_size(c) == P) cr_assert_eq(lr, r, "local rank %d, rank %d", lr, r);
    int32_t seen[64] = {0};
    cr_assert(P <= 64);
    seen[lr] = 1;
    cr_assert_eq(trit_comm_allreduce(c, seen, P, TRIT_COMM_I32, TRIT_COMM_SUM), TRIT_OK, "%s", trit_last_error());
    if (trit_comm_local_size(c) == P)
        for (int i = 0; i < P; i++) cr_assert_eq(seen[i], 1, "local rank %d taken %d times", i, seen[i]);
    trit_comm_reset_stats(c); /* the counts below are of the collectives that follow */

    int32_t vi[5];
    float vf[5], vm[3];
    double vd[2];
    for (int i = 0; i < 5; i++) vi[i] = (r + 1) * (i + 1), vf[i] = 0.5f * (float)(r + i);
    vm[0] = (float)r, vm[1] = -(float)r, vm[2] = r == P - 1 ? 1e30f : 0.0f;
    vd[0] = 1.0 + r, vd[1] = 1e-300;
    cr_assert_eq(trit_comm_allreduce(c, vi, 5, TRIT_COMM_I32, TRIT_COMM_SUM), TRIT_OK, "%s", trit_last_error());
    cr_assert_eq(trit_comm_allreduce(c, vf, 5, TRIT_COMM_F32, TRIT_COMM_SUM), TRIT_OK, "%s", trit_last_error());
    cr_assert_eq(trit_comm_allreduce(c, vm, 3, TRIT_COMM_F32, TRIT_COMM_MAX), TRIT_OK, "%s", trit_last_error());
    cr_assert_eq(trit_comm_allreduce(c, vd, 2, TRIT_COMM_F64, TRIT_COMM_SUM), TRIT_OK, "%s", trit_last_error());
    for (int i = 0; i < 5; i++) {
        cr_assert_eq(vi[i], (i + 1) * P * (P + 1) / 2);
        cr_assert_eq(vf[i], 0.5f * (float)(P * (P - 1) / 2 + P * i)); /* small integers and halves: exact */
    }
    cr_assert(vm[0] == (float)(P - 1) && vm[1] == 0.0f && vm[2] == 1e30f);
    cr_assert(vd[0] == P * (P + 1) / 2.0 && vd[1] == P * 1e-300);

    int32_t send[3] = {r * 1000, r * 1000 + 1, r * 1000 + 2}, *recv = trit_alloc((size_t)P * 3 * sizeof(int32_t));
    cr_assert_eq(trit_comm_allgather(c, send, recv, 3, TRIT_COMM_I32), TRIT_OK, "%s", trit_last_error());
    for (int p = 0; p < P; p++)
        for (int i = 0; i < 3; i++) cr_assert_eq(recv[p * 3 + i], p * 1000 + i);
    trit_free(recv);

    char msg[32];
    snprintf(msg, sizeof msg, "from rank %d", r);
    cr_assert_eq(trit_comm_broadcast(c, msg, sizeof msg, P - 1), TRIT_OK, "%s", trit_last_error());
    char want[32];
    snprintf(want, sizeof want, "from rank %d", P - 1);
    cr_assert_str_eq(msg, want);
    cr_assert_eq(trit_comm_barrier(c), TRIT_OK);
    cr_assert_eq(trit_comm_sync(c), TRIT_OK);

    struct trit_comm_stats s;
    trit_comm_get_stats(c, &s);
    cr_assert_eq(s.n_calls, 7);
    cr_assert_eq(s.bytes, 5 * 4 + 5 * 4 + 3 * 4 + 2 * 8 + 3 * 4 * P + 32);
    /* bad arguments are refused before any MPI call, so the ranks stay in step */
    cr_assert_eq(trit_comm_broadcast(c, msg, 4, P), TRIT_ERR_INVALID_ARG);
    cr_assert_eq(trit_comm_allreduce(c, vi, -1, TRIT_COMM_I32, TRIT_COMM_SUM), TRIT_ERR_INVALID_ARG);
    cr_assert(!trit_comm_broken(c));
    trit_comm_free(c);
}

/* A model with group scales and activations per 64 (qwen3) runs on one rank only for now: every rank
 * refuses it the same way, in either mode, and the communicator stays usable. */
Test(tp_mpi, group_scaled_models_refused) {
    struct trit_comm *c = make_comm(-1);
    const int P = trit_comm_size(c);
    struct trit_model m;
    cr_assert_eq(trit_model_synthetic("tiny-qwen3", 1, &m), TRIT_OK, "%s", trit_last_error());
    struct trit_backend_config cfg = {.n_ctx = 32, .n_batch = 8, .n_threads = 1};
    for (int q = 0; q < 2; q++) {
        const enum trit_tp_quant quant = q ? TRIT_TP_QUANT_EXACT : TRIT_TP_QUANT_GROUPED;
        if (quant == TRIT_TP_QUANT_GROUPED && P == 1) continue; /* one rank, grouped: the CPU backend itself */
        const struct trit_tp_config tp = {.quant = quant, .comm = c};
        void *st = NULL;
        cr_assert_eq(trit_tp_cpu_init(&m, &cfg, &tp, &st), TRIT_ERR_UNSUPPORTED, "mode %d: %s", q, trit_last_error());
        cr_assert_null(st);
        cr_assert(strstr(trit_last_error(), "run on one rank only"), "%s", trit_last_error());
    }
    cr_assert_eq(trit_comm_barrier(c), TRIT_OK, "the ranks are still in step: %s", trit_last_error());
    trit_model_release(&m);
    trit_comm_free(c);
}

/* ---- exact mode: accumulators ------------------------------------------------------------------ */

/* Each rank computes its shard of the tiny model's row-parallel matrices (o_proj by heads, down_proj
 * by FFN columns; uneven splits) and column-parallel gate rows; the all-reduced int32 accumulators
 * and the all-gathered rows equal trit_gemm_ref of the whole matrix on every rank. */
Test(tp_mpi, exact_accumulators) {
    struct trit_comm *c = make_comm(-1);
    const int r = trit_comm_rank(c), P = trit_comm_size(c);
    struct trit_hparams hp = tp_test_hparams(TRIT_FAMILY_BITNET_B158);
    struct tp_test_model t;
    cr_assert_eq(tp_test_model_build(&hp, 7, &t), TRIT_OK, "%s", trit_last_error());
    struct trit_tp_plan pl;
    cr_assert_eq(trit_tp_plan_make(&hp, r, P, &pl), TRIT_OK, "%s", trit_last_error());
    const struct trit_layer *L = &t.m.layers[1];
    const int64_t m = 5, hd = hp.head_dim;
    struct {
        const struct trit_ternary *w;
        int64_t c0, n;
    } row_par[2] = {{&L->w[TRIT_W_O], pl.head0 * hd, pl.n_heads * hd}, {&L->w[TRIT_W_DOWN], pl.ffn0, pl.n_ffn}};
    uint64_t seed = 99; /* the same activations on every rank */
    for (int k = 0; k < 2; k++) {
        const struct trit_ternary *w = row_par[k].w;
        int8_t *q = trit_alloc((size_t)(m * w->n_cols)), *qs = trit_alloc((size_t)(m * row_par[k].n));
        for (int64_t i = 0; i < m * w->n_cols; i++) q[i] = (int8_t)((int)(tp_test_next(&seed) % 256) - 128);
        for (int64_t b = 0; b < m; b++) memcpy(qs + b * row_par[k].n, q + b * w->n_cols + row_par[k].c0, (size_t)row_par[k].n);
        int32_t *ref = trit_alloc((size_t)(m * w->n_rows) * 4), *acc = trit_alloc((size_t)(m * w->n_rows) * 4);
        trit_gemm_ref(w, q, m, ref);
        struct trit_ternary s;
        struct trit_cpu_matrix pk;
        cr_assert_eq(trit_tp_ternary_cols(w, row_par[k].c0, row_par[k].n, &s), TRIT_OK);
        cr_assert_eq(trit_cpu_matrix_pack(&s, &pk), TRIT_OK);
        test_poison(acc, (size_t)(m * w->n_rows) * 4);
        cr_assert_eq(trit_cpu_gemm_i32(NULL, &pk, qs, m, acc), TRIT_OK);
        cr_assert_eq(trit_comm_allreduce(c, acc, m * w->n_rows, TRIT_COMM_I32, TRIT_COMM_SUM), TRIT_OK, "%s",
                     trit_last_error());
        cr_assert(memcmp(acc, ref, (size_t)(m * w->n_rows) * 4) == 0, "rank %d of %d: %s accumulators differ", r, P,
                  k == 0 ? "o_proj" : "down_proj");
        trit_cpu_matrix_free(&pk);
        trit_ternary_free(&s);
        trit_free(q), trit_free(qs), trit_free(ref), trit_free(acc);
    }
    /* column-parallel gate rows, gathered in slots of the largest shard */
    const struct trit_ternary *w = &L->w[TRIT_W_GATE];
    int8_t *q = trit_alloc((size_t)(m * w->n_cols));
    for (int64_t i = 0; i < m * w->n_cols; i++) q[i] = (int8_t)((int)(tp_test_next(&seed) % 256) - 128);
    const int64_t slot = trit_div_ceil(w->n_rows, P);
    int32_t *ref = trit_alloc((size_t)(m * w->n_rows) * 4), *mine = trit_alloc((size_t)(m * slot) * 4),
            *all = trit_alloc((size_t)(P * m * slot) * 4);
    trit_gemm_ref(w, q, m, ref);
    struct trit_ternary s;
    struct trit_cpu_matrix pk;
    cr_assert_eq(trit_tp_ternary_rows(w, pl.ffn0, pl.n_ffn, &s), TRIT_OK);
    cr_assert_eq(trit_cpu_matrix_pack(&s, &pk), TRIT_OK);
    int32_t *acc = trit_alloc((size_t)(m * pl.n_ffn) * 4);
    cr_assert_eq(trit_cpu_gemm_i32(NULL, &pk, q, m, acc), TRIT_OK);
    for (int64_t b = 0; b < m; b++) memcpy(mine + b * slot, acc + b * pl.n_ffn, (size_t)pl.n_ffn * 4);
    cr_assert_eq(trit_comm_allgather(c, mine, all, m * slot, TRIT_COMM_I32), TRIT_OK, "%s", trit_last_error());
    for (int p = 0; p < P; p++) {
        int64_t r0, nr;
        trit_tp_split(w->n_rows, P, p, &r0, &nr);
        for (int64_t b = 0; b < m; b++)
            cr_assert(memcmp(all + ((int64_t)p * m + b) * slot, ref + b * w->n_rows + r0, (size_t)nr * 4) == 0,
                      "gate rows of rank %d differ", p);
    }
    trit_cpu_matrix_free(&pk);
    trit_ternary_free(&s);
    trit_free(q), trit_free(ref), trit_free(mine), trit_free(all), trit_free(acc);
    tp_test_model_free(&t);
    trit_comm_free(c);
}

/* ---- exact mode: logits -------------------------------------------------------------------------- */

/* A prompt in two batches (8 + 3 tokens, all logits), then greedy decoding. N ranks equal 1 rank bit
 * for bit; against the CPU backend the greedy tokens are the same, and for a graph without sub-norms
 * the logits are the same bits too (tp.h says why sub-norm graphs differ in the last bits). */
static void exact_logits_family(enum trit_family family, struct trit_comm *world, struct trit_comm *self) {
    struct trit_hparams hp = tp_test_hparams(family);
    struct tp_test_model t;
    cr_assert_eq(tp_test_model_build(&hp, 100 + (uint64_t)family, &t), TRIT_OK, "%s", trit_last_error());
    const struct trit_backend_config cfg = {.n_ctx = 32, .n_batch = 8, .n_threads = 1, .logits_all = true};
    void *tpn = tp_init(&t.m, &cfg, world, TRIT_TP_QUANT_EXACT, NULL);
    void *tp1 = tp_init(&t.m, &cfg, self, TRIT_TP_QUANT_EXACT, NULL);
    void *cpu = NULL;
    cr_assert_eq(trit_cpu_backend.init(&t.m, &cfg, &cpu), TRIT_OK, "%s", trit_last_error());
    const int64_t V = hp.n_vocab;
    float *ln = trit_alloc((size_t)(8 * V) * 4), *l1 = trit_alloc((size_t)(8 * V) * 4), *lc = trit_alloc((size_t)(8 * V) * 4);
    int32_t tokens[32];
    for (int i = 0; i < 11; i++) tokens[i] = (int32_t)((i * 37 + 5) % V);
    int64_t pos = 0;
    double max_diff = 0.0;
    const bool bitwise_cpu = !hp.sub_norms;
    for (int step = 0; pos < 24; step++) {
        const int64_t n = step == 0 ? 8 : step == 1 ? 3 : 1;
        test_poison(ln, (size_t)(n * V) * 4);
        cr_assert_eq(trit_tp_cpu_backend.forward(tpn, tokens + pos, n, pos, ln), TRIT_OK, "%s", trit_last_error());
        cr_assert_eq(trit_tp_cpu_backend.forward(tp1, tokens + pos, n, pos, l1), TRIT_OK, "%s", trit_last_error());
        cr_assert_eq(trit_cpu_backend.forward(cpu, tokens + pos, n, pos, lc), TRIT_OK, "%s", trit_last_error());
        check_finite(ln, n * V, "tp logits");
        cr_assert(memcmp(ln, l1, (size_t)(n * V) * 4) == 0, "%s, %d ranks: step %d logits differ from 1 rank",
                  trit_family_name(family), trit_comm_size(world), step);
        for (int64_t b = 0; b < n; b++) {
            cr_assert_eq(argmax(ln + b * V, V), argmax(lc + b * V, V), "%s: step %d token %lld: greedy token differs from the CPU backend",
                         trit_family_name(family), step, (long long)b);
            /* not fmax(): GCC 12 for aarch64 stops with an internal error vectorizing an fmax
             * reduction over floats widened to double (also in mean_nll and sample_sequence) */
            for (int64_t i = 0; i < V; i++) {
                const double d = fabs((double)ln[b * V + i] - (double)lc[b * V + i]);
                if (d > max_diff) max_diff = d;
            }
        }
        if (bitwise_cpu)
            cr_assert(memcmp(ln, lc, (size_t)(n * V) * 4) == 0, "%s: step %d logits differ from the CPU backend",
                      trit_family_name(family), step);
        pos += n;
        if (pos >= 11) tokens[pos] = argmax(ln + (n - 1) * V, V); /* greedy continuation */
    }
    cr_log_info("%s, %d ranks: exact logits equal 1 rank bit for bit over %lld positions; max |diff| vs CPU backend %.3g",
                trit_family_name(family), trit_comm_size(world), (long long)pos, max_diff);
    trit_tp_cpu_backend.free(tpn);
    trit_tp_cpu_backend.free(tp1);
    trit_cpu_backend.free(cpu);
    trit_free(ln), trit_free(l1), trit_free(lc);
    tp_test_model_free(&t);
}

Test(tp_mpi, exact_logits) {
    struct trit_comm *world = make_comm(-1);
    struct trit_comm *self = make_comm(trit_comm_rank(world));
    cr_assert_eq(trit_comm_size(self), 1);
    exact_logits_family(TRIT_FAMILY_BITNET_B158, world, self);
    exact_logits_family(TRIT_FAMILY_BITNET, world, self);
    exact_logits_family(TRIT_FAMILY_LLAMA, world, self);
    trit_comm_free(self);
    trit_comm_free(world);
}

/* ---- grouped mode: perplexity ------------------------------------------------------------------- */

/* Mean negative log-likelihood of tokens[first + 1 .. n) from logits (n, V). */
static double mean_nll(const float *logits, const int32_t *tokens, int64_t n, int64_t V, int64_t first) {
    double sum = 0.0;
    for (int64_t t = first; t + 1 < n; t++) {
        const float *row = logits + t * V;
        float mxf = row[0]; /* the maximum in float, then widened (the same value): see exact_logits_family */
        for (int64_t i = 1; i < V; i++) mxf = fmaxf(mxf, row[i]);
        double mx = mxf, z = 0.0;
        for (int64_t i = 0; i < V; i++) z += exp((double)row[i] - mx);
        sum += log(z) - ((double)row[tokens[t + 1]] - mx);
    }
    return sum / (double)(n - 1 - first);
}

/* A text the model itself finds likely: tokens drawn at temperature 1 from the CPU backend (the
 * same on every rank: same logits, same generator). Perplexity on uniform random ids would
 * measure nothing. */
static void sample_sequence(const struct trit_model *m, int32_t *tokens, int64_t n) {
    const struct trit_backend_config cfg = {.n_ctx = n, .n_batch = 1, .n_threads = 1};
    void *cpu = NULL;
    cr_assert_eq(trit_cpu_backend.init(m, &cfg, &cpu), TRIT_OK, "%s", trit_last_error());
    const int64_t V = m->hp.n_vocab;
    float *l = trit_alloc((size_t)V * 4);
    uint64_t rng = 2024;
    tokens[0] = 1;
    for (int64_t t = 0; t + 1 < n; t++) {
        cr_assert_eq(trit_cpu_backend.forward(cpu, tokens + t, 1, t, l), TRIT_OK, "%s", trit_last_error());
        float mxf = l[0]; /* in float, then widened: see exact_logits_family */
        for (int64_t i = 1; i < V; i++) mxf = fmaxf(mxf, l[i]);
        double mx = mxf, z = 0.0;
        for (int64_t i = 0; i < V; i++) z += exp((double)l[i] - mx);
        double u = (double)tp_test_uniform(&rng) * z, acc = 0.0;
        int32_t pick = (int32_t)V - 1;
        for (int64_t i = 0; i < V; i++) {
            acc += exp((double)l[i] - mx);
            if (acc >= u) {
                pick = (int32_t)i;
                break;
            }
        }
        tokens[t + 1] = pick;
    }
    trit_free(l);
    trit_cpu_backend.free(cpu);
}

Test(tp_mpi, grouped_perplexity_tiny) {
    struct trit_comm *world = make_comm(-1);
    struct trit_comm *self = make_comm(trit_comm_rank(world));
    const enum trit_family fams[2] = {TRIT_FAMILY_BITNET_B158, TRIT_FAMILY_LLAMA};
    for (int f = 0; f < 2; f++) {
        struct trit_hparams hp = tp_test_hparams(fams[f]);
        hp.tied_embeddings = false; /* a tied random model predicts its input token: perplexity 1 */
        struct tp_test_model t;
        cr_assert_eq(tp_test_model_build(&hp, 300 + (uint64_t)f, &t), TRIT_OK, "%s", trit_last_error());
        const int64_t n = 64, V = hp.n_vocab;
        int32_t tokens[64];
        sample_sequence(&t.m, tokens, n);
        const struct trit_backend_config cfg = {.n_ctx = n, .n_batch = n, .n_threads = 1, .logits_all = true};
        float *le = trit_alloc((size_t)(n * V) * 4), *lg = trit_alloc((size_t)(n * V) * 4), *lc = trit_alloc((size_t)(n * V) * 4);
        void *ex = tp_init(&t.m, &cfg, world, TRIT_TP_QUANT_EXACT, NULL);
        void *gr = tp_init(&t.m, &cfg, world, TRIT_TP_QUANT_GROUPED, &t.floats);
        void *g1 = tp_init(&t.m, &cfg, self, TRIT_TP_QUANT_GROUPED, &t.floats);
        void *cpu = NULL;
        cr_assert_eq(trit_cpu_backend.init(&t.m, &cfg, &cpu), TRIT_OK, "%s", trit_last_error());
        cr_assert_eq(trit_tp_cpu_backend.forward(ex, tokens, n, 0, le), TRIT_OK, "%s", trit_last_error());
        cr_assert_eq(trit_tp_cpu_backend.forward(gr, tokens, n, 0, lg), TRIT_OK, "%s", trit_last_error());
        check_finite(lg, n * V, "grouped logits");
        const double ppl_e = exp(mean_nll(le, tokens, n, V, 0)), ppl_g = exp(mean_nll(lg, tokens, n, V, 0));
        const double rel = ppl_g / ppl_e - 1.0;
        cr_log_info("%s, %d ranks: perplexity exact %.4f, grouped (per-shard alpha) %.4f: %+.3f%%", trit_family_name(fams[f]),
                    trit_comm_size(world), ppl_e, ppl_g, 100.0 * rel);
        if (trit_comm_rank(world) == 0)
            fprintf(stderr, "tp_mpi grouped_perplexity_tiny: %s, %d ranks: exact %.4f grouped %.4f (%+.3f%%)\n",
                    trit_family_name(fams[f]), trit_comm_size(world), ppl_e, ppl_g, 100.0 * rel);
        cr_assert(fabs(rel) <= GROUPED_PPL_TINY_MAX_REL, "grouped perplexity %.4f vs exact %.4f: %+.2f%% exceeds %.1f%%",
                  ppl_g, ppl_e, 100.0 * rel, 100.0 * GROUPED_PPL_TINY_MAX_REL);
        /* one rank in grouped mode is the CPU backend, bit for bit */
        cr_assert_eq(trit_tp_cpu_backend.forward(g1, tokens, n, 0, lg), TRIT_OK, "%s", trit_last_error());
        cr_assert_eq(trit_cpu_backend.forward(cpu, tokens, n, 0, lc), TRIT_OK, "%s", trit_last_error());
        cr_assert(memcmp(lg, lc, (size_t)(n * V) * 4) == 0, "grouped mode on 1 rank differs from the CPU backend");
        trit_tp_cpu_backend.free(ex);
        trit_tp_cpu_backend.free(gr);
        trit_tp_cpu_backend.free(g1);
        trit_cpu_backend.free(cpu);
        trit_free(le), trit_free(lg), trit_free(lc);
        tp_test_model_free(&t);
    }
    trit_comm_free(self);
    trit_comm_free(world);
}

static bool exists(const char *path) {
    struct stat s;
    return stat(path, &s) == 0;
}

/* A trained checkpoint and real text: exact and grouped perplexity over the second half of chunks
 * of 128 tokens (as trit perplexity scores them), and exact N ranks == 1 rank on the first chunk. */
Test(tp_mpi, grouped_perplexity_model) {
    static char model_path[1024], text_path[1024];
    const char *mp = getenv("TRIT_TP_PPL_MODEL"), *tp = getenv("TRIT_TP_PPL_TEXT");
    snprintf(model_path, sizeof model_path, "%s", mp && *mp ? mp : TRIT_SOURCE_DIR "/models/trit-kjv-4m.gguf");
    snprintf(text_path, sizeof text_path, "%s", tp && *tp ? tp : TRIT_SOURCE_DIR "/tests/data/default-model/val_excerpt.txt");
    if (!exists(model_path) || !exists(text_path))
        cr_skip_test("no model for the perplexity check (set TRIT_TP_PPL_MODEL and TRIT_TP_PPL_TEXT; %s or %s is missing)",
                     model_path, text_path);
    struct trit_comm *world = make_comm(-1);
    struct trit_comm *self = make_comm(trit_comm_rank(world));
    struct trit_model m;
    cr_assert_eq(trit_model_load_path(model_path, NULL, &m), TRIT_OK, "%s", trit_last_error());
    trit_tokenizer *tok = NULL;
    cr_assert_eq(trit_tokenizer_load(model_path, &tok), TRIT_OK, "%s", trit_last_error());
    FILE *f = fopen(text_path, "rb");
    cr_assert_not_null(f);
    static char text[1 << 16];
    const size_t len = fread(text, 1, sizeof text, f);
    fclose(f);
    struct trit_tokens ids = {0};
    cr_assert_eq(trit_tokenize(tok, text, len, 0, &ids), TRIT_OK, "%s", trit_last_error());
    const int64_t n_ctx = 128, V = m.hp.n_vocab;
    const int64_t n_chunks = (int64_t)ids.n / n_ctx < 8 ? (int64_t)ids.n / n_ctx : 8;
    cr_assert(n_chunks >= 1, "the text is %zu tokens", ids.n);
    const struct trit_backend_config cfg = {.n_ctx = n_ctx, .n_batch = n_ctx, .n_threads = 1, .logits_all = true};
    void *ex = tp_init(&m, &cfg, world, TRIT_TP_QUANT_EXACT, NULL);
    void *gr = tp_init(&m, &cfg, world, TRIT_TP_QUANT_GROUPED, NULL);
    void *e1 = tp_init(&m, &cfg, self, TRIT_TP_QUANT_EXACT, NULL);
    float *le = trit_alloc((size_t)(n_ctx * V) * 4), *lg = trit_alloc((size_t)(n_ctx * V) * 4);
    double nll_e = 0.0, nll_g = 0.0;
    for (int64_t ch = 0; ch < n_chunks; ch++) {
        const int32_t *chunk = ids.ids + ch * n_ctx;
        cr_assert_eq(trit_tp_cpu_backend.forward(ex, chunk, n_ctx, 0, le), TRIT_OK, "%s", trit_last_error());
        cr_assert_eq(trit_tp_cpu_backend.forward(gr, chunk, n_ctx, 0, lg), TRIT_OK, "%s", trit_last_error());
        nll_e += mean_nll(le, chunk, n_ctx, V, n_ctx / 2);
        nll_g += mean_nll(lg, chunk, n_ctx, V, n_ctx / 2);
        if (ch == 0) {
            cr_assert_eq(trit_tp_cpu_backend.forward(e1, chunk, n_ctx, 0, lg), TRIT_OK, "%s", trit_last_error());
            cr_assert(memcmp(le, lg, (size_t)(n_ctx * V) * 4) == 0, "exact logits of %d ranks differ from 1 rank",
                      trit_comm_size(world));
        }
    }
    const double ppl_e = exp(nll_e / (double)n_chunks), ppl_g = exp(nll_g / (double)n_chunks), rel = ppl_g / ppl_e - 1.0;
    cr_log_info("%s, %d ranks, %lld chunks of %lld: perplexity exact %.4f, grouped %.4f: %+.3f%%", model_path,
                trit_comm_size(world), (long long)n_chunks, (long long)n_ctx, ppl_e, ppl_g, 100.0 * rel);
    if (trit_comm_rank(world) == 0)
        fprintf(stderr, "tp_mpi grouped_perplexity_model: %s, %d ranks, %lld chunks: exact %.4f grouped %.4f (%+.3f%%)\n",
                model_path, trit_comm_size(world), (long long)n_chunks, ppl_e, ppl_g, 100.0 * rel);
    const char *bound_env = getenv("TRIT_TP_PPL_MAX_REL");
    const int P = trit_comm_size(world);
    double bound = -1.0;
    if (bound_env && *bound_env) bound = atof(bound_env);
    else if (!mp && P < (int)(sizeof shipped_model_recorded_rel / sizeof shipped_model_recorded_rel[0]))
        bound = 1.25 * shipped_model_recorded_rel[P] + 0.005;
    if (bound < 0.0)
        cr_skip_test("no recorded bound for %d ranks of %s: measured %+.3f%% (set TRIT_TP_PPL_MAX_REL)", P, model_path, 100.0 * rel);
    cr_assert(fabs(rel) <= bound, "grouped perplexity %.4f vs exact %.4f: %+.2f%% exceeds the bound %.2f%%", ppl_g, ppl_e,
              100.0 * rel, 100.0 * bound);
    trit_tp_cpu_backend.free(ex);
    trit_tp_cpu_backend.free(gr);
    trit_tp_cpu_backend.free(e1);
    trit_free(le), trit_free(lg);
    trit_tokens_free(&ids);
    trit_tokenizer_free(tok);
    trit_model_release(&m);
    trit_comm_free(self);
    trit_comm_free(world);
}

/* ---- the public API ------------------------------------------------------------------------------ */

Test(tp_mpi, public_api) {
    struct trit_hparams hp = tp_test_hparams(TRIT_FAMILY_BITNET_B158);
    struct tp_test_model t;
    cr_assert_eq(tp_test_model_build(&hp, 5, &t), TRIT_OK, "%s", trit_last_error());
    struct trit_context_params cp = trit_context_default_params();
    cp.n_ctx = 32;
    cp.n_batch = 8;
    cp.n_threads = 1;
    trit_context *cpu = NULL, *tp = NULL;
    cp.device = TRIT_DEVICE_CPU;
    cr_assert_eq(trit_context_init(&t.m, &cp, &cpu), TRIT_OK, "%s", trit_last_error());
    cp.device = TRIT_DEVICE_AUTO;
    cp.tp_mpi = true;
    cr_assert_eq(trit_context_init(&t.m, &cp, &tp), TRIT_OK, "%s", trit_last_error());
    const int P = trit_context_tp_size(tp), r = trit_context_tp_rank(tp);
    cr_assert(P >= 1 && r >= 0 && r < P);
    cr_assert_str_eq(trit_context_backend(tp), "cpu-tp");
    cr_assert_eq(trit_context_tp_size(cpu), 1);
    int32_t prompt[12];
    for (int i = 0; i < 12; i++) prompt[i] = (int32_t)((i * 11 + 3) % hp.n_vocab);
    const float *lt, *lc;
    cr_assert_eq(trit_decode(tp, prompt, 12, &lt), TRIT_OK, "%s", trit_last_error());
    cr_assert_eq(trit_decode(cpu, prompt, 12, &lc), TRIT_OK, "%s", trit_last_error());
    for (int step = 0; step < 6; step++) {
        int32_t a = argmax(lt, hp.n_vocab), b = argmax(lc, hp.n_vocab);
        cr_assert_eq(a, b, "step %d: tp token %d, cpu token %d", step, a, b);
        cr_assert_eq(trit_decode(tp, &a, 1, &lt), TRIT_OK, "%s", trit_last_error());
        cr_assert_eq(trit_decode(cpu, &b, 1, &lc), TRIT_OK, "%s", trit_last_error());
    }
    cr_assert(strstr(trit_context_device_desc(tp), "tensor parallel") != NULL, "%s", trit_context_device_desc(tp));
    if (P > 1) cr_assert_gt(trit_context_comm_us(tp), 0);
    cr_log_info("rank %d: %s", r, trit_context_device_desc(tp));
    trit_context_free(tp);
    trit_context_free(cpu);

    /* a rank count that does not match the job fails on every rank alike */
    cp.tp_size = P + 1;
    cr_assert_eq(trit_context_init(&t.m, &cp, &tp), TRIT_ERR_INVALID_ARG);
    cr_expect(strstr(trit_last_error(), "mpirun -np") != NULL, "%s", trit_last_error());
    tp_test_model_free(&t);
}

/* Several sequences in one batch over the ranks (trit_decode_batch): each sequence's logits equal its
 * run alone on the same ranks, bit for bit, in both modes (every rank takes the same blocks for the
 * same calls; the collectives see every token of the batch). */
static trit_context *tp_ctx(const struct trit_model *m, enum trit_tp_quant q, int32_t n_seq) {
    struct trit_context_params cp = trit_context_default_params();
    cp.n_ctx = 96;
    cp.n_batch = 32;
    cp.n_threads = 1;
    cp.tp_mpi = true;
    cp.tp_quant = q;
    cp.n_seq_max = n_seq;
    trit_context *ctx = NULL;
    cr_assert_eq(trit_context_init(m, &cp, &ctx), TRIT_OK, "%s", trit_last_error());
    return ctx;
}

Test(tp_mpi, batched_sequences) {
    struct trit_hparams hp = tp_test_hparams(TRIT_FAMILY_BITNET_B158);
    struct tp_test_model t;
    cr_assert_eq(tp_test_model_build(&hp, 7, &t), TRIT_OK, "%s", trit_last_error());
    const int64_t V = hp.n_vocab;
    enum { S = 3, PROMPT = 70, GEN = 4 }; /* prompts across a block boundary */
    int32_t ids[S][PROMPT + GEN];
    for (int k = 0; k < S; k++)
        for (int i = 0; i < PROMPT + GEN; i++) ids[k][i] = (int32_t)((i * 13 + k * 29 + 1) % V);
    float *alone = malloc((size_t)S * (GEN + 1) * (size_t)V * sizeof(float));
    for (int mode = 0; mode < 2; mode++) {
        const enum trit_tp_quant q = mode == 0 ? TRIT_TP_QUANT_EXACT : TRIT_TP_QUANT_GROUPED;
        for (int k = 0; k < S; k++) {
            trit_context *one = tp_ctx(&t.m, q, 1);
            const float *row;
            cr_assert_eq(trit_decode(one, ids[k], PROMPT, &row), TRIT_OK, "%s", trit_last_error());
            memcpy(alone + ((size_t)k * (GEN + 1)) * (size_t)V, row, (size_t)V * sizeof(float));
            for (int i = 0; i < GEN; i++) {
                cr_assert_eq(trit_decode(one, &ids[k][PROMPT + i], 1, &row), TRIT_OK, "%s", trit_last_error());
                memcpy(alone + ((size_t)k * (GEN + 1) + 1 + (size_t)i) * (size_t)V, row, (size_t)V * sizeof(float));
            }
            trit_context_free(one);
        }
        trit_context *ctx = tp_ctx(&t.m, q, S);
        /* the prompts in chunks of 10 per sequence (30 tokens a batch, interleaved), then one token each */
        int32_t tok[32], pos[32], sid[32];
        for (int c = 0; c < PROMPT / 10 + GEN; c++) {
            const int per = c < PROMPT / 10 ? 10 : 1, p0 = c < PROMPT / 10 ? c * 10 : PROMPT + c - PROMPT / 10;
            int n = 0;
            for (int i = 0; i < per; i++)
                for (int k = 0; k < S; k++) tok[n] = ids[k][p0 + i], pos[n] = p0 + i, sid[n] = k, n++;
            const struct trit_batch b = {.n_tokens = n, .token = tok, .pos = pos, .seq_id = sid};
            const float *rows;
            int32_t n_rows;
            cr_assert_eq(trit_decode_batch(ctx, &b, &rows, &n_rows), TRIT_OK, "%s", trit_last_error());
            cr_assert_eq(n_rows, S);
            const int done = p0 + per;
            if (done < PROMPT) continue;
            for (int k = 0; k < S; k++) /* the rows are the last tokens of sequences 0, 1, 2: batch order */
                cr_assert_arr_eq(rows + (size_t)k * (size_t)V, alone + ((size_t)k * (GEN + 1) + (size_t)(done - PROMPT)) * (size_t)V,
                                 (size_t)V * sizeof(float), "mode %d, sequence %d at %d tokens", mode, k, done);
        }
        trit_context_free(ctx);
    }
    free(alone);
    tp_test_model_free(&t);
}

/* One rank leads, the others follow (trit_tp_lead / trit_tp_follow, as `trit serve --tp-mpi` runs):
 * rank 0 alone makes the calls, the followers repeat them; every row rank 0 gets equals its sequence
 * alone on the same ranks (computed first, collectively), forks, trims and removals included, a
 * refused batch is not sent, and a follower waits for a step longer than the collective timeout. */
Test(tp_mpi, lead_follow) {
    struct trit_hparams hp = tp_test_hparams(TRIT_FAMILY_BITNET_B158);
    struct tp_test_model t;
    cr_assert_eq(tp_test_model_build(&hp, 11, &t), TRIT_OK, "%s", trit_last_error());
    const int64_t V = hp.n_vocab;
    enum { S = 3, PROMPT = 70, GEN = 3, TIMEOUT_MS = 3000 };
    int32_t ids[S][PROMPT + GEN];
    for (int k = 0; k < S; k++)
        for (int i = 0; i < PROMPT + GEN; i++) ids[k][i] = (int32_t)((i * 7 + k * 31 + 2) % V);
    /* alone[k][j]: sequence k's logits after PROMPT + j tokens */
    float *alone = malloc((size_t)S * (GEN + 1) * (size_t)V * sizeof(float));
    for (int k = 0; k < S; k++) {
        trit_context *one = tp_ctx(&t.m, TRIT_TP_QUANT_EXACT, 1);
        const float *row;
        for (int j = 0; j <= GEN; j++) {
            const int n = j == 0 ? PROMPT : 1, at = j == 0 ? 0 : PROMPT + j - 1;
            cr_assert_eq(trit_decode(one, &ids[k][at], n, &row), TRIT_OK, "%s", trit_last_error());
            memcpy(alone + ((size_t)k * (GEN + 1) + (size_t)j) * (size_t)V, row, (size_t)V * sizeof(float));
        }
        trit_context_free(one);
    }
#define ALONE(k, j) (alone + ((size_t)(k) * (GEN + 1) + (size_t)(j)) * (size_t)V)
    char ms[16];
    snprintf(ms, sizeof ms, "%d", TIMEOUT_MS);
    setenv("TRIT_TP_TIMEOUT_MS", ms, 1); /* the leading context's communicator: a short timeout */
    trit_context *ctx = tp_ctx(&t.m, TRIT_TP_QUANT_EXACT, S + 1);
    const int rank = trit_context_tp_rank(ctx), P = trit_context_tp_size(ctx);
    if (rank != 0) {
        cr_assert_eq(trit_tp_lead(ctx), P > 1 ? TRIT_ERR_INVALID_ARG : TRIT_OK);
        cr_assert_eq(trit_tp_follow(ctx), TRIT_OK, "rank %d: %s", rank, trit_last_error());
        /* what rank 0 did, repeated here */
        cr_assert_eq(trit_seq_length(ctx, 0), PROMPT + GEN);
        cr_assert_eq(trit_seq_length(ctx, 1), PROMPT + GEN);
        cr_assert_eq(trit_seq_length(ctx, 2), 0);
        cr_assert_eq(trit_seq_length(ctx, S), PROMPT + GEN);
        trit_context_free(ctx);
        free(alone);
        tp_test_model_free(&t);
        return;
    }
    cr_assert_eq(trit_tp_follow(ctx), P > 1 ? TRIT_ERR_INVALID_ARG : TRIT_OK);
    cr_assert_eq(trit_tp_lead(ctx), TRIT_OK, "%s", trit_last_error());
    const float *rows;
    int32_t n_rows, tok[S * PROMPT], pos[S * PROMPT], sid[S * PROMPT];
    if (P > 1) { /* the single-sequence calls are not sent, so they are refused */
        cr_assert_eq(trit_decode(ctx, ids[0], 1, &rows), TRIT_ERR_INVALID_ARG);
        cr_assert_eq(trit_seq_length(ctx, 0), 0);
    }
    /* a batch refused on rank 0 is not sent: the followers would otherwise wait for its arrays */
    const int32_t bad_tok = (int32_t)V, zero = 0, seq0 = 0;
    const struct trit_batch bad = {.n_tokens = 1, .token = &bad_tok, .pos = &zero, .seq_id = &seq0};
    cr_assert_eq(trit_decode_batch(ctx, &bad, &rows, &n_rows), TRIT_ERR_INVALID_ARG);
    /* the prompts, interleaved in one batch */
    int n = 0;
    for (int i = 0; i < PROMPT; i++)
        for (int k = 0; k < S; k++) tok[n] = ids[k][i], pos[n] = i, sid[n] = k, n++;
    const struct trit_batch b0 = {.n_tokens = 32, .token = tok, .pos = pos, .seq_id = sid};
    for (int done = 0; done < n; done += 32) { /* n_batch is 32 */
        struct trit_batch b = b0;
        b.n_tokens = n - done < 32 ? n - done : 32;
        b.token += done, b.pos += done, b.seq_id += done;
        cr_assert_eq(trit_decode_batch(ctx, &b, &rows, &n_rows), TRIT_OK, "%s", trit_last_error());
    }
    cr_assert_arr_eq(rows + (size_t)(n_rows - 1) * (size_t)V, ALONE(S - 1, 0), (size_t)V * sizeof(float));
    if (P > 1) sleep(TIMEOUT_MS / 1000 + 1); /* the followers wait longer than the timeout: nothing ends */
    /* sequence S: a fork of sequence 0 inside its last block (copy on write), fed the rest again;
     * sequence 1 trimmed and fed again; sequence 2 removed */
    cr_assert_eq(trit_seq_fork(ctx, 0, S, PROMPT - 5), TRIT_OK, "%s", trit_last_error());
    cr_assert_eq(trit_seq_trim(ctx, 1, PROMPT - 3), TRIT_OK, "%s", trit_last_error());
    cr_assert_eq(trit_seq_remove(ctx, 2), TRIT_OK, "%s", trit_last_error());
    n = 0;
    for (int i = PROMPT - 5; i < PROMPT; i++) tok[n] = ids[0][i], pos[n] = i, sid[n] = S, n++;
    for (int i = PROMPT - 3; i < PROMPT; i++) tok[n] = ids[1][i], pos[n] = i, sid[n] = 1, n++;
    const struct trit_batch refill = {.n_tokens = n, .token = tok, .pos = pos, .seq_id = sid};
    cr_assert_eq(trit_decode_batch(ctx, &refill, &rows, &n_rows), TRIT_OK, "%s", trit_last_error());
    cr_assert_eq(n_rows, 2);
    cr_assert_arr_eq(rows, ALONE(0, 0), (size_t)V * sizeof(float), "the fork's prompt");
    cr_assert_arr_eq(rows + V, ALONE(1, 0), (size_t)V * sizeof(float), "the trimmed prompt");
    for (int j = 0; j < GEN; j++) { /* one token each for sequences 0, 1 and the fork of 0 */
        const int32_t s3[3] = {0, 1, S}, at = PROMPT + j;
        for (int k = 0; k < 3; k++) tok[k] = ids[s3[k] == S ? 0 : s3[k]][at], pos[k] = at, sid[k] = s3[k];
        const struct trit_batch step = {.n_tokens = 3, .token = tok, .pos = pos, .seq_id = sid};
        cr_assert_eq(trit_decode_batch(ctx, &step, &rows, &n_rows), TRIT_OK, "%s", trit_last_error());
        cr_assert_arr_eq(rows, ALONE(0, j + 1), (size_t)V * sizeof(float), "sequence 0, step %d", j);
        cr_assert_arr_eq(rows + V, ALONE(1, j + 1), (size_t)V * sizeof(float), "sequence 1, step %d", j);
        cr_assert_arr_eq(rows + 2 * V, ALONE(0, j + 1), (size_t)V * sizeof(float), "the fork, step %d", j);
    }
#undef ALONE
    trit_context_free(ctx); /* tells the followers to return */
    free(alone);
    tp_test_model_free(&t);
}

/* ---- a rank that dies or hangs ------------------------------------------------------------------
 * Run by ctest_tp.cmake with TRIT_TP_TEST_KILL_RANK=1 or TRIT_TP_TEST_HANG_RANK=1 and a short
 * TRIT_TP_TIMEOUT_MS: that rank stops in its second forward call, and the job must end, every rank,
 * with a clear message, before the ctest timeout. Never passes by itself. */
Test(tp_mpi, fault) {
    if (!getenv("TRIT_TP_TEST_KILL_RANK") && !getenv("TRIT_TP_TEST_HANG_RANK"))
        cr_skip_test("run by ctest_tp.cmake with TRIT_TP_TEST_KILL_RANK or TRIT_TP_TEST_HANG_RANK");
    struct trit_comm *world = make_comm(-1);
    if (trit_comm_size(world) < 2) {
        trit_comm_free(world);
        cr_skip_test("needs 2 ranks or more");
    }
    struct trit_hparams hp = tp_test_hparams(TRIT_FAMILY_LLAMA);
    struct tp_test_model t;
    cr_assert_eq(tp_test_model_build(&hp, 9, &t), TRIT_OK, "%s", trit_last_error());
    const struct trit_backend_config cfg = {.n_ctx = 16, .n_batch = 4, .n_threads = 1};
    void *st = tp_init(&t.m, &cfg, world, TRIT_TP_QUANT_EXACT, NULL);
    float *l = trit_alloc((size_t)hp.n_vocab * 4);
    int32_t tok = 3;
    for (int64_t pos = 0; pos < 6; pos++) {
        const enum trit_status s = trit_tp_cpu_backend.forward(st, &tok, 1, pos, l);
        if (s != TRIT_OK) cr_assert_fail("rank %d: forward %lld failed: %s", trit_comm_rank(world), (long long)pos, trit_last_error());
    }
    cr_assert_fail("rank %d: the injected fault did not end the run", trit_comm_rank(world));
}

/* ---- a rank that stops answering -----------------------------------------------------------------
 * Run by ctest_tp.cmake with TRIT_TP_TEST_STOP_RANK=r and a short TRIT_TP_TIMEOUT_MS: rank r raises
 * SIGSTOP on itself (it keeps its sockets and shared memory open but never answers, like a hung
 * device) at TRIT_TP_TEST_STOP_AT:
 *   init   before MPI_Init (the others wait in MPI_Init_thread)
 *   setup  between two communicator creations (the others wait in MPI_Comm_dup)
 *   step   before its third forward call (the others wait in a collective of the forward pass)
 *   exit   after its last forward call (the others pass, then wait at exit, before MPI_Finalize)
 * The others must end the job within the timeout, naming the call they waited in. Every process
 * records its pid and its criterion runner's in $TRIT_TP_TEST_PIDDIR, for the script's check that
 * none is left behind. Never passes by itself. */
static void record_pids(void) {
    const char *dir = getenv("TRIT_TP_TEST_PIDDIR");
    if (!dir || !*dir) return;
    const long pids[2] = {(long)getpid(), (long)getppid()};
    for (int i = 0; i < 2; i++) {
        char path[4096];
        snprintf(path, sizeof path, "%s/%ld", dir, pids[i]);
        FILE *f = fopen(path, "w");
        if (f) fclose(f);
    }
}

Test(tp_mpi, stop) {
    const char *rv = getenv("TRIT_TP_TEST_STOP_RANK"), *at = getenv("TRIT_TP_TEST_STOP_AT");
    if (!rv || !*rv) cr_skip_test("run by ctest_tp.cmake with TRIT_TP_TEST_STOP_RANK");
    if (!at || !*at) at = "step";
    record_pids();
    const int stop_rank = atoi(rv);
    if (!strcmp(at, "init")) {
        /* before MPI_Init, the rank comes from the launcher's environment */
        const char *wr = getenv("OMPI_COMM_WORLD_RANK");
        if (!wr) wr = getenv("PMI_RANK");
        if (!wr) cr_skip_test("init: the launcher sets neither OMPI_COMM_WORLD_RANK nor PMI_RANK");
        if (atoi(wr) == stop_rank) raise(SIGSTOP);
    }
    struct trit_comm *world = make_comm(-1);
    const int rank = trit_comm_rank(world);
    if (trit_comm_size(world) < 2) {
        trit_comm_free(world);
        cr_skip_test("needs 2 ranks or more");
    }
    if (!strcmp(at, "setup")) {
        if (rank == stop_rank) raise(SIGSTOP);
        struct trit_comm *second = make_comm(-1);
        trit_comm_free(second);
        cr_assert_fail("rank %d: a communicator was created without the stopped rank", rank);
    }
    struct trit_hparams hp = tp_test_hparams(TRIT_FAMILY_LLAMA);
    struct tp_test_model t;
    cr_assert_eq(tp_test_model_build(&hp, 9, &t), TRIT_OK, "%s", trit_last_error());
    const struct trit_backend_config cfg = {.n_ctx = 16, .n_batch = 4, .n_threads = 1};
    void *st = tp_init(&t.m, &cfg, world, TRIT_TP_QUANT_EXACT, NULL);
    float *l = trit_alloc((size_t)hp.n_vocab * 4);
    int32_t tok = 3;
    for (int64_t pos = 0; pos < 6; pos++) {
        if (pos == 2 && rank == stop_rank && !strcmp(at, "step")) raise(SIGSTOP);
        const enum trit_status s = trit_tp_cpu_backend.forward(st, &tok, 1, pos, l);
        if (s != TRIT_OK) cr_assert_fail("rank %d: forward %lld failed: %s", rank, (long long)pos, trit_last_error());
    }
    if (rank == stop_rank && !strcmp(at, "exit")) raise(SIGSTOP);
    trit_tp_cpu_backend.free(st);
    trit_free(l);
    tp_test_model_free(&t);
    trit_comm_free(world);
    /* exit: the ranks that did not stop pass here; MPI_Finalize's guard at exit must end the job */
    if (strcmp(at, "exit")) cr_assert_fail("rank %d: the stopped rank did not end the run", rank);
}
