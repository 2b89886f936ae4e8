"""A typed view of the live Triton Deployment, as status derivation reads it."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from modelops.api import constants as c

from .pods import condition, get


@dataclass(frozen=True)
class DeploymentView:
    """Counts and conditions of the live Deployment (all zero when it does not exist)."""

    exists: bool = False
    desired: int = 0
    replicas: int = 0
    ready: int = 0
    available: int = 0
    updated: int = 0
    observed: bool = False
    template_version: str | None = None
    deadline_exceeded: str | None = None
    replica_failure: str | None = None

    @classmethod
    def of(cls, deployment: Mapping[str, Any] | None, default_desired: int) -> DeploymentView:
        if not deployment:
            return cls()
        status = deployment.get("status") or {}
        progressing = condition(deployment, "Progressing")
        failure = condition(deployment, "ReplicaFailure")
        generation = get(deployment, "metadata", "generation", default=0)
        return cls(
            exists=True,
            # Without spec.replicas (autoscaled, before the HPA acts) the
            # API server has defaulted it; default_desired covers a test fixture.
            desired=get(deployment, "spec", "replicas", default=default_desired),
            replicas=status.get("replicas", 0) or 0,
            ready=status.get("readyReplicas", 0) or 0,
            available=status.get("availableReplicas", 0) or 0,
            updated=status.get("updatedReplicas", 0) or 0,
            observed=(status.get("observedGeneration") or 0) >= generation,
            template_version=get(
                deployment,
                "spec",
                "template",
                "metadata",
                "annotations",
                c.ANNOTATION_MODEL_VERSION,
            ),
            deadline_exceeded=(
                progressing.get("message") or "progress deadline exceeded"
                if progressing
                and progressing.get("status") == "False"
                and progressing.get("reason") == "ProgressDeadlineExceeded"
                else None
            ),
            replica_failure=(
                failure.get("message") or "cannot create pods"
                if failure and failure.get("status") == "True"
                else None
            ),
        )

    @property
    def complete(self) -> bool:
        """Every desired replica runs the current template and is available, nothing else runs."""
        return (
            self.exists
            and self.observed
            and self.updated == self.desired
            and self.replicas == self.desired
            and self.available >= self.desired
        )

    @property
    def rolling(self) -> bool:
        """Pods of an older template still run (or the controller has not seen the last
        change). A scale-up, where all pods run the current template, is not a rollout."""
        return self.exists and (not self.observed or self.replicas > self.updated)
