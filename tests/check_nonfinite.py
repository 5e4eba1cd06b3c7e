"""Non-finite training steps through the CLI. A config provokes them from outside: AdamW with beta2 = 0 and
eps = 1e-30 at lr 10 without clipping moves every weight by about 10 per step, and a few steps later the
backward pass overflows (NaN gradient norm). Checkpoints are written every step and read back with h5py.

- train.skip_nonfinite = 0 (the default): exit 1 at the first non-finite step, the error names that step
  (the one after the last checkpoint), and every checkpoint holds finite weights and moments.
- train.skip_nonfinite = 3: the run goes on past the first non-finite step, each skipped step leaves the
  weights and both AdamW moments bit-identical to the last good step (the checkpoints of the skipped steps
  equal the one before them), metrics.jsonl has a "skip" record per skipped step and the count in its
  train records, the status line shows it, and the 4th in a row stops the run with exit 1.

usage: check_nonfinite.py   (RETORT_BIN, RT_SOURCE_DIR from ctest)"""
import json
import math
import os
import re
import shutil
import subprocess
import sys
import tempfile

import numpy as np

from checklib import ckpt_tensors, finish

RETORT = os.environ["RETORT_BIN"]
SRC = os.environ["RT_SOURCE_DIR"]
CONFIG = os.path.join(SRC, "trainer/configs/tiny.yaml")
failures = []

KEYS = ["model.dim=32", "model.n_layers=1", "model.n_heads=2", "model.n_kv_heads=1", "model.ffn_dim=64",
        "model.max_seq_len=64", "data.seq_len=64", "train.batch_size=4", "train.eval_every=0",
        "system.threads=1", "run.log_every=1", "train.steps=30", "checkpoint.every=1", "checkpoint.keep=100",
        # the provocation: sign-like updates of size lr with no clipping
        "train.lr=10", "train.warmup_steps=0", "train.grad_clip=0", "train.beta2=0", "train.eps=1e-30"]


def fail(msg):
    failures.append(msg)
    print("FAIL:", msg)


def run(args):
    return subprocess.run([RETORT] + args, capture_output=True, text=True, timeout=300)



def ckpts(out):
    steps = sorted(int(m.group(1)) for n in os.listdir(out) if (m := re.fullmatch(r"ckpt-(\d+)\.h5", n)))
    return {s: os.path.join(out, f"ckpt-{s:08d}.h5") for s in steps}


def all_finite(out, what):
    for step, path in ckpts(out).items():
        t, _ = ckpt_tensors(path)
        bad = [n for n, a in t.items() if not np.isfinite(a).all()]
        if bad:
            fail(f"{what}: checkpoint of step {step} holds non-finite values in {bad[:4]}")


def records(out):
    return [json.loads(line) for line in open(os.path.join(out, "metrics.jsonl"))]


def stop_at_once(work, data):
    out = os.path.join(work, "stop")
    p = run(["train", CONFIG] + KEYS + data + [f"run.out_dir={out}"])
    if p.returncode != 1:
        fail(f"skip_nonfinite=0: exit status {p.returncode}, expected 1\n{p.stderr[-2000:]}")
        return None
    saved = ckpts(out)
    if not saved:
        fail("skip_nonfinite=0: no checkpoint before the non-finite step (the provocation changed?)")
        return None
    bad_step = max(saved) + 1
    if f"step {bad_step}:" not in p.stderr or "train.skip_nonfinite" not in p.stderr:
        fail(f"skip_nonfinite=0: the error should name step {bad_step} and the key:\n{p.stderr[-1500:]}")
    if any(r["type"] == "train" and r["step"] >= bad_step for r in records(out)):
        fail("skip_nonfinite=0: a train record at or after the non-finite step")
    all_finite(out, "skip_nonfinite=0")
    print(f"skip_nonfinite=0: exit 1 naming step {bad_step}; checkpoints 1..{bad_step - 1} finite")
    return bad_step


def skip_three(work, data, bad_step):
    out = os.path.join(work, "skip")
    p = run(["train", CONFIG] + KEYS + data + [f"run.out_dir={out}", "train.skip_nonfinite=3"])
    if p.returncode != 1:
        fail(f"skip_nonfinite=3: exit status {p.returncode}, expected 1 after 4 in a row\n{p.stderr[-2000:]}")
    last = bad_step + 3
    if f"steps {bad_step} to {last}" not in p.stderr or "4 non-finite steps in a row" not in p.stderr:
        fail(f"skip_nonfinite=3: the error should name steps {bad_step} to {last}:\n{p.stderr[-1500:]}")
    skips = [r for r in records(out) if r["type"] == "skip"]
    if [r["step"] for r in skips] != [bad_step, bad_step + 1, bad_step + 2]:
        fail(f"skip_nonfinite=3: skip records for steps {[r['step'] for r in skips]}")
    for k, r in enumerate(skips):
        if r["in_a_row"] != k + 1 or r["skipped"] != k + 1:
            fail(f"skip_nonfinite=3: skip record {r}")
        finite = [v is not None and math.isfinite(v) for v in (r["loss"], r["grad_norm"])]
        if all(finite):
            fail(f"skip_nonfinite=3: a skipped step with a finite loss and norm: {r}")
    train = {r["step"]: r for r in records(out) if r["type"] == "train"}
    for k in range(3):
        if train.get(bad_step + k, {}).get("skipped") != k + 1:
            fail(f"skip_nonfinite=3: the train record of step {bad_step + k} lacks skipped={k + 1}")
    if "skipped" in train.get(bad_step - 1, {"skipped": 1}):
        fail("skip_nonfinite=3: a skip count before any step was skipped")
    if not re.search(rf"step +{bad_step + 2}/30 \| loss \S+ \| skipped 3 \|", p.stderr):
        fail(f"skip_nonfinite=3: no status line with 'skipped 3' for step {bad_step + 2}:\n{p.stderr[-1500:]}")
    # the checkpoints of the skipped steps: the last good step's weights and moments, bit for bit
    saved = ckpts(out)
    if sorted(saved) != list(range(1, last)):
        fail(f"skip_nonfinite=3: checkpoints of steps {sorted(saved)}, expected 1..{last - 1}")
        return
    good, _ = ckpt_tensors(saved[bad_step - 1])
    for s in range(bad_step, last):
        t, st = ckpt_tensors(saved[s])
        step = st["step"]
        if step != s:
            fail(f"skip_nonfinite=3: ckpt-{s:08d}.h5 records step {step}")
        diff = [n for n in good if not np.array_equal(good[n], t[n])]
        if diff:
            fail(f"skip_nonfinite=3: skipped step {s} changed {diff[:4]}")
    # and the good steps are those of the run that stopped at once
    ref, _ = ckpt_tensors(os.path.join(work, "stop", f"ckpt-{bad_step - 1:08d}.h5"))
    if any(not np.array_equal(ref[n], good[n]) for n in ref):
        fail("skip_nonfinite=3: the steps before the first skip differ from the run without skipping")
    all_finite(out, "skip_nonfinite=3")
    print(f"skip_nonfinite=3: steps {bad_step}-{bad_step + 2} skipped with {len(good)} tensors unchanged; "
          f"stopped at step {last}")


def main():
    work = tempfile.mkdtemp(prefix="rt_nonfinite_")
    try:
        d = os.path.join(work, "data")
        os.mkdir(d)
        for split, n, seed in (("train", 400, 1), ("val", 50, 2)):
            p = run(["data", "synth", "--task", "add", "--n", str(n), "--split", split, "--seed", str(seed),
                     "--out", f"{d}/{split}.h5"])
            if p.returncode != 0:
                sys.exit(p.stderr)
        data = [f"data.train={d}/train.h5", f"data.val={d}/val.h5"]
        bad_step = stop_at_once(work, data)
        if bad_step is not None:
            skip_three(work, data, bad_step)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    finish(failures, "all non-finite checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
