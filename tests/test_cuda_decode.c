// labels: unit
/* test_cuda_decode.c: the per-thread arithmetic of the CUDA kernels (cuda/ternary_layout.h) run on
 * the CPU: the mma.m16n8k32 fragment mapping against the PTX ISA table, prmt/dp4a emulation, the
 * 2-bit decode, the add-only select/widen identities (exhaustive), the activation quantizer and
 * epilogue against the scalar reference, and CPU emulations of one warp of each kernel (dp4a GEMV,
 * add-only GEMV, mma GEMM tile loop) built only from those functions, checked bit for bit against
 * trit_gemm_ref on shapes with tails.
 *
 *   ctest --test-dir build -R test_cuda_decode --output-on-failure */
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cpu/cpu.h"
#include "quant/quant.h"
#include "support.h"
#include "ternary_layout.h"

/* ---- fragment mapping ------------------------------------------------------------------------ */

/* Rows of the PTX ISA table "Matrix Fragments for mma.m16n8k32" (.s8), written out literally:
 * groupID = lane >> 2, threadID_in_group = lane % 4;
 * A: row = groupID for a0..a3, a8..a11, else groupID + 8; col = tig * 4 + (i & 3) for a0..a7,
 *    tig * 4 + 16 + (i & 3) for a8..a15.  B: row = tig * 4 + (i & 3) for b0..b3, + 16 for b4..b7;
 *    col = groupID.  C: row = groupID for c0, c1, else groupID + 8; col = tig * 2 + (i & 1). */
Test(cuda_decode, mma_mapping_matches_ptx_table) {
    for (int lane = 0; lane < 32; lane++) {
        const int gid = lane >> 2, tig = lane % 4;
        for (int e = 0; e < 16; e++) { /* a_e = register e / 4, byte e % 4 */
            const int row = (e < 4 || (e >= 8 && e < 12)) ? gid : gid + 8;
            const int col = e < 8 ? tig * 4 + (e & 3) : tig * 4 + 16 + (e & 3);
            cr_assert_eq(trit_mma_a_row(lane, e / 4), row);
            cr_assert_eq(trit_mma_a_col(lane, e / 4, e % 4), col);
        }
        for (int e = 0; e < 8; e++) {
            const int row = e < 4 ? tig * 4 + (e & 3) : tig * 4 + 16 + (e & 3);
            cr_assert_eq(trit_mma_b_k(lane, e / 4, e % 4), row);
            cr_assert_eq(trit_mma_b_n(lane), gid);
        }
        for (int e = 0; e < 4; e++) {
            cr_assert_eq(trit_mma_c_row(lane, e), e < 2 ? gid : gid + 8);
            cr_assert_eq(trit_mma_c_col(lane, e), tig * 2 + (e & 1));
        }
    }
}

Test(cuda_decode, mma_mapping_covers_each_element_once) {
    int a[16][32] = {{0}}, b[32][8] = {{0}}, c[16][8] = {{0}};
    for (int lane = 0; lane < 32; lane++) {
        for (int reg = 0; reg < 4; reg++)
            for (int by = 0; by < 4; by++) a[trit_mma_a_row(lane, reg)][trit_mma_a_col(lane, reg, by)]++;
        for (int reg = 0; reg < 2; reg++)
            for (int by = 0; by < 4; by++) b[trit_mma_b_k(lane, reg, by)][trit_mma_b_n(lane)]++;
        for (int reg = 0; reg < 4; reg++) c[trit_mma_c_row(lane, reg)][trit_mma_c_col(lane, reg)]++;
    }
    for (int i = 0; i < 16; i++)
        for (int j = 0; j < 32; j++) cr_assert_eq(a[i][j], 1);
    for (int i = 0; i < 32; i++)
        for (int j = 0; j < 8; j++) cr_assert_eq(b[i][j], 1);
    for (int i = 0; i < 16; i++)
        for (int j = 0; j < 8; j++) cr_assert_eq(c[i][j], 1);
}

/* ---- scalar primitives ------------------------------------------------------------------------ */

Test(cuda_decode, prmt_and_dp4a_emulation) {
    cr_assert_eq(trit_prmt(0x44332211u, 0x88776655u, 0x3210u), 0x44332211u);
    cr_assert_eq(trit_prmt(0x44332211u, 0x88776655u, 0x7654u), 0x88776655u);
    cr_assert_eq(trit_prmt(0x44332211u, 0x88776655u, 0x4567u), 0x55667788u);
    cr_assert_eq(trit_prmt(0x80017F00u, 0u, 0xBA98u), 0xFF000000u);     /* sign replicate */
    cr_assert_eq(trit_prmt(0x00FF7F81u, 0u, 0xBA98u), 0x00FF00FFu);
    cr_assert_eq(trit_prmt(0xF1E2D3C4u, 0u, 0x4240u), 0x00E200C4u);     /* zero extend even bytes */
    cr_assert_eq(trit_prmt(0xF1E2D3C4u, 0u, 0x4341u), 0x00F100D3u);     /* odd bytes */
    cr_assert_eq(trit_prmt(0x0000FF80u, 0u, 0xA280u), 0x0000FF80u);     /* sign extend: byte 0 -> int16 */
    cr_assert_eq(trit_dp4a(0x02010002u, 0x80FF7F05u, 3), 3 + 2 * 5 + 0 + 1 * -1 + 2 * -128);
    cr_assert_eq(trit_dp4a(0xFFFFFFFFu, 0x80808080u, 0), 4 * 128);
}

Test(cuda_decode, decode_gives_codes_of_four_consecutive_cols) {
    struct test_rng rng;
    test_rng_seed(&rng, 0xdec0u);
    for (int it = 0; it < 1000; it++) {
        const uint32_t w = (uint32_t)test_rng_u64(&rng);
        for (int i = 0; i < 4; i++) {
            const uint32_t a = trit_tl_decode(w, i);
            for (int b = 0; b < 4; b++) cr_assert_eq((a >> (8 * b)) & 0xFFu, (w >> (8 * b + 2 * i)) & 3u);
        }
    }
}

/* For every code (0, 1, 2) in every byte position and every int8 x: select gives x + 128, 127 - x
 * or 0, and its value minus the row-bias share is t * x. */
Test(cuda_decode, add_select_exhaustive) {
    for (int code = 0; code < 3; code++)
        for (int pos = 0; pos < 4; pos++)
            for (int i = 0; i < 4; i++)
                for (int x = -128; x < 128; x++) {
                    /* a word with `code` at (byte pos, pair i) and different codes elsewhere */
                    uint32_t w = 0x9A6A5A96u & ~(3u << (8 * pos + 2 * i));
                    w |= (uint32_t)code << (8 * pos + 2 * i);
                    uint32_t p, nn;
                    trit_add_masks(w, trit_add_word_or(w), i, &p, &nn);
                    const uint32_t xw = (uint32_t)(uint8_t)(int8_t)x << (8 * pos);
                    const uint32_t u = (trit_add_select(trit_add_bias_act(xw), p, nn) >> (8 * pos)) & 0xFFu;
                    const int t = code - 1;
                    const int bias_share = t == 1 ? 128 : t == -1 ? 127 : 0;
                    cr_assert_eq((int)u - bias_share, t * x, "code %d byte %d pair %d x %d: u %u", code, pos, i, x, u);
                }
}

Test(cuda_decode, add_widen_lanes) {
    struct test_rng rng;
    test_rng_seed(&rng, 0x3eu);
    uint32_t lanes = 0;
    int32_t want = 0;
    for (int it = 0; it < 128; it++) { /* the documented maximum number of adds */
        const uint32_t u = it == 0 ? 0xFFFFFFFFu : (uint32_t)test_rng_u64(&rng);
        lanes += trit_add_widen(u);
        want += (int32_t)((u & 0xFF) + ((u >> 8) & 0xFF) + ((u >> 16) & 0xFF) + (u >> 24));
    }
    cr_assert_eq(trit_add_lanes(lanes), want);
}

/* trit_act_quant_one with the CPU's scale reproduces trit_quantize_row_i8, ties and NaN included. */
Test(cuda_decode, act_quant_one_matches_reference) {
    struct test_rng rng;
    test_rng_seed(&rng, 0x9a17u);
    enum { K = 4099 };
    float x[K];
    int8_t q[K];
    for (int rep = 0; rep < 20; rep++) {
        const float mag = rep == 0 ? 1e-7f : test_rng_uniform(&rng, 1e-3f, 100.0f);
        for (int i = 0; i < K; i++) x[i] = test_rng_normal(&rng) * mag;
        if (rep == 1) {
            x[0] = 127.0f; /* s = 1: x = n + 0.5 are exact ties */
            for (int i = 1; i < 64; i++) x[i] = (float)(i - 32) + 0.5f;
            for (int i = 64; i < K; i++) x[i] = fmodf(x[i], 100.0f);
        }
        if (rep == 2) x[7] = NAN;
        const float s = trit_quantize_row_i8(x, K, q);
        for (int i = 0; i < K; i++)
            cr_assert_eq(trit_act_quant_one(x[i], s), q[i], "rep %d i %d x %a s %a", rep, i, (double)x[i], (double)s);
    }
}

Test(cuda_decode, epilogue_one_matches_reference) {
    struct test_rng rng;
    test_rng_seed(&rng, 0xe9u);
    enum { N = 257 };
    int32_t acc[N];
    float y[N], s = test_rng_uniform(&rng, 0.1f, 300.0f);
    for (int i = 0; i < N; i++) acc[i] = (int32_t)test_rng_int(&rng, -3000000, 3000000);
    for (int kind = 0; kind < 2; kind++) {
        const float ws = test_rng_uniform(&rng, 0.01f, 3.0f);
        trit_epilogue_ref(acc, 1, N, &s, ws, (enum trit_scale_kind)kind, y);
        for (int i = 0; i < N; i++) {
            const float g = trit_epilogue_one(acc[i], s, ws, kind);
            cr_assert(memcmp(&g, &y[i], sizeof g) == 0, "kind %d acc %d: %a != %a", kind, acc[i], (double)g, (double)y[i]);
        }
    }
}

Test(cuda_decode, split_ranges) {
    for (int64_t n_chunks = 1; n_chunks < 60; n_chunks += 7)
        for (int split = 1; split <= 16; split++) {
            int64_t prev_end = 0;
            for (int z = 0; z < split; z++) {
                int64_t b, e;
                trit_split_range(n_chunks, split, z, &b, &e);
                cr_assert(b == prev_end && e >= b);
                prev_end = e;
            }
            cr_assert_eq(prev_end, n_chunks);
        }
    cr_assert_eq(trit_gemm_pick_split(1000, 50, 132), 1);
    cr_assert_eq(trit_gemm_pick_split(40, 20, 132), 5);  /* capped by 4 chunks per split */
    cr_assert_eq(trit_gemm_pick_split(40, 200, 132), 7); /* ceil(264 / 40) */
    cr_assert_eq(trit_gemm_pick_split(1, 1000, 132), 16);
    cr_assert_eq(trit_gemm_pick_split(5, 2, 132), 1);
}

/* ---- CPU emulation of the kernels' warp loops --------------------------------------------------- */

struct problem {
    int64_t n, k, m, k_pad, n_chunks, n_strips;
    struct trit_ternary w;
    uint8_t *tiles;   /* tile layout */
    int32_t *bias;    /* row bias (n_pad) */
    int8_t *q;        /* (m, k) */
    int8_t *qa;       /* (m, k_pad) act layout */
    int32_t *qsum;    /* (m) */
    int32_t *ref;     /* (m, n) trit_gemm_ref */
    int32_t *got;     /* (m, n) */
};

static void problem_init(struct problem *p, struct test_rng *rng, int64_t n, int64_t k, int64_t m) {
    memset(p, 0, sizeof *p);
    p->n = n, p->k = k, p->m = m;
    p->k_pad = trit_tl_cols_pad(k), p->n_chunks = p->k_pad / TRIT_TL_CHUNK;
    p->n_strips = trit_tl_rows_pad(n) / TRIT_TL_STRIP;
    cr_assert_eq(trit_ternary_init(&p->w, n, k), TRIT_OK);
    for (int64_t r = 0; r < n; r++)
        for (int64_t c = 0; c < k; c++) trit_ternary_set(&p->w, r, c, (int)test_rng_int(rng, -1, 1));
    p->tiles = malloc((size_t)trit_tl_bytes(n, k));
    cr_assert_eq(trit_tl_pack(p->w.codes, p->w.row_bytes, n, k, p->tiles), 0);
    p->bias = malloc((size_t)trit_tl_rows_pad(n) * sizeof *p->bias);
    trit_tl_row_bias(p->w.codes, p->w.row_bytes, n, k, p->bias);
    p->q = malloc((size_t)(m * k));
    p->qa = malloc((size_t)(m * p->k_pad));
    p->qsum = calloc((size_t)m, sizeof *p->qsum);
    for (int64_t i = 0; i < m * k; i++) {
        p->q[i] = (int8_t)test_rng_int(rng, -128, 127); /* the full int8 range, -128 included */
        p->qsum[i / k] += p->q[i];
    }
    trit_al_pack(p->q, m, k, p->qa);
    p->ref = malloc((size_t)(m * n) * sizeof *p->ref);
    p->got = malloc((size_t)(m * n) * sizeof *p->got);
    trit_gemm_ref(&p->w, p->q, m, p->ref);
    test_poison(p->got, (size_t)(m * n) * sizeof *p->got);
}

static void problem_free(struct problem *p) {
    trit_ternary_free(&p->w);
    free(p->tiles), free(p->bias), free(p->q), free(p->qa), free(p->qsum), free(p->ref), free(p->got);
}

static uint32_t load_u32(const void *base, int64_t byte) {
    const uint8_t *b = (const uint8_t *)base + byte;
    return (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24;
}

/* Lane's weight word j of tile (strip, chunk): the kernels' uint4 index math. */
static uint32_t weight_word(const struct problem *p, int64_t strip, int64_t chunk, int lane, int j) {
    return load_u32(p->tiles, trit_tl_lane_vec(strip, chunk, p->n_chunks, lane) * 16 + 4 * j);
}
/* Lane's activation word w (0..7) of chunk for token tok (the 32 bytes at 128 * chunk + 32t). */
static uint32_t act_word(const struct problem *p, int64_t tok, int64_t chunk, int lane, int w) {
    return load_u32(p->qa, tok * p->k_pad + chunk * TRIT_TL_CHUNK + 32 * (lane & 3) + 4 * w);
}

static void check(const struct problem *p, const char *what) {
    for (int64_t i = 0; i < p->m * p->n; i++)
        cr_assert_eq(p->got[i], p->ref[i], "%s %ldx%ld m %ld: token %ld row %ld: %d != %d", what, (long)p->n,
                     (long)p->k, (long)p->m, (long)(i / p->n), (long)(i % p->n), p->got[i], p->ref[i]);
}

/* GEMV emulation. Each lane holds rows g and g + 8 of the strip; its per-chunk partials are summed
 * over the 4 lanes of its group and over chunks (the kernel's shuffles and shared-memory sum). */
static void emulate_gemv(struct problem *p, int add_only) {
    for (int64_t strip = 0; strip < p->n_strips; strip++)
        for (int64_t tok = 0; tok < p->m; tok++) {
            int32_t rows[16] = {0};
            for (int lane = 0; lane < 32; lane++) {
                int32_t acc[2] = {0, 0};
                for (int64_t chunk = 0; chunk < p->n_chunks; chunk++) {
                    uint32_t lanes[2] = {0, 0};
                    for (int j = 0; j < 4; j++) {
                        const uint32_t w = weight_word(p, strip, chunk, lane, j);
                        const uint32_t wor = trit_add_word_or(w);
                        for (int i = 0; i < 4; i++) {
                            const uint32_t x = act_word(p, tok, chunk, lane, 2 * j + (i >> 1));
                            if (add_only) {
                                uint32_t pos, nonneg;
                                trit_add_masks(w, wor, i, &pos, &nonneg);
                                lanes[i & 1] += trit_add_widen(trit_add_select(trit_add_bias_act(x), pos, nonneg));
                            } else {
                                acc[i & 1] = trit_dp4a(trit_tl_decode(w, i), x, acc[i & 1]);
                            }
                        }
                    }
                    if (add_only) acc[0] += trit_add_lanes(lanes[0]), acc[1] += trit_add_lanes(lanes[1]);
                }
                rows[lane >> 2] += acc[0];
                rows[(lane >> 2) + 8] += acc[1];
            }
            for (int rr = 0; rr < 16; rr++) {
                const int64_t row = strip * 16 + rr;
                if (row < p->n) p->got[tok * p->n + row] = rows[rr] - (add_only ? p->bias[row] : p->qsum[tok]);
            }
        }
}

/* One mma.m16n8k32: D += A B from the 32 lanes' registers, through the fragment mapping only. */
static void emulate_mma(int32_t d[32][4], const uint32_t a[32][4], const uint32_t b[32][2]) {
    int32_t am[16][32], bm[32][8];
    for (int lane = 0; lane < 32; lane++) {
        for (int reg = 0; reg < 4; reg++)
            for (int by = 0; by < 4; by++)
                am[trit_mma_a_row(lane, reg)][trit_mma_a_col(lane, reg, by)] = (int8_t)(uint8_t)(a[lane][reg] >> (8 * by));
        for (int reg = 0; reg < 2; reg++)
            for (int by = 0; by < 4; by++)
                bm[trit_mma_b_k(lane, reg, by)][trit_mma_b_n(lane)] = (int8_t)(uint8_t)(b[lane][reg] >> (8 * by));
    }
    for (int lane = 0; lane < 32; lane++)
        for (int reg = 0; reg < 4; reg++) {
            const int r = trit_mma_c_row(lane, reg), c = trit_mma_c_col(lane, reg);
            int32_t s = 0;
            for (int kk = 0; kk < 32; kk++) s += am[r][kk] * bm[kk][c];
            d[lane][reg] += s;
        }
}

/* GEMM emulation: a warp owns one strip x 8 tokens (one n8 tile); split-K ranges summed as the
 * kernel's atomics do; tokens past m read as zero (the kernel's zero-filled copies). */
static void emulate_gemm(struct problem *p, int split) {
    memset(p->got, 0, (size_t)(p->m * p->n) * sizeof *p->got);
    for (int64_t strip = 0; strip < p->n_strips; strip++)
        for (int64_t tok0 = 0; tok0 < p->m; tok0 += 8)
            for (int z = 0; z < split; z++) {
                int64_t c0, c1;
                trit_split_range(p->n_chunks, split, z, &c0, &c1);
                int32_t d[32][4] = {{0}};
                for (int64_t chunk = c0; chunk < c1; chunk++)
                    for (int j = 0; j < 4; j++) {
                        uint32_t a[32][4], b[32][2];
                        for (int lane = 0; lane < 32; lane++) {
                            const uint32_t w = weight_word(p, strip, chunk, lane, j);
                            for (int i = 0; i < 4; i++) a[lane][i] = trit_tl_decode(w, i);
                            const int64_t tok = tok0 + trit_mma_b_n(lane);
                            for (int h = 0; h < 2; h++) b[lane][h] = tok < p->m ? act_word(p, tok, chunk, lane, 2 * j + h) : 0;
                        }
                        emulate_mma(d, a, b);
                    }
                for (int lane = 0; lane < 32; lane++)
                    for (int reg = 0; reg < 4; reg++) {
                        const int64_t row = strip * 16 + trit_mma_c_row(lane, reg);
                        const int64_t tok = tok0 + trit_mma_c_col(lane, reg);
                        if (row < p->n && tok < p->m) p->got[tok * p->n + row] += d[lane][reg] - (z == 0 ? p->qsum[tok] : 0);
                    }
            }
}

static const int64_t EMU_SHAPES[][2] = {{1, 1}, {7, 33}, {16, 128}, {17, 129}, {45, 300}, {33, 1000}, {20, 2560}};
#define N_EMU_SHAPES (sizeof EMU_SHAPES / sizeof EMU_SHAPES[0])

/* emulate_gemv (add_only 0: dp4a, 1: add-only) against trit_gemm_ref on every EMU_SHAPES shape
 * for m = 1, 2, 3 and 8, a fresh problem each from the rng seeded with `seed`. */
static void check_gemv_emulation(uint64_t seed, int add_only, const char *what) {
    struct test_rng rng;
    test_rng_seed(&rng, seed);
    const int64_t ms[] = {1, 2, 3, 8};
    for (size_t s = 0; s < N_EMU_SHAPES; s++)
        for (size_t mi = 0; mi < 4; mi++) {
            struct problem p;
            problem_init(&p, &rng, EMU_SHAPES[s][0], EMU_SHAPES[s][1], ms[mi]);
            emulate_gemv(&p, add_only);
            check(&p, what);
            problem_free(&p);
        }
}

Test(cuda_decode, gemv_dp4a_emulation_matches_reference) { check_gemv_emulation(0xd4au, 0, "gemv dp4a"); }

Test(cuda_decode, gemv_add_emulation_matches_reference) { check_gemv_emulation(0xaddu, 1, "gemv add"); }

Test(cuda_decode, gemm_mma_emulation_matches_reference) {
    struct test_rng rng;
    test_rng_seed(&rng, 0x3aau);
    const int64_t ms[] = {1, 9, 17};
    for (size_t s = 0; s < N_EMU_SHAPES; s++)
        for (size_t mi = 0; mi < 3; mi++)
            for (int split = 1; split <= 3; split += 2) {
                struct problem p;
                problem_init(&p, &rng, EMU_SHAPES[s][0], EMU_SHAPES[s][1], ms[mi]);
                emulate_gemm(&p, split);
                check(&p, split == 1 ? "gemm" : "gemm split 3");
                problem_free(&p);
            }
}
