/*
 * gguf.c: the GGUF reader (versions 2 and 3, little-endian), typed getters and the ggml type table.
 * The writer is in gguf_writer.c.
 *
 * File layout (docs/formats.md section 4; all little-endian):
 *
 *   u8[4]  magic "GGUF"                                   byte 0
 *   u32    version (2 or 3)                               byte 4
 *   i64    n_tensors                                      byte 8
 *   i64    n_kv                                           byte 16
 *   n_kv      x { str key; i32 value_type; value }        byte 24 ...
 *   n_tensors x { str name; u32 n_dims; i64 ne[n_dims]; i32 ggml_type; u64 offset }
 *   0x00 padding up to a multiple of general.alignment (u32, default 32)
 *   data section: tensor i at data_offset + offset_i (a multiple of the alignment), its bytes
 *                 inside the file and disjoint from every other tensor's
 *
 *   str   = u64 len, len bytes (no NUL)
 *   value = scalar | str | ARRAY { i32 elem_type; u64 n; n packed elements }
 *
 * The file is hostile. Every length, count and offset is compared with the bytes left before it
 * is used; counts are bounded by the smallest encoding of one entry before anything is allocated,
 * so every allocation is at most a small multiple of the file size. Nothing is copied out of the
 * map: strings, arrays and tensor data point into it.
 *
 *   ctest --test-dir build -R test_gguf --output-on-failure
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "io/gguf.h"

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "the GGUF reader and writer copy little-endian fields with memcpy: a little-endian host is required"
#endif

/* Smallest encodings, used to bound counts by the bytes left before allocating:
 * a metadata pair is a key length (8), a value type (4) and at least a 1-byte value;
 * a tensor info is a name length (8), n_dims (4), a type (4) and an offset (8) with n_dims = 0. */
#define GGUF_MIN_KV_BYTES 13u
#define GGUF_MIN_TENSOR_INFO_BYTES 24u
#define GGUF_MAX_NAME 63u /* llama.cpp rejects names of GGML_MAX_NAME (64) bytes or more */

/* ---- ggml type table ------------------------------------------------------------------------ */

#define QK_K 256
/* TQ2_0: 64 bytes of 2-bit codes + fp16 d; TQ1_0: 48 bytes of 5 trits + 4 bytes of 4 trits + fp16 d. */
_Static_assert(QK_K / 4 + 2 == 66, "TQ2_0 block is 66 bytes");
_Static_assert((QK_K - 4 * QK_K / 64) / 5 + QK_K / 64 + 2 == 54, "TQ1_0 block is 54 bytes");

struct ggml_type_info {
    const char *name;
    uint32_t blck;      /* elements per block; 0 = size unknown to trit */
    uint32_t type_size; /* bytes per block */
};

/* Ids 0..35 mean the same in upstream llama.cpp and in bitnet.cpp (docs/formats.md section 4).
 * Sizes: gguf-py constants.py GGML_QUANT_SIZES. Removed types keep their name and no size. */
static const struct ggml_type_info type_table[36] = {
    [GGML_TYPE_F32] = {"F32", 1, 4},
    [GGML_TYPE_F16] = {"F16", 1, 2},
    [GGML_TYPE_Q4_0] = {"Q4_0", 32, 2 + 16},
    [GGML_TYPE_Q4_1] = {"Q4_1", 32, 2 + 2 + 16},
    [4] = {"Q4_2", 0, 0}, /* removed from ggml */
    [5] = {"Q4_3", 0, 0}, /* removed from ggml */
    [GGML_TYPE_Q5_0] = {"Q5_0", 32, 2 + 4 + 16},
    [GGML_TYPE_Q5_1] = {"Q5_1", 32, 2 + 2 + 4 + 16},
    [GGML_TYPE_Q8_0] = {"Q8_0", 32, 2 + 32},
    [GGML_TYPE_Q8_1] = {"Q8_1", 32, 4 + 32},
    [GGML_TYPE_Q2_K] = {"Q2_K", QK_K, 2 + 2 + QK_K / 16 + QK_K / 4},
    [GGML_TYPE_Q3_K] = {"Q3_K", QK_K, 2 + QK_K / 4 + QK_K / 8 + 12},
    [GGML_TYPE_Q4_K] = {"Q4_K", QK_K, 2 + 2 + QK_K / 2 + 12},
    [GGML_TYPE_Q5_K] = {"Q5_K", QK_K, 2 + 2 + QK_K / 2 + QK_K / 8 + 12},
    [GGML_TYPE_Q6_K] = {"Q6_K", QK_K, 2 + QK_K / 2 + QK_K / 4 + QK_K / 16},
    [GGML_TYPE_Q8_K] = {"Q8_K", QK_K, 4 + QK_K + QK_K / 8},
    [16] = {"IQ2_XXS", QK_K, 2 + QK_K / 4},
    [17] = {"IQ2_XS", QK_K, 2 + QK_K / 4 + QK_K / 32},
    [18] = {"IQ3_XXS", QK_K, 2 + QK_K / 4 + QK_K / 8},
    [19] = {"IQ1_S", QK_K, 2 + QK_K / 8 + QK_K / 16},
    [20] = {"IQ4_NL", 32, 2 + 16},
    [21] = {"IQ3_S", QK_K, 2 + QK_K / 4 + QK_K / 8 + QK_K / 32 + 4},
    [22] = {"IQ2_S", QK_K, 2 + QK_K / 4 + QK_K / 16},
    [23] = {"IQ4_XS", QK_K, 2 + 2 + QK_K / 2 + QK_K / 64},
    [GGML_TYPE_I8] = {"I8", 1, 1},
    [GGML_TYPE_I16] = {"I16", 1, 2},
    [GGML_TYPE_I32] = {"I32", 1, 4},
    [GGML_TYPE_I64] = {"I64", 1, 8},
    [GGML_TYPE_F64] = {"F64", 1, 8},
    [29] = {"IQ1_M", QK_K, QK_K / 8 + QK_K / 16 + QK_K / 32},
    [GGML_TYPE_BF16] = {"BF16", 1, 2},
    [31] = {"Q4_0_4_4", 0, 0}, /* removed: repacked at load time upstream now */
    [32] = {"Q4_0_4_8", 0, 0},
    [33] = {"Q4_0_8_8", 0, 0},
    [GGML_TYPE_TQ1_0] = {"TQ1_0", QK_K, (QK_K - 4 * QK_K / 64) / 5 + QK_K / 64 + 2},
    [GGML_TYPE_TQ2_0] = {"TQ2_0", QK_K, QK_K / 4 + 2},
};
/* Ids from 36 on: the two tables disagree (39 is MXFP4 upstream and TL2 in bitnet.cpp). */
static const char *const upstream_names_36[] = {"IQ4_NL_4_4", "IQ4_NL_4_8", "IQ4_NL_8_8", "MXFP4",
                                                "NVFP4",      "Q1_0",       "Q2_0"};
static const char *const bitnet_names_36[] = {"I2_S", "I8_S", "TL1", "TL2"};

bool gguf_type_traits(uint32_t type, uint32_t *blck, uint32_t *type_size) {
    uint32_t b = 0, s = 0;
    if (type < sizeof type_table / sizeof type_table[0]) {
        b = type_table[type].blck;
        s = type_table[type].type_size;
    }
    if (blck) *blck = b;
    if (type_size) *type_size = s;
    return b != 0;
}

const char *gguf_type_name(uint32_t type, bool bitnet_ids) {
    static _Thread_local char buf[24];
    const size_t n_up = sizeof upstream_names_36 / sizeof upstream_names_36[0];
    const size_t n_bn = sizeof bitnet_names_36 / sizeof bitnet_names_36[0];
    if (type < 36 && type_table[type].name) return type_table[type].name;
    if (type == GGML_TYPE_Q2_0) return "Q2_0"; /* bitnet.cpp's table stops at 39: 42 is free there */
    if (type >= 36 && bitnet_ids && type - 36 < n_bn) return bitnet_names_36[type - 36];
    if (type >= 36 && !bitnet_ids && type - 36 < n_up) return upstream_names_36[type - 36];
    snprintf(buf, sizeof buf, "type%" PRIu32, type);
    return buf;
}

/* Element count of ne[0..3], or -1 when negative or when the product overflows int64. */
static int64_t elem_count(const int64_t ne[GGUF_MAX_DIMS]) {
    int64_t n = 1;
    for (int d = 0; d < GGUF_MAX_DIMS; d++)
        if (!trit_mul_i64(n, ne[d], &n)) return -1;
    return n;
}

uint64_t gguf_tensor_bytes(uint32_t type, const int64_t ne[GGUF_MAX_DIMS]) {
    int64_t n = elem_count(ne);
    if (n < 0) return 0;
    /* bitnet.cpp I2_S: 2 bits per element, then a 32-byte tail whose first 4 bytes are the
     * tensor's fp32 scale (docs/formats.md section 4; ggml_nbytes special case: n/4 + 32). */
    if (type == GGML_TYPE_I2_S_BITNET) return (uint64_t)(n / 4) + 32;
    uint32_t blck, type_size;
    if (!gguf_type_traits(type, &blck, &type_size)) return 0;
    if (ne[0] % blck != 0) return 0;
    int64_t bytes;
    if (!trit_mul_i64(n / blck, type_size, &bytes)) return 0;
    return (uint64_t)bytes;
}

/* ---- metadata value types ------------------------------------------------------------------- */

uint64_t gguf_value_size(enum gguf_type type) {
    switch (type) {
    case GGUF_TYPE_UINT8:
    case GGUF_TYPE_INT8:
    case GGUF_TYPE_BOOL: return 1;
    case GGUF_TYPE_UINT16:
    case GGUF_TYPE_INT16: return 2;
    case GGUF_TYPE_UINT32:
    case GGUF_TYPE_INT32:
    case GGUF_TYPE_FLOAT32: return 4;
    case GGUF_TYPE_UINT64:
    case GGUF_TYPE_INT64:
    case GGUF_TYPE_FLOAT64: return 8;
    case GGUF_TYPE_STRING:
    case GGUF_TYPE_ARRAY:
    case GGUF_TYPE_COUNT: break;
    }
    return 0;
}

const char *gguf_value_type_name(enum gguf_type type) {
    switch (type) {
    case GGUF_TYPE_UINT8: return "u8";
    case GGUF_TYPE_INT8: return "i8";
    case GGUF_TYPE_UINT16: return "u16";
    case GGUF_TYPE_INT16: return "i16";
    case GGUF_TYPE_UINT32: return "u32";
    case GGUF_TYPE_INT32: return "i32";
    case GGUF_TYPE_FLOAT32: return "f32";
    case GGUF_TYPE_BOOL: return "bool";
    case GGUF_TYPE_STRING: return "string";
    case GGUF_TYPE_ARRAY: return "array";
    case GGUF_TYPE_UINT64: return "u64";
    case GGUF_TYPE_INT64: return "i64";
    case GGUF_TYPE_FLOAT64: return "f64";
    case GGUF_TYPE_COUNT: break;
    }
    return "unknown";
}

static bool is_signed_int(enum gguf_type t) {
    return t == GGUF_TYPE_INT8 || t == GGUF_TYPE_INT16 || t == GGUF_TYPE_INT32 || t == GGUF_TYPE_INT64;
}
static bool is_unsigned_int(enum gguf_type t) {
    return t == GGUF_TYPE_UINT8 || t == GGUF_TYPE_UINT16 || t == GGUF_TYPE_UINT32 || t == GGUF_TYPE_UINT64;
}
static bool is_float(enum gguf_type t) { return t == GGUF_TYPE_FLOAT32 || t == GGUF_TYPE_FLOAT64; }

/* Decodes one scalar element at p (little-endian, unaligned) into the kv value union's form:
 * unsigned and BOOL zero-extended into u64, signed sign-extended into i64, floats into f64. */
static void decode_scalar(enum gguf_type t, const uint8_t *p, uint64_t *u, int64_t *i, double *f) {
    switch (t) {
    case GGUF_TYPE_UINT8: *u = p[0]; break;
    case GGUF_TYPE_BOOL: *u = p[0] != 0; break; /* llama.cpp reads a bool as int8 != 0 */
    case GGUF_TYPE_INT8: *i = (int8_t)p[0]; break;
    case GGUF_TYPE_UINT16: { uint16_t v; memcpy(&v, p, 2); *u = v; } break;
    case GGUF_TYPE_INT16: { int16_t v; memcpy(&v, p, 2); *i = v; } break;
    case GGUF_TYPE_UINT32: { uint32_t v; memcpy(&v, p, 4); *u = v; } break;
    case GGUF_TYPE_INT32: { int32_t v; memcpy(&v, p, 4); *i = v; } break;
    case GGUF_TYPE_UINT64: memcpy(u, p, 8); break;
    case GGUF_TYPE_INT64: memcpy(i, p, 8); break;
    case GGUF_TYPE_FLOAT32: { float v; memcpy(&v, p, 4); *f = (double)v; } break;
    case GGUF_TYPE_FLOAT64: memcpy(f, p, 8); break;
    case GGUF_TYPE_STRING:
    case GGUF_TYPE_ARRAY:
    case GGUF_TYPE_COUNT: break;
    }
}

/* ---- parse cursor and messages -------------------------------------------------------------- */

struct cursor {
    const uint8_t *base;
    uint64_t size;
    uint64_t pos;
    /* what is being parsed, for messages: "metadata pair 3: ..." or "key 'x': ..." */
    const char *what;            /* entry kind before its name is known */
    const char *what_named;      /* entry kind once `name` is set */
    int64_t index;
    const struct gguf_str *name; /* NULL until the key / tensor name has been read */
};

/* Copies a file string into buf for a message: printable ASCII kept, other bytes as '?', long names
 * cut with "...". Hostile names must not put control characters on a terminal. */
static const char *disp(const struct gguf_str *s, char *buf, size_t cap) {
    size_t n = 0;
    for (uint64_t i = 0; i < s->len && n + 4 < cap; i++) {
        unsigned char ch = (unsigned char)s->ptr[i];
        buf[n++] = (ch >= 0x20 && ch < 0x7f) ? (char)ch : '?';
    }
    if (n < s->len) { memcpy(buf + n, "...", 3); n += 3; }
    buf[n] = '\0';
    return buf;
}

static enum trit_status cur_fail(const struct cursor *c, const char *fmt, ...) TRIT_PRINTF(2, 3);
static enum trit_status cur_fail(const struct cursor *c, const char *fmt, ...) {
    char problem[512], name[96];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(problem, sizeof problem, fmt, ap);
    va_end(ap);
    if (c->name)
        return trit_error(TRIT_ERR_FORMAT, "gguf: %s '%s': %s", c->what_named, disp(c->name, name, sizeof name),
                          problem);
    if (c->what) return trit_error(TRIT_ERR_FORMAT, "gguf: %s %" PRId64 ": %s", c->what, c->index, problem);
    return trit_error(TRIT_ERR_FORMAT, "gguf: %s", problem);
}

static uint64_t left(const struct cursor *c) { return c->size - c->pos; }

static enum trit_status need(const struct cursor *c, uint64_t n, const char *field) {
    if (n <= left(c)) return TRIT_OK;
    return cur_fail(c, "%s at byte %" PRIu64 " needs %" PRIu64 " bytes but only %" PRIu64 " are left", field,
                    c->pos, n, left(c));
}

static enum trit_status rd_raw(struct cursor *c, void *out, uint64_t n, const char *field) {
    TRIT_TRY(need(c, n, field));
    memcpy(out, c->base + c->pos, n);
    c->pos += n;
    return TRIT_OK;
}
static enum trit_status rd_u32(struct cursor *c, uint32_t *v, const char *f) { return rd_raw(c, v, 4, f); }
static enum trit_status rd_i32(struct cursor *c, int32_t *v, const char *f) { return rd_raw(c, v, 4, f); }
static enum trit_status rd_u64(struct cursor *c, uint64_t *v, const char *f) { return rd_raw(c, v, 8, f); }
static enum trit_status rd_i64(struct cursor *c, int64_t *v, const char *f) { return rd_raw(c, v, 8, f); }

/* A gguf string: u64 length (named `field` in messages), then that many bytes, kept in the map. */
static enum trit_status rd_str(struct cursor *c, struct gguf_str *out, const char *field) {
    uint64_t at = c->pos, len;
    TRIT_TRY(rd_u64(c, &len, field));
    if (len > left(c))
        return cur_fail(c, "%s %" PRIu64 " at byte %" PRIu64 " exceeds the %" PRIu64 " bytes left", field, len, at,
                        left(c));
    out->len = len;
    out->ptr = (const char *)(c->base + c->pos);
    c->pos += len;
    return TRIT_OK;
}

/* n zeroed elements of elem_size bytes, or NULL (also when n * elem_size overflows size_t). */
static void *alloc_array(uint64_t n, size_t elem_size) {
    size_t bytes;
    if (n > SIZE_MAX || __builtin_mul_overflow((size_t)n, elem_size, &bytes)) return NULL;
    return trit_alloc(bytes);
}

static bool str_eq(const struct gguf_str *a, const char *b) {
    size_t n = strlen(b);
    return a->len == n && memcmp(a->ptr, b, n) == 0;
}

/* ---- metadata ------------------------------------------------------------------------------- */

static enum trit_status rd_value_type(struct cursor *c, enum gguf_type *out, const char *field) {
    uint64_t at = c->pos;
    int32_t t;
    TRIT_TRY(rd_i32(c, &t, field));
    if (t < 0 || t >= GGUF_TYPE_COUNT)
        return cur_fail(c, "unknown %s %" PRId32 " at byte %" PRIu64, field, t, at);
    *out = (enum gguf_type)t;
    return TRIT_OK;
}

/* ARRAY value after its i32 tag: i32 elem_type, u64 n, n packed elements. */
static enum trit_status read_array(struct cursor *c, struct gguf_kv *kv) {
    uint64_t at = c->pos;
    TRIT_TRY(rd_value_type(c, &kv->arr_type, "array element type"));
    if (kv->arr_type == GGUF_TYPE_ARRAY)
        return cur_fail(c, "nested array (array of arrays) at byte %" PRIu64 " is not supported", at);
    uint64_t n_at = c->pos;
    TRIT_TRY(rd_u64(c, &kv->arr_n, "array length"));
    kv->arr_data = c->base + c->pos;
    if (kv->arr_type != GGUF_TYPE_STRING) {
        uint64_t es = gguf_value_size(kv->arr_type);
        if (kv->arr_n > left(c) / es)
            return cur_fail(c, "array of %" PRIu64 " %s at byte %" PRIu64 " needs %" PRIu64 " bytes per element but only %" PRIu64 " bytes are left",
                            kv->arr_n, gguf_value_type_name(kv->arr_type), n_at, es, left(c));
        c->pos += kv->arr_n * es;
        return TRIT_OK;
    }
    /* Strings: each element is at least its 8-byte length, which bounds n before the offset table
     * (8 bytes per element, so never larger than the array itself) is allocated. */
    if (kv->arr_n > left(c) / 8)
        return cur_fail(c, "array of %" PRIu64 " strings at byte %" PRIu64 " cannot fit in the %" PRIu64 " bytes left (8 bytes per length at least)",
                        kv->arr_n, n_at, left(c));
    kv->arr_str_off = alloc_array(kv->arr_n, sizeof(uint64_t));
    if (!kv->arr_str_off) return trit_error(TRIT_ERR_OUT_OF_MEMORY, "gguf: string array of %" PRIu64 " elements", kv->arr_n);
    uint64_t start = c->pos;
    for (uint64_t i = 0; i < kv->arr_n; i++) {
        struct gguf_str s;
        kv->arr_str_off[i] = c->pos - start;
        TRIT_TRY(rd_str(c, &s, "string length"));
    }
    return TRIT_OK;
}

static enum trit_status read_value(struct cursor *c, struct gguf_kv *kv) {
    TRIT_TRY(rd_value_type(c, &kv->type, "value type"));
    switch (kv->type) {
    case GGUF_TYPE_STRING: return rd_str(c, &kv->str, "string length");
    case GGUF_TYPE_ARRAY: return read_array(c, kv);
    default: {
        uint64_t n = gguf_value_size(kv->type);
        TRIT_TRY(need(c, n, gguf_value_type_name(kv->type)));
        decode_scalar(kv->type, c->base + c->pos, &kv->v.u64, &kv->v.i64, &kv->v.f64);
        c->pos += n;
        return TRIT_OK;
    }
    }
}

/* ---- duplicate detection: sort (name, position) pairs, compare neighbours. O(n log n), so a file of
 * many entries cannot make the check quadratic. */
struct name_ref {
    struct gguf_str s;
    uint64_t at;
};

static int name_ref_cmp(const void *pa, const void *pb) {
    const struct name_ref *a = pa, *b = pb;
    if (a->s.len != b->s.len) return a->s.len < b->s.len ? -1 : 1;
    int r = a->s.len ? memcmp(a->s.ptr, b->s.ptr, a->s.len) : 0;
    if (r) return r;
    return a->at < b->at ? -1 : a->at > b->at;
}

/* Fails on the first name that occurs twice; `kind` is "key" or "tensor name". */
static enum trit_status check_unique(struct name_ref *refs, int64_t n, const char *kind) {
    if (n < 2) return TRIT_OK;
    qsort(refs, (size_t)n, sizeof refs[0], name_ref_cmp);
    for (int64_t i = 1; i < n; i++) {
        if (refs[i].s.len != refs[i - 1].s.len) continue;
        if (refs[i].s.len && memcmp(refs[i].s.ptr, refs[i - 1].s.ptr, refs[i].s.len) != 0) continue;
        char name[96];
        return trit_error(TRIT_ERR_FORMAT, "gguf: duplicate %s '%s' at bytes %" PRIu64 " and %" PRIu64, kind,
                          disp(&refs[i].s, name, sizeof name), refs[i - 1].at, refs[i].at);
    }
    return TRIT_OK;
}

/* ---- the whole file ------------------------------------------------------------------------- */

static enum trit_status parse_header(struct cursor *c, struct gguf_file *f) {
    uint8_t magic[4];
    TRIT_TRY(rd_raw(c, magic, 4, "magic"));
    if (memcmp(magic, "GGUF", 4) != 0)
        return cur_fail(c, "bad magic %02x %02x %02x %02x at byte 0 (expected \"GGUF\"): not a GGUF file", magic[0],
                        magic[1], magic[2], magic[3]);
    TRIT_TRY(rd_u32(c, &f->version, "version"));
    if (f->version != 2 && f->version != 3) {
        uint32_t swapped = __builtin_bswap32(f->version);
        /* A big-endian file has every field byte-swapped and no flag that says so; its version
         * read as little-endian has zero low bytes (the heuristic of llama.cpp's gguf.cpp). */
        if ((f->version & 0xffffu) == 0 && swapped >= 1 && swapped <= 3)
            return cur_fail(c, "version 0x%08" PRIx32 " at byte 4 is byte-swapped: this is a big-endian GGUF file (version %" PRIu32 "); only little-endian files are supported",
                            f->version, swapped);
        if (f->version == 1)
            return cur_fail(c, "version 1 at byte 4 is not supported (v1 had 32-bit counts); convert the file to version 3");
        return cur_fail(c, "unsupported version %" PRIu32 " at byte 4 (versions 2 and 3 are supported)", f->version);
    }
    TRIT_TRY(rd_i64(c, &f->n_tensors, "tensor count"));
    TRIT_TRY(rd_i64(c, &f->n_kv, "metadata count"));
    if (f->n_tensors < 0) return cur_fail(c, "tensor count %" PRId64 " at byte 8 is negative", f->n_tensors);
    if (f->n_kv < 0) return cur_fail(c, "metadata count %" PRId64 " at byte 16 is negative", f->n_kv);
    /* Bound both counts by the bytes left before allocating anything for them. */
    uint64_t rest = left(c);
    if ((uint64_t)f->n_kv > rest / GGUF_MIN_KV_BYTES)
        return cur_fail(c, "metadata count %" PRId64 " at byte 16 needs at least %u bytes each but only %" PRIu64 " bytes are left",
                        f->n_kv, GGUF_MIN_KV_BYTES, rest);
    rest -= (uint64_t)f->n_kv * GGUF_MIN_KV_BYTES;
    if ((uint64_t)f->n_tensors > rest / GGUF_MIN_TENSOR_INFO_BYTES)
        return cur_fail(c, "tensor count %" PRId64 " at byte 8 needs at least %u bytes each but only %" PRIu64 " bytes are left after the metadata",
                        f->n_tensors, GGUF_MIN_TENSOR_INFO_BYTES, rest);
    return TRIT_OK;
}

static enum trit_status parse_kvs(struct cursor *c, struct gguf_file *f) {
    f->kv = alloc_array((uint64_t)f->n_kv, sizeof f->kv[0]);
    if (!f->kv) return trit_error(TRIT_ERR_OUT_OF_MEMORY, "gguf: %" PRId64 " metadata pairs", f->n_kv);
    for (int64_t i = 0; i < f->n_kv; i++) {
        struct gguf_kv *kv = &f->kv[i];
        c->what = "metadata pair";
        c->what_named = "key";
        c->index = i;
        c->name = NULL;
        kv->offset = c->pos;
        TRIT_TRY(rd_str(c, &kv->key, "key length"));
        /* Keys are looked up as C strings; one with a NUL could never be found or copied. */
        if (kv->key.len && memchr(kv->key.ptr, 0, kv->key.len))
            return cur_fail(c, "key at byte %" PRIu64 " contains a NUL byte", kv->offset);
        c->name = &kv->key;
        TRIT_TRY(read_value(c, kv));
    }
    c->what = NULL;
    c->name = NULL;

    struct name_ref *refs = alloc_array((uint64_t)f->n_kv, sizeof *refs);
    if (!refs) return trit_error(TRIT_ERR_OUT_OF_MEMORY, "gguf: key index");
    for (int64_t i = 0; i < f->n_kv; i++) refs[i] = (struct name_ref){f->kv[i].key, f->kv[i].offset};
    enum trit_status st = check_unique(refs, f->n_kv, "key");
    trit_free(refs);
    TRIT_TRY(st);

    f->alignment = GGUF_DEFAULT_ALIGNMENT;
    const struct gguf_kv *al = gguf_find_kv(f, "general.alignment");
    if (al) {
        if (al->type != GGUF_TYPE_UINT32)
            return trit_error(TRIT_ERR_FORMAT, "gguf: general.alignment at byte %" PRIu64 " has type %s; it must be u32",
                              al->offset, gguf_value_type_name(al->type));
        if (al->v.u64 == 0 || (al->v.u64 & (al->v.u64 - 1)) != 0)
            return trit_error(TRIT_ERR_FORMAT, "gguf: general.alignment %" PRIu64 " at byte %" PRIu64 " is not a non-zero power of two",
                              al->v.u64, al->offset);
        f->alignment = al->v.u64;
    }
    const struct gguf_kv *arch = gguf_find_kv(f, "general.architecture");
    f->bitnet_ids = arch && arch->type == GGUF_TYPE_STRING &&
                    (str_eq(&arch->str, "bitnet-b1.58") || str_eq(&arch->str, "bitnet-25"));
    return TRIT_OK;
}

/* One tensor info: its fields, shape checks and byte size. The data range is checked later, once
 * the data section's start is known. */
static enum trit_status parse_tensor_info(struct cursor *c, const struct gguf_file *f, struct gguf_tensor_info *t) {
    uint64_t at = c->pos;
    TRIT_TRY(rd_str(c, &t->name, "name length"));
    if (t->name.len == 0) return cur_fail(c, "empty name at byte %" PRIu64, at);
    if (t->name.len > GGUF_MAX_NAME)
        return cur_fail(c, "name at byte %" PRIu64 " is %" PRIu64 " bytes long; the limit is %u", at, t->name.len,
                        GGUF_MAX_NAME);
    if (t->name.len && memchr(t->name.ptr, 0, t->name.len))
        return cur_fail(c, "name at byte %" PRIu64 " contains a NUL byte", at);
    c->name = &t->name;
    uint64_t dims_at = c->pos;
    TRIT_TRY(rd_u32(c, &t->n_dims, "n_dims"));
    if (t->n_dims > GGUF_MAX_DIMS)
        return cur_fail(c, "n_dims %" PRIu32 " at byte %" PRIu64 " exceeds %d", t->n_dims, dims_at, GGUF_MAX_DIMS);
    for (uint32_t d = 0; d < GGUF_MAX_DIMS; d++) t->ne[d] = 1;
    for (uint32_t d = 0; d < t->n_dims; d++) {
        uint64_t ne_at = c->pos;
        TRIT_TRY(rd_i64(c, &t->ne[d], "dimension"));
        if (t->ne[d] < 0)
            return cur_fail(c, "ne[%" PRIu32 "] = %" PRId64 " at byte %" PRIu64 " is negative", d, t->ne[d], ne_at);
    }
    int32_t type;
    TRIT_TRY(rd_i32(c, &type, "tensor type"));
    t->type = (uint32_t)type;
    TRIT_TRY(rd_u64(c, &t->offset, "data offset"));

    int64_t n = elem_count(t->ne);
    if (n < 0)
        return cur_fail(c, "element count of [%" PRId64 ", %" PRId64 ", %" PRId64 ", %" PRId64 "] (info at byte %" PRIu64 ") overflows int64",
                        t->ne[0], t->ne[1], t->ne[2], t->ne[3], at);
    uint32_t blck, type_size;
    if (t->type == GGML_TYPE_I2_S_BITNET && f->bitnet_ids) {
        t->n_bytes = gguf_tensor_bytes(t->type, t->ne);
    } else if (gguf_type_traits(t->type, &blck, &type_size)) {
        if (t->ne[0] % blck != 0)
            return cur_fail(c, "ne[0] = %" PRId64 " (info at byte %" PRIu64 ") is not a multiple of the %s block size %" PRIu32,
                            t->ne[0], at, gguf_type_name(t->type, f->bitnet_ids), blck);
        int64_t bytes;
        if (!trit_mul_i64(n / blck, type_size, &bytes))
            return cur_fail(c, "byte size of %" PRId64 " %s elements (info at byte %" PRIu64 ") overflows int64", n,
                            gguf_type_name(t->type, f->bitnet_ids), at);
        t->n_bytes = (uint64_t)bytes;
    } else {
        /* Unknown to trit: kept by name with no data, so that `trit inspect` can list it and the
         * model loader can refuse it by name. */
        t->n_bytes = 0;
    }
    return TRIT_OK;
}

/* ---- tensor data ranges: sort by start, compare neighbours. Sorted by start, any two overlapping
 * ranges imply an overlapping adjacent pair (the first range overlaps its successor), so the check is
 * O(n log n). Empty tensors (a zero dimension, or a type trit cannot size) hold no bytes and are
 * skipped. llama.cpp requires the ranges to be contiguous and in order; trit only requires them
 * disjoint, which is what makes two names never alias one set of bytes. */
struct data_ref {
    uint64_t start; /* relative to the data section */
    uint64_t end;
    int64_t index;
};

static int data_ref_cmp(const void *pa, const void *pb) {
    const struct data_ref *a = pa, *b = pb;
    if (a->start != b->start) return a->start < b->start ? -1 : 1;
    return a->index < b->index ? -1 : a->index > b->index;
}

static enum trit_status check_no_overlap(const struct gguf_file *f) {
    if (f->n_tensors < 2) return TRIT_OK;
    struct data_ref *refs = alloc_array((uint64_t)f->n_tensors, sizeof *refs);
    if (!refs) return trit_error(TRIT_ERR_OUT_OF_MEMORY, "gguf: tensor data index");
    int64_t n = 0;
    for (int64_t i = 0; i < f->n_tensors; i++) {
        const struct gguf_tensor_info *t = &f->tensors[i];
        /* offset + n_bytes cannot overflow: parse_tensors checked data_offset + offset + n_bytes */
        if (t->n_bytes) refs[n++] = (struct data_ref){t->offset, t->offset + t->n_bytes, i};
    }
    qsort(refs, (size_t)n, sizeof refs[0], data_ref_cmp);
    enum trit_status st = TRIT_OK;
    for (int64_t k = 1; k < n; k++) {
        const struct data_ref *a = &refs[k - 1], *b = &refs[k];
        if (b->start >= a->end) continue;
        char na[96], nb[96];
        st = trit_error(TRIT_ERR_FORMAT,
                        "gguf: tensors '%s' (data [%" PRIu64 ", %" PRIu64 ")) and '%s' (data [%" PRIu64 ", %" PRIu64 ")) overlap",
                        disp(&f->tensors[a->index].name, na, sizeof na), f->data_offset + a->start,
                        f->data_offset + a->end, disp(&f->tensors[b->index].name, nb, sizeof nb),
                        f->data_offset + b->start, f->data_offset + b->end);
        break;
    }
    trit_free(refs);
    return st;
}

static enum trit_status parse_tensors(struct cursor *c, struct gguf_file *f) {
    f->tensors = alloc_array((uint64_t)f->n_tensors, sizeof f->tensors[0]);
    if (!f->tensors) return trit_error(TRIT_ERR_OUT_OF_MEMORY, "gguf: %" PRId64 " tensor infos", f->n_tensors);
    struct name_ref *refs = alloc_array((uint64_t)f->n_tensors, sizeof *refs);
    if (!refs) return trit_error(TRIT_ERR_OUT_OF_MEMORY, "gguf: tensor index");
    enum trit_status st = TRIT_OK;
    for (int64_t i = 0; i < f->n_tensors && st == TRIT_OK; i++) {
        c->what = "tensor info";
        c->what_named = "tensor";
        c->index = i;
        c->name = NULL;
        refs[i].at = c->pos;
        st = parse_tensor_info(c, f, &f->tensors[i]);
        refs[i].s = f->tensors[i].name;
    }
    if (st == TRIT_OK) st = check_unique(refs, f->n_tensors, "tensor name");
    trit_free(refs);
    TRIT_TRY(st);

    /* The data section starts at the next multiple of the alignment. A file with no tensors may
     * end right after its metadata, without the padding (llama.cpp's vocab files do). */
    uint64_t rem = c->pos % f->alignment;
    f->data_offset = rem ? c->pos + (f->alignment - rem) : c->pos;

    for (int64_t i = 0; i < f->n_tensors; i++) {
        struct gguf_tensor_info *t = &f->tensors[i];
        c->what_named = "tensor";
        c->name = &t->name;
        if (t->offset % f->alignment != 0)
            return cur_fail(c, "data offset %" PRIu64 " is not a multiple of the alignment %" PRIu64 " (data section at byte %" PRIu64 ")",
                            t->offset, f->alignment, f->data_offset);
        uint64_t start, end;
        if (__builtin_add_overflow(f->data_offset, t->offset, &start) ||
            __builtin_add_overflow(start, t->n_bytes, &end))
            return cur_fail(c, "data offset %" PRIu64 " + %" PRIu64 " bytes past the data section at byte %" PRIu64 " overflows",
                            t->offset, t->n_bytes, f->data_offset);
        if (end > f->size)
            return cur_fail(c, "data [%" PRIu64 ", %" PRIu64 ") runs past the end of the file (size %" PRIu64 ")", start,
                            end, f->size);
        t->data = t->n_bytes ? f->map + start : NULL;
    }
    c->name = NULL;
    return check_no_overlap(f);
}

/* ---- tensors sized after parsing ------------------------------------------------------------ */

uint64_t gguf_tensor_span(const struct gguf_file *f, int64_t index) {
    if (!f || !f->tensors || index < 0 || index >= f->n_tensors) return 0;
    const struct gguf_tensor_info *t = &f->tensors[index];
    if (elem_count(t->ne) <= 0) return 0;
    /* parse_tensors checked data_offset + offset + n_bytes <= size for every tensor */
    uint64_t end = f->size - f->data_offset;
    for (int64_t j = 0; j < f->n_tensors; j++) {
        const struct gguf_tensor_info *u = &f->tensors[j];
        if (j == index || elem_count(u->ne) <= 0) continue;
        if (u->offset >= t->offset && u->offset < end) end = u->offset;
    }
    return end - t->offset;
}

enum trit_status gguf_tensor_set_bytes(struct gguf_file *f, int64_t index, uint64_t n_bytes) {
    if (!f || !f->tensors || index < 0 || index >= f->n_tensors)
        return trit_error(TRIT_ERR_INVALID_ARG, "gguf_tensor_set_bytes: no tensor %" PRId64, index);
    struct gguf_tensor_info *t = &f->tensors[index];
    char name[96], other[96];
    disp(&t->name, name, sizeof name);
    if (t->n_bytes != 0 || t->data)
        return trit_error(TRIT_ERR_INVALID_ARG, "gguf_tensor_set_bytes: tensor '%s' already has %" PRIu64 " bytes", name,
                          t->n_bytes);
    if (n_bytes == 0) return TRIT_OK;
    uint64_t start, end;
    if (__builtin_add_overflow(f->data_offset, t->offset, &start) || __builtin_add_overflow(start, n_bytes, &end) ||
        end > f->size)
        return trit_error(TRIT_ERR_FORMAT, "gguf: tensor '%s': data of %" PRIu64 " bytes at byte %" PRIu64 " runs past the end of the file (size %" PRIu64 ")",
                          name, n_bytes, f->data_offset + t->offset, f->size);
    const uint64_t a0 = t->offset, a1 = t->offset + n_bytes;
    for (int64_t j = 0; j < f->n_tensors; j++) {
        const struct gguf_tensor_info *u = &f->tensors[j];
        if (j == index || u->n_bytes == 0) continue;
        const uint64_t b0 = u->offset, b1 = u->offset + u->n_bytes;
        if (a0 < b1 && b0 < a1)
            return trit_error(TRIT_ERR_FORMAT,
                              "gguf: tensors '%s' (data [%" PRIu64 ", %" PRIu64 ")) and '%s' (data [%" PRIu64 ", %" PRIu64 ")) overlap",
                              name, f->data_offset + a0, f->data_offset + a1, disp(&u->name, other, sizeof other),
                              f->data_offset + b0, f->data_offset + b1);
    }
    t->n_bytes = n_bytes;
    t->data = f->map + start;
    return TRIT_OK;
}

static void release(struct gguf_file *f) {
    if (f->kv)
        for (int64_t i = 0; i < f->n_kv; i++) trit_free(f->kv[i].arr_str_off);
    trit_free(f->kv);
    trit_free(f->tensors);
    if (f->owns_map) trit_file_unmap(f->map, f->size);
    memset(f, 0, sizeof *f);
}

static enum trit_status parse(struct gguf_file *f) {
    struct cursor c = {.base = f->map, .size = f->size};
    TRIT_TRY(parse_header(&c, f));
    TRIT_TRY(parse_kvs(&c, f));
    TRIT_TRY(parse_tensors(&c, f));
    return TRIT_OK;
}

enum trit_status gguf_open_memory(const uint8_t *data, uint64_t size, struct gguf_file *out) {
    if (!out) return trit_error(TRIT_ERR_INVALID_ARG, "gguf_open_memory: out is NULL");
    memset(out, 0, sizeof *out);
    if (!data && size) return trit_error(TRIT_ERR_INVALID_ARG, "gguf_open_memory: NULL data of %" PRIu64 " bytes", size);
    static const uint8_t empty[1];
    out->map = data ? data : empty;
    out->size = size;
    enum trit_status st = parse(out);
    if (st != TRIT_OK) release(out);
    return st;
}

enum trit_status gguf_open(const char *path, struct gguf_file *out) {
    if (!out || !path) return trit_error(TRIT_ERR_INVALID_ARG, "gguf_open: NULL argument");
    memset(out, 0, sizeof *out);
    const uint8_t *map;
    uint64_t size;
    TRIT_TRY(trit_file_map(path, &map, &size));
    if (size == 0) return trit_error(TRIT_ERR_FORMAT, "gguf: '%s' is empty (0 bytes at byte 0)", path);
    out->map = map;
    out->size = size;
    out->owns_map = true;
    enum trit_status st = parse(out);
    if (st != TRIT_OK) {
        char msg[1024];
        snprintf(msg, sizeof msg, "%s", trit_last_error());
        release(out);
        return trit_error(st, "%s (in %s)", msg, path);
    }
    return TRIT_OK;
}

void gguf_close(struct gguf_file *f) {
    if (f) release(f);
}

/* ---- lookups and getters -------------------------------------------------------------------- */

const struct gguf_kv *gguf_find_kv(const struct gguf_file *f, const char *key) {
    if (!f || !key || !f->kv) return NULL;
    for (int64_t i = 0; i < f->n_kv; i++)
        if (str_eq(&f->kv[i].key, key)) return &f->kv[i];
    return NULL;
}

const struct gguf_tensor_info *gguf_find_tensor(const struct gguf_file *f, const char *name) {
    if (!f || !name || !f->tensors) return NULL;
    for (int64_t i = 0; i < f->n_tensors; i++)
        if (str_eq(&f->tensors[i].name, name)) return &f->tensors[i];
    return NULL;
}

/* Finds `key` for a getter: NOT_FOUND when absent, INVALID_ARG on NULL arguments. */
static enum trit_status getter_kv(const struct gguf_file *f, const char *key, const void *out,
                                  const struct gguf_kv **kv) {
    if (!f || !key || !out) return trit_error(TRIT_ERR_INVALID_ARG, "gguf: getter called with a NULL argument");
    *kv = gguf_find_kv(f, key);
    if (!*kv) return trit_error(TRIT_ERR_NOT_FOUND, "gguf: key '%s' not found", key);
    return TRIT_OK;
}

static enum trit_status wrong_type(const struct gguf_kv *kv, const char *key, const char *want) {
    return trit_error(TRIT_ERR_FORMAT, "gguf: key '%s' at byte %" PRIu64 " has type %s, not %s", key, kv->offset,
                      gguf_value_type_name(kv->type), want);
}

enum trit_status gguf_get_u64(const struct gguf_file *f, const char *key, uint64_t *out) {
    const struct gguf_kv *kv;
    TRIT_TRY(getter_kv(f, key, out, &kv));
    if (is_unsigned_int(kv->type)) {
        *out = kv->v.u64;
        return TRIT_OK;
    }
    if (is_signed_int(kv->type)) {
        if (kv->v.i64 < 0)
            return trit_error(TRIT_ERR_FORMAT, "gguf: key '%s' at byte %" PRIu64 " is %" PRId64 ", negative where an unsigned value is expected",
                              key, kv->offset, kv->v.i64);
        *out = (uint64_t)kv->v.i64;
        return TRIT_OK;
    }
    return wrong_type(kv, key, "an integer");
}

enum trit_status gguf_get_i64(const struct gguf_file *f, const char *key, int64_t *out) {
    const struct gguf_kv *kv;
    TRIT_TRY(getter_kv(f, key, out, &kv));
    if (is_signed_int(kv->type)) {
        *out = kv->v.i64;
        return TRIT_OK;
    }
    if (is_unsigned_int(kv->type)) {
        if (kv->v.u64 > (uint64_t)INT64_MAX)
            return trit_error(TRIT_ERR_FORMAT, "gguf: key '%s' at byte %" PRIu64 " is %" PRIu64 ", too large for int64",
                              key, kv->offset, kv->v.u64);
        *out = (int64_t)kv->v.u64;
        return TRIT_OK;
    }
    return wrong_type(kv, key, "an integer");
}

enum trit_status gguf_get_f64(const struct gguf_file *f, const char *key, double *out) {
    const struct gguf_kv *kv;
    TRIT_TRY(getter_kv(f, key, out, &kv));
    if (!is_float(kv->type)) return wrong_type(kv, key, "a float");
    *out = kv->v.f64;
    return TRIT_OK;
}

enum trit_status gguf_get_bool(const struct gguf_file *f, const char *key, bool *out) {
    const struct gguf_kv *kv;
    TRIT_TRY(getter_kv(f, key, out, &kv));
    if (kv->type != GGUF_TYPE_BOOL) return wrong_type(kv, key, "bool");
    *out = kv->v.u64 != 0;
    return TRIT_OK;
}

enum trit_status gguf_get_str(const struct gguf_file *f, const char *key, char *buf, size_t buf_size) {
    const struct gguf_kv *kv;
    TRIT_TRY(getter_kv(f, key, buf, &kv));
    if (kv->type != GGUF_TYPE_STRING) return wrong_type(kv, key, "string");
    if (kv->str.len >= buf_size)
        return trit_error(TRIT_ERR_FORMAT, "gguf: string '%s' at byte %" PRIu64 " is %" PRIu64 " bytes, more than the %zu-byte buffer holds",
                          key, kv->offset, kv->str.len, buf_size);
    /* A NUL inside would silently shorten the C string. */
    if (kv->str.len && memchr(kv->str.ptr, 0, kv->str.len))
        return trit_error(TRIT_ERR_FORMAT, "gguf: string '%s' at byte %" PRIu64 " contains a NUL byte", key, kv->offset);
    memcpy(buf, kv->str.ptr, kv->str.len);
    buf[kv->str.len] = '\0';
    return TRIT_OK;
}

struct gguf_str gguf_arr_str(const struct gguf_kv *kv, uint64_t index) {
    struct gguf_str s = {0, NULL};
    if (!kv || kv->type != GGUF_TYPE_ARRAY || kv->arr_type != GGUF_TYPE_STRING || index >= kv->arr_n ||
        !kv->arr_str_off)
        return s;
    const uint8_t *p = kv->arr_data + kv->arr_str_off[index];
    memcpy(&s.len, p, 8);
    s.ptr = (const char *)(p + 8);
    return s;
}

double gguf_arr_f64(const struct gguf_kv *kv, uint64_t index) {
    if (!kv || kv->type != GGUF_TYPE_ARRAY || index >= kv->arr_n) return NAN;
    enum gguf_type t = kv->arr_type;
    uint64_t es = gguf_value_size(t);
    if (es == 0) return NAN;
    uint64_t u = 0;
    int64_t i = 0;
    double d = NAN;
    decode_scalar(t, kv->arr_data + index * es, &u, &i, &d);
    if (is_float(t)) return d;
    if (is_signed_int(t)) return (double)i;
    return (double)u;
}

int64_t gguf_arr_i64(const struct gguf_kv *kv, uint64_t index) {
    if (!kv || kv->type != GGUF_TYPE_ARRAY || index >= kv->arr_n) return 0;
    enum gguf_type t = kv->arr_type;
    if (!is_signed_int(t) && !is_unsigned_int(t) && t != GGUF_TYPE_BOOL) return 0;
    uint64_t es = gguf_value_size(t);
    uint64_t u = 0;
    int64_t i = 0;
    double d = 0;
    decode_scalar(t, kv->arr_data + index * es, &u, &i, &d);
    if (is_signed_int(t)) return i;
    return u > (uint64_t)INT64_MAX ? INT64_MAX : (int64_t)u;
}
