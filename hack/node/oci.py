#!/usr/bin/env python3
"""Packs a root filesystem directory into an OCI image archive, without a
container engine: one uncompressed layer, an image config, a manifest and an
index in the OCI image layout, tarred. `ctr images import` loads the archive
under the name in the index's annotations.

    oci.py ROOTFS OUT.tar --name REF [--entrypoint ARG]... [--user UID] [--env K=V]...

The archive is reproducible: entries sorted, owned by root, mtime 0, so equal
inputs give an equal digest (printed on stdout).
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import tarfile

LAYER = "application/vnd.oci.image.layer.v1.tar"
CONFIG = "application/vnd.oci.image.config.v1+json"
MANIFEST = "application/vnd.oci.image.manifest.v1+json"


def _normalize(info: tarfile.TarInfo) -> tarfile.TarInfo:
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    info.mtime = 0
    return info


def layer_tar(rootfs: str) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for dirpath, dirnames, filenames in os.walk(rootfs):
            dirnames.sort()
            for name in sorted(dirnames) + sorted(filenames):
                path = os.path.join(dirpath, name)
                arcname = os.path.relpath(path, rootfs)
                tar.add(path, arcname=arcname, recursive=False, filter=_normalize)
    return buf.getvalue()


def blob(data: bytes) -> tuple[str, dict]:
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    return digest, {"digest": digest, "size": len(data)}


def add_file(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = _normalize(tarfile.TarInfo(name))
    info.size = len(data)
    tar.addfile(info, io.BytesIO(data))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("rootfs")
    ap.add_argument("out")
    ap.add_argument("--name", required=True, help="image reference, e.g. modelops.local/pause:1")
    ap.add_argument("--entrypoint", action="append", default=[])
    ap.add_argument("--user", default="")
    ap.add_argument("--env", action="append", default=["PATH=/"])
    args = ap.parse_args()

    layer = layer_tar(args.rootfs)
    layer_digest, layer_desc = blob(layer)
    config = {
        "architecture": "amd64",
        "os": "linux",
        "config": {"Entrypoint": args.entrypoint, "Env": args.env, "User": args.user},
        "rootfs": {"type": "layers", "diff_ids": [layer_digest]},
    }
    config_bytes = json.dumps(config, sort_keys=True).encode()
    config_digest, config_desc = blob(config_bytes)
    manifest = {
        "schemaVersion": 2,
        "mediaType": MANIFEST,
        "config": {"mediaType": CONFIG, **config_desc},
        "layers": [{"mediaType": LAYER, **layer_desc}],
    }
    manifest_bytes = json.dumps(manifest, sort_keys=True).encode()
    manifest_digest, manifest_desc = blob(manifest_bytes)
    index = {
        "schemaVersion": 2,
        "manifests": [
            {
                "mediaType": MANIFEST,
                **manifest_desc,
                # containerd names the imported image after this annotation.
                "annotations": {
                    "io.containerd.image.name": args.name,
                    "org.opencontainers.image.ref.name": args.name.rsplit(":", 1)[-1],
                },
            }
        ],
    }
    tmp = args.out + ".partial"
    with tarfile.open(tmp, mode="w", format=tarfile.PAX_FORMAT) as tar:
        add_file(tar, "oci-layout", b'{"imageLayoutVersion":"1.0.0"}')
        add_file(tar, "index.json", json.dumps(index, sort_keys=True).encode())
        for digest, data in (
            (layer_digest, layer),
            (config_digest, config_bytes),
            (manifest_digest, manifest_bytes),
        ):
            add_file(tar, "blobs/sha256/" + digest.split(":", 1)[1], data)
    os.replace(tmp, args.out)
    print(manifest_digest)


if __name__ == "__main__":
    main()
