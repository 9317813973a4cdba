/*
 * ops_attn.cu: RoPE with the KV-cache write, and causal attention over an fp16 KV cache (v1).
 *
 * RoPE design: one thread per rotation pair of q and k, or per element of v ((Hq + Hkv) / 2 + Hkv
 * threads per token, 2240 for 2B-4T: 9 CTAs at decode); the angles come from the CPU's own tables
 * (trit_rope_table, uploaded), so q and the cache rows equal the CPU's values bit for bit before
 * the fp16 rounding.
 *
 *   trit_rope_kv_kernel          q|k|v int32 -> epilogue -> RoPE(q, k) -> q fp32, K/V cache rows fp16
 *   trit_attn_decode_kernel      one token, split-K over the cache (flash-decoding), GQA groups;
 *                                the last CTA of each KV head merges its splits
 *   trit_attn_prefill_kernel     m tokens, causal, tiled, online softmax
 * Both write the attention output att (m, Hq) fp32, which trit_residual_norm_kernel (ops_norm.cu)
 * normalizes (attn_sub_norm) and quantizes for o_proj.
 *
 * KV cache: fp16, (n_kv_blocks, TRIT_CUDA_KV_BLOCK, Hkv) per layer, as the CPU's fp32 pool: each
 * token's row is found through its sequence's block table (struct trit_cuda_kv_map, ops_hd.h's
 * trit_kv_row; no table: row = position, the contiguous cache). Rounding K and V to fp16 moves
 * each by at most 2^-11 of itself (RNE, 10 mantissa bits); scores and outputs are accumulated in
 * fp32. The tests compare against the CPU reference run on the same fp16-rounded K and V, and the
 * end-to-end test bounds what the rounding does to the logits.
 *
 * Decode design: grid (n_kv_heads, n_splits), 128 threads. The CTA of KV head g takes the G query
 * heads of its group (K and V are read once for all of them) and positions [t0, t1) of its split
 * (trit_attn_split_range of the device-side length *pos0 + 1, so the launch does not depend on the
 * position and a CUDA graph replays it). Per tile of 128 positions: thread i computes the G scores
 * of position t0 + i (its K row, staged in shared memory 32 dims at a time by coalesced loads,
 * against q in shared memory); warp w keeps the online
 * softmax of heads w, w + 4; thread d accumulates output dim d (and d + 128) of the G heads from V
 * rows read coalesced (the tile's cache rows, looked up once per tile through the token's block
 * table, wait in shared memory). Each split writes (o, max, sum); after a fence and an atomic ticket per CTA,
 * the last CTA of the KV head reads the n_splits partials of its G heads through L2 and merges them
 * (trit_softmax_merge_weights, in split order: the result does not depend on which CTA is last).
 * Napkin math: 2B-4T at 1k positions reads 2 x 1024 x 640 x 2 B = 2.6 MB of K/V per layer (79 MB
 * per token, ~6% of the weights' bytes); with n_kv x n_splits ~ 132 CTAs the reads are spread over
 * every SM: ~1-2 us per layer at bandwidth, a few us at short contexts (latency bound). The merge
 * reads n_splits x G x hd floats per KV head (27 x 512 x 4 B = 55 KB for 2B-4T) from L2 in one CTA:
 * under a microsecond, and no separate launch.
 *
 * Batched decode (trit_cuda_attn_decode_paged): grid (n_kv_heads, n_splits, tokens), each token of
 * the batch at its own position over its own block table, with its own scratch and merge tickets:
 * token for token the single-token kernel's work, so a token's result does not depend on what else
 * runs with it. The backend runs every token of a batch of several sequences through it, prompt
 * chunks included: a chunk of n tokens then reads its K/V rows n times (from L2 mostly) instead of
 * once per 32-row query tile, about n x (its length) x Hkv x 4 B per layer (2B-4T, a 512-token
 * chunk: ~340 MB per layer from L2, ~1 ms where the prefill kernel takes ~0.2-0.3 ms). A prefill
 * kernel over mixed batches that gives each row the decode kernel's bits is the follow-up.
 *
 * Prefill design: grid (ceil(m / BQ), n_heads), 128 threads; BQ = 32 query rows (16 for head_dim >
 * 128, and on GPUs whose SM cannot hold two 32-row CTAs: sm_86/sm_89 at head_dim 128), key tiles of 32 rows staged in shared memory as fp32 (rows padded to hd + 1 floats: the
 * tpr threads of a row and the rows of a warp hit distinct banks); tpr = 4 (8) consecutive threads
 * share a query row: 8 (4) scores each, a shuffle reduction for the row max and sum, and hd / tpr
 * output dims each. Scores and P.V on CUDA cores in fp32: 2B-4T pp512 is ~1.3 GFLOP per layer,
 * ~0.2-0.3 ms at a fraction of the fp32 peak; a tensor-core (mma) version is the next step.
 */
#include <cuda_fp16.h>
#include <cuda_runtime.h>
#include <math.h>
#include <stdint.h>

#include "cuda_check.h"
#include "ops_hd.h"
#include "ternary_layout.h"
#include "trit_cuda.h"
#include "trit_cuda_ops.h"

namespace {

constexpr int MAX_G = TRIT_CUDA_ATT_MAX_GROUP;
constexpr int MAX_HD = TRIT_CUDA_ATT_MAX_HEAD_DIM;
constexpr int MAX_SPLITS = TRIT_CUDA_ATT_MAX_SPLITS;

__device__ __forceinline__ float attn_scale(int64_t head_dim) {
    return __fdiv_rn(1.0f, __fsqrt_rn((float)head_dim)); // the CPU's 1.0f / sqrtf((float)head_dim)
}

// ---- RoPE + KV cache write: grid (ceil(items / 256), m), one rotation pair or V element per thread ----

constexpr int ROPE_THREADS = 256;

static __global__ void __launch_bounds__(ROPE_THREADS)
trit_rope_kv_kernel(const int32_t *__restrict__ acc, const float *__restrict__ act_scale, float q_scale, int q_div,
                    float k_scale, int k_div, float v_scale, int v_div, int64_t n_heads, int64_t n_kv_heads,
                    int64_t head_dim, int style, const float *__restrict__ cos_t, const float *__restrict__ sin_t,
                    trit_cuda_kv_map map, float *__restrict__ q, __half *__restrict__ k_cache,
                    __half *__restrict__ v_cache) {
    const int64_t t = blockIdx.y, half = head_dim / 2;
    const int64_t q_dim = n_heads * head_dim, kv_dim = n_kv_heads * head_dim, n_pairs = (n_heads + n_kv_heads) * half;
    const int64_t item = (int64_t)blockIdx.x * ROPE_THREADS + threadIdx.x;
    if (item >= n_pairs + kv_dim) return;
    const int64_t pos = trit_kv_token_pos(map.d_pos, map.d_pos0, t);
    const int64_t row = trit_kv_row(trit_kv_token_table(map.d_tables, map.d_tok_table, map.max_blocks, t), pos);
    const int32_t *ar = acc + t * (q_dim + 2 * kv_dim);
    const float s = act_scale[t];
    if (item >= n_pairs) { // a V element: no rotation
        const int64_t e = item - n_pairs;
        v_cache[row * kv_dim + e] = __float2half_rn(trit_pending_one(ar[q_dim + kv_dim + e], s, v_scale, v_div));
        return;
    }
    const int hf = (int)half; // 32-bit index math: item < n_pairs + kv_dim, a few thousand
    const int64_t head = (int)item / hf, i = (int)item % hf;
    int64_t ia, ib;
    trit_rope_pair(i, head_dim, style, &ia, &ib);
    const bool is_q = head < n_heads;
    const int64_t col = is_q ? head * head_dim : q_dim + (head - n_heads) * head_dim;
    const float ws = is_q ? q_scale : k_scale;
    const int div = is_q ? q_div : k_div;
    float ra, rb;
    trit_rope_rotate(trit_pending_one(ar[col + ia], s, ws, div), trit_pending_one(ar[col + ib], s, ws, div),
                     cos_t[pos * half + i], sin_t[pos * half + i], &ra, &rb);
    if (is_q) {
        q[t * q_dim + col + ia] = ra;
        q[t * q_dim + col + ib] = rb;
    } else {
        __half *kr = k_cache + row * kv_dim + (col - q_dim);
        kr[ia] = __float2half_rn(ra);
        kr[ib] = __float2half_rn(rb);
    }
}

// ---- decode: split-K flash-decoding ------------------------------------------------------------

constexpr int DEC_THREADS = 128;
constexpr int DEC_WARPS = DEC_THREADS / 32;
constexpr int DEC_TILE = DEC_THREADS;                      // positions per tile: one per thread
constexpr int DEC_HEADS_PER_WARP = MAX_G / DEC_WARPS;      // softmax states a warp keeps
constexpr int DEC_DIMS_PER_THREAD = MAX_HD / DEC_THREADS;  // output dims a thread accumulates
constexpr int DEC_KC2 = 16; // K dims staged in shared memory at a time, in half2 (32 dims: 64 B of a row)

// One CTA's split of the decode attention: positions [t0, t1) of KV head g for its G query heads;
// writes the unnormalized outputs o (G, hd) and the states (max, sum) of the split.
__device__ __forceinline__ void attn_decode_split(const float *__restrict__ q, const __half *__restrict__ k_cache,
                                                  const __half *__restrict__ v_cache, int64_t n_heads,
                                                  int64_t head_dim, int64_t kv_dim, int64_t g, int G, int64_t h0,
                                                  int64_t split, int64_t t0, int64_t t1, const int32_t *tab,
                                                  float *qs, float (*ps)[DEC_TILE], __half2 (*ks)[DEC_KC2 + 1],
                                                  int32_t *rows_s, float *corr_s, float *__restrict__ part_o,
                                                  float *ml) {
    const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
    const float scale = attn_scale(head_dim);
    for (int64_t e = tid; e < G * head_dim; e += DEC_THREADS) qs[e] = q[h0 * head_dim + e];
    __syncthreads();

    float m_r[DEC_HEADS_PER_WARP], l_r[DEC_HEADS_PER_WARP];
    float o[DEC_DIMS_PER_THREAD][MAX_G];
#pragma unroll
    for (int k = 0; k < DEC_HEADS_PER_WARP; k++) m_r[k] = -INFINITY, l_r[k] = 0.0f;
#pragma unroll
    for (int k = 0; k < DEC_DIMS_PER_THREAD; k++)
#pragma unroll
        for (int h = 0; h < MAX_G; h++) o[k][h] = 0.0f;

    const __half *kg = k_cache + g * head_dim, *vg = v_cache + g * head_dim;
    for (int64_t tb = t0; tb < t1; tb += DEC_TILE) {
        const int n_valid = (int)(t1 - tb < DEC_TILE ? t1 - tb : DEC_TILE);
        // the tile's cache rows: one block-table lookup per position (a tile spans up to 3 blocks)
        rows_s[tid] = tid < n_valid ? trit_kv_row(tab, tb + tid) : 0;
        __syncthreads();
        // phase 1: scores of position tb + tid for the G heads. K is staged in shared memory 32 dims
        // at a time, loaded coalesced (16 consecutive threads read 64 contiguous bytes of one row; a
        // thread reading its own row would make a warp touch 32 rows per load: review finding 1).
        // Each score sums its dims in the same order as before, so the result has the same bits.
        float acc[MAX_G];
#pragma unroll
        for (int h = 0; h < MAX_G; h++) acc[h] = 0.0f;
        const int hd2 = (int)(head_dim / 2);
        for (int c0 = 0; c0 < hd2; c0 += DEC_KC2) {
            const int nc = hd2 - c0 < DEC_KC2 ? hd2 - c0 : DEC_KC2;
            for (int e = tid; e < DEC_TILE * DEC_KC2; e += DEC_THREADS) {
                const int row = e / DEC_KC2, c = e % DEC_KC2; // compile-time divisor: shifts
                ks[row][c] = row < n_valid && c < nc
                                 ? reinterpret_cast<const __half2 *>(kg + (int64_t)rows_s[row] * kv_dim)[c0 + c]
                                 : __floats2half2_rn(0.0f, 0.0f);
            }
            __syncthreads();
            if (tid < n_valid) {
                for (int c = 0; c < nc; c++) {
                    const float2 kk = __half22float2(ks[tid][c]);
                    const int64_t d2 = c0 + c;
#pragma unroll
                    for (int h = 0; h < MAX_G; h++)
                        if (h < G) {
                            const float2 qq = *reinterpret_cast<const float2 *>(&qs[h * head_dim + 2 * d2]);
                            acc[h] += qq.x * kk.x + qq.y * kk.y;
                        }
                }
            }
            __syncthreads(); // ks is rewritten by the next chunk
        }
        if (tid < n_valid) {
#pragma unroll
            for (int h = 0; h < MAX_G; h++)
                if (h < G) ps[h][tid] = acc[h] * scale;
        } else {
            for (int h = 0; h < G; h++) ps[h][tid] = -INFINITY;
        }
        __syncthreads();
        // phase 2: warp w updates the online softmax of heads w + 4k
#pragma unroll
        for (int k = 0; k < DEC_HEADS_PER_WARP; k++) {
            const int h = warp + DEC_WARPS * k;
            if (h >= G) continue; // uniform in the warp
            float mx = -INFINITY;
            for (int j = lane; j < DEC_TILE; j += 32) mx = fmaxf(mx, ps[h][j]);
            for (int off = 16; off > 0; off >>= 1) mx = fmaxf(mx, __shfl_xor_sync(0xFFFFFFFFu, mx, off));
            float mn;
            const float corr = trit_softmax_rescale(m_r[k], mx, &mn);
            float sum = 0.0f;
            for (int j = lane; j < DEC_TILE; j += 32) {
                const float p = trit_softmax_p(ps[h][j], mn);
                ps[h][j] = p;
                sum += p;
            }
            for (int off = 16; off > 0; off >>= 1) sum += __shfl_xor_sync(0xFFFFFFFFu, sum, off);
            l_r[k] = l_r[k] * corr + sum;
            m_r[k] = mn;
            if (lane == 0) corr_s[h] = corr;
        }
        __syncthreads();
        // phase 3: o = o * corr + P V for dims tid, tid + 128
#pragma unroll
        for (int k = 0; k < DEC_DIMS_PER_THREAD; k++) {
            const int64_t d = tid + DEC_THREADS * k;
            if (d >= head_dim) continue;
#pragma unroll
            for (int h = 0; h < MAX_G; h++)
                if (h < G) o[k][h] *= corr_s[h];
            for (int i = 0; i < n_valid; i++) {
                const float v = __half2float(vg[(int64_t)rows_s[i] * kv_dim + d]);
#pragma unroll
                for (int h = 0; h < MAX_G; h++)
                    if (h < G) o[k][h] += ps[h][i] * v;
            }
        }
        __syncthreads(); // ps, corr_s and rows_s are rewritten by the next tile
    }

#pragma unroll
    for (int k = 0; k < DEC_DIMS_PER_THREAD; k++) {
        const int64_t d = tid + DEC_THREADS * k;
        if (d >= head_dim) continue;
#pragma unroll
        for (int h = 0; h < MAX_G; h++)
            if (h < G) part_o[(split * n_heads + h0 + h) * head_dim + d] = o[k][h];
    }
#pragma unroll
    for (int k = 0; k < DEC_HEADS_PER_WARP; k++) {
        const int h = warp + DEC_WARPS * k;
        if (h < G && lane == 0) ml[2 * h] = m_r[k], ml[2 * h + 1] = l_r[k];
    }
}

static __global__ void __launch_bounds__(DEC_THREADS TRIT_BLACKWELL_MIN1) // cuda_check.h
trit_attn_decode_kernel(const float *__restrict__ q, const __half *__restrict__ k_cache,
                        const __half *__restrict__ v_cache, int64_t n_heads, int64_t n_kv_heads, int64_t head_dim,
                        trit_cuda_kv_map map, int64_t tok0, int n_splits, float *__restrict__ part_o,
                        float *__restrict__ part_ml, unsigned *__restrict__ counters, float *__restrict__ att) {
    __shared__ __align__(16) float qs[MAX_G * MAX_HD]; // the group's query rows
    __shared__ float ps[MAX_G][DEC_TILE];              // scores, then probabilities, of the tile
    __shared__ __half2 ks[DEC_TILE][DEC_KC2 + 1];      // a chunk of the tile's K rows (+1: conflict-free reads)
    __shared__ int32_t rows_s[DEC_TILE];               // the tile's cache rows
    __shared__ float corr_s[MAX_G];
    __shared__ float ml_s[MAX_SPLITS][MAX_G][2];       // the merge: every split's (max, sum) ...
    __shared__ float w_s[MAX_G][MAX_SPLITS];           // ... and its weight
    __shared__ int last_s;
    const int tid = threadIdx.x;
    const int64_t g = blockIdx.x, split = blockIdx.y, tz = blockIdx.z, t = tok0 + tz;
    const int G = (int)(n_heads / n_kv_heads);
    const int64_t h0 = g * G, kv_dim = n_kv_heads * head_dim, q_dim = n_heads * head_dim;
    // token t of the batch: its query row and output row, its slot of the scratch and tickets
    q += t * q_dim;
    att += t * q_dim;
    part_o += tz * n_splits * q_dim;
    part_ml += tz * n_splits * n_heads * 2;
    counters += tz * n_kv_heads;
    const int32_t *tab = trit_kv_token_table(map.d_tables, map.d_tok_table, map.max_blocks, t);
    int64_t t0, t1;
    trit_attn_split_range(trit_kv_token_pos(map.d_pos, map.d_pos0, t) + 1, n_splits, (int)split, &t0, &t1);
    float *ml = part_ml + (split * n_heads + h0) * 2;
    if (t0 >= t1) { // an empty split: weight 0 in the merge, its o is never read
        for (int h = tid; h < G; h += DEC_THREADS) ml[2 * h] = -INFINITY, ml[2 * h + 1] = 0.0f;
    } else {
        attn_decode_split(q, k_cache, v_cache, n_heads, head_dim, kv_dim, g, G, h0, split, t0, t1, tab, qs, ps, ks,
                          rows_s, corr_s, part_o, ml);
    }

    // The last CTA of the group to finish merges the group's splits (the threadFenceReduction
    // pattern): every thread fences its partials, one ticket per CTA, the last ticket merges.
    __threadfence();
    __syncthreads();
    if (tid == 0) last_s = atomicAdd(&counters[g], 1u) == (unsigned)(n_splits - 1);
    __syncthreads();
    if (!last_s) return;
    // partials of other CTAs: read through L2 (__ldcg), never through a possibly stale L1 line
    for (int e = tid; e < n_splits * G; e += DEC_THREADS) {
        const int sp = e / G, h = e % G;
        const float *src = part_ml + ((int64_t)sp * n_heads + h0 + h) * 2;
        ml_s[sp][h][0] = __ldcg(src), ml_s[sp][h][1] = __ldcg(src + 1);
    }
    __syncthreads();
    for (int h = tid; h < G; h += DEC_THREADS)
        trit_softmax_merge_weights(&ml_s[0][h][0], &ml_s[0][h][1], 2 * MAX_G, n_splits, w_s[h]);
    __syncthreads();
    const int hd = (int)head_dim; // 32-bit index math: head_dim <= MAX_HD (review finding 6)
    for (int e = tid; e < G * hd; e += DEC_THREADS) {
        const int h = e / hd, d = e % hd;
        float v = 0.0f;
        for (int sp = 0; sp < n_splits; sp++)
            if (w_s[h][sp] != 0.0f)
                v = __fadd_rn(v, __fmul_rn(w_s[h][sp], __ldcg(part_o + (sp * n_heads + h0 + h) * head_dim + d)));
        att[(h0 + h) * head_dim + d] = v;
    }
    if (tid == 0) counters[g] = 0; // ready for the next launch (stream order makes it visible)
}

// ---- prefill: causal tiled attention --------------------------------------------------------------

constexpr int PF_THREADS = TRIT_PF_THREADS;
constexpr int PF_BK = TRIT_PF_BK;
static_assert(TRIT_CUDA_KV_BLOCK % PF_BK == 0, "a key tile (kt0 a multiple of PF_BK) lies in one KV block");

// Dynamic shared memory of the prefill kernel, floats: Q (BQ, hd + 1), K (BK, hd + 1), V (BK, hd),
// P (BQ, BK + 1).
TRIT_HD int64_t pf_smem_floats(int bq, int64_t head_dim) {
    return bq * (head_dim + 1) + PF_BK * (head_dim + 1) + PF_BK * head_dim + bq * (PF_BK + 1);
}

template <int HDT, int TPR>
static __global__ void __launch_bounds__(PF_THREADS, 1) // (, 1): ptxas otherwise spills a register to keep occupancy
trit_attn_prefill_kernel(const float *__restrict__ q, int64_t m, const __half *__restrict__ k_cache,
                         const __half *__restrict__ v_cache, int64_t n_heads, int64_t n_kv_heads, int64_t head_dim,
                         const int32_t *__restrict__ pos0_p, const int32_t *__restrict__ tab,
                         float *__restrict__ att) {
    constexpr int BQ = PF_THREADS / TPR, NJ = PF_BK / TPR, ND = HDT / TPR;
    static_assert(32 % TPR == 0 && PF_BK % TPR == 0 && HDT % TPR == 0, "a row's threads share a warp");
    extern __shared__ float smem[];
    const int64_t ld = head_dim + 1;
    float *Qs = smem, *Ks = Qs + BQ * ld, *Vs = Ks + PF_BK * ld, *Ps = Vs + PF_BK * head_dim;
    const int tid = threadIdx.x, r = trit_pf_row(tid, TPR), sub = trit_pf_sub(tid, TPR);
    const int64_t tok0 = (int64_t)blockIdx.x * BQ, h = blockIdx.y, g = h / (n_heads / n_kv_heads);
    const int64_t q_dim = n_heads * head_dim, kv_dim = n_kv_heads * head_dim, pos0 = *pos0_p;
    const float scale = attn_scale(head_dim);

    const int hd = (int)head_dim; // 32-bit index math: head_dim <= MAX_HD (review finding 6)
    for (int e = tid; e < BQ * hd; e += PF_THREADS) {
        const int rr = e / hd, d = e % hd;
        const int64_t tok = tok0 + rr;
        Qs[rr * ld + d] = tok < m ? q[tok * q_dim + h * head_dim + d] : 0.0f;
    }
    const int64_t qp = trit_pf_qpos(pos0, tok0, r, m), last = trit_pf_last_key(pos0, tok0, BQ, m);
    float m_row = -INFINITY, l_row = 0.0f, o[ND];
#pragma unroll
    for (int j = 0; j < ND; j++) o[j] = 0.0f;

    for (int64_t kt0 = 0; kt0 <= last; kt0 += PF_BK) {
        __syncthreads(); // the previous tile's K and V are no longer read (and Q has landed)
        const int64_t row0 = trit_kv_row(tab, kt0); // the key tile lies in one block (static_assert below)
        for (int e = tid; e < PF_BK * hd; e += PF_THREADS) {
            const int c = e / hd, d = e % hd;
            const int64_t kp = kt0 + c;
            float kv = 0.0f, vv = 0.0f; // past the last key: zeros, never stale or unwritten rows
            if (kp <= last) {
                kv = __half2float(k_cache[(row0 + c) * kv_dim + g * head_dim + d]);
                vv = __half2float(v_cache[(row0 + c) * kv_dim + g * head_dim + d]);
            }
            Ks[c * ld + d] = kv;
            Vs[c * head_dim + d] = vv;
        }
        __syncthreads();
        float s[NJ];
#pragma unroll
        for (int j = 0; j < NJ; j++) s[j] = 0.0f;
        for (int64_t d = 0; d < head_dim; d++) {
            const float qd = Qs[r * ld + d];
#pragma unroll
            for (int j = 0; j < NJ; j++) s[j] += qd * Ks[trit_pf_col(tid, TPR, j) * ld + d];
        }
        float mx = -INFINITY;
#pragma unroll
        for (int j = 0; j < NJ; j++) {
            s[j] = kt0 + trit_pf_col(tid, TPR, j) <= qp ? s[j] * scale : -INFINITY;
            mx = fmaxf(mx, s[j]);
        }
#pragma unroll
        for (int off = 1; off < TPR; off <<= 1) mx = fmaxf(mx, __shfl_xor_sync(0xFFFFFFFFu, mx, off));
        float mn;
        const float corr = trit_softmax_rescale(m_row, mx, &mn);
        float sum = 0.0f;
#pragma unroll
        for (int j = 0; j < NJ; j++) {
            const float p = trit_softmax_p(s[j], mn);
            Ps[r * (PF_BK + 1) + trit_pf_col(tid, TPR, j)] = p;
            sum += p;
        }
#pragma unroll
        for (int off = 1; off < TPR; off <<= 1) sum += __shfl_xor_sync(0xFFFFFFFFu, sum, off);
        l_row = l_row * corr + sum;
        m_row = mn;
        __syncwarp(); // row r's probabilities come from the tpr threads of this warp
#pragma unroll
        for (int j = 0; j < ND; j++) o[j] *= corr;
        for (int c = 0; c < PF_BK; c++) {
            const float p = Ps[r * (PF_BK + 1) + c];
#pragma unroll
            for (int j = 0; j < ND; j++) {
                const int64_t d = sub + TPR * j;
                if (d < head_dim) o[j] += p * Vs[c * head_dim + d];
            }
        }
    }

    const int64_t tok = tok0 + r;
    if (tok >= m) return;
    float w; // 1 / l, as the decode path's merge of one partial
    trit_softmax_merge_weights(&m_row, &l_row, 1, 1, &w);
#pragma unroll
    for (int j = 0; j < ND; j++) {
        const int64_t d = sub + TPR * j;
        if (d < head_dim) att[tok * q_dim + h * head_dim + d] = __fmul_rn(w, o[j]);
    }
}

// ---- launchers -------------------------------------------------------------------------------------

struct rope_args {
    float qs, ks, vs;
    int qd, kd, vd;
};

// PRECOND: 1 <= m <= 65535; head_dim even; every token's position < rows of the tables, its cache row
// < rows of the cache.
enum trit_status trit_rope_kv_cuda(const int32_t *acc, int64_t m, const float *act_scale, const rope_args &w,
                                   const trit_cuda_attn_shape &sh, int style, const float *cos_t, const float *sin_t,
                                   const trit_cuda_kv_map &map, float *q, __half *k_cache, __half *v_cache,
                                   cudaStream_t stream) {
    const int64_t items = (sh.n_heads + sh.n_kv_heads) * (sh.head_dim / 2) + sh.n_kv_heads * sh.head_dim;
    const dim3 grid((unsigned)((items + ROPE_THREADS - 1) / ROPE_THREADS), (unsigned)m);
    TRIT_CUDA_LAUNCH(trit_rope_kv_kernel<<<grid, ROPE_THREADS, 0, stream>>>(
        acc, act_scale, w.qs, w.qd, w.ks, w.kd, w.vs, w.vd, sh.n_heads, sh.n_kv_heads, sh.head_dim, style, cos_t,
        sin_t, map, q, k_cache, v_cache));
    return TRIT_OK;
}

// PRECOND: n_heads % n_kv_heads == 0, group <= MAX_G; head_dim even, <= MAX_HD; 1 <= n_splits <=
// MAX_SPLITS; 1 <= m; every token's position < n_ctx; counters (min(m, TRIT_CUDA_ATT_DEC_TOKENS),
// n_kv_heads) zero (the kernel leaves them zero). Tokens run in launches of TRIT_CUDA_ATT_DEC_TOKENS
// that reuse the scratch in stream order.
enum trit_status trit_attn_decode_cuda(const float *q, int64_t m, const __half *k_cache, const __half *v_cache,
                                       const trit_cuda_attn_shape &sh, const trit_cuda_kv_map &map, int n_splits,
                                       float *part_o, float *part_ml, unsigned *counters, float *att,
                                       cudaStream_t stream) {
    for (int64_t t0 = 0; t0 < m; t0 += TRIT_CUDA_ATT_DEC_TOKENS) {
        const int64_t mt = m - t0 < TRIT_CUDA_ATT_DEC_TOKENS ? m - t0 : TRIT_CUDA_ATT_DEC_TOKENS;
        const dim3 grid((unsigned)sh.n_kv_heads, (unsigned)n_splits, (unsigned)mt);
        TRIT_CUDA_LAUNCH(trit_attn_decode_kernel<<<grid, DEC_THREADS, 0, stream>>>(
            q, k_cache, v_cache, sh.n_heads, sh.n_kv_heads, sh.head_dim, map, t0, n_splits, part_o, part_ml, counters,
            att));
    }
    return TRIT_OK;
}

template <int HDT, int TPR>
enum trit_status trit_attn_prefill_launch(const float *q, int64_t m, const __half *k_cache, const __half *v_cache,
                                          const trit_cuda_attn_shape &sh, const int32_t *pos0, const int32_t *tab,
                                          float *att, cudaStream_t stream) {
    constexpr int BQ = PF_THREADS / TPR;
    const size_t smem = (size_t)pf_smem_floats(BQ, sh.head_dim) * sizeof(float);
    // above the 48 KB default (hd 128: 53 KB; hd 256: 84 KB, within the 99 KB of sm_86 / sm_89)
    TRIT_CUDA_CHECK(cudaFuncSetAttribute(trit_attn_prefill_kernel<HDT, TPR>,
                                         cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem));
    const dim3 grid((unsigned)((m + BQ - 1) / BQ), (unsigned)sh.n_heads);
    TRIT_CUDA_LAUNCH(trit_attn_prefill_kernel<HDT, TPR><<<grid, PF_THREADS, smem, stream>>>(
        q, m, k_cache, v_cache, sh.n_heads, sh.n_kv_heads, sh.head_dim, pos0, tab, att));
    return TRIT_OK;
}

// Query rows per CTA for head_dim <= 128 (review finding 4): 32 when two CTAs of that tile fit an
// SM's shared memory (sm_80: 164 KB, sm_90: 228 KB), else 16 (sm_86 and sm_89 have 100 KB, where
// the 32-row tile at head_dim 128, 53.6 KB, runs one CTA of 4 warps per SM; 16 rows take 43.3 KB).
int prefill_rows_for_device(int64_t head_dim) {
    int dev = 0, smem_sm = 0;
    if (cudaGetDevice(&dev) != cudaSuccess ||
        cudaDeviceGetAttribute(&smem_sm, cudaDevAttrMaxSharedMemoryPerMultiprocessor, dev) != cudaSuccess)
        return 16;
    const int64_t big = pf_smem_floats(32, head_dim) * (int64_t)sizeof(float) + 1024; // + the CTA's reserved KB
    return 2 * big <= smem_sm ? 32 : 16;
}

// PRECOND: as the decode launcher; 1 <= m; *pos0 + m <= n_ctx; ceil(m / 16) <= 2^31 - 1; rows 0
// (by the device), 16 or 32 (ignored above head_dim 128, which always takes 16); tab: the
// sequence's block table (NULL: the contiguous cache).
enum trit_status trit_attn_prefill_cuda(const float *q, int64_t m, const __half *k_cache, const __half *v_cache,
                                        const trit_cuda_attn_shape &sh, const int32_t *pos0, const int32_t *tab,
                                        float *att, int rows, cudaStream_t stream) {
    if (sh.head_dim > 128) return trit_attn_prefill_launch<256, 8>(q, m, k_cache, v_cache, sh, pos0, tab, att, stream);
    if (rows == 0) rows = prefill_rows_for_device(sh.head_dim);
    if (sh.head_dim <= 64)
        return rows == 32 ? trit_attn_prefill_launch<64, 4>(q, m, k_cache, v_cache, sh, pos0, tab, att, stream)
                          : trit_attn_prefill_launch<64, 8>(q, m, k_cache, v_cache, sh, pos0, tab, att, stream);
    return rows == 32 ? trit_attn_prefill_launch<128, 4>(q, m, k_cache, v_cache, sh, pos0, tab, att, stream)
                      : trit_attn_prefill_launch<128, 8>(q, m, k_cache, v_cache, sh, pos0, tab, att, stream);
}

// One sequence's contiguous cache: positions *pos0 + t, no block table.
trit_cuda_kv_map contiguous_map(const int32_t *d_pos0) { return trit_cuda_kv_map{d_pos0, NULL, NULL, NULL, 0}; }

enum trit_status map_check(const char *op, const trit_cuda_kv_map &map) {
    if (!map.d_pos0 && !map.d_pos) return trit_error(TRIT_ERR_INVALID_ARG, "%s: no positions in the map", op);
    if (map.d_tables && map.max_blocks < 1)
        return trit_error(TRIT_ERR_INVALID_ARG, "%s: block tables of %d entries", op, map.max_blocks);
    return TRIT_OK;
}

enum trit_status attn_check(const char *op, const trit_cuda_attn_shape &sh) {
    if (sh.n_heads < 1 || sh.n_kv_heads < 1 || sh.n_heads % sh.n_kv_heads != 0 ||
        sh.n_heads / sh.n_kv_heads > MAX_G || sh.head_dim < 2 || sh.head_dim % 2 != 0 || sh.head_dim > MAX_HD ||
        sh.n_ctx < 1 || sh.n_kv_heads > 65535 || sh.n_heads > 65535)
        return trit_error(TRIT_ERR_UNSUPPORTED,
                          "%s: attention shape %lld heads / %lld KV heads x head_dim %lld: the CUDA kernels take "
                          "groups of at most %d query heads per KV head and an even head_dim <= %d",
                          op, (long long)sh.n_heads, (long long)sh.n_kv_heads, (long long)sh.head_dim, MAX_G, MAX_HD);
    return TRIT_OK;
}

} // namespace

// ---- op entries ------------------------------------------------------------------------------------

extern "C" enum trit_status trit_cuda_rope_kv_paged(const int32_t *d_acc, int64_t m, const float *d_act_scale,
                                                    const struct trit_cuda_wscale ws[3],
                                                    struct trit_cuda_attn_shape shape, int rope_style,
                                                    const float *d_cos, const float *d_sin, struct trit_cuda_kv_map map,
                                                    float *d_q, void *d_k_cache, void *d_v_cache, void *stream) {
    const char *op = "trit_cuda_rope_kv";
    if (!d_acc || !d_act_scale || !ws || !d_cos || !d_sin || !d_q || !d_k_cache || !d_v_cache)
        return trit_error(TRIT_ERR_INVALID_ARG, "%s: NULL argument", op);
    TRIT_TRY(attn_check(op, shape));
    TRIT_TRY(map_check(op, map));
    if (m < 1 || m > 65535 || m > shape.n_ctx)
        return trit_error(TRIT_ERR_INVALID_ARG, "%s: m = %lld (1..65535)", op, (long long)m);
    if (rope_style != 0 && rope_style != 1) return trit_error(TRIT_ERR_INVALID_ARG, "%s: rope style %d", op, rope_style);
    const rope_args w = {ws[0].scale, ws[1].scale, ws[2].scale, ws[0].div, ws[1].div, ws[2].div};
    return trit_rope_kv_cuda(d_acc, m, d_act_scale, w, shape, rope_style, d_cos, d_sin, map, d_q,
                             static_cast<__half *>(d_k_cache), static_cast<__half *>(d_v_cache), (cudaStream_t)stream);
}

extern "C" enum trit_status trit_cuda_rope_kv(const int32_t *d_acc, int64_t m, const float *d_act_scale,
                                              const struct trit_cuda_wscale ws[3], struct trit_cuda_attn_shape shape,
                                              int rope_style, const float *d_cos, const float *d_sin,
                                              const int32_t *d_pos0, float *d_q, void *d_k_cache, void *d_v_cache,
                                              void *stream) {
    if (!d_pos0) return trit_error(TRIT_ERR_INVALID_ARG, "trit_cuda_rope_kv: NULL argument");
    return trit_cuda_rope_kv_paged(d_acc, m, d_act_scale, ws, shape, rope_style, d_cos, d_sin, contiguous_map(d_pos0),
                                   d_q, d_k_cache, d_v_cache, stream);
}

extern "C" enum trit_status trit_cuda_attn_decode_paged(const float *d_q, int64_t m, const void *d_k_cache,
                                                        const void *d_v_cache, struct trit_cuda_attn_shape shape,
                                                        struct trit_cuda_kv_map map, int n_splits, float *d_part_o,
                                                        float *d_part_ml, uint32_t *d_counters, float *d_att,
                                                        void *stream) {
    const char *op = "trit_cuda_attn_decode";
    if (!d_q || !d_k_cache || !d_v_cache || !d_part_o || !d_part_ml || !d_counters || !d_att)
        return trit_error(TRIT_ERR_INVALID_ARG, "%s: NULL argument", op);
    TRIT_TRY(attn_check(op, shape));
    TRIT_TRY(map_check(op, map));
    if (n_splits < 1 || n_splits > MAX_SPLITS)
        return trit_error(TRIT_ERR_INVALID_ARG, "%s: %d splits (1..%d)", op, n_splits, MAX_SPLITS);
    if (m < 1 || m > INT32_MAX) return trit_error(TRIT_ERR_INVALID_ARG, "%s: m = %lld", op, (long long)m);
    return trit_attn_decode_cuda(d_q, m, static_cast<const __half *>(d_k_cache), static_cast<const __half *>(d_v_cache),
                                 shape, map, n_splits, d_part_o, d_part_ml, d_counters, d_att, (cudaStream_t)stream);
}

extern "C" enum trit_status trit_cuda_attn_decode(const float *d_q, const void *d_k_cache, const void *d_v_cache,
                                                  struct trit_cuda_attn_shape shape, const int32_t *d_pos0,
                                                  int n_splits, float *d_part_o, float *d_part_ml,
                                                  uint32_t *d_counters, float *d_att, void *stream) {
    if (!d_pos0) return trit_error(TRIT_ERR_INVALID_ARG, "trit_cuda_attn_decode: NULL argument");
    return trit_cuda_attn_decode_paged(d_q, 1, d_k_cache, d_v_cache, shape, contiguous_map(d_pos0), n_splits, d_part_o,
                                       d_part_ml, d_counters, d_att, stream);
}

extern "C" enum trit_status trit_cuda_attn_prefill_paged(const float *d_q, int64_t m, const void *d_k_cache,
                                                         const void *d_v_cache, struct trit_cuda_attn_shape shape,
                                                         struct trit_cuda_kv_map map, int rows, float *d_att,
                                                         void *stream) {
    const char *op = "trit_cuda_attn_prefill";
    if (!d_q || !d_k_cache || !d_v_cache || !map.d_pos0 || !d_att)
        return trit_error(TRIT_ERR_INVALID_ARG, "%s: NULL argument", op);
    if (map.d_pos || map.d_tok_table)
        return trit_error(TRIT_ERR_INVALID_ARG, "%s: one sequence's run (*pos0 + t, block table 0)", op);
    TRIT_TRY(attn_check(op, shape));
    TRIT_TRY(map_check(op, map));
    if (m < 1 || m > shape.n_ctx) return trit_error(TRIT_ERR_INVALID_ARG, "%s: m = %lld", op, (long long)m);
    if (rows != 0 && rows != 16 && rows != 32)
        return trit_error(TRIT_ERR_INVALID_ARG, "%s: %d query rows per CTA (0, 16 or 32)", op, rows);
    return trit_attn_prefill_cuda(d_q, m, static_cast<const __half *>(d_k_cache),
                                  static_cast<const __half *>(d_v_cache), shape, map.d_pos0, map.d_tables, d_att, rows,
                                  (cudaStream_t)stream);
}

extern "C" enum trit_status trit_cuda_attn_prefill_rows(const float *d_q, int64_t m, const void *d_k_cache,
                                                        const void *d_v_cache, struct trit_cuda_attn_shape shape,
                                                        const int32_t *d_pos0, int rows, float *d_att, void *stream) {
    return trit_cuda_attn_prefill_paged(d_q, m, d_k_cache, d_v_cache, shape, contiguous_map(d_pos0), rows, d_att,
                                        stream);
}

extern "C" enum trit_status trit_cuda_attn_prefill(const float *d_q, int64_t m, const void *d_k_cache,
                                                   const void *d_v_cache, struct trit_cuda_attn_shape shape,
                                                   const int32_t *d_pos0, float *d_att, void *stream) {
    return trit_cuda_attn_prefill_rows(d_q, m, d_k_cache, d_v_cache, shape, d_pos0, 0, d_att, stream);
}
