/*
 * gemm_amx.c: the AMX-INT8 micro-kernel (kernels.h) for calls with many tokens (prompt
 * processing). Compiled with a target attribute; gemm_cpu.c runs it only when cpu_features reports
 * AMX-TILE and AMX-INT8 usable (CPU, XCR0, and the Linux permission for the tile data state) and
 * m >= TRIT_CPU_AMX_MIN_M (8). Decode-sized calls use the AVX-512 VNNI kernel.
 *
 * TDPBSUD C[t][n] += sum_k A[t][k] * B[k / 4][4 n + k % 4] with A signed, B unsigned: A is 16
 * token rows x 64 activations, loaded straight from q with stride ld_q; B is 16 output rows x 64
 * columns of codes {0, 1, 2}, which is exactly plane j of packed vector v, masked to the low bits,
 * for B row 4 v + j (kernels.h). C is 16 tokens x 16 output rows of int32: stored with stride
 * ld_out it lands in out[t][r]. Then out -= sum(q) per token, as in the other kernels.
 *
 * Tiles: C0..C3 = (token tile 0/1) x (row group 0/1), A4, A5 = the two token tiles, B6, B7 = the
 * two row groups: 4 TDPBSUD (4 x 16 x 16 x 64 MACs) per 2 KB of A and 2 KB of B. B is decoded by
 * AVX-512 (shift, and, store: 1 KB per tile) into a buffer alternating by k-block parity, so that
 * decoding k-block kb + 1 overlaps the tile products of kb.
 */
#include "cpu/kernels.h"

#if defined(__x86_64__) && !defined(TRIT_EMULATE_AVX512) /* AMX cannot be emulated */
#include <immintrin.h>
#include <stdalign.h>
#include <string.h>

#define AMX_TARGET "avx512f,avx512bw,avx512vl,avx512vnni,amx-tile,amx-int8"
#define AMX_FN __attribute__((target(AMX_TARGET)))

/* The LDTILECFG operand (palette 1). */
struct tile_config {
    uint8_t palette, start_row;
    uint8_t reserved[14];
    uint16_t colsb[16];
    uint8_t rows[16];
};
_Static_assert(sizeof(struct tile_config) == 64, "LDTILECFG reads 64 bytes");

/* n0 tokens in token tile 0 (1..16), n1 in token tile 1 (0..16). */
static AMX_FN void configure(int n0, int n1) {
    alignas(64) struct tile_config cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.palette = 1;
    const int rows[8] = {n0, n0, n1, n1, n0, n1, 16, 16};
    for (int i = 0; i < 8; i++) {
        cfg.rows[i] = (uint8_t)rows[i];
        cfg.colsb[i] = rows[i] ? 64 : 0;
    }
    _tile_loadconfig(&cfg);
}

/* One packed tile (256 bytes) -> the 16 x 64 byte B tile of its codes.
 * PRECOND: dst is 64-byte aligned (aligned stores; the caller's alignas(64) stack buffer). */
static inline __attribute__((always_inline, target(AMX_TARGET))) void decode_b(const uint8_t *src, uint8_t *dst) {
    TRIT_ASSERT_ALIGNED(dst, 64);
    const __m512i m3 = _mm512_set1_epi8(3);
    for (int v = 0; v < 4; v++) {
        __m512i w = _mm512_loadu_si512(src + 64 * v);
        _mm512_store_si512(dst + 64 * (4 * v + 0), _mm512_and_si512(w, m3));
        _mm512_store_si512(dst + 64 * (4 * v + 1), _mm512_and_si512(_mm512_srli_epi16(w, 2), m3));
        _mm512_store_si512(dst + 64 * (4 * v + 2), _mm512_and_si512(_mm512_srli_epi16(w, 4), m3));
        _mm512_store_si512(dst + 64 * (4 * v + 3), _mm512_and_si512(_mm512_srli_epi16(w, 6), m3));
    }
}

AMX_FN void trit_cpu_tile_amx(const struct trit_cpu_tile *tile) {
    const int n_tok = tile->n_tok;
    const int n0 = n_tok < 16 ? n_tok : 16, n1 = n_tok - n0;
    const int64_t n_full = tile->n_cols / TRIT_CPU_KB_COLS;
    const int64_t ld = tile->ld_out;

    /* The last partial k-block of every token: the A tile of that k-block, rows of 64 bytes. */
    alignas(64) int8_t tail[TRIT_CPU_AMX_TOKENS][TRIT_CPU_KB_COLS];
    trit_cpu_copy_tails(tile, tail);
    alignas(64) uint8_t b[2][2][16 * TRIT_CPU_KB_COLS]; /* [kb parity][row group] */

    configure(n0, n1);
    for (int64_t rg = 0; rg < tile->n_rg; rg += 2) {
        const bool two = rg + 1 < tile->n_rg;
        const uint8_t *w0 = tile->w + rg * tile->n_kb * TRIT_CPU_TILE_BYTES;
        const uint8_t *w1 = w0 + tile->n_kb * TRIT_CPU_TILE_BYTES;
        _tile_zero(0);
        _tile_zero(1);
        if (n1) {
            _tile_zero(2);
            _tile_zero(3);
        }
        for (int64_t kb = 0; kb < tile->n_kb; kb++) {
            uint8_t *b0 = b[kb & 1][0], *b1 = b[kb & 1][1];
            for (int l = 0; l < 4; l++) { /* the weight stream, 4 tiles ahead as in gemm_avx512.c */
                _mm_prefetch((const char *)(w0 + kb * TRIT_CPU_TILE_BYTES) + 1024 + 64 * l, _MM_HINT_T0);
                if (two) _mm_prefetch((const char *)(w1 + kb * TRIT_CPU_TILE_BYTES) + 1024 + 64 * l, _MM_HINT_T0);
            }
            decode_b(w0 + kb * TRIT_CPU_TILE_BYTES, b0);
            if (two) decode_b(w1 + kb * TRIT_CPU_TILE_BYTES, b1);
            const int8_t *a = kb < n_full ? tile->q + kb * TRIT_CPU_KB_COLS : &tail[0][0];
            int64_t lda = kb < n_full ? tile->ld_q : TRIT_CPU_KB_COLS;
            _tile_loadd(4, a, lda);
            _tile_loadd(6, b0, 64);
            _tile_dpbsud(0, 4, 6);
            if (two) {
                _tile_loadd(7, b1, 64);
                _tile_dpbsud(1, 4, 7);
            }
            if (n1) {
                _tile_loadd(5, a + 16 * lda, lda);
                _tile_dpbsud(2, 5, 6);
                if (two) _tile_dpbsud(3, 5, 7);
            }
        }
        int32_t *o = tile->out + rg * TRIT_CPU_RG_ROWS;
        _tile_stored(0, o, ld * 4);
        if (two) _tile_stored(1, o + TRIT_CPU_RG_ROWS, ld * 4);
        if (n1) {
            _tile_stored(2, o + 16 * ld, ld * 4);
            if (two) _tile_stored(3, o + 16 * ld + TRIT_CPU_RG_ROWS, ld * 4);
        }
    }
    _tile_release();

    /* out -= sum(q), over the rows of every row group */
    int64_t n_rows = tile->n_rg * TRIT_CPU_RG_ROWS; /* a multiple of 16 */
    for (int t = 0; t < n_tok; t++) {
        __m512i s = _mm512_set1_epi32(tile->qsum ? tile->qsum[t] : trit_cpu_sum_i8_avx512(tile->q + t * tile->ld_q, tile->n_cols));
        int32_t *o = tile->out + t * ld;
        for (int64_t r = 0; r < n_rows; r += 16)
            _mm512_storeu_si512(o + r, _mm512_sub_epi32(_mm512_loadu_si512(o + r), s));
    }
}

#else
typedef int trit_gemm_amx_unused; /* not an x86-64 build */
#endif
