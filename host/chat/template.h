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

#include "core/core.h"

/* The public half (include/trit.h, "Chat templates"): struct trit_chat_message, struct
 * trit_chat_vars, trit_chat_render, trit_chat_template_plain, and trit_chat_template_load, which
 * finds a model's template (template.c, its last section). */

#endif /* TRIT_CHAT_TEMPLATE_H */
