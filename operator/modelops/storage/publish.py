"""Publish a packaged version to output storage as the model's next version.

The trainer packages its result locally (modelops.triton.packaging), then::

    publish_version(packaged.version_dir, "s3://models/fraud")  # -> N+1

Destinations: ``s3://`` and ``gs://`` (files first, ``SHA256SUMS`` last,
number claimed with a conditional create), ``file://`` and ``pvc://``
(staged and renamed). Both
refresh the model-level ``config.pbtxt`` and ``index.json``, so the result can
also be served by a static web server for https:// pulls.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from modelops.modeldir.layout import MANIFEST_NAME, LayoutError
from modelops.modeldir.repository import ManifestMismatchError, verify_version_dir
from modelops.storage.errors import StorageError
from modelops.storage.stores import open_store


def publish_version(
    version_dir: str | Path,
    destination: str,
    *,
    version: int | None = None,
    pvc_root: str | Path | None = None,
    s3_client: Any | None = None,
) -> int:
    """Copy a complete local version directory to ``destination``; returns its new number.

    ``version`` None takes the next number after every version present there
    (complete or not); an explicit number that exists raises VersionExists.
    """
    version_dir = Path(version_dir)
    try:
        verify_version_dir(version_dir)
    except FileNotFoundError:
        raise StorageError(
            "VersionIncomplete",
            f"{version_dir} has no {MANIFEST_NAME}; package it first (package_torchscript)",
        ) from None
    except (ManifestMismatchError, LayoutError) as err:
        raise StorageError("ChecksumMismatch", str(err)) from None
    if version is not None and version < 1:
        raise StorageError("InvalidArgument", f"version must be >= 1, got {version}")
    store = open_store(destination, pvc_root=pvc_root, s3_client=s3_client)
    return store.publish_version(version_dir, version)
