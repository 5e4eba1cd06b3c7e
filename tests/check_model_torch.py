"""The whole model against PyTorch: logits, per-token losses and every parameter gradient of retort's C model
(dumped by model_harness) against tests/torch_llama.py loading the same weights, in float64; then 10 AdamW
steps with gradient accumulation, clipping and the warmup + cosine schedule, which must give the same losses
and weights as torch.optim.AdamW. Runs untied and tied heads, and the imported architectures' options: q/k/v
biases with a head dim apart from dim / n_heads and linear RoPE scaling ("qwen"), and Llama 3.1 RoPE scaling
("llama3"), whose RoPE tables are also compared with the reference's directly.

usage: check_model_torch.py MODEL_HARNESS"""
import math
import os
import subprocess
import sys
import tempfile

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from checklib import check_close, finish  # noqa: E402
from torch_llama import Llama, param_shapes  # noqa: E402

failures = []


def check(what, got, ref, atol, rtol):
    check_close(failures, what, got, ref, atol, rtol)


def load(d, name, dtype=np.float32, shape=None):
    a = np.fromfile(os.path.join(d, name + ".bin"), dtype=dtype)
    return a.reshape(shape) if shape is not None else a


def run_case(harness, tied, seed, variant="plain"):
    d = tempfile.mkdtemp(prefix=f"model-torch-{tied}-{variant}-")
    subprocess.run([harness, d, str(tied), str(seed), variant], check=True)
    meta = {}
    for line in open(os.path.join(d, "meta.txt")):
        k, v = line.split()
        meta[k] = v if k == "rope_scaling" else float(v)
    V, C, L, H, KVH, Fd, T_max, D = (int(meta[k]) for k in ("V", "C", "L", "H", "KVH", "F", "T_max", "D"))
    B, T = int(meta["B"]), int(meta["T"])
    bias = bool(meta["attn_bias"])
    assert bool(meta["tied"]) == bool(tied)
    assert (variant == "plain") == (D == C // H and not bias and meta["rope_scaling"] == "none")
    scaling = {"type": meta["rope_scaling"], "factor": meta["rope_factor"], "low_freq_factor": meta["rope_low"],
               "high_freq_factor": meta["rope_high"], "original_max_position_embeddings": meta["rope_orig"]}
    shapes = param_shapes(V, C, L, H, KVH, Fd, bool(tied), D, bias)
    model = Llama(V, C, L, H, KVH, Fd, T_max, eps=meta["eps"], theta=meta["theta"], tied=bool(tied),
                  dtype=torch.float64, head_dim=D, bias=bias, rope_scaling=scaling)
    with torch.no_grad():
        for name, shape in shapes.items():
            model.p(name).copy_(torch.from_numpy(load(d, "init." + name, shape=shape).astype(np.float64)))
    tag = f"[tied={tied} {variant}]"
    check(f"{tag} RoPE cos table", load(d, "rope_cos", shape=(T_max, D // 2)), model.cos, 1e-6, 1e-6)
    check(f"{tag} RoPE sin table", load(d, "rope_sin", shape=(T_max, D // 2)), model.sin, 1e-6, 1e-6)

    tok = torch.from_numpy(load(d, "tokens", np.int32, (B, T)).astype(np.int64))
    tgt = torch.from_numpy(load(d, "targets", np.int32, (B, T)).astype(np.int64))
    logits = model(tok)
    check(f"{tag} logits", load(d, "logits", shape=(B * T, V)), logits.detach().reshape(B * T, V), 2e-5, 1e-4)
    losses = F.cross_entropy(logits.reshape(-1, V), tgt.reshape(-1), ignore_index=-1, reduction="none")
    check(f"{tag} per-token losses", load(d, "losses"), losses.detach(), 2e-5, 1e-5)
    valid = (tgt >= 0).sum()
    (losses.sum() / valid).backward()
    for name, shape in shapes.items():
        ref = model.p(name).grad
        scale = ref.abs().max().item()
        check(f"{tag} gradient {name}", load(d, "grad." + name, shape=shape), ref, 1e-4 * scale + 1e-9, 1e-3)

    # 10 optimizer steps
    with torch.no_grad():
        for name, shape in shapes.items():
            model.p(name).copy_(torch.from_numpy(load(d, "init." + name, shape=shape).astype(np.float64)))
            model.p(name).grad = None
    params = model.named()
    decay = [p for n, p in params.items() if p.dim() == 2]
    no_decay = [p for n, p in params.items() if p.dim() == 1]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": meta["wd"]}, {"params": no_decay, "weight_decay": 0.0}],
                            lr=meta["lr"], betas=(meta["beta1"], meta["beta2"]), eps=meta["adam_eps"])
    steps, micro, warmup = int(meta["steps"]), int(meta["micro"]), int(meta["warmup"])
    lr_max, lr_min = meta["lr"], meta["min_lr"]
    ttok = load(d, "train_tokens", np.int32, (steps, micro, B, T)).astype(np.int64)
    ttgt = load(d, "train_targets", np.int32, (steps, micro, B, T)).astype(np.int64)
    ref_losses, ref_norms, ref_lrs = [], [], []
    for s in range(steps):
        lr = lr_max * (s + 1) / warmup if s < warmup else \
            lr_min + (lr_max - lr_min) * 0.5 * (1 + math.cos(math.pi * (s - warmup) / (steps - warmup)))
        opt.zero_grad()
        total = 0.0
        for k in range(micro):
            out = model(torch.from_numpy(ttok[s, k]))
            loss = F.cross_entropy(out.reshape(-1, V), torch.from_numpy(ttgt[s, k]).reshape(-1), reduction="sum")
            (loss / (micro * B * T)).backward()
            total += loss.item()
        norm = torch.nn.utils.clip_grad_norm_(list(params.values()), meta["clip"])
        for g in opt.param_groups:
            g["lr"] = lr
        opt.step()
        ref_losses.append(total / (micro * B * T))
        ref_norms.append(norm.item())
        ref_lrs.append(lr)
    check(f"{tag} schedule lr", load(d, "train_lr"), ref_lrs, 1e-9, 1e-6)
    check(f"{tag} training losses", load(d, "train_loss"), ref_losses, 1e-5, 1e-4)
    check(f"{tag} gradient norms", load(d, "train_grad_norm"), ref_norms, 1e-6, 1e-3)
    for name, shape in shapes.items():
        check(f"{tag} weights after 10 steps {name}", load(d, "final." + name, shape=shape), model.p(name).detach(),
              2e-4, 1e-3)
    print(f"{tag} losses retort {np.round(load(d, 'train_loss'), 5).tolist()}")
    print(f"{tag} losses torch  {np.round(ref_losses, 5).tolist()}")


def main():
    harness = sys.argv[1]
    run_case(harness, 0, 7)
    run_case(harness, 1, 11)
    run_case(harness, 0, 5, "qwen")
    run_case(harness, 1, 3, "llama3")
    finish(failures, "model matches PyTorch: logits, losses, gradients, 10 AdamW steps (untied and tied; q/k/v "
           "biases with head_dim != dim / n_heads and linear RoPE scaling; llama3 RoPE scaling)", limit=40)


if __name__ == "__main__":
    main()
