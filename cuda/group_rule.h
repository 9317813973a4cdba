/*
 * group_rule.h: the argument checks the group rule's kernels share (gemv.cu, gemm.cu), and the one
 * the kernels with one scale per matrix make of a group-scaled one. CUDA C++ only; trit_cuda.h has
 * the contracts.
 */
#ifndef TRIT_CUDA_GROUP_RULE_H
#define TRIT_CUDA_GROUP_RULE_H

#include "trit_cuda.h"

/* A group-scaled matrix with groups of 64 or 128 columns, activations with act_block 0 or 64, and
 * the scales' index shift: group index = k-block >> g_shift. */
static inline enum trit_status trit_group_check(const char *op, const struct trit_cuda_ternary *w,
                                                const int32_t *d_bsum, const float *d_act_inv, int64_t act_block,
                                                int *g_shift) {
    if (!d_bsum || !d_act_inv) return trit_error(TRIT_ERR_INVALID_ARG, "%s: NULL argument", op);
    if (w->group <= 0 || !w->d_group_scales || w->n_groups != (w->n_cols + w->group - 1) / w->group)
        return trit_error(TRIT_ERR_INVALID_ARG, "%s: the matrix has no group scales", op);
    if (w->group != TRIT_GROUP_UNIT && w->group != 2 * TRIT_GROUP_UNIT)
        return trit_error(TRIT_ERR_UNSUPPORTED, "%s: groups of %lld columns (64 or 128)", op, (long long)w->group);
    if (act_block != 0 && act_block != TRIT_GROUP_UNIT)
        return trit_error(TRIT_ERR_INVALID_ARG, "%s: act_block %lld (0 or %d)", op, (long long)act_block,
                          TRIT_GROUP_UNIT);
    *g_shift = w->group == TRIT_GROUP_UNIT ? 0 : 1;
    return TRIT_OK;
}

/* The kernels with one scale per matrix and a group-scaled one: its int32 sums are right on dp4a
 * and the tensor cores (a code 3 decodes to t + 1 = 3), but it has no one scale for an fp32
 * epilogue, and the add-only masks read its t = +2 as +1. */
static inline enum trit_status trit_no_group_check(const char *op, const struct trit_cuda_ternary *w,
                                                   bool int32_sums) {
    if (w->group > 0 && !int32_sums)
        return trit_error(TRIT_ERR_INVALID_ARG, "%s: a group-scaled matrix takes the group rule's kernels", op);
    return TRIT_OK;
}

#endif /* TRIT_CUDA_GROUP_RULE_H */
