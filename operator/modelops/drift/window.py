"""Streaming per-feature histograms over the current window (not thread-safe).

Rows arrive a few at a time (one inference request is often a single row),
and a numpy call costs microseconds however small its input, so rows are
first copied into a fixed buffer and binned a chunk at a time: the binning
cost per row then stays flat as requests get smaller.

Moments are accumulated around the reference mean rather than around zero,
which keeps ``sum(x^2) - n * mean^2`` from cancelling catastrophically for
features with a large offset and a small spread.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from modelops.drift.reference import Reference


@dataclass(frozen=True)
class WindowStats:
    counts: np.ndarray  # [features, max_bins] int64, padded with zeros
    n: np.ndarray  # [features] finite samples per feature
    mean: np.ndarray  # [features]
    var: np.ndarray  # [features], sample variance (ddof=1); 0 with < 2 samples
    samples: int  # rows added
    nonfinite: np.ndarray | None = None  # [features] NaN/inf values per feature


class ReferenceLayout:
    """The reference as padded matrices, computed once."""

    def __init__(self, reference: Reference) -> None:
        self.names = reference.names
        self.n_features = reference.n_features
        self.max_bins = max((f.n_bins for f in reference.features), default=1)
        self.edges = [f.edges for f in reference.features]
        self.counts = np.zeros((self.n_features, self.max_bins), dtype=np.int64)
        self.mask = np.zeros((self.n_features, self.max_bins), dtype=bool)
        for i, f in enumerate(reference.features):
            self.counts[i, : f.n_bins] = f.counts
            self.mask[i, : f.n_bins] = True
        self.mean = np.asarray([f.mean for f in reference.features], dtype=np.float64)
        self.var = np.asarray([f.var for f in reference.features], dtype=np.float64)


class WindowAccumulator:
    def __init__(self, layout: ReferenceLayout, chunk_rows: int = 512) -> None:
        if chunk_rows < 1:
            raise ValueError("chunk_rows must be >= 1")
        self._layout = layout
        self._chunk = np.empty((chunk_rows, layout.n_features), dtype=np.float64)
        self._fill = 0
        self._reset()

    def _reset(self) -> None:
        lay = self._layout
        self._counts = np.zeros((lay.n_features, lay.max_bins), dtype=np.int64)
        self._n = np.zeros(lay.n_features, dtype=np.int64)
        self._nonfinite = np.zeros(lay.n_features, dtype=np.int64)
        self._s1 = np.zeros(lay.n_features, dtype=np.float64)  # sum(x - ref_mean)
        self._s2 = np.zeros(lay.n_features, dtype=np.float64)  # sum((x - ref_mean)^2)
        self.samples = 0

    def add(self, rows: np.ndarray) -> None:
        """Add a [rows, features] block (any numeric dtype)."""
        if rows.ndim != 2 or rows.shape[1] != self._layout.n_features:
            raise ValueError(f"expected [rows, {self._layout.n_features}], got {rows.shape}")
        k = rows.shape[0]
        if k == 0:
            return
        self.samples += k
        cap = self._chunk.shape[0]
        if k >= cap:  # big batch: bin it directly, no copy
            self._flush()
            self._bin(np.asarray(rows, dtype=np.float64))
            return
        if self._fill + k > cap:
            self._flush()
        self._chunk[self._fill : self._fill + k] = rows
        self._fill += k

    def _flush(self) -> None:
        if self._fill:
            self._bin(self._chunk[: self._fill])
            self._fill = 0

    def _bin(self, x: np.ndarray) -> None:
        lay = self._layout
        centred = x - lay.mean
        finite = np.isfinite(x)
        all_finite = bool(finite.all())
        if all_finite:
            self._n += x.shape[0]
            self._s1 += centred.sum(axis=0)
            self._s2 += np.square(centred).sum(axis=0)
        else:  # NaN/inf are in no bin and no moment, only counted as non-finite
            n_finite = finite.sum(axis=0)
            self._n += n_finite
            self._nonfinite += x.shape[0] - n_finite
            c = np.where(finite, centred, 0.0)
            self._s1 += c.sum(axis=0)
            self._s2 += np.square(c).sum(axis=0)
        # One bincount over "feature * max_bins + bin" instead of one per feature.
        flat = []
        for j, edges in enumerate(lay.edges):
            col = x[:, j] if all_finite else x[finite[:, j], j]
            flat.append(np.searchsorted(edges, col, side="right") + j * lay.max_bins)
        idx = np.concatenate(flat)
        self._counts += np.bincount(idx, minlength=self._counts.size).reshape(self._counts.shape)

    def sums(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, int]:
        """Copies of the sufficient statistics so far: (bin counts [features,
        max_bins], finite n, non-finite n, sum and sum of squares of ``x - ref
        mean``, rows). They add up across windows and across replicas."""
        self._flush()
        return (
            self._counts.copy(),
            self._n.copy(),
            self._nonfinite.copy(),
            self._s1.copy(),
            self._s2.copy(),
            self.samples,
        )

    def snapshot(self, reset: bool = True) -> WindowStats:
        """Statistics of the rows added since the last reset."""
        self._flush()
        n = self._n.astype(np.float64)
        with np.errstate(divide="ignore", invalid="ignore"):
            m1 = np.where(n > 0, self._s1 / n, 0.0)
            var = np.where(n > 1, (self._s2 - n * m1 * m1) / (n - 1), 0.0)
        stats = WindowStats(
            counts=self._counts.copy(),
            n=self._n.copy(),
            mean=m1 + self._layout.mean,
            var=np.maximum(var, 0.0),
            samples=self.samples,
            nonfinite=self._nonfinite.copy(),
        )
        if reset:
            self._reset()
        return stats
