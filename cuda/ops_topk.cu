/*
 * ops_topk.cu: top-k of one row of logits with the repetition penalty, on the device (v1), so that a
 * sampled decode step copies k <= 256 candidates to the host instead of the vocabulary's logits.
 * Selection exactly as host/sampler.c's trit_topk_penalized (the specification): key_i =
 * trit_topk_penalize(x_i) for ids listed in pen (once however often listed; ids outside [0, n)
 * ignored), else trit_topk_key(x_i) (NaN -> -inf); the k best by (key desc, id asc), in that order.
 *
 * One CTA of 1024 threads, radix select on the order-preserving uint32 keys of cuda/ops_hd.h:
 *   0. keys[i] = ord(key(x[i])) into the scratch d_keys, then the listed ids overwritten with
 *      ord(penalize(x[id])) (from x, so a repeated id writes the same value twice);
 *   1. four histogram passes of 8-bit digits, most significant first, over the keys whose higher
 *      digits equal the prefix found so far (shared atomics, aggregated per warp with
 *      __match_any_sync: logits crowd into a few top bins); thread 0 picks the bin of the k-th
 *      largest (trit_topk_pick_bin). After them T = the k-th largest key, exactly, n_gt = k - k_rem
 *      keys are > T and the k_rem lowest ids among the keys == T complete the top k;
 *   2. collect, deterministically: 32 contiguous warp segments in index order; pass a counts each
 *      warp's keys > T and == T (ballots), pass b writes them to ranks from the exclusive sums of
 *      the lower warps, so ties are taken by id and the result never depends on scheduling;
 *   3. a bitonic sort of the k candidates (padded to a power of two with key 0, id INT32_MAX, below
 *      every real key) in shared memory, and vals[r] = the key as a float, ids[r].
 * Every step is the same TRIT_HD function that the CPU emulation in tests/test_cuda_ops_hd.c runs
 * against trit_topk_penalized, bit for bit.
 *
 * Cost (unmeasured: no GPU was available when this was written): 1 read of n fp32 and 1 write of n
 * uint32, then 4 histogram reads and 2 collect reads of the n keys, ~8 x 4n bytes through one SM:
 * 4.1 MB for the 128256-token Llama 3 vocabulary, L2-resident (the keys are 513 KB). At the
 * ~50-100 GB/s that one SM can pull from L2 (64 KB of loads in flight per CTA at ~0.6 us latency),
 * that is ~40-80 us; against it stand a 513 KB device-to-host copy per token and the host's sampling
 * of the whole row. bench/ should time it before anyone relies on these numbers.
 *
 * Why one CTA: the histogram, the prefix choice and the collect ranks need the whole row; one CTA
 * keeps them in shared memory with __syncthreads instead of grid-wide atomics, a cooperative launch
 * or a second kernel, and makes the result independent of scheduling. A multi-CTA v2 (per-CTA
 * histograms merged by the last CTA) is the next step if the timing says the single SM is the limit.
 * Cheaper steps first, from a review, for when a GPU can time them: more loads in flight in the
 * scalar phases (0, 2a, 2b: 4 x 4 bytes per thread against the histogram passes' 4 x 16); 2a on
 * 16-byte loads (segments start on 128-byte boundaries); the bin pick by warp 0 (8 bins per lane, a
 * shuffle suffix sum) instead of thread 0; compacting the keys that match the prefix after pass 0
 * or 1 instead of re-reading all of them.
 */
#include <cuda_runtime.h>
#include <math.h>
#include <stdint.h>

extern "C" {
#include "backend.h" /* TRIT_TOPK_MAX */
}
#include "cuda_check.h"
#include "ops_hd.h"
#include "trit_cuda.h"
#include "trit_cuda_ops.h"

namespace {

constexpr int TOPK_THREADS = TRIT_TOPK_WARPS * 32;
constexpr unsigned FULL = 0xFFFFFFFFu;
static_assert(TRIT_TOPK_MAX <= TOPK_THREADS, "one thread per candidate in the sort");

// Adds this lane's key to hist when it is valid and its higher digits equal prefix. Lanes with the
// same bin add once, together (__match_any_sync): all 32 lanes must call it.
__device__ __forceinline__ void hist_add(uint32_t *hist, uint32_t key, bool valid, uint32_t hi, uint32_t prefix,
                                         int shift) {
    const uint32_t bin = valid && (key & hi) == prefix ? (key >> shift) & 0xFFu : 256u;
    if (!__any_sync(FULL, bin < 256u)) return; // warp-uniform: after pass 0 most keys match no prefix
    const unsigned peers = __match_any_sync(FULL, bin);
    if (bin < 256u && (int)(threadIdx.x & 31) == __ffs(peers) - 1) atomicAdd(&hist[bin], (uint32_t)__popc(peers));
}

// One warp step of a segment walk: kv[u] = keys[c + 32u + lane], key 0 (below every threshold) at
// and past e. All loads are issued before any is used.
__device__ __forceinline__ void load_step(const uint32_t *keys, int64_t c, int64_t e, int lane,
                                          uint32_t (&kv)[TRIT_TOPK_UNROLL]) {
#pragma unroll
    for (int u = 0; u < TRIT_TOPK_UNROLL; u++) {
        const int64_t i = c + 32 * u + lane;
        kv[u] = i < e ? keys[i] : 0u;
    }
}

// PRECOND: 1 <= k <= min(n, TRIT_TOPK_MAX); keys (n) 16-byte aligned; ids in pen may be anything.
static __global__ void __launch_bounds__(TOPK_THREADS)
trit_topk_kernel(const float *__restrict__ x, int64_t n, const int32_t *__restrict__ pen, int32_t n_pen,
                 float penalty, int32_t k, uint32_t *keys, float *__restrict__ vals, int32_t *__restrict__ ids) {
    __shared__ uint32_t hist[256];
    __shared__ uint32_t s_gt[TRIT_TOPK_WARPS], s_eq[TRIT_TOPK_WARPS];
    __shared__ uint32_t s_prefix, s_krem;
    __shared__ uint32_t ck[TRIT_TOPK_MAX];
    __shared__ int32_t ci[TRIT_TOPK_MAX];
    const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;

    // 0. keys. The barrier after each loop also orders the global writes within the block.
    for (int64_t i0 = tid; i0 < n; i0 += (int64_t)TRIT_TOPK_UNROLL * TOPK_THREADS) {
        float v[TRIT_TOPK_UNROLL];
#pragma unroll
        for (int u = 0; u < TRIT_TOPK_UNROLL; u++) {
            const int64_t i = i0 + (int64_t)u * TOPK_THREADS;
            v[u] = i < n ? x[i] : 0.0f;
        }
#pragma unroll
        for (int u = 0; u < TRIT_TOPK_UNROLL; u++) {
            const int64_t i = i0 + (int64_t)u * TOPK_THREADS;
            if (i < n) keys[i] = trit_topk_ord(trit_topk_key(v[u]));
        }
    }
    __syncthreads();
    for (int64_t j = tid; j < n_pen; j += TOPK_THREADS) {
        const int32_t id = pen[j];
        if (id >= 0 && id < n) keys[id] = trit_topk_ord(trit_topk_penalize(x[id], penalty));
    }
    __syncthreads();

    // 1. radix select: T = prefix after 4 digits; k_rem keys == T to take.
    const uint4 *keys4 = reinterpret_cast<const uint4 *>(keys);
    const int64_t n4 = n / 4;
    uint32_t prefix = 0, k_rem = (uint32_t)k;
    for (int pass = 0; pass < 4; pass++) {
        const int shift = 24 - 8 * pass;
        const uint32_t hi = trit_topk_hi_mask(pass);
        if (tid < 256) hist[tid] = 0;
        __syncthreads();
        for (int64_t c = (int64_t)warp * 32; c < n4; c += (int64_t)TRIT_TOPK_UNROLL * TOPK_THREADS) { // warp-uniform
            uint4 v[TRIT_TOPK_UNROLL];
#pragma unroll
            for (int u = 0; u < TRIT_TOPK_UNROLL; u++) {
                const int64_t i = c + (int64_t)u * TOPK_THREADS + lane;
                v[u] = i < n4 ? keys4[i] : make_uint4(0, 0, 0, 0);
            }
#pragma unroll
            for (int u = 0; u < TRIT_TOPK_UNROLL; u++) {
                const bool ok = c + (int64_t)u * TOPK_THREADS + lane < n4;
                hist_add(hist, v[u].x, ok, hi, prefix, shift);
                hist_add(hist, v[u].y, ok, hi, prefix, shift);
                hist_add(hist, v[u].z, ok, hi, prefix, shift);
                hist_add(hist, v[u].w, ok, hi, prefix, shift);
            }
        }
        if (warp == TRIT_TOPK_WARPS - 1) { // the n % 4 keys after the last uint4
            const int64_t i = 4 * n4 + lane;
            hist_add(hist, i < n ? keys[i] : 0u, i < n, hi, prefix, shift);
        }
        __syncthreads();
        if (tid == 0) {
            uint32_t above;
            const int b = trit_topk_pick_bin(hist, k_rem, &above);
            s_krem = k_rem - above;
            s_prefix = prefix | (uint32_t)b << shift;
        }
        __syncthreads();
        prefix = s_prefix;
        k_rem = s_krem;
    }
    const uint32_t t = prefix;
    const int32_t n_gt = k - (int32_t)k_rem;

    // 2a. per warp: keys > T and == T in its segment. Out-of-range lanes read key 0 (< every T).
    int64_t seg_b, seg_e;
    trit_topk_segment(n, warp, &seg_b, &seg_e);
    uint32_t w_gt = 0, w_eq = 0;
    for (int64_t c = seg_b; c < seg_e; c += (int64_t)TRIT_TOPK_UNROLL * 32) {
        uint32_t kv[TRIT_TOPK_UNROLL];
        load_step(keys, c, seg_e, lane, kv);
#pragma unroll
        for (int u = 0; u < TRIT_TOPK_UNROLL; u++) {
            w_gt += (uint32_t)__popc(__ballot_sync(FULL, kv[u] > t));
            w_eq += (uint32_t)__popc(__ballot_sync(FULL, kv[u] == t));
        }
    }
    if (lane == 0) s_gt[warp] = w_gt, s_eq[warp] = w_eq;
    __syncthreads();

    // 2b. the same walk, writing ranks: > T from the lower warps' count on, == T likewise while the
    // rank is below k_rem. A warp stops once its > T are out and no further == T can be taken.
    uint32_t og = 0, oe = 0;
    for (int w = 0; w < warp; w++) og += s_gt[w], oe += s_eq[w];
    const uint32_t og_end = og + s_gt[warp], oe_end = oe + s_eq[warp];
    const unsigned lt = (1u << lane) - 1u;
    for (int64_t c = seg_b; c < seg_e; c += (int64_t)TRIT_TOPK_UNROLL * 32) {
        if (og == og_end && (oe >= k_rem || oe == oe_end)) break; // warp-uniform
        uint32_t kv[TRIT_TOPK_UNROLL];
        load_step(keys, c, seg_e, lane, kv);
#pragma unroll
        for (int u = 0; u < TRIT_TOPK_UNROLL; u++) {
            const int64_t i = c + 32 * u + lane;
            const unsigned gm = __ballot_sync(FULL, kv[u] > t), em = __ballot_sync(FULL, kv[u] == t);
            if (kv[u] > t) {
                const uint32_t p = og + (uint32_t)__popc(gm & lt);
                ck[p] = kv[u], ci[p] = (int32_t)i;
            } else if (kv[u] == t) {
                const uint32_t r = oe + (uint32_t)__popc(em & lt);
                if (r < k_rem) ck[n_gt + r] = t, ci[n_gt + r] = (int32_t)i;
            }
            og += (uint32_t)__popc(gm);
            oe += (uint32_t)__popc(em);
        }
    }
    const int p_sort = trit_topk_sort_size(k);
    if (tid >= k && tid < p_sort) ck[tid] = 0u, ci[tid] = INT32_MAX;
    __syncthreads();

    // 3. bitonic sort of p_sort candidates, best first; the lower index of each pair exchanges.
    for (int size = 2; size <= p_sort; size <<= 1)
        for (int stride = size >> 1; stride > 0; stride >>= 1) {
            const int j = tid ^ stride;
            if (tid < p_sort && j > tid && trit_bitonic_swap(tid, size, ck[tid], ci[tid], ck[j], ci[j])) {
                const uint32_t kt = ck[tid];
                const int32_t it = ci[tid];
                ck[tid] = ck[j], ci[tid] = ci[j];
                ck[j] = kt, ci[j] = it;
            }
            __syncthreads();
        }
    if (tid < k) {
        vals[tid] = trit_topk_value(ck[tid], x[ci[tid]]);
        ids[tid] = ci[tid];
    }
}

// PRECOND: as the kernel's.
enum trit_status trit_topk_cuda(const float *x, int64_t n, const int32_t *pen, int32_t n_pen, float penalty,
                                int32_t k, uint32_t *keys, float *vals, int32_t *ids, cudaStream_t stream) {
    TRIT_CUDA_LAUNCH(trit_topk_kernel<<<1, TOPK_THREADS, 0, stream>>>(x, n, pen, n_pen, penalty, k, keys, vals, ids));
    return TRIT_OK;
}

} // namespace

extern "C" enum trit_status trit_cuda_topk(const float *d_x, int64_t n, const int32_t *d_pen, int32_t n_pen,
                                           float penalty, int32_t k, uint32_t *d_keys, float *d_vals,
                                           int32_t *d_ids, void *stream) {
    if (!d_x || !d_keys || !d_vals || !d_ids || (n_pen > 0 && !d_pen))
        return trit_error(TRIT_ERR_INVALID_ARG, "trit_cuda_topk: NULL argument");
    if (n < 1 || n > INT32_MAX || k < 1 || k > TRIT_TOPK_MAX || k > n || n_pen < 0)
        return trit_error(TRIT_ERR_INVALID_ARG, "trit_cuda_topk: n %lld, k %d (1..min(n, %d)), n_pen %d", (long long)n,
                          k, TRIT_TOPK_MAX, n_pen);
    if (n_pen > 0 && !(penalty > 0.0f && penalty < INFINITY)) // 0 * inf would make a NaN key
        return trit_error(TRIT_ERR_INVALID_ARG, "trit_cuda_topk: penalty %g (finite, > 0)", (double)penalty);
    if ((uintptr_t)d_keys % 16 != 0)
        return trit_error(TRIT_ERR_INVALID_ARG, "trit_cuda_topk: d_keys not 16-byte aligned");
    return trit_topk_cuda(d_x, n, d_pen, n_pen, penalty, k, d_keys, d_vals, d_ids, (cudaStream_t)stream);
}
