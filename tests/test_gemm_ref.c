// labels: unit
/*
 * test_gemm_ref.c: the scalar reference of the ternary matmul (cpu/cpu.h) against a naive
 * multiply-and-add int64 loop on random data, a hand-computed GEMV, the fp32 epilogue for both
 * scale kinds, and the whole chain (quantize, GEMM, epilogue) against the float matmul.
 *
 *   ctest --test-dir build -R test_gemm_ref --output-on-failure
 */
#include <criterion/criterion.h>
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "cpu/cpu.h"
#include "quant/quant.h"
#include "support.h"

/* acc[i][j] = sum_c t[j][c] * q[i][c], multiplied out in int64: a different computation from the
 * reference's conditional adds. */
static int64_t naive_dot(const struct trit_ternary *w, const int8_t *q, int64_t j) {
    int64_t s = 0;
    for (int64_t c = 0; c < w->n_cols; c++) s += (int64_t)trit_ternary_get(w, j, c) * (int64_t)q[c];
    return s;
}

Test(gemm_ref, hand_computed_gemv) {
    /* W = [[1, 0, -1], [-1, 1, 1]], q = [5, -7, 3]: acc = [5 - 3, -5 - 7 + 3] = [2, -9]. */
    struct trit_ternary w;
    cr_assert_eq(trit_ternary_init(&w, 2, 3), TRIT_OK);
    const int t[6] = {1, 0, -1, -1, 1, 1};
    for (int i = 0; i < 6; i++) trit_ternary_set(&w, i / 3, i % 3, t[i]);
    const int8_t q[3] = {5, -7, 3};
    int32_t acc[2];
    test_poison(acc, sizeof acc);
    trit_gemv_ref(&w, q, acc);
    cr_expect_eq(acc[0], 2);
    cr_expect_eq(acc[1], -9);
    trit_ternary_free(&w);
}

Test(gemm_ref, random_against_naive) {
    struct test_rng rng;
    test_rng_seed(&rng, 0x6e33);
    const int64_t ms[] = {1, 2, 7};
    const int64_t ns[] = {1, 3, 17, 33};
    const int64_t ks[] = {1, 5, 127, 255, 301};
    for (size_t a = 0; a < sizeof ms / sizeof ms[0]; a++)
        for (size_t b = 0; b < sizeof ns / sizeof ns[0]; b++)
            for (size_t c = 0; c < sizeof ks / sizeof ks[0]; c++) {
                int64_t m = ms[a], n = ns[b], k = ks[c];
                struct trit_ternary w;
                cr_assert_eq(trit_ternary_init(&w, n, k), TRIT_OK);
                for (int64_t j = 0; j < n; j++)
                    for (int64_t e = 0; e < k; e++) trit_ternary_set(&w, j, e, (int)test_rng_int(&rng, -1, 1));
                int8_t *q = trit_alloc((size_t)(m * k));
                for (int64_t e = 0; e < m * k; e++) q[e] = (int8_t)test_rng_int(&rng, -128, 127);
                q[0] = (int8_t)(q[0] | 1); /* never all zeros */
                int32_t *acc = trit_alloc((size_t)(m * n) * sizeof *acc);
                test_poison(acc, (size_t)(m * n) * sizeof *acc);
                trit_gemm_ref(&w, q, m, acc);
                for (int64_t i = 0; i < m; i++)
                    for (int64_t j = 0; j < n; j++)
                        cr_assert_eq((int64_t)acc[i * n + j], naive_dot(&w, q + i * k, j),
                                     "m %lld n %lld k %lld: acc[%lld][%lld]", (long long)m, (long long)n, (long long)k,
                                     (long long)i, (long long)j);
                if (m == 1) {
                    int32_t *acc1 = trit_alloc((size_t)n * sizeof *acc1);
                    test_poison(acc1, (size_t)n * sizeof *acc1);
                    trit_gemv_ref(&w, q, acc1);
                    cr_assert_eq(memcmp(acc1, acc, (size_t)n * sizeof *acc1), 0);
                    trit_free(acc1);
                }
                trit_free(acc);
                trit_free(q);
                trit_ternary_free(&w);
            }
}

/* The extremes: every weight +1 or -1 against q = -128 gives |acc| = 128 k. */
Test(gemm_ref, extremes) {
    const int64_t k = 6912; /* 2B-4T down_proj K */
    struct trit_ternary w;
    cr_assert_eq(trit_ternary_init(&w, 2, k), TRIT_OK);
    for (int64_t e = 0; e < k; e++) {
        trit_ternary_set(&w, 0, e, 1);
        trit_ternary_set(&w, 1, e, -1);
    }
    int8_t *q = trit_alloc((size_t)k);
    memset(q, 0x80, (size_t)k); /* -128 */
    int32_t acc[2];
    trit_gemv_ref(&w, q, acc);
    cr_expect_eq(acc[0], -128 * 6912);
    cr_expect_eq(acc[1], 128 * 6912);
    trit_free(q);
    trit_ternary_free(&w);
}

/* ---- epilogue --------------------------------------------------------------------------------- */

Test(epilogue, hand_computed_both_kinds) {
    /* Powers of two make every step exact:
     *   MUL, w_scale 0.25: (6 / 2) * 0.25 = 0.75, (-254 / 2) * 0.25 = -31.75, 0, (1 / 0.5) * 0.25 = 0.5
     *   DIV, w_scale 4:     6 / (2 * 4) = 0.75,  -254 / 8 = -31.75,          0,  1 / (0.5 * 4) = 0.5 */
    const int32_t acc[4] = {6, -254, 0, 1};
    const float s[2] = {2.0f, 0.5f};
    const float want[4] = {0.75f, -31.75f, 0.0f, 0.5f};
    float y[4];
    test_poison(y, sizeof y);
    trit_epilogue_ref(acc, 2, 2, s, 0.25f, TRIT_SCALE_MUL, y);
    for (int i = 0; i < 4; i++) cr_expect_eq(y[i], want[i], "MUL y[%d] = %g", i, (double)y[i]);
    test_poison(y, sizeof y);
    trit_epilogue_ref(acc, 2, 2, s, 4.0f, TRIT_SCALE_DIV, y);
    for (int i = 0; i < 4; i++) cr_expect_eq(y[i], want[i], "DIV y[%d] = %g", i, (double)y[i]);
}

/* Each kind is two fp32 operations on exact inputs (acc < 2^24 converts exactly), each with relative
 * error <= 2^-24, so the result is within (1 + 2^-24)^2 - 1 < 3 * 2^-24 of the exact value. */
#define EPILOGUE_REL_TOL (3.0 * 0x1p-24)

Test(epilogue, order_of_operations) {
    /* acc 100, s = 127 / 3, w_scale 0.3: exact y = 100 * 3 / 127 * 0.3 (MUL), 100 / (s * 0.3) (DIV). */
    const int32_t acc[3] = {100, -77777, 12345};
    const float s[1] = {127.0f / 3.0f};
    float y[3];
    for (int kind = 0; kind < 2; kind++) {
        const float ws = 0.3f;
        trit_epilogue_ref(acc, 1, 3, s, ws, (enum trit_scale_kind)kind, y);
        for (int j = 0; j < 3; j++) {
            double exact = kind == TRIT_SCALE_MUL ? (double)acc[j] / (double)s[0] * (double)ws
                                                  : (double)acc[j] / ((double)s[0] * (double)ws);
            cr_expect_leq(fabs((double)y[j] - exact), EPILOGUE_REL_TOL * fabs(exact), "kind %d, y[%d] = %.9g vs %.9g",
                          kind, j, (double)y[j], exact);
        }
    }
    /* The MUL order is (acc / s) * ws, one rounding per step, exactly as written in cpu.h. */
    trit_epilogue_ref(acc, 1, 3, s, 0.3f, TRIT_SCALE_MUL, y);
    for (int j = 0; j < 3; j++) {
        volatile float step = (float)acc[j] / s[0];
        cr_expect_eq(y[j], step * 0.3f);
    }
    trit_epilogue_ref(acc, 1, 3, s, 0.3f, TRIT_SCALE_DIV, y);
    for (int j = 0; j < 3; j++) {
        volatile float den = s[0] * 0.3f;
        cr_expect_eq(y[j], (float)acc[j] / den);
    }
}

/* ---- the chain -------------------------------------------------------------------------------- */

/* quantize -> GEMM -> epilogue against y = x . (t * alpha)^T in double. Per element q / s differs
 * from x by at most (0.5 + 127 * 2^-24) / s (rounding to an integer, after the fp32 rounding of
 * x * s, |x * s| <= 127), so |acc * alpha / s - exact| <= alpha * k * 0.5 / s * CHAIN_SLACK with
 * CHAIN_SLACK = 1 + 2 * 127 * 2^-24 < 1 + 2e-5; the epilogue adds its relative error on top. */
#define CHAIN_SLACK (1.0 + 2e-5)

Test(chain, quantize_gemm_epilogue) {
    struct test_rng rng;
    test_rng_seed(&rng, 0xc4a1);
    const int64_t m = 3, n = 5, k = 257;
    float *wf = trit_alloc((size_t)(n * k) * sizeof *wf), *x = trit_alloc((size_t)(m * k) * sizeof *x);
    for (int64_t e = 0; e < n * k; e++) wf[e] = 0.05f * test_rng_normal(&rng);
    for (int64_t e = 0; e < m * k; e++) x[e] = test_rng_normal(&rng);
    struct trit_ternary w;
    cr_assert_eq(trit_ternarize(wf, n, k, &w), TRIT_OK);
    int8_t *q = trit_alloc((size_t)(m * k));
    float s[3], y[15];
    int32_t acc[15];
    trit_quantize_rows_i8(x, m, k, q, s);
    for (int64_t i = 0; i < m; i++) {
        int8_t row[257];
        cr_assert_eq(trit_quantize_row_i8(x + i * k, k, row), s[i]);
        cr_assert_eq(memcmp(row, q + i * k, (size_t)k), 0);
    }
    trit_gemm_ref(&w, q, m, acc);
    trit_epilogue_ref(acc, m, n, s, w.scale, TRIT_SCALE_MUL, y);
    for (int64_t i = 0; i < m; i++)
        for (int64_t j = 0; j < n; j++) {
            double exact = 0.0;
            for (int64_t c = 0; c < k; c++) exact += (double)x[i * k + c] * trit_ternary_get(&w, j, c) * (double)w.scale;
            double act = (double)w.scale * (double)k * 0.5 / (double)s[i] * CHAIN_SLACK;
            double bound = act + EPILOGUE_REL_TOL * (fabs(exact) + act);
            cr_expect_leq(fabs((double)y[i * n + j] - exact), bound, "y[%lld][%lld] = %g vs %g", (long long)i,
                          (long long)j, (double)y[i * n + j], exact);
        }
    trit_free(wf);
    trit_free(x);
    trit_free(q);
    trit_ternary_free(&w);
}
