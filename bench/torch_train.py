"""PyTorch peer for bench/cpu_train.sh: trains the same Llama-style model (tests/torch_llama.py) with AdamW on
random byte tokens and prints tokens/s of the timed steps as JSON.

usage: torch_train.py --dim 256 --layers 4 --heads 8 --kv-heads 8 --ffn 688 --vocab 259 --batch 8 --seq 256
                      --steps 20 --warmup 3 --threads 2"""
import argparse
import json
import os
import sys
import time

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests"))
from torch_llama import Llama  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    for k, d in (("dim", 256), ("layers", 4), ("heads", 8), ("kv-heads", 8), ("ffn", 688), ("vocab", 259),
                 ("batch", 8), ("seq", 256), ("steps", 20), ("warmup", 3), ("threads", 2)):
        ap.add_argument("--" + k, type=int, default=d)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    m = Llama(a.vocab, a.dim, a.layers, a.heads, a.kv_heads, a.ffn, a.seq, tied=True)
    m.init_normal(0.02)
    opt = torch.optim.AdamW(m.parameters(), lr=1e-3, weight_decay=0.1, betas=(0.9, 0.95))
    g = torch.Generator().manual_seed(1)
    data = torch.randint(0, 256, (a.steps + a.warmup, a.batch, a.seq + 1), generator=g)
    t0 = None
    for s in range(a.steps + a.warmup):
        if s == a.warmup:
            t0 = time.perf_counter()
        x, y = data[s, :, :-1], data[s, :, 1:]
        loss = F.cross_entropy(m(x).reshape(-1, a.vocab), y.reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(m.parameters(), 1.0)
        opt.step()
    dt = time.perf_counter() - t0
    params = sum(p.numel() for p in m.parameters())
    print(json.dumps({"tokens_per_s": a.steps * a.batch * a.seq / dt, "params": params, "torch": torch.__version__,
                      "threads": torch.get_num_threads(), "loss": loss.item()}))


if __name__ == "__main__":
    main()
