/*
 * kv_pool.c: the paged KV cache's block bookkeeping (kv_pool.h).
 */
#include "kv_pool.h"

enum trit_status trit_kv_pool_init(struct trit_kv_pool *p, int32_t n_blocks, int32_t n_seq, int64_t n_ctx) {
    *p = (struct trit_kv_pool){0};
    if (n_blocks < 1 || n_seq < 1 || n_ctx < 1 || n_ctx > INT32_MAX)
        return trit_error(TRIT_ERR_INVALID_ARG, "KV pool: %d blocks, %d sequences, context %lld out of range", n_blocks,
                          n_seq, (long long)n_ctx);
    p->n_blocks = p->n_free = n_blocks;
    p->n_seq = n_seq;
    p->max_blocks = trit_kv_pool_blocks(n_ctx);
    p->free_ids = trit_alloc((size_t)n_blocks * sizeof *p->free_ids);
    p->ref = trit_alloc((size_t)n_blocks * sizeof *p->ref);
    p->seq = trit_alloc((size_t)n_seq * sizeof *p->seq);
    int32_t *tables = p->seq ? trit_alloc((size_t)n_seq * (size_t)p->max_blocks * sizeof *tables) : NULL;
    if (!p->free_ids || !p->ref || !tables) {
        trit_free(tables);
        trit_kv_pool_free(p);
        return trit_error(TRIT_ERR_OUT_OF_MEMORY, "KV pool: out of memory for %d blocks and %d sequences", n_blocks,
                          n_seq);
    }
    /* block 0 on top: a lone sequence takes blocks 0, 1, 2, ... (the contiguous cache's layout) */
    for (int32_t i = 0; i < n_blocks; i++) p->free_ids[i] = n_blocks - 1 - i;
    for (int32_t s = 0; s < n_seq; s++) p->seq[s].blocks = tables + (size_t)s * (size_t)p->max_blocks;
    return TRIT_OK;
}

void trit_kv_pool_free(struct trit_kv_pool *p) {
    if (p->seq) trit_free(p->seq[0].blocks);
    trit_free(p->seq);
    trit_free(p->free_ids);
    trit_free(p->ref);
    *p = (struct trit_kv_pool){0};
}

static void release(struct trit_kv_pool *p, int32_t block) {
    if (--p->ref[block] == 0) p->free_ids[p->n_free++] = block;
}

static int32_t take(struct trit_kv_pool *p) {
    const int32_t b = p->free_ids[--p->n_free];
    p->ref[b] = 1;
    return b;
}

/* Whether growing s writes into a block it shares: position len falls inside a held, shared block. */
static bool must_copy(const struct trit_kv_pool *p, const struct trit_kv_seq *q, int32_t new_len) {
    return new_len > q->len && q->len % TRIT_KV_BLOCK != 0 && p->ref[q->blocks[q->len / TRIT_KV_BLOCK]] > 1;
}

int32_t trit_kv_pool_shared_write(const struct trit_kv_pool *p, int32_t s, int32_t new_len) {
    const struct trit_kv_seq *q = &p->seq[s];
    return must_copy(p, q, new_len) ? q->blocks[q->len / TRIT_KV_BLOCK] : -1;
}

int32_t trit_kv_pool_need(const struct trit_kv_pool *p, int32_t s, int32_t new_len) {
    const struct trit_kv_seq *q = &p->seq[s];
    const int32_t grow = trit_kv_pool_blocks(new_len) - q->n_blocks;
    return (grow > 0 ? grow : 0) + must_copy(p, q, new_len);
}

enum trit_status trit_kv_pool_grow(struct trit_kv_pool *p, int32_t s, int32_t new_len, int32_t *copy_from,
                                   int32_t *copy_to) {
    struct trit_kv_seq *q = &p->seq[s];
    *copy_from = *copy_to = -1;
    const int32_t need = trit_kv_pool_need(p, s, new_len);
    if (need > p->n_free)
        return trit_error(TRIT_ERR_CONTEXT_FULL,
                          "KV cache full: sequence %d needs %d more blocks of %d tokens, %d of %d are free", s, need,
                          TRIT_KV_BLOCK, p->n_free, p->n_blocks);
    if (must_copy(p, q, new_len)) {
        const int32_t i = q->len / TRIT_KV_BLOCK;
        *copy_from = q->blocks[i];
        *copy_to = take(p);
        release(p, q->blocks[i]);
        q->blocks[i] = *copy_to;
    }
    while (q->n_blocks < trit_kv_pool_blocks(new_len)) q->blocks[q->n_blocks++] = take(p);
    q->len = new_len;
    return TRIT_OK;
}

void trit_kv_pool_trim(struct trit_kv_pool *p, int32_t s, int32_t n_keep) {
    struct trit_kv_seq *q = &p->seq[s];
    const int32_t keep = trit_kv_pool_blocks(n_keep);
    while (q->n_blocks > keep) release(p, q->blocks[--q->n_blocks]);
    q->len = n_keep;
}

void trit_kv_pool_fork(struct trit_kv_pool *p, int32_t src, int32_t dst, int32_t n_keep) {
    const struct trit_kv_seq *a = &p->seq[src];
    struct trit_kv_seq *b = &p->seq[dst];
    b->n_blocks = trit_kv_pool_blocks(n_keep);
    for (int32_t i = 0; i < b->n_blocks; i++) {
        b->blocks[i] = a->blocks[i];
        p->ref[b->blocks[i]]++;
    }
    b->len = n_keep;
}
