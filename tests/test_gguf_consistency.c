// labels: unit
/*
 * test_gguf_consistency.c: a GGUF model file's tensors against its hyperparameters and against each
 * other. Each test builds a tiny bitnet-b1.58 file (F32 weights holding -1, 0 and +1, read exactly)
 * through the writer, breaks one thing, and loads it through trit_model_load_path:
 *   - block_count smaller or larger than the layers present;
 *   - two tensors at one data offset, a partial overlap, data past the end, a misaligned offset;
 *   - a shape that differs from what the hyperparameters give (weights, norms, vocab_size, scales);
 *   - tensors the loader does not use: the file loads, with one warning through the log callback
 *     and an "unused" note each;
 *   - the same layer count and unused-tensor checks for a Hugging Face folder (num_hidden_layers);
 *   - hyperparameters trit cannot honour: a value or rotary width other than the key length
 *     (TRIT_ERR_UNSUPPORTED), context_length 0, an infinite norm eps or RoPE base (also from a
 *     Hugging Face config.json).
 * Every refusal is checked with its status and the exact message a user sees.
 *
 *   ctest --test-dir build -R test_gguf_consistency --output-on-failure
 */
#include <cjson/cJSON.h>
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/core.h"
#include "io/gguf.h"
#include "model/model.h"
#include "support.h"

/* ---- a tiny model, as a list of tensor infos ----------------------------------------------------- */

#define DIM 8
#define N_HEADS 2
#define N_KV_HEADS 1
#define HEAD_DIM 4
#define Q_DIM (N_HEADS * HEAD_DIM)     /* 8 */
#define KV_DIM (N_KV_HEADS * HEAD_DIM) /* 4 */
#define FFN 16
#define VOCAB 16
#define MAX_TENSORS 96

struct spec_tensor {
    char name[64];
    uint32_t n_dims;
    int64_t ne[GGUF_MAX_DIMS];
};

/* One extra metadata entry, bitnet-b1.58.<suffix>, of an integer or float GGUF type. */
struct spec_key {
    char suffix[64];
    enum gguf_type type; /* GGUF_TYPE_UINT32, _UINT64, _FLOAT32 or _FLOAT64 */
    uint64_t u;
    double d;
};

#define MAX_KEYS 8

struct spec {
    int64_t block_count;
    int64_t vocab_size; /* 0: no <arch>.vocab_size key */
    int n, n_keys;
    struct spec_tensor t[MAX_TENSORS];
    struct spec_key keys[MAX_KEYS];
};

static void spec_key(struct spec *s, const char *suffix, enum gguf_type type, uint64_t u, double d) {
    cr_assert_lt(s->n_keys, MAX_KEYS);
    struct spec_key *k = &s->keys[s->n_keys++];
    snprintf(k->suffix, sizeof k->suffix, "%s", suffix);
    k->type = type;
    k->u = u;
    k->d = d;
}

static void spec_add(struct spec *s, const char *name, uint32_t n_dims, int64_t ne0, int64_t ne1, int64_t ne2) {
    cr_assert_lt(s->n, MAX_TENSORS);
    struct spec_tensor *t = &s->t[s->n++];
    snprintf(t->name, sizeof t->name, "%s", name);
    t->n_dims = n_dims;
    t->ne[0] = ne0;
    t->ne[1] = ne1;
    t->ne[2] = ne2;
    t->ne[3] = 1;
}

static struct spec_tensor *spec_find(struct spec *s, const char *name) {
    for (int i = 0; i < s->n; i++)
        if (strcmp(s->t[i].name, name) == 0) return &s->t[i];
    cr_assert_fail("no tensor '%s' in the spec", name);
    return NULL;
}

static void spec_remove(struct spec *s, const char *name) {
    struct spec_tensor *t = spec_find(s, name);
    int i = (int)(t - s->t);
    memmove(&s->t[i], &s->t[i + 1], (size_t)(s->n - i - 1) * sizeof s->t[0]);
    s->n--;
}

/* A consistent model of n_layers layers (block_count = n_layers), tensors in load order. */
static void spec_model(struct spec *s, int64_t n_layers) {
    memset(s, 0, sizeof *s);
    s->block_count = n_layers;
    spec_add(s, "token_embd.weight", 2, DIM, VOCAB, 1);
    spec_add(s, "output_norm.weight", 1, DIM, 1, 1);
    static const struct { const char *name; uint32_t n_dims; int64_t ne0, ne1; } layer[] = {
        {"attn_norm.weight", 1, DIM, 1},     {"attn_q.weight", 2, DIM, Q_DIM},  {"attn_k.weight", 2, DIM, KV_DIM},
        {"attn_v.weight", 2, DIM, KV_DIM},   {"attn_sub_norm.weight", 1, Q_DIM, 1},
        {"attn_output.weight", 2, Q_DIM, DIM}, {"ffn_norm.weight", 1, DIM, 1}, {"ffn_gate.weight", 2, DIM, FFN},
        {"ffn_up.weight", 2, DIM, FFN},      {"ffn_sub_norm.weight", 1, FFN, 1}, {"ffn_down.weight", 2, FFN, DIM},
    };
    for (int64_t i = 0; i < n_layers; i++)
        for (size_t k = 0; k < sizeof layer / sizeof layer[0]; k++) {
            char name[64];
            snprintf(name, sizeof name, "blk.%lld.%s", (long long)i, layer[k].name);
            spec_add(s, name, layer[k].n_dims, layer[k].ne0, layer[k].ne1, 1);
        }
}

/* The file's bytes (trit_free them). Every tensor is F32: one-element tensors hold 1 (a valid
 * scale), the others -1, 0, +1 in turn (ternary times 1, which the loader recovers exactly). */
static uint8_t *spec_bytes(const struct spec *s, uint64_t *size) {
    struct gguf_writer *w;
    cr_assert_eq(gguf_writer_init(&w), TRIT_OK);
    cr_assert_eq(gguf_writer_set_str(w, "general.architecture", "bitnet-b1.58"), TRIT_OK);
    cr_assert_eq(gguf_writer_set_u32(w, "bitnet-b1.58.block_count", (uint32_t)s->block_count), TRIT_OK);
    cr_assert_eq(gguf_writer_set_u32(w, "bitnet-b1.58.embedding_length", DIM), TRIT_OK);
    cr_assert_eq(gguf_writer_set_u32(w, "bitnet-b1.58.feed_forward_length", FFN), TRIT_OK);
    cr_assert_eq(gguf_writer_set_u32(w, "bitnet-b1.58.attention.head_count", N_HEADS), TRIT_OK);
    cr_assert_eq(gguf_writer_set_u32(w, "bitnet-b1.58.attention.head_count_kv", N_KV_HEADS), TRIT_OK);
    if (s->vocab_size) cr_assert_eq(gguf_writer_set_u32(w, "bitnet-b1.58.vocab_size", (uint32_t)s->vocab_size), TRIT_OK);
    for (int i = 0; i < s->n_keys; i++) {
        const struct spec_key *k = &s->keys[i];
        char key[96];
        snprintf(key, sizeof key, "bitnet-b1.58.%s", k->suffix);
        const uint32_t u32 = (uint32_t)k->u;
        const float f32 = (float)k->d;
        const void *v = k->type == GGUF_TYPE_UINT32  ? (const void *)&u32
                        : k->type == GGUF_TYPE_UINT64 ? (const void *)&k->u
                        : k->type == GGUF_TYPE_FLOAT32 ? (const void *)&f32
                                                       : (const void *)&k->d;
        cr_assert_eq(gguf_writer_set_val(w, key, k->type, v), TRIT_OK, "%s", key);
    }
    float *data[MAX_TENSORS];
    for (int i = 0; i < s->n; i++) {
        const struct spec_tensor *t = &s->t[i];
        const int64_t n = t->ne[0] * t->ne[1] * t->ne[2] * t->ne[3];
        data[i] = malloc((size_t)(n ? n : 1) * sizeof(float));
        cr_assert_not_null(data[i]);
        for (int64_t j = 0; j < n; j++) data[i][j] = n == 1 ? 1.0f : (float)(j % 3 - 1);
        cr_assert_eq(gguf_writer_add_tensor(w, t->name, GGML_TYPE_F32, t->n_dims, t->ne, data[i], (uint64_t)n * 4),
                     TRIT_OK, "%s: %s", t->name, trit_last_error());
    }
    uint8_t *buf;
    cr_assert_eq(gguf_writer_write_mem(w, &buf, size), TRIT_OK, "%s", trit_last_error());
    gguf_writer_free(w);
    for (int i = 0; i < s->n; i++) free(data[i]);
    return buf;
}

/* Byte position of tensor `name`'s data offset field in the file, and the offset it holds. */
static uint64_t offset_field(const uint8_t *buf, uint64_t size, const char *name, uint64_t *offset) {
    struct gguf_file f;
    cr_assert_eq(gguf_open_memory(buf, size, &f), TRIT_OK, "%s", trit_last_error());
    const struct gguf_tensor_info *t = gguf_find_tensor(&f, name);
    cr_assert_not_null(t, "%s", name);
    /* name bytes, then u32 n_dims, i64 ne[n_dims], i32 type, u64 offset */
    uint64_t at = (uint64_t)((const uint8_t *)t->name.ptr - f.map) + t->name.len + 4 + 8 * t->n_dims + 4;
    *offset = t->offset;
    gguf_close(&f);
    return at;
}

/* Positions are found while the file is still valid; the patches then make it hostile. */
static void patch_offset(uint8_t *buf, uint64_t field_at, uint64_t offset) { memcpy(buf + field_at, &offset, 8); }

static uint64_t get_offset(const uint8_t *buf, uint64_t size, const char *name) {
    uint64_t off;
    offset_field(buf, size, name, &off);
    return off;
}

static uint64_t field_of(const uint8_t *buf, uint64_t size, const char *name) {
    uint64_t off;
    return offset_field(buf, size, name, &off);
}

static uint64_t data_offset(const uint8_t *buf, uint64_t size) {
    struct gguf_file f;
    cr_assert_eq(gguf_open_memory(buf, size, &f), TRIT_OK);
    uint64_t d = f.data_offset;
    gguf_close(&f);
    return d;
}

/* ---- loading, with the log captured ------------------------------------------------------------ */

struct captured {
    int n_warn;
    char warn[4][1024];
};

static void capture(enum trit_log_level level, const char *line, void *user) {
    struct captured *c = user;
    if (level != TRIT_LOG_WARN) return;
    if (c->n_warn < 4) snprintf(c->warn[c->n_warn], sizeof c->warn[0], "%s", line);
    c->n_warn++;
}

static char g_path[512];

static const char *file_path(void) {
    snprintf(g_path, sizeof g_path, "%s/test_gguf_consistency_%d.gguf", TRIT_BINARY_DIR, (int)getpid());
    return g_path;
}

/* Writes the bytes to a file and loads it; *m is released unless keep. */
static enum trit_status load_bytes(const uint8_t *buf, uint64_t size, struct captured *log, struct trit_model *keep) {
    const char *path = file_path();
    FILE *fp = fopen(path, "wb");
    cr_assert_not_null(fp);
    cr_assert_eq(fwrite(buf, 1, size, fp), size);
    fclose(fp);
    struct captured ignore;
    struct captured *c = log ? log : &ignore;
    memset(c, 0, sizeof *c);
    trit_log_set_callback(capture, c);
    struct trit_model m;
    enum trit_status st = trit_model_load_path(path, NULL, &m);
    trit_log_set_callback(NULL, NULL);
    unlink(path);
    if (st == TRIT_OK) {
        if (keep) *keep = m;
        else trit_model_release(&m);
    }
    return st;
}

static enum trit_status load_spec(const struct spec *s, struct captured *log, struct trit_model *keep) {
    uint64_t size;
    uint8_t *buf = spec_bytes(s, &size);
    enum trit_status st = load_bytes(buf, size, log, keep);
    trit_free(buf);
    return st;
}

/* The load must fail with `want_st` and exactly the message `full`. */
static void expect_status(enum trit_status st, enum trit_status want_st, const char *full) {
    cr_assert_eq(st, want_st, "expected %s, got %s (%s)", trit_status_str(want_st), trit_status_str(st), trit_last_error());
    cr_assert_str_eq(trit_last_error(), full);
}

/* The load must fail with TRIT_ERR_FORMAT and exactly `want` followed by " (in PATH)". */
static void expect_error(enum trit_status st, const char *want) {
    char full[1024];
    snprintf(full, sizeof full, "%s (in %s)", want, file_path());
    expect_status(st, TRIT_ERR_FORMAT, full);
}

/* ---- the reference: a consistent file loads, with nothing to report ------------------------------ */

Test(gguf_consistency, consistent_file_loads_silently) {
    struct spec s;
    spec_model(&s, 4);
    s.vocab_size = VOCAB;
    struct captured log;
    struct trit_model m;
    cr_assert_eq(load_spec(&s, &log, &m), TRIT_OK, "%s", trit_last_error());
    cr_assert_eq(m.hp.n_layers, 4);
    cr_assert_eq(m.hp.n_vocab, VOCAB);
    cr_assert_eq(log.n_warn, 0, "%s", log.warn[0]);
    cr_assert_eq(m.n_notes, 2 + 4 * 11, "every tensor is read, none is unused");
    for (int64_t i = 0; i < m.n_notes; i++) cr_assert_str_neq(m.notes[i].kind, "unused");
    trit_model_release(&m);
}

/* ---- block_count ---------------------------------------------------------------------------------- */

/* A 4-layer file that says 3 layers used to run 3 of them. */
Test(gguf_consistency, block_count_smaller_than_the_layers) {
    struct spec s;
    spec_model(&s, 4);
    s.block_count = 3;
    expect_error(load_spec(&s, NULL, NULL),
                 "gguf: tensor 'blk.3.attn_norm.weight': layer 3, but bitnet-b1.58.block_count is 3");

    /* one stray tensor of a far layer, of a name the loader does not even read */
    spec_model(&s, 2);
    spec_add(&s, "blk.17.attn_q.bias", 1, Q_DIM, 1, 1);
    expect_error(load_spec(&s, NULL, NULL),
                 "gguf: tensor 'blk.17.attn_q.bias': layer 17, but bitnet-b1.58.block_count is 2");
}

Test(gguf_consistency, block_count_larger_than_the_layers) {
    struct spec s;
    spec_model(&s, 4);
    s.block_count = 5;
    expect_error(load_spec(&s, NULL, NULL),
                 "gguf: tensor 'blk.4.attn_norm.weight' is missing: bitnet-b1.58.block_count is 5, but the file's layers stop at 3");

    /* a hole inside the layers */
    spec_model(&s, 4);
    spec_remove(&s, "blk.1.ffn_up.weight");
    expect_error(load_spec(&s, NULL, NULL), "gguf: tensor 'blk.1.ffn_up.weight' is missing");
    spec_model(&s, 2);
    spec_remove(&s, "blk.1.ffn_sub_norm.weight"); /* required: this family has sub-norms */
    expect_error(load_spec(&s, NULL, NULL), "gguf: tensor 'blk.1.ffn_sub_norm.weight' is missing");
}

/* ---- data ranges ---------------------------------------------------------------------------------- */

Test(gguf_consistency, two_tensors_at_one_offset) {
    struct spec s;
    spec_model(&s, 1);
    uint64_t size;
    uint8_t *buf = spec_bytes(&s, &size);
    const uint64_t d = data_offset(buf, size), q = get_offset(buf, size, "blk.0.attn_q.weight");
    patch_offset(buf, field_of(buf, size, "blk.0.attn_k.weight"), q);
    char want[256];
    /* attn_q: 8 x 8 F32 = 256 bytes; attn_k: 8 x 4 F32 = 128 bytes */
    snprintf(want, sizeof want,
             "gguf: tensors 'blk.0.attn_q.weight' (data [%llu, %llu)) and 'blk.0.attn_k.weight' (data [%llu, %llu)) overlap",
             (unsigned long long)(d + q), (unsigned long long)(d + q + 256), (unsigned long long)(d + q),
             (unsigned long long)(d + q + 128));
    expect_error(load_bytes(buf, size, NULL, NULL), want);
    trit_free(buf);
}

Test(gguf_consistency, partial_overlap) {
    struct spec s;
    spec_model(&s, 1);
    uint64_t size;
    uint8_t *buf = spec_bytes(&s, &size);
    const uint64_t d = data_offset(buf, size), q = get_offset(buf, size, "blk.0.attn_q.weight");
    const uint64_t k_at = field_of(buf, size, "blk.0.attn_k.weight"), v_at = field_of(buf, size, "blk.0.attn_v.weight");
    const uint64_t k = get_offset(buf, size, "blk.0.attn_k.weight"), v = get_offset(buf, size, "blk.0.attn_v.weight");
    cr_assert_eq(k, q + 256);
    cr_assert_eq(v, k + 128);
    /* attn_v (128 bytes) starts 32 bytes before attn_q's end: aligned, but straddling it */
    patch_offset(buf, v_at, q + 224);
    char want[256];
    snprintf(want, sizeof want,
             "gguf: tensors 'blk.0.attn_q.weight' (data [%llu, %llu)) and 'blk.0.attn_v.weight' (data [%llu, %llu)) overlap",
             (unsigned long long)(d + q), (unsigned long long)(d + q + 256), (unsigned long long)(d + q + 224),
             (unsigned long long)(d + q + 352));
    expect_error(load_bytes(buf, size, NULL, NULL), want);

    /* touching is not overlapping: attn_k and attn_v swapped, each starting where the other ends */
    patch_offset(buf, v_at, k);
    patch_offset(buf, k_at, k + 128);
    cr_assert_eq(load_bytes(buf, size, NULL, NULL), TRIT_OK, "%s", trit_last_error());
    trit_free(buf);
}

/* These three were refused before the consistency checks too; pinned here at the model level. */
Test(gguf_consistency, data_past_the_end_or_misaligned) {
    struct spec s;
    spec_model(&s, 1);
    uint64_t size;
    uint8_t *buf = spec_bytes(&s, &size);
    const uint64_t d = data_offset(buf, size), at = field_of(buf, size, "blk.0.ffn_down.weight");
    char want[256];
    patch_offset(buf, at, size - d); /* 512 bytes at the file's end */
    snprintf(want, sizeof want, "gguf: tensor 'blk.0.ffn_down.weight': data [%llu, %llu) runs past the end of the file (size %llu)",
             (unsigned long long)size, (unsigned long long)(size + 512), (unsigned long long)size);
    expect_error(load_bytes(buf, size, NULL, NULL), want);

    patch_offset(buf, at, UINT64_MAX - 31); /* offset + size wraps */
    snprintf(want, sizeof want, "gguf: tensor 'blk.0.ffn_down.weight': data offset %llu + 512 bytes past the data section at byte %llu overflows",
             (unsigned long long)(UINT64_MAX - 31), (unsigned long long)d);
    expect_error(load_bytes(buf, size, NULL, NULL), want);

    patch_offset(buf, at, 16);
    snprintf(want, sizeof want, "gguf: tensor 'blk.0.ffn_down.weight': data offset 16 is not a multiple of the alignment 32 (data section at byte %llu)",
             (unsigned long long)d);
    expect_error(load_bytes(buf, size, NULL, NULL), want);
    trit_free(buf);
}

/* ---- shapes --------------------------------------------------------------------------------------- */

Test(gguf_consistency, wrong_shapes) {
    struct spec s;
    spec_model(&s, 2);
    *spec_find(&s, "blk.1.attn_q.weight") = (struct spec_tensor){"blk.1.attn_q.weight", 2, {DIM, 4, 1, 1}};
    expect_error(load_spec(&s, NULL, NULL),
                 "gguf: tensor 'blk.1.attn_q.weight' has shape [8, 4], but the hyperparameters give [8, 8] (embedding_length, head_count x key_length)");

    /* transposed */
    spec_model(&s, 2);
    *spec_find(&s, "blk.0.ffn_down.weight") = (struct spec_tensor){"blk.0.ffn_down.weight", 2, {DIM, FFN, 1, 1}};
    expect_error(load_spec(&s, NULL, NULL),
                 "gguf: tensor 'blk.0.ffn_down.weight' has shape [8, 16], but the hyperparameters give [16, 8] (feed_forward_length, embedding_length)");

    /* the same element count in another shape used to load */
    spec_model(&s, 2);
    *spec_find(&s, "blk.0.ffn_sub_norm.weight") = (struct spec_tensor){"blk.0.ffn_sub_norm.weight", 2, {DIM, 2, 1, 1}};
    expect_error(load_spec(&s, NULL, NULL),
                 "gguf: tensor 'blk.0.ffn_sub_norm.weight' has shape [8, 2], but the hyperparameters give [16] (feed_forward_length)");
    spec_model(&s, 2);
    *spec_find(&s, "blk.0.attn_k.weight") = (struct spec_tensor){"blk.0.attn_k.weight", 3, {DIM, 2, 2, 1}};
    expect_error(load_spec(&s, NULL, NULL),
                 "gguf: tensor 'blk.0.attn_k.weight' has shape [8, 2, 2], but the hyperparameters give [8, 4] (embedding_length, head_count_kv x key_length)");

    /* a vector written with a trailing 1 is the same shape */
    spec_model(&s, 2);
    *spec_find(&s, "output_norm.weight") = (struct spec_tensor){"output_norm.weight", 2, {DIM, 1, 1, 1}};
    cr_assert_eq(load_spec(&s, NULL, NULL), TRIT_OK, "%s", trit_last_error());

    /* vocab_size against the embedding, and the head against the embedding */
    spec_model(&s, 2);
    s.vocab_size = 20;
    expect_error(load_spec(&s, NULL, NULL),
                 "gguf: tensor 'token_embd.weight' has shape [8, 16], but the hyperparameters give [8, 20] (embedding_length, vocab_size)");
    spec_model(&s, 2);
    spec_add(&s, "output.weight", 2, DIM, 12, 1);
    expect_error(load_spec(&s, NULL, NULL),
                 "gguf: tensor 'output.weight' has shape [8, 12], but the hyperparameters give [8, 16] (embedding_length, token_embd.weight's rows)");

    /* a scale is one value */
    spec_model(&s, 2);
    spec_add(&s, "blk.0.attn_q.scale", 1, 2, 1, 1);
    expect_error(load_spec(&s, NULL, NULL),
                 "gguf: tensor 'blk.0.attn_q.scale' has shape [2], but the hyperparameters give [1] (one scale)");
    spec_model(&s, 2);
    spec_add(&s, "blk.0.attn_q.scale", 1, 1, 1, 1);
    cr_assert_eq(load_spec(&s, NULL, NULL), TRIT_OK, "%s", trit_last_error());
}

/* ---- tensors the loader does not read --------------------------------------------------------------- */

Test(gguf_consistency, unknown_tensors_are_reported) {
    struct spec s;
    spec_model(&s, 2);
    spec_add(&s, "blk.0.attn_q.bias", 1, Q_DIM, 1, 1);
    spec_add(&s, "rope_freqs.weight", 1, 2, 1, 1);
    struct captured log;
    struct trit_model m;
    cr_assert_eq(load_spec(&s, &log, &m), TRIT_OK, "%s", trit_last_error());
    char want[1024];
    snprintf(want, sizeof want, "%s: 2 tensors that trit does not use, ignored: 'blk.0.attn_q.bias', 'rope_freqs.weight'",
             file_path());
    cr_assert_eq(log.n_warn, 1);
    cr_assert_str_eq(log.warn[0], want);
    /* listed, so that `trit inspect` shows them */
    int n_unused = 0;
    for (int64_t i = 0; i < m.n_notes; i++) {
        if (strcmp(m.notes[i].kind, "unused") != 0) continue;
        n_unused++;
        if (strcmp(m.notes[i].name, "blk.0.attn_q.bias") == 0) {
            cr_assert_eq(m.notes[i].n_rows, 1);
            cr_assert_eq(m.notes[i].n_cols, Q_DIM);
            cr_assert_eq(m.notes[i].file_bytes, Q_DIM * 4);
        } else {
            cr_assert_str_eq(m.notes[i].name, "rope_freqs.weight");
        }
    }
    cr_assert_eq(n_unused, 2);
    trit_model_release(&m);

    /* `trit inspect --json` lists them as unused_tensors, apart from the tensors it reads */
    uint64_t size;
    uint8_t *bytes = spec_bytes(&s, &size);
    FILE *fp = fopen(file_path(), "wb");
    cr_assert_not_null(fp);
    cr_assert_eq(fwrite(bytes, 1, size, fp), size);
    fclose(fp);
    trit_free(bytes);
    char cmd[1400];
    snprintf(cmd, sizeof cmd, "'%s/trit' inspect --json '%s' 2>/dev/null", TRIT_BINARY_DIR, file_path());
    FILE *p = popen(cmd, "r");
    cr_assert_not_null(p);
    static char out[1 << 16];
    const size_t n_out = fread(out, 1, sizeof out - 1, p);
    out[n_out] = '\0';
    pclose(p);
    unlink(file_path());
    cJSON *r = cJSON_Parse(out);
    cr_assert_not_null(r, "trit inspect --json printed:\n%s", out);
    const cJSON *unused = cJSON_GetObjectItemCaseSensitive(r, "unused_tensors"), *t;
    cr_assert_eq(cJSON_GetArraySize(unused), 2, "%s", out);
    cr_assert_str_eq(cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(unused, 0), "name")->valuestring,
                     "blk.0.attn_q.bias");
    cJSON_ArrayForEach(t, cJSON_GetObjectItemCaseSensitive(r, "tensors"))
        cr_assert_str_neq(cJSON_GetObjectItemCaseSensitive(t, "kind")->valuestring, "unused");
    cJSON_Delete(r);

    /* many: the first four by name, and the count; "blk.01." is not a layer name the loader reads */
    spec_model(&s, 2);
    const char *extra[] = {"blk.01.attn_q.weight", "blk.0.attn_norm.bias", "x", "blk.1.ffn_norm.scale",
                           "blk.1.", "output_norm.bias"};
    for (size_t i = 0; i < sizeof extra / sizeof extra[0]; i++) spec_add(&s, extra[i], 1, 4, 1, 1);
    cr_assert_eq(load_spec(&s, &log, NULL), TRIT_OK, "%s", trit_last_error());
    snprintf(want, sizeof want,
             "%s: 6 tensors that trit does not use, ignored: 'blk.01.attn_q.weight', 'blk.0.attn_norm.bias', 'x', 'blk.1.ffn_norm.scale' and 2 more",
             file_path());
    cr_assert_eq(log.n_warn, 1);
    cr_assert_str_eq(log.warn[0], want);
}

/* ---- hyperparameters trit cannot honour ----------------------------------------------------------------
 * Each of these used to load and run (exit 0): a value or rotary width other than the head's was
 * ignored, an infinite eps made every logit 0, context_length 0 failed later in the backend. */

/* A value head of another width, or partial rotary, would run wrong: refused whatever the value. */
Test(gguf_consistency, value_and_rope_widths_must_equal_key_length) {
    static const struct { const char *suffix, *supports; } keys[] = {
        {"attention.value_length", "a value length equal to the key length"},
        {"rope.dimension_count", "RoPE over whole heads: a dimension count equal to the key length"},
    };
    static const uint64_t bad[] = {0, 2, 8, 65, 4294967295u};
    struct spec s;
    for (size_t k = 0; k < sizeof keys / sizeof keys[0]; k++) {
        for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
            spec_model(&s, 1);
            spec_key(&s, keys[k].suffix, GGUF_TYPE_UINT32, bad[i], 0);
            char full[1024];
            snprintf(full, sizeof full, "gguf: bitnet-b1.58.%s = %llu, but trit supports only %s (4) (in %s)", keys[k].suffix,
                     (unsigned long long)bad[i], keys[k].supports, file_path());
            expect_status(load_spec(&s, NULL, NULL), TRIT_ERR_UNSUPPORTED, full);
        }
        spec_model(&s, 1);
        spec_key(&s, "attention.key_length", GGUF_TYPE_UINT32, HEAD_DIM, 0);
        spec_key(&s, keys[k].suffix, GGUF_TYPE_UINT64, HEAD_DIM, 0);
        cr_assert_eq(load_spec(&s, NULL, NULL), TRIT_OK, "%s: %s", keys[k].suffix, trit_last_error());
    }
}

Test(gguf_consistency, context_length_must_be_positive) {
    struct spec s;
    spec_model(&s, 1);
    spec_key(&s, "context_length", GGUF_TYPE_UINT32, 0, 0);
    expect_error(load_spec(&s, NULL, NULL), "gguf: bitnet-b1.58.context_length = 0 is outside the valid range [1, 2147483647]");
    spec_model(&s, 1);
    spec_key(&s, "context_length", GGUF_TYPE_UINT64, (uint64_t)1 << 31, 0);
    expect_error(load_spec(&s, NULL, NULL),
                 "gguf: bitnet-b1.58.context_length = 2147483648 is outside the valid range [1, 2147483647]");
    spec_model(&s, 1);
    spec_key(&s, "context_length", GGUF_TYPE_UINT32, 1, 0);
    struct trit_model m;
    cr_assert_eq(load_spec(&s, NULL, &m), TRIT_OK, "%s", trit_last_error());
    cr_assert_eq(m.hp.ctx_train, 1);
    trit_model_release(&m);
}

/* The check is trit_model_validate's, so every loader has it; the message names the values only. */
Test(gguf_consistency, norm_eps_and_rope_base_must_be_finite) {
    static const struct { const char *suffix; enum gguf_type type; double v; const char *want; } cases[] = {
        {"attention.layer_norm_rms_epsilon", GGUF_TYPE_FLOAT32, INFINITY, "norm eps inf and rope theta 10000 must be finite and positive"},
        {"attention.layer_norm_rms_epsilon", GGUF_TYPE_FLOAT32, -INFINITY, "norm eps -inf and rope theta 10000 must be finite and positive"},
        /* finite in the file, infinite as the float trit computes with */
        {"attention.layer_norm_rms_epsilon", GGUF_TYPE_FLOAT64, 1e300, "norm eps inf and rope theta 10000 must be finite and positive"},
        {"rope.freq_base", GGUF_TYPE_FLOAT32, INFINITY, "norm eps 1e-05 and rope theta inf must be finite and positive"},
        {"rope.freq_base", GGUF_TYPE_FLOAT32, NAN, "norm eps 1e-05 and rope theta nan must be finite and positive"},
        {"rope.freq_base", GGUF_TYPE_FLOAT32, 0.0, "norm eps 1e-05 and rope theta 0 must be finite and positive"},
    };
    struct spec s;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        spec_model(&s, 1);
        spec_key(&s, cases[i].suffix, cases[i].type, 0, cases[i].v);
        expect_status(load_spec(&s, NULL, NULL), TRIT_ERR_FORMAT, cases[i].want);
    }
    spec_model(&s, 1);
    spec_key(&s, "attention.layer_norm_rms_epsilon", GGUF_TYPE_FLOAT32, 0, 1e-6);
    spec_key(&s, "rope.freq_base", GGUF_TYPE_FLOAT64, 0, 5e5);
    cr_assert_eq(load_spec(&s, NULL, NULL), TRIT_OK, "%s", trit_last_error());
}

/* ---- the same consistency in a Hugging Face folder ---------------------------------------------------
 * A bitnet (relu2) folder with F32 weights holding -1, 0, +1 and a tied embedding, written by hand:
 * config.json and one model.safetensors (host/io/safetensors.h gives the layout). */

struct hf_spec {
    int64_t num_hidden_layers;
    const char *extra_config; /* NULL, or more config.json members: "\"k\": v" */
    int n;
    struct {
        char name[96];
        int64_t rows, cols; /* cols 0: a vector of `rows` */
    } t[MAX_TENSORS];
};

static void hf_add(struct hf_spec *s, const char *name, int64_t rows, int64_t cols) {
    cr_assert_lt(s->n, MAX_TENSORS);
    snprintf(s->t[s->n].name, sizeof s->t[0].name, "%s", name);
    s->t[s->n].rows = rows;
    s->t[s->n].cols = cols;
    s->n++;
}

static void hf_model(struct hf_spec *s, int64_t n_layers) {
    memset(s, 0, sizeof *s);
    s->num_hidden_layers = n_layers;
    hf_add(s, "model.embed_tokens.weight", VOCAB, DIM);
    hf_add(s, "model.norm.weight", DIM, 0);
    static const struct { const char *name; int64_t rows, cols; } layer[] = {
        {"input_layernorm.weight", DIM, 0},       {"self_attn.q_proj.weight", Q_DIM, DIM},
        {"self_attn.k_proj.weight", KV_DIM, DIM}, {"self_attn.v_proj.weight", KV_DIM, DIM},
        {"self_attn.attn_sub_norm.weight", Q_DIM, 0}, {"self_attn.o_proj.weight", DIM, Q_DIM},
        {"post_attention_layernorm.weight", DIM, 0}, {"mlp.gate_proj.weight", FFN, DIM},
        {"mlp.up_proj.weight", FFN, DIM},         {"mlp.ffn_sub_norm.weight", FFN, 0},
        {"mlp.down_proj.weight", DIM, FFN},
    };
    for (int64_t i = 0; i < n_layers; i++)
        for (size_t k = 0; k < sizeof layer / sizeof layer[0]; k++) {
            char name[96];
            snprintf(name, sizeof name, "model.layers.%lld.%s", (long long)i, layer[k].name);
            hf_add(s, name, layer[k].rows, layer[k].cols);
        }
}

static char g_dir[512];

static const char *hf_dir(void) {
    snprintf(g_dir, sizeof g_dir, "%s/test_gguf_consistency_hf_%d", TRIT_BINARY_DIR, (int)getpid());
    return g_dir;
}

static void write_text(const char *path, const char *text) {
    FILE *fp = fopen(path, "wb");
    cr_assert_not_null(fp, "%s", path);
    cr_assert_eq(fwrite(text, 1, strlen(text), fp), strlen(text));
    fclose(fp);
}

static enum trit_status load_hf(const struct hf_spec *s, struct captured *log) {
    const char *dir = hf_dir();
    char path[640], config[1024];
    mkdir(dir, 0755);
    snprintf(config, sizeof config,
             "{\"model_type\": \"bitnet\", \"architectures\": [\"BitNetForCausalLM\"], \"hidden_act\": \"relu2\","
             " \"hidden_size\": %d, \"intermediate_size\": %d, \"num_hidden_layers\": %lld,"
             " \"num_attention_heads\": %d, \"num_key_value_heads\": %d, \"vocab_size\": %d,"
             " \"tie_word_embeddings\": true%s%s}",
             DIM, FFN, (long long)s->num_hidden_layers, N_HEADS, N_KV_HEADS, VOCAB, s->extra_config ? ", " : "",
             s->extra_config ? s->extra_config : "");
    snprintf(path, sizeof path, "%s/config.json", dir);
    write_text(path, config);

    /* header: {"name": {"dtype": "F32", "shape": [...], "data_offsets": [b, e]}, ...}, padded to 8 */
    static char header[MAX_TENSORS * 160];
    size_t at = 0;
    uint64_t data_bytes = 0;
    at += (size_t)snprintf(header + at, sizeof header - at, "{");
    for (int i = 0; i < s->n; i++) {
        const int64_t n = s->t[i].rows * (s->t[i].cols ? s->t[i].cols : 1);
        char shape[64];
        if (s->t[i].cols) snprintf(shape, sizeof shape, "[%lld, %lld]", (long long)s->t[i].rows, (long long)s->t[i].cols);
        else snprintf(shape, sizeof shape, "[%lld]", (long long)s->t[i].rows);
        at += (size_t)snprintf(header + at, sizeof header - at, "%s\"%s\": {\"dtype\": \"F32\", \"shape\": %s, \"data_offsets\": [%llu, %llu]}",
                               i ? ", " : "", s->t[i].name, shape, (unsigned long long)data_bytes,
                               (unsigned long long)(data_bytes + (uint64_t)n * 4));
        data_bytes += (uint64_t)n * 4;
    }
    at += (size_t)snprintf(header + at, sizeof header - at, "}");
    cr_assert_lt(at + 8, sizeof header);
    while (at % 8) header[at++] = ' ';
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    FILE *fp = fopen(path, "wb");
    cr_assert_not_null(fp);
    const uint64_t header_len = at;
    fwrite(&header_len, 8, 1, fp);
    fwrite(header, 1, at, fp);
    for (uint64_t j = 0; j < data_bytes / 4; j++) {
        const float v = (float)((int64_t)(j % 3) - 1);
        fwrite(&v, 4, 1, fp);
    }
    fclose(fp);

    struct captured ignore;
    struct captured *c = log ? log : &ignore;
    memset(c, 0, sizeof *c);
    trit_log_set_callback(capture, c);
    struct trit_model m;
    enum trit_status st = trit_model_load_path(dir, NULL, &m);
    trit_log_set_callback(NULL, NULL);
    if (st == TRIT_OK) trit_model_release(&m);
    unlink(path);
    snprintf(path, sizeof path, "%s/config.json", dir);
    unlink(path);
    rmdir(dir);
    return st;
}

static void expect_hf_error(enum trit_status st, const char *want) {
    char full[1024];
    snprintf(full, sizeof full, "%s: %s", hf_dir(), want);
    cr_assert_eq(st, TRIT_ERR_FORMAT, "expected TRIT_ERR_FORMAT, got %s (%s)", trit_status_str(st), trit_last_error());
    cr_assert_str_eq(trit_last_error(), full);
}

Test(gguf_consistency, hf_folder_layers_and_unused_tensors) {
    struct hf_spec s;
    struct captured log;
    hf_model(&s, 4);
    cr_assert_eq(load_hf(&s, &log), TRIT_OK, "%s", trit_last_error());
    cr_assert_eq(log.n_warn, 0, "%s", log.warn[0]);

    /* tensors are sorted by name: input_layernorm is layer 3's first */
    s.num_hidden_layers = 3;
    expect_hf_error(load_hf(&s, NULL), "tensor 'model.layers.3.input_layernorm.weight': layer 3, but num_hidden_layers is 3");
    s.num_hidden_layers = 5;
    expect_hf_error(load_hf(&s, NULL),
                    "tensor 'model.layers.4.input_layernorm.weight' is missing: num_hidden_layers is 5, but the weights' layers stop at 3");

    /* a norm of the right element count in another shape */
    hf_model(&s, 2);
    s.t[1].rows = 4;
    s.t[1].cols = 2;
    cr_assert_str_eq(s.t[1].name, "model.norm.weight");
    expect_hf_error(load_hf(&s, NULL), "tensor 'model.norm.weight' has shape [4, 2], expected [8]");

    /* a tied model's lm_head, a rotary table, a weight_scale beside a float weight: loaded, reported */
    hf_model(&s, 2);
    hf_add(&s, "model.layers.1.self_attn.rotary_emb.inv_freq", 2, 0);
    hf_add(&s, "lm_head.weight", VOCAB, DIM);
    hf_add(&s, "model.layers.0.mlp.up_proj.weight_scale", 1, 0);
    cr_assert_eq(load_hf(&s, &log), TRIT_OK, "%s", trit_last_error());
    char want[1024];
    snprintf(want, sizeof want,
             "%s: 3 tensors that trit does not use, ignored: 'lm_head.weight', 'model.layers.0.mlp.up_proj.weight_scale', 'model.layers.1.self_attn.rotary_emb.inv_freq'",
             hf_dir());
    cr_assert_eq(log.n_warn, 1);
    cr_assert_str_eq(log.warn[0], want);
}

/* The same limits from a config.json: a finite double that is infinite as a float, and a context of
 * 0 (json_get_int's range, refused before this test too). */
Test(gguf_consistency, hf_folder_hyperparameter_limits) {
    struct hf_spec s;
    hf_model(&s, 1);
    s.extra_config = "\"rope_theta\": 1e300";
    expect_status(load_hf(&s, NULL), TRIT_ERR_FORMAT, "norm eps 1e-05 and rope theta inf must be finite and positive");
    s.extra_config = "\"rms_norm_eps\": 1e39";
    expect_status(load_hf(&s, NULL), TRIT_ERR_FORMAT, "norm eps inf and rope theta 10000 must be finite and positive");
    s.extra_config = "\"max_position_embeddings\": 0";
    char full[1024];
    snprintf(full, sizeof full, "%s/config.json: 'max_position_embeddings' is 0, outside the valid range [1, 2147483647]", hf_dir());
    expect_status(load_hf(&s, NULL), TRIT_ERR_FORMAT, full);
    s.extra_config = "\"max_position_embeddings\": 1, \"rope_theta\": 500000, \"rms_norm_eps\": 1e-06";
    cr_assert_eq(load_hf(&s, NULL), TRIT_OK, "%s", trit_last_error());
}
