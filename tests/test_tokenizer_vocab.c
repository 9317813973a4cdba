// labels: unit
/*
 * test_tokenizer_vocab.c: the tokenizers against expected ids that nobody here wrote:
 *   - llama3/cases.jsonl (transformers.js, Llama 3 tokenizer.json) and llama.cpp's
 *     ggml-vocab-llama-bpe .inp/.out, both through tokenizer.json;
 *   - llama-spm/cases.jsonl and llama.cpp's ggml-vocab-llama-spm .inp/.out through the GGUF vocab;
 *   - llama.cpp's ggml-vocab-gpt-2 .inp/.out through the GGUF vocab;
 *   - qwen2-tiny/cases.jsonl (Hugging Face tokenizers on a Qwen2/Qwen3-style tokenizer.json) through
 *     the tokenizer.json and through a GGUF vocab written from it with pre "qwen2";
 *   - the llama-spm cases again through a Llama 2 style tokenizer.json (merges + byte_fallback)
 *     derived from the GGUF vocab as transformers' SentencePieceExtractor derives it;
 * plus decode(encode(text)) == text on every one of those strings, special-token parsing, and
 * streaming decode of characters split across byte tokens.
 *
 *   ctest --test-dir build -R test_tokenizer_vocab --output-on-failure
 */
#include <cjson/cJSON.h>
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io/gguf.h" /* the Qwen2 vocab written as a GGUF file */
#include "support.h"
#include "tokenizer/tokenizer.h"
#include "tokenizer/vocab.h" /* scores, to derive a tokenizer.json from the SPM vocab */

/* ---- helpers ---------------------------------------------------------------------------------- */

/* llama.cpp's Llama SentencePiece vocabulary, and the stem of its .inp/.out test pair. */
#define LLAMA_SPM "tokenizers/llama-spm/ggml-vocab-llama-spm.gguf"

static char *read_all(const char *path, size_t *len) {
    FILE *fp = fopen(path, "rb");
    cr_assert_not_null(fp, "cannot open %s", path);
    fseek(fp, 0, SEEK_END);
    long n = ftell(fp);
    fseek(fp, 0, SEEK_SET);
    char *buf = malloc((size_t)n + 1);
    cr_assert_eq(fread(buf, 1, (size_t)n, fp), (size_t)n);
    fclose(fp);
    buf[n] = '\0';
    *len = (size_t)n;
    return buf;
}

static struct trit_tokenizer *load(const char *name) {
    struct trit_tokenizer *tok = NULL;
    enum trit_status st = trit_tokenizer_load(test_data_path(name), &tok);
    cr_assert_eq(st, TRIT_OK, "loading %s: %s", name, trit_last_error());
    cr_assert_not_null(tok);
    return tok;
}

/* One test string and its expected ids. */
struct tcase {
    char *text;
    size_t len;
    int32_t *ids;
    size_t n_ids;
    char *decoded; /* what decoding the ids gives when it is not the text (NFC), else NULL */
};
struct tcases {
    struct tcase *c;
    size_t n;
};

static void tcases_free(struct tcases *cs) {
    for (size_t i = 0; i < cs->n; i++) {
        free(cs->c[i].text);
        free(cs->c[i].ids);
        free(cs->c[i].decoded);
    }
    free(cs->c);
}

static void push_case(struct tcases *cs, const char *text, size_t len) {
    cs->c = realloc(cs->c, (cs->n + 1) * sizeof *cs->c);
    struct tcase *c = &cs->c[cs->n++];
    c->text = malloc(len + 1);
    memcpy(c->text, text, len);
    c->text[len] = '\0';
    c->len = len;
    c->ids = NULL;
    c->n_ids = 0;
    c->decoded = NULL;
}

static void push_id(struct tcase *c, int32_t id) {
    c->ids = realloc(c->ids, (c->n_ids + 1) * sizeof *c->ids);
    c->ids[c->n_ids++] = id;
}

/* cases.jsonl: one {"text": ..., "ids": [...]} per line, with an optional "decoded" text. */
static struct tcases read_jsonl(const char *name) {
    size_t len;
    char *data = read_all(test_data_path(name), &len);
    struct tcases cs = {0};
    for (char *line = data; line < data + len;) {
        char *nl = memchr(line, '\n', (size_t)(data + len - line));
        size_t n = nl ? (size_t)(nl - line) : (size_t)(data + len - line);
        if (n > 0) {
            cJSON *o = cJSON_ParseWithLength(line, n);
            cr_assert_not_null(o, "bad JSON line in %s", name);
            const cJSON *t = cJSON_GetObjectItemCaseSensitive(o, "text");
            const cJSON *ids = cJSON_GetObjectItemCaseSensitive(o, "ids"), *it;
            cr_assert(cJSON_IsString(t) && cJSON_IsArray(ids));
            push_case(&cs, t->valuestring, strlen(t->valuestring));
            cJSON_ArrayForEach(it, ids) push_id(&cs.c[cs.n - 1], (int32_t)it->valuedouble);
            const cJSON *d = cJSON_GetObjectItemCaseSensitive(o, "decoded");
            if (cJSON_IsString(d) && strcmp(d->valuestring, t->valuestring) != 0)
                cs.c[cs.n - 1].decoded = strdup(d->valuestring);
            cJSON_Delete(o);
        }
        line += n + 1;
    }
    free(data);
    return cs;
}

/* llama.cpp's test pair <stem>.inp and <stem>.out: .inp holds the strings, each followed by
 * "\n__ggml_vocab_test__\n"; .out has one line of space-prefixed ids per string (empty for the empty
 * string). */
static struct tcases read_inp_out(const char *stem) {
    static const char SEP[] = "\n__ggml_vocab_test__\n";
    char inp_name[256], out_name[256];
    snprintf(inp_name, sizeof inp_name, "%s.inp", stem);
    snprintf(out_name, sizeof out_name, "%s.out", stem);
    size_t inp_len, out_len;
    char *inp = read_all(test_data_path(inp_name), &inp_len);
    char *out = read_all(test_data_path(out_name), &out_len);
    struct tcases cs = {0};
    for (char *p = inp; p < inp + inp_len;) {
        char *sep = strstr(p, SEP);
        cr_assert_not_null(sep, "%s: text after the last separator", inp_name);
        push_case(&cs, p, (size_t)(sep - p));
        p = sep + strlen(SEP);
    }
    size_t k = 0;
    for (char *line = out; line < out + out_len; k++) {
        char *nl = memchr(line, '\n', (size_t)(out + out_len - line));
        cr_assert_not_null(nl);
        cr_assert_lt(k, cs.n, "%s has more lines than %s has strings", out_name, inp_name);
        *nl = '\0';
        for (char *q = line; *q;) {
            char *end;
            long v = strtol(q, &end, 10);
            if (end == q) break;
            push_id(&cs.c[k], (int32_t)v);
            q = end;
        }
        line = nl + 1;
    }
    cr_assert_eq(k, cs.n, "%s: %zu lines for %zu strings", out_name, k, cs.n);
    free(inp);
    free(out);
    return cs;
}

static void print_ids(char *buf, size_t cap, const int32_t *ids, size_t n) {
    size_t o = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < n && o + 16 < cap; i++) o += (size_t)snprintf(buf + o, cap - o, " %d", ids[i]);
}

/* There are n_cases cases (0: any number), and every one encodes to exactly its ids (no BOS;
 * special tokens parsed only with TRIT_TOKENIZE_PARSE_SPECIAL in encode_flags) and decodes back to
 * its text (or to its "decoded" text when it has one). Frees the cases. */
static void check_cases_flags(const struct trit_tokenizer *tok, struct tcases cs, size_t n_cases, const char *what,
                              unsigned encode_flags, unsigned decode_flags) {
    if (n_cases) cr_assert_eq(cs.n, n_cases, "%s: %zu cases, expected %zu", what, cs.n, n_cases);
    size_t n_fail = 0;
    for (size_t i = 0; i < cs.n; i++) {
        const struct tcase *c = &cs.c[i];
        struct trit_tokens t = {0};
        cr_assert_eq(trit_tokenize(tok, c->text, c->len, encode_flags, &t), TRIT_OK, "%s", trit_last_error());
        bool same = t.n == c->n_ids && (t.n == 0 || memcmp(t.ids, c->ids, t.n * sizeof *t.ids) == 0);
        if (!same) {
            char got[2048], want[2048];
            print_ids(got, sizeof got, t.ids, t.n);
            print_ids(want, sizeof want, c->ids, c->n_ids);
            cr_log_error("%s case %zu \"%.80s\":\n  got %s\n want %s", what, i, c->text, got, want);
            n_fail++;
        }
        /* round trip */
        const char *want = c->decoded ? c->decoded : c->text;
        size_t want_len = strlen(want), cap = c->len + want_len + 64, n_out;
        char *text = malloc(cap);
        cr_assert_eq(trit_detokenize(tok, t.ids, t.n, decode_flags, text, cap, &n_out), TRIT_OK, "%s", trit_last_error());
        if (n_out != want_len || memcmp(text, want, want_len) != 0) {
            cr_log_error("%s case %zu: decode gives \"%.*s\" for \"%s\"", what, i, (int)n_out, text, want);
            n_fail++;
        }
        free(text);
        trit_tokens_free(&t);
    }
    cr_assert_eq(n_fail, 0, "%s: %zu of %zu cases failed", what, n_fail, cs.n);
    tcases_free(&cs);
}

static void check_cases(const struct trit_tokenizer *tok, struct tcases cs, size_t n_cases, const char *what,
                        unsigned decode_flags) {
    check_cases_flags(tok, cs, n_cases, what, 0, decode_flags);
}

/* ---- Llama 3 through tokenizer.json ----------------------------------------------------------- */

Test(tokenizer_llama3, loads_with_expected_shape) {
    struct trit_tokenizer *tok = load("tokenizers/llama3");
    cr_assert_eq(trit_tokenizer_kind(tok), TRIT_TOKENIZER_BPE);
    cr_assert_eq(trit_tokenizer_n_vocab(tok), 128256);
    cr_assert_eq(trit_tokenizer_bos(tok), 128000);
    cr_assert_eq(trit_tokenizer_eos(tok), 128001);
    cr_assert_eq(trit_tokenizer_eot(tok), 128009); /* <|eot_id|> found by name */
    cr_assert(trit_tokenizer_is_eog(tok, 128001));
    cr_assert(trit_tokenizer_is_eog(tok, 128009));
    cr_assert_not(trit_tokenizer_is_eog(tok, 9906));
    cr_assert_not(trit_tokenizer_is_eog(tok, -1));
    cr_assert_eq(trit_tokenizer_token_type(tok, 128000), TRIT_TOKEN_CONTROL);
    cr_assert_eq(trit_tokenizer_token_type(tok, 9906), TRIT_TOKEN_NORMAL);
    size_t len;
    const char *t = trit_tokenizer_token_text(tok, 22691, &len); /* " Hello" in GPT-2 byte mapping */
    cr_assert_eq(len, 7);
    cr_assert(memcmp(t, "\xc4\xa0Hello", 7) == 0);
    cr_assert_eq(trit_tokenizer_find(tok, "\xc4\xa0Hello", 7), 22691);
    const char *p = trit_tokenizer_piece(tok, 22691, 0, &len);
    cr_assert(len == 6 && memcmp(p, " Hello", 6) == 0);
    trit_tokenizer_free(tok);
}

Test(tokenizer_llama3, cases_jsonl) {
    struct trit_tokenizer *tok = load("tokenizers/llama3/tokenizer.json");
    check_cases(tok, read_jsonl("tokenizers/llama3/cases.jsonl"), 135, "llama3 cases.jsonl", 0);
    trit_tokenizer_free(tok);
}

Test(tokenizer_llama3, llama_cpp_llama_bpe) {
    struct trit_tokenizer *tok = load("tokenizers/llama3");
    check_cases(tok, read_inp_out("tokenizers/llama3/ggml-vocab-llama-bpe.gguf"), 46, "llama-bpe .inp/.out", 0);
    trit_tokenizer_free(tok);
}

Test(tokenizer_llama3, special_tokens) {
    struct trit_tokenizer *tok = load("tokenizers/llama3");
    const char *text = "<|begin_of_text|>Hello";
    struct trit_tokens t = {0};
    cr_assert_eq(trit_tokenize(tok, text, strlen(text), TRIT_TOKENIZE_PARSE_SPECIAL, &t), TRIT_OK);
    cr_assert_eq(t.n, 2);
    cr_assert_eq(t.ids[0], 128000);
    cr_assert_eq(t.ids[1], 9906);

    /* without parse_special the marker is plain text: the ids of "<|", "begin", "_of", "_text", "|>"
     * (tiktoken cl100k/Llama 3 share them), then "Hello" */
    t.n = 0;
    cr_assert_eq(trit_tokenize(tok, text, strlen(text), 0, &t), TRIT_OK);
    static const int32_t plain[] = {27, 91, 7413, 3659, 4424, 91, 29, 9906};
    char got[512];
    print_ids(got, sizeof got, t.ids, t.n);
    cr_assert_eq(t.n, sizeof plain / sizeof plain[0], "got%s", got);
    for (size_t i = 0; i < t.n; i++) cr_assert_eq(t.ids[i], plain[i], "got%s", got);

    /* add_special: this tokenizer.json adds no BOS (its post_processor is ByteLevel only, and the
     * tokenizer_config.json has no add_bos_token) */
    cr_assert_not(trit_tokenizer_add_bos(tok));
    t.n = 0;
    cr_assert_eq(trit_tokenize(tok, "Hello", 5, TRIT_TOKENIZE_ADD_SPECIAL, &t), TRIT_OK);
    cr_assert(t.n == 1 && t.ids[0] == 9906);

    /* specials inside text, back to back, and at the end; decode renders them only when asked */
    const char *chat = "<|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|><|eot_id|>";
    t.n = 0;
    cr_assert_eq(trit_tokenize(tok, chat, strlen(chat), TRIT_TOKENIZE_PARSE_SPECIAL, &t), TRIT_OK);
    cr_assert_eq(t.ids[0], 128006);
    cr_assert_eq(t.ids[2], 128007);
    cr_assert_eq(t.ids[t.n - 1], 128009);
    cr_assert_eq(t.ids[t.n - 2], 128009);
    char out[256];
    size_t n_out;
    cr_assert_eq(trit_detokenize(tok, t.ids, t.n, TRIT_DECODE_SPECIAL, out, sizeof out, &n_out), TRIT_OK);
    cr_assert(n_out == strlen(chat) && memcmp(out, chat, n_out) == 0);
    cr_assert_eq(trit_detokenize(tok, t.ids, t.n, 0, out, sizeof out, &n_out), TRIT_OK);
    cr_assert(n_out == strlen("user\n\nHi") && memcmp(out, "user\n\nHi", n_out) == 0);
    trit_tokens_free(&t);
    trit_tokenizer_free(tok);
}

Test(tokenizer_llama3, tokenize_into_reports_needed_size) {
    struct trit_tokenizer *tok = load("tokenizers/llama3");
    int32_t ids[2];
    size_t n;
    cr_assert_eq(trit_tokenize_into(tok, "Hello, world!", 13, 0, ids, 2, &n), TRIT_ERR_INVALID_ARG);
    cr_assert_eq(n, 4); /* 9906 11 1917 0 */
    cr_assert(ids[0] == 9906 && ids[1] == 11);
    int32_t all[4];
    cr_assert_eq(trit_tokenize_into(tok, "Hello, world!", 13, 0, all, 4, &n), TRIT_OK);
    cr_assert(n == 4 && all[2] == 1917 && all[3] == 0);
    trit_tokenizer_free(tok);
}

/* Invalid UTF-8 survives byte-level BPE: every byte string round-trips exactly. */
Test(tokenizer_llama3, invalid_utf8_round_trips) {
    struct trit_tokenizer *tok = load("tokenizers/llama3");
    struct test_rng rng;
    test_rng_seed(&rng, 7);
    char text[300], out[600];
    for (int iter = 0; iter < 300; iter++) {
        size_t len = (size_t)test_rng_int(&rng, 1, 299);
        for (size_t i = 0; i < len; i++) {
            /* a mix of ASCII, spaces, lead and continuation bytes */
            int64_t k = test_rng_int(&rng, 0, 3);
            text[i] = (char)(k == 0 ? ' ' : k == 1 ? test_rng_int(&rng, 'a', 'z') : test_rng_int(&rng, 0x80, 0xFF));
        }
        struct trit_tokens t = {0};
        cr_assert_eq(trit_tokenize(tok, text, len, 0, &t), TRIT_OK, "%s", trit_last_error());
        size_t n_out;
        cr_assert_eq(trit_detokenize(tok, t.ids, t.n, 0, out, sizeof out, &n_out), TRIT_OK);
        cr_assert(n_out == len && memcmp(out, text, len) == 0, "iteration %d", iter);
        for (size_t i = 0; i < t.n; i++) cr_assert_lt(t.ids[i], 128000);
        trit_tokens_free(&t);
    }
    trit_tokenizer_free(tok);
}

/* Collects what a streaming decoder emits per token. */
static void stream_all(const struct trit_tokenizer *tok, const int32_t *ids, size_t n, unsigned flags,
                       size_t *emitted, char *text, size_t *text_len) {
    struct trit_tok_stream s;
    trit_tok_stream_init(&s, tok, flags);
    size_t cap = trit_tok_stream_max_out(tok), total = 0;
    char *buf = malloc(cap);
    for (size_t i = 0; i < n; i++) {
        size_t k;
        cr_assert_eq(trit_tok_stream_feed(&s, ids[i], buf, cap, &k), TRIT_OK, "%s", trit_last_error());
        emitted[i] = k;
        memcpy(text + total, buf, k);
        total += k;
    }
    size_t k;
    cr_assert_eq(trit_tok_stream_flush(&s, buf, cap, &k), TRIT_OK);
    memcpy(text + total, buf, k);
    *text_len = total + k;
    free(buf);
}

Test(tokenizer_llama3, streaming_holds_back_split_emoji) {
    struct trit_tokenizer *tok = load("tokenizers/llama3");
    const char *text = "\xf0\x9f\xa6\x99"; /* U+1F999 llama: 4 bytes */
    struct trit_tokens t = {0};
    cr_assert_eq(trit_tokenize(tok, text, 4, 0, &t), TRIT_OK);
    cr_assert_gt(t.n, 1, "the emoji must span several tokens for this test to mean anything");
    size_t emitted[8], len;
    char out[64];
    stream_all(tok, t.ids, t.n, 0, emitted, out, &len);
    for (size_t i = 0; i + 1 < t.n; i++) cr_assert_eq(emitted[i], 0, "token %zu emitted %zu bytes", i, emitted[i]);
    cr_assert_eq(emitted[t.n - 1], 4);
    cr_assert(len == 4 && memcmp(out, text, 4) == 0);
    trit_tokens_free(&t);
    trit_tokenizer_free(tok);
}

/* ---- SentencePiece through GGUF --------------------------------------------------------------- */

Test(tokenizer_spm, loads_with_expected_shape) {
    struct trit_tokenizer *tok = load(LLAMA_SPM);
    cr_assert_eq(trit_tokenizer_kind(tok), TRIT_TOKENIZER_SPM);
    cr_assert_eq(trit_tokenizer_n_vocab(tok), 32000);
    cr_assert_eq(trit_tokenizer_bos(tok), 1);
    cr_assert_eq(trit_tokenizer_eos(tok), 2);
    cr_assert_eq(trit_tokenizer_unk(tok), 0);
    cr_assert(trit_tokenizer_add_bos(tok));
    cr_assert(trit_tokenizer_add_space_prefix(tok));
    cr_assert(trit_tokenizer_is_eog(tok, 2));
    cr_assert_eq(trit_tokenizer_token_type(tok, 13), TRIT_TOKEN_BYTE); /* <0x0A> */
    size_t len;
    const char *p = trit_tokenizer_piece(tok, 13, 0, &len);
    cr_assert(len == 1 && p[0] == '\n');
    p = trit_tokenizer_piece(tok, 1, 0, &len); /* <s> is control: empty unless asked */
    cr_assert_eq(len, 0);
    p = trit_tokenizer_piece(tok, 1, TRIT_DECODE_SPECIAL, &len);
    cr_assert(len == 3 && memcmp(p, "<s>", 3) == 0);
    trit_tokenizer_free(tok);
}

Test(tokenizer_spm, cases_jsonl) {
    struct trit_tokenizer *tok = load(LLAMA_SPM);
    /* the ids carry no BOS: " " gives [259] "▁▁" (prefix + the space), "" would give [] */
    check_cases(tok, read_jsonl("tokenizers/llama-spm/cases.jsonl"), 135, "llama-spm cases.jsonl",
                TRIT_DECODE_STRIP_SPACE);
    trit_tokenizer_free(tok);
}

Test(tokenizer_spm, llama_cpp_llama_spm) {
    struct trit_tokenizer *tok = load(LLAMA_SPM);
    check_cases(tok, read_inp_out(LLAMA_SPM), 46, "llama-spm .inp/.out", TRIT_DECODE_STRIP_SPACE);
    trit_tokenizer_free(tok);
}

Test(tokenizer_spm, bos_and_special_parsing) {
    struct trit_tokenizer *tok = load(LLAMA_SPM);
    struct trit_tokens t = {0};
    cr_assert_eq(trit_tokenize(tok, "Hello world", 11, TRIT_TOKENIZE_ADD_SPECIAL, &t), TRIT_OK);
    cr_assert(t.n == 3 && t.ids[0] == 1 && t.ids[1] == 15043 && t.ids[2] == 3186);
    /* an empty text with add_special is just BOS (sentencepiece: encode('') == [1]) */
    t.n = 0;
    cr_assert_eq(trit_tokenize(tok, "", 0, TRIT_TOKENIZE_ADD_SPECIAL, &t), TRIT_OK);
    cr_assert(t.n == 1 && t.ids[0] == 1);
    /* "<s>" parsed is id 1 and the text after it gets the space prefix again */
    t.n = 0;
    cr_assert_eq(trit_tokenize(tok, "<s>Hello", 8, TRIT_TOKENIZE_PARSE_SPECIAL, &t), TRIT_OK);
    cr_assert(t.n == 2 && t.ids[0] == 1 && t.ids[1] == 15043);
    /* decode with BOS first: the prefix space of the first word is still stripped */
    char out[64];
    size_t n_out;
    cr_assert_eq(trit_detokenize(tok, t.ids, t.n, TRIT_DECODE_STRIP_SPACE, out, sizeof out, &n_out), TRIT_OK);
    cr_assert(n_out == 5 && memcmp(out, "Hello", 5) == 0);
    trit_tokens_free(&t);
    trit_tokenizer_free(tok);
}

Test(tokenizer_spm, streaming_holds_back_byte_tokens) {
    struct trit_tokenizer *tok = load(LLAMA_SPM);
    /* " this is 🦙.cpp": the llama is <0xF0><0x9F><0xA6><0x99> = 243 162 169 156 */
    static const int32_t ids[] = {29871, 445, 338, 29871, 243, 162, 169, 156, 29889, 8223};
    const size_t n = sizeof ids / sizeof ids[0];
    size_t emitted[16], len;
    char out[64];
    stream_all(tok, ids, n, TRIT_DECODE_STRIP_SPACE, emitted, out, &len);
    cr_assert_eq(emitted[4], 0);
    cr_assert_eq(emitted[5], 0);
    cr_assert_eq(emitted[6], 0);
    cr_assert_eq(emitted[7], 4);
    /* The first "▁" is the prefix encoding added and is stripped; the second "▁" of "▁this" is the
     * text's own leading space. */
    const char *want = " this is \xf0\x9f\xa6\x99.cpp";
    cr_assert(len == strlen(want) && memcmp(out, want, len) == 0, "got \"%.*s\"", (int)len, out);
    trit_tokenizer_free(tok);
}

/* ---- SentencePiece-style BPE through a derived tokenizer.json ----------------------------------- */

struct growbuf {
    char *p;
    size_t n, cap;
};
static void gb_put(struct growbuf *b, const char *s, size_t n) {
    if (b->n + n + 1 > b->cap) {
        while (b->n + n + 1 > b->cap) b->cap = b->cap ? 2 * b->cap : 1 << 20;
        b->p = realloc(b->p, b->cap);
    }
    memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = '\0';
}
static void gb_str(struct growbuf *b, const char *s, size_t n) { /* as a JSON string literal */
    gb_put(b, "\"", 1);
    for (size_t i = 0; i < n; i++) {
        char esc[8];
        if (s[i] == '"' || s[i] == '\\') {
            esc[0] = '\\';
            esc[1] = s[i];
            gb_put(b, esc, 2);
        } else if ((unsigned char)s[i] < 0x20) {
            snprintf(esc, sizeof esc, "\\u%04x", (unsigned char)s[i]);
            gb_put(b, esc, 6);
        } else {
            gb_put(b, s + i, 1);
        }
    }
    gb_put(b, "\"", 1);
}

struct merge {
    int32_t l, r;
    float score;
    size_t order;
};
static int cmp_merge(const void *pa, const void *pb) { /* score descending, then generation order */
    const struct merge *a = pa, *b = pb;
    if (a->score != b->score) return a->score > b->score ? -1 : 1;
    return a->order < b->order ? -1 : a->order > b->order;
}

/* transformers' SentencePieceExtractor + LlamaConverter: for every piece, in id order, every split
 * into two pieces of the vocab (sorted by their ids) is a merge; merges are then stably sorted by
 * the piece's score, highest first. <unk>, <s>, </s> are special added tokens; the normalizer
 * prepends "▁" and turns spaces into "▁"; byte_fallback is on. */
static char *llama2_tokenizer_json(const struct trit_tokenizer *spm) {
    int32_t n = trit_tokenizer_n_vocab(spm);
    struct merge *m = NULL;
    size_t n_m = 0, cap_m = 0;
    for (int32_t id = 0; id < n; id++) {
        size_t len;
        const char *t = trit_tokenizer_token_text(spm, id, &len);
        size_t first = n_m;
        for (size_t k = 1; k < len; k++) {
            if (((unsigned char)t[k] & 0xC0) == 0x80) continue; /* split between characters only */
            int32_t l = trit_tokenizer_find(spm, t, k), r = trit_tokenizer_find(spm, t + k, len - k);
            if (l < 0 || r < 0) continue;
            if (n_m == cap_m) m = realloc(m, (cap_m = cap_m ? 2 * cap_m : 4096) * sizeof *m);
            m[n_m++] = (struct merge){l, r, spm->tokens[id].score, 0};
        }
        for (size_t a = first + 1; a < n_m; a++) /* insertion sort by (l, r): a handful per piece */
            for (size_t b = a; b > first && (m[b - 1].l > m[b].l || (m[b - 1].l == m[b].l && m[b - 1].r > m[b].r)); b--) {
                struct merge x = m[b];
                m[b] = m[b - 1];
                m[b - 1] = x;
            }
    }
    for (size_t i = 0; i < n_m; i++) m[i].order = i;
    qsort(m, n_m, sizeof *m, cmp_merge);

    struct growbuf b = {0};
    const char *head = "{\"added_tokens\":[{\"id\":0,\"content\":\"<unk>\",\"special\":true},"
                       "{\"id\":1,\"content\":\"<s>\",\"special\":true},{\"id\":2,\"content\":\"</s>\",\"special\":true}],"
                       "\"normalizer\":{\"type\":\"Sequence\",\"normalizers\":[{\"type\":\"Prepend\",\"prepend\":\"\xe2\x96\x81\"},"
                       "{\"type\":\"Replace\",\"pattern\":{\"String\":\" \"},\"content\":\"\xe2\x96\x81\"}]},"
                       "\"pre_tokenizer\":null,\"post_processor\":{\"type\":\"TemplateProcessing\",\"single\":["
                       "{\"SpecialToken\":{\"id\":\"<s>\",\"type_id\":0}},{\"Sequence\":{\"id\":\"A\",\"type_id\":0}}]},"
                       "\"model\":{\"type\":\"BPE\",\"unk_token\":\"<unk>\",\"byte_fallback\":true,\"vocab\":{";
    gb_put(&b, head, strlen(head));
    for (int32_t id = 0; id < n; id++) {
        size_t len;
        const char *t = trit_tokenizer_token_text(spm, id, &len);
        char num[32];
        if (id) gb_put(&b, ",", 1);
        gb_str(&b, t, len);
        gb_put(&b, num, (size_t)snprintf(num, sizeof num, ":%d", id));
    }
    gb_put(&b, "},\"merges\":[", 12);
    for (size_t i = 0; i < n_m; i++) {
        size_t ll, rl;
        const char *l = trit_tokenizer_token_text(spm, m[i].l, &ll), *r = trit_tokenizer_token_text(spm, m[i].r, &rl);
        gb_put(&b, i ? ",[" : "[", i ? 2 : 1);
        gb_str(&b, l, ll);
        gb_put(&b, ",", 1);
        gb_str(&b, r, rl);
        gb_put(&b, "]", 1);
    }
    gb_put(&b, "]}}", 3);
    free(m);
    return b.p;
}

Test(tokenizer_spm, llama2_tokenizer_json_by_merges) {
    struct trit_tokenizer *spm = load(LLAMA_SPM);
    char *json = llama2_tokenizer_json(spm);
    struct trit_tokenizer *tok = NULL;
    cr_assert_eq(trit_tokenizer_load_json_memory(json, strlen(json), NULL, 0, &tok), TRIT_OK, "%s", trit_last_error());
    free(json);
    cr_assert_eq(trit_tokenizer_kind(tok), TRIT_TOKENIZER_SPM);
    cr_assert(trit_tokenizer_add_space_prefix(tok));
    cr_assert(trit_tokenizer_add_bos(tok)); /* from the TemplateProcessing post-processor */
    cr_assert_eq(trit_tokenizer_bos(tok), 1);
    cr_assert_eq(trit_tokenizer_unk(tok), 0);
    cr_assert_eq(trit_tokenizer_token_type(tok, 13), TRIT_TOKEN_BYTE); /* <0x0A> */

    check_cases(tok, read_jsonl("tokenizers/llama-spm/cases.jsonl"), 0, "llama-spm cases.jsonl via tokenizer.json",
                TRIT_DECODE_STRIP_SPACE);
    check_cases(tok, read_inp_out(LLAMA_SPM), 0, "llama-spm .inp/.out via tokenizer.json", TRIT_DECODE_STRIP_SPACE);
    trit_tokenizer_free(tok);
    trit_tokenizer_free(spm);
}

/* ---- GPT-2 through GGUF ----------------------------------------------------------------------- */

Test(tokenizer_gpt2, llama_cpp_gpt_2) {
    struct trit_tokenizer *tok = load("tokenizers/gpt2/ggml-vocab-gpt-2.gguf");
    cr_assert_eq(trit_tokenizer_kind(tok), TRIT_TOKENIZER_BPE);
    cr_assert_eq(trit_tokenizer_n_vocab(tok), 50257);
    cr_assert_eq(trit_tokenizer_eos(tok), 50256);
    cr_assert_not(trit_tokenizer_add_bos(tok));
    check_cases(tok, read_inp_out("tokenizers/gpt2/ggml-vocab-gpt-2.gguf"), 46, "gpt-2 .inp/.out", 0);
    trit_tokenizer_free(tok);
}

/* ---- Qwen2 / Qwen3 ------------------------------------------------------------------------------
 * tokenizers/qwen2-tiny: a 2000-token vocabulary with the structure of Qwen2.5/Qwen3's tokenizer.json
 * (NFC normalizer, the Qwen2 Split regex, ByteLevel without its regex) and Qwen3's 26 added tokens,
 * and the ids Hugging Face tokenizers 0.23.3 gives for 294 strings (make_qwen2_tiny.py there made
 * all of it): digit runs, contractions in every case, CJK, emoji, whitespace runs, decomposed and
 * precomposed characters, Hangul jamo, special and added tokens, random mixes. tokenizers matches
 * added tokens in the text, so these are encoded with PARSE_SPECIAL, and decoded with DECODE_SPECIAL
 * to tokenizers' decode(ids, skip_special_tokens=False), which is the NFC of the text. */

#define QWEN2_TINY "tokenizers/qwen2-tiny"
#define QWEN2_N_CASES 294

Test(tokenizer_qwen2, loads_with_expected_shape) {
    struct trit_tokenizer *tok = load(QWEN2_TINY);
    cr_assert_eq(trit_tokenizer_kind(tok), TRIT_TOKENIZER_BPE);
    cr_assert_eq(trit_tokenizer_n_vocab(tok), 2026);
    cr_assert_eq(trit_tokenizer_bos(tok), -1); /* tokenizer_config.json: bos_token null */
    cr_assert_not(trit_tokenizer_add_bos(tok));
    cr_assert_eq(trit_tokenizer_eos(tok), 2002); /* <|im_end|> */
    cr_assert_eq(trit_tokenizer_pad(tok), 2000); /* <|endoftext|> */
    cr_assert_eq(trit_tokenizer_eot(tok), 2002);
    cr_assert(trit_tokenizer_is_eog(tok, 2000) && trit_tokenizer_is_eog(tok, 2002));
    cr_assert_not(trit_tokenizer_is_eog(tok, 2001));
    cr_assert_eq(trit_tokenizer_token_type(tok, 2001), TRIT_TOKEN_CONTROL);      /* <|im_start|> */
    cr_assert_eq(trit_tokenizer_token_type(tok, 2024), TRIT_TOKEN_USER_DEFINED); /* <think>: not special */
    /* <think> is matched in text even without PARSE_SPECIAL (tokenizers splits every added token);
     * <|im_end|> only with it */
    struct trit_tokens t = {0};
    cr_assert_eq(trit_tokenize(tok, "<think>x", 8, 0, &t), TRIT_OK);
    cr_assert(t.n == 2 && t.ids[0] == 2024, "got %zu ids", t.n);
    t.n = 0;
    cr_assert_eq(trit_tokenize(tok, "<|im_end|>", 10, 0, &t), TRIT_OK);
    cr_assert_gt(t.n, 1);
    t.n = 0;
    cr_assert_eq(trit_tokenize(tok, "<|im_end|>", 10, TRIT_TOKENIZE_PARSE_SPECIAL | TRIT_TOKENIZE_ADD_SPECIAL, &t),
                 TRIT_OK);
    cr_assert(t.n == 1 && t.ids[0] == 2002);
    trit_tokens_free(&t);
    trit_tokenizer_free(tok);
}

Test(tokenizer_qwen2, cases_jsonl) {
    struct trit_tokenizer *tok = load(QWEN2_TINY);
    check_cases_flags(tok, read_jsonl(QWEN2_TINY "/cases.jsonl"), QWEN2_N_CASES, "qwen2-tiny cases.jsonl",
                      TRIT_TOKENIZE_PARSE_SPECIAL, TRIT_DECODE_SPECIAL);
    trit_tokenizer_free(tok);
}

/* The qwen2-tiny vocabulary as llama.cpp's convert_hf_to_gguf.py writes a Qwen3 file: model "gpt2",
 * the given pre, tokens by id with types (special added tokens control, the others user-defined),
 * merges as "a b", bos = pad = <|endoftext|>, eos = <|im_end|>, add_bos_token false. */
static struct trit_tokenizer *qwen2_tiny_gguf(const char *pre) {
    size_t len;
    char *json = read_all(test_data_path(QWEN2_TINY "/tokenizer.json"), &len);
    cJSON *root = cJSON_ParseWithLength(json, len);
    cr_assert_not_null(root);
    const cJSON *model = cJSON_GetObjectItemCaseSensitive(root, "model"), *it;
    const cJSON *vocab = cJSON_GetObjectItemCaseSensitive(model, "vocab");
    const cJSON *merges = cJSON_GetObjectItemCaseSensitive(model, "merges");
    const cJSON *added = cJSON_GetObjectItemCaseSensitive(root, "added_tokens");
    enum { N = 2026 };
    static const char *tokens[N];
    static int32_t types[N];
    cJSON_ArrayForEach(it, vocab) {
        int id = it->valueint;
        cr_assert(id >= 0 && id < N);
        tokens[id] = it->string;
        types[id] = TRIT_TOKEN_NORMAL;
    }
    cJSON_ArrayForEach(it, added) {
        int id = cJSON_GetObjectItemCaseSensitive(it, "id")->valueint;
        cr_assert(id >= 0 && id < N);
        tokens[id] = cJSON_GetObjectItemCaseSensitive(it, "content")->valuestring;
        types[id] = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(it, "special")) ? TRIT_TOKEN_CONTROL
                                                                                  : TRIT_TOKEN_USER_DEFINED;
    }
    for (int id = 0; id < N; id++) cr_assert_not_null(tokens[id], "id %d has no token", id);
    int n_merges = cJSON_GetArraySize(merges), k = 0;
    char **m = calloc((size_t)n_merges, sizeof *m);
    cJSON_ArrayForEach(it, merges) {
        const char *a = cJSON_GetArrayItem(it, 0)->valuestring, *b = cJSON_GetArrayItem(it, 1)->valuestring;
        m[k] = malloc(strlen(a) + strlen(b) + 2);
        sprintf(m[k++], "%s %s", a, b);
    }
    struct gguf_writer *w;
    cr_assert_eq(gguf_writer_init(&w), TRIT_OK);
    cr_assert_eq(gguf_writer_set_str(w, "tokenizer.ggml.model", "gpt2"), TRIT_OK);
    cr_assert_eq(gguf_writer_set_str(w, "tokenizer.ggml.pre", pre), TRIT_OK);
    cr_assert_eq(gguf_writer_set_arr_str(w, "tokenizer.ggml.tokens", tokens, N), TRIT_OK);
    cr_assert_eq(gguf_writer_set_arr(w, "tokenizer.ggml.token_type", GGUF_TYPE_INT32, types, N), TRIT_OK);
    cr_assert_eq(gguf_writer_set_arr_str(w, "tokenizer.ggml.merges", (const char *const *)m, (uint64_t)n_merges),
                 TRIT_OK);
    cr_assert_eq(gguf_writer_set_u32(w, "tokenizer.ggml.bos_token_id", 2000), TRIT_OK);
    cr_assert_eq(gguf_writer_set_u32(w, "tokenizer.ggml.eos_token_id", 2002), TRIT_OK);
    cr_assert_eq(gguf_writer_set_u32(w, "tokenizer.ggml.padding_token_id", 2000), TRIT_OK);
    cr_assert_eq(gguf_writer_set_bool(w, "tokenizer.ggml.add_bos_token", false), TRIT_OK);
    const char *path = test_tmp_path("qwen2-tiny.gguf");
    cr_assert_eq(gguf_writer_write(w, path), TRIT_OK, "%s", trit_last_error());
    gguf_writer_free(w);
    for (int i = 0; i < n_merges; i++) free(m[i]);
    free(m);
    cJSON_Delete(root);
    free(json);
    struct trit_tokenizer *tok = NULL;
    cr_assert_eq(trit_tokenizer_load(path, &tok), TRIT_OK, "pre %s: %s", pre, trit_last_error());
    return tok;
}

/* How many cases encode to other ids than expected. */
static size_t count_mismatches(const struct trit_tokenizer *tok, struct tcases cs) {
    size_t n = 0;
    for (size_t i = 0; i < cs.n; i++) {
        struct trit_tokens t = {0};
        cr_assert_eq(trit_tokenize(tok, cs.c[i].text, cs.c[i].len, TRIT_TOKENIZE_PARSE_SPECIAL, &t), TRIT_OK);
        n += t.n != cs.c[i].n_ids || (t.n && memcmp(t.ids, cs.c[i].ids, t.n * sizeof *t.ids) != 0);
        trit_tokens_free(&t);
    }
    tcases_free(&cs);
    return n;
}

/* tokenizer.ggml.pre = "qwen2" (llama.cpp's name for Qwen2, Qwen2.5 and Qwen3 vocabularies) selects
 * the Qwen2 regex and NFC: the GGUF file gives tokenizers' ids on every case. The Llama 3 and GPT-2
 * pre-tokenizers on the same vocabulary do not, so the cases tell the three apart. */
Test(tokenizer_qwen2, gguf_pre_qwen2, .init = test_tmp_make, .fini = test_tmp_remove) {
    struct trit_tokenizer *tok = qwen2_tiny_gguf("qwen2");
    cr_assert_eq(trit_tokenizer_bos(tok), 2000);
    cr_assert_eq(trit_tokenizer_eos(tok), 2002);
    cr_assert_not(trit_tokenizer_add_bos(tok));
    cr_assert_eq(trit_tokenizer_token_type(tok, 2024), TRIT_TOKEN_USER_DEFINED);
    check_cases_flags(tok, read_jsonl(QWEN2_TINY "/cases.jsonl"), QWEN2_N_CASES, "qwen2-tiny cases via GGUF",
                      TRIT_TOKENIZE_PARSE_SPECIAL, TRIT_DECODE_SPECIAL);
    trit_tokenizer_free(tok);
    /* deepseek-r1-qwen is the same pre-tokenizer under another name */
    tok = qwen2_tiny_gguf("deepseek-r1-qwen");
    cr_assert_eq(count_mismatches(tok, read_jsonl(QWEN2_TINY "/cases.jsonl")), 0);
    trit_tokenizer_free(tok);
    static const char *const others[] = {"llama-bpe", "gpt2"};
    for (size_t i = 0; i < 2; i++) {
        tok = qwen2_tiny_gguf(others[i]);
        size_t bad = count_mismatches(tok, read_jsonl(QWEN2_TINY "/cases.jsonl"));
        cr_log_info("pre %s on the qwen2 vocabulary: %zu of %d cases differ", others[i], bad, QWEN2_N_CASES);
        cr_assert_gt(bad, 10, "pre %s: only %zu of the cases differ", others[i], bad);
        trit_tokenizer_free(tok);
    }
}
