// labels: unit
// cpu families: each
/*
 * test_tp_plan.c: tensor-parallel sharding without any communicator (host/tp/plan.h): balanced
 * splits, the per-rank plans of real shapes (2B-4T's 20/5 heads and ffn 6912 over 1..8 ranks),
 * shard extraction at every column offset, the exact-mode identity that makes row-parallel layers
 * bit-exact (the int32 accumulators of the column shards sum to trit_gemm_ref's, for uneven
 * splits), the split-independent sum of squares, and the public API's answer to --tp N without
 * GPUs.
 *
 *   ctest --test-dir build -R test_tp_plan --output-on-failure
 */
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cpu/cpu.h"
#include "cpu/kernels.h"
#include "support.h"
#include "tp/comm.h"
#include "tp/plan.h"
#include "tp_test_model.h"

Test(tp_plan, split_is_balanced_contiguous_and_covering) {
    const int64_t sizes[] = {1, 2, 3, 5, 7, 20, 96, 100, 301, 2560, 6912, 128256};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        for (int P = 1; P <= 9 && P <= sizes[i]; P++) {
            int64_t next = 0, lo = sizes[i], hi = 0;
            for (int p = 0; p < P; p++) {
                int64_t b, n;
                trit_tp_split(sizes[i], P, p, &b, &n);
                cr_assert_eq(b, next, "n %lld over %d: part %d starts at %lld, expected %lld", (long long)sizes[i], P, p,
                             (long long)b, (long long)next);
                next = b + n;
                lo = n < lo ? n : lo;
                hi = n > hi ? n : hi;
            }
            cr_assert_eq(next, sizes[i]);
            cr_assert(hi - lo <= 1, "n %lld over %d: parts of %lld..%lld", (long long)sizes[i], P, (long long)lo, (long long)hi);
        }
    }
    int64_t b, n;
    trit_tp_split(6912, 5, 1, &b, &n);
    cr_expect(b == 1383 && n == 1383);
    trit_tp_split(6912, 5, 4, &b, &n);
    cr_expect(b == 5530 && n == 1382);
}

static const struct trit_hparams hp_2b4t = {.family = TRIT_FAMILY_BITNET_B158, .n_vocab = 128256, .dim = 2560,
                                            .n_layers = 30, .n_heads = 20, .n_kv_heads = 5, .head_dim = 128,
                                            .ffn_dim = 6912, .ctx_train = 4096, .norm_eps = 1e-5f,
                                            .rope_theta = 500000.0f, .sub_norms = true, .tied_embeddings = true};

/* Every query head is on exactly one rank, and the KV head it reads is on that rank too. */
static void check_plan_covers(const struct trit_hparams *hp, int P) {
    int64_t next_head = 0, next_ffn = 0, next_vocab = 0;
    const int64_t group = hp->n_heads / hp->n_kv_heads;
    for (int r = 0; r < P; r++) {
        struct trit_tp_plan pl;
        cr_assert_eq(trit_tp_plan_make(hp, r, P, &pl), TRIT_OK, "%d ranks: %s", P, trit_last_error());
        cr_assert_eq(pl.head0, next_head);
        cr_assert_eq(pl.ffn0, next_ffn);
        cr_assert_eq(pl.vocab0, next_vocab);
        cr_assert(pl.n_heads >= 1 && pl.n_ffn >= 1 && pl.n_vocab >= 1 && pl.n_vocab <= pl.vocab_stride);
        for (int64_t h = pl.head0; h < pl.head0 + pl.n_heads; h++)
            cr_assert(h / group >= pl.kv_head0 && h / group < pl.kv_head0 + pl.n_kv_heads,
                      "%d ranks, rank %d: head %lld reads KV head %lld outside [%lld, %lld)", P, r, (long long)h,
                      (long long)(h / group), (long long)pl.kv_head0, (long long)(pl.kv_head0 + pl.n_kv_heads));
        next_head += pl.n_heads;
        next_ffn += pl.n_ffn;
        next_vocab += pl.n_vocab;
    }
    cr_assert(next_head == hp->n_heads && next_ffn == hp->ffn_dim && next_vocab == hp->n_vocab);
}

Test(tp_plan, real_shapes_any_rank_count) {
    for (int P = 1; P <= 8; P++) check_plan_covers(&hp_2b4t, P);
    struct trit_hparams hp_8b = hp_2b4t;
    hp_8b.dim = 4096, hp_8b.n_heads = 32, hp_8b.n_kv_heads = 8, hp_8b.ffn_dim = 14336;
    for (int P = 1; P <= 8; P++) check_plan_covers(&hp_8b, P);

    struct trit_tp_plan pl;
    /* 2B-4T over 4: 5 query heads each, groups of 4 straddle ranks, so KV heads are replicated */
    cr_assert_eq(trit_tp_plan_make(&hp_2b4t, 1, 4, &pl), TRIT_OK);
    cr_expect(pl.head0 == 5 && pl.n_heads == 5 && pl.kv_head0 == 1 && pl.n_kv_heads == 2 && pl.kv_replicated);
    cr_expect(pl.ffn0 == 1728 && pl.n_ffn == 1728 && pl.vocab_stride == 32064);
    /* over 5: 4 heads = one group each, nothing replicated; ffn 6912 = 1383,1383,1382,1382,1382 */
    cr_assert_eq(trit_tp_plan_make(&hp_2b4t, 4, 5, &pl), TRIT_OK);
    cr_expect(pl.head0 == 16 && pl.n_heads == 4 && pl.kv_head0 == 4 && pl.n_kv_heads == 1 && !pl.kv_replicated);
    cr_expect(pl.ffn0 == 5530 && pl.n_ffn == 1382);
    /* 8B over 8: 4 query heads and 1 KV head each */
    cr_assert_eq(trit_tp_plan_make(&hp_8b, 7, 8, &pl), TRIT_OK);
    cr_expect(pl.n_heads == 4 && pl.kv_head0 == 7 && pl.n_kv_heads == 1 && !pl.kv_replicated);
}

Test(tp_plan, refuses_more_ranks_than_heads_by_name) {
    struct trit_tp_plan pl;
    cr_assert_eq(trit_tp_plan_make(&hp_2b4t, 0, 21, &pl), TRIT_ERR_UNSUPPORTED);
    cr_expect(strstr(trit_last_error(), "n_heads = 20") != NULL, "message: %s", trit_last_error());
    struct trit_hparams hp = hp_2b4t;
    hp.ffn_dim = 3;
    cr_assert_eq(trit_tp_plan_make(&hp, 0, 4, &pl), TRIT_ERR_UNSUPPORTED);
    cr_expect(strstr(trit_last_error(), "ffn_dim = 3") != NULL, "message: %s", trit_last_error());
    cr_assert_eq(trit_tp_plan_make(&hp_2b4t, 2, 2, &pl), TRIT_ERR_INVALID_ARG);
}

static void random_ternary(struct test_rng *rng, struct trit_ternary *w, int64_t n_rows, int64_t n_cols) {
    cr_assert_eq(trit_ternary_init(w, n_rows, n_cols), TRIT_OK);
    for (int64_t r = 0; r < n_rows; r++)
        for (int64_t c = 0; c < n_cols; c++) trit_ternary_set(w, r, c, (int)test_rng_int(rng, -1, 1));
    w->scale = test_rng_uniform(rng, 0.01f, 2.0f);
    w->scale_kind = test_rng_int(rng, 0, 1) ? TRIT_SCALE_DIV : TRIT_SCALE_MUL;
}

Test(tp_plan, shards_at_every_offset) {
    struct test_rng rng;
    test_rng_seed(&rng, 11);
    struct trit_ternary w;
    random_ternary(&rng, &w, 37, 203);
    for (int64_t c0 = 0; c0 < 12; c0++) {
        for (int64_t n = 1; c0 + n <= w.n_cols; n += 1 + n / 3) {
            struct trit_ternary s;
            cr_assert_eq(trit_tp_ternary_cols(&w, c0, n, &s), TRIT_OK);
            cr_assert(s.n_rows == w.n_rows && s.n_cols == n && s.scale == w.scale && s.scale_kind == w.scale_kind);
            for (int64_t r = 0; r < w.n_rows; r++) {
                for (int64_t c = 0; c < n; c++)
                    cr_assert_eq(trit_ternary_get(&s, r, c), trit_ternary_get(&w, r, c0 + c), "cols [%lld, +%lld) at (%lld, %lld)",
                                 (long long)c0, (long long)n, (long long)r, (long long)c);
                for (int64_t c = n; c < s.row_bytes * 4; c++)
                    cr_assert_eq(trit_ternary_get(&s, r, c), 0, "padding code of column %lld is not zero", (long long)c);
            }
            trit_ternary_free(&s);
        }
    }
    struct trit_ternary s;
    cr_assert_eq(trit_tp_ternary_rows(&w, 5, 9, &s), TRIT_OK);
    for (int64_t r = 0; r < 9; r++)
        for (int64_t c = 0; c < w.n_cols; c++) cr_assert_eq(trit_ternary_get(&s, r, c), trit_ternary_get(&w, 5 + r, c));
    trit_ternary_free(&s);
    cr_assert_eq(trit_tp_ternary_cols(&w, 200, 4, &s), TRIT_ERR_INVALID_ARG);
    trit_ternary_free(&w);
}

/* The row-parallel identity of exact mode, one process playing every rank: the int32 accumulators
 * of the column shards (packed for the CPU kernels, each with its slice of the activations) sum to
 * the reference accumulators of the whole matrix, for splits that cut k-blocks and bytes anywhere.
 * Column-parallel shards reproduce their rows of the reference. */
Test(tp_plan, shard_accumulators_sum_to_the_reference) {
    struct test_rng rng;
    test_rng_seed(&rng, 12);
    const int64_t n_rows = 70, n_cols = 1001, m = 3;
    struct trit_ternary w;
    random_ternary(&rng, &w, n_rows, n_cols);
    int8_t *q = trit_alloc((size_t)(m * n_cols)), *qs = trit_alloc((size_t)(m * n_cols));
    for (int64_t i = 0; i < m * n_cols; i++) q[i] = (int8_t)test_rng_int(&rng, -128, 127);
    int32_t *ref = trit_alloc((size_t)(m * n_rows) * 4), *sum = trit_alloc((size_t)(m * n_rows) * 4),
            *part = trit_alloc((size_t)(m * n_rows) * 4);
    trit_gemm_ref(&w, q, m, ref);
    for (int P = 1; P <= 7; P++) {
        memset(sum, 0, (size_t)(m * n_rows) * 4);
        for (int p = 0; p < P; p++) {
            int64_t c0, nc, r0, nr;
            trit_tp_split(n_cols, P, p, &c0, &nc);
            struct trit_ternary s;
            struct trit_cpu_matrix pk;
            cr_assert_eq(trit_tp_ternary_cols(&w, c0, nc, &s), TRIT_OK);
            cr_assert_eq(trit_cpu_matrix_pack(&s, &pk), TRIT_OK);
            for (int64_t t = 0; t < m; t++) memcpy(qs + t * nc, q + t * n_cols + c0, (size_t)nc);
            test_poison(part, (size_t)(m * n_rows) * 4);
            cr_assert_eq(trit_cpu_gemm_i32(NULL, &pk, qs, m, part), TRIT_OK);
            for (int64_t i = 0; i < m * n_rows; i++) sum[i] += part[i];
            trit_cpu_matrix_free(&pk);
            trit_ternary_free(&s);

            trit_tp_split(n_rows, P, p, &r0, &nr);
            cr_assert_eq(trit_tp_ternary_rows(&w, r0, nr, &s), TRIT_OK);
            cr_assert_eq(trit_cpu_matrix_pack(&s, &pk), TRIT_OK);
            cr_assert_eq(trit_cpu_gemm_i32(NULL, &pk, q, m, part), TRIT_OK);
            for (int64_t t = 0; t < m; t++)
                cr_assert(memcmp(part + t * nr, ref + t * n_rows + r0, (size_t)nr * 4) == 0,
                          "%d ranks: rows shard %d differs from the reference", P, p);
            trit_cpu_matrix_free(&pk);
            trit_ternary_free(&s);
        }
        cr_assert(memcmp(sum, ref, (size_t)(m * n_rows) * 4) == 0, "%d ranks: summed accumulators differ", P);
    }
    trit_free(q), trit_free(qs), trit_free(ref), trit_free(sum), trit_free(part);
    trit_ternary_free(&w);
}

/* The exact-mode sum of squares gives the same float whatever the split (rank counts, uneven and
 * random cuts), on values spread over 12 decades. */
Test(tp_plan, sum_of_squares_does_not_depend_on_the_split) {
    struct test_rng rng;
    test_rng_seed(&rng, 13);
    const int64_t n = 6912;
    float *x = trit_alloc((size_t)n * sizeof(float));
    double pairs[2 * 16];
    for (int trial = 0; trial < 20; trial++) {
        double exact = 0.0;
        for (int64_t i = 0; i < n; i++) {
            x[i] = test_rng_normal(&rng) * powf(10.0f, test_rng_uniform(&rng, -6.0f, 6.0f));
            exact += (double)x[i] * (double)x[i];
        }
        trit_tp_sumsq_partial(x, n, pairs);
        const float one = trit_tp_sumsq_combine(pairs, 1);
        cr_assert(fabs((double)one - exact) <= 1e-6 * exact, "sum %g vs %g", (double)one, exact);
        for (int P = 2; P <= 16; P++) {
            int64_t cut[17];
            cut[0] = 0, cut[P] = n;
            for (int p = 1; p < P; p++) /* balanced for even trials, random (sorted) cuts for odd ones */
                cut[p] = trial % 2 == 0 ? p * (n / P) : test_rng_int(&rng, cut[p - 1], n);
            for (int p = 0; p < P; p++) trit_tp_sumsq_partial(x + cut[p], cut[p + 1] - cut[p], pairs + 2 * p);
            const float split = trit_tp_sumsq_combine(pairs, P);
            cr_assert(memcmp(&split, &one, sizeof one) == 0, "trial %d, %d parts: %.9g vs %.9g", trial, P, (double)split,
                      (double)one);
        }
    }
    trit_free(x);
}

/* --tp N without --tp-mpi asks for N GPUs in this process: a clear error on a machine without them. */
Test(tp_plan, context_tp_without_gpus_is_a_clear_error) {
    if (trit_cuda_device_count() >= 2) cr_skip_test("this machine has GPUs; the error path is not reachable");
    struct trit_hparams hp = tp_test_hparams(TRIT_FAMILY_LLAMA);
    struct tp_test_model t;
    cr_assert_eq(tp_test_model_build(&hp, 1, &t), TRIT_OK, "%s", trit_last_error());
    struct trit_context_params cp = trit_context_default_params();
    cp.n_ctx = 16;
    cp.tp_size = 2;
    trit_context *ctx = NULL;
    cr_assert_eq(trit_context_init(&t.m, &cp, &ctx), TRIT_ERR_NO_DEVICE);
    cr_assert_null(ctx);
    cr_expect(strstr(trit_last_error(), "--tp 2") && strstr(trit_last_error(), "CUDA devices") &&
                  strstr(trit_last_error(), "--tp-mpi"),
              "message: %s", trit_last_error());
    cp.tp_size = 0;
    cp.tp_quant = (enum trit_tp_quant)7;
    cr_assert_eq(trit_context_init(&t.m, &cp, &ctx), TRIT_ERR_INVALID_ARG);
    tp_test_model_free(&t);
}

/* GPU tensor parallelism asked of a process without GPUs (or of a build without CUDA or NCCL)
 * says why; --tp N with --device cpu points at --tp-mpi. */
Test(tp_plan, gpu_tp_without_gpus_is_a_clear_error) {
    if (trit_cuda_device_count() > 0) cr_skip_test("this machine has GPUs; the error paths are not reachable");
    struct trit_hparams hp = tp_test_hparams(TRIT_FAMILY_LLAMA);
    struct tp_test_model t;
    cr_assert_eq(tp_test_model_build(&hp, 1, &t), TRIT_OK, "%s", trit_last_error());
    struct trit_context_params cp = trit_context_default_params();
    cp.n_ctx = 16;
    cp.tp_size = 2;
    cp.device = TRIT_DEVICE_CPU;
    trit_context *ctx = NULL;
    cr_assert_eq(trit_context_init(&t.m, &cp, &ctx), TRIT_ERR_INVALID_ARG);
    cr_expect(strstr(trit_last_error(), "--tp-mpi"), "message: %s", trit_last_error());
    cp.tp_size = 0;
    cp.tp_mpi = true;
    cp.device = TRIT_DEVICE_CUDA;
    const enum trit_status st = trit_context_init(&t.m, &cp, &ctx);
    cr_assert(st == TRIT_ERR_NO_DEVICE || st == TRIT_ERR_UNSUPPORTED, "status %d: %s", (int)st, trit_last_error());
    cr_expect(strstr(trit_last_error(), "CUDA") || strstr(trit_last_error(), "NCCL"), "message: %s", trit_last_error());
    cr_assert_null(ctx);
    tp_test_model_free(&t);
}
