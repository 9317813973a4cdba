"""_lib.py: libtrit.so through ctypes: finding it, the structs and prototypes of include/trit.h,
and the status codes as TritError.

Why ctypes (docs/python.md): the binding compiles nothing, neither at build time nor at import; the
package is pure Python around the one libtrit.so that CMake builds, so the wheel does not depend on
the Python version and the library stays the single implementation.

Every struct below mirrors include/trit.h field by field; tests/python/test_abi.py compiles a C
program that prints the C sizes and offsets and compares them with these.

The library is found, in order: $TRIT_LIBRARY (a path to libtrit.so: the build tree in the tests),
then libtrit.so next to this file (where `pip install .` puts it). libtrit opens its CUDA module,
libtrit-cuda.so, from its own folder when a GPU is asked for or present (host/cuda_module.c), so
the installed layout keeps both in trit/.
"""
import ctypes
import enum
import os

# ------------------------------------------------------------------------------------------------
# Status codes (enum trit_status: append-only, part of the ABI)


class Status(enum.IntEnum):
    OK = 0
    INVALID_ARG = 1
    OUT_OF_MEMORY = 2
    IO = 3
    FORMAT = 4
    UNSUPPORTED = 5
    NO_DEVICE = 6
    DEVICE = 7
    CONTEXT_FULL = 8
    NOT_FOUND = 9
    COMM = 10
    INTERNAL = 11


class TritError(Exception):
    """A failure of the library (or of an argument it would refuse): `status` is a Status, `message`
    the library's one-line message (trit_last_error)."""

    def __init__(self, message, status=Status.INVALID_ARG):
        try:
            status = Status(status)
        except ValueError:
            pass  # a code from a newer library: kept as the integer
        self.status = status
        self.message = message
        super().__init__(message)

    def __str__(self):
        name = self.status.name.lower() if isinstance(self.status, Status) else str(self.status)
        return "%s (%s)" % (self.message, name)


# ------------------------------------------------------------------------------------------------
# Structs: include/trit.h

c_progress = ctypes.CFUNCTYPE(None, ctypes.c_float, ctypes.c_void_p)


class ModelParams(ctypes.Structure):  # struct trit_model_params
    _fields_ = [("progress", c_progress), ("progress_user", ctypes.c_void_p), ("i2s_layout", ctypes.c_int)]


class ModelShape(ctypes.Structure):  # struct trit_model_shape
    _fields_ = [("architecture", ctypes.c_char_p)] + [
        (f, ctypes.c_int32) for f in ("n_layers", "dim", "n_heads", "n_kv_heads", "head_dim", "ffn_dim", "n_vocab",
                                      "n_ctx_train")] + [("n_ternary_params", ctypes.c_int64)]


class ContextParams(ctypes.Structure):  # struct trit_context_params
    _fields_ = [
        ("n_ctx", ctypes.c_int32),
        ("n_batch", ctypes.c_int32),
        ("n_threads", ctypes.c_int32),
        ("device", ctypes.c_int),
        ("logits_all", ctypes.c_bool),
        ("head_int8", ctypes.c_bool),
        ("head_q4", ctypes.c_bool),
        ("tp_size", ctypes.c_int32),
        ("tp_mpi", ctypes.c_bool),
        ("tp_quant", ctypes.c_int),
        ("mem_limit", ctypes.c_uint64),
        ("cuda_gemv", ctypes.c_int),
        ("n_seq_max", ctypes.c_int32),
        ("n_kv", ctypes.c_int32),
    ]


class SamplerParams(ctypes.Structure):  # struct trit_sampler_params
    _fields_ = [
        ("temperature", ctypes.c_float),
        ("top_k", ctypes.c_int32),
        ("top_p", ctypes.c_float),
        ("min_p", ctypes.c_float),
        ("repeat_penalty", ctypes.c_float),
        ("repeat_last_n", ctypes.c_int32),
        ("seed", ctypes.c_uint64),
    ]


class Tokens(ctypes.Structure):  # struct trit_tokens: zero-initialized, released by trit_tokens_free
    _fields_ = [("ids", ctypes.POINTER(ctypes.c_int32)), ("n", ctypes.c_size_t), ("cap", ctypes.c_size_t)]


class TokStream(ctypes.Structure):  # struct trit_tok_stream
    _fields_ = [
        ("tok", ctypes.c_void_p),
        ("flags", ctypes.c_uint),
        ("strip_space", ctypes.c_bool),
        ("n_pending", ctypes.c_uint8),
        ("pending", ctypes.c_uint8 * 4),
    ]


class Batch(ctypes.Structure):  # struct trit_batch
    _fields_ = [
        ("n_tokens", ctypes.c_int32),
        ("token", ctypes.POINTER(ctypes.c_int32)),
        ("pos", ctypes.POINTER(ctypes.c_int32)),
        ("seq_id", ctypes.POINTER(ctypes.c_int32)),
        ("logits", ctypes.POINTER(ctypes.c_int8)),
    ]


class KvStats(ctypes.Structure):  # struct trit_kv_stats
    _fields_ = [("block_tokens", ctypes.c_int32), ("n_blocks", ctypes.c_int32), ("n_free", ctypes.c_int32)]


class PerplexityResult(ctypes.Structure):  # struct trit_perplexity_result
    _fields_ = [
        ("ppl", ctypes.c_double),
        ("ppl_err", ctypes.c_double),
        ("mean_nll", ctypes.c_double),
        ("n_chunks", ctypes.c_int64),
        ("n_scored", ctypes.c_int64),
    ]


class ChatMessage(ctypes.Structure):  # struct trit_chat_message
    _fields_ = [("role", ctypes.c_char_p), ("content", ctypes.c_char_p)]


class ChatVars(ctypes.Structure):  # struct trit_chat_vars
    _fields_ = [
        ("messages", ctypes.POINTER(ChatMessage)),
        ("n_messages", ctypes.c_size_t),
        ("bos_token", ctypes.c_char_p),
        ("eos_token", ctypes.c_char_p),
        ("add_generation_prompt", ctypes.c_bool),
    ]


# enum values and flags used by the package
DEVICE = {"auto": 0, "cpu": 1, "cuda": 2}
I2S_LAYOUT = {"x86": 0, "arm": 1}
TOKENIZE_ADD_SPECIAL = 1
TOKENIZE_PARSE_SPECIAL = 2
DECODE_SPECIAL = 1
DECODE_STRIP_SPACE = 2
LOG_LEVEL = {"debug": 0, "info": 1, "warn": 2, "error": 3}
SEQ_MAX = 1024  # TRIT_SEQ_MAX
KV_BLOCK = 64  # TRIT_KV_BLOCK
EMBED_RAW = 1  # TRIT_EMBED_RAW
EMBED_NO_END = 2  # TRIT_EMBED_NO_END

# ------------------------------------------------------------------------------------------------
# Prototypes: (name, restype, argtypes)

_p = ctypes.c_void_p
_i32 = ctypes.c_int32
_pi32 = ctypes.POINTER(ctypes.c_int32)
_pf32 = ctypes.POINTER(ctypes.c_float)
_st = ctypes.c_int  # enum trit_status

_PROTOTYPES = [
    ("trit_status_str", ctypes.c_char_p, [ctypes.c_int]),
    ("trit_last_error", ctypes.c_char_p, []),
    ("trit_version", ctypes.c_char_p, []),
    ("trit_log_set_level", None, [ctypes.c_int]),
    ("trit_cuda_device_count", ctypes.c_int, []),
    ("trit_cuda_compiled", ctypes.c_int, []),
    # models
    ("trit_model_default_params", ModelParams, []),
    ("trit_model_load", _st, [ctypes.c_char_p, ctypes.POINTER(ModelParams), ctypes.POINTER(_p)]),
    ("trit_model_free", None, [_p]),
    ("trit_model_n_vocab", _i32, [_p]),
    ("trit_model_n_ctx_train", _i32, [_p]),
    ("trit_model_head_dtype", ctypes.c_char_p, [_p]),
    ("trit_model_desc", ctypes.c_char_p, [_p]),
    ("trit_model_shape", None, [_p, ctypes.POINTER(ModelShape)]),
    # contexts
    ("trit_context_default_params", ContextParams, []),
    ("trit_context_init", _st, [_p, ctypes.POINTER(ContextParams), ctypes.POINTER(_p)]),
    ("trit_context_free", None, [_p]),
    ("trit_decode", _st, [_p, _pi32, _i32, ctypes.POINTER(_pf32)]),
    ("trit_decode_argmax", _st, [_p, _pi32, _i32, _pi32]),
    ("trit_decode_sample", _st, [_p, _pi32, _i32, _p, _pi32]),
    ("trit_context_n_past", _i32, [_p]),
    ("trit_context_n_ctx", _i32, [_p]),
    ("trit_context_truncate", _st, [_p, _i32]),
    ("trit_context_backend", ctypes.c_char_p, [_p]),
    ("trit_context_device_desc", ctypes.c_char_p, [_p]),
    ("trit_context_memory_bytes", ctypes.c_uint64, [_p]),
    # batches of sequences
    ("trit_decode_batch", _st, [_p, ctypes.POINTER(Batch), ctypes.POINTER(_pf32), _pi32]),
    ("trit_seq_length", _i32, [_p, _i32]),
    ("trit_seq_remove", _st, [_p, _i32]),
    ("trit_kv_stats", None, [_p, ctypes.POINTER(KvStats)]),
    ("trit_kv_blocks_for", _i32, [_i32]),
    # embeddings
    ("trit_embed", _st, [_p, _i32, _pi32, _i32, ctypes.c_uint, _pf32]),
    # perplexity
    ("trit_perplexity", _st, [_p, _pi32, ctypes.c_int64, _i32, ctypes.c_int64, _p, _p,
                              ctypes.POINTER(PerplexityResult)]),
    # tokenizers
    ("trit_tokenizer_load", _st, [ctypes.c_char_p, ctypes.POINTER(_p)]),
    ("trit_tokenizer_free", None, [_p]),
    ("trit_tokenizer_n_vocab", _i32, [_p]),
    ("trit_tokenizer_bos", _i32, [_p]),
    ("trit_tokenizer_eos", _i32, [_p]),
    ("trit_tokenizer_add_bos", ctypes.c_bool, [_p]),
    ("trit_tokenizer_is_eog", ctypes.c_bool, [_p, _i32]),
    ("trit_tokens_free", None, [ctypes.POINTER(Tokens)]),
    ("trit_tokenize", _st, [_p, ctypes.c_char_p, ctypes.c_size_t, ctypes.c_uint, ctypes.POINTER(Tokens)]),
    ("trit_embed_tokenize", _st, [_p, ctypes.c_char_p, ctypes.c_size_t, ctypes.c_uint, ctypes.POINTER(Tokens)]),
    ("trit_tokenizer_piece", ctypes.c_void_p, [_p, _i32, ctypes.c_uint, ctypes.POINTER(ctypes.c_size_t)]),
    ("trit_detokenize", _st, [_p, _pi32, ctypes.c_size_t, ctypes.c_uint, ctypes.c_char_p, ctypes.c_size_t,
                              ctypes.POINTER(ctypes.c_size_t)]),
    ("trit_tok_stream_max_out", ctypes.c_size_t, [_p]),
    ("trit_tok_stream_init", None, [ctypes.POINTER(TokStream), _p, ctypes.c_uint]),
    ("trit_tok_stream_feed", _st, [ctypes.POINTER(TokStream), _i32, ctypes.c_char_p, ctypes.c_size_t,
                                   ctypes.POINTER(ctypes.c_size_t)]),
    ("trit_tok_stream_flush", _st, [ctypes.POINTER(TokStream), ctypes.c_char_p, ctypes.c_size_t,
                                    ctypes.POINTER(ctypes.c_size_t)]),
    # sampling
    ("trit_sampler_default_params", SamplerParams, []),
    ("trit_sampler_init", _st, [ctypes.POINTER(SamplerParams), _i32, ctypes.POINTER(_p)]),
    ("trit_sampler_free", None, [_p]),
    ("trit_sampler_sample", _i32, [_p, _pf32]),
    ("trit_sampler_accept", None, [_p, _i32]),
    # chat templates
    ("trit_chat_template_load", _st, [ctypes.c_char_p, ctypes.POINTER(ctypes.c_void_p)]),
    ("trit_chat_render", _st, [ctypes.c_char_p, ctypes.POINTER(ChatVars), ctypes.POINTER(ctypes.c_void_p)]),
]


def library_path():
    """The libtrit.so this package uses: $TRIT_LIBRARY, else the one installed beside this file."""
    env = os.environ.get("TRIT_LIBRARY")
    if env:
        return env
    return os.path.join(os.path.dirname(os.path.abspath(__file__)), "libtrit.so")


def _load():
    path = library_path()
    if not os.path.isfile(path):
        raise ImportError(
            "trit: %s does not exist. Install the package with `pip install .` at the repository root, or set "
            "TRIT_LIBRARY to a built libtrit.so (cmake -S . -B build && cmake --build build)" % path)
    lib = ctypes.CDLL(path)
    for name, restype, argtypes in _PROTOTYPES:
        fn = getattr(lib, name)
        fn.restype = restype
        fn.argtypes = argtypes
    return lib, path


lib, path = _load()
# free() for the strings trit_chat_render allocates ("free with free()"); libc is already loaded
_libc = ctypes.CDLL(None)
_libc.free.restype = None
_libc.free.argtypes = [ctypes.c_void_p]
libc_free = _libc.free
# the plain "role: content" template trit uses when a model has none
chat_template_plain = ctypes.c_char_p.in_dll(lib, "trit_chat_template_plain").value


def last_error(status, what=None):
    """A TritError for a failed status, with the library's message for this thread, after "WHAT: "
    unless the message already starts so (as the CLI writes them: tools/common.c tool_fail_status)."""
    msg = lib.trit_last_error()
    text = msg.decode("utf-8", "replace") if msg else ""
    if not text:
        text = lib.trit_status_str(status).decode("utf-8", "replace")
    if what and not text.startswith(what + ":"):
        text = "%s: %s" % (what, text)
    return TritError(text, status)


def check(status, what=None):
    if status != 0:
        raise last_error(status, what)
