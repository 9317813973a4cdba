/*
 * head_int8.c: the quantized LM heads (head_int8.h), int8 and 4-bit: per-row quantization of the
 * head at init, per-token quantization of the hidden state, exact int32 dot products (scalar
 * reference, AVX2, AVX-512 VNNI) and the fp32 epilogue, threaded over rows.
 *
 * Work split: the rows are cut into one contiguous range of 4-row groups per pool thread; a thread
 * walks its range in blocks of about HEAD_BLOCK_BYTES of weights and runs every token (up to 4 at a
 * time) over a block while it sits in L2. For one token this is one sequential pass over the
 * thread's weight bytes, 4 rows (4 streams) at a time.
 */
#include "cpu/head_int8.h"

#include <math.h>
#include <string.h>

#include "core/cpu_features.h"
#include "cpu/ops.h"

#define HEAD_COL_ALIGN 64            /* one ZMM of int8 */
#define HEAD_BLOCK_BYTES (128 * 1024) /* weights per block when several tokens pass (fits L2) */
#define HEAD_MAX_TOK 4                /* tokens per kernel call */

const char *trit_head_i8_kernel_name(enum trit_head_i8_kernel k) {
    switch (k) {
    case TRIT_HEAD_I8_AUTO: return "auto";
    case TRIT_HEAD_I8_SCALAR: return "scalar";
    case TRIT_HEAD_I8_AVX2: return "avx2";
    case TRIT_HEAD_I8_VNNI: return "avx512-vnni";
    }
    return "?";
}

static bool kernel_supported(enum trit_head_i8_kernel k) {
    switch (k) {
    case TRIT_HEAD_I8_SCALAR: return true;
#if defined(__x86_64__) && defined(__GNUC__)
    case TRIT_HEAD_I8_AVX2: return trit_cpu_isa_supported(TRIT_CPU_ISA_AVX2);
    case TRIT_HEAD_I8_VNNI: return trit_cpu_isa_supported(TRIT_CPU_ISA_AVX512_VNNI);
#endif
    default: return false;
    }
}

/* AUTO: the kernel of the active family (trit_cpu_isa_active), so that TRIT_CPU=scalar|avx2
 * runs that kernel here too; families without an int8 head kernel of their own (NEON) run the
 * scalar one. */
static enum trit_status resolve_kernel(enum trit_head_i8_kernel k, enum trit_head_i8_kernel *out) {
    if (k == TRIT_HEAD_I8_AUTO) {
        switch (trit_cpu_vec_active()) {
        case TRIT_CPU_VEC_AVX512: k = TRIT_HEAD_I8_VNNI; break;
        case TRIT_CPU_VEC_AVX2: k = TRIT_HEAD_I8_AVX2; break;
        default: k = TRIT_HEAD_I8_SCALAR; break;
        }
    }
    if (!kernel_supported(k))
        return trit_error(TRIT_ERR_UNSUPPORTED, "int8 head: kernel %s cannot run on this CPU", trit_head_i8_kernel_name(k));
    *out = k;
    return TRIT_OK;
}

/* ---- quantization -------------------------------------------------------------------------------- */

float trit_head_i8_quantize(const float *x, int64_t n, int64_t ld, int8_t *q) {
    const float s = trit_quantize_row_i8_fast(x, n, -127, q);
    if (ld > n) memset(q + n, 0, (size_t)(ld - n));
    return s;
}

/* ---- kernels: acc[t][r] for a group of 4 rows and nt tokens -------------------------------------
 * rows->w[r] is the row's first weight byte, rows->sub[r] its sub-scales (4 bits), q[t] the token's
 * quantized activations (ld bytes, padding 0). */

struct head_rows {
    const int8_t *w[4];
    const uint8_t *sub[4];
    int32_t wsum128[4];
};

/* The 4-bit weight of row w (packed nibbles) at column k: byte 32 (k / 64) + k % 32, the low nibble
 * for k % 64 < 32, the high one above; the nibble holds q + 8. */
static inline int q4_at(const int8_t *w, int64_t k) {
    const unsigned byte = (uint8_t)w[32 * (k / 64) + k % 32];
    return (int)(k % 64 < 32 ? byte & 15u : byte >> 4) - 8;
}

static void group_scalar(const struct head_rows *rows, const int8_t *const q[HEAD_MAX_TOK], int nt, int64_t ld,
                         int32_t out[HEAD_MAX_TOK][4]) {
    for (int t = 0; t < nt; t++)
        for (int r = 0; r < 4; r++) {
            int32_t acc = 0;
            for (int64_t c = 0; c < ld; c++) acc += (int32_t)rows->w[r][c] * (int32_t)q[t][c];
            out[t][r] = acc;
        }
}

static void group4_scalar(const struct head_rows *rows, const int8_t *const q[HEAD_MAX_TOK], int nt, int64_t ld,
                          int32_t out[HEAD_MAX_TOK][4]) {
    for (int t = 0; t < nt; t++)
        for (int r = 0; r < 4; r++) {
            int32_t acc = 0;
            for (int64_t b = 0; b < ld / HEAD_Q4_BLOCK; b++) {
                int32_t part = 0;
                for (int64_t k = b * HEAD_Q4_BLOCK; k < (b + 1) * HEAD_Q4_BLOCK; k++)
                    part += q4_at(rows->w[r], k) * (int32_t)q[t][k];
                acc += (int32_t)rows->sub[r][b] * part;
            }
            out[t][r] = acc;
        }
}

#if defined(__x86_64__) && defined(__GNUC__)
#include "cpu/simd_x86.h"

#define VNNI_TARGET TRIT_TARGET_AVX512_STR
#define VNNI_INLINE static inline __attribute__((always_inline, target(VNNI_TARGET)))

/* vpdpbusd multiplies u8 by s8: u = q + 128 (q ^ 0x80 reinterpreted as u8) times w, so
 * sum u w = sum q w + 128 sum w, and the precomputed 128 sum w is subtracted once per row.
 * Lane bound: 4 products of at most 255 * 127 per step, ld / 64 steps: below 2^31 for ld < 2^20. */
VNNI_INLINE void group_vnni_nt(const struct head_rows *rows, const int8_t *const q[HEAD_MAX_TOK], int64_t ld,
                               int32_t out[HEAD_MAX_TOK][4], const int NT) {
    const __m512i off = _mm512_set1_epi8((char)0x80);
    __m512i acc[4][HEAD_MAX_TOK];
    for (int r = 0; r < 4; r++)
        for (int t = 0; t < NT; t++) acc[r][t] = _mm512_setzero_si512();
    for (int64_t c = 0; c < ld; c += 64) {
        __m512i u[HEAD_MAX_TOK];
        for (int t = 0; t < NT; t++) u[t] = _mm512_xor_si512(_mm512_loadu_si512(q[t] + c), off);
        for (int r = 0; r < 4; r++) {
            const __m512i wv = _mm512_loadu_si512(rows->w[r] + c);
            for (int t = 0; t < NT; t++) acc[r][t] = _mm512_dpbusd_epi32(acc[r][t], u[t], wv);
        }
    }
    for (int t = 0; t < NT; t++)
        for (int r = 0; r < 4; r++) out[t][r] = _mm512_reduce_add_epi32(acc[r][t]) - rows->wsum128[r];
}

/* 4 bits: the 32 bytes of a 64-column chunk widen to 64 signed weights in column order (low
 * nibbles: columns 0..31, high: 32..63), so that one vpdpbusd against the chunk's 64 activations
 * leaves block 0's partial sums in lanes 0..7 and block 1's in lanes 8..15; one vpmulld by
 * [s0 x 8, s1 x 8] scales them. Bounds: a lane holds 4 products of at most 255 * 7, times s <= 63:
 * 449820 per chunk, so ld / 64 < 4774 chunks fit int32 (the init's dim limit is far below). */
VNNI_INLINE __m512i q4_chunk512(const int8_t *w) {
    const __m256i m4 = _mm256_set1_epi8(0x0F);
    const __m256i v = _mm256_loadu_si256((const __m256i *)w);
    const __m256i lo = _mm256_and_si256(v, m4), hi = _mm256_and_si256(_mm256_srli_epi16(v, 4), m4);
    return _mm512_sub_epi8(_mm512_inserti64x4(_mm512_castsi256_si512(lo), hi, 1), _mm512_set1_epi8(8));
}
VNNI_INLINE __m512i q4_scales512(const uint8_t *sub) {
    return _mm512_mask_blend_epi32((__mmask16)0xFF00, _mm512_set1_epi32(sub[0]), _mm512_set1_epi32(sub[1]));
}

VNNI_INLINE void group4_vnni_nt(const struct head_rows *rows, const int8_t *const q[HEAD_MAX_TOK], int64_t ld,
                                int32_t out[HEAD_MAX_TOK][4], const int NT) {
    const __m512i off = _mm512_set1_epi8((char)0x80);
    __m512i acc[4][HEAD_MAX_TOK];
    for (int r = 0; r < 4; r++)
        for (int t = 0; t < NT; t++) acc[r][t] = _mm512_setzero_si512();
    for (int64_t c = 0; c < ld; c += 64) {
        __m512i u[HEAD_MAX_TOK];
        for (int t = 0; t < NT; t++) u[t] = _mm512_xor_si512(_mm512_loadu_si512(q[t] + c), off);
        for (int r = 0; r < 4; r++) {
            const __m512i wv = q4_chunk512(rows->w[r] + c / 2);
            const __m512i sv = q4_scales512(rows->sub[r] + c / HEAD_Q4_BLOCK);
            for (int t = 0; t < NT; t++)
                acc[r][t] = _mm512_add_epi32(acc[r][t],
                                             _mm512_mullo_epi32(_mm512_dpbusd_epi32(_mm512_setzero_si512(), u[t], wv), sv));
        }
    }
    for (int t = 0; t < NT; t++)
        for (int r = 0; r < 4; r++) out[t][r] = _mm512_reduce_add_epi32(acc[r][t]) - rows->wsum128[r];
}

#define DISPATCH_NT(fn, rows, q, nt, ld, out)                                                      \
    switch (nt) {                                                                                  \
    case 1: fn(rows, q, ld, out, 1); break;                                                        \
    case 2: fn(rows, q, ld, out, 2); break;                                                        \
    case 3: fn(rows, q, ld, out, 3); break;                                                        \
    default: fn(rows, q, ld, out, 4); break;                                                       \
    }

__attribute__((target(VNNI_TARGET)))
static void group_vnni(const struct head_rows *rows, const int8_t *const q[HEAD_MAX_TOK], int nt, int64_t ld,
                       int32_t out[HEAD_MAX_TOK][4]) {
    DISPATCH_NT(group_vnni_nt, rows, q, nt, ld, out)
}

__attribute__((target(VNNI_TARGET)))
static void group4_vnni(const struct head_rows *rows, const int8_t *const q[HEAD_MAX_TOK], int nt, int64_t ld,
                        int32_t out[HEAD_MAX_TOK][4]) {
    DISPATCH_NT(group4_vnni_nt, rows, q, nt, ld, out)
}

TRIT_TARGET_AVX2 static inline int32_t hsum8_epi32(__m256i v) {
    __m128i h = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
    h = _mm_add_epi32(h, _mm_shuffle_epi32(h, 0x4E));
    h = _mm_add_epi32(h, _mm_shuffle_epi32(h, 0xB1));
    return _mm_cvtsi128_si32(h);
}

/* vpmaddubsw multiplies u8 by s8 in pairs with int16 saturation: |w| (u8) times sign(q, w) gives
 * the products w q, and two of them are at most 2 * 127 * 127 = 32258 < 32767, so nothing
 * saturates (hence the -127 clamp on both sides). vpmaddwd with ones widens to int32. */
TRIT_TARGET_AVX2
static void group_avx2(const struct head_rows *rows, const int8_t *const q[HEAD_MAX_TOK], int nt, int64_t ld,
                       int32_t out[HEAD_MAX_TOK][4]) {
    const __m256i ones = _mm256_set1_epi16(1);
    for (int t = 0; t < nt; t++) {
        __m256i acc[4];
        for (int r = 0; r < 4; r++) acc[r] = _mm256_setzero_si256();
        for (int64_t c = 0; c < ld; c += 32) {
            const __m256i qv = _mm256_loadu_si256((const __m256i *)(q[t] + c));
            for (int r = 0; r < 4; r++) {
                if (c % 64 == 0) _mm_prefetch((const char *)(rows->w[r] + c) + 4 * ld, _MM_HINT_T0); /* next group */
                const __m256i wv = _mm256_loadu_si256((const __m256i *)(rows->w[r] + c));
                const __m256i p = _mm256_maddubs_epi16(_mm256_abs_epi8(wv), _mm256_sign_epi8(qv, wv));
                acc[r] = _mm256_add_epi32(acc[r], _mm256_madd_epi16(p, ones));
            }
        }
        for (int r = 0; r < 4; r++) out[t][r] = hsum8_epi32(acc[r]);
    }
}

/* 4 bits: per 64-column chunk the low nibbles (columns 0..31, block 0) and the high ones (32..63,
 * block 1) meet the two 32-byte halves of the activations: vpmaddubsw(u, q) with u = x + 128 (u8)
 * and q in [-7, 7] (s8): pairs of at most 2 * 255 * 7 = 3570, no saturation; vpmaddwd by the
 * block's sub-scale (int16 s in every lane) widens and scales; the 128 * sum(s q) of the offset is
 * subtracted once per row, as for VNNI. */
TRIT_TARGET_AVX2
static void group4_avx2(const struct head_rows *rows, const int8_t *const q[HEAD_MAX_TOK], int nt, int64_t ld,
                        int32_t out[HEAD_MAX_TOK][4]) {
    const __m256i m4 = _mm256_set1_epi8(0x0F), eight = _mm256_set1_epi8(8), off = _mm256_set1_epi8((char)0x80);
    const __m256i lo_byte = _mm256_set1_epi16(0x00FF);
    for (int t = 0; t < nt; t++) {
        __m256i acc[4];
        for (int r = 0; r < 4; r++) acc[r] = _mm256_setzero_si256();
        for (int64_t c = 0; c < ld; c += 64) {
            const __m256i ua = _mm256_xor_si256(_mm256_loadu_si256((const __m256i *)(q[t] + c)), off);
            const __m256i ub = _mm256_xor_si256(_mm256_loadu_si256((const __m256i *)(q[t] + c + 32)), off);
            for (int r = 0; r < 4; r++) {
                /* the next group's row r (rows are consecutive, ld / 2 bytes each): the head streams */
                _mm_prefetch((const char *)(rows->w[r] + c / 2) + 2 * ld, _MM_HINT_T0);
                const __m256i v = _mm256_loadu_si256((const __m256i *)(rows->w[r] + c / 2));
                const __m256i qa = _mm256_sub_epi8(_mm256_and_si256(v, m4), eight);
                const __m256i qb = _mm256_sub_epi8(_mm256_and_si256(_mm256_srli_epi16(v, 4), m4), eight);
                uint16_t pair; /* s0 | s1 << 8 */
                memcpy(&pair, rows->sub[r] + c / HEAD_Q4_BLOCK, sizeof pair);
                const __m256i sp = _mm256_set1_epi16((short)pair);
                const __m256i s0 = _mm256_and_si256(sp, lo_byte), s1 = _mm256_srli_epi16(sp, 8);
                acc[r] = _mm256_add_epi32(acc[r], _mm256_madd_epi16(_mm256_maddubs_epi16(ua, qa), s0));
                acc[r] = _mm256_add_epi32(acc[r], _mm256_madd_epi16(_mm256_maddubs_epi16(ub, qb), s1));
            }
        }
        for (int r = 0; r < 4; r++) out[t][r] = hsum8_epi32(acc[r]) - rows->wsum128[r];
    }
}
#endif

typedef void (*group_fn)(const struct head_rows *rows, const int8_t *const q[HEAD_MAX_TOK], int nt, int64_t ld,
                         int32_t out[HEAD_MAX_TOK][4]);

static group_fn group_fn_for(const struct trit_head_i8 *h) {
    const bool q4 = h->bits == 4;
    switch (h->kernel) {
#if defined(__x86_64__) && defined(__GNUC__)
    case TRIT_HEAD_I8_VNNI: return q4 ? group4_vnni : group_vnni;
    case TRIT_HEAD_I8_AVX2: return q4 ? group4_avx2 : group_avx2;
#endif
    default: return q4 ? group4_scalar : group_scalar;
    }
}

/* Bytes of weights per row. */
static int64_t row_bytes(const struct trit_head_i8 *h) { return h->bits == 4 ? h->ld / 2 : h->ld; }

/* Rows [r0, r1) for nt tokens: acc[t * ld_acc + (r - r0)]. A group that runs past the last row reads
 * the last row again for its missing rows and drops their results. */
static void acc_rows(const struct trit_head_i8 *h, group_fn fn, const int8_t *const q[HEAD_MAX_TOK], int nt,
                     int64_t r0, int64_t r1, int32_t *acc, int64_t ld_acc) {
    const int64_t n_sub = h->ld / HEAD_Q4_BLOCK;
    for (int64_t r = r0; r < r1; r += 4) {
        struct head_rows rows;
        for (int i = 0; i < 4; i++) {
            const int64_t ri = r + i < h->n_rows ? r + i : h->n_rows - 1;
            rows.w[i] = h->w + ri * row_bytes(h);
            rows.sub[i] = h->sub ? h->sub + ri * n_sub : NULL;
            rows.wsum128[i] = h->wsum128[ri];
        }
        int32_t out[HEAD_MAX_TOK][4];
        fn(&rows, q, nt, h->ld, out);
        const int n = r1 - r < 4 ? (int)(r1 - r) : 4;
        for (int t = 0; t < nt; t++) memcpy(acc + t * ld_acc + (r - r0), out[t], (size_t)n * sizeof(int32_t));
    }
}

void trit_head_i8_acc_rows(const struct trit_head_i8 *h, const int8_t *q, int64_t r0, int64_t r1, int32_t *acc) {
    const int8_t *qs[HEAD_MAX_TOK] = {q};
    acc_rows(h, group_fn_for(h), qs, 1, r0, r1, acc, r1 - r0);
}

void trit_head_i8_acc_rows_ref(const struct trit_head_i8 *h, const int8_t *q, int64_t r0, int64_t r1,
                               int32_t *acc) {
    for (int64_t r = r0; r < r1; r++) {
        const int8_t *w = h->w + r * row_bytes(h);
        int32_t sum = 0;
        if (h->bits == 4) {
            for (int64_t b = 0; b * HEAD_Q4_BLOCK < h->n_cols; b++) {
                int32_t part = 0;
                for (int64_t k = b * HEAD_Q4_BLOCK; k < (b + 1) * HEAD_Q4_BLOCK && k < h->n_cols; k++)
                    part += q4_at(w, k) * (int32_t)q[k];
                sum += (int32_t)h->sub[r * (h->ld / HEAD_Q4_BLOCK) + b] * part;
            }
        } else {
            for (int64_t c = 0; c < h->n_cols; c++) sum += (int32_t)w[c] * (int32_t)q[c];
        }
        acc[r - r0] = sum;
    }
}

/* ---- logits ------------------------------------------------------------------------------------ */

struct logits_job {
    const struct trit_head_i8 *h;
    group_fn fn;
    int64_t n_x, n_tasks, block_rows;
    float *logits; /* (n_x, n_rows) */
};

static void logits_task(void *ctx, int64_t task, int thread) {
    (void)thread;
    const struct logits_job *j = ctx;
    const struct trit_head_i8 *h = j->h;
    const int64_t n_groups = trit_div_ceil(h->n_rows, 4);
    const int64_t g0 = n_groups * task / j->n_tasks, g1 = n_groups * (task + 1) / j->n_tasks;
    const int64_t end = 4 * g1 < h->n_rows ? 4 * g1 : h->n_rows;
    int32_t acc[HEAD_MAX_TOK * HEAD_BLOCK_BYTES / HEAD_COL_ALIGN];
    for (int64_t r0 = 4 * g0; r0 < end; r0 += j->block_rows) {
        const int64_t r1 = r0 + j->block_rows < end ? r0 + j->block_rows : end, n = r1 - r0;
        for (int64_t t0 = 0; t0 < j->n_x; t0 += HEAD_MAX_TOK) {
            const int nt = (int)(j->n_x - t0 < HEAD_MAX_TOK ? j->n_x - t0 : HEAD_MAX_TOK);
            const int8_t *q[HEAD_MAX_TOK];
            for (int t = 0; t < nt; t++) q[t] = h->q + (t0 + t) * h->ld;
            acc_rows(h, j->fn, q, nt, r0, r1, acc, n);
            for (int t = 0; t < nt; t++) {
                const float dx = h->dx[t0 + t];
                float *out = j->logits + (t0 + t) * h->n_rows + r0;
                const int32_t *a = acc + t * n;
                for (int64_t i = 0; i < n; i++) out[i] = (float)a[i] * (h->d[r0 + i] * dx);
            }
        }
    }
}

enum trit_status trit_head_i8_logits(struct trit_pool *pool, struct trit_head_i8 *h, const float *x, int64_t n_x,
                                     int64_t ldx, float *logits) {
    if (!h || !h->w || !x || !logits || n_x < 1 || n_x > h->max_x || ldx < h->n_cols)
        return trit_error(TRIT_ERR_INVALID_ARG, "quantized head: %lld tokens (1..%lld), or a NULL argument",
                          (long long)n_x, (long long)(h ? h->max_x : 0));
    for (int64_t t = 0; t < n_x; t++) h->dx[t] = 1.0f / trit_head_i8_quantize(x + t * ldx, h->n_cols, h->ld, h->q + t * h->ld);
    struct logits_job j = {.h = h, .fn = group_fn_for(h), .n_x = n_x, .logits = logits};
    j.block_rows = n_x == 1 ? HEAD_BLOCK_BYTES / HEAD_COL_ALIGN : (HEAD_BLOCK_BYTES / row_bytes(h)) & ~(int64_t)3;
    if (j.block_rows < 4) j.block_rows = 4;
    if (j.block_rows > HEAD_BLOCK_BYTES / HEAD_COL_ALIGN) j.block_rows = HEAD_BLOCK_BYTES / HEAD_COL_ALIGN; /* acc[] */
    const int64_t n_groups = trit_div_ceil(h->n_rows, 4);
    j.n_tasks = trit_pool_n_threads(pool) < n_groups ? trit_pool_n_threads(pool) : n_groups;
    trit_pool_parallel_for(pool, j.n_tasks, logits_task, &j);
    return TRIT_OK;
}

/* ---- init --------------------------------------------------------------------------------------- */

/* rint(v) for |v| < 2^22 without a libm call: adding and subtracting 1.5 * 2^23 rounds to an
 * integer in the default rounding mode (to nearest, ties to even), exactly as rintf does. */
static inline float round_small(float v) { return (v + 12582912.0f) - 12582912.0f; }

/* The 4-bit weight of x at step `step`: rint(x / step) clamped to [-7, 7] (head_int8.h). */
static inline float q4_of(float x, float step) {
    const float q = round_small(x / step);
    return q > (float)HEAD_Q4_QMAX ? (float)HEAD_Q4_QMAX : q < -(float)HEAD_Q4_QMAX ? -(float)HEAD_Q4_QMAX : q;
}

/* Quantizes one fp32 row (n columns) into the 4-bit format: see head_int8.h. Runs once per row at
 * init, with no libm call in the loops (2B-4T: 328M weights). */
static float quantize_row_q4(const float *x, int64_t n, int64_t ld, int8_t *w, uint8_t *sub) {
    const int64_t n_blocks = ld / HEAD_Q4_BLOCK;
    float amax_row = 0.0f;
    for (int64_t k = 0; k < n; k++) {
        const float a = fabsf(x[k]);
        amax_row = a > amax_row ? a : amax_row;
    }
    /* the largest block's step is d * 63, and its values reach +-7 */
    const float d = (amax_row > TRIT_ACT_EPS ? amax_row : TRIT_ACT_EPS) / (float)(HEAD_Q4_QMAX * HEAD_Q4_SMAX);
    memset(w, 0x88, (size_t)(ld / 2)); /* q = 0 everywhere, padding included */
    for (int64_t b = 0; b < n_blocks; b++) {
        const int64_t k0 = b * HEAD_Q4_BLOCK, k1 = k0 + HEAD_Q4_BLOCK < n ? k0 + HEAD_Q4_BLOCK : n;
        float amax = 0.0f;
        for (int64_t k = k0; k < k1; k++) {
            const float a = fabsf(x[k]);
            amax = a > amax ? a : amax;
        }
        /* the sub-scale with the least squared error among the three smallest that clip nothing
         * (amax / (d s) < 7.5, so every |q| <= 7 rounds, never clamps); 0 for an all-zero block.
         * The largest block has amax / (7.5 d) = 58.8, so s <= 61 <= 63. */
        const int s_min = amax > 0.0f ? (int)(amax / (7.5f * d)) + 1 : 0;
        int best_s = s_min;
        float best_err = INFINITY;
        for (int s = s_min; s > 0 && s <= s_min + 2 && s <= HEAD_Q4_SMAX; s++) {
            const float step = d * (float)s;
            float err = 0.0f;
            for (int64_t k = k0; k < k1; k++) {
                const float e = x[k] - q4_of(x[k], step) * step;
                err += e * e;
            }
            if (err < best_err) best_err = err, best_s = s;
        }
        sub[b] = (uint8_t)best_s;
        const float step = d * (float)best_s;
        for (int64_t k = k0; k < k1; k++) {
            const int qv = best_s == 0 ? 0 : (int)q4_of(x[k], step);
            uint8_t *byte = (uint8_t *)&w[32 * (k / 64) + k % 32];
            const unsigned nib = (unsigned)(qv + 8);
            *byte = k % 64 < 32 ? (uint8_t)((*byte & 0xF0u) | nib) : (uint8_t)((*byte & 0x0Fu) | nib << 4);
        }
    }
    return d;
}

struct init_job {
    const struct trit_dense *m;
    struct trit_head_i8 *h;
    float *rows; /* (n_tasks, n_cols) fp32 scratch, one row per thread */
    int64_t n_tasks;
};

static void init_task(void *ctx, int64_t task, int thread) {
    (void)thread;
    const struct init_job *j = ctx;
    struct trit_head_i8 *h = j->h;
    float *row = j->rows + task * h->n_cols;
    const int64_t r0 = h->n_rows * task / j->n_tasks, r1 = h->n_rows * (task + 1) / j->n_tasks;
    const int64_t n_sub = h->ld / HEAD_Q4_BLOCK;
    for (int64_t r = r0; r < r1; r++) {
        trit_dense_row_f32_fast(j->m, r, row);
        int8_t *w = h->w + r * row_bytes(h);
        int32_t sum = 0;
        if (h->bits == 4) {
            uint8_t *sub = h->sub + r * n_sub;
            h->d[r] = quantize_row_q4(row, h->n_cols, h->ld, w, sub);
            for (int64_t b = 0; b < n_sub; b++) {
                int32_t qs = 0;
                for (int64_t k = b * HEAD_Q4_BLOCK; k < (b + 1) * HEAD_Q4_BLOCK; k++) qs += q4_at(w, k);
                sum += (int32_t)sub[b] * qs;
            }
        } else {
            h->d[r] = 1.0f / trit_head_i8_quantize(row, h->n_cols, h->ld, w);
            for (int64_t c = 0; c < h->n_cols; c++) sum += w[c];
        }
        h->wsum128[r] = 128 * sum;
    }
}

void trit_head_i8_free(struct trit_head_i8 *h) {
    if (!h) return;
    trit_free(h->w);
    trit_free(h->sub);
    trit_free(h->d);
    trit_free(h->wsum128);
    trit_free(h->q);
    trit_free(h->dx);
    memset(h, 0, sizeof *h);
}

/* Bytes per weight row: the codes, the 4-bit head's sub-block scales, d and wsum128. */
static int64_t row_total_bytes(int bits, int64_t ld) {
    const int64_t codes = bits == 4 ? ld / 2 : ld, sub = bits == 4 ? ld / HEAD_Q4_BLOCK : 0;
    return codes + sub + (int64_t)sizeof(float) + (int64_t)sizeof(int32_t);
}

int64_t trit_head_i8_bytes(const struct trit_head_i8 *h) {
    if (!h || !h->w) return 0;
    return h->n_rows * row_total_bytes(h->bits, h->ld);
}

void trit_head_i8_plan(int64_t n_rows, int64_t n_cols, int bits, int64_t max_x, int n_threads, uint64_t *weights_bytes,
                       uint64_t *scratch_bytes) {
    const uint64_t ld = (uint64_t)trit_align_up(n_cols, HEAD_COL_ALIGN);
    *weights_bytes = (uint64_t)n_rows * (uint64_t)row_total_bytes(bits, (int64_t)ld);
    *scratch_bytes = (uint64_t)max_x * (ld + sizeof(float)) + (uint64_t)n_threads * (uint64_t)n_cols * sizeof(float);
}

static enum trit_status head_init(const struct trit_dense *m, int bits, int64_t max_x, enum trit_head_i8_kernel kernel,
                                  struct trit_pool *pool, struct trit_head_i8 *out) {
    const char *what = bits == 4 ? "4-bit head" : "int8 head";
    if (!out) return trit_error(TRIT_ERR_INVALID_ARG, "%s: NULL out", what);
    memset(out, 0, sizeof *out);
    if (!m || !m->data || m->n_rows < 1 || m->n_cols < 1 || max_x < 1)
        return trit_error(TRIT_ERR_INVALID_ARG, "%s: empty matrix or max_x %lld", what, (long long)max_x);
    /* |acc| <= 127 * 127 * n_cols must fit int32, and so must the VNNI lanes (see group_vnni_nt and
     * q4_chunk512: 4 bits is far below this) */
    if (m->n_cols > (1 << 17))
        return trit_error(TRIT_ERR_UNSUPPORTED, "%s: dim %lld is over 131072", what, (long long)m->n_cols);
    struct trit_head_i8 h = {.bits = bits, .n_rows = m->n_rows, .n_cols = m->n_cols, .max_x = max_x};
    TRIT_TRY(resolve_kernel(kernel, &h.kernel));
    h.ld = trit_align_up(m->n_cols, HEAD_COL_ALIGN);
    int64_t w_bytes;
    if (!trit_mul_i64(h.n_rows, row_bytes(&h), &w_bytes) || (uint64_t)w_bytes > SIZE_MAX)
        return trit_error(TRIT_ERR_INVALID_ARG, "%s: %lld x %lld overflows", what, (long long)h.n_rows, (long long)h.ld);
    const int64_t n_tasks = trit_pool_n_threads(pool);
    float *rows = trit_alloc((size_t)(n_tasks * h.n_cols) * sizeof(float));
    h.w = trit_alloc((size_t)w_bytes);
    if (bits == 4) h.sub = trit_alloc((size_t)(h.n_rows * (h.ld / HEAD_Q4_BLOCK)));
    h.d = trit_alloc((size_t)h.n_rows * sizeof(float));
    h.wsum128 = trit_alloc((size_t)h.n_rows * sizeof(int32_t));
    h.q = trit_alloc((size_t)(max_x * h.ld));
    h.dx = trit_alloc((size_t)max_x * sizeof(float));
    if (!rows || !h.w || (bits == 4 && !h.sub) || !h.d || !h.wsum128 || !h.q || !h.dx) {
        trit_free(rows);
        trit_head_i8_free(&h);
        return trit_error(TRIT_ERR_OUT_OF_MEMORY, "%s: out of memory (%lld MiB)", what, (long long)(w_bytes >> 20));
    }
    struct init_job j = {.m = m, .h = &h, .rows = rows, .n_tasks = n_tasks};
    trit_pool_parallel_for(pool, n_tasks, init_task, &j);
    trit_free(rows);
    *out = h;
    return TRIT_OK;
}

enum trit_status trit_head_i8_init(const struct trit_dense *m, int64_t max_x, enum trit_head_i8_kernel kernel,
                                   struct trit_pool *pool, struct trit_head_i8 *out) {
    return head_init(m, 8, max_x, kernel, pool, out);
}

enum trit_status trit_head_q4_init(const struct trit_dense *m, int64_t max_x, enum trit_head_i8_kernel kernel,
                                   struct trit_pool *pool, struct trit_head_i8 *out) {
    return head_init(m, 4, max_x, kernel, pool, out);
}
