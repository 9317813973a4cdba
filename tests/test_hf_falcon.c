/*
 * test_hf_falcon.c: Falcon3-*-1.58bit and Falcon-E Hugging Face folders (issue 17, part 5), and the
 * BitNet quantization_config options trit must refuse rather than misread (docs/formats.md
 * section 1, "Falcon3 and Falcon-E").
 *
 * No Falcon file is available here (no network). What is checked: a folder whose config.json has
 * every field the published Falcon3 configs have (tiiuae/Falcon3-1B-Instruct-1.58bit and
 * Falcon3-3B/7B/10B-*-1.58bit config.json, quoted in docs/formats.md) over the weights of
 * tests/data/fixtures/llama-bitlinear-tiny (LlamaForCausalLM + BitLinear, whose logits
 * tests/test_parity.c checks against transformers) loads as that fixture does and gives the same
 * logits bit for bit; onebitllms' quantize_to_1bit, which made Falcon-E's packed checkpoints, writes
 * the same quantization_config. Each option that would change what the weights mean is refused by
 * name.
 *
 *   ctest --test-dir build -R test_hf_falcon
 */
#include <cjson/cJSON.h>
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io/hf.h"
#include "io/json.h"
#include "model/model.h"
#include "support.h"
#include "trit.h"

#define LLAMA_FIXTURE "fixtures/llama-bitlinear-tiny"
#define BITNET_FIXTURE "fixtures/bitnet-2b4t-tiny"
#define LATENT_FIXTURE "fixtures/bitnet-1bitllm-tiny"

TestSuite(hf_falcon, .init = test_tmp_make, .fini = test_tmp_remove);

/* ---- scratch folders ------------------------------------------------------------------------ */

static void *read_all(const char *path, size_t *n) {
    FILE *fp = fopen(path, "rb");
    cr_assert_not_null(fp, "cannot open %s", path);
    cr_assert_eq(fseek(fp, 0, SEEK_END), 0);
    long len = ftell(fp);
    cr_assert_geq(len, 0);
    rewind(fp);
    void *buf = malloc((size_t)len + 1);
    cr_assert_eq(fread(buf, 1, (size_t)len, fp), (size_t)len);
    fclose(fp);
    ((char *)buf)[len] = '\0';
    *n = (size_t)len;
    return buf;
}

static void write_all(const char *path, const void *data, size_t n) {
    FILE *fp = fopen(path, "wb");
    cr_assert_not_null(fp, "cannot create %s", path);
    cr_assert_eq(fwrite(data, 1, n, fp), n);
    fclose(fp);
}

/* tests/data/<fixture>/model.safetensors into the scratch folder. */
static void copy_weights(const char *fixture) {
    char src[512];
    snprintf(src, sizeof src, "%s/model.safetensors", test_data_path(fixture));
    size_t n;
    void *data = read_all(src, &n);
    write_all(test_tmp_path("model.safetensors"), data, n);
    free(data);
}

/* The fixture's config.json with `edit` applied to its parsed tree, as the scratch config.json. */
static void write_config(const char *fixture, void (*edit)(cJSON *root, const void *arg), const void *arg) {
    char src[512];
    snprintf(src, sizeof src, "%s/config.json", test_data_path(fixture));
    size_t n;
    char *text = read_all(src, &n);
    cJSON *root = cJSON_Parse(text);
    free(text);
    cr_assert_not_null(root);
    if (edit) edit(root, arg);
    char *out = cJSON_Print(root);
    write_all(test_tmp_path("config.json"), out, strlen(out));
    free(out);
    cJSON_Delete(root);
}

/* Replaces (or adds) a member given as a JSON text; "quantization_config.x" edits inside that object. */
struct member {
    const char *path;
    const char *json;
};
static void set_member(cJSON *root, const void *arg) {
    const struct member *m = arg;
    cJSON *obj = root;
    const char *key = m->path, *dot = strchr(key, '.');
    if (dot) {
        char head[64];
        snprintf(head, sizeof head, "%.*s", (int)(dot - key), key);
        obj = cJSON_GetObjectItemCaseSensitive(root, head);
        cr_assert(cJSON_IsObject(obj), "%s is not an object", head);
        key = dot + 1;
    }
    cJSON *v = cJSON_Parse(m->json);
    cr_assert_not_null(v, "bad JSON %s", m->json);
    if (cJSON_GetObjectItemCaseSensitive(obj, key)) cJSON_ReplaceItemInObjectCaseSensitive(obj, key, v);
    else cJSON_AddItemToObject(obj, key, v);
}

static void expect_message(const char *needle) {
    cr_assert_not_null(strstr(trit_last_error(), needle), "message '%s' lacks '%s'", trit_last_error(), needle);
}

static void expect_refused(enum trit_status want, const char *needle) {
    struct trit_model m;
    enum trit_status st = trit_model_load_hf(test_tmp_dir(), NULL, &m);
    cr_assert_eq(st, want, "got '%s' (%s)", trit_status_str(st), trit_last_error());
    expect_message(needle);
    cr_assert(m.layers == NULL && m.mapping == NULL);
}

/* ---- Falcon3: the published config fields ----------------------------------------------------- */

/* Every key of tiiuae/Falcon3-1B-Instruct-1.58bit's config.json (and the 3B/7B ones' "activation"
 * and "parallel_attn"), with the fixture's shapes and rope_theta (Falcon3's 1000042 is checked
 * apart, since it changes the logits). */
static void falcon3_fields(cJSON *root, const void *arg) {
    (void)arg;
    static const struct member keys[] = {
        {"_name_or_path", "\"/home/ec2-user/checkpoints/falcon3-1b-1bit/hf-1bit\""},
        {"activation", "\"swiglu\""},
        {"architectures", "[\"LlamaForCausalLM\"]"},
        {"attention_bias", "false"},
        {"attention_dropout", "0.0"},
        {"eos_token_id", "11"},
        {"hidden_act", "\"silu\""},
        {"initializer_range", "0.02"},
        {"is_bitnet_config", "true"},
        {"mlp_bias", "false"},
        {"model_type", "\"llama\""},
        {"parallel_attn", "false"},
        {"pretraining_tp", "1"},
        {"quantization_config", "{\"modules_to_not_convert\": [\"lm_head\"], \"quant_method\": \"bitnet\"}"},
        {"rms_norm_eps", "1e-06"},
        {"rope_scaling", "null"},
        {"tie_word_embeddings", "false"},
        {"torch_dtype", "\"bfloat16\""},
        {"transformers_version", "\"4.48.0.dev0\""},
        {"use_cache", "true"},
    };
    cJSON_DeleteItemFromObjectCaseSensitive(root, "bos_token_id"); /* the 1B-Instruct config has none */
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) set_member(root, &keys[i]);
}

/* Teacher-forced logits of the fixture's ids through the public API. (n_ids, n_vocab), malloc'd. */
static float *logits_of(const char *path, const int32_t *ids, int n_ids, int32_t *n_vocab) {
    trit_model *m = NULL;
    cr_assert_eq(trit_model_load(path, NULL, &m), TRIT_OK, "%s: %s", path, trit_last_error());
    *n_vocab = trit_model_n_vocab(m);
    struct trit_context_params cp = trit_context_default_params();
    cp.device = TRIT_DEVICE_CPU;
    cp.n_ctx = n_ids;
    cp.n_batch = n_ids;
    cp.n_threads = 2;
    cp.logits_all = true;
    trit_context *ctx = NULL;
    cr_assert_eq(trit_context_init(m, &cp, &ctx), TRIT_OK, "%s", trit_last_error());
    const float *logits;
    cr_assert_eq(trit_decode(ctx, ids, n_ids, &logits), TRIT_OK, "%s", trit_last_error());
    const size_t n = (size_t)n_ids * (size_t)*n_vocab;
    float *copy = malloc(n * sizeof *copy);
    memcpy(copy, logits, n * sizeof *copy);
    trit_context_free(ctx);
    trit_model_free(m);
    return copy;
}

Test(hf_falcon, falcon3_config_reads_as_llama_bitlinear) {
    copy_weights(LLAMA_FIXTURE);
    write_config(LLAMA_FIXTURE, falcon3_fields, NULL);

    struct hf_folder f;
    cr_assert_eq(hf_folder_open(test_tmp_dir(), &f), TRIT_OK, "%s", trit_last_error());
    cr_assert_not_null(strstr(trit_hf_config_family(&f.config), "Falcon3-*-1.58bit"), "%s",
                       trit_hf_config_family(&f.config));
    hf_folder_close(&f);

    struct trit_model m;
    cr_assert_eq(trit_model_load_hf(test_tmp_dir(), NULL, &m), TRIT_OK, "%s", trit_last_error());
    cr_assert_eq(m.hp.family, TRIT_FAMILY_LLAMA);
    cr_assert_eq(m.hp.rope_style, TRIT_ROPE_NEOX);
    cr_assert(!m.hp.sub_norms && !m.hp.qk_norm && !m.hp.tied_embeddings && m.hp.act == TRIT_ACT_SILU);
    cr_assert_eq(m.hp.act_block, 0, "per-token activations (BitLinear)");
    for (int k = 0; k < TRIT_N_W; k++)
        cr_assert_eq(m.layers[0].w[k].scale_kind, TRIT_SCALE_DIV, "no linear_class: bitlinear, weight_scale divides");
    trit_model_release(&m);

    /* the same model: the extra keys change nothing (the fixture's own logits are transformers'
     * within test_parity's tolerances) */
    char ids_path[512];
    snprintf(ids_path, sizeof ids_path, "%s/ids.json", test_data_path(LLAMA_FIXTURE));
    size_t n;
    char *text = read_all(ids_path, &n);
    cJSON *j = cJSON_Parse(text);
    free(text);
    const cJSON *arr = cJSON_GetObjectItemCaseSensitive(j, "ids");
    const int n_ids = cJSON_GetArraySize(arr);
    cr_assert_gt(n_ids, 0);
    int32_t *ids = malloc((size_t)n_ids * sizeof *ids);
    for (int i = 0; i < n_ids; i++) ids[i] = (int32_t)cJSON_GetArrayItem(arr, i)->valuedouble;
    cJSON_Delete(j);
    int32_t nv_a, nv_b;
    float *a = logits_of(test_data_path(LLAMA_FIXTURE), ids, n_ids, &nv_a);
    float *b = logits_of(test_tmp_dir(), ids, n_ids, &nv_b);
    cr_assert_eq(nv_a, nv_b);
    cr_assert_arr_eq(a, b, (size_t)n_ids * (size_t)nv_a * sizeof *a, "Falcon3 fields changed the logits");
    free(a), free(b), free(ids);
}

/* Falcon3's theta 1000042 and explicit head_dim are read as given. */
Test(hf_falcon, falcon3_rope_theta_and_head_dim) {
    copy_weights(LLAMA_FIXTURE);
    write_config(LLAMA_FIXTURE, set_member, &(struct member){"rope_theta", "1000042"});
    struct trit_model m;
    cr_assert_eq(trit_model_load_hf(test_tmp_dir(), NULL, &m), TRIT_OK, "%s", trit_last_error());
    cr_assert_eq(m.hp.rope_theta, 1000042.0f); /* < 2^24: exact in fp32 */
    cr_assert_eq(m.hp.head_dim, 28);
    trit_model_release(&m);
}

/* Falcon-E's bfloat16 and prequantized revisions are plain Llama folders: a float model to trit. */
Test(hf_falcon, float_llama_refused_by_name) {
    copy_weights(LLAMA_FIXTURE);
    write_config(LLAMA_FIXTURE, set_member, &(struct member){"quantization_config", "null"});
    expect_refused(TRIT_ERR_UNSUPPORTED, "a float Llama");
    expect_message("Falcon-E's bfloat16 and prequantized revisions");
}

/* ---- quantization_config options that change what the weights mean ----------------------------- */

Test(hf_falcon, quant_options_refused) {
    copy_weights(LLAMA_FIXTURE);
    static const struct {
        struct member edit;
        enum trit_status want;
        const char *needle;
    } cases[] = {
        {{"mlp_bias", "true"}, TRIT_ERR_UNSUPPORTED, "mlp_bias is true"},
        {{"quantization_config.use_rms_norm", "true"}, TRIT_ERR_UNSUPPORTED, "use_rms_norm is true"},
        {{"quantization_config.quantization_mode", "\"dynamic\""}, TRIT_ERR_UNSUPPORTED, "quantization_mode 'dynamic'"},
        {{"quantization_config.linear_class", "\"bitlinear2\""}, TRIT_ERR_UNSUPPORTED, "linear_class 'bitlinear2'"},
        {{"quantization_config.modules_to_not_convert", "[\"lm_head\", \"model.layers.0.mlp.down_proj\"]"},
         TRIT_ERR_UNSUPPORTED, "names 'model.layers.0.mlp.down_proj'"},
        {{"quantization_config.modules_to_not_convert", "\"lm_head\""}, TRIT_ERR_FORMAT, "is a JSON string, expected an array"},
        {{"quantization_config.modules_to_not_convert", "[1]"}, TRIT_ERR_FORMAT, "holds a JSON number"},
        {{"rope_scaling", "{\"rope_type\": \"llama3\", \"factor\": 8.0}"}, TRIT_ERR_UNSUPPORTED, "rope_scaling is set"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        write_config(LLAMA_FIXTURE, set_member, &cases[i].edit);
        expect_refused(cases[i].want, cases[i].needle);
    }
    /* the accepted values of the same keys */
    static const struct member fine[] = {
        {"quantization_config.modules_to_not_convert", "null"},
        {"quantization_config.modules_to_not_convert", "[]"},
        {"quantization_config.use_rms_norm", "false"},
        {"quantization_config.quantization_mode", "\"offline\""},
    };
    for (size_t i = 0; i < sizeof fine / sizeof fine[0]; i++) {
        write_config(LLAMA_FIXTURE, set_member, &fine[i]);
        struct trit_model m;
        cr_assert_eq(trit_model_load_hf(test_tmp_dir(), NULL, &m), TRIT_OK, "%s: %s", fine[i].json, trit_last_error());
        trit_model_release(&m);
    }
}

/* Packed weights say offline: transformers' online AutoBitLinear has no weight_scale. */
Test(hf_falcon, packed_weights_under_online_mode_refused) {
    copy_weights(BITNET_FIXTURE);
    write_config(BITNET_FIXTURE, set_member, &(struct member){"quantization_config.quantization_mode", "\"online\""});
    expect_refused(TRIT_ERR_UNSUPPORTED, "under quantization_mode online");
}

/* The scratch model.safetensors with one more F32 tensor of one element, appended. */
static void add_scalar_tensor(const char *name, float value) {
    size_t n;
    unsigned char *file = read_all(test_tmp_path("model.safetensors"), &n);
    uint64_t n_header = 0;
    for (int b = 7; b >= 0; b--) n_header = (n_header << 8) | file[b];
    cr_assert_leq(8 + n_header, n);
    const size_t n_data = n - 8 - (size_t)n_header;
    char *header = malloc((size_t)n_header + 1);
    memcpy(header, file + 8, (size_t)n_header);
    header[n_header] = '\0';
    cJSON *h = cJSON_Parse(header);
    free(header);
    cr_assert_not_null(h);
    char entry[160];
    snprintf(entry, sizeof entry, "{\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [%zu, %zu]}", n_data, n_data + 4);
    cJSON_AddItemToObject(h, name, cJSON_Parse(entry));
    char *text = cJSON_PrintUnformatted(h);
    cJSON_Delete(h);
    size_t n_text = strlen(text), n_pad = (8 - n_text % 8) % 8; /* spaces keep the data 8-aligned */
    const size_t n_out = 8 + n_text + n_pad + n_data + 4;
    unsigned char *out = malloc(n_out);
    for (int b = 0; b < 8; b++) out[b] = (unsigned char)((uint64_t)(n_text + n_pad) >> (8 * b));
    memcpy(out + 8, text, n_text);
    memset(out + 8 + n_text, ' ', n_pad);
    memcpy(out + 8 + n_text + n_pad, file + 8 + n_header, n_data);
    memcpy(out + 8 + n_text + n_pad + n_data, &value, 4);
    write_all(test_tmp_path("model.safetensors"), out, n_out);
    free(text), free(out), free(file);
}

/* A float weight with a weight_scale beside it (an unpacked offline AutoBitLinear checkpoint: the
 * output is multiplied by that scale) is refused; under online mode transformers has no such
 * buffer and ignores the tensor, and so does trit. */
Test(hf_falcon, float_weight_with_weight_scale) {
    copy_weights(LATENT_FIXTURE);
    add_scalar_tensor("model.layers.0.mlp.up_proj.weight_scale", 3.0f);
    write_config(LATENT_FIXTURE, set_member, &(struct member){"quantization_config.quantization_mode", "\"offline\""});
    expect_refused(TRIT_ERR_UNSUPPORTED, "'model.layers.0.mlp.up_proj.weight_scale' beside it");

    write_config(LATENT_FIXTURE, NULL, NULL); /* online, as the fixture */
    struct trit_model m;
    cr_assert_eq(trit_model_load_hf(test_tmp_dir(), NULL, &m), TRIT_OK, "%s", trit_last_error());
    bool unused = false;
    for (int64_t i = 0; i < m.n_notes; i++)
        if (!strcmp(m.notes[i].name, "model.layers.0.mlp.up_proj.weight_scale")) unused = !strcmp(m.notes[i].kind, "unused");
    cr_assert(unused, "the weight_scale is reported unused");
    trit_model_release(&m);
}
