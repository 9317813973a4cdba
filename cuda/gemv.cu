/*
 * gemv.cu: ternary GEMV for decode, m = 1..8 tokens (v1 of both variants; bench/ keeps versions).
 *
 *   acc (m, N) int32 = q (m, K) int8 . t (N, K)^T,   or y (m, N) fp32 = epilogue(acc)
 *   weights in the tile layout, activations in the act layout (ternary_layout.h)
 *
 * Design (both variants):
 *   - one CTA of 8 warps per 16-row strip; warp w takes the 128-col chunks w, w + 8, ... (split-K
 *     inside the CTA); each lane issues GEMV_UNROLL independent 16-byte weight loads
 *     (ld.global.nc.L1::no_allocate: each weight byte is used once) before using any;
 *   - a lane holds rows g and g + 8 of the strip (the tile layout's register pairs); its
 *     activation words for a chunk are 2 x 16 bytes per token (__ldg, L1/L2 resident: every warp
 *     of every CTA reads the same m * K bytes);
 *   - reduction: 2 xor-shuffles over the 4 lanes of a group, then the 8 warps through 4 KB of
 *     shared memory at most; one bias subtraction per output.
 *   dp4a:     a_i = (word >> 2i) & 0x03030303 (t+1 bytes), acc += dp4a(a_i, x); minus sum(q).
 *             Per 4 weights: 2 ops of decode shared by the tokens + 1 dp4a per token.
 *   add-only: masks by byte permute, u = lop3(x ^ 0x80, P, Q), two 16-bit lanes by byte permute,
 *             plain integer adds; minus the row bias 128 n_pos + 127 n_neg. No multiply.
 *             Per 4 weights: 4 ops of masks shared by the tokens + ~4.5 per token.
 *
 * Napkin math (H100 SXM, 132 SMs, ~3.0 TB/s copy): N x K = 2560 x 6912 is 4.4 MB of weights ->
 * 1.5 us at bandwidth; 160 CTAs x 8 warps x 4 loads x 512 B = 2.6 MB in flight, above the ~2.3 MB
 * bandwidth-latency product. 8192 x 28672: 58.7 MB -> 19.6 us. Issue: 64 weights per 16-byte load;
 * dp4a at m = 1 is ~48 + 24 ops per load, i.e. ~0.5 of the issue rate at full bandwidth; it turns
 * issue-bound near m = 6-8, where the mma GEMM (swap-AB, 8 tokens on the n side) takes over. The
 * add-only variant costs ~2x dp4a's instructions at m = 1 and is issue-bound from m = 2.
 */
#include <cuda_runtime.h>
#include <stdint.h>

#include "cuda_check.h"
#include "group_rule.h"
#include "ternary_layout.h"
#include "trit_cuda.h"

namespace {

constexpr int GEMV_WARPS = 8;  // warps per CTA = K-splits of one strip
constexpr int GEMV_UNROLL = 4; // 16-byte weight loads in flight per lane

enum class Dot { dp4a, add };

// One lane's 16 bytes of a weight tile: read-only path, not kept in L1 (streamed once).
__device__ __forceinline__ uint4 ld_weights(const uint4 *p) {
    uint4 v;
    asm("ld.global.nc.L1::no_allocate.v4.u32 {%0, %1, %2, %3}, [%4];"
        : "=r"(v.x), "=r"(v.y), "=r"(v.z), "=r"(v.w)
        : "l"(p));
    return v;
}

// A lane's weights of chunks c0, c0 + GEMV_WARPS, ... (U of them, issued before any is used);
// zeros past the last chunk. wl: the lane's chunk 0 (chunk c at wl + 32 c).
template <int U>
__device__ __forceinline__ void ld_chunks(uint4 (&wv)[U], const uint4 *wl, int64_t c0, int64_t n_chunks) {
#pragma unroll
    for (int u = 0; u < U; u++) {
        const int64_t c = c0 + (int64_t)u * GEMV_WARPS;
        wv[u] = c < n_chunks ? ld_weights(wl + 32 * c) : make_uint4(0, 0, 0, 0);
    }
}

// 2 CTAs per SM (at most 128 registers a thread) keeps the m = 8 variants free of spills on sm_80..
// sm_90; Blackwell's ptxas spills under that cap (8 bytes on sm_100), so there it asks for 1.
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 1000
#define GEMV_MIN_CTAS 1
#else
#define GEMV_MIN_CTAS 2
#endif

template <int M, Dot DOT, bool F32>
static __global__ void __launch_bounds__(GEMV_WARPS * 32, GEMV_MIN_CTAS) // <= 128 registers, no spills at m = 8
trit_gemv_kernel(const uint4 *__restrict__ w, const int32_t *__restrict__ row_bias, const int8_t *__restrict__ q,
                 int64_t k_pad, const int32_t *__restrict__ qsum, const float *__restrict__ act_scale, float w_scale,
                 int scale_div, int64_t n_chunks, int64_t n_rows, int32_t *__restrict__ acc_out,
                 float *__restrict__ y_out) {
    __shared__ int32_t red[GEMV_WARPS][M][16];
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    const int64_t strip = blockIdx.x;
    const uint4 *wl = w + trit_tl_lane_vec(strip, 0, n_chunks, lane); // chunk c at wl + 32 c
    const int8_t *ql = q + 32 * (lane & 3);                           // token m, chunk c: + m k_pad + 128 c

    int32_t acc[M][2];
#pragma unroll
    for (int m = 0; m < M; m++) acc[m][0] = acc[m][1] = 0;

    for (int64_t c0 = warp; c0 < n_chunks; c0 += GEMV_WARPS * GEMV_UNROLL) {
        uint4 wv[GEMV_UNROLL];
        ld_chunks(wv, wl, c0, n_chunks);
#pragma unroll
        for (int u = 0; u < GEMV_UNROLL; u++) {
            const int64_t c = c0 + (int64_t)u * GEMV_WARPS;
            if (c >= n_chunks) break; // uniform in the warp
            const uint32_t word[4] = {wv[u].x, wv[u].y, wv[u].z, wv[u].w};
            if constexpr (DOT == Dot::dp4a) {
                uint32_t a[4][4];
#pragma unroll
                for (int j = 0; j < 4; j++)
#pragma unroll
                    for (int i = 0; i < 4; i++) a[j][i] = trit_tl_decode(word[j], i);
#pragma unroll
                for (int m = 0; m < M; m++) {
                    const uint4 *xp = reinterpret_cast<const uint4 *>(ql + m * k_pad + 128 * c);
                    const uint4 x0 = __ldg(xp), x1 = __ldg(xp + 1);
                    const uint32_t x[8] = {x0.x, x0.y, x0.z, x0.w, x1.x, x1.y, x1.z, x1.w};
#pragma unroll
                    for (int j = 0; j < 4; j++) {
                        // a_i pairs with act word 2j + (i >> 1); rows g (i even) and g + 8 (i odd)
                        acc[m][0] = trit_dp4a(a[j][0], x[2 * j], acc[m][0]);
                        acc[m][1] = trit_dp4a(a[j][1], x[2 * j], acc[m][1]);
                        acc[m][0] = trit_dp4a(a[j][2], x[2 * j + 1], acc[m][0]);
                        acc[m][1] = trit_dp4a(a[j][3], x[2 * j + 1], acc[m][1]);
                    }
                }
            } else {
                uint32_t pos[4][4], nonneg[4][4];
#pragma unroll
                for (int j = 0; j < 4; j++) {
                    const uint32_t word_or = trit_add_word_or(word[j]);
#pragma unroll
                    for (int i = 0; i < 4; i++) trit_add_masks(word[j], word_or, i, &pos[j][i], &nonneg[j][i]);
                }
#pragma unroll
                for (int m = 0; m < M; m++) {
                    const uint4 *xp = reinterpret_cast<const uint4 *>(ql + m * k_pad + 128 * c);
                    const uint4 x0 = __ldg(xp), x1 = __ldg(xp + 1);
                    const uint32_t x[8] = {x0.x, x0.y, x0.z, x0.w, x1.x, x1.y, x1.z, x1.w};
                    uint32_t lanes0 = 0, lanes1 = 0; // 8 widened words per row per chunk (<= 128)
#pragma unroll
                    for (int j = 0; j < 4; j++) {
                        const uint32_t xb0 = trit_add_bias_act(x[2 * j]), xb1 = trit_add_bias_act(x[2 * j + 1]);
                        lanes0 += trit_add_widen(trit_add_select(xb0, pos[j][0], nonneg[j][0]));
                        lanes1 += trit_add_widen(trit_add_select(xb0, pos[j][1], nonneg[j][1]));
                        lanes0 += trit_add_widen(trit_add_select(xb1, pos[j][2], nonneg[j][2]));
                        lanes1 += trit_add_widen(trit_add_select(xb1, pos[j][3], nonneg[j][3]));
                    }
                    acc[m][0] += trit_add_lanes(lanes0);
                    acc[m][1] += trit_add_lanes(lanes1);
                }
            }
        }
    }

    // rows g and g + 8: sum the 4 lanes of the group, then the 8 warps
#pragma unroll
    for (int m = 0; m < M; m++)
#pragma unroll
        for (int r = 0; r < 2; r++) {
            int32_t v = acc[m][r];
            v += __shfl_xor_sync(0xFFFFFFFFu, v, 1);
            v += __shfl_xor_sync(0xFFFFFFFFu, v, 2);
            acc[m][r] = v;
        }
    if ((lane & 3) == 0) {
#pragma unroll
        for (int m = 0; m < M; m++) {
            red[warp][m][lane >> 2] = acc[m][0];
            red[warp][m][(lane >> 2) + 8] = acc[m][1];
        }
    }
    __syncthreads();
    for (int idx = threadIdx.x; idx < M * 16; idx += GEMV_WARPS * 32) {
        const int m = idx >> 4, rr = idx & 15;
        const int64_t row = strip * 16 + rr;
        if (row >= n_rows) continue;
        int32_t s = 0;
#pragma unroll
        for (int wp = 0; wp < GEMV_WARPS; wp++) s += red[wp][m][rr];
        s -= DOT == Dot::add ? row_bias[row] : qsum[m];
        if constexpr (F32)
            y_out[m * n_rows + row] = trit_epilogue_one(s, act_scale[m], w_scale, scale_div);
        else
            acc_out[m * n_rows + row] = s;
    }
}

// ---- the group rule (trit_cuda_gemv_group_f32) -------------------------------------------------
//
// The same warps, loads and dp4a as above, but a k-block's sum must be whole before it meets its
// scales, and the blocks must meet y in ascending order. So the CTA walks K in rounds of
// GROUP_ROUND chunks (warp w takes slots w, w + 8 of a round): per chunk a lane keeps one partial
// per k-block (words 0, 1 and 2, 3), the 4 lanes of a group add theirs by 2 xor-shuffles, and lane
// 4g writes the exact sums of rows g and g + 8 into shared memory (double buffered). After the
// round's barrier, thread (m, r) of the first 16 M walks the round's blocks in order and adds each
// term to its y, held in a register across rounds; the other warps go on to the next round.
// Per round: 2 x 16 x 2 x M x 16 int32 of shared memory (32 KB at M = 8), one barrier.
// The serial adds cost 4 dependent fp32 ops and 3 loads per 64 weights per output; the group
// scales add 4 bytes per 16 bytes of g64 weights to the stream (fp32, as the contract keeps them).

constexpr int GROUP_UNROLL = 2;                       // chunks per warp per round
constexpr int GROUP_ROUND = GEMV_WARPS * GROUP_UNROLL; // chunks per round

template <int M>
static __global__ void __launch_bounds__(GEMV_WARPS * 32, GEMV_MIN_CTAS)
trit_gemv_group_kernel(const uint4 *__restrict__ w, const float *__restrict__ gscale, int64_t n_groups, int g_shift,
                       const int8_t *__restrict__ q, int64_t k_pad, const int32_t *__restrict__ bsum,
                       const float *__restrict__ inv, int inv_per_block, int64_t n_kb, int64_t n_chunks,
                       int64_t n_rows, float *__restrict__ y_out) {
    __shared__ int32_t part[2][GROUP_ROUND][2][M][16];
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    const int64_t strip = blockIdx.x;
    const uint4 *wl = w + trit_tl_lane_vec(strip, 0, n_chunks, lane); // chunk c at wl + 32 c
    const int8_t *ql = q + 32 * (lane & 3);
    // the ordered sums: thread (sm, srr) owns output row strip * 16 + srr of token sm
    const int sm = threadIdx.x >> 4, srr = threadIdx.x & 15;
    const int64_t srow = strip * 16 + srr;
    const bool summer = sm < M && srow < n_rows;
    float y = 0.0f;

    for (int64_t c0 = 0, rd = 0; c0 < n_chunks; c0 += GROUP_ROUND, rd++) {
        const int buf = (int)(rd & 1);
        uint4 wv[GROUP_UNROLL];
        ld_chunks(wv, wl, c0 + warp, n_chunks);
#pragma unroll
        for (int u = 0; u < GROUP_UNROLL; u++) {
            const int slot = u * GEMV_WARPS + warp;
            const int64_t c = c0 + slot;
            if (c >= n_chunks) break; // uniform in the warp
            const uint32_t word[4] = {wv[u].x, wv[u].y, wv[u].z, wv[u].w};
            uint32_t a[4][4];
#pragma unroll
            for (int j = 0; j < 4; j++)
#pragma unroll
                for (int i = 0; i < 4; i++) a[j][i] = trit_tl_decode(word[j], i);
#pragma unroll
            for (int m = 0; m < M; m++) {
                const uint4 *xp = reinterpret_cast<const uint4 *>(ql + m * k_pad + 128 * c);
                const uint4 x0 = __ldg(xp), x1 = __ldg(xp + 1);
                const uint32_t x[8] = {x0.x, x0.y, x0.z, x0.w, x1.x, x1.y, x1.z, x1.w};
                int32_t p[2][2] = {{0, 0}, {0, 0}}; // [k-block of the chunk][rows g, g + 8]
#pragma unroll
                for (int j = 0; j < 4; j++) {
                    int32_t *pb = p[j >> 1];
                    pb[0] = trit_dp4a(a[j][0], x[2 * j], pb[0]);
                    pb[1] = trit_dp4a(a[j][1], x[2 * j], pb[1]);
                    pb[0] = trit_dp4a(a[j][2], x[2 * j + 1], pb[0]);
                    pb[1] = trit_dp4a(a[j][3], x[2 * j + 1], pb[1]);
                }
#pragma unroll
                for (int b = 0; b < 2; b++)
#pragma unroll
                    for (int r = 0; r < 2; r++) {
                        int32_t v = p[b][r];
                        v += __shfl_xor_sync(0xFFFFFFFFu, v, 1);
                        v += __shfl_xor_sync(0xFFFFFFFFu, v, 2);
                        if ((lane & 3) == 0) part[buf][slot][b][m][(lane >> 2) + 8 * r] = v;
                    }
            }
        }
        __syncthreads(); // the round's sums are in part[buf]; part[buf ^ 1] is being refilled next
        if (summer) {
            const int64_t n_slots = n_chunks - c0 < GROUP_ROUND ? n_chunks - c0 : GROUP_ROUND;
            for (int slot = 0; slot < n_slots; slot++)
                for (int b = 0; b < 2; b++) {
                    const int64_t kb = 2 * (c0 + slot) + b;
                    if (kb >= n_kb) break; // the 64 zero cols of a K that ends mid-chunk
                    const int32_t isum = part[buf][slot][b][sm][srr] - bsum[sm * n_kb + kb];
                    y = trit_group_step(y, isum, inv[inv_per_block ? sm * n_kb + kb : sm],
                                        gscale[srow * n_groups + (kb >> g_shift)]);
                }
        }
    }
    if (summer) y_out[sm * n_rows + srow] = y;
}

template <int M>
static enum trit_status trit_gemv_group_launch(const uint4 *w, const trit_cuda_ternary *wt, int g_shift,
                                               const int8_t *q, const int32_t *bsum, const float *inv,
                                               int inv_per_block, int64_t n_kb, float *y, cudaStream_t stream) {
    const int64_t n_chunks = wt->n_cols_pad / TRIT_TL_CHUNK;
    TRIT_CUDA_LAUNCH(trit_gemv_group_kernel<M><<<(unsigned)(wt->n_rows_pad / TRIT_TL_STRIP), GEMV_WARPS * 32, 0, stream>>>(
        w, wt->d_group_scales, wt->n_groups, g_shift, q, wt->n_cols_pad, bsum, inv, inv_per_block, n_kb, n_chunks,
        wt->n_rows, y));
    return TRIT_OK;
}

struct gemv_args {
    const uint4 *w;
    const int32_t *row_bias;
    const int8_t *q;
    int64_t k_pad;
    const int32_t *qsum;
    const float *act_scale;
    float w_scale;
    int scale_div;
    int64_t n_chunks, n_strips, n_rows;
    int32_t *acc;
    float *y;
};

template <int M, Dot DOT, bool F32>
static enum trit_status trit_gemv_launch(const gemv_args &a, cudaStream_t stream) {
    TRIT_CUDA_LAUNCH(trit_gemv_kernel<M, DOT, F32><<<(unsigned)a.n_strips, GEMV_WARPS * 32, 0, stream>>>(
        a.w, a.row_bias, a.q, a.k_pad, a.qsum, a.act_scale, a.w_scale, a.scale_div, a.n_chunks, a.n_rows, a.acc,
        a.y));
    return TRIT_OK;
}

template <Dot DOT, bool F32>
static enum trit_status trit_gemv_dispatch(int64_t m, const gemv_args &a, cudaStream_t stream) {
    switch (m) {
    case 1: return trit_gemv_launch<1, DOT, F32>(a, stream);
    case 2: return trit_gemv_launch<2, DOT, F32>(a, stream);
    case 3: return trit_gemv_launch<3, DOT, F32>(a, stream);
    case 4: return trit_gemv_launch<4, DOT, F32>(a, stream);
    case 5: return trit_gemv_launch<5, DOT, F32>(a, stream);
    case 6: return trit_gemv_launch<6, DOT, F32>(a, stream);
    case 7: return trit_gemv_launch<7, DOT, F32>(a, stream);
    case 8: return trit_gemv_launch<8, DOT, F32>(a, stream);
    default: return trit_error(TRIT_ERR_INTERNAL, "trit_gemv_dispatch: m %lld", (long long)m);
    }
}

// PRECOND: 1 <= m <= 8; n_strips <= 2^31 - 1; w = the tile layout of an (n_rows, k_pad) matrix;
// q (m, k_pad) in the act layout, 16-byte aligned, padding zero; qsum (dp4a) and row_bias (add)
// as trit_cuda.h describes; acc or y (m, n_rows).
enum trit_status trit_gemv_cuda(Dot dot, bool f32, int64_t m, const gemv_args &a, cudaStream_t stream) {
    if (dot == Dot::add) return trit_gemv_dispatch<Dot::add, false>(m, a, stream);
    return f32 ? trit_gemv_dispatch<Dot::dp4a, true>(m, a, stream) : trit_gemv_dispatch<Dot::dp4a, false>(m, a, stream);
}

enum trit_status gemv_check(const char *op, const struct trit_cuda_ternary *w, const int8_t *d_q, int64_t m,
                            const void *d_out, const void *d_aux) {
    if (!w || !w->d_tiles || !d_q || !d_out || !d_aux)
        return trit_error(TRIT_ERR_INVALID_ARG, "%s: NULL argument", op);
    if (m < 1 || m > TRIT_CUDA_GEMV_MAX_M)
        return trit_error(TRIT_ERR_INVALID_ARG, "%s: m = %lld, the GEMV takes 1..%d tokens", op, (long long)m,
                          TRIT_CUDA_GEMV_MAX_M);
    if (w->n_rows_pad != trit_tl_rows_pad(w->n_rows) || w->n_cols_pad != trit_tl_cols_pad(w->n_cols) ||
        w->n_rows_pad / 16 > INT32_MAX)
        return trit_error(TRIT_ERR_INVALID_ARG, "%s: inconsistent weight descriptor", op);
    if ((uintptr_t)d_q % 16 != 0 || (uintptr_t)w->d_tiles % 16 != 0)
        return trit_error(TRIT_ERR_INVALID_ARG, "%s: q and the weights must be 16-byte aligned", op);
    return TRIT_OK;
}

gemv_args gemv_make_args(const struct trit_cuda_ternary *w, const int8_t *d_q) {
    gemv_args a = {};
    a.w = static_cast<const uint4 *>(w->d_tiles);
    a.row_bias = w->d_row_bias;
    a.q = d_q;
    a.k_pad = w->n_cols_pad;
    a.w_scale = w->scale;
    a.scale_div = w->scale_kind == TRIT_SCALE_DIV;
    a.n_chunks = w->n_cols_pad / TRIT_TL_CHUNK;
    a.n_strips = w->n_rows_pad / TRIT_TL_STRIP;
    a.n_rows = w->n_rows;
    return a;
}

} // namespace

extern "C" enum trit_status trit_cuda_gemv_group_f32(const struct trit_cuda_ternary *w, const int8_t *d_q,
                                                     const int32_t *d_bsum, const float *d_act_inv, int64_t act_block,
                                                     int64_t m, float *d_y, void *stream) {
    TRIT_TRY(gemv_check("trit_cuda_gemv_group_f32", w, d_q, m, d_y, d_bsum));
    int g_shift = 0;
    TRIT_TRY(trit_group_check("trit_cuda_gemv_group_f32", w, d_bsum, d_act_inv, act_block, &g_shift));
    const uint4 *wt = static_cast<const uint4 *>(w->d_tiles);
    const int64_t n_kb = (w->n_cols + TRIT_GROUP_UNIT - 1) / TRIT_GROUP_UNIT;
    const int per_block = act_block > 0;
    cudaStream_t s = (cudaStream_t)stream;
    switch (m) {
    case 1: return trit_gemv_group_launch<1>(wt, w, g_shift, d_q, d_bsum, d_act_inv, per_block, n_kb, d_y, s);
    case 2: return trit_gemv_group_launch<2>(wt, w, g_shift, d_q, d_bsum, d_act_inv, per_block, n_kb, d_y, s);
    case 3: return trit_gemv_group_launch<3>(wt, w, g_shift, d_q, d_bsum, d_act_inv, per_block, n_kb, d_y, s);
    case 4: return trit_gemv_group_launch<4>(wt, w, g_shift, d_q, d_bsum, d_act_inv, per_block, n_kb, d_y, s);
    case 5: return trit_gemv_group_launch<5>(wt, w, g_shift, d_q, d_bsum, d_act_inv, per_block, n_kb, d_y, s);
    case 6: return trit_gemv_group_launch<6>(wt, w, g_shift, d_q, d_bsum, d_act_inv, per_block, n_kb, d_y, s);
    case 7: return trit_gemv_group_launch<7>(wt, w, g_shift, d_q, d_bsum, d_act_inv, per_block, n_kb, d_y, s);
    default: return trit_gemv_group_launch<8>(wt, w, g_shift, d_q, d_bsum, d_act_inv, per_block, n_kb, d_y, s);
    }
}


extern "C" enum trit_status trit_cuda_gemv_add_i32(const struct trit_cuda_ternary *w, const int8_t *d_q, int64_t m,
                                                   int32_t *d_acc, void *stream) {
    TRIT_TRY(gemv_check("trit_cuda_gemv_add_i32", w, d_q, m, d_acc, w ? (const void *)w->d_row_bias : NULL));
    TRIT_TRY(trit_no_group_check("trit_cuda_gemv_add_i32", w, false));
    gemv_args a = gemv_make_args(w, d_q);
    a.acc = d_acc;
    return trit_gemv_cuda(Dot::add, false, m, a, (cudaStream_t)stream);
}

extern "C" enum trit_status trit_cuda_gemv_dp4a_i32(const struct trit_cuda_ternary *w, const int8_t *d_q,
                                                    const int32_t *d_qsum, int64_t m, int32_t *d_acc, void *stream) {
    TRIT_TRY(gemv_check("trit_cuda_gemv_dp4a_i32", w, d_q, m, d_acc, d_qsum));
    gemv_args a = gemv_make_args(w, d_q);
    a.qsum = d_qsum;
    a.acc = d_acc;
    return trit_gemv_cuda(Dot::dp4a, false, m, a, (cudaStream_t)stream);
}

extern "C" enum trit_status trit_cuda_gemv_dp4a_f32(const struct trit_cuda_ternary *w, const int8_t *d_q,
                                                    const int32_t *d_qsum, const float *d_act_scale, int64_t m,
                                                    float *d_y, void *stream) {
    TRIT_TRY(gemv_check("trit_cuda_gemv_dp4a_f32", w, d_q, m, d_y, d_qsum));
    TRIT_TRY(trit_no_group_check("trit_cuda_gemv_dp4a_f32", w, false));
    if (!d_act_scale) return trit_error(TRIT_ERR_INVALID_ARG, "trit_cuda_gemv_dp4a_f32: NULL act_scale");
    gemv_args a = gemv_make_args(w, d_q);
    a.qsum = d_qsum;
    a.act_scale = d_act_scale;
    a.y = d_y;
    return trit_gemv_cuda(Dot::dp4a, true, m, a, (cudaStream_t)stream);
}
