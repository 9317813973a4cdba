/*
 * gemm_ref.c: the scalar reference of the ternary matmul, its fp32 epilogue and per-token
 * activation quantization. This is the specification the other kernels are tested against: keep
 * it naive. See cpu.h for shapes and contracts.
 */
#include "cpu/cpu.h"

/* ---- integer core ----------------------------------------------------------------------------- */

void trit_gemm_ref(const struct trit_ternary *w, const int8_t *q, int64_t m, int32_t *acc) {
    const int64_t n = w->n_rows, k = w->n_cols;
    for (int64_t i = 0; i < m; i++) {
        const int8_t *qi = q + i * k;
        for (int64_t j = 0; j < n; j++) {
            int32_t pos = 0, neg = 0; /* sum of q where t = +1, and where t = -1 */
            for (int64_t c = 0; c < k; c++) {
                int t = trit_ternary_get(w, j, c);
                if (t > 0) pos += qi[c];
                if (t > 1) pos += qi[c]; /* +2: group-scaled matrices only */
                if (t < 0) neg += qi[c];
            }
            acc[i * n + j] = pos - neg;
        }
    }
}

void trit_gemv_ref(const struct trit_ternary *w, const int8_t *q, int32_t *acc) { trit_gemm_ref(w, q, 1, acc); }

/* ---- epilogue --------------------------------------------------------------------------------- */

void trit_epilogue_ref(const int32_t *acc, int64_t m, int64_t n, const float *act_scale, float w_scale,
                       enum trit_scale_kind kind, float *y) {
    for (int64_t i = 0; i < m; i++) {
        const float s = act_scale[i];
        for (int64_t j = 0; j < n; j++) {
            const float a = (float)acc[i * n + j];
            y[i * n + j] = kind == TRIT_SCALE_DIV ? a / (s * w_scale) : (a / s) * w_scale;
        }
    }
}

void trit_gemm_group_ref(const struct trit_ternary *w, const int8_t *q, int64_t m, const float *act_scale,
                         int64_t act_block, float *y) {
    const int64_t n = w->n_rows, k = w->n_cols, n_kb = (k + TRIT_GROUP_UNIT - 1) / TRIT_GROUP_UNIT;
    const int64_t n_groups = trit_ternary_n_groups(w), n_ab = act_block > 0 ? n_kb : 1;
    for (int64_t i = 0; i < m; i++) {
        for (int64_t r = 0; r < n; r++) {
            float sum = 0.0f;
            for (int64_t j = 0; j < n_kb; j++) {
                int32_t isum = 0;
                for (int64_t c = j * TRIT_GROUP_UNIT; c < k && c < (j + 1) * TRIT_GROUP_UNIT; c++) {
                    const int t = trit_ternary_get(w, r, c);
                    for (int u = 0; u < t; u++) isum += q[i * k + c];
                    if (t < 0) isum -= q[i * k + c];
                }
                const float s = act_scale[i * n_ab + (act_block > 0 ? j : 0)];
                float term;
                const float inv = 1.0f / s;
                if (w->group > 0) term = ((float)isum * inv) * w->group_scales[r * n_groups + j * TRIT_GROUP_UNIT / w->group];
                else if (w->scale_kind == TRIT_SCALE_DIV) term = (float)isum / (s * w->scale);
                else term = ((float)isum * inv) * w->scale;
                sum += term;
            }
            y[i * n + r] = sum;
        }
    }
}

/* ---- activation quantization ------------------------------------------------------------------ */

void trit_quantize_rows_i8(const float *x, int64_t m, int64_t k, int8_t *q, float *act_scale) {
    for (int64_t i = 0; i < m; i++) act_scale[i] = trit_quantize_row_i8(x + i * k, k, q + i * k);
}
