"""A full disk, for every writer: checkpoints and metrics.jsonl (`retort train`), datasets (`retort data synth`, `retort data
text`), the teacher's answers (`retort synth`: its chunks and the merged file) and exports (GGUF file, ONNX
folder). Each writes into a 600 KB tmpfs that is full or fills up, and must exit 1 (not die of a signal),
say the disk is full and name the file, leave no temp file, and leave the previous file as it was: byte for
byte, and (checkpoints) equal to the same step of a run on an ordinary disk, read with h5py.

Needs root to mount the tmpfs; exits 77 (ctest: skipped) where mounting is not allowed.

usage: check_disk_full.py   (RETORT_BIN, RT_SOURCE_DIR from ctest)"""
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile

import h5py
import numpy as np

from checklib import ckpt_tensors, finish

RETORT = os.environ["RETORT_BIN"]
SRC = os.environ["RT_SOURCE_DIR"]
CONFIG = os.path.join(SRC, "trainer/configs/tiny.yaml")
SKIP = 77
failures = []

# A model small enough that one checkpoint (weights and both AdamW moments) takes about 210 KB: two fit in
# 600 KB, the third does not.
MODEL = ["model.dim=32", "model.n_layers=1", "model.n_heads=2", "model.n_kv_heads=1", "model.ffn_dim=64",
         "model.max_seq_len=64", "data.seq_len=64", "train.batch_size=4", "train.warmup_steps=1",
         "train.eval_every=0", "system.threads=1", "run.log_every=1"]


def fail(msg):
    failures.append(msg)
    print("FAIL:", msg)


def run(args, **kw):
    return subprocess.run([RETORT] + args, capture_output=True, text=True, timeout=300, **kw)


def expect_ok(p, what):
    if p.returncode != 0:
        print(p.stdout[-2000:], p.stderr[-3000:])
        sys.exit(f"{what}: exited {p.returncode} on an ordinary disk")


def sha(path):
    return hashlib.sha256(open(path, "rb").read()).hexdigest()


def tree_hashes(d):
    return {n: sha(os.path.join(d, n)) for n in sorted(os.listdir(d))}


def free_bytes(d):
    st = os.statvfs(d)
    return st.f_bavail * st.f_frsize


def fill(mount, leave):
    """A filler file that leaves `leave` bytes free (tmpfs counts whole 4 KiB pages)."""
    path = os.path.join(mount, "filler")
    n = free_bytes(mount) - leave
    if n > 0:
        with open(path, "ab") as f:
            f.write(b"\x5a" * n)
    return path


def temps_left(d):
    out = []
    for root, dirs, files in os.walk(d):
        out += [os.path.join(root, n) for n in files + dirs if ".tmp" in n or ".old." in n]
    return out


def expect_disk_full(p, what, names, where):
    """exit 1 with a message that says the disk is full and names the file; no temp file in `where`."""
    if p.returncode != 1:
        fail(f"{what}: exit status {p.returncode} (a negative one is a signal), expected 1\n{p.stderr[-1500:]}")
    err = p.stderr
    if "No space left on device" not in err or "disk full" not in err:
        fail(f"{what}: the error does not say the disk is full:\n{err[-1500:]}")
    if names not in err:
        fail(f"{what}: the error does not name {names}:\n{err[-1500:]}")
    left = temps_left(where)
    if left:
        fail(f"{what}: temp files left behind: {left}")



def checkpoints(work, mount, data):
    """Training on the tmpfs: steps 1 and 2 fit, step 3 does not."""
    ref = os.path.join(work, "ref")
    args = ["train", CONFIG] + MODEL + [f"data.train={data}/train.h5", f"data.val={data}/val.h5",
                                        "checkpoint.every=1", "checkpoint.keep=3"]
    expect_ok(run(args + [f"run.out_dir={ref}", "train.steps=2"]), "reference training run")
    out = os.path.join(mount, "run")
    p = run(args + [f"run.out_dir={out}", "train.steps=6"])
    expect_disk_full(p, "train (checkpoint 3)", "ckpt-00000003.h5", mount)
    latest = os.path.join(out, "ckpt-latest.h5")
    if not os.path.exists(latest) or os.path.realpath(latest) != os.path.join(out, "ckpt-00000002.h5"):
        fail(f"train: ckpt-latest.h5 should still point at step 2: {os.listdir(out)}")
        return
    t, st = ckpt_tensors(latest)
    tr, st_ref = ckpt_tensors(os.path.join(ref, "ckpt-00000002.h5"))
    step, step_ref = st["step"], st_ref["step"]
    if step != 2 or step_ref != 2 or sorted(t) != sorted(tr):
        fail(f"train: checkpoint step {step} / names differ from the reference run")
    diff = [n for n in tr if not np.array_equal(t[n], tr[n])]
    if diff:
        fail(f"train: the checkpoint of step 2 differs from the reference run's in {diff[:5]}")
    # and retort itself still reads it
    p = run(["inspect", latest])
    if p.returncode != 0:
        fail(f"train: retort inspect cannot read the surviving checkpoint: {p.stderr[-1000:]}")
    print(f"train: exit 1 at checkpoint 3; step 2 intact, {len(tr)} tensors equal to the reference")
    shutil.rmtree(out)


def metrics(work, mount, data):
    """Training on a tmpfs with 8 KiB free and no checkpoints due: metrics.jsonl fills it. The run must stop
    with exit 1 naming metrics.jsonl and the full disk, and the file must hold only whole JSON lines (the
    record that did not fit is cut off, not left half-written)."""
    out = os.path.join(mount, "run")
    os.mkdir(out)
    filler = fill(mount, 8192)
    args = ["train", CONFIG] + MODEL + [f"data.train={data}/train.h5", "data.val=", "checkpoint.every=0",
                                        "train.steps=400", f"run.out_dir={out}"]
    p = run(args)
    expect_disk_full(p, "train (metrics.jsonl)", "metrics.jsonl", mount)
    lines = open(os.path.join(out, "metrics.jsonl"), "rb").read().split(b"\n")
    if lines[-1] != b"":
        fail(f"metrics.jsonl ends in half a line: {lines[-1][:120]!r}")
    try:
        recs = [json.loads(l) for l in lines[:-1]]
    except ValueError as e:
        fail(f"metrics.jsonl holds a line that is not JSON: {e}")
        recs = []
    if not recs or recs[0].get("type") != "run" or recs[0].get("step") != 0:
        fail(f"metrics.jsonl: the first record should be the run record from step 0: {recs[:1]}")
    steps = [r["step"] for r in recs if r.get("type") == "train"]
    if not steps or steps != list(range(1, len(steps) + 1)) or len(steps) >= 400:
        fail(f"metrics.jsonl: expected records of steps 1..k < 400 in order, got {steps[:5]}...{steps[-3:]}")
    print(f"train: exit 1 when metrics.jsonl filled the disk after {len(steps)} whole records")
    shutil.rmtree(out)
    os.remove(filler)


def datasets(work, mount):
    prev = os.path.join(mount, "data.h5")
    expect_ok(run(["data", "synth", "--task", "add", "--n", "50", "--seed", "3", "--out", prev]), "small dataset")
    before = sha(prev)
    filler = fill(mount, 8 << 10)
    p = run(["data", "synth", "--task", "add", "--n", "20000", "--seed", "3", "--out", prev])
    expect_disk_full(p, "data synth", prev, mount)
    text = os.path.join(work, "corpus.txt")
    with open(text, "w") as f:
        f.write("".join(f"line {i} of a corpus that does not fit on the disk\n" for i in range(5000)))
    p = run(["data", "text", "--in", text, "--out", prev])
    expect_disk_full(p, "data text", prev, mount)
    if sha(prev) != before:
        fail("data: the previous dataset changed")
    with h5py.File(prev, "r") as f:
        if int(f.attrs["n_docs"]) != 50:
            fail(f"data: the previous dataset holds {int(f.attrs['n_docs'])} documents, expected 50")
    print("data synth / data text: exit 1, previous dataset unchanged")
    os.unlink(filler)
    os.unlink(prev)


def synth(work, mount, teacher):
    keys = [f"synth.teacher={teacher}", "synth.task=add", "synth.n_prompts=400", "synth.chunk=200",
            "synth.max_tokens=8", "synth.batch_size=50", "system.threads=1"]
    ref = os.path.join(work, "synth_ref.h5")
    expect_ok(run(["synth", CONFIG] + keys + [f"synth.out={ref}"]), "reference synth run")
    size = os.path.getsize(ref)
    out = os.path.join(mount, "synth.h5")
    # Room for the chunks (about the merged file's size) but not for the merged file beside them.
    filler = fill(mount, size * 3 // 2)
    p = run(["synth", CONFIG] + keys + [f"synth.out={out}"])
    expect_disk_full(p, "synth (merged file)", out, mount)
    if os.path.exists(out):
        fail("synth: the merged file exists after a failed write")
    part = out + ".part"
    chunks = sorted(n for n in os.listdir(part) if n.startswith("chunk-")) if os.path.isdir(part) else []
    if len(chunks) != 2:
        fail(f"synth: the finished chunks should stay for a resume: {chunks}")
    # with room again the same command finishes from the chunks, and gives the reference's documents
    os.unlink(filler)
    p = run(["synth", CONFIG] + keys + [f"synth.out={out}"])
    if p.returncode != 0:
        fail(f"synth: resuming after the disk was freed failed: {p.stderr[-1500:]}")
    else:
        with h5py.File(out, "r") as a, h5py.File(ref, "r") as b:
            for name in ("tokens", "doc_offsets", "prompt_len"):
                if not np.array_equal(a[name][()], b[name][()]):
                    fail(f"synth: /{name} after the resume differs from the reference run")
        os.unlink(out)
    # a chunk that meets a full disk: exit 1, no temp file, nothing merged
    filler = fill(mount, 4 << 10)
    p = run(["synth", CONFIG] + keys + [f"synth.out={out}"])
    expect_disk_full(p, "synth (chunk)", "chunk-00000000.h5", mount)
    if os.path.exists(out):
        fail("synth: a merged file exists after a chunk failed")
    print("synth: exit 1 at the merged file and at a chunk; the chunks resume to the reference's output")
    os.unlink(filler)
    shutil.rmtree(part, ignore_errors=True)


def exports(work, mount, ckpt):
    gguf = os.path.join(mount, "model.gguf")
    expect_ok(run(["export", ckpt, "--format", "gguf", "--type", "q8_0", "--out", gguf]), "GGUF export")
    before = sha(gguf)
    filler = fill(mount, 8 << 10)
    p = run(["export", ckpt, "--format", "gguf", "--type", "f32", "--out", gguf])
    expect_disk_full(p, "export gguf", gguf, mount)
    if sha(gguf) != before:
        fail("export gguf: the previous file changed")
    os.unlink(filler)
    os.unlink(gguf)

    onnx = os.path.join(mount, "onnx")
    expect_ok(run(["export", ckpt, "--format", "onnx", "--out", onnx]), "ONNX export")
    before = tree_hashes(onnx)
    filler = fill(mount, 8 << 10)
    p = run(["export", ckpt, "--format", "onnx", "--out", onnx])
    expect_disk_full(p, "export onnx", onnx, mount)
    if tree_hashes(onnx) != before:
        fail("export onnx: the previous folder changed")
    print("export gguf / onnx: exit 1, previous file and folder unchanged")
    os.unlink(filler)


def main():
    work = tempfile.mkdtemp(prefix="rt_diskfull_")
    mount = os.path.join(work, "disk")
    os.mkdir(mount)
    m = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=600k", "tmpfs", mount], capture_output=True,
                       text=True)
    if m.returncode != 0:
        shutil.rmtree(work)
        print(f"SKIP: cannot mount a tmpfs ({m.stderr.strip() or 'mount failed'}): needs root")
        return SKIP
    try:
        data = os.path.join(work, "data")
        os.mkdir(data)
        for split, n, seed in (("train", 400, 1), ("val", 50, 2)):
            expect_ok(run(["data", "synth", "--task", "add", "--n", str(n), "--split", split, "--seed", str(seed),
                           "--out", f"{data}/{split}.h5"]), "data synth")
        checkpoints(work, mount, data)
        metrics(work, mount, data)
        teacher = os.path.join(work, "ref", "ckpt-00000002.h5")
        datasets(work, mount)
        synth(work, mount, teacher)
        exports(work, mount, teacher)
    finally:
        subprocess.run(["umount", mount])
        shutil.rmtree(work, ignore_errors=True)
    finish(failures, "all disk-full checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
