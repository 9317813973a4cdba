/*
 * bench_kernels.cu: the ternary CUDA kernels of cuda/ against cuBLAS FP16 and BF16, on the linear
 * layers of BitNet b1.58 2B-4T, a Llama-3-8B-shaped and a Llama-3-70B-shaped ternary model, over
 * a sweep of token counts m. It prints numbers and never fails on speed; it fails (exit 1) when a
 * kernel's output differs from the CPU reference.
 *
 *   build/bench/bench_kernels [--models 2b,8b,70b] [--m 1,2,4,8,16,64,256,2048] [--iters 200]
 *                             [--out bench_kernels]      (writes bench_kernels.csv and .json)
 *
 * Method (bench/README.md; docs/design.md section 8):
 *   - every variant is validated before it is timed: int32 accumulators against trit_gemm_ref
 *     (bit for bit) and fp32 outputs against trit_epilogue_ref (bit for bit), on up to 64 sampled
 *     rows x 16 sampled tokens (the whole output for small shapes);
 *   - each launch is timed with its own pair of CUDA events after 10 warm-up launches; the table
 *     shows the median and p10/p90 over --iters launches;
 *   - L2: each variant rotates over copies of its weights whose total is > 2x the L2 size, so a
 *     launch never finds its weights in L2 (activations stay L2-resident, as in a forward pass);
 *   - bandwidth: bytes = weights + activations + outputs, once each; reported against the
 *     device-to-device copy bandwidth measured at the start of the same run (read + write bytes);
 *   - baselines: cublasGemmEx FP16 and BF16 (fp32 compute, default algorithm), y (m, n) =
 *     x (m, k) W^T with W (n, k) random, same rotation; speed-up = cuBLAS median / ours.
 *
 * Without a CUDA device it prints "no CUDA device" and exits 0 (1 with TRIT_REQUIRE_GPU=1); --help
 * prints the usage and exits 0. TRIT_BENCH_CORRUPT=1 flips one bit of one checked output element of
 * every variant before validation: each is then reported INVALID, untimed, and the exit is 1 (a
 * check of the gate itself, for a GPU session).
 *
 * Variants: gemv_dp4a (int32), gemv_dp4a_f32 (fused epilogue), gemv_add (add-only), all for
 * m <= 8; gemm_mma (int32, auto split-K) and gemm_mma_f32 for every m; act_quant per m x k. The
 * group rule on the same codes with a scale per 64 columns (Q2_0, Ternary-Bonsai): act_quant_blocks
 * (activations per 64-col block), gemv_group (m <= 8) and gemm_group (every m), fp32 out, checked
 * against trit_gemm_group_ref bit for bit; their bytes include the fp32 group scales.
 *
 * Attention (after the linear layers; <out>_attention.csv): the decode kernel for one token over
 * 512 and 4096 cached positions, GB/s of K and V read (fp16) against the copy bandwidth, the cache
 * rotated over copies > 2x L2 as the weights are; the prefill kernel for 512 tokens from position 0,
 * TFLOP/s of its causal half of QK^T and PV. Each is first checked against trit_attention_f32_ref on
 * the same fp16-rounded cache (max |gpu - cpu| <= 1e-3 x max |cpu|: fp32 sums in other orders, far
 * below what a wrong row gives), and reported INVALID, untimed, otherwise.
 */
#include <cublas_v2.h>
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

extern "C" {
#include "cpu/cpu.h"
#include "cpu/ops.h"
}
#include "ops_hd.h"
#include "ternary_layout.h"
#include "trit_cuda.h"
#include "trit_cuda_ops.h"

// ---- checks (a benchmark may exit) ------------------------------------------------------------

#define CK(call)                                                                                   \
    do {                                                                                           \
        cudaError_t e_ = (call);                                                                   \
        if (e_ != cudaSuccess) {                                                                   \
            fprintf(stderr, "%s:%d: %s: %s\n", __FILE__, __LINE__, #call, cudaGetErrorString(e_)); \
            exit(2);                                                                               \
        }                                                                                          \
    } while (0)
#define CKB(call)                                                                                  \
    do {                                                                                           \
        cublasStatus_t s_ = (call);                                                                \
        if (s_ != CUBLAS_STATUS_SUCCESS) {                                                         \
            fprintf(stderr, "%s:%d: %s: cuBLAS status %d\n", __FILE__, __LINE__, #call, (int)s_);   \
            exit(2);                                                                               \
        }                                                                                          \
    } while (0)
#define CKT(call)                                                                                  \
    do {                                                                                           \
        enum trit_status t_ = (call);                                                              \
        if (t_ != TRIT_OK) {                                                                       \
            fprintf(stderr, "%s:%d: %s: %s\n", __FILE__, __LINE__, #call, trit_last_error());      \
            exit(2);                                                                               \
        }                                                                                          \
    } while (0)

// ---- shapes ------------------------------------------------------------------------------------

struct shape {
    const char *model, *layer;
    int64_t n, k;
};
static const shape SHAPES[] = {
    {"2b", "qkv", 3840, 2560},     {"2b", "o", 2560, 2560},      {"2b", "gate_up", 13824, 2560},
    {"2b", "down", 2560, 6912},    {"8b", "qkv", 6144, 4096},    {"8b", "o", 4096, 4096},
    {"8b", "gate_up", 28672, 4096}, {"8b", "down", 4096, 14336},  {"70b", "qkv", 10240, 8192},
    {"70b", "o", 8192, 8192},      {"70b", "gate_up", 57344, 8192}, {"70b", "down", 8192, 28672},
};

// ---- small helpers -----------------------------------------------------------------------------

static uint64_t rng_state = 0x7e57c0de12345ull;
static uint64_t rng_u64() {
    rng_state ^= rng_state >> 12, rng_state ^= rng_state << 25, rng_state ^= rng_state >> 27;
    return rng_state * 0x2545F4914F6CDD1Dull;
}

static __global__ void fill_half_kernel(__half *p, int64_t n, uint32_t seed) {
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
        uint32_t h = (uint32_t)i * 2654435761u ^ seed;
        h ^= h >> 15, h *= 0x2c1b3c6du, h ^= h >> 12;
        p[i] = __float2half(((float)(h & 0xFFFF) / 65536.0f - 0.5f) * 0.1f);
    }
}
static __global__ void fill_bf16_kernel(__nv_bfloat16 *p, int64_t n, uint32_t seed) {
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
        uint32_t h = (uint32_t)i * 2654435761u ^ seed;
        h ^= h >> 15, h *= 0x2c1b3c6du, h ^= h >> 12;
        p[i] = __float2bfloat16(((float)(h & 0xFFFF) / 65536.0f - 0.5f) * 0.1f);
    }
}

struct stats {
    double p10_us, med_us, p90_us;
};

// Times `launch(i)` (i = launch index, for buffer rotation) with one event pair per launch.
template <class F> static stats time_launches(F launch, int iters) {
    for (int i = 0; i < 10; i++) launch(i);
    std::vector<cudaEvent_t> ev(2 * (size_t)iters);
    for (auto &e : ev) CK(cudaEventCreate(&e));
    for (int i = 0; i < iters; i++) {
        CK(cudaEventRecord(ev[2 * i]));
        launch(i);
        CK(cudaEventRecord(ev[2 * i + 1]));
    }
    CK(cudaEventSynchronize(ev.back()));
    std::vector<double> us((size_t)iters);
    for (int i = 0; i < iters; i++) {
        float ms = 0;
        CK(cudaEventElapsedTime(&ms, ev[2 * i], ev[2 * i + 1]));
        us[(size_t)i] = 1000.0 * ms;
    }
    for (auto &e : ev) CK(cudaEventDestroy(e));
    std::sort(us.begin(), us.end());
    auto at = [&](double f) { return us[(size_t)(f * (double)(iters - 1) + 0.5)]; };
    return {at(0.1), at(0.5), at(0.9)};
}

// Device-to-device copy bandwidth, read + write bytes, 1 GiB, median of 10.
static double copy_gbps() {
    const size_t bytes = (size_t)1 << 30;
    void *a, *b;
    CK(cudaMalloc(&a, bytes));
    CK(cudaMalloc(&b, bytes));
    CK(cudaMemset(a, 1, bytes));
    stats s = time_launches([&](int) { CK(cudaMemcpyAsync(b, a, bytes, cudaMemcpyDeviceToDevice)); }, 10);
    CK(cudaFree(a));
    CK(cudaFree(b));
    return 2.0 * (double)bytes / (s.med_us * 1e3);
}

// ---- results -----------------------------------------------------------------------------------

struct row {
    std::string model, layer, variant;
    int64_t n, k, m;
    stats t;
    double bytes, gbps, frac_copy, speedup_fp16;
    bool valid;
};

// ---- validation --------------------------------------------------------------------------------

// Compares sampled rows x tokens of a device output (int32 acc or fp32 y) with the CPU reference.
static bool validate(const trit_ternary &w, const std::vector<int8_t> &q, const std::vector<float> &scale, int64_t m,
                     const void *d_out, bool is_f32) {
    const int64_t n = w.n_rows, k = w.n_cols;
    std::vector<int64_t> rows, toks;
    if (n <= 64) for (int64_t r = 0; r < n; r++) rows.push_back(r);
    else for (int i = 0; i < 64; i++) rows.push_back(i < 2 ? (i ? n - 1 : 0) : (int64_t)(rng_u64() % (uint64_t)n));
    if (m <= 16) for (int64_t t = 0; t < m; t++) toks.push_back(t);
    else for (int i = 0; i < 16; i++) toks.push_back(i < 2 ? (i ? m - 1 : 0) : (int64_t)(rng_u64() % (uint64_t)m));
    // the sampled rows as a small ternary matrix, the sampled tokens as a small activation matrix
    trit_ternary sub = {};
    CKT(trit_ternary_init(&sub, (int64_t)rows.size(), k));
    for (size_t i = 0; i < rows.size(); i++) memcpy(sub.codes + i * sub.row_bytes, w.codes + rows[i] * w.row_bytes, (size_t)w.row_bytes);
    sub.scale = w.scale, sub.scale_kind = w.scale_kind;
    std::vector<int8_t> qs(toks.size() * (size_t)k);
    std::vector<float> ss(toks.size());
    for (size_t i = 0; i < toks.size(); i++) {
        memcpy(&qs[i * (size_t)k], &q[(size_t)(toks[i] * k)], (size_t)k);
        ss[i] = scale[(size_t)toks[i]];
    }
    std::vector<int32_t> acc(toks.size() * rows.size());
    std::vector<float> y(acc.size());
    trit_gemm_ref(&sub, qs.data(), (int64_t)toks.size(), acc.data());
    trit_epilogue_ref(acc.data(), (int64_t)toks.size(), (int64_t)rows.size(), ss.data(), w.scale, w.scale_kind, y.data());
    trit_ternary_free(&sub);
    bool ok = true;
    for (size_t ti = 0; ti < toks.size() && ok; ti++)
        for (size_t ri = 0; ri < rows.size() && ok; ri++) {
            uint32_t got;
            CK(cudaMemcpy(&got, (const char *)d_out + 4 * (toks[ti] * n + rows[ri]), 4, cudaMemcpyDeviceToHost));
            uint32_t want;
            if (is_f32) memcpy(&want, &y[ti * rows.size() + ri], 4);
            else memcpy(&want, &acc[ti * rows.size() + ri], 4);
            ok = got == want;
        }
    return ok;
}

// The group rule's fp32 output against trit_gemm_group_ref on sampled rows x tokens (act_block 64:
// s holds (m, n_kb) block scales).
static bool validate_group(const trit_ternary &w, const std::vector<int8_t> &q, const std::vector<float> &s, int64_t m,
                           const void *d_out) {
    const int64_t n = w.n_rows, k = w.n_cols, n_kb = (k + 63) / 64, n_g = trit_ternary_n_groups(&w);
    std::vector<int64_t> rows, toks;
    if (n <= 64) for (int64_t r = 0; r < n; r++) rows.push_back(r);
    else for (int i = 0; i < 64; i++) rows.push_back(i < 2 ? (i ? n - 1 : 0) : (int64_t)(rng_u64() % (uint64_t)n));
    if (m <= 16) for (int64_t t = 0; t < m; t++) toks.push_back(t);
    else for (int i = 0; i < 16; i++) toks.push_back(i < 2 ? (i ? m - 1 : 0) : (int64_t)(rng_u64() % (uint64_t)m));
    trit_ternary sub = {};
    CKT(trit_ternary_init_grouped(&sub, (int64_t)rows.size(), k, w.group));
    for (size_t i = 0; i < rows.size(); i++) {
        memcpy(sub.codes + i * sub.row_bytes, w.codes + rows[i] * w.row_bytes, (size_t)w.row_bytes);
        memcpy(sub.group_scales + i * n_g, w.group_scales + rows[i] * n_g, (size_t)n_g * sizeof(float));
    }
    std::vector<int8_t> qs(toks.size() * (size_t)k);
    std::vector<float> ss(toks.size() * (size_t)n_kb), y(toks.size() * rows.size());
    for (size_t i = 0; i < toks.size(); i++) {
        memcpy(&qs[i * (size_t)k], &q[(size_t)(toks[i] * k)], (size_t)k);
        memcpy(&ss[i * (size_t)n_kb], &s[(size_t)(toks[i] * n_kb)], (size_t)n_kb * sizeof(float));
    }
    trit_gemm_group_ref(&sub, qs.data(), (int64_t)toks.size(), ss.data(), 64, y.data());
    trit_ternary_free(&sub);
    for (size_t ti = 0; ti < toks.size(); ti++)
        for (size_t ri = 0; ri < rows.size(); ri++) {
            uint32_t got, want;
            CK(cudaMemcpy(&got, (const char *)d_out + 4 * (toks[ti] * n + rows[ri]), 4, cudaMemcpyDeviceToHost));
            memcpy(&want, &y[ti * rows.size() + ri], 4);
            if (got != want) return false;
        }
    return true;
}

// ---- main --------------------------------------------------------------------------------------

static std::vector<int64_t> parse_list(const char *s) {
    std::vector<int64_t> v;
    for (const char *p = s; *p;) {
        v.push_back(strtoll(p, (char **)&p, 10));
        if (*p == ',') p++;
        else if (*p) break;
    }
    return v;
}

// ---- attention -----------------------------------------------------------------------------------

struct att_shape {
    const char *model;
    int64_t n_heads, n_kv_heads, head_dim;
};
static const att_shape ATT_SHAPES[] = {{"2b", 20, 5, 128}, {"8b", 32, 8, 128}, {"70b", 64, 8, 128}};

struct att_row {
    std::string model, kernel;
    int64_t ctx, m;
    stats t;
    double bytes, flops, gbps, frac_copy, tflops;
    bool valid;
};

// max |got - want| <= 1e-3 max |want| over n values (and every value finite).
static bool att_close(const float *got, const float *want, int64_t n) {
    double mx = 0.0, err = 0.0;
    for (int64_t i = 0; i < n; i++) {
        if (!std::isfinite(got[i])) return false;
        mx = std::max(mx, (double)std::fabs(want[i]));
        err = std::max(err, (double)std::fabs((double)got[i] - want[i]));
    }
    return err <= 1e-3 * mx;
}

static bool attention_bench(const std::string &models, double copy, double rotate_bytes, int n_sm, int iters,
                            bool corrupt, std::vector<att_row> &rows) {
    bool all_valid = true;
    for (const att_shape &sh : ATT_SHAPES) {
        if (models.find(sh.model) == std::string::npos) continue;
        const int64_t hq = sh.n_heads * sh.head_dim, hkv = sh.n_kv_heads * sh.head_dim;
        for (const int64_t ctx : {(int64_t)512, (int64_t)4096}) {
            // the cache (ctx rows of K and V, fp16) and its fp32 widening for the reference
            std::vector<uint16_t> kh((size_t)(ctx * hkv)), vh((size_t)(ctx * hkv));
            std::vector<float> kf(kh.size()), vf(vh.size()), q((size_t)std::max(hq * 512, hq));
            for (size_t i = 0; i < kh.size(); i++) {
                kh[i] = trit_fp32_to_fp16((float)((double)(rng_u64() >> 11) / 9007199254740992.0 - 0.5));
                vh[i] = trit_fp32_to_fp16((float)((double)(rng_u64() >> 11) / 9007199254740992.0 - 0.5));
                kf[i] = trit_fp16_to_fp32(kh[i]), vf[i] = trit_fp16_to_fp32(vh[i]);
            }
            for (float &x : q) x = (float)((double)(rng_u64() >> 11) / 9007199254740992.0 - 0.5) * 4.0f;
            const size_t cache_bytes = kh.size() * 2;
            const int n_rot = (int)std::min(256.0, std::max(1.0, rotate_bytes / (2.0 * (double)cache_bytes)) + 1);
            std::vector<void *> dk((size_t)n_rot), dv((size_t)n_rot);
            for (int r = 0; r < n_rot; r++) {
                CK(cudaMalloc(&dk[(size_t)r], cache_bytes));
                CK(cudaMalloc(&dv[(size_t)r], cache_bytes));
                CK(cudaMemcpy(dk[(size_t)r], kh.data(), cache_bytes, cudaMemcpyHostToDevice));
                CK(cudaMemcpy(dv[(size_t)r], vh.data(), cache_bytes, cudaMemcpyHostToDevice));
            }
            const trit_cuda_attn_shape ash = {sh.n_heads, sh.n_kv_heads, sh.head_dim, ctx};
            // the backend's split choice (cuda/backend.cu)
            int64_t splits = (n_sm + sh.n_kv_heads - 1) / sh.n_kv_heads;
            splits = std::min(splits, (ctx + TRIT_ATT_SPLIT_MIN - 1) / TRIT_ATT_SPLIT_MIN);
            splits = std::max((int64_t)1, std::min(splits, (int64_t)TRIT_CUDA_ATT_MAX_SPLITS));
            float *dq, *d_po, *d_pml, *d_att;
            int32_t *d_pos;
            uint32_t *d_cnt;
            CK(cudaMalloc(&dq, q.size() * 4));
            CK(cudaMalloc(&d_po, (size_t)(splits * hq) * 4));
            CK(cudaMalloc(&d_pml, (size_t)(splits * sh.n_heads * 2) * 4));
            CK(cudaMalloc(&d_att, (size_t)(512 * hq) * 4));
            CK(cudaMalloc(&d_pos, 4));
            CK(cudaMalloc(&d_cnt, (size_t)sh.n_kv_heads * 4));
            CK(cudaMemset(d_cnt, 0, (size_t)sh.n_kv_heads * 4));
            CK(cudaMemcpy(dq, q.data(), q.size() * 4, cudaMemcpyHostToDevice));
            std::vector<float> got((size_t)(512 * hq)), want((size_t)hq), scores((size_t)ctx);

            // decode: one token at position ctx - 1
            const int32_t last = (int32_t)(ctx - 1);
            CK(cudaMemcpy(d_pos, &last, 4, cudaMemcpyHostToDevice));
            CKT(trit_cuda_attn_decode(dq, dk[0], dv[0], ash, d_pos, (int)splits, d_po, d_pml, d_cnt, d_att, NULL));
            CK(cudaMemcpy(got.data(), d_att, (size_t)hq * 4, cudaMemcpyDeviceToHost));
            if (corrupt) got[0] = -got[0] + 1.0f;
            trit_attention_f32_ref(q.data(), kf.data(), vf.data(), ctx, sh.n_heads, sh.n_kv_heads, sh.head_dim, hkv,
                                   scores.data(), want.data(), 0, sh.n_heads);
            att_row rd = {sh.model, "attn_decode", ctx, 1, {0, 0, 0}, 2.0 * (double)cache_bytes, 0, 0, 0, 0, true};
            rd.valid = att_close(got.data(), want.data(), hq);
            if (rd.valid) {
                rd.t = time_launches(
                    [&](int i) {
                        CKT(trit_cuda_attn_decode(dq, dk[(size_t)(i % n_rot)], dv[(size_t)(i % n_rot)], ash, d_pos,
                                                  (int)splits, d_po, d_pml, d_cnt, d_att, NULL));
                    },
                    iters);
                rd.gbps = rd.bytes / (rd.t.med_us * 1e3);
                rd.frac_copy = rd.gbps / copy; // as the linear layers: against the copy (read + write)
            } else {
                fprintf(stderr, "INVALID: %s attention decode at %lld positions differs from the CPU reference\n",
                        sh.model, (long long)ctx);
            }
            all_valid = all_valid && rd.valid;
            rows.push_back(rd);

            // prefill: 512 tokens from position 0 (their K and V are the first 512 cache rows)
            if (ctx == 512) {
                const int64_t m = 512;
                const int32_t zero = 0;
                CK(cudaMemcpy(d_pos, &zero, 4, cudaMemcpyHostToDevice));
                CKT(trit_cuda_attn_prefill(dq, m, dk[0], dv[0], ash, d_pos, d_att, NULL));
                CK(cudaMemcpy(got.data(), d_att, (size_t)(m * hq) * 4, cudaMemcpyDeviceToHost));
                if (corrupt) got[0] = -got[0] + 1.0f;
                att_row rp = {sh.model, "attn_prefill", ctx, m, {0, 0, 0}, 0, 0, 0, 0, 0, true};
                for (const int64_t t : {(int64_t)0, (int64_t)255, m - 1}) {
                    trit_attention_f32_ref(q.data() + t * hq, kf.data(), vf.data(), t + 1, sh.n_heads, sh.n_kv_heads,
                                           sh.head_dim, hkv, scores.data(), want.data(), 0, sh.n_heads);
                    rp.valid = rp.valid && att_close(got.data() + t * hq, want.data(), hq);
                }
                // QK^T and PV over the causal half: 2 x 2 x hd flops per (query head, query, key <= query)
                rp.flops = 4.0 * (double)sh.head_dim * (double)sh.n_heads * (double)(m * (m + 1) / 2);
                if (rp.valid) {
                    rp.t = time_launches(
                        [&](int) { CKT(trit_cuda_attn_prefill(dq, m, dk[0], dv[0], ash, d_pos, d_att, NULL)); }, iters);
                    rp.tflops = rp.flops / (rp.t.med_us * 1e6);
                } else {
                    fprintf(stderr, "INVALID: %s attention prefill of %lld tokens differs from the CPU reference\n",
                            sh.model, (long long)m);
                }
                all_valid = all_valid && rp.valid;
                rows.push_back(rp);
            }
            for (int r = 0; r < n_rot; r++) {
                CK(cudaFree(dk[(size_t)r]));
                CK(cudaFree(dv[(size_t)r]));
            }
            for (void *p : {(void *)dq, (void *)d_po, (void *)d_pml, (void *)d_att, (void *)d_pos, (void *)d_cnt})
                CK(cudaFree(p));
        }
    }
    return all_valid;
}

int main(int argc, char **argv) {
    std::string models = "2b,8b,70b", out = "bench_kernels";
    std::vector<int64_t> ms = {1, 2, 4, 8, 16, 64, 256, 2048};
    int iters = 200;
#define BENCH_KERNELS_USAGE "usage: %s [--models 2b,8b,70b] [--m 1,2,...] [--iters N] [--out PREFIX]\n"
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            printf(BENCH_KERNELS_USAGE, argv[0]);
            printf("(method and output columns: the header of bench/bench_kernels.cu and bench/README.md)\n");
            return 0;
        } else if (!strcmp(argv[i], "--models") && i + 1 < argc) models = argv[++i];
        else if (!strcmp(argv[i], "--m") && i + 1 < argc) ms = parse_list(argv[++i]);
        else if (!strcmp(argv[i], "--iters") && i + 1 < argc) iters = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--out") && i + 1 < argc) out = argv[++i];
        else {
            fprintf(stderr, BENCH_KERNELS_USAGE, argv[0]);
            return 2;
        }
    }
    if (iters < 10) iters = 10;

    int n_dev = 0;
    const cudaError_t dev_err = cudaGetDeviceCount(&n_dev);
    if (dev_err != cudaSuccess || n_dev == 0) {
        const char *req = getenv("TRIT_REQUIRE_GPU");
        printf("bench_kernels: no CUDA device (%s); nothing measured\n",
               dev_err != cudaSuccess ? cudaGetErrorString(dev_err) : "0 devices");
        return req && !strcmp(req, "1") ? 1 : 0;
    }
    const char *corrupt = getenv("TRIT_BENCH_CORRUPT");
    const bool corrupt_outputs = corrupt && !strcmp(corrupt, "1");
    if (corrupt_outputs) printf("TRIT_BENCH_CORRUPT=1: one output bit of every variant is flipped before validation\n");
    int dev = 0, l2_bytes = 0, n_sm = 0;
    cudaDeviceProp prop;
    CK(cudaGetDevice(&dev));
    CK(cudaGetDeviceProperties(&prop, dev));
    CK(cudaDeviceGetAttribute(&l2_bytes, cudaDevAttrL2CacheSize, dev));
    CK(cudaDeviceGetAttribute(&n_sm, cudaDevAttrMultiProcessorCount, dev));
    const double copy = copy_gbps();
    printf("device: %s, %d SMs, L2 %d MB, sm_%d%d; D2D copy %.0f GB/s (read + write)\n", prop.name, n_sm,
           l2_bytes >> 20, prop.major, prop.minor, copy);
    const double rotate_bytes = 2.5 * (double)l2_bytes; // > 2x L2 per variant

    cublasHandle_t blas;
    CKB(cublasCreate(&blas));
    std::vector<row> rows;
    bool all_valid = true;

    for (const shape &sh : SHAPES) {
        if (models.find(sh.model) == std::string::npos) continue;
        const int64_t n = sh.n, k = sh.k, k_pad = trit_cuda_act_stride(k);
        // random ternary weights: whole bytes from the 81 valid 4-code bytes (k % 4 == 0 here)
        trit_ternary w = {};
        CKT(trit_ternary_init(&w, n, k));
        uint8_t valid_bytes[81];
        for (int i = 0; i < 81; i++) valid_bytes[i] = (uint8_t)(i % 3 | (i / 3 % 3) << 2 | (i / 9 % 3) << 4 | (i / 27) << 6);
        for (int64_t i = 0; i < n * w.row_bytes; i++) w.codes[i] = valid_bytes[rng_u64() % 81];
        for (int64_t r = 0; r < n; r++)
            for (int64_t c = k; c < w.row_bytes * 4; c++) trit_ternary_set(&w, r, c, 0);
        w.scale = 0.75f, w.scale_kind = TRIT_SCALE_MUL;
        trit_cuda_ternary dw = {};
        CKT(trit_cuda_ternary_upload(&w, &dw));
        const size_t tile_bytes = (size_t)trit_tl_bytes(n, k);
        const int n_rot = (int)std::max<double>(1.0, rotate_bytes / (double)tile_bytes + 1.0);
        std::vector<trit_cuda_ternary> rot((size_t)n_rot, dw);
        for (int i = 1; i < n_rot; i++) {
            CK(cudaMalloc(&rot[(size_t)i].d_tiles, tile_bytes));
            CK(cudaMemcpy(rot[(size_t)i].d_tiles, dw.d_tiles, tile_bytes, cudaMemcpyDeviceToDevice));
        }
        // the same codes with a group scale per 64 columns (Q2_0's layout), rotated the same way
        trit_ternary wg = {};
        CKT(trit_ternary_init_grouped(&wg, n, k, 64));
        memcpy(wg.codes, w.codes, (size_t)(n * w.row_bytes));
        for (int64_t i = 0; i < n * trit_ternary_n_groups(&wg); i++)
            wg.group_scales[i] = 0.01f + (float)(rng_u64() % 1000) * 1e-4f;
        trit_cuda_ternary dwg = {};
        CKT(trit_cuda_ternary_upload(&wg, &dwg));
        const size_t gs_bytes = (size_t)(n * dwg.n_groups) * sizeof(float);
        const int n_rot_g = (int)std::max<double>(1.0, rotate_bytes / (double)(tile_bytes + gs_bytes) + 1.0);
        std::vector<trit_cuda_ternary> rotg((size_t)n_rot_g, dwg);
        for (int i = 1; i < n_rot_g; i++) {
            CK(cudaMalloc(&rotg[(size_t)i].d_tiles, tile_bytes));
            CK(cudaMemcpy(rotg[(size_t)i].d_tiles, dwg.d_tiles, tile_bytes, cudaMemcpyDeviceToDevice));
            CK(cudaMalloc((void **)&rotg[(size_t)i].d_group_scales, gs_bytes));
            CK(cudaMemcpy(rotg[(size_t)i].d_group_scales, dwg.d_group_scales, gs_bytes, cudaMemcpyDeviceToDevice));
        }
        // fp16 / bf16 baseline weights, rotated the same way
        const size_t wh_bytes = (size_t)(n * k) * 2;
        const int n_rot_h = (int)std::max<double>(1.0, rotate_bytes / (double)wh_bytes + 1.0);
        std::vector<void *> wh((size_t)n_rot_h);
        for (int i = 0; i < n_rot_h; i++) {
            CK(cudaMalloc(&wh[(size_t)i], wh_bytes));
            fill_half_kernel<<<1024, 256>>>((__half *)wh[(size_t)i], n * k, 17u + (uint32_t)i);
            CK(cudaGetLastError());
        }

        for (int64_t m : ms) {
            if (m < 1) continue;
            // activations: fp32 x -> device quantization (also timed), kept for all variants
            std::vector<float> x((size_t)(m * k));
            for (auto &v : x) v = (float)((double)(rng_u64() >> 11) / 9007199254740992.0 - 0.5) * 4.0f;
            std::vector<int8_t> q((size_t)(m * k));
            std::vector<float> scale((size_t)m);
            trit_quantize_rows_i8(x.data(), m, k, q.data(), scale.data());
            float *d_x, *d_scale;
            int8_t *d_q;
            int32_t *d_qsum;
            void *d_out, *d_xh, *d_yh;
            CK(cudaMalloc(&d_x, x.size() * 4));
            CK(cudaMalloc(&d_q, (size_t)(m * k_pad)));
            CK(cudaMalloc(&d_qsum, (size_t)m * 4));
            CK(cudaMalloc(&d_scale, (size_t)m * 4));
            CK(cudaMalloc(&d_out, (size_t)(m * n) * 4));
            CK(cudaMalloc(&d_xh, (size_t)(m * k) * 2));
            CK(cudaMalloc(&d_yh, (size_t)(m * n) * 2));
            CK(cudaMemcpy(d_x, x.data(), x.size() * 4, cudaMemcpyHostToDevice));
            CKT(trit_cuda_act_quantize(d_x, m, k, d_q, d_qsum, d_scale, NULL));
            fill_half_kernel<<<256, 256>>>((__half *)d_xh, m * k, 99u);
            CK(cudaGetLastError());
            CK(cudaDeviceSynchronize());

            const double act_bytes = (double)(m * k_pad), w_bytes = (double)tile_bytes;
            auto add_row = [&](const char *variant, stats t, double bytes, bool valid) {
                row r{sh.model, sh.layer, variant, n, k, m, t, bytes, bytes / (t.med_us * 1e3), 0, 0, valid};
                r.frac_copy = r.gbps / copy;
                rows.push_back(r);
            };

            // cuBLAS baselines first (their medians give the speed-ups)
            const float one = 1.0f, zero = 0.0f;
            stats t_h = time_launches([&](int i) {
                CKB(cublasGemmEx(blas, CUBLAS_OP_T, CUBLAS_OP_N, (int)n, (int)m, (int)k, &one, wh[(size_t)(i % n_rot_h)],
                                 CUDA_R_16F, (int)k, d_xh, CUDA_R_16F, (int)k, &zero, d_yh, CUDA_R_16F, (int)n,
                                 CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
            }, iters);
            add_row("cublas_fp16", t_h, (double)wh_bytes + 2.0 * (double)(m * k + m * n), true);
            for (int i = 0; i < n_rot_h; i++) { // same buffers reinterpreted and refilled as bf16
                fill_bf16_kernel<<<1024, 256>>>((__nv_bfloat16 *)wh[(size_t)i], n * k, 17u + (uint32_t)i);
                CK(cudaGetLastError());
            }
            fill_bf16_kernel<<<256, 256>>>((__nv_bfloat16 *)d_xh, m * k, 99u);
            CK(cudaGetLastError());
            stats t_b = time_launches([&](int i) {
                CKB(cublasGemmEx(blas, CUBLAS_OP_T, CUBLAS_OP_N, (int)n, (int)m, (int)k, &one, wh[(size_t)(i % n_rot_h)],
                                 CUDA_R_16BF, (int)k, d_xh, CUDA_R_16BF, (int)k, &zero, d_yh, CUDA_R_16BF, (int)n,
                                 CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
            }, iters);
            add_row("cublas_bf16", t_b, (double)wh_bytes + 2.0 * (double)(m * k + m * n), true);
            for (int i = 0; i < n_rot_h; i++) { // back to fp16 for the next m
                fill_half_kernel<<<1024, 256>>>((__half *)wh[(size_t)i], n * k, 17u + (uint32_t)i);
                CK(cudaGetLastError());
            }
            fill_half_kernel<<<256, 256>>>((__half *)d_xh, m * k, 99u);
            CK(cudaGetLastError());

            stats t_q = time_launches([&](int) { CKT(trit_cuda_act_quantize(d_x, m, k, d_q, d_qsum, d_scale, NULL)); }, iters);
            add_row("act_quant", t_q, (double)(m * k) * 4 + act_bytes, true);

            // ternary variants: validate, then time
            struct variant {
                const char *name;
                bool f32, gemv_only;
                enum trit_status (*run)(const trit_cuda_ternary *, const int8_t *, const int32_t *, const float *,
                                        int64_t, void *);
            };
            static const variant variants[] = {
                {"gemv_dp4a", false, true,
                 [](const trit_cuda_ternary *w_, const int8_t *q_, const int32_t *s_, const float *, int64_t m_, void *o) {
                     return trit_cuda_gemv_dp4a_i32(w_, q_, s_, m_, (int32_t *)o, NULL);
                 }},
                {"gemv_dp4a_f32", true, true,
                 [](const trit_cuda_ternary *w_, const int8_t *q_, const int32_t *s_, const float *sc, int64_t m_, void *o) {
                     return trit_cuda_gemv_dp4a_f32(w_, q_, s_, sc, m_, (float *)o, NULL);
                 }},
                {"gemv_add", false, true,
                 [](const trit_cuda_ternary *w_, const int8_t *q_, const int32_t *, const float *, int64_t m_, void *o) {
                     return trit_cuda_gemv_add_i32(w_, q_, m_, (int32_t *)o, NULL);
                 }},
                {"gemm_mma", false, false,
                 [](const trit_cuda_ternary *w_, const int8_t *q_, const int32_t *s_, const float *, int64_t m_, void *o) {
                     return trit_cuda_gemm_mma_i32(w_, q_, s_, m_, 0, (int32_t *)o, NULL);
                 }},
                {"gemm_mma_f32", true, false,
                 [](const trit_cuda_ternary *w_, const int8_t *q_, const int32_t *s_, const float *sc, int64_t m_, void *o) {
                     return trit_cuda_gemm_mma_f32(w_, q_, s_, sc, m_, (float *)o, NULL);
                 }},
            };
            std::vector<float> s_dev((size_t)m);
            CK(cudaMemcpy(s_dev.data(), d_scale, (size_t)m * 4, cudaMemcpyDeviceToHost));
            for (const variant &v : variants) {
                if (v.gemv_only && m > TRIT_CUDA_GEMV_MAX_M) continue;
                CK(cudaMemset(d_out, 0xA5, (size_t)(m * n) * 4));
                CKT(v.run(&dw, d_q, d_qsum, d_scale, m, d_out));
                CK(cudaDeviceSynchronize());
                if (corrupt_outputs) { // element (token 0, row 0) is always among the checked ones
                    uint32_t bits;
                    CK(cudaMemcpy(&bits, d_out, 4, cudaMemcpyDeviceToHost));
                    bits ^= 1u;
                    CK(cudaMemcpy(d_out, &bits, 4, cudaMemcpyHostToDevice));
                }
                const bool ok = validate(w, q, s_dev, m, d_out, v.f32);
                all_valid = all_valid && ok;
                const double bytes = w_bytes + act_bytes + (double)(m * n) * 4;
                if (!ok) {
                    fprintf(stderr, "INVALID: %s %s %s m %lld differs from the CPU reference\n", sh.model, sh.layer, v.name,
                            (long long)m);
                    add_row(v.name, stats{0, 0, 0}, bytes, false);
                    continue;
                }
                stats t = time_launches([&](int i) { CKT(v.run(&rot[(size_t)(i % n_rot)], d_q, d_qsum, d_scale, m, d_out)); },
                                        iters);
                add_row(v.name, t, bytes, true);
                rows.back().speedup_fp16 = t_h.med_us / t.med_us;
            }

            // the group rule (g64 weights, activations per 64-col block): its quantizer, GEMV, GEMM
            {
                const int64_t n_kb = (k + 63) / 64;
                std::vector<int8_t> qg((size_t)(m * k));
                std::vector<float> sg((size_t)(m * n_kb));
                for (int64_t i = 0; i < m; i++)
                    trit_quantize_row_i8_blocks(&x[(size_t)(i * k)], k, 64, &qg[(size_t)(i * k)], &sg[(size_t)(i * n_kb)]);
                int8_t *d_qg;
                int32_t *d_bsum;
                float *d_sg, *d_inv;
                CK(cudaMalloc(&d_qg, (size_t)(m * k_pad)));
                CK(cudaMalloc(&d_bsum, (size_t)(m * n_kb) * 4));
                CK(cudaMalloc(&d_sg, (size_t)(m * n_kb) * 4));
                CK(cudaMalloc(&d_inv, (size_t)(m * n_kb) * 4));
                stats t_qb = time_launches(
                    [&](int) { CKT(trit_cuda_act_quantize_blocks(d_x, m, k, 64, d_qg, d_bsum, d_sg, d_inv, NULL)); }, iters);
                add_row("act_quant_blocks", t_qb, (double)(m * k) * 4 + act_bytes + (double)(m * n_kb) * 12, true);
                struct gvariant {
                    const char *name;
                    bool gemv_only;
                    enum trit_status (*run)(const trit_cuda_ternary *, const int8_t *, const int32_t *, const float *,
                                            int64_t, float *);
                };
                static const gvariant gvariants[] = {
                    {"gemv_group", true,
                     [](const trit_cuda_ternary *w_, const int8_t *q_, const int32_t *b_, const float *i_, int64_t m_,
                        float *o) { return trit_cuda_gemv_group_f32(w_, q_, b_, i_, 64, m_, o, NULL); }},
                    {"gemm_group", false,
                     [](const trit_cuda_ternary *w_, const int8_t *q_, const int32_t *b_, const float *i_, int64_t m_,
                        float *o) { return trit_cuda_gemm_group_f32(w_, q_, b_, i_, 64, m_, o, NULL); }},
                };
                for (const gvariant &v : gvariants) {
                    if (v.gemv_only && m > TRIT_CUDA_GEMV_MAX_M) continue;
                    CK(cudaMemset(d_out, 0xA5, (size_t)(m * n) * 4));
                    CKT(v.run(&dwg, d_qg, d_bsum, d_inv, m, (float *)d_out));
                    CK(cudaDeviceSynchronize());
                    if (corrupt_outputs) {
                        uint32_t bits;
                        CK(cudaMemcpy(&bits, d_out, 4, cudaMemcpyDeviceToHost));
                        bits ^= 1u;
                        CK(cudaMemcpy(d_out, &bits, 4, cudaMemcpyHostToDevice));
                    }
                    const bool ok = validate_group(wg, qg, sg, m, d_out);
                    all_valid = all_valid && ok;
                    const double bytes = w_bytes + (double)gs_bytes + act_bytes + (double)(m * n_kb) * 8 + (double)(m * n) * 4;
                    if (!ok) {
                        fprintf(stderr, "INVALID: %s %s %s m %lld differs from the CPU reference\n", sh.model, sh.layer,
                                v.name, (long long)m);
                        add_row(v.name, stats{0, 0, 0}, bytes, false);
                        continue;
                    }
                    stats t = time_launches(
                        [&](int i) { CKT(v.run(&rotg[(size_t)(i % n_rot_g)], d_qg, d_bsum, d_inv, m, (float *)d_out)); },
                        iters);
                    add_row(v.name, t, bytes, true);
                    rows.back().speedup_fp16 = t_h.med_us / t.med_us;
                }
                CK(cudaFree(d_qg));
                CK(cudaFree(d_bsum));
                CK(cudaFree(d_sg));
                CK(cudaFree(d_inv));
            }
            CK(cudaFree(d_x));
            CK(cudaFree(d_q));
            CK(cudaFree(d_qsum));
            CK(cudaFree(d_scale));
            CK(cudaFree(d_out));
            CK(cudaFree(d_xh));
            CK(cudaFree(d_yh));
            // progress line per (shape, m): the fastest ternary variant
            double best = 1e30;
            const char *best_name = "-";
            for (const row &r : rows)
                if (r.model == sh.model && r.layer == sh.layer && r.m == m && r.valid && r.speedup_fp16 > 0 && r.t.med_us < best)
                    best = r.t.med_us, best_name = r.variant.c_str();
            fprintf(stderr, "%s %s %lldx%lld m %lld: best %s %.2f us, cuBLAS fp16 %.2f us\n", sh.model, sh.layer,
                    (long long)n, (long long)k, (long long)m, best_name, best, t_h.med_us);
        }
        for (int i = 1; i < n_rot; i++) CK(cudaFree(rot[(size_t)i].d_tiles));
        for (int i = 1; i < n_rot_g; i++) {
            CK(cudaFree(rotg[(size_t)i].d_tiles));
            CK(cudaFree(rotg[(size_t)i].d_group_scales));
        }
        trit_cuda_ternary_free(&dwg);
        trit_ternary_free(&wg);
        for (void *p : wh) CK(cudaFree(p));
        trit_cuda_ternary_free(&dw);
        trit_ternary_free(&w);
    }
    CKB(cublasDestroy(blas));

    // ---- table, CSV, JSON ----
    printf("\n%-4s %-8s %6s %6s %5s %-14s %9s %9s %9s %8s %6s %8s\n", "model", "layer", "n", "k", "m", "variant",
           "p10_us", "med_us", "p90_us", "GB/s", "%copy", "x_fp16");
    for (const row &r : rows)
        printf("%-4s %-8s %6lld %6lld %5lld %-14s %9.2f %9.2f %9.2f %8.0f %5.0f%% %8.2f%s\n", r.model.c_str(),
               r.layer.c_str(), (long long)r.n, (long long)r.k, (long long)r.m, r.variant.c_str(), r.t.p10_us,
               r.t.med_us, r.t.p90_us, r.gbps, 100 * r.frac_copy, r.speedup_fp16, r.valid ? "" : "  INVALID");
    const std::string csv = out + ".csv", json = out + ".json";
    FILE *f = fopen(csv.c_str(), "w");
    if (f) {
        fprintf(f, "model,layer,n,k,m,variant,p10_us,median_us,p90_us,bytes,gbps,frac_copy,speedup_vs_cublas_fp16,valid\n");
        for (const row &r : rows)
            fprintf(f, "%s,%s,%lld,%lld,%lld,%s,%.3f,%.3f,%.3f,%.0f,%.1f,%.4f,%.3f,%d\n", r.model.c_str(), r.layer.c_str(),
                    (long long)r.n, (long long)r.k, (long long)r.m, r.variant.c_str(), r.t.p10_us, r.t.med_us, r.t.p90_us,
                    r.bytes, r.gbps, r.frac_copy, r.speedup_fp16, (int)r.valid);
        fclose(f);
    }
    f = fopen(json.c_str(), "w");
    if (f) {
        fprintf(f, "{\n  \"device\": \"%s\", \"sm_count\": %d, \"l2_bytes\": %d, \"copy_gbps\": %.1f, \"iters\": %d,\n",
                prop.name, n_sm, l2_bytes, copy, iters);
        fprintf(f, "  \"results\": [\n");
        for (size_t i = 0; i < rows.size(); i++) {
            const row &r = rows[i];
            fprintf(f,
                    "    {\"model\": \"%s\", \"layer\": \"%s\", \"n\": %lld, \"k\": %lld, \"m\": %lld, \"variant\": \"%s\", "
                    "\"p10_us\": %.3f, \"median_us\": %.3f, \"p90_us\": %.3f, \"bytes\": %.0f, \"gbps\": %.1f, "
                    "\"frac_copy\": %.4f, \"speedup_vs_cublas_fp16\": %.3f, \"valid\": %s}%s\n",
                    r.model.c_str(), r.layer.c_str(), (long long)r.n, (long long)r.k, (long long)r.m, r.variant.c_str(),
                    r.t.p10_us, r.t.med_us, r.t.p90_us, r.bytes, r.gbps, r.frac_copy, r.speedup_fp16,
                    r.valid ? "true" : "false", i + 1 < rows.size() ? "," : "");
        }
        fprintf(f, "  ]\n}\n");
        fclose(f);
    }
    printf("\nwrote %s and %s\n", csv.c_str(), json.c_str());

    std::vector<att_row> att;
    all_valid = attention_bench(models, copy, rotate_bytes, n_sm, iters, corrupt_outputs, att) && all_valid;
    printf("\n%-4s %-13s %5s %4s %9s %9s %9s %8s %6s %8s\n", "model", "kernel", "ctx", "m", "p10_us", "med_us",
           "p90_us", "GB/s", "%copy", "TFLOP/s");
    for (const att_row &r : att)
        printf("%-4s %-13s %5lld %4lld %9.2f %9.2f %9.2f %8.0f %5.0f%% %8.2f%s\n", r.model.c_str(), r.kernel.c_str(),
               (long long)r.ctx, (long long)r.m, r.t.p10_us, r.t.med_us, r.t.p90_us, r.gbps, 100 * r.frac_copy, r.tflops,
               r.valid ? "" : "  INVALID");
    const std::string att_csv = out + "_attention.csv";
    f = fopen(att_csv.c_str(), "w");
    if (f) {
        fprintf(f, "model,kernel,ctx,m,p10_us,median_us,p90_us,bytes,gbps,frac_copy,flops,tflops,valid\n");
        for (const att_row &r : att)
            fprintf(f, "%s,%s,%lld,%lld,%.3f,%.3f,%.3f,%.0f,%.1f,%.4f,%.0f,%.3f,%d\n", r.model.c_str(), r.kernel.c_str(),
                    (long long)r.ctx, (long long)r.m, r.t.p10_us, r.t.med_us, r.t.p90_us, r.bytes, r.gbps, r.frac_copy,
                    r.flops, r.tflops, (int)r.valid);
        fclose(f);
        printf("wrote %s\n", att_csv.c_str());
    }
    return all_valid ? 0 : 1;
}
