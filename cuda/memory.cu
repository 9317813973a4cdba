/*
 * memory.cu: checked device-memory wrappers for C callers, and the upload of a canonical ternary
 * matrix into the tile layout (ternary_layout.h), with its group scales. See trit_cuda.h for the
 * contracts.
 */
#include <cuda_runtime.h>
#include <stdint.h>

#include "cuda_check.h"
#include "ternary_layout.h"
#include "trit_cuda.h"

extern "C" enum trit_status trit_cuda_malloc(void **d_ptr, size_t n_bytes) {
    if (!d_ptr) return trit_error(TRIT_ERR_INVALID_ARG, "trit_cuda_malloc: NULL output pointer");
    *d_ptr = NULL;
    const cudaError_t e = cudaMalloc(d_ptr, n_bytes ? n_bytes : 1);
    if (e == cudaErrorMemoryAllocation) {
        (void)cudaGetLastError();
        return trit_error(TRIT_ERR_OUT_OF_MEMORY, "trit_cuda_malloc: %zu bytes: out of device memory", n_bytes);
    }
    TRIT_CUDA_CHECK(e);
    return TRIT_OK;
}

extern "C" void trit_cuda_free(void *d_ptr) {
    if (d_ptr) (void)cudaFree(d_ptr); /* a failure here leaves nothing to do; the next call reports it */
}

extern "C" enum trit_status trit_cuda_upload(void *d_dst, const void *src, size_t n_bytes) {
    TRIT_CUDA_CHECK(cudaMemcpy(d_dst, src, n_bytes, cudaMemcpyHostToDevice));
    return TRIT_OK;
}

extern "C" enum trit_status trit_cuda_download(void *dst, const void *d_src, size_t n_bytes) {
    TRIT_CUDA_CHECK(cudaMemcpy(dst, d_src, n_bytes, cudaMemcpyDeviceToHost));
    return TRIT_OK;
}

extern "C" enum trit_status trit_cuda_memset(void *d_dst, int byte, size_t n_bytes, void *stream) {
    TRIT_CUDA_CHECK(cudaMemsetAsync(d_dst, byte, n_bytes, (cudaStream_t)stream));
    return TRIT_OK;
}

extern "C" enum trit_status trit_cuda_stream_sync(void *stream) {
    TRIT_CUDA_CHECK(cudaStreamSynchronize((cudaStream_t)stream));
    return TRIT_OK;
}

extern "C" enum trit_status trit_cuda_sm_count(int *n_sm) {
    int dev = 0;
    TRIT_CUDA_CHECK(cudaGetDevice(&dev));
    TRIT_CUDA_CHECK(cudaDeviceGetAttribute(n_sm, cudaDevAttrMultiProcessorCount, dev));
    return TRIT_OK;
}

extern "C" int64_t trit_cuda_act_stride(int64_t k) { return trit_tl_cols_pad(k); }

extern "C" enum trit_status trit_cuda_ternary_upload(const struct trit_ternary *w, struct trit_cuda_ternary *out) {
    if (!w || !out || (!w->codes && w->n_rows * w->n_cols > 0))
        return trit_error(TRIT_ERR_INVALID_ARG, "trit_cuda_ternary_upload: NULL argument");
    *out = trit_cuda_ternary{};
    if (w->n_rows < 1 || w->n_cols < 1 || w->row_bytes != (w->n_cols + 3) / 4)
        return trit_error(TRIT_ERR_INVALID_ARG, "trit_cuda_ternary_upload: bad shape %lld x %lld (row_bytes %lld)",
                          (long long)w->n_rows, (long long)w->n_cols, (long long)w->row_bytes);
    if (w->n_cols > TRIT_TL_MAX_COLS)
        return trit_error(TRIT_ERR_UNSUPPORTED, "trit_cuda_ternary_upload: n_cols %lld > %lld", (long long)w->n_cols,
                          (long long)TRIT_TL_MAX_COLS);

    if (w->group < 0 || (w->group > 0 && (w->group % TRIT_GROUP_UNIT != 0 || !w->group_scales)))
        return trit_error(TRIT_ERR_INVALID_ARG, "trit_cuda_ternary_upload: group %lld (a multiple of %d with scales)",
                          (long long)w->group, TRIT_GROUP_UNIT);

    const int64_t n_pad = trit_tl_rows_pad(w->n_rows);
    const size_t tile_bytes = (size_t)trit_tl_bytes(w->n_rows, w->n_cols);
    const size_t bias_bytes = (size_t)n_pad * sizeof(int32_t);
    enum trit_status st = TRIT_OK;
    struct trit_cuda_ternary d = {};
    uint8_t *tiles = (uint8_t *)trit_alloc(tile_bytes);
    int32_t *bias = (int32_t *)trit_alloc(bias_bytes);
    if (!tiles || !bias) {
        st = trit_error(TRIT_ERR_OUT_OF_MEMORY, "trit_cuda_ternary_upload: %zu host bytes", tile_bytes + bias_bytes);
        goto done;
    }
    if (trit_tl_pack_codes(w->codes, w->row_bytes, w->n_rows, w->n_cols, w->group > 0, tiles) != 0) {
        st = trit_error(TRIT_ERR_INVALID_ARG, "trit_cuda_ternary_upload: code 3 in a %lld x %lld ternary matrix",
                        (long long)w->n_rows, (long long)w->n_cols);
        goto done;
    }
    trit_tl_row_bias(w->codes, w->row_bytes, w->n_rows, w->n_cols, bias);

    d.n_rows = w->n_rows, d.n_cols = w->n_cols;
    d.n_rows_pad = n_pad, d.n_cols_pad = trit_tl_cols_pad(w->n_cols);
    d.scale = w->scale, d.scale_kind = w->scale_kind;
    if ((st = trit_cuda_malloc(&d.d_tiles, tile_bytes)) != TRIT_OK) goto done;
    if ((st = trit_cuda_malloc((void **)&d.d_row_bias, bias_bytes)) != TRIT_OK) goto done;
    TRIT_CUDA_CHECK_GOTO(cudaMemcpy(d.d_tiles, tiles, tile_bytes, cudaMemcpyHostToDevice), st, done);
    TRIT_CUDA_CHECK_GOTO(cudaMemcpy(d.d_row_bias, bias, bias_bytes, cudaMemcpyHostToDevice), st, done);
    if (w->group > 0) {
        d.group = w->group;
        d.n_groups = trit_ternary_n_groups(w);
        const size_t gs_bytes = (size_t)(w->n_rows * d.n_groups) * sizeof(float);
        if ((st = trit_cuda_malloc((void **)&d.d_group_scales, gs_bytes)) != TRIT_OK) goto done;
        TRIT_CUDA_CHECK_GOTO(cudaMemcpy(d.d_group_scales, w->group_scales, gs_bytes, cudaMemcpyHostToDevice), st, done);
    }
    *out = d;
    d = trit_cuda_ternary{}; /* ownership moved */
done:
    trit_cuda_ternary_free(&d);
    trit_free(tiles);
    trit_free(bias);
    return st;
}

extern "C" void trit_cuda_ternary_free(struct trit_cuda_ternary *w) {
    if (!w) return;
    trit_cuda_free(w->d_tiles);
    trit_cuda_free(w->d_row_bias);
    trit_cuda_free(w->d_group_scales);
    *w = trit_cuda_ternary{};
}
