// labels: unit
/*
 * test_ggml_dequant.c: the ggml block dequantizers of quant/ggml_dequant.h and the GGUF loader
 * path that uses them for quantized token_embd / output tensors.
 *
 *   1. Hand-written blocks, one or more per type: chosen bytes for d / dmin / scales / qs, and the
 *      dequantized floats worked out in the comments from ggml's layout (ggml-common.h,
 *      dequantize_row_* in ggml-quants.c). Every value is exact in fp32, so they compare with ==.
 *   2. A round trip per type against a small reference quantizer written here: random floats
 *      quantized with the format's own rule (scales chosen so that no code clamps), dequantized,
 *      and the error bounded by half the format's step (see ROUNDTRIP_SLACK).
 *   3. GGUF files written with gguf_writer: TQ2_0 weights with a Q6_K token_embd and a Q8_0 output
 *      (and a tied Q4_K embedding) load through trit_model_load_path, and the fp16 rows equal the
 *      fp16 rounding of the fp32 dequantization; an unknown type and a non-finite scale are refused
 *      by tensor name.
 *
 *   ctest --test-dir build -R test_ggml_dequant --output-on-failure
 */
#include <criterion/criterion.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "io/gguf.h"
#include "model/model.h"
#include "quant/ggml_dequant.h"
#include "quant/quant.h"
#include "support.h"

/* fp16 bit patterns used by the hand-written blocks. */
#define H_0_0625 0x2c00u
#define H_0_125 0x3000u
#define H_0_25 0x3400u
#define H_0_5 0x3800u
#define H_1 0x3c00u
#define H_M1 0xbc00u

static void put_h(uint8_t *p, unsigned h) {
    p[0] = (uint8_t)(h & 0xffu);
    p[1] = (uint8_t)(h >> 8);
}

/* Dequantizes n elements of one hand-written block into a poisoned buffer (so an element the
 * decoder forgot shows) and compares each with `expect`, exactly. */
static void check_exact(uint32_t type, const uint8_t *blk, const float *expect, int n) {
    float y[256];
    test_poison(y, sizeof y);
    cr_assert_eq(trit_ggml_dequant_row(type, blk, y, n), TRIT_OK, "%s", trit_last_error());
    for (int e = 0; e < n; e++)
        cr_assert(y[e] == expect[e] && !isnan(y[e]), "%s element %d: got %.9g, expected %.9g",
                  gguf_type_name(type, false), e, (double)y[e], (double)expect[e]);
}

/* ---- 1. hand-written blocks: 32-element types ---------------------------------------------- */

Test(hand, q4_0) {
    /* d = 0.5; qs[j] = j | (15 - j) << 4. Element j takes the low nibble, element j + 16 the high
     * one, both minus 8:  y[j] = (j - 8) * 0.5  (-4 .. 3.5),  y[16 + j] = (7 - j) * 0.5  (3.5 .. -4). */
    uint8_t b[18];
    put_h(b, H_0_5);
    for (int j = 0; j < 16; j++) b[2 + j] = (uint8_t)(j | (15 - j) << 4);
    const float expect[32] = {-4.0f, -3.5f, -3.0f, -2.5f, -2.0f, -1.5f, -1.0f, -0.5f, 0.0f, 0.5f, 1.0f,
                              1.5f,  2.0f,  2.5f,  3.0f,  3.5f,  3.5f,  3.0f,  2.5f,  2.0f, 1.5f, 1.0f,
                              0.5f,  0.0f,  -0.5f, -1.0f, -1.5f, -2.0f, -2.5f, -3.0f, -3.5f, -4.0f};
    check_exact(GGML_TYPE_Q4_0, b, expect, 32);
}

Test(hand, q4_1) {
    /* d = 0.25, m = -1; qs[j] = j | (15 - j) << 4; y = q * d + m:
     * y[j] = 0.25 j - 1  (-1 .. 2.75),  y[16 + j] = 0.25 (15 - j) - 1  (2.75 .. -1). */
    uint8_t b[20];
    put_h(b, H_0_25);
    put_h(b + 2, H_M1);
    for (int j = 0; j < 16; j++) b[4 + j] = (uint8_t)(j | (15 - j) << 4);
    const float expect[32] = {-1.0f,  -0.75f, -0.5f, -0.25f, 0.0f,  0.25f, 0.5f, 0.75f, 1.0f,  1.25f, 1.5f,
                              1.75f,  2.0f,   2.25f, 2.5f,   2.75f, 2.75f, 2.5f, 2.25f, 2.0f,  1.75f, 1.5f,
                              1.25f,  1.0f,   0.75f, 0.5f,   0.25f, 0.0f,  -0.25f, -0.5f, -0.75f, -1.0f};
    check_exact(GGML_TYPE_Q4_1, b, expect, 32);
}

Test(hand, q5_0) {
    /* d = 0.5; qs[j] = j | (15 - j) << 4; qh (u32 little-endian) = 0x00ff00f0: bits 4..7 give
     * elements 4..7 their fifth bit, bits 16..23 give elements 16..23 theirs. q = nibble + 16*bit - 16:
     *   y[0..3]   = (j - 16) / 2        = -8, -7.5, -7, -6.5
     *   y[4..7]   = (j + 16 - 16) / 2   = 2, 2.5, 3, 3.5
     *   y[8..15]  = (j - 16) / 2        = -4 .. -0.5
     *   y[16+j], j < 8:  (15 - j) / 2   = 7.5 .. 4
     *   y[16+j], j >= 8: (15 - j - 16) / 2 = -4.5 .. -8 */
    uint8_t b[22];
    put_h(b, H_0_5);
    b[2] = 0xf0;
    b[3] = 0x00;
    b[4] = 0xff;
    b[5] = 0x00;
    for (int j = 0; j < 16; j++) b[6 + j] = (uint8_t)(j | (15 - j) << 4);
    const float expect[32] = {-8.0f, -7.5f, -7.0f, -6.5f, 2.0f,  2.5f,  3.0f,  3.5f,  -4.0f, -3.5f, -3.0f,
                              -2.5f, -2.0f, -1.5f, -1.0f, -0.5f, 7.5f,  7.0f,  6.5f,  6.0f,  5.5f,  5.0f,
                              4.5f,  4.0f,  -4.5f, -5.0f, -5.5f, -6.0f, -6.5f, -7.0f, -7.5f, -8.0f};
    check_exact(GGML_TYPE_Q5_0, b, expect, 32);
}

Test(hand, q5_1) {
    /* d = 0.25, m = 0.5; qs[j] = j | (15 - j) << 4; qh = 0x80000001: element 0 and element 31 get
     * +16. y = q * 0.25 + 0.5:
     *   y[0] = 16 * 0.25 + 0.5 = 4.5;  y[j] = 0.25 j + 0.5 (j = 1..15: 0.75 .. 4.25)
     *   y[16 + j] = 0.25 (15 - j) + 0.5 (j = 0..14: 4.25 .. 0.75);  y[31] = (0 + 16) * 0.25 + 0.5 = 4.5 */
    uint8_t b[24];
    put_h(b, H_0_25);
    put_h(b + 2, H_0_5);
    b[4] = 0x01;
    b[5] = 0x00;
    b[6] = 0x00;
    b[7] = 0x80;
    for (int j = 0; j < 16; j++) b[8 + j] = (uint8_t)(j | (15 - j) << 4);
    const float expect[32] = {4.5f,  0.75f, 1.0f,  1.25f, 1.5f,  1.75f, 2.0f,  2.25f, 2.5f,  2.75f, 3.0f,
                              3.25f, 3.5f,  3.75f, 4.0f,  4.25f, 4.25f, 4.0f,  3.75f, 3.5f,  3.25f, 3.0f,
                              2.75f, 2.5f,  2.25f, 2.0f,  1.75f, 1.5f,  1.25f, 1.0f,  0.75f, 4.5f};
    check_exact(GGML_TYPE_Q5_1, b, expect, 32);
}

Test(hand, q8_0) {
    /* d = 0.125; qs[j] = 8 j - 128 (int8: -128, -120, ..., 112) for j < 31, qs[31] = 127.
     * y[j] = (8 j - 128) / 8 = j - 16  (-16 .. 14);  y[31] = 127 / 8 = 15.875. */
    uint8_t b[34];
    put_h(b, H_0_125);
    for (int j = 0; j < 31; j++) b[2 + j] = (uint8_t)(int8_t)(8 * j - 128);
    b[2 + 31] = 127;
    float expect[32];
    for (int j = 0; j < 31; j++) expect[j] = (float)(j - 16);
    expect[31] = 15.875f;
    check_exact(GGML_TYPE_Q8_0, b, expect, 32);
}

Test(hand, q8_0_two_blocks_negative_scale) {
    /* Two blocks in one row: block 0 d = -1, qs = 1, 2, ..., 32 -> y = -1 .. -32; block 1 d = 0.0625,
     * qs all -16 -> y = -1. A sign in d is legal fp16 and must pass through. */
    uint8_t b[68];
    put_h(b, H_M1);
    for (int j = 0; j < 32; j++) b[2 + j] = (uint8_t)(j + 1);
    put_h(b + 34, H_0_0625);
    for (int j = 0; j < 32; j++) b[36 + j] = (uint8_t)(int8_t)-16;
    float expect[64];
    for (int j = 0; j < 32; j++) expect[j] = (float)-(j + 1);
    for (int j = 32; j < 64; j++) expect[j] = -1.0f;
    check_exact(GGML_TYPE_Q8_0, b, expect, 64);
}

/* ---- 1. hand-written blocks: 256-element super-blocks --------------------------------------- */

/* Q2_K, 84 bytes: scales[16] @0, qs[64] @16, d @80, dmin @82.
 * Chosen: d = 0.5, dmin = 0.25; scales[s] = (1 + s % 15) | s << 4, i.e. scale 1 + s % 15 and min s
 * (bytes 0x01, 0x12, 0x23, ..., 0xef, 0xf1); every qs byte 0xe4 = 0b11'10'01'00, so the 2-bit field
 * at shift 2k is k and an element's q is its 32-group within the 128-half, (e % 128) / 32; except
 * qs[5] = 0x1b (fields 3, 2, 1, 0: elements 5, 37, 69, 101 get q = 3 - k) and qs[32 + 7] = 0
 * (elements 135, 167, 199, 231 get q = 0).
 * y = 0.5 * (1 + s % 15) * q - 0.25 * s with s = e / 16. Spot values:
 *   e = 0:   s 0, q 0              -> 0
 *   e = 37:  s 2, q 3 - 1 = 2      -> 0.5 * 3 * 2 - 0.5 = 2.5
 *   e = 231: s 14, q 0             -> -3.5
 *   e = 255: s 15 (scale 1), q 3   -> 1.5 - 3.75 = -2.25 */
static float q2k_expect(int e) {
    const int s = e / 16, l = e % 32, k = (e % 128) / 32, h = e / 128;
    int q = k;
    if (h == 0 && l == 5) q = 3 - k;
    if (h == 1 && l == 7) q = 0;
    return 0.5f * (float)(1 + s % 15) * (float)q - 0.25f * (float)s;
}

Test(hand, q2_k) {
    uint8_t b[84];
    for (int s = 0; s < 16; s++) b[s] = (uint8_t)((1 + s % 15) | s << 4);
    cr_assert_eq(b[1], 0x12);
    cr_assert_eq(b[15], 0xf1);
    memset(b + 16, 0xe4, 64);
    b[16 + 5] = 0x1b;
    b[16 + 32 + 7] = 0x00;
    put_h(b + 80, H_0_5);
    put_h(b + 82, H_0_25);
    float expect[256];
    for (int e = 0; e < 256; e++) expect[e] = q2k_expect(e);
    cr_assert(expect[0] == 0.0f && expect[37] == 2.5f && expect[231] == -3.5f && expect[255] == -2.25f);
    check_exact(GGML_TYPE_Q2_K, b, expect, 256);
}

/* Q3_K, 110 bytes: hmask[32] @0, qs[64] @32, scales[12] @96, d @108.
 * Chosen: d = 0.25; sub-block s gets the 6-bit biased scale 24 + s, i.e. s - 8 after the -32 bias
 * (-8 .. 7; sub-block 8 is all zero). Low nibbles 8 + s (s < 8) and s - 8 (s >= 8) go to
 * scales[s] low / scales[s - 8] high: scales[j] = (8 + j) | j << 4 for j < 8 (0x08, 0x19, ..., 0x7f).
 * High bits: 1 for s < 8, 2 for s >= 8, placed at scales[8 + s % 4] bits 2 (s / 4): each of
 * scales[8..11] = 1 | 1 << 2 | 2 << 4 | 2 << 6 = 0xa5.
 * qs bytes all 0xe4: the low 2 bits of an element are k = (e % 128) / 32.
 * hmask[l] = 0x0f for all l: bits 0..3 (the first half, h = 0) set, so no -4 there; bits 4..7 clear,
 * so the second half subtracts 4. Except hmask[3] = 0xf0: element 3 + 32k subtracts 4 in half 0
 * and not in half 1.
 * y = 0.25 * (s - 8) * q. Spot values:
 *   e = 0:   s 0 (-8), q 0             -> -2 * 0 = -0
 *   e = 35:  s 2 (-6), q 1 - 4 = -3    -> -1.5 * -3 = 4.5
 *   e = 40:  s 2, q 1                  -> -1.5
 *   e = 131: s 8 (0)                   -> 0
 *   e = 163: s 10 (2), q 1 (hmask[3] bit 5 set) -> 0.5
 *   e = 255: s 15 (7), q 3 - 4 = -1    -> -1.75 */
static float q3k_expect(int e) {
    const int s = e / 16, l = e % 32, k = (e % 128) / 32, h = e / 128;
    const bool sub4 = h == 0 ? l == 3 : l != 3;
    const int q = k - (sub4 ? 4 : 0);
    return 0.25f * (float)(s - 8) * (float)q;
}

Test(hand, q3_k) {
    uint8_t b[110];
    for (int l = 0; l < 32; l++) b[l] = 0x0f;
    b[3] = 0xf0;
    memset(b + 32, 0xe4, 64);
    for (int j = 0; j < 8; j++) b[96 + j] = (uint8_t)((8 + j) | j << 4);
    for (int j = 8; j < 12; j++) b[96 + j] = 0xa5;
    cr_assert_eq(b[96 + 7], 0x7f);
    put_h(b + 108, H_0_25);
    float expect[256];
    for (int e = 0; e < 256; e++) expect[e] = q3k_expect(e);
    cr_assert(expect[0] == 0.0f && expect[35] == 4.5f && expect[40] == -1.5f && expect[131] == 0.0f &&
              expect[163] == 0.5f && expect[255] == -1.75f);
    check_exact(GGML_TYPE_Q3_K, b, expect, 256);
}

/* The 12 scale bytes shared by the Q4_K and Q5_K blocks below: sub-block j (32 elements) gets
 * scale sc_j = 10 + 7 j (10, 17, 24, 31, 38, 45, 52, 59) and min m_j = 63 - 8 j (63, 55, 47, 39,
 * 31, 23, 15, 7).
 *   j < 4:  scales[j] low 6 bits = sc_j, scales[j + 4] low 6 bits = m_j;
 *   j >= 4: scales[j + 4] = (sc_j & 15) | (m_j & 15) << 4, and the top 2 bits of sc_j / m_j go to
 *           bits 6-7 of scales[j - 4] / scales[j].
 *   scales[0] = 10 | (38 >> 4) << 6 = 10 + 128 = 138     scales[4] = 63 | (31 >> 4) << 6 = 127
 *   scales[1] = 17 | (45 >> 4) << 6 = 145                scales[5] = 55 | (23 >> 4) << 6 = 119
 *   scales[2] = 24 | (52 >> 4) << 6 = 24 + 192 = 216     scales[6] = 47 | (15 >> 4) << 6 = 47
 *   scales[3] = 31 | (59 >> 4) << 6 = 223                scales[7] = 39 | (7 >> 4) << 6 = 39
 *   scales[8] = 6 | 15 << 4 = 246     scales[9] = 13 | 7 << 4 = 125
 *   scales[10] = 4 | 15 << 4 = 244    scales[11] = 11 | 7 << 4 = 123 */
static const uint8_t K4_SCALES[12] = {138, 145, 216, 223, 127, 119, 47, 39, 246, 125, 244, 123};
static int k4_sc(int j) { return 10 + 7 * j; }
static int k4_m(int j) { return 63 - 8 * j; }

/* Q4_K, 144 bytes: d @0, dmin @2, scales[12] @4, qs[128] @16.
 * Chosen: d = 0.5, dmin = 0.25, K4_SCALES; qs[i] = (i % 16) | (15 - i % 16) << 4.
 * Element e reads byte 32 (e / 64) + e % 32: low nibble when e % 64 < 32 (sub-block 2c), high
 * nibble otherwise (sub-block 2c + 1). So with l = e % 32: q = l % 16, or 15 - l % 16.
 * y = 0.5 sc_j q - 0.25 m_j with j = e / 32. Spot values:
 *   e = 0:   j 0, q 0            -> -0.25 * 63 = -15.75
 *   e = 33:  j 1, q 15 - 1 = 14  -> 0.5 * 17 * 14 - 0.25 * 55 = 119 - 13.75 = 105.25
 *   e = 140: j 4, q 12           -> 0.5 * 38 * 12 - 0.25 * 31 = 228 - 7.75 = 220.25
 *   e = 255: j 7, q 15 - 15 = 0  -> -0.25 * 7 = -1.75 */
static int q4k_q(int e) {
    const int l = e % 32;
    return e % 64 < 32 ? l % 16 : 15 - l % 16;
}

static float q4k_expect(int e) {
    const int j = e / 32;
    return 0.5f * (float)k4_sc(j) * (float)q4k_q(e) - 0.25f * (float)k4_m(j);
}

Test(hand, q4_k) {
    uint8_t b[144];
    put_h(b, H_0_5);
    put_h(b + 2, H_0_25);
    memcpy(b + 4, K4_SCALES, 12);
    for (int i = 0; i < 128; i++) b[16 + i] = (uint8_t)((i % 16) | (15 - i % 16) << 4);
    float expect[256];
    for (int e = 0; e < 256; e++) expect[e] = q4k_expect(e);
    cr_assert(expect[0] == -15.75f && expect[33] == 105.25f && expect[140] == 220.25f && expect[255] == -1.75f);
    check_exact(GGML_TYPE_Q4_K, b, expect, 256);
}

/* Q5_K, 176 bytes: d @0, dmin @2, scales[12] @4, qh[32] @16, qs[128] @48.
 * Chosen: as the Q4_K block, plus qh[l] = 0xa5 (bits 0, 2, 5, 7) for l > 0 and qh[0] = 0: element e
 * adds 16 when bit j = e / 32 of qh[e % 32] is set, i.e. in sub-blocks 0, 2, 5, 7 except at l = 0.
 * Spot values:
 *   e = 0:   j 0, l 0 (qh 0), q 0       -> -15.75
 *   e = 1:   j 0, q 1 + 16 = 17         -> 0.5 * 10 * 17 - 15.75 = 69.25
 *   e = 33:  j 1 (bit clear), q 14      -> 105.25 as in Q4_K
 *   e = 255: j 7, q 0 + 16              -> 0.5 * 59 * 16 - 1.75 = 470.25 */
static float q5k_expect(int e) {
    const int j = e / 32, l = e % 32;
    const int hi = l != 0 && (0xa5 >> j & 1) ? 16 : 0;
    return 0.5f * (float)k4_sc(j) * (float)(q4k_q(e) + hi) - 0.25f * (float)k4_m(j);
}

Test(hand, q5_k) {
    uint8_t b[176];
    put_h(b, H_0_5);
    put_h(b + 2, H_0_25);
    memcpy(b + 4, K4_SCALES, 12);
    memset(b + 16, 0xa5, 32);
    b[16] = 0x00;
    for (int i = 0; i < 128; i++) b[48 + i] = (uint8_t)((i % 16) | (15 - i % 16) << 4);
    float expect[256];
    for (int e = 0; e < 256; e++) expect[e] = q5k_expect(e);
    cr_assert(expect[0] == -15.75f && expect[1] == 69.25f && expect[33] == 105.25f && expect[255] == 470.25f);
    check_exact(GGML_TYPE_Q5_K, b, expect, 256);
}

/* Q6_K, 210 bytes: ql[128] @0, qh[64] @128, scales[16] int8 @192, d @208.
 * Chosen: d = 0.25; scales[s] = 2 s - 15 (-15, -13, ..., 15); ql[i] = (i % 16) | (15 - i % 16) << 4;
 * qh bytes 0xe4 (the 2-bit field at shift 2k is k), except qh[32 + 5] = 0x1b (field k is 3 - k).
 * Element e: h = e / 128, k = (e % 128) / 32, l = e % 32. Its low 4 bits are the low nibble of
 * ql[64 h + 32 (k & 1) + l] for k < 2, the high nibble for k >= 2: l % 16, or 15 - l % 16; its top
 * 2 bits are field k of qh[32 h + l]. q = low | top << 4, minus 32; y = 0.25 * scales[e / 16] * q.
 * Spot values:
 *   e = 0:   s 0 (-15), k 0, low 0, top 0         -> q -32, y = 0.25 * -15 * -32 = 120
 *   e = 66:  s 4 (-7), k 2, low 15 - 2 = 13, top 2 -> q 13, y = -22.75
 *   e = 133: s 8 (1), k 0, low 5, top 3 (qh[37])   -> q 5 + 48 - 32 = 21, y = 5.25
 *   e = 255: s 15 (15), k 3, low 0, top 3          -> q 16, y = 60 */
static float q6k_expect(int e) {
    const int s = e / 16, h = e / 128, k = (e % 128) / 32, l = e % 32;
    const int low = k < 2 ? l % 16 : 15 - l % 16;
    const int top = h == 1 && l == 5 ? 3 - k : k;
    return 0.25f * (float)(2 * s - 15) * (float)((low | top << 4) - 32);
}

Test(hand, q6_k) {
    uint8_t b[210];
    for (int i = 0; i < 128; i++) b[i] = (uint8_t)((i % 16) | (15 - i % 16) << 4);
    memset(b + 128, 0xe4, 64);
    b[128 + 32 + 5] = 0x1b;
    for (int s = 0; s < 16; s++) b[192 + s] = (uint8_t)(int8_t)(2 * s - 15);
    put_h(b + 208, H_0_25);
    float expect[256];
    for (int e = 0; e < 256; e++) expect[e] = q6k_expect(e);
    cr_assert(expect[0] == 120.0f && expect[66] == -22.75f && expect[133] == 5.25f && expect[255] == 60.0f);
    check_exact(GGML_TYPE_Q6_K, b, expect, 256);
}

/* ---- argument checks ------------------------------------------------------------------------- */

static const uint32_t SUPPORTED[] = {GGML_TYPE_Q4_0, GGML_TYPE_Q4_1, GGML_TYPE_Q5_0, GGML_TYPE_Q5_1,
                                     GGML_TYPE_Q8_0, GGML_TYPE_Q2_K, GGML_TYPE_Q3_K, GGML_TYPE_Q4_K,
                                     GGML_TYPE_Q5_K, GGML_TYPE_Q6_K};
#define N_SUPPORTED ((int)(sizeof SUPPORTED / sizeof SUPPORTED[0]))

Test(args, block_sizes_agree_with_the_gguf_reader) {
    for (int i = 0; i < N_SUPPORTED; i++) {
        uint32_t b1, s1, b2, s2;
        cr_assert(trit_ggml_dequant_supported(SUPPORTED[i]));
        cr_assert(trit_ggml_dequant_block(SUPPORTED[i], &b1, &s1));
        cr_assert(gguf_type_traits(SUPPORTED[i], &b2, &s2));
        cr_assert(b1 == b2 && s1 == s2, "%s: %u/%u here, %u/%u in the gguf reader", gguf_type_name(SUPPORTED[i], false),
                  b1, s1, b2, s2);
        cr_assert_eq(trit_ggml_dequant_bytes(SUPPORTED[i], 3 * (int64_t)b1), 3 * (uint64_t)s1);
        cr_assert_eq(trit_ggml_dequant_bytes(SUPPORTED[i], (int64_t)b1 + 1), 0);
    }
    const uint32_t others[] = {GGML_TYPE_F32, GGML_TYPE_F16, GGML_TYPE_BF16, GGML_TYPE_Q8_1, GGML_TYPE_Q8_K,
                               GGML_TYPE_TQ1_0, GGML_TYPE_TQ2_0, 20 /* IQ4_NL */, 36, 39, 1000};
    for (size_t i = 0; i < sizeof others / sizeof others[0]; i++) {
        uint32_t b, s;
        cr_assert(!trit_ggml_dequant_supported(others[i]));
        cr_assert(!trit_ggml_dequant_block(others[i], &b, &s));
        cr_assert(b == 0 && s == 0);
    }
}

Test(args, refuses_partial_blocks_and_unknown_types) {
    uint8_t blk[2 * 210] = {0};
    float y[512];
    cr_assert_eq(trit_ggml_dequant_row(GGML_TYPE_Q6_K, blk, y, 300), TRIT_ERR_INVALID_ARG);
    cr_assert(strstr(trit_last_error(), "Q6_K") && strstr(trit_last_error(), "256"), "%s", trit_last_error());
    cr_assert_eq(trit_ggml_dequant_row(GGML_TYPE_Q8_0, blk, y, 40), TRIT_ERR_INVALID_ARG);
    cr_assert_eq(trit_ggml_dequant_row(GGML_TYPE_Q8_0, blk, y, 0), TRIT_ERR_INVALID_ARG);
    cr_assert_eq(trit_ggml_dequant_row(GGML_TYPE_Q8_0, NULL, y, 32), TRIT_ERR_INVALID_ARG);
    cr_assert_eq(trit_ggml_dequant_row(GGML_TYPE_TQ2_0, blk, y, 256), TRIT_ERR_UNSUPPORTED);
    cr_assert(strstr(trit_last_error(), "TQ2_0"), "%s", trit_last_error());
    uint16_t *h = (uint16_t *)1;
    cr_assert_eq(trit_ggml_dequant_f16(GGML_TYPE_Q4_K, blk, 2, 255, &h), TRIT_ERR_INVALID_ARG);
    cr_assert_null(h);
    cr_assert_eq(trit_ggml_dequant_f16(GGML_TYPE_Q4_K, blk, 0, 256, &h), TRIT_ERR_INVALID_ARG);
}

Test(args, non_finite_fp16_is_refused_with_its_position) {
    /* Row 1 of a 2 x 32 Q8_0 matrix: d = 1024, q = 127 at column 9 -> 130048 > 65504 (fp16 inf). */
    uint8_t b[68] = {0};
    put_h(b, H_1);
    put_h(b + 34, 0x6400u); /* 1024 */
    b[36 + 9] = 127;
    uint16_t *h = NULL;
    cr_assert_eq(trit_ggml_dequant_f16(GGML_TYPE_Q8_0, b, 2, 32, &h), TRIT_ERR_FORMAT);
    cr_assert_null(h);
    cr_assert(strstr(trit_last_error(), "row 1, column 9"), "%s", trit_last_error());
    /* A NaN scale. */
    put_h(b + 34, 0x7e00u);
    b[36 + 9] = 0;
    cr_assert_eq(trit_ggml_dequant_f16(GGML_TYPE_Q8_0, b, 2, 32, &h), TRIT_ERR_FORMAT);
}

/* ---- 2. round trip against a reference quantizer ----------------------------------------------
 *
 * Each quantizer below follows its format's own rule, y = d q (type 0) or y = d q - m / d q + m
 * (type 1), with every scale chosen so that no code clamps: fp16 scales are rounded up (f16_up)
 * and 4-/6-/8-bit sub-block scales are rounded up (ceil) over the ideal one, and the type-1 offset
 * is rounded so that x - m >= 0. Then every x lies inside the code range, the nearest code
 * (rintf) is within half a step, and
 *
 *   |x - y| <= step / 2 + ROUNDTRIP_SLACK * magnitude
 *
 * where step is the format's step for that element's (sub-)block, d16 (32-blocks) or d16 * sc
 * (super-blocks), and magnitude = the block's max |x| plus the offset. The slack covers the fp32
 * roundings in x / step, q * step and the offset subtraction (one rounding each, <= 0.5 ulp
 * <= 2^-24 relative): 1e-6 is about 8 ulps. Each quantizer also checks that its step is at most the
 * ideal one (range / qmax) plus one unit of the fp16 super-scale, so the bound is not vacuous. */
#define ROUNDTRIP_SLACK 1e-6f

static uint16_t f16_up(float v) { /* smallest fp16 >= v, for 0 <= v < 65504 */
    uint16_t h = trit_fp32_to_fp16(v);
    if (trit_fp16_to_fp32(h) < v) h++;
    return h;
}

static uint16_t f16_down(float v) { /* largest fp16 <= v, for |v| < 65504 */
    uint16_t h = trit_fp32_to_fp16(v);
    if (trit_fp16_to_fp32(h) > v) {
        if (h == 0x0000u) h = 0x8001u;
        else if (h & 0x8000u) h++;
        else h--;
    }
    return h;
}

static int clampi(int v, int lo, int hi) { return v < lo ? lo : v > hi ? hi : v; }

static float amax_of(const float *x, int n) {
    float a = 0.0f;
    for (int i = 0; i < n; i++) a = fmaxf(a, fabsf(x[i]));
    return a;
}

/* 32-element type-0 blocks: Q4_0 (qmax 7), Q5_0 (15), Q8_0 (127). */
static void quant_32_type0(uint32_t type, const float *x, uint8_t *b, float *tol) {
    const int qmax = type == GGML_TYPE_Q4_0 ? 7 : type == GGML_TYPE_Q5_0 ? 15 : 127;
    const float amax = amax_of(x, 32);
    const uint16_t dh = f16_up(amax / (float)qmax);
    const float d = trit_fp16_to_fp32(dh);
    int q[32];
    for (int j = 0; j < 32; j++) {
        q[j] = clampi((int)rintf(x[j] / d), -qmax - 1, qmax);
        tol[j] = 0.5f * d + ROUNDTRIP_SLACK * amax;
    }
    cr_assert(d <= amax / (float)qmax * (1.0f + 0x1p-10f) + 0x1p-24f);
    put_h(b, dh);
    if (type == GGML_TYPE_Q8_0) {
        for (int j = 0; j < 32; j++) b[2 + j] = (uint8_t)(int8_t)q[j];
    } else if (type == GGML_TYPE_Q4_0) {
        for (int j = 0; j < 16; j++) b[2 + j] = (uint8_t)((q[j] + 8) | (q[j + 16] + 8) << 4);
    } else {
        uint32_t qh = 0;
        for (int j = 0; j < 16; j++) {
            const unsigned u0 = (unsigned)(q[j] + 16), u1 = (unsigned)(q[j + 16] + 16);
            b[6 + j] = (uint8_t)((u0 & 15u) | (u1 & 15u) << 4);
            qh |= (u0 >> 4) << j | (u1 >> 4) << (j + 16);
        }
        for (int i = 0; i < 4; i++) b[2 + i] = (uint8_t)(qh >> (8 * i));
    }
}

/* 32-element type-1 blocks: Q4_1 (qmax 15), Q5_1 (31). m16 <= min, d16 >= (max - m16) / qmax. */
static void quant_32_type1(uint32_t type, const float *x, uint8_t *b, float *tol) {
    const int qmax = type == GGML_TYPE_Q4_1 ? 15 : 31;
    float lo = x[0], hi = x[0];
    for (int j = 1; j < 32; j++) {
        lo = fminf(lo, x[j]);
        hi = fmaxf(hi, x[j]);
    }
    const uint16_t mh = f16_down(lo);
    const float m = trit_fp16_to_fp32(mh);
    const uint16_t dh = f16_up((hi - m) / (float)qmax);
    const float d = trit_fp16_to_fp32(dh);
    cr_assert(d <= (hi - m) / (float)qmax * (1.0f + 0x1p-10f) + 0x1p-24f);
    const float mag = amax_of(x, 32) + fabsf(m);
    unsigned q[32];
    for (int j = 0; j < 32; j++) {
        q[j] = (unsigned)clampi((int)rintf((x[j] - m) / d), 0, qmax);
        tol[j] = 0.5f * d + ROUNDTRIP_SLACK * mag;
    }
    put_h(b, dh);
    put_h(b + 2, mh);
    if (type == GGML_TYPE_Q4_1) {
        for (int j = 0; j < 16; j++) b[4 + j] = (uint8_t)(q[j] | q[j + 16] << 4);
    } else {
        uint32_t qh = 0;
        for (int j = 0; j < 16; j++) {
            b[8 + j] = (uint8_t)((q[j] & 15u) | (q[j + 16] & 15u) << 4);
            qh |= (q[j] >> 4) << j | (q[j + 16] >> 4) << (j + 16);
        }
        for (int i = 0; i < 4; i++) b[4 + i] = (uint8_t)(qh >> (8 * i));
    }
}

/* Super-block type 0: Q3_K (16 x 16, q in [-4, 3], use |q| <= 3, 6-bit signed scales |sc| <= 31)
 * and Q6_K (16 x 16, q in [-32, 31], use |q| <= 31, int8 scales |sc| <= 127). Sub-block s:
 * ideal step ds = amax_s / qmax; d16 >= max ds / smax; sc = ceil(ds / d16) with a random sign (the
 * formats' scales are signed), step = d16 * sc. */
static void quant_k_type0(uint32_t type, const float *x, uint8_t *b, float *tol, struct test_rng *rng) {
    const bool q6 = type == GGML_TYPE_Q6_K;
    const int qmax = q6 ? 31 : 3, smax = q6 ? 127 : 31;
    float ds[16], dmax = 0.0f;
    for (int s = 0; s < 16; s++) {
        ds[s] = amax_of(x + 16 * s, 16) / (float)qmax;
        dmax = fmaxf(dmax, ds[s]);
    }
    const uint16_t dh = f16_up(dmax / (float)smax);
    const float d = trit_fp16_to_fp32(dh);
    int sc[16], L[256];
    for (int s = 0; s < 16; s++) {
        sc[s] = clampi((int)ceilf(ds[s] / d), 1, smax);
        if (test_rng_u64(rng) & 1) sc[s] = -sc[s];
        const float step = d * (float)sc[s];
        cr_assert(fabsf(step) <= (ds[s] + d) * (1.0f + 0x1p-16f), "step %g for an ideal %g", (double)step, (double)ds[s]);
        const float mag = amax_of(x + 16 * s, 16);
        for (int i = 16 * s; i < 16 * s + 16; i++) {
            L[i] = clampi((int)rintf(x[i] / step), -qmax - 1, qmax);
            tol[i] = 0.5f * fabsf(step) + ROUNDTRIP_SLACK * mag;
        }
    }
    if (q6) {
        memset(b, 0, 210);
        for (int e = 0; e < 256; e++) {
            const int h = e / 128, k = (e % 128) / 32, l = e % 32;
            const unsigned u = (unsigned)(L[e] + 32);
            b[64 * h + 32 * (k & 1) + l] |= (uint8_t)((u & 15u) << (k < 2 ? 0 : 4));
            b[128 + 32 * h + l] |= (uint8_t)((u >> 4) << (2 * k));
        }
        for (int s = 0; s < 16; s++) b[192 + s] = (uint8_t)(int8_t)sc[s];
        put_h(b + 208, dh);
    } else {
        memset(b, 0, 110);
        for (int e = 0; e < 256; e++) {
            const int h = e / 128, k = (e % 128) / 32, l = e % 32;
            const unsigned u = (unsigned)(L[e] + 4);
            b[32 + 32 * h + l] |= (uint8_t)((u & 3u) << (2 * k));
            if (u & 4u) b[l] |= (uint8_t)(1u << (4 * h + k));
        }
        for (int s = 0; s < 16; s++) {
            const unsigned u = (unsigned)(sc[s] + 32);
            if (s < 8) b[96 + s] |= (uint8_t)(u & 15u);
            else b[96 + s - 8] |= (uint8_t)((u & 15u) << 4);
            b[96 + 8 + s % 4] |= (uint8_t)((u >> 4) << (2 * (s / 4)));
        }
        put_h(b + 108, dh);
    }
}

/* Super-block type 1: Q2_K (16 x 16, q 0..3, 4-bit scale and min), Q4_K (8 x 32, q 0..15, 6-bit),
 * Q5_K (8 x 32, q 0..31, 6-bit). y = (d sc) q - (dmin m). Sub-block s: offset = dmin16 * m >=
 * max(0, -min_s) (m rounded up), ideal step (max_s + offset) / qmax, sc rounded up. */
static void quant_k_type1(uint32_t type, const float *x, uint8_t *b, float *tol) {
    const int nsub = type == GGML_TYPE_Q2_K ? 16 : 8, len = 256 / nsub;
    const int qmax = type == GGML_TYPE_Q2_K ? 3 : type == GGML_TYPE_Q4_K ? 15 : 31;
    const int smax = type == GGML_TYPE_Q2_K ? 15 : 63;
    float need[16], mmax = 0.0f;
    for (int s = 0; s < nsub; s++) {
        float lo = x[len * s];
        for (int i = 1; i < len; i++) lo = fminf(lo, x[len * s + i]);
        need[s] = fmaxf(0.0f, -lo);
        mmax = fmaxf(mmax, need[s]);
    }
    const uint16_t mh = f16_up(mmax / (float)smax);
    const float dmin = trit_fp16_to_fp32(mh);
    int mq[16];
    float off[16], ds[16], dmax = 0.0f;
    for (int s = 0; s < nsub; s++) {
        mq[s] = dmin > 0.0f ? clampi((int)ceilf(need[s] / dmin), 0, smax) : 0;
        off[s] = dmin * (float)mq[s];
        float hi = x[len * s];
        for (int i = 1; i < len; i++) hi = fmaxf(hi, x[len * s + i]);
        ds[s] = fmaxf(hi + off[s], 0.0f) / (float)qmax;
        dmax = fmaxf(dmax, ds[s]);
    }
    const uint16_t dh = f16_up(dmax / (float)smax);
    const float d = trit_fp16_to_fp32(dh);
    int sc[16], L[256];
    for (int s = 0; s < nsub; s++) {
        sc[s] = clampi((int)ceilf(ds[s] / d), 1, smax);
        const float step = d * (float)sc[s];
        cr_assert(step <= (ds[s] + d) * (1.0f + 0x1p-16f), "step %g for an ideal %g", (double)step, (double)ds[s]);
        const float mag = amax_of(x + len * s, len) + off[s];
        for (int i = len * s; i < len * s + len; i++) {
            L[i] = clampi((int)rintf((x[i] + off[s]) / step), 0, qmax);
            tol[i] = 0.5f * step + ROUNDTRIP_SLACK * mag;
        }
    }
    if (type == GGML_TYPE_Q2_K) {
        memset(b, 0, 84);
        for (int s = 0; s < 16; s++) b[s] = (uint8_t)(sc[s] | mq[s] << 4);
        for (int e = 0; e < 256; e++) b[16 + 32 * (e / 128) + e % 32] |= (uint8_t)(L[e] << (2 * ((e % 128) / 32)));
        put_h(b + 80, dh);
        put_h(b + 82, mh);
        return;
    }
    const bool q5 = type == GGML_TYPE_Q5_K;
    memset(b, 0, q5 ? 176 : 144);
    put_h(b, dh);
    put_h(b + 2, mh);
    uint8_t *sb = b + 4;
    for (int j = 0; j < 8; j++) {
        if (j < 4) {
            sb[j] |= (uint8_t)sc[j];
            sb[j + 4] |= (uint8_t)mq[j];
        } else {
            sb[j + 4] = (uint8_t)((sc[j] & 15) | (mq[j] & 15) << 4);
            sb[j - 4] |= (uint8_t)((sc[j] >> 4) << 6);
            sb[j] |= (uint8_t)((mq[j] >> 4) << 6);
        }
    }
    uint8_t *qs = b + (q5 ? 48 : 16);
    for (int e = 0; e < 256; e++) {
        qs[32 * (e / 64) + e % 32] |= (uint8_t)((L[e] & 15) << (4 * ((e % 64) / 32)));
        if (q5 && (L[e] & 16)) b[16 + e % 32] |= (uint8_t)(1u << (e / 32));
    }
}

/* One block of `type` from x (blck values): bytes into b, per-element tolerance into tol. */
static void quant_block(uint32_t type, const float *x, uint8_t *b, float *tol, struct test_rng *rng) {
    switch (type) {
    case GGML_TYPE_Q4_0:
    case GGML_TYPE_Q5_0:
    case GGML_TYPE_Q8_0: quant_32_type0(type, x, b, tol); break;
    case GGML_TYPE_Q4_1:
    case GGML_TYPE_Q5_1: quant_32_type1(type, x, b, tol); break;
    case GGML_TYPE_Q3_K:
    case GGML_TYPE_Q6_K: quant_k_type0(type, x, b, tol, rng); break;
    default: quant_k_type1(type, x, b, tol); break;
    }
}

/* Quantizes a rows x cols matrix (cols a multiple of the block) into a new buffer (free()). */
static uint8_t *quant_matrix(uint32_t type, const float *x, int64_t rows, int64_t cols, float *tol,
                             struct test_rng *rng, uint64_t *n_bytes) {
    uint32_t blck, bb;
    cr_assert(trit_ggml_dequant_block(type, &blck, &bb));
    const int64_t nb = rows * cols / blck;
    uint8_t *q = malloc((size_t)(nb * bb));
    cr_assert_not_null(q);
    for (int64_t i = 0; i < nb; i++) quant_block(type, x + i * blck, q + i * bb, tol + i * blck, rng);
    *n_bytes = (uint64_t)(nb * bb);
    return q;
}

/* Random values with a per-block magnitude (2^-3 .. 2^3) and offset, so that both signs, one-signed
 * blocks and a range of fp16 scales occur. Never zero. */
static void fill_random(float *x, int64_t n, int blck, struct test_rng *rng) {
    for (int64_t i = 0; i < n; i += blck) {
        const float mag = ldexpf(1.0f, (int)test_rng_int(rng, -3, 3));
        const float shift = test_rng_uniform(rng, -1.5f, 1.5f);
        for (int j = 0; j < blck; j++) {
            float v = mag * (test_rng_normal(rng) + shift);
            x[i + j] = v != 0.0f ? v : mag * 0.5f;
        }
    }
}

static void roundtrip(uint32_t type, uint64_t seed) {
    struct test_rng rng;
    test_rng_seed(&rng, seed);
    uint32_t blck, bb;
    cr_assert(trit_ggml_dequant_block(type, &blck, &bb));
    const int64_t rows = 3, cols = (blck == 32 ? 7 : 3) * (int64_t)blck; /* odd block counts */
    const int64_t n = rows * cols;
    float *x = malloc((size_t)n * sizeof *x), *tol = malloc((size_t)n * sizeof *tol), *y = malloc((size_t)n * sizeof *y);
    cr_assert(x && tol && y);
    fill_random(x, n, (int)blck, &rng);
    uint64_t n_bytes;
    uint8_t *q = quant_matrix(type, x, rows, cols, tol, &rng, &n_bytes);
    cr_assert_eq(n_bytes, trit_ggml_dequant_bytes(type, n));
    test_poison(y, (size_t)n * sizeof *y);
    for (int64_t r = 0; r < rows; r++)
        cr_assert_eq(trit_ggml_dequant_row(type, q + r * (int64_t)(n_bytes / (uint64_t)rows), y + r * cols, cols), TRIT_OK,
                     "%s", trit_last_error());
    double worst = 0.0;
    for (int64_t i = 0; i < n; i++) {
        cr_assert(isfinite(y[i]), "%s element %lld is %g", gguf_type_name(type, false), (long long)i, (double)y[i]);
        const float err = fabsf(x[i] - y[i]);
        cr_assert(err <= tol[i], "%s element %lld: x %.9g, y %.9g, error %.3g > tolerance %.3g",
                  gguf_type_name(type, false), (long long)i, (double)x[i], (double)y[i], (double)err, (double)tol[i]);
        worst = fmax(worst, (double)(err / tol[i]));
    }
    cr_log_info("%s: worst error / tolerance = %.3f", gguf_type_name(type, false), worst);
    /* The whole-matrix fp16 path gives the fp16 rounding of the same values. */
    uint16_t *h = NULL;
    cr_assert_eq(trit_ggml_dequant_f16(type, q, rows, cols, &h), TRIT_OK, "%s", trit_last_error());
    for (int64_t i = 0; i < n; i++) cr_assert_eq(h[i], trit_fp32_to_fp16(y[i]), "%s element %lld", gguf_type_name(type, false), (long long)i);
    trit_free(h);
    free(q);
    free(x);
    free(tol);
    free(y);
}

Test(roundtrip, q4_0) { roundtrip(GGML_TYPE_Q4_0, 101); }
Test(roundtrip, q4_1) { roundtrip(GGML_TYPE_Q4_1, 102); }
Test(roundtrip, q5_0) { roundtrip(GGML_TYPE_Q5_0, 103); }
Test(roundtrip, q5_1) { roundtrip(GGML_TYPE_Q5_1, 104); }
Test(roundtrip, q8_0) { roundtrip(GGML_TYPE_Q8_0, 105); }
Test(roundtrip, q2_k) { roundtrip(GGML_TYPE_Q2_K, 106); }
Test(roundtrip, q3_k) { roundtrip(GGML_TYPE_Q3_K, 107); }
Test(roundtrip, q4_k) { roundtrip(GGML_TYPE_Q4_K, 108); }
Test(roundtrip, q5_k) { roundtrip(GGML_TYPE_Q5_K, 109); }
Test(roundtrip, q6_k) { roundtrip(GGML_TYPE_Q6_K, 110); }

/* ---- 3. GGUF files with quantized embedding / head ------------------------------------------ */

#define M_DIM 256
#define M_VOCAB 11

struct qtensor {
    uint32_t type;
    uint8_t *bytes;
    uint64_t n_bytes;
};

/* A 1-layer llama.cpp `bitnet` model (dim = ffn = 256, 4 heads): TQ2_0 weights, F32 norms, the
 * given token_embd and (unless out.type is UINT32_MAX) output.weight. */
static void write_model(const char *path, struct qtensor embd, struct qtensor out, uint64_t seed) {
    struct gguf_writer *w;
    cr_assert_eq(gguf_writer_init(&w), TRIT_OK);
    cr_assert_eq(gguf_writer_set_str(w, "general.architecture", "bitnet"), TRIT_OK);
    cr_assert_eq(gguf_writer_set_u32(w, "general.file_type", 37), TRIT_OK);
    cr_assert_eq(gguf_writer_set_u32(w, "bitnet.block_count", 1), TRIT_OK);
    cr_assert_eq(gguf_writer_set_u32(w, "bitnet.context_length", 64), TRIT_OK);
    cr_assert_eq(gguf_writer_set_u32(w, "bitnet.embedding_length", M_DIM), TRIT_OK);
    cr_assert_eq(gguf_writer_set_u32(w, "bitnet.feed_forward_length", M_DIM), TRIT_OK);
    cr_assert_eq(gguf_writer_set_u32(w, "bitnet.attention.head_count", 4), TRIT_OK);
    cr_assert_eq(gguf_writer_set_u32(w, "bitnet.attention.head_count_kv", 4), TRIT_OK);
    cr_assert_eq(gguf_writer_set_f32(w, "bitnet.attention.layer_norm_rms_epsilon", 1e-5f), TRIT_OK);

    const int64_t ne_m[2] = {M_DIM, M_VOCAB}, ne_v[1] = {M_DIM}, ne_w[2] = {M_DIM, M_DIM};
    cr_assert_eq(gguf_writer_add_tensor(w, "token_embd.weight", embd.type, 2, ne_m, embd.bytes, embd.n_bytes), TRIT_OK,
                 "%s", trit_last_error());
    if (out.type != UINT32_MAX)
        cr_assert_eq(gguf_writer_add_tensor(w, "output.weight", out.type, 2, ne_m, out.bytes, out.n_bytes), TRIT_OK,
                     "%s", trit_last_error());
    static float norm[M_DIM];
    for (int i = 0; i < M_DIM; i++) norm[i] = 1.0f + (float)(i % 7) * 0.125f;
    const char *vectors[] = {"output_norm.weight", "blk.0.attn_norm.weight", "blk.0.attn_sub_norm.weight",
                             "blk.0.ffn_norm.weight", "blk.0.ffn_sub_norm.weight"};
    for (int i = 0; i < 5; i++)
        cr_assert_eq(gguf_writer_add_tensor(w, vectors[i], GGML_TYPE_F32, 1, ne_v, norm, sizeof norm), TRIT_OK);

    const char *weights[] = {"attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up", "ffn_down"};
    const int64_t wbytes = trit_tq2_0_bytes(M_DIM, M_DIM);
    uint8_t *packed[7];
    uint64_t s = seed;
    for (int k = 0; k < 7; k++) {
        struct trit_ternary t;
        cr_assert_eq(trit_ternary_init(&t, M_DIM, M_DIM), TRIT_OK);
        for (int64_t r = 0; r < M_DIM; r++)
            for (int64_t c = 0; c < M_DIM; c++) {
                s = s * 6364136223846793005ull + 1442695040888963407ull;
                trit_ternary_set(&t, r, c, (int)((s >> 33) % 3) - 1);
            }
        t.scale = 0.5f;
        packed[k] = malloc((size_t)wbytes);
        cr_assert_not_null(packed[k]);
        cr_assert_eq(trit_tq2_0_encode(&t, false, packed[k]), TRIT_OK, "%s", trit_last_error());
        trit_ternary_free(&t);
        char name[64];
        snprintf(name, sizeof name, "blk.0.%s.weight", weights[k]);
        cr_assert_eq(gguf_writer_add_tensor(w, name, GGML_TYPE_TQ2_0, 2, ne_w, packed[k], (uint64_t)wbytes), TRIT_OK,
                     "%s", trit_last_error());
    }
    cr_assert_eq(gguf_writer_write(w, path), TRIT_OK, "%s", trit_last_error());
    gguf_writer_free(w);
    for (int k = 0; k < 7; k++) free(packed[k]);
}

static struct qtensor make_q(uint32_t type, struct test_rng *rng) {
    float x[M_VOCAB * M_DIM], tol[M_VOCAB * M_DIM];
    uint32_t blck, bb;
    cr_assert(trit_ggml_dequant_block(type, &blck, &bb));
    fill_random(x, M_VOCAB * M_DIM, (int)blck, rng);
    struct qtensor t = {.type = type};
    t.bytes = quant_matrix(type, x, M_VOCAB, M_DIM, tol, rng, &t.n_bytes);
    return t;
}

/* Every row of d equals the fp16 rounding of the fp32 dequantization of q, bit for bit. */
static void check_dense(const struct trit_dense *d, struct qtensor q, const char *what) {
    cr_assert_eq(d->dtype, TRIT_DTYPE_F16, "%s", what);
    cr_assert(d->n_rows == M_VOCAB && d->n_cols == M_DIM, "%s", what);
    cr_assert_not_null(d->owned, "%s: the dequantized copy belongs to the model", what);
    cr_assert_eq(d->data, d->owned, "%s", what);
    const uint64_t row_bytes = q.n_bytes / M_VOCAB;
    float y[M_DIM], back[M_DIM];
    for (int64_t r = 0; r < M_VOCAB; r++) {
        cr_assert_eq(trit_ggml_dequant_row(q.type, q.bytes + r * (int64_t)row_bytes, y, M_DIM), TRIT_OK);
        const uint16_t *row = (const uint16_t *)d->data + r * M_DIM;
        trit_dense_row_f32(d, r, back);
        for (int c = 0; c < M_DIM; c++) {
            cr_assert_eq(row[c], trit_fp32_to_fp16(y[c]), "%s row %lld col %d: 0x%04x, expected fp16(%.9g)", what,
                         (long long)r, c, row[c], (double)y[c]);
            cr_assert(back[c] == trit_fp16_to_fp32(trit_fp32_to_fp16(y[c])));
        }
    }
}

static const struct trit_tensor_note *find_note(const struct trit_model *m, const char *name) {
    for (int64_t i = 0; i < m->n_notes; i++)
        if (strcmp(m->notes[i].name, name) == 0) return &m->notes[i];
    return NULL;
}

/* Writes the model to a file under /tmp named by `tag`, loads it into *m and removes the file.
 * Returns the load's status; *m is the caller's to release when it is TRIT_OK. */
static enum trit_status write_and_load(const char *tag, struct qtensor embd, struct qtensor out, uint64_t seed,
                                       struct trit_model *m) {
    char path[256];
    snprintf(path, sizeof path, "/tmp/trit-ggml-dequant-%d-%s.gguf", (int)getpid(), tag);
    write_model(path, embd, out, seed);
    enum trit_status st = trit_model_load_path(path, NULL, m);
    unlink(path);
    return st;
}

Test(gguf, q6_k_embedding_and_q8_0_output_load) {
    struct test_rng rng;
    test_rng_seed(&rng, 201);
    struct qtensor embd = make_q(GGML_TYPE_Q6_K, &rng), out = make_q(GGML_TYPE_Q8_0, &rng);
    struct trit_model m;
    enum trit_status st = write_and_load("q6k-q8", embd, out, 7, &m);
    cr_assert_eq(st, TRIT_OK, "%s", trit_last_error());
    cr_assert_eq(m.hp.n_vocab, M_VOCAB);
    cr_assert(!m.hp.tied_embeddings);
    check_dense(&m.tok_embd, embd, "token_embd");
    check_dense(&m.output, out, "output");
    cr_assert_neq(m.output.owned, m.tok_embd.owned);
    const struct trit_tensor_note *n1 = find_note(&m, "token_embd.weight"), *n2 = find_note(&m, "output.weight");
    cr_assert(n1 && n2);
    cr_assert_str_eq(n1->kind, "Q6_K -> F16");
    cr_assert_str_eq(n2->kind, "Q8_0 -> F16");
    cr_assert_eq(n1->file_bytes, embd.n_bytes);
    /* The ternary weights came through as written (scale 0.5 in every TQ2_0 block). */
    cr_assert_eq(m.layers[0].w[TRIT_W_Q].scale, 0.5f);
    trit_model_release(&m);
    free(embd.bytes);
    free(out.bytes);
}

Test(gguf, tied_q4_k_embedding_is_the_head) {
    struct test_rng rng;
    test_rng_seed(&rng, 202);
    struct qtensor embd = make_q(GGML_TYPE_Q4_K, &rng);
    const struct qtensor none = {.type = UINT32_MAX};
    struct trit_model m;
    enum trit_status st = write_and_load("tied-q4k", embd, none, 8, &m);
    cr_assert_eq(st, TRIT_OK, "%s", trit_last_error());
    cr_assert(m.hp.tied_embeddings);
    check_dense(&m.tok_embd, embd, "token_embd");
    cr_assert_eq(m.output.data, m.tok_embd.data);
    trit_model_release(&m); /* frees the shared copy once */
    free(embd.bytes);
}

Test(gguf, every_supported_type_loads_as_output) {
    for (int i = 0; i < N_SUPPORTED; i++) {
        struct test_rng rng;
        test_rng_seed(&rng, 300 + (uint64_t)i);
        struct qtensor embd = make_q(GGML_TYPE_Q8_0, &rng), out = make_q(SUPPORTED[i], &rng);
        struct trit_model m;
        enum trit_status st = write_and_load(gguf_type_name(SUPPORTED[i], false), embd, out, 9, &m);
        cr_assert_eq(st, TRIT_OK, "%s: %s", gguf_type_name(SUPPORTED[i], false), trit_last_error());
        check_dense(&m.output, out, gguf_type_name(SUPPORTED[i], false));
        trit_model_release(&m);
        free(embd.bytes);
        free(out.bytes);
    }
}

Test(gguf, unknown_type_is_refused_by_tensor_and_type) {
    /* IQ4_NL (id 20): a size the reader knows, a type trit does not dequantize. */
    struct test_rng rng;
    test_rng_seed(&rng, 203);
    struct qtensor out = make_q(GGML_TYPE_Q8_0, &rng);
    struct qtensor embd = {.type = 20, .n_bytes = (uint64_t)M_VOCAB * (M_DIM / 32) * 18};
    embd.bytes = calloc(1, (size_t)embd.n_bytes);
    cr_assert_not_null(embd.bytes);
    struct trit_model m;
    enum trit_status st = write_and_load("iq4nl", embd, out, 10, &m);
    cr_assert_eq(st, TRIT_ERR_UNSUPPORTED);
    const char *msg = trit_last_error();
    cr_assert(strstr(msg, "'token_embd.weight'") && strstr(msg, "IQ4_NL"), "%s", msg);
    free(embd.bytes);
    free(out.bytes);
}

Test(gguf, non_finite_scale_is_refused_by_tensor) {
    struct test_rng rng;
    test_rng_seed(&rng, 204);
    struct qtensor embd = make_q(GGML_TYPE_Q6_K, &rng), out = make_q(GGML_TYPE_Q8_0, &rng);
    put_h(out.bytes + 5 * 34, 0x7c00u); /* block 5 of output.weight: d = +inf */
    struct trit_model m;
    enum trit_status st = write_and_load("inf", embd, out, 11, &m);
    cr_assert_eq(st, TRIT_ERR_FORMAT);
    cr_assert(strstr(trit_last_error(), "'output.weight'"), "%s", trit_last_error());
    free(embd.bytes);
    free(out.bytes);
}
