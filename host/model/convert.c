/*
 * convert.c: a loaded model (any source trit reads) written as a GGUF in trit's layout, then
 * loaded back and compared. The layout is docs/formats.md "The trit GGUF layout"; convert.h
 * summarizes it.
 *
 *   trit convert tools/train/out/hf -o models/trit-kjv-4m.gguf
 *   ctest --test-dir build -R 'test_convert|tool_' --output-on-failure
 *
 * Sections: small helpers; metadata; the tokenizer (copied from a GGUF, or built from
 * tokenizer.json or a SentencePiece tokenizer.model); tensors; comparisons; trit_convert.
 */
#include "model/convert.h"

#include <math.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "io/gguf.h"
#include "io/hf.h"
#include "io/json.h"
#include "tokenizer/vocab.h"

#define LAYOUT_VERSION 1u
#define GGUF_QUANT_VERSION 2u /* general.quantization_version, GGML_QNT_VERSION */
#define FTYPE_MOSTLY_TQ1_0 36u
#define FTYPE_MOSTLY_TQ2_0 37u
#define FTYPE_MOSTLY_Q2_0 41u /* llama.h LLAMA_FTYPE_MOSTLY_Q2_0; what the Ternary-Bonsai files carry */
#define TOKENIZER_JSON_MAX_BYTES ((size_t)1 << 30) /* as the tokenizer's own reader */

struct trit_convert_params trit_convert_default_params(void) {
    struct trit_convert_params p = {.weights = TRIT_CONVERT_TQ2_0, .check = true};
    return p;
}

const char *trit_convert_arch_name(enum trit_family family) {
    switch (family) {
    case TRIT_FAMILY_BITNET_B158: return "bitnet-b1.58";
    case TRIT_FAMILY_BITNET: return "bitnet";
    case TRIT_FAMILY_LLAMA: return "llama";
    case TRIT_FAMILY_QWEN3: return "qwen3";
    case TRIT_FAMILY_GEMMA3: return "gemma3";
    }
    return "unknown";
}

int64_t trit_convert_permute_row(int64_t r, int64_t head_dim) {
    const int64_t half = head_dim / 2;
    const int64_t h = r / head_dim, rem = r % head_dim;
    const int64_t a = rem / half, j = rem % half;
    return h * head_dim + 2 * j + a;
}

/* ---- small helpers ------------------------------------------------------------------------ */

/* Buffers that must live until the writer has written the file. */
struct keep {
    void **ptrs;
    int64_t n, cap;
};

static void *keep_alloc(struct keep *k, size_t n_bytes) {
    if (k->n == k->cap) {
        int64_t cap = k->cap ? k->cap * 2 : 64;
        void **p = trit_alloc((size_t)cap * sizeof *p);
        if (!p) return NULL;
        if (k->ptrs) memcpy(p, k->ptrs, (size_t)k->n * sizeof *p);
        trit_free(k->ptrs);
        k->ptrs = p;
        k->cap = cap;
    }
    void *b = trit_alloc(n_bytes);
    if (b) k->ptrs[k->n++] = b;
    return b;
}

static void keep_free(struct keep *k) {
    for (int64_t i = 0; i < k->n; i++) trit_free(k->ptrs[i]);
    trit_free(k->ptrs);
    memset(k, 0, sizeof *k);
}

static bool is_dir(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

static bool is_file(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

static bool has_gguf_magic(const char *path) {
    FILE *fp = fopen(path, "rb");
    if (!fp) return false;
    char magic[4] = {0};
    size_t got = fread(magic, 1, 4, fp);
    fclose(fp);
    return got == 4 && memcmp(magic, "GGUF", 4) == 0;
}

/* Copies `w` with Q/K rows permuted for the llama architecture (see trit_convert_permute_row); a
 * row's group scales move with it. */
static enum trit_status permuted_copy(const struct trit_ternary *w, int64_t head_dim, struct trit_ternary *out) {
    if (head_dim < 2 || head_dim % 2 != 0 || w->n_rows % head_dim != 0)
        return trit_error(TRIT_ERR_FORMAT, "convert: %lld rows do not split into heads of %lld", (long long)w->n_rows,
                          (long long)head_dim);
    TRIT_TRY(w->group > 0 ? trit_ternary_init_grouped(out, w->n_rows, w->n_cols, w->group)
                          : trit_ternary_init(out, w->n_rows, w->n_cols));
    const int64_t n_groups = trit_ternary_n_groups(w);
    for (int64_t r = 0; r < w->n_rows; r++) {
        const int64_t to = trit_convert_permute_row(r, head_dim);
        memcpy(out->codes + to * w->row_bytes, w->codes + r * w->row_bytes, (size_t)w->row_bytes);
        if (n_groups)
            memcpy(out->group_scales + to * n_groups, w->group_scales + r * n_groups, (size_t)n_groups * sizeof(float));
    }
    out->scale = w->scale;
    out->scale_kind = w->scale_kind;
    return TRIT_OK;
}

/* Copies a group-scaled `w` with a scale per `group` columns, group dividing w->group (both multiples
 * of TRIT_GROUP_UNIT): each scale repeated over the groups it covers, so every weight keeps its value. */
static enum trit_status regrouped_copy(const struct trit_ternary *w, int64_t group, struct trit_ternary *out) {
    if (w->group <= 0 || group <= 0 || w->group % group != 0)
        return trit_error(TRIT_ERR_INTERNAL, "convert: groups of %lld cannot be cut into groups of %lld", (long long)w->group,
                          (long long)group);
    TRIT_TRY(trit_ternary_init_grouped(out, w->n_rows, w->n_cols, group));
    memcpy(out->codes, w->codes, (size_t)(w->n_rows * w->row_bytes));
    const int64_t ng_in = trit_ternary_n_groups(w), ng_out = trit_ternary_n_groups(out);
    for (int64_t r = 0; r < w->n_rows; r++)
        for (int64_t g = 0; g < ng_out; g++) out->group_scales[r * ng_out + g] = w->group_scales[r * ng_in + g * group / w->group];
    return TRIT_OK;
}

/* The Q2_0 block a file of this model is written with: the model's group when every group-scaled
 * weight has the same one and Q2_0 has it (64 or 128), else 64 (which divides every group); 0 when
 * no weight is group-scaled. A GGUF reader decides one block per file (model_gguf.c). */
static int64_t file_q2_group(const struct trit_model *m) {
    int64_t g = 0;
    bool mixed = false;
    for (int64_t i = 0; i < m->hp.n_layers; i++)
        for (int k = 0; k < TRIT_N_W; k++) {
            const int64_t wg = m->layers[i].w[k].group;
            if (wg <= 0) continue;
            if (g && wg != g) mixed = true;
            g = wg;
        }
    if (!g) return 0;
    return !mixed && (g == 64 || g == 128) ? g : 64;
}


/* ---- metadata ----------------------------------------------------------------------------- */

static enum trit_status set_arch_u32(struct gguf_writer *w, const char *arch, const char *suffix, int64_t v) {
    char key[128];
    snprintf(key, sizeof key, "%s.%s", arch, suffix);
    if (v < 0 || v > (int64_t)UINT32_MAX)
        return trit_error(TRIT_ERR_UNSUPPORTED, "convert: %s = %lld does not fit a u32", key, (long long)v);
    return gguf_writer_set_u32(w, key, (uint32_t)v);
}

static enum trit_status set_arch_f32(struct gguf_writer *w, const char *arch, const char *suffix, float v) {
    char key[128];
    snprintf(key, sizeof key, "%s.%s", arch, suffix);
    return gguf_writer_set_f32(w, key, v);
}

/* general.name: the source GGUF's, else the folder's or file's base name. */
static void source_name(const char *src, char *out, size_t cap) {
    out[0] = '\0';
    if (!is_dir(src)) {
        struct gguf_file f;
        memset(&f, 0, sizeof f);
        if (gguf_open(src, &f) == TRIT_OK) {
            if (gguf_get_str(&f, "general.name", out, cap) != TRIT_OK) out[0] = '\0';
            gguf_close(&f);
        }
        trit_error_clear();
        if (out[0]) return;
    }
    size_t n = strlen(src);
    while (n > 1 && src[n - 1] == '/') n--;
    size_t b = n;
    while (b > 0 && src[b - 1] != '/') b--;
    size_t len = n - b;
    if (len > 5 && memcmp(src + n - 5, ".gguf", 5) == 0) len -= 5;
    snprintf(out, cap, "%.*s", (int)len, src + b);
}

static enum trit_status write_metadata(struct gguf_writer *w, const struct trit_model *m, const char *arch,
                                       const char *name, enum trit_convert_weights weights, bool divides, bool q2_0) {
    const struct trit_hparams *hp = &m->hp;
    TRIT_TRY(gguf_writer_set_str(w, "general.architecture", arch));
    TRIT_TRY(gguf_writer_set_u32(w, "general.quantization_version", GGUF_QUANT_VERSION));
    if (name[0]) TRIT_TRY(gguf_writer_set_str(w, "general.name", name));
    TRIT_TRY(gguf_writer_set_u32(w, "general.file_type",
                                 q2_0 ? FTYPE_MOSTLY_Q2_0 : weights == TRIT_CONVERT_TQ1_0 ? FTYPE_MOSTLY_TQ1_0 : FTYPE_MOSTLY_TQ2_0));
    TRIT_TRY(set_arch_u32(w, arch, "vocab_size", hp->n_vocab));
    TRIT_TRY(set_arch_u32(w, arch, "context_length", hp->ctx_train));
    TRIT_TRY(set_arch_u32(w, arch, "embedding_length", hp->dim));
    TRIT_TRY(set_arch_u32(w, arch, "block_count", hp->n_layers));
    TRIT_TRY(set_arch_u32(w, arch, "feed_forward_length", hp->ffn_dim));
    TRIT_TRY(set_arch_u32(w, arch, "attention.head_count", hp->n_heads));
    TRIT_TRY(set_arch_u32(w, arch, "attention.head_count_kv", hp->n_kv_heads));
    TRIT_TRY(set_arch_u32(w, arch, "attention.key_length", hp->head_dim));
    TRIT_TRY(set_arch_u32(w, arch, "attention.value_length", hp->head_dim));
    TRIT_TRY(set_arch_u32(w, arch, "rope.dimension_count", hp->head_dim));
    TRIT_TRY(set_arch_f32(w, arch, "attention.layer_norm_rms_epsilon", hp->norm_eps));
    TRIT_TRY(set_arch_f32(w, arch, "rope.freq_base", hp->rope_theta));
    if (hp->family == TRIT_FAMILY_BITNET)
        TRIT_TRY(gguf_writer_set_str(w, "bitnet.hidden_activation", hp->act == TRIT_ACT_RELU2 ? "relu2" : "silu"));
    TRIT_TRY(gguf_writer_set_u32(w, "trit.layout_version", LAYOUT_VERSION));
    return gguf_writer_set_str(w, "trit.weight_scale_kind", divides ? "divide" : "multiply");
}

/* ---- tokenizer ---------------------------------------------------------------------------- */

/* Where the tokenizer comes from. */
struct tok_source {
    bool gguf;           /* copy the tokenizer.* keys of this GGUF file */
    bool spm;            /* a SentencePiece tokenizer.model (else tokenizer.json) */
    char path[4096];     /* the GGUF file, tokenizer.json or tokenizer.model */
    char dir[4096];      /* its folder (tokenizer_config.json, added_tokens.json, chat_template.jinja) */
};

static bool ends_with(const char *s, const char *suffix) {
    const size_t n = strlen(s), k = strlen(suffix);
    return n >= k && strcmp(s + n - k, suffix) == 0;
}

static enum trit_status resolve_tok_source(const char *path, struct tok_source *ts) {
    memset(ts, 0, sizeof *ts);
    if (is_dir(path)) {
        int n = snprintf(ts->path, sizeof ts->path, "%s/tokenizer.json", path);
        if (n < 0 || (size_t)n >= sizeof ts->path) return trit_error(TRIT_ERR_INVALID_ARG, "convert: path too long: '%s'", path);
        if (!is_file(ts->path)) { /* a SentencePiece folder (1bitLLM): tokenizer.model */
            snprintf(ts->path, sizeof ts->path, "%s/tokenizer.model", path);
            ts->spm = true;
        }
        if (!is_file(ts->path))
            return trit_error(TRIT_ERR_NOT_FOUND,
                              "convert: '%s' has neither tokenizer.json nor tokenizer.model (pass --tokenizer with a "
                              "file that holds the vocabulary, or --no-tokenizer)",
                              path);
        snprintf(ts->dir, sizeof ts->dir, "%s", path);
        return TRIT_OK;
    }
    if (!is_file(path)) return trit_error(TRIT_ERR_IO, "convert: cannot open tokenizer source '%s'", path);
    if (strlen(path) >= sizeof ts->path) return trit_error(TRIT_ERR_INVALID_ARG, "convert: path too long: '%s'", path);
    snprintf(ts->path, sizeof ts->path, "%s", path);
    ts->gguf = has_gguf_magic(path);
    ts->spm = !ts->gguf && ends_with(path, ".model");
    const char *slash = strrchr(path, '/');
    snprintf(ts->dir, sizeof ts->dir, "%.*s", slash ? (int)(slash - path) : 1, slash ? path : ".");
    return TRIT_OK;
}

static bool skip_non_tokenizer(const char *key, void *user) {
    (void)user;
    return strncmp(key, "tokenizer.", 10) != 0;
}

/* tokenizer.json's pre_tokenizer as a GGUF tokenizer.ggml.pre name the loader knows, with the
 * ignore_merges that name implies. Anything else cannot be expressed in GGUF keys. */
static const char LLAMA3_JSON_REGEX[] =
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";

static bool json_is(const cJSON *obj, const char *key, const char *value) {
    const cJSON *v = json_member(obj, key);
    return cJSON_IsString(v) && strcmp(v->valuestring, value) == 0;
}

static enum trit_status pre_name(const struct json_doc *doc, const char **name, bool *ignore_merges) {
    const cJSON *pre = json_member(doc->root, "pre_tokenizer");
    const char *why = "it is neither ByteLevel (GPT-2 regex) nor Sequence[Split(Llama-3 or Qwen2 regex), ByteLevel]";
    /* the name also fixes the normalizer: NFC for qwen2, none for the others (tokenizer/vocab.c) */
    const cJSON *norm = json_member(doc->root, "normalizer");
    const bool no_norm = !norm || cJSON_IsNull(norm), nfc = cJSON_IsObject(norm) && json_is(norm, "type", "NFC");
    if (cJSON_IsObject(pre) && json_is(pre, "type", "Sequence")) {
        const cJSON *list = json_member(pre, "pretokenizers");
        const cJSON *split = cJSON_GetArrayItem(list, 0), *bl = cJSON_GetArrayItem(list, 1);
        const cJSON *pattern = json_member(split, "pattern");
        if (cJSON_IsArray(list) && cJSON_GetArraySize(list) == 2 && json_is(split, "type", "Split") &&
            json_is(split, "behavior", "Isolated") && !cJSON_IsTrue(json_member(split, "invert")) &&
            json_is(bl, "type", "ByteLevel") && cJSON_IsFalse(json_member(bl, "use_regex")) &&
            !cJSON_IsTrue(json_member(bl, "add_prefix_space"))) {
            if (json_is(pattern, "Regex", LLAMA3_JSON_REGEX) && no_norm) {
                *name = "llama-bpe";
                *ignore_merges = true;
                return TRIT_OK;
            }
            if (json_is(pattern, "Regex", TOK_REGEX_QWEN2) && nfc) {
                *name = "qwen2";
                *ignore_merges = false;
                return TRIT_OK;
            }
            why = "its Split regex is neither Llama 3's (without a normalizer) nor Qwen2's (with NFC)";
        }
    } else if (!no_norm) {
        why = "it has a normalizer, which no byte-level GGUF pre-tokenizer name implies";
    } else if (cJSON_IsObject(pre) && json_is(pre, "type", "ByteLevel") && !cJSON_IsFalse(json_member(pre, "use_regex")) &&
               !cJSON_IsTrue(json_member(pre, "add_prefix_space"))) {
        *name = "gpt2";
        *ignore_merges = false;
        return TRIT_OK;
    }
    return trit_error(TRIT_ERR_UNSUPPORTED,
                      "convert: %s: the pre_tokenizer has no tokenizer.ggml.pre name trit knows (%s); pass --tokenizer "
                      "with a GGUF that holds this vocabulary, or --no-tokenizer",
                      doc->name, why);
}

enum trit_status trit_convert_pre_name(const char *tokenizer_json, const char **name) {
    if (!tokenizer_json || !name) return trit_error(TRIT_ERR_INVALID_ARG, "trit_convert_pre_name: NULL argument");
    struct json_doc doc = {0};
    TRIT_TRY(json_doc_load(tokenizer_json, TOKENIZER_JSON_MAX_BYTES, &doc));
    bool ignore_merges;
    enum trit_status st = pre_name(&doc, name, &ignore_merges);
    json_doc_free(&doc);
    return st;
}

/* model.merges as "a b" strings, into one arena (kept until the key is set). */
static enum trit_status merges_of(const struct json_doc *doc, char ***out, uint64_t *n_out, struct keep *keep) {
    const cJSON *merges = json_member(json_member(doc->root, "model"), "merges");
    *out = NULL;
    *n_out = 0;
    if (!merges) return TRIT_OK;
    if (!cJSON_IsArray(merges)) return trit_error(TRIT_ERR_FORMAT, "convert: %s: model.merges is not a list", doc->name);
    uint64_t n = (uint64_t)cJSON_GetArraySize(merges), bytes = 0, i = 0;
    const cJSON *it;
    cJSON_ArrayForEach(it, merges) {
        if (cJSON_IsString(it)) {
            bytes += strlen(it->valuestring) + 1;
        } else if (cJSON_IsArray(it) && cJSON_GetArraySize(it) == 2 && cJSON_IsString(cJSON_GetArrayItem(it, 0)) &&
                   cJSON_IsString(cJSON_GetArrayItem(it, 1))) {
            const char *a = cJSON_GetArrayItem(it, 0)->valuestring, *b = cJSON_GetArrayItem(it, 1)->valuestring;
            /* GGUF splits "a b" at the first space after the first byte: a part with a space is not
             * representable (byte-level vocabularies spell spaces as U+0120, so this never happens). */
            if (strchr(a + (a[0] ? 1 : 0), ' ') || !a[0] || !b[0])
                return trit_error(TRIT_ERR_UNSUPPORTED, "convert: %s: merge [\"%.32s\", \"%.32s\"] cannot be written as \"a b\"",
                                  doc->name, a, b);
            bytes += strlen(a) + strlen(b) + 2;
        } else {
            return trit_error(TRIT_ERR_FORMAT, "convert: %s: a merge is neither \"a b\" nor [\"a\", \"b\"]", doc->name);
        }
    }
    char **strs = keep_alloc(keep, (size_t)(n ? n : 1) * sizeof *strs);
    char *arena = keep_alloc(keep, (size_t)(bytes ? bytes : 1));
    if (!strs || !arena) return trit_error(TRIT_ERR_OUT_OF_MEMORY, "convert: out of memory for merges");
    char *p = arena;
    cJSON_ArrayForEach(it, merges) {
        strs[i++] = p;
        if (cJSON_IsString(it)) {
            size_t len = strlen(it->valuestring);
            memcpy(p, it->valuestring, len + 1);
            p += len + 1;
        } else {
            p += sprintf(p, "%s %s", cJSON_GetArrayItem(it, 0)->valuestring, cJSON_GetArrayItem(it, 1)->valuestring) + 1;
        }
    }
    *out = strs;
    *n_out = n;
    return TRIT_OK;
}

/* tokenizer.ggml.tokens and token_type (and scores when asked) from the loaded tokenizer. */
static enum trit_status add_token_arrays(struct gguf_writer *w, const struct trit_tokenizer *tok, bool scores,
                                         struct keep *keep) {
    const int32_t n = trit_tokenizer_n_vocab(tok);
    size_t bytes = 0;
    for (int32_t id = 0; id < n; id++) {
        size_t len;
        const char *t = trit_tokenizer_token_text(tok, id, &len);
        if (memchr(t, '\0', len)) return trit_error(TRIT_ERR_UNSUPPORTED, "convert: token %d contains a NUL byte", id);
        bytes += len + 1;
    }
    char **texts = keep_alloc(keep, (size_t)n * sizeof *texts);
    char *arena = keep_alloc(keep, bytes);
    int32_t *types = keep_alloc(keep, (size_t)n * sizeof *types);
    float *sc = scores ? keep_alloc(keep, (size_t)n * sizeof *sc) : NULL;
    if (!texts || !arena || !types || (scores && !sc))
        return trit_error(TRIT_ERR_OUT_OF_MEMORY, "convert: out of memory for the vocabulary");
    char *p = arena;
    for (int32_t id = 0; id < n; id++) {
        size_t len;
        const char *t = trit_tokenizer_token_text(tok, id, &len);
        memcpy(p, t, len);
        p[len] = '\0';
        texts[id] = p;
        p += len + 1;
        types[id] = (int32_t)trit_tokenizer_token_type(tok, id);
        if (sc) sc[id] = trit_tokenizer_token_score(tok, id);
    }
    TRIT_TRY(gguf_writer_set_arr_str(w, "tokenizer.ggml.tokens", (const char *const *)texts, (uint64_t)n));
    if (sc) TRIT_TRY(gguf_writer_set_arr(w, "tokenizer.ggml.scores", GGUF_TYPE_FLOAT32, sc, (uint64_t)n));
    return gguf_writer_set_arr(w, "tokenizer.ggml.token_type", GGUF_TYPE_INT32, types, (uint64_t)n);
}

/* The special ids and the add_* flags of the loaded tokenizer. */
static enum trit_status add_token_specials(struct gguf_writer *w, const struct trit_tokenizer *tok) {
    const struct {
        const char *key;
        int32_t id;
    } ids[] = {{"tokenizer.ggml.bos_token_id", trit_tokenizer_bos(tok)},
               {"tokenizer.ggml.eos_token_id", trit_tokenizer_eos(tok)},
               {"tokenizer.ggml.eot_token_id", trit_tokenizer_eot(tok)},
               {"tokenizer.ggml.unknown_token_id", trit_tokenizer_unk(tok)},
               {"tokenizer.ggml.padding_token_id", trit_tokenizer_pad(tok)}};
    for (size_t k = 0; k < sizeof ids / sizeof ids[0]; k++)
        if (ids[k].id >= 0) TRIT_TRY(gguf_writer_set_u32(w, ids[k].key, (uint32_t)ids[k].id));
    TRIT_TRY(gguf_writer_set_bool(w, "tokenizer.ggml.add_bos_token", trit_tokenizer_add_bos(tok)));
    return gguf_writer_set_bool(w, "tokenizer.ggml.add_eos_token", trit_tokenizer_add_eos(tok));
}

/* The chat template: tokenizer_config.json's, replaced by chat_template.jinja (as transformers does). */
static enum trit_status add_chat_template(struct gguf_writer *w, const char *dir) {
    struct hf_tokenizer_config cfg = {0};
    enum trit_status st = TRIT_OK;
    char path[4200];
    snprintf(path, sizeof path, "%s/tokenizer_config.json", dir);
    if (is_file(path)) st = hf_tokenizer_config_load(path, &cfg);
    snprintf(path, sizeof path, "%s/chat_template.jinja", dir);
    if (st == TRIT_OK && is_file(path)) {
        char *text;
        size_t len;
        st = json_read_file(path, HF_TOKENIZER_CONFIG_MAX_BYTES, &text, &len);
        if (st == TRIT_OK) {
            trit_free(cfg.chat_template);
            cfg.chat_template = text;
        }
    }
    if (st == TRIT_OK && cfg.chat_template) st = gguf_writer_set_str(w, "tokenizer.chat_template", cfg.chat_template);
    hf_tokenizer_config_free(&cfg);
    return st;
}

/* tokenizer.ggml.* for a SentencePiece tokenizer.model (+ added_tokens.json, tokenizer_config.json):
 * llama.cpp's "llama" vocabulary, every field from `tok` as trit loaded it from those files. */
static enum trit_status add_tokenizer_spm(struct gguf_writer *w, const struct tok_source *ts,
                                          const struct trit_tokenizer *tok, struct keep *keep) {
    TRIT_TRY(gguf_writer_set_str(w, "tokenizer.ggml.model", "llama"));
    TRIT_TRY(add_token_arrays(w, tok, true, keep));
    TRIT_TRY(add_token_specials(w, tok));
    TRIT_TRY(gguf_writer_set_bool(w, "tokenizer.ggml.add_space_prefix", trit_tokenizer_add_space_prefix(tok)));
    return add_chat_template(w, ts->dir);
}

/* tokenizer.ggml.* from tokenizer.json (+ tokenizer_config.json): the token texts, types, special
 * ids and flags from `tok` (the tokenizer as trit loads it from those files), the merges and the
 * pre-tokenizer name from the JSON, the chat template from the config or chat_template.jinja. */
static enum trit_status add_tokenizer_json(struct gguf_writer *w, const struct tok_source *ts,
                                           const struct trit_tokenizer *tok, struct keep *keep) {
    struct json_doc doc = {0};
    TRIT_TRY(json_doc_load(ts->path, TOKENIZER_JSON_MAX_BYTES, &doc));
    enum trit_status st = TRIT_OK;
#define CHECK(expr)                                                                                \
    do {                                                                                           \
        st = (expr);                                                                               \
        if (st != TRIT_OK) goto done;                                                              \
    } while (0)
    const char *pre = NULL;
    bool ignore_merges = false;
    CHECK(pre_name(&doc, &pre, &ignore_merges));
    if (cJSON_IsTrue(json_member(json_member(doc.root, "model"), "ignore_merges")) != ignore_merges)
        CHECK(trit_error(TRIT_ERR_UNSUPPORTED,
                         "convert: %s: model.ignore_merges is %s, but the pre-tokenizer name '%s' implies %s; GGUF has no key "
                         "for it",
                         doc.name, ignore_merges ? "false" : "true", pre, ignore_merges ? "true" : "false"));
    const cJSON *it;
    cJSON_ArrayForEach(it, json_member(doc.root, "added_tokens")) {
        if (cJSON_IsTrue(json_member(it, "lstrip")) || cJSON_IsTrue(json_member(it, "rstrip"))) {
            const cJSON *c = json_member(it, "content");
            CHECK(trit_error(TRIT_ERR_UNSUPPORTED, "convert: %s: added token '%.64s' strips whitespace (lstrip/rstrip); "
                             "GGUF has no key for it", doc.name, cJSON_IsString(c) ? c->valuestring : "?"));
        }
    }

    char **merges;
    uint64_t n_merges;
    CHECK(merges_of(&doc, &merges, &n_merges, keep));
    CHECK(gguf_writer_set_str(w, "tokenizer.ggml.model", "gpt2"));
    CHECK(gguf_writer_set_str(w, "tokenizer.ggml.pre", pre));
    CHECK(add_token_arrays(w, tok, false, keep));
    CHECK(gguf_writer_set_arr_str(w, "tokenizer.ggml.merges", (const char *const *)merges, n_merges));
    CHECK(add_token_specials(w, tok));
    CHECK(add_chat_template(w, ts->dir));
#undef CHECK
done:
    json_doc_free(&doc);
    return st;
}

static enum trit_status add_tokenizer(struct gguf_writer *w, const struct tok_source *ts,
                                      const struct trit_tokenizer *tok, struct keep *keep) {
    if (ts->spm) return add_tokenizer_spm(w, ts, tok, keep);
    if (!ts->gguf) return add_tokenizer_json(w, ts, tok, keep);
    struct gguf_file f;
    memset(&f, 0, sizeof f);
    TRIT_TRY(gguf_open(ts->path, &f));
    enum trit_status st = gguf_writer_copy_kv(w, &f, skip_non_tokenizer, NULL);
    gguf_close(&f);
    return st;
}

/* ---- tensors ------------------------------------------------------------------------------ */

struct encoder {
    struct gguf_writer *w;
    struct keep *keep;
    const struct trit_convert_params *params;
    struct trit_convert_report *report;
    int64_t done, total; /* ternary tensors, for progress */
    int64_t q2_group;    /* the file's Q2_0 block (file_q2_group), 0 when no weight is group-scaled */
};

static uint32_t ggml_dtype(enum trit_dtype dt) {
    switch (dt) {
    case TRIT_DTYPE_F32: return GGML_TYPE_F32;
    case TRIT_DTYPE_F16: return GGML_TYPE_F16;
    case TRIT_DTYPE_BF16: return GGML_TYPE_BF16;
    }
    return GGML_TYPE_F32;
}

static size_t dtype_bytes(enum trit_dtype dt) { return dt == TRIT_DTYPE_F32 ? 4 : 2; }

static enum trit_status add_dense(struct encoder *E, const char *name, const struct trit_dense *d) {
    const int64_t ne[2] = {d->n_cols, d->n_rows};
    E->report->n_tensors++;
    return gguf_writer_add_tensor(E->w, name, ggml_dtype(d->dtype), 2, ne, d->data,
                                  (uint64_t)(d->n_rows * d->n_cols) * dtype_bytes(d->dtype));
}

static enum trit_status add_vector(struct encoder *E, const char *name, const float *v, int64_t n) {
    const int64_t ne[1] = {n};
    E->report->n_tensors++;
    return gguf_writer_add_tensor(E->w, name, GGML_TYPE_F32, 1, ne, v, (uint64_t)n * sizeof(float));
}

static void encode_progress(struct encoder *E) {
    E->done++;
    if (E->params->progress) E->params->progress(TRIT_CONVERT_ENCODING, (float)E->done / (float)E->total, E->params->progress_user);
}

/* Whether Q2_0 holds w exactly: whole blocks of E->q2_group (w->group already is that) and every
 * group scale an fp16 value. */
static bool q2_0_exact(const struct trit_ternary *w) {
    if (trit_q2_0_bytes(w->n_rows, w->n_cols, w->group) < 0) return false;
    const int64_t n = w->n_rows * trit_ternary_n_groups(w);
    for (int64_t i = 0; i < n; i++) {
        const float d = w->group_scales[i], back = trit_fp16_to_fp32(trit_fp32_to_fp16(d));
        if (memcmp(&d, &back, sizeof d) != 0) return false;
    }
    return true;
}

/* blk.<layer>.<base>.weight of a group-scaled weight (w->group == E->q2_group): Q2_0, or F32 holding
 * t * d exactly when Q2_0 cannot (a partial last group, a scale with no exact fp16); the reader
 * recovers the F32 form with trit_ternary_from_group_scaled. No .scale tensor: the scale is 1. */
static enum trit_status add_ternary_grouped(struct encoder *E, int64_t layer, const char *base, const struct trit_ternary *w) {
    char name[64];
    const int64_t ne[2] = {w->n_cols, w->n_rows};
    snprintf(name, sizeof name, "blk.%lld.%s.weight", (long long)layer, base);
    if (q2_0_exact(w)) {
        const int64_t n_bytes = trit_q2_0_bytes(w->n_rows, w->n_cols, w->group);
        uint8_t *buf = keep_alloc(E->keep, (size_t)n_bytes);
        if (!buf) return trit_error(TRIT_ERR_OUT_OF_MEMORY, "convert: out of memory for '%s'", name);
        TRIT_TRY(trit_q2_0_encode(w, buf));
        TRIT_TRY(gguf_writer_add_tensor(E->w, name, GGML_TYPE_Q2_0, 2, ne, buf, (uint64_t)n_bytes));
        E->report->n_ternary_q2_0++;
        E->report->q2_0_group = w->group;
    } else {
        float *buf = keep_alloc(E->keep, (size_t)(w->n_rows * w->n_cols) * sizeof *buf);
        if (!buf) return trit_error(TRIT_ERR_OUT_OF_MEMORY, "convert: out of memory for '%s'", name);
        const int64_t n_groups = trit_ternary_n_groups(w);
        for (int64_t r = 0; r < w->n_rows; r++)
            for (int64_t c = 0; c < w->n_cols; c++)
                buf[r * w->n_cols + c] = (float)trit_ternary_get(w, r, c) * w->group_scales[r * n_groups + c / w->group];
        TRIT_TRY(gguf_writer_add_tensor(E->w, name, GGML_TYPE_F32, 2, ne, buf, (uint64_t)(w->n_rows * w->n_cols) * 4u));
        E->report->n_ternary_f32++;
    }
    E->report->n_tensors++;
    E->report->n_ternary++;
    encode_progress(E);
    return TRIT_OK;
}

/* blk.<layer>.<base>.weight (TQ2_0/TQ1_0 with d = 1, or F16 -1/0/+1) and blk.<layer>.<base>.scale. */
static enum trit_status add_ternary(struct encoder *E, int64_t layer, const char *base, const struct trit_ternary *w) {
    if (w->group > 0) return add_ternary_grouped(E, layer, base, w);
    char name[64];
    const int64_t ne[2] = {w->n_cols, w->n_rows};
    snprintf(name, sizeof name, "blk.%lld.%s.weight", (long long)layer, base);
    if (w->n_cols % TRIT_QK_K == 0) {
        const bool tq1 = E->params->weights == TRIT_CONVERT_TQ1_0;
        int64_t n_bytes = tq1 ? trit_tq1_0_bytes(w->n_rows, w->n_cols) : trit_tq2_0_bytes(w->n_rows, w->n_cols);
        if (n_bytes < 0) return trit_error(TRIT_ERR_UNSUPPORTED, "convert: '%s' is too large", name);
        uint8_t *buf = keep_alloc(E->keep, (size_t)n_bytes);
        if (!buf) return trit_error(TRIT_ERR_OUT_OF_MEMORY, "convert: out of memory for '%s'", name);
        TRIT_TRY(tq1 ? trit_tq1_0_encode(w, true, buf) : trit_tq2_0_encode(w, true, buf));
        TRIT_TRY(gguf_writer_add_tensor(E->w, name, tq1 ? GGML_TYPE_TQ1_0 : GGML_TYPE_TQ2_0, 2, ne, buf, (uint64_t)n_bytes));
    } else {
        /* Rows that are not whole 256-blocks: F16 holding exactly -1, 0, +1 (the loader recovers
         * them exactly, scale 1, and the .scale tensor carries the scale). */
        uint16_t *buf = keep_alloc(E->keep, (size_t)(w->n_rows * w->n_cols) * sizeof *buf);
        if (!buf) return trit_error(TRIT_ERR_OUT_OF_MEMORY, "convert: out of memory for '%s'", name);
        const uint16_t f16[3] = {0xBC00u, 0x0000u, 0x3C00u}; /* -1, 0, +1 */
        for (int64_t r = 0; r < w->n_rows; r++)
            for (int64_t c = 0; c < w->n_cols; c++) buf[r * w->n_cols + c] = f16[trit_ternary_get(w, r, c) + 1];
        TRIT_TRY(gguf_writer_add_tensor(E->w, name, GGML_TYPE_F16, 2, ne, buf, (uint64_t)(w->n_rows * w->n_cols) * 2u));
        E->report->n_ternary_f16++;
    }
    float *scale = keep_alloc(E->keep, sizeof *scale);
    if (!scale) return trit_error(TRIT_ERR_OUT_OF_MEMORY, "convert: out of memory");
    *scale = w->scale;
    snprintf(name, sizeof name, "blk.%lld.%s.scale", (long long)layer, base);
    const int64_t one[1] = {1};
    TRIT_TRY(gguf_writer_add_tensor(E->w, name, GGML_TYPE_F32, 1, one, scale, sizeof *scale));
    E->report->n_tensors += 2;
    E->report->n_ternary++;
    encode_progress(E);
    return TRIT_OK;
}

/* One layer weight as the file holds it: Q/K rows permuted for llama, group scales cut to the file's
 * Q2_0 block. */
static enum trit_status add_layer_weight(struct encoder *E, int64_t layer, int k, const struct trit_ternary *w, bool permute,
                                         int64_t head_dim) {
    struct trit_ternary p = {0}, g = {0};
    const struct trit_ternary *cur = w;
    enum trit_status st = TRIT_OK;
    if (permute && (k == TRIT_W_Q || k == TRIT_W_K)) {
        st = permuted_copy(cur, head_dim, &p);
        cur = &p;
    }
    if (st == TRIT_OK && cur->group > 0 && cur->group != E->q2_group) {
        st = regrouped_copy(cur, E->q2_group, &g);
        cur = &g;
    }
    if (st == TRIT_OK) st = add_ternary(E, layer, trit_weights[k].gguf, cur);
    trit_ternary_free(&p);
    trit_ternary_free(&g);
    return st;
}

static enum trit_status add_tensors(struct encoder *E, const struct trit_model *m, bool permute) {
    const struct trit_hparams *hp = &m->hp;
    E->total = hp->n_layers * TRIT_N_W;
    TRIT_TRY(add_dense(E, "token_embd.weight", &m->tok_embd));
    TRIT_TRY(add_vector(E, "output_norm.weight", m->out_norm, hp->dim));
    if (!hp->tied_embeddings) TRIT_TRY(add_dense(E, "output.weight", &m->output));
    const int64_t q_dim = hp->n_heads * hp->head_dim;
    char name[64];
    for (int64_t i = 0; i < hp->n_layers; i++) {
        const struct trit_layer *l = &m->layers[i];
#define NAME(s) (snprintf(name, sizeof name, "blk.%lld." s, (long long)i), name)
        TRIT_TRY(add_vector(E, NAME("attn_norm.weight"), l->attn_norm, hp->dim));
        if (hp->qk_norm) {
            TRIT_TRY(add_vector(E, NAME("attn_q_norm.weight"), l->attn_q_norm, hp->head_dim));
            TRIT_TRY(add_vector(E, NAME("attn_k_norm.weight"), l->attn_k_norm, hp->head_dim));
        }
        if (l->attn_sub_norm) TRIT_TRY(add_vector(E, NAME("attn_sub_norm.weight"), l->attn_sub_norm, q_dim));
        TRIT_TRY(add_vector(E, NAME("ffn_norm.weight"), l->ffn_norm, hp->dim));
        if (l->ffn_sub_norm) TRIT_TRY(add_vector(E, NAME("ffn_sub_norm.weight"), l->ffn_sub_norm, hp->ffn_dim));
#undef NAME
        for (int k = 0; k < TRIT_N_W; k++) TRIT_TRY(add_layer_weight(E, i, k, &l->w[k], permute, hp->head_dim));
    }
    return TRIT_OK;
}

/* ---- comparisons -------------------------------------------------------------------------- */

static bool same_f32_bits(float a, float b) { return memcmp(&a, &b, sizeof a) == 0; }

static enum trit_status compare_vector(const float *a, const float *b, int64_t n, int64_t layer, const char *what) {
    if (!a != !b) return trit_error(TRIT_ERR_FORMAT, "convert check: layer %lld: %s present in only one model", (long long)layer, what);
    if (a && memcmp(a, b, (size_t)n * sizeof *a) != 0)
        return trit_error(TRIT_ERR_FORMAT, "convert check: layer %lld: %s differs", (long long)layer, what);
    return TRIT_OK;
}

static enum trit_status compare_dense(const struct trit_dense *a, const struct trit_dense *b, const char *what) {
    if (a->dtype != b->dtype || a->n_rows != b->n_rows || a->n_cols != b->n_cols)
        return trit_error(TRIT_ERR_FORMAT, "convert check: %s dtype or shape differs", what);
    if (memcmp(a->data, b->data, (size_t)(a->n_rows * a->n_cols) * dtype_bytes(a->dtype)) != 0)
        return trit_error(TRIT_ERR_FORMAT, "convert check: %s bytes differ", what);
    return TRIT_OK;
}

/* The value of weight (r, c) as the matmul epilogue applies it, for a multiplying scale. */
static float weight_value(const struct trit_ternary *w, int64_t r, int64_t c) {
    const float d = w->group > 0 ? w->group_scales[r * trit_ternary_n_groups(w) + c / w->group] : w->scale;
    return (float)trit_ternary_get(w, r, c) * d;
}

/* Group-scaled weights are compared by value: every t * d equal (as floats: +0 and -0 alike), since
 * one set of values has several codings (a group of 128 is two of 64; an F32-stored weight recovers an
 * all-zero group with scale 1, a group of +2 codes alone as +1 times 2d). Q2_0 keeps the coding too. */
static bool same_values(const struct trit_ternary *a, const struct trit_ternary *b) {
    if (a->n_rows != b->n_rows || a->n_cols != b->n_cols || a->scale_kind != TRIT_SCALE_MUL || b->scale_kind != TRIT_SCALE_MUL)
        return false;
    for (int64_t r = 0; r < a->n_rows; r++)
        for (int64_t c = 0; c < a->n_cols; c++)
            if (!(weight_value(a, r, c) == weight_value(b, r, c))) return false;
    return true;
}

static enum trit_status compare_ternary(const struct trit_ternary *src, const struct trit_ternary *out, bool permute,
                                        int64_t head_dim, int64_t layer, const char *what) {
    struct trit_ternary p = {0};
    const struct trit_ternary *want = src;
    if (permute) {
        TRIT_TRY(permuted_copy(src, head_dim, &p));
        want = &p;
    }
    bool eq = want->group > 0 || out->group > 0 ? same_values(want, out) : trit_ternary_equal(want, out);
    trit_ternary_free(&p);
    if (eq) return TRIT_OK;
    return trit_error(TRIT_ERR_FORMAT,
                      "convert check: layer %lld %s differs: [%lld, %lld] scale %.9g (%s, group %lld) in the source, [%lld, %lld] "
                      "scale %.9g (%s, group %lld) in the output%s",
                      (long long)layer, what, (long long)src->n_rows, (long long)src->n_cols, (double)src->scale,
                      src->scale_kind == TRIT_SCALE_DIV ? "divide" : "multiply", (long long)src->group, (long long)out->n_rows,
                      (long long)out->n_cols, (double)out->scale, out->scale_kind == TRIT_SCALE_DIV ? "divide" : "multiply",
                      (long long)out->group, permute ? " (after the Q/K row permutation)" : "");
}

enum trit_status trit_convert_compare_models(const struct trit_model *src, const struct trit_model *out) {
    if (!src || !out) return trit_error(TRIT_ERR_INVALID_ARG, "trit_convert_compare_models: NULL argument");
    const struct trit_hparams *a = &src->hp, *b = &out->hp;
    const bool permute = a->rope_style == TRIT_ROPE_NEOX && b->rope_style == TRIT_ROPE_NORM;
    const enum trit_rope_style want_rope = a->family == TRIT_FAMILY_LLAMA ? TRIT_ROPE_NORM : a->rope_style;
#define HP(field)                                                                                  \
    if (a->field != b->field)                                                                      \
        return trit_error(TRIT_ERR_FORMAT, "convert check: hyperparameter " #field " is %lld in the source, %lld in the output", \
                          (long long)a->field, (long long)b->field);
    HP(family) HP(n_vocab) HP(dim) HP(n_layers) HP(n_heads) HP(n_kv_heads) HP(head_dim) HP(ffn_dim) HP(ctx_train)
    HP(act) HP(sub_norms) HP(tied_embeddings) HP(qk_norm) HP(act_block)
#undef HP
    if (!same_f32_bits(a->norm_eps, b->norm_eps) || !same_f32_bits(a->rope_theta, b->rope_theta))
        return trit_error(TRIT_ERR_FORMAT, "convert check: norm eps or rope theta differ (%g/%g vs %g/%g)", (double)a->norm_eps,
                          (double)a->rope_theta, (double)b->norm_eps, (double)b->rope_theta);
    if (b->rope_style != want_rope) return trit_error(TRIT_ERR_FORMAT, "convert check: RoPE style differs");
    TRIT_TRY(compare_dense(&src->tok_embd, &out->tok_embd, "token embedding"));
    TRIT_TRY(compare_dense(&src->output, &out->output, "output head"));
    TRIT_TRY(compare_vector(src->out_norm, out->out_norm, a->dim, -1, "output norm"));
    const int64_t q_dim = a->n_heads * a->head_dim;
    for (int64_t i = 0; i < a->n_layers; i++) {
        const struct trit_layer *la = &src->layers[i], *lb = &out->layers[i];
        TRIT_TRY(compare_vector(la->attn_norm, lb->attn_norm, a->dim, i, "attn_norm"));
        TRIT_TRY(compare_vector(la->attn_q_norm, lb->attn_q_norm, a->head_dim, i, "attn_q_norm"));
        TRIT_TRY(compare_vector(la->attn_k_norm, lb->attn_k_norm, a->head_dim, i, "attn_k_norm"));
        TRIT_TRY(compare_vector(la->attn_sub_norm, lb->attn_sub_norm, q_dim, i, "attn_sub_norm"));
        TRIT_TRY(compare_vector(la->ffn_norm, lb->ffn_norm, a->dim, i, "ffn_norm"));
        TRIT_TRY(compare_vector(la->ffn_sub_norm, lb->ffn_sub_norm, a->ffn_dim, i, "ffn_sub_norm"));
        for (int k = 0; k < TRIT_N_W; k++)
            TRIT_TRY(compare_ternary(&la->w[k], &lb->w[k], permute && (k == TRIT_W_Q || k == TRIT_W_K), a->head_dim, i,
                                     trit_weights[k].gguf));
    }
    return TRIT_OK;
}

/* Texts whose ids the two tokenizers must agree on: spaces, digits, case, contractions, non-Latin
 * scripts, emoji, invalid UTF-8, special-token markers of the common vocabularies. */
static const char *const PROBES[] = {
    "",
    "Hello world",
    " Hello, World! How are you?",
    "  leading and   inner   spaces  \n\n\ttabs\r\nand lines\n\n\n",
    "numbers 1 12 123 1234 3.14159 1,000,000",
    "I'm you're we've they'll he'd it's I'M YOU'RE",
    "Führer ½ naïve café 日本語のテキスト Ελληνικά русский текст 🙂👍🏽",
    "code: int main(void) { return x->y[2] >= 0 ? 1 : -1; } // done",
    "<|begin_of_text|>Hi<|eot_id|><|end_of_text|><s></s><unk><|endoftext|>",
    "\xff\xfe broken \xc3 utf-8 \xe2\x82",
};

static enum trit_status compare_ids(const struct trit_tokenizer *a, const struct trit_tokenizer *b, const char *text,
                                    size_t len, unsigned flags) {
    struct trit_tokens ta = {0}, tb = {0};
    enum trit_status st = trit_tokenize(a, text, len, flags, &ta);
    if (st == TRIT_OK) st = trit_tokenize(b, text, len, flags, &tb);
    if (st == TRIT_OK && (ta.n != tb.n || (ta.n && memcmp(ta.ids, tb.ids, ta.n * sizeof *ta.ids) != 0))) {
        size_t at = 0;
        while (at < ta.n && at < tb.n && ta.ids[at] == tb.ids[at]) at++;
        st = trit_error(TRIT_ERR_FORMAT, "convert check: the tokenizers disagree on \"%.60s\"%s (flags %u): %zu vs %zu ids, first "
                        "difference at %zu", text, len > 60 ? "..." : "", flags, ta.n, tb.n, at);
    }
    trit_tokens_free(&ta);
    trit_tokens_free(&tb);
    return st;
}

enum trit_status trit_convert_compare_tokenizers(const struct trit_tokenizer *a, const struct trit_tokenizer *b) {
    if (!a || !b) return trit_error(TRIT_ERR_INVALID_ARG, "trit_convert_compare_tokenizers: NULL argument");
    if (trit_tokenizer_kind(a) != trit_tokenizer_kind(b)) return trit_error(TRIT_ERR_FORMAT, "convert check: tokenizer kind differs");
    const int32_t n = trit_tokenizer_n_vocab(a);
    if (n != trit_tokenizer_n_vocab(b))
        return trit_error(TRIT_ERR_FORMAT, "convert check: vocabulary of %d vs %d tokens", n, trit_tokenizer_n_vocab(b));
    for (int32_t id = 0; id < n; id++) {
        size_t la, lb;
        const char *ta = trit_tokenizer_token_text(a, id, &la), *tb = trit_tokenizer_token_text(b, id, &lb);
        if (la != lb || memcmp(ta, tb, la) != 0 || trit_tokenizer_token_type(a, id) != trit_tokenizer_token_type(b, id) ||
            trit_tokenizer_is_eog(a, id) != trit_tokenizer_is_eog(b, id))
            return trit_error(TRIT_ERR_FORMAT, "convert check: token %d differs (text, type or end-of-generation)", id);
    }
    const int32_t sa[] = {trit_tokenizer_bos(a), trit_tokenizer_eos(a), trit_tokenizer_eot(a), trit_tokenizer_unk(a), trit_tokenizer_pad(a)};
    const int32_t sb[] = {trit_tokenizer_bos(b), trit_tokenizer_eos(b), trit_tokenizer_eot(b), trit_tokenizer_unk(b), trit_tokenizer_pad(b)};
    static const char *const special_names[] = {"bos", "eos", "eot", "unk", "pad"};
    for (size_t k = 0; k < sizeof sa / sizeof sa[0]; k++)
        if (sa[k] != sb[k])
            return trit_error(TRIT_ERR_FORMAT, "convert check: %s id is %d vs %d", special_names[k], sa[k], sb[k]);
    if (trit_tokenizer_add_bos(a) != trit_tokenizer_add_bos(b) || trit_tokenizer_add_eos(a) != trit_tokenizer_add_eos(b) ||
        trit_tokenizer_add_space_prefix(a) != trit_tokenizer_add_space_prefix(b))
        return trit_error(TRIT_ERR_FORMAT, "convert check: add_bos, add_eos or add_space_prefix differs");
    for (size_t k = 0; k < sizeof PROBES / sizeof PROBES[0]; k++)
        for (unsigned flags = 0; flags < 4; flags++) TRIT_TRY(compare_ids(a, b, PROBES[k], strlen(PROBES[k]), flags));
    /* Every token's piece, 32 tokens to a text: exercises the merges and the pre-tokenizer over the
     * whole vocabulary. */
    char buf[8192];
    for (int32_t id0 = 0; id0 < n; id0 += 32) {
        size_t len = 0;
        for (int32_t id = id0; id < n && id < id0 + 32; id++) {
            size_t pl;
            const char *p = trit_tokenizer_piece(a, id, 0, &pl);
            if (p && len + pl < sizeof buf) {
                memcpy(buf + len, p, pl);
                len += pl;
            }
        }
        TRIT_TRY(compare_ids(a, b, buf, len, 0));
    }
    return TRIT_OK;
}

/* ---- trit_convert ------------------------------------------------------------------------- */

struct load_progress {
    const struct trit_convert_params *params;
    enum trit_convert_stage stage;
};

static void load_progress_fn(float fraction, void *user) {
    struct load_progress *lp = user;
    lp->params->progress(lp->stage, fraction, lp->params->progress_user);
}

/* Load parameters that report a model load as `lp->stage` (none without a progress callback). */
static struct trit_load_params load_params_for(struct load_progress *lp) {
    struct trit_load_params lpar = {0};
    if (lp->params->progress) {
        lpar.progress = load_progress_fn;
        lpar.progress_user = lp;
    }
    return lpar;
}

/* The model's single scale kind; mixed kinds cannot be written (trit.weight_scale_kind is per file). */
static enum trit_status scale_kind_of(const struct trit_model *m, bool *divides) {
    *divides = m->hp.n_layers > 0 && m->layers[0].w[TRIT_W_Q].scale_kind == TRIT_SCALE_DIV;
    for (int64_t i = 0; i < m->hp.n_layers; i++) {
        for (int k = 0; k < TRIT_N_W; k++)
            if ((m->layers[i].w[k].scale_kind == TRIT_SCALE_DIV) != *divides)
                return trit_error(TRIT_ERR_UNSUPPORTED,
                                  "convert: layer %lld %s has a %s scale while layer 0 attn_q has a %s one; a trit GGUF holds "
                                  "one scale kind (trit.weight_scale_kind)",
                                  (long long)i, trit_weights[k].gguf, *divides ? "multiply" : "divide", *divides ? "divide" : "multiply");
    }
    return TRIT_OK;
}

/* Loads the written file back and compares it with the source model and tokenizer. */
static enum trit_status check_output(const char *path, const struct trit_model *src, const struct trit_tokenizer *src_tok,
                                     const struct trit_convert_params *params) {
    struct load_progress lp = {.params = params, .stage = TRIT_CONVERT_CHECKING};
    struct trit_load_params lpar = load_params_for(&lp);
    struct trit_model out;
    TRIT_TRY(trit_model_load_gguf(path, &lpar, &out));
    enum trit_status st = trit_convert_compare_models(src, &out);
    trit_model_release(&out);
    TRIT_TRY(st);
    if (!src_tok) return TRIT_OK;
    struct trit_tokenizer *tok;
    TRIT_TRY(trit_tokenizer_load(path, &tok));
    st = trit_convert_compare_tokenizers(src_tok, tok);
    trit_tokenizer_free(tok);
    return st;
}

/* An output file's error (trit_out_*, which names the path) as convert's. */
static enum trit_status output_error(enum trit_status st) {
    char why[900];
    snprintf(why, sizeof why, "%s", trit_last_error());
    return trit_error(st, "convert: output %s", why);
}

static enum trit_status convert_loaded(const char *src, const char *tmp, const struct trit_model *m,
                                       const struct trit_convert_params *params, struct trit_convert_report *report) {
    if (m->hp.family == TRIT_FAMILY_GEMMA3) /* the sandwich norms, two thetas and layer types have no keys here yet */
        return trit_error(TRIT_ERR_UNSUPPORTED, "convert: gemma3 models cannot be written to GGUF yet (run the Hugging "
                          "Face folder itself)");
    bool divides;
    TRIT_TRY(scale_kind_of(m, &divides));
    const char *arch = trit_convert_arch_name(m->hp.family);
    snprintf(report->arch, sizeof report->arch, "%s", arch);
    /* llama's GGUF rotates pairs (NORM): HF rows, which rotate halves, are permuted (llama.cpp's
     * converter does the same); rows from a llama GGUF already are. */
    const bool permute = m->hp.family == TRIT_FAMILY_LLAMA && m->hp.rope_style == TRIT_ROPE_NEOX;
    report->permuted_qk = permute;

    struct tok_source ts;
    struct trit_tokenizer *tok = NULL;
    if (!params->no_tokenizer) {
        const char *tpath = params->tokenizer ? params->tokenizer : src;
        enum trit_status st = resolve_tok_source(tpath, &ts);
        if (st == TRIT_OK) st = trit_tokenizer_load(ts.gguf || ts.spm ? ts.path : tpath, &tok);
        if (st != TRIT_OK) {
            char why[700];
            snprintf(why, sizeof why, "%s", trit_last_error());
            return trit_error(st, "convert: cannot take the tokenizer from '%s': %s%s", tpath, why,
                              params->tokenizer ? "" : " (pass --tokenizer PATH to take it from elsewhere, or --no-tokenizer)");
        }
        /* Ids past the embedding's rows would only fail when the model runs. A smaller vocabulary
         * is fine: models pad their embedding (to a multiple of 64, 128 ...). */
        const int32_t n_tok = trit_tokenizer_n_vocab(tok);
        if (n_tok > m->hp.n_vocab) {
            trit_tokenizer_free(tok);
            return trit_error(TRIT_ERR_FORMAT,
                              "convert: the tokenizer from '%s' has %d tokens, more than the model's vocabulary of %lld "
                              "(its embedding rows): ids from %lld on would have no embedding; give the model's own "
                              "tokenizer%s",
                              tpath, n_tok, (long long)m->hp.n_vocab, (long long)m->hp.n_vocab,
                              params->tokenizer ? "" : " with --tokenizer PATH, or --no-tokenizer");
        }
    }

    struct gguf_writer *w = NULL;
    struct keep keep = {0};
    char name[256];
    source_name(src, name, sizeof name);
    enum trit_status st = gguf_writer_init(&w);
    const int64_t q2_group = file_q2_group(m);
    if (st == TRIT_OK) st = write_metadata(w, m, arch, name, params->weights, divides, q2_group > 0);
    if (st == TRIT_OK && tok) st = add_tokenizer(w, &ts, tok, &keep);
    report->has_tokenizer = tok != NULL;
    struct encoder E = {.w = w, .keep = &keep, .params = params, .report = report, .q2_group = q2_group};
    if (st == TRIT_OK) st = add_tensors(&E, m, permute);
    if (st == TRIT_OK && params->progress) params->progress(TRIT_CONVERT_WRITING, 0.0f, params->progress_user);
    if (st == TRIT_OK) st = gguf_writer_write(w, tmp);
    if (st == TRIT_OK && params->progress) params->progress(TRIT_CONVERT_WRITING, 1.0f, params->progress_user);
    gguf_writer_free(w);
    keep_free(&keep);
    if (st == TRIT_OK && params->check) {
        st = check_output(tmp, m, tok, params);
        report->checked = st == TRIT_OK;
    }
    trit_tokenizer_free(tok);
    return st;
}

/* Writes m into out's temporary, checks it, and commits it (or aborts: no file is left). */
static enum trit_status convert_to_out(const char *src, struct trit_out *out, const struct trit_model *m,
                                       const struct trit_convert_params *params, struct trit_convert_report *report) {
    /* The GGUF writer opens the temporary again by its name: out->fd stays open, for its size and
     * for commit's fsync (the same file). */
    enum trit_status st = convert_loaded(src, out->tmp, m, params, report);
    struct stat sb;
    if (st == TRIT_OK && fstat(out->fd, &sb) == 0) report->file_bytes = (uint64_t)sb.st_size;
    if (st != TRIT_OK) {
        trit_out_abort(out);
        return st;
    }
    st = trit_out_commit(out);
    return st == TRIT_OK ? TRIT_OK : output_error(st);
}

enum trit_status trit_convert(const char *src, const char *dst, const struct trit_convert_params *params,
                              struct trit_convert_report *report) {
    if (!src || !dst) return trit_error(TRIT_ERR_INVALID_ARG, "trit_convert: NULL path");
    struct trit_convert_params defaults = trit_convert_default_params();
    if (!params) params = &defaults;
    struct trit_convert_report local;
    if (!report) report = &local;
    memset(report, 0, sizeof *report);
    if (params->weights != TRIT_CONVERT_TQ2_0 && params->weights != TRIT_CONVERT_TQ1_0)
        return trit_error(TRIT_ERR_INVALID_ARG, "trit_convert: unknown weight packing %d", (int)params->weights);

    /* The output first: a target that cannot be written (a device, a folder, a missing folder) is
     * refused before minutes of loading and encoding. */
    struct trit_out out;
    enum trit_status st = trit_out_open(dst, &out);
    if (st == TRIT_OK) st = trit_out_check_input(&out, src);
    if (st != TRIT_OK) return output_error(st);

    struct load_progress lp = {.params = params, .stage = TRIT_CONVERT_LOADING};
    struct trit_load_params lpar = load_params_for(&lp);
    if (params->progress) params->progress(TRIT_CONVERT_LOADING, 0.0f, params->progress_user);
    struct trit_model m;
    st = trit_model_load_path(src, &lpar, &m);
    if (st != TRIT_OK) {
        trit_out_abort(&out);
        return st;
    }
    st = convert_to_out(src, &out, &m, params, report);
    trit_model_release(&m);
    return st;
}

enum trit_status trit_convert_model(const struct trit_model *m, const char *dst, const struct trit_convert_params *params,
                                    struct trit_convert_report *report) {
    if (!m || !dst) return trit_error(TRIT_ERR_INVALID_ARG, "trit_convert_model: NULL argument");
    struct trit_convert_params p = params ? *params : trit_convert_default_params();
    if (!p.tokenizer) p.no_tokenizer = true;
    struct trit_convert_report local;
    if (!report) report = &local;
    memset(report, 0, sizeof *report);
    if (p.weights != TRIT_CONVERT_TQ2_0 && p.weights != TRIT_CONVERT_TQ1_0)
        return trit_error(TRIT_ERR_INVALID_ARG, "trit_convert_model: unknown weight packing %d", (int)p.weights);
    TRIT_TRY(trit_model_validate(m));
    struct trit_out out;
    enum trit_status st = trit_out_open(dst, &out);
    if (st != TRIT_OK) return output_error(st);
    return convert_to_out(m->path, &out, m, &p, report);
}
