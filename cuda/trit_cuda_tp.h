/*
 * trit_cuda_tp.h: the device ops of tensor parallelism on GPUs (cuda/ops_tp.cu), callable from C,
 * with trit_cuda.h's conventions (d_ pointers, a stream as void *, asynchronous, checked shapes).
 * The math is host/tp/tp.h's; the per-thread arithmetic is in tp_hd.h.
 */
#ifndef TRIT_CUDA_TP_H
#define TRIT_CUDA_TP_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#include "core/core.h"

/* d_pairs (m, 2) = per token, the Neumaier (sum, correction) pair of sum(x^2) over the row
 * d_x (m, n) fp32: this rank's part of an exact-mode sum of squares. */
enum trit_status trit_cuda_tp_sumsq(const float *d_x, int64_t m, int64_t n, double *d_pairs, void *stream);

/* Per token t of d_x (m, n), this rank's n of a row of n_full values: when d_w (n) is not NULL,
 * x = w * (x * inv) in place with inv = 1 / sqrt(ss / n_full + eps) and ss the combination in
 * rank order of the all-gathered pairs d_pairs_all (n_ranks, m, 2); then d_amax[t] = max |x|. */
enum trit_status trit_cuda_tp_norm_absmax(float *d_x, int64_t m, int64_t n, int64_t n_full,
                                          const double *d_pairs_all, int n_ranks, const float *d_w, float eps,
                                          float *d_amax, void *stream);

/* d_x[i] += d_y[i] for i < n (IEEE single adds). */
enum trit_status trit_cuda_tp_add(float *d_x, const float *d_y, int64_t n, void *stream);

#ifdef __cplusplus
}
#endif

#endif /* TRIT_CUDA_TP_H */
