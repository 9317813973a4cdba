"""test_stop.py: stop strings. However the text arrives in pieces, the answer is the whole text cut
before the earliest place where any stop string starts, and the generation ends there.
"""
import random

import pytest


def cut(text, stops):
    hits = [p for p in (text.find(s) for s in stops if s) if p >= 0]
    return text[:min(hits)] if hits else text


def run(matcher_cls, pieces, stops):
    m = matcher_cls(stops)
    out = []
    for p in pieces:
        text, stopped = m.feed(p)
        out.append(text)
        if stopped:
            return "".join(out), True
    out.append(m.finish())
    return "".join(out), False


def test_random_texts_and_splits(trit_module):
    matcher = trit_module._stop.StopMatcher
    rng = random.Random(16)
    for _ in range(3000):
        text = "".join(rng.choice("abc ") for _ in range(rng.randint(0, 30)))
        stops = ["".join(rng.choice("abc ") for _ in range(rng.randint(1, 4))) for _ in range(rng.randint(1, 3))]
        cuts = sorted(rng.sample(range(len(text) + 1), min(len(text) + 1, rng.randint(0, 8))))
        pieces = [text[i:j] for i, j in zip([0] + cuts, cuts + [len(text)])]
        got, stopped = run(matcher, pieces, stops)
        assert got == cut(text, stops), (text, stops, pieces)
        assert not stopped or any(s in text for s in stops)  # it ends early only at a stop string


def test_longer_stop_starting_earlier_wins(trit_module):
    matcher = trit_module._stop.StopMatcher
    assert run(matcher, ["x", "a", "b", "c", "d"], ["abc", "b"]) == ("x", True)
    assert run(matcher, ["x", "a", "b", "d"], ["abc", "b"]) == ("xa", True)
    assert run(matcher, ["xa", "b"], ["abc", "b"]) == ("xa", False)  # the text ended first


def test_generate_stops_before_the_string(model):
    full = model.generate("In the beginning", max_tokens=32, temperature=0)
    assert "LORD" in full
    assert model.generate("In the beginning", max_tokens=32, temperature=0, stop="LORD") == cut(full, ["LORD"])
    assert model.generate("In the beginning", max_tokens=32, temperature=0, stop=["zzz", ", and"]) == \
        cut(full, [", and"])
    assert "".join(model.stream("In the beginning", max_tokens=32, temperature=0, stop=["LORD"])) == cut(full, ["LORD"])


@pytest.mark.parametrize("stop", [None, [], "", [""]])
def test_no_stop(model, stop):
    full = model.generate("In the beginning", max_tokens=16, temperature=0)
    assert model.generate("In the beginning", max_tokens=16, temperature=0, stop=stop) == full
