"""PyTorch peer for bench/gpu_train.sh: the same Llama-style model as retort (RMSNorm, rotate-half RoPE,
grouped-query attention through scaled_dot_product_attention, SwiGLU, tied head), trained the way PyTorch
users train it on a GPU: fp32 master weights, bf16 autocast, fused AdamW, global-norm clipping. Runs eager
and, if it works, torch.compile; prints one JSON object per variant with tokens/s, peak memory and MFU
against a bf16 GEMM peak measured here.

usage: torch_gpu_train.py --dim 768 --layers 12 --heads 12 --kv-heads 12 --ffn 2048 --vocab 32768 --batch 16
                          --seq 1024 --steps 30 --warmup 5 [--variants eager,compile]"""
import argparse
import json
import math
import time

import torch
import torch.nn.functional as F


class Block(torch.nn.Module):
    def __init__(self, C, H, KVH, Fd):
        super().__init__()
        self.H, self.KVH, self.D = H, KVH, C // H
        self.attn_norm = torch.nn.Parameter(torch.ones(C))
        self.wq = torch.nn.Linear(C, H * self.D, bias=False)
        self.wk = torch.nn.Linear(C, KVH * self.D, bias=False)
        self.wv = torch.nn.Linear(C, KVH * self.D, bias=False)
        self.wo = torch.nn.Linear(H * self.D, C, bias=False)
        self.ffn_norm = torch.nn.Parameter(torch.ones(C))
        self.gate = torch.nn.Linear(C, Fd, bias=False)
        self.up = torch.nn.Linear(C, Fd, bias=False)
        self.down = torch.nn.Linear(Fd, C, bias=False)

    def forward(self, x, cos, sin):
        B, T, C = x.shape
        h = F.rms_norm(x, (C,), self.attn_norm, 1e-5)
        q = self.wq(h).view(B, T, self.H, self.D)
        k = self.wk(h).view(B, T, self.KVH, self.D)
        v = self.wv(h).view(B, T, self.KVH, self.D)
        q, k = rope(q, cos, sin), rope(k, cos, sin)
        a = F.scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2), is_causal=True,
                                           enable_gqa=self.H != self.KVH)
        x = x + self.wo(a.transpose(1, 2).reshape(B, T, C))
        h = F.rms_norm(x, (C,), self.ffn_norm, 1e-5)
        return x + self.down(F.silu(self.gate(h)) * self.up(h))


def rope(x, cos, sin):
    half = x.shape[-1] // 2
    x1, x2 = x[..., :half], x[..., half:]
    c, s = cos[None, : x.shape[1], None, :], sin[None, : x.shape[1], None, :]
    return torch.cat([x1 * c - x2 * s, x1 * s + x2 * c], dim=-1)


class Llama(torch.nn.Module):
    def __init__(self, V, C, L, H, KVH, Fd, T):
        super().__init__()
        self.embd = torch.nn.Embedding(V, C)
        self.blocks = torch.nn.ModuleList(Block(C, H, KVH, Fd) for _ in range(L))
        self.norm = torch.nn.Parameter(torch.ones(C))
        D = C // H
        freq = 10000.0 ** (-2.0 * torch.arange(D // 2, dtype=torch.float64) / D)
        ang = torch.arange(T, dtype=torch.float64)[:, None] * freq[None, :]
        self.register_buffer("cos", torch.cos(ang).float())
        self.register_buffer("sin", torch.sin(ang).float())
        for n, p in self.named_parameters():
            if p.dim() == 2:
                std = 0.02 / math.sqrt(2 * L) if n.endswith(("wo.weight", "down.weight")) else 0.02
                torch.nn.init.normal_(p, std=std)

    def forward(self, tokens):
        x = self.embd(tokens)
        for b in self.blocks:
            x = b(x, self.cos, self.sin)
        x = F.rms_norm(x, (x.shape[-1],), self.norm, 1e-5)
        return x @ self.embd.weight.T  # tied head


def gemm_peak():
    n = 8192
    a = torch.randn(n, n, device="cuda", dtype=torch.bfloat16)
    b = torch.randn(n, n, device="cuda", dtype=torch.bfloat16)
    for _ in range(3):
        a @ b
    torch.cuda.synchronize()
    best = 0.0
    for _ in range(10):
        t0 = time.perf_counter()
        a @ b
        torch.cuda.synchronize()
        best = max(best, 2 * n ** 3 / (time.perf_counter() - t0))
    return best


def run(a, variant, peak):
    torch.manual_seed(0)
    torch.cuda.reset_peak_memory_stats()
    m = Llama(a.vocab, a.dim, a.layers, a.heads, a.kv_heads, a.ffn, a.seq).cuda()
    opt = torch.optim.AdamW(m.parameters(), lr=3e-4, betas=(0.9, 0.95), weight_decay=0.1, fused=True)
    model = torch.compile(m) if variant == "compile" else m
    data = torch.randint(0, 256, (a.batch, a.seq + 1), device="cuda")

    def step():
        x, y = data[:, :-1], data[:, 1:]
        with torch.autocast("cuda", dtype=torch.bfloat16):
            logits = model(x)
        loss = F.cross_entropy(logits.float().view(-1, a.vocab), y.reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(m.parameters(), 1.0)
        opt.step()
        return loss

    for _ in range(a.warmup):
        step()
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(a.steps):
        loss = step()
    torch.cuda.synchronize()
    dt = time.perf_counter() - t0
    tps = a.steps * a.batch * a.seq / dt
    params = sum(p.numel() for p in m.parameters())
    # the same FLOP count retort uses: 6N + 12 L C T, N counting the (tied) head once
    flops_per_token = 6 * params + 12 * a.layers * a.dim * a.seq
    return {"variant": variant, "tokens_per_s": tps, "params": params, "peak_mem_mib":
            torch.cuda.max_memory_allocated() / 2 ** 20, "mfu": tps * flops_per_token / peak,
            "loss": loss.item(), "torch": torch.__version__}


def main():
    ap = argparse.ArgumentParser()
    for k, d in (("dim", 768), ("layers", 12), ("heads", 12), ("kv-heads", 12), ("ffn", 2048), ("vocab", 32768),
                 ("batch", 16), ("seq", 1024), ("steps", 30), ("warmup", 5)):
        ap.add_argument("--" + k, type=int, default=d)
    ap.add_argument("--variants", default="eager,compile")
    a = ap.parse_args()
    torch.backends.cuda.matmul.allow_tf32 = True
    peak = gemm_peak()
    print(json.dumps({"bf16_gemm_peak_tflops": peak / 1e12, "gpu": torch.cuda.get_device_name()}), flush=True)
    for variant in a.variants.split(","):
        try:
            print(json.dumps(run(a, variant, peak)), flush=True)
        except Exception as e:  # torch.compile may be unavailable; report it and go on
            print(json.dumps({"variant": variant, "error": f"{type(e).__name__}: {e}"[:500]}), flush=True)


if __name__ == "__main__":
    main()
