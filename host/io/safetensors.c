/*
 * safetensors.c: the safetensors reader. Layout and the list of checks: safetensors.h.
 * Tests: tests/test_safetensors.c (every dtype, every malformation, truncation at every byte).
 * Fuzz:  build-fuzz/tests/fuzz/fuzz_safetensors tests/fuzz/corpus/safetensors
 */
#include "io/safetensors.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "io/json.h"

/* ---- dtypes ------------------------------------------------------------------------------- */

static const struct {
    const char *name; /* the format's spelling */
    int size;         /* bytes per element */
    bool loadable;    /* converted by the model loader */
} st_dtypes[ST_DTYPE_COUNT] = {
    [ST_F32] = {"F32", 4, true},         [ST_F16] = {"F16", 2, true},
    [ST_BF16] = {"BF16", 2, true},       [ST_U8] = {"U8", 1, true},
    [ST_I8] = {"I8", 1, true},           [ST_F64] = {"F64", 8, false},
    [ST_I16] = {"I16", 2, false},        [ST_I32] = {"I32", 4, false},
    [ST_I64] = {"I64", 8, false},        [ST_BOOL] = {"BOOL", 1, false},
    [ST_F8_E4M3] = {"F8_E4M3", 1, false}, [ST_F8_E5M2] = {"F8_E5M2", 1, false},
    [ST_U16] = {"U16", 2, false},        [ST_U32] = {"U32", 4, false},
    [ST_U64] = {"U64", 8, false},
};

static bool st_dtype_valid(enum st_dtype dtype) { return (unsigned)dtype < (unsigned)ST_DTYPE_COUNT; }

int st_dtype_size(enum st_dtype dtype) { return st_dtype_valid(dtype) ? st_dtypes[dtype].size : 0; }

const char *st_dtype_name(enum st_dtype dtype) { return st_dtype_valid(dtype) ? st_dtypes[dtype].name : "?"; }

bool st_dtype_loadable(enum st_dtype dtype) { return st_dtype_valid(dtype) && st_dtypes[dtype].loadable; }

bool st_dtype_from_name(const char *name, enum st_dtype *out) {
    for (int i = 0; name && i < ST_DTYPE_COUNT; i++) {
        if (strcmp(name, st_dtypes[i].name) == 0) {
            *out = (enum st_dtype)i;
            return true;
        }
    }
    return false;
}

/* ---- header parsing ----------------------------------------------------------------------- */

/* Messages quote names from the file; this bounds them so the rest of the message survives. */
#define ST_NAME_FMT "'%.160s'"

static uint64_t st_le64(const uint8_t *p) {
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--) v = (v << 8) | p[i];
    return v;
}

/* Bump allocator over f->strings_, sized exactly in the first pass. */
static const char *st_copy_str(char **cursor, const char *s) {
    size_t n = strlen(s) + 1;
    char *dst = *cursor;
    memcpy(dst, s, n);
    *cursor += n;
    return dst;
}

/* The member `field` of a tensor entry; a missing or repeated field is an error. */
static enum trit_status st_field(const struct st_file *f, const char *tname, const cJSON *entry,
                                 const char *field, const cJSON **out) {
    int count = 0;
    for (const cJSON *c = entry->child; c; c = c->next) {
        if (c->string && strcmp(c->string, field) == 0) {
            *out = c;
            count++;
        }
    }
    if (count == 0)
        return trit_error(TRIT_ERR_FORMAT, "%s: tensor " ST_NAME_FMT ": missing field '%s'", f->label, tname, field);
    if (count > 1)
        return trit_error(TRIT_ERR_FORMAT, "%s: tensor " ST_NAME_FMT ": field '%s' appears %d times", f->label,
                          tname, field, count);
    return TRIT_OK;
}

/* One header entry -> *t (t->name already set). */
static enum trit_status st_parse_entry(const struct st_file *f, const cJSON *entry, struct st_tensor *t) {
    const char *name = t->name;
    if (!cJSON_IsObject(entry))
        return trit_error(TRIT_ERR_FORMAT, "%s: tensor " ST_NAME_FMT ": entry is a JSON %s, expected an object",
                          f->label, name, json_type_name(entry));

    const cJSON *dtype = NULL, *shape = NULL, *offsets = NULL;
    TRIT_TRY(st_field(f, name, entry, "dtype", &dtype));
    TRIT_TRY(st_field(f, name, entry, "shape", &shape));
    TRIT_TRY(st_field(f, name, entry, "data_offsets", &offsets));

    if (!cJSON_IsString(dtype))
        return trit_error(TRIT_ERR_FORMAT, "%s: tensor " ST_NAME_FMT ": field 'dtype' is a JSON %s, expected a string",
                          f->label, name, json_type_name(dtype));
    if (!st_dtype_from_name(dtype->valuestring, &t->dtype))
        return trit_error(TRIT_ERR_UNSUPPORTED, "%s: tensor " ST_NAME_FMT ": unknown dtype \"%.32s\"", f->label,
                          name, dtype->valuestring);

    if (!cJSON_IsArray(shape))
        return trit_error(TRIT_ERR_FORMAT, "%s: tensor " ST_NAME_FMT ": field 'shape' is a JSON %s, expected an array",
                          f->label, name, json_type_name(shape));
    int n_dims = cJSON_GetArraySize(shape);
    if (n_dims > ST_MAX_DIMS)
        return trit_error(TRIT_ERR_UNSUPPORTED, "%s: tensor " ST_NAME_FMT ": %d dimensions, at most %d supported",
                          f->label, name, n_dims, ST_MAX_DIMS);
    t->n_dims = n_dims;
    t->n_elements = 1;
    int d = 0;
    for (const cJSON *c = shape->child; c; c = c->next, d++) {
        int64_t v;
        if (!json_int_value(c, &v) || v < 0) {
            if (cJSON_IsNumber(c))
                return trit_error(TRIT_ERR_FORMAT,
                                  "%s: tensor " ST_NAME_FMT ": shape[%d] is %.17g, expected a non-negative integer",
                                  f->label, name, d, c->valuedouble);
            return trit_error(TRIT_ERR_FORMAT,
                              "%s: tensor " ST_NAME_FMT ": shape[%d] is a JSON %s, expected a non-negative integer",
                              f->label, name, d, json_type_name(c));
        }
        t->shape[d] = v;
        if (!trit_mul_i64(t->n_elements, v, &t->n_elements))
            return trit_error(TRIT_ERR_FORMAT, "%s: tensor " ST_NAME_FMT ": element count overflows at shape[%d]",
                              f->label, name, d);
    }
    for (; d < ST_MAX_DIMS; d++) t->shape[d] = 1;

    int64_t range[2];
    if (!cJSON_IsArray(offsets) || cJSON_GetArraySize(offsets) != 2)
        return trit_error(TRIT_ERR_FORMAT,
                          "%s: tensor " ST_NAME_FMT ": field 'data_offsets' must be an array of two integers",
                          f->label, name);
    for (int i = 0; i < 2; i++) {
        const cJSON *c = cJSON_GetArrayItem(offsets, i);
        if (!json_int_value(c, &range[i]) || range[i] < 0)
            return trit_error(TRIT_ERR_FORMAT,
                              "%s: tensor " ST_NAME_FMT ": data_offsets[%d] is not a non-negative integer",
                              f->label, name, i);
    }
    uint64_t begin = (uint64_t)range[0], end = (uint64_t)range[1];
    uint64_t base = 8 + f->header_bytes; /* file offset of the data buffer */
    if (begin > end)
        return trit_error(TRIT_ERR_FORMAT, "%s: tensor " ST_NAME_FMT ": data_offsets [%llu, %llu] has begin > end",
                          f->label, name, (unsigned long long)begin, (unsigned long long)end);
    if (end > f->data_bytes)
        return trit_error(TRIT_ERR_FORMAT,
                          "%s: tensor " ST_NAME_FMT ": data_offsets [%llu, %llu] end at file byte %llu, "
                          "past the end of the file (%llu bytes)",
                          f->label, name, (unsigned long long)begin, (unsigned long long)end,
                          (unsigned long long)(base + end), (unsigned long long)f->size);
    int64_t n_bytes;
    if (!trit_mul_i64(t->n_elements, st_dtype_size(t->dtype), &n_bytes))
        return trit_error(TRIT_ERR_FORMAT, "%s: tensor " ST_NAME_FMT ": byte size overflows", f->label, name);
    if ((uint64_t)n_bytes != end - begin)
        return trit_error(TRIT_ERR_FORMAT,
                          "%s: tensor " ST_NAME_FMT ": %lld elements of %s need %lld bytes, but data_offsets "
                          "[%llu, %llu] hold %llu (file byte %llu)",
                          f->label, name, (long long)t->n_elements, st_dtype_name(t->dtype), (long long)n_bytes,
                          (unsigned long long)begin, (unsigned long long)end, (unsigned long long)(end - begin),
                          (unsigned long long)(base + begin));
    t->n_bytes = (uint64_t)n_bytes;
    t->data = f->data + begin;
    t->file_offset = base + begin;
    return TRIT_OK;
}

static int st_cmp_offset(const void *pa, const void *pb) {
    const struct st_tensor *a = pa, *b = pb;
    if (a->file_offset != b->file_offset) return a->file_offset < b->file_offset ? -1 : 1;
    if (a->n_bytes != b->n_bytes) return a->n_bytes < b->n_bytes ? -1 : 1;
    return strcmp(a->name, b->name);
}

static int st_cmp_name_ptr(const void *pa, const void *pb) {
    const struct st_tensor *const *a = pa, *const *b = pb;
    return strcmp((*a)->name, (*b)->name);
}

static int st_cmp_meta(const void *pa, const void *pb) {
    const struct st_meta *a = pa, *b = pb;
    return strcmp(a->key, b->key);
}

/* The array allocations of st_parse: n elements of elem_bytes, overflow-checked. */
static void *st_alloc_array(int64_t n, size_t elem_bytes) {
    int64_t bytes;
    if (!trit_mul_i64(n, (int64_t)elem_bytes, &bytes)) return NULL;
    return trit_alloc((size_t)bytes);
}

/* Parses the header of f->map[0, f->size) into f. On failure the caller runs st_close. */
static enum trit_status st_parse(struct st_file *f, cJSON **root_out) {
    if (f->size < 8)
        return trit_error(TRIT_ERR_FORMAT, "%s: %llu bytes, too short for the 8-byte header length", f->label,
                          (unsigned long long)f->size);
    uint64_t n = st_le64(f->map);
    if (n > ST_MAX_HEADER_BYTES)
        return trit_error(TRIT_ERR_FORMAT, "%s: header length %llu at byte 0 exceeds the %llu-byte cap", f->label,
                          (unsigned long long)n, (unsigned long long)ST_MAX_HEADER_BYTES);
    if (n > f->size - 8)
        return trit_error(TRIT_ERR_FORMAT,
                          "%s: header length %llu at byte 0 runs past the end of the file (%llu bytes)", f->label,
                          (unsigned long long)n, (unsigned long long)f->size);
    f->header_bytes = n;
    f->data = f->map + 8 + n;
    f->data_bytes = f->size - 8 - n;

    /* The header as a JSON document; its messages read "<file>: header at byte 8: invalid JSON at byte 17". */
    struct json_doc doc;
    {
        char name[256];
        snprintf(name, sizeof name, "%.200s: header at byte 8", f->label);
        TRIT_TRY(json_doc_parse((const char *)f->map + 8, (size_t)n, name, &doc));
        trit_free(doc.name);
    }
    cJSON *root = doc.root;
    *root_out = root;
    if (!cJSON_IsObject(root))
        return trit_error(TRIT_ERR_FORMAT, "%s: the header is a JSON %s, expected an object", f->label,
                          json_type_name(root));

    /* Pass 1: count entries and the bytes of every string we keep. */
    int64_t n_tensors = 0, n_meta = 0, n_string_bytes = 0;
    const cJSON *meta = NULL;
    for (const cJSON *c = root->child; c; c = c->next) {
        if (!c->string) return trit_error(TRIT_ERR_INTERNAL, "%s: cJSON member without a key", f->label);
        if (strcmp(c->string, "__metadata__") == 0) {
            if (meta) return trit_error(TRIT_ERR_FORMAT, "%s: '__metadata__' appears twice in the header", f->label);
            meta = c;
            if (cJSON_IsNull(c)) continue; /* the format allows "__metadata__": null */
            if (!cJSON_IsObject(c))
                return trit_error(TRIT_ERR_FORMAT, "%s: '__metadata__' is a JSON %s, expected an object", f->label,
                                  json_type_name(c));
            for (const cJSON *m = c->child; m; m = m->next) {
                if (!cJSON_IsString(m) || !m->string)
                    return trit_error(TRIT_ERR_FORMAT, "%s: __metadata__ entry " ST_NAME_FMT " is a JSON %s, expected a string",
                                      f->label, m->string ? m->string : "", json_type_name(m));
                n_meta++;
                n_string_bytes += (int64_t)strlen(m->string) + (int64_t)strlen(m->valuestring) + 2;
            }
        } else {
            n_tensors++;
            n_string_bytes += (int64_t)strlen(c->string) + 1;
        }
    }

    f->tensors = st_alloc_array(n_tensors, sizeof *f->tensors);
    f->by_name_ = st_alloc_array(n_tensors, sizeof *f->by_name_);
    f->meta = st_alloc_array(n_meta, sizeof *f->meta);
    f->strings_ = st_alloc_array(n_string_bytes, 1);
    if (!f->tensors || !f->by_name_ || !f->meta || !f->strings_)
        return trit_error(TRIT_ERR_OUT_OF_MEMORY, "%s: out of memory for %lld tensors", f->label, (long long)n_tensors);

    /* Pass 2: validate and fill, in header order. */
    char *cursor = f->strings_;
    for (const cJSON *c = root->child; c; c = c->next) {
        if (c == meta) continue;
        struct st_tensor *t = &f->tensors[f->n_tensors++];
        t->name = st_copy_str(&cursor, c->string);
        TRIT_TRY(st_parse_entry(f, c, t));
    }
    for (const cJSON *m = meta ? meta->child : NULL; m; m = m->next) {
        struct st_meta *e = &f->meta[f->n_meta++];
        e->key = st_copy_str(&cursor, m->string);
        e->value = st_copy_str(&cursor, m->valuestring);
    }

    /* Names are unique (cJSON keeps both copies of a repeated key). */
    for (int64_t i = 0; i < f->n_tensors; i++) f->by_name_[i] = &f->tensors[i];
    qsort(f->by_name_, (size_t)f->n_tensors, sizeof *f->by_name_, st_cmp_name_ptr);
    for (int64_t i = 1; i < f->n_tensors; i++) {
        if (strcmp(f->by_name_[i - 1]->name, f->by_name_[i]->name) == 0)
            return trit_error(TRIT_ERR_FORMAT, "%s: tensor " ST_NAME_FMT " appears twice in the header", f->label,
                              f->by_name_[i]->name);
    }
    qsort(f->meta, (size_t)f->n_meta, sizeof *f->meta, st_cmp_meta);
    for (int64_t i = 1; i < f->n_meta; i++) {
        if (strcmp(f->meta[i - 1].key, f->meta[i].key) == 0)
            return trit_error(TRIT_ERR_FORMAT, "%s: __metadata__ key " ST_NAME_FMT " appears twice", f->label,
                              f->meta[i].key);
    }

    /* Data order, then no overlap: each non-empty tensor starts at or after the furthest end so far.
     * Empty tensors occupy no bytes and may sit anywhere in [0, data size]. */
    qsort(f->tensors, (size_t)f->n_tensors, sizeof *f->tensors, st_cmp_offset);
    const struct st_tensor *furthest = NULL;
    for (int64_t i = 0; i < f->n_tensors; i++) {
        const struct st_tensor *t = &f->tensors[i];
        if (t->n_bytes == 0) continue;
        if (furthest && t->file_offset < furthest->file_offset + furthest->n_bytes)
            return trit_error(TRIT_ERR_FORMAT,
                              "%s: tensors " ST_NAME_FMT " (file bytes %llu..%llu) and " ST_NAME_FMT
                              " (file bytes %llu..%llu) overlap",
                              f->label, furthest->name, (unsigned long long)furthest->file_offset,
                              (unsigned long long)(furthest->file_offset + furthest->n_bytes), t->name,
                              (unsigned long long)t->file_offset, (unsigned long long)(t->file_offset + t->n_bytes));
        if (!furthest || t->file_offset + t->n_bytes > furthest->file_offset + furthest->n_bytes) furthest = t;
    }
    /* The qsort above moved the tensors: rebuild the name index over their new places. */
    for (int64_t i = 0; i < f->n_tensors; i++) f->by_name_[i] = &f->tensors[i];
    qsort(f->by_name_, (size_t)f->n_tensors, sizeof *f->by_name_, st_cmp_name_ptr);
    return TRIT_OK;
}

/* Runs st_parse and releases the tree; on failure releases *f as well. */
static enum trit_status st_parse_or_close(struct st_file *f) {
    cJSON *root = NULL;
    enum trit_status st = st_parse(f, &root);
    cJSON_Delete(root);
    if (st != TRIT_OK) st_close(f);
    return st;
}

static char *st_strdup(const char *s) {
    size_t n = strlen(s) + 1;
    char *copy = trit_alloc(n);
    if (copy) memcpy(copy, s, n);
    return copy;
}

/* ---- open / close ------------------------------------------------------------------------- */

enum trit_status st_open_memory(const uint8_t *data, uint64_t size, struct st_file *out) {
    if (!out || (!data && size)) return trit_error(TRIT_ERR_INVALID_ARG, "st_open_memory: NULL argument");
    memset(out, 0, sizeof *out);
    out->label = st_strdup("<memory>");
    if (!out->label) return trit_error(TRIT_ERR_OUT_OF_MEMORY, "safetensors: out of memory");
    out->map = data;
    out->size = size;
    return st_parse_or_close(out);
}

enum trit_status st_open(const char *path, struct st_file *out) {
    if (!path || !out) return trit_error(TRIT_ERR_INVALID_ARG, "st_open: NULL argument");
    memset(out, 0, sizeof *out);
    const uint8_t *map;
    uint64_t size;
    TRIT_TRY(trit_file_map(path, &map, &size));
    if (size < 8) {
        trit_file_unmap(map, size);
        return trit_error(TRIT_ERR_FORMAT, "%s: %llu bytes, too short for the 8-byte header length", path,
                          (unsigned long long)size);
    }
    out->map = map;
    out->size = size;
    out->owns_map_ = true;
    out->label = st_strdup(path);
    if (!out->label) {
        st_close(out);
        return trit_error(TRIT_ERR_OUT_OF_MEMORY, "%s: out of memory", path);
    }
    return st_parse_or_close(out);
}

void st_close(struct st_file *f) {
    if (!f) return;
    if (f->owns_map_) trit_file_unmap(f->map, f->size);
    trit_free(f->label);
    trit_free(f->tensors);
    trit_free(f->by_name_);
    trit_free(f->meta);
    trit_free(f->strings_);
    memset(f, 0, sizeof *f);
}

/* ---- lookups ------------------------------------------------------------------------------ */

const struct st_tensor *st_find(const struct st_file *f, const char *name) {
    if (!f || !name) return NULL;
    int64_t lo = 0, hi = f->n_tensors; /* search [lo, hi) */
    while (lo < hi) {
        int64_t mid = lo + (hi - lo) / 2;
        int c = strcmp(name, f->by_name_[mid]->name);
        if (c == 0) return f->by_name_[mid];
        if (c < 0) hi = mid;
        else lo = mid + 1;
    }
    return NULL;
}

const char *st_meta_find(const struct st_file *f, const char *key) {
    if (!f || !key) return NULL;
    int64_t lo = 0, hi = f->n_meta;
    while (lo < hi) {
        int64_t mid = lo + (hi - lo) / 2;
        int c = strcmp(key, f->meta[mid].key);
        if (c == 0) return f->meta[mid].value;
        if (c < 0) hi = mid;
        else lo = mid + 1;
    }
    return NULL;
}

enum trit_status st_get(const struct st_file *f, const char *name, const struct st_tensor **out) {
    if (!f || !name || !out) return trit_error(TRIT_ERR_INVALID_ARG, "st_get: NULL argument");
    *out = st_find(f, name);
    if (!*out) return trit_error(TRIT_ERR_NOT_FOUND, "%s: no tensor " ST_NAME_FMT, f->label, name);
    return TRIT_OK;
}
