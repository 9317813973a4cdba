// labels: unit
/* test_core.c: status strings, the last-error message, aligned allocation, the API header as C. */
#include <criterion/criterion.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/core.h"
#include "support.h"
#include "trit.h"

Test(core, status_strings_are_distinct) {
    for (int a = TRIT_OK; a <= TRIT_ERR_INTERNAL; a++) {
        cr_assert_str_neq(trit_status_str((enum trit_status)a), "unknown status");
        for (int b = a + 1; b <= TRIT_ERR_INTERNAL; b++)
            cr_assert_str_neq(trit_status_str((enum trit_status)a), trit_status_str((enum trit_status)b));
    }
    cr_assert_str_eq(trit_status_str((enum trit_status)999), "unknown status");
}

Test(core, last_error_keeps_message) {
    enum trit_status st = trit_error(TRIT_ERR_FORMAT, "bad thing at byte %d", 42);
    cr_assert_eq(st, TRIT_ERR_FORMAT);
    cr_assert_str_eq(trit_last_error(), "bad thing at byte 42");
    trit_error_clear();
    cr_assert_str_eq(trit_last_error(), "");
}

Test(core, alloc_is_aligned_and_zeroed) {
    size_t sizes[] = {0, 1, 63, 64, 65, 4097};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        unsigned char *p = trit_alloc(sizes[i]);
        cr_assert_not_null(p);
        cr_assert_eq((uintptr_t)p % TRIT_ALIGN, 0);
        for (size_t j = 0; j < sizes[i]; j++) cr_assert_eq(p[j], 0);
        trit_free(p);
    }
    trit_free(NULL);
    cr_assert_null(trit_alloc(SIZE_MAX - 10));
}

Test(core, checked_arithmetic) {
    int64_t out;
    cr_assert(trit_mul_i64(1 << 20, 1 << 20, &out) && out == (int64_t)1 << 40);
    cr_assert_not(trit_mul_i64(INT64_MAX / 2, 3, &out));
    cr_assert_not(trit_mul_i64(-1, 3, &out));
    cr_assert_not(trit_add_i64(INT64_MAX, 1, &out));
    cr_assert_eq(trit_align_up(33, 32), 64);
    cr_assert_eq(trit_div_ceil(6912, 256), 27);
}

Test(core, version) {
    cr_assert_str_eq(trit_version(), TRIT_VERSION_STRING);
    cr_assert_eq(TRIT_VERSION, TRIT_VERSION_MAJOR * 10000 + TRIT_VERSION_MINOR * 100 + TRIT_VERSION_PATCH);
}

/* A gpu-labelled check lives in test_gpu_gate.c; here the gate's no-device answer is checked. */
Test(core, cuda_query_never_fails) {
    int n = trit_cuda_device_count();
    cr_assert_geq(n, 0);
    if (!trit_cuda_compiled()) cr_assert_eq(n, 0);
}

/* The cgroup part of trit_mem_available on fake trees: v2 takes the least headroom of the group
 * and every group above it, v1 its memory controller's; "max" and v1's near-2^63 "no limit" are
 * none. */
static void put_text(const char *path, const char *text) {
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f, "%s", path);
    fputs(text, f);
    fclose(f);
}

Test(core, cgroup_headroom_reads_the_group_and_its_parents) {
    test_tmp_make();
    char p[600], q[600];
    /* v2: /sys/fs/cgroup/a/b with limits at a (1000 - 100) and b (5000 - 4500), none at the root */
    snprintf(p, sizeof p, "%s/v2/a/b", test_tmp_dir());
    char cmd[700];
    snprintf(cmd, sizeof cmd, "mkdir -p '%s'", p);
    cr_assert_eq(system(cmd), 0);
    snprintf(q, sizeof q, "%s/v2/memory.max", test_tmp_dir()), put_text(q, "max\n");
    snprintf(q, sizeof q, "%s/v2/memory.current", test_tmp_dir()), put_text(q, "123\n");
    snprintf(q, sizeof q, "%s/v2/a/memory.max", test_tmp_dir()), put_text(q, "1000\n");
    snprintf(q, sizeof q, "%s/v2/a/memory.current", test_tmp_dir()), put_text(q, "100\n");
    snprintf(q, sizeof q, "%s/v2/a/b/memory.max", test_tmp_dir()), put_text(q, "5000\n");
    snprintf(q, sizeof q, "%s/v2/a/b/memory.current", test_tmp_dir()), put_text(q, "4500\n");
    const char *proc = test_tmp_path("cgroup");
    put_text(proc, "0::/a/b\n");
    snprintf(q, sizeof q, "%s/v2", test_tmp_dir());
    cr_assert_eq(trit_cgroup_headroom(proc, q), 500);
    put_text(proc, "0::/a\n");
    cr_assert_eq(trit_cgroup_headroom(proc, q), 900);
    put_text(proc, "0::/\n");
    cr_assert_eq(trit_cgroup_headroom(proc, q), UINT64_MAX);
    /* v1: the memory controller's line; "no limit" is 9223372036854771712 */
    snprintf(p, sizeof p, "%s/v1/memory/slice", test_tmp_dir());
    snprintf(cmd, sizeof cmd, "mkdir -p '%s'", p);
    cr_assert_eq(system(cmd), 0);
    snprintf(q, sizeof q, "%s/v1/memory/memory.limit_in_bytes", test_tmp_dir()), put_text(q, "9223372036854771712\n");
    snprintf(q, sizeof q, "%s/v1/memory/memory.usage_in_bytes", test_tmp_dir()), put_text(q, "1\n");
    snprintf(q, sizeof q, "%s/v1/memory/slice/memory.limit_in_bytes", test_tmp_dir()), put_text(q, "4096\n");
    snprintf(q, sizeof q, "%s/v1/memory/slice/memory.usage_in_bytes", test_tmp_dir()), put_text(q, "1024\n");
    put_text(proc, "9:pids:/other\n4:memory:/slice\n1:name=systemd:/\n");
    snprintf(q, sizeof q, "%s/v1", test_tmp_dir());
    cr_assert_eq(trit_cgroup_headroom(proc, q), 3072);
    cr_assert_eq(trit_cgroup_headroom(test_tmp_path("absent"), q), UINT64_MAX);
    test_tmp_remove();
}
