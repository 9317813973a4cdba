"""make_gemma3_fixture.py: the Gemma3 parity fixture (tests/test_parity.c, tests/test_embed.c).

A tiny transformers Gemma3ForCausalLM (model_type gemma3_text) whose seven projections are
group-ternary F16 floats (t * d, one d per row and group of 64, built by make_fixtures.group_ternary,
as the qwen3 fixtures), with every Gemma3 feature trit implements exercised:
  - 2 layers, layer_types ["sliding_attention", "full_attention"], sliding_window 8 < the 24 ids, so
    the sliding layer's mask cuts positions 8 and later;
  - rope_parameters with two thetas (full 1e6, sliding 1e4), query_pre_attn_scalar 48 != head_dim 32;
  - the four sandwich norms, q/k norms, the final norm (Gemma's x * (1 + w): w drawn in [-0.4, 0.4]),
    gelu_pytorch_tanh, the embedding times sqrt(hidden_size), a tied head.
It records, with trit's per-64 activation quantization hooked onto every projection
(make_fixtures.install_act8: "act8") and without it ("float", transformers' model as is):
  logits.f32 (act8) and float_logits.f32, [24, vocab]; ids.json; greedy.json and greedy_logits.f32
  (transformers' cached generate() under act8, 16 tokens from the first 8 ids, and each step's logits); embed.json (the last token's final-norm
  hidden state, F.normalize'd, act8 and float, for three sequences); logits.json (shape, the
  measurements and the tolerances derived from them).
Tolerances are measured as tools/reference/README.md describes for qwen3: the linear inputs of the
act8 model are perturbed by max|x| * rel * N(0, 1) before the quantization hook (rel 2e-7: about what
two correct fp32 engines differ by, tools/reference/README.md, and 1e-6), and the largest |dlogit| is recorded apart
for trials in which no int8 code flipped and for all trials; the float distance over SWEEP random
sequences. The ids are drawn until no code of the act8 reference flips at rel 2e-7 in N_TRIALS trials.

Regenerate (from the repository root, about a minute):
    /opt/trainenv/bin/python tools/reference/make_gemma3_fixture.py [--out DIR]
"""
import argparse
import json
import math
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import make_fixtures as mf  # noqa: E402  (sets torch's deterministic CPU settings on import)

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
import transformers  # noqa: E402

SEED = 3301
GROUP = 64
N_IDS = 24
N_PROMPT = 8
N_NEW = 16
ROBUST_REL = 2e-7
NOISE_REL = 1e-6
N_TRIALS = 10
N_CANDIDATES = 200
SWEEP = 40
FLIP = 1e-4      # a logit change above this is a code flip, not rounding
EMBED_LENS = [1, 5, 13]
CONFIG = {
    "architectures": ["Gemma3ForCausalLM"], "model_type": "gemma3_text",
    "vocab_size": 300, "hidden_size": 128, "intermediate_size": 192,
    "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2, "head_dim": 32,
    "hidden_activation": "gelu_pytorch_tanh", "max_position_embeddings": 256, "rms_norm_eps": 1e-6,
    "rope_parameters": {"full_attention": {"rope_type": "default", "rope_theta": 1000000.0},
                        "sliding_attention": {"rope_type": "default", "rope_theta": 10000.0}},
    "query_pre_attn_scalar": 48, "sliding_window": 8,
    "layer_types": ["sliding_attention", "full_attention"],
    "final_logit_softcapping": None, "attn_logit_softcapping": None, "use_bidirectional_attention": False,
    "tie_word_embeddings": True, "attention_bias": False, "attention_dropout": 0.0,
    "bos_token_id": mf.BOS, "eos_token_id": mf.EOS, "pad_token_id": 0, "initializer_range": 0.02,
    "use_cache": True, "torch_dtype": "float16",
}
NORMS = ["input_layernorm", "post_attention_layernorm", "pre_feedforward_layernorm", "post_feedforward_layernorm"]


def build_weights():
    cfg = CONFIG
    rng = np.random.default_rng(SEED)
    hid, V = cfg["hidden_size"], cfg["vocab_size"]
    T = {}

    def vec(n):  # Gemma's norm weight w, applied as (1 + w): multipliers in [0.6, 1.4]
        return torch.from_numpy(rng.uniform(-0.4, 0.4, n).astype(np.float32)).to(torch.float16)

    T["model.embed_tokens.weight"], _, _ = mf.group_ternary("group_f16", rng, V, hid, GROUP, mf.GT_EMB_D)
    for i in range(cfg["num_hidden_layers"]):
        p = f"model.layers.{i}."
        for n in NORMS:
            T[p + n + ".weight"] = vec(hid)
        T[p + "self_attn.q_norm.weight"] = vec(cfg["head_dim"])
        T[p + "self_attn.k_norm.weight"] = vec(cfg["head_dim"])
        for name, (n_out, n_in) in mf.linear_shapes(cfg).items():
            T[p + name + ".weight"], _, _ = mf.group_ternary("group_f16", rng, n_out, n_in, GROUP, mf.GT_D)
    T["model.norm.weight"] = vec(hid)
    return T


def load(folder):
    model = transformers.AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32,
                                                              attn_implementation="eager", device_map=None)
    model.eval()
    assert type(model).__name__ == "Gemma3ForCausalLM", type(model)
    for n, t in model.named_parameters():
        assert t.dtype == torch.float32, (n, t.dtype)
    assert model.lm_head.weight.data_ptr() == model.model.embed_tokens.weight.data_ptr(), "not tied"
    c = model.config
    assert c.layer_types == CONFIG["layer_types"] and c.sliding_window == 8, (c.layer_types, c.sliding_window)
    assert c.rope_parameters["full_attention"]["rope_theta"] == 1e6
    assert c.rope_parameters["sliding_attention"]["rope_theta"] == 1e4
    assert model.model.layers[0].self_attn.sliding_window == 8 and model.model.layers[1].self_attn.sliding_window is None
    assert model.model.layers[0].self_attn.scaling == 48 ** -0.5
    assert float(model.model.embed_tokens.embed_scale) == np.float32(math.sqrt(128)), "embed_scale"
    mf.install_act8(model)
    model._noise = 0.0
    rng = np.random.default_rng(SEED + 7)

    def noise(mod, args):   # before the act8 hook (prepend): x + max|x| * rel * N(0, 1)
        if model._noise == 0.0:
            return None
        x = args[0]
        e = torch.from_numpy(rng.standard_normal(tuple(x.shape)).astype(np.float32))
        return (x + x.abs().amax() * model._noise * e,) + tuple(args[1:])
    for layer in model.model.layers:
        for name in mf.LINEARS:
            layer.get_submodule(name).register_forward_pre_hook(noise, prepend=True)
    return model


def logits(model, ids, act8=True, noise=0.0):
    model._act8, model._noise = act8, noise
    with torch.no_grad():
        out = model(input_ids=torch.tensor([ids]), use_cache=False).logits[0].float().numpy()
    model._act8, model._noise = True, 0.0
    return out


def embedding(model, ids, act8=True):
    model._act8 = act8
    with torch.no_grad():
        h = model.model(input_ids=torch.tensor([ids])).last_hidden_state[0, -1].float()
    model._act8 = True
    return F.normalize(h, p=2, dim=-1, eps=1e-12)


def noise_worst(model, ids, ref, rel):
    """(largest |dlogit| over trials with no flip, over all trials, number of trials that flipped)."""
    same, every, flips = 0.0, 0.0, 0
    for _ in range(N_TRIALS):
        d = float(np.abs(logits(model, ids, noise=rel) - ref).max())
        every = max(every, d)
        if d < FLIP:
            same = max(same, d)
        else:
            flips += 1
    return same, every, flips


def round_up(x):
    e = math.floor(math.log10(x))
    return float("%.2g" % (math.ceil(x / 10 ** (e - 1)) * 10 ** (e - 1)))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="tests/data/fixtures/gemma3-ternary-tiny")
    a = ap.parse_args()
    T = build_weights()
    os.makedirs(a.out, exist_ok=True)
    with open(os.path.join(a.out, "config.json"), "w") as f:
        json.dump(CONFIG, f, indent=2)
        f.write("\n")
    import safetensors.torch
    safetensors.torch.save_file(T, os.path.join(a.out, "model.safetensors"), metadata={"format": "pt"})
    model = load(a.out)
    V = CONFIG["vocab_size"]
    rng = np.random.default_rng(SEED + 1)

    best = None
    for cand in range(N_CANDIDATES):   # ids with no near-tie code at ROBUST_REL
        ids = mf.random_ids(rng, V, N_IDS)
        ref = logits(model, ids)
        same, every, flips = noise_worst(model, ids, ref, ROBUST_REL)
        if best is None or flips < best[3]:
            best = (ids, ref, (same, every), flips)
        if flips == 0:
            break
    ids, ref, (same, every), flips = best
    if flips:
        print(f"no flip-free id sequence in {N_CANDIDATES} draws; the best flipped {flips} of {N_TRIALS} trials")
    draws = cand + 1
    flt = logits(model, ids, act8=False)
    same6, every6, flips6 = noise_worst(model, ids, ref, NOISE_REL)
    # the window matters: the same model with a window past the sequence gives other logits
    model.config.sliding_window = 4096
    for layer in model.model.layers:
        if layer.self_attn.sliding_window is not None:
            layer.self_attn.sliding_window = 4096
    wide = logits(model, ids)
    model.config.sliding_window = 8
    model.model.layers[0].self_attn.sliding_window = 8
    assert np.array_equal(logits(model, ids), ref), "the window did not come back"
    window_effect = float(np.abs(wide - ref).max())

    # greedy: transformers' cached decode (sliding-window cache) under act8
    gc = transformers.GenerationConfig(do_sample=False, num_beams=1, max_new_tokens=N_NEW, min_new_tokens=0,
                                       eos_token_id=None, pad_token_id=0, bos_token_id=mf.BOS)
    model.generation_config.eos_token_id = None
    with torch.no_grad():
        g = model.generate(torch.tensor([ids[:N_PROMPT]]), generation_config=gc, output_logits=True,
                           return_dict_in_generate=True, use_cache=True)
    new = g.sequences[0, N_PROMPT:].tolist()
    raw = torch.stack([l[0] for l in g.logits]).float().numpy()
    assert raw.argmax(-1).tolist() == new
    full = logits(model, ids[:N_PROMPT] + new)
    cache_vs_full = float(np.abs(full[N_PROMPT - 1:-1] - raw).max())
    margins = [float(np.sort(r)[-1] - np.sort(r)[-2]) for r in raw]

    # sweep: act8 vs float over random sequences
    sweep_rng = np.random.default_rng(SEED + 2)
    float_worst = float(np.abs(flt - ref).max())
    for _ in range(SWEEP):
        s = mf.random_ids(sweep_rng, V, N_IDS)
        float_worst = max(float_worst, float(np.abs(logits(model, s, act8=False) - logits(model, s)).max()))

    # embeddings
    erng = np.random.default_rng(SEED + 3)
    seqs = []
    for n in EMBED_LENS:
        e_ids = [int(i) for i in erng.integers(3, V, n - 1)] + [mf.EOS] if n > 1 else [int(erng.integers(3, V))]
        a8, fl = embedding(model, e_ids), embedding(model, e_ids, act8=False)
        seqs.append({"ids": e_ids, "act8": [float(x) for x in a8], "float": [float(x) for x in fl],
                     "act8_vs_float_max": float((a8 - fl).abs().max()), "cos_act8_float": float(torch.dot(a8, fl))})

    tol = {"same_codes": round_up(5 * max(same, same6)), "flips": round_up(2 * max(every6, every)),
           "float": round_up(2 * float_worst)}
    def margin(r):
        return float(np.sort(r)[-1] - np.sort(r)[-2])
    decisive = [i for i, r in enumerate(ref) if margin(r) > 2 * tol["flips"]]
    float_decisive = [i for i, r in enumerate(flt) if margin(r) > 2 * tol["float"]]
    first_nd = next((i for i, m in enumerate(margins) if m <= 2 * tol["flips"]), N_NEW)
    raw.astype("<f4").tofile(os.path.join(a.out, "greedy_logits.f32"))
    ref.astype("<f4").tofile(os.path.join(a.out, "logits.f32"))
    flt.astype("<f4").tofile(os.path.join(a.out, "float_logits.f32"))
    with open(os.path.join(a.out, "ids.json"), "w") as f:
        json.dump({"ids": ids, "draws": draws}, f)
        f.write("\n")
    with open(os.path.join(a.out, "greedy.json"), "w") as f:
        json.dump({"prompt_ids": ids[:N_PROMPT], "generated_ids": new, "step_margins": [round(m, 6) for m in margins],
                   "first_non_decisive_step": first_nd, "cache_vs_full_max": cache_vs_full}, f, indent=1)
        f.write("\n")
    with open(os.path.join(a.out, "embed.json"), "w") as f:
        json.dump({"what": "last token's final-norm hidden state (Gemma3TextModel last_hidden_state[-1]), "
                           "F.normalize(p=2, eps=1e-12)", "dim": CONFIG["hidden_size"], "sequences": seqs,
                   "versions": mf.versions()}, f, indent=1)
        f.write("\n")
    meas = {"shape": [N_IDS, V], "dtype": "float32", "logit_absmax": float(np.abs(ref).max()),
            "robust_rel": ROBUST_REL, "noise_rel": NOISE_REL, "n_trials": N_TRIALS,
            "noise_2e-7": {"max_same_codes": same, "max": every, "trials_flipped": flips},
            "noise_1e-6": {"max_same_codes": same6, "max": every6, "trials_flipped": flips6},
            "act8_vs_float_fixture": float(np.abs(flt - ref).max()), "act8_vs_float_sweep_max": float_worst,
            "sweep": SWEEP, "window_effect": window_effect, "cache_vs_full_greedy": cache_vs_full,
            "tolerance": dict(tol, decisive_positions=decisive),
            "float_reference": {"decisive_positions": float_decisive}, "versions": mf.versions()}
    with open(os.path.join(a.out, "logits.json"), "w") as f:
        json.dump(meas, f, indent=1)
        f.write("\n")
    print(json.dumps({k: v for k, v in meas.items() if k != "versions"}, indent=1))
    for s in seqs:
        print(len(s["ids"]), s["act8_vs_float_max"], s["cos_act8_float"])


if __name__ == "__main__":
    main()
