#!/usr/bin/env python3
"""Reference outputs for every CPU backend op, computed with PyTorch in float64.

Usage: ref_ops.py OUT.h5

Random fp32 inputs (fixed numpy seed) on several shapes, odd sizes included, and the expected forward and
backward outputs (backward through autograd, never through formulas copied from the C code) go into one HDF5
file that tests/test_ops.c reads. Layout: /<op>/<case>/{dims, scalars, <tensors>}, root attribute n_<op> =
number of cases. dims is int32 (shape parameters), scalars fp32 (alpha, eps, ...), as documented per op below.
"""
import os
import sys

import h5py
import numpy as np
import torch

torch.set_default_dtype(torch.float64)
rng = np.random.RandomState(20240611)


def f32(shape, lo=-1.0, hi=1.0):
    return rng.uniform(lo, hi, size=shape).astype(np.float32)


def t64(a, grad=False):
    return torch.tensor(np.asarray(a, dtype=np.float64), requires_grad=grad)


def np64(t):
    return t.detach().numpy().astype(np.float64)


class Writer:
    def __init__(self, path):
        self.f = h5py.File(path, "w")
        self.counts = {}

    def case(self, op, dims, scalars=(), **tensors):
        i = self.counts.get(op, 0)
        self.counts[op] = i + 1
        g = self.f.create_group(f"{op}/{i}")
        g["dims"] = np.asarray(dims, dtype=np.int32)
        g["scalars"] = np.asarray(list(scalars) + [0.0], dtype=np.float32)  # never empty
        for k, v in tensors.items():
            v = np.asarray(v)
            if v.dtype.kind in "iu":
                g[k] = v.astype(np.int32).reshape(-1)
            elif v.dtype == np.float32:
                g[k] = v.reshape(-1)
            else:
                g[k] = v.astype(np.float64).reshape(-1)

    def close(self):
        for op, n in self.counts.items():
            self.f.attrs[f"n_{op}"] = np.int64(n)
        self.f.close()


# dims = [M, N, K, trans_a, trans_b]; scalars = [alpha]; a, b as stored; c0 prefill;
# out0 = alpha op(a) op(b) (beta 0), out1 = out0 + c0 (beta 1)
def matmul(w):
    for M, N, K in [(1, 1, 1), (7, 5, 33), (33, 130, 48), (17, 7, 259), (64, 96, 80)]:
        for ta in (0, 1):
            for tb in (0, 1):
                a = f32((K, M) if ta else (M, K))
                b = f32((N, K) if tb else (K, N))
                c0 = f32((M, N))
                alpha = np.float32(0.75)
                opa = t64(a).T if ta else t64(a)
                opb = t64(b).T if tb else t64(b)
                out0 = float(alpha) * (opa @ opb)
                w.case("matmul", [M, N, K, ta, tb], [alpha], a=a, b=b, c0=c0, out0=np64(out0),
                       out1=np64(out0) + c0.astype(np.float64))


# dims = [n]; out = a + b
def add(w):
    for n in [1, 7, 33, 100003]:
        a, b = f32(n), f32(n)
        w.case("add", [n], a=a, b=b, out=a.astype(np.float64) + b.astype(np.float64))


# Each op gets at least one case big enough to run on several threads (backend cpu_threads()).

# dims = [N, C, V]; tokens [N]; table [V, C]; dout [N, C]; dtable0 prefill [V, C];
# out [N, C]; dtable = dtable0 + d(sum(out * dout))/dtable
def embedding(w):
    for N, C, V in [(1, 5, 7), (7, 48, 7), (33, 130, 259), (600, 33, 301)]:
        tokens = rng.randint(0, V, size=N).astype(np.int32)
        if N > 3:
            tokens[1] = tokens[3] = tokens[0]  # repeated rows must add up
        table = f32((V, C))
        dout = f32((N, C))
        dtable0 = f32((V, C))
        tt = t64(table, True)
        out = torch.nn.functional.embedding(torch.tensor(tokens, dtype=torch.long), tt)
        (out * t64(dout)).sum().backward()
        w.case("embedding", [N, C, V], tokens=tokens, table=table, dout=dout, dtable0=dtable0, out=np64(out),
               dtable=np64(tt.grad) + dtable0)


# dims = [N, C]; scalars = [eps]; x [N, C]; weight [C]; dout [N, C]; dx0 [N, C], dw0 [C] prefills;
# out, rstd [N]; dx = dx0 + grad, dw = dw0 + grad
def rmsnorm(w):
    eps = np.float32(1e-5)
    for N, C in [(1, 5), (7, 48), (33, 130), (300, 64)]:
        x = f32((N, C), -2, 2)
        weight = f32(C, 0.5, 1.5)
        dout, dx0, dw0 = f32((N, C)), f32((N, C)), f32(C)
        xt, wt = t64(x, True), t64(weight, True)
        rstd = torch.rsqrt((xt * xt).mean(-1, keepdim=True) + float(eps))
        out = xt * rstd * wt
        (out * t64(dout)).sum().backward()
        w.case("rmsnorm", [N, C], [eps], x=x, weight=weight, dout=dout, dx0=dx0, dw0=dw0, out=np64(out),
               rstd=np64(rstd).reshape(-1), dx=np64(xt.grad) + dx0, dw=np64(wt.grad) + dw0)


def rope_tables(T_max, D, theta=10000.0):
    i = np.arange(D // 2, dtype=np.float64)
    ang = np.arange(T_max, dtype=np.float64)[:, None] * theta ** (-2.0 * i / D)[None, :]
    return np.cos(ang).astype(np.float32), np.sin(ang).astype(np.float32)


def rope_ref(x, cos, sin):
    # x [B, T, H, D]; cos/sin [T, D/2]: rotate-half, pair (i, i + D/2)
    half = x.shape[-1] // 2
    c = cos[None, :, None, :]
    s = sin[None, :, None, :]
    x1, x2 = x[..., :half], x[..., half:]
    return torch.cat([x1 * c - x2 * s, x1 * s + x2 * c], dim=-1)


# dims = [B, T, H, D, T_max]; x [B,T,H,D]; cos/sin [T_max, D/2]; dout [B,T,H,D];
# out = rope(x); dx = d(sum(out * dout))/dx
def rope(w):
    for B, T, H, D in [(1, 1, 1, 2), (2, 5, 4, 8), (3, 17, 6, 16), (2, 17, 3, 8), (4, 40, 8, 16)]:
        T_max = T + 3
        cos, sin = rope_tables(T_max, D)
        x, dout = f32((B, T, H, D)), f32((B, T, H, D))
        xt = t64(x, True)
        out = rope_ref(xt, t64(cos[:T]), t64(sin[:T]))
        (out * t64(dout)).sum().backward()
        w.case("rope", [B, T, H, D, T_max], x=x, cos=cos, sin=sin, dout=dout, out=np64(out), dx=np64(xt.grad))


# dims = [B, T, H, KVH, D]; q [B,T,H,D]; k, v [B,T,KVH,D]; dout [B,T,H,D];
# out [B,T,H,D]; lse [B,H,T]; dq, dk, dv = grads of sum(out * dout)
def attention(w):
    for B, T, H, KVH, D in [(1, 1, 1, 1, 2), (2, 5, 4, 2, 8), (2, 17, 6, 3, 16), (1, 33, 4, 1, 8),
                            (2, 7, 1, 1, 16), (1, 150, 4, 2, 8)]:
        q = f32((B, T, H, D), -2, 2)
        k = f32((B, T, KVH, D), -2, 2)
        v = f32((B, T, KVH, D))
        dout = f32((B, T, H, D))
        qt, kt, vt = t64(q, True), t64(k, True), t64(v, True)
        g = H // KVH
        qh = qt.permute(0, 2, 1, 3)  # [B, H, T, D]
        kh = kt.permute(0, 2, 1, 3).repeat_interleave(g, dim=1)
        vh = vt.permute(0, 2, 1, 3).repeat_interleave(g, dim=1)
        s = qh @ kh.transpose(-1, -2) / np.sqrt(D)
        mask = torch.triu(torch.ones(T, T, dtype=torch.bool), diagonal=1)
        s = s.masked_fill(mask, float("-inf"))
        lse = torch.logsumexp(s, dim=-1)  # [B, H, T]
        out = (torch.softmax(s, dim=-1) @ vh).permute(0, 2, 1, 3)  # [B, T, H, D]
        (out * t64(dout)).sum().backward()
        w.case("attention", [B, T, H, KVH, D], q=q, k=k, v=v, dout=dout, out=np64(out), lse=np64(lse),
               dq=np64(qt.grad), dk=np64(kt.grad), dv=np64(vt.grad))


# dims = [n]; gate, up, dout [n]; out; dgate, dup
def swiglu(w):
    for n in [1, 7, 33, 1000, 20001]:
        gate, up, dout = f32(n, -6, 6), f32(n, -2, 2), f32(n)
        gt, ut = t64(gate, True), t64(up, True)
        out = torch.nn.functional.silu(gt) * ut
        (out * t64(dout)).sum().backward()
        w.case("swiglu", [n], gate=gate, up=up, dout=dout, out=np64(out), dgate=np64(gt.grad),
               dup=np64(ut.grad))


# dims = [N, V]; scalars = [grad_scale]; logits [N, V]; targets [N] (-1 ignored);
# losses [N]; dlogits = grad_scale * d(sum(losses))/dlogits
def cross_entropy(w):
    for N, V, spread in [(1, 7, 1.0), (5, 7, 3.0), (7, 259, 1.0), (70, 301, 30.0)]:
        logits = f32((N, V), -spread, spread)
        if N > 1:
            logits[0, 0] = 80.0  # far beyond exp's fp32 range without the max subtraction
        targets = rng.randint(0, V, size=N).astype(np.int32)
        if N > 2:
            targets[1] = -1
            targets[N - 1] = -1
        scale = np.float32(0.37)
        lt = t64(logits, True)
        tt = torch.tensor(targets, dtype=torch.long)
        losses = torch.nn.functional.cross_entropy(lt, tt, ignore_index=-1, reduction="none")
        (losses.sum() * float(scale)).backward()
        w.case("cross_entropy", [N, V], [scale], logits=logits, targets=targets, losses=np64(losses),
               dlogits=np64(lt.grad))


KD_FKL, KD_RKL, KD_JSD = 0, 1, 2
KD_BUCKET, KD_RENORM = 0, 1


def kd_divergence(div, beta, r, lr, q, lq):
    """D(r || q) over the last axis from probabilities and log-probabilities, 0 log 0 = 0."""
    def xlogy(w, a, b):
        return torch.where(w > 0, w * (a - b), torch.zeros_like(w)).sum(-1)
    if div == KD_FKL:
        return xlogy(r, lr, lq)
    if div == KD_RKL:
        return xlogy(q, lq, lr)
    lm = torch.logaddexp(np.log(beta) + lr, np.log1p(-beta) + lq)
    return beta * xlogy(r, lr, lm) + (1 - beta) * xlogy(q, lq, lm)


def kd_row(div, beta, T, z, v=None, ids=None, lps=None, tail=None, tt=None):
    """The bare divergence of one row (z: student logits [V], autograd through it)."""
    if v is not None:
        lq, lr = torch.log_softmax(z / T, -1), torch.log_softmax(t64(v) / T, -1)
        return kd_divergence(div, beta, lr.exp(), lr, lq.exp(), lq)
    idx = torch.tensor(ids, dtype=torch.long)
    l = t64(lps)
    if tail == KD_RENORM:
        lq, lr = torch.log_softmax(z[idx] / T, -1), torch.log_softmax(l * tt / T, -1)
        return kd_divergence(div, beta, lr.exp(), lr, lq.exp(), lq)
    lq = torch.log_softmax(z / T, -1)[idx]
    q, r = lq.exp(), l.exp()
    qt, rt = torch.clamp(1 - q.sum(), min=0), torch.clamp(1 - r.sum(), min=0)
    lqt, lrt = torch.log(torch.clamp(qt, min=1e-30)), torch.log(torch.clamp(rt, min=1e-30))
    return kd_divergence(div, beta, torch.cat([r, rt[None]]), torch.cat([l, lrt[None]]),
                         torch.cat([q, qt[None]]), torch.cat([lq, lqt[None]]))


# dims = [N, V, k, divergence, sparse, tail]; scalars = [T, alpha, beta, topk_temperature, grad_scale];
# logits [N, V]; targets [N] (-1 ignored); teacher [N, V] (dense) or ids [N, k] (-1 in a row's first id = no
# teacher) and logprobs [N, k] (sparse); ce [N], kd [N] (the bare divergence at T), dlogits = grad_scale *
# d(sum((1 - alpha) ce + alpha T^2 kd))/dlogits. Sparse teachers: the top k of a random teacher's
# log_softmax at topk_temperature, in descending order.
def distill(w):
    cases = []
    Vs = [3, 37, 259, 1000]
    n = 0
    for div in (KD_FKL, KD_RKL, KD_JSD):
        for T in (1.0, 2.5):
            for alpha in (0.0, 0.5, 1.0):
                cases.append(dict(div=div, T=T, alpha=alpha, V=Vs[n % 4], N=20 if Vs[n % 4] == 1000 else 6))
                n += 1
    for tail, temps in ((KD_BUCKET, [(2.0, 2.0), (1.0, 1.0)]), (KD_RENORM, [(2.0, 1.0), (1.0, 1.5)])):
        for div in (KD_FKL, KD_RKL, KD_JSD):
            for T, tt in temps:
                V, k = [(37, 5), (259, 16), (1000, 16), (3, 1), (37, 1), (259, 5)][n % 6]
                if tail == KD_RENORM and k == 1:  # one category: nothing to compare
                    k = 2 if V == 3 else 3
                cases.append(dict(div=div, T=T, alpha=[0.5, 1.0, 0.3][n % 3], V=V, N=20 if V == 1000 else 7,
                                  k=k, tail=tail, tt=tt))
                n += 1
    for ci, c in enumerate(cases):
        N, V, T, alpha, div = c["N"], c["V"], c["T"], c["alpha"], c["div"]
        beta, scale = 0.3, np.float32(0.37)
        spread = [1.0, 3.0, 8.0][ci % 3]
        sparse = "k" in c
        logits = f32((N, V), -spread, spread)
        teacher = f32((N, V), -spread, spread) + 0.5 * logits
        if N > 3:  # beyond exp's fp32 range without the max subtraction; a student sure of one token
            logits[0, 0] = 80.0
        if N > 3 and not sparse:  # (a sparse teacher that sure leaves a tail of rounding noise)
            teacher[2, 1] = 60.0
        targets = rng.randint(0, V, size=N).astype(np.int32)
        targets[1] = -1
        k, tail, tt = c.get("k", 0), c.get("tail", 0), c.get("tt", 0.0)
        hyper = np.array([T, alpha, beta, tt, scale], dtype=np.float32)
        T, alpha, beta, tt = (float(h) for h in hyper[:4])
        zt = t64(logits, True)
        ce = torch.nn.functional.cross_entropy(zt, torch.tensor(targets, dtype=torch.long), ignore_index=-1,
                                               reduction="none")
        tensors = {}
        if sparse:
            lp = torch.log_softmax(t64(teacher) / tt, -1)
            top = torch.topk(lp, k, dim=-1)  # descending
            ids = top.indices.numpy().astype(np.int32)
            lps = top.values.numpy().astype(np.float32)
            ids[N - 1, :] = -1  # a row without a teacher
            lps[N - 1, :] = 0.0
            tensors.update(ids=ids, logprobs=lps)
        else:
            tensors.update(teacher=teacher)
        kd = []
        for i in range(N):
            if targets[i] < 0 or (sparse and ids[i, 0] < 0):
                kd.append(torch.zeros((), dtype=torch.float64))
            elif sparse:
                kd.append(kd_row(div, beta, T, zt[i], ids=ids[i], lps=lps[i], tail=tail, tt=tt))
            else:
                kd.append(kd_row(div, beta, T, zt[i], v=teacher[i]))
        kd = torch.stack(kd)
        (((1 - alpha) * ce + alpha * T * T * kd).sum() * float(scale)).backward()
        w.case("distill", [N, V, k, div, int(sparse), tail], hyper, logits=logits, targets=targets,
               ce=np64(ce), kd=np64(kd), dlogits=np64(zt.grad), **tensors)


# dims = [n]; x [n]; acc0 [1]; sum_squares = acc0 + sum(x^2); sum = sum(x)
def reductions(w):
    for n in [1, 7, 33, 100003, 300001]:
        x = f32(n, -2, 2)
        acc0 = f32(1)
        x64 = x.astype(np.float64)
        w.case("reduce", [n], x=x, acc0=acc0, sum_squares=acc0.astype(np.float64) + (x64 * x64).sum(),
               sum=np.array([x64.sum()]))


# scalars = [norm_sq, max_norm]; scale [1]
def clip(w):
    for norm_sq, max_norm in [(4.0, 1.0), (0.25, 1.0), (9.0, 3.0), (100.0, 0.0), (2.0, -1.0), (0.0, 1.0),
                              (1e6, 0.5)]:
        norm = np.sqrt(np.float64(np.float32(norm_sq)))
        mx = np.float64(np.float32(max_norm))
        scale = mx / norm if mx > 0 and norm > mx else 1.0
        w.case("clip", [0], [norm_sq, max_norm], scale=np.array([scale]))


# dims = [n, steps]; scalars = [lr, beta1, beta2, eps, wd, grad_scale]; master0, m0, v0 [n];
# grads [steps, n]; master, m, v after the steps. Steps count from 1. The formula is the one documented in
# backend.h, evaluated here in float64 by hand: torch.optim.AdamW scales the decay by lr before the Adam
# update, which is a different order.
def adamw(w):
    for n, steps in [(7, 1), (33, 3), (1000, 5), (20000, 4)]:
        lr, b1, b2, eps, wd, gs = 3e-3, 0.9, 0.95, 1e-8, 0.1, 0.5
        hyper = np.array([lr, b1, b2, eps, wd, gs], dtype=np.float32)
        lr, b1, b2, eps, wd, gs = (float(h) for h in hyper)
        master0 = f32(n)
        m0 = np.zeros(n, np.float32) if steps != 3 else f32(n, -0.1, 0.1)
        v0 = np.zeros(n, np.float32) if steps != 3 else f32(n, 0.0, 0.01)
        grads = f32((steps, n), -2, 2)
        wt, m, v = t64(master0), t64(m0), t64(v0)
        for s in range(1, steps + 1):
            g = t64(grads[s - 1]) * gs
            m = b1 * m + (1 - b1) * g
            v = b2 * v + (1 - b2) * g * g
            bc1, bc2 = 1 - b1 ** s, 1 - b2 ** s
            wt = wt - lr * (m / bc1 / (torch.sqrt(v / bc2) + eps) + wd * wt)
        w.case("adamw", [n, steps], hyper, master0=master0, m0=m0, v0=v0, grads=grads, master=np64(wt),
               m=np64(m), v=np64(v))


# dims = [N, n]; x [N, n] (the projection's output before the bias); bias [n]; dout [N, n]; db0 prefill [n];
# out = x + bias on every row; db = db0 + d(sum(out * dout))/dbias
def bias(w):
    for N, n in [(1, 1), (7, 5), (33, 130), (600, 48)]:
        x, b, dout, db0 = f32((N, n)), f32(n), f32((N, n)), f32(n)
        bt = t64(b, True)
        out = t64(x) + bt
        (out * t64(dout)).sum().backward()
        w.case("bias", [N, n], x=x, bias=b, dout=dout, db0=db0, out=np64(out), db=np64(bt.grad) + db0)


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: ref_ops.py OUT.h5")
    out = sys.argv[1]
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    tmp = out + ".tmp"
    w = Writer(tmp)
    ops = (matmul, add, embedding, rmsnorm, rope, attention, swiglu, cross_entropy, reductions, clip, adamw,
           distill, bias)
    for gen in ops:
        gen(w)
    w.close()
    os.replace(tmp, out)
    print(f"wrote {out}: " + ", ".join(f"{k} x{v}" for k, v in w.counts.items()))


if __name__ == "__main__":
    main()
