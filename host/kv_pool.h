/*
 * kv_pool.h: the bookkeeping of the paged KV cache (docs/design.md section 9): which blocks of
 * TRIT_KV_BLOCK tokens each sequence holds, and which are free. The cache itself (the K and V rows)
 * belongs to the backend; the pool only hands out block ids, and says when a shared block must be
 * copied before a sequence writes into it. A block shared by forked sequences is counted once per
 * holder (ref); it goes back to the free list when its last holder lets go.
 */
#ifndef TRIT_KV_POOL_H
#define TRIT_KV_POOL_H

#include <stdint.h>

#include "core/core.h"

struct trit_kv_seq {
    int32_t *blocks;  /* [max_blocks]: block ids of positions 0 .. len - 1, in order */
    int32_t n_blocks; /* blocks held: ceil(len / TRIT_KV_BLOCK) */
    int32_t len;      /* tokens */
};

struct trit_kv_pool {
    int32_t n_blocks, n_free, n_seq, max_blocks; /* max_blocks: the most one sequence holds (n_ctx) */
    int32_t *free_ids; /* [n_blocks]: a stack, the top n_free entries are free */
    int32_t *ref;      /* [n_blocks]: how many sequences hold each block */
    struct trit_kv_seq *seq;
};

/* Blocks that hold n tokens. */
static inline int32_t trit_kv_pool_blocks(int64_t n) { return (int32_t)((n + TRIT_KV_BLOCK - 1) / TRIT_KV_BLOCK); }

/* A pool of n_blocks blocks for n_seq sequences of at most n_ctx tokens each. */
enum trit_status trit_kv_pool_init(struct trit_kv_pool *p, int32_t n_blocks, int32_t n_seq, int64_t n_ctx);
void trit_kv_pool_free(struct trit_kv_pool *p);
/* Sequence s holds positions 0 .. new_len - 1 (new_len >= its length; the caller checked n_ctx).
 * New blocks come from the free list. When the block that position len falls in is shared, it is
 * replaced by a fresh one: *copy_from / *copy_to are then the blocks whose rows the backend must
 * copy before anything is written (else both -1). TRIT_ERR_CONTEXT_FULL, with nothing changed, when
 * too few blocks are free. */
enum trit_status trit_kv_pool_grow(struct trit_kv_pool *p, int32_t s, int32_t new_len, int32_t *copy_from,
                                   int32_t *copy_to);
/* Sequence s keeps its first n_keep tokens (<= its length); blocks past them are released. */
void trit_kv_pool_trim(struct trit_kv_pool *p, int32_t s, int32_t n_keep);
/* Sequence dst (empty) holds src's first n_keep tokens (<= src's length) in src's blocks. */
void trit_kv_pool_fork(struct trit_kv_pool *p, int32_t src, int32_t dst, int32_t n_keep);
/* The shared block that growing sequence s to new_len writes into (its copy is counted by
 * trit_kv_pool_need), or -1. */
int32_t trit_kv_pool_shared_write(const struct trit_kv_pool *p, int32_t s, int32_t new_len);
/* Blocks that a grow of sequence s to new_len takes from the free list, now (its copy included). */
int32_t trit_kv_pool_need(const struct trit_kv_pool *p, int32_t s, int32_t new_len);

#endif /* TRIT_KV_POOL_H */
