/* file.c: opening and mapping input files, and writing output files whole (core.h), with errors
 * that name the path. */
#define _XOPEN_SOURCE 700 /* realpath; strerror_r stays the XSI one */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/core.h"

enum trit_status trit_file_open(const char *path, int *fd_out, uint64_t *size) {
    char why[128] = "";
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        int err = errno;
        strerror_r(err, why, sizeof why);
        return trit_error(err == ENOENT ? TRIT_ERR_NOT_FOUND : TRIT_ERR_IO, "%s: cannot open: %s", path, why);
    }
    struct stat sb;
    if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode) || sb.st_size < 0) {
        close(fd);
        return trit_error(TRIT_ERR_IO, "%s: not a regular file", path);
    }
    *fd_out = fd;
    *size = (uint64_t)sb.st_size;
    return TRIT_OK;
}

enum trit_status trit_file_map(const char *path, const uint8_t **map_out, uint64_t *size_out) {
    int fd = -1;       /* both set by trit_file_open on success; initialized because GCC 12 for */
    uint64_t size = 0; /* aarch64 warns -Wmaybe-uninitialized on them at -O3 (with -Werror: an error) */
    TRIT_TRY(trit_file_open(path, &fd, &size));
    *map_out = NULL;
    *size_out = size;
    if (size == 0) {
        close(fd);
        return TRIT_OK;
    }
    if (size > SIZE_MAX) {
        close(fd);
        return trit_error(TRIT_ERR_IO, "%s: %llu bytes cannot be mapped", path, (unsigned long long)size);
    }
    /* MAP_PRIVATE + PROT_READ: pages are read on first touch and never copied. A file truncated by
     * someone else while mapped raises SIGBUS on access; that is outside our control. */
    void *map = mmap(NULL, (size_t)size, PROT_READ, MAP_PRIVATE, fd, 0);
    int err = errno;
    close(fd); /* the mapping keeps the file open */
    if (map == MAP_FAILED) {
        char why[128] = "";
        strerror_r(err, why, sizeof why);
        return trit_error(TRIT_ERR_IO, "%s: mmap of %llu bytes failed: %s", path, (unsigned long long)size, why);
    }
    *map_out = map;
    return TRIT_OK;
}

void trit_file_unmap(const uint8_t *map, uint64_t size) {
    if (map && size) munmap((void *)(uintptr_t)map, (size_t)size);
}

/* ---- output files ----------------------------------------------------------------------------- */

const char *trit_file_kind(unsigned mode) {
    const mode_t m = (mode_t)mode;
    if (S_ISREG(m)) return "a regular file";
    if (S_ISDIR(m)) return "a folder";
    if (S_ISCHR(m)) return "a character device";
    if (S_ISBLK(m)) return "a block device";
    if (S_ISFIFO(m)) return "a FIFO (named pipe)";
    if (S_ISSOCK(m)) return "a socket";
    if (S_ISLNK(m)) return "a symbolic link";
    return "not a regular file";
}

static void out_release(struct trit_out *out) {
    free(out->path);
    free(out->target);
    free(out->tmp);
    out->path = out->target = out->tmp = NULL;
    out->fd = -1;
}

/* The target of `path` under the rule in core.h: *target = a copy of path (a regular file, or
 * nothing yet), or the final target of the link path is; *exists and *mode describe it. */
static enum trit_status out_target(const char *path, char **target, bool *exists, mode_t *mode) {
    char why[128] = "";
    struct stat sb;
    *exists = false;
    *mode = 0;
    if (lstat(path, &sb) != 0) {
        const int err = errno;
        if (err != ENOENT) {
            strerror_r(err, why, sizeof why);
            return trit_error(TRIT_ERR_IO, "%s: %s", path, why);
        }
        *target = strdup(path); /* a new file; its folder is checked when the temporary is created */
        return *target ? TRIT_OK : trit_error(TRIT_ERR_OUT_OF_MEMORY, "%s: out of memory", path);
    }
    if (S_ISLNK(sb.st_mode)) {
        char link[4096];
        const ssize_t n = readlink(path, link, sizeof link - 1);
        link[n > 0 ? n : 0] = '\0';
        char *final = realpath(path, NULL);
        if (!final) {
            const int err = errno;
            if (err == ENOENT)
                return trit_error(TRIT_ERR_INVALID_ARG,
                                  "%s: is a symbolic link to %s, which does not exist (trit writes through a link only to "
                                  "an existing regular file; give the target's path, or remove the link)",
                                  path, link);
            strerror_r(err, why, sizeof why);
            return trit_error(TRIT_ERR_IO, "%s: a symbolic link to %s: %s", path, link, why);
        }
        if (stat(final, &sb) != 0 || !S_ISREG(sb.st_mode)) {
            const enum trit_status st = trit_error(TRIT_ERR_INVALID_ARG, "%s: is a symbolic link to %s, which is %s, not a regular file",
                                                   path, final, trit_file_kind((unsigned)sb.st_mode));
            free(final);
            return st;
        }
        *target = final;
        *exists = true;
        *mode = sb.st_mode;
        return TRIT_OK;
    }
    if (!S_ISREG(sb.st_mode))
        return trit_error(TRIT_ERR_INVALID_ARG, "%s: is %s, not a regular file", path, trit_file_kind((unsigned)sb.st_mode));
    *target = strdup(path);
    *exists = true;
    *mode = sb.st_mode;
    return *target ? TRIT_OK : trit_error(TRIT_ERR_OUT_OF_MEMORY, "%s: out of memory", path);
}

/* A number for the temporary's name: two processes (or two calls) that write beside the same
 * target at once get different names; O_EXCL settles the rare collision (the caller retries). */
static uint32_t out_nonce(const void *salt, int attempt) {
    uint64_t x = (uint64_t)trit_time_us() ^ ((uint64_t)getpid() << 40) ^ (uint64_t)(uintptr_t)salt ^
                 (uint64_t)attempt * 0x9E3779B97F4A7C15ull;
    x ^= x >> 33; /* splitmix64's finalizer */
    x *= 0xff51afd7ed558ccdull;
    x ^= x >> 33;
    return (uint32_t)x;
}

enum trit_status trit_out_open(const char *path, struct trit_out *out) {
    if (!out) return trit_error(TRIT_ERR_INVALID_ARG, "trit_out_open: NULL argument");
    memset(out, 0, sizeof *out);
    out->fd = -1;
    if (!path || !*path) return trit_error(TRIT_ERR_INVALID_ARG, "output: an empty file name");
    if (path[strlen(path) - 1] == '/') return trit_error(TRIT_ERR_INVALID_ARG, "%s: is a folder name, not a file name", path);
    bool exists;
    mode_t mode;
    char *target = NULL;
    TRIT_TRY(out_target(path, &target, &exists, &mode));
    out->target = target;
    out->path = strdup(path);
    const size_t tmp_len = strlen(target) + 32;
    out->tmp = malloc(tmp_len);
    if (!out->path || !out->tmp) {
        out_release(out);
        return trit_error(TRIT_ERR_OUT_OF_MEMORY, "%s: out of memory", path);
    }
    int err = EEXIST;
    for (int attempt = 0; attempt < 64 && err == EEXIST; attempt++) {
        /* "<target>.<8 hex>.partial", or "<folder>/.trit-<8 hex>.partial" when the target's own
         * name leaves no room for the 17 more bytes within NAME_MAX */
        const char *base = strrchr(target, '/');
        base = base ? base + 1 : target;
        if (strlen(base) + 17 <= NAME_MAX)
            snprintf(out->tmp, tmp_len, "%s.%08x.partial", target, out_nonce(out, attempt));
        else
            snprintf(out->tmp, tmp_len, "%.*s.trit-%08x.partial", (int)(base - target), target, out_nonce(out, attempt));
        /* O_EXCL: a new file of our own, never an existing name or whatever a link there points to */
        out->fd = open(out->tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
        err = out->fd < 0 ? errno : 0;
    }
    if (out->fd < 0) {
        char why[128] = "";
        strerror_r(err, why, sizeof why);
        trit_error(TRIT_ERR_IO, "%s: cannot create the temporary file %s: %s", path, out->tmp, why);
        out_release(out);
        return err == ENOENT ? TRIT_ERR_NOT_FOUND : TRIT_ERR_IO;
    }
    /* A replaced file keeps its permission bits (best effort: the owner may differ, and then
     * the new file is ours with the default mode). */
    if (exists) (void)fchmod(out->fd, mode & 0777);
    return TRIT_OK;
}

/* Records "<path>: <what>: <strerror(err)>", removes the temporary and releases *out. */
static enum trit_status out_fail(struct trit_out *out, const char *what, int err) {
    char why[128] = "";
    strerror_r(err, why, sizeof why);
    enum trit_status st = trit_error(TRIT_ERR_IO, "%s: %s: %s", out->path, what, why);
    trit_out_abort(out);
    return st;
}

enum trit_status trit_out_write(struct trit_out *out, const void *data, size_t n) {
    if (!out || !out->tmp || out->fd < 0 || (n && !data)) return trit_error(TRIT_ERR_INVALID_ARG, "trit_out_write: no open output");
    const uint8_t *p = data;
    while (n > 0) {
        const ssize_t w = write(out->fd, p, n > ((size_t)1 << 30) ? ((size_t)1 << 30) : n);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) {
            char why[128] = "";
            strerror_r(w < 0 ? errno : EIO, why, sizeof why);
            return trit_error(TRIT_ERR_IO, "%s: cannot write: %s", out->path, why);
        }
        p += w;
        n -= (size_t)w;
    }
    return TRIT_OK;
}

enum trit_status trit_out_commit(struct trit_out *out) {
    if (!out || !out->tmp || out->fd < 0) return trit_error(TRIT_ERR_INVALID_ARG, "trit_out_commit: no open output");
    /* fsync first: a full disk or a failing device can surface only here, and the rename below must
     * never put a file whose bytes are not on disk in place of a good one. */
    if (fsync(out->fd) != 0) return out_fail(out, "cannot write (fsync)", errno);
    const int fd = out->fd;
    out->fd = -1;
    if (close(fd) != 0) return out_fail(out, "cannot write (close)", errno);
    /* Checked again: the target may have been replaced while the file was written. */
    struct stat sb;
    if (lstat(out->target, &sb) == 0 && !S_ISREG(sb.st_mode)) {
        enum trit_status st = trit_error(TRIT_ERR_INVALID_ARG, "%s: %s became %s while it was written; nothing was replaced",
                                         out->path, out->target, trit_file_kind((unsigned)sb.st_mode));
        trit_out_abort(out);
        return st;
    }
    if (rename(out->tmp, out->target) != 0) return out_fail(out, "cannot rename the temporary file into place", errno);
    /* The rename is durable once the folder's entry is: fsync the folder. A filesystem that cannot
     * sync a folder says EINVAL; that is no error. */
    char *dir = strdup(out->target);
    if (!dir) return out_fail(out, "out of memory", ENOMEM);
    char *slash = strrchr(dir, '/');
    const char *dir_path = !slash ? "." : slash == dir ? "/" : (*slash = '\0', dir);
    const int dfd = open(dir_path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    int err = dfd < 0 ? errno : fsync(dfd) != 0 ? errno : 0;
    if (dfd >= 0) close(dfd);
    free(dir);
    enum trit_status st = TRIT_OK;
    if (err && err != EINVAL) {
        char why[128] = "";
        strerror_r(err, why, sizeof why);
        st = trit_error(TRIT_ERR_IO, "%s: written, but its folder could not be synced: %s", out->path, why);
    }
    out_release(out);
    return st;
}

void trit_out_abort(struct trit_out *out) {
    if (!out || !out->tmp) return;
    if (out->fd >= 0) close(out->fd);
    unlink(out->tmp);
    out_release(out);
}

enum trit_status trit_out_check_input(struct trit_out *out, const char *input) {
    struct stat in, tgt;
    if (!out || !out->tmp || !input || stat(input, &in) != 0) return TRIT_OK;
    bool clash = stat(out->target, &tgt) == 0 && tgt.st_dev == in.st_dev && tgt.st_ino == in.st_ino;
    if (!clash && S_ISDIR(in.st_mode)) { /* the target's folder is the input folder */
        char *dir = strdup(out->target);
        if (dir) {
            char *slash = strrchr(dir, '/');
            const char *d = !slash ? "." : slash == dir ? "/" : (*slash = '\0', dir);
            struct stat ds;
            clash = stat(d, &ds) == 0 && ds.st_dev == in.st_dev && ds.st_ino == in.st_ino;
            free(dir);
        }
    }
    if (!clash) return TRIT_OK;
    const enum trit_status st =
        trit_error(TRIT_ERR_INVALID_ARG, "%s: would replace %s%s, which this command reads; give the output another name",
                   out->path, S_ISDIR(in.st_mode) ? "a file in " : "", input);
    trit_out_abort(out);
    return st;
}
