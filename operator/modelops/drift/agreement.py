"""Do two versions' answers to the same request agree? (pure, numpy)

The data plane mirrors a request to the candidate, decodes both KServe v2
responses into numpy arrays (one per output tensor, keyed by name) and calls
`answers_agree`; the count of agreeing pairs over the count compared is the
figure spec.rollout.analysis.minAgreement is checked against.

Argmax (classifiers): the answers agree when every row picks the same class,
so a retrained model whose scores moved but whose decisions did not still
agrees. RelativeTolerance (regressors): every value within `tolerance` of the
stable value, relative to the stable value's magnitude (with a tiny floor so
zeros compare by absolute difference). A shape or name mismatch, or a NaN
where the stable answer has none, is disagreement, never an error: a broken
candidate must show up as a figure, not crash the sidecar.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

AGREEMENT_MODES = ("Argmax", "RelativeTolerance")
DEFAULT_TOLERANCE = 0.01
# Below this magnitude values compare by absolute difference (relative to ~0 is meaningless).
_FLOOR = 1e-12


def argmax_agree(stable: np.ndarray, candidate: np.ndarray) -> bool:
    """Same predicted class in every row (class axis = the last one).

    A 1-D output is one row; a scalar or an empty class axis has no argmax
    and compares by equality.
    """
    s, c = np.asarray(stable), np.asarray(candidate)
    if s.shape != c.shape:
        return False
    if s.ndim == 0 or s.shape[-1] == 0 or s.dtype.kind not in "biuf" or c.dtype.kind not in "biuf":
        # No scores to rank (a scalar, or BYTES labels): the answers must be equal.
        return bool(np.array_equal(s, c))
    if not np.array_equal(np.argmax(s, axis=-1), np.argmax(c, axis=-1)):
        return False
    # argmax picks a NaN as the maximum: a candidate NaN agrees only where stable has one.
    return not (c.dtype.kind == "f" and np.isnan(c).any() and not np.isnan(s).any())


def within_tolerance(
    stable: np.ndarray, candidate: np.ndarray, tolerance: float = DEFAULT_TOLERANCE
) -> bool:
    """|c - s| <= tolerance * max(|s|, floor) for every element (NaN only matches NaN)."""
    s, c = np.asarray(stable), np.asarray(candidate)
    if s.shape != c.shape:
        return False
    if s.dtype.kind not in "biuf" or c.dtype.kind not in "biuf":
        return bool(np.array_equal(s, c))
    s, c = s.astype(np.float64, copy=False), c.astype(np.float64, copy=False)
    with np.errstate(invalid="ignore", over="ignore"):
        diff = np.abs(c - s)
        # The common case: every difference finite and small. A NaN fails the comparison;
        # an infinite difference (inf vs -inf) would pass it against an infinite scale,
        # hence the finiteness check.
        if np.all(diff <= tolerance * np.maximum(np.abs(s), _FLOOR)) and np.isfinite(diff).all():
            return True
    finite = np.isfinite(s) & np.isfinite(c)
    with np.errstate(invalid="ignore", over="ignore"):
        close = finite & (np.abs(c - s) <= tolerance * np.maximum(np.abs(s), _FLOOR))
    # Off the finite numbers only identity agrees: NaN with NaN, +inf with +inf.
    same = (np.isnan(s) & np.isnan(c)) | (np.isinf(s) & (s == c))
    return bool(np.all(close | same))


def answers_agree(
    stable: Mapping[str, np.ndarray],
    candidate: Mapping[str, np.ndarray],
    *,
    mode: str = "Argmax",
    tolerance: float | None = None,
    output: str | None = None,
) -> bool:
    """Whether two decoded responses agree, per spec.rollout.analysis.agreement.

    stable / candidate: output name -> array. output: compare only that output
    (it must be in both); None compares every output of the stable answer, and
    the candidate must have the same set of outputs.
    """
    if output is not None:
        if output not in stable or output not in candidate:
            return False
        names = [output]
    else:
        if set(stable) != set(candidate) or not stable:
            return False
        names = sorted(stable)
    for name in names:
        if mode == "Argmax":
            ok = argmax_agree(stable[name], candidate[name])
        elif mode == "RelativeTolerance":
            ok = within_tolerance(
                stable[name],
                candidate[name],
                DEFAULT_TOLERANCE if tolerance is None else tolerance,
            )
        else:
            raise ValueError(f"unknown agreement mode {mode!r}")
        if not ok:
            return False
    return True
