"""test_embeddings.py: POST /v1/embeddings of `trit serve` (docs/serve.md "Embeddings").

    equal to trit embed   the shipped model: the vectors of several texts (one that already ends with
                          the end-of-text token) through the openai client (which asks for base64), as
                          JSON floats and as base64, equal `trit embed`'s .npy bit for bit; token-id
                          input gives the vector of the text those ids spell
    hostile requests      wrong types, empty strings and lists, a mix, ids outside the vocabulary,
                          2049 inputs, an input longer than the context, dimensions other than the
                          model's, encoding_format: 400 in OpenAI's shape, and the server goes on
    concurrency           synthetic:2b4t (~0.2 s a token here): a greedy stream with embeddings
                          requested while it runs gives the tokens it gives alone, and the
                          embeddings are those computed alone, bit for bit
    metrics               trit_embedding_requests_total and trit_embedding_tokens_total count them
"""
import base64
import json
import os
import struct
import subprocess
import tempfile
import threading
import time

import openai
import pytest

from conftest import DEFAULT_MODEL_FILE, DEFAULT_MODEL_ID, REPO, start_server, trit_bin
from test_errors import error_doc
from test_synthetic import read_npy_f32

DIM = 256  # trit-kjv-4m's dim (models/README.md)
TEXTS = ["In the beginning God created the heaven and the earth.", "Jesus wept.",
         "And God said, Let there be light<|end_of_text|>", "a"]


def trit_embed(texts):
    """`trit embed -f` of `texts` (one per line): a list of float32 vectors as bytes (little-endian)."""
    with tempfile.TemporaryDirectory() as d:
        src, out = os.path.join(d, "t.txt"), os.path.join(d, "e.npy")
        with open(src, "w") as f:
            f.write("\n".join(texts) + "\n")
        r = subprocess.run([trit_bin(), "embed", "-m", DEFAULT_MODEL_FILE, "-f", src, "-o", out, "-t", "1"], cwd=REPO,
                           capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, r.stderr
        shape, flat = read_npy_f32(out)
    assert shape == (len(texts), DIM)
    return [struct.pack("<%df" % DIM, *flat[i * DIM:(i + 1) * DIM]) for i in range(len(texts))]


def embed_raw(server, body):
    status, headers, data = server.request("POST", "/v1/embeddings", body)
    assert status == 200, data
    assert headers["content-type"].startswith("application/json")
    return json.loads(data)


def vectors(doc, n, dim=DIM):
    """The answer's vectors as little-endian float32 bytes, after checking its shape."""
    assert doc["object"] == "list" and len(doc["data"]) == n, doc.keys()
    out = []
    for i, d in enumerate(doc["data"]):
        assert d["object"] == "embedding" and d["index"] == i
        e = d["embedding"]
        if isinstance(e, str):
            raw = base64.b64decode(e, validate=True)
        else:
            assert len(e) == dim and all(isinstance(x, float) for x in e)
            raw = struct.pack("<%df" % dim, *e)  # a JSON number read as a double, rounded to float32
        assert len(raw) == 4 * dim
        out.append(raw)
    return out


# ---- the shipped model: trit embed's vectors ----------------------------------------------------
def test_equal_trit_embed(server, client, model_id):
    want = trit_embed(TEXTS)
    r = client.embeddings.create(model=model_id, input=TEXTS)  # the client asks for base64 and decodes it
    assert r.object == "list" and r.model == model_id and [d.index for d in r.data] == list(range(len(TEXTS)))
    got = [struct.pack("<%df" % DIM, *d.embedding) for d in r.data]
    assert got == want
    assert r.usage.prompt_tokens == r.usage.total_tokens > len(TEXTS)
    floats = embed_raw(server, {"model": model_id, "input": TEXTS, "encoding_format": "float"})
    assert vectors(floats, len(TEXTS)) == want
    assert floats["usage"] == {"prompt_tokens": r.usage.prompt_tokens, "total_tokens": r.usage.prompt_tokens}
    b64 = embed_raw(server, {"input": TEXTS, "encoding_format": "base64", "dimensions": DIM, "user": "x"})
    assert all(isinstance(d["embedding"], str) for d in b64["data"])
    assert vectors(b64, len(TEXTS)) == want
    one = embed_raw(server, {"input": TEXTS[1]})  # a string, not a list
    assert vectors(one, 1) == want[1:2]


def test_token_ids_input(server):
    """The ids `trit embed` runs for a text (BOS, the text, EOS), given as ids, give its vector."""
    out = subprocess.run([trit_bin(), "tokenize", "-m", DEFAULT_MODEL_FILE, "-p", TEXTS[1], "--bos", "--special"],
                         cwd=REPO, capture_output=True, text=True, timeout=60, check=True).stdout
    ids = [int(t) for t in out.split()] + [4094]  # <|end_of_text|>: this vocabulary has no <|endoftext|>
    want = trit_embed(TEXTS[1:2])
    assert vectors(embed_raw(server, {"input": ids}), 1) == want
    two = embed_raw(server, {"input": [ids, ids[:-1]]})
    got = vectors(two, 2)
    assert got[0] == want[0] and got[1] != want[0]  # without EOS it is another token's state
    assert two["usage"]["prompt_tokens"] == 2 * len(ids) - 1


# ---- hostile requests ---------------------------------------------------------------------------
HOSTILE = [
    ({}, "input", "'input' is required"),
    ({"input": 7}, "input", "must be a string"),
    ({"input": {"a": 1}}, "input", "must be a string"),
    ({"input": ""}, "input", "empty string"),
    ({"input": ["a", ""]}, "input", "'input[1]' is an empty string"),
    ({"input": []}, "input", "empty list"),
    ({"input": [[]]}, "input", "empty list of token ids"),
    ({"input": ["a", 5]}, "input", "not a mix"),
    ({"input": [[1, 2], ["a"]]}, "input", "must be a list of token ids"),
    ({"input": [1, 4096]}, "input", "not a token id from 0 to 4095"),
    ({"input": [[1], [-3]]}, "input", "not a token id"),
    ({"input": [0.5]}, "input", "not a token id"),
    ({"input": ["a"] * 2049}, "input", "at most 2048"),
    ({"input": [1] * 100000}, "input", "more than the context"),
    ({"input": "beginning " * 400}, "input", "more than the context"),
    ({"input": "a", "dimensions": 64}, "dimensions", "this model's embeddings have 256 dimensions"),
    ({"input": "a", "dimensions": 256.5}, "dimensions", "must be an integer"),
    ({"input": "a", "encoding_format": "int8"}, "encoding_format", "\"float\" or \"base64\""),
    ({"input": "a", "model": 7}, "model", "must be a string"),
]


@pytest.mark.parametrize("body,param,needle", HOSTILE, ids=[str(i) for i in range(len(HOSTILE))])
def test_hostile_requests(server, body, param, needle):
    status, headers, data = server.request("POST", "/v1/embeddings", body)
    assert status == 400, data[:300]
    assert headers["content-type"].startswith("application/json")
    e = error_doc(data)
    assert e["type"] == "invalid_request_error" and e["param"] == param, e
    assert needle in e["message"], e


def test_hostile_bodies_and_client(server, client):
    for raw in (b"{", b"[1]", b'{"input": "a"} trailing', b"\xff\xfe"):
        status, _, data = server.request("POST", "/v1/embeddings", raw)
        assert status == 400, (raw, data)
        error_doc(data)
    status, _, data = server.request("POST", "/v1/embeddings", {"input": "a", "model": "gpt-4"})
    assert status == 404 and error_doc(data)["code"] == "model_not_found"
    status, headers, _ = server.request("GET", "/v1/embeddings")
    assert status == 405 and headers["allow"] == "POST"
    with pytest.raises(openai.BadRequestError) as exc:
        client.embeddings.create(model=DEFAULT_MODEL_ID, input="a", dimensions=3)
    assert "256 dimensions" in error_doc(exc.value.response.content)["message"]
    # the server goes on
    assert len(client.embeddings.create(model=DEFAULT_MODEL_ID, input="Jesus wept.").data[0].embedding) == DIM


def test_metrics(server, client):
    before = server.metrics()
    client.embeddings.create(model=DEFAULT_MODEL_ID, input=[[1, 2, 3], [4, 5]])
    server.request("POST", "/v1/embeddings", {"input": ""})
    after = server.metrics()
    ok, rej = 'trit_embedding_requests_total{status="ok"}', 'trit_embedding_requests_total{status="rejected"}'
    assert after[ok] == before[ok] + 1 and after[rej] == before[rej] + 1
    assert after["trit_embedding_tokens_total"] == before["trit_embedding_tokens_total"] + 5
    # embeddings are not completion requests
    assert after['trit_requests_total{status="ok"}'] == before['trit_requests_total{status="ok"}']


# ---- concurrency: a generation is not disturbed -------------------------------------------------
SYN_PROMPT = [5, 17, 42, 99, 123, 7]
SYN_INPUTS = [[3, 1, 4, 1, 5, 9, 2, 6], [27, 18, 28], [100] * 20]
SYN_TOKENS = 24


@pytest.fixture(scope="module")
def slow(request):
    # two sequences: the stream's and one for embeddings
    return start_server(request, ["-m", "synthetic:2b4t", "-c", "256", "-b", "256", "-t", "1", "--parallel", "2",
                                  "--shutdown-timeout", "5"], "2b4t")


def stream_ids(srv, on_first=None):
    """A greedy streamed completion of SYN_PROMPT: (its token ids, when its last chunk came)."""
    client = srv.client()
    ids = []
    stream = client.completions.create(model="synthetic:2b4t", prompt=SYN_PROMPT, max_tokens=SYN_TOKENS,
                                       temperature=0, stream=True,
                                       extra_body={"ignore_eos": True, "return_token_ids": True})
    for chunk in stream:
        for c in chunk.choices:
            got = getattr(c, "token_ids", None) or (c.model_extra or {}).get("token_ids") or []
            if got and not ids and on_first:
                on_first()
            ids += got
    return ids, time.monotonic()


def test_concurrent_stream_unchanged(slow):
    alone_ids, _ = stream_ids(slow)
    assert len(alone_ids) == SYN_TOKENS
    alone_vecs = vectors(embed_raw(slow, {"input": SYN_INPUTS}), len(SYN_INPUTS), 2560)
    done = {}

    def embed_while_streaming():
        docs = [embed_raw(slow, {"input": SYN_INPUTS}), embed_raw(slow, {"input": SYN_INPUTS[1], "encoding_format": "base64"})]
        done["t"] = time.monotonic()
        done["docs"] = docs

    threads = []

    def start_embeddings():
        t = threading.Thread(target=embed_while_streaming)
        t.start()
        threads.append(t)

    ids, t_end = stream_ids(slow, on_first=start_embeddings)
    for t in threads:
        t.join(timeout=120)
    assert ids == alone_ids, "a stream with embeddings beside it gave other tokens than alone"
    assert "docs" in done, "the embeddings requests did not finish"
    assert vectors(done["docs"][0], len(SYN_INPUTS), 2560) == alone_vecs
    assert vectors(done["docs"][1], 1, 2560) == alone_vecs[1:2]
    # what makes the test mean something: the embeddings ran while the stream did (its remaining
    # tokens take ~0.2 s each here, the embeddings' 34 tokens about two steps)
    assert done["t"] < t_end, "the embeddings finished after the stream: nothing ran concurrently"
    status, _, data = slow.request("POST", "/v1/embeddings", {"input": "text"})
    assert status == 400 and "no tokenizer" in error_doc(data)["message"]
