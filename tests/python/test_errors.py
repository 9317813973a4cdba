"""test_errors.py: hostile input gives an exception that says what is wrong, never a crash.

TritError (the library's message and status) for what the library refuses: files that are not
models, a device that is not there, a context that cannot fit, sampling values out of range, a
prompt longer than the context, a closed model, a stream ended by another call. TypeError and
ValueError for what Python can tell at once: a wrong type, a count out of range, an id outside the
vocabulary. After each error the model goes on working.
"""
import math
import os

import numpy as np
import pytest

from conftest import DEFAULT_MODEL, REPO


def status_of(trit, exc):
    assert isinstance(exc.value, trit.TritError)
    assert exc.value.message and isinstance(exc.value.status, trit.Status)
    return exc.value.status


@pytest.mark.parametrize("path,status", [
    ("/nonexistent/model.gguf", "NOT_FOUND"),
    (REPO, "NOT_FOUND"),  # a folder without config.json
    (os.path.join(REPO, "README.md"), "FORMAT"),  # not a GGUF file
    ("/dev/null", "IO"),
    ("synthetic:nope", "NOT_FOUND"),
])
def test_bad_paths(trit_module, path, status):
    with pytest.raises(trit_module.TritError) as e:
        trit_module.Model(path)
    assert status_of(trit_module, e) == trit_module.Status[status]


def test_library_message(trit_module):
    with pytest.raises(trit_module.TritError) as e:
        trit_module.Model("/nonexistent/model.gguf")
    assert "/nonexistent/model.gguf" in e.value.message and "no such file" in e.value.message


@pytest.mark.parametrize("kwargs,exc", [
    ({"path": 123}, TypeError),
    ({"path": "a\0b"}, ValueError),
    ({"device": "gpu"}, ValueError),
    ({"device": None}, ValueError),
    ({"threads": 0}, ValueError),
    ({"threads": -1}, ValueError),
    ({"threads": "2"}, TypeError),
    ({"threads": 2.0}, TypeError),
    ({"n_ctx": 0}, ValueError),
    ({"n_ctx": -5}, ValueError),
    ({"n_ctx": 2**31}, ValueError),
    ({"n_ctx": True}, TypeError),
    ({"head": "f8"}, ValueError),
    ({"i2s_layout": "mips"}, ValueError),
])
def test_bad_model_arguments(trit_module, kwargs, exc):
    with pytest.raises(exc):
        trit_module.Model(**kwargs)


def test_context_too_big_fails_at_once(trit_module):
    """2^30 tokens of cache: the memory plan refuses it before allocating anything."""
    with pytest.raises(trit_module.TritError) as e:
        trit_module.Model(DEFAULT_MODEL, n_ctx=2**30)
    assert status_of(trit_module, e) == trit_module.Status.OUT_OF_MEMORY
    assert "GiB" in e.value.message


def test_cuda_without_device(trit_module):
    if trit_module.cuda_device_count() > 0:
        pytest.skip("this machine has a CUDA device")
    with pytest.raises(trit_module.TritError) as e:
        trit_module.Model(DEFAULT_MODEL, device="cuda")
    assert status_of(trit_module, e) == trit_module.Status.NO_DEVICE


def test_synthetic_model_has_no_tokenizer(trit_module):
    with trit_module.Model("synthetic:tiny") as m:
        assert m.logits([1, 2, 3]).shape == (3, m.n_vocab)
        for call in (lambda: m.tokenize("x"), lambda: m.generate("x"), lambda: m.chat([{"role": "user", "content": "x"}])):
            with pytest.raises(trit_module.TritError) as e:
                call()
            assert status_of(trit_module, e) == trit_module.Status.UNSUPPORTED


GENERATE_BAD = [
    ({"prompt": 5}, TypeError),
    ({"prompt": b"bytes"}, TypeError),
    ({"prompt": None}, TypeError),
    ({"prompt": "\udc80"}, ValueError),  # a lone surrogate has no UTF-8
    ({"max_tokens": -1}, ValueError),
    ({"max_tokens": 2**31}, ValueError),
    ({"max_tokens": 1.5}, TypeError),
    ({"temperature": "hot"}, TypeError),
    ({"temperature": "0.5"}, TypeError),
    ({"temperature": -1.0}, "INVALID_ARG"),
    ({"temperature": math.nan}, "INVALID_ARG"),
    ({"temperature": math.inf}, "INVALID_ARG"),
    ({"top_p": 0.0}, "INVALID_ARG"),
    ({"top_p": 1.5}, "INVALID_ARG"),
    ({"min_p": -0.1}, "INVALID_ARG"),
    ({"repeat_penalty": 0.0}, "INVALID_ARG"),
    ({"top_k": -1}, ValueError),
    ({"top_k": 2**31}, ValueError),
    ({"seed": -1}, ValueError),
    ({"seed": 2**64}, ValueError),
    ({"seed": "1"}, TypeError),
    ({"stop": 5}, TypeError),
    ({"stop": [b"x"]}, TypeError),
    ({"prompt": "x " * 400}, "CONTEXT_FULL"),  # more tokens than the context of 256
]


@pytest.mark.parametrize("kwargs,exc", GENERATE_BAD)
@pytest.mark.parametrize("method", ["generate", "stream", "chat", "generate_batch"])
def test_bad_generate_arguments(trit_module, model, method, kwargs, exc):
    kwargs = dict(kwargs)
    prompt = kwargs.pop("prompt", "In the beginning")
    if method == "chat":
        if not isinstance(prompt, str):
            exc = TypeError  # a message's content
        prompt = [{"role": "user", "content": prompt}]
    elif method == "generate_batch":
        prompt = ["And God said", prompt]
    call = lambda: getattr(model, method)(prompt, **kwargs)  # noqa: E731 (stream() checks before it runs)
    if isinstance(exc, str):
        with pytest.raises(trit_module.TritError) as e:
            call()
        assert status_of(trit_module, e) == trit_module.Status[exc]
    else:
        with pytest.raises(exc):
            call()
    assert model.generate("In the beginning", max_tokens=4, temperature=0)  # still works


@pytest.mark.parametrize("ids,exc", [
    ([], ValueError),
    ([-1], ValueError),
    ([4096], ValueError),
    ([1, 2, 2**40], ValueError),
    ("abc", TypeError),
    (b"abc", TypeError),
    (5, TypeError),
    ([1.5], TypeError),
    ([None], TypeError),
    (np.array([[1, 2]]), TypeError),
    (np.array([1.0, 2.0]), TypeError),
    (np.array([1, 4096]), ValueError),
    (np.array([], dtype=np.int64), ValueError),
])
def test_bad_ids(model, ids, exc):
    with pytest.raises(exc):
        model.logits(ids)
    if not (isinstance(ids, list) and not ids) and not (isinstance(ids, np.ndarray) and ids.size == 0):
        with pytest.raises(exc):
            model.detokenize(ids)
    assert model.logits([1, 2]).shape == (2, model.n_vocab)


def test_logits_past_the_context(trit_module, model):
    with pytest.raises(trit_module.TritError) as e:
        model.logits(list(range(257)))
    assert status_of(trit_module, e) == trit_module.Status.CONTEXT_FULL
    assert model.logits([1, 2]).shape == (2, model.n_vocab)


@pytest.mark.parametrize("messages,exc", [
    ("hello", TypeError),
    ([], ValueError),
    ([{"role": "user"}], TypeError),
    (["hello"], TypeError),
    ([{"role": "user", "content": 5}], TypeError),
    ([{"role": "user", "content": "a\0b"}], ValueError),
    ([{"role": None, "content": "x"}], TypeError),
])
def test_bad_messages(model, messages, exc):
    with pytest.raises(exc):
        model.chat(messages, max_tokens=4)


def test_bad_perplexity(trit_module, model):
    with pytest.raises(trit_module.TritError) as e:
        model.perplexity("too short")
    assert status_of(trit_module, e) == trit_module.Status.INVALID_ARG
    with pytest.raises(ValueError):
        model.perplexity("too short", n_ctx=2)
    with pytest.raises(ValueError):
        model.perplexity("too short", max_chunks=0)
    with pytest.raises(TypeError):
        model.perplexity(b"bytes")


def test_closed_model(trit_module):
    m = trit_module.Model(DEFAULT_MODEL)
    s = m.stream("In the beginning", max_tokens=10)
    assert next(s)
    m.close()
    assert m.closed
    m.close()  # again: nothing
    for call in (lambda: next(s), lambda: m.generate("x"), lambda: m.tokenize("x"), lambda: m.detokenize([1]),
                 lambda: m.logits([1]), lambda: m.perplexity("x"), lambda: m.generate_batch(["x"]),
                 lambda: m.chat([{"role": "user", "content": "x"}]), lambda: m.token_text(1)):
        with pytest.raises(trit_module.TritError) as e:
            call()
        assert "closed" in e.value.message


def test_stream_ended_by_another_call(trit_module, model):
    s = model.stream("In the beginning", max_tokens=10, temperature=0)
    first = next(s)
    model.logits([1, 2, 3])
    with pytest.raises(trit_module.TritError) as e:
        next(s)
    assert "ended by another call" in e.value.message
    assert model.generate("In the beginning", max_tokens=1, temperature=0) == first


def test_context_manager_closes_on_error(trit_module):
    with pytest.raises(RuntimeError):
        with trit_module.Model(DEFAULT_MODEL) as m:
            raise RuntimeError("inside")
    assert m.closed


def test_log_level(trit_module):
    with pytest.raises(ValueError):
        trit_module.set_log_level("loud")
    trit_module.set_log_level("warn")
