"""The pod controls of a ModelDeployment or TrainingJob, as the renderers read them.

v1beta1 added the controls users expect from a serving CRD (pull secrets, pod
labels and annotations, volumes and mounts, env from Secrets and ConfigMaps,
affinity, topology spread, a CPU limit apart from the request). The renderers
read the v1alpha1 models, which have no home for them; api/intake.py reads
them from the object's v1beta1 form and attaches them here, in core/v1 shape
(plain dicts, as they go into the pod), with the path of each field in the
object so that a refusal names the field the user wrote.

Pure data: no rendering rules (render/pod_controls.py), no I/O.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from . import constants as c


class PodControls(BaseModel):
    """What the user asked of the pods beyond v1alpha1. Empty: nothing to add."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: Literal["ModelDeployment", "TrainingJob"] = "ModelDeployment"
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)
    image_pull_secrets: list[dict[str, Any]] = Field(default_factory=list)
    volumes: list[dict[str, Any]] = Field(default_factory=list)
    # Mounts into the main container (Triton, or the trainer).
    volume_mounts: list[dict[str, Any]] = Field(default_factory=list)
    # The main container's user variables in full (literal and valueFrom), in the
    # user's order; None: not read through the intake (the v1alpha1 env stands).
    env: list[dict[str, Any]] | None = None
    affinity: dict[str, Any] | None = None
    topology_spread_constraints: list[dict[str, Any]] = Field(default_factory=list)
    cpu_limit: str | None = None
    # The main container's image as v1beta1 holds it (runtime.image / spec.image): kept
    # whatever its value, a former schema default included, which v1alpha1 reads as
    # unset (api/images.py). None: the v1alpha1 field decides, as it always did.
    image: str | None = None
    # ModelDeployment: spec.driftMonitor.retrain.trainingJobTemplate in its v1beta1 form,
    # so the retraining TrainingJob carries the template's pod controls too.
    training_job_template: dict[str, Any] | None = None

    # Where each control sits in the object (the v1beta1 spelling), for messages.
    @property
    def metadata_path(self) -> str:
        return "spec.podMetadata"

    @property
    def mounts_path(self) -> str:
        return "spec.runtime.volumeMounts" if self.kind == c.MD_KIND else "spec.volumeMounts"

    @property
    def env_path(self) -> str:
        return "spec.runtime.env" if self.kind == c.MD_KIND else "spec.env"

    def cache_key(self) -> str:
        """A hashable form, for render memos keyed on what the pods are made of."""
        return self.model_dump_json()
