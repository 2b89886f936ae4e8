"""The ModelDeployment planner: observed snapshot in, Plan out. Pure.

Every decision of a ModelDeployment reconcile is taken here:

* which children to apply — a child that is missing, was changed behind the
  operator's back (its generation, or for a Service its resourceVersion, moved
  since our last apply; its owner reference was removed), or whose rendering
  changed; nothing when all is as last applied (zero writes at steady state);
* which children to delete — kinds no longer rendered (e.g. the HPA once
  autoscaling is removed), only when this ModelDeployment owns them, with
  their uid as a precondition;
* whether an object of a child's name belongs to someone else — then it is
  left alone and the ModelDeployment is Stalled with the object named;
* the replica hand-over when an autoscaler takes over, and bringing a
  Deployment scaled below the autoscaler's minimum back up (an HPA does not
  act on a target at zero replicas);
* the retraining TrainingJob when drift closes the loop;
* the status, its merge patch, the transition events, and when to look again.

``revise`` folds what went wrong while the shell acted (an apply refused, an
object found to belong to someone else) back into status and events.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from functools import cached_property
from typing import Any

import pydantic

from modelops.api import constants as c
from modelops.api.base import plain
from modelops.api.conditions import CONDITIONS
from modelops.api.intake import read_model_deployment
from modelops.api.kinds import kind_of
from modelops.api.modeldeployment import MAX_LOADED_PODS, MAX_LOADED_VERSIONS, ModelDeployment
from modelops.api.recheck import describe, violations

from .autoscaler import DEFAULT_PROMETHEUS_ADDRESS
from .children import (
    DEPLOYMENT,
    HPA,
    PDB,
    RESOURCE_CLAIM_TEMPLATE,
    SCALED_OBJECT,
    SERVICE,
    render_children,
)
from .conditions import set_condition, stamp_conditions
from .dra import allocated_gpus, gpu_status, template_actions
from .gating import RolloutPlan
from .gating.slot_plan import Placement, place
from .keys import key_of
from .outcome import conclude, digest
from .ownership import Applied, apply_actions, uid_of
from .pdb import baseline_replicas
from .plan import REPLICAS_MANAGER, Apply, Create, Delete, Failure, Plan
from .pod_controls import PodControlsCollision
from .projections import OWNS_REPLICAS, controller_uid
from .retrain import plan_retrain, resolve_model_version
from .slots import Layout
from .status import derive_status
from .surge import decide_rollout

# Re-check soon while something is in motion; timing-based decisions (a surge
# pod unschedulable for longer than surgeTimeoutSeconds) need a clock tick.
REQUEUE_WHILE_PROGRESSING_S = 10.0
# Drift windows close on the sidecars; the operator polls them this often.
REQUEUE_FOR_DRIFT_S = 30.0
# KEDA's CRD events can come before discovery serves its API: a model waiting
# for KEDA looks again this often (the discovery answer is cached as long).
REQUEUE_FOR_KEDA_S = 30.0

STORE_REASONS = frozenset(CONDITIONS["StoreListed"][1])
CHILD_KINDS = (RESOURCE_CLAIM_TEMPLATE, DEPLOYMENT, SERVICE, HPA, SCALED_OBJECT, PDB)
AUTOSCALER_KINDS = (HPA.kind, SCALED_OBJECT.kind)
DRA_NOT_SERVED = (
    "spec.resources.gpu.allocation is DRA, but this cluster does not serve "
    "resource.k8s.io/v1 ResourceClaimTemplates (Dynamic Resource Allocation, Kubernetes "
    "1.34 or later): use allocation DevicePlugin here"
)


@dataclass(frozen=True)
class Settings:
    """Operator-wide rendering settings."""

    operator_image: str
    prometheus_address: str = DEFAULT_PROMETHEUS_ADDRESS
    # The default Triton image (spec.runtime.image overrides it; api/images.py).
    triton_image: str = c.DEFAULT_TRITON_IMAGE
    # "gpu" (KIND_GPU) or "auto" (KIND_AUTO) for the instances of GPU pods; see
    # triton/config_patch.py RuntimeOverrides.gpu_kind.
    gpu_instance_kind: str = "gpu"
    # Where KEDA reads the activator's held requests (render/wake.py); None: no
    # activator is installed, a model at zero is not woken by its requests.
    activator_url: str | None = None


@dataclass(frozen=True)
class Observed:
    """One consistent look at a ModelDeployment and everything it depends on.

    body: the ModelDeployment (a projection: spec, metadata, status);
    children: kind -> the live child (projection) or None;
    pods: the Triton pods (all revisions); trainings: TrainingJobs naming this
    ModelDeployment in modelDeploymentRef; keda: the ScaledObject API is
    served; drift: the merged sidecar summary (None when not read); figures: the
    sidecars' rollout figures by pod (read only while a gated rollout's candidate runs);
    events: Warning events, read only when ``wants_events`` said so; claims: the
    ResourceClaims made for the pods from the GPU claim template (DRA only);
    dra_served: the cluster serves resource.k8s.io/v1 (only asked with DRA).
    """

    body: Mapping[str, Any]
    children: Mapping[str, Mapping[str, Any] | None]
    pods: Sequence[Mapping[str, Any]]
    now: datetime
    trainings: Sequence[Mapping[str, Any]] = ()
    keda: bool = False
    drift: Mapping[str, Any] | None = None
    events: Sequence[Mapping[str, Any]] = ()
    # The sidecars' /rollout summaries by pod name, read while a candidate runs.
    figures: Mapping[str, Mapping[str, Any]] | None = None
    claims: Sequence[Mapping[str, Any]] = ()
    dra_served: bool = True
    # pod name -> the model versions its Triton reports loaded (ready pods that answered).
    loaded: Mapping[str, Sequence[str]] | None = None
    # pod name -> slot, for the pods whose sidecars may give evidence (render/evidence.py);
    # None: not checked (the figures' pods are grouped by their slot label).
    sources: Mapping[str, str] | None = None
    # pod name -> why its latest rollout figures were refused (render/gating/ledger.py).
    refused: Mapping[str, str] | None = None
    # pod name -> why its sidecar gave no figures in time (skipped this look).
    unanswered: Mapping[str, str] | None = None
    # The model store's listing: {"newest": version or None, "digests": {version: digest}};
    # None when not listed (pvc://, no credentials yet, not asked).
    store: Mapping[str, Any] | None = None

    @property
    def key(self) -> tuple[str, str]:
        meta = self.body["metadata"]
        return meta["namespace"], meta["name"]

    @property
    def uid(self) -> str:
        return str(self.body["metadata"].get("uid") or "")

    @cached_property
    def previous(self) -> dict[str, Any]:
        """The status as last written (kopf's own subtree left out)."""
        status = plain(self.body.get("status") or {})
        return {k: v for k, v in status.items() if k != "kopf"}


def parse(body: Mapping[str, Any]) -> ModelDeployment | str:
    """The typed object, or what is wrong with it, fields named: the first validation
    error, or the CRD rules it breaks (modelops.api.recheck)."""
    try:
        md = read_model_deployment(body)
    except pydantic.ValidationError as err:
        first = err.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        return f"{where}: {first['msg']}"
    # The CRD's CEL rules, for an object stored without them (before a CRD change).
    if problems := violations(md):
        return describe(problems)
    return md


def wants_events(deployment: Mapping[str, Any] | None, pods: Sequence[Mapping[str, Any]]) -> bool:
    """Whether Warning events may explain what the objects' status cannot.

    Pods that exist carry their own reasons (scheduling, image pulls,
    crashes). Events are needed only when the ReplicaSet fails to create pods
    at all (admission, quota), which the Deployment reports as ReplicaFailure
    or as wanting replicas while none exist. Events are never watched (they
    are not labelled; a watch would cache every event of the cluster).
    """
    if deployment is None:
        return False
    status = deployment.get("status") or {}
    if any(
        cond.get("type") == "ReplicaFailure" and cond.get("status") == "True"
        for cond in status.get("conditions") or []
    ):
        return True
    wanted = (deployment.get("spec") or {}).get("replicas", 1)
    return bool(wanted) and not pods


def events_about(name: str, events: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """The events about a ModelDeployment's Deployment, ReplicaSets and pods (their
    names start with its own)."""
    prefix = f"{name}-"
    out = []
    for event in events:
        involved = (event.get("involvedObject") or {}).get("name", "")
        if involved == name or involved.startswith(prefix):
            out.append(event)
    return out


def plan(
    obs: Observed,
    md: ModelDeployment | str,
    applied: Applied | None,
    settings: Settings,
    memo: dict[Any, Any] | None = None,
) -> Plan:
    """Everything this reconcile should do. ``md`` is ``parse(obs.body)``.

    memo: a dict the caller keeps between calls; rendered children are reused
    from it while their inputs (spec generation, version, rollout mode) are
    the same, since rendering and hashing them is most of a plan's cost.

    The phases, in order (each below as a function of its own):
    decide (where each version runs, surge) -> render and apply the children ->
    delete the ones no longer rendered -> keep the autoscaler's minimum ->
    derive the status -> start a retraining -> when to look again.
    """
    if obs.body["metadata"].get("deletionTimestamp"):
        # Being deleted (garbage collection takes the children): heal nothing,
        # so a child is not re-created into a namespace that is going away.
        return Plan()
    if isinstance(md, str):
        return _refuse_invalid_spec(obs, md)
    decided = _decide(obs, md)
    try:
        out, problems, rendered = _render_and_apply(obs, md, decided, applied, settings, memo)
    except PodControlsCollision as err:
        # The operator's own entries win: the user's colliding one is refused and
        # the children stay as they are (render/pod_controls.py).
        status = {"observedGeneration": obs.body["metadata"].get("generation")}
        failure = Failure(c.MD_KIND, "InvalidSpec", str(err))
        return conclude(Plan(), obs.previous, status, [failure], obs.now)
    _delete_unrendered(out, obs, rendered, decided.keda_missing)
    _keep_autoscaler_minimum(out, md, decided)
    status = _derive_status(obs, md, decided, out)
    _start_retraining(out, status, obs, md)
    out.requeue_after = _look_again_after(md, status, obs, decided)
    out.planned_events = len(out.events)
    return conclude(out, obs.previous, status, problems, obs.now)


@dataclass(frozen=True)
class _Decided:
    """What the decide phase settled, for the phases after it."""

    placement: Placement
    layout: Layout
    deployment: Mapping[str, Any] | None  # the stable slot's live Deployment
    rollout: dict[str, Any]  # the surge decision (status.rollout's replaceInPlace...)
    keda_missing: bool  # autoscaling asks for KEDA, which the cluster does not serve


def _refuse_invalid_spec(obs: Observed, md: str) -> Plan:
    # The CRD schema should have refused this; say so instead of rendering.
    status = {"observedGeneration": obs.body["metadata"].get("generation")}
    problem = Failure(c.MD_KIND, "InvalidSpec", md)  # it names the field: spec....
    return conclude(Plan(), obs.previous, status, [problem], obs.now)


def _decide(obs: Observed, md: ModelDeployment) -> _Decided:
    """Where each version runs (the gated rollout's slots) and the surge decision."""
    previous = obs.previous
    placement = place(
        md,
        children=obs.children,
        pods=obs.pods,
        trainings=obs.trainings,
        previous=previous,
        figures=obs.figures,
        now=obs.now,
        loaded=obs.loaded,
        sources=obs.sources,
        refused=obs.refused,
        unanswered=obs.unanswered,
        store=obs.store,
    )
    layout = placement.layout
    deployment = obs.children.get(placement.stable_key)
    rollout = decide_rollout(
        md,
        deployment=deployment,
        pods=placement.serving_pods,
        now=obs.now,
        previous=previous.get("rollout"),
    )
    keda_missing = bool(
        md.spec.autoscaling and md.spec.autoscaling.engine == "keda" and not obs.keda
    )
    if placement.decision is None:
        layout = replace(layout, stable_version=resolve_model_version(md, obs.trainings))
    return _Decided(placement, layout, deployment, rollout, keda_missing)


def _render_and_apply(
    obs: Observed,
    md: ModelDeployment,
    decided: _Decided,
    applied: Applied | None,
    settings: Settings,
    memo: dict[Any, Any] | None,
) -> tuple[Plan, list[Failure], list[dict[str, Any]]]:
    """The children rendered, and the applies (and DRA template replacement) they need."""
    placement, deployment = decided.placement, decided.deployment
    rendered, rendered_digest = _render(
        md, decided.layout, decided.rollout["replaceInPlace"], decided.keda_missing, settings, memo
    )
    out = Plan(digest=rendered_digest)
    applies, problems = apply_actions(
        rendered, obs.children, owner_uid=obs.uid, applied=applied, digest=out.digest, now=obs.now
    )
    applies, replaced = template_actions(
        rendered, obs.children.get(RESOURCE_CLAIM_TEMPLATE.kind), obs.uid, applies
    )
    if replaced is not None:
        out.deletes.append(replaced)
        out.digest = ""  # what was rendered is not applied yet: the next plan applies it
    if md.spec.resources.gpu.dra and not obs.dra_served:
        # Pods naming a claim template the API server does not know would never
        # start: change nothing, and say why.
        applies = []
        problems.append(Failure(RESOURCE_CLAIM_TEMPLATE.kind, "DRANotServed", DRA_NOT_SERVED))
    for action in applies:
        if action.key == placement.stable_key and deployment is not None and md.spec.autoscaling:
            out.applies.extend(_replicas_handover(md, deployment, action.key))
        out.applies.append(action)
    return out, problems, rendered


def _delete_unrendered(
    out: Plan, obs: Observed, rendered: Sequence[Mapping[str, Any]], keda_missing: bool
) -> None:
    """Delete the children this ModelDeployment owns that are no longer rendered."""
    wanted = {key_of(child) for child in rendered}
    for key, live in obs.children.items():
        if key in wanted or live is None or controller_uid(live) != obs.uid:
            continue
        if keda_missing and key == SCALED_OBJECT.kind:
            continue  # KEDA gone: nothing serves that API to delete from
        meta = live["metadata"]
        kind = kind_of(str(live["apiVersion"]), str(live["kind"]))
        out.deletes.append(
            Delete(kind.api_version, kind.kind, meta["namespace"], meta["name"], meta["uid"], key)
        )


def _keep_autoscaler_minimum(out: Plan, md: ModelDeployment, decided: _Decided) -> None:
    """Bring the Deployment back to the autoscaler's minimum unless a hand-over is under way."""
    handed_over = any(a.field_manager == REPLICAS_MANAGER for a in out.applies)
    if decided.deployment is not None and decided.layout.autoscaler and not handed_over:
        out.applies.extend(_restore_minimum(md, decided.deployment, decided.placement.stable_key))


def _derive_status(
    obs: Observed, md: ModelDeployment, decided: _Decided, out: Plan
) -> dict[str, Any]:
    """The status: conditions, the rollout decision, the store listing, GPUs, loaded versions."""
    previous = obs.previous
    placement = decided.placement
    status = derive_status(
        md,
        deployment=decided.deployment,
        pods=placement.serving_pods,
        events=obs.events,
        autoscaler=obs.children.get(HPA.kind) or obs.children.get(SCALED_OBJECT.kind),
        keda_missing=decided.keda_missing,
        drift=obs.drift,
        now=obs.now,
        previous_conditions=previous.get("conditions"),
        rollout=decided.rollout,
    )
    if placement.decision is not None:
        _record_decision(status, placement.decision, out, previous.get("conditions"), obs.now)
    if obs.store is not None:
        status["conditions"] = [
            *status["conditions"],
            store_condition(obs.store, previous.get("conditions"), md.metadata.generation, obs.now),
        ]
    gpu = gpu_status(md, obs.pods, obs.claims)
    if gpu is not None:
        status["gpu"] = gpu
        status["gpus"] = allocated_gpus(gpu)
    if obs.loaded:
        status["loadedVersions"] = loaded_versions(obs.pods, obs.loaded)
    if previous.get("retrain"):
        status["retrain"] = previous["retrain"]
    return status


def _start_retraining(
    out: Plan, status: dict[str, Any], obs: Observed, md: ModelDeployment
) -> None:
    """When drift closes the loop: create the retraining TrainingJob and record it."""
    previous = obs.previous
    retrain = plan_retrain(
        md,
        drifted=_condition(status, "Drifted") == "True",
        previous=previous.get("retrain"),
        trainings=obs.trainings,
        now=obs.now,
    )
    if retrain is not None:
        out.creates.append(Create(retrain))
        status["retrain"] = {
            "trainingJob": retrain["metadata"]["name"],
            "lastTriggeredTime": obs.now.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "count": int((previous.get("retrain") or {}).get("count") or 0) + 1,
        }
        out.events.append(
            (
                "Normal",
                "RetrainStarted",
                f"drift detected; started TrainingJob {retrain['metadata']['name']}",
            )
        )


def _look_again_after(
    md: ModelDeployment, status: Mapping[str, Any], obs: Observed, decided: _Decided
) -> float | None:
    """The sooner of the status's own re-check and the gated rollout's next step."""
    requeue_after = _requeue_after(md, status, obs.drift)
    decision = decided.placement.decision
    if decision is not None and decision.requeue_after is not None:
        wait = decision.requeue_after
        requeue_after = wait if requeue_after is None else min(requeue_after, wait)
    return requeue_after


def revise(obs: Observed, done: Plan, failures: Sequence[Failure]) -> Plan:
    """The plan's status and events once the shell reports what it could not do."""
    status = dict(done.status)
    out = Plan(
        applies=done.applies,
        deletes=done.deletes,
        creates=done.creates,
        requeue_after=done.requeue_after,
    )
    retrain_failed = [f for f in failures if f.kind == c.TJ_KIND]
    if retrain_failed:
        previous = obs.previous.get("retrain")
        if previous:
            status["retrain"] = previous
        else:
            status.pop("retrain", None)
    # Transition events are derived again from the revised status.
    planned = done.events[: done.planned_events]
    out.events = [e for e in planned if not (e[1] == "RetrainStarted" and retrain_failed)]
    out.events += [("Warning", "RetrainFailed", f.message) for f in retrain_failed]
    out.digest = done.digest
    others = [f for f in failures if f.kind != c.TJ_KIND]
    return conclude(out, obs.previous, status, list(done.problems) + others, obs.now)


# -- helpers -------------------------------------------------------------------------


# Renders kept per ModelDeployment (the current one and a few recent inputs).
RENDER_MEMO_LIMIT = 4


def _render(
    md: ModelDeployment,
    layout: Layout,
    replace_in_place: bool,
    keda_missing: bool,
    settings: Settings,
    memo: dict[Any, Any] | None,
) -> tuple[list[dict[str, Any]], str]:
    """The children to apply and their digest (from ``memo`` when the inputs match)."""
    key = (
        md.metadata.uid,
        md.metadata.generation,
        # Pod controls read from the annotation of a v1alpha1 write move no generation.
        md.pod_controls.cache_key(),
        layout.cache_key(),
        replace_in_place,
        keda_missing,
        settings,
    )
    if memo is not None and key in memo:
        return memo[key]
    rendered = render_children(
        md,
        operator_image=settings.operator_image,
        model_version=layout.stable_version,
        replace_in_place=replace_in_place,
        prometheus_address=settings.prometheus_address,
        triton_image=settings.triton_image,
        layout=layout,
        gpu_instance_kind=settings.gpu_instance_kind,
        activator_url=settings.activator_url,
    )
    if keda_missing:
        rendered = [ch for ch in rendered if ch["kind"] != SCALED_OBJECT.kind]
    result = (rendered, digest(rendered))
    if memo is not None:
        if len(memo) >= RENDER_MEMO_LIMIT:
            memo.pop(next(iter(memo)))  # oldest first: dicts keep insertion order
        memo[key] = result
    return result


def loaded_versions(
    pods: Sequence[Mapping[str, Any]], loaded: Mapping[str, Sequence[str]]
) -> list[dict[str, Any]]:
    """status.loadedVersions: each version the live pods' Triton servers loaded, with
    its replica count and (some of) the pods' names."""
    by_version: dict[str, list[str]] = {}
    for pod in pods:
        name = str((pod.get("metadata") or {}).get("name"))
        for version in loaded.get(name) or ():
            by_version.setdefault(str(version), []).append(name)
    ordered = sorted(by_version.items(), key=lambda kv: (-len(kv[1]), kv[0]))
    return [
        {"version": v, "replicas": len(names), "pods": sorted(names)[:MAX_LOADED_PODS]}
        for v, names in ordered[:MAX_LOADED_VERSIONS]
    ]


def _record_decision(
    status: dict[str, Any],
    decision: RolloutPlan,
    out: Plan,
    previous_conditions: Sequence[Mapping[str, Any]] | None,
    now: datetime,
) -> None:
    """The gated rollout's state, lineage, events and Stalled condition, into status."""
    surge = status.get("rollout") or {}
    status["rollout"] = {**decision.status, **surge}
    if decision.history:
        status["history"] = decision.history
    out.events += [(e.type, e.reason, e.message) for e in decision.events]
    if decision.stalled:
        # The candidate cannot get a node: the rollout is stuck, the stable version
        # serves on (Ready is the stable pods' business).
        status["conditions"] = set_condition(
            status["conditions"],
            previous_conditions,
            "Stalled",
            True,
            decision.stalled_reason,
            decision.stalled,
            now,
        )


def store_condition(
    store: Mapping[str, Any],
    previous_conditions: Sequence[Mapping[str, Any]] | None,
    generation: int | None,
    now: datetime,
) -> dict[str, Any]:
    """StoreListed: whether the operator's own listing of the model store (under
    `latest`, and for gated rollouts) succeeds. While it fails no new version is
    discovered and the replicas stay on the version status names."""
    error = store.get("error")
    if isinstance(error, Mapping):
        reason = str(error.get("reason") or "ListFailed")
        if reason not in STORE_REASONS:
            reason = "ListFailed"
        held = store.get("newest") or "the version status names"
        message = f"{error.get('message') or reason}; replicas stay on {held}"
        cond = {"type": "StoreListed", "status": "False", "reason": reason, "message": message}
    else:
        newest = store.get("newest")
        text = f"newest complete version {newest}" if newest else "no complete version yet"
        cond = {"type": "StoreListed", "status": "True", "reason": "Listed", "message": text}
    return stamp_conditions(
        [cond], previous_conditions, generation or 0, now, order=("StoreListed",)
    )[0]


def _scale_body(deployment: Mapping[str, Any], replicas: int) -> dict[str, Any]:
    meta = deployment["metadata"]
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": meta["name"], "namespace": meta["namespace"]},
        "spec": {"replicas": replicas},
    }


def _replicas_handover(md: ModelDeployment, deployment: Mapping[str, Any], key: str) -> list[Apply]:
    """Keep the replica count when autoscaling is switched on.

    The Deployment renders without spec.replicas once an autoscaler owns
    scaling. If our field manager still owns spec.replicas, dropping it from
    the apply would reset the Deployment to 1 replica; so a second manager
    first takes co-ownership at the live value, as the Kubernetes docs
    describe for handing a field over.
    """
    if not deployment.get(OWNS_REPLICAS):
        return []
    live = (deployment.get("spec") or {}).get("replicas", 1)
    body = _scale_body(deployment, max(live, baseline_replicas(md)))
    return [Apply(body, expect_uid=uid_of(deployment), field_manager=REPLICAS_MANAGER, child=key)]


def _restore_minimum(md: ModelDeployment, deployment: Mapping[str, Any], key: str) -> list[Apply]:
    """An HPA does nothing for a target scaled to zero: bring it back to minReplicas.

    Without an autoscaler the Deployment apply itself restores spec.replicas
    (the change moved its generation); with KEDA, zero is KEDA's to decide.
    """
    scaling = md.spec.autoscaling
    if scaling is None or scaling.engine != "hpa":
        return []
    live = (deployment.get("spec") or {}).get("replicas")
    if live is None or live >= scaling.min_replicas:
        return []
    body = _scale_body(deployment, scaling.min_replicas)
    return [Apply(body, expect_uid=uid_of(deployment), field_manager=REPLICAS_MANAGER, child=key)]


def _condition(status: Mapping[str, Any], ctype: str) -> str | None:
    return next((x["status"] for x in status.get("conditions", []) if x["type"] == ctype), None)


def _requeue_after(
    md: ModelDeployment, status: Mapping[str, Any], drift: Mapping[str, Any] | None
) -> float | None:
    if _condition(status, "Ready") != "True" or _condition(status, "Reconciling") == "True":
        return REQUEUE_WHILE_PROGRESSING_S
    if drift is not None or (md.spec.drift_monitor and md.spec.drift_monitor.enabled):
        return REQUEUE_FOR_DRIFT_S
    if _reason(status, "AutoscalerReady") == "KEDANotInstalled":
        return REQUEUE_FOR_KEDA_S
    return None


def _reason(status: Mapping[str, Any], ctype: str) -> str | None:
    return next((x.get("reason") for x in status.get("conditions", []) if x["type"] == ctype), None)


def watched_child_kinds() -> tuple[tuple[str, str, str], ...]:
    """(group, version, plural) of every child kind, for the watches."""
    out = []
    for kind in CHILD_KINDS:
        group, _, version = kind.api_version.rpartition("/")
        out.append((group, version, kind.plural))
    return tuple(out)


__all__ = [
    "Applied",
    "Observed",
    "Settings",
    "events_about",
    "parse",
    "plan",
    "revise",
    "wants_events",
    "watched_child_kinds",
]
