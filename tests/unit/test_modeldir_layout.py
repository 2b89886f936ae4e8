"""Version selection, manifests and index files (pure)."""

from __future__ import annotations

import pytest

from modelops.modeldir.layout import (
    LayoutError,
    parse_index,
    parse_manifest,
    parse_version_dir,
    parse_version_request,
    render_index,
    render_manifest,
    select_version,
)

A = "a" * 64
B = "b" * 64


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("1", 1),
        ("12", 12),
        ("0", None),
        ("01", None),
        ("2.partial", None),
        (".tmp-3", None),
        ("-1", None),
        ("latest", None),
        ("", None),
    ],
)
def test_parse_version_dir(name, expected):
    # Stricter than Triton, which reads "2.partial" as version 2.
    assert parse_version_dir(name) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [("latest", None), ("LATEST", None), (" 3 ", 3), ("3", 3), (7, 7)],
)
def test_parse_version_request(value, expected):
    assert parse_version_request(value) == expected


@pytest.mark.parametrize("value", ["0", "-1", "v3", "1.5", "", 0, -2, True])
def test_parse_version_request_rejects(value):
    with pytest.raises(LayoutError):
        parse_version_request(value)


def test_select_version():
    assert select_version([1, 3, 2], None) == 3
    assert select_version([1, 3, 2], 2) == 2
    assert select_version([1, 3], 2) is None
    assert select_version([], None) is None


def test_manifest_round_trip_is_sorted_and_sha256sum_compatible():
    text = render_manifest({"model.py": B, "model.pt": A, "sub/w.bin": A})
    assert text == f"{A}  model.pt\n{B}  model.py\n{A}  sub/w.bin\n"
    assert parse_manifest(text) == {"model.pt": A, "model.py": B, "sub/w.bin": A}


def test_manifest_accepts_binary_marker_and_blank_lines():
    assert parse_manifest(f"{A} *model.pt\n\n") == {"model.pt": A}


@pytest.mark.parametrize(
    "text",
    [
        "",
        "not a manifest\n",
        f"{A[:-1]}  model.pt\n",
        f"{A}  ../escape\n",
        f"{A}  /abs\n",
        f"{A}  a//b\n",
        f"{A}  model.pt\n{B}  model.pt\n",
    ],
)
def test_manifest_rejects(text):
    with pytest.raises(LayoutError):
        parse_manifest(text)


def test_render_manifest_rejects_bad_input():
    with pytest.raises(LayoutError):
        render_manifest({"SHA256SUMS": A})
    with pytest.raises(LayoutError):
        render_manifest({"x": "nothex"})


def test_index_round_trip():
    assert parse_index(render_index([3, 1, 2, 3])) == [1, 2, 3]


@pytest.mark.parametrize("text", ["[]", '{"versions": 3}', '{"versions": ["latest"]}', "{", "{}"])
def test_index_rejects(text):
    with pytest.raises(LayoutError):
        parse_index(text)
