/*
 * ggml_dequant.c: ggml block types (Q4_0 .. Q8_0, Q2_K .. Q6_K) to fp32, and whole matrices to
 * an owned fp16 copy for the embedding and the LM head.
 *
 * Block layouts (byte offsets inside one block; "h" = fp16 little-endian, all others bytes):
 *
 *   Q4_0  18 B / 32:  d h @0, qs[16] @2.            y[j] = (lo(qs[j]) - 8) d, y[j+16] = (hi(qs[j]) - 8) d
 *   Q4_1  20 B / 32:  d h @0, m h @2, qs[16] @4.    y = q d + m   (q the same nibbles, no offset)
 *   Q5_0  22 B / 32:  d h @0, qh u32 @2, qs[16] @6. fifth bit of y[j] is qh bit j (j < 32); q - 16
 *   Q5_1  24 B / 32:  d h @0, m h @2, qh u32 @4, qs[16] @8.   y = q d + m
 *   Q8_0  34 B / 32:  d h @0, qs[32] int8 @2.       y = q d
 *   Q2_K  84 B / 256: scales[16] @0 (lo nibble scale, hi nibble min), qs[64] @16, d h @80, dmin h @82.
 *         element e: sub-block e/16, 2-bit q = qs[32 (e/128) + e%32] >> 2 ((e%128)/32);
 *         y = (d sc) q - (dmin m)
 *   Q3_K  110 B / 256: hmask[32] @0, qs[64] @32, scales[12] @96, d h @108.
 *         scale j (6 bits, biased by 32): low 4 bits from scales[j] (j < 8, low nibble) or
 *         scales[j-8] (high nibble); high 2 bits = scales[8 + j%4] >> 2 (j/4).
 *         element e: h = e/128, k = (e%128)/32, l = e%32; q = qs[32 h + l] >> 2k & 3;
 *         q -= 4 unless hmask[l] bit (4h + k) is set; y = (d (sc - 32)) q
 *   Q4_K  144 B / 256: d h @0, dmin h @2, scales[12] @4 (8 pairs of 6-bit scale/min), qs[128] @16.
 *         element e: sub-block e/32; byte qs[32 (e/64) + e%32], low nibble when e%64 < 32;
 *         y = (d sc) q - (dmin m)
 *   Q5_K  176 B / 256: as Q4_K, plus qh[32] @16 and qs[128] @48; q += 16 when qh[e%32] bit (e/32)
 *   Q6_K  210 B / 256: ql[128] @0, qh[64] @128, scales[16] int8 @192, d h @208.
 *         element e: h = e/128, k = (e%128)/32, l = e%32; low nibble of ql[64 h + 32 (k&1) + l]
 *         (high nibble when k >= 2), top two bits qh[32 h + l] >> 2k; q - 32; y = (d sc[e/16]) q
 *
 * The 6-bit scale/min pairs of Q4_K and Q5_K: for j < 4, sc = scales[j] & 63, m = scales[j+4] & 63;
 * for j >= 4, sc = (scales[j+4] & 15) | (scales[j-4] >> 6) << 4, m = (scales[j+4] >> 4) | (scales[j] >> 6) << 4.
 */
#include "quant/ggml_dequant.h"

#include <string.h>

#include "io/gguf.h"
#include "quant/quant.h"

struct dq_type {
    uint32_t type;
    uint32_t blck;
    uint32_t bytes;
    void (*block)(const uint8_t *b, float *y);
};

static float h16(const uint8_t *p) { return trit_fp16_to_fp32((uint16_t)(p[0] | (p[1] << 8))); }

static uint32_t le32(const uint8_t *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* ---- 32-element blocks ------------------------------------------------------------------------ */

static void block_q4_0(const uint8_t *b, float *y) {
    const float d = h16(b);
    const uint8_t *qs = b + 2;
    for (int j = 0; j < 16; j++) {
        y[j] = (float)((qs[j] & 0x0F) - 8) * d;
        y[j + 16] = (float)((qs[j] >> 4) - 8) * d;
    }
}

static void block_q4_1(const uint8_t *b, float *y) {
    const float d = h16(b), m = h16(b + 2);
    const uint8_t *qs = b + 4;
    for (int j = 0; j < 16; j++) {
        y[j] = (float)(qs[j] & 0x0F) * d + m;
        y[j + 16] = (float)(qs[j] >> 4) * d + m;
    }
}

static void block_q5_0(const uint8_t *b, float *y) {
    const float d = h16(b);
    const uint32_t qh = le32(b + 2);
    const uint8_t *qs = b + 6;
    for (int j = 0; j < 16; j++) {
        const int x0 = (int)((qs[j] & 0x0Fu) | ((qh >> j) & 1u) << 4) - 16;
        const int x1 = (int)((unsigned)(qs[j] >> 4) | ((qh >> (j + 16)) & 1u) << 4) - 16;
        y[j] = (float)x0 * d;
        y[j + 16] = (float)x1 * d;
    }
}

static void block_q5_1(const uint8_t *b, float *y) {
    const float d = h16(b), m = h16(b + 2);
    const uint32_t qh = le32(b + 4);
    const uint8_t *qs = b + 8;
    for (int j = 0; j < 16; j++) {
        const unsigned x0 = (qs[j] & 0x0Fu) | ((qh >> j) & 1u) << 4;
        const unsigned x1 = (unsigned)(qs[j] >> 4) | ((qh >> (j + 16)) & 1u) << 4;
        y[j] = (float)x0 * d + m;
        y[j + 16] = (float)x1 * d + m;
    }
}

static void block_q8_0(const uint8_t *b, float *y) {
    const float d = h16(b);
    for (int j = 0; j < 32; j++) y[j] = (float)(int8_t)b[2 + j] * d;
}

/* ---- 256-element super-blocks ----------------------------------------------------------------- */

static void block_q2_k(const uint8_t *b, float *y) {
    const uint8_t *scales = b, *qs = b + 16;
    const float d = h16(b + 80), dmin = h16(b + 82);
    for (int e = 0; e < 256; e++) {
        const uint8_t sc = scales[e / 16];
        const float dl = d * (float)(sc & 0x0F), ml = dmin * (float)(sc >> 4);
        const int q = (qs[32 * (e / 128) + e % 32] >> (2 * ((e % 128) / 32))) & 3;
        y[e] = dl * (float)q - ml;
    }
}

static void block_q3_k(const uint8_t *b, float *y) {
    const uint8_t *hmask = b, *qs = b + 32, *s = b + 96;
    const float d = h16(b + 108);
    int sc[16];
    for (int j = 0; j < 16; j++) {
        const int lo = j < 8 ? s[j] & 0x0F : s[j - 8] >> 4;
        const int hi = (s[8 + j % 4] >> (2 * (j / 4))) & 3;
        sc[j] = (lo | hi << 4) - 32;
    }
    for (int e = 0; e < 256; e++) {
        const int h = e / 128, k = (e % 128) / 32, l = e % 32;
        int q = (qs[32 * h + l] >> (2 * k)) & 3;
        if (!((hmask[l] >> (4 * h + k)) & 1)) q -= 4;
        const float dl = d * (float)sc[e / 16];
        y[e] = dl * (float)q;
    }
}

/* Scale and min j (0..7) of a Q4_K / Q5_K super-block, 6 bits each. */
static void scale_min_k4(const uint8_t *s, int j, int *sc, int *m) {
    if (j < 4) {
        *sc = s[j] & 63;
        *m = s[j + 4] & 63;
    } else {
        *sc = (s[j + 4] & 0x0F) | (s[j - 4] >> 6) << 4;
        *m = (s[j + 4] >> 4) | (s[j] >> 6) << 4;
    }
}

static void block_q4_k(const uint8_t *b, float *y) {
    const float d = h16(b), dmin = h16(b + 2);
    const uint8_t *s = b + 4, *qs = b + 16;
    for (int j = 0; j < 8; j++) {
        int sc, m;
        scale_min_k4(s, j, &sc, &m);
        const float d1 = d * (float)sc, m1 = dmin * (float)m;
        const uint8_t *q = qs + 32 * (j / 2);
        const int shift = 4 * (j % 2);
        for (int l = 0; l < 32; l++) y[32 * j + l] = d1 * (float)((q[l] >> shift) & 0x0F) - m1;
    }
}

static void block_q5_k(const uint8_t *b, float *y) {
    const float d = h16(b), dmin = h16(b + 2);
    const uint8_t *s = b + 4, *qh = b + 16, *qs = b + 48;
    for (int j = 0; j < 8; j++) {
        int sc, m;
        scale_min_k4(s, j, &sc, &m);
        const float d1 = d * (float)sc, m1 = dmin * (float)m;
        const uint8_t *q = qs + 32 * (j / 2);
        const int shift = 4 * (j % 2);
        for (int l = 0; l < 32; l++) {
            const int v = ((q[l] >> shift) & 0x0F) | ((qh[l] >> j) & 1) << 4;
            y[32 * j + l] = d1 * (float)v - m1;
        }
    }
}

static void block_q6_k(const uint8_t *b, float *y) {
    const uint8_t *ql = b, *qh = b + 128;
    const int8_t *sc = (const int8_t *)(b + 192);
    const float d = h16(b + 208);
    for (int e = 0; e < 256; e++) {
        const int h = e / 128, k = (e % 128) / 32, l = e % 32;
        const uint8_t lq = ql[64 * h + 32 * (k & 1) + l];
        const int lo = k < 2 ? lq & 0x0F : lq >> 4;
        const int hi = (qh[32 * h + l] >> (2 * k)) & 3;
        const int q = (lo | hi << 4) - 32;
        y[e] = d * (float)sc[e / 16] * (float)q;
    }
}

static const struct dq_type DQ_TYPES[] = {
    {GGML_TYPE_Q4_0, 32, 18, block_q4_0},   {GGML_TYPE_Q4_1, 32, 20, block_q4_1},
    {GGML_TYPE_Q5_0, 32, 22, block_q5_0},   {GGML_TYPE_Q5_1, 32, 24, block_q5_1},
    {GGML_TYPE_Q8_0, 32, 34, block_q8_0},   {GGML_TYPE_Q2_K, 256, 84, block_q2_k},
    {GGML_TYPE_Q3_K, 256, 110, block_q3_k}, {GGML_TYPE_Q4_K, 256, 144, block_q4_k},
    {GGML_TYPE_Q5_K, 256, 176, block_q5_k}, {GGML_TYPE_Q6_K, 256, 210, block_q6_k},
};

static const struct dq_type *find_type(uint32_t type) {
    for (size_t i = 0; i < sizeof DQ_TYPES / sizeof DQ_TYPES[0]; i++)
        if (DQ_TYPES[i].type == type) return &DQ_TYPES[i];
    return NULL;
}

bool trit_ggml_dequant_supported(uint32_t type) { return find_type(type) != NULL; }

bool trit_ggml_dequant_block(uint32_t type, uint32_t *blck, uint32_t *block_bytes) {
    const struct dq_type *t = find_type(type);
    if (blck) *blck = t ? t->blck : 0;
    if (block_bytes) *block_bytes = t ? t->bytes : 0;
    return t != NULL;
}

uint64_t trit_ggml_dequant_bytes(uint32_t type, int64_t n) {
    const struct dq_type *t = find_type(type);
    if (!t || n <= 0 || n % t->blck != 0) return 0;
    return (uint64_t)(n / t->blck) * t->bytes;
}

static enum trit_status check_args(uint32_t type, const void *src, const void *dst, int64_t n,
                                   const struct dq_type **out) {
    const struct dq_type *t = find_type(type);
    if (!t)
        return trit_error(TRIT_ERR_UNSUPPORTED, "ggml dequant: type %s is not one trit dequantizes "
                          "(Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q2_K, Q3_K, Q4_K, Q5_K, Q6_K)", gguf_type_name(type, false));
    if (!src || !dst) return trit_error(TRIT_ERR_INVALID_ARG, "ggml dequant: NULL buffer");
    if (n <= 0 || n % t->blck != 0)
        return trit_error(TRIT_ERR_INVALID_ARG, "ggml dequant: %lld elements of %s is not a positive multiple of its %u-element block",
                          (long long)n, gguf_type_name(type, false), t->blck);
    *out = t;
    return TRIT_OK;
}

enum trit_status trit_ggml_dequant_row(uint32_t type, const void *src, float *dst, int64_t n) {
    const struct dq_type *t = NULL;
    TRIT_TRY(check_args(type, src, dst, n, &t));
    const uint8_t *b = src;
    for (int64_t i = 0; i < n / t->blck; i++) t->block(b + i * t->bytes, dst + i * t->blck);
    return TRIT_OK;
}

enum trit_status trit_ggml_dequant_f16(uint32_t type, const void *src, int64_t n_rows, int64_t n_cols,
                                       uint16_t **out) {
    if (!out) return trit_error(TRIT_ERR_INVALID_ARG, "ggml dequant: NULL output");
    *out = NULL;
    const struct dq_type *t = NULL;
    TRIT_TRY(check_args(type, src, out, n_cols, &t));
    int64_t n, n_bytes;
    if (n_rows <= 0 || !trit_mul_i64(n_rows, n_cols, &n) || !trit_mul_i64(n, 2, &n_bytes))
        return trit_error(TRIT_ERR_INVALID_ARG, "ggml dequant: %lld x %lld is not a valid matrix shape",
                          (long long)n_rows, (long long)n_cols);
    uint16_t *h = trit_alloc((size_t)n_bytes);
    float *row = trit_alloc((size_t)n_cols * sizeof *row);
    if (!h || !row) {
        trit_free(h);
        trit_free(row);
        return trit_error(TRIT_ERR_OUT_OF_MEMORY, "ggml dequant: out of memory for %lld x %lld fp16 values",
                          (long long)n_rows, (long long)n_cols);
    }
    const uint64_t row_bytes = (uint64_t)(n_cols / t->blck) * t->bytes;
    const uint8_t *b = src;
    for (int64_t r = 0; r < n_rows; r++) {
        const uint8_t *rb = b + (uint64_t)r * row_bytes;
        for (int64_t i = 0; i < n_cols / t->blck; i++) t->block(rb + i * t->bytes, row + i * t->blck);
        uint16_t *hr = h + r * n_cols;
        for (int64_t c = 0; c < n_cols; c++) {
            hr[c] = trit_fp32_to_fp16(row[c]);
            if ((hr[c] & 0x7c00u) == 0x7c00u) {
                const float v = row[c];
                trit_free(h);
                trit_free(row);
                return trit_error(TRIT_ERR_FORMAT, "ggml dequant: %s value at row %lld, column %lld is %g, which is not a finite fp16",
                                  gguf_type_name(type, false), (long long)r, (long long)c, (double)v);
            }
        }
    }
    trit_free(row);
    *out = h;
    return TRIT_OK;
}
