"""One ModelDeployment reconcile: render -> apply (only when needed) -> derive -> patch status.

The kopf handlers (controllers/modeldeployment.py) decide *when* to call this
and hand it snapshots of the children from kopf's in-memory indexes; this
module decides *what* to do. All API I/O goes through `modelops.kube.Kube`.

Zero writes at steady state: the rendered children are hashed, and they are
applied only when that hash changes (spec, resolved version, rollout mode),
when a child's generation moved since our last apply (someone edited it), when
a child is missing, or once after the operator (re)starts. Server-side apply
of an unchanged object is itself a no-op in etcd, so even those re-applies
leave every resourceVersion as it was. Status is patched only with the
fields that differ.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import kubernetes
import pydantic

from modelops.api import constants as c
from modelops.api.base import plain
from modelops.api.modeldeployment import ModelDeployment
from modelops.api.recheck import describe, violations
from modelops.controllers import metrics
from modelops.kube import Kube
from modelops.redact import redact
from modelops.render import (
    child_kinds,
    decide_rollout,
    derive_status,
    render_children,
    stale_children,
    status_patch,
)
from modelops.render.retrain import plan_retrain, resolve_model_version

KIND = c.MD_KIND
Key = tuple[str, str]
PostEvent = Callable[[str, str, str], None]  # (type, reason, message)

# Re-check soon while something is in motion; timing-based decisions (a surge
# pod unschedulable for longer than surgeTimeoutSeconds) need a clock tick,
# not an event.
REQUEUE_WHILE_PROGRESSING_S = 10.0
REQUEUE_AFTER_ERROR_S = 30.0
SCALED_OBJECT = ("keda.sh/v1alpha1", "ScaledObject")
REPLICAS_HANDOVER_MANAGER = "modelops-replicas-handover"


@dataclass
class _Applied:
    """What this operator process last applied for one ModelDeployment."""

    digest: str
    generations: dict[str, int] = field(default_factory=dict)  # child kind -> generation
    kinds: frozenset[str] = frozenset()  # kinds applied (so only those can become stale)


@dataclass
class Outcome:
    requeue_after: float | None = None


class ModelDeploymentReconciler:
    def __init__(
        self,
        kube: Kube,
        *,
        operator_image: str,
        prometheus_address: str,
        drift_reader: Callable[[ModelDeployment, Sequence[Mapping[str, Any]]], dict | None]
        | None = None,
        logger: logging.Logger | None = None,
    ) -> None:
        self.kube = kube
        self.operator_image = operator_image
        self.prometheus_address = prometheus_address
        self.drift_reader = drift_reader
        self.log = logger or logging.getLogger("modelops.modeldeployment")
        self._applied: dict[Key, _Applied] = {}
        self._locks: dict[Key, threading.Lock] = {}
        self._locks_guard = threading.Lock()

    # -- bookkeeping ---------------------------------------------------------

    def lock(self, key: Key) -> threading.Lock:
        with self._locks_guard:
            return self._locks.setdefault(key, threading.Lock())

    def forget(self, key: Key) -> None:
        self._applied.pop(key, None)
        with self._locks_guard:
            self._locks.pop(key, None)
        metrics.forget(KIND, *key)

    # -- the reconcile ---------------------------------------------------------

    def reconcile(
        self,
        body: Mapping[str, Any],
        *,
        deployment: Mapping[str, Any] | None,
        pods: Sequence[Mapping[str, Any]],
        autoscaler: Mapping[str, Any] | None,
        post_event: PostEvent,
        trainings: Sequence[Mapping[str, Any]] = (),
    ) -> Outcome:
        """trainings: the TrainingJobs naming this ModelDeployment in modelDeploymentRef."""
        key: Key = (body["metadata"]["namespace"], body["metadata"]["name"])
        with self.lock(key), metrics.RECONCILE_DURATION.labels(KIND).time():
            return self._reconcile(key, body, deployment, pods, autoscaler, post_event, trainings)

    def _reconcile(
        self,
        key: Key,
        body: Mapping[str, Any],
        deployment: Mapping[str, Any] | None,
        pods: Sequence[Mapping[str, Any]],
        autoscaler: Mapping[str, Any] | None,
        post_event: PostEvent,
        trainings: Sequence[Mapping[str, Any]],
    ) -> Outcome:
        previous = plain(body.get("status") or {})
        try:
            md = ModelDeployment.from_body(body)
        except pydantic.ValidationError as err:
            # The CRD schema should have refused this; say so instead of crashing.
            self._fail(key, previous, "InvalidSpec", _first_error(err), post_event, body)
            return Outcome()
        if problems := violations(md):  # CEL's rules, for objects stored without them
            self._fail(key, previous, "InvalidSpec", describe(problems), post_event, body)
            return Outcome()

        now = datetime.now(UTC)
        rollout = decide_rollout(
            md, deployment=deployment, pods=pods, now=now, previous=previous.get("rollout")
        )
        keda_missing = self._keda_missing(md)
        children = render_children(
            md,
            operator_image=self.operator_image,
            model_version=resolve_model_version(md, trainings),
            replace_in_place=rollout["replaceInPlace"],
            prometheus_address=self.prometheus_address,
        )
        if keda_missing:
            children = [ch for ch in children if (ch["apiVersion"], ch["kind"]) != SCALED_OBJECT]

        apply_error: tuple[str, str] | None = None
        if self._needs_apply(key, children, deployment, autoscaler):
            try:
                self._apply(md, key, children, deployment, keda_missing)
            except kubernetes.client.ApiException as err:
                apply_error = (_api_reason(err), _api_message(err))
                metrics.RECONCILE_ERRORS.labels(KIND, apply_error[0]).inc()
                self._applied.pop(key, None)
                self.log.warning("applying children of %s/%s failed: %s", *key, apply_error[1])

        events = self._warning_events(md) if _pods_cannot_be_created(deployment, pods) else []
        drift = self._read_drift(md, pods)
        status = derive_status(
            md,
            deployment=deployment,
            pods=pods,
            events=events,
            autoscaler=autoscaler,
            keda_missing=keda_missing,
            drift=drift,
            now=now,
            previous_conditions=previous.get("conditions"),
            rollout=rollout,
        )
        if apply_error:
            status["conditions"] = _with_apply_error(
                status["conditions"], previous.get("conditions"), *apply_error, now
            )
        self._retrain_if_drifted(md, previous, status, trainings, now, post_event)
        self._write_status(md, previous, status, post_event, body)

        if apply_error:
            return Outcome(requeue_after=REQUEUE_AFTER_ERROR_S)
        if _condition(status, "Ready") != "True" or _condition(status, "Reconciling") == "True":
            return Outcome(requeue_after=REQUEUE_WHILE_PROGRESSING_S)
        if drift is not None or (md.spec.drift_monitor and md.spec.drift_monitor.enabled):
            return Outcome(requeue_after=30.0)
        return Outcome()

    # -- apply -----------------------------------------------------------------

    def _needs_apply(
        self,
        key: Key,
        children: Sequence[Mapping[str, Any]],
        deployment: Mapping[str, Any] | None,
        autoscaler: Mapping[str, Any] | None,
    ) -> bool:
        applied = self._applied.get(key)
        if applied is None or applied.digest != _digest(children):
            return True
        for kind, live in (("Deployment", deployment), ("autoscaler", autoscaler)):
            recorded = applied.generations.get(kind)
            if recorded is None:
                continue
            if live is None or live["metadata"].get("generation") != recorded:
                return True
        return False

    def _apply(
        self,
        md: ModelDeployment,
        key: Key,
        children: Sequence[dict[str, Any]],
        deployment: Mapping[str, Any] | None,
        keda_missing: bool,
    ) -> None:
        if md.spec.autoscaling is not None and deployment is not None:
            self._hand_replicas_to_autoscaler(deployment)
        generations: dict[str, int] = {}
        for child in children:
            live = self.kube.apply(child)
            kind = child["kind"]
            if kind in ("HorizontalPodAutoscaler", "ScaledObject"):
                kind = "autoscaler"
            if kind in ("Deployment", "autoscaler"):
                generations[kind] = live["metadata"].get("generation")
        # Without a record (first pass since the operator started) any kind may
        # be left over from an earlier spec; afterwards only kinds applied before.
        before = self._applied.get(key)
        for stale in stale_children(md, children):
            if keda_missing and (stale.api_version, stale.kind) == SCALED_OBJECT:
                continue
            if before is not None and stale.kind not in before.kinds:
                continue
            if self.kube.delete(stale.api_version, stale.kind, stale.name, stale.namespace):
                self.log.info("deleted %s %s/%s (no longer wanted)", stale.kind, *key)
        self._applied[key] = _Applied(
            digest=_digest(children),
            generations=generations,
            kinds=frozenset(child["kind"] for child in children),
        )

    def _hand_replicas_to_autoscaler(self, deployment: Mapping[str, Any]) -> None:
        """Keep the replica count when autoscaling is switched on.

        The Deployment renders without spec.replicas once an autoscaler owns
        scaling. If this field manager still owns spec.replicas, dropping it
        from the apply would reset the Deployment to 1 replica; so a second
        manager first takes co-ownership at the live value, as the Kubernetes
        docs describe for handing a field over.
        """
        owns_replicas = any(
            entry.get("manager") == "modelops"
            and "f:replicas" in (entry.get("fieldsV1") or {}).get("f:spec", {})
            for entry in deployment["metadata"].get("managedFields") or []
        )
        if not owns_replicas:
            return
        meta = deployment["metadata"]
        self.kube.apply(
            {
                "apiVersion": "apps/v1",
                "kind": "Deployment",
                "metadata": {"name": meta["name"], "namespace": meta["namespace"]},
                "spec": {"replicas": deployment["spec"].get("replicas", 1)},
            },
            field_manager=REPLICAS_HANDOVER_MANAGER,
        )

    # -- reads -----------------------------------------------------------------

    def _keda_missing(self, md: ModelDeployment) -> bool:
        scaling = md.spec.autoscaling
        if scaling is None or scaling.engine != "keda":
            return False
        return not self.kube.api_available(*SCALED_OBJECT)

    def _warning_events(self, md: ModelDeployment) -> list[dict[str, Any]]:
        """Warnings about this ModelDeployment's Deployment, ReplicaSets and pods.

        Read only while the rollout is incomplete (that is when they explain
        something), and never watched: events are not labelled, and a watch
        would cache every event of the cluster.
        """
        events = self.kube.list_events(md.namespace, field_selector="type=Warning")
        prefix = f"{md.name}-"
        return [
            e
            for e in events
            if (e.get("involvedObject") or {}).get("name", "").startswith(prefix)
            or (e.get("involvedObject") or {}).get("name") == md.name
        ]

    def _read_drift(
        self, md: ModelDeployment, pods: Sequence[Mapping[str, Any]]
    ) -> dict[str, Any] | None:
        if self.drift_reader is None or not (
            md.spec.drift_monitor and md.spec.drift_monitor.enabled
        ):
            return None
        return self.drift_reader(md, pods)

    def _retrain_if_drifted(
        self,
        md: ModelDeployment,
        previous: Mapping[str, Any],
        status: dict[str, Any],
        trainings: Sequence[Mapping[str, Any]],
        now: datetime,
        post_event: PostEvent,
    ) -> None:
        """Close the loop: a Drifted model with a retrain template gets a TrainingJob."""
        retrain = previous.get("retrain")
        if retrain:
            status["retrain"] = retrain
        plan = plan_retrain(
            md,
            drifted=_condition(status, "Drifted") == "True",
            previous=retrain,
            trainings=trainings,
            now=now,
        )
        if plan is None:
            return
        try:
            self.kube.create(plan)
        except kubernetes.client.ApiException as err:
            if err.status != 409:  # 409: this attempt's TrainingJob exists already
                metrics.RECONCILE_ERRORS.labels(KIND, _api_reason(err)).inc()
                post_event("Warning", "RetrainFailed", _api_message(err))
                return
        status["retrain"] = {
            "trainingJob": plan["metadata"]["name"],
            "lastTriggeredTime": now.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "count": int((retrain or {}).get("count") or 0) + 1,
        }
        post_event(
            "Normal",
            "RetrainStarted",
            f"drift detected; started TrainingJob {plan['metadata']['name']}",
        )

    # -- status ----------------------------------------------------------------

    def _write_status(
        self,
        md: ModelDeployment,
        previous: Mapping[str, Any],
        status: dict[str, Any],
        post_event: PostEvent,
        body: Mapping[str, Any],
    ) -> None:
        patch = status_patch({k: v for k, v in previous.items() if k != "kopf"}, status)
        if patch:
            self.kube.patch_status(c.GROUP, c.VERSION, c.MD_PLURAL, md.namespace, md.name, patch)
            for type_, reason, message in transition_events(
                previous.get("conditions") or [], status["conditions"]
            ):
                post_event(type_, reason, message)
        metrics.export_conditions(KIND, md.namespace, md.name, status["conditions"])

    def _fail(
        self,
        key: Key,
        previous: Mapping[str, Any],
        reason: str,
        message: str,
        post_event: PostEvent,
        body: Mapping[str, Any],
    ) -> None:
        metrics.RECONCILE_ERRORS.labels(KIND, reason).inc()
        now = datetime.now(UTC)
        conditions = _with_apply_error([], previous.get("conditions"), reason, message, now)
        status = {
            "observedGeneration": body["metadata"].get("generation"),
            "conditions": conditions,
        }
        patch = status_patch({k: v for k, v in previous.items() if k != "kopf"}, status)
        if patch:
            self.kube.patch_status(c.GROUP, c.VERSION, c.MD_PLURAL, key[0], key[1], patch)
            post_event("Warning", reason, message)


def watched_kinds() -> tuple[tuple[str, str, str], ...]:
    """(group, version, plural) of the children the handlers index."""
    out = []
    for kind in child_kinds():
        group, _, version = kind.api_version.rpartition("/")
        out.append((group, version, kind.plural))
    return tuple(out)


def transition_events(
    old: Sequence[Mapping[str, Any]], new: Sequence[Mapping[str, Any]]
) -> list[tuple[str, str, str]]:
    """Kubernetes Events for the transitions an SRE wants in `kubectl describe`."""
    before = {cond["type"]: cond for cond in old}
    out = []
    for cond in new:
        prior = before.get(cond["type"])
        changed = prior is None or (prior.get("status"), prior.get("reason")) != (
            cond["status"],
            cond.get("reason"),
        )
        if not changed:
            continue
        ctype, status = cond["type"], cond["status"]
        if ctype == "Ready" and status == "True":
            out.append(("Normal", cond.get("reason") or "Ready", cond.get("message", "")))
        elif ctype == "Stalled" and status == "True":
            out.append(("Warning", cond.get("reason") or "Stalled", cond.get("message", "")))
        elif ctype == "Drifted" and status == "True":
            out.append(("Warning", "DriftDetected", cond.get("message", "")))
        elif ctype == "Ready" and status == "False" and prior is not None:
            out.append(("Warning", cond.get("reason") or "NotReady", cond.get("message", "")))
    return out


def _with_apply_error(
    conditions: Sequence[Mapping[str, Any]],
    previous: Sequence[Mapping[str, Any]] | None,
    reason: str,
    message: str,
    now: datetime,
) -> list[dict[str, Any]]:
    """Conditions saying the children could not be applied (Stalled, not Ready)."""
    stamp = now.strftime("%Y-%m-%dT%H:%M:%SZ")
    before = {cond["type"]: cond for cond in previous or []}
    forced = {
        "Ready": ("False", reason, message),
        "Stalled": ("True", reason, message),
        "Reconciling": ("False", reason, "not progressing until the error is fixed"),
    }
    out: list[dict[str, Any]] = []
    seen = set()
    for cond in list(conditions) + [
        {"type": t} for t in forced if t not in {x["type"] for x in conditions}
    ]:
        ctype = cond["type"]
        seen.add(ctype)
        if ctype not in forced:
            out.append(dict(cond))
            continue
        status, why, text = forced[ctype]
        prior = before.get(ctype)
        since = prior["lastTransitionTime"] if prior and prior.get("status") == status else stamp
        out.append(
            {
                "type": ctype,
                "status": status,
                "reason": why,
                "message": redact(text)[:1024],  # API errors may quote a URI
                "lastTransitionTime": since,
                **(
                    {"observedGeneration": cond["observedGeneration"]}
                    if "observedGeneration" in cond
                    else {}
                ),
            }
        )
    return out


def _pods_cannot_be_created(
    deployment: Mapping[str, Any] | None, pods: Sequence[Mapping[str, Any]]
) -> bool:
    """Whether Warning events may explain what the objects' status cannot.

    Pods that exist carry their own reasons (scheduling, image pulls,
    crashes). Events are needed only when the ReplicaSet fails to create pods
    at all (admission, quota), which the Deployment reports as ReplicaFailure
    or as wanting replicas while none exist. Listing events on every
    reconcile of a rollout would cost one namespace-wide list each.
    """
    if deployment is None:
        return False
    status = deployment.get("status") or {}
    if any(
        c.get("type") == "ReplicaFailure" and c.get("status") == "True"
        for c in status.get("conditions") or []
    ):
        return True
    wanted = (deployment.get("spec") or {}).get("replicas", 1)
    return bool(wanted) and not pods


def _condition(status: Mapping[str, Any], ctype: str) -> str | None:
    return next((c["status"] for c in status.get("conditions", []) if c["type"] == ctype), None)


def _digest(children: Sequence[Mapping[str, Any]]) -> str:
    return hashlib.sha256(json.dumps(children, sort_keys=True).encode()).hexdigest()


def _api_reason(err: kubernetes.client.ApiException) -> str:
    try:
        return json.loads(err.body).get("reason") or f"HTTP{err.status}"
    except (TypeError, ValueError):
        return f"HTTP{err.status}"


def _api_message(err: kubernetes.client.ApiException) -> str:
    try:
        return json.loads(err.body).get("message") or str(err.reason)
    except (TypeError, ValueError):
        return str(err.reason)


def _first_error(err: pydantic.ValidationError) -> str:
    first = err.errors()[0]
    where = ".".join(str(p) for p in first["loc"])
    return f"spec.{where}: {first['msg']}"
