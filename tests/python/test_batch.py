"""test_batch.py: generate_batch over trit_decode_batch gives each prompt the answer generate() gives
it alone: greedy, sampled with a seed, with stop strings, and with more prompts than one pass holds.
"""
import pytest

from conftest import DEFAULT_MODEL

PROMPTS = ["In the beginning", "And God said", "The LORD is my shepherd; I shall not want.", "a",
           "Blessed are the meek: for they shall inherit the earth.", "In the beginning"]


@pytest.mark.parametrize("kwargs", [
    {"temperature": 0},
    {"seed": 3},
    {"seed": 11, "temperature": 1.2, "top_k": 0, "repeat_penalty": 1.2},
    {"temperature": 0, "stop": [" the", "LORD"]},
    {"seed": 5, "stop": "\n"},
    {"temperature": 0, "max_tokens": 0},
    {"temperature": 0, "max_tokens": 1},
])
def test_batch_equals_alone(model, kwargs):
    kwargs = dict({"max_tokens": 40}, **kwargs)
    got = model.generate_batch(PROMPTS, **kwargs)
    assert got == [model.generate(p, **kwargs) for p in PROMPTS]


def test_batch_reuses_and_regrows_its_context(model):
    a = model.generate_batch(PROMPTS[:2], max_tokens=8, temperature=0)
    b = model.generate_batch(PROMPTS, max_tokens=30, temperature=0)  # more sequences: a new context
    c = model.generate_batch(PROMPTS[:2], max_tokens=8, temperature=0)  # fewer: the same one, emptied
    assert a == c and b[:2] == [model.generate(p, max_tokens=30, temperature=0) for p in PROMPTS[:2]]


def test_batch_in_waves(trit_module):
    """n_ctx 16: at most 16 sequences a pass, so 20 prompts run in two waves."""
    with trit_module.Model(DEFAULT_MODEL, n_ctx=16) as m:
        prompts = ["%d In the beginning" % i for i in range(20)]
        got = m.generate_batch(prompts, max_tokens=6, seed=2)
        assert got == [m.generate(p, max_tokens=6, seed=2) for p in prompts]


def test_batch_random_seeds_differ(model):
    a, b = model.generate_batch(["And God said"] * 2, max_tokens=40, temperature=1.5, top_k=0)
    # each prompt has its own random seed: at temperature 1.5 over the whole vocabulary, two seeds
    # drawing the same 40 tokens is not a chance this test can meet
    assert a != b


def test_batch_empty(model):
    assert model.generate_batch([]) == []
