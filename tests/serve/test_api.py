"""test_api.py: `trit serve` through the official openai client, on the shipped model (trit-kjv-4m).

Chat and text completions, streaming (the chunks assemble to the non-streamed text of the same
seed), stop strings, max_tokens and usage, seeds, n, logprobs, the extensions (ignore_eos, top_k,
return_token_ids), token-id prompts, /v1/models, /health and /metrics, and the server's greedy text
against `trit run`'s. One server (conftest.py `server`) answers all of them, one request at a time.
"""
import json
import os
import subprocess

import openai
import pytest

from conftest import DEFAULT_MODEL_ID, REPO, trit_bin

PROMPT = "In the beginning"
CHAT = [{"role": "user", "content": "Who was Moses?"}]
IGNORE_EOS = {"ignore_eos": True}
N_VOCAB = 4096  # trit-kjv-4m (models/README.md)


def extra(choice, key):
    """An extension field of a response object (the client keeps unknown fields as extras)."""
    v = getattr(choice, key, None)
    if v is None and getattr(choice, "model_extra", None):
        v = choice.model_extra.get(key)
    return v


def complete(client, model_id, **kw):
    kw.setdefault("prompt", PROMPT)
    return client.completions.create(model=model_id, **kw)


def stream_text(stream):
    """Assembles a completions or chat stream: (text, finish_reason, usage, chunks)."""
    text, finish, usage, chunks = [], None, None, []
    for chunk in stream:
        chunks.append(chunk)
        if chunk.usage is not None:
            usage = chunk.usage
        for c in chunk.choices:
            assert c.index == 0
            piece = c.delta.content if hasattr(c, "delta") else c.text
            if piece:
                text.append(piece)
            if c.finish_reason is not None:
                assert finish is None, "two finish_reasons in one stream"
                finish = c.finish_reason
    return "".join(text), finish, usage, chunks


# ---- endpoints ----------------------------------------------------------------------------------
def test_health(server):
    status, _, _ = server.request("GET", "/health")
    assert status == 200


def test_models(server, client, model_id):
    models = client.models.list().data
    assert len(models) == 1
    assert models[0].id == DEFAULT_MODEL_ID == model_id  # the model path's basename
    status, headers, body = server.request("GET", "/v1/models")
    assert status == 200 and headers["content-type"].startswith("application/json")
    doc = json.loads(body)
    assert doc["object"] == "list" and doc["data"][0]["object"] == "model"


def test_completion(client, model_id):
    r = complete(client, model_id, max_tokens=16, temperature=0, extra_body=IGNORE_EOS)
    assert r.object == "text_completion" and r.id and r.model == model_id
    assert len(r.choices) == 1 and r.choices[0].index == 0
    c = r.choices[0]
    assert isinstance(c.text, str) and c.text.strip()
    assert c.finish_reason == "length"
    assert r.usage.prompt_tokens == 4  # <|begin_of_text|> In the beginning (trit tokenize --bos)
    assert r.usage.completion_tokens == 16
    assert r.usage.total_tokens == r.usage.prompt_tokens + r.usage.completion_tokens


def test_completion_equals_trit_run(client, model_id):
    """Greedy decoding through the server gives `trit run --temp 0`'s text, character for character
    (both add BOS to a text prompt and stop at the end-of-text token or after n tokens)."""
    n = 48
    run = subprocess.run([trit_bin(), "run", "-p", PROMPT, "-n", str(n), "--temp", "0", "-t", "1"], cwd=REPO,
                         capture_output=True, text=True, timeout=60, env={**os.environ, "TRIT_MODEL": ""})
    assert run.returncode == 0, run.stderr
    r = complete(client, model_id, max_tokens=n, temperature=0)
    assert (PROMPT + r.choices[0].text).rstrip("\n") == run.stdout.rstrip("\n")


def test_chat(client, model_id):
    r = client.chat.completions.create(model=model_id, messages=CHAT, max_completion_tokens=24, temperature=0)
    assert r.object == "chat.completion" and r.id and r.model == model_id
    c = r.choices[0]
    assert c.index == 0 and c.message.role == "assistant"
    assert isinstance(c.message.content, str)
    assert c.finish_reason in ("stop", "length")
    assert 0 < r.usage.completion_tokens <= 24
    assert r.usage.prompt_tokens > 4  # the template adds role markers around the message
    assert r.usage.total_tokens == r.usage.prompt_tokens + r.usage.completion_tokens
    if c.finish_reason == "length":
        assert r.usage.completion_tokens == 24


# ---- max_tokens, usage --------------------------------------------------------------------------
@pytest.mark.parametrize("n", [1, 7, 30])
def test_max_tokens_length(client, model_id, n):
    r = complete(client, model_id, max_tokens=n, temperature=0.7, seed=11,
                 extra_body={"ignore_eos": True, "return_token_ids": True})
    c = r.choices[0]
    assert c.finish_reason == "length"
    assert r.usage.completion_tokens == n
    ids = extra(c, "token_ids")
    assert ids is not None and len(ids) == n and all(0 <= t < N_VOCAB for t in ids)


def test_chat_max_tokens(client, model_id):
    r = client.chat.completions.create(model=model_id, messages=CHAT, max_completion_tokens=10, temperature=0,
                                       extra_body=IGNORE_EOS)
    assert r.choices[0].finish_reason == "length" and r.usage.completion_tokens == 10
    # the older name of the same limit
    r = client.chat.completions.create(model=model_id, messages=CHAT, max_tokens=7, temperature=0,
                                       extra_body=IGNORE_EOS)
    assert r.choices[0].finish_reason == "length" and r.usage.completion_tokens == 7


# ---- streaming ----------------------------------------------------------------------------------
def test_stream_completion_equals_nonstream(client, model_id):
    kw = dict(max_tokens=40, temperature=0.9, seed=1234, extra_body=IGNORE_EOS)
    whole = complete(client, model_id, **kw)
    text, finish, usage, chunks = stream_text(
        complete(client, model_id, stream=True, stream_options={"include_usage": True}, **kw))
    assert text == whole.choices[0].text
    assert finish == "length"
    assert len(chunks) > 2  # streamed, not one block
    assert all(ch.object == "text_completion" for ch in chunks)
    assert len({ch.id for ch in chunks}) == 1
    # include_usage: a last chunk with the usage and no choices
    assert chunks[-1].choices == [] and usage is not None
    assert usage.completion_tokens == 40 and usage.prompt_tokens == whole.usage.prompt_tokens


def test_stream_chat_equals_nonstream(client, model_id):
    kw = dict(messages=CHAT, max_completion_tokens=32, temperature=0.8, seed=99, extra_body=IGNORE_EOS)
    whole = client.chat.completions.create(model=model_id, **kw)
    stream = client.chat.completions.create(model=model_id, stream=True, stream_options={"include_usage": True}, **kw)
    text, finish, usage, chunks = stream_text(stream)
    assert text == whole.choices[0].message.content
    assert finish == "length"
    assert all(ch.object == "chat.completion.chunk" for ch in chunks)
    assert chunks[0].choices[0].delta.role == "assistant"
    assert usage is not None and usage.completion_tokens == 32


def test_stream_without_usage(client, model_id):
    text, finish, usage, chunks = stream_text(
        complete(client, model_id, stream=True, max_tokens=5, temperature=0, extra_body=IGNORE_EOS))
    assert finish == "length" and usage is None and text


# ---- stop strings -------------------------------------------------------------------------------
def pick_stop(text):
    """A stop string from a greedy text: the 5 characters at its middle, and the text before their
    first occurrence (what a request with that stop string must return)."""
    k = len(text) // 2
    s = text[k:k + 5]
    assert len(s) == 5, text
    return s, text[:text.index(s)]


def test_stop_completion(client, model_id):
    kw = dict(max_tokens=48, temperature=0, extra_body=IGNORE_EOS)
    full = complete(client, model_id, **kw).choices[0].text
    stop, before = pick_stop(full)
    r = complete(client, model_id, stop=["\x01never\x02", stop], **kw)
    c = r.choices[0]
    assert c.finish_reason == "stop"
    assert stop not in c.text
    assert c.text == before
    assert r.usage.completion_tokens < 48
    # streamed: the stop string never reaches the client either, not even in part
    text, finish, _, _ = stream_text(complete(client, model_id, stop=stop, stream=True, **kw))
    assert finish == "stop" and text == before


def test_stop_chat(client, model_id):
    kw = dict(messages=CHAT, max_completion_tokens=48, temperature=0, extra_body=IGNORE_EOS)
    full = client.chat.completions.create(model=model_id, **kw).choices[0].message.content
    stop, before = pick_stop(full)
    c = client.chat.completions.create(model=model_id, stop=[stop], **kw).choices[0]
    assert c.finish_reason == "stop" and c.message.content == before
    text, finish, _, _ = stream_text(client.chat.completions.create(model=model_id, stop=stop, stream=True, **kw))
    assert finish == "stop" and text == before


# ---- sampling -----------------------------------------------------------------------------------
def test_seed_reproducible(client, model_id):
    kw = dict(max_tokens=32, temperature=1.0, top_p=1.0, extra_body=IGNORE_EOS)
    a = complete(client, model_id, seed=7, **kw).choices[0].text
    b = complete(client, model_id, seed=7, **kw).choices[0].text
    assert a == b
    # 32 tokens drawn at temperature 1 from 4096: three other seeds all giving the same text would
    # mean the seed is ignored
    others = [complete(client, model_id, seed=s, **kw).choices[0].text for s in (8, 9, 10)]
    assert any(o != a for o in others)


def test_top_k_1_is_greedy(client, model_id):
    greedy = complete(client, model_id, max_tokens=24, temperature=0, extra_body=IGNORE_EOS).choices[0].text
    topk1 = complete(client, model_id, max_tokens=24, temperature=1.5, seed=3,
                     extra_body={"ignore_eos": True, "top_k": 1}).choices[0].text
    assert topk1 == greedy


def test_sampling_extensions_accepted(client, model_id):
    r = complete(client, model_id, max_tokens=8, temperature=0.7, seed=1,
                 extra_body={"ignore_eos": True, "top_k": 40, "min_p": 0.05, "repetition_penalty": 1.1})
    assert r.usage.completion_tokens == 8


def test_n2(client, model_id):
    kw = dict(max_tokens=16, seed=5, extra_body=IGNORE_EOS)
    try:
        r = complete(client, model_id, n=2, temperature=1.0, **kw)
    except openai.BadRequestError as e:
        pytest.skip("n=2 is refused: %s" % e)
    assert sorted(c.index for c in r.choices) == [0, 1]
    assert all(c.finish_reason == "length" for c in r.choices)
    assert r.usage.completion_tokens == 32
    assert r.usage.prompt_tokens == 4
    # greedy: both choices are the one greedy text
    g = complete(client, model_id, n=2, temperature=0, **kw)
    assert g.choices[0].text == g.choices[1].text == complete(client, model_id, temperature=0, **kw).choices[0].text


def test_logprobs_completion(client, model_id):
    r = complete(client, model_id, max_tokens=6, temperature=0, logprobs=2, extra_body=IGNORE_EOS)
    lp = r.choices[0].logprobs
    assert lp is not None
    assert len(lp.tokens) == len(lp.token_logprobs) == 6
    assert "".join(lp.tokens) == r.choices[0].text
    assert all(x <= 0.0 for x in lp.token_logprobs)
    for chosen, top in zip(lp.token_logprobs, lp.top_logprobs):
        assert len(top) <= 2
        assert chosen == pytest.approx(max(top.values()), abs=1e-6)  # greedy takes the most likely


def test_logprobs_chat(client, model_id):
    r = client.chat.completions.create(model=model_id, messages=CHAT, max_completion_tokens=6, temperature=0,
                                       logprobs=True, top_logprobs=2, extra_body=IGNORE_EOS)
    content = r.choices[0].logprobs.content
    assert len(content) == 6
    assert "".join(t.token for t in content) == r.choices[0].message.content
    for t in content:
        assert t.logprob <= 0.0 and len(t.top_logprobs) == 2
        assert t.logprob == pytest.approx(t.top_logprobs[0].logprob, abs=1e-6)


# ---- token-id prompts ---------------------------------------------------------------------------
def tokenize(text):
    out = subprocess.run([trit_bin(), "tokenize", "-p", text, "--bos"], cwd=REPO, capture_output=True, text=True,
                         timeout=60, env={**os.environ, "TRIT_MODEL": ""})
    assert out.returncode == 0, out.stderr
    return [int(t) for t in out.stdout.split()]


def test_token_id_prompt(client, model_id):
    """A prompt of token ids is run as given; the ids of BOS + the text give the text's completion."""
    ids = tokenize(PROMPT)
    assert len(ids) == 4
    kw = dict(max_tokens=20, temperature=0, extra_body={"ignore_eos": True, "return_token_ids": True})
    by_ids = complete(client, model_id, **{**kw, "prompt": ids})
    by_text = complete(client, model_id, **kw)
    assert by_ids.usage.prompt_tokens == 4
    assert by_ids.choices[0].text == by_text.choices[0].text
    assert extra(by_ids.choices[0], "token_ids") == extra(by_text.choices[0], "token_ids")


# ---- /metrics -----------------------------------------------------------------------------------
METRICS = ["trit_requests_waiting", "trit_requests_running", "trit_kv_blocks_used", "trit_kv_blocks_total",
           "trit_prompt_tokens_total", "trit_generated_tokens_total"]
HISTOGRAMS = ["trit_time_to_first_token_seconds", "trit_inter_token_latency_seconds"]


def requests_total(m):
    return sum(v for k, v in m.items() if k.startswith("trit_requests_total{"))


def test_metrics(server, client, model_id):
    status, headers, body = server.request("GET", "/metrics")
    assert status == 200 and headers["content-type"].startswith("text/plain")
    text = body.decode()
    for name in METRICS + HISTOGRAMS + ["trit_requests_total"]:
        assert "# TYPE %s " % name in text, name
    before = server.metrics()
    for name in METRICS:
        assert name in before, name
    for h in HISTOGRAMS:
        assert h + '_bucket{le="+Inf"}' in before and h + "_sum" in before and h + "_count" in before, h
    assert before["trit_kv_blocks_total"] > 0
    r = complete(client, model_id, max_tokens=12, temperature=0, extra_body=IGNORE_EOS)
    after = server.wait_metrics(lambda m: m["trit_requests_running"] == 0)
    assert after["trit_prompt_tokens_total"] - before["trit_prompt_tokens_total"] == r.usage.prompt_tokens
    assert after["trit_generated_tokens_total"] - before["trit_generated_tokens_total"] == 12
    assert requests_total(after) - requests_total(before) == 1
    assert after["trit_time_to_first_token_seconds_count"] - before["trit_time_to_first_token_seconds_count"] == 1
    assert after["trit_inter_token_latency_seconds_count"] > before["trit_inter_token_latency_seconds_count"]
    assert after["trit_requests_running"] == 0 and after["trit_requests_waiting"] == 0
    assert after["trit_kv_blocks_used"] == 0
