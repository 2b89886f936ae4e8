"""TrainingJob children and status, as pure functions.

``planner.plan`` takes every decision of a reconcile (controllers.tj_reconcile
is its shell); in outline, the order it follows::

    tj = read_training_job(body)  # modelops.api.intake: v1alpha1 + pod controls
    status = body.get("status") or {}
    restarts = status.get("restarts") or 0  # latest_attempt(jobs) if status was lost
    apply(render_headless_service(tj))
    job, pods = read_job(job_name(tj, restarts))  # None, [] when it does not exist
    new = derive_trainingjob_status(
        tj, job=job, pods=pods, previous_status=status, now=now, restarts=restarts
    )
    if decide_restart(tj, job, pods, restarts):
        restarts, job = restarts + 1, None
        # Chained on `new`, so the failed attempt's failedPods carry over.
        new = derive_trainingjob_status(
            tj, job=None, pods=[], previous_status=new, now=now, restarts=restarts
        )
    write_status(status_patch(status, new))  # first: a crash must not skip an attempt
    if job is None and not is_finished(new):
        create(render_job(tj, attempt=restarts, elapsed_seconds=elapsed_seconds(new, now)))
    elif job is not None and (patch := suspend_patch(tj, job)):
        patch_job(patch)

A Job is created once per attempt and never re-applied (see job.py);
restart.py explains the whole-group restart.
"""

from .job import POD_FAILURE_POLICY, TRAINER_CONTAINER, render_job, suspend_patch
from .names import (
    attempt_of,
    job_name,
    latest_attempt,
    master_addr,
    selector_labels,
    service_name,
)
from .restart import decide_restart, elapsed_seconds, is_finished
from .service import render_headless_service
from .status import derive_trainingjob_status

__all__ = [
    "POD_FAILURE_POLICY",
    "TRAINER_CONTAINER",
    "attempt_of",
    "decide_restart",
    "derive_trainingjob_status",
    "elapsed_seconds",
    "is_finished",
    "job_name",
    "latest_attempt",
    "master_addr",
    "render_headless_service",
    "render_job",
    "selector_labels",
    "service_name",
    "suspend_patch",
]
