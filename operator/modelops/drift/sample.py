"""Read a training-data sample (.npy, .npz, .csv) as a 2-D float array with names.

- ``.npy``: a 2-D array (rows x features) or 1-D (one feature).
- ``.npz``: the array named ``key``; else the only array in the file; else,
  when every array is 1-D and of one length, each array is a feature named
  by its key (the natural way to save a table with ``np.savez(**columns)``).
- ``.csv``: comma-separated, a header row when the first row is not all
  numbers; empty cells read as NaN (ignored when building statistics).

``features`` picks and orders columns by name (header / npz key), or names
the columns of a headerless file.
"""

from __future__ import annotations

import csv
import math
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from modelops.drift.reference import ReferenceError

SAMPLE_SUFFIXES = (".npy", ".npz", ".csv")


def _float_or_none(v: str) -> float | None:
    v = v.strip()
    if v == "":
        return math.nan
    try:
        return float(v)
    except ValueError:
        return None


def _read_csv(path: Path) -> tuple[np.ndarray, list[str] | None]:
    with path.open(newline="") as fh:
        rows = [r for r in csv.reader(fh) if r]
    if not rows:
        raise ReferenceError(f"{path}: empty CSV")
    header: list[str] | None = None
    if any(_float_or_none(v) is None for v in rows[0]):
        header, rows = [h.strip() for h in rows[0]], rows[1:]
    width = len(header) if header else len(rows[0])
    data = np.full((len(rows), width), np.nan)
    for i, r in enumerate(rows):
        if len(r) != width:
            raise ReferenceError(f"{path}: row {i + 1} has {len(r)} fields, expected {width}")
        for j, v in enumerate(r):
            f = _float_or_none(v)
            if f is None:
                col = header[j] if header else str(j)
                raise ReferenceError(f"{path}: non-numeric value {v!r} in column {col!r}")
            data[i, j] = f
    return data, header


def _read_npz(path: Path, key: str | None) -> tuple[np.ndarray, list[str] | None]:
    with np.load(path, allow_pickle=False) as z:
        keys = list(z.keys())
        if key is not None:
            if key not in keys:
                raise ReferenceError(f"{path}: no array {key!r} (have {keys})")
            return np.asarray(z[key]), None
        if len(keys) == 1:
            return np.asarray(z[keys[0]]), None
        arrays = [np.asarray(z[k]) for k in keys]
    if arrays and all(a.ndim == 1 for a in arrays) and len({a.shape[0] for a in arrays}) == 1:
        return np.stack(arrays, axis=1), keys
    raise ReferenceError(f"{path}: several arrays {keys}; choose one with --key")


def read_sample(
    path: str | os.PathLike[str],
    features: Sequence[str] | None = None,
    key: str | None = None,
) -> tuple[np.ndarray, list[str]]:
    p = Path(path)
    suffix = p.suffix.lower()
    names: list[str] | None
    if suffix == ".npy":
        data, names = np.load(p, allow_pickle=False), None
    elif suffix == ".npz":
        data, names = _read_npz(p, key)
    elif suffix == ".csv":
        data, names = _read_csv(p)
    else:
        raise ReferenceError(f"{p}: unsupported sample type (want one of {SAMPLE_SUFFIXES})")
    if not np.issubdtype(data.dtype, np.number) and data.dtype != np.bool_:
        raise ReferenceError(f"{p}: array of {data.dtype} is not numeric")
    data = np.asarray(data, dtype=np.float64)
    if data.ndim == 1:
        data = data[:, None]
    if data.ndim != 2:
        raise ReferenceError(f"{p}: need a 2-D array (rows x features), got shape {data.shape}")

    if features:
        features = list(features)
        if names is None:
            if len(features) != data.shape[1]:
                raise ReferenceError(
                    f"{p}: {len(features)} feature names for {data.shape[1]} columns"
                )
            names = features
        else:
            missing = [f for f in features if f not in names]
            if missing:
                raise ReferenceError(f"{p}: no column(s) {missing} (have {names})")
            data = data[:, [names.index(f) for f in features]]
            names = features
    if names is None:
        names = [f"f{i}" for i in range(data.shape[1])]
    return data, names
