"""Parse model storage URIs; pure, no I/O.

Supported schemes (each URI names a *model directory*, see modelops.modeldir.layout):

* ``s3://bucket/prefix``   -- any S3-compatible store (endpoint from AWS_ENDPOINT_URL)
* ``gs://bucket/prefix``   -- Google Cloud Storage (credentials from the environment:
  workload identity or GOOGLE_APPLICATION_CREDENTIALS; STORAGE_EMULATOR_HOST for an emulator)
* ``https://host/path``    -- a static copy of the layout; needs ``index.json``
  (``http://`` is accepted for in-cluster servers and tests)
* ``file:///abs/path``     -- a local directory
* ``pvc://claim/path``     -- a PersistentVolumeClaim mounted at ``<mount root>/<claim>``
"""

from __future__ import annotations

import os
import posixpath
import re
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlsplit

from modelops.storage.errors import StorageError

DEFAULT_PVC_MOUNT_ROOT = Path("/mnt/pvc")
# A PersistentVolumeClaim name is a DNS-1123 subdomain.
_CLAIM_NAME = re.compile(r"[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?")
PVC_MOUNT_ROOT_ENV = "MODELOPS_PVC_MOUNT_ROOT"


@dataclass(frozen=True)
class S3Location:
    bucket: str
    prefix: str  # without leading or trailing slash; "" for the bucket root

    def key(self, relative: str) -> str:
        return f"{self.prefix}/{relative}" if self.prefix else relative

    def __str__(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}" if self.prefix else f"s3://{self.bucket}"


@dataclass(frozen=True)
class GcsLocation:
    bucket: str
    prefix: str  # without leading or trailing slash; "" for the bucket root

    def key(self, relative: str) -> str:
        return f"{self.prefix}/{relative}" if self.prefix else relative

    def __str__(self) -> str:
        return f"gs://{self.bucket}/{self.prefix}" if self.prefix else f"gs://{self.bucket}"


@dataclass(frozen=True)
class HttpLocation:
    base_url: str  # no trailing slash

    def url(self, relative: str) -> str:
        return f"{self.base_url}/{relative}"

    def __str__(self) -> str:
        return self.base_url


@dataclass(frozen=True)
class FileLocation:
    path: Path

    def __str__(self) -> str:
        return f"file://{self.path}"


@dataclass(frozen=True)
class PvcLocation:
    claim: str
    path: str  # relative inside the claim, "" for its root

    def local_path(self, mount_root: Path) -> Path:
        return (
            Path(mount_root) / self.claim / self.path
            if self.path
            else Path(mount_root) / self.claim
        )

    def __str__(self) -> str:
        return f"pvc://{self.claim}/{self.path}" if self.path else f"pvc://{self.claim}"


Location = S3Location | GcsLocation | HttpLocation | FileLocation | PvcLocation


def _clean_relative(path: str, uri: str) -> str:
    parts = [p for p in path.split("/") if p]
    if any(p in (".", "..") for p in parts):
        raise StorageError("InvalidUri", f"{uri!r}: '.' and '..' are not allowed in the path")
    return "/".join(parts)


def parse_storage_uri(uri: str) -> Location:
    """Parse ``uri``; raises StorageError(InvalidUri / UnsupportedScheme) with the reason."""
    text = uri.strip()
    parts = urlsplit(text)
    scheme = parts.scheme.lower()
    # The messages quote the URI; StorageError redacts credentials and queries from them.
    if parts.query or parts.fragment:
        raise StorageError("InvalidUri", f"{uri!r}: query strings and fragments are not allowed")
    if "@" in parts.netloc:
        raise StorageError(
            "InvalidUri",
            f"{uri!r}: credentials in the URI are not allowed; use the credentials Secret",
        )
    if scheme in ("s3", "gs"):
        bucket = parts.netloc
        if not bucket or ":" in bucket:
            raise StorageError("InvalidUri", f"{uri!r}: expected {scheme}://bucket/prefix")
        prefix = _clean_relative(unquote(parts.path), uri)
        if scheme == "s3":
            return S3Location(bucket=bucket, prefix=prefix)
        return GcsLocation(bucket=bucket, prefix=prefix)
    if scheme in ("http", "https"):
        if not parts.netloc:
            raise StorageError("InvalidUri", f"{uri!r}: missing host")
        _clean_relative(parts.path, uri)
        return HttpLocation(base_url=text.rstrip("/"))
    if scheme == "file":
        if parts.netloc not in ("", "localhost"):
            raise StorageError("InvalidUri", f"{uri!r}: file URIs must be file:///absolute/path")
        path = unquote(parts.path)
        if not path.startswith("/"):
            raise StorageError("InvalidUri", f"{uri!r}: file URIs need an absolute path")
        return FileLocation(path=Path(posixpath.normpath(path)))
    if scheme == "pvc":
        claim = parts.netloc
        if not _CLAIM_NAME.fullmatch(claim):
            raise StorageError("InvalidUri", f"{uri!r}: expected pvc://<claim-name>/path")
        return PvcLocation(claim=claim, path=_clean_relative(unquote(parts.path), uri))
    if not scheme:
        raise StorageError(
            "InvalidUri", f"{uri!r}: missing scheme (s3://, gs://, https://, file://, pvc://)"
        )
    raise StorageError("UnsupportedScheme", f"{uri!r}: scheme {scheme}:// is not supported")


def pvc_mount_root(explicit: str | Path | None = None) -> Path:
    """Mount root for pvc:// URIs: ``explicit``, else $MODELOPS_PVC_MOUNT_ROOT, else /mnt/pvc."""
    if explicit is not None:
        return Path(explicit)
    return Path(os.environ.get(PVC_MOUNT_ROOT_ENV, str(DEFAULT_PVC_MOUNT_ROOT)))


def default_model_name(location: Location) -> str:
    """The last path segment of the location: ``s3://models/fraud`` -> ``fraud``."""
    if isinstance(location, S3Location | GcsLocation):
        tail = location.prefix.rsplit("/", 1)[-1]
    elif isinstance(location, HttpLocation):
        tail = urlsplit(location.base_url).path.rstrip("/").rsplit("/", 1)[-1]
    elif isinstance(location, FileLocation):
        tail = location.path.name
    else:
        tail = location.path.rsplit("/", 1)[-1] if location.path else location.claim
    if not tail:
        raise StorageError("InvalidUri", f"{location}: cannot derive a model name; pass one")
    return tail
