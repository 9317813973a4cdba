/*
 * tokenizer.h: text <-> token ids for the vocabularies trit's models use.
 *
 *   - byte-level BPE (GPT-2, Llama 3 / bitnet-b1.58-2B-4T, Falcon3): a pre-tokenizer regex run by
 *     PCRE2, the GPT-2 byte-to-unicode map, merges by lowest rank;
 *   - SentencePiece BPE (GGUF tokenizer.ggml.model "llama", the Llama 2 vocab of 1bitLLM models):
 *     space prefix, U+2581 for spaces, merges by highest score, <0xXX> byte fallback.
 *
 * Loaded from a GGUF file's tokenizer.ggml.* keys or from a Hugging Face tokenizer.json (plus an
 * optional tokenizer_config.json beside it). Behaviour follows llama.cpp's src/llama-vocab.cpp
 * (shared/reference/llama_cpp.md section 4); tests/test_tokenizer_*.c check it against llama.cpp's
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

/* Loads from `path`: a GGUF file (recognized by its magic), a tokenizer.json file, or a folder that
 * holds tokenizer.json (and optionally tokenizer_config.json). *out is NULL on failure. */
enum trit_status trit_tokenizer_load(const char *path, struct trit_tokenizer **out);
/* From a tokenizer.json path; `config_path` (tokenizer_config.json) may be NULL. */
enum trit_status trit_tokenizer_load_json(const char *json_path, const char *config_path,
                                          struct trit_tokenizer **out);
/* From tokenizer.json text in memory (not NUL-terminated); config may be NULL/0. */
enum trit_status trit_tokenizer_load_json_memory(const char *json, size_t json_len, const char *config,
                                                 size_t config_len, struct trit_tokenizer **out);
/* From the tokenizer.ggml.* keys of a parsed GGUF file. Nothing of `f` is referenced afterwards. */
enum trit_status trit_tokenizer_load_gguf(const struct gguf_file *f, struct trit_tokenizer **out);
/* Accepts NULL. */
void trit_tokenizer_free(struct trit_tokenizer *tok);

/* ---- properties ------------------------------------------------------------------------------- */

enum trit_tokenizer_kind trit_tokenizer_kind(const struct trit_tokenizer *tok);
int32_t trit_tokenizer_n_vocab(const struct trit_tokenizer *tok);
/* Special ids; -1 when the vocab has none. */
int32_t trit_tokenizer_bos(const struct trit_tokenizer *tok);
int32_t trit_tokenizer_eos(const struct trit_tokenizer *tok);
int32_t trit_tokenizer_eot(const struct trit_tokenizer *tok);
int32_t trit_tokenizer_unk(const struct trit_tokenizer *tok);
int32_t trit_tokenizer_pad(const struct trit_tokenizer *tok);
/* Whether TRIT_TOKENIZE_ADD_SPECIAL prepends BOS / appends EOS, and whether SPM prefixes a space. */
bool trit_tokenizer_add_bos(const struct trit_tokenizer *tok);
bool trit_tokenizer_add_eos(const struct trit_tokenizer *tok);
bool trit_tokenizer_add_space_prefix(const struct trit_tokenizer *tok);
/* End of generation: EOS, EOT, EOM and the control tokens named like them (<|eot_id|>, <|im_end|>,
 * <|end|>, <end_of_turn>, <|endoftext|>, <|eom_id|>). False for ids out of range. */
bool trit_tokenizer_is_eog(const struct trit_tokenizer *tok, int32_t id);
enum trit_token_type trit_tokenizer_token_type(const struct trit_tokenizer *tok, int32_t id);
/* The vocab's own text of a token (byte-level BPE: mapped characters like "Ġthe"; SPM: "▁the").
 * Points into the tokenizer, valid until trit_tokenizer_free; not NUL-terminated. NULL when out of
 * range. */
const char *trit_tokenizer_token_text(const struct trit_tokenizer *tok, int32_t id, size_t *len);
/* The id whose vocab text is exactly text[0..len), or -1. */
int32_t trit_tokenizer_find(const struct trit_tokenizer *tok, const char *text, size_t len);
/* Longest piece any token decodes to, in bytes (sizes streaming buffers). */
size_t trit_tokenizer_max_piece_bytes(const struct trit_tokenizer *tok);

/* ---- encoding --------------------------------------------------------------------------------- */

/* Add BOS / EOS as the vocab's add_bos / add_eos flags say (llama.cpp's add_special). */
#define TRIT_TOKENIZE_ADD_SPECIAL 1u
/* Match control tokens (<|begin_of_text|>) written in the text. User-defined tokens are matched
 * always, as in transformers and llama.cpp. */
#define TRIT_TOKENIZE_PARSE_SPECIAL 2u

/* A growable id buffer. Zero-initialize it; release with trit_tokens_free. */
struct trit_tokens {
    int32_t *ids;
    size_t n;
    size_t cap;
};
void trit_tokens_free(struct trit_tokens *t);

/* Appends the tokens of text[0..len) to *out. Any bytes are accepted, invalid UTF-8 included:
 * byte-level BPE keeps them as byte tokens, SPM emits <0xXX> byte tokens. */
enum trit_status trit_tokenize(const struct trit_tokenizer *tok, const char *text, size_t len,
                               unsigned flags, struct trit_tokens *out);
/* Same into a caller buffer. *n_out is always the number of tokens the text needs; when it exceeds
 * `capacity`, the call fails with TRIT_ERR_INVALID_ARG and ids[] holds the first `capacity`. */
enum trit_status trit_tokenize_into(const struct trit_tokenizer *tok, const char *text, size_t len,
                                    unsigned flags, int32_t *ids, size_t capacity, size_t *n_out);

/* ---- decoding --------------------------------------------------------------------------------- */

/* Render control and unknown tokens as their text (else they decode to nothing). */
#define TRIT_DECODE_SPECIAL 1u
/* For vocabs with add_space_prefix (SPM): drop the one leading space of the first token that
 * decodes to something, undoing the prefix encoding added (llama.cpp detokenize does the same). */
#define TRIT_DECODE_STRIP_SPACE 2u

/* The bytes token `id` decodes to (byte-level BPE: inverse GPT-2 map; SPM: U+2581 -> ' ', <0xXX> ->
 * the byte). Control/unknown tokens give their text with TRIT_DECODE_SPECIAL, else "" (len 0).
 * Points into the tokenizer, not NUL-terminated. NULL (and *len = 0) when id is out of range. */
const char *trit_tokenizer_piece(const struct trit_tokenizer *tok, int32_t id, unsigned flags,
                                 size_t *len);
/* Concatenates the pieces of ids[0..n) into out[0..capacity). The bytes are raw: decoding the
 * encoding of any byte string gives it back (SPM: with TRIT_DECODE_STRIP_SPACE). *n_out is always
 * the length needed; TRIT_ERR_INVALID_ARG when it exceeds capacity or an id is out of range. */
enum trit_status trit_detokenize(const struct trit_tokenizer *tok, const int32_t *ids, size_t n,
                                 unsigned flags, char *out, size_t capacity, size_t *n_out);

/* Streaming decode for generation: feed one token at a time, get back text that is always valid
 * UTF-8. A multi-byte character split across byte tokens is held back until its last byte arrives.
 * Bytes that can never form a character are replaced by U+FFFD (one per maximal ill-formed
 * subsequence, the Unicode recommendation), and so is an incomplete character at flush. */
struct trit_tok_stream {
    const struct trit_tokenizer *tok;
    unsigned flags;   /* TRIT_DECODE_* */
    bool strip_space; /* a leading space is still to be removed (TRIT_DECODE_STRIP_SPACE) */
    uint8_t n_pending;
    uint8_t pending[4]; /* the start of an incomplete UTF-8 sequence */
};
/* Output bytes one feed can produce at most: size `out` with this. */
size_t trit_tok_stream_max_out(const struct trit_tokenizer *tok);
void trit_tok_stream_init(struct trit_tok_stream *s, const struct trit_tokenizer *tok, unsigned flags);
/* Decodes token `id`, writes the text that is now complete to out and its length to *n_out. Fails
 * with TRIT_ERR_INVALID_ARG, state unchanged, for an id out of range or when capacity is below
 * 3 * (pending + piece bytes) (trit_tok_stream_max_out always suffices). */
enum trit_status trit_tok_stream_feed(struct trit_tok_stream *s, int32_t id, char *out, size_t capacity,
                                      size_t *n_out);
/* Emits what is still held back (as U+FFFD: it is an incomplete character); capacity >= 3. */
enum trit_status trit_tok_stream_flush(struct trit_tok_stream *s, char *out, size_t capacity,
                                       size_t *n_out);

#endif /* TRIT_TOKENIZER_H */
