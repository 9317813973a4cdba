"""BitNet b1.58 (2B-4T architecture, as transformers' BitNetForCausalLM) with quantization-aware training.

Every q/k/v/o/gate/up/down projection is a BitLinear:
  weights: alpha = max(mean|W|, 1e-5) per tensor, t = clamp(round(W/alpha), -1, 1), used as t*alpha
  activations: per token s = 127/max(max|x|, 1e-5), q = clamp(round(x*s), -128, 127), used as q/s
both through a straight-through estimator. torch.round is half-to-even (like rintf).
"""
import math
from dataclasses import dataclass, asdict

import torch
import torch.nn as nn
import torch.nn.functional as F


@dataclass
class Config:
    vocab_size: int = 4096
    hidden_size: int = 256
    intermediate_size: int = 768
    num_hidden_layers: int = 4
    num_attention_heads: int = 4
    num_key_value_heads: int = 2
    max_position_embeddings: int = 256
    rms_norm_eps: float = 1e-5
    rope_theta: float = 500000.0
    bos_token_id: int = 4093
    eos_token_id: int = 4094
    # Round alpha to bf16 during training, so that a bf16 weight_scale in the export is exact.
    alpha_bf16: bool = False
    # Use bf16-rounded embeddings and norm weights in the forward pass (straight-through), so that the
    # bf16 export is exactly the trained model.
    bf16_weights: bool = False

    @property
    def head_dim(self):
        return self.hidden_size // self.num_attention_heads

    def to_dict(self):
        return asdict(self)


def ternarize(w, alpha_bf16=False):
    """(t, alpha) exactly as the export stores them."""
    alpha = w.abs().mean().clamp(min=1e-5)
    if alpha_bf16:
        alpha = alpha.to(torch.bfloat16).float()
    t = (w / alpha).round().clamp(-1, 1)
    return t, alpha


def act_quant(x):
    s = 127.0 / x.abs().amax(dim=-1, keepdim=True).clamp(min=1e-5)
    return (x * s).round().clamp(-128, 127) / s


class BitLinear(nn.Linear):
    def __init__(self, in_features, out_features, alpha_bf16=False):
        super().__init__(in_features, out_features, bias=False)
        self.alpha_bf16 = alpha_bf16
        self.prequantized = False  # True: weight already holds t*alpha (an exported model)

    def forward(self, x):
        w = self.weight
        if self.prequantized:
            wq = w
        else:
            t, alpha = ternarize(w.detach(), self.alpha_bf16)
            wq = w + (t * alpha - w).detach()
        xq = x + (act_quant(x.detach()) - x).detach()
        return F.linear(xq, wq)


def bf16_ste(w):
    return w + (w.detach().to(torch.bfloat16).float() - w.detach())


class RMSNorm(nn.Module):
    def __init__(self, dim, eps, bf16=False):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))
        self.eps = eps
        self.bf16 = bf16

    def forward(self, x):
        w = bf16_ste(self.weight) if self.bf16 else self.weight
        return w * (x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps))


def rope_cos_sin(cfg, T, device):
    D = cfg.head_dim
    inv_freq = 1.0 / (cfg.rope_theta ** (torch.arange(0, D, 2, dtype=torch.int64).float().to(device) / D))
    pos = torch.arange(T, device=device).float()
    freqs = torch.outer(pos, inv_freq)
    emb = torch.cat((freqs, freqs), dim=-1)
    return emb.cos(), emb.sin()


def rotate_half(x):
    h = x.shape[-1] // 2
    return torch.cat((-x[..., h:], x[..., :h]), dim=-1)


class Attention(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.cfg = cfg
        hd, H, KV, d = cfg.head_dim, cfg.num_attention_heads, cfg.num_key_value_heads, cfg.hidden_size
        self.q_proj = BitLinear(d, H * hd, cfg.alpha_bf16)
        self.k_proj = BitLinear(d, KV * hd, cfg.alpha_bf16)
        self.v_proj = BitLinear(d, KV * hd, cfg.alpha_bf16)
        self.o_proj = BitLinear(H * hd, d, cfg.alpha_bf16)
        self.attn_sub_norm = RMSNorm(H * hd, cfg.rms_norm_eps, cfg.bf16_weights)

    def forward(self, x, cos, sin):
        B, T, _ = x.shape
        cfg = self.cfg
        hd, H, KV = cfg.head_dim, cfg.num_attention_heads, cfg.num_key_value_heads
        q = self.q_proj(x).view(B, T, H, hd).transpose(1, 2)
        k = self.k_proj(x).view(B, T, KV, hd).transpose(1, 2)
        v = self.v_proj(x).view(B, T, KV, hd).transpose(1, 2)
        q = q * cos + rotate_half(q) * sin
        k = k * cos + rotate_half(k) * sin
        k = k.repeat_interleave(H // KV, dim=1)  # query head h uses kv head h // (H/KV)
        v = v.repeat_interleave(H // KV, dim=1)
        a = F.scaled_dot_product_attention(q, k, v, is_causal=True, scale=hd ** -0.5)
        a = a.transpose(1, 2).reshape(B, T, H * hd)
        return self.o_proj(self.attn_sub_norm(a))


class MLP(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        d, f = cfg.hidden_size, cfg.intermediate_size
        self.gate_proj = BitLinear(d, f, cfg.alpha_bf16)
        self.up_proj = BitLinear(d, f, cfg.alpha_bf16)
        self.down_proj = BitLinear(f, d, cfg.alpha_bf16)
        self.ffn_sub_norm = RMSNorm(f, cfg.rms_norm_eps, cfg.bf16_weights)

    def forward(self, x):
        return self.down_proj(self.ffn_sub_norm(F.relu(self.gate_proj(x)).square() * self.up_proj(x)))


class Layer(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.input_layernorm = RMSNorm(cfg.hidden_size, cfg.rms_norm_eps, cfg.bf16_weights)
        self.self_attn = Attention(cfg)
        self.post_attention_layernorm = RMSNorm(cfg.hidden_size, cfg.rms_norm_eps, cfg.bf16_weights)
        self.mlp = MLP(cfg)

    def forward(self, x, cos, sin):
        x = x + self.self_attn(self.input_layernorm(x), cos, sin)
        x = x + self.mlp(self.post_attention_layernorm(x))
        return x


class BitNetLM(nn.Module):
    """Parameter names follow transformers' BitNetForCausalLM under the `model.` prefix."""

    def __init__(self, cfg):
        super().__init__()
        self.cfg = cfg
        self.embed_tokens = nn.Embedding(cfg.vocab_size, cfg.hidden_size)
        self.layers = nn.ModuleList([Layer(cfg) for _ in range(cfg.num_hidden_layers)])
        self.norm = RMSNorm(cfg.hidden_size, cfg.rms_norm_eps, cfg.bf16_weights)
        self.apply(self._init)
        # Scale the residual-branch outputs down with depth (GPT-2 style).
        for n, p in self.named_parameters():
            if n.endswith("o_proj.weight") or n.endswith("down_proj.weight"):
                nn.init.normal_(p, std=0.02 / math.sqrt(2 * cfg.num_hidden_layers))

    @staticmethod
    def _init(m):
        if isinstance(m, (nn.Linear, nn.Embedding)):
            nn.init.normal_(m.weight, std=0.02)

    def forward(self, ids):
        B, T = ids.shape
        cos, sin = rope_cos_sin(self.cfg, T, ids.device)
        E = self.embed_tokens.weight
        if self.cfg.bf16_weights:
            E = bf16_ste(E)
        x = F.embedding(ids, E)
        for layer in self.layers:
            x = layer(x, cos, sin)
        return F.linear(self.norm(x), E)  # tied lm_head, not quantized

    def param_counts(self):
        emb = self.embed_tokens.weight.numel()
        tern = sum(p.numel() for n, p in self.named_parameters() if n.endswith("proj.weight"))
        other = sum(p.numel() for p in self.parameters()) - emb - tern
        return {"embedding": emb, "ternary": tern, "norms": other, "total": emb + tern + other}


def ppl_protocol(logits_fn, ids, n_ctx, bos_id, batch=8):
    """llama.cpp-style perplexity: non-overlapping n_ctx chunks (remainder dropped), first token of
    each chunk replaced by BOS, score positions j = n_ctx/2 .. n_ctx-2 predicting token j+1.
    logits_fn(LongTensor[B, n_ctx]) -> FloatTensor[B, n_ctx, V]. Returns dict with ppl, stderr."""
    ids = torch.as_tensor(ids, dtype=torch.long)
    n_chunks = len(ids) // n_ctx
    nll = []
    first = n_ctx // 2
    for c0 in range(0, n_chunks, batch):
        c1 = min(n_chunks, c0 + batch)
        x = ids[c0 * n_ctx:c1 * n_ctx].view(c1 - c0, n_ctx).clone()
        tgt = x[:, first + 1:].clone()
        x[:, 0] = bos_id
        with torch.no_grad():
            logits = logits_fn(x).float()
        lp = torch.log_softmax(logits[:, first:n_ctx - 1], dim=-1)
        nll.append(-lp.gather(-1, tgt.unsqueeze(-1)).squeeze(-1).reshape(-1).double())
    nll = torch.cat(nll)
    n = nll.numel()
    mean = nll.mean().item()
    var = (nll.pow(2).mean() - nll.mean() ** 2).item()
    stderr = math.sqrt(var / (n - 1))
    ppl = math.exp(mean)
    return {"ppl": ppl, "ppl_err": ppl * stderr, "mean_nll": mean, "nll_stderr": stderr,
            "n_chunks": n_chunks, "n_scored": n}
