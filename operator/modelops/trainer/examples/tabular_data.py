"""Data for the tabular example: a deterministic synthetic table, or a .npz / .csv file.

numpy only (no torch), so the benchmark and unit tests can make datasets cheaply.

Dataset URIs:

* ``synthetic://tabular?rows=N&seed=S&shift=X`` -- ``N`` rows of 20 features
  drawn from N(X, 1), labelled by a fixed rule. The rule does not depend on
  ``seed`` or ``shift``: ``seed`` draws another sample of the same problem and
  ``shift`` moves every feature's mean (covariate drift). With ``shift=0`` the
  features are independent standard normals, the distribution the drift
  sidecar tests use as their reference.
* ``file://``, ``pvc://``, ``s3://``, ``gs://``, ``https://`` -- a ``.npz`` with arrays
  ``features`` (rows x 20, float) and ``labels`` (rows, integer class), or a
  ``.csv`` with a header row, one column per feature and a ``label`` column.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

import numpy as np

N_FEATURES = 20
N_CLASSES = 2
SCHEME = "synthetic"
KIND = "tabular"
LABEL_COLUMN = "label"
# The labelling rule's weights come from this fixed seed, never from the URI's,
# so every seed and shift describes the same prediction problem.
_RULE_SEED = 20_261_101


class DatasetError(ValueError):
    """A dataset URI or file the tabular example cannot read."""


@dataclass(frozen=True)
class SyntheticTable:
    rows: int = 10_000
    seed: int = 0
    shift: float = 0.0


def parse_synthetic_uri(uri: str) -> SyntheticTable:
    """``synthetic://tabular?rows=1000&seed=3&shift=0.5`` -> its parameters (defaults otherwise)."""
    parts = urlsplit(uri)
    if parts.scheme != SCHEME or parts.netloc != KIND or parts.path not in ("", "/"):
        raise DatasetError(f"{uri!r}: expected {SCHEME}://{KIND}?rows=N&seed=S&shift=X")
    fields: dict[str, str] = {}
    for key, value in parse_qsl(parts.query, keep_blank_values=True, strict_parsing=False):
        if key in fields:
            raise DatasetError(f"{uri!r}: {key} is given twice")
        fields[key] = value
    unknown = sorted(set(fields) - {"rows", "seed", "shift"})
    if unknown:
        raise DatasetError(f"{uri!r}: unknown parameters {unknown} (rows, seed, shift)")
    try:
        table = SyntheticTable(
            rows=int(fields.get("rows", SyntheticTable.rows)),
            seed=int(fields.get("seed", SyntheticTable.seed)),
            shift=float(fields.get("shift", SyntheticTable.shift)),
        )
    except ValueError as err:
        raise DatasetError(f"{uri!r}: {err}") from None
    if table.rows < 1 or table.seed < 0 or not np.isfinite(table.shift):
        raise DatasetError(f"{uri!r}: need rows >= 1, seed >= 0 and a finite shift")
    return table


def label_rule(features: np.ndarray) -> np.ndarray:
    """The noiseless class of each row: a linear score plus one interaction, thresholded.

    The interaction term keeps the problem out of reach of a linear model, so
    the MLP has something to learn beyond logistic regression.
    """
    weights = np.random.default_rng(_RULE_SEED).normal(size=features.shape[1])
    score = features @ weights / np.sqrt(features.shape[1]) + features[:, 0] * features[:, 1]
    return (score > 0).astype(np.int64)


def make_table(table: SyntheticTable) -> tuple[np.ndarray, np.ndarray]:
    """(features float32 [rows, 20], labels int64 [rows]) for ``table``, deterministically."""
    rng = np.random.default_rng(table.seed)
    features = rng.normal(loc=table.shift, size=(table.rows, N_FEATURES))
    labels = label_rule(features)
    # 5% label noise: real labels are never perfect, and accuracy must stay below 1.
    flip = rng.random(table.rows) < 0.05
    labels[flip] = 1 - labels[flip]
    return features.astype(np.float32), labels


def read_table(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """(features, labels) from a .npz (``features``, ``labels``) or a .csv with a label column."""
    path = Path(path)
    if path.suffix == ".npz":
        with np.load(path) as archive:
            missing = {"features", "labels"} - set(archive.files)
            if missing:
                raise DatasetError(f"{path}: missing arrays {sorted(missing)}")
            features, labels = archive["features"], archive["labels"]
    elif path.suffix == ".csv":
        header = path.open().readline().strip().split(",")
        columns = [c.strip() for c in header]
        if LABEL_COLUMN not in columns:
            raise DatasetError(f"{path}: no {LABEL_COLUMN!r} column in header {columns}")
        data = np.loadtxt(path, delimiter=",", skiprows=1, ndmin=2, dtype=np.float64)
        label_at = columns.index(LABEL_COLUMN)
        labels = data[:, label_at]
        features = np.delete(data, label_at, axis=1)
    else:
        raise DatasetError(f"{path}: expected a .npz or .csv file")
    return _check(path, features, labels)


def _check(path: Path, features: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    if features.ndim != 2 or features.shape[1] != N_FEATURES:
        raise DatasetError(f"{path}: features must be rows x {N_FEATURES}, got {features.shape}")
    if labels.shape != (features.shape[0],):
        raise DatasetError(f"{path}: {labels.shape[0]} labels for {features.shape[0]} rows")
    if not np.all(np.isfinite(features)):
        raise DatasetError(f"{path}: features contain NaN or infinity")
    as_int = labels.astype(np.int64)
    if not np.array_equal(as_int, labels) or as_int.min() < 0 or as_int.max() >= N_CLASSES:
        raise DatasetError(f"{path}: labels must be class indices 0..{N_CLASSES - 1}")
    return features.astype(np.float32), as_int


def load_table(uri: str) -> tuple[np.ndarray, np.ndarray]:
    """The dataset ``uri`` names: synthetic, or a file in any storage scheme."""
    if uri.startswith(f"{SCHEME}:"):
        return make_table(parse_synthetic_uri(uri))
    # Imported here: only file datasets need the storage package (and boto3 for s3://).
    from modelops.trainer.fetch import fetch_data_file

    with tempfile.TemporaryDirectory(prefix="modelops-data-") as work:
        return read_table(fetch_data_file(uri, work))


def write_npz(path: str | Path, features: np.ndarray, labels: np.ndarray) -> Path:
    """Save a table in the layout :func:`read_table` reads (for tests and data prep)."""
    path = Path(path)
    np.savez(path, features=features, labels=labels)
    return path
