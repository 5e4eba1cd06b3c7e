"""bench/scaling_model.py against retort itself and against its own record.

- The parameter count and the FLOPs per token the script derives from its formulas must be what retort
  counts for the same model (`retort train` prints both at start): a tied MHA model and an untied GQA one,
  so a wrong term for the head, the key/value width or the norms shows.
- The printed verdict lines must say what the JSON record says, each efficiency must be compute / (compute +
  the communication of its strategy) from the record's own times, and grad_accum must multiply the compute
  and leave the reduction alone."""
import json
import os
import re
import subprocess
import sys
import tempfile

from checklib import finish, run_retort

SRC = os.environ.get("RT_SOURCE_DIR", os.path.join(os.path.dirname(__file__), ".."))
SCRIPT = os.path.join(SRC, "bench", "scaling_model.py")
failures = []

# (name, script options, retort overrides); both at seq_len T
MODELS = [
    ("tied MHA", ["--dim", "256", "--layers", "2", "--heads", "4", "--kv-heads", "4", "--ffn", "704",
                  "--vocab", "4096"],
     ["model.dim=256", "model.n_layers=2", "model.n_heads=4", "model.n_kv_heads=4", "model.ffn_dim=704",
      "model.vocab_size=4096", "model.tie_embeddings=true"]),
    ("untied GQA", ["--dim", "192", "--layers", "3", "--heads", "6", "--kv-heads", "2", "--ffn", "500",
                    "--vocab", "3000", "--untied"],
     ["model.dim=192", "model.n_layers=3", "model.n_heads=6", "model.n_kv_heads=2", "model.ffn_dim=500",
      "model.vocab_size=3000", "model.tie_embeddings=false"]),
]
T = 256  # long enough that one unit of the 12 L C T coefficient shows in the printed MFLOP


def script(args):
    p = subprocess.run([sys.executable, SCRIPT] + args, capture_output=True, text=True, timeout=120)
    if p.returncode != 0:
        failures.append(f"scaling_model.py {' '.join(args)}: exited {p.returncode}: {p.stderr[-800:]}")
        return None
    return p.stdout


def against_retort(work, data):
    for name, opts, keys in MODELS:
        out = os.path.join(work, name.replace(" ", "_"))
        p = run_retort(failures, ["train", os.path.join(SRC, "trainer", "configs", "tiny.yaml")] + keys +
                       [f"model.max_seq_len={T}", f"data.seq_len={T}", f"data.train={data}", "data.val=",
                        "train.steps=1", "train.batch_size=2", f"run.out_dir={out}"], what=f"retort train ({name})")
        m = re.search(r"model: (\d+) parameters, ([0-9.]+) MFLOP per training token", p.stdout + p.stderr)
        if not m:
            failures.append(f"{name}: retort printed no 'model: N parameters, X MFLOP' line")
            continue
        text = script(opts + ["--seq-len", str(T), "--json"])
        if text is None:
            continue
        model = json.loads(text)["model"]
        if model["total"] != int(m.group(1)):
            failures.append(f"{name}: script counts {model['total']} parameters, retort {m.group(1)}")
        # retort prints one decimal: the script's figure must round to it
        if f"{model['flops_per_token'] / 1e6:.1f}" != m.group(2):
            failures.append(f"{name}: script {model['flops_per_token'] / 1e6:.4f} MFLOP per token, retort {m.group(2)}")
        print(f"{name}: {model['total']} parameters, {m.group(2)} MFLOP per token, as retort counts")


def record_consistency():
    text, raw = script([]), script(["--json"])
    if text is None or raw is None:
        return
    rec = json.loads(raw)
    lines = [ln for ln in text.splitlines() if re.match(r"  (YES|NO) ", ln)]
    if len(lines) != len(rec["verdicts"]):
        failures.append(f"{len(lines)} verdict lines printed, {len(rec['verdicts'])} in the record")
    for ln, v in zip(lines, rec["verdicts"]):
        said = ln.split()[0] == "YES"
        if said != v["meets"] or f"{100 * v['min_eff']:.2f}%" not in ln or v["interconnect"] not in ln:
            failures.append(f"printed '{ln.strip()}' but the record says {v}")
    for kind, rows in rec["rows"].items():
        for r in rows:
            for dt in ("fp32", "bf16"):
                d = r[dt]
                for key, comm in (("eff_flat", "allreduce_flat_ms"), ("eff_per_tensor", "allreduce_per_tensor_ms"),
                                  ("eff_overlap", "overlap_exposed_ms")):
                    want = r["compute_ms"] / (r["compute_ms"] + d[comm])
                    if abs(d[key] - want) > 1e-12:
                        failures.append(f"{kind} N={r['gpus']} {dt} {key}: {d[key]} != {want}")
                if r["gpus"] == 1 and (d["allreduce_flat_ms"] != 0 or d["eff_overlap"] != 1):
                    failures.append(f"{kind} {dt}: one GPU must reduce nothing")
                # the embedding's bucket is ready only when the backward pass ends: it is never hidden
                if d["overlap_exposed_ms"] < d["overlap_last_bucket_ms"] or \
                        (r["gpus"] > 1 and d["overlap_last_bucket_ms"] <= 0):
                    failures.append(f"{kind} N={r['gpus']} {dt}: the overlap hides part of the last bucket")
    raw3 = script(["--json", "--grad-accum", "3"])
    if raw3 is None:
        return
    rec3 = json.loads(raw3)
    for kind in rec["rows"]:
        for r1, r3 in zip(rec["rows"][kind], rec3["rows"][kind]):
            if abs(r3["compute_ms"] - 3 * r1["compute_ms"]) > 1e-9 * r3["compute_ms"] or \
                    r3["fp32"]["allreduce_flat_ms"] != r1["fp32"]["allreduce_flat_ms"]:
                failures.append(f"{kind} N={r1['gpus']}: grad_accum 3 must triple the compute and keep the reduction")
    print(f"{len(lines)} verdicts printed as recorded; efficiencies follow from the recorded times")


def main():
    with tempfile.TemporaryDirectory(prefix="rt_scaling_") as work:
        data = os.path.join(work, "train.h5")
        p = run_retort(failures, ["data", "synth", "--task", "add", "--n", "300", "--split", "train", "--seed", "1",
                                  "--out", data], what="retort data synth")
        if p.returncode == 0:
            against_retort(work, data)
        record_consistency()
    finish(failures, "scaling model checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
