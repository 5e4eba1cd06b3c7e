#!/usr/bin/env bash
# Installs what retort needs from Debian packages, only what is missing. Idempotent.
#   scripts/bootstrap.sh          build and run (compiler, cmake, HDF5, libyaml, oneDNN, OpenMP)
#   scripts/bootstrap.sh runtimes also the runtimes the exports run in (what the demo's last step uses):
#                                 Debian's python3 and numpy and, from PyPI into .pydeps/, gguf and
#                                 llama-cpp-python (source only on PyPI: a one-time build of llama.cpp,
#                                 several minutes on 2 cores; pip caches the wheel), onnx, onnxruntime and
#                                 onnxruntime-genai (wheels)
#   scripts/bootstrap.sh hf       runtimes and .venv-hf (below): what the demo's real-model part uses
#   scripts/bootstrap.sh test     also what the tests need (Check, clang-format, PyTorch, h5py, matplotlib,
#                                 clang with libFuzzer and libomp for scripts/fuzz.sh, and Slurm with munge
#                                 for the one-node cluster of tests/check_slurm.py), and .venv-hf/: PyTorch 2,
#                                 transformers, tokenizers, sentencepiece, PEFT and gguf, the references of the
#                                 model-import, tokenizer and HF/PEFT export tests
# As root it runs apt-get; otherwise it prints the exact command to run.
set -euo pipefail

build_pkgs=(build-essential cmake ninja-build pkg-config libhdf5-dev libyaml-dev libdnnl-dev openmpi-bin
    libopenmpi-dev)
runtime_pkgs=(python3 python3-numpy python3-pip python3-yaml python3-tqdm python3-requests python3-jinja2
              python3-diskcache python3-typing-extensions)
test_pkgs=(check libsubunit-dev clang-format python3-torch python3-h5py python3-matplotlib
           unicode-data # UCD files: the tokenizer tables' source, NormalizationTest.txt, DerivedAge.txt
           clang libclang-rt-dev libomp-dev # the fuzz harnesses (libFuzzer, clang's OpenMP)
           slurmctld slurmd slurm-client munge) # one-node Slurm, not the slurm-wlm metapackage (30+ plugins)
# PyPI packages the tests load exported files with (not in Debian), pinned; installed with --no-deps since
# their dependencies are the Debian packages above. onnx needs newer protobuf, ml_dtypes (the last release
# built for numpy 1.x) and typing_extensions than Debian 12 has: those come from PyPI too, into .pydeps only.
llama_pkgs=(gguf==0.19.0 llama-cpp-python==0.3.36)
onnx_pkgs=(onnx==1.23.2 protobuf==6.33.0 ml_dtypes==0.5.1 typing_extensions==4.12.2 onnxruntime==1.31.1
           onnxruntime-genai==0.18.0)
st_pkgs=(safetensors==0.8.0) # the reference writer for the safetensors reader (its numpy API needs only numpy)
# .venv-hf: transformers 5 needs torch >= 2.6 (Debian's is 1.13). PyPI's Linux torch is the CUDA build; where the
# CUDA 13 toolkit is installed (libcudart.so.13 on the loader path) torch runs on it plus four small wheels the
# toolkit lacks (about 1 GB instead of 3 GB). Packages that depend on torch go in with --no-deps, or pip would
# fetch the whole CUDA stack for them.
hf_torch=(torch==2.15.0)
hf_torch_cuda_extras=(nvidia-nccl-cu13==2.30.7 nvidia-cusparselt-cu13==0.8.1 nvidia-nvshmem-cu13==3.7.2
                      nvidia-cufile==1.17.1.22)
hf_pkgs=(typing_extensions==4.16.0 filelock==4.2.11 sympy==1.14.0 networkx==3.5 jinja2==3.1.6 fsspec==2026.9.0
         numpy==2.3.5 transformers==5.23.0 safetensors==0.8.0 tokenizers==0.23.3 sentencepiece==0.2.3
         protobuf==6.33.0 gguf==0.19.0)
hf_nodeps=(accelerate==1.15.0 psutil==7.1.3 peft==0.18.1)
root=$(cd "$(dirname "$0")/.." && pwd)

pip_into_pydeps() { # MODULES PACKAGES...: installs the packages unless every module already imports
    local modules=$1
    shift
    if ! PYTHONPATH="$root/.pydeps" /usr/bin/python3 -c "import $modules" 2>/dev/null; then
        echo "bootstrap: installing $* into $root/.pydeps" >&2
        # llama.cpp for any x86-64 CPU, without its tools, tests and OpenMP
        CMAKE_ARGS="-DGGML_NATIVE=OFF -DGGML_OPENMP=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_TOOLS=OFF" \
            CMAKE_BUILD_PARALLEL_LEVEL=$(nproc) /usr/bin/python3 -m pip install --quiet --disable-pip-version-check \
            --root-user-action=ignore --no-deps --upgrade --target "$root/.pydeps" "$@"
    fi
}

hf_venv() {
    local venv=$root/.venv-hf py=$root/.venv-hf/bin/python
    if [[ -x "$py" ]] && "$py" -c "import torch, transformers, tokenizers, sentencepiece, peft, gguf" 2>/dev/null; then
        return 0
    fi
    echo "bootstrap: installing PyTorch 2, transformers, tokenizers, sentencepiece, PEFT and gguf into $venv" >&2
    [[ -x "$py" ]] || /usr/bin/python3 -m venv "$venv"
    local pip=("$py" -m pip install --quiet --disable-pip-version-check --root-user-action=ignore)
    if ldconfig -p 2>/dev/null | grep -q "libcudart.so.13 "; then
        "${pip[@]}" --no-deps "${hf_torch[@]}" "${hf_torch_cuda_extras[@]}"
    else
        "${pip[@]}" "${hf_torch[@]}"
    fi
    "${pip[@]}" "${hf_pkgs[@]}"
    "${pip[@]}" --no-deps "${hf_nodeps[@]}"
    "$py" -c "import torch, transformers, tokenizers, sentencepiece, peft, gguf"
}

pypi() {
    [[ "${1:-}" == "test" || "${1:-}" == "runtimes" || "${1:-}" == "hf" ]] || return 0
    pip_into_pydeps "gguf, llama_cpp" "${llama_pkgs[@]}"
    pip_into_pydeps "onnx, onnxruntime, onnxruntime_genai" "${onnx_pkgs[@]}"
    pip_into_pydeps "safetensors" "${st_pkgs[@]}"
    [[ "${1:-}" == "test" || "${1:-}" == "hf" ]] && hf_venv
    return 0
}

case "${1:-}" in
"") want=("${build_pkgs[@]}") ;;
runtimes | hf) want=("${build_pkgs[@]}" "${runtime_pkgs[@]}") ;;
test) want=("${build_pkgs[@]}" "${runtime_pkgs[@]}" "${test_pkgs[@]}") ;;
*)
    echo "usage: scripts/bootstrap.sh [runtimes|hf|test]" >&2
    exit 2
    ;;
esac

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
