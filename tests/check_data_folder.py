"""What data/ ships works with the commands data/README.md names:

- every example prompt set data/prompts/*.jsonl is accepted by `retort synth` (synth.prompts=FILE), and the
  prompts of the dataset it writes are, in order, the "prompt" strings Python's json module reads from the
  file (each answered synth.samples times);
- the fixtures data/fixtures/* convert with `retort data text`: documents equal to Python's own split of the
  file (by line, by blank line, whole) or its JSON rows, prompt_len the UTF-8 length of each prompt.

usage: check_data_folder.py   (RETORT_BIN, RT_SOURCE_DIR from ctest)"""
import glob
import json
import os
import re
import shutil
import tempfile

import h5py

from checklib import finish, run_retort

RETORT = os.environ["RETORT_BIN"]
SRC = os.environ["RT_SOURCE_DIR"]
CFG = os.path.join(SRC, "trainer", "configs", "tiny.yaml")
DIMS = ["model.dim=32", "model.n_layers=1", "model.n_heads=2", "model.n_kv_heads=1", "model.ffn_dim=32",
        "model.max_seq_len=128", "data.seq_len=32", "system.threads=2"]
failures = []


def run(args, expect=0):
    return run_retort(failures, args, expect, what="retort " + " ".join(args))


def documents(path):
    """[(bytes after BOS up to EOS, prompt_len or None)] of a dataset, read with h5py."""
    with h5py.File(path, "r") as f:
        tok, off = f["tokens"][()], f["doc_offsets"][()]
        pl = f["prompt_len"][()] if "prompt_len" in f else None
    out = []
    for d in range(len(off) - 1):
        ids = tok[off[d]:off[d + 1]]
        if ids[0] != 256 or ids[-1] != 257:
            failures.append(f"{path}: document {d} is not BOS ... EOS")
        out.append((bytes(int(t) for t in ids[1:-1]), None if pl is None else int(pl[d])))
    return out


def check_prompt_sets(tmp):
    sets = sorted(glob.glob(os.path.join(SRC, "data", "prompts", "*.jsonl")))
    if not sets:
        failures.append("data/prompts/ holds no *.jsonl prompt set")
        return
    train_h5 = os.path.join(tmp, "train.h5")
    run(["data", "synth", "--task", "add", "--n", "200", "--out", train_h5])
    teacher = os.path.join(tmp, "teacher")
    run(["train", CFG, *DIMS, "train.steps=2", "train.batch_size=2", "train.eval_every=0", "data.val=",
         f"data.train={train_h5}", f"run.out_dir={teacher}"])
    samples = 2
    for path in sets:
        name = os.path.basename(path)
        want = [json.loads(line)["prompt"] for line in open(path, encoding="utf-8") if line.strip()]
        out = os.path.join(tmp, name + ".h5")
        p = run(["synth", CFG, *DIMS, f"synth.teacher={teacher}/ckpt-latest.h5", f"synth.prompts={path}",
                 f"synth.out={out}", f"synth.samples={samples}", "synth.temperature=1", "synth.max_tokens=4"])
        if p.returncode != 0:
            continue
        got = [doc[:plen].decode("utf-8") for doc, plen in documents(out)]
        expected = [w for w in want for _ in range(samples)]
        if sorted(got) != sorted(expected) or got[::samples] != want:
            failures.append(f"{name}: synth's prompts {got[:4]}... are not the file's {want[:4]}...")


def check_fixtures(tmp):
    fx = os.path.join(SRC, "data", "fixtures")
    txt = os.path.join(fx, "tiny.txt")
    raw = open(txt, "rb").read()
    splits = {"lines": [l for l in raw.split(b"\n") if l.strip()],
              "blank": [p.strip(b"\n") for p in re.split(b"\n\\s*\n", raw) if p.strip()],
              "whole": [raw]}
    for fmt, want in splits.items():
        out = os.path.join(tmp, f"txt-{fmt}.h5")
        run(["data", "text", "--in", txt, "--format", fmt, "--out", out])
        got = [d for d, _ in documents(out)] if os.path.exists(out) else None
        if got != want:
            failures.append(f"tiny.txt --format {fmt}: {got} != {want}")
    for name in ("tiny_text.jsonl", "tiny_prompt_completion.jsonl"):
        rows = [json.loads(l) for l in open(os.path.join(fx, name), encoding="utf-8") if l.strip()]
        out = os.path.join(tmp, name + ".h5")
        run(["data", "text", "--in", os.path.join(fx, name), "--format", "jsonl", "--out", out])
        if not os.path.exists(out):
            continue
        if "text" in rows[0]:
            want = [(r["text"].encode("utf-8"), None) for r in rows]
        else:
            want = [((r["prompt"] + r["completion"]).encode("utf-8"), len(r["prompt"].encode("utf-8")))
                    for r in rows]
        got = documents(out)
        if got != want:
            failures.append(f"{name}: {got} != {want}")


def main():
    tmp = tempfile.mkdtemp(prefix="data-folder-")
    try:
        check_prompt_sets(tmp)
        check_fixtures(tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    finish(failures, "data/: every prompt set accepted by retort synth, every fixture converts as Python reads it")


if __name__ == "__main__":
    main()
