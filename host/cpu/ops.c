/*
 * ops.c: fp32 operations of the CPU forward pass. See ops.h for shapes.
 *
 * Vectorization: plain loops that GCC vectorizes, compiled three times (AVX-512, AVX2+FMA,
 * baseline) by target_clones with an ifunc that picks one at load time. Reductions keep 16
 * independent partial sums so the vectorized order is fixed for a given ISA.
 */
#include "cpu/ops.h"

#include <math.h>
#include <string.h>

#include "quant/quant.h"

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>

/* The lanes of a 16-float vector below `left` (all 16 when left >= 16). */
static inline __mmask16 tail_mask16(int64_t left) {
    if (left >= 16) return (__mmask16)0xFFFF;
    return (__mmask16)((1u << left) - 1u);
}
#endif

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && !defined(TRIT_NO_CLONES)
#define TRIT_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define TRIT_CLONES
#endif

#define LANES 16

TRIT_CLONES
float trit_dot_f32(const float *a, const float *b, int64_t n) {
    float part[LANES] = {0};
    int64_t i = 0;
    for (; i + LANES <= n; i += LANES)
        for (int j = 0; j < LANES; j++) part[j] += a[i + j] * b[i + j];
    float sum = 0.0f;
    for (int j = 0; j < LANES; j++) sum += part[j];
    for (; i < n; i++) sum += a[i] * b[i];
    return sum;
}

TRIT_CLONES
void trit_axpy_f32(float *y, float a, const float *x, int64_t n) {
    for (int64_t i = 0; i < n; i++) y[i] += a * x[i];
}

TRIT_CLONES
void trit_add_f32(float *y, const float *x, int64_t n) {
    for (int64_t i = 0; i < n; i++) y[i] += x[i];
}

TRIT_CLONES
void trit_rmsnorm_f32(const float *x, const float *w, int64_t n, float eps, float *y) {
    float part[LANES] = {0};
    int64_t i = 0;
    for (; i + LANES <= n; i += LANES)
        for (int j = 0; j < LANES; j++) part[j] += x[i + j] * x[i + j];
    float ss = 0.0f;
    for (int j = 0; j < LANES; j++) ss += part[j];
    for (; i < n; i++) ss += x[i] * x[i];
    /* transformers: x * rsqrt(mean(x^2) + eps), then weight * that. */
    const float inv = 1.0f / sqrtf(ss / (float)n + eps);
    for (i = 0; i < n; i++) y[i] = w[i] * (x[i] * inv);
}

void trit_rope_table(int64_t n_pos, int64_t head_dim, float theta, float *cos_t, float *sin_t) {
    const int64_t half = head_dim / 2;
    for (int64_t i = 0; i < half; i++) {
        /* inv_freq = 1 / theta^(2i / head_dim), in fp32 like torch's float pow. */
        const float inv_freq = 1.0f / powf(theta, (float)(2 * i) / (float)head_dim);
        for (int64_t p = 0; p < n_pos; p++) {
            const float angle = (float)p * inv_freq;
            cos_t[p * half + i] = cosf(angle);
            sin_t[p * half + i] = sinf(angle);
        }
    }
}

void trit_rope_f32(float *v, int64_t head_dim, const float *cos_t, const float *sin_t, enum trit_rope_style style) {
    const int64_t half = head_dim / 2;
    if (style == TRIT_ROPE_NEOX) {
        for (int64_t i = 0; i < half; i++) {
            const float a = v[i], b = v[i + half];
            v[i] = a * cos_t[i] - b * sin_t[i];
            v[i + half] = b * cos_t[i] + a * sin_t[i];
        }
    } else {
        for (int64_t i = 0; i < half; i++) {
            const float a = v[2 * i], b = v[2 * i + 1];
            v[2 * i] = a * cos_t[i] - b * sin_t[i];
            v[2 * i + 1] = b * cos_t[i] + a * sin_t[i];
        }
    }
}

TRIT_CLONES
void trit_gated_act_f32(float *gate, const float *up, int64_t n, enum trit_act act) {
    if (act == TRIT_ACT_RELU2) {
        for (int64_t i = 0; i < n; i++) {
            const float r = gate[i] > 0.0f ? gate[i] : 0.0f;
            gate[i] = r * r * up[i];
        }
    } else {
        for (int64_t i = 0; i < n; i++) gate[i] = gate[i] / (1.0f + expf(-gate[i])) * up[i];
    }
}

/* ---- attention ---------------------------------------------------------------------------------
 * trit_attention_f32_ref: two passes per head (scores, softmax, weighted sum of V), the
 * specification. trit_attention_f32: one pass over the cache in blocks of ATT_BLOCK positions
 * with a running max and sum (online softmax), all query heads that share a KV head together, so
 * each K and V row is loaded once per group of up to 4 heads; AVX-512 when head_dim % 16 == 0,
 * else the reference. The two differ by fp32 rounding only (test_cpu_ops.c bounds it). */

void trit_attention_f32_ref(const float *q, const float *k, const float *v, int64_t n_pos, int64_t n_heads,
                        int64_t n_kv_heads, int64_t head_dim, int64_t kv_stride, float *scores, float *out,
                        int64_t head_begin, int64_t head_end) {
    const int64_t group = n_heads / n_kv_heads;
    const float scale = 1.0f / sqrtf((float)head_dim);
    for (int64_t h = head_begin; h < head_end; h++) {
        const float *qh = q + h * head_dim;
        const int64_t g = h / group;
        float max_s = -INFINITY;
        for (int64_t t = 0; t < n_pos; t++) {
            const float s = trit_dot_f32(qh, k + t * kv_stride + g * head_dim, head_dim) * scale;
            scores[t] = s;
            if (s > max_s) max_s = s;
        }
        float sum = 0.0f;
        for (int64_t t = 0; t < n_pos; t++) {
            scores[t] = expf(scores[t] - max_s);
            sum += scores[t];
        }
        const float inv = 1.0f / sum;
        float *oh = out + h * head_dim;
        memset(oh, 0, (size_t)head_dim * sizeof(float));
        for (int64_t t = 0; t < n_pos; t++) trit_axpy_f32(oh, scores[t] * inv, v + t * kv_stride + g * head_dim, head_dim);
    }
}


#define ATT_BLOCK 64 /* positions per online-softmax block: scores of 4 heads fit 1 KB */
#define ATT_MAX_NV 4 /* ZMM vectors of head_dim per pass of the V accumulation (64 floats) */

#if defined(__x86_64__) && defined(__GNUC__)
#define ATT_TARGET "avx512f"
#define ATT_INLINE static inline __attribute__((always_inline, target(ATT_TARGET)))

/* [sum(a), sum(b), sum(c), sum(d)] of 16 lanes each. */
ATT_INLINE __m128 att_hsum4(__m512 a, __m512 b, __m512 c, __m512 d) {
    /* per 128-bit lane: [a0+a2, b0+b2, a1+a3, b1+b3] and the same for c, d */
    const __m512 ab = _mm512_add_ps(_mm512_unpacklo_ps(a, b), _mm512_unpackhi_ps(a, b));
    const __m512 cd = _mm512_add_ps(_mm512_unpacklo_ps(c, d), _mm512_unpackhi_ps(c, d));
    /* per 128-bit lane: [a, b, c, d] partial sums */
    const __m512 abcd = _mm512_add_ps(_mm512_shuffle_ps(ab, cd, 0x44), _mm512_shuffle_ps(ab, cd, 0xEE));
    const __m256 h = _mm256_add_ps(_mm512_castps512_ps256(abcd),
                                   _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(abcd), 1)));
    return _mm_add_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps(h, 1));
}

/* exp(x) on 16 lanes for x <= 0 (softmax arguments s - max): Cephes expf. x = n ln2 + r with
 * |r| <= ln2/2 (ln2 in two parts, so r is exact), a degree-7 polynomial for exp(r) (relative error
 * below 2^-23 on that range), then vscalefps multiplies by 2^n, which goes to 0 for n < -149
 * without exponent tricks. x is clamped at -104 (exp(-104) is below every fp32 denormal): -inf
 * gives 0, not NaN. At most 2 ulp against the exact exp. */
ATT_INLINE __m512 att_exp(__m512 x) {
    x = _mm512_max_ps(x, _mm512_set1_ps(-104.0f));
    const __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)),
                                          _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), x);
    r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.12194440e-4f), r);
    __m512 p = _mm512_set1_ps(1.9875691500e-4f);
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.3981999507e-3f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(8.3334519073e-3f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(4.1665795894e-2f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.6666665459e-1f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(5.0000001201e-1f));
    p = _mm512_fmadd_ps(p, _mm512_mul_ps(r, r), _mm512_add_ps(r, _mm512_set1_ps(1.0f)));
    return _mm512_scalef_ps(p, n);
}

/* s[j][t] = scale * dot(q_j, k_t) for NH heads and n positions; k rows of head_dim floats at stride
 * ld. Register block: 4 heads x 4 positions = 16 accumulators, so one step of 16 columns issues 8
 * loads for 16 FMAs (one head or one position at a time would be load-bound). A group of positions
 * past n repeats the last row and its results are dropped. */
ATT_INLINE void att_scores(const float *const qh[4], const float *k, int64_t ld, int64_t n, int64_t hd, float scale,
                           float s[4][ATT_BLOCK], const int NH) {
    for (int64_t t = 0; t < n; t += 4) {
        const float *kt[4];
        for (int p = 0; p < 4; p++) kt[p] = k + (t + p < n ? t + p : n - 1) * ld;
        __m512 acc[4][4];
        for (int j = 0; j < 4; j++)
            for (int p = 0; p < 4; p++) acc[j][p] = _mm512_setzero_ps();
        for (int64_t i = 0; i < hd; i += 16) {
            __m512 kv[4];
            for (int p = 0; p < 4; p++) kv[p] = _mm512_loadu_ps(kt[p] + i);
            for (int j = 0; j < NH; j++) {
                const __m512 qv = _mm512_loadu_ps(qh[j] + i);
                for (int p = 0; p < 4; p++) acc[j][p] = _mm512_fmadd_ps(qv, kv[p], acc[j][p]);
            }
        }
        for (int p = 0; p < 4 && t + p < n; p++) {
            float sums[4];
            _mm_storeu_ps(sums, att_hsum4(acc[0][p], acc[1][p], acc[2][p], acc[3][p]));
            for (int j = 0; j < NH; j++) s[j][t + p] = sums[j] * scale;
        }
    }
}

/* o[j][c0 .. c0 + 16 NV) = o * corr[j] + sum_t p[j][t] * v_t[c0 ..] for NH heads. */
ATT_INLINE void att_pv(float *const o[4], const float corr[4], const float p[4][ATT_BLOCK], const float *v, int64_t ld,
                       int64_t n, int64_t c0, const int NH, const int NV) {
    __m512 acc[4][ATT_MAX_NV];
    for (int j = 0; j < NH; j++)
        for (int u = 0; u < NV; u++) acc[j][u] = _mm512_mul_ps(_mm512_loadu_ps(o[j] + c0 + 16 * u), _mm512_set1_ps(corr[j]));
    for (int64_t t = 0; t < n; t++) {
        __m512 vv[ATT_MAX_NV];
        for (int u = 0; u < NV; u++) vv[u] = _mm512_loadu_ps(v + t * ld + c0 + 16 * u);
        for (int j = 0; j < NH; j++) {
            const __m512 pj = _mm512_set1_ps(p[j][t]);
            for (int u = 0; u < NV; u++) acc[j][u] = _mm512_fmadd_ps(pj, vv[u], acc[j][u]);
        }
    }
    for (int j = 0; j < NH; j++)
        for (int u = 0; u < NV; u++) _mm512_storeu_ps(o[j] + c0 + 16 * u, acc[j][u]);
}

/* NH (1..4) query heads qh[j] against one KV head (k, v point at its first row). out[j] as qh. */
ATT_INLINE void att_group(const float *const qh[4], const float *k, const float *v, int64_t ld, int64_t n_pos,
                          int64_t hd, float *const oh[4], const int NH) {
    const float scale = 1.0f / sqrtf((float)hd);
    float s[4][ATT_BLOCK], m[4], l[4], corr[4];
    for (int j = 0; j < NH; j++) {
        m[j] = -INFINITY;
        l[j] = 0.0f;
        memset(oh[j], 0, (size_t)hd * sizeof(float)); /* the output doubles as the accumulator */
    }
    for (int64_t t0 = 0; t0 < n_pos; t0 += ATT_BLOCK) {
        const int64_t n = n_pos - t0 < ATT_BLOCK ? n_pos - t0 : ATT_BLOCK;
        att_scores(qh, k + t0 * ld, ld, n, hd, scale, s, NH);
        for (int j = 0; j < NH; j++) {
            __m512 vmax = _mm512_set1_ps(-INFINITY), vsum = _mm512_setzero_ps();
            for (int64_t t = 0; t < n; t += 16) {
                const __mmask16 mk = tail_mask16(n - t);
                vmax = _mm512_max_ps(vmax, _mm512_mask_loadu_ps(vmax, mk, s[j] + t));
            }
            const float bm = fmaxf(m[j], _mm512_reduce_max_ps(vmax));
            corr[j] = expf(m[j] - bm); /* 0 on the first block: m = -inf */
            for (int64_t t = 0; t < n; t += 16) {
                const __mmask16 mk = tail_mask16(n - t);
                const __m512 e = att_exp(_mm512_sub_ps(_mm512_maskz_loadu_ps(mk, s[j] + t), _mm512_set1_ps(bm)));
                _mm512_mask_storeu_ps(s[j] + t, mk, e);
                vsum = _mm512_add_ps(vsum, _mm512_maskz_mov_ps(mk, e));
            }
            l[j] = l[j] * corr[j] + _mm512_reduce_add_ps(vsum);
            m[j] = bm;
        }
        for (int64_t c0 = 0; c0 < hd; c0 += 16 * ATT_MAX_NV) {
            switch ((hd - c0) / 16 < ATT_MAX_NV ? (int)((hd - c0) / 16) : ATT_MAX_NV) {
            case 1: att_pv(oh, corr, s, v + t0 * ld, ld, n, c0, NH, 1); break;
            case 2: att_pv(oh, corr, s, v + t0 * ld, ld, n, c0, NH, 2); break;
            case 3: att_pv(oh, corr, s, v + t0 * ld, ld, n, c0, NH, 3); break;
            default: att_pv(oh, corr, s, v + t0 * ld, ld, n, c0, NH, 4); break;
            }
        }
    }
    for (int j = 0; j < NH; j++) {
        const __m512 inv = _mm512_set1_ps(1.0f / l[j]);
        for (int64_t i = 0; i < hd; i += 16) _mm512_storeu_ps(oh[j] + i, _mm512_mul_ps(_mm512_loadu_ps(oh[j] + i), inv));
    }
}

__attribute__((target(ATT_TARGET)))
static void attention_avx512(const float *q, const float *k, const float *v, int64_t n_pos, int64_t n_heads,
                             int64_t n_kv_heads, int64_t hd, int64_t ld, float *out, int64_t h0, int64_t h1) {
    const int64_t group = n_heads / n_kv_heads;
    for (int64_t h = h0; h < h1;) {
        /* heads h .. h + nh - 1: at most 4, all on KV head g */
        const int64_t g = h / group, g_end = (g + 1) * group;
        const int nh = (int)((g_end < h1 ? g_end : h1) - h < 4 ? (g_end < h1 ? g_end : h1) - h : 4);
        const float *qh[4];
        float *oh[4];
        for (int j = 0; j < 4; j++) {
            qh[j] = q + (h + (j < nh ? j : 0)) * hd;
            oh[j] = out + (h + (j < nh ? j : 0)) * hd;
        }
        const float *kg = k + g * hd, *vg = v + g * hd;
        switch (nh) {
        case 1: att_group(qh, kg, vg, ld, n_pos, hd, oh, 1); break;
        case 2: att_group(qh, kg, vg, ld, n_pos, hd, oh, 2); break;
        case 3: att_group(qh, kg, vg, ld, n_pos, hd, oh, 3); break;
        default: att_group(qh, kg, vg, ld, n_pos, hd, oh, 4); break;
        }
        h += nh;
    }
}
#endif

void trit_attention_f32(const float *q, const float *k, const float *v, int64_t n_pos, int64_t n_heads,
                        int64_t n_kv_heads, int64_t head_dim, int64_t kv_stride, float *scores, float *out,
                        int64_t head_begin, int64_t head_end) {
#if defined(__x86_64__) && defined(__GNUC__)
    if (head_dim % 16 == 0 && __builtin_cpu_supports("avx512f")) {
        attention_avx512(q, k, v, n_pos, n_heads, n_kv_heads, head_dim, kv_stride, out, head_begin, head_end);
        return;
    }
#endif
    trit_attention_f32_ref(q, k, v, n_pos, n_heads, n_kv_heads, head_dim, kv_stride, scores, out, head_begin, head_end);
}

/* ---- dense LM head ----------------------------------------------------------------------------
 * The head is the largest single stream at decode (2B-4T: 657 MB of fp16 per token), so the
 * fp16/bf16 rows are widened in registers, never copied to fp32 in memory. */

#if defined(__x86_64__) && defined(__GNUC__)

__attribute__((target("avx2,f16c,fma")))
static float dot_f16_avx2(const uint16_t *w, const float *x, int64_t n) {
    __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) {
        __m256 w0 = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(w + i)));
        __m256 w1 = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(w + i + 8)));
        acc0 = _mm256_fmadd_ps(w0, _mm256_loadu_ps(x + i), acc0);
        acc1 = _mm256_fmadd_ps(w1, _mm256_loadu_ps(x + i + 8), acc1);
    }
    __m256 s = _mm256_add_ps(acc0, acc1);
    __m128 h = _mm_add_ps(_mm256_castps256_ps128(s), _mm256_extractf128_ps(s, 1));
    h = _mm_add_ps(h, _mm_movehl_ps(h, h));
    h = _mm_add_ss(h, _mm_shuffle_ps(h, h, 1));
    float sum = _mm_cvtss_f32(h);
    for (; i < n; i++) sum += trit_fp16_to_fp32(w[i]) * x[i];
    return sum;
}
#endif

static float dot_f16_scalar(const uint16_t *w, const float *x, int64_t n) {
    float sum = 0.0f;
    for (int64_t i = 0; i < n; i++) sum += trit_fp16_to_fp32(w[i]) * x[i];
    return sum;
}

static float dot_bf16_scalar(const uint16_t *w, const float *x, int64_t n) {
    float sum = 0.0f;
    for (int64_t i = 0; i < n; i++) sum += trit_bf16_to_fp32(w[i]) * x[i];
    return sum;
}

/* One row dot product per (row, token), for machines without AVX-512 BW. */
static void dense_rows_portable(const struct trit_dense *m, const float *const *x, int nt, int64_t r0, int64_t r1,
                                float *const *out) {
    const int64_t n = m->n_cols;
    float (*dot16)(const uint16_t *, const float *, int64_t) = NULL;
    if (m->dtype == TRIT_DTYPE_F16) {
        dot16 = dot_f16_scalar;
#if defined(__x86_64__) && defined(__GNUC__)
        if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) /* every AVX2 + FMA CPU has F16C */
            dot16 = dot_f16_avx2;
#endif
    } else if (m->dtype == TRIT_DTYPE_BF16) {
        dot16 = dot_bf16_scalar;
    }
    for (int64_t r = r0; r < r1; r++)
        for (int t = 0; t < nt; t++) {
            if (dot16) out[t][r] = dot16((const uint16_t *)m->data + r * n, x[t], n);
            else out[t][r] = trit_dot_f32((const float *)m->data + r * n, x[t], n);
        }
}

#if defined(__x86_64__) && defined(__GNUC__)
#define DENSE_TARGET "avx512f,avx512bw,avx512vl"
#define DENSE_INLINE static inline __attribute__((always_inline, target(DENSE_TARGET)))

/* 16 weights from column i of a row, widened to fp32 in registers; masked lanes are 0. */
DENSE_INLINE __m512 dense_load(const void *row, int64_t i, __mmask16 mk, const enum trit_dtype DT) {
    if (DT == TRIT_DTYPE_F32) return _mm512_maskz_loadu_ps(mk, (const float *)row + i);
    const __m256i h = _mm256_maskz_loadu_epi16(mk, (const uint16_t *)row + i);
    if (DT == TRIT_DTYPE_F16) return _mm512_cvtph_ps(h);
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16)); /* bf16: the high half of fp32 */
}

/* out[t][0..4) = dot(row r + j, x[t]) for 4 rows and NT tokens: 16 accumulators, each weight vector
 * widened once for NT tokens. Every (row, token) sums the same FMAs in the same order whatever NT
 * is, so a token's logits do not depend on how many tokens share the call. */
DENSE_INLINE void dense_group(const void *const w[4], const float *const x[4], int64_t n, float out[4][4],
                              const int NT, const enum trit_dtype DT) {
    __m512 acc[4][4];
    for (int j = 0; j < 4; j++)
        for (int t = 0; t < NT; t++) acc[j][t] = _mm512_setzero_ps();
    for (int64_t i = 0; i < n; i += 16) {
        const __mmask16 mk = tail_mask16(n - i);
        __m512 wv[4];
        for (int j = 0; j < 4; j++) wv[j] = dense_load(w[j], i, mk, DT);
        for (int t = 0; t < NT; t++) {
            const __m512 xv = _mm512_maskz_loadu_ps(mk, x[t] + i);
            for (int j = 0; j < 4; j++) acc[j][t] = _mm512_fmadd_ps(wv[j], xv, acc[j][t]);
        }
    }
    for (int t = 0; t < NT; t++) _mm_storeu_ps(out[t], att_hsum4(acc[0][t], acc[1][t], acc[2][t], acc[3][t]));
}

DENSE_INLINE void dense_rows_dt(const struct trit_dense *m, const float *const *x, int nt, int64_t r0, int64_t r1,
                                float *const *out, const enum trit_dtype DT) {
    const int64_t n = m->n_cols, es = DT == TRIT_DTYPE_F32 ? 4 : 2;
    for (int64_t r = r0; r < r1; r += 4) {
        const void *w[4];
        for (int j = 0; j < 4; j++) /* rows past the end repeat the last one; their results are dropped */
            w[j] = (const char *)m->data + (r + j < m->n_rows ? r + j : m->n_rows - 1) * n * es;
        const int n_valid = r1 - r < 4 ? (int)(r1 - r) : 4;
        for (int t0 = 0; t0 < nt; t0 += 4) {
            float res[4][4];
            const float *xs[4] = {x[t0], x[t0], x[t0], x[t0]};
            for (int t = t0; t < nt && t < t0 + 4; t++) xs[t - t0] = x[t];
            switch (nt - t0 < 4 ? nt - t0 : 4) {
            case 1: dense_group(w, xs, n, res, 1, DT); break;
            case 2: dense_group(w, xs, n, res, 2, DT); break;
            case 3: dense_group(w, xs, n, res, 3, DT); break;
            default: dense_group(w, xs, n, res, 4, DT); break;
            }
            for (int t = t0; t < nt && t < t0 + 4; t++)
                for (int j = 0; j < n_valid; j++) out[t][r + j] = res[t - t0][j];
        }
    }
}

__attribute__((target(DENSE_TARGET)))
static void dense_rows_avx512(const struct trit_dense *m, const float *const *x, int nt, int64_t r0, int64_t r1,
                              float *const *out) {
    switch (m->dtype) {
    case TRIT_DTYPE_F32: dense_rows_dt(m, x, nt, r0, r1, out, TRIT_DTYPE_F32); break;
    case TRIT_DTYPE_F16: dense_rows_dt(m, x, nt, r0, r1, out, TRIT_DTYPE_F16); break;
    case TRIT_DTYPE_BF16: dense_rows_dt(m, x, nt, r0, r1, out, TRIT_DTYPE_BF16); break;
    }
}
#endif

/* out[t][r] = dot(row r, x[t]) for rows [r0, r1) and nt tokens. */
static void dense_rows(const struct trit_dense *m, const float *const *x, int nt, int64_t r0, int64_t r1,
                       float *const *out) {
#if defined(__x86_64__) && defined(__GNUC__)
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl")) {
        dense_rows_avx512(m, x, nt, r0, r1, out);
        return;
    }
#endif
    dense_rows_portable(m, x, nt, r0, r1, out);
}

void trit_dense_gemv_rows(const struct trit_dense *m, const float *x, int64_t r0, int64_t r1, float *logits) {
    dense_rows(m, &x, 1, r0, r1, &logits);
}

/* ---- the head over the pool: one contiguous range of rows per thread; with several tokens, blocks
 * of DENSE_BLOCK_BYTES of weights (they stay in L2 while every token goes past them), so the head
 * is read from memory once per call, not once per token. */
#define DENSE_BLOCK_BYTES (256 * 1024)
#define DENSE_MAX_TOK 64 /* tokens per pass over a block (pointer arrays on the stack) */

struct dense_job {
    const struct trit_dense *m;
    const float *x;
    int64_t ldx, n_x, n_tasks, block_rows;
    float *logits;
};

static void dense_task(void *ctx, int64_t task, int thread) {
    (void)thread;
    const struct dense_job *j = ctx;
    const int64_t n_groups = trit_div_ceil(j->m->n_rows, 4);
    const int64_t g0 = n_groups * task / j->n_tasks, g1 = n_groups * (task + 1) / j->n_tasks;
    const int64_t end = 4 * g1 < j->m->n_rows ? 4 * g1 : j->m->n_rows;
    for (int64_t r0 = 4 * g0; r0 < end; r0 += j->block_rows) {
        const int64_t r1 = r0 + j->block_rows < end ? r0 + j->block_rows : end;
        for (int64_t t0 = 0; t0 < j->n_x; t0 += DENSE_MAX_TOK) {
            const int nt = (int)(j->n_x - t0 < DENSE_MAX_TOK ? j->n_x - t0 : DENSE_MAX_TOK);
            const float *xs[DENSE_MAX_TOK];
            float *outs[DENSE_MAX_TOK];
            for (int t = 0; t < nt; t++) {
                xs[t] = j->x + (t0 + t) * j->ldx;
                outs[t] = j->logits + (t0 + t) * j->m->n_rows;
            }
            dense_rows(j->m, xs, nt, r0, r1, outs);
        }
    }
}

void trit_dense_logits(struct trit_pool *pool, const struct trit_dense *m, const float *x, int64_t n_x, int64_t ldx,
                       float *logits) {
    struct dense_job j = {.m = m, .x = x, .ldx = ldx, .n_x = n_x, .logits = logits};
    const int64_t row_bytes = m->n_cols * (m->dtype == TRIT_DTYPE_F32 ? 4 : 2);
    j.block_rows = n_x == 1 ? m->n_rows : (DENSE_BLOCK_BYTES / row_bytes) & ~(int64_t)3;
    if (j.block_rows < 4) j.block_rows = 4;
    const int64_t n_groups = trit_div_ceil(m->n_rows, 4);
    j.n_tasks = trit_pool_n_threads(pool) < n_groups ? trit_pool_n_threads(pool) : n_groups;
    trit_pool_parallel_for(pool, j.n_tasks, dense_task, &j);
}

/* ---- activation quantization ------------------------------------------------------------------
 * The reference (trit_quantize_row_i8) calls fmaxf and rintf per element, which baseline x86-64
 * code cannot inline (rintf needs SSE4.1's roundss). This is the same arithmetic on 16 lanes:
 * vmaxps(|x|, m) keeps m when |x| is NaN, as fmaxf does; vrndscaleps with imm 0 rounds half to
 * even like rintf in the default mode; s is computed by the same scalar expression. */

TRIT_CLONES
static float quantize_row_scalar(const float *x, int64_t k, int q_min, int8_t *q) {
    float amax = 0.0f;
    for (int64_t i = 0; i < k; i++) {
        const float a = fabsf(x[i]);
        if (a > amax) amax = a; /* false for NaN: fmaxf(amax, NaN) == amax */
    }
    const float s = TRIT_ACT_QMAX / fmaxf(amax, TRIT_ACT_EPS);
    const float lo = (float)q_min;
    for (int64_t i = 0; i < k; i++) {
        const float v = rintf(x[i] * s);
        q[i] = (int8_t)(v >= 127.0f ? 127 : v <= lo ? q_min : v == v ? (int)v : 0);
    }
    return s;
}

#if defined(__x86_64__) && defined(__GNUC__)
__attribute__((target("avx512f")))
static float quantize_row_avx512(const float *x, int64_t k, int q_min, int8_t *q) {
    __m512 m0 = _mm512_setzero_ps(), m1 = _mm512_setzero_ps();
    int64_t i = 0;
    for (; i + 32 <= k; i += 32) {
        m0 = _mm512_max_ps(_mm512_abs_ps(_mm512_loadu_ps(x + i)), m0);
        m1 = _mm512_max_ps(_mm512_abs_ps(_mm512_loadu_ps(x + i + 16)), m1);
    }
    for (; i < k; i += 16) {
        const __mmask16 mk = tail_mask16(k - i);
        m0 = _mm512_max_ps(_mm512_abs_ps(_mm512_maskz_loadu_ps(mk, x + i)), m0);
    }
    const float amax = _mm512_reduce_max_ps(_mm512_max_ps(m0, m1));
    const float s = TRIT_ACT_QMAX / fmaxf(amax, TRIT_ACT_EPS);
    const __m512 vs = _mm512_set1_ps(s), lo = _mm512_set1_ps((float)q_min), hi = _mm512_set1_ps(127.0f);
    for (i = 0; i < k; i += 16) {
        const __mmask16 mk = tail_mask16(k - i);
        const __m512 v = _mm512_roundscale_ps(_mm512_mul_ps(_mm512_maskz_loadu_ps(mk, x + i), vs),
                                              _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
        const __mmask16 ordered = _mm512_cmp_ps_mask(v, v, _CMP_ORD_Q);
        const __m512i iv = _mm512_maskz_cvtps_epi32(ordered, _mm512_min_ps(_mm512_max_ps(v, lo), hi));
        _mm512_mask_cvtepi32_storeu_epi8(q + i, mk, iv);
    }
    return s;
}
#endif

float trit_quantize_row_i8_fast(const float *x, int64_t k, int q_min, int8_t *q) {
#if defined(__x86_64__) && defined(__GNUC__)
    if (__builtin_cpu_supports("avx512f")) return quantize_row_avx512(x, k, q_min, q);
#endif
    return quantize_row_scalar(x, k, q_min, q);
}

void trit_quantize_rows_i8_fast(const float *x, int64_t m, int64_t k, int8_t *q, float *act_scale) {
    for (int64_t i = 0; i < m; i++) act_scale[i] = trit_quantize_row_i8_fast(x + i * k, k, -128, q + i * k);
}

/* ---- the input of a ternary matmul, threaded over token rows ------------------------------------- */

struct prepare_job {
    int64_t n;
    float *x;
    const float *up;
    enum trit_act act;
    const float *norm_w;
    float eps;
    float *y;
    int8_t *q;
    float *act_scale;
};

static void prepare_row(const struct prepare_job *j, int64_t b) {
    const float *cur = j->x + b * j->n;
    float *y = j->y + b * j->n;
    if (j->up) {
        if (y != cur) memcpy(y, cur, (size_t)j->n * sizeof(float));
        trit_gated_act_f32(y, j->up + b * j->n, j->n, j->act);
        cur = y;
    }
    if (j->norm_w) {
        trit_rmsnorm_f32(cur, j->norm_w, j->n, j->eps, y);
        cur = y;
    }
    j->act_scale[b] = trit_quantize_row_i8_fast(cur, j->n, -128, j->q + b * j->n);
}

static void prepare_task(void *ctx, int64_t task, int thread) {
    (void)thread;
    prepare_row(ctx, task);
}

void trit_prepare_matmul_input(struct trit_pool *pool, int64_t n_tok, int64_t n, float *x, const float *up,
                               enum trit_act act, const float *norm_w, float eps, float *y, int8_t *q,
                               float *act_scale) {
    struct prepare_job j = {.n = n, .x = x, .up = up, .act = act, .norm_w = norm_w, .eps = eps, .y = y, .q = q,
                            .act_scale = act_scale};
    if (n_tok == 1) prepare_row(&j, 0);
    else trit_pool_parallel_for(pool, n_tok, prepare_task, &j);
}
