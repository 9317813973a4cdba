/*
 * tiny_model.c: see tiny_model.h. The safetensors and tokenizer.json writers here are written
 * from the formats' descriptions (host/io/safetensors.h, Hugging Face tokenizers), not from trit's
 * readers; the GGUF files go through trit's writer (host/io/gguf_writer.c, tested on its own in
 * test_gguf.c) with every ternary encoding made by the codecs of host/quant.
 */
#include "tiny_model.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "io/gguf.h"

/* ---- random numbers (xorshift64*) ------------------------------------------------------------ */

static uint64_t next(uint64_t *s) {
    *s ^= *s >> 12;
    *s ^= *s << 25;
    *s ^= *s >> 27;
    return *s * 0x2545F4914F6CDD1DULL;
}
static float uniform(uint64_t *s, float lo, float hi) {
    return lo + (hi - lo) * (float)(next(s) >> 40) / (float)(1u << 24);
}

float tiny_norm_value(uint64_t seed, int64_t j) {
    /* k / 64 for k in [32, 96): exact in fp16 and bf16 */
    uint64_t s = seed * 0x9E3779B97F4A7C15ULL + (uint64_t)j * 0xBF58476D1CE4E5B9ULL + 1;
    return (float)(32 + (int)(next(&s) % 64)) / 64.0f;
}

/* ---- the model ------------------------------------------------------------------------------- */

static void shape_of(const struct tiny_model *m, int k, int64_t *rows, int64_t *cols) {
    const int64_t qd = m->n_heads * m->head_dim, kvd = m->n_kv_heads * m->head_dim;
    const int64_t r[TINY_N_TERNARY] = {qd, kvd, kvd, m->dim, m->ffn_dim, m->ffn_dim, m->dim};
    const int64_t c[TINY_N_TERNARY] = {m->dim, m->dim, m->dim, qd, m->dim, m->dim, m->ffn_dim};
    *rows = r[k];
    *cols = c[k];
}

bool tiny_model_init(struct tiny_model *m, enum tiny_kind kind, int64_t dim, int64_t ffn_dim, int64_t n_layers,
                     uint64_t seed) {
    memset(m, 0, sizeof *m);
    m->kind = kind;
    m->n_vocab = 264;
    m->dim = dim;
    m->ffn_dim = ffn_dim;
    m->n_layers = n_layers;
    m->n_heads = 4;
    m->n_kv_heads = 2;
    m->head_dim = dim / 4;
    m->seed = seed;
    m->w = calloc((size_t)(n_layers * TINY_N_TERNARY), sizeof *m->w);
    if (!m->w) return false;
    uint64_t s = seed | 1;
    for (int64_t i = 0; i < n_layers * TINY_N_TERNARY; i++) {
        int64_t rows, cols;
        shape_of(m, (int)(i % TINY_N_TERNARY), &rows, &cols);
        struct trit_ternary *w = &m->w[i];
        if (kind == TINY_HF_QWEN3_GROUPED) {
            if (trit_ternary_init_grouped(w, rows, cols, 64) != TRIT_OK) return false;
            for (int64_t r = 0; r < rows; r++)
                for (int64_t c = 0; c < cols; c++) {
                    const uint64_t u = next(&s) % 97;
                    trit_ternary_set(w, r, c, u == 0 ? 2 : (int)(u % 3) - 1);
                }
            /* scales exact in fp16, so that the F16 folder holds t * d exactly */
            for (int64_t g = 0; g < rows * trit_ternary_n_groups(w); g++)
                w->group_scales[g] = trit_fp16_to_fp32(trit_fp32_to_fp16(uniform(&s, 0.02f, 0.2f)));
            continue;
        }
        if (trit_ternary_init(w, rows, cols) != TRIT_OK) return false;
        for (int64_t r = 0; r < rows; r++)
            for (int64_t c = 0; c < cols; c++) trit_ternary_set(w, r, c, (int)(next(&s) % 3) - 1);
        if (kind == TINY_HF_BITLINEAR_LLAMA) {
            w->scale_kind = TRIT_SCALE_DIV;
            w->scale = uniform(&s, 10.0f, 60.0f); /* 1 / mean|W| of a trained BitLinear */
        } else {
            w->scale_kind = TRIT_SCALE_MUL;
            w->scale = uniform(&s, 0.01f, 2.0f);
        }
    }
    return true;
}

void tiny_model_free(struct tiny_model *m) {
    if (m->w)
        for (int64_t i = 0; i < m->n_layers * TINY_N_TERNARY; i++) trit_ternary_free(&m->w[i]);
    free(m->w);
    memset(m, 0, sizeof *m);
}

/* ---- files ----------------------------------------------------------------------------------- */

static bool write_file(const char *dir, const char *name, const void *data, size_t len) {
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *fp = fopen(path, "wb");
    if (!fp) return false;
    bool ok = fwrite(data, 1, len, fp) == len;
    return fclose(fp) == 0 && ok;
}

static bool write_json(const char *dir, const char *name, cJSON *doc) {
    char *text = cJSON_Print(doc);
    bool ok = text && write_file(dir, name, text, strlen(text));
    free(text);
    cJSON_Delete(doc);
    return ok;
}

/* ---- safetensors writer ---------------------------------------------------------------------- */

#define MAX_ENTRIES 256

struct st_entry {
    char name[128];
    const char *dtype; /* "U8", "F16", "BF16", "F32" */
    int n_dims;
    int64_t shape[2];
    void *data; /* owned */
    size_t n_bytes;
};

struct st_writer {
    struct st_entry e[MAX_ENTRIES];
    int n;
    bool failed;
};

/* Adds a tensor and returns its (zeroed) buffer to fill, or NULL. */
static void *st_add(struct st_writer *w, const char *name, const char *dtype, int n_dims, int64_t d0, int64_t d1,
                    size_t elem) {
    if (w->n == MAX_ENTRIES) {
        w->failed = true;
        return NULL;
    }
    struct st_entry *e = &w->e[w->n];
    snprintf(e->name, sizeof e->name, "%s", name);
    e->dtype = dtype;
    e->n_dims = n_dims;
    e->shape[0] = d0;
    e->shape[1] = d1;
    e->n_bytes = (size_t)(d0 * (n_dims > 1 ? d1 : 1)) * elem;
    e->data = calloc(1, e->n_bytes ? e->n_bytes : 1);
    if (!e->data) {
        w->failed = true;
        return NULL;
    }
    w->n++;
    return e->data;
}

static bool st_write(struct st_writer *w, const char *dir) {
    bool ok = !w->failed;
    size_t cap = 256 + (size_t)w->n * 200, len = 0, off = 0;
    char *hdr = malloc(cap);
    ok = ok && hdr;
    if (ok) {
        len += (size_t)snprintf(hdr + len, cap - len, "{\"__metadata__\":{\"format\":\"pt\"}");
        for (int i = 0; i < w->n; i++) {
            const struct st_entry *e = &w->e[i];
            len += (size_t)snprintf(hdr + len, cap - len, ",\"%s\":{\"dtype\":\"%s\",\"shape\":[%lld", e->name, e->dtype,
                                    (long long)e->shape[0]);
            if (e->n_dims > 1) len += (size_t)snprintf(hdr + len, cap - len, ",%lld", (long long)e->shape[1]);
            len += (size_t)snprintf(hdr + len, cap - len, "],\"data_offsets\":[%zu,%zu]}", off, off + e->n_bytes);
            off += e->n_bytes;
        }
        len += (size_t)snprintf(hdr + len, cap - len, "}");
        while (len % 8) hdr[len++] = ' '; /* the header is padded with spaces to 8 bytes */
        ok = len < cap;
    }
    char path[1024];
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    FILE *fp = ok ? fopen(path, "wb") : NULL;
    if (fp) {
        uint64_t n = len;
        ok = fwrite(&n, 8, 1, fp) == 1 && fwrite(hdr, 1, len, fp) == len;
        for (int i = 0; ok && i < w->n; i++) ok = fwrite(w->e[i].data, 1, w->e[i].n_bytes, fp) == w->e[i].n_bytes;
        ok = fclose(fp) == 0 && ok;
    } else {
        ok = false;
    }
    free(hdr);
    for (int i = 0; i < w->n; i++) free(w->e[i].data);
    w->n = 0;
    return ok;
}

/* ---- HF folder --------------------------------------------------------------------------------- */

static void fill_vector(void *buf, const char *dtype, int64_t n, uint64_t seed) {
    for (int64_t j = 0; j < n; j++) {
        float v = tiny_norm_value(seed, j);
        if (!strcmp(dtype, "F32")) ((float *)buf)[j] = v;
        else if (!strcmp(dtype, "F16")) ((uint16_t *)buf)[j] = trit_fp32_to_fp16(v);
        else ((uint16_t *)buf)[j] = trit_fp32_to_bf16(v);
    }
}

static void add_vector(struct st_writer *w, const char *name, const char *dtype, int64_t n, uint64_t seed) {
    void *buf = st_add(w, name, dtype, 1, n, 1, !strcmp(dtype, "F32") ? 4 : 2);
    if (buf) fill_vector(buf, dtype, n, seed);
}

static void add_matrix(struct st_writer *w, const char *name, const char *dtype, int64_t rows, int64_t cols, uint64_t *s) {
    uint16_t *buf = st_add(w, name, dtype, 2, rows, cols, 2);
    for (int64_t j = 0; buf && j < rows * cols; j++) {
        float v = uniform(s, -1.0f, 1.0f);
        buf[j] = !strcmp(dtype, "F16") ? trit_fp32_to_fp16(v) : trit_fp32_to_bf16(v);
    }
}

static const char *const HF_NAMES[TINY_N_TERNARY] = {"self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj",
                                                     "self_attn.o_proj", "mlp.gate_proj", "mlp.up_proj", "mlp.down_proj"};

static void add_weight(struct st_writer *w, const struct tiny_model *m, int64_t layer, int k, uint64_t *s) {
    const struct trit_ternary *t = &m->w[layer * TINY_N_TERNARY + k];
    char name[128];
    snprintf(name, sizeof name, "model.layers.%lld.%s.weight", (long long)layer, HF_NAMES[k]);
    if (m->kind == TINY_HF_QWEN3_GROUPED) { /* t * d, exact in fp16 */
        uint16_t *buf = st_add(w, name, "F16", 2, t->n_rows, t->n_cols, 2);
        const int64_t n_groups = trit_ternary_n_groups(t);
        for (int64_t r = 0; buf && r < t->n_rows; r++)
            for (int64_t c = 0; c < t->n_cols; c++)
                buf[r * t->n_cols + c] = trit_fp32_to_fp16((float)trit_ternary_get(t, r, c) *
                                                           t->group_scales[r * n_groups + c / t->group]);
        return;
    }
    if (m->kind == TINY_HF_FLOAT_1BITLLM) { /* latent weights: not ternary, ternarized at load */
        uint16_t *buf = st_add(w, name, "F16", 2, t->n_rows, t->n_cols, 2);
        for (int64_t j = 0; buf && j < t->n_rows * t->n_cols; j++) buf[j] = trit_fp32_to_fp16(uniform(s, -0.1f, 0.1f));
        return;
    }
    uint8_t *packed = st_add(w, name, "U8", 2, (t->n_rows + 3) / 4, t->n_cols, 1);
    if (packed && trit_hf_encode(t, packed) != TRIT_OK) w->failed = true;
    snprintf(name, sizeof name, "model.layers.%lld.%s.weight_scale", (long long)layer, HF_NAMES[k]);
    if (m->scale_f32 || m->kind == TINY_HF_BITLINEAR_LLAMA) {
        float *v = st_add(w, name, "F32", 1, 1, 1, 4);
        if (v) *v = t->scale;
    } else {
        uint16_t *v = st_add(w, name, "BF16", 1, 1, 1, 2);
        if (v) *v = trit_fp32_to_bf16(t->scale);
    }
}

/* config.json's architecture, model type and shape fields. */
static cJSON *config_shape(const struct tiny_model *m, const char *arch, const char *model_type) {
    cJSON *c = cJSON_CreateObject();
    cJSON_AddItemToObject(c, "architectures", cJSON_CreateStringArray(&arch, 1));
    cJSON_AddStringToObject(c, "model_type", model_type);
    cJSON_AddNumberToObject(c, "vocab_size", (double)m->n_vocab);
    cJSON_AddNumberToObject(c, "hidden_size", (double)m->dim);
    cJSON_AddNumberToObject(c, "intermediate_size", (double)m->ffn_dim);
    cJSON_AddNumberToObject(c, "num_hidden_layers", (double)m->n_layers);
    cJSON_AddNumberToObject(c, "num_attention_heads", (double)m->n_heads);
    cJSON_AddNumberToObject(c, "num_key_value_heads", (double)m->n_kv_heads);
    cJSON_AddNumberToObject(c, "head_dim", (double)m->head_dim);
    return c;
}

static cJSON *config_json_qwen3(const struct tiny_model *m) {
    cJSON *c = config_shape(m, "Qwen3ForCausalLM", "qwen3");
    cJSON_AddStringToObject(c, "hidden_act", "silu");
    cJSON_AddNumberToObject(c, "max_position_embeddings", 256);
    cJSON_AddNumberToObject(c, "rms_norm_eps", 1e-6);
    cJSON_AddNumberToObject(c, "rope_theta", 1000000.0);
    cJSON_AddBoolToObject(c, "tie_word_embeddings", true);
    cJSON_AddBoolToObject(c, "attention_bias", false);
    return c; /* no quantization_config: the loader finds the group size from the weights */
}

static cJSON *config_json(const struct tiny_model *m) {
    if (m->kind == TINY_HF_QWEN3_GROUPED) return config_json_qwen3(m);
    const bool bitnet = m->kind == TINY_HF_AUTOBITLINEAR;
    const char *arch = bitnet ? "BitNetForCausalLM" : m->kind == TINY_HF_FLOAT_1BITLLM ? "BitnetForCausalLM" : "LlamaForCausalLM";
    cJSON *c = config_shape(m, arch, bitnet ? "bitnet" : "llama");
    cJSON_AddStringToObject(c, "hidden_act", bitnet ? "relu2" : "silu");
    cJSON_AddNumberToObject(c, "max_position_embeddings", 256);
    cJSON_AddNumberToObject(c, "rms_norm_eps", m->kind == TINY_HF_FLOAT_1BITLLM ? 1e-6 : 1e-5);
    cJSON_AddNumberToObject(c, "rope_theta", m->kind == TINY_HF_FLOAT_1BITLLM ? 10000.0 : 500000.0);
    cJSON_AddBoolToObject(c, "tie_word_embeddings", bitnet);
    cJSON_AddBoolToObject(c, "attention_bias", false);
    if (m->kind != TINY_HF_FLOAT_1BITLLM) {
        cJSON *q = cJSON_AddObjectToObject(c, "quantization_config");
        cJSON_AddStringToObject(q, "quant_method", "bitnet");
        cJSON_AddStringToObject(q, "linear_class", bitnet ? "autobitlinear" : "bitlinear");
        cJSON_AddStringToObject(q, "quantization_mode", "offline");
    }
    return c;
}

bool tiny_write_hf(const struct tiny_model *m, const char *dir, bool tokenizer) {
    if (mkdir(dir, 0755) != 0 && errno != EEXIST) return false;
    if (!write_json(dir, "config.json", config_json(m))) return false;
    if (tokenizer && !tiny_write_tokenizer(dir)) return false;
    struct st_writer *w = calloc(1, sizeof *w);
    if (!w) return false;
    uint64_t s = m->seed * 31 + 7;
    const bool qwen3 = m->kind == TINY_HF_QWEN3_GROUPED, tied = m->kind == TINY_HF_AUTOBITLINEAR || qwen3;
    const char *vec = m->kind == TINY_HF_AUTOBITLINEAR ? "BF16" : m->kind == TINY_HF_FLOAT_1BITLLM || qwen3 ? "F16" : "F32";
    const char *embd = m->kind == TINY_HF_AUTOBITLINEAR ? "BF16" : "F16";
    const int64_t qd = m->n_heads * m->head_dim;
    add_matrix(w, "model.embed_tokens.weight", embd, m->n_vocab, m->dim, &s);
    if (!tied) add_matrix(w, "lm_head.weight", embd, m->n_vocab, m->dim, &s);
    add_vector(w, "model.norm.weight", vec, m->dim, m->seed + 1);
    const char *attn_sub = m->kind == TINY_HF_FLOAT_1BITLLM ? "self_attn.inner_attn_ln" : "self_attn.attn_sub_norm";
    const char *ffn_sub = m->kind == TINY_HF_FLOAT_1BITLLM ? "mlp.ffn_layernorm" : "mlp.ffn_sub_norm";
    char name[128];
    for (int64_t i = 0; i < m->n_layers; i++) {
        uint64_t vs = m->seed + 100 * (uint64_t)(i + 1);
        snprintf(name, sizeof name, "model.layers.%lld.input_layernorm.weight", (long long)i);
        add_vector(w, name, vec, m->dim, vs + 1);
        snprintf(name, sizeof name, "model.layers.%lld.post_attention_layernorm.weight", (long long)i);
        add_vector(w, name, vec, m->dim, vs + 2);
        if (qwen3) {
            snprintf(name, sizeof name, "model.layers.%lld.self_attn.q_norm.weight", (long long)i);
            add_vector(w, name, vec, m->head_dim, vs + 5);
            snprintf(name, sizeof name, "model.layers.%lld.self_attn.k_norm.weight", (long long)i);
            add_vector(w, name, vec, m->head_dim, vs + 6);
        } else if (m->kind != TINY_HF_BITLINEAR_LLAMA) {
            snprintf(name, sizeof name, "model.layers.%lld.%s.weight", (long long)i, attn_sub);
            add_vector(w, name, vec, qd, vs + 3);
            snprintf(name, sizeof name, "model.layers.%lld.%s.weight", (long long)i, ffn_sub);
            add_vector(w, name, vec, m->ffn_dim, vs + 4);
        }
        for (int k = 0; k < TINY_N_TERNARY; k++) add_weight(w, m, i, k, &s);
    }
    bool ok = st_write(w, dir);
    free(w);
    return ok;
}

/* ---- tokenizer.json ---------------------------------------------------------------------------- */

/* GPT-2 bytes_to_unicode: printable Latin-1 bytes stand for themselves, the rest for U+0100 + n in
 * byte order. Writes the UTF-8 of byte b's character. */
static void byte_char(unsigned b, char out[3]) {
    unsigned cp;
    if ((b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF)) {
        cp = b;
    } else {
        unsigned n = 0;
        for (unsigned x = 0; x < b; x++)
            if (!((x >= '!' && x <= '~') || (x >= 0xA1 && x <= 0xAC) || (x >= 0xAE && x <= 0xFF))) n++;
        cp = 256 + n;
    }
    if (cp < 0x80) {
        out[0] = (char)cp;
        out[1] = '\0';
    } else {
        out[0] = (char)(0xC0 | (cp >> 6));
        out[1] = (char)(0x80 | (cp & 0x3F));
        out[2] = '\0';
    }
}

bool tiny_write_tokenizer(const char *dir) {
    static const char *const merges[] = {"\xC4\xA0 t", "h e", "\xC4\xA0t he", "i n", "\xC4\xA0 a"};
    static const char *const merged[] = {"\xC4\xA0t", "he", "\xC4\xA0the", "in", "\xC4\xA0" "a"};
    static const char *const specials[] = {"<|begin_of_text|>", "<|end_of_text|>", "<|eot_id|>"};
    static const char LLAMA3[] =
        "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
    cJSON *root = cJSON_CreateObject();
    cJSON *added = cJSON_AddArrayToObject(root, "added_tokens");
    for (int i = 0; i < 3; i++) {
        cJSON *t = cJSON_CreateObject();
        cJSON_AddNumberToObject(t, "id", 261 + i);
        cJSON_AddStringToObject(t, "content", specials[i]);
        cJSON_AddBoolToObject(t, "single_word", false);
        cJSON_AddBoolToObject(t, "lstrip", false);
        cJSON_AddBoolToObject(t, "rstrip", false);
        cJSON_AddBoolToObject(t, "normalized", false);
        cJSON_AddBoolToObject(t, "special", true);
        cJSON_AddItemToArray(added, t);
    }
    cJSON_AddNullToObject(root, "normalizer");
    cJSON *pre = cJSON_AddObjectToObject(root, "pre_tokenizer");
    cJSON_AddStringToObject(pre, "type", "Sequence");
    cJSON *list = cJSON_AddArrayToObject(pre, "pretokenizers");
    cJSON *split = cJSON_CreateObject();
    cJSON_AddStringToObject(split, "type", "Split");
    cJSON_AddStringToObject(cJSON_AddObjectToObject(split, "pattern"), "Regex", LLAMA3);
    cJSON_AddStringToObject(split, "behavior", "Isolated");
    cJSON_AddBoolToObject(split, "invert", false);
    cJSON_AddItemToArray(list, split);
    cJSON *bl = cJSON_CreateObject();
    cJSON_AddStringToObject(bl, "type", "ByteLevel");
    cJSON_AddBoolToObject(bl, "add_prefix_space", false);
    cJSON_AddBoolToObject(bl, "trim_offsets", true);
    cJSON_AddBoolToObject(bl, "use_regex", false);
    cJSON_AddItemToArray(list, bl);
    cJSON *post = cJSON_AddObjectToObject(root, "post_processor");
    cJSON_AddStringToObject(post, "type", "TemplateProcessing");
    cJSON *single = cJSON_AddArrayToObject(post, "single");
    cJSON *st = cJSON_CreateObject();
    cJSON_AddStringToObject(cJSON_AddObjectToObject(st, "SpecialToken"), "id", specials[0]);
    cJSON_AddItemToArray(single, st);
    cJSON *seq = cJSON_CreateObject();
    cJSON_AddStringToObject(cJSON_AddObjectToObject(seq, "Sequence"), "id", "A");
    cJSON_AddItemToArray(single, seq);
    cJSON *model = cJSON_AddObjectToObject(root, "model");
    cJSON_AddStringToObject(model, "type", "BPE");
    cJSON_AddBoolToObject(model, "ignore_merges", true);
    cJSON *vocab = cJSON_AddObjectToObject(model, "vocab");
    for (unsigned b = 0; b < 256; b++) {
        char c[3];
        byte_char(b, c);
        cJSON_AddNumberToObject(vocab, c, b);
    }
    for (int i = 0; i < 5; i++) cJSON_AddNumberToObject(vocab, merged[i], 256 + i);
    cJSON_AddItemToObject(model, "merges", cJSON_CreateStringArray(merges, 5));
    if (!write_json(dir, "tokenizer.json", root)) return false;

    cJSON *cfg = cJSON_CreateObject();
    cJSON_AddStringToObject(cfg, "bos_token", specials[0]);
    cJSON_AddStringToObject(cfg, "eos_token", specials[1]);
    cJSON_AddBoolToObject(cfg, "add_bos_token", true);
    cJSON_AddBoolToObject(cfg, "add_eos_token", false);
    cJSON_AddStringToObject(cfg, "chat_template",
                            "{{ bos_token }}{% for m in messages %}{{ m['role'] }}: {{ m['content'] }}<|eot_id|>{% endfor %}");
    return write_json(dir, "tokenizer_config.json", cfg);
}

/* ---- GGUF -------------------------------------------------------------------------------------- */

static const char *const GGUF_NAMES[TINY_N_TERNARY] = {"attn_q", "attn_k", "attn_v", "attn_output",
                                                       "ffn_gate", "ffn_up", "ffn_down"};

/* Buffers kept until the writer has written the file. */
struct bufs {
    void *p[MAX_ENTRIES];
    int n;
};
static void *buf_new(struct bufs *b, size_t n) {
    if (b->n == MAX_ENTRIES) return NULL;
    void *p = calloc(1, n ? n : 1);
    if (p) b->p[b->n++] = p;
    return p;
}

static bool gguf_vector(struct gguf_writer *w, struct bufs *b, const char *name, int64_t n, uint64_t seed) {
    float *v = buf_new(b, (size_t)n * sizeof *v);
    if (!v) return false;
    fill_vector(v, "F32", n, seed);
    const int64_t ne[1] = {n};
    return gguf_writer_add_tensor(w, name, GGML_TYPE_F32, 1, ne, v, (uint64_t)n * 4) == TRIT_OK;
}

static bool gguf_weight(struct gguf_writer *w, struct bufs *b, const char *name, const struct trit_ternary *t,
                        enum tiny_gguf_weights enc) {
    const int64_t ne[2] = {t->n_cols, t->n_rows}, n = t->n_rows * t->n_cols;
    int64_t n_bytes;
    uint32_t type;
    switch (enc) {
    case TINY_GGUF_TQ2_0: n_bytes = trit_tq2_0_bytes(t->n_rows, t->n_cols); type = GGML_TYPE_TQ2_0; break;
    case TINY_GGUF_TQ1_0: n_bytes = trit_tq1_0_bytes(t->n_rows, t->n_cols); type = GGML_TYPE_TQ1_0; break;
    case TINY_GGUF_I2_S: n_bytes = trit_i2s_bytes(t->n_rows, t->n_cols); type = GGML_TYPE_I2_S_BITNET; break;
    case TINY_GGUF_I2_S_ARM:
        n_bytes = trit_i2s_bytes_layout(t->n_rows, t->n_cols, TRIT_I2S_ARM);
        type = GGML_TYPE_I2_S_BITNET;
        break;
    case TINY_GGUF_F16: n_bytes = n * 2; type = GGML_TYPE_F16; break;
    default: n_bytes = n * 4; type = GGML_TYPE_F32; break;
    }
    uint8_t *buf = n_bytes > 0 ? buf_new(b, (size_t)n_bytes) : NULL;
    if (!buf) return false;
    enum trit_status st = TRIT_OK;
    if (enc == TINY_GGUF_TQ2_0) st = trit_tq2_0_encode(t, false, buf);
    else if (enc == TINY_GGUF_TQ1_0) st = trit_tq1_0_encode(t, false, buf);
    else if (enc == TINY_GGUF_I2_S) st = trit_i2s_encode(t, buf);
    else if (enc == TINY_GGUF_I2_S_ARM) st = trit_i2s_encode_layout(t, TRIT_I2S_ARM, buf);
    else
        for (int64_t r = 0; r < t->n_rows; r++)
            for (int64_t c = 0; c < t->n_cols; c++) {
                float v = (float)trit_ternary_get(t, r, c) * t->scale;
                if (enc == TINY_GGUF_F16) ((uint16_t *)buf)[r * t->n_cols + c] = trit_fp32_to_fp16(v);
                else ((float *)buf)[r * t->n_cols + c] = v;
            }
    return st == TRIT_OK && gguf_writer_add_tensor(w, name, type, 2, ne, buf, (uint64_t)n_bytes) == TRIT_OK;
}

static bool set_u32(struct gguf_writer *w, const char *arch, const char *suffix, int64_t v) {
    char key[128];
    snprintf(key, sizeof key, "%s.%s", arch, suffix);
    return gguf_writer_set_u32(w, key, (uint32_t)v) == TRIT_OK;
}

bool tiny_write_gguf(const struct tiny_model *m, const char *path, const char *arch, enum tiny_gguf_weights enc) {
    struct gguf_writer *w;
    if (gguf_writer_init(&w) != TRIT_OK) return false;
    struct bufs *b = calloc(1, sizeof *b);
    bool ok = b != NULL;
    char key[128], name[96];
    ok = ok && gguf_writer_set_str(w, "general.architecture", arch) == TRIT_OK;
    ok = ok && gguf_writer_set_u32(w, "general.file_type", enc == TINY_GGUF_I2_S || enc == TINY_GGUF_I2_S_ARM ? 40u : enc == TINY_GGUF_TQ1_0 ? 36u : 37u) == TRIT_OK;
    ok = ok && set_u32(w, arch, "block_count", m->n_layers) && set_u32(w, arch, "context_length", 256) &&
         set_u32(w, arch, "embedding_length", m->dim) && set_u32(w, arch, "feed_forward_length", m->ffn_dim) &&
         set_u32(w, arch, "attention.head_count", m->n_heads) && set_u32(w, arch, "attention.head_count_kv", m->n_kv_heads);
    snprintf(key, sizeof key, "%s.attention.layer_norm_rms_epsilon", arch);
    ok = ok && gguf_writer_set_f32(w, key, 1e-5f) == TRIT_OK;
    snprintf(key, sizeof key, "%s.rope.freq_base", arch);
    ok = ok && gguf_writer_set_f32(w, key, 500000.0f) == TRIT_OK;
    if (!strcmp(arch, "bitnet")) ok = ok && gguf_writer_set_str(w, "bitnet.hidden_activation", "relu2") == TRIT_OK;

    uint16_t *embd = ok ? buf_new(b, (size_t)(m->n_vocab * m->dim) * 2) : NULL;
    uint64_t s = m->seed * 31 + 7;
    for (int64_t j = 0; embd && j < m->n_vocab * m->dim; j++) embd[j] = trit_fp32_to_bf16(uniform(&s, -1.0f, 1.0f));
    const int64_t ne[2] = {m->dim, m->n_vocab};
    ok = ok && embd && gguf_writer_add_tensor(w, "token_embd.weight", GGML_TYPE_BF16, 2, ne, embd, (uint64_t)(m->n_vocab * m->dim) * 2) == TRIT_OK;
    ok = ok && gguf_vector(w, b, "output_norm.weight", m->dim, m->seed + 1);
    for (int64_t i = 0; ok && i < m->n_layers; i++) {
        uint64_t vs = m->seed + 100 * (uint64_t)(i + 1);
        snprintf(name, sizeof name, "blk.%lld.attn_norm.weight", (long long)i);
        ok = ok && gguf_vector(w, b, name, m->dim, vs + 1);
        snprintf(name, sizeof name, "blk.%lld.ffn_norm.weight", (long long)i);
        ok = ok && gguf_vector(w, b, name, m->dim, vs + 2);
        snprintf(name, sizeof name, "blk.%lld.attn_sub_norm.weight", (long long)i);
        ok = ok && gguf_vector(w, b, name, m->n_heads * m->head_dim, vs + 3);
        snprintf(name, sizeof name, "blk.%lld.ffn_sub_norm.weight", (long long)i);
        ok = ok && gguf_vector(w, b, name, m->ffn_dim, vs + 4);
        for (int k = 0; ok && k < TINY_N_TERNARY; k++) {
            snprintf(name, sizeof name, "blk.%lld.%s.weight", (long long)i, GGUF_NAMES[k]);
            ok = gguf_weight(w, b, name, &m->w[i * TINY_N_TERNARY + k], enc);
        }
    }
    ok = ok && gguf_writer_write(w, path) == TRIT_OK;
    gguf_writer_free(w);
    if (b)
        for (int i = 0; i < b->n; i++) free(b->p[i]);
    free(b);
    return ok;
}
