// labels: unit
// cpu families: each
/*
 * test_cpu_ops.c: the fp32 ops of the CPU forward pass (cpu/ops.h) that have a fast path next to
 * their reference: activation quantization (bit for bit against trit_quantize_row_i8, ties, NaN,
 * infinities, tails) and attention (the online-softmax kernel and the two-pass reference, both
 * against a double-precision evaluation within a bound derived from fp32 rounding), and the dense LM
 * head (f32, f16, bf16; odd sizes; several tokens and threads) against double precision, with a
 * token's logits bit-identical whatever the number of tokens and threads.
 *
 *   ctest --test-dir build -R test_cpu_ops --output-on-failure
 *   TRIT_TEST_SEED=123 build/tests/test_cpu_ops      (replay a failure)
 */
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/threadpool.h"
#include "cpu/ops.h"
#include "quant/quant.h"
#include "support.h"

/* ---- quantization ------------------------------------------------------------------------------- */

static void expect_quantize_matches(const float *x, int64_t k, const char *what) {
    int8_t *want = trit_alloc((size_t)k + 64), *got = test_alloc_offset((size_t)k + 64, 1);
    test_poison(got, (size_t)k + 64);
    const float s_want = trit_quantize_row_i8(x, k, want);
    const float s_got = trit_quantize_row_i8_fast(x, k, -128, got);
    cr_expect(memcmp(&s_want, &s_got, sizeof s_got) == 0, "%s, k %lld: scale %a != %a", what, (long long)k,
              (double)s_got, (double)s_want);
    cr_expect(memcmp(want, got, (size_t)k) == 0, "%s, k %lld: codes differ", what, (long long)k);
    unsigned char poison[64];
    test_poison(poison, sizeof poison);
    cr_expect(memcmp(got + k, poison, sizeof poison) == 0, "%s, k %lld: wrote past the end", what, (long long)k);
    /* q_min -127: the reference's codes with -128 raised to -127 */
    trit_quantize_row_i8_fast(x, k, -127, got);
    for (int64_t i = 0; i < k; i++) {
        const int8_t w = want[i] == -128 ? -127 : want[i];
        cr_expect_eq(got[i], w, "%s, k %lld, q_min -127: element %lld", what, (long long)k, (long long)i);
    }
    trit_free(want);
    test_free_offset(got, 1);
}

Test(cpu_ops, quantize_fast_equals_reference) {
    struct test_rng rng;
    test_rng_seed(&rng, 0x9a47);
    float *x = test_alloc_offset(7000 * sizeof(float), 4); /* no vector width divides the address */
    const int64_t lens[] = {1, 2, 15, 16, 17, 31, 32, 33, 63, 100, 2560, 6915};
    for (size_t li = 0; li < sizeof lens / sizeof lens[0]; li++) {
        const int64_t k = lens[li];
        for (int64_t i = 0; i < k; i++) x[i] = test_rng_normal(&rng) * 3.0f;
        expect_quantize_matches(x, k, "normal");
        /* ties: amax 127 makes s exactly 1, so k + 0.5 values round half to even */
        for (int64_t i = 0; i < k; i++) x[i] = (float)test_rng_int(&rng, -127, 126) + 0.5f;
        x[k - 1] = -127.0f;
        expect_quantize_matches(x, k, "ties");
        /* specials: NaN (-> 0, ignored by the max), -0, denormals, one huge value */
        for (int64_t i = 0; i < k; i++) x[i] = test_rng_uniform(&rng, -1.0f, 1.0f);
        x[0] = NAN;
        if (k > 1) x[k / 2] = -0.0f;
        if (k > 2) x[k - 1] = 1e-40f;
        expect_quantize_matches(x, k, "specials");
        x[k - 1] = -INFINITY; /* s = 0: every element is NaN * 0 or inf * 0 -> 0 */
        expect_quantize_matches(x, k, "infinity");
        memset(x, 0, (size_t)k * sizeof(float)); /* s = 127 / 1e-5 */
        expect_quantize_matches(x, k, "zeros");
    }
    test_free_offset(x, 4);
}

/* The matmul input with activations quantized per block of 64 (Qwen3 / Ternary-Bonsai): each block as
 * trit_quantize_row_i8_blocks quantizes it, bit for bit, tails and one-token calls included. */
Test(cpu_ops, prepare_blocks_equals_reference) {
    struct test_rng rng;
    test_rng_seed(&rng, 0xb10c);
    const int64_t lens[] = {1, 63, 64, 65, 200, 2560};
    for (size_t li = 0; li < sizeof lens / sizeof lens[0]; li++) {
        const int64_t k = lens[li], n_tok = 3, n_ab = (k + 63) / 64;
        float *x = trit_alloc((size_t)(n_tok * k) * sizeof(float)), *y = trit_alloc((size_t)(n_tok * k) * sizeof(float));
        float *s = trit_alloc((size_t)(n_tok * n_ab) * sizeof(float)), *s_ref = trit_alloc((size_t)n_ab * sizeof(float));
        int8_t *q = trit_alloc((size_t)(n_tok * k)), *q_ref = trit_alloc((size_t)k);
        for (int64_t i = 0; i < n_tok * k; i++) x[i] = test_rng_normal(&rng);
        if (k > 5) x[5] = -1000.0f; /* row 0, block 0: an outlier far above any normal draw */
        for (int64_t t = 1; t <= n_tok; t += n_tok - 1) { /* one row (runs on the caller) and all three (the pool) */
            trit_prepare_matmul_input(NULL, t, k, x, NULL, TRIT_ACT_SILU, NULL, 1e-6f, y, q, 64, s);
            for (int64_t r = 0; r < t; r++) {
                trit_quantize_row_i8_blocks(x + r * k, k, 64, q_ref, s_ref);
                cr_expect(memcmp(q + r * k, q_ref, (size_t)k) == 0, "k %lld, row %lld: codes differ", (long long)k, (long long)r);
                cr_expect(memcmp(s + r * n_ab, s_ref, (size_t)n_ab * sizeof(float)) == 0, "k %lld, row %lld: scales differ",
                          (long long)k, (long long)r);
            }
        }
        /* an outlier in block 0 does not crush block 1's resolution */
        if (k >= 128) cr_expect_gt(s[1], s[0], "k %lld: block 1 has no outlier, so a finer scale", (long long)k);
        trit_free(x), trit_free(y), trit_free(s), trit_free(s_ref), trit_free(q), trit_free(q_ref);
    }
}

Test(cpu_ops, quantize_rows_fast_equals_reference) {
    struct test_rng rng;
    test_rng_seed(&rng, 0x51a7);
    enum { M = 5, K = 77 };
    float x[M * K], s_want[M], s_got[M];
    int8_t want[M * K], got[M * K];
    for (int i = 0; i < M * K; i++) x[i] = test_rng_normal(&rng) * (float)(1 + i / K);
    for (int t = 0; t < M; t++) s_want[t] = trit_quantize_row_i8(x + t * K, K, want + t * K);
    trit_quantize_rows_i8_fast(x, M, K, got, s_got);
    cr_expect(memcmp(want, got, sizeof got) == 0);
    cr_expect(memcmp(s_want, s_got, sizeof s_got) == 0);
}

/* ---- gated activations ----------------------------------------------------------------------------
 * ReLU^2 has vector paths; they must give the scalar expression's bits (NaN and -0 gates, tails). */
Test(cpu_ops, relu2_gate_equals_the_scalar_expression) {
    struct test_rng rng;
    test_rng_seed(&rng, 0x4e1a);
    const int64_t lens[] = {1, 7, 8, 9, 16, 17, 31, 768, 6913};
    for (size_t li = 0; li < sizeof lens / sizeof lens[0]; li++) {
        const int64_t n = lens[li];
        float *g = test_alloc_offset((size_t)n * sizeof(float), 4), *up = test_alloc_offset((size_t)n * sizeof(float), 4);
        float *want = trit_alloc((size_t)n * sizeof(float));
        for (int64_t i = 0; i < n; i++) g[i] = 2.0f * test_rng_normal(&rng), up[i] = test_rng_normal(&rng);
        g[0] = -0.0f;
        if (n > 2) g[n / 2] = NAN;
        if (n > 3) g[n - 1] = INFINITY, up[n - 1] = 0.5f;
        for (int64_t i = 0; i < n; i++) {
            const float r = g[i] > 0.0f ? g[i] : 0.0f;
            want[i] = r * r * up[i];
        }
        trit_gated_act_f32(g, up, n, TRIT_ACT_RELU2);
        cr_expect(memcmp(g, want, (size_t)n * sizeof(float)) == 0, "n %lld: relu^2 differs from the scalar expression",
                  (long long)n);
        test_free_offset(g, 4);
        test_free_offset(up, 4);
        trit_free(want);
    }
}

/* SiLU: within a bound of the double-precision value. Relative error, first order: the exponential
 * (libm's expf <= 1 ulp, the vector exp_neg <= 2 ulp = 4u) enters with a factor of at most 1, then
 * one rounding each for g e, 1 + e, the quotient and the product with up: 8u with margin. Where the
 * exponential is denormal (|g| > 87) only an absolute 2^-126 |up| is promised. */
#define SILU_REL_TOL (8.0 * 0x1p-24)
Test(cpu_ops, silu_gate_within_derived_bound) {
    struct test_rng rng;
    test_rng_seed(&rng, 0x5117);
    const int64_t lens[] = {1, 7, 8, 9, 17, 768, 6913};
    for (size_t li = 0; li < sizeof lens / sizeof lens[0]; li++) {
        const int64_t n = lens[li];
        float *g = test_alloc_offset((size_t)n * sizeof(float), 4), *up = test_alloc_offset((size_t)n * sizeof(float), 4);
        float *g0 = trit_alloc((size_t)n * sizeof(float));
        for (int64_t i = 0; i < n; i++) g[i] = 6.0f * test_rng_normal(&rng), up[i] = test_rng_normal(&rng);
        g[0] = -0.0f;
        if (n > 3) g[1] = -95.0f, g[2] = 95.0f;
        if (n > 4) g[3] = 1e-30f;
        memcpy(g0, g, (size_t)n * sizeof(float));
        trit_gated_act_f32(g, up, n, TRIT_ACT_SILU);
        for (int64_t i = 0; i < n; i++) {
            const double x = g0[i], exact = x / (1.0 + exp(-x)) * (double)up[i];
            const double bound = SILU_REL_TOL * fabs(exact) + 0x1p-126 * fabs((double)up[i]);
            cr_assert(fabs((double)g[i] - exact) <= bound, "n %lld [%lld]: silu(%g) * %g = %g, exact %g", (long long)n,
                      (long long)i, x, (double)up[i], (double)g[i], exact);
        }
        test_free_offset(g, 4);
        test_free_offset(up, 4);
        trit_free(g0);
    }
}

/* ---- attention ---------------------------------------------------------------------------------
 * Bound against the double-precision softmax(q k^T * scale) v, with scale = 1/sqrtf(head_dim) as
 * both implementations use it. u = 2^-24.
 *   scores: a dot product of hd terms in any order, then a product: |ds| <= delta =
 *           (hd + 2) u * scale * max_t sum_i |q_i k_ti|;
 *   weights: exp(s - m) gets the factor exp(+-delta) from the scores, and a relative error of at most
 *           (3 n_blocks + 8) u: the kernel's exp (<= 2 ulp = 4u), per block one expf correction (< 1 ulp
 *           = 2u) and its product (u), and the final 1/l and its product (4u);
 *   sums:   l and o accumulate n_pos positive (resp. weighted) terms: (n_pos + 2) u relative each.
 * A convex combination whose weights move by a relative eps moves by at most 2 eps max|v|, so
 *   |out - exact| <= (2 (delta + (3 n_blocks + 8) u) + 2 (n_pos + 2) u) * max|v| * 1.01 (second order). */
static double attention_bound(const float *q, const float *k, const float *v, int64_t n_pos, int64_t hd,
                              int64_t ld, int64_t h, int64_t g) {
    const double u = 0x1p-24, scale = (double)(1.0f / sqrtf((float)hd));
    double max_qk = 0.0, max_v = 0.0;
    for (int64_t t = 0; t < n_pos; t++) {
        double a = 0.0;
        for (int64_t i = 0; i < hd; i++) {
            a += fabs((double)q[h * hd + i] * (double)k[t * ld + g * hd + i]);
            max_v = fmax(max_v, fabs((double)v[t * ld + g * hd + i]));
        }
        max_qk = fmax(max_qk, a);
    }
    const double delta = (double)(hd + 2) * u * scale * max_qk;
    const double n_blocks = (double)((n_pos + 63) / 64);
    return (2.0 * (delta + (3.0 * n_blocks + 8.0) * u) + 2.0 * (double)(n_pos + 2) * u) * max_v * 1.01;
}

static void attention_exact(const float *q, const float *k, const float *v, int64_t n_pos, int64_t hd, int64_t ld,
                            int64_t h, int64_t g, double *out) {
    const double scale = (double)(1.0f / sqrtf((float)hd));
    double *s = malloc((size_t)n_pos * sizeof(double)), m = -INFINITY, l = 0.0;
    for (int64_t t = 0; t < n_pos; t++) {
        double a = 0.0;
        for (int64_t i = 0; i < hd; i++) a += (double)q[h * hd + i] * (double)k[t * ld + g * hd + i];
        s[t] = a * scale;
        m = fmax(m, s[t]);
    }
    for (int64_t t = 0; t < n_pos; t++) l += (s[t] = exp(s[t] - m));
    for (int64_t i = 0; i < hd; i++) {
        double o = 0.0;
        for (int64_t t = 0; t < n_pos; t++) o += s[t] * (double)v[t * ld + g * hd + i];
        out[i] = o / l;
    }
    free(s);
}

Test(cpu_ops, attention_fast_and_reference_within_derived_bound) {
    struct test_rng rng;
    test_rng_seed(&rng, 0xa77e);
    /* n_heads, n_kv_heads, head_dim, head_begin, head_end, magnitude of q and k */
    const int64_t cases[][6] = {
        {20, 5, 128, 0, 20, 1}, {20, 5, 128, 4, 8, 3}, {8, 8, 64, 0, 8, 1},  {6, 2, 16, 1, 5, 2},
        {64, 8, 128, 0, 4, 1},  {64, 8, 128, 6, 10, 1}, {4, 4, 24, 0, 4, 1}, {6, 2, 80, 0, 6, 2},
    };
    const int64_t positions[] = {1, 7, 64, 65, 200};
    for (size_t ci = 0; ci < sizeof cases / sizeof cases[0]; ci++) {
        const int64_t n_heads = cases[ci][0], n_kv = cases[ci][1], hd = cases[ci][2];
        const int64_t h0 = cases[ci][3], h1 = cases[ci][4];
        const float mag = (float)cases[ci][5];
        const int64_t ld = n_kv * hd + 8; /* a row stride wider than the row, as a padded cache would be */
        for (size_t pi = 0; pi < sizeof positions / sizeof positions[0]; pi++) {
            const int64_t n_pos = positions[pi];
            float *q = test_alloc_offset((size_t)(n_heads * hd) * sizeof(float), 4);
            float *k = test_alloc_offset((size_t)(n_pos * ld) * sizeof(float), 4);
            float *v = test_alloc_offset((size_t)(n_pos * ld) * sizeof(float), 4);
            float *scores = trit_alloc((size_t)n_pos * sizeof(float));
            float *fast = test_alloc_offset((size_t)(n_heads * hd) * sizeof(float), 4);
            float *ref = trit_alloc((size_t)(n_heads * hd) * sizeof(float));
            double *exact = trit_alloc((size_t)hd * sizeof(double));
            for (int64_t i = 0; i < n_heads * hd; i++) q[i] = mag * test_rng_normal(&rng);
            for (int64_t i = 0; i < n_pos * ld; i++) k[i] = mag * test_rng_normal(&rng), v[i] = test_rng_normal(&rng);
            test_poison(fast, (size_t)(n_heads * hd) * sizeof(float));
            test_poison(ref, (size_t)(n_heads * hd) * sizeof(float));
            trit_attention_f32(q, k, v, n_pos, n_heads, n_kv, hd, ld, scores, fast, h0, h1);
            trit_attention_f32_ref(q, k, v, n_pos, n_heads, n_kv, hd, ld, scores, ref, h0, h1);
            for (int64_t h = 0; h < n_heads; h++) {
                const int64_t g = h / (n_heads / n_kv);
                if (h < h0 || h >= h1) {
                    unsigned char poison[sizeof(float)];
                    test_poison(poison, sizeof poison);
                    cr_expect(memcmp(fast + h * hd, poison, sizeof poison) == 0, "head %lld outside the range was written",
                              (long long)h);
                    continue;
                }
                attention_exact(q, k, v, n_pos, hd, ld, h, g, exact);
                const double bound = attention_bound(q, k, v, n_pos, hd, ld, h, g);
                for (int64_t i = 0; i < hd; i++) {
                    const double ef = fabs((double)fast[h * hd + i] - exact[i]), er = fabs((double)ref[h * hd + i] - exact[i]);
                    cr_assert(ef <= bound && er <= bound,
                              "heads %lld/%lld hd %lld, %lld positions, head %lld [%lld]: fast %g ref %g exact %g "
                              "(errors %g %g, bound %g)",
                              (long long)n_heads, (long long)n_kv, (long long)hd, (long long)n_pos, (long long)h,
                              (long long)i, (double)fast[h * hd + i], (double)ref[h * hd + i], exact[i], ef, er, bound);
                }
            }
            test_free_offset(q, 4);
            test_free_offset(k, 4);
            test_free_offset(v, 4);
            trit_free(scores);
            test_free_offset(fast, 4);
            trit_free(ref);
            trit_free(exact);
        }
    }
}

/* ---- dense LM head -------------------------------------------------------------------------------
 * A dot product of n terms, summed in any order with FMAs, is within gamma_n sum|w x| of the exact
 * value, gamma_n = n u / (1 - n u), u = 2^-24 (Higham, Accuracy and Stability, 3.1). The weights are
 * exactly representable (they come from the matrix), x is fp32. */
Test(cpu_ops, dense_logits_within_bound_and_independent_of_batch_and_threads) {
    struct test_rng rng;
    test_rng_seed(&rng, 0xd3e5);
    const enum trit_dtype dtypes[] = {TRIT_DTYPE_F32, TRIT_DTYPE_F16, TRIT_DTYPE_BF16};
    const int64_t shapes[][2] = {{1, 1}, {7, 15}, {33, 100}, {130, 256}, {9, 2560}};
    for (size_t di = 0; di < 3; di++)
        for (size_t si = 0; si < sizeof shapes / sizeof shapes[0]; si++) {
            const int64_t n_rows = shapes[si][0], n_cols = shapes[si][1], n_x = 70; /* > one pass of 64 */
            const size_t es = dtypes[di] == TRIT_DTYPE_F32 ? 4 : 2;
            void *w = test_alloc_offset((size_t)(n_rows * n_cols) * es, es); /* element-aligned only */
            float *wf = trit_alloc((size_t)(n_rows * n_cols) * sizeof(float));
            for (int64_t i = 0; i < n_rows * n_cols; i++) {
                const float f = test_rng_normal(&rng);
                if (dtypes[di] == TRIT_DTYPE_F32) ((float *)w)[i] = wf[i] = f;
                else if (dtypes[di] == TRIT_DTYPE_F16) wf[i] = trit_fp16_to_fp32(((uint16_t *)w)[i] = trit_fp32_to_fp16(f));
                else wf[i] = trit_bf16_to_fp32(((uint16_t *)w)[i] = trit_fp32_to_bf16(f));
            }
            const struct trit_dense m = {.dtype = dtypes[di], .n_rows = n_rows, .n_cols = n_cols, .data = w};
            const int64_t ldx = n_cols + 3;
            float *x = test_alloc_offset((size_t)(n_x * ldx) * sizeof(float), 4);
            for (int64_t i = 0; i < n_x * ldx; i++) x[i] = test_rng_normal(&rng);
            float *all = trit_alloc((size_t)(n_x * n_rows) * sizeof(float));
            float *one = trit_alloc((size_t)n_rows * sizeof(float));
            const int threads[] = {1, 3};
            for (int ti = 0; ti < 2; ti++) {
                struct trit_pool *pool = NULL;
                cr_assert_eq(trit_pool_create(threads[ti], &pool), TRIT_OK);
                test_poison(all, (size_t)(n_x * n_rows) * sizeof(float));
                trit_dense_logits(pool, &m, x, n_x, ldx, n_rows, all);
                for (int64_t t = 0; t < n_x; t += 23) {
                    test_poison(one, (size_t)n_rows * sizeof(float));
                    trit_dense_logits(pool, &m, x + t * ldx, 1, ldx, n_rows, one);
                    cr_expect(memcmp(one, all + t * n_rows, (size_t)n_rows * sizeof(float)) == 0,
                              "dtype %d, %lld x %lld, %d threads: token %lld alone differs from the batch", (int)dtypes[di],
                              (long long)n_rows, (long long)n_cols, threads[ti], (long long)t);
                    trit_dense_gemv_rows(&m, x + t * ldx, 0, n_rows, one);
                    cr_expect(memcmp(one, all + t * n_rows, (size_t)n_rows * sizeof(float)) == 0, "gemv_rows differs");
                }
                for (int64_t t = 0; t < n_x; t++)
                    for (int64_t r = 0; r < n_rows; r++) {
                        double exact = 0.0, mag = 0.0;
                        for (int64_t c = 0; c < n_cols; c++) {
                            exact += (double)wf[r * n_cols + c] * (double)x[t * ldx + c];
                            mag += fabs((double)wf[r * n_cols + c] * (double)x[t * ldx + c]);
                        }
                        const double u = 0x1p-24, gamma = (double)n_cols * u / (1.0 - (double)n_cols * u);
                        const float got = all[t * n_rows + r];
                        cr_assert(fabs((double)got - exact) <= gamma * mag, "dtype %d, %lld x %lld: token %lld row %lld: %g vs %g",
                                  (int)dtypes[di], (long long)n_rows, (long long)n_cols, (long long)t, (long long)r,
                                  (double)got, exact);
                    }
                trit_pool_free(pool);
            }
            test_free_offset(w, es);
            trit_free(wf);
            test_free_offset(x, 4);
            trit_free(all);
            trit_free(one);
        }
}
