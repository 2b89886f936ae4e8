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

from modelops.drift.detectors import DetectorConfig
from modelops.drift.monitor import DriftMonitor, WindowConfig
from modelops.drift.reference import build_reference
from modelops.render.drift_merge import MergedDrift, Refused, detector_config, parse, step

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
