/*
 * hf.c: Hugging Face model folders: config.json, single-file and sharded safetensors weights with
 * one merged tensor lookup, tokenizer file paths and tokenizer_config.json's chat fields.
 * Layout and contracts: hf.h. Tests: tests/test_hf_folder.c (fixtures in tests/data/hf).
 */
#include "io/hf.h"

#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* ---- small helpers ------------------------------------------------------------------------ */

/* Names quoted from files are bounded so the rest of a message survives. */
#define HF_NAME_FMT "'%.160s'"

static char *hf_strdup(const char *s) {
    size_t n = strlen(s) + 1;
    char *copy = trit_alloc(n);
    if (copy) memcpy(copy, s, n);
    return copy;
}

/* dir + "/" + name, without doubling a trailing slash. NULL when out of memory. */
static char *hf_join(const char *dir, const char *name) {
    size_t nd = strlen(dir), nn = strlen(name);
    bool slash = nd > 0 && dir[nd - 1] != '/';
    char *path = trit_alloc(nd + (slash ? 1 : 0) + nn + 1);
    if (!path) return NULL;
    memcpy(path, dir, nd);
    if (slash) path[nd++] = '/';
    memcpy(path + nd, name, nn + 1);
    return path;
}

static bool hf_is_file(const char *path) {
    struct stat sb;
    return stat(path, &sb) == 0 && S_ISREG(sb.st_mode);
}

/* *out = dir/name when that file exists, else NULL. Fails only when out of memory. */
static enum trit_status hf_optional_path(const char *dir, const char *name, char **out) {
    char *path = hf_join(dir, name);
    if (!path) return trit_error(TRIT_ERR_OUT_OF_MEMORY, "%s: out of memory", dir);
    if (hf_is_file(path)) {
        *out = path;
    } else {
        trit_free(path);
        *out = NULL;
    }
    return TRIT_OK;
}

bool hf_is_folder(const char *path) {
    struct stat sb;
    if (!path || stat(path, &sb) != 0 || !S_ISDIR(sb.st_mode)) return false;
    char *config = hf_join(path, "config.json");
    bool ok = config && hf_is_file(config);
    trit_free(config);
    return ok;
}

/* ---- config.json -------------------------------------------------------------------------- */

static enum trit_status hf_config_check(struct json_doc *doc) {
    if (!cJSON_IsObject(doc->root)) {
        enum trit_status st = trit_error(TRIT_ERR_FORMAT, "%s: the top level is a JSON %s, expected an object",
                                         doc->name, json_type_name(doc->root));
        json_doc_free(doc);
        return st;
    }
    return TRIT_OK;
}

enum trit_status hf_config_parse(const char *text, size_t len, const char *name, struct json_doc *out) {
    TRIT_TRY(json_doc_parse(text, len, name ? name : "config.json", out));
    return hf_config_check(out);
}

enum trit_status hf_config_load(const char *path, struct json_doc *out) {
    TRIT_TRY(json_doc_load(path, HF_CONFIG_MAX_BYTES, out));
    return hf_config_check(out);
}

/* ---- weights ------------------------------------------------------------------------------ */

/* One "weight_map" entry of the index. */
struct hf_index_entry {
    const char *tensor; /* points into the index's JSON tree */
    const char *shard;
    int64_t shard_index; /* into the sorted unique shard names */
};

static int hf_cmp_str_ptr(const void *pa, const void *pb) {
    const char *const *a = pa, *const *b = pb;
    return strcmp(*a, *b);
}

static int hf_cmp_entry_tensor(const void *pa, const void *pb) {
    const struct hf_index_entry *a = pa, *b = pb;
    return strcmp(a->tensor, b->tensor);
}

static int hf_cmp_ref(const void *pa, const void *pb) {
    const struct hf_tensor_ref *a = pa, *b = pb;
    return strcmp(a->tensor->name, b->tensor->name);
}

/* A shard name from the index must name a file in this folder: not empty, no directory parts. */
static bool hf_shard_name_ok(const char *s) {
    return s[0] != '\0' && !strchr(s, '/') && !strchr(s, '\\') && !strstr(s, "..");
}

/* Opens shards[0..n) from the sorted unique names. */
static enum trit_status hf_open_shards(struct hf_folder *f, const char *const *names, int64_t n) {
    f->shards = trit_alloc((size_t)n * sizeof *f->shards);
    if (!f->shards) return trit_error(TRIT_ERR_OUT_OF_MEMORY, "%s: out of memory for %lld shards", f->dir, (long long)n);
    for (int64_t i = 0; i < n; i++) {
        char *path = hf_join(f->dir, names[i]);
        if (!path) return trit_error(TRIT_ERR_OUT_OF_MEMORY, "%s: out of memory", f->dir);
        enum trit_status st = st_open(path, &f->shards[i]);
        trit_free(path);
        if (st != TRIT_OK) return st;
        f->n_shards = i + 1;
    }
    return TRIT_OK;
}

/* Reads model.safetensors.index.json, opens each shard it names once and checks that every listed
 * tensor is in its shard. */
static enum trit_status hf_open_index(struct hf_folder *f, const char *index_path) {
    struct json_doc idx;
    TRIT_TRY(json_doc_load(index_path, HF_INDEX_MAX_BYTES, &idx));
    struct hf_index_entry *entries = NULL;
    const char **shard_names = NULL;
    enum trit_status st = TRIT_OK;

    const cJSON *map = cJSON_IsObject(idx.root) ? json_member(idx.root, "weight_map") : NULL;
    if (!cJSON_IsObject(map)) {
        if (!map) st = trit_error(TRIT_ERR_FORMAT, "%s: 'weight_map' is missing", index_path);
        else st = trit_error(TRIT_ERR_FORMAT, "%s: 'weight_map' is a JSON %s, expected an object of tensor name -> "
                             "shard file", index_path, json_type_name(map));
        goto done;
    }
    int64_t n = cJSON_GetArraySize(map);
    if (n == 0) {
        st = trit_error(TRIT_ERR_FORMAT, "%s: 'weight_map' is empty", index_path);
        goto done;
    }
    entries = trit_alloc((size_t)n * sizeof *entries);
    shard_names = trit_alloc((size_t)n * sizeof *shard_names);
    if (!entries || !shard_names) {
        st = trit_error(TRIT_ERR_OUT_OF_MEMORY, "%s: out of memory for %lld entries", index_path, (long long)n);
        goto done;
    }
    int64_t i = 0;
    for (const cJSON *c = map->child; c; c = c->next, i++) {
        if (!cJSON_IsString(c) || !c->string) {
            st = trit_error(TRIT_ERR_FORMAT, "%s: weight_map[" HF_NAME_FMT "] is a JSON %s, expected a shard file name",
                            index_path, c->string ? c->string : "", json_type_name(c));
            goto done;
        }
        if (!hf_shard_name_ok(c->valuestring)) {
            st = trit_error(TRIT_ERR_FORMAT,
                            "%s: weight_map[" HF_NAME_FMT "] = " HF_NAME_FMT
                            " is not a file name in this folder (empty, or contains '/', '\\' or '..')",
                            index_path, c->string, c->valuestring);
            goto done;
        }
        entries[i] = (struct hf_index_entry){.tensor = c->string, .shard = c->valuestring};
        shard_names[i] = c->valuestring;
    }

    /* Python's json.load would silently keep the last of two entries for one tensor; a listing
     * that disagrees with itself is refused instead. */
    qsort(entries, (size_t)n, sizeof *entries, hf_cmp_entry_tensor);
    for (i = 1; i < n; i++) {
        if (strcmp(entries[i - 1].tensor, entries[i].tensor) == 0) {
            st = trit_error(TRIT_ERR_FORMAT, "%s: tensor " HF_NAME_FMT " is listed twice in weight_map", index_path,
                            entries[i].tensor);
            goto done;
        }
    }

    /* Unique shard names, sorted, so each file is opened once. */
    qsort(shard_names, (size_t)n, sizeof *shard_names, hf_cmp_str_ptr);
    int64_t n_unique = 0;
    for (i = 0; i < n; i++) {
        if (n_unique == 0 || strcmp(shard_names[n_unique - 1], shard_names[i]) != 0)
            shard_names[n_unique++] = shard_names[i];
    }
    st = hf_open_shards(f, shard_names, n_unique);
    if (st != TRIT_OK) goto done;

    for (i = 0; i < n; i++) {
        const char **hit = bsearch(&entries[i].shard, shard_names, (size_t)n_unique, sizeof *shard_names,
                                   hf_cmp_str_ptr);
        if (!hit) {
            st = trit_error(TRIT_ERR_INTERNAL, "%s: shard " HF_NAME_FMT " lost", index_path, entries[i].shard);
            goto done;
        }
        const struct st_file *shard = &f->shards[hit - shard_names];
        if (!st_find(shard, entries[i].tensor)) {
            st = trit_error(TRIT_ERR_FORMAT, "%s: tensor " HF_NAME_FMT " is listed for shard " HF_NAME_FMT
                            ", which does not contain it",
                            index_path, entries[i].tensor, entries[i].shard);
            goto done;
        }
    }
    f->sharded = true;

done:
    trit_free(entries);
    trit_free(shard_names);
    json_doc_free(&idx);
    return st;
}

/* The merged lookup: every tensor of every shard, sorted by name; a name in two shards is an error. */
static enum trit_status hf_merge(struct hf_folder *f) {
    int64_t total = 0;
    for (int64_t s = 0; s < f->n_shards; s++) total += f->shards[s].n_tensors;
    f->tensors = trit_alloc((size_t)total * sizeof *f->tensors);
    if (!f->tensors) return trit_error(TRIT_ERR_OUT_OF_MEMORY, "%s: out of memory for %lld tensors", f->dir, (long long)total);
    for (int64_t s = 0; s < f->n_shards; s++) {
        for (int64_t i = 0; i < f->shards[s].n_tensors; i++)
            f->tensors[f->n_tensors++] = (struct hf_tensor_ref){.tensor = &f->shards[s].tensors[i], .shard = s};
    }
    qsort(f->tensors, (size_t)f->n_tensors, sizeof *f->tensors, hf_cmp_ref);
    for (int64_t i = 1; i < f->n_tensors; i++) {
        const struct hf_tensor_ref *a = &f->tensors[i - 1], *b = &f->tensors[i];
        if (strcmp(a->tensor->name, b->tensor->name) == 0)
            return trit_error(TRIT_ERR_FORMAT, "%s: tensor " HF_NAME_FMT " is in two shards: %s and %s", f->dir,
                              a->tensor->name, f->shards[a->shard].label, f->shards[b->shard].label);
    }
    return TRIT_OK;
}

static enum trit_status hf_open_weights(struct hf_folder *f) {
    char *single = hf_join(f->dir, "model.safetensors");
    char *index = hf_join(f->dir, "model.safetensors.index.json");
    char *bin = hf_join(f->dir, "pytorch_model.bin");
    enum trit_status st;
    if (!single || !index || !bin) {
        st = trit_error(TRIT_ERR_OUT_OF_MEMORY, "%s: out of memory", f->dir);
    } else if (hf_is_file(single)) {
        /* transformers looks for the single file first, and so do we. */
        const char *name = "model.safetensors";
        st = hf_open_shards(f, &name, 1);
    } else if (hf_is_file(index)) {
        st = hf_open_index(f, index);
    } else if (hf_is_file(bin)) {
        st = trit_error(TRIT_ERR_UNSUPPORTED,
                        "%s: holds pytorch_model.bin (pickle) weights; trit reads safetensors only", f->dir);
    } else {
        st = trit_error(TRIT_ERR_NOT_FOUND, "%s: no model.safetensors or model.safetensors.index.json", f->dir);
    }
    trit_free(single);
    trit_free(index);
    trit_free(bin);
    if (st == TRIT_OK) st = hf_merge(f);
    return st;
}

/* ---- folder ------------------------------------------------------------------------------- */

enum trit_status hf_folder_open(const char *dir, struct hf_folder *out) {
    if (!dir || !out) return trit_error(TRIT_ERR_INVALID_ARG, "hf_folder_open: NULL argument");
    memset(out, 0, sizeof *out);
    struct stat sb;
    if (stat(dir, &sb) != 0 || !S_ISDIR(sb.st_mode))
        return trit_error(TRIT_ERR_NOT_FOUND, "%s: not a directory", dir);

    enum trit_status st = TRIT_OK;
    out->dir = hf_strdup(dir);
    char *config = hf_join(dir, "config.json");
    if (!out->dir || !config) {
        st = trit_error(TRIT_ERR_OUT_OF_MEMORY, "%s: out of memory", dir);
        goto fail;
    }
    if (!hf_is_file(config)) {
        st = trit_error(TRIT_ERR_NOT_FOUND, "%s: no config.json: not a Hugging Face model folder", dir);
        goto fail;
    }
    st = hf_config_load(config, &out->config);
    if (st != TRIT_OK) goto fail;
    if ((st = hf_optional_path(dir, "tokenizer.json", &out->tokenizer_path)) != TRIT_OK ||
        (st = hf_optional_path(dir, "tokenizer_config.json", &out->tokenizer_config_path)) != TRIT_OK ||
        (st = hf_optional_path(dir, "generation_config.json", &out->generation_config_path)) != TRIT_OK ||
        (st = hf_optional_path(dir, "chat_template.jinja", &out->chat_template_path)) != TRIT_OK)
        goto fail;
    st = hf_open_weights(out);
    if (st != TRIT_OK) goto fail;
    trit_free(config);
    return TRIT_OK;

fail:
    trit_free(config);
    hf_folder_close(out);
    return st;
}

void hf_folder_close(struct hf_folder *f) {
    if (!f) return;
    for (int64_t i = 0; i < f->n_shards; i++) st_close(&f->shards[i]);
    trit_free(f->shards);
    trit_free(f->tensors);
    json_doc_free(&f->config);
    trit_free(f->tokenizer_path);
    trit_free(f->tokenizer_config_path);
    trit_free(f->generation_config_path);
    trit_free(f->chat_template_path);
    trit_free(f->dir);
    memset(f, 0, sizeof *f);
}

const struct st_tensor *hf_find(const struct hf_folder *f, const char *name) {
    if (!f || !name) return NULL;
    int64_t lo = 0, hi = f->n_tensors; /* search [lo, hi) */
    while (lo < hi) {
        int64_t mid = lo + (hi - lo) / 2;
        int c = strcmp(name, f->tensors[mid].tensor->name);
        if (c == 0) return f->tensors[mid].tensor;
        if (c < 0) hi = mid;
        else lo = mid + 1;
    }
    return NULL;
}

enum trit_status hf_get(const struct hf_folder *f, const char *name, const struct st_tensor **out) {
    if (!f || !name || !out) return trit_error(TRIT_ERR_INVALID_ARG, "hf_get: NULL argument");
    *out = hf_find(f, name);
    if (!*out) return trit_error(TRIT_ERR_NOT_FOUND, "%s: no tensor " HF_NAME_FMT " in the weights", f->dir, name);
    return TRIT_OK;
}

/* ---- tokenizer_config.json ---------------------------------------------------------------- */

/* A special token: a string, or an AddedToken object {"content": "...", ...}; NULL when absent. */
static enum trit_status hf_token_field(const struct json_doc *doc, const char *key, char **out) {
    const cJSON *node;
    *out = NULL;
    TRIT_TRY(json_find(doc, key, &node));
    if (!node) return TRIT_OK;
    if (cJSON_IsObject(node)) node = json_member(node, "content");
    if (!cJSON_IsString(node))
        return trit_error(TRIT_ERR_FORMAT, "%s: '%s' must be a string or an object with a string 'content'",
                          doc->name, key);
    *out = hf_strdup(node->valuestring);
    if (!*out) return trit_error(TRIT_ERR_OUT_OF_MEMORY, "%s: out of memory", doc->name);
    return TRIT_OK;
}

/* chat_template: a string, or [{"name": "default", "template": "..."}, {"name": "tool_use", ...}]. */
static enum trit_status hf_chat_template_field(const struct json_doc *doc, char **out) {
    const cJSON *node;
    *out = NULL;
    TRIT_TRY(json_find(doc, "chat_template", &node));
    if (!node) return TRIT_OK;
    if (cJSON_IsArray(node)) {
        const cJSON *chosen = NULL;
        for (const cJSON *c = node->child; c; c = c->next) {
            const cJSON *name = json_member(c, "name"), *text = json_member(c, "template");
            if (!cJSON_IsObject(c) || !cJSON_IsString(name) || !cJSON_IsString(text))
                return trit_error(TRIT_ERR_FORMAT,
                                  "%s: 'chat_template' list entries must be objects with string 'name' and 'template'",
                                  doc->name);
            if (strcmp(name->valuestring, "default") == 0) chosen = text;
        }
        if (!chosen) return TRIT_OK; /* only named templates: none applies by default */
        node = chosen;
    } else if (!cJSON_IsString(node)) {
        return trit_error(TRIT_ERR_FORMAT, "%s: 'chat_template' is a JSON %s, expected a string or a list", doc->name,
                          json_type_name(node));
    }
    *out = hf_strdup(node->valuestring);
    if (!*out) return trit_error(TRIT_ERR_OUT_OF_MEMORY, "%s: out of memory", doc->name);
    return TRIT_OK;
}

/* Presence and value of an optional bool. */
static enum trit_status hf_opt_bool(const struct json_doc *doc, const char *key, bool *has, bool *value) {
    const cJSON *node;
    TRIT_TRY(json_find(doc, key, &node));
    *has = node != NULL;
    return json_get_bool(doc, key, false, value);
}

enum trit_status hf_tokenizer_config_parse(const char *text, size_t len, const char *name,
                                           struct hf_tokenizer_config *out) {
    if (!out) return trit_error(TRIT_ERR_INVALID_ARG, "hf_tokenizer_config_parse: NULL argument");
    memset(out, 0, sizeof *out);
    struct json_doc doc;
    TRIT_TRY(json_doc_parse(text, len, name ? name : "tokenizer_config.json", &doc));
    enum trit_status st;
    if (!cJSON_IsObject(doc.root)) {
        st = trit_error(TRIT_ERR_FORMAT, "%s: the top level is a JSON %s, expected an object", doc.name,
                        json_type_name(doc.root));
    } else if ((st = hf_chat_template_field(&doc, &out->chat_template)) == TRIT_OK &&
               (st = hf_token_field(&doc, "bos_token", &out->bos_token)) == TRIT_OK &&
               (st = hf_token_field(&doc, "eos_token", &out->eos_token)) == TRIT_OK &&
               (st = hf_opt_bool(&doc, "add_bos_token", &out->has_add_bos_token, &out->add_bos_token)) == TRIT_OK) {
        st = hf_opt_bool(&doc, "add_eos_token", &out->has_add_eos_token, &out->add_eos_token);
    }
    json_doc_free(&doc);
    if (st != TRIT_OK) hf_tokenizer_config_free(out);
    return st;
}

enum trit_status hf_tokenizer_config_load(const char *path, struct hf_tokenizer_config *out) {
    if (!out) return trit_error(TRIT_ERR_INVALID_ARG, "hf_tokenizer_config_load: NULL argument");
    memset(out, 0, sizeof *out);
    char *text;
    size_t len;
    TRIT_TRY(json_read_file(path, HF_TOKENIZER_CONFIG_MAX_BYTES, &text, &len));
    enum trit_status st = hf_tokenizer_config_parse(text, len, path, out);
    trit_free(text);
    return st;
}

enum trit_status hf_folder_tokenizer_config(const struct hf_folder *f, struct hf_tokenizer_config *out) {
    if (!f || !out) return trit_error(TRIT_ERR_INVALID_ARG, "hf_folder_tokenizer_config: NULL argument");
    memset(out, 0, sizeof *out);
    if (f->tokenizer_config_path) TRIT_TRY(hf_tokenizer_config_load(f->tokenizer_config_path, out));
    if (f->chat_template_path) {
        char *text;
        size_t len;
        enum trit_status st = json_read_file(f->chat_template_path, HF_TOKENIZER_CONFIG_MAX_BYTES, &text, &len);
        if (st != TRIT_OK) {
            hf_tokenizer_config_free(out);
            return st;
        }
        trit_free(out->chat_template);
        out->chat_template = text;
    }
    return TRIT_OK;
}

void hf_tokenizer_config_free(struct hf_tokenizer_config *c) {
    if (!c) return;
    trit_free(c->chat_template);
    trit_free(c->bos_token);
    trit_free(c->eos_token);
    memset(c, 0, sizeof *c);
}
