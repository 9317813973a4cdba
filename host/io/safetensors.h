/*
 * safetensors.h: safetensors reader (read-only mmap, never copies tensor data, hostile-input safe).
 *
 * File layout (little-endian):
 *     [0, 8)           u64 N: byte length of the JSON header
 *     [8, 8 + N)       JSON object, optionally padded with spaces:
 *                          { "<tensor name>": { "dtype": "BF16", "shape": [d0, d1, ...],
 *                                               "data_offsets": [begin, end] },
 *                            ...,
 *                            "__metadata__": { "<key>": "<string>", ... } }      (optional)
 *     [8 + N, size)    the data buffer; a tensor's bytes are data[begin, end), row-major with the
 *                      LAST shape entry contiguous (torch/numpy order, the reverse of GGUF's ne[]).
 *
 * Checks (each failure is TRIT_ERR_FORMAT naming the file, the tensor and the field or byte offset;
 * an unknown dtype string is TRIT_ERR_UNSUPPORTED): N <= file size - 8 and N <= ST_MAX_HEADER_BYTES;
 * the header is one JSON object followed only by whitespace; names are unique (duplicate JSON keys
 * included: cJSON keeps both, so they are detected here); every entry has a known dtype, a shape
 * of at most ST_MAX_DIMS non-negative integers and data_offsets of exactly two integers with
 * begin <= end <= data size; elements * dtype size is computed without overflow and equals
 * end - begin; no two non-empty tensors overlap. Gaps between tensors are allowed.
 *
 * Tensor data pointers have no alignment guarantee (the format has none): read through memcpy or
 * the dtype's natural unaligned-safe path.
 */
#ifndef TRIT_SAFETENSORS_H
#define TRIT_SAFETENSORS_H

#include <stdbool.h>
#include <stdint.h>

#include "core/core.h"

/* Element types. Append only. All are recognized so that `trit inspect` can list any file;
 * st_dtype_loadable() says which ones the model loader converts. */
enum st_dtype {
    ST_F32 = 0,
    ST_F16 = 1,
    ST_BF16 = 2,
    ST_U8 = 3,
    ST_I8 = 4,
    ST_F64 = 5,
    ST_I16 = 6,
    ST_I32 = 7,
    ST_I64 = 8,
    ST_BOOL = 9,
    ST_F8_E4M3 = 10,
    ST_F8_E5M2 = 11,
    ST_U16 = 12,
    ST_U32 = 13,
    ST_U64 = 14,
    ST_DTYPE_COUNT
};

#define ST_MAX_DIMS 8
/* The reference reader's cap (MAX_HEADER_SIZE in huggingface/safetensors), so that every file it
 * accepts is accepted here. A 2B-4T header is about 40 KB. */
#define ST_MAX_HEADER_BYTES UINT64_C(100000000)

struct st_tensor {
    const char *name;            /* NUL-terminated, owned by the st_file */
    enum st_dtype dtype;
    int n_dims;                  /* 0 (a scalar: one element) .. ST_MAX_DIMS */
    int64_t shape[ST_MAX_DIMS];  /* shape[n_dims - 1] is contiguous; unused entries are 1 */
    int64_t n_elements;          /* product of shape (1 for a scalar, 0 if any entry is 0) */
    const uint8_t *data;         /* inside the map, unaligned; valid until st_close */
    uint64_t n_bytes;            /* n_elements * st_dtype_size(dtype) == end - begin */
    uint64_t file_offset;        /* absolute byte offset of data in the file, for messages */
};

struct st_meta {
    const char *key;   /* NUL-terminated, owned by the st_file */
    const char *value;
};

struct st_file {
    char *label;                 /* the path, or "<memory>"; owned; starts every message */
    const uint8_t *map;          /* the whole file, read-only */
    uint64_t size;
    uint64_t header_bytes;       /* N */
    const uint8_t *data;         /* map + 8 + N */
    uint64_t data_bytes;         /* size - 8 - N */
    int64_t n_tensors;
    struct st_tensor *tensors;   /* in data order: sorted by offset, then by name */
    int64_t n_meta;
    struct st_meta *meta;        /* "__metadata__", sorted by key */
    /* private */
    const struct st_tensor **by_name_; /* every tensor, sorted by name */
    char *strings_;              /* storage for every name, key and value */
    bool owns_map_;              /* true when opened from a path (munmap on close) */
};

/* Maps and parses `path`. On success *out owns the map; release it with st_close. On failure *out
 * is left zeroed (st_close on it is harmless). TRIT_ERR_NOT_FOUND when the file does not exist. */
enum trit_status st_open(const char *path, struct st_file *out);
/* Parses a caller-owned buffer (tests, the fuzzer); the buffer must outlive *out. */
enum trit_status st_open_memory(const uint8_t *data, uint64_t size, struct st_file *out);
/* Releases everything; accepts NULL and a zeroed struct. */
void st_close(struct st_file *f);

/* Lookups by exact name: NULL when absent. */
const struct st_tensor *st_find(const struct st_file *f, const char *name);
const char *st_meta_find(const struct st_file *f, const char *key);
/* st_find, with TRIT_ERR_NOT_FOUND "<file>: no tensor '<name>'" when absent. */
enum trit_status st_get(const struct st_file *f, const char *name, const struct st_tensor **out);

/* Bytes per element (F8: 1, BOOL: 1); 0 for an out-of-range value. */
int st_dtype_size(enum st_dtype dtype);
/* The format's own spelling ("BF16"), or "?" for an out-of-range value. */
const char *st_dtype_name(enum st_dtype dtype);
/* Parses the format's spelling; false when unknown. */
bool st_dtype_from_name(const char *name, enum st_dtype *out);
/* True for the dtypes the model loader converts: F32, F16, BF16, U8, I8. */
bool st_dtype_loadable(enum st_dtype dtype);

#endif /* TRIT_SAFETENSORS_H */
