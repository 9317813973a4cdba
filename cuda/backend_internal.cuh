/*
 * backend_internal.cuh: what the pieces of the CUDA backend (cuda/backend*.cu; backend.cu's header
 * says which holds what) share: the state (cuda_state, a layer's device pointers cuda_layer, a TP
 * rank's cuda_tp), init's TP arguments, a TP rank's weight slices, the cuBLAS workspace size,
 * and the functions one piece calls in another. Everything is in namespace trit_cuda_be, whose
 * visibility is hidden: none of it is exported from libtrit-cuda.so, whose entry points stay
 * trit_cuda_backend (host/backend.h), trit_cuda_backend.h's functions and the kernels' launchers.
 * A piece's own helpers stay in an anonymous namespace inside its file.
 *
 * Host headers the backend includes (plain C, with C linkage), and why:
 *   backend.h          the interface it implements: trit_backend_ops, trit_backend_config,
 *                      TRIT_TOPK_MAX; through it core/core.h (status, allocation, logging) and
 *                      model/model.h (trit_model: what is uploaded)
 *   forward.h          the forward pass, written once (host/forward.c), and the ops it runs
 *   tp/comm.h          the communicator a TP rank's collectives run on (its stream is st->stream)
 *   tp/plan.h          the sharding plan, computed by the one planner CPU and GPU ranks share
 *   cpu/head_int8.h    backend_arena.cu: the int8 head, quantized by the CPU's own code (bit for bit)
 *   cpu/ops.h          backend_arena.cu: trit_rope_table, the CPU's own RoPE angles
 *   core/threadpool.h  backend_arena.cu: the pool that repacks the weights into tiles
 * They are the numerics' references and the TP plan: the device reproduces them, so it calls them
 * instead of copying them. No host file includes this header; the host reaches the backend through
 * the ops table and trit_cuda_backend.h only (docs/design.md section 2).
 */
#ifndef TRIT_CUDA_BACKEND_INTERNAL_CUH
#define TRIT_CUDA_BACKEND_INTERNAL_CUH

#include <cuda_fp16.h>
#include <cuda_runtime.h>
#include <stdint.h>

extern "C" {
#include "backend.h"
#include "forward.h"
#include "tp/comm.h"
#include "tp/plan.h"
}
#include "cuda_check.h"
#include "trit_cuda.h"
#include "trit_cuda_backend.h"
#include "trit_cuda_ops.h"

namespace trit_cuda_be __attribute__((visibility("hidden"))) {

struct cuda_layer {
    trit_cuda_ternary qkv, o, gu, down; // tiles and the add-only GEMV's row biases, in the arena
    trit_cuda_wscale ws_qkv[3], ws_o, ws_gate, ws_up, ws_down;
    float *attn_norm, *attn_sub_norm, *ffn_norm, *ffn_sub_norm; // (D), (Hq), (D), (F); subs NULL without
    float *q_norm, *k_norm;                                     // (head_dim) Qwen3's per-head norms, or NULL
    __half *k_cache, *v_cache;                                  // (n_kv_blocks, TRIT_KV_BLOCK, Hkv): the pool
};

// Tensor parallelism (host/tp/tp.h's math on the device): this rank's shard and the buffers its
// collectives use. One GPU is rank 0 of 1 on the one-rank communicator (host/tp/comm_self.c) in
// grouped mode, where a shard's own statistics are the whole row's: the plain model; its
// collectives return at once, and nothing is pending to reduce or gather (multi_rank).
struct cuda_tp {
    trit_comm *comm; // NCCL (borrowed; the backend runs on its stream), or the one-rank one (owned)
    bool own_comm;
    trit_tp_plan plan;
    enum trit_tp_quant quant;
    int64_t own_off;          // floats from a row of computed heads to this rank's own heads
    int64_t q_own;            // own heads x head_dim: o_proj's columns here
    float *att_own;           // (B, q_own): own heads compacted, when they are not the whole row
    double *pairs, *pairs_all; // exact mode with sub-norms: (B, 2), (N, B, 2)
    float *amax;              // (B) exact mode: the all-reduced absmax
    float *y;                 // (B, D) grouped mode over several ranks: the all-reduced fp32 row-parallel output
    float *logits_loc;        // several ranks: (n_out_rows, vocab_stride) this rank's head rows
    float *logits_all;        // several ranks: (N, n_out_rows, vocab_stride) the all-gather
    // collective timing: an event pair per collective of a call, summed after the call's sync
    cudaEvent_t *ev;
    int n_ev, ev_used;
    double comm_ms;
    int64_t n_tokens;
};

struct cuda_state {
    const trit_model *m;
    trit_backend_config cfg;
    int64_t d, f, hq, hkv, n_qkv; // D, F, Hq, Hkv, Hq + 2 Hkv: this rank's (computed) widths with TP
    int64_t o_cols, v_head;       // o_proj's input columns (Hq, or q_own) and head rows (V, or this rank's)
    cuda_tp tp;
    bool nccl;        // on a NCCL communicator: its stream, eager steps (no graphs), timed collectives
    bool multi_rank;  // more than one rank: partial sums to reduce, vocabulary slices to gather
    bool own_stream;
    trit_cuda_attn_shape shape;
    int n_splits;
    int64_t n_out_rows; // rows of logits a call can produce: B with logits_all, else one per sequence (<= B)
    // The paged KV cache (docs/design.md section 9): n_kv_blocks blocks of TRIT_KV_BLOCK rows per layer;
    // a sequence's block table has up to max_blocks (ceil(n_ctx / 64)) entries; a batch holds up to
    // n_tables distinct sequences (min(n_seq_max, B)); dec_tokens: the decode attention's scratch slots.
    int64_t n_kv_blocks;
    int32_t max_blocks, n_tables;
    int64_t dec_tokens;
    trit_cuda_kv_map map; // the running call's: forward's identity table, or forward_batch's tables
    bool batched;         // the running call is forward_batch's: every token through the decode attention
    bool head_int8;     // cfg.head_int8: the int8 head below replaces the fp16/bf16 one
    // The group rule (docs/design.md section 3; one GPU only): every ternary matrix carries a scale
    // per `group` columns; its matmul writes fp32 values into acc (read back with TRIT_EPI_F32
    // scales) from activations quantized per act_block (0: per token) with block sums and 1 / s.
    bool group_rule;
    int64_t group, act_block;
    int64_t n_kb;       // 64-col blocks of the widest matmul input
    int32_t *bsum;      // (B, n_kb)
    float *act_inv;     // (B, n_kb): 1 / s per token and block (per token: the first column)
    float *act_sblk;    // (B, n_kb): the block scales s the quantizer writes (act_block 64; the kernels read inv)
    bool gemv_add;      // cfg.cuda_gemv ADD: decode matmuls on the add-only GEMV, else dp4a

    cudaStream_t stream;
    void *arena;
    size_t arena_bytes;
    cuda_layer *layers;

    const uint16_t *embd, *head; // (V, D) fp16 or bf16; head == embd when tied; NULL: untied int8 head
    int8_t *head8_w;             // int8 head: (V, head8_ld) rows as host/cpu/head_int8.c quantizes them
    float *head8_d;              // (V) 1 / s_r
    int64_t head8_ld;            // D rounded up to 64 (head_int8.c's padding)
    int8_t *head8_q;             // (n_out_rows, head8_ld) quantized final norm
    float *head8_dx;             // (n_out_rows) 1 / s_x
    int32_t *argmax;             // (1) forward_argmax's result
    uint32_t *topk_keys;         // (V) forward_topk's scratch
    float *topk_vals;            // (TRIT_TOPK_MAX) its candidates
    int32_t *topk_ids;           // (TRIT_TOPK_MAX)
    int32_t *pen;                // (V) the penalized ids, each once
    int32_t *h_aux;              // pinned: (V) penalized ids, then TRIT_TOPK_MAX ids and vals back
    uint8_t *pen_mark;           // host (V / 8): which ids h_aux already lists
    int embd_bf16, head_bf16;
    float *out_norm, *rope_cos, *rope_sin; // (D), (n_ctx, hd / 2) x 2
    int32_t *io, *h_io;                    // (B + 1) = {pos0, tokens}: device, pinned host
    // forward_batch's arrays, uploaded in one copy: (3 B + n_tables x max_blocks) = {pos (B), the
    // token's table (B), the wanted rows (B), the tables (n_tables, max_blocks)}: device, pinned host
    int32_t *batch, *h_batch;
    int32_t *ident;                        // (max_blocks) 0, 1, 2, ...: forward's block table
    const int32_t **seen;                  // host (n_tables): forward_batch's distinct block tables ...
    int32_t *seen_last;                    // host (n_tables): ... and the furthest position of each
    float *x;                              // (B, D)
    int8_t *q8;                            // (B, act_stride(max(D, Hq, F)))
    int32_t *qsum;                         // (B)
    float *act_scale;                      // (B)
    int32_t *acc;                          // (B, max(Hq + 2 Hkv, 2F, D))
    float *q;                              // (B, Hq) rotated queries
    float *buf;                            // (B, max(Hq, F)) attention output / FFN hidden, fp32
    float *part_o, *part_ml;               // decode split partials: (dec_tokens, n_splits, Hq), (dec_tokens, n_splits, n_heads, 2)
    uint32_t *counters;                    // (dec_tokens, n_kv_heads) the decode attention's merge tickets, zero
    float *xn;                             // (n_out_rows, D) final norm
    float *logits;                         // (n_out_rows, V)
    const int32_t *pend;                   // the block output the next norm adds to x (NULL: none)
    trit_cuda_wscale pend_ws;              // its scale

    bool graphs_enabled, last_graphed;
    int64_t n_single_calls;
    cudaGraphExec_t graph;
    char desc[320]; /* cudaDeviceProp::name is up to 256 bytes */
};

// Tensor parallelism's arguments to cuda_init_impl (NULL, or NULL comm: one GPU, rank 0 of 1 on
// the one-rank communicator).
struct tp_args {
    trit_comm *comm;
    enum trit_tp_quant quant;
};

// Tensor parallelism: this rank's shards of a layer's matrices as host copies, cut by the plan's
// one shard table (trit_tp_shard_of).
struct tp_slices {
    trit_ternary t[TRIT_N_W]; // enum trit_weight
};

// Ints of forward_batch's arrays (cuda_state::batch): pos, the token's table and the wanted rows (B
// each), then the tables.
inline int64_t batch_ints(const cuda_state *st) {
    return 3 * st->cfg.n_batch + (int64_t)st->n_tables * st->max_blocks;
}

// ---- backend.cu: init and free -------------------------------------------------------------------

void cuda_free_impl(cuda_state *st);
enum trit_status cuda_init_impl(const trit_model *m, const trit_backend_config *cfg, const tp_args *tp,
                                cuda_state **out);

// ---- backend_arena.cu: layout and upload ---------------------------------------------------------

int64_t layout(cuda_state *st, uintptr_t base);
enum trit_status upload_weights(cuda_state *st);
enum trit_status upload_rope(cuda_state *st);

// ---- backend_forward.cu: the forward pass --------------------------------------------------------

enum trit_status matmul(cuda_state *st, const trit_cuda_ternary *w, int64_t m);
enum trit_status enqueue(cuda_state *st, int64_t m);
enum trit_status cuda_sync(cuda_state *st, int64_t n_tokens);
enum trit_status cuda_forward_impl(cuda_state *st, const int32_t *tokens, int64_t n, int64_t pos0, float *logits);
enum trit_status cuda_forward_batch_impl(cuda_state *st, const trit_forward_batch *b, float *logits);
enum trit_status cuda_kv_copy_impl(cuda_state *st, int32_t from, int32_t to);

// ---- backend_graph.cu: a call's checks, eager or replayed ----------------------------------------

enum trit_status cuda_run(cuda_state *st, const int32_t *tokens, int64_t n, int64_t pos0);

// ---- backend_sample.cu: sampling's first step on the device -------------------------------------

enum trit_status cuda_forward_argmax_impl(cuda_state *st, const int32_t *tokens, int64_t n, int64_t pos0,
                                          int32_t *token);
enum trit_status cuda_forward_topk_impl(cuda_state *st, const int32_t *tokens, int64_t n, int64_t pos0, int32_t k,
                                        const int32_t *pen_ids, int32_t n_pen, float penalty, float *vals,
                                        int32_t *ids);

// ---- backend_tp.cu: tensor parallelism -----------------------------------------------------------

enum trit_status tp_setup(cuda_state *st, const tp_args *tp);
void tp_slices_free(tp_slices *sl);
enum trit_status tp_slices_make(const cuda_state *st, const trit_layer *L, tp_slices *sl);
enum trit_status tp_sum_comm_time(cuda_state *st);
enum trit_status tp_shard_quant(cuda_state *st, float *x, int64_t m, int64_t n, int64_t n_full, const float *w);
enum trit_status tp_matmul_grouped(cuda_state *st, const trit_cuda_ternary *w, trit_cuda_wscale ws, int64_t m);
enum trit_status tp_reduce(cuda_state *st, int64_t m);
enum trit_status tp_gather_logits(cuda_state *st, int64_t n_out);

} // namespace trit_cuda_be

#endif /* TRIT_CUDA_BACKEND_INTERNAL_CUH */
