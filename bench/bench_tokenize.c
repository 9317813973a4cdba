/*
 * bench_tokenize.c: tokenizer throughput. Encodes about 1 MB of varied text (English prose, Python
 * code, numbers, Cyrillic, CJK, Arabic, emoji, whitespace runs; generated deterministically, or
 * read from a file) with a tokenizer (default: the Llama 3 tokenizer.json under tests/data) and
 * prints the median of several runs in MB/s and tokens/s, plus decode throughput.
 *
 *   build-h4/bench/bench_tokenize                       # generated text, Llama 3 tokenizer.json
 *   build-h4/bench/bench_tokenize --tokenizer tests/data/tokenizers/llama-spm/ggml-vocab-llama-spm.gguf
 *   build-h4/bench/bench_tokenize some.txt
 *
 * The issue asks for 1 MB to encode in well under a second. Numbers only; it never fails on speed.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/core.h"
#include "tokenizer/tokenizer.h"

#define N_RUNS 5
#define TARGET_BYTES (1u << 20)

/* ---- text ------------------------------------------------------------------------------------- */

static uint64_t rng_state = 0x9E3779B97F4A7C15ull;
static uint64_t rng(void) { /* xorshift64*: the text is the same on every run and machine */
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return rng_state * 0x2545F4914F6CDD1Dull;
}

static const char *const WORDS[] = {
    "the", "of", "and", "to", "in", "is", "that", "for", "it", "as", "was", "with", "be", "by", "on", "not",
    "he", "this", "are", "or", "his", "from", "at", "which", "but", "have", "an", "had", "they", "you",
    "ternary", "weights", "inference", "quantization", "activation", "tokenizer", "throughput", "Llama",
    "BitNet", "matrix", "memory", "bandwidth", "don't", "we're", "it's", "I'll", "they've", "Führer",
    "naïve", "café", "résumé", "co-operate", "e-mail", "U.S.A.", "3.14159", "2024", "1,000,000"};
static const char *const SNIPPETS[] = {
    "\n    def forward(self, x):\n        return self.proj(x) * self.scale\n",
    "\nfor (int i = 0; i < n; i++) {\n\tacc += w[i] * x[i];\n}\n",
    " Привет, мир! Как дела? ", " 日本語のテキストです。", " 我想在apple工作1314151天～ ",
    " مرحبا بالعالم ", " 🚀 (normal) 😶‍🌫️ ✅ 🦙🦙 ", " x²+y²=z² ∑∫∂ √2 ≈ 1.414 ",
    "\n\n\n", "        ", "\t\t", " <tag attr=\"v\">text</tag> ", " https://github.com/pypa/pip/issues/7498 "};

static char *make_text(size_t *len) {
    char *buf = malloc(TARGET_BYTES + 256);
    size_t n = 0;
    while (n < TARGET_BYTES) {
        const char *piece;
        uint64_t r = rng() % 100;
        if (r < 8) piece = SNIPPETS[rng() % (sizeof SNIPPETS / sizeof SNIPPETS[0])];
        else piece = WORDS[rng() % (sizeof WORDS / sizeof WORDS[0])];
        size_t k = strlen(piece);
        if (r >= 8 && n > 0) buf[n++] = r < 90 ? ' ' : r < 95 ? ',' : r < 98 ? '.' : '\n';
        memcpy(buf + n, piece, k);
        n += k;
    }
    *len = n;
    return buf;
}

static char *read_text(const char *path, size_t *len) {
    FILE *fp = fopen(path, "rb");
    if (!fp) return NULL;
    fseek(fp, 0, SEEK_END);
    long n = ftell(fp);
    fseek(fp, 0, SEEK_SET);
    char *buf = malloc((size_t)n + 1);
    if (!buf || fread(buf, 1, (size_t)n, fp) != (size_t)n) {
        fclose(fp);
        free(buf);
        return NULL;
    }
    fclose(fp);
    *len = (size_t)n;
    return buf;
}

static int cmp_i64(const void *a, const void *b) {
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

/* ---- main ------------------------------------------------------------------------------------- */

int main(int argc, char **argv) {
    /* default tokenizer: tests/data next to this source file */
    char default_tok[4096];
    snprintf(default_tok, sizeof default_tok, "%.*s../tests/data/tokenizers/llama3",
             (int)(strrchr(__FILE__, '/') ? strrchr(__FILE__, '/') - __FILE__ + 1 : 0), __FILE__);
    const char *tok_path = default_tok, *text_path = NULL;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--tokenizer") == 0 && i + 1 < argc) tok_path = argv[++i];
        else if (argv[i][0] == '-') {
            fprintf(stderr, "usage: %s [--tokenizer PATH] [TEXT_FILE]\n", argv[0]);
            return 2;
        } else text_path = argv[i];
    }

    int64_t t0 = trit_time_us();
    struct trit_tokenizer *tok;
    if (trit_tokenizer_load(tok_path, &tok) != TRIT_OK) {
        fprintf(stderr, "cannot load %s: %s\n", tok_path, trit_last_error());
        return 1;
    }
    int64_t load_us = trit_time_us() - t0;

    size_t len;
    char *text = text_path ? read_text(text_path, &len) : make_text(&len);
    if (!text) {
        fprintf(stderr, "cannot read %s\n", text_path);
        return 1;
    }

    int64_t enc_us[N_RUNS], dec_us[N_RUNS];
    struct trit_tokens t = {0};
    char *back = malloc(len + 1);
    size_t n_tokens = 0;
    for (int r = 0; r < N_RUNS; r++) {
        t.n = 0;
        t0 = trit_time_us();
        if (trit_tokenize(tok, text, len, 0, &t) != TRIT_OK) {
            fprintf(stderr, "tokenize failed: %s\n", trit_last_error());
            return 1;
        }
        enc_us[r] = trit_time_us() - t0;
        n_tokens = t.n;
        size_t n_out;
        t0 = trit_time_us();
        enum trit_status st = trit_detokenize(tok, t.ids, t.n, TRIT_DECODE_STRIP_SPACE, back, len + 1, &n_out);
        dec_us[r] = trit_time_us() - t0;
        if (st != TRIT_OK || n_out != len || memcmp(back, text, len) != 0) {
            fprintf(stderr, "round trip failed (%s)\n", trit_last_error());
            return 1;
        }
    }
    qsort(enc_us, N_RUNS, sizeof enc_us[0], cmp_i64);
    qsort(dec_us, N_RUNS, sizeof dec_us[0], cmp_i64);
    double mb = (double)len / 1e6;
    double enc_s = (double)enc_us[N_RUNS / 2] / 1e6, dec_s = (double)dec_us[N_RUNS / 2] / 1e6;
    printf("tokenizer   %s (n_vocab %d, load %.0f ms)\n", tok_path, trit_tokenizer_n_vocab(tok), (double)load_us / 1e3);
    printf("text        %s, %zu bytes, %zu tokens (%.2f bytes/token)\n", text_path ? text_path : "generated", len,
           n_tokens, (double)len / (double)n_tokens);
    printf("encode      median of %d: %.1f ms = %.2f MB/s, %.0f tokens/s (min %.1f ms, max %.1f ms)\n", N_RUNS,
           enc_s * 1e3, mb / enc_s, (double)n_tokens / enc_s, (double)enc_us[0] / 1e3, (double)enc_us[N_RUNS - 1] / 1e3);
    printf("decode      median of %d: %.2f ms = %.1f MB/s\n", N_RUNS, dec_s * 1e3, mb / dec_s);
    trit_tokens_free(&t);
    free(back);
    free(text);
    trit_tokenizer_free(tok);
    return 0;
}
