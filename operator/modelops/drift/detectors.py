"""Drift tests between two binned distributions: pure numpy, no I/O, no state.

Everything works on *padded count matrices*: one row per feature, one column
per bin, features with fewer bins padded with zero-count columns that a
boolean ``mask`` marks invalid. That keeps one evaluation at a constant number
of numpy calls however many features there are.

Tests (per feature, reference counts ``r`` against window counts ``w``):

- PSI (population stability index) ``sum((q - p) * ln(q / p))`` over
  proportions smoothed with a pseudo-count per bin, so an empty bin on one
  side gives a large but finite term instead of infinity.
- Jensen-Shannon divergence, base 2 (in [0, 1]); needs no smoothing because
  the mixture is never zero where either side has mass.
- Kolmogorov-Smirnov: the statistic is the largest gap between the two
  *binned* CDFs, i.e. the exact two-sample statistic evaluated at the bin
  edges only. It never exceeds the unbinned statistic, so the p-value is
  conservative (fewer false alarms, slightly less power). The p-value uses the
  asymptotic Kolmogorov distribution with the effective sample size
  ``n*m/(n+m)`` and Stephens' small-sample correction.
- Mean shift in reference standard deviations and the variance ratio, for
  humans reading ``/drift``; they do not take part in the PSI, JS and KS
  decisions. The mean shift's Welch z-test p-value (normal approximation;
  windows hold hundreds of rows) is the second half of ``ksz``.

``ksz`` (the default) is the one method whose false-alarm rate holds for
continuous monitoring. Per feature it runs the binned KS test (any change of
shape) and the z-test of the mean (the most powerful test of a location
shift, which KS on 20 bins detects late: 0.25 sigma in one of 20 features
within 1-2 windows of 1,000 rows where PSI and JS miss it, see
``bench/drift/detection.py``), and a feature drifts when the smaller of the
two p-values, doubled, is below ``alpha_k / features`` (Bonferroni over
tests and features). ``alpha_k`` is spent over the windows a monitor
evaluates: window ``k`` (from 1) gets ``alpha / (2.11 (k + 1) ln(k + 1)^2)``,
whose sum over all k is at most ``alpha`` (the sum of ``1 / (j ln(j)^2)``
over j >= 2 is 2.1097...). So ``ks_alpha`` (0.001) bounds the probability
that a stationary stream *ever* raises a false alarm over the monitor's
whole life, however many windows it looks at; a restarted monitor starts a
new life (so the bound holds per process start). The spending decays slowly:
per test (Bonferroni over 2 tests x 20 features) the z threshold is 4.4 at
window 1, 5.8 at window 100, 6.8 at window 10,000 and 7.5 at window
1,000,000, against the z of about 7.5 that a 0.25 sigma shift gives over a
window of 1,000 rows against a reference of 10,000 rows
(``bench/drift/detection.py``: 0.25 sigma found in 1 window, worst 1, fresh;
worst 2 after 10,000 windows; worst 6 after 1,000,000; 0/300 false alarms).

NaN and infinite values belong to no bin, so on their own they would make a
window look empty rather than different. Two rules keep them from masking
drift: a feature whose share of non-finite values exceeds
``max_nonfinite_fraction`` drifts (missing or broken inputs are a change in
the input distribution), and a window in which some feature has fewer than
``min_finite`` finite values is *inconclusive*: it can report drift but never
clear it (see :class:`Evaluation.conclusive`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

METHODS = ("psi", "ks", "js", "ksz")
# Sum over j >= 2 of 1 / (j ln(j)^2) is 2.10974...: the spending sequence's norm.
_SPENDING_NORM = 2.11
DEFAULT_PSI_THRESHOLD = 0.2
# Roughly PSI 0.2: for small shifts JS in bits is about PSI / (8 ln 2).
DEFAULT_JS_THRESHOLD = 0.04
# Family-wise false-alarm probability per evaluation window. Much smaller than
# the textbook 0.05 because a monitor runs one test family per window forever:
# at 0.05 a stationary stream would alarm about once every 20 windows.
DEFAULT_KS_ALPHA = 0.001
DEFAULT_PSEUDO_COUNT = 0.5
# Fewer finite values than this in one feature: the window cannot count as clean.
DEFAULT_MIN_FINITE = 30
# A feature with more NaN/inf than this share of its window values drifts.
DEFAULT_MAX_NONFINITE_FRACTION = 0.1


@dataclass(frozen=True)
class DetectorConfig:
    method: str = "ksz"
    psi_threshold: float = DEFAULT_PSI_THRESHOLD
    js_threshold: float = DEFAULT_JS_THRESHOLD
    ks_alpha: float = DEFAULT_KS_ALPHA
    min_drifted_features: int = 1
    pseudo_count: float = DEFAULT_PSEUDO_COUNT
    min_finite: int = DEFAULT_MIN_FINITE
    max_nonfinite_fraction: float = DEFAULT_MAX_NONFINITE_FRACTION

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ValueError(f"method must be one of {METHODS}, got {self.method!r}")
        if not self.psi_threshold > 0 or not self.js_threshold > 0:
            raise ValueError("thresholds must be > 0")
        if not 0 < self.ks_alpha < 1:
            raise ValueError("ks alpha must be in (0, 1)")
        if self.min_drifted_features < 1:
            raise ValueError("min_drifted_features must be >= 1")
        if self.pseudo_count <= 0:
            raise ValueError("pseudo_count must be > 0")
        if self.min_finite < 1:
            raise ValueError("min_finite must be >= 1")
        if not 0 <= self.max_nonfinite_fraction < 1:
            raise ValueError("max_nonfinite_fraction must be in [0, 1)")

    @property
    def threshold(self) -> float:
        """The number the chosen method is compared with (alpha for KS)."""
        if self.method in ("ks", "ksz"):
            return self.ks_alpha
        return {"psi": self.psi_threshold, "js": self.js_threshold}[self.method]

    def window_alpha(self, window: int) -> float:
        """Family-wise false-alarm probability allowed to evaluation ``window`` (from 1):
        ``ks_alpha`` per window for ``ks``, spent over windows for ``ksz``."""
        if self.method != "ksz":
            return self.ks_alpha
        k = max(window, 1) + 1
        return self.ks_alpha / (_SPENDING_NORM * k * math.log(k) ** 2)


# -- building blocks (each works row-wise on [features, bins] matrices) --------


def _as_matrix(counts: np.ndarray) -> np.ndarray:
    m = np.asarray(counts, dtype=np.float64)
    return m[None, :] if m.ndim == 1 else m


def _full_mask(counts: np.ndarray, mask: np.ndarray | None) -> np.ndarray:
    if mask is None:
        return np.ones(counts.shape, dtype=bool)
    return np.broadcast_to(np.asarray(mask, dtype=bool), counts.shape)


def proportions(counts: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
    """Row-normalised counts; an all-zero row stays all zero."""
    c = _as_matrix(counts) * _full_mask(_as_matrix(counts), mask)
    total = c.sum(axis=1, keepdims=True)
    return np.divide(c, total, out=np.zeros_like(c), where=total > 0)


def smoothed_proportions(
    counts: np.ndarray, mask: np.ndarray | None = None, pseudo: float = DEFAULT_PSEUDO_COUNT
) -> np.ndarray:
    """Additive (Laplace-style) smoothing over the valid bins of each row."""
    c = _as_matrix(counts)
    m = _full_mask(c, mask)
    c = (c + pseudo) * m
    return c / c.sum(axis=1, keepdims=True)


def psi(
    ref_counts: np.ndarray,
    win_counts: np.ndarray,
    mask: np.ndarray | None = None,
    pseudo: float = DEFAULT_PSEUDO_COUNT,
) -> np.ndarray:
    """Population stability index per row; 0 for identical histograms."""
    p = smoothed_proportions(ref_counts, mask, pseudo)
    q = smoothed_proportions(win_counts, mask, pseudo)
    valid = p > 0  # padded bins are exactly 0 on both sides
    ratio = np.divide(q, p, out=np.ones_like(p), where=valid)
    return np.sum(np.where(valid, (q - p) * np.log(ratio), 0.0), axis=1)


def js_divergence(
    ref_counts: np.ndarray, win_counts: np.ndarray, mask: np.ndarray | None = None
) -> np.ndarray:
    """Jensen-Shannon divergence per row, base 2, in [0, 1]."""
    p = proportions(ref_counts, mask)
    q = proportions(win_counts, mask)
    m = 0.5 * (p + q)

    def kl(a: np.ndarray) -> np.ndarray:
        pos = a > 0  # 0 * log(0 / m) == 0; m > 0 wherever a > 0
        ratio = np.divide(a, m, out=np.ones_like(a), where=pos)
        return np.sum(np.where(pos, a * np.log2(ratio), 0.0), axis=1)

    out = 0.5 * kl(p) + 0.5 * kl(q)
    return np.clip(out, 0.0, 1.0)


def ks_statistic(
    ref_counts: np.ndarray, win_counts: np.ndarray, mask: np.ndarray | None = None
) -> np.ndarray:
    """Largest gap between the binned empirical CDFs, per row."""
    p = proportions(ref_counts, mask)
    q = proportions(win_counts, mask)
    return np.max(np.abs(np.cumsum(p, axis=1) - np.cumsum(q, axis=1)), axis=1)


def kolmogorov_sf(lam: np.ndarray | float) -> np.ndarray:
    """Survival function of the Kolmogorov distribution, P(K > lam).

    Two series, each used where it converges in a handful of terms (switch at
    1.18 as in Numerical Recipes): the theta-function form of the CDF for small
    lam, the alternating series ``2 sum (-1)^(k-1) exp(-2 k^2 lam^2)`` above.
    Accurate to ~1e-12 absolute over the whole range.
    """
    x = np.atleast_1d(np.asarray(lam, dtype=np.float64))
    out = np.ones_like(x)
    small = (x > 0) & (x < 1.18)
    large = x >= 1.18
    if np.any(small):
        ls = x[small]
        y = np.exp(-(math.pi**2) / (8.0 * ls * ls))
        cdf = math.sqrt(2.0 * math.pi) / ls * (y + y**9 + y**25 + y**49)
        out[small] = 1.0 - cdf
    if np.any(large):
        xl = np.exp(-2.0 * x[large] ** 2)
        out[large] = 2.0 * (xl - xl**4 + xl**9 - xl**16)
    return np.clip(out, 0.0, 1.0)


def ks_pvalue(
    d: np.ndarray | float, n_ref: np.ndarray | float, n_win: np.ndarray | float
) -> np.ndarray:
    """Asymptotic two-sample KS p-value for statistic ``d`` and sample sizes."""
    d = np.atleast_1d(np.asarray(d, dtype=np.float64))
    n = np.asarray(n_ref, dtype=np.float64)
    m = np.asarray(n_win, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        ne = np.where((n > 0) & (m > 0), n * m / (n + m), 0.0)
        sq = np.sqrt(ne)
        lam = np.where(ne > 0, (sq + 0.12 + 0.11 / np.where(sq > 0, sq, 1.0)) * d, 0.0)
    return np.where(ne > 0, kolmogorov_sf(lam), 1.0)


def normal_two_sided_p(z: np.ndarray) -> np.ndarray:
    """P(|Z| > |z|) for a standard normal Z (``erfc``, accurate far into the tail)."""
    z = np.abs(np.asarray(z, dtype=np.float64))
    return np.array([math.erfc(v / math.sqrt(2.0)) for v in z.ravel()]).reshape(z.shape)


def mean_shift_pvalue(
    ref_mean: np.ndarray,
    ref_var: np.ndarray,
    ref_n: np.ndarray,
    win_mean: np.ndarray,
    win_var: np.ndarray,
    win_n: np.ndarray,
) -> np.ndarray:
    """Two-sided Welch z-test p-value of a difference in means, per feature; 1 where
    either side has fewer than 2 values or neither varies (nothing to test)."""
    ref_n = np.asarray(ref_n, dtype=np.float64)
    win_n = np.asarray(win_n, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        se2 = np.where(ref_n > 1, ref_var / ref_n, np.inf) + np.where(
            win_n > 1, win_var / win_n, np.inf
        )
        z = np.where(
            np.isfinite(se2) & (se2 > 0), (np.asarray(win_mean) - ref_mean) / np.sqrt(se2), 0.0
        )
    z = np.where(np.isfinite(z), z, 0.0)
    return normal_two_sided_p(z)


# -- one evaluation ------------------------------------------------------------


@dataclass(frozen=True)
class FeatureResult:
    name: str
    n: int  # finite window samples for this feature
    psi: float
    js: float
    ks: float
    ks_pvalue: float
    mean_shift: float  # (window mean - reference mean) / reference std
    variance_ratio: float  # window variance / reference variance
    drifted: bool
    nonfinite: int = 0  # NaN/inf values of this feature in the window
    nonfinite_fraction: float = 0.0  # nonfinite / (finite + nonfinite)
    z_pvalue: float = 1.0  # two-sided p-value of the mean shift (Welch z-test)

    @property
    def ksz(self) -> float:
        """The ksz score: -log10 of the feature's p-value (KS or mean, doubled)."""
        p = min(1.0, 2.0 * min(self.ks_pvalue, self.z_pvalue))
        return -math.log10(p) if p > 0 else 320.0

    def score(self, method: str) -> float:
        if method == "ksz":
            return self.ksz
        return {"psi": self.psi, "js": self.js, "ks": self.ks}[method]


@dataclass(frozen=True)
class Evaluation:
    method: str
    threshold: float
    features: tuple[FeatureResult, ...]
    drifted: bool
    score: float  # max per-feature score of the chosen method
    samples: int  # rows in the window
    # False when some feature had fewer than min_finite finite values: such a
    # window may report drift but must not clear a drifted state.
    conclusive: bool = True
    # Family-wise false-alarm probability this window was allowed (ks, ksz).
    alpha: float = 0.0

    @property
    def drifted_features(self) -> list[str]:
        return [f.name for f in self.features if f.drifted]

    @property
    def drifted_ratio(self) -> float:
        return len(self.drifted_features) / len(self.features) if self.features else 0.0


def _safe_float(v: float) -> float:
    return float(v) if math.isfinite(v) else math.nan


def evaluate(
    names: Sequence[str],
    ref_counts: np.ndarray,
    win_counts: np.ndarray,
    mask: np.ndarray,
    ref_mean: np.ndarray,
    ref_var: np.ndarray,
    win_n: np.ndarray,
    win_mean: np.ndarray,
    win_var: np.ndarray,
    samples: int,
    config: DetectorConfig,
    win_nonfinite: np.ndarray | None = None,
    min_finite: int | None = None,
    window: int = 1,
) -> Evaluation:
    """Score every feature, decide per feature, then decide for the model.

    A feature drifts when its chosen test fails: PSI or JS above threshold,
    or a KS p-value below ``alpha / n_features`` (Bonferroni, so ``alpha`` is
    the family-wise false-alarm rate of one window). A feature with no samples
    in the window cannot drift by its test, but one whose non-finite share
    exceeds ``max_nonfinite_fraction`` drifts whatever its finite values
    say. The model drifts when at least ``min_drifted_features`` features do.
    ``min_finite`` (default ``config.min_finite``) decides ``conclusive``.
    ``window`` is the evaluation's number in the monitor's life (from 1): the
    ``ksz`` method spends its false-alarm probability over it.
    """
    ref_counts = _as_matrix(ref_counts)
    win_counts = _as_matrix(win_counts)
    n_feat = ref_counts.shape[0]
    ref_n = ref_counts.sum(axis=1)
    have = np.asarray(win_n) > 0

    s_psi = psi(ref_counts, win_counts, mask, config.pseudo_count)
    s_js = js_divergence(ref_counts, win_counts, mask)
    s_ks = ks_statistic(ref_counts, win_counts, mask)
    p_ks = ks_pvalue(s_ks, ref_n, win_n)
    p_z = mean_shift_pvalue(ref_mean, ref_var, ref_n, win_mean, win_var, win_n)
    alpha = config.window_alpha(window)

    with np.errstate(divide="ignore", invalid="ignore"):
        ref_sd = np.sqrt(np.asarray(ref_var, dtype=np.float64))
        diff = np.asarray(win_mean, dtype=np.float64) - ref_mean
        shift = np.where(ref_sd > 0, diff / ref_sd, np.where(diff == 0, 0.0, np.inf))
        ref_var = np.asarray(ref_var, dtype=np.float64)
        win_var = np.asarray(win_var, dtype=np.float64)
        vratio = np.where(ref_var > 0, win_var / ref_var, np.where(win_var == 0, 1.0, np.inf))

    if config.method == "psi":
        fails = s_psi > config.psi_threshold
    elif config.method == "js":
        fails = s_js > config.js_threshold
    elif config.method == "ks":
        fails = p_ks < alpha / max(n_feat, 1)
    else:  # ksz: two tests per feature, Bonferroni over both and over features
        fails = 2.0 * np.minimum(p_ks, p_z) < alpha / max(n_feat, 1)
    fails = fails & have
    win_n = np.asarray(win_n)
    bad = np.zeros(n_feat, np.int64) if win_nonfinite is None else np.asarray(win_nonfinite)
    with np.errstate(divide="ignore", invalid="ignore"):
        bad_frac = np.where(bad > 0, bad / (win_n + bad), 0.0)
    fails = fails | (bad_frac > config.max_nonfinite_fraction)
    need = config.min_finite if min_finite is None else min_finite

    feats = tuple(
        FeatureResult(
            name=names[i],
            n=int(win_n[i]),
            psi=float(s_psi[i]) if have[i] else 0.0,
            js=float(s_js[i]) if have[i] else 0.0,
            ks=float(s_ks[i]) if have[i] else 0.0,
            ks_pvalue=float(p_ks[i]) if have[i] else 1.0,
            mean_shift=_safe_float(shift[i]) if have[i] else math.nan,
            variance_ratio=_safe_float(vratio[i]) if have[i] else math.nan,
            drifted=bool(fails[i]),
            nonfinite=int(bad[i]),
            nonfinite_fraction=float(bad_frac[i]),
            z_pvalue=float(p_z[i]) if have[i] else 1.0,
        )
        for i in range(n_feat)
    )
    scores = [f.score(config.method) for f in feats]
    drifted = int(fails.sum()) >= config.min_drifted_features
    return Evaluation(
        method=config.method,
        threshold=config.threshold,
        features=feats,
        drifted=drifted,
        score=max(scores) if scores else 0.0,
        samples=int(samples),
        conclusive=drifted or bool(np.all(win_n >= need)),
        alpha=alpha if config.method in ("ks", "ksz") else 0.0,
    )
