// labels: unit
// cpu families: each
/* test_cuda_ops_hd.c: the per-thread arithmetic of the CUDA backend's non-ternary kernels
 * (cuda/ops_hd.h) run on the CPU, against the CPU reference (host/cpu/ops.c): RMSNorm's scale, the
 * gated activations and RoPE bit for bit; the online softmax and the split-K merge against a
 * double-precision softmax; the decode split ranges and the prefill thread maps for coverage; and
 * CPU emulations of one CTA of the decode and prefill attention kernels (cuda/ops_attn.cu), built
 * from those functions with the kernels' loop structure and index formulas, against
 * trit_attention_f32_ref; the paged KV cache's row of a position through a block table (against
 * host/cpu/ops.c's address), each token's position and table, and the batched decode over a shared
 * pool (bit for bit the single-token kernel over the sequence's rows gathered, and within the
 * decode tolerance of trit_attention_f32_paged); the device top-k's order keys, radix steps, segments and sorting network,
 * and a CPU emulation of trit_topk_kernel (cuda/ops_topk.cu) against host/sampler.c's
 * trit_topk_penalized, bit for bit. Runs everywhere, GPU or not.
 *
 *   ctest --test-dir build -R test_cuda_ops_hd --output-on-failure */
#include <criterion/criterion.h>
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h" /* trit_topk_penalized, TRIT_TOPK_MAX */
#include "cpu/head_int8.h"
#include "cpu/ops.h"
#include "ops_hd.h"
#include "support.h"
#include "trit_cuda_ops.h" /* TRIT_CUDA_ATT_DEC_TOKENS */
#include "topk_cases.h"

/* ---- RMSNorm, activations, RoPE: bit for bit against ops.c ------------------------------------- */

/* The sum of squares in trit_rmsnorm_f32's order: 16 lane sums, then the lanes in order, then the
 * tail (ops.c; GCC keeps this order when it vectorizes, and ISO C mode does not contract to FMA). */
static float cpu_sum_sq(const float *x, int64_t n) {
    float part[16] = {0};
    int64_t i = 0;
    for (; i + 16 <= n; i += 16)
        for (int j = 0; j < 16; j++) part[j] += x[i + j] * x[i + j];
    float ss = 0.0f;
    for (int j = 0; j < 16; j++) ss += part[j];
    for (; i < n; i++) ss += x[i] * x[i];
    return ss;
}

Test(cuda_ops_hd, rmsnorm_scale_and_apply_match_cpu) {
    struct test_rng rng;
    test_rng_seed(&rng, 0x51u);
    const int64_t ns[] = {1, 15, 16, 17, 96, 160, 2560, 6913};
    for (size_t t = 0; t < sizeof ns / sizeof ns[0]; t++) {
        const int64_t n = ns[t];
        float *x = malloc((size_t)n * sizeof *x), *w = malloc((size_t)n * sizeof *w);
        float *want = malloc((size_t)n * sizeof *want);
        for (int64_t i = 0; i < n; i++) x[i] = test_rng_normal(&rng) * 3.0f, w[i] = test_rng_uniform(&rng, 0.5f, 1.5f);
        trit_rmsnorm_f32(x, w, n, 1e-5f, want);
        const float inv = trit_rms_inv(cpu_sum_sq(x, n), n, 1e-5f);
        for (int64_t i = 0; i < n; i++) {
            const float got = trit_rms_apply(x[i], inv, w[i]);
            cr_assert(memcmp(&got, &want[i], sizeof got) == 0, "n %ld i %ld: %a != %a", (long)n, (long)i, (double)got,
                      (double)want[i]);
        }
        free(x), free(w), free(want);
    }
}

Test(cuda_ops_hd, gated_activations_match_cpu) {
    struct test_rng rng;
    test_rng_seed(&rng, 0x52u);
    enum { N = 4099 };
    static float g[N], u[N], want[N];
    for (int act = 0; act < 2; act++) {
        for (int i = 0; i < N; i++) g[i] = test_rng_normal(&rng) * (i % 7 == 0 ? 20.0f : 2.0f), u[i] = test_rng_normal(&rng);
        g[0] = 0.0f, g[1] = -0.0f, g[2] = 90.0f, g[3] = -90.0f;
        /* the CPU's portable expression (cpu/ops.c: the SiLU of its vector levels is within a few
         * ulp of it instead, test_cpu_ops) */
        for (int i = 0; i < N; i++) {
            const float r = g[i] > 0.0f ? g[i] : 0.0f;
            want[i] = (enum trit_act)act == TRIT_ACT_RELU2 ? r * r * u[i] : g[i] / (1.0f + expf(-g[i])) * u[i];
        }
        for (int i = 0; i < N; i++) {
            const float got = trit_gated_one(g[i], u[i], act);
            cr_assert(memcmp(&got, &want[i], sizeof got) == 0, "act %d g %a u %a: %a != %a", act, (double)g[i],
                      (double)u[i], (double)got, (double)want[i]);
        }
    }
}

Test(cuda_ops_hd, rope_pairs_and_rotation_match_cpu) {
    struct test_rng rng;
    test_rng_seed(&rng, 0x53u);
    const int64_t hds[] = {2, 16, 24, 64, 128, 256};
    const int64_t n_pos = 300;
    for (size_t t = 0; t < sizeof hds / sizeof hds[0]; t++) {
        const int64_t hd = hds[t], half = hd / 2;
        float *cs = malloc((size_t)(n_pos * half) * sizeof *cs), *sn = malloc((size_t)(n_pos * half) * sizeof *sn);
        trit_rope_table(n_pos, hd, t % 2 ? 10000.0f : 500000.0f, cs, sn);
        float v[256], want[256], got[256];
        for (int style = 0; style < 2; style++)
            for (int64_t pos = 0; pos < n_pos; pos += 37) {
                for (int64_t i = 0; i < hd; i++) v[i] = test_rng_normal(&rng);
                memcpy(want, v, (size_t)hd * sizeof *v);
                trit_rope_f32(want, hd, cs + pos * half, sn + pos * half, (enum trit_rope_style)style);
                memset(got, 0xA5, sizeof got);
                for (int64_t i = 0; i < half; i++) {
                    int64_t ia, ib;
                    trit_rope_pair(i, hd, style, &ia, &ib);
                    trit_rope_rotate(v[ia], v[ib], cs[pos * half + i], sn[pos * half + i], &got[ia], &got[ib]);
                }
                cr_assert(memcmp(got, want, (size_t)hd * sizeof *got) == 0, "hd %ld style %d pos %ld", (long)hd, style,
                          (long)pos);
            }
        free(cs), free(sn);
    }
}

/* ---- online softmax ---------------------------------------------------------------------------- */

Test(cuda_ops_hd, softmax_rescale_edge_cases) {
    float mn;
    cr_assert_eq(trit_softmax_rescale(-INFINITY, 2.5f, &mn), 0.0f); /* first tile: old state vanishes */
    cr_assert_eq(mn, 2.5f);
    cr_assert_eq(trit_softmax_rescale(3.0f, -INFINITY, &mn), 1.0f); /* fully masked tile: no change */
    cr_assert_eq(mn, 3.0f);
    cr_assert_eq(trit_softmax_rescale(-INFINITY, -INFINITY, &mn), 1.0f); /* nothing yet: no NaN */
    cr_assert_eq(mn, -INFINITY);
    cr_assert_eq(trit_softmax_rescale(3.0f, 1.0f, &mn), 1.0f);
    cr_assert_eq(mn, 3.0f);
    cr_assert_eq(trit_softmax_p(-INFINITY, 1.0f), 0.0f);
    cr_assert_eq(trit_softmax_p(1.0f, 1.0f), 1.0f);
}

/* Online state over scores s[t0, t1) in tiles of `tile` (the kernels' per-tile update), with v of
 * width `w`: m, l, o (unnormalized). */
static void online_range(const float *s, const float *v, int w, int64_t t0, int64_t t1, int tile, float *m, float *l,
                         float *o) {
    *m = -INFINITY, *l = 0.0f;
    for (int c = 0; c < w; c++) o[c] = 0.0f;
    for (int64_t tb = t0; tb < t1; tb += tile) {
        const int64_t te = tb + tile < t1 ? tb + tile : t1;
        float mx = -INFINITY;
        for (int64_t t = tb; t < te; t++) mx = fmaxf(mx, s[t]);
        float mn;
        const float corr = trit_softmax_rescale(*m, mx, &mn);
        float sum = 0.0f;
        for (int c = 0; c < w; c++) o[c] *= corr;
        for (int64_t t = tb; t < te; t++) {
            const float p = trit_softmax_p(s[t], mn);
            sum += p;
            for (int c = 0; c < w; c++) o[c] += p * v[t * w + c];
        }
        *l = *l * corr + sum;
        *m = mn;
    }
}

/* Tolerance of a softmax-weighted average of n values against the exact one, relative to max|v|:
 * each weight carries the rounding of its exp (2 ulp on the GPU), of up to n_tiles rescales and of
 * the merge (a few ulp), and the sums of n terms add at most n ulp: (2 n + 8 n_tiles + 32) eps. */
static double softmax_tol(int64_t n, int64_t n_tiles) { return (2.0 * (double)n + 8.0 * (double)n_tiles + 32.0) * FLT_EPSILON; }

Test(cuda_ops_hd, online_softmax_with_split_merge_matches_two_pass) {
    struct test_rng rng;
    test_rng_seed(&rng, 0x54u);
    const int64_t ns[] = {1, 5, 63, 64, 65, 300, 1000, 4097};
    const int splits[] = {1, 3, 7, 64};
    const int tiles[] = {32, 128};
    enum { W = 3 };
    for (size_t a = 0; a < sizeof ns / sizeof ns[0]; a++)
        for (size_t b = 0; b < sizeof splits / sizeof splits[0]; b++)
            for (size_t c = 0; c < 2; c++)
                for (int spread = 1; spread <= 30; spread += 29) {
                    const int64_t n = ns[a];
                    float *s = malloc((size_t)n * sizeof *s), *v = malloc((size_t)(n * W) * sizeof *v);
                    float vmax = 0.0f;
                    for (int64_t t = 0; t < n; t++) s[t] = test_rng_normal(&rng) * (float)spread;
                    for (int64_t t = 0; t < n * W; t++) v[t] = test_rng_normal(&rng), vmax = fmaxf(vmax, fabsf(v[t]));
                    /* the maximum in float, then widened (the same value): GCC 12 for aarch64 stops
                     * with an internal error vectorizing fmax over floats widened to double */
                    float mxf = -INFINITY;
                    for (int64_t t = 0; t < n; t++) mxf = fmaxf(mxf, s[t]);
                    double ref[W] = {0}, den = 0.0, mx = mxf;
                    for (int64_t t = 0; t < n; t++) {
                        const double e = exp((double)s[t] - mx);
                        den += e;
                        for (int k = 0; k < W; k++) ref[k] += e * v[t * W + k];
                    }
                    const int ns_ = splits[b];
                    float m[64], l[64], o[64][W], wt[64];
                    for (int sp = 0; sp < ns_; sp++) {
                        int64_t t0, t1;
                        trit_attn_split_range(n, ns_, sp, &t0, &t1);
                        if (t0 >= t1) {
                            m[sp] = -INFINITY, l[sp] = 0.0f;
                            for (int k = 0; k < W; k++) o[sp][k] = NAN; /* never read */
                            continue;
                        }
                        online_range(s, v, W, t0, t1, tiles[c], &m[sp], &l[sp], o[sp]);
                    }
                    trit_softmax_merge_weights(m, l, 1, ns_, wt);
                    for (int k = 0; k < W; k++) {
                        float got = 0.0f;
                        for (int sp = 0; sp < ns_; sp++)
                            if (wt[sp] != 0.0f) got += wt[sp] * o[sp][k];
                        const double want = ref[k] / den, tol = softmax_tol(n, n / tiles[c] + ns_) * vmax;
                        cr_assert(fabs(got - want) <= tol, "n %ld splits %d tile %d spread %d: %g vs %g (tol %g)",
                                  (long)n, ns_, tiles[c], spread, (double)got, want, tol);
                    }
                    free(s), free(v);
                }
}

Test(cuda_ops_hd, merge_weights_skip_empty_partials) {
    const float m[4] = {1.0f, -INFINITY, 3.0f, -INFINITY}, l[4] = {2.0f, 0.0f, 1.0f, 0.0f};
    float w[4];
    trit_softmax_merge_weights(m, l, 1, 4, w);
    cr_assert_eq(w[1], 0.0f);
    cr_assert_eq(w[3], 0.0f);
    const double L = 2.0 * exp(-2.0) + 1.0;
    cr_assert_float_eq(w[0], exp(-2.0) / L, 1e-6);
    cr_assert_float_eq(w[2], 1.0 / L, 1e-6);
}

/* ---- decode splits and prefill maps: coverage --------------------------------------------------- */

Test(cuda_ops_hd, attn_split_ranges_cover_each_position_once) {
    for (int64_t n_pos = 1; n_pos <= 5000; n_pos += n_pos < 300 ? 1 : 97)
        for (int n_splits = 1; n_splits <= 64; n_splits++) {
            int64_t next = 0, chunk = -1;
            bool empty_seen = false;
            for (int s = 0; s < n_splits; s++) {
                int64_t t0, t1;
                trit_attn_split_range(n_pos, n_splits, s, &t0, &t1);
                if (t0 >= t1) {
                    empty_seen = true;
                    continue;
                }
                cr_assert(!empty_seen, "n_pos %ld splits %d: split %d follows an empty one", (long)n_pos, n_splits, s);
                cr_assert_eq(t0, next, "n_pos %ld splits %d split %d starts at %ld, not %ld", (long)n_pos, n_splits, s,
                             (long)t0, (long)next);
                if (chunk < 0) chunk = t1 - t0;
                cr_assert(t1 - t0 <= chunk && (t1 == n_pos || t1 - t0 == chunk));
                cr_assert(t1 == n_pos || (t1 - t0) % TRIT_ATT_SPLIT_GRAIN == 0);
                next = t1;
            }
            cr_assert_eq(next, n_pos, "n_pos %ld splits %d: covered up to %ld", (long)n_pos, n_splits, (long)next);
            cr_assert(chunk >= TRIT_ATT_SPLIT_MIN || chunk == n_pos);
        }
}

Test(cuda_ops_hd, prefill_thread_maps_cover_tiles_once) {
    const int tprs[] = {4, 8};
    const int hdts[] = {64, 256};
    for (int a = 0; a < 2; a++) {
        const int tpr = tprs[a], bq = TRIT_PF_THREADS / tpr, hdt = hdts[a];
        static int seen_s[128][TRIT_PF_BK], seen_o[128][256];
        memset(seen_s, 0, sizeof seen_s);
        memset(seen_o, 0, sizeof seen_o);
        for (int tid = 0; tid < TRIT_PF_THREADS; tid++) {
            const int r = trit_pf_row(tid, tpr);
            cr_assert(r < bq);
            cr_assert_eq((r * tpr) / 32, tid / 32, "a row's threads share a warp (shuffles)");
            for (int j = 0; j < TRIT_PF_BK / tpr; j++) seen_s[r][trit_pf_col(tid, tpr, j)]++;
            for (int j = 0; j < hdt / tpr; j++) seen_o[r][trit_pf_sub(tid, tpr) + tpr * j]++;
        }
        for (int r = 0; r < bq; r++) {
            for (int c = 0; c < TRIT_PF_BK; c++) cr_assert_eq(seen_s[r][c], 1, "tpr %d score (%d, %d)", tpr, r, c);
            for (int d = 0; d < hdt; d++) cr_assert_eq(seen_o[r][d], 1, "tpr %d output (%d, %d)", tpr, r, d);
        }
    }
}

Test(cuda_ops_hd, prefill_causal_limits) {
    /* rows see keys up to their own position; rows past the last token take the last token's */
    cr_assert_eq(trit_pf_qpos(10, 0, 0, 5), 10);
    cr_assert_eq(trit_pf_qpos(10, 0, 4, 5), 14);
    cr_assert_eq(trit_pf_qpos(10, 0, 7, 5), 14);
    cr_assert_eq(trit_pf_qpos(0, 32, 3, 100), 35);
    cr_assert_eq(trit_pf_last_key(10, 0, 32, 5), 14);
    cr_assert_eq(trit_pf_last_key(0, 32, 32, 100), 63);
    cr_assert_eq(trit_pf_last_key(7, 96, 32, 100), 106);
}

/* ---- CPU emulations of the attention kernels ------------------------------------------------------ */

struct att_case {
    int64_t n_heads, n_kv, hd, n_pos; /* n_pos: cached positions the query (last) sees */
};

/* Fills q (n_heads, hd) and a cache of n_pos rows (n_kv * hd) with fp16-representable values. */
static void att_data(struct test_rng *rng, const struct att_case *c, float *q, float *k, float *v, float *vmax) {
    const int64_t kvd = c->n_kv * c->hd;
    *vmax = 0.0f;
    for (int64_t i = 0; i < c->n_heads * c->hd; i++) q[i] = test_rng_normal(rng);
    for (int64_t i = 0; i < c->n_pos * kvd; i++) {
        k[i] = trit_fp16_to_fp32(trit_fp32_to_fp16(test_rng_normal(rng)));
        v[i] = trit_fp16_to_fp32(trit_fp32_to_fp16(test_rng_normal(rng)));
        *vmax = fmaxf(*vmax, fabsf(v[i]));
    }
}

/* trit_attn_decode_kernel, one CTA (kv head g, split) after another, with its phases and index
 * formulas (the tile's cache rows through the block table `tab`, NULL: contiguous); then the merge
 * its last CTA per KV head does (weights, sum in split order). out (n_heads, hd). part_o
 * (n_splits, n_heads, hd) and part_ml (n_splits, n_heads, 2): the token's slot of the scratch. */
static void emu_decode_slot(const struct att_case *c, const float *q, const float *kc, const float *vc,
                            const int32_t *tab, int n_splits, float *part_o, float *part_ml, float *out) {
    enum { TILE = 128 };
    const int64_t G = c->n_heads / c->n_kv, kv_dim = c->n_kv * c->hd, hd = c->hd;
    int32_t rows_s[TILE];
    for (int64_t i = 0; i < n_splits * c->n_heads * hd; i++) part_o[i] = NAN; /* poison: empty splits stay NaN */
    const float scale = 1.0f / sqrtf((float)hd);
    for (int64_t g = 0; g < c->n_kv; g++)
        for (int split = 0; split < n_splits; split++) {
            int64_t t0, t1;
            trit_attn_split_range(c->n_pos, n_splits, split, &t0, &t1);
            float *ml = part_ml + ((int64_t)split * c->n_heads + g * G) * 2;
            if (t0 >= t1) {
                for (int64_t h = 0; h < G; h++) ml[2 * h] = -INFINITY, ml[2 * h + 1] = 0.0f;
                continue;
            }
            float m_r[8], l_r[8], o[256][8], ps[8][TILE], corr_s[8];
            for (int64_t h = 0; h < G; h++) {
                m_r[h] = -INFINITY, l_r[h] = 0.0f;
                for (int64_t d = 0; d < hd; d++) o[d][h] = 0.0f;
            }
            for (int64_t tb = t0; tb < t1; tb += TILE) {
                const int n_valid = (int)(t1 - tb < TILE ? t1 - tb : TILE);
                for (int tid = 0; tid < TILE; tid++) rows_s[tid] = tid < n_valid ? trit_kv_row(tab, tb + tid) : 0;
                for (int tid = 0; tid < TILE; tid++)
                    for (int64_t h = 0; h < G; h++) {
                        if (tid >= n_valid) {
                            ps[h][tid] = -INFINITY;
                            continue;
                        }
                        float acc = 0.0f;
                        for (int64_t d = 0; d < hd; d++)
                            acc += q[(g * G + h) * hd + d] * kc[(int64_t)rows_s[tid] * kv_dim + g * hd + d];
                        ps[h][tid] = acc * scale;
                    }
                for (int64_t h = 0; h < G; h++) {
                    float mx = -INFINITY, mn, sum = 0.0f;
                    for (int j = 0; j < TILE; j++) mx = fmaxf(mx, ps[h][j]);
                    const float corr = trit_softmax_rescale(m_r[h], mx, &mn);
                    for (int j = 0; j < TILE; j++) ps[h][j] = trit_softmax_p(ps[h][j], mn), sum += ps[h][j];
                    l_r[h] = l_r[h] * corr + sum;
                    m_r[h] = mn;
                    corr_s[h] = corr;
                }
                for (int64_t d = 0; d < hd; d++)
                    for (int64_t h = 0; h < G; h++) {
                        o[d][h] *= corr_s[h];
                        for (int i = 0; i < n_valid; i++)
                            o[d][h] += ps[h][i] * vc[(int64_t)rows_s[i] * kv_dim + g * hd + d];
                    }
            }
            for (int64_t h = 0; h < G; h++) {
                for (int64_t d = 0; d < hd; d++) part_o[((int64_t)split * c->n_heads + g * G + h) * hd + d] = o[d][h];
                ml[2 * h] = m_r[h], ml[2 * h + 1] = l_r[h];
            }
        }
    /* merge: the last CTA of each KV head, per query head, splits in order */
    const int64_t q_dim = c->n_heads * hd, ml_stride = 2 * c->n_heads;
    float w[64];
    for (int64_t h = 0; h < c->n_heads; h++) {
        trit_softmax_merge_weights(part_ml + h * 2, part_ml + h * 2 + 1, ml_stride, n_splits, w);
        for (int64_t d = 0; d < hd; d++) {
            float v = 0.0f;
            for (int p = 0; p < n_splits; p++)
                if (w[p] != 0.0f) v += w[p] * part_o[(int64_t)p * q_dim + h * hd + d];
            out[h * hd + d] = v;
        }
    }
}

/* The single-token kernel over a contiguous cache. */
static void emu_decode(const struct att_case *c, const float *q, const float *kc, const float *vc, int n_splits,
                       float *out) {
    float *part_o = malloc((size_t)(n_splits * c->n_heads * c->hd) * sizeof(float));
    float *part_ml = malloc((size_t)(n_splits * c->n_heads * 2) * sizeof(float));
    emu_decode_slot(c, q, kc, vc, NULL, n_splits, part_o, part_ml, out);
    free(part_o), free(part_ml);
}

static void check_att(const struct att_case *c, const float *got, const float *want, float vmax, int64_t n_tiles,
                      const char *what) {
    const double tol = softmax_tol(c->n_pos, n_tiles) * vmax;
    for (int64_t i = 0; i < c->n_heads * c->hd; i++)
        cr_assert(fabs(got[i] - want[i]) <= tol, "%s heads %ld/%ld hd %ld n_pos %ld: [%ld] %g vs %g (tol %g)", what,
                  (long)c->n_heads, (long)c->n_kv, (long)c->hd, (long)c->n_pos, (long)i, (double)got[i],
                  (double)want[i], tol);
}

static const struct att_case ATT_CASES[] = {
    {6, 2, 16, 1}, {6, 2, 16, 70}, {4, 4, 24, 300}, {20, 5, 128, 129}, {8, 1, 256, 200}, {32, 8, 128, 1000},
};

Test(cuda_ops_hd, decode_attention_emulation_matches_reference) {
    struct test_rng rng;
    test_rng_seed(&rng, 0x55u);
    const int splits[] = {1, 2, 26, 64};
    for (size_t ci = 0; ci < sizeof ATT_CASES / sizeof ATT_CASES[0]; ci++) {
        const struct att_case *c = &ATT_CASES[ci];
        const int64_t qd = c->n_heads * c->hd, kvd = c->n_kv * c->hd;
        float *q = malloc((size_t)qd * 4), *k = malloc((size_t)(c->n_pos * kvd) * 4), *v = malloc((size_t)(c->n_pos * kvd) * 4);
        float *want = malloc((size_t)qd * 4), *got = malloc((size_t)qd * 4), *scores = malloc((size_t)c->n_pos * 4);
        float vmax;
        att_data(&rng, c, q, k, v, &vmax);
        trit_attention_f32_ref(q, k, v, c->n_pos, c->n_heads, c->n_kv, c->hd, kvd, scores, want, 0, c->n_heads);
        for (size_t si = 0; si < sizeof splits / sizeof splits[0]; si++) {
            emu_decode(c, q, k, v, splits[si], got);
            check_att(c, got, want, vmax, c->n_pos / 128 + splits[si] + 1, "decode");
        }
        free(q), free(k), free(v), free(want), free(got), free(scores);
    }
}

/* ---- the paged KV cache: rows, per-token positions and tables, the batched decode ---------------- */

_Static_assert(TRIT_CUDA_KV_BLOCK == TRIT_KV_BLOCK, "the kernels' KV block is the pool's (include/trit.h)");

/* A pool of n_blocks blocks handed to n_seq sequences in a shuffled order (as a pool that has been
 * trimmed and forked hands them out): tables (n_seq, max_blocks), sequence s holding blocks
 * tables[s][0 .. max_blocks). */
static void shuffled_tables(struct test_rng *rng, int32_t n_blocks, int32_t n_seq, int32_t max_blocks, int32_t *tables) {
    int32_t *ids = malloc((size_t)n_blocks * sizeof *ids);
    for (int32_t i = 0; i < n_blocks; i++) ids[i] = i;
    for (int32_t i = n_blocks - 1; i > 0; i--) {
        const int32_t j = (int32_t)test_rng_int(rng, 0, i), t = ids[i];
        ids[i] = ids[j], ids[j] = t;
    }
    cr_assert_geq(n_blocks, n_seq * max_blocks);
    for (int32_t i = 0; i < n_seq * max_blocks; i++) tables[i] = ids[i];
    free(ids);
}

/* trit_kv_row is host/cpu/ops.c's paged address (ops.h: blocks[t / TRIT_KV_BLOCK] * block_stride +
 * (t % TRIT_KV_BLOCK) * kv_stride, with block_stride = TRIT_KV_BLOCK * kv_stride) in rows; the identity
 * table and no table give row = position; a sequence's positions take distinct rows of its own blocks.
 * trit_kv_token_pos and trit_kv_token_table pick each token's position and table. */
Test(cuda_ops_hd, paged_rows_and_token_maps) {
    struct test_rng rng;
    test_rng_seed(&rng, 0x60u);
    enum { N_BLOCKS = 40, N_SEQ = 3, MAXB = 12, KV = 24 };
    int32_t tables[N_SEQ * MAXB], ident[MAXB];
    shuffled_tables(&rng, N_BLOCKS, N_SEQ, MAXB, tables);
    for (int32_t i = 0; i < MAXB; i++) ident[i] = i;
    static uint8_t used[N_BLOCKS * TRIT_KV_BLOCK];
    memset(used, 0, sizeof used);
    for (int64_t p = 0; p < MAXB * TRIT_KV_BLOCK; p++) {
        cr_assert_eq(trit_kv_row(NULL, p), p);
        cr_assert_eq(trit_kv_row(ident, p), p);
        for (int s = 0; s < N_SEQ; s++) {
            const int32_t *tab = tables + s * MAXB, row = trit_kv_row(tab, p);
            const int64_t cpu = tab[p / TRIT_KV_BLOCK] * (int64_t)(TRIT_KV_BLOCK * KV) + p % TRIT_KV_BLOCK * KV;
            cr_assert_eq((int64_t)row * KV, cpu, "seq %d pos %ld", s, (long)p);
            cr_assert_eq(row / TRIT_KV_BLOCK, tab[p / TRIT_KV_BLOCK]);
            cr_assert(!used[row], "row %d taken twice", row);
            used[row] = 1;
        }
    }
    const int32_t pos0 = 17, pos[4] = {5, 130, 0, 64}, tok_table[4] = {2, 0, 2, 1};
    for (int64_t t = 0; t < 4; t++) {
        cr_assert_eq(trit_kv_token_pos(NULL, &pos0, t), 17 + t);
        cr_assert_eq(trit_kv_token_pos(pos, &pos0, t), pos[t]);
        cr_assert_null(trit_kv_token_table(NULL, tok_table, MAXB, t));
        cr_assert_eq(trit_kv_token_table(tables, NULL, MAXB, t), tables);
        cr_assert_eq(trit_kv_token_table(tables, tok_table, MAXB, t), tables + tok_table[t] * MAXB);
    }
}

/* The batched decode kernel (trit_cuda_attn_decode_paged) over a pool shared by several sequences:
 * tokens of different sequences at different positions (across block boundaries), run in launches
 * of TRIT_CUDA_ATT_DEC_TOKENS tokens with the kernel's per-token scratch slots (shared by the
 * launches, in order). Each token's output equals, bit for bit, the single-token kernel over its
 * sequence's rows gathered into a contiguous cache: paging moves addresses, not one operation. And
 * it matches the CPU's paged attention (trit_attention_f32_paged, the backend's reference, on the
 * same fp16-rounded rows) within the decode emulation's tolerance: both sum each score over head_dim
 * in order, but the softmax runs per tile of 128 and per split here and per block of 64 there. */
Test(cuda_ops_hd, paged_decode_emulation_matches_contiguous_and_cpu) {
    struct test_rng rng;
    test_rng_seed(&rng, 0x61u);
    const struct att_case shapes[] = {{6, 2, 16, 0}, {20, 5, 128, 0}, {8, 1, 256, 0}};
    enum { N_SEQ = 4, MAXB = 6, N_BLOCKS = 30, N_TOK = 19 };
    const int n_splits[] = {1, 3, 26};
    for (size_t ci = 0; ci < sizeof shapes / sizeof shapes[0]; ci++) {
        const struct att_case *c = &shapes[ci];
        const int64_t qd = c->n_heads * c->hd, kvd = c->n_kv * c->hd, rows = (int64_t)N_BLOCKS * TRIT_KV_BLOCK;
        int32_t tables[N_SEQ * MAXB], pos[N_TOK], tok_table[N_TOK];
        shuffled_tables(&rng, N_BLOCKS, N_SEQ, MAXB, tables);
        float *kp = malloc((size_t)(rows * kvd) * 4), *vp = malloc((size_t)(rows * kvd) * 4);
        float *q = malloc((size_t)(N_TOK * qd) * 4), *att = malloc((size_t)(N_TOK * qd) * 4);
        float *kc = malloc((size_t)(MAXB * TRIT_KV_BLOCK * kvd) * 4), *vc = malloc((size_t)(MAXB * TRIT_KV_BLOCK * kvd) * 4);
        float *alone = malloc((size_t)qd * 4), *want = malloc((size_t)qd * 4), *scores = malloc((size_t)rows * 4);
        float vmax = 0.0f;
        for (int64_t i = 0; i < rows * kvd; i++) {
            kp[i] = trit_fp16_to_fp32(trit_fp32_to_fp16(test_rng_normal(&rng)));
            vp[i] = trit_fp16_to_fp32(trit_fp32_to_fp16(test_rng_normal(&rng)));
            vmax = fmaxf(vmax, fabsf(vp[i]));
        }
        for (int64_t i = 0; i < N_TOK * qd; i++) q[i] = test_rng_normal(&rng);
        /* positions across block edges (0, 63, 64, 65, 127, 128, ...) and the pool's last rows */
        static const int32_t edge[] = {0, 63, 64, 65, 127, 128, 129, 191, 300, 383};
        for (int t = 0; t < N_TOK; t++) {
            tok_table[t] = (int32_t)test_rng_int(&rng, 0, N_SEQ - 1);
            pos[t] = t < 10 ? edge[t] : (int32_t)test_rng_int(&rng, 0, MAXB * TRIT_KV_BLOCK - 1);
        }
        for (size_t si = 0; si < sizeof n_splits / sizeof n_splits[0]; si++) {
            const int ns = n_splits[si];
            const int64_t slot_o = ns * qd, slot_ml = ns * c->n_heads * 2;
            float *part_o = malloc((size_t)(TRIT_CUDA_ATT_DEC_TOKENS * slot_o) * 4);
            float *part_ml = malloc((size_t)(TRIT_CUDA_ATT_DEC_TOKENS * slot_ml) * 4);
            for (int64_t i = 0; i < N_TOK * qd; i++) att[i] = NAN;
            /* the launches: token t = tok0 + tz of chunk tok0, its q and att rows at t, its slot tz */
            for (int64_t tok0 = 0; tok0 < N_TOK; tok0 += TRIT_CUDA_ATT_DEC_TOKENS)
                for (int64_t tz = 0; tz < TRIT_CUDA_ATT_DEC_TOKENS && tok0 + tz < N_TOK; tz++) {
                    const int64_t t = tok0 + tz;
                    const int32_t *tab = trit_kv_token_table(tables, tok_table, MAXB, t);
                    const struct att_case ct = {c->n_heads, c->n_kv, c->hd, trit_kv_token_pos(pos, NULL, t) + 1};
                    emu_decode_slot(&ct, q + t * qd, kp, vp, tab, ns, part_o + tz * slot_o, part_ml + tz * slot_ml,
                                    att + t * qd);
                }
            for (int64_t t = 0; t < N_TOK; t++) {
                const int32_t *tab = tables + tok_table[t] * MAXB;
                const struct att_case ct = {c->n_heads, c->n_kv, c->hd, pos[t] + 1};
                for (int64_t p = 0; p <= pos[t]; p++) { /* the sequence's rows, gathered */
                    memcpy(kc + p * kvd, kp + (int64_t)trit_kv_row(tab, p) * kvd, (size_t)kvd * 4);
                    memcpy(vc + p * kvd, vp + (int64_t)trit_kv_row(tab, p) * kvd, (size_t)kvd * 4);
                }
                emu_decode(&ct, q + t * qd, kc, vc, ns, alone);
                cr_assert(memcmp(alone, att + t * qd, (size_t)qd * 4) == 0,
                          "heads %ld hd %ld splits %d token %ld (pos %d): paged and contiguous differ", (long)c->n_heads,
                          (long)c->hd, ns, (long)t, pos[t]);
                trit_attention_f32_paged(q + t * qd, kp, vp, tab, TRIT_KV_BLOCK * kvd, pos[t] + 1, c->n_heads, c->n_kv,
                                         c->hd, kvd, scores, want, 0, c->n_heads);
                check_att(&ct, att + t * qd, want, vmax, (pos[t] + 1) / 64 + ns + 2, "paged decode");
            }
            free(part_o), free(part_ml);
        }
        free(kp), free(vp), free(q), free(att), free(kc), free(vc), free(alone), free(want), free(scores);
    }
}

/* trit_attn_prefill_kernel for the m tokens at positions pos0 .. pos0 + m - 1 of head h, all CTAs
 * (query tiles of bq rows), with its masking and limits; one partial per token, then normalized as
 * the merge does with one part. out (m, n_heads, hd). */
static void emu_prefill(int64_t n_heads, int64_t n_kv, int64_t hd, int tpr, int64_t m, int64_t pos0, const float *q,
                        const float *kc, const float *vc, float *out) {
    const int bq = TRIT_PF_THREADS / tpr, bk = TRIT_PF_BK;
    const int64_t q_dim = n_heads * hd, kv_dim = n_kv * hd;
    const float scale = 1.0f / sqrtf((float)hd);
    for (int64_t h = 0; h < n_heads; h++) {
        const int64_t g = h / (n_heads / n_kv);
        for (int64_t tok0 = 0; tok0 < m; tok0 += bq) {
            const int64_t last = trit_pf_last_key(pos0, tok0, bq, m);
            for (int r = 0; r < bq; r++) {
                const int64_t qp = trit_pf_qpos(pos0, tok0, r, m), tok = tok0 + r;
                float m_row = -INFINITY, l_row = 0.0f, o[256] = {0};
                for (int64_t kt0 = 0; kt0 <= last; kt0 += bk) {
                    float s[TRIT_PF_BK], mx = -INFINITY, mn, sum = 0.0f;
                    for (int c = 0; c < bk; c++) {
                        const int64_t kp = kt0 + c;
                        float acc = 0.0f;
                        for (int64_t d = 0; d < hd; d++)
                            acc += (tok < m ? q[tok * q_dim + h * hd + d] : 0.0f) *
                                   (kp <= last ? kc[kp * kv_dim + g * hd + d] : 0.0f);
                        s[c] = kp <= qp ? acc * scale : -INFINITY;
                        mx = fmaxf(mx, s[c]);
                    }
                    const float corr = trit_softmax_rescale(m_row, mx, &mn);
                    for (int64_t d = 0; d < hd; d++) o[d] *= corr;
                    for (int c = 0; c < bk; c++) {
                        const float p = trit_softmax_p(s[c], mn);
                        sum += p;
                        for (int64_t d = 0; d < hd; d++)
                            o[d] += p * (kt0 + c <= last ? vc[(kt0 + c) * kv_dim + g * hd + d] : 0.0f);
                    }
                    l_row = l_row * corr + sum;
                    m_row = mn;
                }
                if (tok >= m) continue;
                float w;
                trit_softmax_merge_weights(&m_row, &l_row, 1, 1, &w);
                for (int64_t d = 0; d < hd; d++) out[tok * q_dim + h * hd + d] = w * o[d];
            }
        }
    }
}

Test(cuda_ops_hd, prefill_attention_emulation_matches_reference) {
    struct test_rng rng;
    test_rng_seed(&rng, 0x56u);
    const struct {
        int64_t n_heads, n_kv, hd, m, pos0;
        int tpr;
    } cases[] = {{6, 2, 16, 1, 0, 4}, {6, 2, 16, 37, 0, 4}, {4, 4, 24, 40, 13, 4}, {4, 2, 128, 70, 5, 4},
                 {2, 1, 256, 20, 31, 8}};
    for (size_t ci = 0; ci < sizeof cases / sizeof cases[0]; ci++) {
        const int64_t nh = cases[ci].n_heads, nkv = cases[ci].n_kv, hd = cases[ci].hd, m = cases[ci].m,
                      pos0 = cases[ci].pos0, n_pos = pos0 + m, qd = nh * hd, kvd = nkv * hd;
        struct att_case c = {nh, nkv, hd, n_pos};
        float *q = malloc((size_t)(m * qd) * 4), *k = malloc((size_t)(n_pos * kvd) * 4),
              *v = malloc((size_t)(n_pos * kvd) * 4), *qtmp = malloc((size_t)qd * 4);
        float *want = malloc((size_t)qd * 4), *got = malloc((size_t)(m * qd) * 4), *scores = malloc((size_t)n_pos * 4);
        float vmax;
        att_data(&rng, &c, qtmp, k, v, &vmax);
        for (int64_t i = 0; i < m * qd; i++) q[i] = test_rng_normal(&rng);
        emu_prefill(nh, nkv, hd, cases[ci].tpr, m, pos0, q, k, v, got);
        for (int64_t t = 0; t < m; t++) {
            trit_attention_f32_ref(q + t * qd, k, v, pos0 + t + 1, nh, nkv, hd, kvd, scores, want, 0, nh);
            struct att_case ct = {nh, nkv, hd, pos0 + t + 1};
            check_att(&ct, got + t * qd, want, vmax, (pos0 + t) / TRIT_PF_BK + 2, "prefill");
        }
        free(q), free(k), free(v), free(qtmp), free(want), free(got), free(scores);
    }
}

/* ---- int8 LM head (host/cpu/head_int8.c) --------------------------------------------------------- */

/* The device's dot: 16-byte loads, four dp4a each (4 int8 products summed into int32). */
static int32_t dp4a_dot(const int8_t *w, const int8_t *q, int64_t ld) {
    int32_t acc = 0;
    for (int64_t c = 0; c < ld; c += 4)
        for (int j = 0; j < 4; j++) acc += (int32_t)w[c + j] * (int32_t)q[c + j];
    return acc;
}

/* Row quantization: codes, padding and scale bit for bit against trit_head_i8_quantize (the CPU's
 * fast path, AVX-512 where it runs), on rows with ties at .5, outliers, zeros and a NaN. */
Test(cuda_ops_hd, head_i8_row_quantization_matches_cpu) {
    struct test_rng rng;
    test_rng_seed(&rng, 0x5Au);
    const int64_t ns[] = {1, 7, 64, 96, 100, 2560, 2561};
    for (size_t k = 0; k < sizeof ns / sizeof ns[0]; k++) {
        const int64_t n = ns[k], ld = (n + 63) / 64 * 64;
        float *x = malloc((size_t)n * sizeof *x);
        int8_t *qa = malloc((size_t)ld), *qb = malloc((size_t)ld);
        for (int rep = 0; rep < 4; rep++) {
            for (int64_t i = 0; i < n; i++) x[i] = test_rng_normal(&rng) * (i % 13 == 0 ? 8.0f : 1.0f);
            if (rep == 1) x[n / 2] = 0.0f, x[0] = (float)n;                 /* an outlier: many codes 0 */
            if (rep == 2) for (int64_t i = 0; i < n; i++) x[i] = (float)(i % 255) - 127.0f; /* .5 ties at s = 1 */
            if (rep == 3) for (int64_t i = 0; i < n; i++) x[i] = i == n - 1 && n > 1 ? NAN : 0.0f;
            memset(qa, 0x55, (size_t)ld), memset(qb, 0x55, (size_t)ld);
            const float sa = trit_head_i8_quantize(x, n, ld, qa), sb = trit_i8_quantize_row(x, n, ld, qb);
            cr_assert(memcmp(&sa, &sb, sizeof sa) == 0, "n %ld rep %d: scale %a vs %a", (long)n, rep, (double)sa, (double)sb);
            cr_assert(memcmp(qa, qb, (size_t)ld) == 0, "n %ld rep %d: codes differ", (long)n, rep);
            const float da = 1.0f / sa, db = trit_i8_inv_scale(sb);
            cr_assert(memcmp(&da, &db, sizeof da) == 0);
        }
        free(x), free(qa), free(qb);
    }
}

/* The head quantized by trit_head_i8_init has the codes of trit_i8_quantize_row row by row; the
 * dp4a-order int32 dots equal trit_head_i8_acc_rows (and its reference); trit_head_i8_logit gives
 * trit_head_i8_logits's fp32 logits bit for bit. */
Test(cuda_ops_hd, head_i8_dots_and_logits_match_cpu) {
    struct test_rng rng;
    test_rng_seed(&rng, 0x5Bu);
    const int64_t V = 203, D = 200, ld = 256;
    float *wf = malloc((size_t)(V * D) * sizeof *wf), *x = malloc((size_t)D * sizeof *x);
    for (int64_t i = 0; i < V * D; i++) wf[i] = test_rng_normal(&rng) * 0.05f;
    for (int64_t i = 0; i < D; i++) x[i] = test_rng_normal(&rng) * (i % 17 == 0 ? 6.0f : 1.0f);
    const struct trit_dense m = {.dtype = TRIT_DTYPE_F32, .n_rows = V, .n_cols = D, .data = wf};
    struct trit_head_i8 h;
    cr_assert_eq(trit_head_i8_init(&m, 1, TRIT_HEAD_I8_AUTO, NULL, &h), TRIT_OK, "%s", trit_last_error());
    cr_assert_eq(h.ld, ld);
    int8_t *row = malloc((size_t)ld), *q = malloc((size_t)ld);
    float *d = malloc((size_t)V * sizeof *d), *lc = malloc((size_t)V * sizeof *lc);
    int32_t *acc = malloc((size_t)V * sizeof *acc), *acc_ref = malloc((size_t)V * sizeof *acc_ref);
    for (int64_t r = 0; r < V; r++) {
        d[r] = trit_i8_inv_scale(trit_i8_quantize_row(wf + r * D, D, ld, row));
        cr_assert(memcmp(row, h.w + r * ld, (size_t)ld) == 0, "row %ld: codes differ", (long)r);
        cr_assert(memcmp(&d[r], &h.d[r], sizeof d[r]) == 0, "row %ld: d %a vs %a", (long)r, (double)d[r], (double)h.d[r]);
    }
    const float dx = trit_i8_inv_scale(trit_i8_quantize_row(x, D, ld, q));
    trit_head_i8_acc_rows(&h, q, 0, V, acc);
    trit_head_i8_acc_rows_ref(&h, q, 0, V, acc_ref);
    cr_assert_eq(trit_head_i8_logits(NULL, &h, x, 1, D, lc), TRIT_OK);
    for (int64_t r = 0; r < V; r++) {
        const int32_t a = dp4a_dot(h.w + r * ld, q, ld);
        cr_assert_eq(a, acc[r], "row %ld: dot %d vs %d", (long)r, a, acc[r]);
        cr_assert_eq(a, acc_ref[r]);
        const float l = trit_head_i8_logit(a, d[r], dx);
        cr_assert(memcmp(&l, &lc[r], sizeof l) == 0, "row %ld: logit %a vs %a", (long)r, (double)l, (double)lc[r]);
    }
    trit_head_i8_free(&h);
    free(wf), free(x), free(row), free(q), free(d), free(lc), free(acc), free(acc_ref);
}

/* forward_topk's per-thread rules: llama.cpp's penalty (NaN -> -inf) and the candidate order
 * (logit desc, id asc), as host/sampler.c applies them. */
Test(ops_hd, topk_penalty_and_order) {
    cr_assert_eq(trit_topk_penalize(3.0f, 1.5f), 2.0f);
    cr_assert_eq(trit_topk_penalize(-3.0f, 1.5f), -4.5f);
    cr_assert_eq(trit_topk_penalize(0.0f, 1.5f), 0.0f);
    cr_assert(isinf(trit_topk_penalize(NAN, 1.5f)) && trit_topk_penalize(NAN, 1.5f) < 0);
    cr_assert(isinf(trit_topk_key(NAN)) && trit_topk_key(NAN) < 0);
    cr_assert_eq(trit_topk_key(1.25f), 1.25f);
    cr_assert(trit_topk_before(2.0f, 9, 1.0f, 0));
    cr_assert(!trit_topk_before(1.0f, 0, 2.0f, 9));
    cr_assert(trit_topk_before(1.0f, 3, 1.0f, 4));
    cr_assert(!trit_topk_before(1.0f, 4, 1.0f, 3));
    cr_assert(!trit_topk_before(1.0f, 4, 1.0f, 4));
    cr_assert(trit_topk_before(-1e30f, 7, -INFINITY, 0));
}

/* ---- device top-k (cuda/ops_topk.cu): order keys, radix steps, and a CPU emulation of the kernel -- */

static uint32_t f32_bits(float v) {
    uint32_t u;
    memcpy(&u, &v, sizeof u);
    return u;
}

/* ord is strictly monotone with the float order (-0 and +0 one key) and unord inverts it. */
Test(cuda_ops_hd, topk_ord_is_monotone_and_invertible) {
    static const float edges[] = {-INFINITY, -FLT_MAX, -1e20f, -1.0f, -FLT_MIN, -FLT_MIN / 2, -1e-45f, -0.0f,
                                  0.0f,      1e-45f,   2e-45f, FLT_MIN / 2, FLT_MIN, 1.0f, 1e20f, FLT_MAX,
                                  INFINITY};
    const int n_edges = (int)(sizeof edges / sizeof edges[0]);
    cr_assert_eq(trit_topk_ord(-INFINITY), 0x007FFFFFu);
    cr_assert_eq(trit_topk_ord(-0.0f), trit_topk_ord(0.0f));
    for (int i = 0; i < n_edges; i++) {
        const float back = trit_topk_unord(trit_topk_ord(edges[i]));
        const float want = edges[i] == 0.0f ? 0.0f : edges[i];
        cr_assert_eq(f32_bits(back), f32_bits(want), "unord(ord(%a)) = %a", (double)edges[i], (double)back);
        cr_assert(trit_topk_ord(edges[i]) > 0u, "key 0 is the sentinel");
        if (i > 0 && edges[i - 1] != edges[i])
            cr_assert(trit_topk_ord(edges[i - 1]) < trit_topk_ord(edges[i]), "%a vs %a", (double)edges[i - 1],
                      (double)edges[i]);
    }
    struct test_rng rng;
    test_rng_seed(&rng, 0x7c1u);
    for (int t = 0; t < 1000000; t++) {
        float a, b;
        uint32_t ua = (uint32_t)test_rng_u64(&rng), ub = (uint32_t)test_rng_u64(&rng);
        if (t % 4 == 1) ub = ua ^ (uint32_t)test_rng_int(&rng, 0, 15); /* neighbours */
        if (t % 4 == 2) ub = ua ^ 0x80000000u;                        /* opposite sign */
        memcpy(&a, &ua, sizeof a), memcpy(&b, &ub, sizeof b);
        if (isnan(a) || isnan(b)) continue;
        const uint32_t ka = trit_topk_ord(a), kb = trit_topk_ord(b);
        cr_assert_eq(a < b, ka < kb, "%a %a", (double)a, (double)b);
        cr_assert_eq(a == b, ka == kb, "%a %a", (double)a, (double)b);
        const float back = trit_topk_unord(ka);
        cr_assert_eq(f32_bits(back), f32_bits(a == 0.0f ? 0.0f : a), "%a", (double)a);
    }
}

Test(cuda_ops_hd, topk_pick_bin) {
    uint32_t hist[256] = {0}, above = 77;
    hist[255] = 3, hist[100] = 5, hist[0] = 2;
    static const uint32_t k_rem[] = {1, 3, 4, 8, 9, 10};
    static const int bin[] = {255, 255, 100, 100, 0, 0};
    static const uint32_t abv[] = {0, 0, 3, 3, 8, 8};
    for (int i = 0; i < 6; i++) {
        cr_assert_eq(trit_topk_pick_bin(hist, k_rem[i], &above), bin[i], "k_rem %u", k_rem[i]);
        cr_assert_eq(above, abv[i], "k_rem %u", k_rem[i]);
    }
    memset(hist, 0, sizeof hist);
    hist[0] = 256; /* everything in the lowest bin */
    cr_assert_eq(trit_topk_pick_bin(hist, 256, &above), 0);
    cr_assert_eq(above, 0u);
    for (int b = 0; b < 256; b++) hist[b] = 1;
    for (uint32_t k = 1; k <= 256; k++) {
        cr_assert_eq(trit_topk_pick_bin(hist, k, &above), 256 - (int)k);
        cr_assert_eq(above, k - 1);
    }
    cr_assert_eq(trit_topk_hi_mask(0), 0u);
    cr_assert_eq(trit_topk_hi_mask(1), 0xFF000000u);
    cr_assert_eq(trit_topk_hi_mask(3), 0xFFFFFF00u);
}

/* The 32 warp segments cover [0, n) once, in order, each a whole number of 32-key ballots. */
Test(cuda_ops_hd, topk_segments_cover_row_in_order) {
    static const int64_t ns[] = {1, 31, 32, 33, 1023, 1024, 1025, 4099, 128256, INT32_MAX};
    for (size_t t = 0; t < sizeof ns / sizeof ns[0]; t++) {
        int64_t next = 0;
        for (int w = 0; w < TRIT_TOPK_WARPS; w++) {
            int64_t b, e;
            trit_topk_segment(ns[t], w, &b, &e);
            cr_assert(b <= e);
            if (b == e) continue;
            cr_assert_eq(b, next, "n %ld warp %d", (long)ns[t], w);
            cr_assert(b % 32 == 0 && (e % 32 == 0 || e == ns[t]));
            next = e;
        }
        cr_assert_eq(next, ns[t]);
    }
}

/* trit_topk_kernel's bitonic phase: thread tid < p handles the pair (tid, tid ^ stride) when it
 * holds the lower index; pairs of one step are disjoint, so running them in turn is the kernel. */
static void emu_bitonic(uint32_t *ck, int32_t *ci, int p) {
    for (int size = 2; size <= p; size <<= 1)
        for (int stride = size >> 1; stride > 0; stride >>= 1)
            for (int tid = 0; tid < p; tid++) {
                const int j = tid ^ stride;
                if (j > tid && trit_bitonic_swap(tid, size, ck[tid], ci[tid], ck[j], ci[j])) {
                    const uint32_t kt = ck[tid];
                    const int32_t it = ci[tid];
                    ck[tid] = ck[j], ci[tid] = ci[j];
                    ck[j] = kt, ci[j] = it;
                }
            }
}

Test(cuda_ops_hd, topk_bitonic_network_sorts) {
    struct test_rng rng;
    test_rng_seed(&rng, 0x7c2u);
    uint32_t ck[TRIT_TOPK_MAX];
    int32_t ci[TRIT_TOPK_MAX];
    for (int k = 1; k <= TRIT_TOPK_MAX; k++) {
        const int p = trit_topk_sort_size(k);
        cr_assert(p >= k && p < 2 * k + (k == 1) && (p & (p - 1)) == 0, "k %d: p %d", k, p);
        for (int i = 0; i < k; i++) ck[i] = (uint32_t)test_rng_int(&rng, 1, 6), ci[i] = (int32_t)(i * 7919 % 1009);
        for (int i = k; i < p; i++) ck[i] = 0u, ci[i] = INT32_MAX;
        emu_bitonic(ck, ci, p);
        for (int i = 1; i < p; i++)
            cr_assert(trit_topk_key_before(ck[i - 1], ci[i - 1], ck[i], ci[i]) || (ck[i] == 0u && ck[i - 1] == 0u),
                      "k %d: position %d out of order", k, i);
    }
}

/* One CTA of trit_topk_kernel on the CPU: the same phases, index formulas and TRIT_HD functions;
 * each warp's lanes run in turn, ballots are bit masks built over the 32 lanes first. The
 * histogram's warp aggregation only regroups additions of the same counts, so a plain count stands
 * for it; its loop coverage (uint4 chunks plus the tail) is emulated and checked. */
static void emu_topk(const float *x, int64_t n, const int32_t *pen, int32_t n_pen, float penalty, int32_t k,
                     uint32_t *keys, uint8_t *seen, float *vals, int32_t *ids) {
    enum { THREADS = TRIT_TOPK_WARPS * 32, U = TRIT_TOPK_UNROLL };
    for (int64_t i = 0; i < n; i++) keys[i] = trit_topk_ord(trit_topk_key(x[i]));
    for (int64_t j = 0; j < n_pen; j++) {
        const int32_t id = pen[j];
        if (id >= 0 && id < n) keys[id] = trit_topk_ord(trit_topk_penalize(x[id], penalty));
    }

    const int64_t n4 = n / 4;
    uint32_t prefix = 0, k_rem = (uint32_t)k;
    for (int pass = 0; pass < 4; pass++) {
        const int shift = 24 - 8 * pass;
        const uint32_t hi = trit_topk_hi_mask(pass);
        uint32_t hist[256] = {0};
        memset(seen, 0, (size_t)n);
#define EMU_HIST(i)                                                                                \
    do {                                                                                           \
        seen[i]++;                                                                                 \
        if ((keys[i] & hi) == prefix) hist[(keys[i] >> shift) & 0xFFu]++;                          \
    } while (0)
        for (int warp = 0; warp < TRIT_TOPK_WARPS; warp++)
            for (int64_t c = (int64_t)warp * 32; c < n4; c += (int64_t)U * THREADS)
                for (int u = 0; u < U; u++)
                    for (int lane = 0; lane < 32; lane++) {
                        const int64_t i = c + (int64_t)u * THREADS + lane;
                        if (i < n4)
                            for (int e = 0; e < 4; e++) EMU_HIST(4 * i + e);
                    }
        for (int lane = 0; lane < 32; lane++) { /* the last warp: the tail */
            const int64_t i = 4 * n4 + lane;
            if (i < n) EMU_HIST(i);
        }
#undef EMU_HIST
        for (int64_t i = 0; i < n; i++) cr_assert_eq(seen[i], 1, "pass %d: key %ld counted %d times", pass, (long)i, seen[i]);
        uint32_t above;
        const int b = trit_topk_pick_bin(hist, k_rem, &above);
        k_rem -= above;
        prefix |= (uint32_t)b << shift;
    }
    const uint32_t t = prefix;
    const int32_t n_gt = k - (int32_t)k_rem;

    uint32_t s_gt[TRIT_TOPK_WARPS], s_eq[TRIT_TOPK_WARPS], kv[32];
    for (int warp = 0; warp < TRIT_TOPK_WARPS; warp++) { /* 2a */
        int64_t sb, se;
        trit_topk_segment(n, warp, &sb, &se);
        s_gt[warp] = s_eq[warp] = 0;
        for (int64_t c = sb; c < se; c += U * 32)
            for (int u = 0; u < U; u++) {
                uint32_t gm = 0, em = 0;
                for (int lane = 0; lane < 32; lane++) {
                    const int64_t i = c + 32 * u + lane;
                    const uint32_t key = i < se ? keys[i] : 0u;
                    gm |= (uint32_t)(key > t) << lane, em |= (uint32_t)(key == t) << lane;
                }
                s_gt[warp] += (uint32_t)__builtin_popcount(gm), s_eq[warp] += (uint32_t)__builtin_popcount(em);
            }
    }
    uint32_t ck[TRIT_TOPK_MAX];
    int32_t ci[TRIT_TOPK_MAX];
    for (int i = 0; i < TRIT_TOPK_MAX; i++) ck[i] = 0xA5A5A5A5u, ci[i] = -7; /* unwritten slots show */
    for (int warp = 0; warp < TRIT_TOPK_WARPS; warp++) { /* 2b */
        int64_t sb, se;
        trit_topk_segment(n, warp, &sb, &se);
        uint32_t og = 0, oe = 0;
        for (int w = 0; w < warp; w++) og += s_gt[w], oe += s_eq[w];
        const uint32_t og_end = og + s_gt[warp], oe_end = oe + s_eq[warp];
        for (int64_t c = sb; c < se; c += U * 32) {
            if (og == og_end && (oe >= k_rem || oe == oe_end)) break;
            for (int u = 0; u < U; u++) {
                uint32_t gm = 0, em = 0;
                for (int lane = 0; lane < 32; lane++) {
                    const int64_t i = c + 32 * u + lane;
                    kv[lane] = i < se ? keys[i] : 0u;
                    gm |= (uint32_t)(kv[lane] > t) << lane, em |= (uint32_t)(kv[lane] == t) << lane;
                }
                for (int lane = 0; lane < 32; lane++) {
                    const int64_t i = c + 32 * u + lane;
                    const uint32_t lt = (1u << lane) - 1u;
                    if (kv[lane] > t) {
                        const uint32_t p = og + (uint32_t)__builtin_popcount(gm & lt);
                        cr_assert(p < (uint32_t)n_gt, "rank %u of a key > T, %d expected", p, n_gt);
                        ck[p] = kv[lane], ci[p] = (int32_t)i;
                    } else if (kv[lane] == t) {
                        const uint32_t r = oe + (uint32_t)__builtin_popcount(em & lt);
                        if (r < k_rem) ck[n_gt + r] = t, ci[n_gt + r] = (int32_t)i;
                    }
                }
                og += (uint32_t)__builtin_popcount(gm), oe += (uint32_t)__builtin_popcount(em);
            }
        }
    }
    const int p_sort = trit_topk_sort_size(k);
    for (int i = 0; i < k; i++) cr_assert(ci[i] != -7, "candidate slot %d never written", i);
    for (int i = k; i < p_sort; i++) ck[i] = 0u, ci[i] = INT32_MAX;
    emu_bitonic(ck, ci, p_sort);
    for (int r = 0; r < k; r++) {
        vals[r] = trit_topk_value(ck[r], x[ci[r]]);
        ids[r] = ci[r];
    }
}

/* The emulated kernel = trit_topk_penalized, bit for bit, on every case of topk_cases.h. */
Test(cuda_ops_hd, topk_emulation_matches_reference) {
    struct test_rng rng;
    test_rng_seed(&rng, 0x7c3u);
    const int64_t n_max = TOPK_NS[TOPK_N_NS - 1];
    float *x = malloc((size_t)n_max * sizeof *x);
    uint32_t *keys = malloc((size_t)n_max * sizeof *keys);
    uint8_t *seen = malloc((size_t)n_max);
    float want_v[TRIT_TOPK_MAX], got_v[TRIT_TOPK_MAX];
    int32_t want_i[TRIT_TOPK_MAX], got_i[TRIT_TOPK_MAX];
    struct topk_case c;
    int it = 0, n_cases = 0;
    for (; topk_case_next(&rng, &it, x, &c); n_cases++) {
        trit_topk_penalized(x, (int32_t)c.n, c.pen, c.n_pen, c.penalty, c.k, want_v, want_i);
        emu_topk(x, c.n, c.pen, c.n_pen, c.penalty, c.k, keys, seen, got_v, got_i);
        for (int32_t r = 0; r < c.k; r++)
            cr_assert(got_i[r] == want_i[r] && f32_bits(got_v[r]) == f32_bits(want_v[r]),
                      "n %ld kind %d k %d n_pen %d penalty %g: rank %d: (%a, %d), reference (%a, %d)", (long)c.n,
                      c.kind, c.k, c.n_pen, (double)c.penalty, r, (double)got_v[r], got_i[r], (double)want_v[r],
                      want_i[r]);
    }
    cr_log_info("%d cases", n_cases);
    free(x), free(keys), free(seen);
}
