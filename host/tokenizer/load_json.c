/*
 * load_json.c: a byte-level BPE tokenizer from Hugging Face tokenizer.json (+ tokenizer_config.json).
 *
 * Read from tokenizer.json: model {type "BPE", vocab {text: id}, merges ["a b"] or [["a","b"]],
 * ignore_merges, unk_token}; normalizer NFC (Qwen2: nfc.c, applied to the text between added
 * tokens); added_tokens [{id, content, special, lstrip, rstrip}] (special ->
 * control, else user-defined); pre_tokenizer: ByteLevel (GPT-2 regex when use_regex), or a Sequence
 * of Split {pattern {Regex|String}, behavior "Isolated"} and ByteLevel {use_regex false};
 * post_processor TemplateProcessing for BOS/EOS. From tokenizer_config.json: bos_token, eos_token,
 * unk_token, pad_token (a string or {"content": ...}), add_bos_token, add_eos_token, which win over
 * tokenizer.json.
 *
 * SentencePiece-style BPE (the Llama 2 tokenizer.json of 1bitLLM models) is recognized by its "▁":
 * normalizer Sequence [Prepend "▁", Replace " " -> "▁"] or pre_tokenizer Metaspace; it becomes an
 * SPM tokenizer that merges by rank (spm.c), with <0xXX> byte tokens when byte_fallback is set.
 * Anything else that changes the tokens (other normalizers and pre-tokenizers, Unigram or WordPiece
 * models) is refused with TRIT_ERR_UNSUPPORTED naming it.
 */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tokenizer/vocab.h"

/* Larger than any real vocabulary (the biggest are ~256K), small enough that a hostile id cannot
 * make us allocate gigabytes. */
#define JSON_MAX_VOCAB (1 << 24)
#define JSON_MAX_FILE ((size_t)1 << 30)

static enum trit_status read_file(const char *path, char **data, size_t *len) {
    *data = NULL;
    *len = 0;
    FILE *fp = fopen(path, "rb");
    if (!fp) return trit_error(TRIT_ERR_IO, "tokenizer: cannot open '%s'", path);
    enum trit_status st = TRIT_OK;
    char *buf = NULL;
    size_t n = 0, cap = 0;
    for (;;) {
        if (n == cap) {
            if (cap >= JSON_MAX_FILE) {
                st = trit_error(TRIT_ERR_FORMAT, "tokenizer: '%s' is larger than 1 GiB", path);
                break;
            }
            cap = cap ? cap * 2 : 1 << 20;
            char *p = realloc(buf, cap);
            if (!p) {
                st = trit_error(TRIT_ERR_OUT_OF_MEMORY, "tokenizer: out of memory reading '%s'", path);
                break;
            }
            buf = p;
        }
        size_t got = fread(buf + n, 1, cap - n, fp);
        n += got;
        if (got == 0) {
            if (ferror(fp)) st = trit_error(TRIT_ERR_IO, "tokenizer: read error on '%s'", path);
            break;
        }
    }
    fclose(fp);
    if (st != TRIT_OK) {
        free(buf);
        return st;
    }
    *data = buf;
    *len = n;
    return TRIT_OK;
}

/* A string field, or NULL. */
static const char *get_str(const cJSON *obj, const char *key) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

/* tokenizer_config.json writes special tokens as "text" or {"content": "text", ...}. */
static const char *token_content(const cJSON *obj, const char *key) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (cJSON_IsString(v)) return v->valuestring;
    if (cJSON_IsObject(v)) return get_str(v, "content");
    return NULL;
}

/* An id field: an integral number in [0, JSON_MAX_VOCAB). */
static bool get_id(const cJSON *v, int32_t *id) {
    if (!cJSON_IsNumber(v)) return false;
    double d = v->valuedouble;
    if (!(d >= 0 && d < JSON_MAX_VOCAB) || d != floor(d)) return false;
    *id = (int32_t)d;
    return true;
}

/* ---- pre-tokenizer ---------------------------------------------------------------------------- */

/* What the normalizer and pre-tokenizer say about the model's style. */
struct style {
    bool byte_level; /* a ByteLevel pre-tokenizer: GPT-2 byte mapping */
    bool escape;     /* spaces become "▁" (Replace normalizer or Metaspace) */
    bool prefix;     /* a "▁" goes in front (Prepend normalizer, Metaspace prepend_scheme) */
    bool nfc;        /* an NFC normalizer (Qwen2) */
};

static bool is_mark(const char *s) { return s && strcmp(s, "\xe2\x96\x81") == 0; }

static enum trit_status parse_norm(const cJSON *p, struct style *st, int depth) {
    const char *type = get_str(p, "type");
    if (!type) return trit_error(TRIT_ERR_FORMAT, "tokenizer.json: a normalizer has no type");
    if (strcmp(type, "Sequence") == 0 && depth == 0) {
        const cJSON *it;
        cJSON_ArrayForEach(it, cJSON_GetObjectItemCaseSensitive(p, "normalizers")) TRIT_TRY(parse_norm(it, st, 1));
        return TRIT_OK;
    }
    if (strcmp(type, "NFC") == 0) { /* Qwen2 */
        st->nfc = true;
        return TRIT_OK;
    }
    if (strcmp(type, "Prepend") == 0 && is_mark(get_str(p, "prepend"))) {
        st->prefix = true;
        return TRIT_OK;
    }
    if (strcmp(type, "Replace") == 0 && is_mark(get_str(p, "content"))) {
        const char *from = get_str(cJSON_GetObjectItemCaseSensitive(p, "pattern"), "String");
        if (from && strcmp(from, " ") == 0) {
            st->escape = true;
            return TRIT_OK;
        }
    }
    return trit_error(TRIT_ERR_UNSUPPORTED, "tokenizer.json: normalizer '%s' is not supported", type);
}

static enum trit_status parse_pre(struct trit_tokenizer *tok, const cJSON *p, struct style *st, int depth) {
    const char *type = get_str(p, "type");
    if (!type) return trit_error(TRIT_ERR_FORMAT, "tokenizer.json: a pre_tokenizer has no type");
    if (strcmp(type, "Sequence") == 0) {
        const cJSON *list = cJSON_GetObjectItemCaseSensitive(p, "pretokenizers");
        if (!cJSON_IsArray(list) || depth > 2)
            return trit_error(TRIT_ERR_FORMAT, "tokenizer.json: pre_tokenizer Sequence without a pretokenizers list");
        const cJSON *it;
        cJSON_ArrayForEach(it, list) TRIT_TRY(parse_pre(tok, it, st, depth + 1));
        return TRIT_OK;
    }
    if (strcmp(type, "ByteLevel") == 0) {
        st->byte_level = true;
        if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(p, "add_prefix_space")))
            return trit_error(TRIT_ERR_UNSUPPORTED, "tokenizer.json: ByteLevel pre_tokenizer with add_prefix_space "
                              "true is not supported");
        const cJSON *use_regex = cJSON_GetObjectItemCaseSensitive(p, "use_regex");
        if (!cJSON_IsFalse(use_regex)) /* absent means true */
            return vocab_add_regex(tok, TOK_REGEX_GPT2, strlen(TOK_REGEX_GPT2), false, "ByteLevel use_regex");
        return TRIT_OK;
    }
    if (strcmp(type, "Metaspace") == 0) {
        if (!is_mark(get_str(p, "replacement")))
            return trit_error(TRIT_ERR_UNSUPPORTED, "tokenizer.json: Metaspace with a replacement other than U+2581");
        if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(p, "split")))
            return trit_error(TRIT_ERR_UNSUPPORTED, "tokenizer.json: Metaspace with split true is not supported");
        /* prepend_scheme "always"/"first" (newer files) or add_prefix_space (older ones). "first"
         * is treated as "always": llama.cpp prefixes after special tokens too. */
        const char *scheme = get_str(p, "prepend_scheme");
        st->escape = true;
        st->prefix = scheme ? strcmp(scheme, "never") != 0
                            : !cJSON_IsFalse(cJSON_GetObjectItemCaseSensitive(p, "add_prefix_space"));
        return TRIT_OK;
    }
    if (strcmp(type, "Split") == 0) {
        const char *behavior = get_str(p, "behavior");
        if (!behavior || strcmp(behavior, "Isolated") != 0)
            return trit_error(TRIT_ERR_UNSUPPORTED, "tokenizer.json: Split behavior '%s' is not supported (only Isolated)",
                              behavior ? behavior : "(none)");
        if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(p, "invert")))
            return trit_error(TRIT_ERR_UNSUPPORTED, "tokenizer.json: Split with invert true is not supported");
        const cJSON *pat = cJSON_GetObjectItemCaseSensitive(p, "pattern");
        const char *re = get_str(pat, "Regex"), *lit = get_str(pat, "String");
        if (re) return vocab_add_regex(tok, re, strlen(re), false, "tokenizer.json Split");
        if (lit) return vocab_add_regex(tok, lit, strlen(lit), true, "tokenizer.json Split");
        return trit_error(TRIT_ERR_FORMAT, "tokenizer.json: Split without a Regex or String pattern");
    }
    return trit_error(TRIT_ERR_UNSUPPORTED, "tokenizer.json: pre_tokenizer type '%s' is not supported", type);
}

/* TemplateProcessing "single": [{"SpecialToken": {"id": "<|begin_of_text|>"}}, {"Sequence": ...}]. */
static void parse_post(const cJSON *p, const char **bos, const char **eos, int depth) {
    const char *type = get_str(p, "type");
    if (!type || depth > 2) return;
    if (strcmp(type, "Sequence") == 0) {
        const cJSON *it;
        cJSON_ArrayForEach(it, cJSON_GetObjectItemCaseSensitive(p, "processors")) parse_post(it, bos, eos, depth + 1);
        return;
    }
    if (strcmp(type, "TemplateProcessing") != 0) return;
    const cJSON *single = cJSON_GetObjectItemCaseSensitive(p, "single");
    int n = cJSON_GetArraySize(single);
    if (!cJSON_IsArray(single) || n == 0) return;
    const cJSON *first = cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(single, 0), "SpecialToken");
    const cJSON *last = cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(single, n - 1), "SpecialToken");
    if (first) *bos = get_str(first, "id");
    if (last && n > 1) *eos = get_str(last, "id");
}

/* ---- the loader ------------------------------------------------------------------------------- */

static int32_t find_str(const struct trit_tokenizer *tok, const char *s) {
    return s ? vocab_find(tok, s, strlen(s)) : -1;
}

static int32_t first_found(const struct trit_tokenizer *tok, const char *const *names, size_t n) {
    for (size_t i = 0; i < n; i++) {
        int32_t id = find_str(tok, names[i]);
        if (id >= 0) return id;
    }
    return -1;
}

/* Shared with load_spm.c (vocab.h). */
enum trit_status vocab_apply_tokenizer_config(struct trit_tokenizer *tok, const cJSON *config) {
    if (!config) return TRIT_OK;
    const char *names[4] = {token_content(config, "bos_token"), token_content(config, "eos_token"),
                            token_content(config, "unk_token"), token_content(config, "pad_token")};
    int32_t *dst[4] = {&tok->bos, &tok->eos, &tok->unk, &tok->pad};
    for (int k = 0; k < 4; k++) {
        if (!names[k]) continue;
        int32_t v = find_str(tok, names[k]);
        if (v < 0)
            return trit_error(TRIT_ERR_FORMAT, "tokenizer_config.json: special token '%.64s' is not in the vocabulary",
                              names[k]);
        *dst[k] = v;
    }
    const cJSON *ab = cJSON_GetObjectItemCaseSensitive(config, "add_bos_token");
    const cJSON *ae = cJSON_GetObjectItemCaseSensitive(config, "add_eos_token");
    if (cJSON_IsBool(ab)) tok->add_bos = cJSON_IsTrue(ab);
    if (cJSON_IsBool(ae)) tok->add_eos = cJSON_IsTrue(ae);
    return TRIT_OK;
}

static enum trit_status load(const cJSON *root, const cJSON *config, struct trit_tokenizer **out) {
    if (!cJSON_IsObject(root)) return trit_error(TRIT_ERR_FORMAT, "tokenizer.json: not a JSON object");
    const cJSON *model = cJSON_GetObjectItemCaseSensitive(root, "model");
    if (!cJSON_IsObject(model)) return trit_error(TRIT_ERR_FORMAT, "tokenizer.json: no model object");
    const char *mtype = get_str(model, "type");
    if (mtype && strcmp(mtype, "BPE") != 0)
        return trit_error(TRIT_ERR_UNSUPPORTED, "tokenizer.json: model type '%s' is not supported (only BPE)", mtype);
    const cJSON *vocab = cJSON_GetObjectItemCaseSensitive(model, "vocab");
    const cJSON *merges = cJSON_GetObjectItemCaseSensitive(model, "merges");
    const cJSON *added = cJSON_GetObjectItemCaseSensitive(root, "added_tokens");
    if (!cJSON_IsObject(vocab)) return trit_error(TRIT_ERR_FORMAT, "tokenizer.json: model.vocab is not an object");
    if (merges && !cJSON_IsArray(merges)) return trit_error(TRIT_ERR_FORMAT, "tokenizer.json: model.merges is not a list");
    if (added && !cJSON_IsNull(added) && !cJSON_IsArray(added))
        return trit_error(TRIT_ERR_FORMAT, "tokenizer.json: added_tokens is not a list");
    struct style style = {0};
    const cJSON *norm = cJSON_GetObjectItemCaseSensitive(root, "normalizer");
    if (norm && !cJSON_IsNull(norm)) TRIT_TRY(parse_norm(norm, &style, 0));

    /* size: the largest id + 1 */
    int32_t max_id = -1, id = 0;
    const cJSON *it;
    cJSON_ArrayForEach(it, vocab) {
        if (!get_id(it, &id))
            return trit_error(TRIT_ERR_FORMAT, "tokenizer.json: vocab entry '%.64s' has a bad id", it->string);
        if (id > max_id) max_id = id;
    }
    cJSON_ArrayForEach(it, added) {
        if (!get_id(cJSON_GetObjectItemCaseSensitive(it, "id"), &id) || !get_str(it, "content"))
            return trit_error(TRIT_ERR_FORMAT, "tokenizer.json: an added token has no valid id or content");
        if (id > max_id) max_id = id;
    }

    struct trit_tokenizer *tok;
    TRIT_TRY(vocab_init(max_id + 1, &tok));
    enum trit_status st = TRIT_OK;
#define CHECK(expr)                                                                                \
    do {                                                                                           \
        st = (expr);                                                                               \
        if (st != TRIT_OK) goto fail;                                                              \
    } while (0)
    tok->kind = TRIT_TOKENIZER_BPE;
    cJSON_ArrayForEach(it, vocab) {
        get_id(it, &id);
        CHECK(vocab_set_token(tok, id, it->string, strlen(it->string), 0.0f, TRIT_TOKEN_NORMAL));
    }
    cJSON_ArrayForEach(it, added) {
        get_id(cJSON_GetObjectItemCaseSensitive(it, "id"), &id);
        const char *content = get_str(it, "content");
        bool special = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(it, "special"));
        CHECK(vocab_set_token(tok, id, content, strlen(content), 0.0f,
                              special ? TRIT_TOKEN_CONTROL : TRIT_TOKEN_USER_DEFINED));
        if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(it, "lstrip"))) tok->tokens[id].attr |= TOK_ATTR_LSTRIP;
        if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(it, "rstrip"))) tok->tokens[id].attr |= TOK_ATTR_RSTRIP;
    }
    CHECK(vocab_build_index(tok));

    cJSON_ArrayForEach(it, merges) {
        if (cJSON_IsString(it)) { /* "a b": split at the first space after the first byte */
            const char *s = it->valuestring;
            const char *sp = s[0] ? strchr(s + 1, ' ') : NULL;
            if (!sp) CHECK(trit_error(TRIT_ERR_FORMAT, "tokenizer.json: merge '%.64s' has no space", s));
            CHECK(vocab_add_merge(tok, s, (size_t)(sp - s), sp + 1, strlen(sp + 1)));
        } else if (cJSON_IsArray(it) && cJSON_GetArraySize(it) == 2 && cJSON_IsString(cJSON_GetArrayItem(it, 0)) &&
                   cJSON_IsString(cJSON_GetArrayItem(it, 1))) {
            const char *a = cJSON_GetArrayItem(it, 0)->valuestring, *b = cJSON_GetArrayItem(it, 1)->valuestring;
            CHECK(vocab_add_merge(tok, a, strlen(a), b, strlen(b)));
        } else {
            CHECK(trit_error(TRIT_ERR_FORMAT, "tokenizer.json: a merge is neither \"a b\" nor [\"a\", \"b\"]"));
        }
    }
    tok->ignore_merges = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(model, "ignore_merges"));
    tok->nfc = style.nfc;

    const cJSON *pre = cJSON_GetObjectItemCaseSensitive(root, "pre_tokenizer");
    if (pre && !cJSON_IsNull(pre)) CHECK(parse_pre(tok, pre, &style, 0));
    if (style.byte_level && (style.escape || style.prefix))
        CHECK(trit_error(TRIT_ERR_UNSUPPORTED, "tokenizer.json: both ByteLevel and \"\xe2\x96\x81\" space handling"));
    if (!style.byte_level && !style.escape)
        CHECK(trit_error(TRIT_ERR_UNSUPPORTED, "tokenizer.json: neither byte-level BPE (ByteLevel pre_tokenizer) nor "
                         "SentencePiece-style BPE (\"\xe2\x96\x81\" normalizer or Metaspace)"));
    if (!style.byte_level) {
        if (tok->n_regex > 0)
            CHECK(trit_error(TRIT_ERR_UNSUPPORTED, "tokenizer.json: Split pre-tokenizers with SentencePiece-style BPE"));
        tok->kind = TRIT_TOKENIZER_SPM;
        tok->spm_by_rank = true;
        tok->add_space_prefix = style.prefix;
        bool byte_fallback = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(model, "byte_fallback"));
        for (int32_t k = 0; k < tok->n_vocab && byte_fallback; k++) {
            const struct tok_entry *e = &tok->tokens[k];
            const char *t = vocab_text(tok, k);
            if (e->type == TRIT_TOKEN_NORMAL && e->text_len == 6 && memcmp(t, "<0x", 3) == 0 && t[5] == '>')
                tok->tokens[k].type = TRIT_TOKEN_BYTE;
        }
    }

    /* special tokens: tokenizer_config.json, then the post-processor template, then common names */
    const char *t_bos = NULL, *t_eos = NULL;
    const cJSON *post = cJSON_GetObjectItemCaseSensitive(root, "post_processor");
    if (post && !cJSON_IsNull(post)) parse_post(post, &t_bos, &t_eos, 0);
    tok->add_bos = t_bos && find_str(tok, t_bos) >= 0;
    tok->add_eos = t_eos && find_str(tok, t_eos) >= 0;
    static const char *const bos_names[] = {"<|begin_of_text|>", "<s>", "<|startoftext|>", "<bos>"};
    static const char *const eos_names[] = {"<|end_of_text|>", "</s>", "<|endoftext|>", "<eos>"};
    tok->bos = find_str(tok, t_bos);
    if (tok->bos < 0) tok->bos = first_found(tok, bos_names, sizeof bos_names / sizeof bos_names[0]);
    tok->eos = find_str(tok, t_eos);
    if (tok->eos < 0) tok->eos = first_found(tok, eos_names, sizeof eos_names / sizeof eos_names[0]);
    tok->unk = find_str(tok, get_str(model, "unk_token"));
    if (tok->unk >= 0) tok->tokens[tok->unk].type = TRIT_TOKEN_UNKNOWN;
    CHECK(vocab_apply_tokenizer_config(tok, config));
    CHECK(vocab_finalize(tok));
#undef CHECK
    *out = tok;
    return TRIT_OK;
fail:
    trit_tokenizer_free(tok);
    return st;
}

enum trit_status trit_tokenizer_load_json_memory(const char *json, size_t json_len, const char *config,
                                                 size_t config_len, struct trit_tokenizer **out) {
    if (!out) return trit_error(TRIT_ERR_INVALID_ARG, "trit_tokenizer_load_json_memory: NULL output");
    *out = NULL;
    if (!json) return trit_error(TRIT_ERR_INVALID_ARG, "trit_tokenizer_load_json_memory: NULL text");
    cJSON *root = cJSON_ParseWithLength(json, json_len);
    if (!root) return trit_error(TRIT_ERR_FORMAT, "tokenizer.json: JSON syntax error");
    cJSON *cfg = NULL;
    if (config) {
        cfg = cJSON_ParseWithLength(config, config_len);
        if (!cJSON_IsObject(cfg)) {
            cJSON_Delete(root);
            cJSON_Delete(cfg);
            return trit_error(TRIT_ERR_FORMAT, "tokenizer_config.json: not a JSON object");
        }
    }
    enum trit_status st = load(root, cfg, out);
    cJSON_Delete(root);
    cJSON_Delete(cfg);
    return st;
}

enum trit_status trit_tokenizer_load_json(const char *json_path, const char *config_path,
                                          struct trit_tokenizer **out) {
    if (!out) return trit_error(TRIT_ERR_INVALID_ARG, "trit_tokenizer_load_json: NULL output");
    *out = NULL;
    if (!json_path) return trit_error(TRIT_ERR_INVALID_ARG, "trit_tokenizer_load_json: NULL path");
    char *json = NULL, *config = NULL;
    size_t json_len = 0, config_len = 0;
    TRIT_TRY(read_file(json_path, &json, &json_len));
    if (config_path) {
        enum trit_status st = read_file(config_path, &config, &config_len);
        if (st != TRIT_OK) {
            free(json);
            return st;
        }
    }
    enum trit_status st = trit_tokenizer_load_json_memory(json, json_len, config, config_len, out);
    free(json);
    free(config);
    return st;
}
