"""test_synthetic.py: a model without a tokenizer (synthetic:tiny: random weights, 300 ids, 256 tokens
of context) takes token-id prompts only. Its greedy tokens are checked against `trit logits` of the
same model: each generated id is the argmax of the logits after the ids before it.
"""
import os
import struct
import subprocess
import tempfile

import openai
import pytest

from conftest import REPO, start_server, trit_bin

MODEL = "synthetic:tiny"
N_VOCAB = 300
PROMPT_IDS = [5, 17, 42, 99, 123, 7]


@pytest.fixture(scope="module")
def tiny(request):
    return start_server(request, ["-m", MODEL, "-t", "1", "--parallel", "2", "--shutdown-timeout", "5"], "tiny")


def read_npy_f32(path):
    """A little-endian float32 .npy (the format `trit logits` writes): (shape, flat list)."""
    with open(path, "rb") as f:
        data = f.read()
    assert data[:6] == b"\x93NUMPY", path
    major = data[6]
    hlen_size = 2 if major == 1 else 4
    hlen = int.from_bytes(data[8:8 + hlen_size], "little")
    header = data[8 + hlen_size:8 + hlen_size + hlen].decode("latin1")
    header_dict = eval(header, {"__builtins__": {}})  # the .npy header is a Python dict literal
    assert header_dict["descr"] == "<f4" and not header_dict["fortran_order"], header
    shape = header_dict["shape"]
    body = data[8 + hlen_size + hlen:]
    n = 1
    for d in shape:
        n *= d
    return shape, struct.unpack("<%df" % n, body[:4 * n])


def argmax_next(ids):
    """The greedy next id after `ids`, from `trit logits` (the last row's argmax; ties: the lowest id)."""
    with tempfile.TemporaryDirectory() as d:
        out = os.path.join(d, "l.npy")
        r = subprocess.run([trit_bin(), "logits", "-m", MODEL, "--ids", ",".join(map(str, ids)), "-o", out,
                            "-t", "1", "--device", "cpu"], cwd=REPO, capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, r.stderr
        shape, flat = read_npy_f32(out)
    assert shape == (len(ids), N_VOCAB)
    row = flat[-N_VOCAB:]
    return max(range(N_VOCAB), key=lambda i: (row[i], -i))


def test_models(tiny):
    assert [m.id for m in tiny.client().models.list().data] == [MODEL]


def test_token_ids_greedy_match_logits(tiny):
    n = 5
    r = tiny.client().completions.create(model=MODEL, prompt=PROMPT_IDS, max_tokens=n, temperature=0,
                                         extra_body={"ignore_eos": True, "return_token_ids": True})
    c = r.choices[0]
    assert c.finish_reason == "length"
    assert r.usage.prompt_tokens == len(PROMPT_IDS) and r.usage.completion_tokens == n
    ids = c.model_extra.get("token_ids")
    assert ids is not None and len(ids) == n and all(0 <= t < N_VOCAB for t in ids)
    expect, ctx = [], list(PROMPT_IDS)
    for _ in range(n):
        t = argmax_next(ctx)
        expect.append(t)
        ctx.append(t)
    assert ids == expect


def test_token_ids_stream(tiny):
    client = tiny.client()
    kw = dict(model=MODEL, prompt=PROMPT_IDS, max_tokens=12, temperature=0.9, seed=4,
              extra_body={"ignore_eos": True, "return_token_ids": True})
    whole = client.completions.create(**kw)
    stream = client.completions.create(stream=True, stream_options={"include_usage": True}, **kw)
    finish, usage, streamed_ids = None, None, []
    for chunk in stream:
        usage = chunk.usage or usage
        for c in chunk.choices:
            streamed_ids += (c.model_extra or {}).get("token_ids") or []
            finish = c.finish_reason or finish
    assert finish == "length" and usage.completion_tokens == 12
    assert streamed_ids == whole.choices[0].model_extra["token_ids"]


def test_text_refused(tiny):
    client = tiny.client()
    with pytest.raises(openai.BadRequestError) as e:
        client.completions.create(model=MODEL, prompt="hello", max_tokens=2)
    assert "token" in str(e.value).lower()  # the message says what to send instead
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "hi"}])
    with pytest.raises(openai.BadRequestError):
        client.completions.create(model=MODEL, prompt=[1, 2, N_VOCAB], max_tokens=2)
