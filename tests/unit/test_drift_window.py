"""Streaming windows and the monitor's state machine (no I/O)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from modelops.drift.detectors import DetectorConfig
from modelops.drift.monitor import SUMMARY_SCHEMA, DriftMonitor, WindowConfig
from modelops.drift.reference import build_reference
from modelops.drift.window import ReferenceLayout, WindowAccumulator


@pytest.fixture(scope="module")
def ref20():
    rng = np.random.default_rng(100)
    return build_reference(rng.normal(size=(10_000, 20)), bins=20)


# -- accumulator -------------------------------------------------------------------


def test_counts_equal_one_shot_histogram_whatever_the_batching():
    rng = np.random.default_rng(0)
    ref = build_reference(rng.normal(size=(2000, 3)) * [1, 10, 0.1], bins=7)
    lay = ReferenceLayout(ref)
    x = rng.normal(size=(1234, 3)) * [1, 10, 0.1] + [0, 5, 0]
    acc = WindowAccumulator(lay, chunk_rows=64)
    i = 0
    for k in [1, 1, 3, 63, 64, 65, 500, 7]:  # below, at and above the chunk size
        acc.add(x[i : i + k])
        i += k
    acc.add(x[i:])
    w = acc.snapshot()
    assert w.samples == 1234
    for j, f in enumerate(ref.features):
        expected = np.bincount(np.searchsorted(f.edges, x[:, j], side="right"), minlength=f.n_bins)
        np.testing.assert_array_equal(w.counts[j, : f.n_bins], expected)
        assert w.counts[j, f.n_bins :].sum() == 0
    np.testing.assert_allclose(w.mean, x.mean(axis=0), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(w.var, x.var(axis=0, ddof=1), rtol=1e-9)


def test_snapshot_resets_and_keep_option():
    ref = build_reference(np.arange(100.0)[:, None], bins=4)
    acc = WindowAccumulator(ReferenceLayout(ref))
    acc.add(np.array([[1.0], [2.0]]))
    assert acc.snapshot(reset=False).samples == 2
    assert acc.snapshot().samples == 2
    w = acc.snapshot()
    assert w.samples == 0 and w.counts.sum() == 0 and w.var[0] == 0


def test_moments_stay_accurate_with_a_large_offset():
    offset = 1e9
    rng = np.random.default_rng(1)
    ref = build_reference(offset + rng.normal(size=(5000, 1)), bins=10)
    acc = WindowAccumulator(ReferenceLayout(ref))
    x = offset + rng.normal(0, 0.01, size=(3000, 1))
    acc.add(x)
    w = acc.snapshot()
    assert w.var[0] == pytest.approx(x[:, 0].var(ddof=1), rel=1e-4)


def test_non_finite_values_counted_nowhere():
    ref = build_reference(np.random.default_rng(2).normal(size=(100, 2)), bins=4)
    acc = WindowAccumulator(ReferenceLayout(ref))
    acc.add(np.array([[np.nan, 1.0], [np.inf, 2.0], [0.5, -np.inf], [0.1, 0.2]]))
    w = acc.snapshot()
    assert w.n.tolist() == [2, 3]
    assert w.counts[0].sum() == 2 and w.counts[1].sum() == 3
    assert np.isfinite(w.mean).all()
    assert w.mean[0] == pytest.approx(0.3)


def test_wrong_width_is_rejected():
    ref = build_reference(np.zeros((10, 2)) + np.arange(10)[:, None], bins=2)
    acc = WindowAccumulator(ReferenceLayout(ref))
    with pytest.raises(ValueError):
        acc.add(np.zeros((3, 3)))


# -- monitor ---------------------------------------------------------------------------


def test_windows_are_exact_even_when_batches_straddle_them(ref20):
    seen = []
    mon = DriftMonitor(
        ref20,
        DetectorConfig("psi"),
        WindowConfig(size=1000),
        on_evaluation=lambda ev, st, dt: seen.append(ev.samples),
    )
    rng = np.random.default_rng(3)
    evs = mon.add(rng.normal(size=(2500, 20)))
    assert [e.samples for e in evs] == [1000, 1000] and seen == [1000, 1000]
    assert mon.current_samples == 500
    evs = mon.add(rng.normal(size=(700, 20)))
    assert len(evs) == 1 and mon.current_samples == 200
    assert mon.state.evaluations == 3 and mon.total_samples == 3200


@pytest.mark.parametrize("method", ["psi", "ks", "js"])
def test_stationary_traffic_never_alarms_over_150_windows(ref20, method):
    mon = DriftMonitor(ref20, DetectorConfig(method), WindowConfig(size=1000))
    rng = np.random.default_rng(4)
    alarms = 0
    for _ in range(150):
        for ev in mon.add(rng.normal(size=(1000, 20))):
            alarms += ev.drifted
    assert mon.state.evaluations == 150
    assert alarms == 0
    assert not mon.state.drifted and mon.state.since is None


@pytest.mark.parametrize("method", ["psi", "ks", "js"])
@pytest.mark.parametrize("seed", [5, 6, 7])
def test_half_sigma_shift_in_one_of_20_features_alarms_within_two_windows(ref20, method, seed):
    mon = DriftMonitor(ref20, DetectorConfig(method), WindowConfig(size=1000))
    rng = np.random.default_rng(seed)
    mon.add(rng.normal(size=(3000, 20)))
    assert not mon.state.drifted
    for _ in range(2):
        x = rng.normal(size=(1000, 20))
        x[:, 13] += 0.5
        mon.add(x)
        if mon.state.drifted:
            break
    assert mon.state.drifted
    assert mon.state.evaluation is not None
    assert mon.state.evaluation.drifted_features == ["f13"]


def test_confirm_windows_and_since(ref20):
    t = [1000.0]
    mon = DriftMonitor(
        ref20,
        DetectorConfig("psi"),
        WindowConfig(size=500, confirm_windows=2),
        clock=lambda: t[0],
    )
    rng = np.random.default_rng(8)

    def window(shift):
        x = rng.normal(size=(500, 20))
        x[:, 0] += shift
        t[0] += 10
        mon.add(x)
        return mon.state

    assert not window(0).drifted
    st = window(2.0)
    assert not st.drifted and st.consecutive_drifted == 1  # not confirmed yet
    st = window(2.0)
    assert st.drifted and st.since == 1030.0
    st = window(2.0)
    assert st.drifted and st.since == 1030.0  # the streak keeps its start
    st = window(0)
    assert not st.drifted and st.since is None and st.consecutive_drifted == 0


def test_time_based_windows(ref20):
    t = [0.0]
    mon = DriftMonitor(
        ref20,
        DetectorConfig("ks"),
        WindowConfig(size=0, seconds=30, min_samples=50),
        clock=lambda: t[0],
    )
    rng = np.random.default_rng(9)
    mon.add(rng.normal(size=(40, 20)))
    assert mon.tick() is None  # not due
    assert mon.seconds_until_due() == 30
    t[0] = 31
    assert mon.tick() is None  # due, but too few rows: the window keeps growing
    mon.add(rng.normal(size=(5000, 20)))  # size=0: no count-based evaluation
    assert mon.state.evaluations == 0
    ev = mon.tick()
    assert ev is not None and ev.samples == 5040
    assert mon.seconds_until_due() == 30 and mon.current_samples == 0


def test_window_config_validation():
    with pytest.raises(ValueError):
        WindowConfig(size=0, seconds=0)
    with pytest.raises(ValueError):
        WindowConfig(confirm_windows=0)


def test_summary_document(ref20):
    t = [1_700_000_000.0]
    mon = DriftMonitor(ref20, DetectorConfig("psi"), WindowConfig(size=200), clock=lambda: t[0])
    before = mon.summary("fraud")
    assert before["schema"] == SUMMARY_SCHEMA
    assert before["score"] is None and before["drifted"] is False and before["since"] is None
    assert before["features"] == [] and before["window"]["evaluations"] == 0
    rng = np.random.default_rng(10)
    x = rng.normal(size=(250, 20))
    x[:, 2] = np.nan  # no samples for f2: its shift is NaN -> null in JSON
    x[:200, 5] += 3
    x[:5, 7] = np.inf  # 2.5% non-finite: under the 10% threshold
    mon.add(x)
    doc = json.loads(json.dumps(mon.summary("fraud"), allow_nan=False))
    assert doc["model"] == "fraud" and doc["method"] == "psi" and doc["threshold"] == 0.2
    assert doc["drifted"] is True and doc["since"] == "2023-11-14T22:13:20.000000Z"
    # f2 is all NaN: a drift signal of its own, not an empty feature.
    assert doc["drifted_features"] == ["f2", "f5"]
    assert doc["drifted_features_ratio"] == pytest.approx(0.1)
    assert doc["conclusive"] is True
    assert doc["window"]["samples"] == 200 and doc["window"]["current_samples"] == 50
    assert doc["samples"]["total"] == 250
    feats = {f["name"]: f for f in doc["features"]}
    assert list(feats) == ref20.names
    assert doc["score"] == pytest.approx(feats["f5"]["psi"]) and feats["f5"]["drifted"]
    assert feats["f2"]["n"] == 0 and feats["f2"]["mean_shift"] is None
    assert feats["f2"]["nonfinite"] == 200 and feats["f2"]["drifted"]
    assert feats["f7"]["nonfinite"] == 5 and not feats["f7"]["drifted"]
    assert set(feats["f0"]) == {
        "name",
        "score",
        "drifted",
        "psi",
        "js",
        "ks",
        "ks_pvalue",
        "mean_shift",
        "variance_ratio",
        "n",
        "nonfinite",
        "z_pvalue",
        "ksz",
    }


@pytest.mark.parametrize("method", ["psi", "ks", "js"])
def test_nan_rows_cannot_clear_a_drifted_state(ref20, method):
    """100 NaN rows after a drifted window, or 99 NaN and 1 shifted row: still drifted."""
    mon = DriftMonitor(ref20, DetectorConfig(method), WindowConfig(size=100))
    rng = np.random.default_rng(11)
    x = rng.normal(size=(100, 20))
    x[:, 3] += 4
    mon.add(x)
    assert mon.state.drifted
    mon.add(np.full((100, 20), np.nan))
    assert mon.state.drifted and mon.state.evaluation.features[0].nonfinite == 100
    y = np.full((100, 20), np.nan)
    y[0] = rng.normal(size=20) + 4
    mon.add(y)
    assert mon.state.drifted


def test_too_few_finite_values_is_inconclusive_not_clean(ref20):
    det = DetectorConfig("ks", min_finite=50, max_nonfinite_fraction=0.99)
    mon = DriftMonitor(ref20, det, WindowConfig(size=100))
    rng = np.random.default_rng(12)
    x = rng.normal(size=(100, 20))
    x[:, 3] += 4
    mon.add(x)
    assert mon.state.drifted
    y = rng.normal(size=(100, 20))
    y[:60, 9] = np.nan  # 40 finite values of f9 < 50; 60% NaN is allowed here
    mon.add(y)
    ev = mon.state.evaluation
    assert not ev.drifted and not ev.conclusive
    assert mon.state.drifted and mon.state.consecutive_drifted == 1  # unchanged
    mon.add(rng.normal(size=(100, 20)))  # a clean, complete window clears it
    assert mon.state.evaluation.conclusive and not mon.state.drifted


def test_nonfinite_share_above_threshold_is_drift(ref20):
    det = DetectorConfig("ks", max_nonfinite_fraction=0.2)
    mon = DriftMonitor(ref20, det, WindowConfig(size=100))
    x = np.random.default_rng(13).normal(size=(100, 20))
    x[:25, 6] = np.inf
    mon.add(x)
    ev = mon.state.evaluation
    assert ev.drifted_features == ["f6"] and mon.state.drifted
    f6 = ev.features[6]
    assert f6.nonfinite == 25 and f6.nonfinite_fraction == pytest.approx(0.25)
