/*
 * gemm_neon.c: the aarch64 micro-kernels (kernels.h), Advanced SIMD with and without DotProd.
 * Built only for aarch64; the DotProd one carries a target attribute, so one binary runs on any
 * Armv8-A and uses sdot where cpu_features reports it.
 *
 * A 64-byte weight vector is four 16-byte quarters, each holding 4 rows (4 codes per row and
 * plane). Per quarter, plane j = (quarter >> 2j) & 3 (ushr + and; ushr alone for j = 3), and
 *   DotProd: acc[t] = sdot_lane(acc[t], codes, q_t[16 v .. 16 v + 15], lane j)
 *            -> lane n of acc is row n's sum, no reduction;
 *   plain:   smull/smlal of codes with the 4 activation bytes duplicated to every row (|product|
 *            <= 256, 16 of them per int16 lane and tile: <= 4096, exact), then sadalp widens the
 *            two int16 halves of each row into its int32 lane once per tile.
 *
 *   compile check: aarch64-linux-gnu-gcc -std=c11 -O2 -D_POSIX_C_SOURCE=200809L -Iinclude -Ihost \
 *                  -c host/cpu/gemm_neon.c
 */
#include "cpu/kernels.h"

#if defined(__aarch64__)
#include <arm_neon.h>
#include <string.h>

#if defined(__clang__)
#define DOTPROD_TARGET "dotprod"
#else
#define DOTPROD_TARGET "arch=armv8.2-a+dotprod"
#endif
/* acc += sdot(a, b[lane]). Clang before 16 declares the DotProd intrinsics only when the whole
 * file is built for DotProd, so it gets the instruction through inline assembly. */
#if defined(__clang__) && __clang_major__ < 16 && !defined(__ARM_FEATURE_DOTPROD)
#define SDOT_LANE(acc, a, b, lane)                                                                 \
    __asm__("sdot %0.4s, %1.16b, %2.4b[" #lane "]" : "+w"(acc) : "w"(a), "w"(b))
#else
#define SDOT_LANE(acc, a, b, lane) ((acc) = vdotq_laneq_s32((acc), (a), (b), lane))
#endif

int32_t trit_cpu_sum_i8_neon(const int8_t *q, int64_t n) {
    int32x4_t s = vdupq_n_s32(0);
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) s = vpadalq_s16(s, vpaddlq_s8(vld1q_s8(q + i)));
    int32_t total = vaddvq_s32(s);
    for (; i < n; i++) total += q[i];
    return total;
}

/* The zero-padded last partial k-block of each token, and sum(q); returns a[t] for block kb. */
struct neon_prep {
    int32_t qsum[TRIT_CPU_MAX_TOKENS];
    int8_t tail[TRIT_CPU_MAX_TOKENS][TRIT_CPU_KB_COLS];
    int64_t n_full;
};

static void prepare(const struct trit_cpu_tile *tile, struct neon_prep *pp) {
    pp->n_full = tile->n_cols / TRIT_CPU_KB_COLS;
    trit_cpu_tile_qsums(tile, trit_cpu_sum_i8_neon, pp->qsum);
    trit_cpu_copy_tails(tile, pp->tail);
}

static inline uint8x16_t plane(uint8x16_t w, int j) {
    const uint8x16_t m3 = vdupq_n_u8(3);
    switch (j) {
    case 0: return vandq_u8(w, m3);
    case 1: return vandq_u8(vshrq_n_u8(w, 2), m3);
    case 2: return vandq_u8(vshrq_n_u8(w, 4), m3);
    default: return vshrq_n_u8(w, 6);
    }
}

/* ---- Advanced SIMD without DotProd ---------------------------------------------------------- */

void trit_cpu_tile_neon(const struct trit_cpu_tile *tile) {
    struct neon_prep pp;
    prepare(tile, &pp);
    for (int64_t rg = 0; rg < tile->n_rg; rg++)
        for (int qr = 0; qr < 4; qr++) { /* rows 4 qr .. 4 qr + 3 */
            const uint8_t *w = tile->w + rg * tile->n_kb * TRIT_CPU_TILE_BYTES + 16 * qr;
            for (int t = 0; t < tile->n_tok; t++) {
                int32x4_t acc = vdupq_n_s32(0);
                for (int64_t kb = 0; kb < tile->n_kb; kb++) {
                    const int8_t *a = kb < pp.n_full ? tile->q + t * tile->ld_q + kb * TRIT_CPU_KB_COLS : pp.tail[t];
                    const uint8_t *wk = w + kb * TRIT_CPU_TILE_BYTES;
                    int16x8_t lo = vdupq_n_s16(0), hi = vdupq_n_s16(0);
                    for (int v = 0; v < 4; v++) {
                        uint8x16_t wv = vld1q_u8(wk + 64 * v);
                        for (int j = 0; j < 4; j++) {
                            int32_t four;
                            memcpy(&four, a + 16 * v + 4 * j, sizeof four);
                            int8x16_t b = vreinterpretq_s8_s32(vdupq_n_s32(four));
                            int8x16_t d = vreinterpretq_s8_u8(plane(wv, j));
                            lo = vmlal_s8(lo, vget_low_s8(d), vget_low_s8(b));   /* rows 0, 1 */
                            hi = vmlal_high_s8(hi, d, b);                        /* rows 2, 3 */
                        }
                    }
                    /* [r0 r0 r0 r0 r1 r1 r1 r1] [r2 ... r3 ...] -> pairwise -> [r0 r0 r1 r1 r2 r2 r3 r3] */
                    acc = vpadalq_s16(acc, vpaddq_s16(lo, hi));
                }
                acc = vsubq_s32(acc, vdupq_n_s32(pp.qsum[t]));
                vst1q_s32(tile->out + t * tile->ld_out + rg * TRIT_CPU_RG_ROWS + 4 * qr, acc);
            }
        }
}

/* ---- DotProd -------------------------------------------------------------------------------- */

__attribute__((target(DOTPROD_TARGET))) void trit_cpu_tile_neon_dotprod(const struct trit_cpu_tile *tile) {
    struct neon_prep pp;
    prepare(tile, &pp);
    for (int64_t rg = 0; rg < tile->n_rg; rg++)
        for (int qr = 0; qr < 4; qr++) {
            const uint8_t *w = tile->w + rg * tile->n_kb * TRIT_CPU_TILE_BYTES + 16 * qr;
            int32x4_t acc[TRIT_CPU_MAX_TOKENS];
            for (int t = 0; t < TRIT_CPU_MAX_TOKENS; t++) acc[t] = vdupq_n_s32(0);
            for (int64_t kb = 0; kb < tile->n_kb; kb++) {
                const uint8_t *wk = w + kb * TRIT_CPU_TILE_BYTES;
                for (int v = 0; v < 4; v++) {
                    uint8x16_t wv = vld1q_u8(wk + 64 * v);
                    int8x16_t d0 = vreinterpretq_s8_u8(plane(wv, 0)), d1 = vreinterpretq_s8_u8(plane(wv, 1));
                    int8x16_t d2 = vreinterpretq_s8_u8(plane(wv, 2)), d3 = vreinterpretq_s8_u8(plane(wv, 3));
                    for (int t = 0; t < tile->n_tok; t++) {
                        const int8_t *a = kb < pp.n_full ? tile->q + t * tile->ld_q + kb * TRIT_CPU_KB_COLS : pp.tail[t];
                        int8x16_t av = vld1q_s8(a + 16 * v);
                        SDOT_LANE(acc[t], d0, av, 0);
                        SDOT_LANE(acc[t], d1, av, 1);
                        SDOT_LANE(acc[t], d2, av, 2);
                        SDOT_LANE(acc[t], d3, av, 3);
                    }
                }
            }
            for (int t = 0; t < tile->n_tok; t++)
                vst1q_s32(tile->out + t * tile->ld_out + rg * TRIT_CPU_RG_ROWS + 4 * qr,
                          vsubq_s32(acc[t], vdupq_n_s32(pp.qsum[t])));
        }
}

#else
typedef int trit_gemm_neon_unused; /* not an aarch64 build */
#endif
