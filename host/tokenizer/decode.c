/*
 * decode.c: ids -> bytes. Pieces were decoded once at load (vocab.c), so this is lookups and copies:
 * no allocation. The streaming decoder holds back an unfinished UTF-8 character between tokens.
 */
#include <string.h>

#include "tokenizer/vocab.h"

static const char REPLACEMENT[3] = {(char)0xEF, (char)0xBF, (char)0xBD}; /* U+FFFD */

const char *trit_tokenizer_piece(const struct trit_tokenizer *tok, int32_t id, unsigned flags, size_t *len) {
    *len = 0;
    if (!tok || id < 0 || id >= tok->n_vocab) return NULL;
    const struct tok_entry *e = &tok->tokens[id];
    const char *p = tok->arena + e->piece_off;
    if ((e->type == TRIT_TOKEN_CONTROL || e->type == TRIT_TOKEN_UNKNOWN) && !(flags & TRIT_DECODE_SPECIAL)) return p;
    *len = e->piece_len;
    return p;
}

/* The piece of `id` with the one leading space removed while *strip is set; *strip is cleared by
 * the first piece that is not empty. */
static const char *piece_stripped(const struct trit_tokenizer *tok, int32_t id, unsigned flags, bool *strip,
                                  size_t *len) {
    const char *p = trit_tokenizer_piece(tok, id, flags, len);
    if (*strip && *len > 0) {
        *strip = false;
        if (p[0] == ' ') {
            p++;
            (*len)--;
        }
    }
    return p;
}

enum trit_status trit_detokenize(const struct trit_tokenizer *tok, const int32_t *ids, size_t n,
                                 unsigned flags, char *out, size_t capacity, size_t *n_out) {
    if (n_out) *n_out = 0;
    if (!tok || !n_out || (!ids && n) || (!out && capacity))
        return trit_error(TRIT_ERR_INVALID_ARG, "trit_detokenize: NULL argument");
    bool strip = (flags & TRIT_DECODE_STRIP_SPACE) && tok->add_space_prefix;
    size_t total = 0;
    for (size_t i = 0; i < n; i++) {
        if (ids[i] < 0 || ids[i] >= tok->n_vocab)
            return trit_error(TRIT_ERR_INVALID_ARG, "trit_detokenize: id %d at %zu outside the vocabulary of %d",
                              ids[i], i, tok->n_vocab);
        size_t len;
        const char *p = piece_stripped(tok, ids[i], flags, &strip, &len);
        if (total + len <= capacity) memcpy(out + total, p, len);
        total += len;
    }
    *n_out = total;
    if (total > capacity)
        return trit_error(TRIT_ERR_INVALID_ARG, "trit_detokenize: %zu bytes do not fit in %zu", total, capacity);
    return TRIT_OK;
}

/* ---- streaming -------------------------------------------------------------------------------- */

size_t trit_tok_stream_max_out(const struct trit_tokenizer *tok) {
    /* every byte may become a 3-byte U+FFFD; up to 3 bytes may be pending from before */
    return 3 * (trit_tokenizer_max_piece_bytes(tok) + 3);
}

void trit_tok_stream_init(struct trit_tok_stream *s, const struct trit_tokenizer *tok, unsigned flags) {
    memset(s, 0, sizeof *s);
    s->tok = tok;
    s->flags = flags;
    s->strip_space = (flags & TRIT_DECODE_STRIP_SPACE) && tok && tok->add_space_prefix;
}

enum trit_status trit_tok_stream_feed(struct trit_tok_stream *s, int32_t id, char *out, size_t capacity,
                                      size_t *n_out) {
    if (n_out) *n_out = 0;
    if (!s || !s->tok || !n_out || (!out && capacity))
        return trit_error(TRIT_ERR_INVALID_ARG, "trit_tok_stream_feed: NULL argument");
    if (id < 0 || id >= s->tok->n_vocab)
        return trit_error(TRIT_ERR_INVALID_ARG, "trit_tok_stream_feed: id %d outside the vocabulary of %d", id,
                          s->tok->n_vocab);
    bool strip = s->strip_space;
    size_t plen;
    const char *p = piece_stripped(s->tok, id, s->flags, &strip, &plen);
    size_t total = s->n_pending + plen;
    if (capacity / 3 < total)
        return trit_error(TRIT_ERR_INVALID_ARG, "trit_tok_stream_feed: output of %zu bytes is below 3 * %zu",
                          capacity, total);
    s->strip_space = strip;

    /* walk pending ++ piece one character at a time through a 4-byte window */
    size_t i = 0, o = 0;
    while (i < total) {
        uint8_t win[4];
        size_t w = total - i < 4 ? total - i : 4;
        for (size_t k = 0; k < w; k++) {
            size_t j = i + k;
            win[k] = j < s->n_pending ? s->pending[j] : (uint8_t)p[j - s->n_pending];
        }
        size_t len;
        enum utf8_result r = utf8_classify(win, w, &len);
        if (r == UTF8_INCOMPLETE) { /* only possible at the end: keep it for the next token */
            for (size_t k = 0; k < w; k++) s->pending[k] = win[k];
            s->n_pending = (uint8_t)w;
            *n_out = o;
            return TRIT_OK;
        }
        if (r == UTF8_VALID) {
            memcpy(out + o, win, len);
            o += len;
        } else {
            memcpy(out + o, REPLACEMENT, 3);
            o += 3;
        }
        i += len;
    }
    s->n_pending = 0;
    *n_out = o;
    return TRIT_OK;
}

enum trit_status trit_tok_stream_flush(struct trit_tok_stream *s, char *out, size_t capacity, size_t *n_out) {
    if (n_out) *n_out = 0;
    if (!s || !n_out || (!out && capacity)) return trit_error(TRIT_ERR_INVALID_ARG, "trit_tok_stream_flush: NULL argument");
    if (s->n_pending == 0) return TRIT_OK;
    if (capacity < 3) return trit_error(TRIT_ERR_INVALID_ARG, "trit_tok_stream_flush: output below 3 bytes");
    memcpy(out, REPLACEMENT, 3);
    *n_out = 3;
    s->n_pending = 0;
    return TRIT_OK;
}
