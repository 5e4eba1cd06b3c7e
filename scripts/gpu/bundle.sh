#!/usr/bin/env bash
# Builds retort with the CUDA backend here and packs what a bare GPU machine needs to run it into
# gpu-bundle/ (ignored by git): the binaries and the shared libraries they link that such a machine lacks
# (HDF5, libyaml, oneDNN and their dependencies), xz-compressed. The GPU machine has the CUDA toolkit,
# PyTorch, h5py, cmake and ninja but no Debian packages; cuBLASLt (500 MB) is taken from its toolkit or
# from PyTorch's nvidia-cublas wheel by scripts/gpu/run.sh. Open MPI's libraries come along (retort links
# them, and starts MPI only for system.dist mpi/nccl) but not mpirun; NCCL is not linked (retort loads
# libnccl.so.2 when a run asks for it), so run.sh finds it there and skips the nccl part without mpirun.
#
#   scripts/gpu/bundle.sh            then carry gpu-bundle to the GPU machine and run scripts/gpu/run.sh
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
./scripts/bootstrap.sh test
build=$root/build-gpu
# -march=native would tune for this machine's CPU, not the GPU machine's
RT_BUILD_DIR=$build ./scripts/build.sh -DRT_NATIVE=OFF -DCMAKE_CUDA_ARCHITECTURES=90 >/dev/null
if ! "$build/retort" --version | grep -q "backends: cpu, cuda"; then
    echo "bundle: $build/retort was built without the CUDA backend (is nvcc on PATH?)" >&2
    exit 1
fi
out=$root/gpu-bundle
rm -rf "$out"
mkdir -p "$out/bin" "$out/lib"
bins=("$build/retort")
for t in test_cuda_ops test_cuda_model test_cuda_kv test_cuda_lora test_ops test_gradcheck model_harness; do
    [[ -x "$build/tests/$t" ]] && bins+=("$build/tests/$t")
done
cp "${bins[@]}" "$out/bin/"
# every shared library the binaries load, except the C runtime, the C++ runtime and the GPU driver, which
# the GPU machine has in versions at least as new
skip='^(linux-vdso|ld-linux|libc\.|libm\.|libdl\.|libpthread\.|librt\.|libresolv\.|libstdc\+\+|libgcc_s|libcuda\.|libcublas)'
for b in "${bins[@]}"; do
    ldd "$b" | awk '/=> \//{print $1" "$3}' | while read -r name path; do
        if [[ ! "$name" =~ $skip ]]; then cp -Ln "$path" "$out/lib/$name"; fi
    done
done
tar -C "$out" -cJf "$out/lib.tar.xz" lib
rm -rf "$out/lib"
git rev-parse --short HEAD >"$out/commit"
du -sh "$out"
echo "bundle ready: carry gpu-bundle and run scripts/gpu/run.sh on the GPU machine"
