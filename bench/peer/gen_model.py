#!/usr/bin/env python3
"""gen_model.py: a random-weight BitNet b1.58 model of the 2B-4T shape, as a GGUF file in llama.cpp's
`bitnet` architecture, for speed comparisons (its outputs mean nothing).

    python3 bench/peer/gen_model.py OUT.gguf [--layers 30] [--seed 1]

Needs the `gguf` package from PyPI (bench/peer/run.py installs gguf==0.19.0 into its work folder).

What it writes (tensor names and keys as the vendored llama.cpp's src/models/bitnet.cpp and
src/llama-arch.cpp read them; trit reads the same file):
  - 30 layers, dim 2560, ffn 6912, 20 query heads, 5 KV heads, head_dim 128, RoPE theta 5e5
  - blk.N.{attn_q,attn_k,attn_v,attn_output,ffn_gate,ffn_up,ffn_down}.weight: random ternary
    values {-alpha, 0, +alpha}, F16, one alpha per tensor (a power of two, exact in fp16, so that
    llama-quantize's TQ2_0 / Q2_0 blocks all get the same scale)
  - blk.N.{attn_norm,attn_sub_norm,ffn_norm,ffn_sub_norm}.weight and output_norm.weight: F32 ones
  - token_embd.weight: F16, N(0, 0.02); tied (no output.weight), as in 2B-4T
  - a synthetic SentencePiece-style vocabulary (tokenizer.ggml.model "llama") of exactly 128256
    tokens: <unk>, <s>, </s>, the 256 byte tokens <0x00>..<0xFF>, then "▁t<id>" pieces.
The activation is llama.cpp's bitnet graph's (SiLU gate); 2B-4T's is ReLU^2, which costs the same.
Tensors are generated and written one at a time: memory peaks near the embedding's 0.66 GB.
"""
import argparse
import os
import sys
import time

import numpy as np

try:
    import gguf
except ImportError:
    sys.exit("gen_model.py: the gguf package is missing (pip install gguf==0.19.0)")

ARCH = "bitnet"
SHAPE = dict(dim=2560, ffn=6912, heads=20, kv_heads=5, head_dim=128, vocab=128256, ctx=4096)


def vocabulary(n):
    tokens = ["<unk>", "<s>", "</s>"] + [f"<0x{b:02X}>" for b in range(256)]
    types = [gguf.TokenType.UNKNOWN, gguf.TokenType.CONTROL, gguf.TokenType.CONTROL] + [gguf.TokenType.BYTE] * 256
    first = len(tokens)
    tokens += [f"\u2581t{i}" for i in range(first, n)]
    types += [gguf.TokenType.NORMAL] * (n - first)
    scores = [0.0] * first + [-float(i) for i in range(n - first)]
    return tokens, scores, [int(t) for t in types]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("out", help="the .gguf file to write (must not exist)")
    ap.add_argument("--layers", type=int, default=30, help="block count (default 30, as 2B-4T)")
    ap.add_argument("--seed", type=int, default=1, help="random seed (default 1)")
    a = ap.parse_args()
    if os.path.exists(a.out):
        sys.exit(f"gen_model.py: {a.out} exists; not overwriting it")

    s = SHAPE
    d, f, kv = s["dim"], s["ffn"], s["kv_heads"] * s["head_dim"]
    rng = np.random.default_rng(a.seed)
    # (name, numpy shape [rows, cols], kind); llama.cpp's ne = [cols, rows]
    plan = [("token_embd.weight", (s["vocab"], d), "embd"), ("output_norm.weight", (d,), "norm")]
    for i in range(a.layers):
        b = f"blk.{i}."
        plan += [(b + "attn_norm.weight", (d,), "norm"),
                 (b + "attn_q.weight", (s["heads"] * s["head_dim"], d), "tern"),
                 (b + "attn_k.weight", (kv, d), "tern"),
                 (b + "attn_v.weight", (kv, d), "tern"),
                 (b + "attn_sub_norm.weight", (d,), "norm"),
                 (b + "attn_output.weight", (d, s["heads"] * s["head_dim"]), "tern"),
                 (b + "ffn_norm.weight", (d,), "norm"),
                 (b + "ffn_gate.weight", (f, d), "tern"),
                 (b + "ffn_up.weight", (f, d), "tern"),
                 (b + "ffn_sub_norm.weight", (f,), "norm"),
                 (b + "ffn_down.weight", (d, f), "tern")]

    part = a.out + ".part"
    w = gguf.GGUFWriter(part, ARCH)
    w.add_name(f"random ternary bitnet, 2B-4T shape, {a.layers} layers (trit peer benchmark)")
    w.add_file_type(gguf.LlamaFileType.MOSTLY_F16)
    w.add_context_length(s["ctx"])
    w.add_embedding_length(d)
    w.add_feed_forward_length(f)
    w.add_block_count(a.layers)
    w.add_head_count(s["heads"])
    w.add_head_count_kv(s["kv_heads"])
    w.add_key_length(s["head_dim"])
    w.add_value_length(s["head_dim"])
    w.add_rope_dimension_count(s["head_dim"])
    w.add_rope_freq_base(500000.0)
    w.add_layer_norm_rms_eps(1e-5)
    w.add_vocab_size(s["vocab"])
    tokens, scores, types = vocabulary(s["vocab"])
    w.add_tokenizer_model("llama")
    w.add_token_list(tokens)
    w.add_token_scores(scores)
    w.add_token_types(types)
    w.add_bos_token_id(1)
    w.add_eos_token_id(2)
    w.add_unk_token_id(0)
    w.add_add_bos_token(True)
    w.add_add_eos_token(False)

    for name, shape, kind in plan:
        dt = np.float32 if kind == "norm" else np.float16
        w.add_tensor_info(name, shape, np.dtype(dt), int(np.prod(shape)) * np.dtype(dt).itemsize)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_ti_data_to_file()

    t0 = time.time()
    for k, (name, shape, kind) in enumerate(plan):
        if kind == "norm":
            t = np.ones(shape, np.float32)
        elif kind == "embd":
            t = np.empty(shape, np.float16)
            for r in range(0, shape[0], 8192):  # in slices: no 1.3 GB float32 temporary
                t[r:r + 8192] = rng.standard_normal((min(8192, shape[0] - r), shape[1]), np.float32) * 0.02
        else:
            # alpha ~ 1/sqrt(2/3 * cols) keeps the matmul outputs near unit scale; rounded to 2^k
            alpha = 2.0 ** round(np.log2(1.0 / np.sqrt(2.0 / 3.0 * shape[1])))
            t = np.array([-alpha, 0.0, alpha], np.float16)[rng.integers(0, 3, shape, np.uint8)]
        w.write_tensor_data(t)
        if (k + 1) * 10 // len(plan) != k * 10 // len(plan):  # every tenth
            print(f"gen_model: {k + 1}/{len(plan)} tensors, {time.time() - t0:.0f} s", flush=True)
    w.close()
    os.replace(part, a.out)
    print(f"gen_model: wrote {a.out} ({os.path.getsize(a.out) / 2**30:.2f} GiB)")


if __name__ == "__main__":
    main()
