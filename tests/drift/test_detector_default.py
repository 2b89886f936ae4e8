"""The default detector (ksz) and the statistics replicas export for a merged decision.

Pure: monitors fed synthetic rows, no processes. The detection power and
false-alarm figures over many windows are in bench/drift/detection.py.
"""

from __future__ import annotations

import itertools
import json

import numpy as np

from modelops.drift.detectors import DetectorConfig, evaluate
from modelops.drift.monitor import DriftMonitor, WindowConfig
from modelops.drift.reference import build_reference
from modelops.drift.window import ReferenceLayout

N_FEATURES = 20
WINDOW = 1000


def _reference() -> object:
    return build_reference(np.random.default_rng(42).normal(size=(10_000, N_FEATURES)), bins=20)


def test_default_is_ksz_and_finds_a_quarter_sigma_shift_in_one_of_20_features():
    ref = _reference()
    assert DetectorConfig().method == "ksz"
    rng = np.random.default_rng(1)
    mon = DriftMonitor(ref, DetectorConfig(), WindowConfig(size=WINDOW))
    for _ in range(20):  # stationary: no alarm
        mon.add(rng.normal(size=(WINDOW, N_FEATURES)))
        assert not mon.state.drifted
    x = rng.normal(size=(2 * WINDOW, N_FEATURES))
    x[:, 7] += 0.25
    mon.add(x)
    assert mon.state.drifted
    assert mon.state.evaluation is not None
    assert mon.state.evaluation.drifted_features == ["f7"]
    # psi at its default threshold does not see it (why the default changed).
    psi = DriftMonitor(ref, DetectorConfig("psi"), WindowConfig(size=WINDOW))
    psi.add(x)
    assert not psi.state.drifted


def test_ksz_spends_alpha_over_windows_summing_to_at_most_alpha():
    cfg = DetectorConfig()
    spent = [cfg.window_alpha(k) for k in range(1, 200_001)]
    assert all(a > b for a, b in itertools.pairwise(spent))  # decreasing
    # The tail past 200,000 windows is below 1/ln(200,001) of the norm: bounded by alpha.
    assert sum(spent) + cfg.ks_alpha / (2.11 * np.log(200_001)) <= cfg.ks_alpha
    assert DetectorConfig("ks").window_alpha(5) == DetectorConfig("ks").ks_alpha


def test_replica_histograms_add_up_to_the_histogram_of_all_their_traffic():
    """Two replicas' cumulative statistics, summed bin by bin, are exactly those of
    one monitor that saw all the rows: a merged decision equals the decision on the
    whole traffic."""
    ref = _reference()
    rng = np.random.default_rng(2)
    x = rng.normal(size=(3000, N_FEATURES))
    x[:, 3] += 0.3
    x[::97, 5] = np.nan
    whole = DriftMonitor(ref, DetectorConfig(), WindowConfig(size=WINDOW))
    a = DriftMonitor(ref, DetectorConfig(), WindowConfig(size=WINDOW))
    b = DriftMonitor(ref, DetectorConfig(), WindowConfig(size=WINDOW))
    whole.add(x)
    a.add(x[:1700])  # replicas see different shares and window boundaries
    b.add(x[1700:])
    docs = [json.loads(json.dumps(m.histograms("s"))) for m in (whole, a, b)]
    assert docs[0]["schema"] == "modelops.drift.histograms/v1"
    assert docs[0]["rows"] == docs[1]["rows"] + docs[2]["rows"] == 3000
    for fw, fa, fb in zip(*(d["features"] for d in docs), strict=True):
        assert fw["bins"] == [p + q for p, q in zip(fa["bins"], fb["bins"], strict=True)]
        assert (fw["n"], fw["nonfinite"]) == (fa["n"] + fb["n"], fa["nonfinite"] + fb["nonfinite"])
        assert np.isclose(fw["sum"], fa["sum"] + fb["sum"])
        assert np.isclose(fw["sumsq"], fa["sumsq"] + fb["sumsq"])

    # The merged statistics evaluated as one window: f3 drifts, nothing else.
    lay = ReferenceLayout(ref)
    feats = docs[0]["features"]
    counts = np.zeros_like(lay.counts)
    for i, f in enumerate(feats):
        counts[i, : len(f["bins"])] = f["bins"]
    n = np.array([f["n"] for f in feats], dtype=float)
    m1 = np.array([f["sum"] for f in feats]) / n
    var = (np.array([f["sumsq"] for f in feats]) - n * m1 * m1) / (n - 1)
    mean = m1 + np.array([f["center"] for f in feats])
    ev = evaluate(
        lay.names, lay.counts, counts, lay.mask, lay.mean, lay.var, n, mean, var, 3000,
        DetectorConfig(), win_nonfinite=np.array([f["nonfinite"] for f in feats]),
    )  # fmt: skip
    assert ev.drifted_features == ["f3"]
