// labels: gpu
/* test_cuda_kernels.c: every CUDA kernel of cuda/ against the scalar CPU reference (host/cpu),
 * bit for bit: int32 accumulators against trit_gemm_ref, fp32 outputs against trit_epilogue_ref,
 * int8 activations against trit_quantize_row_i8, the sampling top-k (trit_cuda_topk) against
 * trit_topk_penalized on the rows of topk_cases.h, the group rule's quantizer and kernels against
 * trit_quantize_row_i8_blocks and trit_gemm_group_ref. Shapes include tails on every side (N, K not
 * multiples of 16 / 128, m from 1 to 100) and the 2B-4T shapes (2560 x 6912, 6912 x 2560).
 * Inputs are fresh random data over the full int8 range; outputs are poisoned before each kernel
 * and checked everywhere. Skips without a GPU (fails with TRIT_REQUIRE_GPU=1).
 *
 *   ctest --test-dir build -R test_cuda_kernels --output-on-failure */
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "support.h"

#ifdef TRIT_HAVE_CUDA

#include "backend.h" /* trit_topk_penalized, TRIT_TOPK_MAX */
#include "cpu/cpu.h"
#include "quant/quant.h"
#include "ternary_layout.h"
#include "topk_cases.h"
#include "trit_cuda.h"
#include "trit_cuda_ops.h"

#define POISON_BYTE 0xA5

#define CUDA_OK(expr)                                                                              \
    do {                                                                                           \
        enum trit_status st_ = (expr);                                                             \
        cr_assert_eq(st_, TRIT_OK, "%s: %s", #expr, trit_last_error());                           \
    } while (0)

/* One problem: W (n, k) on host and device, q (m, k) on host and in the act layout on the device,
 * the reference accumulators. */
struct prob {
    int64_t n, k, m, k_pad;
    struct trit_ternary w;
    struct trit_cuda_ternary dw;
    int8_t *q;       /* (m, k) */
    int32_t *qsum;   /* (m) */
    float *scale;    /* (m) activation scales (random, positive) */
    int32_t *ref;    /* (m, n) */
    int8_t *d_q;     /* (m, k_pad) act layout */
    int32_t *d_qsum; /* (m) */
    float *d_scale;  /* (m) */
    void *d_out;     /* (m, n) int32 or fp32 */
};

/* W (n, k) on the host: random codes, a scale uniform in [scale_lo, scale_hi) and the given kind;
 * uploaded to dw. */
static void random_weights(struct test_rng *rng, int64_t n, int64_t k, float scale_lo, float scale_hi,
                           enum trit_scale_kind kind, struct trit_ternary *w, struct trit_cuda_ternary *dw) {
    cr_assert_eq(trit_ternary_init(w, n, k), TRIT_OK);
    for (int64_t r = 0; r < n; r++)
        for (int64_t c = 0; c < k; c++) trit_ternary_set(w, r, c, (int)test_rng_int(rng, -1, 1));
    w->scale = test_rng_uniform(rng, scale_lo, scale_hi);
    w->scale_kind = kind;
    CUDA_OK(trit_cuda_ternary_upload(w, dw));
}

static void prob_init(struct prob *p, struct test_rng *rng, int64_t n, int64_t k, int64_t m,
                      enum trit_scale_kind kind) {
    memset(p, 0, sizeof *p);
    p->n = n, p->k = k, p->m = m, p->k_pad = trit_cuda_act_stride(k);
    random_weights(rng, n, k, 0.01f, 3.0f, kind, &p->w, &p->dw);

    p->q = malloc((size_t)(m * k));
    p->qsum = calloc((size_t)m, sizeof *p->qsum);
    p->scale = malloc((size_t)m * sizeof *p->scale);
    p->ref = malloc((size_t)(m * n) * sizeof *p->ref);
    int8_t *qa = malloc((size_t)(m * p->k_pad));
    for (int64_t i = 0; i < m * k; i++) {
        p->q[i] = (int8_t)test_rng_int(rng, -128, 127);
        p->qsum[i / k] += p->q[i];
    }
    for (int64_t i = 0; i < m; i++) p->scale[i] = test_rng_uniform(rng, 0.5f, 300.0f);
    trit_al_pack(p->q, m, k, qa);
    trit_gemm_ref(&p->w, p->q, m, p->ref);

    CUDA_OK(trit_cuda_malloc((void **)&p->d_q, (size_t)(m * p->k_pad)));
    CUDA_OK(trit_cuda_malloc((void **)&p->d_qsum, (size_t)m * sizeof(int32_t)));
    CUDA_OK(trit_cuda_malloc((void **)&p->d_scale, (size_t)m * sizeof(float)));
    CUDA_OK(trit_cuda_malloc(&p->d_out, (size_t)(m * n) * 4));
    CUDA_OK(trit_cuda_upload(p->d_q, qa, (size_t)(m * p->k_pad)));
    CUDA_OK(trit_cuda_upload(p->d_qsum, p->qsum, (size_t)m * sizeof(int32_t)));
    CUDA_OK(trit_cuda_upload(p->d_scale, p->scale, (size_t)m * sizeof(float)));
    free(qa);
}

static void prob_free(struct prob *p) {
    trit_ternary_free(&p->w);
    trit_cuda_ternary_free(&p->dw);
    free(p->q), free(p->qsum), free(p->scale), free(p->ref);
    trit_cuda_free(p->d_q), trit_cuda_free(p->d_qsum), trit_cuda_free(p->d_scale), trit_cuda_free(p->d_out);
}

static void poison_out(const struct prob *p) {
    CUDA_OK(trit_cuda_memset(p->d_out, POISON_BYTE, (size_t)(p->m * p->n) * 4, NULL));
}

/* Downloads the int32 output and compares every element with the reference. */
static void check_i32(const struct prob *p, const char *what) {
    CUDA_OK(trit_cuda_stream_sync(NULL));
    int32_t *got = malloc((size_t)(p->m * p->n) * sizeof *got);
    CUDA_OK(trit_cuda_download(got, p->d_out, (size_t)(p->m * p->n) * sizeof *got));
    for (int64_t i = 0; i < p->m * p->n; i++)
        if (got[i] != p->ref[i])
            cr_assert_fail("%s %ldx%ld m %ld: token %ld row %ld: %d != %d (poison %d)", what, (long)p->n, (long)p->k,
                           (long)p->m, (long)(i / p->n), (long)(i % p->n), got[i], p->ref[i],
                           got[i] == (int32_t)0xA5A5A5A5u);
    free(got);
}

/* Downloads the fp32 output and compares its bits with trit_epilogue_ref of the reference. */
static void check_f32(const struct prob *p, const char *what) {
    CUDA_OK(trit_cuda_stream_sync(NULL));
    const size_t count = (size_t)(p->m * p->n);
    float *got = malloc(count * sizeof *got), *want = malloc(count * sizeof *want);
    CUDA_OK(trit_cuda_download(got, p->d_out, count * sizeof *got));
    trit_epilogue_ref(p->ref, p->m, p->n, p->scale, p->w.scale, p->w.scale_kind, want);
    for (size_t i = 0; i < count; i++)
        if (memcmp(&got[i], &want[i], sizeof got[i]) != 0)
            cr_assert_fail("%s %ldx%ld m %ld kind %d: token %zu row %zu: %a != %a", what, (long)p->n, (long)p->k,
                           (long)p->m, (int)p->w.scale_kind, i / (size_t)p->n, i % (size_t)p->n, (double)got[i],
                           (double)want[i]);
    free(got), free(want);
}

/* The matmul kernels under test, each launched on a prob's device buffers. */
enum kernel { GEMV_DP4A_I32, GEMV_ADD_I32, GEMV_DP4A_F32, GEMM_MMA_I32, GEMM_MMA_F32 };

/* Poisons the output, launches the kernel (split: GEMM_MMA_I32's split-K, 0 = auto; unused by the
 * others) and checks every output: int32 against the reference, fp32 through trit_epilogue_ref. */
static void run_kernel(const struct prob *p, enum kernel kern, int split, const char *what) {
    poison_out(p);
    switch (kern) {
    case GEMV_DP4A_I32: CUDA_OK(trit_cuda_gemv_dp4a_i32(&p->dw, p->d_q, p->d_qsum, p->m, p->d_out, NULL)); break;
    case GEMV_ADD_I32: CUDA_OK(trit_cuda_gemv_add_i32(&p->dw, p->d_q, p->m, p->d_out, NULL)); break;
    case GEMV_DP4A_F32:
        CUDA_OK(trit_cuda_gemv_dp4a_f32(&p->dw, p->d_q, p->d_qsum, p->d_scale, p->m, p->d_out, NULL));
        break;
    case GEMM_MMA_I32: CUDA_OK(trit_cuda_gemm_mma_i32(&p->dw, p->d_q, p->d_qsum, p->m, split, p->d_out, NULL)); break;
    case GEMM_MMA_F32:
        CUDA_OK(trit_cuda_gemm_mma_f32(&p->dw, p->d_q, p->d_qsum, p->d_scale, p->m, p->d_out, NULL));
        break;
    }
    if (kern == GEMV_DP4A_F32 || kern == GEMM_MMA_F32) check_f32(p, what);
    else check_i32(p, what);
}

/* One fresh problem (n, k, m, kind) from rng, the kernel once against its reference. */
static void check_kernel(struct test_rng *rng, int64_t n, int64_t k, int64_t m, enum trit_scale_kind kind,
                         enum kernel kern, const char *what) {
    struct prob p;
    prob_init(&p, rng, n, k, m, kind);
    run_kernel(&p, kern, 0, what);
    prob_free(&p);
}

/* (n, k): tails on both sides, one-element and one-column cases, and the 2B-4T shapes. */
static const int64_t SHAPES[][2] = {{1, 1},   {1, 200}, {17, 129},  {33, 300},    {45, 1000},
                                    {100, 127}, {640, 2560}, {2560, 6912}, {6912, 2560}, {3840, 2560}};
#define N_SHAPES (sizeof SHAPES / sizeof SHAPES[0])
/* the reference costs n * k * m adds: keep the largest shapes to small m */
static int affordable(int64_t n, int64_t k, int64_t m) { return n * k * m <= (int64_t)300 * 1000 * 1000; }

Test(cuda_kernels, gemv_dp4a_i32) {
    if (!test_require_gpu()) return;
    struct test_rng rng;
    test_rng_seed(&rng, 0x9e1u);
    const int64_t ms[] = {1, 2, 3, 8};
    for (size_t s = 0; s < N_SHAPES; s++)
        for (size_t mi = 0; mi < 4; mi++) {
            if (!affordable(SHAPES[s][0], SHAPES[s][1], ms[mi])) continue;
            check_kernel(&rng, SHAPES[s][0], SHAPES[s][1], ms[mi], TRIT_SCALE_MUL, GEMV_DP4A_I32, "gemv dp4a");
        }
}

Test(cuda_kernels, gemv_add_i32) {
    if (!test_require_gpu()) return;
    struct test_rng rng;
    test_rng_seed(&rng, 0x9e2u);
    for (size_t s = 0; s < N_SHAPES; s++)
        for (int64_t m = 1; m <= TRIT_CUDA_GEMV_MAX_M; m++) {
            if (!affordable(SHAPES[s][0], SHAPES[s][1], m) || (SHAPES[s][0] > 1000 && m % 3 != 1)) continue;
            check_kernel(&rng, SHAPES[s][0], SHAPES[s][1], m, TRIT_SCALE_MUL, GEMV_ADD_I32, "gemv add");
        }
}

Test(cuda_kernels, gemv_dp4a_f32_both_scale_kinds) {
    if (!test_require_gpu()) return;
    struct test_rng rng;
    test_rng_seed(&rng, 0x9e3u);
    for (int kind = 0; kind < 2; kind++)
        for (size_t s = 0; s < N_SHAPES; s++)
            for (int64_t m = 1; m <= TRIT_CUDA_GEMV_MAX_M; m += 3) {
                if (!affordable(SHAPES[s][0], SHAPES[s][1], m)) continue;
                check_kernel(&rng, SHAPES[s][0], SHAPES[s][1], m, (enum trit_scale_kind)kind, GEMV_DP4A_F32,
                             "gemv dp4a f32");
            }
}

Test(cuda_kernels, gemm_mma_i32_any_m_and_splits) {
    if (!test_require_gpu()) return;
    struct test_rng rng;
    test_rng_seed(&rng, 0x9e4u);
    const int64_t ms[] = {1, 2, 3, 8, 9, 17, 64, 100};
    for (size_t s = 0; s < N_SHAPES; s++)
        for (size_t mi = 0; mi < sizeof ms / sizeof ms[0]; mi++) {
            if (!affordable(SHAPES[s][0], SHAPES[s][1], ms[mi])) continue;
            struct prob p;
            prob_init(&p, &rng, SHAPES[s][0], SHAPES[s][1], ms[mi], TRIT_SCALE_MUL);
            const int splits[] = {0, 1, 3};
            for (int si = 0; si < 3; si++)
                run_kernel(&p, GEMM_MMA_I32, splits[si],
                           splits[si] == 0 ? "gemm auto split" : splits[si] == 1 ? "gemm split 1" : "gemm split 3");
            prob_free(&p);
        }
}

Test(cuda_kernels, gemm_mma_f32_both_scale_kinds) {
    if (!test_require_gpu()) return;
    struct test_rng rng;
    test_rng_seed(&rng, 0x9e5u);
    const int64_t ms[] = {1, 9, 33, 100};
    for (int kind = 0; kind < 2; kind++)
        for (size_t s = 0; s < N_SHAPES; s++)
            for (size_t mi = 0; mi < 4; mi++) {
                if (!affordable(SHAPES[s][0], SHAPES[s][1], ms[mi])) continue;
                check_kernel(&rng, SHAPES[s][0], SHAPES[s][1], ms[mi], (enum trit_scale_kind)kind, GEMM_MMA_F32,
                             "gemm f32");
            }
}

/* The activation quantizer's device buffers for x (m, k) fp32: x uploaded; q (m, k_pad) in the act
 * layout, the per-token sums and the scales (m) allocated for trit_cuda_act_quantize to write. */
struct act_bufs {
    float *d_x, *d_s;
    int8_t *d_q;
    int32_t *d_sum;
};

static void act_bufs_init(struct act_bufs *b, const float *x, int64_t m, int64_t k) {
    const int64_t k_pad = trit_cuda_act_stride(k);
    CUDA_OK(trit_cuda_malloc((void **)&b->d_x, (size_t)(m * k) * sizeof *x));
    CUDA_OK(trit_cuda_malloc((void **)&b->d_q, (size_t)(m * k_pad)));
    CUDA_OK(trit_cuda_malloc((void **)&b->d_sum, (size_t)m * sizeof(int32_t)));
    CUDA_OK(trit_cuda_malloc((void **)&b->d_s, (size_t)m * sizeof(float)));
    CUDA_OK(trit_cuda_upload(b->d_x, x, (size_t)(m * k) * sizeof *x));
}

static void act_bufs_free(struct act_bufs *b) {
    trit_cuda_free(b->d_x), trit_cuda_free(b->d_q), trit_cuda_free(b->d_sum), trit_cuda_free(b->d_s);
}

/* Device quantization = trit_quantize_rows_i8: q (through the act layout, padding zero), the
 * per-token sums and the scales, bit for bit; rows include ties, tiny maxima and a NaN. */
Test(cuda_kernels, act_quantize_matches_reference) {
    if (!test_require_gpu()) return;
    struct test_rng rng;
    test_rng_seed(&rng, 0x9e6u);
    const int64_t ks[] = {1, 3, 127, 128, 129, 2560, 6912, 13824 + 5};
    const int64_t ms[] = {1, 5, 3};
    for (size_t ki = 0; ki < sizeof ks / sizeof ks[0]; ki++) {
        const int64_t k = ks[ki], m = ms[ki % 3], k_pad = trit_cuda_act_stride(k);
        float *x = malloc((size_t)(m * k) * sizeof *x), *s_ref = malloc((size_t)m * sizeof *s_ref);
        float *s_got = malloc((size_t)m * sizeof *s_got);
        int8_t *q_ref = malloc((size_t)(m * k)), *q_got = malloc((size_t)(m * k_pad)), *q_un = malloc((size_t)(m * k));
        int32_t *sum_got = malloc((size_t)m * sizeof *sum_got);
        for (int64_t i = 0; i < m * k; i++) x[i] = test_rng_normal(&rng) * test_rng_uniform(&rng, 0.01f, 10.0f);
        if (k > 64) {
            x[0] = 127.0f; /* row 0: scale 1, exact ties at n + 0.5 */
            for (int64_t c = 1; c < 64; c++) x[c] = (float)(c - 32) + 0.5f;
        }
        if (m > 1) {
            for (int64_t c = 0; c < k; c++) x[k + c] *= 1e-8f; /* row 1: max below the 1e-5 floor */
            if (k > 5) x[k + 5] = (float)NAN;
        }
        trit_quantize_rows_i8(x, m, k, q_ref, s_ref);

        struct act_bufs b;
        act_bufs_init(&b, x, m, k);
        CUDA_OK(trit_cuda_memset(b.d_q, POISON_BYTE, (size_t)(m * k_pad), NULL));
        CUDA_OK(trit_cuda_memset(b.d_sum, POISON_BYTE, (size_t)m * sizeof(int32_t), NULL));
        CUDA_OK(trit_cuda_memset(b.d_s, POISON_BYTE, (size_t)m * sizeof(float), NULL));
        CUDA_OK(trit_cuda_act_quantize(b.d_x, m, k, b.d_q, b.d_sum, b.d_s, NULL));
        CUDA_OK(trit_cuda_stream_sync(NULL));
        CUDA_OK(trit_cuda_download(q_got, b.d_q, (size_t)(m * k_pad)));
        CUDA_OK(trit_cuda_download(sum_got, b.d_sum, (size_t)m * sizeof(int32_t)));
        CUDA_OK(trit_cuda_download(s_got, b.d_s, (size_t)m * sizeof(float)));

        trit_al_unpack(q_got, m, k, q_un);
        for (int64_t i = 0; i < m; i++) {
            cr_assert(memcmp(&s_got[i], &s_ref[i], sizeof(float)) == 0, "k %ld row %ld: scale %a != %a", (long)k,
                      (long)i, (double)s_got[i], (double)s_ref[i]);
            int32_t sum = 0;
            for (int64_t c = 0; c < k; c++) {
                cr_assert_eq(q_un[i * k + c], q_ref[i * k + c], "k %ld row %ld col %ld: x %a", (long)k, (long)i,
                             (long)c, (double)x[i * k + c]);
                sum += q_ref[i * k + c];
            }
            cr_assert_eq(sum_got[i], sum, "k %ld row %ld: qsum", (long)k, (long)i);
            for (int64_t pos = 0; pos < k_pad; pos++)
                if (trit_al_col(pos) >= k) cr_assert_eq(q_got[i * k_pad + pos], 0, "padding at %ld", (long)pos);
        }
        act_bufs_free(&b);
        free(x), free(s_ref), free(s_got), free(q_ref), free(q_got), free(q_un), free(sum_got);
    }
}

/* The decode path end to end: fp32 x -> device quantize -> GEMV (dp4a, fused epilogue) and GEMM
 * (fused) against the CPU pipeline trit_quantize_rows_i8 -> trit_gemm_ref -> trit_epilogue_ref. */
Test(cuda_kernels, quantize_then_matmul_end_to_end) {
    if (!test_require_gpu()) return;
    struct test_rng rng;
    test_rng_seed(&rng, 0x9e7u);
    const int64_t n = 2560, k = 6912;
    for (int kind = 0; kind < 2; kind++)
        for (int64_t m = 1; m <= 9; m += 8) {
            struct trit_ternary w = {0};
            struct trit_cuda_ternary dw = {0};
            random_weights(&rng, n, k, 0.5f, 2.0f, (enum trit_scale_kind)kind, &w, &dw);
            float *x = malloc((size_t)(m * k) * sizeof *x), *s = malloc((size_t)m * sizeof *s);
            float *want = malloc((size_t)(m * n) * sizeof *want), *got = malloc((size_t)(m * n) * sizeof *got);
            int8_t *q = malloc((size_t)(m * k));
            int32_t *acc = malloc((size_t)(m * n) * sizeof *acc);
            for (int64_t i = 0; i < m * k; i++) x[i] = test_rng_normal(&rng);
            trit_quantize_rows_i8(x, m, k, q, s);
            trit_gemm_ref(&w, q, m, acc);
            trit_epilogue_ref(acc, m, n, s, w.scale, w.scale_kind, want);

            struct act_bufs b;
            float *d_y;
            act_bufs_init(&b, x, m, k);
            CUDA_OK(trit_cuda_malloc((void **)&d_y, (size_t)(m * n) * sizeof(float)));
            CUDA_OK(trit_cuda_act_quantize(b.d_x, m, k, b.d_q, b.d_sum, b.d_s, NULL));
            for (int path = 0; path < 2; path++) {
                if (path == 0 && m > TRIT_CUDA_GEMV_MAX_M) continue;
                CUDA_OK(trit_cuda_memset(d_y, POISON_BYTE, (size_t)(m * n) * sizeof(float), NULL));
                if (path == 0) CUDA_OK(trit_cuda_gemv_dp4a_f32(&dw, b.d_q, b.d_sum, b.d_s, m, d_y, NULL));
                else CUDA_OK(trit_cuda_gemm_mma_f32(&dw, b.d_q, b.d_sum, b.d_s, m, d_y, NULL));
                CUDA_OK(trit_cuda_stream_sync(NULL));
                CUDA_OK(trit_cuda_download(got, d_y, (size_t)(m * n) * sizeof(float)));
                cr_assert(memcmp(got, want, (size_t)(m * n) * sizeof(float)) == 0, "%s m %ld kind %d differs",
                          path == 0 ? "gemv" : "gemm", (long)m, kind);
            }
            act_bufs_free(&b), trit_cuda_free(d_y);
            free(x), free(s), free(want), free(got), free(q), free(acc);
            trit_cuda_ternary_free(&dw);
            trit_ternary_free(&w);
        }
}

/* Argument checks answer with a status and a message, before touching the device. */
Test(cuda_kernels, op_entries_check_shapes) {
    if (!test_require_gpu()) return;
    struct test_rng rng;
    test_rng_seed(&rng, 0x9e8u);
    struct prob p;
    prob_init(&p, &rng, 17, 129, 9, TRIT_SCALE_MUL);
    cr_assert_eq(trit_cuda_gemv_dp4a_i32(&p.dw, p.d_q, p.d_qsum, 9, p.d_out, NULL), TRIT_ERR_INVALID_ARG);
    cr_assert_eq(trit_cuda_gemv_add_i32(&p.dw, p.d_q, 0, p.d_out, NULL), TRIT_ERR_INVALID_ARG);
    cr_assert_eq(trit_cuda_gemm_mma_i32(&p.dw, p.d_q + 1, p.d_qsum, 9, 0, p.d_out, NULL), TRIT_ERR_INVALID_ARG);
    cr_assert_eq(trit_cuda_gemm_mma_i32(NULL, p.d_q, p.d_qsum, 9, 0, p.d_out, NULL), TRIT_ERR_INVALID_ARG);
    cr_assert(strstr(trit_last_error(), "NULL") != NULL);
    p.w.codes[0] = 0xFF; /* code 3 */
    struct trit_cuda_ternary bad;
    cr_assert_eq(trit_cuda_ternary_upload(&p.w, &bad), TRIT_ERR_INVALID_ARG);
    cr_assert_null(bad.d_tiles);
    prob_free(&p);
}

/* trit_cuda_topk = trit_topk_penalized, bit for bit (values and ids), on every case of
 * topk_cases.h: up to the Llama 3 vocabulary with k = 256, ties, NaN, infinities, signed zeros,
 * penalty lists with repeats and ids outside the row. Outputs poisoned before each call. */
Test(cuda_kernels, topk_matches_reference) {
    if (!test_require_gpu()) return;
    struct test_rng rng;
    test_rng_seed(&rng, 0x9e9u);
    const int64_t n_max = TOPK_NS[TOPK_N_NS - 1];
    float *x = malloc((size_t)n_max * sizeof *x), *d_x, *d_vals;
    uint32_t *d_keys;
    int32_t *d_pen, *d_ids, want_i[TRIT_TOPK_MAX], got_i[TRIT_TOPK_MAX];
    float want_v[TRIT_TOPK_MAX], got_v[TRIT_TOPK_MAX];
    CUDA_OK(trit_cuda_malloc((void **)&d_x, (size_t)n_max * sizeof(float)));
    CUDA_OK(trit_cuda_malloc((void **)&d_keys, (size_t)n_max * sizeof(uint32_t)));
    CUDA_OK(trit_cuda_malloc((void **)&d_pen, TOPK_PEN_MAX * sizeof(int32_t)));
    CUDA_OK(trit_cuda_malloc((void **)&d_vals, TRIT_TOPK_MAX * sizeof(float)));
    CUDA_OK(trit_cuda_malloc((void **)&d_ids, TRIT_TOPK_MAX * sizeof(int32_t)));
    struct topk_case c;
    int it = 0, n_cases = 0;
    for (; topk_case_next(&rng, &it, x, &c); n_cases++) {
        const int64_t n = c.n;
        trit_topk_penalized(x, (int32_t)n, c.pen, c.n_pen, c.penalty, c.k, want_v, want_i);
        CUDA_OK(trit_cuda_upload(d_x, x, (size_t)n * sizeof(float)));
        if (c.n_pen > 0) CUDA_OK(trit_cuda_upload(d_pen, c.pen, (size_t)c.n_pen * sizeof(int32_t)));
        CUDA_OK(trit_cuda_memset(d_keys, POISON_BYTE, (size_t)n * sizeof(uint32_t), NULL));
        CUDA_OK(trit_cuda_memset(d_vals, POISON_BYTE, TRIT_TOPK_MAX * sizeof(float), NULL));
        CUDA_OK(trit_cuda_memset(d_ids, POISON_BYTE, TRIT_TOPK_MAX * sizeof(int32_t), NULL));
        CUDA_OK(trit_cuda_topk(d_x, n, c.n_pen > 0 ? d_pen : NULL, c.n_pen, c.penalty, c.k, d_keys, d_vals, d_ids,
                               NULL));
        CUDA_OK(trit_cuda_stream_sync(NULL));
        CUDA_OK(trit_cuda_download(got_v, d_vals, (size_t)c.k * sizeof(float)));
        CUDA_OK(trit_cuda_download(got_i, d_ids, (size_t)c.k * sizeof(int32_t)));
        for (int32_t r = 0; r < c.k; r++)
            cr_assert(got_i[r] == want_i[r] && memcmp(&got_v[r], &want_v[r], sizeof(float)) == 0,
                      "n %ld kind %d k %d n_pen %d penalty %g: rank %d: (%a, %d), reference (%a, %d)", (long)n,
                      c.kind, c.k, c.n_pen, (double)c.penalty, r, (double)got_v[r], got_i[r], (double)want_v[r],
                      want_i[r]);
    }
    cr_log_info("%d cases", n_cases);

    /* argument checks answer before touching the device */
    cr_assert_eq(trit_cuda_topk(d_x, 10, NULL, 0, 1.0f, 0, d_keys, d_vals, d_ids, NULL), TRIT_ERR_INVALID_ARG);
    cr_assert_eq(trit_cuda_topk(d_x, 10, NULL, 0, 1.0f, 11, d_keys, d_vals, d_ids, NULL), TRIT_ERR_INVALID_ARG);
    cr_assert_eq(trit_cuda_topk(d_x, 1000, NULL, 0, 1.0f, TRIT_TOPK_MAX + 1, d_keys, d_vals, d_ids, NULL),
                 TRIT_ERR_INVALID_ARG);
    cr_assert_eq(trit_cuda_topk(d_x, 10, NULL, 3, 1.3f, 5, d_keys, d_vals, d_ids, NULL), TRIT_ERR_INVALID_ARG);
    cr_assert(strstr(trit_last_error(), "NULL") != NULL, "%s", trit_last_error());
    cr_assert_eq(trit_cuda_topk(d_x, 10, d_pen, 3, NAN, 5, d_keys, d_vals, d_ids, NULL), TRIT_ERR_INVALID_ARG);
    cr_assert_eq(trit_cuda_topk(d_x, 10, d_pen, 3, INFINITY, 5, d_keys, d_vals, d_ids, NULL), TRIT_ERR_INVALID_ARG);
    cr_assert_eq(trit_cuda_topk(d_x, 10, NULL, 0, 1.0f, 5, d_keys + 1, d_vals, d_ids, NULL), TRIT_ERR_INVALID_ARG);
    cr_assert_eq(trit_cuda_topk(d_x, (int64_t)INT32_MAX + 1, NULL, 0, 1.0f, 5, d_keys, d_vals, d_ids, NULL),
                 TRIT_ERR_INVALID_ARG);
    free(x);
    trit_cuda_free(d_x), trit_cuda_free(d_keys), trit_cuda_free(d_pen), trit_cuda_free(d_vals), trit_cuda_free(d_ids);
}

/* ---- the group rule ------------------------------------------------------------------------ */

/* The group rule end to end on the device against the CPU, bit for bit: trit_cuda_act_quantize_blocks
 * against trit_quantize_row_i8_blocks (q, block sums, scales, 1 / s), then the group GEMV (m <= 8)
 * and GEMM (any m) against trit_gemm_group_ref, for groups of 64 and 128 with activations per block
 * and g64 with one scale per token; codes include +2; K ends mid-chunk and mid-block on some shapes.
 * Outputs poisoned before each kernel. */
Test(cuda_kernels, group_rule_matches_reference) {
    if (!test_require_gpu()) return;
    struct test_rng rng;
    test_rng_seed(&rng, 0x9e9u);
    const int64_t shapes[][2] = {{1, 64}, {17, 192}, {45, 1000}, {130, 640}, {2560, 6912}, {6912, 2560}};
    const int64_t ms[] = {1, 2, 8, 9, 40};
    for (size_t si = 0; si < sizeof shapes / sizeof shapes[0]; si++)
        for (int variant = 0; variant < 3; variant++)
            for (size_t mi = 0; mi < sizeof ms / sizeof ms[0]; mi++) {
                const int64_t n = shapes[si][0], k = shapes[si][1], m = ms[mi];
                const int64_t group = variant == 1 ? 128 : 64, act_block = variant == 2 ? 0 : 64;
                const int64_t k_pad = trit_cuda_act_stride(k), n_kb = (k + 63) / 64, n_ab = act_block ? n_kb : 1;
                if (n * k * m > (int64_t)300 * 1000 * 1000) continue; /* the CPU reference's time */
                struct trit_ternary w = {0};
                cr_assert_eq(trit_ternary_init_grouped(&w, n, k, group), TRIT_OK);
                for (int64_t r = 0; r < n; r++)
                    for (int64_t c = 0; c < k; c++)
                        trit_ternary_set(&w, r, c, test_rng_int(&rng, 0, 49) == 0 ? 2 : (int)test_rng_int(&rng, -1, 1));
                for (int64_t i = 0; i < n * trit_ternary_n_groups(&w); i++) w.group_scales[i] = test_rng_uniform(&rng, 1e-3f, 0.5f);
                struct trit_cuda_ternary dw;
                CUDA_OK(trit_cuda_ternary_upload(&w, &dw));
                cr_assert_eq(dw.group, group);

                float *x = malloc((size_t)(m * k) * sizeof *x), *s_ref = malloc((size_t)(m * n_ab) * sizeof *s_ref);
                for (int64_t i = 0; i < m * k; i++) x[i] = test_rng_normal(&rng) * test_rng_uniform(&rng, 0.01f, 4.0f);
                x[0] = -1000.0f; /* an outlier block */
                int8_t *q = malloc((size_t)(m * k)), *q_got = malloc((size_t)(m * k_pad)), *q_un = malloc((size_t)(m * k));
                for (int64_t i = 0; i < m; i++) trit_quantize_row_i8_blocks(x + i * k, k, act_block, q + i * k, s_ref + i * n_ab);
                float *ref = malloc((size_t)(m * n) * sizeof *ref), *got = malloc((size_t)(m * n) * sizeof *got);
                trit_gemm_group_ref(&w, q, m, s_ref, act_block, ref);

                float *d_x, *d_s, *d_inv, *d_y;
                int8_t *d_q;
                int32_t *d_bsum;
                CUDA_OK(trit_cuda_malloc((void **)&d_x, (size_t)(m * k) * sizeof(float)));
                CUDA_OK(trit_cuda_malloc((void **)&d_q, (size_t)(m * k_pad)));
                CUDA_OK(trit_cuda_malloc((void **)&d_bsum, (size_t)(m * n_kb) * sizeof(int32_t)));
                CUDA_OK(trit_cuda_malloc((void **)&d_s, (size_t)(m * n_ab) * sizeof(float)));
                CUDA_OK(trit_cuda_malloc((void **)&d_inv, (size_t)(m * n_ab) * sizeof(float)));
                CUDA_OK(trit_cuda_malloc((void **)&d_y, (size_t)(m * n) * sizeof(float)));
                CUDA_OK(trit_cuda_upload(d_x, x, (size_t)(m * k) * sizeof(float)));
                CUDA_OK(trit_cuda_memset(d_q, POISON_BYTE, (size_t)(m * k_pad), NULL));
                CUDA_OK(trit_cuda_act_quantize_blocks(d_x, m, k, act_block, d_q, d_bsum, d_s, d_inv, NULL));
                CUDA_OK(trit_cuda_stream_sync(NULL));

                int32_t *bsum = malloc((size_t)(m * n_kb) * sizeof *bsum);
                float *s_got = malloc((size_t)(m * n_ab) * sizeof *s_got), *inv = malloc((size_t)(m * n_ab) * sizeof *inv);
                CUDA_OK(trit_cuda_download(q_got, d_q, (size_t)(m * k_pad)));
                CUDA_OK(trit_cuda_download(bsum, d_bsum, (size_t)(m * n_kb) * sizeof(int32_t)));
                CUDA_OK(trit_cuda_download(s_got, d_s, (size_t)(m * n_ab) * sizeof(float)));
                CUDA_OK(trit_cuda_download(inv, d_inv, (size_t)(m * n_ab) * sizeof(float)));
                trit_al_unpack(q_got, m, k, q_un);
                cr_assert(memcmp(q_un, q, (size_t)(m * k)) == 0, "%ldx%ld m %ld act_block %ld: q", (long)n, (long)k,
                          (long)m, (long)act_block);
                for (int64_t i = 0; i < m * k_pad; i++)
                    if (trit_al_col(i % k_pad) >= k) cr_assert_eq(q_got[i], 0, "padding at %ld", (long)i);
                for (int64_t i = 0; i < m * n_ab; i++) {
                    const float want_inv = 1.0f / s_ref[i];
                    cr_assert(memcmp(&s_got[i], &s_ref[i], sizeof(float)) == 0, "scale %ld", (long)i);
                    cr_assert(memcmp(&inv[i], &want_inv, sizeof(float)) == 0, "inv %ld", (long)i);
                }
                for (int64_t i = 0; i < m; i++)
                    for (int64_t kb = 0; kb < n_kb; kb++) {
                        int32_t sum = 0;
                        for (int64_t c = 64 * kb; c < 64 * kb + 64 && c < k; c++) sum += q[i * k + c];
                        cr_assert_eq(bsum[i * n_kb + kb], sum, "block sum %ld %ld", (long)i, (long)kb);
                    }

                for (int kern = 0; kern < 2; kern++) {
                    if (kern == 0 && m > TRIT_CUDA_GEMV_MAX_M) continue;
                    CUDA_OK(trit_cuda_memset(d_y, POISON_BYTE, (size_t)(m * n) * sizeof(float), NULL));
                    if (kern == 0) CUDA_OK(trit_cuda_gemv_group_f32(&dw, d_q, d_bsum, d_inv, act_block, m, d_y, NULL));
                    else CUDA_OK(trit_cuda_gemm_group_f32(&dw, d_q, d_bsum, d_inv, act_block, m, d_y, NULL));
                    CUDA_OK(trit_cuda_stream_sync(NULL));
                    CUDA_OK(trit_cuda_download(got, d_y, (size_t)(m * n) * sizeof(float)));
                    for (int64_t i = 0; i < m * n; i++)
                        cr_assert(memcmp(&got[i], &ref[i], sizeof(float)) == 0,
                                  "%s %ldx%ld m %ld group %ld act_block %ld: token %ld row %ld: %a != %a",
                                  kern ? "gemm group" : "gemv group", (long)n, (long)k, (long)m, (long)group,
                                  (long)act_block, (long)(i / n), (long)(i % n), (double)got[i], (double)ref[i]);
                }
                /* the kernels with one scale refuse a group-scaled matrix where their answer would be wrong */
                cr_assert_eq(trit_cuda_gemv_add_i32(&dw, d_q, 1, (int32_t *)d_y, NULL), TRIT_ERR_INVALID_ARG);
                cr_assert_eq(trit_cuda_gemm_mma_f32(&dw, d_q, d_bsum, d_s, m, d_y, NULL), TRIT_ERR_INVALID_ARG);

                trit_cuda_free(d_x), trit_cuda_free(d_q), trit_cuda_free(d_bsum), trit_cuda_free(d_s);
                trit_cuda_free(d_inv), trit_cuda_free(d_y);
                trit_cuda_ternary_free(&dw);
                trit_ternary_free(&w);
                free(x), free(s_ref), free(q), free(q_got), free(q_un), free(ref), free(got), free(bsum), free(s_got),
                    free(inv);
            }
}

/* The group kernels refuse a matrix without group scales and an act_block they do not know. */
Test(cuda_kernels, group_entries_check_arguments) {
    if (!test_require_gpu()) return;
    struct test_rng rng;
    test_rng_seed(&rng, 0x9eau);
    struct prob p;
    prob_init(&p, &rng, 17, 128, 1, TRIT_SCALE_MUL);
    float *d_inv;
    CUDA_OK(trit_cuda_malloc((void **)&d_inv, 2 * sizeof(float)));
    cr_assert_eq(trit_cuda_gemv_group_f32(&p.dw, p.d_q, p.d_qsum, d_inv, 64, 1, p.d_out, NULL), TRIT_ERR_INVALID_ARG);
    cr_assert(strstr(trit_last_error(), "no group scales") != NULL, "%s", trit_last_error());
    cr_assert_eq(trit_cuda_gemm_group_f32(&p.dw, p.d_q, p.d_qsum, d_inv, 64, 1, p.d_out, NULL), TRIT_ERR_INVALID_ARG);
    cr_assert_eq(trit_cuda_act_quantize_blocks((const float *)p.d_out, 1, 128, 32, p.d_q, p.d_qsum, d_inv, d_inv, NULL),
                 TRIT_ERR_INVALID_ARG);
    trit_cuda_free(d_inv);
    prob_free(&p);
}

#else /* no CUDA build: the gate still reports the skip */

Test(cuda_kernels, needs_cuda_build) {
    if (!test_require_gpu()) return;
    cr_assert_fail("a GPU was found but trit was built without CUDA");
}

#endif
