"""What a training module provides, and how the runner finds it.

A training module is any importable Python module with two functions::

    def build(hparams: HParams) -> TrainingSpec: ...
    def load_dataset(uri: str, hparams: HParams) -> tuple[features, labels] | Dataset: ...

``load_dataset`` returns either two arrays (numpy or torch; ``features`` with
the model's input shape per row, ``labels`` with the loss function's target
per row) or a ``torch.utils.data.Dataset`` whose items are
``(features, label)`` pairs. Everything else -- process group, DDP,
sharding, checkpoints, metrics, export, publishing -- is the runner's job.
See docs/training.md for a complete example.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from types import ModuleType
from typing import TYPE_CHECKING, Any

from modelops.triton.config import ModelSignature, RuntimeSettings

if TYPE_CHECKING:  # torch is only needed by the worker processes
    import torch

BUILD = "build"
LOAD_DATASET = "load_dataset"


class ContractError(TypeError):
    """A training module that does not provide what the runner needs."""


@dataclass
class TrainingSpec:
    """The model and how to train and serve it.

    ``model`` is trained as-is under DistributedDataParallel; ``loss_fn(outputs,
    labels)`` returns a scalar tensor; ``optimizer(parameters)`` makes the
    optimizer (a factory, because DDP must wrap the model first).

    ``signature`` names the Triton inputs/outputs, in ``forward`` order.
    ``serving`` optionally wraps the trained model for export (e.g. append a
    softmax so Triton returns probabilities); the default serves ``model``.
    ``feature_names`` names the columns in the drift reference (default
    ``f0``, ``f1``...). ``runtime`` holds the Triton batching/instance
    settings packaged with the model; a ModelDeployment can override them.
    """

    model: torch.nn.Module
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
    optimizer: Callable[[Iterable[torch.nn.Parameter]], torch.optim.Optimizer]
    signature: ModelSignature
    serving: Callable[[torch.nn.Module], torch.nn.Module] | None = None
    feature_names: Sequence[str] | None = None
    runtime: RuntimeSettings | None = None


@dataclass(frozen=True)
class TrainingModule:
    """The two entry points of a loaded training module."""

    name: str
    build: Callable[[Any], TrainingSpec]
    load_dataset: Callable[[str, Any], Any]


def load_training_module(name: str) -> TrainingModule:
    """Import ``name`` and check it follows the contract; raises ContractError otherwise."""
    try:
        module: ModuleType = importlib.import_module(name)
    except ModuleNotFoundError as err:
        if err.name is not None and (err.name == name or name.startswith(f"{err.name}.")):
            raise ContractError(f"training module {name!r} is not importable: {err}") from None
        raise  # the module exists but one of *its* imports is missing: show the real error
    missing = [f for f in (BUILD, LOAD_DATASET) if not callable(getattr(module, f, None))]
    if missing:
        raise ContractError(
            f"training module {name!r} must define {' and '.join(missing)}() "
            "(see modelops.trainer.contract)"
        )
    return TrainingModule(name, getattr(module, BUILD), getattr(module, LOAD_DATASET))


def check_spec(spec: object, module: str) -> TrainingSpec:
    """``spec`` if ``build()`` returned a usable TrainingSpec."""
    if not isinstance(spec, TrainingSpec):
        raise ContractError(
            f"{module}.build() returned {type(spec).__name__}, expected a TrainingSpec"
        )
    if not callable(spec.loss_fn) or not callable(spec.optimizer):
        raise ContractError(f"{module}.build(): loss_fn and optimizer must be callables")
    return spec
