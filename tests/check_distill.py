"""`retort distill` (stage 2) against PyTorch: a small teacher is trained and answers prompts with its top-k
log-probs kept (retort synth). The student's loss at its first step is recomputed by an independent PyTorch
implementation of docs/distillation.md from the student's initial weights (a learning rate of 1e-12 keeps
the first checkpoint at the initial weights to fp32 precision) over the whole dataset (the batch is every
window, so the data order does not matter): offline_topk with the bucket and renorm tails, online with the
teacher's full distribution, for forward KL, reverse KL and JSD. Also: refusals at config time (vocabulary,
temperature, missing teacher or top-k), a frozen teacher, and bit-exact resume of a distillation run.

usage: check_distill.py   (RETORT_BIN, RT_SOURCE_DIR from ctest)"""
import json
import os
import shutil
import sys
import tempfile

import h5py
import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from checklib import add2_teacher, finish, run_retort  # noqa: E402
from torch_llama import Llama  # noqa: E402

RETORT = os.environ["RETORT_BIN"]
SRC = os.environ["RT_SOURCE_DIR"]
CFG = os.path.join(SRC, "trainer", "configs", "tiny.yaml")
failures = []
T = 32
TEACHER = ["model.dim=48", "model.n_layers=2", "model.n_heads=4", "model.n_kv_heads=2", "model.ffn_dim=96",
           f"model.max_seq_len={T}", f"data.seq_len={T}"]
STUDENT = ["model.dim=32", "model.n_layers=1", "model.n_heads=2", "model.n_kv_heads=1", "model.ffn_dim=64",
           f"model.max_seq_len={T}", f"data.seq_len={T}"]


def run(args, expect=0):
    return run_retort(failures, args, expect, tail=1200)


def load(ckpt, dims):
    C, L, H, KVH, Fd = dims
    with h5py.File(ckpt, "r") as f:
        m = Llama(259, C, L, H, KVH, Fd, T, tied="output.weight" not in f["model"], dtype=torch.float64)
        with torch.no_grad():
            for name, t in m.named().items():
                t.copy_(torch.from_numpy(f["model"][name][()].astype(np.float64)))
    return m


def divergence(kind, logr, logq, beta):
    """D(r || q) per row over the last dim, from log-probabilities (0 log 0 = 0)."""
    r, q = logr.exp(), logq.exp()
    if kind == "forward_kl":
        return torch.where(r > 0, r * (logr - logq), torch.zeros_like(r)).sum(-1)
    if kind == "reverse_kl":
        return torch.where(q > 0, q * (logq - logr), torch.zeros_like(q)).sum(-1)
    logm = torch.log(beta * r + (1 - beta) * q)
    kl_rm = torch.where(r > 0, r * (logr - logm), torch.zeros_like(r)).sum(-1)
    kl_qm = torch.where(q > 0, q * (logq - logm), torch.zeros_like(q)).sum(-1)
    return beta * kl_rm + (1 - beta) * kl_qm


def reference_loss(student, data, n_windows, mode, kind, temp, alpha, tail="bucket", teacher=None, beta=0.5):
    """Mean over the counted targets (answers and EOS) of (1 - alpha) CE + alpha T^2 D, and the parts."""
    tokens, off, pl = data["tokens"], data["doc_offsets"], data["prompt_len"]
    answer_row = np.full(len(tokens), -1, dtype=np.int64)
    row = 0
    for d in range(len(pl)):
        for i in range(off[d] + 1 + pl[d], off[d + 1]):
            answer_row[i] = row
            row += 1
    x = torch.tensor(np.stack([tokens[w * T:w * T + T] for w in range(n_windows)]), dtype=torch.int64)
    pos = np.stack([np.arange(w * T + 1, w * T + T + 1) for w in range(n_windows)])
    y = torch.tensor(tokens[pos], dtype=torch.int64)
    rows = torch.tensor(answer_row[pos])
    keep = rows >= 0  # loss_on=answer: only answer positions count
    with torch.no_grad():
        z = student(x)[keep]  # [M, V]
        y = y[keep]
        ce = F.cross_entropy(z, y, reduction="none")
        logq_full = torch.log_softmax(z / temp, -1)
        if mode == "online":
            logr = torch.log_softmax(teacher(x)[keep] / temp, -1)
            kd = divergence(kind, logr, logq_full, beta)
        else:
            ids = torch.tensor(data["topk_ids"][rows[keep].numpy()], dtype=torch.int64)
            lp = torch.tensor(data["topk_logprobs"][rows[keep].numpy()], dtype=torch.float64)
            logq_s = logq_full.gather(1, ids)
            if tail == "bucket":
                r_tail = (1 - lp.exp().sum(-1)).clamp(min=1e-30)
                q_tail = (1 - logq_s.exp().sum(-1)).clamp(min=1e-30)
                logr = torch.cat([lp, r_tail.log()[:, None]], -1)
                logq = torch.cat([logq_s, q_tail.log()[:, None]], -1)
            else:
                tc = float(data["attrs"]["topk_temperature"])
                logr = torch.log_softmax(lp * tc / temp, -1)
                logq = torch.log_softmax(logq_s, -1)
            kd = divergence(kind, logr, logq, beta)
    total = (1 - alpha) * ce + alpha * temp * temp * kd
    return total.mean().item(), ce.mean().item(), kd.mean().item()


def first_step(run_dir):
    for line in open(os.path.join(run_dir, "metrics.jsonl")):
        r = json.loads(line)
        if r["type"] == "train" and r["step"] == 1:
            return r
    return {}


def main():
    tmp = tempfile.mkdtemp(prefix="distill-")
    tck, train_h5 = add2_teacher(failures, tmp, CFG, TEACHER, 5)
    synth = os.path.join(tmp, "synth.h5")
    run(["synth", CFG, f"synth.teacher={tck}", "synth.task=add2", "synth.n_prompts=200", "synth.topk=6",
         "synth.topk_temperature=2", "synth.max_tokens=4", "system.threads=2", f"synth.out={synth}"])
    with h5py.File(synth, "r") as f:
        data = {k: f[k][()] for k in f}
        data["attrs"] = dict(f.attrs)
    n_windows = (len(data["tokens"]) - 1) // T
    teacher = load(tck, (48, 2, 4, 2, 96))
    common = [CFG, *STUDENT, f"data.train={synth}", "data.val=", "data.loss_on=answer", "train.steps=1",
              "train.warmup_steps=0", "train.lr=1e-12", "train.min_lr=0", f"train.batch_size={n_windows}",
              "system.threads=2", "run.log_every=1"]
    cases = [("offline_topk", "forward_kl", 2.0, 0.5, "bucket"), ("offline_topk", "jsd", 2.0, 0.7, "bucket"),
             ("offline_topk", "reverse_kl", 2.0, 0.3, "bucket"), ("offline_topk", "forward_kl", 1.0, 0.5, "renorm"),
             ("online", "forward_kl", 2.0, 0.5, None), ("online", "reverse_kl", 1.0, 1.0, None),
             ("online", "jsd", 1.5, 0.4, None)]
    for i, (mode, kind, temp, alpha, tail) in enumerate(cases):
        out = os.path.join(tmp, f"s{i}")
        args = [f"distill.mode={mode}", f"distill.divergence={kind}", f"distill.temperature={temp}",
                f"distill.alpha={alpha}", f"run.out_dir={out}", "distill.beta=0.3"]
        args += [f"distill.topk_tail={tail}"] if tail else [f"distill.teacher={tck}"]
        if run(["distill", *common, *args]).returncode != 0:
            continue
        student = load(os.path.join(out, "ckpt-latest.h5"), (32, 1, 2, 1, 64))
        ref = reference_loss(student, data, n_windows, mode, kind, temp, alpha, tail or "bucket", teacher, 0.3)
        got = first_step(out)
        for name, r, g in zip(("loss", "ce", "kd"), ref, (got.get("loss"), got.get("ce"), got.get("kd"))):
            if g is None or not abs(g - r) <= 2e-4 * abs(r) + 2e-5:
                failures.append(f"{mode} {kind} T={temp} alpha={alpha} {tail or ''}: {name} retort {g} vs PyTorch {r}")
        print(f"{mode:12s} {kind:10s} T={temp} alpha={alpha} {tail or '':6s}: retort {got.get('loss')} "
              f"PyTorch {ref[0]:.6f}")

    # refusals, each naming what to change
    bad = [(["distill.mode=offline_topk", "distill.temperature=1.5"], "distill.temperature"),
           (["distill.mode=offline_topk", "model.vocab_size=300"], "vocabulary"),
           (["distill.mode=online"], "distill.teacher"),
           (["distill.mode=online", f"distill.teacher={tck}", "model.vocab_size=300"], "vocabulary"),
           (["distill.mode=offline_topk", "distill.temperature=2", f"data.train={train_h5}"], "synth.topk")]
    for k, (extra, needle) in enumerate(bad):
        p = run(["distill", *common, f"run.out_dir={tmp}/bad{k}", *extra], expect=2)
        if needle not in p.stderr:
            failures.append(f"refusal {extra}: message lacks {needle!r}: {p.stderr[-600:]}")

    # the teacher is frozen: its file is untouched, the student's checkpoint holds only student tensors
    before = open(tck, "rb").read()
    out = os.path.join(tmp, "frozen")
    run(["distill", *common, "distill.mode=online", f"distill.teacher={tck}", "train.steps=3", "train.lr=1e-3",
         f"run.out_dir={out}"])
    if open(tck, "rb").read() != before:
        failures.append("online distillation changed the teacher's checkpoint")
    with h5py.File(os.path.join(out, "ckpt-latest.h5"), "r") as f:
        if sorted(f["optim/adam_m"]) != sorted(f["model"]) or f["model/token_embd.weight"].shape != (259, 32):
            failures.append("the student's checkpoint holds something other than the student")

    # bit-exact resume of a distillation run
    res = [CFG, *STUDENT, f"data.train={synth}", "data.val=", "data.loss_on=answer", "train.steps=6",
           "train.warmup_steps=1", "train.batch_size=4", "system.threads=2", "run.log_every=1",
           "distill.mode=offline_topk", "distill.temperature=2", "checkpoint.every=0"]
    a, b = os.path.join(tmp, "ra"), os.path.join(tmp, "rb")
    run(["distill", *res, f"run.out_dir={a}"])
    run(["distill", *res, f"run.out_dir={b}", "--stop-after", "3"])
    run(["distill", os.path.join(b, "config.yaml"), "--resume"])
    with h5py.File(os.path.join(a, "ckpt-00000006.h5"), "r") as fa, \
            h5py.File(os.path.join(b, "ckpt-00000006.h5"), "r") as fb:
        diff = [n for n in fa["model"] if not np.array_equal(fa["model"][n][()], fb["model"][n][()])]
    if diff:
        failures.append(f"resumed distillation differs from the straight run in {diff[:3]}")

    shutil.rmtree(tmp, ignore_errors=True)
    finish(failures, "distill: every mode and divergence matches PyTorch; refusals, frozen teacher and resume hold")


if __name__ == "__main__":
    main()
