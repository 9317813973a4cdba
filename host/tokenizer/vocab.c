/*
 * vocab.c: the format-independent vocab model: token table and text arena, the text -> id hash map,
 * the merge map, decoded pieces, special-token tables, pre-tokenizer regexes; plus the per-call
 * scratch (symbol list, binary heap) the BPE and SPM merge loops share.
 */
#include <stdlib.h>
#include <string.h>

#include "tokenizer/vocab.h"

/* Llama 3 pre-tokenizer, tokenizer.json's (?i:'s|'t|'re|'ve|'m|'ll|'d) spelled out as llama.cpp's
 * LLAMA_VOCAB_PRE_TYPE_LLAMA3 has it. */
const char TOK_REGEX_LLAMA3[] =
    "(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|"
    "\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
/* Qwen2 (Qwen2, Qwen2.5, Qwen3 tokenizer.json): Llama 3's with single digits. Kept with its (?i:...)
 * as the tokenizer.json has it: PCRE2 folds case as Hugging Face's Oniguruma does, so "'\u017f" (long
 * s) is a contraction here as it is there (llama.cpp's spelled-out [sS] form differs on it). */
const char TOK_REGEX_QWEN2[] =
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|"
    "\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
/* GPT-2, as the Hugging Face ByteLevel pre-tokenizer has it (the trailing \s+ catches whitespace
 * before a non-space that \s+(?!\S) leaves behind; llama.cpp's splitter does the same by hand). */
const char TOK_REGEX_GPT2[] =
    "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";

/* ---- hashing ---------------------------------------------------------------------------------- */

/* FNV-1a, 64-bit: tokens are short (a few bytes on average), so a byte loop is fine. */
static uint64_t hash_bytes(const char *s, size_t n) {
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < n; i++) {
        h ^= (uint8_t)s[i];
        h *= 0x100000001b3ull;
    }
    return h;
}

/* Mixes a packed pair key (splitmix64 finalizer): ids are dense, so the raw key clusters. */
static uint64_t hash_u64(uint64_t x) {
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9ull;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebull;
    x ^= x >> 31;
    return x;
}

static size_t pow2_at_least(size_t n) {
    size_t p = 16;
    while (p < n) p <<= 1;
    return p;
}

/* ---- building --------------------------------------------------------------------------------- */

enum trit_status vocab_init(int32_t n_vocab, struct trit_tokenizer **out) {
    *out = NULL;
    if (n_vocab <= 0) return trit_error(TRIT_ERR_FORMAT, "tokenizer: empty vocabulary");
    struct trit_tokenizer *tok = calloc(1, sizeof *tok);
    if (!tok) return trit_error(TRIT_ERR_OUT_OF_MEMORY, "tokenizer: out of memory");
    tok->tokens = calloc((size_t)n_vocab, sizeof *tok->tokens);
    if (!tok->tokens) {
        free(tok);
        return trit_error(TRIT_ERR_OUT_OF_MEMORY, "tokenizer: out of memory for %d tokens", n_vocab);
    }
    tok->n_vocab = n_vocab;
    for (int32_t i = 0; i < n_vocab; i++) tok->tokens[i].type = TRIT_TOKEN_UNUSED;
    tok->bos = tok->eos = tok->eot = tok->eom = tok->unk = tok->pad = -1;
    for (int b = 0; b < 256; b++) tok->byte_token[b] = -1;
    *out = tok;
    return TRIT_OK;
}

void trit_tokenizer_free(struct trit_tokenizer *tok) {
    if (!tok) return;
    for (int i = 0; i < tok->n_regex; i++) pcre2_code_free(tok->regex[i]);
    free(tok->tokens);
    free(tok->arena);
    free(tok->hash);
    free(tok->merge_key);
    free(tok->merge_rank);
    free(tok->merge_result);
    free(tok->specials);
    free(tok->eog);
    free(tok);
}

/* Appends bytes to the arena; *off receives their offset. */
static enum trit_status arena_append(struct trit_tokenizer *tok, const char *s, size_t n, uint32_t *off) {
    if (n > UINT32_MAX - tok->arena_len)
        return trit_error(TRIT_ERR_FORMAT, "tokenizer: vocabulary text exceeds 4 GiB");
    if (tok->arena_len + n > tok->arena_cap) {
        size_t cap = tok->arena_cap ? tok->arena_cap : 1 << 16;
        while (cap < tok->arena_len + n) cap *= 2;
        char *p = realloc(tok->arena, cap);
        if (!p) return trit_error(TRIT_ERR_OUT_OF_MEMORY, "tokenizer: out of memory for vocab text");
        tok->arena = p;
        tok->arena_cap = cap;
    }
    if (n) memcpy(tok->arena + tok->arena_len, s, n);
    *off = (uint32_t)tok->arena_len;
    tok->arena_len += n;
    return TRIT_OK;
}

enum trit_status vocab_set_token(struct trit_tokenizer *tok, int32_t id, const char *text, size_t len,
                                 float score, enum trit_token_type type) {
    if (id < 0 || id >= tok->n_vocab)
        return trit_error(TRIT_ERR_FORMAT, "tokenizer: token id %d outside the vocabulary of %d", id,
                          tok->n_vocab);
    if ((unsigned)type > TRIT_TOKEN_BYTE)
        return trit_error(TRIT_ERR_FORMAT, "tokenizer: token %d has unknown type %d", id, (int)type);
    struct tok_entry *e = &tok->tokens[id];
    TRIT_TRY(arena_append(tok, text, len, &e->text_off));
    e->text_len = (uint32_t)len;
    e->score = score;
    e->type = (uint8_t)type;
    return TRIT_OK;
}

enum trit_status vocab_build_index(struct trit_tokenizer *tok) {
    size_t cap = pow2_at_least((size_t)tok->n_vocab * 2);
    free(tok->hash);
    tok->hash = calloc(cap, sizeof *tok->hash);
    if (!tok->hash) return trit_error(TRIT_ERR_OUT_OF_MEMORY, "tokenizer: out of memory for the vocab index");
    tok->hash_mask = (uint32_t)(cap - 1);
    for (int32_t id = 0; id < tok->n_vocab; id++) {
        const struct tok_entry *e = &tok->tokens[id];
        if (e->text_len == 0) continue; /* nothing can be looked up as "" */
        const char *text = tok->arena + e->text_off;
        size_t i = hash_bytes(text, e->text_len) & tok->hash_mask;
        for (;; i = (i + 1) & tok->hash_mask) {
            uint32_t slot = tok->hash[i];
            if (slot == 0) {
                tok->hash[i] = (uint32_t)id + 1;
                break;
            }
            const struct tok_entry *o = &tok->tokens[slot - 1];
            if (o->text_len == e->text_len && memcmp(tok->arena + o->text_off, text, e->text_len) == 0) {
                tok->hash[i] = (uint32_t)id + 1; /* a later id with the same text wins (llama.cpp) */
                break;
            }
        }
    }
    return TRIT_OK;
}

int32_t vocab_find(const struct trit_tokenizer *tok, const char *text, size_t len) {
    if (len == 0 || !tok->hash) return -1;
    size_t i = hash_bytes(text, len) & tok->hash_mask;
    for (;; i = (i + 1) & tok->hash_mask) {
        uint32_t slot = tok->hash[i];
        if (slot == 0) return -1;
        const struct tok_entry *o = &tok->tokens[slot - 1];
        if (o->text_len == len && memcmp(tok->arena + o->text_off, text, len) == 0) return (int32_t)slot - 1;
    }
}

static enum trit_status merge_grow(struct trit_tokenizer *tok) {
    size_t old_cap = tok->merge_key ? (size_t)tok->merge_mask + 1 : 0;
    size_t cap = old_cap ? old_cap * 2 : 1 << 12;
    uint64_t *key = calloc(cap, sizeof *key);
    uint32_t *rank = malloc(cap * sizeof *rank);
    int32_t *result = malloc(cap * sizeof *result);
    if (!key || !rank || !result) {
        free(key);
        free(rank);
        free(result);
        return trit_error(TRIT_ERR_OUT_OF_MEMORY, "tokenizer: out of memory for merges");
    }
    size_t mask = cap - 1;
    for (size_t j = 0; j < old_cap; j++) {
        if (!tok->merge_key[j]) continue;
        size_t i = hash_u64(tok->merge_key[j]) & mask;
        while (key[i]) i = (i + 1) & mask;
        key[i] = tok->merge_key[j];
        rank[i] = tok->merge_rank[j];
        result[i] = tok->merge_result[j];
    }
    free(tok->merge_key);
    free(tok->merge_rank);
    free(tok->merge_result);
    tok->merge_key = key;
    tok->merge_rank = rank;
    tok->merge_result = result;
    tok->merge_mask = (uint32_t)mask;
    return TRIT_OK;
}

enum trit_status vocab_add_merge(struct trit_tokenizer *tok, const char *a, size_t a_len, const char *b,
                                 size_t b_len) {
    if (tok->n_merges >= (int64_t)UINT32_MAX - 1)
        return trit_error(TRIT_ERR_FORMAT, "tokenizer: too many merges");
    uint32_t rank = (uint32_t)tok->n_merges++; /* the rank is the position in the list */
    int32_t left = vocab_find(tok, a, a_len), right = vocab_find(tok, b, b_len);
    if (left < 0 || right < 0) return TRIT_OK;
    char stack_buf[256];
    char *cat = a_len + b_len <= sizeof stack_buf ? stack_buf : malloc(a_len + b_len);
    if (!cat) return trit_error(TRIT_ERR_OUT_OF_MEMORY, "tokenizer: out of memory");
    memcpy(cat, a, a_len);
    memcpy(cat + a_len, b, b_len);
    int32_t merged = vocab_find(tok, cat, a_len + b_len);
    if (cat != stack_buf) free(cat);
    if (merged < 0) return TRIT_OK;

    /* keep the load factor at most 1/2 */
    size_t cap = tok->merge_key ? (size_t)tok->merge_mask + 1 : 0;
    if ((size_t)tok->n_merge_stored * 2 >= cap) TRIT_TRY(merge_grow(tok));
    uint64_t key = ((uint64_t)(uint32_t)left << 32 | (uint32_t)right) + 1;
    size_t i = hash_u64(key) & tok->merge_mask;
    for (;; i = (i + 1) & tok->merge_mask) {
        if (tok->merge_key[i] == key) return TRIT_OK; /* repeated pair: the first rank stays */
        if (!tok->merge_key[i]) break;
    }
    tok->merge_key[i] = key;
    tok->merge_rank[i] = rank;
    tok->merge_result[i] = merged;
    tok->n_merge_stored++;
    return TRIT_OK;
}

bool vocab_merge(const struct trit_tokenizer *tok, int32_t left, int32_t right, uint32_t *rank,
                 int32_t *result) {
    if (!tok->merge_key || left < 0 || right < 0) return false;
    uint64_t key = ((uint64_t)(uint32_t)left << 32 | (uint32_t)right) + 1;
    size_t i = hash_u64(key) & tok->merge_mask;
    for (;; i = (i + 1) & tok->merge_mask) {
        uint64_t k = tok->merge_key[i];
        if (k == key) {
            *rank = tok->merge_rank[i];
            *result = tok->merge_result[i];
            return true;
        }
        if (!k) return false;
    }
}

/* ---- finalize --------------------------------------------------------------------------------- */

/* "<0xXX>" -> XX, or -1. */
static int parse_byte_token(const char *s, size_t n) {
    if (n != 6 || memcmp(s, "<0x", 3) != 0 || s[5] != '>') return -1;
    int v = 0;
    for (int i = 3; i < 5; i++) {
        char c = s[i];
        int d = c >= '0' && c <= '9' ? c - '0' : c >= 'A' && c <= 'F' ? c - 'A' + 10 : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
        if (d < 0) return -1;
        v = v * 16 + d;
    }
    return v;
}

/* The bytes token `id` decodes to, written to buf (which holds at least text_len bytes: decoding
 * never lengthens a byte-level or SPM text). Returns the length. */
static size_t decode_token(const struct trit_tokenizer *tok, int32_t id, char *buf) {
    const struct tok_entry *e = &tok->tokens[id];
    const char *t = tok->arena + e->text_off;
    size_t n = e->text_len, o = 0;
    switch ((enum trit_token_type)e->type) {
    case TRIT_TOKEN_UNUSED: return 0;
    case TRIT_TOKEN_CONTROL:
    case TRIT_TOKEN_UNKNOWN:
    case TRIT_TOKEN_USER_DEFINED: memcpy(buf, t, n); return n;
    case TRIT_TOKEN_BYTE: {
        int v = parse_byte_token(t, n);
        if (v < 0) {
            memcpy(buf, t, n);
            return n;
        }
        buf[0] = (char)v;
        return 1;
    }
    case TRIT_TOKEN_UNDEFINED:
    case TRIT_TOKEN_NORMAL: break;
    }
    if (tok->kind == TRIT_TOKENIZER_SPM) {
        for (size_t i = 0; i < n;) {
            if (i + 3 <= n && memcmp(t + i, "\xe2\x96\x81", 3) == 0) { /* U+2581 -> ' ' */
                buf[o++] = ' ';
                i += 3;
            } else {
                buf[o++] = t[i++];
            }
        }
        return o;
    }
    /* Byte-level: each character stands for one byte; a character outside the map is copied as is. */
    for (size_t i = 0; i < n;) {
        size_t len;
        enum utf8_result r = utf8_classify((const uint8_t *)t + i, n - i, &len);
        if (r == UTF8_VALID && len <= 2) {
            uint32_t cp = len == 1 ? (uint8_t)t[i] : ((uint32_t)(t[i] & 0x1F) << 6) | (uint32_t)(t[i + 1] & 0x3F);
            int byte = bytelevel_byte(cp);
            if (byte >= 0) {
                buf[o++] = (char)byte;
                i += len;
                continue;
            }
        }
        if (r == UTF8_INCOMPLETE) len = n - i;
        memcpy(buf + o, t + i, len);
        o += len;
        i += len;
    }
    return o;
}

static int cmp_u64(const void *pa, const void *pb) {
    uint64_t a = *(const uint64_t *)pa, b = *(const uint64_t *)pb;
    return a < b ? -1 : a > b;
}

static int cmp_i32(const void *pa, const void *pb) {
    int32_t a = *(const int32_t *)pa, b = *(const int32_t *)pb;
    return a < b ? -1 : a > b;
}

/* Names llama.cpp treats as end of turn / end of generation (llama-vocab.cpp, load). */
static const char *const EOT_NAMES[] = {"<|eot_id|>", "<|im_end|>", "<|end|>", "<end_of_turn>",
                                        "<|endoftext|>", "<EOT>", "_<EOT>", "<｜end▁of▁sentence｜>"};
static const char *const EOM_NAMES[] = {"<|eom_id|>"};

enum trit_status vocab_finalize(struct trit_tokenizer *tok) {
    const int32_t n = tok->n_vocab;
    /* special ids */
    const struct {
        const char *name;
        int32_t id;
    } ids[] = {{"bos", tok->bos}, {"eos", tok->eos}, {"eot", tok->eot},
               {"eom", tok->eom}, {"unk", tok->unk}, {"pad", tok->pad}};
    for (size_t i = 0; i < sizeof ids / sizeof ids[0]; i++)
        if (ids[i].id < -1 || ids[i].id >= n)
            return trit_error(TRIT_ERR_FORMAT, "tokenizer: %s token id %d outside the vocabulary of %d",
                              ids[i].name, ids[i].id, n);

    /* byte map */
    for (int b = 0; b < 256; b++) tok->byte_map_len[b] = (uint8_t)bytelevel_utf8((uint8_t)b, tok->byte_map[b]);

    /* pieces: decoded into a temporary buffer, then appended to the arena (which may move) */
    size_t max_text = 0;
    for (int32_t id = 0; id < n; id++)
        if (tok->tokens[id].text_len > max_text) max_text = tok->tokens[id].text_len;
    char *buf = malloc(max_text + 1);
    if (!buf) return trit_error(TRIT_ERR_OUT_OF_MEMORY, "tokenizer: out of memory");
    tok->max_piece = 0;
    for (int32_t id = 0; id < n; id++) {
        size_t len = decode_token(tok, id, buf);
        struct tok_entry *e = &tok->tokens[id];
        if (len == e->text_len && memcmp(buf, tok->arena + e->text_off, len) == 0) {
            e->piece_off = e->text_off; /* same bytes: share them */
        } else {
            enum trit_status st = arena_append(tok, buf, len, &e->piece_off);
            if (st != TRIT_OK) {
                free(buf);
                return st;
            }
        }
        e->piece_len = (uint32_t)len;
        if (len > tok->max_piece) tok->max_piece = len;
    }
    free(buf);

    /* byte -> token */
    for (int b = 0; b < 256; b++) {
        int32_t id = -1;
        if (tok->kind == TRIT_TOKENIZER_BPE) {
            id = vocab_find(tok, tok->byte_map[b], tok->byte_map_len[b]);
        } else {
            static const char hex[] = "0123456789ABCDEF";
            char name[6] = {'<', '0', 'x', hex[b >> 4], hex[b & 15], '>'};
            id = vocab_find(tok, name, sizeof name);
            if (id < 0 && b < 0x80) {
                char c = (char)b;
                id = vocab_find(tok, &c, 1);
            }
        }
        tok->byte_token[b] = id;
    }

    /* SPM: may words be merged one at a time? Only if no token holds "▁" after another character. */
    tok->spm_word_split = tok->kind == TRIT_TOKENIZER_SPM;
    for (int32_t id = 0; id < n && tok->spm_word_split; id++) {
        const char *t = vocab_text(tok, id);
        uint32_t len = tok->tokens[id].text_len;
        for (uint32_t k = 1; k + 3 <= len; k++)
            if (memcmp(t + k, "\xe2\x96\x81", 3) == 0 && (k < 3 || memcmp(t + k - 3, "\xe2\x96\x81", 3) != 0)) {
                tok->spm_word_split = false;
                break;
            }
    }

    /* tokens matched in raw text first */
    free(tok->specials);
    tok->specials = NULL;
    tok->n_specials = 0;
    memset(tok->special_first, 0, sizeof tok->special_first);
    int32_t n_sp = 0;
    for (int32_t id = 0; id < n; id++) {
        uint8_t t = tok->tokens[id].type;
        if ((t == TRIT_TOKEN_CONTROL || t == TRIT_TOKEN_UNKNOWN || t == TRIT_TOKEN_USER_DEFINED) &&
            tok->tokens[id].text_len > 0)
            n_sp++;
    }
    if (n_sp) {
        /* sort key: longest text first, then lowest id */
        uint64_t *keys = malloc((size_t)n_sp * sizeof *keys);
        tok->specials = malloc((size_t)n_sp * sizeof *tok->specials);
        if (!keys || !tok->specials) {
            free(keys);
            return trit_error(TRIT_ERR_OUT_OF_MEMORY, "tokenizer: out of memory");
        }
        int32_t k = 0;
        for (int32_t id = 0; id < n; id++) {
            uint8_t t = tok->tokens[id].type;
            if ((t == TRIT_TOKEN_CONTROL || t == TRIT_TOKEN_UNKNOWN || t == TRIT_TOKEN_USER_DEFINED) &&
                tok->tokens[id].text_len > 0) {
                keys[k++] = (uint64_t)(UINT32_MAX - tok->tokens[id].text_len) << 32 | (uint32_t)id;
                tok->special_first[(uint8_t)vocab_text(tok, id)[0]] = true;
            }
        }
        qsort(keys, (size_t)n_sp, sizeof *keys, cmp_u64);
        for (k = 0; k < n_sp; k++) tok->specials[k] = (int32_t)(uint32_t)keys[k];
        tok->n_specials = n_sp;
        free(keys);
    }

    /* end of turn / generation */
    if (tok->eot < 0)
        for (size_t k = 0; k < sizeof EOT_NAMES / sizeof EOT_NAMES[0] && tok->eot < 0; k++) {
            int32_t id = vocab_find(tok, EOT_NAMES[k], strlen(EOT_NAMES[k]));
            if (id >= 0 && tok->tokens[id].type == TRIT_TOKEN_CONTROL) tok->eot = id;
        }
    if (tok->eom < 0) {
        int32_t id = vocab_find(tok, EOM_NAMES[0], strlen(EOM_NAMES[0]));
        if (id >= 0 && tok->tokens[id].type == TRIT_TOKEN_CONTROL) tok->eom = id;
    }
    free(tok->eog);
    size_t n_names = sizeof EOT_NAMES / sizeof EOT_NAMES[0] + 1;
    tok->eog = malloc((3 + n_names) * sizeof *tok->eog);
    if (!tok->eog) return trit_error(TRIT_ERR_OUT_OF_MEMORY, "tokenizer: out of memory");
    tok->n_eog = 0;
    int32_t cand[3 + sizeof EOT_NAMES / sizeof EOT_NAMES[0] + 1];
    int n_cand = 0;
    cand[n_cand++] = tok->eos;
    cand[n_cand++] = tok->eot;
    cand[n_cand++] = tok->eom;
    for (size_t k = 0; k < sizeof EOT_NAMES / sizeof EOT_NAMES[0]; k++)
        cand[n_cand++] = vocab_find(tok, EOT_NAMES[k], strlen(EOT_NAMES[k]));
    cand[n_cand++] = vocab_find(tok, EOM_NAMES[0], strlen(EOM_NAMES[0]));
    for (int k = 0; k < n_cand; k++) {
        int32_t id = cand[k];
        if (id < 0) continue;
        /* named tokens count only when they are control tokens; eos/eot/eom always */
        if (k >= 3 && tok->tokens[id].type != TRIT_TOKEN_CONTROL) continue;
        bool seen = false;
        for (int32_t j = 0; j < tok->n_eog; j++) seen |= tok->eog[j] == id;
        if (!seen) tok->eog[tok->n_eog++] = id;
    }
    qsort(tok->eog, (size_t)tok->n_eog, sizeof *tok->eog, cmp_i32);
    return TRIT_OK;
}

/* ---- pre-tokenizer regexes -------------------------------------------------------------------- */

enum trit_status vocab_add_regex(struct trit_tokenizer *tok, const char *pattern, size_t len,
                                 bool literal, const char *what) {
    if (tok->n_regex >= TOK_MAX_REGEX)
        return trit_error(TRIT_ERR_UNSUPPORTED, "tokenizer: more than %d pre-tokenizer splits in %s",
                          TOK_MAX_REGEX, what);
    int err = 0;
    PCRE2_SIZE off = 0;
    /* PCRE2_LITERAL takes UTF but not UCP (nothing to classify in a literal) */
    uint32_t opts = literal ? PCRE2_UTF | PCRE2_LITERAL : PCRE2_UTF | PCRE2_UCP;
    pcre2_code *code = pcre2_compile((PCRE2_SPTR)pattern, len, opts, &err, &off, NULL);
    if (!code) {
        PCRE2_UCHAR msg[256];
        pcre2_get_error_message(err, msg, sizeof msg);
        return trit_error(TRIT_ERR_UNSUPPORTED, "tokenizer: the pre-tokenizer regex of %s does not compile "
                          "at offset %zu: %s", what, (size_t)off, (const char *)msg);
    }
    /* JIT is a speed-up only: when unavailable (or it fails) pcre2_match interprets the pattern. */
    int jit = pcre2_jit_compile(code, PCRE2_JIT_COMPLETE);
    if (jit != 0) TRIT_LOG_D("tokenizer: PCRE2 JIT unavailable (%d); the regex is interpreted", jit);
    tok->regex[tok->n_regex++] = code;
    return TRIT_OK;
}

enum trit_status vocab_set_pre_name(struct trit_tokenizer *tok, const char *name) {
    static const char *const llama3[] = {"llama3", "llama-v3", "llama-bpe", "falcon3"};
    static const char *const gpt2[] = {"gpt2", "gpt-2", "mpt", "olmo"};
    /* llama.cpp's LLAMA_VOCAB_PRE_TYPE_QWEN2 names whose tokenizer.json we have seen: NFC normalizer,
     * the Qwen2 Split, ByteLevel without its regex, no ignore_merges; BOS only where the file says */
    static const char *const qwen2[] = {"qwen2", "deepseek-r1-qwen"};
    for (size_t i = 0; i < sizeof qwen2 / sizeof qwen2[0]; i++)
        if (strcmp(name, qwen2[i]) == 0) {
            tok->nfc = true;
            return vocab_add_regex(tok, TOK_REGEX_QWEN2, sizeof TOK_REGEX_QWEN2 - 1, false, name);
        }
    for (size_t i = 0; i < sizeof llama3 / sizeof llama3[0]; i++)
        if (strcmp(name, llama3[i]) == 0) {
            tok->ignore_merges = true;
            tok->add_bos = true;
            return vocab_add_regex(tok, TOK_REGEX_LLAMA3, sizeof TOK_REGEX_LLAMA3 - 1, false, name);
        }
    for (size_t i = 0; i < sizeof gpt2 / sizeof gpt2[0]; i++)
        if (strcmp(name, gpt2[i]) == 0) return vocab_add_regex(tok, TOK_REGEX_GPT2, sizeof TOK_REGEX_GPT2 - 1, false, name);
    return trit_error(TRIT_ERR_UNSUPPORTED, "tokenizer: unknown pre-tokenizer tokenizer.ggml.pre = '%s' "
                      "(known: llama3, llama-v3, llama-bpe, falcon3, qwen2, deepseek-r1-qwen, gpt2, gpt-2, mpt, olmo)", name);
}

/* ---- scratch ---------------------------------------------------------------------------------- */

void scratch_free(struct tok_scratch *s) {
    free(s->sym);
    free(s->heap);
    free(s->buf);
    memset(s, 0, sizeof *s);
}

enum trit_status scratch_reserve(struct tok_scratch *s, size_t n_sym, size_t n_buf) {
    if (n_sym > s->sym_cap) {
        size_t cap = s->sym_cap ? s->sym_cap : 256;
        while (cap < n_sym) cap *= 2;
        struct tok_symbol *p = realloc(s->sym, cap * sizeof *p);
        if (!p) return trit_error(TRIT_ERR_OUT_OF_MEMORY, "tokenizer: out of memory");
        s->sym = p;
        s->sym_cap = cap;
    }
    if (n_buf > s->buf_cap) {
        size_t cap = s->buf_cap ? s->buf_cap : 1024;
        while (cap < n_buf) cap *= 2;
        char *p = realloc(s->buf, cap);
        if (!p) return trit_error(TRIT_ERR_OUT_OF_MEMORY, "tokenizer: out of memory");
        s->buf = p;
        s->buf_cap = cap;
    }
    return TRIT_OK;
}

/* Binary min-heap on key. */
enum trit_status heap_push(struct tok_scratch *s, struct tok_heap_item item) {
    if (s->heap_n == s->heap_cap) {
        size_t cap = s->heap_cap ? s->heap_cap * 2 : 256;
        struct tok_heap_item *p = realloc(s->heap, cap * sizeof *p);
        if (!p) return trit_error(TRIT_ERR_OUT_OF_MEMORY, "tokenizer: out of memory");
        s->heap = p;
        s->heap_cap = cap;
    }
    size_t i = s->heap_n++;
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (s->heap[parent].key <= item.key) break;
        s->heap[i] = s->heap[parent];
        i = parent;
    }
    s->heap[i] = item;
    return TRIT_OK;
}

bool heap_pop(struct tok_scratch *s, struct tok_heap_item *out) {
    if (s->heap_n == 0) return false;
    *out = s->heap[0];
    struct tok_heap_item last = s->heap[--s->heap_n];
    size_t n = s->heap_n, i = 0;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= n) break;
        if (c + 1 < n && s->heap[c + 1].key < s->heap[c].key) c++;
        if (last.key <= s->heap[c].key) break;
        s->heap[i] = s->heap[c];
        i = c;
    }
    if (n) s->heap[i] = last;
    return true;
}

enum trit_status tokens_push(struct trit_tokens *out, int32_t id) {
    if (out->n == out->cap) {
        size_t cap = out->cap ? out->cap * 2 : 64;
        if (cap > SIZE_MAX / sizeof *out->ids) return trit_error(TRIT_ERR_OUT_OF_MEMORY, "tokenizer: too many tokens");
        int32_t *p = realloc(out->ids, cap * sizeof *p);
        if (!p) return trit_error(TRIT_ERR_OUT_OF_MEMORY, "tokenizer: out of memory for %zu tokens", cap);
        out->ids = p;
        out->cap = cap;
    }
    out->ids[out->n++] = id;
    return TRIT_OK;
}

void trit_tokens_free(struct trit_tokens *t) {
    if (!t) return;
    free(t->ids);
    t->ids = NULL;
    t->n = t->cap = 0;
}
