#!/usr/bin/env bash
# Fetches the llama-cpp-python source package from PyPI once and unpacks from its vendored llama.cpp what
# the tests use: convert_hf_to_gguf.py with its conversion/ folder and gguf-py (llama.cpp's own HF -> GGUF
# converter, the reference writer of GGUF import tests) and the ggml-vocab-*.gguf test vocabularies with
# their .inp/.out pairs (the tokenizer tests). The package (77 MB) is kept in the cache folder, so other
# files can be unpacked later without a download; nothing here is committed (the vocabularies carry the
# models' licences).
#   scripts/fetch_llama_cpp_src.sh [DIR]     DIR defaults to tests/ref/llama-cpp-python (gitignored)
# Prints the unpacked llama.cpp folder. Idempotent: does nothing when the files are already there.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
dest=${1:-$root/tests/ref/llama-cpp-python}
version=0.3.36
tarball=$dest/llama_cpp_python-$version.tar.gz
tree=$dest/llama_cpp_python-$version/vendor/llama.cpp
stamp=$tree/.unpacked

if [[ ! -f $stamp ]]; then
    mkdir -p "$dest"
    if [[ ! -s $tarball ]]; then
        tmp=$(mktemp -d "$dest/.fetch.XXXXXX")
        trap 'rm -rf "$tmp"' EXIT
        echo "fetch_llama_cpp_src: downloading llama-cpp-python $version (source package, about 77 MB)" >&2
        /usr/bin/python3 -m pip download --quiet --disable-pip-version-check --no-deps --no-binary :all: \
            --dest "$tmp" "llama-cpp-python==$version" >&2
        mv "$tmp"/llama_cpp_python-"$version".tar.gz "$tarball"
    fi
    tar -xzf "$tarball" -C "$dest" --wildcards \
        "llama_cpp_python-$version/vendor/llama.cpp/convert_hf_to_gguf.py" \
        "llama_cpp_python-$version/vendor/llama.cpp/conversion/*" \
        "llama_cpp_python-$version/vendor/llama.cpp/gguf-py/*" \
        "llama_cpp_python-$version/vendor/llama.cpp/models/ggml-vocab-*"
    touch "$stamp"
fi
echo "$tree"
