/* alloc.c: aligned allocation, what memory is left to take, and the monotonic clock. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "core/core.h"

void *trit_alloc_uninit(size_t n_bytes) {
    size_t rounded = (n_bytes + TRIT_ALIGN - 1) / TRIT_ALIGN * TRIT_ALIGN;
    if (rounded < n_bytes) return NULL; /* overflow */
    if (rounded == 0) rounded = TRIT_ALIGN;
    void *ptr = aligned_alloc(TRIT_ALIGN, rounded);
#ifndef NDEBUG
    /* Debug builds (the sanitizer build of CI among them) fill it with 0xFF, a NaN in every float
     * and -1 in every int8, so that a read before the first write shows in the bit-exact tests. */
    if (ptr) memset(ptr, 0xFF, rounded);
#endif
    return ptr;
}

void *trit_alloc(size_t n_bytes) {
    void *ptr = trit_alloc_uninit(n_bytes);
    if (ptr) memset(ptr, 0, n_bytes);
    return ptr;
}

void trit_free(void *ptr) { free(ptr); }

/* ---- what is left ---------------------------------------------------------------------------- */

/* The first unsigned number in a small file, or UINT64_MAX (absent, unreadable, "max"). */
static uint64_t read_u64_file(const char *path) {
    FILE *f = fopen(path, "re");
    if (!f) return UINT64_MAX;
    uint64_t v = UINT64_MAX;
    if (fscanf(f, "%" SCNu64, &v) != 1) v = UINT64_MAX;
    fclose(f);
    return v;
}

/* MemAvailable from /proc/meminfo in bytes, or UINT64_MAX. */
static uint64_t meminfo_available(void) {
    FILE *f = fopen("/proc/meminfo", "re");
    if (!f) return UINT64_MAX;
    char line[256];
    uint64_t kib = UINT64_MAX;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "MemAvailable: %" SCNu64 " kB", &kib) == 1) break;
    fclose(f);
    return kib == UINT64_MAX || kib > UINT64_MAX / 1024 ? UINT64_MAX : kib * 1024;
}

/* The headroom under a resource limit, UINT64_MAX when unlimited: the limit less what this process
 * already holds of it, read from /proc/self/statm (field 1 is all its address space, the size that
 * RLIMIT_AS bounds; field 6 is data + stack, the size that RLIMIT_DATA bounds). */
static uint64_t rlimit_left(int resource, int statm_field) {
    struct rlimit rl;
    if (getrlimit(resource, &rl) != 0 || rl.rlim_cur == RLIM_INFINITY) return UINT64_MAX;
    uint64_t used = 0, v[7] = {0};
    FILE *f = fopen("/proc/self/statm", "re");
    if (f) {
        if (fscanf(f, "%" SCNu64 " %" SCNu64 " %" SCNu64 " %" SCNu64 " %" SCNu64 " %" SCNu64, &v[1], &v[2], &v[3],
                   &v[4], &v[5], &v[6]) == 6)
            used = v[statm_field] * (uint64_t)sysconf(_SC_PAGESIZE);
        fclose(f);
    }
    return (uint64_t)rl.rlim_cur > used ? (uint64_t)rl.rlim_cur - used : 0;
}

/* The least headroom (limit - usage) of the cgroup `dir` (a path under `root`) and of every group
 * above it up to root: a limit anywhere on the way bounds this process. limit and usage name the
 * files (v2: memory.max, memory.current; v1: memory.limit_in_bytes, memory.usage_in_bytes). A v1
 * "no limit" is a number near 2^63, taken as none. */
static uint64_t cgroup_left(char *dir, size_t root_len, const char *limit, const char *usage) {
    uint64_t left = UINT64_MAX;
    for (;;) {
        char path[4200];
        snprintf(path, sizeof path, "%s/%s", dir, limit);
        const uint64_t max = read_u64_file(path);
        snprintf(path, sizeof path, "%s/%s", dir, usage);
        const uint64_t cur = read_u64_file(path);
        if (max < ((uint64_t)1 << 62) && cur != UINT64_MAX) {
            const uint64_t l = max > cur ? max - cur : 0;
            if (l < left) left = l;
        }
        char *slash = strrchr(dir, '/');
        if (strlen(dir) <= root_len || !slash || (size_t)(slash - dir) < root_len) break;
        *slash = '\0';
    }
    return left;
}

uint64_t trit_cgroup_headroom(const char *proc_cgroup, const char *sys_root) {
    FILE *f = fopen(proc_cgroup, "re");
    if (!f) return UINT64_MAX;
    char line[4096];
    uint64_t left = UINT64_MAX;
    while (fgets(line, sizeof line, f)) {
        line[strcspn(line, "\n")] = '\0';
        /* "hierarchy-id:controllers:path"; v2 is "0::path" */
        char *c1 = strchr(line, ':'), *c2 = c1 ? strchr(c1 + 1, ':') : NULL;
        if (!c2 || c2[1] != '/') continue;
        *c1 = '\0', *c2 = '\0';
        const char *controllers = c1 + 1, *rel = c2 + 1;
        char dir[4096];
        uint64_t l = UINT64_MAX;
        if (!strcmp(line, "0") && !*controllers) {
            const size_t root = strlen(sys_root);
            snprintf(dir, sizeof dir, "%s%s", sys_root, strcmp(rel, "/") ? rel : "");
            l = cgroup_left(dir, root, "memory.max", "memory.current");
        } else if (strstr(controllers, "memory")) {
            const int root = snprintf(dir, sizeof dir, "%s/memory", sys_root);
            snprintf(dir + root, sizeof dir - (size_t)root, "%s", strcmp(rel, "/") ? rel : "");
            l = cgroup_left(dir, (size_t)root, "memory.limit_in_bytes", "memory.usage_in_bytes");
        }
        if (l < left) left = l;
    }
    fclose(f);
    return left;
}

uint64_t trit_mem_available(void) {
    uint64_t left = meminfo_available();
    /* $TRIT_MEM_AVAILABLE (bytes): a smaller figure to plan with, for tests and for a machine shared
     * with others than trit can see */
    const char *env = getenv("TRIT_MEM_AVAILABLE");
    if (env && *env) {
        char *end = NULL;
        const unsigned long long v = strtoull(env, &end, 10);
        if (end && !*end && v < left) left = v;
    }
    const uint64_t cg = trit_cgroup_headroom("/proc/self/cgroup", "/sys/fs/cgroup");
    if (cg < left) left = cg;
    const uint64_t as = rlimit_left(RLIMIT_AS, 1);
    if (as < left) left = as;
    const uint64_t data = rlimit_left(RLIMIT_DATA, 6);
    if (data < left) left = data;
    return left;
}

int64_t trit_time_us(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}
