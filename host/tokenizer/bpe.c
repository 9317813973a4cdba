/*
 * bpe.c: byte-level BPE (GPT-2, Llama 3). For each pre-tokenizer piece:
 *   1. with ignore_merges (Llama 3), a piece whose mapped text is a token is that token;
 *   2. otherwise every byte starts as the symbol of its GPT-2 mapped character, the symbols form a
 *      doubly linked list, and adjacent pairs that have a merge wait in a min-heap keyed by
 *      (rank, left position): the lowest rank merges first, ties to the left (llama.cpp,
 *      transformers). A popped pair whose symbols changed since it was queued is stale and skipped.
 * Cost: O(n log n) per piece of n bytes.
 */
#include "tokenizer/vocab.h"

struct bpe_ctx {
    const struct trit_tokenizer *tok;
    struct tok_scratch *s;
    struct trit_tokens *out;
};

static enum trit_status try_pair(const struct trit_tokenizer *tok, struct tok_scratch *s, int32_t l, int32_t r) {
    if (l < 0 || r < 0) return TRIT_OK;
    uint32_t rank;
    int32_t merged;
    if (!vocab_merge(tok, s->sym[l].id, s->sym[r].id, &rank, &merged)) return TRIT_OK;
    struct tok_heap_item item = {
        .key = (uint64_t)rank << 32 | (uint32_t)l, .left = l, .right = r, .a = s->sym[l].id, .b = s->sym[r].id};
    return heap_push(s, item);
}

/* A symbol without a token (a byte the vocab lacks): its bytes' tokens, else unk, else nothing
 * (llama.cpp drops what it cannot look up). */
static enum trit_status emit_bytes(const struct trit_tokenizer *tok, const uint8_t *p, size_t n,
                                   struct trit_tokens *out) {
    for (size_t i = 0; i < n; i++) {
        int32_t id = tok->byte_token[p[i]];
        if (id < 0) id = tok->unk;
        if (id >= 0) TRIT_TRY(tokens_push(out, id));
    }
    return TRIT_OK;
}

static enum trit_status bpe_piece(const char *piece, size_t n, void *user) {
    struct bpe_ctx *c = user;
    const struct trit_tokenizer *tok = c->tok;
    struct tok_scratch *s = c->s;
    const uint8_t *p = (const uint8_t *)piece;

    if (tok->ignore_merges && n > 1) {
        if (n > SIZE_MAX / 2) return trit_error(TRIT_ERR_INVALID_ARG, "tokenizer: text too long");
        TRIT_TRY(scratch_reserve(s, 0, 2 * n));
        size_t m = 0;
        for (size_t i = 0; i < n; i++) {
            s->buf[m] = tok->byte_map[p[i]][0];
            s->buf[m + 1] = tok->byte_map[p[i]][1];
            m += tok->byte_map_len[p[i]];
        }
        int32_t id = vocab_find(tok, s->buf, m);
        if (id >= 0) return tokens_push(c->out, id);
    }
    if (n == 1) {
        if (tok->byte_token[p[0]] >= 0) return tokens_push(c->out, tok->byte_token[p[0]]);
        return emit_bytes(tok, p, 1, c->out);
    }
    if (n > INT32_MAX) return trit_error(TRIT_ERR_INVALID_ARG, "tokenizer: a piece of %zu bytes is too long", n);

    TRIT_TRY(scratch_reserve(s, n, 0));
    struct tok_symbol *sym = s->sym;
    for (size_t i = 0; i < n; i++)
        sym[i] = (struct tok_symbol){.prev = (int32_t)i - 1,
                                     .next = i + 1 < n ? (int32_t)i + 1 : -1,
                                     .start = (uint32_t)i,
                                     .len = 1,
                                     .id = tok->byte_token[p[i]]};
    s->heap_n = 0;
    for (size_t i = 0; i + 1 < n; i++) TRIT_TRY(try_pair(tok, s, (int32_t)i, (int32_t)i + 1));

    struct tok_heap_item it;
    while (heap_pop(s, &it)) {
        struct tok_symbol *l = &sym[it.left], *r = &sym[it.right];
        /* stale: a side was merged away or grew since the pair was queued */
        if (l->len == 0 || r->len == 0 || l->next != it.right || l->id != it.a || r->id != it.b) continue;
        uint32_t rank;
        int32_t merged;
        if (!vocab_merge(tok, l->id, r->id, &rank, &merged)) continue; /* cannot happen: it was queued */
        l->id = merged;
        symbols_join(sym, it.left);
        TRIT_TRY(try_pair(tok, s, l->prev, it.left));
        TRIT_TRY(try_pair(tok, s, it.left, l->next));
    }
    for (int32_t i = 0; i >= 0; i = sym[i].next) {
        if (sym[i].id >= 0) TRIT_TRY(tokens_push(c->out, sym[i].id));
        else TRIT_TRY(emit_bytes(tok, p + sym[i].start, sym[i].len, c->out));
    }
    return TRIT_OK;
}

enum trit_status bpe_encode_fragment(const struct trit_tokenizer *tok, struct tok_scratch *s,
                                     pcre2_match_data *md, const char *text, size_t len,
                                     struct trit_tokens *out) {
    struct bpe_ctx c = {tok, s, out};
    return pretok_split(tok, md, text, len, bpe_piece, &c);
}
