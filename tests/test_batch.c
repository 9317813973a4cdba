// labels: unit
// cpu families: each
/* test_batch.c: batches of several sequences over the paged KV cache (include/trit.h,
 * trit_decode_batch and trit_seq_*): a sequence's logits are bit-identical whether it runs alone or
 * batched with others, in any chunking and interleaving; forks share blocks and copy one only when
 * they write into it; the pool's blocks come back; a batch that cannot run changes nothing. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "support.h"
#include "trit.h"

#define OK(call) cr_assert_eq((call), TRIT_OK, "%s", trit_last_error())

static const char *const fixtures[] = {
    "fixtures/bitnet-2b4t-tiny",     /* head_dim 32, GQA 4/2: the vectorized attention */
    "fixtures/bitnet-1bitllm-tiny",  /* head_dim 16, no GQA */
    "fixtures/llama-bitlinear-tiny", /* head_dim 28: the portable attention */
    "synthetic:tiny-qwen3",          /* group scales, activations per 64, q/k norms */
};

static trit_model *load(const char *name) {
    trit_model *m = NULL;
    OK(trit_model_load(strncmp(name, "synthetic:", 10) == 0 ? name : test_data_path(name), NULL, &m));
    return m;
}

static trit_context *make(trit_model *m, int32_t n_ctx, int32_t n_batch, int32_t n_seq, int32_t n_kv) {
    struct trit_context_params p = trit_context_default_params();
    p.device = TRIT_DEVICE_CPU;
    p.n_ctx = n_ctx;
    p.n_batch = n_batch;
    p.n_threads = 2;
    p.n_seq_max = n_seq;
    p.n_kv = n_kv;
    trit_context *ctx = NULL;
    OK(trit_context_init(m, &p, &ctx));
    return ctx;
}

#define N_SEQ 6
#define MAX_TOK 200
#define FORK 5      /* a fork of sequence 3 inside its second block (copy on write) */
#define FORK_KEEP 65
#define JUNK 4      /* runs junk tokens at 40 .. 89 first, then is trimmed back to 40 */

/* A sequence of the test: its tokens (prompt then continuation), the junk it runs first (JUNK), and
 * the logits rows that running it alone gives after the prompt and after each continuation token. */
struct seq {
    int32_t ids[MAX_TOK], junk[MAX_TOK];
    int32_t n_prompt, n_total;
    float *alone; /* (n_total - n_prompt + 1, V) */
};

/* The sequence alone: the prompt in one trit_decode call, then one token at a time. */
static void run_alone(trit_model *m, struct seq *s) {
    const int32_t V = trit_model_n_vocab(m);
    trit_context *ctx = make(m, 256, 64, 1, 0);
    const float *row;
    OK(trit_decode(ctx, s->ids, s->n_prompt, &row));
    s->alone = malloc((size_t)(s->n_total - s->n_prompt + 1) * (size_t)V * sizeof(float));
    cr_assert_not_null(s->alone);
    memcpy(s->alone, row, (size_t)V * sizeof(float));
    for (int32_t i = s->n_prompt; i < s->n_total; i++) {
        OK(trit_decode(ctx, &s->ids[i], 1, &row));
        memcpy(s->alone + (size_t)(i - s->n_prompt + 1) * (size_t)V, row, (size_t)V * sizeof(float));
    }
    trit_context_free(ctx);
}

static void make_seqs(struct test_rng *rng, int32_t V, struct seq seqs[N_SEQ]) {
    for (int k = 0; k < N_SEQ; k++) {
        struct seq *s = &seqs[k];
        /* prompts across block boundaries: 1, 63, 64, 65 and longer */
        static const int32_t prompts[N_SEQ] = {1, 63, 64, 65, 150, 70};
        s->n_prompt = prompts[k];
        s->n_total = s->n_prompt + (int32_t)test_rng_int(rng, 3, 20);
        for (int32_t i = 0; i < s->n_total; i++) s->ids[i] = (int32_t)test_rng_int(rng, 0, V - 1);
        for (int32_t i = 0; i < MAX_TOK; i++) s->junk[i] = (int32_t)test_rng_int(rng, 0, V - 1);
    }
    memcpy(seqs[FORK].ids, seqs[3].ids, FORK_KEEP * sizeof(int32_t));
}

/* Every sequence at once, in steps (support.h's test_batch_run): each running sequence adds a random
 * chunk of its prompt or its next token, in an interleaved order; the fork starts once its source
 * holds the prefix; every row of logits that comes back is compared with the sequence's run alone,
 * bit for bit. Then the pool holds exactly the sequences' blocks, and gets every one back. */
static void run_batched(trit_model *m, struct test_rng *rng, struct seq seqs[N_SEQ], int32_t n_batch) {
    trit_context *ctx = make(m, 256, n_batch, N_SEQ, 0);
    struct test_bseq view[N_SEQ];
    for (int k = 0; k < N_SEQ; k++)
        view[k] = (struct test_bseq){.ids = seqs[k].ids, .junk = seqs[k].junk, .alone = seqs[k].alone,
                                     .n_prompt = seqs[k].n_prompt, .n_total = seqs[k].n_total, .src = -1,
                                     .junk_from = -1};
    view[FORK].src = 3, view[FORK].keep = FORK_KEEP;
    view[JUNK].junk_from = 40, view[JUNK].junk_to = 90;
    const struct test_batch_target t = test_batch_ctx(ctx);
    char what[64];
    snprintf(what, sizeof what, "batches of at most %d tokens", n_batch);
    test_batch_run(&t, rng, view, N_SEQ, trit_model_n_vocab(m), n_batch, what);
    struct trit_kv_stats kv;
    trit_kv_stats(ctx, &kv);
    int32_t held = -(FORK_KEEP / TRIT_KV_BLOCK); /* the fork shares its source's full blocks */
    for (int k = 0; k < N_SEQ; k++) held += trit_kv_blocks_for(seqs[k].n_total);
    cr_assert_eq(kv.n_blocks - kv.n_free, held, "blocks in use: one per %d tokens of each sequence", TRIT_KV_BLOCK);
    for (int k = 0; k < N_SEQ; k++) OK(trit_seq_remove(ctx, k));
    trit_kv_stats(ctx, &kv);
    cr_assert_eq(kv.n_free, kv.n_blocks, "every block back in the pool");
    trit_context_free(ctx);
}

Test(batch, logits_equal_each_sequence_alone) {
    struct test_rng rng;
    test_rng_seed(&rng, 15);
    for (size_t f = 0; f < sizeof fixtures / sizeof *fixtures; f++) {
        trit_model *m = load(fixtures[f]);
        struct seq seqs[N_SEQ];
        make_seqs(&rng, trit_model_n_vocab(m), seqs);
        for (int k = 0; k < N_SEQ; k++) run_alone(m, &seqs[k]);
        run_batched(m, &rng, seqs, 96);
        run_batched(m, &rng, seqs, 7); /* small batches: many steps, sequences cut mid-prompt */
        for (int k = 0; k < N_SEQ; k++) free(seqs[k].alone);
        trit_model_free(m);
    }
}

/* Rows in batch order, for the tokens flagged; a flag on a prompt token gives its row too. */
Test(batch, rows_follow_the_flags) {
    trit_model *m = load(fixtures[0]);
    const int32_t V = trit_model_n_vocab(m);
    const int32_t ids[6] = {5, 9, 17, 33, 2, 71};
    /* alone, every row: logits_all */
    struct trit_context_params p = trit_context_default_params();
    p.device = TRIT_DEVICE_CPU, p.n_ctx = 64, p.n_batch = 8, p.n_threads = 2, p.logits_all = true;
    trit_context *all = NULL;
    OK(trit_context_init(m, &p, &all));
    const float *ref;
    OK(trit_decode(all, ids, 6, &ref));

    trit_context *ctx = make(m, 64, 8, 2, 0);
    const int32_t pos[6] = {0, 1, 2, 3, 4, 5}, sid[6] = {0, 0, 0, 0, 0, 0};
    const int8_t want[6] = {1, 0, 1, 0, 0, 0};
    const struct trit_batch b = {.n_tokens = 6, .token = ids, .pos = pos, .seq_id = sid, .logits = want};
    const float *rows;
    int32_t n_rows;
    cr_assert_eq(trit_decode_batch(ctx, &b, &rows, &n_rows), TRIT_OK);
    cr_assert_eq(n_rows, 2);
    cr_assert_arr_eq(rows, ref, (size_t)V * sizeof(float));
    cr_assert_arr_eq(rows + V, ref + 2 * V, (size_t)V * sizeof(float));
    /* three rows are more than n_seq_max (2) allows without logits_all: refused, nothing runs */
    const int32_t pos2[3] = {0, 1, 2}, sid2[3] = {1, 1, 1};
    const int8_t three[3] = {1, 1, 1};
    const struct trit_batch c = {.n_tokens = 3, .token = ids, .pos = pos2, .seq_id = sid2, .logits = three};
    cr_assert_eq(trit_decode_batch(ctx, &c, &rows, &n_rows), TRIT_ERR_INVALID_ARG);
    cr_assert_eq(trit_seq_length(ctx, 1), 0);
    /* no rows at all: a prefill chunk */
    const int8_t none[3] = {0, 0, 0};
    const struct trit_batch d = {.n_tokens = 3, .token = ids, .pos = pos2, .seq_id = sid2, .logits = none};
    OK(trit_decode_batch(ctx, &d, &rows, &n_rows));
    cr_assert_eq(n_rows, 0);
    cr_assert_eq(trit_seq_length(ctx, 1), 3);
    trit_context_free(ctx);
    trit_context_free(all);
    trit_model_free(m);
}

/* A fork shares the prefix's blocks; each branch then writes into the shared partial block through
 * its own copy, and gets the logits of its prompt + continuation alone. */
Test(batch, fork_shares_blocks_and_copies_on_write) {
    trit_model *m = load(fixtures[0]);
    const int32_t V = trit_model_n_vocab(m);
    struct test_rng rng;
    test_rng_seed(&rng, 16);
    int32_t prompt[100], cont[3][4];
    for (int i = 0; i < 100; i++) prompt[i] = (int32_t)test_rng_int(&rng, 0, V - 1);
    for (int k = 0; k < 3; k++)
        for (int i = 0; i < 4; i++) cont[k][i] = (int32_t)test_rng_int(&rng, 0, V - 1);

    for (int keep_i = 0; keep_i < 2; keep_i++) {
        const int32_t keep = keep_i == 0 ? 100 : 70; /* all of it, or a prefix that ends mid-block */
        trit_context *ctx = make(m, 256, 128, 3, 0);
        struct trit_kv_stats kv;
        int32_t pos[128], sid[128];
        for (int i = 0; i < 100; i++) pos[i] = i, sid[i] = 0;
        const struct trit_batch b = {.n_tokens = 100, .token = prompt, .pos = pos, .seq_id = sid};
        OK(trit_decode_batch(ctx, &b, NULL, NULL));
        if (keep < 100) OK(trit_seq_trim(ctx, 0, keep));
        trit_kv_stats(ctx, &kv);
        const int32_t used0 = kv.n_blocks - kv.n_free;
        cr_assert_eq(used0, 2);
        OK(trit_seq_fork(ctx, 0, 1, keep));
        OK(trit_seq_fork(ctx, 0, 2, keep));
        trit_kv_stats(ctx, &kv);
        cr_assert_eq(kv.n_blocks - kv.n_free, used0, "a fork takes no block");
        cr_assert_eq(trit_seq_fork(ctx, 0, 1, keep), TRIT_ERR_INVALID_ARG, "sequence 1 is not empty");
        /* each branch its continuation, one token per step, all three in one batch */
        for (int i = 0; i < 4; i++) {
            int32_t t[3], ps[3], ss[3];
            for (int k = 0; k < 3; k++) t[k] = cont[k][i], ps[k] = keep + i, ss[k] = k;
            const struct trit_batch c = {.n_tokens = 3, .token = t, .pos = ps, .seq_id = ss};
            const float *rows;
            int32_t n_rows;
            OK(trit_decode_batch(ctx, &c, &rows, &n_rows));
            cr_assert_eq(n_rows, 3);
            for (int k = 0; k < 3; k++) {
                /* alone: prompt[0..keep) + cont[k][0..i] */
                trit_context *one = make(m, 256, 128, 1, 0);
                int32_t all[128];
                memcpy(all, prompt, (size_t)keep * sizeof(int32_t));
                memcpy(all + keep, cont[k], (size_t)(i + 1) * sizeof(int32_t));
                const float *ref;
                OK(trit_decode(one, all, keep + i + 1, &ref));
                cr_assert_arr_eq(rows + (size_t)k * (size_t)V, ref, (size_t)V * sizeof(float), "keep %d, branch %d, step %d",
                                 keep, k, i);
                trit_context_free(one);
            }
        }
        /* the shared partial block was copied for two of the three writers (the last holder writes
         * into it in place): 2 shared full-or-partial blocks + 2 copies */
        trit_kv_stats(ctx, &kv);
        const int32_t partial = keep % TRIT_KV_BLOCK != 0;
        cr_assert_eq(kv.n_blocks - kv.n_free, used0 + 2 * partial + (keep + 4 > 128 ? 3 : 0));
        for (int k = 0; k < 3; k++) OK(trit_seq_remove(ctx, k));
        trit_kv_stats(ctx, &kv);
        cr_assert_eq(kv.n_free, kv.n_blocks);
        trit_context_free(ctx);
    }
    trit_model_free(m);
}

/* A pool too small for a batch: TRIT_ERR_CONTEXT_FULL, and nothing changes; a sequence longer than
 * n_ctx likewise. After a removal the same batch runs. */
Test(batch, full_pool_refuses_and_changes_nothing) {
    trit_model *m = load(fixtures[0]);
    trit_context *ctx = make(m, 128, 128, 2, 128); /* two blocks for both sequences */
    int32_t ids[128] = {0}, pos[128], sid[128];
    for (int i = 0; i < 128; i++) pos[i] = i, sid[i] = 0, ids[i] = i % 50;
    const struct trit_batch a = {.n_tokens = 100, .token = ids, .pos = pos, .seq_id = sid};
    OK(trit_decode_batch(ctx, &a, NULL, NULL));
    struct trit_kv_stats kv;
    trit_kv_stats(ctx, &kv);
    cr_assert_eq(kv.n_blocks, 2);
    cr_assert_eq(kv.n_free, 0);
    int32_t sid1[64];
    for (int i = 0; i < 64; i++) sid1[i] = 1;
    const struct trit_batch b = {.n_tokens = 1, .token = ids, .pos = pos, .seq_id = sid1};
    cr_assert_eq(trit_decode_batch(ctx, &b, NULL, NULL), TRIT_ERR_CONTEXT_FULL);
    cr_assert(strstr(trit_last_error(), "KV cache full") != NULL, "%s", trit_last_error());
    cr_assert_eq(trit_seq_length(ctx, 1), 0);
    cr_assert_eq(trit_seq_length(ctx, 0), 100);
    /* the single-sequence call on the same pool: 28 more tokens fit in sequence 0's blocks, 29 do not */
    const float *row;
    cr_assert_eq(trit_decode(ctx, ids, 29, &row), TRIT_ERR_CONTEXT_FULL);
    cr_assert_eq(trit_context_n_past(ctx), 100);
    OK(trit_decode(ctx, ids, 28, &row));
    OK(trit_seq_remove(ctx, 0));
    OK(trit_decode_batch(ctx, &b, NULL, NULL));
    cr_assert_eq(trit_seq_length(ctx, 1), 1);
    trit_context_free(ctx);
    trit_model_free(m);
}

/* Every malformed batch is TRIT_ERR_INVALID_ARG (or CONTEXT_FULL) and leaves the sequences as they were. */
Test(batch, bad_batches_change_nothing) {
    trit_model *m = load(fixtures[0]);
    const int32_t V = trit_model_n_vocab(m);
    trit_context *ctx = make(m, 16, 8, 2, 0);
    const int32_t tok[4] = {1, 2, 3, 4}, pos[4] = {0, 1, 2, 3}, s0[4] = {0, 0, 0, 0};
    OK(trit_decode_batch(ctx, &(struct trit_batch){.n_tokens = 2, .token = tok, .pos = pos, .seq_id = s0}, NULL, NULL));
    const int32_t gap[2] = {3, 4}, back[2] = {1, 2}, next[2] = {2, 3}, out_of_range[2] = {2, 2}, neg[2] = {-1, 0};
    const int32_t bad_tok[2] = {1, V}, two[2] = {0, 2};
    struct {
        struct trit_batch b;
        enum trit_status want;
    } cases[] = {
        {{.n_tokens = 2, .token = tok, .pos = gap, .seq_id = s0}, TRIT_ERR_INVALID_ARG},        /* a gap */
        {{.n_tokens = 2, .token = tok, .pos = back, .seq_id = s0}, TRIT_ERR_INVALID_ARG},       /* rewrites */
        {{.n_tokens = 2, .token = tok, .pos = next, .seq_id = out_of_range}, TRIT_ERR_INVALID_ARG},
        {{.n_tokens = 2, .token = tok, .pos = next, .seq_id = neg}, TRIT_ERR_INVALID_ARG},
        {{.n_tokens = 2, .token = tok, .pos = next, .seq_id = two}, TRIT_ERR_INVALID_ARG},     /* sequence 2 of 0..1 */
        {{.n_tokens = 2, .token = bad_tok, .pos = next, .seq_id = s0}, TRIT_ERR_INVALID_ARG},
        {{.n_tokens = 0, .token = tok, .pos = next, .seq_id = s0}, TRIT_ERR_INVALID_ARG},
        {{.n_tokens = 9, .token = tok, .pos = next, .seq_id = s0}, TRIT_ERR_INVALID_ARG},     /* n_batch 8 */
        {{.n_tokens = 2, .token = NULL, .pos = next, .seq_id = s0}, TRIT_ERR_INVALID_ARG},
        {{.n_tokens = 2, .token = tok, .pos = NULL, .seq_id = s0}, TRIT_ERR_INVALID_ARG},
        {{.n_tokens = 2, .token = tok, .pos = next, .seq_id = NULL}, TRIT_ERR_INVALID_ARG},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        cr_assert_eq(trit_decode_batch(ctx, &cases[i].b, NULL, NULL), cases[i].want, "case %zu", i);
        cr_assert_eq(trit_seq_length(ctx, 0), 2, "case %zu", i);
        cr_assert_eq(trit_seq_length(ctx, 1), 0, "case %zu", i);
    }
    cr_assert_eq(trit_decode_batch(ctx, NULL, NULL, NULL), TRIT_ERR_INVALID_ARG);
    /* past n_ctx (16): sequence 0 at 14 tokens cannot take 3 more */
    int32_t p14[8], s8[8], t8[8] = {0};
    for (int i = 0; i < 8; i++) p14[i] = 2 + i, s8[i] = 0;
    OK(trit_decode_batch(ctx, &(struct trit_batch){.n_tokens = 8, .token = t8, .pos = p14, .seq_id = s8}, NULL, NULL));
    for (int i = 0; i < 4; i++) p14[i] = 10 + i;
    OK(trit_decode_batch(ctx, &(struct trit_batch){.n_tokens = 4, .token = t8, .pos = p14, .seq_id = s8}, NULL, NULL));
    for (int i = 0; i < 3; i++) p14[i] = 14 + i;
    cr_assert_eq(trit_decode_batch(ctx, &(struct trit_batch){.n_tokens = 3, .token = t8, .pos = p14, .seq_id = s8}, NULL, NULL),
                 TRIT_ERR_CONTEXT_FULL);
    cr_assert_eq(trit_seq_length(ctx, 0), 14);
    /* the sequence calls' own checks */
    cr_assert_eq(trit_seq_length(ctx, 2), -1);
    cr_assert_eq(trit_seq_length(ctx, -1), -1);
    cr_assert_eq(trit_seq_trim(ctx, 0, 15), TRIT_ERR_INVALID_ARG);
    cr_assert_eq(trit_seq_trim(ctx, 0, -1), TRIT_ERR_INVALID_ARG);
    cr_assert_eq(trit_seq_trim(ctx, 5, 0), TRIT_ERR_INVALID_ARG);
    cr_assert_eq(trit_seq_remove(ctx, 2), TRIT_ERR_INVALID_ARG);
    cr_assert_eq(trit_seq_fork(ctx, 0, 0, 1), TRIT_ERR_INVALID_ARG);
    cr_assert_eq(trit_seq_fork(ctx, 0, 1, 15), TRIT_ERR_INVALID_ARG);
    cr_assert_eq(trit_seq_fork(ctx, 0, 2, 1), TRIT_ERR_INVALID_ARG);
    cr_assert_eq(trit_kv_blocks_for(0), 0);
    cr_assert_eq(trit_kv_blocks_for(1), 1);
    cr_assert_eq(trit_kv_blocks_for(TRIT_KV_BLOCK), 1);
    cr_assert_eq(trit_kv_blocks_for(TRIT_KV_BLOCK + 1), 2);
    trit_context_free(ctx);

    struct trit_context_params p = trit_context_default_params();
    p.device = TRIT_DEVICE_CPU, p.n_ctx = 16;
    trit_context *bad = NULL;
    p.n_seq_max = -1;
    cr_assert_eq(trit_context_init(m, &p, &bad), TRIT_ERR_INVALID_ARG);
    p.n_seq_max = TRIT_SEQ_MAX + 1;
    cr_assert_eq(trit_context_init(m, &p, &bad), TRIT_ERR_INVALID_ARG);
    p.n_seq_max = 1, p.n_kv = -5;
    cr_assert_eq(trit_context_init(m, &p, &bad), TRIT_ERR_INVALID_ARG);
    cr_assert_null(bad);
    trit_model_free(m);
}
