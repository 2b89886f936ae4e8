"""The operator's drift decision on the replicas' merged histograms (render/drift_merge.py).

Real sidecar monitors (modelops.drift.monitor.DriftMonitor) produce the
`/drift/histograms` documents, round-tripped through JSON as the sidecar client
receives them; the merge and the decision are the operator's pure code.
"""

from __future__ import annotations

import copy
import json
from statistics import NormalDist

import numpy as np
import pytest

from modelops.api.modeldeployment import DriftStatus
from modelops.drift.detectors import DetectorConfig
from modelops.drift.monitor import DriftMonitor, WindowConfig
from modelops.drift.reference import build_reference
from modelops.render.drift_merge import (
    MAX_REMEMBERED,
    MergedDrift,
    Refused,
    detector_config,
    parse,
    resume,
    step,
)
from modelops.render.status import drift_status

N_FEATURES = 20
WINDOW = 1000
NOW = "2026-01-01T00:00:00Z"


def _quantiles(rows: int, seed: int) -> np.ndarray:
    """Standard normal values at evenly spaced quantiles, each column in its own
    order: the distribution without sampling noise, so that the z of a shift is the
    computed one and the test's margins are known."""
    q = np.array([NormalDist().inv_cdf((i + 0.5) / rows) for i in range(rows)])
    rng = np.random.default_rng(seed)
    return np.stack([rng.permutation(q) for _ in range(N_FEATURES)], axis=1)


@pytest.fixture(scope="module")
def reference():
    return build_reference(_quantiles(100_000, 0), bins=20)


def _sidecar(reference) -> DriftMonitor:
    return DriftMonitor(reference, DetectorConfig(), WindowConfig(size=WINDOW))


def _doc(monitor: DriftMonitor, sidecar: str) -> dict:
    return json.loads(json.dumps(monitor.histograms(sidecar)))


def test_two_replicas_each_below_the_threshold_are_detected_together(reference):
    """0.12 sigma in one feature: z = 3.8 on one replica's 1,000 rows (the ksz threshold
    at window 1 is z = 4.4), z = 5.3 on the two replicas' 2,000 rows merged."""
    rows = _quantiles(WINDOW, 1)
    rows[:, 7] += 0.12
    a, b = _sidecar(reference), _sidecar(reference)
    a.add(rows)
    b.add(rows[::-1].copy())
    # Judged one replica at a time (each sidecar's own window), nobody sees it.
    assert a.state.evaluations == b.state.evaluations == 1
    assert not a.state.drifted and not b.state.drifted
    assert not a.summary()["drifted"] and not b.summary()["drifted"]

    state = step(
        MergedDrift(),
        {"pod-a": _doc(a, "a"), "pod-b": _doc(b, "b")},
        config=DetectorConfig(),
        window=WINDOW,
        now=NOW,
    )
    assert state.refused == {}
    result = state.result
    assert result is not None
    assert result["drifted"] is True
    assert result["driftedFeatures"] == ["f7"]
    assert (result["samples"], result["replicas"], result["windows"]) == (2 * WINDOW, 2, 1)
    assert result["since"] == NOW
    # Only one replica's share of the rows: below the threshold again.
    alone = step(
        MergedDrift(), {"pod-a": _doc(a, "a")}, config=DetectorConfig(), window=WINDOW, now=NOW
    )
    assert alone.result is not None and alone.result["drifted"] is False


def test_merged_decision_false_alarms_stay_under_the_life_budget(reference):
    """Stationary traffic over 2 replicas, 300 merged windows: the merged monitor is one
    monitor (alpha spent over its windows, 0.001 over its life), so no alarm."""
    rng = np.random.default_rng(5)
    a, b = _sidecar(reference), _sidecar(reference)
    state = MergedDrift()
    for _ in range(300):
        a.add(rng.normal(size=(WINDOW // 2, N_FEATURES)))
        b.add(rng.normal(size=(WINDOW // 2, N_FEATURES)))
        state = step(
            state,
            {"p0": _doc(a, "a"), "p1": _doc(b, "b")},
            config=DetectorConfig(),
            window=WINDOW,
            now=NOW,
        )
        assert state.result is not None and state.result["samples"] == WINDOW
        assert not state.result["drifted"], state.result
    assert state.windows == 300
    # The 300th window was allowed a smaller share of alpha than the first.
    assert state.result["windowAlpha"] < DetectorConfig().window_alpha(1) / 100


def test_counts_are_new_rows_only_per_sidecar_and_restarts_start_from_zero(reference):
    rng = np.random.default_rng(3)
    a = _sidecar(reference)
    a.add(rng.normal(size=(600, N_FEATURES)))
    first = _doc(a, "a")
    cfg = DetectorConfig()
    state = step(MergedDrift(), {"p": first}, config=cfg, window=WINDOW, now=NOW)
    assert state.pending is not None and state.pending.rows == 600 and state.result is None
    # The same answer again (a poll that found nothing new) adds nothing.
    again = step(state, {"p": first, "q": copy.deepcopy(first)}, config=cfg, window=WINDOW, now=NOW)
    assert again.pending is not None and again.pending.rows == 600
    # 300 more rows: only they are new.
    a.add(rng.normal(size=(300, N_FEATURES)))
    state = step(state, {"p": _doc(a, "a")}, config=cfg, window=WINDOW, now=NOW)
    assert state.pending is not None and state.pending.rows == 900
    # The sidecar restarts (new id, counters from zero): all it reports is new.
    restarted = _sidecar(reference)
    restarted.add(rng.normal(size=(200, N_FEATURES)))
    state = step(state, {"p": _doc(restarted, "a2")}, config=cfg, window=WINDOW, now=NOW)
    assert state.result is not None and state.result["samples"] == 1100
    assert state.pending is not None and state.pending.rows == 0
    # Counters going backwards under the same id are refused, never subtracted.
    fewer = _sidecar(reference)
    fewer.add(rng.normal(size=(100, N_FEATURES)))
    state = step(state, {"p": _doc(fewer, "a2")}, config=cfg, window=WINDOW, now=NOW)
    assert "backwards" in state.refused["p"]
    assert state.pending is not None and state.pending.rows == 0


def test_documents_that_do_not_add_up_or_disagree_on_the_reference_are_refused(reference):
    a = _sidecar(reference)
    a.add(np.random.default_rng(4).normal(size=(500, N_FEATURES)))
    good = _doc(a, "a")

    def broken(change) -> dict:
        doc = copy.deepcopy(good)
        change(doc)
        return doc

    cases = {
        "rows": lambda d: d.update(rows=d["rows"] + 1),
        "bins": lambda d: d["features"][0]["bins"].__setitem__(0, d["features"][0]["bins"][0] + 5),
        "negative": lambda d: d["features"][1]["bins"].__setitem__(0, -1),
        "width": lambda d: d["features"][2]["bins"].append(0),
        "nan": lambda d: d["features"][3].update(sum="NaN"),
        "id": lambda d: d.update(sidecar=""),
    }
    for what, change in cases.items():
        with pytest.raises(Refused):
            parse(broken(change))
        state = step(
            MergedDrift(), {"p": broken(change)}, config=DetectorConfig(), window=10, now=NOW
        )
        assert "p" in state.refused, what
        assert state.pending is None, what

    other = broken(lambda d: d["features"][0]["reference"].update(var=2.0))
    b = _sidecar(reference)
    b.add(np.random.default_rng(6).normal(size=(500, N_FEATURES)))
    state = step(
        MergedDrift(),
        {"p": good, "q": _doc(b, "b"), "x": other | {"sidecar": "x"}},
        config=DetectorConfig(),
        window=WINDOW,
        now=NOW,
    )
    assert state.refused == {"x": "reports another reference than the other replicas"}
    assert state.result is not None and state.result["samples"] == 1000


def test_detector_config_follows_the_spec_like_the_sidecar_flags():
    assert detector_config("ksz", None) == DetectorConfig()
    assert detector_config("psi", 0.3).psi_threshold == 0.3
    assert detector_config("js", 0.1).js_threshold == 0.1
    assert detector_config("ks", 0.01).ks_alpha == 0.01


def _written(state: MergedDrift) -> dict:
    """status.drift as the operator writes it from ``state``'s last decision, checked
    against the API's schema and round-tripped through JSON like a read from the server."""
    assert state.result is not None
    doc = json.loads(json.dumps(drift_status(state.result, None)))
    DriftStatus.model_validate(doc)
    return doc


def test_a_restarted_operator_goes_on_from_status_without_a_fresh_budget_or_a_row_counted_twice(
    reference,
):
    """Windows are numbered on from status (the alpha spent per window keeps shrinking),
    and the sidecars' rows up to the restart are not judged again."""
    rng = np.random.default_rng(8)
    a, b = _sidecar(reference), _sidecar(reference)
    cfg = DetectorConfig()
    state = MergedDrift()
    for _ in range(5):
        a.add(rng.normal(size=(WINDOW // 2, N_FEATURES)))
        b.add(rng.normal(size=(WINDOW // 2, N_FEATURES)))
        state = step(
            state, {"p": _doc(a, "a"), "q": _doc(b, "b")}, config=cfg, window=WINDOW, now=NOW
        )
    assert state.windows == 5
    written = _written(state)
    assert (written["windows"], written["sidecars"]) == (5, ["a", "b"])
    # Rows that were pending when the operator died.
    a.add(rng.normal(size=(300, N_FEATURES)))
    docs = {"p": _doc(a, "a"), "q": _doc(b, "b")}

    # What a restart did before: window 1 again, and 5,300 rows judged again at once.
    forgetful = step(MergedDrift(), docs, config=cfg, window=WINDOW, now=NOW)
    assert forgetful.result is not None and forgetful.result["windows"] == 1
    assert forgetful.result["samples"] == 5 * WINDOW + 300

    resumed = resume(written)
    assert resumed.result is not None and resumed.result["drifted"] is False
    state = step(resumed, docs, config=cfg, window=WINDOW, now=NOW)
    assert state.pending is not None and state.pending.rows == 0  # baselines only
    assert state.result == resumed.result  # status unchanged until the next window
    a.add(rng.normal(size=(WINDOW // 2, N_FEATURES)))
    b.add(rng.normal(size=(WINDOW // 2, N_FEATURES)))
    state = step(state, {"p": _doc(a, "a"), "q": _doc(b, "b")}, config=cfg, window=WINDOW, now=NOW)
    assert state.result is not None
    assert (state.result["windows"], state.result["samples"]) == (6, WINDOW)
    assert state.result["windowAlpha"] == pytest.approx(cfg.window_alpha(6))
    # A sidecar started after the restart is new: everything it reports counts.
    c = _sidecar(reference)
    c.add(rng.normal(size=(200, N_FEATURES)))
    state = step(state, {"p": _doc(a, "a"), "r": _doc(c, "c")}, config=cfg, window=WINDOW, now=NOW)
    assert state.pending is not None and state.pending.rows == 200


def test_a_resumed_drift_stays_drifted_and_a_new_reference_starts_over(reference):
    rows = _quantiles(WINDOW, 1)
    rows[:, 3] += 0.5
    a = _sidecar(reference)
    a.add(rows)
    cfg = DetectorConfig()
    state = step(MergedDrift(), {"p": _doc(a, "a")}, config=cfg, window=WINDOW, now=NOW)
    assert state.result is not None and state.result["drifted"] is True
    resumed = resume(_written(state))
    assert resumed.drifted and resumed.since == NOW and resumed.windows == 1
    assert resumed.result is not None and "f3" in resumed.result["features"]

    # The replicas now bin against another reference (a new model version): the
    # resumed windows were judged against the old one, so the count starts over.
    other = build_reference(_quantiles(100_000, 9) * 2.0, bins=20)
    fresh = DriftMonitor(other, DetectorConfig(), WindowConfig(size=WINDOW))
    fresh.add(_quantiles(WINDOW, 2) * 2.0)
    state = step(resumed, {"p": _doc(fresh, "a")}, config=cfg, window=WINDOW, now=NOW)
    assert state.result is not None and state.result["windows"] == 1
    assert state.result["drifted"] is False and state.result["samples"] == WINDOW


def test_status_that_cannot_be_the_operators_is_not_resumed(reference):
    """Status can be patched by anyone allowed to: each field is checked, and a status
    written before decisions were resumable starts a fresh state."""
    a = _sidecar(reference)
    a.add(np.random.default_rng(2).normal(size=(WINDOW, N_FEATURES)))
    state = step(
        MergedDrift(), {"p": _doc(a, "a")}, config=DetectorConfig(), window=WINDOW, now=NOW
    )
    good = _written(state)
    cases = {
        "windows": {"windows": -1},
        "windows ": {"windows": 10**12},
        "windows  ": {"windows": True},
        "reference": {"reference": 7},
        "sidecars": {"sidecars": "a"},
        "sidecars ": {"sidecars": [f"s{i}" for i in range(MAX_REMEMBERED + 1)]},
        "sidecars  ": {"sidecars": ["x" * 65]},
        "score": {"score": "high"},
    }
    for what, change in cases.items():
        with pytest.raises(Refused, match=what.strip()):
            resume(good | change)
    assert resume({"score": 0.1, "drifted": False}) == MergedDrift()
    assert resume(None) == MergedDrift()


def test_a_sidecar_back_after_a_readiness_blip_adds_only_its_new_rows(reference):
    rng = np.random.default_rng(11)
    a, b = _sidecar(reference), _sidecar(reference)
    cfg = DetectorConfig()
    a.add(rng.normal(size=(400, N_FEATURES)))
    b.add(rng.normal(size=(100, N_FEATURES)))
    state = step(
        MergedDrift(), {"p": _doc(a, "a"), "q": _doc(b, "b")}, config=cfg, window=WINDOW, now=NOW
    )
    assert state.pending is not None and state.pending.rows == 500
    # Pod p is not ready for one poll; its sidecar keeps its counters.
    b.add(rng.normal(size=(100, N_FEATURES)))
    state = step(state, {"q": _doc(b, "b")}, config=cfg, window=WINDOW, now=NOW)
    a.add(rng.normal(size=(50, N_FEATURES)))
    state = step(state, {"p": _doc(a, "a"), "q": _doc(b, "b")}, config=cfg, window=WINDOW, now=NOW)
    assert state.pending is not None and state.pending.rows == 650
    # Memory stays bounded: old departed sidecars are dropped, the oldest first.
    for i in range(MAX_REMEMBERED + 5):
        m = _sidecar(reference)
        m.add(rng.normal(size=(1, N_FEATURES)))
        state = step(
            state, {"p": _doc(a, "a"), f"x{i}": _doc(m, f"x{i}")}, config=cfg, window=10**9, now=NOW
        )
    assert len(state.seen) == MAX_REMEMBERED
    assert "a" in state.seen and "b" not in state.seen and "x0" not in state.seen
