/*
 * tokenizer.h: text <-> token ids for the vocabularies trit's models use.
 *
 *   - byte-level BPE (GPT-2, Llama 3 / bitnet-b1.58-2B-4T, Falcon3): a pre-tokenizer regex run by
 *     PCRE2, the GPT-2 byte-to-unicode map, merges by lowest rank;
 *   - SentencePiece BPE (GGUF tokenizer.ggml.model "llama", the Llama 2 vocab of 1bitLLM models):
 *     space prefix, U+2581 for spaces, merges by highest score, <0xXX> byte fallback.
 *
 * Loaded from a GGUF file's tokenizer.ggml.* keys, from a Hugging Face tokenizer.json (plus an
 * optional tokenizer_config.json beside it), or from a SentencePiece tokenizer.model (plus the
 * optional added_tokens.json and tokenizer_config.json beside it). Behaviour follows llama.cpp's src/llama-vocab.cpp
 * (docs/formats.md section 3); tests/test_tokenizer_*.c check it against llama.cpp's
 * and transformers' expected ids.
 *
 * Ownership and threads: a loaded tokenizer is read-only. Every function taking a
 * `const struct trit_tokenizer *` may be called from several threads at once. Encoding allocates
 * scratch per call; token lookups and streaming decode do not allocate.
 */
#ifndef TRIT_TOKENIZER_H
#define TRIT_TOKENIZER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/core.h"
#include "trit.h"

struct gguf_file;

/* Token types: the values of GGUF tokenizer.ggml.token_type (llama.h llama_token_type). */
enum trit_token_type {
    TRIT_TOKEN_UNDEFINED = 0,
    TRIT_TOKEN_NORMAL = 1,
    TRIT_TOKEN_UNKNOWN = 2,
    TRIT_TOKEN_CONTROL = 3,      /* <|begin_of_text|>, <s>: matched in text only with PARSE_SPECIAL */
    TRIT_TOKEN_USER_DEFINED = 4, /* added non-special tokens: always matched in text first */
    TRIT_TOKEN_UNUSED = 5,
    TRIT_TOKEN_BYTE = 6, /* <0xXX> */
};

enum trit_tokenizer_kind {
    TRIT_TOKENIZER_BPE = 0, /* byte-level BPE (GGUF model "gpt2") */
    TRIT_TOKENIZER_SPM = 1, /* SentencePiece BPE with scores (GGUF model "llama") */
};

/* ---- loading ---------------------------------------------------------------------------------- */

/* From a tokenizer.json path; `config_path` (tokenizer_config.json) may be NULL. */
enum trit_status trit_tokenizer_load_json(const char *json_path, const char *config_path,
                                          struct trit_tokenizer **out);
/* From tokenizer.json text in memory (not NUL-terminated); config may be NULL/0. */
enum trit_status trit_tokenizer_load_json_memory(const char *json, size_t json_len, const char *config,
                                                 size_t config_len, struct trit_tokenizer **out);
/* From a SentencePiece tokenizer.model (BPE model type only; load_spm.c says what is refused), with
 * the Hugging Face added_tokens.json and tokenizer_config.json beside it; either path may be NULL. */
enum trit_status trit_tokenizer_load_spm(const char *model_path, const char *added_tokens_json_path,
                                         const char *config_path, struct trit_tokenizer **out);
/* The same from memory: the tokenizer.model bytes, and the two JSON texts (not NUL-terminated; NULL
 * when absent). Nothing of the buffers is referenced afterwards. */
enum trit_status trit_tokenizer_load_spm_memory(const uint8_t *model, size_t model_len, const char *added,
                                                size_t added_len, const char *config, size_t config_len,
                                                struct trit_tokenizer **out);
/* From the tokenizer.ggml.* keys of a parsed GGUF file. Nothing of `f` is referenced afterwards. */
enum trit_status trit_tokenizer_load_gguf(const struct gguf_file *f, struct trit_tokenizer **out);

/* ---- properties ------------------------------------------------------------------------------- */

enum trit_tokenizer_kind trit_tokenizer_kind(const struct trit_tokenizer *tok);
int32_t trit_tokenizer_unk(const struct trit_tokenizer *tok);
int32_t trit_tokenizer_pad(const struct trit_tokenizer *tok);
/* Whether TRIT_TOKENIZE_ADD_SPECIAL appends EOS, and whether SPM prefixes a space. */
bool trit_tokenizer_add_eos(const struct trit_tokenizer *tok);
bool trit_tokenizer_add_space_prefix(const struct trit_tokenizer *tok);
enum trit_token_type trit_tokenizer_token_type(const struct trit_tokenizer *tok, int32_t id);
/* SentencePiece: the token's merge score (higher merges first); 0 for BPE vocabularies and ids
 * outside the vocabulary. */
float trit_tokenizer_token_score(const struct trit_tokenizer *tok, int32_t id);
/* The vocab's own text of a token (byte-level BPE: mapped characters like "Ġthe"; SPM: "▁the").
 * Points into the tokenizer, valid until trit_tokenizer_free; not NUL-terminated. NULL when out of
 * range. */
const char *trit_tokenizer_token_text(const struct trit_tokenizer *tok, int32_t id, size_t *len);
/* The id whose vocab text is exactly text[0..len), or -1. */
int32_t trit_tokenizer_find(const struct trit_tokenizer *tok, const char *text, size_t len);
/* Longest piece any token decodes to, in bytes (sizes streaming buffers). */
size_t trit_tokenizer_max_piece_bytes(const struct trit_tokenizer *tok);

/* ---- encoding --------------------------------------------------------------------------------- */


/* ---- decoding --------------------------------------------------------------------------------- */


#endif /* TRIT_TOKENIZER_H */
