/*
 * gemm.cu: ternary GEMM for prefill (and batched decode), any m, on int8 tensor cores (v1).
 *
 *   acc (m, N) int32 = q (m, K) int8 . t (N, K)^T,   or y (m, N) fp32 = epilogue(acc)
 *   mma.sync.aligned.m16n8k32.row.col.s32.s8.s8.s32, sm_80 and later (inline PTX)
 *
 * Design ("swap AB": weights are the 16-row A side, tokens the 8-col B side, so small m wastes
 * no weight traffic):
 *   - CTA = 4 warps; warp w owns strip 4 blockIdx.x + w (16 rows) and all 8 NT tokens of the CTA
 *     (NT n8-tiles: 2, 4 or 8 by m); blockIdx.z = split of the K chunks (split-K, int32 atomics);
 *   - A: the lane's 16-byte word of the tile layout IS its A fragment for 4 k-steps, loaded
 *     straight to registers (coalesced 512 B per warp, no shared memory, one chunk prefetched) and
 *     decoded with one shift + lop3 per register: a_i = (word >> 2i) & 0x03030303 = t + 1;
 *   - B: the token rows of a chunk (NT * 8 x 128 bytes, act layout) go through a 3-stage cp.async
 *     ring in shared memory (rows padded to 144 bytes: the 16-byte fragment reads of a quarter
 *     warp hit 32 distinct banks); a lane's B fragments for the 4 k-steps of a chunk are the 32
 *     contiguous bytes at 32t of its token row (2 x ld.shared.v4);
 *   - epilogue: D - sum(q) per token (the t+1 bias), then int32 store, atomicAdd (split-K), or
 *     the fused fp32 epilogue.
 *
 * Napkin math (H100 SXM): per chunk and warp, 1 weight load (512 B) feeds 4 x NT mma; the int8
 * ridge for 2-bit weights is m ~ 74, so up to m ~ 64 the kernel should stream weights at
 * bandwidth (4096 x 14336, 14.7 MB: ~5 us); beyond, mma.sync is bounded well below the 1979 TOPS
 * wgmma peak (a v2 with wgmma RS + TMA is the path for m >= 256; targets: bench/README.md).
 * Launch: ceil(N/64) x ceil(m/8NT) CTAs, times a split-K that brings small grids to 2 waves.
 *
 * The group rule's variant (trit_gemm_group_kernel, below the first) keeps the weights, the ring and
 * the mma, takes no split-K, and folds each k-block's sum into fp32 in order (trit_cuda.h).
 */
#include <cuda_runtime.h>
#include <stdint.h>

#include "cuda_check.h"
#include "group_rule.h"
#include "ternary_layout.h"
#include "trit_cuda.h"

namespace {

constexpr int GEMM_WARPS = 4;       // strips per CTA
constexpr int GEMM_STAGES = 3;      // cp.async ring depth for the activation rows
constexpr int GEMM_ROW_BYTES = 144; // 128 + 16: conflict-free 16-byte fragment reads

__device__ __forceinline__ uint4 ld_weights(const uint4 *p) {
    uint4 v;
    asm("ld.global.nc.L1::no_allocate.v4.u32 {%0, %1, %2, %3}, [%4];"
        : "=r"(v.x), "=r"(v.y), "=r"(v.z), "=r"(v.w)
        : "l"(p));
    return v;
}

// 16-byte global -> shared copy; src_bytes 0 writes zeros (tokens past m).
__device__ __forceinline__ void cp_async16(void *smem, const void *gmem, int src_bytes) {
    const uint32_t s = static_cast<uint32_t>(__cvta_generic_to_shared(smem));
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;" ::"r"(s), "l"(gmem), "r"(src_bytes) : "memory");
}
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;" ::: "memory"); }
template <int N> __device__ __forceinline__ void cp_async_wait() {
    asm volatile("cp.async.wait_group %0;" ::"n"(N) : "memory");
}

// The activation rows of chunk c into one stage of the ring: TOK rows x 8 pieces of 16 bytes, by
// the whole CTA; tokens past m are zero-filled.
template <int TOK>
__device__ __forceinline__ void load_act_stage(uint8_t (&stage)[TOK][GEMM_ROW_BYTES], const int8_t *__restrict__ q,
                                               int64_t k_pad, int64_t tok0, int64_t m, int64_t c) {
    for (int i = threadIdx.x; i < TOK * 8; i += GEMM_WARPS * 32) {
        const int r = i >> 3, piece = i & 7;
        const bool valid = tok0 + r < m;
        const int8_t *src = valid ? q + (tok0 + r) * k_pad + 128 * c + 16 * piece : q;
        cp_async16(&stage[r][16 * piece], src, valid ? 16 : 0);
    }
}

// D += A B for one 16 x 8 x 32 tile; A = 4 registers of t+1 bytes, B = 2 registers of int8.
__device__ __forceinline__ void mma_s8(int32_t (&d)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
    asm("mma.sync.aligned.m16n8k32.row.col.s32.s8.s8.s32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
        "{%0, %1, %2, %3};"
        : "+r"(d[0]), "+r"(d[1]), "+r"(d[2]), "+r"(d[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
#else
    (void)d, (void)a, (void)b0, (void)b1;
    __trap(); // the build targets sm_80+ only
#endif
}

template <int NT, bool F32>
static __global__ void __launch_bounds__(GEMM_WARPS * 32 TRIT_BLACKWELL_MIN1) // cuda_check.h
trit_gemm_kernel(const uint4 *__restrict__ w, const int8_t *__restrict__ q, int64_t k_pad,
                 const int32_t *__restrict__ qsum, const float *__restrict__ act_scale, float w_scale, int scale_div,
                 int64_t n_chunks, int64_t n_strips, int64_t n_rows, int64_t m, int split,
                 int32_t *__restrict__ acc_out, float *__restrict__ y_out) {
    constexpr int TOK = 8 * NT;
    __shared__ __align__(16) uint8_t sb[GEMM_STAGES][TOK][GEMM_ROW_BYTES];
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, g = lane >> 2, t = lane & 3;
    const int64_t strip = (int64_t)blockIdx.x * GEMM_WARPS + warp;
    const bool has_strip = strip < n_strips; // warps past the last strip run on zero weights
    const int64_t tok0 = (int64_t)blockIdx.y * TOK;
    int64_t c_begin, c_end;
    trit_split_range(n_chunks, split, (int)blockIdx.z, &c_begin, &c_end);
    const int64_t n_iter = c_end - c_begin;

#pragma unroll
    for (int s = 0; s < GEMM_STAGES - 1; s++) {
        if (s < n_iter) load_act_stage<TOK>(sb[s], q, k_pad, tok0, m, c_begin + s);
        cp_async_commit();
    }

    const uint4 *wl = w + trit_tl_lane_vec(has_strip ? strip : 0, 0, n_chunks, lane); // chunk c at wl + 32 c
    uint4 wnext = has_strip && n_iter > 0 ? ld_weights(wl + 32 * c_begin) : make_uint4(0, 0, 0, 0);
    int32_t d[NT][4];
#pragma unroll
    for (int nt = 0; nt < NT; nt++) d[nt][0] = d[nt][1] = d[nt][2] = d[nt][3] = 0;

    for (int64_t it = 0; it < n_iter; it++) {
        cp_async_wait<GEMM_STAGES - 2>(); // chunk `it` has landed (this thread's copies) ...
        __syncthreads();                   // ... everyone's, and stage (it - 1) is free again
        const int64_t nx = it + GEMM_STAGES - 1;
        if (nx < n_iter) load_act_stage<TOK>(sb[nx % GEMM_STAGES], q, k_pad, tok0, m, c_begin + nx);
        cp_async_commit();

        const uint4 wcur = wnext;
        if (has_strip && it + 1 < n_iter) wnext = ld_weights(wl + 32 * (c_begin + it + 1));
        const uint32_t word[4] = {wcur.x, wcur.y, wcur.z, wcur.w};
        uint32_t a[4][4];
#pragma unroll
        for (int j = 0; j < 4; j++)
#pragma unroll
            for (int i = 0; i < 4; i++) a[j][i] = trit_tl_decode(word[j], i);

        const int st = (int)(it % GEMM_STAGES);
#pragma unroll
        for (int nt = 0; nt < NT; nt++) {
            const uint4 *bp = reinterpret_cast<const uint4 *>(&sb[st][8 * nt + g][32 * t]);
            const uint4 b0 = bp[0], b1 = bp[1];
            const uint32_t b[8] = {b0.x, b0.y, b0.z, b0.w, b1.x, b1.y, b1.z, b1.w};
#pragma unroll
            for (int j = 0; j < 4; j++) mma_s8(d[nt], a[j], b[2 * j], b[2 * j + 1]);
        }
    }
    cp_async_wait<0>();

    if (!has_strip) return;
#pragma unroll
    for (int nt = 0; nt < NT; nt++)
#pragma unroll
        for (int reg = 0; reg < 4; reg++) {
            const int64_t row = strip * 16 + trit_mma_c_row(lane, reg);
            const int64_t tok = tok0 + 8 * nt + trit_mma_c_col(lane, reg);
            if (row >= n_rows || tok >= m) continue;
            const int32_t v = d[nt][reg] - (blockIdx.z == 0 ? qsum[tok] : 0);
            if constexpr (F32)
                y_out[tok * n_rows + row] = trit_epilogue_one(v, act_scale[tok], w_scale, scale_div);
            else if (split > 1)
                atomicAdd(&acc_out[tok * n_rows + row], v);
            else
                acc_out[tok * n_rows + row] = v;
        }
}

// ---- the group rule (trit_cuda_gemm_group_f32) -------------------------------------------------
//
// The kernel above with its K whole in every warp (no split-K, which would add the blocks' terms
// out of order) and the epilogue moved into the loop: per k-block (2 k-steps) the mma sums start
// from zero, so after them each fragment element holds the block's exact int32 sum of (row,
// token); minus the token's block sum of q (the t+1 bias) it meets its scales in order,
// y = trit_group_step(y, isum, inv, d), in a register per element until the end. Lanes past the
// last row or token compute on clamped indices (loads in bounds) and do not store.

template <int NT>
static __global__ void __launch_bounds__(GEMM_WARPS * 32 TRIT_BLACKWELL_MIN1)
trit_gemm_group_kernel(const uint4 *__restrict__ w, const float *__restrict__ gscale, int64_t n_groups, int g_shift,
                       const int8_t *__restrict__ q, int64_t k_pad, const int32_t *__restrict__ bsum,
                       const float *__restrict__ inv, int inv_per_block, int64_t n_kb, int64_t n_chunks,
                       int64_t n_strips, int64_t n_rows, int64_t m, float *__restrict__ y_out) {
    constexpr int TOK = 8 * NT;
    __shared__ __align__(16) uint8_t sb[GEMM_STAGES][TOK][GEMM_ROW_BYTES];
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, g = lane >> 2, t = lane & 3;
    const int64_t strip = (int64_t)blockIdx.x * GEMM_WARPS + warp;
    const bool has_strip = strip < n_strips;
    const int64_t tok0 = (int64_t)blockIdx.y * TOK;

#pragma unroll
    for (int s = 0; s < GEMM_STAGES - 1; s++) {
        if (s < n_chunks) load_act_stage<TOK>(sb[s], q, k_pad, tok0, m, s);
        cp_async_commit();
    }

    // this lane's output rows (g, g + 8: C registers 0, 1 and 2, 3) and tokens (2t, 2t + 1 of each
    // n8 tile: registers 0, 2 and 1, 3), clamped for the loads
    int64_t row_c[2], tok_c[NT][2];
#pragma unroll
    for (int h = 0; h < 2; h++) {
        const int64_t row = (has_strip ? strip : 0) * 16 + trit_mma_c_row(lane, 2 * h);
        row_c[h] = row < n_rows ? row : n_rows - 1;
    }
#pragma unroll
    for (int nt = 0; nt < NT; nt++)
#pragma unroll
        for (int e = 0; e < 2; e++) {
            const int64_t tok = tok0 + 8 * nt + trit_mma_c_col(lane, e);
            tok_c[nt][e] = tok < m ? tok : m - 1;
        }

    const uint4 *wl = w + trit_tl_lane_vec(has_strip ? strip : 0, 0, n_chunks, lane);
    uint4 wnext = has_strip && n_chunks > 0 ? ld_weights(wl) : make_uint4(0, 0, 0, 0);
    float y[NT][4];
#pragma unroll
    for (int nt = 0; nt < NT; nt++) y[nt][0] = y[nt][1] = y[nt][2] = y[nt][3] = 0.0f;

    for (int64_t it = 0; it < n_chunks; it++) {
        cp_async_wait<GEMM_STAGES - 2>();
        __syncthreads();
        const int64_t nx = it + GEMM_STAGES - 1;
        if (nx < n_chunks) load_act_stage<TOK>(sb[nx % GEMM_STAGES], q, k_pad, tok0, m, nx);
        cp_async_commit();

        const uint4 wcur = wnext;
        if (has_strip && it + 1 < n_chunks) wnext = ld_weights(wl + 32 * (it + 1));
        const uint32_t word[4] = {wcur.x, wcur.y, wcur.z, wcur.w};
        uint32_t a[4][4];
#pragma unroll
        for (int j = 0; j < 4; j++)
#pragma unroll
            for (int i = 0; i < 4; i++) a[j][i] = trit_tl_decode(word[j], i);

        const int st = (int)(it % GEMM_STAGES);
#pragma unroll
        for (int blk = 0; blk < 2; blk++) {
            const int64_t kb = 2 * it + blk;
            if (kb >= n_kb) break; // the zero half of a K that ends mid-chunk (uniform)
            const float d[2] = {gscale[row_c[0] * n_groups + (kb >> g_shift)],
                                gscale[row_c[1] * n_groups + (kb >> g_shift)]};
#pragma unroll
            for (int nt = 0; nt < NT; nt++) {
                // k-steps 2 blk and 2 blk + 1: act words 4 blk .. 4 blk + 3 of the token row
                const uint4 bv = reinterpret_cast<const uint4 *>(&sb[st][8 * nt + g][32 * t])[blk];
                int32_t acc[4] = {0, 0, 0, 0};
                mma_s8(acc, a[2 * blk], bv.x, bv.y);
                mma_s8(acc, a[2 * blk + 1], bv.z, bv.w);
#pragma unroll
                for (int e = 0; e < 2; e++) {
                    const int64_t tk = tok_c[nt][e];
                    const int32_t bs = bsum[tk * n_kb + kb];
                    const float iv = inv[inv_per_block ? tk * n_kb + kb : tk];
#pragma unroll
                    for (int h = 0; h < 2; h++)
                        y[nt][2 * h + e] = trit_group_step(y[nt][2 * h + e], acc[2 * h + e] - bs, iv, d[h]);
                }
            }
        }
    }
    cp_async_wait<0>();

    if (!has_strip) return;
#pragma unroll
    for (int nt = 0; nt < NT; nt++)
#pragma unroll
        for (int reg = 0; reg < 4; reg++) {
            const int64_t row = strip * 16 + trit_mma_c_row(lane, reg);
            const int64_t tok = tok0 + 8 * nt + trit_mma_c_col(lane, reg);
            if (row < n_rows && tok < m) y_out[tok * n_rows + row] = y[nt][reg];
        }
}

struct gemm_args {
    const uint4 *w;
    const int8_t *q;
    int64_t k_pad;
    const int32_t *qsum;
    const float *act_scale;
    float w_scale;
    int scale_div;
    int64_t n_chunks, n_strips, n_rows, m;
    int split;
    int32_t *acc;
    float *y;
};

template <int NT, bool F32>
static enum trit_status trit_gemm_launch(const gemm_args &a, cudaStream_t stream) {
    const dim3 grid((unsigned)((a.n_strips + GEMM_WARPS - 1) / GEMM_WARPS), (unsigned)((a.m + 8 * NT - 1) / (8 * NT)),
                    (unsigned)a.split);
    TRIT_CUDA_LAUNCH(trit_gemm_kernel<NT, F32><<<grid, GEMM_WARPS * 32, 0, stream>>>(
        a.w, a.q, a.k_pad, a.qsum, a.act_scale, a.w_scale, a.scale_div, a.n_chunks, a.n_strips, a.n_rows, a.m,
        a.split, a.acc, a.y));
    return TRIT_OK;
}

// Tokens per CTA: 16 for m <= 16, 32 for m <= 32, else 64.
int gemm_pick_nt(int64_t m) { return m <= 16 ? 2 : m <= 32 ? 4 : 8; }

template <int NT>
static enum trit_status trit_gemm_group_launch(const trit_cuda_ternary *w, int g_shift, const int8_t *q,
                                               const int32_t *bsum, const float *inv, int inv_per_block, int64_t m,
                                               float *y, cudaStream_t stream) {
    const int64_t n_strips = w->n_rows_pad / TRIT_TL_STRIP, n_kb = (w->n_cols + TRIT_GROUP_UNIT - 1) / TRIT_GROUP_UNIT;
    const dim3 grid((unsigned)((n_strips + GEMM_WARPS - 1) / GEMM_WARPS), (unsigned)((m + 8 * NT - 1) / (8 * NT)), 1);
    TRIT_CUDA_LAUNCH(trit_gemm_group_kernel<NT><<<grid, GEMM_WARPS * 32, 0, stream>>>(
        static_cast<const uint4 *>(w->d_tiles), w->d_group_scales, w->n_groups, g_shift, q, w->n_cols_pad, bsum, inv,
        inv_per_block, n_kb, w->n_cols_pad / TRIT_TL_CHUNK, n_strips, w->n_rows, m, y));
    return TRIT_OK;
}

// PRECOND: m >= 1 and ceil(m / 8 NT) <= 65535; 1 <= split <= 65535 (F32: split == 1);
// w = the tile layout of an (n_rows, k_pad) matrix; q (m, k_pad) in the act layout, 16-byte
// aligned; with split > 1, acc zeroed on this stream before the launch.
template <bool F32>
enum trit_status trit_gemm_cuda(const gemm_args &a, cudaStream_t stream) {
    switch (gemm_pick_nt(a.m)) {
    case 2: return trit_gemm_launch<2, F32>(a, stream);
    case 4: return trit_gemm_launch<4, F32>(a, stream);
    default: return trit_gemm_launch<8, F32>(a, stream);
    }
}

enum trit_status gemm_check(const char *op, const struct trit_cuda_ternary *w, const int8_t *d_q,
                            const int32_t *d_qsum, int64_t m, const void *d_out) {
    if (!w || !w->d_tiles || !d_q || !d_qsum || !d_out) return trit_error(TRIT_ERR_INVALID_ARG, "%s: NULL argument", op);
    if (m < 1 || (m + 63) / 64 > 65535)
        return trit_error(TRIT_ERR_INVALID_ARG, "%s: m = %lld out of range", op, (long long)m);
    if (w->n_rows_pad != trit_tl_rows_pad(w->n_rows) || w->n_cols_pad != trit_tl_cols_pad(w->n_cols) ||
        w->n_rows_pad / 64 > INT32_MAX)
        return trit_error(TRIT_ERR_INVALID_ARG, "%s: inconsistent weight descriptor", op);
    if ((uintptr_t)d_q % 16 != 0 || (uintptr_t)w->d_tiles % 16 != 0)
        return trit_error(TRIT_ERR_INVALID_ARG, "%s: q and the weights must be 16-byte aligned", op);
    return TRIT_OK;
}

gemm_args gemm_make_args(const struct trit_cuda_ternary *w, const int8_t *d_q, const int32_t *d_qsum, int64_t m) {
    gemm_args a = {};
    a.w = static_cast<const uint4 *>(w->d_tiles);
    a.q = d_q;
    a.k_pad = w->n_cols_pad;
    a.qsum = d_qsum;
    a.w_scale = w->scale;
    a.scale_div = w->scale_kind == TRIT_SCALE_DIV;
    a.n_chunks = w->n_cols_pad / TRIT_TL_CHUNK;
    a.n_strips = w->n_rows_pad / TRIT_TL_STRIP;
    a.n_rows = w->n_rows;
    a.m = m;
    a.split = 1;
    return a;
}

} // namespace

extern "C" enum trit_status trit_cuda_gemm_mma_i32(const struct trit_cuda_ternary *w, const int8_t *d_q,
                                                   const int32_t *d_qsum, int64_t m, int split_k, int32_t *d_acc,
                                                   void *stream) {
    TRIT_TRY(gemm_check("trit_cuda_gemm_mma_i32", w, d_q, d_qsum, m, d_acc));
    gemm_args a = gemm_make_args(w, d_q, d_qsum, m);
    a.acc = d_acc;
    if (split_k <= 0) {
        int n_sm = 0;
        TRIT_TRY(trit_cuda_sm_count(&n_sm));
        const int64_t tok_per_cta = 8 * gemm_pick_nt(m);
        const int64_t n_ctas = (a.n_strips + GEMM_WARPS - 1) / GEMM_WARPS * ((m + tok_per_cta - 1) / tok_per_cta);
        a.split = trit_gemm_pick_split(n_ctas, a.n_chunks, n_sm);
    } else {
        a.split = split_k < a.n_chunks ? split_k : (int)a.n_chunks;
    }
    if (a.split > 1) {
        TRIT_CUDA_CHECK(cudaMemsetAsync(d_acc, 0, (size_t)(m * w->n_rows) * sizeof(int32_t), (cudaStream_t)stream));
    }
    return trit_gemm_cuda<false>(a, (cudaStream_t)stream);
}

extern "C" enum trit_status trit_cuda_gemm_mma_f32(const struct trit_cuda_ternary *w, const int8_t *d_q,
                                                   const int32_t *d_qsum, const float *d_act_scale, int64_t m,
                                                   float *d_y, void *stream) {
    TRIT_TRY(gemm_check("trit_cuda_gemm_mma_f32", w, d_q, d_qsum, m, d_y));
    TRIT_TRY(trit_no_group_check("trit_cuda_gemm_mma_f32", w, false));
    if (!d_act_scale) return trit_error(TRIT_ERR_INVALID_ARG, "trit_cuda_gemm_mma_f32: NULL act_scale");
    gemm_args a = gemm_make_args(w, d_q, d_qsum, m);
    a.act_scale = d_act_scale;
    a.y = d_y;
    return trit_gemm_cuda<true>(a, (cudaStream_t)stream);
}

extern "C" enum trit_status trit_cuda_gemm_group_f32(const struct trit_cuda_ternary *w, const int8_t *d_q,
                                                     const int32_t *d_bsum, const float *d_act_inv, int64_t act_block,
                                                     int64_t m, float *d_y, void *stream) {
    TRIT_TRY(gemm_check("trit_cuda_gemm_group_f32", w, d_q, d_bsum, m, d_y));
    int g_shift = 0;
    TRIT_TRY(trit_group_check("trit_cuda_gemm_group_f32", w, d_bsum, d_act_inv, act_block, &g_shift));
    const int per_block = act_block > 0;
    cudaStream_t s = (cudaStream_t)stream;
    switch (gemm_pick_nt(m)) {
    case 2: return trit_gemm_group_launch<2>(w, g_shift, d_q, d_bsum, d_act_inv, per_block, m, d_y, s);
    case 4: return trit_gemm_group_launch<4>(w, g_shift, d_q, d_bsum, d_act_inv, per_block, m, d_y, s);
    default: return trit_gemm_group_launch<8>(w, g_shift, d_q, d_bsum, d_act_inv, per_block, m, d_y, s);
    }
}
