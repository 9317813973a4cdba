/*
 * trit_cuda_backend.h: internals of the CUDA backend (cuda/backend.cu) that tests reach beyond the
 * ops table of host/backend.h (trit_cuda_backend). C callable, no CUDA types.
 */
#ifndef TRIT_CUDA_BACKEND_H
#define TRIT_CUDA_BACKEND_H

#include <stdbool.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Turns the CUDA graph of the single-token forward on (the default) or off; off also drops a
 * captured graph. state is what trit_cuda_backend.init returned. */
void trit_cuda_backend_set_graphs(void *state, bool enabled);
/* Whether the last forward call ran a captured graph (for tests of the capture path). */
bool trit_cuda_backend_last_call_graphed(const void *state);
/* Split-K factor of the decode attention chosen at init. */
int trit_cuda_backend_n_splits(const void *state);

#ifdef __cplusplus
}
#endif

#endif /* TRIT_CUDA_BACKEND_H */
