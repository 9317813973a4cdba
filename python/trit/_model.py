"""_model.py: trit.Model, a model with its tokenizer and one context, over include/trit.h.

Each method does what the `trit` command of the same name does (tools/cmd_*.c), through the same
library calls, so that results are the CLI's bit for bit:

    generate / stream   trit run      PARSE_SPECIAL | ADD_SPECIAL, the prompt's ids accepted by the
                                      sampler, trit_decode_argmax when greedy without a penalty, else
                                      trit_decode_sample; stops at end of generation or the context
    logits              trit logits   the ids as given, float32 (n_tokens, n_vocab)
    perplexity          trit perplexity  no special tokens, BOS as the first token of each chunk when
                                      the vocabulary adds one, chunks of the context
    tokenize            trit tokenize (--bos) (--special)
    chat                trit chat     the model's template, PARSE_SPECIAL, 256 tokens by default
    generate_batch      trit_decode_batch: every prompt in one forward pass per step; answer i is
                                      generate(prompts[i]) with the same arguments
    embed               trit embed    BOS, the text (PARSE_SPECIAL), <|endoftext|> (else EOS) unless it
                                      ends with it; trit_embed in the generation context's sequence 0

A Model holds one context at a time, made for what it last ran (generation, logits, perplexity or a
batch): switching kinds frees the old context and makes the new one (the weights are repacked for
the backend; milliseconds for the shipped model, seconds for 2B-4T).
"""
import ctypes
import numbers
import operator
import os
import sys
import threading
import warnings
import weakref

from . import _chat, _lib
from ._lib import Status, TritError, lib
from ._stop import StopMatcher, stop_list

_MAX_TOKENS_CTX = 1 << 30  # the CLI's bound on -c (TOOL_MAX_TOKENS): no memory holds more
_SCORE_BATCH = 512  # logits(): tokens per forward pass (rows are the same for any split)
_BATCH_SEQS = 256  # generate_batch(): sequences per pass; more prompts run in waves


def _shipped_model():
    """The shipped model: $TRIT_MODEL (as the CLI reads it), else the copy installed in the package,
    else the source tree's models/ (running from a checkout with PYTHONPATH=python)."""
    env = os.environ.get("TRIT_MODEL")
    if env:
        return env
    here = os.path.dirname(os.path.abspath(__file__))
    for p in (os.path.join(here, "models", "trit-kjv-4m.gguf"),
              os.path.join(here, os.pardir, os.pardir, "models", "trit-kjv-4m.gguf")):
        if os.path.isfile(p):
            return os.path.normpath(p)
    raise TritError("the shipped model trit-kjv-4m.gguf is not installed with this package: give a path", Status.NOT_FOUND)


def _int(v, name, lo, hi):
    if isinstance(v, bool):
        raise TypeError("%s must be an int, not bool" % name)
    try:
        v = operator.index(v)  # int and numpy integers; not floats
    except TypeError:
        raise TypeError("%s must be an int, not %s" % (name, type(v).__name__)) from None
    if v < lo or v > hi:
        raise ValueError("%s must be from %d to %d (got %d)" % (name, lo, hi, v))
    return v


def _real(v, name):
    if isinstance(v, bool) or not isinstance(v, numbers.Real):  # int, float and numpy's; not "0.5"
        raise TypeError("%s must be a number, not %s" % (name, type(v).__name__))
    return float(v)


def _text(v, name):
    if not isinstance(v, str):
        raise TypeError("%s must be a str, not %s" % (name, type(v).__name__))
    return v.encode("utf-8")


def _ids_array(ids, n_vocab, allow_empty=False):
    """ids (a sequence of ints or a 1-D integer numpy array) as (a ctypes int32 array, count), every
    id checked to be in 0 .. n_vocab - 1."""
    if isinstance(ids, (str, bytes)):
        raise TypeError("ids must be a sequence of ints, not %s" % type(ids).__name__)
    np = sys.modules.get("numpy")
    if np is not None and isinstance(ids, np.ndarray):
        if ids.ndim != 1 or ids.dtype.kind not in "iu":
            raise TypeError("ids must be a 1-D integer array (got %d-D %s)" % (ids.ndim, ids.dtype))
        if ids.size and (ids.min() < 0 or ids.max() >= n_vocab):
            bad = ids[(ids < 0) | (ids >= n_vocab)][0]
            raise ValueError("ids must be from 0 to %d (got %d)" % (n_vocab - 1, bad))
        seq = ids.astype(np.int32)
        n = len(seq)
        arr = (ctypes.c_int32 * n).from_buffer_copy(seq.tobytes()) if n else (ctypes.c_int32 * 0)()
    else:
        try:
            seq = [_int(t, "ids[%d]" % i, 0, n_vocab - 1) for i, t in enumerate(ids)]
        except TypeError as e:
            if "ids[" in str(e):
                raise
            raise TypeError("ids must be a sequence of ints, not %s" % type(ids).__name__) from None
        n = len(seq)
        arr = (ctypes.c_int32 * n)(*seq)
    if n == 0 and not allow_empty:
        raise ValueError("ids is empty")
    return arr, n


def _at(array_or_ptr, index, ctype):
    """A pointer to element `index` of a ctypes array or pointer of `ctype`."""
    base = ctypes.cast(array_or_ptr, ctypes.c_void_p).value
    return ctypes.cast(ctypes.c_void_p(base + index * ctypes.sizeof(ctype)), ctypes.POINTER(ctype))


class _Handles:
    """The C objects of a Model, freed in the library's order: context, tokenizer, model. A
    weakref.finalize holds this, not the Model, so garbage collection frees them too."""

    def __init__(self):
        self.model = self.tok = self.ctx = None

    def free_ctx(self):
        if self.ctx:
            lib.trit_context_free(self.ctx)
            self.ctx = None

    def free(self):
        self.free_ctx()
        if self.tok:
            lib.trit_tokenizer_free(self.tok)
            self.tok = None
        if self.model:
            lib.trit_model_free(self.model)
            self.model = None


class _Sampler:
    """A trit_sampler, freed when the generation ends (or is collected)."""

    def __init__(self, params, n_vocab):
        self.h = ctypes.c_void_p()
        _lib.check(lib.trit_sampler_init(ctypes.byref(params), n_vocab, ctypes.byref(self.h)))
        self._fin = weakref.finalize(self, lib.trit_sampler_free, self.h)

    def free(self):
        self._fin()


class _Detok:
    """trit_tok_stream: one token at a time to text that is always whole UTF-8 characters."""

    def __init__(self, tok):
        self.s = _lib.TokStream()
        lib.trit_tok_stream_init(ctypes.byref(self.s), tok, 0)
        self.cap = lib.trit_tok_stream_max_out(tok) + 8
        self.buf = ctypes.create_string_buffer(self.cap)
        self.n = ctypes.c_size_t()

    def feed(self, t):
        if lib.trit_tok_stream_feed(ctypes.byref(self.s), t, self.buf, self.cap, ctypes.byref(self.n)) != 0:
            return ""
        return self.buf.raw[:self.n.value].decode("utf-8", "replace")

    def flush(self):
        if lib.trit_tok_stream_flush(ctypes.byref(self.s), self.buf, self.cap, ctypes.byref(self.n)) != 0:
            return ""
        return self.buf.raw[:self.n.value].decode("utf-8", "replace")


class _Run:
    """One generation over the single-sequence context (cmd_run.c's loop), one token per step.
    Every step holds the model's lock and first checks that nothing else ran the context since
    (and that the model is open): a stream left half-read is then stale, not a crash."""

    def __init__(self, model, tok, ctx, ids, n_predict, sp, stops):
        self.model, self.tok, self.ctx, self.epoch = model, tok, ctx, model._epoch
        self.ids, self.n_predict, self.n_gen = ids, n_predict, 0
        self.argmax_only = sp.temperature <= 0.0 and sp.repeat_penalty == 1.0
        self.sampler = _Sampler(sp, model.n_vocab)
        self.detok, self.matcher = _Detok(tok), StopMatcher(stops)
        self.t = None  # the token sampled last, not yet accepted
        self.one = (ctypes.c_int32 * 1)()
        self.nxt = ctypes.c_int32()

    def pieces(self):
        try:
            done = False
            while not done:
                with self.model._lock:
                    self.model._live()
                    if self.model._epoch != self.epoch:
                        raise TritError("this generation was ended by another call on the model", Status.INVALID_ARG)
                    text, done = self._advance()
                if text:
                    yield text
        finally:
            self.sampler.free()

    def _decode(self, tokens, n):
        if self.argmax_only:
            _lib.check(lib.trit_decode_argmax(self.ctx, tokens, n, ctypes.byref(self.nxt)))
        else:
            _lib.check(lib.trit_decode_sample(self.ctx, tokens, n, self.sampler.h, ctypes.byref(self.nxt)))
        self.t = self.nxt.value

    def _end(self, text=""):
        more, stopped = self.matcher.feed(self.detok.flush())
        return text + more + ("" if stopped else self.matcher.finish()), True

    def _advance(self):
        """(text, done) for one token."""
        if self.t is None:  # the prompt
            if self.n_predict == 0:
                return "", True
            for t in self.ids:
                lib.trit_sampler_accept(self.sampler.h, t)
            self._decode((ctypes.c_int32 * len(self.ids))(*self.ids), len(self.ids))
        t = self.t
        if lib.trit_tokenizer_is_eog(self.tok, t):
            return self._end()
        lib.trit_sampler_accept(self.sampler.h, t)
        text, stopped = self.matcher.feed(self.detok.feed(t))
        if stopped:
            return text, True
        self.n_gen += 1
        if self.n_gen == self.n_predict:
            return self._end(text)
        self.one[0] = t
        self._decode(self.one, 1)
        return text, False


class Model:
    """A model, its tokenizer and a context on one device.

    path      a .gguf file, a Hugging Face folder, or synthetic:NAME[:SEED] (token ids only: no
              tokenizer); None: the shipped model (trit-kjv-4m)
    device    "auto" (CUDA when a device exists, else the CPU), "cpu" or "cuda"
    threads   CPU threads; None: every core (at most the online CPUs)
    n_ctx     context length in tokens; None: the model's training context, cut to the memory left
    head      the LM head: "model" (its own), "int8" or "q4" (4-bit, CPU only)
    i2s_layout  "x86" or "arm": the block layout of a bitnet.cpp I2_S file (docs/formats.md)

    Use it as a context manager, or call close(); garbage collection frees it too. Not for use by
    several threads at once: calls are serialized by a lock.
    """

    def __init__(self, path=None, device="auto", threads=None, n_ctx=None, *, head="model", i2s_layout="x86"):
        self._h = _Handles()
        self._fin = weakref.finalize(self, self._h.free)
        self._lock = threading.RLock()
        self._epoch = 0  # bumped by every call that runs the context: an older stream is then stale
        self._ctx_key = None
        if path is None:
            path = _shipped_model()
        if isinstance(path, os.PathLike):
            path = os.fspath(path)
        bpath = _text(path, "path")
        if b"\0" in bpath:
            raise ValueError("path holds a NUL character")
        if not isinstance(device, str) or device not in _lib.DEVICE:
            raise ValueError("device must be 'auto', 'cpu' or 'cuda' (got %r)" % (device,))
        if head not in ("model", "int8", "q4"):
            raise ValueError("head must be 'model', 'int8' or 'q4' (got %r)" % (head,))
        if i2s_layout not in _lib.I2S_LAYOUT:
            raise ValueError("i2s_layout must be 'x86' or 'arm' (got %r)" % (i2s_layout,))
        if threads is not None:
            threads = _int(threads, "threads", 1, 2**31 - 1)
            online = os.cpu_count() or 1
            if threads > online:
                warnings.warn("threads=%d: this machine has %d online CPUs; using %d" % (threads, online, online))
                threads = online
        if n_ctx is not None:
            n_ctx = _int(n_ctx, "n_ctx", 1, _MAX_TOKENS_CTX)
        self.path = path
        self._device, self._threads, self._n_ctx, self._head = device, threads or 0, n_ctx or 0, head

        mp = lib.trit_model_default_params()
        mp.i2s_layout = _lib.I2S_LAYOUT[i2s_layout]
        h = ctypes.c_void_p()
        _lib.check(lib.trit_model_load(bpath, ctypes.byref(mp), ctypes.byref(h)))
        self._h.model = h
        self.n_vocab = lib.trit_model_n_vocab(h)
        # A model without a tokenizer (a synthetic one, a folder without tokenizer files) runs token
        # ids: logits() works, and what needs text raises why there is none.
        self._tok_error = TritError("%s is a synthetic model (random weights of a shape): it has no tokenizer, "
                                    "and runs token ids (logits)" % path, Status.UNSUPPORTED)
        if not path.startswith("synthetic:"):
            t = ctypes.c_void_p()
            st = lib.trit_tokenizer_load(bpath, ctypes.byref(t))
            if st == 0:
                self._h.tok = t
            else:
                self._tok_error = _lib.last_error(st, "tokenizer")
        try:
            self._context(("gen",))
        except BaseException:
            self.close()
            raise
        self.info = self._info()

    # -------------------------------------------------------------------------------------------
    # life cycle

    def close(self):
        """Frees the context, the tokenizer and the model (in that order). Calling it again does nothing."""
        with self._lock:
            self._epoch += 1
            self._ctx_key = None
            self._fin()

    @property
    def closed(self):
        return self._h.model is None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __repr__(self):
        return "<trit.Model %r%s>" % (self.path, " closed" if self.closed else "")

    def _live(self):
        if self._h.model is None:
            raise TritError("this Model is closed", Status.INVALID_ARG)

    def _tokenizer(self):
        self._live()
        if not self._h.tok:
            raise TritError(self._tok_error.message, self._tok_error.status)
        return self._h.tok

    def _context(self, key, n_seq=1, n_kv=0):
        """The context for `key`: ("gen",), ("score",), ("ppl", n_ctx) or ("batch",). A batch context
        is kept while it holds n_seq sequences and n_kv tokens of cache."""
        self._live()
        self._epoch += 1
        h = self._h
        if h.ctx and self._ctx_key is not None and self._ctx_key[0] == key[0] == "batch":
            have_seq, have_kv = self._ctx_key[1:]
            if have_seq >= n_seq and have_kv >= n_kv:
                for s in range(have_seq):
                    lib.trit_seq_remove(h.ctx, s)
                return h.ctx
        elif h.ctx and self._ctx_key == key:
            return h.ctx
        h.free_ctx()
        self._ctx_key = None
        cp = lib.trit_context_default_params()
        cp.n_ctx = self._n_ctx
        cp.n_threads = self._threads
        cp.device = _lib.DEVICE[self._device]
        cp.head_int8 = self._head == "int8"
        cp.head_q4 = self._head == "q4"
        if key[0] == "score":
            cp.logits_all = True
            cp.n_batch = _SCORE_BATCH
        elif key[0] == "ppl":
            cp.logits_all = True
            cp.n_ctx = key[1]
            cp.n_batch = _MAX_TOKENS_CTX  # each chunk is one batch: the library cuts it to n_ctx
        elif key[0] == "batch":
            cp.n_seq_max = n_seq
            cp.n_kv = n_kv
            cp.n_batch = max(cp.n_batch, n_seq)  # one token of every sequence fits one pass
        c = ctypes.c_void_p()
        _lib.check(lib.trit_context_init(h.model, ctypes.byref(cp), ctypes.byref(c)), "context")
        h.ctx = c
        self._ctx_key = ("batch", n_seq, n_kv) if key[0] == "batch" else key
        return c

    def _info(self):
        h = self._h
        desc = lib.trit_model_desc(h.model).decode()
        backend = lib.trit_context_backend(h.ctx).decode()
        device_desc = lib.trit_context_device_desc(h.ctx).decode()
        info = {
            "path": self.path,
            "description": desc,
            "n_vocab": self.n_vocab,
            "n_ctx_train": lib.trit_model_n_ctx_train(h.model),
            "n_ctx": lib.trit_context_n_ctx(h.ctx),
            "head_dtype": lib.trit_model_head_dtype(h.model).decode(),
            "head": self._head,
            "backend": backend,
            "device": device_desc,
            # the CPU's kernel family (scalar, avx2, avx512-vnni, amx, neon, neon_dotprod): the word
            # after "CPU " in the device line; the backend's name elsewhere
            "kernel_family": device_desc.split()[1].rstrip(",") if device_desc.startswith("CPU ") else backend,
            "memory_bytes": lib.trit_context_memory_bytes(h.ctx),
            "cuda_compiled": bool(lib.trit_cuda_compiled()),
            "library": _lib.path,
            "version": lib.trit_version().decode(),
        }
        shape = _lib.ModelShape()
        lib.trit_model_shape(h.model, ctypes.byref(shape))
        info["architecture"] = shape.architecture.decode()
        for k in ("n_layers", "dim", "n_heads", "n_kv_heads", "head_dim", "ffn_dim"):
            info[k] = getattr(shape, k)
        info["ternary_params"] = shape.n_ternary_params
        return info

    @property
    def n_ctx(self):
        """The context length the model generates in (the info's n_ctx)."""
        return self.info["n_ctx"]

    # -------------------------------------------------------------------------------------------
    # tokens

    def tokenize(self, text, add_special=True, parse_special=False):
        """The token ids of `text` (str, or bytes tokenized as they are). add_special: BOS (and EOS)
        as the vocabulary's add_bos/add_eos flags say; parse_special: control tokens written in the
        text (<|eot_id|>) become their ids. `trit tokenize -p TEXT` is add_special=False; with --bos,
        add_special=True on a vocabulary that adds BOS; --special is parse_special=True."""
        data = text if isinstance(text, bytes) else _text(text, "text")
        flags = (_lib.TOKENIZE_ADD_SPECIAL if add_special else 0) | (_lib.TOKENIZE_PARSE_SPECIAL if parse_special else 0)
        with self._lock:
            return self._tokenize(data, flags)

    def _tokenize(self, data, flags):
        tok = self._tokenizer()
        t = _lib.Tokens()
        try:
            _lib.check(lib.trit_tokenize(tok, data, len(data), flags, ctypes.byref(t)))
            return t.ids[:t.n] if t.n else []
        finally:
            lib.trit_tokens_free(ctypes.byref(t))

    def detokenize(self, ids, special=False):
        """The text of `ids`: invalid UTF-8 (a character cut between ids) becomes U+FFFD. special:
        control tokens as their text (else they give nothing). The leading space that SentencePiece
        vocabularies add is removed, so detokenize(tokenize(t, add_special=False)) == t."""
        with self._lock:
            tok = self._tokenizer()
            arr, n = _ids_array(ids, lib.trit_tokenizer_n_vocab(tok), allow_empty=True)
            flags = _lib.DECODE_STRIP_SPACE | (_lib.DECODE_SPECIAL if special else 0)
            need = ctypes.c_size_t()
            st = lib.trit_detokenize(tok, arr, n, flags, None, 0, ctypes.byref(need))
            if st != 0 and need.value == 0:
                raise _lib.last_error(st)
            buf = ctypes.create_string_buffer(need.value + 1)
            _lib.check(lib.trit_detokenize(tok, arr, n, flags, buf, need.value + 1, ctypes.byref(need)))
            return buf.raw[:need.value].decode("utf-8", "replace")

    def token_text(self, id):
        """The text of one token as the vocabulary writes it ("<|begin_of_text|>" for a control token)."""
        with self._lock:
            tok = self._tokenizer()
            id = _int(id, "id", 0, lib.trit_tokenizer_n_vocab(tok) - 1)
            n = ctypes.c_size_t()
            p = lib.trit_tokenizer_piece(tok, id, _lib.DECODE_SPECIAL, ctypes.byref(n))
            return ctypes.string_at(p, n.value).decode("utf-8", "replace") if p else ""

    # -------------------------------------------------------------------------------------------
    # scoring

    def logits(self, ids):
        """float32 logits (n_tokens, n_vocab), one row per id, the ids run as given (no BOS added),
        from an empty cache: `trit logits --ids` bit for bit. At most n_ctx ids."""
        import numpy as np

        with self._lock:
            self._live()
            arr, n = _ids_array(ids, self.n_vocab)
            ctx = self._context(("score",))
            lib.trit_context_truncate(ctx, 0)
            out = np.empty((n, self.n_vocab), dtype=np.float32)
            step = min(_SCORE_BATCH, lib.trit_context_n_ctx(ctx))
            rows = ctypes.POINTER(ctypes.c_float)()
            for i in range(0, n, step):
                m = min(step, n - i)
                _lib.check(lib.trit_decode(ctx, _at(arr, i, ctypes.c_int32), m, ctypes.byref(rows)))
                out[i:i + m] = np.ctypeslib.as_array(rows, shape=(m, self.n_vocab))
            return out

    def perplexity(self, text, n_ctx=None, max_chunks=None):
        """(ppl, stderr) of `text` as `trit perplexity -f FILE` computes it (llama.cpp's method):
        tokens without special tokens, non-overlapping chunks of n_ctx (default: the model's
        context), BOS first in each chunk when the vocabulary adds one, the second half of each
        chunk scored. max_chunks: score at most that many chunks."""
        data = _text(text, "text")
        if n_ctx is not None:
            n_ctx = _int(n_ctx, "n_ctx", 3, _MAX_TOKENS_CTX)
        if max_chunks is not None:
            max_chunks = _int(max_chunks, "max_chunks", 1, 2**31 - 1)
        with self._lock:
            tok = self._tokenizer()
            ids = self._tokenize(data, 0)
            ctx = self._context(("ppl", n_ctx if n_ctx is not None else self._n_ctx))
            c = lib.trit_context_n_ctx(ctx)
            if len(ids) < c:
                raise TritError("the text is %d tokens, fewer than one chunk of %d (lower n_ctx)" % (len(ids), c),
                                Status.INVALID_ARG)
            bos = lib.trit_tokenizer_bos(tok) if lib.trit_tokenizer_add_bos(tok) else -1
            arr = (ctypes.c_int32 * len(ids))(*ids)
            r = _lib.PerplexityResult()
            _lib.check(lib.trit_perplexity(ctx, arr, len(ids), bos, max_chunks or -1, None, None, ctypes.byref(r)))
            return r.ppl, r.ppl_err

    # -------------------------------------------------------------------------------------------
    # embeddings

    def _embed_rows(self, all_ids, normalize, what):
        """trit_embed of each id list, from sequence 0 of the generation context: float32 (n, dim)."""
        import numpy as np

        ctx = self._context(("gen",))
        lib.trit_context_truncate(ctx, 0)
        n_ctx = lib.trit_context_n_ctx(ctx)
        for i, ids in enumerate(all_ids):
            if len(ids) > n_ctx:
                raise TritError("%s[%d] is %d tokens, more than the context of %d (raise n_ctx)" % (what, i, len(ids), n_ctx),
                                Status.CONTEXT_FULL)
        out = np.empty((len(all_ids), self.info["dim"]), dtype=np.float32)
        flags = 0 if normalize else _lib.EMBED_RAW
        for i, ids in enumerate(all_ids):
            arr, n = (ids, len(ids)) if isinstance(ids, ctypes.Array) else ((ctypes.c_int32 * len(ids))(*ids), len(ids))
            _lib.check(lib.trit_embed(ctx, 0, arr, n, flags, out[i].ctypes.data_as(ctypes.POINTER(ctypes.c_float))))
        if not np.isfinite(out).all():
            i, k = (int(x[0]) for x in np.nonzero(~np.isfinite(out)))
            raise TritError("%s[%d]: the model gave a non-finite value at element %d" % (what, i, k), Status.INTERNAL)
        return out

    def embed(self, texts, instruct=None, normalize=True, add_eos=True):
        """Sentence embeddings, as `trit embed` computes them: the hidden state of each text's last
        token after the final norm, L2-normalized (normalize=False: the raw state). `texts` is a str
        (a float32 array (dim,) comes back) or a list of str (float32 (len(texts), dim)); with
        numpy, cosine similarity of two normalized vectors is their dot product.

        Each text's tokens: BOS when the vocabulary adds one, the text with control tokens written in
        it matched, then <|endoftext|> when the vocabulary has it, else EOS (add_eos=False: none;
        nothing either when the text already ends with it). instruct: the text becomes
        "Instruct: INSTRUCT\\nQuery:TEXT", Qwen3-Embedding's query format (documents go without it).
        An empty text is a ValueError; one longer than the context TritError CONTEXT_FULL. The CPU
        backend only: on CUDA the library's TritError UNSUPPORTED."""
        single = isinstance(texts, str)
        if single:
            texts = [texts]
        elif isinstance(texts, bytes) or not hasattr(texts, "__iter__"):
            raise TypeError("texts must be a str or a list of str, not %s" % type(texts).__name__)
        data = [_text(t, "texts[%d]" % i) for i, t in enumerate(texts)]
        for i, d in enumerate(data):
            if not d:
                raise ValueError("texts[%d] is empty" % i)
        prefix = None
        if instruct is not None:  # Qwen3-Embedding's get_detailed_instruct: f"Instruct: {task}\nQuery:{query}"
            prefix = b"Instruct: " + _text(instruct, "instruct") + b"\nQuery:"
        if not isinstance(add_eos, bool) or not isinstance(normalize, bool):
            raise TypeError("normalize and add_eos must be bool")
        with self._lock:
            tok = self._tokenizer()
            all_ids = []
            for d in data:  # trit_embed_tokenize: the library's one rule, as trit embed and trit serve use it
                text = prefix + d if prefix else d
                t = _lib.Tokens()
                try:
                    _lib.check(lib.trit_embed_tokenize(tok, text, len(text), 0 if add_eos else _lib.EMBED_NO_END,
                                                       ctypes.byref(t)))
                    all_ids.append(t.ids[:t.n] if t.n else [])
                finally:
                    lib.trit_tokens_free(ctypes.byref(t))
            out = self._embed_rows(all_ids, normalize, "texts")
        return out[0] if single else out

    def embed_ids(self, ids, normalize=True):
        """The embedding of token ids run as given (no BOS or end-of-text token added): float32 (dim,),
        what trit_embed gives; for a model without a tokenizer. `ids` as logits() takes them."""
        if not isinstance(normalize, bool):
            raise TypeError("normalize must be bool")
        with self._lock:
            self._live()
            arr, n = _ids_array(ids, self.n_vocab)
            return self._embed_rows([arr], normalize, "ids")[0]

    # -------------------------------------------------------------------------------------------
    # generation

    @staticmethod
    def _args(max_tokens, temperature, top_k, top_p, min_p, repeat_penalty, seed, stop):
        """generate()'s arguments checked (the sampler's ranges by the library): (max_tokens, the
        sampler's parameters, the stop strings)."""
        max_tokens = _int(max_tokens, "max_tokens", 0, 2**31 - 1)
        sp = lib.trit_sampler_default_params()
        sp.temperature = _real(temperature, "temperature")
        sp.top_k = _int(top_k, "top_k", 0, 2**31 - 1)
        sp.top_p = _real(top_p, "top_p")
        sp.min_p = _real(min_p, "min_p")
        sp.repeat_penalty = _real(repeat_penalty, "repeat_penalty")
        sp.seed = int.from_bytes(os.urandom(8), "little") if seed is None else _int(seed, "seed", 0, 2**64 - 1)
        _Sampler(sp, 1).free()
        return max_tokens, sp, stop_list(stop)

    @staticmethod
    def _fits(ids, n_ctx, what):
        """A prompt's ids leave room for one token in the context (trit run's checks)."""
        if not ids:
            raise TritError("%s is empty and the model adds no BOS token" % what, Status.INVALID_ARG)
        if len(ids) >= n_ctx:
            raise TritError("%s is %d tokens, but the context holds %d (raise n_ctx)" % (what, len(ids), n_ctx),
                            Status.CONTEXT_FULL)

    def generate(self, prompt, max_tokens=64, temperature=0.8, top_k=40, top_p=0.95, min_p=0.05,
                 repeat_penalty=1.0, seed=None, stop=None):
        """The text generated after `prompt` (without the prompt). temperature 0 is greedy:
        `trit run -p PROMPT -n MAX_TOKENS --temp 0` prints the prompt and then this text. seed None
        draws a random seed; `trit run`'s default is seed=1. Ends at the model's end of generation,
        after max_tokens, at the end of the context, or before the first stop string (not included)."""
        return "".join(self.stream(prompt, max_tokens, temperature, top_k, top_p, min_p, repeat_penalty, seed, stop))

    def stream(self, prompt, max_tokens=64, temperature=0.8, top_k=40, top_p=0.95, min_p=0.05,
               repeat_penalty=1.0, seed=None, stop=None):
        """generate(), as an iterator of text pieces (whole UTF-8 characters) as they come. Another
        call that runs the model (generate, logits, ...) ends an unfinished stream: its next step
        raises TritError."""
        data = _text(prompt, "prompt")
        max_tokens, sp, stops = self._args(max_tokens, temperature, top_k, top_p, min_p, repeat_penalty, seed, stop)
        with self._lock:
            ids = self._tokenize(data, _lib.TOKENIZE_PARSE_SPECIAL | _lib.TOKENIZE_ADD_SPECIAL)
        return self._run(ids, "the prompt", max_tokens, sp, stops)

    def chat(self, messages, max_tokens=256, temperature=0.8, top_k=40, top_p=0.95, min_p=0.05,
             repeat_penalty=1.0, seed=None, stop=None):
        """The assistant's answer to `messages` ([{"role": "user", "content": "..."}], roles
        system/user/assistant), rendered with the model's chat template (its plain "role: content"
        one when it has none) as `trit chat` renders it; max_tokens 256 is trit chat's -n. The other
        arguments are generate()'s. Nothing is kept between calls: pass the whole conversation."""
        max_tokens, sp, stops = self._args(max_tokens, temperature, top_k, top_p, min_p, repeat_penalty, seed, stop)
        with self._lock:
            tok = self._tokenizer()
            bos, eos = lib.trit_tokenizer_bos(tok), lib.trit_tokenizer_eos(tok)
            text = _chat.render(_chat.find_template(self.path), messages,
                                self.token_text(bos).encode() if bos >= 0 else b"",
                                self.token_text(eos).encode() if eos >= 0 else b"")
            ids = self._tokenize(text.encode("utf-8"), _lib.TOKENIZE_PARSE_SPECIAL)
        return "".join(self._run(ids, "the conversation", max_tokens, sp, stops))

    def _run(self, ids, what, n_predict, sp, stops):
        """cmd_run.c's loop, as an iterator of text pieces."""
        with self._lock:
            tok = self._tokenizer()
            ctx = self._context(("gen",))
            lib.trit_context_truncate(ctx, 0)
            n_ctx = lib.trit_context_n_ctx(ctx)
            self._fits(ids, n_ctx, what)
            run = _Run(self, tok, ctx, ids, min(n_predict, n_ctx - len(ids)), sp, stops)
        return run.pieces()

    def generate_batch(self, prompts, max_tokens=64, temperature=0.8, top_k=40, top_p=0.95, min_p=0.05,
                       repeat_penalty=1.0, seed=None, stop=None):
        """generate() for several prompts at once over the batched decoder (trit_decode_batch): the
        prompts are prefilled together, then every step runs one token of each unfinished prompt in
        one forward pass. Each prompt has its own sampler seeded with `seed` (None: a random seed
        each), so answer i is generate(prompts[i], ..., seed=seed) exactly. Up to 256 prompts (and
        at most n_ctx) share a pass; more run in waves. Returns a list of str in prompt order."""
        if isinstance(prompts, (str, bytes)) or not hasattr(prompts, "__iter__"):
            raise TypeError("prompts must be a list of str")
        prompts = list(prompts)
        data = [_text(p, "prompts[%d]" % i) for i, p in enumerate(prompts)]
        max_tokens, sp, stops = self._args(max_tokens, temperature, top_k, top_p, min_p, repeat_penalty, seed, stop)
        with self._lock:
            all_ids = [self._tokenize(d, _lib.TOKENIZE_PARSE_SPECIAL | _lib.TOKENIZE_ADD_SPECIAL) for d in data]
            n_ctx = self.info["n_ctx"]
            for i, ids in enumerate(all_ids):
                self._fits(ids, n_ctx, "prompts[%d]" % i)
            seeds = [int.from_bytes(os.urandom(8), "little") if seed is None else sp.seed for _ in all_ids]
            wave = min(_BATCH_SEQS, n_ctx)  # a step's tokens (one per sequence) must fit a pass
            out = []
            for w in range(0, len(all_ids), wave):
                out += self._batch_wave(all_ids[w:w + wave], seeds[w:w + wave], max_tokens, sp, stops, n_ctx)
            return out

    def _batch_wave(self, all_ids, seeds, max_tokens, sp, stops, n_ctx):
        """generate_batch for at most min(256, n_ctx) prompts: _Run's loop for every sequence."""
        tok = self._h.tok
        S = len(all_ids)
        n_predict = [min(max_tokens, n_ctx - len(ids)) for ids in all_ids]
        # the pool: each sequence's prompt and answer in whole blocks, what generate() would hold
        n_kv = sum(lib.trit_kv_blocks_for(len(ids) + n) for ids, n in zip(all_ids, n_predict)) * _lib.KV_BLOCK
        ctx = self._context(("batch",), S, n_kv)
        n_batch = min(max(512, S), n_ctx)  # the context's n_batch (the library cuts it to n_ctx)
        samplers = []
        try:
            for s in seeds:
                sp.seed = s
                samplers.append(_Sampler(sp, self.n_vocab))
            for smp, ids in zip(samplers, all_ids):
                for t in ids:
                    lib.trit_sampler_accept(smp.h, t)
            detoks = [_Detok(tok) for _ in range(S)]
            matchers = [StopMatcher(stops) for _ in range(S)]
            texts = [[] for _ in range(S)]
            nxt = [None] * S  # the token each sequence sampled last, not yet accepted
            rows = ctypes.POINTER(ctypes.c_float)()
            n_rows = ctypes.c_int32()

            def run(seq, pos, tokens, want):
                """One pass; each wanted row is sampled by its sequence's sampler."""
                n = len(tokens)
                b = _lib.Batch(n, (ctypes.c_int32 * n)(*tokens), (ctypes.c_int32 * n)(*pos),
                               (ctypes.c_int32 * n)(*seq), (ctypes.c_int8 * n)(*want))
                _lib.check(lib.trit_decode_batch(ctx, ctypes.byref(b), ctypes.byref(rows), ctypes.byref(n_rows)))
                r = 0
                for s, w in zip(seq, want):
                    if w:
                        nxt[s] = lib.trit_sampler_sample(samplers[s].h, _at(rows, r * self.n_vocab, ctypes.c_float))
                        r += 1

            def end(s, text=""):
                more, stopped = matchers[s].feed(detoks[s].flush())
                texts[s].append(text + more + ("" if stopped else matchers[s].finish()))

            # prefill: the prompts' tokens, n_batch per pass, with a row for each prompt's last one
            flat = [(s, p, t) for s, ids in enumerate(all_ids) if n_predict[s] > 0 for p, t in enumerate(ids)]
            for i in range(0, len(flat), n_batch):
                chunk = flat[i:i + n_batch]
                run([s for s, _, _ in chunk], [p for _, p, _ in chunk], [t for _, _, t in chunk],
                    [1 if p == len(all_ids[s]) - 1 else 0 for s, p, _ in chunk])
            live = [s for s in range(S) if n_predict[s] > 0]
            n_gen = [0] * S
            while live:
                step = []
                for s in live:
                    t = nxt[s]
                    if lib.trit_tokenizer_is_eog(tok, t):
                        end(s)
                        continue
                    lib.trit_sampler_accept(samplers[s].h, t)
                    text, stopped = matchers[s].feed(detoks[s].feed(t))
                    n_gen[s] += 1
                    if stopped:
                        texts[s].append(text)
                    elif n_gen[s] == n_predict[s]:
                        end(s, text)
                    else:
                        texts[s].append(text)
                        step.append(s)
                if step:
                    run(step, [lib.trit_seq_length(ctx, s) for s in step], [nxt[s] for s in step], [1] * len(step))
                live = step
            return ["".join(t) for t in texts]
        finally:
            for smp in samplers:
                smp.free()
