/*
 * ggml_dequant.h: dequantizers for the ggml block types that llama-quantize writes for the
 * non-ternary tensors of users' BitNet GGUFs (token_embd / output as Q6_K, Q8_0, Q4_K, or Q4_0
 * where a row does not divide into 256; docs/formats.md sections 1 and 4).
 *
 * Supported ggml type ids (io/gguf.h enum ggml_type), block size in elements / bytes per block:
 *   Q4_0 (2)  32 / 18     Q4_1 (3)  32 / 20     Q5_0 (6)  32 / 22     Q5_1 (7)  32 / 24
 *   Q8_0 (8)  32 / 34     Q2_K (10) 256 / 84    Q3_K (11) 256 / 110   Q4_K (12) 256 / 144
 *   Q5_K (13) 256 / 176   Q6_K (14) 256 / 210
 * Every field is read byte by byte, little-endian, so the host's endianness and alignment do not
 * matter. The float arithmetic follows ggml's dequantize_row_* (fp16 scales widened exactly, then
 * the same products in fp32), so values match llama.cpp's CPU dequantization.
 */
#ifndef TRIT_GGML_DEQUANT_H
#define TRIT_GGML_DEQUANT_H

#include <stdbool.h>
#include <stdint.h>

#include "core/core.h"

/* true when `type` is one of the block types above. Ids >= 36 are never supported here. */
bool trit_ggml_dequant_supported(uint32_t type);

/* Elements and bytes per block of a supported type; false (and zeros) otherwise. */
bool trit_ggml_dequant_block(uint32_t type, uint32_t *blck, uint32_t *block_bytes);

/* Bytes that n elements of `type` occupy; 0 when the type is unsupported or n is not a positive
 * multiple of the block. */
uint64_t trit_ggml_dequant_bytes(uint32_t type, int64_t n);

/* Dequantizes n elements (n / blck consecutive blocks at src) into dst[0..n-1], fp32.
 * TRIT_ERR_UNSUPPORTED for a type not listed above; TRIT_ERR_INVALID_ARG for NULL pointers or
 * n that is not a positive multiple of the block. */
enum trit_status trit_ggml_dequant_row(uint32_t type, const void *src, float *dst, int64_t n);

/* A whole row-major matrix of n_rows rows, n_cols elements each (rows packed back to back, as in
 * a GGUF tensor), into a new trit_alloc buffer of n_rows * n_cols fp16 values (*out; release with
 * trit_free), each the round-to-nearest-even fp16 of the fp32 dequantized value.
 * Besides the errors of trit_ggml_dequant_row, a value that is NaN or infinite once in fp16 (a
 * block scale that is not finite, or a product past 65504) is TRIT_ERR_FORMAT naming its row and
 * column; *out is then NULL. */
enum trit_status trit_ggml_dequant_f16(uint32_t type, const void *src, int64_t n_rows, int64_t n_cols,
                                       uint16_t **out);

#endif /* TRIT_GGML_DEQUANT_H */
