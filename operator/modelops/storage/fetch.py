"""Bring one file named by a storage URI onto local disk (numpy-free, torch-free).

Training modules call :func:`fetch_data_file` from their ``load_dataset``
(as ``modelops.trainer.fetch``), and ``modelops pull-file`` (the drift
reference's init container) uses it too, so both accept the same schemes as
model storage (``file://``, ``pvc://``, ``s3://``, ``gs://``, ``https://``)
with the same credentials handling: the file's parent is opened as a
:mod:`modelops.storage` store and the one object is downloaded from it.
"""

from __future__ import annotations

import posixpath
from pathlib import Path

from modelops.storage.base import MissingObjectError, contained
from modelops.storage.errors import StorageError
from modelops.storage.stores import open_store
from modelops.storage.uri import (
    FileLocation,
    GcsLocation,
    HttpLocation,
    PvcLocation,
    S3Location,
    parse_storage_uri,
    pvc_mount_root,
)


class DataFileNotFoundError(LookupError):
    """The dataset URI names no file (the storage package would call it ModelNotFound)."""


def fetch_data_file(uri: str, work_dir: str | Path) -> Path:
    """A local path holding the file at ``uri``; remote files are downloaded into ``work_dir``.

    Local files (``file://``, ``pvc://``) are used in place, not copied.
    Raises DataFileNotFoundError when there is no such file, StorageError
    (with its reason: AccessDenied, BucketNotFound...) for other failures.
    """
    location = parse_storage_uri(uri)
    if isinstance(location, FileLocation):
        if not location.path.is_file():
            raise DataFileNotFoundError(f"{uri}: no such file")
        return location.path
    if isinstance(location, PvcLocation):
        claim = pvc_mount_root() / location.claim
        if not location.local_path(pvc_mount_root()).is_file():
            raise DataFileNotFoundError(f"{uri}: no such file")
        # Inside the claim only: a symlink on the volume must not reach the pod's own files.
        return contained(claim, location.path, where=f"pvc://{location.claim}")
    if isinstance(location, S3Location | GcsLocation):
        parent, name = posixpath.split(location.prefix)
        if not name:
            raise StorageError("InvalidUri", f"{uri}: name an object, not a bucket")
        store = open_store(type(location)(location.bucket, parent))
    elif isinstance(location, HttpLocation):
        base, name = location.base_url.rsplit("/", 1)
        store = open_store(HttpLocation(base))
    else:  # pragma: no cover - parse_storage_uri returns one of the four
        raise StorageError("UnsupportedScheme", f"{uri}: unsupported")
    dest = Path(work_dir) / name
    try:
        store.download(name, dest)
    except MissingObjectError:
        raise DataFileNotFoundError(f"{uri}: no such object") from None
    return dest
