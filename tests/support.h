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

#endif /* TRIT_TEST_SUPPORT_H */
