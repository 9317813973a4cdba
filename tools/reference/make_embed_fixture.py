"""make_embed_fixture.py: the embedding parity fixture (trit embed, trit_embed) from transformers.

A tiny Qwen3 with group-ternary weights, built exactly as make_fixtures.py builds its qwen3 fixtures
(make_fixtures.build_weights: F16 t * d, one d per row and group of 64, tied, q/k norms, theta 1e6),
smaller so that the folder stays below 200 KB. For a few token sequences it records what
Qwen3-Embedding computes: the last token's hidden state after the final norm (Qwen3Model's
last_hidden_state[-1], the input of the LM head), L2-normalized with torch.nn.functional.normalize,
  - "act8": with trit's per-64 int8 activation quantization hooked onto every projection
    (make_fixtures.install_act8), the reference trit must match closely;
  - "float": transformers' float model, unmodified, which trit approximates (measured, looser);
  - "raw_act8": the act8 state before normalization (checks TRIT_EMBED_RAW).
It also measures how far fp32 rounding can move the act8 vectors: the linear inputs are perturbed by
x + max|x| * NOISE_REL * N(0, 1) before the quantization hook, N_TRIALS times per sequence, and the
largest elementwise change of the normalized vector is recorded ("act8_noise_max"). The test's
tolerances are derived from it (tests/test_embed.c says how); SEQS says which sequences are free of
near-ties.

Regenerate (from the repository root, about 10 s):
    /opt/trainenv/bin/python tools/reference/make_embed_fixture.py [--out DIR]
Writes DIR (default tests/data/fixtures/qwen3-embed-tiny): config.json, model.safetensors, embed.json.
"""
import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import make_fixtures as mf  # noqa: E402  (sets torch's deterministic CPU settings on import)

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

SPEC = dict(
    seed=3065, family="qwen3", storage="group_f16", scale_style="group", group=64,
    config={
        "architectures": ["Qwen3ForCausalLM"], "model_type": "qwen3",
        "vocab_size": 96, "hidden_size": 64, "intermediate_size": 128,
        "num_hidden_layers": 2, "num_attention_heads": 2, "num_key_value_heads": 1,
        "head_dim": 32, "hidden_act": "silu", "max_position_embeddings": 128,
        "rms_norm_eps": 1e-6, "rope_theta": 1000000.0, "rope_scaling": None,
        "tie_word_embeddings": True, "attention_bias": False, "attention_dropout": 0.0,
        "use_sliding_window": False, "sliding_window": None, "max_window_layers": 2,
        "bos_token_id": mf.BOS, "eos_token_id": mf.EOS, "initializer_range": 0.02, "use_cache": True,
        "torch_dtype": "float16",
    })
# Sequences: (length, robust). Every sequence but the one-token one ends with EOS (2), as
# Qwen3-Embedding's tokenizer ends every input with its end-of-text token. "Robust" sequences are drawn
# until no int8 code of the act8 reference sits at a near-tie: N_TRIALS perturbations of the linear
# inputs by ROBUST_REL leave the normalized vector within FLIP_FREE of itself, so that trit, whose fp32
# rounding differs from torch's by less, computes the same codes and agrees to fp32 rounding. (At
# NOISE_REL nearly every draw flips a code: this model's ~640 quantized values per token.) Long sequences hold too many codes for any draw to be free of near-ties
# (about 640 quantized values per token here); they are compared with a tolerance that allows flips.
# The test runs them with n_batch 16 too, so that the 17 and 45 token ones take several pieces.
SEQS = [(1, True), (3, True), (6, True), (10, True), (17, False), (45, False)]
NOISE_REL = 1e-6   # make_fixtures.NOISE_LEVELS' upper level: the largest |dx|/max|x| between two fp32 engines
ROBUST_REL = 5e-7  # a few fp32 ulps of max|x|: what trit's and torch's norms and sums differ by
FLIP_FREE = 1e-5   # a change below this is rounding, not a code flip (a flip moves the vector by ~1e-3)
N_TRIALS = 20
N_CANDIDATES = 500


def last_hidden(model, ids):
    with torch.no_grad():
        out = model.model(input_ids=torch.tensor([ids]))
    return out.last_hidden_state[0, -1].float()


def install_noise(model, rng):
    """Relative noise on every projection's input, before make_fixtures' act8 hook (prepend)."""
    model._noise = 0.0

    def pre(mod, args):
        if model._noise == 0.0:
            return None
        x = args[0]
        e = torch.from_numpy(rng.standard_normal(tuple(x.shape)).astype(np.float32))
        return (x + x.abs().amax() * model._noise * e,) + tuple(args[1:])
    for layer in model.model.layers:
        for name in mf.LINEARS:
            layer.get_submodule(name).register_forward_pre_hook(pre, prepend=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="tests/data/fixtures/qwen3-embed-tiny")
    a = ap.parse_args()
    tensors, _ = mf.build_weights(SPEC)
    mf.write_folder(a.out, SPEC, tensors)
    model = mf.load_hf(a.out)            # fp32, eager, act8 hooks installed (model._act8)
    mf.check_loaded(model, SPEC, tensors)
    rng = np.random.default_rng(SPEC["seed"] + 1)
    install_noise(model, np.random.default_rng(SPEC["seed"] + 2))
    V = SPEC["config"]["vocab_size"]
    seqs = []

    def noise_max(ids, ref, rel):
        worst = 0.0
        model._noise = rel
        for _ in range(N_TRIALS):
            v = F.normalize(last_hidden(model, ids), p=2, dim=-1, eps=1e-12)
            worst = max(worst, float((v - ref).abs().max()))
        model._noise = 0.0
        return worst

    for n, robust in SEQS:
        for cand in range(N_CANDIDATES):
            ids = [int(i) for i in rng.integers(3, V, n - 1)] + [mf.EOS] if n > 1 else [int(rng.integers(3, V))]
            model._act8 = True
            raw = last_hidden(model, ids)
            act8 = F.normalize(raw, p=2, dim=-1, eps=1e-12)
            if not robust or noise_max(ids, act8, ROBUST_REL) < FLIP_FREE:
                break
        else:
            raise SystemExit(f"no flip-free sequence of {n} tokens in {N_CANDIDATES} draws")
        nm = noise_max(ids, act8, NOISE_REL)
        model._act8 = False
        flt = F.normalize(last_hidden(model, ids), p=2, dim=-1, eps=1e-12)
        model._act8 = True
        cos = float(torch.dot(act8, flt))
        seqs.append({"ids": ids, "robust": robust, "draws": cand + 1, "act8": [float(x) for x in act8],
                     "raw_act8": [float(x) for x in raw], "float": [float(x) for x in flt],
                     "act8_noise_max": nm, "act8_vs_float_max": float((act8 - flt).abs().max()),
                     "cos_act8_float": cos})
        print(f"n={n:3d} robust={robust!s:5} draws {cand + 1:3d}  act8 noise max {nm:.3g}  "
              f"|act8 - float| max {seqs[-1]['act8_vs_float_max']:.3g}  cos {cos:.6f}")
    doc = {"model": os.path.basename(os.path.normpath(a.out)),
           "what": "last token's final-norm hidden state (Qwen3Model last_hidden_state[-1]), "
                   "torch.nn.functional.normalize(p=2, eps=1e-12); raw_act8 before normalization",
           "dim": SPEC["config"]["hidden_size"], "noise_rel": NOISE_REL, "robust_rel": ROBUST_REL,
           "flip_free": FLIP_FREE, "n_trials": N_TRIALS,
           "sequences": seqs, "versions": mf.versions()}
    with open(os.path.join(a.out, "embed.json"), "w") as f:
        json.dump(doc, f, indent=1)
        f.write("\n")


if __name__ == "__main__":
    main()
