"""Dataset URIs and files of the tabular example, and fetching data files (numpy only)."""

from __future__ import annotations

import numpy as np
import pytest

from modelops.storage.errors import StorageError
from modelops.trainer.examples.tabular_data import (
    N_FEATURES,
    DatasetError,
    SyntheticTable,
    label_rule,
    load_table,
    make_table,
    parse_synthetic_uri,
    read_table,
    write_npz,
)
from modelops.trainer.fetch import DataFileNotFoundError, fetch_data_file


def test_synthetic_uri_defaults_and_values():
    assert parse_synthetic_uri("synthetic://tabular") == SyntheticTable()
    assert parse_synthetic_uri("synthetic://tabular?rows=50&seed=3&shift=-0.5") == (
        SyntheticTable(rows=50, seed=3, shift=-0.5)
    )


@pytest.mark.parametrize(
    ("uri", "message"),
    [
        ("synthetic://images?rows=5", "expected synthetic://tabular"),
        ("synthetic://tabular/x?rows=5", "expected synthetic://tabular"),
        ("s3://tabular?rows=5", "expected synthetic://tabular"),
        ("synthetic://tabular?rows=5&colour=red", "unknown parameters"),
        ("synthetic://tabular?rows=5&rows=6", "given twice"),
        ("synthetic://tabular?rows=many", "invalid literal"),
        ("synthetic://tabular?rows=0", "rows >= 1"),
        ("synthetic://tabular?shift=nan", "finite shift"),
    ],
)
def test_synthetic_uri_errors(uri, message):
    with pytest.raises(DatasetError, match=message):
        parse_synthetic_uri(uri)


def test_synthetic_table_is_deterministic_and_seeded():
    x1, y1 = make_table(SyntheticTable(rows=500, seed=4))
    x2, y2 = make_table(SyntheticTable(rows=500, seed=4))
    x3, _ = make_table(SyntheticTable(rows=500, seed=5))
    assert x1.shape == (500, N_FEATURES) and x1.dtype == np.float32
    assert y1.shape == (500,) and y1.dtype == np.int64
    np.testing.assert_array_equal(x1, x2)
    np.testing.assert_array_equal(y1, y2)
    assert not np.array_equal(x1, x3)


def test_synthetic_table_is_a_balanced_learnable_problem():
    x, y = make_table(SyntheticTable(rows=20_000, seed=0))
    assert 0.4 < y.mean() < 0.6
    # 5% label noise around a fixed rule: the rule explains ~95% of the labels.
    agreement = (label_rule(x.astype(np.float64)) == y).mean()
    assert 0.93 < agreement < 0.97
    assert abs(x.mean()) < 0.02 and abs(x.std() - 1) < 0.02


def test_shift_moves_every_feature_and_keeps_the_rule():
    x, y = make_table(SyntheticTable(rows=5000, seed=1, shift=1.5))
    np.testing.assert_allclose(x.mean(axis=0), 1.5, atol=0.1)
    # Covariate drift only: the same rule (plus 5% noise) labels the shifted rows.
    assert 0.93 < (label_rule(x.astype(np.float64)) == y).mean() < 0.97


def test_npz_round_trip(tmp_path):
    x, y = make_table(SyntheticTable(rows=30, seed=2))
    path = write_npz(tmp_path / "data.npz", x, y)
    x2, y2 = read_table(path)
    np.testing.assert_array_equal(x, x2)
    np.testing.assert_array_equal(y, y2)


def test_csv_with_label_column_anywhere(tmp_path):
    x, y = make_table(SyntheticTable(rows=10, seed=3))
    header = ["label", *[f"f{i}" for i in range(N_FEATURES)]]
    rows = [
        ",".join([str(int(label)), *(repr(float(v)) for v in row)])
        for row, label in zip(x, y, strict=True)
    ]
    path = tmp_path / "data.csv"
    path.write_text(",".join(header) + "\n" + "\n".join(rows) + "\n")
    x2, y2 = read_table(path)
    np.testing.assert_allclose(x, x2, rtol=1e-6)
    np.testing.assert_array_equal(y, y2)


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("d.csv", "f0,f1\n1,2\n", "no 'label' column"),
        ("d.csv", "label,f0\n1,2\n", "features must be rows x 20"),
        ("d.json", "{}", "expected a .npz or .csv"),
    ],
)
def test_table_errors(tmp_path, name, content, message):
    path = tmp_path / name
    path.write_text(content)
    with pytest.raises(DatasetError, match=message):
        read_table(path)


def test_labels_must_be_class_indices(tmp_path):
    x, y = make_table(SyntheticTable(rows=5))
    path = write_npz(tmp_path / "bad.npz", x, y + 2)
    with pytest.raises(DatasetError, match="class indices"):
        read_table(path)
    path = write_npz(tmp_path / "short.npz", x, y[:3])
    with pytest.raises(DatasetError, match="3 labels for 5 rows"):
        read_table(path)


def test_load_table_reads_file_uris(tmp_path):
    x, y = make_table(SyntheticTable(rows=12, seed=9))
    path = write_npz(tmp_path / "train.npz", x, y)
    x2, y2 = load_table(f"file://{path}")
    np.testing.assert_array_equal(x, x2)
    np.testing.assert_array_equal(y, y2)


def test_fetch_uses_local_files_in_place_and_reports_missing_ones(tmp_path):
    path = tmp_path / "data.npz"
    path.write_bytes(b"x")
    assert fetch_data_file(f"file://{path}", tmp_path / "work") == path
    with pytest.raises(DataFileNotFoundError, match=r"nope\.npz: no such file"):
        fetch_data_file(f"file://{tmp_path}/nope.npz", tmp_path / "work")
    with pytest.raises(StorageError) as err:
        fetch_data_file("ftp://host/data.npz", tmp_path)
    assert err.value.reason == "UnsupportedScheme"


def test_fetch_resolves_pvc_uris_under_the_mount_root(tmp_path, monkeypatch):
    (tmp_path / "claim" / "sets").mkdir(parents=True)
    (tmp_path / "claim" / "sets" / "d.npz").write_bytes(b"x")
    monkeypatch.setenv("MODELOPS_PVC_MOUNT_ROOT", str(tmp_path))
    assert fetch_data_file("pvc://claim/sets/d.npz", tmp_path) == tmp_path / "claim/sets/d.npz"
