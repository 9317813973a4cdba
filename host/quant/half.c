/*
 * half.c: fp16 (IEEE binary16) and bf16 (bfloat16) <-> fp32 conversions, bit exact.
 *
 * Narrowing rounds to nearest, ties to even, like the hardware converters (F16C, __float2half_rn).
 * Widening is exact. Subnormals are kept (no flush to zero). NaN stays NaN with its sign and the
 * top payload bits, made quiet; infinities stay infinities; values past the largest finite
 * fp16/bf16 (after rounding) become infinity.
 *
 *   fp32  s eeeeeeee mmmmmmmmmmmmmmmmmmmmmmm   bias 127
 *   fp16  s eeeee mmmmmmmmmm                   bias 15, subnormal unit 2^-24
 *   bf16  s eeeeeeee mmmmmmm                   the top half of an fp32
 */
#include <string.h>

#include "quant/quant.h"

static uint32_t f32_bits(float f) {
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u;
}

static float f32_from_bits(uint32_t u) {
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

/* ---- fp16 ------------------------------------------------------------------------------------- */

float trit_fp16_to_fp32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    uint32_t exp = (h >> 10) & 0x1fu;
    uint32_t mant = h & 0x3ffu;
    if (exp == 0x1f) return f32_from_bits(sign | 0x7f800000u | (mant << 13)); /* inf, NaN */
    if (exp != 0) return f32_from_bits(sign | ((exp + 127 - 15) << 23) | (mant << 13));
    if (mant == 0) return f32_from_bits(sign); /* +-0 */
    /* Subnormal mant * 2^-24: shift the leading one up to bit 10, lowering the exponent. */
    uint32_t e = 127 - 15 + 1;
    while ((mant & 0x400u) == 0) {
        mant <<= 1;
        e--;
    }
    return f32_from_bits(sign | (e << 23) | ((mant & 0x3ffu) << 13));
}

/* Rounds v >> shift to nearest even (1 <= shift <= 31). */
static uint32_t shift_rne(uint32_t v, int shift) {
    uint32_t q = v >> shift;
    uint32_t rem = v & ((1u << shift) - 1u);
    uint32_t half = 1u << (shift - 1);
    if (rem > half || (rem == half && (q & 1u))) q++;
    return q;
}

uint16_t trit_fp32_to_fp16(float f) {
    uint32_t x = f32_bits(f);
    uint16_t sign = (uint16_t)((x >> 16) & 0x8000u);
    x &= 0x7fffffffu;
    if (x > 0x7f800000u) return (uint16_t)(sign | 0x7e00u | ((x >> 13) & 0x3ffu)); /* quiet NaN */
    /* 65520 = 0x477ff000 is halfway between 65504 (odd mantissa 0x3ff) and 2^16: ties go up. */
    if (x >= 0x477ff000u) return (uint16_t)(sign | 0x7c00u);
    if (x >= 0x38800000u) {
        /* Normal fp16 (|f| >= 2^-14): rebias the exponent and round 23 -> 10 mantissa bits. A
         * carry out of the mantissa correctly bumps the exponent. */
        uint32_t h = shift_rne(x, 13) - ((127u - 15u) << 10);
        return (uint16_t)(sign | h);
    }
    /* Subnormal fp16: |f| = m24 * 2^(e - 23) with the implicit one; in units of 2^-24 that is
     * m24 >> (-1 - e). Below 2^-25 everything rounds to zero (fp32 subnormals included). */
    int e = (int)(x >> 23) - 127;
    int shift = -1 - e; /* 14 .. for e = -15 .. */
    if (shift > 24) return sign;
    uint32_t m24 = (x & 0x7fffffu) | 0x800000u;
    return (uint16_t)(sign | shift_rne(m24, shift)); /* may round up into the smallest normal */
}

/* ---- bf16 ------------------------------------------------------------------------------------- */

float trit_bf16_to_fp32(uint16_t h) { return f32_from_bits((uint32_t)h << 16); }

uint16_t trit_fp32_to_bf16(float f) {
    uint32_t x = f32_bits(f);
    if ((x & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((x >> 16) | 0x0040u); /* quiet NaN */
    /* Round 32 -> 16 bits to nearest even; overflow past the largest bf16 carries into inf. */
    return (uint16_t)((x + 0x7fffu + ((x >> 16) & 1u)) >> 16);
}
