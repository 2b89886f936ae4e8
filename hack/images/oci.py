"""Writes an OCI image archive (an image layout in a tar) from layer tarballs.

Used by hack/images/build.sh instead of a container engine: the image is a
few JSON documents and gzip'ed layers, and writing them here keeps every byte
under control, so two builds from the same inputs give the same digest:

* layers are gzip'ed with mtime 0 and no file name (the tar streams are made
  deterministic by the caller: sorted names, fixed mtimes, numeric owners);
* the config's `created` and history times are SOURCE_DATE_EPOCH;
* the archive itself is a tar with sorted entries, fixed mtimes, uid/gid 0.

The index names the image twice: `org.opencontainers.image.ref.name` (skopeo,
podman's oci-archive transport) and `io.containerd.image.name` (what
`ctr images import` names the image by).

A layer is either a plain tar ("path"), gzip'ed here, or one gzip'ed before
("blob" with its "digest", "diff_id", "size" and "uncompressed_size", as
`oci.py gzip` printed them): build.sh caches the large dependency layer that
way, so a change to the project alone compresses only the project's layer.

Standard library only: it runs with any Python 3.11 before the project's
virtual environment exists.

    oci.py SPEC.json ARCHIVE   # prints {"digest": ..., "size": ...} on stdout
    oci.py gzip LAYER.tar BLOB # writes BLOB, prints {"digest", "diff_id", "size", ...}
    tar -cf - ... | oci.py gzip - BLOB
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import shutil
import sys
import tarfile
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO

MEDIA_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MEDIA_CONFIG = "application/vnd.oci.image.config.v1+json"
MEDIA_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
CHUNK = 1 << 20


def _json_bytes(doc: dict[str, Any]) -> bytes:
    # Sorted keys, no spaces: the same document always hashes the same.
    return json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()


def _put(blobs: Path, data: bytes) -> tuple[str, int]:
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    (blobs / digest.removeprefix("sha256:")).write_bytes(data)
    return digest, len(data)


def gzip_layer(layer: BinaryIO, blob: Path) -> dict[str, Any]:
    """Compresses a layer tar (a stream: build.sh pipes tar in, so the plain tar
    never lands on disk) to BLOB: its digest, diff_id (of the plain tar), sizes."""
    plain = hashlib.sha256()
    plain_size = 0
    tmp = blob.with_name(blob.name + ".partial")
    # filename="" and mtime=0: no name or time in the gzip header.
    with (
        tmp.open("wb") as raw,
        gzip.GzipFile(filename="", mode="wb", fileobj=raw, compresslevel=6, mtime=0) as gz,
    ):
        while chunk := layer.read(CHUNK):
            plain.update(chunk)
            plain_size += len(chunk)
            gz.write(chunk)
    packed = hashlib.sha256()
    with tmp.open("rb") as f:
        while chunk := f.read(CHUNK):
            packed.update(chunk)
    tmp.replace(blob)
    return {
        "digest": "sha256:" + packed.hexdigest(),
        "diff_id": "sha256:" + plain.hexdigest(),
        "size": blob.stat().st_size,
        "uncompressed_size": plain_size,
    }


def _add_layer(blobs: Path, layer: dict[str, Any]) -> dict[str, Any]:
    """Puts one layer's gzip blob into the layout; returns its digests and sizes."""
    if "blob" not in layer:
        tmp = blobs / "layer.tmp"
        with Path(layer["path"]).open("rb") as plain:
            done = gzip_layer(plain, tmp)
        tmp.rename(blobs / done["digest"].removeprefix("sha256:"))
        return done
    done = {k: layer[k] for k in ("digest", "diff_id", "size", "uncompressed_size")}
    target = blobs / done["digest"].removeprefix("sha256:")
    # A cached blob is trusted only as far as its size; the digest is checked
    # when the archive is read (ctr, podman); a hard link avoids a copy.
    if Path(layer["blob"]).stat().st_size != done["size"]:
        raise SystemExit(f"cached layer {layer['blob']} is not {done['size']} bytes")
    try:
        os.link(layer["blob"], target)
    except OSError:
        shutil.copyfile(layer["blob"], target)
    return done


def build(spec: dict[str, Any], archive: Path) -> dict[str, Any]:
    epoch = int(spec["epoch"])
    created = datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    with tempfile.TemporaryDirectory(dir=archive.parent) as tmp:
        layout = Path(tmp)
        blobs = layout / "blobs" / "sha256"
        blobs.mkdir(parents=True)
        layers, diff_ids, history = [], [], []
        uncompressed = 0
        for layer in spec["layers"]:
            done = _add_layer(blobs, layer)
            layers.append(
                {"mediaType": MEDIA_LAYER, "digest": done["digest"], "size": done["size"]}
            )
            diff_ids.append(done["diff_id"])
            uncompressed += done["uncompressed_size"]
            history.append({"created": created, "created_by": layer["created_by"]})
        config = {
            "created": created,
            "architecture": "amd64",
            "os": "linux",
            "config": spec["config"],
            "rootfs": {"type": "layers", "diff_ids": diff_ids},
            "history": history,
        }
        config_digest, config_size = _put(blobs, _json_bytes(config))
        annotations = spec["config"].get("Labels", {})
        manifest = {
            "schemaVersion": 2,
            "mediaType": MEDIA_MANIFEST,
            "config": {"mediaType": MEDIA_CONFIG, "digest": config_digest, "size": config_size},
            "layers": layers,
            "annotations": annotations,
        }
        manifest_digest, manifest_size = _put(blobs, _json_bytes(manifest))
        index = {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.index.v1+json",
            "manifests": [
                {
                    "mediaType": MEDIA_MANIFEST,
                    "digest": manifest_digest,
                    "size": manifest_size,
                    "platform": {"architecture": "amd64", "os": "linux"},
                    "annotations": {
                        "org.opencontainers.image.ref.name": spec["ref"],
                        "io.containerd.image.name": spec["ref"],
                    },
                }
            ],
        }
        (layout / "index.json").write_bytes(_json_bytes(index))
        (layout / "oci-layout").write_bytes(_json_bytes({"imageLayoutVersion": "1.0.0"}))
        _tar_layout(layout, archive, epoch)
    return {
        "digest": manifest_digest,
        # What a registry or containerd stores: compressed layers + config + manifest.
        "size": sum(entry["size"] for entry in layers) + config_size + manifest_size,
        "uncompressed_size": uncompressed,
    }


def _tar_layout(layout: Path, archive: Path, epoch: int) -> None:
    partial = archive.with_name(archive.name + ".partial")
    with tarfile.open(partial, "w", format=tarfile.PAX_FORMAT) as tar:
        for path in sorted(layout.rglob("*")):
            info = tar.gettarinfo(str(path), arcname=str(path.relative_to(layout)))
            info.mtime, info.uid, info.gid, info.uname, info.gname = epoch, 0, 0, "", ""
            info.mode = 0o755 if path.is_dir() else 0o644
            if path.is_file():
                with path.open("rb") as f:
                    tar.addfile(info, f)
            else:
                tar.addfile(info)
    partial.replace(archive)


def main(argv: list[str]) -> int:
    if len(argv) == 4 and argv[1] == "gzip":
        if argv[2] == "-":
            done = gzip_layer(sys.stdin.buffer, Path(argv[3]))
        else:
            with Path(argv[2]).open("rb") as plain:
                done = gzip_layer(plain, Path(argv[3]))
        json.dump(done, sys.stdout)
        print()
        return 0
    if len(argv) != 3:
        print(__doc__, file=sys.stderr)
        return 2
    spec = json.loads(Path(argv[1]).read_text())
    result = build(spec, Path(argv[2]))
    json.dump(result, sys.stdout)
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
