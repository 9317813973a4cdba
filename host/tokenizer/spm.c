/*
 * spm.c: SentencePiece BPE (the Llama 2 vocab, GGUF tokenizer.ggml.model "llama"), as llama.cpp's
 * llm_tokenizer_spm_session does it:
 *   1. prefix a space (when asked) and replace every ' ' with U+2581 "▁";
 *   2. start from UTF-8 characters (ill-formed bytes: one maximal subpart per symbol);
 *   3. repeatedly merge the adjacent pair whose concatenation is a token with the highest score,
 *      ties to the left, through a max-heap over a linked list of symbols;
 *   4. a final symbol that is not a token becomes its bytes' <0xXX> tokens (else unk).
 * A Llama 2 tokenizer.json (spm_by_rank) runs step 3 as transformers' BPE does: the pair with the
 * lowest merge rank first, ties to the left; a character outside the vocab never merges and falls
 * back to bytes.
 * When the vocab allows it (spm_word_split), step 3 runs word by word: the same merges, in the same
 * order within each word, but heaps of a word's size instead of the text's.
 */
#include <string.h>

#include "tokenizer/vocab.h"

/* Maps a float to a uint32 with the same order (flip all bits of negatives, the sign of the rest). */
static uint32_t float_order(float f) {
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return (u & 0x80000000u) ? ~u : u | 0x80000000u;
}

static enum trit_status try_pair(const struct trit_tokenizer *tok, struct tok_scratch *s, int32_t l, int32_t r) {
    if (l < 0 || r < 0) return TRIT_OK;
    const struct tok_symbol *sl = &s->sym[l], *sr = &s->sym[r];
    struct tok_heap_item item = {.left = l, .right = r};
    if (tok->spm_by_rank) { /* min-heap key: lowest merge rank first, then leftmost */
        uint32_t rank;
        int32_t merged;
        if (!vocab_merge(tok, sl->id, sr->id, &rank, &merged)) return TRIT_OK;
        item.key = (uint64_t)rank << 32 | (uint32_t)l;
        item.a = sl->id;
        item.b = sr->id;
    } else { /* min-heap key: highest score first, then leftmost */
        uint32_t n = sl->len + sr->len;
        int32_t id = vocab_find(tok, s->buf + sl->start, n);
        if (id < 0) return TRIT_OK;
        item.key = (uint64_t)(UINT32_MAX - float_order(tok->tokens[id].score)) << 32 | (uint32_t)l;
        item.a = (int32_t)n;
    }
    return heap_push(s, item);
}

/* Whether a queued pair still describes the two symbols (else a side changed since: stale). */
static bool pair_current(const struct trit_tokenizer *tok, const struct tok_symbol *l, const struct tok_symbol *r,
                         const struct tok_heap_item *it) {
    if (l->len == 0 || r->len == 0 || l->next != it->right) return false;
    if (tok->spm_by_rank) return l->id == it->a && r->id == it->b;
    return l->len + r->len == (uint32_t)it->a;
}

/* Whether a "▁" starts at buf[i]. */
static bool is_mark(const char *buf, size_t m, uint32_t i) {
    return i + 3 <= m && memcmp(buf + i, "\xe2\x96\x81", 3) == 0;
}

/* Runs the merges of the symbols [first, end), linked among themselves only. */
static enum trit_status merge_segment(const struct trit_tokenizer *tok, struct tok_scratch *s, int32_t first,
                                      int32_t end) {
    struct tok_symbol *sym = s->sym;
    s->heap_n = 0;
    for (int32_t i = first; i + 1 < end; i++) TRIT_TRY(try_pair(tok, s, i, i + 1));
    struct tok_heap_item it;
    while (heap_pop(s, &it)) {
        struct tok_symbol *l = &sym[it.left], *r = &sym[it.right];
        if (!pair_current(tok, l, r, &it)) continue;
        if (tok->spm_by_rank) {
            uint32_t rank;
            vocab_merge(tok, l->id, r->id, &rank, &l->id); /* found when queued */
        }
        symbols_join(sym, it.left);
        TRIT_TRY(try_pair(tok, s, l->prev, it.left));
        TRIT_TRY(try_pair(tok, s, it.left, l->next));
    }
    return TRIT_OK;
}

/* Emits the symbols of the list starting at `first`: their tokens, or their bytes' <0xXX>. */
static enum trit_status emit_segment(const struct trit_tokenizer *tok, struct tok_scratch *s, int32_t first,
                                     struct trit_tokens *out) {
    const struct tok_symbol *sym = s->sym;
    for (int32_t i = first; i >= 0; i = sym[i].next) {
        int32_t id = vocab_find(tok, s->buf + sym[i].start, sym[i].len);
        if (id >= 0) {
            TRIT_TRY(tokens_push(out, id));
            continue;
        }
        for (uint32_t k = 0; k < sym[i].len; k++) { /* byte fallback */
            int32_t b = tok->byte_token[(uint8_t)s->buf[sym[i].start + k]];
            if (b < 0) b = tok->unk;
            if (b >= 0) TRIT_TRY(tokens_push(out, b));
        }
    }
    return TRIT_OK;
}

enum trit_status spm_encode_fragment(const struct trit_tokenizer *tok, struct tok_scratch *s,
                                     const char *text, size_t len, bool prefix_space,
                                     struct trit_tokens *out) {
    size_t n_space = 0;
    for (size_t i = 0; i < len; i++) n_space += text[i] == ' ';
    if (len > (size_t)INT32_MAX / 3 - 3) return trit_error(TRIT_ERR_INVALID_ARG, "tokenizer: text too long");
    size_t n = len + 2 * n_space + (prefix_space ? 3 : 0); /* each space becomes 3 bytes, "▁" is 3 */
    TRIT_TRY(scratch_reserve(s, n, n));
    char *buf = s->buf;
    size_t m = 0;
    if (prefix_space) {
        memcpy(buf, "\xe2\x96\x81", 3);
        m = 3;
    }
    for (size_t i = 0; i < len; i++) {
        if (text[i] == ' ') {
            memcpy(buf + m, "\xe2\x96\x81", 3);
            m += 3;
        } else {
            buf[m++] = text[i];
        }
    }

    struct tok_symbol *sym = s->sym;
    int32_t n_sym = 0;
    for (size_t i = 0; i < m;) {
        /* One character per symbol. Ill-formed bytes are cut by the strict classifier, not by the
         * lead byte's claimed length as llama.cpp does: that way "\xff " cannot swallow the "▁"
         * after it (which would then come back as bytes, not as a space). Same result for valid text. */
        size_t cl;
        if (utf8_classify((const uint8_t *)buf + i, m - i, &cl) == UTF8_INCOMPLETE) cl = m - i;
        /* by rank, merges go by ids: a character outside the vocab has none and never merges */
        int32_t id = tok->spm_by_rank ? vocab_find(tok, buf + i, cl) : -1;
        sym[n_sym] = (struct tok_symbol){.prev = n_sym - 1, .next = n_sym + 1, .start = (uint32_t)i, .len = (uint32_t)cl, .id = id};
        n_sym++;
        i += cl;
    }
    if (n_sym == 0) return TRIT_OK;
    sym[n_sym - 1].next = -1;

    /* Merge one segment at a time: the whole text, or each word (a symbol starting with "▁" that
     * follows a symbol that is not "▁") when no merge can cross a word start (spm_word_split). */
    for (int32_t seg = 0; seg < n_sym;) {
        int32_t end = seg + 1;
        if (tok->spm_word_split)
            while (end < n_sym && !(is_mark(buf, m, sym[end].start) && !is_mark(buf, m, sym[end - 1].start))) end++;
        else
            end = n_sym;
        sym[seg].prev = -1;
        sym[end - 1].next = -1;
        TRIT_TRY(merge_segment(tok, s, seg, end));
        TRIT_TRY(emit_segment(tok, s, seg, out));
        seg = end;
    }
    return TRIT_OK;
}
