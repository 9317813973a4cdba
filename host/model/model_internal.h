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

/* "<prefix>N.<rest>" with N in canonical decimal (no sign, no leading zero): true, *layer = N
 * (INT64_MAX when it does not fit), *n_digits its length in the name, *rest what follows the dot.
 * Any other name: false. The GGUF ("blk.") and HF ("model.layers.") loaders share it. */
bool model_layer_of(const char *name, const char *prefix, int64_t *layer, int *n_digits, const char **rest);

/* Tensors a file holds that its loader does not read. The loaders do not refuse them (llama.cpp files
 * may carry e.g. rope_freqs.weight) but report them: model_unused_add notes each one with kind
 * "unused" (so `trit inspect` lists it), and model_unused_report then logs one warning naming the
 * first MODEL_UNUSED_SHOWN and the count:
 *     PATH: 2 tensors that trit does not use, ignored: 'a', 'b'                                     */
#define MODEL_UNUSED_SHOWN 4
struct model_unused {
    int64_t n;
    char shown[MODEL_UNUSED_SHOWN][96];
};
enum trit_status model_unused_add(struct trit_model *m, int64_t *cap, struct model_unused *u, const char *name,
                                  int64_t n_rows, int64_t n_cols, uint64_t file_bytes);
void model_unused_report(const struct trit_model *m, const struct model_unused *u);

#endif /* TRIT_MODEL_INTERNAL_H */
