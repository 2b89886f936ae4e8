"""Versioned Triton model directories on a local filesystem (a disk, a PVC, a pod volume).

Writes are atomic: a version is assembled in a hidden staging directory inside
the model directory (Triton ignores non-numeric version directories), its
``SHA256SUMS`` is written and everything is fsynced, then it is renamed to its
number. Readers therefore see either no version N or a complete one; the
manifest additionally marks completeness for copies made by other tools.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import shutil
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path

from modelops.modeldir.layout import (
    CONFIG_NAME,
    INDEX_NAME,
    MANIFEST_NAME,
    LayoutError,
    parse_manifest,
    parse_version_dir,
    render_index,
    render_manifest,
)

STAGING_PREFIX = ".tmp-"
BYTECODE_DIR = "__pycache__"
_CHUNK = 1 << 20


class VersionExistsError(FileExistsError):
    """The requested version number is already taken; versions are immutable."""


class ManifestMismatchError(ValueError):
    """Files on disk do not match their ``SHA256SUMS``."""


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def digest_tree(root: Path) -> dict[str, str]:
    """{relative POSIX path: sha256} for every file under ``root`` except the manifest."""
    digests: dict[str, str] = {}
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root).as_posix()
        if BYTECODE_DIR in path.relative_to(root).parts:
            # The python backend byte-compiles model.py next to it when it
            # loads; the cache is derived, so it neither belongs to nor breaks
            # a version.
            continue
        if path.is_symlink():
            # A link could point outside the version; a published version must be self-contained.
            raise LayoutError(f"{path} is a symlink; copy the file instead")
        if path.is_file() and rel != MANIFEST_NAME:
            digests[rel] = sha256_file(path)
    return digests


def fsync_dir(path: Path) -> None:
    """Flush ``path`` (a file or a directory entry list) to stable storage."""
    _fsync(path)


def _fsync(path: Path) -> None:
    flags = os.O_RDONLY | (os.O_DIRECTORY if path.is_dir() else 0)
    fd = os.open(path, flags)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_tree(root: Path) -> None:
    """Flush every file and directory under ``root`` (and ``root``) to stable storage."""
    for path in sorted(root.rglob("*"), reverse=True):
        if not path.is_symlink():
            _fsync(path)
    _fsync(root)


def write_file_atomic(path: Path, data: bytes) -> None:
    """Replace ``path`` with ``data`` so readers see the old or the new content, never a mix."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=STAGING_PREFIX, dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    _fsync(path.parent)


def version_numbers(model_dir: Path, *, complete_only: bool = True) -> list[int]:
    """Version numbers present in ``model_dir``; by default only complete ones (with manifest)."""
    if not model_dir.is_dir():
        return []
    versions = []
    for entry in model_dir.iterdir():
        number = parse_version_dir(entry.name)
        if number is None or not entry.is_dir():
            continue
        if complete_only and not (entry / MANIFEST_NAME).is_file():
            continue
        versions.append(number)
    return sorted(versions)


def latest_version(repository: Path, model: str) -> int | None:
    """The newest complete version of ``model`` in ``repository``, or None."""
    return max(version_numbers(Path(repository) / model), default=None)


def verify_version_dir(version_dir: Path, *, exact: bool = True) -> dict[str, str]:
    """Check ``version_dir`` against its ``SHA256SUMS``; returns the manifest.

    With ``exact``, files the manifest does not list are an error too.
    Raises ManifestMismatchError (or FileNotFoundError when there is no manifest).
    """
    expected = parse_manifest((version_dir / MANIFEST_NAME).read_text())
    actual = digest_tree(version_dir)
    missing = sorted(set(expected) - set(actual))
    changed = sorted(p for p in expected if p in actual and actual[p] != expected[p])
    extra = sorted(set(actual) - set(expected)) if exact else []
    if missing or changed or extra:
        raise ManifestMismatchError(
            f"{version_dir} does not match its {MANIFEST_NAME}: "
            f"missing {missing}, changed {changed}, unlisted {extra}"
        )
    return expected


def new_staging_dir(parent: Path, label: str = "") -> Path:
    """A fresh hidden directory in ``parent`` (same filesystem, so it can be renamed in)."""
    parent.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=f"{STAGING_PREFIX}{label}", dir=parent))


def seal_version_dir(staging: Path) -> str:
    """Write ``SHA256SUMS`` for everything in ``staging`` and flush it; returns the manifest."""
    manifest = render_manifest(digest_tree(staging))
    (staging / MANIFEST_NAME).write_text(manifest)
    fsync_tree(staging)
    return manifest


def commit_version_dir(staging: Path, model_dir: Path, version: int | None = None) -> int:
    """Rename a sealed ``staging`` directory to version ``version`` (default: next free).

    rename(2) cannot replace a non-empty directory, so two writers racing for
    the same number cannot overwrite each other: the loser gets the next
    number, or VersionExistsError when it asked for that number explicitly.
    """
    while True:
        number = version if version is not None else _next_version(model_dir)
        target = model_dir / str(number)
        try:
            if target.exists():
                raise OSError(errno.EEXIST, "exists", str(target))
            os.rename(staging, target)
        except OSError as err:
            if err.errno not in (errno.EEXIST, errno.ENOTEMPTY):
                raise
            if version is not None:
                raise VersionExistsError(
                    f"version {number} of {model_dir.name} already exists in {model_dir.parent}"
                ) from None
            continue
        _fsync(model_dir)
        return number


def _next_version(model_dir: Path) -> int:
    # Incomplete versions count too: their number may still be completed by another writer.
    return max(version_numbers(model_dir, complete_only=False), default=0) + 1


def write_version(
    model_dir: Path,
    populate: Callable[[Path], None],
    *,
    version: int | None = None,
    config_text: str | None = None,
) -> int:
    """Create a new immutable version of the model in ``model_dir``; returns its number.

    ``populate(path)`` writes the version's files into an empty staging
    directory. ``config_text`` is stored in the version and, when this is the
    newest complete version, as the model's ``config.pbtxt``. ``index.json``
    is refreshed so the directory can be served as-is over HTTP.
    """
    model_dir = Path(model_dir)
    staging = new_staging_dir(model_dir)
    try:
        populate(staging)
        if config_text is not None:
            (staging / CONFIG_NAME).write_text(config_text)
        seal_version_dir(staging)
        number = commit_version_dir(staging, model_dir, version)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    refresh_model_files(model_dir)
    return number


def refresh_model_files(model_dir: Path) -> None:
    """Point ``config.pbtxt`` at the newest complete version's config and rewrite ``index.json``."""
    versions = version_numbers(model_dir)
    if not versions:
        return
    newest_config = model_dir / str(versions[-1]) / CONFIG_NAME
    if newest_config.is_file():
        data = newest_config.read_bytes()
        current = model_dir / CONFIG_NAME
        if not current.is_file() or current.read_bytes() != data:
            write_file_atomic(current, data)
    write_file_atomic(model_dir / INDEX_NAME, render_index(versions).encode())


def copy_into(files: Mapping[str, Path | bytes]) -> Callable[[Path], None]:
    """A ``populate`` callback that writes {relative path: source file or bytes}."""

    def populate(staging: Path) -> None:
        for rel, source in files.items():
            dest = staging / rel
            dest.parent.mkdir(parents=True, exist_ok=True)
            if isinstance(source, bytes):
                dest.write_bytes(source)
            else:
                shutil.copyfile(source, dest)

    return populate
