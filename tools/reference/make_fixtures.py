"""make_fixtures.py: tiny random-weight ternary models and their transformers fp32 references.

For each model family trit must run, this script
  1. writes a hub-style HF folder (config.json + model.safetensors) with random weights: packed
     uint8 ternary weights made with transformers' own pack_weights (verified against its
     unpack_weights), fp16 latent weights for the 1bitLLM family, or group-ternary weights
     (t * d, one d per row and group of 64 in fp16, or of 128 in bf16) for Qwen3 (Ternary-Bonsai's
     layout, README.md "Group-scaled ternary" and "Groups of 128"), whose references are taken
     with trit's activation quantization hooked
     onto transformers' projections (act8) and, in float_logits.f32, without it;
  2. loads that folder back with transformers' from_pretrained (fp32, eager attention, dynamo off,
     CPU) so that every reference is transformers' own reading of the file;
  3. records a teacher-forced forward, a greedy generation, top-1/top-2 margins and the layer-0
     q_proj intermediates (int8 codes, int32 accumulators);
  4. runs tools/reference/engine_ref.py (an independent numpy model of docs/design.md section 3) on the
     same folder and measures its distance to the reference, on the fixture ids and on a sweep of
     extra random sequences (the sweep is only measured, not stored).

Regenerate (from the repository root):
    /opt/trainenv/bin/python tools/reference/make_fixtures.py
Options: --out DIR (default tests/data/fixtures), --sweep N (extra sequences per model, default 200),
         --candidates N (id sequences tried per model, default 300), --only NAME.
It takes about 16 minutes on one CPU core; the fixtures are bit-reproducible for the same versions
(and CPU: torch sums in another order on another CPU, see README.md).
"""
import argparse
import json
import os
import sys

os.environ.setdefault("TORCHDYNAMO_DISABLE", "1")      # the quant helpers are @torch.compile'd
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")      # references are computed on the CPU

import numpy as np
import torch

torch._dynamo.config.disable = True
torch.set_num_threads(1)
torch.use_deterministic_algorithms(True)
torch.set_float32_matmul_precision("highest")
torch.backends.cuda.matmul.allow_tf32 = False
torch.backends.cudnn.allow_tf32 = False
torch.backends.cuda.matmul.allow_bf16_reduced_precision_reduction = False
torch.backends.cuda.matmul.allow_fp16_reduced_precision_reduction = False

import safetensors.torch
import transformers
from transformers import AutoModelForCausalLM
from transformers.integrations.bitnet import AutoBitLinear, BitLinear, pack_weights, unpack_weights

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import engine_ref  # noqa: E402

F32 = np.float32
N_IDS = 24          # teacher-forced sequence length (BOS first)
N_PROMPT = 8        # greedy prompt = first 8 ids
N_NEW = 32          # greedy tokens
BOS, EOS = 1, 2
QUIRKS = set()
# Relative noise injected elementwise into engine_ref's linear inputs, standing in for engines whose
# fp32 rounding differs more from transformers' than numpy's does (1e-6 ~ the largest |dx|/max|x|
# measured between engine_ref and transformers at any linear input).
NOISE_LEVELS = [1e-7, 1e-6]
N_NOISE_TRIALS = 10
RHO_POS0 = 2e-5        # required tie robustness of the BOS position (every sequence starts there)
TOL_K = 2              # TRIT_HF_LOGIT_TOL = TOL_K x the worst |dlogit| measured (rounded up)
# Weight statistics: latent std 0.15 gives alpha ~ 0.12, so each block adds O(1) to a residual stream
# whose embedding rms is 0.5; with std 0.02 the tied models just echo the input token.
W_STD = 0.15
EMB_STD = 0.5
# Group-scaled ternary weights (qwen3): t in {-1, 0, +1} with P(0) = GT_P_ZERO, one fp16 d per row
# and group, uniform in GT_D (linears) or GT_EMB_D (embedding): the same statistics as the BitNet
# fixtures (about a third zeros, magnitude ~0.12; embedding rms ~0.5).
GT_P_ZERO = 0.35
GT_D = (0.15, 0.3)
GT_EMB_D = (0.45, 0.8)


SPECS = {
    # microsoft/bitnet-b1.58-2B-4T shape family: packed uint8 + weight_scale that MULTIPLIES.
    "bitnet-2b4t-tiny": dict(
        seed=2401, family="bitnet", storage="packed", scale_style="mul",
        config={
            "architectures": ["BitNetForCausalLM"], "model_type": "bitnet",
            "vocab_size": 300, "hidden_size": 128, "intermediate_size": 200,
            "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2,
            "hidden_act": "relu2", "max_position_embeddings": 128, "rms_norm_eps": 1e-5,
            "rope_theta": 500000.0, "tie_word_embeddings": True, "attention_bias": False,
            "attention_dropout": 0.0, "bos_token_id": BOS, "eos_token_id": EOS,
            "initializer_range": 0.02, "use_cache": True, "torch_dtype": "bfloat16",
            "quantization_config": {"quant_method": "bitnet", "linear_class": "autobitlinear",
                                    "quantization_mode": "offline"},
        }),
    # 1bitLLM/bitnet_b1_58-* graph (SiLU, two sub-norms, MHA, theta 1e4, tied), fp16 latent weights
    # re-ternarized every forward by transformers (AutoBitLinear online).
    "bitnet-1bitllm-tiny": dict(
        seed=1581, family="bitnet", storage="latent_f16", scale_style="mul",
        config={
            "architectures": ["BitNetForCausalLM"], "model_type": "bitnet",
            "vocab_size": 260, "hidden_size": 96, "intermediate_size": 172,
            "num_hidden_layers": 2, "num_attention_heads": 6, "num_key_value_heads": 6,
            "hidden_act": "silu", "max_position_embeddings": 128, "rms_norm_eps": 1e-5,
            "rope_theta": 10000.0, "tie_word_embeddings": True, "attention_bias": False,
            "attention_dropout": 0.0, "bos_token_id": BOS, "eos_token_id": EOS,
            "initializer_range": 0.02, "use_cache": True, "torch_dtype": "float16",
            "quantization_config": {"quant_method": "bitnet", "linear_class": "autobitlinear",
                                    "quantization_mode": "online"},
        }),
    # HF1BitLLM/Llama3-8B-1.58 and Falcon3-*-1.58bit: plain Llama + BitLinear (weight_scale DIVIDES).
    "llama-bitlinear-tiny": dict(
        seed=8158, family="llama", storage="packed", scale_style="div",
        config={
            "architectures": ["LlamaForCausalLM"], "model_type": "llama",
            "vocab_size": 320, "hidden_size": 112, "intermediate_size": 236,
            "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2,
            "head_dim": 28, "hidden_act": "silu", "max_position_embeddings": 128,
            "rms_norm_eps": 1e-6, "rope_theta": 500000.0, "rope_scaling": None,
            "tie_word_embeddings": False, "attention_bias": False, "mlp_bias": False,
            "attention_dropout": 0.0, "bos_token_id": BOS, "eos_token_id": EOS,
            "initializer_range": 0.02, "use_cache": True, "torch_dtype": "bfloat16",
            "pretraining_tp": 1, "is_bitnet_config": True,
            "quantization_config": {"modules_to_not_convert": None, "quant_method": "bitnet"},
        }),
}

SPECS["qwen3-ternary-tiny"] = dict(
    # Ternary-Bonsai's graph (Qwen3: q/k RMSNorm per head, SiLU, GQA, theta 1e6) with group-ternary
    # weights stored as F16 t * d (one d per row and group of 64 columns), run by transformers'
    # unmodified Qwen3ForCausalLM. Tied, as Ternary-Bonsai-1.7B/4B and every Qwen3 up to 4B are
    # (the untied head path is covered by llama-bitlinear-tiny); the embedding (and so the head) is
    # group-ternary too, as Bonsai's "ternary coverage: embeddings ... LM head".
    seed=3064, family="qwen3", storage="group_f16", scale_style="group", group=64,
    config={
        "architectures": ["Qwen3ForCausalLM"], "model_type": "qwen3",
        "vocab_size": 300, "hidden_size": 128, "intermediate_size": 192,
        "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2,
        "head_dim": 32, "hidden_act": "silu", "max_position_embeddings": 128,
        "rms_norm_eps": 1e-6, "rope_theta": 1000000.0, "rope_scaling": None,
        "tie_word_embeddings": True, "attention_bias": False, "attention_dropout": 0.0,
        "use_sliding_window": False, "sliding_window": None, "max_window_layers": 2,
        "bos_token_id": BOS, "eos_token_id": EOS, "initializer_range": 0.02, "use_cache": True,
        "torch_dtype": "float16",
    })

SPECS["qwen3-ternary-g128-tiny"] = dict(
    # The same graph with the other group width and the other head: one d per row and group of 128
    # columns (Ternary-Bonsai's width, PrismML's Q2_0 blocks), BF16 t * d (d rounded to bf16, which is
    # also exact in fp16, so trit convert writes every linear as Q2_0 g128), untied group-ternary head.
    # quantization_config.group_size names the width for trit; transformers refuses a
    # quantization_config without quant_method, so it loads this folder with the config minus that key
    # (load_hf), which changes nothing else it reads. intermediate_size 256: every input width (128,
    # 256) is whole groups of 128.
    # Norm weights in F32: bf16 norm weights (8 significant bits) over an embedding row that is one
    # group (t * d, d cancels in the block scale) put layer 0's q_proj codes exactly on rounding
    # ties (x * s = n + 1/2) for every token, which the first draft of this fixture showed (tie
    # robustness 0, code flips in engine_ref).
    seed=3128, family="qwen3", storage="group_bf16", scale_style="group", group=128, norm_dtype="float32",
    config={
        "architectures": ["Qwen3ForCausalLM"], "model_type": "qwen3",
        "vocab_size": 300, "hidden_size": 128, "intermediate_size": 256,
        "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2,
        "head_dim": 32, "hidden_act": "silu", "max_position_embeddings": 128,
        "rms_norm_eps": 1e-6, "rope_theta": 1000000.0, "rope_scaling": None,
        "tie_word_embeddings": False, "attention_bias": False, "attention_dropout": 0.0,
        "use_sliding_window": False, "sliding_window": None, "max_window_layers": 2,
        "bos_token_id": BOS, "eos_token_id": EOS, "initializer_range": 0.02, "use_cache": True,
        "torch_dtype": "bfloat16", "quantization_config": {"group_size": 128},
    })

LINEARS = ["self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj",
           "mlp.gate_proj", "mlp.up_proj", "mlp.down_proj"]


def linear_shapes(cfg):
    hid, inter, H = cfg["hidden_size"], cfg["intermediate_size"], cfg["num_attention_heads"]
    Hkv, D = cfg["num_key_value_heads"], cfg.get("head_dim") or hid // H
    return {"self_attn.q_proj": (H * D, hid), "self_attn.k_proj": (Hkv * D, hid),
            "self_attn.v_proj": (Hkv * D, hid), "self_attn.o_proj": (hid, H * D),
            "mlp.gate_proj": (inter, hid), "mlp.up_proj": (inter, hid), "mlp.down_proj": (hid, inter)}


def group_ternary_f16(rng, n_out, n_in, group, d_range):
    """A group-ternary matrix by construction: t in {-1, 0, +1}, d per (row, group) drawn in d_range
    and rounded to fp16; w = t * d is then exact in fp16. Returns (w fp16, t int8, d fp32)."""
    t = rng.choice(np.array([-1, 0, 1], dtype=np.int8), size=(n_out, n_in),
                   p=[(1 - GT_P_ZERO) / 2, GT_P_ZERO, (1 - GT_P_ZERO) / 2])
    d = rng.uniform(*d_range, (n_out, -(-n_in // group))).astype(np.float16).astype(F32)
    dd = np.repeat(d, group, axis=1)[:, :n_in]
    w = (t.astype(F32) * dd).astype(np.float16)
    assert np.array_equal(w.astype(F32), t.astype(F32) * dd), "t * d not exact in fp16"
    return w, t, d


def group_ternary_bf16(rng, n_out, n_in, group, d_range):
    """group_ternary_f16 in bf16: d rounded to bf16 (8 significant bits, so exact in fp16 too in
    this range); w = t * d is then exact in bf16."""
    t = rng.choice(np.array([-1, 0, 1], dtype=np.int8), size=(n_out, n_in),
                   p=[(1 - GT_P_ZERO) / 2, GT_P_ZERO, (1 - GT_P_ZERO) / 2])
    d = torch.from_numpy(rng.uniform(*d_range, (n_out, -(-n_in // group))).astype(F32)).to(torch.bfloat16)
    d = d.float().numpy()
    assert np.array_equal(d.astype(np.float16).astype(F32), d), "d not exact in fp16"
    dd = np.repeat(d, group, axis=1)[:, :n_in]
    w = torch.from_numpy(t.astype(F32) * dd).to(torch.bfloat16)
    assert np.array_equal(w.float().numpy(), t.astype(F32) * dd), "t * d not exact in bf16"
    return w, t, d


def group_ternary(storage, rng, n_out, n_in, group, d_range):
    """(w torch tensor in the storage dtype, t, d)."""
    if storage == "group_bf16":
        return group_ternary_bf16(rng, n_out, n_in, group, d_range)
    w, t, d = group_ternary_f16(rng, n_out, n_in, group, d_range)
    return torch.from_numpy(w), t, d


def bf16(a):
    return torch.from_numpy(np.ascontiguousarray(a, dtype=F32)).to(torch.bfloat16)


def latent_without_near_ties(rng, shape, std, rel=1e-4):
    """fp16 latent weights whose |W|/alpha keeps a relative distance >= rel from the rounding
    boundary 0.5, so that W/alpha (trit) and W*(1/alpha) (transformers), or a mean summed in a
    different order, cannot ternarize any element differently."""
    w = (rng.standard_normal(shape) * std).astype(np.float16)
    for _ in range(100):
        alpha = engine_ref.absmean(w.astype(F32))
        r = np.abs(w.astype(np.float64)) / float(alpha)
        bad = np.abs(r - 0.5) < rel * 0.5
        if not bad.any():
            return w, alpha
        push = np.where(r[bad] >= 0.5, 1.004, 0.996)
        w[bad] = (w[bad].astype(np.float64) * push).astype(np.float16)
    raise RuntimeError("could not remove near-ties")


def build_weights(spec, bos_draw=0):
    cfg = spec["config"]
    rng = np.random.default_rng(spec["seed"])
    hid, V = cfg["hidden_size"], cfg["vocab_size"]
    fdt = torch.float16 if spec["storage"] in ("latent_f16", "group_f16") else torch.bfloat16
    T = {}
    info = {}

    ndt = getattr(torch, spec.get("norm_dtype", "")) if spec.get("norm_dtype") else fdt

    def vec(n):  # RMSNorm weights: random around 1 so the multiply is exercised
        return torch.from_numpy(rng.uniform(0.6, 1.4, n).astype(F32)).to(ndt)

    if spec["storage"].startswith("group"):
        emb, _, _ = group_ternary(spec["storage"], rng, V, hid, spec["group"], GT_EMB_D)
        if bos_draw:
            row, _, _ = group_ternary(spec["storage"], np.random.default_rng([spec["seed"], bos_draw]), 1, hid,
                                      spec["group"], GT_EMB_D)
            emb[BOS] = row[0]
        T["model.embed_tokens.weight"] = emb
    else:
        emb = rng.standard_normal((V, hid)) * EMB_STD
        if bos_draw:   # redraw the BOS row only (see bos_robust_weights)
            emb[BOS] = np.random.default_rng([spec["seed"], bos_draw]).standard_normal(hid) * EMB_STD
        T["model.embed_tokens.weight"] = torch.from_numpy(emb.astype(F32)).to(fdt)
    for i in range(cfg["num_hidden_layers"]):
        p = f"model.layers.{i}."
        T[p + "input_layernorm.weight"] = vec(hid)
        T[p + "post_attention_layernorm.weight"] = vec(hid)
        if spec["family"] == "bitnet":
            T[p + "self_attn.attn_sub_norm.weight"] = vec(hid)
            T[p + "mlp.ffn_sub_norm.weight"] = vec(cfg["intermediate_size"])
        if spec["family"] == "qwen3":
            T[p + "self_attn.q_norm.weight"] = vec(cfg["head_dim"])
            T[p + "self_attn.k_norm.weight"] = vec(cfg["head_dim"])
        for name, (n_out, n_in) in linear_shapes(cfg).items():
            key = p + name
            if spec["storage"].startswith("group"):
                w, t, d = group_ternary(spec["storage"], rng, n_out, n_in, spec["group"], GT_D)
                T[key + ".weight"] = w
                info[key] = {"t": t, "d": d}
                continue
            if spec["storage"] == "latent_f16":
                w, alpha = latent_without_near_ties(rng, (n_out, n_in), W_STD)
                T[key + ".weight"] = torch.from_numpy(w)
                info[key] = {"alpha": float(alpha)}
                continue
            assert n_out % 4 == 0
            w = (rng.standard_normal((n_out, n_in)) * W_STD).astype(F32)
            t, alpha = engine_ref.ternarize(w)
            tt = torch.from_numpy(t.astype(np.int64))
            packed = pack_weights(tt.clone())          # pack_weights adds 1 in place: pass a copy
            assert packed.dtype == torch.uint8 and tuple(packed.shape) == (n_out // 4, n_in)
            back = unpack_weights(packed, dtype=torch.float32)
            assert torch.equal(back, tt.float()), key + ": pack/unpack round trip"
            assert np.array_equal(engine_ref.unpack_hf(packed.numpy(), n_out), t), key + ": engine_ref unpack"
            if spec["scale_style"] == "mul":           # AutoBitLinear offline: ws = absmean
                ws = bf16([alpha])
            else:                                      # BitLinear: ws = 1/absmean (Falcon packer, bf16)
                ws = bf16([1.0 / float(alpha)])
            T[key + ".weight"] = packed
            T[key + ".weight_scale"] = ws
            info[key] = {"alpha": float(alpha), "weight_scale": float(ws.float()[0])}
    T["model.norm.weight"] = vec(hid)
    if not cfg["tie_word_embeddings"] and spec["storage"].startswith("group"):
        # drawn after every other tensor, so the tied fixtures' draws are unchanged
        T["lm_head.weight"], _, _ = group_ternary(spec["storage"], rng, V, hid, spec["group"], GT_EMB_D)
    elif not cfg["tie_word_embeddings"]:
        T["lm_head.weight"] = torch.from_numpy((rng.standard_normal((V, hid)) * EMB_STD).astype(F32)).to(fdt)
    return T, info


def write_folder(folder, spec, tensors):
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, "config.json"), "w") as f:
        json.dump(spec["config"], f, indent=2)
        f.write("\n")
    safetensors.torch.save_file(tensors, os.path.join(folder, "model.safetensors"), metadata={"format": "pt"})


def load_hf(folder):
    with open(os.path.join(folder, "config.json")) as f:
        qc = json.load(f).get("quantization_config") or {}
    kw = {}
    if qc and "quant_method" not in qc:
        # a group-scaled qwen3 folder's {"group_size": G} is for trit; transformers refuses a
        # quantization_config without quant_method, and reads nothing else from it
        cfg = transformers.AutoConfig.from_pretrained(folder)
        del cfg.quantization_config
        kw["config"] = cfg
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32, attn_implementation="eager",
                                                 device_map=None, **kw)
    model.eval()
    # transformers quirk (v5, pre-quantized AutoBitLinear offline): the BitNetDeserialize converter
    # matches every "*.weight" key, so float tensors that are not quantized (embeddings, norms) keep
    # the checkpoint dtype (bf16) instead of the requested fp32. Upcast them: bf16 -> fp32 is exact.
    kept = sorted({str(p.dtype) for p in model.parameters() if p.is_floating_point() and p.dtype != torch.float32})
    if kept:
        QUIRKS.add(f"from_pretrained(dtype=float32) left {kept} float tensors (model.float() is refused for "
                   "quantized models): upcast parameter by parameter")
        with torch.no_grad():
            for t in list(model.parameters()) + list(model.buffers()):
                if t.is_floating_point() and t.dtype != torch.float32:
                    t.data = t.data.float()
    for n, t in list(model.named_parameters()) + list(model.named_buffers()):
        assert not t.is_floating_point() or t.dtype == torch.float32, (n, t.dtype)
    for mod in model.modules():
        if isinstance(mod, BitLinear):
            assert mod.dtype == torch.float32, mod.dtype   # BitLinear unpacks and runs F.linear in self.dtype
    if model.config.model_type == "qwen3":
        install_act8(model)
    return model


# ---- qwen3: the activation quantization trit applies, as a hook on transformers' own linears ------
#
# transformers runs a Qwen3 model with float activations (Ternary-Bonsai was trained that way). trit
# quantizes every ternary matmul input per block of 64 (quant.h). The "act8" reference adds exactly
# that to transformers' own model: a forward pre-hook on each of the 7 projections of every layer
# replaces the input x by q / s_j, q = clamp(rint(x * s_j), -128, 127), s_j = 127 / max(max|x_block|,
# 1e-5) (IEEE divide), per block of 64 values. The linear then runs in fp32 on exact t * d weights:
# fake quantization, as transformers' own AutoBitLinear does for the BitNet fixtures. model._act8
# switches it (True: the act8 reference; False: transformers' float model, unmodified).

def block_codes(x, block=engine_ref.ACT_BLOCK):
    """torch fp32 [..., K] -> (q int32 [..., K], s fp32 [..., ceil(K / block)])."""
    K = x.shape[-1]
    assert K % block == 0, K
    xb = x.float().reshape(*x.shape[:-1], K // block, block)
    amax = xb.abs().amax(dim=-1, keepdim=True).clamp(min=1e-5)
    s = torch.full_like(amax, 127.0) / amax                 # IEEE divide, as the contract
    q = torch.round(xb * s).clamp(-128, 127)               # torch.round: half to even
    return q.reshape(x.shape).to(torch.int32), s[..., 0]


def act8_fake_quant(x, block=engine_ref.ACT_BLOCK):
    K = x.shape[-1]
    q, s = block_codes(x, block)
    return (q.float().reshape(*x.shape[:-1], K // block, block) / s[..., None]).reshape(x.shape)


def install_act8(model):
    model._act8 = True

    def pre(mod, args):
        mod._raw_in = args[0].detach()
        if model._act8:
            return (act8_fake_quant(args[0]),) + tuple(args[1:])
        return None
    n = 0
    for layer in model.model.layers:
        for name in LINEARS:
            layer.get_submodule(name).register_forward_pre_hook(pre)
            n += 1
    assert n == 7 * len(model.model.layers)


def check_loaded(model, spec, tensors):
    """The model transformers built is the one we meant: classes, dtypes, weights, tying."""
    cfg = spec["config"]
    if spec["family"] == "qwen3":
        return check_loaded_qwen3(model, spec, tensors)
    qc = cfg["quantization_config"]
    want = BitLinear if qc.get("linear_class", "bitlinear") == "bitlinear" else AutoBitLinear
    n = 0
    for i, layer in enumerate(model.model.layers):
        for name in LINEARS:
            mod = layer.get_submodule(name)
            assert type(mod) is want, (name, type(mod))
            key = f"model.layers.{i}.{name}"
            if want is BitLinear:
                assert torch.equal(mod.weight, tensors[key + ".weight"])
                assert mod.weight_scale.float().item() == tensors[key + ".weight_scale"].float().item()
            elif qc["quantization_mode"] == "offline":
                assert not mod.online_quant
                ref = unpack_weights(tensors[key + ".weight"], dtype=torch.float32)
                assert torch.equal(mod.weight, ref)
                assert mod.weight_scale.float().item() == tensors[key + ".weight_scale"].float().item()
            else:
                assert mod.online_quant
                assert torch.equal(mod.weight, tensors[key + ".weight"].float())
            n += 1
    assert type(model.lm_head) is torch.nn.Linear
    emb = model.model.embed_tokens.weight
    assert emb.dtype == torch.float32
    if cfg["tie_word_embeddings"]:
        assert model.lm_head.weight.data_ptr() == emb.data_ptr(), "lm_head not tied"
    else:
        assert torch.equal(model.lm_head.weight, tensors["lm_head.weight"].float())
    assert model.config._attn_implementation == "eager"
    theta = model.config.rope_parameters["rope_theta"]
    assert theta == cfg["rope_theta"], theta
    return n


def check_loaded_qwen3(model, spec, tensors):
    cfg = spec["config"]
    assert type(model).__name__ == "Qwen3ForCausalLM", type(model)
    n = 0
    for i, layer in enumerate(model.model.layers):
        p = f"model.layers.{i}."
        for name in LINEARS:
            mod = layer.get_submodule(name)
            assert type(mod) is torch.nn.Linear and mod.bias is None, (name, type(mod))
            assert torch.equal(mod.weight, tensors[p + name + ".weight"].float()), name
            n += 1
        for nm in ("q_norm", "k_norm"):
            w = layer.self_attn.get_submodule(nm).weight
            assert torch.equal(w, tensors[p + "self_attn." + nm + ".weight"].float()), nm
            assert w.shape == (cfg["head_dim"],)
    assert type(model.lm_head) is torch.nn.Linear
    emb = model.model.embed_tokens.weight
    assert emb.dtype == torch.float32
    assert torch.equal(emb, tensors["model.embed_tokens.weight"].float())
    if cfg["tie_word_embeddings"]:
        assert model.lm_head.weight.data_ptr() == emb.data_ptr(), "lm_head not tied"
    else:
        assert model.lm_head.weight.data_ptr() != emb.data_ptr(), "lm_head tied"
        assert torch.equal(model.lm_head.weight, tensors["lm_head.weight"].float())
    assert model.config._attn_implementation == "eager"
    assert model.config.rope_parameters["rope_theta"] == cfg["rope_theta"]
    assert model.config.rope_parameters.get("rope_type", "default") == "default"
    assert not getattr(model.config, "use_sliding_window", False)
    return n


def hf_codes(mod, x, block=0):
    if block:
        q, s = block_codes(x, block)
        return q, s
    """The int8 activation codes and scale transformers uses inside this linear."""
    if isinstance(mod, BitLinear):
        q, s = mod.activation_quant(x)
        return q.to(torch.int32), s.reshape(-1)
    xf = x.float()                                   # AutoBitLinear's ActQuant, before dividing back
    s = 127 / xf.abs().max(dim=-1, keepdim=True).values.clamp_(min=1e-5)
    return (xf * s).round().clamp(-128, 127).to(torch.int32), s.reshape(-1)


def hf_forward(model, ids, capture=False):
    """Teacher-forced transformers forward. With capture: caps maps 'l{i}.{q,o,gate,down}_proj' to
    (module, input [T, K], output [T, N]) and caps['hidden'] is the residual stream [L+1, T, hidden]
    (input of every decoder layer, then the last layer's output, before the final norm)."""
    caps, hooks = {}, []
    if capture:
        hid = {}
        for i, layer in enumerate(model.model.layers):
            def pre(mod, args, kwargs, i=i):
                hid[i] = (args[0] if args else kwargs["hidden_states"]).detach()[0].clone()
            hooks.append(layer.register_forward_pre_hook(pre, with_kwargs=True))
        last = len(model.model.layers)

        def post(mod, args, out):
            hid[last] = (out[0] if isinstance(out, tuple) else out).detach()[0].clone()
        hooks.append(model.model.layers[-1].register_forward_hook(post))
        for i, layer in enumerate(model.model.layers):
            for name in ("self_attn.q_proj", "self_attn.o_proj", "mlp.gate_proj", "mlp.down_proj"):
                def hook(mod, inp, out, key=f"l{i}.{name.split('.')[1]}"):
                    x_in = getattr(mod, "_raw_in", inp[0])    # before the act8 pre-hook (qwen3)
                    caps[key] = (mod, x_in.detach()[0].clone(), out.detach()[0].clone())
                hooks.append(layer.get_submodule(name).register_forward_hook(hook))
    with torch.no_grad():
        out = model(input_ids=torch.tensor([ids]), use_cache=False)
    for h in hooks:
        h.remove()
    if capture:
        caps["hidden"] = np.stack([hid[i].numpy() for i in range(len(hid))]).astype(F32)
    return out.logits[0].float().numpy(), caps


def hf_greedy(model, prompt):
    gc = transformers.GenerationConfig(do_sample=False, num_beams=1, max_new_tokens=N_NEW, min_new_tokens=0,
                                       eos_token_id=None, pad_token_id=0, bos_token_id=BOS)
    model.generation_config.eos_token_id = None      # run all N_NEW steps, EOS (id 2) included
    with torch.no_grad():
        g = model.generate(torch.tensor([prompt]), generation_config=gc, output_logits=True,
                           return_dict_in_generate=True, use_cache=True)
    new = g.sequences[0, len(prompt):].tolist()
    raw = torch.stack([l[0] for l in g.logits]).float().numpy()   # raw logits per step
    assert len(new) == N_NEW, len(new)
    assert raw.argmax(-1).tolist() == new, "generate() is not greedy over its raw logits"
    return new, raw


def random_ids(rng, V, n):
    return [BOS] + rng.integers(3, V, n - 1).tolist()


def rnd(x, n=6):
    return [round(float(v), n) for v in x]


def tie_robustness(xs, skip_pos0=False, block=0):
    """rho = min over the activation codes of the given linear inputs (fp32 [T, K] arrays) of
    dist(x*s, nearest rounding boundary n + 1/2) / |x*s|: a relative change of the inputs smaller
    than rho cannot change any int8 code, so any engine that close to transformers has the same codes."""
    rho = np.inf
    for x in xs:
        x = np.abs(np.asarray(x, dtype=F32))
        _, sc = engine_ref.quantize_act_blocks(x, block)
        v = (x * np.repeat(sc, block or x.shape[1], axis=1)[:, :x.shape[1]]).astype(np.float64)
        if skip_pos0:
            v = v[1:]
        dist = np.abs(v - (np.floor(v) + 0.5))
        ok = v > 0
        if ok.any():
            rho = min(rho, float((dist[ok] / v[ok]).min()))
    return rho


def cap_inputs(caps):
    return [v[1].numpy() for k, v in caps.items() if k != "hidden"]


def compare_codes(eng_trace, caps, block=0):
    """Activation-code flips between the engine's own path and transformers' (at every linear
    input the hooks saw): count, total, max |dq|."""
    flips, total, maxd = 0, 0, 0
    for key, (mod, x, _) in ((k, v) for k, v in caps.items() if k != "hidden"):
        if key not in eng_trace:
            continue
        qe, _ = engine_ref.quantize_act_blocks(eng_trace[key], block)
        qh, _ = hf_codes(mod, x, block)
        d = np.abs(qe.astype(np.int32) - qh.numpy())
        flips += int((d > 0).sum())
        total += d.size
        maxd = max(maxd, int(d.max()))
    return flips, total, maxd


_KEYS = {"q": "q_proj", "o": "o_proj", "gate": "gate_proj", "down": "down_proj"}


def engine_forward_traced(em, ids, noise=0.0, rng=None, fn=None):
    """engine_ref forward that also records the input of q/o/gate/down in every layer. With noise > 0
    every linear input is multiplied by (1 + noise * N(0, 1)) elementwise first: a stand-in for a
    valid engine whose fp32 rounding differs from transformers' by about that relative amount."""
    tr = {}

    class Rec:
        def __init__(self, inner, key):
            self.inner, self.key = inner, key

        def __call__(self, x):
            if noise:
                x = (x * (1 + noise * rng.standard_normal(x.shape))).astype(x.dtype)
            tr[self.key] = x
            return self.inner(x)

    orig = {}
    for i, L in enumerate(em.layers):
        for name in ("q", "k", "v", "o", "gate", "up", "down"):
            orig[(i, name)] = L[name]
        # q/k/v (and gate/up) share one input: record it once, perturb it once
        L["q"] = Rec(L["q"], f"l{i}.q_proj")
        for name in ("o", "gate", "down"):
            L[name] = Rec(L[name], f"l{i}.{_KEYS[name]}")
        if noise:
            for name, src in (("k", "q_proj"), ("v", "q_proj"), ("up", "gate_proj")):
                inner, key = orig[(i, name)], f"l{i}.{src}"
                L[name] = lambda x, inner=inner, key=key: inner(tr[key])
    try:
        lg = em.forward(ids) if fn is None else fn()
    finally:
        for (i, name), lin in orig.items():
            em.layers[i][name] = lin
    return lg, tr


def layer_check(em, caps, noise=0.0, rng=None):
    """Each decoder layer of the engine fed transformers' own input; returns (max over layers of
    max|dh| / max|h_ref|, code flips inside the layers, head max|dlogit| on transformers' last hidden)."""
    H = caps["hidden"]
    T = H.shape[1]
    cos, sin = engine_ref.rope_tables(T, em.D, em.theta, em.dt)
    worst, flips = 0.0, 0
    for li in range(len(em.layers)):
        out, tr = engine_forward_traced(em, None, noise, rng,
                                        fn=lambda li=li: em.layer(li, H[li].astype(em.dt), cos, sin))
        tr = {k: v for k, v in tr.items() if k.startswith(f"l{li}.")}
        f, _, _ = compare_codes(tr, caps, em.act_block)
        flips += f
        worst = max(worst, float(np.abs(out - H[li + 1]).max() / np.abs(H[li + 1]).max()))
    return worst, flips


def bos_robust_weights(spec, folder):
    """Every sequence starts with BOS, and every later position attends to it, so a code flip at
    position 0 reaches every fixture. Redraw the BOS embedding row until no activation code at
    position 0 is within RHO_POS0 (relative) of a rounding boundary. (In the Llama graph with no
    sub-norm, o_proj's input at position 0 is exactly v = acc / (s*ws), and x*s can land exactly
    on n + 1/2; such exact ties are decided by the last ulp of s.)"""
    for draw in range(500):
        tensors, info = build_weights(spec, draw)
        write_folder(folder, spec, tensors)
        em = engine_ref.Model(folder)
        _, tr = engine_forward_traced(em, [BOS])
        rho0 = tie_robustness(tr.values(), block=em.act_block)
        if rho0 >= RHO_POS0:
            return tensors, info, draw, rho0
    raise RuntimeError("no robust BOS row found")


def select_ids(model, V, seed, n_cand, block=0):
    """Among n_cand random id sequences, the one whose teacher-forced forward and greedy sequence
    (first N_PROMPT ids + N_NEW generated) sit farthest from any activation-code rounding boundary,
    preferring, in this order: transformers' cached decode agreeing with its full forward, >= 4 distinct
    greedy tokens, rho >= 1e-6, >= 3 leading greedy steps with margin > 3, more decisive positions."""
    rng = np.random.default_rng(seed)
    best = None
    for _ in range(n_cand):
        ids = random_ids(rng, V, N_IDS)
        lt, c = hf_forward(model, ids, capture=True)
        rho_tf = tie_robustness(cap_inputs(c), block=block)
        gen, raw = hf_greedy(model, ids[:N_PROMPT])
        full, cg = hf_forward(model, ids[:N_PROMPT] + gen, capture=True)
        rho = min(rho_tf, tie_robustness(cap_inputs(cg), block=block))
        m = engine_ref.top2_margin(raw)
        lead = int(np.argmin(np.append(m > 3.0, False)))       # leading steps with margin > 3
        # transformers' own cached decode and full forward must agree to fp32 noise (no code flip)
        same = float(np.abs(full[N_PROMPT - 1:-1] - raw).max()) < 1e-4
        n_dec = int((engine_ref.top2_margin(lt) > 3.0).sum())     # decisive teacher-forced positions
        key = (same, len(set(gen)) >= 4, rho >= 1e-6, min(lead, 3), n_dec, rho)
        if best is None or key > best[0]:
            best = (key, ids)
    return best[1]


def make_one(name, spec, out_root, n_sweep, n_cand):
    folder = os.path.join(out_root, name)
    cfg = spec["config"]
    V = cfg["vocab_size"]
    tensors, winfo, bos_draw, rho0 = bos_robust_weights(spec, folder)
    model = load_hf(folder)
    n_lin = check_loaded(model, spec, tensors)
    em = engine_ref.Model(folder)
    em64 = engine_ref.Model(folder, dtype=np.float64)
    B = em.act_block                      # 64 for the group-scaled (qwen3) model, else 0 (per token)
    KEYS7 = ("q", "k", "v", "o", "gate", "up", "down")

    if spec["storage"].startswith("group"):  # engine_ref recovers exactly the t and d that were built
        for i in range(cfg["num_hidden_layers"]):
            for lname, key in zip(LINEARS, KEYS7):
                lin, k = em.layers[i][key], f"model.layers.{i}.{lname}"
                assert em.groups[k] == spec["group"], (k, em.groups[k])
                assert np.array_equal(lin.t, winfo[k]["t"]) and np.array_equal(lin.d, winfo[k]["d"]), k
        em_float = engine_ref.Model(folder, float_acts=True)

    if spec["storage"] == "latent_f16":   # the engine's ternarization equals transformers' WeightQuant
        for i, layer in enumerate(model.model.layers):
            for lname, key in zip(LINEARS, ("q", "k", "v", "o", "gate", "up", "down")):
                w = layer.get_submodule(lname).weight.detach()
                sc = 1.0 / w.abs().mean().clamp_(min=1e-5)
                t_hf = (w * sc).round().clamp(-1, 1).to(torch.int8).numpy()
                assert np.array_equal(t_hf, em.layers[i][key].t), f"layer {i} {lname}: ternary codes differ"

    ids = select_ids(model, V, spec["seed"] + 1, n_cand, B)
    logits, caps = hf_forward(model, ids, capture=True)
    assert np.isfinite(logits).all()
    margins = engine_ref.top2_margin(logits)

    # greedy generation and the per-step margins of its raw logits
    prompt = ids[:N_PROMPT]
    gen, raw = hf_greedy(model, prompt)
    gen_margins = engine_ref.top2_margin(raw)
    # consistency: the cached decode agrees with a teacher-forced forward of prompt + generated ids
    full, gcaps = hf_forward(model, prompt + gen, capture=True)
    cache_vs_full = float(np.abs(full[N_PROMPT - 1:-1] - raw).max())
    rho_tf, rho_greedy = tie_robustness(cap_inputs(caps), block=B), tie_robustness(cap_inputs(gcaps), block=B)

    # layer-0 q_proj: numpy codes and accumulators from transformers' own input
    mod, x_hf, y_hf = caps["l0.q_proj"]
    x = x_hf.numpy().astype(F32)
    l0 = em.layers[0]["q"]
    if B:
        # group rule: acc holds the per-block sums isum [T, N, n_blocks], s the block scales [T, n_blocks]
        q, s, acc = l0.codes(x)
        y_np = l0(x)
        qh, sh = hf_codes(mod, x_hf, B)
        codes_equal = bool(np.array_equal(q.astype(np.int32), qh.numpy()))
        sh32 = sh.numpy().astype(F32)
        s_equal = int((s != sh32).sum())          # both IEEE 127 / amax: equal
        s_ulps = int(np.abs(s.view(np.int32).astype(np.int64) - sh32.view(np.int32)).max())
        assert codes_equal and s_equal == 0
        y_ref = y_hf.numpy()
        q_diff = float(np.abs(y_np - y_ref).max())
        q_diff_hs = q_diff
        q_rel = q_diff / float(np.abs(y_ref).max())
        t_built = torch.from_numpy(winfo["model.layers.0.self_attn.q_proj"]["t"].astype(np.float64))
        acc_hf = torch.stack([torch.nn.functional.linear(qh[:, c:c + B].double(), t_built[:, c:c + B])
                              for c in range(0, x.shape[1], B)], dim=-1)
        assert np.array_equal(acc_hf.numpy().astype(np.int64), acc.astype(np.int64)), "int32 block sums"
    else:
        mod, x_hf, y_hf = caps["l0.q_proj"]
        x = x_hf.numpy().astype(F32)
        l0 = em.layers[0]["q"]
        q, s, acc = l0.codes(x)
        y_np = l0(x)
        qh, sh = hf_codes(mod, x_hf)
        codes_equal = bool(np.array_equal(q.astype(np.int32), qh.numpy()))
        # transformers computes s as `127 / tensor`, which torch evaluates as reciprocal(tensor) * 127
        # (Tensor.__rtruediv__), not as an IEEE divide: s may differ from the contract's by 1 ulp.
        sh32 = sh.numpy().astype(F32)
        assert np.array_equal(sh32, (F32(127) * (F32(1) / np.maximum(np.abs(x).max(-1), F32(1e-5)))).astype(F32))
        s_equal = int((s != sh32).sum())
        s_ulps = int(np.abs(s.view(np.int32).astype(np.int64) - sh32.view(np.int32)).max())
        assert codes_equal
        y_ref = y_hf.numpy()
        q_diff = float(np.abs(y_np - y_ref).max())
        a32 = acc.astype(F32)
        y_hs = (a32 / sh32[:, None]) * l0.scale if l0.kind == "mul" else a32 / (sh32[:, None] * l0.scale)
        q_diff_hs = float(np.abs(y_hs - y_ref).max())
        q_rel = q_diff / float(np.abs(y_ref).max())
        if isinstance(mod, BitLinear):
            t_hf = unpack_weights(mod.weight, dtype=torch.float64)
        elif mod.online_quant:            # WeightQuant's codes: round(W * (1 / mean|W|))
            w = mod.weight.detach()
            t_hf = (w * (1.0 / w.abs().mean().clamp(min=1e-5))).round().clamp(-1, 1).double()
        else:
            t_hf = mod.weight.detach().double()
        acc_hf = torch.nn.functional.linear(qh.double(), t_hf)
        assert np.array_equal(acc_hf.numpy().astype(np.int64), acc.astype(np.int64)), "int32 accumulators"

    # engine_ref (fp32 and fp64 variants) vs transformers on the fixture sequences
    res = {}
    for v, e in (("f32", em), ("f64", em64)):
        le, tr = engine_forward_traced(e, ids)
        lg_, trg = engine_forward_traced(e, prompt + gen)
        f1, n1, _ = compare_codes(tr, caps, B)
        f2, n2, _ = compare_codes(trg, gcaps, B)
        lw, lf = layer_check(e, caps)
        res[v] = {"layer_rel": lw, "layer_flips": lf,
                  "head_max_abs": float(np.abs(e.head_logits(caps["hidden"][-1].astype(e.dt)) - logits).max()),
                  "max_abs": float(np.abs(le - logits).max()), "mean_abs": float(np.abs(le - logits).mean()),
                  "greedy_seq_max_abs": float(np.abs(lg_ - full).max()),
                  "top1_agree": int((le.argmax(-1) == logits.argmax(-1)).sum()), "flips": f1 + f2,
                  "codes": n1 + n2, "top1": le.argmax(-1)}
    eng_gen = em.greedy(prompt, N_NEW)

    # qwen3: transformers' float model (no activation quantization), which trit approximates
    flt = None
    if B:
        model._act8 = False
        flog, _ = hf_forward(model, ids)
        ffull, _ = hf_forward(model, prompt + gen)
        model._act8 = True
        flt = {"logits": flog, "margins": engine_ref.top2_margin(flog),
               "act8_vs_float_max_abs": float(np.abs(logits - flog).max()),
               # engine_ref's graph with float linears against transformers' float model: every
               # difference but the activation quantization
               "engine_ref_float_acts_max_abs": float(np.abs(em_float.forward(ids) - flog).max()),
               "engine_ref": {}}
        assert flt["engine_ref_float_acts_max_abs"] < 1e-3, flt["engine_ref_float_acts_max_abs"]
        for v, e in (("f32", em), ("f64", em64)):
            le, lg_ = e.forward(ids), e.forward(prompt + gen)
            flt["engine_ref"][v] = {"max_abs": float(np.abs(le - flog).max()),
                                    "mean_abs": float(np.abs(le - flog).mean()),
                                    "greedy_seq_max_abs": float(np.abs(lg_ - ffull).max()),
                                    "top1_agree": int((le.argmax(-1) == flog.argmax(-1)).sum())}

    # noise-injected engine_ref on the fixture sequences
    nrng = np.random.default_rng(spec["seed"] + 3)
    noisy = {}
    for eps in NOISE_LEVELS:
        nf, nd, lw, lf = 0, 0.0, 0.0, 0
        for _ in range(N_NOISE_TRIALS):
            w_, f_ = layer_check(em, caps, eps, nrng)
            lw, lf = max(lw, w_), lf + (f_ > 0)
            for seq, c, ref in ((ids, caps, logits), (prompt + gen, gcaps, full)):
                le, tr = engine_forward_traced(em, seq, eps, nrng)
                f, _, _ = compare_codes(tr, c, B)
                nf += f > 0
                nd = max(nd, float(np.abs(le - ref).max()))
        noisy[eps] = {"runs": 2 * N_NOISE_TRIALS, "runs_with_flips": int(nf), "max_abs": nd,
                      "layer_runs": N_NOISE_TRIALS, "layer_runs_with_flips": int(lf), "layer_rel": lw}

    # sweep: random sequences, measured only
    variants = ["f32", "f64"] + [f"noise{e:g}" for e in NOISE_LEVELS]
    sweep = {"n_seq": n_sweep, "len": 32, "margins": [], "logit_absmax": 0.0, "rho": [],
             **{v: {"max_abs": 0.0, "runs_with_flips": 0, "max_abs_noflip": 0.0, "max_abs_flip": 0.0,
                    "top1_eq": [], "dmax_row": [], "layer_rel": 0.0, "layer_rel_noflip": 0.0,
                    "layer_runs_with_flips": 0, "head_max_abs": 0.0, "float_max_abs": 0.0, "float_top1_eq": []}
                for v in variants}, "float_margins": [], "act8_vs_float_max_abs": 0.0}
    srng = np.random.default_rng(spec["seed"] + 2)
    for _ in range(n_sweep):
        sids = random_ids(srng, V, 32)
        lr, c = hf_forward(model, sids, capture=True)
        sweep["margins"] += engine_ref.top2_margin(lr).tolist()
        sweep["logit_absmax"] = max(sweep["logit_absmax"], float(np.abs(lr).max()))
        sweep["rho"].append(tie_robustness(cap_inputs(c), skip_pos0=True, block=B))
        if B:
            model._act8 = False
            lfl, _ = hf_forward(model, sids)
            model._act8 = True
            sweep["float_margins"] += engine_ref.top2_margin(lfl).tolist()
            sweep["act8_vs_float_max_abs"] = max(sweep["act8_vs_float_max_abs"], float(np.abs(lr - lfl).max()))
        for v in variants:
            e = em64 if v == "f64" else em
            eps = float(v[5:]) if v.startswith("noise") else 0.0
            le, tr = engine_forward_traced(e, sids, eps, nrng)
            lw, lf = layer_check(e, c, eps, nrng)
            f, _, _ = compare_codes(tr, c, B)
            dd = np.abs(le - lr)
            S = sweep[v]
            S["max_abs"] = max(S["max_abs"], float(dd.max()))
            S["runs_with_flips"] += f > 0
            k = "max_abs_flip" if f else "max_abs_noflip"
            S[k] = max(S[k], float(dd.max()))
            S["top1_eq"] += (le.argmax(-1) == lr.argmax(-1)).tolist()
            S["layer_rel"] = max(S["layer_rel"], lw)
            S["layer_runs_with_flips"] += lf > 0
            if not lf:
                S["layer_rel_noflip"] = max(S["layer_rel_noflip"], lw)
            S["head_max_abs"] = max(S["head_max_abs"], float(np.abs(
                e.head_logits(c["hidden"][-1].astype(e.dt)) - lr).max()))
            S["dmax_row"] += dd.max(-1).tolist()
            if B:
                S["float_max_abs"] = max(S["float_max_abs"], float(np.abs(le - lfl).max()))
                S["float_top1_eq"] += (le.argmax(-1) == lfl.argmax(-1)).tolist()

    return dict(name=name, folder=folder, ids=ids, logits=logits, hidden=caps["hidden"], margins=margins, prompt=prompt, gen=gen,
                gen_margins=gen_margins, raw=raw, cache_vs_full=cache_vs_full, x=x, s=s, q=q, acc=acc,
                y_ref=y_ref, y_np=y_np, q_diff_hs=q_diff_hs, codes_equal=codes_equal, s_equal=s_equal, s_ulps=s_ulps, q_diff=q_diff, q_rel=q_rel,
                l0=l0, res=res, noisy=noisy, eng_gen=eng_gen, sweep=sweep, variants=variants, n_lin=n_lin,
                winfo=winfo, flt=flt, family=spec["family"], bos_draw=bos_draw, rho0=rho0, rho_tf=rho_tf, rho_greedy=rho_greedy)


def versions():
    return {"torch": torch.__version__, "transformers": transformers.__version__, "numpy": np.__version__,
            "safetensors": safetensors.__version__, "python": sys.version.split()[0]}


def measured(r):
    """Worst differences between the engine_ref variants and transformers for one model. 'Realistic'
    variants: engine_ref fp32, fp64 and fp32 with 1e-7 input noise; 'noisy': 1e-6 input noise
    (~10x the typical fp32 disagreement, a deliberately pessimistic engine)."""
    sw = r["sweep"]
    real = [v for v in r["variants"] if not v.startswith("noise") or float(v[5:]) < 1e-6]
    extra = {}
    if r["flt"] is not None:     # qwen3: the int8-block engine against transformers' float model
        fe = r["flt"]["engine_ref"].values()
        extra["logit_float"] = max([sw[v]["float_max_abs"] for v in real]
                                   + [max(x["max_abs"], x["greedy_seq_max_abs"]) for x in fe])
    noisy = [v for v in r["variants"] if v not in real]
    fx = list(r["res"].values())
    nz_real = [x for e, x in r["noisy"].items() if e < 1e-6]
    nz_noisy = [x for e, x in r["noisy"].items() if e >= 1e-6]
    return {
        "logit": max([sw[v]["max_abs"] for v in real] + [x["max_abs"] for x in nz_real]
                     + [max(x["max_abs"], x["greedy_seq_max_abs"]) for x in fx]),
        "logit_noisy": max([sw[v]["max_abs"] for v in noisy] + [x["max_abs"] for x in nz_noisy]),
        "logit_same_codes": max([sw[v]["max_abs_noflip"] for v in r["variants"]]
                                + [max(x["max_abs"], x["greedy_seq_max_abs"]) for x in fx if x["flips"] == 0]),
        "layer_rel": max([sw[v]["layer_rel"] for v in real] + [x["layer_rel"] for x in nz_real]
                         + [x["layer_rel"] for x in fx]),
        "layer_rel_noisy": max([sw[v]["layer_rel"] for v in noisy] + [x["layer_rel"] for x in nz_noisy]),
        "layer_rel_same_codes": max([sw[v]["layer_rel_noflip"] for v in r["variants"]]
                                    + [x["layer_rel"] for x in fx if x["layer_flips"] == 0]),
        "head": max([sw[v]["head_max_abs"] for v in r["variants"]] + [x["head_max_abs"] for x in fx]),
        **extra,
    }


def write_refs(r, spec, tols):
    folder = r["folder"]
    T, V = r["logits"].shape
    ver = versions()
    sw = r["sweep"]
    with open(os.path.join(folder, "ids.json"), "w") as f:
        json.dump({"ids": r["ids"], "bos_token_id": BOS, "note": "token ids fed directly; no tokenizer files"}, f)
        f.write("\n")
    r["logits"].astype("<f4").tofile(os.path.join(folder, "logits.f32"))
    decisive = tols["decisive_margin"]
    dec = r["margins"] > decisive
    hdr = {
        "model": r["name"], "file": "logits.f32", "dtype": "float32", "byte_order": "little",
        "shape": [T, V], "layout": "row-major [n_tokens, n_vocab]: teacher-forced forward of ids.json, positions 0..n-1",
        "reference": "transformers fp32, eager attention, dynamo disabled, CPU, 1 thread", "versions": ver,
        "top1": r["logits"].argmax(-1).tolist(), "margins": rnd(r["margins"]),
        "tolerance": {**tols, "decisive_positions": np.flatnonzero(dec).tolist(),
                      "this_model_measured": measured(r)},
        "tie_robustness": {"bos_position": r["rho0"], "ids": r["rho_tf"], "greedy_sequence": r["rho_greedy"],
                           "random_sequences_median_excl_bos": float(np.median(sw["rho"])),
                           "meaning": "min over activation codes of |x*s - (n+1/2)| / |x*s|"},
        "engine_ref": {v: {k: x[k] for k in ("max_abs", "mean_abs", "greedy_seq_max_abs", "top1_agree", "flips",
                                              "codes", "layer_rel", "layer_flips", "head_max_abs")}
                       for v, x in r["res"].items()},
        "engine_ref_noisy": {f"{e:g}": x for e, x in r["noisy"].items()},
        "sweep": {"n_seq": sw["n_seq"], "len": sw["len"], "logit_absmax": sw["logit_absmax"],
                  **{v: {k: sw[v][k] for k in ("max_abs", "runs_with_flips", "max_abs_noflip", "max_abs_flip",
                                               "layer_rel", "layer_runs_with_flips", "layer_rel_noflip",
                                               "head_max_abs")}
                     for v in r["variants"]}},
    }
    flt = r["flt"]
    if flt is not None:
        flt["logits"].astype("<f4").tofile(os.path.join(folder, "float_logits.f32"))
        fdec = flt["margins"] > tols["float_decisive_margin"]
        fm = np.array(sw["float_margins"])
        hdr["float_reference"] = {
            "file": "float_logits.f32", "dtype": "float32", "byte_order": "little", "shape": [T, V],
            "meaning": "transformers' Qwen3ForCausalLM as is: float activations, the model its authors run. "
                       "logits.f32 (and greedy, hidden, q_proj_l0) is the same model with trit's activation "
                       "quantization (int8 per block of 64) hooked onto the inputs of its 7 projections (act8); "
                       "an engine following the contract is compared with logits.f32 tightly and with this "
                       "within TRIT_HF_FLOAT_LOGIT_TOL",
            "TRIT_HF_FLOAT_LOGIT_TOL": tols["TRIT_HF_FLOAT_LOGIT_TOL"],
            "float_decisive_margin": tols["float_decisive_margin"],
            "decisive_positions": np.flatnonzero(fdec).tolist(),
            "top1": flt["logits"].argmax(-1).tolist(), "margins": rnd(flt["margins"]),
            "act8_vs_float_max_abs": flt["act8_vs_float_max_abs"],
            "engine_ref_float_acts_max_abs": flt["engine_ref_float_acts_max_abs"],
            "engine_ref": flt["engine_ref"],
            "sweep": {"act8_vs_float_max_abs": sw["act8_vs_float_max_abs"],
                      **{v: {"max_abs": sw[v]["float_max_abs"],
                             "top1_agree_at_decisive": int(np.array(sw[v]["float_top1_eq"])[
                                 fm > tols["float_decisive_margin"]].sum()),
                             "decisive": int((fm > tols["float_decisive_margin"]).sum())}
                         for v in r["variants"]}},
        }
    with open(os.path.join(folder, "logits.json"), "w") as f:
        json.dump(hdr, f, indent=1)
        f.write("\n")
    greedy = {
        "model": r["name"], "prompt_ids": r["prompt"], "n_new": N_NEW, "generated_ids": r["gen"],
        "step_margins": rnd(r["gen_margins"]), "step_top1_logit": rnd(r["raw"].max(-1)),
        "decisive_margin": decisive,
        "first_non_decisive_step": int(np.argmin(np.append(r["gen_margins"] > decisive, False))),
        "note": "transformers generate(), greedy, KV cache, fp32; step i's margin is top1 - top2 of the raw "
                "logits that chose generated_ids[i]. Compare ids up to first_non_decisive_step; after a "
                "non-decisive step a correct engine may diverge.",
        "engine_ref_generated_ids": r["eng_gen"],
        "teacher_forced_margins": rnd(r["margins"]),
        "versions": ver,
    }
    r["raw"].astype("<f4").tofile(os.path.join(folder, "greedy_logits.f32"))
    greedy["step_logits"] = {"file": "greedy_logits.f32", "dtype": "float32", "byte_order": "little",
                             "shape": [N_NEW, V],
                             "layout": "row i = raw logits of decode step i (KV cache), i.e. the prediction after "
                                       "prompt_ids + generated_ids[:i]; teacher-force that sequence through the "
                                       "engine's decode path and compare every row with TRIT_HF_LOGIT_TOL"}
    with open(os.path.join(folder, "greedy.json"), "w") as f:
        json.dump(greedy, f, indent=1)
        f.write("\n")
    Hd = r["hidden"]
    Hd.astype("<f4").tofile(os.path.join(folder, "hidden.f32"))
    with open(os.path.join(folder, "hidden.json"), "w") as f:
        json.dump({"model": r["name"], "file": "hidden.f32", "dtype": "float32", "byte_order": "little",
                   "shape": list(Hd.shape),
                   "layout": "[n_layers + 1, n_tokens, hidden]: entry l is the residual stream entering decoder "
                             "layer l (entry 0 = embedding rows of ids.json); the last entry is the last layer's "
                             "output, before the final norm",
                   "TRIT_HF_LAYER_TOL_REL": tols["TRIT_HF_LAYER_TOL_REL"],
                   "TRIT_HF_LAYER_TOL_REL_SAME_CODES": tols["TRIT_HF_LAYER_TOL_REL_SAME_CODES"],
                   "TRIT_HF_HEAD_TOL": tols["TRIT_HF_HEAD_TOL"],
                   "checks": "layer l run on entry l must give entry l+1 within TOL_REL * max|entry l+1|; "
                             "final norm + lm_head on the last entry must give logits.f32 within TRIT_HF_HEAD_TOL",
                   "versions": ver}, f, indent=1)
        f.write("\n")
    l0 = r["l0"]
    base = os.path.join(folder, "q_proj_l0")
    r["x"].astype("<f4").tofile(base + ".x.f32")
    r["s"].astype("<f4").tofile(base + ".s.f32")
    r["q"].astype(np.int8).tofile(base + ".q.i8")
    r["acc"].astype("<i4").tofile(base + ".acc.i32")
    r["y_ref"].astype("<f4").tofile(base + ".y.f32")
    K, N = r["x"].shape[1], r["acc"].shape[1]
    if r["flt"] is not None:
        nb = r["s"].shape[1]
        qj = {
            "model": r["name"], "module": "model.layers.0.self_attn.q_proj", "n_tokens": T, "in_features": K,
            "out_features": N, "byte_order": "little", "group": spec["group"], "act_block": engine_ref.ACT_BLOCK,
            "files": {"x": ["q_proj_l0.x.f32", "float32", [T, K], "transformers' q_proj input (input_layernorm output)"],
                      "s": ["q_proj_l0.s.f32", "float32", [T, nb], "block activation scales 127 / max(max|x_block|, 1e-5), "
                                                                    "one per 64 values"],
                      "q": ["q_proj_l0.q.i8", "int8", [T, K], "activation codes clamp(rint(x * s_j), -128, 127)"],
                      "acc": ["q_proj_l0.acc.i32", "int32", [T, N, nb], "isum_j: exact sum over block j of t[n,k] q[k]"],
                      "y": ["q_proj_l0.y.f32", "float32", [T, N], "transformers' q_proj output on its act8 input "
                                                                   "(q / s_j, fp32 linear on t * d)"]},
            "scale_style": "group", "epilogue": "y = sum_j ((float)isum_j * (1.0f / s_j)) * d[n, 64 j / G], from 0.0f, j ascending",
            "codes_equal_transformers": r["codes_equal"], "s_rows_differing_from_transformers": r["s_equal"],
            "acc_equal_transformers": True,
            "max_abs_diff_epilogue_vs_transformers": r["q_diff"],
            "max_rel_diff_epilogue_vs_transformers": r["q_rel"],
        }
        with open(base + ".json", "w") as f:
            json.dump(qj, f, indent=1)
            f.write("\n")
        return
    qj = {
        "model": r["name"], "module": "model.layers.0.self_attn.q_proj", "n_tokens": T, "in_features": K,
        "out_features": N, "byte_order": "little",
        "files": {"x": ["q_proj_l0.x.f32", "float32", [T, K], "transformers' q_proj input (input_layernorm output)"],
                  "s": ["q_proj_l0.s.f32", "float32", [T], "per-token activation scale 127 / max(max|x|, 1e-5)"],
                  "q": ["q_proj_l0.q.i8", "int8", [T, K], "activation codes clamp(rint(x * s), -128, 127)"],
                  "acc": ["q_proj_l0.acc.i32", "int32", [T, N], "exact sum_k t[n,k] q[k]"],
                  "y": ["q_proj_l0.y.f32", "float32", [T, N], "transformers' q_proj output"]},
        "scale_style": {"mul": "multiply", "div": "divide"}[l0.kind], "scale": float(l0.scale),
        "scale_source": "weight_scale from the file" if spec["storage"] == "packed"
                        else "alpha = max(mean|W|, 1e-5) of the fp16 latent weight (sum in double)",
        "epilogue": "y = (float)acc / s * scale" if l0.kind == "mul" else "y = (float)acc / (s * scale)",
        "codes_equal_transformers": r["codes_equal"],
        "s_note": "s here is the contract's IEEE 127.0f / max(amax, 1e-5f); transformers evaluates `127 / amax` as "
                  "reciprocal(amax) * 127 (torch Tensor.__rtruediv__), which differs in the last bit for some rows",
        "s_rows_differing_from_transformers": r["s_equal"], "s_max_ulp_diff": r["s_ulps"],
        "acc_equal_transformers": True,
        "max_abs_diff_epilogue_vs_transformers": r["q_diff"],
        "max_rel_diff_epilogue_vs_transformers": r["q_rel"],
        "max_abs_diff_epilogue_with_transformers_s": r["q_diff_hs"],
    }
    with open(base + ".json", "w") as f:
        json.dump(qj, f, indent=1)
        f.write("\n")


def tol_group(spec):
    # each group width measured apart: adding the g128 fixture leaves the g64 one's files as they were
    if spec["family"] == "qwen3":
        return "group-scaled" if spec["group"] == 64 else f"group-scaled g{spec['group']}"
    return "bitnet"


def tolerances(results):
    """The C tests' tolerances from the measurements of a list of make_one results."""
    M = {k: max(measured(r)[k] for r in results) for k in measured(results[0])}
    tols = {
        "TRIT_HF_LOGIT_TOL": round_up(max(TOL_K * M["logit"], M["logit_noisy"])),
        "TRIT_HF_LOGIT_TOL_SAME_CODES": round_up(5 * M["logit_same_codes"]),
        "TRIT_HF_LAYER_TOL_REL": round_up(max(TOL_K * M["layer_rel"], M["layer_rel_noisy"])),
        "TRIT_HF_LAYER_TOL_REL_SAME_CODES": round_up(5 * M["layer_rel_same_codes"]),
        "TRIT_HF_HEAD_TOL": round_up(5 * M["head"]),
        "derivation": f"TOL = max({TOL_K} x worst |diff| of the realistic engine_ref variants (fp32, fp64, "
                      "fp32 + 1e-7 input noise), 1 x worst of the pessimistic one (1e-6 input noise)) against "
                      "transformers over fixture + sweep, activation-code flips included; *_SAME_CODES and HEAD = "
                      "5 x worst where every int8 code matched; all rounded up to 2 significant digits",
        "measured_worst": M,
    }
    tols["decisive_margin"] = 2 * tols["TRIT_HF_LOGIT_TOL"]
    if "logit_float" in M:
        tols["TRIT_HF_FLOAT_LOGIT_TOL"] = round_up(TOL_K * M["logit_float"])
        tols["float_decisive_margin"] = 2 * tols["TRIT_HF_FLOAT_LOGIT_TOL"]
        tols["float_derivation"] = (f"{TOL_K} x the worst |dlogit| of engine_ref (fp32, fp64, fp32 + 1e-7 input noise; "
                                    "int8 activations per block of 64) against transformers' float model (no activation "
                                    "quantization) over fixture + sweep, rounded up to 2 significant digits")
    return tols


def round_up(x):
    """x rounded up to 2 significant digits."""
    e = 10.0 ** (np.floor(np.log10(x)) - 1)
    return float(f"{np.ceil(x / e) * e:.2g}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=os.path.join("tests", "data", "fixtures"))
    ap.add_argument("--sweep", type=int, default=200)
    ap.add_argument("--candidates", type=int, default=300)
    ap.add_argument("--only", default=None)
    a = ap.parse_args()
    transformers.logging.set_verbosity_error()
    results = []
    for name, spec in SPECS.items():
        if a.only and name != a.only:
            continue
        r = make_one(name, spec, a.out, a.sweep, a.candidates)
        results.append((r, spec))
        sw = r["sweep"]
        print(f"== {name}: {r['n_lin']} ternary linears, BOS row draw {r['bos_draw']} (rho0 {r['rho0']:.3g})")
        print(f"  ids {r['ids']}\n  greedy {r['gen']}")
        print(f"  q_proj l0: codes equal {r['codes_equal']}, s rows off by <= {r['s_ulps']} ulp: {r['s_equal']}, acc exact, epilogue max|dy| "
              f"{r['q_diff']:.3g} (rel {r['q_rel']:.3g}; {r['q_diff_hs']:.3g} with transformers' s); cache-vs-full {r['cache_vs_full']:.3g}; "
              f"greedy engine_ref==hf {r['eng_gen'] == r['gen']}")
        print(f"  tie robustness: ids {r['rho_tf']:.3g}, greedy seq {r['rho_greedy']:.3g}, random median "
              f"{np.median(sw['rho']):.3g}")
        for v, x in r["res"].items():
            print(f"  fixture engine_ref {v}: max|dlogit| {x['max_abs']:.3g} (greedy seq {x['greedy_seq_max_abs']:.3g}),"
                  f" mean {x['mean_abs']:.3g}, top-1 {x['top1_agree']}/{len(r['ids'])}, code flips {x['flips']}/{x['codes']}")
        for v, x in r["res"].items():
            print(f"  fixture layer-level {v}: max rel {x['layer_rel']:.3g} (flips {x['layer_flips']}), "
                  f"head max|dlogit| {x['head_max_abs']:.3g}")
        if r["flt"] is not None:
            F_ = r["flt"]
            print(f"  float model: act8 vs float transformers max|dlogit| {F_['act8_vs_float_max_abs']:.3g} (sweep "
                  f"{sw['act8_vs_float_max_abs']:.3g}); engine_ref float-acts vs float transformers "
                  f"{F_['engine_ref_float_acts_max_abs']:.3g}")
            for v, x in F_["engine_ref"].items():
                print(f"  float model vs engine_ref {v}: max|dlogit| {x['max_abs']:.3g} (greedy seq "
                      f"{x['greedy_seq_max_abs']:.3g}), top-1 {x['top1_agree']}/{len(r['ids'])}")
            for v in r["variants"]:
                print(f"  float model sweep {v}: max|dlogit| {sw[v]['float_max_abs']:.3g}")
        for e, x in r["noisy"].items():
            print(f"  fixture engine_ref noise {e:g}: runs with flips {x['runs_with_flips']}/{x['runs']}, "
                  f"max|dlogit| {x['max_abs']:.3g}")
        for v in r["variants"]:
            S = sw[v]
            print(f"  sweep {sw['n_seq']}x{sw['len']} {v}: max|dlogit| {S['max_abs']:.3g}; runs with flips "
                  f"{S['runs_with_flips']} (max {S['max_abs_flip']:.3g}), without (max {S['max_abs_noflip']:.3g}); "
                  f"|logit|max {sw['logit_absmax']:.3g}; layer rel {S['layer_rel']:.3g} (runs with flips "
                  f"{S['layer_runs_with_flips']}, without max {S['layer_rel_noflip']:.3g}); head {S['head_max_abs']:.3g}",
                  flush=True)
    groups = {}
    for r, spec in results:       # group-scaled models have their own tolerances (another rule)
        groups.setdefault(tol_group(spec), []).append(r)
    group_tols = {g: tolerances(rs) for g, rs in groups.items()}
    for g, tols in group_tols.items():
        print(f"== tolerances ({g}):", json.dumps({k: v for k, v in tols.items() if k != "derivation"}))
    for r, spec in results:
        tols = group_tols[tol_group(spec)]
        decisive = tols["decisive_margin"]
        sw = r["sweep"]
        m = np.array(sw["margins"])
        dec = m > decisive
        for v in r["variants"]:
            eq = np.array(sw[v]["top1_eq"])
            print(f"  {r['name']} sweep {v}: decisive positions {dec.sum()}/{len(m)}, top-1 agree there "
                  f"{eq[dec].sum()}/{dec.sum()}, overall {eq.sum()}/{len(m)}")
        gm = r["gen_margins"]
        print(f"  {r['name']}: fixture decisive positions {(r['margins'] > decisive).sum()}/{len(r['margins'])}; "
              f"greedy leading decisive steps {int(np.argmin(np.append(gm > decisive, False)))}/{N_NEW}, "
              f"decisive steps {(gm > decisive).sum()}")
        write_refs(r, spec, tols)
    print("versions:", versions())
    for q in sorted(QUIRKS):
        print("quirk:", q)


if __name__ == "__main__":
    main()
