"""Reference statistics: what "not drifted" looks like, per feature.

A reference is built once, offline, from a sample of the training data
(`modelops drift-reference`) and shipped next to the model. At serving time
the sidecar bins live traffic with the *same* bin edges, so every comparison
is between two histograms over identical bins and costs O(bins) per feature.

Binning: ``bins`` quantile bins of the sample. Only the interior quantiles are
kept as edges, so the first and last bins are open-ended tails
(``(-inf, e0)`` and ``[e_last, +inf)``): values outside the training range
land in a tail instead of being lost, and a shift shows up as mass moving
into one tail. Ties (discrete or constant features) collapse duplicate edges,
so a feature may end up with fewer bins than asked for.

Bin ``i`` holds ``edges[i-1] <= x < edges[i]`` (``numpy.searchsorted(...,
side="right")``), with ``edges[-1] = -inf`` and ``edges[len] = +inf``.

File format (JSON, versioned; unknown keys are ignored on load so newer
writers stay readable)::

    {
      "format": "modelops.drift.reference",
      "version": 1,
      "created": "2026-01-01T00:00:00Z",
      "n_samples": 10000,
      "features": [
        {"name": "f0", "edges": [..], "counts": [..],   # len(counts) == len(edges) + 1
         "n": 10000, "mean": 0.01, "var": 0.98, "min": -3.7, "max": 3.9}
      ]
    }
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

FORMAT = "modelops.drift.reference"
VERSION = 1
DEFAULT_BINS = 20


class ReferenceError(ValueError):
    """A reference file or sample that cannot be used."""


@dataclass(frozen=True)
class FeatureReference:
    name: str
    edges: np.ndarray  # float64, strictly increasing interior edges
    counts: np.ndarray  # int64, len(edges) + 1
    n: int
    mean: float
    var: float
    min: float
    max: float

    @property
    def n_bins(self) -> int:
        return int(self.counts.shape[0])


@dataclass(frozen=True)
class Reference:
    features: tuple[FeatureReference, ...]
    n_samples: int
    created: str = ""

    @property
    def names(self) -> list[str]:
        return [f.name for f in self.features]

    @property
    def n_features(self) -> int:
        return len(self.features)

    # -- serialisation -------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "version": VERSION,
            "created": self.created,
            "n_samples": self.n_samples,
            "features": [
                {
                    "name": f.name,
                    "edges": [float(e) for e in f.edges],
                    "counts": [int(c) for c in f.counts],
                    "n": f.n,
                    "mean": f.mean,
                    "var": f.var,
                    "min": f.min,
                    "max": f.max,
                }
                for f in self.features
            ],
        }

    @classmethod
    def from_dict(cls, doc: dict[str, Any]) -> Reference:
        if doc.get("format") != FORMAT:
            raise ReferenceError(f"not a drift reference (format={doc.get('format')!r})")
        version = doc.get("version")
        if version != VERSION:
            raise ReferenceError(f"unsupported reference version {version!r} (want {VERSION})")
        feats = []
        for i, f in enumerate(doc.get("features") or []):
            try:
                edges = np.asarray(f["edges"], dtype=np.float64)
                counts = np.asarray(f["counts"], dtype=np.int64)
                feat = FeatureReference(
                    name=str(f["name"]),
                    edges=edges,
                    counts=counts,
                    n=int(f["n"]),
                    mean=float(f["mean"]),
                    var=float(f["var"]),
                    min=float(f.get("min", math.nan)),
                    max=float(f.get("max", math.nan)),
                )
            except (KeyError, TypeError, ValueError) as exc:
                raise ReferenceError(f"feature #{i}: {exc}") from exc
            _validate_feature(feat)
            feats.append(feat)
        if not feats:
            raise ReferenceError("reference has no features")
        names = [f.name for f in feats]
        if len(set(names)) != len(names):
            raise ReferenceError("duplicate feature names in reference")
        return cls(
            features=tuple(feats),
            n_samples=int(doc.get("n_samples", feats[0].n)),
            created=str(doc.get("created", "")),
        )

    def save(self, path: str | os.PathLike[str]) -> None:
        tmp = Path(f"{path}.tmp")
        tmp.write_text(json.dumps(self.to_dict(), indent=1) + "\n")
        tmp.replace(path)  # atomic: a reader never sees half a file

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Reference:
        try:
            doc = json.loads(Path(path).read_text())
        except json.JSONDecodeError as exc:
            raise ReferenceError(f"{path}: not JSON: {exc}") from exc
        if not isinstance(doc, dict):
            raise ReferenceError(f"{path}: not a JSON object")
        return cls.from_dict(doc)


def _validate_feature(f: FeatureReference) -> None:
    if f.edges.ndim != 1 or f.counts.ndim != 1:
        raise ReferenceError(f"{f.name}: edges and counts must be lists")
    if f.counts.shape[0] != f.edges.shape[0] + 1:
        raise ReferenceError(f"{f.name}: need len(counts) == len(edges) + 1")
    if not np.all(np.isfinite(f.edges)) or np.any(np.diff(f.edges) <= 0):
        raise ReferenceError(f"{f.name}: edges must be finite and strictly increasing")
    if np.any(f.counts < 0) or int(f.counts.sum()) <= 0:
        raise ReferenceError(f"{f.name}: counts must be non-negative with a positive total")
    if not (math.isfinite(f.mean) and math.isfinite(f.var) and f.var >= 0):
        raise ReferenceError(f"{f.name}: mean/var must be finite, var >= 0")


def quantile_edges(values: np.ndarray, bins: int) -> np.ndarray:
    """Interior quantile edges of ``values`` (finite only), duplicates removed."""
    if bins < 2:
        raise ReferenceError("need at least 2 bins")
    probs = np.linspace(0.0, 1.0, bins + 1)[1:-1]
    # Edges are sample values (no interpolation), so a discrete feature gets
    # edges at its levels and no bin that can never fill.
    edges = np.unique(np.quantile(values, probs, method="inverted_cdf"))
    if edges.size == 0:  # pragma: no cover - quantile of a non-empty array is non-empty
        edges = np.asarray([float(values[0])])
    return edges.astype(np.float64)


def build_reference(
    sample: np.ndarray,
    names: Sequence[str] | None = None,
    bins: int = DEFAULT_BINS,
) -> Reference:
    """Reference statistics from a 2-D sample (rows = observations, columns = features).

    Non-finite values are ignored per feature; a feature with no finite value
    is an error, since nothing could be compared against it.
    """
    x = np.asarray(sample, dtype=np.float64)
    if x.ndim == 1:
        x = x[:, None]
    if x.ndim != 2 or x.shape[0] == 0 or x.shape[1] == 0:
        raise ReferenceError(f"need a non-empty 2-D sample, got shape {x.shape}")
    if names is None:
        names = [f"f{i}" for i in range(x.shape[1])]
    names = [str(n) for n in names]
    if len(names) != x.shape[1]:
        raise ReferenceError(f"{len(names)} feature names for {x.shape[1]} columns")
    if len(set(names)) != len(names):
        raise ReferenceError("duplicate feature names")
    feats = []
    for j, name in enumerate(names):
        col = x[:, j]
        col = col[np.isfinite(col)]
        if col.size == 0:
            raise ReferenceError(f"feature {name!r} has no finite values")
        edges = quantile_edges(col, bins)
        counts = np.bincount(
            np.searchsorted(edges, col, side="right"), minlength=edges.size + 1
        ).astype(np.int64)
        feats.append(
            FeatureReference(
                name=name,
                edges=edges,
                counts=counts,
                n=int(col.size),
                mean=float(col.mean()),
                var=float(col.var(ddof=1)) if col.size > 1 else 0.0,
                min=float(col.min()),
                max=float(col.max()),
            )
        )
    created = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return Reference(features=tuple(feats), n_samples=int(x.shape[0]), created=created)
