/*
 * codecs.c: conversions between the canonical ternary tensor (quant.h) and the packed layouts
 * trit reads and writes: HF transformers uint8, GGUF TQ2_0 and TQ1_0 (llama.cpp), and bitnet.cpp
 * I2_S (x86 and ARM block layouts). Byte layouts are in quant.h and docs/formats.md
 * section 1.
 *
 * Every packed code here is t + 1 in {0, 1, 2}, as in the canonical tensor, so a codec only moves
 * codes around (Q2_0 adds code 3, t = +2, for group-scaled tensors). The other decoders reject code 3; TQ2_0/TQ1_0 decoders also reject nonzero padding codes
 * past the end of a row, since then the buffer does not hold a tensor of this shape.
 */
#include <math.h>
#include <string.h>

#include "quant/quant.h"

/* ---- shared helpers --------------------------------------------------------------------------- */

static unsigned code_get(const struct trit_ternary *w, int64_t r, int64_t c) {
    return (w->codes[r * w->row_bytes + c / 4] >> (2 * (c % 4))) & 3u;
}

static enum trit_status check_tensor(const struct trit_ternary *w, const void *packed, const char *who) {
    if (!w || !w->codes || !packed) return trit_error(TRIT_ERR_INVALID_ARG, "%s: NULL argument", who);
    if (w->n_rows <= 0 || w->n_cols <= 0 || w->row_bytes != trit_div_ceil(w->n_cols, 4))
        return trit_error(TRIT_ERR_INVALID_ARG, "%s: tensor not initialized (%lld x %lld, row_bytes %lld)", who,
                          (long long)w->n_rows, (long long)w->n_cols, (long long)w->row_bytes);
    return TRIT_OK;
}

/* Encoders read canonical codes; code 3 there is a bug in whoever filled the tensor. */
static enum trit_status check_codes(const struct trit_ternary *w, const char *who) {
    if (w->group > 0)
        return trit_error(TRIT_ERR_UNSUPPORTED, "%s: the tensor has a scale per %lld weights; only Q2_0 holds group scales",
                          who, (long long)w->group);
    for (int64_t r = 0; r < w->n_rows; r++)
        for (int64_t c = 0; c < w->n_cols; c++)
            if (code_get(w, r, c) == 3u)
                return trit_error(TRIT_ERR_INVALID_ARG, "%s: canonical tensor holds code 3 at (%lld, %lld)", who,
                                  (long long)r, (long long)c);
    return TRIT_OK;
}

/* The scale as a multiplier (W = t * m), which is what TQ2_0, TQ1_0 and I2_S store. */
static enum trit_status multiplier_of(const struct trit_ternary *w, const char *who, float *m) {
    float v = w->scale_kind == TRIT_SCALE_DIV ? 1.0f / w->scale : w->scale;
    if (!isfinite(v))
        return trit_error(TRIT_ERR_INVALID_ARG, "%s: scale %g (kind %d) has no finite multiplier", who,
                          (double)w->scale, (int)w->scale_kind);
    *m = v;
    return TRIT_OK;
}

static uint16_t load_u16le(const uint8_t *p) { return (uint16_t)(p[0] | (p[1] << 8)); }
static void store_u16le(uint8_t *p, uint16_t v) {
    p[0] = (uint8_t)(v & 0xffu);
    p[1] = (uint8_t)(v >> 8);
}

/* ---- HF transformers packed uint8 --------------------------------------------------------------
 * packed[p][c], p < P = ceil(n_rows / 4): bit pair i (bits 2i+1:2i) holds row i * P + p.
 * Rows i * P + p >= n_rows are padding: the encoder writes 0b00 there as transformers'
 * pack_weights does (it ORs into a zeroed tensor), and the decoder does not read them. */

int64_t trit_hf_packed_bytes(int64_t n_rows, int64_t n_cols) {
    int64_t n;
    if (n_rows <= 0 || n_cols <= 0 || !trit_mul_i64(trit_div_ceil(n_rows, 4), n_cols, &n)) return -1;
    return n;
}

enum trit_status trit_hf_decode(const uint8_t *packed, struct trit_ternary *w) {
    TRIT_TRY(check_tensor(w, packed, "hf decode"));
    int64_t P = trit_div_ceil(w->n_rows, 4);
    for (int64_t p = 0; p < P; p++)
        for (int64_t c = 0; c < w->n_cols; c++) {
            uint8_t byte = packed[p * w->n_cols + c];
            for (int64_t i = 0; i < 4; i++) {
                int64_t r = i * P + p;
                if (r >= w->n_rows) break;
                unsigned code = (byte >> (2 * i)) & 3u;
                if (code == 3u)
                    return trit_error(TRIT_ERR_FORMAT, "hf decode: code 3 for row %lld, column %lld (byte %lld)",
                                      (long long)r, (long long)c, (long long)(p * w->n_cols + c));
                trit_ternary_set(w, r, c, (int)code - 1);
            }
        }
    return TRIT_OK;
}

enum trit_status trit_hf_encode(const struct trit_ternary *w, uint8_t *packed) {
    TRIT_TRY(check_tensor(w, packed, "hf encode"));
    TRIT_TRY(check_codes(w, "hf encode"));
    int64_t P = trit_div_ceil(w->n_rows, 4);
    for (int64_t p = 0; p < P; p++)
        for (int64_t c = 0; c < w->n_cols; c++) {
            unsigned byte = 0;
            for (int64_t i = 0; i < 4; i++) {
                int64_t r = i * P + p;
                if (r < w->n_rows) byte |= code_get(w, r, c) << (2 * i);
            }
            packed[p * w->n_cols + c] = (uint8_t)byte;
        }
    return TRIT_OK;
}

/* ---- TQ2_0 and TQ1_0 blocks ---------------------------------------------------------------------
 * Both are rows of 256-element blocks with an fp16 d in the last two bytes. A block is unpacked to
 * 256 codes (t + 1) and packed from them; the row/block walk, the padding rule and the scale
 * agreement are shared below. */

typedef void (*block_unpack_fn)(const uint8_t *blk, uint8_t codes[TRIT_QK_K]);
typedef void (*block_pack_fn)(const uint8_t codes[TRIT_QK_K], uint8_t *blk);

/* TQ2_0: qs[64] then d. Element e: byte 32 * (e / 128) + e % 32, bits 2 * ((e % 128) / 32). */
static void tq2_0_unpack(const uint8_t *blk, uint8_t codes[TRIT_QK_K]) {
    for (int e = 0; e < TRIT_QK_K; e++)
        codes[e] = (uint8_t)((blk[32 * (e / 128) + e % 32] >> (2 * ((e % 128) / 32))) & 3u);
}

static void tq2_0_pack(const uint8_t codes[TRIT_QK_K], uint8_t *blk) {
    memset(blk, 0, 64);
    for (int e = 0; e < TRIT_QK_K; e++)
        blk[32 * (e / 128) + e % 32] |= (uint8_t)(codes[e] << (2 * ((e % 128) / 32)));
}

/* TQ1_0: qs[48], qh[4], then d. A byte holds base-3 digits, digit n = 0 the most significant:
 *   qs[m],      m < 32: elements m + 32 n,        n < 5   (elements 0..159)
 *   qs[32 + m], m < 16: elements 160 + m + 16 n,  n < 5   (elements 160..239)
 *   qh[j],      j < 4:  elements 240 + j + 4 n,   n < 4   (elements 240..255), 5th digit 0
 * The 5-digit value q in [0, 242] is stored as the fixed-point byte ceil(q * 256 / 243), so digit n
 * is the top base-3 digit of byte * 3^n (mod 256), i.e. ((uint8_t)(byte * 3^n) * 3) >> 8, which is
 * always 0..2. That is llama.cpp's dequantize_row_tq1_0; it reads 4 digits of qh and ignores the
 * 5th, so any byte decodes, as there. */
static const uint8_t tq1_pow3[5] = {1, 3, 9, 27, 81};

static uint8_t tq1_digit(uint8_t byte, int n) {
    uint8_t q = (uint8_t)(byte * tq1_pow3[n]);
    return (uint8_t)(((unsigned)q * 3u) >> 8);
}

/* Packs n_digits digits codes[0], codes[stride], ... (then zeros up to 5) into one byte. */
static uint8_t tq1_byte(const uint8_t *codes, int stride, int n_digits) {
    unsigned q = 0;
    for (int n = 0; n < 5; n++) q = q * 3u + (n < n_digits ? codes[n * stride] : 0u);
    return (uint8_t)((q * 256u + 242u) / 243u);
}

static void tq1_0_unpack(const uint8_t *blk, uint8_t codes[TRIT_QK_K]) {
    const uint8_t *qs = blk, *qh = blk + 48;
    for (int m = 0; m < 32; m++)
        for (int n = 0; n < 5; n++) codes[m + 32 * n] = tq1_digit(qs[m], n);
    for (int m = 0; m < 16; m++)
        for (int n = 0; n < 5; n++) codes[160 + m + 16 * n] = tq1_digit(qs[32 + m], n);
    for (int j = 0; j < 4; j++)
        for (int n = 0; n < 4; n++) codes[240 + j + 4 * n] = tq1_digit(qh[j], n);
}

static void tq1_0_pack(const uint8_t codes[TRIT_QK_K], uint8_t *blk) {
    uint8_t *qs = blk, *qh = blk + 48;
    for (int m = 0; m < 32; m++) qs[m] = tq1_byte(codes + m, 32, 5);
    for (int m = 0; m < 16; m++) qs[32 + m] = tq1_byte(codes + 160 + m, 16, 5);
    for (int j = 0; j < 4; j++) qh[j] = tq1_byte(codes + 240 + j, 4, 4);
}

static int64_t blocks_bytes(int64_t n_rows, int64_t n_cols, int64_t block_bytes) {
    int64_t row, n;
    if (n_rows <= 0 || n_cols <= 0) return -1;
    if (!trit_mul_i64(trit_div_ceil(n_cols, TRIT_QK_K), block_bytes, &row) || !trit_mul_i64(n_rows, row, &n))
        return -1;
    return n;
}

static enum trit_status blocks_decode(const uint8_t *packed, struct trit_ternary *w, int64_t block_bytes,
                                      block_unpack_fn unpack, const char *who) {
    TRIT_TRY(check_tensor(w, packed, who));
    int64_t nb = trit_div_ceil(w->n_cols, TRIT_QK_K);
    bool have_d = false;
    uint16_t d = 0;
    int64_t d_row = 0, d_blk = 0;
    uint8_t codes[TRIT_QK_K];
    for (int64_t r = 0; r < w->n_rows; r++)
        for (int64_t b = 0; b < nb; b++) {
            const uint8_t *blk = packed + (r * nb + b) * block_bytes;
            unpack(blk, codes);
            bool nonzero = false;
            for (int64_t e = 0; e < TRIT_QK_K; e++) {
                int64_t c = b * TRIT_QK_K + e;
                if (codes[e] == 3u)
                    return trit_error(TRIT_ERR_FORMAT, "%s: code 3 at row %lld, block %lld, element %lld", who,
                                      (long long)r, (long long)b, (long long)e);
                if (c >= w->n_cols) {
                    if (codes[e] != TRIT_CODE_ZERO)
                        return trit_error(TRIT_ERR_FORMAT, "%s: nonzero padding at row %lld, block %lld, element %lld",
                                          who, (long long)r, (long long)b, (long long)e);
                    continue;
                }
                nonzero |= codes[e] != TRIT_CODE_ZERO;
                trit_ternary_set(w, r, c, (int)codes[e] - 1);
            }
            if (!nonzero) continue; /* an all-zero block says nothing about the scale */
            uint16_t bd = load_u16le(blk + block_bytes - 2);
            if (!isfinite(trit_fp16_to_fp32(bd)))
                return trit_error(TRIT_ERR_FORMAT, "%s: non-finite d 0x%04x at row %lld, block %lld", who,
                                  (unsigned)bd, (long long)r, (long long)b);
            if (!have_d) {
                have_d = true;
                d = bd;
                d_row = r;
                d_blk = b;
            } else if (bd != d) {
                return trit_error(TRIT_ERR_UNSUPPORTED,
                                  "%s: row %lld, block %lld has d = %g but row %lld, block %lld has d = %g; "
                                  "trit holds one scale per tensor",
                                  who, (long long)r, (long long)b, (double)trit_fp16_to_fp32(bd), (long long)d_row,
                                  (long long)d_blk, (double)trit_fp16_to_fp32(d));
            }
        }
    w->scale = have_d ? trit_fp16_to_fp32(d) : 1.0f;
    w->scale_kind = TRIT_SCALE_MUL;
    return TRIT_OK;
}

static enum trit_status blocks_encode(const struct trit_ternary *w, bool unit_scale, uint8_t *packed,
                                      int64_t block_bytes, block_pack_fn pack, const char *who) {
    TRIT_TRY(check_tensor(w, packed, who));
    TRIT_TRY(check_codes(w, who));
    uint16_t d = 0x3c00u; /* 1.0 */
    if (!unit_scale) {
        float m = 0.0f;
        TRIT_TRY(multiplier_of(w, who, &m));
        d = trit_fp32_to_fp16(m);
        if (!isfinite(trit_fp16_to_fp32(d)) || (trit_fp16_to_fp32(d) == 0.0f && m != 0.0f))
            return trit_error(TRIT_ERR_UNSUPPORTED, "%s: scale %g does not fit in fp16", who, (double)m);
    }
    int64_t nb = trit_div_ceil(w->n_cols, TRIT_QK_K);
    uint8_t codes[TRIT_QK_K];
    for (int64_t r = 0; r < w->n_rows; r++)
        for (int64_t b = 0; b < nb; b++) {
            uint8_t *blk = packed + (r * nb + b) * block_bytes;
            for (int64_t e = 0; e < TRIT_QK_K; e++) {
                int64_t c = b * TRIT_QK_K + e;
                codes[e] = (uint8_t)(c < w->n_cols ? code_get(w, r, c) : TRIT_CODE_ZERO);
            }
            pack(codes, blk);
            store_u16le(blk + block_bytes - 2, d);
        }
    return TRIT_OK;
}

_Static_assert(TRIT_TQ2_0_BLOCK_BYTES == TRIT_QK_K / 4 + 2, "TQ2_0 block: qs[64] + fp16 d");
_Static_assert(TRIT_TQ1_0_BLOCK_BYTES == (TRIT_QK_K - 16) / 5 + 4 + 2, "TQ1_0 block: qs[48] + qh[4] + fp16 d");

int64_t trit_tq2_0_bytes(int64_t n_rows, int64_t n_cols) {
    return blocks_bytes(n_rows, n_cols, TRIT_TQ2_0_BLOCK_BYTES);
}
enum trit_status trit_tq2_0_decode(const uint8_t *packed, struct trit_ternary *w) {
    return blocks_decode(packed, w, TRIT_TQ2_0_BLOCK_BYTES, tq2_0_unpack, "tq2_0 decode");
}
enum trit_status trit_tq2_0_encode(const struct trit_ternary *w, bool unit_scale, uint8_t *packed) {
    return blocks_encode(w, unit_scale, packed, TRIT_TQ2_0_BLOCK_BYTES, tq2_0_pack, "tq2_0 encode");
}

int64_t trit_tq1_0_bytes(int64_t n_rows, int64_t n_cols) {
    return blocks_bytes(n_rows, n_cols, TRIT_TQ1_0_BLOCK_BYTES);
}
enum trit_status trit_tq1_0_decode(const uint8_t *packed, struct trit_ternary *w) {
    return blocks_decode(packed, w, TRIT_TQ1_0_BLOCK_BYTES, tq1_0_unpack, "tq1_0 decode");
}
enum trit_status trit_tq1_0_encode(const struct trit_ternary *w, bool unit_scale, uint8_t *packed) {
    return blocks_encode(w, unit_scale, packed, TRIT_TQ1_0_BLOCK_BYTES, tq1_0_pack, "tq1_0 encode");
}

/* ---- bitnet.cpp I2_S ------------------------------------------------------------------------------
 * Flattened element i = r * n_cols + c: block i / B of B / 4 bytes (B = 128 on x86, 64 on ARM);
 * within it j = i % B sits in byte j % (B / 4) at bits (7 - 2 g):(6 - 2 g), g = j / (B / 4). Then
 * the fp32 multiplier (little-endian) at byte n / 4 and 28 zero bytes. */

static int64_t i2s_block(enum trit_i2s_layout layout) { return layout == TRIT_I2S_ARM ? 64 : TRIT_I2S_BLOCK; }

int64_t trit_i2s_bytes_layout(int64_t n_rows, int64_t n_cols, enum trit_i2s_layout layout) {
    int64_t n;
    if ((unsigned)layout > TRIT_I2S_ARM || n_rows <= 0 || n_cols <= 0 || !trit_mul_i64(n_rows, n_cols, &n) ||
        n % i2s_block(layout) != 0)
        return -1;
    return n / 4 + 32;
}

int64_t trit_i2s_bytes(int64_t n_rows, int64_t n_cols) { return trit_i2s_bytes_layout(n_rows, n_cols, TRIT_I2S_X86); }

static enum trit_status i2s_check_shape(const struct trit_ternary *w, enum trit_i2s_layout layout, const char *who) {
    if ((unsigned)layout > TRIT_I2S_ARM) return trit_error(TRIT_ERR_INVALID_ARG, "%s: unknown layout %d", who, (int)layout);
    if (trit_i2s_bytes_layout(w->n_rows, w->n_cols, layout) < 0)
        return trit_error(TRIT_ERR_UNSUPPORTED, "%s: %lld x %lld elements are not a multiple of %lld", who,
                          (long long)w->n_rows, (long long)w->n_cols, (long long)i2s_block(layout));
    return TRIT_OK;
}

enum trit_status trit_i2s_decode_layout(const uint8_t *packed, enum trit_i2s_layout layout, struct trit_ternary *w) {
    TRIT_TRY(check_tensor(w, packed, "i2_s decode"));
    TRIT_TRY(i2s_check_shape(w, layout, "i2_s decode"));
    const int64_t n = w->n_rows * w->n_cols, blk = i2s_block(layout), q = blk / 4;
    for (int64_t i = 0; i < n; i++) {
        int64_t j = i % blk;
        unsigned code = (packed[(i / blk) * q + j % q] >> (6 - 2 * (j / q))) & 3u;
        if (code == 3u)
            return trit_error(TRIT_ERR_FORMAT, "i2_s decode: code 3 at element %lld (row %lld, column %lld)",
                              (long long)i, (long long)(i / w->n_cols), (long long)(i % w->n_cols));
        trit_ternary_set(w, i / w->n_cols, i % w->n_cols, (int)code - 1);
    }
    const uint8_t *tail = packed + n / 4;
    uint32_t bits = (uint32_t)tail[0] | (uint32_t)tail[1] << 8 | (uint32_t)tail[2] << 16 | (uint32_t)tail[3] << 24;
    float scale;
    memcpy(&scale, &bits, sizeof scale);
    if (!isfinite(scale))
        return trit_error(TRIT_ERR_FORMAT, "i2_s decode: non-finite scale (bits 0x%08x)", (unsigned)bits);
    w->scale = scale;
    w->scale_kind = TRIT_SCALE_MUL;
    return TRIT_OK;
}

enum trit_status trit_i2s_decode(const uint8_t *packed, struct trit_ternary *w) {
    return trit_i2s_decode_layout(packed, TRIT_I2S_X86, w);
}

enum trit_status trit_i2s_encode_layout(const struct trit_ternary *w, enum trit_i2s_layout layout, uint8_t *packed) {
    TRIT_TRY(check_tensor(w, packed, "i2_s encode"));
    TRIT_TRY(i2s_check_shape(w, layout, "i2_s encode"));
    TRIT_TRY(check_codes(w, "i2_s encode"));
    float m = 0.0f;
    TRIT_TRY(multiplier_of(w, "i2_s encode", &m));
    const int64_t n = w->n_rows * w->n_cols, blk = i2s_block(layout), q = blk / 4;
    for (int64_t byte = 0; byte < n / 4; byte++) {
        unsigned v = 0;
        for (int64_t g = 0; g < 4; g++) {
            int64_t i = (byte / q) * blk + g * q + byte % q;
            v |= code_get(w, i / w->n_cols, i % w->n_cols) << (6 - 2 * g);
        }
        packed[byte] = (uint8_t)v;
    }
    uint8_t *tail = packed + n / 4;
    uint32_t bits;
    memcpy(&bits, &m, sizeof bits);
    memset(tail, 0, 32);
    for (int b = 0; b < 4; b++) tail[b] = (uint8_t)(bits >> (8 * b));
    return TRIT_OK;
}

enum trit_status trit_i2s_encode(const struct trit_ternary *w, uint8_t *packed) {
    return trit_i2s_encode_layout(w, TRIT_I2S_X86, packed);
}

/* ---- llama.cpp Q2_0 (ggml type 42): fp16 d, then G / 4 bytes of codes, element e at bits 2 (e % 4)
 * of byte e / 4; value (code - 1) * d. The file's code is the canonical code, +2 included, and a block
 * is one group, so a row's blocks are its groups in order. */

int64_t trit_q2_0_bytes(int64_t n_rows, int64_t n_cols, int64_t group) {
    if ((group != 64 && group != 128) || n_rows <= 0 || n_cols <= 0 || n_cols % group != 0) return -1;
    int64_t n_blocks, n_bytes;
    if (!trit_mul_i64(n_rows, n_cols / group, &n_blocks) || !trit_mul_i64(n_blocks, 2 + group / 4, &n_bytes)) return -1;
    return n_bytes;
}

static enum trit_status q2_0_check(const struct trit_ternary *w, const void *packed, const char *who) {
    TRIT_TRY(check_tensor(w, packed, who));
    if (!w->group_scales || trit_q2_0_bytes(w->n_rows, w->n_cols, w->group) < 0)
        return trit_error(TRIT_ERR_UNSUPPORTED, "%s: %lld x %lld in groups of %lld is not a Q2_0 shape (groups of 64 or 128)",
                          who, (long long)w->n_rows, (long long)w->n_cols, (long long)w->group);
    return TRIT_OK;
}

enum trit_status trit_q2_0_decode(const uint8_t *packed, struct trit_ternary *w) {
    TRIT_TRY(q2_0_check(w, packed, "q2_0 decode"));
    const int64_t G = w->group, n_groups = w->n_cols / G, block_bytes = 2 + G / 4;
    for (int64_t r = 0; r < w->n_rows; r++) {
        for (int64_t g = 0; g < n_groups; g++) {
            const uint8_t *blk = packed + (r * n_groups + g) * block_bytes;
            const float d = trit_fp16_to_fp32(load_u16le(blk));
            if (!isfinite(d))
                return trit_error(TRIT_ERR_FORMAT, "q2_0 decode: row %lld, block %lld has scale %g", (long long)r,
                                  (long long)g, (double)d);
            w->group_scales[r * n_groups + g] = d;
            memcpy(w->codes + r * w->row_bytes + g * (G / 4), blk + 2, (size_t)(G / 4));
        }
    }
    return TRIT_OK;
}

enum trit_status trit_q2_0_encode(const struct trit_ternary *w, uint8_t *packed) {
    TRIT_TRY(q2_0_check(w, packed, "q2_0 encode"));
    const int64_t G = w->group, n_groups = w->n_cols / G, block_bytes = 2 + G / 4;
    for (int64_t r = 0; r < w->n_rows; r++) {
        for (int64_t g = 0; g < n_groups; g++) {
            uint8_t *blk = packed + (r * n_groups + g) * block_bytes;
            const float d = w->group_scales[r * n_groups + g];
            const uint16_t h = trit_fp32_to_fp16(d);
            if (!isfinite(trit_fp16_to_fp32(h)))
                return trit_error(TRIT_ERR_UNSUPPORTED, "q2_0 encode: row %lld, group %lld: scale %g has no fp16",
                                  (long long)r, (long long)g, (double)d);
            store_u16le(blk, h);
            memcpy(blk + 2, w->codes + r * w->row_bytes + g * (G / 4), (size_t)(G / 4));
        }
    }
    return TRIT_OK;
}
