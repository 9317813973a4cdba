/*
 * pretok.c: the pre-tokenizer. Splits raw text into the pieces byte-level BPE merges within:
 * maximal runs of well-formed UTF-8 go through the regex stages (PCRE2, UTF + UCP, JIT when
 * available); every other byte run is a piece of its own, so PCRE2 only ever sees valid UTF-8 and
 * is called with PCRE2_NO_UTF_CHECK (its own check would rescan the subject on every call).
 *
 * Splitting is "Isolated" (tokenizer.json Split behavior): the matches and the gaps between them
 * are all pieces, in order.
 */
#include "tokenizer/vocab.h"

static enum trit_status split_stage(const struct trit_tokenizer *tok, pcre2_match_data *md, int stage,
                                    const char *s, size_t n, pretok_fn fn, void *user) {
    if (n == 0) return TRIT_OK;
    if (stage == tok->n_regex) return fn(s, n, user);
    const pcre2_code *re = tok->regex[stage];
    size_t last = 0, offset = 0; /* end of the last piece emitted; where the next match may start */
    while (offset < n) {
        int rc = pcre2_match(re, (PCRE2_SPTR)s, n, offset, PCRE2_NO_UTF_CHECK, md, NULL);
        if (rc == PCRE2_ERROR_JIT_STACKLIMIT) /* JIT ran out of its stack: interpret instead */
            rc = pcre2_match(re, (PCRE2_SPTR)s, n, offset, PCRE2_NO_UTF_CHECK | PCRE2_NO_JIT, md, NULL);
        if (rc == PCRE2_ERROR_NOMATCH) break;
        if (rc < 0) {
            PCRE2_UCHAR msg[256];
            pcre2_get_error_message(rc, msg, sizeof msg);
            return trit_error(TRIT_ERR_INTERNAL, "tokenizer: pre-tokenizer regex failed at byte %zu: %s",
                              offset, (const char *)msg);
        }
        /* rc == 0 means the ovector is too small for the groups; the whole match is still there. */
        const PCRE2_SIZE *ov = pcre2_get_ovector_pointer(md);
        size_t ms = ov[0], me = ov[1];
        if (me <= ms) { /* an empty match splits nothing: step over one character */
            offset = ms + utf8_len_lead((uint8_t)s[ms]);
            if (offset > n) offset = n;
            continue;
        }
        if (ms > last) TRIT_TRY(split_stage(tok, md, stage + 1, s + last, ms - last, fn, user));
        TRIT_TRY(split_stage(tok, md, stage + 1, s + ms, me - ms, fn, user));
        last = offset = me;
    }
    return split_stage(tok, md, stage + 1, s + last, n - last, fn, user);
}

enum trit_status pretok_split(const struct trit_tokenizer *tok, pcre2_match_data *md, const char *text,
                              size_t len, pretok_fn fn, void *user) {
    const uint8_t *u = (const uint8_t *)text;
    size_t i = 0;
    while (i < len) {
        /* a run of well-formed characters */
        size_t start = i, clen;
        while (i < len) {
            if (u[i] < 0x80) {
                i++;
                continue;
            }
            if (utf8_classify(u + i, len - i, &clen) != UTF8_VALID) break;
            i += clen;
        }
        TRIT_TRY(split_stage(tok, md, 0, text + start, i - start, fn, user));
        /* a run of ill-formed bytes (an incomplete sequence at the end counts as ill-formed) */
        start = i;
        while (i < len && u[i] >= 0x80) {
            enum utf8_result r = utf8_classify(u + i, len - i, &clen);
            if (r == UTF8_VALID) break;
            i += r == UTF8_INCOMPLETE ? len - i : clen;
        }
        if (i > start) TRIT_TRY(fn(text + start, i - start, user));
    }
    return TRIT_OK;
}
