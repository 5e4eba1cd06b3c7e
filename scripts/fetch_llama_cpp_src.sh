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
# the source package's address on PyPI and its sha256 (https://pypi.org/simple/llama-cpp-python/)
url=https://files.pythonhosted.org/packages/ec/e9/e7de2b0463ea3ffbf0ede6cb21b58c1258a8f6521aae45ca773a59fe7cf3/llama_cpp_python-$version.tar.gz
sha256=832db0699007f1be95a7e41ef12e88926b02ba836461e36a36372db2760c1a2e
tree=$dest/llama_cpp_python-$version/vendor/llama.cpp
stamp=$tree/.unpacked

if [[ ! -f $stamp ]]; then
    mkdir -p "$dest"
    if [[ ! -s $tarball ]]; then
        tmp=$(mktemp -d "$dest/.fetch.XXXXXX")
        trap 'rm -rf "$tmp"' EXIT
        echo "fetch_llama_cpp_src: downloading llama-cpp-python $version (source package, about 77 MB)" >&2
        # straight from the file's PyPI address and checked against its published digest: `pip download`
        # of a source package first builds the package's build backend to read its metadata (3 minutes on
        # 2 cores), for a file we only unpack
        /usr/bin/python3 - "$url" "$sha256" "$tmp/package.tar.gz" <<'PY'
import hashlib
import sys
import urllib.request

url, want, out = sys.argv[1:]
digest = hashlib.sha256()
with urllib.request.urlopen(url, timeout=300) as response, open(out, "wb") as f:
    while block := response.read(1 << 20):
        digest.update(block)
        f.write(block)
if digest.hexdigest() != want:
    sys.exit(f"fetch_llama_cpp_src: {url}: sha256 {digest.hexdigest()}, expected {want}")
PY
        mv "$tmp/package.tar.gz" "$tarball"
    fi
    tar -xzf "$tarball" -C "$dest" --wildcards \
        "llama_cpp_python-$version/vendor/llama.cpp/convert_hf_to_gguf.py" \
        "llama_cpp_python-$version/vendor/llama.cpp/conversion/*" \
        "llama_cpp_python-$version/vendor/llama.cpp/gguf-py/*" \
        "llama_cpp_python-$version/vendor/llama.cpp/models/ggml-vocab-*"
    touch "$stamp"
fi
echo "$tree"
