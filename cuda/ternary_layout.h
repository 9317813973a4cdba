/*
 * ternary_layout.h: the CUDA backend's device layouts for ternary weights and int8 activations,
 * and the per-thread arithmetic of its kernels (decode, add-only select, mma fragment mapping),
 * written once as TRIT_HD functions that run on the GPU and in the CPU tests
 * (tests/test_cuda_layout.c, tests/test_cuda_decode.c). C11 and CUDA C++; no CUDA types.
 *
 * ==== Weights: "tile layout" (one layout for the dp4a GEMV, the add-only GEMV and the mma GEMM)
 *
 * W (N rows = output features, K cols = input features) is padded to N_pad = ceil(N/16)*16 rows and
 * K_pad = ceil(K/128)*128 cols with t = 0 and cut into tiles of 16 rows x 128 cols = 512 bytes.
 * Codes are biased, code = t + 1 in {0, 1, 2} (as in the canonical tensor), 2 bits each.
 *
 *   tile (R, S), R = strip of rows 16R..16R+15, S = chunk of cols 128S..128S+127:
 *       byte offset ((R * n_chunks) + S) * 512, n_chunks = K_pad / 128   (strip-major: a warp that
 *       walks K reads one contiguous stream)
 *   inside a tile, lane l = 4g + t (g = l / 4, t = l % 4) owns bytes 16l..16l+15 = one uint4,
 *       words j = 0..3 of it are the 4 mma k-steps of 32 cols: cols 128S + 32j .. +31
 *   inside word j, bit pair 2i of byte b (i, b = 0..3) holds the element that register a_i, byte b
 *       of the A fragment of mma.m16n8k32 .row .s8 (PTX ISA "Matrix Fragments for mma.m16n8k32")
 *       holds for lane l:
 *           row = 16R + g + 8 * (i & 1)
 *           col = 128S + 32j + 16 * (i >> 1) + 4t + b
 *
 *       word j of lane l (32 bits, little endian; each cell = one 2-bit code, "r+8" = row g+8):
 *
 *        bit 31                                                                          bit 0
 *        | byte 3            | byte 2            | byte 1            | byte 0            |
 *        | i3  i2  i1  i0    | i3  i2  i1  i0    | i3  i2  i1  i0    | i3  i2  i1  i0    |
 *   row  | g+8 g   g+8 g     | g+8 g   g+8 g     | g+8 g   g+8 g     | g+8 g   g+8 g     |
 *   col  | c+19 c+19 c+3 c+3 | c+18 c+18 c+2 c+2 | c+17 c+17 c+1 c+1 | c+16 c+16 c   c   |
 *                                                           (c = 128S + 32j + 4t)
 *
 *   Decode: a_i = (word >> 2i) & 0x03030303 gives four bytes t+1 of ONE row at FOUR CONSECUTIVE
 *   cols: directly the mma A register a_i, and directly a dp4a operand against the activation word
 *   of those 4 cols. One shift + one lop3 per 4 weights; no per-byte subtract: the bias is removed
 *   once per output with the activation sum, x.t = x.(t+1) - sum(x).
 *
 *   A warp's 16-byte loads cover one whole 512-byte tile: fully coalesced, 64 weights per lane.
 *
 * ==== Activations: "act layout" (int8, per token row of K_pad bytes, zero padded)
 *
 *   col k (S = k / 128, j = k % 128 / 32, h = k % 32 / 16, t = k % 16 / 4, b = k % 4) sits at
 *       byte 128S + 32t + 8j + 4h + b of its row.
 *   So lane t's activation words for the whole chunk S are the 32 contiguous bytes at 128S + 32t:
 *   word 2j + h = cols 128S + 32j + 16h + 4t .. +3 = the dp4a partner of a_{2h}, a_{2h+1} of word j,
 *   and exactly the B fragment (b0 = word 2j, b1 = word 2j+1) of token g for k-step j. Two 16-byte
 *   loads per lane per chunk per token, for the GEMV and the GEMM alike.
 *
 * ==== Group scales (the group rule: quant.h, docs/design.md section 3)
 *
 *   k-block j (cols 64j .. 64j + 63) is k-steps 2 (j % 2) and 2 (j % 2) + 1 of chunk j / 2: words
 *   0, 1 of a lane's uint4 hold block 2S, words 2, 3 block 2S + 1, and the 4 lanes of a group
 *   together hold all 64 cols of both blocks for rows g and g + 8. A group-scaled matrix keeps its
 *   scales beside the tiles, fp32 (n_rows, n_groups) row major. Its codes may hold 3 (t = +2): the
 *   decode reads it as t + 1 = 3 and dp4a sums it as it should; the add-only masks cannot (that
 *   GEMV refuses such a matrix).
 *
 * ==== Add-only GEMV arithmetic (no multiply of weight by activation)
 *
 *   Masks from the packed codes (sign-replicating byte permute, prmt):
 *       P_i = 0xFF in byte b where code == 2 (t = +1),  Q_i = 0xFF where code != 0 (t != -1)
 *   with the activation bytes biased, xb = x ^ 0x80 = x + 128 in [0, 255]:
 *       u = (xb & P) | (~xb & ~Q)  ->  t=+1: x + 128,  t=-1: 127 - x,  t=0: 0       (one lop3)
 *   u is widened into two 16-bit lanes (byte permute) and summed with plain integer adds. Then
 *       sum_k t_k x_k = sum u - (128 * n_pos + 127 * n_neg)        (a per-row constant, "row bias")
 */
#ifndef TRIT_TERNARY_LAYOUT_H
#define TRIT_TERNARY_LAYOUT_H

#include <stdint.h>
#include <string.h>

#if defined(__CUDACC__)
#define TRIT_HD static __host__ __device__ __forceinline__
#else
#define TRIT_HD static inline
#endif

/* ---- geometry ------------------------------------------------------------------------------- */

#define TRIT_TL_STRIP 16      /* rows per tile: the M of mma.m16n8k32 */
#define TRIT_TL_KSTEP 32      /* cols per mma k-step, per 32-bit word of a lane */
#define TRIT_TL_CHUNK 128     /* cols per tile: 4 k-steps, one 16-byte load per lane */
#define TRIT_TL_TILE_BYTES 512 /* 16 * 128 / 4: 32 lanes x 16 bytes */
#define TRIT_TL_ZERO_BYTE 0x55u /* four codes 0b01 (t = 0): the padding */

#define TRIT_MMA_M 16
#define TRIT_MMA_N 8
#define TRIT_MMA_K 32

/* The largest K the kernels accept: |sum (t+1) q| <= 2 * 128 * K and sum u <= 255 * K stay below
 * 2^31 with margin (the reference's own precondition is K <= 2^24). */
#define TRIT_TL_MAX_COLS ((int64_t)1 << 22)

TRIT_HD int64_t trit_tl_rows_pad(int64_t n_rows) { return (n_rows + 15) / 16 * 16; }
TRIT_HD int64_t trit_tl_cols_pad(int64_t n_cols) { return (n_cols + 127) / 128 * 128; }
TRIT_HD int64_t trit_tl_bytes(int64_t n_rows, int64_t n_cols) {
    return trit_tl_rows_pad(n_rows) * trit_tl_cols_pad(n_cols) / 4;
}

/* ---- mma.m16n8k32 .row.col .s8.s8.s32 fragment mapping (PTX ISA, per lane) ------------------ */

/* A (16 x 32, row major): register reg (0..3), byte b (0..3) of lane -> (row, col). */
TRIT_HD int trit_mma_a_row(int lane, int reg) { return (lane >> 2) + 8 * (reg & 1); }
TRIT_HD int trit_mma_a_col(int lane, int reg, int b) { return 16 * (reg >> 1) + 4 * (lane & 3) + b; }
/* B (32 x 8, "col": each register 4 consecutive k of one column n): register reg (0..1), byte b. */
TRIT_HD int trit_mma_b_k(int lane, int reg, int b) { return 16 * reg + 4 * (lane & 3) + b; }
TRIT_HD int trit_mma_b_n(int lane) { return lane >> 2; }
/* C/D (16 x 8, s32): register reg (0..3) -> (row, col). */
TRIT_HD int trit_mma_c_row(int lane, int reg) { return (lane >> 2) + 8 * (reg >> 1); }
TRIT_HD int trit_mma_c_col(int lane, int reg) { return 2 * (lane & 3) + (reg & 1); }

/* ---- tile layout: element <-> (byte, bit pair) ---------------------------------------------- */

struct trit_tl_pos {
    int64_t byte; /* offset in the packed buffer */
    int shift;    /* bit position of the 2-bit code in that byte: 2 * i */
};

/* Where element (r, c) of the padded matrix lives. n_cols_pad = trit_tl_cols_pad(K). */
TRIT_HD struct trit_tl_pos trit_tl_locate(int64_t r, int64_t c, int64_t n_cols_pad) {
    const int64_t n_chunks = n_cols_pad / TRIT_TL_CHUNK;
    const int64_t strip = r / TRIT_TL_STRIP, chunk = c / TRIT_TL_CHUNK;
    const int rr = (int)(r % TRIT_TL_STRIP), cc = (int)(c % TRIT_TL_CHUNK);
    const int g = rr & 7, row_hi = rr >> 3;       /* row = g + 8 * (i & 1) */
    const int j = cc >> 5, col_hi = (cc >> 4) & 1; /* col = 32j + 16 * (i >> 1) + 4t + b */
    const int t = (cc >> 2) & 3, b = cc & 3;
    const int i = row_hi + 2 * col_hi, lane = 4 * g + t;
    struct trit_tl_pos p;
    p.byte = (strip * n_chunks + chunk) * TRIT_TL_TILE_BYTES + 16 * lane + 4 * j + b;
    p.shift = 2 * i;
    return p;
}

/* The inverse: the element (r, c) whose code sits at bit pair `shift` of packed byte `byte`. */
TRIT_HD void trit_tl_element(int64_t byte, int shift, int64_t n_cols_pad, int64_t *r, int64_t *c) {
    const int64_t n_chunks = n_cols_pad / TRIT_TL_CHUNK;
    const int64_t tile = byte / TRIT_TL_TILE_BYTES;
    const int in_tile = (int)(byte % TRIT_TL_TILE_BYTES);
    const int lane = in_tile >> 4, j = (in_tile >> 2) & 3, b = in_tile & 3, i = shift >> 1;
    *r = (tile / n_chunks) * TRIT_TL_STRIP + trit_mma_a_row(lane, i);
    *c = (tile % n_chunks) * TRIT_TL_CHUNK + TRIT_TL_KSTEP * j + trit_mma_a_col(lane, i, b);
}

/* Index of lane `lane`'s uint4 of tile (strip, chunk), counted in 16-byte units. */
TRIT_HD int64_t trit_tl_lane_vec(int64_t strip, int64_t chunk, int64_t n_chunks, int lane) {
    return (strip * n_chunks + chunk) * (TRIT_TL_TILE_BYTES / 16) + lane;
}

/* ---- act layout: col <-> byte position in a row of K_pad bytes ------------------------------ */

TRIT_HD int64_t trit_al_pos(int64_t k) {
    const int64_t chunk = k >> 7;
    const int cc = (int)(k & 127);
    const int j = cc >> 5, h = (cc >> 4) & 1, t = (cc >> 2) & 3, b = cc & 3;
    return (chunk << 7) | (int64_t)((t << 5) | (j << 3) | (h << 2) | b);
}
TRIT_HD int64_t trit_al_col(int64_t pos) {
    const int64_t chunk = pos >> 7;
    const int pp = (int)(pos & 127);
    const int t = pp >> 5, j = (pp >> 3) & 3, h = (pp >> 2) & 1, b = pp & 3;
    return (chunk << 7) | (int64_t)((j << 5) | (h << 4) | (t << 2) | b);
}
/* Word form for writers that produce 4 consecutive cols at once: col word kw (cols 4kw..4kw+3)
 * goes to word trit_al_word(kw) of the row. */
TRIT_HD int64_t trit_al_word(int64_t kw) { return trit_al_pos(kw * 4) >> 2; }

/* ---- per-thread arithmetic ------------------------------------------------------------------ */

/* Byte permute, PTX prmt.b32 generic mode: result byte n = source byte sel[n] & 7 of {b, a}
 * (a = bytes 0..3, b = bytes 4..7), or its sign bit replicated when sel[n] & 8. */
TRIT_HD uint32_t trit_prmt(uint32_t a, uint32_t b, uint32_t sel) {
#if defined(__CUDA_ARCH__)
    uint32_t d;
    asm("prmt.b32 %0, %1, %2, %3;" : "=r"(d) : "r"(a), "r"(b), "r"(sel));
    return d;
#else
    const uint64_t src = ((uint64_t)b << 32) | a;
    uint32_t d = 0;
    for (int n = 0; n < 4; n++) {
        const uint32_t nib = (sel >> (4 * n)) & 0xFu;
        uint32_t byte = (uint32_t)(src >> (8 * (nib & 7u))) & 0xFFu;
        if (nib & 8u) byte = (byte & 0x80u) ? 0xFFu : 0u;
        d |= byte << (8 * n);
    }
    return d;
#endif
}

/* c + sum over 4 bytes of (int8)a * (int8)b: dp4a.s32.s32. */
TRIT_HD int32_t trit_dp4a(uint32_t a, uint32_t b, int32_t c) {
#if defined(__CUDA_ARCH__)
    return __dp4a((int)a, (int)b, c);
#else
    int32_t s = c;
    for (int n = 0; n < 4; n++)
        s += (int32_t)(int8_t)(uint8_t)(a >> (8 * n)) * (int32_t)(int8_t)(uint8_t)(b >> (8 * n));
    return s;
#endif
}

/* Register a_i of a packed word: 4 bytes t+1 in {0, 1, 2} (see the diagram). */
TRIT_HD uint32_t trit_tl_decode(uint32_t word, int i) { return (word >> (2 * i)) & 0x03030303u; }

/* Add-only path. Prepare once per word: word_or = word | word << 1 (bit 2i+1 of a byte = code != 0). */
TRIT_HD uint32_t trit_add_word_or(uint32_t word) { return word | (word << 1); }
/* Byte masks of register i: *pos = 0xFF where t = +1; *nonneg = 0xFF where t != -1. The code's
 * high bit (pos) and (low | high) bit (nonneg) are shifted to bit 7 of their byte and replicated. */
TRIT_HD void trit_add_masks(uint32_t word, uint32_t word_or, int i, uint32_t *pos, uint32_t *nonneg) {
    const int sh = 6 - 2 * i;
    *pos = trit_prmt(word << sh, 0u, 0xBA98u);
    *nonneg = trit_prmt(word_or << sh, 0u, 0xBA98u);
}
/* Biased activation word: xb = x ^ 0x80808080, bytes x + 128 in [0, 255]. */
TRIT_HD uint32_t trit_add_bias_act(uint32_t x) { return x ^ 0x80808080u; }
/* Sign select, one lop3: byte = x + 128 (t = +1), 127 - x (t = -1), 0 (t = 0). */
TRIT_HD uint32_t trit_add_select(uint32_t xb, uint32_t pos, uint32_t nonneg) {
    return (xb & pos) | (~xb & ~nonneg);
}
/* The 4 unsigned bytes of u as two 16-bit lanes, bytes 0 + 1 in the low lane, 2 + 3 in the high
 * (each lane <= 510): add it to a lane accumulator with a plain 32-bit add. */
TRIT_HD uint32_t trit_add_widen(uint32_t u) {
    return trit_prmt(u, 0u, 0x4240u) + trit_prmt(u, 0u, 0x4341u);
}
/* Total of a lane accumulator. PRECOND: at most 128 widened words were added (128 * 510 < 2^16). */
TRIT_HD int32_t trit_add_lanes(uint32_t lanes) { return (int32_t)((lanes & 0xFFFFu) + (lanes >> 16)); }
/* Per-row constant of the add-only path from the row's codes: 128 * n_pos + 127 * n_neg. */
TRIT_HD int32_t trit_add_row_bias(int32_t n_pos, int32_t n_neg) { return 128 * n_pos + 127 * n_neg; }

/* ---- activation quantization, one element (the CPU's trit_quantize_row_i8 exactly) --------- */

/* q = clamp(rint(x * s), -128, 127), half to even; NaN -> 0 (as the CPU reference). */
TRIT_HD int32_t trit_act_quant_one(float x, float s) {
#if defined(__CUDA_ARCH__)
    const int v = __float2int_rn(__fmul_rn(x, s)); /* NaN -> 0, saturates out of range */
    return v > 127 ? 127 : v < -128 ? -128 : v;
#else
    const float v = __builtin_rintf(x * s);
    return v >= 127.0f ? 127 : v <= -128.0f ? -128 : v == v ? (int32_t)v : 0;
#endif
}

/* ---- fp32 epilogue, one element (trit_epilogue_ref exactly: IEEE ops in this order) -------- */

TRIT_HD float trit_epilogue_one(int32_t acc, float act_scale, float w_scale, int scale_div) {
#if defined(__CUDA_ARCH__)
    const float a = __int2float_rn(acc);
    return scale_div ? __fdiv_rn(a, __fmul_rn(act_scale, w_scale)) : __fmul_rn(__fdiv_rn(a, act_scale), w_scale);
#else
    const float a = (float)acc;
    return scale_div ? a / (act_scale * w_scale) : (a / act_scale) * w_scale;
#endif
}

/* The int32 bits of an fp32 value, as a float. */
TRIT_HD float trit_f32_bits(int32_t bits) {
#if defined(__CUDA_ARCH__)
    return __int_as_float(bits);
#else
    float v;
    memcpy(&v, &bits, sizeof v);
    return v;
#endif
}

/* What a consumer of a matmul's output reads: scale_div 0 or 1, the epilogue of int32 sums;
 * TRIT_EPI_F32 (2), an fp32 value already scaled (the group rule's output, its bits in the int32
 * buffer the consumers read), taken as it is. */
#define TRIT_EPI_F32 2
TRIT_HD float trit_pending_one(int32_t acc, float act_scale, float w_scale, int scale_div) {
    return scale_div == TRIT_EPI_F32 ? trit_f32_bits(acc) : trit_epilogue_one(acc, act_scale, w_scale, scale_div);
}

/* ---- the group rule, one step (trit_gemm_group_ref exactly: docs/design.md section 3) -------- */

/* The activation scale of a row or block whose absmax is amax: 127 / max(amax, 1e-5), IEEE divide
 * (quant.h's trit_act_scale with TRIT_ACT_QMAX and TRIT_ACT_EPS; this header includes no host
 * header, and tests/test_cuda_decode.c checks the two agree). */
TRIT_HD float trit_act_scale_of(float amax) {
#if defined(__CUDA_ARCH__)
    return __fdiv_rn(127.0f, fmaxf(amax, 1e-5f));
#else
    return 127.0f / (amax > 1e-5f ? amax : 1e-5f);
#endif
}

/* The reference's inv = 1.0f / s, IEEE divide. */
TRIT_HD float trit_group_inv(float s) {
#if defined(__CUDA_ARCH__)
    return __fdiv_rn(1.0f, s);
#else
    return 1.0f / s;
#endif
}

/* y + ((float)isum * inv) * d: k-block j's term added to the running sum, three IEEE ops in this
 * order, none contracted into an FMA (nvcc contracts a * b + c unless told not to). */
TRIT_HD float trit_group_step(float y, int32_t isum, float inv, float d) {
#if defined(__CUDA_ARCH__)
    return __fadd_rn(y, __fmul_rn(__fmul_rn(__int2float_rn(isum), inv), d));
#else
    return y + ((float)isum * inv) * d;
#endif
}

/* ---- launch arithmetic ---------------------------------------------------------------------- */

/* Split-K factor of the GEMM: enough CTAs to fill 2 waves of n_sm, at least 4 chunks (512 cols) per
 * split, at most 16 splits. */
TRIT_HD int trit_gemm_pick_split(int64_t n_ctas, int64_t n_chunks, int n_sm) {
    int64_t split = n_ctas >= 2 * (int64_t)n_sm ? 1 : (2 * (int64_t)n_sm + n_ctas - 1) / n_ctas;
    const int64_t by_k = n_chunks / 4;
    if (split > by_k) split = by_k;
    if (split > 16) split = 16;
    return split < 1 ? 1 : (int)split;
}
/* Chunks [*begin, *end) of split `z` of `split`: balanced, contiguous, covering [0, n_chunks). */
TRIT_HD void trit_split_range(int64_t n_chunks, int split, int z, int64_t *begin, int64_t *end) {
    *begin = n_chunks * z / split;
    *end = n_chunks * (z + 1) / split;
}

/* ---- host-side packing (plain host functions, also under nvcc) -------------------------------- */

/* The 4 codes of a canonical byte (2-bit fields at bits 0, 2, 4, 6) spread to bit pair 0 of bytes
 * 0..3, and back. */
static inline uint32_t trit_tl_spread(uint32_t byte) {
    return (byte & 3u) | ((byte >> 2) & 3u) << 8 | ((byte >> 4) & 3u) << 16 | ((byte >> 6) & 3u) << 24;
}
static inline uint8_t trit_tl_gather(uint32_t v) {
    return (uint8_t)((v & 3u) | ((v >> 8) & 3u) << 2 | ((v >> 16) & 3u) << 4 | ((v >> 24) & 3u) << 6);
}

/* Repacks a canonical ternary matrix (codes (n_rows, row_bytes), code t+1 at bits 2 * (c % 4) of
 * byte c / 4) into the tile layout: dst gets trit_tl_bytes(n_rows, n_cols) bytes, padding = t 0.
 * Codes past n_cols in a row's last byte are read as t = 0 whatever they hold.
 * Returns 0, or -1 if a code 3 was met where it means nothing (plus2_ok 0: a matrix with one scale);
 * a group-scaled matrix's code 3 is t = +2 (quant.h), packed as it is (plus2_ok 1). dst is fully
 * written either way. trit_tl_pack: plus2_ok 0. */
static inline int trit_tl_pack_codes(const uint8_t *codes, int64_t row_bytes, int64_t n_rows, int64_t n_cols,
                                     int plus2_ok, uint8_t *dst) {
    const int64_t n_chunks = trit_tl_cols_pad(n_cols) / TRIT_TL_CHUNK;
    const int64_t n_strips = trit_tl_rows_pad(n_rows) / TRIT_TL_STRIP;
    int bad = 0;
    for (int64_t strip = 0; strip < n_strips; strip++)
        for (int64_t chunk = 0; chunk < n_chunks; chunk++)
            for (int lane = 0; lane < 32; lane++)
                for (int j = 0; j < 4; j++) {
                    uint32_t word = 0;
                    for (int i = 0; i < 4; i++) {
                        const int64_t r = strip * TRIT_TL_STRIP + trit_mma_a_row(lane, i);
                        const int64_t c0 = chunk * TRIT_TL_CHUNK + TRIT_TL_KSTEP * j + trit_mma_a_col(lane, i, 0);
                        uint32_t byte = TRIT_TL_ZERO_BYTE;
                        if (r < n_rows && c0 < n_cols) {
                            byte = codes[r * row_bytes + c0 / 4];
                            const int64_t valid = n_cols - c0; /* cols c0..c0+3 that exist */
                            if (valid < 4) {
                                const uint32_t keep = (1u << (2 * valid)) - 1u;
                                byte = (byte & keep) | (TRIT_TL_ZERO_BYTE & ~keep);
                            }
                            bad |= !plus2_ok && (byte & (byte >> 1) & 0x55u) != 0;
                        }
                        word |= trit_tl_spread(byte) << (2 * i);
                    }
                    uint8_t *out = dst + (trit_tl_lane_vec(strip, chunk, n_chunks, lane) * 16 + 4 * j);
                    for (int b = 0; b < 4; b++) out[b] = (uint8_t)(word >> (8 * b)); /* little endian */
                }
    return bad ? -1 : 0;
}
static inline int trit_tl_pack(const uint8_t *codes, int64_t row_bytes, int64_t n_rows, int64_t n_cols,
                               uint8_t *dst) {
    return trit_tl_pack_codes(codes, row_bytes, n_rows, n_cols, 0, dst);
}

/* The inverse: canonical codes (n_rows, row_bytes) from the tile layout; the codes past n_cols in
 * a row's last byte are written as t = 0 (0b01), as the canonical tensor keeps them. */
static inline void trit_tl_unpack(const uint8_t *src, int64_t n_rows, int64_t n_cols, uint8_t *codes,
                                  int64_t row_bytes) {
    const int64_t n_chunks = trit_tl_cols_pad(n_cols) / TRIT_TL_CHUNK;
    for (int64_t r = 0; r < n_rows; r++)
        for (int64_t cb = 0; cb < row_bytes; cb++) {
            const int64_t c0 = cb * 4;
            uint32_t byte = TRIT_TL_ZERO_BYTE;
            if (c0 < n_cols) {
                /* cols c0..c0+3 are the 4 bytes of one register: read them from its word */
                const struct trit_tl_pos p = trit_tl_locate(r, c0, trit_tl_cols_pad(n_cols));
                const uint8_t *w = src + (p.byte & ~(int64_t)3);
                const uint32_t word = (uint32_t)w[0] | (uint32_t)w[1] << 8 | (uint32_t)w[2] << 16 |
                                      (uint32_t)w[3] << 24;
                byte = trit_tl_gather((word >> p.shift) & 0x03030303u);
                const int64_t valid = n_cols - c0;
                if (valid < 4) {
                    const uint32_t keep = (1u << (2 * valid)) - 1u;
                    byte = (byte & keep) | (TRIT_TL_ZERO_BYTE & ~keep);
                }
            }
            codes[r * row_bytes + cb] = (uint8_t)byte;
        }
    (void)n_chunks;
}

/* Row bias of the add-only GEMV for every row of the padded matrix: out (trit_tl_rows_pad(n_rows)),
 * 128 * n_pos + 127 * n_neg over the row's n_cols codes (0 for padding rows). */
static inline void trit_tl_row_bias(const uint8_t *codes, int64_t row_bytes, int64_t n_rows, int64_t n_cols,
                                    int32_t *out) {
    const int64_t n_pad = trit_tl_rows_pad(n_rows);
    for (int64_t r = 0; r < n_pad; r++) {
        int32_t n_pos = 0, n_neg = 0;
        for (int64_t c = 0; r < n_rows && c < n_cols; c++) {
            const unsigned code = (codes[r * row_bytes + c / 4] >> (2 * (c % 4))) & 3u;
            n_pos += code == 2u;
            n_neg += code == 0u;
        }
        out[r] = trit_add_row_bias(n_pos, n_neg);
    }
}

/* int8 activations (m, n_cols) row major -> act layout (m, trit_tl_cols_pad(n_cols)), zero padded;
 * and back. */
static inline void trit_al_pack(const int8_t *q, int64_t m, int64_t n_cols, int8_t *dst) {
    const int64_t k_pad = trit_tl_cols_pad(n_cols);
    memset(dst, 0, (size_t)(m * k_pad));
    for (int64_t i = 0; i < m; i++)
        for (int64_t c = 0; c < n_cols; c++) dst[i * k_pad + trit_al_pos(c)] = q[i * n_cols + c];
}
static inline void trit_al_unpack(const int8_t *src, int64_t m, int64_t n_cols, int8_t *q) {
    const int64_t k_pad = trit_tl_cols_pad(n_cols);
    for (int64_t i = 0; i < m; i++)
        for (int64_t c = 0; c < n_cols; c++) q[i * n_cols + c] = src[i * k_pad + trit_al_pos(c)];
}

#endif /* TRIT_TERNARY_LAYOUT_H */
