// labels: unit
/*
 * test_tokenizer_spm_model.c: SentencePiece tokenizer.model files (host/tokenizer/load_spm.c).
 *
 * No tokenizer.model is committed: the tests encode one here (with tests/pb_writer.h) from
 * the Llama vocabulary of llama.cpp's ggml-vocab-llama-spm.gguf (its pieces, scores and types, and
 * trainer/normalizer settings as Llama's tokenizer.model has them). Checked:
 *   - the loaded vocabulary equals the GGUF one, and every llama-spm test string (.inp and
 *     cases.jsonl) encodes to the same ids as through the GGUF, with and without BOS and special
 *     parsing, and decodes back to itself;
 *   - the 1bitLLM folder shape: added_tokens.json {"<pad>": 32000, "</line>": 32001} and a
 *     tokenizer_config.json naming <pad> the pad token; folder and file-path dispatch;
 *   - refusals, with the status and a message that names the problem: UNIGRAM, nmt_nfkc, whitespace
 *     options, a truncation at every byte, varints past 10 bytes or 64 bits, lengths past the end,
 *     wire-type mismatches, duplicate pieces, special ids out of range, added-token gaps;
 *   - unknown fields of every wire type, at every level, are skipped.
 *
 *   ctest --test-dir build -R test_tokenizer_spm_model --output-on-failure
 */
#include <cjson/cJSON.h>
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "io/json.h"
#include "pb_writer.h"
#include "support.h"
#include "tokenizer/tokenizer.h"
#include "tokenizer/vocab.h" /* scores, which tokenizer.h has no getter for */

#define LLAMA_GGUF "tokenizers/llama-spm/ggml-vocab-llama-spm.gguf"
/* <unk> <s> </s>, the 256 byte pieces, then the first 41 merged pieces: about the smallest vocab
 * the loader accepts with byte_fallback, plus a few words. */
#define SMALL_PIECES 300

/* ---- tokenizer.model from the GGUF vocabulary ------------------------------------------------- */

/* What the written model says; model_spec() gives Llama's settings. */
struct model_spec {
    int32_t n_pieces;    /* the first n pieces of the GGUF vocabulary */
    int64_t model_type;  /* -1: the field is left out */
    const char *norm;    /* normalizer name; NULL: left out */
    bool remove_extra_whitespaces, escape_whitespaces, byte_fallback, add_dummy_prefix;
    int32_t bos_id, pad_id;
    bool unknown;        /* unknown fields of every wire type in every message */
};

static struct model_spec model_spec(int32_t n_pieces) {
    return (struct model_spec){.n_pieces = n_pieces, .model_type = 2, .norm = "identity", .escape_whitespaces = true,
                               .byte_fallback = true, .add_dummy_prefix = true, .bos_id = 1, .pad_id = -1};
}

static const struct trit_tokenizer *gguf_vocab(void) {
    static struct trit_tokenizer *tok;
    if (!tok)
        cr_assert_eq(trit_tokenizer_load(test_data_path(LLAMA_GGUF), &tok), TRIT_OK, "%s", trit_last_error());
    return tok;
}

/* Pieces, then trainer_spec, then normalizer_spec, as SentencePiece writes them. */
static struct pb build_model(const struct model_spec *s) {
    const struct trit_tokenizer *src = gguf_vocab();
    struct pb model = {0}, m = {0};
    if (s->unknown) pb_unknown(&model);
    for (int32_t id = 0; id < s->n_pieces; id++) {
        size_t len;
        const char *text = trit_tokenizer_token_text(src, id, &len);
        pb_spm_piece(&model, text, len, src->tokens[id].score, (int)trit_tokenizer_token_type(src, id), s->unknown);
    }
    /* trainer_spec: Llama's settings, with a few fields trit does not read */
    pb_str(&m, 1, "corpus.txt");   /* input */
    pb_str(&m, 2, "tokenizer");    /* model_prefix */
    if (s->model_type >= 0) pb_uint(&m, 3, (uint64_t)s->model_type);
    pb_uint(&m, 4, 32000);
    pb_float(&m, 10, 0.99995f); /* character_coverage */
    pb_uint(&m, 11, 200000000); /* input_sentence_size */
    if (s->unknown) pb_unknown(&m);
    pb_uint(&m, 35, s->byte_fallback);
    pb_int32(&m, 40, 0);
    pb_int32(&m, 41, s->bos_id);
    pb_int32(&m, 42, 2);
    pb_int32(&m, 43, s->pad_id);
    pb_str(&m, 45, "<unk>");
    pb_msg(&model, 2, &m);
    /* normalizer_spec */
    if (s->norm) pb_str(&m, 1, s->norm);
    pb_bytes(&m, 2, "", 0);
    pb_uint(&m, 3, s->add_dummy_prefix);
    pb_uint(&m, 4, s->remove_extra_whitespaces);
    if (!s->escape_whitespaces) pb_uint(&m, 5, 0);
    if (s->unknown) pb_unknown(&m);
    pb_str(&m, 6, "");
    pb_msg(&model, 3, &m);
    return model;
}

static struct trit_tokenizer *load_memory(const struct pb *m, const char *added, const char *config) {
    struct trit_tokenizer *tok = NULL;
    enum trit_status st = trit_tokenizer_load_spm_memory(m->p, m->n, added, added ? strlen(added) : 0, config,
                                                         config ? strlen(config) : 0, &tok);
    cr_assert_eq(st, TRIT_OK, "%s", trit_last_error());
    return tok;
}

/* Loading must fail with `want`, and the message must contain `needle`. */
static void expect_refused(const struct pb *m, const char *added, const char *config, enum trit_status want,
                           const char *needle) {
    struct trit_tokenizer *tok = (struct trit_tokenizer *)(uintptr_t)1; /* must come back NULL */
    enum trit_status st = trit_tokenizer_load_spm_memory(m->p, m->n, added, added ? strlen(added) : 0, config,
                                                         config ? strlen(config) : 0, &tok);
    cr_assert_eq(st, want, "status %d (want %d): %s", st, want, trit_last_error());
    cr_assert_null(tok);
    cr_assert_not_null(strstr(trit_last_error(), needle), "message '%s' lacks '%s'", trit_last_error(), needle);
}

static void expect_spec_refused(const struct model_spec *s, enum trit_status want, const char *needle) {
    struct pb m = build_model(s);
    expect_refused(&m, NULL, NULL, want, needle);
    free(m.p);
}

/* ---- scratch folders -------------------------------------------------------------------------- */

/* A folder under /tmp; `names` lists what was written, for cleanup. */
struct scratch {
    char dir[64];
    char path[128];
    const char *names[8];
    int n;
};

static void scratch_make(struct scratch *s) {
    memset(s, 0, sizeof *s);
    strcpy(s->dir, "/tmp/trit-spm-XXXXXX");
    cr_assert_not_null(mkdtemp(s->dir));
}
/* Writes `name` (a string literal) in the folder and returns its path (valid until the next call). */
static const char *scratch_write(struct scratch *s, const char *name, const void *data, size_t n) {
    snprintf(s->path, sizeof s->path, "%s/%s", s->dir, name);
    FILE *fp = fopen(s->path, "wb");
    cr_assert_not_null(fp, "%s", s->path);
    cr_assert_eq(fwrite(data, 1, n, fp), n);
    fclose(fp);
    cr_assert_lt(s->n, 8);
    s->names[s->n++] = name;
    return s->path;
}
/* A scratch folder with the 32000-piece Llama tokenizer.model in it, as `name`; returns its path. */
static const char *scratch_llama_model(struct scratch *s, const char *name) {
    struct model_spec spec = model_spec(32000);
    struct pb m = build_model(&spec);
    scratch_make(s);
    const char *path = scratch_write(s, name, m.p, m.n);
    free(m.p);
    return path;
}
static void scratch_remove(struct scratch *s) {
    for (int i = 0; i < s->n; i++) {
        snprintf(s->path, sizeof s->path, "%s/%s", s->dir, s->names[i]);
        unlink(s->path);
    }
    rmdir(s->dir);
}

/* ---- the llama-spm test strings --------------------------------------------------------------- */

struct texts {
    char **s;
    size_t *len;
    size_t n;
};

static void texts_push(struct texts *t, const char *s, size_t len) {
    t->s = realloc(t->s, (t->n + 1) * sizeof *t->s);
    t->len = realloc(t->len, (t->n + 1) * sizeof *t->len);
    t->s[t->n] = malloc(len + 1);
    memcpy(t->s[t->n], s, len);
    t->s[t->n][len] = '\0';
    t->len[t->n++] = len;
}

/* The strings of llama.cpp's .inp (each followed by "\n__ggml_vocab_test__\n") and the "text" of
 * every line of cases.jsonl. Their expected ids are test_tokenizer_vocab.c's business: here the
 * GGUF tokenizer is the reference. */
static struct texts read_texts(void) {
    static const char SEP[] = "\n__ggml_vocab_test__\n";
    struct texts t = {0};
    char *data;
    size_t len;
    cr_assert_eq(json_read_file(test_data_path(LLAMA_GGUF ".inp"), 1 << 20, &data, &len), TRIT_OK);
    for (char *p = data, *sep; (sep = strstr(p, SEP)) != NULL; p = sep + strlen(SEP))
        texts_push(&t, p, (size_t)(sep - p));
    trit_free(data);
    cr_assert_eq(t.n, 46);
    cr_assert_eq(json_read_file(test_data_path("tokenizers/llama-spm/cases.jsonl"), 1 << 20, &data, &len), TRIT_OK);
    for (char *line = data, *nl; line < data + len; line = nl + 1) {
        nl = memchr(line, '\n', (size_t)(data + len - line));
        if (!nl) nl = data + len;
        cJSON *o = cJSON_ParseWithLength(line, (size_t)(nl - line));
        const cJSON *text = cJSON_GetObjectItemCaseSensitive(o, "text");
        if (cJSON_IsString(text)) texts_push(&t, text->valuestring, strlen(text->valuestring));
        cJSON_Delete(o);
    }
    trit_free(data);
    cr_assert_eq(t.n, 46 + 135);
    return t;
}

static void texts_free(struct texts *t) {
    for (size_t i = 0; i < t->n; i++) free(t->s[i]);
    free(t->s);
    free(t->len);
}

static bool same_ids(const struct trit_tokens *a, const struct trit_tokens *b) {
    return a->n == b->n && (a->n == 0 || memcmp(a->ids, b->ids, a->n * sizeof *a->ids) == 0);
}

/* Every string, under each flag set, gives `tok` the ids `ref` gives, and decodes back to itself
 * (with decode_flags). */
static void check_same_as(const struct trit_tokenizer *tok, const struct trit_tokenizer *ref, const char *what,
                          unsigned decode_flags) {
    static const unsigned flag_sets[] = {0, TRIT_TOKENIZE_ADD_SPECIAL,
                                         TRIT_TOKENIZE_ADD_SPECIAL | TRIT_TOKENIZE_PARSE_SPECIAL};
    struct texts t = read_texts();
    for (size_t i = 0; i < t.n; i++) {
        for (size_t f = 0; f < sizeof flag_sets / sizeof flag_sets[0]; f++) {
            struct trit_tokens got = {0}, want = {0};
            cr_assert_eq(trit_tokenize(tok, t.s[i], t.len[i], flag_sets[f], &got), TRIT_OK, "%s", trit_last_error());
            cr_assert_eq(trit_tokenize(ref, t.s[i], t.len[i], flag_sets[f], &want), TRIT_OK);
            cr_assert(same_ids(&got, &want), "%s: string %zu \"%.60s\" flags %u: %zu ids, the GGUF %zu", what, i,
                      t.s[i], flag_sets[f], got.n, want.n);
            if (flag_sets[f] == 0) {
                size_t cap = t.len[i] + 64, n_out;
                char *text = malloc(cap);
                cr_assert_eq(trit_detokenize(tok, got.ids, got.n, decode_flags, text, cap, &n_out), TRIT_OK);
                cr_assert(n_out == t.len[i] && memcmp(text, t.s[i], n_out) == 0, "%s: string %zu decodes to \"%.*s\"",
                          what, i, (int)n_out, text);
                free(text);
            }
            trit_tokens_free(&got);
            trit_tokens_free(&want);
        }
    }
    texts_free(&t);
}

/* ---- the Llama vocabulary --------------------------------------------------------------------- */

Test(spm_model, same_vocabulary_as_gguf) {
    struct scratch s;
    scratch_llama_model(&s, "tokenizer.model");
    struct trit_tokenizer *tok = NULL;
    /* a folder with tokenizer.model and nothing else */
    cr_assert_eq(trit_tokenizer_load(s.dir, &tok), TRIT_OK, "%s", trit_last_error());
    const struct trit_tokenizer *ref = gguf_vocab();
    cr_assert_eq(trit_tokenizer_kind(tok), TRIT_TOKENIZER_SPM);
    cr_assert_eq(trit_tokenizer_n_vocab(tok), 32000);
    for (int32_t id = 0; id < 32000; id++) {
        size_t a_len, b_len;
        const char *a = trit_tokenizer_token_text(tok, id, &a_len), *b = trit_tokenizer_token_text(ref, id, &b_len);
        cr_assert(a_len == b_len && memcmp(a, b, a_len) == 0, "token %d text", id);
        cr_assert_eq(trit_tokenizer_token_type(tok, id), trit_tokenizer_token_type(ref, id), "token %d type", id);
        cr_assert_eq(tok->tokens[id].score, ref->tokens[id].score, "token %d score", id);
    }
    cr_assert_eq(trit_tokenizer_bos(tok), 1);
    cr_assert_eq(trit_tokenizer_eos(tok), 2);
    cr_assert_eq(trit_tokenizer_unk(tok), 0);
    cr_assert_eq(trit_tokenizer_pad(tok), -1);
    cr_assert(trit_tokenizer_add_bos(tok));
    cr_assert_not(trit_tokenizer_add_eos(tok));
    cr_assert(trit_tokenizer_add_space_prefix(tok));
    cr_assert(trit_tokenizer_is_eog(tok, 2));
    trit_tokenizer_free(tok);
    scratch_remove(&s);
}

Test(spm_model, same_ids_as_gguf) {
    struct scratch s;
    /* a file path ending in .model, with nothing beside it */
    const char *path = scratch_llama_model(&s, "llama.model");
    struct trit_tokenizer *tok = NULL;
    cr_assert_eq(trit_tokenizer_load(path, &tok), TRIT_OK, "%s", trit_last_error());
    check_same_as(tok, gguf_vocab(), "tokenizer.model", TRIT_DECODE_STRIP_SPACE);
    trit_tokenizer_free(tok);
    scratch_remove(&s);
}

Test(spm_model, no_dummy_prefix) {
    struct model_spec spec = model_spec(32000);
    spec.add_dummy_prefix = false;
    struct pb m = build_model(&spec);
    struct trit_tokenizer *tok = load_memory(&m, NULL, NULL);
    cr_assert_not(trit_tokenizer_add_space_prefix(tok));
    /* the reference: the GGUF vocabulary with its add_space_prefix flag cleared */
    struct trit_tokenizer *ref = NULL;
    cr_assert_eq(trit_tokenizer_load(test_data_path(LLAMA_GGUF), &ref), TRIT_OK);
    ref->add_space_prefix = false;
    check_same_as(tok, ref, "tokenizer.model without add_dummy_prefix", 0);
    trit_tokenizer_free(ref);
    trit_tokenizer_free(tok);
    free(m.p);
}

/* ---- added_tokens.json and tokenizer_config.json (the 1bitLLM folder) ------------------------- */

static const char BITNET_ADDED[] = "{\"<pad>\": 32000, \"</line>\": 32001}";
/* A tokenizer_config.json of the Llama kind that names <pad> the pad token. */
static const char BITNET_CONFIG[] = "{\"add_bos_token\": true, \"add_eos_token\": false, \"bos_token\": \"<s>\", "
                                    "\"eos_token\": \"</s>\", \"unk_token\": \"<unk>\", \"pad_token\": \"<pad>\", "
                                    "\"tokenizer_class\": \"BitnetTokenizer\"}";

Test(spm_model, bitnet_folder) {
    struct scratch s;
    scratch_llama_model(&s, "tokenizer.model");
    scratch_write(&s, "added_tokens.json", BITNET_ADDED, strlen(BITNET_ADDED));
    scratch_write(&s, "tokenizer_config.json", BITNET_CONFIG, strlen(BITNET_CONFIG));
    struct trit_tokenizer *tok = NULL;
    cr_assert_eq(trit_tokenizer_load(s.dir, &tok), TRIT_OK, "%s", trit_last_error());
    cr_assert_eq(trit_tokenizer_n_vocab(tok), 32002);
    cr_assert_eq(trit_tokenizer_bos(tok), 1);
    cr_assert_eq(trit_tokenizer_eos(tok), 2);
    cr_assert_eq(trit_tokenizer_pad(tok), 32000);
    cr_assert_eq(trit_tokenizer_token_type(tok, 32000), TRIT_TOKEN_CONTROL); /* the pad token */
    cr_assert_eq(trit_tokenizer_token_type(tok, 32001), TRIT_TOKEN_USER_DEFINED);
    cr_assert_eq(trit_tokenizer_find(tok, "</line>", 7), 32001);

    /* "</line>" is matched in text first; the text after it gets the space prefix again, as after
     * any special token (llama.cpp; transformers' LlamaTokenizer with legacy=True), so decoding
     * shows that space */
    const struct trit_tokenizer *ref = gguf_vocab();
    struct trit_tokens got = {0}, a = {0}, b = {0};
    const char *text = "Hello</line>world";
    cr_assert_eq(trit_tokenize(tok, text, strlen(text), TRIT_TOKENIZE_ADD_SPECIAL, &got), TRIT_OK);
    cr_assert_eq(trit_tokenize(ref, "Hello", 5, 0, &a), TRIT_OK);
    cr_assert_eq(trit_tokenize(ref, "world", 5, 0, &b), TRIT_OK);
    cr_assert_eq(got.n, 1 + a.n + 1 + b.n);
    cr_assert_eq(got.ids[0], 1);
    cr_assert(memcmp(got.ids + 1, a.ids, a.n * sizeof *a.ids) == 0);
    cr_assert_eq(got.ids[1 + a.n], 32001);
    cr_assert(memcmp(got.ids + 2 + a.n, b.ids, b.n * sizeof *b.ids) == 0);
    char out[64];
    size_t n_out;
    cr_assert_eq(trit_detokenize(tok, got.ids, got.n, TRIT_DECODE_STRIP_SPACE, out, sizeof out, &n_out), TRIT_OK);
    const char *decoded = "Hello</line> world";
    cr_assert(n_out == strlen(decoded) && memcmp(out, decoded, n_out) == 0, "\"%.*s\"", (int)n_out, out);

    /* "<pad>" is control: plain text unless special tokens are parsed */
    trit_tokens_free(&got);
    cr_assert_eq(trit_tokenize(tok, "<pad>", 5, 0, &got), TRIT_OK);
    for (size_t i = 0; i < got.n; i++) cr_assert_neq(got.ids[i], 32000);
    got.n = 0;
    cr_assert_eq(trit_tokenize(tok, "<pad>", 5, TRIT_TOKENIZE_PARSE_SPECIAL, &got), TRIT_OK);
    cr_assert(got.n == 1 && got.ids[0] == 32000);

    /* the rest of the vocabulary is untouched: every test string still matches the GGUF */
    check_same_as(tok, ref, "tokenizer.model + added_tokens.json", TRIT_DECODE_STRIP_SPACE);
    trit_tokens_free(&got);
    trit_tokens_free(&a);
    trit_tokens_free(&b);
    trit_tokenizer_free(tok);
    scratch_remove(&s);
}

Test(spm_model, added_tokens_without_config) {
    struct model_spec spec = model_spec(SMALL_PIECES);
    struct pb m = build_model(&spec);
    struct trit_tokenizer *tok = load_memory(&m, "{\"<pad>\": 300, \"</line>\": 301, \"<s>\": 1}", NULL);
    cr_assert_eq(trit_tokenizer_n_vocab(tok), 302);
    cr_assert_eq(trit_tokenizer_pad(tok), -1); /* trainer_spec pad_id -1, and no config names one */
    cr_assert_eq(trit_tokenizer_token_type(tok, 300), TRIT_TOKEN_USER_DEFINED);
    cr_assert_eq(trit_tokenizer_token_type(tok, 301), TRIT_TOKEN_USER_DEFINED);
    cr_assert_eq(trit_tokenizer_token_type(tok, 1), TRIT_TOKEN_CONTROL); /* an existing piece, the bos */
    trit_tokenizer_free(tok);
    free(m.p);
}

Test(spm_model, config_overrides_flags) {
    struct model_spec spec = model_spec(SMALL_PIECES);
    struct pb m = build_model(&spec);
    struct trit_tokenizer *tok = load_memory(&m, NULL, "{\"add_bos_token\": false, \"add_eos_token\": true}");
    cr_assert_not(trit_tokenizer_add_bos(tok));
    cr_assert(trit_tokenizer_add_eos(tok));
    struct trit_tokens t = {0};
    cr_assert_eq(trit_tokenize(tok, "a", 1, TRIT_TOKENIZE_ADD_SPECIAL, &t), TRIT_OK);
    cr_assert_gt(t.n, 1);
    cr_assert_neq(t.ids[0], 1);
    cr_assert_eq(t.ids[t.n - 1], 2);
    trit_tokens_free(&t);
    trit_tokenizer_free(tok);
    free(m.p);
}

/* ---- refusals --------------------------------------------------------------------------------- */

Test(spm_model, refuses_other_model_types) {
    struct model_spec spec = model_spec(SMALL_PIECES);
    spec.model_type = 1;
    expect_spec_refused(&spec, TRIT_ERR_UNSUPPORTED, "UNIGRAM");
    spec.model_type = -1; /* absent: the schema's default is UNIGRAM */
    expect_spec_refused(&spec, TRIT_ERR_UNSUPPORTED, "UNIGRAM");
    spec.model_type = 3;
    expect_spec_refused(&spec, TRIT_ERR_UNSUPPORTED, "WORD");
    spec.model_type = 4;
    expect_spec_refused(&spec, TRIT_ERR_UNSUPPORTED, "CHAR");
    spec.model_type = 9;
    expect_spec_refused(&spec, TRIT_ERR_UNSUPPORTED, "model_type 9");
}

Test(spm_model, refuses_normalization) {
    struct model_spec spec = model_spec(SMALL_PIECES);
    spec.norm = "nmt_nfkc";
    expect_spec_refused(&spec, TRIT_ERR_UNSUPPORTED, "normalizer 'nmt_nfkc'");
    spec = model_spec(SMALL_PIECES);
    spec.remove_extra_whitespaces = true;
    expect_spec_refused(&spec, TRIT_ERR_UNSUPPORTED, "remove_extra_whitespaces");
    spec = model_spec(SMALL_PIECES);
    spec.escape_whitespaces = false;
    expect_spec_refused(&spec, TRIT_ERR_UNSUPPORTED, "escape_whitespaces");
    spec = model_spec(SMALL_PIECES);
    spec.byte_fallback = false;
    expect_spec_refused(&spec, TRIT_ERR_UNSUPPORTED, "byte_fallback");

    /* an empty name is identity; a charsmap is a normalization table */
    spec = model_spec(SMALL_PIECES);
    spec.norm = NULL;
    struct pb m = build_model(&spec);
    trit_tokenizer_free(load_memory(&m, NULL, NULL));
    struct pb norm = {0};
    pb_bytes(&norm, 2, "\x01\x02", 2);
    pb_msg(&m, 3, &norm); /* a second normalizer_spec merges into the first */
    expect_refused(&m, NULL, NULL, TRIT_ERR_UNSUPPORTED, "precompiled_charsmap");
    free(m.p);
}

Test(spm_model, refuses_every_truncation) {
    struct model_spec spec = model_spec(SMALL_PIECES);
    spec.unknown = true;
    struct pb m = build_model(&spec);
    trit_tokenizer_free(load_memory(&m, NULL, NULL));
    /* SentencePiece writes trainer_spec and normalizer_spec after the pieces, so every prefix loses
     * at least part of them: a cut inside a field is a format error, a cut between fields leaves
     * the schema defaults (UNIGRAM, remove_extra_whitespaces), which are refused */
    for (size_t n = 0; n < m.n; n++) {
        uint8_t *copy = malloc(n ? n : 1); /* exactly n bytes: ASan sees a read past them */
        memcpy(copy, m.p, n);
        struct trit_tokenizer *tok = NULL;
        enum trit_status st = trit_tokenizer_load_spm_memory(copy, n, NULL, 0, NULL, 0, &tok);
        cr_assert(st == TRIT_ERR_FORMAT || st == TRIT_ERR_UNSUPPORTED, "%zu of %zu bytes: status %d", n, m.n, st);
        cr_assert_null(tok);
        free(copy);
    }
    free(m.p);
}

Test(spm_model, refuses_bad_wire_data) {
    struct model_spec spec = model_spec(SMALL_PIECES);
    struct pb m = build_model(&spec);
    size_t good = m.n;

    /* a varint of 11 bytes, and one of 10 whose last byte carries bits past 64 */
    static const uint8_t long_varint[] = {0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x00};
    pb_tag(&m, 1000, PB_W_VARINT);
    pb_raw(&m, long_varint, sizeof long_varint);
    expect_refused(&m, NULL, NULL, TRIT_ERR_FORMAT, "longer than 10 bytes");
    m.n = good;
    static const uint8_t wide_varint[] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02};
    pb_tag(&m, 1000, PB_W_VARINT);
    pb_raw(&m, wide_varint, sizeof wide_varint);
    expect_refused(&m, NULL, NULL, TRIT_ERR_FORMAT, "larger than 64 bits");

    /* a length past the end of the file, and one past the end of the enclosing message only */
    m.n = good;
    pb_tag(&m, 1000, PB_W_LEN);
    pb_varint(&m, 1000);
    pb_raw(&m, "abc", 3);
    expect_refused(&m, NULL, NULL, TRIT_ERR_FORMAT, "past the end");
    m.n = good;
    struct pb piece = {0};
    pb_tag(&piece, 1, PB_W_LEN);
    pb_varint(&piece, 5); /* 5 bytes of text, but the piece message ends after 2 */
    pb_raw(&piece, "ab", 2);
    pb_msg(&m, 1, &piece);
    pb_uint(&m, 1000, 0); /* more bytes after it in the file */
    pb_uint(&m, 1000, 0);
    expect_refused(&m, NULL, NULL, TRIT_ERR_FORMAT, "past the end");

    /* wire types: a group, an invalid one, and a known field with the wrong one */
    m.n = good;
    pb_tag(&m, 1000, 3);
    expect_refused(&m, NULL, NULL, TRIT_ERR_FORMAT, "wire type 3");
    m.n = good;
    pb_tag(&m, 1000, 7);
    expect_refused(&m, NULL, NULL, TRIT_ERR_FORMAT, "wire type 7");
    m.n = good;
    pb_uint(&m, 2, 5); /* trainer_spec as a varint */
    expect_refused(&m, NULL, NULL, TRIT_ERR_FORMAT, "ModelProto.trainer_spec");
    m.n = good;
    pb_tag(&m, 0, PB_W_VARINT); /* field number 0 */
    pb_varint(&m, 1);
    expect_refused(&m, NULL, NULL, TRIT_ERR_FORMAT, "field number 0");

    /* pieces: an unknown type, an empty text, a NaN score */
    m.n = good;
    pb_str(&piece, 1, "zz");
    pb_uint(&piece, 3, 7);
    pb_msg(&m, 1, &piece);
    expect_refused(&m, NULL, NULL, TRIT_ERR_FORMAT, "type 7");
    m.n = good;
    pb_uint(&piece, 3, 1);
    pb_msg(&m, 1, &piece);
    expect_refused(&m, NULL, NULL, TRIT_ERR_FORMAT, "no text");
    m.n = good;
    pb_str(&piece, 1, "zz");
    pb_float(&piece, 2, __builtin_nanf(""));
    pb_msg(&m, 1, &piece);
    expect_refused(&m, NULL, NULL, TRIT_ERR_FORMAT, "not finite");

    /* nothing at all */
    expect_refused(&(struct pb){0}, NULL, NULL, TRIT_ERR_FORMAT, "no pieces");
    free(m.p);
}

Test(spm_model, refuses_inconsistent_vocabulary) {
    struct model_spec spec = model_spec(SMALL_PIECES);
    struct pb m = build_model(&spec);
    size_t good = m.n;
    struct pb piece = {0};

    /* a piece twice (pieces may come after the specs: protobuf does not order fields) */
    pb_str(&piece, 1, "<0x41>");
    pb_msg(&m, 1, &piece);
    expect_refused(&m, NULL, NULL, TRIT_ERR_FORMAT, "duplicate piece");
    m.n = good;

    /* special ids outside the pieces */
    spec.bos_id = SMALL_PIECES;
    expect_spec_refused(&spec, TRIT_ERR_FORMAT, "bos_id = 300");
    spec.bos_id = -5;
    expect_spec_refused(&spec, TRIT_ERR_FORMAT, "bos_id = -5");
    spec = model_spec(SMALL_PIECES);
    spec.pad_id = 1 << 30;
    expect_spec_refused(&spec, TRIT_ERR_FORMAT, "pad_id");

    /* byte_fallback without all 256 byte pieces: the first 100 pieces stop at <0x60> */
    spec = model_spec(100);
    expect_spec_refused(&spec, TRIT_ERR_FORMAT, "<0x61>");

    /* added_tokens.json */
    expect_refused(&m, "{\"<pad>\": 300, \"</line>\": 302}", NULL, TRIT_ERR_FORMAT, "no gap");
    expect_refused(&m, "{\"<pad>\": 301}", NULL, TRIT_ERR_FORMAT, "no gap");
    expect_refused(&m, "{\"<pad>\": 300, \"</line>\": 300, \"x\": 302}", NULL, TRIT_ERR_FORMAT, "given twice");
    expect_refused(&m, "{\"<pad>\": 5}", NULL, TRIT_ERR_FORMAT, "which is the piece");
    expect_refused(&m, "{\"<s>\": 300}", NULL, TRIT_ERR_FORMAT, "both token 1 and token 300");
    expect_refused(&m, "{\"<pad>\": -1}", NULL, TRIT_ERR_FORMAT, "no valid token id");
    expect_refused(&m, "{\"<pad>\": \"300\"}", NULL, TRIT_ERR_FORMAT, "no valid token id");
    expect_refused(&m, "{\"\": 300}", NULL, TRIT_ERR_FORMAT, "no text");
    expect_refused(&m, "[300]", NULL, TRIT_ERR_FORMAT, "expected an object");
    expect_refused(&m, "{\"<pad>\": 300", NULL, TRIT_ERR_FORMAT, "invalid JSON");
    /* a repeated key counts once, with its last id (Python's json) */
    trit_tokenizer_free(load_memory(&m, "{\"<pad>\": 7, \"<pad>\": 300}", NULL));

    /* tokenizer_config.json naming a token the vocabulary lacks */
    expect_refused(&m, NULL, "{\"pad_token\": \"<pad>\"}", TRIT_ERR_FORMAT, "'<pad>' is not in the vocabulary");
    expect_refused(&m, NULL, "[]", TRIT_ERR_FORMAT, "not a JSON object");
    free(m.p);
}

Test(spm_model, skips_unknown_fields) {
    struct model_spec spec = model_spec(32000);
    spec.unknown = true;
    struct pb m = build_model(&spec);
    /* self_test_data (4) and denormalizer_spec (5): messages trit does not enter */
    struct pb extra = {0};
    pb_str(&extra, 1, "not parsed");
    pb_msg(&m, 4, &extra);
    pb_str(&extra, 1, "nmt_nfkc");
    pb_msg(&m, 5, &extra);
    struct trit_tokenizer *tok = load_memory(&m, NULL, NULL);
    cr_assert_eq(trit_tokenizer_n_vocab(tok), 32000);
    check_same_as(tok, gguf_vocab(), "tokenizer.model with unknown fields", TRIT_DECODE_STRIP_SPACE);
    trit_tokenizer_free(tok);
    free(m.p);
}

/* ---- finding the files ------------------------------------------------------------------------ */

Test(spm_model, folder_dispatch) {
    struct model_spec spec = model_spec(SMALL_PIECES);
    struct pb m = build_model(&spec);
    struct scratch s;
    scratch_make(&s);
    struct trit_tokenizer *tok = (struct trit_tokenizer *)(uintptr_t)1; /* must come back NULL */
    cr_assert_eq(trit_tokenizer_load(s.dir, &tok), TRIT_ERR_NOT_FOUND);
    cr_assert_null(tok);
    cr_assert_not_null(strstr(trit_last_error(), "neither tokenizer.json nor tokenizer.model"), "%s",
                       trit_last_error());

    /* tokenizer.model with added_tokens.json beside it */
    scratch_write(&s, "tokenizer.model", m.p, m.n);
    scratch_write(&s, "added_tokens.json", "{\"</line>\": 300}", 16);
    cr_assert_eq(trit_tokenizer_load(s.dir, &tok), TRIT_OK, "%s", trit_last_error());
    cr_assert_eq(trit_tokenizer_n_vocab(tok), 301);
    trit_tokenizer_free(tok);
    /* the file itself, with the same neighbour */
    snprintf(s.path, sizeof s.path, "%s/tokenizer.model", s.dir);
    cr_assert_eq(trit_tokenizer_load(s.path, &tok), TRIT_OK, "%s", trit_last_error());
    cr_assert_eq(trit_tokenizer_n_vocab(tok), 301);
    trit_tokenizer_free(tok);

    /* tokenizer.json wins when both are there (this one is broken, to tell which was read) */
    scratch_write(&s, "tokenizer.json", "{}", 2);
    cr_assert_eq(trit_tokenizer_load(s.dir, &tok), TRIT_ERR_FORMAT);
    cr_assert_not_null(strstr(trit_last_error(), "tokenizer.json"), "%s", trit_last_error());
    scratch_remove(&s);
    free(m.p);
}
