/*
 * load_gguf.c: a tokenizer from a GGUF file's tokenizer.ggml.* keys (docs/formats.md
 * section 3), through the GGUF reader of host/io/gguf.h.
 *
 *   tokenizer.ggml.model   "gpt2" (byte-level BPE) or "llama" (SentencePiece BPE); others refused
 *   tokenizer.ggml.pre     BPE only: the pre-tokenizer by name (vocab_set_pre_name); unknown or
 *                          missing is refused rather than guessed
 *   tokenizer.ggml.tokens / scores / token_type / merges
 *   tokenizer.ggml.{bos,eos,unknown,padding,eot,eom}_token_id, add_bos_token, add_eos_token,
 *   add_space_prefix
 * Defaults as llama.cpp: SPM bos 1, eos 2, unk 0, add_bos and add_space_prefix on; the Llama 3 family
 * of BPE pre-tokenizers turns add_bos on. The keys override them.
 */
#include <string.h>

#include "io/gguf.h"
#include "tokenizer/vocab.h"

#define GGUF_MAX_VOCAB (1 << 24) /* as in load_json.c: far above real vocabularies */

/* An array key of the given element type and (when n != 0) length; NULL + NOT_FOUND when absent. */
static enum trit_status get_array(const struct gguf_file *f, const char *key, enum gguf_type elem, uint64_t n,
                                  const struct gguf_kv **out) {
    *out = gguf_find_kv(f, key);
    if (!*out) return TRIT_ERR_NOT_FOUND;
    if ((*out)->type != GGUF_TYPE_ARRAY || (*out)->arr_type != elem)
        return trit_error(TRIT_ERR_FORMAT, "gguf: %s is not an array of type %d", key, (int)elem);
    if (n && (*out)->arr_n != n)
        return trit_error(TRIT_ERR_FORMAT, "gguf: %s has %llu entries, the vocabulary %llu", key,
                          (unsigned long long)(*out)->arr_n, (unsigned long long)n);
    return TRIT_OK;
}

/* An optional token id key into *id (left as is when absent). */
static enum trit_status get_id(const struct gguf_file *f, const char *key, int32_t n_vocab, int32_t *id) {
    uint64_t v;
    enum trit_status st = gguf_get_u64(f, key, &v);
    if (st == TRIT_ERR_NOT_FOUND) return TRIT_OK;
    if (st != TRIT_OK) return st;
    if (v >= (uint64_t)n_vocab)
        return trit_error(TRIT_ERR_FORMAT, "gguf: %s = %llu is outside the vocabulary of %d", key,
                          (unsigned long long)v, n_vocab);
    *id = (int32_t)v;
    return TRIT_OK;
}

static enum trit_status get_flag(const struct gguf_file *f, const char *key, bool *flag) {
    bool v;
    enum trit_status st = gguf_get_bool(f, key, &v);
    if (st == TRIT_ERR_NOT_FOUND) return TRIT_OK;
    if (st != TRIT_OK) return st;
    *flag = v;
    return TRIT_OK;
}

static enum trit_status load(const struct gguf_file *f, struct trit_tokenizer *tok, int32_t n) {
    const struct gguf_kv *tokens, *scores, *types, *merges;
    TRIT_TRY(get_array(f, "tokenizer.ggml.tokens", GGUF_TYPE_STRING, 0, &tokens));
    enum trit_status st = get_array(f, "tokenizer.ggml.scores", GGUF_TYPE_FLOAT32, (uint64_t)n, &scores);
    if (st != TRIT_OK && st != TRIT_ERR_NOT_FOUND) return st;
    st = get_array(f, "tokenizer.ggml.token_type", GGUF_TYPE_INT32, (uint64_t)n, &types);
    if (st != TRIT_OK && st != TRIT_ERR_NOT_FOUND) return st;

    for (int32_t id = 0; id < n; id++) {
        struct gguf_str s = gguf_arr_str(tokens, (uint64_t)id);
        float score = scores ? (float)gguf_arr_f64(scores, (uint64_t)id) : 0.0f;
        int64_t type = types ? gguf_arr_i64(types, (uint64_t)id) : TRIT_TOKEN_NORMAL;
        if (type < 0 || type > TRIT_TOKEN_BYTE)
            return trit_error(TRIT_ERR_FORMAT, "gguf: tokenizer.ggml.token_type[%d] = %lld is not a token type", id,
                              (long long)type);
        TRIT_TRY(vocab_set_token(tok, id, s.ptr, s.len, score, (enum trit_token_type)type));
    }
    TRIT_TRY(vocab_build_index(tok));

    if (tok->kind == TRIT_TOKENIZER_BPE) {
        st = get_array(f, "tokenizer.ggml.merges", GGUF_TYPE_STRING, 0, &merges);
        if (st == TRIT_ERR_NOT_FOUND)
            return trit_error(TRIT_ERR_FORMAT, "gguf: a gpt2 (BPE) tokenizer without tokenizer.ggml.merges");
        TRIT_TRY(st);
        for (uint64_t i = 0; i < merges->arr_n; i++) {
            struct gguf_str m = gguf_arr_str(merges, i);
            /* "a b", split at the first space after the first byte (llama.cpp) */
            const char *sp = m.len > 1 ? memchr(m.ptr + 1, ' ', m.len - 1) : NULL;
            if (!sp)
                return trit_error(TRIT_ERR_FORMAT, "gguf: tokenizer.ggml.merges[%llu] has no space",
                                  (unsigned long long)i);
            size_t a_len = (size_t)(sp - m.ptr);
            TRIT_TRY(vocab_add_merge(tok, m.ptr, a_len, sp + 1, m.len - a_len - 1));
        }
        char pre[64];
        st = gguf_get_str(f, "tokenizer.ggml.pre", pre, sizeof pre);
        if (st == TRIT_ERR_NOT_FOUND)
            return trit_error(TRIT_ERR_UNSUPPORTED, "gguf: a gpt2 (BPE) tokenizer without tokenizer.ggml.pre; "
                              "its pre-tokenizer cannot be told");
        TRIT_TRY(st);
        TRIT_TRY(vocab_set_pre_name(tok, pre));
    } else {
        tok->bos = 1 < n ? 1 : -1;
        tok->eos = 2 < n ? 2 : -1;
        tok->unk = 0;
        tok->add_bos = true;
        tok->add_space_prefix = true;
    }

    TRIT_TRY(get_id(f, "tokenizer.ggml.bos_token_id", n, &tok->bos));
    TRIT_TRY(get_id(f, "tokenizer.ggml.eos_token_id", n, &tok->eos));
    TRIT_TRY(get_id(f, "tokenizer.ggml.unknown_token_id", n, &tok->unk));
    TRIT_TRY(get_id(f, "tokenizer.ggml.padding_token_id", n, &tok->pad));
    TRIT_TRY(get_id(f, "tokenizer.ggml.eot_token_id", n, &tok->eot));
    TRIT_TRY(get_id(f, "tokenizer.ggml.eom_token_id", n, &tok->eom));
    TRIT_TRY(get_flag(f, "tokenizer.ggml.add_bos_token", &tok->add_bos));
    TRIT_TRY(get_flag(f, "tokenizer.ggml.add_eos_token", &tok->add_eos));
    TRIT_TRY(get_flag(f, "tokenizer.ggml.add_space_prefix", &tok->add_space_prefix));
    return vocab_finalize(tok);
}

enum trit_status trit_tokenizer_load_gguf(const struct gguf_file *f, struct trit_tokenizer **out) {
    if (!out) return trit_error(TRIT_ERR_INVALID_ARG, "trit_tokenizer_load_gguf: NULL output");
    *out = NULL;
    if (!f) return trit_error(TRIT_ERR_INVALID_ARG, "trit_tokenizer_load_gguf: NULL file");
    char model[32];
    enum trit_status st = gguf_get_str(f, "tokenizer.ggml.model", model, sizeof model);
    if (st == TRIT_ERR_NOT_FOUND) return trit_error(TRIT_ERR_NOT_FOUND, "gguf: no tokenizer.ggml.model: the file has no vocabulary");
    TRIT_TRY(st);
    enum trit_tokenizer_kind kind;
    if (strcmp(model, "gpt2") == 0) kind = TRIT_TOKENIZER_BPE;
    else if (strcmp(model, "llama") == 0) kind = TRIT_TOKENIZER_SPM;
    else return trit_error(TRIT_ERR_UNSUPPORTED, "gguf: tokenizer.ggml.model = '%s' is not supported (gpt2, llama)", model);

    const struct gguf_kv *tokens;
    st = get_array(f, "tokenizer.ggml.tokens", GGUF_TYPE_STRING, 0, &tokens);
    if (st == TRIT_ERR_NOT_FOUND) return trit_error(TRIT_ERR_FORMAT, "gguf: no tokenizer.ggml.tokens");
    TRIT_TRY(st);
    if (tokens->arr_n == 0 || tokens->arr_n > GGUF_MAX_VOCAB)
        return trit_error(TRIT_ERR_FORMAT, "gguf: tokenizer.ggml.tokens has %llu entries",
                          (unsigned long long)tokens->arr_n);

    struct trit_tokenizer *tok;
    int32_t n = (int32_t)tokens->arr_n;
    TRIT_TRY(vocab_init(n, &tok));
    tok->kind = kind;
    st = load(f, tok, n);
    if (st != TRIT_OK) {
        trit_tokenizer_free(tok);
        return st;
    }
    *out = tok;
    return TRIT_OK;
}
