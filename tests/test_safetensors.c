// labels: unit
/*
 * test_safetensors.c: the safetensors reader (host/io/safetensors.c).
 *
 * Files are built here (header JSON + random data, written under /tmp) and read back byte for byte
 * for every dtype; a file written by the reference Python writer (tests/data/hf, see
 * make_fixtures.py) is read too. Every malformation listed in safetensors.h must give a clean
 * error; the truncation and mutation sweeps are meant to run under -DTRIT_SANITIZE=ON as well.
 *
 *   ctest --test-dir build -R test_safetensors --output-on-failure
 */
#include <criterion/criterion.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/core.h"
#include "io/safetensors.h"
#include "support.h"

/* ---- building files ----------------------------------------------------------------------- */

struct spec {
    const char *name;
    enum st_dtype dtype;
    int n_dims;
    int64_t shape[ST_MAX_DIMS];
};

/* A whole file: u64 header length, the header padded with spaces to a multiple of 8 (as the
 * reference writer does), then the data. Returns a malloc'd buffer of exactly *size bytes, so that
 * AddressSanitizer sees any read past its end. */
static uint8_t *file_bytes(const char *header, const uint8_t *data, size_t data_bytes, size_t *size) {
    size_t n = strlen(header);
    *size = 8 + n + data_bytes;
    uint8_t *buf = malloc(*size ? *size : 1);
    cr_assert_not_null(buf);
    for (int i = 0; i < 8; i++) buf[i] = (uint8_t)((uint64_t)n >> (8 * i));
    memcpy(buf + 8, header, n);
    if (data_bytes) memcpy(buf + 8 + n, data, data_bytes);
    return buf;
}

/* Appends to a growing header string. */
static void cat(char *dst, size_t cap, const char *fmt, ...) TRIT_PRINTF(3, 4);
static void cat(char *dst, size_t cap, const char *fmt, ...) {
    size_t len = strlen(dst);
    va_list ap;
    va_start(ap, fmt);
    int w = vsnprintf(dst + len, cap - len, fmt, ap);
    va_end(ap);
    cr_assert(w >= 0 && (size_t)w < cap - len, "header buffer too small");
}

#define HEADER_CAP 65536

/* Lays the tensors out back to back in the given order, fills them with random bytes (kept in
 * *data_out for comparison) and returns the file. The last tensor ends at the end of the file. */
static uint8_t *build(const struct spec *specs, int n, const char *metadata, struct test_rng *rng,
                      uint8_t **data_out, size_t *data_bytes_out, size_t *size) {
    static char header[HEADER_CAP];
    header[0] = '\0';
    cat(header, sizeof header, "{");
    if (metadata) cat(header, sizeof header, "\"__metadata__\":%s,", metadata);
    uint64_t offset = 0;
    for (int i = 0; i < n; i++) {
        int64_t count = 1;
        cat(header, sizeof header, "%s\"%s\":{\"dtype\":\"%s\",\"shape\":[", i ? "," : "", specs[i].name,
            st_dtype_name(specs[i].dtype));
        for (int d = 0; d < specs[i].n_dims; d++) {
            cat(header, sizeof header, "%s%lld", d ? "," : "", (long long)specs[i].shape[d]);
            count *= specs[i].shape[d];
        }
        uint64_t bytes = (uint64_t)count * (uint64_t)st_dtype_size(specs[i].dtype);
        cat(header, sizeof header, "],\"data_offsets\":[%llu,%llu]}", (unsigned long long)offset,
            (unsigned long long)(offset + bytes));
        offset += bytes;
    }
    cat(header, sizeof header, "}");
    while (strlen(header) % 8) cat(header, sizeof header, " ");
    uint8_t *data = malloc(offset ? offset : 1);
    for (uint64_t i = 0; i < offset; i++) data[i] = (uint8_t)test_rng_u64(rng);
    uint8_t *file = file_bytes(header, data, offset, size);
    *data_out = data;
    *data_bytes_out = offset;
    return file;
}

/* A scratch directory under /tmp, removed (with the files this test put there) by tmp_cleanup. */
static char tmp_dir[64];
static void tmp_make(void) {
    strcpy(tmp_dir, "/tmp/trit-st-XXXXXX");
    cr_assert_not_null(mkdtemp(tmp_dir));
}
static const char *tmp_path(const char *name) {
    static char path[256];
    snprintf(path, sizeof path, "%s/%s", tmp_dir, name);
    return path;
}
static void tmp_write(const char *name, const void *bytes, size_t n) {
    FILE *fp = fopen(tmp_path(name), "wb");
    cr_assert_not_null(fp);
    cr_assert_eq(fwrite(bytes, 1, n, fp), n);
    fclose(fp);
}
static void tmp_cleanup(const char *const *names, int n) {
    for (int i = 0; i < n; i++) unlink(tmp_path(names[i]));
    rmdir(tmp_dir);
}

/* ---- reading back ------------------------------------------------------------------------- */

/* Every field of every tensor, and that the data pointer lies inside the map (no copy). */
static void check_tensors(const struct st_file *f, const struct spec *specs, int n, const uint8_t *data) {
    cr_assert_eq(f->n_tensors, n);
    uint64_t offset = 0;
    for (int i = 0; i < n; i++) {
        const struct st_tensor *t = st_find(f, specs[i].name);
        cr_assert_not_null(t, "tensor %s not found", specs[i].name);
        cr_assert_str_eq(t->name, specs[i].name);
        cr_assert_eq(t->dtype, specs[i].dtype, "%s: dtype %d != %d", t->name, t->dtype, specs[i].dtype);
        cr_assert_eq(t->n_dims, specs[i].n_dims);
        int64_t count = 1;
        for (int d = 0; d < ST_MAX_DIMS; d++) {
            int64_t want = d < specs[i].n_dims ? specs[i].shape[d] : 1;
            cr_assert_eq(t->shape[d], want, "%s: shape[%d]", t->name, d);
            count *= want;
        }
        cr_assert_eq(t->n_elements, count);
        cr_assert_eq(t->n_bytes, (uint64_t)count * (uint64_t)st_dtype_size(specs[i].dtype));
        cr_assert(t->data >= f->map && t->data + t->n_bytes <= f->map + f->size, "%s: data outside the map",
                  t->name);
        cr_assert_eq(t->file_offset, (uint64_t)(t->data - f->map));
        cr_assert_eq(t->file_offset, 8 + f->header_bytes + offset);
        if (t->n_bytes) cr_assert_eq(memcmp(t->data, data + offset, t->n_bytes), 0, "%s: bytes differ", t->name);
        offset += t->n_bytes;
    }
    /* f->tensors is in data order. */
    for (int64_t i = 1; i < f->n_tensors; i++)
        cr_assert_leq(f->tensors[i - 1].file_offset, f->tensors[i].file_offset);
}

Test(safetensors, dtype_table) {
    const char *names[ST_DTYPE_COUNT] = {"F32",  "F16",     "BF16",    "U8",  "I8",  "F64", "I16", "I32",
                                         "I64",  "BOOL",    "F8_E4M3", "F8_E5M2", "U16", "U32", "U64"};
    const int sizes[ST_DTYPE_COUNT] = {4, 2, 2, 1, 1, 8, 2, 4, 8, 1, 1, 1, 2, 4, 8};
    for (int i = 0; i < ST_DTYPE_COUNT; i++) {
        enum st_dtype d;
        cr_assert_str_eq(st_dtype_name((enum st_dtype)i), names[i]);
        cr_assert_eq(st_dtype_size((enum st_dtype)i), sizes[i], "%s", names[i]);
        cr_assert(st_dtype_from_name(names[i], &d) && d == (enum st_dtype)i);
        cr_assert_eq(st_dtype_loadable((enum st_dtype)i), i <= ST_I8, "%s", names[i]);
    }
    enum st_dtype d;
    cr_assert_not(st_dtype_from_name("bf16", &d)); /* the spelling is exact */
    cr_assert_not(st_dtype_from_name("F4", &d));
    cr_assert_eq(st_dtype_size(ST_DTYPE_COUNT), 0);
    cr_assert_str_eq(st_dtype_name((enum st_dtype)99), "?");
}

/* Every dtype, random shapes including scalars, 1-element and odd sizes, through a file under /tmp
 * (mmap) and through st_open_memory. */
Test(safetensors, every_dtype_reads_back_exact_bytes) {
    struct test_rng rng;
    test_rng_seed(&rng, 0x5afe);
    static char names[ST_DTYPE_COUNT][32];
    struct spec specs[ST_DTYPE_COUNT];
    for (int i = 0; i < ST_DTYPE_COUNT; i++) {
        snprintf(names[i], sizeof names[i], "layers.%d.%s", i, st_dtype_name((enum st_dtype)i));
        specs[i] = (struct spec){.name = names[i], .dtype = (enum st_dtype)i,
                                 .n_dims = (int)test_rng_int(&rng, 0, 4)};
        for (int d = 0; d < specs[i].n_dims; d++) specs[i].shape[d] = test_rng_int(&rng, 1, 7);
    }
    uint8_t *data;
    size_t data_bytes, size;
    uint8_t *file = build(specs, ST_DTYPE_COUNT, "{\"format\":\"pt\"}", &rng, &data, &data_bytes, &size);

    struct st_file f;
    cr_assert_eq(st_open_memory(file, size, &f), TRIT_OK, "%s", trit_last_error());
    check_tensors(&f, specs, ST_DTYPE_COUNT, data);
    cr_assert_eq(f.data_bytes, data_bytes);
    cr_assert_eq(f.n_meta, 1);
    cr_assert_str_eq(st_meta_find(&f, "format"), "pt");
    cr_assert_null(st_meta_find(&f, "missing"));
    st_close(&f);
    cr_assert_null(f.tensors);

    tmp_make();
    tmp_write("m.safetensors", file, size);
    cr_assert_eq(st_open(tmp_path("m.safetensors"), &f), TRIT_OK, "%s", trit_last_error());
    check_tensors(&f, specs, ST_DTYPE_COUNT, data);
    cr_assert_eq(strcmp(f.label, tmp_path("m.safetensors")), 0);
    st_close(&f);
    st_close(&f); /* a closed (zeroed) file closes again harmlessly */
    st_close(NULL);
    const char *files[] = {"m.safetensors"};
    tmp_cleanup(files, 1);
    free(file);
    free(data);
}

Test(safetensors, lookups) {
    struct test_rng rng;
    test_rng_seed(&rng, 0x100c);
    /* Header order differs from name order and from data order after sorting. */
    struct spec specs[] = {
        {"b", ST_F32, 1, {3}}, {"a", ST_BF16, 2, {2, 2}}, {"c.weight", ST_U8, 1, {5}}, {"a.b", ST_I8, 0, {0}},
    };
    uint8_t *data;
    size_t data_bytes, size;
    uint8_t *file = build(specs, 4, NULL, &rng, &data, &data_bytes, &size);
    struct st_file f;
    cr_assert_eq(st_open_memory(file, size, &f), TRIT_OK, "%s", trit_last_error());
    check_tensors(&f, specs, 4, data);
    cr_assert_null(st_find(&f, "d"));
    cr_assert_null(st_find(&f, "A"));
    cr_assert_null(st_find(&f, ""));
    cr_assert_null(st_find(NULL, "a"));
    const struct st_tensor *t;
    cr_assert_eq(st_get(&f, "c.weight", &t), TRIT_OK);
    cr_assert_str_eq(t->name, "c.weight");
    cr_assert_eq(st_get(&f, "nope.weight", &t), TRIT_ERR_NOT_FOUND);
    cr_assert_null(t);
    cr_assert_not_null(strstr(trit_last_error(), "'nope.weight'"), "%s", trit_last_error());
    cr_assert_eq(f.n_meta, 0);
    st_close(&f);
    free(file);
    free(data);
}

Test(safetensors, empty_scalar_and_zero_sized_tensors) {
    size_t size;
    /* {} with no data; then a scalar, a zero-sized tensor at the end of the data, padding spaces. */
    uint8_t *file = file_bytes("{}", NULL, 0, &size);
    struct st_file f;
    cr_assert_eq(st_open_memory(file, size, &f), TRIT_OK, "%s", trit_last_error());
    cr_assert_eq(f.n_tensors, 0);
    cr_assert_null(st_find(&f, "x"));
    st_close(&f);
    free(file);

    const uint8_t data[4] = {1, 2, 3, 4};
    file = file_bytes("{\"s\":{\"dtype\":\"F32\",\"shape\":[],\"data_offsets\":[0,4]},"
                      "\"z\":{\"data_offsets\":[4,4],\"shape\":[3,0],\"dtype\":\"BF16\"},"
                      "\"__metadata__\":null, \"y\":{\"dtype\":\"U8\",\"shape\":[0],\"data_offsets\":[0,0]}}   ",
                      data, sizeof data, &size);
    cr_assert_eq(st_open_memory(file, size, &f), TRIT_OK, "%s", trit_last_error());
    const struct st_tensor *s = st_find(&f, "s"), *z = st_find(&f, "z");
    cr_assert(s && z && st_find(&f, "y"));
    cr_assert_eq(s->n_dims, 0);
    cr_assert_eq(s->n_elements, 1);
    cr_assert_eq(memcmp(s->data, data, 4), 0);
    cr_assert_eq(z->n_elements, 0);
    cr_assert_eq(z->n_bytes, 0);
    cr_assert_eq(f.n_meta, 0);
    st_close(&f);
    free(file);
}

/* Gaps between tensors are allowed (alignment padding); the tensors still read exactly. */
Test(safetensors, gaps_between_tensors) {
    const uint8_t data[16] = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15};
    size_t size;
    uint8_t *file = file_bytes("{\"a\":{\"dtype\":\"U8\",\"shape\":[2],\"data_offsets\":[1,3]},"
                               "\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[8,12]}}",
                               data, sizeof data, &size);
    struct st_file f;
    cr_assert_eq(st_open_memory(file, size, &f), TRIT_OK, "%s", trit_last_error());
    cr_assert_eq(st_find(&f, "a")->data[0], 1);
    cr_assert_eq(st_find(&f, "b")->data[3], 11);
    st_close(&f);
    free(file);
}

/* ---- the file written by the reference writer --------------------------------------------- */

/* tests/data/hf/make_fixtures.py: byte j of tensor `name` = (j * 131 + sum of name's bytes) & 0xff. */
static uint8_t fixture_byte(const char *name, uint64_t j) {
    unsigned h = 0;
    for (const char *p = name; *p; p++) h += (unsigned char)*p;
    return (uint8_t)((j * 131 + h) & 0xff);
}

Test(safetensors, reads_the_reference_writers_file) {
    struct st_file f;
    cr_assert_eq(st_open(test_data_path("hf/tiny-single/model.safetensors"), &f), TRIT_OK, "%s", trit_last_error());
    const struct {
        const char *name;
        enum st_dtype dtype;
        int n_dims;
        int64_t shape[2];
    } want[] = {
        {"model.embed_tokens.weight", ST_BF16, 2, {16, 8}},
        {"model.layers.0.self_attn.q_proj.weight", ST_U8, 2, {2, 8}},
        {"model.layers.0.self_attn.q_proj.weight_scale", ST_BF16, 1, {1}},
        {"model.norm.weight", ST_F32, 1, {8}},
        {"test.f16", ST_F16, 1, {3}},
        {"test.i8", ST_I8, 2, {2, 3}},
        {"test.i32", ST_I32, 1, {2}},
        {"test.scalar", ST_F32, 0, {0}},
        {"test.empty", ST_F32, 2, {0, 4}},
    };
    cr_assert_eq(f.n_tensors, (int64_t)(sizeof want / sizeof want[0]));
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        const struct st_tensor *t = st_find(&f, want[i].name);
        cr_assert_not_null(t, "%s", want[i].name);
        cr_assert_eq(t->dtype, want[i].dtype, "%s", want[i].name);
        cr_assert_eq(t->n_dims, want[i].n_dims, "%s", want[i].name);
        for (int d = 0; d < want[i].n_dims; d++) cr_assert_eq(t->shape[d], want[i].shape[d]);
        for (uint64_t j = 0; j < t->n_bytes; j++)
            cr_assert_eq(t->data[j], fixture_byte(t->name, j), "%s byte %llu", t->name, (unsigned long long)j);
    }
    cr_assert_str_eq(st_meta_find(&f, "format"), "pt");
    st_close(&f);
}

/* ---- malformed files ---------------------------------------------------------------------- */

/* Parses header + data_bytes of data and expects `want` with `needle` in the message, and a
 * zeroed struct afterwards. */
static void expect_bad(const char *header, size_t data_bytes, enum trit_status want, const char *needle) {
    uint8_t *data = calloc(data_bytes ? data_bytes : 1, 1);
    size_t size;
    uint8_t *file = file_bytes(header, data, data_bytes, &size);
    struct st_file f;
    trit_error_clear();
    enum trit_status st = st_open_memory(file, size, &f);
    cr_assert_eq(st, want, "header %s: got '%s' (%s)", header, trit_status_str(st), trit_last_error());
    cr_assert_not_null(strstr(trit_last_error(), needle), "header %s: message '%s' lacks '%s'", header,
                       trit_last_error(), needle);
    cr_assert(f.tensors == NULL && f.n_tensors == 0 && f.map == NULL && f.label == NULL);
    free(file);
    free(data);
}

/* Header JSON: ENTRY("w", FIELDS("U8", "[4]", "[0,4]")) is "w":{"dtype":"U8","shape":[4],"data_offsets":[0,4]}
 * (each field given as its JSON text), and W("U8", "[4]", "[0,4]") is the header of that one tensor. */
#define ENTRY(name, body) "\"" name "\":{" body "}"
#define FIELDS(dtype, shape, offsets) "\"dtype\":\"" dtype "\",\"shape\":" shape ",\"data_offsets\":" offsets
#define W(dtype, shape, offsets) "{" ENTRY("w", FIELDS(dtype, shape, offsets)) "}"

Test(safetensors, malformed_json) {
    expect_bad("{\"a\": ", 0, TRIT_ERR_FORMAT, "invalid JSON");
    expect_bad("{\"a\":{\"dtype\":\"F32\",}", 0, TRIT_ERR_FORMAT, "invalid JSON");
    expect_bad("[1, 2]", 0, TRIT_ERR_FORMAT, "expected an object");
    expect_bad("\"text\"", 0, TRIT_ERR_FORMAT, "expected an object");
    expect_bad("{} x", 0, TRIT_ERR_FORMAT, "after the JSON value");
    expect_bad("{}{}", 0, TRIT_ERR_FORMAT, "after the JSON value");
    expect_bad("  ", 0, TRIT_ERR_FORMAT, "invalid JSON");
    expect_bad("{\"a\":5}", 0, TRIT_ERR_FORMAT, "tensor 'a': entry is a JSON number");
    expect_bad("{\"__metadata__\":{\"k\":1}}", 0, TRIT_ERR_FORMAT, "__metadata__ entry 'k'");
    expect_bad("{\"__metadata__\":[]}", 0, TRIT_ERR_FORMAT, "'__metadata__' is a JSON array");
    expect_bad("{\"__metadata__\":{},\"__metadata__\":{}}", 0, TRIT_ERR_FORMAT, "appears twice");
    expect_bad("{\"__metadata__\":{\"k\":\"v\",\"k\":\"w\"}}", 0, TRIT_ERR_FORMAT, "key 'k' appears twice");
}

Test(safetensors, malformed_entries) {
    expect_bad(W("Q4_0", "[1]", "[0,1]"), 1, TRIT_ERR_UNSUPPORTED, "tensor 'w': unknown dtype \"Q4_0\"");
    expect_bad(W("f32", "[1]", "[0,4]"), 4, TRIT_ERR_UNSUPPORTED, "unknown dtype");
    expect_bad("{" ENTRY("w", "\"dtype\":4,\"shape\":[1],\"data_offsets\":[0,4]") "}", 4, TRIT_ERR_FORMAT,
               "field 'dtype' is a JSON number");
    expect_bad("{" ENTRY("w", "\"shape\":[1],\"data_offsets\":[0,4]") "}", 4, TRIT_ERR_FORMAT,
               "tensor 'w': missing field 'dtype'");
    expect_bad("{" ENTRY("w", "\"dtype\":\"F32\",\"data_offsets\":[0,4]") "}", 4, TRIT_ERR_FORMAT,
               "missing field 'shape'");
    expect_bad("{" ENTRY("w", "\"dtype\":\"F32\",\"shape\":[1]") "}", 4, TRIT_ERR_FORMAT,
               "missing field 'data_offsets'");
    expect_bad("{" ENTRY("w", "\"dtype\":\"F32\"," FIELDS("U8", "[1]", "[0,4]")) "}", 4, TRIT_ERR_FORMAT,
               "field 'dtype' appears 2 times");
    /* shape entries */
    expect_bad(W("U8", "[-1]", "[0,1]"), 1, TRIT_ERR_FORMAT, "tensor 'w': shape[0] is -1");
    expect_bad(W("U8", "[1,2.5]", "[0,1]"), 1, TRIT_ERR_FORMAT, "shape[1] is 2.5");
    expect_bad(W("U8", "[\"1\"]", "[0,1]"), 1, TRIT_ERR_FORMAT, "shape[0] is a JSON string");
    expect_bad(W("U8", "[1e300]", "[0,1]"), 1, TRIT_ERR_FORMAT, "shape[0]");
    expect_bad(W("U8", "5", "[0,1]"), 1, TRIT_ERR_FORMAT, "field 'shape' is a JSON number");
    expect_bad(W("U8", "[1,1,1,1,1,1,1,1,1]", "[0,1]"), 1, TRIT_ERR_UNSUPPORTED, "9 dimensions");
    /* 2^40 * 2^40 elements: the product overflows int64 before the byte size is compared. */
    expect_bad(W("U8", "[1099511627776,1099511627776]", "[0,1]"), 1, TRIT_ERR_FORMAT, "element count overflows");
    /* 2^62 elements of 8 bytes: the count fits, the byte size does not. */
    expect_bad(W("F64", "[4294967296,1073741824]", "[0,8]"), 8, TRIT_ERR_FORMAT, "byte size overflows");
}

Test(safetensors, malformed_offsets) {
    expect_bad(W("U8", "[1]", "[0]"), 1, TRIT_ERR_FORMAT, "tensor 'w': field 'data_offsets' must be an array of two");
    expect_bad(W("U8", "[1]", "[0,1,2]"), 2, TRIT_ERR_FORMAT, "array of two");
    expect_bad(W("U8", "[1]", "{\"a\":0,\"b\":1}"), 1, TRIT_ERR_FORMAT, "array of two");
    expect_bad(W("U8", "[1]", "[-1,0]"), 1, TRIT_ERR_FORMAT, "data_offsets[0] is not a non-negative integer");
    expect_bad(W("U8", "[1]", "[0,\"1\"]"), 1, TRIT_ERR_FORMAT, "data_offsets[1]");
    expect_bad(W("U8", "[1]", "[0,1e20]"), 1, TRIT_ERR_FORMAT, "data_offsets[1]");
    expect_bad(W("U8", "[0]", "[3,2]"), 4, TRIT_ERR_FORMAT, "[3, 2] has begin > end");
    expect_bad(W("U8", "[4]", "[0,4]"), 3, TRIT_ERR_FORMAT, "past the end of the file");
    expect_bad(W("U8", "[0]", "[9,9]"), 8, TRIT_ERR_FORMAT, "past the end");
    expect_bad(W("F32", "[2]", "[0,4]"), 8, TRIT_ERR_FORMAT,
               "2 elements of F32 need 8 bytes, but data_offsets [0, 4] hold 4");
    expect_bad("{" ENTRY("a", FIELDS("U8", "[4]", "[0,4]")) "," ENTRY("b", FIELDS("U8", "[4]", "[3,7]")) "}", 8,
               TRIT_ERR_FORMAT, "tensors 'a' (file bytes");
    /* Overlap with a tensor that is not the previous one in data order: [0,8) contains [2,4) and [5,6). */
    expect_bad("{" ENTRY("big", FIELDS("U8", "[8]", "[0,8]")) "," ENTRY("x", FIELDS("U8", "[2]", "[2,4]")) ","
               ENTRY("y", FIELDS("U8", "[1]", "[5,6]")) "}",
               8, TRIT_ERR_FORMAT, "overlap");
    expect_bad("{" ENTRY("w", FIELDS("U8", "[1]", "[0,1]")) "," ENTRY("w", FIELDS("U8", "[1]", "[1,2]")) "}", 2,
               TRIT_ERR_FORMAT, "tensor 'w' appears twice");
}

Test(safetensors, header_length) {
    uint8_t small[12] = {0};
    struct st_file f;
    for (size_t n = 0; n < 8; n++) {
        cr_assert_eq(st_open_memory(small, n, &f), TRIT_ERR_FORMAT);
        cr_assert_not_null(strstr(trit_last_error(), "too short"), "%s", trit_last_error());
    }
    /* N = 5 with 4 bytes after the length: past the end. */
    small[0] = 5;
    cr_assert_eq(st_open_memory(small, 12, &f), TRIT_ERR_FORMAT);
    cr_assert_not_null(strstr(trit_last_error(), "header length 5 at byte 0 runs past the end"), "%s",
                       trit_last_error());
    /* N = 2^63 and N = 2^64 - 1: over the cap, no arithmetic wraps. */
    memset(small, 0, sizeof small);
    small[7] = 0x80;
    cr_assert_eq(st_open_memory(small, 12, &f), TRIT_ERR_FORMAT);
    cr_assert_not_null(strstr(trit_last_error(), "exceeds"), "%s", trit_last_error());
    memset(small, 0xff, 8);
    cr_assert_eq(st_open_memory(small, 12, &f), TRIT_ERR_FORMAT);
    /* The cap is the reference reader's 100,000,000 bytes: one more is over it, the cap itself is
     * only past the end of this small file. */
    const uint64_t caps[2] = {ST_MAX_HEADER_BYTES + 1, ST_MAX_HEADER_BYTES};
    for (int i = 0; i < 2; i++) {
        for (int b = 0; b < 8; b++) small[b] = (uint8_t)(caps[i] >> (8 * b));
        cr_assert_eq(st_open_memory(small, 12, &f), TRIT_ERR_FORMAT);
        cr_assert_not_null(strstr(trit_last_error(), i == 0 ? "exceeds the 100000000-byte cap" : "runs past"), "%s",
                           trit_last_error());
    }
    /* N = 0 and N = 1 are too short for an object. */
    memset(small, 0, sizeof small);
    cr_assert_eq(st_open_memory(small, 12, &f), TRIT_ERR_FORMAT);
    small[0] = 1;
    small[8] = '{';
    cr_assert_eq(st_open_memory(small, 12, &f), TRIT_ERR_FORMAT);
    cr_assert_eq(st_open_memory(NULL, 4, &f), TRIT_ERR_INVALID_ARG);
}

/* Every proper prefix of a valid file is refused cleanly: the last tensor ends at the last byte.
 * Each prefix is its own exact-size allocation, so a read past it is an ASan error. */
static void truncation_sweep(const uint8_t *file, size_t size) {
    for (size_t n = 0; n < size; n++) {
        uint8_t *prefix = malloc(n ? n : 1);
        memcpy(prefix, file, n);
        struct st_file f;
        enum trit_status st = st_open_memory(prefix, n, &f);
        cr_assert_eq(st, TRIT_ERR_FORMAT, "prefix of %zu/%zu bytes: got '%s' (%s)", n, size, trit_status_str(st),
                     trit_last_error());
        free(prefix);
    }
}

Test(safetensors, truncated_at_every_byte) {
    struct test_rng rng;
    test_rng_seed(&rng, 0x7c);
    struct spec specs[] = {{"e", ST_BF16, 2, {2, 3}}, {"n", ST_F32, 1, {2}}, {"q", ST_U8, 1, {3}}};
    uint8_t *data;
    size_t data_bytes, size;
    uint8_t *file = build(specs, 3, "{\"format\":\"pt\"}", &rng, &data, &data_bytes, &size);
    truncation_sweep(file, size);
    free(file);
    free(data);

    /* The reference writer's file, through st_open on real truncated files for a few lengths too. */
    FILE *fp = fopen(test_data_path("hf/tiny-single/model.safetensors"), "rb");
    cr_assert_not_null(fp);
    static uint8_t ref[4096];
    size_t n = fread(ref, 1, sizeof ref, fp);
    fclose(fp);
    cr_assert(n > 100 && n < sizeof ref);
    truncation_sweep(ref, n);
    tmp_make();
    const size_t cuts[] = {0, 7, 8, 9, n / 2, n - 1};
    for (size_t i = 0; i < sizeof cuts / sizeof cuts[0]; i++) {
        tmp_write("cut.safetensors", ref, cuts[i]);
        struct st_file f;
        cr_assert_eq(st_open(tmp_path("cut.safetensors"), &f), TRIT_ERR_FORMAT, "cut at %zu: %s", cuts[i],
                     trit_last_error());
    }
    const char *files[] = {"cut.safetensors"};
    tmp_cleanup(files, 1);
}

/* Single-byte mutations of a valid file: any status is fine, a crash or an ASan report is not, and
 * an accepted file still has every tensor inside the map. */
Test(safetensors, byte_mutations_never_crash) {
    struct test_rng rng;
    test_rng_seed(&rng, 0x33);
    struct spec specs[] = {{"a", ST_F16, 1, {3}}, {"bb", ST_I8, 2, {1, 2}}};
    uint8_t *data;
    size_t data_bytes, size;
    uint8_t *file = build(specs, 2, NULL, &rng, &data, &data_bytes, &size);
    const uint8_t values[] = {0x00, 0x01, 0x20, '"', ',', '-', '0', '9', '[', ']', '{', '}', 0x7f, 0xff};
    uint8_t *copy = malloc(size);
    int accepted = 0;
    for (size_t i = 0; i < size; i++) {
        for (size_t v = 0; v < sizeof values; v++) {
            memcpy(copy, file, size);
            copy[i] = values[v];
            struct st_file f;
            if (st_open_memory(copy, size, &f) == TRIT_OK) {
                accepted++;
                for (int64_t t = 0; t < f.n_tensors; t++) {
                    const struct st_tensor *x = &f.tensors[t];
                    cr_assert(x->data >= f.data && x->data + x->n_bytes <= f.map + f.size);
                }
                st_close(&f);
            }
        }
    }
    cr_assert_gt(accepted, 0); /* mutations inside the data bytes keep the file valid */
    free(copy);
    free(file);
    free(data);
}

Test(safetensors, open_errors) {
    struct st_file f;
    cr_assert_eq(st_open("/nonexistent/trit/model.safetensors", &f), TRIT_ERR_NOT_FOUND);
    cr_assert_not_null(strstr(trit_last_error(), "/nonexistent/trit/model.safetensors"));
    tmp_make();
    cr_assert_eq(st_open(tmp_dir, &f), TRIT_ERR_IO); /* a directory */
    tmp_write("empty.safetensors", "", 0);
    cr_assert_eq(st_open(tmp_path("empty.safetensors"), &f), TRIT_ERR_FORMAT);
    cr_assert_eq(f.map, NULL);
    cr_assert_eq(st_open(NULL, &f), TRIT_ERR_INVALID_ARG);
    const char *files[] = {"empty.safetensors"};
    tmp_cleanup(files, 1);
}
