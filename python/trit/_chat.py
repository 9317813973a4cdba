"""_chat.py: a model's chat template, found where `trit chat` finds it (tools/common.c
tool_chat_template), and rendered by the library's renderer (trit_chat_render).

    GGUF file     the string key tokenizer.chat_template
    HF folder     tokenizer_config.json "chat_template" (a string, or a list of {"name", "template"}
                  whose "default" entry is taken), replaced by chat_template.jinja when the folder
                  has one
    neither       None: the library's plain "role: content" template is used, as trit chat does

Finding the template is the CLI's helper, not the library's, so it is written again here over the
file formats; rendering is the library's own (host/chat/template.h), so `Model.chat` renders exactly
the text `trit chat` runs.
"""
import ctypes
import json
import os
import struct

from . import _lib

# GGUF value types (docs/formats.md): the fixed sizes of the scalar ones
_GGUF_SCALAR = {0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8}
_GGUF_STRING, _GGUF_ARRAY = 8, 9
_GGUF_MAX_KV = 1 << 20  # a header with more keys than this is not one we read


class _Reader:
    """Bounded reads over a file: every length is checked against what the file holds."""

    def __init__(self, f, size):
        self.f, self.size = f, size

    def take(self, n):
        if n < 0 or n > self.size - self.f.tell():
            raise ValueError("truncated")
        return self.f.read(n)

    def u32(self):
        return struct.unpack("<I", self.take(4))[0]

    def u64(self):
        return struct.unpack("<Q", self.take(8))[0]

    def skip(self, n):
        if n < 0 or n > self.size - self.f.tell():
            raise ValueError("truncated")
        self.f.seek(n, os.SEEK_CUR)

    def skip_value(self, vtype, depth=0):
        if vtype in _GGUF_SCALAR:
            self.skip(_GGUF_SCALAR[vtype])
        elif vtype == _GGUF_STRING:
            self.skip(self.u64())
        elif vtype == _GGUF_ARRAY and depth == 0:
            etype, count = self.u32(), self.u64()
            if etype in _GGUF_SCALAR:
                self.skip(_GGUF_SCALAR[etype] * count)
            else:
                for _ in range(count):
                    self.skip_value(etype, depth + 1)
        else:
            raise ValueError("value type %d" % vtype)


def _gguf_string(path, key):
    """The string value of `key` in a GGUF v2/v3 header, or None (absent, another type, or a file
    that is not such a GGUF: the model loader has already said what is wrong with it)."""
    want = key.encode()
    try:
        with open(path, "rb") as f:
            r = _Reader(f, os.fstat(f.fileno()).st_size)
            if r.take(4) != b"GGUF" or r.u32() not in (2, 3):
                return None
            r.u64()  # tensors
            n_kv = r.u64()
            for _ in range(min(n_kv, _GGUF_MAX_KV)):
                name = r.take(r.u64())
                vtype = r.u32()
                if name == want:
                    return r.take(r.u64()).decode("utf-8", "replace") if vtype == _GGUF_STRING else None
                r.skip_value(vtype)
    except (OSError, ValueError, struct.error):
        return None
    return None


def _folder_template(path):
    t = None
    try:
        with open(os.path.join(path, "tokenizer_config.json"), "rb") as f:
            field = json.load(f).get("chat_template")
        if isinstance(field, str):
            t = field
        elif isinstance(field, list):
            for entry in field:
                if isinstance(entry, dict) and entry.get("name") == "default" and isinstance(entry.get("template"), str):
                    t = entry["template"]
    except (OSError, ValueError, AttributeError):
        t = None
    try:
        with open(os.path.join(path, "chat_template.jinja"), "rb") as f:
            t = f.read().decode("utf-8", "replace")
    except OSError:
        pass
    return t


def find_template(path):
    """The chat template of the model at `path` (a str), or None when it has none."""
    if os.path.isdir(path):
        return _folder_template(path) if os.path.isfile(os.path.join(path, "config.json")) else None
    return _gguf_string(path, "tokenizer.chat_template")


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
