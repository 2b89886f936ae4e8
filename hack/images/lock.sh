#!/usr/bin/env bash
# Regenerates the images' lock files (hack/images/*.lock) with uv, from
# pyproject.toml plus each image's extra requirements (*.in). Run it when the
# project's dependencies change or to take upgrades; commit the result.
# The images install with `pip install --require-hashes --no-deps`, so a lock
# must list every package the image needs, each with its hashes.
#
# uv runs from a tool venv under ~/.cache/modelops/tools (never the project's
# venv). Targets: CPython 3.11 on x86_64 glibc 2.36 (Debian bookworm).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
CACHE=${MODELOPS_CACHE:-$HOME/.cache/modelops}
UV_VERSION=0.9.5
tools="$CACHE/tools/uv-$UV_VERSION"
if [ ! -x "$tools/bin/uv" ]; then
  python3.11 -m venv "$tools"
  "$tools/bin/pip" install --quiet "uv==$UV_VERSION"
fi
export UV_CACHE_DIR="$CACHE/tools/uv-cache"
compile() {
  local out=$1; shift
  (cd "$root" && "$tools/bin/uv" pip compile --quiet --generate-hashes \
      --python-version 3.11 --python-platform x86_64-manylinux_2_36 \
      --no-header --annotation-style line --custom-compile-command hack/images/lock.sh \
      "$@" -o "hack/images/$out")
}
# The project's wheel is built with these (setuptools backend), pinned too.
compile build.lock hack/images/build.in
compile operator.lock pyproject.toml
# Trainer: torch from PyPI. Its Linux wheel links the CUDA runtime libraries
# (libtorch_cuda.so NEEDs libcudart, cublas, cudnn, nccl, ...), so `import torch`
# fails without the nvidia-* wheels even on a CPU; PyPI has no CPU-only torch
# and download.pytorch.org is not reachable here. Left out: triton, the GPU
# compiler behind torch.compile, imported only when compiling for a GPU.
compile trainer.lock pyproject.toml hack/images/trainer.in --no-emit-package=triton
# Runtime: tritonserver (nvidia-pytriton) and the same torch as the trainer, for
# TorchScript models served by the python backend.
compile runtime.lock pyproject.toml hack/images/runtime.in --no-emit-package=triton
