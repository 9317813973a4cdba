/*
 * topk_cases.h: the rows and penalty lists on which the device top-k (cuda/ops_topk.cu) is checked
 * against host/sampler.c's trit_topk_penalized: by its CPU emulation (test_cuda_ops_hd.c) and by the
 * kernel itself (test_cuda_kernels.c). Static functions, included by those two tests only.
 */
#ifndef TRIT_TEST_TOPK_CASES_H
#define TRIT_TEST_TOPK_CASES_H

#include <float.h>
#include <math.h>
#include <stdint.h>

#include "backend.h" /* TRIT_TOPK_MAX */
#include "support.h"

/* Row lengths (the last is the Llama 3 vocabulary) and k; k = n is added where n <= 256. */
static const int64_t TOPK_NS[] = {1, 2, 31, 33, 257, 1000, 4099, 128256};
static const int32_t TOPK_KS[] = {1, 2, 40, 255, 256};
#define TOPK_N_NS ((int)(sizeof TOPK_NS / sizeof TOPK_NS[0]))
#define TOPK_N_KS ((int)(sizeof TOPK_KS / sizeof TOPK_KS[0]))
#define TOPK_ROW_KINDS 6
#define TOPK_PEN_MAX 64 /* capacity of a penalty list (the sampler's default repeat_last_n) */

/* Row kind 0: logits ~ N(0, 3^2); 1: all equal; 2: steps of 0.25 in [-4, 4] (ties everywhere);
 * 3: kind 0 with NaN, +-inf, -0, +0, denormals and +-FLT_MAX sprinkled in; 4: all NaN (every key
 * -inf); 5: only -0, +0 and the smallest denormals (ties through the sign of zero). */
static void topk_fill_row(struct test_rng *rng, int kind, float *x, int64_t n) {
    static const float specials[] = {NAN, INFINITY, -INFINITY, -0.0f, 0.0f, 1e-45f, -1e-45f, FLT_MIN / 4,
                                     FLT_MAX, -FLT_MAX};
    for (int64_t i = 0; i < n; i++) {
        switch (kind) {
        case 0: x[i] = 3.0f * test_rng_normal(rng); break;
        case 1: x[i] = 1.5f; break;
        case 2: x[i] = 0.25f * (float)test_rng_int(rng, -16, 16); break;
        case 3:
            x[i] = test_rng_int(rng, 0, 7) == 0 ? specials[test_rng_int(rng, 0, 9)] : 3.0f * test_rng_normal(rng);
            break;
        case 4: x[i] = NAN; break;
        default: x[i] = specials[test_rng_int(rng, 3, 6)]; break;
        }
    }
}

/* The penalty list of case c: none; one id; TOPK_PEN_MAX ids with repeats and ids outside
 * [0, n), by c % 3. Returns its length; *penalty cycles through 1.3, 0.7 and 1 (by c / 3). */
static int32_t topk_fill_pen(struct test_rng *rng, int c, int64_t n, int32_t *pen, float *penalty) {
    static const float penalties[] = {1.3f, 0.7f, 1.0f};
    *penalty = penalties[(c / 3) % 3];
    if (c % 3 == 0) return 0;
    if (c % 3 == 1) {
        pen[0] = (int32_t)test_rng_int(rng, 0, n - 1);
        return 1;
    }
    static const int32_t outside[] = {-1, -1000, INT32_MIN, INT32_MAX};
    for (int j = 0; j < TOPK_PEN_MAX; j++) {
        if (j % 9 == 8) pen[j] = outside[j % 4];
        else if (j % 9 == 7) pen[j] = (int32_t)n + j; /* just past the row */
        else if (j > 0 && j % 5 == 0) pen[j] = pen[j - 1 - j % 3]; /* a repeat */
        else pen[j] = (int32_t)test_rng_int(rng, 0, n - 1);
    }
    return TOPK_PEN_MAX;
}

/* One case: a row x (n) of a kind, k, a penalty list. */
struct topk_case {
    int64_t n;
    int kind;
    int32_t k, n_pen;
    float penalty;
    int32_t pen[TOPK_PEN_MAX];
};

/* Steps through the cases: every n x row kind x k (k <= n; k = n too where n <= TRIT_TOPK_MAX),
 * the penalty lists cycling. *it starts at 0; fills c and x (room for the largest n); returns 0
 * after the last case. */
static int topk_case_next(struct test_rng *rng, int *it, float *x, struct topk_case *c) {
    for (;;) {
        const int per_n = TOPK_ROW_KINDS * (TOPK_N_KS + 1), ni = *it / per_n;
        const int kind = *it % per_n / (TOPK_N_KS + 1), ki = *it % (TOPK_N_KS + 1);
        if (ni >= TOPK_N_NS) return 0;
        (*it)++;
        const int64_t n = TOPK_NS[ni];
        const int32_t k = ki < TOPK_N_KS ? TOPK_KS[ki] : (int32_t)n;
        if (k > n || (ki == TOPK_N_KS && n > TRIT_TOPK_MAX)) continue;
        c->n = n, c->kind = kind, c->k = k;
        topk_fill_row(rng, kind, x, n);
        /* every list with every k, kind and n: the case number shifted by one per (n, kind) */
        c->n_pen = topk_fill_pen(rng, *it + *it / (TOPK_N_KS + 1), n, c->pen, &c->penalty);
        return 1;
    }
}

#endif /* TRIT_TEST_TOPK_CASES_H */
