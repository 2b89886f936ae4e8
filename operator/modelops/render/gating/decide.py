"""The gated-rollout decision: one pure step of the stable/candidate state machine.

    plan = decide_gated_rollout(md, target=..., previous=status.rollout,
                                history=status.history, figures=..., candidate=...,
                                replicas=..., serving=status.servedVersion, now=...)

Everything the decision needs from the past is in `previous` (status.rollout)
and `history` (status.history), so an operator restarted mid-analysis resumes
from the status it wrote: the same step, the same step start and request
baseline, and a promotion already decided (phase Promoting) is continued, not
decided again. History entries are pushed idempotently (lineage.push), so a
reconcile replayed after a lost status write records a promotion once.

Phases (status.rollout.phase):

    Idle ──new target──> Waiting ──candidate ready──> Shadow ─┐
      ^                    │  (eval-metric gate fails:    │   │ passes (duration,
      │                    │   RolledBack at once)        v   v requests, gates)
      │                    └──────────────> Canary step 1 .. n ──> Promoting ──> Idle
      │                                        │ a gate fails, pods fail, abort
      └── newer version / spec change ── RolledBack <┘

Paused (spec.rollout.control.paused) holds Shadow/Canary where they are; a
failing gate still rolls back. Strategy Direct (and the very first version of
a ModelDeployment, which has nothing to be compared with) is Progressing while
today's rolling update runs, then Idle.
"""

from __future__ import annotations

import enum
import hashlib
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any, Literal

from modelops.api.modeldeployment import ModelDeployment
from modelops.api.rollout import Rollout, RolloutControl

from ..meta import as_md
from ..pods import format_time, parse_time, resolve_int_or_percent, truncate
from ..retrain import parse_go_duration
from . import lineage
from .analysis import Result, Verdict, combine, evaluate, evaluate_eval_metric, figures_status
from .inputs import CandidatePods, ObservedFigures, Target

# How often figures are re-read while analysis runs, and pods looked at while waiting.
ANALYSIS_INTERVAL_S = 15.0
WAIT_INTERVAL_S = 10.0

GATED_PHASES = frozenset({"Waiting", "Shadow", "Canary", "Paused", "Promoting"})


class ActionKind(enum.Enum):
    """What the controller does for a plan (see the package docstring for how)."""

    DIRECT = "Direct"  # render the single Deployment with plan.stable_version (rolling update)
    START_CANDIDATE = "StartCandidate"  # create the candidate Deployment
    SET_TRAFFIC = "SetTraffic"  # mirror / weight changed: tell the data plane
    PROMOTE = "Promote"  # candidate replaces stable: follow the replica counts
    COMPLETE_PROMOTION = "CompletePromotion"  # old stable gone: candidate is now stable
    ROLL_BACK = "RollBack"  # delete the candidate; stable untouched
    WAIT = "Wait"  # nothing to change; look again after requeue_after
    STALL = "Stall"  # waiting is no longer plausible: Stalled=True with plan.stalled


@dataclass(frozen=True)
class Action:
    kind: ActionKind
    version: str | None = None
    detail: str = ""


@dataclass(frozen=True)
class RolloutEvent:
    """A Kubernetes Event to emit on the ModelDeployment (once, at the transition)."""

    type: Literal["Normal", "Warning"]
    reason: str
    message: str


@dataclass(frozen=True)
class RolloutPlan:
    """The decision. Declarative fields first (apply them every reconcile), then the
    transition's actions and events (once).

    status / history: the next status.rollout and status.history (write both).
    stable_version: the version the stable Deployment runs (None: none yet).
    candidate_version: the version the candidate Deployment runs; None means
    no candidate Deployment may exist (delete it).
    stable_replicas: None keeps the spec's count (replicas or the autoscaler);
    a number overrides it while a promotion retires the old stable pods.
    candidate_replicas: replicas of the candidate Deployment.
    mirror_percent / canary_weight: the data plane's settings now (0 = off).
    stalled: the Stalled condition's message while waiting is implausible.
    requeue_after: seconds until the decision should be taken again even if
    nothing changes (a step's duration ends, figures to re-read); None: only
    on change.
    """

    status: dict[str, Any]
    history: list[dict[str, Any]]
    stable_version: str | None
    candidate_version: str | None
    stable_replicas: int | None
    candidate_replicas: int
    mirror_percent: int
    canary_weight: int
    actions: tuple[Action, ...]
    events: tuple[RolloutEvent, ...]
    requeue_after: float | None
    stalled: str | None = None
    # The current attempt's epoch (status.rollout.epoch): the sidecars count figures per
    # epoch, so a version retried under the same number starts from zero.
    epoch: str | None = None
    # The Stalled condition's reason while stalled is set.
    stalled_reason: str = "CandidateUnschedulable"


def new_epoch(version: str, now: datetime, used: Sequence[str | None] = ()) -> str:
    """An opaque id for one attempt at a candidate: "<version>.<start, unix seconds>",
    never one of ``used`` (the previous attempts status still names)."""
    second = int(now.timestamp())
    while f"{version}.{second}" in used:
        second += 1
    return f"{version}.{second}"


@dataclass(frozen=True)
class Step:
    """One step of a gated rollout: the shadow phase or one canary step."""

    kind: Literal["Shadow", "Canary"]
    percent: int
    duration: timedelta | None
    requests: int | None

    def label(self, index: int, total: int) -> str:
        if self.kind == "Shadow":
            return f"shadow (step {index + 1}/{total})"
        return f"canary step {index + 1}/{total}"


def plan_steps(rollout: Rollout) -> tuple[Step, ...]:
    """The flat step list: the shadow phase (strategy Shadow), then canary steps."""
    steps: list[Step] = []
    if rollout.strategy == "Shadow" and rollout.shadow is not None:
        sh = rollout.shadow
        steps.append(Step("Shadow", sh.mirror_percent, _duration(sh.duration), sh.requests))
    if rollout.strategy in ("Shadow", "Canary") and rollout.canary is not None:
        for s in rollout.canary.steps:
            steps.append(Step("Canary", s.weight, _duration(s.duration), s.requests))
    return tuple(steps)


def _duration(text: str | None) -> timedelta | None:
    return parse_go_duration(text) if text else None


def spec_digest(md: ModelDeployment) -> str:
    """Digest of what shapes a candidate and its judgement: model, runtime, resources and
    the rollout policy, without the manual controls (pausing or naming a version to abort
    is not a reason to retry a rolled-back one) and without replicas (scaling is not)."""
    spec = md.spec.to_dict()
    rollout = dict(spec.get("rollout") or {})
    rollout.pop("control", None)
    parts = {k: spec.get(k) for k in ("model", "runtime", "resources")} | {"rollout": rollout}
    canonical = json.dumps(parts, sort_keys=True, separators=(",", ":"))
    return "sha256:" + hashlib.sha256(canonical.encode()).hexdigest()


# --- the decision ----------------------------------------------------------------------


def decide_gated_rollout(
    md: ModelDeployment | Mapping[str, Any],
    *,
    target: Target,
    previous: Mapping[str, Any] | None,
    history: Sequence[Mapping[str, Any]] | None,
    figures: ObservedFigures | None,
    candidate: CandidatePods,
    replicas: int,
    serving: str | None,
    now: datetime,
    recorded_metrics: Mapping[str, Mapping[str, float]] | None = None,
) -> RolloutPlan:
    """The next rollout state and what to do about it.

    target: the version the spec asks for, resolved to a number once by the
    controller, with its lineage source and checksum. previous / history: the
    status.rollout and status.history the last reconcile wrote (None at first).
    figures: the data plane's figures for the current candidate (None before
    its pods serve). candidate: its pods (for strategy Direct: the rolling
    update of the single Deployment). replicas: the replica count the model
    should serve with now (spec.replicas, or the autoscaler's desired count).
    serving: the version the ready pods serve (status.servedVersion); only used
    when status.rollout has no stable version yet (an object from before gated
    rollouts, or a first version still starting). recorded_metrics: version -> the
    metrics it was published with (its sealed metrics.json, read from the store), which
    the evalMetric gate compares with when the stable version's lineage has none.
    """
    if not target.version.isdigit():
        # "latest" must be resolved once by the controller (one version per status); when
        # it cannot be yet, pass the stable version as the target: nothing changes.
        raise ValueError(f"target version must be a resolved number, not {target.version!r}")
    decision = _Decision(as_md(md), target, previous, history, figures, candidate, replicas, now)
    decision.recorded_metrics = dict(recorded_metrics or {})
    return decision.run(serving)


class _Decision:
    def __init__(
        self,
        md: ModelDeployment,
        target: Target,
        previous: Mapping[str, Any] | None,
        history: Sequence[Mapping[str, Any]] | None,
        figures: ObservedFigures | None,
        candidate: CandidatePods,
        replicas: int,
        now: datetime,
    ) -> None:
        self.md = md
        self.spec = md.spec.rollout
        self.control = self.spec.control or RolloutControl()
        self.target = target
        self.prev = dict(previous or {})
        self.history = [dict(h) for h in history or []]
        self.figures = figures or ObservedFigures()
        self.pods = candidate
        self.replicas = max(0, replicas)
        self.now = now
        self.steps = plan_steps(self.spec)
        self.events: list[RolloutEvent] = []
        self.actions: list[Action] = []
        self.recorded_metrics: dict[str, Mapping[str, float]] = {}

    # -- entry -------------------------------------------------------------------------

    def run(self, serving: str | None) -> RolloutPlan:
        stable = self.prev.get("stable")
        if stable is None and serving and "," not in serving and serving != self.target.version:
            stable = serving  # adopt what serves (an object from before gated rollouts)
        in_flight = self.prev.get("candidate") if self.prev.get("phase") in GATED_PHASES else None

        if stable is None or (self.spec.strategy == "Direct" and stable != self.target.version):
            if in_flight:
                self._supersede(in_flight, "strategy changed to Direct")
            return self._direct(stable)
        if self.target.version == stable:
            if in_flight:
                self._supersede(in_flight, f"the spec asks for the stable version {stable} again")
            return self._idle(stable)
        if in_flight and in_flight != self.target.version:
            self._supersede(in_flight, f"version {self.target.version} appeared")
            in_flight = None

        rejected = self.prev.get("rejected") or {}
        forced = self.control.promote == self.target.version
        if (
            not in_flight
            and rejected.get("version") == self.target.version
            and rejected.get("specDigest") == spec_digest(self.md)
            and not forced
        ):
            return self._hold_rejected(stable, rejected)
        if not in_flight:
            return self._start(stable, forced)
        return self._advance(stable, dict(self.prev))

    # -- Direct and idle -----------------------------------------------------------------

    def _direct(self, stable: str | None) -> RolloutPlan:
        version = self.target.version
        why = "first version" if stable is None else "strategy Direct"
        if self.pods.complete:
            if stable != version:
                self.history = lineage.push(self.history, self._entry("Promoted", why, True))
                self._event("Normal", "RolledOut", f"version {version} serves ({why})")
            return self._idle(version)
        status = {
            "phase": "Progressing",
            "strategy": "Direct",
            "candidate": version,
            "message": f"rolling out version {version} ({why}): "
            f"{self.pods.ready}/{self.pods.desired} replicas ready"
            + (
                f"; waiting for a node: {self.pods.unschedulable}"
                if self.pods.unschedulable
                else ""
            ),
            **self._source_fields(),
        }
        if stable is not None:
            status["stable"] = stable
        if self.prev.get("phase") != "Progressing" or self.prev.get("candidate") != version:
            self._event("Normal", "RolloutStarted", f"rolling out version {version} ({why})")
            self.actions.append(Action(ActionKind.DIRECT, version))
        return self._plan(status, stable=version, candidate=None)

    def _idle(self, stable: str) -> RolloutPlan:
        status: dict[str, Any] = {"phase": "Idle", "stable": stable}
        rejected = self.prev.get("rejected")
        if rejected:
            status["rejected"] = rejected  # still blocks that version if the spec returns to it
        status["message"] = f"version {stable} serves"
        return self._plan(status, stable=stable, candidate=None)

    def _hold_rejected(self, stable: str, rejected: Mapping[str, Any]) -> RolloutPlan:
        # The same status the rollback wrote, so holding writes nothing.
        status: dict[str, Any] = {
            "phase": "RolledBack",
            "strategy": self.prev.get("strategy") or self.spec.strategy,
            "stable": stable,
            "rejected": dict(rejected),
            "message": _rejected_message(
                rejected["version"], rejected.get("reason") or "no reason recorded", stable
            ),
        }
        if self.prev.get("phase") == "RolledBack" and self.prev.get("analysis"):
            status["analysis"] = self.prev["analysis"]
        return self._plan(status, stable=stable, candidate=None)

    # -- a new candidate -------------------------------------------------------------------

    def _start(self, stable: str, forced: bool) -> RolloutPlan:
        version = self.target.version
        rejected = self.prev.get("rejected") or {}
        state: dict[str, Any] = {
            "phase": "Waiting",
            "strategy": self.spec.strategy,
            "stable": stable,
            "candidate": version,
            "epoch": new_epoch(version, self.now, (self.prev.get("epoch"), rejected.get("epoch"))),
            "candidateSince": format_time(self.now),
            "step": 0,
            "steps": len(self.steps),
            **self._source_fields(),
        }
        if self.prev.get("rejected"):
            state["rejected"] = self.prev["rejected"]
        # Judged before any pod starts: an aborted version or a reported regression never
        # takes a GPU.
        if self.control.abort == version:
            return self._roll_back(state, "aborted by spec.rollout.control.abort")
        if not forced:
            check = evaluate_eval_metric(
                self.spec.analysis.eval_metric, self.target.source, self._stable_source(stable)
            )
            if check is not None:
                state["analysis"] = {"verdict": check.text}
                if check.result is Result.FAIL:
                    return self._roll_back(state, check.text)
        self._event(
            "Normal",
            "CandidateStarted",
            f"version {version} starts as a candidate beside stable version {stable} "
            f"(strategy {self.spec.strategy}, {len(self.steps)} step(s))",
        )
        self.actions.append(Action(ActionKind.START_CANDIDATE, version))
        return self._advance(stable, state)

    # -- a candidate in flight -------------------------------------------------------------

    def _advance(self, stable: str, state: dict[str, Any]) -> RolloutPlan:
        version = self.target.version
        # A rollout started by an operator from before per-attempt epochs: its sidecars
        # count under the version number; keep that until it ends.
        state.setdefault("epoch", version)
        state.update(self._source_fields())
        state["steps"] = len(self.steps)
        if self.control.abort == version:
            return self._roll_back(state, "aborted by spec.rollout.control.abort")
        if state.get("phase") == "Promoting":
            return self._promoting(stable, state)
        if self.control.promote == version:
            return self._begin_promotion(stable, state, "promoted by spec.rollout.control.promote")
        if self.pods.problem:
            return self._roll_back(state, f"candidate pods fail: {self.pods.problem}")
        if not state.get("stepStartedAt"):
            return self._waiting(stable, state)
        return self._analyse(stable, state)

    def _candidate_desired(self, step: Step | None) -> int:
        """Candidate replicas for a step: its share of the model's replicas, at least one.
        Shadow and canary never take capacity from the stable version."""
        if step is None or self.replicas == 0:
            return 1
        return max(1, math.ceil(self.replicas * step.percent / 100))

    def _waiting(self, stable: str, state: dict[str, Any]) -> RolloutPlan:
        version = self.target.version
        step = self._step(state)
        desired = self._candidate_desired(step)
        pods = self.pods
        if pods.ready >= desired and pods.ready > 0:
            state.pop("waitingSince", None)
            state.pop("stalled", None)
            if self.control.paused:
                state["phase"] = "Paused"
                state["message"] = (
                    f"paused by spec.rollout.control.paused before {self._label(state)}: "
                    f"candidate version {version} is ready"
                )
                self._transition_event(state)
                return self._plan(state, stable, version, candidate_replicas=desired)
            return self._begin_step(stable, state, int(state.get("step") or 0))
        state["phase"] = "Waiting"
        late = self._past_deadline(state.get("candidateSince"), timedelta(0))
        if late is not None:
            why = (
                f"candidate version {version} not ready after {late}: {pods.ready}/{desired} "
                "pods ready"
                + (f"; waiting for a node: {pods.unschedulable}" if pods.unschedulable else "")
            )
            stalled = self._deadline(stable, state, why, candidate_replicas=desired)
            if stalled is not None:
                return stalled
        stalled_text: str | None = None
        requeue = WAIT_INTERVAL_S
        if pods.unschedulable:
            since = pods.unschedulable_since or parse_time(state.get("waitingSince")) or self.now
            state["waitingSince"] = format_time(since)
            waited = (self.now - since).total_seconds()
            limit = self.md.scheduling_timeout_seconds
            if waited >= limit:
                stalled_text = (
                    f"candidate version {version} has waited {int(waited)}s for a node, longer "
                    f"than its scheduling timeout {limit}s: {pods.unschedulable}; stable version "
                    f"{stable} keeps serving and is not scaled down for it"
                )
                state["stalled"] = True
                state["message"] = truncate(stalled_text, 4096)
                if not self.prev.get("stalled"):
                    self._event("Warning", "CandidateStalled", truncate(stalled_text, 1024))
                    self.actions.append(Action(ActionKind.STALL, version, stalled_text))
            else:
                state.pop("stalled", None)
                state["message"] = truncate(
                    f"candidate version {version} waits for a node ({int(waited)}s): "
                    f"{pods.unschedulable}",
                    4096,
                )
                requeue = min(requeue, max(1.0, limit - waited))
        else:
            state.pop("waitingSince", None)
            state.pop("stalled", None)
            state["message"] = (
                f"candidate version {version} starting: {pods.ready}/{desired} pods ready"
            )
        if not stalled_text:
            self.actions.append(Action(ActionKind.WAIT, version))
        return self._plan(
            state,
            stable,
            version,
            candidate_replicas=desired,
            requeue=requeue,
            stalled=stalled_text,
        )

    def _begin_step(self, stable: str, state: dict[str, Any], index: int) -> RolloutPlan:
        if not self.steps:
            return self._begin_promotion(stable, state, "no analysis steps configured")
        index = min(index, len(self.steps) - 1)
        state["step"] = index
        state["stepStartedAt"] = format_time(self.now)
        state["stepStartRequests"] = self.figures.candidate.requests
        state["phase"] = self.steps[index].kind
        self._transition_event(state)
        self.actions.append(Action(ActionKind.SET_TRAFFIC, self.target.version))
        self._event(
            "Normal",
            "StepStarted",
            f"{self.steps[index].label(index, len(self.steps))}: {self._traffic_text(index)}",
        )
        return self._analyse(stable, state, started=True)

    def _analyse(self, stable: str, state: dict[str, Any], started: bool = False) -> RolloutPlan:
        version = self.target.version
        index = min(int(state.get("step") or 0), max(0, len(self.steps) - 1))
        if not self.steps:
            return self._begin_promotion(stable, state, "no analysis steps configured")
        step = self.steps[index]
        state["step"] = index
        live = evaluate(self.spec.analysis, self.figures, mirroring=step.kind == "Shadow")
        eval_check = evaluate_eval_metric(
            self.spec.analysis.eval_metric, self.target.source, self._stable_source(stable)
        )
        verdict = combine(live, eval_check)
        base = int(state.get("stepStartRequests") or 0)
        step_requests = max(0, self.figures.candidate.requests - base)
        state["analysis"] = figures_status(self.figures, step_requests, verdict)
        refused = state["analysis"].get("refused")
        if refused and refused != (self.prev.get("analysis") or {}).get("refused"):
            self._event("Warning", "FiguresRefused", truncate(f"figures refused: {refused}"))
        if verdict.result is Result.FAIL:
            return self._roll_back(state, verdict.text)

        started_at = parse_time(state.get("stepStartedAt")) or self.now
        elapsed = self.now - started_at
        outlook = self._outlook(verdict, step_requests, elapsed.total_seconds())
        if outlook:
            state["analysis"].update(outlook[1])
        waits: list[str] = []
        remaining: float | None = None
        if step.duration is not None and elapsed < step.duration:
            remaining = (step.duration - elapsed).total_seconds()
            waits.append(f"{int(remaining)}s of {int(step.duration.total_seconds())}s left")
        # A step with neither a duration nor a request count still needs fresh evidence:
        # minRequests answered within the step, or it would pass on the previous step's.
        need = step.requests
        if step.duration is None and need is None:
            need = self.spec.analysis.min_requests
        if need is not None and step_requests < need:
            waits.append(f"{step_requests}/{need} requests in this step")
        done = verdict.result is Result.PASS and not waits
        label = step.label(index, len(self.steps))
        desired = self._candidate_desired(step)

        if self.control.paused:
            state["phase"] = "Paused"
            state["message"] = truncate(
                f"paused by spec.rollout.control.paused at {label} ({self._traffic_text(index)}); "
                f"{verdict.text}",
                4096,
            )
            self._transition_event(state)
            return self._plan(
                state,
                stable,
                version,
                candidate_replicas=desired,
                traffic=step,
                requeue=ANALYSIS_INTERVAL_S,
            )
        state["phase"] = step.kind
        if not done:
            late = self._past_deadline(state.get("stepStartedAt"), step.duration or timedelta(0))
            if late is not None:
                why = f"no verdict at {label} {late} after it could have passed: {verdict.text}"
                if waits:
                    why += f"; still waiting for {', '.join(waits)}"
                stalled = self._deadline(
                    stable, state, why, candidate_replicas=desired, traffic=step
                )
                if stalled is not None:
                    return stalled
        if done:
            state.pop("stalled", None)
            if index + 1 < len(self.steps):
                self._event("Normal", "StepPassed", truncate(f"{label} passed: {verdict.text}"))
                return self._begin_step(stable, state, index + 1)
            return self._begin_promotion(stable, state, f"analysis passed: {verdict.text}")
        if not started:
            self._transition_event(state)
        state["message"] = truncate(
            f"{label}: {self._traffic_text(index)}; {verdict.text}"
            + (f"; {outlook[0]}" if outlook else "")
            + (f"; waiting for {', '.join(waits)}" if waits else "")
            + (
                f"; skipped pods whose sidecars did not answer in time: "
                f"{', '.join(self.figures.unanswered)}"
                if self.figures.unanswered
                else ""
            ),
            4096,
        )
        self.actions.append(Action(ActionKind.WAIT, version))
        requeue = ANALYSIS_INTERVAL_S if remaining is None else min(ANALYSIS_INTERVAL_S, remaining)
        return self._plan(
            state,
            stable,
            version,
            candidate_replicas=desired,
            traffic=step,
            requeue=max(1.0, requeue),
        )

    def _outlook(
        self, verdict: Verdict, step_requests: int, elapsed_s: float
    ) -> tuple[str, dict[str, Any]] | None:
        """While evidence is insufficient: the samples still needed at the current rates
        and when they should be there at the current request rate."""
        if verdict.result is not Result.PENDING:
            return None
        pending = [c for c in verdict.checks if c.result is Result.PENDING]
        if any(c.needed is None for c in pending):
            return (
                "at the current figures no verdict is in sight (the estimate sits on the "
                "limit); progressDeadline bounds the wait",
                {},
            )
        needed = max(c.needed or 0 for c in pending)
        if needed <= 0:
            return None
        fields: dict[str, Any] = {"requestsNeeded": needed}
        text = f"about {needed} more requests needed"
        rate = step_requests / elapsed_s if elapsed_s > 0 else 0.0
        if rate > 0:
            eta = math.ceil(needed / rate)
            fields["etaSeconds"] = eta
            text += f" (~{_duration_text(eta)} at {rate:.3g} requests/s)"
        else:
            text += " (no requests reach the candidate yet)"
        return text, fields

    # -- deadlines ---------------------------------------------------------------------------

    def _past_deadline(self, since: Any, grace: timedelta) -> str | None:
        """How long past ``since`` + grace + progressDeadline it is now, as the reason's
        words ("30m (progressDeadline)"); None while within it."""
        start = parse_time(since)
        limit = parse_go_duration(self.spec.analysis.progress_deadline)
        if start is None or limit is None:
            return None
        if self.now - start - grace < limit:
            return None
        return f"progressDeadline {self.spec.analysis.progress_deadline}"

    def _deadline(
        self,
        stable: str,
        state: dict[str, Any],
        why: str,
        *,
        candidate_replicas: int,
        traffic: Step | None = None,
    ) -> RolloutPlan | None:
        """The progress deadline's outcome: roll back, or stay as Stalled with the reason
        (the caller carries on deciding when None comes back: a stall that is already
        recorded keeps its step running)."""
        if self.spec.analysis.on_progress_deadline == "Rollback":
            return self._roll_back(state, f"progress deadline exceeded: {why}")
        text = truncate(
            f"progress deadline exceeded: {why}; stable version {stable} keeps serving "
            "(onProgressDeadline: Stall; control.promote or control.abort decide)",
            4096,
        )
        state["stalled"] = True
        state["message"] = text
        if not self.prev.get("stalled"):
            self._event("Warning", "ProgressDeadlineExceeded", truncate(text, 1024))
            self.actions.append(Action(ActionKind.STALL, self.target.version, text))
        return replace(
            self._plan(
                state,
                stable,
                self.target.version,
                candidate_replicas=candidate_replicas,
                traffic=traffic,
                requeue=ANALYSIS_INTERVAL_S,
                stalled=text,
            ),
            stalled_reason="ProgressDeadlineExceeded",
        )

    # -- promotion --------------------------------------------------------------------------

    def _begin_promotion(self, stable: str, state: dict[str, Any], reason: str) -> RolloutPlan:
        state["phase"] = "Promoting"
        state["promotionReason"] = truncate(reason, 1024)
        state["promotingSince"] = format_time(self.now)
        for key in ("waitingSince", "stalled"):
            state.pop(key, None)
        self._event(
            "Normal",
            "Promoting",
            truncate(f"promoting version {self.target.version} over {stable}: {reason}"),
        )
        self.actions.append(Action(ActionKind.PROMOTE, self.target.version, reason))
        return self._promoting(stable, state)

    def _promoting(self, stable: str, state: dict[str, Any]) -> RolloutPlan:
        version = self.target.version
        pods = self.pods
        if pods.ready < self.replicas:
            # The new stable must come up: pods that cannot recover, or a promotion that
            # overruns its deadline, hand the replicas back to the old stable version.
            if pods.problem:
                return self._roll_back(state, f"promotion failed, new pods fail: {pods.problem}")
            since = parse_time(state.get("promotingSince"))
            limit = parse_go_duration(self.spec.analysis.promotion_deadline)
            if since is not None and limit is not None and self.now - since >= limit:
                return self._roll_back(
                    state,
                    f"promotion not complete within promotionDeadline "
                    f"{self.spec.analysis.promotion_deadline}: {pods.ready}/{self.replicas} "
                    "replicas of the new version ready",
                )
        if pods.ready >= self.replicas:
            reason = state.get("promotionReason") or "promoted"
            self.history = lineage.push(self.history, self._entry("Promoted", reason, True))
            self._event("Normal", "Promoted", truncate(f"version {version} is stable: {reason}"))
            self.actions.append(Action(ActionKind.COMPLETE_PROMOTION, version))
            return self._idle(version)
        # A rolling swap: add up to maxSurge candidate pods, retire a stable pod for each
        # one that is ready. If surge pods find no GPU for surgeTimeoutSeconds, retire one
        # stable pod first (replace in place), as Direct does: the stable is leaving anyway.
        surge = max(1, resolve_int_or_percent(self.spec.max_surge, self.replicas, round_up=True))
        cand_replicas = min(self.replicas, pods.ready + surge)
        stable_replicas = max(0, self.replicas - pods.ready)
        note = ""
        if pods.unschedulable:
            since = pods.unschedulable_since or self.now
            if (self.now - since).total_seconds() >= self.spec.surge_timeout_seconds:
                stable_replicas = max(0, stable_replicas - 1)
                note = f"; replacing in place, no GPU for a surge pod: {pods.unschedulable}"
        state["message"] = truncate(
            f"promoting version {version} over {stable}: {pods.ready}/{self.replicas} "
            f"replicas ready ({state.get('promotionReason', '')}){note}",
            4096,
        )
        weight = min(99, max(1, 100 * pods.ready // self.replicas)) if self.replicas else 0
        return self._plan(
            state,
            stable,
            version,
            candidate_replicas=cand_replicas,
            stable_replicas=stable_replicas,
            weight=weight,
            requeue=WAIT_INTERVAL_S,
        )

    # -- rollback -----------------------------------------------------------------------------

    def _roll_back(self, state: dict[str, Any], reason: str) -> RolloutPlan:
        version = self.target.version
        stable = state["stable"]
        reason = truncate(reason, 1024)
        self.history = lineage.push(
            self.history, self._entry("RolledBack", reason, False, state.get("epoch"))
        )
        self._event(
            "Warning",
            "RolledBack",
            truncate(f"rolled back version {version}: {reason}; version {stable} serves"),
        )
        self.actions.append(Action(ActionKind.ROLL_BACK, version, reason))
        status: dict[str, Any] = {
            "phase": "RolledBack",
            "strategy": self.spec.strategy,
            "stable": stable,
            "rejected": {
                "version": version,
                "specDigest": spec_digest(self.md),
                "reason": reason,
                **({"epoch": state["epoch"]} if state.get("epoch") else {}),
            },
            "message": _rejected_message(version, reason, stable),
        }
        if state.get("analysis"):
            status["analysis"] = state["analysis"]
        return self._plan(status, stable=stable, candidate=None)

    def _supersede(self, old: str, why: str) -> None:
        source = self.prev.get("candidateSource") or {"kind": "Latest"}
        entry = lineage.history_entry(
            old,
            source,
            outcome="Superseded",
            reason=why,
            now=self.now,
            checksum=self.prev.get("candidateChecksum"),
            epoch=self.prev.get("epoch"),
        )
        self.history = lineage.push(self.history, entry)
        self._event("Normal", "Superseded", f"candidate version {old} dropped: {why}")

    # -- helpers ------------------------------------------------------------------------------

    def _step(self, state: Mapping[str, Any]) -> Step | None:
        if not self.steps:
            return None
        return self.steps[min(int(state.get("step") or 0), len(self.steps) - 1)]

    def _label(self, state: Mapping[str, Any]) -> str:
        step = self._step(state)
        index = min(int(state.get("step") or 0), max(0, len(self.steps) - 1))
        return step.label(index, len(self.steps)) if step else "promotion"

    def _canary_weight(self, step: Step) -> int:
        """The step's weight, capped by the candidate's ready share of the replicas: traffic
        follows capacity, so a step that needs more candidate pods does not send their share
        to the ones already up."""
        if self.replicas == 0:
            return step.percent
        return min(step.percent, 100 * self.pods.ready // self.replicas)

    def _traffic_text(self, index: int) -> str:
        step = self.steps[index]
        if step.kind == "Shadow":
            return f"mirroring {step.percent}% of requests to version {self.target.version}"
        weight = self._canary_weight(step)
        text = f"version {self.target.version} answers {weight}% of requests"
        if weight < step.percent:
            text += (
                f" (step weight {step.percent}%, until {self._candidate_desired(step)} "
                f"candidate pods are ready; {self.pods.ready} are)"
            )
        return text

    def _stable_source(self, stable: str) -> Mapping[str, Any] | None:
        """What the evalMetric gate compares with: the stable version's lineage source,
        completed with the metrics it was published with when the lineage has none (a
        first version, or one published by hand with `package-model --metrics`)."""
        entry = lineage.find(self.history, stable)
        return lineage.with_recorded_metrics(
            entry.get("source") if entry else None, self.recorded_metrics.get(stable)
        )

    def _source_fields(self) -> dict[str, Any]:
        out: dict[str, Any] = {"candidateSource": dict(self.target.source or {"kind": "Latest"})}
        if self.target.checksum:
            out["candidateChecksum"] = self.target.checksum
        return out

    def _entry(
        self, outcome: str, reason: str, serving: bool, epoch: str | None = None
    ) -> dict[str, Any]:
        if epoch is None and self.prev.get("candidate") == self.target.version:
            epoch = self.prev.get("epoch")
        return lineage.history_entry(
            self.target.version,
            self.target.source or lineage.latest_source(),
            outcome=outcome,
            reason=reason,
            now=self.now,
            checksum=self.target.checksum or self.prev.get("candidateChecksum"),
            serving_since=self.now if serving else None,
            epoch=epoch
            or (
                self.prev.get("epoch")
                if self.prev.get("candidate") == self.target.version
                else None
            ),
        )

    def _event(self, type_: Literal["Normal", "Warning"], reason: str, message: str) -> None:
        self.events.append(RolloutEvent(type_, reason, message))

    def _transition_event(self, state: Mapping[str, Any]) -> None:
        """Paused / Resumed events when the phase crosses that line."""
        was, now = self.prev.get("phase"), state.get("phase")
        if now == "Paused" and was != "Paused":
            self._event("Normal", "Paused", f"rollout of version {self.target.version} paused")
        elif was == "Paused" and now != "Paused":
            self._event("Normal", "Resumed", f"rollout of version {self.target.version} resumed")

    def _plan(
        self,
        status: dict[str, Any],
        stable: str | None,
        candidate: str | None,
        *,
        candidate_replicas: int = 0,
        stable_replicas: int | None = None,
        traffic: Step | None = None,
        weight: int | None = None,
        requeue: float | None = None,
        stalled: str | None = None,
    ) -> RolloutPlan:
        mirror = canary = 0
        if traffic is not None:
            step = traffic
            if step.kind == "Shadow":
                mirror = step.percent
            else:
                canary = self._canary_weight(step)
            status["mirrorPercent"] = mirror
            status["canaryWeight"] = canary
        elif weight is not None:
            canary = weight
            status["mirrorPercent"] = 0
            status["canaryWeight"] = canary
        else:
            status.pop("mirrorPercent", None)
            status.pop("canaryWeight", None)
        changed = (self.prev.get("mirrorPercent") or 0, self.prev.get("canaryWeight") or 0) != (
            mirror,
            canary,
        )
        if changed and not any(a.kind is ActionKind.SET_TRAFFIC for a in self.actions):
            self.actions.append(Action(ActionKind.SET_TRAFFIC, candidate))
        return RolloutPlan(
            status=_ordered(status),
            history=self.history,
            stable_version=stable,
            candidate_version=candidate,
            stable_replicas=stable_replicas,
            candidate_replicas=candidate_replicas if candidate is not None else 0,
            mirror_percent=mirror,
            canary_weight=canary,
            actions=tuple(self.actions),
            events=tuple(self.events),
            requeue_after=requeue,
            stalled=stalled,
            epoch=status.get("epoch") if candidate is not None else None,
        )


_ORDER = (
    "phase",
    "strategy",
    "stable",
    "candidate",
    "epoch",
    "step",
    "steps",
    "mirrorPercent",
    "canaryWeight",
    "candidateSince",
    "stepStartedAt",
    "stepStartRequests",
    "waitingSince",
    "stalled",
    "promotionReason",
    "promotingSince",
    "candidateSource",
    "candidateChecksum",
    "analysis",
    "rejected",
    "message",
)


def _duration_text(seconds: int) -> str:
    if seconds < 120:
        return f"{seconds}s"
    if seconds < 7200:
        return f"{seconds // 60}m"
    return f"{seconds // 3600}h{(seconds % 3600) // 60:02d}m"


def _rejected_message(version: str, reason: str, stable: str) -> str:
    return truncate(
        f"rolled back version {version}: {reason}; version {stable} serves. Not tried again "
        f'until a newer version appears or the spec changes (or control.promote: "{version}")',
        4096,
    )


def _ordered(status: Mapping[str, Any]) -> dict[str, Any]:
    """A stable key order, so an unchanged state serialises identically (no-op patches)."""
    known = {k: status[k] for k in _ORDER if k in status}
    return known | {k: v for k, v in status.items() if k not in known}


__all__ = [
    "ANALYSIS_INTERVAL_S",
    "GATED_PHASES",
    "WAIT_INTERVAL_S",
    "Action",
    "ActionKind",
    "RolloutEvent",
    "RolloutPlan",
    "Step",
    "Verdict",
    "decide_gated_rollout",
    "new_epoch",
    "plan_steps",
    "spec_digest",
]
