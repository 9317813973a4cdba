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
    /* TRIT_EPI_F32: the buffer holds the group rule's fp32 values; they come back as they are */
    const float vals[] = {0.0f, -0.0f, 1.5f, -3.25e-20f, 6.5e30f, 1e-45f};
    for (size_t i = 0; i < sizeof vals / sizeof vals[0]; i++) {
        int32_t bits;
        memcpy(&bits, &vals[i], sizeof bits);
        const float g = trit_pending_one(bits, s, 0.5f, TRIT_EPI_F32);
        const float e = trit_pending_one(12345, s, 0.5f, 1);
        const float want_e = trit_epilogue_one(12345, s, 0.5f, 1);
        cr_assert(memcmp(&e, &want_e, sizeof e) == 0, "scale kinds 0 and 1 are the epilogue's");
        cr_assert(memcmp(&g, &vals[i], sizeof g) == 0, "f32 %a came back as %a", (double)vals[i], (double)g);
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

/* ---- the group rule: block activations, the group GEMV and GEMM --------------------------------- */

/* trit_act_scale_of (the kernels') against quant.h's trit_act_scale, over the floor and far above. */
Test(cuda_decode, act_scale_of_matches_quant) {
    const float fixed[] = {0.0f, 1e-30f, 9.99e-6f, 1e-5f, 1.0001e-5f, 0.5f, 1.0f, 127.0f, 3.4e38f};
    for (size_t i = 0; i < sizeof fixed / sizeof fixed[0]; i++)
        cr_assert_eq(trit_act_scale_of(fixed[i]), trit_act_scale(fixed[i]), "amax %a", (double)fixed[i]);
    struct test_rng rng;
    test_rng_seed(&rng, 0x5ca1u);
    for (int i = 0; i < 100000; i++) {
        const float amax = ldexpf(test_rng_uniform(&rng, 1.0f, 2.0f), (int)test_rng_int(&rng, -40, 40));
        cr_assert_eq(trit_act_scale_of(amax), trit_act_scale(amax), "amax %a", (double)amax);
    }
}

/* A group-scaled problem: W (n, k) with codes -1, 0, +1 and a few +2, group scales; x (m, k) fp32.
 * Through the emulated block quantizer: qa (act layout), bsum (m, n_kb), s and inv (m, n_ab). */
struct gproblem {
    int64_t n, k, m, k_pad, n_chunks, n_strips, n_kb, n_ab, act_block;
    struct trit_ternary w;
    uint8_t *tiles;
    float *x;
    int8_t *qa;
    int32_t *bsum;
    float *s, *inv;
    float *ref, *got; /* (m, n) */
};

/* The block quantizer's two kernels (act_quant.cu), one warp at a time: act_block 64, lane l < 16
 * of block kb quantizes cols 64 kb + 4l .. + 3 with the block's absmax; act_block 0, the per-token
 * kernel, then each block's sum of q by dp4a against 0x01010101 over its 16 words. */
static void emulate_act_quant_blocks(struct gproblem *p) {
    memset(p->qa, 0x5A, (size_t)(p->m * p->k_pad)); /* every byte must be written */
    for (int64_t tok = 0; tok < p->m; tok++) {
        const float *xr = p->x + tok * p->k;
        uint8_t *qr = (uint8_t *)p->qa + tok * p->k_pad;
        float tok_s = 0.0f;
        if (p->act_block == 0) {
            float amax = 0.0f;
            for (int64_t c = 0; c < p->k; c++) amax = fmaxf(amax, fabsf(xr[c]));
            tok_s = trit_act_scale_of(amax);
            p->s[tok] = tok_s;
            p->inv[tok] = trit_group_inv(tok_s);
        }
        for (int64_t kb = 0; kb < p->k_pad / 64; kb++) {
            float amax = 0.0f;
            for (int64_t c = 64 * kb; c < 64 * kb + 64 && c < p->k; c++) amax = fmaxf(amax, fabsf(xr[c]));
            const float s = p->act_block ? trit_act_scale_of(amax) : tok_s;
            int32_t sum = 0;
            for (int lane = 0; lane < 16; lane++) {
                const int64_t kw = kb * 16 + lane;
                uint32_t word = 0;
                for (int b = 0; b < 4; b++) {
                    const int64_t c = kw * 4 + b;
                    const int32_t v = c < p->k ? trit_act_quant_one(xr[c], s) : 0;
                    word |= ((uint32_t)v & 0xFFu) << (8 * b);
                    sum += p->act_block ? v : 0; /* act_block 64: the quantizer adds its own values */
                }
                const int64_t at = trit_al_word(kw) * 4;
                for (int b = 0; b < 4; b++) qr[at + b] = (uint8_t)(word >> (8 * b));
            }
            if (!p->act_block) /* act_block 0: the second kernel reads the words back */
                for (int lane = 0; lane < 16; lane++)
                    sum = trit_dp4a(load_u32(qr, trit_al_word(kb * 16 + lane) * 4), 0x01010101u, sum);
            if (kb < p->n_kb) {
                p->bsum[tok * p->n_kb + kb] = sum;
                if (p->act_block) p->s[tok * p->n_kb + kb] = s, p->inv[tok * p->n_kb + kb] = trit_group_inv(s);
            }
        }
    }
}

static void gproblem_init(struct gproblem *p, struct test_rng *rng, int64_t n, int64_t k, int64_t m, int64_t group,
                          int64_t act_block) {
    memset(p, 0, sizeof *p);
    p->n = n, p->k = k, p->m = m, p->act_block = act_block;
    p->k_pad = trit_tl_cols_pad(k), p->n_chunks = p->k_pad / TRIT_TL_CHUNK;
    p->n_strips = trit_tl_rows_pad(n) / TRIT_TL_STRIP;
    p->n_kb = (k + 63) / 64, p->n_ab = act_block ? p->n_kb : 1;
    cr_assert_eq(trit_ternary_init_grouped(&p->w, n, k, group), TRIT_OK);
    for (int64_t r = 0; r < n; r++)
        for (int64_t c = 0; c < k; c++) trit_ternary_set(&p->w, r, c, test_rng_int(rng, 0, 49) == 0 ? 2 : (int)test_rng_int(rng, -1, 1));
    trit_ternary_set(&p->w, 0, 0, 2); /* at least one +2 */
    for (int64_t i = 0; i < n * trit_ternary_n_groups(&p->w); i++) p->w.group_scales[i] = test_rng_uniform(rng, 1e-3f, 0.5f);
    p->tiles = malloc((size_t)trit_tl_bytes(n, k));
    cr_assert_eq(trit_tl_pack(p->w.codes, p->w.row_bytes, n, k, p->tiles), -1, "+2 refused with one scale");
    cr_assert_eq(trit_tl_pack_codes(p->w.codes, p->w.row_bytes, n, k, 1, p->tiles), 0);
    p->x = malloc((size_t)(m * k) * sizeof *p->x);
    for (int64_t i = 0; i < m * k; i++) p->x[i] = test_rng_normal(rng) * test_rng_uniform(rng, 0.01f, 4.0f);
    p->x[0] = -1000.0f; /* an outlier: its block's scale differs from the others' by far */
    p->qa = malloc((size_t)(m * p->k_pad));
    p->bsum = malloc((size_t)(m * p->n_kb) * sizeof *p->bsum);
    p->s = malloc((size_t)(m * p->n_ab) * sizeof *p->s);
    p->inv = malloc((size_t)(m * p->n_ab) * sizeof *p->inv);
    emulate_act_quant_blocks(p);

    /* the CPU's quantizer and the group rule's reference */
    int8_t *q = malloc((size_t)(m * k)), *q_un = malloc((size_t)(m * k));
    float *s_ref = malloc((size_t)(m * p->n_ab) * sizeof *s_ref);
    for (int64_t i = 0; i < m; i++) trit_quantize_row_i8_blocks(p->x + i * k, k, act_block, q + i * k, s_ref + i * p->n_ab);
    trit_al_unpack(p->qa, m, k, q_un);
    cr_assert(memcmp(q_un, q, (size_t)(m * k)) == 0, "block quantizer: q differs from trit_quantize_row_i8_blocks");
    cr_assert(memcmp(p->s, s_ref, (size_t)(m * p->n_ab) * sizeof *s_ref) == 0, "block quantizer: scales differ");
    for (int64_t i = 0; i < m; i++)
        for (int64_t pos = 0; pos < p->k_pad; pos++)
            if (trit_al_col(pos) >= k) cr_assert_eq(p->qa[i * p->k_pad + pos], 0, "padding at %ld", (long)pos);
    for (int64_t i = 0; i < m; i++)
        for (int64_t kb = 0; kb < p->n_kb; kb++) {
            int32_t sum = 0;
            for (int64_t c = 64 * kb; c < 64 * kb + 64 && c < k; c++) sum += q[i * k + c];
            cr_assert_eq(p->bsum[i * p->n_kb + kb], sum, "block sum token %ld block %ld", (long)i, (long)kb);
        }
    p->ref = malloc((size_t)(m * n) * sizeof *p->ref);
    p->got = malloc((size_t)(m * n) * sizeof *p->got);
    trit_gemm_group_ref(&p->w, q, m, s_ref, act_block, p->ref);
    test_poison(p->got, (size_t)(m * n) * sizeof *p->got);
    free(q), free(q_un), free(s_ref);
}

static void gproblem_free(struct gproblem *p) {
    trit_ternary_free(&p->w);
    free(p->tiles), free(p->x), free(p->qa), free(p->bsum), free(p->s), free(p->inv), free(p->ref), free(p->got);
}

static uint32_t gweight_word(const struct gproblem *p, int64_t strip, int64_t chunk, int lane, int j) {
    return load_u32(p->tiles, trit_tl_lane_vec(strip, chunk, p->n_chunks, lane) * 16 + 4 * j);
}
static uint32_t gact_word(const struct gproblem *p, int64_t tok, int64_t chunk, int lane, int w) {
    return load_u32(p->qa, tok * p->k_pad + chunk * TRIT_TL_CHUNK + 32 * (lane & 3) + 4 * w);
}

/* The terms' indices as the kernels compute them: inv of (token, block), d of (row, block). */
static float g_inv(const struct gproblem *p, int64_t tok, int64_t kb) {
    return p->inv[p->act_block ? tok * p->n_kb + kb : tok];
}
static float g_scale(const struct gproblem *p, int64_t row, int64_t kb) {
    return p->w.group_scales[row * trit_ternary_n_groups(&p->w) + (kb >> (p->w.group == 64 ? 0 : 1))];
}

static void gcheck(const struct gproblem *p, const char *what) {
    for (int64_t i = 0; i < p->m * p->n; i++)
        cr_assert(memcmp(&p->got[i], &p->ref[i], sizeof(float)) == 0,
                  "%s %ldx%ld m %ld group %ld act_block %ld: token %ld row %ld: %a != %a", what, (long)p->n, (long)p->k,
                  (long)p->m, (long)p->w.group, (long)p->act_block, (long)(i / p->n), (long)(i % p->n),
                  (double)p->got[i], (double)p->ref[i]);
}

/* trit_gemv_group_kernel's arithmetic: per chunk a lane's partial per k-block (words 0, 1 | 2, 3)
 * for rows g and g + 8; the 4 lanes of a group summed (the shuffles); then the blocks ascending,
 * minus the block sum of q, through trit_group_step (the summing thread). */
static void emulate_gemv_group(struct gproblem *p) {
    int32_t(*part)[2][16] = malloc((size_t)p->n_chunks * sizeof *part);
    for (int64_t strip = 0; strip < p->n_strips; strip++)
        for (int64_t tok = 0; tok < p->m; tok++) {
            memset(part, 0, (size_t)p->n_chunks * sizeof *part);
            for (int64_t chunk = 0; chunk < p->n_chunks; chunk++)
                for (int lane = 0; lane < 32; lane++) {
                    int32_t pb[2][2] = {{0, 0}, {0, 0}};
                    for (int j = 0; j < 4; j++) {
                        const uint32_t w = gweight_word(p, strip, chunk, lane, j);
                        for (int i = 0; i < 4; i++)
                            pb[j >> 1][i & 1] = trit_dp4a(trit_tl_decode(w, i), gact_word(p, tok, chunk, lane, 2 * j + (i >> 1)),
                                                          pb[j >> 1][i & 1]);
                    }
                    for (int b = 0; b < 2; b++)
                        for (int r = 0; r < 2; r++) part[chunk][b][(lane >> 2) + 8 * r] += pb[b][r];
                }
            for (int rr = 0; rr < 16; rr++) {
                const int64_t row = strip * 16 + rr;
                if (row >= p->n) continue;
                float y = 0.0f;
                for (int64_t chunk = 0; chunk < p->n_chunks; chunk++)
                    for (int b = 0; b < 2; b++) {
                        const int64_t kb = 2 * chunk + b;
                        if (kb >= p->n_kb) break;
                        y = trit_group_step(y, part[chunk][b][rr] - p->bsum[tok * p->n_kb + kb], g_inv(p, tok, kb),
                                            g_scale(p, row, kb));
                    }
                p->got[tok * p->n + row] = y;
            }
        }
    free(part);
}

/* trit_gemm_group_kernel's arithmetic: one warp, one strip x 8 tokens; per chunk and k-block the
 * mma sums from zero over k-steps 2 blk and 2 blk + 1 (B = act words 4 blk .. 4 blk + 3), then each
 * fragment element's term on clamped row and token indices; stores only inside (m, n). */
static void emulate_gemm_group(struct gproblem *p) {
    for (int64_t strip = 0; strip < p->n_strips; strip++)
        for (int64_t tok0 = 0; tok0 < p->m; tok0 += 8) {
            float y[32][4] = {{0}};
            for (int64_t chunk = 0; chunk < p->n_chunks; chunk++)
                for (int blk = 0; blk < 2; blk++) {
                    const int64_t kb = 2 * chunk + blk;
                    if (kb >= p->n_kb) break;
                    int32_t d[32][4] = {{0}};
                    for (int js = 0; js < 2; js++) {
                        const int j = 2 * blk + js;
                        uint32_t a[32][4], b[32][2];
                        for (int lane = 0; lane < 32; lane++) {
                            const uint32_t w = gweight_word(p, strip, chunk, lane, j);
                            for (int i = 0; i < 4; i++) a[lane][i] = trit_tl_decode(w, i);
                            const int64_t tok = tok0 + trit_mma_b_n(lane);
                            for (int h = 0; h < 2; h++) b[lane][h] = tok < p->m ? gact_word(p, tok, chunk, lane, 2 * j + h) : 0;
                        }
                        emulate_mma(d, a, b);
                    }
                    for (int lane = 0; lane < 32; lane++)
                        for (int reg = 0; reg < 4; reg++) {
                            int64_t row = strip * 16 + trit_mma_c_row(lane, reg), tok = tok0 + trit_mma_c_col(lane, reg);
                            row = row < p->n ? row : p->n - 1;
                            tok = tok < p->m ? tok : p->m - 1;
                            y[lane][reg] = trit_group_step(y[lane][reg], d[lane][reg] - p->bsum[tok * p->n_kb + kb],
                                                           g_inv(p, tok, kb), g_scale(p, row, kb));
                        }
                }
            for (int lane = 0; lane < 32; lane++)
                for (int reg = 0; reg < 4; reg++) {
                    const int64_t row = strip * 16 + trit_mma_c_row(lane, reg), tok = tok0 + trit_mma_c_col(lane, reg);
                    if (row < p->n && tok < p->m) p->got[tok * p->n + row] = y[lane][reg];
                }
        }
}

/* Shapes with tails: K ending mid-chunk (an odd number of k-blocks) and mid-block, N past a strip. */
static const int64_t GROUP_SHAPES[][2] = {{1, 64}, {7, 128}, {17, 192}, {33, 384}, {20, 640}, {45, 1000}, {16, 2560}};
#define N_GROUP_SHAPES (sizeof GROUP_SHAPES / sizeof GROUP_SHAPES[0])

static void check_group_emulation(uint64_t seed, int gemm, const int64_t *ms, size_t n_ms) {
    struct test_rng rng;
    test_rng_seed(&rng, seed);
    for (size_t s = 0; s < N_GROUP_SHAPES; s++)
        for (size_t mi = 0; mi < n_ms; mi++)
            for (int variant = 0; variant < 3; variant++) {
                /* g64 with block activations (Q2_0, Bonsai), g128 with block activations, g64 per token (BitNet Q2_0) */
                const int64_t group = variant == 1 ? 128 : 64, act_block = variant == 2 ? 0 : 64;
                struct gproblem p;
                gproblem_init(&p, &rng, GROUP_SHAPES[s][0], GROUP_SHAPES[s][1], ms[mi], group, act_block);
                if (gemm) emulate_gemm_group(&p);
                else emulate_gemv_group(&p);
                gcheck(&p, gemm ? "gemm group" : "gemv group");
                gproblem_free(&p);
            }
}

Test(cuda_decode, gemv_group_emulation_matches_group_ref) {
    const int64_t ms[] = {1, 3, 8};
    check_group_emulation(0x96e1u, 0, ms, 3);
}

Test(cuda_decode, gemm_group_emulation_matches_group_ref) {
    const int64_t ms[] = {1, 9, 17};
    check_group_emulation(0x96e2u, 1, ms, 3);
}
