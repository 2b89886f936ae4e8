"""Reading a TrainingJob attempt's Job and pods: finished or not, which rank failed and why.

Messages are built from stable fields only (no ages) so that an unchanged
situation re-derives an unchanged status.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from modelops.api import constants as c

from ..pods import condition, get, pod_name, truncate
from .job import TRAINER_CONTAINER

FAILURE_MESSAGE_LIMIT = 512
TERMINAL_PHASES = ("Succeeded", "Failed")
# Failure reasons `modelops train` reports for mistakes in the spec or the training
# module: every attempt would fail the same way, so none is restarted.
PERMANENT_REASONS = frozenset(
    {
        "InvalidArgument",
        "InvalidTrainingModule",
        "InvalidHyperparameter",
        "CheckpointMismatch",
        "InvalidOutput",
    }
)


@dataclass(frozen=True)
class JobView:
    """What status derivation and the restart decision read from a live Job."""

    exists: bool = False
    name: str = ""
    # Nodes the attempt runs with: a Job's template is fixed, so a later spec.nodes
    # applies from the next attempt on.
    nodes: int = 0
    suspended: bool = False
    succeeded: bool = False
    # Failed, or FailureTarget (Kubernetes 1.31+ sets it first, while pods still stop).
    failing: bool = False
    # The Failed condition itself: every pod of the attempt has stopped.
    failed: bool = False
    failure_reason: str = ""
    failure_message: str = ""
    failed_at: str | None = None
    start_time: str | None = None
    completion_time: str | None = None

    @classmethod
    def of(cls, job: Mapping[str, Any] | None) -> JobView:
        if not job:
            return cls()
        failed = _true(job, "Failed")
        target = failed or _true(job, "FailureTarget")
        return cls(
            exists=True,
            name=get(job, "metadata", "name", default=""),
            nodes=get(job, "spec", "completions", default=0) or 0,
            suspended=bool(get(job, "spec", "suspend")),
            succeeded=_true(job, "Complete") is not None
            or _true(job, "SuccessCriteriaMet") is not None,
            failing=target is not None,
            failed=failed is not None,
            failure_reason=(target or {}).get("reason") or "",
            failure_message=(target or {}).get("message") or "",
            failed_at=(target or {}).get("lastTransitionTime"),
            start_time=get(job, "status", "startTime"),
            completion_time=get(job, "status", "completionTime"),
        )


def _true(obj: Mapping[str, Any], ctype: str) -> Mapping[str, Any] | None:
    cond = condition(obj, ctype)
    return cond if cond is not None and cond.get("status") == "True" else None


# --- pods ------------------------------------------------------------------------------


def pods_of_job(pods: Iterable[Mapping[str, Any]], job: str) -> list[Mapping[str, Any]]:
    """The pods of one attempt's Job (the controller may pass those of every attempt)."""
    out = []
    for pod in pods:
        pod_labels = get(pod, "metadata", "labels", default={}) or {}
        owners = get(pod, "metadata", "ownerReferences", default=[]) or []
        if (
            pod_labels.get(c.LABEL_JOB_NAME) == job
            or pod_labels.get("job-name") == job
            or any(o.get("kind") == "Job" and o.get("name") == job for o in owners)
        ):
            out.append(pod)
    return sorted(out, key=lambda p: (rank(p) if rank(p) is not None else 1 << 30, pod_name(p)))


def rank(pod: Mapping[str, Any]) -> int | None:
    """Node rank = the Job completion index (annotation, and label since 1.28)."""
    for where in ("annotations", "labels"):
        value = get(pod, "metadata", where, c.ANNOTATION_COMPLETION_INDEX)
        if isinstance(value, str) and value.isdigit():
            return int(value)
    return None


def is_terminal(pod: Mapping[str, Any]) -> bool:
    return get(pod, "status", "phase") in TERMINAL_PHASES


def is_running(pod: Mapping[str, Any]) -> bool:
    return get(pod, "status", "phase") == "Running" and not get(
        pod, "metadata", "deletionTimestamp"
    )


def _trainer_status(pod: Mapping[str, Any]) -> Mapping[str, Any]:
    for cs in get(pod, "status", "containerStatuses", default=[]) or []:
        if cs.get("name") == TRAINER_CONTAINER:
            return cs
    return {}


def _disruption(pod: Mapping[str, Any]) -> Mapping[str, Any] | None:
    return _true(pod, "DisruptionTarget")


def trainer_document(pod: Mapping[str, Any]) -> dict[str, Any] | None:
    """The JSON line `modelops train` leaves as its termination message (see
    modelops.trainer.result): {"outputVersion", "metrics", ...} or {"error": {...}}.
    None when the message is something else, e.g. the log tail of a crash."""
    term = get(_trainer_status(pod), "state", "terminated") or {}
    try:
        document = json.loads(term.get("message") or "")
    except ValueError:
        return None
    return document if isinstance(document, dict) else None


def trainer_result(pods: Iterable[Mapping[str, Any]]) -> dict[str, Any] | None:
    """What a successful run published: {"outputVersion": "8", "metrics": {...}} from
    the first pod (rank 0 publishes) whose trainer exited 0 with a result, else None."""
    for pod in pods:
        term = get(_trainer_status(pod), "state", "terminated") or {}
        document = trainer_document(pod) if term.get("exitCode") == 0 else None
        version = (document or {}).get("outputVersion")
        if isinstance(version, int) and not isinstance(version, bool):
            metrics = document.get("metrics") if document else None
            return {
                "outputVersion": str(version),
                "metrics": dict(metrics) if isinstance(metrics, Mapping) else {},
            }
    return None


def failed_pods(pods: Sequence[Mapping[str, Any]], *, attempt: int) -> list[dict[str, Any]]:
    """status.failedPods entries of an attempt, the first failure first.

    A pod counts when it failed or its trainer exited non-zero. Pods the Job
    controller deleted because another node failed first (a deletionTimestamp
    but no DisruptionTarget condition) are the consequence, not the cause, and
    are left out; evicted or preempted pods (DisruptionTarget) are kept.
    """
    found = []
    for pod in pods:
        term = get(_trainer_status(pod), "state", "terminated") or {}
        exited_badly = bool(term) and term.get("exitCode", 0) != 0
        if not (get(pod, "status", "phase") == "Failed" or exited_badly):
            continue
        disruption = _disruption(pod)
        if get(pod, "metadata", "deletionTimestamp") and disruption is None:
            continue
        error = (trainer_document(pod) or {}).get("error")
        error = error if isinstance(error, Mapping) else {}
        entry: dict[str, Any] = {
            "pod": pod_name(pod),
            "attempt": attempt,
            # The most specific word first: the disruption, the kernel's OOMKilled,
            # the trainer's own reason (e.g. AccessDenied), the container's, the pod's.
            "reason": (disruption or {}).get("reason")
            or ("OOMKilled" if term.get("reason") == "OOMKilled" else None)
            or error.get("reason")
            or term.get("reason")
            or get(pod, "status", "reason")
            or "Failed",
        }
        node_rank = rank(pod)
        if node_rank is not None:
            entry["rank"] = node_rank
        if "exitCode" in term:
            entry["exitCode"] = term["exitCode"]
        message = (
            (disruption or {}).get("message")
            or error.get("message")
            or term.get("message")
            or get(pod, "status", "message")
            or ""
        )
        if message:
            entry["message"] = truncate(message, FAILURE_MESSAGE_LIMIT)
        found.append((term.get("finishedAt") or "~", entry.get("rank", 1 << 30), entry))
    # RFC 3339 UTC timestamps sort as text; pods without one go last.
    return [entry for *_, entry in sorted(found, key=lambda f: (f[0], f[1], f[2]["pod"]))]


def describe_failure(failure: Mapping[str, Any]) -> str:
    """One line an SRE can act on: which rank, which pod, how it ended, its last words."""
    who = f"rank {failure['rank']}" if "rank" in failure else "a node"
    text = f"{who} (pod {failure['pod']}) failed: {failure['reason']}"
    if "exitCode" in failure:
        text += f" (exit code {failure['exitCode']})"
    if failure.get("message"):
        text += f": {failure['message']}"
    return text
