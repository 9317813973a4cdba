/*
 * tp_hd.h: the per-thread arithmetic of exact-mode tensor parallelism on the GPU (cuda/ops_tp.cu),
 * as TRIT_HD functions that also run in the CPU tests (tests/test_cuda_tp_hd.c).
 *
 * A sub-norm's input row is sharded over the ranks; exact mode needs the sum of squares of the
 * whole row, and that sum must not depend on how the row was split (host/tp/plan.h). Each rank
 * sums its x_i^2 (exact in double) into a Neumaier (sum, correction) pair; the pairs of all ranks
 * are all-gathered and combined in rank order. The pair carries ~100 bits, so the combined double
 * is the double nearest the exact sum whatever the split and whatever order a rank summed in
 * (the GPU sums per thread, then in a shuffle tree), except when the exact sum lies within
 * ~n 2^-106 of a midpoint between two doubles. The result equals host/tp/plan.c's
 * trit_tp_sumsq_combine, which the CPU ranks use, under the same condition.
 */
#ifndef TRIT_TP_HD_H
#define TRIT_TP_HD_H

#include <math.h>
#include <stdint.h>

#include "ternary_layout.h" /* TRIT_HD */

#if defined(__CUDA_ARCH__)
#define TRIT_DADD(a, b) __dadd_rn((a), (b))
#define TRIT_DSUB(a, b) __dsub_rn((a), (b))
#define TRIT_DMUL(a, b) __dmul_rn((a), (b))
#else
#define TRIT_DADD(a, b) ((a) + (b))
#define TRIT_DSUB(a, b) ((a) - (b))
#define TRIT_DMUL(a, b) ((a) * (b))
#endif

/* Neumaier's step (plan.c's): *s + v, with the rounding error of that addition added to *c. */
TRIT_HD void trit_tp_neumaier(double *s, double *c, double v) {
    const double t = TRIT_DADD(*s, v);
    if (fabs(*s) >= fabs(v)) *c = TRIT_DADD(*c, TRIT_DADD(TRIT_DSUB(*s, t), v));
    else *c = TRIT_DADD(*c, TRIT_DADD(TRIT_DSUB(v, t), *s));
    *s = t;
}

/* One element's term: x^2 in double, exact (24-bit significands). */
TRIT_HD void trit_tp_sumsq_add(double *s, double *c, float x) {
    trit_tp_neumaier(s, c, TRIT_DMUL((double)x, (double)x));
}

/* Merges pair (s2, c2) into (s, c): a shuffle-tree step and the per-warp combine. */
TRIT_HD void trit_tp_pair_merge(double *s, double *c, double s2, double c2) {
    trit_tp_neumaier(s, c, s2);
    trit_tp_neumaier(s, c, c2);
}

/* The whole row's sum of squares from n_ranks pairs in rank order, pair p at pairs[p * stride]:
 * trit_tp_sumsq_combine's loop (sum, then correction, rank by rank), rounded once to float. */
TRIT_HD float trit_tp_pairs_combine(const double *pairs, int n_ranks, int64_t stride) {
    double s = 0.0, c = 0.0;
    for (int p = 0; p < n_ranks; p++) {
        trit_tp_neumaier(&s, &c, pairs[(int64_t)p * stride]);
        trit_tp_neumaier(&s, &c, pairs[(int64_t)p * stride + 1]);
    }
    return (float)TRIT_DADD(s, c);
}

#endif /* TRIT_TP_HD_H */
