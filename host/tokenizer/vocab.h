/*
 * vocab.h: the tokenizer's in-memory model, shared by the files of host/tokenizer/ only.
 *
 * A loader (load_json.c, load_gguf.c, load_spm.c) fills it in three steps, all independent of the
 * file format:
 *   vocab_init(n)  ->  vocab_set_token(...) for every id  ->  vocab_build_index()
 *   -> vocab_add_merge(...) for every merge, in rank order (BPE)  ->  vocab_finalize()
 * after setting the special ids, flags and pre-tokenizer regexes directly in the struct.
 */
#ifndef TRIT_TOKENIZER_VOCAB_H
#define TRIT_TOKENIZER_VOCAB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tokenizer/tokenizer.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

struct cJSON;

/* Pre-tokenizer regex stages; each later stage splits the pieces of the one before
 * (tokenizer.json Sequence of Split). */
#define TOK_MAX_REGEX 4

/* Attribute bits beyond the type (tokenizer.json added_tokens). */
#define TOK_ATTR_LSTRIP 1u /* eat whitespace before the token when it is matched in text */
#define TOK_ATTR_RSTRIP 2u /* eat whitespace after it */

/* One vocab entry. Texts live in the arena: `text` is the vocab's spelling (byte-level BPE:
 * mapped characters), `piece` the bytes it decodes to. Offsets are 32-bit: the arena is capped at
 * 4 GiB, far above any vocab (Llama 3: about 2 MB). */
struct tok_entry {
    uint32_t text_off, text_len;
    uint32_t piece_off, piece_len;
    float score; /* SPM merge priority: higher merges first */
    uint8_t type; /* enum trit_token_type */
    uint8_t attr; /* TOK_ATTR_* */
};

struct trit_tokenizer {
    enum trit_tokenizer_kind kind;
    int32_t n_vocab;
    struct tok_entry *tokens; /* (n_vocab) */
    char *arena;
    size_t arena_len, arena_cap;

    /* text -> id: open addressing, slot = id + 1 (0 = empty), linear probing, power-of-two size. */
    uint32_t *hash;
    uint32_t hash_mask;

    /* BPE merges: (left id, right id) -> (rank, merged id), open addressing on the packed key. */
    uint64_t *merge_key; /* ((uint64_t)left << 32 | right) + 1; 0 = empty */
    uint32_t *merge_rank;
    int32_t *merge_result;
    uint32_t merge_mask;
    int64_t n_merges;       /* merges read (the next rank) */
    int64_t n_merge_stored; /* merges that can apply */

    /* byte -> token: byte-level BPE: the token of the byte's mapped character; SPM: <0xXX>. -1 if
     * the vocab lacks it. */
    int32_t byte_token[256];
    /* GPT-2 byte map, tabulated: the UTF-8 of the character that stands for each byte. */
    char byte_map[256][2];
    uint8_t byte_map_len[256];

    /* Tokens matched in raw text before the model runs (control, unknown, user-defined), longest
     * first; special_first[b] says whether some special starts with byte b. */
    int32_t *specials;
    int32_t n_specials;
    bool special_first[256];

    int32_t bos, eos, eot, eom, unk, pad; /* -1 = none */
    int32_t *eog;                         /* end-of-generation ids (sorted) */
    int32_t n_eog;

    bool add_bos, add_eos, add_space_prefix;
    bool ignore_merges; /* Llama 3: a whole pre-tokenized piece found in the vocab is one token */
    bool nfc;           /* Qwen2: raw text is put in Unicode NFC before pre-tokenizing (nfc.c) */
    /* SPM: no token has "▁" after another character, so no merge crosses a word start and each
     * word can be merged on its own (same result, small heaps). Checked at load. */
    bool spm_word_split;
    /* SPM from a Hugging Face tokenizer.json (Llama 2 style: normalizer "▁", BPE with byte_fallback):
     * pairs merge by lowest merge rank instead of highest score. */
    bool spm_by_rank;

    int n_regex;
    pcre2_code *regex[TOK_MAX_REGEX];

    size_t max_piece;
};

/* ---- building (vocab.c) ----------------------------------------------------------------------- */

/* Allocates a tokenizer with n_vocab UNUSED empty tokens, ids -1, flags false. */
enum trit_status vocab_init(int32_t n_vocab, struct trit_tokenizer **out);
enum trit_status vocab_set_token(struct trit_tokenizer *tok, int32_t id, const char *text, size_t len,
                                 float score, enum trit_token_type type);
/* Builds the text -> id map. When two ids share a text the higher id wins, as in llama.cpp. */
enum trit_status vocab_build_index(struct trit_tokenizer *tok);
/* Adds a merge of two token texts at the next rank. A merge whose parts or result are not in the
 * vocab cannot apply and is skipped (returns TRIT_OK); a repeated pair keeps its first rank. */
enum trit_status vocab_add_merge(struct trit_tokenizer *tok, const char *a, size_t a_len, const char *b,
                                 size_t b_len);
/* Computes pieces, byte tables, the special-token list and the end-of-generation set; checks the
 * special ids. */
enum trit_status vocab_finalize(struct trit_tokenizer *tok);
/* Compiles one pre-tokenizer stage (UTF + UCP, JIT when available). `what` names its source in
 * error messages. */
enum trit_status vocab_add_regex(struct trit_tokenizer *tok, const char *pattern, size_t len,
                                 bool literal, const char *what);
/* Sets the named byte-level pre-tokenizer (GGUF tokenizer.ggml.pre): its regex and, for the
 * Llama 3 family, ignore_merges and add_bos; for Qwen2 ("qwen2", "deepseek-r1-qwen"), NFC. TRIT_ERR_UNSUPPORTED names an unknown value. */
enum trit_status vocab_set_pre_name(struct trit_tokenizer *tok, const char *name);

/* tokenizer_config.json (load_json.c): bos_token, eos_token, unk_token and pad_token (a string or
 * {"content": ...}; TRIT_ERR_FORMAT when the text is not in the vocabulary) replace the special ids,
 * and add_bos_token / add_eos_token the flags. Needs the index; NULL config: nothing changes. Shared
 * by the tokenizer.json and tokenizer.model loaders. */
enum trit_status vocab_apply_tokenizer_config(struct trit_tokenizer *tok, const struct cJSON *config);

/* Pre-tokenizer patterns. LLAMA3 is tokenizer.json's with (?i:...) spelled out, as llama.cpp has it;
 * QWEN2 is Qwen2's tokenizer.json Split as written; GPT2 is the Hugging Face ByteLevel pattern. */
extern const char TOK_REGEX_LLAMA3[];
extern const char TOK_REGEX_QWEN2[];
extern const char TOK_REGEX_GPT2[];

/* ---- lookups (vocab.c) ------------------------------------------------------------------------ */

int32_t vocab_find(const struct trit_tokenizer *tok, const char *text, size_t len);
/* Merge lookup: false when the pair does not merge. */
bool vocab_merge(const struct trit_tokenizer *tok, int32_t left, int32_t right, uint32_t *rank,
                 int32_t *result);
static inline const char *vocab_text(const struct trit_tokenizer *tok, int32_t id) {
    return tok->arena + tok->tokens[id].text_off;
}

/* ---- UTF-8 and the GPT-2 byte map (utf8.c) ---------------------------------------------------- */

enum utf8_result { UTF8_VALID, UTF8_INVALID, UTF8_INCOMPLETE };
/* Classifies the sequence starting at s[0] (n >= 1 bytes available). VALID: *len bytes form one
 * well-formed character. INVALID: s[0..*len) is a maximal ill-formed subpart (*len >= 1).
 * INCOMPLETE: all n bytes are a valid but unfinished prefix. Unicode Table 3-7 is the law. */
enum utf8_result utf8_classify(const uint8_t *s, size_t n, size_t *len);
/* Byte length llama.cpp gives a character from its first byte (1 for continuation bytes). */
static inline size_t utf8_len_lead(uint8_t b) {
    static const uint8_t lookup[16] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 3, 4};
    return lookup[b >> 4];
}
/* Writes the UTF-8 of cp (< 0x110000) to out, returns its length (1..4). */
size_t utf8_encode(uint32_t cp, char out[4]);

/* GPT-2 bytes_to_unicode: byte -> code point (printable Latin-1 bytes map to themselves, the other
 * 68 to U+0100.. in byte order), and its UTF-8 (1 or 2 bytes). */
uint32_t bytelevel_cp(uint8_t byte);
size_t bytelevel_utf8(uint8_t byte, char out[2]);
/* Inverse: the byte a code point stands for, or -1. */
int bytelevel_byte(uint32_t cp);

/* ---- model steps (bpe.c, spm.c, pretok.c) ----------------------------------------------------- */

/* Per-call scratch shared by the model steps; grown as needed, freed by scratch_free. */
struct tok_symbol {
    int32_t prev, next; /* -1 at the ends */
    uint32_t start, len; /* len 0: merged away */
    int32_t id;          /* BPE: token of this symbol, -1 if none */
};
struct tok_heap_item {
    uint64_t key; /* ordering: smallest first */
    int32_t left, right;
    int32_t a, b; /* BPE: left and right ids when queued; SPM: merged byte length */
};
struct tok_scratch {
    struct tok_symbol *sym;
    size_t sym_cap;
    struct tok_heap_item *heap;
    size_t heap_n, heap_cap;
    char *buf; /* SPM escaped text, BPE mapped piece */
    size_t buf_cap;
};
/* Folds sym[l]'s right neighbour into it (its bytes are the next ones) and unlinks the neighbour. */
static inline void symbols_join(struct tok_symbol *sym, int32_t l) {
    struct tok_symbol *a = &sym[l], *b = &sym[a->next];
    a->len += b->len;
    b->len = 0;
    a->next = b->next;
    if (b->next >= 0) sym[b->next].prev = l;
}
void scratch_free(struct tok_scratch *s);
enum trit_status scratch_reserve(struct tok_scratch *s, size_t n_sym, size_t n_buf);
enum trit_status heap_push(struct tok_scratch *s, struct tok_heap_item item);
bool heap_pop(struct tok_scratch *s, struct tok_heap_item *out);

enum trit_status tokens_push(struct trit_tokens *out, int32_t id);

/* Byte-level BPE of one raw-text fragment: pre-tokenize, then merge each piece. */
enum trit_status bpe_encode_fragment(const struct trit_tokenizer *tok, struct tok_scratch *s,
                                     pcre2_match_data *md, const char *text, size_t len,
                                     struct trit_tokens *out);
/* SentencePiece BPE of one raw-text fragment; `prefix_space` as llama.cpp decides it. */
enum trit_status spm_encode_fragment(const struct trit_tokenizer *tok, struct tok_scratch *s,
                                     const char *text, size_t len, bool prefix_space,
                                     struct trit_tokens *out);
/* NFC (nfc.c): *out is `text` itself when no character can change (all below U+0300), else the
 * normalized bytes in s->out, valid until the next call. Ill-formed bytes are copied unchanged.
 * The Unicode data is Hugging Face tokenizers' (9.0). */
struct nfc_scratch {
    uint32_t *cp;
    size_t cp_cap;
    char *out;
    size_t out_cap;
};
enum trit_status nfc_apply(struct nfc_scratch *s, const char *text, size_t len, const char **out, size_t *out_len);
void nfc_scratch_free(struct nfc_scratch *s);

/* Splits text into pre-tokenizer pieces and calls fn on each, in order. Invalid UTF-8 never
 * reaches PCRE2: each maximal run of ill-formed bytes is a piece of its own. */
typedef enum trit_status (*pretok_fn)(const char *piece, size_t len, void *user);
enum trit_status pretok_split(const struct trit_tokenizer *tok, pcre2_match_data *md, const char *text,
                              size_t len, pretok_fn fn, void *user);

#endif /* TRIT_TOKENIZER_VOCAB_H */
