"""test_transformers.py: numpy logits from the package against Hugging Face transformers' own, on the
tiny random-weight fixtures that tools/reference/make_fixtures.py saved with transformers' classes
(tests/data/fixtures/<model>/: the HF folder, ids.json, and transformers' fp32 logits.f32). The
folders have no tokenizer files: the Model runs token ids.

The bound is the fixtures' own, tools/reference/README.md's TRIT_HF_LOGIT_TOL_SAME_CODES (5 x the
worst |dlogit| measured where every int8 activation code matched transformers'), as tests/test_parity.c
uses it; the top-1 token must agree at the positions whose margin exceeds 2 x the loose bound.
"""
import json
import os

import numpy as np
import pytest

from conftest import REPO

FIXTURES = os.path.join(REPO, "tests", "data", "fixtures")


@pytest.mark.parametrize("name", ["bitnet-2b4t-tiny", "bitnet-1bitllm-tiny", "llama-bitlinear-tiny"])
def test_logits_match_transformers(trit_module, name):
    folder = os.path.join(FIXTURES, name)
    with open(os.path.join(folder, "ids.json")) as f:
        ids = json.load(f)["ids"]
    with open(os.path.join(folder, "logits.json")) as f:
        meta = json.load(f)
    ref = np.fromfile(os.path.join(folder, "logits.f32"), dtype="<f4").reshape(meta["shape"])
    with trit_module.Model(folder, device="cpu") as m:
        got = m.logits(ids)
        with pytest.raises(trit_module.TritError) as e:
            m.tokenize("no tokenizer files")
        assert e.value.status == trit_module.Status.NOT_FOUND
    assert got.shape == ref.shape
    tol = meta["tolerance"]["TRIT_HF_LOGIT_TOL_SAME_CODES"]
    assert np.abs(got - ref).max() <= tol
    decisive = meta["tolerance"]["decisive_positions"]
    assert (got[decisive].argmax(axis=1) == ref[decisive].argmax(axis=1)).all()
