"""ModelDeployment status from what the cluster shows: pure, deterministic.

Conditions follow kstatus, which kubectl wait, Flux and Argo CD read:
  Ready        True while the model serves at the capacity the spec promises
               (it stays True while an old version serves during a rollout,
               unlike KServe #5443);
  Reconciling  abnormal-true: work is under way (rollout, scaling);
  Stalled      abnormal-true: no progress without intervention (no GPU node,
               image or model cannot be pulled, crash loop, deadline).
Domain conditions: Scheduled, ModelLoaded, AutoscalerReady (with
spec.autoscaling), Drifted (with the drift monitor enabled).

Same inputs give the same output, and lastTransitionTime only moves when a
condition's status does, so a steady state re-derives an identical status and
the controller writes nothing.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import datetime
from typing import Any

from modelops.api.modeldeployment import ModelDeployment

from .conditions import new_condition as _cond
from .conditions import stamp_conditions
from .deployment import TRITON_CONTAINER
from .deployment_view import DeploymentView
from .meta import as_md, endpoints, selector_string
from .pdb import baseline_replicas
from .pods import (
    PodProblem,
    container_problem,
    format_time,
    get,
    init_running,
    is_ready,
    is_scheduled,
    live,
    parse_time,
    pod_name,
    recent_events,
    resolve_int_or_percent,
    truncate,
    unschedulable,
    version,
)
from .wake import scaled_to_zero_condition

CONDITION_ORDER = (
    "Ready",
    "Reconciling",
    "Stalled",
    "Scheduled",
    "ModelLoaded",
    "AutoscalerReady",
    "ScaledToZero",
    "Drifted",
)
# FailedCreate events older than this are taken as resolved (the ReplicaSet
# controller retries with back-off and emits a fresh event while it fails).
FAILED_CREATE_WINDOW_S = 600
MAX_FEATURES = 32


def derive_status(
    md: ModelDeployment | Mapping[str, Any],
    *,
    deployment: Mapping[str, Any] | None,
    pods: Sequence[Mapping[str, Any]],
    events: Sequence[Mapping[str, Any]],
    autoscaler: Mapping[str, Any] | None,
    keda_missing: bool,
    drift: Mapping[str, Any] | None,
    now: datetime,
    previous_conditions: Sequence[Mapping[str, Any]] | None,
    rollout: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The ModelDeployment's status (everything but status.kopf).

    deployment: the live Triton Deployment or None; pods: the pods matching
    its selector (all revisions); events: core/v1 Events about those pods,
    ReplicaSets and the Deployment; autoscaler: the live HPA or ScaledObject;
    keda_missing: the ScaledObject API is not served; drift: the drift
    monitor's latest result, {"score": float, "drifted": bool, "features":
    {name: score} or [{"name", "score"}]}; rollout: decide_rollout's result.
    """
    md = as_md(md)
    ctx = _Context(md, deployment, pods, events, now, rollout)
    conditions = [
        ctx.ready(),
        ctx.reconciling(),
        ctx.stalled(),
        ctx.scheduled(),
        ctx.model_loaded(),
    ]
    if md.spec.autoscaling is not None:
        conditions.append(_autoscaler_ready(md, autoscaler, keda_missing))
    zero = _scaled_to_zero(md, deployment)
    if zero is not None:
        conditions.append(zero)
    drift_enabled = md.spec.drift_monitor is not None and md.spec.drift_monitor.enabled
    if drift_enabled:
        conditions.append(_drifted(md, drift))
    stamped = stamp_conditions(
        conditions, previous_conditions, md.metadata.generation, now, order=CONDITION_ORDER
    )

    status: dict[str, Any] = {
        "observedGeneration": md.metadata.generation,
        "conditions": stamped,
        "replicas": ctx.view.replicas,
        "readyReplicas": ctx.view.ready,
        "updatedReplicas": ctx.view.updated,
        "selector": selector_string(md),
        "gpus": md.spec.resources.gpu.count * ctx.view.replicas,
    }
    if ctx.served:
        status["servedVersion"] = ctx.served
    if ctx.view.template_version:
        status["desiredVersion"] = ctx.view.template_version
    status["endpoints"] = endpoints(md)
    if drift_enabled and drift is not None:
        since = next((c["lastTransitionTime"] for c in stamped if c["type"] == "Drifted"), None)
        status["drift"] = drift_status(drift, since)
    if rollout is not None:
        status["rollout"] = {
            k: rollout[k] for k in ("replaceInPlace", "reason") if rollout.get(k) is not None
        }
    return status


# --- conditions -----------------------------------------------------------------


def _scaled_to_zero(
    md: ModelDeployment, deployment: Mapping[str, Any] | None
) -> dict[str, Any] | None:
    """ScaledToZero, for a model KEDA may take to zero (render/wake.py)."""
    if deployment is None:
        return None
    desired = (deployment.get("spec") or {}).get("replicas")
    ready = (deployment.get("status") or {}).get("readyReplicas") or 0
    decided = scaled_to_zero_condition(
        md, desired=desired if isinstance(desired, int) else 1, ready=ready
    )
    if decided is None:
        return None
    return _cond("ScaledToZero", *decided)


class _Context:
    """What the core conditions share: the Deployment view, pods, problems."""

    def __init__(
        self,
        md: ModelDeployment,
        deployment: Mapping[str, Any] | None,
        pods: Sequence[Mapping[str, Any]],
        events: Sequence[Mapping[str, Any]],
        now: datetime,
        rollout: Mapping[str, Any] | None,
    ) -> None:
        self.md = md
        self.now = now
        self.baseline = baseline_replicas(md)
        view = DeploymentView.of(deployment, self.baseline)
        # A Deployment scaled below what the spec promises (`kubectl scale
        # --replicas=0`, an HPA target at zero) is not serving at the promised
        # capacity, however complete its own rollout looks.
        self.scaled_below: int | None = None
        if view.exists and view.desired < self.baseline:
            self.scaled_below = view.desired
            view = replace(view, desired=self.baseline)
        self.view = view
        self.pods = live(pods)
        self.events = events
        self.replace_in_place = bool(rollout and rollout.get("replaceInPlace"))
        self.rollout_reason = (rollout or {}).get("reason") or ""
        self.ready_pods = [p for p in self.pods if is_ready(p)]
        self.served = _versions(self.ready_pods)
        self.waiting = self._waiting_for_node()
        self.problem = self._problem()

    # -- facts --

    def _waiting_for_node(self) -> tuple[str, float] | None:
        """(scheduler message, longest wait in seconds) of unschedulable pods."""
        found: tuple[str, float] | None = None
        for pod in self.pods:
            stuck = unschedulable(pod)
            if stuck is None:
                continue
            message, since = stuck
            waited = (self.now - since).total_seconds() if since else float("inf")
            if found is None or waited > found[1]:
                found = (message, waited)
        return found

    def _problem(self) -> PodProblem | None:
        """The cause that blocks progress, most specific first; None if none does."""
        if self.view.complete:
            return None
        for pod in self.pods:
            problem = container_problem(pod, self.events)
            if problem is not None:
                return problem
        grace = self.md.scheduling_timeout_seconds
        if self.waiting and self.waiting[1] >= grace and not self.replace_in_place:
            # After the grace period a missing node is a real stall; before it
            # the cluster autoscaler or the replace-in-place switch may help.
            return PodProblem("Unschedulable", self.waiting[0], "")
        if self.view.replica_failure:
            return PodProblem("FailedCreate", truncate(self.view.replica_failure), "")
        if len(self.pods) < self.view.desired:
            recent = recent_events(
                self.events,
                kind="ReplicaSet",
                reason="FailedCreate",
                now=self.now,
                within_s=FAILED_CREATE_WINDOW_S,
            )
            if recent:
                return PodProblem("FailedCreate", truncate(recent[0].get("message") or ""), "")
        if self.view.deadline_exceeded:
            return PodProblem("ProgressDeadlineExceeded", truncate(self.view.deadline_exceeded), "")
        return None

    @property
    def floor(self) -> int:
        """Fewest available replicas that still count as serving."""
        unavailable = (
            1
            if self.replace_in_place
            else resolve_int_or_percent(
                self.md.spec.rollout.max_unavailable, self.baseline, round_up=False
            )
        )
        return max(1, self.baseline - unavailable)

    def _problem_text(self) -> str:
        p = self.problem
        assert p is not None
        return f"pod {p.pod}: {p.message}" if p.pod else p.message

    def _progress(self) -> tuple[str, str]:
        """(reason, message) describing work under way."""
        v = self.view
        if self.replace_in_place:
            return "ReplacingInPlace", self.rollout_reason or "replacing pods in place"
        if v.rolling:
            text = "rolling out"
            if v.template_version:
                text += f" version {v.template_version}"
            text += f": {v.updated}/{v.desired} replicas updated"
            return "RollingOut", self._with_wait(text)
        if v.available < v.desired:
            return "ScalingUp", self._with_wait(f"{v.available}/{v.desired} replicas available")
        return "ScalingDown", f"{v.replicas} replicas, scaling down to {v.desired}"

    def _with_wait(self, text: str) -> str:
        if self.waiting:
            return f"{text}; waiting for a node: {self.waiting[0]}"
        if any(init_running(p) for p in self.pods):
            return f"{text}; downloading the model"
        if any(not is_ready(p) for p in self.pods):
            return f"{text}; loading the model"
        return text

    # -- kstatus --

    def ready(self) -> dict[str, Any]:
        v = self.view
        name = self.md.model_name
        if not v.exists:
            return _cond(
                "Ready", False, "DeploymentMissing", "the Triton Deployment does not exist yet"
            )
        if v.desired == 0 and self.baseline == 0:
            return _cond("Ready", True, "ScaledToZero", "scaled to zero replicas")
        if self.scaled_below is not None:
            return _cond(
                "Ready",
                False,
                "InsufficientReplicas",
                f"the Deployment was scaled to {self.scaled_below} replicas outside the "
                f"operator; the spec asks for {self.baseline}",
            )
        if v.complete and self.served:
            return _cond(
                "Ready",
                True,
                "Serving",
                f"serving model {name} version {self.served} on {v.ready}/{v.desired} replicas",
            )
        if v.complete:
            # Never report as serving a version nobody can name.
            return _cond(
                "Ready",
                False,
                "VersionUnknown",
                f"{v.ready}/{v.desired} replicas are ready but none reports which version of "
                f"model {name} it loaded",
            )
        if v.available >= self.floor and self.served:
            if v.template_version and v.template_version not in self.served.split(","):
                text = f"serving version {self.served} while rolling out {v.template_version}"
            else:
                text = f"serving version {self.served} on {v.available}/{v.desired} replicas"
            return _cond("Ready", True, "Serving", f"{text} ({self._progress()[1]})")
        if self.problem is not None:
            return _cond("Ready", False, self.problem.reason, self._problem_text())
        if self.waiting:
            return _cond("Ready", False, "WaitingForNode", self.waiting[0])
        if any(init_running(p) for p in self.pods):
            return _cond("Ready", False, "PullingModel", f"downloading model {name}")
        if self.pods and not self.ready_pods:
            return _cond("Ready", False, "ModelLoading", f"Triton is loading model {name}")
        return _cond(
            "Ready",
            False,
            "InsufficientReplicas",
            f"{v.available}/{v.desired} replicas available, {self.floor} needed",
        )

    def reconciling(self) -> dict[str, Any]:
        if self.problem is not None:
            return _cond("Reconciling", False, "Stalled", "no progress possible: see Stalled")
        if not self.view.exists:
            return _cond("Reconciling", True, "Creating", "creating the Triton Deployment")
        if self.view.complete:
            return _cond("Reconciling", False, "Reconciled", "all replicas are up to date")
        reason, message = self._progress()
        return _cond("Reconciling", True, reason, message)

    def stalled(self) -> dict[str, Any]:
        if self.problem is None:
            return _cond("Stalled", False, "AsExpected", "no blocking problem")
        return _cond("Stalled", True, self.problem.reason, self._problem_text())

    # -- domain --

    def scheduled(self) -> dict[str, Any]:
        if not self.pods:
            return _cond("Scheduled", None, "NoPods", "no Triton pods exist")
        for pod in self.pods:
            stuck = unschedulable(pod)
            if stuck is not None:
                return _cond("Scheduled", False, "Unschedulable", stuck[0])
        if all(is_scheduled(p) for p in self.pods):
            return _cond("Scheduled", True, "Scheduled", f"all {len(self.pods)} pods are on nodes")
        return _cond("Scheduled", None, "Pending", "waiting for the scheduler")

    def model_loaded(self) -> dict[str, Any]:
        name = self.md.model_name
        if self.ready_pods:
            return _cond(
                "ModelLoaded",
                True,
                "Loaded",
                f"model {name} version {self.served or '?'} loaded on {len(self.ready_pods)} pods",
            )
        if not self.pods:
            return _cond("ModelLoaded", None, "NoPods", "no Triton pods exist")
        for pod in self.pods:
            problem = container_problem(pod, self.events)
            if problem is not None and problem.reason == "ModelPullFailed":
                return _cond(
                    "ModelLoaded", False, "PullFailed", f"pod {pod_name(pod)}: {problem.message}"
                )
            if problem is not None and problem.container == TRITON_CONTAINER:
                return _cond(
                    "ModelLoaded", False, "LoadFailed", f"pod {pod_name(pod)}: {problem.message}"
                )
        if any(init_running(p) and is_scheduled(p) for p in self.pods):
            return _cond("ModelLoaded", False, "Pulling", f"downloading model {name}")
        if any(is_scheduled(p) for p in self.pods):
            return _cond("ModelLoaded", False, "Loading", f"Triton is loading model {name}")
        return _cond("ModelLoaded", None, "PodsNotRunning", "no Triton pod is running yet")


def _versions(pods: Sequence[Mapping[str, Any]]) -> str:
    found = {version(p) for p in pods} - {None}
    numeric = sorted((v for v in found if v.isdigit()), key=int)
    other = sorted(v for v in found if not v.isdigit())
    return ",".join(numeric + other)


def _autoscaler_ready(
    md: ModelDeployment, autoscaler: Mapping[str, Any] | None, keda_missing: bool
) -> dict[str, Any]:
    scaling = md.spec.autoscaling
    assert scaling is not None
    if scaling.engine == "keda" and keda_missing:
        return _cond(
            "AutoscalerReady",
            False,
            "KEDANotInstalled",
            "the keda.sh/v1alpha1 ScaledObject API is not served: install KEDA or set "
            "spec.autoscaling.engine to hpa",
        )
    if autoscaler is None:
        return _cond("AutoscalerReady", None, "Pending", "the autoscaler does not exist yet")
    if autoscaler.get("kind") == "ScaledObject":
        ready = _find(autoscaler, "Ready")
        if ready is None or ready.get("status") == "Unknown":
            return _cond("AutoscalerReady", None, "Pending", "KEDA has not reported yet")
        return _cond(
            "AutoscalerReady",
            ready.get("status") == "True",
            ready.get("reason") or "ScaledObjectReady",
            ready.get("message") or "",
        )
    able, active = _find(autoscaler, "AbleToScale"), _find(autoscaler, "ScalingActive")
    if able is None or active is None:
        return _cond("AutoscalerReady", None, "Pending", "the HPA has not reported yet")
    for cond in (able, active):
        if cond.get("status") != "True":
            # e.g. FailedGetPodsMetric: prometheus-adapter is missing or has no rule.
            return _cond(
                "AutoscalerReady",
                False,
                cond.get("reason") or cond["type"],
                cond.get("message") or "",
            )
    limited = _find(autoscaler, "ScalingLimited")
    if limited and limited.get("status") == "True" and limited.get("reason") == "TooManyReplicas":
        return _cond("AutoscalerReady", True, "ScalingLimited", limited.get("message") or "")
    return _cond("AutoscalerReady", True, "ScalingActive", active.get("message") or "")


def _find(obj: Mapping[str, Any], ctype: str) -> Mapping[str, Any] | None:
    for cond in get(obj, "status", "conditions", default=[]) or []:
        if cond.get("type") == ctype:
            return cond
    return None


def _features(drift: Mapping[str, Any]) -> list[dict[str, Any]]:
    raw = drift.get("features") or []
    pairs = raw.items() if isinstance(raw, Mapping) else ((f["name"], f["score"]) for f in raw)
    ranked = sorted(((str(n), round(float(s), 4)) for n, s in pairs), key=lambda p: (-p[1], p[0]))
    return [{"name": n, "score": s} for n, s in ranked[:MAX_FEATURES]]


def _drifted(md: ModelDeployment, drift: Mapping[str, Any] | None) -> dict[str, Any]:
    monitor = md.spec.drift_monitor
    assert monitor is not None
    if drift is None or drift.get("score") is None:
        return _cond(
            "Drifted",
            None,
            "NoData",
            f"waiting for the first evaluation window of {monitor.window} requests",
        )
    score = round(float(drift["score"]), 4)
    method = drift.get("method") or monitor.method
    # The sidecar reports the threshold in force (its default when the spec has none).
    threshold = drift.get("threshold", monitor.threshold)
    measured = f"{method} score {score}" + (f", threshold {threshold}" if threshold else "")
    if drift.get("drifted"):
        top = ", ".join(f"{f['name']} ({f['score']})" for f in _features(drift)[:3])
        text = f"input drift detected ({measured})" + (f"; most drifted: {top}" if top else "")
        return _cond("Drifted", True, "DriftDetected", text)
    return _cond("Drifted", False, "NoDrift", f"no input drift ({measured})")


def drift_status(drift: Mapping[str, Any], since: str | None) -> dict[str, Any]:
    """status.drift from a drift decision (render/drift_merge.py's result); ``since``:
    when the Drifted condition turned True, used when the decision has no time."""
    out: dict[str, Any] = {}
    if drift.get("score") is not None:
        out["score"] = round(float(drift["score"]), 4)
    drifted = bool(drift.get("drifted"))
    out["drifted"] = drifted
    if drifted:
        # The monitor's own first-detection time wins; else when Drifted turned True.
        first = parse_time(drift.get("since"))
        if first is not None:
            since = format_time(first)
        if since:
            out["since"] = since
    features = _features(drift)
    if features:
        out["features"] = features
    # What a restarted operator resumes its decision from (render/drift_merge.resume).
    for resumable in ("windows", "reference", "sidecars"):
        if drift.get(resumable) is not None:
            out[resumable] = drift[resumable]
    return out
