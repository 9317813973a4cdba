/* openai.c: see openai.h. Bodies are parsed with cJSON; responses are written by hand (below,
 * "JSON out"), because generated text may hold any character, U+0000 included, which cJSON's C
 * strings would cut. */
#include "openai.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FINGERPRINT "trit-" TRIT_VERSION_STRING

int serve_error_set(struct serve_error *e, int http, const char *type, const char *param, const char *code,
                    const char *fmt, ...) {
    e->http = http;
    e->type = type;
    e->code = code;
    snprintf(e->param, sizeof e->param, "%s", param ? param : "");
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->message, sizeof e->message, fmt, ap);
    va_end(ap);
    return -1;
}

/* ---- parsing: typed fields ------------------------------------------------------------------- */

#define BAD_REQUEST(e, param, ...) serve_error_set(e, 400, "invalid_request_error", param, NULL, __VA_ARGS__)

/* The member `name` of object o; NULL when absent or JSON null (OpenAI's optional fields take null). */
static const cJSON *field(const cJSON *o, const char *name) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);
    return v && !cJSON_IsNull(v) ? v : NULL;
}

/* A number from lo to hi; *out keeps its value when absent. */
static int get_number(const cJSON *o, const char *name, double lo, double hi, double *out, struct serve_error *e) {
    const cJSON *v = field(o, name);
    if (!v) return 0;
    if (!cJSON_IsNumber(v)) return BAD_REQUEST(e, name, "'%s' must be a number", name);
    const double d = v->valuedouble;
    if (!(d >= lo && d <= hi)) return BAD_REQUEST(e, name, "'%s' is %g; it must be from %g to %g", name, d, lo, hi);
    *out = d;
    return 0;
}

static int get_float(const cJSON *o, const char *name, double lo, double hi, float *out, struct serve_error *e) {
    double d = *out;
    if (get_number(o, name, lo, hi, &d, e)) return -1;
    *out = (float)d;
    return 0;
}

/* An integer from lo to hi (a JSON number without a fraction); *present says whether it was given. */
static int get_int(const cJSON *o, const char *name, double lo, double hi, int64_t *out, bool *present,
                   struct serve_error *e) {
    const cJSON *v = field(o, name);
    if (present) *present = v != NULL;
    if (!v) return 0;
    if (!cJSON_IsNumber(v) || v->valuedouble != floor(v->valuedouble))
        return BAD_REQUEST(e, name, "'%s' must be an integer", name);
    const double d = v->valuedouble;
    if (!(d >= lo && d <= hi)) return BAD_REQUEST(e, name, "'%s' is %.17g; it must be from %.17g to %.17g", name, d, lo, hi);
    *out = (int64_t)d;
    return 0;
}

static int get_i32(const cJSON *o, const char *name, int32_t lo, int32_t hi, int32_t *out, bool *present,
                   struct serve_error *e) {
    int64_t x = *out;
    if (get_int(o, name, lo, hi, &x, present, e)) return -1;
    *out = (int32_t)x;
    return 0;
}

static int get_bool(const cJSON *o, const char *name, bool *out, struct serve_error *e) {
    const cJSON *v = field(o, name);
    if (!v) return 0;
    if (!cJSON_IsBool(v)) return BAD_REQUEST(e, name, "'%s' must be true or false", name);
    *out = cJSON_IsTrue(v);
    return 0;
}

/* ---- parsing: the prompt, the messages, stop ------------------------------------------------- */

/* A JSON array of token ids into a new array; -1 with *e set. `name` is the field ("prompt",
 * "input[3]"), `param` the error's param. */
static int parse_ids(const cJSON *arr, const struct serve_limits *lim, const char *name, const char *param,
                     int32_t **out, int32_t *n_out, struct serve_error *e) {
    const int n = cJSON_GetArraySize(arr);
    if (n == 0) return BAD_REQUEST(e, param, "'%s' is an empty list of token ids", name);
    if (n > lim->n_ctx)
        return serve_error_set(e, 400, "invalid_request_error", param, "context_length_exceeded",
                               "the %s is %d tokens, more than the context of %d tokens",
                               strcmp(name, "prompt") ? name : "prompt", n, lim->n_ctx);
    int32_t *ids = malloc((size_t)n * sizeof *ids);
    if (!ids) return serve_error_set(e, 500, "server_error", NULL, NULL, "out of memory");
    int i = 0;
    for (const cJSON *v = arr->child; v; v = v->next, i++) {
        if (!cJSON_IsNumber(v) || v->valuedouble != floor(v->valuedouble) || v->valuedouble < 0 ||
            v->valuedouble >= lim->n_vocab) {
            free(ids);
            return BAD_REQUEST(e, param, "%s token %d is not a token id from 0 to %d", name, i, lim->n_vocab - 1);
        }
        ids[i] = (int32_t)v->valuedouble;
    }
    *out = ids;
    *n_out = n;
    return 0;
}

/* Whether every element of arr is a number (a list of token ids rather than of prompts). */
static bool all_numbers(const cJSON *arr) {
    for (const cJSON *v = arr->child; v; v = v->next)
        if (!cJSON_IsNumber(v)) return false;
    return true;
}

static int parse_prompt(const cJSON *root, const struct serve_limits *lim, struct serve_params *p,
                        struct serve_error *e) {
    const cJSON *v = field(root, "prompt");
    if (!v) return BAD_REQUEST(e, "prompt", "'prompt' is required");
    if (cJSON_IsArray(v) && cJSON_GetArraySize(v) == 1 && !cJSON_IsNumber(v->child)) v = v->child; /* ["text"], [[ids]] */
    if (cJSON_IsString(v)) {
        p->prompt_len = strlen(v->valuestring);
        p->prompt_text = strdup(v->valuestring);
        return p->prompt_text ? 0 : serve_error_set(e, 500, "server_error", NULL, NULL, "out of memory");
    }
    if (!cJSON_IsArray(v))
        return BAD_REQUEST(e, "prompt", "'prompt' must be a string, a list of token ids, or a list of one of those");
    if (!all_numbers(v)) {
        bool prompts = true; /* a list of prompts (texts or id lists), not ids mixed with other things */
        for (const cJSON *x = v->child; x; x = x->next) prompts &= cJSON_IsString(x) || cJSON_IsArray(x);
        if (prompts && cJSON_GetArraySize(v) > 1)
            return BAD_REQUEST(e, "prompt", "'prompt' holds %d prompts; this server takes one prompt per request",
                               cJSON_GetArraySize(v));
        return BAD_REQUEST(e, "prompt", "'prompt' must be a string, a list of token ids, or a list of one of those");
    }
    p->has_prompt_ids = true;
    return parse_ids(v, lim, "prompt", "prompt", &p->prompt_ids, &p->n_prompt_ids, e);
}

/* A message's content: a string, or a list of {"type": "text", "text": ...} parts joined by "\n". */
static int parse_content(const cJSON *c, size_t i, char **out, struct serve_error *e) {
    char name[48];
    snprintf(name, sizeof name, "messages[%zu].content", i);
    if (!c) return BAD_REQUEST(e, name, "'%s' is required (a string or a list of text parts)", name);
    if (cJSON_IsString(c)) {
        *out = strdup(c->valuestring);
        return *out ? 0 : serve_error_set(e, 500, "server_error", NULL, NULL, "out of memory");
    }
    if (!cJSON_IsArray(c)) return BAD_REQUEST(e, name, "'%s' must be a string or a list of text parts", name);
    struct sv_buf b = {0};
    sv_buf_add(&b, "", 0);
    int k = 0;
    for (const cJSON *part = c->child; part; part = part->next, k++) {
        const cJSON *type = cJSON_IsObject(part) ? field(part, "type") : NULL;
        const cJSON *text = cJSON_IsObject(part) ? field(part, "text") : NULL;
        if (!cJSON_IsString(type) || strcmp(type->valuestring, "text") != 0 || !cJSON_IsString(text)) {
            sv_buf_free(&b);
            return BAD_REQUEST(e, name, "'%s[%d]' is not a text part ({\"type\": \"text\", \"text\": ...}); "
                               "this server takes text only", name, k);
        }
        if (k) sv_buf_add(&b, "\n", 1);
        sv_buf_str(&b, text->valuestring);
    }
    if (b.failed) {
        sv_buf_free(&b);
        return serve_error_set(e, 500, "server_error", NULL, NULL, "out of memory");
    }
    *out = b.p;
    return 0;
}

static int parse_messages(const cJSON *root, struct serve_params *p, struct serve_error *e) {
    const cJSON *v = field(root, "messages");
    if (!v) return BAD_REQUEST(e, "messages", "'messages' is required");
    if (!cJSON_IsArray(v)) return BAD_REQUEST(e, "messages", "'messages' must be a list of messages");
    const int n = cJSON_GetArraySize(v);
    if (n == 0) return BAD_REQUEST(e, "messages", "'messages' is empty");
    if (n > SERVE_MAX_MESSAGES)
        return BAD_REQUEST(e, "messages", "'messages' holds %d messages; at most %d are taken", n, SERVE_MAX_MESSAGES);
    p->messages = calloc((size_t)n, sizeof *p->messages);
    if (!p->messages) return serve_error_set(e, 500, "server_error", NULL, NULL, "out of memory");
    size_t i = 0;
    for (const cJSON *m = v->child; m; m = m->next, i++) {
        char name[48];
        snprintf(name, sizeof name, "messages[%zu]", i);
        if (!cJSON_IsObject(m)) return BAD_REQUEST(e, name, "'%s' must be an object with role and content", name);
        const cJSON *role = field(m, "role");
        snprintf(name, sizeof name, "messages[%zu].role", i);
        if (!cJSON_IsString(role)) return BAD_REQUEST(e, name, "'%s' must be a string", name);
        const char *r = role->valuestring;
        if (!strcmp(r, "developer")) r = "system"; /* OpenAI's newer name for the system message */
        if (strcmp(r, "system") && strcmp(r, "user") && strcmp(r, "assistant"))
            return BAD_REQUEST(e, name, "'%s' is '%.32s'; this server takes system, developer, user and assistant", name,
                               role->valuestring);
        p->messages[i].role = strdup(r);
        p->n_messages = i + 1;
        if (!p->messages[i].role) return serve_error_set(e, 500, "server_error", NULL, NULL, "out of memory");
        if (parse_content(field(m, "content"), i, &p->messages[i].content, e)) return -1;
    }
    return 0;
}

static int parse_stop(const cJSON *root, struct serve_params *p, struct serve_error *e) {
    const cJSON *v = field(root, "stop");
    if (!v) return 0;
    const cJSON *one = cJSON_IsString(v) ? v : NULL;
    if (!one && !cJSON_IsArray(v)) return BAD_REQUEST(e, "stop", "'stop' must be a string or a list of strings");
    if (!one && cJSON_GetArraySize(v) > SERVE_MAX_STOP)
        return BAD_REQUEST(e, "stop", "'stop' holds %d strings; at most %d are taken", cJSON_GetArraySize(v),
                           SERVE_MAX_STOP);
    for (const cJSON *s = one ? one : v->child; s; s = one ? NULL : s->next) {
        if (!cJSON_IsString(s)) return BAD_REQUEST(e, "stop", "'stop' must be a string or a list of strings");
        const size_t n = strlen(s->valuestring);
        if (n == 0 || n > SERVE_MAX_STOP_BYTES)
            return BAD_REQUEST(e, "stop", "a stop string is %zu bytes; each must be 1 to %d", n, SERVE_MAX_STOP_BYTES);
        if (!sv_utf8_valid(s->valuestring, n)) return BAD_REQUEST(e, "stop", "a stop string is not valid UTF-8");
        if (!(p->stop[p->n_stop++] = strdup(s->valuestring)))
            return serve_error_set(e, 500, "server_error", NULL, NULL, "out of memory");
    }
    return 0;
}

/* Fields OpenAI defines that this server does not implement: refused rather than ignored, since
 * they would change the answer. */
static int refuse_unsupported(const cJSON *root, enum serve_kind kind, int32_t n, struct serve_error *e) {
    static const char *const penalties[] = {"presence_penalty", "frequency_penalty"};
    for (size_t i = 0; i < 2; i++) {
        double x = 0.0;
        if (get_number(root, penalties[i], -2.0, 2.0, &x, e)) return -1;
        if (x != 0.0)
            return BAD_REQUEST(e, penalties[i], "'%s' is not supported (only 0); repetition_penalty is", penalties[i]);
    }
    const cJSON *v = field(root, "logit_bias");
    if (v && (!cJSON_IsObject(v) || v->child)) return BAD_REQUEST(e, "logit_bias", "'logit_bias' is not supported");
    if (kind == SERVE_COMPLETION) {
        bool echo = false;
        if (get_bool(root, "echo", &echo, e)) return -1;
        if (echo) return BAD_REQUEST(e, "echo", "'echo' is not supported");
        v = field(root, "suffix");
        if (v && (!cJSON_IsString(v) || v->valuestring[0])) return BAD_REQUEST(e, "suffix", "'suffix' is not supported");
        int64_t best_of = n;
        if (get_int(root, "best_of", 1, 128, &best_of, NULL, e)) return -1;
        if (best_of != n) return BAD_REQUEST(e, "best_of", "'best_of' is not supported (only equal to n)");
    } else {
        static const char *const lists[] = {"tools", "functions"};
        for (size_t i = 0; i < 2; i++) {
            v = field(root, lists[i]);
            if (v && (!cJSON_IsArray(v) || v->child)) return BAD_REQUEST(e, lists[i], "'%s' is not supported", lists[i]);
        }
        v = field(root, "response_format");
        const cJSON *type = v && cJSON_IsObject(v) ? field(v, "type") : NULL;
        if (v && (!cJSON_IsString(type) || strcmp(type->valuestring, "text") != 0))
            return BAD_REQUEST(e, "response_format", "'response_format' is not supported (only {\"type\": \"text\"})");
    }
    return 0;
}

/* ---- parsing: the request ------------------------------------------------------------------------ */

/* `model`: absent, or the served name (copied to *out); another name is 404 model_not_found. */
static int parse_model(const cJSON *root, const struct serve_limits *lim, char **out, struct serve_error *e) {
    const cJSON *model = field(root, "model");
    if (model && !cJSON_IsString(model)) return BAD_REQUEST(e, "model", "'model' must be a string");
    if (model && strcmp(model->valuestring, lim->model_name) != 0)
        return serve_error_set(e, 404, "invalid_request_error", "model", "model_not_found",
                               "The model '%.200s' does not exist; this server runs '%.200s'", model->valuestring,
                               lim->model_name);
    if (model && !(*out = strdup(model->valuestring)))
        return serve_error_set(e, 500, "server_error", NULL, NULL, "out of memory");
    return 0;
}

static int parse_root(const cJSON *root, enum serve_kind kind, const struct serve_limits *lim, struct serve_params *p,
                      struct serve_error *e) {
    if (parse_model(root, lim, &p->model, e)) return -1;
    if (kind == SERVE_COMPLETION ? parse_prompt(root, lim, p, e) : parse_messages(root, p, e)) return -1;

    bool present = false;
    if (kind == SERVE_CHAT && get_i32(root, "max_completion_tokens", 1, INT32_MAX, &p->max_tokens, &present, e))
        return -1;
    if (!present && get_i32(root, "max_tokens", 1, INT32_MAX, &p->max_tokens, NULL, e)) return -1;
    if (get_float(root, "temperature", 0.0, 2.0, &p->temperature, e) || get_float(root, "top_p", 0.0, 1.0, &p->top_p, e) ||
        get_float(root, "min_p", 0.0, 1.0, &p->min_p, e) ||
        get_float(root, "repetition_penalty", 0.01, 100.0, &p->repeat_penalty, e) ||
        get_i32(root, "top_k", 0, INT32_MAX, &p->top_k, NULL, e))
        return -1;
    if (p->top_p == 0.0f) p->top_p = 1e-9f; /* OpenAI takes 0: only the most likely token; the sampler needs > 0 */
    /* JSON numbers arrive as doubles: integers are exact up to 2^53, and a larger one would be
     * some other integer than the client wrote (two seeds would give one answer) */
    int64_t seed = 0;
    if (get_int(root, "seed", -9007199254740992.0, 9007199254740992.0, &seed, &p->has_seed, e)) return -1;
    if (p->has_seed) p->seed = (uint64_t)seed;
    if (get_i32(root, "n", 1, 128, &p->n, NULL, e)) return -1;
    if (p->n > lim->n_seq)
        return BAD_REQUEST(e, "n", "'n' is %d; this server runs at most %d sequences at once (--parallel)", p->n,
                           lim->n_seq);
    if (parse_stop(root, p, e) || get_bool(root, "ignore_eos", &p->ignore_eos, e) ||
        get_bool(root, "return_token_ids", &p->return_token_ids, e) || get_bool(root, "stream", &p->stream, e))
        return -1;
    const cJSON *so = field(root, "stream_options");
    if (so && !cJSON_IsObject(so)) return BAD_REQUEST(e, "stream_options", "'stream_options' must be an object");
    if (so && get_bool(so, "include_usage", &p->include_usage, e)) return -1;
    if (kind == SERVE_COMPLETION) {
        if (get_i32(root, "logprobs", 0, 5, &p->top_logprobs, &p->logprobs, e)) return -1;
    } else {
        bool given = false;
        if (get_bool(root, "logprobs", &p->logprobs, e) ||
            get_i32(root, "top_logprobs", 0, SERVE_MAX_TOP_LOGPROBS, &p->top_logprobs, &given, e))
            return -1;
        if (given && !p->logprobs)
            return BAD_REQUEST(e, "top_logprobs", "'top_logprobs' needs 'logprobs': true");
    }
    return refuse_unsupported(root, kind, p->n, e);
}

/* The body as a JSON object: NULL with *e set when it is not JSON, not an object, or has bytes after
 * the object (other than white space). The caller cJSON_Deletes it. */
static cJSON *parse_body(const char *body, size_t len, struct serve_error *e) {
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(body, len, &end, false);
    if (!root) {
        const size_t at = end && end >= body && end <= body + len ? (size_t)(end - body) : 0;
        BAD_REQUEST(e, NULL, "the body is not valid JSON (at byte %zu of %zu)", at, len);
        return NULL;
    }
    if (!cJSON_IsObject(root)) {
        BAD_REQUEST(e, NULL, "the body must be a JSON object");
        cJSON_Delete(root);
        return NULL;
    }
    if (end) {
        while (end < body + len && (*end == ' ' || *end == '\t' || *end == '\r' || *end == '\n')) end++;
        if (end < body + len) {
            BAD_REQUEST(e, NULL, "the body is not valid JSON (text after the object, at byte %zu)", (size_t)(end - body));
            cJSON_Delete(root);
            return NULL;
        }
    }
    return root;
}

int serve_params_parse(enum serve_kind kind, const char *body, size_t len, const struct serve_limits *lim,
                       struct serve_params *p, struct serve_error *e) {
    memset(p, 0, sizeof *p);
    p->kind = kind;
    p->temperature = 1.0f;
    p->top_p = 1.0f;
    p->min_p = 0.0f;
    p->repeat_penalty = 1.0f;
    p->top_k = 0;
    p->n = 1;
    cJSON *root = parse_body(body, len, e);
    if (!root) return -1;
    const int r = parse_root(root, kind, lim, p, e);
    cJSON_Delete(root);
    return r;
}

void serve_params_free(struct serve_params *p) {
    free(p->model);
    free(p->prompt_text);
    free(p->prompt_ids);
    for (size_t i = 0; i < p->n_messages; i++) {
        free(p->messages[i].role);
        free(p->messages[i].content);
    }
    free(p->messages);
    for (int i = 0; i < p->n_stop; i++) free(p->stop[i]);
    memset(p, 0, sizeof *p);
}

/* ---- parsing: embeddings ------------------------------------------------------------------------- */

static int parse_input(const cJSON *root, const struct serve_limits *lim, struct serve_embed_params *p,
                       struct serve_error *e) {
    static const char what[] = "'input' must be a string, a list of strings, a list of token ids, or a list of "
                               "lists of token ids";
    const cJSON *v = field(root, "input");
    if (!v) return BAD_REQUEST(e, "input", "'input' is required");
    if (!cJSON_IsString(v) && !cJSON_IsArray(v)) return BAD_REQUEST(e, "input", "%s", what);
    if (cJSON_IsString(v) || all_numbers(v)) { /* one input: a text, or one list of ids */
        p->n_input = 1;
    } else {
        const int n = cJSON_GetArraySize(v);
        if (n > SERVE_MAX_EMBED_INPUTS)
            return BAD_REQUEST(e, "input", "'input' holds %d inputs; at most %d are taken per request", n,
                               SERVE_MAX_EMBED_INPUTS);
        bool texts = true, lists = true;
        for (const cJSON *x = v->child; x; x = x->next) texts &= cJSON_IsString(x), lists &= cJSON_IsArray(x);
        if (!texts && !lists) return BAD_REQUEST(e, "input", "%s (not a mix)", what);
        p->n_input = n;
    }
    if (cJSON_IsArray(v) && cJSON_GetArraySize(v) == 0) return BAD_REQUEST(e, "input", "'input' is an empty list");
    p->has_ids = cJSON_IsArray(v) && (all_numbers(v) || cJSON_IsArray(v->child));
    const size_t n = (size_t)p->n_input;
    if (p->has_ids) {
        p->ids = calloc(n, sizeof *p->ids);
        p->n_ids = calloc(n, sizeof *p->n_ids);
    } else {
        p->texts = calloc(n, sizeof *p->texts);
    }
    if (p->has_ids ? !p->ids || !p->n_ids : !p->texts) return serve_error_set(e, 500, "server_error", NULL, NULL, "out of memory");
    if (p->n_input == 1 && (cJSON_IsString(v) || all_numbers(v))) {
        if (p->has_ids) return parse_ids(v, lim, "input", "input", &p->ids[0], &p->n_ids[0], e);
        if (!v->valuestring[0]) return BAD_REQUEST(e, "input", "'input' is an empty string");
        return (p->texts[0] = strdup(v->valuestring)) ? 0 : serve_error_set(e, 500, "server_error", NULL, NULL, "out of memory");
    }
    int i = 0;
    for (const cJSON *x = v->child; x; x = x->next, i++) {
        char name[32];
        snprintf(name, sizeof name, "input[%d]", i);
        if (p->has_ids) {
            if (!all_numbers(x)) return BAD_REQUEST(e, "input", "'%s' must be a list of token ids", name);
            if (parse_ids(x, lim, name, "input", &p->ids[i], &p->n_ids[i], e)) return -1;
        } else {
            if (!x->valuestring[0]) return BAD_REQUEST(e, "input", "'%s' is an empty string", name);
            if (!(p->texts[i] = strdup(x->valuestring))) return serve_error_set(e, 500, "server_error", NULL, NULL, "out of memory");
        }
    }
    return 0;
}

static int parse_embed_root(const cJSON *root, const struct serve_limits *lim, struct serve_embed_params *p,
                            struct serve_error *e) {
    if (parse_model(root, lim, &p->model, e)) return -1;
    const cJSON *fmt = field(root, "encoding_format");
    if (fmt && (!cJSON_IsString(fmt) || (strcmp(fmt->valuestring, "float") && strcmp(fmt->valuestring, "base64"))))
        return BAD_REQUEST(e, "encoding_format", "'encoding_format' must be \"float\" or \"base64\"");
    p->base64 = fmt && !strcmp(fmt->valuestring, "base64");
    int64_t dims = 0;
    bool has_dims = false;
    if (get_int(root, "dimensions", 1, INT32_MAX, &dims, &has_dims, e)) return -1;
    if (has_dims && lim->dim > 0 && dims != lim->dim)
        return BAD_REQUEST(e, "dimensions", "'dimensions' is %lld; this model's embeddings have %d dimensions, and this "
                           "server does not shorten them (leave 'dimensions' out, or give %d)",
                           (long long)dims, lim->dim, lim->dim);
    return parse_input(root, lim, p, e);
}

int serve_embed_parse(const char *body, size_t len, const struct serve_limits *lim, struct serve_embed_params *p,
                      struct serve_error *e) {
    memset(p, 0, sizeof *p);
    cJSON *root = parse_body(body, len, e);
    if (!root) return -1;
    const int r = parse_embed_root(root, lim, p, e);
    cJSON_Delete(root);
    return r;
}

void serve_embed_params_free(struct serve_embed_params *p) {
    for (int32_t i = 0; i < p->n_input; i++) {
        if (p->texts) free(p->texts[i]);
        if (p->ids) free(p->ids[i]);
    }
    free(p->texts);
    free(p->ids);
    free(p->n_ids);
    free(p->model);
    memset(p, 0, sizeof *p);
}

/* ---- JSON out ------------------------------------------------------------------------------------ */

/* A JSON string of s[0..n) (valid UTF-8): quotes, backslashes and control characters escaped. */
static void j_str(struct sv_buf *o, const char *s, size_t n) {
    sv_buf_add(o, "\"", 1);
    size_t run = 0; /* bytes copied as they are, pending */
    for (size_t i = 0; i < n; i++) {
        const unsigned char c = (unsigned char)s[i];
        if (c >= 0x20 && c != '"' && c != '\\') {
            run++;
            continue;
        }
        sv_buf_add(o, s + i - run, run);
        run = 0;
        switch (c) {
        case '"': sv_buf_add(o, "\\\"", 2); break;
        case '\\': sv_buf_add(o, "\\\\", 2); break;
        case '\n': sv_buf_add(o, "\\n", 2); break;
        case '\r': sv_buf_add(o, "\\r", 2); break;
        case '\t': sv_buf_add(o, "\\t", 2); break;
        default: sv_buf_printf(o, "\\u%04x", c);
        }
    }
    sv_buf_add(o, s + n - run, run);
    sv_buf_add(o, "\"", 1);
}

static void j_cstr(struct sv_buf *o, const char *s) {
    if (s) j_str(o, s, strlen(s));
    else sv_buf_str(o, "null");
}

/* A log-probability: -inf (a token the model rules out) as -9999, OpenAI's stand-in. */
static void j_logprob(struct sv_buf *o, float lp) {
    sv_buf_printf(o, "%.9g", isfinite(lp) ? (double)lp : -9999.0);
}

/* A token's text as JSON ("token", lossy UTF-8) and its raw bytes ("bytes"). */
static void token_text(const struct serve_resp *r, int32_t id, const char **s, size_t *n) {
    *s = r->tok ? trit_tokenizer_piece(r->tok, id, TRIT_DECODE_SPECIAL, n) : NULL;
    if (!*s) *s = "", *n = 0;
}

static void j_token(struct sv_buf *o, const struct serve_resp *r, int32_t id, bool with_bytes) {
    const char *s;
    size_t n;
    token_text(r, id, &s, &n);
    struct sv_buf t = {0};
    sv_buf_add_utf8_lossy(&t, s, n);
    j_str(o, t.p ? t.p : "", t.n);
    if (t.failed) o->failed = true;
    sv_buf_free(&t);
    if (!with_bytes) return;
    sv_buf_str(o, ",\"bytes\":[");
    for (size_t i = 0; i < n; i++) sv_buf_printf(o, "%s%u", i ? "," : "", (unsigned)(unsigned char)s[i]);
    sv_buf_str(o, "]");
}

/* choice.logprobs: chat's {"content": [...]} or completions' parallel lists. */
static void j_logprobs(struct sv_buf *o, const struct serve_resp *r, const struct serve_piece *c) {
    if (!r->logprobs) {
        sv_buf_str(o, "null");
        return;
    }
    if (r->kind == SERVE_CHAT) {
        sv_buf_str(o, "{\"content\":[");
        for (size_t i = 0; i < c->n_ids; i++) {
            const struct serve_logprob *lp = &c->lps[i];
            sv_buf_str(o, i ? ",{\"token\":" : "{\"token\":");
            j_token(o, r, lp->id, false);
            sv_buf_str(o, ",\"logprob\":");
            j_logprob(o, lp->logprob);
            sv_buf_str(o, ",\"bytes\":[");
            const char *s;
            size_t n;
            token_text(r, lp->id, &s, &n);
            for (size_t b = 0; b < n; b++) sv_buf_printf(o, "%s%u", b ? "," : "", (unsigned)(unsigned char)s[b]);
            sv_buf_str(o, "],\"top_logprobs\":[");
            for (int32_t k = 0; k < lp->n_top; k++) {
                sv_buf_str(o, k ? ",{\"token\":" : "{\"token\":");
                j_token(o, r, lp->top_id[k], true);
                sv_buf_str(o, ",\"logprob\":");
                j_logprob(o, lp->top_logprob[k]);
                sv_buf_str(o, "}");
            }
            sv_buf_str(o, "]}");
        }
        sv_buf_str(o, "],\"refusal\":null}");
        return;
    }
    sv_buf_str(o, "{\"tokens\":[");
    for (size_t i = 0; i < c->n_ids; i++) {
        if (i) sv_buf_str(o, ",");
        j_token(o, r, c->lps[i].id, false);
    }
    sv_buf_str(o, "],\"token_logprobs\":[");
    for (size_t i = 0; i < c->n_ids; i++) {
        if (i) sv_buf_str(o, ",");
        j_logprob(o, c->lps[i].logprob);
    }
    sv_buf_str(o, "],\"top_logprobs\":");
    bool any_top = false;
    for (size_t i = 0; i < c->n_ids; i++) any_top |= c->lps[i].n_top > 0;
    if (!any_top) {
        sv_buf_str(o, "null");
    } else {
        sv_buf_str(o, "[");
        for (size_t i = 0; i < c->n_ids; i++) {
            sv_buf_str(o, i ? ",{" : "{");
            for (int32_t k = 0; k < c->lps[i].n_top; k++) {
                if (k) sv_buf_str(o, ",");
                j_token(o, r, c->lps[i].top_id[k], false);
                sv_buf_str(o, ":");
                j_logprob(o, c->lps[i].top_logprob[k]);
            }
            sv_buf_str(o, "}");
        }
        sv_buf_str(o, "]");
    }
    sv_buf_str(o, ",\"text_offset\":[");
    size_t off = c->text_offset;
    for (size_t i = 0; i < c->n_ids; i++) {
        sv_buf_printf(o, "%s%zu", i ? "," : "", off);
        const char *s;
        size_t n;
        token_text(r, c->lps[i].id, &s, &n);
        off += n;
    }
    sv_buf_str(o, "]}");
}

static void j_head(struct sv_buf *o, const struct serve_resp *r, const char *object) {
    sv_buf_str(o, "{\"id\":");
    j_cstr(o, r->id);
    sv_buf_printf(o, ",\"object\":\"%s\",\"created\":%lld,\"model\":", object, (long long)r->created);
    j_cstr(o, r->model);
    sv_buf_str(o, ",\"system_fingerprint\":\"" FINGERPRINT "\"");
}

static void j_usage(struct sv_buf *o, int64_t prompt, int64_t completion) {
    sv_buf_printf(o, "\"usage\":{\"prompt_tokens\":%lld,\"completion_tokens\":%lld,\"total_tokens\":%lld}",
                  (long long)prompt, (long long)completion, (long long)(prompt + completion));
}

static void j_token_ids(struct sv_buf *o, const struct serve_resp *r, const struct serve_piece *c) {
    if (!r->token_ids) return;
    sv_buf_str(o, ",\"token_ids\":[");
    for (size_t i = 0; i < c->n_ids; i++) sv_buf_printf(o, "%s%d", i ? "," : "", c->ids[i]);
    sv_buf_str(o, "]");
}

int serve_json_response(const struct serve_resp *r, const struct serve_piece *choices, int n_choices,
                        int64_t prompt_tokens, int64_t completion_tokens, struct sv_buf *o) {
    const bool chat = r->kind == SERVE_CHAT;
    j_head(o, r, chat ? "chat.completion" : "text_completion");
    sv_buf_str(o, ",\"choices\":[");
    for (int i = 0; i < n_choices; i++) {
        const struct serve_piece *c = &choices[i];
        sv_buf_printf(o, "%s{\"index\":%d,", i ? "," : "", c->index);
        sv_buf_str(o, chat ? "\"message\":{\"role\":\"assistant\",\"content\":" : "\"text\":");
        j_str(o, c->text ? c->text : "", c->n_text);
        sv_buf_str(o, chat ? "},\"logprobs\":" : ",\"logprobs\":");
        j_logprobs(o, r, c);
        sv_buf_str(o, ",\"finish_reason\":");
        j_cstr(o, c->finish_reason);
        j_token_ids(o, r, c);
        sv_buf_str(o, "}");
    }
    sv_buf_str(o, "],");
    j_usage(o, prompt_tokens, completion_tokens);
    sv_buf_str(o, "}");
    return o->failed ? -1 : 0;
}

int serve_sse_chunk(const struct serve_resp *r, const struct serve_piece *c, bool role, struct sv_buf *o) {
    const bool chat = r->kind == SERVE_CHAT;
    sv_buf_str(o, "data: ");
    j_head(o, r, chat ? "chat.completion.chunk" : "text_completion");
    sv_buf_printf(o, ",\"choices\":[{\"index\":%d,", c->index);
    if (chat) {
        sv_buf_str(o, "\"delta\":{");
        if (role) sv_buf_str(o, "\"role\":\"assistant\"");
        if (role || c->n_text || !c->finish_reason) {
            sv_buf_str(o, role ? ",\"content\":" : "\"content\":");
            j_str(o, c->text ? c->text : "", c->n_text);
        }
        sv_buf_str(o, "},\"logprobs\":");
    } else {
        sv_buf_str(o, "\"text\":");
        j_str(o, c->text ? c->text : "", c->n_text);
        sv_buf_str(o, ",\"logprobs\":");
    }
    if (c->n_ids) j_logprobs(o, r, c);
    else sv_buf_str(o, "null");
    sv_buf_str(o, ",\"finish_reason\":");
    j_cstr(o, c->finish_reason);
    j_token_ids(o, r, c);
    sv_buf_str(o, "}]}\n\n");
    return o->failed ? -1 : 0;
}

int serve_sse_usage(const struct serve_resp *r, int64_t prompt_tokens, int64_t completion_tokens, struct sv_buf *o) {
    sv_buf_str(o, "data: ");
    j_head(o, r, r->kind == SERVE_CHAT ? "chat.completion.chunk" : "text_completion");
    sv_buf_str(o, ",\"choices\":[],");
    j_usage(o, prompt_tokens, completion_tokens);
    sv_buf_str(o, "}\n\n");
    return o->failed ? -1 : 0;
}

int serve_sse_done(struct sv_buf *o) { return sv_buf_str(o, "data: [DONE]\n\n"); }

int serve_json_error(const struct serve_error *e, struct sv_buf *o) {
    sv_buf_str(o, "{\"error\":{\"message\":");
    struct sv_buf m = {0};
    sv_buf_add_utf8_lossy(&m, e->message, strlen(e->message)); /* it may quote a request's bytes */
    j_str(o, m.p ? m.p : "", m.n);
    sv_buf_free(&m);
    sv_buf_str(o, ",\"type\":");
    j_cstr(o, e->type ? e->type : "server_error");
    sv_buf_str(o, ",\"param\":");
    j_cstr(o, e->param[0] ? e->param : NULL);
    sv_buf_str(o, ",\"code\":");
    j_cstr(o, e->code);
    sv_buf_str(o, "}}");
    return o->failed ? -1 : 0;
}

int serve_sse_error(const struct serve_error *e, struct sv_buf *o) {
    sv_buf_str(o, "data: ");
    serve_json_error(e, o);
    sv_buf_str(o, "\n\n");
    return o->failed ? -1 : 0;
}

/* RFC 4648 base64 (padded) of b[0..n). */
static void j_base64(struct sv_buf *o, const unsigned char *b, size_t n) {
    static const char abc[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    char quad[4];
    for (size_t i = 0; i < n; i += 3) {
        const uint32_t x = (uint32_t)b[i] << 16 | (i + 1 < n ? (uint32_t)b[i + 1] << 8 : 0) | (i + 2 < n ? b[i + 2] : 0);
        quad[0] = abc[x >> 18 & 63];
        quad[1] = abc[x >> 12 & 63];
        quad[2] = i + 1 < n ? abc[x >> 6 & 63] : '=';
        quad[3] = i + 2 < n ? abc[x & 63] : '=';
        sv_buf_add(o, quad, 4);
    }
}

int serve_json_embeddings(const char *model, const float *vecs, int32_t n, int32_t dim, bool base64,
                          int64_t prompt_tokens, struct sv_buf *o) {
    unsigned char *le = base64 ? malloc((size_t)dim * 4) : NULL;
    if (base64 && !le) return o->failed = true, -1;
    sv_buf_str(o, "{\"object\":\"list\",\"data\":[");
    for (int32_t i = 0; i < n && !o->failed; i++) {
        const float *v = vecs + (size_t)i * (size_t)dim;
        sv_buf_printf(o, "%s{\"object\":\"embedding\",\"index\":%d,\"embedding\":", i ? "," : "", i);
        if (base64) { /* float32 little-endian, whatever this machine's order (what numpy's '<f4' reads) */
            for (int32_t k = 0; k < dim; k++) {
                uint32_t u;
                memcpy(&u, &v[k], 4);
                for (int b = 0; b < 4; b++) le[4 * k + b] = (unsigned char)(u >> (8 * b));
            }
            sv_buf_add(o, "\"", 1);
            j_base64(o, le, (size_t)dim * 4);
            sv_buf_add(o, "\"", 1);
        } else {
            sv_buf_add(o, "[", 1);
            for (int32_t k = 0; k < dim; k++) { /* %.9g: 9 significant digits give every float32 back */
                char num[32];
                const int len = snprintf(num, sizeof num, k ? ",%.9g" : "%.9g", (double)v[k]);
                sv_buf_add(o, num, (size_t)len);
            }
            sv_buf_add(o, "]", 1);
        }
        sv_buf_add(o, "}", 1);
    }
    free(le);
    sv_buf_str(o, "],\"model\":");
    j_cstr(o, model);
    sv_buf_printf(o, ",\"usage\":{\"prompt_tokens\":%lld,\"total_tokens\":%lld}}", (long long)prompt_tokens,
                  (long long)prompt_tokens);
    return o->failed ? -1 : 0;
}

int serve_json_model(const char *model, int64_t created, struct sv_buf *o) {
    sv_buf_str(o, "{\"id\":");
    j_cstr(o, model);
    sv_buf_printf(o, ",\"object\":\"model\",\"created\":%lld,\"owned_by\":\"trit\"}", (long long)created);
    return o->failed ? -1 : 0;
}

int serve_json_models(const char *model, int64_t created, struct sv_buf *o) {
    sv_buf_str(o, "{\"object\":\"list\",\"data\":[");
    serve_json_model(model, created, o);
    sv_buf_str(o, "]}");
    return o->failed ? -1 : 0;
}
