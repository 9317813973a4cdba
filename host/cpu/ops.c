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

void trit_attention_f32(const float *q, const float *k, const float *v, int64_t n_pos, int64_t n_heads,
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

/* ---- dense LM head ----------------------------------------------------------------------------
 * The head is the largest single stream at decode (2B-4T: 657 MB of fp16 per token), so the
 * fp16/bf16 rows are widened in registers, never copied to fp32 in memory. */

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>

__attribute__((target("avx512f")))
static float dot_f16_avx512(const uint16_t *w, const float *x, int64_t n) {
    __m512 acc0 = _mm512_setzero_ps(), acc1 = _mm512_setzero_ps();
    int64_t i = 0;
    for (; i + 32 <= n; i += 32) {
        __m512 w0 = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(w + i)));
        __m512 w1 = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(w + i + 16)));
        acc0 = _mm512_fmadd_ps(w0, _mm512_loadu_ps(x + i), acc0);
        acc1 = _mm512_fmadd_ps(w1, _mm512_loadu_ps(x + i + 16), acc1);
    }
    float sum = _mm512_reduce_add_ps(_mm512_add_ps(acc0, acc1));
    for (; i < n; i++) sum += trit_fp16_to_fp32(w[i]) * x[i];
    return sum;
}

__attribute__((target("avx512f")))
static float dot_bf16_avx512(const uint16_t *w, const float *x, int64_t n) {
    __m512 acc0 = _mm512_setzero_ps(), acc1 = _mm512_setzero_ps();
    int64_t i = 0;
    for (; i + 32 <= n; i += 32) {
        __m512i a = _mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm256_loadu_si256((const __m256i *)(w + i))), 16);
        __m512i b = _mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm256_loadu_si256((const __m256i *)(w + i + 16))), 16);
        acc0 = _mm512_fmadd_ps(_mm512_castsi512_ps(a), _mm512_loadu_ps(x + i), acc0);
        acc1 = _mm512_fmadd_ps(_mm512_castsi512_ps(b), _mm512_loadu_ps(x + i + 16), acc1);
    }
    float sum = _mm512_reduce_add_ps(_mm512_add_ps(acc0, acc1));
    for (; i < n; i++) sum += trit_bf16_to_fp32(w[i]) * x[i];
    return sum;
}

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

void trit_dense_gemv_rows(const struct trit_dense *m, const float *x, int64_t r0, int64_t r1, float *logits) {
    const int64_t n = m->n_cols;
    float (*dot16)(const uint16_t *, const float *, int64_t) = NULL;
    if (m->dtype == TRIT_DTYPE_F16) {
        dot16 = dot_f16_scalar;
#if defined(__x86_64__) && defined(__GNUC__)
        if (__builtin_cpu_supports("avx512f")) dot16 = dot_f16_avx512;
        else if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) /* every AVX2 + FMA CPU has F16C */
            dot16 = dot_f16_avx2;
#endif
    } else if (m->dtype == TRIT_DTYPE_BF16) {
        dot16 = dot_bf16_scalar;
#if defined(__x86_64__) && defined(__GNUC__)
        if (__builtin_cpu_supports("avx512f")) dot16 = dot_bf16_avx512;
#endif
    }
    for (int64_t r = r0; r < r1; r++) {
        if (dot16) logits[r] = dot16((const uint16_t *)m->data + r * n, x, n);
        else logits[r] = trit_dot_f32((const float *)m->data + r * n, x, n);
    }
}
