// labels: unit
// cpu families: each
/*
 * test_cpu_gemm.c: the CPU ternary matmul kernels (cpu/kernels.h) against the scalar reference
 * trit_gemm_ref, bit for bit on the int32 accumulators and on the fp32 epilogue, for every kernel
 * family this machine can run (scalar, avx2, avx512, neon...), random shapes with tails, several
 * token counts and thread counts. Also the packed layout itself and CPU feature selection.
 *
 *   ctest --test-dir build -R test_cpu_gemm --output-on-failure
 *   TRIT_TEST_SEED=123 build/tests/test_cpu_gemm      (replay a failure)
 */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "core/cpu_features.h"
#include "core/threadpool.h"
#include "cpu/cpu.h"
#include "cpu/kernels.h"
#include "quant/quant.h"
#include "support.h"

/* Outputs carry GUARD poisoned elements past their end, checked after every call. */
#define GUARD 16

static void random_ternary(struct test_rng *rng, struct trit_ternary *w, int64_t n_rows, int64_t n_cols) {
    cr_assert_eq(trit_ternary_init(w, n_rows, n_cols), TRIT_OK);
    for (int64_t r = 0; r < n_rows; r++)
        for (int64_t c = 0; c < n_cols; c++) trit_ternary_set(w, r, c, (int)test_rng_int(rng, -1, 1));
    w->scale = test_rng_uniform(rng, 0.01f, 2.0f);
}

/* Random int8 with both extremes planted: q[0] = -128, q[last] = 127, and a few more of each. */
static void random_q(struct test_rng *rng, int8_t *q, int64_t n) {
    for (int64_t i = 0; i < n; i++) q[i] = (int8_t)test_rng_int(rng, -128, 127);
    for (int64_t i = 0; i < n / 16; i++) q[test_rng_int(rng, 0, n - 1)] = test_rng_int(rng, 0, 1) ? 127 : -128;
    q[0] = -128;
    q[n - 1] = 127;
}

static void expect_guard(const void *buf, size_t n_bytes, const char *what) {
    unsigned char poison[GUARD * sizeof(int32_t)];
    test_poison(poison, sizeof poison);
    cr_expect(memcmp((const unsigned char *)buf + n_bytes, poison, sizeof poison) == 0,
              "%s: a kernel wrote past the end of its output", what);
}

/* The kernel families to test: every one this machine can run. */
static int supported_isas(enum trit_cpu_isa *out) {
    int n = 0;
    for (int i = 0; i < TRIT_CPU_ISA_COUNT; i++)
        if (trit_cpu_isa_supported((enum trit_cpu_isa)i)) out[n++] = (enum trit_cpu_isa)i;
    return n;
}

/* One shape: for every family and thread count, trit_cpu_gemm_i32 == trit_gemm_ref. */
static void check_shape(struct test_rng *rng, struct trit_pool **pools, int n_pools, int64_t n_rows,
                        int64_t n_cols, int64_t m) {
    struct trit_ternary w;
    random_ternary(rng, &w, n_rows, n_cols);
    /* the caller's buffers at addresses no vector width divides: kernels must not assume alignment */
    int8_t *q = test_alloc_offset((size_t)(m * n_cols), 1);
    random_q(rng, q, m * n_cols);
    size_t n_out = (size_t)(m * n_rows);
    int32_t *ref = trit_alloc(n_out * sizeof(int32_t));
    int32_t *acc = test_alloc_offset((n_out + GUARD) * sizeof(int32_t), 4);
    trit_gemm_ref(&w, q, m, ref);

    enum trit_cpu_isa isas[TRIT_CPU_ISA_COUNT];
    int n_isa = supported_isas(isas);
    for (int i = 0; i < n_isa; i++) {
        struct trit_cpu_matrix pm;
        cr_assert_eq(trit_cpu_matrix_pack_isa(&w, isas[i], &pm), TRIT_OK, "%s", trit_last_error());
        for (int p = 0; p < n_pools; p++) {
            test_poison(acc, (n_out + GUARD) * sizeof(int32_t));
            cr_assert_eq(trit_cpu_gemm_i32(pools[p], &pm, q, m, acc), TRIT_OK);
            for (size_t e = 0; e < n_out; e++)
                cr_assert_eq(acc[e], ref[e], "%s, %d threads, %lld x %lld, m %lld: token %lld row %lld: %d != ref %d",
                             trit_cpu_isa_name(isas[i]), trit_pool_n_threads(pools[p]), (long long)n_rows,
                             (long long)n_cols, (long long)m, (long long)(e / (size_t)n_rows),
                             (long long)(e % (size_t)n_rows), acc[e], ref[e]);
            expect_guard(acc, n_out * sizeof(int32_t), trit_cpu_isa_name(isas[i]));
        }
        trit_cpu_matrix_free(&pm);
    }
    test_free_offset(acc, 4);
    trit_free(ref);
    test_free_offset(q, 1);
    trit_ternary_free(&w);
}

static int n_pools_made;
static struct trit_pool *pools_made[3];

static void make_pools(void) {
    const int threads[] = {1, 2, 3};
    n_pools_made = 3;
    for (int i = 0; i < 3; i++) cr_assert_eq(trit_pool_create(threads[i], &pools_made[i]), TRIT_OK);
}
static void free_pools(void) {
    for (int i = 0; i < n_pools_made; i++) trit_pool_free(pools_made[i]);
}

TestSuite(cpu_gemm, .init = make_pools, .fini = free_pools);

/* ---- bit-exact integer results -------------------------------------------------------------- */

Test(cpu_gemm, every_family_matches_ref_on_tails) {
    struct test_rng rng;
    test_rng_seed(&rng, 0xc9e1);
    const int64_t cols[] = {1, 3, 31, 63, 64, 65, 127, 129, 255, 256, 257, 2560, 6912};
    /* 8+: AMX where available (two 16-token tiles a block, partial tiles, several blocks) */
    const int64_t ms[] = {1, 2, 3, 5, 8, 16, 17, 33, 50};
    for (size_t c = 0; c < sizeof cols / sizeof cols[0]; c++)
        for (size_t i = 0; i < sizeof ms / sizeof ms[0]; i++) {
            int64_t n_rows = 2 * test_rng_int(&rng, 0, cols[c] > 1000 ? 12 : 40) + 1; /* odd */
            check_shape(&rng, pools_made, n_pools_made, n_rows, cols[c], ms[i]);
        }
}

/* Enough rows for several chunks per thread (chunks are <= 64 row groups, or ~192 KB when m > 4). */
Test(cpu_gemm, many_row_groups_and_chunks) {
    struct test_rng rng;
    test_rng_seed(&rng, 0x51ab);
    check_shape(&rng, pools_made, n_pools_made, 2053, 640, 1);
    check_shape(&rng, pools_made, n_pools_made, 4097, 64, 3);
    check_shape(&rng, pools_made, n_pools_made, 1031, 2560, 9);
    check_shape(&rng, pools_made, n_pools_made, 1, 2560, 17); /* fewer row groups than threads */
}

/* The largest per-lane and int16 partial sums: every weight +1 (or -1) and every q = -128 or 127.
 * AVX2 adds 16 vpmaddubsw results in int16 before widening: 16 * 2 * 2 * 128 = 8192, exact. */
Test(cpu_gemm, extreme_values_do_not_saturate) {
    const int64_t n_rows = 5, n_cols = 6912 + 129, m = 2;
    struct trit_ternary w;
    cr_assert_eq(trit_ternary_init(&w, n_rows, n_cols), TRIT_OK);
    for (int64_t r = 0; r < n_rows; r++)
        for (int64_t c = 0; c < n_cols; c++) trit_ternary_set(&w, r, c, r % 2 ? 1 : -1);
    int8_t *q = trit_alloc((size_t)(m * n_cols));
    for (int64_t c = 0; c < n_cols; c++) {
        q[c] = -128;
        q[n_cols + c] = 127;
    }
    int32_t ref[10], acc[10];
    trit_gemm_ref(&w, q, m, ref);
    cr_assert_eq(ref[1], -128 * (int32_t)n_cols);
    enum trit_cpu_isa isas[TRIT_CPU_ISA_COUNT];
    int n_isa = supported_isas(isas);
    for (int i = 0; i < n_isa; i++) {
        struct trit_cpu_matrix pm;
        cr_assert_eq(trit_cpu_matrix_pack_isa(&w, isas[i], &pm), TRIT_OK);
        test_poison(acc, sizeof acc);
        cr_assert_eq(trit_cpu_gemm_i32(pools_made[1], &pm, q, m, acc), TRIT_OK);
        for (int e = 0; e < 10; e++) cr_assert_eq(acc[e], ref[e], "%s: element %d", trit_cpu_isa_name(isas[i]), e);
        trit_cpu_matrix_free(&pm);
    }
    trit_free(q);
    trit_ternary_free(&w);
}

/* ---- fp32 epilogues ------------------------------------------------------------------------- */

Test(cpu_gemm, f32_epilogues_match_ref_bit_for_bit) {
    struct test_rng rng;
    test_rng_seed(&rng, 0xf32e);
    const int64_t n_rows = 77, n_cols = 2560 + 33, m = 6;
    int8_t *q = trit_alloc((size_t)(m * n_cols));
    float s[6];
    float *x = trit_alloc((size_t)n_cols * sizeof(float));
    for (int64_t t = 0; t < m; t++) { /* real activation scales from real quantization */
        for (int64_t c = 0; c < n_cols; c++) x[c] = test_rng_normal(&rng) * (float)(t + 1);
        s[t] = trit_quantize_row_i8(x, n_cols, q + t * n_cols);
    }
    size_t n_out = (size_t)(m * n_rows);
    int32_t *acc = trit_alloc(n_out * sizeof(int32_t));
    float *ref = trit_alloc(n_out * sizeof(float));
    float *y = trit_alloc((n_out + GUARD) * sizeof(float));
    float *base = trit_alloc(n_out * sizeof(float));
    const enum trit_scale_kind kinds[] = {TRIT_SCALE_MUL, TRIT_SCALE_DIV};
    enum trit_cpu_isa isas[TRIT_CPU_ISA_COUNT];
    int n_isa = supported_isas(isas);
    for (int k = 0; k < 2; k++) {
        struct trit_ternary w;
        random_ternary(&rng, &w, n_rows, n_cols);
        w.scale_kind = kinds[k];
        trit_gemm_ref(&w, q, m, acc);
        trit_epilogue_ref(acc, m, n_rows, s, w.scale, w.scale_kind, ref);
        for (int i = 0; i < n_isa; i++) {
            struct trit_cpu_matrix pm;
            cr_assert_eq(trit_cpu_matrix_pack_isa(&w, isas[i], &pm), TRIT_OK);
            test_poison(y, (n_out + GUARD) * sizeof(float));
            cr_assert_eq(trit_cpu_gemm_f32(pools_made[2], &pm, q, m, s, y), TRIT_OK);
            cr_assert(memcmp(y, ref, n_out * sizeof(float)) == 0, "%s kind %d: f32 differs from the reference",
                      trit_cpu_isa_name(isas[i]), k);
            expect_guard(y, n_out * sizeof(float), "f32");
            /* y += epilogue: one fp32 add onto whatever y held */
            for (size_t e = 0; e < n_out; e++) base[e] = y[e] = test_rng_normal(&rng);
            cr_assert_eq(trit_cpu_gemm_f32_add(pools_made[1], &pm, q, m, s, y), TRIT_OK);
            for (size_t e = 0; e < n_out; e++) {
                float want = base[e] + ref[e];
                cr_assert(memcmp(&y[e], &want, sizeof want) == 0, "%s kind %d: f32_add element %zu",
                          trit_cpu_isa_name(isas[i]), k, e);
            }
            trit_cpu_matrix_free(&pm);
        }
        trit_ternary_free(&w);
    }
    trit_free(base);
    trit_free(y);
    trit_free(ref);
    trit_free(acc);
    trit_free(x);
    trit_free(q);
}

/* Q, K, V-like matrices sharing one activation: one call equals three. m = 5 (register kernels)
 * and m = 21 (AMX where available). */
static void check_multi(int64_t m) {
    struct test_rng rng;
    test_rng_seed(&rng, 0x3a7 + (uint64_t)m);
    const int64_t n_cols = 640 + 5;
    const int64_t rows[3] = {257, 63, 63};
    int8_t *q = trit_alloc((size_t)(m * n_cols));
    random_q(&rng, q, m * n_cols);
    float s[32];
    for (int64_t t = 0; t < m; t++) s[t] = test_rng_uniform(&rng, 0.01f, 100.0f);
    struct trit_ternary w[3];
    struct trit_cpu_matrix pm[3];
    float *y[3], *ref[3];
    for (int i = 0; i < 3; i++) {
        random_ternary(&rng, &w[i], rows[i], n_cols);
        w[i].scale_kind = i == 1 ? TRIT_SCALE_DIV : TRIT_SCALE_MUL;
        cr_assert_eq(trit_cpu_matrix_pack(&w[i], &pm[i]), TRIT_OK, "%s", trit_last_error());
        size_t n_out = (size_t)(m * rows[i]);
        y[i] = trit_alloc((n_out + GUARD) * sizeof(float));
        ref[i] = trit_alloc(n_out * sizeof(float));
        int32_t *acc = trit_alloc(n_out * sizeof(int32_t));
        trit_gemm_ref(&w[i], q, m, acc);
        trit_epilogue_ref(acc, m, rows[i], s, w[i].scale, w[i].scale_kind, ref[i]);
        trit_free(acc);
    }
    const struct trit_cpu_matrix *ws[3] = {&pm[0], &pm[1], &pm[2]};
    for (int p = 0; p < n_pools_made; p++) {
        for (int i = 0; i < 3; i++) test_poison(y[i], ((size_t)(m * rows[i]) + GUARD) * sizeof(float));
        cr_assert_eq(trit_cpu_gemm_f32_multi(pools_made[p], 3, ws, q, m, s, y), TRIT_OK);
        for (int i = 0; i < 3; i++) {
            size_t n_out = (size_t)(m * rows[i]);
            cr_assert(memcmp(y[i], ref[i], n_out * sizeof(float)) == 0, "multi: matrix %d, %d threads", i,
                      trit_pool_n_threads(pools_made[p]));
            expect_guard(y[i], n_out * sizeof(float), "multi");
        }
    }
    struct trit_cpu_matrix odd;
    struct trit_ternary w4;
    random_ternary(&rng, &w4, 3, n_cols + 1);
    cr_assert_eq(trit_cpu_matrix_pack(&w4, &odd), TRIT_OK);
    const struct trit_cpu_matrix *bad[2] = {&pm[0], &odd};
    cr_expect_eq(trit_cpu_gemm_f32_multi(NULL, 2, bad, q, m, s, y), TRIT_ERR_INVALID_ARG);
    trit_cpu_matrix_free(&odd);
    trit_ternary_free(&w4);
    for (int i = 0; i < 3; i++) {
        trit_free(y[i]);
        trit_free(ref[i]);
        trit_cpu_matrix_free(&pm[i]);
        trit_ternary_free(&w[i]);
    }
    trit_free(q);
}

Test(cpu_gemm, multi_matches_separate_calls) {
    check_multi(5);
    check_multi(21);
}

/* ---- the group rule: group scales and activations quantized per block --------------------------- */

/* A group-scaled matrix with codes -1, 0, +1 and (rarely) +2, and scales of both signs' worth of
 * magnitudes; or (group 0) one MUL or DIV scale with block activations. */
static void random_grouped(struct test_rng *rng, struct trit_ternary *w, int64_t n_rows, int64_t n_cols, int64_t group) {
    if (group == 0) {
        random_ternary(rng, w, n_rows, n_cols);
        w->scale_kind = test_rng_int(rng, 0, 1) ? TRIT_SCALE_DIV : TRIT_SCALE_MUL;
        return;
    }
    cr_assert_eq(trit_ternary_init_grouped(w, n_rows, n_cols, group), TRIT_OK);
    for (int64_t r = 0; r < n_rows; r++)
        for (int64_t c = 0; c < n_cols; c++) {
            const int64_t u = test_rng_int(rng, 0, 63);
            trit_ternary_set(w, r, c, u == 0 ? 2 : (int)(u % 3) - 1);
        }
    for (int64_t i = 0; i < n_rows * trit_ternary_n_groups(w); i++) w->group_scales[i] = test_rng_uniform(rng, 1e-3f, 0.5f);
}

/* trit_cpu_gemm_f32 and _add against trit_gemm_group_ref, bit for bit, every family and pool. */
static void check_group(struct test_rng *rng, int64_t n_rows, int64_t n_cols, int64_t m, int64_t group, int64_t act_block) {
    struct trit_ternary w;
    random_grouped(rng, &w, n_rows, n_cols, group);
    const int64_t n_ab = act_block ? trit_div_ceil(n_cols, 64) : 1;
    int8_t *q = test_alloc_offset((size_t)(m * n_cols), 1);
    random_q(rng, q, m * n_cols);
    float *s = trit_alloc((size_t)(m * n_ab) * sizeof(float));
    for (int64_t i = 0; i < m * n_ab; i++) s[i] = test_rng_uniform(rng, 0.01f, 100.0f);
    const size_t n_out = (size_t)(m * n_rows);
    float *ref = trit_alloc(n_out * sizeof(float)), *base = trit_alloc(n_out * sizeof(float));
    float *y = test_alloc_offset((n_out + GUARD) * sizeof(float), 4);
    trit_gemm_group_ref(&w, q, m, s, act_block, ref);
    for (size_t e = 0; e < n_out; e++) base[e] = test_rng_uniform(rng, -1.0f, 1.0f);

    enum trit_cpu_isa isas[TRIT_CPU_ISA_COUNT];
    const int n_isa = supported_isas(isas);
    for (int i = 0; i < n_isa; i++) {
        struct trit_cpu_matrix pm;
        cr_assert_eq(trit_cpu_matrix_pack_isa(&w, isas[i], &pm), TRIT_OK, "%s", trit_last_error());
        pm.act_block = act_block;
        for (int p = 0; p < n_pools_made; p++) {
            test_poison(y, (n_out + GUARD) * sizeof(float));
            cr_assert_eq(trit_cpu_gemm_f32(pools_made[p], &pm, q, m, s, y), TRIT_OK, "%s", trit_last_error());
            for (size_t e = 0; e < n_out; e++)
                cr_assert(memcmp(&y[e], &ref[e], sizeof(float)) == 0,
                          "%s, %d threads, %lld x %lld, m %lld, group %lld, act block %lld: token %lld row %lld: %.9g != ref %.9g",
                          trit_cpu_isa_name(isas[i]), trit_pool_n_threads(pools_made[p]), (long long)n_rows,
                          (long long)n_cols, (long long)m, (long long)group, (long long)act_block,
                          (long long)(e / (size_t)n_rows), (long long)(e % (size_t)n_rows), (double)y[e], (double)ref[e]);
            expect_guard(y, n_out * sizeof(float), trit_cpu_isa_name(isas[i]));
            /* _add: y + the product, rounded once */
            memcpy(y, base, n_out * sizeof(float));
            cr_assert_eq(trit_cpu_gemm_f32_add(pools_made[p], &pm, q, m, s, y), TRIT_OK);
            for (size_t e = 0; e < n_out; e++) {
                const float want = base[e] + ref[e];
                cr_assert(memcmp(&y[e], &want, sizeof(float)) == 0, "%s add: element %zu", trit_cpu_isa_name(isas[i]), e);
            }
        }
        int32_t acc[1];
        cr_expect_eq(trit_cpu_gemm_i32(NULL, &pm, q, 1, acc), TRIT_ERR_UNSUPPORTED);
        trit_cpu_matrix_free(&pm);
    }
    test_free_offset(y, 4);
    trit_free(base);
    trit_free(ref);
    trit_free(s);
    test_free_offset(q, 1);
    trit_ternary_free(&w);
}

Test(cpu_gemm, group_rule_matches_ref) {
    struct test_rng rng;
    test_rng_seed(&rng, 0x6a0c);
    const int64_t ms[] = {1, 2, 4, 5, 9, 33};
    for (size_t i = 0; i < sizeof ms / sizeof ms[0]; i++) {
        check_group(&rng, 2 * test_rng_int(&rng, 0, 40) + 1, 128, ms[i], 64, 64);   /* Q2_0 g64, Bonsai activations */
        check_group(&rng, 2 * test_rng_int(&rng, 0, 40) + 1, 384, ms[i], 128, 64);  /* g128 */
        check_group(&rng, 2 * test_rng_int(&rng, 0, 40) + 1, 256, ms[i], 128, 0);   /* group scales, per-token activations */
        check_group(&rng, 2 * test_rng_int(&rng, 0, 40) + 1, 200, ms[i], 0, 64);    /* one scale, block activations, tail */
        check_group(&rng, 2 * test_rng_int(&rng, 0, 40) + 1, 320, ms[i], 64, 64);
    }
    check_group(&rng, 1031, 2560, 1, 128, 64); /* several chunks per thread */
    check_group(&rng, 517, 640, 17, 64, 64);
}

/* The group rule worked by hand: 2 rows, 128 columns (two k-blocks, groups of 64), one token whose
 * two blocks have scales 2 and 4. */
Test(cpu_gemm, group_rule_by_hand) {
    struct trit_ternary w;
    cr_assert_eq(trit_ternary_init_grouped(&w, 2, 128, 64), TRIT_OK);
    int8_t q[128] = {0};
    q[0] = 10, q[1] = -3, q[64] = 7, q[127] = 100;
    trit_ternary_set(&w, 0, 0, 1), trit_ternary_set(&w, 0, 1, 2), trit_ternary_set(&w, 0, 64, -1);
    trit_ternary_set(&w, 1, 0, -1), trit_ternary_set(&w, 1, 127, 2);
    w.group_scales[0] = 0.5f, w.group_scales[1] = 3.0f, w.group_scales[2] = 0.25f, w.group_scales[3] = 1.0f;
    const float s[2] = {2.0f, 4.0f};
    float y[2];
    trit_gemm_group_ref(&w, q, 1, s, 64, y);
    /* row 0: block 0: 10 + 2 * -3 = 4 -> 4 / 2 * 0.5 = 1; block 1: -7 -> -7 / 4 * 3 = -5.25 */
    cr_expect_eq(y[0], 1.0f - 5.25f);
    /* row 1: block 0: -10 -> -10 / 2 * 0.25 = -1.25; block 1: 200 -> 200 / 4 * 1 = 50 */
    cr_expect_eq(y[1], -1.25f + 50.0f);
    struct trit_cpu_matrix pm;
    cr_assert_eq(trit_cpu_matrix_pack_isa(&w, TRIT_CPU_ISA_SCALAR, &pm), TRIT_OK, "%s", trit_last_error());
    pm.act_block = 64;
    float z[2];
    cr_assert_eq(trit_cpu_gemm_f32(NULL, &pm, q, 1, s, z), TRIT_OK);
    cr_expect_eq(z[0], y[0]);
    cr_expect_eq(z[1], y[1]);
    pm.act_block = 32;
    cr_expect_eq(trit_cpu_gemm_f32(NULL, &pm, q, 1, s, z), TRIT_ERR_INVALID_ARG);
    trit_cpu_matrix_free(&pm);
    trit_ternary_free(&w);
}

/* ---- packed layout and arguments ------------------------------------------------------------ */

/* The layout documented in kernels.h, re-derived element by element. */
Test(cpu_gemm, packed_layout_is_as_documented) {
    struct test_rng rng;
    test_rng_seed(&rng, 0x1a70);
    const int64_t n_rows = 19, n_cols = 70;
    struct trit_ternary w;
    random_ternary(&rng, &w, n_rows, n_cols);
    struct trit_cpu_matrix pm;
    cr_assert_eq(trit_cpu_matrix_pack_isa(&w, TRIT_CPU_ISA_SCALAR, &pm), TRIT_OK);
    cr_assert_eq(pm.n_kb, 2);
    cr_assert_eq(pm.n_rg, 2);
    cr_assert_eq(trit_cpu_matrix_bytes(&pm), 2 * 2 * 256);
    for (int64_t row = 0; row < 32; row++)
        for (int64_t col = 0; col < 128; col++) {
            int64_t rg = row / 16, n = row % 16, kb = col / 64, v = (col % 64) / 16, j = (col % 16) / 4, i = col % 4;
            unsigned byte = pm.packed[(rg * pm.n_kb + kb) * 256 + 64 * v + 4 * n + i];
            unsigned code = (byte >> (2 * j)) & 3u;
            unsigned want = row < n_rows && col < n_cols ? (unsigned)(trit_ternary_get(&w, row, col) + 1) : 0u;
            cr_assert_eq(code, want, "row %lld col %lld", (long long)row, (long long)col);
        }
    cr_expect_eq(pm.scale, w.scale);
    cr_expect_eq(pm.scale_kind, w.scale_kind);
    trit_cpu_matrix_free(&pm);
    cr_expect_null(pm.packed);
    trit_cpu_matrix_free(&pm); /* twice is fine */
    trit_cpu_matrix_free(NULL);

    w.codes[3 * w.row_bytes + 10] |= 0x0C; /* code 3 at column 41 */
    cr_expect_eq(trit_cpu_matrix_pack_isa(&w, TRIT_CPU_ISA_SCALAR, &pm), TRIT_ERR_FORMAT);
    cr_expect_null(pm.packed);
    trit_ternary_free(&w);
}

Test(cpu_gemm, bad_arguments) {
    struct trit_ternary w;
    cr_assert_eq(trit_ternary_init(&w, 3, 10), TRIT_OK);
    struct trit_cpu_matrix pm;
    cr_expect_eq(trit_cpu_matrix_pack(NULL, &pm), TRIT_ERR_INVALID_ARG);
    cr_expect_eq(trit_cpu_matrix_pack(&w, NULL), TRIT_ERR_INVALID_ARG);
    cr_expect_eq(trit_cpu_matrix_pack_isa(&w, (enum trit_cpu_isa)99, &pm), TRIT_ERR_UNSUPPORTED);
    cr_assert_eq(trit_cpu_matrix_pack(&w, &pm), TRIT_OK);
    int8_t q[10] = {0};
    int32_t acc[3];
    cr_expect_eq(trit_cpu_gemm_i32(NULL, NULL, q, 1, acc), TRIT_ERR_INVALID_ARG);
    cr_expect_eq(trit_cpu_gemm_i32(NULL, &pm, q, -1, acc), TRIT_ERR_INVALID_ARG);
    cr_expect_eq(trit_cpu_gemm_i32(NULL, &pm, NULL, 1, acc), TRIT_ERR_INVALID_ARG);
    cr_expect_eq(trit_cpu_gemm_i32(NULL, &pm, q, 0, NULL), TRIT_OK); /* m = 0: nothing to do */
    cr_expect_eq(trit_cpu_gemm_f32(NULL, &pm, q, 1, NULL, (float *)acc), TRIT_ERR_INVALID_ARG);
    trit_cpu_matrix_free(&pm);
    trit_ternary_free(&w);
}

/* ---- CPU features and TRIT_CPU ---------------------------------------------------------------- */

Test(cpu_gemm, isa_names_and_selection) {
    for (int i = 0; i < TRIT_CPU_ISA_COUNT; i++) {
        enum trit_cpu_isa isa;
        cr_assert_eq(trit_cpu_isa_parse(trit_cpu_isa_name((enum trit_cpu_isa)i), &isa), TRIT_OK);
        cr_assert_eq((int)isa, i);
    }
    enum trit_cpu_isa isa = TRIT_CPU_ISA_COUNT;
    cr_expect_eq(trit_cpu_isa_parse("sse9", &isa), TRIT_ERR_INVALID_ARG);
    cr_expect(trit_cpu_isa_supported(TRIT_CPU_ISA_SCALAR));
    cr_expect(trit_cpu_isa_supported(trit_cpu_isa_best()));

    const struct trit_cpu_features *f = trit_cpu_features_get();
    cr_expect(!f->avx512bw || f->avx512f);
    cr_expect(!trit_cpu_isa_supported(TRIT_CPU_ISA_AVX512_VNNI) || (f->avx512f && f->avx512_vnni));
    cr_log_info("best CPU kernel family: %s (avx2 %d avx512f %d bw %d vl %d vnni %d avx_vnni %d vpopcntdq %d "
                "neon %d dotprod %d)", trit_cpu_isa_name(trit_cpu_isa_best()), f->avx2, f->avx512f,
                f->avx512bw, f->avx512vl, f->avx512_vnni, f->avx_vnni, f->avx512_vpopcntdq, f->neon, f->dotprod);

    /* TRIT_CPU forces a family; a family this machine cannot run is an error, not a fallback. */
    setenv("TRIT_CPU", "scalar", 1);
    cr_expect_eq(trit_cpu_isa_select(&isa), TRIT_OK);
    cr_expect_eq(isa, TRIT_CPU_ISA_SCALAR);
    setenv("TRIT_CPU", "nonsense", 1);
    cr_expect_eq(trit_cpu_isa_select(&isa), TRIT_ERR_INVALID_ARG);
    for (int i = 0; i < TRIT_CPU_ISA_COUNT; i++) {
        if (trit_cpu_isa_supported((enum trit_cpu_isa)i)) continue;
        setenv("TRIT_CPU", trit_cpu_isa_name((enum trit_cpu_isa)i), 1);
        cr_expect_eq(trit_cpu_isa_select(&isa), TRIT_ERR_UNSUPPORTED, "%s", trit_cpu_isa_name((enum trit_cpu_isa)i));
    }
    unsetenv("TRIT_CPU");
    cr_expect_eq(trit_cpu_isa_select(&isa), TRIT_OK);
    cr_expect_eq(isa, trit_cpu_isa_best());
}
