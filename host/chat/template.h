/*
 * template.h: chat templates. Models ship a Jinja template (tokenizer_config.json "chat_template",
 * GGUF "tokenizer.chat_template") that turns a conversation into the exact text the model was
 * trained on. trit renders the subset of Jinja that chat templates use:
 *
 *   {{ expr }}   {% if %} / {% elif %} / {% else %} / {% endif %}   {% for x in list %} / {% endfor %}
 *   {% set name = expr %}   whitespace control {%- -%} {{- -}}   {# comments #}
 *   expressions: 'strings' "strings" (with \n \t \' \" \\), integers, true/false/none, names,
 *   a.b and a['b'] and a[0], + and ~ (concatenation), == != < > <= >=, and or not, in,
 *   ( ), filters | trim | capitalize | upper | lower | length, tests "is defined" / "is none" /
 *   "is string", loop.index0 / loop.index / loop.first / loop.last, raise_exception('...').
 *
 * Anything else is an error that names the construct and its offset; there is no silent fallback.
 */
#ifndef TRIT_CHAT_TEMPLATE_H
#define TRIT_CHAT_TEMPLATE_H

#include <stdbool.h>
#include <stddef.h>

#include "core/core.h"

struct trit_chat_message {
    const char *role;    /* "system", "user", "assistant" */
    const char *content;
};

struct trit_chat_vars {
    const struct trit_chat_message *messages;
    size_t n_messages;
    const char *bos_token; /* text of BOS, "" when none */
    const char *eos_token;
    bool add_generation_prompt;
};

/* Renders `tmpl` into a new NUL-terminated string (*out, free with free()). */
enum trit_status trit_chat_render(const char *tmpl, const struct trit_chat_vars *vars, char **out);

/* The template trit uses when a model has none: "<role>: <content>\n" per message, and
 * "assistant: " as the generation prompt, after BOS. */
extern const char *const trit_chat_template_plain;

#endif /* TRIT_CHAT_TEMPLATE_H */
