"""The interface every model store implements, and helpers shared by them."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Protocol

from modelops.modeldir.layout import (
    MANIFEST_NAME,
    LayoutError,
    check_relative_path,
    parse_version_dir,
)
from modelops.storage.errors import StorageError


class MissingObjectError(LookupError):
    """The store has no object at that relative path (callers turn this into a reason)."""


# The most keys a listing of one model directory may return: a model directory holds
# a few files per version; far more is a bucket the operator must not hold in memory.
MAX_LISTED_KEYS = 100_000
# The most a SHA256SUMS manifest may hold: one line (~80 bytes) per file, so 4 MiB is
# ~50,000 files; the operator and the puller read no more of one.
MAX_MANIFEST_BYTES = 4 << 20


def capped(data: bytes, limit: int | None, where: str) -> bytes:
    """``data`` (read with at most limit + 1 bytes asked for) when it fits ``limit``."""
    if limit is not None and len(data) > limit:
        raise StorageError("ObjectTooLarge", f"{where}: larger than {limit} bytes")
    return data


def check_listing_size(count: int, where: str) -> None:
    if count > MAX_LISTED_KEYS:
        raise StorageError(
            "ListingTooLarge", f"{where}: more than {MAX_LISTED_KEYS} objects under the model"
        )


@dataclass(frozen=True)
class VersionListing:
    complete: list[int]  # versions with a manifest: the only ones a pull may select
    all: list[int]  # every numbered version, including ones still being written


def listing_from_keys(keys: Iterable[str]) -> VersionListing:
    """The versions in a flat object listing (keys relative to the model directory):
    every numbered directory with at least one object, complete when it has its
    manifest. Object stores have no directories, so this is how S3 and GCS list."""
    every: set[int] = set()
    complete: set[int] = set()
    for key in keys:
        head, _, rest = key.partition("/")
        number = parse_version_dir(head)
        if number is None or not rest:
            continue
        every.add(number)
        if rest == MANIFEST_NAME:
            complete.add(number)
    return VersionListing(complete=sorted(complete), all=sorted(every))


@dataclass(frozen=True)
class Downloaded:
    sha256: str
    size: int


class ModelStore(Protocol):
    """A model directory in some storage; paths are relative to it, POSIX style."""

    def describe(self) -> str:
        """The location, for messages."""
        ...

    def list_versions(self) -> VersionListing: ...

    def read_bytes(self, relative: str, limit: int | None = None) -> bytes:
        """Small files (manifests, configs); raises MissingObjectError. limit: the most
        bytes the caller accepts; a longer object raises StorageError("ObjectTooLarge")
        after at most limit + 1 bytes were transferred (the store is untrusted input)."""
        ...

    def download(self, relative: str, dest: Path) -> Downloaded:
        """Stream one object to ``dest``; raises MissingObjectError or StorageError."""
        ...

    def list_files(self, version: int) -> list[str]:
        """Files of a version without a manifest (unverified pulls); may be unsupported."""
        ...

    def publish_version(self, version_dir: Path, version: int | None) -> int:
        """Store a sealed local version directory as ``version`` (None: next); returns it."""
        ...


def contained(root: Path, relative: str, *, where: str) -> Path:
    """``root/relative`` resolved, refused unless it stays inside ``root``.

    Object keys come from a listing the pull does not control (an unverified
    version has no manifest to check them against): ``1/../../x`` or
    ``1//etc/x`` must not write outside the staging directory, and a symlink
    in a file:// or pvc:// source must not read a file outside its root.
    ``where`` names the source in the message.
    """
    try:
        check_relative_path(relative)
    except LayoutError:
        raise StorageError(
            "UnsafePath",
            f"{where}: refusing object {relative!r}: its path is absolute, empty or has "
            "'.'/'..' segments, so it would land outside the model directory",
        ) from None
    base = Path(root).resolve()
    target = (base / relative).resolve()
    if not target.is_relative_to(base):
        raise StorageError(
            "UnsafePath",
            f"{where}: refusing {relative!r}: it resolves outside the model directory "
            "(a symlink leaving it?)",
        )
    return target


def read_chunks(stream: IO[bytes], chunk: int = 1 << 20) -> Iterator[bytes]:
    """Blocks of ``stream`` until it is exhausted."""
    while block := stream.read(chunk):
        yield block


def copy_hashing(chunks: Iterable[bytes], dest: Path) -> Downloaded:
    """Write ``chunks`` to ``dest`` while hashing them."""
    digest = hashlib.sha256()
    size = 0
    dest.parent.mkdir(parents=True, exist_ok=True)
    with open(dest, "wb") as out:
        for block in chunks:
            digest.update(block)
            size += len(block)
            out.write(block)
    return Downloaded(sha256=digest.hexdigest(), size=size)


def manifest_last(files: Iterable[str]) -> list[str]:
    """Upload order for a version: every file, then the manifest that marks it complete."""
    ordered = sorted(f for f in files if f != MANIFEST_NAME)
    return [*ordered, MANIFEST_NAME]


def claim_version(
    list_versions: Callable[[], VersionListing],
    create_marker: Callable[[int], bool],
    version: int | None,
    location: object,
) -> int:
    """Reserve a version number for a publish: ``version``, or the next free one.

    ``create_marker(n)`` writes version n's claim marker create-only and says
    whether this writer got it; a lost race for the next number tries the one
    after, while an explicit ``version`` that exists is refused (VersionExists).
    """
    while True:
        listing = list_versions()
        number = version if version is not None else max(listing.all, default=0) + 1
        if number not in listing.all and create_marker(number):
            return number
        if version is not None:
            raise StorageError("VersionExists", f"version {number} of {location} already exists")
