"""`retort synth` (stage 1 of distillation) against PyTorch and its own contract: a small teacher is trained,
then
- greedy answers equal PyTorch's greedy continuation of the same checkpoint (tests/torch_llama.py);
- every stored top-k row (ids and log-probs at topk_temperature) equals PyTorch's distribution at that answer
  position given the document before it, the EOS position included;
- stop strings end answers before them; answers obey max_tokens;
- an interrupted run (SIGTERM once its first chunk is on disk; it must stop early) started again gives exactly
  the dataset of an uninterrupted run, sampling included; other settings over a part folder, or an existing
  output, are refused;
- JSONL prompts work, and a bad line is reported with file:line.

usage: check_synth.py   (RETORT_BIN, RT_SOURCE_DIR from ctest)"""
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
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from checklib import add2_teacher, finish, run_retort  # noqa: E402
from torch_llama import Llama  # noqa: E402

RETORT = os.environ["RETORT_BIN"]
SRC = os.environ["RT_SOURCE_DIR"]
CFG = os.path.join(SRC, "trainer", "configs", "tiny.yaml")
EOS = 257
failures = []
DIMS = ["model.dim=32", "model.n_layers=2", "model.n_heads=4", "model.n_kv_heads=2", "model.ffn_dim=64",
        "model.max_seq_len=32", "data.seq_len=32"]


def run(args, expect=0):
    return run_retort(failures, args, expect, what="retort " + " ".join(args))


def load_teacher(ckpt):
    with h5py.File(ckpt, "r") as f:
        m = Llama(259, 32, 2, 4, 2, 64, 32, tied="output.weight" not in f["model"], dtype=torch.float64)
        with torch.no_grad():
            for name, t in m.named().items():
                t.copy_(torch.from_numpy(f["model"][name][()].astype(np.float64)))
    return m


def read(path):
    with h5py.File(path, "r") as f:
        out = {k: f[k][()] for k in f}
        out["attrs"] = dict(f.attrs)
    return out


def docs(d):
    off, pl = d["doc_offsets"], d["prompt_len"]
    return [(d["tokens"][off[i]:off[i + 1]], int(pl[i])) for i in range(len(pl))]


def check_topk_rows(model, d, temp, what):
    k = d["topk_ids"].shape[1]
    row = 0
    bad = 0
    with torch.no_grad():
        for doc, plen in docs(d):
            logits = model(torch.tensor(doc[None, :-1], dtype=torch.int64))[0]  # position j predicts doc[j + 1]
            for j in range(1 + plen, len(doc)):  # answer ids and EOS
                lp = torch.log_softmax(logits[j - 1] / temp, -1)
                top = torch.topk(lp, k)
                got_ids, got_lp = d["topk_ids"][row], d["topk_logprobs"][row]
                if not np.allclose(got_lp, top.values.numpy(), atol=2e-4, rtol=1e-4) or \
                        not np.allclose(lp.numpy()[got_ids], got_lp, atol=2e-4, rtol=1e-4):
                    bad += 1
                row += 1
    if row != len(d["topk_ids"]):
        failures.append(f"{what}: {len(d['topk_ids'])} top-k rows for {row} answer positions")
    if bad:
        failures.append(f"{what}: {bad} of {row} top-k rows differ from PyTorch's distribution")
    return row


def main():
    tmp = tempfile.mkdtemp(prefix="synth-")
    ck, _ = add2_teacher(failures, tmp, CFG, DIMS, 3)
    model = load_teacher(ck)
    base = [CFG, f"synth.teacher={ck}", "synth.task=add2", "system.threads=2"]

    # greedy, top-k kept at another temperature
    g = os.path.join(tmp, "greedy.h5")
    p = run(["synth", *base, "synth.n_prompts=40", "synth.topk=5", "synth.topk_temperature=1.5",
             "synth.chunk=16", "synth.max_tokens=6", f"synth.out={g}"])
    d = read(g)
    a = d["attrs"]
    if a.get("teacher") != ck or a.get("topk_k") != 5 or abs(a.get("topk_temperature", 0) - 1.5) > 1e-12:
        failures.append(f"greedy dataset attributes: {a}")
    check_topk_rows(model, d, 1.5, "greedy run")
    flips = 0
    with torch.no_grad():
        for doc, plen in docs(d):
            ids = list(doc[:1 + plen])
            want = []
            for _ in range(6):
                nxt = int(model(torch.tensor([ids], dtype=torch.int64))[0, -1].argmax())
                if nxt >= 256:
                    break
                want.append(nxt)
                ids.append(nxt)
            flips += list(doc[1 + plen:-1]) != want
    if flips > 1:  # float32 against float64 may flip a near tie once
        failures.append(f"greedy answers differ from PyTorch's in {flips} of {len(d['prompt_len'])} prompts")
    if "teacher exact match" not in p.stdout:
        failures.append(f"no teacher accuracy in the summary: {p.stdout}")

    # stop strings and max_tokens
    s = os.path.join(tmp, "stop.h5")
    run(["synth", *base, "synth.n_prompts=40", "synth.stop=1|9", "synth.max_tokens=2", "synth.topk=3",
         f"synth.out={s}"])
    d = read(s)
    for doc, plen in docs(d):
        ans = bytes(int(t) for t in doc[1 + plen:-1])
        if b"1" in ans or b"9" in ans or len(ans) > 2 or doc[-1] != EOS:
            failures.append(f"stop/max_tokens not obeyed: answer {ans!r}")
            break
    check_topk_rows(model, d, 1.0, "stop-string run")

    # sampling, interrupted after its first chunk and started again = uninterrupted
    samp = base + ["synth.n_prompts=240", "synth.samples=2", "synth.temperature=0.9", "synth.top_p=0.9",
                   "synth.top_k=20", "synth.topk=4", "synth.chunk=16", "synth.batch_size=8"]
    full = os.path.join(tmp, "full.h5")
    run(["synth", *samp, f"synth.out={full}"])
    part = os.path.join(tmp, "part.h5")
    proc = subprocess.Popen([RETORT, "synth", *samp, f"synth.out={part}"], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    # signal only once a chunk is on disk, and require that the run really stopped early: were it to finish
    # before the signal landed, the resume below would compare two complete runs and prove nothing
    part_dir = part + ".part"
    first = os.path.join(part_dir, "chunk-00000000.h5")
    n_chunks = 240 // 16
    deadline = time.time() + 120
    while time.time() < deadline and not os.path.exists(first) and proc.poll() is None:
        time.sleep(0.01)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    if proc.returncode != 75:
        failures.append(f"SIGTERM after the first chunk: exit {proc.returncode}, expected 75 (an interrupted "
                        f"run, its chunks kept): {err[-800:]}")
    left = sorted(f for f in os.listdir(part_dir) if f.startswith("chunk-")) if os.path.isdir(part_dir) else []
    if os.path.exists(part) or first not in [os.path.join(part_dir, f) for f in left] or len(left) >= n_chunks:
        failures.append(f"SIGTERM did not leave an incomplete run: final file {os.path.exists(part)}, "
                        f"{len(left)} of {n_chunks} chunks in the part folder ({left[:3]})")
    print(f"synth interrupted with {len(left)} of {n_chunks} chunks on disk")
    bad = run(["synth", *samp, "synth.temperature=0.5", f"synth.out={part}"], expect=1)
    if "other settings" not in bad.stderr:
        failures.append(f"a part folder of other settings was not refused clearly: {bad.stderr[-500:]}")
    p = run(["synth", *samp, f"synth.out={part}"])
    if f"{n_chunks - len(left)} chunks made, {len(left)} reused" not in p.stdout:
        failures.append(f"the resumed run did not reuse the {len(left)} chunks on disk and make the rest: {p.stdout}")
    a, b = read(full), read(part)
    for key in ("tokens", "doc_offsets", "prompt_len", "topk_ids", "topk_logprobs"):
        if not np.array_equal(a[key], b[key]):
            failures.append(f"resumed synth differs from the uninterrupted run in /{key}")
    if os.path.exists(part + ".part"):
        failures.append("the part folder was not removed after the merge")
    answers = [bytes(int(t) for t in doc[1 + plen:-1]) for doc, plen in docs(a)]
    if len(set(answers[0::2]) | set(answers[1::2])) < 2:
        failures.append("sampling at temperature 0.9 gave one answer for everything")
    p = run(["synth", *samp, f"synth.out={full}"], expect=1)
    if "already exists" not in p.stderr:
        failures.append(f"an existing output was not refused: {p.stderr[-500:]}")

    # JSONL prompts
    jl = os.path.join(tmp, "prompts.jsonl")
    with open(jl, "w") as f:
        f.write(json.dumps({"prompt": "12+7=", "id": 1}) + "\n\n" + json.dumps({"prompt": "3+4="}) + "\n")
    j = os.path.join(tmp, "jsonl.h5")
    run(["synth", *base, f"synth.prompts={jl}", f"synth.out={j}"])
    d = read(j)
    got = [bytes(int(t) for t in doc[1:1 + plen]) for doc, plen in docs(d)]
    if got != [b"12+7=", b"3+4="]:
        failures.append(f"JSONL prompts: {got}")
    with open(jl, "a") as f:
        f.write('{"prompt": 5}\n')
    p = run(["synth", *base, f"synth.prompts={jl}", f"synth.out={j}.2"], expect=1)
    if "prompts.jsonl:4" not in p.stderr:
        failures.append(f"a bad JSONL line was not reported with file:line: {p.stderr[-500:]}")

    shutil.rmtree(tmp, ignore_errors=True)
    finish(failures, "synth: greedy answers and top-k rows match PyTorch; stops, resume and prompts work")


if __name__ == "__main__":
    main()
