"""The TrainingJob planner: observed snapshot in, Plan out. Pure.

The order the shell follows for a TrainingJob is part of the plan's meaning:
the status patch is written *before* the next attempt's Job is created
(``Plan.status_first``), so an operator that dies in between can never skip
or repeat an attempt: the attempt counter it reads back names the Job to
create. Each Job is created once (a Create; AlreadyExists counts as done) and
never re-applied; the headless rendezvous Service is applied like any owned
child (healed when deleted or edited, never taken over when foreign).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import pydantic

from modelops.api import constants as c
from modelops.api.base import plain
from modelops.api.intake import read_training_job
from modelops.api.kinds import RESOURCE_CLAIM_TEMPLATE
from modelops.api.recheck import describe, violations
from modelops.api.trainingjob import TrainingJob

from ..dra import template_actions
from ..outcome import conclude, digest
from ..ownership import Applied, apply_actions
from ..plan import Create, Delete, Failure, Patch, Plan
from ..pod_controls import PodControlsCollision
from ..projections import controller_uid
from .gpu_claims import render_claim_template
from .job import render_job, suspend_patch
from .names import job_name
from .restart import decide_restart, elapsed_seconds, is_finished
from .service import render_headless_service
from .status import derive_trainingjob_status

# While a TrainingJob runs, look again this often even without events
# (deadlines, the activeDeadlineSeconds share of a new attempt).
REQUEUE_WHILE_RUNNING_S = 15.0


@dataclass(frozen=True)
class Observed:
    """body: the TrainingJob; jobs and pods: those labelled with its name;
    service: its live headless Service (projection) or None; claim_template: its
    live ResourceClaimTemplate (projection) or None (GPUs through DRA)."""

    body: Mapping[str, Any]
    jobs: Sequence[Mapping[str, Any]]
    pods: Sequence[Mapping[str, Any]]
    service: Mapping[str, Any] | None
    now: datetime
    claim_template: Mapping[str, Any] | None = None

    @property
    def uid(self) -> str:
        return str(self.body["metadata"].get("uid") or "")

    @property
    def previous(self) -> dict[str, Any]:
        status = plain(self.body.get("status") or {})
        return {k: v for k, v in status.items() if k != "kopf"}


def parse(body: Mapping[str, Any]) -> TrainingJob | str:
    """The typed object, or what is wrong with it, fields named: the first validation
    error, or the CRD rules it breaks (modelops.api.recheck)."""
    try:
        tj = read_training_job(body)
    except pydantic.ValidationError as err:
        first = err.errors()[0]
        return ".".join(str(p) for p in first["loc"]) + f": {first['msg']}"
    # The CRD's CEL rules, for an object stored without them (before a CRD change).
    if problems := violations(tj):
        return describe(problems)
    return tj


def plan(
    obs: Observed,
    tj: TrainingJob | str,
    applied: Applied | None,
    trainer_image: str = c.DEFAULT_TRAINER_IMAGE,
) -> Plan:
    """Everything this reconcile should do. trainer_image: the operator's default
    image for spec.image (a restart keeps the image of the earlier attempts)."""
    previous = obs.previous
    if obs.body["metadata"].get("deletionTimestamp"):
        return Plan()  # being deleted: garbage collection takes the children
    if isinstance(tj, str):
        status = {"observedGeneration": obs.body["metadata"].get("generation")}
        return conclude(Plan(), previous, status, [Failure(c.TJ_KIND, "InvalidSpec", tj)], obs.now)

    service = render_headless_service(tj)
    template = render_claim_template(tj)
    rendered = [service] if template is None else [template, service]
    # The digest of the Service alone when there is no template, as before DRA.
    out = Plan(digest=digest(service if template is None else rendered), status_first=True)
    applies, problems = apply_actions(
        rendered,
        {service["kind"]: obs.service, RESOURCE_CLAIM_TEMPLATE.kind: obs.claim_template},
        owner_uid=obs.uid,
        applied=applied,
        digest=out.digest,
    )
    out.applies, replaced = template_actions(rendered, obs.claim_template, obs.uid, applies)
    if replaced is not None:
        out.deletes.append(replaced)
        out.digest = ""  # what was rendered is not applied yet: the next plan applies it
    elif template is None and obs.claim_template is not None:
        out.deletes += _stale_template(obs)

    restarts = int(previous.get("restarts") or 0)
    name = job_name(tj, restarts)
    job = next((j for j in obs.jobs if j["metadata"]["name"] == name), None)
    attempt_pods = [p for p in obs.pods if _job_of(p) == name]
    status = derive_trainingjob_status(
        tj, job=job, pods=attempt_pods, previous_status=previous, now=obs.now, restarts=restarts
    )
    if decide_restart(tj, job, attempt_pods, restarts):
        restarts, job = restarts + 1, None
        # Chained on the failed attempt's status, so its failedPods carry over.
        status = derive_trainingjob_status(
            tj, job=None, pods=[], previous_status=status, now=obs.now, restarts=restarts
        )
        out.events.append(
            (
                "Warning",
                "Restarting",
                f"attempt {restarts - 1} failed; "
                f"restarting all {tj.spec.nodes} nodes as attempt {restarts}",
            )
        )
    if job is None and not is_finished(status):
        elapsed = elapsed_seconds(status, obs.now)
        try:
            job_body = render_job(
                tj,
                attempt=restarts,
                elapsed_seconds=elapsed,
                image=trainer_image,
                earlier_jobs=obs.jobs,
            )
        except PodControlsCollision as err:
            # The operator's own entries win: no Job with the user's colliding one
            # (render/pod_controls.py); the next edit of the spec brings it.
            problems.append(Failure(c.TJ_KIND, "InvalidSpec", str(err)))
        else:
            out.creates.append(Create(job_body))
    elif job is not None and (suspend := suspend_patch(tj, job)):
        meta = job["metadata"]
        out.patches.append(Patch("batch/v1", "Job", meta["namespace"], meta["name"], suspend))
    if replaced is not None:
        # The next attempt's pods must get their claims from the new template: the
        # Job is created once it exists (the delete's event brings that reconcile).
        out.creates = []
    out.requeue_after = None if is_finished(status) else REQUEUE_WHILE_RUNNING_S
    return conclude(out, previous, status, problems, obs.now)


def revise(obs: Observed, done: Plan, failures: Sequence[Failure]) -> Plan:
    """The plan's status once the shell reports what it could not do."""
    out = Plan(
        applies=done.applies,
        deletes=done.deletes,
        creates=done.creates,
        patches=done.patches,
        requeue_after=done.requeue_after,
        digest=done.digest,
        status_first=True,
        events=[e for e in done.events if e[1] == "Restarting"],
    )
    problems = list(done.problems) + list(failures)
    return conclude(out, obs.previous, dict(done.status), problems, obs.now)


def _stale_template(obs: Observed) -> list[Delete]:
    """The claim template of a TrainingJob that no longer uses DRA (ours only)."""
    live = obs.claim_template
    if live is None or controller_uid(live) != obs.uid:
        return []
    meta = live["metadata"]
    kind = RESOURCE_CLAIM_TEMPLATE
    return [Delete(kind.api_version, kind.kind, meta["namespace"], meta["name"], meta["uid"])]


def _job_of(pod: Mapping[str, Any]) -> str | None:
    return ((pod.get("metadata") or {}).get("labels") or {}).get(c.LABEL_JOB_NAME)
