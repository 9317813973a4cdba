/*
 * fuzz_spm_model.c: libFuzzer target for SentencePiece tokenizer.model files (the protobuf reader of
 * host/tokenizer/load_spm.c). Each input is a whole tokenizer.model, loaded with
 * trit_tokenizer_load_spm_memory. Checked, trapping on failure:
 *   - a refusal is TRIT_ERR_FORMAT or TRIT_ERR_UNSUPPORTED (or OUT_OF_MEMORY), with no tokenizer
 *     and a message that names the file;
 *   - a loaded tokenizer is SPM, every special id is -1 or inside the vocabulary, and a few texts
 *     (spaces, several scripts, invalid UTF-8, special-token markers) encode to ids inside the
 *     vocabulary and decode without error;
 *   - the same model with a 1bitLLM-style added_tokens.json and tokenizer_config.json either loads
 *     with the two tokens appended (pad = the first) or is refused the same way.
 * (The JSON reader itself is fuzzed by fuzz_json_config.)
 *
 *   CC=clang cmake -S . -B build-fuzz -DTRIT_FUZZ=ON -DTRIT_CUDA=OFF && cmake --build build-fuzz -j2
 *   build-fuzz/tests/fuzz/fuzz_spm_model -max_total_time=60 /tmp/spm-work tests/fuzz/corpus/spm_model
 *
 * The seed corpus (tests/fuzz/corpus/spm_model) is written by this file's generator, built without
 * libFuzzer against a CPU-only build's library:
 *   cc -std=c11 -D_POSIX_C_SOURCE=200809L -DFUZZ_SPM_MODEL_MAKE_SEEDS -Iinclude -Ihost \
 *      tests/fuzz/fuzz_spm_model.c build/libtrit.a -lpcre2-8 -lcjson -lm -lpthread -o /tmp/spm_seeds
 *   /tmp/spm_seeds tests/fuzz/corpus/spm_model
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tokenizer/tokenizer.h"

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "fuzz_spm_model: check failed: %s (line %d); last error: %s\n", #cond, \
                    __LINE__, trit_last_error());                                                  \
            __builtin_trap();                                                                      \
        }                                                                                          \
    } while (0)

static const char *const TEXTS[] = {
    "Hello world",
    "  two  spaces\tand\ntabs ",
    "\xe2\x96\x81 literal mark, caf\xc3\xa9, \xe4\xb8\xad\xe6\x96\x87, \xf0\x9f\xa6\x99",
    "<s>special</s><pad></line><unk>",
    "invalid \xff\xfe \xc3 utf-8 \xe2\x96",
};

static void check_refusal(enum trit_status st, const struct trit_tokenizer *tok) {
    CHECK(st == TRIT_ERR_FORMAT || st == TRIT_ERR_UNSUPPORTED || st == TRIT_ERR_OUT_OF_MEMORY);
    CHECK(tok == NULL);
    const char *msg = trit_last_error();
    CHECK(strncmp(msg, "tokenizer", 9) == 0 || strncmp(msg, "added_tokens.json", 17) == 0);
}

/* Encodes and decodes the fixed texts; every id must be inside the vocabulary. */
static void exercise(const struct trit_tokenizer *tok) {
    const int32_t n = trit_tokenizer_n_vocab(tok);
    CHECK(n > 0 && trit_tokenizer_kind(tok) == TRIT_TOKENIZER_SPM);
    const int32_t special[] = {trit_tokenizer_bos(tok), trit_tokenizer_eos(tok), trit_tokenizer_unk(tok),
                               trit_tokenizer_pad(tok)};
    for (size_t i = 0; i < sizeof special / sizeof special[0]; i++) CHECK(special[i] >= -1 && special[i] < n);
    static const unsigned flag_sets[] = {0, TRIT_TOKENIZE_ADD_SPECIAL | TRIT_TOKENIZE_PARSE_SPECIAL};
    for (size_t t = 0; t < sizeof TEXTS / sizeof TEXTS[0]; t++) {
        for (size_t f = 0; f < sizeof flag_sets / sizeof flag_sets[0]; f++) {
            struct trit_tokens ids = {0};
            CHECK(trit_tokenize(tok, TEXTS[t], strlen(TEXTS[t]), flag_sets[f], &ids) == TRIT_OK);
            for (size_t i = 0; i < ids.n; i++) CHECK(ids.ids[i] >= 0 && ids.ids[i] < n);
            size_t cap = ids.n * trit_tokenizer_max_piece_bytes(tok) + 1, n_out;
            char *out = malloc(cap);
            CHECK(out != NULL);
            CHECK(trit_detokenize(tok, ids.ids, ids.n, TRIT_DECODE_SPECIAL, out, cap, &n_out) == TRIT_OK);
            free(out);
            trit_tokens_free(&ids);
        }
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    struct trit_tokenizer *tok = NULL;
    enum trit_status st = trit_tokenizer_load_spm_memory(data, size, NULL, 0, NULL, 0, &tok);
    if (st != TRIT_OK) {
        check_refusal(st, tok);
        return 0;
    }
    exercise(tok);
    const int32_t n = trit_tokenizer_n_vocab(tok);
    trit_tokenizer_free(tok);

    /* the 1bitLLM shape: two added tokens after the pieces, <pad> named the pad token */
    char added[96];
    snprintf(added, sizeof added, "{\"<pad>\": %d, \"</line>\": %d}", n, n + 1);
    static const char config[] = "{\"pad_token\": \"<pad>\", \"add_eos_token\": true}";
    st = trit_tokenizer_load_spm_memory(data, size, added, strlen(added), config, sizeof config - 1, &tok);
    if (st != TRIT_OK) { /* e.g. the model already has a piece "<pad>" */
        check_refusal(st, tok);
        return 0;
    }
    CHECK(trit_tokenizer_n_vocab(tok) == n + 2);
    CHECK(trit_tokenizer_pad(tok) == n);
    CHECK(trit_tokenizer_token_type(tok, n + 1) == TRIT_TOKEN_USER_DEFINED);
    CHECK(trit_tokenizer_add_eos(tok));
    exercise(tok);
    trit_tokenizer_free(tok);
    return 0;
}

/* ---- seed generator (see the header) -------------------------------------------------------- */
#ifdef FUZZ_SPM_MODEL_MAKE_SEEDS
#include "../pb_writer.h"

/* What varies between the seeds. */
struct seed {
    const char *name;
    int model_type;
    const char *norm;
    bool charsmap, remove_extra_whitespaces, add_dummy_prefix, unknown;
};

static void write_seed(const char *dir, const struct seed *s) {
    struct pb model = {0}, m = {0};
    if (s->unknown) pb_unknown(&model);
    pb_spm_piece(&model, "<unk>", 5, 0.0f, 2, s->unknown);
    pb_spm_piece(&model, "<s>", 3, 0.0f, 3, s->unknown);
    pb_spm_piece(&model, "</s>", 4, 0.0f, 3, s->unknown);
    for (int b = 0; b < 256; b++) {
        char name[8];
        snprintf(name, sizeof name, "<0x%02X>", b);
        pb_spm_piece(&model, name, 6, 0.0f, 6, false);
    }
    /* merged pieces, Llama-style scores (higher merges first), one user-defined and one unused */
    static const char *const words[] = {"\xe2\x96\x81t", "er", "in", "\xe2\x96\x81" "a", "en", "on", "\xe2\x96\x81th",
                                        "es", "\xe2\x96\x81\xe2\x96\x81", "\xe2\x96\x81the", "\xe2\x96\x81", "e",
                                        "t", "a", "h", "n", "o", "r", "s", "i", "\xe4\xb8\xad"};
    for (size_t i = 0; i < sizeof words / sizeof words[0]; i++)
        pb_spm_piece(&model, words[i], strlen(words[i]), -(float)i, 1, false);
    pb_spm_piece(&model, "<sep>", 5, 0.0f, 4, false);
    pb_spm_piece(&model, "<reserved>", 10, 0.0f, 5, false);

    pb_uint(&m, 3, (uint64_t)s->model_type);
    pb_uint(&m, 4, 300);
    if (s->unknown) pb_unknown(&m);
    pb_uint(&m, 35, 1); /* byte_fallback */
    pb_int32(&m, 40, 0);
    pb_int32(&m, 41, 1);
    pb_int32(&m, 42, 2);
    pb_int32(&m, 43, -1);
    pb_msg(&model, 2, &m);
    pb_str(&m, 1, s->norm);
    pb_bytes(&m, 2, "\x01\x02\x03\x04", s->charsmap ? 4 : 0);
    pb_uint(&m, 3, s->add_dummy_prefix);
    pb_uint(&m, 4, s->remove_extra_whitespaces);
    if (s->unknown) pb_unknown(&m);
    pb_msg(&model, 3, &m);
    if (s->unknown) { /* self_test_data: a message trit does not enter */
        pb_str(&m, 1, "self test sentence");
        pb_msg(&model, 4, &m);
    }

    char path[1024];
    snprintf(path, sizeof path, "%s/%s", dir, s->name);
    FILE *fp = fopen(path, "wb");
    CHECK(fp != NULL);
    CHECK(fwrite(model.p, 1, model.n, fp) == model.n);
    fclose(fp);
    struct trit_tokenizer *tok = NULL;
    enum trit_status st = trit_tokenizer_load_spm_memory(model.p, model.n, NULL, 0, NULL, 0, &tok);
    printf("%s: %zu bytes, %s%s\n", path, model.n, st == TRIT_OK ? "loads" : "refused: ",
           st == TRIT_OK ? "" : trit_last_error());
    trit_tokenizer_free(tok);
    LLVMFuzzerTestOneInput(model.p, model.n);
    free(model.p);
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: %s <corpus dir>\n", argv[0]);
        return 2;
    }
    static const struct seed seeds[] = {
        {"bpe.model", 2, "identity", false, false, true, false},
        {"bpe_unknown_fields.model", 2, "identity", false, false, false, true},
        {"unigram_nfkc.model", 1, "nmt_nfkc", true, true, true, false},
    };
    for (size_t i = 0; i < sizeof seeds / sizeof seeds[0]; i++) write_seed(argv[1], &seeds[i]);
    return 0;
}
#endif
