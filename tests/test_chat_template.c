// labels: unit
/* test_chat_template.c: the Jinja subset against jinja2's own renderings (trim_blocks and
 * lstrip_blocks on, as transformers' apply_chat_template sets them). The expected strings were
 * produced by jinja2 3.1.6 from the same templates and messages; Qwen3's whole template is checked
 * against tests/data/tokenizers/qwen2-tiny/chat.jsonl. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <cjson/cJSON.h>

#include "chat/template.h"
#include "support.h"

static const struct trit_chat_message msgs[] = {
    {"system", "Be brief."},
    {"user", "  Hello there \n"},
    {"assistant", "Hi."},
    {"user", "Who was Moses?"},
};

static void check(const char *tmpl, const char *expected) {
    struct trit_chat_vars v = {msgs, 4, "<s>", "</s>", true};
    char *out = NULL;
    enum trit_status st = trit_chat_render(tmpl, &v, &out);
    cr_assert_eq(st, TRIT_OK, "%s", trit_last_error());
    cr_assert_str_eq(out, expected);
    free(out);
}

Test(chat_template, llama3) {
    check("{% set loop_messages = messages %}{% for message in loop_messages %}{% set content = '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n'+ message['content'] | trim + '<|eot_id|>' %}{% if loop.index0 == 0 %}{% set content = bos_token + content %}{% endif %}{{ content }}{% endfor %}{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{% endif %}",
          "<s><|start_header_id|>system<|end_header_id|>\n\nBe brief.<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nHello there<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\nHi.<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nWho was Moses?<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n");
}

Test(chat_template, bitnet2b) {
    check("{% for message in messages %}{% if loop.first %}{{ bos_token }}{% endif %}{{ message['role'] | capitalize }}: {{ message['content'] }}<|eot_id|>{% endfor %}{% if add_generation_prompt %}Assistant: {% endif %}",
          "<s>System: Be brief.<|eot_id|>User:   Hello there \n<|eot_id|>Assistant: Hi.<|eot_id|>User: Who was Moses?<|eot_id|>Assistant: ");
}

Test(chat_template, trainer) {
    check("{{ bos_token }}{% for message in messages %}{{ message['role'] + ':\\n' + message['content'] | trim + '<|eot_id|>' }}{% endfor %}{% if add_generation_prompt %}{{ 'assistant:\\n' }}{% endif %}",
          "<s>system:\nBe brief.<|eot_id|>user:\nHello there<|eot_id|>assistant:\nHi.<|eot_id|>user:\nWho was Moses?<|eot_id|>assistant:\n");
}

Test(chat_template, multiline) {
    check("{%- if messages[0]['role'] == 'system' %}\n    {%- set system = messages[0]['content'] %}\n    {%- set rest = messages[1:] %}\n{%- else %}\n    {%- set system = 'You are helpful.' %}\n    {%- set rest = messages %}\n{%- endif %}\n<<SYS>>{{ system }}<</SYS>>\n{% for m in rest %}\n  {% if m.role == 'user' %}\n[INST] {{ m.content.strip() }} [/INST]\n  {% elif m.role == 'assistant' %}\n{{ m.content }}{{ eos_token }}\n  {% else %}\n{{ raise_exception('bad role ' + m.role) }}\n  {% endif %}\n{% endfor %}\n{% if add_generation_prompt and rest | length > 0 %}>{% endif %}",
          "<<SYS>>Be brief.<</SYS>>\n[INST] Hello there [/INST]\nHi.</s>\n[INST] Who was Moses? [/INST]\n>");
}

Test(chat_template, plain) { check(trit_chat_template_plain, "<s>system: Be brief.\nuser:   Hello there \n\nassistant: Hi.\nuser: Who was Moses?\nassistant: "); }

Test(chat_template, errors_name_the_construct) {
    struct trit_chat_vars v = {msgs, 4, "<s>", "</s>", false};
    char *out = NULL;
    cr_assert_eq(trit_chat_render("{% macro x() %}{% endmacro %}", &v, &out), TRIT_ERR_UNSUPPORTED);
    cr_assert(strstr(trit_last_error(), "macro") != NULL, "%s", trit_last_error());
    cr_assert_eq(trit_chat_render("{{ messages | tojson }}", &v, &out), TRIT_ERR_UNSUPPORTED);
    cr_assert(strstr(trit_last_error(), "tojson") != NULL, "%s", trit_last_error());
    cr_assert_eq(trit_chat_render("{% if true %}never closed", &v, &out), TRIT_ERR_UNSUPPORTED);
    cr_assert_eq(trit_chat_render("{{ 'unterminated }}", &v, &out), TRIT_ERR_UNSUPPORTED);
    cr_assert_eq(trit_chat_render("{{ raise_exception('no system role') }}", &v, &out), TRIT_ERR_INVALID_ARG);
    cr_assert(strstr(trit_last_error(), "no system role") != NULL);
    cr_assert_null(out);
}

Test(chat_template, generation_prompt_off_and_empty_conversation) {
    struct trit_chat_vars v = {msgs, 0, "<s>", "</s>", false};
    char *out = NULL;
    cr_assert_eq(trit_chat_render(trit_chat_template_plain, &v, &out), TRIT_OK);
    cr_assert_str_eq(out, "<s>");
    free(out);
}

/* Jinja scoping, checked against jinja2 3.1.6: a for loop's body is a scope of its own, entered
 * afresh each iteration; a nested loop's `loop` shadows the outer one only inside it. */
Test(chat_template, loop_scopes) {
    /* outer loop.index after an inner loop (the inner loop's state must not outlive it) */
    check("{% for a in messages %}{% for b in messages %}{% endfor %}{{ loop.index }}{% endfor %}", "1234");
    check("{% for a in messages %}{{ loop.index }}{% for b in messages[:2] %}{{ loop.index }}{% endfor %}{{ loop.last }},{% endfor %}",
          "112False,212False,312False,412True,");
    /* a set inside a loop neither changes the outer variable nor carries over to the next iteration */
    check("{% set x = 'a' %}{% for m in messages %}{% set x = 'b' %}{{ x }}{% endfor %}{{ x }}", "bbbba");
    check("{% for m in messages %}{% if loop.first %}{% set y = 'f' %}{% endif %}{{ y }}|{% endfor %}", "f||||");
    /* the loop variable shadows an outer one of the same name */
    check("{% set m = 'out' %}{% for m in messages[:1] %}{{ m.role }}{% endfor %}{{ m }}", "systemout");
}

/* A long conversation: every concatenation and filter makes a string, and there is no fixed cap on
 * how many a rendering may make. */
Test(chat_template, long_conversation) {
    enum { N = 3000 };
    struct trit_chat_message *many = malloc(N * sizeof *many);
    cr_assert_not_null(many);
    for (int i = 0; i < N; i++) many[i] = (struct trit_chat_message){i % 2 ? "assistant" : "user", " hi "};
    struct trit_chat_vars v = {many, N, "<s>", "</s>", false};
    char *out = NULL;
    enum trit_status st = trit_chat_render("{% for m in messages %}{{ (m['role'] | upper) + ':' + m['content'] | trim + ';' }}{% endfor %}", &v, &out);
    cr_assert_eq(st, TRIT_OK, "%s", trit_last_error());
    cr_assert_eq(strlen(out), (size_t)(N / 2) * (strlen("USER:hi;") + strlen("ASSISTANT:hi;")));
    cr_assert(strncmp(out, "USER:hi;ASSISTANT:hi;", 21) == 0);
    free(out);
    free(many);
}

/* Hostile templates (a GGUF file carries its own) fail cleanly: no stack overflow, no signed
 * overflow, no endless rendering. */
Test(chat_template, hostile_templates_fail_cleanly) {
    struct trit_chat_vars v = {msgs, 4, "<s>", "</s>", false};
    char *out = NULL;
    const size_t n = 200000;
    char *t = malloc(8 * n + 64);
    cr_assert_not_null(t);
    /* not not not ... x */
    char *p = stpcpy(t, "{{ ");
    for (size_t i = 0; i < n; i++) p = stpcpy(p, "not ");
    stpcpy(p, "x }}");
    cr_assert_eq(trit_chat_render(t, &v, &out), TRIT_ERR_UNSUPPORTED);
    cr_assert(strstr(trit_last_error(), "nested too deeply") != NULL, "%s", trit_last_error());
    /* {% if true %} nested n deep */
    p = t;
    *p = '\0';
    for (size_t i = 0; i < n / 16; i++) p = stpcpy(p, "{%if 1%}");
    for (size_t i = 0; i < n / 16; i++) p = stpcpy(p, "{%endif%}");
    cr_assert_eq(trit_chat_render(t, &v, &out), TRIT_ERR_UNSUPPORTED);
    cr_assert(strstr(trit_last_error(), "nested too deeply") != NULL, "%s", trit_last_error());
    /* loops nested 20 deep over 4 messages would run 4^20 times */
    p = t;
    for (int i = 0; i < 20; i++) p += sprintf(p, "{%% for m%d in messages %%}", i);
    p = stpcpy(p, "x");
    for (int i = 0; i < 20; i++) p = stpcpy(p, "{% endfor %}");
    cr_assert_eq(trit_chat_render(t, &v, &out), TRIT_ERR_UNSUPPORTED);
    cr_assert(strstr(trit_last_error(), "too long") != NULL, "%s", trit_last_error());
    /* integers past int64 */
    cr_assert_eq(trit_chat_render("{{ 99999999999999999999 }}", &v, &out), TRIT_ERR_UNSUPPORTED);
    cr_assert_eq(trit_chat_render("{{ 9223372036854775807 + 1 }}", &v, &out), TRIT_ERR_UNSUPPORTED);
    cr_assert_null(out);
    free(t);
}

/* ---- trit_chat_template_load: where a model's template is found ---------------------------------- */

static void write_file(const char *path, const char *text) {
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f, "%s", path);
    cr_assert_eq(fputs(text, f) >= 0 && fclose(f) == 0, 1);
}

/* A copy of a tiny HF fixture folder (config.json and its weights) in the scratch folder. */
static const char *hf_copy(void) {
    static char dir[512];
    snprintf(dir, sizeof dir, "%s", test_tmp_path("hf"));
    cr_assert_eq(mkdir(dir, 0700), 0);
    static const char *const files[] = {"config.json", "model.safetensors"};
    for (size_t i = 0; i < 2; i++) {
        char src[1024], dst[1024];
        snprintf(src, sizeof src, "%s/%s", test_data_path("fixtures/bitnet-2b4t-tiny"), files[i]);
        snprintf(dst, sizeof dst, "%s/%s", dir, files[i]);
        FILE *in = fopen(src, "rb"), *out = fopen(dst, "wb");
        cr_assert(in && out, "%s", src);
        char buf[65536];
        size_t n;
        while ((n = fread(buf, 1, sizeof buf, in)) > 0) cr_assert_eq(fwrite(buf, 1, n, out), n);
        fclose(in);
        cr_assert_eq(fclose(out), 0);
    }
    return dir;
}

/* trit_chat_template_load(path) finds `want` (NULL: no template). */
static void expect_template(const char *path, const char *want) {
    char *t = (char *)1;
    cr_assert_eq(trit_chat_template_load(path, &t), TRIT_OK, "%s", trit_last_error());
    if (want) cr_assert_str_eq(t, want);
    else cr_assert_null(t);
    free(t);
}

Test(chat_template, load_finds_the_models_template, .init = test_tmp_make, .fini = test_tmp_remove) {
    char *t = (char *)1;
    /* the shipped GGUF model carries tokenizer.chat_template; it renders */
    cr_assert_eq(trit_chat_template_load(TRIT_SOURCE_DIR "/models/trit-kjv-4m.gguf", &t), TRIT_OK, "%s", trit_last_error());
    cr_assert(t && strstr(t, "messages"), "%s", t ? t : "(none)");
    char *out = NULL;
    const struct trit_chat_vars v = {msgs, 4, "<s>", "</s>", true};
    cr_assert_eq(trit_chat_render(t, &v, &out), TRIT_OK, "%s", trit_last_error());
    cr_assert(strstr(out, "Who was Moses?"));
    free(out), free(t);
    /* a folder: none; tokenizer_config.json's string; the "default" entry of a list; chat_template.jinja first */
    const char *dir = hf_copy();
    char path[1024];
    expect_template(dir, NULL);
    snprintf(path, sizeof path, "%s/tokenizer_config.json", dir);
    write_file(path, "{\"chat_template\": \"A{{ bos_token }}\"}");
    expect_template(dir, "A{{ bos_token }}");
    write_file(path, "{\"chat_template\": [{\"name\": \"tool_use\", \"template\": \"T\"}, {\"name\": \"default\", \"template\": \"D\"}]}");
    expect_template(dir, "D");
    snprintf(path, sizeof path, "%s/chat_template.jinja", dir);
    write_file(path, "J{{ eos_token }}");
    expect_template(dir, "J{{ eos_token }}");
    /* errors: a file that is not a model, a bad tokenizer_config.json, NULL */
    snprintf(path, sizeof path, "%s/tokenizer_config.json", dir);
    write_file(path, "{\"chat_template\": 7}");
    t = (char *)1;
    cr_assert_eq(trit_chat_template_load(dir, &t), TRIT_ERR_FORMAT);
    cr_assert_null(t);
    cr_assert_neq(trit_chat_template_load(path, &t), TRIT_OK);
    cr_assert_null(t);
    cr_assert_eq(trit_chat_template_load(NULL, &t), TRIT_ERR_INVALID_ARG);
}

/* ---- Qwen3's template ----------------------------------------------------------------------------
 * tests/data/tokenizers/qwen2-tiny/chat_template.jinja is Qwen3's template verbatim, and chat.jsonl
 * holds jinja2 3.1.6's renderings of it (trim_blocks, lstrip_blocks) for eight conversations:
 * thinking on and off, a system prompt, assistant turns with <think> blocks before and after the last
 * user query (the earlier ones lose them), a late system message, a user turn that is a
 * <tool_response>, and consecutive tool turns (make_qwen2_tiny.py there wrote them). */

static char *slurp(const char *path) {
    FILE *f = fopen(path, "rb");
    cr_assert_not_null(f, "%s", path);
    cr_assert_eq(fseek(f, 0, SEEK_END), 0);
    long n = ftell(f);
    cr_assert_eq(fseek(f, 0, SEEK_SET), 0);
    char *s = malloc((size_t)n + 1);
    cr_assert_eq(fread(s, 1, (size_t)n, f), (size_t)n);
    s[n] = '\0';
    fclose(f);
    return s;
}

Test(chat_template, qwen3_matches_jinja2) {
    char *tmpl = slurp(test_data_path("tokenizers/qwen2-tiny/chat_template.jinja"));
    char *lines = slurp(test_data_path("tokenizers/qwen2-tiny/chat.jsonl"));
    int n_conv = 0;
    for (char *line = strtok(lines, "\n"); line; line = strtok(NULL, "\n"), n_conv++) {
        cJSON *o = cJSON_Parse(line);
        cr_assert_not_null(o);
        const cJSON *ms = cJSON_GetObjectItemCaseSensitive(o, "messages"), *m;
        struct trit_chat_message msg[8];
        size_t n = 0;
        cJSON_ArrayForEach(m, ms) {
            cr_assert_lt(n, 8);
            msg[n++] = (struct trit_chat_message){cJSON_GetObjectItemCaseSensitive(m, "role")->valuestring,
                                                  cJSON_GetObjectItemCaseSensitive(m, "content")->valuestring};
        }
        struct trit_chat_vars v = {msg, n, "", "<|im_end|>",
                                   cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(o, "add_generation_prompt"))};
        const cJSON *think = cJSON_GetObjectItemCaseSensitive(o, "enable_thinking");
        struct chat_flag flag = {"enable_thinking", cJSON_IsTrue(think)};
        char *out = NULL;
        enum trit_status st = chat_render_flags(tmpl, &v, &flag, think ? 1 : 0, &out);
        cr_assert_eq(st, TRIT_OK, "conversation %d: %s", n_conv, trit_last_error());
        const char *want = cJSON_GetObjectItemCaseSensitive(o, "text")->valuestring;
        cr_assert_str_eq(out, want, "conversation %d", n_conv);
        free(out);
        cJSON_Delete(o);
    }
    cr_assert_eq(n_conv, 8);
    free(lines);
    free(tmpl);
}

/* The pieces Qwen3's template leans on, each against jinja2 3.1.6's rendering. */
Test(chat_template, qwen3_constructs) {
    check("{{ messages[::-1][0].role }}|{% for m in messages[::-1] %}{{ m.role }},{% endfor %}", "user|user,assistant,user,system,");
    check("{% set ns = namespace(a=1, b='x') %}{% for m in messages %}{% set ns.a = ns.a + 1 %}{% endfor %}{{ ns.a }}{{ ns.b }}", "5x");
    check("{{ 'a</think>b</think>c'.split('</think>')[-1] }}|{{ 'a</think>b'.split('</think>')[0] }}|{{ 'x'.split('y')|length }}", "c|a|1");
    check("{{ '\\n\\nhi\\n'.strip('\\n') }}|{{ '  hi  '.lstrip() }}|{{ 'xxhix'.rstrip('x') }}|{{ ' hi '.strip() }}", "hi|hi  |xxhi|hi");
    check("{{ 'abc'.startswith('ab') }}{{ 'abc'.endswith('bc') }}{{ 'abc'.endswith('abcd') }}", "TrueTrueFalse");
    check("{{ (messages|length - 1) - 2 }}{{ messages[1 - 2].role }}{{ -1 + 3 }}", "1user2");
    /* short-circuit: messages[4] is never evaluated on the last message */
    check("{% for m in messages %}{% if loop.last or messages[loop.index0 + 1].role != 'x' %}{{ loop.index }}{% endif %}{% endfor %}", "1234");
    check("{{ '' or 'b' }}{{ 'a' and 'c' }}{{ none or 0 }}{{ x is defined and x is false }}", "bc0False");
    check("{{ false is false }}{{ 0 is false }}{{ true is true }}{{ y is false }}", "TrueFalseTrueFalse");
    /* still refused, by name */
    struct trit_chat_vars v = {msgs, 4, "<s>", "</s>", false};
    char *out = NULL;
    cr_assert_eq(trit_chat_render("{{ 'a b'.split() }}", &v, &out), TRIT_ERR_UNSUPPORTED);
    cr_assert(strstr(trit_last_error(), "split"), "%s", trit_last_error());
    cr_assert_eq(trit_chat_render("{{ messages[0:3:2] }}", &v, &out), TRIT_ERR_UNSUPPORTED);
    cr_assert(strstr(trit_last_error(), "step"), "%s", trit_last_error());
    cr_assert_eq(trit_chat_render("{{ messages[9].role }}", &v, &out), TRIT_ERR_UNSUPPORTED);
    cr_assert(strstr(trit_last_error(), "out of range"), "%s", trit_last_error());
    cr_assert_null(out);
}
