/*
 * stop.h: stop sequences with OpenAI's semantics. Generated text is fed in pieces; what comes out
 * is the text up to (never including) the first occurrence of any stop string. Text that could be
 * the start of a stop string is held back until the next piece decides; at the end it is released
 * (serve_stop_flush). Pure: no threads, no library state.
 *
 *   struct serve_stop st;  serve_stop_init(&st, stops, n);
 *   serve_stop_feed(&st, piece, n, &out)   -> 1 when a stop string matched (out ends before it)
 *   serve_stop_flush(&st, &out)            -> the held-back text, when generation ends otherwise
 */
#ifndef TRIT_SERVE_STOP_H
#define TRIT_SERVE_STOP_H

#include <stdbool.h>
#include <stddef.h>

#include "util.h"

#define SERVE_MAX_STOP 4          /* OpenAI's limit */
#define SERVE_MAX_STOP_BYTES 256  /* per stop string: bounds what is held back */

struct serve_stop {
    const char *const *stops; /* [n_stops], non-empty, owned by the caller */
    size_t lens[SERVE_MAX_STOP];
    int n_stops;
    struct sv_buf held; /* text that may be the start of a stop string */
    bool matched;       /* a stop string matched: everything after it is dropped */
};
/* n_stops <= SERVE_MAX_STOP; each string non-empty. */
void serve_stop_init(struct serve_stop *st, const char *const *stops, int n_stops);
/* Appends text[0..n) to the stream and the part now known to come before any stop string to *out.
 * Returns 1 when a stop string matched (now or before: later feeds add nothing), 0 when not, -1
 * when out of memory. */
int serve_stop_feed(struct serve_stop *st, const char *text, size_t n, struct sv_buf *out);
/* The text ended: appends what is held back to *out, up to a stop string held there (which then
 * sets `matched`; nothing after a match). Returns 0, or -1 when out of memory. */
int serve_stop_flush(struct serve_stop *st, struct sv_buf *out);
void serve_stop_free(struct serve_stop *st);

#endif /* TRIT_SERVE_STOP_H */
