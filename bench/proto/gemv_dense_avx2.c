/*
 * gemv_dense_avx2.c: prototype. Can a ternary weight layout denser than trit's 2 bits a weight be
 * decoded on AVX2 fast enough that the decode GEMV (m = 1, weights streamed from DRAM) gets
 * faster? Standalone: packs random ternary matrices into the candidate layouts, checks every
 * kernel's int32 accumulators bit for bit against a naive loop, then times them interleaved with
 * trit's 2-bit AVX2 kernel (trit_cpu_gemm_i32) for 1 and 2 threads.
 *
 * Build (from the repository root, after the Release build in build/):
 *   gcc -O2 -mavx2 -mfma -mf16c -pthread -std=gnu11 -Iinclude -Ihost \
 *       bench/proto/gemv_dense_avx2.c -Lbuild -ltrit -Wl,-rpath,$PWD/build -lm -lpthread \
 *       -o /tmp/gemv_dense_avx2
 * (The results in gemv_dense_avx2_zen3.log were taken before trit adopted the one-pass 2-bit loop
 * measured here as t2-1pass: trit2 in that log is the older two-pass kernel.)
 * Run:
 *   /tmp/gemv_dense_avx2                    check, then time the 2B-4T shapes (about a minute)
 *   /tmp/gemv_dense_avx2 --check-only       correctness only
 *   options: --rotate-mb N (weight copies cycled per kernel, default 512), --reps N (interleaved
 *            rounds, default 25), --calls N (timed calls per kernel and round, default 12),
 *            --prefetch BYTES (software prefetch distance of the prototype kernels, default 4096),
 *            --threads 1|2 (default both), --skip-check, --skip-hot
 *
 * Kernels (all exact int32 acc[r] = sum_c t[r,c] * q[c], q int8 in [-128, 127]):
 *
 *   trit2     trit's packed 2-bit layout and AVX2 kernel (host/cpu/kernels.h), 2 bits a weight.
 *
 *   t2-1pass  the same packed bytes, read by a single-pass m = 1 loop written here (both 8-row halves
 *             of each 64-byte vector at once; see the t2 section). The fair 2-bit baseline: it
 *             separates what the loop order and prefetch give from what the denser layout gives.
 *
 *   tl2       5 bits per 3 weights = 1.67 bits a weight (bitnet.cpp's TL2 idea). Columns in groups
 *          of 3; a group's weights (t0, t1, t2) give v = 9 t0 + 3 t1 + t2 in [-13, 13], stored as a
 *          4-bit magnitude |v| (0..13) and a sign bit (v < 0). Per token, each group gets a table
 *          E[m] = (the triple with v = m) . (q0, q1, q2), 16 int16 entries (|E| <= 384), stored as
 *          a 16-byte low-byte table and a 16-byte high-byte table (32 bytes a group).
 *          Layout: 32-row blocks; a block's columns in steps of 8 groups (24 columns); one step is
 *          160 bytes: 4 nibble vectors (byte p of vector v: magnitude of group 2v in the low nibble,
 *          of group 2v+1 in the high nibble) and 1 sign vector (bit j of byte p: sign of group j).
 *          Byte p holds block row ROW_OF_BYTE(p) (a permutation that makes the unpacks below land
 *          rows in order). Steps of a block are contiguous, blocks follow each other. Tail columns
 *          (n_cols not a multiple of 24) are zero weights in the last step, whose table entries
 *          come from zero activations; tail rows are zero weights, computed and dropped. Plus one
 *          int32 per row, nneg (below).
 *          Inner loop, per group and 32 rows (11.5 ALU ops per 96 weights; the 2-bit loops spend
 *          11.25-11.6 per 96):
 *            idx  = nibbles & 0x0F  (or (nibbles >> 4) & 0x0F)           1 (1.5 amortized) op
 *            mask = cmpeq(signs & bit_j, bit_j)                             2 ops
 *            lo   = pshufb(table_lo, idx) ^ mask; hi = pshufb(table_hi, idx) ^ mask   4 ops
 *            acc16[0] += unpacklo8(lo, hi); acc16[1] += unpackhi8(lo, hi)          4 ops
 *          The xor turns E into ~E = -E - 1 for a negative sign; the +1 per negative group is a
 *          per-row constant (nneg[r], counted when packing) added at the end. |E ^ mask| <= 385,
 *          so int16 holds 85 groups: every 10 steps (80 groups, |acc16| <= 30800) the two int16
 *          accumulators are widened into four int32 ones.
 *          "tl2": each pool thread builds its own copy of the token's tables before its first
 *          task; "tl2-shared": the caller builds one copy before the parallel part. Both are
 *          included in the timed call; "tl2-tables" times the table build alone.
 *
 *   b3        5 weights per byte, base 3 (llama.cpp TQ1_0's fixed-point trick): digits d = t + 1,
 *          v = sum_j d_j 3^(4-j), byte b = ceil(v * 256 / 243); digit j = floor(3 y_j / 256) with
 *          y_j = b 3^j mod 256. 1.6 bits a weight. Stored as b ^ 0x80, so that y_{j+1} = 3 y_j is
 *          two vpaddb in that biased domain and the digit is two signed compares:
 *          -d = cmpgt(y, -43) + cmpgt(y, 42). Then vpmaddubsw(q + 128 as u8, -d) into int16, as
 *          trit's kernel does with 2-bit codes; a per-row constant 128 * sum(d) and sum(q) undo the
 *          biases. Layout: 32-row blocks (4 vectors of 8 rows), 20-column slabs of 128 bytes:
 *          byte 4n + i of vector h holds row 8h + n, columns 20 s + 4 j + i (digit j). Widen every
 *          6 slabs (30 pair sums of |x| <= 1020 per int16 lane). 6.6 ALU ops per 32 weights.
 *
 *   trit2-m4, tl2-m4  4 tokens per call (the prompt side): trit_cpu_gemm_i32 with m = 4, and a
 *          4-token tl2 kernel that shares the nibble and sign work between the tokens.
 *
 * Timing: every kernel's weights are copied until the copies fill --rotate-mb, and each call reads
 * the next copy, so that weights come from DRAM (the L3 is 32 MB); variants that share copies
 * start a third of the cycle apart. Kernels alternate in batches of --calls within each round,
 * every call is timed alone; the table gives the median, 10th percentile and fastest call. The
 * streaming-read bandwidth is measured in the same rounds (calls that read 8 MB each, cycling
 * through a 512 MB buffer). Threads: trit's pool (host/core/threadpool.h) for every kernel, 4
 * contiguous row ranges per thread as trit_cpu_gemm_i32 does; the 2-thread rows also say how many
 * of the prototype kernels' tasks the worker thread ran (on a shared machine it may get no core).
 * The last section repeats the kernels on a 256 x 2560 matrix that stays in L2: the compute
 * ceiling of each kernel.
 */
#define _GNU_SOURCE
#include <immintrin.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/core.h"
#include "core/threadpool.h"
#include "cpu/kernels.h"
#include "quant/quant.h"

/* ---- small helpers -------------------------------------------------------------------------- */

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static uint64_t rng_state = 0x9E3779B97F4A7C15ull;
static uint64_t rng_next(void) { /* splitmix64 */
    uint64_t z = (rng_state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static void *xalloc(size_t n) { /* 64-byte aligned, zeroed, or exit */
    size_t rounded = (n + 63) / 64 * 64;
    void *p = aligned_alloc(64, rounded ? rounded : 64);
    if (!p) {
        fprintf(stderr, "out of memory (%zu bytes)\n", n);
        exit(2);
    }
    memset(p, 0, rounded ? rounded : 64);
    return p;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Software prefetch distance along the weight stream of the prototype's kernels (bytes; 0: none),
 * --prefetch. trit's kernel prefetches 1024 bytes ahead; on this Zen 3 VM (1 thread, DRAM) the
 * single-pass kernels here ran fastest at 3-8 KB (with 1 KB or none, 20-50% slower). */
static int64_t g_prefetch = 4096;

static int64_t imin(int64_t a, int64_t b) { return a < b ? a : b; }

static int32_t sum_i8(const int8_t *q, int64_t n) { /* as trit's gemm_avx2.c */
    const __m256i ones8 = _mm256_set1_epi8(1), ones16 = _mm256_set1_epi16(1);
    __m256i s = _mm256_setzero_si256();
    int64_t i = 0;
    for (; i + 32 <= n; i += 32)
        s = _mm256_add_epi32(s, _mm256_madd_epi16(_mm256_maddubs_epi16(ones8, _mm256_loadu_si256((const __m256i *)(q + i))), ones16));
    int32_t lanes[8], total = 0;
    _mm256_storeu_si256((__m256i *)lanes, s);
    for (int k = 0; k < 8; k++) total += lanes[k];
    for (; i < n; i++) total += q[i];
    return total;
}

/* ---- tl2: 4-bit magnitude + sign per 3 weights ---------------------------------------------- */

#define TL2_ROWS 32
#define TL2_STEP_GROUPS 8
#define TL2_STEP_COLS (3 * TL2_STEP_GROUPS)
#define TL2_STEP_BYTES 160 /* 4 nibble vectors + 1 sign vector */
#define TL2_WIDEN_STEPS 10 /* 80 groups: 80 * 385 = 30800 <= 32767 */
#define TL2_TABLE_BYTES 32 /* per group: lo[16], hi[16] */
_Static_assert(TL2_WIDEN_STEPS * TL2_STEP_GROUPS * 385 <= 32767, "tl2 int16 accumulators overflow");

/* Block row held by byte p of a 32-byte vector: unpacklo8 then gives rows 0..15 in order, unpackhi8
 * rows 16..31 (the unpacks interleave within 128-bit lanes). The map is its own inverse. */
#define ROW_OF_BYTE(p) ((p) < 8 ? (p) : (p) < 16 ? (p) + 8 : (p) < 24 ? (p) - 8 : (p))

/* digits of magnitude m in 0..13: the triple (t0, t1, t2) in {-1,0,1}^3 with 9 t0 + 3 t1 + t2 = m.
 * Entries 14, 15 are never indexed (zero). */
static int8_t tl2_digit[3][16];
/* tl2_bit[j]: bit j in every byte, for the sign masks. Filled at run time (tl2_init) so
 * that GCC reads them as memory operands; with the values known it rebuilds each one inside the
 * loop with vmovd + vpbroadcastb, a shuffle-port op. */
static uint8_t tl2_bit[8][32] __attribute__((aligned(32)));

static void tl2_init(void) {
    for (int j = 0; j < 8; j++) memset(tl2_bit[j], 1 << j, 32);
    for (int t0 = -1; t0 <= 1; t0++)
        for (int t1 = -1; t1 <= 1; t1++)
            for (int t2 = -1; t2 <= 1; t2++) {
                int v = 9 * t0 + 3 * t1 + t2;
                if (v < 0) continue;
                tl2_digit[0][v] = (int8_t)t0, tl2_digit[1][v] = (int8_t)t1, tl2_digit[2][v] = (int8_t)t2;
            }
}

struct tl2_matrix {
    int64_t n_rows, n_cols, n_rb, n_steps, n_groups; /* n_groups = 8 n_steps (padded) */
    uint8_t *packed;                                  /* n_rb * n_steps * 160 */
    int32_t *nneg;                                    /* per padded row: groups with sign 1 */
};

static int64_t tl2_bytes(const struct tl2_matrix *w) { return w->n_rb * w->n_steps * TL2_STEP_BYTES; }

/* t: n_rows x n_cols, row-major, in {-1, 0, 1}. */
static void tl2_pack(const int8_t *t, int64_t n_rows, int64_t n_cols, struct tl2_matrix *w) {
    w->n_rows = n_rows, w->n_cols = n_cols;
    w->n_rb = (n_rows + TL2_ROWS - 1) / TL2_ROWS;
    w->n_steps = (n_cols + TL2_STEP_COLS - 1) / TL2_STEP_COLS;
    w->n_groups = w->n_steps * TL2_STEP_GROUPS;
    w->packed = xalloc((size_t)tl2_bytes(w));
    w->nneg = xalloc((size_t)(w->n_rb * TL2_ROWS) * sizeof(int32_t));
    for (int64_t rb = 0; rb < w->n_rb; rb++)
        for (int p = 0; p < TL2_ROWS; p++) {
            int64_t r = rb * TL2_ROWS + ROW_OF_BYTE(p);
            if (r >= n_rows) continue; /* padding rows: magnitude 0, sign 0 */
            for (int64_t g = 0; g < w->n_groups; g++) {
                int tt[3];
                for (int k = 0; k < 3; k++) {
                    int64_t c = 3 * g + k;
                    tt[k] = c < n_cols ? t[r * n_cols + c] : 0;
                }
                int v = 9 * tt[0] + 3 * tt[1] + tt[2];
                int sign = v < 0, mag = sign ? -v : v;
                int64_t s = g / TL2_STEP_GROUPS;
                int j = (int)(g % TL2_STEP_GROUPS);
                uint8_t *step = w->packed + (rb * w->n_steps + s) * TL2_STEP_BYTES;
                step[32 * (j / 2) + p] |= (uint8_t)(mag << (4 * (j % 2)));
                step[128 + p] |= (uint8_t)(sign << j);
                w->nneg[rb * TL2_ROWS + ROW_OF_BYTE(p)] += sign;
            }
        }
}

/* Per token: tables for every (padded) group, group g at tab + stride * g (stride 32 for one
 * token; the 4-token kernel interleaves its tokens' tables, stride 128), 32-byte aligned.
 * Entry m of group g: E = sum_k digit[k][m] * q[3g + k] (q = 0 past n_cols), as int16;
 * tab[stride g + m] = low byte, tab[stride g + 16 + m] = high byte. */
static void tl2_build_tables_strided(const int8_t *q, int64_t n_cols, int64_t n_groups, uint8_t *tab,
                                     int64_t stride) {
    const __m256i d0 = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)tl2_digit[0]));
    const __m256i d1 = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)tl2_digit[1]));
    const __m256i d2 = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)tl2_digit[2]));
    /* per 128-bit lane (8 int16): low bytes to bytes 0..7, high bytes to 8..15 */
    const __m256i split = _mm256_setr_epi8(0, 2, 4, 6, 8, 10, 12, 14, 1, 3, 5, 7, 9, 11, 13, 15,
                                           0, 2, 4, 6, 8, 10, 12, 14, 1, 3, 5, 7, 9, 11, 13, 15);
    int64_t full = n_cols / 3;
    for (int64_t g = 0; g < n_groups; g++) {
        int16_t a0, a1, a2;
        if (g < full) {
            a0 = q[3 * g], a1 = q[3 * g + 1], a2 = q[3 * g + 2];
        } else {
            a0 = 3 * g < n_cols ? q[3 * g] : 0;
            a1 = 3 * g + 1 < n_cols ? q[3 * g + 1] : 0;
            a2 = 3 * g + 2 < n_cols ? q[3 * g + 2] : 0;
        }
        __m256i e = _mm256_add_epi16(_mm256_sign_epi16(_mm256_set1_epi16(a0), d0),
                                     _mm256_add_epi16(_mm256_sign_epi16(_mm256_set1_epi16(a1), d1),
                                                      _mm256_sign_epi16(_mm256_set1_epi16(a2), d2)));
        e = _mm256_shuffle_epi8(e, split);         /* [lo0-7 hi0-7 | lo8-15 hi8-15] */
        e = _mm256_permute4x64_epi64(e, 0xD8);     /* [lo0-15 | hi0-15] */
        _mm256_store_si256((__m256i *)(tab + stride * g), e);
    }
}

static void tl2_build_tables(const int8_t *q, int64_t n_cols, int64_t n_groups, uint8_t *tab) {
    tl2_build_tables_strided(q, n_cols, n_groups, tab, TL2_TABLE_BYTES);
}

/* An empty asm that "changes" v: keeps GCC from reassociating the accumulator adds into a tree
 * whose partial sums it spills (the same trick as trit's gemm_avx2.c). */
#define KEEP_ORDER(v) __asm__("" : "+x"(v))

#define TL2_GROUP(IDX, J)                                                                          \
    do {                                                                                           \
        const __m256i tl = _mm256_broadcastsi128_si256(_mm_load_si128((const __m128i *)(ts + 32 * (J))));      \
        const __m256i th = _mm256_broadcastsi128_si256(_mm_load_si128((const __m128i *)(ts + 32 * (J) + 16))); \
        const __m256i bit = _mm256_load_si256((const __m256i *)tl2_bit[J]);                       \
        const __m256i mk = _mm256_cmpeq_epi8(_mm256_and_si256(sg, bit), bit);                      \
        const __m256i lo = _mm256_xor_si256(_mm256_shuffle_epi8(tl, IDX), mk);                     \
        const __m256i hi = _mm256_xor_si256(_mm256_shuffle_epi8(th, IDX), mk);                     \
        a16lo = _mm256_add_epi16(a16lo, _mm256_unpacklo_epi8(lo, hi));                             \
        a16hi = _mm256_add_epi16(a16hi, _mm256_unpackhi_epi8(lo, hi));                             \
        KEEP_ORDER(a16lo);                                                                         \
        KEEP_ORDER(a16hi);                                                                         \
    } while (0)

/* Row blocks [rb0, rb1): out[r] for the real rows among them. */
static void tl2_gemv_rows(const struct tl2_matrix *w, const uint8_t *tab, int64_t rb0, int64_t rb1,
                          int32_t *out) {
    const __m256i m0f = _mm256_set1_epi8(0x0F);
    for (int64_t rb = rb0; rb < rb1; rb++) {
        const uint8_t *wb = w->packed + rb * w->n_steps * TL2_STEP_BYTES;
        __m256i r0 = _mm256_setzero_si256(), r1 = r0, r2 = r0, r3 = r0;
        for (int64_t s0 = 0; s0 < w->n_steps; s0 += TL2_WIDEN_STEPS) {
            int64_t s1 = imin(w->n_steps, s0 + TL2_WIDEN_STEPS);
            __m256i a16lo = _mm256_setzero_si256(), a16hi = a16lo; /* rows 0..15, 16..31 */
            for (int64_t s = s0; s < s1; s++) {
                const uint8_t *ws = wb + s * TL2_STEP_BYTES;
                const uint8_t *ts = tab + s * TL2_STEP_GROUPS * TL2_TABLE_BYTES;
                if (g_prefetch) {
                    _mm_prefetch((const char *)ws + g_prefetch, _MM_HINT_T0);
                    _mm_prefetch((const char *)ws + g_prefetch + 64, _MM_HINT_T0);
                    _mm_prefetch((const char *)ws + g_prefetch + 128, _MM_HINT_T0);
                }
                const __m256i sg = _mm256_loadu_si256((const __m256i *)(ws + 128));
                __m256i nb, i0, i1;
                nb = _mm256_loadu_si256((const __m256i *)(ws + 0));
                i0 = _mm256_and_si256(nb, m0f), i1 = _mm256_and_si256(_mm256_srli_epi16(nb, 4), m0f);
                TL2_GROUP(i0, 0);
                TL2_GROUP(i1, 1);
                nb = _mm256_loadu_si256((const __m256i *)(ws + 32));
                i0 = _mm256_and_si256(nb, m0f), i1 = _mm256_and_si256(_mm256_srli_epi16(nb, 4), m0f);
                TL2_GROUP(i0, 2);
                TL2_GROUP(i1, 3);
                nb = _mm256_loadu_si256((const __m256i *)(ws + 64));
                i0 = _mm256_and_si256(nb, m0f), i1 = _mm256_and_si256(_mm256_srli_epi16(nb, 4), m0f);
                TL2_GROUP(i0, 4);
                TL2_GROUP(i1, 5);
                nb = _mm256_loadu_si256((const __m256i *)(ws + 96));
                i0 = _mm256_and_si256(nb, m0f), i1 = _mm256_and_si256(_mm256_srli_epi16(nb, 4), m0f);
                TL2_GROUP(i0, 6);
                TL2_GROUP(i1, 7);
            }
            r0 = _mm256_add_epi32(r0, _mm256_cvtepi16_epi32(_mm256_castsi256_si128(a16lo)));
            r1 = _mm256_add_epi32(r1, _mm256_cvtepi16_epi32(_mm256_extracti128_si256(a16lo, 1)));
            r2 = _mm256_add_epi32(r2, _mm256_cvtepi16_epi32(_mm256_castsi256_si128(a16hi)));
            r3 = _mm256_add_epi32(r3, _mm256_cvtepi16_epi32(_mm256_extracti128_si256(a16hi, 1)));
        }
        const int32_t *nn = w->nneg + rb * TL2_ROWS;
        int32_t res[TL2_ROWS];
        _mm256_storeu_si256((__m256i *)(res + 0), _mm256_add_epi32(r0, _mm256_loadu_si256((const __m256i *)(nn + 0))));
        _mm256_storeu_si256((__m256i *)(res + 8), _mm256_add_epi32(r1, _mm256_loadu_si256((const __m256i *)(nn + 8))));
        _mm256_storeu_si256((__m256i *)(res + 16), _mm256_add_epi32(r2, _mm256_loadu_si256((const __m256i *)(nn + 16))));
        _mm256_storeu_si256((__m256i *)(res + 24), _mm256_add_epi32(r3, _mm256_loadu_si256((const __m256i *)(nn + 24))));
        int64_t n = imin(TL2_ROWS, w->n_rows - rb * TL2_ROWS);
        memcpy(out + rb * TL2_ROWS, res, (size_t)n * sizeof(int32_t));
    }
}

/* ---- tl2 for 4 tokens (the prompt side, for the estimate) ------------------------------------
 * The same weights for 4 tokens at once: the nibble extraction and the sign masks are shared,
 * the lookups, xors, unpacks and adds are per token (8 ALU ops per token, group and 32 rows,
 * against 6 for the 2-bit vpmaddubsw kernel per 96 weights). tab4: group g, token t at
 * tab4 + 128 g + 32 t. out: (4, n_rows). */
#define TL2_GROUP_TOK(IDX, J, T)                                                                   \
    do {                                                                                           \
        const uint8_t *tt = ts + 128 * (J) + 32 * (T);                                             \
        const __m256i tl = _mm256_broadcastsi128_si256(_mm_load_si128((const __m128i *)tt));       \
        const __m256i th = _mm256_broadcastsi128_si256(_mm_load_si128((const __m128i *)(tt + 16))); \
        const __m256i lo = _mm256_xor_si256(_mm256_shuffle_epi8(tl, IDX), mk);                     \
        const __m256i hi = _mm256_xor_si256(_mm256_shuffle_epi8(th, IDX), mk);                     \
        al##T = _mm256_add_epi16(al##T, _mm256_unpacklo_epi8(lo, hi));                             \
        ah##T = _mm256_add_epi16(ah##T, _mm256_unpackhi_epi8(lo, hi));                             \
        KEEP_ORDER(al##T);                                                                         \
        KEEP_ORDER(ah##T);                                                                         \
    } while (0)
#define TL2_GROUP4(IDX, J)                                                                         \
    do {                                                                                           \
        const __m256i bit = _mm256_load_si256((const __m256i *)tl2_bit[J]);                       \
        const __m256i mk = _mm256_cmpeq_epi8(_mm256_and_si256(sg, bit), bit);                      \
        TL2_GROUP_TOK(IDX, J, 0);                                                                  \
        TL2_GROUP_TOK(IDX, J, 1);                                                                  \
        TL2_GROUP_TOK(IDX, J, 2);                                                                  \
        TL2_GROUP_TOK(IDX, J, 3);                                                                  \
    } while (0)
#define TL2_WIDEN4(T)                                                                              \
    do {                                                                                           \
        r[T][0] = _mm256_add_epi32(r[T][0], _mm256_cvtepi16_epi32(_mm256_castsi256_si128(al##T))); \
        r[T][1] = _mm256_add_epi32(r[T][1], _mm256_cvtepi16_epi32(_mm256_extracti128_si256(al##T, 1))); \
        r[T][2] = _mm256_add_epi32(r[T][2], _mm256_cvtepi16_epi32(_mm256_castsi256_si128(ah##T))); \
        r[T][3] = _mm256_add_epi32(r[T][3], _mm256_cvtepi16_epi32(_mm256_extracti128_si256(ah##T, 1))); \
    } while (0)

static void tl2_gemm4_rows(const struct tl2_matrix *w, const uint8_t *tab4, int64_t rb0, int64_t rb1,
                           int32_t *out) {
    const __m256i m0f = _mm256_set1_epi8(0x0F);
    for (int64_t rb = rb0; rb < rb1; rb++) {
        const uint8_t *wb = w->packed + rb * w->n_steps * TL2_STEP_BYTES;
        __m256i r[4][4];
        memset(r, 0, sizeof r);
        for (int64_t s0 = 0; s0 < w->n_steps; s0 += TL2_WIDEN_STEPS) {
            int64_t s1 = imin(w->n_steps, s0 + TL2_WIDEN_STEPS);
            __m256i al0 = _mm256_setzero_si256(), ah0 = al0, al1 = al0, ah1 = al0, al2 = al0, ah2 = al0,
                    al3 = al0, ah3 = al0;
            for (int64_t s = s0; s < s1; s++) {
                const uint8_t *ws = wb + s * TL2_STEP_BYTES;
                const uint8_t *ts = tab4 + s * TL2_STEP_GROUPS * 4 * TL2_TABLE_BYTES;
                if (g_prefetch) {
                    _mm_prefetch((const char *)ws + g_prefetch, _MM_HINT_T0);
                    _mm_prefetch((const char *)ws + g_prefetch + 64, _MM_HINT_T0);
                    _mm_prefetch((const char *)ws + g_prefetch + 128, _MM_HINT_T0);
                }
                const __m256i sg = _mm256_loadu_si256((const __m256i *)(ws + 128));
                for (int v = 0; v < 4; v++) {
                    const __m256i nb = _mm256_loadu_si256((const __m256i *)(ws + 32 * v));
                    const __m256i i0 = _mm256_and_si256(nb, m0f);
                    const __m256i i1 = _mm256_and_si256(_mm256_srli_epi16(nb, 4), m0f);
                    switch (v) { /* the group index must be a constant for the bit table */
                    case 0: TL2_GROUP4(i0, 0); TL2_GROUP4(i1, 1); break;
                    case 1: TL2_GROUP4(i0, 2); TL2_GROUP4(i1, 3); break;
                    case 2: TL2_GROUP4(i0, 4); TL2_GROUP4(i1, 5); break;
                    default: TL2_GROUP4(i0, 6); TL2_GROUP4(i1, 7); break;
                    }
                }
            }
            TL2_WIDEN4(0);
            TL2_WIDEN4(1);
            TL2_WIDEN4(2);
            TL2_WIDEN4(3);
        }
        const int32_t *nn = w->nneg + rb * TL2_ROWS;
        int64_t n = imin(TL2_ROWS, w->n_rows - rb * TL2_ROWS);
        for (int t = 0; t < 4; t++) {
            int32_t res[TL2_ROWS];
            for (int k = 0; k < 4; k++)
                _mm256_storeu_si256((__m256i *)(res + 8 * k),
                                    _mm256_add_epi32(r[t][k], _mm256_loadu_si256((const __m256i *)(nn + 8 * k))));
            memcpy(out + t * w->n_rows + rb * TL2_ROWS, res, (size_t)n * sizeof(int32_t));
        }
    }
}

/* ---- b3: 5 weights per byte, base 3 -------------------------------------------------------- */

#define B3_ROWS 32
#define B3_SLAB_COLS 20
#define B3_SLAB_BYTES 128  /* 4 vectors of 8 rows x 4 bytes */
#define B3_WIDEN_SLABS 6   /* 6 slabs x 5 digits = 30 pair sums of |x| <= 1020 per int16 lane */
_Static_assert(B3_WIDEN_SLABS * 5 * 1020 <= 32767, "b3 int16 accumulators overflow");

struct b3_matrix {
    int64_t n_rows, n_cols, n_rb, n_slabs;
    uint8_t *packed; /* n_rb * n_slabs * 128 */
    int32_t *kofs;   /* per padded row: 128 * sum of its digits (padding columns included) */
};

static int64_t b3_bytes(const struct b3_matrix *w) { return w->n_rb * w->n_slabs * B3_SLAB_BYTES; }

static uint8_t b3_encode(const int d[5]) { /* digits 0..2, d[0] most significant */
    int v = 0;
    for (int j = 0; j < 5; j++) v = 3 * v + d[j];
    return (uint8_t)((v * 256 + 242) / 243);
}

static void b3_pack(const int8_t *t, int64_t n_rows, int64_t n_cols, struct b3_matrix *w) {
    w->n_rows = n_rows, w->n_cols = n_cols;
    w->n_rb = (n_rows + B3_ROWS - 1) / B3_ROWS;
    w->n_slabs = (n_cols + B3_SLAB_COLS - 1) / B3_SLAB_COLS;
    w->packed = xalloc((size_t)b3_bytes(w));
    w->kofs = xalloc((size_t)(w->n_rb * B3_ROWS) * sizeof(int32_t));
    for (int64_t rb = 0; rb < w->n_rb; rb++)
        for (int rr = 0; rr < B3_ROWS; rr++) {
            int64_t r = rb * B3_ROWS + rr;
            int h = rr / 8, n = rr % 8;
            int32_t dsum = 0;
            for (int64_t s = 0; s < w->n_slabs; s++)
                for (int i = 0; i < 4; i++) {
                    int d[5];
                    for (int j = 0; j < 5; j++) {
                        int64_t c = s * B3_SLAB_COLS + 4 * j + i;
                        d[j] = 1 + (r < n_rows && c < n_cols ? t[r * n_cols + c] : 0);
                        dsum += d[j];
                    }
                    w->packed[(rb * w->n_slabs + s) * B3_SLAB_BYTES + 32 * h + 4 * n + i] = b3_encode(d) ^ 0x80u;
                }
            w->kofs[r] = 128 * dsum;
        }
}

static inline __m256i bcast4(const uint8_t *p) {
    int32_t v;
    memcpy(&v, p, sizeof v);
    return _mm256_set1_epi32(v);
}


/* One digit of one 8-row vector: -d from the biased y, then s16 += maddubs(q + 128, -d). */
#define B3_DIGIT(H, U)                                                                             \
    nd = _mm256_add_epi8(_mm256_cmpgt_epi8(y, c1), _mm256_cmpgt_epi8(y, c2));                      \
    sa##H = _mm256_add_epi16(sa##H, _mm256_maddubs_epi16(U, nd));                                \
    KEEP_ORDER(sa##H)
#define B3_TIMES3(y) y = _mm256_add_epi8(y, _mm256_add_epi8(y, y))
#define B3_VEC(H)                                                                                  \
    do {                                                                                           \
        __m256i y = _mm256_loadu_si256((const __m256i *)(ws + 32 * (H))), nd;                      \
        B3_DIGIT(H, u0);                                                                           \
        B3_TIMES3(y);                                                                              \
        B3_DIGIT(H, u1);                                                                           \
        B3_TIMES3(y);                                                                              \
        B3_DIGIT(H, u2);                                                                           \
        B3_TIMES3(y);                                                                              \
        B3_DIGIT(H, u3);                                                                           \
        B3_TIMES3(y);                                                                              \
        B3_DIGIT(H, u4);                                                                           \
    } while (0)

/* u: the token's activations + 128 as u8 (128 = a zero activation past n_cols), n_slabs * 20
 * bytes; qsum = sum of the real activations. */
static void b3_gemv_rows(const struct b3_matrix *w, const uint8_t *u, int32_t qsum, int64_t rb0,
                         int64_t rb1, int32_t *out) {
    __m256i c1 = _mm256_set1_epi8(-43), c2 = _mm256_set1_epi8(42);
    const __m256i ones = _mm256_set1_epi16(1);
    KEEP_ORDER(c1); /* hides the values: GCC otherwise turns one compare into vpminsb + vpcmpeqb */
    KEEP_ORDER(c2);
    for (int64_t rb = rb0; rb < rb1; rb++) {
        const uint8_t *wb = w->packed + rb * w->n_slabs * B3_SLAB_BYTES;
        __m256i r0 = _mm256_setzero_si256(), r1 = r0, r2 = r0, r3 = r0;
        for (int64_t sl0 = 0; sl0 < w->n_slabs; sl0 += B3_WIDEN_SLABS) {
            int64_t sl1 = imin(w->n_slabs, sl0 + B3_WIDEN_SLABS);
            __m256i sa0 = _mm256_setzero_si256(), sa1 = sa0, sa2 = sa0, sa3 = sa0;
            for (int64_t s = sl0; s < sl1; s++) {
                const uint8_t *ws = wb + s * B3_SLAB_BYTES;
                const uint8_t *us = u + s * B3_SLAB_COLS;
                if (g_prefetch) {
                    _mm_prefetch((const char *)ws + g_prefetch, _MM_HINT_T0);
                    _mm_prefetch((const char *)ws + g_prefetch + 64, _MM_HINT_T0);
                }
                const __m256i u0 = bcast4(us), u1 = bcast4(us + 4), u2 = bcast4(us + 8),
                              u3 = bcast4(us + 12), u4 = bcast4(us + 16);
                B3_VEC(0);
                B3_VEC(1);
                B3_VEC(2);
                B3_VEC(3);
            }
            r0 = _mm256_add_epi32(r0, _mm256_madd_epi16(sa0, ones));
            r1 = _mm256_add_epi32(r1, _mm256_madd_epi16(sa1, ones));
            r2 = _mm256_add_epi32(r2, _mm256_madd_epi16(sa2, ones));
            r3 = _mm256_add_epi32(r3, _mm256_madd_epi16(sa3, ones));
        }
        /* acc = sum d q - sum q, sum d q = -r - 128 sum d */
        const int32_t *ko = w->kofs + rb * B3_ROWS;
        const __m256i qs = _mm256_set1_epi32(qsum);
        int32_t res[B3_ROWS];
        __m256i rr[4] = {r0, r1, r2, r3};
        for (int h = 0; h < 4; h++) {
            __m256i k = _mm256_add_epi32(_mm256_loadu_si256((const __m256i *)(ko + 8 * h)), qs);
            _mm256_storeu_si256((__m256i *)(res + 8 * h), _mm256_sub_epi32(_mm256_setzero_si256(), _mm256_add_epi32(rr[h], k)));
        }
        int64_t n = imin(B3_ROWS, w->n_rows - rb * B3_ROWS);
        memcpy(out + rb * B3_ROWS, res, (size_t)n * sizeof(int32_t));
    }
}

/* ---- t2: trit's 2-bit layout, read in one pass (m = 1) --------------------------------------- */

/* The same packed bytes as trit's AVX2 kernel (struct trit_cpu_matrix, kernels.h), another loop
 * order: trit's tile kernel walks a row group's k-blocks twice, once per 32-byte half (8 rows) of
 * each 64-byte vector, so the second pass finds the lines in cache while DRAM idles. Here both
 * halves are decoded together (16 rows, one activation broadcast for both) and every weight line
 * is read once, with the same software prefetch distance as the other prototypes (g_prefetch).
 * int16: |pair| <= 2 * 2 * 128 = 512, 16 pairs per lane and k-block: widen every 3 k-blocks
 * (48 * 512 = 24576). */
#define T2_WIDEN_KB 3
_Static_assert(T2_WIDEN_KB * 16 * 512 <= 32767, "t2 int16 accumulators overflow");

static inline __m256i bcast4s(const int8_t *p) {
    int32_t v;
    memcpy(&v, p, sizeof v);
    return _mm256_set1_epi32(v);
}

#define T2_PLANE(V, J)                                                                             \
    do {                                                                                           \
        const __m256i b = bcast4s(qk + 16 * (V) + 4 * (J));                                        \
        const __m256i d0 = _mm256_and_si256((J) ? _mm256_srli_epi16(w0, 2 * (J)) : w0, m3);        \
        const __m256i d1 = _mm256_and_si256((J) ? _mm256_srli_epi16(w1, 2 * (J)) : w1, m3);        \
        s0 = _mm256_add_epi16(s0, _mm256_maddubs_epi16(d0, b));                                    \
        s1 = _mm256_add_epi16(s1, _mm256_maddubs_epi16(d1, b));                                    \
        KEEP_ORDER(s0);                                                                            \
        KEEP_ORDER(s1);                                                                            \
    } while (0)

/* q: n_kb * 64 activations (the caller zero-pads the last k-block when 64 does not divide n_cols). */
static void t2_gemv_rows(const struct trit_cpu_matrix *w, const int8_t *q, int32_t qsum, int64_t rg0,
                         int64_t rg1, int32_t *out) {
    const __m256i m3 = _mm256_set1_epi8(3), ones = _mm256_set1_epi16(1);
    for (int64_t rg = rg0; rg < rg1; rg++) {
        const uint8_t *wr = w->packed + rg * w->n_kb * TRIT_CPU_TILE_BYTES;
        __m256i acc0 = _mm256_setzero_si256(), acc1 = acc0; /* rows 0..7, 8..15 */
        for (int64_t kb0 = 0; kb0 < w->n_kb; kb0 += T2_WIDEN_KB) {
            int64_t kb1 = imin(w->n_kb, kb0 + T2_WIDEN_KB);
            __m256i s0 = _mm256_setzero_si256(), s1 = s0;
            for (int64_t kb = kb0; kb < kb1; kb++) {
                const uint8_t *wk = wr + kb * TRIT_CPU_TILE_BYTES;
                const int8_t *qk = q + kb * TRIT_CPU_KB_COLS;
                if (g_prefetch)
                    for (int l = 0; l < 4; l++) _mm_prefetch((const char *)wk + g_prefetch + 64 * l, _MM_HINT_T0);
                for (int v = 0; v < 4; v++) {
                    const __m256i w0 = _mm256_loadu_si256((const __m256i *)(wk + 64 * v));
                    const __m256i w1 = _mm256_loadu_si256((const __m256i *)(wk + 64 * v + 32));
                    T2_PLANE(v, 0);
                    T2_PLANE(v, 1);
                    T2_PLANE(v, 2);
                    T2_PLANE(v, 3);
                }
            }
            acc0 = _mm256_add_epi32(acc0, _mm256_madd_epi16(s0, ones));
            acc1 = _mm256_add_epi32(acc1, _mm256_madd_epi16(s1, ones));
        }
        const __m256i qs = _mm256_set1_epi32(qsum);
        int32_t res[16];
        _mm256_storeu_si256((__m256i *)res, _mm256_sub_epi32(acc0, qs));
        _mm256_storeu_si256((__m256i *)(res + 8), _mm256_sub_epi32(acc1, qs));
        int64_t n = imin(16, w->n_rows - rg * 16);
        memcpy(out + rg * 16, res, (size_t)n * sizeof(int32_t));
    }
}

/* ---- calls: per-token preparation on the caller, rows split over the pool ------------------ */

#define TASKS_PER_THREAD 4 /* as trit_cpu_gemm_i32 */

#define MAX_THREADS 2

struct row_job {
    const struct tl2_matrix *tl2;
    const struct b3_matrix *b3;
    const struct trit_cpu_matrix *t2;
    const uint8_t *scratch; /* b3 biased activations or t2 activations */
    int32_t qsum;
    int64_t n_rb;
    int64_t n_tasks;
    int32_t *out;
    /* tl2: the tables. Per-thread mode: each pool thread builds its own copy into tab[thread]
     * before its first task (no serial part, and no table lines move between cores); shared
     * mode: the caller built tab[0] before the parallel part. */
    bool tl2_m4; /* 4 tokens: interleaved tables (tl2_gemm4) */
    bool per_thread;
    const int8_t *q;
    uint8_t *const *tab;
    bool built[MAX_THREADS];
};

static void tl2_build_for(const struct row_job *job, uint8_t *tab) {
    const struct tl2_matrix *w = job->tl2;
    if (!job->tl2_m4) {
        tl2_build_tables(job->q, w->n_cols, w->n_groups, tab);
        return;
    }
    for (int t = 0; t < 4; t++)
        tl2_build_tables_strided(job->q + t * w->n_cols, w->n_cols, w->n_groups, tab + t * TL2_TABLE_BYTES,
                                 4 * TL2_TABLE_BYTES);
}

/* Tasks run per pool thread (each thread its own cache line): shows how often the worker thread
 * actually got a core on a shared machine. */
static struct { int64_t n; char pad[56]; } g_tasks_run[MAX_THREADS];

static void row_task(void *vctx, int64_t task, int thread) {
    struct row_job *job = vctx;
    g_tasks_run[thread].n++;
    int64_t rb0 = job->n_rb * task / job->n_tasks, rb1 = job->n_rb * (task + 1) / job->n_tasks;
    if (rb0 >= rb1) return;
    if (job->tl2) {
        const uint8_t *tab = job->tab[0];
        if (job->per_thread) {
            if (!job->built[thread]) { /* only this thread touches built[thread] */
                tl2_build_for(job, job->tab[thread]);
                job->built[thread] = true;
            }
            tab = job->tab[thread];
        }
        if (job->tl2_m4) tl2_gemm4_rows(job->tl2, tab, rb0, rb1, job->out);
        else tl2_gemv_rows(job->tl2, tab, rb0, rb1, job->out);
    } else if (job->b3) {
        b3_gemv_rows(job->b3, job->scratch, job->qsum, rb0, rb1, job->out);
    } else {
        t2_gemv_rows(job->t2, (const int8_t *)job->scratch, job->qsum, rb0, rb1, job->out);
    }
}

static int64_t n_tasks_for(struct trit_pool *pool, int64_t n_rb) {
    int64_t n = TASKS_PER_THREAD * (int64_t)trit_pool_n_threads(pool);
    return n < n_rb ? n : n_rb;
}

/* One token (m4: 4 tokens, q (4, n_cols), out (4, n_rows)). tab[i]: w->n_groups * 32 bytes
 * (m4: * 128), 32-byte aligned, one per pool thread (per_thread) or tab[0] only. */
static void tl2_run(struct trit_pool *pool, const struct tl2_matrix *w, const int8_t *q, uint8_t *const *tab,
                    bool per_thread, bool m4, int32_t *out) {
    struct row_job job = {.tl2 = w, .n_rb = w->n_rb, .out = out, .tl2_m4 = m4, .per_thread = per_thread,
                          .q = q, .tab = tab};
    if (!per_thread) tl2_build_for(&job, tab[0]);
    job.n_tasks = n_tasks_for(pool, w->n_rb);
    trit_pool_parallel_for(pool, job.n_tasks, row_task, &job);
}
static void tl2_gemv(struct trit_pool *pool, const struct tl2_matrix *w, const int8_t *q, uint8_t *const *tab,
                     bool per_thread, int32_t *out) {
    tl2_run(pool, w, q, tab, per_thread, false, out);
}
static void tl2_gemm4(struct trit_pool *pool, const struct tl2_matrix *w, const int8_t *q, uint8_t *const *tab4,
                      int32_t *out) {
    tl2_run(pool, w, q, tab4, true, true, out);
}

/* u: w->n_slabs * 20 bytes */
static void b3_gemv(struct trit_pool *pool, const struct b3_matrix *w, const int8_t *q, uint8_t *u,
                    int32_t *out) {
    int64_t n_pad = w->n_slabs * B3_SLAB_COLS, c = 0;
    const __m256i bias = _mm256_set1_epi8((char)0x80);
    for (; c + 32 <= w->n_cols; c += 32)
        _mm256_storeu_si256((__m256i *)(u + c), _mm256_xor_si256(_mm256_loadu_si256((const __m256i *)(q + c)), bias));
    for (; c < n_pad; c++) u[c] = c < w->n_cols ? (uint8_t)(q[c] ^ 0x80) : 128u;
    struct row_job job = {.b3 = w, .scratch = u, .qsum = sum_i8(q, w->n_cols), .n_rb = w->n_rb, .out = out};
    job.n_tasks = n_tasks_for(pool, w->n_rb);
    trit_pool_parallel_for(pool, job.n_tasks, row_task, &job);
}

/* qpad: w->n_kb * 64 bytes, used only when 64 does not divide n_cols */
static void t2_gemv(struct trit_pool *pool, const struct trit_cpu_matrix *w, const int8_t *q, int8_t *qpad,
                    int32_t *out) {
    const int8_t *qq = q;
    if (w->n_cols % TRIT_CPU_KB_COLS) {
        memcpy(qpad, q, (size_t)w->n_cols);
        memset(qpad + w->n_cols, 0, (size_t)(w->n_kb * TRIT_CPU_KB_COLS - w->n_cols));
        qq = qpad;
    }
    struct row_job job = {.t2 = w, .scratch = (const uint8_t *)qq, .qsum = sum_i8(q, w->n_cols),
                          .n_rb = w->n_rg, .out = out};
    job.n_tasks = n_tasks_for(pool, w->n_rg);
    trit_pool_parallel_for(pool, job.n_tasks, row_task, &job);
}

/* ---- matrices and the reference ------------------------------------------------------------- */

enum fill { FILL_RANDOM, FILL_SPARSE, FILL_PLUS, FILL_MINUS };

static int8_t *make_ternary(int64_t n_rows, int64_t n_cols, enum fill fill) {
    int8_t *t = xalloc((size_t)(n_rows * n_cols));
    for (int64_t i = 0; i < n_rows * n_cols; i++) {
        switch (fill) {
        case FILL_RANDOM: t[i] = (int8_t)((int)(rng_next() % 3) - 1); break;
        case FILL_SPARSE: { uint64_t x = rng_next() % 10; t[i] = (int8_t)(x == 0 ? 1 : x == 1 ? -1 : 0); break; }
        case FILL_PLUS: t[i] = 1; break;
        case FILL_MINUS: t[i] = -1; break;
        }
    }
    return t;
}

static void to_canonical(const int8_t *t, int64_t n_rows, int64_t n_cols, struct trit_ternary *w) {
    if (trit_ternary_init(w, n_rows, n_cols) != TRIT_OK) {
        fprintf(stderr, "trit_ternary_init failed\n");
        exit(2);
    }
    for (int64_t r = 0; r < n_rows; r++)
        for (int64_t c = 0; c < n_cols; c++) trit_ternary_set(w, r, c, t[r * n_cols + c]);
}

static void gemv_ref(const int8_t *t, int64_t n_rows, int64_t n_cols, const int8_t *q, int32_t *acc) {
    for (int64_t r = 0; r < n_rows; r++) {
        int32_t s = 0;
        for (int64_t c = 0; c < n_cols; c++) s += (int32_t)t[r * n_cols + c] * q[c];
        acc[r] = s;
    }
}

enum qfill { Q_RANDOM, Q_MIN, Q_MAX, Q_ALT };

static void make_q(int8_t *q, int64_t n, enum qfill f) {
    for (int64_t i = 0; i < n; i++) {
        switch (f) {
        case Q_RANDOM: q[i] = (int8_t)(rng_next() & 0xFF); break; /* full range, -128 included */
        case Q_MIN: q[i] = -128; break;
        case Q_MAX: q[i] = 127; break;
        case Q_ALT: q[i] = (int8_t)((i & 1) ? 127 : -128); break;
        }
    }
}

/* ---- correctness -------------------------------------------------------------------------- */

/* Every byte value the b3 encoder produces decodes, with the kernel's biased arithmetic, to its
 * digits. Returns the number of mismatches. */
static int b3_selftest(void) {
    int bad = 0;
    for (int v = 0; v < 243; v++) {
        int d[5], x = v;
        for (int j = 4; j >= 0; j--) d[j] = x % 3, x /= 3;
        uint8_t y = b3_encode(d) ^ 0x80u;
        for (int j = 0; j < 5; j++) {
            int8_t ys = (int8_t)y;
            int nd = -(ys > -43) - (ys > 42);
            if (-nd != d[j]) bad++;
            y = (uint8_t)(y + y + y);
        }
    }
    return bad;
}

static int check_shape(struct trit_pool *pool1, struct trit_pool *pool2, int64_t n_rows, int64_t n_cols,
                       enum fill fill, bool verbose) {
    static const char *fill_name[] = {"random", "sparse", "all+1", "all-1"};
    static const char *q_name[] = {"random", "all-128", "all127", "alt"};
    int8_t *t = make_ternary(n_rows, n_cols, fill);
    struct trit_ternary canon;
    to_canonical(t, n_rows, n_cols, &canon);
    struct trit_cpu_matrix m2;
    if (trit_cpu_matrix_pack_isa(&canon, TRIT_CPU_ISA_AVX2, &m2) != TRIT_OK) {
        fprintf(stderr, "trit_cpu_matrix_pack_isa failed\n");
        exit(2);
    }
    struct tl2_matrix wt;
    struct b3_matrix wb;
    tl2_pack(t, n_rows, n_cols, &wt);
    b3_pack(t, n_rows, n_cols, &wb);
    int8_t *q = xalloc((size_t)n_cols);
    uint8_t *tab[MAX_THREADS] = {xalloc((size_t)(wt.n_groups * TL2_TABLE_BYTES)),
                                 xalloc((size_t)(wt.n_groups * TL2_TABLE_BYTES))};
    uint8_t *u = xalloc((size_t)(wb.n_slabs * B3_SLAB_COLS));
    int8_t *qpad = xalloc((size_t)(m2.n_kb * TRIT_CPU_KB_COLS));
    int32_t *ref = xalloc((size_t)n_rows * 4), *out = xalloc((size_t)n_rows * 4);
    int failures = 0;
    for (int qf = 0; qf < 4; qf++) {
        make_q(q, n_cols, (enum qfill)qf);
        gemv_ref(t, n_rows, n_cols, q, ref);
        for (int k = 0; k < 5; k++)
            for (int th = 1; th <= 2; th++) {
                struct trit_pool *pool = th == 1 ? pool1 : pool2;
                memset(out, 0x5A, (size_t)n_rows * 4);
                if (k == 0) trit_cpu_gemm_i32(pool, &m2, q, 1, out);
                else if (k == 1) tl2_gemv(pool, &wt, q, tab, true, out);
                else if (k == 4) tl2_gemv(pool, &wt, q, tab, false, out);
                else if (k == 2) b3_gemv(pool, &wb, q, u, out);
                else t2_gemv(pool, &m2, q, qpad, out);
                int64_t bad = 0, first = -1;
                for (int64_t r = 0; r < n_rows; r++)
                    if (out[r] != ref[r]) {
                        if (first < 0) first = r;
                        bad++;
                    }
                static const char *kname[] = {"trit2", "tl2", "b3", "t2-1pass", "tl2-shared"};
                if (bad) {
                    failures++;
                    printf("  FAIL %-8s %5lldx%-5lld %-6s q=%-7s thr=%d: %lld rows differ, first row %lld: %d != %d\n",
                           kname[k], (long long)n_rows, (long long)n_cols, fill_name[fill], q_name[qf], th,
                           (long long)bad, (long long)first, out[first], ref[first]);
                }
            }
    }
    /* 4 tokens at once (one of each activation set): tl2's 4-token kernel and trit2 with m = 4 */
    int8_t *q4 = xalloc((size_t)(4 * n_cols));
    uint8_t *tab4[MAX_THREADS] = {xalloc((size_t)(wt.n_groups * 4 * TL2_TABLE_BYTES)),
                                  xalloc((size_t)(wt.n_groups * 4 * TL2_TABLE_BYTES))};
    int32_t *ref4 = xalloc((size_t)n_rows * 16), *out4 = xalloc((size_t)n_rows * 16);
    for (int tok = 0; tok < 4; tok++) {
        make_q(q4 + tok * n_cols, n_cols, (enum qfill)tok);
        gemv_ref(t, n_rows, n_cols, q4 + tok * n_cols, ref4 + tok * n_rows);
    }
    for (int k = 0; k < 2; k++)
        for (int th = 1; th <= 2; th++) {
            memset(out4, 0x5A, (size_t)n_rows * 16);
            if (k == 0) trit_cpu_gemm_i32(th == 1 ? pool1 : pool2, &m2, q4, 4, out4);
            else tl2_gemm4(th == 1 ? pool1 : pool2, &wt, q4, tab4, out4);
            int64_t bad = 0;
            for (int64_t i = 0; i < 4 * n_rows; i++) bad += out4[i] != ref4[i];
            if (bad) {
                failures++;
                printf("  FAIL %-8s %5lldx%-5lld %-6s m=4 thr=%d: %lld outputs differ\n", k ? "tl2-m4" : "trit2-m4",
                       (long long)n_rows, (long long)n_cols, fill_name[fill], th, (long long)bad);
            }
        }
    free(q4), free(tab4[0]), free(tab4[1]), free(ref4), free(out4);
    if (verbose || failures)
        printf("  check %5lldx%-5lld %-6s: %s (trit2, t2-1pass, tl2, tl2-shared, b3 x 4 activation sets x 1 and 2 threads; m = 4: trit2, tl2)\n",
               (long long)n_rows, (long long)n_cols, fill_name[fill], failures ? "FAILED" : "bit-exact");
    free(q), free(tab[0]), free(tab[1]), free(u), free(qpad), free(ref), free(out), free(t);
    free(wt.packed), free(wt.nneg), free(wb.packed), free(wb.kofs);
    trit_cpu_matrix_free(&m2);
    trit_ternary_free(&canon);
    return failures;
}

/* ---- streaming-read bandwidth ----------------------------------------------------------------- */

struct bw_job {
    const uint8_t *p;
    int64_t n;
    int64_t n_tasks;
    uint64_t sink[64];
};

/* Plain AVX2 loads into 4 xor chains, no software prefetch: on this Zen 3 the hardware prefetcher
 * alone streams fastest (8 MB calls, 1 thread: about 16 GB/s median without, 12.5 GB/s with a
 * prefetcht0 1 KB ahead as trit's bench_cpu_gemm reader does). */
static uint64_t read_avx2(const uint8_t *p, int64_t n) {
    __m256i s0 = _mm256_setzero_si256(), s1 = s0, s2 = s0, s3 = s0;
    for (int64_t i = 0; i + 128 <= n; i += 128) {
        s0 = _mm256_xor_si256(s0, _mm256_load_si256((const __m256i *)(p + i)));
        s1 = _mm256_xor_si256(s1, _mm256_load_si256((const __m256i *)(p + i + 32)));
        s2 = _mm256_xor_si256(s2, _mm256_load_si256((const __m256i *)(p + i + 64)));
        s3 = _mm256_xor_si256(s3, _mm256_load_si256((const __m256i *)(p + i + 96)));
    }
    __m256i s = _mm256_xor_si256(_mm256_xor_si256(s0, s1), _mm256_xor_si256(s2, s3));
    return (uint64_t)_mm256_extract_epi64(s, 0) ^ (uint64_t)_mm256_extract_epi64(s, 3);
}

static void bw_task(void *vctx, int64_t task, int thread) {
    (void)thread;
    struct bw_job *job = vctx;
    int64_t a = job->n / 128 * task / job->n_tasks * 128, b = job->n / 128 * (task + 1) / job->n_tasks * 128;
    job->sink[task] = read_avx2(job->p + a, b - a);
}

/* ---- timing ------------------------------------------------------------------------------------ */

enum { V_TRIT2, V_T2P, V_TL2, V_TL2S, V_B3, V_TABLES, V_TRIT2_M4, V_TL2_M4, V_READ, N_VARIANTS };
static const char *const variant_name[N_VARIANTS] = {"trit2", "t2-1pass", "tl2", "tl2-shared", "b3",
                                                     "tl2-tables", "trit2-m4", "tl2-m4", "read"};

#define BW_WINDOW (8 << 20)
#define BW_PER_ROUND 4

struct bench {
    int64_t n_rows, n_cols;
    int8_t *q;
    int n_copies[N_VARIANTS], next[N_VARIANTS];
    int64_t bytes[N_VARIANTS]; /* bytes one call streams */
    struct trit_cpu_matrix *m2;
    struct tl2_matrix *tl2;
    struct b3_matrix *b3;
    uint8_t *tab[MAX_THREADS], *tab4[MAX_THREADS], *u, *bwbuf;
    int8_t *qpad, *q4;
    int32_t *out4;
    int64_t bw_bytes;
    int32_t *out;
    double *times[N_VARIANTS];
    int n_times[N_VARIANTS];
};

static void run_one(struct bench *b, int v, struct trit_pool *pool) {
    int k = b->next[v];
    b->next[v] = (k + 1) % b->n_copies[v];
    switch (v) {
    case V_TRIT2: trit_cpu_gemm_i32(pool, &b->m2[k], b->q, 1, b->out); break;
    case V_T2P: t2_gemv(pool, &b->m2[k], b->q, b->qpad, b->out); break;
    case V_TL2: tl2_gemv(pool, &b->tl2[k], b->q, b->tab, true, b->out); break;
    case V_TL2S: tl2_gemv(pool, &b->tl2[k], b->q, b->tab, false, b->out); break;
    case V_B3: b3_gemv(pool, &b->b3[k], b->q, b->u, b->out); break;
    case V_TABLES: tl2_build_tables(b->q, b->n_cols, b->tl2[0].n_groups, b->tab[0]); break;
    case V_TRIT2_M4: trit_cpu_gemm_i32(pool, &b->m2[k], b->q4, 4, b->out4); break;
    case V_TL2_M4: tl2_gemm4(pool, &b->tl2[k], b->q4, b->tab4, b->out4); break;
    case V_READ: {
        struct bw_job job = {.p = b->bwbuf + (int64_t)k * BW_WINDOW, .n = BW_WINDOW,
                             .n_tasks = trit_pool_n_threads(pool)};
        trit_pool_parallel_for(pool, job.n_tasks, bw_task, &job);
        break;
    }
    }
}

static int copies_for(int64_t bytes, int64_t rotate_bytes) {
    int64_t n = rotate_bytes / (bytes > 0 ? bytes : 1);
    return n < 1 ? 1 : n > 4096 ? 4096 : (int)n;
}

/* Builds the kernels' copies of one random matrix. rotate_bytes = 0: one copy (weights stay in
 * cache: the compute ceiling). */
static void bench_init(struct bench *b, int64_t n_rows, int64_t n_cols, int64_t rotate_bytes, uint8_t *bwbuf,
                       int64_t bw_bytes) {
    memset(b, 0, sizeof *b);
    b->n_rows = n_rows, b->n_cols = n_cols;
    int8_t *t = make_ternary(n_rows, n_cols, FILL_RANDOM);
    b->q = xalloc((size_t)n_cols);
    make_q(b->q, n_cols, Q_RANDOM);
    struct trit_ternary canon;
    to_canonical(t, n_rows, n_cols, &canon);
    struct trit_cpu_matrix m2;
    if (trit_cpu_matrix_pack_isa(&canon, TRIT_CPU_ISA_AVX2, &m2) != TRIT_OK) exit(2);
    struct tl2_matrix wt;
    struct b3_matrix wb;
    tl2_pack(t, n_rows, n_cols, &wt);
    b3_pack(t, n_rows, n_cols, &wb);
    int64_t rows_pad_t = wt.n_rb * TL2_ROWS, rows_pad_b = wb.n_rb * B3_ROWS;
    b->bytes[V_TRIT2] = b->bytes[V_T2P] = trit_cpu_matrix_bytes(&m2);
    b->bytes[V_TL2] = tl2_bytes(&wt) + rows_pad_t * 4;
    b->bytes[V_B3] = b3_bytes(&wb) + rows_pad_b * 4;
    b->bytes[V_TRIT2_M4] = b->bytes[V_TRIT2];
    b->bytes[V_TL2_M4] = b->bytes[V_TL2S] = b->bytes[V_TL2];
    b->bytes[V_READ] = BW_WINDOW;
    for (int v = 0; v < V_TABLES; v++) b->n_copies[v] = rotate_bytes ? copies_for(b->bytes[v], rotate_bytes) : 1;
    b->n_copies[V_TABLES] = 1;
    b->n_copies[V_READ] = (int)(bw_bytes / BW_WINDOW);
    /* t2-1pass and trit2-m4 share trit2's copies, tl2-shared and tl2-m4 tl2's (each variant
     * keeps its own position in the cycle) */
    b->n_copies[V_T2P] = b->n_copies[V_TRIT2_M4] = b->n_copies[V_TRIT2];
    b->n_copies[V_TL2_M4] = b->n_copies[V_TL2S] = b->n_copies[V_TL2];
    /* Variants that share copies start spread over the cycle and advance equally, so that one
     * never reads a copy another read a few calls before (it could still be in the L3). */
    b->next[V_T2P] = b->n_copies[V_TRIT2] / 3, b->next[V_TRIT2_M4] = 2 * b->n_copies[V_TRIT2] / 3;
    b->next[V_TL2S] = b->n_copies[V_TL2] / 3, b->next[V_TL2_M4] = 2 * b->n_copies[V_TL2] / 3;
    b->m2 = xalloc(sizeof *b->m2 * (size_t)b->n_copies[V_TRIT2]);
    b->tl2 = xalloc(sizeof *b->tl2 * (size_t)b->n_copies[V_TL2]);
    b->b3 = xalloc(sizeof *b->b3 * (size_t)b->n_copies[V_B3]);
    for (int k = 0; k < b->n_copies[V_TRIT2]; k++) {
        b->m2[k] = m2;
        b->m2[k].packed = xalloc((size_t)b->bytes[V_TRIT2]);
        memcpy(b->m2[k].packed, m2.packed, (size_t)b->bytes[V_TRIT2]);
    }
    for (int k = 0; k < b->n_copies[V_TL2]; k++) {
        b->tl2[k] = wt;
        b->tl2[k].packed = xalloc((size_t)tl2_bytes(&wt));
        memcpy(b->tl2[k].packed, wt.packed, (size_t)tl2_bytes(&wt));
        b->tl2[k].nneg = xalloc((size_t)rows_pad_t * 4);
        memcpy(b->tl2[k].nneg, wt.nneg, (size_t)rows_pad_t * 4);
    }
    for (int k = 0; k < b->n_copies[V_B3]; k++) {
        b->b3[k] = wb;
        b->b3[k].packed = xalloc((size_t)b3_bytes(&wb));
        memcpy(b->b3[k].packed, wb.packed, (size_t)b3_bytes(&wb));
        b->b3[k].kofs = xalloc((size_t)rows_pad_b * 4);
        memcpy(b->b3[k].kofs, wb.kofs, (size_t)rows_pad_b * 4);
    }
    for (int i = 0; i < MAX_THREADS; i++) {
        b->tab[i] = xalloc((size_t)(wt.n_groups * TL2_TABLE_BYTES));
        b->tab4[i] = xalloc((size_t)(wt.n_groups * 4 * TL2_TABLE_BYTES));
    }
    b->u = xalloc((size_t)(wb.n_slabs * B3_SLAB_COLS));
    b->qpad = xalloc((size_t)(m2.n_kb * TRIT_CPU_KB_COLS));
    b->q4 = xalloc((size_t)(4 * n_cols));
    make_q(b->q4, 4 * n_cols, Q_RANDOM);
    b->out4 = xalloc((size_t)(4 * n_rows) * 4);
    b->out = xalloc((size_t)n_rows * 4);
    b->bwbuf = bwbuf, b->bw_bytes = bw_bytes;
    free(wt.packed), free(wt.nneg), free(wb.packed), free(wb.kofs), free(t);
    trit_cpu_matrix_free(&m2);
    trit_ternary_free(&canon);
}

static void bench_free(struct bench *b) {
    for (int k = 0; k < b->n_copies[V_TRIT2]; k++) free(b->m2[k].packed);
    for (int k = 0; k < b->n_copies[V_TL2]; k++) free(b->tl2[k].packed), free(b->tl2[k].nneg);
    for (int k = 0; k < b->n_copies[V_B3]; k++) free(b->b3[k].packed), free(b->b3[k].kofs);
    free(b->m2), free(b->tl2), free(b->b3), free(b->u), free(b->qpad), free(b->out), free(b->q);
    free(b->q4), free(b->out4);
    for (int i = 0; i < MAX_THREADS; i++) free(b->tab[i]), free(b->tab4[i]);
    for (int v = 0; v < N_VARIANTS; v++) free(b->times[v]);
}

static double load_avg(void) {
    double l = -1;
    FILE *f = fopen("/proc/loadavg", "r");
    if (f) {
        if (fscanf(f, "%lf", &l) != 1) l = -1;
        fclose(f);
    }
    return l;
}

/* reps rounds; in each, every variant runs `calls` timed calls (read: BW_PER_ROUND 8 MB windows),
 * the order rotating from round to round. The read variant runs when with_read is set. */
static void bench_run(struct bench *b, struct trit_pool *pool, int reps, int calls, bool with_read) {
    for (int i = 0; i < MAX_THREADS; i++) g_tasks_run[i].n = 0;
    for (int v = 0; v < N_VARIANTS; v++) {
        free(b->times[v]);
        b->times[v] = xalloc(sizeof(double) * (size_t)(reps * (calls > BW_PER_ROUND ? calls : BW_PER_ROUND) + 1));
        b->n_times[v] = 0;
    }
    for (int v = 0; v < V_READ; v++) run_one(b, v, pool); /* warm code and tables */
    for (int rep = 0; rep < reps; rep++)
        for (int i = 0; i < N_VARIANTS; i++) {
            int v = (i + rep) % N_VARIANTS;
            if (v == V_READ && !with_read) continue;
            int n = v == V_READ ? BW_PER_ROUND : calls;
            for (int c = 0; c < n; c++) {
                double t0 = now_s();
                run_one(b, v, pool);
                b->times[v][b->n_times[v]++] = now_s() - t0;
            }
        }
}

static void bench_print(struct bench *b, const char *label, int threads, bool with_read) {
    double med[N_VARIANTS], mn[N_VARIANTS], p10[N_VARIANTS];
    for (int v = 0; v < N_VARIANTS; v++) {
        int n = b->n_times[v];
        if (!n) { med[v] = mn[v] = p10[v] = 0; continue; }
        qsort(b->times[v], (size_t)n, sizeof(double), cmp_double);
        med[v] = b->times[v][n / 2], mn[v] = b->times[v][0], p10[v] = b->times[v][n / 10];
    }
    double read_gbs = with_read ? BW_WINDOW / med[V_READ] * 1e-9 : 0;
    for (int v = 0; v < V_READ; v++) {
        if (v == V_TABLES) {
            printf("%-11s %-10s %3d %7s %6s %9.1f %7.1f %7.1f   (per-token table build alone: %lld groups, %lld KB)\n",
                   label, variant_name[v], threads, "-", "-", med[v] * 1e6, p10[v] * 1e6, mn[v] * 1e6,
                   (long long)b->tl2[0].n_groups, (long long)(b->tl2[0].n_groups * TL2_TABLE_BYTES / 1024));
            continue;
        }
        bool m4 = v == V_TRIT2_M4 || v == V_TL2_M4;
        double w = (double)b->n_rows * (double)b->n_cols; /* weights; x 4 tokens for the m4 rows */
        double work = m4 ? 4.0 * w : w;
        double gbs = b->bytes[v] / med[v] * 1e-9;
        int base = m4 ? V_TRIT2_M4 : V_TRIT2;
        printf("%-11s %-10s %3d %7.3f %6.3f %9.1f %7.1f %7.1f %6.2f %5.0f%% %7.2f %7.2f %6.3f %6.3f\n", label, variant_name[v],
               threads, b->bytes[v] / 1e6, 8.0 * b->bytes[v] / w, med[v] * 1e6, p10[v] * 1e6, mn[v] * 1e6, gbs,
               with_read ? 100.0 * gbs / read_gbs : 0.0, work / med[v] * 1e-9, work / p10[v] * 1e-9,
               med[base] / med[v], p10[base] / p10[v]);
    }
    if (threads > 1)
        printf("%-11s %-10s %3d  worker thread ran %.0f%% of the prototype kernels' row tasks (50%% = even split)\n",
               label, "pool", threads, 100.0 * g_tasks_run[1].n / (double)(g_tasks_run[0].n + g_tasks_run[1].n));
    if (with_read)
        printf("%-11s %-10s %3d  streaming read: median %.2f GB/s, best %.2f GB/s (8 MB calls over %lld MB)\n", label,
               variant_name[V_READ], threads, read_gbs, BW_WINDOW / mn[V_READ] * 1e-9, (long long)(b->bw_bytes >> 20));
}

static void print_header(void) {
    printf("%-11s %-10s %3s %7s %6s %9s %7s %7s %6s %6s %7s %7s %6s %6s\n", "shape", "kernel", "thr", "MB", "bits/w",
           "median_us", "p10_us", "min_us", "GB/s", "%read", "Gw/s", "Gw/s10", "xtrit2", "x@p10");
}

int main(int argc, char **argv) {
    int64_t rotate_mb = 512;
    int reps = 25, calls = 12;
    bool check_only = false, skip_check = false, skip_hot = false;
    int thr_lo = 1, thr_hi = 2;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--rotate-mb") && i + 1 < argc) rotate_mb = atoll(argv[++i]);
        else if (!strcmp(argv[i], "--reps") && i + 1 < argc) reps = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--calls") && i + 1 < argc) calls = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--check-only")) check_only = true;
        else if (!strcmp(argv[i], "--prefetch") && i + 1 < argc) g_prefetch = atoll(argv[++i]);
        else if (!strcmp(argv[i], "--threads") && i + 1 < argc) thr_lo = thr_hi = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--skip-check")) skip_check = true;
        else if (!strcmp(argv[i], "--skip-hot")) skip_hot = true;
        else {
            fprintf(stderr, "usage: %s [--rotate-mb N] [--reps N] [--calls N] [--prefetch BYTES] [--threads 1|2]\n"
                            "          [--check-only | --skip-check] [--skip-hot]\n", argv[0]);
            return 2;
        }
    }
    tl2_init();
    struct trit_pool *pool2 = NULL;
    if (trit_pool_create(2, &pool2) != TRIT_OK) return 2;

    printf("# load average at start: %.2f\n", load_avg());
    int bad = b3_selftest();
    printf("# b3 digit decode, all 243 byte values x 5 digits: %s\n", bad ? "FAILED" : "exact");
    int failures = bad != 0;
    static const int64_t shapes[][2] = {{2560, 2560}, {6912, 2560}, {2560, 6912}, {2575, 2561}, {2590, 6913},
                                        {1, 1}, {1, 2}, {3, 3}, {17, 5}, {31, 23}, {33, 24}, {47, 25},
                                        {64, 64}, {100, 241}, {255, 1000}};
    if (!skip_check) printf("# correctness (acc bit for bit against a naive loop):\n");
    for (size_t s = 0; !skip_check && s < sizeof shapes / sizeof shapes[0]; s++)
        failures += check_shape(NULL, pool2, shapes[s][0], shapes[s][1], FILL_RANDOM, s < 5);
    static const int64_t adv[][2] = {{64, 6912}, {2575, 2561}, {33, 240}};
    for (size_t s = 0; !skip_check && s < sizeof adv / sizeof adv[0]; s++)
        for (int f = FILL_SPARSE; f <= FILL_MINUS; f++)
            failures += check_shape(NULL, pool2, adv[s][0], adv[s][1], (enum fill)f, true);
    if (!skip_check) printf("# correctness: %s\n", failures ? "FAILED" : "all bit-exact");
    if (failures || check_only) {
        trit_pool_free(pool2);
        return failures ? 1 : 0;
    }

    int64_t bw_bytes = 512ll << 20;
    uint8_t *bwbuf = xalloc((size_t)bw_bytes);
    memset(bwbuf, 1, (size_t)bw_bytes);
    printf("\n# DRAM: weights cycled through %lld MB of copies per kernel; %d rounds x %d calls per kernel\n",
           (long long)rotate_mb, reps, calls);
    printf("# GB/s = streamed bytes / median; %%read = that / streaming read of the same thread count in the same rounds;\n"
           "# Gw/s = rows*cols / median, Gw/s10 = / 10th percentile, x 4 for the m4 rows (weight-token products);\n"
           "# xtrit2 = trit2 median / this median (m4 rows: trit2-m4's), > 1: faster; x@p10 the same at the 10th percentile\n");
    print_header();
    static const int64_t timed[][2] = {{2560, 2560}, {6912, 2560}, {2560, 6912}};
    for (size_t s = 0; s < 3; s++) {
        struct bench b;
        bench_init(&b, timed[s][0], timed[s][1], rotate_mb << 20, bwbuf, bw_bytes);
        char label[32];
        snprintf(label, sizeof label, "%lldx%lld", (long long)timed[s][0], (long long)timed[s][1]);
        for (int th = thr_lo; th <= thr_hi; th++) {
            printf("# load %.2f\n", load_avg());
            bench_run(&b, th == 1 ? NULL : pool2, reps, calls, true);
            bench_print(&b, label, th, true);
        }
        bench_free(&b);
    }
    if (!skip_hot) {
        printf("\n# compute ceiling: 256x2560 (about 160 KB a kernel), one copy, weights stay in L2\n");
        print_header();
        struct bench b;
        bench_init(&b, 256, 2560, 0, bwbuf, bw_bytes);
        for (int th = thr_lo; th <= thr_hi; th++) {
            bench_run(&b, th == 1 ? NULL : pool2, reps, 4 * calls, false);
            bench_print(&b, "256x2560hot", th, false);
        }
        bench_free(&b);
    }
    printf("# load average at end: %.2f\n", load_avg());
    free(bwbuf);
    trit_pool_free(pool2);
    return 0;
}
