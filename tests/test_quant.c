// labels: unit
/*
 * test_quant.c: the numerics of quant.h that are not codecs: fp16/bf16 conversions (known bit
 * patterns, exhaustive fp16 round trip, the compiler's _Float16 as an oracle), the canonical
 * tensor, absmean ternarization (per tensor and per column block), exact recovery of an
 * already-ternary tensor, and per-token int8 activation quantization with its half-to-even ties.
 *
 *   ctest --test-dir build -R test_quant --output-on-failure
 */
#include <criterion/criterion.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "quant/quant.h"
#include "support.h"

static uint32_t bits_of(float f) {
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u;
}

static float float_of(uint32_t u) {
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

/* ---- fp16 ------------------------------------------------------------------------------------- */

Test(half, fp16_known_patterns) {
    struct {
        float f;
        uint16_t h;
    } cases[] = {
        {1.0f, 0x3c00},
        {-2.0f, 0xc000},
        {0.0f, 0x0000},
        {-0.0f, 0x8000},
        {65504.0f, 0x7bff},                 /* largest finite fp16 */
        {0.333251953125f, 0x3555},          /* 1365 * 2^-12 */
        {0x1p-24f, 0x0001},                 /* smallest subnormal */
        {0x3ffp-24f, 0x03ff},               /* largest subnormal */
        {0x1p-14f, 0x0400},                 /* smallest normal */
        {0.1f, 0x2e66},                     /* 1.6 * 2^-4: mantissa 0.6 * 1024 = 614.4 -> 0x266 */
        {1.0f + 0x1p-11f, 0x3c00},          /* tie between 0x3c00 and 0x3c01: even is 0x3c00 */
        {1.0f + 0x3p-11f, 0x3c02},          /* tie between 0x3c01 and 0x3c02: even is 0x3c02 */
        {1.0f + 0x1p-11f + 0x1p-20f, 0x3c01}, /* just above the tie: up */
        {0x1p-25f, 0x0000},                 /* tie between 0 and 2^-24: even is 0 */
        {0x3p-25f, 0x0002},                 /* tie between 1 and 2 subnormal units: 2 */
        {0x1.000002p-25f, 0x0001},          /* just above half a unit: up */
        {0x1p-26f, 0x0000},                 /* a quarter unit: down */
        {0x3ffp-24f + 0x1p-25f, 0x0400},    /* 1023.5 units: tie rounds up into the smallest normal */
        {65519.99609375f, 0x7bff},          /* just below 65520: stays finite */
        {65520.0f, 0x7c00},                 /* tie between 65504 and 2^16: even mantissa is inf */
        {1e10f, 0x7c00},
        {-1e10f, 0xfc00},
        {1e-30f, 0x0000},
        {-1e-30f, 0x8000},
        {0x1p-149f, 0x0000},                /* fp32 subnormal */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        cr_expect_eq(trit_fp32_to_fp16(cases[i].f), cases[i].h, "fp32 %a -> fp16 0x%04x, expected 0x%04x",
                     (double)cases[i].f, (unsigned)trit_fp32_to_fp16(cases[i].f), (unsigned)cases[i].h);
    cr_expect_eq(trit_fp32_to_fp16(INFINITY), 0x7c00);
    cr_expect_eq(trit_fp32_to_fp16(-INFINITY), 0xfc00);
    uint16_t nan = trit_fp32_to_fp16(NAN);
    cr_expect((nan & 0x7c00) == 0x7c00 && (nan & 0x03ff) != 0, "NaN -> 0x%04x", (unsigned)nan);
    /* A NaN whose payload lives only in the low fp32 bits must not become infinity. */
    nan = trit_fp32_to_fp16(float_of(0xff800001u));
    cr_expect((nan & 0xfc00) == 0xfc00 && (nan & 0x03ff) != 0, "sNaN -> 0x%04x", (unsigned)nan);
}

Test(half, fp16_widening_known) {
    cr_expect_eq(trit_fp16_to_fp32(0x3c00), 1.0f);
    cr_expect_eq(trit_fp16_to_fp32(0x7bff), 65504.0f);
    cr_expect_eq(trit_fp16_to_fp32(0x0001), 0x1p-24f);
    cr_expect_eq(trit_fp16_to_fp32(0x03ff), 0x3ffp-24f);
    cr_expect_eq(trit_fp16_to_fp32(0x0200), 0x1p-15f);
    cr_expect_eq(trit_fp16_to_fp32(0x8001), -0x1p-24f);
    cr_expect_eq(trit_fp16_to_fp32(0x3555), 0.333251953125f);
    cr_expect_eq(bits_of(trit_fp16_to_fp32(0x8000)), 0x80000000u);
    cr_expect(isinf(trit_fp16_to_fp32(0xfc00)) && trit_fp16_to_fp32(0xfc00) < 0);
    cr_expect(isnan(trit_fp16_to_fp32(0x7e00)));
    cr_expect(isnan(trit_fp16_to_fp32(0x7c01)));
}

/* Every fp16 that is not NaN widens and narrows back to itself. */
Test(half, fp16_exhaustive_round_trip) {
    for (uint32_t h = 0; h < 0x10000u; h++) {
        float f = trit_fp16_to_fp32((uint16_t)h);
        if ((h & 0x7c00u) == 0x7c00u && (h & 0x03ffu) != 0) {
            cr_assert(isnan(f), "0x%04x should widen to NaN", (unsigned)h);
            cr_assert(isnan(trit_fp16_to_fp32(trit_fp32_to_fp16(f))));
            continue;
        }
        cr_assert_eq(trit_fp32_to_fp16(f), h, "0x%04x -> %a -> 0x%04x", (unsigned)h, (double)f,
                     (unsigned)trit_fp32_to_fp16(f));
    }
}

#ifdef __FLT16_MAX__
/* The compiler's _Float16 (libgcc / F16C, round to nearest even) is an independent oracle. */
Test(half, fp16_matches_compiler_float16) {
    struct test_rng rng;
    test_rng_seed(&rng, 0xf16);
    for (uint32_t h = 0; h < 0x10000u; h++) {
        if ((h & 0x7c00u) == 0x7c00u && (h & 0x03ffu) != 0) continue;
        uint16_t hv = (uint16_t)h;
        _Float16 v;
        memcpy(&v, &hv, sizeof v);
        cr_assert_eq(bits_of(trit_fp16_to_fp32(hv)), bits_of((float)v), "widen 0x%04x", (unsigned)h);
    }
    for (int i = 0; i < 1 << 20; i++) {
        /* Random fp32 bit patterns around the fp16 range (exponents 2^-30 .. 2^17), both signs. */
        uint32_t u = (uint32_t)test_rng_u64(&rng);
        uint32_t e = 127u - 30u + (uint32_t)test_rng_int(&rng, 0, 47);
        u = (u & 0x807fffffu) | (e << 23);
        if (i % 4 == 0) { /* an exact tie at a rounding position of normals (13) or subnormals (14..24) */
            int p = (int)test_rng_int(&rng, 13, 24);
            u = (u & ~((1u << p) - 1u)) | (1u << (p - 1));
        }
        float f = float_of(u);
        _Float16 v = (_Float16)f;
        uint16_t want;
        memcpy(&want, &v, sizeof want);
        cr_assert_eq(trit_fp32_to_fp16(f), want, "fp32 %a (0x%08x): got 0x%04x, compiler 0x%04x", (double)f,
                     (unsigned)u, (unsigned)trit_fp32_to_fp16(f), (unsigned)want);
    }
}
#endif

/* ---- bf16 ------------------------------------------------------------------------------------- */

Test(half, bf16_known_patterns) {
    cr_expect_eq(trit_fp32_to_bf16(1.0f), 0x3f80);
    cr_expect_eq(trit_fp32_to_bf16(-2.0f), 0xc000);
    cr_expect_eq(trit_fp32_to_bf16(1.0f + 0x1p-8f), 0x3f80);             /* tie: even 0x3f80 */
    cr_expect_eq(trit_fp32_to_bf16(1.0f + 0x3p-8f), 0x3f82);             /* tie: even 0x3f82 */
    cr_expect_eq(trit_fp32_to_bf16(1.0f + 0x1p-8f + 0x1p-20f), 0x3f81);  /* above the tie */
    cr_expect_eq(trit_fp32_to_bf16(float_of(0x7f7fffffu)), 0x7f80);     /* FLT_MAX rounds to inf */
    cr_expect_eq(trit_fp32_to_bf16(float_of(0x7f7f7fffu)), 0x7f7f);     /* below the tie: stays */
    cr_expect_eq(trit_fp32_to_bf16(float_of(0x00008000u)), 0x0000);     /* subnormal tie: even 0 */
    cr_expect_eq(trit_fp32_to_bf16(float_of(0x00018000u)), 0x0002);     /* subnormal tie: even 2 */
    cr_expect_eq(trit_fp32_to_bf16(float_of(0x00000001u)), 0x0000);
    cr_expect_eq(trit_fp32_to_bf16(-INFINITY), 0xff80);
    uint16_t nan = trit_fp32_to_bf16(float_of(0x7f800001u)); /* payload only in the low half */
    cr_expect((nan & 0x7f80) == 0x7f80 && (nan & 0x007f) != 0, "NaN -> 0x%04x", (unsigned)nan);
    cr_expect_eq(trit_bf16_to_fp32(0x3f80), 1.0f);
    cr_expect_eq(trit_bf16_to_fp32(0x0001), float_of(0x00010000u));
    cr_expect(isnan(trit_bf16_to_fp32(0x7fc0)));
}

/* Against nearest-even chosen in double between the two bf16 neighbours of a random float. */
Test(half, bf16_random_against_double) {
    struct test_rng rng;
    test_rng_seed(&rng, 0xbf16);
    for (int i = 0; i < 1 << 18; i++) {
        uint32_t u = (uint32_t)test_rng_u64(&rng);
        if (i % 4 == 0) u = (u & 0xffff0000u) | 0x8000u; /* an exact tie */
        if ((u & 0x7f800000u) == 0x7f800000u) continue;  /* inf and NaN are checked above */
        float f = float_of(u);
        uint32_t lo = u & 0xffff0000u, hi = lo + 0x10000u; /* same sign: |lo| <= |f| < |hi| */
        /* Past the largest bf16, hi is infinity; rounding treats it as 2^128. */
        double vh = (hi & 0x7fffffffu) == 0x7f800000u ? copysign(0x1p128, (double)f) : (double)float_of(hi);
        double dl = fabs((double)f - (double)float_of(lo));
        double dh = fabs(vh - (double)f);
        uint16_t want = (uint16_t)((dl < dh || (dl == dh && ((lo >> 16) & 1u) == 0)) ? lo >> 16 : hi >> 16);
        cr_assert_eq(trit_fp32_to_bf16(f), want, "0x%08x -> 0x%04x, expected 0x%04x", (unsigned)u,
                     (unsigned)trit_fp32_to_bf16(f), (unsigned)want);
        cr_assert_eq(bits_of(trit_bf16_to_fp32(want)), (uint32_t)want << 16);
    }
}

/* ---- canonical tensor ------------------------------------------------------------------------- */

Test(ternary, init_free_equal) {
    struct trit_ternary a, b;
    test_poison(&a, sizeof a);
    cr_assert_eq(trit_ternary_init(&a, 3, 7), TRIT_OK);
    cr_assert_eq(a.n_rows, 3);
    cr_assert_eq(a.n_cols, 7);
    cr_assert_eq(a.row_bytes, 2);
    cr_assert_eq(a.scale, 1.0f);
    cr_assert_eq(a.scale_kind, TRIT_SCALE_MUL);
    for (int i = 0; i < 6; i++) cr_assert_eq(a.codes[i], 0x55, "byte %d: zero codes, padding included", i);
    for (int64_t r = 0; r < 3; r++)
        for (int64_t c = 0; c < 7; c++) cr_assert_eq(trit_ternary_get(&a, r, c), 0);

    cr_assert_eq(trit_ternary_init(&b, 3, 7), TRIT_OK);
    cr_assert(trit_ternary_equal(&a, &b));
    trit_ternary_set(&a, 2, 6, -1);
    cr_assert_eq(trit_ternary_get(&a, 2, 6), -1);
    cr_assert_eq(a.codes[5], 0x45, "(2, 6): pair 2 of byte 5 becomes 00 (0b01000101); padding pair 3 stays 01");
    cr_assert_not(trit_ternary_equal(&a, &b));
    trit_ternary_set(&b, 2, 6, -1);
    cr_assert(trit_ternary_equal(&a, &b));
    b.scale = -0.0f;
    a.scale = 0.0f;
    cr_assert_not(trit_ternary_equal(&a, &b), "scales compare bit for bit");
    b.scale = 0.0f;
    b.scale_kind = TRIT_SCALE_DIV;
    cr_assert_not(trit_ternary_equal(&a, &b));

    trit_ternary_free(&a);
    cr_assert_null(a.codes);
    cr_assert_eq(a.n_rows, 0);
    trit_ternary_free(&a); /* a zeroed struct is fine */
    trit_ternary_free(NULL);
    trit_ternary_free(&b);

    cr_assert_eq(trit_ternary_init(&a, 0, 4), TRIT_ERR_INVALID_ARG);
    cr_assert_null(a.codes);
    cr_assert_eq(trit_ternary_init(&a, 4, -1), TRIT_ERR_INVALID_ARG);
    cr_assert_eq(trit_ternary_init(&a, INT64_MAX / 2, INT64_MAX / 2), TRIT_ERR_INVALID_ARG);
}

/* ---- ternarization ---------------------------------------------------------------------------- */

static void expect_codes(const struct trit_ternary *t, const int *want) {
    for (int64_t r = 0; r < t->n_rows; r++)
        for (int64_t c = 0; c < t->n_cols; c++)
            cr_expect_eq(trit_ternary_get(t, r, c), want[r * t->n_cols + c], "(%lld, %lld): got %d, expected %d",
                         (long long)r, (long long)c, trit_ternary_get(t, r, c), want[r * t->n_cols + c]);
}

Test(ternarize, known_answers) {
    struct trit_ternary t;
    /* mean|W| = (0.5 + 1.5 + 0 + 3) / 4 = 1.25; W / 1.25 = 0.4, -1.2, 0, 2.4 -> 0, -1, 0, 1 (clamped). */
    const float w1[4] = {0.5f, -1.5f, 0.0f, 3.0f};
    cr_assert_eq(trit_ternarize(w1, 1, 4, &t), TRIT_OK);
    cr_expect_eq(t.scale, 1.25f);
    cr_expect_eq(t.scale_kind, TRIT_SCALE_MUL);
    expect_codes(&t, (const int[]){0, -1, 0, 1});
    trit_ternary_free(&t);

    /* Ties: mean|W| = 8 / 4 = 2; W / 2 = 0.5, -0.5, 1.5, 1.5 -> rint 0, -0, 2, 2 -> 0, 0, 1, 1.
     * (roundf would give 1, -1 for the first two.) */
    const float w2[4] = {1.0f, -1.0f, 3.0f, 3.0f};
    cr_assert_eq(trit_ternarize(w2, 1, 4, &t), TRIT_OK);
    cr_expect_eq(t.scale, 2.0f);
    expect_codes(&t, (const int[]){0, 0, 1, 1});
    trit_ternary_free(&t);

    /* 2 x 3, row-major: sum|W| = 0.25 + 1 + 1.25 + 0.125 + 0.375 = 3, mean = 0.5;
     * W / 0.5 = [0.5, -2, 0], [2.5, -0.25, 0.75] -> [0, -1, 0], [1, 0, 1]. */
    const float w3[6] = {0.25f, -1.0f, 0.0f, 1.25f, -0.125f, 0.375f};
    cr_assert_eq(trit_ternarize(w3, 2, 3, &t), TRIT_OK);
    cr_expect_eq(t.scale, 0.5f);
    cr_expect_eq(t.n_rows, 2);
    cr_expect_eq(t.n_cols, 3);
    expect_codes(&t, (const int[]){0, -1, 0, 1, 0, 1});
    trit_ternary_free(&t);

    /* Floor: mean|W| = 3.5e-6 < 1e-5, so alpha = 1e-5; W / alpha = 0.6, -0.1 -> 1, 0. */
    const float w4[2] = {6e-6f, -1e-6f};
    cr_assert_eq(trit_ternarize(w4, 1, 2, &t), TRIT_OK);
    cr_expect_eq(t.scale, TRIT_WEIGHT_EPS);
    expect_codes(&t, (const int[]){1, 0});
    trit_ternary_free(&t);
    cr_expect_eq(trit_absmean((const float[]){0.0f, 0.0f}, 2), TRIT_WEIGHT_EPS);
}

Test(ternarize, refuses_bad_input) {
    struct trit_ternary t;
    const float w[3] = {1.0f, NAN, 2.0f};
    cr_assert_eq(trit_ternarize(w, 1, 3, &t), TRIT_ERR_INVALID_ARG);
    cr_assert_null(t.codes);
    cr_assert_eq(trit_ternarize_cols(w, 1, 3, 2, 2, &t), TRIT_ERR_INVALID_ARG);
    cr_assert_eq(trit_ternarize_cols(w, 1, 3, 1, 4, &t), TRIT_ERR_INVALID_ARG);
    /* The NaN is outside the block [2, 3): fine. */
    cr_assert_eq(trit_ternarize_cols(w, 1, 3, 2, 3, &t), TRIT_OK);
    cr_assert_eq(t.scale, 2.0f);
    trit_ternary_free(&t);
}

/* Random matrices of odd shapes: every code is clamp(rintf(w / alpha)), alpha the double-summed
 * absmean; sizes with tails of the 4-per-byte packing. */
Test(ternarize, random_matches_definition) {
    struct test_rng rng;
    test_rng_seed(&rng, 0x7e2);
    const int64_t shapes[][2] = {{1, 1}, {3, 5}, {7, 255}, {17, 257}, {4, 300}};
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        int64_t n_rows = shapes[s][0], n_cols = shapes[s][1], n = n_rows * n_cols;
        float *w = trit_alloc((size_t)n * sizeof *w);
        double sum = 0.0;
        for (int64_t i = 0; i < n; i++) {
            w[i] = 0.02f * test_rng_normal(&rng) + (i == 0 ? 0.01f : 0.0f); /* never all zero */
            sum += fabs((double)w[i]);
        }
        float alpha = fmaxf((float)(sum / (double)n), TRIT_WEIGHT_EPS);
        cr_assert_eq(trit_absmean(w, n), alpha);
        struct trit_ternary t;
        cr_assert_eq(trit_ternarize(w, n_rows, n_cols, &t), TRIT_OK);
        cr_assert_eq(t.scale, alpha);
        int64_t n_zero = 0;
        for (int64_t i = 0; i < n; i++) {
            float r = rintf(w[i] / alpha);
            int want = r > 0.0f ? 1 : r < 0.0f ? -1 : 0;
            cr_assert_eq(trit_ternary_get(&t, i / n_cols, i % n_cols), want, "element %lld", (long long)i);
            n_zero += want == 0;
        }
        /* For Gaussian weights P(|w| < alpha / 2) = P(|z| < 0.4) ~ 0.31: codes of all three kinds occur. */
        if (n >= 1000) cr_assert(n_zero > n / 10 && n_zero < n / 2, "%lld zeros of %lld", (long long)n_zero, (long long)n);
        trit_ternary_free(&t);
        trit_free(w);
    }
}

/* Grouped mode: a column block is ternarized with its own alpha, not the tensor's. */
Test(ternarize, grouped_uses_group_alpha) {
    /* 2 x 6. Columns [0, 3): sum|W| = 0.25 + 0.125 + 0.125 + 0.25 = 0.75, alpha = 0.125,
     *   W / alpha = [2, -1, 0], [1, 0, 2] -> [1, -1, 0], [1, 0, 1].
     * Columns [3, 6): sum|W| = 4 + 4 + 2 + 2 = 12, alpha = 2, W / alpha = [2, -2, 0], [1, 0, -1].
     * Whole tensor: alpha = 12.75 / 12 = 1.0625, which zeroes every weight of the first block. */
    const float w[12] = {0.25f, -0.125f, 0.0f, 4.0f, -4.0f, 0.0f, 0.125f, 0.0f, 0.25f, 2.0f, 0.0f, -2.0f};
    struct trit_ternary g0, g1, all;
    cr_assert_eq(trit_ternarize_cols(w, 2, 6, 0, 3, &g0), TRIT_OK);
    cr_assert_eq(trit_ternarize_cols(w, 2, 6, 3, 6, &g1), TRIT_OK);
    cr_assert_eq(trit_ternarize(w, 2, 6, &all), TRIT_OK);
    cr_expect_eq(g0.n_cols, 3);
    cr_expect_eq(g0.scale, 0.125f);
    expect_codes(&g0, (const int[]){1, -1, 0, 1, 0, 1});
    cr_expect_eq(g1.scale, 2.0f);
    expect_codes(&g1, (const int[]){1, -1, 0, 1, 0, -1});
    cr_expect_eq(all.scale, 1.0625f);
    expect_codes(&all, (const int[]){0, 0, 0, 1, -1, 0, 0, 0, 0, 1, 0, -1});
    trit_ternary_free(&g0);
    trit_ternary_free(&g1);
    trit_ternary_free(&all);
}

/* ---- recovery of an already-ternary tensor ---------------------------------------------------- */

Test(from_scaled, exact_scale_where_absmean_shrinks) {
    /* W = 0.7 * [1, -1, 0, 1, -0, 1]: from_scaled recovers c = 0.7 exactly, while absmean would give
     * 4 * 0.7 / 6 ~ 0.467 (zeros pull the mean down), a third too small. */
    const float c = 0.7f;
    const float w[6] = {c, -c, 0.0f, c, -0.0f, c};
    struct trit_ternary t, a;
    cr_assert_eq(trit_ternary_from_scaled(w, 2, 3, &t), TRIT_OK);
    cr_expect_eq(bits_of(t.scale), bits_of(c));
    cr_expect_eq(t.scale_kind, TRIT_SCALE_MUL);
    expect_codes(&t, (const int[]){1, -1, 0, 1, 0, 1});
    cr_assert_eq(trit_ternarize(w, 2, 3, &a), TRIT_OK);
    cr_expect(a.scale < 0.7f * c, "absmean %g shrinks the scale", (double)a.scale);
    a.scale = t.scale;
    cr_expect(trit_ternary_equal(&a, &t), "same codes, only the scale differs");
    trit_ternary_free(&t);
    trit_ternary_free(&a);
}

Test(from_scaled, refuses_different_magnitudes) {
    struct trit_ternary t;
    const float w1[3] = {0.7f, -0.7f, 0.70000005f}; /* one ulp apart */
    test_poison(&t, sizeof t);
    cr_assert_eq(trit_ternary_from_scaled(w1, 1, 3, &t), TRIT_ERR_UNSUPPORTED);
    cr_assert_null(t.codes);
    cr_assert_eq(t.n_rows, 0);
    const float w2[4] = {0.5f, 0.0f, -1.0f, 0.5f};
    cr_assert_eq(trit_ternary_from_scaled(w2, 2, 2, &t), TRIT_ERR_UNSUPPORTED);
    cr_assert(strstr(trit_last_error(), "(1, 0)") != NULL, "names the element: %s", trit_last_error());
    const float w3[2] = {INFINITY, -INFINITY};
    cr_assert_eq(trit_ternary_from_scaled(w3, 1, 2, &t), TRIT_ERR_UNSUPPORTED);
    const float w4[2] = {NAN, 1.0f};
    cr_assert_eq(trit_ternary_from_scaled(w4, 1, 2, &t), TRIT_ERR_UNSUPPORTED);
    const float w5[3] = {0.0f, -0.0f, 0.0f};
    cr_assert_eq(trit_ternary_from_scaled(w5, 1, 3, &t), TRIT_OK);
    cr_expect_eq(t.scale, 1.0f);
    expect_codes(&t, (const int[]){0, 0, 0});
    trit_ternary_free(&t);
}

/* ---- activation quantization ------------------------------------------------------------------ */

Test(act_quant, ties_round_half_to_even) {
    /* max|x| = 127 makes s = 127 / 127 = 1 exactly, so q = rint(x): ties go to the even integer. */
    const float x[10] = {127.0f, 2.5f, 3.5f, -2.5f, 0.5f, 1.5f, -0.5f, -1.5f, -127.0f, 4.5f};
    const int8_t want[10] = {127, 2, 4, -2, 0, 2, 0, -2, -127, 4};
    int8_t q[10];
    test_poison(q, sizeof q);
    float s = trit_quantize_row_i8(x, 10, q);
    cr_assert_eq(s, 1.0f);
    for (int i = 0; i < 10; i++) cr_expect_eq(q[i], want[i], "x = %g -> %d, expected %d", (double)x[i], q[i], want[i]);
}

Test(act_quant, known_answers) {
    /* max|x| = 1: s = 127; x * s = 63.5 (tie -> 64), -127, 31.75 -> 32, 0.0625 * 127 = 7.9375 -> 8. */
    const float x1[4] = {0.5f, -1.0f, 0.25f, 0.0625f};
    int8_t q[4];
    cr_assert_eq(trit_quantize_row_i8(x1, 4, q), 127.0f);
    cr_expect(q[0] == 64 && q[1] == -127 && q[2] == 32 && q[3] == 8, "%d %d %d %d", q[0], q[1], q[2], q[3]);
    /* max|x| = 2e-6 < 1e-5: s = 127 / 1e-5 = 1.27e7; x * s = 12.7 -> 13, -25.4 -> -25. */
    const float x2[2] = {1e-6f, -2e-6f};
    float s = trit_quantize_row_i8(x2, 2, q);
    cr_expect_eq(s, TRIT_ACT_QMAX / TRIT_ACT_EPS);
    cr_expect(q[0] == 13 && q[1] == -25, "%d %d", q[0], q[1]);
    /* A NaN element gives 0 without undefined behaviour; the others are scaled by the finite max. */
    const float x3[3] = {NAN, 2.0f, -1.0f};
    cr_assert_eq(trit_quantize_row_i8(x3, 3, q), 63.5f);
    cr_expect(q[0] == 0 && q[1] == 127 && q[2] == -64, "%d %d %d", q[0], q[1], q[2]); /* -63.5 -> -64 */
}

Test(act_quant, random_rows) {
    struct test_rng rng;
    test_rng_seed(&rng, 0xac7);
    const int64_t ks[] = {1, 3, 255, 257, 2560};
    for (size_t t = 0; t < sizeof ks / sizeof ks[0]; t++) {
        int64_t k = ks[t];
        float *x = trit_alloc((size_t)k * sizeof *x);
        int8_t *q = trit_alloc((size_t)k);
        float amax = 0.0f;
        for (int64_t i = 0; i < k; i++) {
            x[i] = test_rng_uniform(&rng, -3.0f, 3.0f) + 0.001f;
            amax = fmaxf(amax, fabsf(x[i]));
        }
        test_poison(q, (size_t)k);
        float s = trit_quantize_row_i8(x, k, q);
        cr_assert_eq(s, 127.0f / amax);
        for (int64_t i = 0; i < k; i++) {
            cr_assert_eq(q[i], (int8_t)rintf(x[i] * s), "element %lld", (long long)i);
            cr_assert(q[i] >= -127 && q[i] <= 127);
            if (fabsf(x[i]) == amax) cr_assert_eq(abs(q[i]), 127);
        }
        trit_free(x);
        trit_free(q);
    }
}
