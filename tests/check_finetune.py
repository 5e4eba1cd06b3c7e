"""`retort finetune` and `retort merge` end to end: a small base is trained, then fine-tuned with LoRA, QLoRA
and full fine-tuning on another task format. Checks, with h5py and an independent NumPy/PyTorch reference:
- an adapter checkpoint holds /lora (the adapters), their moments and the base's path and content hash, and
  no /model; the base's weights never change;
- LoRA with dropout and gradient accumulation resumes bit-exactly (losses and adapters equal to an
  uninterrupted run);
- `retort eval` evaluates base + adapters directly, and `retort merge` writes W + (alpha/r) B A (recomputed
  here with NumPy; for QLoRA over the NF4 round trip of the base, recomputed with the PyTorch NF4 reference
  of check_lora_torch.py) whose eval loss equals the adapter checkpoint's; a head adapter on tied embeddings
  unties the merged head;
- QLoRA holds the base in less memory than LoRA;
- refusals: no base, an adapter checkpoint as the base, an unknown lora.targets entry, and a base that changed
  after training (eval, resume and merge all refuse it, naming the hash).

usage: check_finetune.py   (RETORT_BIN, RT_SOURCE_DIR from ctest)"""
import json
import os
import re
import shutil
import sys
import tempfile

import h5py
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from checklib import finish, run_retort, train_losses  # noqa: E402
from check_lora_torch import nf4_reference  # noqa: E402

RETORT = os.environ["RETORT_BIN"]
SRC = os.environ["RT_SOURCE_DIR"]
CFG = os.path.join(SRC, "trainer", "configs", "tiny.yaml")
T = 48
MODEL = ["model.dim=32", "model.n_layers=2", "model.n_heads=2", "model.n_kv_heads=1", "model.ffn_dim=64",
         f"model.max_seq_len={T}"]
COMMON = [f"data.seq_len={T}", "train.batch_size=4", "train.warmup_steps=2", "train.eval_every=0", "data.val=",
          "run.log_every=1", "system.threads=2", "data.loss_on=answer"]
failures = []


def run(args, expect=0, what=None):
    return run_retort(failures, args, expect, what)


losses = train_losses


def eval_loss(ckpt, data):
    p = run(["eval", ckpt, "--data", data, "--json"], what=f"eval {ckpt}")
    if p.returncode != 0:
        return float("nan")
    return json.loads(p.stdout)["rows"][0]["loss"]


def tensors(path, group):
    with h5py.File(path, "r") as f:
        return {k: f[group][k][()] for k in f[group]} if group in f else {}


def memory_line(stderr, key):
    m = re.search(key + r" ([0-9.]+) MiB", stderr)
    return float(m.group(1)) if m else None


def check_adapter_file(ckpt, base, what):
    with h5py.File(ckpt, "r") as f:
        if "model" in f:
            failures.append(f"{what}: an adapter checkpoint holds /model")
        if "lora" not in f:
            failures.append(f"{what}: no /lora group")
            return
        names = set(f["lora"])
        if set(f["optim/adam_m"]) != names or set(f["optim/adam_v"]) != names:
            failures.append(f"{what}: moments are not exactly the adapters' ({sorted(f['optim/adam_m'])[:3]})")
        recorded = f["lora"].attrs["base"]
        recorded = recorded.decode() if isinstance(recorded, bytes) else str(recorded)
        if recorded != os.path.realpath(base):
            failures.append(f"{what}: /lora base is {recorded}, expected {os.path.realpath(base)}")
        if len(f["lora"].attrs["base_hash"]) != 16:
            failures.append(f"{what}: base_hash {f['lora'].attrs['base_hash']!r}")


def check_merge(adapter_ckpt, base_ckpt, merged, scale, nf4_sites, data, what):
    """merged == base (NF4 round trip where quantized) + scale * B A, and evaluates like the adapters."""
    base, ad, mg = tensors(base_ckpt, "model"), tensors(adapter_ckpt, "lora"), tensors(merged, "model")
    tied = "output.weight" not in base
    for name, w in base.items():
        ref = w.astype(np.float64)
        site = name.split(".")[2] if name.startswith("blk.") else None
        if site in nf4_sites:
            ref = nf4_reference(w.reshape(-1), True)[3].numpy().reshape(w.shape).astype(np.float64)
        if name + ".lora_a" in ad and name != "token_embd.weight":
            ref = ref + scale * ad[name + ".lora_b"].astype(np.float64) @ ad[name + ".lora_a"].astype(np.float64)
        err = np.abs(mg[name] - ref).max()
        if not err <= 1e-5 * max(1.0, np.abs(ref).max()):
            failures.append(f"{what}: merged {name} is off by {err:.3g}")
    if tied and "token_embd.weight.lora_a" in ad:
        ref = base["token_embd.weight"] + scale * ad["token_embd.weight.lora_b"] @ ad["token_embd.weight.lora_a"]
        if "output.weight" not in mg or np.abs(mg["output.weight"] - ref).max() > 1e-5:
            failures.append(f"{what}: a head adapter on tied embeddings must give output.weight = E + s B A")
    la, lm = eval_loss(adapter_ckpt, data), eval_loss(merged, data)
    if not abs(la - lm) <= 1e-4 * abs(la):
        failures.append(f"{what}: eval loss of the merged checkpoint {lm} differs from the adapters' {la}")


def main():
    tmp = tempfile.mkdtemp(prefix="finetune-")
    add_h5, plus_h5, val_h5 = (os.path.join(tmp, n) for n in ("add.h5", "plus.h5", "val.h5"))
    run(["data", "synth", "--task", "add2", "--n", "3000", "--seed", "3", "--out", add_h5])
    run(["data", "synth", "--task", "plus", "--n", "2000", "--seed", "4", "--out", plus_h5])
    run(["data", "synth", "--task", "plus", "--n", "200", "--split", "val", "--seed", "5", "--out", val_h5])
    base_dir = os.path.join(tmp, "base")
    run(["train", CFG, *MODEL, *COMMON, "train.steps=40", "train.lr=1e-2", f"data.train={add_h5}",
         f"run.out_dir={base_dir}"], what="train the base")
    base = os.path.join(base_dir, "ckpt-latest.h5")
    base_before = tensors(base, "model")
    ft = [*COMMON, f"base={base}", f"data.train={plus_h5}", "train.steps=8", "train.lr=5e-3", "train.grad_accum=2",
          "checkpoint.every=4"]

    # LoRA with dropout: uninterrupted vs stopped at 4 and resumed
    a, b = os.path.join(tmp, "lora_a"), os.path.join(tmp, "lora_b")
    pa = run(["finetune", CFG, *ft, "lora.dropout=0.2", f"run.out_dir={a}"], what="finetune lora")
    run(["finetune", CFG, *ft, "lora.dropout=0.2", f"run.out_dir={b}", "--stop-after", "4"], what="lora part 1")
    run(["finetune", CFG, *ft, "lora.dropout=0.2", f"run.out_dir={b}", "--resume"], what="lora resume")
    la, lb = losses(a), losses(b)
    if la != lb or len(la) != 8:
        failures.append(f"lora resume: losses differ: {la} vs {lb}")
    ta, tb = tensors(os.path.join(a, "ckpt-latest.h5"), "lora"), tensors(os.path.join(b, "ckpt-latest.h5"), "lora")
    if ta.keys() != tb.keys() or any(not np.array_equal(ta[k], tb[k]) for k in ta):
        failures.append("lora resume: the adapters differ from the uninterrupted run's")
    if len(ta) != 2 * 7 * 2:
        failures.append(f"lora: {len(ta)} adapter tensors, expected 28 (q,k,v,o,gate,up,down x 2 layers)")
    check_adapter_file(os.path.join(a, "ckpt-latest.h5"), base, "lora")
    p = run(["inspect", os.path.join(a, "ckpt-latest.h5"), "--json"], what="inspect an adapter checkpoint")
    info = json.loads(p.stdout) if p.returncode == 0 else {}
    if info.get("adapter", {}).get("base") != os.path.realpath(base) or len(info.get("tensors", [])) != 28:
        failures.append(f"inspect: adapter {info.get('adapter')} with {len(info.get('tensors', []))} tensors")
    after = tensors(base, "model")
    if any(not np.array_equal(base_before[k], after[k]) for k in base_before):
        failures.append("the base checkpoint changed")
    lora_base_mib = memory_line(pa.stderr, "base")

    # merge: NumPy recomputation and equal eval loss (scale alpha / r = 16 / 8)
    merged = os.path.join(tmp, "merged.h5")
    run(["merge", os.path.join(a, "ckpt-latest.h5"), "--out", merged], what="merge lora")
    check_merge(os.path.join(a, "ckpt-latest.h5"), base, merged, 2.0, set(), val_h5, "lora merge")

    # QLoRA over every block projection, adapters on everything including the tied head, rsLoRA
    q = os.path.join(tmp, "qlora")
    pq = run(["finetune", CFG, *ft, "finetune.method=qlora", "qlora.layers=all", "lora.targets=all", "lora.rslora=true",
              "lora.rank=4", f"run.out_dir={q}"], what="finetune qlora")
    qlora_base_mib = memory_line(pq.stderr, "base")
    if lora_base_mib is None or qlora_base_mib is None or not qlora_base_mib < lora_base_mib:
        failures.append(f"qlora: base memory {qlora_base_mib} MiB is not below lora's {lora_base_mib} MiB")
    qmerged = os.path.join(tmp, "qmerged.h5")
    run(["merge", os.path.join(q, "ckpt-latest.h5"), "--out", qmerged], what="merge qlora")
    sites = {"attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up", "ffn_down"}
    check_merge(os.path.join(q, "ckpt-latest.h5"), base, qmerged, 16.0 / 2.0, sites, val_h5, "qlora merge")

    # full fine-tuning: a full checkpoint
    full = os.path.join(tmp, "full")
    run(["finetune", CFG, *ft, "finetune.method=full", f"run.out_dir={full}"], what="finetune full")
    if not tensors(os.path.join(full, "ckpt-latest.h5"), "model"):
        failures.append("full fine-tuning wrote no /model")

    # refusals
    p = run(["finetune", CFG, *COMMON, f"data.train={plus_h5}", f"run.out_dir={tmp}/nobase"], expect=2,
            what="finetune without a base")
    if "finetune.base" not in p.stderr:
        failures.append(f"no base: message does not name finetune.base: {p.stderr}")
    p = run(["finetune", CFG, *ft, f"base={a}/ckpt-latest.h5", f"run.out_dir={tmp}/adbase"], expect=1,
            what="finetune an adapter checkpoint")
    if "adapter checkpoint" not in p.stderr or "retort merge" not in p.stderr:
        failures.append(f"adapter as base: unclear message: {p.stderr}")
    p = run(["finetune", CFG, *ft, "lora.targets=q,qq", f"run.out_dir={tmp}/badt"], expect=2, what="bad targets")
    if "lora.targets" not in p.stderr or "qq" not in p.stderr:
        failures.append(f"bad lora.targets: message does not name the key and the entry: {p.stderr}")

    # a base that changed after training is refused everywhere, naming the hash
    other = os.path.join(tmp, "other")
    run(["train", CFG, *MODEL, *COMMON, "train.steps=5", "run.seed=9", f"data.train={add_h5}",
         f"run.out_dir={other}"], what="train another base")
    shutil.copyfile(os.path.join(other, "ckpt-latest.h5"), os.path.realpath(base))
    for args, what in ((["eval", f"{a}/ckpt-latest.h5", "--data", val_h5], "eval"),
                       (["finetune", CFG, *ft, "lora.dropout=0.2", "train.steps=12", f"run.out_dir={a}", "--resume"],
                        "resume"),
                       (["merge", f"{a}/ckpt-latest.h5", "--out", f"{tmp}/m2.h5"], "merge")):
        p = run(args, expect=1, what=f"{what} with a changed base")
        if "hash" not in p.stderr:
            failures.append(f"{what} with a changed base: message does not mention the hash: {p.stderr}")

    passed = "finetune: LoRA, QLoRA and full; resume, merge, adapter checkpoints and refusals as expected"
    finish(failures, passed, work=tmp)


if __name__ == "__main__":
    main()
