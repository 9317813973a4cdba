/*
 * ternarize.c: the canonical ternary tensor (init, free, equal), weight ternarization (absmean,
 * per tensor or per column block), recovery of an already-ternary float tensor, and per-token
 * int8 activation quantization. The numerics are the contract in quant.h / docs/design.md section 3.
 */
#include <math.h>
#include <string.h>

#include "quant/quant.h"

/* ---- canonical tensor ------------------------------------------------------------------------- */

enum trit_status trit_ternary_init(struct trit_ternary *w, int64_t n_rows, int64_t n_cols) {
    if (!w) return trit_error(TRIT_ERR_INVALID_ARG, "trit_ternary_init: NULL tensor");
    memset(w, 0, sizeof *w);
    if (n_rows <= 0 || n_cols <= 0)
        return trit_error(TRIT_ERR_INVALID_ARG, "trit_ternary_init: bad shape %lld x %lld",
                          (long long)n_rows, (long long)n_cols);
    int64_t row_bytes = trit_div_ceil(n_cols, 4), n_bytes;
    if (!trit_mul_i64(n_rows, row_bytes, &n_bytes) || (uint64_t)n_bytes > SIZE_MAX)
        return trit_error(TRIT_ERR_INVALID_ARG, "trit_ternary_init: %lld x %lld overflows",
                          (long long)n_rows, (long long)n_cols);
    uint8_t *codes = trit_alloc((size_t)n_bytes);
    if (!codes)
        return trit_error(TRIT_ERR_OUT_OF_MEMORY, "trit_ternary_init: %lld bytes", (long long)n_bytes);
    memset(codes, 0x55, (size_t)n_bytes); /* 0b01010101: four zero codes per byte */
    w->n_rows = n_rows;
    w->n_cols = n_cols;
    w->row_bytes = row_bytes;
    w->codes = codes;
    w->scale = 1.0f;
    w->scale_kind = TRIT_SCALE_MUL;
    return TRIT_OK;
}

enum trit_status trit_ternary_init_grouped(struct trit_ternary *w, int64_t n_rows, int64_t n_cols, int64_t group) {
    if (!w) return trit_error(TRIT_ERR_INVALID_ARG, "trit_ternary_init_grouped: NULL tensor");
    memset(w, 0, sizeof *w);
    if (group <= 0 || group % TRIT_GROUP_UNIT != 0)
        return trit_error(TRIT_ERR_INVALID_ARG, "trit_ternary_init_grouped: group %lld is not a positive multiple of %d",
                          (long long)group, TRIT_GROUP_UNIT);
    TRIT_TRY(trit_ternary_init(w, n_rows, n_cols));
    int64_t n_scales;
    if (!trit_mul_i64(n_rows, trit_div_ceil(n_cols, group), &n_scales) ||
        (uint64_t)n_scales > SIZE_MAX / sizeof(float)) {
        trit_ternary_free(w);
        return trit_error(TRIT_ERR_INVALID_ARG, "trit_ternary_init_grouped: %lld x %lld overflows", (long long)n_rows,
                          (long long)n_cols);
    }
    float *d = trit_alloc((size_t)n_scales * sizeof(float));
    if (!d) {
        trit_ternary_free(w);
        return trit_error(TRIT_ERR_OUT_OF_MEMORY, "trit_ternary_init_grouped: %lld group scales", (long long)n_scales);
    }
    for (int64_t i = 0; i < n_scales; i++) d[i] = 1.0f;
    w->group = group;
    w->group_scales = d;
    return TRIT_OK;
}

void trit_ternary_free(struct trit_ternary *w) {
    if (!w) return;
    trit_free(w->codes);
    trit_free(w->group_scales);
    memset(w, 0, sizeof *w);
}

bool trit_ternary_equal(const struct trit_ternary *a, const struct trit_ternary *b) {
    if (a->n_rows != b->n_rows || a->n_cols != b->n_cols || a->row_bytes != b->row_bytes) return false;
    if (a->scale_kind != b->scale_kind || memcmp(&a->scale, &b->scale, sizeof a->scale) != 0) return false;
    if (a->group != b->group) return false;
    if (!a->codes || !b->codes) return a->codes == b->codes;
    if (a->group > 0 && (!a->group_scales || !b->group_scales ||
                         memcmp(a->group_scales, b->group_scales,
                                (size_t)(a->n_rows * trit_ternary_n_groups(a)) * sizeof(float)) != 0))
        return false;
    return memcmp(a->codes, b->codes, (size_t)(a->n_rows * a->row_bytes)) == 0;
}

/* ---- ternarization ---------------------------------------------------------------------------- */

/* Sum of |x| over the block x[r][c0..c1) of a row-major matrix with row stride ld, in double. */
static double abs_sum_block(const float *x, int64_t n_rows, int64_t ld, int64_t c0, int64_t c1) {
    double sum = 0.0;
    for (int64_t r = 0; r < n_rows; r++)
        for (int64_t c = c0; c < c1; c++) sum += fabs((double)x[r * ld + c]);
    return sum;
}

static float absmean_from_sum(double sum, int64_t n) {
    float mean = n > 0 ? (float)(sum / (double)n) : 0.0f;
    return fmaxf(mean, TRIT_WEIGHT_EPS);
}

float trit_absmean(const float *x, int64_t n) { return absmean_from_sum(abs_sum_block(x, 1, n, 0, n), n); }

/* t = clamp(rint(v / alpha), -1, 1), compared in float so that a huge quotient cannot overflow an
 * int conversion. v is finite and alpha >= 1e-5 (callers check). */
static int ternary_of(float v, float alpha) {
    float r = rintf(v / alpha);
    return r >= 1.0f ? 1 : r <= -1.0f ? -1 : 0;
}

enum trit_status trit_ternarize_cols(const float *w, int64_t n_rows, int64_t n_cols, int64_t c0,
                                     int64_t c1, struct trit_ternary *out) {
    if (!out) return trit_error(TRIT_ERR_INVALID_ARG, "trit_ternarize: NULL output");
    memset(out, 0, sizeof *out);
    if (!w || n_rows <= 0 || n_cols <= 0 || c0 < 0 || c1 <= c0 || c1 > n_cols)
        return trit_error(TRIT_ERR_INVALID_ARG, "trit_ternarize: bad block: %lld x %lld, columns [%lld, %lld)",
                          (long long)n_rows, (long long)n_cols, (long long)c0, (long long)c1);
    for (int64_t r = 0; r < n_rows; r++)
        for (int64_t c = c0; c < c1; c++)
            if (!isfinite(w[r * n_cols + c]))
                return trit_error(TRIT_ERR_INVALID_ARG, "trit_ternarize: non-finite weight at (%lld, %lld)",
                                  (long long)r, (long long)c);
    TRIT_TRY(trit_ternary_init(out, n_rows, c1 - c0));
    float alpha = absmean_from_sum(abs_sum_block(w, n_rows, n_cols, c0, c1), n_rows * (c1 - c0));
    for (int64_t r = 0; r < n_rows; r++)
        for (int64_t c = c0; c < c1; c++) trit_ternary_set(out, r, c - c0, ternary_of(w[r * n_cols + c], alpha));
    out->scale = alpha;
    out->scale_kind = TRIT_SCALE_MUL;
    return TRIT_OK;
}

enum trit_status trit_ternarize(const float *w, int64_t n_rows, int64_t n_cols, struct trit_ternary *out) {
    return trit_ternarize_cols(w, n_rows, n_cols, 0, n_cols, out);
}

enum trit_status trit_ternary_from_scaled(const float *w, int64_t n_rows, int64_t n_cols,
                                          struct trit_ternary *out) {
    if (!out) return trit_error(TRIT_ERR_INVALID_ARG, "trit_ternary_from_scaled: NULL output");
    memset(out, 0, sizeof *out);
    if (!w || n_rows <= 0 || n_cols <= 0)
        return trit_error(TRIT_ERR_INVALID_ARG, "trit_ternary_from_scaled: bad shape %lld x %lld",
                          (long long)n_rows, (long long)n_cols);
    /* First pass: every nonzero magnitude must have the bits of the first one (c), so that
     * W == t * c holds exactly; +0 and -0 are both t = 0. */
    float c = 0.0f;
    int64_t n = n_rows * n_cols;
    for (int64_t i = 0; i < n; i++) {
        float a = fabsf(w[i]);
        if (a == 0.0f) continue;
        if (!isfinite(a))
            return trit_error(TRIT_ERR_UNSUPPORTED, "trit_ternary_from_scaled: non-finite weight at (%lld, %lld)",
                              (long long)(i / n_cols), (long long)(i % n_cols));
        if (c == 0.0f) c = a;
        if (memcmp(&a, &c, sizeof a) != 0)
            return trit_error(TRIT_ERR_UNSUPPORTED,
                              "trit_ternary_from_scaled: not ternary: |w| = %.9g at (%lld, %lld) but %.9g before",
                              (double)a, (long long)(i / n_cols), (long long)(i % n_cols), (double)c);
    }
    TRIT_TRY(trit_ternary_init(out, n_rows, n_cols));
    for (int64_t i = 0; i < n; i++)
        trit_ternary_set(out, i / n_cols, i % n_cols, w[i] > 0.0f ? 1 : w[i] < 0.0f ? -1 : 0);
    out->scale = c == 0.0f ? 1.0f : c;
    out->scale_kind = TRIT_SCALE_MUL;
    return TRIT_OK;
}

enum trit_status trit_ternary_from_group_scaled(const float *w, int64_t n_rows, int64_t n_cols, int64_t group,
                                                bool allow_pos2, struct trit_ternary *out) {
    if (!out) return trit_error(TRIT_ERR_INVALID_ARG, "trit_ternary_from_group_scaled: NULL output");
    memset(out, 0, sizeof *out);
    if (!w) return trit_error(TRIT_ERR_INVALID_ARG, "trit_ternary_from_group_scaled: NULL weights");
    TRIT_TRY(trit_ternary_init_grouped(out, n_rows, n_cols, group));
    const int64_t n_groups = trit_ternary_n_groups(out);
    for (int64_t r = 0; r < n_rows; r++) {
        for (int64_t g = 0; g < n_groups; g++) {
            const float *x = w + r * n_cols + g * group;
            const int64_t n = n_cols - g * group < group ? n_cols - g * group : group;
            /* d = the smallest nonzero magnitude; every other one is d or (with +2) 2d */
            float d = 0.0f;
            for (int64_t i = 0; i < n; i++) {
                const float a = fabsf(x[i]);
                if (!isfinite(a)) {
                    trit_ternary_free(out);
                    return trit_error(TRIT_ERR_INVALID_ARG, "trit_ternary_from_group_scaled: non-finite weight at (%lld, %lld)",
                                      (long long)r, (long long)(g * group + i));
                }
                if (a != 0.0f && (d == 0.0f || a < d)) d = a;
            }
            for (int64_t i = 0; i < n; i++) {
                const float a = fabsf(x[i]);
                int t = 0;
                if (a == d && a != 0.0f) t = x[i] > 0.0f ? 1 : -1;
                else if (allow_pos2 && a != 0.0f && x[i] > 0.0f && a == 2.0f * d) t = 2;
                else if (a != 0.0f) {
                    trit_ternary_free(out);
                    return trit_error(TRIT_ERR_UNSUPPORTED,
                                      "trit_ternary_from_group_scaled: not ternary in groups of %lld: w = %.9g at (%lld, %lld), "
                                      "group scale %.9g", (long long)group, (double)x[i], (long long)r,
                                      (long long)(g * group + i), (double)d);
                }
                trit_ternary_set(out, r, g * group + i, t);
            }
            out->group_scales[r * n_groups + g] = d == 0.0f ? 1.0f : d;
        }
    }
    return TRIT_OK;
}

/* ---- activation quantization ------------------------------------------------------------------ */

float trit_act_scale(float amax) { return TRIT_ACT_QMAX / fmaxf(amax, TRIT_ACT_EPS); }

void trit_quantize_row_i8_scaled(const float *x, int64_t k, float s, int8_t *q) {
    for (int64_t i = 0; i < k; i++) {
        float v = rintf(x[i] * s);
        /* The clamp is in float: a NaN input gives 0 instead of an undefined int conversion. */
        q[i] = (int8_t)(v >= 127.0f ? 127 : v <= -128.0f ? -128 : v == v ? (int)v : 0);
    }
}

float trit_quantize_row_i8(const float *x, int64_t k, int8_t *q) {
    float amax = 0.0f;
    for (int64_t i = 0; i < k; i++) amax = fmaxf(amax, fabsf(x[i]));
    const float s = trit_act_scale(amax);
    trit_quantize_row_i8_scaled(x, k, s, q);
    return s;
}

void trit_quantize_row_i8_blocks(const float *x, int64_t k, int64_t block, int8_t *q, float *s) {
    if (block <= 0 || block >= k) {
        s[0] = trit_quantize_row_i8(x, k, q);
        return;
    }
    for (int64_t j = 0, c = 0; c < k; j++, c += block)
        s[j] = trit_quantize_row_i8(x + c, k - c < block ? k - c : block, q + c);
}
