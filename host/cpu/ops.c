/*
 * ops.c: fp32 operations of the CPU forward pass. See ops.h for shapes.
 *
 * Dispatch: every op runs the code of the active kernel family's vector level
 * (core/cpu_features.h: trit_cpu_vec_active), never the CPU's best when TRIT_CPU asks for less, so
 * that each level is what the tests of that family execute. Two kinds of code:
 *   - plain loops (dot, axpy, rmsnorm, the gated activations, the scalar quantizer) compiled three
 *     times from one body, for AVX-512, AVX2 + FMA and the baseline; reductions keep 16 independent
 *     partial sums, and floating-point contraction is off (CMakeLists.txt: -ffp-contract=off), so the
 *     three compilations give the same bits;
 *   - hand-vectorized kernels (quantization, attention, the dense LM head) in ops_simd.inc, written
 *     once against a small vector API and included below once for AVX-512 and once for AVX2.
 * Nothing here assumes an alignment beyond the element size: every vector load is unaligned.
 */
#include "cpu/ops.h"

#include <math.h>
#include <string.h>

#include "core/cpu_features.h"
#include "quant/quant.h"

#if defined(__x86_64__) && defined(__GNUC__)
#define OPS_X86 1
#include "cpu/simd_x86.h"
#define OPS_TARGET_AVX512 TRIT_TARGET_AVX512_STR
#define OPS_TARGET_AVX2 TRIT_TARGET_AVX2_STR
#endif

/* ---- one body, three compilations ----------------------------------------------------------------
 * OPS_VERSIONS(ret, name, params, args) defines ret name##_v(params) running name##_body (an
 * always-inline function) compiled for the active vector level. */
#define OPS_BODY static inline __attribute__((always_inline))
#ifdef OPS_X86
#define OPS_VERSIONS(ret, name, params, args)                                                      \
    __attribute__((target(OPS_TARGET_AVX512))) static ret name##_avx512 params { return name##_body args; } \
    __attribute__((target(OPS_TARGET_AVX2))) static ret name##_avx2 params { return name##_body args; }     \
    static ret name##_v params {                                                                   \
        switch (trit_cpu_vec_active()) {                                                           \
        case TRIT_CPU_VEC_AVX512: return name##_avx512 args;                                       \
        case TRIT_CPU_VEC_AVX2: return name##_avx2 args;                                           \
        default: return name##_body args;                                                          \
        }                                                                                          \
    }
#else
#define OPS_VERSIONS(ret, name, params, args)                                                      \
    static ret name##_v params { return name##_body args; }
#endif

#define LANES 16

/* The void ops return an int (ignored) so that one macro serves every body. */
OPS_BODY float dot_body(const float *a, const float *b, int64_t n) {
    float part[LANES] = {0};
    int64_t i = 0;
    for (; i + LANES <= n; i += LANES)
        for (int j = 0; j < LANES; j++) part[j] += a[i + j] * b[i + j];
    float sum = 0.0f;
    for (int j = 0; j < LANES; j++) sum += part[j];
    for (; i < n; i++) sum += a[i] * b[i];
    return sum;
}
OPS_VERSIONS(float, dot, (const float *a, const float *b, int64_t n), (a, b, n))
float trit_dot_f32(const float *a, const float *b, int64_t n) { return dot_v(a, b, n); }

OPS_BODY int axpy_body(float *y, float a, const float *x, int64_t n) {
    for (int64_t i = 0; i < n; i++) y[i] += a * x[i];
    return 0;
}
OPS_VERSIONS(int, axpy, (float *y, float a, const float *x, int64_t n), (y, a, x, n))
void trit_axpy_f32(float *y, float a, const float *x, int64_t n) { (void)axpy_v(y, a, x, n); }

OPS_BODY int add_body(float *y, const float *x, int64_t n) {
    for (int64_t i = 0; i < n; i++) y[i] += x[i];
    return 0;
}
OPS_VERSIONS(int, add, (float *y, const float *x, int64_t n), (y, x, n))
void trit_add_f32(float *y, const float *x, int64_t n) { (void)add_v(y, x, n); }

OPS_BODY int rmsnorm_body(const float *x, const float *w, int64_t n, float eps, float *y) {
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
    return 0;
}
OPS_VERSIONS(int, rmsnorm, (const float *x, const float *w, int64_t n, float eps, float *y), (x, w, n, eps, y))
void trit_rmsnorm_f32(const float *x, const float *w, int64_t n, float eps, float *y) { (void)rmsnorm_v(x, w, n, eps, y); }

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

OPS_BODY int gated_act_body(float *gate, const float *up, int64_t n, enum trit_act act) {
    if (act == TRIT_ACT_RELU2) {
        for (int64_t i = 0; i < n; i++) {
            const float r = gate[i] > 0.0f ? gate[i] : 0.0f;
            gate[i] = r * r * up[i];
        }
    } else if (act == TRIT_ACT_GELU_TANH) {
        /* torch's gelu(approximate="tanh") in its order: 0.5 x (1 + tanh(beta (x + kappa x^3))), fp32 */
        const float beta = 0.7978845608f, kappa = 0.044715f; /* beta = (float)(sqrt(2) * 2 / sqrt(pi) / 2) */
        for (int64_t i = 0; i < n; i++) {
            const float x = gate[i], inner = beta * (x + kappa * (x * x * x));
            gate[i] = 0.5f * x * (1.0f + tanhf(inner)) * up[i];
        }
    } else {
        for (int64_t i = 0; i < n; i++) gate[i] = gate[i] / (1.0f + expf(-gate[i])) * up[i];
    }
    return 0;
}
OPS_VERSIONS(int, gated_act, (float *gate, const float *up, int64_t n, enum trit_act act), (gate, up, n, act))
#ifdef OPS_X86
static void relu2_gate_avx512(float *gate, const float *up, int64_t n);
static void relu2_gate_avx2(float *gate, const float *up, int64_t n);
static void silu_gate_avx512(float *gate, const float *up, int64_t n);
static void silu_gate_avx2(float *gate, const float *up, int64_t n);
#endif
/* ReLU^2 gives the body's bits at every level; SiLU's vector exp is within a few ulp of libm's
 * (ops_simd.inc). */
void trit_gated_act_f32(float *gate, const float *up, int64_t n, enum trit_act act) {
#ifdef OPS_X86
    if (act == TRIT_ACT_GELU_TANH) { /* libm's tanhf at every level: no vector version yet */
        (void)gated_act_v(gate, up, n, act);
        return;
    }
    const bool relu2 = act == TRIT_ACT_RELU2;
    switch (trit_cpu_vec_active()) {
    case TRIT_CPU_VEC_AVX512: relu2 ? relu2_gate_avx512(gate, up, n) : silu_gate_avx512(gate, up, n); return;
    case TRIT_CPU_VEC_AVX2: relu2 ? relu2_gate_avx2(gate, up, n) : silu_gate_avx2(gate, up, n); return;
    default: break;
    }
#endif
    (void)gated_act_v(gate, up, n, act);
}

/* ---- attention ---------------------------------------------------------------------------------
 * trit_attention_f32_ref: two passes per head (scores, softmax, weighted sum of V), the
 * specification. trit_attention_f32: one pass over the cache in blocks of ATT_BLOCK positions
 * with a running max and sum (online softmax), all query heads that share a KV head together, so
 * each K and V row is loaded once per group of up to 4 heads (ops_simd.inc); AVX-512 when
 * head_dim % 16 == 0, AVX2 when head_dim % 8 == 0, else the reference. The two differ by fp32
 * rounding only (test_cpu_ops.c bounds it). */

/* Position t's row of a cache: contiguous (blocks NULL), or in block blocks[t / TRIT_KV_BLOCK] of a pool. */
static inline int64_t kv_row(const int32_t *blocks, int64_t block_stride, int64_t kv_stride, int64_t t) {
    return blocks ? blocks[t / TRIT_KV_BLOCK] * block_stride + t % TRIT_KV_BLOCK * kv_stride : t * kv_stride;
}

static void attention_ref(const float *q, const float *k, const float *v, const int32_t *blocks, int64_t block_stride,
                          int64_t t_begin, int64_t n_pos, float scale, int64_t n_heads, int64_t n_kv_heads, int64_t head_dim,
                          int64_t kv_stride, float *scores, float *out, int64_t head_begin, int64_t head_end) {
    const int64_t group = n_heads / n_kv_heads;
    for (int64_t h = head_begin; h < head_end; h++) {
        const float *qh = q + h * head_dim;
        const int64_t g = h / group;
        float max_s = -INFINITY;
        for (int64_t t = t_begin; t < n_pos; t++) {
            const float s = trit_dot_f32(qh, k + kv_row(blocks, block_stride, kv_stride, t) + g * head_dim, head_dim) * scale;
            scores[t] = s;
            if (s > max_s) max_s = s;
        }
        float sum = 0.0f;
        for (int64_t t = t_begin; t < n_pos; t++) {
            scores[t] = expf(scores[t] - max_s);
            sum += scores[t];
        }
        const float inv = 1.0f / sum;
        float *oh = out + h * head_dim;
        memset(oh, 0, (size_t)head_dim * sizeof(float));
        for (int64_t t = t_begin; t < n_pos; t++)
            trit_axpy_f32(oh, scores[t] * inv, v + kv_row(blocks, block_stride, kv_stride, t) + g * head_dim, head_dim);
    }
}

void trit_attention_f32_ref(const float *q, const float *k, const float *v, int64_t n_pos, int64_t n_heads,
                            int64_t n_kv_heads, int64_t head_dim, int64_t kv_stride, float *scores, float *out,
                            int64_t head_begin, int64_t head_end) {
    attention_ref(q, k, v, NULL, 0, 0, n_pos, 1.0f / sqrtf((float)head_dim), n_heads, n_kv_heads, head_dim, kv_stride,
                  scores, out, head_begin, head_end);
}

#define ATT_BLOCK 64 /* positions per online-softmax block: scores of 4 heads fit 1 KB */
/* A block of the paged cache is one online-softmax block: the positions of one step are contiguous, and
 * a sequence's result is the same whether its cache is contiguous or paged. */
_Static_assert(ATT_BLOCK == TRIT_KV_BLOCK, "a KV block must hold one attention block");

/* ---- the dense LM head ---------------------------------------------------------------------------
 * The head is the largest single stream at decode (2B-4T: 657 MB of fp16 per token), so the
 * fp16/bf16 rows are widened in registers, never copied to fp32 in memory. The portable path below
 * (the baseline level) is a plain dot product per (row, token). */

#define DENSE_MAX_TOK 64 /* tokens per pass over a block of rows (arrays on the stack) */
/* Columns widened at a time by the portable path: a row is converted once per call, in chunks of
 * this many columns, and every token of the call takes its dot product with the chunk. */
#define DENSE_BASE_CHUNK 256

static void dense_rows_base(const struct trit_dense *m, const float *const *x, int nt, int64_t r0, int64_t r1,
                            float *const *out) {
    const int64_t n = m->n_cols;
    for (int64_t r = r0; r < r1; r++) {
        float acc[DENSE_MAX_TOK] = {0};
        for (int64_t c0 = 0; c0 < n; c0 += DENSE_BASE_CHUNK) {
            const int64_t len = n - c0 < DENSE_BASE_CHUNK ? n - c0 : DENSE_BASE_CHUNK;
            float wbuf[DENSE_BASE_CHUNK];
            const float *w = wbuf;
            if (m->dtype == TRIT_DTYPE_F32) {
                w = (const float *)m->data + r * n + c0;
            } else {
                const uint16_t *src = (const uint16_t *)m->data + r * n + c0;
                if (m->dtype == TRIT_DTYPE_BF16)
                    for (int64_t i = 0; i < len; i++) {
                        const uint32_t bits = (uint32_t)src[i] << 16;
                        memcpy(&wbuf[i], &bits, sizeof bits);
                    }
                else
                    for (int64_t i = 0; i < len; i++) wbuf[i] = trit_fp16_to_fp32(src[i]);
            }
            for (int t = 0; t < nt; t++) acc[t] += dot_body(w, x[t] + c0, len);
        }
        for (int t = 0; t < nt; t++) out[t][r] = acc[t];
    }
}

/* ---- activation quantization ------------------------------------------------------------------
 * The reference (trit_quantize_row_i8) calls fmaxf and rintf per element, which baseline x86-64
 * code cannot inline (rintf needs SSE4.1's roundss). The vector versions (ops_simd.inc) are the
 * same arithmetic on W lanes: vmaxps(|x|, m) keeps m when |x| is NaN, as fmaxf does; the rounding
 * instruction with "nearest" rounds half to even like rintf in the default mode; s is computed by
 * the same scalar expression. */

OPS_BODY float quantize_row_body(const float *x, int64_t k, int q_min, int8_t *q) {
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

/* ---- the vector levels of ops_simd.inc -------------------------------------------------------- */
#ifdef OPS_X86

/* The API's names, each level's own function: vzero is vzero_avx512 or vzero_avx2 per SFX. */
#define vzero SFX(vzero)
#define vset1 SFX(vset1)
#define vload SFX(vload)
#define vstore SFX(vstore)
#define vloadn SFX(vloadn)
#define vloadn_fill SFX(vloadn_fill)
#define vstoren SFX(vstoren)
#define vload16n SFX(vload16n)
#define vadd SFX(vadd)
#define vsub SFX(vsub)
#define vmul SFX(vmul)
#define vdiv SFX(vdiv)
#define vmax SFX(vmax)
#define vmin SFX(vmin)
#define vabs SFX(vabs)
#define vfmadd SFX(vfmadd)
#define vround SFX(vround)
#define vand_ordered SFX(vand_ordered)
#define vreduce_add SFX(vreduce_add)
#define vreduce_max SFX(vreduce_max)
#define vmul_pow2 SFX(vmul_pow2)
#define vhsum4 SFX(vhsum4)
#define vstore_i8n SFX(vstore_i8n)

/* -- AVX-512: 16 floats; masked loads and stores for tails -- */
#define W 16
#define V __m512
#define SFX(name) name##_avx512
#define V_FN static inline __attribute__((always_inline, target(OPS_TARGET_AVX512)))
#define V_ENTRY static __attribute__((target(OPS_TARGET_AVX512)))
#define ATT_NV 4    /* 4 heads x 4 vectors = 16 accumulators of 32 ZMM */
#define DENSE_TOK 4 /* 4 rows x 4 tokens = 16 accumulators */
V_FN __mmask16 mask16(int64_t n) { return (__mmask16)((1u << n) - 1u); } /* n < 16 */
V_FN V vzero(void) { return _mm512_setzero_ps(); }
V_FN V vset1(float f) { return _mm512_set1_ps(f); }
V_FN V vload(const float *p) { return _mm512_loadu_ps(p); }
V_FN void vstore(float *p, V v) { _mm512_storeu_ps(p, v); }
V_FN V vloadn(const float *p, int64_t n) { return _mm512_maskz_loadu_ps(mask16(n), p); }
V_FN V vloadn_fill(const float *p, int64_t n, float f) { return _mm512_mask_loadu_ps(_mm512_set1_ps(f), mask16(n), p); }
V_FN void vstoren(float *p, V v, int64_t n) { _mm512_mask_storeu_ps(p, mask16(n), v); }
V_FN V vload16n(const void *p, int64_t n, enum trit_dtype dt) {
    const __m256i h = n == 16 ? _mm256_loadu_si256((const __m256i *)p) : _mm256_maskz_loadu_epi16(mask16(n), p);
    if (dt == TRIT_DTYPE_F16) return _mm512_cvtph_ps(h);
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16)); /* bf16: the high half of fp32 */
}
V_FN V vadd(V a, V b) { return _mm512_add_ps(a, b); }
V_FN V vsub(V a, V b) { return _mm512_sub_ps(a, b); }
V_FN V vmul(V a, V b) { return _mm512_mul_ps(a, b); }
V_FN V vdiv(V a, V b) { return _mm512_div_ps(a, b); }
V_FN V vmax(V a, V b) { return _mm512_max_ps(a, b); }
V_FN V vmin(V a, V b) { return _mm512_min_ps(a, b); }
V_FN V vabs(V a) { return _mm512_abs_ps(a); }
V_FN V vfmadd(V a, V b, V c) { return _mm512_fmadd_ps(a, b, c); }
V_FN V vround(V a) { return _mm512_roundscale_ps(a, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC); }
V_FN V vand_ordered(V a, V b) { return _mm512_maskz_mov_ps(_mm512_cmp_ps_mask(b, b, _CMP_ORD_Q), a); }
V_FN float vreduce_add(V a) { return _mm512_reduce_add_ps(a); }
V_FN float vreduce_max(V a) { return _mm512_reduce_max_ps(a); }
/* vscalefps multiplies by 2^n, rounding once, down to 0 for n < -149. */
V_FN V vmul_pow2(V p, V n) { return _mm512_scalef_ps(p, n); }
V_FN __m128 vhsum4(V a, V b, V c, V d) {
    /* per 128-bit lane: [a0+a2, b0+b2, a1+a3, b1+b3] and the same for c, d */
    const __m512 ab = _mm512_add_ps(_mm512_unpacklo_ps(a, b), _mm512_unpackhi_ps(a, b));
    const __m512 cd = _mm512_add_ps(_mm512_unpacklo_ps(c, d), _mm512_unpackhi_ps(c, d));
    /* per 128-bit lane: [a, b, c, d] partial sums */
    const __m512 abcd = _mm512_add_ps(_mm512_shuffle_ps(ab, cd, 0x44), _mm512_shuffle_ps(ab, cd, 0xEE));
    const __m256 h = _mm256_add_ps(_mm512_castps512_ps256(abcd),
                                   _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(abcd), 1)));
    return _mm_add_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps(h, 1));
}
V_FN void vstore_i8n(int8_t *q, V v, int64_t n) {
    _mm512_mask_cvtepi32_storeu_epi8(q, n == 16 ? (__mmask16)0xFFFF : mask16(n), _mm512_cvtps_epi32(v));
}
#include "cpu/ops_simd.inc"
#undef W
#undef V
#undef SFX
#undef V_FN
#undef V_ENTRY
#undef ATT_NV
#undef DENSE_TOK

/* -- AVX2 + FMA + F16C: 8 floats; vmaskmovps for float tails, a zero-padded copy for 16-bit ones -- */
#define W 8
#define V __m256
#define SFX(name) name##_avx2
#define V_FN static inline __attribute__((always_inline, target(OPS_TARGET_AVX2)))
#define V_ENTRY static __attribute__((target(OPS_TARGET_AVX2)))
#define ATT_NV 2    /* 4 heads x 2 vectors = 8 accumulators of 16 YMM */
#define DENSE_TOK 2 /* 4 rows x 2 tokens = 8 accumulators + 4 weight vectors */
V_FN __m256i mask8(int64_t n) { /* lanes below n set, n < 8 */
    return _mm256_cmpgt_epi32(_mm256_set1_epi32((int)n), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}
V_FN V vzero(void) { return _mm256_setzero_ps(); }
V_FN V vset1(float f) { return _mm256_set1_ps(f); }
V_FN V vload(const float *p) { return _mm256_loadu_ps(p); }
V_FN void vstore(float *p, V v) { _mm256_storeu_ps(p, v); }
V_FN V vloadn(const float *p, int64_t n) { return _mm256_maskload_ps(p, mask8(n)); }
V_FN V vloadn_fill(const float *p, int64_t n, float f) {
    const __m256i mk = mask8(n);
    return _mm256_blendv_ps(_mm256_set1_ps(f), _mm256_maskload_ps(p, mk), _mm256_castsi256_ps(mk));
}
V_FN void vstoren(float *p, V v, int64_t n) { _mm256_maskstore_ps(p, mask8(n), v); }
V_FN V vload16n(const void *p, int64_t n, enum trit_dtype dt) {
    __m128i h;
    if (n == 8) {
        h = _mm_loadu_si128((const __m128i *)p);
    } else {
        uint16_t tmp[8] = {0};
        memcpy(tmp, p, (size_t)n * 2);
        h = _mm_loadu_si128((const __m128i *)tmp);
    }
    if (dt == TRIT_DTYPE_F16) return _mm256_cvtph_ps(h);
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
}
V_FN V vadd(V a, V b) { return _mm256_add_ps(a, b); }
V_FN V vsub(V a, V b) { return _mm256_sub_ps(a, b); }
V_FN V vmul(V a, V b) { return _mm256_mul_ps(a, b); }
V_FN V vdiv(V a, V b) { return _mm256_div_ps(a, b); }
V_FN V vmax(V a, V b) { return _mm256_max_ps(a, b); }
V_FN V vmin(V a, V b) { return _mm256_min_ps(a, b); }
V_FN V vabs(V a) { return _mm256_andnot_ps(_mm256_set1_ps(-0.0f), a); }
V_FN V vfmadd(V a, V b, V c) { return _mm256_fmadd_ps(a, b, c); }
V_FN V vround(V a) { return _mm256_round_ps(a, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC); }
V_FN V vand_ordered(V a, V b) { return _mm256_and_ps(a, _mm256_cmp_ps(b, b, _CMP_ORD_Q)); }
V_FN float vreduce_add(V a) {
    __m128 h = _mm_add_ps(_mm256_castps256_ps128(a), _mm256_extractf128_ps(a, 1));
    h = _mm_add_ps(h, _mm_movehl_ps(h, h));
    return _mm_cvtss_f32(_mm_add_ss(h, _mm_shuffle_ps(h, h, 1)));
}
V_FN float vreduce_max(V a) {
    __m128 h = _mm_max_ps(_mm256_castps256_ps128(a), _mm256_extractf128_ps(a, 1));
    h = _mm_max_ps(h, _mm_movehl_ps(h, h));
    return _mm_cvtss_f32(_mm_max_ss(h, _mm_shuffle_ps(h, h, 1)));
}
/* p * 2^n for integral n in [-150, 0]: 2^n as two factors 2^(n - h) and 2^h, h = floor(n / 2), each
 * a normal number built in the exponent field; p * 2^(n - h) is exact (p is near 1), so the product
 * rounds once, to the denormal it should be, as vscalefps does. */
V_FN V vmul_pow2(V p, V n) {
    const __m256i ni = _mm256_cvtps_epi32(n), h = _mm256_srai_epi32(ni, 1), l = _mm256_sub_epi32(ni, h);
    const __m256 fh = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(h, _mm256_set1_epi32(127)), 23));
    const __m256 fl = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(l, _mm256_set1_epi32(127)), 23));
    return _mm256_mul_ps(_mm256_mul_ps(p, fl), fh);
}
V_FN __m128 vhsum4(V a, V b, V c, V d) {
    const __m256 abcd = _mm256_hadd_ps(_mm256_hadd_ps(a, b), _mm256_hadd_ps(c, d));
    return _mm_add_ps(_mm256_castps256_ps128(abcd), _mm256_extractf128_ps(abcd, 1));
}
V_FN void vstore_i8n(int8_t *q, V v, int64_t n) {
    const __m256i i32 = _mm256_cvtps_epi32(v);
    const __m128i i16 = _mm_packs_epi32(_mm256_castsi256_si128(i32), _mm256_extracti128_si256(i32, 1));
    const __m128i i8 = _mm_packs_epi16(i16, i16);
    if (n == 8) {
        _mm_storel_epi64((__m128i *)q, i8);
    } else {
        int8_t tmp[16];
        _mm_storeu_si128((__m128i *)tmp, i8);
        memcpy(q, tmp, (size_t)n);
    }
}
#include "cpu/ops_simd.inc"
#undef W
#undef V
#undef SFX
#undef V_FN
#undef V_ENTRY
#undef ATT_NV
#undef DENSE_TOK
#endif /* OPS_X86 */

/* ---- dispatch ----------------------------------------------------------------------------------- */

void trit_attention_f32_window(const float *q, const float *k, const float *v, const int32_t *blocks,
                               int64_t block_stride, int64_t t_begin, int64_t n_pos, float scale, int64_t n_heads,
                               int64_t n_kv_heads, int64_t head_dim, int64_t kv_stride, float *scores, float *out,
                               int64_t head_begin, int64_t head_end) {
#ifdef OPS_X86
    switch (trit_cpu_vec_active()) {
    case TRIT_CPU_VEC_AVX512:
        if (head_dim % 16 != 0) break;
        attention_avx512(q, k, v, blocks, block_stride, t_begin, n_pos, scale, n_heads, n_kv_heads, head_dim, kv_stride,
                         out, head_begin, head_end);
        return;
    case TRIT_CPU_VEC_AVX2:
        if (head_dim % 8 != 0) break;
        attention_avx2(q, k, v, blocks, block_stride, t_begin, n_pos, scale, n_heads, n_kv_heads, head_dim, kv_stride,
                       out, head_begin, head_end);
        return;
    default: break;
    }
#endif
    attention_ref(q, k, v, blocks, block_stride, t_begin, n_pos, scale, n_heads, n_kv_heads, head_dim, kv_stride, scores,
                  out, head_begin, head_end);
}

void trit_attention_f32_paged(const float *q, const float *k, const float *v, const int32_t *blocks,
                              int64_t block_stride, int64_t n_pos, int64_t n_heads, int64_t n_kv_heads,
                              int64_t head_dim, int64_t kv_stride, float *scores, float *out, int64_t head_begin,
                              int64_t head_end) {
    trit_attention_f32_window(q, k, v, blocks, block_stride, 0, n_pos, 1.0f / sqrtf((float)head_dim), n_heads,
                              n_kv_heads, head_dim, kv_stride, scores, out, head_begin, head_end);
}

void trit_attention_f32(const float *q, const float *k, const float *v, int64_t n_pos, int64_t n_heads,
                        int64_t n_kv_heads, int64_t head_dim, int64_t kv_stride, float *scores, float *out,
                        int64_t head_begin, int64_t head_end) {
    trit_attention_f32_paged(q, k, v, NULL, 0, n_pos, n_heads, n_kv_heads, head_dim, kv_stride, scores, out,
                             head_begin, head_end);
}

/* out[t][r] = dot(row r, x[t]) for rows [r0, r1) and nt tokens. */
static void dense_rows(const struct trit_dense *m, const float *const *x, int nt, int64_t r0, int64_t r1,
                       float *const *out) {
#ifdef OPS_X86
    switch (trit_cpu_vec_active()) {
    case TRIT_CPU_VEC_AVX512: dense_rows_avx512(m, x, nt, r0, r1, out); return;
    case TRIT_CPU_VEC_AVX2: dense_rows_avx2(m, x, nt, r0, r1, out); return;
    default: break;
    }
#endif
    dense_rows_base(m, x, nt, r0, r1, out);
}

void trit_dense_row_f32_fast(const struct trit_dense *m, int64_t r, float *dst) {
#ifdef OPS_X86
    if (m->dtype != TRIT_DTYPE_F32) {
        switch (trit_cpu_vec_active()) {
        case TRIT_CPU_VEC_AVX512: dense_row_f32_avx512(m, r, dst); return;
        case TRIT_CPU_VEC_AVX2: dense_row_f32_avx2(m, r, dst); return;
        default: break;
        }
    }
#endif
    trit_dense_row_f32(m, r, dst);
}

float trit_quantize_row_i8_fast(const float *x, int64_t k, int q_min, int8_t *q) {
#ifdef OPS_X86
    switch (trit_cpu_vec_active()) {
    case TRIT_CPU_VEC_AVX512: return quantize_row_avx512(x, k, q_min, q);
    case TRIT_CPU_VEC_AVX2: return quantize_row_avx2(x, k, q_min, q);
    default: break;
    }
#endif
    return quantize_row_body(x, k, q_min, q);
}

void trit_quantize_rows_i8_fast(const float *x, int64_t m, int64_t k, int8_t *q, float *act_scale) {
    for (int64_t i = 0; i < m; i++) act_scale[i] = trit_quantize_row_i8_fast(x + i * k, k, -128, q + i * k);
}

void trit_dense_gemv_rows(const struct trit_dense *m, const float *x, int64_t r0, int64_t r1, float *logits) {
    dense_rows(m, &x, 1, r0, r1, &logits);
}

/* ---- the head over the pool: one contiguous range of rows per thread; with several tokens, blocks
 * of DENSE_BLOCK_BYTES of weights (they stay in L2 while every token goes past them), so the head
 * is read from memory once per call, not once per token. */
#define DENSE_BLOCK_BYTES (256 * 1024)

struct dense_job {
    const struct trit_dense *m;
    const float *x;
    int64_t ldx, ldy, n_x, n_tasks, block_rows;
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
                outs[t] = j->logits + (t0 + t) * j->ldy;
            }
            dense_rows(j->m, xs, nt, r0, r1, outs);
        }
    }
}

void trit_dense_logits(struct trit_pool *pool, const struct trit_dense *m, const float *x, int64_t n_x, int64_t ldx,
                       int64_t ldy, float *logits) {
    struct dense_job j = {.m = m, .x = x, .ldx = ldx, .ldy = ldy, .n_x = n_x, .logits = logits};
    const int64_t row_bytes = m->n_cols * (m->dtype == TRIT_DTYPE_F32 ? 4 : 2);
    j.block_rows = n_x == 1 ? m->n_rows : (DENSE_BLOCK_BYTES / row_bytes) & ~(int64_t)3;
    if (j.block_rows < 4) j.block_rows = 4;
    const int64_t n_groups = trit_div_ceil(m->n_rows, 4);
    j.n_tasks = trit_pool_n_threads(pool) < n_groups ? trit_pool_n_threads(pool) : n_groups;
    trit_pool_parallel_for(pool, j.n_tasks, dense_task, &j);
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
    int64_t act_block;
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
    if (j->act_block <= 0) {
        j->act_scale[b] = trit_quantize_row_i8_fast(cur, j->n, -128, j->q + b * j->n);
        return;
    }
    /* block quantization: trit_quantize_row_i8_blocks, vectorized block by block */
    float *s = j->act_scale + b * trit_div_ceil(j->n, j->act_block);
    for (int64_t c = 0; c < j->n; c += j->act_block)
        *s++ = trit_quantize_row_i8_fast(cur + c, j->n - c < j->act_block ? j->n - c : j->act_block, -128,
                                         j->q + b * j->n + c);
}

static void prepare_task(void *ctx, int64_t task, int thread) {
    (void)thread;
    prepare_row(ctx, task);
}

void trit_prepare_matmul_input(struct trit_pool *pool, int64_t n_tok, int64_t n, float *x, const float *up,
                               enum trit_act act, const float *norm_w, float eps, float *y, int8_t *q,
                               int64_t act_block, float *act_scale) {
    struct prepare_job j = {.n = n, .x = x, .up = up, .act = act, .norm_w = norm_w, .eps = eps, .y = y, .q = q,
                            .act_scale = act_scale, .act_block = act_block};
    if (n_tok == 1) prepare_row(&j, 0);
    else trit_pool_parallel_for(pool, n_tok, prepare_task, &j);
}
