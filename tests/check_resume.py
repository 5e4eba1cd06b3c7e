"""Training through the CLI: bit-exact resume, fallback past a damaged checkpoint, signal handling, the run
directory's files, and the inspect/generate/eval commands on the result. Checks files with h5py.

usage: check_resume.py   (RETORT_BIN, RT_SOURCE_DIR from ctest)

RT_TEST_RESUME_STEPS: the steps of the run the SIGTERM check interrupts (100; the CUDA emulation build's
train_resume_cuda runs 20, tests/cuda.cmake: its steps are slow, and 20 still leave the signal landing
mid-run)."""
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

import h5py
import numpy as np

from checklib import ckpt_tensors, finish, train_losses

RETORT = os.environ["RETORT_BIN"]
SRC = os.environ["RT_SOURCE_DIR"]
failures = []


def fail(msg):
    failures.append(msg)
    print("FAIL:", msg)


def run(args, expect=0, **kw):
    p = subprocess.run([RETORT] + args, capture_output=True, text=True, **kw)
    if expect is not None and p.returncode != expect:
        fail(f"retort {' '.join(args)} exited {p.returncode}, expected {expect}\nstderr: {p.stderr[-2000:]}")
    return p


losses = train_losses



def same_checkpoint(a, b, what):
    ta, sa = ckpt_tensors(a)
    tb, sb = ckpt_tensors(b)
    if sorted(ta) != sorted(tb):
        fail(f"{what}: tensor names differ")
        return
    diff = [n for n in ta if not np.array_equal(ta[n], tb[n])]
    if diff:
        fail(f"{what}: {len(diff)} tensors differ bit-wise, e.g. {diff[0]} (max |d| "
             f"{np.abs(ta[diff[0]] - tb[diff[0]]).max():.3g})")
    if sa != sb:
        fail(f"{what}: state differs: {sa} vs {sb}")


# RT_TEST_DEVICE=cuda runs the same checks on the GPU in bf16 (tests/cuda.cmake); exit 77 = skipped.
# RT_TEST_PRECISION=bf16 runs them in bf16 on the CPU (tests/cpu_bf16.cmake).
DEVICE = os.environ.get("RT_TEST_DEVICE", "cpu")
PRECISION = os.environ.get("RT_TEST_PRECISION", "fp32" if DEVICE == "cpu" else "bf16")


def main():
    if DEVICE != "cpu":
        ver = subprocess.run([RETORT, "--version"], capture_output=True, text=True).stdout
        if "gpu: yes" not in ver:
            print(f"skipped: no usable GPU ({ver.strip().splitlines()[-1] if ver.strip() else 'no answer'})")
            sys.exit(77)
    tmp = tempfile.mkdtemp(prefix="resume-")
    train_h5, val_h5 = os.path.join(tmp, "train.h5"), os.path.join(tmp, "val.h5")
    run(["data", "synth", "--task", "add", "--n", "3000", "--split", "train", "--seed", "3", "--out", train_h5])
    run(["data", "synth", "--task", "add", "--n", "200", "--split", "val", "--seed", "4", "--out", val_h5])
    cfg = os.path.join(SRC, "trainer", "configs", "tiny.yaml")
    common = ["model.dim=32", "model.n_layers=2", "model.n_heads=4", "model.n_kv_heads=2", "model.ffn_dim=64",
              "model.max_seq_len=32", "data.seq_len=32", "train.batch_size=4", "train.grad_accum=2",
              "train.steps=12", "train.warmup_steps=2", "train.eval_every=4", "train.eval_batches=2",
              "run.log_every=1", "system.threads=2", f"data.train={train_h5}", f"data.val={val_h5}"]
    common = [f"system.device={DEVICE}", f"system.precision={PRECISION}"] + common
    if DEVICE == "cpu" and PRECISION == "bf16":  # refused on CPUs oneDNN has no bf16 kernels for
        p = subprocess.run([RETORT, "train", cfg, f"run.out_dir={tmp}/probe"] + common +
                           ["train.steps=1", "train.warmup_steps=0", "train.eval_every=0"], capture_output=True,
                           text=True)
        if "has no bf16 kernels" in p.stderr:
            print(f"skipped: {p.stderr.strip().splitlines()[-1]}")
            sys.exit(77)

    a = os.path.join(tmp, "a")
    run(["train", cfg, f"run.out_dir={a}", "checkpoint.every=0"] + common)

    # the run directory: resolved config, metrics, final checkpoint with the documented layout
    for f in ("config.yaml", "metrics.jsonl", "ckpt-00000012.h5", "ckpt-latest.h5"):
        if not os.path.exists(os.path.join(a, f)):
            fail(f"run directory lacks {f}")
    la = losses(a)
    if sorted(la) != list(range(1, 13)):
        fail(f"metrics.jsonl has train steps {sorted(la)}")
    if not la[12] < la[1]:
        fail(f"loss did not fall over 12 steps: {la[1]} -> {la[12]}")
    h5check = os.path.join(SRC, "tests", "check_ckpt_h5py.py")
    p = subprocess.run([sys.executable, h5check, os.path.join(a, "ckpt-latest.h5")], capture_output=True, text=True)
    if p.returncode != 0:
        fail(f"check_ckpt_h5py.py on a training checkpoint: {p.stdout[-1500:]} {p.stderr[-1500:]}")

    # half, save, resume: identical losses, weights, moments and state
    b = os.path.join(tmp, "b")
    run(["train", cfg, f"run.out_dir={b}", "checkpoint.every=0", "--stop-after", "6"] + common)
    if not os.path.exists(os.path.join(b, "ckpt-00000006.h5")):
        fail("--stop-after 6 left no ckpt-00000006.h5")
    run(["train", os.path.join(b, "config.yaml"), "--resume"])
    lb = losses(b)
    if lb != la:
        fail(f"resumed losses differ:\n straight {la}\n resumed  {lb}")
    same_checkpoint(os.path.join(a, "ckpt-00000012.h5"), os.path.join(b, "ckpt-00000012.h5"), "resume")

    # a run directory with checkpoints is not overwritten without --resume
    p = run(["train", os.path.join(b, "config.yaml")], expect=1)
    if "--resume" not in p.stderr:
        fail(f"starting over a run directory did not point to --resume: {p.stderr}")

    # fallback past a damaged newest checkpoint, with a warning, still bit-exact
    c = os.path.join(tmp, "c")
    run(["train", cfg, f"run.out_dir={c}", "checkpoint.every=2", "checkpoint.keep=2", "--stop-after", "6"] + common)
    kept = sorted(f for f in os.listdir(c) if f.startswith("ckpt-0"))
    if kept != ["ckpt-00000004.h5", "ckpt-00000006.h5"]:
        fail(f"checkpoint.keep=2 kept {kept}")
    newest = os.path.join(c, "ckpt-00000006.h5")
    size = os.path.getsize(newest)
    with open(newest, "r+b") as f:
        f.truncate(size // 2)
    p = run(["train", os.path.join(c, "config.yaml"), "--resume"])
    if "ckpt-00000006.h5" not in p.stderr or "warning" not in p.stderr:
        fail(f"resume past a damaged checkpoint gave no warning naming it: {p.stderr[-1500:]}")
    if "step 4" not in p.stderr:
        fail(f"resume did not fall back to step 4: {p.stderr[-1500:]}")
    same_checkpoint(os.path.join(a, "ckpt-00000012.h5"), os.path.join(c, "ckpt-00000012.h5"), "fallback resume")

    # SIGTERM: finish the step, checkpoint, exit 75 (checkpointed, not finished); --resume completes the run identically to a run that
    # was never interrupted (losses of every step, weights, moments and state bit for bit)
    long_steps = int(os.environ.get("RT_TEST_RESUME_STEPS", "100"))
    long_run = common[:-3] + [f"train.steps={long_steps}", "run.log_every=1", "system.threads=2", f"data.train={train_h5}",
                              f"data.val={val_h5}"]
    r = os.path.join(tmp, "r")
    run(["train", cfg, f"run.out_dir={r}", "checkpoint.every=0"] + long_run)
    s = os.path.join(tmp, "s")
    proc = subprocess.Popen([RETORT, "train", cfg, f"run.out_dir={s}", "checkpoint.every=0"] + long_run,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    metrics = os.path.join(s, "metrics.jsonl")
    while time.time() < deadline and not (os.path.exists(metrics) and os.path.getsize(metrics) > 0):
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    if proc.returncode != 75:
        fail(f"SIGTERM: exit {proc.returncode}, expected 75 (checkpointed, not finished): {err[-1500:]}")
    latest = os.path.join(s, "ckpt-latest.h5")
    if not os.path.islink(latest):
        fail("SIGTERM left no checkpoint")
    else:
        with h5py.File(latest, "r") as f:
            stopped_at = int(f["state"].attrs["step"])
        # a run that finished before the signal landed would make the resume below compare two complete runs
        if not 1 <= stopped_at < long_steps:
            fail(f"SIGTERM: the checkpoint left is at step {stopped_at}, not an interrupted run's "
                 f"(1..{long_steps - 1})")
        p = run(["train", os.path.join(s, "config.yaml"), "--resume"])
        if f"step {stopped_at}" not in p.stderr:
            fail(f"resume after SIGTERM did not start from step {stopped_at}: {p.stderr[-1500:]}")
        if losses(s) != losses(r):
            fail("losses after SIGTERM and --resume differ from the uninterrupted run's")
        final = f"ckpt-{long_steps:08d}.h5"
        same_checkpoint(os.path.join(r, final), os.path.join(s, final), "resume after SIGTERM")

    # the other commands read the checkpoint
    ck = os.path.join(a, "ckpt-latest.h5")
    p = run(["inspect", ck])
    if "blk.1.ffn_down.weight" not in p.stdout:
        fail(f"inspect does not list blk.1.ffn_down.weight: {p.stdout[:1000]}")
    p = run(["generate", ck, "--prompt", "12+34=", "--max-tokens", "4", "--temperature", "0", "--device", DEVICE])
    if not p.stdout.startswith("12+34="):
        fail(f"generate did not echo its prompt: {p.stdout!r}")
    p = run(["eval", ck, "--data", val_h5, "--json", "--device", DEVICE])
    try:
        rows = json.loads(p.stdout)["rows"]
        if not (rows[0]["total"] == 200 and 0 <= rows[0]["accuracy"] <= 1 and rows[0]["loss"] > 0):
            fail(f"eval --json: {rows}")
    except (ValueError, KeyError, IndexError) as e:
        fail(f"eval --json output is not the expected JSON ({e}): {p.stdout[:500]}")

    if PRECISION == "bf16":  # a bf16 run keeps fp32 master weights: the checkpoint and its export hold them
        from gguf import GGUFReader
        out = os.path.join(tmp, "bf16.gguf")
        run(["export", ck, "--format", "gguf", "--type", "f32", "--out", out])
        if os.path.exists(out):
            t, _ = ckpt_tensors(ck)
            got = {x.name: np.array(x.data).reshape(-1) for x in GGUFReader(out).tensors}
            for name in ("token_embd.weight", "blk.0.attn_v.weight", "blk.1.ffn_down.weight", "output_norm.weight"):
                want = t[f"model/{name}"]
                if want.dtype != np.float32:
                    fail(f"the bf16 run's checkpoint holds {name} as {want.dtype}, not its fp32 master weight")
                if name not in got or not np.array_equal(got[name], want.reshape(-1)):
                    fail(f"gguf export of the bf16 run: {name} is not the checkpoint's weight")

    shutil.rmtree(tmp, ignore_errors=True)
    finish(failures, "resume, fallback, signal and command checks passed")


if __name__ == "__main__":
    main()
