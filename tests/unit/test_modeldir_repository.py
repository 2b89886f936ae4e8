"""Local versioned model directories: atomic versions, completion marker, latest."""

from __future__ import annotations

import json
import os
import threading

import pytest

from modelops.modeldir.layout import CONFIG_NAME, INDEX_NAME, MANIFEST_NAME
from modelops.modeldir.repository import (
    ManifestMismatchError,
    VersionExistsError,
    copy_into,
    latest_version,
    verify_version_dir,
    version_numbers,
    write_version,
)


def test_versions_are_numbered_sealed_and_indexed(tmp_path):
    model = tmp_path / "m"
    assert write_version(model, copy_into({"w.bin": b"one"}), config_text="cfg1\n") == 1
    assert write_version(model, copy_into({"w.bin": b"two"}), config_text="cfg2\n") == 2
    assert (model / "2" / "w.bin").read_bytes() == b"two"
    assert (model / "1" / CONFIG_NAME).read_text() == "cfg1\n"
    # The model-level config follows the newest version.
    assert (model / CONFIG_NAME).read_text() == "cfg2\n"
    assert json.loads((model / INDEX_NAME).read_text()) == {"versions": [1, 2]}
    assert verify_version_dir(model / "2").keys() == {"w.bin", CONFIG_NAME}
    # Nothing but the versions and the two model files is left behind.
    assert sorted(p.name for p in model.iterdir()) == ["1", "2", CONFIG_NAME, INDEX_NAME]


def test_latest_version_ignores_incomplete_versions(tmp_path):
    model = tmp_path / "m"
    write_version(model, copy_into({"w": b"1"}))
    write_version(model, copy_into({"w": b"2"}))
    # A version copied in by hand (or half-written) has no manifest.
    (model / "3").mkdir()
    (model / "3" / "w").write_bytes(b"partial")
    (model / ".tmp-abc").mkdir()
    (model / "2.partial").mkdir()
    assert latest_version(tmp_path, "m") == 2
    assert version_numbers(model) == [1, 2]
    assert version_numbers(model, complete_only=False) == [1, 2, 3]
    assert latest_version(tmp_path, "missing") is None


def test_next_version_skips_incomplete_numbers(tmp_path):
    model = tmp_path / "m"
    write_version(model, copy_into({"w": b"1"}))
    (model / "2").mkdir()  # someone is still writing 2
    assert write_version(model, copy_into({"w": b"3"})) == 3


def test_explicit_version_is_immutable(tmp_path):
    model = tmp_path / "m"
    assert write_version(model, copy_into({"w": b"1"}), version=5) == 5
    with pytest.raises(VersionExistsError):
        write_version(model, copy_into({"w": b"other"}), version=5)
    assert (model / "5" / "w").read_bytes() == b"1"
    assert not [p for p in model.iterdir() if p.name.startswith(".tmp-")]


def test_failed_populate_leaves_nothing(tmp_path):
    model = tmp_path / "m"

    def broken(staging):
        (staging / "w").write_bytes(b"x")
        raise RuntimeError("disk on fire")

    with pytest.raises(RuntimeError):
        write_version(model, broken)
    assert list(model.iterdir()) == []
    assert latest_version(tmp_path, "m") is None


def test_concurrent_writers_get_distinct_versions(tmp_path):
    model = tmp_path / "m"
    results: list[int] = []
    barrier = threading.Barrier(4)

    def writer(i: int) -> None:
        def populate(staging):
            (staging / "w").write_bytes(str(i).encode())
            barrier.wait()  # all commit at once

        results.append(write_version(model, populate))

    threads = [threading.Thread(target=writer, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == [1, 2, 3, 4]
    for v in results:
        verify_version_dir(model / str(v))


def test_verify_detects_changes(tmp_path):
    model = tmp_path / "m"
    write_version(model, copy_into({"w": b"good"}))
    version = model / "1"
    (version / "w").write_bytes(b"evil")
    with pytest.raises(ManifestMismatchError, match=r"changed \['w'\]"):
        verify_version_dir(version)
    (version / "w").write_bytes(b"good")
    (version / "extra").write_bytes(b"")
    with pytest.raises(ManifestMismatchError, match=r"unlisted \['extra'\]"):
        verify_version_dir(version)
    verify_version_dir(version, exact=False)
    # Bytecode the python backend writes next to model.py is not part of the version.
    os.remove(version / "extra")
    (version / "__pycache__").mkdir()
    (version / "__pycache__" / "model.cpython-311.pyc").write_bytes(b"\0")
    verify_version_dir(version)
    (version / MANIFEST_NAME).unlink()
    with pytest.raises(FileNotFoundError):
        verify_version_dir(version)


def test_symlinks_are_refused(tmp_path):
    target = tmp_path / "secret"
    target.write_text("x")

    def populate(staging):
        (staging / "link").symlink_to(target)

    with pytest.raises(ValueError, match="symlink"):
        write_version(tmp_path / "m", populate)
