"""What the Python checks (tests/check_*.py) share: running retort and recording an unexpected exit, comparing
arrays with a tolerance, the training losses of a run directory, a checkpoint's tensors and state, a small addition teacher, and the closing
report that sets the exit status. Each check keeps its own list of failures and passes it in; a check exits 1 when the list is not empty.

Imported from the checks' own folder (python puts a script's folder first on sys.path)."""
import json
import os
import shutil
import subprocess
import sys

import numpy as np

try:  # the checks run with Debian's python, which has h5py; those run with .venv-hf/bin/python do not
    import h5py
except ImportError:
    h5py = None


# Open MPI in the checks: as root (both variables are needed), more ranks than cores, ranks not bound to
# cores (a shared 2-core machine), loopback and shared memory only. Every mpirun also needs a timeout: a
# collective one rank skips hangs forever.
MPI_ENV = {"OMPI_ALLOW_RUN_AS_ROOT": "1", "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM": "1",
           "OMPI_MCA_rmaps_base_oversubscribe": "1", "OMPI_MCA_hwloc_base_binding_policy": "none",
           "OMPI_MCA_btl": "self,vader", "OMPI_MCA_oob_tcp_if_include": "lo"}


def run_retort(failures, args, expect=0, what=None, timeout=None, tail=1500):
    """retort ARGS; an exit other than `expect` (None: any) is a failure naming `what` (default: the first
    arguments) with the end of stderr. Returns the CompletedProcess."""
    p = subprocess.run([os.environ["RETORT_BIN"]] + list(args), capture_output=True, text=True, timeout=timeout)
    if expect is not None and p.returncode != expect:
        failures.append(f"{what or 'retort ' + ' '.join(args[:3])}: exited {p.returncode}, expected {expect}: "
                        f"{p.stderr[-tail:]}")
    return p


def check_close(failures, what, got, ref, atol, rtol):
    """|got - ref| <= atol + rtol |ref| element-wise, in float64, shapes equal; NaN never passes. A failure
    counts the elements off and names the first with both values and the worst error."""
    got = np.asarray(got, dtype=np.float64)
    ref = np.asarray(ref, dtype=np.float64)
    if got.shape != ref.shape:
        failures.append(f"{what}: shape {got.shape} != {ref.shape}")
        return
    err = np.abs(got - ref)
    bad = ~(err <= atol + rtol * np.abs(ref))  # NaN fails
    if bad.any():
        i = np.flatnonzero(bad.ravel())[0]
        failures.append(f"{what}: {bad.sum()} of {bad.size} off, first at {i}: got {got.ravel()[i]:.8g} "
                        f"ref {ref.ravel()[i]:.8g} (max err {err.max():.3g})")


def train_losses(run_dir):
    """{step: loss} of the train records in a run directory's metrics.jsonl."""
    out = {}
    for line in open(os.path.join(run_dir, "metrics.jsonl")):
        rec = json.loads(line)
        if rec["type"] == "train":
            out[rec["step"]] = rec["loss"]
    return out


def ckpt_tensors(path):
    """A checkpoint's weights and both AdamW moments, {"model/<name>" | "optim/adam_m/<name>" | ...: array},
    and its /state attributes as plain Python values (step, tokens_seen, rng, ...), read with h5py."""
    with h5py.File(path, "r") as f:
        t = {}
        for group in ("model", "optim/adam_m", "optim/adam_v"):
            for name, ds in f[group].items():
                t[f"{group}/{name}"] = ds[()]
        state = {k: np.array(v).tolist() for k, v in f["state"].attrs.items()}
    return t, state


def all_tensors(path):
    """Every numeric dataset of a checkpoint by path (/model or /lora, /optim/...), and its /state attributes."""
    t = {}
    with h5py.File(path, "r") as f:
        f.visititems(lambda name, obj: t.__setitem__(name, obj[()])
                     if isinstance(obj, h5py.Dataset) and obj.dtype.kind in "fiu" else None)
        state = {k: np.array(v).tolist() for k, v in f["state"].attrs.items()}
    return t, state


def add2_teacher(failures, tmp, cfg, model_args, data_seed):
    """A small teacher that learns 1-2 digit addition in seconds (150 steps at lr 1e-2 on 4000 problems of the
    add2 task drawn with data_seed), trained in tmp/teacher. Returns (its checkpoint, the training dataset)."""
    train_h5 = os.path.join(tmp, "train.h5")
    run_retort(failures, ["data", "synth", "--task", "add2", "--n", "4000", "--seed", str(data_seed), "--out",
                          train_h5])
    teacher_dir = os.path.join(tmp, "teacher")
    run_retort(failures, ["train", cfg, *model_args, "train.batch_size=16", "train.steps=150", "train.warmup_steps=10",
                          "train.lr=1e-2", "train.eval_every=0", "system.threads=2", f"data.train={train_h5}",
                          "data.val=", f"run.out_dir={teacher_dir}"])
    return os.path.join(teacher_dir, "ckpt-latest.h5"), train_h5


def finish(failures, passed, work=None, limit=None):
    """The closing report: with failures, prints them (the first `limit` when given), keeps `work` for a look
    and exits 1; otherwise removes `work` and prints `passed`."""
    if failures:
        print("\n".join(failures[:limit] if limit else failures))
        if work:
            print(f"(work files kept in {work})")
        print(f"FAILED: {len(failures)} checks")
        sys.exit(1)
    if work:
        shutil.rmtree(work, ignore_errors=True)
    print(passed)
