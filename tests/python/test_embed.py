"""test_embed.py: Model.embed and Model.embed_ids (docs/python.md "Embeddings").

    embed == trit embed     the shipped model: the .npy of several texts (one that ends with the
                            end-of-text token already), also with --instruct, --no-normalize and
                            --no-eos, every float's bits; a str gives the 1-D row
    embed_ids               the ids trit embed runs for a text give its vector; raw / norm in double
                            == the normalized vector, bit for bit
    qwen3-embed-tiny        the fixture has no tokenizer (trit embed cannot read it: it takes texts),
                            so its token-id sequences go through embed_ids and are compared with
                            transformers' vectors in embed.json, to test_embed.c's tolerances
    hostile                 wrong types, empty texts, ids outside the vocabulary, a text longer than the
                            context, a model without a tokenizer, a closed model: errors, and the model
                            goes on
"""
import json
import os

import numpy as np
import pytest

from conftest import DEFAULT_MODEL, REPO

TEXTS = ["In the beginning God created the heaven and the earth.", "Jesus wept.",
         "And God said, Let there be light<|end_of_text|>", "a"]
FIXTURE = os.path.join(REPO, "tests", "data", "fixtures", "qwen3-embed-tiny")
# tests/test_embed.c: EMBED_TOL_SAME_CODES on the fixture's "robust" sequences (no int8 code at a
# near-tie: fp32 rounding only), EMBED_TOL = 2 x 0.0102 on any (code flips allowed); their
# derivations are there
EMBED_TOL_SAME_CODES = 1e-5
EMBED_TOL = 2 * 0.0102


def cli_embed(cli, tmp_path, texts, *extra):
    src, out = tmp_path / "texts.txt", tmp_path / "e.npy"
    src.write_text("\n".join(texts) + "\n")
    cli("embed", "-m", DEFAULT_MODEL, "-f", str(src), "-o", str(out), *extra)
    return np.load(out)


def same_bits(a, b):
    return a.dtype == b.dtype == np.float32 and a.shape == b.shape and np.array_equal(a.view(np.uint32), b.view(np.uint32))


@pytest.mark.parametrize("kw,flags", [({}, []),
                                      ({"instruct": "Given a verse, retrieve similar verses"},
                                       ["--instruct", "Given a verse, retrieve similar verses"]),
                                      ({"normalize": False}, ["--no-normalize"]),
                                      ({"add_eos": False}, ["--no-eos"])],
                         ids=["default", "instruct", "raw", "no-eos"])
def test_embed_equals_cli(model, cli, tmp_path, kw, flags):
    got = model.embed(TEXTS, **kw)
    want = cli_embed(cli, tmp_path, TEXTS, *flags)
    assert got.shape == (len(TEXTS), model.info["dim"])
    assert same_bits(got, want)
    assert same_bits(model.embed(TEXTS[1], **kw), want[1])  # a str: the 1-D row


def test_embed_ids_and_normalization(model):
    ids = model.tokenize(TEXTS[1]) + [4094]  # BOS, the text, <|end_of_text|> (no <|endoftext|> here)
    want = model.embed(TEXTS[1])
    assert same_bits(model.embed_ids(ids), want)
    assert same_bits(model.embed_ids(np.array(ids, dtype=np.int64)), want)
    raw = model.embed_ids(ids, normalize=False)
    # trit_embed's formula (docs/api.md): the norm in double, each element the rounded quotient
    n = np.sqrt(np.sum(raw.astype(np.float64) ** 2))
    assert same_bits((raw.astype(np.float64) / max(n, 1e-12)).astype(np.float32), want)
    # embeddings run in the generation context: a generation after them is what it is alone
    a = model.generate("In the beginning", max_tokens=16, temperature=0)
    model.embed(TEXTS)
    assert model.generate("In the beginning", max_tokens=16, temperature=0) == a


def test_fixture_against_transformers(trit_module):
    with open(os.path.join(FIXTURE, "embed.json")) as f:
        ref = json.load(f)
    with trit_module.Model(FIXTURE, device="cpu") as m:
        assert m.info["dim"] == ref["dim"]
        with pytest.raises(trit_module.TritError):
            m.embed("text")  # no tokenizer
        n_robust = 0
        for s in ref["sequences"]:
            ids = json.loads(s["ids"]) if isinstance(s["ids"], str) else s["ids"]
            robust = s["robust"] in (True, "True")
            act8 = np.array(json.loads(s["act8"]) if isinstance(s["act8"], str) else s["act8"], dtype=np.float64)
            got = m.embed_ids(ids)
            d = np.abs(got.astype(np.float64) - act8).max()
            assert d <= (EMBED_TOL_SAME_CODES if robust else EMBED_TOL), (ids, d)
            n_robust += robust
        assert n_robust > 0


def test_hostile(model, trit_module):
    for bad in (None, 5, b"bytes", [b"x"], ["a", 3]):
        with pytest.raises(TypeError):
            model.embed(bad)
    for bad in ("", ["a", ""]):
        with pytest.raises(ValueError):
            model.embed(bad)
    with pytest.raises(TypeError):
        model.embed("a", instruct=3)
    with pytest.raises(TypeError):
        model.embed("a", normalize=1)
    for bad in ([], [4096], [-1]):
        with pytest.raises(ValueError):
            model.embed_ids(bad)
    with pytest.raises(trit_module.TritError) as e:
        model.embed("beginning " * 400)
    assert e.value.status == trit_module.Status.CONTEXT_FULL
    assert model.embed([]).shape == (0, model.info["dim"])
    assert np.isfinite(model.embed("Jesus wept.")).all()  # the model goes on
    with trit_module.Model("synthetic:tiny", device="cpu") as syn:
        with pytest.raises(trit_module.TritError):
            syn.embed("text")
        assert syn.embed_ids([1, 2, 3]).shape == (syn.info["dim"],)
    m = trit_module.Model(DEFAULT_MODEL)
    m.close()
    with pytest.raises(trit_module.TritError):
        m.embed("a")
