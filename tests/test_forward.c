// labels: unit
/*
 * test_forward.c: the forward pass written once (host/forward.h): the checks every backend's
 * forward call makes, the order in which the program calls a backend's ops (a recording backend),
 * that a failing op stops the pass with its status, the one-rank communicator the CPU backend runs
 * on (host/tp/comm_self.c), and the one shard table (host/tp/plan.h) at one rank and at several.
 *
 *   ctest --test-dir build -R test_forward --output-on-failure
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "forward.h"
#include "tp/comm.h"
#include "tp/plan.h"

static struct trit_hparams small_hp(void) {
    return (struct trit_hparams){.family = TRIT_FAMILY_BITNET_B158, .n_vocab = 50, .dim = 32, .n_layers = 2,
                                 .n_heads = 6, .n_kv_heads = 2, .head_dim = 8, .ffn_dim = 40, .ctx_train = 64};
}

/* ---- the checks --------------------------------------------------------------------------------- */

Test(forward, batch_checks_refuse_what_does_not_fit) {
    const struct trit_hparams hp = small_hp();
    const int32_t ok[3] = {0, 49, 7}, bad[2] = {3, 50}, neg[1] = {-1};
    struct trit_forward_batch b;
    cr_assert_eq(trit_forward_batch_make(&hp, 16, 4, false, ok, 3, 13, &b), TRIT_OK);
    cr_assert(b.n == 3 && b.pos0 == 13 && b.first_out == 2 && b.n_out == 1 && b.tokens == ok);
    cr_assert_eq(trit_forward_batch_make(&hp, 16, 4, true, ok, 3, 0, &b), TRIT_OK);
    cr_assert(b.first_out == 0 && b.n_out == 3);

    cr_assert_eq(trit_forward_batch_make(&hp, 16, 4, false, ok, 0, 0, &b), TRIT_ERR_INVALID_ARG);
    cr_assert_eq(trit_forward_batch_make(&hp, 16, 2, false, ok, 3, 0, &b), TRIT_ERR_INVALID_ARG);
    cr_assert_eq(trit_forward_batch_make(&hp, 16, 4, false, NULL, 1, 0, &b), TRIT_ERR_INVALID_ARG);
    cr_assert_eq(trit_forward_batch_make(&hp, 16, 4, false, ok, 3, 14, &b), TRIT_ERR_CONTEXT_FULL);
    cr_assert_eq(trit_forward_batch_make(&hp, 16, 4, false, ok, 1, -1, &b), TRIT_ERR_CONTEXT_FULL);
    /* a position near INT64_MAX must not wrap around into the context */
    cr_assert_eq(trit_forward_batch_make(&hp, 16, 4, false, ok, 3, INT64_MAX - 1, &b), TRIT_ERR_CONTEXT_FULL);
    cr_assert_eq(trit_forward_batch_make(&hp, 16, 4, false, bad, 2, 0, &b), TRIT_ERR_INVALID_ARG);
    cr_assert(strstr(trit_last_error(), "token id 50"), "%s", trit_last_error());
    cr_assert_eq(trit_forward_batch_make(&hp, 16, 4, false, neg, 1, 0, &b), TRIT_ERR_INVALID_ARG);
}

/* ---- the program, over a recording backend ------------------------------------------------------ */

enum { OP_EMBED, OP_NORM, OP_MM_IN, OP_ROPE, OP_ATTN, OP_SHARD, OP_MM_OUT, OP_REDUCE, OP_HEAD, OP_GATHER };

struct rec {
    char log[512];
    int n_calls, fail_at; /* the call index that fails, or -1 */
};

static enum trit_status record(struct rec *r, int op, int64_t layer, int blk) {
    char e[64];
    snprintf(e, sizeof e, "%d:%lld:%d ", op, (long long)layer, blk);
    strncat(r->log, e, sizeof r->log - strlen(r->log) - 1);
    return r->n_calls++ == r->fail_at ? trit_error(TRIT_ERR_DEVICE, "op %d failed", op) : TRIT_OK;
}

static enum trit_status r_embed(void *be, const struct trit_forward_batch *b) {
    (void)b;
    return record(be, OP_EMBED, -1, -1);
}
static enum trit_status r_norm(void *be, int64_t l, enum trit_block k, const struct trit_forward_batch *b) {
    (void)b;
    return record(be, OP_NORM, l, (int)k);
}
static enum trit_status r_mm_in(void *be, int64_t l, enum trit_block k, const struct trit_forward_batch *b) {
    (void)b;
    return record(be, OP_MM_IN, l, (int)k);
}
static enum trit_status r_rope(void *be, int64_t l, const struct trit_forward_batch *b) {
    (void)b;
    return record(be, OP_ROPE, l, 0);
}
static enum trit_status r_attn(void *be, int64_t l, const struct trit_forward_batch *b) {
    (void)b;
    return record(be, OP_ATTN, l, 0);
}
static enum trit_status r_shard(void *be, int64_t l, enum trit_block k, const struct trit_forward_batch *b) {
    (void)b;
    return record(be, OP_SHARD, l, (int)k);
}
static enum trit_status r_mm_out(void *be, int64_t l, enum trit_block k, const struct trit_forward_batch *b) {
    (void)b;
    return record(be, OP_MM_OUT, l, (int)k);
}
static enum trit_status r_reduce(void *be, int64_t l, enum trit_block k, const struct trit_forward_batch *b) {
    (void)b;
    return record(be, OP_REDUCE, l, (int)k);
}
static enum trit_status r_head(void *be, const struct trit_forward_batch *b) {
    (void)b;
    return record(be, OP_HEAD, -1, -1);
}
static enum trit_status r_gather(void *be, const struct trit_forward_batch *b) {
    (void)b;
    return record(be, OP_GATHER, -1, -1);
}

static const struct trit_layer_ops rec_ops = {
    .embed = r_embed, .norm_quant = r_norm, .matmul_in = r_mm_in, .rope_cache = r_rope, .attention = r_attn,
    .shard_quant = r_shard, .matmul_out = r_mm_out, .reduce = r_reduce, .head = r_head, .gather_logits = r_gather,
};

/* The documented order: embed; per layer the attention block (norm, q|k|v, rope, attention,
 * sub-norm and quantize, o, reduce) and the feed-forward block (norm, gate|up, act and quantize,
 * down, reduce); head; gather. */
static void expected_log(int64_t n_layers, char *out, size_t size) {
    out[0] = '\0';
    char e[64];
#define ADD(op, l, k)                                                                              \
    do {                                                                                           \
        snprintf(e, sizeof e, "%d:%lld:%d ", (op), (long long)(l), (k));                            \
        strncat(out, e, size - strlen(out) - 1);                                                   \
    } while (0)
    ADD(OP_EMBED, -1, -1);
    for (int64_t l = 0; l < n_layers; l++) {
        ADD(OP_NORM, l, TRIT_BLOCK_ATTN);
        ADD(OP_MM_IN, l, TRIT_BLOCK_ATTN);
        ADD(OP_ROPE, l, 0);
        ADD(OP_ATTN, l, 0);
        ADD(OP_SHARD, l, TRIT_BLOCK_ATTN);
        ADD(OP_MM_OUT, l, TRIT_BLOCK_ATTN);
        ADD(OP_REDUCE, l, TRIT_BLOCK_ATTN);
        ADD(OP_NORM, l, TRIT_BLOCK_FFN);
        ADD(OP_MM_IN, l, TRIT_BLOCK_FFN);
        ADD(OP_SHARD, l, TRIT_BLOCK_FFN);
        ADD(OP_MM_OUT, l, TRIT_BLOCK_FFN);
        ADD(OP_REDUCE, l, TRIT_BLOCK_FFN);
    }
    ADD(OP_HEAD, -1, -1);
    ADD(OP_GATHER, -1, -1);
#undef ADD
}

Test(forward, program_calls_every_op_in_order) {
    const struct trit_hparams hp = small_hp();
    const int32_t tok[2] = {1, 2};
    struct trit_forward_batch b;
    cr_assert_eq(trit_forward_batch_make(&hp, 16, 4, false, tok, 2, 0, &b), TRIT_OK);
    struct rec r = {.fail_at = -1};
    cr_assert_eq(trit_forward_run(&rec_ops, &r, &hp, &b), TRIT_OK);
    char want[512];
    expected_log(hp.n_layers, want, sizeof want);
    cr_assert_str_eq(r.log, want);
    cr_assert_eq(r.n_calls, 1 + 12 * hp.n_layers + 2);
}

Test(forward, a_failing_op_stops_the_pass_with_its_status) {
    const struct trit_hparams hp = small_hp();
    const int32_t tok[1] = {1};
    struct trit_forward_batch b;
    cr_assert_eq(trit_forward_batch_make(&hp, 16, 4, false, tok, 1, 0, &b), TRIT_OK);
    const int total = 1 + 12 * (int)hp.n_layers + 2;
    for (int k = 0; k < total; k++) {
        struct rec r = {.fail_at = k};
        cr_assert_eq(trit_forward_run(&rec_ops, &r, &hp, &b), TRIT_ERR_DEVICE, "failing call %d", k);
        cr_assert_eq(r.n_calls, k + 1, "failing call %d: %d calls made", k, r.n_calls);
    }
}

/* ---- the one-rank communicator ------------------------------------------------------------------ */

Test(forward, one_rank_communicator_is_the_identity) {
    struct trit_comm *c = NULL;
    cr_assert_eq(trit_comm_self_create(&c), TRIT_OK);
    cr_assert(trit_comm_rank(c) == 0 && trit_comm_size(c) == 1 && trit_comm_backend(c) == TRIT_COMM_SELF);
    int32_t acc[3] = {5, -7, 1 << 30};
    cr_assert_eq(trit_comm_allreduce(c, acc, 3, TRIT_COMM_I32, TRIT_COMM_SUM), TRIT_OK);
    cr_assert(acc[0] == 5 && acc[1] == -7 && acc[2] == 1 << 30);
    float mx[2] = {-1.5f, 2.0f};
    cr_assert_eq(trit_comm_allreduce(c, mx, 2, TRIT_COMM_F32, TRIT_COMM_MAX), TRIT_OK);
    cr_assert(mx[0] == -1.5f && mx[1] == 2.0f);
    const double send[4] = {1.0, -2.0, 3.5, 1e300};
    double recv[4] = {0};
    cr_assert_eq(trit_comm_allgather(c, send, recv, 4, TRIT_COMM_F64), TRIT_OK);
    cr_assert(memcmp(send, recv, sizeof send) == 0);
    /* bad arguments are refused as on any communicator */
    cr_assert_eq(trit_comm_allreduce(c, NULL, 2, TRIT_COMM_F32, TRIT_COMM_SUM), TRIT_ERR_INVALID_ARG);
    cr_assert_eq(trit_comm_allgather(c, send, NULL, 1, TRIT_COMM_F64), TRIT_ERR_INVALID_ARG);
    cr_assert_eq(trit_comm_barrier(c), TRIT_OK);
    trit_comm_free(c);
}

/* ---- the one shard table ------------------------------------------------------------------------ */

Test(forward, shard_table_is_the_whole_model_at_one_rank) {
    const struct trit_hparams hp = small_hp();
    struct trit_tp_plan pl;
    cr_assert_eq(trit_tp_plan_make(&hp, 0, 1, &pl), TRIT_OK);
    cr_assert(pl.head_c0 == 0 && pl.n_heads_c == hp.n_heads);
    for (int j = 0; j < TRIT_N_W; j++) {
        int64_t rows, cols;
        trit_weight_shape(&hp, (enum trit_weight)j, &rows, &cols);
        for (int g = 0; g < 2; g++) {
            const struct trit_tp_shard sh = trit_tp_shard_of(&pl, &hp, (enum trit_weight)j, g == 1);
            cr_assert_eq(sh.start, 0, "weight %d", j);
            cr_assert_eq(sh.n, sh.by_rows ? rows : cols, "weight %d", j);
        }
    }
}

/* Over P ranks the row-parallel shards (o's columns, down's columns) partition their inputs; the
 * column-parallel q is the rank's own heads (CPU ranks) or the whole GQA groups that contain them
 * (GPU ranks), and k, v are the KV heads of those groups. */
Test(forward, shard_table_partitions_the_row_parallel_inputs) {
    struct trit_hparams hp = small_hp();
    hp.n_heads = 20, hp.n_kv_heads = 5, hp.ffn_dim = 69; /* 2B-4T's head groups, an odd FFN */
    for (int P = 1; P <= 8; P++) {
        int64_t next_o = 0, next_down = 0;
        for (int r = 0; r < P; r++) {
            struct trit_tp_plan pl;
            cr_assert_eq(trit_tp_plan_make(&hp, r, P, &pl), TRIT_OK);
            const int64_t hd = hp.head_dim, group = hp.n_heads / hp.n_kv_heads;
            const struct trit_tp_shard q = trit_tp_shard_of(&pl, &hp, TRIT_W_Q, true);
            const struct trit_tp_shard q_own = trit_tp_shard_of(&pl, &hp, TRIT_W_Q, false);
            const struct trit_tp_shard k = trit_tp_shard_of(&pl, &hp, TRIT_W_K, false);
            const struct trit_tp_shard o = trit_tp_shard_of(&pl, &hp, TRIT_W_O, false);
            const struct trit_tp_shard d = trit_tp_shard_of(&pl, &hp, TRIT_W_DOWN, false);
            cr_assert(q.by_rows && q_own.by_rows && k.by_rows && !o.by_rows && !d.by_rows);
            cr_assert(q_own.start == o.start && q_own.n == o.n, "P %d rank %d: own q rows are not o's columns", P, r);
            cr_assert_eq(o.start, next_o, "P %d rank %d", P, r);
            cr_assert_eq(d.start, next_down, "P %d rank %d", P, r);
            next_o += o.n;
            next_down += d.n;
            cr_assert(q.start % (group * hd) == 0 && q.n % (group * hd) == 0, "P %d rank %d: q is not whole groups", P, r);
            cr_assert(q.start <= o.start && o.start + o.n <= q.start + q.n, "P %d rank %d: own heads outside q", P, r);
            cr_assert_eq(k.start, q.start / group, "P %d rank %d", P, r);
            cr_assert_eq(k.n, q.n / group, "P %d rank %d", P, r);
        }
        cr_assert_eq(next_o, hp.n_heads * hp.head_dim, "P %d", P);
        cr_assert_eq(next_down, hp.ffn_dim, "P %d", P);
    }
}
