/*
 * fuzz_tokenizer.c: libFuzzer target for tokenizer input. Each input is raw text (any bytes, invalid
 * UTF-8 included). It is encoded with the Llama 3 tokenizer.json (byte-level BPE) and the Llama 2
 * SentencePiece GGUF vocab, with and without special-token parsing, then decoded in one go and
 * through the streaming decoder. Checked, trapping on failure:
 *   - encoding never fails and every id is inside the vocabulary;
 *   - byte-level BPE gives the input back exactly (control tokens rendered with DECODE_SPECIAL);
 *   - SPM gives it back exactly when the text holds no literal U+2581 (which decodes to a space);
 *   - the streaming decoder's output is always well-formed UTF-8, and equals the input when the
 *     input is well-formed and round-trips.
 * The vocabularies are loaded once (static) from $TRIT_TEST_DATA/tokenizers, else from tests/data
 * found relative to this source file.
 *
 *   CC=clang cmake -S . -B build-fuzz -DTRIT_FUZZ=ON -DTRIT_CUDA=OFF && cmake --build build-fuzz -j2
 *   build-fuzz/tests/fuzz/fuzz_tokenizer -max_total_time=60 /tmp/tok-work tests/fuzz/corpus/tokenizer
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tokenizer/tokenizer.h"
#include "tokenizer/vocab.h"

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "fuzz_tokenizer: check failed: %s (line %d); last error: %s\n", #cond, \
                    __LINE__, trit_last_error());                                                  \
            __builtin_trap();                                                                      \
        }                                                                                          \
    } while (0)

static struct trit_tokenizer *load_data(const char *rel) {
    char path[4096];
    const char *data = getenv("TRIT_TEST_DATA");
    if (data && *data) {
        snprintf(path, sizeof path, "%s/tokenizers/%s", data, rel);
    } else { /* CMake compiles with absolute paths: tests/data is beside this file's folder */
        const char *slash = strrchr(__FILE__, '/');
        int dir = slash ? (int)(slash - __FILE__ + 1) : 0;
        snprintf(path, sizeof path, "%.*s../data/tokenizers/%s", dir, __FILE__, rel);
    }
    struct trit_tokenizer *tok = NULL;
    if (trit_tokenizer_load(path, &tok) != TRIT_OK) {
        fprintf(stderr, "fuzz_tokenizer: cannot load %s: %s\n", path, trit_last_error());
        abort();
    }
    return tok;
}

static bool well_formed(const char *s, size_t n) {
    for (size_t i = 0; i < n;) {
        size_t len;
        if (utf8_classify((const uint8_t *)s + i, n - i, &len) != UTF8_VALID) return false;
        i += len;
    }
    return true;
}

static void check_one(const struct trit_tokenizer *tok, const char *text, size_t len, unsigned enc_flags,
                      unsigned dec_flags, bool expect_exact) {
    struct trit_tokens t = {0};
    CHECK(trit_tokenize(tok, text, len, enc_flags, &t) == TRIT_OK);
    for (size_t i = 0; i < t.n; i++) CHECK(t.ids[i] >= 0 && t.ids[i] < trit_tokenizer_n_vocab(tok));

    size_t cap = 3 * len + 64, n_out;
    char *out = malloc(cap);
    CHECK(trit_detokenize(tok, t.ids, t.n, dec_flags, out, cap, &n_out) == TRIT_OK);
    bool exact = n_out == len && memcmp(out, text, len) == 0;
    if (expect_exact) CHECK(exact);

    /* streaming */
    struct trit_tok_stream s;
    trit_tok_stream_init(&s, tok, dec_flags);
    size_t step_cap = trit_tok_stream_max_out(tok), total = 0, k;
    char *step = malloc(step_cap);
    char *streamed = malloc(3 * len + 3 * 4 + 64);
    for (size_t i = 0; i < t.n; i++) {
        CHECK(trit_tok_stream_feed(&s, t.ids[i], step, step_cap, &k) == TRIT_OK);
        CHECK(well_formed(step, k));
        memcpy(streamed + total, step, k);
        total += k;
    }
    CHECK(trit_tok_stream_flush(&s, step, step_cap, &k) == TRIT_OK);
    memcpy(streamed + total, step, k);
    total += k;
    CHECK(well_formed(streamed, total));
    if (exact && well_formed(text, len)) CHECK(total == len && memcmp(streamed, text, len) == 0);
    free(streamed);
    free(step);
    free(out);
    trit_tokens_free(&t);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static struct trit_tokenizer *llama3, *spm;
    if (!llama3) {
        llama3 = load_data("llama3");
        spm = load_data("llama-spm/ggml-vocab-llama-spm.gguf");
    }
    const char *text = (const char *)data;
    bool has_mark = false;
    for (size_t i = 0; i + 3 <= size && !has_mark; i++) has_mark = memcmp(text + i, "\xe2\x96\x81", 3) == 0;

    check_one(llama3, text, size, 0, 0, true);
    check_one(llama3, text, size, TRIT_TOKENIZE_PARSE_SPECIAL | TRIT_TOKENIZE_ADD_SPECIAL, TRIT_DECODE_SPECIAL, true);
    check_one(spm, text, size, 0, TRIT_DECODE_STRIP_SPACE, !has_mark);
    check_one(spm, text, size, TRIT_TOKENIZE_PARSE_SPECIAL | TRIT_TOKENIZE_ADD_SPECIAL,
              TRIT_DECODE_SPECIAL | TRIT_DECODE_STRIP_SPACE, false);
    return 0;
}
