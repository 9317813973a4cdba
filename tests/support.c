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
