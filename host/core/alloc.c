/* alloc.c: aligned, zeroed allocation and the monotonic clock. */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/core.h"

void *trit_alloc(size_t n_bytes) {
    size_t rounded = (n_bytes + TRIT_ALIGN - 1) / TRIT_ALIGN * TRIT_ALIGN;
    if (rounded < n_bytes) return NULL; /* overflow */
    if (rounded == 0) rounded = TRIT_ALIGN;
    void *ptr = aligned_alloc(TRIT_ALIGN, rounded);
    if (ptr) memset(ptr, 0, rounded);
    return ptr;
}

void trit_free(void *ptr) { free(ptr); }

int64_t trit_time_us(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}
