"""Whole-group restarts: when the controller starts the next attempt.

torchrun's rendezvous cannot take one node back into a running group, so a
failed node fails the whole attempt: the Job has backoffLimit 0 and a
podFailurePolicy that fails it on any non-zero exit or disruption (job.py).
The controller then starts every node again as the next attempt's Job,
`<name>-a<N+1>`, counting status.restarts against spec.backoffLimit:

- the current attempt is status.restarts (latest_attempt(jobs) recovers it);
- decide_restart says when attempt N is over and N+1 may start;
- the controller writes status.restarts = N+1 before creating that Job, so a
  crash in between re-creates the same attempt rather than skipping one;
- no Job is created once is_finished(status).

The loop itself is spelled out in the package docstring.

Failed attempts' Jobs are kept (their pods' logs explain the failure) until
spec.ttlSecondsAfterFinished or the TrainingJob's deletion removes them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from modelops.api.trainingjob import TrainingJob

from ..pods import get, parse_time
from .job_view import PERMANENT_REASONS, JobView, failed_pods, is_terminal, pods_of_job
from .names import as_tj

DEADLINE_REASON = "DeadlineExceeded"


def permanent_failure(failures: Sequence[Mapping[str, Any]]) -> str | None:
    """The trainer's reason when the attempt failed for a reason no retry fixes."""
    for failure in failures:
        if failure.get("reason") in PERMANENT_REASONS:
            return str(failure["reason"])
    return None


def may_restart(
    tj: TrainingJob, job: JobView, restarts: int, failures: Sequence[Mapping[str, Any]]
) -> bool:
    """Whether a failing attempt will be followed by another one."""
    return (
        job.failing
        and job.failure_reason != DEADLINE_REASON
        and restarts < tj.spec.backoff_limit
        and permanent_failure(failures) is None
    )


def decide_restart(
    tj: TrainingJob | Mapping[str, Any],
    job: Mapping[str, Any] | None,
    pods: Sequence[Mapping[str, Any]],
    restarts: int,
) -> bool:
    """True when the controller should start attempt `restarts + 1` now.

    Only once the Job has the Failed condition and every pod of the attempt has
    stopped: a new group must not meet stragglers of the old one on the GPUs.
    Never after DeadlineExceeded (the deadline covers all attempts), after a
    failure the trainer calls permanent (an invalid hyperparameter or training
    module: every attempt would fail alike), nor once spec.backoffLimit
    restarts are used up.
    """
    tj = as_tj(tj)
    view = JobView.of(job)
    mine = pods_of_job(pods, view.name)
    failures = failed_pods(mine, attempt=restarts)
    if not view.failed or not may_restart(tj, view, restarts, failures):
        return False
    return all(is_terminal(p) for p in mine)


def is_finished(status: Mapping[str, Any] | None) -> bool:
    """Whether the TrainingJob succeeded or failed for good: no Job is created any more."""
    for cond in get(status, "conditions", default=[]) or []:
        if cond.get("type") in ("Succeeded", "Failed") and cond.get("status") == "True":
            return True
    return False


def elapsed_seconds(status: Mapping[str, Any] | None, now: datetime) -> int:
    """Seconds since status.startTime (0 before the first attempt started), for
    render_job's share of spec.activeDeadlineSeconds."""
    start = parse_time(get(status, "startTime"))
    return max(0, int((now - start).total_seconds())) if start else 0
