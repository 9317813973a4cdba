/*
 * backend_graph.cu: a forward call's checks and its step, run eagerly or as a CUDA graph (cuda_run),
 * and the switches tests use (trit_cuda_backend.h).
 *
 * Decode (m = 1): the second single-token call captures the whole step into a CUDA graph; later
 * calls replay it. Nothing in it depends on the position except through the device scalar io[0]
 * (RoPE rows, cache rows, the attention's length and splits), and the tokens and position are read
 * from pinned host memory by the graph's first node, so one graph serves every position. Its
 * block table is the identity (st->ident, written once at init). forward_batch never uses a graph.
 */
#include <string.h>

#include "backend_internal.cuh"

namespace trit_cuda_be {
namespace {

// Captures enqueue(st, 1) into st->graph.
enum trit_status capture_single(cuda_state *st) {
    TRIT_CUDA_CHECK(cudaStreamBeginCapture(st->stream, cudaStreamCaptureModeThreadLocal));
    const enum trit_status status = enqueue(st, 1);
    cudaGraph_t g = NULL;
    const cudaError_t e = cudaStreamEndCapture(st->stream, &g); // always: it leaves capture mode
    if (status != TRIT_OK) {
        if (g) (void)cudaGraphDestroy(g);
        (void)cudaGetLastError();
        return status;
    }
    TRIT_CUDA_CHECK(e);
    const cudaError_t ei = cudaGraphInstantiate(&st->graph, g, 0);
    (void)cudaGraphDestroy(g);
    if (ei != cudaSuccess) st->graph = NULL;
    TRIT_CUDA_CHECK(ei);
    return TRIT_OK;
}

} // namespace

// Checks and enqueues the forward pass (graph replay for single tokens); st->logits holds the result
// once the stream gets there.
enum trit_status cuda_run(cuda_state *st, const int32_t *tokens, int64_t n, int64_t pos0) {
    trit_forward_batch b; // the checks every backend makes (host/forward.c)
    TRIT_TRY(trit_forward_batch_make(&st->m->hp, st->cfg.n_ctx, st->cfg.n_batch, st->cfg.logits_all, tokens, n, pos0, &b));
    if (pos0 + n > st->n_kv_blocks * TRIT_KV_BLOCK)
        return trit_error(TRIT_ERR_CONTEXT_FULL, "context full: positions up to %lld do not fit the KV pool's %lld tokens",
                          (long long)(pos0 + n - 1), (long long)(st->n_kv_blocks * TRIT_KV_BLOCK));
    // one sequence in blocks 0, 1, 2, ... (host/cpu/backend_cpu.c's forward does the same): the
    // graph captures this map, whose pointers never change
    st->map = trit_cuda_kv_map{st->io, NULL, st->ident, NULL, st->max_blocks};
    st->batched = false;
    st->h_io[0] = (int32_t)pos0; // read by the first copy of the step (or graph), after the last call synced
    memcpy(st->h_io + 1, tokens, (size_t)n * sizeof(int32_t));

    st->last_graphed = false;
    st->tp.ev_used = 0; // a failed call may have left some recorded
    if (n == 1 && st->graphs_enabled) {
        if (!st->graph && st->n_single_calls++ >= 1) TRIT_TRY(capture_single(st)); // after one eager call
        if (st->graph) {
            TRIT_CUDA_CHECK(cudaGraphLaunch(st->graph, st->stream));
            st->last_graphed = true;
        } else {
            TRIT_TRY(enqueue(st, 1));
        }
    } else {
        TRIT_TRY(enqueue(st, n));
    }
    return TRIT_OK;
}

} // namespace trit_cuda_be

// The C entry points stay outside the namespace: its hidden visibility would hide them too.
using namespace trit_cuda_be;

extern "C" void trit_cuda_backend_set_graphs(void *state, bool enabled) {
    cuda_state *st = static_cast<cuda_state *>(state);
    if (st->nccl) return; // a TP step runs its collectives eagerly
    st->graphs_enabled = enabled;
    if (!enabled && st->graph) {
        (void)cudaGraphExecDestroy(st->graph);
        st->graph = NULL;
        st->n_single_calls = 0;
    }
}

extern "C" bool trit_cuda_backend_last_call_graphed(const void *state) {
    return static_cast<const cuda_state *>(state)->last_graphed;
}
