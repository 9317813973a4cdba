"""engine_ref.py: a readable numpy model of trit's numerics contract (docs/design.md section 3).

This is the second, independent implementation used to measure how far an engine that follows the
contract may sit from the transformers fp32 references in tests/data/fixtures/. It does not import
torch or transformers: it reads the HF folder (config.json + model.safetensors) with its own
safetensors parser and runs the forward pass in numpy float32, with

  * weights: packed uint8 [out/4, in] (HF layout: bit pair i holds rows [i*P, (i+1)*P), code = t + 1)
    with a per-tensor weight_scale that MULTIPLIES (AutoBitLinear, linear_class "autobitlinear")
    or DIVIDES (BitLinear, the default linear_class); or full-precision latent weights
    (quantization_mode "online") ternarized once at load: alpha = max(mean|W|, 1e-5) with the sum
    in double, t = clamp(rint(W / alpha), -1, 1) -- as host/quant/ternarize.c does;
  * activations: per token, s = 127 / max(max|x|, 1e-5) (fp32 IEEE divide),
    q = clamp(rint(x * s), -128, 127), half-to-even;
  * integer core: acc = sum_k t[n,k] q[k] in exact integers (int32);
  * epilogue: y = (float)acc / s * alpha (multiply style) or (float)acc / (s * ws) (divide style);
  * everything else (RMSNorm, RoPE, softmax, SiLU / ReLU^2, residuals, LM head) in fp32.

Group-scaled ternary models (model_type "qwen3": Ternary-Bonsai, llama.cpp Q2_0; host/quant/quant.h):

  * weights: float tensors (F16/BF16/F32) that hold t * d exactly, with one d per row and group of G
    consecutive columns (G = 128 tried first, then 64, as host/model/model_hf.c does); t in
    {-1, 0, +1} (+2 legal: Q2_0's fourth code);
  * activations: each block of 64 values of a row is quantized on its own,
    s_j = 127 / max(max|x_block|, 1e-5), q = clamp(rint(x * s_j), -128, 127);
  * group rule: per k-block j of 64 columns, ascending, isum_j = exact int32 sum of t * q over the
    block, and y = sum_j ((float)isum_j * (1.0f / s_j)) * d[n, 64 j / G], summed from 0.0f in j
    order (the reciprocal once per token and block, an IEEE division);
  * the Qwen3 graph: RMSNorm of every q and k head (q_norm / k_norm, head_dim weights) after the
    projections and before NeoX RoPE; SiLU gated FFN; no sub-norms; tied or untied head.

Usage:  python engine_ref.py FOLDER [ids...]    prints the top-1 token per position.
"""
import json
import math
import os
import struct
import sys

import numpy as np

F32 = np.float32

# ---- safetensors ----------------------------------------------------------------------------------

_DT = {"F32": np.float32, "F16": np.float16, "U8": np.uint8, "I8": np.int8, "I32": np.int32,
       "I64": np.int64, "BF16": np.uint16}


def read_safetensors(path):
    """Returns {name: np.ndarray}; BF16 becomes float32 (exact), F16 becomes float32 (exact)."""
    with open(path, "rb") as f:
        data = f.read()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + n])
    base = 8 + n
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        b, e = info["data_offsets"]
        dt = info["dtype"]
        a = np.frombuffer(data[base + b:base + e], dtype=np.dtype(_DT[dt]).newbyteorder("<"))
        a = a.reshape(info["shape"])
        if dt == "BF16":
            a = (a.astype(np.uint32) << 16).view(np.float32)
        elif dt == "F16":
            a = a.astype(np.float32)
        out[name] = a
    return out


def unpack_hf(packed, out_features):
    """uint8 [out/4, in] -> int8 ternary [out, in]; byte (p, k) carries rows p, p+P, p+2P, p+3P."""
    P = packed.shape[0]
    assert P * 4 == out_features, (packed.shape, out_features)
    rows = [((packed >> (2 * i)) & 3).astype(np.int8) for i in range(4)]
    codes = np.concatenate(rows, axis=0)
    assert not (codes == 3).any(), "code 3 in a packed ternary tensor"
    return codes - 1


# ---- the numerics contract ------------------------------------------------------------------------

def absmean(w):
    """alpha = max(mean|W|, 1e-5): sum in double, rounded once to fp32 (ternarize.c)."""
    return F32(max(F32(np.abs(w.astype(np.float64)).sum() / w.size), F32(1e-5)))


def ternarize(w):
    alpha = absmean(w)
    t = np.clip(np.rint(w.astype(F32) / alpha), -1, 1).astype(np.int8)
    return t, alpha


def quantize_act(x):
    """x: fp32 [T, K] -> (q int8 [T, K], s fp32 [T])."""
    x = x.astype(F32, copy=False)
    amax = np.abs(x).max(axis=-1)
    s = (F32(127.0) / np.maximum(amax, F32(1e-5))).astype(F32)
    q = np.clip(np.rint(x * s[:, None]), -128, 127).astype(np.int8)
    return q, s


ACT_BLOCK = 64      # TRIT_GROUP_UNIT: the k-block of the group rule and of block activation quantization


def quantize_act_blocks(x, block):
    """x: fp32 [T, K] -> (q int8 [T, K], s fp32 [T, ceil(K / block)]): each block of `block` values
    of a row quantized on its own (the last block may be shorter). block = 0: one scale per row."""
    x = x.astype(F32, copy=False)
    if not block:
        q, s = quantize_act(x)
        return q, s[:, None]
    T, K = x.shape
    nb = -(-K // block)
    q = np.empty((T, K), dtype=np.int8)
    s = np.empty((T, nb), dtype=F32)
    for j in range(nb):
        q[:, j * block:(j + 1) * block], s[:, j] = quantize_act(x[:, j * block:(j + 1) * block])
    return q, s


def group_ternary(w, group, allow_pos2=True):
    """Recovers (t int8 [N, K], d fp32 [N, ceil(K / group)]) from a float tensor that is exactly
    t * d per row and group of `group` columns (d = the smallest nonzero |w| of the group; every other
    nonzero |w| must equal d, or 2d for a positive weight when allow_pos2). None when it is not."""
    w = w.astype(F32, copy=False)
    N, K = w.shape
    ng = -(-K // group)
    pad = np.zeros((N, ng * group), dtype=F32)
    pad[:, :K] = w
    g = pad.reshape(N, ng, group)
    a = np.abs(g)
    d = np.where(a > 0, a, np.inf).min(axis=-1)                          # [N, ng]
    d = np.where(np.isinf(d), F32(1.0), d).astype(F32)
    one = (a == d[..., None]) & (a > 0)
    two = allow_pos2 & (g == F32(2) * d[..., None]) & (g > 0)
    if not ((a == 0) | one | two).all():
        return None
    t = np.where(one, np.sign(g), np.where(two, 2, 0)).astype(np.int8).reshape(N, ng * group)[:, :K]
    return t, d


def int_matmul(q, t):
    """Exact int32 accumulators acc[T, N] = sum_k q[T, k] t[N, k]."""
    acc = q.astype(np.int64) @ t.astype(np.int64).T
    assert np.abs(acc).max(initial=0) < 2**31
    return acc.astype(np.int32)


class TernaryLinear:
    def __init__(self, t, scale, kind):
        assert kind in ("mul", "div")
        self.t, self.scale, self.kind = t, F32(scale), kind

    def codes(self, x):
        q, s = quantize_act(x)
        return q, s, int_matmul(q, self.t)

    def __call__(self, x):
        _, s, acc = self.codes(x)          # the codes always come from the fp32 view of x
        a = acc.astype(F32)
        if self.kind == "mul":
            y = (a / s[:, None]) * self.scale
        else:
            y = a / (s[:, None] * self.scale)
        return y.astype(x.dtype, copy=False)


class GroupTernaryLinear:
    """A group-scaled ternary matrix: t [N, K], d [N, ceil(K / group)], activations per act_block."""

    def __init__(self, t, d, group, act_block=ACT_BLOCK):
        assert group % ACT_BLOCK == 0 and act_block == ACT_BLOCK
        self.t, self.d, self.group, self.act_block = t, d.astype(F32), group, act_block

    def codes(self, x):
        """(q [T, K], s [T, n_blocks], isum [T, N, n_blocks]) from the fp32 view of x."""
        q, s = quantize_act_blocks(x, self.act_block)
        K = self.t.shape[1]
        isum = np.stack([int_matmul(q[:, c:c + ACT_BLOCK], self.t[:, c:c + ACT_BLOCK])
                         for c in range(0, K, ACT_BLOCK)], axis=-1)
        return q, s, isum

    def __call__(self, x):
        _, s, isum = self.codes(x)
        T, N, nb = isum.shape
        y = np.zeros((T, N), dtype=F32)
        inv = (F32(1.0) / s).astype(F32)                 # [T, n_blocks]
        for j in range(nb):                              # ascending blocks, one fp32 op at a time
            dj = self.d[:, (j * ACT_BLOCK) // self.group]                 # [N]
            y = y + (isum[:, :, j].astype(F32) * inv[:, j:j + 1]) * dj[None, :]
        return y.astype(x.dtype, copy=False)


class FloatLinear:
    """The same weights with float activations (what transformers computes for a Qwen3 model): used
    only to check engine_ref's graph against transformers apart from the activation quantization."""

    def __init__(self, w):
        self.w = w.astype(F32)

    def __call__(self, x):
        return (x @ self.w.astype(x.dtype).T).astype(x.dtype, copy=False)


def rmsnorm(x, w, eps):
    ms = (x * x).mean(axis=-1, dtype=x.dtype, keepdims=True)
    return (x * (x.dtype.type(1.0) / np.sqrt(ms + x.dtype.type(eps)))) * w


def silu(x):
    return x / (x.dtype.type(1.0) + np.exp(-x))


def relu2(x):
    r = np.maximum(x, x.dtype.type(0.0))
    return r * r


def rope_tables(n_pos, head_dim, theta, dt=F32):
    """NeoX (rotate-half) tables [n_pos, head_dim/2]: angle = pos * theta^(-2i/D), in dt."""
    inv = (1.0 / (theta ** (np.arange(0, head_dim, 2, dtype=np.float64) / head_dim))).astype(dt)
    ang = np.arange(n_pos, dtype=dt)[:, None] * inv[None, :]
    return np.cos(ang.astype(np.float64)).astype(dt), np.sin(ang.astype(np.float64)).astype(dt)


def apply_rope(x, cos, sin):
    """x [T, H, D]; rotate-half: (x1, x2) -> (x1 c - x2 s, x2 c + x1 s)."""
    h = x.shape[-1] // 2
    x1, x2 = x[..., :h], x[..., h:]
    c, s = cos[:, None, :], sin[:, None, :]
    return np.concatenate([x1 * c - x2 * s, x2 * c + x1 * s], axis=-1)


def attention(q, k, v, n_kv):
    """Causal GQA, q [T, H, D], k/v [T, Hkv, D]; query head h reads kv head h // (H / Hkv)."""
    T, H, D = q.shape
    g = H // n_kv
    scale = q.dtype.type(D ** -0.5)
    out = np.empty_like(q)
    for h in range(H):
        kh, vh = k[:, h // g, :], v[:, h // g, :]
        sc = (q[:, h, :] @ kh.T) * scale                       # [T, T]
        sc = np.where(np.tril(np.ones((T, T), dtype=bool)), sc, -np.inf).astype(q.dtype)
        m = sc.max(axis=-1, keepdims=True)
        e = np.exp(sc - m)
        p = e / e.sum(axis=-1, keepdims=True, dtype=q.dtype)
        out[:, h, :] = p @ vh
    return out


# ---- model ----------------------------------------------------------------------------------------

class Model:
    """dtype: np.float32 is the contract. np.float64 runs everything outside the ternary linears in
    double (codes still from the fp32 view of each input, epilogue in fp32): a second valid engine,
    closer to exact arithmetic, used to measure how far legitimate implementations may spread."""

    def __init__(self, folder, dtype=F32, float_acts=False):
        """float_acts (group-scaled models only): linears in float, no activation quantization."""
        self.dt = np.dtype(dtype)
        with open(os.path.join(folder, "config.json")) as f:
            cfg = json.load(f)
        self.cfg = cfg
        W = read_safetensors(os.path.join(folder, "model.safetensors"))
        qc = cfg.get("quantization_config") or {}
        self.qwen3 = cfg["model_type"] == "qwen3"
        assert self.qwen3 or qc.get("quant_method") == "bitnet", qc
        self.sub_norms = cfg["model_type"] == "bitnet"
        self.act_block = ACT_BLOCK if self.qwen3 else 0
        self.groups = {}
        self.act = {"relu2": relu2, "silu": silu}[cfg["hidden_act"]]
        self.eps = cfg["rms_norm_eps"]
        self.H = cfg["num_attention_heads"]
        self.Hkv = cfg.get("num_key_value_heads") or self.H
        self.D = cfg.get("head_dim") or cfg["hidden_size"] // self.H
        rp = cfg.get("rope_parameters") or {}
        self.theta = float(cfg.get("rope_theta", rp.get("rope_theta", 10000.0)))
        linear_class = qc.get("linear_class", "bitlinear")
        online = linear_class == "autobitlinear" and qc.get("quantization_mode", "offline") == "online"
        self.linear_class, self.online = linear_class, online

        def lin(prefix, out_features):
            w = W[prefix + ".weight"]
            if self.qwen3:                   # group-scaled float weights: G = 128, else 64
                if float_acts:
                    return FloatLinear(w)
                for g in (128, 64):
                    r = group_ternary(w, g)
                    if r is not None:
                        self.groups[prefix] = g
                        return GroupTernaryLinear(r[0], r[1], g)
                raise ValueError(f"{prefix}: not group-ternary in groups of 128 or 64")
            if online:                       # latent weights, ternarized once at load
                t, alpha = ternarize(w)
                return TernaryLinear(t, alpha, "mul")
            t = unpack_hf(w, out_features)
            ws = W[prefix + ".weight_scale"].reshape(-1)
            assert ws.size == 1
            return TernaryLinear(t, ws[0], "mul" if linear_class == "autobitlinear" else "div")

        hid, inter = cfg["hidden_size"], cfg["intermediate_size"]
        self.embed = W["model.embed_tokens.weight"]
        self.head = self.embed if cfg.get("tie_word_embeddings") else W["lm_head.weight"]
        self.norm = W["model.norm.weight"]
        self.layers = []
        for i in range(cfg["num_hidden_layers"]):
            p = f"model.layers.{i}."
            L = {
                "in_norm": W[p + "input_layernorm.weight"],
                "post_norm": W[p + "post_attention_layernorm.weight"],
                "q": lin(p + "self_attn.q_proj", self.H * self.D),
                "k": lin(p + "self_attn.k_proj", self.Hkv * self.D),
                "v": lin(p + "self_attn.v_proj", self.Hkv * self.D),
                "o": lin(p + "self_attn.o_proj", hid),
                "gate": lin(p + "mlp.gate_proj", inter),
                "up": lin(p + "mlp.up_proj", inter),
                "down": lin(p + "mlp.down_proj", hid),
            }
            if self.qwen3:
                L["q_norm"] = W[p + "self_attn.q_norm.weight"]
                L["k_norm"] = W[p + "self_attn.k_norm.weight"]
            if self.sub_norms:
                L["attn_sub_norm"] = W[p + "self_attn.attn_sub_norm.weight"]
                L["ffn_sub_norm"] = W[p + "mlp.ffn_sub_norm.weight"]
            self.layers.append(L)

    def layer(self, li, h, cos, sin):
        """One decoder layer on the residual stream h [T, hidden] (positions 0..T-1)."""
        L, T = self.layers[li], h.shape[0]
        x = rmsnorm(h, L["in_norm"], self.eps)
        q = L["q"](x).reshape(T, self.H, self.D)
        k = L["k"](x).reshape(T, self.Hkv, self.D)
        if self.qwen3:                       # per-head RMSNorm of q and k, before RoPE
            q, k = rmsnorm(q, L["q_norm"], self.eps), rmsnorm(k, L["k_norm"], self.eps)
        q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)
        v = L["v"](x).reshape(T, self.Hkv, self.D)
        a = attention(q, k, v, self.Hkv).reshape(T, self.H * self.D)
        if self.sub_norms:
            a = rmsnorm(a, L["attn_sub_norm"], self.eps)
        h = h + L["o"](a)
        x = rmsnorm(h, L["post_norm"], self.eps)
        m = self.act(L["gate"](x)) * L["up"](x)
        if self.sub_norms:
            m = rmsnorm(m, L["ffn_sub_norm"], self.eps)
        return h + L["down"](m)

    def head_logits(self, h):
        """Final RMSNorm and the (never ternary) LM head: fp32 logits [T, vocab]."""
        return (rmsnorm(h, self.norm, self.eps) @ self.head.T).astype(F32)

    def forward(self, ids, hidden=None):
        """Teacher-forced forward of ids (positions 0..T-1); returns fp32 logits [T, vocab].
        If hidden is a list, the residual stream before each layer and after the last is appended."""
        T = len(ids)
        h = self.embed[np.asarray(ids)].astype(self.dt)
        cos, sin = rope_tables(T, self.D, self.theta, self.dt)
        for li in range(len(self.layers)):
            if hidden is not None:
                hidden.append(h)
            h = self.layer(li, h, cos, sin)
        if hidden is not None:
            hidden.append(h)
        return self.head_logits(h)

    def greedy(self, prompt, n_new):
        ids = list(prompt)
        for _ in range(n_new):
            ids.append(int(np.argmax(self.forward(ids)[-1])))
        return ids[len(prompt):]


def top2_margin(logits):
    s = np.sort(logits, axis=-1)
    return s[..., -1] - s[..., -2]


if __name__ == "__main__":
    m = Model(sys.argv[1])
    ids = [int(a) for a in sys.argv[2:]] or json.load(open(os.path.join(sys.argv[1], "ids.json")))["ids"]
    lg = m.forward(ids)
    print(" ".join(str(int(i)) for i in lg.argmax(-1)))
