// labels: unit
/*
 * test_convert.c: `trit convert` (host/model/convert.c) and the claim behind it: every file kind
 * trit reads decodes to the same canonical ternary tensors, and conversion keeps them bit for bit.
 *
 *   - the three HF checkpoint kinds (autobitlinear multiply, BitLinear divide on a llama graph,
 *     1bitLLM float latents), built in /tmp by tests/tiny_model.c, converted, then source and output
 *     loaded and compared here field by field (independently of the converter's own check);
 *   - GGUF -> GGUF conversion is the identity on trit's own files (byte-identical output);
 *   - rows that are not whole 256-blocks (F16 fallback), TQ1_0 output, a tokenizer taken from a
 *     llama.cpp vocab GGUF;
 *   - one ternary model stored as TQ2_0, TQ1_0, I2_S, F16, F32 GGUFs and an HF packed folder loads
 *     to the same codes, with the scale as exact as each format allows;
 *   - I2_S (type 36) under the bitnet and llama architectures, told from IQ4_NL_4_4 by its span;
 *   - refusals: a missing tokenizer, a tokenizer.json
 *     whose behaviour GGUF keys cannot express; and the converter's check catches a changed code.
 *
 * tests/tiny_model.c is linked in by tests/ctest_tools.cmake.
 *
 *   ctest --test-dir build -R test_convert --output-on-failure
 */
#include <criterion/criterion.h>
#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "io/gguf.h"
#include "model/convert.h"
#include "model/model.h"
#include "support.h"
#include "tiny_model.h"
#include "tokenizer/tokenizer.h"
#include "pb_writer.h"

/* ---- helpers ------------------------------------------------------------------------------- */

static bool exists(const char *path) {
    struct stat st;
    return stat(path, &st) == 0;
}

static struct trit_model load_with(const char *path, enum trit_i2s_layout i2s) {
    struct trit_model m;
    const struct trit_load_params lp = {.i2s_layout = i2s};
    enum trit_status st = trit_model_load_path(path, &lp, &m);
    cr_assert_eq(st, TRIT_OK, "loading %s: %s", path, trit_last_error());
    return m;
}

static struct trit_model load(const char *path) { return load_with(path, TRIT_I2S_X86); }

/* n_vocab: the embedding's rows (tiny_model_init's 264 = its own tokenizer's; a model given a
 * larger vocabulary must hold it: convert refuses a tokenizer with more tokens than rows). */
static struct tiny_model make_hf_vocab(enum tiny_kind kind, int64_t dim, int64_t ffn, const char *dir, bool tokenizer,
                                       int64_t n_vocab) {
    struct tiny_model m;
    struct test_rng rng;
    test_rng_seed(&rng, 0xC0DE + (uint64_t)kind);
    cr_assert(tiny_model_init(&m, kind, dim, ffn, 2, test_rng_u64(&rng) | 1));
    m.n_vocab = n_vocab;
    cr_assert(tiny_write_hf(&m, dir, tokenizer), "writing %s", dir);
    return m;
}
static struct tiny_model make_hf(enum tiny_kind kind, int64_t dim, int64_t ffn, const char *dir, bool tokenizer) {
    return make_hf_vocab(kind, dim, ffn, dir, tokenizer, 264);
}

static void convert_ok(const char *src, const char *dst, const struct trit_convert_params *p, struct trit_convert_report *r) {
    enum trit_status st = trit_convert(src, dst, p, r);
    cr_assert_eq(st, TRIT_OK, "convert %s: %s", src, trit_last_error());
    cr_assert(r->checked || (p && !p->check));
    cr_assert(!exists(test_tmp_path("out.gguf.partial")));
}

static const struct trit_ternary *weight(const struct trit_layer *l, int k) { return &l->w[k]; }

/* llama.cpp's permute, written as its numpy: w.reshape(n_head, 2, hd/2, cols).swapaxes(1, 2):
 * out[h][j][a] = in[h][a][j]. */
static bool rows_permuted(const struct trit_ternary *src, const struct trit_ternary *out, int64_t hd) {
    if (src->n_rows != out->n_rows || src->n_cols != out->n_cols) return false;
    const int64_t n_head = src->n_rows / hd;
    for (int64_t h = 0; h < n_head; h++)
        for (int64_t a = 0; a < 2; a++)
            for (int64_t j = 0; j < hd / 2; j++) {
                int64_t rs = h * hd + a * (hd / 2) + j, ro = h * hd + j * 2 + a;
                if (memcmp(src->codes + rs * src->row_bytes, out->codes + ro * out->row_bytes, (size_t)src->row_bytes) != 0)
                    return false;
            }
    return true;
}

static bool same_bits(float a, float b) { return memcmp(&a, &b, sizeof a) == 0; }

/* Field-by-field comparison of a source and its conversion (not through trit_convert_compare_models). */
static void assert_same_model(const struct trit_model *a, const struct trit_model *b, bool permuted) {
    const struct trit_hparams *x = &a->hp, *y = &b->hp;
    cr_assert(x->family == y->family && x->n_vocab == y->n_vocab && x->dim == y->dim && x->n_layers == y->n_layers &&
              x->n_heads == y->n_heads && x->n_kv_heads == y->n_kv_heads && x->head_dim == y->head_dim &&
              x->ffn_dim == y->ffn_dim && x->ctx_train == y->ctx_train && x->act == y->act &&
              x->sub_norms == y->sub_norms && x->tied_embeddings == y->tied_embeddings);
    cr_assert(same_bits(x->norm_eps, y->norm_eps) && same_bits(x->rope_theta, y->rope_theta));
    cr_assert_eq(y->rope_style, permuted ? TRIT_ROPE_NORM : x->rope_style);
    const struct trit_dense *da[2] = {&a->tok_embd, &a->output}, *db[2] = {&b->tok_embd, &b->output};
    for (int k = 0; k < 2; k++) {
        cr_assert(da[k]->dtype == db[k]->dtype && da[k]->n_rows == db[k]->n_rows && da[k]->n_cols == db[k]->n_cols);
        size_t bytes = (size_t)(da[k]->n_rows * da[k]->n_cols) * (da[k]->dtype == TRIT_DTYPE_F32 ? 4 : 2);
        cr_assert_eq(memcmp(da[k]->data, db[k]->data, bytes), 0, "%s bytes differ", k ? "head" : "embedding");
    }
    cr_assert_eq(memcmp(a->out_norm, b->out_norm, (size_t)x->dim * 4), 0);
    for (int64_t i = 0; i < x->n_layers; i++) {
        const struct trit_layer *la = &a->layers[i], *lb = &b->layers[i];
        cr_assert_eq(memcmp(la->attn_norm, lb->attn_norm, (size_t)x->dim * 4), 0);
        cr_assert_eq(memcmp(la->ffn_norm, lb->ffn_norm, (size_t)x->dim * 4), 0);
        cr_assert_eq(!la->attn_sub_norm, !lb->attn_sub_norm);
        if (la->attn_sub_norm) {
            cr_assert_eq(memcmp(la->attn_sub_norm, lb->attn_sub_norm, (size_t)(x->n_heads * x->head_dim) * 4), 0);
            cr_assert_eq(memcmp(la->ffn_sub_norm, lb->ffn_sub_norm, (size_t)x->ffn_dim * 4), 0);
        }
        for (int k = 0; k < 7; k++) {
            const struct trit_ternary *wa = weight(la, k), *wb = weight(lb, k);
            cr_assert(same_bits(wa->scale, wb->scale), "layer %lld weight %d: scale %.9g vs %.9g", (long long)i, k,
                      (double)wa->scale, (double)wb->scale);
            cr_assert_eq(wa->scale_kind, wb->scale_kind);
            if (permuted && k < 2) cr_assert(rows_permuted(wa, wb, x->head_dim), "layer %lld weight %d rows", (long long)i, k);
            else cr_assert(trit_ternary_equal(wa, wb), "layer %lld weight %d codes differ", (long long)i, k);
        }
    }
}

/* The canonical codes of a loaded model against what tiny_model wrote (scales checked apart). */
static void assert_codes(const struct trit_model *a, const struct tiny_model *m) {
    for (int64_t i = 0; i < m->n_layers; i++)
        for (int k = 0; k < 7; k++) {
            const struct trit_ternary *w = weight(&a->layers[i], k), *t = &m->w[i * 7 + k];
            cr_assert(w->n_rows == t->n_rows && w->n_cols == t->n_cols);
            cr_assert_eq(memcmp(w->codes, t->codes, (size_t)(w->n_rows * w->row_bytes)), 0, "layer %lld weight %d", (long long)i, k);
        }
}

static void gguf_str_eq(const struct gguf_file *f, const char *key, const char *want) {
    char buf[256];
    cr_assert_eq(gguf_get_str(f, key, buf, sizeof buf), TRIT_OK, "%s: %s", key, trit_last_error());
    cr_assert_str_eq(buf, want, "%s", key);
}

static void expect_message(const char *needle) {
    cr_assert_not_null(strstr(trit_last_error(), needle), "message '%s' lacks '%s'", trit_last_error(), needle);
}

TestSuite(convert, .init = test_tmp_make, .fini = test_tmp_remove);

/* ---- the three HF kinds ---------------------------------------------------------------------- */

Test(convert, hf_autobitlinear_multiply) {
    const char *dir = test_tmp_path("hf");
    struct tiny_model tm = make_hf(TINY_HF_AUTOBITLINEAR, 256, 512, dir, true);
    struct trit_convert_report r;
    convert_ok(dir, test_tmp_path("out.gguf"), NULL, &r);
    cr_assert_str_eq(r.arch, "bitnet-b1.58");
    cr_assert(r.n_ternary == 14 && r.n_ternary_f16 == 0 && r.has_tokenizer && !r.permuted_qk);

    struct trit_model a = load(dir), b = load(test_tmp_path("out.gguf"));
    assert_codes(&a, &tm);
    assert_same_model(&a, &b, false);
    cr_assert_eq(b.hp.family, TRIT_FAMILY_BITNET_B158);
    cr_assert_eq(b.layers[0].w[TRIT_W_Q].scale_kind, TRIT_SCALE_MUL);
    cr_assert_eq(b.tok_embd.dtype, TRIT_DTYPE_BF16);

    struct gguf_file f;
    memset(&f, 0, sizeof f);
    cr_assert_eq(gguf_open(test_tmp_path("out.gguf"), &f), TRIT_OK);
    gguf_str_eq(&f, "general.architecture", "bitnet-b1.58");
    gguf_str_eq(&f, "trit.weight_scale_kind", "multiply");
    gguf_str_eq(&f, "tokenizer.ggml.model", "gpt2");
    gguf_str_eq(&f, "tokenizer.ggml.pre", "llama-bpe");
    uint64_t ftype;
    cr_assert(gguf_get_u64(&f, "general.file_type", &ftype) == TRIT_OK && ftype == 37);
    cr_assert_not_null(gguf_find_kv(&f, "tokenizer.chat_template"));
    const struct gguf_tensor_info *q = gguf_find_tensor(&f, "blk.1.attn_q.weight");
    const struct gguf_tensor_info *qs = gguf_find_tensor(&f, "blk.1.attn_q.scale");
    cr_assert(q && q->type == GGML_TYPE_TQ2_0 && qs && qs->type == GGML_TYPE_F32);
    float s;
    memcpy(&s, qs->data, 4);
    cr_assert(same_bits(s, a.layers[1].w[TRIT_W_Q].scale));
    cr_assert_eq(gguf_find_tensor(&f, "token_embd.weight")->type, GGML_TYPE_BF16);
    cr_assert_null(gguf_find_tensor(&f, "output.weight")); /* tied */
    gguf_close(&f);

    /* the tokenizer travels: same ids, BOS first (add_bos from tokenizer_config.json) */
    struct trit_tokenizer *ta, *tb;
    cr_assert_eq(trit_tokenizer_load(dir, &ta), TRIT_OK);
    cr_assert_eq(trit_tokenizer_load(test_tmp_path("out.gguf"), &tb), TRIT_OK, "%s", trit_last_error());
    struct trit_tokens ia = {0}, ib = {0};
    const char *text = "the cat in the hat<|eot_id|> at the inn";
    cr_assert_eq(trit_tokenize(ta, text, strlen(text), 3, &ia), TRIT_OK);
    cr_assert_eq(trit_tokenize(tb, text, strlen(text), 3, &ib), TRIT_OK);
    cr_assert(ia.n == ib.n && memcmp(ia.ids, ib.ids, ia.n * 4) == 0);
    /* BOS, then "the" as "t" + "he" (only "Ġthe" is one token); " the" later is 258 */
    cr_assert(ib.ids[0] == 261 && ib.ids[1] == 116 && ib.ids[2] == 257);
    bool has_the = false;
    for (size_t i = 0; i < ib.n; i++) has_the |= ib.ids[i] == 258;
    cr_assert(has_the);
    cr_assert_eq(trit_convert_compare_tokenizers(ta, tb), TRIT_OK, "%s", trit_last_error());
    trit_tokens_free(&ia);
    trit_tokens_free(&ib);
    trit_tokenizer_free(ta);
    trit_tokenizer_free(tb);
    trit_model_release(&a);
    trit_model_release(&b);
    tiny_model_free(&tm);
}

Test(convert, hf_bitlinear_llama_divide_permutes_qk) {
    const char *dir = test_tmp_path("hf");
    struct tiny_model tm = make_hf(TINY_HF_BITLINEAR_LLAMA, 256, 512, dir, true);
    struct trit_convert_report r;
    convert_ok(dir, test_tmp_path("out.gguf"), NULL, &r);
    cr_assert_str_eq(r.arch, "llama");
    cr_assert(r.permuted_qk);

    struct trit_model a = load(dir), b = load(test_tmp_path("out.gguf"));
    assert_codes(&a, &tm);
    for (int k = 0; k < 7; k++) /* the file's scales, exactly, and they divide */
        cr_assert(same_bits(weight(&a.layers[1], k)->scale, tm.w[7 + k].scale) && weight(&a.layers[1], k)->scale_kind == TRIT_SCALE_DIV);
    assert_same_model(&a, &b, true);
    cr_assert_eq(b.hp.family, TRIT_FAMILY_LLAMA);
    cr_assert(!b.hp.tied_embeddings && b.output.dtype == TRIT_DTYPE_F16);

    struct gguf_file f;
    memset(&f, 0, sizeof f);
    cr_assert_eq(gguf_open(test_tmp_path("out.gguf"), &f), TRIT_OK);
    gguf_str_eq(&f, "general.architecture", "llama");
    gguf_str_eq(&f, "trit.weight_scale_kind", "divide");
    cr_assert_not_null(gguf_find_tensor(&f, "output.weight"));
    gguf_close(&f);
    trit_model_release(&a);
    trit_model_release(&b);
    tiny_model_free(&tm);
}

Test(convert, hf_float_latents_1bitllm) {
    const char *dir = test_tmp_path("hf");
    struct tiny_model tm = make_hf(TINY_HF_FLOAT_1BITLLM, 256, 512, dir, false);
    struct trit_convert_params p = trit_convert_default_params();
    p.no_tokenizer = true;
    struct trit_convert_report r;
    convert_ok(dir, test_tmp_path("out.gguf"), &p, &r);
    cr_assert_str_eq(r.arch, "bitnet");
    cr_assert(!r.has_tokenizer);

    struct trit_model a = load(dir), b = load(test_tmp_path("out.gguf"));
    cr_assert_eq(a.hp.family, TRIT_FAMILY_BITNET);
    cr_assert_eq(a.layers[0].w[TRIT_W_UP].scale_kind, TRIT_SCALE_MUL); /* absmean alpha */
    assert_same_model(&a, &b, false);
    struct gguf_file f;
    memset(&f, 0, sizeof f);
    cr_assert_eq(gguf_open(test_tmp_path("out.gguf"), &f), TRIT_OK);
    gguf_str_eq(&f, "bitnet.hidden_activation", "silu");
    cr_assert_null(gguf_find_kv(&f, "tokenizer.ggml.model"));
    gguf_close(&f);
    trit_model_release(&a);
    trit_model_release(&b);
    tiny_model_free(&tm);
}

/* ---- GGUF sources, packings, tokenizers -------------------------------------------------------- */

static bool same_file(const char *a, const char *b) {
    FILE *fa = fopen(a, "rb"), *fb = fopen(b, "rb");
    bool same = fa && fb;
    while (same) {
        int ca = fgetc(fa), cb = fgetc(fb);
        if (ca != cb) same = false;
        if (ca == EOF || cb == EOF) break;
    }
    if (fa) fclose(fa);
    if (fb) fclose(fb);
    return same;
}

Test(convert, gguf_to_gguf_is_the_identity) {
    const char *dir = test_tmp_path("hf");
    struct tiny_model tm = make_hf(TINY_HF_BITLINEAR_LLAMA, 256, 512, dir, true);
    struct trit_convert_report r;
    convert_ok(dir, test_tmp_path("a.gguf"), NULL, &r);
    convert_ok(test_tmp_path("a.gguf"), test_tmp_path("b.gguf"), NULL, &r);
    cr_assert(!r.permuted_qk); /* a llama GGUF's rows already are */
    cr_assert(same_file(test_tmp_path("a.gguf"), test_tmp_path("b.gguf")), "converting trit's own file changed it");

    /* TQ1_0 holds the same codes; converting it back to TQ2_0 gives the first file again */
    struct trit_convert_params p = trit_convert_default_params();
    p.weights = TRIT_CONVERT_TQ1_0;
    convert_ok(test_tmp_path("a.gguf"), test_tmp_path("c.gguf"), &p, &r);
    struct gguf_file f;
    memset(&f, 0, sizeof f);
    cr_assert_eq(gguf_open(test_tmp_path("c.gguf"), &f), TRIT_OK);
    cr_assert_eq(gguf_find_tensor(&f, "blk.0.ffn_down.weight")->type, GGML_TYPE_TQ1_0);
    uint64_t ftype;
    cr_assert(gguf_get_u64(&f, "general.file_type", &ftype) == TRIT_OK && ftype == 36);
    gguf_close(&f);
    convert_ok(test_tmp_path("c.gguf"), test_tmp_path("d.gguf"), NULL, &r);
    cr_assert(same_file(test_tmp_path("a.gguf"), test_tmp_path("d.gguf")));
    tiny_model_free(&tm);
}

Test(convert, rows_not_whole_blocks_go_f16) {
    /* dim 160: every weight reading the hidden state has rows of 160 (not a multiple of 256);
     * ffn_down reads 256 and stays TQ2_0. Divide-style, so the F16 path meets the divide rule. */
    const char *dir = test_tmp_path("hf");
    struct tiny_model tm = make_hf(TINY_HF_BITLINEAR_LLAMA, 160, 256, dir, false);
    struct trit_convert_params p = trit_convert_default_params();
    p.no_tokenizer = true;
    struct trit_convert_report r;
    convert_ok(dir, test_tmp_path("out.gguf"), &p, &r);
    cr_assert_eq(r.n_ternary_f16, 12, "%lld", (long long)r.n_ternary_f16);
    struct gguf_file f;
    memset(&f, 0, sizeof f);
    cr_assert_eq(gguf_open(test_tmp_path("out.gguf"), &f), TRIT_OK);
    cr_assert_eq(gguf_find_tensor(&f, "blk.0.attn_q.weight")->type, GGML_TYPE_F16);
    cr_assert_eq(gguf_find_tensor(&f, "blk.0.ffn_down.weight")->type, GGML_TYPE_TQ2_0);
    gguf_close(&f);
    struct trit_model a = load(dir), b = load(test_tmp_path("out.gguf"));
    assert_same_model(&a, &b, true);
    trit_model_release(&a);
    trit_model_release(&b);
    tiny_model_free(&tm);
}

/* out.gguf holds a SentencePiece ("llama") vocabulary of n tokens with scores, which loads as the
 * same tokenizer as `source`; returns it loaded (the caller frees it). */
static struct trit_tokenizer *check_llama_vocab(const char *source, uint64_t n) {
    struct gguf_file f;
    memset(&f, 0, sizeof f);
    cr_assert_eq(gguf_open(test_tmp_path("out.gguf"), &f), TRIT_OK);
    gguf_str_eq(&f, "tokenizer.ggml.model", "llama");
    const struct gguf_kv *scores = gguf_find_kv(&f, "tokenizer.ggml.scores");
    cr_assert(scores && scores->arr_n == n);
    gguf_close(&f);
    struct trit_tokenizer *ta, *tb;
    cr_assert_eq(trit_tokenizer_load(source, &ta), TRIT_OK, "%s", trit_last_error());
    cr_assert_eq(trit_tokenizer_load(test_tmp_path("out.gguf"), &tb), TRIT_OK, "%s", trit_last_error());
    cr_assert_eq(trit_convert_compare_tokenizers(ta, tb), TRIT_OK, "%s", trit_last_error());
    trit_tokenizer_free(ta);
    return tb;
}

Test(convert, tokenizer_from_a_vocab_gguf) {
    const char *dir = test_tmp_path("hf");
    struct tiny_model tm = make_hf_vocab(TINY_HF_FLOAT_1BITLLM, 256, 512, dir, false, 32000);
    const char *vocab = test_data_path("tokenizers/llama-spm/ggml-vocab-llama-spm.gguf");
    char vocab_path[512];
    snprintf(vocab_path, sizeof vocab_path, "%s", vocab);
    struct trit_convert_params p = trit_convert_default_params();
    p.tokenizer = vocab_path;
    struct trit_convert_report r;
    convert_ok(dir, test_tmp_path("out.gguf"), &p, &r);
    cr_assert(r.has_tokenizer);
    trit_tokenizer_free(check_llama_vocab(vocab_path, 32000));
    tiny_model_free(&tm);
}

/* A 1bitLLM-style folder: the weights, tokenizer.model (SentencePiece, Llama's settings: here the
 * llama-spm vocabulary) and added_tokens.json, no tokenizer.json. The GGUF gets a "llama" vocabulary
 * with scores, and the tokenizer read back equals the folder's (convert checks it as well). */
Test(convert, sentencepiece_tokenizer_model_folder) {
    const char *dir = test_tmp_path("hf");
    /* 32002 rows: the llama-spm vocabulary and the two added tokens */
    struct tiny_model tm = make_hf_vocab(TINY_HF_FLOAT_1BITLLM, 256, 512, dir, false, 32002);
    struct trit_tokenizer *vocab;
    cr_assert_eq(trit_tokenizer_load(test_data_path("tokenizers/llama-spm/ggml-vocab-llama-spm.gguf"), &vocab), TRIT_OK);
    struct pb model = {0}, m = {0};
    for (int32_t id = 0; id < trit_tokenizer_n_vocab(vocab); id++) {
        size_t len;
        const char *text = trit_tokenizer_token_text(vocab, id, &len);
        pb_spm_piece(&model, text, len, trit_tokenizer_token_score(vocab, id), (int)trit_tokenizer_token_type(vocab, id),
                     false);
    }
    pb_uint(&m, 3, 2);   /* trainer_spec.model_type BPE */
    pb_uint(&m, 35, 1);  /* byte_fallback */
    pb_int32(&m, 43, -1); /* pad_id: none */
    pb_msg(&model, 2, &m);
    pb_str(&m, 1, "identity");
    pb_uint(&m, 4, 0); /* remove_extra_whitespaces false, as Llama's */
    pb_msg(&model, 3, &m);
    char path[600];
    snprintf(path, sizeof path, "%s/tokenizer.model", dir);
    FILE *fp = fopen(path, "wb");
    cr_assert(fp && fwrite(model.p, 1, model.n, fp) == model.n);
    fclose(fp);
    free(model.p);
    snprintf(path, sizeof path, "%s/added_tokens.json", dir);
    fp = fopen(path, "wb");
    cr_assert(fp && fputs("{\"<pad>\": 32000, \"</line>\": 32001}", fp) >= 0);
    fclose(fp);

    struct trit_convert_report r;
    struct trit_convert_params p = trit_convert_default_params();
    convert_ok(dir, test_tmp_path("out.gguf"), &p, &r);
    cr_assert(r.has_tokenizer);
    struct trit_tokenizer *tb = check_llama_vocab(dir, 32002);
    struct trit_tokens ids = {0};
    cr_assert_eq(trit_tokenize(tb, "Hello</line>world", 17, 0, &ids), TRIT_OK, "%s", trit_last_error());
    bool line = false;
    for (size_t i = 0; i < ids.n; i++) line = line || ids.ids[i] == 32001;
    cr_assert(line, "</line> is one token after the round trip");
    trit_tokens_free(&ids);
    trit_tokenizer_free(tb);
    trit_tokenizer_free(vocab);
    tiny_model_free(&tm);
}

/* ---- one tensor, every weight kind ---------------------------------------------------------------- */

Test(convert, every_weight_kind_decodes_to_the_same_canonical_tensor) {
    struct tiny_model tm;
    struct test_rng rng;
    test_rng_seed(&rng, 0x5EED);
    cr_assert(tiny_model_init(&tm, TINY_HF_AUTOBITLINEAR, 256, 512, 2, test_rng_u64(&rng) | 1));
    tm.scale_f32 = true; /* weight_scale as F32: exact */
    static const struct {
        const char *name;
        int enc;      /* enum tiny_gguf_weights, or -1 for the HF folder */
        bool fp16_scale; /* the format stores the scale as fp16 */
        const char *kind;
    } cases[] = {
        {"tq2_0.gguf", TINY_GGUF_TQ2_0, true, "TQ2_0"}, {"tq1_0.gguf", TINY_GGUF_TQ1_0, true, "TQ1_0"},
        {"i2_s.gguf", TINY_GGUF_I2_S, false, "I2_S"},   {"f16.gguf", TINY_GGUF_F16, true, "F16"},
        {"f32.gguf", TINY_GGUF_F32, false, "F32"},      {"hf", -1, false, "HF u8, scale *"},
        {"i2_s_arm.gguf", TINY_GGUF_I2_S_ARM, false, "I2_S"},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        const char *path = test_tmp_path(cases[c].name);
        if (cases[c].enc < 0) cr_assert(tiny_write_hf(&tm, path, false));
        else cr_assert(tiny_write_gguf(&tm, path, "bitnet-b1.58", (enum tiny_gguf_weights)cases[c].enc));
        const bool arm = cases[c].enc == TINY_GGUF_I2_S_ARM; /* loaded as what it is */
        struct trit_model m = load_with(path, arm ? TRIT_I2S_ARM : TRIT_I2S_X86);
        assert_codes(&m, &tm);
        for (int64_t i = 0; i < tm.n_layers; i++)
            for (int k = 0; k < 7; k++) {
                const struct trit_ternary *w = weight(&m.layers[i], k);
                float want = tm.w[i * 7 + k].scale;
                if (cases[c].fp16_scale) want = trit_fp16_to_fp32(trit_fp32_to_fp16(want));
                cr_assert(same_bits(w->scale, want), "%s layer %lld weight %d: scale %.9g, want %.9g", cases[c].name,
                          (long long)i, k, (double)w->scale, (double)want);
                cr_assert_eq(w->scale_kind, TRIT_SCALE_MUL);
            }
        bool noted = false; /* the notes say how each weight was read */
        for (int64_t n = 0; n < m.n_notes; n++)
            if ((strstr(m.notes[n].name, "ffn_down") || strstr(m.notes[n].name, "down_proj")) &&
                strcmp(m.notes[n].kind, cases[c].kind) == 0)
                noted = true;
        cr_assert(noted, "%s: no ffn_down noted as '%s'", cases[c].name, cases[c].kind);
        trit_model_release(&m);
    }
    tiny_model_free(&tm);
}

/* bitnet.cpp's quantizer writes type 36 (I2_S) under `bitnet` and `llama` too; there the byte span
 * (n/4 + 32, padded) proves I2_S rather than llama.cpp's old IQ4_NL_4_4 (9n/16). The same codes as
 * under bitnet-b1.58, in both block layouts, and a converted copy checks out. */
Test(convert, reads_i2s_under_bitnet_and_llama_by_span) {
    struct tiny_model tm;
    cr_assert(tiny_model_init(&tm, TINY_HF_AUTOBITLINEAR, 256, 512, 1, 7));
    const char *archs[2] = {"bitnet", "llama"};
    for (int a = 0; a < 2; a++)
        for (int arm = 0; arm < 2; arm++) {
            const char *path = test_tmp_path("i2s.gguf");
            cr_assert(tiny_write_gguf(&tm, path, archs[a], arm ? TINY_GGUF_I2_S_ARM : TINY_GGUF_I2_S));
            struct trit_model m = load_with(path, arm ? TRIT_I2S_ARM : TRIT_I2S_X86);
            assert_codes(&m, &tm);
            for (int k = 0; k < 7; k++) {
                const struct trit_ternary *w = weight(&m.layers[0], k);
                cr_assert(same_bits(w->scale, tm.w[k].scale) && w->scale_kind == TRIT_SCALE_MUL && w->group == 0);
            }
            bool noted = false;
            for (int64_t n = 0; n < m.n_notes; n++)
                if (strstr(m.notes[n].name, "ffn_down") && strcmp(m.notes[n].kind, "I2_S") == 0) noted = true;
            cr_assert(noted, "%s: ffn_down not noted as I2_S", archs[a]);
            trit_model_release(&m);
        }
    const char *path = test_tmp_path("i2s.gguf");
    cr_assert(tiny_write_gguf(&tm, path, "bitnet", TINY_GGUF_I2_S));
    struct trit_convert_params p = trit_convert_default_params();
    p.no_tokenizer = true;
    struct trit_convert_report r;
    convert_ok(path, test_tmp_path("out.gguf"), &p, &r);
    tiny_model_free(&tm);
}

/* ---- refusals and the check ----------------------------------------------------------------------- */

Test(convert, a_missing_tokenizer_is_an_error_that_says_what_to_do) {
    const char *dir = test_tmp_path("hf");
    struct tiny_model tm = make_hf(TINY_HF_AUTOBITLINEAR, 256, 512, dir, false);
    cr_assert_eq(trit_convert(dir, test_tmp_path("out.gguf"), NULL, NULL), TRIT_ERR_NOT_FOUND);
    expect_message("tokenizer.json");
    expect_message("--no-tokenizer");
    cr_assert(!exists(test_tmp_path("out.gguf")) && !exists(test_tmp_path("out.gguf.partial")));
    tiny_model_free(&tm);
}

Test(convert, refuses_what_gguf_keys_cannot_express) {
    const char *dir = test_tmp_path("hf");
    struct tiny_model tm = make_hf(TINY_HF_AUTOBITLINEAR, 256, 512, dir, true);
    /* the Llama-3 regex implies ignore_merges; a tokenizer.json that turns it off has no GGUF spelling */
    char json_path[600];
    snprintf(json_path, sizeof json_path, "%s/tokenizer.json", dir);
    FILE *fp = fopen(json_path, "rb");
    cr_assert_not_null(fp);
    static char text[1 << 16];
    size_t n = fread(text, 1, sizeof text - 1, fp);
    fclose(fp);
    text[n] = '\0';
    static const char on[] = "\"ignore_merges\":\ttrue";
    char *at = strstr(text, on);
    cr_assert_not_null(at, "tiny tokenizer.json layout changed");
    static char edited[(1 << 16) + 8];
    snprintf(edited, sizeof edited, "%.*s\"ignore_merges\":\tfalse%s", (int)(at - text), text, at + strlen(on));
    fp = fopen(json_path, "wb");
    fputs(edited, fp);
    fclose(fp);
    cr_assert_eq(trit_convert(dir, test_tmp_path("out.gguf"), NULL, NULL), TRIT_ERR_UNSUPPORTED);
    expect_message("ignore_merges");
    tiny_model_free(&tm);
}

/* Qwen2/Qwen3's tokenizer.json (Split with single digits + ByteLevel, NFC) is GGUF pre "qwen2"; the
 * name also fixes the normalizer, so the Llama-3 regex with NFC, or Qwen2's without it, is refused. */
Test(convert, qwen2_pre_tokenizer_name_and_its_normalizer) {
    const char *name = NULL;
    cr_assert_eq(trit_convert_pre_name(test_data_path("tokenizers/qwen2-tiny/tokenizer.json"), &name), TRIT_OK, "%s",
                 trit_last_error());
    cr_expect_str_eq(name, "qwen2");
    cr_assert_eq(trit_convert_pre_name(test_data_path("tokenizers/llama3/tokenizer.json"), &name), TRIT_OK);
    cr_expect_str_eq(name, "llama-bpe");
    /* qwen2-tiny's JSON with its normalizer dropped, then llama3's with NFC added */
    FILE *fp = fopen(test_data_path("tokenizers/qwen2-tiny/tokenizer.json"), "rb");
    cr_assert_not_null(fp);
    static char text[1 << 20];
    const size_t n = fread(text, 1, sizeof text - 1, fp);
    fclose(fp);
    text[n] = '\0';
    static const char nfc[] = "\"normalizer\":{\"type\":\"NFC\"}";
    char *at = strstr(text, nfc);
    cr_assert_not_null(at, "qwen2-tiny tokenizer.json layout changed");
    memcpy(at, "\"normalizer\":null           ", strlen(nfc)); /* same length: null and spaces */
    const char *path = test_tmp_path("qwen2_no_nfc.json");
    fp = fopen(path, "wb");
    cr_assert_not_null(fp);
    fwrite(text, 1, n, fp);
    fclose(fp);
    cr_expect_eq(trit_convert_pre_name(path, &name), TRIT_ERR_UNSUPPORTED);
    expect_message("Qwen2's (with NFC)");
}

Test(convert, the_check_catches_a_changed_code_scale_or_hparam) {
    const char *dir = test_tmp_path("hf");
    struct tiny_model tm = make_hf(TINY_HF_AUTOBITLINEAR, 256, 512, dir, false);
    struct trit_convert_params p = trit_convert_default_params();
    p.no_tokenizer = true;
    struct trit_convert_report r;
    convert_ok(dir, test_tmp_path("out.gguf"), &p, &r);
    struct trit_model a = load(dir), b = load(test_tmp_path("out.gguf"));
    cr_assert_eq(trit_convert_compare_models(&a, &b), TRIT_OK, "%s", trit_last_error());

    struct trit_ternary *w = &b.layers[1].w[TRIT_W_UP];
    int t = trit_ternary_get(w, 5, 77);
    trit_ternary_set(w, 5, 77, t == 1 ? 0 : t + 1);
    cr_assert_eq(trit_convert_compare_models(&a, &b), TRIT_ERR_FORMAT);
    expect_message("layer 1 ffn_up");
    trit_ternary_set(w, 5, 77, t);

    float s = w->scale;
    w->scale = nextafterf(s, 10.0f);
    cr_assert_eq(trit_convert_compare_models(&a, &b), TRIT_ERR_FORMAT);
    w->scale = s;
    w->scale_kind = TRIT_SCALE_DIV;
    cr_assert_eq(trit_convert_compare_models(&a, &b), TRIT_ERR_FORMAT);
    w->scale_kind = TRIT_SCALE_MUL;

    b.hp.ctx_train++;
    cr_assert_eq(trit_convert_compare_models(&a, &b), TRIT_ERR_FORMAT);
    expect_message("ctx_train");
    b.hp.ctx_train--;
    b.layers[0].ffn_norm[3] += 1.0f;
    cr_assert_eq(trit_convert_compare_models(&a, &b), TRIT_ERR_FORMAT);
    expect_message("ffn_norm");
    b.layers[0].ffn_norm[3] -= 1.0f;
    cr_assert_eq(trit_convert_compare_models(&a, &b), TRIT_OK);
    trit_model_release(&a);
    trit_model_release(&b);
    tiny_model_free(&tm);
}

Test(convert, permute_row_is_llama_cpp_permute) {
    /* head_dim 8: rows (a, j) -> (j, a): 0 1 2 3 | 4 5 6 7 -> 0 2 4 6 1 3 5 7, per head */
    static const int64_t want[16] = {0, 2, 4, 6, 1, 3, 5, 7, 8, 10, 12, 14, 9, 11, 13, 15};
    for (int64_t r = 0; r < 16; r++) cr_assert_eq(trit_convert_permute_row(r, 8), want[r], "row %lld", (long long)r);
    cr_assert_str_eq(trit_convert_arch_name(TRIT_FAMILY_BITNET_B158), "bitnet-b1.58");
    cr_assert_str_eq(trit_convert_arch_name(TRIT_FAMILY_BITNET), "bitnet");
    cr_assert_str_eq(trit_convert_arch_name(TRIT_FAMILY_LLAMA), "llama");
}
