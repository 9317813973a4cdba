/* util.c: see util.h. */
#include "util.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* ---- buffer ---------------------------------------------------------------------------------- */

static int reserve(struct sv_buf *b, size_t more) {
    if (b->failed) return -1;
    if (more > SIZE_MAX / 2 - b->n) return b->failed = true, -1;
    const size_t need = b->n + more + 1; /* the NUL */
    if (need <= b->cap) return 0;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < need) cap *= 2;
    char *p = realloc(b->p, cap);
    if (!p) return b->failed = true, -1;
    b->p = p;
    b->cap = cap;
    return 0;
}

int sv_buf_add(struct sv_buf *b, const void *data, size_t n) {
    if (reserve(b, n)) return -1;
    if (n) memcpy(b->p + b->n, data, n);
    b->n += n;
    b->p[b->n] = '\0';
    return 0;
}

int sv_buf_str(struct sv_buf *b, const char *s) { return sv_buf_add(b, s, strlen(s)); }

int sv_buf_printf(struct sv_buf *b, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    const int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0 || reserve(b, (size_t)n)) return b->failed = true, -1;
    va_start(ap, fmt);
    vsnprintf(b->p + b->n, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->n += (size_t)n;
    return 0;
}

void sv_buf_consume(struct sv_buf *b, size_t n) {
    if (n >= b->n) {
        b->n = 0;
    } else {
        memmove(b->p, b->p + n, b->n - n);
        b->n -= n;
    }
    if (b->p) b->p[b->n] = '\0';
}

void sv_buf_free(struct sv_buf *b) {
    free(b->p);
    memset(b, 0, sizeof *b);
}

/* ---- UTF-8 ----------------------------------------------------------------------------------- */

/* Scans the character that starts s[0..n) (n >= 1), Unicode table 3-7: returns its length and sets
 * *whole when it is well formed, else returns the length of its maximal ill-formed subsequence (the
 * longest prefix that could still have begun a character, at least 1) with *whole false. */
static size_t utf8_scan(const unsigned char *s, size_t n, bool *whole) {
    const unsigned c = s[0];
    *whole = false;
    size_t len;
    unsigned lo = 0x80, hi = 0xBF;
    if (c < 0x80) len = 1;
    else if (c >= 0xC2 && c <= 0xDF) len = 2;
    else if (c == 0xE0) len = 3, lo = 0xA0;
    else if (c == 0xED) len = 3, hi = 0x9F;
    else if (c >= 0xE1 && c <= 0xEF) len = 3;
    else if (c == 0xF0) len = 4, lo = 0x90;
    else if (c == 0xF4) len = 4, hi = 0x8F;
    else if (c >= 0xF1 && c <= 0xF3) len = 4;
    else return 1;
    if (len > 1 && (n < 2 || s[1] < lo || s[1] > hi)) return 1;
    for (size_t i = 2; i < len; i++)
        if (i >= n || (s[i] & 0xC0) != 0x80) return i;
    *whole = true;
    return len;
}

bool sv_utf8_valid(const char *s, size_t n) {
    const unsigned char *u = (const unsigned char *)s;
    for (size_t i = 0; i < n;) {
        bool whole;
        i += utf8_scan(u + i, n - i, &whole);
        if (!whole) return false;
    }
    return true;
}

int sv_buf_add_utf8_lossy(struct sv_buf *b, const char *s, size_t n) {
    const unsigned char *u = (const unsigned char *)s;
    for (size_t i = 0; i < n;) {
        bool whole;
        const size_t len = utf8_scan(u + i, n - i, &whole);
        if (whole ? sv_buf_add(b, u + i, len) : sv_buf_add(b, "\xEF\xBF\xBD", 3)) return -1;
        i += len;
    }
    return 0;
}

/* ---- API key --------------------------------------------------------------------------------- */

bool sv_const_time_eq(const char *a, size_t na, const char *b, size_t nb) {
    /* every byte of the longer one is read; the result is folded in without branches */
    const size_t n = na > nb ? na : nb;
    unsigned diff = (unsigned)(na != nb);
    for (size_t i = 0; i < n; i++) {
        const unsigned char x = i < na ? (unsigned char)a[i] : 0, y = i < nb ? (unsigned char)b[i] : 0;
        diff |= (unsigned)(x ^ y);
    }
    return diff == 0;
}

bool sv_bearer_ok(const char *header, const char *key) {
    if (!header || !key) return false;
    static const char scheme[] = "bearer ";
    for (size_t i = 0; i < sizeof scheme - 1; i++) {
        char c = header[i];
        if (c >= 'A' && c <= 'Z') c = (char)(c - 'A' + 'a');
        if (c != scheme[i]) return false;
    }
    const char *given = header + sizeof scheme - 1;
    while (*given == ' ') given++;
    size_t n = strlen(given);
    while (n && (given[n - 1] == ' ' || given[n - 1] == '\t')) n--;
    return sv_const_time_eq(given, n, key, strlen(key));
}

double sv_now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}
