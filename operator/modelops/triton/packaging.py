"""Turn a TorchScript or ONNX file into a new version of a Triton model.

Two ways to serve TorchScript:

* ``Target.LIBTORCH``: Triton's PyTorch backend loads ``model.pt`` directly
  (what GPU Triton images run).
* ``Target.PYTHON``: a generic python-backend ``model.py`` (see
  :mod:`modelops.triton.python_backend_model`) loads ``model.pt`` with torch.
  Works on any Triton with the python backend and torch in its Python, e.g.
  the CPU server in the nvidia-pytriton wheel that the tests use.

ONNX gets ``platform: "onnxruntime_onnx"`` with ``model.onnx``.

Nothing here imports torch: the file is copied, not loaded.
"""

from __future__ import annotations

import importlib.resources
from dataclasses import dataclass
from pathlib import Path

from modelops.modeldir.repository import copy_into, write_version
from modelops.triton.config import (
    MODEL_FILENAMES,
    ModelSignature,
    RuntimeSettings,
    Target,
    render_config,
)

TORCHSCRIPT_PARAMETER = "torchscript_file"
TORCHSCRIPT_FILENAME = "model.pt"
TORCHSCRIPT_TARGETS = (Target.LIBTORCH, Target.PYTHON)


@dataclass(frozen=True)
class PackagedModel:
    """Where a packaging call put the new version."""

    name: str
    version: int
    model_dir: Path
    target: Target

    @property
    def version_dir(self) -> Path:
        return self.model_dir / str(self.version)


def python_backend_source() -> bytes:
    """The ``model.py`` the python target ships (a file of this package, copied verbatim)."""
    resource = importlib.resources.files("modelops.triton") / "python_backend_model.py"
    return resource.read_bytes()


def _check_model_file(model_file: Path) -> Path:
    model_file = Path(model_file)
    if not model_file.is_file():
        raise FileNotFoundError(f"model file {model_file} does not exist")
    return model_file


def package_torchscript(
    model_file: str | Path,
    repository: str | Path,
    name: str,
    signature: ModelSignature,
    runtime: RuntimeSettings | None = None,
    *,
    target: Target = Target.PYTHON,
    version: int | None = None,
) -> PackagedModel:
    """Write ``model_file`` (TorchScript) as a new version of ``repository/name``.

    ``version`` None takes the next free number. For ``Target.LIBTORCH``,
    Triton's PyTorch backend maps outputs by the ``<name>__<index>``
    convention, so name outputs e.g. ``OUTPUT__0`` for that target.
    """
    if target not in TORCHSCRIPT_TARGETS:
        raise ValueError(f"TorchScript is served by {[t.value for t in TORCHSCRIPT_TARGETS]}")
    source = _check_model_file(model_file)
    runtime = runtime or RuntimeSettings()
    files: dict[str, Path | bytes] = {TORCHSCRIPT_FILENAME: source}
    parameters: dict[str, str] = {}
    if target is Target.PYTHON:
        files[MODEL_FILENAMES[Target.PYTHON]] = python_backend_source()
        parameters[TORCHSCRIPT_PARAMETER] = TORCHSCRIPT_FILENAME
    config = render_config(name, signature, runtime, target, parameters)
    model_dir = Path(repository) / name
    number = write_version(model_dir, copy_into(files), version=version, config_text=config)
    return PackagedModel(name=name, version=number, model_dir=model_dir, target=target)


def package_onnx(
    model_file: str | Path,
    repository: str | Path,
    name: str,
    signature: ModelSignature,
    runtime: RuntimeSettings | None = None,
    *,
    version: int | None = None,
) -> PackagedModel:
    """Write ``model_file`` (ONNX) as a new version for Triton's ONNX Runtime backend."""
    source = _check_model_file(model_file)
    config = render_config(name, signature, runtime or RuntimeSettings(), Target.ONNX)
    model_dir = Path(repository) / name
    files: dict[str, Path | bytes] = {MODEL_FILENAMES[Target.ONNX]: source}
    number = write_version(model_dir, copy_into(files), version=version, config_text=config)
    return PackagedModel(name=name, version=number, model_dir=model_dir, target=Target.ONNX)
