/*
 * gemm_avx512.c: the AVX-512 VNNI micro-kernel (kernels.h). Compiled with a target attribute, so
 * the library runs on any x86-64; gemm_cpu.c calls it only when cpu_features reports F, BW, VL and
 * VNNI.
 *
 * Inner step, one k-block (256 columns) of one row group (4 rows), for up to 4 tokens:
 *   4 loads of 64 weight bytes (one per row);
 *   for each plane j = 0..3: codes = (w >> 2j) & 3 (vpsrlw + vpandd), activations = the 64 bytes
 *   at column 64j of each token, and vpdpbusd(acc[row][token], codes u8, activations s8), which
 *   adds 4 products per int32 lane.
 * 4 rows x 4 tokens = 16 accumulators + 4 weight + 4 activation registers fit the 32 ZMM registers;
 * each weight byte is decoded once for 4 tokens, each activation vector is used for 4 rows.
 * With 1 or 2 tokens the accumulators are split by plane parity so that the vpdpbusd dependency
 * chains (latency 4-5 cycles) do not limit the weight stream.
 * Per-lane bound: |code * q| <= 2 * 128, so an int32 lane stays far from overflow for any n_cols
 * below 2^22.
 */
#include "cpu/kernels.h"

#if defined(__x86_64__)
#include <immintrin.h>

#define AVX512_TARGET "avx512f,avx512bw,avx512vl,avx512vnni"
#define AVX512_INLINE static inline __attribute__((always_inline, target(AVX512_TARGET)))

/* [sum(a), sum(b), sum(c), sum(d)] of 16 int32 lanes each. */
AVX512_INLINE __m128i hsum4(__m512i a, __m512i b, __m512i c, __m512i d) {
    /* per 128-bit lane: [a0+a2, b0+b2, a1+a3, b1+b3] and the same for c, d */
    __m512i ab = _mm512_add_epi32(_mm512_unpacklo_epi32(a, b), _mm512_unpackhi_epi32(a, b));
    __m512i cd = _mm512_add_epi32(_mm512_unpacklo_epi32(c, d), _mm512_unpackhi_epi32(c, d));
    /* per 128-bit lane: [a, b, c, d] partial sums */
    __m512i abcd = _mm512_add_epi32(_mm512_unpacklo_epi64(ab, cd), _mm512_unpackhi_epi64(ab, cd));
    __m256i h = _mm256_add_epi32(_mm512_castsi512_si256(abcd), _mm512_extracti64x4_epi64(abcd, 1));
    return _mm_add_epi32(_mm256_castsi256_si128(h), _mm256_extracti128_si256(h, 1));
}

/* Lanes of the 64 columns of plane j that are below `valid` (the columns left in the k-block). */
AVX512_INLINE __mmask64 plane_mask(int64_t valid, int j) {
    int64_t n = valid - 64 * j;
    if (n <= 0) return 0;
    if (n >= 64) return ~(__mmask64)0;
    return ((__mmask64)1 << n) - 1;
}

AVX512_INLINE int32_t sum_i8(const int8_t *q, int64_t n) {
    const __m512i ones = _mm512_set1_epi8(1);
    __m512i s = _mm512_setzero_si512();
    int64_t i = 0;
    for (; i + 64 <= n; i += 64) s = _mm512_dpbusd_epi32(s, ones, _mm512_loadu_si512(q + i));
    if (i < n) s = _mm512_dpbusd_epi32(s, ones, _mm512_maskz_loadu_epi8(plane_mask(n - i, 0), q + i));
    return _mm512_reduce_add_epi32(s);
}

/* One k-block: wb = the tile (4 rows x 64 bytes), a[t] = the token's 256 activations of this
 * k-block. MASKED: the last, partial k-block (masked loads: no byte at or past n_cols is read). */
#define PLANE(j)                                                                                   \
    do {                                                                                           \
        __m512i av[4];                                                                               \
        for (int t = 0; t < NT; t++)                                                               \
            av[t] = MASKED ? _mm512_maskz_loadu_epi8(mk[j], a[t] + 64 * (j))                       \
                           : _mm512_loadu_si512(a[t] + 64 * (j));                                  \
        for (int r = 0; r < 4; r++) {                                                              \
            __m512i d = (j) == 0 ? _mm512_and_si512(wv[r], m3)                                     \
                                 : _mm512_and_si512(_mm512_srli_epi16(wv[r], 2 * (j)), m3);        \
            for (int t = 0; t < NT; t++)                                                           \
                acc[r][t][(j) % S] = _mm512_dpbusd_epi32(acc[r][t][(j) % S], d, av[t]);            \
        }                                                                                          \
    } while (0)

AVX512_INLINE void kb_step(__m512i acc[4][4][2], const uint8_t *wb, const int8_t *const a[4],
                           const __mmask64 mk[4], const int NT, const int S, const int MASKED) {
    const __m512i m3 = _mm512_set1_epi8(3);
    __m512i wv[4];
    for (int r = 0; r < 4; r++) wv[r] = _mm512_loadu_si512(wb + 64 * r);
    PLANE(0);
    PLANE(1);
    PLANE(2);
    PLANE(3);
}

/* All row groups of the tile for exactly NT tokens; S accumulators per (row, token). */
AVX512_INLINE void tile_nt(const struct trit_cpu_tile *tile, const int32_t *qsum, const int NT,
                           const int S) {
    int64_t n_full = tile->n_cols / TRIT_CPU_KB_COLS;
    int64_t rem = tile->n_cols - n_full * TRIT_CPU_KB_COLS;
    __mmask64 mk[4];
    for (int j = 0; j < 4; j++) mk[j] = plane_mask(rem, j);
    for (int64_t rg = 0; rg < tile->n_rg; rg++) {
        const uint8_t *w = tile->w + rg * tile->n_kb * TRIT_CPU_TILE_BYTES;
        __m512i acc[4][4][2];
        for (int r = 0; r < 4; r++)
            for (int t = 0; t < NT; t++)
                for (int s = 0; s < S; s++) acc[r][t][s] = _mm512_setzero_si512();
        const int8_t *a[4];
        int64_t kb = 0;
        for (; kb < n_full; kb++) {
            for (int t = 0; t < NT; t++) a[t] = tile->q[t] + kb * TRIT_CPU_KB_COLS;
            kb_step(acc, w + kb * TRIT_CPU_TILE_BYTES, a, mk, NT, S, 0);
        }
        if (rem) {
            for (int t = 0; t < NT; t++) a[t] = tile->q[t] + kb * TRIT_CPU_KB_COLS;
            kb_step(acc, w + kb * TRIT_CPU_TILE_BYTES, a, mk, NT, S, 1);
        }
        for (int t = 0; t < NT; t++) {
            __m512i r4[4];
            for (int r = 0; r < 4; r++)
                r4[r] = S == 2 ? _mm512_add_epi32(acc[r][t][0], acc[r][t][1]) : acc[r][t][0];
            __m128i sums = _mm_sub_epi32(hsum4(r4[0], r4[1], r4[2], r4[3]), _mm_set1_epi32(qsum[t]));
            _mm_storeu_si128((__m128i *)(tile->out + t * tile->ld_out + rg * TRIT_CPU_RG_ROWS), sums);
        }
    }
}

__attribute__((target(AVX512_TARGET))) void trit_cpu_tile_avx512(const struct trit_cpu_tile *tile) {
    int32_t qsum[TRIT_CPU_MAX_TOKENS];
    for (int t = 0; t < tile->n_tok; t++) qsum[t] = sum_i8(tile->q[t], tile->n_cols);
    switch (tile->n_tok) {
    case 1: tile_nt(tile, qsum, 1, 2); break;
    case 2: tile_nt(tile, qsum, 2, 2); break;
    case 3: tile_nt(tile, qsum, 3, 1); break;
    default: tile_nt(tile, qsum, 4, 1); break;
    }
}

#else
typedef int trit_gemm_avx512_unused; /* not an x86-64 build */
#endif
