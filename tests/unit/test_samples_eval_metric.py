"""The shipped samples gate on metrics the trainer actually reports.

A gated sample whose evalMetric names a metric no TrainingJob reports rolls
back every retrained candidate ("eval metric ... missing"); this reads every
sample's evalMetric and checks it against the trainer's own summary keys.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import yaml

from modelops.trainer.metrics import summary

SAMPLES = Path(__file__).resolve().parents[2] / "manifests" / "samples"


@dataclass
class _Epoch:
    epoch: int = 1
    loss: float = 0.5
    accuracy: float | None = 0.8
    val_loss: float | None = 0.6
    val_accuracy: float | None = 0.7
    samples: int = 100
    seconds: float = 1.0

    def to_dict(self) -> dict:
        return {}


def _eval_metrics() -> list[tuple[str, str]]:
    found = []
    for path in sorted(SAMPLES.glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            gate = (((doc or {}).get("spec") or {}).get("rollout") or {}).get("analysis") or {}
            if gate.get("evalMetric"):
                found.append((path.name, gate["evalMetric"]["name"]))
    return found


def test_some_sample_has_an_eval_metric_gate() -> None:
    assert _eval_metrics(), "the gated sample lost its evalMetric gate"


def test_sample_eval_metrics_are_reported_by_the_trainer() -> None:
    reported = {k for k, v in summary([_Epoch()], 0, 1, 1).items() if isinstance(v, float)}
    for sample, name in _eval_metrics():
        assert name in reported, f"{sample}: evalMetric {name} is not one of {sorted(reported)}"
