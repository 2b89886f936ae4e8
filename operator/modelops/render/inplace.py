"""Gated rollouts with ``spec.rollout.placement: InPlace``: the adaptations around the
gating core. Pure.

The gating core (render/gating: decide_gated_rollout, analysis, lineage,
deadlines, evidence rules) is the same for both placements; only what it observes
and what is rendered from its decision differ. :func:`choose` decides where the
candidate runs (render/gating/placement.py: the fit check), and for a candidate
in place:

- observation (:func:`candidate_pods`): the candidate's "pods" are the serving
  pods whose Triton has the candidate loaded (``<model>.candidate`` READY in the
  versions the sidecars report), or, while promoting, whose Triton serves it as
  ``<model>``; a wait for a fit is a candidate not ready yet, so
  progressDeadline bounds it as it bounds a candidate waiting for a GPU;
- figures (:func:`candidate_figures`): a stable sidecar reports what its own
  Triton's candidate answered under ``inPlace`` in ``GET /rollout``
  (modelops.drift.inplace), in a candidate sidecar's shape: those are the
  candidate's summaries, merged and judged exactly as a separate candidate's;
- template (:func:`template_version`, :func:`pin_template`): the stable pods'
  template keeps the version it was created with, before, during and after a
  rollout; the served version, when another, is the traffic file's ``served``;
- layout (:func:`adapt_layout`): no candidate Deployment or Service, the
  stable Deployment untouched (no scale-down, no new template: a promotion
  restarts nothing), no slot flip, and the traffic file names the candidate
  ``inPlace`` (``promote`` once the promotion is decided: the in-pod agent then
  makes it the served version, modelops.commands.inplace.promote).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

from modelops.api.modeldeployment import ModelDeployment

from .gating import ActionKind, CandidatePods, RolloutPlan
from .gating.placement import PlacementChoice, PodMemory, choose_placement, sticky
from .slots import Layout

CANDIDATE_SUFFIX = ".candidate"  # modelops.drift.inplace / modelops.commands.inplace


def requested(md: ModelDeployment) -> bool:
    return md.spec.rollout.placement == "InPlace"


def fit_inputs(
    summaries: Mapping[str, Mapping[str, Any]] | None, version: str
) -> tuple[int | None, dict[str, Mapping[str, Any]], str | None]:
    """(candidate size, memory by pod, an agent's error) from the sidecars' ``agent``
    reports (modelops.drift.inplace_agent): the size once every pod that reports has
    staged ``version`` (the largest they saw), None before."""
    sizes: list[int] = []
    memory: dict[str, Mapping[str, Any]] = {}
    error = None
    reporting = 0
    for pod, doc in sorted((summaries or {}).items()):
        agent = doc.get("agent")
        if not isinstance(agent, Mapping):
            continue
        reporting += 1
        if isinstance(agent.get("memory"), Mapping):
            memory[pod] = agent["memory"]
        if error is None and (why := _error_about(agent, version)):
            error = f"pod {pod}: {why}"
        staged = agent.get("staged")
        if isinstance(staged, Mapping) and str(staged.get("version")) == version:
            size = staged.get("bytes")
            if isinstance(size, int) and not isinstance(size, bool) and size >= 0:
                sizes.append(size)
    size = max(sizes) if sizes and len(sizes) == reporting else None
    return size, memory, error


def choose(
    md: ModelDeployment,
    previous: Mapping[str, Any],
    version: str,
    *,
    candidate_bytes: int | None,
    memory: Mapping[str, Mapping[str, Any]] | None,
    agent_error: str | None = None,
) -> PlacementChoice:
    """Where candidate ``version`` runs (sticky for one attempt)."""
    settings = md.spec.rollout.in_place
    choice = choose_placement(
        md.spec.rollout.placement or "Separate",
        on_no_fit=settings.on_no_fit if settings else "Separate",
        headroom_percent=settings.memory_headroom_percent if settings else 10,
        candidate_bytes=candidate_bytes,
        reports=[PodMemory.from_report(pod, doc) for pod, doc in sorted((memory or {}).items())],
        agent_error=agent_error,
    )
    return sticky(previous, version, choice)


def candidate_pods(
    pods: Sequence[Mapping[str, Any]],
    loaded: Mapping[str, Sequence[str]] | None,
    *,
    model: str,
    version: str,
    promoting: bool,
    waiting: bool,
    errors: Mapping[str, str] | None = None,
) -> CandidatePods:
    """The in-place candidate as the gating core sees candidate pods: desired = the
    serving pods, ready = those whose Triton has it loaded (as ``<model>.candidate``,
    or as ``<model>`` itself once promoting)."""
    names = [str((p.get("metadata") or {}).get("name")) for p in pods]
    if waiting:
        return CandidatePods(desired=len(names), ready=0)
    # A pod whose agent could not load (or promote) the candidate: the candidate fails,
    # as a separate candidate's pods that cannot recover do (it is rolled back).
    problem = next(
        (f"in place on pod {pod}: {why}" for pod, why in sorted((errors or {}).items()) if why),
        None,
    )
    ready = 0
    for name in names:
        versions = (loaded or {}).get(name) or {}
        if not isinstance(versions, Mapping):
            continue
        if promoting:
            ready += list(versions.get(model) or []) == [version]
        else:
            ready += version in (versions.get(model + CANDIDATE_SUFFIX) or [])
    return CandidatePods(desired=len(names), ready=ready, problem=problem)


def _error_about(agent: Mapping[str, Any], version: str) -> str | None:
    """The agent's error when it is about ``version`` (an earlier attempt's is not)."""
    error = agent.get("error")
    return error if isinstance(error, str) and str(agent.get("errorVersion")) == version else None


def agent_errors(summaries: Mapping[str, Mapping[str, Any]] | None, version: str) -> dict[str, str]:
    """Pod -> the error its in-place agent reports about ``version`` (a failed fetch,
    load or promotion)."""
    out: dict[str, str] = {}
    for pod, doc in (summaries or {}).items():
        agent = doc.get("agent")
        if isinstance(agent, Mapping) and (error := _error_about(agent, version)):
            out[pod] = error
    return out


def promotion_decided(decision: RolloutPlan) -> bool:
    """This decision started a promotion (the gating core then judges completion on the
    same observation, which in place must be the promoted one)."""
    kinds = {a.kind for a in decision.actions}
    return ActionKind.PROMOTE in kinds


def candidate_figures(
    summaries: Mapping[str, Mapping[str, Any]] | None,
) -> dict[str, Mapping[str, Any]]:
    """The candidate's summaries: each stable sidecar's ``inPlace`` document."""
    out: dict[str, Mapping[str, Any]] = {}
    for pod, doc in (summaries or {}).items():
        sub = doc.get("inPlace")
        if isinstance(sub, Mapping):
            out[pod] = sub
    return out


def traffic(
    md: ModelDeployment, settings: Mapping[str, Any], promote: str | None
) -> dict[str, Any]:
    """The rendered traffic settings with the candidate in place (no address)."""
    if not settings.get("candidate"):
        return dict(settings)
    cfg = md.spec.rollout.in_place
    in_place: dict[str, Any] = {
        "liveLimit": cfg.shed_mirrors_at if cfg else 0,
        "priority": cfg.priority if cfg else True,
    }
    out = dict(settings)
    out["candidate"] = {"version": settings["candidate"]["version"], "inPlace": in_place}
    if promote is not None:
        out["promote"] = promote
    return out


def template_version(md: ModelDeployment, live: str | None, gated: bool) -> str | None:
    """The version the stable pods' template keeps, or None when it follows the served
    version as for Separate.

    In place, a promotion changes what the pods serve without a new pod template (a new
    template is a rolling restart of every pod, which InPlace promises not to do): once
    the stable Deployment exists, its template keeps the version it was created with,
    and the version the pods serve travels in the traffic ConfigMap
    (:func:`pin_template`). Only for a gated rollout: without one a new version reaches
    the pods through the template, as usual."""
    if not requested(md) or not gated or live is None or not live.isdigit():
        return None
    return live


def pin_template(layout: Layout, pinned: str, served: str | None, slot: str) -> Layout:
    """The layout with the stable slot's template left at ``pinned`` and the version the
    pods serve (``served``: status.rollout.stable, so only a version status names) in the
    traffic file's ``served`` when it differs: the init container of a pod that starts
    pulls it, the agent swaps to it, and the sidecar answers as it
    (drift/inplace_agent.py). A slot flip (a candidate that ran Separate was promoted)
    makes the candidate's Deployment the stable one, with its own version: nothing to
    pin."""
    if layout.stable_slot != slot or layout.stable_version == "latest":
        return layout
    settings = dict(layout.traffic)
    settings.pop("served", None)
    if served is not None and served.isdigit() and served != pinned:
        settings["served"] = served
    return replace(layout, stable_version=pinned, traffic=settings)


def adapt_layout(
    md: ModelDeployment,
    layout: Layout,
    decision: RolloutPlan,
    template_version: str | None,
    choice: PlacementChoice,
) -> Layout:
    """The layout of a gated rollout whose candidate runs (or waits to run) in the
    serving pods."""
    promoting = decision.status.get("phase") == "Promoting"
    candidate = decision.candidate_version
    settings = dict(layout.traffic)
    if promoting and candidate is not None and not settings:
        # The promotion is decided: copies stop, the agents swap the served version.
        settings = {"epoch": decision.epoch or candidate, "candidate": {"version": candidate}}
    if choice.wait and candidate is not None:
        # Not loaded before it fits: the pods only fetch it and report its size (under
        # this attempt's epoch, so their reports count for it).
        settings = {"epoch": decision.epoch or candidate, "stage": candidate}
    # The pods keep the template they run: the served version changes inside them.
    stable_version = template_version or layout.stable_version
    return replace(
        layout,
        stable_version=stable_version,
        stable_replicas=None,
        candidate_version=None,
        candidate_replicas=0,
        service_slot=None,
        autoscaler=True,
        traffic=settings
        if choice.wait
        else traffic(md, settings, candidate if promoting else None),
    )


__all__ = [
    "adapt_layout",
    "agent_errors",
    "candidate_figures",
    "candidate_pods",
    "choose",
    "fit_inputs",
    "pin_template",
    "promotion_decided",
    "requested",
    "template_version",
    "traffic",
]
