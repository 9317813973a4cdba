/*
 * gemm_scalar.c: the portable micro-kernel (kernels.h), for CPUs with no SIMD family of ours.
 * Reads the packed layout 64 columns of 4 rows at a time; plain C that compilers vectorize with
 * the baseline instruction set (SSE2 on x86-64). The specification stays trit_gemm_ref.
 */
#include <string.h>

#include "cpu/kernels.h"

static int32_t sum_i8(const int8_t *q, int64_t n) {
    int32_t s = 0;
    for (int64_t i = 0; i < n; i++) s += q[i];
    return s;
}

/* sum over one k-block of code * a for one row's 64 bytes; a holds 256 activations. */
static inline int32_t kb_dot(const uint8_t *wb, const int8_t *a) {
    int32_t s = 0;
    for (int b = 0; b < TRIT_CPU_KB_BYTES; b++) {
        int v = wb[b];
        s += (v & 3) * a[b] + ((v >> 2) & 3) * a[64 + b] + ((v >> 4) & 3) * a[128 + b] + (v >> 6) * a[192 + b];
    }
    return s;
}

void trit_cpu_tile_scalar(const struct trit_cpu_tile *tile) {
    int64_t n_full = tile->n_cols / TRIT_CPU_KB_COLS;
    int64_t rem = tile->n_cols - n_full * TRIT_CPU_KB_COLS;
    /* The last partial k-block's activations, zero-padded (its padding codes are 0 anyway; the
     * copy keeps the reads inside q). */
    int8_t tail[TRIT_CPU_MAX_TOKENS][TRIT_CPU_KB_COLS];
    int32_t qsum[TRIT_CPU_MAX_TOKENS];
    for (int t = 0; t < tile->n_tok; t++) {
        qsum[t] = sum_i8(tile->q[t], tile->n_cols);
        if (rem) {
            memset(tail[t], 0, sizeof tail[t]);
            memcpy(tail[t], tile->q[t] + n_full * TRIT_CPU_KB_COLS, (size_t)rem);
        }
    }
    for (int64_t rg = 0; rg < tile->n_rg; rg++) {
        const uint8_t *w = tile->w + rg * tile->n_kb * TRIT_CPU_TILE_BYTES;
        for (int t = 0; t < tile->n_tok; t++) {
            for (int r = 0; r < TRIT_CPU_RG_ROWS; r++) {
                int32_t s = 0;
                for (int64_t kb = 0; kb < tile->n_kb; kb++) {
                    const int8_t *a = kb < n_full ? tile->q[t] + kb * TRIT_CPU_KB_COLS : tail[t];
                    s += kb_dot(w + kb * TRIT_CPU_TILE_BYTES + r * TRIT_CPU_KB_BYTES, a);
                }
                tile->out[t * tile->ld_out + rg * TRIT_CPU_RG_ROWS + r] = s - qsum[t];
            }
        }
    }
}
