// labels: unit
/*
 * test_gguf_span.c: the GGUF type ids trit sizes by their byte span (host/model/model_gguf.c), and the
 * files `trit convert` writes for group-scaled models.
 *
 *   - a qwen3 model built in memory (group-scaled ternary weights with +2 codes and signed fp16
 *     scales, q/k norms) written by trit_convert_model as Q2_0 in groups of 64 and of 128 loads back
 *     bit-identical (trit_ternary_equal, norms bit for bit), with family, qk_norm, act_block and the
 *     notes ("Q2_0 g128"); converting that file again gives the same bytes;
 *   - rows Q2_0 cannot hold (192 columns in groups of 128) are written as F32 t * d and read back by
 *     value; a float qwen3 file whose weights are group-ternary loads, one that is not is refused;
 *   - a Q2_0 embedding dequantizes exactly to F16, or to F32 when a +2 code overflows fp16;
 *   - the g64/g128 decision: every tensor ambiguous (a large general.alignment), two tensors that prove
 *     different blocks, a truncated last tensor, a row of 192 with the bytes of blocks of 128, a .scale
 *     tensor next to a Q2_0 weight: each refused with its message;
 *   - Q2_0 under bitnet-b1.58, bitnet and llama (act_block stays 0);
 *   - I2_S (type 36) under bitnet and llama: accepted by span; an ambiguous span, the span of
 *     llama.cpp's old IQ4_NL_4_4 and a code 3 in the codes are refused;
 *   - `trit inspect --json` names the family, q/k norms, activation blocks, group scales and Q2_0
 *     kinds, and says why a refused file cannot run.
 * Files are written by trit's own writer and then rewritten tensor by tensor (rewrite()) to break
 * one thing at a time; no Python, no network.
 *
 *   ctest --test-dir build -R test_gguf_span --output-on-failure
 */
#include <cjson/cJSON.h>
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io/gguf.h"
#include "model/convert.h"
#include "model/model.h"
#include "support.h"

#define VOCAB 64
#define N_LAYERS 2
#define N_HEADS 2
#define N_KV_HEADS 1
#define HEAD_DIM 64
#define FFN 256

TestSuite(gguf_span, .init = test_tmp_make, .fini = test_tmp_remove);

/* ---- a model in memory ------------------------------------------------------------------------- */

/* Random codes (-1..+1, and +2 where group-scaled) and scales that are fp16 values (negative ones
 * too when `signed_scales`), so that Q2_0 holds them exactly. */
static void random_weight(struct test_rng *rng, int64_t n_rows, int64_t n_cols, int64_t group, bool signed_scales,
                          struct trit_ternary *w) {
    if (group > 0) cr_assert_eq(trit_ternary_init_grouped(w, n_rows, n_cols, group), TRIT_OK);
    else cr_assert_eq(trit_ternary_init(w, n_rows, n_cols), TRIT_OK);
    for (int64_t r = 0; r < n_rows; r++)
        for (int64_t c = 0; c < n_cols; c++) trit_ternary_set(w, r, c, (int)test_rng_int(rng, -1, group > 0 ? 2 : 1));
    const float sign = signed_scales && test_rng_int(rng, 0, 1) ? -1.0f : 1.0f;
    if (group == 0) w->scale = trit_fp16_to_fp32(trit_fp32_to_fp16(test_rng_uniform(rng, 0.01f, 2.0f)));
    for (int64_t i = 0; i < n_rows * trit_ternary_n_groups(w); i++) {
        const float s = signed_scales && test_rng_int(rng, 0, 1) ? -sign : sign;
        w->group_scales[i] = s * trit_fp16_to_fp32(trit_fp32_to_fp16(test_rng_uniform(rng, 0.001f, 0.1f)));
    }
}

static float *random_norm(struct test_rng *rng, int64_t n) {
    float *v = trit_alloc((size_t)n * sizeof *v);
    cr_assert_not_null(v);
    for (int64_t i = 0; i < n; i++) v[i] = test_rng_uniform(rng, 0.5f, 1.5f);
    return v;
}

/* A two-layer model of `family` (dim x FFN, 2 heads of 64, one kv head, tied F16 embedding) whose
 * weights have a scale per `group` columns (0: one per tensor). */
static void build_model(struct trit_model *m, enum trit_family family, int64_t dim, int64_t group, bool signed_scales,
                        uint64_t seed) {
    struct test_rng rng;
    test_rng_seed(&rng, seed);
    memset(m, 0, sizeof *m);
    struct trit_hparams *hp = &m->hp;
    hp->family = family;
    hp->n_vocab = VOCAB;
    hp->dim = dim;
    hp->n_layers = N_LAYERS;
    hp->n_heads = N_HEADS;
    hp->n_kv_heads = N_KV_HEADS;
    hp->head_dim = HEAD_DIM;
    hp->ffn_dim = FFN;
    hp->ctx_train = 256;
    hp->norm_eps = 1e-6f;
    hp->rope_theta = 1e6f;
    hp->act = family == TRIT_FAMILY_BITNET_B158 ? TRIT_ACT_RELU2 : TRIT_ACT_SILU;
    /* llama's GGUF rotates pairs: built that way, the writer keeps the rows as they are */
    hp->rope_style = family == TRIT_FAMILY_LLAMA ? TRIT_ROPE_NORM : TRIT_ROPE_NEOX;
    hp->sub_norms = family == TRIT_FAMILY_BITNET_B158 || family == TRIT_FAMILY_BITNET;
    hp->tied_embeddings = true;
    hp->qk_norm = family == TRIT_FAMILY_QWEN3;
    hp->act_block = family == TRIT_FAMILY_QWEN3 ? TRIT_GROUP_UNIT : 0;
    uint16_t *embd = trit_alloc((size_t)(VOCAB * dim) * sizeof *embd);
    cr_assert_not_null(embd);
    for (int64_t i = 0; i < VOCAB * dim; i++) embd[i] = trit_fp32_to_fp16(test_rng_normal(&rng));
    m->tok_embd = (struct trit_dense){.dtype = TRIT_DTYPE_F16, .n_rows = VOCAB, .n_cols = dim, .data = embd, .owned = embd};
    m->output = m->tok_embd; /* tied: freed once (trit_model_release compares the two) */
    m->out_norm = random_norm(&rng, dim);
    m->layers = trit_alloc(N_LAYERS * sizeof *m->layers);
    cr_assert_not_null(m->layers);
    for (int64_t i = 0; i < N_LAYERS; i++) {
        struct trit_layer *l = &m->layers[i];
        l->attn_norm = random_norm(&rng, dim);
        l->ffn_norm = random_norm(&rng, dim);
        if (hp->sub_norms) {
            l->attn_sub_norm = random_norm(&rng, N_HEADS * HEAD_DIM);
            l->ffn_sub_norm = random_norm(&rng, FFN);
        }
        if (hp->qk_norm) {
            l->attn_q_norm = random_norm(&rng, HEAD_DIM);
            l->attn_k_norm = random_norm(&rng, HEAD_DIM);
        }
        for (int k = 0; k < TRIT_N_W; k++) {
            int64_t rows, cols;
            trit_weight_shape(hp, (enum trit_weight)k, &rows, &cols);
            random_weight(&rng, rows, cols, group, signed_scales, &l->w[k]);
        }
    }
    cr_assert_eq(trit_model_validate(m), TRIT_OK, "%s", trit_last_error());
}

static void write_model(const struct trit_model *m, const char *path, struct trit_convert_report *r) {
    struct trit_convert_report local;
    cr_assert_eq(trit_convert_model(m, path, NULL, r ? r : &local), TRIT_OK, "writing %s: %s", path, trit_last_error());
}

static struct trit_model load_ok(const char *path, enum trit_i2s_layout layout) {
    struct trit_model m;
    const struct trit_load_params lp = {.i2s_layout = layout};
    cr_assert_eq(trit_model_load_path(path, &lp, &m), TRIT_OK, "loading %s: %s", path, trit_last_error());
    return m;
}

static void expect_refused(const char *path, enum trit_status want, const char *needle, const char *needle2) {
    struct trit_model m;
    enum trit_status st = trit_model_load_path(path, NULL, &m);
    cr_assert_eq(st, want, "status %d (want %d): %s", (int)st, (int)want, trit_last_error());
    cr_assert_not_null(strstr(trit_last_error(), needle), "message '%s' lacks '%s'", trit_last_error(), needle);
    if (needle2) cr_assert_not_null(strstr(trit_last_error(), needle2), "message '%s' lacks '%s'", trit_last_error(), needle2);
}

static const char *note_kind(const struct trit_model *m, const char *name) {
    for (int64_t i = 0; i < m->n_notes; i++)
        if (strcmp(m->notes[i].name, name) == 0) return m->notes[i].kind;
    return "(not noted)";
}

/* The value of weight (r, c): t times its scale. */
static float value(const struct trit_ternary *w, int64_t r, int64_t c) {
    const float d = w->group > 0 ? w->group_scales[r * trit_ternary_n_groups(w) + c / w->group] : w->scale;
    return (float)trit_ternary_get(w, r, c) * d;
}

static void assert_same_values(const struct trit_ternary *a, const struct trit_ternary *b, const char *what) {
    cr_assert(a->n_rows == b->n_rows && a->n_cols == b->n_cols, "%s: shape", what);
    for (int64_t r = 0; r < a->n_rows; r++)
        for (int64_t c = 0; c < a->n_cols; c++)
            cr_assert(value(a, r, c) == value(b, r, c), "%s (%lld, %lld): %g vs %g", what, (long long)r, (long long)c,
                      (double)value(a, r, c), (double)value(b, r, c));
}

/* Every weight bit-identical (codes, group, group scales), every norm bit for bit. */
static void assert_identical(const struct trit_model *a, const struct trit_model *b) {
    const struct trit_hparams *x = &a->hp, *y = &b->hp;
    cr_assert(x->family == y->family && x->dim == y->dim && x->n_layers == y->n_layers && x->head_dim == y->head_dim &&
              x->qk_norm == y->qk_norm && x->act_block == y->act_block && x->sub_norms == y->sub_norms &&
              x->rope_style == y->rope_style && x->act == y->act && x->tied_embeddings == y->tied_embeddings);
    cr_assert_eq(memcmp(a->out_norm, b->out_norm, (size_t)x->dim * sizeof(float)), 0);
    for (int64_t i = 0; i < x->n_layers; i++) {
        const struct trit_layer *la = &a->layers[i], *lb = &b->layers[i];
        if (x->qk_norm) {
            cr_assert_eq(memcmp(la->attn_q_norm, lb->attn_q_norm, HEAD_DIM * sizeof(float)), 0);
            cr_assert_eq(memcmp(la->attn_k_norm, lb->attn_k_norm, HEAD_DIM * sizeof(float)), 0);
        } else {
            cr_assert(!lb->attn_q_norm && !lb->attn_k_norm);
        }
        for (int k = 0; k < TRIT_N_W; k++)
            cr_assert(trit_ternary_equal(&la->w[k], &lb->w[k]), "layer %lld %s: group %lld vs %lld", (long long)i,
                      trit_weights[k].gguf, (long long)la->w[k].group, (long long)lb->w[k].group);
    }
}

/* ---- rewriting a file ---------------------------------------------------------------------------- */

/* One tensor changed (type, shape, bytes), dropped, or added (a name the file lacks). */
struct edit {
    const char *name;
    uint32_t type;
    int64_t ne0, ne1; /* 0: the file's */
    const void *data;
    uint64_t n_bytes;
    bool drop;
};

struct rewrite_opts {
    uint32_t alignment; /* general.alignment to set; 0 keeps the file's */
    const char *last;   /* this tensor's data goes last */
    uint64_t cut;       /* bytes cut off the end */
    int64_t q2_group;   /* the block the source file's Q2_0 tensors have */
};

static const struct edit *find_edit(const struct edit *e, int n, const char *name) {
    for (int i = 0; i < n; i++)
        if (strcmp(e[i].name, name) == 0) return &e[i];
    return NULL;
}

static bool skip_alignment(const char *key, void *user) {
    (void)user;
    return strcmp(key, "general.alignment") == 0;
}

static void add_one(struct gguf_writer *w, const struct gguf_tensor_info *t, const char *name, const struct edit *e) {
    if (e && e->drop) return;
    int64_t ne[GGUF_MAX_DIMS];
    memcpy(ne, t->ne, sizeof ne);
    uint32_t n_dims = t->n_dims, type = t->type;
    const void *data = t->data;
    uint64_t n_bytes = t->n_bytes;
    if (e) {
        type = e->type;
        data = e->data;
        n_bytes = e->n_bytes;
        if (e->ne0) ne[0] = e->ne0, ne[1] = e->ne1, n_dims = 2;
    }
    cr_assert_eq(gguf_writer_add_tensor(w, name, type, n_dims, ne, data, n_bytes), TRIT_OK, "%s: %s", name, trit_last_error());
}

static void rewrite(const char *in, const char *out, const struct edit *edits, int n_edits, const struct rewrite_opts *o) {
    struct gguf_file f;
    cr_assert_eq(gguf_open(in, &f), TRIT_OK, "%s", trit_last_error());
    /* the tensors the parser cannot size by itself, sized as the test wrote them */
    for (int64_t i = 0; i < f.n_tensors; i++) {
        const struct gguf_tensor_info *t = &f.tensors[i];
        if (t->data) continue;
        int64_t b = -1;
        if (t->type == GGML_TYPE_Q2_0) b = trit_q2_0_bytes(t->ne[1], t->ne[0], o->q2_group);
        if (t->type == GGML_TYPE_I2_S_BITNET) b = trit_i2s_bytes(t->ne[1], t->ne[0]);
        cr_assert_gt(b, 0);
        cr_assert_eq(gguf_tensor_set_bytes(&f, i, (uint64_t)b), TRIT_OK, "%s", trit_last_error());
    }
    struct gguf_writer *w;
    cr_assert_eq(gguf_writer_init(&w), TRIT_OK);
    cr_assert_eq(gguf_writer_copy_kv(w, &f, o->alignment ? skip_alignment : NULL, NULL), TRIT_OK);
    if (o->alignment) cr_assert_eq(gguf_writer_set_u32(w, "general.alignment", o->alignment), TRIT_OK);
    const struct gguf_tensor_info *last = NULL;
    for (int64_t i = 0; i < f.n_tensors; i++) {
        const struct gguf_tensor_info *t = &f.tensors[i];
        char name[96];
        snprintf(name, sizeof name, "%.*s", (int)t->name.len, t->name.ptr);
        if (o->last && strcmp(name, o->last) == 0) {
            last = t;
            continue;
        }
        add_one(w, t, name, find_edit(edits, n_edits, name));
    }
    if (last) add_one(w, last, o->last, find_edit(edits, n_edits, o->last));
    for (int k = 0; k < n_edits; k++) /* additions */
        if (!edits[k].drop && !gguf_find_tensor(&f, edits[k].name)) {
            const int64_t ne[2] = {edits[k].ne0, edits[k].ne1};
            cr_assert_eq(gguf_writer_add_tensor(w, edits[k].name, edits[k].type, 2, ne, edits[k].data, edits[k].n_bytes),
                         TRIT_OK, "%s", trit_last_error());
        }
    uint8_t *buf;
    uint64_t size;
    cr_assert_eq(gguf_writer_write_mem(w, &buf, &size), TRIT_OK, "%s", trit_last_error());
    gguf_writer_free(w);
    gguf_close(&f);
    cr_assert_lt(o->cut, size);
    FILE *fp = fopen(out, "wb");
    cr_assert_not_null(fp);
    cr_assert_eq(fwrite(buf, 1, (size_t)(size - o->cut), fp), (size_t)(size - o->cut));
    cr_assert_eq(fclose(fp), 0);
    trit_free(buf);
}

/* Q2_0 bytes of w in blocks of `group` (a trit_alloc buffer). */
static uint8_t *q2_bytes(const struct trit_ternary *w, int64_t group, uint64_t *n_bytes) {
    struct trit_ternary g;
    const struct trit_ternary *src = w;
    if (w->group != group) { /* cut each scale into groups of `group` */
        cr_assert_eq(trit_ternary_init_grouped(&g, w->n_rows, w->n_cols, group), TRIT_OK);
        memcpy(g.codes, w->codes, (size_t)(w->n_rows * w->row_bytes));
        for (int64_t r = 0; r < w->n_rows; r++)
            for (int64_t j = 0; j < trit_ternary_n_groups(&g); j++)
                g.group_scales[r * trit_ternary_n_groups(&g) + j] = w->group_scales[r * trit_ternary_n_groups(w) + j * group / w->group];
        src = &g;
    }
    const int64_t b = trit_q2_0_bytes(w->n_rows, w->n_cols, group);
    cr_assert_gt(b, 0);
    uint8_t *buf = trit_alloc((size_t)b);
    cr_assert_not_null(buf);
    cr_assert_eq(trit_q2_0_encode(src, buf), TRIT_OK, "%s", trit_last_error());
    if (src == &g) trit_ternary_free(&g);
    *n_bytes = (uint64_t)b;
    return buf;
}

static bool same_file(const char *a, const char *b) {
    FILE *fa = fopen(a, "rb"), *fb = fopen(b, "rb");
    cr_assert(fa && fb);
    bool same = true;
    int ca, cb;
    do {
        ca = fgetc(fa);
        cb = fgetc(fb);
        if (ca != cb) same = false;
    } while (same && ca != EOF);
    fclose(fa);
    fclose(fb);
    return same;
}

/* ---- the writer: qwen3 Q2_0 files ------------------------------------------------------------- */

Test(gguf_span, qwen3_q2_0_written_and_read_back_bit_identical) {
    const int64_t groups[2] = {64, 128};
    for (int g = 0; g < 2; g++) {
        struct trit_model src;
        build_model(&src, TRIT_FAMILY_QWEN3, 128, groups[g], true, 0x5152 + (uint64_t)g);
        const char *path = test_tmp_path("q2.gguf");
        struct trit_convert_report r;
        write_model(&src, path, &r);
        cr_assert_str_eq(r.arch, "qwen3");
        cr_assert(r.checked);
        cr_assert_eq(r.n_ternary, N_LAYERS * TRIT_N_W);
        cr_assert_eq(r.n_ternary_q2_0, N_LAYERS * TRIT_N_W);
        cr_assert_eq(r.q2_0_group, groups[g]);
        cr_assert_eq(r.n_ternary_f32 + r.n_ternary_f16, 0);

        struct gguf_file f;
        cr_assert_eq(gguf_open(path, &f), TRIT_OK, "%s", trit_last_error());
        char arch[32];
        uint64_t ftype;
        cr_assert_eq(gguf_get_str(&f, "general.architecture", arch, sizeof arch), TRIT_OK);
        cr_assert_str_eq(arch, "qwen3");
        cr_assert_eq(gguf_get_u64(&f, "general.file_type", &ftype), TRIT_OK);
        cr_assert_eq(ftype, 41, "LLAMA_FTYPE_MOSTLY_Q2_0");
        const struct gguf_tensor_info *q = gguf_find_tensor(&f, "blk.1.attn_q.weight");
        cr_assert(q && q->type == GGML_TYPE_Q2_0 && q->data == NULL, "type 42, unsized until the loader decides");
        cr_assert_null(gguf_find_tensor(&f, "blk.1.attn_q.scale"), "group-scaled weights carry no .scale");
        cr_assert_not_null(gguf_find_tensor(&f, "blk.1.attn_k_norm.weight"));
        gguf_close(&f);

        struct trit_model m = load_ok(path, TRIT_I2S_X86);
        cr_assert(m.hp.family == TRIT_FAMILY_QWEN3 && m.hp.qk_norm && m.hp.act_block == TRIT_GROUP_UNIT &&
                  m.hp.rope_style == TRIT_ROPE_NEOX && !m.hp.sub_norms && m.hp.act == TRIT_ACT_SILU);
        assert_identical(&src, &m);
        cr_assert_str_eq(note_kind(&m, "blk.0.ffn_down.weight"), groups[g] == 64 ? "Q2_0 g64" : "Q2_0 g128");
        cr_assert_eq(m.tok_embd.dtype, TRIT_DTYPE_F16);
        cr_assert_eq(memcmp(m.tok_embd.data, src.tok_embd.data, VOCAB * 128 * 2), 0);
        trit_model_release(&m);

        /* GGUF -> GGUF is the identity on trit's own files (the first pass names the file) */
        struct trit_convert_params p = trit_convert_default_params();
        p.no_tokenizer = true;
        cr_assert_eq(trit_convert(path, test_tmp_path("a.gguf"), &p, &r), TRIT_OK, "%s", trit_last_error());
        cr_assert_eq(trit_convert(test_tmp_path("a.gguf"), test_tmp_path("b.gguf"), &p, &r), TRIT_OK, "%s", trit_last_error());
        cr_assert(same_file(test_tmp_path("a.gguf"), test_tmp_path("b.gguf")));
        trit_model_release(&src);
    }
}

Test(gguf_span, rows_q2_0_cannot_hold_are_written_as_f32_values) {
    /* dim 192 in groups of 128: q, k, v, gate and up have a partial last group; o and down do not */
    struct trit_model src;
    build_model(&src, TRIT_FAMILY_QWEN3, 192, 128, false, 0x192);
    const char *path = test_tmp_path("f32.gguf");
    struct trit_convert_report r;
    write_model(&src, path, &r);
    cr_assert_eq(r.n_ternary_f32, N_LAYERS * 5);
    cr_assert_eq(r.n_ternary_q2_0, N_LAYERS * 2);
    cr_assert_eq(r.q2_0_group, 128);
    struct trit_model m = load_ok(path, TRIT_I2S_X86);
    cr_assert_str_eq(note_kind(&m, "blk.0.attn_q.weight"), "F32 g128");
    cr_assert_str_eq(note_kind(&m, "blk.0.attn_output.weight"), "Q2_0 g128");
    for (int64_t i = 0; i < N_LAYERS; i++)
        for (int k = 0; k < TRIT_N_W; k++) assert_same_values(&src.layers[i].w[k], &m.layers[i].w[k], trit_weights[k].gguf);
    trit_model_release(&m);
    trit_model_release(&src);
}

Test(gguf_span, float_qwen3_weights_must_be_group_ternary) {
    struct trit_model src;
    build_model(&src, TRIT_FAMILY_QWEN3, 128, 128, false, 0xF10A7);
    const char *path = test_tmp_path("q2.gguf"), *out = test_tmp_path("float.gguf");
    write_model(&src, path, NULL);
    /* every weight as F32 t * d: recovered in groups of 128 */
    struct edit e[N_LAYERS * TRIT_N_W];
    char names[N_LAYERS * TRIT_N_W][64];
    float *bufs[N_LAYERS * TRIT_N_W];
    int n = 0;
    for (int64_t i = 0; i < N_LAYERS; i++)
        for (int k = 0; k < TRIT_N_W; k++, n++) {
            const struct trit_ternary *w = &src.layers[i].w[k];
            bufs[n] = trit_alloc((size_t)(w->n_rows * w->n_cols) * sizeof(float));
            for (int64_t r = 0; r < w->n_rows; r++)
                for (int64_t c = 0; c < w->n_cols; c++) bufs[n][r * w->n_cols + c] = value(w, r, c);
            snprintf(names[n], sizeof names[n], "blk.%lld.%s.weight", (long long)i, trit_weights[k].gguf);
            e[n] = (struct edit){names[n], GGML_TYPE_F32, 0, 0, bufs[n], (uint64_t)(w->n_rows * w->n_cols) * 4u, false};
        }
    const struct rewrite_opts o = {.q2_group = 128};
    rewrite(path, out, e, n, &o);
    struct trit_model m = load_ok(out, TRIT_I2S_X86);
    cr_assert_str_eq(note_kind(&m, "blk.1.ffn_up.weight"), "F32 g128");
    for (int64_t i = 0; i < N_LAYERS; i++)
        for (int k = 0; k < TRIT_N_W; k++) assert_same_values(&src.layers[i].w[k], &m.layers[i].w[k], trit_weights[k].gguf);
    trit_model_release(&m);
    /* one weight that is not ternary in groups: a float model, refused */
    bufs[0][5] = 0.123456f;
    rewrite(path, out, e, n, &o);
    expect_refused(out, TRIT_ERR_UNSUPPORTED, "blk.0.attn_q.weight", "trit runs ternary models only");
    for (int k = 0; k < n; k++) trit_free(bufs[k]);
    trit_model_release(&src);
}

/* ---- Q2_0 embedding and head ------------------------------------------------------------------ */

Test(gguf_span, q2_0_embedding_dequantizes_exactly) {
    struct trit_model src;
    build_model(&src, TRIT_FAMILY_QWEN3, 128, 128, true, 0xE3B);
    const char *path = test_tmp_path("q2.gguf"), *out = test_tmp_path("embd.gguf");
    write_model(&src, path, NULL);
    struct test_rng rng;
    test_rng_seed(&rng, 0xE3B);
    for (int overflow = 0; overflow < 2; overflow++) {
        struct trit_ternary e;
        random_weight(&rng, VOCAB, 128, 128, true, &e);
        if (overflow) { /* d = 60000 is an fp16 value; a +2 code makes 120000, past fp16's 65504 */
            e.group_scales[3] = 60000.0f;
            trit_ternary_set(&e, 3, 7, 2);
        }
        uint64_t n_bytes;
        uint8_t *bytes = q2_bytes(&e, 128, &n_bytes);
        const struct edit ed = {"token_embd.weight", GGML_TYPE_Q2_0, 0, 0, bytes, n_bytes, false};
        const struct rewrite_opts o = {.q2_group = 128};
        rewrite(path, out, &ed, 1, &o);
        struct trit_model m = load_ok(out, TRIT_I2S_X86);
        cr_assert_eq(m.tok_embd.dtype, overflow ? TRIT_DTYPE_F32 : TRIT_DTYPE_F16);
        cr_assert_str_eq(note_kind(&m, "token_embd.weight"), overflow ? "Q2_0 g128 -> F32" : "Q2_0 g128 -> F16");
        cr_assert(m.hp.tied_embeddings && m.output.data == m.tok_embd.data);
        float row[128];
        for (int64_t r = 0; r < VOCAB; r++) {
            trit_dense_row_f32(&m.tok_embd, r, row);
            for (int64_t c = 0; c < 128; c++)
                cr_assert(row[c] == value(&e, r, c), "(%lld, %lld): %g vs %g", (long long)r, (long long)c, (double)row[c],
                          (double)value(&e, r, c));
        }
        if (overflow) {
            trit_dense_row_f32(&m.tok_embd, 3, row);
            cr_assert(row[7] == 120000.0f);
        }
        trit_model_release(&m);
        trit_free(bytes);
        trit_ternary_free(&e);
    }
    trit_model_release(&src);
}

/* ---- the group decision and its refusals ------------------------------------------------------ */

Test(gguf_span, every_tensor_ambiguous_is_refused) {
    /* With general.alignment 4096 every weight of this model (at most 32768 weights: g64 and g128 differ
     * by n/64 <= 512 bytes) pads to a span that both blocks fit. */
    struct trit_model src;
    build_model(&src, TRIT_FAMILY_QWEN3, 128, 128, true, 0xA4B);
    const char *path = test_tmp_path("q2.gguf"), *out = test_tmp_path("amb.gguf");
    write_model(&src, path, NULL);
    const struct rewrite_opts o = {.alignment = 4096, .q2_group = 128};
    rewrite(path, out, NULL, 0, &o);
    expect_refused(out, TRIT_ERR_UNSUPPORTED, "fits both", "too small for the file to say which");
    /* the same file at alignment 32 loads */
    const struct rewrite_opts o32 = {.alignment = 32, .q2_group = 128};
    rewrite(path, out, NULL, 0, &o32);
    struct trit_model m = load_ok(out, TRIT_I2S_X86);
    assert_identical(&src, &m);
    trit_model_release(&m);
    trit_model_release(&src);
}

Test(gguf_span, two_proofs_that_disagree_are_refused) {
    struct trit_model src;
    build_model(&src, TRIT_FAMILY_QWEN3, 128, 128, true, 0xD15);
    const char *path = test_tmp_path("q2.gguf"), *out = test_tmp_path("mixed.gguf");
    write_model(&src, path, NULL);
    uint64_t n_bytes;
    uint8_t *bytes = q2_bytes(&src.layers[1].w[TRIT_W_UP], 64, &n_bytes); /* the same weights in blocks of 64 */
    const struct edit e = {"blk.1.ffn_up.weight", GGML_TYPE_Q2_0, 0, 0, bytes, n_bytes, false};
    const struct rewrite_opts o = {.q2_group = 128};
    rewrite(path, out, &e, 1, &o);
    expect_refused(out, TRIT_ERR_FORMAT, "'blk.1.ffn_up.weight' (Q2_0 in blocks of 64", "disagree");
    trit_free(bytes);
    trit_model_release(&src);
}

Test(gguf_span, a_truncated_q2_0_tensor_is_refused) {
    struct trit_model src;
    build_model(&src, TRIT_FAMILY_QWEN3, 128, 128, true, 0x7C);
    const char *path = test_tmp_path("q2.gguf"), *out = test_tmp_path("cut.gguf");
    write_model(&src, path, NULL);
    /* ffn_down last: 128 rows x 2 blocks x 34 = 8704 bytes (a multiple of 32: no padding) */
    const uint64_t cuts[3] = {1, 34, 8000};
    for (int k = 0; k < 3; k++) {
        const struct rewrite_opts o = {.last = "blk.1.ffn_down.weight", .cut = cuts[k], .q2_group = 128};
        rewrite(path, out, NULL, 0, &o);
        expect_refused(out, TRIT_ERR_FORMAT, "'blk.1.ffn_down.weight'", "fits neither");
    }
    const struct rewrite_opts whole = {.last = "blk.1.ffn_down.weight", .q2_group = 128};
    rewrite(path, out, NULL, 0, &whole);
    struct trit_model m = load_ok(out, TRIT_I2S_X86);
    trit_model_release(&m);
    trit_model_release(&src);
}

Test(gguf_span, a_row_that_is_not_whole_blocks_is_refused) {
    /* dim 192 in blocks of 64 (every row whole); then attn_q's 192-column rows get the bytes blocks of
     * 128 would take (128 x 1.5 x 34): blocks of 128 cannot cut such a row, and blocks of 64 need more. */
    struct trit_model src;
    build_model(&src, TRIT_FAMILY_QWEN3, 192, 64, true, 0x96);
    const char *path = test_tmp_path("q2.gguf"), *out = test_tmp_path("rows.gguf");
    struct trit_convert_report r;
    write_model(&src, path, &r);
    cr_assert_eq(r.q2_0_group, 64);
    cr_assert_eq(r.n_ternary_q2_0, N_LAYERS * TRIT_N_W);
    static uint8_t zeros[128 * 192 / 128 * 34];
    const struct edit e = {"blk.0.attn_q.weight", GGML_TYPE_Q2_0, 0, 0, zeros, sizeof zeros, false};
    const struct rewrite_opts o = {.q2_group = 64};
    rewrite(path, out, &e, 1, &o);
    expect_refused(out, TRIT_ERR_FORMAT, "'blk.0.attn_q.weight'", "a row of 192 does not divide into its blocks");
    trit_model_release(&src);
}

Test(gguf_span, a_scale_tensor_next_to_group_scales_is_refused) {
    struct trit_model src;
    build_model(&src, TRIT_FAMILY_QWEN3, 128, 64, true, 0x5CA);
    const char *path = test_tmp_path("q2.gguf"), *out = test_tmp_path("scale.gguf");
    write_model(&src, path, NULL);
    static const float two = 2.0f;
    const struct edit e = {"blk.0.attn_v.scale", GGML_TYPE_F32, 1, 1, &two, sizeof two, false};
    const struct rewrite_opts o = {.q2_group = 64};
    rewrite(path, out, &e, 1, &o);
    expect_refused(out, TRIT_ERR_UNSUPPORTED, "'blk.0.attn_v.scale'", "does not combine");
    trit_model_release(&src);
}

Test(gguf_span, q2_0_under_the_bitnet_architectures) {
    const enum trit_family families[3] = {TRIT_FAMILY_BITNET_B158, TRIT_FAMILY_BITNET, TRIT_FAMILY_LLAMA};
    const char *archs[3] = {"bitnet-b1.58", "bitnet", "llama"};
    for (int k = 0; k < 3; k++) {
        struct trit_model src;
        build_model(&src, families[k], 128, 64, true, 0xB17 + (uint64_t)k);
        const char *path = test_tmp_path("q2.gguf");
        struct trit_convert_report r;
        write_model(&src, path, &r);
        cr_assert_str_eq(r.arch, archs[k]);
        struct trit_model m = load_ok(path, TRIT_I2S_X86);
        cr_assert_eq(m.hp.act_block, 0, "%s keeps per-token activation scales", archs[k]);
        cr_assert(!m.hp.qk_norm);
        assert_identical(&src, &m);
        cr_assert_str_eq(note_kind(&m, "blk.1.attn_k.weight"), "Q2_0 g64");
        trit_model_release(&m);
        trit_model_release(&src);
    }
}

/* ---- I2_S (type 36) outside bitnet.cpp's architectures ------------------------------------------ */

/* A bitnet or llama file with one scale per weight, its weights rewritten as I2_S (and their .scale
 * tensors dropped: the I2_S tail carries the scale). `mode` 0: I2_S bytes; 1: the byte count of
 * IQ4_NL_4_4 (9n/16); 2: I2_S with a code 3 in attn_q of layer 0. */
static void i2s_file(const struct trit_model *src, const char *in, const char *out, int mode, uint32_t alignment) {
    struct edit e[2 * N_LAYERS * TRIT_N_W];
    char names[2 * N_LAYERS * TRIT_N_W][64];
    uint8_t *bufs[N_LAYERS * TRIT_N_W];
    int n = 0, nb = 0;
    for (int64_t i = 0; i < N_LAYERS; i++)
        for (int k = 0; k < TRIT_N_W; k++) {
            const struct trit_ternary *w = &src->layers[i].w[k];
            const int64_t n_el = w->n_rows * w->n_cols;
            uint64_t b = mode == 1 ? (uint64_t)(n_el / 32 * 18) : (uint64_t)trit_i2s_bytes(w->n_rows, w->n_cols);
            bufs[nb] = trit_alloc(b);
            cr_assert_not_null(bufs[nb]);
            memset(bufs[nb], 0, b);
            if (mode != 1) cr_assert_eq(trit_i2s_encode(w, bufs[nb]), TRIT_OK, "%s", trit_last_error());
            if (mode == 2 && i == 0 && k == TRIT_W_Q) bufs[nb][3] = 0xFF; /* elements 3, 35, 67, 99: code 3 */
            snprintf(names[n], sizeof names[n], "blk.%lld.%s.weight", (long long)i, trit_weights[k].gguf);
            e[n] = (struct edit){names[n], GGML_TYPE_I2_S_BITNET, 0, 0, bufs[nb], b, false};
            n++, nb++;
            snprintf(names[n], sizeof names[n], "blk.%lld.%s.scale", (long long)i, trit_weights[k].gguf);
            e[n] = (struct edit){names[n], 0, 0, 0, NULL, 0, true};
            n++;
        }
    const struct rewrite_opts o = {.alignment = alignment};
    rewrite(in, out, e, n, &o);
    for (int k = 0; k < nb; k++) trit_free(bufs[k]);
}

Test(gguf_span, i2s_under_bitnet_and_llama) {
    const enum trit_family families[2] = {TRIT_FAMILY_BITNET, TRIT_FAMILY_LLAMA};
    for (int k = 0; k < 2; k++) {
        struct trit_model src;
        build_model(&src, families[k], 128, 0, false, 0x125 + (uint64_t)k);
        const char *path = test_tmp_path("tq2.gguf"), *out = test_tmp_path("i2s.gguf");
        write_model(&src, path, NULL);
        i2s_file(&src, path, out, 0, 0);
        struct trit_model m = load_ok(out, TRIT_I2S_X86);
        assert_identical(&src, &m); /* codes and the fp32 scale from the tail, bit for bit */
        cr_assert_str_eq(note_kind(&m, "blk.0.ffn_gate.weight"), "I2_S");
        trit_model_release(&m);

        i2s_file(&src, path, out, 0, 1u << 16); /* every span fits I2_S and IQ4_NL_4_4 */
        expect_refused(out, TRIT_ERR_UNSUPPORTED, "type id 36", "fits both");
        i2s_file(&src, path, out, 1, 0);
        expect_refused(out, TRIT_ERR_UNSUPPORTED, "IQ4_NL_4_4", "trit does not read");
        i2s_file(&src, path, out, 2, 0); /* bitnet.cpp's multi-threaded quantizer wrote such files */
        expect_refused(out, TRIT_ERR_FORMAT, "'blk.0.attn_q.weight'", "i2_s decode: code 3 at element");
        trit_model_release(&src);
    }
}

/* ---- trit inspect --------------------------------------------------------------------------------- */

/* `trit inspect --json PATH` (the binary of this build), parsed. */
static cJSON *inspect_json(const char *path) {
    char cmd[1200];
    snprintf(cmd, sizeof cmd, "'%s/trit' inspect --json '%s'", TRIT_BINARY_DIR, path);
    FILE *p = popen(cmd, "r");
    cr_assert_not_null(p);
    static char out[1 << 20];
    size_t n = fread(out, 1, sizeof out - 1, p);
    out[n] = '\0';
    cr_assert_eq(pclose(p), 0, "%s", cmd);
    cJSON *j = cJSON_Parse(out);
    cr_assert_not_null(j, "not JSON: %.200s", out);
    return j;
}

static const cJSON *member(const cJSON *o, const char *path) {
    char buf[128];
    snprintf(buf, sizeof buf, "%s", path);
    for (char *key = strtok(buf, "."); key && o; key = strtok(NULL, ".")) o = cJSON_GetObjectItemCaseSensitive(o, key);
    cr_assert_not_null(o, "no %s", path);
    return o;
}

Test(gguf_span, inspect_names_the_kinds_and_why_a_file_cannot_run) {
    struct trit_model src;
    build_model(&src, TRIT_FAMILY_QWEN3, 128, 128, true, 0x1A5);
    const char *path = test_tmp_path("q2.gguf"), *out = test_tmp_path("amb.gguf");
    write_model(&src, path, NULL);
    cJSON *j = inspect_json(path);
    cr_assert(cJSON_IsTrue(member(j, "runnable")));
    cr_assert_not_null(strstr(member(j, "model.family")->valuestring, "qwen3"));
    cr_assert_str_eq(member(j, "model.gguf_arch")->valuestring, "qwen3");
    cr_assert(cJSON_IsTrue(member(j, "model.hparams.qk_norm")));
    cr_assert_eq(member(j, "model.hparams.act_block")->valuedouble, 64.0);
    cr_assert_str_eq(member(j, "model.scale_granularity")->valuestring, "group");
    cr_assert_eq(member(j, "model.scale_group")->valuedouble, 128.0);
    bool seen = false;
    const cJSON *t;
    cJSON_ArrayForEach(t, member(j, "tensors"))
        if (!strcmp(member(t, "name")->valuestring, "blk.0.attn_q.weight"))
            seen = !strcmp(member(t, "kind")->valuestring, "Q2_0 g128") && member(t, "bytes")->valuedouble == 128 * 34;
    cr_assert(seen, "blk.0.attn_q.weight listed as Q2_0 g128, 4352 bytes");
    cJSON_Delete(j);
    /* a file the group decision refuses: listed, with the reason */
    const struct rewrite_opts o = {.alignment = 4096, .q2_group = 128};
    rewrite(path, out, NULL, 0, &o);
    j = inspect_json(out);
    cr_assert(cJSON_IsFalse(member(j, "runnable")));
    cr_assert_not_null(strstr(member(j, "error")->valuestring, "fits both"), "%s", member(j, "error")->valuestring);
    cJSON_Delete(j);
    trit_model_release(&src);
}

/* ---- q/k norms ------------------------------------------------------------------------------------ */

Test(gguf_span, qk_norms_are_required_and_shaped_in_qwen3_only) {
    struct trit_model src;
    build_model(&src, TRIT_FAMILY_QWEN3, 128, 128, true, 0x9E);
    const char *path = test_tmp_path("q2.gguf"), *out = test_tmp_path("qk.gguf");
    write_model(&src, path, NULL);
    const struct rewrite_opts o = {.q2_group = 128};
    const struct edit drop = {"blk.1.attn_k_norm.weight", 0, 0, 0, NULL, 0, true};
    rewrite(path, out, &drop, 1, &o);
    expect_refused(out, TRIT_ERR_FORMAT, "tensor 'blk.1.attn_k_norm.weight' is missing", NULL);
    static const float half[HEAD_DIM / 2] = {1.0f};
    const struct edit narrow = {"blk.0.attn_q_norm.weight", GGML_TYPE_F32, HEAD_DIM / 2, 1, half, sizeof half, false};
    rewrite(path, out, &narrow, 1, &o);
    expect_refused(out, TRIT_ERR_FORMAT, "'blk.0.attn_q_norm.weight' has shape [32, 1], but the hyperparameters give [64] (key_length)",
                   NULL);
    trit_model_release(&src);

    /* elsewhere they are not read: listed as unused, the model loads without them */
    build_model(&src, TRIT_FAMILY_BITNET, 128, 0, false, 0x9F);
    write_model(&src, path, NULL);
    static const float ones[HEAD_DIM] = {1.0f};
    const struct edit extra = {"blk.0.attn_q_norm.weight", GGML_TYPE_F32, HEAD_DIM, 1, ones, sizeof ones, false};
    const struct rewrite_opts o0 = {0};
    rewrite(path, out, &extra, 1, &o0);
    struct trit_model m = load_ok(out, TRIT_I2S_X86);
    cr_assert_str_eq(note_kind(&m, "blk.0.attn_q_norm.weight"), "unused");
    cr_assert(!m.hp.qk_norm && !m.layers[0].attn_q_norm);
    trit_model_release(&m);
    trit_model_release(&src);
}
