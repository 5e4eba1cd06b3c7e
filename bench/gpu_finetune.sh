#!/usr/bin/env bash
# GPU fine-tuning: full vs LoRA vs QLoRA on one GPU, in one run, on a 124M-class base (12 layers, width 768,
# vocabulary 32768, T=1024, random weights: speed and memory do not depend on them), bf16. Prints tokens/s,
# the trainer's memory report and the peak GPU memory nvidia-smi sees for each, and appends a record to
# bench/results/gpu_finetune.jsonl. The goal it checks: QLoRA at most 5% slower than LoRA.
#
#   bench/gpu_finetune.sh [STEPS] [BATCH]      (RT_BENCH_RETORT: the retort binary; default build/retort)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
steps=${1:-30}
batch=${2:-8}
retort=${RT_BENCH_RETORT:-$root/build/retort}
python=${RT_PYTHON:-python3}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
if ! "$retort" --version | grep -q "gpu: yes"; then
    echo "gpu_finetune: $retort has no usable GPU:" >&2
    "$retort" --version >&2
    exit 1
fi
"$retort" data synth --task kv --n 120000 --out "$work/train.h5" >/dev/null
dims=(model.vocab_size=32768 model.dim=768 model.n_layers=12 model.n_heads=12 model.n_kv_heads=12
      model.ffn_dim=2048 model.max_seq_len=1024)
run=(data.seq_len=1024 "train.batch_size=$batch" train.eval_every=0 checkpoint.every=0 run.log_every=5
     system.device=cuda system.precision=bf16 "data.train=$work/train.h5" data.val=)
"$retort" train trainer/configs/tiny.yaml "${dims[@]}" "${run[@]}" train.steps=1 train.warmup_steps=0 \
    "run.out_dir=$work/base" >"$work/base.log" 2>&1
for method in full lora qlora; do
    "$retort" finetune trainer/configs/lora.yaml "base=$work/base/ckpt-latest.h5" "finetune.method=$method" \
        "${run[@]}" "train.steps=$steps" train.warmup_steps=2 "run.out_dir=$work/$method" \
        >"$work/$method.log" 2>&1 &
    pid=$!
    peak=0
    while kill -0 "$pid" 2>/dev/null; do
        used=$(nvidia-smi --query-compute-apps=pid,used_memory --format=csv,noheader,nounits 2>/dev/null |
               awk -F', ' -v p="$pid" '$1 == p {print $2}')
        [[ -n "$used" && "$used" -gt "$peak" ]] && peak=$used
        sleep 0.2
    done
    wait "$pid"
    echo "$peak" >"$work/$method.peak"
done
gpu=$(nvidia-smi --query-gpu=name --format=csv,noheader | head -1)
"$python" - "$work" "$(date -u +%F)" "$(git rev-parse --short HEAD 2>/dev/null || cat gpu-bundle/commit)" "$gpu" \
    "$steps" "$batch" <<'PY'
import json, re, sys
work, stamp, commit, gpu, steps, batch = sys.argv[1:7]
rows = {}
for m in ("full", "lora", "qlora"):
    log = open(f"{work}/{m}.log").read()
    mib = {k: float(v) for k, v in re.findall(r"(base|parameters|adapters|gradients|optimizer|activations) ([0-9.]+) MiB", log)}
    tps = [json.loads(l)["tokens_per_s"] for l in open(f"{work}/{m}/metrics.jsonl") if '"train"' in l]
    rows[m] = {"tokens_per_s": round(sum(tps[1:]) / max(1, len(tps) - 1), 1), "model_mib": round(sum(mib.values()), 1),
               "split_mib": mib, "gpu_peak_mib": int(open(f"{work}/{m}.peak").read())}
slow = 100 * (1 - rows["qlora"]["tokens_per_s"] / rows["lora"]["tokens_per_s"])
for m, r in rows.items():
    print(f"{m:6s} {r['tokens_per_s']:10.0f} tok/s  model {r['model_mib']:8.1f} MiB  GPU peak {r['gpu_peak_mib']} MiB")
print(f"QLoRA is {slow:.1f}% slower than LoRA (goal: at most 5%)")
rec = {"date": stamp, "commit": commit, "gpu": gpu, "steps": int(steps), "batch": int(batch), "seq_len": 1024,
       "qlora_slower_pct": round(slow, 2), "rows": rows}
with open("bench/results/gpu_finetune.jsonl", "a") as f:
    f.write(json.dumps(rec) + "\n")
PY
