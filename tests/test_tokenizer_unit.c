// labels: unit
/*
 * test_tokenizer_unit.c: the tokenizer's parts on small vocabularies written here, where the right
 * answer follows from the rules: UTF-8 classification, the GPT-2 byte map, the heap, merge order
 * (lowest rank, ties to the left), ignore_merges, special and user-defined tokens, streaming decode
 * of ill-formed bytes, SPM word-by-word merging against whole-text merging, the loaders' errors,
 * what GGUF pre "qwen2" selects (single digits, NFC), and NFC itself (UAX #15 cases).
 *
 *   ctest --test-dir build -R test_tokenizer_unit --output-on-failure
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io/gguf.h"
#include "support.h"
#include "tokenizer/tokenizer.h"
#include "tokenizer/vocab.h"

/* ---- UTF-8 and the byte map ------------------------------------------------------------------- */

Test(tokenizer_utf8, classify_follows_table_3_7) {
    static const struct {
        const char *s;
        size_t n;
        enum utf8_result r;
        size_t len;
    } cases[] = {
        {"a", 1, UTF8_VALID, 1},
        {"\xc3\xa9", 2, UTF8_VALID, 2},
        {"\xe2\x82\xac", 3, UTF8_VALID, 3},
        {"\xf0\x9f\xa6\x99", 4, UTF8_VALID, 4},
        {"\xf4\x8f\xbf\xbf", 4, UTF8_VALID, 4}, /* U+10FFFF */
        {"\x80", 1, UTF8_INVALID, 1},          /* lone continuation */
        {"\xc0\x80", 2, UTF8_INVALID, 1},      /* overlong NUL */
        {"\xc1\xbf", 2, UTF8_INVALID, 1},
        {"\xe0\x80\x80", 3, UTF8_INVALID, 1},  /* overlong 3-byte */
        {"\xed\xa0\x80", 3, UTF8_INVALID, 1},  /* surrogate U+D800 */
        {"\xe2\x82\x41", 3, UTF8_INVALID, 2},  /* truncated by 'A': maximal subpart E2 82 */
        {"\xf0\x8f\xbf\xbf", 4, UTF8_INVALID, 1},
        {"\xf4\x90\x80\x80", 4, UTF8_INVALID, 1}, /* above U+10FFFF */
        {"\xf5\x80\x80\x80", 4, UTF8_INVALID, 1},
        {"\xff", 1, UTF8_INVALID, 1},
        {"\xf0\x9f", 2, UTF8_INCOMPLETE, 0},
        {"\xe2", 1, UTF8_INCOMPLETE, 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        size_t len = 0;
        enum utf8_result r = utf8_classify((const uint8_t *)cases[i].s, cases[i].n, &len);
        cr_assert_eq(r, cases[i].r, "case %zu", i);
        if (r != UTF8_INCOMPLETE) cr_assert_eq(len, cases[i].len, "case %zu", i);
    }
}

Test(tokenizer_utf8, gpt2_byte_map_is_a_bijection) {
    cr_assert_eq(bytelevel_cp(' '), 0x120);  /* 'Ġ' */
    cr_assert_eq(bytelevel_cp('\n'), 0x10A); /* 'Ċ' */
    cr_assert_eq(bytelevel_cp('!'), '!');
    cr_assert_eq(bytelevel_cp(0xAD), 0x143); /* soft hyphen: the 68th non-printable byte */
    bool seen[0x200] = {0};
    for (int b = 0; b < 256; b++) {
        uint32_t cp = bytelevel_cp((uint8_t)b);
        cr_assert_lt(cp, 0x200);
        cr_assert_not(seen[cp], "code point %u used twice", cp);
        seen[cp] = true;
        cr_assert_eq(bytelevel_byte(cp), b);
    }
    cr_assert_eq(bytelevel_byte(0x144), -1);
    cr_assert_eq(bytelevel_byte(0x20), -1); /* a raw space never appears in byte-level text */
}

Test(tokenizer_utf8, heap_pops_in_key_order) {
    struct test_rng rng;
    test_rng_seed(&rng, 11);
    struct tok_scratch s = {0};
    enum { N = 1000 };
    for (int i = 0; i < N; i++) {
        struct tok_heap_item it = {.key = test_rng_u64(&rng) % 500, .left = i};
        cr_assert_eq(heap_push(&s, it), TRIT_OK);
    }
    struct tok_heap_item it;
    uint64_t last = 0;
    int n = 0;
    while (heap_pop(&s, &it)) {
        cr_assert_geq(it.key, last);
        last = it.key;
        n++;
    }
    cr_assert_eq(n, N);
    scratch_free(&s);
}

/* ---- a small byte-level vocab ------------------------------------------------------------------- */

/* Appends s as a JSON string literal. */
static size_t json_str(char *out, const char *s, size_t n) {
    size_t o = 0;
    out[o++] = '"';
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '"' || s[i] == '\\') out[o++] = '\\';
        out[o++] = s[i];
    }
    out[o++] = '"';
    return o;
}

/* A tokenizer.json with the 256 byte tokens (ids 0..255), then `extra` tokens (ids 256..), merges
 * given as "a b" strings, and optional added tokens / pre-tokenizer / flags. */
static char *make_json(const char *const *extra, int n_extra, const char *const *merges, int n_merges,
                       const char *added, const char *pre, bool ignore_merges) {
    char *j = malloc(1 << 16);
    size_t o = 0;
    o += (size_t)sprintf(j + o, "{\"model\":{\"type\":\"BPE\",\"ignore_merges\":%s,\"vocab\":{",
                         ignore_merges ? "true" : "false");
    for (int b = 0; b < 256; b++) {
        char m[2];
        size_t n = bytelevel_utf8((uint8_t)b, m);
        o += json_str(j + o, m, n);
        o += (size_t)sprintf(j + o, ":%d,", b);
    }
    for (int i = 0; i < n_extra; i++) {
        o += json_str(j + o, extra[i], strlen(extra[i]));
        o += (size_t)sprintf(j + o, ":%d,", 256 + i);
    }
    j[o - 1] = '}';
    o += (size_t)sprintf(j + o, ",\"merges\":[");
    for (int i = 0; i < n_merges; i++) {
        o += json_str(j + o, merges[i], strlen(merges[i]));
        j[o++] = ',';
    }
    if (n_merges) o--;
    o += (size_t)sprintf(j + o, "]},\"added_tokens\":[%s],\"pre_tokenizer\":%s}", added ? added : "",
                         pre ? pre : "{\"type\":\"ByteLevel\",\"add_prefix_space\":false,\"use_regex\":true}");
    return j;
}

static struct trit_tokenizer *load_mem(const char *json) {
    struct trit_tokenizer *tok = NULL;
    enum trit_status st = trit_tokenizer_load_json_memory(json, strlen(json), NULL, 0, &tok);
    cr_assert_eq(st, TRIT_OK, "%s", trit_last_error());
    return tok;
}

/* Encodes text and compares with the expected ids. */
static void expect_ids(const struct trit_tokenizer *tok, const char *text, unsigned flags, const int32_t *want,
                       size_t n_want) {
    struct trit_tokens t = {0};
    cr_assert_eq(trit_tokenize(tok, text, strlen(text), flags, &t), TRIT_OK, "%s", trit_last_error());
    char got[256] = "";
    for (size_t i = 0, o = 0; i < t.n && o < 200; i++) o += (size_t)sprintf(got + o, " %d", t.ids[i]);
    cr_assert_eq(t.n, n_want, "\"%s\": got%s", text, got);
    for (size_t i = 0; i < n_want; i++) cr_assert_eq(t.ids[i], want[i], "\"%s\": got%s", text, got);
    trit_tokens_free(&t);
}
#define EXPECT(tok, text, flags, ...)                                                              \
    do {                                                                                           \
        static const int32_t want_[] = {__VA_ARGS__};                                              \
        expect_ids(tok, text, flags, want_, sizeof want_ / sizeof want_[0]);                       \
    } while (0)

Test(tokenizer_bpe, lowest_rank_merges_first) {
    static const char *const extra[] = {"ab", "ba"}; /* 256, 257 */
    static const char *const ab_first[] = {"a b", "b a"}, *const ba_first[] = {"b a", "a b"};
    char *j = make_json(extra, 2, ab_first, 2, NULL, NULL, false);
    struct trit_tokenizer *tok = load_mem(j);
    EXPECT(tok, "aba", 0, 256, 'a');
    EXPECT(tok, "bab", 0, 'b', 256);
    trit_tokenizer_free(tok);
    free(j);
    j = make_json(extra, 2, ba_first, 2, NULL, NULL, false);
    tok = load_mem(j);
    EXPECT(tok, "aba", 0, 'a', 257);
    EXPECT(tok, "bab", 0, 257, 'b');
    trit_tokenizer_free(tok);
    free(j);
}

Test(tokenizer_bpe, equal_ranks_merge_leftmost_first) {
    static const char *const extra[] = {"aa", "aaaa"};
    static const char *const merges[] = {"a a", "aa aa"};
    char *j = make_json(extra, 2, merges, 2, NULL, NULL, false);
    struct trit_tokenizer *tok = load_mem(j);
    EXPECT(tok, "aaa", 0, 256, 'a');        /* (a a) a, not a (a a) */
    EXPECT(tok, "aaaaa", 0, 257, 'a');      /* aa aa a -> aaaa a */
    EXPECT(tok, "aaaaaaa", 0, 257, 256, 'a');
    trit_tokenizer_free(tok);
    free(j);
}

Test(tokenizer_bpe, ignore_merges_takes_whole_pieces) {
    static const char *const extra[] = {"ab", "abab"}; /* no merge makes "abab" */
    static const char *const merges[] = {"a b"};
    char *j = make_json(extra, 2, merges, 1, NULL, NULL, false);
    struct trit_tokenizer *tok = load_mem(j);
    EXPECT(tok, "abab", 0, 256, 256);
    trit_tokenizer_free(tok);
    free(j);
    j = make_json(extra, 2, merges, 1, NULL, NULL, true);
    tok = load_mem(j);
    EXPECT(tok, "abab", 0, 257);
    EXPECT(tok, "abab abab", 0, 257, ' ', 256, 256); /* " abab" is one piece, not a token: it merges */
    trit_tokenizer_free(tok);
    free(j);
}

Test(tokenizer_bpe, merge_array_form_and_split_stages) {
    /* merges as ["a","b"] pairs; a Split on "," (String) before ByteLevel's own regex */
    const char *j = "{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0,\"b\":1,\",\":2,\"ab\":3,\"b,\":4},"
                    "\"merges\":[[\"a\",\"b\"],[\"b\",\",\"]]},"
                    "\"pre_tokenizer\":{\"type\":\"Sequence\",\"pretokenizers\":["
                    "{\"type\":\"Split\",\"pattern\":{\"String\":\",\"},\"behavior\":\"Isolated\",\"invert\":false},"
                    "{\"type\":\"ByteLevel\",\"add_prefix_space\":false,\"use_regex\":false}]}}";
    struct trit_tokenizer *tok = load_mem(j);
    /* without the split, "b," would merge (rank 1) after "ab" cannot apply to "b,"; with it, ","
     * stands alone */
    EXPECT(tok, "ab,b", 0, 3, 2, 1);
    EXPECT(tok, "b,", 0, 1, 2);
    trit_tokenizer_free(tok);
}

Test(tokenizer_bpe, special_and_user_defined_tokens) {
    static const char *const extra[] = {"ab"};
    static const char *const merges[] = {"a b"};
    const char *added =
        "{\"id\":300,\"content\":\"<ctl>\",\"special\":true},"
        "{\"id\":301,\"content\":\"<ctl>>\",\"special\":true},"
        "{\"id\":302,\"content\":\"usr\",\"special\":false},"
        "{\"id\":303,\"content\":\"[R]\",\"special\":true,\"rstrip\":true},"
        "{\"id\":304,\"content\":\"[L]\",\"special\":true,\"lstrip\":true}";
    char *j = make_json(extra, 1, merges, 1, added, NULL, false);
    struct trit_tokenizer *tok = load_mem(j);
    cr_assert_eq(trit_tokenizer_n_vocab(tok), 305);
    cr_assert_eq(trit_tokenizer_token_type(tok, 280), TRIT_TOKEN_UNUSED); /* a gap in the ids */
    /* user-defined: always split out; control: only with PARSE_SPECIAL; longest match wins */
    EXPECT(tok, "abusrab", 0, 256, 302, 256);
    EXPECT(tok, "<ctl>>ab", TRIT_TOKENIZE_PARSE_SPECIAL, 301, 256);
    EXPECT(tok, "<ctl>ab", TRIT_TOKENIZE_PARSE_SPECIAL, 300, 256);
    EXPECT(tok, "<ctl>", 0, '<', 'c', 't', 'l', '>');
    /* rstrip eats the spaces after, lstrip the spaces before */
    EXPECT(tok, "[R]  ab", TRIT_TOKENIZE_PARSE_SPECIAL, 303, 256);
    EXPECT(tok, "ab  [L]", TRIT_TOKENIZE_PARSE_SPECIAL, 256, 304);
    trit_tokenizer_free(tok);
    free(j);
}

Test(tokenizer_bpe, config_sets_special_ids_and_flags) {
    static const char *const extra[] = {"ab"};
    static const char *const merges[] = {"a b"};
    const char *added = "{\"id\":300,\"content\":\"<B>\",\"special\":true},{\"id\":301,\"content\":\"<E>\",\"special\":true}";
    char *j = make_json(extra, 1, merges, 1, added, NULL, false);
    const char *cfg = "{\"bos_token\":{\"content\":\"<B>\"},\"eos_token\":\"<E>\",\"add_bos_token\":true,\"add_eos_token\":true}";
    struct trit_tokenizer *tok = NULL;
    cr_assert_eq(trit_tokenizer_load_json_memory(j, strlen(j), cfg, strlen(cfg), &tok), TRIT_OK, "%s", trit_last_error());
    cr_assert_eq(trit_tokenizer_bos(tok), 300);
    cr_assert_eq(trit_tokenizer_eos(tok), 301);
    EXPECT(tok, "ab", TRIT_TOKENIZE_ADD_SPECIAL, 300, 256, 301);
    EXPECT(tok, "ab", 0, 256);
    trit_tokenizer_free(tok);
    const char *bad_cfg = "{\"bos_token\":\"<nope>\"}";
    cr_assert_eq(trit_tokenizer_load_json_memory(j, strlen(j), bad_cfg, strlen(bad_cfg), &tok), TRIT_ERR_FORMAT);
    cr_assert(strstr(trit_last_error(), "<nope>"));
    free(j);
}

/* ---- loader errors ---------------------------------------------------------------------------- */

static void expect_json_error(const char *json, enum trit_status want, const char *needle) {
    struct trit_tokenizer *tok = (struct trit_tokenizer *)1;
    enum trit_status st = trit_tokenizer_load_json_memory(json, strlen(json), NULL, 0, &tok);
    cr_assert_eq(st, want, "%s -> %d (%s)", json, st, trit_last_error());
    cr_assert_null(tok);
    cr_assert(strstr(trit_last_error(), needle), "message \"%s\" lacks \"%s\"", trit_last_error(), needle);
}

Test(tokenizer_load, json_errors_name_the_problem) {
    expect_json_error("{\"model\":", TRIT_ERR_FORMAT, "syntax");
    expect_json_error("{\"model\":{\"type\":\"Unigram\",\"vocab\":[]}}", TRIT_ERR_UNSUPPORTED, "Unigram");
    expect_json_error("{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":-1},\"merges\":[]}}", TRIT_ERR_FORMAT, "bad id");
    expect_json_error("{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":1e12},\"merges\":[]}}", TRIT_ERR_FORMAT, "bad id");
    expect_json_error("{\"normalizer\":{\"type\":\"NFKC\"},\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0},\"merges\":[]}}",
                      TRIT_ERR_UNSUPPORTED, "NFKC");
    expect_json_error("{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0},\"merges\":[\"ab\"]},"
                      "\"pre_tokenizer\":{\"type\":\"ByteLevel\"}}",
                      TRIT_ERR_FORMAT, "no space");
    expect_json_error("{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0},\"merges\":[]},"
                      "\"pre_tokenizer\":{\"type\":\"Metaspace\"}}",
                      TRIT_ERR_UNSUPPORTED, "Metaspace");
    expect_json_error("{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0},\"merges\":[]},\"pre_tokenizer\":null}",
                      TRIT_ERR_UNSUPPORTED, "byte-level");
    expect_json_error("{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0},\"merges\":[]},\"pre_tokenizer\":{\"type\":"
                      "\"Split\",\"pattern\":{\"Regex\":\"(\"},\"behavior\":\"Isolated\"}}",
                      TRIT_ERR_UNSUPPORTED, "does not compile");
    expect_json_error("{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0},\"merges\":[]},\"pre_tokenizer\":{\"type\":"
                      "\"Split\",\"pattern\":{\"Regex\":\"a\"},\"behavior\":\"Removed\"}}",
                      TRIT_ERR_UNSUPPORTED, "Removed");
}

Test(tokenizer_load, path_errors) {
    struct trit_tokenizer *tok = NULL;
    cr_assert_eq(trit_tokenizer_load("/nonexistent/tokenizer.json", &tok), TRIT_ERR_IO);
    cr_assert_null(tok);
    cr_assert_eq(trit_tokenizer_load(test_data_path("tokenizers"), &tok), TRIT_ERR_NOT_FOUND);
    cr_assert(strstr(trit_last_error(), "tokenizer.json"));
    cr_assert_eq(trit_tokenizer_load(NULL, &tok), TRIT_ERR_INVALID_ARG);
    trit_tokenizer_free(NULL);
}

/* Writes a GGUF vocab of four tokens with the given model / pre / bos, loads it, returns the status. */
static enum trit_status load_tiny_gguf(const char *model, const char *pre, uint32_t bos) {
    char path[] = "/tmp/trit_tok_XXXXXX";
    int fd = mkstemp(path);
    cr_assert_geq(fd, 0);
    struct gguf_writer *w;
    cr_assert_eq(gguf_writer_init(&w), TRIT_OK);
    static const char *const toks[] = {"<unk>", "a", "b", "a b"};
    static const char *const merges[] = {"a b"};
    cr_assert_eq(gguf_writer_set_str(w, "tokenizer.ggml.model", model), TRIT_OK);
    if (pre) cr_assert_eq(gguf_writer_set_str(w, "tokenizer.ggml.pre", pre), TRIT_OK);
    cr_assert_eq(gguf_writer_set_arr_str(w, "tokenizer.ggml.tokens", toks, 4), TRIT_OK);
    cr_assert_eq(gguf_writer_set_arr_str(w, "tokenizer.ggml.merges", merges, 1), TRIT_OK);
    cr_assert_eq(gguf_writer_set_u32(w, "tokenizer.ggml.bos_token_id", bos), TRIT_OK);
    cr_assert_eq(gguf_writer_write(w, path), TRIT_OK, "%s", trit_last_error());
    gguf_writer_free(w);
    struct trit_tokenizer *tok = NULL;
    enum trit_status st = trit_tokenizer_load(path, &tok);
    if (st == TRIT_OK) cr_assert_not_null(tok);
    else cr_assert_null(tok);
    trit_tokenizer_free(tok);
    remove(path);
    return st;
}

Test(tokenizer_load, gguf_errors_name_the_problem) {
    cr_assert_eq(load_tiny_gguf("gpt2", "gpt-2", 1), TRIT_OK, "%s", trit_last_error());
    cr_assert_eq(load_tiny_gguf("llama", NULL, 1), TRIT_OK, "%s", trit_last_error());
    cr_assert_eq(load_tiny_gguf("bert", "gpt-2", 1), TRIT_ERR_UNSUPPORTED);
    cr_assert(strstr(trit_last_error(), "'bert'"));
    cr_assert_eq(load_tiny_gguf("gpt2", "qwen2", 1), TRIT_OK, "%s", trit_last_error());
    /* llama.cpp's Qwen3.5 pre-tokenizer has a regex of its own that trit does not know */
    cr_assert_eq(load_tiny_gguf("gpt2", "qwen35", 1), TRIT_ERR_UNSUPPORTED);
    cr_assert(strstr(trit_last_error(), "'qwen35'"));
    cr_assert_eq(load_tiny_gguf("gpt2", NULL, 1), TRIT_ERR_UNSUPPORTED);
    cr_assert(strstr(trit_last_error(), "tokenizer.ggml.pre"));
    cr_assert_eq(load_tiny_gguf("gpt2", "gpt-2", 4), TRIT_ERR_FORMAT);
    cr_assert(strstr(trit_last_error(), "bos_token_id"));
}

/* A GGUF byte-level vocab: the 256 byte tokens (ids 0..255), then `extra` (256..), with the merges
 * and the pre-tokenizer given; loaded back. */
static struct trit_tokenizer *byte_gguf(const char *pre, const char *const *extra, int n_extra,
                                        const char *const *merges, int n_merges) {
    char path[] = "/tmp/trit_tok_XXXXXX";
    int fd = mkstemp(path);
    cr_assert_geq(fd, 0);
    static char bytes[256][3];
    const char *toks[300];
    cr_assert_leq(n_extra, 300 - 256);
    for (int b = 0; b < 256; b++) {
        size_t n = bytelevel_utf8((uint8_t)b, bytes[b]);
        bytes[b][n] = '\0';
        toks[b] = bytes[b];
    }
    for (int i = 0; i < n_extra; i++) toks[256 + i] = extra[i];
    struct gguf_writer *w;
    cr_assert_eq(gguf_writer_init(&w), TRIT_OK);
    cr_assert_eq(gguf_writer_set_str(w, "tokenizer.ggml.model", "gpt2"), TRIT_OK);
    cr_assert_eq(gguf_writer_set_str(w, "tokenizer.ggml.pre", pre), TRIT_OK);
    cr_assert_eq(gguf_writer_set_arr_str(w, "tokenizer.ggml.tokens", toks, (uint64_t)(256 + n_extra)), TRIT_OK);
    cr_assert_eq(gguf_writer_set_arr_str(w, "tokenizer.ggml.merges", merges, (uint64_t)n_merges), TRIT_OK);
    cr_assert_eq(gguf_writer_write(w, path), TRIT_OK, "%s", trit_last_error());
    gguf_writer_free(w);
    struct trit_tokenizer *tok = NULL;
    cr_assert_eq(trit_tokenizer_load(path, &tok), TRIT_OK, "%s", trit_last_error());
    remove(path);
    return tok;
}

/* What tokenizer.ggml.pre = "qwen2" changes against "llama-bpe" and "gpt2", on a vocabulary where
 * each rule shows in the ids (byte b's token is id b):
 *   - digits: Qwen2 splits every digit ("\p{N}"), Llama 3 runs of up to three, GPT-2 any run;
 *   - NFC: "e" + U+0301 becomes "é" (C3 A9, mapped "Ã©") before pre-tokenizing; without it the
 *     combining mark stays two byte tokens after "e";
 *   - contractions: "'S" is one piece in Qwen2 and Llama 3 (case-insensitive), two in GPT-2;
 *   - ignore_merges: Llama 3 takes a whole piece that is a token ("abc") without merging; Qwen2
 *     merges ("ab" then "c"). */
Test(tokenizer_load, gguf_pre_qwen2_rules) {
    static const char *const extra[] = {"12", "Ã©", "'S", "ab", "abc"}; /* 256.. */
    static const char *const merges[] = {"1 2", "Ã ©", "' S", "a b"};
    struct trit_tokenizer *q = byte_gguf("qwen2", extra, 5, merges, 4);
    struct trit_tokenizer *l = byte_gguf("llama-bpe", extra, 5, merges, 4);
    struct trit_tokenizer *g = byte_gguf("gpt2", extra, 5, merges, 4);
    EXPECT(q, "12", 0, '1', '2');
    EXPECT(l, "12", 0, 256);
    EXPECT(g, "12", 0, 256);
    EXPECT(q, "e\xcc\x81", 0, 257);                   /* NFC: é */
    EXPECT(q, "\xc3\xa9", 0, 257);                     /* already composed */
    EXPECT(l, "e\xcc\x81", 0, 'e', 0xCC, 0x81);         /* the byte tokens are ids 0..255 */
    EXPECT(q, "x'S", 0, 'x', 258);
    EXPECT(l, "x'S", 0, 'x', 258);
    EXPECT(g, "x'S", 0, 'x', '\'', 'S');
    EXPECT(q, "abc", 0, 259, 'c');
    EXPECT(l, "abc", 0, 260);
    trit_tokenizer_free(q);
    trit_tokenizer_free(l);
    trit_tokenizer_free(g);
}

/* ---- NFC ---------------------------------------------------------------------------------------- */

/* nfc_apply on cases whose answer UAX #15 fixes, plus Hugging Face tokenizers' Unicode 9.0 data:
 * characters that have normalization data only in later versions are left alone. */
Test(tokenizer_nfc, uax15_cases) {
    static const struct {
        const char *in, *out;
    } cases[] = {
        {"plain ascii \xc3\xa9 below U+0300", NULL},        /* NULL: returned as is, no copy */
        {"e\xcc\x81", "\xc3\xa9"},                          /* e + acute -> é */
        {"A\xcc\x8a", "\xc3\x85"},                          /* A + ring -> Å */
        {"\xe2\x84\xab", "\xc3\x85"},                      /* U+212B ANGSTROM SIGN: singleton -> Å */
        {"\xe2\x84\xa6", "\xce\xa9"},                      /* U+2126 OHM SIGN -> U+03A9 */
        {"\xe0\xa5\x98", "\xe0\xa4\x95\xe0\xa4\xbc"},      /* U+0958: composition exclusion */
        {"\xcd\x84", "\xcc\x88\xcc\x81"},                  /* U+0344: non-starter decomposition */
        {"\xe1\xb8\x8b\xcc\xa3", "\xe1\xb8\x8d\xcc\x87"},  /* ḋ + dot below -> ḍ + dot above */
        {"a\xcc\x81\xcc\x96", "\xc3\xa1\xcc\x96"},          /* a acute grave-below: reordered, á */
        {"\xcc\x81" "abc", NULL},                         /* leading mark: nothing to compose */
        {"\xe1\x84\x80\xe1\x85\xa1\xe1\x86\xa8", "\xea\xb0\x81"}, /* jamo L V T -> 각 */
        {"\xea\xb0\x80\xe1\x86\xa8", "\xea\xb0\x81"},        /* LV + T -> LVT */
        {"o\xcc\x88\xcc\x84", "\xc8\xab"},                  /* two steps: ö then ȫ */
        {"\xf0\x91\xa4\xb5\xf0\x91\xa4\xb0", NULL},          /* U+11935 U+11930: composes only from Unicode 13 */
        {"e\xff\xcc\x81", NULL},                          /* an ill-formed byte blocks composition */
        {"\xea\xb0\x80", NULL},                           /* a syllable stays */
    };
    struct nfc_scratch s = {0};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const char *in = cases[i].in, *want = cases[i].out ? cases[i].out : in, *out;
        size_t n;
        cr_assert_eq(nfc_apply(&s, in, strlen(in), &out, &n), TRIT_OK);
        cr_assert(n == strlen(want) && memcmp(out, want, n) == 0, "case %zu: got %zu bytes", i, n);
    }
    const char *out;
    size_t n;
    const char *ascii = "only ascii";
    cr_assert_eq(nfc_apply(&s, ascii, strlen(ascii), &out, &n), TRIT_OK);
    cr_assert_eq(out, ascii, "text below U+0300 is not copied");
    nfc_scratch_free(&s);
}

/* Random bytes (marks of several classes, jamo, composable letters, ill-formed bytes): NFC is
 * idempotent, keeps every ill-formed byte in order, and its output of well-formed text is
 * well-formed. */
Test(tokenizer_nfc, random_text_is_stable) {
    static const char *const atoms[] = {"a", "e", "A", " ", "\xcc\x81", "\xcc\x96", "\xcc\xa3", "\xcd\x85",
                                        "\xcc\x88", "\xe1\x84\x80", "\xe1\x85\xa1", "\xe1\x86\xa8", "\xea\xb0\x80",
                                        "\xe2\x84\xab", "\xe0\xa5\x98", "\xcd\x84", "\xff", "\x80", "\xe1\x84", "\xf0\x9f\x98\x80",
                                        "\xe1\xb8\x8b", "\xc3\xa9"};
    struct test_rng rng;
    test_rng_seed(&rng, 23);
    struct nfc_scratch s1 = {0}, s2 = {0};
    char text[512];
    for (int iter = 0; iter < 3000; iter++) {
        size_t len = 0, n_bad = 0;
        char bad[512];
        int n_atoms = (int)test_rng_int(&rng, 1, 40);
        for (int k = 0; k < n_atoms; k++) {
            const char *a = atoms[test_rng_int(&rng, 0, sizeof atoms / sizeof atoms[0] - 1)];
            memcpy(text + len, a, strlen(a));
            len += strlen(a);
        }
        for (size_t i = 0; i < len;) { /* the ill-formed bytes, in order */
            size_t clen;
            enum utf8_result r = utf8_classify((const uint8_t *)text + i, len - i, &clen);
            if (r == UTF8_INCOMPLETE) clen = len - i;
            if (r != UTF8_VALID) memcpy(bad + n_bad, text + i, clen), n_bad += clen;
            i += clen;
        }
        const char *once, *twice;
        size_t n1, n2;
        cr_assert_eq(nfc_apply(&s1, text, len, &once, &n1), TRIT_OK);
        cr_assert_eq(nfc_apply(&s2, once, n1, &twice, &n2), TRIT_OK);
        cr_assert(n1 == n2 && memcmp(once, twice, n1) == 0, "iteration %d: NFC is not idempotent", iter);
        size_t n_bad_out = 0;
        for (size_t i = 0; i < n1;) {
            size_t clen;
            enum utf8_result r = utf8_classify((const uint8_t *)once + i, n1 - i, &clen);
            if (r == UTF8_INCOMPLETE) clen = n1 - i;
            if (r != UTF8_VALID) {
                cr_assert(n_bad_out + clen <= n_bad && memcmp(bad + n_bad_out, once + i, clen) == 0, "iteration %d", iter);
                n_bad_out += clen;
            }
            i += clen;
        }
        cr_assert_eq(n_bad_out, n_bad, "iteration %d: ill-formed bytes lost or made", iter);
    }
    nfc_scratch_free(&s1);
    nfc_scratch_free(&s2);
}

/* ---- streaming -------------------------------------------------------------------------------- */

/* Feeds each byte of `bytes` as its byte token and returns everything emitted, flush included. */
static size_t stream_bytes(const struct trit_tokenizer *tok, const char *bytes, size_t n, char *out) {
    struct trit_tok_stream s;
    trit_tok_stream_init(&s, tok, 0);
    size_t cap = trit_tok_stream_max_out(tok), total = 0, k;
    char *buf = malloc(cap);
    for (size_t i = 0; i < n; i++) {
        int32_t id = (uint8_t)bytes[i]; /* ids 0..255 are the byte tokens of make_json */
        cr_assert_eq(trit_tok_stream_feed(&s, id, buf, cap, &k), TRIT_OK);
        memcpy(out + total, buf, k);
        total += k;
    }
    cr_assert_eq(trit_tok_stream_flush(&s, buf, cap, &k), TRIT_OK);
    memcpy(out + total, buf, k);
    free(buf);
    return total + k;
}

Test(tokenizer_stream, ill_formed_bytes_become_replacement_characters) {
    char *j = make_json(NULL, 0, NULL, 0, NULL, NULL, false);
    struct trit_tokenizer *tok = load_mem(j);
    /* decode ids = bytes: the byte tokens' pieces are the bytes themselves */
    char out[64];
    size_t n = stream_bytes(tok, "a\xc3\xa9z", 4, out);
    cr_assert(n == 4 && memcmp(out, "a\xc3\xa9z", 4) == 0);
    n = stream_bytes(tok, "\xff" "a", 2, out); /* FF can never start a character */
    cr_assert(n == 4 && memcmp(out, "\xef\xbf\xbd" "a", 4) == 0);
    n = stream_bytes(tok, "\xe2\x82" "A", 3, out); /* E2 82 is one maximal subpart: one U+FFFD */
    cr_assert(n == 4 && memcmp(out, "\xef\xbf\xbd" "A", 4) == 0);
    n = stream_bytes(tok, "x\xf0\x9f", 3, out); /* unfinished at the end: flushed as U+FFFD */
    cr_assert(n == 4 && memcmp(out, "x\xef\xbf\xbd", 4) == 0);

    /* a too-small buffer is refused and the state stays as it was */
    struct trit_tok_stream s;
    trit_tok_stream_init(&s, tok, 0);
    size_t k;
    cr_assert_eq(trit_tok_stream_feed(&s, 0xE2, out, 3, &k), TRIT_OK);
    cr_assert_eq(k, 0);
    cr_assert_eq(trit_tok_stream_feed(&s, 0x82, out, 5, &k), TRIT_ERR_INVALID_ARG); /* needs 3 * 2 */
    cr_assert_eq(s.n_pending, 1);
    cr_assert_eq(trit_tok_stream_feed(&s, 0x82, out, 6, &k), TRIT_OK);
    cr_assert_eq(trit_tok_stream_feed(&s, 0xAC, out, 9, &k), TRIT_OK);
    cr_assert(k == 3 && memcmp(out, "\xe2\x82\xac", 3) == 0);
    cr_assert_eq(trit_tok_stream_feed(&s, 256, out, sizeof out, &k), TRIT_ERR_INVALID_ARG);
    cr_assert_eq(trit_tok_stream_feed(&s, -1, out, sizeof out, &k), TRIT_ERR_INVALID_ARG);
    trit_tokenizer_free(tok);
    free(j);
}

/* ---- SPM -------------------------------------------------------------------------------------- */

/* Merging word by word must give what merging the whole text gives (spm.c relies on no Llama 2
 * token holding "▁" after another character). Random text mixes words, runs of spaces, multi-byte
 * characters and stray bytes. */
Test(tokenizer_spm_unit, word_split_equals_whole_text) {
    struct trit_tokenizer *tok = NULL;
    cr_assert_eq(trit_tokenizer_load(test_data_path("tokenizers/llama-spm/ggml-vocab-llama-spm.gguf"), &tok), TRIT_OK,
                 "%s", trit_last_error());
    cr_assert(tok->spm_word_split, "the Llama 2 vocab should allow word-by-word merging");
    static const char *const atoms[] = {"the", " ", "  ", "Hello", "world", "é", "日本", "🦙", "\xff", "\xe2\x96",
                                        "\n", "ing", "3", "-", "▁", "x"};
    struct test_rng rng;
    test_rng_seed(&rng, 5);
    char text[1024];
    for (int iter = 0; iter < 200; iter++) {
        size_t len = 0;
        while (len < 900) {
            const char *a = atoms[test_rng_int(&rng, 0, sizeof atoms / sizeof atoms[0] - 1)];
            memcpy(text + len, a, strlen(a));
            len += strlen(a);
        }
        struct trit_tokens split = {0}, whole = {0};
        tok->spm_word_split = true;
        cr_assert_eq(trit_tokenize(tok, text, len, 0, &split), TRIT_OK);
        tok->spm_word_split = false;
        cr_assert_eq(trit_tokenize(tok, text, len, 0, &whole), TRIT_OK);
        cr_assert_eq(split.n, whole.n, "iteration %d", iter);
        cr_assert(memcmp(split.ids, whole.ids, split.n * sizeof *split.ids) == 0, "iteration %d", iter);
        trit_tokens_free(&split);
        trit_tokens_free(&whole);
    }
    trit_tokenizer_free(tok);
}

/* Any byte string without a literal "▁" comes back from SPM exactly: ill-formed bytes fall back to
 * <0xXX> tokens and never swallow the "▁" that a following space became (the fuzzer found
 * "\xff hi" decoding to "\xff\xe2\x96\x81hi" when symbols were cut by the lead byte's length). */
Test(tokenizer_spm_unit, ill_formed_bytes_round_trip) {
    struct trit_tokenizer *tok = NULL;
    cr_assert_eq(trit_tokenizer_load(test_data_path("tokenizers/llama-spm/ggml-vocab-llama-spm.gguf"), &tok), TRIT_OK,
                 "%s", trit_last_error());
    struct test_rng rng;
    test_rng_seed(&rng, 13);
    char text[256], out[1024];
    for (int iter = 0; iter < 500; iter++) {
        size_t len = (size_t)test_rng_int(&rng, 1, 255);
        for (size_t i = 0; i < len; i++) {
            int64_t k = test_rng_int(&rng, 0, 3);
            text[i] = (char)(k == 0 ? ' ' : k == 1 ? test_rng_int(&rng, 'a', 'z') : test_rng_int(&rng, 0x80, 0xFF));
            if (i >= 2 && memcmp(text + i - 2, "\xe2\x96\x81", 3) == 0) text[i] = 'x'; /* no literal "▁" */
        }
        struct trit_tokens t = {0};
        cr_assert_eq(trit_tokenize(tok, text, len, 0, &t), TRIT_OK);
        size_t n_out;
        cr_assert_eq(trit_detokenize(tok, t.ids, t.n, TRIT_DECODE_STRIP_SPACE, out, sizeof out, &n_out), TRIT_OK);
        cr_assert(n_out == len && memcmp(out, text, len) == 0, "iteration %d", iter);
        trit_tokens_free(&t);
    }
    struct trit_tokens t = {0};
    cr_assert_eq(trit_tokenize(tok, "\xff hi", 4, 0, &t), TRIT_OK);
    trit_tokens_free(&t);
    trit_tokenizer_free(tok);
}
