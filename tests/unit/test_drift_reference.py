"""Reference statistics: binning, file format, samples, `modelops drift-reference`."""

from __future__ import annotations

import argparse
import json

import numpy as np
import pytest

from modelops.drift import reference_cli
from modelops.drift.reference import (
    FORMAT,
    Reference,
    ReferenceError,
    build_reference,
    quantile_edges,
)
from modelops.drift.sample import read_sample
from modelops.drift.source import load_reference


def test_quantile_bins_hold_equal_mass_and_tails_are_open():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(20_000, 1))
    f = build_reference(x, bins=10).features[0]
    assert f.edges.size == 9 and f.n_bins == 10
    np.testing.assert_allclose(f.counts / f.n, 0.1, atol=0.002)
    assert f.counts.sum() == 20_000
    # Tails: the first/last bins reach to -inf/+inf, so out-of-range values have a bin.
    assert f.edges[0] > f.min and f.edges[-1] < f.max


def test_moments():
    rng = np.random.default_rng(1)
    x = rng.normal(3.0, 2.0, size=(5000, 2))
    ref = build_reference(x, ["a", "b"])
    a = ref.features[0]
    assert a.mean == pytest.approx(x[:, 0].mean())
    assert a.var == pytest.approx(x[:, 0].var(ddof=1))
    assert ref.names == ["a", "b"] and ref.n_samples == 5000


def test_discrete_and_constant_features_collapse_duplicate_edges():
    x = np.column_stack([np.r_[np.zeros(700), np.ones(300)], np.full(1000, 5.0)])
    ref = build_reference(x, bins=20)
    binary, const = ref.features
    np.testing.assert_array_equal(binary.edges, [0.0, 1.0])
    np.testing.assert_array_equal(binary.counts, [0, 700, 300])
    np.testing.assert_array_equal(const.edges, [5.0])
    np.testing.assert_array_equal(const.counts, [0, 1000])
    assert const.var == 0


def test_non_finite_values_are_ignored_per_feature():
    x = np.array([[1.0, np.nan], [2.0, 3.0], [np.inf, 4.0], [4.0, 5.0]])
    ref = build_reference(x, bins=2)
    assert ref.features[0].n == 3 and ref.features[1].n == 3
    with pytest.raises(ReferenceError, match="no finite"):
        build_reference(np.array([[np.nan], [np.nan]]))


@pytest.mark.parametrize(
    ("sample", "names", "bins", "match"),
    [
        (np.zeros((0, 3)), None, 10, "non-empty"),
        (np.zeros((3, 2)), ["a"], 10, "names"),
        (np.zeros((3, 2)), ["a", "a"], 10, "duplicate"),
        (np.zeros((3, 2)), None, 1, "2 bins"),
    ],
)
def test_build_rejects_bad_input(sample, names, bins, match):
    with pytest.raises(ReferenceError, match=match):
        build_reference(sample, names, bins)


def test_quantile_edges_strictly_increasing():
    e = quantile_edges(np.array([1.0, 1, 1, 2, 2, 3]), 10)
    assert np.all(np.diff(e) > 0)


def test_json_round_trip(tmp_path):
    rng = np.random.default_rng(2)
    ref = build_reference(rng.normal(size=(1000, 3)), ["x", "y", "z"], bins=8)
    path = tmp_path / "ref.json"
    ref.save(path)
    doc = json.loads(path.read_text())
    assert doc["format"] == FORMAT and doc["version"] == 1
    assert len(doc["features"][0]["counts"]) == len(doc["features"][0]["edges"]) + 1
    back = Reference.load(path)
    assert back.names == ref.names and back.n_samples == 1000
    for a, b in zip(ref.features, back.features, strict=True):
        np.testing.assert_array_equal(a.edges, b.edges)
        np.testing.assert_array_equal(a.counts, b.counts)
        assert a.mean == b.mean and a.var == b.var


def _doc(**feature_overrides):
    feat = {"name": "a", "edges": [0.0, 1.0], "counts": [1, 2, 3], "n": 6, "mean": 0.5, "var": 1}
    feat.update(feature_overrides)
    return {"format": FORMAT, "version": 1, "features": [feat]}


@pytest.mark.parametrize(
    ("doc", "match"),
    [
        ({"format": "something-else", "version": 1}, "not a drift reference"),
        ({**_doc(), "version": 99}, "unsupported reference version"),
        ({**_doc(), "features": []}, "no features"),
        (_doc(counts=[1, 2]), "len\\(counts\\)"),
        (_doc(edges=[1.0, 0.0], counts=[1, 2, 3]), "increasing"),
        (_doc(counts=[0, 0, 0]), "positive total"),
        (_doc(var=-1), "var"),
        (_doc(edges="nope"), "a"),
        ({**_doc(), "features": [_doc()["features"][0]] * 2}, "duplicate"),
    ],
)
def test_load_rejects_invalid_documents(doc, match):
    with pytest.raises(ReferenceError, match=match):
        Reference.from_dict(doc)


def test_load_ignores_unknown_keys():
    doc = _doc(extra=1)
    doc["future_field"] = {"x": 1}
    assert Reference.from_dict(doc).names == ["a"]


# -- samples -------------------------------------------------------------------


def test_read_csv_with_header_and_missing_cells(tmp_path):
    p = tmp_path / "s.csv"
    p.write_text("age,income,score\n30,1000,0.5\n40,,0.7\n\n50,3000,0.9\n")
    data, names = read_sample(p)
    assert names == ["age", "income", "score"]
    assert data.shape == (3, 3) and np.isnan(data[1, 1])
    data, names = read_sample(p, ["score", "age"])
    assert names == ["score", "age"]
    np.testing.assert_array_equal(data[:, 1], [30, 40, 50])


def test_read_csv_errors(tmp_path):
    p = tmp_path / "s.csv"
    p.write_text("a,b\n1,x\n")
    with pytest.raises(ReferenceError, match="non-numeric"):
        read_sample(p)
    p.write_text("a,b\n1,2,3\n")
    with pytest.raises(ReferenceError, match="fields"):
        read_sample(p)
    p.write_text("a,b\n1,2\n")
    with pytest.raises(ReferenceError, match="no column"):
        read_sample(p, ["c"])


def test_read_headerless_csv_and_npy(tmp_path):
    p = tmp_path / "s.csv"
    p.write_text("1,2\n3,4\n")
    data, names = read_sample(p)
    assert names == ["f0", "f1"] and data.tolist() == [[1, 2], [3, 4]]
    n = tmp_path / "s.npy"
    np.save(n, np.arange(6, dtype=np.int32).reshape(3, 2))
    data, names = read_sample(n, ["u", "v"])
    assert names == ["u", "v"] and data.dtype == np.float64
    with pytest.raises(ReferenceError, match="2 columns"):
        read_sample(n, ["u"])


def test_read_npz_variants(tmp_path):
    p = tmp_path / "cols.npz"
    np.savez(p, height=np.arange(5.0), weight=np.arange(5.0) * 2)
    data, names = read_sample(p)
    assert names == ["height", "weight"] and data.shape == (5, 2)
    q = tmp_path / "two.npz"
    np.savez(q, x=np.zeros((4, 3)), y=np.zeros(4))
    with pytest.raises(ReferenceError, match="--key"):
        read_sample(q)
    data, names = read_sample(q, key="x")
    assert data.shape == (4, 3)


def test_read_rejects_unknown_suffix_and_bad_arrays(tmp_path):
    with pytest.raises(ReferenceError, match="unsupported"):
        read_sample(tmp_path / "s.parquet")
    p = tmp_path / "s.npy"
    np.save(p, np.zeros((2, 2, 2)))
    with pytest.raises(ReferenceError, match="2-D"):
        read_sample(p)
    np.save(p, np.array(["a", "b"]))
    with pytest.raises(ReferenceError, match="not numeric"):
        read_sample(p)


# -- loading by URI ----------------------------------------------------------------


def test_load_reference_from_json_sample_and_file_uri(tmp_path):
    rng = np.random.default_rng(3)
    sample = rng.normal(size=(500, 3))
    np.save(tmp_path / "s.npy", sample)
    from_sample = load_reference(str(tmp_path / "s.npy"), bins=5)
    assert from_sample.names == ["f0", "f1", "f2"] and from_sample.features[0].n_bins == 5
    from_sample.save(tmp_path / "r.json")
    ref = load_reference(f"file://{tmp_path / 'r.json'}", features=["f2", "f0"])
    assert ref.names == ["f2", "f0"]
    with pytest.raises(ReferenceError, match="no feature"):
        load_reference(str(tmp_path / "r.json"), features=["nope"])
    with pytest.raises(ReferenceError, match="not found"):
        load_reference(str(tmp_path / "missing.json"))
    with pytest.raises(ReferenceError, match="pull it into the pod"):
        load_reference("s3://bucket/ref.json")
    (tmp_path / "bad.json").write_text("{nope")
    with pytest.raises(ReferenceError, match="not JSON"):
        load_reference(str(tmp_path / "bad.json"))


# -- the CLI -----------------------------------------------------------------------


def _run_cli(argv):
    parser = argparse.ArgumentParser()
    reference_cli.add_arguments(parser)
    return reference_cli.run(parser.parse_args(argv))


def test_cli_writes_a_loadable_reference(tmp_path, capsys):
    src = tmp_path / "train.csv"
    rng = np.random.default_rng(4)
    rows = rng.normal(size=(300, 2))
    src.write_text("a,b\n" + "\n".join(f"{x},{y}" for x, y in rows) + "\n")
    out = tmp_path / "ref.json"
    assert _run_cli([str(src), "-o", str(out), "--bins", "6", "--max-rows", "200"]) == 0
    ref = Reference.load(out)
    assert ref.names == ["a", "b"] and ref.n_samples == 200
    assert ref.features[0].n_bins == 6
    assert "2 features from 200 rows" in capsys.readouterr().out


def test_cli_reports_errors(tmp_path, capsys):
    assert _run_cli([str(tmp_path / "none.npy"), "-o", str(tmp_path / "r.json")]) == 1
    np.save(tmp_path / "s.npy", np.zeros((3, 1)))
    assert _run_cli([str(tmp_path / "s.npy"), "-o", str(tmp_path / "r.npz")]) == 1
    assert "drift-reference:" in capsys.readouterr().err
