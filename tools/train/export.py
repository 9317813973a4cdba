#!/usr/bin/env python3
"""Export a training checkpoint to a Hugging Face BitNetForCausalLM folder (2B-4T packed layout),
then evaluate it.

  python export.py --ckpt runs/<name>/ckpt.pt [--out out/hf] [--scale-dtype bf16|f32]

Layout written (as microsoft/bitnet-b1.58-2B-4T):
  - every q/k/v/o/gate/up/down `weight`: uint8 [out/4, in], code = t+1, bit pair i (LSB first)
    holds output rows i*out/4 .. (i+1)*out/4-1 (transformers' pack_weights layout);
  - `weight_scale`: alpha (the multiplier: y = (x_q . t) * alpha), shape [1];
  - embed_tokens (tied with lm_head, no lm_head.weight stored) and all norms in bf16.
The pack is checked against transformers' own pack_weights/unpack_weights.
"""
import argparse
import json
import os
import shutil
import sys

import torch
from safetensors.torch import save_file

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from model import BitNetLM, Config, ternarize  # noqa: E402

PROJ = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


def pack_rows4(t):
    """t: int tensor [out, in] of {-1,0,1} -> uint8 [out/4, in]; bit pair i holds rows [i*P, (i+1)*P)."""
    out = t.shape[0]
    assert out % 4 == 0, out
    P = out // 4
    code = (t + 1).to(torch.uint8)
    packed = torch.zeros((P, t.shape[1]), dtype=torch.uint8)
    for i in range(4):
        packed |= code[i * P:(i + 1) * P] << (2 * i)
    return packed


def load_ckpt(path):
    ck = torch.load(path, map_location="cpu", weights_only=False)
    cfg = Config(**ck["config"])
    model = BitNetLM(cfg)
    model.load_state_dict(ck["model"])
    model.eval()
    return model, cfg, ck


def hf_name(n):
    # our names: embed_tokens.weight, layers.i.self_attn.q_proj.weight, norm.weight ...
    return "model." + n


def export(model, cfg, outdir, scale_dtype):
    from transformers.integrations.bitnet import pack_weights, unpack_weights
    sd = model.state_dict()
    tensors = {}
    sdt = {"bf16": torch.bfloat16, "f32": torch.float32}[scale_dtype]
    for n, w in sd.items():
        if n.split(".")[-2] in PROJ:
            t, alpha = ternarize(w.float(), cfg.alpha_bf16)
            t = t.to(torch.int8)
            packed = pack_rows4(t)
            # Check against transformers' own packer and unpacker.
            ref = pack_weights(t.clone().to(torch.int32))
            assert torch.equal(ref, packed), n
            assert torch.equal(unpack_weights(packed, dtype=torch.float32), t.float()), n
            tensors[hf_name(n)] = packed.contiguous()
            tensors[hf_name(n)[:-len("weight")] + "weight_scale"] = alpha.reshape(1).to(sdt)
            if scale_dtype == "bf16" and cfg.alpha_bf16:
                assert alpha.to(torch.bfloat16).float().item() == alpha.item()
        else:
            tensors[hf_name(n)] = w.to(torch.bfloat16).contiguous()
    os.makedirs(outdir, exist_ok=True)
    save_file(tensors, os.path.join(outdir, "model.safetensors"), metadata={"format": "pt"})
    config = {
        "architectures": ["BitNetForCausalLM"],
        "model_type": "bitnet",
        "vocab_size": cfg.vocab_size,
        "hidden_size": cfg.hidden_size,
        "intermediate_size": cfg.intermediate_size,
        "num_hidden_layers": cfg.num_hidden_layers,
        "num_attention_heads": cfg.num_attention_heads,
        "num_key_value_heads": cfg.num_key_value_heads,
        "head_dim": cfg.head_dim,
        "hidden_act": "relu2",
        "max_position_embeddings": cfg.max_position_embeddings,
        "rms_norm_eps": cfg.rms_norm_eps,
        "rope_theta": cfg.rope_theta,
        "rope_parameters": {"rope_type": "default", "rope_theta": cfg.rope_theta},
        "attention_bias": False,
        "attention_dropout": 0.0,
        "initializer_range": 0.02,
        "bos_token_id": cfg.bos_token_id,
        "eos_token_id": cfg.eos_token_id,
        "tie_word_embeddings": True,
        "use_cache": True,
        "torch_dtype": "bfloat16",
        "quantization_config": {"quant_method": "bitnet", "linear_class": "autobitlinear",
                                "quantization_mode": "offline"},
    }
    json.dump(config, open(os.path.join(outdir, "config.json"), "w"), indent=2)
    json.dump({"bos_token_id": cfg.bos_token_id, "eos_token_id": cfg.eos_token_id, "do_sample": False},
              open(os.path.join(outdir, "generation_config.json"), "w"), indent=2)
    for f in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copy(os.path.join(HERE, "out", "tokenizer", f), os.path.join(outdir, f))
    return tensors


def exported_into_trainer(tensors, cfg):
    """Our training-code model carrying exactly the exported values (fp32 math)."""
    from transformers.integrations.bitnet import unpack_weights
    m = BitNetLM(cfg)
    sd = {}
    for n in m.state_dict():
        k = hf_name(n)
        if n.split(".")[-2] in PROJ:
            t = unpack_weights(tensors[k], dtype=torch.float32)
            sd[n] = t * tensors[k[:-len("weight")] + "weight_scale"].float()
        else:
            sd[n] = tensors[k].float()
    m.load_state_dict(sd)
    for mod in m.modules():
        if hasattr(mod, "prequantized"):
            mod.prequantized = True
    m.eval()
    return m


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ckpt", required=True)
    ap.add_argument("--out", default=os.path.join(HERE, "out", "hf"))
    ap.add_argument("--scale-dtype", default="bf16", choices=["bf16", "f32"])
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    model, cfg, ck = load_ckpt(args.ckpt)
    tensors = export(model, cfg, args.out, args.scale_dtype)
    size = os.path.getsize(os.path.join(args.out, "model.safetensors"))
    print(f"exported {args.out}: model.safetensors {size} bytes, step {ck['step']}, tokens {ck['tokens']}")


if __name__ == "__main__":
    main()
