/*
 * gemm_avx2.c: the AVX2 micro-kernel (kernels.h). Compiled with a target attribute, so the library
 * runs on any x86-64; gemm_cpu.c calls it only when cpu_features reports AVX2.
 *
 * A 64-byte weight vector is two 32-byte halves h, each holding 8 rows (4 codes per row and plane).
 * Per half, plane j and token t:
 *   codes = (half >> 2j) & 3                                  vpsrlw + vpand
 *   s16[t] += vpmaddubsw(codes u8, bcast32(q_t + 64 kb + 16 v + 4 j) s8)
 * which leaves, in the two int16 lanes of row n, the two pair sums of its 4 products:
 * |pair| <= 2 * 2 * 128 = 512, no saturation. A tile adds 16 of them per lane in int16
 * (|sum| <= 8192, exact), then vpmaddwd(s16, 1) widens row n's two lanes into its int32 lane.
 * Registers (16 YMM): 4 tokens x (int32 accumulator + int16 sum) + weights, codes, broadcast and
 * two constants. Decoding costs 2 ops per plane, shared by the tokens. One or two tokens (decode)
 * take a one-pass variant below that streams every weight line once.
 */
#include "cpu/kernels.h"

#if defined(__x86_64__)
#include "cpu/simd_x86.h"
#include <string.h>

/* Software prefetch distance along the weight stream, as gemm_avx512.c. (Each half-pass touches
 * all 4 lines of a tile; the second pass finds them in L1/L2.) */
#define PREFETCH_BYTES 1024
#define AVX2_TARGET TRIT_TARGET_AVX2_STR
#define AVX2_INLINE static inline __attribute__((always_inline, target(AVX2_TARGET)))
/* An empty asm that "changes" v: GCC keeps the adds into v in program order instead of computing
 * all 64 products of a k-block first and spilling them (what it does without this, at half speed). */
#define KEEP_ORDER(v) __asm__("" : "+x"(v))

AVX2_INLINE __m256i bcast4(const int8_t *p) {
    int32_t v;
    memcpy(&v, p, sizeof v);
    return _mm256_set1_epi32(v);
}

__attribute__((target(AVX2_TARGET))) int32_t trit_cpu_sum_i8_avx2(const int8_t *q, int64_t n) {
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

/* Half h (rows 8h .. 8h+7) of all row groups, exactly NT tokens. */
#define DEFINE_TILE_NT(NT)                                                                         \
    static __attribute__((noinline, target(AVX2_TARGET))) void tile_##NT(                          \
        const struct trit_cpu_tile *tile, const int32_t *qsum, int8_t (*tail)[TRIT_CPU_KB_COLS]) { \
        const __m256i m3 = _mm256_set1_epi8(3), ones16 = _mm256_set1_epi16(1);                     \
        int64_t n_full = tile->n_cols / TRIT_CPU_KB_COLS;                                          \
        for (int64_t rg = 0; rg < tile->n_rg; rg++)                                                \
            for (int h = 0; h < 2; h++) {                                                          \
                const uint8_t *w = tile->w + rg * tile->n_kb * TRIT_CPU_TILE_BYTES + 32 * h;       \
                __m256i acc[NT];                                                                   \
                _Pragma("GCC unroll 4") for (int t = 0; t < (NT); t++) acc[t] = _mm256_setzero_si256(); \
                for (int64_t kb = 0; kb < tile->n_kb; kb++) {                                      \
                    const int8_t *a[NT];                                                           \
                    _Pragma("GCC unroll 4") for (int t = 0; t < (NT); t++)                         \
                        a[t] = kb < n_full ? tile->q + t * tile->ld_q + kb * TRIT_CPU_KB_COLS : tail[t];         \
                    __m256i s16[NT];                                                               \
                    _Pragma("GCC unroll 4") for (int t = 0; t < (NT); t++) s16[t] = _mm256_setzero_si256(); \
                    const uint8_t *wk = w + kb * TRIT_CPU_TILE_BYTES;                              \
                    _Pragma("GCC unroll 4") for (int l = 0; l < 4; l++)                            \
                        _mm_prefetch((const char *)wk + PREFETCH_BYTES + 64 * l, _MM_HINT_T0);     \
                    _Pragma("GCC unroll 4") for (int v = 0; v < 4; v++) {                          \
                        __m256i wv = _mm256_loadu_si256((const __m256i *)(wk + 64 * v));           \
                        _Pragma("GCC unroll 4") for (int j = 0; j < 4; j++) {                      \
                            __m256i d = _mm256_and_si256(j ? _mm256_srli_epi16(wv, 2 * j) : wv, m3); \
                            _Pragma("GCC unroll 4") for (int t = 0; t < (NT); t++) {               \
                                s16[t] = _mm256_add_epi16(s16[t], _mm256_maddubs_epi16(d, bcast4(a[t] + 16 * v + 4 * j))); \
                                KEEP_ORDER(s16[t]);                                                \
                            }                                                                      \
                        }                                                                          \
                    }                                                                              \
                    _Pragma("GCC unroll 4") for (int t = 0; t < (NT); t++)                         \
                        acc[t] = _mm256_add_epi32(acc[t], _mm256_madd_epi16(s16[t], ones16));      \
                }                                                                                  \
                _Pragma("GCC unroll 4") for (int t = 0; t < (NT); t++) {                           \
                    __m256i r = _mm256_sub_epi32(acc[t], _mm256_set1_epi32(qsum[t]));              \
                    _mm256_storeu_si256((__m256i *)(tile->out + t * tile->ld_out + rg * TRIT_CPU_RG_ROWS + 8 * h), r); \
                }                                                                                  \
            }                                                                                      \
    }

DEFINE_TILE_NT(3)
DEFINE_TILE_NT(4)

/* One or two tokens (the decode GEMV): both halves of every vector in one pass, 16 rows at once and
 * one activation broadcast for both, so every weight line is read once, and a longer prefetch
 * distance keeps enough lines in flight to stream at DRAM speed (2560 x 6912, 1 thread, weights
 * from DRAM: 1.3x the two-pass loop above; 3-8 KB ahead measured best on the Zen 3 machine, 1 KB or
 * none 20-50% slower). The int16 sums widen every ONEPASS_WIDEN_KB k-blocks: 16 pairs of at most
 * 512 per k-block, 3 * 16 * 512 = 24576 < 32767. */
#define ONEPASS_PREFETCH_BYTES 4096
#define ONEPASS_WIDEN_KB 3
_Static_assert(ONEPASS_WIDEN_KB * 16 * 512 <= 32767, "the int16 sums of the one-pass kernel overflow");

/* 16 rows (both halves of every vector) x NT tokens, one pass over the row group's k-blocks.
 * UNPACKED 0: the packed tiles (256 bytes), decoded here, with the software prefetch; UNPACKED 1:
 * unpacked tiles (1024 bytes, kernels.h), from the thread's scratch, only loaded. */
#define DEFINE_SIXTEEN_ROWS(NAME, NT, UNPACKED)                                                    \
    static __attribute__((noinline, target(AVX2_TARGET))) void NAME(                               \
        const struct trit_cpu_tile *tile, const int32_t *qsum, int8_t (*tail)[TRIT_CPU_KB_COLS]) { \
        const __m256i m3 = _mm256_set1_epi8(3), ones16 = _mm256_set1_epi16(1);                     \
        const int64_t n_full = tile->n_cols / TRIT_CPU_KB_COLS;                                    \
        const int64_t tile_bytes = (UNPACKED) ? TRIT_CPU_UNPACKED_TILE_BYTES : TRIT_CPU_TILE_BYTES; \
        for (int64_t rg = 0; rg < tile->n_rg; rg++) {                                              \
            const uint8_t *w = tile->w + rg * tile->n_kb * tile_bytes;                             \
            __m256i acc[NT][2];                                                                    \
            _Pragma("GCC unroll 4") for (int t = 0; t < (NT); t++) acc[t][0] = acc[t][1] = _mm256_setzero_si256(); \
            for (int64_t kb0 = 0; kb0 < tile->n_kb; kb0 += ONEPASS_WIDEN_KB) {                     \
                const int64_t kb1 = kb0 + ONEPASS_WIDEN_KB < tile->n_kb ? kb0 + ONEPASS_WIDEN_KB : tile->n_kb; \
                __m256i s16[NT][2];                                                                \
                _Pragma("GCC unroll 4") for (int t = 0; t < (NT); t++) s16[t][0] = s16[t][1] = _mm256_setzero_si256(); \
                for (int64_t kb = kb0; kb < kb1; kb++) {                                           \
                    const int8_t *a[NT];                                                           \
                    _Pragma("GCC unroll 4") for (int t = 0; t < (NT); t++)                         \
                        a[t] = kb < n_full ? tile->q + t * tile->ld_q + kb * TRIT_CPU_KB_COLS : tail[t]; \
                    const uint8_t *wk = w + kb * tile_bytes;                                       \
                    if (!(UNPACKED))                                                               \
                        _Pragma("GCC unroll 4") for (int l = 0; l < 4; l++)                        \
                            _mm_prefetch((const char *)wk + ONEPASS_PREFETCH_BYTES + 64 * l, _MM_HINT_T0); \
                    _Pragma("GCC unroll 4") for (int v = 0; v < 4; v++) {                          \
                        const __m256i w0 = (UNPACKED) ? m3 : _mm256_loadu_si256((const __m256i *)(wk + 64 * v)); \
                        const __m256i w1 = (UNPACKED) ? m3 : _mm256_loadu_si256((const __m256i *)(wk + 64 * v + 32)); \
                        _Pragma("GCC unroll 4") for (int j = 0; j < 4; j++) {                      \
                            const uint8_t *pl = wk + 64 * (4 * v + j); /* the unpacked plane */    \
                            const __m256i d0 = (UNPACKED) ? _mm256_loadu_si256((const __m256i *)pl)  \
                                                          : _mm256_and_si256(j ? _mm256_srli_epi16(w0, 2 * j) : w0, m3); \
                            const __m256i d1 = (UNPACKED) ? _mm256_loadu_si256((const __m256i *)(pl + 32)) \
                                                          : _mm256_and_si256(j ? _mm256_srli_epi16(w1, 2 * j) : w1, m3); \
                            _Pragma("GCC unroll 4") for (int t = 0; t < (NT); t++) {               \
                                const __m256i b = bcast4(a[t] + 16 * v + 4 * j);                   \
                                s16[t][0] = _mm256_add_epi16(s16[t][0], _mm256_maddubs_epi16(d0, b)); \
                                s16[t][1] = _mm256_add_epi16(s16[t][1], _mm256_maddubs_epi16(d1, b)); \
                                KEEP_ORDER(s16[t][0]);                                             \
                                KEEP_ORDER(s16[t][1]);                                             \
                            }                                                                      \
                        }                                                                          \
                    }                                                                              \
                }                                                                                  \
                _Pragma("GCC unroll 4") for (int t = 0; t < (NT); t++) {                           \
                    acc[t][0] = _mm256_add_epi32(acc[t][0], _mm256_madd_epi16(s16[t][0], ones16)); \
                    acc[t][1] = _mm256_add_epi32(acc[t][1], _mm256_madd_epi16(s16[t][1], ones16)); \
                }                                                                                  \
            }                                                                                      \
            _Pragma("GCC unroll 4") for (int t = 0; t < (NT); t++) {                               \
                const __m256i qs = _mm256_set1_epi32(qsum[t]);                                     \
                int32_t *o = tile->out + t * tile->ld_out + rg * TRIT_CPU_RG_ROWS;                 \
                _mm256_storeu_si256((__m256i *)o, _mm256_sub_epi32(acc[t][0], qs));                \
                _mm256_storeu_si256((__m256i *)(o + 8), _mm256_sub_epi32(acc[t][1], qs));          \
            }                                                                                      \
        }                                                                                          \
    }

DEFINE_SIXTEEN_ROWS(onepass_1, 1, 0)
DEFINE_SIXTEEN_ROWS(onepass_2, 2, 0)

/* ---- unpacked panels (m >= TRIT_CPU_PANEL_MIN_M; kernels.h, gemm_cpu.c) -----------------------
 * The codes come unpacked, one byte each, so a plane costs two loads shared by the tokens instead of
 * a shift and a mask per half: per vpmaddubsw there is one vpaddw and one activation broadcast for
 * two of them (16 rows x NT tokens), which keeps the two vpmaddubsw ports busy. The int16 sums widen
 * into int32 every ONEPASS_WIDEN_KB k-blocks, as in the one-pass kernel (the same bound); both are
 * DEFINE_SIXTEEN_ROWS above. */

__attribute__((target(AVX2_TARGET))) void trit_cpu_unpack_avx2(const uint8_t *packed, int64_t n_tiles, uint8_t *dst) {
    const __m256i m3 = _mm256_set1_epi8(3);
    for (int64_t i = 0; i < n_tiles; i++) {
        const uint8_t *src = packed + i * TRIT_CPU_TILE_BYTES;
        uint8_t *out = dst + i * TRIT_CPU_UNPACKED_TILE_BYTES;
        for (int v = 0; v < 4; v++)
            for (int h = 0; h < 2; h++) {
                const __m256i w = _mm256_loadu_si256((const __m256i *)(src + 64 * v + 32 * h));
                for (int j = 0; j < 4; j++)
                    _mm256_storeu_si256((__m256i *)(out + 64 * (4 * v + j) + 32 * h),
                                        _mm256_and_si256(j ? _mm256_srli_epi16(w, 2 * j) : w, m3));
            }
    }
}

DEFINE_SIXTEEN_ROWS(panel_1, 1, 1)
DEFINE_SIXTEEN_ROWS(panel_2, 2, 1)
DEFINE_SIXTEEN_ROWS(panel_3, 3, 1)
DEFINE_SIXTEEN_ROWS(panel_4, 4, 1)

__attribute__((target(AVX2_TARGET))) void trit_cpu_panel_avx2(const struct trit_cpu_tile *tile) {
    int32_t qsum[TRIT_CPU_MAX_TOKENS];
    int8_t tail[TRIT_CPU_MAX_TOKENS][TRIT_CPU_KB_COLS];
    trit_cpu_tile_qsums(tile, trit_cpu_sum_i8_avx2, qsum);
    trit_cpu_copy_tails(tile, tail);
    switch (tile->n_tok) {
    case 1: panel_1(tile, qsum, tail); break;
    case 2: panel_2(tile, qsum, tail); break;
    case 3: panel_3(tile, qsum, tail); break;
    default: panel_4(tile, qsum, tail); break;
    }
}

__attribute__((target(AVX2_TARGET))) void trit_cpu_tile_avx2(const struct trit_cpu_tile *tile) {
    int32_t qsum[TRIT_CPU_MAX_TOKENS];
    int8_t tail[TRIT_CPU_MAX_TOKENS][TRIT_CPU_KB_COLS];
    trit_cpu_tile_qsums(tile, trit_cpu_sum_i8_avx2, qsum);
    trit_cpu_copy_tails(tile, tail);
    switch (tile->n_tok) {
    case 1: onepass_1(tile, qsum, tail); break;
    case 2: onepass_2(tile, qsum, tail); break;
    case 3: tile_3(tile, qsum, tail); break;
    default: tile_4(tile, qsum, tail); break;
    }
}

/* ---- blocked: the group rule folded in (kernels.h trit_cpu_btile) ---------------------------------
 * The one-pass loop above, one k-block at a time: its int16 sums widen into int32 after every
 * k-block, take the k-block's sum(q) off, and go through the rule's float operations lane by lane
 * (convert, times 1 / s, times the 8 rows' group scales, added to the fp32 sums: each one IEEE op, as
 * the reference; the build has -ffp-contract=off, so nothing fuses into an FMA). */
#define DEFINE_BLOCKED(NT)                                                                         \
    static __attribute__((noinline, target(AVX2_TARGET))) void blocked_##NT(                       \
        const struct trit_cpu_btile *tile, int8_t (*tail)[TRIT_CPU_KB_COLS]) {                     \
        const __m256i m3 = _mm256_set1_epi8(3), ones16 = _mm256_set1_epi16(1);                     \
        const int64_t n_full = tile->n_cols / TRIT_CPU_KB_COLS;                                    \
        __m256 f[NT][2];                                                                           \
        _Pragma("GCC unroll 4") for (int t = 0; t < (NT); t++) f[t][0] = f[t][1] = _mm256_setzero_ps(); \
        for (int64_t kb = 0, g = 0, in_g = 0; kb < tile->n_kb; kb++) {                             \
            const int8_t *a[NT];                                                                   \
            _Pragma("GCC unroll 4") for (int t = 0; t < (NT); t++)                                 \
                a[t] = kb < n_full ? tile->q + t * tile->ld_q + kb * TRIT_CPU_KB_COLS : tail[t];   \
            const uint8_t *wk = tile->w + kb * TRIT_CPU_TILE_BYTES;                                \
            _Pragma("GCC unroll 4") for (int l = 0; l < 4; l++)                                    \
                _mm_prefetch((const char *)wk + ONEPASS_PREFETCH_BYTES + 64 * l, _MM_HINT_T0);     \
            __m256i s16[NT][2];                                                                    \
            _Pragma("GCC unroll 4") for (int t = 0; t < (NT); t++) s16[t][0] = s16[t][1] = _mm256_setzero_si256(); \
            _Pragma("GCC unroll 4") for (int v = 0; v < 4; v++) {                                  \
                const __m256i w0 = _mm256_loadu_si256((const __m256i *)(wk + 64 * v));             \
                const __m256i w1 = _mm256_loadu_si256((const __m256i *)(wk + 64 * v + 32));        \
                _Pragma("GCC unroll 4") for (int j = 0; j < 4; j++) {                              \
                    const __m256i d0 = _mm256_and_si256(j ? _mm256_srli_epi16(w0, 2 * j) : w0, m3); \
                    const __m256i d1 = _mm256_and_si256(j ? _mm256_srli_epi16(w1, 2 * j) : w1, m3); \
                    _Pragma("GCC unroll 4") for (int t = 0; t < (NT); t++) {                       \
                        const __m256i b = bcast4(a[t] + 16 * v + 4 * j);                           \
                        s16[t][0] = _mm256_add_epi16(s16[t][0], _mm256_maddubs_epi16(d0, b));      \
                        s16[t][1] = _mm256_add_epi16(s16[t][1], _mm256_maddubs_epi16(d1, b));      \
                        KEEP_ORDER(s16[t][0]);                                                     \
                        KEEP_ORDER(s16[t][1]);                                                     \
                    }                                                                              \
                }                                                                                  \
            }                                                                                      \
            const float *dg = tile->d + g * TRIT_CPU_RG_ROWS;                                      \
            const __m256 dv0 = _mm256_loadu_ps(dg), dv1 = _mm256_loadu_ps(dg + 8);                 \
            _Pragma("GCC unroll 4") for (int t = 0; t < (NT); t++) {                               \
                const __m256i qs = _mm256_set1_epi32(tile->qsum[kb * TRIT_CPU_MAX_TOKENS + t]);     \
                const __m256 r = _mm256_set1_ps(tile->inv[kb * TRIT_CPU_MAX_TOKENS + t]);           \
                const __m256i i0 = _mm256_sub_epi32(_mm256_madd_epi16(s16[t][0], ones16), qs);     \
                const __m256i i1 = _mm256_sub_epi32(_mm256_madd_epi16(s16[t][1], ones16), qs);     \
                f[t][0] = _mm256_add_ps(f[t][0], _mm256_mul_ps(_mm256_mul_ps(_mm256_cvtepi32_ps(i0), r), dv0)); \
                f[t][1] = _mm256_add_ps(f[t][1], _mm256_mul_ps(_mm256_mul_ps(_mm256_cvtepi32_ps(i1), r), dv1)); \
            }                                                                                      \
            if (++in_g == tile->kb_per_group) in_g = 0, g++;                                       \
        }                                                                                          \
        _Pragma("GCC unroll 4") for (int t = 0; t < (NT); t++) {                                   \
            _mm256_storeu_ps(tile->out + t * tile->ld_out, f[t][0]);                               \
            _mm256_storeu_ps(tile->out + t * tile->ld_out + 8, f[t][1]);                           \
        }                                                                                          \
    }

DEFINE_BLOCKED(1)
DEFINE_BLOCKED(2)
_Static_assert(TRIT_CPU_BLOCKED_TOKENS == 2, "blocked_1 and blocked_2 cover the blocked token block");

__attribute__((target(AVX2_TARGET))) void trit_cpu_btile_avx2(const struct trit_cpu_btile *tile) {
    int8_t tail[TRIT_CPU_BLOCKED_TOKENS][TRIT_CPU_KB_COLS];
    trit_cpu_btile_tails(tile, tail);
    if (tile->n_tok == 1) blocked_1(tile, tail);
    else blocked_2(tile, tail);
}

#else
typedef int trit_gemm_avx2_unused; /* not an x86-64 build */
#endif
