"""NF4 and the LoRA / QLoRA layers against PyTorch (tests/lora_harness.c dumps retort's side).

NF4: a PyTorch implementation of the algorithm in docs/training.md, NF4 and double quantization (blocks of
64, absmax, nearest code of the bitsandbytes table; double quantization: mean-centred absmaxes as int8 in
blocks of 256) must give the same codes and scales as retort, and the same weights back from both retort's
host code and its backend op; error statistics on N(0, 1) weights and the storage cost (4.127 bits per
weight) are checked too.
LoRA: with B = 0 the adapted model's logits are exactly the base model's; with random B, logits, per-token
losses and every adapter gradient match PyTorch autograd in float64 through the same model
(tests/torch_llama.py) with y = x W^T + s (drop(x) A^T) B^T on every projection and the head, the dropout
masks rebuilt from the same hash; QLoRA the same over the NF4 round trip of every block projection.

usage: check_lora_torch.py LORA_HARNESS"""
import os
import subprocess
import sys
import tempfile

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from checklib import check_close, finish  # noqa: E402
from torch_llama import Llama  # noqa: E402

CODE = torch.tensor([-1.0, -0.6961928009986877, -0.5250730514526367, -0.39491748809814453,
                     -0.28444138169288635, -0.18477343022823334, -0.09105003625154495, 0.0,
                     0.07958029955625534, 0.16093020141124725, 0.24611230194568634, 0.33791524171829224,
                     0.44070982933044434, 0.5626170039176941, 0.7229568362236023, 1.0], dtype=torch.float32)
SITES = ["q", "k", "v", "o", "gate", "up", "down", "head"]
failures = []


def check(what, got, ref, atol, rtol):
    check_close(failures, what, got, ref, atol, rtol)


def load(d, name, dtype=np.float32):
    return np.fromfile(os.path.join(d, name + ".bin"), dtype=dtype)


def nf4_reference(w, double_quant, offset_used=None):
    """codes [n], absmax fp32 [n_blocks], and for double quantization (offset, int8 q, scales)."""
    w = torch.from_numpy(w)
    n = w.numel()
    nb = (n + 63) // 64
    blocks = torch.zeros(nb * 64, dtype=torch.float32)
    blocks[:n] = w
    blocks = blocks.view(nb, 64)
    absmax = blocks.abs().max(dim=1).values
    safe = torch.where(absmax > 0, absmax, torch.ones_like(absmax))
    scaled = blocks / safe[:, None]
    idx = (scaled[..., None] - CODE).abs().argmin(dim=-1)  # the first (lower) code on a tie
    idx[absmax == 0] = 7
    codes = idx.reshape(-1)[:n]
    if not double_quant:
        deq = (CODE[idx] * absmax[:, None]).reshape(-1)[:n]
        return codes, absmax, None, deq
    offset = absmax.double().mean().float()
    off = torch.tensor(offset_used, dtype=torch.float32) if offset_used is not None else offset
    ns = (nb + 255) // 256
    q = torch.zeros(nb, dtype=torch.int64)
    scales = torch.zeros(ns, dtype=torch.float32)
    for s in range(ns):
        c = absmax[s * 256:(s + 1) * 256] - off
        scale = c.abs().max() / 127.0
        scales[s] = scale
        if scale > 0:
            q[s * 256:(s + 1) * 256] = torch.round(c / scale).clamp(-127, 127).to(torch.int64)
    deq_absmax = q.float() * scales[torch.arange(nb) // 256] + off
    deq = (CODE[idx] * deq_absmax[:, None]).reshape(-1)[:n]
    return codes, absmax, (offset, q, scales), deq


def unpack(packed, n):
    hi, lo = packed >> 4, packed & 15
    return np.stack([hi, lo], axis=1).reshape(-1)[:n].astype(np.int64)


def check_nf4(harness, work):
    d = os.path.join(work, "nf4")
    os.makedirs(d)
    subprocess.run([harness, d, "nf4", "0", "3"], check=True)
    for line in open(os.path.join(d, "meta.txt")):
        _, k, n, dq, nbytes = line.split()
        k, n, dq, nbytes = int(k), int(n), int(dq), int(nbytes)
        p = f"t{k}_dq{dq}_"
        w = load(d, p + "w")
        codes = unpack(load(d, p + "codes", np.uint8), n)
        offset_c = float(load(d, p + "absmax_offset")[0]) if dq else None
        ref_codes, ref_absmax, dqs, ref_deq = nf4_reference(w, dq, offset_c)
        mism = np.flatnonzero(codes != ref_codes.numpy())
        if mism.size:
            failures.append(f"nf4 {p}: {mism.size} of {n} codes differ, first at {mism[0]}")
        if dq:
            offset, q, scales = dqs
            check(f"nf4 {p}offset", [offset_c], [float(offset)], 0, 1e-6)
            q_c = load(d, p + "absmax_q", np.int8).astype(np.int64)
            if not np.array_equal(q_c, q.numpy()):
                failures.append(f"nf4 {p}: int8 block scales differ at {np.flatnonzero(q_c != q.numpy())[:5]}")
            check(f"nf4 {p}scales", load(d, p + "absmax_scale"), scales.numpy(), 0, 1e-6)
        else:
            check(f"nf4 {p}absmax", load(d, p + "absmax"), ref_absmax.numpy(), 0, 0)
        check(f"nf4 {p}dequantized (host)", load(d, p + "deq_host"), ref_deq.numpy(), 1e-9, 1e-6)
        check(f"nf4 {p}dequantized (op)", load(d, p + "deq_op"), ref_deq.numpy(), 1e-9, 1e-6)
        bits = 8.0 * nbytes / n
        if k == 3:  # N(0, 1), 65536 weights: error statistics and storage cost
            err = load(d, p + "deq_host").astype(np.float64) - w
            rmse, bias = np.sqrt(np.mean(err ** 2)), np.mean(err)
            print(f"nf4 N(0,1) double_quant={dq}: rmse {rmse:.4f}, mean error {bias:+.5f}, "
                  f"{bits:.3f} bits per weight")
            if not (0.05 < rmse < 0.12) or abs(bias) > 0.005:
                failures.append(f"nf4 dq{dq}: rmse {rmse:.4f} / bias {bias:.5f} outside NF4's expected range")
            want = 4 + 8 / 64 + 32 / (64 * 256) if dq else 4 + 32 / 64
            if abs(bits - want) > 0.01:
                failures.append(f"nf4 dq{dq}: {bits:.4f} bits per weight, expected {want:.4f}")


def dropout_keep(seed, n, p):
    """rt_dropout_bits(seed, i) >= p * 2^32 for i in [0, n) (csrc/backend/dropout_hash.h)."""
    with np.errstate(over="ignore"):
        seed = np.uint64(seed)
        h = np.arange(n, dtype=np.uint64).astype(np.uint32) * np.uint32(0x9E3779B1) + \
            np.uint32(int((seed ^ (seed >> np.uint64(32))) & np.uint64(0xFFFFFFFF)))
        h ^= h >> np.uint32(16)
        h *= np.uint32(0x85EBCA6B)
        h ^= h >> np.uint32(13)
        h *= np.uint32(0xC2B2AE35)
        bits = (h ^ (h >> np.uint32(16))).astype(np.uint64)
    return bits >= np.uint64(int(float(np.float32(p)) * 4294967296.0))


class LoraLlama(Llama):
    def set_adapters(self, adapters, scale, p, seeds):
        self.adapters, self.scale, self.drop_p, self.seeds = adapters, scale, p, seeds

    def linear(self, name, x, layer, site):
        y = x @ self.p(name).T
        a = self.adapters.get(name + ".lora_a")
        if a is None:
            return y
        xin = x
        if self.drop_p > 0:
            seed = int(self.seeds[(layer + 1) * len(SITES) + SITES.index(site)])
            keep = torch.from_numpy(dropout_keep(seed, x.numel(), self.drop_p)).view(x.shape)
            xin = torch.where(keep, x * float(np.float32(1.0) / (np.float32(1.0) - np.float32(self.drop_p))),
                              torch.zeros_like(x))
        return y + self.scale * ((xin @ a.T) @ self.adapters[name + ".lora_b"].T)


def check_lora(harness, work, mode, tied):
    d = os.path.join(work, f"{mode}{tied}")
    os.makedirs(d)
    subprocess.run([harness, d, mode, str(tied), "11"], check=True)
    meta = {k: float(v) for k, v in (l.split() for l in open(os.path.join(d, "meta.txt")))}
    V, C, L, H, KVH, F_, T_max = (int(meta[k]) for k in ("V", "C", "L", "H", "KVH", "F", "T_max"))
    B, T = int(meta["B"]), int(meta["T"])
    qlora = int(meta["qlora"])
    targets_mask, nf4_mask = int(meta["targets"]), int(meta["nf4_sites"])
    block_site = {"attn_q": "q", "attn_k": "k", "attn_v": "v", "attn_output": "o", "ffn_gate": "gate",
                  "ffn_up": "up", "ffn_down": "down"}

    def in_nf4(name):  # a block projection of a site the spec stores in NF4
        site = block_site.get(name.split(".")[2]) if name.startswith("blk.") else None
        return site is not None and name.endswith(".weight") and (nf4_mask >> SITES.index(site)) & 1
    ref = LoraLlama(V, C, L, H, KVH, F_, T_max, eps=meta["eps"], theta=meta["theta"], tied=bool(tied),
                    dtype=torch.float64, head_dim=int(meta["D"]), bias=bool(meta["attn_bias"]))
    with torch.no_grad():
        for name, t in ref.named().items():
            w = load(d, "base." + name)
            if in_nf4(name):
                w = nf4_reference(w, True)[3].numpy()
            t.copy_(torch.from_numpy(w.astype(np.float64)).view(t.shape))
    tokens = torch.from_numpy(load(d, "tokens", np.int32).astype(np.int64)).view(B, T)
    targets = torch.from_numpy(load(d, "targets", np.int32).astype(np.int64))
    tag = f"{mode} tied={tied}"

    # step 0: B = 0
    step0 = load(d, "step0_logits")
    if qlora:
        ref.set_adapters({}, 0.0, 0.0, None)
        with torch.no_grad():
            check(f"{tag}: step-0 logits (NF4 base)", step0, ref(tokens).reshape(-1).numpy(), 1e-4, 1e-4)
    elif not np.array_equal(step0, load(d, "plain_logits")):
        failures.append(f"{tag}: step-0 logits differ from the base model's (B = 0 must give the base exactly)")

    # random B, dropout, gradients of every adapter
    names = [n[len("adapter."):-4] for n in os.listdir(d) if n.startswith("adapter.")]
    adapters = {}
    for n in names:
        w = n.rsplit(".", 1)[0]  # the weight it adapts
        shape = ref.p(w).shape
        r = int(meta["rank"])
        shp = (r, shape[1]) if n.endswith("lora_a") else (shape[0], r)
        adapters[n] = torch.from_numpy(load(d, "adapter." + n).astype(np.float64)).view(shp).requires_grad_()
    want = 2 * (bin(targets_mask & 127).count("1") * L + (targets_mask >> 7 & 1))
    if len(adapters) != want:
        failures.append(f"{tag}: {len(adapters)} adapter tensors, expected {want}")
    seeds = load(d, "dropout_seeds", np.uint64)
    ref.set_adapters(adapters, meta["scale"], meta["dropout"], seeds)
    logits = ref(tokens)
    check(f"{tag}: logits", load(d, "logits"), logits.detach().reshape(-1).numpy(), 1e-4, 1e-4)
    flat = logits.reshape(-1, V)
    valid = targets >= 0
    per_token = torch.zeros(B * T, dtype=torch.float64)
    per_token[valid] = F.cross_entropy(flat[valid], targets[valid], reduction="none")
    check(f"{tag}: losses", load(d, "losses"), per_token.detach().numpy(), 1e-4, 1e-4)
    (per_token.sum() / valid.sum()).backward()
    for n, t in adapters.items():
        check(f"{tag}: gradient of {n}", load(d, "grad." + n), t.grad.reshape(-1).numpy(), 2e-6, 2e-3)
    for f in os.listdir(d):
        if f.startswith("grad.") and ".lora_" not in f:
            failures.append(f"{tag}: the frozen {f[5:-4]} has a gradient")


def main():
    harness = sys.argv[1]
    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as work:
        check_nf4(harness, work)
        check_lora(harness, work, "lora", 0)
        check_lora(harness, work, "lora", 1)
        check_lora(harness, work, "qlora", 0)  # with q/k/v biases and head_dim 12 != 32 / 4
        # adapters on some columns of the fused q|k|v and gate|up, NF4 on some of their members, dropout
        check_lora(harness, work, "qlora_partial", 0)
    passed = "NF4 codes, scales and dequantization; LoRA and QLoRA logits, losses and adapter gradients match PyTorch"
    finish(failures, passed)


if __name__ == "__main__":
    main()
