"""Size and quality of each export type, run in its runtime: for a checkpoint of the add task, export GGUF f32,
f16, bf16, q8_0, q4_0 and q6_k and score them in llama.cpp (llama-cpp-python), and ONNX fp32, fp16 and int4
and score them in onnxruntime: on N held-out problems, greedy exact match (the answer and EOS, as `retort
eval` scores it, teacher-forced: every answer token is the argmax) and the answer perplexity; next to
retort's own exact match of the checkpoint. Appends the tables to bench/results/export_gguf.md and
export_onnx.md, and JSON lines to export_gguf.jsonl and export_onnx.jsonl.

usage: bench/export_report.py CKPT VAL_H5 [N] [gguf|onnx]   (RETORT_BIN: the retort binary; PYTHONPATH with
       llama_cpp and onnxruntime, as ctest sets it: .pydeps)"""
import json
import math
import os
import subprocess
import sys
import tempfile
import time

import h5py
import numpy as np

RETORT = os.environ.get("RETORT_BIN", "build/retort")


def problems(val, n):
    with h5py.File(val, "r") as f:
        tok, off, pl = f["tokens"][()], f["doc_offsets"][()], f["prompt_len"][()]
    out = []
    for d in range(min(n, len(pl))):
        doc = tok[off[d]:off[d + 1]].tolist()  # BOS, prompt, answer, EOS
        out.append((doc[:1 + pl[d]], doc[1 + pl[d]:]))
    return out


class Scores:
    def __init__(self):
        self.correct, self.nll, self.count, self.n = 0, 0.0, 0, 0

    def add(self, logits, answer):
        """logits [len(answer), V]: the predictions of the answer tokens."""
        logits = np.asarray(logits, dtype=np.float64)
        lse = np.log(np.exp(logits - logits.max(1, keepdims=True)).sum(1)) + logits.max(1)
        self.nll += float((lse - logits[np.arange(len(answer)), answer]).sum())
        self.count += len(answer)
        self.correct += bool((logits.argmax(1) == np.array(answer)).all())  # greedy reproduces answer + EOS
        self.n += 1

    def result(self):
        return self.correct / self.n, math.exp(self.nll / self.count)


def score_gguf(path, probs, ctx):
    from llama_cpp import Llama
    llm = Llama(model_path=path, n_ctx=ctx, logits_all=True, verbose=False, n_threads=2, seed=1)
    s = Scores()
    for prompt, answer in probs:
        llm.reset()
        llm.eval(prompt + answer[:-1])
        s.add(llm.scores[len(prompt) - 1:len(prompt) + len(answer) - 1], answer)
    del llm
    return s.result()


def score_onnx(folder, probs, batch=50):
    import onnxruntime as ort
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 2
    sess = ort.InferenceSession(os.path.join(folder, "model.onnx"), opts, providers=["CPUExecutionProvider"])
    ins = {i.name: i for i in sess.get_inputs()}
    past = [n for n in ins if n.startswith("past_key_values.")]
    kvh, hd = ins[past[0]].shape[1], ins[past[0]].shape[3]
    dtype = np.float16 if ins[past[0]].type == "tensor(float16)" else np.float32
    s = Scores()
    for b in range(0, len(probs), batch):
        group = probs[b:b + batch]
        seqs = [p + a[:-1] for p, a in group]
        n = max(len(q) for q in seqs)
        ids = np.full((len(seqs), n), 258, np.int64)  # right-padded, as onnxruntime-genai batches
        mask = np.zeros((len(seqs), n), np.int64)
        for i, q in enumerate(seqs):
            ids[i, :len(q)] = q
            mask[i, :len(q)] = 1
        feed = {"input_ids": ids, "attention_mask": mask, "position_ids": np.cumsum(mask, 1) * mask - mask}
        feed.update({k: np.zeros((len(seqs), kvh, 0, hd), dtype) for k in past})
        logits = sess.run(["logits"], feed)[0]
        for i, (prompt, answer) in enumerate(group):
            s.add(logits[i, len(prompt) - 1:len(prompt) + len(answer) - 1], answer)
    return s.result()


def folder_bytes(path):
    if os.path.isfile(path):
        return os.path.getsize(path)
    return sum(os.path.getsize(os.path.join(path, f)) for f in os.listdir(path))


FORMATS = {  # format: (types, export option, runtime, what each file is)
    "gguf": (("f32", "f16", "bf16", "q8_0", "q6_k", "q4_0"), "--type", "llama.cpp (llama-cpp-python 0.3.36)"),
    "onnx": (("fp32", "fp16", "int4"), "--precision", "onnxruntime 1.31.1 (CPU)"),
}


def report(fmt, ckpt, val, n, probs, ev):
    types, option, runtime = FORMATS[fmt]
    ctx = max(len(p) + len(a) for p, a in probs) + 8
    rows = []
    with tempfile.TemporaryDirectory() as work:
        for t in types:
            path = os.path.join(work, f"{t}.{fmt}")
            out = subprocess.run([RETORT, "export", ckpt, "--format", fmt, option, t, "--out", path],
                                 capture_output=True, text=True, check=True).stdout
            t0 = time.time()
            acc, ppl = score_gguf(path, probs, ctx) if fmt == "gguf" else score_onnx(path, probs)
            rows.append({"type": t, "bytes": folder_bytes(path), "accuracy": acc, "answer_ppl": ppl,
                         "seconds": round(time.time() - t0, 1), "note": out.strip().splitlines()[-1]
                         if "note:" in out else ""})
    f32 = rows[0]["bytes"]
    stamp, commit = time.strftime("%Y-%m-%d", time.gmtime()), subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    lines = [f"## {stamp}, commit {commit}", "",
             f"Command: `bench/export_report.py {ckpt} {val} {n} {fmt}`. retort's own exact match of the checkpoint: "
             f"{100 * ev['accuracy']:.1f}% ({ev['correct']}/{ev['total']}); checkpoint file "
             f"{os.path.getsize(ckpt) / 2**20:.2f} MiB (weights and optimizer state). In {runtime}, "
             "greedy exact match and answer perplexity:", "",
             f"| {option[2:]} | {'file' if fmt == 'gguf' else 'folder'} (MiB) | vs {types[0]} | exact match | "
             "vs retort | answer ppl |", "|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['type']} | {r['bytes'] / 2**20:.3f} | {100 * (r['bytes'] / f32 - 1):+.0f}% | "
                     f"{100 * r['accuracy']:.1f}% | {100 * (r['accuracy'] - ev['accuracy']):+.1f} | "
                     f"{r['answer_ppl']:.4f} |")
    notes = [f"- {r['type']}: {r['note']}" for r in rows if r["note"]]
    lines += [""] + notes + [""]
    os.makedirs("bench/results", exist_ok=True)
    open(f"bench/results/export_{fmt}.md", "a").write("\n".join(lines) + "\n")
    with open(f"bench/results/export_{fmt}.jsonl", "a") as f:
        f.write(json.dumps({"date": stamp, "commit": commit, "checkpoint": ckpt, "n": n,
                            "retort_accuracy": ev["accuracy"], "rows": rows}) + "\n")
    print("\n".join(lines))


def main():
    ckpt, val = sys.argv[1], sys.argv[2]
    n = int(sys.argv[3]) if len(sys.argv) > 3 else 500
    formats = sys.argv[4:] or list(FORMATS)
    probs = problems(val, n)
    ev = json.loads(subprocess.run([RETORT, "eval", ckpt, "--data", val, "--limit", str(n), "--json"],
                                   capture_output=True, text=True, check=True).stdout)["rows"][0]
    for fmt in formats:
        report(fmt, ckpt, val, n, probs, ev)


if __name__ == "__main__":
    main()
