/*
 * tokenizer.c: loading by path (GGUF file, tokenizer.json, tokenizer.model, or a Hugging Face
 * folder) and the property getters.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "io/gguf.h"
#include "tokenizer/vocab.h"

static bool file_exists(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

/* dir + "/" + name into buf; false when it does not fit. */
static bool join(char *buf, size_t cap, const char *dir, size_t dir_len, const char *name) {
    int n = snprintf(buf, cap, "%.*s%s%s", (int)dir_len, dir, dir_len && dir[dir_len - 1] != '/' ? "/" : "", name);
    return n >= 0 && (size_t)n < cap;
}

/* A tokenizer.model with the added_tokens.json and tokenizer_config.json of its folder (dir_len
 * bytes of `dir`), when there. */
static enum trit_status load_spm_in(const char *model, const char *dir, size_t dir_len, struct trit_tokenizer **out) {
    char added[4096], config[4096];
    if (!join(added, sizeof added, dir, dir_len, "added_tokens.json") ||
        !join(config, sizeof config, dir, dir_len, "tokenizer_config.json"))
        return trit_error(TRIT_ERR_INVALID_ARG, "tokenizer: path too long: '%s'", model);
    return trit_tokenizer_load_spm(model, file_exists(added) ? added : NULL, file_exists(config) ? config : NULL, out);
}

enum trit_status trit_tokenizer_load(const char *path, struct trit_tokenizer **out) {
    if (!out) return trit_error(TRIT_ERR_INVALID_ARG, "trit_tokenizer_load: NULL output");
    *out = NULL;
    if (!path) return trit_error(TRIT_ERR_INVALID_ARG, "trit_tokenizer_load: NULL path");
    struct stat st;
    if (stat(path, &st) != 0) return trit_error(TRIT_ERR_IO, "tokenizer: cannot open '%s'", path);
    char json[4096], config[4096];
    if (S_ISDIR(st.st_mode)) {
        /* tokenizer.json when there (transformers prefers it too), else a SentencePiece tokenizer.model */
        size_t n = strlen(path);
        char model[4096];
        if (!join(json, sizeof json, path, n, "tokenizer.json") ||
            !join(config, sizeof config, path, n, "tokenizer_config.json") ||
            !join(model, sizeof model, path, n, "tokenizer.model"))
            return trit_error(TRIT_ERR_INVALID_ARG, "tokenizer: path too long: '%s'", path);
        if (file_exists(json)) return trit_tokenizer_load_json(json, file_exists(config) ? config : NULL, out);
        if (file_exists(model)) return load_spm_in(model, path, n, out);
        return trit_error(TRIT_ERR_NOT_FOUND, "tokenizer: folder '%s' has neither tokenizer.json nor tokenizer.model",
                          path);
    }

    /* a file: GGUF by its magic, a SentencePiece model by its name (protobuf has no magic), else
     * tokenizer.json; the files of a Hugging Face folder beside the last two are read with them */
    FILE *fp = fopen(path, "rb");
    if (!fp) return trit_error(TRIT_ERR_IO, "tokenizer: cannot open '%s'", path);
    char magic[4] = {0};
    size_t got = fread(magic, 1, 4, fp);
    fclose(fp);
    if (got == 4 && memcmp(magic, "GGUF", 4) == 0) {
        struct gguf_file f;
        memset(&f, 0, sizeof f);
        TRIT_TRY(gguf_open(path, &f));
        enum trit_status s = trit_tokenizer_load_gguf(&f, out);
        gguf_close(&f);
        return s;
    }
    const char *slash = strrchr(path, '/');
    size_t dir_len = slash ? (size_t)(slash - path) + 1 : 0;
    size_t n = strlen(path);
    if (n >= 6 && strcmp(path + n - 6, ".model") == 0) return load_spm_in(path, path, dir_len, out);
    if (!join(config, sizeof config, path, dir_len, "tokenizer_config.json"))
        return trit_error(TRIT_ERR_INVALID_ARG, "tokenizer: path too long: '%s'", path);
    return trit_tokenizer_load_json(path, file_exists(config) ? config : NULL, out);
}

/* ---- properties ------------------------------------------------------------------------------- */

enum trit_tokenizer_kind trit_tokenizer_kind(const struct trit_tokenizer *tok) { return tok->kind; }
int32_t trit_tokenizer_n_vocab(const struct trit_tokenizer *tok) { return tok->n_vocab; }
int32_t trit_tokenizer_bos(const struct trit_tokenizer *tok) { return tok->bos; }
int32_t trit_tokenizer_eos(const struct trit_tokenizer *tok) { return tok->eos; }
int32_t trit_tokenizer_eot(const struct trit_tokenizer *tok) { return tok->eot; }
int32_t trit_tokenizer_unk(const struct trit_tokenizer *tok) { return tok->unk; }
int32_t trit_tokenizer_pad(const struct trit_tokenizer *tok) { return tok->pad; }
bool trit_tokenizer_add_bos(const struct trit_tokenizer *tok) { return tok->add_bos; }
bool trit_tokenizer_add_eos(const struct trit_tokenizer *tok) { return tok->add_eos; }
bool trit_tokenizer_add_space_prefix(const struct trit_tokenizer *tok) { return tok->add_space_prefix; }
size_t trit_tokenizer_max_piece_bytes(const struct trit_tokenizer *tok) { return tok->max_piece; }

bool trit_tokenizer_is_eog(const struct trit_tokenizer *tok, int32_t id) {
    if (id < 0 || id >= tok->n_vocab) return false;
    for (int32_t i = 0; i < tok->n_eog; i++)
        if (tok->eog[i] == id) return true;
    return false;
}

enum trit_token_type trit_tokenizer_token_type(const struct trit_tokenizer *tok, int32_t id) {
    if (id < 0 || id >= tok->n_vocab) return TRIT_TOKEN_UNDEFINED;
    return (enum trit_token_type)tok->tokens[id].type;
}

float trit_tokenizer_token_score(const struct trit_tokenizer *tok, int32_t id) {
    return id < 0 || id >= tok->n_vocab ? 0.0f : tok->tokens[id].score;
}

const char *trit_tokenizer_token_text(const struct trit_tokenizer *tok, int32_t id, size_t *len) {
    *len = 0;
    if (id < 0 || id >= tok->n_vocab) return NULL;
    *len = tok->tokens[id].text_len;
    return vocab_text(tok, id);
}

int32_t trit_tokenizer_find(const struct trit_tokenizer *tok, const char *text, size_t len) {
    return text ? vocab_find(tok, text, len) : -1;
}
