// labels: unit
/*
 * test_codecs.c: the packed layouts of quant.h (HF uint8, GGUF TQ2_0, TQ1_0 and Q2_0, bitnet.cpp I2_S).
 * Each codec is checked three ways: hand-written bytes whose weights are derived in the comments
 * (so that an encoder and a decoder cannot be wrong in the same way), random round trips on
 * shapes with tails, and the exact number of bytes an encoder writes (poisoned guard bytes past the
 * end stay untouched; two different poisons inside give the same bytes). Refusals are checked too.
 *
 *   ctest --test-dir build -R test_codecs --output-on-failure
 */
#include <criterion/criterion.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "quant/quant.h"
#include "support.h"

#define GUARD_BYTES 64

/* A random ternary matrix: each weight -1, 0 or +1 with probability 1/3. */
static void random_ternary(struct test_rng *rng, int64_t n_rows, int64_t n_cols, float scale,
                           struct trit_ternary *w) {
    cr_assert_eq(trit_ternary_init(w, n_rows, n_cols), TRIT_OK);
    bool nonzero = false;
    for (int64_t r = 0; r < n_rows; r++)
        for (int64_t c = 0; c < n_cols; c++) {
            int t = (int)test_rng_int(rng, -1, 1);
            trit_ternary_set(w, r, c, t);
            nonzero |= t != 0;
        }
    if (!nonzero) trit_ternary_set(w, 0, 0, 1); /* never all zeros */
    w->scale = scale;
}

/* Compares a decoded tensor against weights written out as ints. */
static void expect_weights(const struct trit_ternary *w, const int *want) {
    for (int64_t r = 0; r < w->n_rows; r++)
        for (int64_t c = 0; c < w->n_cols; c++)
            cr_expect_eq(trit_ternary_get(w, r, c), want[r * w->n_cols + c], "(%lld, %lld): got %d, expected %d",
                         (long long)r, (long long)c, trit_ternary_get(w, r, c), want[r * w->n_cols + c]);
}

/* A tensor holding the given weights. */
static void tensor_of(int64_t n_rows, int64_t n_cols, const int *t, struct trit_ternary *w) {
    cr_assert_eq(trit_ternary_init(w, n_rows, n_cols), TRIT_OK);
    for (int64_t i = 0; i < n_rows * n_cols; i++) trit_ternary_set(w, i / n_cols, i % n_cols, t[i]);
}

/* One codec seen through function pointers, so that the round-trip and byte-count checks below are
 * written once. unit_scale is passed through to TQ encoders and ignored by the others. */
struct codec {
    const char *name;
    bool stores_scale; /* false for HF: weight_scale is a tensor of its own */
    int64_t (*bytes)(int64_t, int64_t);
    enum trit_status (*decode)(const uint8_t *, struct trit_ternary *);
    enum trit_status (*encode)(const struct trit_ternary *, bool, uint8_t *);
};

static enum trit_status hf_encode(const struct trit_ternary *w, bool unit_scale, uint8_t *p) {
    (void)unit_scale;
    return trit_hf_encode(w, p);
}
static enum trit_status i2s_encode(const struct trit_ternary *w, bool unit_scale, uint8_t *p) {
    (void)unit_scale;
    return trit_i2s_encode(w, p);
}

static const struct codec HF = {"hf", false, trit_hf_packed_bytes, trit_hf_decode, hf_encode};
static const struct codec TQ2 = {"tq2_0", true, trit_tq2_0_bytes, trit_tq2_0_decode, trit_tq2_0_encode};
static const struct codec TQ1 = {"tq1_0", true, trit_tq1_0_bytes, trit_tq1_0_decode, trit_tq1_0_encode};
static const struct codec I2S = {"i2_s", true, trit_i2s_bytes, trit_i2s_decode, i2s_encode};
/* bitnet.cpp's ARM block layout (64 elements) */
static int64_t i2s_arm_bytes(int64_t r, int64_t c) { return trit_i2s_bytes_layout(r, c, TRIT_I2S_ARM); }
static enum trit_status i2s_arm_decode(const uint8_t *p, struct trit_ternary *w) {
    return trit_i2s_decode_layout(p, TRIT_I2S_ARM, w);
}
static enum trit_status i2s_arm_encode(const struct trit_ternary *w, bool unit_scale, uint8_t *p) {
    (void)unit_scale;
    return trit_i2s_encode_layout(w, TRIT_I2S_ARM, p);
}
static const struct codec I2S_ARM = {"i2_s (arm)", true, i2s_arm_bytes, i2s_arm_decode, i2s_arm_encode};

/* Encodes w into a fresh buffer of bytes() + GUARD_BYTES, checking that the encoder writes every
 * one of its bytes (same output over two poisons) and nothing past them. Returns the buffer. */
static uint8_t *encode_checked(const struct codec *k, const struct trit_ternary *w, bool unit_scale, int64_t *n_out) {
    int64_t n = k->bytes(w->n_rows, w->n_cols);
    cr_assert_gt(n, 0, "%s: %lld x %lld", k->name, (long long)w->n_rows, (long long)w->n_cols);
    uint8_t *a = trit_alloc((size_t)n + GUARD_BYTES), *b = trit_alloc((size_t)n + GUARD_BYTES);
    test_poison(a, (size_t)n + GUARD_BYTES);
    memset(b, 0x5a, (size_t)n + GUARD_BYTES);
    cr_assert_eq(k->encode(w, unit_scale, a), TRIT_OK, "%s encode: %s", k->name, trit_last_error());
    cr_assert_eq(k->encode(w, unit_scale, b), TRIT_OK);
    cr_assert_eq(memcmp(a, b, (size_t)n), 0, "%s: an encoder left a byte unwritten", k->name);
    for (int64_t i = n; i < n + GUARD_BYTES; i++)
        cr_assert(a[i] == 0xa5 && b[i] == 0x5a, "%s: byte %lld past the end (%lld) written", k->name, (long long)i,
                  (long long)n);
    trit_free(b);
    *n_out = n;
    return a;
}

/* Encode, decode into a fresh tensor, compare codes (and the scale unless the codec drops it). */
static void round_trip(const struct codec *k, const struct trit_ternary *w) {
    int64_t n;
    uint8_t *packed = encode_checked(k, w, false, &n);
    struct trit_ternary d;
    cr_assert_eq(trit_ternary_init(&d, w->n_rows, w->n_cols), TRIT_OK);
    cr_assert_eq(k->decode(packed, &d), TRIT_OK, "%s decode %lld x %lld: %s", k->name, (long long)w->n_rows,
                 (long long)w->n_cols, trit_last_error());
    if (!k->stores_scale) d.scale = w->scale;
    cr_assert(trit_ternary_equal(&d, w), "%s round trip %lld x %lld (scale %a -> %a)", k->name, (long long)w->n_rows,
              (long long)w->n_cols, (double)w->scale, (double)d.scale);
    trit_ternary_free(&d);
    trit_free(packed);
}

/* Hand-written bytes both ways: they decode into w (n_rows x n_cols, left initialized for more
 * checks) as the weights `want` with the multiplier `scale` (a codec that stores no scale must leave
 * w's alone), and those weights encode back to exactly the same bytes. */
static void check_hand_bytes(const struct codec *k, const uint8_t *bytes, int64_t n_rows, int64_t n_cols,
                             const int *want, float scale, struct trit_ternary *w) {
    cr_assert_eq(trit_ternary_init(w, n_rows, n_cols), TRIT_OK);
    w->scale = k->stores_scale ? -99.0f : scale;
    cr_assert_eq(k->decode(bytes, w), TRIT_OK, "%s decode: %s", k->name, trit_last_error());
    expect_weights(w, want);
    cr_expect_eq(w->scale, scale, "%s: scale %g, expected %g", k->name, (double)w->scale, (double)scale);
    cr_expect_eq(w->scale_kind, TRIT_SCALE_MUL);
    struct trit_ternary e;
    tensor_of(n_rows, n_cols, want, &e);
    e.scale = scale;
    int64_t n;
    uint8_t *enc = encode_checked(k, &e, false, &n);
    for (int64_t i = 0; i < n; i++)
        cr_expect_eq(enc[i], bytes[i], "%s: encoded byte %lld is 0x%02x, hand-written 0x%02x", k->name, (long long)i,
                     enc[i], bytes[i]);
    trit_free(enc);
    trit_ternary_free(&e);
}

/* ---- HF transformers uint8 -------------------------------------------------------------------- */

Test(hf, hand_written_bytes) {
    /* n_rows = 8, n_cols = 2: P = 2, packed[p][c], bit pair i holds row 2 i + p.
     *   (0,0) 0xA1 = 10 10 00 01: row 0 -> 01 = 0, row 2 -> 00 = -1, row 4 -> 10 = +1, row 6 -> 10 = +1
     *         (the transformers docstring example)
     *   (0,1) 0x55 = 01 01 01 01: rows 0, 2, 4, 6 -> 0
     *   (1,0) 0x58 = 01 01 10 00: row 1 -> -1, row 3 -> +1, row 5 -> 0, row 7 -> 0
     *   (1,1) 0x26 = 00 10 01 10: row 1 -> +1, row 3 -> 0, row 5 -> +1, row 7 -> -1 */
    const uint8_t packed[4] = {0xa1, 0x55, 0x58, 0x26};
    const int want[16] = {0, 0, -1, 1, -1, 0, 1, 0, 1, 0, 0, 1, 1, 0, 0, -1};
    struct trit_ternary w;
    cr_assert_eq(trit_hf_packed_bytes(8, 2), 4);
    check_hand_bytes(&HF, packed, 8, 2, want, 3.0f, &w);

    /* Code 3 anywhere in a real row: byte (1,1) = 0x27 puts 11 in row 1, column 1. */
    const uint8_t bad[4] = {0xa1, 0x55, 0x58, 0x27};
    cr_assert_eq(trit_hf_decode(bad, &w), TRIT_ERR_FORMAT);
    cr_assert(strstr(trit_last_error(), "row 1, column 1") != NULL, "%s", trit_last_error());
    trit_ternary_free(&w);
}

Test(hf, hand_written_padding_rows) {
    /* n_rows = 5, n_cols = 1: P = 2. Pair i of byte p is row 2 i + p; rows 5, 6, 7 are padding (00).
     * W = [+1, 0, -1, +1, 0]:
     *   byte 0: row 0 = +1 (10), row 2 = -1 (00), row 4 = 0 (01), row 6 pad (00) -> 00 01 00 10 = 0x12
     *   byte 1: row 1 = 0 (01), row 3 = +1 (10), rows 5, 7 pad (00)              -> 00 00 10 01 = 0x09 */
    const int want[5] = {1, 0, -1, 1, 0};
    const uint8_t packed[2] = {0x12, 0x09};
    struct trit_ternary w;
    cr_assert_eq(trit_hf_packed_bytes(5, 1), 2);
    check_hand_bytes(&HF, packed, 5, 1, want, 1.0f, &w);
    /* Padding bit pairs are never read, whatever they hold. */
    const uint8_t junk_pad[2] = {0x12 | 0xc0, 0x09 | 0xf0};
    cr_assert_eq(trit_hf_decode(junk_pad, &w), TRIT_OK);
    expect_weights(&w, want);
    trit_ternary_free(&w);
}

Test(hf, random_round_trips) {
    struct test_rng rng;
    test_rng_seed(&rng, 0x4f);
    const int64_t rows[] = {1, 2, 3, 4, 5, 7, 13, 64};
    const int64_t cols[] = {1, 3, 17, 255};
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++)
        for (size_t j = 0; j < sizeof cols / sizeof cols[0]; j++) {
            struct trit_ternary w;
            random_ternary(&rng, rows[i], cols[j], 1.0f, &w);
            round_trip(&HF, &w);
            trit_ternary_free(&w);
        }
}

/* ---- TQ2_0 ------------------------------------------------------------------------------------ */

/* One TQ2_0 block with all codes zero (0x55) and the given fp16 d. */
static void tq2_zero_block(uint8_t blk[TRIT_TQ2_0_BLOCK_BYTES], uint16_t d) {
    memset(blk, 0x55, 64);
    blk[64] = (uint8_t)(d & 0xff);
    blk[65] = (uint8_t)(d >> 8);
}

Test(tq2_0, hand_written_block) {
    /* One row of 256. Byte j < 32 holds elements j, j+32, j+64, j+96 at bits 1:0, 3:2, 5:4, 7:6;
     * byte 32 + j holds 128 + j, 160 + j, 192 + j, 224 + j.
     *   qs[0]  = 0x86 = 10 00 01 10: e0 = +1, e32 = 0, e64 = -1, e96 = +1
     *   qs[33] = 0x19 = 00 01 10 01: e129 = 0, e161 = +1, e193 = 0, e225 = -1
     *   qs[63] = 0x54 = 01 01 01 00: e159 = -1, e191 = e223 = e255 = 0
     *   d = 0x3800 = 0.5, little-endian at bytes 64, 65. */
    uint8_t blk[TRIT_TQ2_0_BLOCK_BYTES];
    tq2_zero_block(blk, 0x3800);
    blk[0] = 0x86;
    blk[33] = 0x19;
    blk[63] = 0x54;
    int want[256] = {0};
    want[0] = 1, want[64] = -1, want[96] = 1, want[161] = 1, want[225] = -1, want[159] = -1;
    struct trit_ternary w;
    cr_assert_eq(trit_tq2_0_bytes(1, 256), 66);
    check_hand_bytes(&TQ2, blk, 1, 256, want, 0.5f, &w);

    blk[5] = 0x57; /* element 5 gets code 3 */
    cr_assert_eq(trit_tq2_0_decode(blk, &w), TRIT_ERR_FORMAT);
    cr_assert(strstr(trit_last_error(), "element 5") != NULL, "%s", trit_last_error());
    trit_ternary_free(&w);
}

Test(tq2_0, hand_written_row_tail) {
    /* n_cols = 3: one block, elements 3..255 are zero padding.
     *   qs[0] = 0x56 = 01 01 01 10: e0 = +1;  qs[1] = 0x54: e1 = -1;  qs[2] = 0x55: e2 = 0
     *   d = 0x4000 = 2.0 */
    uint8_t blk[TRIT_TQ2_0_BLOCK_BYTES];
    tq2_zero_block(blk, 0x4000);
    blk[0] = 0x56;
    blk[1] = 0x54;
    struct trit_ternary w;
    cr_assert_eq(trit_tq2_0_bytes(1, 3), 66);
    check_hand_bytes(&TQ2, blk, 1, 3, (const int[]){1, -1, 0}, 2.0f, &w);
    blk[3] = 0x56; /* element 3 is padding and now +1 */
    cr_assert_eq(trit_tq2_0_decode(blk, &w), TRIT_ERR_FORMAT);
    cr_assert(strstr(trit_last_error(), "padding") != NULL, "%s", trit_last_error());
    blk[3] = 0x55;
    blk[32] = 0x54; /* element 128, padding, now -1 */
    cr_assert_eq(trit_tq2_0_decode(blk, &w), TRIT_ERR_FORMAT);
    trit_ternary_free(&w);
}

Test(tq2_0, block_scales_must_agree) {
    /* 2 rows x 512: four blocks (row 0: b0, b1; row 1: b2, b3). */
    uint8_t buf[4 * TRIT_TQ2_0_BLOCK_BYTES];
    uint8_t *b0 = buf, *b1 = buf + 66, *b2 = buf + 132, *b3 = buf + 198;
    tq2_zero_block(b0, 0x3c00); /* 1.0 */
    tq2_zero_block(b1, 0x7c00); /* +inf, but the block is all zero: its d means nothing */
    tq2_zero_block(b2, 0x3c00);
    tq2_zero_block(b3, 0x1234); /* all zero too */
    b0[7] = 0x56;              /* (0, 7) = +1 */
    b2[40] = 0x54;             /* row 1, element 128 + 8 = 136 -> (1, 136) = -1 */
    struct trit_ternary w;
    cr_assert_eq(trit_ternary_init(&w, 2, 512), TRIT_OK);
    cr_assert_eq(trit_tq2_0_decode(buf, &w), TRIT_OK, "%s", trit_last_error());
    cr_expect_eq(w.scale, 1.0f);
    cr_expect_eq(trit_ternary_get(&w, 0, 7), 1);
    cr_expect_eq(trit_ternary_get(&w, 1, 136), -1);
    b3[64] = 0x00, b3[65] = 0x3c; /* d = 1.0 for b3 */
    b3[0] = 0x54;                 /* (1, 256) = -1 */
    b2[65] = 0x40;                /* b2: d = 2.0, now disagrees with b0 */
    cr_assert_eq(trit_tq2_0_decode(buf, &w), TRIT_ERR_UNSUPPORTED);
    cr_assert(strstr(trit_last_error(), "row 1, block 0") != NULL, "names the block: %s", trit_last_error());
    b2[65] = 0x3c;
    b0[65] = 0x7c; /* a nonzero block with d = inf */
    cr_assert_eq(trit_tq2_0_decode(buf, &w), TRIT_ERR_FORMAT);
    /* An all-zero tensor decodes with scale 1 whatever its d. */
    tq2_zero_block(b0, 0x4400);
    tq2_zero_block(b1, 0x4400);
    tq2_zero_block(b2, 0x4400);
    tq2_zero_block(b3, 0x4400);
    w.scale = 7.0f;
    cr_assert_eq(trit_tq2_0_decode(buf, &w), TRIT_OK);
    cr_expect_eq(w.scale, 1.0f);
    trit_ternary_free(&w);
}

/* ---- TQ1_0 ------------------------------------------------------------------------------------ */

/* One TQ1_0 block with all codes zero and the given d. Five zero trits (digits 1 1 1 1 1) are
 * q = 121 -> ceil(121 * 256 / 243) = 128; four plus the zero 5th digit are q = 120 -> 127. */
static void tq1_zero_block(uint8_t blk[TRIT_TQ1_0_BLOCK_BYTES], uint16_t d) {
    memset(blk, 128, 48);
    memset(blk + 48, 127, 4);
    blk[52] = (uint8_t)(d & 0xff);
    blk[53] = (uint8_t)(d >> 8);
}

Test(tq1_0, hand_written_block) {
    /* Digits are t + 1, most significant first; byte = ceil(q * 256 / 243).
     *   qs[0]  holds e0, e32, e64, e96, e128 = +1, 0, -1, 0, +1: digits 2 1 0 1 2,
     *          q = 162 + 27 + 0 + 3 + 2 = 194, 194 * 256 = 49664 = 243 * 204 + 92 -> 205
     *   qs[35] holds 160 + 3 + 16 n: e163, e179, e195, e211, e227 = -1, +1, 0, 0, 0: digits 0 2 1 1 1,
     *          q = 54 + 9 + 3 + 1 = 67, 67 * 256 = 17152 = 243 * 70 + 142 -> 71
     *   qh[2]  holds 240 + 2 + 4 n: e242, e246, e250, e254 = +1, -1, 0, +1: digits 2 0 1 2, then 0,
     *          q = 162 + 0 + 9 + 6 + 0 = 177, 177 * 256 = 45312 = 243 * 186 + 114 -> 187
     *   d = 0x3e00 = 1.5 */
    uint8_t blk[TRIT_TQ1_0_BLOCK_BYTES];
    tq1_zero_block(blk, 0x3e00);
    blk[0] = 205;
    blk[35] = 71;
    blk[48 + 2] = 187;
    int want[256] = {0};
    want[0] = 1, want[64] = -1, want[128] = 1;
    want[163] = -1, want[179] = 1;
    want[242] = 1, want[246] = -1, want[254] = 1;
    struct trit_ternary w;
    cr_assert_eq(trit_tq1_0_bytes(1, 256), 54);
    check_hand_bytes(&TQ1, blk, 1, 256, want, 1.5f, &w);

    /* The 5th trit of a qh byte is not read (llama.cpp's dequantize_row_tq1_0 takes 4 digits):
     * the same 4 digits with a 5th digit 1 (q = 178 -> ceil(45568 / 243) = 188) or 2 (q = 179 ->
     * ceil(45824 / 243) = 189) decode identically. */
    for (int b = 188; b <= 189; b++) {
        blk[48 + 2] = (uint8_t)b;
        cr_assert_eq(trit_tq1_0_decode(blk, &w), TRIT_OK);
        expect_weights(&w, want);
    }
    trit_ternary_free(&w);
}

/* Every 5-digit value is encoded as ceil(q * 256 / 243) and decodes back, in each of the three
 * byte groups; and no byte value at all decodes to an invalid digit. */
Test(tq1_0, every_digit_pattern) {
    struct trit_ternary w, d;
    cr_assert_eq(trit_ternary_init(&w, 1, 256), TRIT_OK);
    cr_assert_eq(trit_ternary_init(&d, 1, 256), TRIT_OK);
    uint8_t blk[TRIT_TQ1_0_BLOCK_BYTES];
    struct {
        int byte, first, stride, n_digits;
    } groups[] = {{0, 0, 32, 5}, {37, 165, 16, 5}, {48 + 3, 243, 4, 4}};
    for (size_t g = 0; g < 3; g++) {
        int n_q = groups[g].n_digits == 5 ? 243 : 81;
        for (int q = 0; q < n_q; q++) {
            int digits[5], v = q;
            for (int k = groups[g].n_digits - 1; k >= 0; k--, v /= 3) digits[k] = v % 3;
            for (int k = 0; k < groups[g].n_digits; k++)
                trit_ternary_set(&w, 0, groups[g].first + k * groups[g].stride, digits[k] - 1);
            cr_assert_eq(trit_tq1_0_encode(&w, true, blk), TRIT_OK);
            int full = groups[g].n_digits == 5 ? q : q * 3;
            cr_assert_eq(blk[groups[g].byte], (full * 256 + 242) / 243, "group %zu, q = %d", g, q);
            cr_assert_eq(trit_tq1_0_decode(blk, &d), TRIT_OK);
            d.scale = w.scale;
            cr_assert(trit_ternary_equal(&w, &d), "group %zu, q = %d", g, q);
        }
        for (int k = 0; k < groups[g].n_digits; k++) trit_ternary_set(&w, 0, groups[g].first + k * groups[g].stride, 0);
    }
    tq1_zero_block(blk, 0x3c00);
    for (int b = 0; b < 256; b++) {
        blk[7] = (uint8_t)b;
        blk[49] = (uint8_t)b;
        cr_assert_eq(trit_tq1_0_decode(blk, &d), TRIT_OK, "byte %d", b);
    }
    trit_ternary_free(&w);
    trit_ternary_free(&d);
}

Test(tq1_0, hand_written_row_tail) {
    /* n_cols = 1: e0 = -1 in qs[0] with four zero padding digits: digits 0 1 1 1 1, q = 40,
     * 40 * 256 = 10240 = 243 * 42 + 34 -> 43. d = 0x3400 = 0.25. */
    uint8_t blk[TRIT_TQ1_0_BLOCK_BYTES];
    tq1_zero_block(blk, 0x3400);
    blk[0] = 43;
    struct trit_ternary w;
    check_hand_bytes(&TQ1, blk, 1, 1, (const int[]){-1}, 0.25f, &w);
    /* digits 0 1 1 1 2 (e128 = +1, padding): q = 41 -> ceil(10496 / 243) = 44 */
    blk[0] = 44;
    cr_assert_eq(trit_tq1_0_decode(blk, &w), TRIT_ERR_FORMAT);
    cr_assert(strstr(trit_last_error(), "element 128") != NULL, "%s", trit_last_error());
    trit_ternary_free(&w);
}

/* ---- TQ2_0 and TQ1_0 together ----------------------------------------------------------------- */

Test(tq, random_round_trips_with_tails) {
    struct test_rng rng;
    test_rng_seed(&rng, 0x7a);
    const int64_t rows[] = {1, 2, 3};
    const int64_t cols[] = {1, 3, 255, 256, 257, 300, 517};
    const struct codec *codecs[] = {&TQ2, &TQ1};
    for (size_t k = 0; k < 2; k++)
        for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++)
            for (size_t j = 0; j < sizeof cols / sizeof cols[0]; j++) {
                cr_assert_eq(codecs[k]->bytes(rows[i], cols[j]),
                             rows[i] * trit_div_ceil(cols[j], 256) * (k == 0 ? 66 : 54));
                /* An fp16-representable scale, so that the round trip is exact. */
                float scale = trit_fp16_to_fp32(trit_fp32_to_fp16(test_rng_uniform(&rng, 0.01f, 4.0f)));
                struct trit_ternary w;
                random_ternary(&rng, rows[i], cols[j], scale, &w);
                round_trip(codecs[k], &w);
                trit_ternary_free(&w);
            }
}

Test(tq, scale_options) {
    struct test_rng rng;
    test_rng_seed(&rng, 0x5c);
    const struct codec *codecs[] = {&TQ2, &TQ1};
    for (size_t k = 0; k < 2; k++) {
        struct trit_ternary w, d;
        random_ternary(&rng, 2, 300, 0.75f, &w);
        cr_assert_eq(trit_ternary_init(&d, 2, 300), TRIT_OK);
        int64_t n;
        /* unit_scale: d = 1 in every block, the scale travels elsewhere. */
        uint8_t *p = encode_checked(codecs[k], &w, true, &n);
        cr_assert_eq(codecs[k]->decode(p, &d), TRIT_OK);
        cr_expect_eq(d.scale, 1.0f);
        trit_free(p);
        /* A divide-style scale 4 is stored as the multiplier 1/4. */
        w.scale = 4.0f;
        w.scale_kind = TRIT_SCALE_DIV;
        p = encode_checked(codecs[k], &w, false, &n);
        cr_assert_eq(codecs[k]->decode(p, &d), TRIT_OK);
        cr_expect_eq(d.scale, 0.25f);
        cr_expect_eq(d.scale_kind, TRIT_SCALE_MUL);
        trit_free(p);
        /* A scale beyond fp16 is refused rather than stored as infinity. */
        w.scale = 1e6f;
        w.scale_kind = TRIT_SCALE_MUL;
        uint8_t *buf = trit_alloc((size_t)n);
        cr_assert_eq(codecs[k]->encode(&w, false, buf), TRIT_ERR_UNSUPPORTED);
        cr_assert_eq(codecs[k]->encode(&w, true, buf), TRIT_OK);
        trit_free(buf);
        trit_ternary_free(&w);
        trit_ternary_free(&d);
    }
}

/* ---- I2_S ------------------------------------------------------------------------------------- */

Test(i2s, hand_written_bytes) {
    /* 2 x 64 = 128 elements = one block; element i = 64 r + c. Byte j holds i = j, j+32, j+64, j+96
     * at bits 7:6, 5:4, 3:2, 1:0.
     *   byte 0  = 0x91 = 10 01 00 01: e0 = +1 (0,0), e32 = 0, e64 = -1 (1,0), e96 = 0
     *   byte 31 = 0x64 = 01 10 01 00: e31 = 0, e63 = +1 (0,63), e95 = 0, e127 = -1 (1,63)
     *   tail: fp32 0.75 = 0x3f400000 little-endian at byte 32, then 28 zero bytes. */
    uint8_t packed[64];
    memset(packed, 0x55, 32);
    memset(packed + 32, 0, 32);
    packed[0] = 0x91;
    packed[31] = 0x64;
    packed[34] = 0x40;
    packed[35] = 0x3f;
    int want[128] = {0};
    want[0] = 1, want[64] = -1, want[63] = 1, want[127] = -1;
    struct trit_ternary w;
    cr_assert_eq(trit_i2s_bytes(2, 64), 64);
    check_hand_bytes(&I2S, packed, 2, 64, want, 0.75f, &w); /* zero padding in the tail included */

    packed[5] = 0xd5; /* element 5 gets code 3 */
    cr_assert_eq(trit_i2s_decode(packed, &w), TRIT_ERR_FORMAT);
    cr_assert(strstr(trit_last_error(), "element 5") != NULL, "%s", trit_last_error());
    packed[5] = 0x55;
    packed[35] = 0x7f, packed[34] = 0xc0; /* scale = NaN */
    cr_assert_eq(trit_i2s_decode(packed, &w), TRIT_ERR_FORMAT);
    trit_ternary_free(&w);
}

Test(i2s, random_round_trips) {
    struct test_rng rng;
    test_rng_seed(&rng, 0x125);
    const int64_t shapes[][2] = {{1, 128}, {3, 128}, {2, 192}, {4, 96}, {5, 256}, {1, 2560}, {7, 384}};
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        struct trit_ternary w;
        /* Any fp32 scale survives: the tail holds all 32 bits. */
        random_ternary(&rng, shapes[s][0], shapes[s][1], test_rng_uniform(&rng, 0.1f, 3.0f), &w);
        cr_assert_eq(trit_i2s_bytes(shapes[s][0], shapes[s][1]), shapes[s][0] * shapes[s][1] / 4 + 32);
        round_trip(&I2S, &w);
        trit_ternary_free(&w);
    }
}

/* The ARM layout: blocks of 64 elements in 16 bytes, byte j holding j, j+16, j+32, j+48. */
Test(i2s, arm_layout_hand_written_bytes) {
    /* 1 x 64 = one block; element i = c.
     *   byte 0  = 0x91 = 10 01 00 01: e0 = +1, e16 = 0, e32 = -1, e48 = 0
     *   byte 15 = 0x64 = 01 10 01 00: e15 = 0, e31 = +1, e47 = 0, e63 = -1
     *   tail: fp32 0.75 at byte 16, then 28 zero bytes. */
    uint8_t packed[48];
    memset(packed, 0x55, 16);
    memset(packed + 16, 0, 32);
    packed[0] = 0x91;
    packed[15] = 0x64;
    packed[18] = 0x40;
    packed[19] = 0x3f;
    int want[64] = {0};
    want[0] = 1, want[32] = -1, want[31] = 1, want[63] = -1;
    struct trit_ternary w;
    cr_assert_eq(i2s_arm_bytes(1, 64), 48);
    check_hand_bytes(&I2S_ARM, packed, 1, 64, want, 0.75f, &w);
    trit_ternary_free(&w);
    /* 64 elements are a whole ARM block but half an x86 one */
    cr_assert_eq(trit_i2s_bytes(1, 64), -1);
    cr_assert_eq(i2s_arm_bytes(1, 96), -1);
    cr_assert_eq(trit_i2s_bytes_layout(1, 128, (enum trit_i2s_layout)7), -1);
}

Test(i2s, arm_layout_random_round_trips_and_differs_from_x86) {
    struct test_rng rng;
    test_rng_seed(&rng, 0x126);
    const int64_t shapes[][2] = {{1, 64}, {3, 64}, {2, 192}, {5, 256}, {1, 2560}, {7, 384}};
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        struct trit_ternary w;
        random_ternary(&rng, shapes[s][0], shapes[s][1], test_rng_uniform(&rng, 0.1f, 3.0f), &w);
        round_trip(&I2S_ARM, &w);
        if (trit_i2s_bytes(shapes[s][0], shapes[s][1]) > 0) { /* the same bytes read as x86: other weights */
            int64_t n;
            uint8_t *packed = encode_checked(&I2S_ARM, &w, false, &n);
            struct trit_ternary x;
            cr_assert_eq(trit_ternary_init(&x, w.n_rows, w.n_cols), TRIT_OK);
            cr_assert_eq(trit_i2s_decode(packed, &x), TRIT_OK);
            cr_expect(!trit_ternary_equal(&x, &w), "%lld x %lld: the layouts agree", (long long)w.n_rows,
                      (long long)w.n_cols);
            trit_ternary_free(&x);
            trit_free(packed);
        }
        trit_ternary_free(&w);
    }
}

Test(i2s, refuses_partial_block) {
    struct trit_ternary w;
    uint8_t buf[128];
    cr_assert_eq(trit_i2s_bytes(3, 100), -1);
    cr_assert_eq(trit_i2s_bytes(1, 64), -1);
    cr_assert_eq(trit_ternary_init(&w, 3, 100), TRIT_OK);
    test_poison(buf, sizeof buf);
    cr_assert_eq(trit_i2s_encode(&w, buf), TRIT_ERR_UNSUPPORTED);
    for (size_t i = 0; i < sizeof buf; i++) cr_assert_eq(buf[i], 0xa5, "nothing written on refusal");
    cr_assert_eq(trit_i2s_decode(buf, &w), TRIT_ERR_UNSUPPORTED);
    cr_assert(strstr(trit_last_error(), "multiple of 128") != NULL, "%s", trit_last_error());
    trit_ternary_free(&w);
}

/* ---- refusals shared by every codec ------------------------------------------------------------ */

Test(codecs, refuse_bad_arguments) {
    const struct codec *codecs[] = {&HF, &TQ2, &TQ1, &I2S};
    struct trit_ternary w, zero;
    memset(&zero, 0, sizeof zero);
    cr_assert_eq(trit_ternary_init(&w, 4, 128), TRIT_OK);
    uint8_t buf[512];
    for (size_t k = 0; k < 4; k++) {
        cr_assert_eq(codecs[k]->bytes(0, 4), -1, "%s", codecs[k]->name);
        cr_assert_eq(codecs[k]->bytes(4, -1), -1);
        cr_assert_eq(codecs[k]->bytes(INT64_MAX / 2, INT64_MAX / 2), -1);
        cr_assert_eq(codecs[k]->decode(NULL, &w), TRIT_ERR_INVALID_ARG);
        cr_assert_eq(codecs[k]->decode(buf, &zero), TRIT_ERR_INVALID_ARG, "an uninitialized tensor");
        cr_assert_eq(codecs[k]->encode(&w, false, NULL), TRIT_ERR_INVALID_ARG);
        /* A canonical tensor holding code 3 is a caller bug: encoders refuse it. */
        w.codes[9] = 0xff;
        cr_assert_eq(codecs[k]->encode(&w, false, buf), TRIT_ERR_INVALID_ARG, "%s", codecs[k]->name);
        w.codes[9] = 0x55;
    }
    trit_ternary_free(&w);
}

/* ---- Q2_0 (ggml type 42) ---------------------------------------------------------------------- */

/* A block: fp16 d little-endian at bytes 0, 1, then element e at bits 2 (e % 4) of byte 2 + e / 4,
 * value (code - 1) * d. The file's code is the canonical code, +2 (code 3) included. */
static void q2_block(uint8_t *blk, int64_t group, uint16_t d) {
    blk[0] = (uint8_t)(d & 0xff);
    blk[1] = (uint8_t)(d >> 8);
    memset(blk + 2, 0x55, (size_t)(group / 4)); /* 01 01 01 01: every weight 0 */
}

/* Decodes `bytes` into an n_rows x n_cols tensor in groups of `group`, checks codes and scales, and
 * that encoding gives the same bytes back, with nothing written past them. */
static void check_q2_hand_bytes(const uint8_t *bytes, int64_t n_rows, int64_t n_cols, int64_t group, const int *want,
                                const float *want_scales) {
    const int64_t n_bytes = trit_q2_0_bytes(n_rows, n_cols, group);
    cr_assert_gt(n_bytes, 0);
    struct trit_ternary w;
    cr_assert_eq(trit_ternary_init_grouped(&w, n_rows, n_cols, group), TRIT_OK);
    cr_assert_eq(trit_q2_0_decode(bytes, &w), TRIT_OK, "%s", trit_last_error());
    expect_weights(&w, want);
    for (int64_t i = 0; i < n_rows * (n_cols / group); i++)
        cr_expect_eq(memcmp(&w.group_scales[i], &want_scales[i], sizeof(float)), 0, "group scale %lld: %g, expected %g",
                     (long long)i, (double)w.group_scales[i], (double)want_scales[i]);
    cr_assert(w.scale == 1.0f && w.scale_kind == TRIT_SCALE_MUL);
    uint8_t out[2 * 136 + GUARD_BYTES];
    cr_assert_leq((size_t)n_bytes + GUARD_BYTES, sizeof out);
    test_poison(out, sizeof out);
    cr_assert_eq(trit_q2_0_encode(&w, out), TRIT_OK, "%s", trit_last_error());
    cr_assert_eq(memcmp(out, bytes, (size_t)n_bytes), 0, "encoding gives the hand-written bytes back");
    for (int64_t i = n_bytes; i < n_bytes + GUARD_BYTES; i++) cr_assert_eq(out[i], 0xa5, "byte %lld past the end written", (long long)i);
    trit_ternary_free(&w);
}

Test(q2_0, sizes) {
    cr_assert_eq(trit_q2_0_bytes(1, 64, 64), 18, "mainline ggml block_q2_0: fp16 d + qs[16]");
    cr_assert_eq(trit_q2_0_bytes(1, 128, 128), 34, "PrismML's block: fp16 d + 32 bytes");
    cr_assert_eq(trit_q2_0_bytes(3, 256, 64), 3 * 4 * 18);
    cr_assert_eq(trit_q2_0_bytes(3, 256, 128), 3 * 2 * 34);
    cr_assert_eq(trit_q2_0_bytes(1, 96, 64), -1, "no partial blocks");
    cr_assert_eq(trit_q2_0_bytes(1, 192, 128), -1);
    cr_assert_eq(trit_q2_0_bytes(1, 256, 32), -1, "groups of 64 or 128 only");
    cr_assert_eq(trit_q2_0_bytes(1, 256, 256), -1);
    cr_assert_eq(trit_q2_0_bytes(0, 64, 64), -1);
    cr_assert_eq(trit_q2_0_bytes(INT64_MAX / 2, INT64_MAX / 2 / 64 * 64, 64), -1, "overflow");
}

Test(q2_0, hand_written_g64) {
    /* Two rows of 64: one block each.
     * row 0: d = 0x3800 = 0.5
     *   qs[0]  = 0xE4 = 11 10 01 00: e0 = -1 (code 0), e1 = 0, e2 = +1, e3 = +2 (code 3)
     *   qs[15] = 0x95 = 10 01 01 01: e60 = e61 = e62 = 0, e63 = +1
     * row 1: d = 0xC000 = -2.0 (a negative d is legal: values (code - 1) * d)
     *   qs[7]  = 0x1B = 00 01 10 11: e28 = +2, e29 = +1, e30 = 0, e31 = -1 */
    uint8_t bytes[2 * 18];
    q2_block(bytes, 64, 0x3800);
    bytes[2 + 0] = 0xE4;
    bytes[2 + 15] = 0x95;
    q2_block(bytes + 18, 64, 0xC000);
    bytes[18 + 2 + 7] = 0x1B;
    int want[2 * 64] = {0};
    want[0] = -1, want[2] = 1, want[3] = 2, want[63] = 1;
    want[64 + 28] = 2, want[64 + 29] = 1, want[64 + 31] = -1;
    const float scales[2] = {0.5f, -2.0f};
    check_q2_hand_bytes(bytes, 2, 64, 64, want, scales);
}

Test(q2_0, hand_written_g128) {
    /* One row of 256 in PrismML's blocks of 128: two 34-byte blocks, in column order.
     * block 0: d = 0x2E66 = 0.0999755859375 (fp16 of 0.1)
     *   qs[0]  = 0x57 = 01 01 01 11: e0 = +2, e1 = e2 = e3 = 0
     *   qs[31] = 0x06 = 00 00 01 10: e124 = +1, e125 = 0, e126 = e127 = -1
     * block 1: d = 0x0001 = 2^-24, the smallest fp16 subnormal (exact as an fp32 scale)
     *   qs[16] = 0x9C = 10 01 11 00: e128+64 = -1, e193 = +2, e194 = 0, e195 = +1 */
    uint8_t bytes[2 * 34];
    q2_block(bytes, 128, 0x2E66);
    bytes[2 + 0] = 0x57;
    bytes[2 + 31] = 0x06;
    q2_block(bytes + 34, 128, 0x0001);
    bytes[34 + 2 + 16] = 0x9C;
    int want[256] = {0};
    want[0] = 2, want[124] = 1, want[126] = -1, want[127] = -1;
    want[192] = -1, want[193] = 2, want[195] = 1;
    const float scales[2] = {0.0999755859375f, 0x1p-24f};
    check_q2_hand_bytes(bytes, 1, 256, 128, want, scales);
}

Test(q2_0, non_finite_scale_is_refused) {
    /* Even in a block whose weights are all zero: a d of inf or NaN has no meaning. */
    const uint16_t bad[3] = {0x7C00 /* +inf */, 0xFC00 /* -inf */, 0x7E00 /* NaN */};
    for (int k = 0; k < 3; k++) {
        uint8_t bytes[2 * 18];
        q2_block(bytes, 64, 0x3C00);
        q2_block(bytes + 18, 64, bad[k]);
        struct trit_ternary w;
        cr_assert_eq(trit_ternary_init_grouped(&w, 1, 128, 64), TRIT_OK);
        cr_assert_eq(trit_q2_0_decode(bytes, &w), TRIT_ERR_FORMAT, "d = 0x%04x", bad[k]);
        cr_assert(strstr(trit_last_error(), "row 0, block 1") != NULL, "%s", trit_last_error());
        trit_ternary_free(&w);
    }
}

Test(q2_0, refusals) {
    struct trit_ternary w;
    uint8_t buf[64 * 18];
    /* a tensor with one scale, or groups the block size does not match */
    cr_assert_eq(trit_ternary_init(&w, 1, 64), TRIT_OK);
    cr_assert_neq(trit_q2_0_decode(buf, &w), TRIT_OK);
    cr_assert_neq(trit_q2_0_encode(&w, buf), TRIT_OK);
    trit_ternary_free(&w);
    cr_assert_eq(trit_ternary_init_grouped(&w, 1, 192, 128), TRIT_OK); /* a partial last group */
    cr_assert_eq(trit_q2_0_decode(buf, &w), TRIT_ERR_UNSUPPORTED);
    cr_assert_eq(trit_q2_0_encode(&w, buf), TRIT_ERR_UNSUPPORTED);
    trit_ternary_free(&w);
    cr_assert_eq(trit_ternary_init_grouped(&w, 1, 64, 32), TRIT_ERR_INVALID_ARG, "groups are multiples of 64");
    /* a scale with no fp16: nothing is written */
    cr_assert_eq(trit_ternary_init_grouped(&w, 1, 128, 64), TRIT_OK);
    w.group_scales[1] = 1e6f;
    test_poison(buf, sizeof buf);
    cr_assert_eq(trit_q2_0_encode(&w, buf), TRIT_ERR_UNSUPPORTED);
    trit_ternary_free(&w);
}

Test(q2_0, random_round_trip) {
    struct test_rng rng;
    test_rng_seed(&rng, 42);
    const int64_t groups[2] = {64, 128};
    for (int g = 0; g < 2; g++) {
        const int64_t G = groups[g], n_rows = 5, n_cols = 3 * G;
        struct trit_ternary w, back;
        cr_assert_eq(trit_ternary_init_grouped(&w, n_rows, n_cols, G), TRIT_OK);
        for (int64_t r = 0; r < n_rows; r++)
            for (int64_t c = 0; c < n_cols; c++) trit_ternary_set(&w, r, c, (int)test_rng_int(&rng, -1, 2));
        for (int64_t i = 0; i < n_rows * 3; i++) /* fp16 values, so the round trip is exact */
            w.group_scales[i] = trit_fp16_to_fp32(trit_fp32_to_fp16((float)test_rng_int(&rng, -1000, 1000) / 997.0f));
        const int64_t n_bytes = trit_q2_0_bytes(n_rows, n_cols, G);
        uint8_t *buf = trit_alloc((size_t)n_bytes);
        cr_assert_not_null(buf);
        cr_assert_eq(trit_q2_0_encode(&w, buf), TRIT_OK, "%s", trit_last_error());
        cr_assert_eq(trit_ternary_init_grouped(&back, n_rows, n_cols, G), TRIT_OK);
        cr_assert_eq(trit_q2_0_decode(buf, &back), TRIT_OK, "%s", trit_last_error());
        cr_assert(trit_ternary_equal(&w, &back), "group %lld", (long long)G);
        trit_free(buf);
        trit_ternary_free(&w);
        trit_ternary_free(&back);
    }
}
