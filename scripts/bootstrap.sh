#!/usr/bin/env bash
# Installs what retort needs from Debian packages, only what is missing. Idempotent.
#   scripts/bootstrap.sh          build and run (compiler, cmake, HDF5, libyaml, OpenBLAS, OpenMP)
#   scripts/bootstrap.sh test     also what the tests need (Check, PyTorch, h5py, numpy, matplotlib) and,
#                                 from PyPI into .pydeps/, the real clients of the exported files (gguf,
#                                 and llama-cpp-python, which PyPI has as source only: a one-time build of
#                                 llama.cpp, several minutes on 2 cores; pip caches the wheel)
# As root it runs apt-get; otherwise it prints the exact command to run.
set -euo pipefail

build_pkgs=(build-essential cmake ninja-build pkg-config libhdf5-dev libyaml-dev libopenblas-openmp-dev)
test_pkgs=(check libsubunit-dev clang-format python3 python3-torch python3-h5py python3-numpy python3-matplotlib
           python3-pip python3-yaml python3-tqdm python3-requests python3-jinja2 python3-diskcache
           python3-typing-extensions)
# PyPI packages the tests load exported files with (not in Debian), pinned; installed with --no-deps since
# their dependencies are the Debian packages above
pypi_pkgs=(gguf==0.19.0 llama-cpp-python==0.3.36)
root=$(cd "$(dirname "$0")/.." && pwd)

pypi() {
    [[ "${1:-}" == "test" ]] || return 0
    if ! PYTHONPATH="$root/.pydeps" /usr/bin/python3 -c "import gguf, llama_cpp" 2>/dev/null; then
        echo "bootstrap: installing ${pypi_pkgs[*]} into $root/.pydeps" >&2
        # llama.cpp for any x86-64 CPU, without its tools, tests and OpenMP
        CMAKE_ARGS="-DGGML_NATIVE=OFF -DGGML_OPENMP=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_TOOLS=OFF" \
            CMAKE_BUILD_PARALLEL_LEVEL=$(nproc) /usr/bin/python3 -m pip install --quiet --disable-pip-version-check \
            --root-user-action=ignore --no-deps --upgrade --target "$root/.pydeps" "${pypi_pkgs[@]}"
    fi
}

want=("${build_pkgs[@]}")
if [[ "${1:-}" == "test" ]]; then want+=("${test_pkgs[@]}"); fi

missing=()
for p in "${want[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then missing+=("$p"); fi
done
if [[ ${#missing[@]} -eq 0 ]]; then
    pypi "${1:-}"
    exit 0
fi

cmd=(apt-get install -y --no-install-recommends "${missing[@]}")
if [[ $(id -u) -ne 0 ]]; then
    echo "retort needs these Debian packages; install them with:" >&2
    echo "  sudo apt-get update && sudo ${cmd[*]}" >&2
    exit 1
fi
echo "bootstrap: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
"${cmd[@]}" >/dev/null
pypi "${1:-}"
