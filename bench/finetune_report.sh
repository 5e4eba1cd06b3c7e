#!/usr/bin/env bash
# Full fine-tuning vs LoRA vs QLoRA on one machine, in one run:
#   accuracy   a base that knows addition (trainer/configs/tiny.yaml on the add task, or BASE=ckpt) learns the
#              same sums asked in words (the plus task) with each method for the same steps; exact match on
#              500 held-out plus problems before and after
#   memory     what each method holds while training (the trainer's memory report: weights, gradients,
#   speed      optimizer, activations) and the process's peak RSS, on a 25M-parameter base where the
#              weights dominate (random weights: memory and speed do not depend on them), batch 4 x 128;
#              tokens/s over 30 steps
# and writes the table to bench/results/finetune_cpu.md and a JSON line to finetune_cpu.jsonl.
#
#   bench/finetune_report.sh [STEPS]        (default 2000; BASE=ckpt reuses a trained base)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
steps=${1:-2000}
./scripts/bootstrap.sh runtimes >/dev/null # python3 for the report
./scripts/build.sh >/dev/null
retort=$root/build/retort
work=${RT_BENCH_WORK:-$(mktemp -d)}
mkdir -p "$work" bench/results

$retort data synth --task plus --n 20000 --split train --seed 3 --out "$work/plus_train.h5" >/dev/null
$retort data synth --task plus --n 500 --split val --seed 4 --out "$work/plus_val.h5" >/dev/null
base=${BASE:-}
if [[ -z "$base" ]]; then
    $retort data synth --task add --n 40000 --split train --seed 1 --out "$work/add_train.h5" >/dev/null
    $retort train trainer/configs/tiny.yaml data.loss_on=answer "data.train=$work/add_train.h5" data.val= \
        train.steps=4000 "run.out_dir=$work/base" >"$work/base.log" 2>&1
    base=$work/base/ckpt-latest.h5
fi

accuracy() { # exact match of a checkpoint on the plus val set, as a fraction
    $retort eval "$1" --data "$work/plus_val.h5" --json 2>/dev/null |
        /usr/bin/python3 -c 'import json,sys; print(json.load(sys.stdin)["rows"][0]["accuracy"])'
}
before=$(accuracy "$base")

# peak RSS (KiB) and the memory report of a run: base/parameters, gradients, optimizer, activations in MiB
measure() { # name, then finetune arguments
    local name=$1
    shift
    /usr/bin/time -f "%M" -o "$work/$name.rss" $retort finetune trainer/configs/lora.yaml "$@" \
        "run.out_dir=$work/$name" >"$work/$name.log" 2>&1
}

declare -A acc
for method in full lora qlora; do
    cfg=trainer/configs/lora.yaml extra=()
    [[ $method == qlora ]] && cfg=trainer/configs/qlora.yaml
    [[ $method == full ]] && extra=(train.lr=2e-3) # every weight moves: the adapters' 4e-3 is too much
    $retort finetune $cfg "base=$base" "finetune.method=$method" "train.steps=$steps" "${extra[@]}" \
        "data.train=$work/plus_train.h5" "data.val=$work/plus_val.h5" train.eval_every=0 \
        "run.out_dir=$work/acc_$method" >"$work/acc_$method.log" 2>&1
    acc[$method]=$(accuracy "$work/acc_$method/ckpt-latest.h5")
done

# the 25M base for memory and speed: dim 512, 8 layers, ffn 1536, vocab 259 (random weights)
big=(model.dim=512 model.n_layers=8 model.n_heads=8 model.n_kv_heads=4 model.ffn_dim=1536)
$retort train trainer/configs/tiny.yaml "${big[@]}" train.steps=1 train.warmup_steps=0 \
    "data.train=$work/plus_train.h5" data.val= "run.out_dir=$work/bigbase" >"$work/bigbase.log" 2>&1
for method in full lora qlora; do
    measure "mem_$method" "base=$work/bigbase/ckpt-latest.h5" "finetune.method=$method" train.steps=30 \
        train.warmup_steps=3 train.batch_size=4 train.eval_every=0 "data.train=$work/plus_train.h5" data.val= \
        checkpoint.every=0 run.log_every=10
done

stamp=$(date -u +%F)
commit=$(git rev-parse --short HEAD)
cpu=$(grep -m1 "model name" /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')
/usr/bin/python3 - "$work" "$stamp" "$commit" "$steps" "$before" "${acc[full]}" "${acc[lora]}" "${acc[qlora]}" \
    "$base" "$(nproc)" "$cpu" <<'PY'
import json, re, sys
import yaml
work, stamp, commit, steps, before = sys.argv[1:6]
acc = dict(zip(["full", "lora", "qlora"], map(float, sys.argv[6:9])))
base, cores, cpu = sys.argv[9:12]
# the learning rate each accuracy run used, read back from its resolved config (not assumed from the yamls)
lr = {m: float(yaml.safe_load(open(f"{work}/acc_{m}/config.yaml"))["train"]["lr"]) for m in ("full", "lora", "qlora")}
rows = {}
for m in ("full", "lora", "qlora"):
    log = open(f"{work}/mem_{m}.log").read()
    mib = {k: float(v) for k, v in re.findall(r"(base|parameters|adapters|gradients|optimizer|activations) ([0-9.]+) MiB", log)}
    tps = [json.loads(l)["tokens_per_s"] for l in open(f"{work}/mem_{m}/metrics.jsonl") if '"train"' in l]
    rows[m] = {"model_mib": round(sum(mib.values()), 2), "split_mib": mib,
               "peak_rss_mib": round(int(open(f"{work}/mem_{m}.rss").read().split()[-1]) / 1024, 1),
               "tokens_per_s": round(sum(tps[1:]) / max(1, len(tps) - 1), 1),  # the first window warms up
               "accuracy_before": float(before), "accuracy_after": acc[m], "lr": lr[m]}
full = rows["full"]["model_mib"]
lines = [f"## {stamp}, commit {commit}, {cores} cores ({cpu})", "",
         f"Command: `bench/finetune_report.sh {steps}`. Accuracy: base {base} (addition), fine-tuned for {steps} "
         f"steps on the plus task (the same sums in words; lora.yaml / qlora.yaml, lr {lr['lora']:g} / {lr['qlora']:g}, "
         f"full at lr {lr['full']:g}), "
         "exact match on 500 held-out plus problems. Memory and "
         "speed: a 25M-parameter base (dim 512, 8 layers), batch 4 x 128, 30 steps.", "",
         "| method | accuracy before | after | training memory (MiB) | vs full | peak RSS (MiB) | tokens/s |",
         "|---|---|---|---|---|---|---|"]
for m, r in rows.items():
    lines.append(f"| {m} | {100 * r['accuracy_before']:.1f}% | {100 * r['accuracy_after']:.1f}% | {r['model_mib']:.1f} "
                 f"| {100 * (r['model_mib'] / full - 1):+.0f}% | {r['peak_rss_mib']:.0f} | {r['tokens_per_s']:.0f} |")
lines += ["", "Memory split (MiB): " + "; ".join(f"{m}: " + ", ".join(f"{k} {v:g}" for k, v in r["split_mib"].items())
                                          for m, r in rows.items()), ""]
open("bench/results/finetune_cpu.md", "a").write("\n".join(lines) + "\n")
with open("bench/results/finetune_cpu.jsonl", "a") as f:
    f.write(json.dumps({"date": stamp, "commit": commit, "steps": int(steps), "rows": rows}) + "\n")
print("\n".join(lines))
PY
echo "appended to bench/results/finetune_cpu.md and finetune_cpu.jsonl (work files in $work)"
