/*
 * gemm_avx2.c: the AVX2 micro-kernel (kernels.h). Compiled with a target attribute, so the library
 * runs on any x86-64; gemm_cpu.c calls it only when cpu_features reports AVX2.
 *
 * Inner step, one k-block (256 columns) of one row: the row's 64 weight bytes are two 32-byte
 * halves h; for each plane j, codes = (half >> 2j) & 3 hold columns 64j + 32h .. +31, and
 *   vpmaddubsw(codes u8, q s8) -> int16 pairs,  |pair| <= 2 * 2 * 128 = 512 (no saturation);
 * the 8 products of a k-block (4 planes x 2 halves) are added in int16 (|sum| <= 8 * 512 = 4096,
 * exact), then widened once with vpmaddwd(x, 1) into the int32 accumulator.
 * Registers (16 YMM): 4 rows x 2 tokens int32 accumulators + 2 int16 sums + weights, codes and
 * constants; activations are memory operands of vpmaddubsw. Groups of 3-4 tokens run as two passes
 * over each row group (its tiles are in L1 by then).
 */
#include "cpu/kernels.h"

#if defined(__x86_64__)
#include <immintrin.h>
#include <string.h>

#define AVX2_TARGET "avx2"
#define AVX2_INLINE static inline __attribute__((always_inline, target(AVX2_TARGET)))

/* [sum(a), sum(b), sum(c), sum(d)] of 8 int32 lanes each. */
AVX2_INLINE __m128i hsum4(__m256i a, __m256i b, __m256i c, __m256i d) {
    __m256i ab = _mm256_hadd_epi32(a, b); /* per 128 lane: a01 a23 b01 b23 */
    __m256i cd = _mm256_hadd_epi32(c, d);
    __m256i abcd = _mm256_hadd_epi32(ab, cd); /* per 128 lane: a b c d */
    return _mm_add_epi32(_mm256_castsi256_si128(abcd), _mm256_extracti128_si256(abcd, 1));
}

AVX2_INLINE int32_t sum_i8(const int8_t *q, int64_t n) {
    const __m256i ones8 = _mm256_set1_epi8(1), ones16 = _mm256_set1_epi16(1);
    __m256i s = _mm256_setzero_si256();
    int64_t i = 0;
    for (; i + 32 <= n; i += 32) {
        __m256i p = _mm256_maddubs_epi16(ones8, _mm256_loadu_si256((const __m256i *)(q + i)));
        s = _mm256_add_epi32(s, _mm256_madd_epi16(p, ones16));
    }
    __m128i h = _mm_add_epi32(_mm256_castsi256_si128(s), _mm256_extracti128_si256(s, 1));
    h = _mm_add_epi32(h, _mm_shuffle_epi32(h, 0x4E));
    h = _mm_add_epi32(h, _mm_shuffle_epi32(h, 0xB1));
    int32_t total = _mm_cvtsi128_si32(h);
    for (; i < n; i++) total += q[i];
    return total;
}

#define HALF_PLANE(j, h)                                                                           \
    do {                                                                                           \
        __m256i d = (j) == 0 ? _mm256_and_si256(wh[h], m3)                                         \
                             : _mm256_and_si256(_mm256_srli_epi16(wh[h], 2 * (j)), m3);            \
        for (int t = 0; t < NT; t++)                                                               \
            s16[t] = _mm256_add_epi16(                                                             \
                s16[t], _mm256_maddubs_epi16(                                                      \
                            d, _mm256_loadu_si256((const __m256i *)(a[t] + 64 * (j) + 32 * (h))))); \
    } while (0)

/* One k-block of the 4 rows of tile wb for NT (1 or 2) tokens; a[t] = 256 activations. */
AVX2_INLINE void kb_step(__m256i acc[4][2], const uint8_t *wb, const int8_t *const a[2], const int NT) {
    const __m256i m3 = _mm256_set1_epi8(3), ones16 = _mm256_set1_epi16(1);
    for (int r = 0; r < 4; r++) {
        __m256i wh[2] = {_mm256_loadu_si256((const __m256i *)(wb + 64 * r)),
                         _mm256_loadu_si256((const __m256i *)(wb + 64 * r + 32))};
        __m256i s16[2] = {_mm256_setzero_si256(), _mm256_setzero_si256()};
        HALF_PLANE(0, 0);
        HALF_PLANE(0, 1);
        HALF_PLANE(1, 0);
        HALF_PLANE(1, 1);
        HALF_PLANE(2, 0);
        HALF_PLANE(2, 1);
        HALF_PLANE(3, 0);
        HALF_PLANE(3, 1);
        for (int t = 0; t < NT; t++) acc[r][t] = _mm256_add_epi32(acc[r][t], _mm256_madd_epi16(s16[t], ones16));
    }
}

/* Row groups of the tile for tokens [t0, t0 + NT). tail[t] = the zero-padded last k-block. */
AVX2_INLINE void tile_pass(const struct trit_cpu_tile *tile, const int32_t *qsum,
                           int8_t (*tail)[TRIT_CPU_KB_COLS], int t0, const int NT) {
    int64_t n_full = tile->n_cols / TRIT_CPU_KB_COLS;
    for (int64_t rg = 0; rg < tile->n_rg; rg++) {
        const uint8_t *w = tile->w + rg * tile->n_kb * TRIT_CPU_TILE_BYTES;
        __m256i acc[4][2];
        for (int r = 0; r < 4; r++)
            for (int t = 0; t < NT; t++) acc[r][t] = _mm256_setzero_si256();
        const int8_t *a[2];
        for (int64_t kb = 0; kb < tile->n_kb; kb++) {
            for (int t = 0; t < NT; t++)
                a[t] = kb < n_full ? tile->q[t0 + t] + kb * TRIT_CPU_KB_COLS : tail[t0 + t];
            kb_step(acc, w + kb * TRIT_CPU_TILE_BYTES, a, NT);
        }
        for (int t = 0; t < NT; t++) {
            __m128i sums = _mm_sub_epi32(hsum4(acc[0][t], acc[1][t], acc[2][t], acc[3][t]),
                                         _mm_set1_epi32(qsum[t0 + t]));
            _mm_storeu_si128((__m128i *)(tile->out + (t0 + t) * tile->ld_out + rg * TRIT_CPU_RG_ROWS), sums);
        }
    }
}

__attribute__((target(AVX2_TARGET))) void trit_cpu_tile_avx2(const struct trit_cpu_tile *tile) {
    int64_t n_full = tile->n_cols / TRIT_CPU_KB_COLS;
    int64_t rem = tile->n_cols - n_full * TRIT_CPU_KB_COLS;
    int32_t qsum[TRIT_CPU_MAX_TOKENS];
    int8_t tail[TRIT_CPU_MAX_TOKENS][TRIT_CPU_KB_COLS];
    for (int t = 0; t < tile->n_tok; t++) {
        qsum[t] = sum_i8(tile->q[t], tile->n_cols);
        if (rem) {
            memset(tail[t], 0, sizeof tail[t]);
            memcpy(tail[t], tile->q[t] + n_full * TRIT_CPU_KB_COLS, (size_t)rem);
        }
    }
    int t0 = 0;
    for (; t0 + 2 <= tile->n_tok; t0 += 2) tile_pass(tile, qsum, tail, t0, 2);
    if (t0 < tile->n_tok) tile_pass(tile, qsum, tail, t0, 1);
}

#else
typedef int trit_gemm_avx2_unused; /* not an x86-64 build */
#endif
