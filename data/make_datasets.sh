#!/usr/bin/env bash
# Makes every dataset the demo (scripts/demo.sh) and the embedded configs (trainer/configs/*.yaml, their
# data.train and data.val) read, in data/. Idempotent: a file that exists is kept, since the same arguments
# always give the same bytes; delete a file to make it again. Each file's /source attribute records the
# command that made it.
#   RETORT=path   the retort binary (default build/retort; scripts/build.sh makes it)
# The add task at a fixed width (305+098=0403), for the teacher and the held-out comparison
# (trainer/configs/tiny.yaml), and the same sums as a question (what is 305+098? 0403) for LoRA and QLoRA
# fine-tuning (trainer/configs/lora.yaml, qlora.yaml). Train and val never share a problem.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
retort=${RETORT:-$root/build/retort}
# made absolute here: the datasets are written from inside data/
if [[ "$retort" == */* && "$retort" != /* ]]; then retort=$PWD/$retort; fi
if [[ ! -x "$retort" ]]; then
    echo "make_datasets.sh: $retort not found; build first (./scripts/build.sh) or set RETORT" >&2
    exit 1
fi
cd "$root/data"

make() { # file task n split seed
    [[ -f "$1" ]] && return 0
    "$retort" data synth --task "$2" --n "$3" --split "$4" --seed "$5" --out "$1"
}
make addpad_train.h5 addpad 40000 train 1
make addpad_val.h5 addpad 1000 val 2
make askpad_train.h5 askpad 20000 train 3
make askpad_val.h5 askpad 500 val 4
# trainer/configs/gpu_teacher.yaml: additions and multiplications for the GPU teacher
make arith.h5 arithmetic 400000 train 1
make arith-val.h5 arithmetic 2000 val 2
