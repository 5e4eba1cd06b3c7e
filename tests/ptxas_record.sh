#!/usr/bin/env bash
# CUDA compiler launcher of the nvcc build (CMakeLists.txt adds -Xptxas=-v): runs the compile as given and
# keeps what ptxas says about every kernel (registers, stack frame, spill stores and loads, shared memory)
# in <object>.ptxas next to the object, for tests/check_ptxas.py; everything else nvcc prints passes on.
out=""
args=("$@")
for ((i = 0; i + 1 < ${#args[@]}; i++)); do
    if [[ ${args[i]} == -o ]]; then out=${args[i + 1]}; fi
done
if [[ -z $out ]]; then exec "$@"; fi
"$@" 2>"$out.ptxas.tmp"
rc=$?
grep -Ev '^ptxas info *:|^ +[0-9]+ bytes stack frame' "$out.ptxas.tmp" >&2
mv "$out.ptxas.tmp" "$out.ptxas"
exit $rc
