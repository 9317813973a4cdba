/* support.c: see support.h. */
#include "support.h"

#include <criterion/criterion.h>
#include <criterion/logging.h>
#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "core/cpu_features.h"
#include "trit.h"

/* A test program run for one CPU kernel family (TRIT_CPU=FAMILY, tests/CMakeLists.txt) on a machine
 * that cannot run that family skips as a whole, before Criterion starts: exit code 77 is ctest's
 * SKIP_RETURN_CODE, and the line below names the family. An unknown name is left to the library,
 * which reports it as an error. */
__attribute__((constructor)) static void skip_unsupported_family(void) {
    const char *name = getenv("TRIT_CPU");
    enum trit_cpu_isa isa = TRIT_CPU_ISA_SCALAR;
    if (!name || !*name || trit_cpu_isa_parse(name, &isa) != TRIT_OK || trit_cpu_isa_supported(isa)) return;
    fprintf(stderr, "SKIPPED: CPU kernel family %s: this CPU or build cannot run it\n", name);
    fflush(stderr);
    _exit(77);
}

void test_rng_seed(struct test_rng *rng, uint64_t fallback) {
    const char *env = getenv("TRIT_TEST_SEED");
    uint64_t seed;
    if (env && *env) {
        seed = strtoull(env, NULL, 0);
    } else {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        seed = fallback ^ ((uint64_t)ts.tv_nsec << 20) ^ (uint64_t)ts.tv_sec;
    }
    if (seed == 0) seed = 0x9E3779B97F4A7C15ull;
    rng->state = seed;
    cr_log_info("random seed: TRIT_TEST_SEED=%llu", (unsigned long long)seed);
}

uint64_t test_rng_u64(struct test_rng *rng) {
    uint64_t x = rng->state;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    rng->state = x;
    return x * 0x2545F4914F6CDD1Dull;
}

float test_rng_uniform(struct test_rng *rng, float lo, float hi) {
    double u = (double)(test_rng_u64(rng) >> 11) * (1.0 / 9007199254740992.0);
    return (float)(lo + (hi - lo) * u);
}

int64_t test_rng_int(struct test_rng *rng, int64_t lo, int64_t hi) {
    uint64_t span = (uint64_t)(hi - lo) + 1;
    return lo + (int64_t)(test_rng_u64(rng) % span);
}

float test_rng_normal(struct test_rng *rng) {
    double u1 = ((double)(test_rng_u64(rng) >> 11) + 1.0) * (1.0 / 9007199254740993.0);
    double u2 = (double)(test_rng_u64(rng) >> 11) * (1.0 / 9007199254740992.0);
    return (float)(sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2));
}

void *test_alloc_offset(size_t n_bytes, size_t offset) {
    unsigned char *base = aligned_alloc(64, (n_bytes + offset + 63) / 64 * 64 + 64);
    cr_assert_not_null(base);
    return base + offset;
}

void test_free_offset(void *p, size_t offset) {
    if (p) free((unsigned char *)p - offset);
}

void test_poison(void *buf, size_t n_bytes) { memset(buf, 0xA5, n_bytes); }

static char tmp_dir[64];

void test_tmp_make(void) {
    strcpy(tmp_dir, "/tmp/trit-test-XXXXXX");
    cr_assert_not_null(mkdtemp(tmp_dir));
}

const char *test_tmp_dir(void) { return tmp_dir; }

const char *test_tmp_path(const char *name) {
    static char buf[4][512];
    static int k;
    k = (k + 1) % 4;
    snprintf(buf[k], sizeof buf[k], "%s/%s", tmp_dir, name);
    return buf[k];
}

static void rm_tree(const char *dir) {
    DIR *d = opendir(dir);
    if (!d) return;
    char p[1024];
    for (struct dirent *e; (e = readdir(d)) != NULL;) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
        struct stat st;
        if (lstat(p, &st) == 0 && S_ISDIR(st.st_mode)) rm_tree(p);
        else unlink(p);
    }
    closedir(d);
    rmdir(dir);
}

void test_tmp_remove(void) {
    if (tmp_dir[0]) rm_tree(tmp_dir);
}

const char *test_data_path(const char *name) {
    static char path[4096];
    const char *dir = getenv("TRIT_TEST_DATA");
    if (!dir || !*dir) dir = TRIT_TEST_DATA;
    snprintf(path, sizeof path, "%s/%s", dir, name);
    return path;
}

bool test_require_gpu(void) {
    if (trit_cuda_device_count() > 0) return true;
    const char *req = getenv("TRIT_REQUIRE_GPU");
    const char *why = trit_cuda_compiled() ? "no CUDA device is visible"
                                           : "this build has no CUDA backend (TRIT_CUDA=OFF or no nvcc)";
    if (req && strcmp(req, "1") == 0) cr_assert_fail("TRIT_REQUIRE_GPU=1 but %s", why);
    else cr_skip_test("gpu test skipped: %s (set TRIT_REQUIRE_GPU=1 to make this a failure)", why);
    return false;
}

/* ---- random batches of several sequences ----------------------------------------------------------- */

static const float *ctx_decode(void *self, const int32_t *tok, const int32_t *pos, const int32_t *seq, int32_t n,
                               int32_t *n_rows) {
    const struct trit_batch b = {.n_tokens = n, .token = tok, .pos = pos, .seq_id = seq};
    const float *rows = NULL;
    const enum trit_status st = trit_decode_batch(self, &b, &rows, n_rows);
    cr_assert_eq(st, TRIT_OK, "trit_decode_batch: %s", trit_last_error());
    return rows;
}
static void ctx_fork(void *self, int32_t src, int32_t dst, int32_t keep) {
    cr_assert_eq(trit_seq_fork(self, src, dst, keep), TRIT_OK, "%s", trit_last_error());
}
static void ctx_trim(void *self, int32_t seq, int32_t keep) {
    cr_assert_eq(trit_seq_trim(self, seq, keep), TRIT_OK, "%s", trit_last_error());
}
static int32_t ctx_length(void *self, int32_t seq) { return trit_seq_length(self, seq); }

struct test_batch_target test_batch_ctx(void *ctx) {
    return (struct test_batch_target){ctx, ctx_decode, ctx_fork, ctx_trim, ctx_length};
}

void test_batch_run(const struct test_batch_target *t, struct test_rng *rng, const struct test_bseq *seqs,
                    int n_seq, int64_t n_vocab, int32_t max_step, const char *what) {
    cr_assert(n_seq >= 1 && n_seq <= TEST_BSEQ_MAX && max_step >= 1 && max_step <= 256);
    const int64_t V = n_vocab;
    int32_t done[TEST_BSEQ_MAX] = {0}, rows_seen[TEST_BSEQ_MAX] = {0}, tok[256], pos[256], sid[256];
    bool started[TEST_BSEQ_MAX], junk[TEST_BSEQ_MAX];
    for (int k = 0; k < n_seq; k++) started[k] = seqs[k].src < 0, junk[k] = seqs[k].junk_from >= 0;
    for (int step = 0;; step++) {
        for (int k = 0; k < n_seq; k++) { /* forks whose prefix is there start; junk runs end */
            const struct test_bseq *s = &seqs[k];
            if (!started[k] && done[s->src] >= s->keep) {
                t->fork(t->self, s->src, k, s->keep);
                done[k] = s->keep, started[k] = true;
            }
            if (junk[k] && done[k] == s->junk_to) {
                t->trim(t->self, k, s->junk_from);
                done[k] = s->junk_from, junk[k] = false;
            }
        }
        int32_t take[TEST_BSEQ_MAX], n = 0; /* how many tokens each sequence adds this step */
        for (int k = 0; k < n_seq; k++) {
            const struct test_bseq *s = &seqs[k];
            const int32_t left = (junk[k] ? s->junk_to : s->n_prompt) - done[k];
            take[k] = !started[k] ? 0
                      : left > 0  ? (int32_t)test_rng_int(rng, 1, left < 40 ? left : 40)
                                  : done[k] < s->n_total;
            if (n + take[k] > max_step) take[k] = max_step - n;
            n += take[k];
        }
        if (n == 0) break;
        cr_assert_lt(step, 1000);
        int32_t placed[TEST_BSEQ_MAX] = {0}; /* interleave: a random sequence with tokens left, its next one */
        for (int32_t i = 0; i < n; i++) {
            int k;
            do k = (int)test_rng_int(rng, 0, n_seq - 1);
            while (placed[k] == take[k]);
            const int32_t p = done[k] + placed[k]++;
            tok[i] = junk[k] && p >= seqs[k].junk_from ? seqs[k].junk[p] : seqs[k].ids[p];
            pos[i] = p, sid[i] = k;
        }
        int32_t n_rows = -1, r = 0;
        const float *logits = t->decode(t->self, tok, pos, sid, n, &n_rows);
        for (int32_t i = 0; i < n; i++) { /* each sequence's last token in the batch, in batch order */
            const int k = sid[i];
            bool last = true;
            for (int32_t j = i + 1; j < n; j++) last = last && sid[j] != k;
            if (!last) continue;
            cr_assert_lt(r, n_rows, "%s: step %d: fewer rows than sequences", what, step);
            const int32_t len = pos[i] + 1;
            if (!junk[k] && len >= seqs[k].n_prompt) {
                cr_assert(memcmp(logits + r * V, seqs[k].alone + (len - seqs[k].n_prompt) * V, (size_t)V * sizeof(float)) == 0,
                          "%s: sequence %d at %d tokens (step %d, at most %d tokens a step) differs from it alone", what,
                          k, len, step, max_step);
                rows_seen[k]++;
            }
            r++;
        }
        cr_assert_eq(r, n_rows, "%s: step %d", what, step);
        for (int k = 0; k < n_seq; k++) {
            done[k] += take[k];
            cr_assert_eq(t->length(t->self, k), done[k], "%s: sequence %d", what, k);
        }
    }
    for (int k = 0; k < n_seq; k++)
        cr_assert_eq(rows_seen[k], seqs[k].n_total - seqs[k].n_prompt + 1, "%s: sequence %d: every row compared", what, k);
}
