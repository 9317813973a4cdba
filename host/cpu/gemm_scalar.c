/*
 * gemm_scalar.c: the portable micro-kernel (kernels.h), for CPUs with no SIMD family of ours.
 * Walks the packed layout tile by tile (16 rows x 64 columns); plain C that compilers vectorize
 * with the baseline instruction set (SSE2 on x86-64). The specification stays trit_gemm_ref.
 */
#include <string.h>

#include "cpu/kernels.h"

int32_t trit_cpu_sum_i8_scalar(const int8_t *q, int64_t n) {
    int32_t s = 0;
    for (int64_t i = 0; i < n; i++) s += q[i];
    return s;
}

/* The codes of one tile as bytes: codes[n][c] for row n and column c of the k-block (kernels.h:
 * byte 4n + i of vector v holds column 16 v + 4 j + i in bits 2j .. 2j+1). */
static void unpack_tile(const uint8_t *tile, uint8_t codes[TRIT_CPU_RG_ROWS][TRIT_CPU_KB_COLS]) {
    for (int v = 0; v < 4; v++)
        for (int n = 0; n < TRIT_CPU_RG_ROWS; n++)
            for (int i = 0; i < 4; i++) {
                const unsigned byte = tile[64 * v + 4 * n + i];
                for (int j = 0; j < 4; j++) codes[n][16 * v + 4 * j + i] = (uint8_t)((byte >> (2 * j)) & 3u);
            }
}

/* Each tile is unpacked once per call and then used by every token: plain loops over bytes that
 * compilers vectorize. */
void trit_cpu_tile_scalar(const struct trit_cpu_tile *tile) {
    int64_t n_full = tile->n_cols / TRIT_CPU_KB_COLS;
    int8_t tail[TRIT_CPU_MAX_TOKENS][TRIT_CPU_KB_COLS];
    int32_t qsum[TRIT_CPU_MAX_TOKENS];
    trit_cpu_tile_qsums(tile, trit_cpu_sum_i8_scalar, qsum);
    trit_cpu_copy_tails(tile, tail);
    for (int64_t rg = 0; rg < tile->n_rg; rg++) {
        const uint8_t *w = tile->w + rg * tile->n_kb * TRIT_CPU_TILE_BYTES;
        int32_t s[TRIT_CPU_MAX_TOKENS][TRIT_CPU_RG_ROWS] = {{0}};
        for (int64_t kb = 0; kb < tile->n_kb; kb++) {
            uint8_t codes[TRIT_CPU_RG_ROWS][TRIT_CPU_KB_COLS];
            unpack_tile(w + kb * TRIT_CPU_TILE_BYTES, codes);
            for (int t = 0; t < tile->n_tok; t++) {
                const int8_t *a = kb < n_full ? tile->q + t * tile->ld_q + kb * TRIT_CPU_KB_COLS : tail[t];
                for (int n = 0; n < TRIT_CPU_RG_ROWS; n++) {
                    int32_t d = 0;
                    for (int c = 0; c < TRIT_CPU_KB_COLS; c++) d += (int32_t)codes[n][c] * (int32_t)a[c];
                    s[t][n] += d;
                }
            }
        }
        for (int t = 0; t < tile->n_tok; t++)
            for (int n = 0; n < TRIT_CPU_RG_ROWS; n++)
                tile->out[t * tile->ld_out + rg * TRIT_CPU_RG_ROWS + n] = s[t][n] - qsum[t];
    }
}
