/*
 * cmd_inspect.c: `trit inspect`: what a GGUF file or a Hugging Face folder holds, and whether trit
 * can run it: format and metadata, architecture and hyperparameters, every tensor with the kind
 * trit decodes it as and its size, and the tokenizer (kind, vocabulary, special tokens, flags).
 *
 *   trit inspect model.gguf
 *   trit inspect models/trit-kjv-4m.gguf --json
 *   trit inspect tests/data/tokenizers/llama-spm/ggml-vocab-llama-spm.gguf   (vocab only: not runnable)
 *
 * Everything is first gathered into one JSON object (printed as is with --json), then rendered as
 * text. Exit status: 0 when the file or folder could be read, whether or not it runs; 1 otherwise.
 */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "commands.h"
#include "common.h"
#include "io/gguf.h"
#include "io/hf.h"
#include "model/convert.h"
#include "model/model.h"

static void usage(FILE *out) {
    fprintf(out,
            "usage: trit inspect FILE.gguf|FOLDER [--json]\n"
            "\n"
            "Describes a GGUF file or a Hugging Face folder: metadata, architecture, hyperparameters, tensors\n"
            "(the kind trit reads each as, shape as rows x cols, bytes) and the tokenizer, and says why trit\n"
            "cannot run it when it cannot.\n"
            "\n"
            "  --json               one JSON object on stdout instead of text\n"
            "  --no-tensors         leave out the tensor list\n"
            "  -h, --help           this text\n");
}

/* ---- gathering ------------------------------------------------------------------------------ */

static cJSON *shape_json(int n, const int64_t *dims) {
    cJSON *a = cJSON_CreateArray();
    for (int i = 0; i < n; i++) cJSON_AddItemToArray(a, cJSON_CreateNumber((double)dims[i]));
    return a;
}

static void add_tensor(cJSON *list, const char *name, const char *kind, int n_dims, const int64_t *dims, uint64_t bytes) {
    cJSON *t = cJSON_CreateObject();
    cJSON_AddStringToObject(t, "name", name);
    cJSON_AddStringToObject(t, "kind", kind);
    cJSON_AddItemToObject(t, "shape", shape_json(n_dims, dims));
    cJSON_AddNumberToObject(t, "bytes", (double)bytes);
    cJSON_AddItemToArray(list, t);
}

/* A GGUF metadata value: scalars as JSON values, strings as strings, arrays as a summary. */
static cJSON *kv_value(const struct gguf_kv *kv) {
    switch (kv->type) {
    case GGUF_TYPE_UINT8: case GGUF_TYPE_UINT16: case GGUF_TYPE_UINT32: case GGUF_TYPE_UINT64:
        return cJSON_CreateNumber((double)kv->v.u64);
    case GGUF_TYPE_INT8: case GGUF_TYPE_INT16: case GGUF_TYPE_INT32: case GGUF_TYPE_INT64:
        return cJSON_CreateNumber((double)kv->v.i64);
    case GGUF_TYPE_FLOAT32: case GGUF_TYPE_FLOAT64:
        return cJSON_CreateNumber(kv->v.f64);
    case GGUF_TYPE_BOOL:
        return cJSON_CreateBool(kv->v.u64 != 0);
    case GGUF_TYPE_STRING: {
        char *s = strndup(kv->str.ptr, kv->str.len);
        if (!s) return cJSON_CreateNull();
        cJSON *v = cJSON_CreateString(s);
        free(s);
        return v;
    }
    case GGUF_TYPE_ARRAY: {
        char buf[64];
        snprintf(buf, sizeof buf, "[%s x %llu]", gguf_value_type_name(kv->arr_type), (unsigned long long)kv->arr_n);
        return cJSON_CreateString(buf);
    }
    default:
        return cJSON_CreateNull();
    }
}

static void gather_gguf_file(cJSON *r, const char *path, bool *has_tensors) {
    struct gguf_file f;
    enum trit_status st = gguf_open(path, &f);
    if (st != TRIT_OK) {
        cJSON_AddStringToObject(r, "fatal", trit_last_error());
        return;
    }
    cJSON *g = cJSON_AddObjectToObject(r, "gguf");
    cJSON_AddNumberToObject(g, "version", f.version);
    cJSON_AddNumberToObject(g, "alignment", (double)f.alignment);
    cJSON_AddNumberToObject(g, "n_kv", (double)f.n_kv);
    cJSON_AddNumberToObject(g, "n_tensors", (double)f.n_tensors);
    cJSON_AddNumberToObject(r, "file_bytes", (double)f.size);
    char arch[64], pre[64];
    if (gguf_get_str(&f, "general.architecture", arch, sizeof arch) == TRIT_OK) {
        cJSON_AddStringToObject(r, "architecture", arch);
        /* the Falcon files say so only in their tokenizer's pre name (bitnet.cpp's converter writes
         * arch llama for both); docs/formats.md section 1 */
        if (strcmp(arch, "llama") == 0 && gguf_get_str(&f, "tokenizer.ggml.pre", pre, sizeof pre) == TRIT_OK) {
            if (strcmp(pre, "falcon3") == 0)
                cJSON_AddStringToObject(g, "recognized", "Falcon3 (arch llama, tokenizer pre falcon3: Falcon3-*-1.58bit "
                                                         "as bitnet.cpp converts it)");
            else if (strcmp(pre, "falcon_e") == 0)
                cJSON_AddStringToObject(g, "recognized", "Falcon-E (arch llama, tokenizer pre falcon_e: Falcon-E-*-GGUF "
                                                         "as bitnet.cpp converts it)");
        }
    }
    trit_error_clear();
    cJSON *meta = cJSON_AddArrayToObject(r, "metadata");
    for (int64_t i = 0; i < f.n_kv; i++) {
        const struct gguf_kv *kv = &f.kv[i];
        cJSON *e = cJSON_CreateObject();
        char key[256];
        snprintf(key, sizeof key, "%.*s", (int)(kv->key.len < 255 ? kv->key.len : 255), kv->key.ptr);
        cJSON_AddStringToObject(e, "key", key);
        cJSON_AddStringToObject(e, "type", gguf_value_type_name(kv->type));
        cJSON_AddItemToObject(e, "value", kv_value(kv));
        cJSON_AddItemToArray(meta, e);
    }
    /* the file's own tensor list, for when the model does not load */
    cJSON *list = cJSON_AddArrayToObject(r, "file_tensors");
    for (int64_t i = 0; i < f.n_tensors; i++) {
        const struct gguf_tensor_info *t = &f.tensors[i];
        char name[128];
        snprintf(name, sizeof name, "%.*s", (int)(t->name.len < 127 ? t->name.len : 127), t->name.ptr);
        int64_t dims[GGUF_MAX_DIMS];
        for (uint32_t d = 0; d < t->n_dims; d++) dims[d] = t->ne[t->n_dims - 1 - d]; /* rows first */
        add_tensor(list, name, gguf_type_name(t->type, f.bitnet_ids), (int)t->n_dims, dims, t->n_bytes);
    }
    *has_tensors = f.n_tensors > 0;
    gguf_close(&f);
}

static void gather_hf_folder(cJSON *r, const char *path) {
    struct hf_folder f;
    enum trit_status st = hf_folder_open(path, &f);
    if (st != TRIT_OK) {
        cJSON_AddStringToObject(r, "fatal", trit_last_error());
        return;
    }
    cJSON *h = cJSON_AddObjectToObject(r, "hf");
    cJSON_AddNumberToObject(h, "n_shards", (double)f.n_shards);
    cJSON_AddNumberToObject(h, "n_tensors", (double)f.n_tensors);
    const char *model_type = "", *arch0 = "", *quant = "", *linear = "";
    json_get_str(&f.config, "model_type", "", &model_type);
    json_get_str(&f.config, "architectures[0]", "", &arch0);
    json_get_str(&f.config, "quantization_config.quant_method", "", &quant);
    json_get_str(&f.config, "quantization_config.linear_class", "", &linear);
    trit_error_clear();
    cJSON_AddStringToObject(h, "model_type", model_type);
    cJSON_AddStringToObject(h, "architectures", arch0);
    cJSON_AddStringToObject(h, "quant_method", quant);
    cJSON_AddStringToObject(h, "linear_class", linear);
    cJSON_AddStringToObject(h, "recognized", trit_hf_config_family(&f.config));
    char arch[160];
    snprintf(arch, sizeof arch, "%s (%s)", model_type, arch0);
    cJSON_AddStringToObject(r, "architecture", arch);
    uint64_t total = 0;
    cJSON *list = cJSON_AddArrayToObject(r, "file_tensors");
    for (int64_t i = 0; i < f.n_tensors; i++) {
        const struct st_tensor *t = f.tensors[i].tensor;
        add_tensor(list, t->name, st_dtype_name(t->dtype), t->n_dims, t->shape, t->n_bytes);
        total += t->n_bytes;
    }
    cJSON_AddNumberToObject(r, "file_bytes", (double)total);
    struct hf_tokenizer_config cfg;
    if (hf_folder_tokenizer_config(&f, &cfg) == TRIT_OK) {
        if (cfg.chat_template) cJSON_AddNumberToObject(r, "chat_template_bytes", (double)strlen(cfg.chat_template));
        hf_tokenizer_config_free(&cfg);
    }
    trit_error_clear();
    hf_folder_close(&f);
}

static void gather_model(cJSON *r, const char *path, bool is_hf, bool has_tensors) {
    struct trit_model m;
    enum trit_status st = trit_model_load_path(path, NULL, &m);
    cJSON_AddBoolToObject(r, "runnable", st == TRIT_OK);
    if (st != TRIT_OK) {
        if (!is_hf && !has_tensors)
            cJSON_AddStringToObject(r, "error", "the file holds no tensors: a vocabulary-only GGUF (use it with "
                                                "`trit tokenize -m`, or as `trit convert --tokenizer`)");
        else
            cJSON_AddStringToObject(r, "error", trit_last_error());
        return;
    }
    const struct trit_hparams *hp = &m.hp;
    cJSON *mo = cJSON_AddObjectToObject(r, "model");
    cJSON_AddStringToObject(mo, "family", trit_family_name(hp->family));
    cJSON_AddStringToObject(mo, "gguf_arch", trit_convert_arch_name(hp->family));
    cJSON *h = cJSON_AddObjectToObject(mo, "hparams");
    cJSON_AddNumberToObject(h, "n_vocab", (double)hp->n_vocab);
    cJSON_AddNumberToObject(h, "dim", (double)hp->dim);
    cJSON_AddNumberToObject(h, "n_layers", (double)hp->n_layers);
    cJSON_AddNumberToObject(h, "n_heads", (double)hp->n_heads);
    cJSON_AddNumberToObject(h, "n_kv_heads", (double)hp->n_kv_heads);
    cJSON_AddNumberToObject(h, "head_dim", (double)hp->head_dim);
    cJSON_AddNumberToObject(h, "ffn_dim", (double)hp->ffn_dim);
    cJSON_AddNumberToObject(h, "ctx_train", (double)hp->ctx_train);
    cJSON_AddNumberToObject(h, "norm_eps", (double)hp->norm_eps);
    cJSON_AddNumberToObject(h, "rope_theta", (double)hp->rope_theta);
    cJSON_AddStringToObject(h, "rope_style", hp->rope_style == TRIT_ROPE_NEOX ? "neox" : "norm");
    cJSON_AddStringToObject(h, "act", hp->act == TRIT_ACT_RELU2 ? "relu2" : "silu");
    cJSON_AddBoolToObject(h, "sub_norms", hp->sub_norms);
    cJSON_AddBoolToObject(h, "tied_embeddings", hp->tied_embeddings);
    cJSON_AddBoolToObject(h, "qk_norm", hp->qk_norm);
    cJSON_AddNumberToObject(h, "act_block", (double)hp->act_block);
    int n_mul = 0, n_div = 0, n_grouped = 0;
    int64_t group = 0;
    bool mixed_groups = false;
    for (int64_t i = 0; i < hp->n_layers; i++) {
        for (int k = 0; k < TRIT_N_W; k++) {
            const struct trit_ternary *w = &m.layers[i].w[k];
            *(w->scale_kind == TRIT_SCALE_DIV ? &n_div : &n_mul) += 1;
            if (w->group <= 0) continue;
            n_grouped++;
            if (group && w->group != group) mixed_groups = true;
            group = w->group;
        }
    }
    cJSON_AddStringToObject(mo, "scale_kind", n_div && n_mul ? "mixed" : n_div ? "divide" : "multiply");
    /* "tensor": one scale per matrix; "group": a scale per `scale_group` columns (Q2_0, Ternary-Bonsai) */
    cJSON_AddStringToObject(mo, "scale_granularity", n_grouped == 0 ? "tensor" : n_grouped == n_mul + n_div ? "group" : "mixed");
    cJSON_AddNumberToObject(mo, "scale_group", mixed_groups ? -1.0 : (double)group);
    int64_t n_params = trit_model_ternary_params(&m);
    cJSON_AddNumberToObject(mo, "ternary_params", (double)n_params);
    cJSON_AddStringToObject(mo, "embedding_dtype", m.tok_embd.dtype == TRIT_DTYPE_F32 ? "F32" : m.tok_embd.dtype == TRIT_DTYPE_F16 ? "F16" : "BF16");
    /* the tensors the loader read, and apart from them those it left unread ("unused" notes) */
    cJSON *list = cJSON_AddArrayToObject(r, "tensors"), *unused = cJSON_AddArrayToObject(r, "unused_tensors");
    for (int64_t i = 0; i < m.n_notes; i++) {
        const struct trit_tensor_note *n = &m.notes[i];
        int64_t dims[2] = {n->n_rows, n->n_cols};
        add_tensor(strcmp(n->kind, "unused") ? list : unused, n->name, n->kind, n->n_rows == 1 ? 1 : 2,
                   n->n_rows == 1 ? dims + 1 : dims, n->file_bytes);
    }
    trit_model_release(&m);
}

static cJSON *special_json(const struct trit_tokenizer *tok, int32_t id) {
    if (id < 0) return cJSON_CreateNull();
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "id", id);
    size_t len;
    const char *t = trit_tokenizer_token_text(tok, id, &len);
    char buf[128];
    snprintf(buf, sizeof buf, "%.*s", (int)(len < 127 ? len : 127), t ? t : "");
    cJSON_AddStringToObject(o, "text", buf);
    return o;
}

static void gather_tokenizer(cJSON *r, const char *path, bool is_hf) {
    cJSON *t = cJSON_AddObjectToObject(r, "tokenizer");
    struct trit_tokenizer *tok;
    enum trit_status st = trit_tokenizer_load(path, &tok);
    if (st != TRIT_OK) {
        cJSON_AddStringToObject(t, "error", trit_last_error());
        return;
    }
    bool bpe = trit_tokenizer_kind(tok) == TRIT_TOKENIZER_BPE;
    cJSON_AddStringToObject(t, "kind", bpe ? "byte-level BPE" : "SentencePiece BPE");
    cJSON_AddStringToObject(t, "gguf_model", bpe ? "gpt2" : "llama");
    cJSON_AddNumberToObject(t, "n_vocab", trit_tokenizer_n_vocab(tok));
    cJSON_AddItemToObject(t, "bos", special_json(tok, trit_tokenizer_bos(tok)));
    cJSON_AddItemToObject(t, "eos", special_json(tok, trit_tokenizer_eos(tok)));
    cJSON_AddItemToObject(t, "eot", special_json(tok, trit_tokenizer_eot(tok)));
    cJSON_AddItemToObject(t, "unk", special_json(tok, trit_tokenizer_unk(tok)));
    cJSON_AddItemToObject(t, "pad", special_json(tok, trit_tokenizer_pad(tok)));
    cJSON_AddBoolToObject(t, "add_bos", trit_tokenizer_add_bos(tok));
    cJSON_AddBoolToObject(t, "add_eos", trit_tokenizer_add_eos(tok));
    cJSON_AddBoolToObject(t, "add_space_prefix", trit_tokenizer_add_space_prefix(tok));
    trit_tokenizer_free(tok);
    /* the pre-tokenizer, by its GGUF name */
    char pre[64] = "";
    if (!bpe) {
        snprintf(pre, sizeof pre, "(none: SentencePiece)");
    } else if (is_hf) {
        char json[4200];
        snprintf(json, sizeof json, "%s/tokenizer.json", path);
        const char *name;
        if (trit_convert_pre_name(json, &name) == TRIT_OK) snprintf(pre, sizeof pre, "%s (from tokenizer.json)", name);
        else snprintf(pre, sizeof pre, "a tokenizer.json pre_tokenizer with no GGUF name");
    } else {
        struct gguf_file f;
        if (gguf_open(path, &f) == TRIT_OK) {
            if (gguf_get_str(&f, "tokenizer.ggml.pre", pre, sizeof pre) != TRIT_OK) pre[0] = '\0';
            const struct gguf_kv *ct = gguf_find_kv(&f, "tokenizer.chat_template");
            if (ct && ct->type == GGUF_TYPE_STRING) cJSON_AddNumberToObject(r, "chat_template_bytes", (double)ct->str.len);
            gguf_close(&f);
        }
    }
    trit_error_clear();
    cJSON_AddStringToObject(t, "pre", pre);
}

/* ---- text rendering ------------------------------------------------------------------------- */

static const char *str_of(const cJSON *o, const char *key) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsString(v) ? v->valuestring : "";
}
static double num_of(const cJSON *o, const char *key) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsNumber(v) ? v->valuedouble : 0.0;
}
static const char *yes(const cJSON *o, const char *key) {
    return cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(o, key)) ? "yes" : "no";
}

static void print_bytes(double b) {
    if (b >= 1024.0 * 1024.0 * 1024.0) printf("%.2f GiB", b / (1024.0 * 1024.0 * 1024.0));
    else if (b >= 1024.0 * 1024.0) printf("%.1f MiB", b / (1024.0 * 1024.0));
    else if (b >= 1024.0) printf("%.1f KiB", b / 1024.0);
    else printf("%.0f B", b);
}

/* A string for one line: control bytes escaped, at most `max` bytes shown. */
static void print_escaped(const char *s, size_t max) {
    size_t n = strlen(s);
    putchar('"');
    for (size_t i = 0; i < n && i < max; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '\n') fputs("\\n", stdout);
        else if (c == '\t') fputs("\\t", stdout);
        else if (c == '"' || c == '\\') printf("\\%c", c);
        else if (c < 0x20 || c == 0x7f) printf("\\x%02x", c);
        else putchar(c);
    }
    putchar('"');
    if (n > max) printf("... (%zu bytes)", n);
}

static void print_tensors(const cJSON *list, const char *title) {
    int n = cJSON_GetArraySize(list);
    if (n == 0) {
        printf("\n%s: none\n", title);
        return;
    }
    printf("\n%s (%d; shape as rows x cols):\n", title, n);
    const cJSON *t;
    cJSON_ArrayForEach(t, list) {
        char shape[64] = "";
        size_t at = 0;
        const cJSON *d;
        cJSON_ArrayForEach(d, cJSON_GetObjectItemCaseSensitive(t, "shape")) {
            int w = snprintf(shape + at, sizeof shape - at, "%s%.0f", at ? " x " : "", d->valuedouble);
            if (w < 0 || (size_t)w >= sizeof shape - at) break;
            at += (size_t)w;
        }
        printf("  %-40s %-20s %-18s ", str_of(t, "name"), str_of(t, "kind"), shape);
        print_bytes(num_of(t, "bytes"));
        printf("\n");
        if (tool_stdout_check("inspect")) return; /* a lost write ends the listing */
    }
}

static void print_special(const cJSON *t, const char *key) {
    const cJSON *s = cJSON_GetObjectItemCaseSensitive(t, key);
    if (!cJSON_IsObject(s)) return;
    printf(" %s %.0f ", key, num_of(s, "id"));
    print_escaped(str_of(s, "text"), 40);
    printf(",");
}

static void print_text(const cJSON *r, bool tensors) {
    printf("path: %s\n", str_of(r, "path"));
    const cJSON *g = cJSON_GetObjectItemCaseSensitive(r, "gguf"), *h = cJSON_GetObjectItemCaseSensitive(r, "hf");
    if (g) {
        printf("format: GGUF v%.0f, %.0f metadata keys, %.0f tensors, alignment %.0f, ", num_of(g, "version"), num_of(g, "n_kv"),
               num_of(g, "n_tensors"), num_of(g, "alignment"));
    } else if (h) {
        printf("format: Hugging Face folder, %.0f safetensors file%s, %.0f tensors, ", num_of(h, "n_shards"),
               num_of(h, "n_shards") == 1 ? "" : "s", num_of(h, "n_tensors"));
    }
    print_bytes(num_of(r, "file_bytes"));
    printf("\narchitecture: %s\n", str_of(r, "architecture")[0] ? str_of(r, "architecture") : "(none)");
    if (h)
        printf("config.json: model_type %s, architectures %s, quant_method %s, linear_class %s\n", str_of(h, "model_type"),
               str_of(h, "architectures"), str_of(h, "quant_method")[0] ? str_of(h, "quant_method") : "-",
               str_of(h, "linear_class")[0] ? str_of(h, "linear_class") : "-");
    const char *recognized = str_of(h ? h : g, "recognized");
    if (recognized[0]) printf("recognized:   %s\n", recognized);

    const cJSON *meta = cJSON_GetObjectItemCaseSensitive(r, "metadata");
    if (meta) {
        printf("\nmetadata:\n");
        const cJSON *e;
        cJSON_ArrayForEach(e, meta) {
            const cJSON *v = cJSON_GetObjectItemCaseSensitive(e, "value");
            printf("  %-44s %-7s ", str_of(e, "key"), str_of(e, "type"));
            if (strcmp(str_of(e, "type"), "array") == 0 && cJSON_IsString(v)) printf("%s", v->valuestring);
            else if (cJSON_IsString(v)) print_escaped(v->valuestring, 60);
            else if (cJSON_IsBool(v)) printf("%s", cJSON_IsTrue(v) ? "true" : "false");
            else if (cJSON_IsNumber(v)) printf("%.9g", v->valuedouble);
            printf("\n");
            if (tool_stdout_check("inspect")) return;
        }
    }

    const cJSON *m = cJSON_GetObjectItemCaseSensitive(r, "model");
    if (m) {
        const cJSON *p = cJSON_GetObjectItemCaseSensitive(m, "hparams");
        printf("\nmodel: runs on trit\n");
        printf("  family:          %s (trit convert writes arch '%s')\n", str_of(m, "family"), str_of(m, "gguf_arch"));
        printf("  hyperparameters: vocab %.0f, dim %.0f, layers %.0f, heads %.0f (kv %.0f, head_dim %.0f), ffn %.0f, context %.0f\n",
               num_of(p, "n_vocab"), num_of(p, "dim"), num_of(p, "n_layers"), num_of(p, "n_heads"), num_of(p, "n_kv_heads"),
               num_of(p, "head_dim"), num_of(p, "ffn_dim"), num_of(p, "ctx_train"));
        printf("                   rms eps %g, rope theta %g (%s), act %s, sub-norms %s, tied embedding %s\n", num_of(p, "norm_eps"),
               num_of(p, "rope_theta"), str_of(p, "rope_style"), str_of(p, "act"), yes(p, "sub_norms"), yes(p, "tied_embeddings"));
        printf("                   q/k norms %s, activations quantized %s\n", yes(p, "qk_norm"),
               num_of(p, "act_block") > 0 ? "per block of 64 values" : "per token");
        const char *gran = str_of(m, "scale_granularity");
        if (!strcmp(gran, "tensor")) printf("  weight scales:   %s, one per matrix\n", str_of(m, "scale_kind"));
        else if (num_of(m, "scale_group") > 0)
            printf("  weight scales:   %s, one per %.0f columns%s\n", str_of(m, "scale_kind"), num_of(m, "scale_group"),
                   !strcmp(gran, "mixed") ? " (some matrices: one per matrix)" : "");
        else printf("  weight scales:   %s, per group (groups of several widths)\n", str_of(m, "scale_kind"));
        printf("  ternary params:  %.0f (", num_of(m, "ternary_params"));
        print_bytes(num_of(m, "ternary_params") / 4.0);
        printf(" as 2-bit codes); embedding %s\n", str_of(m, "embedding_dtype"));
        if (tensors) print_tensors(cJSON_GetObjectItemCaseSensitive(r, "tensors"), "tensors as trit reads them");
        const cJSON *unused = cJSON_GetObjectItemCaseSensitive(r, "unused_tensors");
        if (tensors && cJSON_GetArraySize(unused) > 0) print_tensors(unused, "tensors trit does not use (ignored)");
        if (tool_stdout_check("inspect")) return;
    } else if (!cJSON_GetObjectItemCaseSensitive(r, "fatal")) {
        if (tensors) print_tensors(cJSON_GetObjectItemCaseSensitive(r, "file_tensors"), "tensors in the file");
        printf("\nmodel: cannot run on trit: %s\n", str_of(r, "error"));
    }

    const cJSON *t = cJSON_GetObjectItemCaseSensitive(r, "tokenizer");
    printf("\ntokenizer:");
    if (!t || cJSON_GetObjectItemCaseSensitive(t, "error")) {
        printf(" cannot load: %s\n", t ? str_of(t, "error") : "?");
        return;
    }
    printf(" %s (GGUF model '%s'), %.0f tokens, pre-tokenizer %s\n ", str_of(t, "kind"), str_of(t, "gguf_model"),
           num_of(t, "n_vocab"), str_of(t, "pre")[0] ? str_of(t, "pre") : "(not named)");
    print_special(t, "bos");
    print_special(t, "eos");
    print_special(t, "eot");
    print_special(t, "unk");
    print_special(t, "pad");
    printf(" add_bos %s, add_eos %s, add_space_prefix %s\n", yes(t, "add_bos"), yes(t, "add_eos"), yes(t, "add_space_prefix"));
    if (cJSON_GetObjectItemCaseSensitive(r, "chat_template_bytes"))
        printf("  chat template: %.0f bytes\n", num_of(r, "chat_template_bytes"));
    else
        printf("  chat template: none\n");
}

int cmd_inspect(int argc, char **argv) {
    const char *path = NULL;
    bool json = false, tensors = true;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            return 0;
        } else if (!strcmp(a, "--json")) {
            json = true;
        } else if (!strcmp(a, "--no-tensors")) {
            tensors = false;
        } else if (a[0] == '-' && a[1]) {
            usage(stderr);
            return tool_fail("inspect", "unknown option '%s'", a) + 1;
        } else if (!path) {
            path = a;
        } else {
            return tool_fail("inspect", "one path only") + 1;
        }
    }
    if (!path) {
        usage(stderr);
        return tool_fail("inspect", "give a GGUF file or a Hugging Face folder") + 1;
    }
    struct stat sb;
    if (stat(path, &sb) != 0) return tool_fail("inspect", "cannot open '%s': no such file or directory", path);

    cJSON *r = cJSON_CreateObject();
    if (!r) return tool_fail("inspect", "out of memory");
    cJSON_AddStringToObject(r, "path", path);
    const bool hf = S_ISDIR(sb.st_mode);
    cJSON_AddStringToObject(r, "format", hf ? "hf" : "gguf");
    bool has_tensors = true;
    if (hf) gather_hf_folder(r, path);
    else gather_gguf_file(r, path, &has_tensors);
    const cJSON *fatal = cJSON_GetObjectItemCaseSensitive(r, "fatal");
    int rc = 0;
    if (fatal) {
        rc = tool_fail("inspect", "%s", fatal->valuestring);
    } else {
        gather_model(r, path, hf, has_tensors);
        gather_tokenizer(r, path, hf);
        if (!tensors) {
            cJSON_DeleteItemFromObjectCaseSensitive(r, "tensors");
            cJSON_DeleteItemFromObjectCaseSensitive(r, "unused_tensors");
            cJSON_DeleteItemFromObjectCaseSensitive(r, "file_tensors");
        }
        if (json) {
            char *s = cJSON_Print(r);
            if (s) puts(s);
            if (tool_stdout_check("inspect")) rc = 1;
            free(s);
        } else {
            print_text(r, tensors);
        }
    }
    cJSON_Delete(r);
    return rc;
}
