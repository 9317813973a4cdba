/*
 * model_hf.c: a Hugging Face folder (config.json + *.safetensors) to a struct trit_model.
 *
 *   config.json                                    family               weights
 *   model_type "bitnet" (BitNetForCausalLM)        hidden_act relu2 ->  packed u8 + weight_scale (offline)
 *                                                  BITNET_B158; silu -> or float masters (online)
 *                                                  BITNET
 *   model_type "llama", BitnetForCausalLM          BITNET (1bitLLM)     fp16 latent weights, absmean at load
 *   model_type "llama", quant_method "bitnet"      LLAMA (HF1BitLLM,    packed u8 + weight_scale
 *                                                  Falcon3-1.58bit,     (onebitllms' quantize_to_1bit
 *                                                  Falcon-E)            for Falcon-E)
 *   model_type "qwen3" (Qwen3ForCausalLM)          QWEN3 (Ternary-      float weights that are exactly
 *                                                  Bonsai "unpacked")   group-ternary: t * d, one d per
 *                                                                       row and group of G columns
 *   model_type "gemma3_text" (Gemma3ForCausalLM)   GEMMA3               the same group-ternary floats
 *
 * Gemma3's norms are x * (1 + w): every norm weight is stored as 1 + w (fp32, transformers' own
 * sum), the form llama.cpp's GGUF holds, and the forward pass multiplies as for any RMSNorm.
 *
 * Group-ternary weights: G is quantization_config.group_size when the config has one, else 128 is
 * tried, then 64 (Ternary-Bonsai: 128; llama.cpp's mainline Q2_0: 64). A float Qwen3 whose weights
 * are not group-ternary is refused: trit runs ternary models only, and does not ternarize a model
 * that was not trained for it.
 *
 * weight_scale multiplies for quantization_config.linear_class "autobitlinear" (2B-4T) and divides
 * for "bitlinear", transformers' default (docs/formats.md section 1).
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "io/hf.h"
#include "io/json.h"
#include "io/safetensors.h"
#include "model/model.h"
#include "model/model_internal.h"

struct hf_loader {
    struct hf_folder *f;
    struct trit_model *m;
    const struct trit_load_params *params;
    enum trit_scale_kind scale_kind;
    bool online;               /* quantization_mode "online" (AutoBitLinear): float masters only */
    bool scaled_floats;        /* quant_method bitnet + AutoBitLinear offline: y = x W * weight_scale */
    int64_t group;             /* qwen3: quantization_config.group_size, 0 when absent (try 128, 64) */
    const char *attn_sub_name; /* "self_attn.attn_sub_norm" or "self_attn.inner_attn_ln" */
    const char *ffn_sub_name;  /* "mlp.ffn_sub_norm" or "mlp.ffn_layernorm" */
    int64_t note_cap, done, total;
    int64_t max_layer; /* the highest N of the weights' "model.layers.N." names, -1 for none */
};

static void release_hf(void *mapping) {
    struct hf_folder *f = mapping;
    if (!f) return;
    hf_folder_close(f);
    trit_free(f);
}

static enum trit_status dtype_of(const struct st_tensor *t, enum trit_dtype *out) {
    switch (t->dtype) {
    case ST_F32: *out = TRIT_DTYPE_F32; return TRIT_OK;
    case ST_F16: *out = TRIT_DTYPE_F16; return TRIT_OK;
    case ST_BF16: *out = TRIT_DTYPE_BF16; return TRIT_OK;
    default:
        return trit_error(TRIT_ERR_UNSUPPORTED, "safetensors: tensor '%s' is %s; trit expects F32, F16 or BF16 here",
                          t->name, st_dtype_name(t->dtype));
    }
}

/* ---- config.json ----------------------------------------------------------------------------- */

const char *trit_hf_config_family(const struct json_doc *c) {
    const char *model_type = "", *arch0 = "", *act = "", *quant_method = "";
    if (!c || json_get_str(c, "model_type", "", &model_type) != TRIT_OK ||
        json_get_str(c, "architectures[0]", "", &arch0) != TRIT_OK || json_get_str(c, "hidden_act", "silu", &act) != TRIT_OK ||
        json_get_str(c, "quantization_config.quant_method", "", &quant_method) != TRIT_OK) {
        trit_error_clear();
        return "unknown (config.json keys of the wrong type)";
    }
    if (strcmp(model_type, "bitnet") == 0)
        return strcmp(act, "relu2") == 0 ? "BitNet b1.58 (model_type bitnet, relu2): microsoft/bitnet-b1.58-2B-4T"
                                         : "BitNet (model_type bitnet, SiLU)";
    if (strcmp(model_type, "llama") == 0 && strcmp(arch0, "BitnetForCausalLM") == 0)
        return "1bitLLM BitNet b1.58 (llama config, BitnetForCausalLM, float latent weights)";
    if (strcmp(model_type, "llama") == 0 && strcmp(quant_method, "bitnet") == 0)
        return "Llama + BitLinear (quant_method bitnet): the format of HF1BitLLM Llama3-8B-1.58, Falcon3-*-1.58bit "
               "and Falcon-E";
    if (strcmp(model_type, "llama") == 0)
        return "a float Llama (no quantization_config.quant_method \"bitnet\"), as Falcon-E's bfloat16 and "
               "prequantized revisions are";
    if (strcmp(model_type, "qwen3") == 0) return "Qwen3 with group-ternary float weights (Ternary-Bonsai's unpacked folders)";
    if (strcmp(model_type, "gemma3_text") == 0 && strcmp(quant_method, "bitnet") == 0)
        return "Gemma3 text + BitNet quantization_config (the format of microsoft/bitnet-embedding-270m, with an RMSNorm "
               "inside every projection)";
    if (strcmp(model_type, "gemma3_text") == 0) return "Gemma3 text with group-ternary float weights";
    if (strcmp(model_type, "gemma3") == 0) return "Gemma3 with a vision tower (Gemma3ForConditionalGeneration)";
    return "not a ternary family trit knows";
}

/* The BitNet quantization_config options that change the graph or the weights' meaning
 * (transformers' BitNetQuantConfig, integrations/bitnet.py), and modules_to_not_convert. */
static enum trit_status read_bitnet_quant_config(struct hf_loader *L) {
    const struct json_doc *c = &L->f->config;
    const char *mode = NULL;
    TRIT_TRY(json_get_str(c, "quantization_config.quantization_mode", "offline", &mode));
    if (strcmp(mode, "offline") != 0 && strcmp(mode, "online") != 0)
        return trit_error(TRIT_ERR_UNSUPPORTED, "%s: quantization_config.quantization_mode '%s' (expected offline or online)",
                          c->name, mode);
    /* transformers makes online linears only of class autobitlinear (BitLinear is always offline) */
    L->online = strcmp(mode, "online") == 0 && L->scale_kind == TRIT_SCALE_MUL;
    const char *quant_method = "";
    TRIT_TRY(json_get_str(c, "quantization_config.quant_method", "", &quant_method));
    L->scaled_floats = strcmp(quant_method, "bitnet") == 0 && L->scale_kind == TRIT_SCALE_MUL && !L->online;
    bool rms = false;
    TRIT_TRY(json_get_bool(c, "quantization_config.use_rms_norm", false, &rms));
    if (rms)
        return trit_error(TRIT_ERR_UNSUPPORTED, "%s: quantization_config.use_rms_norm is true: transformers then applies an "
                          "RMSNorm to the input of every BitLinear, which trit's graphs do not have", c->name);
    /* every module transformers leaves out stays a float nn.Linear: only the head may (it is float in
     * trit too). Falcon3-*-1.58bit and onebitllms' Falcon-E list ["lm_head"]. */
    const cJSON *skip = NULL;
    TRIT_TRY(json_find(c, "quantization_config.modules_to_not_convert", &skip));
    if (skip && !cJSON_IsArray(skip))
        return trit_error(TRIT_ERR_FORMAT, "%s: quantization_config.modules_to_not_convert is a JSON %s, expected an array "
                          "of module names", c->name, json_type_name(skip));
    const cJSON *e;
    cJSON_ArrayForEach(e, skip) {
        if (!cJSON_IsString(e))
            return trit_error(TRIT_ERR_FORMAT, "%s: quantization_config.modules_to_not_convert holds a JSON %s, expected "
                              "module names", c->name, json_type_name(e));
        if (strcmp(e->valuestring, "lm_head") != 0)
            return trit_error(TRIT_ERR_UNSUPPORTED, "%s: quantization_config.modules_to_not_convert names '%.96s': "
                              "transformers keeps it a float nn.Linear, and trit runs ternary projections only "
                              "(only lm_head may be left out)", c->name, e->valuestring);
    }
    return TRIT_OK;
}

/* A config value that must be absent or null: what trit does not implement. */
static enum trit_status require_null(const struct json_doc *c, const char *key, const char *why) {
    const cJSON *v = NULL;
    TRIT_TRY(json_find(c, key, &v));
    if (v && !cJSON_IsNull(v) && !(cJSON_IsBool(v) && cJSON_IsFalse(v)))
        return trit_error(TRIT_ERR_UNSUPPORTED, "%s: %s is set; %s", c->name, key, why);
    return TRIT_OK;
}

/* Gemma3TextConfig (transformers 5.23 configuration_gemma3.py): the graph's switches, and what trit
 * refuses. */
static enum trit_status read_gemma3_config(struct hf_loader *L, const char *quant_method) {
    const struct json_doc *c = &L->f->config;
    struct trit_hparams *hp = &L->m->hp;
    hp->family = TRIT_FAMILY_GEMMA3;
    hp->act = TRIT_ACT_GELU_TANH;
    hp->qk_norm = true;
    hp->post_norms = true;
    hp->act_block = TRIT_GROUP_UNIT; /* group-ternary weights, float-trained activations: int8 per 64 */
    const char *act = NULL;
    TRIT_TRY(json_get_str(c, "hidden_activation", "gelu_pytorch_tanh", &act));
    if (strcmp(act, "gelu_pytorch_tanh") != 0)
        return trit_error(TRIT_ERR_UNSUPPORTED, "%s: hidden_activation '%s' for a gemma3 model (trit implements "
                          "gelu_pytorch_tanh)", c->name, act);
    if (quant_method[0])
        return trit_error(TRIT_ERR_UNSUPPORTED, "%s: a gemma3_text model with quantization_config.quant_method '%s': trit "
                          "reads gemma3 folders whose float weights are ternary per group (no quant_method); BitNet "
                          "embedding checkpoints (microsoft/bitnet-embedding-270m) add an RMSNorm inside every "
                          "projection, which trit's gemma3 graph does not have", c->name, quant_method);
    TRIT_TRY(require_null(c, "final_logit_softcapping", "trit does not implement logit soft-capping"));
    TRIT_TRY(require_null(c, "attn_logit_softcapping", "trit does not implement attention soft-capping (transformers' "
                          "Gemma3 ignores it, Gemma2 applied it)"));
    TRIT_TRY(require_null(c, "use_bidirectional_attention", "trit implements causal attention only (EmbeddingGemma's "
                          "bidirectional mask is not implemented)"));
    TRIT_TRY(json_get_int(c, "quantization_config.group_size", 0, 1, (int64_t)1 << 30, &L->group));
    if (L->group != 0 && L->group % TRIT_GROUP_UNIT != 0)
        return trit_error(TRIT_ERR_UNSUPPORTED, "%s: quantization_config.group_size %lld is not a multiple of %d", c->name,
                          (long long)L->group, TRIT_GROUP_UNIT);
    TRIT_TRY(json_get_int(c, "sliding_window", 4096, 1, INT32_MAX, &hp->sliding_window));
    return TRIT_OK;
}

/* Gemma3's two RoPE thetas: rope_parameters {"full_attention": {...}, "sliding_attention": {...}}
 * (transformers 5), else the top-level rope_theta and rope_local_base_freq (transformers 4, the hub
 * configs), else 1e6 and 1e4 (Gemma3TextConfig.default_theta). Plain RoPE only. */
static enum trit_status read_gemma3_rope(struct hf_loader *L, double *theta_full) {
    const struct json_doc *c = &L->f->config;
    double local = 10000.0;
    const char *kinds[2] = {"full_attention", "sliding_attention"};
    double *out[2] = {theta_full, &local};
    for (int i = 0; i < 2; i++) {
        char key[96];
        const char *type = NULL;
        snprintf(key, sizeof key, "rope_parameters.%s.rope_type", kinds[i]);
        TRIT_TRY(json_get_str(c, key, "default", &type));
        if (strcmp(type, "default") != 0)
            return trit_error(TRIT_ERR_UNSUPPORTED, "%s: %s is '%s'; trit implements plain RoPE only", c->name, key, type);
        const cJSON *v = NULL;
        snprintf(key, sizeof key, "rope_parameters.%s.rope_theta", kinds[i]);
        TRIT_TRY(json_find(c, key, &v));
        if (!v) snprintf(key, sizeof key, "%s", i == 0 ? "rope_theta" : "rope_local_base_freq");
        TRIT_TRY(json_get_float(c, key, i == 0 ? 1000000.0 : 10000.0, out[i]));
    }
    L->m->hp.rope_theta_local = (float)local;
    return TRIT_OK;
}

/* Which layers slide: layer_types ("sliding_attention" / "full_attention", one per layer), else
 * every layer but each sliding_window_pattern-th (default 6), as Gemma3TextConfig.__post_init__. */
static enum trit_status read_gemma3_layers(struct hf_loader *L) {
    const struct json_doc *c = &L->f->config;
    struct trit_model *m = L->m;
    const cJSON *types = NULL;
    TRIT_TRY(json_find(c, "layer_types", &types));
    if (types && !cJSON_IsNull(types)) {
        if (!cJSON_IsArray(types) || cJSON_GetArraySize(types) != m->hp.n_layers)
            return trit_error(TRIT_ERR_FORMAT, "%s: layer_types must be an array of num_hidden_layers (%lld) strings", c->name,
                              (long long)m->hp.n_layers);
        for (int64_t i = 0; i < m->hp.n_layers; i++) {
            const cJSON *t = cJSON_GetArrayItem(types, (int)i);
            if (!cJSON_IsString(t) || (strcmp(t->valuestring, "sliding_attention") != 0 && strcmp(t->valuestring, "full_attention") != 0))
                return trit_error(TRIT_ERR_UNSUPPORTED, "%s: layer_types[%lld] is not \"sliding_attention\" or \"full_attention\"",
                                  c->name, (long long)i);
            m->layers[i].sliding = strcmp(t->valuestring, "sliding_attention") == 0;
        }
        return TRIT_OK;
    }
    int64_t pattern = 6;
    TRIT_TRY(json_get_int(c, "sliding_window_pattern", 6, 1, 4096, &pattern));
    for (int64_t i = 0; i < m->hp.n_layers; i++) m->layers[i].sliding = (i + 1) % pattern != 0;
    return TRIT_OK;
}

/* Gemma's RMSNorm multiplies by (1 + w): stored so, in fp32 as transformers adds. */
static void gemma3_shift_norms(struct trit_model *m) {
    const struct trit_hparams *hp = &m->hp;
    for (int64_t j = 0; j < hp->dim; j++) m->out_norm[j] += 1.0f;
    for (int64_t i = 0; i < hp->n_layers; i++) {
        struct trit_layer *l = &m->layers[i];
        float *dim_norms[4] = {l->attn_norm, l->attn_post_norm, l->ffn_norm, l->ffn_post_norm};
        for (int k = 0; k < 4; k++)
            for (int64_t j = 0; j < hp->dim; j++) dim_norms[k][j] += 1.0f;
        for (int64_t j = 0; j < hp->head_dim; j++) {
            l->attn_q_norm[j] += 1.0f;
            l->attn_k_norm[j] += 1.0f;
        }
    }
}

static enum trit_status read_config(struct hf_loader *L) {
    const struct json_doc *c = &L->f->config;
    struct trit_hparams *hp = &L->m->hp;
    const char *model_type = NULL, *arch0 = NULL, *act = NULL, *quant_method = NULL, *linear_class = NULL;
    TRIT_TRY(json_get_str(c, "model_type", "", &model_type));
    TRIT_TRY(json_get_str(c, "architectures[0]", "", &arch0));
    TRIT_TRY(json_get_str(c, "hidden_act", "silu", &act));
    TRIT_TRY(json_get_str(c, "quantization_config.quant_method", "", &quant_method));
    TRIT_TRY(json_get_str(c, "quantization_config.linear_class", "bitlinear", &linear_class));
    snprintf(L->m->arch_name, sizeof L->m->arch_name, "%s (%s)", model_type, arch0[0] ? arch0 : "?");

    L->attn_sub_name = "self_attn.attn_sub_norm";
    L->ffn_sub_name = "mlp.ffn_sub_norm";
    hp->rope_style = TRIT_ROPE_NEOX;
    bool tied_default = false;
    if (strcmp(model_type, "bitnet") == 0) {
        hp->sub_norms = true;
        if (strcmp(act, "relu2") == 0) {
            hp->family = TRIT_FAMILY_BITNET_B158;
            hp->act = TRIT_ACT_RELU2;
        } else if (strcmp(act, "silu") == 0) {
            hp->family = TRIT_FAMILY_BITNET;
            hp->act = TRIT_ACT_SILU;
        } else {
            return trit_error(TRIT_ERR_UNSUPPORTED, "%s: hidden_act '%s' is not one trit knows (relu2, silu)", c->name, act);
        }
    } else if (strcmp(model_type, "llama") == 0 && strcmp(arch0, "BitnetForCausalLM") == 0) {
        /* 1bitLLM: Llama config keys, the bitnet graph, sub-norms under other names. */
        hp->family = TRIT_FAMILY_BITNET;
        hp->act = TRIT_ACT_SILU;
        hp->sub_norms = true;
        L->attn_sub_name = "self_attn.inner_attn_ln";
        L->ffn_sub_name = "mlp.ffn_layernorm";
        tied_default = false;
    } else if (strcmp(model_type, "qwen3") == 0) {
        hp->family = TRIT_FAMILY_QWEN3;
        hp->act = TRIT_ACT_SILU;
        hp->sub_norms = false;
        hp->qk_norm = true;
        hp->act_block = TRIT_GROUP_UNIT; /* trained with float activations: int8 per block of 64 */
        if (strcmp(act, "silu") != 0)
            return trit_error(TRIT_ERR_UNSUPPORTED, "%s: hidden_act '%s' for a qwen3 model (trit expects silu)", c->name, act);
        bool sliding = false;
        TRIT_TRY(json_get_bool(c, "use_sliding_window", false, &sliding));
        if (sliding)
            return trit_error(TRIT_ERR_UNSUPPORTED, "%s: use_sliding_window is true; trit implements full attention only", c->name);
        TRIT_TRY(json_get_int(c, "quantization_config.group_size", 0, 1, (int64_t)1 << 30, &L->group));
        if (L->group != 0 && L->group % TRIT_GROUP_UNIT != 0)
            return trit_error(TRIT_ERR_UNSUPPORTED, "%s: quantization_config.group_size %lld is not a multiple of %d; trit's group "
                              "scales cover whole blocks of %d columns", c->name, (long long)L->group, TRIT_GROUP_UNIT, TRIT_GROUP_UNIT);
    } else if (strcmp(model_type, "gemma3_text") == 0) {
        TRIT_TRY(read_gemma3_config(L, quant_method));
        tied_default = true;
    } else if (strcmp(model_type, "gemma3") == 0) {
        return trit_error(TRIT_ERR_UNSUPPORTED, "%s: model_type 'gemma3' is Gemma3ForConditionalGeneration (text_config and a "
                          "vision tower); trit reads the text model alone, model_type 'gemma3_text' (Gemma3ForCausalLM)", c->name);
    } else if (strcmp(model_type, "llama") == 0 && strcmp(quant_method, "bitnet") == 0) {
        hp->family = TRIT_FAMILY_LLAMA;
        hp->act = TRIT_ACT_SILU;
        hp->sub_norms = false;
        if (strcmp(act, "silu") != 0)
            return trit_error(TRIT_ERR_UNSUPPORTED, "%s: hidden_act '%s' for a llama model (trit expects silu)", c->name, act);
    } else {
        return trit_error(TRIT_ERR_UNSUPPORTED,
                          "%s: model_type '%s' (%s) is not a ternary model trit knows (%s): expected \"bitnet\", "
                          "\"llama\" with BitnetForCausalLM or quantization_config.quant_method \"bitnet\", "
                          "or \"qwen3\" / \"gemma3_text\" with group-ternary weights",
                          c->name, model_type, arch0[0] ? arch0 : "no architectures", trit_hf_config_family(c));
    }
    if (strcmp(linear_class, "autobitlinear") == 0) L->scale_kind = TRIT_SCALE_MUL;
    else if (strcmp(linear_class, "bitlinear") == 0) L->scale_kind = TRIT_SCALE_DIV;
    else return trit_error(TRIT_ERR_UNSUPPORTED, "%s: quantization_config.linear_class '%s' (expected autobitlinear or bitlinear)", c->name, linear_class);
    if (hp->act_block == 0) TRIT_TRY(read_bitnet_quant_config(L)); /* the BitNet families */

    const cJSON *scaling = NULL;
    enum trit_status st = json_find(c, "rope_scaling", &scaling);
    if (st == TRIT_OK && scaling && !cJSON_IsNull(scaling))
        return trit_error(TRIT_ERR_UNSUPPORTED, "%s: rope_scaling is set; trit implements plain RoPE only", c->name);
    trit_error_clear();
    /* transformers 5 writes rope_parameters {"rope_type": ..., "rope_theta": ...} instead */
    const char *rope_type = NULL;
    TRIT_TRY(json_get_str(c, "rope_parameters.rope_type", "default", &rope_type));
    if (strcmp(rope_type, "default") != 0)
        return trit_error(TRIT_ERR_UNSUPPORTED, "%s: rope_parameters.rope_type is '%s'; trit implements plain RoPE only", c->name,
                          rope_type);
    bool bias = false;
    TRIT_TRY(json_get_bool(c, "attention_bias", false, &bias));
    if (bias) return trit_error(TRIT_ERR_UNSUPPORTED, "%s: attention_bias is true; trit's graphs have no biases", c->name);
    TRIT_TRY(json_get_bool(c, "mlp_bias", false, &bias));
    if (bias) return trit_error(TRIT_ERR_UNSUPPORTED, "%s: mlp_bias is true; trit's graphs have no biases", c->name);

    const int64_t big = (int64_t)1 << 31;
    TRIT_TRY(json_require(c, "hidden_size"));
    TRIT_TRY(json_get_int(c, "hidden_size", 0, 1, big, &hp->dim));
    TRIT_TRY(json_require(c, "intermediate_size"));
    TRIT_TRY(json_get_int(c, "intermediate_size", 0, 1, big, &hp->ffn_dim));
    TRIT_TRY(json_require(c, "num_hidden_layers"));
    TRIT_TRY(json_get_int(c, "num_hidden_layers", 0, 1, 4096, &hp->n_layers));
    TRIT_TRY(json_require(c, "num_attention_heads"));
    TRIT_TRY(json_get_int(c, "num_attention_heads", 0, 1, 65536, &hp->n_heads));
    TRIT_TRY(json_get_int(c, "num_key_value_heads", hp->n_heads, 1, 65536, &hp->n_kv_heads));
    const bool gemma = hp->family == TRIT_FAMILY_GEMMA3; /* Gemma3TextConfig's defaults where they differ */
    TRIT_TRY(json_get_int(c, "head_dim", gemma ? 256 : hp->dim / hp->n_heads, 1, 65536, &hp->head_dim));
    TRIT_TRY(json_get_int(c, "max_position_embeddings", gemma ? 131072 : 2048, 1, INT32_MAX, &hp->ctx_train));
    TRIT_TRY(json_require(c, "vocab_size"));
    TRIT_TRY(json_get_int(c, "vocab_size", 0, 1, big, &hp->n_vocab));
    double eps = 1e-5, theta = 10000.0;
    TRIT_TRY(json_get_float(c, "rms_norm_eps", gemma ? 1e-6 : 1e-5, &eps));
    const cJSON *top_theta = NULL;
    TRIT_TRY(json_find(c, "rope_theta", &top_theta));
    if (gemma) TRIT_TRY(read_gemma3_rope(L, &theta));
    else TRIT_TRY(json_get_float(c, top_theta ? "rope_theta" : "rope_parameters.rope_theta", 10000.0, &theta));
    hp->norm_eps = (float)eps;
    hp->rope_theta = (float)theta;
    if (gemma) {
        hp->embd_scale = (float)sqrt((double)hp->dim); /* torch.tensor(hidden_size ** 0.5): fp32 */
        double qpas = 256.0;
        TRIT_TRY(json_get_float(c, "query_pre_attn_scalar", 256.0, &qpas));
        if (!(qpas > 0.0) || !isfinite(qpas))
            return trit_error(TRIT_ERR_FORMAT, "%s: query_pre_attn_scalar %g is not positive", c->name, qpas);
        hp->attn_scale = (float)pow(qpas, -0.5); /* query_pre_attn_scalar ** -0.5 in double, then fp32 */
    }
    TRIT_TRY(json_get_bool(c, "tie_word_embeddings", tied_default, &hp->tied_embeddings));
    return TRIT_OK;
}

/* ---- tensors --------------------------------------------------------------------------------- */

#define HF_LAYER_PREFIX "model.layers."

static enum trit_status get(struct hf_loader *L, const char *name, bool required, const struct st_tensor **out) {
    *out = hf_find(L->f, name);
    if (*out || !required) return TRIT_OK;
    int64_t layer;
    int n_digits;
    const char *rest;
    if (model_layer_of(name, HF_LAYER_PREFIX, &layer, &n_digits, &rest) && layer > L->max_layer)
        return trit_error(TRIT_ERR_FORMAT, "%s: tensor '%s' is missing: num_hidden_layers is %lld, but the weights' layers stop at %lld",
                          L->f->dir, name, (long long)L->m->hp.n_layers, (long long)L->max_layer);
    return trit_error(TRIT_ERR_FORMAT, "%s: tensor '%s' is missing", L->f->dir, name);
}

static enum trit_status load_vector(struct hf_loader *L, const char *name, int64_t n, bool required, float **out) {
    const struct st_tensor *t;
    TRIT_TRY(get(L, name, required, &t));
    if (!t) return TRIT_OK;
    if (t->n_dims != 1 || t->shape[0] != n) {
        char shape[96] = "[";
        for (int d = 0; d < t->n_dims; d++)
            snprintf(shape + strlen(shape), sizeof shape - strlen(shape), "%s%lld", d ? ", " : "", (long long)t->shape[d]);
        snprintf(shape + strlen(shape), sizeof shape - strlen(shape), "]");
        return trit_error(TRIT_ERR_FORMAT, "%s: tensor '%s' has shape %s, expected [%lld]", L->f->dir, name, shape, (long long)n);
    }
    enum trit_dtype dt = TRIT_DTYPE_F32;
    TRIT_TRY(dtype_of(t, &dt));
    TRIT_TRY(model_note(L->m, &L->note_cap, name, st_dtype_name(t->dtype), 1, n, t->n_bytes));
    return model_copy_f32(t->data, dt, n, out);
}

static enum trit_status load_dense(struct hf_loader *L, const char *name, int64_t rows, int64_t cols, struct trit_dense *out) {
    const struct st_tensor *t;
    TRIT_TRY(get(L, name, true, &t));
    if (t->n_dims != 2 || t->shape[0] != rows || t->shape[1] != cols)
        return trit_error(TRIT_ERR_FORMAT, "tensor '%s' has the wrong shape (expected [%lld, %lld])", name, (long long)rows, (long long)cols);
    enum trit_dtype dt = TRIT_DTYPE_F32;
    TRIT_TRY(dtype_of(t, &dt));
    out->dtype = dt;
    out->n_rows = rows;
    out->n_cols = cols;
    out->owned = NULL;
    /* safetensors data is unaligned in general; the kernels read it with unaligned loads. */
    out->data = t->data;
    return model_note(L->m, &L->note_cap, name, st_dtype_name(t->dtype), rows, cols, t->n_bytes);
}

/* The scalar weight_scale next to a packed weight, as fp32. */
static enum trit_status read_weight_scale(struct hf_loader *L, const char *weight_name, float *out) {
    char name[256];
    size_t n = strlen(weight_name);
    const char *suffix = ".weight";
    if (n < 7 || strcmp(weight_name + n - 7, suffix) != 0) return trit_error(TRIT_ERR_INTERNAL, "bad weight name");
    snprintf(name, sizeof name, "%.*s.weight_scale", (int)(n - 7), weight_name);
    const struct st_tensor *t;
    TRIT_TRY(get(L, name, true, &t));
    if (t->n_elements != 1) return trit_error(TRIT_ERR_FORMAT, "tensor '%s' must hold one value", name);
    enum trit_dtype dt = TRIT_DTYPE_F32;
    TRIT_TRY(dtype_of(t, &dt));
    struct trit_dense d = {.dtype = dt, .n_rows = 1, .n_cols = 1, .data = t->data};
    trit_dense_row_f32(&d, 0, out);
    if (!(*out > 0.0f) || !isfinite(*out))
        return trit_error(TRIT_ERR_FORMAT, "tensor '%s' = %g is not a positive finite scale", name, (double)*out);
    return TRIT_OK;
}

/* A float tensor that holds t * d exactly, one d per row and group of G columns: G from the config,
 * else 128, else 64. Code +2 (Q2_0's fourth code, 2d) is accepted. *group_out gets the G that fit. */
static enum trit_status group_ternary_from_floats(struct hf_loader *L, const float *w, int64_t rows, int64_t cols,
                                                  struct trit_ternary *out, int64_t *group_out) {
    const int64_t tries[2] = {L->group ? L->group : 128, L->group ? 0 : 64};
    char why[2][320] = {"", ""};
    for (int i = 0; i < 2 && tries[i] > 0; i++) {
        enum trit_status st = trit_ternary_from_group_scaled(w, rows, cols, tries[i], true, out);
        if (st == TRIT_OK) {
            *group_out = tries[i];
            return TRIT_OK;
        }
        if (st != TRIT_ERR_UNSUPPORTED) return st;
        snprintf(why[i], sizeof why[i], "%s", trit_last_error());
    }
    if (L->group)
        return trit_error(TRIT_ERR_UNSUPPORTED, "not ternary in groups of quantization_config.group_size = %lld (%s); trit runs "
                          "ternary models only", (long long)L->group, why[0]);
    return trit_error(TRIT_ERR_UNSUPPORTED, "not ternary in groups of 128 or 64 (%s); trit runs ternary models only, and this "
                      "looks like a float model", why[1]);
}

static enum trit_status load_ternary(struct hf_loader *L, const char *name, int64_t rows, int64_t cols, struct trit_ternary *w) {
    const struct st_tensor *t;
    TRIT_TRY(get(L, name, true, &t));
    const char *kind = "";
    char kind_buf[48];
    enum trit_status st = TRIT_OK;
    if (t->dtype == ST_U8) {
        const int64_t packed_rows = (rows + 3) / 4;
        if (t->n_dims != 2 || t->shape[0] != packed_rows || t->shape[1] != cols)
            return trit_error(TRIT_ERR_FORMAT, "packed tensor '%s' has shape [%lld, %lld], expected [%lld, %lld] for a %lld x %lld weight",
                              name, (long long)t->shape[0], (long long)(t->n_dims > 1 ? t->shape[1] : 0),
                              (long long)packed_rows, (long long)cols, (long long)rows, (long long)cols);
        if (L->online)
            return trit_error(TRIT_ERR_UNSUPPORTED, "packed tensor '%s' under quantization_mode online: transformers' online "
                              "AutoBitLinear re-ternarizes float weights every forward and has no weight_scale; a packed "
                              "checkpoint is offline", name);
        TRIT_TRY(trit_ternary_init(w, rows, cols));
        st = trit_hf_decode(t->data, w);
        if (st == TRIT_OK) st = read_weight_scale(L, name, &w->scale);
        w->scale_kind = L->scale_kind;
        kind = L->scale_kind == TRIT_SCALE_MUL ? "HF u8, scale *" : "HF u8, scale /";
        if (st == TRIT_OK && L->scale_kind == TRIT_SCALE_DIV && w->scale < 1.0f)
            TRIT_LOG_W("%s: weight_scale %g divides (linear_class bitlinear), but BitLinear scales are 1/mean|W| >> 1; is linear_class right?",
                       name, (double)w->scale);
    } else if (t->dtype == ST_F32 || t->dtype == ST_F16 || t->dtype == ST_BF16) {
        if (t->n_dims != 2 || t->shape[0] != rows || t->shape[1] != cols)
            return trit_error(TRIT_ERR_FORMAT, "tensor '%s' has the wrong shape (expected [%lld, %lld])", name, (long long)rows, (long long)cols);
        enum trit_dtype dt = TRIT_DTYPE_F32;
        TRIT_TRY(dtype_of(t, &dt));
        char scale_name[256];
        snprintf(scale_name, sizeof scale_name, "%.*s.weight_scale", (int)(strlen(name) - strlen(".weight")), name);
        /* elsewhere (online, or no BitNet quantization_config) transformers has no such buffer: unused */
        if (L->scaled_floats && hf_find(L->f, scale_name))
            return trit_error(TRIT_ERR_UNSUPPORTED, "tensor '%s' is %s with a '%s' beside it: an unpacked offline "
                              "AutoBitLinear checkpoint, whose output transformers multiplies by that scale; trit reads "
                              "weight_scale beside packed U8 weights only", name, st_dtype_name(t->dtype), scale_name);
        float *tmp;
        TRIT_TRY(model_copy_f32(t->data, dt, rows * cols, &tmp));
        if (L->m->hp.act_block > 0) { /* qwen3, gemma3: group-ternary */
            int64_t group = 0;
            st = group_ternary_from_floats(L, tmp, rows, cols, w, &group);
            snprintf(kind_buf, sizeof kind_buf, "%s -> group %lld", st_dtype_name(t->dtype), (long long)group);
            kind = kind_buf;
        } else {
            bool exact = false;
            st = model_ternary_from_floats(tmp, rows, cols, w, &exact);
            kind = exact ? "float, exact ternary" : t->dtype == ST_F16 ? "F16 -> absmean" : t->dtype == ST_BF16 ? "BF16 -> absmean" : "F32 -> absmean";
        }
        trit_free(tmp);
    } else {
        return trit_error(TRIT_ERR_UNSUPPORTED, "tensor '%s' is %s; trit reads packed U8 or F32/F16/BF16 weights", name, st_dtype_name(t->dtype));
    }
    if (st != TRIT_OK) {
        char why[512];
        snprintf(why, sizeof why, "%s", trit_last_error());
        trit_ternary_free(w);
        return trit_error(st, "tensor '%s': %s", name, why);
    }
    L->done++;
    model_progress(L->params, L->done, L->total);
    return model_note(L->m, &L->note_cap, name, kind, rows, cols, t->n_bytes);
}

/* ---- the tensor set: as for GGUF (model_gguf.c), the weights must hold exactly the layers of
 * num_hidden_layers, and tensors the loader does not read are reported, not refused (older Llama
 * checkpoints carry self_attn.rotary_emb.inv_freq, for one). Shapes are checked as each tensor
 * is read. */


/* No "model.layers.N." tensor may name a layer N >= num_hidden_layers: a folder whose config says 3
 * layers while its weights hold 4 would run 3. Names only, before anything is read. */
static enum trit_status check_layer_names(struct hf_loader *L) {
    L->max_layer = -1;
    for (int64_t i = 0; i < L->f->n_tensors; i++) {
        const char *name = L->f->tensors[i].tensor->name, *rest;
        int64_t layer;
        int n_digits;
        if (!model_layer_of(name, HF_LAYER_PREFIX, &layer, &n_digits, &rest)) continue;
        if (layer >= L->m->hp.n_layers)
            return trit_error(TRIT_ERR_FORMAT, "%s: tensor '%s': layer %.*s, but num_hidden_layers is %lld", L->f->dir,
                              name, n_digits, name + strlen(HF_LAYER_PREFIX), (long long)L->m->hp.n_layers);
        if (layer > L->max_layer) L->max_layer = layer;
    }
    return TRIT_OK;
}

static bool suffix_is(const char *rest, const char *stem, const char *suffix) {
    const size_t n = strlen(stem);
    return strncmp(rest, stem, n) == 0 && rest[n] == '.' && strcmp(rest + n + 1, suffix) == 0;
}

/* Whether load_all read `name` (after a successful load). */
static bool hf_used(const struct hf_loader *L, const char *name) {
    const struct trit_hparams *hp = &L->m->hp;
    if (strcmp(name, "model.embed_tokens.weight") == 0 || strcmp(name, "model.norm.weight") == 0) return true;
    if (strcmp(name, "lm_head.weight") == 0) return !hp->tied_embeddings;
    int64_t layer;
    int n_digits;
    const char *rest;
    if (!model_layer_of(name, HF_LAYER_PREFIX, &layer, &n_digits, &rest)) return false;
    if (suffix_is(rest, "input_layernorm", "weight") || suffix_is(rest, "post_attention_layernorm", "weight")) return true;
    if (hp->post_norms && (suffix_is(rest, "pre_feedforward_layernorm", "weight") || suffix_is(rest, "post_feedforward_layernorm", "weight")))
        return true;
    if (hp->sub_norms && (suffix_is(rest, L->attn_sub_name, "weight") || suffix_is(rest, L->ffn_sub_name, "weight")))
        return true;
    if (hp->qk_norm && (suffix_is(rest, "self_attn.q_norm", "weight") || suffix_is(rest, "self_attn.k_norm", "weight")))
        return true;
    /* the seven projections: each "<p>.weight", and "<p>.weight_scale" beside a packed one */
    for (int k = 0; k < TRIT_N_W; k++) {
        if (suffix_is(rest, trit_weights[k].hf, "weight")) return true;
        if (!suffix_is(rest, trit_weights[k].hf, "weight_scale")) continue;
        /* read only beside a packed weight */
        char weight[256];
        snprintf(weight, sizeof weight, "%.*sweight", (int)(strlen(name) - strlen("weight_scale")), name);
        const struct st_tensor *w = hf_find(L->f, weight);
        return w && w->dtype == ST_U8;
    }
    return false;
}

static enum trit_status report_unused(struct hf_loader *L) {
    struct model_unused unused = {0};
    for (int64_t i = 0; i < L->f->n_tensors; i++) {
        const struct st_tensor *t = L->f->tensors[i].tensor;
        if (hf_used(L, t->name)) continue;
        const int64_t n_cols = t->n_dims ? t->shape[t->n_dims - 1] : 1;
        TRIT_TRY(model_unused_add(L->m, &L->note_cap, &unused, t->name, n_cols ? t->n_elements / n_cols : 0, n_cols,
                                  t->n_bytes));
    }
    model_unused_report(L->m, &unused);
    return TRIT_OK;
}

static enum trit_status load_all(struct hf_loader *L) {
    struct trit_model *m = L->m;
    TRIT_TRY(read_config(L));
    TRIT_TRY(check_layer_names(L));
    const struct trit_hparams *hp = &m->hp;
    TRIT_TRY(load_dense(L, "model.embed_tokens.weight", hp->n_vocab, hp->dim, &m->tok_embd));
    TRIT_TRY(load_vector(L, "model.norm.weight", hp->dim, true, &m->out_norm));
    if (hp->tied_embeddings || !hf_find(L->f, "lm_head.weight")) {
        if (!hp->tied_embeddings) TRIT_LOG_W("lm_head.weight is absent: using the tied embedding as the head");
        m->hp.tied_embeddings = true;
        m->output = m->tok_embd;
    } else {
        TRIT_TRY(load_dense(L, "lm_head.weight", hp->n_vocab, hp->dim, &m->output));
    }
    m->layers = trit_alloc((size_t)hp->n_layers * sizeof *m->layers);
    if (!m->layers) return trit_error(TRIT_ERR_OUT_OF_MEMORY, "out of memory");
    const int64_t D = hp->dim, F = hp->ffn_dim, qd = hp->n_heads * hp->head_dim, kvd = hp->n_kv_heads * hp->head_dim;
    L->total = 7 * hp->n_layers;
    char name[256];
#define NAME(fmt) (snprintf(name, sizeof name, HF_LAYER_PREFIX "%lld." fmt, (long long)i), name)
#define NAME_S(prefix, suffix) (snprintf(name, sizeof name, HF_LAYER_PREFIX "%lld.%s.%s", (long long)i, prefix, suffix), name)
    for (int64_t i = 0; i < hp->n_layers; i++) {
        struct trit_layer *l = &m->layers[i];
        TRIT_TRY(load_vector(L, NAME("input_layernorm.weight"), D, true, &l->attn_norm));
        TRIT_TRY(load_ternary(L, NAME_S(trit_weights[TRIT_W_Q].hf, "weight"), qd, D, &l->w[TRIT_W_Q]));
        TRIT_TRY(load_ternary(L, NAME_S(trit_weights[TRIT_W_K].hf, "weight"), kvd, D, &l->w[TRIT_W_K]));
        TRIT_TRY(load_ternary(L, NAME_S(trit_weights[TRIT_W_V].hf, "weight"), kvd, D, &l->w[TRIT_W_V]));
        if (hp->qk_norm) {
            TRIT_TRY(load_vector(L, NAME("self_attn.q_norm.weight"), hp->head_dim, true, &l->attn_q_norm));
            TRIT_TRY(load_vector(L, NAME("self_attn.k_norm.weight"), hp->head_dim, true, &l->attn_k_norm));
        }
        if (hp->sub_norms) TRIT_TRY(load_vector(L, NAME_S(L->attn_sub_name, "weight"), qd, true, &l->attn_sub_norm));
        TRIT_TRY(load_ternary(L, NAME_S(trit_weights[TRIT_W_O].hf, "weight"), D, qd, &l->w[TRIT_W_O]));
        if (hp->post_norms) { /* Gemma3's sandwich: post_attention_layernorm is the attention block's output norm */
            TRIT_TRY(load_vector(L, NAME("post_attention_layernorm.weight"), D, true, &l->attn_post_norm));
            TRIT_TRY(load_vector(L, NAME("pre_feedforward_layernorm.weight"), D, true, &l->ffn_norm));
            TRIT_TRY(load_vector(L, NAME("post_feedforward_layernorm.weight"), D, true, &l->ffn_post_norm));
        } else {
            TRIT_TRY(load_vector(L, NAME("post_attention_layernorm.weight"), D, true, &l->ffn_norm));
        }
        TRIT_TRY(load_ternary(L, NAME_S(trit_weights[TRIT_W_GATE].hf, "weight"), F, D, &l->w[TRIT_W_GATE]));
        TRIT_TRY(load_ternary(L, NAME_S(trit_weights[TRIT_W_UP].hf, "weight"), F, D, &l->w[TRIT_W_UP]));
        if (hp->sub_norms) TRIT_TRY(load_vector(L, NAME_S(L->ffn_sub_name, "weight"), F, true, &l->ffn_sub_norm));
        TRIT_TRY(load_ternary(L, NAME_S(trit_weights[TRIT_W_DOWN].hf, "weight"), D, F, &l->w[TRIT_W_DOWN]));
    }
#undef NAME
#undef NAME_S
    if (hp->family == TRIT_FAMILY_GEMMA3) {
        TRIT_TRY(read_gemma3_layers(L));
        gemma3_shift_norms(m);
    }
    TRIT_TRY(report_unused(L));
    return trit_model_validate(m);
}

enum trit_status trit_model_load_hf(const char *dir, const struct trit_load_params *params, struct trit_model *out) {
    if (!dir || !out) return trit_error(TRIT_ERR_INVALID_ARG, "model load: NULL argument");
    memset(out, 0, sizeof *out);
    struct hf_folder *f = trit_alloc(sizeof *f);
    if (!f) return trit_error(TRIT_ERR_OUT_OF_MEMORY, "out of memory");
    enum trit_status st = hf_folder_open(dir, f);
    if (st != TRIT_OK) {
        trit_free(f);
        return st;
    }
    out->mapping = f;
    out->release_mapping = release_hf;
    snprintf(out->source, sizeof out->source, "hf");
    snprintf(out->path, sizeof out->path, "%s", dir);
    struct hf_loader L = {.f = f, .m = out, .params = params};
    st = load_all(&L);
    if (st != TRIT_OK) trit_model_release(out);
    return st;
}
