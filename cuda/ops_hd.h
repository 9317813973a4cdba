/*
 * ops_hd.h: the per-thread arithmetic of the CUDA backend's non-ternary kernels (cuda/ops_*.cu),
 * written once as TRIT_HD functions that run on the GPU and in the CPU tests
 * (tests/test_cuda_ops_hd.c): RMSNorm's scale, the gated activations, RoPE pairs and rotation,
 * the online softmax (per tile, and the merge of split-K partials), the split ranges of the
 * decode attention, the paged KV cache's rows and a batch's per-token positions and block
 * tables, the thread -> tile maps of the prefill attention, and the sampling top-k's penalty,
 * order-preserving keys, radix-select steps and sorting network. C11 and CUDA C++; no CUDA types.
 *
 * Every float expression here is written as single IEEE operations in the order of the CPU
 * reference (host/cpu/ops.c); on the device each is an explicit _rn intrinsic, so nvcc cannot
 * contract a multiply and an add into an FMA, and an element the CPU computes from the same
 * inputs comes out bit for bit the same (test_cuda_ops_hd.c checks this against ops.c on the CPU).
 * expf is the exception: CUDA's expf is within 2 ulp of the true value, glibc's within 1.
 */
#ifndef TRIT_OPS_HD_H
#define TRIT_OPS_HD_H

#include <math.h>
#include <stdint.h>
#include <string.h>

#include "ternary_layout.h" /* TRIT_HD */

#if defined(__CUDA_ARCH__)
#define TRIT_FMUL(a, b) __fmul_rn((a), (b))
#define TRIT_FADD(a, b) __fadd_rn((a), (b))
#define TRIT_FSUB(a, b) __fsub_rn((a), (b))
#define TRIT_FDIV(a, b) __fdiv_rn((a), (b))
#define TRIT_FSQRT(a) __fsqrt_rn(a)
#else
#define TRIT_FMUL(a, b) ((a) * (b))
#define TRIT_FADD(a, b) ((a) + (b))
#define TRIT_FSUB(a, b) ((a) - (b))
#define TRIT_FDIV(a, b) ((a) / (b))
#define TRIT_FSQRT(a) sqrtf(a)
#endif

/* ---- RMSNorm (trit_rmsnorm_f32: y = w * (x * inv), inv = 1 / sqrt(ss / n + eps)) ------------ */

TRIT_HD float trit_rms_inv(float sum_sq, int64_t n, float eps) {
    return TRIT_FDIV(1.0f, TRIT_FSQRT(TRIT_FADD(TRIT_FDIV(sum_sq, (float)n), eps)));
}
TRIT_HD float trit_rms_apply(float x, float inv, float w) { return TRIT_FMUL(w, TRIT_FMUL(x, inv)); }

/* ---- gated activations (trit_gated_act_f32) --------------------------------------------------- */

/* act: 0 = relu(g)^2 * u (TRIT_ACT_RELU2), 1 = g * sigmoid(g) * u (TRIT_ACT_SILU). */
TRIT_HD float trit_gated_one(float g, float u, int act) {
    if (act == 0) {
        const float r = g > 0.0f ? g : 0.0f;
        return TRIT_FMUL(TRIT_FMUL(r, r), u);
    }
    return TRIT_FMUL(TRIT_FDIV(g, TRIT_FADD(1.0f, expf(-g))), u);
}

/* ---- RoPE (trit_rope_f32 with the tables of trit_rope_table) ---------------------------------- */

/* Pair i (0 <= i < head_dim / 2) of a head: the two elements it rotates. style 0 = NEOX
 * (i, i + head_dim/2), 1 = NORM (2i, 2i + 1). Its angle is column i of the table row. */
TRIT_HD void trit_rope_pair(int64_t i, int64_t head_dim, int style, int64_t *ia, int64_t *ib) {
    if (style == 0) {
        *ia = i;
        *ib = i + head_dim / 2;
    } else {
        *ia = 2 * i;
        *ib = 2 * i + 1;
    }
}
/* (a, b) -> (a cos - b sin, b cos + a sin). */
TRIT_HD void trit_rope_rotate(float a, float b, float c, float s, float *ra, float *rb) {
    *ra = TRIT_FSUB(TRIT_FMUL(a, c), TRIT_FMUL(b, s));
    *rb = TRIT_FADD(TRIT_FMUL(b, c), TRIT_FMUL(a, s));
}

/* ---- online softmax ----------------------------------------------------------------------------
 * A running state over a prefix of the scores: m = max so far, l = sum of exp(s - m), and the
 * output accumulator o = sum of exp(s - m) v. A new tile with maximum tile_max moves the max to
 * m_new = max(m, tile_max); the old l and o are multiplied by the returned correction
 * exp(m - m_new) (0 while nothing was seen: m = -inf), and the tile's scores enter as
 * exp(s - m_new) (0 for a masked score, s = -inf). */
TRIT_HD float trit_softmax_rescale(float m, float tile_max, float *m_new) {
    const float mn = m > tile_max ? m : tile_max;
    *m_new = mn;
    if (mn == -INFINITY) return 1.0f; /* nothing seen yet: keep l = 0 and o = 0 as they are */
    return expf(m - mn);              /* exp(-inf) = 0 on the first tile */
}
TRIT_HD float trit_softmax_p(float s, float m) { return s == -INFINITY ? 0.0f : expf(s - m); }

/* Merge weights of n split-K partial states (m[i], l[i]): w[i] = exp(m[i] - M) / L with
 * M = max m[i] and L = sum l[i] exp(m[i] - M), so that out = sum w[i] o[i] is the softmax-
 * weighted output of the union. An empty partial (l = 0, m = -inf) gets weight 0 and its o is
 * never read. PRECOND: at least one partial is non-empty. `stride` steps through m and l. */
TRIT_HD void trit_softmax_merge_weights(const float *m, const float *l, int64_t stride, int n, float *w) {
    float mx = -INFINITY;
    for (int i = 0; i < n; i++)
        if (l[i * stride] > 0.0f && m[i * stride] > mx) mx = m[i * stride];
    float sum = 0.0f;
    for (int i = 0; i < n; i++) {
        const float e = l[i * stride] > 0.0f ? expf(m[i * stride] - mx) : 0.0f;
        w[i] = e;
        sum = TRIT_FADD(sum, TRIT_FMUL(l[i * stride], e));
    }
    for (int i = 0; i < n; i++) w[i] = TRIT_FDIV(w[i], sum);
}

/* ---- decode attention: split-K over the cache ------------------------------------------------- */

#define TRIT_ATT_SPLIT_GRAIN 32 /* positions: a split is a multiple of this (one warp's worth) */
#define TRIT_ATT_SPLIT_MIN 64   /* positions: below this a split costs more to merge than to run */

/* Positions [*t0, *t1) of split `split` of `n_splits` over n_pos cached positions: equal chunks
 * of ceil(n_pos / n_splits) rounded up to the grain, at least TRIT_ATT_SPLIT_MIN, in order; the
 * last non-empty split ends at n_pos, later ones are empty (*t0 >= *t1). */
TRIT_HD void trit_attn_split_range(int64_t n_pos, int n_splits, int split, int64_t *t0, int64_t *t1) {
    int64_t chunk = (n_pos + n_splits - 1) / n_splits;
    chunk = (chunk + TRIT_ATT_SPLIT_GRAIN - 1) / TRIT_ATT_SPLIT_GRAIN * TRIT_ATT_SPLIT_GRAIN;
    if (chunk < TRIT_ATT_SPLIT_MIN) chunk = TRIT_ATT_SPLIT_MIN;
    const int64_t b = chunk * split, e = b + chunk;
    *t0 = b < n_pos ? b : n_pos;
    *t1 = e < n_pos ? e : n_pos;
}

/* ---- the paged KV cache (include/trit.h's pool; cuda/ops_attn.cu) -------------------------------
 * A layer's K (and V) cache is (n_kv_blocks, TRIT_CUDA_KV_BLOCK, Hkv): row r holds one position of
 * one sequence. A sequence's block table lists its blocks in order: position p is row
 * table[p / TRIT_CUDA_KV_BLOCK] * TRIT_CUDA_KV_BLOCK + p % TRIT_CUDA_KV_BLOCK (host/cpu/ops.c's kv_row
 * over rows of one position). A NULL table is the identity (blocks 0, 1, 2, ...: row = position),
 * the contiguous cache of the op entries without a map. A batch's tokens each have a position
 * (pos[t], or *pos0 + t for one sequence's run) and a table (row tok_table[t] of the batch's tables
 * of max_blocks entries, or table 0). Rows are int32: the backend keeps n_kv_blocks * 64 below 2^31. */
#define TRIT_CUDA_KV_BLOCK 64

TRIT_HD int32_t trit_kv_row(const int32_t *table, int64_t p) {
    if (!table) return (int32_t)p;
    return table[p / TRIT_CUDA_KV_BLOCK] * TRIT_CUDA_KV_BLOCK + (int32_t)(p % TRIT_CUDA_KV_BLOCK);
}
/* Token t's position. */
TRIT_HD int64_t trit_kv_token_pos(const int32_t *pos, const int32_t *pos0, int64_t t) {
    return pos ? (int64_t)pos[t] : (int64_t)*pos0 + t;
}
/* Token t's block table (NULL: the identity). */
TRIT_HD const int32_t *trit_kv_token_table(const int32_t *tables, const int32_t *tok_table, int32_t max_blocks,
                                           int64_t t) {
    if (!tables) return 0;
    return tables + (int64_t)(tok_table ? tok_table[t] : 0) * max_blocks;
}

/* ---- prefill attention: thread -> tile maps ----------------------------------------------------
 * A CTA of TRIT_PF_THREADS threads owns BQ = TRIT_PF_THREADS / tpr query rows of one head; tpr
 * consecutive threads share a row (their shuffles stay inside a warp). In a key tile of
 * TRIT_PF_BK keys thread `tid` computes the scores of its row r at keys sub + tpr * j
 * (j < TRIT_PF_BK / tpr) and owns the output dims sub + tpr * j (j < head_dim / tpr). */
#define TRIT_PF_THREADS 128
#define TRIT_PF_BK 32

TRIT_HD int trit_pf_row(int tid, int tpr) { return tid / tpr; }
TRIT_HD int trit_pf_sub(int tid, int tpr) { return tid % tpr; }
TRIT_HD int trit_pf_col(int tid, int tpr, int j) { return tid % tpr + tpr * j; }

/* Causal limits. Token r of the tile (absolute token tok0 + r of m) sits at position
 * pos0 + tok0 + r and sees keys 0 .. that position. A row past the last token takes the last
 * token's position, so that its (discarded) softmax stays finite. */
TRIT_HD int64_t trit_pf_qpos(int64_t pos0, int64_t tok0, int r, int64_t m) {
    const int64_t tok = tok0 + r < m ? tok0 + r : m - 1;
    return pos0 + tok;
}
/* The last key any row of the tile sees (inclusive): the loop over key tiles stops there. */
TRIT_HD int64_t trit_pf_last_key(int64_t pos0, int64_t tok0, int bq, int64_t m) {
    return trit_pf_qpos(pos0, tok0, bq - 1, m);
}

/* ---- int8 LM head (host/cpu/head_int8.h's numerics; trit_quantize_row_i8_fast with q_min -127) ----
 * A row x (weights at upload, the final normed hidden state per token) of absmax a:
 *   s = 127 / max(a, 1e-5);  q[k] = clamp(rint(x[k] * s), -127, 127) (NaN -> 0);  d = 1 / s
 *   acc = sum_k w[k] q[k] (int32, exact);  logit = (float)acc * (d_r * d_x). */
TRIT_HD float trit_i8_scale(float amax) { return TRIT_FDIV(127.0f, fmaxf(amax, 1e-5f)); }
TRIT_HD int8_t trit_i8_code(float x, float s) {
    const float v = rintf(TRIT_FMUL(x, s));
    return (int8_t)(v >= 127.0f ? 127 : v <= -127.0f ? -127 : v == v ? (int)v : 0);
}
TRIT_HD float trit_i8_inv_scale(float s) { return TRIT_FDIV(1.0f, s); }
TRIT_HD float trit_head_i8_logit(int32_t acc, float d_r, float d_x) { return TRIT_FMUL((float)acc, TRIT_FMUL(d_r, d_x)); }
/* A whole row, one thread (the upload and the tests): q[0..n) codes, q[n..ld) 0; returns s. The
 * device kernel splits the same steps over a CTA (absmax: fabsf, max ignores NaN like fmaxf). */
TRIT_HD float trit_i8_quantize_row(const float *x, int64_t n, int64_t ld, int8_t *q) {
    float amax = 0.0f;
    for (int64_t i = 0; i < n; i++) {
        const float a = fabsf(x[i]);
        if (a > amax) amax = a;
    }
    const float s = trit_i8_scale(amax);
    for (int64_t i = 0; i < n; i++) q[i] = trit_i8_code(x[i], s);
    for (int64_t i = n; i < ld; i++) q[i] = 0;
    return s;
}

/* ---- top-k with the repetition penalty (forward_topk; host twin in host/sampler.c) ---- */
/* llama.cpp's rule: a positive logit divided by the penalty, a negative one multiplied; NaN -> -inf. */
TRIT_HD float trit_topk_penalize(float x, float penalty) {
    if (x != x) return -INFINITY;
    return x > 0.0f ? TRIT_FDIV(x, penalty) : TRIT_FMUL(x, penalty);
}
/* The unpenalized logit's key: NaN ranks below every number. */
TRIT_HD float trit_topk_key(float x) { return x != x ? -INFINITY : x; }
/* Candidate order: logit desc, id asc. True when (va, ia) comes before (vb, ib). */
TRIT_HD int trit_topk_before(float va, int32_t ia, float vb, int32_t ib) { return va > vb || (va == vb && ia < ib); }

/* ---- device top-k: radix select on order-preserving keys (cuda/ops_topk.cu) ---------------------
 * Every key of the row becomes a uint32 whose unsigned order is the float order; four passes of
 * 8-bit digits (most significant first) find the k-th largest key T; the keys > T and the first
 * (lowest id) keys == T are collected, one contiguous segment per warp, and sorted by a bitonic
 * network. The CPU emulation in tests/test_cuda_ops_hd.c runs these same functions. */
#define TRIT_TOPK_WARPS 32 /* warps of the one CTA (1024 threads) */
#define TRIT_TOPK_UNROLL 4 /* loads in flight per thread per loop step (passes over the keys) */

TRIT_HD uint32_t trit_topk_f2u(float v) {
#if defined(__CUDA_ARCH__)
    return __float_as_uint(v);
#else
    uint32_t u;
    memcpy(&u, &v, sizeof u);
    return u;
#endif
}
TRIT_HD float trit_topk_u2f(uint32_t u) {
#if defined(__CUDA_ARCH__)
    return __uint_as_float(u);
#else
    float v;
    memcpy(&v, &u, sizeof v);
    return v;
#endif
}
/* Order-preserving key of a non-NaN float: a < b as floats iff ord(a) < ord(b) as uint32, -0 and +0
 * one key (== treats them equal). ord(-inf) = 0x007FFFFF, so key 0 ranks below every real key. */
TRIT_HD uint32_t trit_topk_ord(float v) {
    if (v == 0.0f) v = 0.0f; /* -0 -> +0 */
    const uint32_t u = trit_topk_f2u(v);
    return u ^ (u >> 31 ? 0xFFFFFFFFu : 0x80000000u);
}
/* The inverse of trit_topk_ord (a zero key gives +0). */
TRIT_HD float trit_topk_unord(uint32_t k) { return trit_topk_u2f(k >> 31 ? k ^ 0x80000000u : ~k); }
/* Radix-select step: the bin b (255 down to 0) that holds the k_rem-th largest counted key, and
 * *above = the keys counted in bins above b. PRECOND: 1 <= k_rem <= the sum of hist[0..256). */
TRIT_HD int trit_topk_pick_bin(const uint32_t *hist, uint32_t k_rem, uint32_t *above) {
    uint32_t acc = 0;
    int b = 255;
    for (; b > 0; b--) {
        if (acc + hist[b] >= k_rem) break;
        acc += hist[b];
    }
    *above = acc;
    return b;
}
/* The mask of the digits above pass `pass` (0..3; pass p reads bits 24 - 8p .. 31 - 8p). */
TRIT_HD uint32_t trit_topk_hi_mask(int pass) { return pass == 0 ? 0u : 0xFFFFFFFFu << (32 - 8 * pass); }
/* Warp w's segment [*b, *e) of a row of n keys: 32 contiguous segments in index order, each
 * ceil(n / 32) rounded up to a multiple of 32 (whole ballots); trailing segments may be empty. */
TRIT_HD void trit_topk_segment(int64_t n, int w, int64_t *b, int64_t *e) {
    const int64_t len = ((n + TRIT_TOPK_WARPS - 1) / TRIT_TOPK_WARPS + 31) / 32 * 32;
    const int64_t lo = len * w, hi = lo + len;
    *b = lo < n ? lo : n;
    *e = hi < n ? hi : n;
}
/* Candidate order on keys: key desc, id asc. True when (ka, ia) comes before (kb, ib). */
TRIT_HD int trit_topk_key_before(uint32_t ka, int32_t ia, uint32_t kb, int32_t ib) {
    return ka > kb || (ka == kb && ia < ib);
}
/* The bitonic network's size: the smallest power of two >= k. */
TRIT_HD int trit_topk_sort_size(int k) {
    int p = 1;
    while (p < k) p <<= 1;
    return p;
}
/* Bitonic sort, best first: for size = 2, 4, .. P and stride = size / 2 .. 1, element i and its
 * partner i ^ stride (> i) are exchanged when this returns true; the pair ends in candidate order
 * where (i & size) == 0, in reverse order elsewhere. (ki, ii) sits at i, (kj, ij) at the partner. */
TRIT_HD int trit_bitonic_swap(int i, int size, uint32_t ki, int32_t ii, uint32_t kj, int32_t ij) {
    return (i & size) == 0 ? trit_topk_key_before(kj, ij, ki, ii) : trit_topk_key_before(ki, ii, kj, ij);
}
/* A candidate's value: its key as a float, except that a zero key (ord dropped the sign) takes the
 * sign of the logit x it came from: the host reference's signed zero, since the penalty divides or
 * multiplies by a positive number and an unpenalized key is x itself. */
TRIT_HD float trit_topk_value(uint32_t key, float x) {
    const float v = trit_topk_unord(key);
    return v != 0.0f ? v : copysignf(0.0f, x);
}

#endif /* TRIT_OPS_HD_H */
