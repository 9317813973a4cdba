/* model_internal.h: helpers shared by the GGUF and HF loaders (host/model only). */
#ifndef TRIT_MODEL_INTERNAL_H
#define TRIT_MODEL_INTERNAL_H

#include "model/model.h"

/* Appends a line to m->notes (growing it; *cap tracks the allocation). */
enum trit_status model_note(struct trit_model *m, int64_t *cap, const char *name, const char *kind,
                            int64_t n_rows, int64_t n_cols, uint64_t file_bytes);

/* A float weight to a canonical ternary matrix: exact recovery when it is already ternary times
 * a scale (*was_exact = true), else absmean ternarization (*was_exact = false). */
enum trit_status model_ternary_from_floats(const float *w, int64_t n_rows, int64_t n_cols,
                                           struct trit_ternary *out, bool *was_exact);

/* n values of `dtype` at src, converted to a new fp32 array (trit_alloc). */
enum trit_status model_copy_f32(const void *src, enum trit_dtype dtype, int64_t n, float **out);

void model_progress(const struct trit_load_params *params, int64_t done, int64_t total);

#endif /* TRIT_MODEL_INTERNAL_H */
