"""placement InPlace through the gated planner (render/gating/slot_plan.place + render/inplace.py):
the same gating core, observed and rendered for a candidate inside the serving pods."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from modelops.api.modeldeployment import ModelDeployment
from modelops.render.gating.slot_plan import place
from modelops.render.slots import deployment_key
from tests.unit.test_render_fixtures import deployment, md_body, pod

NOW = datetime(2026, 12, 7, 8, 0, tzinfo=UTC)
GiB = 1 << 30
PODS = [pod(f"fraud-a-{i}", version="7") for i in range(2)]
FITS = (2 * GiB, {p["metadata"]["name"]: {"gpuTotalBytes": 80 * GiB, "gpuUsedBytes": 20 * GiB}
                  for p in PODS})  # fmt: skip


def md(placement: str | None = "InPlace", version: str = "8", **in_place: Any) -> ModelDeployment:
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
        model={"storageUri": "s3://models/fraud", "format": "triton", "version": version},
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


def promoted_in_place(m: ModelDeployment):
    """Run a rollout of 8 in place to completion; returns the completing placement."""
    first = run(m, STABLE)
    assert first.decision is not None
    epoch = first.decision.status["epoch"]
    names = [p["metadata"]["name"] for p in PODS]
    loaded = {"fraud": ["7"], "fraud.candidate": ["8"]}
    prev = {"rollout": first.decision.status, "servedVersion": "7"}
    step = run(m, prev, figures={n: summary(loaded, epoch) for n in names},
               now=NOW + timedelta(seconds=10))  # fmt: skip
    for figures, dt in (
        ({n: summary(loaded, epoch, 60, 60) for n in names}, 20),
        ({n: summary({"fraud": ["8"]}, epoch, 60, 60) for n in names}, 30),
    ):
        assert step.decision is not None
        prev = {"rollout": step.decision.status, "servedVersion": "7"}
        step = run(m, prev, figures=figures, now=NOW + timedelta(seconds=dt))
    assert step.decision is not None and step.decision.status["stable"] == "8"
    return step


def test_an_in_place_promotion_keeps_the_template_and_names_the_served_version() -> None:
    """The template keeps version 7 (a new one would restart every pod); the traffic
    file names 8 as served, from the reconcile whose status names 8, and on every later
    one (a pod that starts pulls 8)."""
    m = md()
    complete = promoted_in_place(m)
    assert complete.layout.stable_version == "7" and complete.layout.stable_slot == "a"
    assert complete.layout.traffic == {"served": "8"}
    assert complete.decision is not None
    prev = {"rollout": complete.decision.status, "servedVersion": "8"}
    # Later reconciles, the pods still created from the template of 7 and serving 8.
    for dt in (60, 120):
        later = run(m, prev, figures=None, now=NOW + timedelta(seconds=dt))
        assert later.decision is not None
        assert later.decision.status["phase"] == "Idle", later.decision.status
        assert later.decision.status["stable"] == "8"
        assert later.layout.stable_version == "7" and later.layout.traffic == {"served": "8"}
        assert later.layout.candidate_version is None
        prev = {"rollout": later.decision.status, "servedVersion": "8"}


def test_the_served_version_is_not_named_before_status_names_it() -> None:
    """While promoting (status still names 7 as stable) the file asks the pods to promote
    but does not name 8 as served: a pod that starts then starts on 7."""
    m = md()
    first = run(m, STABLE)
    assert first.decision is not None
    assert "served" not in first.layout.traffic
    epoch = first.decision.status["epoch"]
    names = [p["metadata"]["name"] for p in PODS]
    loaded = {"fraud": ["7"], "fraud.candidate": ["8"]}
    prev = {"rollout": first.decision.status, "servedVersion": "7"}
    shadow = run(m, prev, figures={n: summary(loaded, epoch) for n in names},
                 now=NOW + timedelta(seconds=10))  # fmt: skip
    assert shadow.decision is not None
    prev = {"rollout": shadow.decision.status, "servedVersion": "7"}
    good = {n: summary(loaded, epoch, 60, 60) for n in names}
    promoting = run(m, prev, figures=good, now=NOW + timedelta(seconds=20))
    assert promoting.decision is not None
    assert promoting.decision.status["phase"] == "Promoting"
    assert promoting.decision.status["stable"] == "7"
    assert promoting.layout.traffic["promote"] == "8" and "served" not in promoting.layout.traffic
    assert promoting.layout.stable_version == "7"


def test_a_separate_rollout_still_renders_the_new_version_into_the_template() -> None:
    """placement Separate (or none): the template carries the version, as before; a
    promoted candidate's slot becomes the stable one."""
    m = md(placement=None)
    first = run(m, STABLE)
    assert first.decision is not None and first.layout.candidate_version == "8"
    assert "served" not in first.layout.traffic
    assert first.layout.stable_version == "7"
    # After the promotion a later reconcile (the spec's version is status's): no pin.
    prev = {"rollout": {"stable": "8", "stableSlot": "a"}, "servedVersion": "8"}
    later = run(m, prev, now=NOW + timedelta(seconds=60))
    assert later.layout.stable_version == "8" and "served" not in later.layout.traffic


def test_a_rolled_back_in_place_promotion_names_no_served_version() -> None:
    """Status keeps 7: the template's version, nothing in the file; the agents of pods
    that promoted swap back to 7 (drift/inplace_agent.py)."""
    prev = {"rollout": {"stable": "7", "stableSlot": "a", "phase": "RolledBack"},
            "servedVersion": "7"}  # fmt: skip
    out = run(md(version="7"), prev, now=NOW + timedelta(seconds=60))
    assert out.layout.stable_version == "7" and "served" not in out.layout.traffic
