/*
 * model.c: what every loader shares: dispatch by path, validation, release, and the small
 * helpers that turn a file's tensor into a canonical ternary matrix or a dense matrix.
 */
#include "model/model.h"

#include <math.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "model/model_internal.h"

const struct trit_weight_info trit_weights[TRIT_N_W] = {
    [TRIT_W_Q] = {.gguf = "attn_q", .hf = "self_attn.q_proj", .what = "q projection"},
    [TRIT_W_K] = {.gguf = "attn_k", .hf = "self_attn.k_proj", .what = "k projection"},
    [TRIT_W_V] = {.gguf = "attn_v", .hf = "self_attn.v_proj", .what = "v projection"},
    [TRIT_W_O] = {.gguf = "attn_output", .hf = "self_attn.o_proj", .what = "o projection"},
    [TRIT_W_GATE] = {.gguf = "ffn_gate", .hf = "mlp.gate_proj", .what = "gate projection"},
    [TRIT_W_UP] = {.gguf = "ffn_up", .hf = "mlp.up_proj", .what = "up projection"},
    [TRIT_W_DOWN] = {.gguf = "ffn_down", .hf = "mlp.down_proj", .what = "down projection"},
};

void trit_weight_shape(const struct trit_hparams *hp, enum trit_weight w, int64_t *n_rows, int64_t *n_cols) {
    const int64_t D = hp->dim, F = hp->ffn_dim, Q = hp->n_heads * hp->head_dim, KV = hp->n_kv_heads * hp->head_dim;
    switch (w) {
    case TRIT_W_Q: *n_rows = Q, *n_cols = D; return;
    case TRIT_W_K:
    case TRIT_W_V: *n_rows = KV, *n_cols = D; return;
    case TRIT_W_O: *n_rows = D, *n_cols = Q; return;
    case TRIT_W_GATE:
    case TRIT_W_UP: *n_rows = F, *n_cols = D; return;
    case TRIT_W_DOWN: *n_rows = D, *n_cols = F; return;
    case TRIT_N_W: break;
    }
    *n_rows = *n_cols = 0;
}

const char *trit_family_name(enum trit_family f) {
    switch (f) {
    case TRIT_FAMILY_BITNET_B158: return "bitnet-b1.58 (2B-4T graph: ReLU^2, sub-norms, GQA)";
    case TRIT_FAMILY_BITNET: return "bitnet (1bitLLM graph: SiLU, sub-norms)";
    case TRIT_FAMILY_LLAMA: return "llama with BitLinear weights";
    case TRIT_FAMILY_QWEN3: return "qwen3 (q/k norms, group-scaled ternary, activations per 64)";
    case TRIT_FAMILY_GEMMA3: return "gemma3 (GELU-tanh, q/k and sandwich norms, sliding window, group-scaled ternary, activations per 64)";
    }
    return "unknown";
}

const char *trit_model_cpu_only(const struct trit_model *m) {
    const struct trit_hparams *hp = &m->hp;
    if (hp->post_norms || hp->act == TRIT_ACT_GELU_TANH || hp->sliding_window > 0 || hp->embd_scale > 0.0f ||
        hp->attn_scale > 0.0f)
        return "gemma3's graph (post-norms, GELU-tanh, sliding-window attention, scaled embedding and attention)";
    return NULL;
}

bool trit_model_group_rule(const struct trit_model *m) {
    if (m->hp.act_block > 0) return true;
    for (int64_t i = 0; m->layers && i < m->hp.n_layers; i++)
        for (int w = 0; w < TRIT_N_W; w++)
            if (m->layers[i].w[w].group > 0) return true;
    return false;
}

/* Reads through memcpy: the loaders also use it on small tensors (norms, scales) that still sit at
 * the file's offsets, which need not be aligned. */
void trit_dense_row_f32(const struct trit_dense *m, int64_t r, float *out) {
    const int64_t n = m->n_cols;
    const char *row = (const char *)m->data + r * n * (m->dtype == TRIT_DTYPE_F32 ? 4 : 2);
    switch (m->dtype) {
    case TRIT_DTYPE_F32: memcpy(out, row, (size_t)n * sizeof(float)); break;
    case TRIT_DTYPE_F16:
    case TRIT_DTYPE_BF16:
        for (int64_t i = 0; i < n; i++) {
            uint16_t h;
            memcpy(&h, row + 2 * i, sizeof h);
            out[i] = m->dtype == TRIT_DTYPE_F16 ? trit_fp16_to_fp32(h) : trit_bf16_to_fp32(h);
        }
        break;
    }
}

/* A file's tensor data is where the file puts it: safetensors data starts at 8 + the header length,
 * a GGUF file's at its own alignment, which a file may set to 1. Every reader of a dense matrix
 * (model.h) may rely on its element alignment, so a misaligned one is copied once into owned,
 * aligned memory (owned memory is always aligned: only mapped bytes can be misaligned). */
static enum trit_status dense_align(struct trit_dense *d) {
    const size_t es = d->dtype == TRIT_DTYPE_F32 ? 4 : 2;
    if (!d->data || (uintptr_t)d->data % es == 0) return TRIT_OK;
    const size_t n_bytes = (size_t)(d->n_rows * d->n_cols) * es;
    void *copy = trit_alloc(n_bytes);
    if (!copy)
        return trit_error(TRIT_ERR_OUT_OF_MEMORY, "model load: out of memory copying a misaligned tensor (%zu bytes)",
                          n_bytes);
    memcpy(copy, d->data, n_bytes);
    d->data = copy;
    d->owned = copy;
    return TRIT_OK;
}

/* Both dense matrices element-aligned; a head tied to the embedding (the same bytes) follows its copy. */
static enum trit_status model_align_dense(struct trit_model *m) {
    const void *embd = m->tok_embd.data;
    TRIT_TRY(dense_align(&m->tok_embd));
    if (embd && m->output.data == embd) {
        m->output.data = m->tok_embd.data;
        m->output.owned = m->tok_embd.owned; /* freed once: trit_model_release compares the two */
        return TRIT_OK;
    }
    return dense_align(&m->output);
}

enum trit_status trit_model_load_path(const char *path, const struct trit_load_params *params,
                                      struct trit_model *out) {
    struct stat st;
    if (!path || !out) return trit_error(TRIT_ERR_INVALID_ARG, "model load: NULL argument");
    if (strncmp(path, TRIT_SYNTHETIC_PREFIX, strlen(TRIT_SYNTHETIC_PREFIX)) == 0)
        return trit_model_synthetic_spec(path + strlen(TRIT_SYNTHETIC_PREFIX), out);
    if (stat(path, &st) != 0) return trit_error(TRIT_ERR_NOT_FOUND, "cannot open model '%s': no such file or directory", path);
    TRIT_TRY(S_ISDIR(st.st_mode) ? trit_model_load_hf(path, params, out) : trit_model_load_gguf(path, params, out));
    const enum trit_status status = model_align_dense(out);
    if (status != TRIT_OK) trit_model_release(out);
    return status;
}

static void layer_release(struct trit_layer *l) {
    trit_free(l->attn_norm);
    trit_free(l->attn_sub_norm);
    trit_free(l->ffn_norm);
    trit_free(l->ffn_sub_norm);
    trit_free(l->attn_q_norm);
    trit_free(l->attn_k_norm);
    trit_free(l->attn_post_norm);
    trit_free(l->ffn_post_norm);
    for (int w = 0; w < TRIT_N_W; w++) trit_ternary_free(&l->w[w]);
}

void trit_model_release(struct trit_model *m) {
    if (!m) return;
    if (m->layers)
        for (int64_t i = 0; i < m->hp.n_layers; i++) layer_release(&m->layers[i]);
    trit_free(m->layers);
    trit_free(m->out_norm);
    trit_free(m->tok_embd.owned);
    if (m->output.owned != m->tok_embd.owned) trit_free(m->output.owned);
    trit_free(m->notes);
    if (m->release_mapping) m->release_mapping(m->mapping);
    memset(m, 0, sizeof *m);
}

int64_t trit_model_ternary_params(const struct trit_model *m) {
    int64_t n = 0;
    for (int64_t i = 0; i < m->hp.n_layers; i++) {
        for (int w = 0; w < TRIT_N_W; w++) n += m->layers[i].w[w].n_rows * m->layers[i].w[w].n_cols;
    }
    return n;
}

/* ---- validation -------------------------------------------------------------------------- */

static enum trit_status check_ternary(const struct trit_ternary *w, int64_t rows, int64_t cols,
                                      int64_t layer, const char *what) {
    if (!w->codes) return trit_error(TRIT_ERR_FORMAT, "layer %lld: %s is missing", (long long)layer, what);
    if (w->n_rows != rows || w->n_cols != cols)
        return trit_error(TRIT_ERR_FORMAT, "layer %lld: %s has shape [%lld, %lld], expected [%lld, %lld]",
                          (long long)layer, what, (long long)w->n_rows, (long long)w->n_cols,
                          (long long)rows, (long long)cols);
    if (!(w->scale > 0.0f) || !isfinite(w->scale))
        return trit_error(TRIT_ERR_FORMAT, "layer %lld: %s has weight scale %g (must be finite and > 0)",
                          (long long)layer, what, (double)w->scale);
    if (w->group > 0) {
        if (w->group % TRIT_GROUP_UNIT != 0 || !w->group_scales || w->scale != 1.0f || w->scale_kind != TRIT_SCALE_MUL)
            return trit_error(TRIT_ERR_FORMAT, "layer %lld: %s has an inconsistent group scaling (group %lld)",
                              (long long)layer, what, (long long)w->group);
        const int64_t n = w->n_rows * trit_ternary_n_groups(w);
        for (int64_t i = 0; i < n; i++)
            if (!isfinite(w->group_scales[i]))
                return trit_error(TRIT_ERR_FORMAT, "layer %lld: %s has group scale %g at row %lld, group %lld",
                                  (long long)layer, what, (double)w->group_scales[i],
                                  (long long)(i / trit_ternary_n_groups(w)), (long long)(i % trit_ternary_n_groups(w)));
    }
    return TRIT_OK;
}

enum trit_status trit_model_validate(const struct trit_model *m) {
    const struct trit_hparams *hp = &m->hp;
    if (hp->n_layers <= 0 || hp->dim <= 0 || hp->n_heads <= 0 || hp->n_kv_heads <= 0 || hp->head_dim <= 0 ||
        hp->ffn_dim <= 0 || hp->n_vocab <= 0)
        return trit_error(TRIT_ERR_FORMAT,
                          "hyperparameters out of range: layers %lld, dim %lld, heads %lld/%lld, head_dim %lld, ffn %lld, vocab %lld",
                          (long long)hp->n_layers, (long long)hp->dim, (long long)hp->n_heads,
                          (long long)hp->n_kv_heads, (long long)hp->head_dim, (long long)hp->ffn_dim,
                          (long long)hp->n_vocab);
    if (hp->n_heads % hp->n_kv_heads != 0)
        return trit_error(TRIT_ERR_FORMAT, "n_heads %lld is not a multiple of n_kv_heads %lld",
                          (long long)hp->n_heads, (long long)hp->n_kv_heads);
    if (hp->act_block != 0 && hp->act_block != TRIT_GROUP_UNIT)
        return trit_error(TRIT_ERR_UNSUPPORTED, "activation block %lld (0 or %d)", (long long)hp->act_block, TRIT_GROUP_UNIT);
    if (hp->head_dim % 2 != 0) return trit_error(TRIT_ERR_UNSUPPORTED, "head_dim %lld is odd; RoPE needs pairs", (long long)hp->head_dim);
    /* inf passes "> 0": an infinite eps zeroes every normalized row, and so every logit. The loaders
     * narrow doubles to float, so a finite 1e300 in the file arrives here as inf too. */
    if (!(hp->norm_eps > 0.0f) || !isfinite(hp->norm_eps) || !(hp->rope_theta > 0.0f) || !isfinite(hp->rope_theta))
        return trit_error(TRIT_ERR_FORMAT, "norm eps %g and rope theta %g must be finite and positive", (double)hp->norm_eps,
                          (double)hp->rope_theta);
    if (hp->sliding_window < 0 || (hp->sliding_window > 0 && (!(hp->rope_theta_local > 0.0f) || !isfinite(hp->rope_theta_local))))
        return trit_error(TRIT_ERR_FORMAT, "sliding window %lld with local rope theta %g (a window needs a finite positive theta)",
                          (long long)hp->sliding_window, (double)hp->rope_theta_local);
    if (hp->embd_scale < 0.0f || !isfinite(hp->embd_scale) || hp->attn_scale < 0.0f || !isfinite(hp->attn_scale))
        return trit_error(TRIT_ERR_FORMAT, "embedding scale %g and attention scale %g must be finite, 0 meaning none",
                          (double)hp->embd_scale, (double)hp->attn_scale);
    if (!m->out_norm) return trit_error(TRIT_ERR_FORMAT, "the final norm weight is missing");
    if (!m->tok_embd.data || m->tok_embd.n_rows != hp->n_vocab || m->tok_embd.n_cols != hp->dim)
        return trit_error(TRIT_ERR_FORMAT, "token embedding has shape [%lld, %lld], expected [%lld, %lld]",
                          (long long)m->tok_embd.n_rows, (long long)m->tok_embd.n_cols, (long long)hp->n_vocab, (long long)hp->dim);
    if (!m->output.data || m->output.n_rows != hp->n_vocab || m->output.n_cols != hp->dim)
        return trit_error(TRIT_ERR_FORMAT, "output head has shape [%lld, %lld], expected [%lld, %lld]",
                          (long long)m->output.n_rows, (long long)m->output.n_cols, (long long)hp->n_vocab, (long long)hp->dim);
    for (int64_t i = 0; i < hp->n_layers; i++) {
        const struct trit_layer *l = &m->layers[i];
        if (!l->attn_norm || !l->ffn_norm) return trit_error(TRIT_ERR_FORMAT, "layer %lld: a norm weight is missing", (long long)i);
        if (hp->sub_norms && (!l->attn_sub_norm || !l->ffn_sub_norm))
            return trit_error(TRIT_ERR_FORMAT, "layer %lld: a sub-norm weight is missing (this architecture has attn_sub_norm and ffn_sub_norm)", (long long)i);
        if (hp->qk_norm && (!l->attn_q_norm || !l->attn_k_norm))
            return trit_error(TRIT_ERR_FORMAT, "layer %lld: a q or k norm weight is missing (this architecture has attn_q_norm and attn_k_norm)", (long long)i);
        if (hp->post_norms && (!l->attn_post_norm || !l->ffn_post_norm))
            return trit_error(TRIT_ERR_FORMAT, "layer %lld: a post-norm weight is missing (this architecture has post_attention_norm and post_ffw_norm)", (long long)i);
        if (l->sliding && hp->sliding_window <= 0)
            return trit_error(TRIT_ERR_FORMAT, "layer %lld is a sliding-window layer, but the model has no window", (long long)i);
        for (int w = 0; w < TRIT_N_W; w++) {
            int64_t rows, cols;
            trit_weight_shape(hp, (enum trit_weight)w, &rows, &cols);
            TRIT_TRY(check_ternary(&l->w[w], rows, cols, i, trit_weights[w].what));
        }
    }
    return TRIT_OK;
}

/* ---- helpers for the loaders ---------------------------------------------------------------- */

enum trit_status model_note(struct trit_model *m, int64_t *cap, const char *name, const char *kind,
                            int64_t n_rows, int64_t n_cols, uint64_t file_bytes) {
    if (m->n_notes == *cap) {
        int64_t new_cap = *cap ? *cap * 2 : 64;
        struct trit_tensor_note *n = trit_alloc((size_t)new_cap * sizeof *n);
        if (!n) return trit_error(TRIT_ERR_OUT_OF_MEMORY, "out of memory listing tensors");
        if (m->notes) memcpy(n, m->notes, (size_t)m->n_notes * sizeof *n);
        trit_free(m->notes);
        m->notes = n;
        *cap = new_cap;
    }
    struct trit_tensor_note *t = &m->notes[m->n_notes++];
    snprintf(t->name, sizeof t->name, "%s", name);
    snprintf(t->kind, sizeof t->kind, "%s", kind);
    t->n_rows = n_rows;
    t->n_cols = n_cols;
    t->file_bytes = file_bytes;
    return TRIT_OK;
}

enum trit_status model_ternary_from_floats(const float *w, int64_t n_rows, int64_t n_cols,
                                           struct trit_ternary *out, bool *was_exact) {
    /* A float tensor whose nonzero magnitudes are all equal is ternary times that magnitude:
     * keep its scale exactly. Absmean would shrink it by the fraction of nonzeros. */
    enum trit_status st = trit_ternary_from_scaled(w, n_rows, n_cols, out);
    if (st == TRIT_OK) {
        *was_exact = true;
        return TRIT_OK;
    }
    if (st != TRIT_ERR_UNSUPPORTED) return st;
    trit_error_clear();
    *was_exact = false;
    return trit_ternarize(w, n_rows, n_cols, out);
}

enum trit_status model_copy_f32(const void *src, enum trit_dtype dtype, int64_t n, float **out) {
    float *dst = trit_alloc((size_t)n * sizeof(float));
    if (!dst) return trit_error(TRIT_ERR_OUT_OF_MEMORY, "out of memory (%lld floats)", (long long)n);
    struct trit_dense d = {.dtype = dtype, .n_rows = 1, .n_cols = n, .data = src};
    trit_dense_row_f32(&d, 0, dst);
    *out = dst;
    return TRIT_OK;
}

void model_progress(const struct trit_load_params *params, int64_t done, int64_t total) {
    if (params && params->progress && total > 0) params->progress((float)done / (float)total, params->progress_user);
}

bool model_layer_of(const char *name, const char *prefix, int64_t *layer, int *n_digits, const char **rest) {
    const size_t n = strlen(prefix);
    if (strncmp(name, prefix, n) != 0) return false;
    const char *p = name + n;
    int digits = 0;
    int64_t v = 0;
    while (p[digits] >= '0' && p[digits] <= '9') {
        const int d = p[digits] - '0';
        v = v > (INT64_MAX - d) / 10 ? INT64_MAX : v * 10 + d;
        digits++;
    }
    /* the loaders look up "blk.3.", never "blk.03." */
    if (digits == 0 || p[digits] != '.' || (digits > 1 && p[0] == '0')) return false;
    *layer = v;
    *n_digits = digits;
    *rest = p + digits + 1;
    return true;
}

enum trit_status model_unused_add(struct trit_model *m, int64_t *cap, struct model_unused *u, const char *name,
                                  int64_t n_rows, int64_t n_cols, uint64_t file_bytes) {
    if (u->n < MODEL_UNUSED_SHOWN) snprintf(u->shown[u->n], sizeof u->shown[0], "%s", name);
    u->n++;
    return model_note(m, cap, name, "unused", n_rows, n_cols, file_bytes);
}

void model_unused_report(const struct trit_model *m, const struct model_unused *u) {
    if (u->n == 0) return;
    char list[MODEL_UNUSED_SHOWN * (sizeof u->shown[0] + 4)] = "";
    size_t at = 0;
    for (int64_t i = 0; i < u->n && i < MODEL_UNUSED_SHOWN; i++)
        at += (size_t)snprintf(list + at, sizeof list - at, "%s'%s'", i ? ", " : "", u->shown[i]);
    if (u->n > MODEL_UNUSED_SHOWN)
        TRIT_LOG_W("%s: %lld tensors that trit does not use, ignored: %s and %lld more", m->path, (long long)u->n,
                   list, (long long)(u->n - MODEL_UNUSED_SHOWN));
    else
        TRIT_LOG_W("%s: %lld tensor%s that trit does not use, ignored: %s", m->path, (long long)u->n,
                   u->n == 1 ? "" : "s", list);
}
