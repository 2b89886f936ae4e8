"""The plugin's pure part: gates against thresholds, evidence, reasons in words, patches."""

from __future__ import annotations

import copy

import pytest

from modelops.plugin import view
from tests.plugin.objects import with_status


@pytest.fixture
def md() -> dict:
    return with_status("team-a")


def _gates(md: dict) -> dict[str, tuple[str, str, str]]:
    return {g[0]: g[1:] for g in view.gates(md)}


def test_each_configured_gate_shows_the_state_its_sequential_test_decides_on(md):
    gates = _gates(md)
    assert gates["minRequests"] == ("812 requests", ">= 500", "pass")
    assert gates["maxErrorRateIncrease"] == (
        "+0.000245 (between -0.00302 and 0.0129)",
        "<= 0.005 at 95%",
        "waiting (~2526 more)",
    )
    # Not the point p99 ratio: the share of requests slower than 1.3x the stable p99,
    # which the latency gate (sequential.quantile_ratio) bounds by 1%.
    assert gates["maxLatencyP99Ratio"] == (
        "0% slower (p99 ratio 1.07)",
        "<= 1% slower than 1.3x stable p99, at 95%",
        "waiting (~221 more)",
    )
    assert gates["minAgreement"] == (
        "0.982 over 812 compared (between 0.959 and 0.994)",
        ">= 0.97 at 95%",
        "waiting (~1909 more)",
    )
    assert gates["evalMetric valAccuracy"] == (
        "0.931 vs stable 0.927",
        "regression <= 0.005",
        "pass",
    )


def _hist(n: int, seconds: float) -> tuple[tuple[float, int], ...]:
    from modelops.drift.figures import LATENCY_BOUNDS

    return tuple((b, n if seconds <= b else 0) for b in (*LATENCY_BOUNDS, float("inf")))


def _judged(md: dict, stable_s: float, cand_s: float, cand_errors: int, agreed: int) -> dict:
    """The verdict the operator's own analysis writes for these figures (so the rows are
    checked against the real sentences, not hand-written ones)."""
    from modelops.render.gating.analysis import evaluate
    from modelops.render.gating.inputs import ObservedFigures, VersionFigures

    n = 3000
    figures = ObservedFigures(
        stable=VersionFigures(
            requests=20000, errors=0, latency_p99_s=stable_s, latency_buckets=_hist(20000, stable_s)
        ),
        candidate=VersionFigures(
            requests=n, errors=cand_errors, latency_p99_s=cand_s, latency_buckets=_hist(n, cand_s)
        ),
        mirrored=n,
        agreed=agreed,
    )
    verdict = evaluate(view.analysis_spec(md), figures, mirroring=True)
    analysis = md["status"]["rollout"]["analysis"]
    analysis["verdict"] = verdict.text
    analysis["mirrored"] = n
    analysis["candidate"] = {"requests": n, "errors": cand_errors}
    return md


def test_decided_gates_show_the_bound_they_were_decided_on(md):
    gates = _gates(_judged(md, stable_s=0.03, cand_s=0.03, cand_errors=0, agreed=3000))
    assert gates["maxErrorRateIncrease"][0].startswith("+0 (at most ")
    assert gates["maxErrorRateIncrease"][2] == "pass"
    assert gates["maxLatencyP99Ratio"] == (
        "<= 1% slower (p99 ratio 1)",
        "<= 1% slower than 1.3x stable p99, at 95%",
        "pass",
    )
    assert gates["minAgreement"][0].startswith("1 over 3000 compared (at least ")
    assert gates["minAgreement"][2] == "pass"


def test_a_figure_past_its_threshold_fails(md):
    # Every candidate request ~10x slower, 10% errors, 20% disagreement.
    md = _judged(md, stable_s=0.003, cand_s=0.03, cand_errors=300, agreed=2400)
    md["status"]["rollout"]["candidateSource"]["metrics"]["valAccuracy"] = 0.9
    gates = _gates(md)
    verdict = md["status"]["rollout"]["analysis"]["verdict"]
    assert gates["minAgreement"][2] == "FAIL", verdict
    assert gates["maxErrorRateIncrease"][2] == "FAIL", verdict
    assert gates["maxLatencyP99Ratio"][2] == "FAIL", verdict
    assert gates["maxLatencyP99Ratio"][0].startswith("> 1% slower"), verdict
    assert gates["evalMetric valAccuracy"][2] == "FAIL"


def test_below_min_requests_every_live_gate_waits(md):
    md["status"]["rollout"]["analysis"]["candidate"]["requests"] = 100
    md["status"]["rollout"]["analysis"]["mirrored"] = 100
    md["status"]["rollout"]["analysis"]["verdict"] = (
        "100/500 requests (minRequests); 100/500 mirrored requests compared (minRequests)"
    )
    gates = _gates(md)
    assert {gates[g][2] for g in ("minRequests", "maxErrorRateIncrease", "minAgreement")} == {
        "waiting"
    }
    needed = view.evidence_needed(md)
    assert "400 more candidate requests (minRequests 500, seen 100)" in needed
    assert "1900 more mirrored requests (shadow.requests 2000)" in needed


def test_evidence_is_listed_only_while_a_candidate_is_judged(md):
    assert view.evidence_needed(md) == [
        "shadow.duration 30m from 2026-12-01T11:02:00Z",
        "1188 more mirrored requests (shadow.requests 2000)",
    ]
    idle = copy.deepcopy(md)
    idle["status"]["rollout"] = {"phase": "Idle", "stable": "7"}
    assert view.evidence_needed(idle) == []
    assert "Gates:" not in view.render_status(idle)


def test_why_explains_a_stalled_object_in_documented_words(md):
    md["status"]["conditions"] = [
        {"type": "Ready", "status": "False", "reason": "ImagePullBackOff", "message": "x"},
        {"type": "Stalled", "status": "True", "reason": "ImagePullBackOff", "message": "bad"},
    ]
    text = view.render_why(md)
    assert "is NOT ready: ImagePullBackOff." in text
    assert "It is stalled, and needs someone to act: ImagePullBackOff." in text
    # "Same as Stalled." in the Ready table resolves to the Stalled meaning.
    assert "Same as Stalled" not in text
    assert "cannot be pulled" in text
    assert "Detail: bad" in text


def test_why_says_when_status_lags_the_spec(md):
    md["metadata"]["generation"] = 2
    assert "generation 1; the spec is at generation 2" in view.render_why(md)


def test_promote_and_abort_name_the_candidate_and_clear_the_opposite(md):
    assert view.control_patch(md, "promote") == {"spec": {"rollout": {"control": {"promote": "8"}}}}
    md["spec"]["rollout"]["control"] = {"promote": "8"}
    assert view.control_patch(md, "abort") == {
        "spec": {"rollout": {"control": {"abort": "8", "promote": None}}}
    }
    assert view.control_patch(md, "abort", "9") == {
        "spec": {"rollout": {"control": {"abort": "9"}}}
    }
    assert view.control_patch(md, "pause")["spec"]["rollout"]["control"] == {"paused": True}
    assert view.control_patch(md, "resume")["spec"]["rollout"]["control"] == {"paused": False}


def test_promote_without_a_candidate_is_refused(md):
    md["status"]["rollout"] = {"phase": "Idle", "stable": "7"}
    with pytest.raises(view.PluginError, match="no candidate under analysis"):
        view.control_patch(md, "promote")
