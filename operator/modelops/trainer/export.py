"""Trained model -> sealed Triton model version (TorchScript + metrics + drift reference).

Two steps, so that packaging knowledge stays in :mod:`modelops.triton.packaging`:

1. ``package_torchscript`` writes the served files (``model.pt``, and for the
   python target the generic ``model.py``) and ``config.pbtxt`` as a version
   of a private build repository;
2. ``write_version`` copies them, adds ``metrics.json`` and
   ``reference.json``, and seals the result. Files added to a version after
   its ``SHA256SUMS`` was written would fail verification at publish and pull
   time, hence the second, complete write rather than adding to the first.

Targets: ``python`` (default) serves the TorchScript file through Triton's
python backend, which loads on any Triton with torch in its Python --
including the CPU server the tests run. ``libtorch`` is for GPU Triton images
with the PyTorch backend (name tensors ``NAME__<index>`` for it).
"""

from __future__ import annotations

import shutil
import warnings
from collections.abc import Mapping
from pathlib import Path

import torch

from modelops.modeldir.layout import MANIFEST_NAME
from modelops.modeldir.repository import write_version
from modelops.triton.config import ModelSignature, RuntimeSettings, Target
from modelops.triton.packaging import package_torchscript

MODEL_FILE = "model.pt"


def trace_for_serving(model: torch.nn.Module, example: torch.Tensor, path: Path) -> Path:
    """Save ``model`` (on the CPU, in eval mode) as TorchScript traced with ``example``.

    Tracing suits feed-forward models without data-dependent control flow;
    the result is checked against the eager model on ``example``.
    """
    model = model.cpu().eval()
    example = example.cpu()
    with warnings.catch_warnings(), torch.no_grad():
        # torch 2.10+ deprecates TorchScript in favour of torch.export, but
        # TorchScript is what Triton's PyTorch backend and model.py load.
        warnings.simplefilter("ignore", FutureWarning)
        traced = torch.jit.trace(model, example)
        torch.testing.assert_close(traced(example), model(example))
        path.parent.mkdir(parents=True, exist_ok=True)
        traced.save(str(path))
    return path


def build_version(
    model_file: Path,
    work_dir: Path,
    name: str,
    signature: ModelSignature,
    runtime: RuntimeSettings,
    target: Target,
    extra_files: Mapping[str, bytes],
) -> Path:
    """A sealed local version directory holding the served model and ``extra_files``."""
    packaged = package_torchscript(
        model_file, work_dir / "packaged", name, signature, runtime, target=target
    )

    def populate(staging: Path) -> None:
        for source in packaged.version_dir.rglob("*"):
            relative = source.relative_to(packaged.version_dir)
            if source.is_file() and relative.as_posix() != MANIFEST_NAME:
                (staging / relative).parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(source, staging / relative)
        for relative, data in extra_files.items():
            (staging / relative).write_bytes(data)

    model_dir = work_dir / "version" / name
    return model_dir / str(write_version(model_dir, populate))
