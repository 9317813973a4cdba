/*
 * hf.h: Hugging Face model folders: config.json, the safetensors weights (one file, or shards
 * listed in model.safetensors.index.json, presented as one tensor lookup), and where the
 * tokenizer files are. Also the few tokenizer_config.json fields the chat command needs.
 *
 * A folder, as transformers lays it out (the hub cache's snapshots/<rev>/ works too: its files are
 * symlinks, which are followed):
 *     config.json                       required
 *     model.safetensors                 the weights, or, when that file is absent,
 *     model.safetensors.index.json      {"metadata": {...}, "weight_map": {tensor: shard file}}
 *     model-00001-of-0000N.safetensors  the shards it names
 *     tokenizer.json, tokenizer_config.json, generation_config.json, chat_template.jinja  optional
 *
 * Reading config.json: hf_config_load/hf_config_parse, then the json_get_* getters of json.h
 * (defaults for missing keys, TRIT_ERR_FORMAT with the key's path for a wrong type, the last of
 * repeated keys wins as in Python). The model loader and the fuzzer share this path.
 */
#ifndef TRIT_HF_H
#define TRIT_HF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/core.h"
#include "io/json.h"
#include "io/safetensors.h"

/* Size caps for the JSON files (hostile input; the real ones are 1 KB, 100 KB and 50 KB). */
#define HF_CONFIG_MAX_BYTES ((size_t)4 << 20)
#define HF_INDEX_MAX_BYTES ((size_t)64 << 20)
#define HF_TOKENIZER_CONFIG_MAX_BYTES ((size_t)16 << 20)

/* One entry of the merged lookup. */
struct hf_tensor_ref {
    const struct st_tensor *tensor; /* inside shards[shard]'s map */
    int64_t shard;
};

struct hf_folder {
    char *dir;                      /* as given, owned */
    struct json_doc config;         /* config.json; its root is an object */
    char *tokenizer_path;           /* tokenizer.json, or NULL when absent */
    char *tokenizer_config_path;    /* tokenizer_config.json, or NULL */
    char *generation_config_path;   /* generation_config.json, or NULL */
    char *chat_template_path;       /* chat_template.jinja, or NULL */
    bool sharded;                   /* the weights came through model.safetensors.index.json */
    int64_t n_shards;               /* 1 for model.safetensors */
    struct st_file *shards;         /* each shard file opened once; shards[i].label is its path */
    int64_t n_tensors;
    struct hf_tensor_ref *tensors;  /* every tensor of every shard, sorted by name */
};

/* True when `path` is a directory that holds a config.json (the CLI's test for "HF folder, not a
 * GGUF file"). Never fails; hf_folder_open says what is wrong with a folder that is not loadable. */
bool hf_is_folder(const char *path);

/* Opens a model folder: parses config.json, maps the weights and validates the shard index
 * (shard names contain no '/', '\\' or "..", every listed tensor is in its shard, no tensor is in
 * two shards, no name is listed twice). TRIT_ERR_NOT_FOUND when config.json or the weights are
 * missing. On failure *out is zeroed. Release with hf_folder_close. */
enum trit_status hf_folder_open(const char *dir, struct hf_folder *out);
/* Unmaps every shard and frees everything; accepts NULL and a zeroed struct. */
void hf_folder_close(struct hf_folder *f);

/* Merged lookup across shards by exact name; NULL when absent. */
const struct st_tensor *hf_find(const struct hf_folder *f, const char *name);
/* hf_find, with TRIT_ERR_NOT_FOUND "<dir>: no tensor '<name>' in the weights" when absent. */
enum trit_status hf_get(const struct hf_folder *f, const char *name, const struct st_tensor **out);

/* config.json: JSON whose top level is an object (TRIT_ERR_FORMAT otherwise). hf_config_load caps
 * the file at HF_CONFIG_MAX_BYTES. Release with json_doc_free. */
enum trit_status hf_config_parse(const char *text, size_t len, const char *name, struct json_doc *out);
enum trit_status hf_config_load(const char *path, struct json_doc *out);

/* The tokenizer_config.json fields the chat command needs. Strings are owned (NULL when absent or
 * null). bos_token / eos_token may be a string or an AddedToken object {"content": ...};
 * chat_template may be a string or a list of {"name", "template"}, from which "default" is taken. */
struct hf_tokenizer_config {
    char *chat_template;
    char *bos_token;
    char *eos_token;
    bool has_add_bos_token; /* add_bos_token was present (and not null) */
    bool add_bos_token;
    bool has_add_eos_token;
    bool add_eos_token;
};
enum trit_status hf_tokenizer_config_parse(const char *text, size_t len, const char *name,
                                           struct hf_tokenizer_config *out);
enum trit_status hf_tokenizer_config_load(const char *path, struct hf_tokenizer_config *out);
/* A folder's tokenizer settings: tokenizer_config.json when present, and chat_template.jinja when
 * present replaces its chat_template (as transformers does). Both absent: TRIT_OK, all fields empty. */
enum trit_status hf_folder_tokenizer_config(const struct hf_folder *f, struct hf_tokenizer_config *out);
/* Frees the strings; accepts NULL and a zeroed struct. */
void hf_tokenizer_config_free(struct hf_tokenizer_config *c);

#endif /* TRIT_HF_H */
