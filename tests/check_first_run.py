"""What a new user meets running the embedded default from a fresh clone, and the MFU it reports.

- no datasets yet: `retort train trainer/configs/tiny.yaml` exits 1 naming the missing path and the command
  that makes it (./data/make_datasets.sh, retort data synth), and leaves no run directory behind;
  `retort distill` names `retort synth`, which makes a student's data;
- `train.steps=N` alone, below the file's warm-up: one note on stderr, the run trains, and the learning rate
  logged follows a linear warm-up over all N steps (lr * step / N, computed here);
- MFU: with system.peak_tflops=X the logged mfu is (tokens/s x FLOPs per token) / X, FLOPs per token
  computed here from the model's shapes (6 per weight in a matmul, + 12 L C T for attention); without it,
  on the CPU, the peak is the measured GEMM and says so.

usage: check_first_run.py   (RETORT_BIN, RT_SOURCE_DIR from ctest)"""
import json
import os
import shutil
import subprocess
import tempfile

import yaml

from checklib import finish

RETORT = os.environ["RETORT_BIN"]
SRC = os.environ["RT_SOURCE_DIR"]
TINY = os.path.join(SRC, "trainer", "configs", "tiny.yaml")
# the datasets tiny.yaml reads, relative to the working directory (data/addpad_train.h5, ...)
TINY_DATA = yaml.safe_load(open(TINY))["data"]
failures = []


def check(cond, msg):
    if not cond:
        failures.append(msg)


def resolved_config(run_dir):
    """config.yaml as written by the run: section: / key: value lines."""
    cfg, section = {}, None
    for line in open(os.path.join(run_dir, "config.yaml")):
        if not line.strip():
            continue
        if not line.startswith(" "):
            section = line.strip().rstrip(":")
        else:
            k, v = line.strip().split(":", 1)
            cfg[f"{section}.{k}"] = v.strip().strip('"')
    return cfg


def train_flops_per_token(cfg):
    C, L = int(cfg["model.dim"]), int(cfg["model.n_layers"])
    H, KVH, F = int(cfg["model.n_heads"]), int(cfg["model.n_kv_heads"]), int(cfg["model.ffn_dim"])
    V, T = int(cfg["model.vocab_size"]), int(cfg["data.seq_len"])
    D = C // H
    per_layer = C * C + 2 * C * KVH * D + C * C + 3 * C * F  # q, k, v, o, gate, up, down
    matmul_weights = L * per_layer + V * C  # + the output head (tied or not, it is a matmul)
    return 6 * matmul_weights + 12 * L * C * T


def train_records(run_dir):
    recs = [json.loads(l) for l in open(os.path.join(run_dir, "metrics.jsonl"))]
    return [r for r in recs if r["type"] == "train"]


def main():
    tmp = tempfile.mkdtemp(prefix="first-run-")
    try:
        # a fresh clone: the config's relative data paths do not exist in the working directory
        p = subprocess.run([RETORT, "train", TINY, "run.out_dir=r0"], cwd=tmp, capture_output=True, text=True)
        check(p.returncode == 1, f"no datasets: exit {p.returncode}, expected 1; stderr: {p.stderr[-600:]}")
        for needle in [f"data.train {TINY_DATA['train']} does not exist", "./data/make_datasets.sh",
                       "retort data synth --task"]:
            check(needle in p.stderr, f"no datasets: stderr lacks {needle!r}: {p.stderr[-600:]}")
        check("cannot open" not in p.stderr, f"no datasets: HDF5's open error leaked: {p.stderr[-600:]}")
        check(not os.path.exists(os.path.join(tmp, "r0")), "no datasets: the run directory was created")
        # a student's data is the teacher's answers: the message names retort synth instead
        distill = os.path.join(SRC, "trainer", "configs", "distill.yaml")
        p = subprocess.run([RETORT, "distill", distill, "run.out_dir=rd"], cwd=tmp, capture_output=True, text=True)
        check(p.returncode == 1 and "data.train data/synth.h5 does not exist" in p.stderr
              and "retort synth CONFIG synth.out=data/synth.h5" in p.stderr,
              f"distill without its data: exit {p.returncode}; stderr: {p.stderr[-600:]}")

        # the train file exists, the val file not: named as data.val
        for split, n in [("train", 600), ("val", 100)]:
            os.makedirs(os.path.join(tmp, os.path.dirname(TINY_DATA[split])), exist_ok=True)
            subprocess.run([RETORT, "data", "synth", "--task", "add", "--n", str(n), "--split", split, "--out",
                            TINY_DATA[split]], cwd=tmp, check=True, capture_output=True)
        os.rename(os.path.join(tmp, TINY_DATA["val"]), os.path.join(tmp, "val.h5"))
        p = subprocess.run([RETORT, "train", TINY, "run.out_dir=r1"], cwd=tmp, capture_output=True, text=True)
        check(p.returncode == 1 and f"data.val {TINY_DATA['val']} does not exist" in p.stderr,
              f"no val dataset: exit {p.returncode}; stderr: {p.stderr[-600:]}")
        os.rename(os.path.join(tmp, "val.h5"), os.path.join(tmp, TINY_DATA["val"]))

        # train.steps alone, below tiny.yaml's warm-up; small shapes keep it quick
        steps = 4
        small = ["model.dim=32", "model.n_layers=2", "model.n_heads=2", "model.n_kv_heads=1",
                 "model.ffn_dim=64", "data.seq_len=32", "model.max_seq_len=32", "train.batch_size=4",
                 "run.log_every=1", "train.eval_every=0"]
        p = subprocess.run([RETORT, "train", TINY, f"train.steps={steps}", "run.out_dir=r2"] + small, cwd=tmp,
                           capture_output=True, text=True)
        check(p.returncode == 0, f"train.steps={steps}: exit {p.returncode}; stderr: {p.stderr[-800:]}")
        notes = [l for l in p.stderr.splitlines() if "warmup_steps" in l]
        check(len(notes) == 1 and f"warming up over all {steps} steps" in notes[0],
              f"train.steps={steps}: expected one warm-up note, got {notes}")
        if p.returncode == 0:
            run = os.path.join(tmp, "r2")
            cfg = resolved_config(run)
            check(cfg["train.warmup_steps"] == str(steps), f"resolved warmup_steps {cfg['train.warmup_steps']}")
            lr = float(cfg["train.lr"])
            for r in train_records(run):
                want = lr * r["step"] / steps  # linear warm-up reaching lr at the last step
                check(abs(r["lr"] - want) <= 1e-5 * lr, f"step {r['step']}: lr {r['lr']}, expected {want}")
                check(r.get("peak_source") == "measured" and r["peak_flops"] == r["gemm_flops_measured"],
                      f"CPU without system.peak_tflops: expected the measured GEMM as the peak, got {r}")

        # both set explicitly and in conflict: still clamped, still said
        p = subprocess.run([RETORT, "train", TINY, "train.steps=2", "train.warmup_steps=50", "run.out_dir=r3",
                            "--stop-after", "1"] + small, cwd=tmp, capture_output=True, text=True)
        check(p.returncode == 0 and "train.warmup_steps 50 exceeds train.steps 2" in p.stderr,
              f"explicit conflict: exit {p.returncode}; stderr: {p.stderr[-600:]}")

        # MFU against a configured peak
        peak_tflops = 0.02
        p = subprocess.run([RETORT, "train", TINY, "train.steps=3", "run.out_dir=r4",
                            f"system.peak_tflops={peak_tflops}"] + small, cwd=tmp, capture_output=True, text=True)
        check(p.returncode == 0, f"peak_tflops: exit {p.returncode}; stderr: {p.stderr[-800:]}")
        if p.returncode == 0:
            run = os.path.join(tmp, "r4")
            fpt = train_flops_per_token(resolved_config(run))
            recs = train_records(run)
            check(len(recs) == 3, f"peak_tflops: {len(recs)} train records, expected 3")
            for r in recs:
                want = r["tokens_per_s"] * fpt / (peak_tflops * 1e12)
                check(abs(r["mfu"] - want) <= 1e-4 * want, f"step {r['step']}: mfu {r['mfu']}, expected {want}")
                check(abs(r["flops_per_s"] - r["tokens_per_s"] * fpt) <= 1e-4 * r["flops_per_s"],
                      f"step {r['step']}: flops_per_s {r['flops_per_s']}, expected {r['tokens_per_s'] * fpt}")
                check(r["peak_source"] == "config" and r["peak_flops"] == peak_tflops * 1e12,
                      f"step {r['step']}: peak {r.get('peak_flops')} from {r.get('peak_source')}")
                check(r.get("gemm_flops_measured", 0) > 0, f"step {r['step']}: no measured GEMM beside MFU")
            status = [l for l in p.stderr.splitlines() if l.startswith("step ")]
            check(status and all("of config 20 GFLOP/s (measured GEMM " in l for l in status),
                  f"status lines do not state the peak: {status}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    finish(failures, "first run: missing datasets named, warm-up clamped, MFU against its stated peak")


if __name__ == "__main__":
    main()
