/*
 * core.h: internal services every module uses: error reporting, logging, aligned allocation,
 * checked integer arithmetic and a monotonic clock. Not part of the public API.
 */
#ifndef TRIT_CORE_H
#define TRIT_CORE_H

#include <assert.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "trit.h"

#if defined(__GNUC__) || defined(__clang__)
#define TRIT_PRINTF(fmt_idx, arg_idx) __attribute__((format(printf, fmt_idx, arg_idx)))
#define TRIT_LIKELY(x) __builtin_expect(!!(x), 1)
#define TRIT_UNLIKELY(x) __builtin_expect(!!(x), 0)
#else
#define TRIT_PRINTF(fmt_idx, arg_idx)
#define TRIT_LIKELY(x) (x)
#define TRIT_UNLIKELY(x) (x)
#endif

/* ---- errors ------------------------------------------------------------------------------- */

/* Records a formatted message as this thread's last error and returns `status`, so that library
 * code reads `return trit_error(TRIT_ERR_FORMAT, "gguf: ... at byte %llu", off);`. */
enum trit_status trit_error(enum trit_status status, const char *fmt, ...) TRIT_PRINTF(2, 3);
/* Clears this thread's last error. */
void trit_error_clear(void);

/* Evaluates a status expression and returns it from the enclosing function on failure. */
#define TRIT_TRY(expr)                                                                             \
    do {                                                                                           \
        enum trit_status trit_try_status_ = (expr);                                                \
        if (trit_try_status_ != TRIT_OK) return trit_try_status_;                                  \
    } while (0)

/* ---- logging ------------------------------------------------------------------------------ */

void trit_log(enum trit_log_level level, const char *fmt, ...) TRIT_PRINTF(2, 3);
#define TRIT_LOG_D(...) trit_log(TRIT_LOG_DEBUG, __VA_ARGS__)
#define TRIT_LOG_I(...) trit_log(TRIT_LOG_INFO, __VA_ARGS__)
#define TRIT_LOG_W(...) trit_log(TRIT_LOG_WARN, __VA_ARGS__)

/* ---- memory ------------------------------------------------------------------------------- */

/* Alignment of every buffer the CPU kernels touch: one cache line, and a full AVX-512 vector. */
#define TRIT_ALIGN 64
/* Returns zeroed memory aligned to TRIT_ALIGN, or NULL. n_bytes == 0 returns a valid pointer. */
void *trit_alloc(size_t n_bytes);
/* The same without clearing: for buffers every element of which is written before it is read
 * (KV caches, activations, scratch), so that their pages are touched only when used. Debug builds
 * fill it with 0xFF bytes (NaN floats, -1 int8s), so that a read before a write shows. */
void *trit_alloc_uninit(size_t n_bytes);
/* Frees memory from trit_alloc or trit_alloc_uninit; accepts NULL. */
void trit_free(void *ptr);
/* Bytes this process can still take, the least of: the machine's MemAvailable (/proc/meminfo), the
 * headroom (limit less usage) of its cgroup and of every group above it (v2 memory.max, v1
 * memory.limit_in_bytes; the group from /proc/self/cgroup), and the RLIMIT_AS / RLIMIT_DATA headroom. UINT64_MAX when
 * none of them is known (not Linux), and never more than $TRIT_MEM_AVAILABLE (bytes) when that is
 * set. The memory plan (trit_context_init) compares with it. */
uint64_t trit_mem_available(void);
/* Its cgroup part: the least headroom over the groups that proc_cgroup (a /proc/self/cgroup) names,
 * v2 ("0::/path") or v1 (a "memory" line), with the hierarchy mounted at sys_root (/sys/fs/cgroup;
 * v1 under sys_root/memory). UINT64_MAX when no limit is found. Tests pass a fake tree. */
uint64_t trit_cgroup_headroom(const char *proc_cgroup, const char *sys_root);

/* ---- checked arithmetic (parsers treat every size from a file as hostile) ------------------ */

/* *out = a * b; false on overflow or on a negative operand. */
static inline bool trit_mul_i64(int64_t a, int64_t b, int64_t *out) {
    if (a < 0 || b < 0) return false;
    return !__builtin_mul_overflow(a, b, out);
}
/* *out = a + b; false on overflow or on a negative operand. */
static inline bool trit_add_i64(int64_t a, int64_t b, int64_t *out) {
    if (a < 0 || b < 0) return false;
    return !__builtin_add_overflow(a, b, out);
}
static inline int64_t trit_div_ceil(int64_t a, int64_t b) { return (a + b - 1) / b; }
static inline int64_t trit_align_up(int64_t a, int64_t align) { return trit_div_ceil(a, align) * align; }

/* The contract of an internal kernel that needs an aligned buffer (an aligned vector store, a
 * hardware requirement), checked in debug builds (no NDEBUG): a violation aborts there with the
 * place, instead of faulting somewhere else in a release build. Buffers that cross the public API
 * never carry such a contract: every kernel that reads a caller's memory uses unaligned loads. */
#define TRIT_ASSERT_ALIGNED(ptr, align) assert(((uintptr_t)(const void *)(ptr) % (align)) == 0 && "misaligned")

/* ---- files --------------------------------------------------------------------------------- */

/* Opens a regular file read-only and gives its size. TRIT_ERR_NOT_FOUND when it does not exist,
 * TRIT_ERR_IO otherwise; the message names the path. The caller closes *fd. */
enum trit_status trit_file_open(const char *path, int *fd, uint64_t *size);
/* Maps a whole regular file read-only. An empty file gives *map = NULL and *size = 0. Release with
 * trit_file_unmap. */
enum trit_status trit_file_map(const char *path, const uint8_t **map, uint64_t *size);
void trit_file_unmap(const uint8_t *map, uint64_t size);
/* A file's type in words, for messages: "a folder", "a character device", "a FIFO (named pipe)" ...
 * `mode` is a struct stat's st_mode. */
const char *trit_file_kind(unsigned mode);

/* Output files. Every file trit writes goes through these (convert's GGUF, logits' .npy), so that
 * a reader never sees half a file and a failed write never costs the old one:
 *   trit_out_open    creates a new temporary "<target>.<8 hex>.partial" with O_EXCL in the target's
 *                    own folder (the same filesystem, so the rename is atomic);
 *   trit_out_write   writes to it (or write to out.fd or out.tmp directly);
 *   trit_out_commit  fsyncs and closes it, renames it over the target, fsyncs the folder;
 *   trit_out_abort   removes it.
 * The target: the path itself when it is a regular file or does not exist (its folder must). A
 * folder, character or block device, FIFO or socket is refused, naming the path and what it is, so
 * that nothing is ever written to /dev/null or into a pipe by rename. A symbolic link is followed
 * to its final target, which must be an existing regular file: that file is replaced and the link
 * is kept. A dangling link is refused (it would create a file wherever it points). A replaced
 * file keeps its permission bits; a new one gets 0666 less the umask. */
struct trit_out {
    int fd;       /* the temporary, open for writing; -1 when closed */
    char *path;   /* as given: every message names it */
    char *target; /* what commit replaces: path, or the final target of the link it is */
    char *tmp;    /* the temporary's path; NULL when nothing is open (zeroed, committed, aborted) */
};
/* On failure nothing was created and *out needs no abort. TRIT_ERR_INVALID_ARG for a target that is
 * not a regular file (or a dangling link), TRIT_ERR_NOT_FOUND when the folder does not exist,
 * TRIT_ERR_IO otherwise. */
enum trit_status trit_out_open(const char *path, struct trit_out *out);
/* Writes all n bytes; TRIT_ERR_IO naming the path and the reason (ENOSPC, EFBIG, EIO) on failure,
 * after which the caller aborts. */
enum trit_status trit_out_write(struct trit_out *out, const void *data, size_t n);
/* Puts the written file in place. On any failure before the rename (fsync or close: a full disk
 * shows here; the target changed into something else meanwhile) the temporary is removed and the
 * target is untouched. *out is released either way: no abort is needed after a commit. */
enum trit_status trit_out_commit(struct trit_out *out);
/* Closes and removes the temporary and releases *out. Accepts a zeroed, committed or aborted *out. */
void trit_out_abort(struct trit_out *out);
/* TRIT_ERR_INVALID_ARG (and the output aborted) when committing *out would replace `input` (the same
 * file, through any name or link) or a file inside it (a folder): a model must never be overwritten
 * by what is computed from it. TRIT_OK otherwise, or when input cannot be examined. */
enum trit_status trit_out_check_input(struct trit_out *out, const char *input);

/* ---- time --------------------------------------------------------------------------------- */

/* Microseconds on a monotonic clock. */
int64_t trit_time_us(void);

#endif /* TRIT_CORE_H */
