/*
 * support.h: helpers shared by the Criterion tests: seeded random data, poisoned buffers, fixture
 * paths and the GPU gate.
 */
#ifndef TRIT_TEST_SUPPORT_H
#define TRIT_TEST_SUPPORT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* xorshift64* generator: tests draw fresh data from a seed they print on failure. */
struct test_rng {
    uint64_t state;
};
/* Seeds from TRIT_TEST_SEED when set, else from `fallback` mixed with the clock, and logs the seed
 * with cr_log_info so a failure can be replayed. */
void test_rng_seed(struct test_rng *rng, uint64_t fallback);
uint64_t test_rng_u64(struct test_rng *rng);
/* Uniform in [lo, hi). */
float test_rng_uniform(struct test_rng *rng, float lo, float hi);
/* Uniform integer in [lo, hi]. */
int64_t test_rng_int(struct test_rng *rng, int64_t lo, int64_t hi);
/* A standard normal draw (Box-Muller). */
float test_rng_normal(struct test_rng *rng);

/* n bytes whose address is `offset` past a 64-byte boundary (1 for int8 data, 4 for fp32: every
 * vector width finds them misaligned), so that a kernel that assumed alignment crashes in the test
 * and not at a user's. Free with test_free_offset. */
void *test_alloc_offset(size_t n_bytes, size_t offset);
void test_free_offset(void *p, size_t offset);

/* Fills n bytes with 0xA5 so that an output a kernel forgot to write is seen. */
void test_poison(void *buf, size_t n_bytes);

/* A scratch folder for the tests of a suite: .init = test_tmp_make, .fini = test_tmp_remove
 * (Criterion runs each test in a process of its own, so each gets a fresh one). test_tmp_make
 * creates /tmp/trit-test-XXXXXX; test_tmp_dir is its path; test_tmp_path(name) is dir/name in one
 * of four rotating buffers; test_tmp_remove deletes it and all it holds (links are removed, never
 * followed). */
void test_tmp_make(void);
void test_tmp_remove(void);
const char *test_tmp_dir(void);
const char *test_tmp_path(const char *name);

/* Path of a file under tests/data, in a static buffer valid until the next call. */
const char *test_data_path(const char *name);

/* The GPU gate. Returns true when a CUDA device exists. Otherwise it skips the calling test with
 * a message (cr_skip), or fails it when TRIT_REQUIRE_GPU=1. Use as the first line of a gpu test:
 *     if (!test_require_gpu()) return;                                                          */
bool test_require_gpu(void);

/* ---- random batches of several sequences (test_batch.c on the CPU, test_cuda_backend.c and
 * test_cuda_tp.c on GPUs) ------------------------------------------------------------------------
 * A sequence of the schedule. ids: the tokens it holds in the end (n_total); alone: its rows of
 * logits run alone, after n_prompt, n_prompt + 1, ..., n_total tokens ((n_total - n_prompt + 1) rows
 * of n_vocab). src >= 0: it starts as a fork of sequence src's first `keep` tokens (ids[0..keep)
 * equal src's), once src holds them. junk_from >= 0: positions junk_from .. junk_to - 1 first run
 * junk[] (rows unchecked), then the sequence is trimmed back to junk_from and goes on with ids. */
struct test_bseq {
    const int32_t *ids, *junk;
    const float *alone;
    int32_t n_prompt, n_total, src, keep, junk_from, junk_to;
};
#define TEST_BSEQ_MAX 16
/* What runs the batches. decode: a batch of n tokens that continue their sequences; returns the rows
 * of each sequence's last token in the batch, in batch order, and their count. */
struct test_batch_target {
    void *self;
    const float *(*decode)(void *self, const int32_t *tok, const int32_t *pos, const int32_t *seq, int32_t n,
                           int32_t *n_rows);
    void (*fork)(void *self, int32_t src, int32_t dst, int32_t keep);
    void (*trim)(void *self, int32_t seq, int32_t keep);
    int32_t (*length)(void *self, int32_t seq);
};
/* The target over a context (trit_decode_batch, trit_seq_fork, trit_seq_trim, trit_seq_length);
 * ctx is a trit_context. */
struct test_batch_target test_batch_ctx(void *ctx);
/* Runs n_seq (<= TEST_BSEQ_MAX) sequences at once in steps of at most max_step (<= 256) tokens:
 * each started sequence adds a random chunk of 1 .. 40 tokens of its prompt (or junk run), or its
 * next token, interleaved at random. Every row that comes back equals the sequence alone, bit for
 * bit; every sequence's every row is seen; lengths are checked after each step. The sequences are
 * left as they end. `what` names the run in failure messages. */
void test_batch_run(const struct test_batch_target *t, struct test_rng *rng, const struct test_bseq *seqs,
                    int n_seq, int64_t n_vocab, int32_t max_step, const char *what);

#endif /* TRIT_TEST_SUPPORT_H */
