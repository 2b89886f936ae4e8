"""A model directory under a Google Cloud Storage prefix, with the official client.

Credentials come from the environment as Google's client libraries find them:
GKE workload identity (the pod's ServiceAccount), or
GOOGLE_APPLICATION_CREDENTIALS naming a key file from the credentials Secret.
STORAGE_EMULATOR_HOST points the client at an emulator (fake-gcs-server) and
then needs no credentials. GOOGLE_CLOUD_PROJECT is not needed: every call
names its bucket.

Atomicity is the same as for S3 (see modelops.storage.s3): a version's files
go up first and its ``SHA256SUMS`` last, readers only select versions with a
manifest, and writers claim a version number with a create-only write
(``ifGenerationMatch=0``) so two trainers never write into the same version.
Downloads are checked twice: against the server's CRC32C/MD5 by the client
(DataCorruption), and against ``SHA256SUMS`` by the pull.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from modelops.modeldir.layout import (
    CONFIG_NAME,
    INDEX_NAME,
    MANIFEST_NAME,
    parse_manifest,
    render_index,
)
from modelops.storage.base import (
    Downloaded,
    MissingObjectError,
    VersionListing,
    capped,
    check_listing_size,
    claim_version,
    listing_from_keys,
    manifest_last,
)
from modelops.storage.errors import StorageError
from modelops.storage.uri import GcsLocation

CLAIM_NAME = ".modelops-claim"
EMULATOR_ENV = "STORAGE_EMULATOR_HOST"
# How long one call keeps retrying transient failures (connection refused, 5xx,
# 429). The client's own default is 120 s; an init container should say what
# is wrong sooner than that. Overridable for slow links and for tests.
RETRY_DEADLINE_ENV = "MODELOPS_GCS_RETRY_SECONDS"
DEFAULT_RETRY_DEADLINE_S = 30.0
_TIMEOUT = (5, 60)  # connect, read


def gcs_endpoint() -> str:
    return os.environ.get(EMULATOR_ENV) or "https://storage.googleapis.com"


def make_gcs_client() -> Any:
    """A storage.Client from the environment (an emulator needs no credentials)."""
    from google.auth.exceptions import DefaultCredentialsError
    from google.cloud import storage

    try:
        return storage.Client()
    except DefaultCredentialsError as err:
        raise StorageError(
            "NoCredentials",
            f"no Google Cloud credentials: use workload identity or set "
            f"GOOGLE_APPLICATION_CREDENTIALS (the credentials Secret): {err}",
        ) from None


class _HashingWriter:
    """A file object for download_to_file that hashes what it writes."""

    def __init__(self, out: Any) -> None:
        self.out = out
        self.digest = hashlib.sha256()
        self.size = 0

    def write(self, block: bytes) -> int:
        self.digest.update(block)
        self.size += len(block)
        return int(self.out.write(block))

    def flush(self) -> None:
        self.out.flush()


class GcsStore:
    def __init__(self, location: GcsLocation, client: Any | None = None) -> None:
        from google.cloud.storage.retry import DEFAULT_RETRY

        self.location = location
        self.client = client if client is not None else make_gcs_client()
        self.endpoint = gcs_endpoint()
        deadline = float(os.environ.get(RETRY_DEADLINE_ENV) or DEFAULT_RETRY_DEADLINE_S)
        self.retry = DEFAULT_RETRY.with_timeout(deadline)
        self.bucket = self.client.bucket(location.bucket)

    def describe(self) -> str:
        return str(self.location)

    @contextlib.contextmanager
    def _errors(self, action: str, relative: str | None = None) -> Iterator[None]:
        """Translate google-cloud failures into StorageError reasons (or MissingObjectError)."""
        import requests
        from google.api_core import exceptions as api
        from google.auth.exceptions import DefaultCredentialsError, RefreshError, TransportError
        from google.cloud.storage.exceptions import DataCorruption

        where = (
            f"gs://{self.location.bucket}/{self.location.key(relative)}"
            if relative
            else str(self.location)
        )
        try:
            yield
        except DefaultCredentialsError:
            raise StorageError(
                "NoCredentials",
                f"{action} {where}: no Google Cloud credentials; use workload identity or set "
                "GOOGLE_APPLICATION_CREDENTIALS (the credentials Secret)",
            ) from None
        except (api.Unauthorized, api.Forbidden, RefreshError) as err:
            raise StorageError(
                "AccessDenied",
                f"{action} {where}: access denied ({_short(err)}); check the credentials",
            ) from None
        except api.NotFound as err:
            if relative is not None:
                raise MissingObjectError(relative) from None
            raise StorageError(
                "BucketNotFound",
                f"{action} {where}: bucket {self.location.bucket!r} does not exist at "
                f"{self.endpoint} ({_short(err)})",
            ) from None
        except DataCorruption as err:
            raise StorageError(
                "ChecksumMismatch",
                f"{action} {where}: the content does not match the server's checksum "
                f"({_short(err)})",
            ) from None
        except (
            api.RetryError,
            api.ServiceUnavailable,
            requests.exceptions.ConnectionError,
            requests.exceptions.Timeout,
            TransportError,
        ) as err:
            raise StorageError(
                "EndpointUnreachable",
                f"{action} {where}: cannot reach {self.endpoint}: {_short(err)}",
            ) from None
        except api.GoogleAPICallError as err:
            raise StorageError("StorageError", f"{action} {where}: {_short(err)}") from None

    def _keys(self, relative_dir: str = "") -> list[str]:
        """Object names below the model prefix (or one of its subdirectories), relative to it."""
        base = self.location.key(relative_dir).rstrip("/")
        prefix = f"{base}/" if base else ""
        root = f"{self.location.prefix}/" if self.location.prefix else ""
        with self._errors("listing"):
            blobs = self.client.list_blobs(
                self.location.bucket, prefix=prefix, retry=self.retry, timeout=_TIMEOUT
            )
            names: list[str] = []
            for blob in blobs:
                names.append(blob.name[len(root) :])
                check_listing_size(len(names), str(self.location))
            return names

    def list_versions(self) -> VersionListing:
        return listing_from_keys(self._keys())

    def read_bytes(self, relative: str, limit: int | None = None) -> bytes:
        with self._errors("reading", relative):
            blob = self.bucket.blob(self.location.key(relative))
            # end is inclusive: at most limit + 1 bytes are transferred.
            data = blob.download_as_bytes(
                retry=self.retry,
                timeout=_TIMEOUT,
                start=0 if limit is not None else None,
                end=limit,
            )
        return capped(bytes(data), limit, f"{self.location}/{relative}")

    def download(self, relative: str, dest: Path) -> Downloaded:
        dest.parent.mkdir(parents=True, exist_ok=True)
        with self._errors("downloading", relative), open(dest, "wb") as out:
            writer = _HashingWriter(out)
            blob = self.bucket.blob(self.location.key(relative))
            # checksum="auto": the client checks the server's CRC32C (or MD5)
            # of the object and raises DataCorruption on a mismatch.
            blob.download_to_file(writer, retry=self.retry, timeout=_TIMEOUT)
        return Downloaded(sha256=writer.digest.hexdigest(), size=writer.size)

    def list_files(self, version: int) -> list[str]:
        prefix = f"{version}/"
        return sorted(
            key[len(prefix) :]
            for key in self._keys(str(version))
            if key.startswith(prefix) and not key.endswith("/") and key != prefix + CLAIM_NAME
        )

    def _put(self, relative: str, body: bytes, *, exclusive: bool = False) -> bool:
        """Write a small object; with ``exclusive``, False (and no write) if it already exists."""
        from google.api_core import exceptions as api

        blob = self.bucket.blob(self.location.key(relative))
        with self._errors("writing", relative):
            try:
                blob.upload_from_string(
                    body,
                    content_type="application/octet-stream",
                    # Generation 0: create only. The conditional write is safe to retry.
                    if_generation_match=0 if exclusive else None,
                    retry=self.retry,
                    timeout=_TIMEOUT,
                )
            except api.PreconditionFailed:
                if exclusive:
                    return False
                raise
        return True

    def _claim(self, version: int | None) -> int:
        return claim_version(
            self.list_versions,
            lambda n: self._put(f"{n}/{CLAIM_NAME}", b"", exclusive=True),
            version,
            self.location,
        )

    def publish_version(self, version_dir: Path, version: int | None) -> int:
        manifest = parse_manifest((version_dir / MANIFEST_NAME).read_text())
        number = self._claim(version)
        for relative in manifest_last(manifest):
            blob = self.bucket.blob(self.location.key(f"{number}/{relative}"))
            with self._errors("uploading", f"{number}/{relative}"):
                blob.upload_from_filename(
                    str(version_dir / relative), retry=self.retry, timeout=_TIMEOUT
                )
        complete = set(self.list_versions().complete)
        if number >= max(complete, default=0) and (version_dir / CONFIG_NAME).is_file():
            self._put(CONFIG_NAME, (version_dir / CONFIG_NAME).read_bytes())
        self._put(INDEX_NAME, render_index(complete | {number}).encode())
        return number


def _short(err: BaseException) -> str:
    """The first line of a client error (they append the whole response body)."""
    text = str(err).strip().splitlines()
    return text[0][:300] if text else type(err).__name__
