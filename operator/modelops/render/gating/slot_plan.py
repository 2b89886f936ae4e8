"""From what the planner observed to the rollout decision and the slot layout. Pure.

The md planner calls :func:`place` once per reconcile. It resolves the
version the spec asks for to a number (once, from the pinned version or the
TrainingJob that published it, never "latest" per pod), builds the gating
core's inputs (render/gating: Target, CandidatePods, ObservedFigures) from
the pods and the sidecars' per-pod figures, takes the decision, and turns
it into a :class:`~modelops.render.slots.Layout`: which version each slot's
Deployment runs with how many replicas, which pods the Service selects, and
the sidecars' traffic settings.

Without a resolvable version (spec says latest and no TrainingJob published
one yet, nor was one recorded) there is no decision: the single Deployment
renders "latest" as before and status.rollout carries only the surge state.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from functools import partial
from typing import Any

from modelops.api.modeldeployment import ModelDeployment

from .. import inplace
from ..deployment_view import DeploymentView
from ..drift_sidecar import gated as is_gated
from ..pdb import baseline_replicas
from ..retrain import resolve_model_version
from ..slots import SLOTS, Layout, deployment_key, other, slot_of_pod
from ..traffic import traffic_settings
from .build_inputs import candidate_pods, merge_figures
from .decide import GATED_PHASES, ActionKind, RolloutPlan, decide_gated_rollout
from .inputs import ObservedFigures, Target
from .lineage import pinned_source, source_from_training_job


@dataclass(frozen=True)
class Placement:
    """The decision (None without a resolvable version) and what to render for it.

    stable_key: child key of the stable slot's Deployment; serving_pods: the
    pods whose readiness makes the ModelDeployment Ready (the stable slot's
    while a candidate runs beside it; all during a promotion).
    """

    layout: Layout
    decision: RolloutPlan | None
    stable_key: str
    serving_pods: list[Mapping[str, Any]]


def stable_slot(
    previous: Mapping[str, Any], children: Mapping[str, Mapping[str, Any] | None], md_name: str
) -> str:
    """The slot status names; without status (restored from Git, or from before slots),
    the slot whose Deployment exists, a first."""
    slot = previous.get("stableSlot")
    if slot in SLOTS:
        return str(slot)
    has_a = children.get(deployment_key(md_name, "a")) is not None
    has_b = children.get(deployment_key(md_name, "b")) is not None
    return "b" if has_b and not has_a else "a"


def resolve_target(
    md: ModelDeployment,
    trainings: Sequence[Mapping[str, Any]],
    previous: Mapping[str, Any],
    store: Mapping[str, Any] | None = None,
) -> Target | None:
    """The concrete version the spec asks for now, with its lineage source and manifest
    digest; None when it cannot be resolved (latest, nothing published, nothing recorded).

    store: the operator's own listing of the model store. Under `latest` its newest
    complete version is a target too, whoever published it (never while a TrainingJob of
    this ModelDeployment has not recorded its output yet: that version is the
    TrainingJob's, with its lineage)."""
    digests = (store or {}).get("digests") or {}
    version = resolve_model_version(md, trainings)
    if version.isdigit() and md.spec.model.version != "latest":
        return Target(version, pinned_source(), digests.get(version))
    newest = (store or {}).get("newest")
    if (
        isinstance(newest, str)
        and newest.isdigit()
        and (not version.isdigit() or int(newest) > int(version))
        and not _training_pending(trainings)
    ):
        version = newest
    if version.isdigit():
        producer = next(
            (
                tj
                for tj in trainings
                if str((tj.get("status") or {}).get("outputVersion")) == version
            ),
            None,
        )
        source = source_from_training_job(producer) if producer else {"kind": "Latest"}
        return Target(version, source, digests.get(version))
    stable = previous.get("stable")
    if isinstance(stable, str) and stable.isdigit():
        return Target(stable, {"kind": "Latest"}, digests.get(stable))
    return None


def _training_pending(trainings: Sequence[Mapping[str, Any]]) -> bool:
    """A TrainingJob that may be publishing now: not Failed, and not Succeeded with its
    output version recorded."""
    for tj in trainings:
        status = tj.get("status") or {}
        if status.get("phase") == "Failed":
            continue
        if status.get("phase") == "Succeeded" and str(status.get("outputVersion") or "").isdigit():
            continue
        return True
    return False


def place(
    md: ModelDeployment,
    *,
    children: Mapping[str, Mapping[str, Any] | None],
    pods: Sequence[Mapping[str, Any]],
    trainings: Sequence[Mapping[str, Any]],
    previous: Mapping[str, Any],
    figures: Mapping[str, Mapping[str, Any]] | None,
    now: datetime,
    loaded: Mapping[str, Sequence[str]] | None = None,
    sources: Mapping[str, str] | None = None,
    refused: Mapping[str, str] | None = None,
    unanswered: Mapping[str, str] | None = None,
    store: Mapping[str, Any] | None = None,
    in_place: tuple[int | None, Mapping[str, Mapping[str, Any]] | None] | None = None,
) -> Placement:
    """in_place: (candidate size in bytes, memory reports by pod) for the fit check of
    placement InPlace (render/inplace.py); None: from the sidecars' agent reports in
    ``figures`` (the pods stage the candidate and report its size first).
    previous: the last status (rollout, history, servedVersion); figures: the
    sidecars' /rollout summaries by pod name (None when not read); loaded: the
    versions the pods' Triton servers loaded, by pod name; sources: pod name -> slot
    of the pods whose owner chain was checked (render/evidence.py): only their
    figures count, in the slot their owner says (None: by slot label); refused: pod ->
    why its latest figures were refused before (counters going backwards)."""
    prev_rollout = dict(previous.get("rollout") or {})
    slot = stable_slot(prev_rollout, children, md.name)
    stable_key = deployment_key(md.name, slot)
    target = resolve_target(md, trainings, prev_rollout, store)
    if target is None:
        adopted = _unanimous(pods, loaded)
        if adopted is None:
            layout = Layout(stable_version="latest", stable_slot=slot)
            return Placement(layout, None, stable_key, list(pods))
        # `latest` resolved once, by the pods that pulled it: every replica loaded the
        # same version, which becomes the recorded stable version. The pod template keeps
        # asking for `latest` (re-rendering it with the number would restart every pod
        # for nothing); a newer version reaches them only as a candidate.
        target = Target(adopted, {"kind": "Latest"})
        prev_rollout.setdefault("stable", adopted)

    stable_live = children.get(stable_key)
    view = DeploymentView.of(stable_live, baseline_replicas(md))
    # The stable pods asked for `latest` and the spec still does: keep rendering it, unless
    # the operator lists the store itself. Then pods are pinned to the resolved number (one
    # rolling restart), so no replica ever serves a version status does not name, and a
    # restarting replica cannot pick up a version that was rolled back.
    keep_latest = (
        store is None
        and view.template_version in (None, "latest")
        and resolve_model_version(md, trainings) == "latest"
    )
    in_slot = {s: [p for p in pods if slot_of_pod(p) == s] for s in SLOTS}
    gated = is_gated(md)
    in_flight = prev_rollout.get("phase") in GATED_PHASES
    if gated and not in_flight and stable_live is not None and not view.complete:
        # A candidate starts only beside a settled stable version: its pods must all
        # carry the slot label the Service will select them by.
        stable_version = prev_rollout.get("stable") or view.template_version
        if isinstance(stable_version, str) and stable_version.isdigit():
            target = Target(
                stable_version,
                target.source if stable_version == target.version else {"kind": "Latest"},
            )

    candidate_slot = other(slot)
    pinned = inplace.template_version(md, view.template_version, gated)
    rolling = gated and (in_flight or prev_rollout.get("stable") not in (None, target.version))
    choice = None
    if rolling and md.spec.rollout.placement is not None:
        size, memory, agent_error = (
            (*in_place, None) if in_place else inplace.fit_inputs(figures, target.version)
        )
        choice = inplace.choose(
            md,
            prev_rollout,
            target.version,
            candidate_bytes=size,
            memory=memory,
            agent_error=agent_error,
        )
    here = choice is not None and choice.placement == "InPlace"
    if here:
        assert choice is not None
        candidate = inplace.candidate_pods(
            in_slot[slot],
            {pod: doc.get("loaded") for pod, doc in (figures or {}).items()},
            model=md.model_name,
            version=target.version,
            promoting=prev_rollout.get("phase") == "Promoting",
            waiting=choice.wait,
            errors=inplace.agent_errors(figures, target.version),
        )
    elif rolling:
        cand_live = children.get(deployment_key(md.name, candidate_slot))
        cand_view = DeploymentView.of(cand_live, 1)
        candidate = candidate_pods(
            in_slot[candidate_slot], model_version=target.version, desired=cand_view.desired
        )
    else:
        # In place the template keeps its version after a promotion (inplace.pin_template):
        # the stable pods serve status.rollout.stable under the pinned template's version.
        served_here = pinned is not None and prev_rollout.get("stable") == target.version
        candidate = candidate_pods(
            in_slot[slot],
            model_version=pinned if served_here and pinned else target.version,
            desired=view.desired,
            complete=view.complete
            and view.template_version == (pinned if served_here else target.version),
        )
    decide = partial(
        decide_gated_rollout,
        md,
        target=target,
        previous=prev_rollout,
        history=previous.get("history"),
        recorded_metrics=(store or {}).get("metrics"),
        figures=_figures(
            figures,
            in_slot,
            slot,
            candidate_slot,
            sources,
            _epoch(prev_rollout, target.version),
            refused,
            unanswered,
            in_place=here,
        ),
        replicas=_replicas(md, stable_live, children),
        serving=_serving(previous),
        now=now,
    )
    decision = decide(candidate=candidate)
    if here and inplace.promotion_decided(decision):
        # In place, the pods that had the candidate loaded beside the stable version do not
        # serve it yet: the promotion just decided completes once their Triton serve it as
        # the model itself, which is what "ready" means while promoting.
        assert choice is not None
        decision = decide(
            candidate=inplace.candidate_pods(
                in_slot[slot],
                {pod: doc.get("loaded") for pod, doc in (figures or {}).items()},
                model=md.model_name,
                version=target.version,
                promoting=True,
                waiting=False,
                errors=inplace.agent_errors(figures, target.version),
            )
        )
    if choice is not None and decision.candidate_version is not None:
        decision.status["placement"] = choice.placement
        decision.status["placementReason"] = choice.reason
    else:
        decision.status.pop("placement", None)
        decision.status.pop("placementReason", None)
    placement = _layout(md, decision, slot, in_slot, list(pods), in_place=here)
    if here:
        assert choice is not None
        layout = inplace.adapt_layout(md, placement.layout, decision, view.template_version, choice)
        placement = replace(placement, layout=layout, serving_pods=list(pods))
    if pinned is not None:
        served = decision.status.get("stable")
        layout = inplace.pin_template(
            placement.layout, pinned, served if isinstance(served, str) else None, slot
        )
        placement = replace(placement, layout=layout)
    if keep_latest and placement.layout.stable_version == target.version:
        placement = replace(placement, layout=replace(placement.layout, stable_version="latest"))
    return placement


def _unanimous(
    pods: Sequence[Mapping[str, Any]], loaded: Mapping[str, Sequence[str]] | None
) -> str | None:
    """The one version every pod that reported loaded, when they agree (and some did)."""
    if not loaded:
        return None
    seen = {
        tuple(loaded[name])
        for pod in pods
        if (name := str((pod.get("metadata") or {}).get("name"))) in loaded
    }
    if len(seen) != 1:
        return None
    (versions,) = seen
    return versions[0] if len(versions) == 1 and versions[0].isdigit() else None


def _layout(
    md: ModelDeployment,
    decision: RolloutPlan,
    slot: str,
    in_slot: Mapping[str, list[Mapping[str, Any]]],
    pods: list[Mapping[str, Any]],
    in_place: bool = False,
) -> Placement:
    # In place, the candidate was promoted inside the stable slot's pods: no flip.
    if not in_place and any(a.kind is ActionKind.COMPLETE_PROMOTION for a in decision.actions):
        slot = other(slot)  # the candidate's slot is stable now; the old one goes
    decision.status["stableSlot"] = slot
    candidate = decision.candidate_version
    promoting = decision.status.get("phase") == "Promoting"
    layout = Layout(
        stable_version=decision.stable_version or decision.status.get("stable") or "latest",
        stable_slot=slot,
        stable_replicas=decision.stable_replicas,
        candidate_version=candidate,
        candidate_replicas=decision.candidate_replicas,
        # While a candidate runs, and right after one is rolled back (its pods may still be
        # terminating, a promotion's among them), live traffic goes to the stable slot only.
        service_slot=slot
        if (candidate is not None and not promoting) or decision.status.get("phase") == "RolledBack"
        else None,
        autoscaler=decision.stable_replicas is None,
        traffic=traffic_settings(
            md,
            candidate_version=candidate,
            epoch=decision.epoch,
            mirror_percent=decision.mirror_percent,
            canary_weight=decision.canary_weight,
        ),
    )
    serving = in_slot[slot] if candidate is not None and not promoting else pods
    return Placement(layout, decision, deployment_key(md.name, slot), serving)


def _epoch(previous: Mapping[str, Any], version: str) -> str:
    """The epoch the sidecars count the current attempt under (status.rollout.epoch; the
    version for a rollout started before epochs were per attempt)."""
    if previous.get("candidate") == version and previous.get("epoch"):
        return str(previous["epoch"])
    return version


def _figures(
    summaries: Mapping[str, Mapping[str, Any]] | None,
    in_slot: Mapping[str, list[Mapping[str, Any]]],
    stable_slot_: str,
    candidate_slot: str,
    sources: Mapping[str, str] | None,
    epoch: str,
    refused: Mapping[str, str] | None,
    unanswered: Mapping[str, str] | None = None,
    in_place: bool = False,
) -> ObservedFigures | None:
    """ObservedFigures from the sidecars' summaries of this attempt's epoch (a summary of
    an earlier epoch, or from a sidecar that has not read the settings yet, is left out),
    each in the slot its owner chain gave it (sources; by slot label when not checked)."""
    skipped = tuple(f"{pod} ({why})" for pod, why in sorted((unanswered or {}).items()))
    if not summaries:
        # No pod answered at all (every sidecar dripping, say): status still names them.
        return ObservedFigures(unanswered=skipped) if skipped else None
    if sources is None:
        sources = {
            str((p.get("metadata") or {}).get("name")): slot
            for slot, group in in_slot.items()
            for p in group
        }

    def of(slot: str) -> dict[str, Mapping[str, Any]]:
        return {
            name: summary
            for name, summary in sorted(summaries.items())
            if sources.get(name) == slot and str(summary.get("epoch") or "") == epoch
        }

    before = [f"pod {pod}: {why}" for pod, why in sorted((refused or {}).items())]
    stable = of(stable_slot_)
    # In place, each stable sidecar reports its own Triton's candidate under "inPlace".
    candidate = inplace.candidate_figures(stable) if in_place else of(candidate_slot)
    figures = merge_figures(stable, candidate, refused=before)
    return replace(figures, unanswered=skipped) if skipped else figures


def _replicas(
    md: ModelDeployment,
    stable: Mapping[str, Any] | None,
    children: Mapping[str, Mapping[str, Any] | None],
) -> int:
    """The replicas the model serves with now: the spec's, or the autoscaler's choice."""
    if md.spec.autoscaling is None:
        return md.spec.replicas
    for key in ("HorizontalPodAutoscaler", "ScaledObject"):
        scaler = children.get(key)
        desired = ((scaler or {}).get("status") or {}).get("desiredReplicas")
        if isinstance(desired, int) and desired > 0:
            return desired
    live = ((stable or {}).get("spec") or {}).get("replicas")
    return int(live) if isinstance(live, int) else baseline_replicas(md)


def _serving(previous: Mapping[str, Any]) -> str | None:
    served = previous.get("servedVersion")
    return str(served) if isinstance(served, str) and served.isdigit() else None


__all__ = ["Placement", "place", "resolve_target", "stable_slot"]
