"""placement InPlace through the gated planner (render/gated.place + render/inplace.py):
the same gating core, observed and rendered for a candidate inside the serving pods."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from modelops.api.modeldeployment import ModelDeployment
from modelops.render.gated import place
from modelops.render.slots import deployment_key
from tests.unit.test_render_fixtures import deployment, md_body, pod

NOW = datetime(2026, 12, 7, 8, 0, tzinfo=UTC)
GiB = 1 << 30
PODS = [pod(f"fraud-a-{i}", version="7") for i in range(2)]
FITS = (2 * GiB, {p["metadata"]["name"]: {"gpuTotalBytes": 80 * GiB, "gpuUsedBytes": 20 * GiB}
                  for p in PODS})  # fmt: skip


def md(placement: str | None = "InPlace", **in_place: Any) -> ModelDeployment:
    rollout: dict[str, Any] = {
        "strategy": "Shadow",
        "shadow": {"mirrorPercent": 100},
        "analysis": {"minRequests": 50, "minAgreement": 0.8, "maxErrorRateIncrease": 0.2},
    }
    if placement:
        rollout["placement"] = placement
    if in_place:
        rollout["inPlace"] = in_place
    body = md_body(
        model={"storageUri": "s3://models/fraud", "format": "triton", "version": "8"},
        replicas=2,
        rollout=rollout,
    )
    return ModelDeployment.model_validate(body)


def stable_children() -> dict[str, Any]:
    return {deployment_key("fraud", "a"): deployment(desired=2, replicas=2, ready=2, version="7")}


def run(m: ModelDeployment, previous: dict[str, Any], figures=None, in_place=FITS, now=NOW):
    return place(
        m,
        children=stable_children(),
        pods=PODS,
        trainings=[],
        previous=previous,
        figures=figures,
        now=now,
        in_place=in_place,
    )


def summary(loaded: dict[str, list[str]], epoch: str, n: int = 0, agreed: int = 0) -> dict:
    buckets = {"0.005": n, "+Inf": n}
    doc = {
        "sidecar": "s1", "version": "7", "epoch": epoch, "role": "stable", "requests": n,
        "errors": 0, "clientErrors": 0, "latencyBuckets": buckets, "latencySum": 0.001 * n,
        "mirrored": n, "agreed": agreed, "compared": n, "notCompared": 0, "mirrorDropped": 0,
        "mirrorErrors": 0, "mirrorTimeouts": 0, "split": 0, "splitErrors": 0,
        "splitTimeouts": 0, "splitFallbacks": 0, "breakerTrips": 0, "selfCompared": 0,
        "selfAgreed": 0, "loaded": loaded,
    }  # fmt: skip
    cand = dict(doc, version="8", role="candidate", mirrored=0, agreed=0, compared=0)
    return dict(doc, inPlace=cand)


STABLE = {"rollout": {"stable": "7", "stableSlot": "a"}, "servedVersion": "7"}


def test_a_candidate_that_fits_runs_in_place_no_extra_pod() -> None:
    p = run(md(), STABLE)
    assert p.decision is not None
    status = p.decision.status
    assert status["placement"] == "InPlace" and status["placementReason"].startswith("fits")
    layout = p.layout
    assert layout.candidate_version is None and layout.candidate_replicas == 0
    assert layout.stable_replicas is None and layout.stable_version == "7"
    candidate = layout.traffic["candidate"]
    assert candidate == {"version": "8", "inPlace": {"liveLimit": 0, "priority": True}}
    assert status["phase"] == "Waiting"  # until the pods' Triton report it loaded


def test_the_pods_stage_it_first_and_their_report_decides() -> None:
    """Without a size: the traffic file asks the pods to stage the candidate (not load
    it); their agents' reports (size, memory) then decide, here that it does not fit."""
    first = run(md(), STABLE, in_place=None)
    assert first.decision is not None
    assert first.decision.status["placementReason"].startswith("waiting for the serving pods")
    epoch = first.decision.status["epoch"]
    assert first.layout.traffic == {"epoch": epoch, "stage": "8"}
    assert first.layout.candidate_replicas == 0
    prev = {"rollout": first.decision.status, "servedVersion": "7"}
    agent = {
        "staged": {"version": "8", "bytes": 50 * GiB},
        "memory": {"gpuTotalBytes": 80 * GiB, "gpuUsedBytes": 20 * GiB},
        "error": None,
    }
    reports = {p["metadata"]["name"]: dict(summary({}, epoch), agent=agent) for p in PODS}
    second = run(m := md(), prev, figures=reports, in_place=None)
    assert second.decision is not None
    assert second.decision.status["placement"] == "Separate"
    assert "bigger than half the GPU" in second.decision.status["placementReason"]
    assert second.layout.candidate_version == "8" and second.layout.candidate_replicas == 2
    assert "inPlace" not in second.layout.traffic["candidate"]
    assert m.spec.rollout.placement == "InPlace"


def test_a_pod_that_cannot_stage_it_sends_it_separate() -> None:
    agent = {"staged": None, "memory": {}, "error": "StorageError: access denied",
             "errorVersion": "8"}  # fmt: skip
    reports = {p["metadata"]["name"]: dict(summary({}, "x"), agent=agent) for p in PODS}
    out = run(md(), STABLE, figures=reports, in_place=None)
    assert out.decision is not None and out.decision.status["placement"] == "Separate"
    assert "access denied" in out.decision.status["placementReason"]


def test_wait_when_it_does_not_fit_and_the_spec_says_wait() -> None:
    full = (50 * GiB, FITS[1])
    p = run(md(onNoFit="Wait"), STABLE, in_place=full)
    assert p.decision is not None
    assert p.decision.status["placement"] == "InPlace"
    assert p.decision.status["placementReason"].startswith("waiting to run in place")
    assert p.layout.candidate_replicas == 0 and p.decision.status["phase"] == "Waiting"


def test_shadow_in_place_is_judged_on_the_in_place_figures_and_promoted_without_a_flip() -> None:
    m = md()
    first = run(m, STABLE)
    assert first.decision is not None
    prev = {"rollout": first.decision.status, "servedVersion": "7"}
    epoch = first.decision.status["epoch"]
    loaded = {"fraud": ["7"], "fraud.candidate": ["8"]}
    names = [p["metadata"]["name"] for p in PODS]
    # The pods' Triton loaded the candidate: the shadow starts.
    ready = run(m, prev, figures={n: summary(loaded, epoch) for n in names},
                now=NOW + timedelta(seconds=10))  # fmt: skip
    assert ready.decision is not None and ready.decision.status["phase"] == "Shadow"
    prev = {"rollout": ready.decision.status, "servedVersion": "7"}
    # 60 mirrored requests per pod, all agreeing: the same gates pass, promotion starts.
    good = {n: summary(loaded, epoch, 60, 60) for n in names}
    promoting = run(m, prev, figures=good, now=NOW + timedelta(seconds=20))
    assert promoting.decision is not None
    assert promoting.decision.status["phase"] == "Promoting"
    assert promoting.layout.traffic["promote"] == "8"
    assert promoting.layout.stable_replicas is None and promoting.layout.candidate_replicas == 0
    prev = {"rollout": promoting.decision.status, "servedVersion": "7"}
    # Every pod serves 8 as the model itself: complete, in the same slot.
    done = {n: summary({"fraud": ["8"]}, epoch, 60, 60) for n in names}
    complete = run(m, prev, figures=done, now=NOW + timedelta(seconds=30))
    assert complete.decision is not None
    status = complete.decision.status
    assert status["stable"] == "8" and status["stableSlot"] == "a"
    assert (complete.decision.history or [])[0]["outcome"] == "Promoted"


def test_a_disagreeing_candidate_in_place_is_rolled_back() -> None:
    m = md()
    first = run(m, STABLE)
    assert first.decision is not None
    epoch = first.decision.status["epoch"]
    loaded = {"fraud": ["7"], "fraud.candidate": ["8"]}
    names = [p["metadata"]["name"] for p in PODS]
    prev = {"rollout": first.decision.status, "servedVersion": "7"}
    shadow = run(m, prev, figures={n: summary(loaded, epoch) for n in names},
                 now=NOW + timedelta(seconds=10))  # fmt: skip
    assert shadow.decision is not None
    prev = {"rollout": shadow.decision.status, "servedVersion": "7"}
    bad = {n: summary(loaded, epoch, 60, 0) for n in names}
    out = run(m, prev, figures=bad, now=NOW + timedelta(seconds=20))
    assert out.decision is not None and out.decision.status["phase"] == "RolledBack"
    assert out.layout.traffic == {} and out.layout.candidate_replicas == 0


def test_no_placement_in_the_spec_changes_nothing() -> None:
    p = run(md(placement=None), STABLE)
    assert p.decision is not None and "placement" not in p.decision.status
    assert p.layout.candidate_replicas == 2


def test_a_candidate_that_fails_to_load_in_a_pod_is_rolled_back_with_the_agents_error() -> None:
    m = md()
    first = run(m, STABLE)
    assert first.decision is not None
    epoch = first.decision.status["epoch"]
    prev = {"rollout": first.decision.status, "servedVersion": "7"}
    why = "InPlaceError: Triton refused to load fraud.candidate: version 8 is UNAVAILABLE"
    agent = {"staged": {"version": "8", "bytes": GiB}, "memory": {}, "error": why,
             "errorVersion": "8"}  # fmt: skip
    reports = {p["metadata"]["name"]: dict(summary({"fraud": ["7"]}, epoch), agent=agent)
               for p in PODS}  # fmt: skip
    out = run(m, prev, figures=reports, now=NOW + timedelta(seconds=10))
    assert out.decision is not None and out.decision.status["phase"] == "RolledBack"
    assert "UNAVAILABLE" in out.decision.status["rejected"]["reason"]
    assert out.layout.traffic == {}  # the agents unload and remove it


def test_an_error_about_an_earlier_attempt_does_not_count() -> None:
    agent = {"staged": None, "memory": {}, "error": "StorageError: gone", "errorVersion": "6"}
    reports = {p["metadata"]["name"]: dict(summary({}, "x"), agent=agent) for p in PODS}
    out = run(md(), STABLE, figures=reports, in_place=None)
    assert out.decision is not None and out.decision.status["phase"] == "Waiting"
    assert out.decision.status["placementReason"].startswith("waiting for the serving pods")
