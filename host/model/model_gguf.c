/*
 * model_gguf.c: a GGUF file (bitnet.cpp, llama.cpp or `trit convert`) to a struct trit_model.
 *
 * Architectures:  bitnet-b1.58, bitnet-25 (bitnet.cpp, 2B-4T)   -> TRIT_FAMILY_BITNET_B158
 *                 bitnet (llama.cpp, 1bitLLM)                   -> TRIT_FAMILY_BITNET
 *                 llama (ternary weights; Q/K rows permuted by llama.cpp's converter, so RoPE is
 *                        the "normal" pairwise style)          -> TRIT_FAMILY_LLAMA
 * Ternary weights: TQ2_0, TQ1_0, I2_S (type 36, only under the bitnet.cpp architectures), or
 * F32/F16/BF16 (ternary times a scale is recovered exactly; anything else is ternarized by absmean).
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
    } else {
        return trit_error(TRIT_ERR_UNSUPPORTED,
                          "gguf: architecture '%s' is not supported (trit runs bitnet-b1.58, bitnet-25, bitnet, and llama with ternary weights)",
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

static enum trit_status load_dense_quantized(struct gguf_loader *L, const struct gguf_tensor_info *t,
                                            struct trit_dense *out) {
    char name[96], kind[24];
    snprintf(name, sizeof name, "%.*s", (int)t->name.len, t->name.ptr);
    if (t->ne[2] != 1 || t->ne[3] != 1) return trit_error(TRIT_ERR_FORMAT, "gguf: tensor '%s' must be 2-D", name);
    uint16_t *h = NULL;
    enum trit_status st = trit_ggml_dequant_f16(t->type, t->data, t->ne[1], t->ne[0], &h);
    if (st != TRIT_OK) {
        char why[512];
        snprintf(why, sizeof why, "%s", trit_last_error());
        return trit_error(st, "gguf: tensor '%s': %s", name, why);
    }
    out->dtype = TRIT_DTYPE_F16;
    out->n_cols = t->ne[0];
    out->n_rows = t->ne[1];
    out->data = h;
    out->owned = h;
    snprintf(kind, sizeof kind, "%s -> F16", gguf_type_name(t->type, L->bitnet_ids));
    return model_note(L->m, &L->note_cap, name, kind, out->n_rows, out->n_cols, t->n_bytes);
}

static enum trit_status load_dense(struct gguf_loader *L, const struct gguf_tensor_info *t, struct trit_dense *out) {
    /* llama-quantize's Q6_K / Q8_0 / Q4_K ... embedding and head: dequantized once into an owned
     * fp16 copy (the head kernels read F16 rows). */
    if (t->data && trit_ggml_dequant_supported(t->type)) return load_dense_quantized(L, t, out);
    char name[96]; /* t->name is not NUL-terminated */
    snprintf(name, sizeof name, "%.*s", (int)t->name.len, t->name.ptr);
    enum trit_dtype dt = TRIT_DTYPE_F32;
    if (float_dtype(t->type, name, L->bitnet_ids, &dt) != TRIT_OK)
        return trit_error(TRIT_ERR_UNSUPPORTED,
                          "gguf: tensor '%s' has type %s; trit reads F32, F16, BF16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q2_K, Q3_K, Q4_K, Q5_K or Q6_K here (re-export it with llama-quantize --token-embedding-type f16 --output-tensor-type f16, or convert from the HF folder)",
                          name, gguf_type_name(t->type, L->bitnet_ids));
    if (t->ne[2] != 1 || t->ne[3] != 1)
        return trit_error(TRIT_ERR_FORMAT, "gguf: tensor '%s' must be 2-D", name);
    out->dtype = dt;
    out->n_cols = t->ne[0];
    out->n_rows = t->ne[1];
    out->data = t->data;
    out->owned = NULL;
    return model_note(L->m, &L->note_cap, name, gguf_type_name(t->type, L->bitnet_ids), out->n_rows, out->n_cols, t->n_bytes);
}

/* Reads one ternary weight, with ne = {n_cols, n_rows}, into *w. */
static enum trit_status load_ternary(struct gguf_loader *L, const char *name, struct trit_ternary *w) {
    enum trit_status st;
    const struct gguf_tensor_info *t = find(L, name, true, &st);
    TRIT_TRY(st);
    if (t->ne[2] != 1 || t->ne[3] != 1) return trit_error(TRIT_ERR_FORMAT, "gguf: tensor '%s' must be 2-D", name);
    const int64_t n_cols = t->ne[0], n_rows = t->ne[1];
    if (!t->data) {
        if (t->type >= 36 && !L->bitnet_ids && (t->type == 36 || t->type == 38 || t->type == 39))
            return trit_error(TRIT_ERR_UNSUPPORTED,
                              "gguf: tensor '%s' has type id %u, which means I2_S/TL1/TL2 in bitnet.cpp files but something else in llama.cpp files; this file's architecture '%s' does not say which, so trit refuses it",
                              name, t->type, L->m->arch_name);
        return trit_error(TRIT_ERR_UNSUPPORTED, "gguf: tensor '%s' has type %s, which trit cannot read as ternary weights",
                          name, gguf_type_name(t->type, L->bitnet_ids));
    }
    const char *kind = gguf_type_name(t->type, L->bitnet_ids);
    TRIT_TRY(trit_ternary_init(w, n_rows, n_cols));
    switch (t->type) {
    case GGML_TYPE_TQ2_0: st = trit_tq2_0_decode(t->data, w); break;
    case GGML_TYPE_TQ1_0: st = trit_tq1_0_decode(t->data, w); break;
    case GGML_TYPE_I2_S_BITNET:
        if (!L->bitnet_ids) {
            st = trit_error(TRIT_ERR_INTERNAL, "gguf: I2_S outside a bitnet.cpp file");
            break;
        }
        st = trit_i2s_decode_layout(t->data, L->params ? L->params->i2s_layout : TRIT_I2S_X86, w);
        break;
    case GGML_TYPE_F32:
    case GGML_TYPE_F16:
    case GGML_TYPE_BF16: {
        trit_ternary_free(w);
        enum trit_dtype dt = TRIT_DTYPE_F32;
        TRIT_TRY(float_dtype(t->type, name, L->bitnet_ids, &dt));
        float *tmp;
        TRIT_TRY(model_copy_f32(t->data, dt, n_rows * n_cols, &tmp));
        bool exact;
        st = model_ternary_from_floats(tmp, n_rows, n_cols, w, &exact);
        trit_free(tmp);
        if (st == TRIT_OK && !exact) kind = t->type == GGML_TYPE_F32 ? "F32 -> absmean" : t->type == GGML_TYPE_F16 ? "F16 -> absmean" : "BF16 -> absmean";
        break;
    }
    default:
        st = trit_error(TRIT_ERR_UNSUPPORTED, "gguf: tensor '%s' has type %s, which trit cannot read as ternary weights",
                        name, gguf_type_name(t->type, L->bitnet_ids));
    }
    if (st != TRIT_OK) {
        trit_ternary_free(w);
        /* Name the tensor; the codec's message says what was wrong inside it. */
        char why[512];
        snprintf(why, sizeof why, "%s", trit_last_error());
        return trit_error(st, "gguf: tensor '%s': %s", name, why);
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
    SLOT_ATTN_NORM, SLOT_Q, SLOT_K, SLOT_V, SLOT_ATTN_SUB_NORM, SLOT_O,
    SLOT_FFN_NORM, SLOT_GATE, SLOT_UP, SLOT_FFN_SUB_NORM, SLOT_DOWN, N_LAYER_SLOTS
};
static const struct {
    const char *name; /* a norm's; a ternary weight's is trit_weights[weight].gguf (slot_name) */
    int weight;       /* enum trit_weight, or -1 for a norm */
    bool sub_norm;    /* required only where the family has sub-norms (read when present otherwise) */
} layer_slots[N_LAYER_SLOTS] = {
    [SLOT_ATTN_NORM] = {"attn_norm", -1, false},
    [SLOT_Q] = {NULL, TRIT_W_Q, false},
    [SLOT_K] = {NULL, TRIT_W_K, false},
    [SLOT_V] = {NULL, TRIT_W_V, false},
    [SLOT_ATTN_SUB_NORM] = {"attn_sub_norm", -1, true},
    [SLOT_O] = {NULL, TRIT_W_O, false},
    [SLOT_FFN_NORM] = {"ffn_norm", -1, false},
    [SLOT_GATE] = {NULL, TRIT_W_GATE, false},
    [SLOT_UP] = {NULL, TRIT_W_UP, false},
    [SLOT_FFN_SUB_NORM] = {"ffn_sub_norm", -1, true},
    [SLOT_DOWN] = {NULL, TRIT_W_DOWN, false},
};

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

static void tensor_name(const struct gguf_tensor_info *t, char *buf, size_t cap) {
    snprintf(buf, cap, "%.*s", (int)t->name.len, t->name.ptr); /* names have no NUL (gguf.c) */
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
            if (layer_slots[k].sub_norm && !hp->sub_norms) continue;
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
