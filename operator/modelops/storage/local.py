"""A model directory on a mounted filesystem: ``file://`` and ``pvc://`` locations."""

from __future__ import annotations

import shutil
from pathlib import Path

from modelops.modeldir.repository import (
    VersionExistsError,
    commit_version_dir,
    fsync_tree,
    new_staging_dir,
    refresh_model_files,
    version_numbers,
)
from modelops.storage.base import (
    Downloaded,
    MissingObjectError,
    VersionListing,
    capped,
    contained,
    copy_hashing,
    read_chunks,
)
from modelops.storage.errors import StorageError


class LocalStore:
    """Reads with plain file I/O; publishes with the repository's atomic rename."""

    def __init__(self, root: Path, uri: str | None = None) -> None:
        self.root = Path(root)
        self._uri = uri or f"file://{self.root}"

    def describe(self) -> str:
        return self._uri

    def _path(self, relative: str) -> Path:
        # Resolved and kept inside the root: a symlink to a file outside the model
        # directory (or the claim) is refused, not copied as its content.
        return contained(self.root, relative, where=self._uri)

    def list_versions(self) -> VersionListing:
        if not self.root.is_dir():
            raise StorageError("ModelNotFound", f"{self._uri}: no such directory")
        return VersionListing(
            complete=version_numbers(self.root),
            all=version_numbers(self.root, complete_only=False),
        )

    def read_bytes(self, relative: str, limit: int | None = None) -> bytes:
        try:
            with open(self._path(relative), "rb") as source:
                data = source.read() if limit is None else source.read(limit + 1)
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            raise MissingObjectError(relative) from None
        return capped(data, limit, f"{self._uri}/{relative}")

    def download(self, relative: str, dest: Path) -> Downloaded:
        try:
            with open(self._path(relative), "rb") as source:
                return copy_hashing(read_chunks(source), dest)
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            raise MissingObjectError(relative) from None

    def list_files(self, version: int) -> list[str]:
        version_dir = self.root / str(version)
        return sorted(
            p.relative_to(version_dir).as_posix() for p in version_dir.rglob("*") if p.is_file()
        )

    def publish_version(self, version_dir: Path, version: int | None) -> int:
        # Copy into a staging directory on the destination filesystem, then
        # rename: the same guarantee as packaging into a local repository.
        staging = new_staging_dir(self.root)
        try:
            shutil.copytree(version_dir, staging, dirs_exist_ok=True)
            fsync_tree(staging)
            number = commit_version_dir(staging, self.root, version)
        except VersionExistsError as err:
            shutil.rmtree(staging, ignore_errors=True)
            raise StorageError("VersionExists", str(err)) from None
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        refresh_model_files(self.root)
        return number
