"""Reference values for every CPU backend operation, computed with PyTorch in float64 (autograd for the
backward passes) on random inputs of several shapes, odd sizes included. Writes OUT.h5 with one group per
case: /<op>/<i>/dims (int32), the inputs and the expected outputs. tests/test_ops.c runs retort's ops on the
same inputs and compares.

usage: ref_ops.py OUT.h5"""
import math
import sys

import h5py
import numpy as np
import torch
import torch.nn.functional as F

rng = np.random.default_rng(20261122)
torch.set_default_dtype(torch.float64)


def rnd(*shape, scale=1.0):
    return (rng.standard_normal(shape) * scale).astype(np.float32)


def t(a):
    return torch.tensor(np.asarray(a, dtype=np.float64), requires_grad=True)


def put(f, op, i, dims, **arrays):
    g = f.create_group(f"{op}/{i}")
    g["dims"] = np.asarray(dims, dtype=np.int32)
    for k, v in arrays.items():
        v = np.asarray(v.detach().numpy() if isinstance(v, torch.Tensor) else v)
        g[k] = v.astype(np.int32 if v.dtype.kind in "iu" else np.float32)


def matmul_cases(f):
    i = 0
    for M, N, K in ((1, 1, 1), (7, 5, 3), (33, 17, 65), (64, 48, 130)):
        for ta in (0, 1):
            for tb in (0, 1):
                for beta in (0, 1):
                    a = rnd(K, M) if ta else rnd(M, K)
                    b = rnd(N, K) if tb else rnd(K, N)
                    c0 = rnd(M, N)
                    A = torch.tensor(a, dtype=torch.float64)
                    Bm = torch.tensor(b, dtype=torch.float64)
                    out = 0.7 * ((A.T if ta else A) @ (Bm.T if tb else Bm)) + beta * torch.tensor(c0, dtype=torch.float64)
                    put(f, "matmul", i, [M, N, K, ta, tb, beta], a=a, b=b, c0=c0, out=out)
                    i += 1


def embedding_cases(f):
    for i, (N, C, V) in enumerate(((1, 5, 3), (7, 48, 11), (33, 130, 259), (64, 64, 7))):
        tokens = rng.integers(0, V, N).astype(np.int32)
        table, dout, prefill = rnd(V, C), rnd(N, C), rnd(V, C)
        T = t(table)
        out = F.embedding(torch.tensor(tokens, dtype=torch.long), T)
        (out * torch.tensor(dout, dtype=torch.float64)).sum().backward()
        put(f, "embedding", i, [N, C, V], tokens=tokens, table=table, dout=dout, prefill=prefill, out=out,
            dtable=T.grad.numpy() + prefill)


def rmsnorm_cases(f):
    eps = 1e-5
    for i, (N, C) in enumerate(((1, 5), (7, 48), (33, 130), (3, 1))):
        x, w, dout = rnd(N, C), rnd(C) * 0.5 + 1.0, rnd(N, C)
        pdx, pdw = rnd(N, C), rnd(C)
        X, W = t(x), t(w)
        rstd = torch.rsqrt(X.pow(2).mean(-1) + eps)
        out = X * rstd[:, None] * W
        (out * torch.tensor(dout, dtype=torch.float64)).sum().backward()
        put(f, "rmsnorm", i, [N, C], x=x, w=w, dout=dout, pdx=pdx, pdw=pdw, out=out, rstd=rstd,
            dx=X.grad.numpy() + pdx, dw=W.grad.numpy() + pdw)


def rope_tables(T, D, theta=10000.0):
    i = np.arange(D // 2, dtype=np.float64)
    ang = np.arange(T, dtype=np.float64)[:, None] * theta ** (-2.0 * i / D)[None, :]
    return np.cos(ang).astype(np.float32), np.sin(ang).astype(np.float32)


def rope_ref(X, cos, sin):
    half = X.shape[-1] // 2
    c = torch.tensor(cos[: X.shape[1]], dtype=torch.float64)[None, :, None, :]
    s = torch.tensor(sin[: X.shape[1]], dtype=torch.float64)[None, :, None, :]
    x1, x2 = X[..., :half], X[..., half:]
    return torch.cat([x1 * c - x2 * s, x1 * s + x2 * c], -1)


def rope_cases(f):
    for i, (B, T, H, D) in enumerate(((1, 1, 1, 2), (2, 5, 3, 8), (3, 17, 4, 16), (1, 40, 2, 6))):
        cos, sin = rope_tables(T + 3, D)
        x, dout = rnd(B, T, H, D), rnd(B, T, H, D)
        X = t(x)
        out = rope_ref(X, cos, sin)
        (out * torch.tensor(dout, dtype=torch.float64)).sum().backward()
        put(f, "rope", i, [B, T, H, D], cos=cos, sin=sin, x=x, dout=dout, out=out, dx=X.grad)


def attention_cases(f):
    shapes = ((1, 1, 1, 1, 2), (2, 5, 4, 2, 8), (1, 17, 6, 3, 16), (3, 33, 4, 4, 8), (1, 7, 2, 1, 6))
    for i, (B, T, H, KVH, D) in enumerate(shapes):
        q, k, v, dout = rnd(B, T, H, D), rnd(B, T, KVH, D), rnd(B, T, KVH, D), rnd(B, T, H, D)
        Q, K, V = t(q), t(k), t(v)
        rep = H // KVH
        Kr, Vr = K.repeat_interleave(rep, 2).transpose(1, 2), V.repeat_interleave(rep, 2).transpose(1, 2)
        s = Q.transpose(1, 2) @ Kr.transpose(-1, -2) / math.sqrt(D)
        s = s.masked_fill(torch.ones(T, T, dtype=torch.bool).triu(1), float("-inf"))
        lse = torch.logsumexp(s, -1)  # [B, H, T]
        out = (torch.softmax(s, -1) @ Vr).transpose(1, 2)  # [B, T, H, D]
        (out * torch.tensor(dout, dtype=torch.float64)).sum().backward()
        put(f, "attention", i, [B, T, H, KVH, D], q=q, k=k, v=v, dout=dout, out=out, lse=lse, dq=Q.grad,
            dk=K.grad, dv=V.grad)


def swiglu_cases(f):
    for i, n in enumerate((1, 7, 130, 4099)):
        g, u, dout = rnd(n, scale=3.0), rnd(n), rnd(n)
        G, U = t(g), t(u)
        out = F.silu(G) * U
        (out * torch.tensor(dout, dtype=torch.float64)).sum().backward()
        put(f, "swiglu", i, [n], gate=g, up=u, dout=dout, out=out, dgate=G.grad, dup=U.grad)


def cross_entropy_cases(f):
    for i, (N, V) in enumerate(((1, 7), (7, 259), (33, 301), (5, 2))):
        logits = rnd(N, V, scale=3.0)
        targets = rng.integers(0, V, N).astype(np.int32)
        if N > 2:
            targets[::3] = -1  # ignored positions
        scale = 1.0 / max(1, int((targets >= 0).sum()))
        L = t(logits)
        tg = torch.tensor(targets, dtype=torch.long)
        losses = F.cross_entropy(L, tg, ignore_index=-1, reduction="none")
        (losses.sum() * scale).backward()
        put(f, "cross_entropy", i, [N, V], logits=logits, targets=targets, scale=np.float32([scale]), losses=losses,
            dlogits=L.grad)


def adamw_cases(f):
    for i, n in enumerate((1, 33, 5000)):
        w = rnd(n)
        grads = rnd(3, n)
        lr, b1, b2, eps, wd, gs = 1e-2, 0.9, 0.95, 1e-8, 0.1, 0.5
        W = w.astype(np.float64)
        m = np.zeros(n)
        v = np.zeros(n)
        for s in range(1, 4):  # the documented update, written out independently in float64
            g = grads[s - 1].astype(np.float64) * gs
            m = b1 * m + (1 - b1) * g
            v = b2 * v + (1 - b2) * g * g
            W = W - lr * ((m / (1 - b1 ** s)) / (np.sqrt(v / (1 - b2 ** s)) + eps) + wd * W)
        # and torch.optim.AdamW must agree with it
        P = torch.nn.Parameter(torch.tensor(w, dtype=torch.float64))
        opt = torch.optim.AdamW([P], lr=lr, betas=(b1, b2), eps=eps, weight_decay=wd)
        for s in range(3):
            P.grad = torch.tensor(grads[s], dtype=torch.float64) * gs
            opt.step()
        assert np.allclose(P.detach().numpy(), W, atol=1e-9), "documented AdamW update disagrees with torch"
        put(f, "adamw", i, [n], w=w, grads=grads, params=np.float32([lr, b1, b2, eps, wd, gs]), w_out=W, m=m, v=v)


def reduce_cases(f):
    for i, n in enumerate((1, 7, 100003)):
        x = rnd(n)
        put(f, "reduce", i, [n], x=x, sum_sq=np.float64([(x.astype(np.float64) ** 2).sum()]),
            sum=np.float64([x.astype(np.float64).sum()]))


def main():
    with h5py.File(sys.argv[1], "w") as f:
        for fn in (matmul_cases, embedding_cases, rmsnorm_cases, rope_cases, attention_cases, swiglu_cases,
                   cross_entropy_cases, adamw_cases, reduce_cases):
            fn(f)
    print(f"wrote {sys.argv[1]}")


if __name__ == "__main__":
    main()
