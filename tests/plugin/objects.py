"""The objects the plugin tests read: the gated sample with a realistic status."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

HERE = Path(__file__).parent
REPO = HERE.parents[1]
SAMPLE = REPO / "manifests" / "samples" / "modeldeployment-gated.yaml"
GOLDEN = HERE / "golden"


def gated_sample() -> dict[str, Any]:
    return yaml.safe_load(SAMPLE.read_text())


def shadow_status() -> dict[str, Any]:
    return yaml.safe_load((HERE / "status_shadow.yaml").read_text())


def with_status(namespace: str) -> dict[str, Any]:
    """The sample as the API server would return it with the status above."""
    md = gated_sample()
    md["metadata"].update(namespace=namespace, generation=1)
    md["status"] = shadow_status()
    return md
