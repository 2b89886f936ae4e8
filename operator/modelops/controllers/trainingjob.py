"""TrainingJob: one reconcile, and its kopf triggers.

The sequence (documented in modelops.render.training) is: keep the headless
rendezvous Service applied, read the current attempt's Job and pods, derive
status, restart the whole group when an attempt failed (torchrun cannot take
one node back alone), write status *before* creating the next attempt's Job
so a crash can never skip or repeat an attempt, and create each Job once.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import kopf
import kubernetes

from modelops.api import constants as c
from modelops.api.base import plain
from modelops.api.recheck import describe, violations
from modelops.api.trainingjob import TrainingJob
from modelops.controllers import metrics
from modelops.controllers.reconciler import PostEvent, transition_events
from modelops.controllers.runtime import RUNTIME, Key
from modelops.kube import Kube
from modelops.render.status import status_patch
from modelops.render.training import (
    decide_restart,
    derive_trainingjob_status,
    elapsed_seconds,
    invalid_spec_status,
    is_finished,
    job_name,
    render_headless_service,
    render_job,
    suspend_patch,
)

KIND = c.TJ_KIND
TJ = (c.GROUP, c.VERSION, c.TJ_PLURAL)
OWNED_BY_TJ = {c.LABEL_TRAINING_JOB: kopf.PRESENT}
log = logging.getLogger("modelops.trainingjob")


class TrainingJobReconciler:
    def __init__(self, kube: Kube) -> None:
        self.kube = kube
        self._locks: dict[Key, threading.Lock] = {}
        self._guard = threading.Lock()
        self._service_applied: set[tuple[Key, int]] = set()

    def lock(self, key: Key) -> threading.Lock:
        with self._guard:
            return self._locks.setdefault(key, threading.Lock())

    def forget(self, key: Key) -> None:
        with self._guard:
            self._locks.pop(key, None)
        self._service_applied = {k for k in self._service_applied if k[0] != key}
        metrics.forget(KIND, *key)

    def reconcile(
        self,
        body: Mapping[str, Any],
        *,
        jobs: Sequence[Mapping[str, Any]],
        pods: Sequence[Mapping[str, Any]],
        post_event: PostEvent,
    ) -> float | None:
        key: Key = (body["metadata"]["namespace"], body["metadata"]["name"])
        with self.lock(key), metrics.RECONCILE_DURATION.labels(KIND).time():
            return self._reconcile(key, body, jobs, pods, post_event)

    def _reconcile(
        self,
        key: Key,
        body: Mapping[str, Any],
        jobs: Sequence[Mapping[str, Any]],
        pods: Sequence[Mapping[str, Any]],
        post_event: PostEvent,
    ) -> float | None:
        tj = TrainingJob.from_body(body)
        status = plain(body.get("status") or {})
        previous = {k: v for k, v in status.items() if k != "kopf"}
        restarts = int(status.get("restarts") or 0)
        now = datetime.now(UTC)
        if problems := violations(tj):  # CEL's rules, for objects stored without them
            message = describe(problems)
            new = invalid_spec_status(tj, previous_status=previous, message=message, now=now)
            if patch := status_patch(previous, new):
                self.kube.patch_status(c.GROUP, c.VERSION, c.TJ_PLURAL, *key, patch)
                post_event("Warning", "InvalidSpec", message)
            return None

        generation = tj.metadata.generation
        if (key, generation) not in self._service_applied:
            self.kube.apply(render_headless_service(tj))
            self._service_applied.add((key, generation))

        name = job_name(tj, restarts)
        job = next((j for j in jobs if j["metadata"]["name"] == name), None)
        attempt_pods = [p for p in pods if _job_of(p) == name]
        new = derive_trainingjob_status(
            tj, job=job, pods=attempt_pods, previous_status=previous, now=now, restarts=restarts
        )
        if decide_restart(tj, job, attempt_pods, restarts):
            restarts, job = restarts + 1, None
            new = derive_trainingjob_status(
                tj, job=None, pods=[], previous_status=new, now=now, restarts=restarts
            )
            post_event(
                "Warning",
                "Restarting",
                f"attempt {restarts - 1} failed; "
                f"restarting all {tj.spec.nodes} nodes as attempt {restarts}",
            )

        patch = status_patch(previous, new)
        if patch:
            self.kube.patch_status(c.GROUP, c.VERSION, c.TJ_PLURAL, tj.namespace, tj.name, patch)
            for type_, reason, message in transition_events(
                previous.get("conditions") or [], new["conditions"]
            ):
                post_event(type_, reason, message)
        metrics.export_conditions(KIND, tj.namespace, tj.name, new["conditions"])

        if job is None and not is_finished(new):
            try:
                self.kube.create(
                    render_job(tj, attempt=restarts, elapsed_seconds=elapsed_seconds(new, now))
                )
            except kubernetes.client.ApiException as err:
                if err.status != 409:  # 409: created by an earlier reconcile already
                    raise
        elif job is not None and (suspend := suspend_patch(tj, job)):
            self.kube.merge_patch("batch/v1", "Job", job["metadata"]["name"], tj.namespace, suspend)
        return None if is_finished(new) else 15.0


def _job_of(pod: Mapping[str, Any]) -> str | None:
    return ((pod.get("metadata") or {}).get("labels") or {}).get(c.LABEL_JOB_NAME)


# -- kopf wiring ------------------------------------------------------------------


@kopf.index(*TJ)
def tj_index(namespace: str, name: str, body: kopf.Body, **_: Any) -> dict:
    return {(namespace, name): body}


@kopf.index("batch", "v1", "jobs", labels=OWNED_BY_TJ)
def tj_jobs(namespace: str, labels: Mapping[str, str], body: kopf.Body, **_: Any) -> dict:
    return {(namespace, labels[c.LABEL_TRAINING_JOB]): body}


@kopf.index("", "v1", "pods", labels=OWNED_BY_TJ)
def tj_pods(namespace: str, labels: Mapping[str, str], body: kopf.Body, **_: Any) -> dict:
    return {(namespace, labels[c.LABEL_TRAINING_JOB]): body}


@kopf.on.event(*TJ)
def tj_event(type: str | None, namespace: str, name: str, **_: Any) -> None:
    if type == "DELETED":
        RUNTIME.tj.forget((namespace, name))
        return
    RUNTIME.reconcile_tj((namespace, name))
    RUNTIME.trainingjob_changed((namespace, name))


@kopf.on.event("batch", "v1", "jobs", labels=OWNED_BY_TJ)
def job_event(namespace: str, labels: Mapping[str, str], **_: Any) -> None:
    RUNTIME.reconcile_tj((namespace, labels[c.LABEL_TRAINING_JOB]))


@kopf.on.event("", "v1", "pods", labels=OWNED_BY_TJ)
def tj_pod_event(namespace: str, labels: Mapping[str, str], **_: Any) -> None:
    RUNTIME.reconcile_tj((namespace, labels[c.LABEL_TRAINING_JOB]))
