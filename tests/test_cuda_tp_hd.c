// labels: unit
/* test_cuda_tp_hd.c: the per-thread arithmetic of tensor parallelism on GPUs (cuda/tp_hd.h), run
 * on the CPU against the CPU ranks' own functions (host/tp/plan.c): the Neumaier step and the
 * rank-order combine bit for bit; and a CPU emulation of trit_tp_sumsq_kernel (cuda/ops_tp.cu:
 * 256 threads striding the row, an xor-shuffle tree per warp, the warps in order) whose pairs,
 * combined over any split of the row, give the float that the CPU ranks' pairs give. That is what
 * makes exact mode's logits the same on 1, 2 or 5 GPUs and on CPU ranks. Runs everywhere.
 *
 *   ctest --test-dir build -R test_cuda_tp_hd --output-on-failure */
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "ops_hd.h"
#include "support.h"
#include "tp/plan.h"
#include "tp_hd.h"

enum { THREADS = 256, WARPS = THREADS / 32 };

/* trit_tp_sumsq_kernel for one row, step by step: thread partials, then per warp the xor tree
 * (every lane reads its partner's values from before the step), then warp 0..7 in order. */
static void emu_sumsq_kernel(const float *x, int64_t n, double pair[2]) {
    double s[THREADS], c[THREADS];
    for (int t = 0; t < THREADS; t++) {
        s[t] = 0.0, c[t] = 0.0;
        for (int64_t i = t; i < n; i += THREADS) trit_tp_sumsq_add(&s[t], &c[t], x[i]);
    }
    for (int w = 0; w < WARPS; w++) {
        double *ws = s + 32 * w, *wc = c + 32 * w;
        for (int o = 16; o > 0; o >>= 1) {
            double ps[32], pc[32];
            memcpy(ps, ws, sizeof ps), memcpy(pc, wc, sizeof pc);
            for (int l = 0; l < 32; l++) trit_tp_pair_merge(&ws[l], &wc[l], ps[l ^ o], pc[l ^ o]);
        }
    }
    double rs = s[0], rc = c[0];
    for (int w = 1; w < WARPS; w++) trit_tp_pair_merge(&rs, &rc, s[32 * w], c[32 * w]);
    pair[0] = rs, pair[1] = rc;
}

static void fill_row(struct test_rng *rng, float *x, int64_t n, int kind) {
    for (int64_t i = 0; i < n; i++) {
        float v = test_rng_normal(rng);
        if (kind == 1) v *= (i % 97 == 0) ? 300.0f : 0.01f;       /* outliers over a small bulk */
        if (kind == 2) v = ldexpf(v, (int)(i % 40) - 20);          /* 40 binades */
        if (kind == 3) v = (float)(int)(v * 4.0f) * 0.25f;         /* few distinct values, ties */
        x[i] = v;
    }
}

Test(cuda_tp_hd, neumaier_and_combine_match_plan_c) {
    struct test_rng rng;
    test_rng_seed(&rng, 0x7101u);
    const int64_t ns[] = {1, 7, 255, 256, 257, 2560, 6912};
    for (size_t k = 0; k < sizeof ns / sizeof ns[0]; k++) {
        const int64_t n = ns[k];
        float *x = malloc((size_t)n * sizeof *x);
        fill_row(&rng, x, n, (int)(k % 4));
        /* a sequential sum with the HD step equals plan.c's partial */
        double want[2], s = 0.0, c = 0.0;
        trit_tp_sumsq_partial(x, n, want);
        for (int64_t i = 0; i < n; i++) trit_tp_sumsq_add(&s, &c, x[i]);
        cr_assert(memcmp(&s, &want[0], sizeof s) == 0 && memcmp(&c, &want[1], sizeof c) == 0, "n %ld", (long)n);
        /* the strided combine over (rank, token) pairs equals plan.c's over packed pairs */
        enum { P = 5, M = 3 };
        double pairs[P * 2], all[P * M * 2];
        for (int p = 0; p < P; p++) {
            int64_t b, cnt;
            trit_tp_split(n, P, p, &b, &cnt);
            double pp[2] = {0.0, 0.0};
            if (cnt > 0) trit_tp_sumsq_partial(x + b, cnt, pp);
            pairs[2 * p] = pp[0], pairs[2 * p + 1] = pp[1];
            for (int t = 0; t < M; t++) all[(p * M + t) * 2] = pp[0] * (t + 1), all[(p * M + t) * 2 + 1] = pp[1] * (t + 1);
        }
        const float a = trit_tp_sumsq_combine(pairs, P), b = trit_tp_pairs_combine(pairs, P, 2);
        cr_assert(memcmp(&a, &b, sizeof a) == 0, "n %ld: %a vs %a", (long)n, (double)a, (double)b);
        /* token 0's pairs at stride 2 M in the (rank, token, 2) layout the kernel reads */
        const float c0 = trit_tp_pairs_combine(all, P, 2 * M);
        cr_assert(memcmp(&c0, &a, sizeof a) == 0, "n %ld: strided %a vs %a", (long)n, (double)c0, (double)a);
        free(x);
    }
}

/* The GPU's summation order, over any split, gives the CPU ranks' float (and the 1-rank one). */
Test(cuda_tp_hd, kernel_order_sum_of_squares_is_split_invariant) {
    struct test_rng rng;
    test_rng_seed(&rng, 0x7102u);
    const int64_t ns[] = {96, 640, 2560, 6912, 13824};
    const int splits[] = {1, 2, 3, 4, 5, 8};
    int checked = 0;
    for (int trial = 0; trial < 40; trial++) {
        const int64_t n = ns[trial % 5];
        float *x = malloc((size_t)n * sizeof *x);
        fill_row(&rng, x, n, trial % 4);
        double one[2];
        trit_tp_sumsq_partial(x, n, one);
        const float want = trit_tp_sumsq_combine(one, 1);
        for (size_t k = 0; k < sizeof splits / sizeof splits[0]; k++) {
            const int P = splits[k];
            double gpu[16], cpu[16];
            for (int p = 0; p < P; p++) {
                int64_t b, cnt;
                trit_tp_split(n, P, p, &b, &cnt);
                emu_sumsq_kernel(x + b, cnt, gpu + 2 * p);
                trit_tp_sumsq_partial(x + b, cnt, cpu + 2 * p);
            }
            const float g = trit_tp_pairs_combine(gpu, P, 2), c = trit_tp_sumsq_combine(cpu, P);
            cr_assert(memcmp(&g, &want, sizeof g) == 0 && memcmp(&c, &want, sizeof c) == 0,
                      "trial %d n %ld P %d: gpu %a cpu %a one rank %a", trial, (long)n, P, (double)g, (double)c,
                      (double)want);
            checked++;
        }
        free(x);
    }
    cr_assert_eq(checked, 40 * 6);
}

/* The norm the kernel applies with the combined sum: host/cpu/backend_cpu.c's expressions. */
Test(cuda_tp_hd, sharded_norm_matches_cpu_ranks_expressions) {
    struct test_rng rng;
    test_rng_seed(&rng, 0x7103u);
    for (int i = 0; i < 10000; i++) {
        const float ss = test_rng_uniform(&rng, 0.0f, 5000.0f), x = test_rng_normal(&rng) * 4.0f;
        const float w = test_rng_uniform(&rng, 0.5f, 1.5f);
        const int64_t n_tot = 1 + (int64_t)(test_rng_uniform(&rng, 0.0f, 8000.0f));
        const float eps = 1e-5f;
        const float inv_cpu = 1.0f / sqrtf(ss / (float)n_tot + eps);
        const float inv = trit_rms_inv(ss, n_tot, eps);
        cr_assert(memcmp(&inv, &inv_cpu, sizeof inv) == 0);
        const float y_cpu = w * (x * inv_cpu), y = trit_rms_apply(x, inv, w);
        cr_assert(memcmp(&y, &y_cpu, sizeof y) == 0);
    }
}
