#!/usr/bin/env bash
# The whole loop on the embedded default config (trainer/configs/tiny.yaml), in a few minutes on 2 cores:
# install what is missing, build, make a synthetic arithmetic corpus, train, evaluate, sample.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
./scripts/bootstrap.sh
./scripts/build.sh
retort=./build/retort
run=${RT_DEMO_RUN:-runs/demo}

mkdir -p data
[[ -f data/train.h5 ]] || $retort data synth --task add --n 40000 --split train --seed 1 --out data/train.h5
[[ -f data/val.h5 ]] || $retort data synth --task add --n 1000 --split val --seed 2 --out data/val.h5

rm -rf "$run"
$retort train trainer/configs/tiny.yaml run.out_dir="$run" "$@"
$retort eval "$run/ckpt-latest.h5" --data data/val.h5 --limit 500
for p in "12+34=" "305+98=" "7+7="; do
    $retort generate "$run/ckpt-latest.h5" --prompt "$p" --max-tokens 8 --temperature 0
done
if /usr/bin/python3 -c "import matplotlib" 2>/dev/null; then
    /usr/bin/python3 scripts/plot_metrics "$run/metrics.jsonl" --out "$run/metrics.png" && echo "curves: $run/metrics.png"
fi
