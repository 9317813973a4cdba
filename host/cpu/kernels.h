/*
 * kernels.h: the CPU backend's ternary matrix products (internal API).
 *
 *   trit_cpu_matrix_pack   canonical struct trit_ternary -> the kernel layout below, once at load
 *   trit_cpu_gemm_i32      acc[t, n] = sum_k t[n, k] * q[t, k], int32, bit-identical to trit_gemm_ref
 *   trit_cpu_gemm_f32      the same, followed by the reference epilogue (quant.h), into float y
 *   trit_cpu_gemm_f32_add  y += that (the residual add fused)
 *   trit_cpu_gemm_f32_multi  several matrices that read the same activations (Q, K, V; gate, up)
 *                            in one parallel_for
 *
 * Shapes: q is (m, n_cols) int8 row-major, acc and y are (m, n_rows) row-major, act_scale is (m)
 * (the s = 127 / absmax of each token row from trit_quantize_row_i8). m = 1 is the decode GEMV,
 * m > 1 the prompt GEMM. Any n_rows, n_cols >= 1 and m >= 0 are accepted: tails are handled.
 *
 * ---- Packed layout (one layout for every kernel family) -----------------------------------------
 *
 * Rows are grouped by 16 ("row group", rg) and columns by 64 ("k-block", kb). One row group and
 * one k-block form a 256-byte tile; tiles are stored row group by row group, k-blocks in order.
 * A tile is 4 vectors of 64 bytes; byte 4n + i of vector v holds, in bits 2j..2j+1, the code of
 *
 *   row 16 rg + n,  column 64 kb + 16 v + 4 j + i          n in [0, 16), i, j, v in [0, 4)
 *
 *   tile(rg, kb) = packed + (rg * n_kb + kb) * 256         n_kb = ceil(n_cols / 64)
 *   code         = t + 1 in {0, 1, 2} (the canonical code); padding rows and columns hold 0
 *
 * Why: masking plane j out of a 64-byte vector gives, in each 32-bit lane n, the 4 codes of row n
 * at columns c .. c+3 (c = 64 kb + 16 v + 4 j). One vpdpbusd against those 4 activation bytes
 * broadcast to every lane adds row n's partial dot product into lane n: the 16 lanes of one
 * accumulator are 16 output rows, and no horizontal sum is needed. (AVX2: 8 rows per 32-byte half;
 * NEON sdot by lane: 4 rows per 16-byte quarter.) The same plane is, byte for byte, one row of an
 * AMX B tile (16 rows x 64 bytes, 4 consecutive k per output column). A row group's tiles are
 * contiguous, so a thread that owns a range of row groups reads one sequential stream.
 *
 * The kernels multiply unsigned codes by signed activations (vpdpbusd, vpmaddubsw, sdot) and
 * correct once per token: sum_k t q = sum_k code q - sum_k q. Padding codes are 0, so padding
 * columns add nothing; padding rows are computed and dropped.
 */
#ifndef TRIT_CPU_KERNELS_H
#define TRIT_CPU_KERNELS_H

#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "core/core.h"
#include "core/cpu_features.h"
#include "core/threadpool.h"
#include "quant/quant.h"

#define TRIT_CPU_KB_COLS 64   /* columns per k-block */
#define TRIT_CPU_RG_ROWS 16   /* rows per row group */
#define TRIT_CPU_TILE_BYTES 256 /* one row group x one k-block, 2 bits a code */
#define TRIT_CPU_MAX_TOKENS 4 /* token block of the register micro-kernels: 16 rows x 4 tokens */
_Static_assert(TRIT_CPU_TILE_BYTES * 4 == TRIT_CPU_KB_COLS * TRIT_CPU_RG_ROWS, "4 codes per byte");

/* A ternary matrix repacked for the CPU kernels. Owns `packed`. */
struct trit_cpu_matrix {
    int64_t n_rows, n_cols; /* output and input features, as in struct trit_ternary */
    int64_t n_kb;           /* ceil(n_cols / 64) */
    int64_t n_rg;           /* ceil(n_rows / 16) */
    uint8_t *packed;        /* (n_rg, n_kb, 256) bytes, the layout above; from trit_alloc */
    float scale;
    enum trit_scale_kind scale_kind;
    enum trit_cpu_isa isa; /* the kernel family trit_cpu_gemm_* run; any supported one may be set */
    /* Group scales (quant.h): group > 0 gives a multiplier per row and group (codes may then hold
     * +2); NULL and 0 otherwise. Laid out by row group: the 16 rows' scales of group g of row group
     * rg are the floats group_scales[(rg * n_groups + g) * 16 ...], padding rows 0. */
    int64_t group;
    float *group_scales;   /* (n_rg, ceil(n_cols / group), 16), owned */
    /* How the activations of this matrix's products are quantized (struct trit_hparams act_block):
     * 0: one scale per token, act_scale (m); TRIT_CPU_KB_COLS: one per k-block, act_scale (m, n_kb).
     * Set by the caller after packing (0 by default). */
    int64_t act_block;
};

/* A matrix that takes the group rule of the numerics contract (cpu.h trit_gemm_group_ref): group
 * scales, or activations quantized per block. Its products are summed k-block by k-block in fp32. */
static inline bool trit_cpu_matrix_blocked(const struct trit_cpu_matrix *w) { return w->group > 0 || w->act_block > 0; }

/* The name of the kernel family trit_cpu_matrix_pack packs for: the active one
 * (trit_cpu_isa_active: "avx512", ...). For logs and benchmark tables. */
const char *trit_cpu_kernel_name(void);

/* Packs w for the active kernel family (trit_cpu_isa_active: TRIT_CPU or the best one).
 * Fails on a NULL or empty w, on a 2-bit code 3 in w without group scales (TRIT_ERR_FORMAT), and as
 * trit_cpu_isa_select does for a bad TRIT_CPU. *out is zeroed on failure. */
enum trit_status trit_cpu_matrix_pack(const struct trit_ternary *w, struct trit_cpu_matrix *out);
/* The same with an explicit kernel family; TRIT_ERR_UNSUPPORTED if this machine cannot run it. */
enum trit_status trit_cpu_matrix_pack_isa(const struct trit_ternary *w, enum trit_cpu_isa isa,
                                          struct trit_cpu_matrix *out);
/* Frees the packed bytes and zeroes *w; accepts NULL and a zeroed struct. */
void trit_cpu_matrix_free(struct trit_cpu_matrix *w);
/* Bytes of packed weights one product streams: n_rg * n_kb * 256. */
int64_t trit_cpu_matrix_bytes(const struct trit_cpu_matrix *w);
/* The bytes trit_cpu_matrix_pack allocates for an (n_rows, n_cols) matrix; -1 on overflow. */
int64_t trit_cpu_matrix_plan_bytes(int64_t n_rows, int64_t n_cols);

/* acc (m, n_rows) = q (m, n_cols) x w^T, exact int32. The pool's threads split the rows; NULL
 * pool runs on the caller. No allocation. TRIT_ERR_UNSUPPORTED for a blocked matrix (its result is
 * not one int32 per row). */
enum trit_status trit_cpu_gemm_i32(struct trit_pool *pool, const struct trit_cpu_matrix *w,
                                   const int8_t *q, int64_t m, int32_t *acc);
/* y (m, n_rows) = the reference epilogue of acc: ((float)acc / act_scale[t]) * scale for
 * TRIT_SCALE_MUL, (float)acc / (act_scale[t] * scale) for TRIT_SCALE_DIV (bit-identical). For a
 * blocked matrix, trit_gemm_group_ref's y bit for bit, act_scale laid out as w->act_block says. */
enum trit_status trit_cpu_gemm_f32(struct trit_pool *pool, const struct trit_cpu_matrix *w,
                                   const int8_t *q, int64_t m, const float *act_scale, float *y);
/* y += the same (y + epilogue, rounded once: equal to adding the output of trit_cpu_gemm_f32). */
enum trit_status trit_cpu_gemm_f32_add(struct trit_pool *pool, const struct trit_cpu_matrix *w,
                                       const int8_t *q, int64_t m, const float *act_scale,
                                       float *y);
/* trit_cpu_gemm_f32 for n_mats matrices with the same n_cols and isa, sharing q: y[i] is
 * (m, w[i]->n_rows). One parallel_for for all of them (QKV: 3 -> 1 synchronization). */
enum trit_status trit_cpu_gemm_f32_multi(struct trit_pool *pool, int n_mats,
                                         const struct trit_cpu_matrix *const *w, const int8_t *q,
                                         int64_t m, const float *act_scale, float *const *y);

/* ---- per-family micro-kernels (gemm_scalar.c, gemm_avx2.c, gemm_avx512.c, gemm_amx.c, gemm_neon.c)
 *
 * One call: n_rg consecutive row groups x n_tok tokens (n_tok <= the family's token block), all
 * k-blocks. Writes the exact acc of every row of those groups (padding rows too) to
 * out[t * ld_out + r], r in [0, 16 n_rg). sum(q) of each token comes from the driver (computed once
 * per call), or the kernel computes it. Reads no activation byte at or past n_cols of a token row. */
struct trit_cpu_tile {
    const uint8_t *w;      /* tile(rg0, 0) */
    int64_t n_rg;          /* row groups to compute */
    int64_t n_kb, n_cols;  /* of the matrix */
    const int8_t *q;       /* token t's n_cols activations at q + t * ld_q */
    int64_t ld_q;
    int n_tok;
    int32_t *out;
    int64_t ld_out;        /* >= 16 n_rg */
    const int32_t *qsum;   /* token t's sum(q) at qsum[t], from the driver; NULL: the kernel sums */
};

/* ---- blocked micro-kernels: the group rule folded in (gemm_cpu.c run_range_blocked) ---------------
 * One row group, n_tok <= TRIT_CPU_BLOCKED_TOKENS tokens, every k-block: for each k-block, ascending,
 * the exact int32 sums of the 16 rows are scaled by the group rule (cpu.h trit_gemm_group_ref, MUL
 * with group scales) and added into fp32 sums, which are written to out[t * ld_out + r]. The driver
 * gives each token's sum(q) and 1 / s per k-block. A family without one runs the group rule with its
 * plain micro-kernel, one k-block a call. */
#define TRIT_CPU_BLOCKED_TOKENS 2
struct trit_cpu_btile {
    const uint8_t *w;       /* tile(rg, 0) */
    int64_t n_kb, n_cols;   /* of the matrix */
    const int8_t *q;        /* token t's n_cols activations at q + t * ld_q */
    int64_t ld_q;
    int n_tok;
    const int32_t *qsum;    /* sum of token t's q over k-block kb: qsum[kb * TRIT_CPU_MAX_TOKENS + t] */
    const float *inv;       /* 1 / s of token t and k-block kb: inv[kb * TRIT_CPU_MAX_TOKENS + t] */
    const float *d;         /* the row group's scales: group g's 16 at d + 16 g */
    int64_t kb_per_group;
    float *out;
    int64_t ld_out;
};
typedef void (*trit_cpu_btile_fn)(const struct trit_cpu_btile *tile);
/* trit_cpu_copy_tails for a blocked tile's tokens. */
static inline void trit_cpu_btile_tails(const struct trit_cpu_btile *tile, int8_t (*tail)[TRIT_CPU_KB_COLS]) {
    const int64_t n_full = tile->n_cols / TRIT_CPU_KB_COLS, rem = tile->n_cols - n_full * TRIT_CPU_KB_COLS;
    for (int t = 0; rem && t < tile->n_tok; t++) {
        memset(tail[t], 0, TRIT_CPU_KB_COLS);
        memcpy(tail[t], tile->q + t * tile->ld_q + n_full * TRIT_CPU_KB_COLS, (size_t)rem);
    }
}

/* sum(q[0 .. n)) with the family's instructions (exact). */
int32_t trit_cpu_sum_i8(enum trit_cpu_isa isa, const int8_t *q, int64_t n);
/* The kernels' qsum[t] for the tile's tokens: the driver's, or sum(q) by `sum`. */
static inline void trit_cpu_tile_qsums(const struct trit_cpu_tile *tile, int32_t (*sum)(const int8_t *, int64_t),
                                       int32_t *qsum) {
    for (int t = 0; t < tile->n_tok; t++) qsum[t] = tile->qsum ? tile->qsum[t] : sum(tile->q + t * tile->ld_q, tile->n_cols);
}
typedef void (*trit_cpu_tile_fn)(const struct trit_cpu_tile *tile);

/* Unpacked tiles (the panels of gemm_cpu.c): n_tiles consecutive 256-byte tiles at packed become
 * n_tiles 1024-byte tiles at dst, one byte a code. Unpacked tile = 16 planes in the order
 * (v, j), plane (v, j) = the 64 bytes (packed vector v >> 2j) & 3: byte 4n + i is the code of row n,
 * column 16 v + 4 j + i, n in [0, 16). A panel kernel is a trit_cpu_tile_fn whose tile->w points at
 * unpacked tiles (row group stride n_kb * 1024). */
typedef void (*trit_cpu_unpack_fn)(const uint8_t *packed, int64_t n_tiles, uint8_t *dst);
#define TRIT_CPU_UNPACKED_TILE_BYTES 1024
/* Calls with at least this many tokens unpack their chunks first (where the family has a panel
 * kernel): below it the unpacking is not repaid. bench_cpu_gemm, AMD EPYC (Zen 3, AVX2), 2 threads,
 * 2B-4T shapes, GOPS one pass / panels: m = 8: 299-308 / 252-262, m = 16: 333-385 / 288-310,
 * m = 32: 320-345 / 369-380, m = 512: 291-302 / 393-473. Decoding 8 to 16 sequences at once stays
 * in one pass. */
#define TRIT_CPU_PANEL_MIN_M 24

/* tail[t] = token t's last partial k-block (columns 64 * floor(n_cols / 64) .. n_cols), zero-padded
 * to 64 bytes, for t < tile->n_tok: kernels then read whole k-blocks and never a byte past n_cols.
 * Does nothing when 64 divides n_cols. */
static inline void trit_cpu_copy_tails(const struct trit_cpu_tile *tile, int8_t (*tail)[TRIT_CPU_KB_COLS]) {
    int64_t n_full = tile->n_cols / TRIT_CPU_KB_COLS;
    size_t rem = (size_t)(tile->n_cols - n_full * TRIT_CPU_KB_COLS);
    if (rem == 0) return;
    for (int t = 0; t < tile->n_tok; t++) {
        memset(tail[t], 0, TRIT_CPU_KB_COLS);
        memcpy(tail[t], tile->q + t * tile->ld_q + n_full * TRIT_CPU_KB_COLS, rem);
    }
}

/* Token blocks: the VNNI-style kernels hold 4 tokens in registers; AMX takes two 16-row A tiles. */
#define TRIT_CPU_AMX_TOKENS 32
/* AMX runs calls with at least this many tokens; smaller ones go to the AVX-512 VNNI kernel.
 * (2560x2560 and 2560x6912, weights from DRAM, 1 thread: AMX and VNNI tie near m = 6; at m = 8
 * AMX takes 207 us against 287, at m = 4 202 against 182.) */
#define TRIT_CPU_AMX_MIN_M 8

void trit_cpu_tile_scalar(const struct trit_cpu_tile *tile);
int32_t trit_cpu_sum_i8_scalar(const int8_t *q, int64_t n);
#if defined(__x86_64__)
void trit_cpu_tile_avx2(const struct trit_cpu_tile *tile);
void trit_cpu_btile_avx2(const struct trit_cpu_btile *tile);
void trit_cpu_unpack_avx2(const uint8_t *packed, int64_t n_tiles, uint8_t *dst);
void trit_cpu_panel_avx2(const struct trit_cpu_tile *tile);
void trit_cpu_tile_avx512(const struct trit_cpu_tile *tile);
void trit_cpu_btile_avx512(const struct trit_cpu_btile *tile);
#ifndef TRIT_EMULATE_AVX512
void trit_cpu_tile_amx(const struct trit_cpu_tile *tile);
#endif
/* sum(q[0 .. n)) per family; callers must have checked the family. */
int32_t trit_cpu_sum_i8_avx512(const int8_t *q, int64_t n);
int32_t trit_cpu_sum_i8_avx2(const int8_t *q, int64_t n);
#endif
#if defined(__aarch64__)
void trit_cpu_tile_neon(const struct trit_cpu_tile *tile);
void trit_cpu_tile_neon_dotprod(const struct trit_cpu_tile *tile);
int32_t trit_cpu_sum_i8_neon(const int8_t *q, int64_t n);
#endif

#endif /* TRIT_CPU_KERNELS_H */
