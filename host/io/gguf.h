/*
 * gguf.h: GGUF reader (read-only mmap, hostile-input safe) and writer.
 *
 * Spec: ggml-org/ggml docs/gguf.md, summarized in docs/formats.md section 4.
 * Little-endian, versions 2 and 3. Every length, count, offset and dimension is checked against the
 * file size and for overflow before anything is allocated or read; a failure returns
 * TRIT_ERR_FORMAT with a message that names the problem and the byte offset. A parsed file's tensor
 * data offsets are multiples of its alignment, their bytes lie inside the file, and no two tensors'
 * bytes overlap.
 */
#ifndef TRIT_GGUF_H
#define TRIT_GGUF_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "core/core.h"

/* Metadata value types (gguf_type); stored as int32. */
enum gguf_type {
    GGUF_TYPE_UINT8 = 0,
    GGUF_TYPE_INT8 = 1,
    GGUF_TYPE_UINT16 = 2,
    GGUF_TYPE_INT16 = 3,
    GGUF_TYPE_UINT32 = 4,
    GGUF_TYPE_INT32 = 5,
    GGUF_TYPE_FLOAT32 = 6,
    GGUF_TYPE_BOOL = 7,
    GGUF_TYPE_STRING = 8,
    GGUF_TYPE_ARRAY = 9,
    GGUF_TYPE_UINT64 = 10,
    GGUF_TYPE_INT64 = 11,
    GGUF_TYPE_FLOAT64 = 12,
    GGUF_TYPE_COUNT
};

/* ggml tensor types that trit knows by id. Ids >= 36 mean different things in bitnet.cpp files and
 * in upstream llama.cpp files; the model loader decides them by general.architecture and, for Q2_0's
 * block and type 36 outside bitnet.cpp's architectures, by the tensors' byte spans (docs/formats.md
 * section 1). */
enum ggml_type {
    GGML_TYPE_F32 = 0,
    GGML_TYPE_F16 = 1,
    GGML_TYPE_Q4_0 = 2,
    GGML_TYPE_Q4_1 = 3,
    GGML_TYPE_Q5_0 = 6,
    GGML_TYPE_Q5_1 = 7,
    GGML_TYPE_Q8_0 = 8,
    GGML_TYPE_Q8_1 = 9,
    GGML_TYPE_Q2_K = 10,
    GGML_TYPE_Q3_K = 11,
    GGML_TYPE_Q4_K = 12,
    GGML_TYPE_Q5_K = 13,
    GGML_TYPE_Q6_K = 14,
    GGML_TYPE_Q8_K = 15,
    GGML_TYPE_I8 = 24,
    GGML_TYPE_I16 = 25,
    GGML_TYPE_I32 = 26,
    GGML_TYPE_I64 = 27,
    GGML_TYPE_F64 = 28,
    GGML_TYPE_BF16 = 30,
    GGML_TYPE_TQ1_0 = 34,
    GGML_TYPE_TQ2_0 = 35,
    GGML_TYPE_I2_S_BITNET = 36, /* bitnet.cpp files: by architecture (bitnet-b1.58 / bitnet-25), or
                                 * elsewhere by the tensor's byte span (model_gguf.c) */
    GGML_TYPE_Q2_0 = 42,        /* llama.cpp: blocks of 64 (18 bytes); PrismML's branch: blocks of 128
                                 * (34 bytes), same id; sized by the byte span (model_gguf.c) */
};

#define GGUF_DEFAULT_ALIGNMENT 32
#define GGUF_MAX_DIMS 4

/* A string inside the mapped file: NOT NUL-terminated. */
struct gguf_str {
    uint64_t len;
    const char *ptr;
};

struct gguf_kv {
    struct gguf_str key;
    enum gguf_type type;
    /* scalar value (type != STRING/ARRAY) */
    union {
        uint64_t u64; /* UINT8..UINT64 and BOOL, zero-extended */
        int64_t i64;  /* INT8..INT64, sign-extended */
        double f64;   /* FLOAT32, FLOAT64 */
    } v;
    struct gguf_str str; /* type == STRING */
    /* type == ARRAY: element type, count, and the first element's byte position in the map */
    enum gguf_type arr_type;
    uint64_t arr_n;
    const uint8_t *arr_data;
    /* ARRAY of STRING: arr_str_off[i] is the byte distance from arr_data to element i's u64 length
     * (owned by the gguf_file, built at parse time so that element access is O(1)); else NULL. */
    uint64_t *arr_str_off;
    uint64_t offset; /* byte offset of the key in the file, for messages */
};

struct gguf_tensor_info {
    struct gguf_str name;
    uint32_t n_dims;
    int64_t ne[GGUF_MAX_DIMS]; /* ne[0] is the contiguous dimension; missing dims are 1 */
    uint32_t type;             /* raw ggml type id, as stored */
    uint64_t offset;           /* relative to the data section */
    uint64_t n_bytes;          /* computed from type and shape; 0 if the type is unknown */
    const uint8_t *data;       /* data section + offset, inside the map (NULL if n_bytes == 0) */
};

struct gguf_file {
    const uint8_t *map; /* the whole file, read-only */
    uint64_t size;
    uint32_t version;
    uint64_t alignment;
    uint64_t data_offset; /* start of the data section */
    int64_t n_kv;
    struct gguf_kv *kv;
    int64_t n_tensors;
    struct gguf_tensor_info *tensors;
    /* general.architecture is "bitnet-b1.58" or "bitnet-25": ggml type ids >= 36 follow bitnet.cpp's
     * table (36 == I2_S), and gguf_type_name(type, f->bitnet_ids) names them accordingly. */
    bool bitnet_ids;
    bool owns_map; /* true when opened from a path (munmap on close) */
};

/* Maps and parses `path`. On success *out owns the map; release it with gguf_close. */
enum trit_status gguf_open(const char *path, struct gguf_file *out);
/* Parses a caller-owned buffer (used by tests and the fuzzer). The buffer must outlive *out. */
enum trit_status gguf_open_memory(const uint8_t *data, uint64_t size, struct gguf_file *out);
/* Releases everything; accepts a zeroed struct. */
void gguf_close(struct gguf_file *f);

/* Lookups. NULL when absent. Key and name comparisons are exact. */
const struct gguf_kv *gguf_find_kv(const struct gguf_file *f, const char *key);
const struct gguf_tensor_info *gguf_find_tensor(const struct gguf_file *f, const char *name);

/* Typed getters: TRIT_ERR_NOT_FOUND when absent; TRIT_ERR_FORMAT when present with a type that does
 * not convert (any integer width converts to u64/i64 if the value fits; float32/64 to double). */
enum trit_status gguf_get_u64(const struct gguf_file *f, const char *key, uint64_t *out);
enum trit_status gguf_get_i64(const struct gguf_file *f, const char *key, int64_t *out);
enum trit_status gguf_get_f64(const struct gguf_file *f, const char *key, double *out);
enum trit_status gguf_get_bool(const struct gguf_file *f, const char *key, bool *out);
/* The string, copied and NUL-terminated into buf (truncation is an error). */
enum trit_status gguf_get_str(const struct gguf_file *f, const char *key, char *buf, size_t buf_size);
/* Array element access; index < kv->arr_n must hold. Strings point into the map.
 * Out-of-contract calls do not crash: a bad index or a non-array kv gives {0, NULL} / NaN / 0.
 * gguf_arr_str: STRING arrays only.
 * gguf_arr_f64: any numeric or BOOL array (integers converted to double).
 * gguf_arr_i64: integer and BOOL arrays; UINT64 values above INT64_MAX saturate to INT64_MAX;
 *               float arrays give 0 (use gguf_arr_f64). */
struct gguf_str gguf_arr_str(const struct gguf_kv *kv, uint64_t index);
double gguf_arr_f64(const struct gguf_kv *kv, uint64_t index);
int64_t gguf_arr_i64(const struct gguf_kv *kv, uint64_t index);

/* Bytes of one scalar of a metadata value type (0 for STRING, ARRAY and unknown ids). */
uint64_t gguf_value_size(enum gguf_type type);
/* "u32", "string", "array", ...; "unknown" for ids out of range. Never NULL. */
const char *gguf_value_type_name(enum gguf_type type);

/* Size in bytes of a tensor of `type` and shape ne (I2_S: n/4 + 32); 0 for an unknown type. */
uint64_t gguf_tensor_bytes(uint32_t type, const int64_t ne[GGUF_MAX_DIMS]);
/* A tensor's byte span: from its data start to the start of the next tensor in offset order (the
 * nearest start at or after its own among the other tensors that hold elements), or to the end of the
 * file for the last one. Writers pad every tensor to general.alignment, so a tensor of B bytes spans
 * B rounded up to the alignment (the last one may stop at B when the file is not padded). 0 for a
 * tensor with no elements or an index out of range. O(n_tensors). */
uint64_t gguf_tensor_span(const struct gguf_file *f, int64_t index);
/* Sizes a tensor the parser kept with no data (a type id it cannot size by itself: Q2_0, or type 36
 * outside bitnet.cpp's architectures), once the caller has decided its layout: the range must lie
 * inside the file and be disjoint from every other sized tensor's (else TRIT_ERR_FORMAT, naming
 * both); then t->n_bytes and t->data are set. A tensor already sized is TRIT_ERR_INVALID_ARG. */
enum trit_status gguf_tensor_set_bytes(struct gguf_file *f, int64_t index, uint64_t n_bytes);
/* Block size (elements) and bytes per block of a ggml type id; false when trit does not know its size
 * (then *blck and *type_size are 0). Ids >= 36 are never known here: see gguf_tensor_bytes for I2_S. */
bool gguf_type_traits(uint32_t type, uint32_t *blck, uint32_t *type_size);
/* A name for a ggml type id ("TQ2_0"), or "type<N>" (in a per-thread buffer, valid until the next
 * call on the thread). `bitnet_ids` selects bitnet.cpp's meaning of ids >= 36. */
const char *gguf_type_name(uint32_t type, bool bitnet_ids);

/* ---- writer ---------------------------------------------------------------------------------
 * Collects metadata and tensors in memory order, then writes a version 3 file with the default
 * alignment (or general.alignment if set as u32). Tensor data is copied at write time from the
 * caller's pointers, which must stay valid until gguf_writer_write returns. */
struct gguf_writer;
enum trit_status gguf_writer_init(struct gguf_writer **out);
void gguf_writer_free(struct gguf_writer *w);
enum trit_status gguf_writer_set_u32(struct gguf_writer *w, const char *key, uint32_t v);
enum trit_status gguf_writer_set_i32(struct gguf_writer *w, const char *key, int32_t v);
enum trit_status gguf_writer_set_u64(struct gguf_writer *w, const char *key, uint64_t v);
enum trit_status gguf_writer_set_f32(struct gguf_writer *w, const char *key, float v);
enum trit_status gguf_writer_set_bool(struct gguf_writer *w, const char *key, bool v);
enum trit_status gguf_writer_set_str(struct gguf_writer *w, const char *key, const char *v);
/* Any scalar type (not STRING or ARRAY): `value` points to one element in host (little-endian)
 * representation; BOOL is one byte (0 or 1). Setting a key that exists replaces its value in place. */
enum trit_status gguf_writer_set_val(struct gguf_writer *w, const char *key, enum gguf_type type,
                                     const void *value);
/* Arrays of scalars: `data` holds n elements of elem_type, packed, little-endian. */
enum trit_status gguf_writer_set_arr(struct gguf_writer *w, const char *key, enum gguf_type elem_type,
                                     const void *data, uint64_t n);
enum trit_status gguf_writer_set_arr_str(struct gguf_writer *w, const char *key,
                                         const char *const *strs, uint64_t n);
/* Copies every metadata pair of a parsed file (used by `trit convert`), except keys for which
 * skip(key) returns true. */
enum trit_status gguf_writer_copy_kv(struct gguf_writer *w, const struct gguf_file *src,
                                     bool (*skip)(const char *key, void *user), void *user);
/* name: 1..63 bytes; n_dims <= 4; ne[i] >= 0. For ids < 36 whose size trit knows, ne[0] must be a
 * multiple of the block and n_bytes must equal gguf_tensor_bytes; otherwise n_bytes is trusted.
 * Duplicate names are TRIT_ERR_INVALID_ARG. */
enum trit_status gguf_writer_add_tensor(struct gguf_writer *w, const char *name, uint32_t type,
                                        uint32_t n_dims, const int64_t *ne, const void *data,
                                        uint64_t n_bytes);
/* Writes the file (TRIT_ERR_IO on failure; a partial file is removed). */
enum trit_status gguf_writer_write(struct gguf_writer *w, const char *path);
/* The same bytes into a new trit_alloc buffer (*out, *out_size; release with trit_free). */
enum trit_status gguf_writer_write_mem(struct gguf_writer *w, uint8_t **out, uint64_t *out_size);

#endif /* TRIT_GGUF_H */
