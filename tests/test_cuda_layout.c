// labels: unit
/* test_cuda_layout.c: the CUDA backend's device layouts (cuda/ternary_layout.h) on the CPU:
 * element <-> position bijections, the repack from the canonical ternary tensor and its inverse
 * (round trip, tails, padding), the add-only row bias, and the activation layout.
 *
 *   ctest --test-dir build -R test_cuda_layout --output-on-failure */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "quant/quant.h"
#include "support.h"
#include "ternary_layout.h"

/* (n_rows, n_cols) pairs: exact tiles, one-off tails on both sides, odd sizes, one column. */
static const int64_t SHAPES[][2] = {{1, 1},   {1, 127}, {3, 5},    {15, 128}, {16, 128}, {17, 129},
                                    {31, 255}, {33, 300}, {48, 384}, {5, 1000}, {70, 6912 / 8}};
#define N_SHAPES (sizeof SHAPES / sizeof SHAPES[0])

static void random_ternary(struct test_rng *rng, int64_t n_rows, int64_t n_cols, struct trit_ternary *w) {
    cr_assert_eq(trit_ternary_init(w, n_rows, n_cols), TRIT_OK);
    for (int64_t r = 0; r < n_rows; r++)
        for (int64_t c = 0; c < n_cols; c++) trit_ternary_set(w, r, c, (int)test_rng_int(rng, -1, 1));
}

Test(cuda_layout, geometry) {
    cr_assert_eq(trit_tl_rows_pad(1), 16);
    cr_assert_eq(trit_tl_rows_pad(16), 16);
    cr_assert_eq(trit_tl_rows_pad(17), 32);
    cr_assert_eq(trit_tl_cols_pad(1), 128);
    cr_assert_eq(trit_tl_cols_pad(128), 128);
    cr_assert_eq(trit_tl_cols_pad(6912), 6912);
    cr_assert_eq(trit_tl_cols_pad(2561), 2688);
    cr_assert_eq(trit_tl_bytes(2560, 6912), 2560 * 6912 / 4);
    cr_assert_eq(trit_tl_bytes(17, 129), 32 * 256 / 4);
    _Static_assert(TRIT_TL_TILE_BYTES == TRIT_TL_STRIP * TRIT_TL_CHUNK / 4, "tile = 16 x 128 x 2 bits");
    _Static_assert(TRIT_TL_TILE_BYTES == 32 * 16, "one 16-byte load per lane per tile");
}

/* locate and element are inverse bijections between the padded matrix and (byte, bit pair). */
Test(cuda_layout, locate_is_a_bijection) {
    for (size_t s = 0; s < N_SHAPES; s++) {
        const int64_t n = trit_tl_rows_pad(SHAPES[s][0]), k = trit_tl_cols_pad(SHAPES[s][1]);
        const int64_t n_bytes = trit_tl_bytes(SHAPES[s][0], SHAPES[s][1]);
        uint8_t *seen = calloc((size_t)n_bytes, 1);
        for (int64_t r = 0; r < n; r++)
            for (int64_t c = 0; c < k; c++) {
                const struct trit_tl_pos p = trit_tl_locate(r, c, k);
                cr_assert(p.byte >= 0 && p.byte < n_bytes && (p.shift & 1) == 0 && p.shift < 8);
                cr_assert_eq(seen[p.byte] & (1u << (p.shift / 2)), 0, "(%ld, %ld) lands on a used slot",
                             (long)r, (long)c);
                seen[p.byte] = (uint8_t)(seen[p.byte] | (1u << (p.shift / 2)));
                int64_t r2, c2;
                trit_tl_element(p.byte, p.shift, k, &r2, &c2);
                cr_assert(r2 == r && c2 == c, "element(locate(%ld, %ld)) = (%ld, %ld)", (long)r, (long)c,
                          (long)r2, (long)c2);
            }
        for (int64_t b = 0; b < n_bytes; b++) cr_assert_eq(seen[b], 0xF, "byte %ld not fully used", (long)b);
        free(seen);
    }
}

/* Spot checks written from the diagram, independent of trit_mma_*: lane 5 = (g 1, t 1). */
Test(cuda_layout, diagram_spot_checks) {
    const int64_t k = 256; /* 2 chunks */
    /* row 1, col 4: tile 0, lane 4*1+1 = 5, word 0, byte 0, i 0 */
    struct trit_tl_pos p = trit_tl_locate(1, 4, k);
    cr_assert(p.byte == 16 * 5 + 0 && p.shift == 0);
    /* row 9 (g 1, +8), col 4+16+3 = 23: lane 5, word 0, byte 3, i 3 */
    p = trit_tl_locate(9, 23, k);
    cr_assert(p.byte == 16 * 5 + 3 && p.shift == 6);
    /* row 9, col 128 + 64 + 4 + 2 = 198: tile (0, 1), lane 5, word 2, byte 2, i 1 */
    p = trit_tl_locate(9, 198, k);
    cr_assert(p.byte == 512 + 16 * 5 + 4 * 2 + 2 && p.shift == 2);
    /* row 16 + 7, col 12: tile (1, 0) = offset 2 * 512, lane 4*7 + 3, word 0, byte 0, i 0 */
    p = trit_tl_locate(23, 12, k);
    cr_assert(p.byte == 2 * 512 + 16 * 31 && p.shift == 0);
}

Test(cuda_layout, pack_unpack_round_trip_and_padding) {
    struct test_rng rng;
    test_rng_seed(&rng, 0x1a70u);
    for (size_t s = 0; s < N_SHAPES; s++) {
        const int64_t n = SHAPES[s][0], k = SHAPES[s][1], k_pad = trit_tl_cols_pad(k);
        struct trit_ternary w = {0};
        random_ternary(&rng, n, k, &w);
        const int64_t n_bytes = trit_tl_bytes(n, k);
        uint8_t *packed = malloc((size_t)n_bytes);
        test_poison(packed, (size_t)n_bytes);
        cr_assert_eq(trit_tl_pack(w.codes, w.row_bytes, n, k, packed), 0);
        /* every slot of the padded matrix: the element's code, or t = 0 in the padding */
        for (int64_t r = 0; r < trit_tl_rows_pad(n); r++)
            for (int64_t c = 0; c < k_pad; c++) {
                const struct trit_tl_pos p = trit_tl_locate(r, c, k_pad);
                const int t = (int)((packed[p.byte] >> p.shift) & 3u) - 1;
                const int want = r < n && c < k ? trit_ternary_get(&w, r, c) : 0;
                cr_assert_eq(t, want, "shape %ldx%ld (%ld, %ld): %d != %d", (long)n, (long)k, (long)r, (long)c,
                             t, want);
            }
        struct trit_ternary back = {0};
        cr_assert_eq(trit_ternary_init(&back, n, k), TRIT_OK);
        test_poison(back.codes, (size_t)(n * back.row_bytes));
        trit_tl_unpack(packed, n, k, back.codes, back.row_bytes);
        back.scale = w.scale;
        back.scale_kind = w.scale_kind;
        cr_assert(trit_ternary_equal(&w, &back), "round trip %ldx%ld", (long)n, (long)k);
        cr_assert_eq(memcmp(w.codes, back.codes, (size_t)(n * w.row_bytes)), 0, "padding codes of last bytes");
        trit_ternary_free(&back);
        trit_ternary_free(&w);
        free(packed);
    }
}

/* Garbage past n_cols in a row's last canonical byte is read as t = 0; a code 3 is refused. */
Test(cuda_layout, pack_tail_garbage_and_bad_codes) {
    struct trit_ternary w = {0};
    cr_assert_eq(trit_ternary_init(&w, 2, 5), TRIT_OK); /* row_bytes 2; cols 5..7 are padding */
    trit_ternary_set(&w, 0, 4, 1);
    w.codes[1] = (uint8_t)(w.codes[1] | 0xFCu); /* row 0, cols 5..7 = code 3 */
    uint8_t packed[512 * 1];
    cr_assert_eq(trit_tl_pack(w.codes, w.row_bytes, 2, 5, packed), 0);
    for (int64_t c = 0; c < 128; c++) {
        const struct trit_tl_pos p = trit_tl_locate(0, c, 128);
        cr_assert_eq((packed[p.byte] >> p.shift) & 3u, c == 4 ? 2u : 1u, "col %ld", (long)c);
    }
    w.codes[1 * w.row_bytes + 0] = 0xFF; /* row 1, cols 0..3 = code 3 */
    cr_assert_eq(trit_tl_pack(w.codes, w.row_bytes, 2, 5, packed), -1);
    trit_ternary_free(&w);
}

Test(cuda_layout, row_bias_counts) {
    struct test_rng rng;
    test_rng_seed(&rng, 0xb1a5u);
    for (size_t s = 0; s < N_SHAPES; s++) {
        const int64_t n = SHAPES[s][0], k = SHAPES[s][1], n_pad = trit_tl_rows_pad(n);
        struct trit_ternary w = {0};
        random_ternary(&rng, n, k, &w);
        int32_t *bias = malloc((size_t)n_pad * sizeof *bias);
        trit_tl_row_bias(w.codes, w.row_bytes, n, k, bias);
        for (int64_t r = 0; r < n_pad; r++) {
            int32_t n_pos = 0, n_neg = 0;
            for (int64_t c = 0; r < n && c < k; c++) {
                n_pos += trit_ternary_get(&w, r, c) == 1;
                n_neg += trit_ternary_get(&w, r, c) == -1;
            }
            cr_assert_eq(bias[r], 128 * n_pos + 127 * n_neg);
        }
        free(bias);
        trit_ternary_free(&w);
    }
}

Test(cuda_layout, act_layout) {
    /* pos and col are inverse on whole chunks; word form agrees with the byte form */
    for (int64_t k = 0; k < 3 * 128; k++) {
        cr_assert_eq(trit_al_col(trit_al_pos(k)), k);
        cr_assert_eq(trit_al_pos(trit_al_col(k)), k);
        if (k % 4 == 0) cr_assert_eq(trit_al_word(k / 4) * 4, trit_al_pos(k));
        if (k % 4) cr_assert_eq(trit_al_pos(k), trit_al_pos(k - k % 4) + k % 4, "4 cols stay one word");
    }
    /* lane t's 32 bytes of chunk 0: word 2j + h holds cols 32j + 16h + 4t .. +3 */
    for (int t = 0; t < 4; t++)
        for (int j = 0; j < 4; j++)
            for (int h = 0; h < 2; h++) cr_assert_eq(trit_al_pos(32 * j + 16 * h + 4 * t), 32 * t + 4 * (2 * j + h));

    struct test_rng rng;
    test_rng_seed(&rng, 0xac7u);
    const int64_t m = 3, k = 301, k_pad = trit_tl_cols_pad(k);
    int8_t q[3 * 301], back[3 * 301], packed[3 * 384];
    for (int64_t i = 0; i < m * k; i++) q[i] = (int8_t)test_rng_int(&rng, -128, 127);
    test_poison(packed, sizeof packed);
    trit_al_pack(q, m, k, packed);
    for (int64_t i = 0; i < m; i++)
        for (int64_t p = 0; p < k_pad; p++)
            if (trit_al_col(p) >= k) cr_assert_eq(packed[i * k_pad + p], 0, "padding must be zero");
    trit_al_unpack(packed, m, k, back);
    cr_assert_eq(memcmp(q, back, sizeof q), 0);
}
