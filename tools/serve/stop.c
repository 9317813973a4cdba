/* stop.c: see stop.h.
 *
 * Invariant: `held` starts at the earliest position of the text fed so far where a stop string may
 * start: a whole occurrence, or a suffix that is a proper prefix of a stop string (which more text
 * may complete). Text before it can never be part of a match and has been emitted. A whole match
 * is final once no possible match starts before it; until then (stops "abcd" and "c" on "abc") it
 * waits. `held` is shorter than the longest stop string (SERVE_MAX_STOP_BYTES). */
#include "stop.h"

#include <string.h>

void serve_stop_init(struct serve_stop *st, const char *const *stops, int n_stops) {
    memset(st, 0, sizeof *st);
    st->stops = stops;
    st->n_stops = n_stops;
    for (int i = 0; i < n_stops; i++) st->lens[i] = strlen(stops[i]);
}

/* The earliest position in s[0..n) where a stop string starts, or n when none does. */
static size_t first_match(const struct serve_stop *st, const char *s, size_t n) {
    size_t best = n;
    for (int i = 0; i < st->n_stops; i++) {
        const size_t len = st->lens[i];
        for (size_t p = 0; p + len <= n && p < best; p++)
            if (s[p] == st->stops[i][0] && memcmp(s + p, st->stops[i], len) == 0) {
                best = p;
                break;
            }
    }
    return best;
}

/* The length of the longest suffix of s[0..n) that is a proper prefix of a stop string. */
static size_t partial_tail(const struct serve_stop *st, const char *s, size_t n) {
    size_t keep = 0;
    for (int i = 0; i < st->n_stops; i++) {
        const size_t len = st->lens[i];
        for (size_t k = (len - 1 < n ? len - 1 : n); k > keep; k--)
            if (memcmp(s + n - k, st->stops[i], k) == 0) {
                keep = k;
                break;
            }
    }
    return keep;
}

int serve_stop_feed(struct serve_stop *st, const char *text, size_t n, struct sv_buf *out) {
    if (st->matched) return 1;
    if (st->n_stops == 0) return sv_buf_add(out, text, n) ? -1 : 0;
    if (sv_buf_add(&st->held, text, n)) return -1;
    const size_t len = st->held.n;
    const size_t at = first_match(st, st->held.p, len);   /* the earliest whole match */
    const size_t open = len - partial_tail(st, st->held.p, len); /* the earliest that may still become one */
    if (at < len && at <= open) {
        st->matched = true;
        const int r = sv_buf_add(out, st->held.p, at);
        sv_buf_free(&st->held);
        return r ? -1 : 1;
    }
    /* a whole match after a possible earlier one waits for the text that decides between them */
    const size_t safe = at < open ? at : open;
    if (sv_buf_add(out, st->held.p, safe)) return -1;
    sv_buf_consume(&st->held, safe);
    return 0;
}

int serve_stop_flush(struct serve_stop *st, struct sv_buf *out) {
    int r = 0;
    if (!st->matched && st->held.n) {
        /* no more text: a pending start can no longer complete, so a whole match held behind it stands */
        const size_t at = first_match(st, st->held.p, st->held.n);
        st->matched = at < st->held.n;
        r = sv_buf_add(out, st->held.p, at);
    }
    sv_buf_consume(&st->held, st->held.n);
    return r;
}

void serve_stop_free(struct serve_stop *st) { sv_buf_free(&st->held); }
