/*
 * model_gguf.c: a GGUF file (bitnet.cpp, llama.cpp or `trit convert`) to a struct trit_model.
 *
 * Architectures:  bitnet-b1.58, bitnet-25 (bitnet.cpp, 2B-4T)   -> TRIT_FAMILY_BITNET_B158
 *                 bitnet (llama.cpp, 1bitLLM)                   -> TRIT_FAMILY_BITNET
 *                 llama (ternary weights; Q/K rows permuted by llama.cpp's converter, so RoPE is
 *                        the "normal" pairwise style)          -> TRIT_FAMILY_LLAMA
 *                 qwen3 (Ternary-Bonsai: q/k norms, NeoX RoPE, group-scaled weights)
 *                                                               -> TRIT_FAMILY_QWEN3
 * Ternary weights: TQ2_0, TQ1_0, Q2_0 (type 42, blocks of 64 or 128 decided by the byte spans),
 * I2_S (type 36: by architecture under bitnet.cpp's, by the byte spans under any other), or
 * F32/F16/BF16 (ternary times one scale, or times a scale per group of 128 or 64, is recovered
 * exactly; anything else is ternarized by absmean, except under qwen3, which is refused).
 * The embedding and head may be Q2_0 too: dequantized exactly into an owned F16 (or F32) copy.
 * An optional blk.N.<w>.scale tensor ({1}, F32) multiplies the matmul output, as in llama.cpp;
 * trit's own files set trit.weight_scale_kind = "divide" for BitLinear checkpoints, where the
 * scale tensor divides instead.
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "io/gguf.h"
#include "model/model.h"
#include "model/model_internal.h"
#include "quant/ggml_dequant.h"

#define GGUF_MAX_NAME_BUF 64 /* gguf.c refuses names of 64 bytes or more */

struct gguf_loader {
    struct gguf_file *f;  /* owned by the model (m->mapping) */
    struct trit_model *m;
    const struct trit_load_params *params;
    bool bitnet_ids;      /* type ids >= 36 follow bitnet.cpp's table */
    bool i2s_by_span;     /* type 36 elsewhere, proven I2_S by the byte spans (resolve_by_span) */
    int64_t q2_group;     /* the file's Q2_0 block (64 or 128), proven by the byte spans; 0: no Q2_0 */
    bool scale_divides;   /* trit.weight_scale_kind == "divide" */
    int64_t note_cap;
    int64_t done, total;  /* progress, in tensors */
    int64_t n_vocab;      /* <arch>.vocab_size, else token_embd.weight's rows (check_tensor_set) */
    const char *vocab_from; /* which of the two, for messages */
};

static void release_gguf(void *mapping) {
    struct gguf_file *f = mapping;
    if (!f) return;
    gguf_close(f);
    trit_free(f);
}

/* ---- hyperparameters ----------------------------------------------------------------------- */

/* arch.suffix as an integer in [min, max]; `fallback` (not range-checked) when absent and not required. */
static enum trit_status get_int(const struct gguf_loader *L, const char *arch, const char *suffix, bool required,
                                int64_t fallback, int64_t min, int64_t max, int64_t *out) {
    char key[160];
    snprintf(key, sizeof key, "%s.%s", arch, suffix);
    uint64_t v;
    enum trit_status st = gguf_get_u64(L->f, key, &v);
    if (st == TRIT_ERR_NOT_FOUND) {
        if (required) return trit_error(TRIT_ERR_FORMAT, "gguf: required key '%s' is missing (in %s)", key, L->m->path);
        trit_error_clear();
        *out = fallback;
        return TRIT_OK;
    }
    TRIT_TRY(st);
    if (v < (uint64_t)min || v > (uint64_t)max)
        return trit_error(TRIT_ERR_FORMAT, "gguf: %s = %llu is outside the valid range [%lld, %lld] (in %s)", key,
                          (unsigned long long)v, (long long)min, (long long)max, L->m->path);
    *out = (int64_t)v;
    return TRIT_OK;
}

/* arch.suffix, when present, must equal the head dimension: trit's graphs have one width for the
 * query, key and value heads and rotate whole heads. `what` says what trit supports. */
static enum trit_status check_head_width(const struct gguf_loader *L, const char *arch, const char *suffix,
                                         const char *what) {
    const int64_t head_dim = L->m->hp.head_dim;
    int64_t v = head_dim;
    TRIT_TRY(get_int(L, arch, suffix, false, head_dim, 0, INT64_MAX, &v));
    if (v != head_dim)
        return trit_error(TRIT_ERR_UNSUPPORTED, "gguf: %s.%s = %lld, but trit supports only %s (%lld) (in %s)", arch, suffix,
                          (long long)v, what, (long long)head_dim, L->m->path);
    return TRIT_OK;
}

static enum trit_status get_float(const struct gguf_file *f, const char *arch, const char *suffix,
                                  float fallback, float *out) {
    char key[160];
    snprintf(key, sizeof key, "%s.%s", arch, suffix);
    double v;
    enum trit_status st = gguf_get_f64(f, key, &v);
    if (st == TRIT_ERR_NOT_FOUND) {
        trit_error_clear();
        *out = fallback;
        return TRIT_OK;
    }
    TRIT_TRY(st);
    *out = (float)v;
    return TRIT_OK;
}

static enum trit_status read_hparams(struct gguf_loader *L) {
    struct gguf_file *f = L->f;
    struct trit_model *m = L->m;
    struct trit_hparams *hp = &m->hp;
    char arch[64];
    enum trit_status st = gguf_get_str(f, "general.architecture", arch, sizeof arch);
    if (st == TRIT_ERR_NOT_FOUND) return trit_error(TRIT_ERR_FORMAT, "gguf: general.architecture is missing; not a model file?");
    TRIT_TRY(st);
    snprintf(m->arch_name, sizeof m->arch_name, "%s", arch);

    if (strcmp(arch, "bitnet-b1.58") == 0 || strcmp(arch, "bitnet-25") == 0) {
        hp->family = TRIT_FAMILY_BITNET_B158;
        hp->act = TRIT_ACT_RELU2;
        hp->sub_norms = true;
        hp->rope_style = TRIT_ROPE_NEOX;
        L->bitnet_ids = true;
    } else if (strcmp(arch, "bitnet") == 0) {
        hp->family = TRIT_FAMILY_BITNET;
        hp->sub_norms = true;
        hp->rope_style = TRIT_ROPE_NEOX;
        char act[32] = "silu";
        char key[96];
        snprintf(key, sizeof key, "%s.hidden_activation", arch);
        st = gguf_get_str(f, key, act, sizeof act);
        if (st != TRIT_OK && st != TRIT_ERR_NOT_FOUND) return st;
        trit_error_clear();
        if (strcmp(act, "relu2") == 0) hp->act = TRIT_ACT_RELU2;
        else if (strcmp(act, "silu") == 0) hp->act = TRIT_ACT_SILU;
        else return trit_error(TRIT_ERR_UNSUPPORTED, "gguf: %s = '%s' is not an activation trit knows (silu, relu2)", key, act);
    } else if (strcmp(arch, "llama") == 0) {
        hp->family = TRIT_FAMILY_LLAMA;
        hp->act = TRIT_ACT_SILU;
        hp->sub_norms = false;
        hp->rope_style = TRIT_ROPE_NORM;
    } else if (strcmp(arch, "qwen3") == 0) {
        /* llama.cpp's qwen3 graph: rope type NEOX (its converter does not permute Q/K rows), RMSNorm
         * of every q and k head before RoPE, SiLU gate. Trained with float activations: quantized per
         * block of 64 (model.h act_block). */
        hp->family = TRIT_FAMILY_QWEN3;
        hp->act = TRIT_ACT_SILU;
        hp->sub_norms = false;
        hp->rope_style = TRIT_ROPE_NEOX;
        hp->qk_norm = true;
        hp->act_block = TRIT_GROUP_UNIT;
    } else {
        return trit_error(TRIT_ERR_UNSUPPORTED,
                          "gguf: architecture '%s' is not supported (trit runs bitnet-b1.58, bitnet-25, bitnet, llama and qwen3 with ternary weights)",
                          arch);
    }

    /* Bounds as the HF loader's: widths and counts from the file are multiplied together before any
     * tensor has been checked, so each stays far from int64 overflow; contexts fit the API's int32. */
    const int64_t big = (int64_t)1 << 31, heads = 65536;
    TRIT_TRY(get_int(L, arch, "block_count", true, 0, 1, big, &hp->n_layers));
    TRIT_TRY(get_int(L, arch, "embedding_length", true, 0, 1, big, &hp->dim));
    TRIT_TRY(get_int(L, arch, "feed_forward_length", true, 0, 1, big, &hp->ffn_dim));
    TRIT_TRY(get_int(L, arch, "attention.head_count", true, 0, 1, heads, &hp->n_heads));
    TRIT_TRY(get_int(L, arch, "attention.head_count_kv", false, hp->n_heads, 1, heads, &hp->n_kv_heads));
    TRIT_TRY(get_int(L, arch, "context_length", false, 2048, 1, INT32_MAX, &hp->ctx_train));
    TRIT_TRY(get_int(L, arch, "attention.key_length", false, hp->dim / hp->n_heads, 1, heads, &hp->head_dim));
    TRIT_TRY(check_head_width(L, arch, "attention.value_length", "a value length equal to the key length"));
    TRIT_TRY(check_head_width(L, arch, "rope.dimension_count", "RoPE over whole heads: a dimension count equal to the key length"));
    TRIT_TRY(get_float(f, arch, "attention.layer_norm_rms_epsilon", 1e-5f, &hp->norm_eps));
    TRIT_TRY(get_float(f, arch, "rope.freq_base", 10000.0f, &hp->rope_theta));
    if (hp->n_layers > 4096) return trit_error(TRIT_ERR_FORMAT, "gguf: block_count %lld is not plausible", (long long)hp->n_layers);

    char kind[16] = "";
    st = gguf_get_str(f, "trit.weight_scale_kind", kind, sizeof kind);
    if (st != TRIT_OK && st != TRIT_ERR_NOT_FOUND) return st;
    trit_error_clear();
    if (kind[0] && strcmp(kind, "divide") != 0 && strcmp(kind, "multiply") != 0)
        return trit_error(TRIT_ERR_FORMAT, "gguf: trit.weight_scale_kind = '%s' (expected multiply or divide)", kind);
    L->scale_divides = strcmp(kind, "divide") == 0;
    return TRIT_OK;
}

/* ---- tensors ------------------------------------------------------------------------------- */

static const struct gguf_tensor_info *find(struct gguf_loader *L, const char *name, bool required,
                                           enum trit_status *st) {
    const struct gguf_tensor_info *t = gguf_find_tensor(L->f, name);
    *st = TRIT_OK;
    if (!t && required) *st = trit_error(TRIT_ERR_FORMAT, "gguf: tensor '%s' is missing", name);
    return t;
}

static enum trit_status float_dtype(uint32_t type, const char *name, bool bitnet_ids, enum trit_dtype *out) {
    switch (type) {
    case GGML_TYPE_F32: *out = TRIT_DTYPE_F32; return TRIT_OK;
    case GGML_TYPE_F16: *out = TRIT_DTYPE_F16; return TRIT_OK;
    case GGML_TYPE_BF16: *out = TRIT_DTYPE_BF16; return TRIT_OK;
    default:
        return trit_error(TRIT_ERR_UNSUPPORTED,
                          "gguf: tensor '%s' has type %s; trit reads F32, F16 or BF16 here (re-export it with llama-quantize --token-embedding-type f16 --output-tensor-type f16, or convert from the HF folder)",
                          name, gguf_type_name(type, bitnet_ids));
    }
}

static enum trit_status load_vector(struct gguf_loader *L, const char *name, int64_t n, bool required, float **out) {
    enum trit_status st;
    const struct gguf_tensor_info *t = find(L, name, required, &st);
    TRIT_TRY(st);
    if (!t) return TRIT_OK;
    int64_t count = t->ne[0] * t->ne[1] * t->ne[2] * t->ne[3];
    if (count != n)
        return trit_error(TRIT_ERR_FORMAT, "gguf: tensor '%s' has %lld elements, expected %lld", name, (long long)count, (long long)n);
    enum trit_dtype dt = TRIT_DTYPE_F32;
    TRIT_TRY(float_dtype(t->type, name, L->bitnet_ids, &dt));
    TRIT_TRY(model_note(L->m, &L->note_cap, name, gguf_type_name(t->type, L->bitnet_ids), 1, n, t->n_bytes));
    return model_copy_f32(t->data, dt, n, out);
}

/* The tensor's name, NUL-terminated (t->name is not). */
static void tensor_name(const struct gguf_tensor_info *t, char *buf, size_t cap) {
    snprintf(buf, cap, "%.*s", (int)t->name.len, t->name.ptr); /* names have no NUL (gguf.c) */
}

/* What a ternary-capable type id is in this file, for notes and messages. */
static const char *type_kind(const struct gguf_loader *L, uint32_t type) {
    if (type == GGML_TYPE_Q2_0) return L->q2_group == 128 ? "Q2_0 g128" : L->q2_group == 64 ? "Q2_0 g64" : "Q2_0";
    if (type == GGML_TYPE_I2_S_BITNET && L->i2s_by_span) return "I2_S";
    return gguf_type_name(type, L->bitnet_ids);
}

/* A codec's or helper's failure, with the tensor's name in front. */
static enum trit_status name_failure(enum trit_status st, const char *name) {
    char why[512];
    snprintf(why, sizeof why, "%s", trit_last_error());
    return trit_error(st, "gguf: tensor '%s': %s", name, why);
}

static enum trit_status load_dense_quantized(struct gguf_loader *L, const struct gguf_tensor_info *t,
                                            struct trit_dense *out) {
    char name[96], kind[24];
    tensor_name(t, name, sizeof name);
    if (t->ne[2] != 1 || t->ne[3] != 1) return trit_error(TRIT_ERR_FORMAT, "gguf: tensor '%s' must be 2-D", name);
    uint16_t *h = NULL;
    enum trit_status st = trit_ggml_dequant_f16(t->type, t->data, t->ne[1], t->ne[0], &h);
    if (st != TRIT_OK) return name_failure(st, name);
    out->dtype = TRIT_DTYPE_F16;
    out->n_cols = t->ne[0];
    out->n_rows = t->ne[1];
    out->data = h;
    out->owned = h;
    snprintf(kind, sizeof kind, "%s -> F16", gguf_type_name(t->type, L->bitnet_ids));
    return model_note(L->m, &L->note_cap, name, kind, out->n_rows, out->n_cols, t->n_bytes);
}

/* A Q2_0 embedding or head (Ternary-Bonsai's are): (code - 1) * d, d an fp16 value, so every value is
 * exact in fp32 and in fp16 unless a +2 code doubles d past fp16's largest finite value 65504; then the
 * whole matrix is kept in F32 instead. The decoded copy is owned by the model. */
static enum trit_status load_dense_q2_0(struct gguf_loader *L, const struct gguf_tensor_info *t, struct trit_dense *out) {
    char name[96], kind[24];
    tensor_name(t, name, sizeof name);
    if (t->ne[2] != 1 || t->ne[3] != 1) return trit_error(TRIT_ERR_FORMAT, "gguf: tensor '%s' must be 2-D", name);
    const int64_t n_rows = t->ne[1], n_cols = t->ne[0];
    struct trit_ternary w;
    TRIT_TRY(trit_ternary_init_grouped(&w, n_rows, n_cols, L->q2_group));
    enum trit_status st = trit_q2_0_decode(t->data, &w);
    if (st != TRIT_OK) {
        trit_ternary_free(&w);
        return name_failure(st, name);
    }
    /* F16 holds every value unless a +2 code (the only one that can overflow) meets |d| > 65504 / 2 */
    const int64_t n_groups = trit_ternary_n_groups(&w), G = w.group;
    bool f16 = true;
    for (int64_t r = 0; r < n_rows && f16; r++)
        for (int64_t g = 0; g < n_groups && f16; g++) {
            if (!(fabsf(w.group_scales[r * n_groups + g]) > 32752.0f)) continue;
            for (int64_t c = g * G; c < (g + 1) * G; c++)
                if (trit_ternary_get(&w, r, c) == 2) f16 = false;
        }
    const size_t es = f16 ? sizeof(uint16_t) : sizeof(float);
    void *buf = trit_alloc((size_t)(n_rows * n_cols) * es); /* n_rows * n_cols < 4 x the file's bytes */
    if (!buf) {
        trit_ternary_free(&w);
        return trit_error(TRIT_ERR_OUT_OF_MEMORY, "gguf: out of memory dequantizing '%s' (%lld x %lld)", name,
                          (long long)n_rows, (long long)n_cols);
    }
    for (int64_t r = 0; r < n_rows; r++)
        for (int64_t g = 0; g < n_groups; g++) {
            /* the four values of this group, by code: exact products of an fp16 d */
            const float d = w.group_scales[r * n_groups + g], v[4] = {-d, 0.0f * d, d, 2.0f * d};
            const uint16_t h[4] = {trit_fp32_to_fp16(v[0]), trit_fp32_to_fp16(v[1]), trit_fp32_to_fp16(v[2]),
                                   trit_fp32_to_fp16(v[3])};
            const uint8_t *codes = w.codes + r * w.row_bytes;
            for (int64_t c = g * G; c < (g + 1) * G; c++) {
                const unsigned code = (codes[c / 4] >> (2 * (c % 4))) & 3u;
                if (f16) ((uint16_t *)buf)[r * n_cols + c] = h[code];
                else ((float *)buf)[r * n_cols + c] = v[code];
            }
        }
    trit_ternary_free(&w);
    out->dtype = f16 ? TRIT_DTYPE_F16 : TRIT_DTYPE_F32;
    out->n_cols = n_cols;
    out->n_rows = n_rows;
    out->data = buf;
    out->owned = buf;
    snprintf(kind, sizeof kind, "%s -> %s", type_kind(L, t->type), f16 ? "F16" : "F32");
    return model_note(L->m, &L->note_cap, name, kind, n_rows, n_cols, t->n_bytes);
}

static enum trit_status load_dense(struct gguf_loader *L, const struct gguf_tensor_info *t, struct trit_dense *out) {
    if (t->type == GGML_TYPE_Q2_0 && t->data) return load_dense_q2_0(L, t, out);
    /* llama-quantize's Q6_K / Q8_0 / Q4_K ... embedding and head: dequantized once into an owned
     * fp16 copy (the head kernels read F16 rows). */
    if (t->data && trit_ggml_dequant_supported(t->type)) return load_dense_quantized(L, t, out);
    char name[96];
    tensor_name(t, name, sizeof name);
    enum trit_dtype dt = TRIT_DTYPE_F32;
    if (float_dtype(t->type, name, L->bitnet_ids, &dt) != TRIT_OK)
        return trit_error(TRIT_ERR_UNSUPPORTED,
                          "gguf: tensor '%s' has type %s; trit reads F32, F16, BF16, Q2_0, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q2_K, Q3_K, Q4_K, Q5_K or Q6_K here (re-export it with llama-quantize --token-embedding-type f16 --output-tensor-type f16, or convert from the HF folder)",
                          name, type_kind(L, t->type));
    if (t->ne[2] != 1 || t->ne[3] != 1)
        return trit_error(TRIT_ERR_FORMAT, "gguf: tensor '%s' must be 2-D", name);
    out->dtype = dt;
    out->n_cols = t->ne[0];
    out->n_rows = t->ne[1];
    out->data = t->data;
    out->owned = NULL;
    return model_note(L->m, &L->note_cap, name, gguf_type_name(t->type, L->bitnet_ids), out->n_rows, out->n_cols, t->n_bytes);
}

/* A float weight (fp32 copy in w_f32) to a canonical ternary matrix, exactly where it is ternary:
 *   qwen3          a scale per group of 128 columns, else per group of 64 (Ternary-Bonsai's HF masters
 *                  exported as floats); anything else is refused: trit runs ternary models only;
 *   other families ternary times one scale, else times a scale per group of 128 or 64 (what `trit
 *                  convert` writes for a group-scaled weight Q2_0 cannot hold exactly), else absmean
 *                  (1bitLLM's latent masters).
 * *kind says which ("F16", "F16 g128", "F16 -> absmean"). */
static enum trit_status ternary_from_float_weight(const struct gguf_loader *L, uint32_t type,
                                                  const float *w_f32, int64_t n_rows, int64_t n_cols,
                                                  struct trit_ternary *w, char *kind, size_t kind_cap) {
    const char *dtype = gguf_type_name(type, L->bitnet_ids);
    const bool qwen3 = L->m->hp.family == TRIT_FAMILY_QWEN3;
    snprintf(kind, kind_cap, "%s", dtype);
    if (!qwen3) {
        enum trit_status st = trit_ternary_from_scaled(w_f32, n_rows, n_cols, w);
        if (st != TRIT_ERR_UNSUPPORTED) return st;
        trit_error_clear();
    }
    static const int64_t groups[2] = {128, 64};
    for (int g = 0; g < 2; g++) {
        enum trit_status st = trit_ternary_from_group_scaled(w_f32, n_rows, n_cols, groups[g], true, w);
        if (st == TRIT_OK) snprintf(kind, kind_cap, "%s g%lld", dtype, (long long)groups[g]);
        if (st != TRIT_ERR_UNSUPPORTED) return st;
        trit_error_clear();
    }
    if (qwen3)
        return trit_error(TRIT_ERR_UNSUPPORTED,
                          "%s weights that are not ternary times a scale per group of 128 or 64 columns: this is a float "
                          "qwen3 model, not a ternary one, and trit runs ternary models only",
                          dtype);
    snprintf(kind, kind_cap, "%s -> absmean", dtype);
    return trit_ternarize(w_f32, n_rows, n_cols, w);
}

/* Reads one ternary weight, with ne = {n_cols, n_rows}, into *w. */
static enum trit_status load_ternary(struct gguf_loader *L, const char *name, struct trit_ternary *w) {
    enum trit_status st;
    const struct gguf_tensor_info *t = find(L, name, true, &st);
    TRIT_TRY(st);
    if (t->ne[2] != 1 || t->ne[3] != 1) return trit_error(TRIT_ERR_FORMAT, "gguf: tensor '%s' must be 2-D", name);
    const int64_t n_cols = t->ne[0], n_rows = t->ne[1];
    if (!t->data) {
        if (t->type >= 36 && !L->bitnet_ids && (t->type == 38 || t->type == 39))
            return trit_error(TRIT_ERR_UNSUPPORTED,
                              "gguf: tensor '%s' has type id %u, which means TL1/TL2 in bitnet.cpp files but something else in llama.cpp files; this file's architecture '%s' does not say which, so trit refuses it",
                              name, t->type, L->m->arch_name);
        return trit_error(TRIT_ERR_UNSUPPORTED, "gguf: tensor '%s' has type %s, which trit cannot read as ternary weights",
                          name, type_kind(L, t->type));
    }
    char kind[24];
    snprintf(kind, sizeof kind, "%s", type_kind(L, t->type));
    switch (t->type) {
    case GGML_TYPE_TQ2_0:
        st = trit_ternary_init(w, n_rows, n_cols);
        if (st == TRIT_OK) st = trit_tq2_0_decode(t->data, w);
        break;
    case GGML_TYPE_TQ1_0:
        st = trit_ternary_init(w, n_rows, n_cols);
        if (st == TRIT_OK) st = trit_tq1_0_decode(t->data, w);
        break;
    case GGML_TYPE_I2_S_BITNET:
        if (!L->bitnet_ids && !L->i2s_by_span) {
            st = trit_error(TRIT_ERR_INTERNAL, "gguf: I2_S neither by architecture nor by span");
            break;
        }
        st = trit_ternary_init(w, n_rows, n_cols);
        if (st == TRIT_OK) st = trit_i2s_decode_layout(t->data, L->params ? L->params->i2s_layout : TRIT_I2S_X86, w);
        break;
    case GGML_TYPE_Q2_0:
        st = trit_ternary_init_grouped(w, n_rows, n_cols, L->q2_group);
        if (st == TRIT_OK) st = trit_q2_0_decode(t->data, w);
        break;
    case GGML_TYPE_F32:
    case GGML_TYPE_F16:
    case GGML_TYPE_BF16: {
        enum trit_dtype dt = TRIT_DTYPE_F32;
        TRIT_TRY(float_dtype(t->type, name, L->bitnet_ids, &dt));
        float *tmp;
        TRIT_TRY(model_copy_f32(t->data, dt, n_rows * n_cols, &tmp));
        st = ternary_from_float_weight(L, t->type, tmp, n_rows, n_cols, w, kind, sizeof kind);
        trit_free(tmp);
        break;
    }
    default:
        st = trit_error(TRIT_ERR_UNSUPPORTED, "gguf: tensor '%s' has type %s, which trit cannot read as ternary weights",
                        name, type_kind(L, t->type));
    }
    if (st != TRIT_OK) {
        trit_ternary_free(w);
        /* Name the tensor; the codec's message says what was wrong inside it. */
        return name_failure(st, name);
    }

    /* Optional per-tensor scale tensor next to the weight. */
    char scale_name[128];
    const char *dot = strrchr(name, '.');
    snprintf(scale_name, sizeof scale_name, "%.*s.scale", (int)(dot ? dot - name : (long)strlen(name)), name);
    const struct gguf_tensor_info *s = gguf_find_tensor(L->f, scale_name);
    if (s) {
        if (s->type != GGML_TYPE_F32 || s->ne[0] * s->ne[1] * s->ne[2] * s->ne[3] != 1 || !s->data)
            return trit_error(TRIT_ERR_FORMAT, "gguf: '%s' must be a single F32 value", scale_name);
        float v;
        memcpy(&v, s->data, sizeof v);
        if (!(v > 0.0f) || !isfinite(v)) return trit_error(TRIT_ERR_FORMAT, "gguf: '%s' = %g is not a positive finite scale", scale_name, (double)v);
        if (w->group > 0)
            return trit_error(TRIT_ERR_UNSUPPORTED,
                              "gguf: '%s' scales a weight that has a scale per %lld columns (%s); trit does not combine the two",
                              scale_name, (long long)w->group, kind);
        if (L->scale_divides) {
            if (w->scale != 1.0f)
                return trit_error(TRIT_ERR_FORMAT, "gguf: '%s' divides, but the weight blocks carry scale %g (must be 1)", scale_name, (double)w->scale);
            w->scale = v;
            w->scale_kind = TRIT_SCALE_DIV;
        } else {
            w->scale *= v;
        }
    }
    L->done++;
    model_progress(L->params, L->done, L->total);
    return model_note(L->m, &L->note_cap, name, kind, n_rows, n_cols, t->n_bytes);
}
/* ---- the tensor set ------------------------------------------------------------------------
 * The file's tensors must be exactly the model the hyperparameters describe: every name the loader
 * reads below is in these tables, every layer 0..block_count-1 has each required tensor, each tensor
 * has the shape (ne, columns first) the hyperparameters give, and no "blk.N." tensor names a layer
 * N >= block_count. Names the loader does not read are reported (a warning and an "unused" note),
 * not refused: llama.cpp files may carry tensors such as rope_freqs.weight that trit's graphs lack.
 * Everything here reads tensor infos only, so a hostile file is refused before any decoding. */

/* A layer's tensors, in load order: blk.N.<name>.weight, and blk.N.<name>.scale ({1}, optional)
 * next to each ternary weight. */
enum layer_slot {
    SLOT_ATTN_NORM, SLOT_Q, SLOT_K, SLOT_V, SLOT_Q_NORM, SLOT_K_NORM, SLOT_ATTN_SUB_NORM, SLOT_O,
    SLOT_FFN_NORM, SLOT_GATE, SLOT_UP, SLOT_FFN_SUB_NORM, SLOT_DOWN, N_LAYER_SLOTS
};
enum slot_need {
    NEED_ALWAYS,
    NEED_SUB_NORMS, /* required where the family has sub-norms (read when present otherwise) */
    NEED_QK_NORM,   /* required where the family has q/k norms, and read only there */
};
static const struct {
    const char *name; /* a norm's; a ternary weight's is trit_weights[weight].gguf (slot_name) */
    int weight;       /* enum trit_weight, or -1 for a norm */
    enum slot_need need;
} layer_slots[N_LAYER_SLOTS] = {
    [SLOT_ATTN_NORM] = {"attn_norm", -1, NEED_ALWAYS},
    [SLOT_Q] = {NULL, TRIT_W_Q, NEED_ALWAYS},
    [SLOT_K] = {NULL, TRIT_W_K, NEED_ALWAYS},
    [SLOT_V] = {NULL, TRIT_W_V, NEED_ALWAYS},
    [SLOT_Q_NORM] = {"attn_q_norm", -1, NEED_QK_NORM},
    [SLOT_K_NORM] = {"attn_k_norm", -1, NEED_QK_NORM},
    [SLOT_ATTN_SUB_NORM] = {"attn_sub_norm", -1, NEED_SUB_NORMS},
    [SLOT_O] = {NULL, TRIT_W_O, NEED_ALWAYS},
    [SLOT_FFN_NORM] = {"ffn_norm", -1, NEED_ALWAYS},
    [SLOT_GATE] = {NULL, TRIT_W_GATE, NEED_ALWAYS},
    [SLOT_UP] = {NULL, TRIT_W_UP, NEED_ALWAYS},
    [SLOT_FFN_SUB_NORM] = {"ffn_sub_norm", -1, NEED_SUB_NORMS},
    [SLOT_DOWN] = {NULL, TRIT_W_DOWN, NEED_ALWAYS},
};

/* Whether a slot's tensor must be present under hp, and whether the loader reads it at all. */
static bool slot_required(const struct trit_hparams *hp, int k) {
    return layer_slots[k].need == NEED_ALWAYS || (layer_slots[k].need == NEED_SUB_NORMS && hp->sub_norms) ||
           (layer_slots[k].need == NEED_QK_NORM && hp->qk_norm);
}
static bool slot_read(const struct trit_hparams *hp, int k) {
    return layer_slots[k].need != NEED_QK_NORM || hp->qk_norm;
}

/* "attn_norm", "attn_q", ...: blk.N.<this>.weight */
static const char *slot_name(int k) {
    return layer_slots[k].weight >= 0 ? trit_weights[layer_slots[k].weight].gguf : layer_slots[k].name;
}

/* What the hyperparameters say a tensor's shape is: ne (a vector is {n, 1}), and which keys gave it. */
struct expected_shape {
    int64_t ne[2];
    const char *from;
};

static struct expected_shape slot_shape(const struct trit_hparams *hp, enum layer_slot slot) {
    const int64_t D = hp->dim, F = hp->ffn_dim, Q = hp->n_heads * hp->head_dim, KV = hp->n_kv_heads * hp->head_dim;
    switch (slot) {
    case SLOT_ATTN_NORM:
    case SLOT_FFN_NORM: return (struct expected_shape){{D, 1}, "embedding_length"};
    case SLOT_Q_NORM:
    case SLOT_K_NORM: return (struct expected_shape){{hp->head_dim, 1}, "key_length"};
    case SLOT_ATTN_SUB_NORM: return (struct expected_shape){{Q, 1}, "head_count x key_length"};
    case SLOT_FFN_SUB_NORM: return (struct expected_shape){{F, 1}, "feed_forward_length"};
    case SLOT_Q: return (struct expected_shape){{D, Q}, "embedding_length, head_count x key_length"};
    case SLOT_K:
    case SLOT_V: return (struct expected_shape){{D, KV}, "embedding_length, head_count_kv x key_length"};
    case SLOT_O: return (struct expected_shape){{Q, D}, "head_count x key_length, embedding_length"};
    case SLOT_GATE:
    case SLOT_UP: return (struct expected_shape){{D, F}, "embedding_length, feed_forward_length"};
    case SLOT_DOWN: return (struct expected_shape){{F, D}, "feed_forward_length, embedding_length"};
    case N_LAYER_SLOTS: break;
    }
    return (struct expected_shape){{0, 0}, "?"};
}

/* How the loader sees one tensor name. */
struct tensor_role {
    bool known;        /* the loader reads it */
    int64_t layer;     /* N of "blk.N.", else -1; INT64_MAX when N does not fit */
    int layer_digits;  /* length of N's digits in the name, for messages */
    struct expected_shape shape;
};

static struct tensor_role classify(const struct gguf_loader *L, const char *name) {
    const struct trit_hparams *hp = &L->m->hp;
    struct tensor_role r = {.known = false, .layer = -1};
    if (strcmp(name, "token_embd.weight") == 0 || strcmp(name, "output.weight") == 0) {
        r.known = true;
        r.shape = (struct expected_shape){{hp->dim, L->n_vocab}, L->vocab_from};
        return r;
    }
    if (strcmp(name, "output_norm.weight") == 0) {
        r.known = true;
        r.shape = (struct expected_shape){{hp->dim, 1}, "embedding_length"};
        return r;
    }
    const char *rest;
    if (!model_layer_of(name, "blk.", &r.layer, &r.layer_digits, &rest)) return r;
    for (int k = 0; k < N_LAYER_SLOTS; k++) {
        if (!slot_read(hp, k)) continue;
        size_t n = strlen(slot_name(k));
        if (strncmp(rest, slot_name(k), n) != 0) continue;
        if (strcmp(rest + n, ".weight") == 0) {
            r.known = true;
            r.shape = slot_shape(hp, (enum layer_slot)k);
        } else if (layer_slots[k].weight >= 0 && strcmp(rest + n, ".scale") == 0) {
            r.known = true;
            r.shape = (struct expected_shape){{1, 1}, "one scale"};
        }
    }
    return r;
}

/* "[a, b, ...]": the first max(n_dims, 1) of ne. */
static const char *shape_str(const int64_t *ne, uint32_t n_dims, char *buf, size_t cap) {
    size_t at = 0;
    uint32_t n = n_dims ? n_dims : 1;
    at += (size_t)snprintf(buf, cap, "[");
    for (uint32_t d = 0; d < n && at < cap; d++)
        at += (size_t)snprintf(buf + at, cap - at, "%s%lld", d ? ", " : "", (long long)ne[d]);
    if (at < cap) snprintf(buf + at, cap - at, "]");
    return buf;
}

static enum trit_status check_tensor_set(struct gguf_loader *L) {
    const struct gguf_file *f = L->f;
    const struct trit_hparams *hp = &L->m->hp;
    const char *path = L->m->path, *arch = L->m->arch_name;
    /* n_vocab: <arch>.vocab_size when the file has it, else the embedding's own row count. */
    const struct gguf_tensor_info *embd = gguf_find_tensor(f, "token_embd.weight");
    if (!embd) return trit_error(TRIT_ERR_FORMAT, "gguf: tensor 'token_embd.weight' is missing (in %s)", path);
    char key[96];
    snprintf(key, sizeof key, "%s.vocab_size", arch);
    L->vocab_from = gguf_find_kv(f, key) ? "embedding_length, vocab_size" : "embedding_length, token_embd.weight's rows";
    TRIT_TRY(get_int(L, arch, "vocab_size", false, embd->ne[1], 1, (int64_t)1 << 31, &L->n_vocab));

    int64_t max_layer = -1;
    for (int64_t i = 0; i < f->n_tensors; i++) {
        const struct gguf_tensor_info *t = &f->tensors[i];
        char name[GGUF_MAX_NAME_BUF], got[128], want[64];
        tensor_name(t, name, sizeof name);
        struct tensor_role r = classify(L, name);
        if (r.layer >= hp->n_layers)
            return trit_error(TRIT_ERR_FORMAT, "gguf: tensor '%s': layer %.*s, but %s.block_count is %lld (in %s)", name,
                              r.layer_digits, name + 4, arch, (long long)hp->n_layers, path);
        if (r.layer > max_layer) max_layer = r.layer;
        if (!r.known) continue;
        const int64_t want_ne[GGUF_MAX_DIMS] = {r.shape.ne[0], r.shape.ne[1], 1, 1};
        if (memcmp(t->ne, want_ne, sizeof want_ne) != 0)
            return trit_error(TRIT_ERR_FORMAT, "gguf: tensor '%s' has shape %s, but the hyperparameters give %s (%s) (in %s)",
                              name, shape_str(t->ne, t->n_dims, got, sizeof got),
                              shape_str(want_ne, want_ne[1] == 1 ? 1 : 2, want, sizeof want), r.shape.from, path);
    }

    if (!gguf_find_tensor(f, "output_norm.weight"))
        return trit_error(TRIT_ERR_FORMAT, "gguf: tensor 'output_norm.weight' is missing (in %s)", path);
    for (int64_t i = 0; i < hp->n_layers; i++)
        for (int k = 0; k < N_LAYER_SLOTS; k++) {
            if (!slot_required(hp, k)) continue;
            char name[GGUF_MAX_NAME_BUF];
            snprintf(name, sizeof name, "blk.%lld.%s.weight", (long long)i, slot_name(k));
            if (gguf_find_tensor(f, name)) continue;
            if (i > max_layer)
                return trit_error(TRIT_ERR_FORMAT, "gguf: tensor '%s' is missing: %s.block_count is %lld, but the file's layers stop at %lld (in %s)",
                                  name, arch, (long long)hp->n_layers, (long long)max_layer, path);
            return trit_error(TRIT_ERR_FORMAT, "gguf: tensor '%s' is missing (in %s)", name, path);
        }
    return TRIT_OK;
}

/* ---- type ids sized by their byte span ------------------------------------------------------
 * Two type ids name more than one layout, and no key says which:
 *   42  Q2_0: mainline ggml's blocks of 64 weights (18 bytes) or PrismML's blocks of 128 (34 bytes;
 *       the branch that wrote the Ternary-Bonsai files);
 *   36  outside bitnet.cpp's architectures (bitnet, llama, ...): bitnet.cpp's I2_S (n/4 + 32 bytes)
 *       or llama.cpp's old IQ4_NL_4_4 (blocks of 32 in 18 bytes; removed from llama.cpp since).
 * What the file proves is each tensor's byte span (gguf_tensor_span): every writer pads a tensor of
 * B bytes to general.alignment A, so a layout fits when B <= span < B + A (the last tensor of an
 * unpadded file spans exactly B). The layout is decided once per file and id, over all its tensors:
 * a tensor that fits one layout only proves it; a tensor that fits neither, two proofs that disagree,
 * or no proof at all (every tensor fits both: for Q2_0, n/64 < A) are refused, naming the tensor. */

struct span_layouts {
    uint32_t type;
    const char *what[2];                                      /* "blocks of 64 (llama.cpp)", ... */
    int64_t (*bytes)(const struct gguf_loader *L, int option, int64_t n_rows, int64_t n_cols); /* -1: cannot hold it */
};

static int64_t q2_0_bytes(const struct gguf_loader *L, int option, int64_t n_rows, int64_t n_cols) {
    (void)L;
    return trit_q2_0_bytes(n_rows, n_cols, option == 0 ? 64 : 128);
}

static int64_t id36_bytes(const struct gguf_loader *L, int option, int64_t n_rows, int64_t n_cols) {
    if (option == 0) return trit_i2s_bytes_layout(n_rows, n_cols, L->params ? L->params->i2s_layout : TRIT_I2S_X86);
    int64_t n_blocks, n_bytes; /* IQ4_NL_4_4: ggml's IQ4_NL block, 32 weights in 18 bytes */
    if (n_cols % 32 != 0 || !trit_mul_i64(n_rows, n_cols / 32, &n_blocks) || !trit_mul_i64(n_blocks, 18, &n_bytes)) return -1;
    return n_bytes;
}

static bool span_fits(uint64_t span, int64_t bytes, uint64_t alignment) {
    return bytes > 0 && (uint64_t)bytes <= span && span - (uint64_t)bytes < alignment;
}

/* Decides between lay->what[0] and [1] for every tensor of lay->type; *option = -1 when the file has
 * none, else the option and *proof the index of the first tensor that proves it. Tensors with no
 * elements are left as they are. */
static enum trit_status decide_by_span(const struct gguf_loader *L, const struct span_layouts *lay, int *option,
                                       int64_t *proof_index) {
    const struct gguf_file *f = L->f;
    int64_t proof[2] = {-1, -1}, first = -1;
    *option = -1;
    for (int64_t i = 0; i < f->n_tensors; i++) {
        const struct gguf_tensor_info *t = &f->tensors[i];
        if (t->type != lay->type || t->data || t->ne[0] == 0 || t->ne[1] * t->ne[2] * t->ne[3] == 0) continue;
        const int64_t n_cols = t->ne[0], n_rows = t->ne[1] * t->ne[2] * t->ne[3];
        const uint64_t span = gguf_tensor_span(f, i);
        int64_t b[2];
        bool fits[2];
        for (int o = 0; o < 2; o++) {
            b[o] = lay->bytes(L, o, n_rows, n_cols);
            fits[o] = span_fits(span, b[o], f->alignment);
        }
        if (first < 0) first = i;
        if (!fits[0] && !fits[1]) {
            char name[96], b0[64], b1[64];
            tensor_name(t, name, sizeof name);
            if (b[0] >= 0) snprintf(b0, sizeof b0, "%lld bytes", (long long)b[0]);
            else snprintf(b0, sizeof b0, "no: a row of %lld does not divide into its blocks", (long long)n_cols);
            if (b[1] >= 0) snprintf(b1, sizeof b1, "%lld bytes", (long long)b[1]);
            else snprintf(b1, sizeof b1, "no: a row of %lld does not divide into its blocks", (long long)n_cols);
            return trit_error(TRIT_ERR_FORMAT,
                              "gguf: tensor '%s' (type id %u, %lld x %lld) spans %llu bytes up to the next tensor or the end of the file, which fits neither %s (%s) nor %s (%s), padded to the alignment %llu; the file is truncated or corrupt (in %s)",
                              name, lay->type, (long long)n_rows, (long long)n_cols, (unsigned long long)span, lay->what[0], b0,
                              lay->what[1], b1, (unsigned long long)f->alignment, L->m->path);
        }
        for (int o = 0; o < 2; o++)
            if (fits[o] && !fits[1 - o] && proof[o] < 0) proof[o] = i;
    }
    if (first < 0) return TRIT_OK;
    char a[96], b[96];
    if (proof[0] >= 0 && proof[1] >= 0) {
        tensor_name(&f->tensors[proof[0]], a, sizeof a);
        tensor_name(&f->tensors[proof[1]], b, sizeof b);
        return trit_error(TRIT_ERR_FORMAT,
                          "gguf: the byte spans of tensors '%s' (%s) and '%s' (%s) disagree on what type id %u is; one file holds one layout, so trit refuses it (in %s)",
                          a, lay->what[0], b, lay->what[1], lay->type, L->m->path);
    }
    if (proof[0] < 0 && proof[1] < 0) {
        tensor_name(&f->tensors[first], a, sizeof a);
        return trit_error(TRIT_ERR_UNSUPPORTED,
                          "gguf: every tensor of type id %u (the first: '%s') fits both %s and %s in its byte span (alignment %llu): the tensors are too small for the file to say which, so trit refuses it (in %s)",
                          lay->type, a, lay->what[0], lay->what[1], (unsigned long long)f->alignment, L->m->path);
    }
    *option = proof[0] >= 0 ? 0 : 1;
    *proof_index = proof[*option];
    return TRIT_OK;
}

/* Sizes every tensor of lay->type with the decided option (each one fits it: decide_by_span). */
static enum trit_status size_by_span(struct gguf_loader *L, const struct span_layouts *lay, int option) {
    struct gguf_file *f = L->f;
    for (int64_t i = 0; i < f->n_tensors; i++) {
        const struct gguf_tensor_info *t = &f->tensors[i];
        if (t->type != lay->type || t->data || t->ne[0] == 0 || t->ne[1] * t->ne[2] * t->ne[3] == 0) continue;
        const int64_t b = lay->bytes(L, option, t->ne[1] * t->ne[2] * t->ne[3], t->ne[0]);
        if (b <= 0) return trit_error(TRIT_ERR_INTERNAL, "gguf: a tensor of type id %u lost its size", lay->type);
        TRIT_TRY(gguf_tensor_set_bytes(f, i, (uint64_t)b));
    }
    return TRIT_OK;
}

static enum trit_status resolve_by_span(struct gguf_loader *L) {
    static const struct span_layouts q2 = {GGML_TYPE_Q2_0, {"Q2_0 in blocks of 64 (llama.cpp)", "Q2_0 in blocks of 128 (PrismML)"}, q2_0_bytes};
    static const struct span_layouts i36 = {GGML_TYPE_I2_S_BITNET, {"I2_S (bitnet.cpp)", "IQ4_NL_4_4 (llama.cpp's old type 36)"}, id36_bytes};
    int option;
    int64_t proof;
    TRIT_TRY(decide_by_span(L, &q2, &option, &proof));
    if (option >= 0) {
        L->q2_group = option == 0 ? 64 : 128;
        TRIT_TRY(size_by_span(L, &q2, option));
    }
    if (L->bitnet_ids) return TRIT_OK; /* type 36 is I2_S there, sized by the parser */
    TRIT_TRY(decide_by_span(L, &i36, &option, &proof));
    if (option == 1) {
        char name[96];
        tensor_name(&L->f->tensors[proof], name, sizeof name);
        return trit_error(TRIT_ERR_UNSUPPORTED,
                          "gguf: tensor '%s' has type id 36 with the byte span of llama.cpp's old IQ4_NL_4_4 (removed from llama.cpp), not bitnet.cpp's I2_S; trit does not read IQ4_NL_4_4 (in %s)",
                          name, L->m->path);
    }
    if (option == 0) {
        L->i2s_by_span = true;
        TRIT_TRY(size_by_span(L, &i36, option));
    }
    return TRIT_OK;
}

/* The tensors the loader did not read: an "unused" note each and one warning (model_internal.h). */
static enum trit_status report_unused(struct gguf_loader *L) {
    const struct gguf_file *f = L->f;
    struct model_unused unused = {0};
    for (int64_t i = 0; i < f->n_tensors; i++) {
        const struct gguf_tensor_info *t = &f->tensors[i];
        char name[GGUF_MAX_NAME_BUF];
        tensor_name(t, name, sizeof name);
        if (classify(L, name).known) continue;
        TRIT_TRY(model_unused_add(L->m, &L->note_cap, &unused, name, t->ne[1] * t->ne[2] * t->ne[3], t->ne[0], t->n_bytes));
    }
    model_unused_report(L->m, &unused);
    return TRIT_OK;
}

/* llama.cpp's converter permutes the Q and K rows of llama models so that RoPE rotates adjacent
 * pairs; trit keeps those rows as they are and rotates in the same "normal" style. */

static enum trit_status load_layers(struct gguf_loader *L) {
    struct trit_model *m = L->m;
    const struct trit_hparams *hp = &m->hp;
    m->layers = trit_alloc((size_t)hp->n_layers * sizeof *m->layers);
    if (!m->layers) return trit_error(TRIT_ERR_OUT_OF_MEMORY, "out of memory for %lld layers", (long long)hp->n_layers);
    const int64_t q_dim = hp->n_heads * hp->head_dim;
    L->total = hp->n_layers * 7;
    char name[128];
#define NAME(slot) (snprintf(name, sizeof name, "blk.%lld.%s.weight", (long long)i, slot_name(slot)), name)
    for (int64_t i = 0; i < hp->n_layers; i++) {
        struct trit_layer *l = &m->layers[i];
        TRIT_TRY(load_vector(L, NAME(SLOT_ATTN_NORM), hp->dim, true, &l->attn_norm));
        TRIT_TRY(load_ternary(L, NAME(SLOT_Q), &l->w[TRIT_W_Q]));
        TRIT_TRY(load_ternary(L, NAME(SLOT_K), &l->w[TRIT_W_K]));
        TRIT_TRY(load_ternary(L, NAME(SLOT_V), &l->w[TRIT_W_V]));
        if (hp->qk_norm) {
            TRIT_TRY(load_vector(L, NAME(SLOT_Q_NORM), hp->head_dim, true, &l->attn_q_norm));
            TRIT_TRY(load_vector(L, NAME(SLOT_K_NORM), hp->head_dim, true, &l->attn_k_norm));
        }
        TRIT_TRY(load_vector(L, NAME(SLOT_ATTN_SUB_NORM), q_dim, hp->sub_norms, &l->attn_sub_norm));
        TRIT_TRY(load_ternary(L, NAME(SLOT_O), &l->w[TRIT_W_O]));
        TRIT_TRY(load_vector(L, NAME(SLOT_FFN_NORM), hp->dim, true, &l->ffn_norm));
        TRIT_TRY(load_ternary(L, NAME(SLOT_GATE), &l->w[TRIT_W_GATE]));
        TRIT_TRY(load_ternary(L, NAME(SLOT_UP), &l->w[TRIT_W_UP]));
        TRIT_TRY(load_vector(L, NAME(SLOT_FFN_SUB_NORM), hp->ffn_dim, hp->sub_norms, &l->ffn_sub_norm));
        TRIT_TRY(load_ternary(L, NAME(SLOT_DOWN), &l->w[TRIT_W_DOWN]));
    }
#undef NAME
    return TRIT_OK;
}

static enum trit_status load_all(struct gguf_loader *L) {
    struct trit_model *m = L->m;
    TRIT_TRY(read_hparams(L));
    TRIT_TRY(check_tensor_set(L));
    TRIT_TRY(resolve_by_span(L));
    enum trit_status st;
    const struct gguf_tensor_info *embd = find(L, "token_embd.weight", true, &st);
    TRIT_TRY(st);
    TRIT_TRY(load_dense(L, embd, &m->tok_embd));
    m->hp.n_vocab = m->tok_embd.n_rows;
    TRIT_TRY(load_vector(L, "output_norm.weight", m->hp.dim, true, &m->out_norm));
    const struct gguf_tensor_info *out = gguf_find_tensor(L->f, "output.weight");
    if (out) {
        TRIT_TRY(load_dense(L, out, &m->output));
        m->hp.tied_embeddings = false;
    } else {
        m->output = m->tok_embd;
        m->hp.tied_embeddings = true;
    }
    TRIT_TRY(load_layers(L));
    TRIT_TRY(report_unused(L));
    return trit_model_validate(m);
}

enum trit_status trit_model_load_gguf(const char *path, const struct trit_load_params *params,
                                      struct trit_model *out) {
    if (!path || !out) return trit_error(TRIT_ERR_INVALID_ARG, "model load: NULL argument");
    memset(out, 0, sizeof *out);
    struct gguf_file *f = trit_alloc(sizeof *f);
    if (!f) return trit_error(TRIT_ERR_OUT_OF_MEMORY, "out of memory");
    enum trit_status st = gguf_open(path, f);
    if (st != TRIT_OK) {
        trit_free(f);
        return st;
    }
    struct gguf_loader L = {.m = out, .params = params};
    L.f = f;
    out->mapping = f;
    out->release_mapping = release_gguf;
    snprintf(out->source, sizeof out->source, "gguf");
    snprintf(out->path, sizeof out->path, "%s", path);
    st = load_all(&L);
    if (st != TRIT_OK) {
        trit_model_release(out);
        return st;
    }
    return TRIT_OK;
}
