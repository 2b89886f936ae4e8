"""Run metrics: the flat summary for TrainingJob status and the fuller ``metrics.json``.

Pure (no torch): takes the per-epoch records the loop produced.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Protocol

METRICS_NAME = "metrics.json"
FORMAT = "modelops.trainer.metrics"


class Epoch(Protocol):
    epoch: int
    loss: float
    accuracy: float | None
    val_loss: float | None
    val_accuracy: float | None
    samples: int
    seconds: float

    def to_dict(self) -> dict[str, Any]: ...


def _round(value: float | None) -> float | None:
    # Six significant digits: enough to compare runs, short in a termination message.
    return None if value is None else float(f"{value:.6g}")


def summary(
    history: Sequence[Epoch], start_epoch: int, epochs: int, world_size: int
) -> dict[str, float | int | None]:
    """Final-epoch metrics plus throughput of the epochs this process trained.

    Throughput counts only epochs run now: after a resume, the earlier
    epochs' timing belongs to another run (and maybe other hardware).
    """
    if not history:
        raise ValueError("no epoch was trained")
    last = history[-1]
    trained_now = [r for r in history if r.epoch > start_epoch] or list(history)
    seconds = sum(r.seconds for r in trained_now)
    samples = sum(r.samples for r in trained_now)
    return {
        "loss": _round(last.loss),
        "accuracy": _round(last.accuracy),
        "valLoss": _round(last.val_loss),
        "valAccuracy": _round(last.val_accuracy),
        "samplesPerSecond": _round(samples / seconds) if seconds > 0 else None,
        "epochs": epochs,
        "worldSize": world_size,
    }


def metrics_document(
    summary_metrics: Mapping[str, float | int | None],
    history: Sequence[Epoch],
    *,
    entrypoint: str,
    dataset: str,
    hyperparameters: Mapping[str, str],
    backend: str,
    resumed_from_epoch: int,
) -> bytes:
    """``metrics.json`` content, stored in the model version next to the model."""
    document = {
        "format": FORMAT,
        "created": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "entrypoint": entrypoint,
        "dataset": dataset,
        "hyperparameters": dict(hyperparameters),
        "backend": backend,
        "resumedFromEpoch": resumed_from_epoch,
        "metrics": dict(summary_metrics),
        "history": [r.to_dict() for r in history],
    }
    return (json.dumps(document, indent=1, sort_keys=True) + "\n").encode()
