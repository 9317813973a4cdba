/*
 * avx512_emu.h: the AVX-512 intrinsics trit's kernels use, emulated in portable C with the
 * instructions' exact semantics, for the test build TRIT_EMULATE_AVX512 (CMakeLists.txt). It lets a
 * machine without AVX-512 run the AVX-512 kernel family, bit for bit as the hardware would, so that
 * CI exercises that family's code on every x86-64 machine (docs/testing.md). Never part of a normal
 * build: cpu/simd_x86.h includes it only under TRIT_EMULATE_AVX512, after <immintrin.h>, and
 * redirects the intrinsic and type names below to these definitions.
 *
 * Semantics followed (Intel SDM, the instruction each intrinsic names):
 *   - masked loads read, and masked stores write, only the lanes whose mask bit is set (a masked-off
 *     lane may lie past the end of a buffer and is never touched);
 *   - vmaxps / vminps return the second operand when either is NaN or both are zeros;
 *   - vcvtps2dq rounds to nearest even and gives 0x80000000 for NaN and out-of-range values;
 *   - vpmovdb (cvtepi32_storeu_epi8) truncates; vpdpbusd adds four u8 x s8 products per lane with
 *     wrap-around; vfmadd rounds once; vscalefps multiplies by 2^floor(b), rounding once;
 *   - _mm512_reduce_add_ps adds in GCC's order (halves, then quarters, then pairs).
 * Only the intrinsics and immediates that trit uses are here; a new one must be added with its
 * semantics, or the emulated build fails to compile (every name is redirected).
 */
#ifndef TRIT_CPU_AVX512_EMU_H
#define TRIT_CPU_AVX512_EMU_H

#include <immintrin.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

/* The emulated code runs in functions compiled for AVX2 + FMA + F16C (simd_x86.h), so the helpers
 * may use those instructions for the 256- and 128-bit values that cross into real registers. */
#define EMU_FN static inline __attribute__((always_inline, target("avx2,fma,f16c")))

typedef union {
    float f[16];
    double d[8];
    int32_t i32[16];
    uint32_t u32[16];
    int16_t i16[32];
    uint16_t u16[32];
    int8_t i8[64];
    uint8_t u8[64];
} emu_v512;
typedef struct {
    emu_v512 v;
} emu_m512;
typedef struct {
    emu_v512 v;
} emu_m512i;
typedef struct {
    emu_v512 v;
} emu_m512d;

#define __m512 emu_m512
#define __m512i emu_m512i
#define __m512d emu_m512d

/* ---- constants, loads, stores ---------------------------------------------------------------- */

EMU_FN emu_m512 emu_setzero_ps(void) {
    emu_m512 r;
    memset(&r, 0, sizeof r);
    return r;
}
EMU_FN emu_m512i emu_setzero_si512(void) {
    emu_m512i r;
    memset(&r, 0, sizeof r);
    return r;
}
EMU_FN emu_m512 emu_set1_ps(float x) {
    emu_m512 r;
    for (int i = 0; i < 16; i++) r.v.f[i] = x;
    return r;
}
EMU_FN emu_m512i emu_set1_epi32(int x) {
    emu_m512i r;
    for (int i = 0; i < 16; i++) r.v.i32[i] = x;
    return r;
}
EMU_FN emu_m512i emu_set1_epi8(char x) {
    emu_m512i r;
    memset(r.v.u8, (unsigned char)x, 64);
    return r;
}
EMU_FN emu_m512 emu_loadu_ps(const void *p) {
    emu_m512 r;
    memcpy(r.v.f, p, 64);
    return r;
}
EMU_FN emu_m512i emu_loadu_si512(const void *p) {
    emu_m512i r;
    memcpy(r.v.u8, p, 64);
    return r;
}
EMU_FN void emu_storeu_ps(void *p, emu_m512 a) { memcpy(p, a.v.f, 64); }
EMU_FN void emu_storeu_si512(void *p, emu_m512i a) { memcpy(p, a.v.u8, 64); }
EMU_FN emu_m512 emu_mask_loadu_ps(emu_m512 src, __mmask16 k, const void *p) {
    for (int i = 0; i < 16; i++)
        if (k >> i & 1) memcpy(&src.v.f[i], (const char *)p + 4 * i, 4);
    return src;
}
EMU_FN emu_m512 emu_maskz_loadu_ps(__mmask16 k, const void *p) { return emu_mask_loadu_ps(emu_setzero_ps(), k, p); }
EMU_FN void emu_mask_storeu_ps(void *p, __mmask16 k, emu_m512 a) {
    for (int i = 0; i < 16; i++)
        if (k >> i & 1) memcpy((char *)p + 4 * i, &a.v.f[i], 4);
}
EMU_FN emu_m512i emu_maskz_loadu_epi8(__mmask64 k, const void *p) {
    emu_m512i r = emu_setzero_si512();
    for (int i = 0; i < 64; i++)
        if (k >> i & 1) r.v.u8[i] = ((const uint8_t *)p)[i];
    return r;
}
/* AVX-512 VL + BW: 16 words into a 256-bit register, masked-off lanes neither read nor kept. */
EMU_FN __m256i emu_mm256_maskz_loadu_epi16(__mmask16 k, const void *p) {
    uint16_t h[16] = {0};
    for (int i = 0; i < 16; i++)
        if (k >> i & 1) memcpy(&h[i], (const char *)p + 2 * i, 2);
    return _mm256_loadu_si256((const __m256i *)h);
}
/* vpmovdb with a mask: the low byte of each selected lane. */
EMU_FN void emu_mask_cvtepi32_storeu_epi8(void *p, __mmask16 k, emu_m512i a) {
    for (int i = 0; i < 16; i++)
        if (k >> i & 1) ((uint8_t *)p)[i] = (uint8_t)a.v.u32[i];
}

/* ---- integer arithmetic ------------------------------------------------------------------------ */

EMU_FN emu_m512i emu_and_si512(emu_m512i a, emu_m512i b) {
    for (int i = 0; i < 16; i++) a.v.u32[i] &= b.v.u32[i];
    return a;
}
EMU_FN emu_m512i emu_xor_si512(emu_m512i a, emu_m512i b) {
    for (int i = 0; i < 16; i++) a.v.u32[i] ^= b.v.u32[i];
    return a;
}
EMU_FN emu_m512i emu_add_epi32(emu_m512i a, emu_m512i b) {
    for (int i = 0; i < 16; i++) a.v.u32[i] += b.v.u32[i];
    return a;
}
EMU_FN emu_m512i emu_sub_epi32(emu_m512i a, emu_m512i b) {
    for (int i = 0; i < 16; i++) a.v.u32[i] -= b.v.u32[i];
    return a;
}
EMU_FN emu_m512i emu_srai_epi32(emu_m512i a, unsigned n) {
    for (int i = 0; i < 16; i++) a.v.i32[i] = n > 31 ? (a.v.i32[i] < 0 ? -1 : 0) : a.v.i32[i] >> n;
    return a;
}
EMU_FN emu_m512i emu_slli_epi32(emu_m512i a, unsigned n) {
    for (int i = 0; i < 16; i++) a.v.u32[i] = n > 31 ? 0 : a.v.u32[i] << n;
    return a;
}
/* vpdpbusd: lane i += sum_j a.u8[4i + j] * b.i8[4i + j], wrapping in 32 bits. */
EMU_FN emu_m512i emu_dpbusd_epi32(emu_m512i src, emu_m512i a, emu_m512i b) {
    for (int i = 0; i < 16; i++) {
        int32_t s = 0;
        for (int j = 0; j < 4; j++) s += (int32_t)a.v.u8[4 * i + j] * (int32_t)b.v.i8[4 * i + j];
        src.v.u32[i] += (uint32_t)s;
    }
    return src;
}
EMU_FN int emu_reduce_add_epi32(emu_m512i a) {
    uint32_t s = 0;
    for (int i = 0; i < 16; i++) s += a.v.u32[i];
    return (int)s;
}
EMU_FN emu_m512i emu_cvtepu16_epi32(__m256i h) {
    uint16_t w[16];
    _mm256_storeu_si256((__m256i *)w, h);
    emu_m512i r;
    for (int i = 0; i < 16; i++) r.v.u32[i] = w[i];
    return r;
}

EMU_FN emu_m512i emu_sub_epi8(emu_m512i a, emu_m512i b) {
    for (int i = 0; i < 64; i++) a.v.u8[i] = (uint8_t)(a.v.u8[i] - b.v.u8[i]);
    return a;
}
EMU_FN emu_m512i emu_mullo_epi32(emu_m512i a, emu_m512i b) {
    for (int i = 0; i < 16; i++) a.v.u32[i] *= b.v.u32[i];
    return a;
}
EMU_FN emu_m512i emu_mask_blend_epi32(__mmask16 k, emu_m512i a, emu_m512i b) {
    for (int i = 0; i < 16; i++)
        if (k >> i & 1) a.v.u32[i] = b.v.u32[i];
    return a;
}
EMU_FN emu_m512i emu_castsi256_si512(__m256i a) { /* the upper half is undefined: zero here */
    emu_m512i r = emu_setzero_si512();
    _mm256_storeu_si256((__m256i *)r.v.u8, a);
    return r;
}
EMU_FN emu_m512i emu_inserti64x4(emu_m512i a, __m256i b, int hi) {
    _mm256_storeu_si256((__m256i *)(a.v.u8 + (hi ? 32 : 0)), b);
    return a;
}

/* ---- float arithmetic -------------------------------------------------------------------------- */

EMU_FN emu_m512 emu_add_ps(emu_m512 a, emu_m512 b) {
    for (int i = 0; i < 16; i++) a.v.f[i] += b.v.f[i];
    return a;
}
EMU_FN emu_m512 emu_sub_ps(emu_m512 a, emu_m512 b) {
    for (int i = 0; i < 16; i++) a.v.f[i] -= b.v.f[i];
    return a;
}
EMU_FN emu_m512 emu_mul_ps(emu_m512 a, emu_m512 b) {
    for (int i = 0; i < 16; i++) a.v.f[i] *= b.v.f[i];
    return a;
}
EMU_FN emu_m512 emu_div_ps(emu_m512 a, emu_m512 b) {
    for (int i = 0; i < 16; i++) a.v.f[i] /= b.v.f[i];
    return a;
}
EMU_FN emu_m512 emu_fmadd_ps(emu_m512 a, emu_m512 b, emu_m512 c) {
    for (int i = 0; i < 16; i++) a.v.f[i] = fmaf(a.v.f[i], b.v.f[i], c.v.f[i]);
    return a;
}
EMU_FN emu_m512 emu_max_ps(emu_m512 a, emu_m512 b) {
    for (int i = 0; i < 16; i++) a.v.f[i] = a.v.f[i] > b.v.f[i] ? a.v.f[i] : b.v.f[i];
    return a;
}
EMU_FN emu_m512 emu_min_ps(emu_m512 a, emu_m512 b) {
    for (int i = 0; i < 16; i++) a.v.f[i] = a.v.f[i] < b.v.f[i] ? a.v.f[i] : b.v.f[i];
    return a;
}
EMU_FN emu_m512 emu_abs_ps(emu_m512 a) {
    for (int i = 0; i < 16; i++) a.v.u32[i] &= 0x7FFFFFFFu;
    return a;
}
/* vrndscaleps with scale 0: only "nearest even, no exceptions" is used. */
EMU_FN emu_m512 emu_roundscale_ps(emu_m512 a, int imm) {
    if (imm != (_MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC)) __builtin_trap();
    for (int i = 0; i < 16; i++) a.v.f[i] = nearbyintf(a.v.f[i]);
    return a;
}
/* vscalefps for finite inputs: a * 2^floor(b), one rounding (ldexpf is exact up to that rounding). */
EMU_FN emu_m512 emu_scalef_ps(emu_m512 a, emu_m512 b) {
    for (int i = 0; i < 16; i++) {
        float e = floorf(b.v.f[i]);
        e = e < -300.0f ? -300.0f : e > 300.0f ? 300.0f : e;
        a.v.f[i] = ldexpf(a.v.f[i], (int)e);
    }
    return a;
}
/* vcvtps2dq in the default rounding mode. */
EMU_FN emu_m512i emu_cvtps_epi32(emu_m512 a) {
    emu_m512i r;
    for (int i = 0; i < 16; i++) {
        const float x = nearbyintf(a.v.f[i]);
        r.v.i32[i] = x == x && x >= -2147483648.0f && x < 2147483648.0f ? (int32_t)x : INT32_MIN;
    }
    return r;
}
EMU_FN emu_m512 emu_cvtepi32_ps(emu_m512i a) { /* vcvtdq2ps: rounds to nearest even, as the cast does */
    emu_m512 r;
    for (int i = 0; i < 16; i++) r.v.f[i] = (float)a.v.i32[i];
    return r;
}
EMU_FN emu_m512 emu_cvtph_ps(__m256i h) {
    emu_m512 r;
    _mm256_storeu_ps(r.v.f, _mm256_cvtph_ps(_mm256_castsi256_si128(h)));
    _mm256_storeu_ps(r.v.f + 8, _mm256_cvtph_ps(_mm256_extracti128_si256(h, 1)));
    return r;
}
/* Only _CMP_ORD_Q is used: both operands are numbers. */
EMU_FN __mmask16 emu_cmp_ps_mask(emu_m512 a, emu_m512 b, int pred) {
    if (pred != _CMP_ORD_Q) __builtin_trap();
    unsigned k = 0;
    for (int i = 0; i < 16; i++) k |= (unsigned)(a.v.f[i] == a.v.f[i] && b.v.f[i] == b.v.f[i]) << i;
    return (__mmask16)k;
}
EMU_FN emu_m512 emu_maskz_mov_ps(__mmask16 k, emu_m512 a) {
    for (int i = 0; i < 16; i++)
        if (!(k >> i & 1)) a.v.u32[i] = 0;
    return a;
}
/* GCC's order: the two halves, then the two quarters of that, then pairs. */
EMU_FN float emu_reduce_add_ps(emu_m512 a) {
    float h[8], q[4];
    for (int i = 0; i < 8; i++) h[i] = a.v.f[8 + i] + a.v.f[i];
    for (int i = 0; i < 4; i++) q[i] = h[4 + i] + h[i];
    return (q[0] + q[2]) + (q[1] + q[3]);
}
EMU_FN float emu_reduce_max_ps(emu_m512 a) {
    float h[8], q[4];
    for (int i = 0; i < 8; i++) h[i] = a.v.f[8 + i] > a.v.f[i] ? a.v.f[8 + i] : a.v.f[i];
    for (int i = 0; i < 4; i++) q[i] = h[4 + i] > h[i] ? h[4 + i] : h[i];
    const float x = q[0] > q[2] ? q[0] : q[2], y = q[1] > q[3] ? q[1] : q[3];
    return x > y ? x : y;
}

/* ---- shuffles and casts ------------------------------------------------------------------------ */

EMU_FN emu_m512 emu_unpacklo_ps(emu_m512 a, emu_m512 b) {
    emu_m512 r;
    for (int l = 0; l < 4; l++) {
        const float *x = a.v.f + 4 * l, *y = b.v.f + 4 * l;
        float *o = r.v.f + 4 * l;
        o[0] = x[0], o[1] = y[0], o[2] = x[1], o[3] = y[1];
    }
    return r;
}
EMU_FN emu_m512 emu_unpackhi_ps(emu_m512 a, emu_m512 b) {
    emu_m512 r;
    for (int l = 0; l < 4; l++) {
        const float *x = a.v.f + 4 * l, *y = b.v.f + 4 * l;
        float *o = r.v.f + 4 * l;
        o[0] = x[2], o[1] = y[2], o[2] = x[3], o[3] = y[3];
    }
    return r;
}
EMU_FN emu_m512 emu_shuffle_ps(emu_m512 a, emu_m512 b, int imm) {
    emu_m512 r;
    for (int l = 0; l < 4; l++) {
        const float *x = a.v.f + 4 * l, *y = b.v.f + 4 * l;
        float *o = r.v.f + 4 * l;
        o[0] = x[imm & 3], o[1] = x[(imm >> 2) & 3], o[2] = y[(imm >> 4) & 3], o[3] = y[(imm >> 6) & 3];
    }
    return r;
}
EMU_FN __m256 emu_castps512_ps256(emu_m512 a) { return _mm256_loadu_ps(a.v.f); }
EMU_FN emu_m512d emu_castps_pd(emu_m512 a) {
    emu_m512d r;
    r.v = a.v;
    return r;
}
EMU_FN emu_m512 emu_castsi512_ps(emu_m512i a) {
    emu_m512 r;
    r.v = a.v;
    return r;
}
EMU_FN __m256d emu_extractf64x4_pd(emu_m512d a, int hi) { return _mm256_loadu_pd(a.v.d + (hi ? 4 : 0)); }

/* ---- the names ---------------------------------------------------------------------------------- */

#define _mm512_setzero_ps emu_setzero_ps
#define _mm512_setzero_si512 emu_setzero_si512
#define _mm512_set1_ps emu_set1_ps
#define _mm512_set1_epi32 emu_set1_epi32
#define _mm512_set1_epi8 emu_set1_epi8
#define _mm512_loadu_ps emu_loadu_ps
#define _mm512_loadu_si512 emu_loadu_si512
#define _mm512_storeu_ps emu_storeu_ps
#define _mm512_storeu_si512 emu_storeu_si512
#define _mm512_mask_loadu_ps emu_mask_loadu_ps
#define _mm512_maskz_loadu_ps emu_maskz_loadu_ps
#define _mm512_mask_storeu_ps emu_mask_storeu_ps
#define _mm512_maskz_loadu_epi8 emu_maskz_loadu_epi8
#define _mm256_maskz_loadu_epi16 emu_mm256_maskz_loadu_epi16
#define _mm512_mask_cvtepi32_storeu_epi8 emu_mask_cvtepi32_storeu_epi8
#define _mm512_and_si512 emu_and_si512
#define _mm512_xor_si512 emu_xor_si512
#define _mm512_add_epi32 emu_add_epi32
#define _mm512_sub_epi32 emu_sub_epi32
#define _mm512_srai_epi32 emu_srai_epi32
#define _mm512_slli_epi32 emu_slli_epi32
#define _mm512_dpbusd_epi32 emu_dpbusd_epi32
#define _mm512_sub_epi8 emu_sub_epi8
#define _mm512_mullo_epi32 emu_mullo_epi32
#define _mm512_mask_blend_epi32 emu_mask_blend_epi32
#define _mm512_castsi256_si512 emu_castsi256_si512
#define _mm512_inserti64x4 emu_inserti64x4
#define _mm512_reduce_add_epi32 emu_reduce_add_epi32
#define _mm512_cvtepu16_epi32 emu_cvtepu16_epi32
#define _mm512_add_ps emu_add_ps
#define _mm512_sub_ps emu_sub_ps
#define _mm512_mul_ps emu_mul_ps
#define _mm512_div_ps emu_div_ps
#define _mm512_fmadd_ps emu_fmadd_ps
#define _mm512_max_ps emu_max_ps
#define _mm512_min_ps emu_min_ps
#define _mm512_abs_ps emu_abs_ps
#define _mm512_roundscale_ps emu_roundscale_ps
#define _mm512_scalef_ps emu_scalef_ps
#define _mm512_cvtps_epi32 emu_cvtps_epi32
#define _mm512_cvtepi32_ps emu_cvtepi32_ps
#define _mm512_cvtph_ps emu_cvtph_ps
#define _mm512_cmp_ps_mask emu_cmp_ps_mask
#define _mm512_maskz_mov_ps emu_maskz_mov_ps
#define _mm512_reduce_add_ps emu_reduce_add_ps
#define _mm512_reduce_max_ps emu_reduce_max_ps
#define _mm512_unpacklo_ps emu_unpacklo_ps
#define _mm512_unpackhi_ps emu_unpackhi_ps
#define _mm512_shuffle_ps emu_shuffle_ps
#define _mm512_castps512_ps256 emu_castps512_ps256
#define _mm512_castps_pd emu_castps_pd
#define _mm512_castsi512_ps emu_castsi512_ps
#define _mm512_extractf64x4_pd emu_extractf64x4_pd

#endif /* TRIT_CPU_AVX512_EMU_H */
