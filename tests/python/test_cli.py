"""test_cli.py: the package gives what the trit command gives on the same model, bit for bit.

    logits       == trit logits --ids (the .npy file), every float's bits, with splits of the batch
    generate     == trit run (greedy, and sampled with a seed: the same draws)
    stream       == generate, joined
    tokenize     == trit tokenize (plain, --bos, --special), detokenize inverts it
    perplexity   == trit perplexity (the printed PPL = x +/- y)
    chat         == trit chat (one message on stdin)
    greedy generate == transformers' 32 tokens (tests/data/default-model/golden.json)
"""
import json
import os

import numpy as np
import pytest

from conftest import DEFAULT_MODEL, REPO

PROMPTS = ["In the beginning", "And God said", "The LORD is my shepherd; I shall not want.",
           "Blessed are the meek: for they shall inherit the earth.", "a"]


def cli_logits(cli, tmp_path, ids, *extra):
    out = tmp_path / "logits.npy"
    cli("logits", "-m", DEFAULT_MODEL, "--ids", ",".join(map(str, ids)), "-o", str(out), *extra)
    return np.load(out)


@pytest.mark.parametrize("prompt", PROMPTS[:3])
def test_logits_equal_cli(model, cli, tmp_path, prompt):
    ids = model.tokenize(prompt)
    got = model.logits(ids)
    want = cli_logits(cli, tmp_path, ids)
    assert got.dtype == np.float32 and got.shape == (len(ids), model.n_vocab)
    assert np.array_equal(got.view(np.uint32), want.view(np.uint32))


def test_logits_long_and_split(trit_module, cli, tmp_path, monkeypatch):
    """200 ids, in passes of 7 tokens (the logits context's batch, made small), against one CLI pass."""
    rng = np.random.default_rng(16)
    ids = rng.integers(0, 4096, size=200)
    monkeypatch.setattr(trit_module._model, "_SCORE_BATCH", 7)
    with trit_module.Model(DEFAULT_MODEL) as m:
        got = m.logits(ids)  # a numpy array of ids
        assert np.array_equal(got, m.logits([int(i) for i in ids]))
    want = cli_logits(cli, tmp_path, ids.tolist())
    assert np.array_equal(got.view(np.uint32), want.view(np.uint32))


@pytest.mark.parametrize("prompt", PROMPTS)
def test_greedy_equals_trit_run(model, cli, prompt):
    text = model.generate(prompt, max_tokens=32, temperature=0)
    out = cli("run", "-m", DEFAULT_MODEL, "-p", prompt, "-n", "32", "--temp", "0").decode()
    assert out == prompt + text + "\n"


SAMPLING = [
    ({}, []),  # the package's defaults are the CLI's, seed 1 is trit run's default
    ({"temperature": 1.1, "top_k": 0, "top_p": 0.9, "min_p": 0.02, "repeat_penalty": 1.3},
     ["--temp", "1.1", "--top-k", "0", "--top-p", "0.9", "--min-p", "0.02", "--repeat-penalty", "1.3"]),
    ({"temperature": 0, "repeat_penalty": 1.5}, ["--temp", "0", "--repeat-penalty", "1.5"]),
    ({"temperature": 0.5, "top_k": 5}, ["--temp", "0.5", "--top-k", "5"]),
]


@pytest.mark.parametrize("kwargs,flags", SAMPLING)
@pytest.mark.parametrize("seed", [1, 7, 2**64 - 1])
def test_sampled_equals_trit_run(model, cli, kwargs, flags, seed):
    prompt = "And God said"
    text = model.generate(prompt, max_tokens=48, seed=seed, **kwargs)
    out = cli("run", "-m", DEFAULT_MODEL, "-p", prompt, "-n", "48", "--seed", str(seed), *flags).decode()
    assert out == prompt + text + "\n"


def test_stream_joins_to_generate(model):
    for seed in (1, 2):
        pieces = list(model.stream("In the beginning", max_tokens=40, seed=seed))
        assert all(isinstance(p, str) and p for p in pieces)
        assert "".join(pieces) == model.generate("In the beginning", max_tokens=40, seed=seed)


def test_generate_stops_at_context_end(trit_module, cli):
    """A context of 24 tokens ends the answer where trit run -c 24 ends it."""
    with trit_module.Model(DEFAULT_MODEL, n_ctx=24) as m:
        text = m.generate("In the beginning", max_tokens=100, temperature=0)
    out = cli("run", "-m", DEFAULT_MODEL, "-c", "24", "-p", "In the beginning", "-n", "100", "--temp", "0").decode()
    assert out == "In the beginning" + text + "\n"


def test_greedy_equals_transformers(model):
    with open(os.path.join(REPO, "tests", "data", "default-model", "golden.json")) as f:
        golden = json.load(f)
    assert model.tokenize(golden["prompt"]) == golden["prompt_ids"]
    text = model.generate(golden["prompt"], max_tokens=len(golden["generated_ids"]), temperature=0)
    assert text == golden["generated_text"]
    assert text == model.detokenize(golden["generated_ids"])


TEXTS = ["In the beginning", "Hello world", "  spaces   and\ttabs\n\nnewlines ", "naïve café — 日本語 🙂",
         "<|eot_id|> written in the text", "x" * 300, "1234567890 3.14159"]


@pytest.mark.parametrize("text", TEXTS)
def test_tokenize_equals_cli(model, cli, text):
    def ids(*flags):
        return [int(x) for x in cli("tokenize", "-m", DEFAULT_MODEL, "-p", text, *flags).split()]

    assert model.tokenize(text, add_special=False) == ids()
    assert model.tokenize(text) == ids("--bos")  # the vocabulary adds BOS, no EOS
    assert model.tokenize(text, add_special=False, parse_special=True) == ids("--special")
    assert model.detokenize(model.tokenize(text, add_special=False)) == text
    assert model.tokenize(text.encode(), add_special=False) == ids()


def test_detokenize_special(model):
    ids = model.tokenize("<|eot_id|>", add_special=True, parse_special=True)
    assert ids[0] == 4093 and len(ids) == 2
    assert model.detokenize(ids) == ""
    assert model.detokenize(ids, special=True) == model.token_text(4093) + "<|eot_id|>"
    assert model.detokenize([]) == ""


def test_perplexity_equals_cli(model, cli):
    path = os.path.join(REPO, "tests", "data", "default-model", "val_excerpt.txt")
    with open(path, encoding="utf-8") as f:
        text = f.read()
    ppl, err = model.perplexity(text)
    out = cli("perplexity", "-m", DEFAULT_MODEL, "-f", path).decode()
    last = out.strip().splitlines()[-1]
    assert last == "Final estimate: PPL = %.4f +/- %.5f" % (ppl, err)
    # and with a shorter context and a bound on the chunks
    ppl, err = model.perplexity(text, n_ctx=64, max_chunks=3)
    out = cli("perplexity", "-m", DEFAULT_MODEL, "-f", path, "-c", "64", "--chunks", "3").decode()
    assert out.strip().splitlines()[-1] == "Final estimate: PPL = %.4f +/- %.5f" % (ppl, err)


@pytest.mark.parametrize("message", ["Who was Moses?", "Tell me of the flood."])
def test_chat_equals_trit_chat(model, cli, message):
    answer = model.chat([{"role": "user", "content": message}], max_tokens=24, temperature=0)
    out = cli("chat", "-m", DEFAULT_MODEL, "--temp", "0", "-n", "24", input=(message + "\n").encode()).decode()
    assert out == answer + "\n"
    answer = model.chat([{"role": "system", "content": "Be brief."}, {"role": "user", "content": message}],
                        max_tokens=24, seed=5)
    out = cli("chat", "-m", DEFAULT_MODEL, "--system", "Be brief.", "--seed", "5", "-n", "24",
              input=(message + "\n").encode()).decode()
    assert out == answer + "\n"
