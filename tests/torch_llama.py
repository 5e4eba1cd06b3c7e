"""A PyTorch implementation of retort's Llama-style decoder, written independently of retort's C code from
the definition in docs/design.md (The model): the reference for the model tests and the peer in
bench/cpu_train.sh.

Weights use the GGUF llama names and [out, in] layouts, so a retort checkpoint's tensors load directly.
Options for imported architectures: a head dim D apart from C / H (q_proj [H*D, C]), Qwen2's q/k/v biases
(attn_{q,k,v}.bias, added after the projection, before RoPE), and RoPE scaling written from transformers'
definitions (modeling_rope_utils: linear, and llama3's _compute_llama3_parameters)."""
import math

import torch
import torch.nn.functional as F


def param_shapes(V, C, L, H, KVH, F_, tied, D=None, bias=False):
    D = D or C // H
    shapes = {"token_embd.weight": (V, C)}
    for l in range(L):
        p = f"blk.{l}."
        shapes[p + "attn_norm.weight"] = (C,)
        shapes[p + "attn_q.weight"] = (H * D, C)
        shapes[p + "attn_k.weight"] = (KVH * D, C)
        shapes[p + "attn_v.weight"] = (KVH * D, C)
        if bias:
            shapes[p + "attn_q.bias"] = (H * D,)
            shapes[p + "attn_k.bias"] = (KVH * D,)
            shapes[p + "attn_v.bias"] = (KVH * D,)
        shapes[p + "attn_output.weight"] = (C, H * D)
        shapes[p + "ffn_norm.weight"] = (C,)
        shapes[p + "ffn_gate.weight"] = (F_, C)
        shapes[p + "ffn_up.weight"] = (F_, C)
        shapes[p + "ffn_down.weight"] = (C, F_)
    shapes["output_norm.weight"] = (C,)
    if not tied:
        shapes["output.weight"] = (V, C)
    return shapes


def rmsnorm(x, w, eps):
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * w


def inv_freq(D, theta, scaling=None):
    """Inverse frequencies [D/2] in float64; scaling: None or a dict with "type" ("linear" or "llama3") and
    transformers' keys factor, low_freq_factor, high_freq_factor, original_max_position_embeddings."""
    f = 1.0 / theta ** (torch.arange(0, D, 2, dtype=torch.float64) / D)
    if not scaling or scaling["type"] == "none":
        return f
    factor = scaling["factor"]
    if scaling["type"] == "linear":
        return f / factor
    assert scaling["type"] == "llama3"
    low, high = scaling["low_freq_factor"], scaling["high_freq_factor"]
    old = scaling["original_max_position_embeddings"]
    wavelen = 2 * math.pi / f
    out = torch.where(wavelen > old / low, f / factor, f)
    smooth = (old / wavelen - low) / (high - low)
    smoothed = (1 - smooth) * out / factor + smooth * out
    medium = ~(wavelen < old / high) & ~(wavelen > old / low)
    return torch.where(medium, smoothed, out)


def rope_tables(T, D, theta, dtype, scaling=None):
    freq = inv_freq(D, theta, scaling)
    ang = torch.arange(T, dtype=torch.float64)[:, None] * freq[None, :]
    return torch.cos(ang).to(dtype), torch.sin(ang).to(dtype)


def rope(x, cos, sin):
    # x [B, T, H, D]; rotate-half: pairs (i, i + D/2)
    half = x.shape[-1] // 2
    x1, x2 = x[..., :half], x[..., half:]
    c = cos[None, : x.shape[1], None, :]
    s = sin[None, : x.shape[1], None, :]
    return torch.cat([x1 * c - x2 * s, x1 * s + x2 * c], dim=-1)


def attention(q, k, v, H, KVH):
    # q [B, T, H, D], k/v [B, T, KVH, D]
    B, T, _, D = q.shape
    rep = H // KVH
    k = k.repeat_interleave(rep, dim=2)
    v = v.repeat_interleave(rep, dim=2)
    q, k, v = (t.transpose(1, 2) for t in (q, k, v))  # [B, H, T, D]
    scores = q @ k.transpose(-1, -2) / math.sqrt(D)
    mask = torch.ones(T, T, dtype=torch.bool).triu(1)
    scores = scores.masked_fill(mask, float("-inf"))
    out = torch.softmax(scores, dim=-1) @ v
    return out.transpose(1, 2).reshape(B, T, H * D)


class Llama(torch.nn.Module):
    def __init__(self, V, C, L, H, KVH, F_, T_max, eps=1e-5, theta=10000.0, tied=True, dtype=torch.float32,
                 head_dim=None, bias=False, rope_scaling=None):
        super().__init__()
        self.V, self.C, self.L, self.H, self.KVH, self.F, self.eps, self.tied = V, C, L, H, KVH, F_, eps, tied
        self.D = head_dim or C // H
        self.bias = bias
        self.w = torch.nn.ParameterDict()
        for name, shape in param_shapes(V, C, L, H, KVH, F_, tied, self.D, bias).items():
            self.w[name.replace(".", "__")] = torch.nn.Parameter(torch.zeros(shape, dtype=dtype))
        cos, sin = rope_tables(T_max, self.D, theta, dtype, rope_scaling)
        self.register_buffer("cos", cos)
        self.register_buffer("sin", sin)

    def p(self, name):
        return self.w[name.replace(".", "__")]

    def named(self):
        return {k.replace("__", "."): v for k, v in self.w.items()}

    def init_normal(self, std=0.02, seed=0):
        g = torch.Generator().manual_seed(seed)
        with torch.no_grad():
            for name, t in self.named().items():
                if name.endswith(".bias"):
                    t.zero_()
                elif t.dim() == 1:
                    t.fill_(1.0)
                else:
                    s = std / math.sqrt(2 * self.L) if ("attn_output" in name or "ffn_down" in name) else std
                    t.copy_(torch.randn(t.shape, generator=g, dtype=t.dtype) * s)

    def linear(self, name, x, layer, site):
        """x @ W^T for the projection `name` (site q, k, v, o, gate, up, down or head of `layer`, -1 for the
        head): the hook LoRA references override."""
        return x @ self.p(name).T

    def qkv(self, name, h, layer, site):
        """A q/k/v projection with its bias when the model has them."""
        y = self.linear(name + ".weight", h, layer, site)
        return y + self.p(name + ".bias") if self.bias else y

    def forward(self, tokens):
        B, T = tokens.shape
        x = F.embedding(tokens, self.p("token_embd.weight"))
        for l in range(self.L):
            pre = f"blk.{l}."
            h = rmsnorm(x, self.p(pre + "attn_norm.weight"), self.eps)
            q = self.qkv(pre + "attn_q", h, l, "q").view(B, T, self.H, self.D)
            k = self.qkv(pre + "attn_k", h, l, "k").view(B, T, self.KVH, self.D)
            v = self.qkv(pre + "attn_v", h, l, "v").view(B, T, self.KVH, self.D)
            q, k = rope(q, self.cos, self.sin), rope(k, self.cos, self.sin)
            x = x + self.linear(pre + "attn_output.weight", attention(q, k, v, self.H, self.KVH), l, "o")
            h = rmsnorm(x, self.p(pre + "ffn_norm.weight"), self.eps)
            g = self.linear(pre + "ffn_gate.weight", h, l, "gate")
            u = self.linear(pre + "ffn_up.weight", h, l, "up")
            x = x + self.linear(pre + "ffn_down.weight", F.silu(g) * u, l, "down")
        x = rmsnorm(x, self.p("output_norm.weight"), self.eps)
        head = "token_embd.weight" if self.tied else "output.weight"
        return self.linear(head, x, -1, "head")  # [B, T, V]
