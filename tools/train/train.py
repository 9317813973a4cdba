#!/usr/bin/env python3
"""Train a small BitNet b1.58 model (QAT) on the KJV text prepared by prep_data.py.

The LR schedule is a function of progress p in [0, 1]. p is steps/--steps when --steps is given
(exactly reproducible), else elapsed/--minutes (a wall-clock budget; the number of steps reached is
logged, so the run can be replayed with --steps). Two-stage schedule (BitNet b1.58 papers):
  stage 1 (p < 2/3): linear warmup over the first --warmup fraction, then cosine from lr to 0.6*lr,
                     weight decay --wd;
  stage 2 (p >= 2/3): abrupt drop to 0.3*lr, cosine down to 0.01*lr, weight decay 0.
Every window fed to the model starts with BOS in place of its first token (the same input form that
the perplexity protocol uses).
"""
import argparse
import json
import math
import os
import time

import numpy as np
import torch

from model import BitNetLM, Config, ppl_protocol

HERE = os.path.dirname(os.path.abspath(__file__))


def lr_at(p, lr, warmup, stage2=2 / 3):
    if p < stage2:
        if p < warmup:
            return lr * p / warmup
        q = (p - warmup) / (stage2 - warmup)
        return lr * (0.6 + 0.4 * 0.5 * (1 + math.cos(math.pi * q)))
    q = min(1.0, (p - stage2) / (1 - stage2))
    return lr * (0.01 + 0.29 * 0.5 * (1 + math.cos(math.pi * q)))


def save_ckpt(path, model, opt, cfg, step, tokens, elapsed, args, extra=None):
    tmp = path + ".tmp"
    torch.save({"model": model.state_dict(), "opt": opt.state_dict(), "config": cfg.to_dict(),
                "step": step, "tokens": tokens, "elapsed_s": elapsed, "args": vars(args),
                "extra": extra or {}}, tmp)
    os.replace(tmp, path)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--name", required=True)
    ap.add_argument("--hidden", type=int, default=256)
    ap.add_argument("--inter", type=int, default=768)
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--heads", type=int, default=4)
    ap.add_argument("--kv-heads", type=int, default=2)
    ap.add_argument("--ctx", type=int, default=256)
    ap.add_argument("--rope-theta", type=float, default=500000.0)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--wd", type=float, default=0.1)
    ap.add_argument("--warmup", type=float, default=0.03)
    ap.add_argument("--minutes", type=float, default=5.0)
    ap.add_argument("--steps", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--seed", type=int, default=1234)
    ap.add_argument("--eval-every-min", type=float, default=0)
    ap.add_argument("--eval-chunks", type=int, default=64, help="val chunks for periodic evals (full set at the end)")
    ap.add_argument("--ckpt-every-min", type=float, default=5.0)
    ap.add_argument("--compile", action="store_true")
    ap.add_argument("--bf16-exact", action="store_true",
                    help="round alphas, embeddings and norm weights to bf16 in the forward pass (exact bf16 export)")
    args = ap.parse_args()

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    rundir = os.path.join(HERE, "runs", args.name)
    os.makedirs(rundir, exist_ok=True)
    tokcfg = json.load(open(os.path.join(HERE, "out", "tokenizer", "tokenizer.json")))
    specials = {a["content"]: a["id"] for a in tokcfg["added_tokens"]}
    vocab = len(tokcfg["model"]["vocab"]) + len(tokcfg["added_tokens"])
    cfg = Config(vocab_size=vocab, hidden_size=args.hidden, intermediate_size=args.inter,
                 num_hidden_layers=args.layers, num_attention_heads=args.heads,
                 num_key_value_heads=args.kv_heads, max_position_embeddings=args.ctx,
                 rope_theta=args.rope_theta, bos_token_id=specials["<|begin_of_text|>"],
                 eos_token_id=specials["<|end_of_text|>"], alpha_bf16=args.bf16_exact,
                 bf16_weights=args.bf16_exact)
    assert cfg.hidden_size % cfg.num_attention_heads == 0 and cfg.head_dim % 8 == 0
    assert cfg.num_attention_heads % cfg.num_key_value_heads == 0
    train = torch.from_numpy(np.fromfile(os.path.join(HERE, "data", "train.u16"), dtype=np.uint16).astype(np.int64))
    val = np.fromfile(os.path.join(HERE, "data", "val.u16"), dtype=np.uint16).astype(np.int64)

    model = BitNetLM(cfg)
    counts = model.param_counts()
    decay = [p for n, p in model.named_parameters() if p.dim() >= 2]
    no_decay = [p for n, p in model.named_parameters() if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": args.wd, "wd0": args.wd},
                             {"params": no_decay, "weight_decay": 0.0, "wd0": 0.0}],
                            lr=args.lr, betas=(0.9, 0.95), eps=1e-8)
    fwd = torch.compile(model) if args.compile else model
    log = open(os.path.join(rundir, "log.txt"), "a")

    def P(*a):
        s = " ".join(str(x) for x in a)
        print(s, flush=True)
        log.write(s + "\n")
        log.flush()

    P(json.dumps({"args": vars(args), "config": cfg.to_dict(), "params": counts,
                  "train_tokens": len(train), "val_tokens": len(val), "torch": torch.__version__}))

    def evaluate(n_chunks=None):
        model.eval()
        ids = val if n_chunks is None else val[: n_chunks * args.ctx]
        r = ppl_protocol(lambda x: model(x), ids, args.ctx, cfg.bos_token_id)
        model.train()
        return r

    T, B = args.ctx, args.batch
    t0 = time.time()
    step, tokens, last_ckpt, last_eval = 0, 0, t0, t0
    loss_ema = None
    model.train()
    while True:
        elapsed = time.time() - t0
        p = step / args.steps if args.steps else elapsed / (args.minutes * 60)
        if p >= 1.0:
            break
        lr = lr_at(p, args.lr, args.warmup)
        for g in opt.param_groups:
            g["lr"] = lr
            g["weight_decay"] = g["wd0"] if p < 2 / 3 else 0.0
        starts = rng.integers(0, len(train) - T - 1, size=B)
        idx = torch.from_numpy(starts)[:, None] + torch.arange(T + 1)[None, :]
        w = train[idx]
        x, y = w[:, :-1].clone(), w[:, 1:]
        x[:, 0] = cfg.bos_token_id
        logits = fwd(x)
        loss = torch.nn.functional.cross_entropy(logits.reshape(-1, cfg.vocab_size), y.reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        step += 1
        tokens += B * T
        li = loss.item()
        loss_ema = li if loss_ema is None else 0.98 * loss_ema + 0.02 * li
        now = time.time()
        if step % 25 == 0:
            P(f"step {step} p {p:.3f} lr {lr:.2e} loss {li:.4f} ema {loss_ema:.4f} tok {tokens} "
              f"elapsed {now - t0:.0f}s tok/s {tokens / (now - t0):.0f}")
        if args.eval_every_min and now - last_eval > args.eval_every_min * 60:
            r = evaluate(args.eval_chunks)
            P(f"eval step {step} val(first {args.eval_chunks} chunks) ppl {r['ppl']:.3f} nll {r['mean_nll']:.4f}")
            last_eval = time.time()
        if now - last_ckpt > args.ckpt_every_min * 60:
            save_ckpt(os.path.join(rundir, "ckpt.pt"), model, opt, cfg, step, tokens, now - t0, args)
            last_ckpt = time.time()
    elapsed = time.time() - t0
    r = evaluate()
    summary = {"final": True, "steps": step, "tokens": tokens, "train_seconds": round(elapsed, 1),
               "epochs": tokens / len(train), "loss_ema": loss_ema, "val": r, "params": counts}
    P(json.dumps(summary))
    save_ckpt(os.path.join(rundir, "ckpt.pt"), model, opt, cfg, step, tokens, elapsed, args, summary)
    json.dump(summary, open(os.path.join(rundir, "summary.json"), "w"), indent=2)


if __name__ == "__main__":
    main()
