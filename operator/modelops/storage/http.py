"""A model directory served over HTTP(S) by any static file server (read-only).

Layout: the same tree that packaging and publishing write (see
modelops.modeldir.layout), served as-is, e.g. an nginx root, an S3 static
website, a GitHub Pages site, or an artifact server::

    GET <base>/index.json            {"versions": [1, 2, 3]}   (complete versions)
    GET <base>/<N>/SHA256SUMS        the files of version N and their sha256
    GET <base>/<N>/<file>            each file listed there

Static servers cannot list directories, hence ``index.json`` (to resolve
``latest``) and the manifest (to know the files). Both are written by
``publish_version`` for file:// and s3:// destinations, so a published tree
can be mirrored to a web server unchanged. Set MODELOPS_HTTP_TOKEN to send
``Authorization: Bearer <token>``.
"""

from __future__ import annotations

import os
import urllib.error
import urllib.request
from http.client import HTTPResponse
from pathlib import Path

from modelops.modeldir.layout import INDEX_NAME, LayoutError, check_relative_path, parse_index
from modelops.storage.base import (
    Downloaded,
    MissingObjectError,
    VersionListing,
    capped,
    copy_hashing,
    read_chunks,
)
from modelops.storage.errors import StorageError
from modelops.storage.uri import HttpLocation

TOKEN_ENV = "MODELOPS_HTTP_TOKEN"


class HttpStore:
    def __init__(self, location: HttpLocation, timeout: float = 30.0) -> None:
        self.location = location
        self.timeout = timeout

    def describe(self) -> str:
        return str(self.location)

    def _open(self, relative: str) -> HTTPResponse:
        url = self.location.url(check_relative_path(relative))
        request = urllib.request.Request(url, headers={"User-Agent": "modelops"})
        token = os.environ.get(TOKEN_ENV)
        if token:
            request.add_header("Authorization", f"Bearer {token}")
        try:
            response: HTTPResponse = urllib.request.urlopen(request, timeout=self.timeout)
        except urllib.error.HTTPError as err:
            err.close()
            if err.code == 404:
                raise MissingObjectError(relative) from None
            if err.code in (401, 403):
                raise StorageError("AccessDenied", f"GET {url}: HTTP {err.code}") from None
            raise StorageError("StorageError", f"GET {url}: HTTP {err.code} {err.reason}") from None
        except (urllib.error.URLError, TimeoutError, ConnectionError) as err:
            reason = getattr(err, "reason", err)
            raise StorageError("EndpointUnreachable", f"GET {url}: {reason}") from None
        return response

    def list_versions(self) -> VersionListing:
        try:
            text = self.read_bytes(INDEX_NAME).decode()
        except MissingObjectError:
            raise StorageError(
                "ModelNotFound", f"{self.location}: no {INDEX_NAME} (is this a model directory?)"
            ) from None
        try:
            versions = parse_index(text)
        except LayoutError as err:
            raise StorageError("StorageError", f"{self.location}/{INDEX_NAME}: {err}") from None
        return VersionListing(complete=versions, all=versions)

    def read_bytes(self, relative: str, limit: int | None = None) -> bytes:
        with self._open(relative) as response:
            data = bytes(response.read() if limit is None else response.read(limit + 1))
        return capped(data, limit, str(self.location.url(relative)))

    def download(self, relative: str, dest: Path) -> Downloaded:
        with self._open(relative) as response:
            try:
                return copy_hashing(read_chunks(response), dest)
            except (TimeoutError, ConnectionError) as err:
                raise StorageError(
                    "EndpointUnreachable", f"GET {self.location.url(relative)}: {err}"
                ) from None

    def list_files(self, version: int) -> list[str]:
        raise StorageError(
            "VersionIncomplete",
            f"{self.location}/{version}: HTTP stores cannot be listed; the version needs a "
            "SHA256SUMS manifest",
        )

    def publish_version(self, version_dir: Path, version: int | None) -> int:
        raise StorageError("UnsupportedScheme", f"{self.location}: http(s) stores are read-only")
