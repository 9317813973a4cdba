/*
 * gemm_avx512.c: the AVX-512 VNNI micro-kernel (kernels.h). Compiled with a target attribute, so
 * the library runs on any x86-64; gemm_cpu.c calls it only when cpu_features reports F, BW, VL and
 * VNNI.
 *
 * One row group (16 rows = the 16 int32 lanes of an accumulator) x up to 4 tokens. For each
 * 64-byte weight vector v of a tile and each plane j:
 *   codes_j = w & (3 << 2j)                      one vpandd: row n's 4 codes, times 4^j, in lane n
 *   acc[t][j] += vpdpbusd(codes_j, bcast32(q_t + 64 kb + 16 v + 4 j))   broadcast from memory
 * Decoding takes one AND per plane and no shift: plane j's accumulator carries the factor 4^j,
 * removed once per row group by an exact arithmetic shift (every lane of acc[.][j] is a multiple
 * of 4^j). Planes get their own accumulators anyway: 4 per token keep enough vpdpbusd chains in
 * flight (latency 4-5 cycles), and 1-token calls (the decode GEMV) also split by vector parity.
 * Per 256-byte tile and token: 16 vpdpbusd + 16 / n_tok vpandd, so the GEMV needs ~32 vector ops
 * per 256 weight bytes.
 * Bounds: codes_j <= 2 * 64 = 128 fits u8; |lane| <= 64 * 2 * 128 * n_cols / 16 < 2^31 for
 * n_cols < 2^20.
 */
#include "cpu/kernels.h"

#if defined(__x86_64__)
#include "cpu/simd_x86.h"
#include <string.h>

/* Software prefetch distance along the weight stream: 4 tiles ahead. Measured on the 2-core
 * Xeon (AMX-capable) dev VM, 1 thread, weights from DRAM: 0 B 468 us, 512 B 441, 1024 B 428,
 * 2048 B 441 for 2560x6912 at m = 1 (busy machine; the ranking held over repeats). */
#define PREFETCH_BYTES 1024
#define AVX512_TARGET TRIT_TARGET_AVX512_STR
#define AVX512_INLINE static inline __attribute__((always_inline, target(AVX512_TARGET)))

/* 4 activation bytes broadcast to 16 lanes (folds into vpdpbusd's {1to16} memory operand). */
AVX512_INLINE __m512i bcast4(const int8_t *p) {
    int32_t v;
    memcpy(&v, p, sizeof v);
    return _mm512_set1_epi32(v);
}

__attribute__((target(AVX512_TARGET))) int32_t trit_cpu_sum_i8_avx512(const int8_t *q, int64_t n) {
    const __m512i ones = _mm512_set1_epi8(1);
    __m512i s = _mm512_setzero_si512();
    int64_t i = 0;
    for (; i + 64 <= n; i += 64) s = _mm512_dpbusd_epi32(s, ones, _mm512_loadu_si512(q + i));
    if (i < n) {
        __mmask64 k = ((__mmask64)1 << (n - i)) - 1; /* n - i < 64 */
        s = _mm512_dpbusd_epi32(s, ones, _mm512_maskz_loadu_epi8(k, q + i));
    }
    return _mm512_reduce_add_epi32(s);
}

/* One tile (256 bytes at w) against a[t] (64 activations per token), into acc[t][p][j]
 * (p = vector parity when P == 2, j = plane). */
#define TILE_STEP(acc, w, a, NT, P)                                                                \
    do {                                                                                           \
        _Pragma("GCC unroll 4") for (int v = 0; v < 4; v++) {                                      \
            __m512i wv = _mm512_loadu_si512((w) + 64 * v);                                         \
            __m512i d[4] = {_mm512_and_si512(wv, m0), _mm512_and_si512(wv, m1),                    \
                            _mm512_and_si512(wv, m2), _mm512_and_si512(wv, m3)};                   \
            int p = (P) == 2 ? (v & 1) : 0;                                                        \
            _Pragma("GCC unroll 4") for (int j = 0; j < 4; j++)                                    \
                _Pragma("GCC unroll 4") for (int t = 0; t < (NT); t++)                             \
                    acc[t][p][j] = _mm512_dpbusd_epi32(acc[t][p][j], d[j], bcast4(a[t] + 16 * v + 4 * j)); \
        }                                                                                          \
    } while (0)

/* All row groups of the call for exactly NT tokens, P accumulator sets per token. */
#define DEFINE_TILE_NT(NT, P)                                                                      \
    static __attribute__((noinline, target(AVX512_TARGET))) void tile_##NT(                        \
        const struct trit_cpu_tile *tile, const int32_t *qsum, int8_t (*tail)[TRIT_CPU_KB_COLS]) { \
        const __m512i m0 = _mm512_set1_epi8(0x03), m1 = _mm512_set1_epi8(0x0C);                   \
        const __m512i m2 = _mm512_set1_epi8(0x30), m3 = _mm512_set1_epi8((char)0xC0);             \
        int64_t n_full = tile->n_cols / TRIT_CPU_KB_COLS;                                          \
        for (int64_t rg = 0; rg < tile->n_rg; rg++) {                                              \
            const uint8_t *w = tile->w + rg * tile->n_kb * TRIT_CPU_TILE_BYTES;                    \
            __m512i acc[NT][P][4];                                                                 \
            _Pragma("GCC unroll 4") for (int t = 0; t < (NT); t++)                                 \
                _Pragma("GCC unroll 2") for (int p = 0; p < (P); p++)                              \
                    _Pragma("GCC unroll 4") for (int j = 0; j < 4; j++) acc[t][p][j] = _mm512_setzero_si512(); \
            const int8_t *a[NT];                                                                   \
            for (int64_t kb = 0; kb < n_full; kb++) {                                              \
                _Pragma("GCC unroll 4") for (int t = 0; t < (NT); t++) a[t] = tile->q + t * tile->ld_q + kb * TRIT_CPU_KB_COLS; \
                const char *pf = (const char *)(w + kb * TRIT_CPU_TILE_BYTES) + PREFETCH_BYTES;     \
                _mm_prefetch(pf, _MM_HINT_T0);                                                     \
                _mm_prefetch(pf + 64, _MM_HINT_T0);                                                \
                _mm_prefetch(pf + 128, _MM_HINT_T0);                                               \
                _mm_prefetch(pf + 192, _MM_HINT_T0);                                               \
                TILE_STEP(acc, w + kb * TRIT_CPU_TILE_BYTES, a, NT, P);                            \
            }                                                                                      \
            if (n_full < tile->n_kb) {                                                             \
                _Pragma("GCC unroll 4") for (int t = 0; t < (NT); t++) a[t] = tail[t];             \
                TILE_STEP(acc, w + n_full * TRIT_CPU_TILE_BYTES, a, NT, P);                        \
            }                                                                                      \
            _Pragma("GCC unroll 4") for (int t = 0; t < (NT); t++) {                               \
                __m512i s[4];                                                                      \
                _Pragma("GCC unroll 4") for (int j = 0; j < 4; j++)                                \
                    s[j] = (P) == 2 ? _mm512_add_epi32(acc[t][0][j], acc[t][(P) - 1][j]) : acc[t][0][j]; \
                __m512i sum = _mm512_add_epi32(_mm512_add_epi32(s[0], _mm512_srai_epi32(s[1], 2)),     \
                                               _mm512_add_epi32(_mm512_srai_epi32(s[2], 4),            \
                                                                _mm512_srai_epi32(s[3], 6)));          \
                sum = _mm512_sub_epi32(sum, _mm512_set1_epi32(qsum[t]));                           \
                _mm512_storeu_si512(tile->out + t * tile->ld_out + rg * TRIT_CPU_RG_ROWS, sum);     \
            }                                                                                      \
        }                                                                                          \
    }

DEFINE_TILE_NT(1, 2)
DEFINE_TILE_NT(2, 1)
DEFINE_TILE_NT(3, 1)
DEFINE_TILE_NT(4, 1)

__attribute__((target(AVX512_TARGET))) void trit_cpu_tile_avx512(const struct trit_cpu_tile *tile) {
    int32_t qsum[TRIT_CPU_MAX_TOKENS];
    int8_t tail[TRIT_CPU_MAX_TOKENS][TRIT_CPU_KB_COLS];
    trit_cpu_tile_qsums(tile, trit_cpu_sum_i8_avx512, qsum);
    trit_cpu_copy_tails(tile, tail);
    switch (tile->n_tok) {
    case 1: tile_1(tile, qsum, tail); break;
    case 2: tile_2(tile, qsum, tail); break;
    case 3: tile_3(tile, qsum, tail); break;
    default: tile_4(tile, qsum, tail); break;
    }
}

/* ---- blocked: the group rule folded in (kernels.h trit_cpu_btile) ---------------------------------
 * One row group is one accumulator (16 rows = 16 lanes): per k-block, TILE_STEP into fresh plane
 * accumulators, their exact int32 sum less the k-block's sum(q), then the rule's float operations
 * lane by lane (convert, times 1 / s, times the 16 rows' group scales, added to the fp32 sums), each
 * one IEEE op as in the reference (-ffp-contract=off: nothing fuses into an FMA). */
#define DEFINE_BLOCKED(NT)                                                                         \
    static __attribute__((noinline, target(AVX512_TARGET))) void blocked_##NT(                     \
        const struct trit_cpu_btile *tile, int8_t (*tail)[TRIT_CPU_KB_COLS]) {                     \
        const __m512i m0 = _mm512_set1_epi8(0x03), m1 = _mm512_set1_epi8(0x0C);                   \
        const __m512i m2 = _mm512_set1_epi8(0x30), m3 = _mm512_set1_epi8((char)0xC0);             \
        const int64_t n_full = tile->n_cols / TRIT_CPU_KB_COLS;                                    \
        __m512 f[NT];                                                                              \
        _Pragma("GCC unroll 4") for (int t = 0; t < (NT); t++) f[t] = _mm512_setzero_ps();         \
        for (int64_t kb = 0, g = 0, in_g = 0; kb < tile->n_kb; kb++) {                             \
            const int8_t *a[NT];                                                                   \
            _Pragma("GCC unroll 4") for (int t = 0; t < (NT); t++)                                 \
                a[t] = kb < n_full ? tile->q + t * tile->ld_q + kb * TRIT_CPU_KB_COLS : tail[t];   \
            const uint8_t *wk = tile->w + kb * TRIT_CPU_TILE_BYTES;                                \
            const char *pf = (const char *)wk + PREFETCH_BYTES;                                    \
            _Pragma("GCC unroll 4") for (int l = 0; l < 4; l++) _mm_prefetch(pf + 64 * l, _MM_HINT_T0); \
            __m512i acc[NT][1][4];                                                                 \
            _Pragma("GCC unroll 4") for (int t = 0; t < (NT); t++)                                 \
                _Pragma("GCC unroll 4") for (int j = 0; j < 4; j++) acc[t][0][j] = _mm512_setzero_si512(); \
            TILE_STEP(acc, wk, a, NT, 1);                                                          \
            const __m512 dv = _mm512_loadu_ps(tile->d + g * TRIT_CPU_RG_ROWS);                     \
            _Pragma("GCC unroll 4") for (int t = 0; t < (NT); t++) {                               \
                __m512i sum = _mm512_add_epi32(_mm512_add_epi32(acc[t][0][0], _mm512_srai_epi32(acc[t][0][1], 2)), \
                                               _mm512_add_epi32(_mm512_srai_epi32(acc[t][0][2], 4),               \
                                                                _mm512_srai_epi32(acc[t][0][3], 6)));             \
                sum = _mm512_sub_epi32(sum, _mm512_set1_epi32(tile->qsum[kb * TRIT_CPU_MAX_TOKENS + t]));       \
                const __m512 r = _mm512_set1_ps(tile->inv[kb * TRIT_CPU_MAX_TOKENS + t]);           \
                f[t] = _mm512_add_ps(f[t], _mm512_mul_ps(_mm512_mul_ps(_mm512_cvtepi32_ps(sum), r), dv)); \
            }                                                                                      \
            if (++in_g == tile->kb_per_group) in_g = 0, g++;                                       \
        }                                                                                          \
        _Pragma("GCC unroll 4") for (int t = 0; t < (NT); t++) _mm512_storeu_ps(tile->out + t * tile->ld_out, f[t]); \
    }

DEFINE_BLOCKED(1)
DEFINE_BLOCKED(2)
_Static_assert(TRIT_CPU_BLOCKED_TOKENS == 2, "blocked_1 and blocked_2 cover the blocked token block");

__attribute__((target(AVX512_TARGET))) void trit_cpu_btile_avx512(const struct trit_cpu_btile *tile) {
    int8_t tail[TRIT_CPU_BLOCKED_TOKENS][TRIT_CPU_KB_COLS];
    trit_cpu_btile_tails(tile, tail);
    if (tile->n_tok == 1) blocked_1(tile, tail);
    else blocked_2(tile, tail);
}

#else
typedef int trit_gemm_avx512_unused; /* not an x86-64 build */
#endif
