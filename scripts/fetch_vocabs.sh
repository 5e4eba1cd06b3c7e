#!/usr/bin/env bash
# Fetches llama.cpp's real tokenizer test vocabularies (vocab-only GGUF files with .inp/.out pairs made by
# Hugging Face tokenizers) for the tokenizer tests. They ship inside the llama-cpp-python source package
# on PyPI; they carry the models' licences, so they are cached here and never committed.
#   scripts/fetch_vocabs.sh [DIR]     DIR defaults to tests/ref/vocab (gitignored)
# Idempotent: does nothing when the files are already there.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
dest=${1:-$root/tests/ref/vocab}
version=0.3.36
names=(gpt-2 llama-bpe qwen2 llama-spm)

have_all() {
    for n in "${names[@]}"; do
        for ext in gguf gguf.inp gguf.out; do [[ -s "$dest/ggml-vocab-$n.$ext" ]] || return 1; done
    done
}
if have_all; then exit 0; fi

mkdir -p "$dest"
tmp=$(mktemp -d "$dest/.fetch.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
echo "fetch_vocabs: downloading llama-cpp-python $version (source package, about 77 MB)" >&2
python3 -m pip download --quiet --disable-pip-version-check --no-deps --no-binary :all: \
    --dest "$tmp" "llama-cpp-python==$version"
tarball=$(ls "$tmp"/llama_cpp_python-*.tar.gz)
tar -xzf "$tarball" -C "$tmp" --wildcards '*/vendor/llama.cpp/models/ggml-vocab-*'
for n in "${names[@]}"; do
    for ext in gguf gguf.inp gguf.out; do
        src=$(ls "$tmp"/*/vendor/llama.cpp/models/"ggml-vocab-$n.$ext")
        mv "$src" "$dest/.ggml-vocab-$n.$ext.part"
        mv "$dest/.ggml-vocab-$n.$ext.part" "$dest/ggml-vocab-$n.$ext"
    done
done
echo "fetch_vocabs: ${#names[@]} vocabularies in $dest" >&2
