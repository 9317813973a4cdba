/*
 * template.h: chat templates. Models ship a Jinja template (tokenizer_config.json "chat_template",
 * GGUF "tokenizer.chat_template") that turns a conversation into the exact text the model was
 * trained on. trit renders the subset of Jinja that chat templates use:
 *
 *   {{ expr }}   {% if %} / {% elif %} / {% else %} / {% endif %}   {% for x in list %} / {% endfor %}
 *   {% set name = expr %}   whitespace control {%- -%} {{- -}}   {# comments #}
 *   expressions: 'strings' "strings" (with \n \t \' \" \\), integers, true/false/none, names,
 *   a.b and a['b'] and a[0] and a[-1], slices a[1:] and a[::-1], + - and ~ (concatenation),
 *   == != < > <= >=, and / or (short-circuit, giving an operand as Jinja does), not, in, ( ),
 *   filters | trim | capitalize | upper | lower | length, tests "is defined" / "is none" /
 *   "is string" / "is true" / "is false", string methods strip lstrip rstrip (with or without a set
 *   of characters) upper lower startswith endswith split, namespace(a=...) with
 *   {% set ns.a = ... %}, loop.index0 / loop.index / loop.first / loop.last, raise_exception('...').
 *
 * That is enough for Qwen3's own template (ChatML, <think> handling included: an assistant turn
 * before the last user query loses its <think>...</think> part; enable_thinking false adds the empty
 * think block to the generation prompt) when there are no tools: the tools branch needs tojson and
 * is never reached without them.
 *
 * Anything else is an error that names the construct and its offset; there is no silent fallback.
 */
#ifndef TRIT_CHAT_TEMPLATE_H
#define TRIT_CHAT_TEMPLATE_H

#include <stdbool.h>
#include <stddef.h>

#include "core/core.h"
#include "trit.h"

/* The public half (include/trit.h, "Chat templates"): struct trit_chat_message, struct
 * trit_chat_vars, trit_chat_render, trit_chat_template_plain, and trit_chat_template_load, which
 * finds a model's template (template.c, its last section). */

/* A boolean template variable beyond struct trit_chat_vars' (Qwen3's enable_thinking). */
struct chat_flag {
    const char *name;
    bool value;
};
/* trit_chat_render with n_flags more variables: a name not given is undefined, as in Jinja
 * (Qwen3 then thinks). */
enum trit_status chat_render_flags(const char *tmpl, const struct trit_chat_vars *vars, const struct chat_flag *flags,
                                   size_t n_flags, char **out);

#endif /* TRIT_CHAT_TEMPLATE_H */
