"""contained(): every destination and local source path stays under its root."""

from __future__ import annotations

from pathlib import Path

import pytest

from modelops.storage.base import contained
from modelops.storage.errors import StorageError


@pytest.mark.parametrize(
    "relative",
    ["../escaped.txt", "a/../../escaped.txt", "/etc/passwd", "a//b", "", ".", "a/./b", "a\\b"],
)
def test_unsafe_relative_paths_are_refused(tmp_path, relative):
    with pytest.raises(StorageError) as err:
        contained(tmp_path, relative, where="s3://b/m/1")
    assert err.value.reason == "UnsafePath"
    assert err.value.one_line().startswith("UnsafePath: s3://b/m/1: refusing")


def test_a_symlink_leaving_the_root_is_refused(tmp_path):
    root = tmp_path / "root"
    root.mkdir()
    (root / "link").symlink_to(tmp_path)
    with pytest.raises(StorageError) as err:
        contained(root, "link/x", where="file:///root")
    assert "resolves outside" in str(err.value)


def test_plain_paths_resolve_inside(tmp_path):
    assert contained(tmp_path, "1/sub/model.pt", where="x") == (
        tmp_path.resolve() / "1" / "sub" / "model.pt"
    )
    assert isinstance(contained(tmp_path, "a", where="x"), Path)
