// labels: unit
/* test_chat_template.c: the Jinja subset against jinja2's own renderings (trim_blocks and
 * lstrip_blocks on, as transformers' apply_chat_template sets them). The expected strings were
 * produced by jinja2 3.1.6 from the same templates and messages. */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "chat/template.h"

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
