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


def test_each_configured_gate_shows_its_figure_threshold_and_result(md):
    gates = _gates(md)
    assert gates["minRequests"] == ("812 requests", ">= 500", "pass")
    assert gates["maxErrorRateIncrease"][1:] == ("<= 0.005", "pass")
    assert gates["maxLatencyP99Ratio"] == ("-", "<= 1.3x", "waiting")
    assert gates["minAgreement"] == ("0.982 over 812 compared", ">= 0.97", "pass")
    assert gates["evalMetric valAccuracy"] == (
        "0.931 vs stable 0.927",
        "regression <= 0.005",
        "pass",
    )


def test_a_figure_past_its_threshold_fails(md):
    md["status"]["rollout"]["analysis"]["agreement"] = 0.9
    md["status"]["rollout"]["analysis"]["candidate"]["errors"] = 40
    md["status"]["rollout"]["candidateSource"]["metrics"]["valAccuracy"] = 0.9
    gates = _gates(md)
    assert gates["minAgreement"][2] == "FAIL"
    assert gates["maxErrorRateIncrease"][2] == "FAIL"
    assert gates["evalMetric valAccuracy"][2] == "FAIL"


def test_below_min_requests_every_live_gate_waits(md):
    md["status"]["rollout"]["analysis"]["candidate"]["requests"] = 100
    md["status"]["rollout"]["analysis"]["mirrored"] = 100
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
