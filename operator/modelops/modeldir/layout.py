"""The on-storage layout of a modelops model, shared by packaging, publishing and pulling.

A model is a Triton model directory, wherever it is stored (local disk, PVC,
S3 prefix, static HTTPS site)::

    <model>/config.pbtxt        config of the newest version (what Triton reads)
    <model>/index.json          {"versions": [1, 2, 3]}: complete versions, for HTTP
    <model>/<N>/config.pbtxt    the config this version was packaged with
    <model>/<N>/model.pt ...    the files Triton loads
    <model>/<N>/SHA256SUMS      sha256 of every other file in <N>/, written last

``SHA256SUMS`` (the format of ``sha256sum``: ``<hex>  <path>``) is both the
checksum source and the completion marker: a version directory without it is
still being written (or was abandoned) and is never selected. Version
directories are immutable once complete; a new model is always version N+1.

Everything here is pure; I/O lives in :mod:`modelops.modeldir.repository` (local
disk) and :mod:`modelops.storage` (remote stores).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from pathlib import PurePosixPath

CONFIG_NAME = "config.pbtxt"
MANIFEST_NAME = "SHA256SUMS"
INDEX_NAME = "index.json"
# Written by pull-model into the local model directory: what was installed and from where.
INSTALLED_NAME = ".modelops-version"

_VERSION = re.compile(r"[1-9][0-9]{0,17}")
_MANIFEST_LINE = re.compile(r"([0-9a-f]{64}) [ *](.+)")


class LayoutError(ValueError):
    """A manifest, index or version string that does not follow the layout."""


def parse_version_dir(name: str) -> int | None:
    """The version number a directory name denotes, or None.

    Stricter than Triton (which reads ``2.partial`` as version 2): only plain
    positive integers without leading zeros count.
    """
    return int(name) if _VERSION.fullmatch(name) else None


def parse_version_request(value: str | int) -> int | None:
    """``"latest"`` -> None; ``"3"`` / ``3`` -> 3; anything else raises LayoutError."""
    if isinstance(value, int) and not isinstance(value, bool):
        if value >= 1:
            return value
        raise LayoutError(f"model version must be >= 1, got {value}")
    text = str(value).strip()
    if text.lower() == "latest":
        return None
    if _VERSION.fullmatch(text):
        return int(text)
    raise LayoutError(f"model version must be 'latest' or a positive integer, got {value!r}")


def select_version(available: Iterable[int], requested: int | None) -> int | None:
    """The version to use among ``available`` complete ones: the newest when ``requested``
    is None, else ``requested`` itself; None when there is no such version."""
    versions = set(available)
    if requested is None:
        return max(versions, default=None)
    return requested if requested in versions else None


def check_relative_path(path: str) -> str:
    """``path`` if it is a safe relative POSIX path inside a version directory."""
    pure = PurePosixPath(path)
    if (
        not path
        or pure.is_absolute()
        or "\\" in path
        or any(part in ("", ".", "..") for part in path.split("/"))
    ):
        raise LayoutError(f"unsafe path in manifest: {path!r}")
    return path


def render_manifest(digests: Mapping[str, str]) -> str:
    """``SHA256SUMS`` text for {relative path: sha256 hex}, sorted by path."""
    lines = []
    for path in sorted(digests):
        digest = digests[path].lower()
        if not re.fullmatch(r"[0-9a-f]{64}", digest):
            raise LayoutError(f"not a sha256 digest for {path}: {digest!r}")
        if path == MANIFEST_NAME:
            raise LayoutError(f"the manifest cannot list itself ({path})")
        lines.append(f"{digest}  {check_relative_path(path)}")
    return "\n".join(lines) + ("\n" if lines else "")


def parse_manifest(text: str) -> dict[str, str]:
    """{relative path: sha256 hex} from ``SHA256SUMS`` text; raises LayoutError if malformed."""
    digests: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        match = _MANIFEST_LINE.fullmatch(line)
        if match is None:
            raise LayoutError(f"{MANIFEST_NAME} line {number} is malformed: {line[:80]!r}")
        digest, path = match.groups()
        if path in digests:
            raise LayoutError(f"{MANIFEST_NAME} lists {path} twice")
        digests[check_relative_path(path)] = digest
    if not digests:
        raise LayoutError(f"{MANIFEST_NAME} is empty")
    return digests


def render_index(versions: Iterable[int]) -> str:
    return json.dumps({"versions": sorted(set(versions))}) + "\n"


def parse_index(text: str) -> list[int]:
    """Versions listed by an ``index.json``."""
    try:
        data = json.loads(text)
        versions = data["versions"]
        if not isinstance(versions, list):
            raise TypeError
        parsed = [parse_version_request(v) for v in versions]
        if None in parsed:
            raise ValueError("'latest' is not a version")
    except (ValueError, KeyError, TypeError) as err:
        raise LayoutError(f'{INDEX_NAME} must look like {{"versions": [1, 2]}}: {err}') from None
    return sorted({v for v in parsed if v is not None})
