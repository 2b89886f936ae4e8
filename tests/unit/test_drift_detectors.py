"""Drift test math: PSI, Jensen-Shannon, binned KS and its p-value, the decision."""

from __future__ import annotations

import math

import numpy as np
import pytest

from modelops.drift.detectors import (
    DetectorConfig,
    evaluate,
    js_divergence,
    kolmogorov_sf,
    ks_pvalue,
    ks_statistic,
    proportions,
    psi,
    smoothed_proportions,
)
from modelops.drift.reference import build_reference
from modelops.drift.window import ReferenceLayout, WindowAccumulator

# -- PSI ---------------------------------------------------------------------


def test_psi_of_identical_histograms_is_zero():
    c = np.array([[10, 0, 30, 60], [1, 1, 1, 1]])
    assert psi(c, c) == pytest.approx([0.0, 0.0], abs=1e-15)
    # Same shape, different totals: identical distributions (no empty bin to smooth).
    d = np.array([[100, 300, 600]])
    assert psi(d, d * 7)[0] == pytest.approx(0.0, abs=1e-4)


def test_psi_known_value_with_negligible_smoothing():
    ref = np.array([5000, 5000])
    win = np.array([2500, 7500])
    # (0.25-0.5) ln(0.5) + (0.75-0.5) ln(1.5)
    expected = 0.25 * math.log(2) + 0.25 * math.log(1.5)
    assert psi(ref, win)[0] == pytest.approx(expected, rel=1e-3)


def test_psi_exact_with_pseudo_counts():
    ref, win, a = np.array([3, 0, 7]), np.array([0, 5, 5]), 0.5
    p = (ref + a) / (ref.sum() + 3 * a)
    q = (win + a) / (win.sum() + 3 * a)
    expected = float(np.sum((q - p) * np.log(q / p)))
    assert psi(ref, win, pseudo=a)[0] == pytest.approx(expected, rel=1e-12)


def test_psi_is_finite_with_empty_bins_and_symmetric():
    a, b = np.array([100, 0, 0]), np.array([0, 0, 100])
    s = psi(a, b)[0]
    assert math.isfinite(s) and s > 5
    assert psi(a, b)[0] == pytest.approx(psi(b, a)[0])


def test_psi_ignores_padded_bins():
    ref = np.array([[40, 60, 0, 0]])
    win = np.array([[50, 50, 0, 0]])
    mask = np.array([[True, True, False, False]])
    assert psi(ref, win, mask)[0] == pytest.approx(psi(ref[:, :2], win[:, :2])[0], rel=1e-12)


def test_smoothed_proportions_sum_to_one_over_valid_bins():
    mask = np.array([[True, True, True, False]])
    p = smoothed_proportions(np.array([[0, 0, 9, 0]]), mask)
    assert p.sum() == pytest.approx(1.0)
    assert p[0, 3] == 0 and p[0, 0] > 0


# -- Jensen-Shannon ------------------------------------------------------------


def test_js_bounds_and_known_value():
    assert js_divergence([5, 5], [5, 5])[0] == pytest.approx(0.0, abs=1e-15)
    assert js_divergence([1, 0], [0, 1])[0] == pytest.approx(1.0)
    # p=(.5,.5), q=(1,0), m=(.75,.25)
    kl_p = 0.5 * math.log2(0.5 / 0.75) + 0.5 * math.log2(0.5 / 0.25)
    kl_q = math.log2(1 / 0.75)
    assert js_divergence([1, 1], [2, 0])[0] == pytest.approx(0.5 * (kl_p + kl_q), rel=1e-12)


def test_js_is_symmetric():
    rng = np.random.default_rng(1)
    a, b = rng.integers(0, 50, size=(5, 12)), rng.integers(0, 50, size=(5, 12))
    np.testing.assert_allclose(js_divergence(a, b), js_divergence(b, a), rtol=1e-12)


# -- Kolmogorov-Smirnov --------------------------------------------------------


def test_proportions_of_empty_row_stay_zero():
    assert proportions(np.array([[0, 0, 0]])).sum() == 0


def test_ks_statistic_known_value():
    # CDFs (0.5, 1.0) vs (0.2, 1.0): gap 0.3
    assert ks_statistic([5, 5], [2, 8])[0] == pytest.approx(0.3)
    assert ks_statistic([5, 5], [5, 5])[0] == 0


def test_kolmogorov_sf_limits_and_monotone():
    lam = np.linspace(0, 4, 401)
    sf = kolmogorov_sf(lam)
    assert sf[0] == 1.0
    assert np.all(np.diff(sf) <= 1e-15)
    assert sf[-1] < 1e-12
    # Known points of the Kolmogorov distribution (critical values).
    assert kolmogorov_sf(1.3581)[0] == pytest.approx(0.05, abs=2e-4)
    assert kolmogorov_sf(1.6276)[0] == pytest.approx(0.01, abs=1e-4)
    # Both series agree at the switch point.
    left = kolmogorov_sf(np.nextafter(1.18, 0))[0]
    assert left == pytest.approx(kolmogorov_sf(1.18)[0], abs=1e-12)


def test_kolmogorov_sf_matches_scipy():
    stats = pytest.importorskip("scipy.stats")
    lam = np.concatenate([np.linspace(0.01, 3.5, 350), [0.3, 1.0, 1.17999, 1.18, 2.0]])
    np.testing.assert_allclose(kolmogorov_sf(lam), stats.kstwobign.sf(lam), atol=1e-12)


def test_binned_ks_equals_exact_ks_when_every_value_is_an_edge():
    stats = pytest.importorskip("scipy.stats")
    rng = np.random.default_rng(2)
    a, b = rng.normal(size=700), rng.normal(0.2, 1.1, size=300)
    edges = np.unique(np.concatenate([a, b]))
    ca = np.bincount(np.searchsorted(edges, a, side="right"), minlength=edges.size + 1)
    cb = np.bincount(np.searchsorted(edges, b, side="right"), minlength=edges.size + 1)
    exact = stats.ks_2samp(a, b)
    assert ks_statistic(ca, cb)[0] == pytest.approx(exact.statistic, abs=1e-12)
    # Asymptotic p-value close to scipy's asymptotic one (different small-n corrections).
    ours = ks_pvalue(exact.statistic, a.size, b.size)[0]
    theirs = stats.ks_2samp(a, b, method="asymp").pvalue
    assert ours == pytest.approx(theirs, rel=0.15, abs=1e-4)


def test_binned_ks_never_exceeds_exact():
    rng = np.random.default_rng(3)
    for _ in range(20):
        a, b = rng.normal(size=500), rng.normal(rng.uniform(-1, 1), 1, size=200)
        fine = np.unique(np.concatenate([a, b]))
        coarse = np.quantile(a, np.linspace(0, 1, 11)[1:-1])

        def d(edges, a=a, b=b):
            ca = np.bincount(np.searchsorted(edges, a, side="right"), minlength=edges.size + 1)
            cb = np.bincount(np.searchsorted(edges, b, side="right"), minlength=edges.size + 1)
            return ks_statistic(ca, cb)[0]

        assert d(coarse) <= d(fine) + 1e-12


def test_ks_pvalue_degenerate_inputs():
    assert ks_pvalue(0.5, 0, 100)[0] == 1.0
    assert ks_pvalue(0.0, 100, 100)[0] == 1.0
    assert ks_pvalue(1.0, 1000, 1000)[0] < 1e-100


def test_ks_pvalue_is_calibrated_under_the_null():
    """Binned KS p-values are conservative: at most about alpha rejections when nothing moved."""
    rng = np.random.default_rng(4)
    ref = rng.normal(size=5000)
    edges = np.quantile(ref, np.linspace(0, 1, 21)[1:-1])
    rc = np.bincount(np.searchsorted(edges, ref, side="right"), minlength=21)
    wins = rng.normal(size=(2000, 500))
    idx = np.searchsorted(edges, wins, side="right")
    wc = np.stack([np.bincount(r, minlength=21) for r in idx])
    p = ks_pvalue(ks_statistic(np.broadcast_to(rc, wc.shape), wc), 5000, 500)
    assert 0.01 < np.mean(p < 0.05) <= 0.06
    assert np.mean(p < 0.01) <= 0.015


# -- config and decision ---------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs",
    [
        {"method": "chi2"},
        {"psi_threshold": 0},
        {"ks_alpha": 1.5},
        {"min_drifted_features": 0},
        {"pseudo_count": 0},
    ],
)
def test_config_rejects_nonsense(kwargs):
    with pytest.raises(ValueError):
        DetectorConfig(**kwargs)


def test_threshold_follows_method():
    assert DetectorConfig("psi", psi_threshold=0.3).threshold == 0.3
    assert DetectorConfig("js", js_threshold=0.07).threshold == 0.07
    assert DetectorConfig("ks", ks_alpha=0.002).threshold == 0.002


def _window(ref, rows):
    lay = ReferenceLayout(ref)
    acc = WindowAccumulator(lay)
    acc.add(rows)
    return lay, acc.snapshot()


def _evaluate(ref, rows, config):
    lay, w = _window(ref, rows)
    return evaluate(
        lay.names,
        lay.counts,
        w.counts,
        lay.mask,
        lay.mean,
        lay.var,
        w.n,
        w.mean,
        w.var,
        w.samples,
        config,
    )


@pytest.fixture(scope="module")
def ref20():
    rng = np.random.default_rng(10)
    return build_reference(rng.normal(size=(10_000, 20)), bins=20)


@pytest.mark.parametrize("method", ["psi", "ks", "js"])
def test_decision_flags_only_the_shifted_feature(ref20, method):
    rng = np.random.default_rng(11)
    x = rng.normal(size=(1000, 20))
    x[:, 7] += 1.0
    ev = _evaluate(ref20, x, DetectorConfig(method))
    assert ev.drifted
    assert ev.drifted_features == ["f7"]
    assert ev.drifted_ratio == pytest.approx(1 / 20)
    assert ev.score == pytest.approx(ev.features[7].score(method))
    f7 = ev.features[7]
    assert f7.mean_shift == pytest.approx(1.0, abs=0.1)
    assert f7.variance_ratio == pytest.approx(1.0, abs=0.15)
    assert f7.n == 1000


def test_min_drifted_features(ref20):
    rng = np.random.default_rng(12)
    x = rng.normal(size=(1000, 20))
    x[:, 0] += 1.0
    assert _evaluate(ref20, x, DetectorConfig("psi", min_drifted_features=1)).drifted
    assert not _evaluate(ref20, x, DetectorConfig("psi", min_drifted_features=2)).drifted
    x[:, 1] *= 3
    assert _evaluate(ref20, x, DetectorConfig("psi", min_drifted_features=2)).drifted


def test_feature_without_samples_cannot_drift(ref20):
    x = np.full((50, 20), np.nan)
    ev = _evaluate(ref20, x, DetectorConfig("ks"))
    assert not ev.drifted
    assert all(f.n == 0 and f.ks_pvalue == 1.0 for f in ev.features)
    assert math.isnan(ev.features[0].mean_shift)


def test_bonferroni_divides_alpha_by_feature_count(ref20):
    rng = np.random.default_rng(13)
    x = rng.normal(size=(300, 20))
    x[:, 4] += 0.25
    p = _evaluate(ref20, x, DetectorConfig("ks")).features[4].ks_pvalue
    assert 1e-8 < p < 0.01, p
    # p < alpha but p > alpha / 20: significant alone, not after Bonferroni.
    assert not _evaluate(ref20, x, DetectorConfig("ks", ks_alpha=5 * p)).features[4].drifted
    # p < alpha / 20.
    assert _evaluate(ref20, x, DetectorConfig("ks", ks_alpha=25 * p)).features[4].drifted
