"""Size and quality of each GGUF export type, run in llama.cpp (llama-cpp-python): for a checkpoint of the add
task, export f32, f16, bf16, q8_0, q4_0 and q6_k, then in llama.cpp greedy-decode N held-out problems (exact
match: the answer and EOS, as `retort eval` scores it) and measure the answer perplexity; next to retort's own
exact match of the checkpoint. Appends the table to bench/results/export_gguf.md and a JSON line to
export_gguf.jsonl.

usage: bench/export_report.py CKPT VAL_H5 [N]      (RETORT_BIN: the retort binary; PYTHONPATH with llama_cpp)"""
import json
import math
import os
import subprocess
import sys
import tempfile
import time

import h5py
import numpy as np
from llama_cpp import Llama

RETORT = os.environ.get("RETORT_BIN", "build/retort")


def problems(val, n):
    with h5py.File(val, "r") as f:
        tok, off, pl = f["tokens"][()], f["doc_offsets"][()], f["prompt_len"][()]
    out = []
    for d in range(min(n, len(pl))):
        doc = tok[off[d]:off[d + 1]].tolist()  # BOS, prompt, answer, EOS
        out.append((doc[:1 + pl[d]], doc[1 + pl[d]:]))
    return out


def score(path, probs, ctx):
    llm = Llama(model_path=path, n_ctx=ctx, logits_all=True, verbose=False, n_threads=2, seed=1)
    correct, nll, count = 0, 0.0, 0
    for prompt, answer in probs:
        llm.reset()
        llm.eval(prompt + answer[:-1])
        logits = np.array(llm.scores[len(prompt) - 1:len(prompt) + len(answer) - 1], dtype=np.float64)
        lse = np.log(np.exp(logits - logits.max(1, keepdims=True)).sum(1)) + logits.max(1)
        nll += float((lse - logits[np.arange(len(answer)), answer]).sum())
        count += len(answer)
        correct += bool((logits.argmax(1) == np.array(answer)).all())  # greedy reproduces answer + EOS
    del llm
    return correct / len(probs), math.exp(nll / count)


def main():
    ckpt, val = sys.argv[1], sys.argv[2]
    n = int(sys.argv[3]) if len(sys.argv) > 3 else 500
    probs = problems(val, n)
    ctx = max(len(p) + len(a) for p, a in probs) + 8
    ev = json.loads(subprocess.run([RETORT, "eval", ckpt, "--data", val, "--limit", str(n), "--json"],
                                   capture_output=True, text=True, check=True).stdout)["rows"][0]
    rows = []
    with tempfile.TemporaryDirectory() as work:
        for t in ("f32", "f16", "bf16", "q8_0", "q6_k", "q4_0"):
            path = os.path.join(work, f"{t}.gguf")
            out = subprocess.run([RETORT, "export", ckpt, "--format", "gguf", "--type", t, "--out", path],
                                 capture_output=True, text=True, check=True).stdout
            t0 = time.time()
            acc, ppl = score(path, probs, ctx)
            rows.append({"type": t, "bytes": os.path.getsize(path), "accuracy": acc, "answer_ppl": ppl,
                         "seconds": round(time.time() - t0, 1), "note": out.strip().splitlines()[-1]
                         if "note:" in out else ""})
    f32 = rows[0]["bytes"]
    stamp, commit = time.strftime("%Y-%m-%d", time.gmtime()), subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    lines = [f"## {stamp}, commit {commit}", "",
             f"Command: `bench/export_report.py {ckpt} {val} {n}`. retort's own exact match of the checkpoint: "
             f"{100 * ev['accuracy']:.1f}% ({ev['correct']}/{ev['total']}); checkpoint file "
             f"{os.path.getsize(ckpt) / 2**20:.2f} MiB (weights and optimizer state). In llama.cpp "
             "(llama-cpp-python 0.3.36), greedy exact match and answer perplexity:", "",
             "| type | file (MiB) | vs f32 GGUF | exact match | vs retort | answer ppl |", "|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['type']} | {r['bytes'] / 2**20:.3f} | {100 * (r['bytes'] / f32 - 1):+.0f}% | "
                     f"{100 * r['accuracy']:.1f}% | {100 * (r['accuracy'] - ev['accuracy']):+.1f} | "
                     f"{r['answer_ppl']:.4f} |")
    notes = [f"- {r['type']}: {r['note']}" for r in rows if r["note"]]
    lines += [""] + notes + [""]
    os.makedirs("bench/results", exist_ok=True)
    open("bench/results/export_gguf.md", "a").write("\n".join(lines) + "\n")
    with open("bench/results/export_gguf.jsonl", "a") as f:
        f.write(json.dumps({"date": stamp, "commit": commit, "checkpoint": ckpt, "n": n,
                            "retort_accuracy": ev["accuracy"], "rows": rows}) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
