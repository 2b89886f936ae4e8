"""decide_gated_rollout over tables of observed figures, pods and clocks.

Every row starts from a status the decision itself produced (a scenario is
replayed through it), so the previous states are ones the operator really
writes, and asserts the phase, the action kinds, the message and the events.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from modelops.api.modeldeployment import ModelDeploymentStatus
from modelops.drift.figures import LATENCY_BOUNDS
from modelops.render.gating import (
    ActionKind,
    CandidatePods,
    ObservedFigures,
    RolloutPlan,
    Target,
    VersionFigures,
    decide_gated_rollout,
    lineage,
    plan_steps,
    spec_digest,
)
from modelops.render.gating.decide import ANALYSIS_INTERVAL_S
from modelops.render.meta import as_md

T0 = datetime(2026, 12, 1, 3, 0, tzinfo=UTC)
GPU_MESSAGE = (
    "0/6 nodes are available: 4 Insufficient nvidia.com/gpu, 2 node(s) had untolerated taint"
)

SHADOW = {
    "strategy": "Shadow",
    "shadow": {"mirrorPercent": 10, "duration": "10m"},
    # State-machine tables: a loose error-rate gate that a few hundred clean requests
    # decide (the statistics have their own tests, test_rollout_sequential.py; the
    # latency gate, which needs about a thousand requests to pass, its own rows).
    "analysis": {
        "minRequests": 100,
        "minAgreement": 0.95,
        "maxErrorRateIncrease": 0.05,
    },
}
STRICT = {**SHADOW, "analysis": {**SHADOW["analysis"], "maxErrorRateIncrease": 0.01}}
LATENCY = {**SHADOW, "analysis": {**SHADOW["analysis"], "maxLatencyP99Ratio": 1.5}}
CANARY = {
    "strategy": "Canary",
    "canary": {"steps": [{"weight": 10, "duration": "5m"}, {"weight": 50, "requests": 1000}]},
    "analysis": {"minRequests": 100, "maxErrorRateIncrease": 0.05},
}
CHAIN = {**SHADOW, "canary": CANARY["canary"]}
TJ_SOURCE = {
    "kind": "TrainingJob",
    "trainingJob": {"name": "fraud-retrain-3", "uid": "u-3"},
    "datasetUri": "s3://data/fraud/2026-12",
    "hyperparametersDigest": lineage.hyperparameters_digest({"lr": "0.001"}),
    "metrics": {"accuracy": 0.94, "val_loss": 0.2},
}


def body(rollout: dict[str, Any] | None = None, replicas: int = 3) -> dict[str, Any]:
    return {
        "apiVersion": "modelops.io/v1alpha1",
        "kind": "ModelDeployment",
        "metadata": {"name": "fraud", "namespace": "ml", "generation": 4, "uid": "md-1"},
        "spec": {
            "model": {"storageUri": "s3://models/fraud", "version": "latest"},
            "replicas": replicas,
            "rollout": copy.deepcopy(rollout or {}),
        },
    }


def with_control(rollout: dict[str, Any], **control: Any) -> dict[str, Any]:
    return {**rollout, "control": control}


def point_histogram(n: int, seconds: float | None) -> tuple[tuple[float, int], ...]:
    """A cumulative latency histogram of n requests that all took ``seconds``."""
    if seconds is None:
        return ()
    return tuple((b, n if seconds <= b else 0) for b in (*LATENCY_BOUNDS, float("inf")))


def figs(
    cand: int = 0,
    cand_err: int = 0,
    stable: int | None = None,
    stable_err: int = 0,
    c_p99: float | None = 0.1,
    s_p99: float | None = 0.1,
    mirrored: int | None = None,
    agreed: int | None = None,
) -> ObservedFigures:
    """Figures; by default every mirrored request agrees and stable saw 10x the candidate."""
    mirrored = cand if mirrored is None else mirrored
    n_stable = stable if stable is not None else cand * 10
    return ObservedFigures(
        stable=VersionFigures(n_stable, stable_err, s_p99, 0, point_histogram(n_stable, s_p99)),
        candidate=VersionFigures(cand, cand_err, c_p99, 0, point_histogram(cand, c_p99)),
        mirrored=mirrored,
        agreed=mirrored if agreed is None else agreed,
    )


READY1 = CandidatePods(desired=1, ready=1)


@dataclass
class World:
    """A ModelDeployment's rollout over time: each tick feeds the last plan's status back."""

    rollout: dict[str, Any]
    target: Target = field(default_factory=lambda: Target("8", {"kind": "Latest"}))
    status: dict[str, Any] | None = field(default_factory=lambda: {"phase": "Idle", "stable": "7"})
    history: list[dict[str, Any]] = field(default_factory=list)
    replicas: int = 3
    serving: str | None = "7"
    plans: list[RolloutPlan] = field(default_factory=list)
    # version -> metrics it was published with (the store's sealed metrics.json)
    recorded: dict[str, dict[str, float]] = field(default_factory=dict)

    def tick(
        self,
        minutes: float,
        pods: CandidatePods = READY1,
        figures: ObservedFigures | None = None,
        **changes: Any,
    ) -> RolloutPlan:
        for key, value in changes.items():
            setattr(self, key, value)
        plan = decide_gated_rollout(
            body(self.rollout, self.replicas),
            target=self.target,
            previous=self.status,
            history=self.history,
            figures=figures,
            candidate=pods,
            replicas=self.replicas,
            serving=self.serving,
            now=T0 + timedelta(minutes=minutes),
            recorded_metrics=self.recorded,
        )
        self.status, self.history = plan.status, plan.history
        self.plans.append(plan)
        return plan


def kinds(plan: RolloutPlan) -> list[ActionKind]:
    return [a.kind for a in plan.actions]


def reasons(plan: RolloutPlan) -> list[str]:
    return [e.reason for e in plan.events]


def in_shadow(rollout: dict[str, Any] = SHADOW, **kw: Any) -> World:
    """Candidate 8 started at T0, ready at T0+1m: shadow step started then."""
    w = World(rollout, **kw)
    w.tick(0, CandidatePods(desired=1, ready=0))
    plan = w.tick(1, READY1, figs(0))
    assert plan.status["phase"] == "Shadow", plan.status
    return w


def in_canary(step: int = 0) -> World:
    """Candidate 8 in canary step `step` (0 started at T0+1m, 1 at T0+7m)."""
    w = World(CANARY)
    w.tick(0, CandidatePods(desired=1, ready=0))
    w.tick(1, READY1, figs(0))
    if step == 1:
        plan = w.tick(7, READY1, figs(300))
        assert plan.status["step"] == 1, plan.status
    assert w.status["phase"] == "Canary"
    return w


# --- single decisions from a state, as a table ------------------------------------------


@dataclass(frozen=True)
class Row:
    world: Callable[[], World]
    minutes: float
    pods: CandidatePods = READY1
    figures: ObservedFigures | None = None
    rollout: dict[str, Any] | None = None  # a spec edit before this decision
    phase: str = ""
    actions: Sequence[ActionKind] = ()
    message: str = ""
    events: Sequence[str] | None = None
    candidate: str | None = "8"


ROWS: dict[str, Row] = {
    # shadow: each gate passing and failing
    "shadow: all gates pass after the duration -> promoting": Row(
        in_shadow,
        12,
        figures=figs(400),
        phase="Promoting",
        actions=[ActionKind.PROMOTE],
        message="promoting version 8 over 7",
        events=["Promoting"],
    ),
    "shadow: agreement below minAgreement -> rolled back with the figure": Row(
        in_shadow,
        12,
        figures=figs(412, agreed=334),
        phase="RolledBack",
        actions=[ActionKind.ROLL_BACK],
        message="agreement 0.811 < minAgreement 0.95 over 412 mirrored requests",
        events=["RolledBack"],
        candidate=None,
    ),
    "shadow: a failing gate rolls back before the duration ends": Row(
        in_shadow,
        3,
        figures=figs(412, agreed=300),
        phase="RolledBack",
        message="agreement 0.728 < minAgreement 0.95",
        candidate=None,
    ),
    "shadow: error rate increase above the limit -> rolled back": Row(
        in_shadow,
        12,
        figures=figs(600, cand_err=30, stable=6000, stable_err=6),
        rollout=STRICT,
        phase="RolledBack",
        message="error rate 0.05 vs stable 0.001: increase 0.049 > maxErrorRateIncrease 0.01 "
        "over 600 requests (at least 0.0196 at 95% confidence)",
        candidate=None,
    ),
    "shadow: error rate increase above the limit, too little evidence yet -> no verdict": Row(
        in_shadow,
        12,
        figures=figs(200, cand_err=10, stable=2000, stable_err=2),
        rollout=STRICT,
        phase="Shadow",
        message="increase 0.049 (between 0.00",
    ),
    "shadow: error rate increase within the limit passes": Row(
        in_shadow,
        12,
        figures=figs(4000, cand_err=20, stable=40000, stable_err=80),
        rollout=STRICT,
        phase="Promoting",
    ),
    "shadow: error rate within the limit on little evidence -> samples needed, ETA": Row(
        in_shadow,
        12,
        figures=figs(1000, cand_err=5, stable=10000, stable_err=20),
        rollout=STRICT,
        phase="Shadow",
        message="more requests needed (~",
    ),
    "shadow: p99 latency ratio above the limit -> rolled back": Row(
        in_shadow,
        12,
        figures=figs(400, c_p99=0.3, s_p99=0.1),
        rollout=LATENCY,
        phase="RolledBack",
        message="p99 latency 0.3s vs stable 0.1s: ratio 3 > maxLatencyP99Ratio 1.5",
        candidate=None,
    ),
    "shadow: p99 not measured yet -> keeps analysing": Row(
        in_shadow,
        12,
        figures=figs(400, c_p99=None),
        rollout=LATENCY,
        phase="Shadow",
        actions=[ActionKind.WAIT],
        message="p99 latency not measured yet for the candidate",
    ),
    "shadow: minRequests not reached -> no verdict yet": Row(
        in_shadow,
        12,
        figures=figs(50, agreed=0),
        phase="Shadow",
        actions=[ActionKind.WAIT],
        message="50/100 requests (minRequests)",
        events=[],
    ),
    "shadow: below minRequests even a total disagreement is no verdict": Row(
        in_shadow,
        12,
        figures=figs(99, agreed=0),
        phase="Shadow",
    ),
    "shadow: gates pass but the duration has not elapsed": Row(
        in_shadow,
        6,
        figures=figs(400),
        phase="Shadow",
        message="waiting for 300s of 600s left",
    ),
    # pause and manual controls
    "paused: passing figures do not promote": Row(
        in_shadow,
        12,
        figures=figs(400),
        rollout=with_control(SHADOW, paused=True),
        phase="Paused",
        message="paused by spec.rollout.control.paused at shadow (step 1/1)",
        events=["Paused"],
    ),
    "paused: a failing gate still rolls back": Row(
        in_shadow,
        12,
        figures=figs(400, agreed=10),
        rollout=with_control(SHADOW, paused=True),
        phase="RolledBack",
        candidate=None,
    ),
    "manual promote skips the remaining analysis": Row(
        in_shadow,
        2,
        figures=figs(10),
        rollout=with_control(SHADOW, promote="8"),
        phase="Promoting",
        message="promoted by spec.rollout.control.promote",
        events=["Promoting"],
    ),
    "manual promote of another version is inert": Row(
        in_shadow,
        2,
        figures=figs(10),
        rollout=with_control(SHADOW, promote="6"),
        phase="Shadow",
    ),
    "manual abort rolls back at once": Row(
        in_shadow,
        2,
        figures=figs(10),
        rollout=with_control(SHADOW, abort="8"),
        phase="RolledBack",
        message="rolled back version 8: aborted by spec.rollout.control.abort; version 7 serves",
        events=["RolledBack"],
        candidate=None,
    ),
    "manual abort of another version is inert": Row(
        in_shadow,
        2,
        figures=figs(10),
        rollout=with_control(SHADOW, abort="9"),
        phase="Shadow",
    ),
    "candidate pods crash-loop -> rolled back": Row(
        in_shadow,
        2,
        pods=CandidatePods(desired=1, ready=0, problem="CrashLoopBackOff: container triton"),
        figures=figs(10),
        phase="RolledBack",
        message="candidate pods fail: CrashLoopBackOff: container triton",
        candidate=None,
    ),
    # canary steps
    "canary step 1: passes after its duration -> step 2 at weight 50": Row(
        in_canary,
        7,
        figures=figs(300),
        phase="Canary",
        actions=[ActionKind.SET_TRAFFIC],
        events=["StepPassed", "StepStarted"],
    ),
    "canary step 2: request count not reached": Row(
        lambda: in_canary(1),
        20,
        figures=figs(900),
        phase="Canary",
        message="600/1000 requests in this step",
    ),
    "canary step 2: request count reached -> promoting": Row(
        lambda: in_canary(1),
        20,
        figures=figs(1300),
        phase="Promoting",
    ),
    "canary: error rate failure at weight 50 -> rolled back": Row(
        lambda: in_canary(1),
        20,
        figures=figs(1300, cand_err=100),
        phase="RolledBack",
        message="increase 0.0769 > maxErrorRateIncrease 0.05 over 1300 requests",
        candidate=None,
    ),
}


@pytest.mark.parametrize("name", list(ROWS))
def test_decision_table(name: str):
    row = ROWS[name]
    w = row.world()
    if row.rollout is not None:
        w.rollout = row.rollout
    plan = w.tick(row.minutes, row.pods, row.figures)
    assert plan.status["phase"] == row.phase, plan.status
    for kind in row.actions:
        assert kind in kinds(plan), (kinds(plan), plan.status)
    assert row.message in plan.status["message"], plan.status["message"]
    if row.events is not None:
        assert reasons(plan) == list(row.events), plan.events
    assert plan.candidate_version == row.candidate
    assert plan.stable_version == "7"
    # The status the plan writes is one the CRD accepts.
    ModelDeploymentStatus.model_validate({"rollout": plan.status, "history": plan.history})


def test_rollback_records_the_figure_in_status_history_and_a_warning_event():
    w = in_shadow()
    plan = w.tick(12, READY1, figs(412, agreed=334))
    text = "agreement 0.811 < minAgreement 0.95 over 412 mirrored requests"
    (event,) = plan.events
    assert event.type == "Warning" and text in event.message
    assert plan.status["rejected"]["version"] == "8"
    assert text in plan.status["rejected"]["reason"]
    assert plan.status["analysis"]["agreement"] == pytest.approx(334 / 412, abs=1e-6)
    entry = plan.history[0]
    assert (entry["version"], entry["outcome"]) == ("8", "RolledBack")
    assert text in entry["reason"] and "servingSince" not in entry
    # The stable version is untouched: no replica override, no traffic to the candidate.
    assert plan.stable_replicas is None and plan.candidate_replicas == 0
    assert (plan.mirror_percent, plan.canary_weight) == (0, 0)


# --- traffic and the chained shadow -> canary rollout ------------------------------------


def test_chained_shadow_then_canary_then_promotion():
    w = World(CHAIN, target=Target("8", TJ_SOURCE, "sha256:" + "ab" * 32))
    start = w.tick(0, CandidatePods(desired=1, ready=0))
    assert start.status["phase"] == "Waiting" and kinds(start)[0] is ActionKind.START_CANDIDATE
    assert (start.mirror_percent, start.canary_weight, start.candidate_replicas) == (0, 0, 1)
    assert start.status["steps"] == 3

    shadow = w.tick(1, READY1, figs(0))
    assert (shadow.status["phase"], shadow.mirror_percent, shadow.canary_weight) == (
        "Shadow",
        10,
        0,
    )
    assert shadow.candidate_replicas == 1  # 10% of 3 replicas, at least one

    canary1 = w.tick(12, READY1, figs(500))
    assert (canary1.status["phase"], canary1.status["step"]) == ("Canary", 1)
    assert (canary1.mirror_percent, canary1.canary_weight) == (0, 10)
    assert canary1.status["stepStartRequests"] == 500

    held = w.tick(14, READY1, figs(700))
    assert held.status["step"] == 1 and "180s of 300s left" in held.status["message"]
    assert held.events == ()

    canary2 = w.tick(18, READY1, figs(900))
    assert canary2.status["step"] == 2
    assert canary2.candidate_replicas == 2  # 50% of 3, rounded up
    # Traffic follows capacity: one ready candidate pod of three replicas gets 33%, not 50%.
    assert canary2.canary_weight == 33
    assert (
        "answers 33% of requests (step weight 50%, until 2 candidate pods are ready; 1 are)"
        in (canary2.status["message"])
    )
    scaled = w.tick(19, CandidatePods(desired=2, ready=2), figs(950))
    assert scaled.canary_weight == 50 and ActionKind.SET_TRAFFIC in kinds(scaled)

    promoting = w.tick(30, CandidatePods(desired=2, ready=2), figs(2000))
    assert promoting.status["phase"] == "Promoting"
    assert "analysis passed" in promoting.status["promotionReason"]
    # Rolling swap: maxSurge 1 more candidate pod, one stable pod retired per ready candidate.
    assert (promoting.candidate_replicas, promoting.stable_replicas) == (3, 1)

    done = w.tick(31, CandidatePods(desired=3, ready=3), figs(2100))
    assert done.status["phase"] == "Idle" and done.status["stable"] == "8"
    assert done.stable_version == "8" and done.candidate_version is None
    assert ActionKind.COMPLETE_PROMOTION in kinds(done) and reasons(done) == ["Promoted"]
    entry = done.history[0]
    assert entry["outcome"] == "Promoted" and entry["servingSince"] == "2026-12-01T03:31:00Z"
    assert entry["source"] == TJ_SOURCE and entry["checksum"] == "sha256:" + "ab" * 32

    idle = w.tick(40)
    assert idle.status == done.status and idle.events == () and idle.actions == ()


def test_steps_are_flattened_shadow_first():
    steps = plan_steps(as_md(body(CHAIN)).spec.rollout)
    assert [(s.kind, s.percent) for s in steps] == [("Shadow", 10), ("Canary", 10), ("Canary", 50)]
    assert steps[0].duration == timedelta(minutes=10)
    assert steps[2].requests == 1000
    assert plan_steps(as_md(body({})).spec.rollout) == ()


def test_a_step_without_duration_or_requests_needs_min_requests_of_its_own():
    rollout = {
        "strategy": "Canary",
        "canary": {"steps": [{"weight": 10}, {"weight": 20}]},
        "analysis": {"maxErrorRateIncrease": 0.05},
    }
    w = World(rollout)
    w.tick(0, CandidatePods(desired=1, ready=0))
    w.tick(1, READY1, figs(0))
    first = w.tick(2, READY1, figs(150))
    assert first.status["step"] == 1  # minRequests (100) seen in step 1
    second = w.tick(3, READY1, figs(200))
    assert second.status["step"] == 1 and "50/100 requests in this step" in second.status["message"]
    third = w.tick(4, READY1, figs(260))
    assert third.status["phase"] == "Promoting"


# --- waiting for the candidate and for GPUs ---------------------------------------------


def _waiting_world() -> World:
    w = World(SHADOW)
    w.tick(0, CandidatePods(desired=1, ready=0))
    return w


def test_candidate_waiting_for_a_gpu_says_why():
    w = _waiting_world()
    pods = CandidatePods(
        desired=1,
        ready=0,
        unschedulable=GPU_MESSAGE,
        unschedulable_since=T0 + timedelta(seconds=20),
    )
    plan = w.tick(0.5, pods)  # waited 10s of 60
    assert plan.status["phase"] == "Waiting" and plan.stalled is None
    assert f"waits for a node (10s): {GPU_MESSAGE}" in plan.status["message"]
    assert plan.requeue_after == 10.0
    assert plan.stable_replicas is None  # never takes capacity from the stable version


def test_candidate_waiting_too_long_turns_stalled_once():
    w = _waiting_world()
    pods = CandidatePods(desired=1, ready=0, unschedulable=GPU_MESSAGE, unschedulable_since=T0)
    plan = w.tick(5, pods)
    assert plan.status["phase"] == "Waiting" and plan.status["stalled"] is True
    assert plan.stalled and "longer than its scheduling timeout 60s" in plan.stalled
    assert GPU_MESSAGE in plan.stalled and "stable version 7 keeps serving" in plan.stalled
    assert ActionKind.STALL in kinds(plan)
    assert [(e.type, e.reason) for e in plan.events] == [("Warning", "CandidateStalled")]
    assert plan.stable_replicas is None and plan.candidate_version == "8"
    again = w.tick(6, pods)
    assert again.stalled and again.events == ()
    # A GPU frees up: the candidate schedules and the rollout moves on.
    ready = w.tick(7, READY1, figs(0))
    assert ready.status["phase"] == "Shadow" and ready.stalled is None
    assert "stalled" not in ready.status and "waitingSince" not in ready.status


def test_candidate_ready_while_paused_waits_before_the_first_step():
    w = World(with_control(SHADOW, paused=True))
    w.tick(0, CandidatePods(desired=1, ready=0))
    plan = w.tick(1, READY1, figs(0))
    assert plan.status["phase"] == "Paused" and "stepStartedAt" not in plan.status
    assert plan.mirror_percent == 0
    w.rollout = SHADOW
    resumed = w.tick(2, READY1, figs(0))
    assert resumed.status["phase"] == "Shadow" and resumed.mirror_percent == 10
    assert "Resumed" in reasons(resumed)


def test_pause_holds_the_step_and_resume_continues_it():
    w = in_shadow()
    paused = w.tick(5, READY1, figs(50), rollout=with_control(SHADOW, paused=True))
    assert paused.status["phase"] == "Paused" and paused.mirror_percent == 10
    assert w.tick(20, READY1, figs(500)).status["phase"] == "Paused"
    resumed = w.tick(21, READY1, figs(500), rollout=SHADOW)
    assert resumed.status["phase"] == "Promoting"


# --- rolled back versions are not retried ----------------------------------------------


def rolled_back() -> World:
    w = in_shadow()
    plan = w.tick(12, READY1, figs(412, agreed=334))
    assert plan.status["phase"] == "RolledBack"
    return w


def test_rolled_back_version_is_not_retried():
    w = rolled_back()
    after_rollback = copy.deepcopy(w.status)
    for minute in (13, 60, 600):
        plan = w.tick(minute, CandidatePods())
        assert plan.status == after_rollback  # holding writes nothing
        assert plan.status["phase"] == "RolledBack" and plan.candidate_version is None
        assert plan.events == () and plan.actions == ()
        assert "Not tried again until a newer version appears" in plan.status["message"]
    assert [h["outcome"] for h in w.history] == ["RolledBack"]


def test_rolled_back_version_not_retried_when_only_controls_or_replicas_change():
    w = rolled_back()
    plan = w.tick(13, CandidatePods(), rollout=with_control(SHADOW, paused=True), replicas=5)
    assert plan.status["phase"] == "RolledBack"


def test_newer_version_is_tried():
    w = rolled_back()
    plan = w.tick(13, CandidatePods(), target=Target("9", {"kind": "Latest"}))
    assert plan.status["phase"] == "Waiting" and plan.candidate_version == "9"
    assert plan.status["rejected"]["version"] == "8"  # still remembered
    assert reasons(plan) == ["CandidateStarted"]


def test_spec_change_retries_the_rolled_back_version():
    w = rolled_back()
    looser = {**SHADOW, "analysis": {**SHADOW["analysis"], "minAgreement": 0.8}}
    plan = w.tick(13, CandidatePods(), rollout=looser)
    assert plan.status["phase"] == "Waiting" and plan.candidate_version == "8"


def test_manual_promote_of_a_rolled_back_version_starts_and_promotes_it():
    w = rolled_back()
    plan = w.tick(13, CandidatePods(), rollout=with_control(SHADOW, promote="8"))
    assert plan.status["phase"] == "Promoting" and plan.candidate_version == "8"
    assert plan.status["promotionReason"] == "promoted by spec.rollout.control.promote"


def test_spec_digest_ignores_controls_and_replicas_only():
    base = as_md(body(SHADOW))
    assert spec_digest(base) == spec_digest(as_md(body(with_control(SHADOW, paused=True), 9)))
    assert spec_digest(base) != spec_digest(as_md(body(CHAIN)))


# --- eval metric gate (candidates from a TrainingJob) -----------------------------------

GATED_EVAL = {
    **SHADOW,
    "analysis": {
        **SHADOW["analysis"],
        "evalMetric": {"name": "accuracy", "direction": "HigherIsBetter", "maxRegression": 0.01},
    },
}


def _with_stable_lineage(metrics: dict[str, float] | None) -> list[dict[str, Any]]:
    source = {**TJ_SOURCE, "trainingJob": {"name": "fraud-retrain-2", "uid": "u-2"}}
    if metrics is None:
        source = {"kind": "PinnedBySpec"}
    else:
        source["metrics"] = metrics
    entry = lineage.history_entry(
        "7", source, outcome="Promoted", reason="first version", now=T0, serving_since=T0
    )
    return [entry]


@pytest.mark.parametrize(
    ("candidate_metrics", "stable_metrics", "phase", "text"),
    [
        ({"accuracy": 0.935}, {"accuracy": 0.94}, "Waiting", "regression 0.005 <= maxRegression"),
        (
            {"accuracy": 0.91},
            {"accuracy": 0.94},
            "RolledBack",
            "eval metric accuracy 0.91 vs "
            "stable 0.94 (0.03 worse; HigherIsBetter): regression 0.03 > maxRegression 0.01",
        ),
        ({"accuracy": 0.96}, {"accuracy": 0.94}, "Waiting", "0.02 better"),
        (
            {"loss": 0.1},
            {"accuracy": 0.94},
            "RolledBack",
            "eval metric accuracy missing: TrainingJob fraud-retrain-3 did not report it",
        ),
        ({"accuracy": 0.5}, None, "Waiting", "the stable version has no accuracy recorded"),
    ],
)
def test_eval_metric_gate_is_judged_before_any_pod_starts(
    candidate_metrics, stable_metrics, phase, text
):
    source = {**TJ_SOURCE, "metrics": candidate_metrics}
    w = World(GATED_EVAL, target=Target("8", source), history=_with_stable_lineage(stable_metrics))
    plan = w.tick(0, CandidatePods())
    assert plan.status["phase"] == phase, plan.status
    assert text in (plan.status.get("message", "") + plan.status["analysis"]["verdict"])
    if phase == "RolledBack":
        assert plan.candidate_version is None and ActionKind.START_CANDIDATE not in kinds(plan)
        assert plan.history[0]["source"]["trainingJob"]["name"] == "fraud-retrain-3"


@pytest.mark.parametrize(
    ("history_metrics", "published", "phase", "text"),
    [
        # A stable version published by hand (no TrainingJob lineage) with its metrics
        # sealed in the version: the candidate is compared with them.
        (None, {"accuracy": 0.97}, "RolledBack", "vs stable 0.97 (0.03 worse"),
        (None, {"accuracy": 0.9}, "Waiting", "vs stable 0.9 (0.04 better"),
        # The lineage's own metrics come first; the published file only fills a gap.
        ({"accuracy": 0.9}, {"accuracy": 0.99}, "Waiting", "vs stable 0.9 (0.04 better"),
        # Published metrics without the gate's metric: nothing to compare with.
        (None, {"loss": 0.3}, "Waiting", "the stable version has no accuracy recorded"),
    ],
)
def test_eval_metric_gate_compares_with_the_metrics_the_stable_version_was_published_with(
    history_metrics, published, phase, text
):
    source = {**TJ_SOURCE, "metrics": {"accuracy": 0.94}}
    w = World(
        GATED_EVAL,
        target=Target("8", source),
        history=_with_stable_lineage(history_metrics),
        recorded={"7": published},
    )
    plan = w.tick(0, CandidatePods())
    assert plan.status["phase"] == phase, plan.status
    assert text in (plan.status.get("message", "") + plan.status["analysis"]["verdict"])


def test_eval_metric_lower_is_better():
    rollout = copy.deepcopy(GATED_EVAL)
    rollout["analysis"]["evalMetric"] = {"name": "val_loss", "direction": "LowerIsBetter"}
    worse = {**TJ_SOURCE, "metrics": {"val_loss": 0.25}}
    w = World(rollout, target=Target("8", worse), history=_with_stable_lineage({"val_loss": 0.2}))
    plan = w.tick(0, CandidatePods())
    assert plan.status["phase"] == "RolledBack"
    assert "regression 0.05 > maxRegression 0" in plan.status["message"]


def test_eval_metric_gate_does_not_apply_to_versions_without_a_training_job():
    w = World(GATED_EVAL, history=_with_stable_lineage({"accuracy": 0.99}))
    assert w.tick(0, CandidatePods()).status["phase"] == "Waiting"


# --- restarts: resume from status without promoting twice -------------------------------


def test_restart_mid_analysis_resumes_the_same_step_and_baseline():
    w = World(CHAIN)
    w.tick(0, CandidatePods(desired=1, ready=0))
    w.tick(1, READY1, figs(0))
    w.tick(12, READY1, figs(500))  # canary step 1 starts with baseline 500
    saved = copy.deepcopy(w.status), copy.deepcopy(w.history)
    # A new operator process: nothing but the status it reads back.
    plan = decide_gated_rollout(
        body(CHAIN),
        target=w.target,
        previous=saved[0],
        history=saved[1],
        figures=figs(650),
        candidate=READY1,
        replicas=3,
        serving="7",
        now=T0 + timedelta(minutes=13),
    )
    assert plan.status["step"] == 1 and plan.status["stepStartRequests"] == 500
    assert plan.status["stepStartedAt"] == "2026-12-01T03:12:00Z"
    assert plan.status["analysis"]["stepRequests"] == 150
    assert plan.events == ()


def test_replayed_promotion_is_recorded_once():
    w = in_shadow()
    promoting = w.tick(12, READY1, figs(400))
    assert promoting.status["phase"] == "Promoting"
    before = copy.deepcopy(w.status), copy.deepcopy(w.history)
    # The operator restarts while promoting: the decision is continued, not taken again.
    again = w.tick(13, CandidatePods(desired=2, ready=1), figs(450))
    assert again.status["phase"] == "Promoting" and "Promoting" not in reasons(again)
    assert ActionKind.PROMOTE not in kinds(again)
    done = w.tick(14, CandidatePods(desired=3, ready=3), figs(500))
    assert done.status["phase"] == "Idle"
    # The status write of `done` is lost: the next operator sees the Promoting status again,
    # with the history already written by a previous attempt.
    replay = decide_gated_rollout(
        body(SHADOW),
        target=w.target,
        previous=before[0],
        history=done.history,
        figures=figs(500),
        candidate=CandidatePods(desired=3, ready=3),
        replicas=3,
        serving="7,8",
        now=T0 + timedelta(minutes=15),
    )
    assert replay.status["stable"] == "8"
    assert [h["outcome"] for h in replay.history] == ["Promoted"]


def test_plan_is_a_fixed_point_when_nothing_changes():
    w = in_shadow()
    first = w.tick(3, READY1, figs(40))
    second = w.tick(3, READY1, figs(40))
    assert first.status == second.status and second.events == ()
    assert kinds(second) == [ActionKind.WAIT]
    assert second.requeue_after == ANALYSIS_INTERVAL_S


# --- promotion ---------------------------------------------------------------------------


def _promoting(rollout: dict[str, Any] = SHADOW) -> World:
    w = in_shadow(rollout)
    assert w.tick(12, READY1, figs(400)).status["phase"] == "Promoting"
    return w


@pytest.mark.parametrize(
    ("ready", "unschedulable_for", "candidate_replicas", "stable_replicas", "weight"),
    [
        (1, None, 2, 2, 33),
        (2, None, 3, 1, 66),
        (1, 30, 2, 2, 33),  # a surge pod waits less than surgeTimeoutSeconds: keep waiting
        (1, 90, 2, 1, 33),  # longer: retire one more stable pod (replace in place)
    ],
)
def test_promotion_is_a_rolling_swap(
    ready, unschedulable_for, candidate_replicas, stable_replicas, weight
):
    w = _promoting()
    now = 13
    pods = CandidatePods(desired=2, ready=ready)
    if unschedulable_for is not None:
        pods = replace(
            pods,
            unschedulable=GPU_MESSAGE,
            unschedulable_since=T0 + timedelta(minutes=now, seconds=-unschedulable_for),
        )
    plan = w.tick(now, pods, figs(450))
    assert plan.status["phase"] == "Promoting"
    assert (plan.candidate_replicas, plan.stable_replicas) == (candidate_replicas, stable_replicas)
    assert plan.canary_weight == weight


def test_abort_during_promotion_restores_the_stable_replicas():
    w = _promoting()
    plan = w.tick(13, CandidatePods(desired=2, ready=1), rollout=with_control(SHADOW, abort="8"))
    assert plan.status["phase"] == "RolledBack"
    assert plan.stable_replicas is None and plan.candidate_version is None


# --- Direct, first versions, superseded candidates, adoption ----------------------------


def test_direct_strategy_rolls_through_and_records_lineage():
    w = World({}, target=Target("8", {"kind": "PinnedBySpec"}, "sha256:" + "cd" * 32))
    plan = w.tick(0, CandidatePods(desired=3, ready=1))
    assert plan.status["phase"] == "Progressing" and plan.stable_version == "8"
    assert plan.candidate_version is None and kinds(plan) == [ActionKind.DIRECT]
    assert "rolling out version 8 (strategy Direct): 1/3 replicas ready" in plan.status["message"]
    assert w.tick(1, CandidatePods(desired=3, ready=2)).events == ()
    done = w.tick(2, CandidatePods(desired=3, ready=3, complete=True))
    assert done.status == {"phase": "Idle", "stable": "8", "message": "version 8 serves"}
    assert done.history[0]["outcome"] == "Promoted"
    assert done.history[0]["source"] == {"kind": "PinnedBySpec"}
    assert reasons(done) == ["RolledOut"]


def test_first_version_goes_directly_whatever_the_strategy():
    w = World(SHADOW, status=None, serving=None)
    plan = w.tick(0, CandidatePods(desired=3, ready=0))
    assert plan.status["phase"] == "Progressing" and "first version" in plan.status["message"]
    assert plan.stable_version == "8" and "stable" not in plan.status
    done = w.tick(3, CandidatePods(desired=3, ready=3, complete=True))
    assert done.status["stable"] == "8" and done.history[0]["reason"] == "first version"


def test_a_serving_version_is_adopted_as_stable():
    w = World(SHADOW, status=None, serving="7")
    plan = w.tick(0, CandidatePods())
    assert plan.status["phase"] == "Waiting" and plan.status["stable"] == "7"
    assert plan.stable_version == "7" and plan.candidate_version == "8"


def test_newer_version_supersedes_the_candidate_under_analysis():
    w = in_shadow(target=Target("8", TJ_SOURCE))
    plan = w.tick(3, CandidatePods(), figs(50), target=Target("9", {"kind": "Latest"}))
    assert plan.status["phase"] == "Waiting" and plan.candidate_version == "9"
    assert "stepStartedAt" not in plan.status
    assert reasons(plan) == ["Superseded", "CandidateStarted"]
    old = plan.history[0]
    assert (old["version"], old["outcome"]) == ("8", "Superseded")
    assert old["source"] == TJ_SOURCE and old["reason"] == "version 9 appeared"


def test_spec_back_to_the_stable_version_drops_the_candidate():
    w = in_shadow()
    plan = w.tick(3, CandidatePods(), figs(50), target=Target("7", {"kind": "PinnedBySpec"}))
    assert plan.status["phase"] == "Idle" and plan.candidate_version is None
    assert plan.history[0]["outcome"] == "Superseded"


def test_switching_to_direct_mid_analysis_rolls_through():
    w = in_shadow()
    plan = w.tick(3, CandidatePods(desired=3, ready=0), figs(50), rollout={})
    assert plan.status["phase"] == "Progressing" and plan.stable_version == "8"
    assert plan.candidate_version is None
    assert plan.history[0]["reason"] == "strategy changed to Direct"


def test_scaled_to_zero_promotes_without_pods():
    w = in_shadow(replicas=0)
    plan = w.tick(12, CandidatePods(), figs(400))
    assert plan.status["phase"] == "Idle" and plan.status["stable"] == "8"


def test_pause_does_not_stop_a_promotion_under_way():
    w = _promoting()
    plan = w.tick(13, CandidatePods(desired=3, ready=3), rollout=with_control(SHADOW, paused=True))
    assert plan.status["phase"] == "Idle" and plan.status["stable"] == "8"


def test_abort_already_in_git_when_the_version_appears_never_starts_it():
    w = World(with_control(SHADOW, abort="8"))
    plan = w.tick(0, CandidatePods())
    assert plan.status["phase"] == "RolledBack" and plan.candidate_version is None
    assert ActionKind.START_CANDIDATE not in kinds(plan)
    assert plan.history[0]["reason"] == "aborted by spec.rollout.control.abort"
    # Inert for the next version.
    nxt = w.tick(1, CandidatePods(), target=Target("9", {"kind": "Latest"}))
    assert nxt.status["phase"] == "Waiting" and nxt.candidate_version == "9"


def test_latest_must_be_resolved_before_deciding():
    with pytest.raises(ValueError, match="resolved number"):
        World(SHADOW, target=Target("latest")).tick(0)


# --- deadlines ----------------------------------------------------------------------------

STALL = {**SHADOW, "analysis": {**SHADOW["analysis"], "onProgressDeadline": "Stall"}}


def test_zero_traffic_rolls_back_at_the_progress_deadline_with_the_reason():
    w = in_shadow()
    # The shadow step (10m duration) started at T0+1m: it could pass at 11m; the 30m
    # progress deadline ends at 41m.
    assert w.tick(40, READY1, figs(0)).status["phase"] == "Shadow"
    plan = w.tick(41, READY1, figs(0))
    assert plan.status["phase"] == "RolledBack"
    assert plan.candidate_version is None
    assert (
        "progress deadline exceeded: no verdict at shadow (step 1/1) progressDeadline 30m after "
        "it could have passed: 0/100 requests (minRequests)" in plan.status["message"]
    )
    assert reasons(plan) == ["RolledBack"]


def test_with_stall_the_candidate_waits_stalled_until_evidence_decides():
    w = in_shadow(STALL)
    plan = w.tick(41, READY1, figs(50))
    assert plan.status["phase"] == "Shadow" and plan.status["stalled"] is True
    assert plan.stalled and plan.stalled_reason == "ProgressDeadlineExceeded"
    assert plan.candidate_version == "8" and plan.mirror_percent == 10
    assert reasons(plan) == ["ProgressDeadlineExceeded"]
    again = w.tick(42, READY1, figs(60))
    assert again.stalled and reasons(again) == []  # the event once
    # Evidence arrives after all: the verdict stands, the stall ends.
    done = w.tick(50, READY1, figs(1000))
    assert done.status["phase"] == "Promoting" and "stalled" not in done.status
    assert not done.stalled


def test_a_candidate_never_ready_meets_the_progress_deadline():
    w = World(SHADOW)
    w.tick(0, CandidatePods(desired=1, ready=0))
    assert w.tick(29, CandidatePods(desired=1, ready=0)).status["phase"] == "Waiting"
    plan = w.tick(30, CandidatePods(desired=1, ready=0))
    assert plan.status["phase"] == "RolledBack"
    assert (
        "candidate version 8 not ready after progressDeadline 30m: 0/1 pods ready"
        in (plan.status["message"])
    )


def test_a_promotion_that_overruns_its_deadline_gives_the_old_stable_its_replicas_back():
    w = in_shadow()
    promoting = w.tick(12, READY1, figs(1000))
    assert promoting.status["phase"] == "Promoting" and promoting.stable_replicas == 2
    assert w.tick(26, CandidatePods(desired=2, ready=1), figs(1000)).status["phase"] == (
        "Promoting"
    )
    plan = w.tick(27, CandidatePods(desired=2, ready=1), figs(1000))
    assert plan.status["phase"] == "RolledBack"
    assert "promotionDeadline 15m: 1/3 replicas of the new version ready" in plan.status["message"]
    assert plan.candidate_version is None and plan.stable_replicas is None
    assert plan.stable_version == "7"


def test_a_crash_looping_new_stable_rolls_the_promotion_back_at_once():
    w = in_shadow()
    w.tick(12, READY1, figs(1000))
    crashing = CandidatePods(desired=2, ready=1, problem="CrashLoopBackOff: pod fraud-b-2")
    plan = w.tick(13, crashing, figs(1000))
    assert plan.status["phase"] == "RolledBack"
    assert "promotion failed, new pods fail: CrashLoopBackOff" in plan.status["message"]
    assert plan.candidate_version is None and plan.stable_replicas is None


def _stalled_after(obj: dict[str, Any], waited_s: float) -> bool:
    """Whether a candidate that found no node for `waited_s` turns the rollout Stalled."""
    first = decide_gated_rollout(
        obj,
        target=Target("8", {"kind": "Latest"}),
        previous={"phase": "Idle", "stable": "7"},
        history=[],
        figures=None,
        candidate=CandidatePods(desired=1, ready=0),
        replicas=3,
        serving="7",
        now=T0,
    )
    pods = CandidatePods(desired=1, ready=0, unschedulable=GPU_MESSAGE, unschedulable_since=T0)
    plan = decide_gated_rollout(
        obj,
        target=Target("8", {"kind": "Latest"}),
        previous=first.status,
        history=first.history,
        figures=None,
        candidate=pods,
        replicas=3,
        serving="7",
        now=T0 + timedelta(seconds=waited_s),
    )
    return plan.stalled is not None


@pytest.mark.parametrize(
    ("timeouts", "waited_s", "stalled"),
    [
        ({"surgeTimeoutSeconds": 600}, 40, False),  # v1alpha1: one field means both
        ({"surgeTimeoutSeconds": 600}, 700, True),
        ({"surgeTimeout": "10m", "schedulingTimeout": "30s"}, 40, True),
        ({"surgeTimeout": "30s", "schedulingTimeout": "10m"}, 40, False),
        ({"surgeTimeout": "30s", "schedulingTimeout": "10m"}, 700, True),
    ],
)
def test_the_scheduling_timeout_decides_a_waiting_candidates_stall(
    timeouts: dict[str, Any], waited_s: float, stalled: bool
):
    """v1beta1 split surgeTimeoutSeconds: schedulingTimeout (not surgeTimeout) is how
    long a candidate may wait for a node before the rollout is Stalled."""
    obj = body({**SHADOW, **timeouts})
    if "surgeTimeout" in timeouts:
        obj["apiVersion"] = "modelops.io/v1beta1"
    assert _stalled_after(obj, waited_s) is stalled
