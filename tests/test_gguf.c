// labels: unit
/*
 * test_gguf.c: the GGUF reader and writer.
 *   - round trips through the writer: every metadata type, arrays of every scalar type and of strings,
 *     tensors of several types and shapes, default and custom alignment, to memory and to a mapped file;
 *   - the llama.cpp vocabulary files in tests/data/tokenizers (written by gguf-py, not by us);
 *   - malformed files, built byte by byte so each offset is known (overlapping tensor data among
 *     them): every one must give TRIT_ERR_FORMAT with a message that names the byte or the entry,
 *     and nothing may crash (run it under -DTRIT_SANITIZE=ON too);
 *   - every prefix of a valid file.
 *
 *   ctest --test-dir build -R test_gguf --output-on-failure
 */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/core.h"
#include "io/gguf.h"
#include "model/model.h"
#include "support.h"

/* ---- helpers -------------------------------------------------------------------------------- */

/* A byte builder for hand-made files (little-endian host, as the library requires). */
struct fb {
    uint8_t d[4096];
    size_t n;
};
static void fb_raw(struct fb *b, const void *p, size_t n) {
    cr_assert_leq(b->n + n, sizeof b->d);
    memcpy(b->d + b->n, p, n);
    b->n += n;
}
static void fb_u8(struct fb *b, uint8_t v) { fb_raw(b, &v, 1); }
static void fb_u32(struct fb *b, uint32_t v) { fb_raw(b, &v, 4); }
static void fb_i32(struct fb *b, int32_t v) { fb_raw(b, &v, 4); }
static void fb_u64(struct fb *b, uint64_t v) { fb_raw(b, &v, 8); }
static void fb_i64(struct fb *b, int64_t v) { fb_raw(b, &v, 8); }
static void fb_str(struct fb *b, const char *s) {
    fb_u64(b, strlen(s));
    fb_raw(b, s, strlen(s));
}
static void fb_pad(struct fb *b, size_t align) {
    while (b->n % align) fb_u8(b, 0);
}
static void fb_header(struct fb *b, uint32_t version, int64_t n_tensors, int64_t n_kv) {
    b->n = 0;
    fb_raw(b, "GGUF", 4);
    fb_u32(b, version);
    fb_i64(b, n_tensors);
    fb_i64(b, n_kv);
}
/* key + u32 value */
static void fb_kv_u32(struct fb *b, const char *key, uint32_t v) {
    fb_str(b, key);
    fb_i32(b, GGUF_TYPE_UINT32);
    fb_u32(b, v);
}
/* A tensor info with n_dims dims. */
static void fb_tensor(struct fb *b, const char *name, uint32_t n_dims, const int64_t *ne, int32_t type,
                      uint64_t offset) {
    fb_str(b, name);
    fb_u32(b, n_dims);
    for (uint32_t d = 0; d < n_dims; d++) fb_i64(b, ne[d]);
    fb_i32(b, type);
    fb_u64(b, offset);
}

/* Parses a copy of exactly n bytes (so that ASan sees any read past the end) and returns the status.
 * On failure the output struct must be left zeroed. */
static enum trit_status parse_copy(const uint8_t *d, size_t n, struct gguf_file *f) {
    uint8_t *copy = n ? malloc(n) : NULL;
    if (n) memcpy(copy, d, n);
    enum trit_status st = gguf_open_memory(copy, n, f);
    if (st != TRIT_OK) {
        struct gguf_file zero;
        memset(&zero, 0, sizeof zero);
        cr_assert_eq(memcmp(f, &zero, sizeof zero), 0, "failed parse left a non-zero gguf_file");
    }
    /* The caller only looks at the status and message: the file never outlives the copy. */
    gguf_close(f);
    free(copy);
    return st;
}

/* The file in b must fail with TRIT_ERR_FORMAT and a message containing `needle`. */
static void expect_format(const struct fb *b, const char *needle) {
    struct gguf_file f;
    enum trit_status st = parse_copy(b->d, b->n, &f);
    cr_assert_eq(st, TRIT_ERR_FORMAT, "expected TRIT_ERR_FORMAT for '%s', got %s (%s)", needle, trit_status_str(st),
                 trit_last_error());
    cr_assert(strstr(trit_last_error(), needle) != NULL, "message '%s' does not contain '%s'", trit_last_error(),
              needle);
    cr_assert(strncmp(trit_last_error(), "gguf: ", 6) == 0, "message '%s'", trit_last_error());
}

static void fill_random(struct test_rng *rng, void *p, size_t n) {
    uint8_t *b = p;
    for (size_t i = 0; i < n; i++) b[i] = (uint8_t)test_rng_u64(rng);
}

static bool gstr_eq(struct gguf_str s, const char *c) {
    return s.len == strlen(c) && memcmp(s.ptr, c, s.len) == 0;
}

/* ---- type table ----------------------------------------------------------------------------- */

Test(gguf, type_sizes_match_ggml) {
    /* (id, block, bytes): gguf-py GGML_QUANT_SIZES, as listed in the issue. */
    static const uint32_t expect[][3] = {
        {0, 1, 4},     {1, 1, 2},     {30, 1, 2},    {28, 1, 8},    {24, 1, 1},    {25, 1, 2},
        {26, 1, 4},    {27, 1, 8},    {2, 32, 18},   {3, 32, 20},   {6, 32, 22},   {7, 32, 24},
        {8, 32, 34},   {9, 32, 36},   {10, 256, 84}, {11, 256, 110}, {12, 256, 144}, {13, 256, 176},
        {14, 256, 210}, {15, 256, 292}, {34, 256, 54}, {35, 256, 66},
    };
    for (size_t i = 0; i < sizeof expect / sizeof expect[0]; i++) {
        uint32_t blck = 99, size = 99;
        cr_assert(gguf_type_traits(expect[i][0], &blck, &size), "type %u unknown", expect[i][0]);
        cr_assert_eq(blck, expect[i][1], "type %u block", expect[i][0]);
        cr_assert_eq(size, expect[i][2], "type %u size", expect[i][0]);
    }
    int64_t ne[4] = {512, 3, 2, 1};
    cr_assert_eq(gguf_tensor_bytes(GGML_TYPE_TQ2_0, ne), 2 * 3 * 2 * 66);
    cr_assert_eq(gguf_tensor_bytes(GGML_TYPE_TQ1_0, ne), 2 * 3 * 2 * 54);
    cr_assert_eq(gguf_tensor_bytes(GGML_TYPE_I2_S_BITNET, ne), 512 * 3 * 2 / 4 + 32);
    int64_t odd[4] = {100, 1, 1, 1};
    cr_assert_eq(gguf_tensor_bytes(GGML_TYPE_TQ2_0, odd), 0, "ne[0] not a multiple of the block");
    cr_assert_eq(gguf_tensor_bytes(39, ne), 0, "39 is ambiguous (MXFP4 / TL2)");
    cr_assert(!gguf_type_traits(36, NULL, NULL));
    cr_assert(!gguf_type_traits(4, NULL, NULL), "Q4_2 was removed: no size");

    cr_assert_str_eq(gguf_type_name(GGML_TYPE_TQ2_0, false), "TQ2_0");
    cr_assert_str_eq(gguf_type_name(36, true), "I2_S");
    cr_assert_str_eq(gguf_type_name(39, true), "TL2");
    cr_assert_str_eq(gguf_type_name(39, false), "MXFP4");
    cr_assert_str_eq(gguf_type_name(1000, false), "type1000");
    cr_assert_str_eq(gguf_type_name(0xffffffffu, true), "type4294967295");
}

/* ---- round trip ----------------------------------------------------------------------------- */

#define N_SCALAR_TYPES 11
static const enum gguf_type scalar_types[N_SCALAR_TYPES] = {
    GGUF_TYPE_UINT8,  GGUF_TYPE_INT8,   GGUF_TYPE_UINT16, GGUF_TYPE_INT16,  GGUF_TYPE_UINT32, GGUF_TYPE_INT32,
    GGUF_TYPE_FLOAT32, GGUF_TYPE_BOOL, GGUF_TYPE_UINT64, GGUF_TYPE_INT64, GGUF_TYPE_FLOAT64,
};

struct rt_tensor {
    const char *name;
    uint32_t type;
    uint32_t n_dims;
    int64_t ne[4];
    uint64_t n_bytes;
    uint8_t *data;
};

/* Everything the round-trip file holds, to compare against after reading it back. */
struct rt_model {
    uint8_t scalar[N_SCALAR_TYPES][8]; /* one value per type, host representation */
    uint8_t arr[N_SCALAR_TYPES][9 * 8];
    uint64_t arr_n[N_SCALAR_TYPES];
    const char *strs[5];
    struct rt_tensor t[7];
    size_t n_t;
};

/* A random scalar of type t into p; floats are finite, bools are 0/1. */
static void random_scalar(struct test_rng *rng, enum gguf_type t, uint8_t *p) {
    uint64_t sz = gguf_value_size(t);
    fill_random(rng, p, sz);
    if (t == GGUF_TYPE_BOOL) p[0] &= 1;
    if (t == GGUF_TYPE_FLOAT32) {
        float v = test_rng_uniform(rng, -1e6f, 1e6f);
        memcpy(p, &v, 4);
    }
    if (t == GGUF_TYPE_FLOAT64) {
        double v = (double)test_rng_normal(rng) * 1e100;
        memcpy(p, &v, 8);
    }
}

static void rt_build(struct test_rng *rng, struct rt_model *m, struct gguf_writer *w, uint32_t alignment) {
    char key[64];
    cr_assert_eq(gguf_writer_set_str(w, "general.architecture", "llama"), TRIT_OK);
    if (alignment) cr_assert_eq(gguf_writer_set_u32(w, "general.alignment", alignment), TRIT_OK);
    for (int i = 0; i < N_SCALAR_TYPES; i++) {
        enum gguf_type t = scalar_types[i];
        random_scalar(rng, t, m->scalar[i]);
        snprintf(key, sizeof key, "test.scalar.%s", gguf_value_type_name(t));
        cr_assert_eq(gguf_writer_set_val(w, key, t, m->scalar[i]), TRIT_OK);
        m->arr_n[i] = (uint64_t)test_rng_int(rng, 1, 9);
        for (uint64_t j = 0; j < m->arr_n[i]; j++) random_scalar(rng, t, m->arr[i] + j * gguf_value_size(t));
        snprintf(key, sizeof key, "test.array.%s", gguf_value_type_name(t));
        cr_assert_eq(gguf_writer_set_arr(w, key, t, m->arr[i], m->arr_n[i]), TRIT_OK);
    }
    static const char *const strs[5] = {"<unk>", "", "h\xc3\xa9llo w\xc3\xb6rld", "\xe2\x96\x81the", "a b\tc"};
    memcpy(m->strs, strs, sizeof strs);
    cr_assert_eq(gguf_writer_set_arr_str(w, "test.array.string", m->strs, 5), TRIT_OK);
    cr_assert_eq(gguf_writer_set_arr(w, "test.array.empty", GGUF_TYPE_INT32, NULL, 0), TRIT_OK);
    cr_assert_eq(gguf_writer_set_str(w, "test.string", "h\xc3\xa9llo"), TRIT_OK);
    cr_assert_eq(gguf_writer_set_str(w, "test.string.empty", ""), TRIT_OK);
    /* the named setters, and replacement of an existing key in place */
    cr_assert_eq(gguf_writer_set_u32(w, "test.named.u32", 7), TRIT_OK);
    cr_assert_eq(gguf_writer_set_u32(w, "test.named.u32", 0xdeadbeefu), TRIT_OK);
    cr_assert_eq(gguf_writer_set_i32(w, "test.named.i32", -5), TRIT_OK);
    cr_assert_eq(gguf_writer_set_u64(w, "test.named.u64", UINT64_MAX), TRIT_OK);
    cr_assert_eq(gguf_writer_set_f32(w, "test.named.f32", 0.25f), TRIT_OK);
    cr_assert_eq(gguf_writer_set_bool(w, "test.named.bool", true), TRIT_OK);

    /* Shapes: odd sizes, a 4-D tensor, a ternary TQ2_0 with ne[0] a multiple of 256. */
    static const struct rt_tensor shapes[] = {
        {"token_embd.weight", GGML_TYPE_F16, 2, {5, 7, 1, 1}, 0, NULL},
        {"blk.0.attn_q.weight", GGML_TYPE_TQ2_0, 2, {512, 3, 1, 1}, 0, NULL},
        {"blk.0.attn_norm.weight", GGML_TYPE_F32, 1, {7, 1, 1, 1}, 0, NULL},
        {"blk.0.ffn_up.weight", GGML_TYPE_Q8_0, 2, {64, 3, 1, 1}, 0, NULL},
        {"test.i8", GGML_TYPE_I8, 3, {13, 1, 2, 1}, 0, NULL},
        {"test.bf16.4d", GGML_TYPE_BF16, 4, {3, 1, 2, 2}, 0, NULL},
        {"test.empty", GGML_TYPE_F32, 2, {0, 4, 1, 1}, 0, NULL},
    };
    m->n_t = sizeof shapes / sizeof shapes[0];
    for (size_t i = 0; i < m->n_t; i++) {
        m->t[i] = shapes[i];
        m->t[i].n_bytes = gguf_tensor_bytes(shapes[i].type, shapes[i].ne);
        m->t[i].data = malloc(m->t[i].n_bytes + 1);
        fill_random(rng, m->t[i].data, m->t[i].n_bytes);
        cr_assert_eq(gguf_writer_add_tensor(w, m->t[i].name, m->t[i].type, m->t[i].n_dims, m->t[i].ne, m->t[i].data,
                                            m->t[i].n_bytes),
                     TRIT_OK, "%s", trit_last_error());
    }
    cr_assert_eq(m->t[1].n_bytes, 2 * 3 * 66);
    cr_assert_eq(m->t[3].n_bytes, 2 * 3 * 34);
}

static void rt_free(struct rt_model *m) {
    for (size_t i = 0; i < m->n_t; i++) free(m->t[i].data);
}

static void rt_check(const struct rt_model *m, const struct gguf_file *f, uint64_t alignment) {
    char key[64], buf[64];
    cr_assert_eq(f->version, 3);
    cr_assert_eq(f->alignment, alignment);
    cr_assert_eq(f->data_offset % alignment, 0);
    cr_assert_eq(f->n_kv, 1 + (alignment != 32) + 2 * N_SCALAR_TYPES + 2 + 2 + 5);
    cr_assert_eq(f->n_tensors, (int64_t)m->n_t);
    cr_assert(!f->bitnet_ids);
    cr_assert_eq(gguf_get_str(f, "general.architecture", buf, sizeof buf), TRIT_OK);
    cr_assert_str_eq(buf, "llama");

    for (int i = 0; i < N_SCALAR_TYPES; i++) {
        enum gguf_type t = scalar_types[i];
        uint64_t sz = gguf_value_size(t);
        snprintf(key, sizeof key, "test.scalar.%s", gguf_value_type_name(t));
        const struct gguf_kv *kv = gguf_find_kv(f, key);
        cr_assert_not_null(kv, "%s", key);
        cr_assert_eq(kv->type, t);
        /* Compare through the public getters against the bytes we wrote. */
        if (t == GGUF_TYPE_FLOAT32) {
            float want;
            double got;
            memcpy(&want, m->scalar[i], 4);
            cr_assert_eq(gguf_get_f64(f, key, &got), TRIT_OK);
            cr_assert_eq(got, (double)want);
        } else if (t == GGUF_TYPE_FLOAT64) {
            double want, got;
            memcpy(&want, m->scalar[i], 8);
            cr_assert_eq(gguf_get_f64(f, key, &got), TRIT_OK);
            cr_assert_eq(got, want);
        } else if (t == GGUF_TYPE_BOOL) {
            bool got;
            cr_assert_eq(gguf_get_bool(f, key, &got), TRIT_OK);
            cr_assert_eq(got, m->scalar[i][0] != 0);
        } else {
            /* the value's low bytes must match what was written */
            uint64_t raw = 0;
            memcpy(&raw, &kv->v.u64, sz);
            cr_assert_eq(memcmp(&raw, m->scalar[i], sz), 0, "%s", key);
        }

        snprintf(key, sizeof key, "test.array.%s", gguf_value_type_name(t));
        kv = gguf_find_kv(f, key);
        cr_assert_not_null(kv, "%s", key);
        cr_assert_eq(kv->type, GGUF_TYPE_ARRAY);
        cr_assert_eq(kv->arr_type, t);
        cr_assert_eq(kv->arr_n, m->arr_n[i]);
        cr_assert_eq(memcmp(kv->arr_data, m->arr[i], m->arr_n[i] * sz), 0, "%s bytes", key);
        for (uint64_t j = 0; j < kv->arr_n; j++) {
            uint64_t u = 0;
            memcpy(&u, m->arr[i] + j * sz, sz);
            if (t == GGUF_TYPE_FLOAT32) {
                float v;
                memcpy(&v, &u, 4);
                cr_assert_eq(gguf_arr_f64(kv, j), (double)v);
                cr_assert_eq(gguf_arr_i64(kv, j), 0, "float arrays have no i64 view");
            } else if (t == GGUF_TYPE_FLOAT64) {
                double v;
                memcpy(&v, &u, 8);
                cr_assert_eq(gguf_arr_f64(kv, j), v);
            } else if (t == GGUF_TYPE_INT8 || t == GGUF_TYPE_INT16 || t == GGUF_TYPE_INT32 || t == GGUF_TYPE_INT64) {
                int64_t v = (int64_t)(u << (64 - 8 * sz)) >> (64 - 8 * sz); /* sign-extend */
                cr_assert_eq(gguf_arr_i64(kv, j), v, "%s[%llu]", key, (unsigned long long)j);
                cr_assert_eq(gguf_arr_f64(kv, j), (double)v);
            } else {
                int64_t v = u > (uint64_t)INT64_MAX ? INT64_MAX : (int64_t)u;
                cr_assert_eq(gguf_arr_i64(kv, j), v, "%s[%llu]", key, (unsigned long long)j);
            }
        }
        cr_assert(isnan(gguf_arr_f64(kv, kv->arr_n)), "index past the end");
        cr_assert_eq(gguf_arr_str(kv, 0).ptr, NULL, "not a string array");
    }

    const struct gguf_kv *kv = gguf_find_kv(f, "test.array.string");
    cr_assert_not_null(kv);
    cr_assert_eq(kv->arr_type, GGUF_TYPE_STRING);
    cr_assert_eq(kv->arr_n, 5);
    for (uint64_t j = 0; j < 5; j++) cr_assert(gstr_eq(gguf_arr_str(kv, j), m->strs[j]), "string %llu", (unsigned long long)j);
    cr_assert_eq(gguf_arr_str(kv, 5).ptr, NULL);
    kv = gguf_find_kv(f, "test.array.empty");
    cr_assert_not_null(kv);
    cr_assert_eq(kv->arr_n, 0);
    cr_assert_eq(kv->arr_type, GGUF_TYPE_INT32);
    cr_assert_eq(gguf_get_str(f, "test.string", buf, sizeof buf), TRIT_OK);
    cr_assert_str_eq(buf, "h\xc3\xa9llo");
    cr_assert_eq(gguf_get_str(f, "test.string.empty", buf, sizeof buf), TRIT_OK);
    cr_assert_str_eq(buf, "");

    uint64_t u;
    int64_t i;
    double d;
    bool b;
    cr_assert_eq(gguf_get_u64(f, "test.named.u32", &u), TRIT_OK);
    cr_assert_eq(u, 0xdeadbeefu, "the second set replaced the first");
    cr_assert_eq(gguf_get_i64(f, "test.named.i32", &i), TRIT_OK);
    cr_assert_eq(i, -5);
    cr_assert_eq(gguf_get_u64(f, "test.named.u64", &u), TRIT_OK);
    cr_assert_eq(u, UINT64_MAX);
    cr_assert_eq(gguf_get_f64(f, "test.named.f32", &d), TRIT_OK);
    cr_assert_eq(d, 0.25);
    cr_assert_eq(gguf_get_bool(f, "test.named.bool", &b), TRIT_OK);
    cr_assert(b);

    for (size_t k = 0; k < m->n_t; k++) {
        const struct rt_tensor *want = &m->t[k];
        const struct gguf_tensor_info *t = gguf_find_tensor(f, want->name);
        cr_assert_not_null(t, "%s", want->name);
        cr_assert_eq(t, &f->tensors[k], "file order kept");
        cr_assert_eq(t->type, want->type);
        cr_assert_eq(t->n_dims, want->n_dims);
        for (int dd = 0; dd < 4; dd++) cr_assert_eq(t->ne[dd], want->ne[dd], "%s ne[%d]", want->name, dd);
        cr_assert_eq(t->n_bytes, want->n_bytes, "%s", want->name);
        cr_assert_eq(t->offset % alignment, 0);
        if (want->n_bytes == 0) {
            cr_assert_null(t->data);
            continue;
        }
        cr_assert_not_null(t->data);
        cr_assert_eq((uint64_t)(t->data - f->map) % alignment, 0, "%s data aligned in the map", want->name);
        cr_assert_eq(memcmp(t->data, want->data, want->n_bytes), 0, "%s data", want->name);
        /* the reader must not copy: data points into the map */
        cr_assert(t->data >= f->map && t->data + t->n_bytes <= f->map + f->size);
    }
    cr_assert_null(gguf_find_tensor(f, "missing"));
    cr_assert_null(gguf_find_kv(f, "missing"));
}

/* copy_kv filter: skips the key passed as `user`. */
static bool skip_named(const char *key, void *user) { return strcmp(key, (const char *)user) == 0; }

static void round_trip(uint32_t alignment) {
    struct test_rng rng;
    test_rng_seed(&rng, 0x6775u + alignment);
    struct gguf_writer *w;
    cr_assert_eq(gguf_writer_init(&w), TRIT_OK);
    struct rt_model m;
    memset(&m, 0, sizeof m);
    rt_build(&rng, &m, w, alignment);
    uint64_t align = alignment ? alignment : GGUF_DEFAULT_ALIGNMENT;

    /* in memory */
    uint8_t *buf;
    uint64_t size;
    cr_assert_eq(gguf_writer_write_mem(w, &buf, &size), TRIT_OK);
    struct gguf_file f;
    cr_assert_eq(gguf_open_memory(buf, size, &f), TRIT_OK, "%s", trit_last_error());
    cr_assert_eq(size % align, 0, "padding after the last tensor");
    rt_check(&m, &f, align);

    /* through a file and mmap; the same bytes */
    char path[512];
    snprintf(path, sizeof path, "%s/test_gguf_rt_%d_%u.gguf", TRIT_BINARY_DIR, (int)getpid(), alignment);
    cr_assert_eq(gguf_writer_write(w, path), TRIT_OK, "%s", trit_last_error());
    struct gguf_file g;
    cr_assert_eq(gguf_open(path, &g), TRIT_OK, "%s", trit_last_error());
    cr_assert(g.owns_map);
    cr_assert_eq(g.size, size);
    cr_assert_eq(memcmp(g.map, buf, size), 0);
    rt_check(&m, &g, align);

    /* copy_kv: every pair but one, byte for byte */
    struct gguf_writer *w2;
    cr_assert_eq(gguf_writer_init(&w2), TRIT_OK);
    char skip_key[] = "test.string";
    cr_assert_eq(gguf_writer_copy_kv(w2, &g, skip_named, skip_key), TRIT_OK);
    uint8_t *buf2;
    uint64_t size2;
    cr_assert_eq(gguf_writer_write_mem(w2, &buf2, &size2), TRIT_OK);
    struct gguf_file h;
    cr_assert_eq(gguf_open_memory(buf2, size2, &h), TRIT_OK, "%s", trit_last_error());
    cr_assert_eq(h.n_kv, g.n_kv - 1);
    cr_assert_eq(h.n_tensors, 0);
    cr_assert_null(gguf_find_kv(&h, "test.string"));
    for (int64_t k = 0, j = 0; k < g.n_kv; k++) {
        if (gstr_eq(g.kv[k].key, "test.string")) continue;
        const struct gguf_kv *a = &g.kv[k], *c = &h.kv[j++];
        cr_assert_eq(a->key.len, c->key.len);
        cr_assert_eq(memcmp(a->key.ptr, c->key.ptr, a->key.len), 0);
        /* same encoded value: the bytes from the type tag to the next key */
        uint64_t a_end = k + 1 < g.n_kv ? g.kv[k + 1].offset : (g.n_tensors ? g.data_offset : g.size);
        uint64_t c_end = j < h.n_kv ? h.kv[j].offset : h.size;
        uint64_t a_val = a->offset + 8 + a->key.len, c_val = c->offset + 8 + c->key.len;
        if (k + 1 < g.n_kv) {
            cr_assert_eq(a_end - a_val, c_end - c_val, "value size of key %lld", (long long)k);
            cr_assert_eq(memcmp(g.map + a_val, h.map + c_val, a_end - a_val), 0, "value of key %lld", (long long)k);
        }
        cr_assert_eq(a->type, c->type);
    }
    gguf_close(&h);
    trit_free(buf2);
    gguf_writer_free(w2);

    gguf_close(&g);
    gguf_close(&g); /* closing twice is harmless: the struct was zeroed */
    unlink(path);
    gguf_close(&f);
    trit_free(buf);
    gguf_writer_free(w);
    rt_free(&m);
}

Test(gguf, round_trip_default_alignment) { round_trip(0); }
Test(gguf, round_trip_alignment_64) { round_trip(64); }
Test(gguf, round_trip_alignment_1) { round_trip(1); }

/* Type 36 is I2_S only in bitnet.cpp's architectures; elsewhere it is kept with no data. */
static void i2s_file(const char *arch, uint8_t **buf, uint64_t *size) {
    struct gguf_writer *w;
    cr_assert_eq(gguf_writer_init(&w), TRIT_OK);
    cr_assert_eq(gguf_writer_set_str(w, "general.architecture", arch), TRIT_OK);
    static uint8_t data[128 * 4 / 4 + 32];
    memset(data, 0x5a, sizeof data);
    int64_t ne[2] = {128, 4};
    cr_assert_eq(gguf_writer_add_tensor(w, "blk.0.attn_q.weight", GGML_TYPE_I2_S_BITNET, 2, ne, data, sizeof data),
                 TRIT_OK, "%s", trit_last_error());
    cr_assert_eq(gguf_writer_add_tensor(w, "mystery", 99, 2, ne, data, 16), TRIT_OK);
    cr_assert_eq(gguf_writer_write_mem(w, buf, size), TRIT_OK);
    gguf_writer_free(w);
}

Test(gguf, i2s_depends_on_architecture) {
    const char *archs[3] = {"bitnet-b1.58", "bitnet-25", "bitnet"};
    for (int a = 0; a < 3; a++) {
        uint8_t *buf;
        uint64_t size;
        i2s_file(archs[a], &buf, &size);
        struct gguf_file f;
        cr_assert_eq(gguf_open_memory(buf, size, &f), TRIT_OK, "%s", trit_last_error());
        const struct gguf_tensor_info *t = gguf_find_tensor(&f, "blk.0.attn_q.weight");
        cr_assert_not_null(t);
        bool bitnet = a < 2;
        cr_assert_eq(f.bitnet_ids, bitnet, "%s", archs[a]);
        cr_assert_eq(t->n_bytes, bitnet ? 128 * 4 / 4 + 32 : 0, "%s", archs[a]);
        cr_assert_eq(t->data != NULL, bitnet);
        if (bitnet) cr_assert_eq(t->data[0], 0x5a);
        cr_assert_str_eq(gguf_type_name(t->type, f.bitnet_ids), bitnet ? "I2_S" : "IQ4_NL_4_4");
        /* an unknown id is listed by name with no data */
        const struct gguf_tensor_info *u = gguf_find_tensor(&f, "mystery");
        cr_assert_not_null(u);
        cr_assert_eq(u->type, 99);
        cr_assert_eq(u->n_bytes, 0);
        cr_assert_null(u->data);
        gguf_close(&f);
        trit_free(buf);
    }
}

/* ---- real files from llama.cpp -------------------------------------------------------------- */

Test(gguf, llama_spm_vocab) {
    struct gguf_file f;
    const char *path = test_data_path("tokenizers/llama-spm/ggml-vocab-llama-spm.gguf");
    cr_assert_eq(gguf_open(path, &f), TRIT_OK, "%s", trit_last_error());
    char buf[64];
    cr_assert_eq(f.version, 3);
    cr_assert_eq(f.n_tensors, 0);
    cr_assert_eq(f.n_kv, 22);
    cr_assert_eq(gguf_get_str(&f, "general.architecture", buf, sizeof buf), TRIT_OK);
    cr_assert_str_eq(buf, "llama");
    cr_assert_eq(gguf_get_str(&f, "tokenizer.ggml.model", buf, sizeof buf), TRIT_OK);
    cr_assert_str_eq(buf, "llama");
    const struct gguf_kv *tok = gguf_find_kv(&f, "tokenizer.ggml.tokens");
    cr_assert_not_null(tok);
    cr_assert_eq(tok->type, GGUF_TYPE_ARRAY);
    cr_assert_eq(tok->arr_type, GGUF_TYPE_STRING);
    cr_assert_eq(tok->arr_n, 32000);
    cr_assert(gstr_eq(gguf_arr_str(tok, 0), "<unk>"));
    cr_assert(gstr_eq(gguf_arr_str(tok, 1), "<s>"));
    cr_assert(gstr_eq(gguf_arr_str(tok, 2), "</s>"));
    cr_assert(gstr_eq(gguf_arr_str(tok, 3), "<0x00>"));
    const struct gguf_kv *scores = gguf_find_kv(&f, "tokenizer.ggml.scores");
    cr_assert_not_null(scores);
    cr_assert_eq(scores->arr_type, GGUF_TYPE_FLOAT32);
    cr_assert_eq(scores->arr_n, 32000);
    const struct gguf_kv *types = gguf_find_kv(&f, "tokenizer.ggml.token_type");
    cr_assert_eq(types->arr_type, GGUF_TYPE_INT32);
    cr_assert_eq(gguf_arr_i64(types, 0), 2, "<unk> is UNKNOWN (2)");
    cr_assert_eq(gguf_arr_i64(types, 1), 3, "<s> is CONTROL (3)");
    uint64_t u;
    cr_assert_eq(gguf_get_u64(&f, "tokenizer.ggml.bos_token_id", &u), TRIT_OK);
    cr_assert_eq(u, 1);
    cr_assert_eq(gguf_get_u64(&f, "llama.vocab_size", &u), TRIT_OK);
    cr_assert_eq(u, 32000);
    bool b;
    cr_assert_eq(gguf_get_bool(&f, "tokenizer.ggml.add_bos_token", &b), TRIT_OK);
    cr_assert(b);
    double eps;
    cr_assert_eq(gguf_get_f64(&f, "llama.attention.layer_norm_rms_epsilon", &eps), TRIT_OK);
    cr_assert_float_eq(eps, 1e-5, 1e-12);
    gguf_close(&f);
}

Test(gguf, gpt2_vocab) {
    struct gguf_file f;
    const char *path = test_data_path("tokenizers/gpt2/ggml-vocab-gpt-2.gguf");
    cr_assert_eq(gguf_open(path, &f), TRIT_OK, "%s", trit_last_error());
    char buf[64];
    cr_assert_eq(f.n_tensors, 0);
    cr_assert_eq(gguf_get_str(&f, "general.architecture", buf, sizeof buf), TRIT_OK);
    cr_assert_str_eq(buf, "gpt2");
    cr_assert_eq(gguf_get_str(&f, "tokenizer.ggml.model", buf, sizeof buf), TRIT_OK);
    cr_assert_str_eq(buf, "gpt2");
    const struct gguf_kv *tok = gguf_find_kv(&f, "tokenizer.ggml.tokens");
    cr_assert_eq(tok->arr_n, 50257);
    cr_assert(gstr_eq(gguf_arr_str(tok, 0), "!"));
    cr_assert(gstr_eq(gguf_arr_str(tok, 50256), "<|endoftext|>"));
    const struct gguf_kv *merges = gguf_find_kv(&f, "tokenizer.ggml.merges");
    cr_assert_eq(merges->arr_n, 50000);
    cr_assert(gstr_eq(gguf_arr_str(merges, 0), "\xc4\xa0 t"), "first merge is 'Ġ t'");
    uint64_t eos;
    cr_assert_eq(gguf_get_u64(&f, "tokenizer.ggml.eos_token_id", &eos), TRIT_OK);
    cr_assert_eq(eos, 50256);
    gguf_close(&f);
}

/* ---- getters -------------------------------------------------------------------------------- */

Test(gguf, getters_check_types) {
    struct fb b;
    fb_header(&b, 3, 0, 6);
    fb_str(&b, "s");
    fb_i32(&b, GGUF_TYPE_STRING);
    fb_str(&b, "hello");
    fb_str(&b, "neg");
    fb_i32(&b, GGUF_TYPE_INT8);
    fb_u8(&b, 0xff); /* -1 */
    fb_str(&b, "big");
    fb_i32(&b, GGUF_TYPE_UINT64);
    fb_u64(&b, UINT64_MAX);
    fb_str(&b, "f");
    fb_i32(&b, GGUF_TYPE_FLOAT32);
    float fv = 1.5f;
    fb_raw(&b, &fv, 4);
    fb_str(&b, "nul");
    fb_i32(&b, GGUF_TYPE_STRING);
    fb_u64(&b, 3);
    fb_raw(&b, "a\0b", 3);
    fb_str(&b, "arr");
    fb_i32(&b, GGUF_TYPE_ARRAY);
    fb_i32(&b, GGUF_TYPE_UINT16);
    fb_u64(&b, 2);
    fb_u32(&b, 0x00020001u);

    struct gguf_file f;
    cr_assert_eq(gguf_open_memory(b.d, b.n, &f), TRIT_OK, "%s", trit_last_error());
    uint64_t u;
    int64_t i;
    double d;
    bool bo;
    char buf[8];
    cr_assert_eq(gguf_get_u64(&f, "s", &u), TRIT_ERR_FORMAT);
    cr_assert(strstr(trit_last_error(), "'s'") && strstr(trit_last_error(), "string"), "%s", trit_last_error());
    cr_assert_eq(gguf_get_i64(&f, "s", &i), TRIT_ERR_FORMAT);
    cr_assert_eq(gguf_get_f64(&f, "s", &d), TRIT_ERR_FORMAT);
    cr_assert_eq(gguf_get_bool(&f, "s", &bo), TRIT_ERR_FORMAT);
    cr_assert_eq(gguf_get_str(&f, "neg", buf, sizeof buf), TRIT_ERR_FORMAT);
    cr_assert_eq(gguf_get_u64(&f, "absent", &u), TRIT_ERR_NOT_FOUND);
    cr_assert_eq(gguf_get_u64(&f, "neg", &u), TRIT_ERR_FORMAT, "-1 does not fit u64");
    cr_assert_eq(gguf_get_i64(&f, "neg", &i), TRIT_OK);
    cr_assert_eq(i, -1);
    cr_assert_eq(gguf_get_i64(&f, "big", &i), TRIT_ERR_FORMAT, "UINT64_MAX does not fit i64");
    cr_assert_eq(gguf_get_u64(&f, "big", &u), TRIT_OK);
    cr_assert_eq(u, UINT64_MAX);
    cr_assert_eq(gguf_get_f64(&f, "f", &d), TRIT_OK);
    cr_assert_eq(d, 1.5);
    cr_assert_eq(gguf_get_u64(&f, "f", &u), TRIT_ERR_FORMAT);
    cr_assert_eq(gguf_get_str(&f, "s", buf, 5), TRIT_ERR_FORMAT, "5 bytes + NUL do not fit in 5");
    cr_assert_eq(gguf_get_str(&f, "s", buf, 6), TRIT_OK);
    cr_assert_str_eq(buf, "hello");
    cr_assert_eq(gguf_get_str(&f, "nul", buf, sizeof buf), TRIT_ERR_FORMAT, "embedded NUL");
    cr_assert_eq(gguf_get_u64(&f, "arr", &u), TRIT_ERR_FORMAT);
    const struct gguf_kv *arr = gguf_find_kv(&f, "arr");
    cr_assert_eq(gguf_arr_i64(arr, 0), 1);
    cr_assert_eq(gguf_arr_i64(arr, 1), 2);
    cr_assert_eq(gguf_arr_i64(arr, 2), 0, "out of range");
    cr_assert_eq(gguf_arr_i64(gguf_find_kv(&f, "s"), 0), 0, "not an array");
    cr_assert_eq(gguf_get_u64(NULL, "s", &u), TRIT_ERR_INVALID_ARG);
    gguf_close(&f);
}

/* ---- malformed files ------------------------------------------------------------------------ */

Test(gguf, bad_magic_and_versions) {
    struct fb b;
    fb_header(&b, 3, 0, 0);
    memcpy(b.d, "GGML", 4);
    expect_format(&b, "magic");
    fb_header(&b, 1, 0, 0);
    expect_format(&b, "version 1 at byte 4");
    fb_header(&b, 4, 0, 0);
    expect_format(&b, "version 4 at byte 4");
    fb_header(&b, 0, 0, 0);
    expect_format(&b, "version 0 at byte 4");
    /* A big-endian v3 file: version bytes 00 00 00 03. */
    fb_header(&b, 0x03000000u, 0, 0);
    expect_format(&b, "big-endian");
    fb_header(&b, 2, 0, 0);
    struct gguf_file f;
    cr_assert_eq(parse_copy(b.d, b.n, &f), TRIT_OK, "an empty v2 file is valid");
    cr_assert_eq(gguf_open_memory(NULL, 0, &f), TRIT_ERR_FORMAT);
    cr_assert(strstr(trit_last_error(), "byte 0"), "%s", trit_last_error());
}

Test(gguf, huge_counts_fail_before_allocating) {
    struct fb b;
    /* If these were allocated, trit_alloc would fail with OUT_OF_MEMORY, not FORMAT. */
    fb_header(&b, 3, 0, INT64_C(1) << 62);
    expect_format(&b, "metadata count 4611686018427387904 at byte 16");
    fb_header(&b, 3, INT64_C(1) << 62, 0);
    expect_format(&b, "tensor count 4611686018427387904 at byte 8");
    fb_header(&b, 3, 0, -1);
    expect_format(&b, "negative");
    fb_header(&b, 3, -5, 0);
    expect_format(&b, "negative");
    /* counts that fit alone but not together: 2 kvs (26 bytes) + 1 tensor (24) in 40 bytes */
    fb_header(&b, 3, 1, 2);
    for (int k = 0; k < 40; k++) fb_u8(&b, 0);
    expect_format(&b, "tensor count 1 at byte 8");
}

Test(gguf, huge_lengths) {
    struct fb b;
    fb_header(&b, 3, 0, 1);
    fb_u64(&b, UINT64_MAX); /* key length */
    for (int k = 0; k < 20; k++) fb_u8(&b, 0);
    expect_format(&b, "key length 18446744073709551615 at byte 24 exceeds the 20 bytes left");

    fb_header(&b, 3, 0, 1);
    fb_str(&b, "general.name");
    fb_i32(&b, GGUF_TYPE_STRING);
    fb_u64(&b, UINT64_MAX - 3);
    fb_raw(&b, "abc", 3);
    expect_format(&b, "key 'general.name': string length 18446744073709551612 at byte 48 exceeds the 3 bytes left");

    /* array counts: numeric and string */
    fb_header(&b, 3, 0, 1);
    fb_str(&b, "a");
    fb_i32(&b, GGUF_TYPE_ARRAY);
    fb_i32(&b, GGUF_TYPE_UINT32);
    fb_u64(&b, UINT64_C(1) << 61);
    fb_u32(&b, 1);
    expect_format(&b, "array of 2305843009213693952 u32");
    fb_header(&b, 3, 0, 1);
    fb_str(&b, "a");
    fb_i32(&b, GGUF_TYPE_ARRAY);
    fb_i32(&b, GGUF_TYPE_STRING);
    fb_u64(&b, UINT64_MAX);
    fb_str(&b, "x");
    expect_format(&b, "array of 18446744073709551615 strings");
    /* a string element whose length runs past the end */
    fb_header(&b, 3, 0, 1);
    fb_str(&b, "tokens");
    fb_i32(&b, GGUF_TYPE_ARRAY);
    fb_i32(&b, GGUF_TYPE_STRING);
    fb_u64(&b, 2);
    fb_str(&b, "x");
    fb_u64(&b, 1000);
    fb_raw(&b, "yy", 2);
    expect_format(&b, "key 'tokens': string length 1000");
}

Test(gguf, bad_value_types) {
    struct fb b;
    fb_header(&b, 3, 0, 1);
    fb_str(&b, "k");
    fb_i32(&b, 13);
    fb_u64(&b, 0);
    expect_format(&b, "key 'k': unknown value type 13 at byte 33");
    fb_header(&b, 3, 0, 1);
    fb_str(&b, "k");
    fb_i32(&b, -1);
    fb_u64(&b, 0);
    expect_format(&b, "unknown value type -1");
    fb_header(&b, 3, 0, 1);
    fb_str(&b, "nested");
    fb_i32(&b, GGUF_TYPE_ARRAY);
    fb_i32(&b, GGUF_TYPE_ARRAY);
    fb_u64(&b, 1);
    fb_i32(&b, GGUF_TYPE_UINT8);
    fb_u64(&b, 1);
    fb_u8(&b, 7);
    expect_format(&b, "key 'nested': nested array");
    fb_header(&b, 3, 0, 1);
    fb_str(&b, "k");
    fb_i32(&b, GGUF_TYPE_ARRAY);
    fb_i32(&b, 42);
    fb_u64(&b, 0);
    expect_format(&b, "unknown array element type 42");
    /* a scalar cut short */
    fb_header(&b, 3, 0, 1);
    fb_str(&b, "k");
    fb_i32(&b, GGUF_TYPE_UINT64);
    fb_u32(&b, 1);
    fb_u8(&b, 0);
    expect_format(&b, "key 'k': u64 at byte 37 needs 8 bytes but only 5 are left");
    /* a key with a NUL inside */
    fb_header(&b, 3, 0, 1);
    fb_u64(&b, 3);
    fb_raw(&b, "a\0b", 3);
    fb_i32(&b, GGUF_TYPE_UINT8);
    fb_u8(&b, 1);
    expect_format(&b, "NUL");
}

Test(gguf, duplicates) {
    struct fb b;
    fb_header(&b, 3, 0, 3);
    fb_kv_u32(&b, "a.b", 1);
    fb_kv_u32(&b, "c", 2);
    fb_kv_u32(&b, "a.b", 3);
    expect_format(&b, "duplicate key 'a.b' at bytes 24 and 60");

    int64_t ne[1] = {8};
    fb_header(&b, 3, 2, 0);
    fb_tensor(&b, "w", 1, ne, GGML_TYPE_F32, 0);
    fb_tensor(&b, "w", 1, ne, GGML_TYPE_F32, 32);
    fb_pad(&b, 32);
    for (int k = 0; k < 64; k++) fb_u8(&b, 0);
    expect_format(&b, "duplicate tensor name 'w'");
}

Test(gguf, bad_alignment) {
    struct fb b;
    fb_header(&b, 3, 0, 1);
    fb_kv_u32(&b, "general.alignment", 0);
    expect_format(&b, "general.alignment 0 at byte 24 is not a non-zero power of two");
    fb_header(&b, 3, 0, 1);
    fb_kv_u32(&b, "general.alignment", 3);
    expect_format(&b, "general.alignment 3");
    fb_header(&b, 3, 0, 1);
    fb_str(&b, "general.alignment");
    fb_i32(&b, GGUF_TYPE_UINT64);
    fb_u64(&b, 32);
    expect_format(&b, "general.alignment at byte 24 has type u64; it must be u32");
    fb_header(&b, 3, 0, 1);
    fb_kv_u32(&b, "general.alignment", 64);
    struct gguf_file f;
    cr_assert_eq(parse_copy(b.d, b.n, &f), TRIT_OK);
}

/* A file with one tensor info and the data section after it; `data_bytes` bytes of data. */
static void one_tensor(struct fb *b, const char *name, uint32_t n_dims, const int64_t *ne, int32_t type,
                       uint64_t offset, size_t data_bytes) {
    fb_header(b, 3, 1, 0);
    fb_tensor(b, name, n_dims, ne, type, offset);
    fb_pad(b, 32);
    for (size_t k = 0; k < data_bytes; k++) fb_u8(b, (uint8_t)k);
}

Test(gguf, bad_tensor_infos) {
    struct fb b;
    int64_t ne5[5] = {1, 1, 1, 1, 1};
    one_tensor(&b, "t5", 5, ne5, GGML_TYPE_F32, 0, 32);
    expect_format(&b, "tensor 't5': n_dims 5 at byte 34 exceeds 4");

    int64_t neg[2] = {4, -2};
    one_tensor(&b, "blk.0.attn_k.weight", 2, neg, GGML_TYPE_F32, 0, 64);
    expect_format(&b, "tensor 'blk.0.attn_k.weight': ne[1] = -2");

    int64_t big[2] = {INT64_C(1) << 32, INT64_C(1) << 32};
    one_tensor(&b, "huge", 2, big, GGML_TYPE_I8, 0, 32);
    expect_format(&b, "tensor 'huge': element count of [4294967296, 4294967296, 1, 1]");
    /* the element count fits but its byte size does not */
    int64_t big_bytes[2] = {INT64_C(1) << 31, INT64_C(1) << 31};
    one_tensor(&b, "huge", 2, big_bytes, GGML_TYPE_F64, 0, 32);
    expect_format(&b, "overflows int64");

    int64_t odd[2] = {100, 2};
    one_tensor(&b, "blk.0.ffn_down.weight", 2, odd, GGML_TYPE_TQ2_0, 0, 256);
    expect_format(&b, "tensor 'blk.0.ffn_down.weight': ne[0] = 100 (info at byte 24) is not a multiple of the TQ2_0 block size 256");

    int64_t ne[2] = {8, 2};
    one_tensor(&b, "far", 2, ne, GGML_TYPE_F32, UINT64_C(1) << 40, 64);
    expect_format(&b, "tensor 'far': data [1099511627872, 1099511627936) runs past the end of the file (size 160)");
    one_tensor(&b, "wrap", 2, ne, GGML_TYPE_F32, UINT64_MAX - 31, 64);
    expect_format(&b, "tensor 'wrap': data offset");

    one_tensor(&b, "mis", 2, ne, GGML_TYPE_F32, 4, 128);
    expect_format(&b, "tensor 'mis': data offset 4 is not a multiple of the alignment 32");

    /* 64 bytes needed, 63 present */
    one_tensor(&b, "blk.0.attn_q.weight", 2, ne, GGML_TYPE_F32, 0, 63);
    expect_format(&b, "tensor 'blk.0.attn_q.weight': data [96, 160) runs past the end of the file (size 159)");
    one_tensor(&b, "blk.0.attn_q.weight", 2, ne, GGML_TYPE_F32, 0, 64);
    struct gguf_file f;
    cr_assert_eq(parse_copy(b.d, b.n, &f), TRIT_OK, "the same file, complete, is valid");

    char long_name[65];
    memset(long_name, 'x', 64);
    long_name[64] = '\0';
    one_tensor(&b, long_name, 2, ne, GGML_TYPE_F32, 0, 64);
    expect_format(&b, "is 64 bytes long; the limit is 63");
    long_name[63] = '\0';
    one_tensor(&b, long_name, 2, ne, GGML_TYPE_F32, 0, 64);
    cr_assert_eq(parse_copy(b.d, b.n, &f), TRIT_OK, "63 bytes is allowed");

    /* an unknown type: kept, no data, but its offset is still checked */
    one_tensor(&b, "odd_type", 2, ne, 77, 64, 0);
    expect_format(&b, "tensor 'odd_type': data [160, 160) runs past the end of the file (size 96)");
}

/* No two tensors' bytes overlap (llama.cpp's reader requires them contiguous and in order; trit
 * requires them disjoint). Three tensor infos with one-dimension names: the data section is at 128. */
static void three_tensors(struct fb *b, const int64_t ne[3], const int32_t type[3], const uint64_t off[3],
                          size_t data_bytes) {
    const char *names[3] = {"a", "b", "c"};
    fb_header(b, 3, 3, 0);
    for (int i = 0; i < 3; i++) fb_tensor(b, names[i], 1, &ne[i], type[i], off[i]);
    fb_pad(b, 32);
    cr_assert_eq(b->n, 128);
    for (size_t k = 0; k < data_bytes; k++) fb_u8(b, (uint8_t)k);
}

Test(gguf, tensor_data_must_not_overlap) {
    struct fb b;
    struct gguf_file f;
    const int32_t f32[3] = {GGML_TYPE_F32, GGML_TYPE_F32, GGML_TYPE_F32};

    /* two at one offset */
    three_tensors(&b, (const int64_t[3]){8, 8, 8}, f32, (const uint64_t[3]){0, 32, 0}, 64);
    expect_format(&b, "gguf: tensors 'a' (data [128, 160)) and 'c' (data [128, 160)) overlap");
    /* partial: a starts inside c; the message names them in data order, whatever the info order */
    three_tensors(&b, (const int64_t[3]){8, 8, 16}, f32, (const uint64_t[3]){32, 128, 0}, 160);
    expect_format(&b, "gguf: tensors 'c' (data [128, 192)) and 'a' (data [160, 192)) overlap");
    /* one range holding another, and a third after both */
    three_tensors(&b, (const int64_t[3]){24, 8, 8}, f32, (const uint64_t[3]){0, 32, 96}, 128);
    expect_format(&b, "gguf: tensors 'a' (data [128, 224)) and 'b' (data [160, 192)) overlap");

    /* touching is fine, in any order, with holes */
    three_tensors(&b, (const int64_t[3]){8, 8, 8}, f32, (const uint64_t[3]){64, 0, 32}, 96);
    cr_assert_eq(parse_copy(b.d, b.n, &f), TRIT_OK, "%s", trit_last_error());
    three_tensors(&b, (const int64_t[3]){8, 8, 8}, f32, (const uint64_t[3]){0, 96, 160}, 192);
    cr_assert_eq(parse_copy(b.d, b.n, &f), TRIT_OK, "%s", trit_last_error());
    /* empty tensors hold no bytes: a zero dimension, or a type trit cannot size, may share an offset */
    three_tensors(&b, (const int64_t[3]){8, 0, 0}, f32, (const uint64_t[3]){0, 0, 0}, 32);
    cr_assert_eq(parse_copy(b.d, b.n, &f), TRIT_OK, "%s", trit_last_error());
    three_tensors(&b, (const int64_t[3]){8, 8, 8}, (const int32_t[3]){GGML_TYPE_F32, 77, 77}, (const uint64_t[3]){0, 0, 0}, 32);
    cr_assert_eq(parse_copy(b.d, b.n, &f), TRIT_OK, "%s", trit_last_error());
}

/* Type ids trit cannot size by themselves (Q2_0, type 36 outside bitnet.cpp's architectures) are
 * sized later by the model loader from their byte span: the distance to the next tensor's start in
 * offset order, or to the end of the file. */
Test(gguf, spans_and_late_sizing) {
    struct fb b;
    struct gguf_file f;
    /* c (F32, 8 elements, 32 bytes) at 0, a (Q2_0, 64 elements) at 64, b (Q2_0) at 32; 96 data bytes */
    three_tensors(&b, (const int64_t[3]){64, 64, 8}, (const int32_t[3]){GGML_TYPE_Q2_0, GGML_TYPE_Q2_0, GGML_TYPE_F32},
                  (const uint64_t[3]){64, 32, 0}, 96);
    cr_assert_eq(gguf_open_memory(b.d, b.n, &f), TRIT_OK, "%s", trit_last_error());
    cr_assert(f.tensors[0].n_bytes == 0 && f.tensors[0].data == NULL, "Q2_0 is not sized by the parser");
    cr_assert_str_eq(gguf_type_name(GGML_TYPE_Q2_0, false), "Q2_0");
    cr_assert_str_eq(gguf_type_name(GGML_TYPE_Q2_0, true), "Q2_0");
    cr_assert_eq(gguf_tensor_span(&f, 0), 32, "a: to the end of the file");
    cr_assert_eq(gguf_tensor_span(&f, 1), 32, "b: to a");
    cr_assert_eq(gguf_tensor_span(&f, 2), 32, "c: to b");
    cr_assert_eq(gguf_tensor_span(&f, 3), 0);
    cr_assert_eq(gguf_tensor_span(&f, -1), 0);
    /* sizing: past the end, over another sized tensor, an already sized tensor */
    cr_assert_eq(gguf_tensor_set_bytes(&f, 0, 33), TRIT_ERR_FORMAT);
    cr_assert(strstr(trit_last_error(), "runs past the end of the file") != NULL, "%s", trit_last_error());
    cr_assert_eq(gguf_tensor_set_bytes(&f, 2, 4), TRIT_ERR_INVALID_ARG);
    cr_assert_eq(gguf_tensor_set_bytes(&f, 1, 18), TRIT_OK, "%s", trit_last_error());
    cr_assert(f.tensors[1].n_bytes == 18 && f.tensors[1].data == f.map + 128 + 32);
    cr_assert_eq(gguf_tensor_set_bytes(&f, 0, 18), TRIT_OK, "%s", trit_last_error());
    cr_assert_eq(f.tensors[0].data[0], (uint8_t)64, "the data section's byte 64");
    gguf_close(&f);
    /* a sized range that would overlap a neighbour is refused by name */
    three_tensors(&b, (const int64_t[3]){64, 64, 8}, (const int32_t[3]){GGML_TYPE_Q2_0, GGML_TYPE_Q2_0, GGML_TYPE_F32},
                  (const uint64_t[3]){64, 32, 0}, 96);
    cr_assert_eq(gguf_open_memory(b.d, b.n, &f), TRIT_OK, "%s", trit_last_error());
    cr_assert_eq(gguf_tensor_set_bytes(&f, 0, 18), TRIT_OK);
    cr_assert_eq(gguf_tensor_set_bytes(&f, 1, 40), TRIT_ERR_FORMAT);
    cr_assert(strstr(trit_last_error(), "gguf: tensors 'b' (data [160, 200)) and 'a' (data [192, 210)) overlap") != NULL, "%s",
              trit_last_error());
    gguf_close(&f);
    /* two at one offset: each spans 0 bytes */
    three_tensors(&b, (const int64_t[3]){64, 64, 8}, (const int32_t[3]){GGML_TYPE_Q2_0, GGML_TYPE_Q2_0, GGML_TYPE_F32},
                  (const uint64_t[3]){32, 32, 0}, 96);
    cr_assert_eq(gguf_open_memory(b.d, b.n, &f), TRIT_OK, "%s", trit_last_error());
    cr_assert_eq(gguf_tensor_span(&f, 0), 0);
    cr_assert_eq(gguf_tensor_span(&f, 1), 0);
    gguf_close(&f);
}

Test(gguf, open_errors_name_the_path) {
    struct gguf_file f;
    cr_assert_eq(gguf_open("/nonexistent/dir/x.gguf", &f), TRIT_ERR_NOT_FOUND);
    cr_assert(strstr(trit_last_error(), "/nonexistent/dir/x.gguf"), "%s", trit_last_error());

    char path[512];
    snprintf(path, sizeof path, "%s/test_gguf_bad_%d.gguf", TRIT_BINARY_DIR, (int)getpid());
    FILE *fp = fopen(path, "wb");
    cr_assert_not_null(fp);
    fwrite("GGUF\x04\0\0\0", 1, 8, fp);
    fclose(fp);
    cr_assert_eq(gguf_open(path, &f), TRIT_ERR_FORMAT);
    cr_assert(strstr(trit_last_error(), "version 4") && strstr(trit_last_error(), path), "%s", trit_last_error());
    fp = fopen(path, "wb");
    fclose(fp);
    cr_assert_eq(gguf_open(path, &f), TRIT_ERR_FORMAT, "an empty file");
    unlink(path);
}

/* Every prefix of a valid file that drops needed bytes fails cleanly; prefixes that only drop the
 * padding after the last tensor's data are still valid. */
Test(gguf, every_truncation_fails) {
    struct gguf_writer *w;
    cr_assert_eq(gguf_writer_init(&w), TRIT_OK);
    const char *toks[3] = {"<s>", "a", "bc"};
    int32_t types[3] = {3, 1, 1};
    float w_a[12], w_b[3];
    for (int i = 0; i < 12; i++) w_a[i] = (float)i;
    for (int i = 0; i < 3; i++) w_b[i] = -(float)i;
    cr_assert_eq(gguf_writer_set_str(w, "general.architecture", "bitnet"), TRIT_OK);
    cr_assert_eq(gguf_writer_set_u32(w, "bitnet.block_count", 1), TRIT_OK);
    cr_assert_eq(gguf_writer_set_arr_str(w, "tokenizer.ggml.tokens", toks, 3), TRIT_OK);
    cr_assert_eq(gguf_writer_set_arr(w, "tokenizer.ggml.token_type", GGUF_TYPE_INT32, types, 3), TRIT_OK);
    cr_assert_eq(gguf_writer_set_bool(w, "tokenizer.ggml.add_bos_token", true), TRIT_OK);
    int64_t ne_a[2] = {4, 3}, ne_b[1] = {3};
    cr_assert_eq(gguf_writer_add_tensor(w, "t.a", GGML_TYPE_F32, 2, ne_a, w_a, sizeof w_a), TRIT_OK);
    cr_assert_eq(gguf_writer_add_tensor(w, "t.b", GGML_TYPE_F32, 1, ne_b, w_b, sizeof w_b), TRIT_OK);
    uint8_t *buf;
    uint64_t size;
    cr_assert_eq(gguf_writer_write_mem(w, &buf, &size), TRIT_OK);
    gguf_writer_free(w);

    struct gguf_file f;
    cr_assert_eq(gguf_open_memory(buf, size, &f), TRIT_OK, "%s", trit_last_error());
    uint64_t needed = 0;
    for (int64_t i = 0; i < f.n_tensors; i++) {
        uint64_t end = f.data_offset + f.tensors[i].offset + f.tensors[i].n_bytes;
        if (end > needed) needed = end;
    }
    gguf_close(&f);
    cr_assert_lt(needed, size, "the file ends with padding");

    for (uint64_t n = 0; n < size; n++) {
        enum trit_status st = parse_copy(buf, n, &f);
        if (n >= needed) {
            cr_assert_eq(st, TRIT_OK, "prefix %llu only drops padding", (unsigned long long)n);
            continue;
        }
        cr_assert_eq(st, TRIT_ERR_FORMAT, "prefix of %llu bytes: %s", (unsigned long long)n, trit_last_error());
        const char *msg = trit_last_error();
        cr_assert(strstr(msg, "byte") || strstr(msg, "tensor 't."), "prefix %llu: '%s'", (unsigned long long)n, msg);
    }
    trit_free(buf);
}

/* ---- writer argument checks ----------------------------------------------------------------- */

Test(gguf, writer_rejects_bad_arguments) {
    struct gguf_writer *w;
    cr_assert_eq(gguf_writer_init(&w), TRIT_OK);
    float x[16] = {0};
    int64_t ne[2] = {4, 4};
    cr_assert_eq(gguf_writer_add_tensor(w, "w", GGML_TYPE_F32, 2, ne, x, 63), TRIT_ERR_INVALID_ARG, "wrong size");
    cr_assert_eq(gguf_writer_add_tensor(w, "w", GGML_TYPE_TQ2_0, 2, ne, x, 64), TRIT_ERR_INVALID_ARG, "block");
    cr_assert_eq(gguf_writer_add_tensor(w, "w", GGML_TYPE_F32, 5, ne, x, 64), TRIT_ERR_INVALID_ARG, "n_dims");
    cr_assert_eq(gguf_writer_add_tensor(w, "", GGML_TYPE_F32, 2, ne, x, 64), TRIT_ERR_INVALID_ARG, "empty name");
    cr_assert_eq(gguf_writer_add_tensor(w, "w", GGML_TYPE_F32, 2, ne, x, 64), TRIT_OK);
    cr_assert_eq(gguf_writer_add_tensor(w, "w", GGML_TYPE_F32, 2, ne, x, 64), TRIT_ERR_INVALID_ARG, "duplicate");
    cr_assert_eq(gguf_writer_set_arr(w, "a", GGUF_TYPE_STRING, x, 1), TRIT_ERR_INVALID_ARG);
    cr_assert_eq(gguf_writer_set_val(w, "a", GGUF_TYPE_ARRAY, x), TRIT_ERR_INVALID_ARG);
    cr_assert_eq(gguf_writer_set_u32(w, "general.alignment", 48), TRIT_OK);
    uint8_t *buf;
    uint64_t size;
    cr_assert_eq(gguf_writer_write_mem(w, &buf, &size), TRIT_ERR_INVALID_ARG, "alignment 48");
    cr_assert_eq(gguf_writer_write(w, "/nonexistent/dir/out.gguf"), TRIT_ERR_INVALID_ARG);
    cr_assert_eq(gguf_writer_set_u32(w, "general.alignment", 16), TRIT_OK);
    cr_assert_eq(gguf_writer_write(w, "/nonexistent/dir/out.gguf"), TRIT_ERR_IO);
    gguf_writer_free(w);
    gguf_writer_free(NULL);
}

/* ---- model hyperparameters ---------------------------------------------------------------------- */

/* Head counts and widths from a hostile file are bounded before any size is computed from them:
 * n_heads * head_dim with both at 2^40 overflowed int64 in the loader. */
Test(gguf, model_load_bounds_head_counts) {
    static const struct { const char *key; uint64_t v; } cases[] = {
        {"bitnet.attention.head_count", (uint64_t)1 << 40},
        {"bitnet.attention.head_count_kv", (uint64_t)1 << 40},
        {"bitnet.attention.key_length", (uint64_t)1 << 40},
        {"bitnet.embedding_length", (uint64_t)1 << 40},
        {"bitnet.feed_forward_length", (uint64_t)1 << 40},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct gguf_writer *w;
        cr_assert_eq(gguf_writer_init(&w), TRIT_OK);
        cr_assert_eq(gguf_writer_set_str(w, "general.architecture", "bitnet"), TRIT_OK);
        cr_assert_eq(gguf_writer_set_u32(w, "bitnet.block_count", 1), TRIT_OK);
        const char *keys[] = {"bitnet.embedding_length", "bitnet.feed_forward_length", "bitnet.attention.head_count",
                              "bitnet.attention.head_count_kv", "bitnet.attention.key_length"};
        for (size_t k = 0; k < 5; k++) {
            uint64_t v = strcmp(keys[k], cases[i].key) == 0 ? cases[i].v : k == 4 ? 4 : 8;
            cr_assert_eq(gguf_writer_set_val(w, keys[k], GGUF_TYPE_UINT64, &v), TRIT_OK);
        }
        float embd[4 * 8] = {0}, norm[8] = {1};
        int64_t ne_e[2] = {8, 4}, ne_n[1] = {8};
        cr_assert_eq(gguf_writer_add_tensor(w, "token_embd.weight", GGML_TYPE_F32, 2, ne_e, embd, sizeof embd), TRIT_OK);
        cr_assert_eq(gguf_writer_add_tensor(w, "output_norm.weight", GGML_TYPE_F32, 1, ne_n, norm, sizeof norm), TRIT_OK);
        char path[256];
        snprintf(path, sizeof path, "/tmp/trit_test_hparams_%d.gguf", (int)getpid());
        cr_assert_eq(gguf_writer_write(w, path), TRIT_OK, "%s", trit_last_error());
        gguf_writer_free(w);
        struct trit_model m;
        cr_assert_eq(trit_model_load_gguf(path, NULL, &m), TRIT_ERR_FORMAT, "%s", cases[i].key);
        cr_assert(strstr(trit_last_error(), cases[i].key) != NULL, "%s: %s", cases[i].key, trit_last_error());
        unlink(path);
    }
}
