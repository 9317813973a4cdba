/*
 * quant.h: the ternary core. Ternarization, activation quantization, the canonical in-memory
 * ternary tensor, and codecs between it and every packed layout trit reads.
 *
 * The numerics contract (docs/design.md section 3), which every backend follows:
 *   weights      alpha = max(mean(|W|), 1e-5) over the group; t = clamp(rint(W / alpha), -1, 1)
 *   activations  s = 127 / max(max|x|, 1e-5); q = clamp(rint(x * s), -128, 127)   (per token)
 *   integer core acc[n] = sum_k t[n,k] * q[k]   (int32, exact)
 *   output       multiply-style scale: y = ((float)acc / s) * alpha
 *                divide-style scale:   y = (float)acc / (s * ws)
 *   group scales per k-block j of 64 columns, ascending: isum_j exact int32 over the block,
 *                y = sum_j ((float)isum_j * (1.0f / s_j)) * d[n, 64 j / G], summed from 0.0f in j
 *                order, s_j the activation scale of block j (per token: s; per block: its own)
 * Rounding is half to even (rintf in the default FE_TONEAREST mode), never roundf.
 */
#ifndef TRIT_QUANT_H
#define TRIT_QUANT_H

#include <stdbool.h>
#include <stdint.h>

#include "core/core.h"

/* ---- canonical ternary matrix ----------------------------------------------------------------
 *
 * A weight matrix W[n_rows][n_cols] (n_rows = output features, n_cols = input features, the
 * GGUF ne = {n_cols, n_rows}), held as 2-bit codes, 4 per byte, row-major:
 *
 *   code = t + 1            t = -1 -> 0b00, t = 0 -> 0b01, t = +1 -> 0b10; 0b11 never occurs
 *   byte  = codes[r * row_bytes + c / 4]
 *   bits  = (byte >> (2 * (c % 4))) & 3         element c % 4 == 0 in the low bit pair
 *
 *   row_bytes = ceil(n_cols / 4). The padding codes of the last byte of a row are 0b01 (zero),
 *   so a row's bytes can be read whole.
 *
 * W = t * scale when scale_kind is TRIT_SCALE_MUL (absmean, bitnet.cpp, 2B-4T AutoBitLinear),
 * W = t / scale when scale_kind is TRIT_SCALE_DIV (transformers BitLinear: weight_scale = 1/mean|W|).
 *
 * Group scales (llama.cpp Q2_0, Ternary-Bonsai): when group > 0, W[r][c] = t * group_scales[r *
 * n_groups + c / group], n_groups = ceil(n_cols / group); scale is then 1 and scale_kind MUL, and
 * code 0b11 (t = +2, Q2_0's fourth code) is legal. group is a multiple of TRIT_GROUP_UNIT (64, the
 * k-block of every kernel), so that a k-block never straddles two groups. Products with such a
 * matrix follow the group rule of the numerics contract (cpu.h: trit_gemm_group_ref).
 */
#define TRIT_GROUP_UNIT 64
enum trit_scale_kind {
    TRIT_SCALE_MUL = 0,
    TRIT_SCALE_DIV = 1,
};

struct trit_ternary {
    int64_t n_rows;     /* output features */
    int64_t n_cols;     /* input features */
    int64_t row_bytes;  /* ceil(n_cols / 4) */
    uint8_t *codes;     /* (n_rows, row_bytes), owned; from trit_alloc */
    float scale;
    enum trit_scale_kind scale_kind;
    int64_t group;        /* 0: one scale for the tensor; else columns per group scale */
    float *group_scales;  /* (n_rows, n_groups) multipliers when group > 0, owned; from trit_alloc */
};

#define TRIT_CODE_NEG 0u  /* t = -1 */
#define TRIT_CODE_ZERO 1u /* t =  0 */
#define TRIT_CODE_POS 2u  /* t = +1 */
#define TRIT_CODE_POS2 3u /* t = +2: group-scaled tensors only */

/* Allocates codes for an n_rows x n_cols matrix (both >= 1), every code TRIT_CODE_ZERO, scale 1,
 * MUL. *w is overwritten (not freed) first and left zeroed on error. */
enum trit_status trit_ternary_init(struct trit_ternary *w, int64_t n_rows, int64_t n_cols);
/* trit_ternary_init with group scales: group a positive multiple of TRIT_GROUP_UNIT (else
 * TRIT_ERR_INVALID_ARG), every group scale 1. */
enum trit_status trit_ternary_init_grouped(struct trit_ternary *w, int64_t n_rows, int64_t n_cols, int64_t group);
/* Group scales per row: ceil(n_cols / group), or 0 for a tensor with one scale. */
static inline int64_t trit_ternary_n_groups(const struct trit_ternary *w) {
    return w->group > 0 ? (w->n_cols + w->group - 1) / w->group : 0;
}
/* Releases the codes and group scales; accepts a zeroed struct. Leaves *w zeroed. */
void trit_ternary_free(struct trit_ternary *w);

static inline int trit_ternary_get(const struct trit_ternary *w, int64_t r, int64_t c) {
    uint8_t byte = w->codes[r * w->row_bytes + c / 4];
    return (int)((byte >> (2 * (c % 4))) & 3u) - 1;
}
static inline void trit_ternary_set(struct trit_ternary *w, int64_t r, int64_t c, int t) {
    uint8_t *byte = &w->codes[r * w->row_bytes + c / 4];
    int shift = (int)(2 * (c % 4));
    *byte = (uint8_t)((*byte & ~(3u << shift)) | ((unsigned)(t + 1) << shift));
}
/* true when both hold the same codes, shape, scale, scale kind and group scales (scales compared
 * bit for bit). */
bool trit_ternary_equal(const struct trit_ternary *a, const struct trit_ternary *b);

/* ---- ternarization ---------------------------------------------------------------------------- */

/* alpha = max(mean(|x|), 1e-5) over n values, accumulated in double then rounded to float. */
float trit_absmean(const float *x, int64_t n);

/* Ternarizes a row-major float matrix w[n_rows][n_cols] with one alpha over the whole tensor:
 * out gets the codes, scale = alpha, scale_kind = MUL. out is initialized here (left zeroed on
 * error). t = clamp(rintf(w / alpha), -1, 1), the quotient in fp32. A NaN or infinite weight is
 * TRIT_ERR_INVALID_ARG. */
enum trit_status trit_ternarize(const float *w, int64_t n_rows, int64_t n_cols,
                                struct trit_ternary *out);

/* Grouped ternarization (tensor-parallel "grouped" mode): the columns [c0, c1) of w, with
 * alpha taken over that block only. out is an n_rows x (c1 - c0) matrix. Pass c0 = 0 and
 * c1 = n_cols with rows [r0, r1) selected by the caller's pointer for row groups. */
enum trit_status trit_ternarize_cols(const float *w, int64_t n_rows, int64_t n_cols, int64_t c0,
                                     int64_t c1, struct trit_ternary *out);

/* Recovers an already-ternary float tensor: when every nonzero |w| is the same value c (up to
 * the float's own bits), t = sign(w) and scale = c exactly, with no absmean shrinkage. Returns
 * TRIT_ERR_UNSUPPORTED (and leaves out zeroed) if the magnitudes differ. An all-zero tensor
 * gets scale 1. */
enum trit_status trit_ternary_from_scaled(const float *w, int64_t n_rows, int64_t n_cols,
                                          struct trit_ternary *out);

/* Recovers a group-scaled ternary float tensor (an HF folder of a Q2_0-style model): for every
 * group of `group` consecutive columns of a row, every nonzero |w| must have the same bits d (or be
 * exactly 2d, code +2, when allow_pos2 and the group's other nonzero weights are +-d); then t = w / d
 * and the group's scale is d. An all-zero group gets scale 1. TRIT_ERR_UNSUPPORTED (out zeroed) when
 * a group does not fit, naming it; TRIT_ERR_INVALID_ARG for a bad group or a non-finite weight. */
enum trit_status trit_ternary_from_group_scaled(const float *w, int64_t n_rows, int64_t n_cols, int64_t group,
                                                bool allow_pos2, struct trit_ternary *out);

/* ---- activation quantization ------------------------------------------------------------------ */

#define TRIT_ACT_QMAX 127.0f
#define TRIT_ACT_EPS 1e-5f
#define TRIT_WEIGHT_EPS 1e-5f

/* Quantizes one token row x[k] to q[k] and returns s = 127 / max(max|x|, 1e-5). q = rintf(x * s),
 * the product in fp32, clamped in fp32 to [-128, 127]. x should be finite; a NaN element gives 0
 * (never undefined behaviour). */
float trit_quantize_row_i8(const float *x, int64_t k, int8_t *q);
/* Block quantization (models trained without int8 activations, e.g. Ternary-Bonsai: struct
 * trit_hparams act_block): the row is cut into blocks of `block` values (the last may be shorter)
 * and each is quantized on its own by trit_quantize_row_i8; s[j] is block j's scale, ceil(k / block)
 * of them. block = 0 quantizes the row whole (one scale). */
void trit_quantize_row_i8_blocks(const float *x, int64_t k, int64_t block, int8_t *q, float *s);
/* Its two halves, for a row whose absmax is taken over several ranks (tensor parallelism, exact
 * mode): the scale of an absmax, and q = the clamped rintf(x * s) with a given s. */
float trit_act_scale(float amax);
void trit_quantize_row_i8_scaled(const float *x, int64_t k, float s, int8_t *q);

/* ---- packed layouts --------------------------------------------------------------------------
 *
 * Each decoder reads a packed buffer of exactly *_bytes() bytes (callers check the size first) and
 * fills an initialized canonical tensor of the intended shape; each encoder writes exactly that
 * many bytes. *_bytes() returns -1 for a shape the layout cannot hold or a size that overflows.
 * A decoder returns TRIT_ERR_FORMAT if it meets a code that means nothing (2-bit code 3, a nonzero
 * code in the zero padding of a TQ row tail), with the element named in trit_last_error(); the
 * codes are then unspecified. (A TQ1_0 byte always decodes to digits 0..2: see codecs.c.)
 * Encoders that store a scale store a multiplier: scale for MUL, 1 / scale for DIV.
 */

/* HF transformers packed uint8 [ceil(n_rows/4), n_cols]: bit pair i of byte (p, c) holds row
 * i * P + p with P = ceil(n_rows/4); code = t + 1. The scale travels separately
 * (weight_scale), so it is not touched here. Bit pairs of rows >= n_rows are padding: written as
 * 0b00 (as transformers' pack_weights leaves them) and never read. */
int64_t trit_hf_packed_bytes(int64_t n_rows, int64_t n_cols);
enum trit_status trit_hf_decode(const uint8_t *packed, struct trit_ternary *w);
enum trit_status trit_hf_encode(const struct trit_ternary *w, uint8_t *packed);

/* GGUF TQ2_0 (ggml type 35): blocks of 256 along a row, 66 bytes each: qs[64], fp16 d.
 * Element e of a block: byte 32 * (e / 128) + e % 32, bits 2 * ((e % 128) / 32); code = t + 1.
 * A row whose length is not a multiple of 256 is padded with zeros to a whole block (GGUF itself
 * requires whole blocks; the codec accepts any length so that tails are tested).
 * Decoding takes the scale from the blocks: every block that holds a nonzero weight must carry the
 * same d (llama.cpp's absmax of a ternary-times-c tensor is c); else TRIT_ERR_UNSUPPORTED.
 * A tensor with no nonzero weight decodes with scale 1. A non-finite d in a block that holds a
 * nonzero weight is TRIT_ERR_FORMAT; an all-zero block may carry any d.
 * Encoding writes d = scale (rounded to fp16) in every block, as llama.cpp's quantizer would for a
 * ternary tensor, or d = 1 when `unit_scale` is set (the scale then travels in its own tensor).
 * A scale that rounds to fp16 infinity or zero is TRIT_ERR_UNSUPPORTED. */
#define TRIT_QK_K 256
#define TRIT_TQ2_0_BLOCK_BYTES 66
#define TRIT_TQ1_0_BLOCK_BYTES 54
int64_t trit_tq2_0_bytes(int64_t n_rows, int64_t n_cols);
enum trit_status trit_tq2_0_decode(const uint8_t *packed, struct trit_ternary *w);
enum trit_status trit_tq2_0_encode(const struct trit_ternary *w, bool unit_scale, uint8_t *packed);

/* GGUF TQ1_0 (ggml type 34): blocks of 256, 54 bytes: qs[48] (5 trits a byte, base 3, fixed
 * point), qh[4] (4 trits a byte, then a zero 5th trit that decoding ignores, as llama.cpp does),
 * fp16 d. Same scale rules and row padding as TQ2_0. */
int64_t trit_tq1_0_bytes(int64_t n_rows, int64_t n_cols);
enum trit_status trit_tq1_0_decode(const uint8_t *packed, struct trit_ternary *w);
enum trit_status trit_tq1_0_encode(const struct trit_ternary *w, bool unit_scale, uint8_t *packed);

/* bitnet.cpp I2_S (x86 layout, ggml type 36 in bitnet.cpp files): the row-major flattened tensor
 * in blocks of 128 elements -> 32 bytes; byte b of a block holds elements b, b+32, b+64, b+96 in
 * bits 7:6, 5:4, 3:2, 1:0; code 0 = -1, 1 = 0, 2 = +1. Then one fp32 scale (multiply) at byte
 * n/4 and 28 bytes of padding: n/4 + 32 bytes in all. The element count must be a multiple of
 * 128 (as in every bitnet.cpp file); else TRIT_ERR_UNSUPPORTED. The encoder zeroes the padding;
 * the decoder does not read it and refuses a non-finite scale. */
#define TRIT_I2S_BLOCK 128
int64_t trit_i2s_bytes(int64_t n_rows, int64_t n_cols);
enum trit_status trit_i2s_decode(const uint8_t *packed, struct trit_ternary *w);
enum trit_status trit_i2s_encode(const struct trit_ternary *w, uint8_t *packed);

/* bitnet.cpp on ARM packs I2_S differently (its QK_I2_S is 64 there): blocks of 64 elements -> 16
 * bytes, byte b of a block holding elements b, b+16, b+32, b+48 in bits 7:6, 5:4, 3:2, 1:0; codes,
 * scale and size as above, the element count a multiple of 64. The file says nothing about which
 * machine quantized it (same type id, same metadata), so the caller chooses: trit_model_params
 * i2s_layout, `--i2s-layout arm`. The x86 functions above are these with TRIT_I2S_X86. */
/* enum trit_i2s_layout (TRIT_I2S_X86, TRIT_I2S_ARM) is in include/trit.h. */
int64_t trit_i2s_bytes_layout(int64_t n_rows, int64_t n_cols, enum trit_i2s_layout layout);
enum trit_status trit_i2s_decode_layout(const uint8_t *packed, enum trit_i2s_layout layout, struct trit_ternary *w);
enum trit_status trit_i2s_encode_layout(const struct trit_ternary *w, enum trit_i2s_layout layout, uint8_t *packed);

/* llama.cpp Q2_0 (ggml type 42): blocks of G weights along a row, each 2 + G / 4 bytes: fp16 d, then
 * the codes, element e at byte 2 + e / 4, bits 2 * (e % 4); value = (code - 1) * d, code 0..3, so
 * the canonical code is the file's code. Mainline ggml has G = 64 (18-byte blocks); PrismML's branch,
 * which wrote the Ternary-Bonsai files, has G = 128 (34-byte blocks) under the same type id: callers
 * tell them apart by the tensor's byte span (model_gguf.c). n_cols must be a multiple of G (as GGUF
 * requires whole blocks); G is 64 or 128, else trit_q2_0_bytes returns -1.
 * Decoding fills a tensor initialized by trit_ternary_init_grouped(.., G) with codes and group scales
 * d; a non-finite d is TRIT_ERR_FORMAT (naming the block). Encoding needs w->group == G and writes
 * each group scale rounded to fp16; one that rounds to infinity is TRIT_ERR_UNSUPPORTED. */
int64_t trit_q2_0_bytes(int64_t n_rows, int64_t n_cols, int64_t group);
enum trit_status trit_q2_0_decode(const uint8_t *packed, struct trit_ternary *w);
enum trit_status trit_q2_0_encode(const struct trit_ternary *w, uint8_t *packed);

/* ---- half-precision conversions (round to nearest even) --------------------------------------- */
float trit_fp16_to_fp32(uint16_t h);
uint16_t trit_fp32_to_fp16(float f);
float trit_bf16_to_fp32(uint16_t h);
uint16_t trit_fp32_to_bf16(float f);

#endif /* TRIT_QUANT_H */
