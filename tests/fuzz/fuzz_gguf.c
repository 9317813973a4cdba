/*
 * fuzz_gguf.c: libFuzzer target for the GGUF reader (and, through a round trip, the writer).
 *
 * Each input is parsed with gguf_open_memory. A failure must come with a "gguf: " message. On
 * success every metadata pair, array element and tensor is walked through the public getters, the
 * parsed invariants are checked (aligned data section, tensor data inside the input, no two tensors'
 * data overlapping), and the file is copied through the writer (gguf_writer_copy_kv +
 * gguf_writer_add_tensor) and parsed again: the copy must parse and hold the same keys, values and
 * tensor bytes. Then every tensor the parser could not size (Q2_0, type 36 outside bitnet.cpp's
 * architectures, unknown ids) is sized to its byte span as the model loader would
 * (gguf_tensor_span, gguf_tensor_set_bytes): a span never reaches past the file, a sizing either
 * succeeds inside the file and disjoint from every other tensor or fails with a "gguf: " message.
 * A broken invariant traps.
 *
 *   CC=clang cmake -S . -B build-fuzz -DTRIT_FUZZ=ON -DTRIT_CUDA=OFF && cmake --build build-fuzz -j2
 *   build-fuzz/tests/fuzz/fuzz_gguf -max_total_time=60 /tmp/gguf-work tests/fuzz/corpus/gguf
 *
 * The seed corpus (tests/fuzz/corpus/gguf) is written by this file's generator, built without
 * libFuzzer:
 *   cc -std=c11 -D_POSIX_C_SOURCE=200809L -DFUZZ_GGUF_MAKE_SEEDS -Iinclude -Ihost tests/fuzz/fuzz_gguf.c \
 *      host/core/status.c host/core/alloc.c host/core/file.c host/io/gguf.c host/io/gguf_writer.c -lm \
 *      -o /tmp/gguf_seeds
 *   /tmp/gguf_seeds tests/fuzz/corpus/gguf
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/core.h"
#include "io/gguf.h"

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "fuzz_gguf: check failed: %s (line %d); last error: %s\n", #cond,      \
                    __LINE__, trit_last_error());                                                  \
            __builtin_trap();                                                                      \
        }                                                                                          \
    } while (0)

/* Keeps reads of mapped bytes from being optimized away. */
static volatile uint64_t sink;

/* A NUL-terminated copy of a key or name (the reader rejects embedded NULs). */
static char *cstr(struct gguf_str s) {
    char *c = malloc(s.len + 1);
    CHECK(c != NULL);
    memcpy(c, s.ptr, s.len);
    c[s.len] = '\0';
    return c;
}

static int range_cmp(const void *pa, const void *pb) {
    const uint64_t *a = pa, *b = pb;
    return a[0] < b[0] ? -1 : a[0] > b[0];
}

/* No two non-empty tensors share a byte: sorted by start, each begins at or after the previous end. */
static void check_disjoint(const struct gguf_file *f) {
    uint64_t(*r)[2] = malloc((size_t)(f->n_tensors ? f->n_tensors : 1) * sizeof *r);
    CHECK(r != NULL);
    size_t n = 0;
    for (int64_t i = 0; i < f->n_tensors; i++)
        if (f->tensors[i].n_bytes) {
            r[n][0] = f->tensors[i].offset;
            r[n][1] = f->tensors[i].offset + f->tensors[i].n_bytes;
            n++;
        }
    qsort(r, n, sizeof *r, range_cmp);
    for (size_t k = 1; k < n; k++) CHECK(r[k][0] >= r[k - 1][1]);
    free(r);
}

static void walk(const struct gguf_file *f) {
    CHECK(f->alignment != 0 && (f->alignment & (f->alignment - 1)) == 0);
    CHECK(f->data_offset % f->alignment == 0);
    for (int64_t i = 0; i < f->n_kv; i++) {
        const struct gguf_kv *kv = &f->kv[i];
        char *key = cstr(kv->key);
        CHECK(gguf_find_kv(f, key) == kv); /* keys are unique */
        uint64_t u;
        int64_t s;
        double d;
        bool b;
        char buf[32];
        enum trit_status st = gguf_get_u64(f, key, &u);
        CHECK(st == TRIT_OK || st == TRIT_ERR_FORMAT);
        if (st == TRIT_OK) sink += u;
        st = gguf_get_i64(f, key, &s);
        CHECK(st == TRIT_OK || st == TRIT_ERR_FORMAT);
        st = gguf_get_f64(f, key, &d);
        CHECK(st == TRIT_OK || st == TRIT_ERR_FORMAT);
        st = gguf_get_bool(f, key, &b);
        CHECK(st == TRIT_OK || st == TRIT_ERR_FORMAT);
        st = gguf_get_str(f, key, buf, sizeof buf);
        CHECK(st == TRIT_OK || st == TRIT_ERR_FORMAT);
        if (st == TRIT_OK) CHECK(strlen(buf) == kv->str.len);
        CHECK((gguf_get_str(f, key, buf, sizeof buf) == TRIT_OK) ==
              (kv->type == GGUF_TYPE_STRING && kv->str.len < sizeof buf && !memchr(kv->str.ptr, 0, kv->str.len)));
        if (kv->type == GGUF_TYPE_STRING) {
            CHECK((const uint8_t *)kv->str.ptr >= f->map && (const uint8_t *)kv->str.ptr + kv->str.len <= f->map + f->size);
            for (uint64_t k = 0; k < kv->str.len; k++) sink += (uint8_t)kv->str.ptr[k];
        }
        if (kv->type == GGUF_TYPE_ARRAY) {
            CHECK(kv->arr_type != GGUF_TYPE_ARRAY);
            for (uint64_t j = 0; j < kv->arr_n; j++) {
                if (kv->arr_type == GGUF_TYPE_STRING) {
                    struct gguf_str e = gguf_arr_str(kv, j);
                    CHECK(e.ptr != NULL);
                    CHECK((const uint8_t *)e.ptr >= f->map && (const uint8_t *)e.ptr + e.len <= f->map + f->size);
                    for (uint64_t k = 0; k < e.len; k++) sink += (uint8_t)e.ptr[k];
                } else {
                    sink += (uint64_t)gguf_arr_i64(kv, j);
                    d = gguf_arr_f64(kv, j);
                    sink += d == d;
                }
            }
            CHECK(gguf_arr_str(kv, kv->arr_n).ptr == NULL);
        }
        free(key);
    }
    for (int64_t i = 0; i < f->n_tensors; i++) {
        const struct gguf_tensor_info *t = &f->tensors[i];
        char *name = cstr(t->name);
        CHECK(gguf_find_tensor(f, name) == t); /* names are unique */
        CHECK(t->name.len >= 1 && t->name.len <= 63 && t->n_dims <= GGUF_MAX_DIMS);
        CHECK(t->offset % f->alignment == 0);
        sink += strlen(gguf_type_name(t->type, f->bitnet_ids));
        if (t->n_bytes) {
            CHECK(t->data != NULL);
            CHECK(t->data >= f->map + f->data_offset && t->data + t->n_bytes <= f->map + f->size);
            CHECK((uint64_t)(t->data - f->map) % f->alignment == 0);
            sink += t->data[0] + t->data[t->n_bytes - 1];
        } else {
            CHECK(t->data == NULL);
        }
        free(name);
    }
    check_disjoint(f);
}

/* Raw value bytes of a scalar kv in its file: after the key and the i32 type tag. */
static const uint8_t *scalar_bytes(const struct gguf_file *f, const struct gguf_kv *kv) {
    return f->map + kv->offset + 8 + kv->key.len + 4;
}

static void round_trip(const struct gguf_file *f) {
    struct gguf_writer *w;
    CHECK(gguf_writer_init(&w) == TRIT_OK);
    CHECK(gguf_writer_copy_kv(w, f, NULL, NULL) == TRIT_OK);
    for (int64_t i = 0; i < f->n_tensors; i++) {
        const struct gguf_tensor_info *t = &f->tensors[i];
        char *name = cstr(t->name);
        CHECK(gguf_writer_add_tensor(w, name, t->type, t->n_dims, t->ne, t->data, t->n_bytes) == TRIT_OK);
        free(name);
    }
    uint8_t *buf;
    uint64_t size;
    CHECK(gguf_writer_write_mem(w, &buf, &size) == TRIT_OK);
    gguf_writer_free(w);

    struct gguf_file g;
    CHECK(gguf_open_memory(buf, size, &g) == TRIT_OK);
    CHECK(g.version == 3 && g.n_kv == f->n_kv && g.n_tensors == f->n_tensors);
    CHECK(g.alignment == f->alignment && g.bitnet_ids == f->bitnet_ids);
    for (int64_t i = 0; i < f->n_kv; i++) {
        const struct gguf_kv *a = &f->kv[i], *b = &g.kv[i];
        CHECK(a->key.len == b->key.len && memcmp(a->key.ptr, b->key.ptr, a->key.len) == 0);
        CHECK(a->type == b->type);
        if (a->type == GGUF_TYPE_STRING) {
            CHECK(a->str.len == b->str.len && memcmp(a->str.ptr, b->str.ptr, a->str.len) == 0);
        } else if (a->type == GGUF_TYPE_ARRAY) {
            CHECK(a->arr_type == b->arr_type && a->arr_n == b->arr_n);
            if (a->arr_type == GGUF_TYPE_STRING) {
                for (uint64_t j = 0; j < a->arr_n; j++) {
                    struct gguf_str x = gguf_arr_str(a, j), y = gguf_arr_str(b, j);
                    CHECK(x.len == y.len && memcmp(x.ptr, y.ptr, x.len) == 0);
                }
            } else {
                CHECK(memcmp(a->arr_data, b->arr_data, a->arr_n * gguf_value_size(a->arr_type)) == 0);
            }
        } else {
            CHECK(memcmp(scalar_bytes(f, a), scalar_bytes(&g, b), gguf_value_size(a->type)) == 0);
        }
    }
    for (int64_t i = 0; i < f->n_tensors; i++) {
        const struct gguf_tensor_info *a = &f->tensors[i], *b = &g.tensors[i];
        CHECK(a->type == b->type && a->n_dims == b->n_dims && a->n_bytes == b->n_bytes);
        CHECK(memcmp(a->ne, b->ne, sizeof a->ne) == 0);
        if (a->n_bytes) CHECK(memcmp(a->data, b->data, a->n_bytes) == 0);
    }
    gguf_close(&g);
    trit_free(buf);
}

/* Sizes every unsized tensor with elements to its whole span, as the model loader sizes Q2_0 and
 * type 36 (to at most the span), then checks the file's invariants again. */
static void size_late(struct gguf_file *f) {
    for (int64_t i = 0; i < f->n_tensors; i++) {
        const struct gguf_tensor_info *t = &f->tensors[i];
        if (t->data) continue;
        const uint64_t span = gguf_tensor_span(f, i);
        CHECK(t->offset <= f->size - f->data_offset && span <= f->size - f->data_offset - t->offset);
        if (span == 0) continue;
        enum trit_status st = gguf_tensor_set_bytes(f, i, span);
        CHECK(st == TRIT_OK || st == TRIT_ERR_FORMAT);
        if (st != TRIT_OK) CHECK(strncmp(trit_last_error(), "gguf: ", 6) == 0);
        else CHECK(t->n_bytes == span && t->data == f->map + f->data_offset + t->offset);
        if (st == TRIT_OK) CHECK(gguf_tensor_set_bytes(f, i, 1) == TRIT_ERR_INVALID_ARG); /* sized once */
    }
    walk(f);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    struct gguf_file f;
    enum trit_status st = gguf_open_memory(data, size, &f);
    if (st != TRIT_OK) {
        CHECK(st == TRIT_ERR_FORMAT);
        CHECK(strncmp(trit_last_error(), "gguf: ", 6) == 0);
        CHECK(f.kv == NULL && f.tensors == NULL && f.map == NULL);
        return 0;
    }
    walk(&f);
    round_trip(&f);
    size_late(&f);
    gguf_close(&f);
    return 0;
}

/* ---- seed generator (see the header) -------------------------------------------------------- */
#ifdef FUZZ_GGUF_MAKE_SEEDS
static void save(struct gguf_writer *w, const char *dir, const char *name, uint32_t version) {
    uint8_t *buf;
    uint64_t size;
    CHECK(gguf_writer_write_mem(w, &buf, &size) == TRIT_OK);
    memcpy(buf + 4, &version, 4); /* v2 and v3 share the layout */
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *fp = fopen(path, "wb");
    CHECK(fp != NULL);
    CHECK(fwrite(buf, 1, size, fp) == size);
    fclose(fp);
    LLVMFuzzerTestOneInput(buf, size); /* every seed must parse and round-trip */
    printf("%s: %llu bytes\n", path, (unsigned long long)size);
    trit_free(buf);
    gguf_writer_free(w);
}

/* As save, with tensor `name`'s data offset field set to `offset` after writing. */
static void save_patched(struct gguf_writer *w, const char *dir, const char *file, const char *name, uint64_t offset) {
    uint8_t *buf;
    uint64_t size;
    CHECK(gguf_writer_write_mem(w, &buf, &size) == TRIT_OK);
    struct gguf_file f;
    CHECK(gguf_open_memory(buf, size, &f) == TRIT_OK);
    const struct gguf_tensor_info *t = gguf_find_tensor(&f, name);
    CHECK(t != NULL);
    /* name bytes, then u32 n_dims, i64 ne[n_dims], i32 type, u64 offset */
    uint64_t at = (uint64_t)((const uint8_t *)t->name.ptr - f.map) + t->name.len + 4 + 8 * t->n_dims + 4;
    gguf_close(&f);
    memcpy(buf + at, &offset, 8);
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", dir, file);
    FILE *fp = fopen(path, "wb");
    CHECK(fp != NULL);
    CHECK(fwrite(buf, 1, size, fp) == size);
    fclose(fp);
    CHECK(gguf_open_memory(buf, size, &f) == TRIT_ERR_FORMAT); /* the seed is a refused file */
    LLVMFuzzerTestOneInput(buf, size);
    printf("%s: %llu bytes\n", path, (unsigned long long)size);
    trit_free(buf);
    gguf_writer_free(w);
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: %s <corpus dir>\n", argv[0]);
        return 2;
    }
    struct gguf_writer *w;
    uint8_t bytes[512];
    for (int i = 0; i < 512; i++) bytes[i] = (uint8_t)(i * 37 + 11);

    /* 1: an empty file (header only) */
    CHECK(gguf_writer_init(&w) == TRIT_OK);
    save(w, argv[1], "empty_v3.gguf", 3);

    /* 2: a vocabulary, like llama.cpp's ggml-vocab-*.gguf (no tensors) */
    CHECK(gguf_writer_init(&w) == TRIT_OK);
    const char *toks[6] = {"<unk>", "<s>", "</s>", "\xe2\x96\x81the", "a", ""};
    float scores[6] = {0, 0, 0, -1.5f, -2.25f, -3};
    int32_t types[6] = {2, 3, 3, 1, 1, 1};
    const char *merges[2] = {"\xc4\xa0 t", "h e"};
    CHECK(gguf_writer_set_str(w, "general.architecture", "llama") == TRIT_OK);
    CHECK(gguf_writer_set_str(w, "tokenizer.ggml.model", "llama") == TRIT_OK);
    CHECK(gguf_writer_set_arr_str(w, "tokenizer.ggml.tokens", toks, 6) == TRIT_OK);
    CHECK(gguf_writer_set_arr(w, "tokenizer.ggml.scores", GGUF_TYPE_FLOAT32, scores, 6) == TRIT_OK);
    CHECK(gguf_writer_set_arr(w, "tokenizer.ggml.token_type", GGUF_TYPE_INT32, types, 6) == TRIT_OK);
    CHECK(gguf_writer_set_arr_str(w, "tokenizer.ggml.merges", merges, 2) == TRIT_OK);
    CHECK(gguf_writer_set_u32(w, "tokenizer.ggml.bos_token_id", 1) == TRIT_OK);
    CHECK(gguf_writer_set_bool(w, "tokenizer.ggml.add_bos_token", true) == TRIT_OK);
    save(w, argv[1], "vocab.gguf", 3);

    /* 3: bitnet.cpp layout: I2_S (id 36) weights and an F32 norm */
    CHECK(gguf_writer_init(&w) == TRIT_OK);
    CHECK(gguf_writer_set_str(w, "general.architecture", "bitnet-b1.58") == TRIT_OK);
    CHECK(gguf_writer_set_u32(w, "general.file_type", 40) == TRIT_OK);
    CHECK(gguf_writer_set_u32(w, "bitnet-b1.58.block_count", 1) == TRIT_OK);
    int64_t ne_q[2] = {128, 2}, ne_n[1] = {16};
    CHECK(gguf_writer_add_tensor(w, "blk.0.attn_q.weight", GGML_TYPE_I2_S_BITNET, 2, ne_q, bytes, 128 * 2 / 4 + 32) == TRIT_OK);
    CHECK(gguf_writer_add_tensor(w, "blk.0.attn_norm.weight", GGML_TYPE_F32, 1, ne_n, bytes, 64) == TRIT_OK);
    save(w, argv[1], "bitnet_i2s.gguf", 3);

    /* 4: every scalar type and an array of each; TQ2_0, F16 and an unknown type; alignment 16 */
    CHECK(gguf_writer_init(&w) == TRIT_OK);
    CHECK(gguf_writer_set_str(w, "general.architecture", "bitnet") == TRIT_OK);
    CHECK(gguf_writer_set_u32(w, "general.alignment", 16) == TRIT_OK);
    static const enum gguf_type scalars[] = {GGUF_TYPE_UINT8,   GGUF_TYPE_INT8,  GGUF_TYPE_UINT16, GGUF_TYPE_INT16,
                                             GGUF_TYPE_UINT32,  GGUF_TYPE_INT32, GGUF_TYPE_FLOAT32, GGUF_TYPE_BOOL,
                                             GGUF_TYPE_UINT64, GGUF_TYPE_INT64, GGUF_TYPE_FLOAT64};
    for (size_t i = 0; i < sizeof scalars / sizeof scalars[0]; i++) {
        char key[64];
        uint8_t one[8] = {1, 0, 0, 0, 0, 0, 0, 0};
        snprintf(key, sizeof key, "t.%s", gguf_value_type_name(scalars[i]));
        CHECK(gguf_writer_set_val(w, key, scalars[i], one) == TRIT_OK);
        snprintf(key, sizeof key, "t.arr.%s", gguf_value_type_name(scalars[i]));
        CHECK(gguf_writer_set_arr(w, key, scalars[i], scalars[i] == GGUF_TYPE_BOOL ? one : bytes, 3) == TRIT_OK);
    }
    int64_t ne_t[2] = {256, 1}, ne_h[2] = {3, 2};
    CHECK(gguf_writer_add_tensor(w, "blk.0.ffn_up.weight", GGML_TYPE_TQ2_0, 2, ne_t, bytes, 66) == TRIT_OK);
    CHECK(gguf_writer_add_tensor(w, "token_embd.weight", GGML_TYPE_F16, 2, ne_h, bytes, 12) == TRIT_OK);
    CHECK(gguf_writer_add_tensor(w, "mystery", 99, 2, ne_h, bytes, 8) == TRIT_OK);
    save(w, argv[1], "all_types.gguf", 3);

    /* 5: version 2, alignment 8, Q8_0 and I8 */
    CHECK(gguf_writer_init(&w) == TRIT_OK);
    CHECK(gguf_writer_set_str(w, "general.architecture", "llama") == TRIT_OK);
    CHECK(gguf_writer_set_u32(w, "general.alignment", 8) == TRIT_OK);
    int64_t ne_8[2] = {32, 1}, ne_i[3] = {5, 1, 3};
    CHECK(gguf_writer_add_tensor(w, "output.weight", GGML_TYPE_Q8_0, 2, ne_8, bytes, 34) == TRIT_OK);
    CHECK(gguf_writer_add_tensor(w, "x", GGML_TYPE_I8, 3, ne_i, bytes, 15) == TRIT_OK);
    save(w, argv[1], "v2_align8.gguf", 2);

    /* 6: two tensors at one data offset (refused: overlapping data), a start for mutating offsets */
    CHECK(gguf_writer_init(&w) == TRIT_OK);
    CHECK(gguf_writer_set_str(w, "general.architecture", "bitnet-b1.58") == TRIT_OK);
    int64_t ne_a[1] = {16}, ne_b[1] = {8};
    CHECK(gguf_writer_add_tensor(w, "blk.0.attn_norm.weight", GGML_TYPE_F32, 1, ne_a, bytes, 64) == TRIT_OK);
    CHECK(gguf_writer_add_tensor(w, "blk.0.ffn_norm.weight", GGML_TYPE_F32, 1, ne_b, bytes, 32) == TRIT_OK);
    save_patched(w, argv[1], "overlap.gguf", "blk.0.ffn_norm.weight", 0);

    /* 7: qwen3 with Q2_0 (id 42) weights in PrismML's blocks of 128 (34 bytes), sized by their span */
    CHECK(gguf_writer_init(&w) == TRIT_OK);
    CHECK(gguf_writer_set_str(w, "general.architecture", "qwen3") == TRIT_OK);
    CHECK(gguf_writer_set_u32(w, "general.file_type", 41) == TRIT_OK);
    CHECK(gguf_writer_set_u32(w, "qwen3.block_count", 1) == TRIT_OK);
    int64_t ne_g[2] = {128, 2}, ne_kn[1] = {64};
    CHECK(gguf_writer_add_tensor(w, "blk.0.attn_q.weight", GGML_TYPE_Q2_0, 2, ne_g, bytes, 2 * 34) == TRIT_OK);
    CHECK(gguf_writer_add_tensor(w, "blk.0.attn_k_norm.weight", GGML_TYPE_F32, 1, ne_kn, bytes, 256) == TRIT_OK);
    CHECK(gguf_writer_add_tensor(w, "blk.0.attn_k.weight", GGML_TYPE_Q2_0, 2, ne_g, bytes, 2 * 34) == TRIT_OK);
    save(w, argv[1], "qwen3_q2_0.gguf", 3);

    /* 8: bitnet.cpp's I2_S under the `bitnet` architecture (id 36 unsized by the parser) */
    CHECK(gguf_writer_init(&w) == TRIT_OK);
    CHECK(gguf_writer_set_str(w, "general.architecture", "bitnet") == TRIT_OK);
    CHECK(gguf_writer_add_tensor(w, "blk.0.attn_q.weight", GGML_TYPE_I2_S_BITNET, 2, ne_q, bytes, 128 * 2 / 4 + 32) == TRIT_OK);
    CHECK(gguf_writer_add_tensor(w, "blk.0.attn_norm.weight", GGML_TYPE_F32, 1, ne_n, bytes, 64) == TRIT_OK);
    save(w, argv[1], "bitnet_i2s_by_span.gguf", 3);
    return 0;
}
#endif
