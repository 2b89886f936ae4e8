"""hack/node/oci.py packs a root filesystem into an OCI image archive that
`ctr images import` loads (the real node's pause, CoreDNS and nodeprobe
images): a valid layout whose digests match their blobs, reproducible."""

from __future__ import annotations

import hashlib
import io
import json
import subprocess
import sys
import tarfile
from pathlib import Path

OCI = Path(__file__).resolve().parents[2] / "hack" / "node" / "oci.py"


def _pack(rootfs: Path, out: Path) -> str:
    proc = subprocess.run(
        [sys.executable, str(OCI), str(rootfs), str(out), "--name", "modelops.local/t:1",
         "--entrypoint", "/app", "--user", "65532"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    return proc.stdout.strip()


def _rootfs(tmp_path: Path) -> Path:
    root = tmp_path / "rootfs"
    (root / "etc").mkdir(parents=True)
    (root / "app").write_bytes(b"#!/bin/true\n")
    (root / "app").chmod(0o755)
    (root / "etc" / "passwd").write_text("root:x:0:0::/:/app\n")
    return root


def test_the_archive_is_a_valid_oci_layout_with_matching_digests(tmp_path: Path):
    out = tmp_path / "image.tar"
    digest = _pack(_rootfs(tmp_path), out)
    with tarfile.open(out) as tar:
        files = {m.name: tar.extractfile(m).read() for m in tar.getmembers()}
    assert json.loads(files["oci-layout"]) == {"imageLayoutVersion": "1.0.0"}
    for name, data in files.items():
        if name.startswith("blobs/sha256/"):
            assert hashlib.sha256(data).hexdigest() == name.rsplit("/", 1)[1]
    (entry,) = json.loads(files["index.json"])["manifests"]
    assert entry["digest"] == digest
    assert entry["annotations"]["io.containerd.image.name"] == "modelops.local/t:1"
    manifest = json.loads(files["blobs/sha256/" + digest.split(":")[1]])
    config = json.loads(files["blobs/sha256/" + manifest["config"]["digest"].split(":")[1]])
    assert config["config"]["Entrypoint"] == ["/app"]
    assert config["config"]["User"] == "65532"
    (layer,) = manifest["layers"]
    layer_bytes = files["blobs/sha256/" + layer["digest"].split(":")[1]]
    # Uncompressed layer: its digest is also the config's diff_id.
    assert config["rootfs"]["diff_ids"] == [layer["digest"]]
    with tarfile.open(fileobj=io.BytesIO(layer_bytes)) as tar:
        members = {m.name: m for m in tar.getmembers()}
    assert set(members) == {"app", "etc", "etc/passwd"}
    assert members["app"].mode & 0o111 and members["app"].uid == 0 and members["app"].mtime == 0


def test_equal_inputs_give_an_equal_archive(tmp_path: Path):
    rootfs = _rootfs(tmp_path)
    first, second = tmp_path / "a.tar", tmp_path / "b.tar"
    digest = _pack(rootfs, first)
    assert _pack(rootfs, second) == digest
    assert first.read_bytes() == second.read_bytes()
    # A changed file is a changed image.
    (rootfs / "app").write_bytes(b"#!/bin/false\n")
    assert _pack(rootfs, tmp_path / "c.tar") != digest
