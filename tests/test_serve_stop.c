// labels: unit
/* test_serve_stop.c: the stop-sequence matcher of `trit serve` (tools/serve/stop.c): text held back
 * while it may start a stop string, cut before the first match, released at the end; and random
 * texts fed in random pieces against the plain definition (the text before the first occurrence). */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "serve/stop.h"
#include "support.h"

/* Feeds the pieces (NULL-terminated) and then flushes when no stop matched; returns what came out
 * and whether a stop matched. */
static char *run(const char *const *stops, int n_stops, const char *const *pieces, bool *matched) {
    struct serve_stop st;
    serve_stop_init(&st, stops, n_stops);
    struct sv_buf out = {0};
    sv_buf_add(&out, "", 0);
    int r = 0;
    for (int i = 0; pieces[i]; i++) {
        r = serve_stop_feed(&st, pieces[i], strlen(pieces[i]), &out);
        cr_assert_geq(r, 0);
    }
    if (r == 0) cr_assert_eq(serve_stop_flush(&st, &out), 0);
    *matched = st.matched;
    serve_stop_free(&st);
    return out.p;
}

Test(serve_stop, no_stops_pass_everything) {
    const char *pieces[] = {"Hello", ", ", "world", NULL};
    bool m;
    char *out = run(NULL, 0, pieces, &m);
    cr_assert_str_eq(out, "Hello, world");
    cr_assert_not(m);
    free(out);
}

Test(serve_stop, cut_before_the_stop_string_never_emitting_it) {
    const char *stops[] = {"\n\n"};
    const char *pieces[] = {"first line", "\n", "\nsecond", NULL};
    bool m;
    char *out = run(stops, 1, pieces, &m);
    cr_assert_str_eq(out, "first line");
    cr_assert(m);
    free(out);
}

Test(serve_stop, held_back_text_is_released_when_it_turns_out_not_to_match) {
    const char *stops[] = {"END"};
    struct serve_stop st;
    serve_stop_init(&st, stops, 1);
    struct sv_buf out = {0};
    sv_buf_add(&out, "", 0);
    cr_assert_eq(serve_stop_feed(&st, "the EN", 6, &out), 0);
    cr_assert_str_eq(out.p, "the "); /* "EN" may start "END" */
    cr_assert_eq(serve_stop_feed(&st, "D", 1, &out), 1);
    cr_assert_str_eq(out.p, "the ");
    cr_assert_eq(serve_stop_feed(&st, "more", 4, &out), 1, "after a match nothing more comes out");
    cr_assert_str_eq(out.p, "the ");
    serve_stop_free(&st);

    serve_stop_init(&st, stops, 1);
    sv_buf_consume(&out, out.n);
    cr_assert_eq(serve_stop_feed(&st, "the EN", 6, &out), 0);
    cr_assert_eq(serve_stop_feed(&st, "DING", 1, &out), 1); /* one byte of it: "D" */
    serve_stop_free(&st);

    serve_stop_init(&st, stops, 1);
    sv_buf_consume(&out, out.n);
    cr_assert_eq(serve_stop_feed(&st, "the EN", 6, &out), 0);
    cr_assert_eq(serve_stop_feed(&st, "VY", 2, &out), 0);
    cr_assert_str_eq(out.p, "the ENVY");
    cr_assert_eq(serve_stop_feed(&st, "E", 1, &out), 0);
    cr_assert_str_eq(out.p, "the ENVY");
    cr_assert_eq(serve_stop_flush(&st, &out), 0, "the end releases what was held");
    cr_assert_str_eq(out.p, "the ENVYE");
    serve_stop_free(&st);
    sv_buf_free(&out);
}

Test(serve_stop, the_earliest_of_several_stops_wins) {
    const char *stops[] = {"world", "o, w", "xyz"};
    const char *pieces[] = {"Hello, world", NULL};
    bool m;
    char *out = run(stops, 3, pieces, &m);
    cr_assert_str_eq(out, "Hell");
    cr_assert(m);
    free(out);
}

Test(serve_stop, a_longer_stop_that_started_earlier_wins) {
    const char *stops[] = {"abcd", "c"};
    struct serve_stop st;
    serve_stop_init(&st, stops, 2);
    struct sv_buf out = {0};
    sv_buf_add(&out, "", 0);
    cr_assert_eq(serve_stop_feed(&st, "xabc", 4, &out), 0, "\"abcd\" may still start at 'a'");
    cr_assert_str_eq(out.p, "x");
    cr_assert_eq(serve_stop_feed(&st, "d", 1, &out), 1);
    cr_assert_str_eq(out.p, "x");
    serve_stop_free(&st);
    /* the text ends (or goes elsewhere) instead: "c" stands */
    serve_stop_init(&st, stops, 2);
    sv_buf_consume(&out, out.n);
    cr_assert_eq(serve_stop_feed(&st, "xabc", 4, &out), 0);
    cr_assert_eq(serve_stop_flush(&st, &out), 0);
    cr_assert(st.matched);
    cr_assert_str_eq(out.p, "xab");
    serve_stop_free(&st);
    serve_stop_init(&st, stops, 2);
    sv_buf_consume(&out, out.n);
    cr_assert_eq(serve_stop_feed(&st, "xabc", 4, &out), 0);
    cr_assert_eq(serve_stop_feed(&st, "e", 1, &out), 1);
    cr_assert_str_eq(out.p, "xab");
    serve_stop_free(&st);
    sv_buf_free(&out);
}

Test(serve_stop, a_match_that_overlaps_a_false_start) {
    const char *stops[] = {"aab"};
    const char *pieces[] = {"xa", "a", "a", "b", "tail", NULL};
    bool m;
    char *out = run(stops, 1, pieces, &m);
    cr_assert_str_eq(out, "xa");
    cr_assert(m);
    free(out);
}

Test(serve_stop, multibyte_stop_strings) {
    const char *stops[] = {"\xc3\xa9t\xc3\xa9"}; /* "été" */
    const char *pieces[] = {"un \xc3", "\xa9", "t\xc3\xa9 chaud", NULL};
    bool m;
    char *out = run(stops, 1, pieces, &m);
    cr_assert_str_eq(out, "un ");
    cr_assert(m);
    free(out);
}

/* The definition: the text up to the first occurrence of any stop string. */
static size_t reference(const char *text, size_t n, const char *const *stops, int n_stops, bool *matched) {
    *matched = false;
    for (size_t p = 0; p < n; p++)
        for (int i = 0; i < n_stops; i++) {
            const size_t len = strlen(stops[i]);
            if (p + len <= n && memcmp(text + p, stops[i], len) == 0) {
                *matched = true;
                return p;
            }
        }
    return n;
}

Test(serve_stop, random_texts_in_random_pieces_equal_the_definition) {
    struct test_rng rng;
    test_rng_seed(&rng, 15);
    for (int trial = 0; trial < 3000; trial++) {
        /* a small alphabet makes partial matches frequent */
        char text[96], stop_buf[4][8];
        const char *stops[4];
        const size_t n = (size_t)test_rng_int(&rng, 0, 95);
        for (size_t i = 0; i < n; i++) text[i] = (char)('a' + test_rng_int(&rng, 0, 2));
        text[n] = '\0';
        const int n_stops = (int)test_rng_int(&rng, 0, 4);
        for (int s = 0; s < n_stops; s++) {
            const int len = (int)test_rng_int(&rng, 1, 6);
            for (int i = 0; i < len; i++) stop_buf[s][i] = (char)('a' + test_rng_int(&rng, 0, 2));
            stop_buf[s][len] = '\0';
            stops[s] = stop_buf[s];
        }
        struct serve_stop st;
        serve_stop_init(&st, stops, n_stops);
        struct sv_buf out = {0};
        sv_buf_add(&out, "", 0);
        int r = 0;
        for (size_t at = 0; at < n && r == 0;) {
            size_t k = (size_t)test_rng_int(&rng, 0, 7);
            if (k > n - at) k = n - at;
            r = serve_stop_feed(&st, text + at, k, &out);
            at += k;
        }
        if (r == 0) serve_stop_flush(&st, &out);
        bool want_match;
        const size_t want = reference(text, n, stops, n_stops, &want_match);
        cr_assert_eq(st.matched, want_match, "trial %d: text '%s'", trial, text);
        cr_assert_eq(out.n, want, "trial %d: text '%s': %zu bytes out, want %zu", trial, text, out.n, want);
        cr_assert_eq(memcmp(out.p, text, want), 0, "trial %d", trial);
        serve_stop_free(&st);
        sv_buf_free(&out);
    }
}
