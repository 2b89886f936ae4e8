"""Pick the store implementation for a storage URI."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from modelops.storage.base import ModelStore
from modelops.storage.errors import StorageError
from modelops.storage.uri import (
    FileLocation,
    GcsLocation,
    HttpLocation,
    Location,
    PvcLocation,
    S3Location,
    parse_storage_uri,
    pvc_mount_root,
)


def open_store(
    uri: str | Location,
    *,
    pvc_root: str | Path | None = None,
    s3_client: Any | None = None,
) -> ModelStore:
    """The store for ``uri``; ``pvc_root`` is where pvc:// claims are mounted."""
    location = parse_storage_uri(uri) if isinstance(uri, str) else uri
    if isinstance(location, S3Location):
        from modelops.storage.s3 import S3Store

        return S3Store(location, client=s3_client)
    if isinstance(location, GcsLocation):
        from modelops.storage.gcs import GcsStore

        return GcsStore(location)
    if isinstance(location, HttpLocation):
        from modelops.storage.http import HttpStore

        return HttpStore(location)
    from modelops.storage.local import LocalStore

    if isinstance(location, FileLocation):
        return LocalStore(location.path, uri=str(location))
    if isinstance(location, PvcLocation):
        root = pvc_mount_root(pvc_root)
        claim_dir = root / location.claim
        if not claim_dir.is_dir():
            raise StorageError(
                "ModelNotFound",
                f"{location}: claim {location.claim!r} is not mounted at {claim_dir}",
            )
        return LocalStore(location.local_path(root), uri=str(location))
    raise StorageError("UnsupportedScheme", f"{location}: unsupported location")
