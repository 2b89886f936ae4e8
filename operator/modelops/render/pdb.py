"""PodDisruptionBudget: node drains take the Triton pods down one at a time."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from modelops.api.modeldeployment import ModelDeployment

from .meta import as_md, child_metadata, selector_labels

# Below two replicas a budget cannot keep anything serving during a drain; it
# would only block the drain, so none is rendered.
MIN_REPLICAS_FOR_PDB = 2


def baseline_replicas(md: ModelDeployment) -> int:
    """The replica count the spec promises: spec.replicas, or minReplicas when autoscaled."""
    scaling = md.spec.autoscaling
    return scaling.min_replicas if scaling is not None else md.spec.replicas


def render_pdb(md: ModelDeployment | Mapping[str, Any]) -> dict[str, Any] | None:
    """policy/v1 PodDisruptionBudget `<name>`, or None below two replicas."""
    md = as_md(md)
    if baseline_replicas(md) < MIN_REPLICAS_FOR_PDB:
        return None
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": child_metadata(md),
        "spec": {
            # maxUnavailable (not minAvailable) keeps working as the HPA
            # changes the replica count.
            "maxUnavailable": 1,
            "selector": {"matchLabels": selector_labels(md)},
            # A crash-looping pod serves nothing; let drains evict it rather
            # than block on it.
            "unhealthyPodEvictionPolicy": "AlwaysAllow",
        },
    }
