/* log.c: the library's only way to say something. Lines go to a callback, stderr by default. */
#include <stdarg.h>
#include <stdio.h>

#include "core/core.h"

static const char *level_names[] = {"debug", "info", "warn", "error"};

static void log_to_stderr(enum trit_log_level level, const char *line, void *user) {
    (void)user;
    if (level == TRIT_LOG_INFO) fprintf(stderr, "%s\n", line);
    else fprintf(stderr, "trit %s: %s\n", level_names[level], line);
}

/* Process-wide by design (like a signal handler): set once by the program before work starts. */
static trit_log_callback log_callback = log_to_stderr;
static void *log_user;
static enum trit_log_level log_min_level = TRIT_LOG_INFO;

void trit_log_set_callback(trit_log_callback callback, void *user) {
    log_callback = callback ? callback : log_to_stderr;
    log_user = callback ? user : NULL;
}

void trit_log_set_level(enum trit_log_level level) { log_min_level = level; }

void trit_log(enum trit_log_level level, const char *fmt, ...) {
    if (level < log_min_level) return;
    char line[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    log_callback(level, line, log_user);
}
