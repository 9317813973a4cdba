/*
 * util.h: what the parts of `trit serve` share: a growable byte buffer, UTF-8 checks, the
 * constant-time API key comparison and the clock. Pure: no threads, no library state.
 */
#ifndef TRIT_SERVE_UTIL_H
#define TRIT_SERVE_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* A growable byte buffer, always NUL-terminated once anything was appended. Zero-initialize it;
 * release with sv_buf_free. An append that cannot allocate returns -1 and sets `failed`, after
 * which every append fails: one check at the end is enough. */
struct sv_buf {
    char *p;
    size_t n, cap;
    bool failed;
};
int sv_buf_add(struct sv_buf *b, const void *data, size_t n);
int sv_buf_str(struct sv_buf *b, const char *s);
int sv_buf_printf(struct sv_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Drops the first n bytes (n <= b->n). */
void sv_buf_consume(struct sv_buf *b, size_t n);
void sv_buf_free(struct sv_buf *b);

/* Whether s[0..n) is well-formed UTF-8 (no overlongs, surrogates or code points past U+10FFFF). */
bool sv_utf8_valid(const char *s, size_t n);
/* Appends s[0..n) to b with every maximal ill-formed subsequence replaced by U+FFFD, so that a
 * token's bytes can be a JSON string. */
int sv_buf_add_utf8_lossy(struct sv_buf *b, const char *s, size_t n);

/* Whether the request's Authorization header value ("Bearer KEY", the scheme in any case) carries
 * exactly `key`. The time taken depends on the lengths only, never on where the bytes differ. A
 * NULL or malformed header is false. */
bool sv_bearer_ok(const char *header, const char *key);
/* a[0..na) == b[0..nb) in time that depends on na and nb only. */
bool sv_const_time_eq(const char *a, size_t na, const char *b, size_t nb);

/* Monotonic seconds. */
double sv_now_s(void);

#endif /* TRIT_SERVE_UTIL_H */
