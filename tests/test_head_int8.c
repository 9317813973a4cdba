// labels: unit
// cpu families: each
/*
 * test_head_int8.c: the quantized LM heads (cpu/head_int8.h), int8 and 4-bit. Every kernel this
 * machine runs gives the int32 dot products of the scalar reference bit for bit (odd sizes, row
 * tails, extreme values); the threaded logits equal the kernel's accumulators through the stated
 * epilogue; and the logits are within a bound derived from the rounding of both operands of the
 * fp32 logits.
 *
 *   ctest --test-dir build -R test_head_int8 --output-on-failure
 *   TRIT_TEST_SEED=123 build/tests/test_head_int8      (replay a failure)
 */
#include <criterion/criterion.h>
#include <math.h>
#include <string.h>

#include "core/threadpool.h"
#include "cpu/head_int8.h"
#include "quant/quant.h"
#include "support.h"

static const enum trit_head_i8_kernel all_kernels[] = {TRIT_HEAD_I8_SCALAR, TRIT_HEAD_I8_AVX2, TRIT_HEAD_I8_VNNI};

/* A random (n_rows, n_cols) head in the given dtype; some rows get planted outliers so that the
 * per-row scales differ widely, and row 0 is all zeros (scale from the 1e-5 floor). */
static void random_head(struct test_rng *rng, enum trit_dtype dtype, int64_t n_rows, int64_t n_cols,
                        struct trit_dense *m, float **ref_f32) {
    const int64_t n = n_rows * n_cols;
    float *f = trit_alloc((size_t)n * sizeof(float));
    for (int64_t i = 0; i < n; i++) f[i] = 0.05f * test_rng_normal(rng);
    for (int64_t r = 1; r < n_rows; r += 7) f[r * n_cols + test_rng_int(rng, 0, n_cols - 1)] = 2.0f;
    memset(f, 0, (size_t)n_cols * sizeof(float));
    m->dtype = dtype;
    m->n_rows = n_rows;
    m->n_cols = n_cols;
    if (dtype == TRIT_DTYPE_F32) {
        m->data = f;
        m->owned = NULL;
    } else {
        uint16_t *h = trit_alloc((size_t)n * sizeof(uint16_t));
        for (int64_t i = 0; i < n; i++) {
            h[i] = dtype == TRIT_DTYPE_F16 ? trit_fp32_to_fp16(f[i]) : trit_fp32_to_bf16(f[i]);
            f[i] = dtype == TRIT_DTYPE_F16 ? trit_fp16_to_fp32(h[i]) : trit_bf16_to_fp32(h[i]); /* exact values */
        }
        m->data = h;
        m->owned = h;
    }
    *ref_f32 = f;
}

/* The kernel's int32 dots of h against q equal the reference's, bit for bit, from every row range
 * start (so that groups of 4 straddle the tail), and nothing is written past the end. ref and got
 * have room for n_rows and n_rows + 1 values. */
static void expect_rows_match_reference(const struct trit_head_i8 *h, const int8_t *q, int32_t *ref, int32_t *got) {
    const int64_t n_rows = h->n_rows;
    trit_head_i8_acc_rows_ref(h, q, 0, n_rows, ref);
    for (int64_t r0 = 0; r0 < n_rows && r0 < 6; r0++) {
        test_poison(got, (size_t)(n_rows + 1) * sizeof(int32_t));
        int32_t guard;
        memcpy(&guard, &got[n_rows - r0], sizeof guard);
        trit_head_i8_acc_rows(h, q, r0, n_rows, got);
        cr_expect(memcmp(got, ref + r0, (size_t)(n_rows - r0) * sizeof(int32_t)) == 0,
                  "%d-bit kernel %s, %lld x %lld, rows from %lld: int32 differs from the reference", h->bits,
                  trit_head_i8_kernel_name(h->kernel), (long long)n_rows, (long long)h->n_cols, (long long)r0);
        cr_expect(memcmp(&got[n_rows - r0], &guard, sizeof guard) == 0, "wrote past the end");
    }
}

Test(head_int8, kernels_match_reference_bit_for_bit) {
    struct test_rng rng;
    test_rng_seed(&rng, 0x1e4d);
    const int64_t shapes[][2] = {{1, 1}, {5, 63}, {7, 64}, {13, 65}, {64, 200}, {37, 2560}, {9, 1000}};
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        const int64_t n_rows = shapes[s][0], n_cols = shapes[s][1];
        struct trit_dense m;
        float *f;
        random_head(&rng, TRIT_DTYPE_F32, n_rows, n_cols, &m, &f);
        int8_t *q = NULL;
        int32_t *ref = trit_alloc((size_t)n_rows * sizeof(int32_t));
        int32_t *got = trit_alloc((size_t)(n_rows + 1) * sizeof(int32_t));
        for (size_t k = 0; k < sizeof all_kernels / sizeof all_kernels[0]; k++) {
            struct trit_head_i8 h;
            enum trit_status st = trit_head_i8_init(&m, 1, all_kernels[k], NULL, &h);
            if (st == TRIT_ERR_UNSUPPORTED) continue;
            cr_assert_eq(st, TRIT_OK, "%s", trit_last_error());
            if (!q) q = test_alloc_offset((size_t)h.ld, 1); /* a caller's buffer need not be aligned */
            /* extremes planted: the +-127 corners of both operands */
            for (int64_t c = 0; c < n_cols; c++) q[c] = (int8_t)test_rng_int(&rng, -127, 127);
            q[0] = -127;
            q[n_cols - 1] = 127;
            for (int64_t r = 0; r < n_rows; r++) h.w[r * h.ld + test_rng_int(&rng, 0, n_cols - 1)] = -127;
            for (int64_t r = 0; r < n_rows; r++) {
                int32_t sum = 0;
                for (int64_t c = 0; c < n_cols; c++) sum += h.w[r * h.ld + c];
                h.wsum128[r] = 128 * sum;
            }
            expect_rows_match_reference(&h, q, ref, got);
            trit_head_i8_free(&h);
        }
        test_free_offset(q, 1);
        trit_free(ref);
        trit_free(got);
        trit_free(f);
        trit_free(m.owned);
    }
}

/* The 4-bit head: every kernel against the reference, with the extremes of both operands planted
 * (q = -7 and +7 in every block, x = +-127, sub-scales 63, 0 and odd ones). */
Test(head_int8, q4_kernels_match_reference_bit_for_bit) {
    struct test_rng rng;
    test_rng_seed(&rng, 0x4b17);
    const int64_t shapes[][2] = {{1, 1}, {5, 63}, {7, 64}, {13, 65}, {64, 200}, {37, 2560}, {9, 1000}};
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        const int64_t n_rows = shapes[s][0], n_cols = shapes[s][1];
        struct trit_dense m;
        float *f;
        random_head(&rng, TRIT_DTYPE_F32, n_rows, n_cols, &m, &f);
        int32_t *ref = trit_alloc((size_t)n_rows * sizeof(int32_t));
        int32_t *got = trit_alloc((size_t)(n_rows + 1) * sizeof(int32_t));
        int8_t *q = NULL;
        for (size_t k = 0; k < sizeof all_kernels / sizeof all_kernels[0]; k++) {
            struct trit_head_i8 h;
            enum trit_status st = trit_head_q4_init(&m, 1, all_kernels[k], NULL, &h);
            if (st == TRIT_ERR_UNSUPPORTED) continue;
            cr_assert_eq(st, TRIT_OK, "%s", trit_last_error());
            cr_assert_eq(h.bits, 4);
            if (!q) q = test_alloc_offset((size_t)h.ld, 1);
            memset(q, 0, (size_t)h.ld);
            for (int64_t c = 0; c < n_cols; c++) q[c] = (int8_t)test_rng_int(&rng, -127, 127);
            q[0] = -127;
            q[n_cols - 1] = 127;
            const int64_t n_sub = h.ld / HEAD_Q4_BLOCK;
            for (int64_t r = 0; r < n_rows; r++) {
                uint8_t *w = (uint8_t *)h.w + r * (h.ld / 2);
                for (int64_t b = 0; b * HEAD_Q4_BLOCK < n_cols; b++) {
                    const int64_t c0 = b * HEAD_Q4_BLOCK, kb = 32 * (c0 / 64) + c0 % 32;
                    w[kb] = c0 % 64 < 32 ? (uint8_t)((w[kb] & 0xF0u) | 1u) : (uint8_t)((w[kb] & 0x0Fu) | 0xF0u); /* -7 or +7 */
                    h.sub[r * n_sub + b] = (uint8_t)(b % 3 == 0 ? HEAD_Q4_SMAX : test_rng_int(&rng, 0, HEAD_Q4_SMAX));
                }
                int32_t sum = 0;
                for (int64_t b = 0; b < n_sub; b++) {
                    int32_t qs = 0;
                    for (int64_t c = b * HEAD_Q4_BLOCK; c < (b + 1) * HEAD_Q4_BLOCK; c++) {
                        const unsigned byte = w[32 * (c / 64) + c % 32];
                        qs += (int)(c % 64 < 32 ? byte & 15u : byte >> 4) - 8;
                    }
                    sum += h.sub[r * n_sub + b] * qs;
                }
                h.wsum128[r] = 128 * sum;
            }
            expect_rows_match_reference(&h, q, ref, got);
            trit_head_i8_free(&h);
        }
        test_free_offset(q, 1);
        trit_free(ref);
        trit_free(got);
        trit_free(f);
        trit_free(m.owned);
    }
}

/* The 4-bit quantizer: every weight within half a step of its value (no clipping), sub-scales in
 * range, the largest block at most at 63, an all-zero row and block at 0. */
Test(head_int8, q4_quantization_error_within_half_a_step) {
    struct test_rng rng;
    test_rng_seed(&rng, 0x4a11);
    const int64_t n_rows = 50, n_cols = 300;
    struct trit_dense m;
    float *f;
    random_head(&rng, TRIT_DTYPE_F32, n_rows, n_cols, &m, &f);
    struct trit_head_i8 h;
    cr_assert_eq(trit_head_q4_init(&m, 1, TRIT_HEAD_I8_AUTO, NULL, &h), TRIT_OK, "%s", trit_last_error());
    const int64_t n_sub = h.ld / HEAD_Q4_BLOCK;
    for (int64_t r = 0; r < n_rows; r++) {
        const uint8_t *w = (const uint8_t *)h.w + r * (h.ld / 2);
        for (int64_t k = 0; k < h.ld; k++) {
            const unsigned byte = w[32 * (k / 64) + k % 32];
            const int qv = (int)(k % 64 < 32 ? byte & 15u : byte >> 4) - 8;
            const int sb = h.sub[r * n_sub + k / HEAD_Q4_BLOCK];
            cr_assert(qv >= -7 && qv <= 7 && sb <= HEAD_Q4_SMAX, "row %lld col %lld: q %d s %d", (long long)r, (long long)k, qv, sb);
            const double x = k < n_cols ? (double)f[r * n_cols + k] : 0.0;
            const double step = (double)h.d[r] * sb, err = fabs(x - step * qv);
            cr_assert(err <= (0.5 + 0x1p-16) * step || (sb == 0 && x == 0.0), "row %lld col %lld: %g vs %g (step %g)",
                      (long long)r, (long long)k, x, step * qv, step);
        }
    }
    for (int64_t b = 0; b < n_sub; b++) cr_expect_eq(h.sub[b], 0, "row 0 is all zeros"); /* random_head */
    trit_head_i8_free(&h);
    trit_free(f);
    trit_free(m.owned);
}

Test(head_int8, all_quantize_values_stay_symmetric) {
    /* |x * s| <= 127 after rounding, -127 clamp: never -128, even for the most negative element */
    float x[70];
    int8_t q[128];
    for (int i = 0; i < 70; i++) x[i] = (float)(i - 35) * 0.37f;
    x[3] = -100.0f;
    const float s = trit_head_i8_quantize(x, 70, 128, q);
    cr_expect_eq(q[3], -127);
    cr_expect_float_eq(s, 1.27f, 1e-6f);
    for (int i = 70; i < 128; i++) cr_expect_eq(q[i], 0, "padding %d", i);
}

/* The logits through the pool (1 and 3 threads, 1 and 6 tokens), against the reference
 * accumulators with the stated epilogue (bit for bit), and against the fp32 head within a bound
 * derived from the roundings. With w = (w_q + e_w) / s_r and x = (q + e_x) / s_x,
 *   w x - w_q q / (s_r s_x) = sum(w_q e_x + e_w q + e_w e_x) / (s_r s_x),
 * |e_w|, |e_x| <= E = 1/2 + 2^-16 (rint, plus the fp32 rounding of the product w s: 127 * 2^-24 <
 * 2^-16), |w_q| <= |w| s_r + E and |q| <= |x| s_x + E, so
 *   |int8 - fp32| <= E sum|w| / s_x + E sum|x| / s_r + 3 n E^2 / (s_r s_x)  + 8 * 2^-24 |logit|
 * where the last term covers the fp32 epilogue (d_r, d_x, their product, the product with acc).
 * The fp32 side is summed in double from the exact fp32/f16/bf16 values. */
#define HEAD_E (0.5 + 0x1p-16)
Test(head_int8, logits_match_epilogue_and_fp32_bound) {
    struct test_rng rng;
    test_rng_seed(&rng, 0x4ead);
    const enum trit_dtype dtypes[] = {TRIT_DTYPE_F16, TRIT_DTYPE_BF16, TRIT_DTYPE_F32};
    for (size_t di = 0; di < 3; di++) {
        const int64_t n_rows = 203, n_cols = 300, max_x = 6;
        struct trit_dense m;
        float *f;
        random_head(&rng, dtypes[di], n_rows, n_cols, &m, &f);
        float *x = trit_alloc((size_t)(max_x * n_cols) * sizeof(float));
        for (int64_t i = 0; i < max_x * n_cols; i++) x[i] = test_rng_normal(&rng);
        float *logits = trit_alloc((size_t)(max_x * n_rows) * sizeof(float));
        int32_t *acc = trit_alloc((size_t)n_rows * sizeof(int32_t));
        const int threads[] = {1, 3};
        for (int ti = 0; ti < 2; ti++) {
            struct trit_pool *pool = NULL;
            cr_assert_eq(trit_pool_create(threads[ti], &pool), TRIT_OK);
            struct trit_head_i8 h;
            cr_assert_eq(trit_head_i8_init(&m, max_x, TRIT_HEAD_I8_AUTO, pool, &h), TRIT_OK, "%s", trit_last_error());
            const int64_t n_xs[] = {1, max_x};
            for (int xi = 0; xi < 2; xi++) {
                const int64_t n_x = n_xs[xi];
                test_poison(logits, (size_t)(max_x * n_rows) * sizeof(float));
                cr_assert_eq(trit_head_i8_logits(pool, &h, x, n_x, n_cols, logits), TRIT_OK);
                for (int64_t t = 0; t < n_x; t++) {
                    int8_t q[320];
                    const float sx = trit_head_i8_quantize(x + t * n_cols, n_cols, h.ld, q);
                    trit_head_i8_acc_rows_ref(&h, q, 0, n_rows, acc);
                    double sum_ax = 0.0;
                    for (int64_t c = 0; c < n_cols; c++) sum_ax += fabs((double)x[t * n_cols + c]);
                    for (int64_t r = 0; r < n_rows; r++) {
                        const float got = logits[t * n_rows + r];
                        const float want = (float)acc[r] * (h.d[r] * (1.0f / sx));
                        cr_assert(memcmp(&got, &want, sizeof got) == 0, "token %lld row %lld: %a != %a", (long long)t,
                                  (long long)r, (double)got, (double)want);
                        double exact = 0.0, sum_aw = 0.0;
                        for (int64_t c = 0; c < n_cols; c++) {
                            const double w = f[r * n_cols + c], xv = x[t * n_cols + c];
                            exact += w * xv;
                            sum_aw += fabs(w);
                        }
                        const double s_r = 1.0 / (double)h.d[r], s_x = (double)sx;
                        const double bound = HEAD_E * sum_aw / s_x + HEAD_E * sum_ax / s_r +
                                             3.0 * (double)n_cols * HEAD_E * HEAD_E / (s_r * s_x) +
                                             8.0 * 0x1p-24 * fabs((double)got);
                        cr_assert(fabs((double)got - exact) <= bound, "token %lld row %lld: int8 %g, fp32 %g, bound %g",
                                  (long long)t, (long long)r, (double)got, exact, bound);
                    }
                }
            }
            trit_head_i8_free(&h);
            trit_pool_free(pool);
        }
        trit_free(acc);
        trit_free(logits);
        trit_free(x);
        trit_free(f);
        trit_free(m.owned);
    }
}

/* The 4-bit logits, as the int8 ones above. With W_q = d_r s_b q = W + e_w, |e_w| <= E_w(k) =
 * E d_r s_b (half a step, E as above) and x_q / s_x = x + e_x, |e_x| <= E / s_x:
 *   |W_q x_q / s_x - W x| <= sum_k E_w(k) (|x_k| + E / s_x) + |W_k| E / s_x   + 8 * 2^-24 |logit|. */
Test(head_int8, q4_logits_match_epilogue_and_fp32_bound) {
    struct test_rng rng;
    test_rng_seed(&rng, 0x4ea4);
    const enum trit_dtype dtypes[] = {TRIT_DTYPE_F16, TRIT_DTYPE_BF16, TRIT_DTYPE_F32};
    for (size_t di = 0; di < 3; di++) {
        const int64_t n_rows = 203, n_cols = 300, max_x = 6;
        struct trit_dense m;
        float *f;
        random_head(&rng, dtypes[di], n_rows, n_cols, &m, &f);
        float *x = trit_alloc((size_t)(max_x * n_cols) * sizeof(float));
        for (int64_t i = 0; i < max_x * n_cols; i++) x[i] = test_rng_normal(&rng);
        float *logits = trit_alloc((size_t)(max_x * n_rows) * sizeof(float));
        int32_t *acc = trit_alloc((size_t)n_rows * sizeof(int32_t));
        const int threads[] = {1, 3};
        for (int ti = 0; ti < 2; ti++) {
            struct trit_pool *pool = NULL;
            cr_assert_eq(trit_pool_create(threads[ti], &pool), TRIT_OK);
            struct trit_head_i8 h;
            cr_assert_eq(trit_head_q4_init(&m, max_x, TRIT_HEAD_I8_AUTO, pool, &h), TRIT_OK, "%s", trit_last_error());
            const int64_t n_sub = h.ld / HEAD_Q4_BLOCK;
            const int64_t n_xs[] = {1, max_x};
            for (int xi = 0; xi < 2; xi++) {
                const int64_t n_x = n_xs[xi];
                test_poison(logits, (size_t)(max_x * n_rows) * sizeof(float));
                cr_assert_eq(trit_head_i8_logits(pool, &h, x, n_x, n_cols, logits), TRIT_OK);
                for (int64_t t = 0; t < n_x; t++) {
                    int8_t q[320];
                    const float sx = trit_head_i8_quantize(x + t * n_cols, n_cols, h.ld, q);
                    trit_head_i8_acc_rows_ref(&h, q, 0, n_rows, acc);
                    for (int64_t r = 0; r < n_rows; r++) {
                        const float got = logits[t * n_rows + r];
                        const float want = (float)acc[r] * (h.d[r] * (1.0f / sx));
                        cr_assert(memcmp(&got, &want, sizeof got) == 0, "token %lld row %lld: %a != %a", (long long)t,
                                  (long long)r, (double)got, (double)want);
                        double exact = 0.0, bound = 8.0 * 0x1p-24 * fabs((double)got);
                        const double ex = HEAD_E / (double)sx;
                        for (int64_t c = 0; c < n_cols; c++) {
                            const double w = f[r * n_cols + c], xv = x[t * n_cols + c];
                            const double ew = HEAD_E * (double)h.d[r] * h.sub[r * n_sub + c / HEAD_Q4_BLOCK];
                            exact += w * xv;
                            bound += ew * (fabs(xv) + ex) + fabs(w) * ex;
                        }
                        cr_assert(fabs((double)got - exact) <= bound, "token %lld row %lld: 4-bit %g, fp32 %g, bound %g",
                                  (long long)t, (long long)r, (double)got, exact, bound);
                    }
                }
            }
            trit_head_i8_free(&h);
            trit_pool_free(pool);
        }
        trit_free(acc);
        trit_free(logits);
        trit_free(x);
        trit_free(f);
        trit_free(m.owned);
    }
}

Test(head_int8, rejects_bad_arguments) {
    struct trit_head_i8 h;
    cr_expect_eq(trit_head_i8_init(NULL, 1, TRIT_HEAD_I8_AUTO, NULL, &h), TRIT_ERR_INVALID_ARG);
    float w[4] = {1, 2, 3, 4}, x[2] = {1, 1}, logits[2];
    struct trit_dense m = {.dtype = TRIT_DTYPE_F32, .n_rows = 2, .n_cols = 2, .data = w};
    cr_assert_eq(trit_head_i8_init(&m, 1, TRIT_HEAD_I8_AUTO, NULL, &h), TRIT_OK);
    cr_expect_eq(trit_head_i8_logits(NULL, &h, x, 2, 2, logits), TRIT_ERR_INVALID_ARG, "more tokens than max_x");
    cr_expect_eq(trit_head_i8_logits(NULL, &h, x, 1, 2, logits), TRIT_OK);
    trit_head_i8_free(&h);
    trit_head_i8_free(&h); /* zeroed: a second free is harmless */
}
