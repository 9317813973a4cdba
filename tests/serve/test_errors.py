"""test_errors.py: `trit serve`'s errors, as the openai client raises them and as raw HTTP sees them.

Every error is OpenAI's shape, {"error": {"message": ..., "type": ...}}, with the status the client
maps to its exception class: 400 BadRequestError (bad parameters, a prompt longer than the context,
bodies that are not a request), 401 AuthenticationError (--api-key), 404 NotFoundError (an unknown
model or path), 405 (a wrong method), 413 (a body over --max-body), 429 or 503 with Retry-After (a
full queue). After each, the server goes on answering.
"""
import json
import threading

import openai
import pytest

from conftest import DEFAULT_MODEL_ID, start_server

PROMPT = "In the beginning"
CHAT = [{"role": "user", "content": "Who was Moses?"}]
MODEL_FIELD = b'{"model": "' + DEFAULT_MODEL_ID.encode() + b'"'  # the start of a raw body


def error_doc(body):
    doc = json.loads(body)
    assert isinstance(doc.get("error"), dict), doc
    assert isinstance(doc["error"].get("message"), str) and doc["error"]["message"], doc
    assert isinstance(doc["error"].get("type"), str) and doc["error"]["type"], doc
    return doc["error"]


def check_openai_error(exc, status):
    assert exc.status_code == status
    error_doc(exc.response.content)


# ---- 400 ----------------------------------------------------------------------------------------
BAD_PARAMS = [
    {"temperature": -1.0},
    {"temperature": "hot"},
    {"top_p": 1.5},
    {"max_tokens": -1},
    {"n": 0},
    {"seed": "seven"},
    {"stop": 7},
    {"logprobs": -1},
]


@pytest.mark.parametrize("params", BAD_PARAMS, ids=[next(iter(p)) + "=" + repr(next(iter(p.values())))
                                                    for p in BAD_PARAMS])
def test_bad_param_completion(client, model_id, params):
    with pytest.raises(openai.BadRequestError) as e:
        client.completions.create(model=model_id, prompt=PROMPT, max_tokens=4, extra_body=params)
    check_openai_error(e.value, 400)


@pytest.mark.parametrize("params", [{"temperature": -1.0}, {"max_completion_tokens": -5}, {"top_logprobs": 2}],
                         ids=["temperature", "max_completion_tokens", "top_logprobs-without-logprobs"])
def test_bad_param_chat(client, model_id, params):
    with pytest.raises(openai.BadRequestError) as e:
        client.chat.completions.create(model=model_id, messages=CHAT, extra_body=params)
    check_openai_error(e.value, 400)


def test_bad_param_stream(client, model_id):
    """A streamed request with a bad parameter is refused before any event, as the 400 itself."""
    with pytest.raises(openai.BadRequestError):
        client.completions.create(model=model_id, prompt=PROMPT, stream=True, temperature=-2)


def test_prompt_too_long(client, model_id):
    # about 600 tokens: more than the shipped model's context of 256
    long_prompt = "And the LORD spake unto Moses, saying, " * 60
    with pytest.raises(openai.BadRequestError) as e:
        client.completions.create(model=model_id, prompt=long_prompt, max_tokens=4)
    check_openai_error(e.value, 400)
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(model=model_id, messages=[{"role": "user", "content": long_prompt}])
    with pytest.raises(openai.BadRequestError):
        client.completions.create(model=model_id, prompt=list(range(1, 300)), max_tokens=4)


def test_token_id_out_of_range(client, model_id):
    for ids in ([1, 2, 4096], [1, -1]):
        with pytest.raises(openai.BadRequestError):
            client.completions.create(model=model_id, prompt=ids, max_tokens=4)


def test_chat_bad_messages(client, model_id):
    for messages in ([], [{"role": "wizard", "content": "hi"}], [{"content": "no role"}]):
        with pytest.raises(openai.BadRequestError):
            client.chat.completions.create(model=model_id, messages=messages, max_completion_tokens=4)


@pytest.mark.parametrize("body", [
    b"{not json",
    b"[1, 2, 3]",
    MODEL_FIELD + b'}',  # no messages
    MODEL_FIELD + b', "messages": "hi"}',
    MODEL_FIELD + b', "messages": [{"role": "user", "content": "hi"}], "stream": "yes"}',
    b"\xff\xfe\x00garbage",
], ids=["not-json", "array", "no-messages", "messages-string", "stream-string", "binary"])
def test_bad_body_chat(server, body):
    status, headers, data = server.request("POST", "/v1/chat/completions", body=body,
                                           headers={"Content-Type": "application/json"})
    assert status == 400, data
    assert headers["content-type"].startswith("application/json")
    error_doc(data)


def test_bad_body_completion(server):
    for body in (MODEL_FIELD + b'}', MODEL_FIELD + b', "prompt": 12}',
                 MODEL_FIELD + b', "prompt": [1.5, 2]}'):
        status, _, data = server.request("POST", "/v1/completions", body=body,
                                         headers={"Content-Type": "application/json"})
        assert status == 400, (body, data)
        error_doc(data)


# ---- 404, 405 -----------------------------------------------------------------------------------
def test_unknown_model(client):
    with pytest.raises(openai.NotFoundError) as e:
        client.completions.create(model="gpt-4o", prompt=PROMPT, max_tokens=4)
    check_openai_error(e.value, 404)
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(model="no-such-model", messages=CHAT, max_completion_tokens=4)


def test_unknown_path(server):
    for method, path in (("GET", "/v1/nothing"), ("POST", "/v2/completions"), ("GET", "/")):
        status, _, data = server.request(method, path)
        assert status == 404, (method, path, data)
        error_doc(data)


def test_wrong_method(server):
    for method, path in (("GET", "/v1/chat/completions"), ("GET", "/v1/completions"), ("DELETE", "/v1/models"),
                         ("POST", "/health")):
        status, headers, data = server.request(method, path)
        assert status == 405, (method, path, data)
        assert "allow" in headers, (method, path)
        error_doc(data)


def test_alive_after_errors(client, model_id):
    r = client.completions.create(model=model_id, prompt=PROMPT, max_tokens=3, temperature=0,
                                  extra_body={"ignore_eos": True})
    assert r.usage.completion_tokens == 3


# ---- 401, 413: a server with --api-key and a small --max-body ---------------------------------------
API_KEY = "test-key-5b1e"
MAX_BODY = 4096


@pytest.fixture(scope="module")
def auth_server(request):
    return start_server(request, ["-t", "1", "--parallel", "2", "--api-key", API_KEY, "--max-body", str(MAX_BODY),
                                  "--shutdown-timeout", "5"], "auth")


def test_api_key(auth_server):
    model_id = DEFAULT_MODEL_ID
    with pytest.raises(openai.AuthenticationError) as e:
        auth_server.client(api_key="wrong").completions.create(model=model_id, prompt=PROMPT, max_tokens=2)
    check_openai_error(e.value, 401)
    with pytest.raises(openai.AuthenticationError):
        auth_server.client(api_key="wrong").models.list()
    # no Authorization header at all
    status, _, data = auth_server.request("POST", "/v1/completions", body={"model": model_id, "prompt": PROMPT})
    assert status == 401
    error_doc(data)
    good = auth_server.client(api_key=API_KEY)
    assert good.models.list().data[0].id == model_id
    r = good.completions.create(model=model_id, prompt=PROMPT, max_tokens=2, extra_body={"ignore_eos": True})
    assert r.usage.completion_tokens == 2


def test_body_too_large(auth_server):
    auth = {"Authorization": "Bearer " + API_KEY, "Content-Type": "application/json"}
    body = json.dumps({"model": DEFAULT_MODEL_ID, "prompt": "x" * (2 * MAX_BODY), "max_tokens": 1}).encode()
    status, _, data = auth_server.request("POST", "/v1/completions", body=body, headers=auth)
    assert status == 413, data
    error_doc(data)
    # just under the limit is read (and then refused only for what it says)
    small = json.dumps({"model": DEFAULT_MODEL_ID, "prompt": "In", "max_tokens": 1, "pad": "y" * (MAX_BODY - 200)})
    assert len(small) <= MAX_BODY
    status, _, data = auth_server.request("POST", "/v1/completions", body=small.encode(), headers=auth)
    assert status == 200, data


# ---- 429 / 503: a full queue --------------------------------------------------------------------
def test_queue_full(request):
    """--parallel 1 --queue 1: of 6 long requests sent at once, one runs, one waits, and the rest are
    refused at once with 429 or 503 and a Retry-After header; the accepted ones complete."""
    srv = start_server(request, ["-t", "1", "--parallel", "1", "--queue", "1", "--shutdown-timeout", "5"], "queue")
    n = 6
    barrier = threading.Barrier(n)
    results = [None] * n

    def one(i):
        barrier.wait(timeout=30)
        results[i] = srv.request("POST", "/v1/completions",
                                 body={"model": DEFAULT_MODEL_ID, "prompt": "In the beginning", "max_tokens": 200,
                                       "temperature": 0, "ignore_eos": True}, timeout=60)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=90)
    assert all(r is not None for r in results), "a request got no answer"
    statuses = sorted(r[0] for r in results)
    refused = [r for r in results if r[0] in (429, 503)]
    assert statuses.count(200) >= 2 and refused, statuses
    assert all(s in (200, 429, 503) for s in statuses), statuses
    for status, headers, data in refused:
        assert "retry-after" in headers and int(headers["retry-after"]) >= 0, headers
        error_doc(data)
    for status, _, data in results:
        if status == 200:
            assert json.loads(data)["usage"]["completion_tokens"] == 200
