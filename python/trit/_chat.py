"""_chat.py: a model's chat template, found and rendered by the library (trit_chat_template_load,
trit_chat_render in include/trit.h), as `trit chat` does, so that `Model.chat` renders exactly the
text `trit chat` runs. A model without a template (or whose template cannot be read, which `trit
chat` also treats as none) gets the library's plain "role: content" template.
"""
import ctypes

from . import _lib


def find_template(path):
    """The chat template of the model at `path` (a str), or None when it has none."""
    out = ctypes.c_void_p()
    if _lib.lib.trit_chat_template_load(path.encode(), ctypes.byref(out)) != 0 or not out.value:
        return None
    try:
        return ctypes.string_at(out.value).decode("utf-8", "replace")
    finally:
        _lib.libc_free(out)


def _text(value, what):
    if not isinstance(value, str):
        raise TypeError("%s must be a str, not %s" % (what, type(value).__name__))
    b = value.encode("utf-8")
    if b"\0" in b:
        raise ValueError("%s holds a NUL character" % what)
    return b


def render(template, messages, bos, eos):
    """messages ([{"role": ..., "content": ...}, ...]) through `template` (None: the plain one), with
    the assistant's generation prompt, as a str."""
    if isinstance(messages, (str, bytes)) or not hasattr(messages, "__iter__"):
        raise TypeError("messages must be a list of {'role': str, 'content': str} dicts")
    msgs = list(messages)
    if not msgs:
        raise ValueError("messages is empty")
    arr = (_lib.ChatMessage * len(msgs))()
    keep = []  # the encoded strings stay alive during the call
    for i, m in enumerate(msgs):
        if not isinstance(m, dict) or "role" not in m or "content" not in m:
            raise TypeError("messages[%d] must be a dict with 'role' and 'content'" % i)
        role, content = _text(m["role"], "messages[%d]['role']" % i), _text(m["content"], "messages[%d]['content']" % i)
        keep += [role, content]
        arr[i] = _lib.ChatMessage(role, content)
    tmpl = _lib.chat_template_plain if template is None else _text(template, "the chat template")
    cv = _lib.ChatVars(arr, len(msgs), bos, eos, True)
    out = ctypes.c_void_p()
    _lib.check(_lib.lib.trit_chat_render(tmpl, ctypes.byref(cv), ctypes.byref(out)))
    try:
        return ctypes.string_at(out.value).decode("utf-8", "replace")
    finally:
        _lib.libc_free(out)
