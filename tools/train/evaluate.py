#!/usr/bin/env python3
"""Evaluate the exported HF folder (and the training checkpoint) with the llama.cpp perplexity protocol,
and record a greedy-generation golden file.

  python evaluate.py --hf out/hf [--ckpt runs/<name>/ckpt.pt]

Protocol (what `trit perplexity` and llama.cpp do): tokenize the text without special tokens; cut it into
non-overlapping chunks of n_ctx tokens, dropping the remainder; replace each chunk's first token with
BOS; score the predictions at positions j = n_ctx/2 .. n_ctx-2 (each predicting token j+1);
PPL = exp(mean NLL); stderr of the mean NLL = sqrt(var/(N-1)); PPL uncertainty = PPL * stderr.
Writes out/eval.json and out/golden.json.
"""
import argparse
import json
import os
import sys
import time

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from model import ppl_protocol  # noqa: E402

PROMPT = "In the beginning"


def fmt(r):
    return f"PPL {r['ppl']:.4f} +/- {r['ppl_err']:.4f} (mean NLL {r['mean_nll']:.5f}, {r['n_chunks']} chunks, {r['n_scored']} scored)"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--hf", default=os.path.join(HERE, "out", "hf"))
    ap.add_argument("--ckpt", default=None)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--bf16", action="store_true", help="also run transformers in bfloat16")
    ap.add_argument("--out", default=os.path.join(HERE, "out"))
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    from tokenizers import Tokenizer
    from transformers import BitNetForCausalLM
    from safetensors.torch import load_file

    cfg = json.load(open(os.path.join(args.hf, "config.json")))
    n_ctx, bos = cfg["max_position_embeddings"], cfg["bos_token_id"]
    tok = Tokenizer.from_file(os.path.join(args.hf, "tokenizer.json"))
    texts = {"val": open(os.path.join(HERE, "out", "val.txt")).read(),
             "val_excerpt": open(os.path.join(HERE, "out", "val_excerpt.txt")).read()}
    ids = {k: tok.encode(v, add_special_tokens=False).ids for k, v in texts.items()}
    res = {"n_ctx": n_ctx, "protocol": "llama.cpp perplexity: non-overlapping n_ctx chunks, BOS at 0, "
                                       "score second half (j = n_ctx/2 .. n_ctx-2)",
           "tokens": {k: len(v) for k, v in ids.items()}}

    models = {}
    if args.ckpt:
        from export import exported_into_trainer, load_ckpt
        m, mcfg, ck = load_ckpt(args.ckpt)
        models["trainer_fp32"] = lambda x, m=m: m(x)
        m2 = exported_into_trainer(load_file(os.path.join(args.hf, "model.safetensors")), mcfg)
        models["trainer_with_exported_tensors"] = lambda x, m=m2: m(x)
        res["checkpoint"] = {"path": args.ckpt, "step": ck["step"], "tokens": ck["tokens"],
                             "elapsed_s": ck["elapsed_s"]}
    hf = BitNetForCausalLM.from_pretrained(args.hf, dtype=torch.float32, attn_implementation="eager")
    # transformers unpacks the offline-packed projections as bf16 even when dtype=float32 is asked for
    # (the linear then fails on fp32 inputs); .float() is exact: ternary codes, bf16 scales/embeddings.
    res["hf_loaded_dtypes"] = sorted({str(p.dtype) for p in list(hf.parameters()) + list(hf.buffers())})
    hf = torch.nn.Module.float(hf)  # bypass the quantized-model guard; the cast is exact
    hf.eval()
    res["hf_weight_scale_dtype_in_model"] = str(hf.model.layers[0].self_attn.q_proj.weight_scale.dtype)
    res["hf_rope"] = str(getattr(hf.config, "rope_parameters", None))
    models["transformers_fp32"] = lambda x: hf(x).logits
    if args.bf16:
        hfb = BitNetForCausalLM.from_pretrained(args.hf, dtype=torch.bfloat16, attn_implementation="eager")
        hfb.eval()
        models["transformers_bf16"] = lambda x: hfb(x).logits
    for mname, fn in models.items():
        for tname, t_ids in ids.items():
            t0 = time.time()
            r = ppl_protocol(fn, t_ids, n_ctx, bos)
            res.setdefault(mname, {})[tname] = r
            print(f"{mname:32s} {tname:12s} {fmt(r)}  [{time.time() - t0:.0f}s]", flush=True)

    # Golden greedy generation through transformers (fp32, eager).
    enc = tok.encode(PROMPT, add_special_tokens=True).ids
    assert enc[0] == bos
    with torch.no_grad():
        out = hf.generate(torch.tensor([enc]), max_new_tokens=32, do_sample=False, num_beams=1,
                          eos_token_id=None, pad_token_id=cfg["eos_token_id"])
        logits0 = hf(torch.tensor([enc])).logits[0, -1]
    gen = out[0, len(enc):].tolist()
    top = torch.topk(logits0, 5)
    golden = {"model": "transformers BitNetForCausalLM, dtype float32, attn eager, greedy",
              "prompt": PROMPT, "prompt_ids": enc, "generated_ids": gen,
              "generated_text": tok.decode(gen, skip_special_tokens=False),
              "full_text": tok.decode(enc + gen, skip_special_tokens=True),
              "last_prompt_position_top5": {"ids": top.indices.tolist(),
                                            "logits": [round(v, 5) for v in top.values.tolist()]}}
    print(json.dumps(golden, indent=1))
    os.makedirs(args.out, exist_ok=True)
    json.dump(golden, open(os.path.join(args.out, "golden.json"), "w"), indent=2)
    json.dump(res, open(os.path.join(args.out, "eval.json"), "w"), indent=2)


if __name__ == "__main__":
    main()
