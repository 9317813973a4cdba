/*
 * gguf_writer.c: writes GGUF version 3 files (the layout is in gguf.c's header comment).
 *
 * Metadata is kept in insertion order as the exact bytes that follow the key in the file
 * (i32 value_type, then the value), so a copied pair is written back byte for byte. Tensors keep
 * the caller's data pointer until the write. Padding: zeros after the tensor infos up to the
 * alignment, and after every tensor's data (the last one too), so each offset is aligned.
 * Used by `trit convert` and by test fixtures.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "io/gguf.h"

struct writer_kv {
    char *key;      /* NUL-terminated copy */
    uint64_t key_len;
    uint8_t *val;   /* i32 value_type + value, as in the file */
    uint64_t val_bytes;
};

struct writer_tensor {
    char name[64];
    uint32_t n_dims;
    int64_t ne[GGUF_MAX_DIMS];
    uint32_t type;
    const void *data; /* caller-owned until gguf_writer_write returns */
    uint64_t n_bytes;
};

struct gguf_writer {
    struct writer_kv *kv;
    int64_t n_kv, cap_kv;
    struct writer_tensor *t;
    int64_t n_t, cap_t;
};

/* Grows *arr (of elem-sized entries, *cap of them) to hold at least n + 1. */
static enum trit_status grow(void **arr, int64_t *cap, int64_t n, size_t elem) {
    if (n < *cap) return TRIT_OK;
    int64_t new_cap = *cap ? *cap * 2 : 16;
    void *p = trit_alloc((size_t)new_cap * elem);
    if (!p) return trit_error(TRIT_ERR_OUT_OF_MEMORY, "gguf writer: %" PRId64 " entries", new_cap);
    if (*arr) memcpy(p, *arr, (size_t)n * elem);
    trit_free(*arr);
    *arr = p;
    *cap = new_cap;
    return TRIT_OK;
}

enum trit_status gguf_writer_init(struct gguf_writer **out) {
    if (!out) return trit_error(TRIT_ERR_INVALID_ARG, "gguf_writer_init: out is NULL");
    *out = trit_alloc(sizeof **out);
    if (!*out) return trit_error(TRIT_ERR_OUT_OF_MEMORY, "gguf writer");
    return TRIT_OK;
}

void gguf_writer_free(struct gguf_writer *w) {
    if (!w) return;
    for (int64_t i = 0; i < w->n_kv; i++) {
        trit_free(w->kv[i].key);
        trit_free(w->kv[i].val);
    }
    trit_free(w->kv);
    trit_free(w->t);
    trit_free(w);
}

/* ---- metadata ------------------------------------------------------------------------------- */

/* Stores key -> val (takes ownership of val, a trit_alloc buffer). An existing key is replaced in
 * place, as llama.cpp's gguf_set_* does. */
static enum trit_status put_kv(struct gguf_writer *w, const char *key, uint64_t key_len, uint8_t *val,
                               uint64_t val_bytes) {
    for (int64_t i = 0; i < w->n_kv; i++) {
        if (w->kv[i].key_len == key_len && memcmp(w->kv[i].key, key, key_len) == 0) {
            trit_free(w->kv[i].val);
            w->kv[i].val = val;
            w->kv[i].val_bytes = val_bytes;
            return TRIT_OK;
        }
    }
    enum trit_status st = grow((void **)&w->kv, &w->cap_kv, w->n_kv, sizeof w->kv[0]);
    char *k = st == TRIT_OK ? trit_alloc(key_len + 1) : NULL;
    if (!k) {
        trit_free(val);
        return st != TRIT_OK ? st : trit_error(TRIT_ERR_OUT_OF_MEMORY, "gguf writer: key");
    }
    memcpy(k, key, key_len);
    w->kv[w->n_kv++] = (struct writer_kv){k, key_len, val, val_bytes};
    return TRIT_OK;
}

/* A value buffer of 4 + extra bytes that starts with the i32 type tag. */
static uint8_t *new_val(enum gguf_type type, uint64_t extra) {
    if (extra > SIZE_MAX - 4) return NULL;
    uint8_t *v = trit_alloc((size_t)(4 + extra));
    if (!v) return NULL;
    int32_t t = (int32_t)type;
    memcpy(v, &t, 4);
    return v;
}

static enum trit_status check_key(const struct gguf_writer *w, const char *key) {
    if (!w || !key) return trit_error(TRIT_ERR_INVALID_ARG, "gguf writer: NULL writer or key");
    return TRIT_OK;
}

enum trit_status gguf_writer_set_val(struct gguf_writer *w, const char *key, enum gguf_type type,
                                     const void *value) {
    TRIT_TRY(check_key(w, key));
    uint64_t n = gguf_value_size(type);
    if (n == 0 || !value)
        return trit_error(TRIT_ERR_INVALID_ARG, "gguf writer: '%s': %s is not a scalar type (or value is NULL)", key,
                          gguf_value_type_name(type));
    uint8_t *v = new_val(type, n);
    if (!v) return trit_error(TRIT_ERR_OUT_OF_MEMORY, "gguf writer: value");
    memcpy(v + 4, value, n);
    if (type == GGUF_TYPE_BOOL) v[4] = v[4] != 0;
    return put_kv(w, key, strlen(key), v, 4 + n);
}

enum trit_status gguf_writer_set_u32(struct gguf_writer *w, const char *key, uint32_t v) {
    return gguf_writer_set_val(w, key, GGUF_TYPE_UINT32, &v);
}
enum trit_status gguf_writer_set_i32(struct gguf_writer *w, const char *key, int32_t v) {
    return gguf_writer_set_val(w, key, GGUF_TYPE_INT32, &v);
}
enum trit_status gguf_writer_set_u64(struct gguf_writer *w, const char *key, uint64_t v) {
    return gguf_writer_set_val(w, key, GGUF_TYPE_UINT64, &v);
}
enum trit_status gguf_writer_set_f32(struct gguf_writer *w, const char *key, float v) {
    return gguf_writer_set_val(w, key, GGUF_TYPE_FLOAT32, &v);
}
enum trit_status gguf_writer_set_bool(struct gguf_writer *w, const char *key, bool v) {
    uint8_t b = v ? 1 : 0;
    return gguf_writer_set_val(w, key, GGUF_TYPE_BOOL, &b);
}

/* STRING value of len bytes (not necessarily NUL-free or NUL-terminated). */
static enum trit_status set_str_len(struct gguf_writer *w, const char *key, uint64_t key_len, const char *s,
                                    uint64_t len) {
    uint8_t *v = new_val(GGUF_TYPE_STRING, 8 + len);
    if (!v) return trit_error(TRIT_ERR_OUT_OF_MEMORY, "gguf writer: string of %" PRIu64 " bytes", len);
    memcpy(v + 4, &len, 8);
    if (len) memcpy(v + 12, s, len);
    return put_kv(w, key, key_len, v, 12 + len);
}

enum trit_status gguf_writer_set_str(struct gguf_writer *w, const char *key, const char *s) {
    TRIT_TRY(check_key(w, key));
    if (!s) return trit_error(TRIT_ERR_INVALID_ARG, "gguf writer: '%s': NULL string", key);
    return set_str_len(w, key, strlen(key), s, strlen(s));
}

/* ARRAY value: i32 elem_type, u64 n, then body_bytes of packed elements copied from body. */
static enum trit_status set_arr_raw(struct gguf_writer *w, const char *key, uint64_t key_len, enum gguf_type elem,
                                    uint64_t n, const void *body, uint64_t body_bytes) {
    if (body_bytes > UINT64_MAX - 12) return trit_error(TRIT_ERR_INVALID_ARG, "gguf writer: array too large");
    uint8_t *v = new_val(GGUF_TYPE_ARRAY, 12 + body_bytes);
    if (!v) return trit_error(TRIT_ERR_OUT_OF_MEMORY, "gguf writer: array of %" PRIu64 " bytes", body_bytes);
    int32_t et = (int32_t)elem;
    memcpy(v + 4, &et, 4);
    memcpy(v + 8, &n, 8);
    if (body_bytes) memcpy(v + 16, body, body_bytes);
    return put_kv(w, key, key_len, v, 16 + body_bytes);
}

enum trit_status gguf_writer_set_arr(struct gguf_writer *w, const char *key, enum gguf_type elem_type,
                                     const void *data, uint64_t n) {
    TRIT_TRY(check_key(w, key));
    uint64_t es = gguf_value_size(elem_type);
    if (es == 0)
        return trit_error(TRIT_ERR_INVALID_ARG, "gguf writer: '%s': arrays of %s need gguf_writer_set_arr_str or are not allowed",
                          key, gguf_value_type_name(elem_type));
    if (n && !data) return trit_error(TRIT_ERR_INVALID_ARG, "gguf writer: '%s': NULL array data", key);
    if (n > UINT64_MAX / es) return trit_error(TRIT_ERR_INVALID_ARG, "gguf writer: '%s': array too large", key);
    return set_arr_raw(w, key, strlen(key), elem_type, n, data, n * es);
}

enum trit_status gguf_writer_set_arr_str(struct gguf_writer *w, const char *key, const char *const *strs,
                                         uint64_t n) {
    TRIT_TRY(check_key(w, key));
    if (n && !strs) return trit_error(TRIT_ERR_INVALID_ARG, "gguf writer: '%s': NULL string array", key);
    uint64_t body = 0;
    for (uint64_t i = 0; i < n; i++) {
        if (!strs[i]) return trit_error(TRIT_ERR_INVALID_ARG, "gguf writer: '%s': element %" PRIu64 " is NULL", key, i);
        body += 8 + strlen(strs[i]);
    }
    uint8_t *v = new_val(GGUF_TYPE_ARRAY, 12 + body);
    if (!v) return trit_error(TRIT_ERR_OUT_OF_MEMORY, "gguf writer: string array of %" PRIu64 " bytes", body);
    int32_t et = GGUF_TYPE_STRING;
    memcpy(v + 4, &et, 4);
    memcpy(v + 8, &n, 8);
    uint8_t *p = v + 16;
    for (uint64_t i = 0; i < n; i++) {
        uint64_t len = strlen(strs[i]);
        memcpy(p, &len, 8);
        memcpy(p + 8, strs[i], len);
        p += 8 + len;
    }
    return put_kv(w, key, strlen(key), v, 16 + body);
}

enum trit_status gguf_writer_copy_kv(struct gguf_writer *w, const struct gguf_file *src,
                                     bool (*skip)(const char *key, void *user), void *user) {
    if (!w || !src) return trit_error(TRIT_ERR_INVALID_ARG, "gguf_writer_copy_kv: NULL argument");
    char small[256];
    for (int64_t i = 0; i < src->n_kv; i++) {
        const struct gguf_kv *kv = &src->kv[i];
        /* The reader guarantees keys without NUL bytes, so the C-string copy is the same key. */
        char *key = kv->key.len < sizeof small ? small : trit_alloc(kv->key.len + 1);
        if (!key) return trit_error(TRIT_ERR_OUT_OF_MEMORY, "gguf writer: key of %" PRIu64 " bytes", kv->key.len);
        memcpy(key, kv->key.ptr, kv->key.len);
        key[kv->key.len] = '\0';
        enum trit_status st = TRIT_OK;
        if (!skip || !skip(key, user)) {
            if (kv->type == GGUF_TYPE_STRING) {
                st = set_str_len(w, key, kv->key.len, kv->str.ptr, kv->str.len);
            } else if (kv->type == GGUF_TYPE_ARRAY) {
                uint64_t body = 0;
                if (kv->arr_type == GGUF_TYPE_STRING) {
                    /* Extent of the string elements: up to the end of the last one. */
                    if (kv->arr_n) {
                        struct gguf_str last = gguf_arr_str(kv, kv->arr_n - 1);
                        body = kv->arr_str_off[kv->arr_n - 1] + 8 + last.len;
                    }
                } else {
                    body = kv->arr_n * gguf_value_size(kv->arr_type);
                }
                st = set_arr_raw(w, key, kv->key.len, kv->arr_type, kv->arr_n, kv->arr_data, body);
            } else {
                /* The scalar's bytes straight from the map (after the key and the i32 tag), so that
                 * even a NaN payload or a bool byte other than 0/1 is copied exactly. */
                const uint8_t *raw = src->map + kv->offset + 8 + kv->key.len + 4;
                uint64_t n = gguf_value_size(kv->type);
                uint8_t *v = new_val(kv->type, n);
                if (v) {
                    memcpy(v + 4, raw, n);
                    st = put_kv(w, key, kv->key.len, v, 4 + n);
                } else {
                    st = trit_error(TRIT_ERR_OUT_OF_MEMORY, "gguf writer: value");
                }
            }
        }
        if (key != small) trit_free(key);
        TRIT_TRY(st);
    }
    return TRIT_OK;
}

/* ---- tensors -------------------------------------------------------------------------------- */

enum trit_status gguf_writer_add_tensor(struct gguf_writer *w, const char *name, uint32_t type,
                                        uint32_t n_dims, const int64_t *ne, const void *data,
                                        uint64_t n_bytes) {
    if (!w || !name || (n_dims && !ne)) return trit_error(TRIT_ERR_INVALID_ARG, "gguf writer: NULL argument");
    size_t len = strlen(name);
    if (len == 0 || len > 63)
        return trit_error(TRIT_ERR_INVALID_ARG, "gguf writer: tensor name '%s' must be 1 to 63 bytes", name);
    if (n_dims > GGUF_MAX_DIMS)
        return trit_error(TRIT_ERR_INVALID_ARG, "gguf writer: tensor '%s': n_dims %" PRIu32 " > %d", name, n_dims,
                          GGUF_MAX_DIMS);
    struct writer_tensor t = {.n_dims = n_dims, .type = type, .data = data, .n_bytes = n_bytes};
    memcpy(t.name, name, len + 1);
    for (int d = 0; d < GGUF_MAX_DIMS; d++) t.ne[d] = (uint32_t)d < n_dims ? ne[d] : 1;
    for (int d = 0; d < GGUF_MAX_DIMS; d++)
        if (t.ne[d] < 0) return trit_error(TRIT_ERR_INVALID_ARG, "gguf writer: tensor '%s': ne[%d] < 0", name, d);
    uint32_t blck;
    /* Ids >= 36 depend on the architecture (gguf.h): their size is the caller's word. */
    if (type < GGML_TYPE_I2_S_BITNET && gguf_type_traits(type, &blck, NULL)) {
        if (t.ne[0] % blck != 0)
            return trit_error(TRIT_ERR_INVALID_ARG, "gguf writer: tensor '%s': ne[0] = %" PRId64 " is not a multiple of the %s block %" PRIu32,
                              name, t.ne[0], gguf_type_name(type, false), blck);
        uint64_t want = gguf_tensor_bytes(type, t.ne);
        if (want != n_bytes)
            return trit_error(TRIT_ERR_INVALID_ARG, "gguf writer: tensor '%s': %" PRIu64 " bytes given, %s of this shape is %" PRIu64,
                              name, n_bytes, gguf_type_name(type, false), want);
    }
    if (n_bytes && !data) return trit_error(TRIT_ERR_INVALID_ARG, "gguf writer: tensor '%s': NULL data", name);
    for (int64_t i = 0; i < w->n_t; i++)
        if (strcmp(w->t[i].name, name) == 0)
            return trit_error(TRIT_ERR_INVALID_ARG, "gguf writer: duplicate tensor name '%s'", name);
    TRIT_TRY(grow((void **)&w->t, &w->cap_t, w->n_t, sizeof w->t[0]));
    w->t[w->n_t++] = t;
    return TRIT_OK;
}

/* ---- output --------------------------------------------------------------------------------- */

/* Bytes go to a FILE, to a buffer sized by a counting pass first, or are only counted. */
struct sink {
    FILE *fp;
    uint8_t *buf;
    uint64_t pos;
    bool failed;
};

static void put(struct sink *s, const void *p, uint64_t n) {
    if (s->failed || n == 0) return;
    if (s->fp) {
        if (fwrite(p, 1, (size_t)n, s->fp) != n) s->failed = true;
    } else if (s->buf) {
        memcpy(s->buf + s->pos, p, (size_t)n);
    }
    s->pos += n;
}

static void put_zeros(struct sink *s, uint64_t n) {
    static const uint8_t zeros[256];
    while (n) {
        uint64_t k = n < sizeof zeros ? n : sizeof zeros;
        put(s, zeros, k);
        n -= k;
    }
}

static uint64_t pad_to(uint64_t x, uint64_t align) { return (align - x % align) % align; }

static enum trit_status writer_alignment(const struct gguf_writer *w, uint64_t *align) {
    *align = GGUF_DEFAULT_ALIGNMENT;
    for (int64_t i = 0; i < w->n_kv; i++) {
        if (strcmp(w->kv[i].key, "general.alignment") != 0) continue;
        int32_t type;
        uint32_t a = 0;
        memcpy(&type, w->kv[i].val, 4);
        if (type == GGUF_TYPE_UINT32) memcpy(&a, w->kv[i].val + 4, 4);
        if (type != GGUF_TYPE_UINT32 || a == 0 || (a & (a - 1)) != 0)
            return trit_error(TRIT_ERR_INVALID_ARG, "gguf writer: general.alignment must be a u32 power of two");
        *align = a;
    }
    return TRIT_OK;
}

static void emit(const struct gguf_writer *w, uint64_t align, struct sink *s) {
    uint32_t version = 3;
    put(s, "GGUF", 4);
    put(s, &version, 4);
    put(s, &w->n_t, 8);
    put(s, &w->n_kv, 8);
    for (int64_t i = 0; i < w->n_kv; i++) {
        put(s, &w->kv[i].key_len, 8);
        put(s, w->kv[i].key, w->kv[i].key_len);
        put(s, w->kv[i].val, w->kv[i].val_bytes);
    }
    uint64_t offset = 0;
    for (int64_t i = 0; i < w->n_t; i++) {
        const struct writer_tensor *t = &w->t[i];
        uint64_t len = strlen(t->name);
        int32_t type = (int32_t)t->type;
        put(s, &len, 8);
        put(s, t->name, len);
        put(s, &t->n_dims, 4);
        put(s, t->ne, 8 * (uint64_t)t->n_dims);
        put(s, &type, 4);
        put(s, &offset, 8);
        offset += t->n_bytes + pad_to(t->n_bytes, align);
    }
    put_zeros(s, pad_to(s->pos, align));
    for (int64_t i = 0; i < w->n_t; i++) {
        put(s, w->t[i].data, w->t[i].n_bytes);
        put_zeros(s, pad_to(w->t[i].n_bytes, align));
    }
}

enum trit_status gguf_writer_write_mem(struct gguf_writer *w, uint8_t **out, uint64_t *out_size) {
    if (!w || !out || !out_size) return trit_error(TRIT_ERR_INVALID_ARG, "gguf_writer_write_mem: NULL argument");
    uint64_t align;
    TRIT_TRY(writer_alignment(w, &align));
    struct sink count = {0};
    emit(w, align, &count);
    if (count.pos > SIZE_MAX) return trit_error(TRIT_ERR_OUT_OF_MEMORY, "gguf writer: %" PRIu64 " bytes", count.pos);
    struct sink mem = {.buf = trit_alloc((size_t)count.pos)};
    if (!mem.buf) return trit_error(TRIT_ERR_OUT_OF_MEMORY, "gguf writer: %" PRIu64 " bytes", count.pos);
    emit(w, align, &mem);
    *out = mem.buf;
    *out_size = mem.pos;
    return TRIT_OK;
}

enum trit_status gguf_writer_write(struct gguf_writer *w, const char *path) {
    if (!w || !path) return trit_error(TRIT_ERR_INVALID_ARG, "gguf_writer_write: NULL argument");
    uint64_t align;
    TRIT_TRY(writer_alignment(w, &align));
    FILE *fp = fopen(path, "wb");
    if (!fp) return trit_error(TRIT_ERR_IO, "gguf writer: cannot create '%s': %s", path, strerror(errno));
    struct sink s = {.fp = fp};
    emit(w, align, &s);
    int write_errno = s.failed ? errno : 0;
    if (fclose(fp) != 0 && !s.failed) {
        s.failed = true;
        write_errno = errno;
    }
    if (s.failed) {
        remove(path);
        return trit_error(TRIT_ERR_IO, "gguf writer: writing '%s' failed: %s", path, strerror(write_errno));
    }
    return TRIT_OK;
}
