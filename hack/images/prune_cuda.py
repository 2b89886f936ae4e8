"""Removes from a trainer image's venv the CUDA files that `import torch` never loads.

PyPI has only CUDA builds of torch for Linux: libtorch_cuda.so names libcudart,
cublas, cufft, nccl, ... as DT_NEEDED, so the dynamic loader must find them
even when the trainer runs on a CPU, and the nvidia-* wheels stay in the lock.
What nothing links to is dead weight on a CPU node: the cuDNN engine
libraries (libcudnn.so.9 dlopens them on the first GPU convolution), cusolver
(dlopened by libtorch_cuda_linalg.so, itself dlopened for GPU linear algebra),
static archives and headers. This keeps the transitive DT_NEEDED closure of
torch's own libraries and its extension modules and deletes every other
shared library, static archive and header under site-packages/nvidia.

On a GPU node the pruned image fails at the first cuDNN or cusolver call;
the GPU trainer image is the same build without this step (MODELOPS_TRAINER_CUDA=full).

    prune_cuda.py SITE_PACKAGES   # prints what it kept and removed, in MB
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path


def _needed(path: Path) -> list[str]:
    out = subprocess.run(
        ["readelf", "--dynamic", "--wide", str(path)], capture_output=True, text=True, check=True
    ).stdout
    return [line.split("[", 1)[1].rstrip("]") for line in out.splitlines() if "(NEEDED)" in line]


def prune(site: Path) -> tuple[int, int]:
    nvidia, torch_dir = site / "nvidia", site / "torch"
    libraries: dict[str, Path] = {}
    for directory in (torch_dir / "lib", *sorted(nvidia.glob("**/lib"))):
        for lib in sorted(directory.glob("*.so*")):
            libraries.setdefault(lib.name, lib)
    # Roots: torch's extension modules and its own libraries, except the one it
    # dlopens only for GPU linear algebra.
    roots = [p for p in torch_dir.glob("_C*.so")]
    roots += [p for p in (torch_dir / "lib").glob("*.so*") if "cuda_linalg" not in p.name]
    keep: set[Path] = set()
    todo = list(roots)
    while todo:
        path = todo.pop()
        if path in keep:
            continue
        keep.add(path)
        todo += [libraries[name] for name in _needed(path) if name in libraries]
    kept = removed = 0
    for path in sorted(nvidia.rglob("*")):
        if not path.is_file() or path.is_symlink():
            continue
        dead = (
            (".so" in path.name and path not in keep)
            or path.suffix == ".a"
            or "include" in path.relative_to(nvidia).parts
        )
        size = path.stat().st_size
        if dead:
            path.unlink()
            removed += size
        elif ".so" in path.name:
            kept += size
    return kept, removed


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    kept, removed = prune(Path(argv[1]))
    print(f"prune_cuda: kept {kept / 1e6:.0f} MB of CUDA libraries, removed {removed / 1e6:.0f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
