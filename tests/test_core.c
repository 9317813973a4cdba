// labels: unit
/* test_core.c: status strings, the last-error message, aligned allocation, the API header as C. */
#include <criterion/criterion.h>
#include <stdint.h>
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
