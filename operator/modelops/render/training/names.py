"""Names, labels and owner references of a TrainingJob's children.

Attempt N of a TrainingJob `<name>` is the Job `<name>-a<N>`; its pods'
hostnames are `<name>-a<N>-<rank>` under the headless Service
`<name>-workers`, so rank 0 of the current attempt resolves as
`<name>-a<N>-0.<name>-workers`. The Service name differs from the
TrainingJob's so that a ModelDeployment of the same name (a retraining job
named after its model is common) keeps its own Service.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from modelops.api import constants as c
from modelops.api.intake import read_training_job
from modelops.api.trainingjob import TrainingJob

from ..meta import controller_reference
from ..pods import get

SERVICE_SUFFIX = "-workers"


def as_tj(tj: TrainingJob | Mapping[str, Any]) -> TrainingJob:
    """Accept either a parsed TrainingJob or the raw object (e.g. kopf's body), read
    through the one intake (v1alpha1 or v1beta1, pod controls attached)."""
    return tj if isinstance(tj, TrainingJob) else read_training_job(tj)


def job_name(tj: TrainingJob, attempt: int) -> str:
    """The Job of an attempt: a new name per attempt, so a restart never waits for the
    old Job's deletion and the failed attempt's pods stay readable (kubectl logs)."""
    return f"{tj.name}-a{attempt}"


def service_name(tj: TrainingJob) -> str:
    return f"{tj.name}{SERVICE_SUFFIX}"


def master_addr(tj: TrainingJob, attempt: int) -> str:
    """DNS name of node rank 0: `<hostname>.<subdomain>`, resolved through the
    namespace's search path (no cluster domain assumed)."""
    return f"{job_name(tj, attempt)}-0.{service_name(tj)}"


def attempt_of(job: Mapping[str, Any]) -> int | None:
    """The attempt a live Job runs, from its annotation."""
    value = get(job, "metadata", "annotations", c.ANNOTATION_ATTEMPT)
    return int(value) if isinstance(value, str) and value.isdigit() else None


def latest_attempt(jobs: Iterable[Mapping[str, Any]]) -> int | None:
    """Highest attempt among a TrainingJob's Jobs (to recover status.restarts if lost)."""
    attempts = [a for a in (attempt_of(j) for j in jobs) if a is not None]
    return max(attempts) if attempts else None


def selector_labels(tj: TrainingJob) -> dict[str, str]:
    """Pods of every attempt; the headless Service selects on it."""
    return {c.LABEL_TRAINING_JOB: tj.name}


def labels(tj: TrainingJob) -> dict[str, str]:
    """Labels of the children and pods; the TrainingJob's own labels are not copied
    (GitOps tracking labels would make the children look like extra resources)."""
    return {
        c.LABEL_NAME: "trainer",
        c.LABEL_INSTANCE: tj.name,
        c.LABEL_MANAGED_BY: c.MANAGED_BY,
        c.LABEL_TRAINING_JOB: tj.name,
    }


def child_metadata(tj: TrainingJob, name: str) -> dict[str, Any]:
    return {
        "name": name,
        "namespace": tj.namespace,
        "labels": labels(tj),
        "ownerReferences": [controller_reference(c.TJ_KIND, tj.name, tj.metadata.uid)],
    }
