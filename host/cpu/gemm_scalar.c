/*
 * gemm_scalar.c: the portable micro-kernel (kernels.h), for CPUs with no SIMD family of ours.
 * Walks the packed layout tile by tile (16 rows x 64 columns); plain C that compilers vectorize
 * with the baseline instruction set (SSE2 on x86-64). The specification stays trit_gemm_ref.
 */
#include <string.h>

#include "cpu/kernels.h"

static int32_t sum_i8(const int8_t *q, int64_t n) {
    int32_t s = 0;
    for (int64_t i = 0; i < n; i++) s += q[i];
    return s;
}

/* Row n of one tile against 64 activations: sum over the 4 vectors, 4 planes, 4 bytes. */
static inline int32_t tile_dot(const uint8_t *tile, int n, const int8_t *a) {
    int32_t s = 0;
    for (int v = 0; v < 4; v++)
        for (int i = 0; i < 4; i++) {
            int byte = tile[64 * v + 4 * n + i];
            const int8_t *av = a + 16 * v + i;
            s += (byte & 3) * av[0] + ((byte >> 2) & 3) * av[4] + ((byte >> 4) & 3) * av[8] + (byte >> 6) * av[12];
        }
    return s;
}

void trit_cpu_tile_scalar(const struct trit_cpu_tile *tile) {
    int64_t n_full = tile->n_cols / TRIT_CPU_KB_COLS;
    int8_t tail[TRIT_CPU_MAX_TOKENS][TRIT_CPU_KB_COLS];
    int32_t qsum[TRIT_CPU_MAX_TOKENS];
    for (int t = 0; t < tile->n_tok; t++) qsum[t] = sum_i8(tile->q + t * tile->ld_q, tile->n_cols);
    trit_cpu_copy_tails(tile, tail);
    for (int64_t rg = 0; rg < tile->n_rg; rg++) {
        const uint8_t *w = tile->w + rg * tile->n_kb * TRIT_CPU_TILE_BYTES;
        for (int t = 0; t < tile->n_tok; t++) {
            int32_t s[TRIT_CPU_RG_ROWS] = {0};
            for (int64_t kb = 0; kb < tile->n_kb; kb++) {
                const int8_t *a = kb < n_full ? tile->q + t * tile->ld_q + kb * TRIT_CPU_KB_COLS : tail[t];
                for (int n = 0; n < TRIT_CPU_RG_ROWS; n++) s[n] += tile_dot(w + kb * TRIT_CPU_TILE_BYTES, n, a);
            }
            for (int n = 0; n < TRIT_CPU_RG_ROWS; n++)
                tile->out[t * tile->ld_out + rg * TRIT_CPU_RG_ROWS + n] = s[n] - qsum[t];
        }
    }
}
