"""PyTorch peer for bench/cpu_train.sh and bench/dist_cpu.sh: trains the same Llama-style model
(tests/torch_llama.py) with AdamW on random byte tokens and prints tokens/s of the timed steps as JSON.

usage: torch_train.py --dim 256 --layers 4 --heads 8 --kv-heads 8 --ffn 688 --vocab 259 --batch 8 --seq 256
                      --steps 20 --warmup 3 --threads 2 --accum 1 [--attention explicit|sdpa] [--compile]
                      [--bf16]

--attention sdpa (PyTorch 2) computes attention with F.scaled_dot_product_attention, the fused kernel a user
of PyTorch 2 gets, instead of tests/torch_llama.py's explicit softmax(QK^T)V; --compile wraps the model in
torch.compile (its warm-up steps include the compilation); --bf16 runs forward and loss under
torch.autocast(device_type="cpu", dtype=torch.bfloat16), PyTorch's mixed precision on CPUs (fp32 weights,
gradients and optimizer; bf16 matmuls and attention). The JSON also names the math libraries this
PyTorch runs on and the kernels they picked (the "kernels" field).

Started by torchrun (WORLD_SIZE > 1) it trains data-parallel with DistributedDataParallel over gloo, each
rank on its own micro-batches; tokens/s are then over every rank and rank 0 prints them."""
import argparse
import contextlib
import ctypes
import json
import os
import re
import sys
import time

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests"))
from torch_llama import Llama  # noqa: E402


def kernels():
    """The BLAS and oneDNN this PyTorch uses and the instruction set it dispatches to."""
    parts = []
    try:
        parts.append("cpu capability " + torch.backends.cpu.get_cpu_capability())
    except AttributeError:  # PyTorch 1.x
        pass
    config = torch.__config__.show()
    blas = re.search(r"BLAS_INFO=(\w+)", config)
    if blas:
        parts.append("BLAS " + blas.group(1))
    for line in config.splitlines():
        line = line.strip().lstrip("- ")
        if line.startswith(("Intel(R) oneAPI Math Kernel Library Version", "Intel(R) MKL-DNN")):
            parts.append(line.split(" for ")[0].split(" (Git")[0])
    # the OpenBLAS a Debian PyTorch loaded: which kernels it detected for this CPU
    with open("/proc/self/maps") as f:
        libs = sorted({l.split()[-1] for l in f if "libopenblas" in l})
    for path in libs:
        try:
            lib = ctypes.CDLL(path)
            lib.openblas_get_corename.restype = ctypes.c_char_p
            lib.openblas_get_config.restype = ctypes.c_char_p
            parts.append("%s, core %s" % (lib.openblas_get_config().decode(), lib.openblas_get_corename().decode()))
        except (AttributeError, OSError):
            pass
    return "; ".join(parts)


def main():
    ap = argparse.ArgumentParser()
    for k, d in (("dim", 256), ("layers", 4), ("heads", 8), ("kv-heads", 8), ("ffn", 688), ("vocab", 259),
                 ("batch", 8), ("seq", 256), ("steps", 20), ("warmup", 3), ("threads", 2), ("accum", 1)):
        ap.add_argument("--" + k, type=int, default=d)
    ap.add_argument("--attention", choices=("explicit", "sdpa"), default="explicit")
    ap.add_argument("--compile", action="store_true")
    ap.add_argument("--bf16", action="store_true")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    if a.attention == "sdpa":
        import torch_llama

        def sdpa(q, k, v, H, KVH):  # q [B, T, H, D], k/v [B, T, KVH, D]
            B, T, _, D = q.shape
            k = k.repeat_interleave(H // KVH, dim=2)
            v = v.repeat_interleave(H // KVH, dim=2)
            out = F.scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2),
                                                 is_causal=True)
            return out.transpose(1, 2).reshape(B, T, H * D)
        torch_llama.attention = sdpa
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    if world > 1:
        import torch.distributed as dist
        dist.init_process_group("gloo")
    torch.manual_seed(0)
    m = Llama(a.vocab, a.dim, a.layers, a.heads, a.kv_heads, a.ffn, a.seq, tied=True)
    m.init_normal(0.02)
    net = m
    if a.compile:
        net = torch.compile(m)
    if world > 1:
        from torch.nn.parallel import DistributedDataParallel
        net = DistributedDataParallel(m)
    opt = torch.optim.AdamW(m.parameters(), lr=1e-3, weight_decay=0.1, betas=(0.9, 0.95))
    g = torch.Generator().manual_seed(1 + rank)
    data = torch.randint(0, 256, (a.steps + a.warmup, a.accum, a.batch, a.seq + 1), generator=g)
    t0 = None
    for s in range(a.steps + a.warmup):
        if s == a.warmup:
            if world > 1:
                dist.barrier()
            t0 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        for k in range(a.accum):
            x, y = data[s, k, :, :-1], data[s, k, :, 1:]
            # DDP averages the gradients over ranks in the last micro-batch's backward only
            local = world > 1 and k + 1 < a.accum
            autocast = torch.autocast(device_type="cpu", dtype=torch.bfloat16) if a.bf16 else \
                contextlib.nullcontext()
            with net.no_sync() if local else contextlib.nullcontext(), autocast:
                loss = F.cross_entropy(net(x).reshape(-1, a.vocab), y.reshape(-1)) / a.accum
                loss.backward()
        torch.nn.utils.clip_grad_norm_(m.parameters(), 1.0)
        opt.step()
    if world > 1:
        dist.barrier()
    dt = time.perf_counter() - t0
    params = sum(p.numel() for p in m.parameters())
    if rank == 0:
        print(json.dumps({"tokens_per_s": a.steps * a.accum * a.batch * a.seq * world / dt, "params": params,
                          "torch": torch.__version__, "threads": torch.get_num_threads(), "world": world,
                          "accum": a.accum, "loss": loss.item() * a.accum, "attention": a.attention,
                          "compile": a.compile, "precision": "bf16 autocast" if a.bf16 else "fp32",
                          "kernels": kernels()}))
    if world > 1:
        dist.destroy_process_group()


if __name__ == "__main__":
    main()
