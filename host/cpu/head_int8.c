/*
 * head_int8.c: the int8 LM head (head_int8.h): per-row quantization of the head at init, per-token
 * quantization of the hidden state, exact int32 dot products (scalar reference, AVX2, AVX-512 VNNI)
 * and the fp32 epilogue, threaded over rows.
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
 * w[r] is the row's first byte (ld bytes), q[t] the token's quantized activations (ld bytes). */

static void group_scalar(const int8_t *const w[4], const int8_t *const q[HEAD_MAX_TOK], int nt, int64_t ld,
                         const int32_t wsum128[4], int32_t out[HEAD_MAX_TOK][4]) {
    (void)wsum128;
    for (int t = 0; t < nt; t++)
        for (int r = 0; r < 4; r++) {
            int32_t acc = 0;
            for (int64_t c = 0; c < ld; c++) acc += (int32_t)w[r][c] * (int32_t)q[t][c];
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
VNNI_INLINE void group_vnni_nt(const int8_t *const w[4], const int8_t *const q[HEAD_MAX_TOK], int64_t ld,
                               const int32_t wsum128[4], int32_t out[HEAD_MAX_TOK][4], const int NT) {
    const __m512i off = _mm512_set1_epi8((char)0x80);
    __m512i acc[4][HEAD_MAX_TOK];
    for (int r = 0; r < 4; r++)
        for (int t = 0; t < NT; t++) acc[r][t] = _mm512_setzero_si512();
    for (int64_t c = 0; c < ld; c += 64) {
        __m512i u[HEAD_MAX_TOK];
        for (int t = 0; t < NT; t++) u[t] = _mm512_xor_si512(_mm512_loadu_si512(q[t] + c), off);
        for (int r = 0; r < 4; r++) {
            const __m512i wv = _mm512_loadu_si512(w[r] + c);
            for (int t = 0; t < NT; t++) acc[r][t] = _mm512_dpbusd_epi32(acc[r][t], u[t], wv);
        }
    }
    for (int t = 0; t < NT; t++)
        for (int r = 0; r < 4; r++) out[t][r] = _mm512_reduce_add_epi32(acc[r][t]) - wsum128[r];
}

__attribute__((target(VNNI_TARGET)))
static void group_vnni(const int8_t *const w[4], const int8_t *const q[HEAD_MAX_TOK], int nt, int64_t ld,
                       const int32_t wsum128[4], int32_t out[HEAD_MAX_TOK][4]) {
    switch (nt) {
    case 1: group_vnni_nt(w, q, ld, wsum128, out, 1); break;
    case 2: group_vnni_nt(w, q, ld, wsum128, out, 2); break;
    case 3: group_vnni_nt(w, q, ld, wsum128, out, 3); break;
    default: group_vnni_nt(w, q, ld, wsum128, out, 4); break;
    }
}

/* vpmaddubsw multiplies u8 by s8 in pairs with int16 saturation: |w| (u8) times sign(q, w) gives
 * the products w q, and two of them are at most 2 * 127 * 127 = 32258 < 32767, so nothing
 * saturates (hence the -127 clamp on both sides). vpmaddwd with ones widens to int32. */
TRIT_TARGET_AVX2
static void group_avx2(const int8_t *const w[4], const int8_t *const q[HEAD_MAX_TOK], int nt, int64_t ld,
                       const int32_t wsum128[4], int32_t out[HEAD_MAX_TOK][4]) {
    (void)wsum128;
    const __m256i ones = _mm256_set1_epi16(1);
    for (int t = 0; t < nt; t++) {
        __m256i acc[4];
        for (int r = 0; r < 4; r++) acc[r] = _mm256_setzero_si256();
        for (int64_t c = 0; c < ld; c += 32) {
            const __m256i qv = _mm256_loadu_si256((const __m256i *)(q[t] + c));
            for (int r = 0; r < 4; r++) {
                const __m256i wv = _mm256_loadu_si256((const __m256i *)(w[r] + c));
                const __m256i p = _mm256_maddubs_epi16(_mm256_abs_epi8(wv), _mm256_sign_epi8(qv, wv));
                acc[r] = _mm256_add_epi32(acc[r], _mm256_madd_epi16(p, ones));
            }
        }
        for (int r = 0; r < 4; r++) {
            __m128i h = _mm_add_epi32(_mm256_castsi256_si128(acc[r]), _mm256_extracti128_si256(acc[r], 1));
            h = _mm_add_epi32(h, _mm_shuffle_epi32(h, 0x4E));
            h = _mm_add_epi32(h, _mm_shuffle_epi32(h, 0xB1));
            out[t][r] = _mm_cvtsi128_si32(h);
        }
    }
}
#endif

typedef void (*group_fn)(const int8_t *const w[4], const int8_t *const q[HEAD_MAX_TOK], int nt, int64_t ld,
                         const int32_t wsum128[4], int32_t out[HEAD_MAX_TOK][4]);

static group_fn group_fn_for(enum trit_head_i8_kernel k) {
    switch (k) {
#if defined(__x86_64__) && defined(__GNUC__)
    case TRIT_HEAD_I8_VNNI: return group_vnni;
    case TRIT_HEAD_I8_AVX2: return group_avx2;
#endif
    default: return group_scalar;
    }
}

/* Rows [r0, r1) for nt tokens: acc[t * ld_acc + (r - r0)]. A group that runs past the last row reads
 * the last row again for its missing rows and drops their results. */
static void acc_rows(const struct trit_head_i8 *h, group_fn fn, const int8_t *const q[HEAD_MAX_TOK], int nt,
                     int64_t r0, int64_t r1, int32_t *acc, int64_t ld_acc) {
    for (int64_t r = r0; r < r1; r += 4) {
        const int8_t *w[4];
        int32_t ws[4];
        for (int i = 0; i < 4; i++) {
            const int64_t ri = r + i < h->n_rows ? r + i : h->n_rows - 1;
            w[i] = h->w + ri * h->ld;
            ws[i] = h->wsum128[ri];
        }
        int32_t out[HEAD_MAX_TOK][4];
        fn(w, q, nt, h->ld, ws, out);
        const int n = r1 - r < 4 ? (int)(r1 - r) : 4;
        for (int t = 0; t < nt; t++) memcpy(acc + t * ld_acc + (r - r0), out[t], (size_t)n * sizeof(int32_t));
    }
}

void trit_head_i8_acc_rows(const struct trit_head_i8 *h, const int8_t *q, int64_t r0, int64_t r1, int32_t *acc) {
    const int8_t *qs[HEAD_MAX_TOK] = {q};
    acc_rows(h, group_fn_for(h->kernel), qs, 1, r0, r1, acc, r1 - r0);
}

void trit_head_i8_acc_rows_ref(const struct trit_head_i8 *h, const int8_t *q, int64_t r0, int64_t r1,
                               int32_t *acc) {
    for (int64_t r = r0; r < r1; r++) {
        const int8_t *w = h->w + r * h->ld;
        int32_t sum = 0;
        for (int64_t c = 0; c < h->n_cols; c++) sum += (int32_t)w[c] * (int32_t)q[c];
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
        return trit_error(TRIT_ERR_INVALID_ARG, "int8 head: %lld tokens (1..%lld), or a NULL argument",
                          (long long)n_x, (long long)(h ? h->max_x : 0));
    for (int64_t t = 0; t < n_x; t++) h->dx[t] = 1.0f / trit_head_i8_quantize(x + t * ldx, h->n_cols, h->ld, h->q + t * h->ld);
    struct logits_job j = {.h = h, .fn = group_fn_for(h->kernel), .n_x = n_x, .logits = logits};
    j.block_rows = n_x == 1 ? HEAD_BLOCK_BYTES / HEAD_COL_ALIGN : (HEAD_BLOCK_BYTES / h->ld) & ~(int64_t)3;
    if (j.block_rows < 4) j.block_rows = 4;
    const int64_t n_groups = trit_div_ceil(h->n_rows, 4);
    j.n_tasks = trit_pool_n_threads(pool) < n_groups ? trit_pool_n_threads(pool) : n_groups;
    trit_pool_parallel_for(pool, j.n_tasks, logits_task, &j);
    return TRIT_OK;
}

/* ---- init --------------------------------------------------------------------------------------- */

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
    for (int64_t r = r0; r < r1; r++) {
        trit_dense_row_f32_fast(j->m, r, row);
        int8_t *w = h->w + r * h->ld;
        h->d[r] = 1.0f / trit_head_i8_quantize(row, h->n_cols, h->ld, w);
        int32_t sum = 0;
        for (int64_t c = 0; c < h->n_cols; c++) sum += w[c];
        h->wsum128[r] = 128 * sum;
    }
}

void trit_head_i8_free(struct trit_head_i8 *h) {
    if (!h) return;
    trit_free(h->w);
    trit_free(h->d);
    trit_free(h->wsum128);
    trit_free(h->q);
    trit_free(h->dx);
    memset(h, 0, sizeof *h);
}

int64_t trit_head_i8_bytes(const struct trit_head_i8 *h) {
    return h && h->w ? h->n_rows * (h->ld + (int64_t)sizeof(float) + (int64_t)sizeof(int32_t)) : 0;
}

enum trit_status trit_head_i8_init(const struct trit_dense *m, int64_t max_x, enum trit_head_i8_kernel kernel,
                                   struct trit_pool *pool, struct trit_head_i8 *out) {
    if (!out) return trit_error(TRIT_ERR_INVALID_ARG, "int8 head: NULL out");
    memset(out, 0, sizeof *out);
    if (!m || !m->data || m->n_rows < 1 || m->n_cols < 1 || max_x < 1)
        return trit_error(TRIT_ERR_INVALID_ARG, "int8 head: empty matrix or max_x %lld", (long long)max_x);
    /* |acc| <= 127 * 127 * n_cols must fit int32, and so must the VNNI lanes (see group_vnni_nt) */
    if (m->n_cols > (1 << 17))
        return trit_error(TRIT_ERR_UNSUPPORTED, "int8 head: dim %lld is over 131072", (long long)m->n_cols);
    struct trit_head_i8 h = {.n_rows = m->n_rows, .n_cols = m->n_cols, .max_x = max_x};
    TRIT_TRY(resolve_kernel(kernel, &h.kernel));
    h.ld = trit_align_up(m->n_cols, HEAD_COL_ALIGN);
    int64_t w_bytes;
    if (!trit_mul_i64(h.n_rows, h.ld, &w_bytes) || (uint64_t)w_bytes > SIZE_MAX)
        return trit_error(TRIT_ERR_INVALID_ARG, "int8 head: %lld x %lld overflows", (long long)h.n_rows, (long long)h.ld);
    const int64_t n_tasks = trit_pool_n_threads(pool);
    float *rows = trit_alloc((size_t)(n_tasks * h.n_cols) * sizeof(float));
    h.w = trit_alloc((size_t)w_bytes);
    h.d = trit_alloc((size_t)h.n_rows * sizeof(float));
    h.wsum128 = trit_alloc((size_t)h.n_rows * sizeof(int32_t));
    h.q = trit_alloc((size_t)(max_x * h.ld));
    h.dx = trit_alloc((size_t)max_x * sizeof(float));
    if (!rows || !h.w || !h.d || !h.wsum128 || !h.q || !h.dx) {
        trit_free(rows);
        trit_head_i8_free(&h);
        return trit_error(TRIT_ERR_OUT_OF_MEMORY, "int8 head: out of memory (%lld MiB)", (long long)(w_bytes >> 20));
    }
    struct init_job j = {.m = m, .h = &h, .rows = rows, .n_tasks = n_tasks};
    trit_pool_parallel_for(pool, n_tasks, init_task, &j);
    trit_free(rows);
    *out = h;
    return TRIT_OK;
}
