"""TrainingJob status from its current attempt's Job and pods: pure, deterministic.

Conditions (every reason is documented in modelops.api.conditions):
  Ready        kstatus; for a batch job it means finished successfully, so
               `kubectl wait --for=condition=Ready` waits for the trained model;
  Reconciling  abnormal-true while the job is pending, running or restarting;
  Stalled      abnormal-true once it failed for good, or when it cannot start
               without intervention (image, configuration, pod creation);
  Created      the current attempt's Job exists;
  Running      every node's pod runs (a partly scheduled gang is not running);
  Succeeded / Failed   the outcome; Failed only when no restart follows;
  Suspended    spec.suspend, or a Kueue queue that has not admitted the Job.

The outcome is final: once Succeeded or Failed is True it stays, even after
the Job is deleted by ttlSecondsAfterFinished. lastTransitionTime moves only
when a condition's status does, so a steady state writes nothing.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from modelops.api.trainingjob import MAX_FAILED_PODS, MAX_METRICS, TrainingJob

from ..conditions import new_condition, stamp_conditions
from ..pods import (
    container_problem,
    event_time,
    format_time,
    get,
    is_scheduled,
    truncate,
    unschedulable,
)
from .job_view import (
    JobView,
    describe_failure,
    failed_pods,
    is_running,
    is_terminal,
    pods_of_job,
    trainer_result,
)
from .names import as_tj, job_name
from .restart import DEADLINE_REASON, may_restart, permanent_failure
from .situations import Situation, conditions_of

CONDITION_ORDER = (
    "Ready",
    "Reconciling",
    "Stalled",
    "Created",
    "Running",
    "Succeeded",
    "Failed",
    "Suspended",
)
# FailedCreate events older than this are taken as resolved (the Job controller
# retries with back-off and emits a fresh event while creation keeps failing).
FAILED_CREATE_WINDOW_S = 600


def derive_trainingjob_status(
    tj: TrainingJob | Mapping[str, Any],
    *,
    job: Mapping[str, Any] | None,
    pods: Sequence[Mapping[str, Any]],
    previous_status: Mapping[str, Any] | None,
    now: datetime,
    restarts: int,
    output_version: str | None = None,
    metrics: Mapping[str, Any] | None = None,
    events: Sequence[Mapping[str, Any]] = (),
) -> dict[str, Any]:
    """The TrainingJob's status (everything but status.kopf).

    job: the live Job of the current attempt (job_name(tj, restarts)) or None;
    pods: its pods (pods of other attempts are ignored); previous_status: the
    live status, whose condition times, startTime, failedPods, outputVersion
    and metrics carry over; restarts: whole-group restarts so far (the current
    attempt's number); output_version / metrics: what the trainer reported;
    None reads them from the result line rank 0 leaves as its termination
    message (modelops.trainer.result), else keeps the previous values;
    events: core/v1 Events about the Job (FailedCreate: quota, Pod Security,
    missing ServiceAccount).
    """
    tj = as_tj(tj)
    prev = previous_status or {}
    view = JobView.of(job)
    pods = pods_of_job(pods, view.name) if view.exists else []
    failures = failed_pods(pods, attempt=restarts)
    reported, metrics = _with_result(pods, output_version, metrics)
    version = reported or prev.get("outputVersion")
    situation = _situation(tj, view, pods, failures, prev, restarts, version, events, now)
    phase, conditions = conditions_of(situation)
    conditions.append(_created(tj, view, restarts, situation))
    generation = tj.metadata.generation
    out: dict[str, Any] = {
        "observedGeneration": generation,
        "phase": phase,
        "conditions": stamp_conditions(
            conditions, prev.get("conditions"), generation, now, order=CONDITION_ORDER
        ),
        "jobName": job_name(tj, restarts),
        "activeNodes": sum(1 for p in pods if is_running(p)),
        "gpus": tj.spec.resources.gpu.per_pod() * sum(1 for p in pods if not is_terminal(p)),
        "restarts": restarts,
    }
    start = prev.get("startTime") or view.start_time
    if start:
        out["startTime"] = start
    finished = _completion_time(situation, view, prev, now)
    if finished:
        out["completionTime"] = finished
    kept_failures = failures or list(prev.get("failedPods") or [])
    if kept_failures:
        out["failedPods"] = kept_failures[:MAX_FAILED_PODS]
    if version:
        out["outputVersion"] = str(version)
    numbers = _metrics(metrics) if metrics is not None else prev.get("metrics")
    if numbers:
        out["metrics"] = numbers
    return out


def _with_result(
    pods: Sequence[Mapping[str, Any]],
    output_version: str | None,
    metrics: Mapping[str, Any] | None,
) -> tuple[str | None, Mapping[str, Any] | None]:
    """The caller's values, else what rank 0 left in its termination message."""
    result = trainer_result(pods)
    if result is None:
        return output_version, metrics
    return output_version or result["outputVersion"], (
        metrics if metrics is not None else result["metrics"]
    )


# --- where it stands -------------------------------------------------------------------


def _situation(
    tj: TrainingJob,
    view: JobView,
    pods: Sequence[Mapping[str, Any]],
    failures: list[dict[str, Any]],
    prev: Mapping[str, Any],
    restarts: int,
    version: str | None,
    events: Sequence[Mapping[str, Any]],
    now: datetime,
) -> Situation:
    final = _final_outcome(prev)
    if final is not None:
        return final
    nodes = view.nodes or tj.spec.nodes
    if view.succeeded:
        return Situation("Succeeded", _success_message(tj, version, restarts))
    if view.failing:
        why = describe_failure(failures[0]) if failures else view.failure_message
        if may_restart(tj, view, restarts, failures):
            return Situation(
                "Restarting",
                f"attempt {restarts} failed: {why}; restarting all {nodes} nodes "
                f"(restart {restarts + 1} of {tj.spec.backoff_limit})",
            )
        if view.failure_reason == DEADLINE_REASON:
            deadline = tj.spec.active_deadline_seconds
            text = f"spec.activeDeadlineSeconds ({deadline}s) passed"
            return Situation("Failed", text + (f"; {why}" if failures else ""), DEADLINE_REASON)
        permanent = permanent_failure(failures)
        if permanent is not None:
            return Situation("Failed", f"{why}; not restarted: retrying cannot help", permanent)
        return Situation(
            "Failed",
            f"attempt {restarts} failed and all {tj.spec.backoff_limit} restarts of "
            f"spec.backoffLimit are used: {why}",
            "BackoffLimitExceeded",
        )
    if not view.exists:
        return Situation("Creating", f"creating Job {job_name(tj, restarts)}")

    live = [p for p in pods if not is_terminal(p)]
    if view.suspended:
        if live:
            return Situation("Suspending", f"spec.suspend is set: stopping {len(live)} pods")
        if not tj.spec.suspend and tj.spec.queue_name:
            return Situation(
                "Suspended",
                f"waiting for Kueue to admit the Job from queue {tj.spec.queue_name}",
                "WaitingForAdmission",
            )
        return Situation("Suspended", "spec.suspend is set", "Suspended")
    if failures:
        return Situation("NodeFailed", f"{describe_failure(failures[0])}; ending attempt")
    for pod in live:
        problem = container_problem(pod, events)
        if problem is not None:
            return Situation("Stalled", f"pod {problem.pod}: {problem.message}", problem.reason)
    failed_create = _failed_create(view.name, events, now)
    if failed_create and len(live) < nodes:
        return Situation("Stalled", failed_create, "FailedCreate")

    running = sum(1 for p in live if is_running(p))
    if running == nodes:
        world = nodes * tj.spec.procs_per_node
        return Situation(
            "Running",
            f"training on {nodes} nodes x {tj.spec.procs_per_node} processes "
            f"(world size {world}), attempt {restarts}",
        )
    progress = f"{running}/{nodes} nodes running"
    waiting = [w for w in (unschedulable(p) for p in live) if w is not None]
    if waiting:
        return Situation("WaitingForNodes", f"{progress}; waiting for a node: {waiting[0][0]}")
    if len(live) < nodes or not all(is_scheduled(p) for p in live):
        return Situation("WaitingForNodes", f"{progress}; waiting for the scheduler")
    return Situation("Starting", f"{progress}; starting containers")


def _final_outcome(prev: Mapping[str, Any]) -> Situation | None:
    """A finished TrainingJob stays finished, with the words it finished with."""
    by_type = {c.get("type"): c for c in prev.get("conditions") or []}
    done = by_type.get("Succeeded")
    if done and done.get("status") == "True":
        return Situation("Succeeded", by_type.get("Ready", done).get("message", ""))
    failed = by_type.get("Failed")
    if failed and failed.get("status") == "True":
        return Situation("Failed", failed.get("message", ""), failed.get("reason") or "Failed")
    return None


def _success_message(tj: TrainingJob, version: str | None, restarts: int) -> str:
    text = "training finished"
    if restarts:
        text += f" after {restarts} restart{'s' if restarts > 1 else ''}"
    # Final once written (see _final_outcome), even if the version arrives later.
    return text + (f"; published model {tj.model_name} version {version}" if version else "")


def _failed_create(job: str, events: Sequence[Mapping[str, Any]], now: datetime) -> str | None:
    recent = [
        (when, e)
        for e in events
        if get(e, "involvedObject", "kind") == "Job"
        and get(e, "involvedObject", "name") == job
        and e.get("reason") == "FailedCreate"
        and (when := event_time(e)) is not None
        and (now - when).total_seconds() <= FAILED_CREATE_WINDOW_S
    ]
    if not recent:
        return None
    latest = max(recent, key=lambda pair: pair[0])[1]
    return truncate(f"Job {job} cannot create pods: {latest.get('message') or ''}")


# --- the other fields ---------------------------------------------------------------------


def _created(tj: TrainingJob, view: JobView, restarts: int, s: Situation) -> dict[str, Any]:
    name = job_name(tj, restarts)
    if view.exists:
        return new_condition("Created", True, "JobCreated", f"Job {name} (attempt {restarts})")
    if s.kind in ("Succeeded", "Failed"):
        return new_condition("Created", False, "JobDeleted", f"Job {name} was deleted")
    return new_condition("Created", False, "JobMissing", f"creating Job {name}")


def _completion_time(
    s: Situation, view: JobView, prev: Mapping[str, Any], now: datetime
) -> str | None:
    if s.kind == "Succeeded":
        return prev.get("completionTime") or view.completion_time or format_time(now)
    if s.kind == "Failed":
        return prev.get("completionTime") or view.failed_at or format_time(now)
    return None


def _metrics(raw: Mapping[str, Any]) -> dict[str, float]:
    """Finite numbers (numeric strings too), 6 significant digits, the first MAX_METRICS
    names in order: the trainer's noise in the last digits must not cause writes."""
    out: dict[str, float] = {}
    for name in sorted(raw):
        value = raw[name]
        if isinstance(value, bool):
            continue
        try:
            number = float(value)
        except (TypeError, ValueError):
            continue
        if math.isfinite(number):
            out[str(name)] = float(f"{number:.6g}")
        if len(out) == MAX_METRICS:
            break
    return out
