// labels: unit
/* test_serve_openai.c: the OpenAI shapes of `trit serve` (tools/serve/openai.c): request bodies to
 * parameters (defaults, every type and range check, the prompt forms, messages, the fields refused
 * as unsupported, 404 for another model) and the JSON written back (responses, stream chunks,
 * usage, errors, logprobs), each read back with cJSON; embeddings bodies (every input form, the
 * hostile ones, encoding_format, dimensions) and answers (floats and base64 that give back every
 * float32's bits). */
#include <criterion/criterion.h>
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "serve/openai.h"
#include "support.h"

static const struct serve_limits LIM = {"trit-kjv-4m.gguf", 4096, 256, 8, 256};

static int parse(enum serve_kind kind, const char *body, struct serve_params *p, struct serve_error *e) {
    memset(e, 0, sizeof *e);
    return serve_params_parse(kind, body, strlen(body), &LIM, p, e);
}

/* The body is refused with `http`, naming `param` ("" for none) and a message holding `needle`. */
static void refused(enum serve_kind kind, const char *body, int http, const char *param, const char *needle) {
    struct serve_params p;
    struct serve_error e;
    cr_assert_eq(parse(kind, body, &p, &e), -1, "accepted: %s", body);
    cr_assert_eq(e.http, http, "%s: HTTP %d (%s)", body, e.http, e.message);
    cr_assert_str_eq(e.param, param, "%s: param '%s' (%s)", body, e.param, e.message);
    cr_assert(strstr(e.message, needle), "%s: message '%s' lacks '%s'", body, e.message, needle);
    serve_params_free(&p);
}

Test(serve_openai, defaults_are_openai_s) {
    struct serve_params p;
    struct serve_error e;
    cr_assert_eq(parse(SERVE_COMPLETION, "{\"prompt\": \"In the beginning\"}", &p, &e), 0, "%s", e.message);
    cr_assert_str_eq(p.prompt_text, "In the beginning");
    cr_assert_eq(p.temperature, 1.0f);
    cr_assert_eq(p.top_p, 1.0f);
    cr_assert_eq(p.top_k, 0);
    cr_assert_eq(p.min_p, 0.0f);
    cr_assert_eq(p.repeat_penalty, 1.0f);
    cr_assert_eq(p.max_tokens, 0, "0: up to the context");
    cr_assert_eq(p.n, 1);
    cr_assert_not(p.has_seed || p.stream || p.logprobs || p.ignore_eos || p.return_token_ids || p.n_stop);
    cr_assert_null(p.model);
    serve_params_free(&p);
}

Test(serve_openai, every_parameter_is_read) {
    struct serve_params p;
    struct serve_error e;
    const char *body = "{\"model\": \"trit-kjv-4m.gguf\", \"prompt\": [1, 2, 3], \"max_tokens\": 7, \"temperature\": 0.5,"
                       " \"top_p\": 0.9, \"top_k\": 40, \"min_p\": 0.05, \"repetition_penalty\": 1.1, \"seed\": 42,"
                       " \"n\": 3, \"stop\": [\"\\n\", \"END\"], \"stream\": true, \"stream_options\": {\"include_usage\":"
                       " true}, \"ignore_eos\": true, \"return_token_ids\": true, \"logprobs\": 2, \"user\": \"x\","
                       " \"presence_penalty\": 0, \"frequency_penalty\": 0, \"logit_bias\": {}, \"unknown\": [1, {}]}";
    cr_assert_eq(parse(SERVE_COMPLETION, body, &p, &e), 0, "%s", e.message);
    cr_assert_str_eq(p.model, "trit-kjv-4m.gguf");
    cr_assert(p.has_prompt_ids);
    cr_assert_eq(p.n_prompt_ids, 3);
    cr_assert_eq(p.prompt_ids[2], 3);
    cr_assert_eq(p.max_tokens, 7);
    cr_assert_eq(p.temperature, 0.5f);
    cr_assert_float_eq(p.top_p, 0.9f, 1e-7);
    cr_assert_eq(p.top_k, 40);
    cr_assert_float_eq(p.min_p, 0.05f, 1e-9);
    cr_assert_float_eq(p.repeat_penalty, 1.1f, 1e-7);
    cr_assert(p.has_seed);
    cr_assert_eq(p.seed, 42);
    cr_assert_eq(p.n, 3);
    cr_assert_eq(p.n_stop, 2);
    cr_assert_str_eq(p.stop[0], "\n");
    cr_assert_str_eq(p.stop[1], "END");
    cr_assert(p.stream && p.include_usage && p.ignore_eos && p.return_token_ids);
    cr_assert(p.logprobs);
    cr_assert_eq(p.top_logprobs, 2);
    serve_params_free(&p);
}

Test(serve_openai, prompt_forms) {
    struct serve_params p;
    struct serve_error e;
    cr_assert_eq(parse(SERVE_COMPLETION, "{\"prompt\": [\"one\"]}", &p, &e), 0, "%s", e.message);
    cr_assert_str_eq(p.prompt_text, "one");
    serve_params_free(&p);
    cr_assert_eq(parse(SERVE_COMPLETION, "{\"prompt\": [[5, 6]]}", &p, &e), 0, "%s", e.message);
    cr_assert(p.has_prompt_ids);
    cr_assert_eq(p.n_prompt_ids, 2);
    cr_assert_eq(p.prompt_ids[0], 5);
    serve_params_free(&p);
    cr_assert_eq(parse(SERVE_COMPLETION, "{\"prompt\": \"\"}", &p, &e), 0, "an empty text is the tokenizer's to judge");
    serve_params_free(&p);
    refused(SERVE_COMPLETION, "{}", 400, "prompt", "required");
    refused(SERVE_COMPLETION, "{\"prompt\": null}", 400, "prompt", "required");
    refused(SERVE_COMPLETION, "{\"prompt\": 5}", 400, "prompt", "must be a string");
    refused(SERVE_COMPLETION, "{\"prompt\": []}", 400, "prompt", "empty");
    refused(SERVE_COMPLETION, "{\"prompt\": [\"a\", \"b\"]}", 400, "prompt", "2 prompts");
    refused(SERVE_COMPLETION, "{\"prompt\": [[1], [2]]}", 400, "prompt", "2 prompts");
    refused(SERVE_COMPLETION, "{\"prompt\": [1, \"a\"]}", 400, "prompt", "must be a string");
    refused(SERVE_COMPLETION, "{\"prompt\": [1, -1]}", 400, "prompt", "token 1 is not a token id from 0 to 4095");
    refused(SERVE_COMPLETION, "{\"prompt\": [4096]}", 400, "prompt", "from 0 to 4095");
    refused(SERVE_COMPLETION, "{\"prompt\": [1.5]}", 400, "prompt", "not a token id");
    /* more ids than the context: refused before a copy is made, with both numbers */
    char body[2048] = "{\"prompt\": [";
    for (int i = 0; i < 257; i++) strcat(body, i ? ",1" : "1");
    strcat(body, "]}");
    refused(SERVE_COMPLETION, body, 400, "prompt", "257 tokens, more than the context of 256");
}

Test(serve_openai, messages) {
    struct serve_params p;
    struct serve_error e;
    const char *body = "{\"messages\": [{\"role\": \"developer\", \"content\": \"Be terse.\"},"
                       " {\"role\": \"user\", \"content\": [{\"type\": \"text\", \"text\": \"a\"},"
                       " {\"type\": \"text\", \"text\": \"b\"}], \"name\": \"ignored\"},"
                       " {\"role\": \"assistant\", \"content\": \"ok\"}], \"max_completion_tokens\": 9, \"max_tokens\": 3,"
                       " \"logprobs\": true, \"top_logprobs\": 20}";
    cr_assert_eq(parse(SERVE_CHAT, body, &p, &e), 0, "%s", e.message);
    cr_assert_eq(p.n_messages, 3);
    cr_assert_str_eq(p.messages[0].role, "system", "developer is read as system");
    cr_assert_str_eq(p.messages[1].content, "a\nb");
    cr_assert_str_eq(p.messages[2].role, "assistant");
    cr_assert_eq(p.max_tokens, 9, "max_completion_tokens wins over max_tokens");
    cr_assert(p.logprobs);
    cr_assert_eq(p.top_logprobs, 20);
    serve_params_free(&p);
    refused(SERVE_CHAT, "{}", 400, "messages", "required");
    refused(SERVE_CHAT, "{\"messages\": []}", 400, "messages", "empty");
    refused(SERVE_CHAT, "{\"messages\": {}}", 400, "messages", "list");
    refused(SERVE_CHAT, "{\"messages\": [1]}", 400, "messages[0]", "object");
    refused(SERVE_CHAT, "{\"messages\": [{\"content\": \"x\"}]}", 400, "messages[0].role", "string");
    refused(SERVE_CHAT, "{\"messages\": [{\"role\": \"tool\", \"content\": \"x\"}]}", 400, "messages[0].role", "'tool'");
    refused(SERVE_CHAT, "{\"messages\": [{\"role\": \"user\"}]}", 400, "messages[0].content", "required");
    refused(SERVE_CHAT, "{\"messages\": [{\"role\": \"user\", \"content\": 3}]}", 400, "messages[0].content", "string");
    refused(SERVE_CHAT,
            "{\"messages\": [{\"role\": \"user\", \"content\": [{\"type\": \"image_url\", \"image_url\": {}}]}]}", 400,
            "messages[0].content", "text only");
    refused(SERVE_CHAT, "{\"messages\": [{\"role\": \"user\", \"content\": \"x\"}], \"top_logprobs\": 2}", 400,
            "top_logprobs", "needs 'logprobs'");
    refused(SERVE_CHAT, "{\"messages\": [{\"role\": \"user\", \"content\": \"x\"}], \"logprobs\": true, \"top_logprobs\": 21}",
            400, "top_logprobs", "from 0 to 20");
    refused(SERVE_CHAT, "{\"messages\": [{\"role\": \"user\", \"content\": \"x\"}], \"logprobs\": 1}", 400, "logprobs",
            "true or false");
    refused(SERVE_CHAT, "{\"messages\": [{\"role\": \"user\", \"content\": \"x\"}], \"tools\": [{}]}", 400, "tools",
            "not supported");
    refused(SERVE_CHAT,
            "{\"messages\": [{\"role\": \"user\", \"content\": \"x\"}], \"response_format\": {\"type\": \"json_object\"}}",
            400, "response_format", "not supported");
}

Test(serve_openai, types_and_ranges) {
    static const struct {
        const char *field, *needle;
    } bad[] = {
        {"\"temperature\": -0.1", "from 0 to 2"},   {"\"temperature\": 2.5", "from 0 to 2"},
        {"\"temperature\": \"1\"", "a number"},     {"\"top_p\": 1.5", "from 0 to 1"},
        {"\"min_p\": -1", "from 0 to 1"},           {"\"top_k\": -1", "from 0"},
        {"\"top_k\": 2.5", "an integer"},           {"\"repetition_penalty\": 0", "from 0.01"},
        {"\"max_tokens\": 0", "from 1"},            {"\"max_tokens\": 1e300", "from 1"},
        {"\"max_tokens\": true", "an integer"},     {"\"n\": 0", "from 1"},
        {"\"n\": 9", "at most 8 sequences"},        {"\"seed\": 0.5", "an integer"},
        {"\"seed\": 1e30", "from"},                 {"\"stream\": 1", "true or false"},
        {"\"stream_options\": 1", "an object"},     {"\"ignore_eos\": \"yes\"", "true or false"},
        {"\"logprobs\": 6", "from 0 to 5"},         {"\"logprobs\": true", "an integer"},
        {"\"stop\": 1", "a string or a list"},      {"\"stop\": [\"\"]", "1 to 256"},
        {"\"stop\": [1]", "a string or a list"},    {"\"stop\": [\"a\",\"b\",\"c\",\"d\",\"e\"]", "at most 4"},
        {"\"stop\": \"\xff\"", "UTF-8"},          {"\"presence_penalty\": 0.5", "not supported"},
        {"\"frequency_penalty\": -1", "not supported"}, {"\"logit_bias\": {\"1\": 5}", "not supported"},
        {"\"echo\": true", "not supported"},        {"\"suffix\": \"x\"", "not supported"},
        {"\"best_of\": 2", "not supported"},        {"\"model\": 5", "a string"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char body[256], param[32];
        snprintf(body, sizeof body, "{\"prompt\": \"x\", %s}", bad[i].field);
        const char *q = strchr(bad[i].field + 1, '"');
        snprintf(param, sizeof param, "%.*s", (int)(q - bad[i].field - 1), bad[i].field + 1);
        refused(SERVE_COMPLETION, body, 400, param, bad[i].needle);
    }
    struct serve_params p;
    struct serve_error e;
    cr_assert_eq(parse(SERVE_COMPLETION, "{\"prompt\": \"x\", \"top_p\": 0, \"seed\": -1, \"temperature\": null}", &p, &e), 0,
                 "%s", e.message);
    cr_assert(p.top_p > 0.0f && p.top_p < 1e-6f, "top_p 0: only the most likely token");
    cr_assert_eq(p.seed, UINT64_MAX, "a negative seed wraps");
    cr_assert_eq(p.temperature, 1.0f, "null is absent");
    serve_params_free(&p);
}

Test(serve_openai, malformed_bodies_and_another_model) {
    refused(SERVE_COMPLETION, "", 400, "", "not valid JSON");
    refused(SERVE_COMPLETION, "{\"prompt\": \"x\"", 400, "", "not valid JSON");
    refused(SERVE_COMPLETION, "{\"prompt\": \"x\"} {}", 400, "", "text after the object");
    refused(SERVE_COMPLETION, "[1, 2]", 400, "", "a JSON object");
    refused(SERVE_COMPLETION, "{\"prompt\": \"x\", \"model\": \"gpt-4o\"}", 404, "model", "'gpt-4o' does not exist");
    struct serve_params p;
    struct serve_error e;
    parse(SERVE_COMPLETION, "{\"prompt\": \"x\", \"model\": \"gpt-4o\"}", &p, &e);
    cr_assert_str_eq(e.code, "model_not_found");
    serve_params_free(&p);
    /* a body with a NUL byte inside: parsing stops there (not a crash, not a read past it) */
    const char nul[] = "{\"prompt\": \"x\"}\0{";
    cr_assert_eq(serve_params_parse(SERVE_COMPLETION, nul, sizeof nul - 1, &LIM, &p, &e), -1);
    serve_params_free(&p);
}

/* ---- JSON out ------------------------------------------------------------------------------------ */

static cJSON *parse_json(const struct sv_buf *b) {
    cr_assert_not(b->failed);
    cJSON *j = cJSON_ParseWithLength(b->p, b->n);
    cr_assert_not_null(j, "not JSON: %.*s", (int)b->n, b->p);
    return j;
}

static const cJSON *at(const cJSON *j, const char *path) { /* "choices.0.message.content" */
    char buf[128];
    snprintf(buf, sizeof buf, "%s", path);
    for (char *save = NULL, *k = strtok_r(buf, ".", &save); k && j; k = strtok_r(NULL, ".", &save))
        j = (*k >= '0' && *k <= '9') ? cJSON_GetArrayItem(j, atoi(k)) : cJSON_GetObjectItemCaseSensitive(j, k);
    cr_assert_not_null(j, "no %s", path);
    return j;
}

Test(serve_openai, chat_response_shape) {
    const struct serve_resp r = {SERVE_CHAT, "chatcmpl-1", 1700000000, "m", NULL, false, true};
    const int32_t ids[] = {5, 6};
    const struct serve_piece c[2] = {{0, "Hi \"you\"\n\x01", 10, ids, 2, NULL, 0, "stop"},
                                     {1, "", 0, NULL, 0, NULL, 0, "length"}};
    struct sv_buf b = {0};
    cr_assert_eq(serve_json_response(&r, c, 2, 11, 2, &b), 0);
    cJSON *j = parse_json(&b);
    cr_assert_str_eq(at(j, "id")->valuestring, "chatcmpl-1");
    cr_assert_str_eq(at(j, "object")->valuestring, "chat.completion");
    cr_assert_eq(at(j, "created")->valuedouble, 1700000000.0);
    cr_assert_str_eq(at(j, "model")->valuestring, "m");
    cr_assert_str_eq(at(j, "choices.0.message.role")->valuestring, "assistant");
    cr_assert_str_eq(at(j, "choices.0.message.content")->valuestring, "Hi \"you\"\n\x01");
    cr_assert_str_eq(at(j, "choices.0.finish_reason")->valuestring, "stop");
    cr_assert(cJSON_IsNull(at(j, "choices.0.logprobs")));
    cr_assert_eq(at(j, "choices.0.token_ids.1")->valueint, 6);
    cr_assert_eq(at(j, "choices.1.index")->valueint, 1);
    cr_assert_str_eq(at(j, "choices.1.finish_reason")->valuestring, "length");
    cr_assert_eq(at(j, "usage.prompt_tokens")->valueint, 11);
    cr_assert_eq(at(j, "usage.completion_tokens")->valueint, 2);
    cr_assert_eq(at(j, "usage.total_tokens")->valueint, 13);
    cJSON_Delete(j);
    sv_buf_free(&b);
}

Test(serve_openai, text_with_a_nul_character_survives) {
    const struct serve_resp r = {SERVE_COMPLETION, "cmpl-1", 1, "m", NULL, false, false};
    const struct serve_piece c = {0, "a\0b", 3, NULL, 0, NULL, 0, "stop"};
    struct sv_buf b = {0};
    serve_json_response(&r, &c, 1, 1, 1, &b);
    cr_assert(strstr(b.p, "\"text\":\"a\\u0000b\""), "%s", b.p);
    cr_assert_null(strstr(b.p, "token_ids"), "only when asked for");
    sv_buf_free(&b);
}

Test(serve_openai, stream_chunks) {
    const struct serve_resp r = {SERVE_CHAT, "chatcmpl-2", 5, "m", NULL, false, false};
    struct sv_buf b = {0};
    const struct serve_piece first = {0, "", 0, NULL, 0, NULL, 0, NULL}, mid = {0, "Hel", 3, NULL, 0, NULL, 0, NULL},
                             last = {0, "", 0, NULL, 0, NULL, 0, "stop"};
    serve_sse_chunk(&r, &first, true, &b);
    serve_sse_chunk(&r, &mid, false, &b);
    serve_sse_chunk(&r, &last, false, &b);
    serve_sse_usage(&r, 4, 1, &b);
    serve_sse_done(&b);
    /* five events, each "data: ...\n\n" */
    const char *p = b.p;
    cJSON *ev[4];
    for (int i = 0; i < 4; i++) {
        cr_assert_eq(strncmp(p, "data: ", 6), 0, "event %d: %s", i, p);
        const char *end = strstr(p, "\n\n");
        cr_assert_not_null(end);
        ev[i] = cJSON_ParseWithLength(p + 6, (size_t)(end - p - 6));
        cr_assert_not_null(ev[i], "event %d", i);
        cr_assert_str_eq(at(ev[i], "object")->valuestring, "chat.completion.chunk");
        cr_assert_str_eq(at(ev[i], "id")->valuestring, "chatcmpl-2");
        p = end + 2;
    }
    cr_assert_str_eq(p, "data: [DONE]\n\n");
    cr_assert_str_eq(at(ev[0], "choices.0.delta.role")->valuestring, "assistant");
    cr_assert_str_eq(at(ev[0], "choices.0.delta.content")->valuestring, "");
    cr_assert(cJSON_IsNull(at(ev[0], "choices.0.finish_reason")));
    cr_assert_str_eq(at(ev[1], "choices.0.delta.content")->valuestring, "Hel");
    cr_assert_null(cJSON_GetObjectItem(at(ev[1], "choices.0.delta"), "role"));
    cr_assert_null(at(ev[2], "choices.0.delta")->child, "the last chunk's delta is empty");
    cr_assert_str_eq(at(ev[2], "choices.0.finish_reason")->valuestring, "stop");
    cr_assert_eq(cJSON_GetArraySize(at(ev[3], "choices")), 0);
    cr_assert_eq(at(ev[3], "usage.total_tokens")->valueint, 5);
    for (int i = 0; i < 4; i++) cJSON_Delete(ev[i]);
    sv_buf_free(&b);

    const struct serve_resp rc = {SERVE_COMPLETION, "cmpl-3", 5, "m", NULL, false, true};
    const int32_t ids[] = {9};
    const struct serve_piece t = {2, "x", 1, ids, 1, NULL, 0, NULL};
    serve_sse_chunk(&rc, &t, false, &b);
    cJSON *j = cJSON_ParseWithLength(b.p + 6, b.n - 8);
    cr_assert_str_eq(at(j, "object")->valuestring, "text_completion");
    cr_assert_str_eq(at(j, "choices.0.text")->valuestring, "x");
    cr_assert_eq(at(j, "choices.0.index")->valueint, 2);
    cr_assert_eq(at(j, "choices.0.token_ids.0")->valueint, 9);
    cJSON_Delete(j);
    sv_buf_free(&b);
}

Test(serve_openai, logprobs_shapes) {
    trit_tokenizer *tok = NULL;
    cr_assert_eq(trit_tokenizer_load(TRIT_SOURCE_DIR "/models/trit-kjv-4m.gguf", &tok), TRIT_OK, "%s", trit_last_error());
    struct trit_tokens t = {0};
    cr_assert_eq(trit_tokenize(tok, " LORD", 5, 0, &t), TRIT_OK);
    cr_assert_eq(t.n, 1);
    struct serve_logprob lp = {t.ids[0], -0.5f, 2, {t.ids[0], 7}, {-0.5f, -INFINITY}};
    const struct serve_piece c = {0, " LORD", 5, t.ids, 1, &lp, 10, "length"};

    struct serve_resp r = {SERVE_CHAT, "chatcmpl-4", 5, "m", tok, true, false};
    struct sv_buf b = {0};
    serve_json_response(&r, &c, 1, 1, 1, &b);
    cJSON *j = parse_json(&b);
    cr_assert_str_eq(at(j, "choices.0.logprobs.content.0.token")->valuestring, " LORD");
    cr_assert_float_eq(at(j, "choices.0.logprobs.content.0.logprob")->valuedouble, -0.5, 1e-9);
    cr_assert_eq(cJSON_GetArraySize(at(j, "choices.0.logprobs.content.0.bytes")), 5);
    cr_assert_eq(at(j, "choices.0.logprobs.content.0.bytes.1")->valueint, 'L');
    cr_assert_eq(cJSON_GetArraySize(at(j, "choices.0.logprobs.content.0.top_logprobs")), 2);
    cr_assert_eq(at(j, "choices.0.logprobs.content.0.top_logprobs.1.logprob")->valuedouble, -9999.0, "-inf as -9999");
    cJSON_Delete(j);
    sv_buf_free(&b);

    r.kind = SERVE_COMPLETION;
    serve_json_response(&r, &c, 1, 1, 1, &b);
    j = parse_json(&b);
    cr_assert_str_eq(at(j, "choices.0.logprobs.tokens.0")->valuestring, " LORD");
    cr_assert_float_eq(at(j, "choices.0.logprobs.token_logprobs.0")->valuedouble, -0.5, 1e-9);
    cr_assert_float_eq(at(j, "choices.0.logprobs.top_logprobs.0. LORD")->valuedouble, -0.5, 1e-9);
    cr_assert_eq(at(j, "choices.0.logprobs.text_offset.0")->valueint, 10);
    cJSON_Delete(j);
    sv_buf_free(&b);
    trit_tokens_free(&t);
    trit_tokenizer_free(tok);
}

Test(serve_openai, errors_and_models) {
    struct serve_error e;
    serve_error_set(&e, 400, "invalid_request_error", "max_tokens", "context_length_exceeded", "too long: %d", 300);
    struct sv_buf b = {0};
    serve_json_error(&e, &b);
    cJSON *j = parse_json(&b);
    cr_assert_str_eq(at(j, "error.message")->valuestring, "too long: 300");
    cr_assert_str_eq(at(j, "error.type")->valuestring, "invalid_request_error");
    cr_assert_str_eq(at(j, "error.param")->valuestring, "max_tokens");
    cr_assert_str_eq(at(j, "error.code")->valuestring, "context_length_exceeded");
    cJSON_Delete(j);
    sv_buf_free(&b);
    serve_error_set(&e, 500, "server_error", NULL, NULL, "bad byte \xff here");
    serve_json_error(&e, &b);
    j = parse_json(&b);
    cr_assert(cJSON_IsNull(at(j, "error.param")) && cJSON_IsNull(at(j, "error.code")));
    cr_assert_str_eq(at(j, "error.message")->valuestring, "bad byte \xef\xbf\xbd here", "invalid UTF-8 replaced");
    cJSON_Delete(j);
    sv_buf_free(&b);
    serve_json_models("trit-kjv-4m.gguf", 7, &b);
    j = parse_json(&b);
    cr_assert_str_eq(at(j, "object")->valuestring, "list");
    cr_assert_str_eq(at(j, "data.0.id")->valuestring, "trit-kjv-4m.gguf");
    cr_assert_str_eq(at(j, "data.0.object")->valuestring, "model");
    cr_assert_str_eq(at(j, "data.0.owned_by")->valuestring, "trit");
    cJSON_Delete(j);
    sv_buf_free(&b);
}

/* ---- embeddings ------------------------------------------------------------------------------------ */

static int parse_embed(const char *body, struct serve_embed_params *p, struct serve_error *e) {
    memset(e, 0, sizeof *e);
    return serve_embed_parse(body, strlen(body), &LIM, p, e);
}

static void embed_refused(const char *body, int http, const char *param, const char *needle) {
    struct serve_embed_params p;
    struct serve_error e;
    cr_assert_eq(parse_embed(body, &p, &e), -1, "accepted: %.200s", body);
    cr_assert_eq(e.http, http, "%.200s: HTTP %d (%s)", body, e.http, e.message);
    cr_assert_str_eq(e.param, param, "%.200s: param '%s' (%s)", body, e.param, e.message);
    cr_assert(strstr(e.message, needle), "%.200s: message '%s' lacks '%s'", body, e.message, needle);
    serve_embed_params_free(&p);
}

Test(serve_openai, embed_input_forms) {
    struct serve_embed_params p;
    struct serve_error e;
    cr_assert_eq(parse_embed("{\"input\": \"In the beginning\", \"model\": \"trit-kjv-4m.gguf\", \"user\": \"u\"}", &p, &e),
                 0, "%s", e.message);
    cr_assert(p.n_input == 1 && !p.has_ids && !p.base64);
    cr_assert_str_eq(p.texts[0], "In the beginning");
    cr_assert_str_eq(p.model, "trit-kjv-4m.gguf");
    serve_embed_params_free(&p);
    cr_assert_eq(parse_embed("{\"input\": [\"a\", \"b c\", \"d\"], \"encoding_format\": \"base64\"}", &p, &e), 0, "%s",
                 e.message);
    cr_assert(p.n_input == 3 && !p.has_ids && p.base64);
    cr_assert_str_eq(p.texts[1], "b c");
    serve_embed_params_free(&p);
    cr_assert_eq(parse_embed("{\"input\": [1, 2, 4095], \"encoding_format\": \"float\", \"dimensions\": 256}", &p, &e),
                 0, "%s", e.message);
    cr_assert(p.n_input == 1 && p.has_ids && p.n_ids[0] == 3 && p.ids[0][2] == 4095);
    serve_embed_params_free(&p);
    cr_assert_eq(parse_embed("{\"input\": [[5], [6, 7]], \"dimensions\": null}", &p, &e), 0, "%s", e.message);
    cr_assert(p.n_input == 2 && p.has_ids && p.n_ids[0] == 1 && p.n_ids[1] == 2 && p.ids[1][1] == 7);
    serve_embed_params_free(&p);
}

Test(serve_openai, embed_hostile_bodies) {
    embed_refused("{}", 400, "input", "'input' is required");
    embed_refused("{\"input\": null}", 400, "input", "'input' is required");
    embed_refused("{\"input\": 5}", 400, "input", "must be a string, a list of strings");
    embed_refused("{\"input\": {\"text\": \"a\"}}", 400, "input", "must be a string");
    embed_refused("{\"input\": \"\"}", 400, "input", "'input' is an empty string");
    embed_refused("{\"input\": [\"a\", \"\"]}", 400, "input", "'input[1]' is an empty string");
    embed_refused("{\"input\": []}", 400, "input", "'input' is an empty list");
    embed_refused("{\"input\": [[]]}", 400, "input", "'input[0]' is an empty list of token ids");
    embed_refused("{\"input\": [\"a\", 1]}", 400, "input", "not a mix");
    embed_refused("{\"input\": [[1], \"a\"]}", 400, "input", "not a mix");
    embed_refused("{\"input\": [[1], [\"a\"]]}", 400, "input", "'input[1]' must be a list of token ids");
    embed_refused("{\"input\": [1, 4096]}", 400, "input", "input token 1 is not a token id from 0 to 4095");
    embed_refused("{\"input\": [-1]}", 400, "input", "input token 0 is not a token id");
    embed_refused("{\"input\": [1.5]}", 400, "input", "not a token id");
    embed_refused("{\"input\": [[1], [2, 1e300]]}", 400, "input", "input[1] token 1 is not a token id");
    embed_refused("{\"input\": \"a\", \"encoding_format\": \"f16\"}", 400, "encoding_format", "\"float\" or \"base64\"");
    embed_refused("{\"input\": \"a\", \"encoding_format\": 1}", 400, "encoding_format", "\"float\" or \"base64\"");
    embed_refused("{\"input\": \"a\", \"dimensions\": 128}", 400, "dimensions",
                  "'dimensions' is 128; this model's embeddings have 256 dimensions");
    embed_refused("{\"input\": \"a\", \"dimensions\": \"256\"}", 400, "dimensions", "must be an integer");
    embed_refused("{\"input\": \"a\", \"dimensions\": 0}", 400, "dimensions", "must be from 1");
    embed_refused("{\"input\": \"a\", \"model\": \"gpt-4\"}", 404, "model", "does not exist");
    embed_refused("{\"input\": \"a\"} x", 400, "", "text after the object");
    embed_refused("[\"a\"]", 400, "", "must be a JSON object");
    /* more ids than the context (256), and more inputs than 2048: refused before they are read */
    struct sv_buf b = {0};
    sv_buf_str(&b, "{\"input\": [0");
    for (int i = 0; i < 256; i++) sv_buf_str(&b, ",0");
    sv_buf_str(&b, "]}");
    embed_refused(b.p, 400, "input", "the input is 257 tokens, more than the context of 256 tokens");
    sv_buf_free(&b);
    sv_buf_str(&b, "{\"input\": [\"a\"");
    for (int i = 0; i < SERVE_MAX_EMBED_INPUTS; i++) sv_buf_str(&b, ",\"a\"");
    sv_buf_str(&b, "]}");
    embed_refused(b.p, 400, "input", "'input' holds 2049 inputs; at most 2048");
    sv_buf_free(&b);
}

/* Decodes RFC 4648 base64 (what Python's base64.b64decode does); -1 on a bad character. */
static long b64_decode(const char *s, unsigned char *out) {
    long n = 0;
    uint32_t acc = 0;
    int bits = 0;
    for (; *s && *s != '='; s++) {
        const char *abc = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/", *at_c = strchr(abc, *s);
        if (!at_c) return -1;
        acc = acc << 6 | (uint32_t)(at_c - abc);
        if ((bits += 6) >= 8) out[n++] = (unsigned char)(acc >> (bits -= 8));
    }
    return n;
}

Test(serve_openai, embed_answers_give_back_every_bit) {
    struct test_rng rng;
    test_rng_seed(&rng, 17);
    enum { N = 3, DIM = 37 }; /* 37 * 4 = 148 bytes: base64 with padding */
    float v[N * DIM];
    for (int i = 0; i < N * DIM; i++) {
        uint32_t u;
        do u = (uint32_t)test_rng_u64(&rng);
        while (((u >> 23) & 0xff) == 0xff); /* any finite float32: subnormals, -0, every exponent */
        memcpy(&v[i], &u, 4);
    }
    v[0] = -0.0f, v[1] = 1e-45f, v[2] = 3.4028235e38f;
    for (int b64 = 0; b64 < 2; b64++) {
        struct sv_buf b = {0};
        cr_assert_eq(serve_json_embeddings("m.gguf", v, N, DIM, b64, 12, &b), 0);
        cJSON *j = parse_json(&b);
        cr_assert_str_eq(at(j, "object")->valuestring, "list");
        cr_assert_str_eq(at(j, "model")->valuestring, "m.gguf");
        cr_assert_eq(at(j, "usage.prompt_tokens")->valueint, 12);
        cr_assert_eq(at(j, "usage.total_tokens")->valueint, 12);
        cr_assert_eq(cJSON_GetArraySize(at(j, "data")), N);
        for (int i = 0; i < N; i++) {
            char path[64];
            snprintf(path, sizeof path, "data.%d.object", i);
            cr_assert_str_eq(at(j, path)->valuestring, "embedding");
            snprintf(path, sizeof path, "data.%d.index", i);
            cr_assert_eq(at(j, path)->valueint, i);
            snprintf(path, sizeof path, "data.%d.embedding", i);
            const cJSON *emb = at(j, path);
            float got[DIM];
            if (b64) {
                cr_assert(cJSON_IsString(emb));
                cr_assert_eq(strlen(emb->valuestring), 4 * ((DIM * 4 + 2) / 3), "padded base64");
                unsigned char bytes[DIM * 4 + 3];
                cr_assert_eq(b64_decode(emb->valuestring, bytes), DIM * 4);
                for (int k = 0; k < DIM; k++) { /* little-endian */
                    const uint32_t u = (uint32_t)bytes[4 * k] | (uint32_t)bytes[4 * k + 1] << 8 |
                                       (uint32_t)bytes[4 * k + 2] << 16 | (uint32_t)bytes[4 * k + 3] << 24;
                    memcpy(&got[k], &u, 4);
                }
            } else {
                cr_assert_eq(cJSON_GetArraySize(emb), DIM);
                for (int k = 0; k < DIM; k++) got[k] = (float)cJSON_GetArrayItem(emb, k)->valuedouble;
            }
            cr_assert_eq(memcmp(got, v + i * DIM, sizeof got), 0, "vector %d (%s) differs", i, b64 ? "base64" : "float");
        }
        cJSON_Delete(j);
        sv_buf_free(&b);
    }
}
