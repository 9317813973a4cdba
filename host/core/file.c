/* file.c: opening and mapping input files, with errors that name the path (core.h). */
#include <errno.h>
#include <fcntl.h>
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
