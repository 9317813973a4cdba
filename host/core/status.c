/* status.c: status names and the per-thread last-error message. */
#include <stdarg.h>
#include <stdio.h>

#include "core/core.h"

static _Thread_local char last_error[1024];

const char *trit_status_str(enum trit_status status) {
    switch (status) {
    case TRIT_OK: return "ok";
    case TRIT_ERR_INVALID_ARG: return "invalid argument";
    case TRIT_ERR_OUT_OF_MEMORY: return "out of memory";
    case TRIT_ERR_IO: return "i/o error";
    case TRIT_ERR_FORMAT: return "malformed input";
    case TRIT_ERR_UNSUPPORTED: return "unsupported";
    case TRIT_ERR_NO_DEVICE: return "no CUDA device";
    case TRIT_ERR_DEVICE: return "device error";
    case TRIT_ERR_CONTEXT_FULL: return "context full";
    case TRIT_ERR_NOT_FOUND: return "not found";
    case TRIT_ERR_COMM: return "communication error";
    case TRIT_ERR_INTERNAL: return "internal error";
    }
    return "unknown status";
}

const char *trit_last_error(void) { return last_error; }

void trit_error_clear(void) { last_error[0] = '\0'; }

enum trit_status trit_error(enum trit_status status, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(last_error, sizeof last_error, fmt, ap);
    va_end(ap);
    return status;
}

const char *trit_version(void) { return TRIT_VERSION_STRING; }
