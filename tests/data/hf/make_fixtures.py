#!/usr/bin/env python3
"""make_fixtures.py: writes the tiny Hugging Face model folders under tests/data/hf with the
reference safetensors writer (PyPI `safetensors`), so that the C reader is checked against files
it did not write itself.

    python3 -m venv /tmp/venv && /tmp/venv/bin/pip install safetensors
    /tmp/venv/bin/python tests/data/hf/make_fixtures.py

Tensor bytes follow a pattern that tests/test_hf_folder.c recomputes:
    byte j of tensor `name` = (j * 131 + sum(name.encode())) & 0xff
The weights are not a working model: only the file structure matters here.
"""
import ctypes
import json
import os

from safetensors import serialize
from safetensors._safetensors_rust import TensorSpec

HERE = os.path.dirname(os.path.abspath(__file__))
SIZES = {"F32": 4, "F16": 2, "BF16": 2, "U8": 1, "I8": 1, "I32": 4}
TORCH_NAMES = {"F32": "float32", "F16": "float16", "BF16": "bfloat16", "U8": "uint8", "I8": "int8",
               "I32": "int32"}


def pattern(name, n_bytes):
    h = sum(name.encode())
    return bytes((j * 131 + h) & 0xFF for j in range(n_bytes))


def write_safetensors(path, tensors, metadata=None):
    """tensors: {name: (dtype, shape)}."""
    keep = []  # the buffers must outlive serialize()
    specs = {}
    for name, (dtype, shape) in tensors.items():
        n = SIZES[dtype]
        for d in shape:
            n *= d
        buf = ctypes.create_string_buffer(pattern(name, n), max(n, 1))
        keep.append(buf)
        specs[name] = TensorSpec(dtype=TORCH_NAMES[dtype], shape=list(shape), data_ptr=ctypes.addressof(buf), data_len=n)
    with open(path, "wb") as f:
        f.write(serialize(specs, metadata=metadata))


def write_json(path, obj, raw=None):
    with open(path, "w") as f:
        f.write(raw if raw is not None else json.dumps(obj, indent=2) + "\n")


# A 2B-4T-shaped config at toy sizes (keys and values as in microsoft/bitnet-b1.58-2B-4T).
BITNET_CONFIG = {
    "architectures": ["BitNetForCausalLM"],
    "attention_bias": False,
    "bos_token_id": 128000,
    "eos_token_id": 128001,
    "hidden_act": "relu2",
    "hidden_size": 8,
    "intermediate_size": 16,
    "max_position_embeddings": 4096,
    "model_type": "bitnet",
    "num_attention_heads": 2,
    "num_hidden_layers": 1,
    "num_key_value_heads": 1,
    "quantization_config": {"linear_class": "autobitlinear", "quant_method": "bitnet",
                            "quantization_mode": "offline"},
    "rms_norm_eps": 1e-05,
    "rope_theta": 500000.0,
    "tie_word_embeddings": True,
    "torch_dtype": "bfloat16",
    "vocab_size": 16,
}

# A chat template in the 2B-4T style: "<|begin_of_text|>User: ...<|eot_id|>Assistant: ".
CHAT_TEMPLATE = (
    "{% for message in messages %}{% if loop.first %}{{ bos_token }}{% endif %}"
    "{{ message['role'] | capitalize + ': ' + message['content'] | trim + '<|eot_id|>' }}"
    "{% endfor %}{% if add_generation_prompt %}{{ 'Assistant: ' }}{% endif %}")


def tiny_single():
    d = os.path.join(HERE, "tiny-single")
    os.makedirs(d, exist_ok=True)
    write_json(os.path.join(d, "config.json"), BITNET_CONFIG)
    write_safetensors(os.path.join(d, "model.safetensors"), {
        "model.embed_tokens.weight": ("BF16", (16, 8)),
        "model.layers.0.self_attn.q_proj.weight": ("U8", (2, 8)),
        "model.layers.0.self_attn.q_proj.weight_scale": ("BF16", (1,)),
        "model.norm.weight": ("F32", (8,)),
        "test.f16": ("F16", (3,)),
        "test.i8": ("I8", (2, 3)),
        "test.i32": ("I32", (2,)),
        "test.scalar": ("F32", ()),
        "test.empty": ("F32", (0, 4)),
    }, metadata={"format": "pt"})
    write_json(os.path.join(d, "tokenizer_config.json"), {
        "add_bos_token": True,
        "bos_token": "<|begin_of_text|>",
        "chat_template": CHAT_TEMPLATE,
        "eos_token": "<|eot_id|>",
        "model_max_length": 4096,
        "tokenizer_class": "PreTrainedTokenizerFast",
    })
    write_json(os.path.join(d, "generation_config.json"),
               {"bos_token_id": 128000, "eos_token_id": [128001, 128009], "do_sample": False})


def tiny_sharded():
    d = os.path.join(HERE, "tiny-sharded")
    os.makedirs(d, exist_ok=True)
    # HF1BitLLM's config.json carries "quantization_config" twice; Python keeps the last one.
    cfg = ('{\n  "architectures": ["LlamaForCausalLM"],\n  "model_type": "llama",\n'
           '  "hidden_size": 8,\n  "intermediate_size": 16,\n  "num_hidden_layers": 1,\n'
           '  "num_attention_heads": 2,\n  "num_key_value_heads": 1,\n  "head_dim": 4,\n'
           '  "vocab_size": 16,\n  "hidden_act": "silu",\n  "rms_norm_eps": 1e-6,\n'
           '  "rope_theta": 500000.0,\n  "rope_scaling": null,\n  "tie_word_embeddings": false,\n'
           '  "quantization_config": {"modules_to_not_convert": null, "quant_method": "bitnet",'
           ' "linear_class": "autobitlinear"},\n'
           '  "quantization_config": {"quant_method": "bitnet"}\n}\n')
    write_json(os.path.join(d, "config.json"), None, raw=cfg)
    shards = {
        "model-00001-of-00002.safetensors": {
            "model.embed_tokens.weight": ("BF16", (16, 8)),
            "model.layers.0.mlp.down_proj.weight": ("U8", (2, 16)),
            "model.layers.0.mlp.down_proj.weight_scale": ("BF16", (1,)),
        },
        "model-00002-of-00002.safetensors": {
            "model.norm.weight": ("BF16", (8,)),
            "lm_head.weight": ("BF16", (16, 8)),
        },
    }
    weight_map = {}
    total = 0
    for shard, tensors in shards.items():
        write_safetensors(os.path.join(d, shard), tensors, metadata={"format": "pt"})
        for name, (dtype, shape) in tensors.items():
            weight_map[name] = shard
            n = SIZES[dtype]
            for s in shape:
                n *= s
            total += n
    write_json(os.path.join(d, "model.safetensors.index.json"),
               {"metadata": {"total_size": total}, "weight_map": dict(sorted(weight_map.items()))})
    write_json(os.path.join(d, "tokenizer_config.json"), {
        "bos_token": {"__type": "AddedToken", "content": "<s>", "lstrip": False, "normalized": False,
                      "rstrip": False, "single_word": False},
        "eos_token": "</s>",
        "chat_template": [{"name": "tool_use", "template": "{{ tools }}"},
                          {"name": "default", "template": "{{ messages[0]['content'] }}"}],
    })


if __name__ == "__main__":
    tiny_single()
    tiny_sharded()
