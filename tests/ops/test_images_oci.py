"""hack/images/oci.py writes the project's images: a cached, already gzip'ed
layer (how build.sh keeps the large dependency layer between builds) gives the
same image, byte for byte, as the same layer compressed afresh; and two builds
from the same inputs give the same archive."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import subprocess
import sys
import tarfile
from pathlib import Path
from typing import Any

import pytest

OCI = Path(__file__).resolve().parents[2] / "hack" / "images" / "oci.py"
EPOCH = 1796601600


def _layer(path: Path, files: dict[str, bytes]) -> Path:
    with tarfile.open(path, "w", format=tarfile.PAX_FORMAT) as tar:
        for name, data in sorted(files.items()):
            info = tarfile.TarInfo(name)
            info.size, info.mtime, info.mode = len(data), EPOCH, 0o644
            tar.addfile(info, io.BytesIO(data))
    return path


def _run(*args: str | Path) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, str(OCI), *map(str, args)], capture_output=True, text=True, check=True
    )
    return json.loads(done.stdout)


def _spec(tmp_path: Path, layers: list[dict[str, Any]], name: str) -> Path:
    spec = {
        "epoch": EPOCH,
        "ref": "localhost/modelops-test:0.0.1",
        "layers": layers,
        "config": {"User": "1000:1000", "Labels": {"org.opencontainers.image.revision": "abc"}},
    }
    path = tmp_path / f"{name}.json"
    path.write_text(json.dumps(spec))
    return path


@pytest.fixture
def layers(tmp_path: Path) -> tuple[Path, Path]:
    deps = _layer(tmp_path / "deps.tar", {"opt/venv/lib/dep.py": b"x = 1\n" * 5000})
    project = _layer(tmp_path / "project.tar", {"opt/venv/lib/modelops/__init__.py": b"v = 2\n"})
    return deps, project


def test_a_cached_gzip_layer_gives_the_same_image_as_a_fresh_one(tmp_path, layers):
    deps, project = layers
    cached = _run("gzip", deps, tmp_path / "deps.tar.gz")
    blob = (tmp_path / "deps.tar.gz").read_bytes()
    assert cached["digest"] == "sha256:" + hashlib.sha256(blob).hexdigest()
    assert cached["diff_id"] == "sha256:" + hashlib.sha256(deps.read_bytes()).hexdigest()
    assert gzip.decompress(blob) == deps.read_bytes()
    assert cached["size"] == len(blob) and cached["uncompressed_size"] == deps.stat().st_size
    # Piped in (how build.sh writes the dependency layer, never storing the plain tar).
    piped = subprocess.run(
        [sys.executable, str(OCI), "gzip", "-", str(tmp_path / "piped.tar.gz")],
        input=deps.read_bytes(),
        capture_output=True,
        check=True,
    )
    assert json.loads(piped.stdout) == cached
    assert (tmp_path / "piped.tar.gz").read_bytes() == blob

    fresh = [{"path": str(deps), "created_by": "deps"}, {"path": str(project), "created_by": "p"}]
    reused = [
        {**cached, "blob": str(tmp_path / "deps.tar.gz"), "created_by": "deps"},
        {"path": str(project), "created_by": "p"},
    ]
    a = _run(_spec(tmp_path, fresh, "fresh"), tmp_path / "a.tar")
    b = _run(_spec(tmp_path, reused, "reused"), tmp_path / "b.tar")
    again = _run(_spec(tmp_path, reused, "reused"), tmp_path / "c.tar")
    assert a == b == again
    assert (tmp_path / "a.tar").read_bytes() == (tmp_path / "c.tar").read_bytes()
    assert a["uncompressed_size"] == deps.stat().st_size + project.stat().st_size

    # The archive: each blob under its digest, the layers in order, diff_ids of the tars.
    with tarfile.open(tmp_path / "b.tar") as tar:
        files = {m.name: tar.extractfile(m).read() for m in tar.getmembers() if m.isfile()}
    for name, data in files.items():
        if name.startswith("blobs/sha256/"):
            assert hashlib.sha256(data).hexdigest() == name.rsplit("/", 1)[1]
    manifest = json.loads(files["blobs/sha256/" + a["digest"].removeprefix("sha256:")])
    assert manifest["layers"][0]["digest"] == cached["digest"]
    config = json.loads(files["blobs/sha256/" + manifest["config"]["digest"].split(":")[1]])
    assert config["rootfs"]["diff_ids"] == [
        cached["diff_id"],
        "sha256:" + hashlib.sha256(project.read_bytes()).hexdigest(),
    ]
    assert manifest["annotations"]["org.opencontainers.image.revision"] == "abc"


def test_a_cached_blob_of_the_wrong_size_is_refused(tmp_path, layers):
    deps, _ = layers
    cached = _run("gzip", deps, tmp_path / "deps.tar.gz")
    spec = _spec(
        tmp_path,
        [
            {
                **cached,
                "size": cached["size"] + 1,
                "blob": str(tmp_path / "deps.tar.gz"),
                "created_by": "d",
            }
        ],
        "bad",
    )
    done = subprocess.run(
        [sys.executable, str(OCI), str(spec), str(tmp_path / "x.tar")],
        capture_output=True,
        text=True,
    )
    assert done.returncode != 0 and "is not" in done.stderr
    assert not (tmp_path / "x.tar").exists()
