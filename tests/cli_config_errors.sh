#!/usr/bin/env bash
# `retort train` with bad configs and overrides: each exits 2 with a message naming the file:line and key.
set -u
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fails=0

expect() {  # expect "<needle>..." -- retort args
    local needles=()
    while [[ $1 != -- ]]; do needles+=("$1"); shift; done
    shift
    "$RETORT_BIN" "$@" >"$tmp/out" 2>"$tmp/err"
    local code=$?
    if [[ $code -ne 2 ]]; then
        echo "FAIL: retort $* exited $code, expected 2: $(cat "$tmp/err")"; fails=$((fails + 1)); return
    fi
    for n in "${needles[@]}"; do
        if ! grep -qF -- "$n" "$tmp/err"; then
            echo "FAIL: retort $*: stderr lacks '$n': $(cat "$tmp/err")"; fails=$((fails + 1))
        fi
    done
}

printf 'run:\n  out_dir: %s/r\ntrain:\n  lr: 0.1\n  lrr: 1\n' "$tmp" > "$tmp/unknown.yaml"
expect "unknown.yaml:5:" "train.lrr" "unknown key" -- train "$tmp/unknown.yaml"
printf 'model:\n  dim: wide\n' > "$tmp/type.yaml"
expect "type.yaml:2:" "model.dim" "expected an integer" -- train "$tmp/type.yaml"
printf 'train:\n  beta2: 7\n' > "$tmp/range.yaml"
expect "range.yaml:2:" "train.beta2" "out of range" -- train "$tmp/range.yaml"
printf 'train:\n  steps: 5\n  steps: 6\n' > "$tmp/dup.yaml"
expect "dup.yaml:3:" "train.steps" "duplicate key" -- train "$tmp/dup.yaml"
printf 'train:\n  steps: [1\n' > "$tmp/syntax.yaml"
expect "syntax.yaml:" "YAML syntax error" -- train "$tmp/syntax.yaml"
printf 'train:\n  steps: 5\n' > "$tmp/ok.yaml"
expect "train.lr=abc" "expected a number" -- train "$tmp/ok.yaml" train.lr=abc
expect "train.learning_rate" "unknown key" -- train "$tmp/ok.yaml" train.learning_rate=1
expect "model.n_kv_heads" -- train "$tmp/ok.yaml" model.n_kv_heads=3
expect "no-such.yaml" -- train "$tmp/no-such.yaml"
# --help lists every key with its default
"$RETORT_BIN" train --help > "$tmp/help" || { echo "FAIL: train --help exited non-zero"; fails=$((fails + 1)); }
for key in train.lr model.n_kv_heads checkpoint.keep system.threads; do
    grep -q "$key" "$tmp/help" || { echo "FAIL: train --help does not list $key"; fails=$((fails + 1)); }
done

if [[ $fails -ne 0 ]]; then echo "FAILED: $fails checks"; exit 1; fi
echo "config errors: all reported with exit 2"
