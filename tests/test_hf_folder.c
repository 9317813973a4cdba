// labels: unit
/*
 * test_hf_folder.c: Hugging Face model folders (host/io/hf.c) and the JSON getters they use
 * (host/io/json.c).
 *
 * Fixtures: tests/data/hf/tiny-single (model.safetensors, a 2B-4T-shaped config.json,
 * tokenizer_config.json with a chat template) and tests/data/hf/tiny-sharded (two shards and an
 * index, a config.json with a repeated key), written by tests/data/hf/make_fixtures.py with the
 * reference safetensors writer. Broken folders are assembled under /tmp from those files.
 *
 * Also the qwen3 (group-scaled ternary) path of host/model/model_hf.c, on the parity fixture
 * tests/data/fixtures/qwen3-ternary-tiny (tools/reference/make_fixtures.py): F16 weights that are
 * exactly t * d with one d per row and group of 64 columns, and config.json variants around it.
 *
 *   ctest --test-dir build -R test_hf_folder --output-on-failure
 */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/core.h"
#include "io/hf.h"
#include "io/json.h"
#include "model/model.h"
#include "quant/quant.h"
#include "support.h"

/* ---- helpers ------------------------------------------------------------------------------ */

/* make_fixtures.py: byte j of tensor `name` = (j * 131 + sum of name's bytes) & 0xff. */
static void check_fixture_bytes(const struct st_tensor *t) {
    unsigned h = 0;
    for (const char *p = t->name; *p; p++) h += (unsigned char)*p;
    for (uint64_t j = 0; j < t->n_bytes; j++)
        cr_assert_eq(t->data[j], (uint8_t)((j * 131 + h) & 0xff), "%s byte %llu", t->name, (unsigned long long)j);
}

/* Parses text as a config.json through the loader's path. */
static struct json_doc config_of(const char *text) {
    struct json_doc doc;
    cr_assert_eq(hf_config_parse(text, strlen(text), "config.json", &doc), TRIT_OK, "%s", trit_last_error());
    return doc;
}

static void expect_message(const char *needle) {
    cr_assert_not_null(strstr(trit_last_error(), needle), "message '%s' lacks '%s'", trit_last_error(), needle);
}

/* A scratch folder under /tmp. Files are removed by tmp_cleanup, which lists the folder. */
static char tmp_dir[64];
static char tmp_buf[512];
static void tmp_make(void) {
    strcpy(tmp_dir, "/tmp/trit-hf-XXXXXX");
    cr_assert_not_null(mkdtemp(tmp_dir));
}
static const char *tmp_path(const char *name) {
    snprintf(tmp_buf, sizeof tmp_buf, "%s/%s", tmp_dir, name);
    return tmp_buf;
}
static void tmp_write(const char *name, const char *text) {
    FILE *fp = fopen(tmp_path(name), "wb");
    cr_assert_not_null(fp);
    fputs(text, fp);
    fclose(fp);
}
/* Copies tests/data/hf/<src> to the scratch folder as `name`. */
static void tmp_copy(const char *src, const char *name) {
    char from[512];
    snprintf(from, sizeof from, "%s", test_data_path(src));
    FILE *in = fopen(from, "rb");
    cr_assert_not_null(in, "%s", from);
    FILE *out = fopen(tmp_path(name), "wb");
    cr_assert_not_null(out);
    char buf[4096];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, in)) > 0) cr_assert_eq(fwrite(buf, 1, n, out), n);
    fclose(in);
    fclose(out);
}
static void tmp_remove(const char *name) { unlink(tmp_path(name)); }
static void tmp_cleanup(void) {
    const char *names[] = {"config.json", "model.safetensors", "model.safetensors.index.json",
                           "model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors",
                           "copy.safetensors", "pytorch_model.bin", "tokenizer_config.json",
                           "chat_template.jinja", "big.json"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) tmp_remove(names[i]);
    cr_assert_eq(rmdir(tmp_dir), 0, "scratch folder %s not empty", tmp_dir);
}

/* hf_folder_open(tmp_dir) must fail with `want` and `needle` in the message, leaving *f zeroed. */
static void expect_folder_error(enum trit_status want, const char *needle) {
    struct hf_folder f;
    enum trit_status st = hf_folder_open(tmp_dir, &f);
    cr_assert_eq(st, want, "got '%s' (%s)", trit_status_str(st), trit_last_error());
    expect_message(needle);
    cr_assert(f.shards == NULL && f.n_tensors == 0 && f.config.root == NULL && f.dir == NULL);
}

/* ---- the fixture folders ------------------------------------------------------------------ */

Test(hf_folder, single_file_folder) {
    const char *dir = test_data_path("hf/tiny-single");
    cr_assert(hf_is_folder(dir));
    struct hf_folder f;
    cr_assert_eq(hf_folder_open(dir, &f), TRIT_OK, "%s", trit_last_error());
    cr_assert_not(f.sharded);
    cr_assert_eq(f.n_shards, 1);
    cr_assert_eq(f.n_tensors, 9);
    cr_assert_null(f.tokenizer_path); /* no tokenizer.json in this fixture */
    cr_assert_not_null(f.tokenizer_config_path);
    cr_assert_not_null(strstr(f.tokenizer_config_path, "tiny-single/tokenizer_config.json"));
    cr_assert_not_null(f.generation_config_path);
    cr_assert_null(f.chat_template_path);

    /* The 2B-4T config keys a model loader reads. */
    int64_t v;
    double x;
    bool b;
    const char *s;
    cr_assert_eq(json_get_int(&f.config, "hidden_size", 0, 1, INT64_MAX, &v), TRIT_OK);
    cr_assert_eq(v, 8);
    cr_assert_eq(json_get_int(&f.config, "num_key_value_heads", 0, 1, INT64_MAX, &v), TRIT_OK);
    cr_assert_eq(v, 1);
    cr_assert_eq(json_get_int(&f.config, "head_dim", 4, 1, INT64_MAX, &v), TRIT_OK); /* absent */
    cr_assert_eq(v, 4);
    cr_assert_eq(json_get_float(&f.config, "rms_norm_eps", 0, &x), TRIT_OK);
    cr_assert_eq(x, 1e-5);
    cr_assert_eq(json_get_float(&f.config, "rope_theta", 0, &x), TRIT_OK);
    cr_assert_eq(x, 500000.0);
    cr_assert_eq(json_get_bool(&f.config, "tie_word_embeddings", false, &b), TRIT_OK);
    cr_assert(b);
    cr_assert_eq(json_get_str(&f.config, "hidden_act", NULL, &s), TRIT_OK);
    cr_assert_str_eq(s, "relu2");
    cr_assert_eq(json_get_str(&f.config, "architectures[0]", NULL, &s), TRIT_OK);
    cr_assert_str_eq(s, "BitNetForCausalLM");
    cr_assert_eq(json_get_str(&f.config, "quantization_config.linear_class", "bitlinear", &s), TRIT_OK);
    cr_assert_str_eq(s, "autobitlinear");
    cr_assert_eq(json_get_str(&f.config, "quantization_config.quantization_mode", NULL, &s), TRIT_OK);
    cr_assert_str_eq(s, "offline");

    /* Tensors: dtypes as stored, bytes as written. */
    const struct st_tensor *t = hf_find(&f, "model.layers.0.self_attn.q_proj.weight");
    cr_assert_not_null(t);
    cr_assert_eq(t->dtype, ST_U8);
    cr_assert(t->n_dims == 2 && t->shape[0] == 2 && t->shape[1] == 8);
    for (int64_t i = 0; i < f.n_tensors; i++) {
        check_fixture_bytes(f.tensors[i].tensor);
        cr_assert_eq(f.tensors[i].shard, 0);
        if (i) cr_assert_lt(strcmp(f.tensors[i - 1].tensor->name, f.tensors[i].tensor->name), 0);
    }
    cr_assert_null(hf_find(&f, "model.layers.1.self_attn.q_proj.weight"));
    cr_assert_eq(hf_get(&f, "lm_head.weight", &t), TRIT_ERR_NOT_FOUND);
    expect_message("'lm_head.weight'");

    struct hf_tokenizer_config tc;
    cr_assert_eq(hf_folder_tokenizer_config(&f, &tc), TRIT_OK, "%s", trit_last_error());
    cr_assert_str_eq(tc.bos_token, "<|begin_of_text|>");
    cr_assert_str_eq(tc.eos_token, "<|eot_id|>");
    cr_assert(tc.has_add_bos_token && tc.add_bos_token);
    cr_assert_not(tc.has_add_eos_token);
    cr_assert_not_null(tc.chat_template);
    cr_assert_not_null(strstr(tc.chat_template, "{{ 'Assistant: ' }}"));
    cr_assert_not_null(strstr(tc.chat_template, "<|eot_id|>"));
    hf_tokenizer_config_free(&tc);
    hf_tokenizer_config_free(&tc);

    hf_folder_close(&f);
    cr_assert_null(f.shards);
    hf_folder_close(&f);
    hf_folder_close(NULL);
}

Test(hf_folder, sharded_folder) {
    const char *dir = test_data_path("hf/tiny-sharded");
    struct hf_folder f;
    cr_assert_eq(hf_folder_open(dir, &f), TRIT_OK, "%s", trit_last_error());
    cr_assert(f.sharded);
    cr_assert_eq(f.n_shards, 2); /* five index entries, two files, each opened once */
    cr_assert_eq(f.n_tensors, 5);
    const char *in_first[] = {"model.embed_tokens.weight", "model.layers.0.mlp.down_proj.weight",
                              "model.layers.0.mlp.down_proj.weight_scale"};
    const char *in_second[] = {"model.norm.weight", "lm_head.weight"};
    for (int64_t i = 0; i < f.n_tensors; i++) {
        const struct hf_tensor_ref *r = &f.tensors[i];
        bool first = false;
        for (int k = 0; k < 3; k++) first |= strcmp(r->tensor->name, in_first[k]) == 0;
        const char *want = first ? "model-00001-of-00002.safetensors" : "model-00002-of-00002.safetensors";
        cr_assert_not_null(strstr(f.shards[r->shard].label, want), "%s in %s", r->tensor->name,
                           f.shards[r->shard].label);
        check_fixture_bytes(r->tensor);
        cr_assert_eq(hf_find(&f, r->tensor->name), r->tensor);
    }
    for (int k = 0; k < 2; k++) cr_assert_not_null(hf_find(&f, in_second[k]));
    cr_assert_eq(hf_find(&f, "lm_head.weight")->dtype, ST_BF16);

    /* config.json repeats "quantization_config"; the last one (without linear_class) wins, as in
     * Python, so the class falls back to the default. */
    const char *s;
    cr_assert_eq(json_get_str(&f.config, "quantization_config.linear_class", "bitlinear", &s), TRIT_OK);
    cr_assert_str_eq(s, "bitlinear");
    const cJSON *node;
    cr_assert_eq(json_find(&f.config, "rope_scaling", &node), TRIT_OK); /* null reads as absent */
    cr_assert_null(node);
    double eps;
    cr_assert_eq(json_get_float(&f.config, "rms_norm_eps", 1e-5, &eps), TRIT_OK);
    cr_assert_eq(eps, 1e-6);
    int64_t head_dim;
    cr_assert_eq(json_get_int(&f.config, "head_dim", 0, 1, 1024, &head_dim), TRIT_OK);
    cr_assert_eq(head_dim, 4);

    /* tokenizer_config.json: an AddedToken object, a list of named templates. */
    struct hf_tokenizer_config tc;
    cr_assert_eq(hf_folder_tokenizer_config(&f, &tc), TRIT_OK, "%s", trit_last_error());
    cr_assert_str_eq(tc.bos_token, "<s>");
    cr_assert_str_eq(tc.eos_token, "</s>");
    cr_assert_str_eq(tc.chat_template, "{{ messages[0]['content'] }}");
    cr_assert_not(tc.has_add_bos_token);
    hf_tokenizer_config_free(&tc);
    hf_folder_close(&f);
}

/* ---- config getters ----------------------------------------------------------------------- */

Test(hf_config, defaults_and_types) {
    struct json_doc doc = config_of("{\"hidden_size\": 2560, \"rope_theta\": 10000, \"rms_norm_eps\": 1e-05,"
                                    " \"hidden_act\": \"silu\", \"tie_word_embeddings\": false, \"head_dim\": null,"
                                    " \"architectures\": [\"LlamaForCausalLM\"], \"vocab_size\": 4.0,"
                                    " \"Hidden_Size\": 1, \"quantization_config\": {\"quant_method\": \"bitnet\"}}");
    int64_t v;
    double x;
    bool b;
    const char *s;
    cr_assert_eq(json_get_int(&doc, "hidden_size", -1, 1, 1 << 20, &v), TRIT_OK);
    cr_assert_eq(v, 2560);
    cr_assert_eq(json_get_int(&doc, "vocab_size", -1, 1, INT64_MAX, &v), TRIT_OK); /* 4.0 is an integer */
    cr_assert_eq(v, 4);
    cr_assert_eq(json_get_int(&doc, "num_hidden_layers", 30, 1, 1000, &v), TRIT_OK); /* missing */
    cr_assert_eq(v, 30);
    cr_assert_eq(json_get_int(&doc, "head_dim", 128, 1, 1000, &v), TRIT_OK); /* null */
    cr_assert_eq(v, 128);
    cr_assert_eq(json_get_float(&doc, "rope_theta", 0, &x), TRIT_OK); /* an integer reads as a float */
    cr_assert_eq(x, 10000.0);
    cr_assert_eq(json_get_float(&doc, "rms_norm_eps", 0, &x), TRIT_OK);
    cr_assert_eq(x, 1e-5);
    cr_assert_eq(json_get_float(&doc, "max_position_embeddings", 2048, &x), TRIT_OK);
    cr_assert_eq(x, 2048);
    cr_assert_eq(json_get_bool(&doc, "tie_word_embeddings", true, &b), TRIT_OK);
    cr_assert_not(b);
    cr_assert_eq(json_get_bool(&doc, "attention_bias", true, &b), TRIT_OK);
    cr_assert(b);
    cr_assert_eq(json_get_str(&doc, "hidden_act", NULL, &s), TRIT_OK);
    cr_assert_str_eq(s, "silu");
    cr_assert_eq(json_get_str(&doc, "model_type", "llama", &s), TRIT_OK);
    cr_assert_str_eq(s, "llama");
    cr_assert_eq(json_get_str(&doc, "architectures[0]", NULL, &s), TRIT_OK);
    cr_assert_str_eq(s, "LlamaForCausalLM");
    cr_assert_eq(json_get_str(&doc, "architectures[1]", "none", &s), TRIT_OK); /* past the end */
    cr_assert_str_eq(s, "none");
    cr_assert_eq(json_get_str(&doc, "quantization_config.linear_class", "bitlinear", &s), TRIT_OK);
    cr_assert_str_eq(s, "bitlinear");
    cr_assert_eq(json_get_str(&doc, "rope_scaling.type", "default", &s), TRIT_OK); /* parent missing */
    cr_assert_str_eq(s, "default");
    cr_assert_eq(json_require(&doc, "hidden_size"), TRIT_OK);
    cr_assert_eq(json_require(&doc, "intermediate_size"), TRIT_ERR_NOT_FOUND);
    expect_message("config.json: required key 'intermediate_size' is missing");
    cr_assert_eq(json_require(&doc, "head_dim"), TRIT_ERR_NOT_FOUND);
    json_doc_free(&doc);
    json_doc_free(&doc);
    json_doc_free(NULL);
}

Test(hf_config, keys_are_exact_and_last_wins) {
    struct json_doc doc = config_of("{\"Hidden_Size\": 1, \"a\": 1, \"a\": 2, \"q\": {\"m\": \"x\"}, \"q\": 5}");
    int64_t v;
    cr_assert_eq(json_get_int(&doc, "hidden_size", 7, INT64_MIN, INT64_MAX, &v), TRIT_OK);
    cr_assert_eq(v, 7); /* no case-insensitive match */
    cr_assert_eq(json_get_int(&doc, "a", 0, INT64_MIN, INT64_MAX, &v), TRIT_OK);
    cr_assert_eq(v, 2);
    const char *s;
    cr_assert_eq(json_get_str(&doc, "q.m", NULL, &s), TRIT_ERR_FORMAT); /* the last "q" is a number */
    expect_message("'q' is a JSON number, expected an object");
    json_doc_free(&doc);
}

Test(hf_config, wrong_types_name_the_key) {
    struct json_doc doc = config_of("{\"hidden_size\": \"2560\", \"num_hidden_layers\": 2.5, \"vocab_size\": -3,"
                                    " \"big\": 18014398509481984, \"rope_theta\": \"1e4\", \"tie_word_embeddings\": 1,"
                                    " \"hidden_act\": [\"silu\"], \"quantization_config\": \"bitnet\","
                                    " \"architectures\": {\"0\": \"x\"}, \"model_type\": true}");
    int64_t v = 99;
    double x;
    bool b;
    const char *s;
    cr_assert_eq(json_get_int(&doc, "hidden_size", 0, 1, INT64_MAX, &v), TRIT_ERR_FORMAT);
    expect_message("config.json: 'hidden_size' must be an integer, found string \"2560\"");
    cr_assert_eq(v, 0); /* *out holds the default after a failure */
    cr_assert_eq(json_get_int(&doc, "num_hidden_layers", 0, 1, INT64_MAX, &v), TRIT_ERR_FORMAT);
    expect_message("'num_hidden_layers' must be an integer");
    expect_message("2.5");
    cr_assert_eq(json_get_int(&doc, "vocab_size", 0, 1, INT64_MAX, &v), TRIT_ERR_FORMAT);
    expect_message("'vocab_size' is -3, outside the valid range [1, ");
    cr_assert_eq(json_get_int(&doc, "vocab_size", 0, INT64_MIN, INT64_MAX, &v), TRIT_OK);
    cr_assert_eq(v, -3);
    cr_assert_eq(json_get_int(&doc, "big", 0, INT64_MIN, INT64_MAX, &v), TRIT_ERR_FORMAT); /* > 2^53 */
    expect_message("'big'");
    cr_assert_eq(json_get_float(&doc, "rope_theta", 0, &x), TRIT_ERR_FORMAT);
    expect_message("'rope_theta' must be a finite number, found string \"1e4\"");
    cr_assert_eq(json_get_bool(&doc, "tie_word_embeddings", false, &b), TRIT_ERR_FORMAT);
    expect_message("'tie_word_embeddings' must be true or false, found number 1");
    cr_assert_eq(json_get_str(&doc, "hidden_act", NULL, &s), TRIT_ERR_FORMAT);
    expect_message("'hidden_act' must be a string, found array");
    cr_assert_eq(json_get_str(&doc, "model_type", NULL, &s), TRIT_ERR_FORMAT);
    expect_message("'model_type' must be a string, found true");
    cr_assert_eq(json_get_str(&doc, "quantization_config.linear_class", NULL, &s), TRIT_ERR_FORMAT);
    expect_message("'quantization_config' is a JSON string, expected an object (reading "
                   "'quantization_config.linear_class')");
    cr_assert_eq(json_get_str(&doc, "architectures[0]", NULL, &s), TRIT_ERR_FORMAT);
    expect_message("'architectures' is a JSON object, expected an array");
    /* malformed paths are the caller's bug */
    cr_assert_eq(json_get_str(&doc, "a..b", NULL, &s), TRIT_ERR_INVALID_ARG);
    cr_assert_eq(json_get_str(&doc, "a[x]", NULL, &s), TRIT_ERR_INVALID_ARG);
    cr_assert_eq(json_get_str(&doc, "a.", NULL, &s), TRIT_ERR_INVALID_ARG);
    cr_assert_eq(json_get_str(&doc, "", NULL, &s), TRIT_ERR_INVALID_ARG);
    json_doc_free(&doc);
}

Test(hf_config, parse_errors) {
    struct json_doc doc;
    const char *bad = "{\n  \"hidden_size\": 8,\n  \"vocab_size\": ,\n}";
    cr_assert_eq(hf_config_parse(bad, strlen(bad), "config.json", &doc), TRIT_ERR_FORMAT);
    expect_message("config.json: invalid JSON at byte");
    expect_message("(line 3, column");
    cr_assert_null(doc.root);
    cr_assert_eq(hf_config_parse("[1]", 3, "config.json", &doc), TRIT_ERR_FORMAT);
    expect_message("the top level is a JSON array, expected an object");
    cr_assert_null(doc.root);
    cr_assert_eq(hf_config_parse("{} {}", 5, "config.json", &doc), TRIT_ERR_FORMAT);
    expect_message("after the JSON value at byte 3");
    cr_assert_eq(hf_config_parse("", 0, "config.json", &doc), TRIT_ERR_FORMAT);
    cr_assert_eq(hf_config_parse("NaN", 3, "config.json", &doc), TRIT_ERR_FORMAT);
    /* Not NUL-terminated: only len bytes are read ("{}" of "{}x"). */
    cr_assert_eq(hf_config_parse("{}x", 2, "config.json", &doc), TRIT_OK);
    json_doc_free(&doc);
    /* Deep nesting is refused by cJSON's limit rather than overflowing the stack. */
    enum { DEPTH = 5000 };
    char *deep = malloc(2 * DEPTH + 1);
    for (int i = 0; i < DEPTH; i++) {
        deep[i] = '[';
        deep[2 * DEPTH - 1 - i] = ']';
    }
    deep[2 * DEPTH] = '\0';
    cr_assert_eq(hf_config_parse(deep, 2 * DEPTH, "config.json", &doc), TRIT_ERR_FORMAT);
    free(deep);
}

Test(hf_config, load_from_files) {
    tmp_make();
    struct json_doc doc;
    cr_assert_eq(hf_config_load(tmp_path("config.json"), &doc), TRIT_ERR_NOT_FOUND);
    tmp_write("config.json", "{\"hidden_size\": 8}\n");
    cr_assert_eq(hf_config_load(tmp_path("config.json"), &doc), TRIT_OK, "%s", trit_last_error());
    cr_assert_str_eq(doc.name, tmp_path("config.json"));
    json_doc_free(&doc);
    /* The size cap: one byte over is refused before reading. */
    FILE *fp = fopen(tmp_path("big.json"), "wb");
    cr_assert_not_null(fp);
    fputc('[', fp);
    for (size_t i = 1; i < HF_CONFIG_MAX_BYTES; i++) fputc(' ', fp);
    fputc(']', fp);
    fclose(fp);
    cr_assert_eq(hf_config_load(tmp_path("big.json"), &doc), TRIT_ERR_FORMAT);
    expect_message("-byte cap");
    cr_assert_eq(json_doc_load(tmp_path("big.json"), HF_CONFIG_MAX_BYTES + 1, &doc), TRIT_OK);
    json_doc_free(&doc);
    cr_assert_eq(hf_config_load(tmp_dir, &doc), TRIT_ERR_IO); /* a directory */
    tmp_cleanup();
}

Test(hf_config, tokenizer_config_fields) {
    struct hf_tokenizer_config tc;
    const char *text = "{\"bos_token\": null, \"eos_token\": {\"content\": \"<|eot_id|>\"}, \"add_bos_token\": false,"
                       " \"add_eos_token\": true, \"chat_template\": [{\"name\": \"tool_use\", \"template\": \"t\"}]}";
    cr_assert_eq(hf_tokenizer_config_parse(text, strlen(text), NULL, &tc), TRIT_OK, "%s", trit_last_error());
    cr_assert_null(tc.bos_token);
    cr_assert_str_eq(tc.eos_token, "<|eot_id|>");
    cr_assert(tc.has_add_bos_token && !tc.add_bos_token);
    cr_assert(tc.has_add_eos_token && tc.add_eos_token);
    cr_assert_null(tc.chat_template); /* only a named template, no "default" */
    hf_tokenizer_config_free(&tc);

    const char *bad[][2] = {
        {"{\"bos_token\": 5}", "'bos_token' must be a string or an object with a string 'content'"},
        {"{\"eos_token\": {\"text\": \"x\"}}", "'eos_token'"},
        {"{\"add_bos_token\": \"yes\"}", "'add_bos_token' must be true or false"},
        {"{\"chat_template\": 3}", "'chat_template' is a JSON number"},
        {"{\"chat_template\": [\"x\"]}", "'chat_template' list entries"},
        {"[]", "expected an object"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        cr_assert_eq(hf_tokenizer_config_parse(bad[i][0], strlen(bad[i][0]), "tokenizer_config.json", &tc),
                     TRIT_ERR_FORMAT, "%s", bad[i][0]);
        expect_message(bad[i][1]);
        cr_assert(tc.chat_template == NULL && tc.bos_token == NULL && tc.eos_token == NULL);
    }
    /* The llama3 tokenizer_config.json shipped with the tokenizer tests. */
    cr_assert_eq(hf_tokenizer_config_load(test_data_path("tokenizers/llama3/tokenizer_config.json"), &tc), TRIT_OK,
                 "%s", trit_last_error());
    cr_assert_str_eq(tc.bos_token, "<|begin_of_text|>");
    cr_assert_str_eq(tc.eos_token, "<|end_of_text|>");
    cr_assert_not_null(tc.chat_template);
    cr_assert_not_null(strstr(tc.chat_template, "<|start_header_id|>"));
    hf_tokenizer_config_free(&tc);
}

/* ---- broken folders ----------------------------------------------------------------------- */

/* The sharded fixture copied to a scratch folder, with its own index text. */
static void sharded_with_index(const char *index_json) {
    tmp_copy("hf/tiny-sharded/config.json", "config.json");
    tmp_copy("hf/tiny-sharded/model-00001-of-00002.safetensors", "model-00001-of-00002.safetensors");
    tmp_copy("hf/tiny-sharded/model-00002-of-00002.safetensors", "model-00002-of-00002.safetensors");
    if (index_json) tmp_write("model.safetensors.index.json", index_json);
}

#define S1 "model-00001-of-00002.safetensors"
#define S2 "model-00002-of-00002.safetensors"

Test(hf_folder, shard_names_stay_in_the_folder) {
    tmp_make();
    const char *names[] = {"../" S1, "sub/" S1, "..", "a..b.safetensors", "", "C:\\\\" S1};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        char index[512];
        snprintf(index, sizeof index, "{\"weight_map\": {\"model.norm.weight\": \"" S2 "\", \"lm_head.weight\": \"%s\"}}",
                 names[i]);
        sharded_with_index(index);
        expect_folder_error(TRIT_ERR_FORMAT, "is not a file name in this folder");
        expect_message("weight_map['lm_head.weight']");
    }
    tmp_cleanup();
}

Test(hf_folder, index_inconsistencies) {
    tmp_make();
    /* listed for a shard that does not hold it */
    sharded_with_index("{\"weight_map\": {\"model.norm.weight\": \"" S1 "\"}}");
    expect_folder_error(TRIT_ERR_FORMAT, "tensor 'model.norm.weight' is listed for shard '" S1
                                         "', which does not contain it");
    /* listed but in no shard at all */
    sharded_with_index("{\"weight_map\": {\"model.norm.weight\": \"" S2 "\", \"ghost.weight\": \"" S2 "\"}}");
    expect_folder_error(TRIT_ERR_FORMAT, "'ghost.weight'");
    /* a shard file that is missing */
    sharded_with_index("{\"weight_map\": {\"model.norm.weight\": \"model-00003-of-00003.safetensors\"}}");
    expect_folder_error(TRIT_ERR_NOT_FOUND, "model-00003-of-00003.safetensors");
    /* one tensor listed twice */
    sharded_with_index("{\"weight_map\": {\"lm_head.weight\": \"" S2 "\", \"lm_head.weight\": \"" S1 "\"}}");
    expect_folder_error(TRIT_ERR_FORMAT, "tensor 'lm_head.weight' is listed twice");
    /* weight_map missing, of the wrong type, empty; the index not JSON */
    sharded_with_index("{\"metadata\": {}}");
    expect_folder_error(TRIT_ERR_FORMAT, "'weight_map' is missing");
    sharded_with_index("{\"weight_map\": [\"" S1 "\"]}");
    expect_folder_error(TRIT_ERR_FORMAT, "'weight_map' is a JSON array");
    sharded_with_index("{\"weight_map\": {}}");
    expect_folder_error(TRIT_ERR_FORMAT, "'weight_map' is empty");
    sharded_with_index("{\"weight_map\": {\"lm_head.weight\": 2}}");
    expect_folder_error(TRIT_ERR_FORMAT, "weight_map['lm_head.weight'] is a JSON number");
    sharded_with_index("{\"weight_map\": ");
    expect_folder_error(TRIT_ERR_FORMAT, "model.safetensors.index.json: invalid JSON");
    /* a broken shard: its own error comes through */
    sharded_with_index("{\"weight_map\": {\"lm_head.weight\": \"" S2 "\"}}");
    tmp_write(S2, "short");
    expect_folder_error(TRIT_ERR_FORMAT, S2 ": 5 bytes, too short");
    tmp_cleanup();
}

Test(hf_folder, tensor_in_two_shards) {
    tmp_make();
    /* copy.safetensors holds the same three tensors as shard 1. */
    sharded_with_index("{\"weight_map\": {\"model.embed_tokens.weight\": \"" S1 "\","
                       " \"model.layers.0.mlp.down_proj.weight\": \"copy.safetensors\"}}");
    tmp_copy("hf/tiny-sharded/" S1, "copy.safetensors");
    expect_folder_error(TRIT_ERR_FORMAT, "is in two shards");
    expect_message("copy.safetensors");
    tmp_cleanup();
}

Test(hf_folder, missing_pieces) {
    tmp_make();
    struct hf_folder f;
    cr_assert_not(hf_is_folder(tmp_dir));
    expect_folder_error(TRIT_ERR_NOT_FOUND, "no config.json");
    cr_assert_eq(hf_folder_open("/nonexistent/trit-model", &f), TRIT_ERR_NOT_FOUND);
    cr_assert_not(hf_is_folder("/nonexistent/trit-model"));
    cr_assert_not(hf_is_folder(test_data_path("hf/tiny-single/config.json"))); /* a file, not a folder */

    tmp_write("config.json", "{\"hidden_size\": 8}");
    cr_assert(hf_is_folder(tmp_dir));
    expect_folder_error(TRIT_ERR_NOT_FOUND, "no model.safetensors or model.safetensors.index.json");
    tmp_write("pytorch_model.bin", "PK");
    expect_folder_error(TRIT_ERR_UNSUPPORTED, "pytorch_model.bin");
    tmp_remove("pytorch_model.bin");

    tmp_write("config.json", "[]");
    tmp_copy("hf/tiny-single/model.safetensors", "model.safetensors");
    expect_folder_error(TRIT_ERR_FORMAT, "config.json: the top level is a JSON array");

    /* model.safetensors wins over an index, as in transformers; a trailing slash is fine. */
    tmp_copy("hf/tiny-single/config.json", "config.json");
    tmp_write("model.safetensors.index.json", "not json");
    char with_slash[128];
    snprintf(with_slash, sizeof with_slash, "%s/", tmp_dir);
    cr_assert_eq(hf_folder_open(with_slash, &f), TRIT_OK, "%s", trit_last_error());
    cr_assert_not(f.sharded);
    char want[160];
    snprintf(want, sizeof want, "%s/model.safetensors", tmp_dir);
    cr_assert_str_eq(f.shards[0].label, want);
    hf_folder_close(&f);
    tmp_cleanup();
}

Test(hf_folder, chat_template_file_overrides) {
    tmp_make();
    tmp_copy("hf/tiny-single/config.json", "config.json");
    tmp_copy("hf/tiny-single/model.safetensors", "model.safetensors");
    struct hf_folder f;
    struct hf_tokenizer_config tc;
    /* neither file: empty, not an error */
    cr_assert_eq(hf_folder_open(tmp_dir, &f), TRIT_OK, "%s", trit_last_error());
    cr_assert_eq(hf_folder_tokenizer_config(&f, &tc), TRIT_OK);
    cr_assert(tc.chat_template == NULL && tc.bos_token == NULL && !tc.has_add_bos_token);
    hf_folder_close(&f);

    tmp_copy("hf/tiny-single/tokenizer_config.json", "tokenizer_config.json");
    tmp_write("chat_template.jinja", "{{ 'from the jinja file' }}");
    cr_assert_eq(hf_folder_open(tmp_dir, &f), TRIT_OK, "%s", trit_last_error());
    cr_assert_not_null(f.chat_template_path);
    cr_assert_eq(hf_folder_tokenizer_config(&f, &tc), TRIT_OK, "%s", trit_last_error());
    cr_assert_str_eq(tc.chat_template, "{{ 'from the jinja file' }}");
    cr_assert_str_eq(tc.bos_token, "<|begin_of_text|>"); /* the rest still from tokenizer_config.json */
    hf_tokenizer_config_free(&tc);
    hf_folder_close(&f);

    /* a broken tokenizer_config.json is reported, not skipped */
    tmp_write("tokenizer_config.json", "{\"bos_token\": 1}");
    cr_assert_eq(hf_folder_open(tmp_dir, &f), TRIT_OK);
    cr_assert_eq(hf_folder_tokenizer_config(&f, &tc), TRIT_ERR_FORMAT);
    expect_message("tokenizer_config.json: 'bos_token'");
    hf_folder_close(&f);
    tmp_cleanup();
}

/* ---- qwen3: group-ternary float weights (host/model/model_hf.c) ---------------------------- */

#define QWEN3_FIXTURE "fixtures/qwen3-ternary-tiny"

/* The fixture's config.json, with `rope` (the theta keys) and `extra` members. */
static void write_qwen3_config(const char *rope, const char *extra) {
    char text[2048];
    snprintf(text, sizeof text,
             "{\"architectures\": [\"Qwen3ForCausalLM\"], \"model_type\": \"qwen3\", \"vocab_size\": 300, "
             "\"hidden_size\": 128, \"intermediate_size\": 192, \"num_hidden_layers\": 2, \"num_attention_heads\": 4, "
             "\"num_key_value_heads\": 2, \"head_dim\": 32, \"hidden_act\": \"silu\", \"max_position_embeddings\": 128, "
             "\"rms_norm_eps\": 1e-06, \"tie_word_embeddings\": true, %s%s%s}",
             rope, extra[0] ? ", " : "", extra);
    tmp_write("config.json", text);
}

static void expect_model_error(enum trit_status want, const char *needle) {
    struct trit_model m;
    enum trit_status st = trit_model_load_hf(tmp_dir, NULL, &m);
    cr_assert_eq(st, want, "got '%s' (%s)", trit_status_str(st), trit_last_error());
    expect_message(needle);
    cr_assert(m.layers == NULL && m.notes == NULL && m.mapping == NULL);
}

Test(hf_qwen3, group_ternary_weights_load_exactly) {
    const char *dir = test_data_path(QWEN3_FIXTURE);
    struct trit_model m;
    cr_assert_eq(trit_model_load_hf(dir, NULL, &m), TRIT_OK, "%s", trit_last_error());
    const struct trit_hparams *hp = &m.hp;
    cr_assert_eq(hp->family, TRIT_FAMILY_QWEN3);
    cr_assert(hp->qk_norm && !hp->sub_norms && hp->tied_embeddings);
    cr_assert_eq(hp->act_block, TRIT_GROUP_UNIT);
    cr_assert_eq(hp->act, TRIT_ACT_SILU);
    cr_assert_eq(hp->rope_style, TRIT_ROPE_NEOX);
    cr_assert(hp->dim == 128 && hp->ffn_dim == 192 && hp->n_heads == 4 && hp->n_kv_heads == 2 && hp->head_dim == 32);
    cr_assert_eq(hp->rope_theta, 1e6f);
    cr_assert_eq(hp->norm_eps, 1e-6f);

    /* every weight of every linear is t * d of its group, bit for bit against the file's fp16 */
    struct hf_folder f;
    cr_assert_eq(hf_folder_open(dir, &f), TRIT_OK, "%s", trit_last_error());
    for (int64_t i = 0; i < hp->n_layers; i++) {
        const struct trit_layer *l = &m.layers[i];
        cr_assert(l->attn_q_norm && l->attn_k_norm, "layer %lld: q/k norms missing", (long long)i);
        for (int k = 0; k < TRIT_N_W; k++) {
            const struct trit_ternary *w = &l->w[k];
            cr_assert_eq(w->group, 64, "layer %lld %s: group %lld", (long long)i, trit_weights[k].what, (long long)w->group);
            cr_assert(w->scale == 1.0f && w->scale_kind == TRIT_SCALE_MUL);
            char name[128];
            snprintf(name, sizeof name, "model.layers.%lld.%s.weight", (long long)i, trit_weights[k].hf);
            const struct st_tensor *t = hf_find(&f, name);
            cr_assert_not_null(t, "%s", name);
            cr_assert_eq(t->dtype, ST_F16);
            const int64_t ng = trit_ternary_n_groups(w);
            for (int64_t r = 0; r < w->n_rows; r++)
                for (int64_t c = 0; c < w->n_cols; c++) {
                    uint16_t h;
                    memcpy(&h, t->data + 2 * (r * w->n_cols + c), 2);
                    const float want = trit_fp16_to_fp32(h);
                    const float got = (float)trit_ternary_get(w, r, c) * w->group_scales[r * ng + c / w->group];
                    cr_assert(got == want, "%s (%lld, %lld): t * d = %g, file %g", name, (long long)r, (long long)c,
                              (double)got, (double)want);
                }
        }
    }
    hf_folder_close(&f);
    bool noted = false;
    for (int64_t i = 0; i < m.n_notes; i++)
        if (strcmp(m.notes[i].name, "model.layers.0.self_attn.q_proj.weight") == 0) {
            cr_assert_str_eq(m.notes[i].kind, "F16 -> group 64");
            noted = true;
        }
    cr_assert(noted);
    trit_model_release(&m);
}

Test(hf_qwen3, config_variants) {
    tmp_make();
    tmp_copy(QWEN3_FIXTURE "/model.safetensors", "model.safetensors");
    struct trit_model m;

    /* transformers 5 writes theta inside rope_parameters */
    write_qwen3_config("\"rope_parameters\": {\"rope_type\": \"default\", \"rope_theta\": 1000000.0}", "");
    cr_assert_eq(trit_model_load_hf(tmp_dir, NULL, &m), TRIT_OK, "%s", trit_last_error());
    cr_assert_eq(m.hp.rope_theta, 1e6f);
    trit_model_release(&m);

    /* a group size from the config is used as is */
    write_qwen3_config("\"rope_theta\": 1000000.0", "\"quantization_config\": {\"group_size\": 64}");
    cr_assert_eq(trit_model_load_hf(tmp_dir, NULL, &m), TRIT_OK, "%s", trit_last_error());
    cr_assert_eq(m.layers[1].w[TRIT_W_DOWN].group, 64);
    trit_model_release(&m);
    write_qwen3_config("\"rope_theta\": 1000000.0", "\"quantization_config\": {\"group_size\": 128}");
    expect_model_error(TRIT_ERR_UNSUPPORTED, "group_size = 128");
    expect_message("model.layers.0.self_attn.q_proj.weight");
    write_qwen3_config("\"rope_theta\": 1000000.0", "\"quantization_config\": {\"group_size\": 96}");
    expect_model_error(TRIT_ERR_UNSUPPORTED, "group_size 96 is not a multiple of 64");

    write_qwen3_config("\"rope_theta\": 1000000.0", "\"use_sliding_window\": true");
    expect_model_error(TRIT_ERR_UNSUPPORTED, "use_sliding_window");
    write_qwen3_config("\"rope_parameters\": {\"rope_type\": \"yarn\", \"rope_theta\": 1000000.0, \"factor\": 4.0}", "");
    expect_model_error(TRIT_ERR_UNSUPPORTED, "rope_type is 'yarn'");
    write_qwen3_config("\"rope_theta\": 1000000.0", "\"hidden_act\": \"gelu\"");
    expect_model_error(TRIT_ERR_UNSUPPORTED, "hidden_act 'gelu'");
    tmp_cleanup();
}

/* The byte offset of `tensor`'s data in the scratch folder's model.safetensors. */
static long st_data_offset(const char *tensor) {
    FILE *fp = fopen(tmp_path("model.safetensors"), "rb");
    cr_assert_not_null(fp);
    uint64_t n_header = 0;
    unsigned char len8[8];
    cr_assert_eq(fread(len8, 1, 8, fp), 8u);
    for (int b = 7; b >= 0; b--) n_header = (n_header << 8) | len8[b];
    cr_assert_lt(n_header, 1u << 20);
    char *header = malloc(n_header + 1);
    cr_assert_eq(fread(header, 1, n_header, fp), n_header);
    fclose(fp);
    struct json_doc doc;
    cr_assert_eq(json_doc_parse(header, n_header, "header", &doc), TRIT_OK, "%s", trit_last_error());
    free(header);
    int64_t begin = -1;
    const cJSON *entry = json_member(doc.root, tensor);
    cr_assert_not_null(entry, "%s", tensor);
    cr_assert(json_int_value(cJSON_GetArrayItem(json_member(entry, "data_offsets"), 0), &begin));
    json_doc_free(&doc);
    cr_assert_geq(begin, 0);
    return (long)(8 + n_header + (uint64_t)begin);
}

/* Element i of an F16 tensor of the scratch model.safetensors: read, and write when *set. */
static float st_f16_at(long offset, int64_t i, const float *set) {
    FILE *fp = fopen(tmp_path("model.safetensors"), "r+b");
    cr_assert_not_null(fp);
    uint16_t h;
    cr_assert_eq(fseek(fp, offset + 2 * (long)i, SEEK_SET), 0);
    cr_assert_eq(fread(&h, 2, 1, fp), 1u);
    if (set) {
        h = trit_fp32_to_fp16(*set);
        cr_assert_eq(fseek(fp, offset + 2 * (long)i, SEEK_SET), 0);
        cr_assert_eq(fwrite(&h, 2, 1, fp), 1u);
    }
    fclose(fp);
    return trit_fp16_to_fp32(h);
}

/* One weight that is not +-d, 0 or 2d in its group makes the folder a float model: refused. */
Test(hf_qwen3, float_weights_refused) {
    tmp_make();
    tmp_copy(QWEN3_FIXTURE "/config.json", "config.json");
    tmp_copy(QWEN3_FIXTURE "/model.safetensors", "model.safetensors");
    const long base = st_data_offset("model.layers.1.self_attn.q_proj.weight");
    /* the first nonzero weight of row 0 becomes 0.75 of itself: neither d, 2d nor 0 */
    int64_t c = 0;
    while (st_f16_at(base, c, NULL) == 0.0f) c++;
    const float v = 0.75f * st_f16_at(base, c, NULL);
    st_f16_at(base, c, &v);
    expect_model_error(TRIT_ERR_UNSUPPORTED, "model.layers.1.self_attn.q_proj.weight");
    expect_message("not ternary in groups of 128 or 64");
    expect_message("ternary models only");
    tmp_cleanup();
}

/* Q2_0's fourth code: a weight of exactly +2d in a group of +-d is t = +2. */
Test(hf_qwen3, plus_two_code_accepted) {
    tmp_make();
    tmp_copy(QWEN3_FIXTURE "/config.json", "config.json");
    tmp_copy(QWEN3_FIXTURE "/model.safetensors", "model.safetensors");
    const long base = st_data_offset("model.layers.0.mlp.down_proj.weight");
    int64_t c = 0; /* row 0's first positive weight, +d, becomes 2d */
    while (!(st_f16_at(base, c, NULL) > 0.0f)) c++;
    const float d = st_f16_at(base, c, NULL), two_d = 2.0f * d;
    st_f16_at(base, c, &two_d);
    struct trit_model m;
    cr_assert_eq(trit_model_load_hf(tmp_dir, NULL, &m), TRIT_OK, "%s", trit_last_error());
    const struct trit_ternary *w = &m.layers[0].w[TRIT_W_DOWN];
    cr_assert_eq(trit_ternary_get(w, 0, c), 2);
    cr_assert_eq(w->group_scales[c / w->group], d);
    trit_model_release(&m);
    tmp_cleanup();
}
