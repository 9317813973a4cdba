// labels: gpu
/* test_cuda_backend_ops.c: every non-ternary op of the CUDA backend (cuda/trit_cuda_ops.h) against
 * the CPU computation it replaces (host/cpu/ops.c, cpu.h, quant.h). Bit for bit where the GPU does
 * the same IEEE operations in the same order (embedding, residual add, RoPE, the fp16 K/V rows, the
 * quantization of given values); within a tolerance derived next to each constant where an order
 * of summation or an expf differs (RMSNorm, SiLU, attention, the head). Outputs are poisoned before
 * each op and checked everywhere, including the act layout's padding. Skips without a GPU (fails
 * with TRIT_REQUIRE_GPU=1).
 *
 *   ctest --test-dir build -R test_cuda_backend_ops --output-on-failure */
#include <criterion/criterion.h>
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "support.h"

#ifdef TRIT_HAVE_CUDA

#include "cpu/cpu.h"
#include "cpu/ops.h"
#include "ternary_layout.h"
#include "trit_cuda.h"
#include "trit_cuda_ops.h"

#define CUDA_OK(expr)                                                                              \
    do {                                                                                           \
        enum trit_status st_ = (expr);                                                             \
        cr_assert_eq(st_, TRIT_OK, "%s: %s", #expr, trit_last_error());                           \
    } while (0)

#define U32 ((double)FLT_EPSILON / 2) /* unit roundoff of fp32, 2^-24 */

/* Quantization ties: the codes of a row are rint(v), v = y * s = 127 y / absmax(y), whatever the
 * scale of y (the sum of squares' order cancels out of v). Between the CPU's and the GPU's v lie the
 * roundings of x * inv, w * ., 127 / absmax and y * s on each side (<= 8 x 2u relative), and for
 * SiLU the 16u of the activation itself on the element and on the absmax (2 x 16u): < 64u of
 * |v| <= 128. Where the CPU's v is closer than that to a half-integer the codes may differ by one. */
#define QUANT_TIE (64.0 * 128.0 * U32)

/* RMSNorm outputs: the sum of squares of n terms in another order differs by <= n u relative on
 * each side, its square root halves that, and 1 / . , x * inv and w * . add 3 u: (n + 6) u each,
 * twice that between the two. */
static double norm_rel_tol(int64_t n) { return 2.0 * ((double)n + 6.0) * U32; }

static void *dev_alloc(size_t n) {
    void *p = NULL;
    CUDA_OK(trit_cuda_malloc(&p, n));
    return p;
}
static void *dev_from(const void *src, size_t n) {
    void *p = dev_alloc(n);
    CUDA_OK(trit_cuda_upload(p, src, n));
    return p;
}
static void *host_from(const void *d_src, size_t n) {
    CUDA_OK(trit_cuda_stream_sync(NULL));
    void *p = malloc(n);
    CUDA_OK(trit_cuda_download(p, d_src, n));
    return p;
}
static int32_t *dev_i32(int32_t v) { return dev_from(&v, sizeof v); }

static void fill_normal(struct test_rng *rng, float *x, int64_t n, float sd) {
    for (int64_t i = 0; i < n; i++) x[i] = test_rng_normal(rng) * sd;
}

/* ---- CPU references ------------------------------------------------------------------------------ */

/* One token's row of accumulators (n) through trit_epilogue_ref with act scale *s and weight scale ws. */
static void epilogue_row_ref(const int32_t *acc, int64_t n, const float *s, struct trit_cuda_wscale ws, float *y) {
    trit_epilogue_ref(acc, 1, n, s, ws.scale, ws.div ? TRIT_SCALE_DIV : TRIT_SCALE_MUL, y);
}

/* The CPU side of the residual ops for one token's row x (n): x += epilogue(acc) (bit for bit what
 * the GPU adds; skipped when acc is NULL), then y = rmsnorm(x) * w. add: n floats of scratch. */
static void residual_norm_row_ref(float *x, const int32_t *acc, const float *s, struct trit_cuda_wscale ws,
                                  const float *w, int64_t n, float *add, float *y) {
    if (acc) {
        epilogue_row_ref(acc, n, s, ws, add);
        for (int64_t c = 0; c < n; c++) x[c] += add[c];
    }
    trit_rmsnorm_f32(x, w, n, 1e-5f, y);
}

/* ---- quantized rows: codes within ties, qsum exact, padding zero, scale within tolerance ------- */

/* q_dev: the GPU's (m, k_pad) act layout; y_cpu: the CPU's values before quantization (m, n). */
static void check_quant(const int8_t *q_dev, const int32_t *qsum_dev, const float *s_dev, const float *y_cpu, int64_t m,
                        int64_t n, double s_rel_tol, const char *what) {
    const int64_t k_pad = trit_cuda_act_stride(n);
    int8_t *q_cpu = malloc((size_t)n), *q_gpu = malloc((size_t)n);
    for (int64_t t = 0; t < m; t++) {
        const float s_cpu = trit_quantize_row_i8(y_cpu + t * n, n, q_cpu);
        cr_assert(fabs((double)s_dev[t] - s_cpu) <= s_rel_tol * s_cpu, "%s token %ld: scale %a vs %a", what, (long)t,
                  (double)s_dev[t], (double)s_cpu);
        const int8_t *row = q_dev + t * k_pad;
        trit_al_unpack(row, 1, n, q_gpu);
        int32_t sum = 0;
        for (int64_t c = 0; c < n; c++) {
            sum += q_gpu[c];
            if (q_gpu[c] == q_cpu[c]) continue;
            const double v = (double)y_cpu[t * n + c] * s_cpu, frac = fabs(v - floor(v) - 0.5);
            cr_assert(abs(q_gpu[c] - q_cpu[c]) == 1 && frac <= QUANT_TIE,
                      "%s token %ld col %ld: code %d vs %d (v = %.9g, %.3g from a tie)", what, (long)t, (long)c,
                      q_gpu[c], q_cpu[c], v, frac);
        }
        cr_assert_eq(sum, qsum_dev[t], "%s token %ld: qsum %d, codes sum to %d", what, (long)t, qsum_dev[t], sum);
        for (int64_t p = 0; p < k_pad; p++)
            if (trit_al_col(p) >= n) cr_assert_eq(row[p], 0, "%s token %ld: padding byte %ld", what, (long)t, (long)p);
    }
    free(q_cpu), free(q_gpu);
}

/* ---- embedding ----------------------------------------------------------------------------------- */

Test(cuda_backend_ops, embed_is_exact_and_marks_bad_ids) {
    if (!test_require_gpu()) return;
    struct test_rng rng;
    test_rng_seed(&rng, 0xe1u);
    const int64_t V = 300, D = 100;
    for (int bf16 = 0; bf16 < 2; bf16++) {
        uint16_t *tab = malloc((size_t)(V * D) * 2);
        for (int64_t i = 0; i < V * D; i++) {
            const float x = test_rng_normal(&rng);
            tab[i] = bf16 ? trit_fp32_to_bf16(x) : trit_fp32_to_fp16(x);
        }
        const struct trit_dense dense = {bf16 ? TRIT_DTYPE_BF16 : TRIT_DTYPE_F16, V, D, tab, NULL};
        const int32_t tokens[] = {0, 299, 17, -1, 300};
        const int64_t m = 5;
        void *d_tab = dev_from(tab, (size_t)(V * D) * 2);
        int32_t *d_tok = dev_from(tokens, sizeof tokens);
        float *d_x = dev_alloc((size_t)(m * D) * 4);
        CUDA_OK(trit_cuda_memset(d_x, 0xA5, (size_t)(m * D) * 4, NULL));
        CUDA_OK(trit_cuda_embed(d_tab, bf16, V, D, d_tok, m, d_x, NULL));
        float *x = host_from(d_x, (size_t)(m * D) * 4), want[100];
        for (int64_t t = 0; t < 3; t++) {
            trit_dense_row_f32(&dense, tokens[t], want);
            cr_assert(memcmp(x + t * D, want, sizeof want) == 0, "bf16 %d token %d", bf16, tokens[t]);
        }
        for (int64_t t = 3; t < m; t++)
            for (int64_t c = 0; c < D; c++) cr_assert(isnan(x[t * D + c]), "bad id %d gives NaN", tokens[t]);
        free(tab), free(x);
        trit_cuda_free(d_tab), trit_cuda_free(d_tok), trit_cuda_free(d_x);
    }
}

/* ---- residual + RMSNorm + quantization --------------------------------------------------------------- */

struct norm_case {
    int64_t m, n;
};
static const struct norm_case NORM_CASES[] = {{1, 96}, {3, 100}, {2, 2560}, {33, 160}, {1, 6913}, {5, 8192},
                                              {1, 28672}, {2, TRIT_CUDA_ROW_MAX}};
#define N_NORM_CASES (sizeof NORM_CASES / sizeof NORM_CASES[0])

Test(cuda_backend_ops, residual_norm_quant_against_cpu) {
    if (!test_require_gpu()) return;
    struct test_rng rng;
    test_rng_seed(&rng, 0xe2u);
    for (size_t ci = 0; ci < N_NORM_CASES; ci++)
        for (int with_acc = 0; with_acc < 2; with_acc++) {
            const int64_t m = NORM_CASES[ci].m, n = NORM_CASES[ci].n, k_pad = trit_cuda_act_stride(n);
            const int64_t acc_stride = n + 3 * with_acc; /* a wider accumulator row, as after q|k|v */
            float *x = malloc((size_t)(m * n) * 4), *w = malloc((size_t)n * 4), *s_in = malloc((size_t)m * 4);
            int32_t *acc = malloc((size_t)(m * acc_stride) * 4);
            fill_normal(&rng, x, m * n, 2.0f);
            for (int64_t i = 0; i < n; i++) w[i] = test_rng_uniform(&rng, 0.5f, 1.5f);
            for (int64_t i = 0; i < m * acc_stride; i++) acc[i] = (int32_t)test_rng_int(&rng, -20000, 20000);
            for (int64_t t = 0; t < m; t++) s_in[t] = test_rng_uniform(&rng, 1.0f, 100.0f);
            const struct trit_cuda_wscale ws = {test_rng_uniform(&rng, 0.01f, 2.0f), (int)(ci % 2)};

            float *d_x = dev_from(x, (size_t)(m * n) * 4), *d_w = dev_from(w, (size_t)n * 4);
            float *d_s = dev_from(s_in, (size_t)m * 4);
            int32_t *d_acc = dev_from(acc, (size_t)(m * acc_stride) * 4), *d_qsum = dev_alloc((size_t)m * 4);
            int8_t *d_q = dev_alloc((size_t)(m * k_pad));
            CUDA_OK(trit_cuda_memset(d_q, 0xA5, (size_t)(m * k_pad), NULL));
            CUDA_OK(trit_cuda_residual_norm_quant(d_x, m, n, with_acc ? d_acc : NULL, acc_stride, ws, d_w, 1e-5f, d_q,
                                                  d_qsum, d_s, NULL));
            float *x_gpu = host_from(d_x, (size_t)(m * n) * 4), *s_gpu = host_from(d_s, (size_t)m * 4);
            int8_t *q_gpu = host_from(d_q, (size_t)(m * k_pad));
            int32_t *qsum_gpu = host_from(d_qsum, (size_t)m * 4);

            /* CPU: x += epilogue(acc) (bit for bit), y = rmsnorm(x) * w */
            float *y = malloc((size_t)(m * n) * 4), *add = malloc((size_t)n * 4);
            for (int64_t t = 0; t < m; t++)
                residual_norm_row_ref(x + t * n, with_acc ? acc + t * acc_stride : NULL, &s_in[t], ws, w, n, add,
                                      y + t * n);
            cr_assert(memcmp(x_gpu, x, (size_t)(m * n) * 4) == 0, "residual add m %ld n %ld", (long)m, (long)n);
            check_quant(q_gpu, qsum_gpu, s_gpu, y, m, n, norm_rel_tol(n), "residual_norm_quant");
            free(x), free(w), free(s_in), free(acc), free(y), free(add), free(x_gpu), free(s_gpu), free(q_gpu),
                free(qsum_gpu);
            trit_cuda_free(d_x), trit_cuda_free(d_w), trit_cuda_free(d_s), trit_cuda_free(d_acc),
                trit_cuda_free(d_qsum), trit_cuda_free(d_q);
        }
}

Test(cuda_backend_ops, row_ops_refuse_bad_shapes) {
    if (!test_require_gpu()) return;
    const int64_t n = TRIT_CUDA_ROW_MAX + 1;
    float *d_x = dev_alloc((size_t)n * 4), *d_s = dev_alloc(4);
    int8_t *d_q = dev_alloc((size_t)trit_cuda_act_stride(n));
    int32_t *d_qsum = dev_alloc(4);
    const struct trit_cuda_wscale ws = {1.0f, 0};
    cr_assert_eq(trit_cuda_residual_norm_quant(d_x, 1, n, NULL, 0, ws, NULL, 1e-5f, d_q, d_qsum, d_s, NULL),
                 TRIT_ERR_UNSUPPORTED);
    cr_assert_eq(trit_cuda_residual_norm_quant(d_x, 1, 8, NULL, 0, ws, NULL, 1e-5f, d_q + 1, d_qsum, d_s, NULL),
                 TRIT_ERR_INVALID_ARG); /* q not 16-byte aligned */
    cr_assert_eq(trit_cuda_ffn_act_quant((const int32_t *)d_x, 1, 8, ws, ws, 2, NULL, 1e-5f, d_x, d_q, d_qsum, d_s, NULL),
                 TRIT_ERR_INVALID_ARG); /* activation 2 */
    trit_cuda_free(d_x), trit_cuda_free(d_s), trit_cuda_free(d_q), trit_cuda_free(d_qsum);
}

Test(cuda_backend_ops, residual_norm_out_fp32_and_16_bit_copies) {
    if (!test_require_gpu()) return;
    struct test_rng rng;
    test_rng_seed(&rng, 0xe3u);
    for (size_t ci = 0; ci < N_NORM_CASES; ci++)
        for (int bf16 = 0; bf16 < 2; bf16++) {
            const int64_t m = NORM_CASES[ci].m, n = NORM_CASES[ci].n;
            float *x = malloc((size_t)(m * n) * 4), *w = malloc((size_t)n * 4), s_in[64];
            int32_t *acc = malloc((size_t)(m * n) * 4);
            fill_normal(&rng, x, m * n, 1.0f);
            for (int64_t i = 0; i < n; i++) w[i] = test_rng_uniform(&rng, 0.5f, 1.5f);
            for (int64_t i = 0; i < m * n; i++) acc[i] = (int32_t)test_rng_int(&rng, -3000, 3000);
            for (int64_t t = 0; t < m; t++) s_in[t] = test_rng_uniform(&rng, 1.0f, 100.0f);
            const struct trit_cuda_wscale ws = {0.3f, bf16};
            float *d_x = dev_from(x, (size_t)(m * n) * 4), *d_w = dev_from(w, (size_t)n * 4);
            float *d_s = dev_from(s_in, (size_t)m * 4), *d_y = dev_alloc((size_t)(m * n) * 4);
            int32_t *d_acc = dev_from(acc, (size_t)(m * n) * 4);
            uint16_t *d_yh = dev_alloc((size_t)(m * n) * 2);
            CUDA_OK(trit_cuda_memset(d_y, 0xA5, (size_t)(m * n) * 4, NULL));
            CUDA_OK(trit_cuda_residual_norm_out(d_x, m, n, d_acc, n, ws, d_s, d_w, 1e-5f, d_y, d_yh, bf16, NULL));
            float *y = host_from(d_y, (size_t)(m * n) * 4);
            uint16_t *yh = host_from(d_yh, (size_t)(m * n) * 2);
            float *want = malloc((size_t)n * 4), *add = malloc((size_t)n * 4);
            const double tol = norm_rel_tol(n);
            for (int64_t t = 0; t < m; t++) {
                residual_norm_row_ref(x + t * n, acc + t * n, &s_in[t], ws, w, n, add, want);
                for (int64_t c = 0; c < n; c++) {
                    const float g = y[t * n + c];
                    cr_assert(fabs((double)g - want[c]) <= tol * fabs((double)want[c]) + 1e-30, "y[%ld][%ld] %g vs %g",
                              (long)t, (long)c, (double)g, (double)want[c]);
                    const uint16_t h = bf16 ? trit_fp32_to_bf16(g) : trit_fp32_to_fp16(g);
                    cr_assert_eq(yh[t * n + c], h, "16-bit copy [%ld][%ld]", (long)t, (long)c);
                }
            }
            free(x), free(w), free(acc), free(y), free(yh), free(want), free(add);
            trit_cuda_free(d_x), trit_cuda_free(d_w), trit_cuda_free(d_s), trit_cuda_free(d_y), trit_cuda_free(d_acc),
                trit_cuda_free(d_yh);
        }
}

/* ---- gated FFN ---------------------------------------------------------------------------------------- */

Test(cuda_backend_ops, ffn_act_quant_against_cpu) {
    if (!test_require_gpu()) return;
    struct test_rng rng;
    test_rng_seed(&rng, 0xe4u);
    const struct norm_case cases[] = {{1, 160}, {4, 6912}, {17, 1000}, {2, 14336}};
    for (size_t ci = 0; ci < sizeof cases / sizeof cases[0]; ci++)
        for (int act = 0; act < 2; act++)
            for (int sub = 0; sub < 2; sub++) {
                const int64_t m = cases[ci].m, F = cases[ci].n, k_pad = trit_cuda_act_stride(F);
                int32_t *acc = malloc((size_t)(m * 2 * F) * 4);
                float *w = malloc((size_t)F * 4), s_in[32];
                for (int64_t i = 0; i < m * 2 * F; i++) acc[i] = (int32_t)test_rng_int(&rng, -20000, 20000);
                for (int64_t i = 0; i < F; i++) w[i] = test_rng_uniform(&rng, 0.5f, 1.5f);
                for (int64_t t = 0; t < m; t++) s_in[t] = test_rng_uniform(&rng, 100.0f, 3000.0f);
                /* both scale kinds; gate and up of order 1 (SiLU then spans its curved part) */
                const struct trit_cuda_wscale g = act ? (struct trit_cuda_wscale){50.0f, 1} : (struct trit_cuda_wscale){0.02f, 0};
                const struct trit_cuda_wscale u = act ? (struct trit_cuda_wscale){0.03f, 0} : (struct trit_cuda_wscale){30.0f, 1};
                int32_t *d_acc = dev_from(acc, (size_t)(m * 2 * F) * 4), *d_qsum = dev_alloc((size_t)m * 4);
                float *d_w = dev_from(w, (size_t)F * 4), *d_s = dev_from(s_in, (size_t)m * 4);
                float *d_h = dev_alloc((size_t)(m * F) * 4);
                int8_t *d_q = dev_alloc((size_t)(m * k_pad));
                CUDA_OK(trit_cuda_memset(d_q, 0xA5, (size_t)(m * k_pad), NULL));
                CUDA_OK(trit_cuda_ffn_act_quant(d_acc, m, F, g, u, act, sub ? d_w : NULL, 1e-5f, d_h, d_q, d_qsum, d_s,
                                                NULL));
                float *h_gpu = host_from(d_h, (size_t)(m * F) * 4), *s_gpu = host_from(d_s, (size_t)m * 4);
                int8_t *q_gpu = host_from(d_q, (size_t)(m * k_pad));
                int32_t *qsum_gpu = host_from(d_qsum, (size_t)m * 4);
                float *gate = malloc((size_t)F * 4), *up = malloc((size_t)F * 4), *y = malloc((size_t)(m * F) * 4);
                /* relu^2: the same IEEE multiplies, exact agreement. SiLU: CUDA's expf is within 2 ulp,
                 * glibc's within 1, so e differs by <= 3 ulp = 6u; 1 + e, g / . and . * u each round
                 * different inputs (2u apiece): <= 12u, 16u with margin */
                const double h_tol = act == 0 ? 0.0 : 16.0 * U32;
                for (int64_t t = 0; t < m; t++) {
                    epilogue_row_ref(acc + t * 2 * F, F, &s_in[t], g, gate);
                    epilogue_row_ref(acc + t * 2 * F + F, F, &s_in[t], u, up);
                    trit_gated_act_f32(gate, up, F, (enum trit_act)act);
                    for (int64_t c = 0; c < F; c++)
                        cr_assert(fabs((double)h_gpu[t * F + c] - gate[c]) <= h_tol * fabs((double)gate[c]),
                                  "act %d h[%ld][%ld] %a vs %a", act, (long)t, (long)c, (double)h_gpu[t * F + c],
                                  (double)gate[c]);
                    if (sub) trit_rmsnorm_f32(gate, w, F, 1e-5f, gate);
                    memcpy(y + t * F, gate, (size_t)F * 4);
                }
                check_quant(q_gpu, qsum_gpu, s_gpu, y, m, F, norm_rel_tol(F) + h_tol, act ? "ffn silu" : "ffn relu2");
                free(acc), free(w), free(h_gpu), free(s_gpu), free(q_gpu), free(qsum_gpu), free(gate), free(up), free(y);
                trit_cuda_free(d_acc), trit_cuda_free(d_qsum), trit_cuda_free(d_w), trit_cuda_free(d_s),
                    trit_cuda_free(d_h), trit_cuda_free(d_q);
            }
}

/* ---- RoPE + KV cache ---------------------------------------------------------------------------------- */

static const struct trit_cuda_attn_shape ATT_SHAPES[] = {
    {6, 2, 16, 300}, {4, 4, 24, 300}, {20, 5, 128, 1100}, {2, 1, 256, 300}, {32, 8, 128, 300}};

Test(cuda_backend_ops, rope_kv_bit_for_bit) {
    if (!test_require_gpu()) return;
    struct test_rng rng;
    test_rng_seed(&rng, 0xe5u);
    for (size_t ci = 0; ci < sizeof ATT_SHAPES / sizeof ATT_SHAPES[0]; ci++)
        for (int style = 0; style < 2; style++) {
            const struct trit_cuda_attn_shape sh = ATT_SHAPES[ci];
            const int64_t hd = sh.head_dim, half = hd / 2, qd = sh.n_heads * hd, kvd = sh.n_kv_heads * hd;
            const int64_t n_tot = qd + 2 * kvd, C = sh.n_ctx, m = style ? 1 : 7, pos0 = test_rng_int(&rng, 0, C - m);
            int32_t *acc = malloc((size_t)(m * n_tot) * 4);
            float s_in[8];
            for (int64_t i = 0; i < m * n_tot; i++) acc[i] = (int32_t)test_rng_int(&rng, -5000, 5000);
            for (int64_t t = 0; t < m; t++) s_in[t] = test_rng_uniform(&rng, 10.0f, 300.0f);
            const struct trit_cuda_wscale ws[3] = {{0.05f, 0}, {20.0f, 1}, {0.07f, 0}};
            float *cs = malloc((size_t)(C * half) * 4), *sn = malloc((size_t)(C * half) * 4);
            trit_rope_table(C, hd, 500000.0f, cs, sn);
            int32_t *d_acc = dev_from(acc, (size_t)(m * n_tot) * 4), *d_pos0 = dev_i32((int32_t)pos0);
            float *d_s = dev_from(s_in, (size_t)m * 4), *d_cos = dev_from(cs, (size_t)(C * half) * 4);
            float *d_sin = dev_from(sn, (size_t)(C * half) * 4), *d_q = dev_alloc((size_t)(m * qd) * 4);
            void *d_k = dev_alloc((size_t)(C * kvd) * 2), *d_v = dev_alloc((size_t)(C * kvd) * 2);
            CUDA_OK(trit_cuda_memset(d_q, 0xA5, (size_t)(m * qd) * 4, NULL));
            CUDA_OK(trit_cuda_memset(d_k, 0xA5, (size_t)(C * kvd) * 2, NULL));
            CUDA_OK(trit_cuda_memset(d_v, 0xA5, (size_t)(C * kvd) * 2, NULL));
            CUDA_OK(trit_cuda_rope_kv(d_acc, m, d_s, ws, sh, style, d_cos, d_sin, d_pos0, d_q, d_k, d_v, NULL));
            float *q = host_from(d_q, (size_t)(m * qd) * 4);
            uint16_t *kc = host_from(d_k, (size_t)(C * kvd) * 2), *vc = host_from(d_v, (size_t)(C * kvd) * 2);
            float *y = malloc((size_t)n_tot * 4);
            for (int64_t t = 0; t < m; t++) {
                const int64_t pos = pos0 + t;
                trit_epilogue_ref(acc + t * n_tot, 1, qd, &s_in[t], ws[0].scale, TRIT_SCALE_MUL, y);
                trit_epilogue_ref(acc + t * n_tot + qd, 1, kvd, &s_in[t], ws[1].scale, TRIT_SCALE_DIV, y + qd);
                trit_epilogue_ref(acc + t * n_tot + qd + kvd, 1, kvd, &s_in[t], ws[2].scale, TRIT_SCALE_MUL,
                                  y + qd + kvd);
                for (int64_t h = 0; h < sh.n_heads + sh.n_kv_heads; h++)
                    trit_rope_f32(y + h * hd, hd, cs + pos * half, sn + pos * half, (enum trit_rope_style)style);
                cr_assert(memcmp(q + t * qd, y, (size_t)qd * 4) == 0, "q of token %ld, shape %zu style %d", (long)t, ci,
                          style);
                for (int64_t e = 0; e < kvd; e++) {
                    cr_assert_eq(kc[pos * kvd + e], trit_fp32_to_fp16(y[qd + e]), "K pos %ld [%ld]", (long)pos, (long)e);
                    cr_assert_eq(vc[pos * kvd + e], trit_fp32_to_fp16(y[qd + kvd + e]), "V pos %ld [%ld]", (long)pos,
                                 (long)e);
                }
            }
            for (int64_t p = 0; p < C; p++)
                if (p < pos0 || p >= pos0 + m)
                    for (int64_t e = 0; e < kvd; e++)
                        cr_assert(kc[p * kvd + e] == 0xA5A5 && vc[p * kvd + e] == 0xA5A5, "row %ld was written", (long)p);
            free(acc), free(cs), free(sn), free(q), free(kc), free(vc), free(y);
            trit_cuda_free(d_acc), trit_cuda_free(d_pos0), trit_cuda_free(d_s), trit_cuda_free(d_cos),
                trit_cuda_free(d_sin), trit_cuda_free(d_q), trit_cuda_free(d_k), trit_cuda_free(d_v);
        }
}

/* ---- attention ---------------------------------------------------------------------------------------- */

/* The bound on |o_gpu - o_ref| / max|v| for a softmax-weighted average over n_pos positions: the
 * weights' rounding (expf 2 ulp, <= n_tiles rescales and a merge, n_pos-term sums: (2 n_pos + 8
 * n_tiles + 32) eps, as test_cuda_ops_hd.c) plus what the scores' own rounding does to them:
 * a score summed over hd products in another order differs by <= 2 hd u sum|q k| scale, and p moves
 * by twice that relative. */
static double att_tol(int64_t n_pos, int64_t n_tiles, double ds_max) {
    return (2.0 * (double)n_pos + 8.0 * (double)n_tiles + 32.0) * FLT_EPSILON + 2.0 * ds_max;
}

struct att_data {
    int64_t qd, kvd;
    float *q;     /* (m, Hq) */
    uint16_t *kh; /* (C, Hkv) fp16 */
    uint16_t *vh;
    float *k, *v; /* their fp32 values */
    float vmax;
};

static void att_data_make(struct test_rng *rng, const struct trit_cuda_attn_shape *sh, int64_t m, int64_t n_pos,
                          float q_sd, struct att_data *a) {
    a->qd = sh->n_heads * sh->head_dim, a->kvd = sh->n_kv_heads * sh->head_dim;
    const int64_t C = sh->n_ctx;
    a->q = malloc((size_t)(m * a->qd) * 4);
    a->kh = calloc((size_t)(C * a->kvd), 2), a->vh = calloc((size_t)(C * a->kvd), 2);
    a->k = calloc((size_t)(C * a->kvd), 4), a->v = calloc((size_t)(C * a->kvd), 4);
    fill_normal(rng, a->q, m * a->qd, q_sd);
    a->vmax = 0.0f;
    for (int64_t i = 0; i < n_pos * a->kvd; i++) {
        a->kh[i] = trit_fp32_to_fp16(test_rng_normal(rng));
        a->vh[i] = trit_fp32_to_fp16(test_rng_normal(rng));
        a->k[i] = trit_fp16_to_fp32(a->kh[i]), a->v[i] = trit_fp16_to_fp32(a->vh[i]);
        a->vmax = fmaxf(a->vmax, fabsf(a->v[i]));
    }
    for (int64_t i = n_pos * a->kvd; i < C * a->kvd; i++) a->kh[i] = a->vh[i] = 0x7E00; /* NaN: must stay unread */
}

static void att_data_free(struct att_data *a) { free(a->q), free(a->kh), free(a->vh), free(a->k), free(a->v); }

/* max over positions and heads of the score rounding bound 2 hd u sum|q k| / sqrt(hd), for token t */
static double score_err(const struct trit_cuda_attn_shape *sh, const struct att_data *a, const float *q, int64_t n_pos) {
    const int64_t hd = sh->head_dim, group = sh->n_heads / sh->n_kv_heads;
    double worst = 0.0;
    for (int64_t h = 0; h < sh->n_heads; h++)
        for (int64_t p = 0; p < n_pos; p++) {
            double s = 0.0;
            for (int64_t d = 0; d < hd; d++) s += fabs((double)q[h * hd + d] * a->k[p * a->kvd + (h / group) * hd + d]);
            worst = fmax(worst, 2.0 * (double)hd * U32 * s / sqrt((double)hd));
        }
    return worst;
}

/* Checks att (m, Hq) from the device against trit_attention_f32_ref for each token, then quantizes
 * it with trit_cuda_residual_norm_quant (no residual, no norm): the codes must be exactly the CPU
 * quantization of the GPU's values. */
static void check_attention(const struct trit_cuda_attn_shape *sh, const struct att_data *a, float *d_att, int64_t m,
                            int64_t pos0, int n_parts, const char *what) {
    const int64_t k_pad = trit_cuda_act_stride(a->qd);
    float *att = host_from(d_att, (size_t)(m * a->qd) * 4), *d_s = dev_alloc((size_t)m * 4);
    int8_t *d_q8 = dev_alloc((size_t)(m * k_pad));
    int32_t *d_qsum = dev_alloc((size_t)m * 4);
    CUDA_OK(trit_cuda_memset(d_q8, 0xA5, (size_t)(m * k_pad), NULL));
    CUDA_OK(trit_cuda_residual_norm_quant(d_att, m, a->qd, NULL, 0, (struct trit_cuda_wscale){1.0f, 0}, NULL, 1e-5f,
                                          d_q8, d_qsum, d_s, NULL));
    float *s = host_from(d_s, (size_t)m * 4), *att_after = host_from(d_att, (size_t)(m * a->qd) * 4);
    int8_t *q8 = host_from(d_q8, (size_t)(m * k_pad)), *qa = malloc((size_t)(m * k_pad)), *qrow = malloc((size_t)a->qd);
    int32_t *qsum = host_from(d_qsum, (size_t)m * 4);
    float *want = malloc((size_t)a->qd * 4), *scores = malloc((size_t)sh->n_ctx * 4);
    cr_assert(memcmp(att, att_after, (size_t)(m * a->qd) * 4) == 0, "%s: quantizing without a residual wrote x", what);
    for (int64_t t = 0; t < m; t++) {
        const int64_t n_pos = pos0 + t + 1;
        trit_attention_f32_ref(a->q + t * a->qd, a->k, a->v, n_pos, sh->n_heads, sh->n_kv_heads, sh->head_dim, a->kvd,
                               scores, want, 0, sh->n_heads);
        const double tol = att_tol(n_pos, n_pos / 32 + n_parts + 1, score_err(sh, a, a->q + t * a->qd, n_pos)) * a->vmax;
        for (int64_t i = 0; i < a->qd; i++)
            cr_assert(fabs((double)att[t * a->qd + i] - want[i]) <= tol, "%s token %ld (n_pos %ld) [%ld]: %g vs %g (tol %g)",
                      what, (long)t, (long)n_pos, (long)i, (double)att[t * a->qd + i], (double)want[i], tol);
        const float s_cpu = trit_quantize_row_i8(att + t * a->qd, a->qd, qrow);
        cr_assert(memcmp(&s_cpu, &s[t], 4) == 0, "%s: the scale of token %ld", what, (long)t);
        trit_al_pack(qrow, 1, a->qd, qa + t * k_pad);
        cr_assert(memcmp(qa + t * k_pad, q8 + t * k_pad, (size_t)k_pad) == 0, "%s: codes of token %ld", what, (long)t);
        int32_t sum = 0;
        for (int64_t c = 0; c < a->qd; c++) sum += qrow[c];
        cr_assert_eq(sum, qsum[t]);
    }
    free(att), free(att_after), free(s), free(q8), free(qa), free(qrow), free(qsum), free(want), free(scores);
    trit_cuda_free(d_s), trit_cuda_free(d_q8), trit_cuda_free(d_qsum);
}

Test(cuda_backend_ops, attention_decode_split_k_against_cpu) {
    if (!test_require_gpu()) return;
    struct test_rng rng;
    test_rng_seed(&rng, 0xe6u);
    const int64_t lens[] = {1, 2, 64, 65, 300, 1100};
    const int splits[] = {1, 7, 26, 64};
    for (size_t ci = 0; ci < sizeof ATT_SHAPES / sizeof ATT_SHAPES[0]; ci++)
        for (size_t li = 0; li < sizeof lens / sizeof lens[0]; li++) {
            const struct trit_cuda_attn_shape sh = ATT_SHAPES[ci];
            const int64_t n_pos = lens[li];
            if (n_pos > sh.n_ctx) continue;
            struct att_data a;
            att_data_make(&rng, &sh, 1, n_pos, li % 2 ? 3.0f : 1.0f, &a);
            float *d_q = dev_from(a.q, (size_t)a.qd * 4), *d_att = dev_alloc((size_t)a.qd * 4);
            void *d_k = dev_from(a.kh, (size_t)(sh.n_ctx * a.kvd) * 2), *d_v = dev_from(a.vh, (size_t)(sh.n_ctx * a.kvd) * 2);
            int32_t *d_pos0 = dev_i32((int32_t)(n_pos - 1));
            uint32_t *d_cnt = dev_alloc((size_t)sh.n_kv_heads * 4);
            float *d_po = dev_alloc((size_t)(64 * a.qd) * 4), *d_pml = dev_alloc((size_t)(64 * sh.n_heads * 2) * 4);
            CUDA_OK(trit_cuda_memset(d_cnt, 0, (size_t)sh.n_kv_heads * 4, NULL));
            for (size_t si = 0; si < sizeof splits / sizeof splits[0]; si++) {
                CUDA_OK(trit_cuda_memset(d_po, 0xFF, (size_t)(64 * a.qd) * 4, NULL)); /* NaN: empty splits unread */
                CUDA_OK(trit_cuda_memset(d_att, 0xA5, (size_t)a.qd * 4, NULL));
                CUDA_OK(trit_cuda_attn_decode(d_q, d_k, d_v, sh, d_pos0, splits[si], d_po, d_pml, d_cnt, d_att, NULL));
                check_attention(&sh, &a, d_att, 1, n_pos - 1, splits[si], "decode");
                uint32_t *cnt = host_from(d_cnt, (size_t)sh.n_kv_heads * 4);
                for (int64_t g = 0; g < sh.n_kv_heads; g++) cr_assert_eq(cnt[g], 0u, "merge ticket %ld left at %u", (long)g, cnt[g]);
                free(cnt);
            }
            att_data_free(&a);
            trit_cuda_free(d_q), trit_cuda_free(d_att), trit_cuda_free(d_k), trit_cuda_free(d_v),
                trit_cuda_free(d_pos0), trit_cuda_free(d_cnt), trit_cuda_free(d_po), trit_cuda_free(d_pml);
        }
}

Test(cuda_backend_ops, attention_prefill_causal_against_cpu) {
    if (!test_require_gpu()) return;
    struct test_rng rng;
    test_rng_seed(&rng, 0xe7u);
    const int64_t ms[] = {1, 2, 37, 100};
    const int64_t pos0s[] = {0, 45};
    for (size_t ci = 0; ci < sizeof ATT_SHAPES / sizeof ATT_SHAPES[0]; ci++)
        for (size_t mi = 0; mi < sizeof ms / sizeof ms[0]; mi++)
            for (size_t pi = 0; pi < 2; pi++) {
                const struct trit_cuda_attn_shape sh = ATT_SHAPES[ci];
                const int64_t m = ms[mi], pos0 = pos0s[pi];
                struct att_data a;
                att_data_make(&rng, &sh, m, pos0 + m, 1.0f + (float)pi, &a);
                float *d_q = dev_from(a.q, (size_t)(m * a.qd) * 4), *d_att = dev_alloc((size_t)(m * a.qd) * 4);
                void *d_k = dev_from(a.kh, (size_t)(sh.n_ctx * a.kvd) * 2),
                     *d_v = dev_from(a.vh, (size_t)(sh.n_ctx * a.kvd) * 2);
                int32_t *d_pos0 = dev_i32((int32_t)pos0);
                CUDA_OK(trit_cuda_memset(d_att, 0xA5, (size_t)(m * a.qd) * 4, NULL));
                CUDA_OK(trit_cuda_attn_prefill(d_q, m, d_k, d_v, sh, d_pos0, d_att, NULL));
                check_attention(&sh, &a, d_att, m, pos0, 1, "prefill");
                /* both query tiles on any GPU (the 16-row one is sm_86/sm_89's at head_dim 128) */
                const int rows[] = {16, 32};
                for (int ri = 0; ri < 2; ri++) {
                    CUDA_OK(trit_cuda_memset(d_att, 0xA5, (size_t)(m * a.qd) * 4, NULL));
                    CUDA_OK(trit_cuda_attn_prefill_rows(d_q, m, d_k, d_v, sh, d_pos0, rows[ri], d_att, NULL));
                    check_attention(&sh, &a, d_att, m, pos0, 1, rows[ri] == 16 ? "prefill, 16-row tiles" : "prefill, 32-row tiles");
                }
                att_data_free(&a);
                trit_cuda_free(d_q), trit_cuda_free(d_att), trit_cuda_free(d_k), trit_cuda_free(d_v),
                    trit_cuda_free(d_pos0);
            }
}

Test(cuda_backend_ops, attention_output_sub_norm_quant) {
    if (!test_require_gpu()) return;
    struct test_rng rng;
    test_rng_seed(&rng, 0xe8u);
    const struct trit_cuda_attn_shape sh = {20, 5, 128, 400};
    const int64_t n_pos = 333, qd = 20 * 128, k_pad = trit_cuda_act_stride(qd);
    struct att_data a;
    att_data_make(&rng, &sh, 1, n_pos, 1.0f, &a);
    float *w = malloc((size_t)qd * 4);
    for (int64_t i = 0; i < qd; i++) w[i] = test_rng_uniform(&rng, 0.5f, 1.5f);
    float *d_q = dev_from(a.q, (size_t)qd * 4), *d_w = dev_from(w, (size_t)qd * 4);
    void *d_k = dev_from(a.kh, (size_t)(sh.n_ctx * a.kvd) * 2), *d_v = dev_from(a.vh, (size_t)(sh.n_ctx * a.kvd) * 2);
    int32_t *d_pos0 = dev_i32((int32_t)(n_pos - 1)), *d_qsum = dev_alloc(4);
    uint32_t *d_cnt = dev_alloc((size_t)sh.n_kv_heads * 4);
    float *d_po = dev_alloc((size_t)(8 * qd) * 4), *d_pml = dev_alloc((size_t)(8 * 20 * 2) * 4);
    float *d_att = dev_alloc((size_t)qd * 4), *d_s = dev_alloc(4);
    int8_t *d_q8 = dev_alloc((size_t)k_pad);
    CUDA_OK(trit_cuda_memset(d_cnt, 0, (size_t)sh.n_kv_heads * 4, NULL));
    CUDA_OK(trit_cuda_attn_decode(d_q, d_k, d_v, sh, d_pos0, 8, d_po, d_pml, d_cnt, d_att, NULL));
    float *att = host_from(d_att, (size_t)qd * 4);
    CUDA_OK(trit_cuda_residual_norm_quant(d_att, 1, qd, NULL, 0, (struct trit_cuda_wscale){1.0f, 0}, d_w, 1e-5f, d_q8,
                                          d_qsum, d_s, NULL));
    float *s = host_from(d_s, 4);
    int8_t *q8 = host_from(d_q8, (size_t)k_pad);
    int32_t *qsum = host_from(d_qsum, 4);
    float *y = malloc((size_t)qd * 4);
    trit_rmsnorm_f32(att, w, qd, 1e-5f, y); /* the norm of the GPU's own attention output */
    check_quant(q8, qsum, s, y, 1, qd, norm_rel_tol(qd), "attention + sub-norm");
    att_data_free(&a);
    free(w), free(att), free(s), free(q8), free(qsum), free(y);
    trit_cuda_free(d_q), trit_cuda_free(d_w), trit_cuda_free(d_k), trit_cuda_free(d_v), trit_cuda_free(d_pos0),
        trit_cuda_free(d_qsum), trit_cuda_free(d_cnt), trit_cuda_free(d_po), trit_cuda_free(d_pml),
        trit_cuda_free(d_att), trit_cuda_free(d_s), trit_cuda_free(d_q8);
}

/* ---- head ---------------------------------------------------------------------------------------------- */

/* A random (V, D) head in fp16 or bf16 (the dense view in *dense; free its data). */
static uint16_t *random_head(struct test_rng *rng, int64_t V, int64_t D, int bf16, struct trit_dense *dense) {
    uint16_t *w = malloc((size_t)(V * D) * 2);
    cr_assert_not_null(w);
    for (int64_t i = 0; i < V * D; i++) {
        const float f = test_rng_normal(rng) * 0.05f;
        w[i] = bf16 ? trit_fp32_to_bf16(f) : trit_fp32_to_fp16(f);
    }
    *dense = (struct trit_dense){bf16 ? TRIT_DTYPE_BF16 : TRIT_DTYPE_F16, V, D, w, NULL};
    return w;
}

/* got (m, V) against trit_dense_gemv_rows on x (m, D) row by row: both are sums of D products in
 * some order, so each is within D u sum|w x| of the exact value (the widening is exact). */
static void check_head_rows(const struct trit_dense *dense, const float *x, const float *got, int64_t m,
                            const char *what) {
    const int64_t V = dense->n_rows, D = dense->n_cols;
    float *want = malloc((size_t)V * 4), *row = malloc((size_t)D * 4);
    for (int64_t t = 0; t < m; t++) {
        trit_dense_gemv_rows(dense, x + t * D, 0, V, want);
        for (int64_t r = 0; r < V; r++) {
            trit_dense_row_f32(dense, r, row);
            double mag = 0.0;
            for (int64_t c = 0; c < D; c++) mag += fabs((double)row[c] * x[t * D + c]);
            const double tol = 2.0 * (double)D * U32 * mag;
            cr_assert(fabs((double)got[t * V + r] - want[r]) <= tol, "%s, V %ld D %ld m %ld: [%ld][%ld] %g vs %g", what,
                      (long)V, (long)D, (long)m, (long)t, (long)r, (double)got[t * V + r], (double)want[r]);
        }
    }
    free(want), free(row);
}

Test(cuda_backend_ops, head_gemv_against_cpu) {
    if (!test_require_gpu()) return;
    struct test_rng rng;
    test_rng_seed(&rng, 0xe9u);
    const int64_t shapes[][2] = {{300, 96}, {5000, 2560}, {257, 100}, {1000, 4096}};
    const int64_t ms[] = {1, 3, 8};
    for (size_t ci = 0; ci < sizeof shapes / sizeof shapes[0]; ci++)
        for (int bf16 = 0; bf16 < 2; bf16++)
            for (size_t mi = 0; mi < 3; mi++) {
                const int64_t V = shapes[ci][0], D = shapes[ci][1], m = ms[mi];
                struct trit_dense dense;
                uint16_t *w = random_head(&rng, V, D, bf16, &dense);
                float *x = malloc((size_t)(m * D) * 4);
                fill_normal(&rng, x, m * D, 1.0f);
                void *d_w = dev_from(w, (size_t)(V * D) * 2);
                float *d_x = dev_from(x, (size_t)(m * D) * 4), *d_l = dev_alloc((size_t)(m * V) * 4);
                CUDA_OK(trit_cuda_memset(d_l, 0xA5, (size_t)(m * V) * 4, NULL));
                CUDA_OK(trit_cuda_head_gemv(d_w, bf16, V, D, d_x, m, d_l, NULL));
                float *got = host_from(d_l, (size_t)(m * V) * 4);
                check_head_rows(&dense, x, got, m, bf16 ? "bf16" : "fp16");
                free(w), free(x), free(got);
                trit_cuda_free(d_w), trit_cuda_free(d_x), trit_cuda_free(d_l);
            }
}

/* More than 8 rows (every row's logits: perplexity, and tensor parallelism's logits_all) go through
 * the same fp32 GEMV in pieces of 8 (review finding 2: no fp16 rounding of the normed activations,
 * no dependence on a library's algorithm). For 1, 8, 9 and 512 rows: every row against the CPU's
 * trit_dense_gemv_rows within the same bound as above, and a row's bits do not depend on the number
 * of rows in the call (512 vs 8 and 9 for the first rows; 512 vs a call of the last 9). */
Test(cuda_backend_ops, head_gemv_any_row_count) {
    if (!test_require_gpu()) return;
    struct test_rng rng;
    test_rng_seed(&rng, 0xebu);
    const int64_t V = 1000, D = 256, M = 512;
    for (int bf16 = 0; bf16 < 2; bf16++) {
        struct trit_dense dense;
        uint16_t *w = random_head(&rng, V, D, bf16, &dense);
        float *x = malloc((size_t)(M * D) * 4);
        fill_normal(&rng, x, M * D, 1.0f);
        void *d_w = dev_from(w, (size_t)(V * D) * 2);
        float *d_x = dev_from(x, (size_t)(M * D) * 4), *d_l = dev_alloc((size_t)(M * V) * 4);
        float *all = NULL;
        const int64_t ms[] = {512, 1, 8, 9};
        for (size_t mi = 0; mi < 4; mi++) {
            const int64_t m = ms[mi];
            CUDA_OK(trit_cuda_memset(d_l, 0xA5, (size_t)(M * V) * 4, NULL));
            CUDA_OK(trit_cuda_head_gemv(d_w, bf16, V, D, d_x, m, d_l, NULL));
            float *got = host_from(d_l, (size_t)(m * V) * 4);
            check_head_rows(&dense, x, got, m, bf16 ? "bf16, any row count" : "fp16, any row count");
            if (m == M) {
                all = got;
                got = NULL;
            } else if (m > 1) {
                cr_assert(memcmp(got, all, (size_t)(m * V) * 4) == 0, "bf16 %d: rows of a %ld-row call differ from the "
                          "same rows of a 512-row call", bf16, (long)m);
            } else if (memcmp(got, all, (size_t)V * 4) != 0) {
                cr_log_info("bf16 %d: one token alone (the decode kernel, M = 1) differs in the last bits from the "
                            "same row among 512 (M = 8)", bf16);
            }
            free(got);
        }
        /* the last 9 rows on their own: a piece of 8 and one of 1, at another offset */
        CUDA_OK(trit_cuda_head_gemv(d_w, bf16, V, D, d_x + (M - 9) * D, 9, d_l, NULL));
        float *tail = host_from(d_l, (size_t)(9 * V) * 4);
        cr_assert(memcmp(tail, all + (M - 9) * V, (size_t)(9 * V) * 4) == 0, "bf16 %d: the last 9 rows differ", bf16);
        free(tail), free(all), free(w), free(x);
        trit_cuda_free(d_w), trit_cuda_free(d_x), trit_cuda_free(d_l);
    }
}

Test(cuda_backend_ops, argmax_first_maximum) {
    if (!test_require_gpu()) return;
    struct test_rng rng;
    test_rng_seed(&rng, 0xeau);
    const int64_t ns[] = {1, 31, 1024, 128256};
    for (size_t i = 0; i < sizeof ns / sizeof ns[0]; i++) {
        const int64_t n = ns[i];
        float *x = malloc((size_t)n * 4);
        fill_normal(&rng, x, n, 1.0f);
        const int64_t at = test_rng_int(&rng, 0, n - 1);
        x[at] = 100.0f;
        if (n > 10) {
            x[n - 1] = 100.0f;                 /* a tie later: the first index wins */
            x[at > 0 ? at - 1 : n - 2] = NAN; /* NaN never wins */
        }
        float *d_x = dev_from(x, (size_t)n * 4);
        int32_t *d_i = dev_i32(-7);
        CUDA_OK(trit_cuda_argmax(d_x, n, d_i, NULL));
        int32_t *got = host_from(d_i, 4);
        cr_assert_eq(*got, at, "n %ld: %d, max planted at %ld", (long)n, *got, (long)at);
        free(x), free(got);
        trit_cuda_free(d_x), trit_cuda_free(d_i);
    }
}

#else /* no CUDA build: the gate still reports the skip */

Test(cuda_backend_ops, needs_cuda_build) {
    if (!test_require_gpu()) return;
    cr_assert_fail("a GPU was found but trit was built without CUDA");
}

#endif
