/*
 * tokenize.c: the encode driver. Splits the text on special tokens first (leftmost, then longest:
 * control and unknown tokens with TRIT_TOKENIZE_PARSE_SPECIAL, user-defined ones always, as in
 * llama.cpp's tokenizer_st_partition), puts each raw fragment in NFC when the vocab says so (Qwen2;
 * Hugging Face normalizes the text between added tokens, never across them), runs the vocab's model
 * on it, and adds BOS/EOS as the vocab's flags say when TRIT_TOKENIZE_ADD_SPECIAL is given.
 */
#include <stdlib.h>
#include <string.h>

#include "tokenizer/vocab.h"

static bool is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f'; }

/* The special token that starts at text[i], or -1. `specials` is sorted longest first. */
static int32_t match_special(const struct trit_tokenizer *tok, const char *text, size_t len, size_t i,
                             bool parse_special) {
    for (int32_t k = 0; k < tok->n_specials; k++) {
        int32_t id = tok->specials[k];
        const struct tok_entry *e = &tok->tokens[id];
        if (!parse_special && e->type != TRIT_TOKEN_USER_DEFINED) continue;
        if (e->text_len > len - i) continue;
        const char *t = tok->arena + e->text_off;
        if (t[0] == text[i] && memcmp(t, text + i, e->text_len) == 0) return id;
    }
    return -1;
}

struct encoder {
    const struct trit_tokenizer *tok;
    struct tok_scratch s;
    struct nfc_scratch nfc;
    pcre2_match_data *md;
    bool prev_special; /* SPM: a space prefix goes on the first fragment and after each special */
};

static enum trit_status encode_raw(struct encoder *e, const char *text, size_t len, struct trit_tokens *out) {
    if (len == 0) return TRIT_OK; /* llama.cpp has no empty fragments: no lone "▁" after a special */
    if (e->tok->nfc) TRIT_TRY(nfc_apply(&e->nfc, text, len, &text, &len));
    if (e->tok->kind == TRIT_TOKENIZER_SPM) {
        bool prefix = e->tok->add_space_prefix && e->prev_special;
        e->prev_special = false;
        return spm_encode_fragment(e->tok, &e->s, text, len, prefix, out);
    }
    e->prev_special = false;
    return bpe_encode_fragment(e->tok, &e->s, e->md, text, len, out);
}

static enum trit_status encode(struct encoder *e, const char *text, size_t len, unsigned flags,
                               struct trit_tokens *out) {
    const struct trit_tokenizer *tok = e->tok;
    const bool add_special = flags & TRIT_TOKENIZE_ADD_SPECIAL;
    const bool parse_special = flags & TRIT_TOKENIZE_PARSE_SPECIAL;
    if (add_special && tok->add_bos && tok->bos >= 0) TRIT_TRY(tokens_push(out, tok->bos));

    size_t frag = 0; /* start of the pending raw fragment */
    if (tok->n_specials > 0) {
        for (size_t i = 0; i < len;) {
            int32_t id = tok->special_first[(uint8_t)text[i]] ? match_special(tok, text, len, i, parse_special) : -1;
            if (id < 0) {
                i++;
                continue;
            }
            const struct tok_entry *t = &tok->tokens[id];
            size_t end = i;
            if (t->attr & TOK_ATTR_LSTRIP)
                while (end > frag && is_space(text[end - 1])) end--;
            TRIT_TRY(encode_raw(e, text + frag, end - frag, out));
            TRIT_TRY(tokens_push(out, id));
            e->prev_special = true;
            i += t->text_len;
            if (t->attr & TOK_ATTR_RSTRIP)
                while (i < len && is_space(text[i])) i++;
            frag = i;
        }
    }
    TRIT_TRY(encode_raw(e, text + frag, len - frag, out));

    if (add_special && tok->add_eos && tok->eos >= 0) TRIT_TRY(tokens_push(out, tok->eos));
    return TRIT_OK;
}

enum trit_status trit_embed_tokenize(const struct trit_tokenizer *tok, const char *text, size_t len, unsigned flags,
                                     struct trit_tokens *out) {
    if (!tok || !out) return trit_error(TRIT_ERR_INVALID_ARG, "trit_embed_tokenize: NULL tokenizer or output");
    if (flags & ~TRIT_EMBED_NO_END) return trit_error(TRIT_ERR_INVALID_ARG, "trit_embed_tokenize: unknown flags 0x%x", flags);
    const size_t n0 = out->n;
    enum trit_status st = tok->add_bos && tok->bos >= 0 ? tokens_push(out, tok->bos) : TRIT_OK;
    if (st == TRIT_OK) st = trit_tokenize(tok, text, len, TRIT_TOKENIZE_PARSE_SPECIAL, out);
    if (st == TRIT_OK && !(flags & TRIT_EMBED_NO_END)) {
        const int32_t found = trit_tokenizer_find(tok, "<|endoftext|>", 13);
        const int32_t end = found >= 0 ? found : tok->eos;
        if (end >= 0 && (out->n == n0 || out->ids[out->n - 1] != end)) st = tokens_push(out, end);
    }
    if (st != TRIT_OK) out->n = n0;
    return st;
}

enum trit_status trit_tokenize(const struct trit_tokenizer *tok, const char *text, size_t len,
                               unsigned flags, struct trit_tokens *out) {
    if (!tok || !out || (!text && len))
        return trit_error(TRIT_ERR_INVALID_ARG, "trit_tokenize: NULL tokenizer, output or text");
    if (flags & ~(TRIT_TOKENIZE_ADD_SPECIAL | TRIT_TOKENIZE_PARSE_SPECIAL))
        return trit_error(TRIT_ERR_INVALID_ARG, "trit_tokenize: unknown flags 0x%x", flags);
    struct encoder e = {.tok = tok, .prev_special = true};
    if (tok->kind == TRIT_TOKENIZER_BPE && tok->n_regex > 0) {
        /* only the whole match is read: one ovector pair */
        e.md = pcre2_match_data_create(1, NULL);
        if (!e.md) return trit_error(TRIT_ERR_OUT_OF_MEMORY, "tokenizer: out of memory");
    }
    size_t n0 = out->n;
    enum trit_status st = encode(&e, text ? text : "", len, flags, out);
    if (st != TRIT_OK) out->n = n0;
    pcre2_match_data_free(e.md);
    scratch_free(&e.s);
    nfc_scratch_free(&e.nfc);
    return st;
}

enum trit_status trit_tokenize_into(const struct trit_tokenizer *tok, const char *text, size_t len,
                                    unsigned flags, int32_t *ids, size_t capacity, size_t *n_out) {
    if (n_out) *n_out = 0;
    if (!n_out || (!ids && capacity)) return trit_error(TRIT_ERR_INVALID_ARG, "trit_tokenize_into: NULL output");
    struct trit_tokens t = {0};
    TRIT_TRY(trit_tokenize(tok, text, len, flags, &t));
    *n_out = t.n;
    size_t n = t.n < capacity ? t.n : capacity;
    if (n) memcpy(ids, t.ids, n * sizeof *ids);
    trit_tokens_free(&t);
    if (*n_out > capacity)
        return trit_error(TRIT_ERR_INVALID_ARG, "trit_tokenize_into: %zu tokens do not fit in %zu", *n_out, capacity);
    return TRIT_OK;
}
