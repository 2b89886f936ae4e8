"""Fetch one version of a model from storage into a local Triton model repository.

The download goes to a hidden staging directory on the repository's
filesystem; only after every file matched its checksum is it renamed into
place, so Triton (or anyone) never sees a half-downloaded model:

* a model not yet in the repository is staged whole as ``<repo>/.tmp-<name>@*``
  and renamed to ``<repo>/<name>``;
* a model already there gets the version staged as ``<repo>/<name>/.tmp-*``
  (Triton ignores non-numeric version directories), renamed to ``<N>``, and
  then its ``config.pbtxt`` replaced atomically. By default the other
  versions are removed so Triton's default policy (serve the newest) serves
  exactly the version that was asked for.

The result is recorded as JSON in ``<repo>/<name>/.modelops-version``.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from modelops.modeldir.layout import (
    CONFIG_NAME,
    INSTALLED_NAME,
    MANIFEST_NAME,
    LayoutError,
    parse_manifest,
    parse_version_dir,
    parse_version_request,
    select_version,
)
from modelops.modeldir.repository import (
    STAGING_PREFIX,
    ManifestMismatchError,
    fsync_dir,
    fsync_tree,
    new_staging_dir,
    seal_version_dir,
    verify_version_dir,
    write_file_atomic,
)
from modelops.storage.base import MAX_MANIFEST_BYTES, MissingObjectError, ModelStore, contained
from modelops.storage.errors import StorageError
from modelops.storage.stores import open_store
from modelops.storage.uri import default_model_name, parse_storage_uri
from modelops.triton.config_patch import (
    ConfigError,
    RuntimeOverrides,
    config_runtime,
    format_matches,
    patch_config,
)


@dataclass(frozen=True)
class PullResult:
    model: str
    version: int
    source: str
    path: str  # the local model directory
    verified: bool  # files checked against the source's SHA256SUMS
    downloaded: bool  # False when the version was already in place
    manifest_sha256: str | None  # identifies the exact content pulled
    files: int
    bytes: int

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)


def _check_model_name(name: str) -> str:
    if not name or "/" in name or name.startswith(".") or name in ("..",):
        raise StorageError("InvalidArgument", f"invalid model name {name!r}")
    return name


# Versions uploaded by other tools carry no manifest: say how to make one, or how
# to accept them (the operator passes --allow-unverified for verifyChecksums: false).
UNVERIFIED_HINT = (
    "; publish it with `modelops package-model --publish <storageUri>`, or accept versions "
    "without a manifest (spec.model.verifyChecksums: false, --allow-unverified)"
)


def _choose_version(
    store: ModelStore, requested: int | None, allow_unverified: bool
) -> tuple[int, bool]:
    """(version, has manifest) to pull, or a StorageError explaining why there is none."""
    listing = store.list_versions()
    if not listing.all:
        raise StorageError("ModelNotFound", f"{store.describe()}: no model versions found")
    candidates = listing.all if allow_unverified else listing.complete
    chosen = select_version(candidates, requested)
    if chosen is not None:
        return chosen, chosen in listing.complete
    if requested is not None and requested in listing.all:
        raise StorageError(
            "VersionIncomplete",
            f"{store.describe()}: version {requested} has no {MANIFEST_NAME} (still being "
            f"written, or not published by modelops){UNVERIFIED_HINT}",
        )
    if requested is not None:
        raise StorageError(
            "VersionNotFound",
            f"{store.describe()}: version {requested} not found "
            f"(complete versions: {listing.complete or 'none'})",
        )
    raise StorageError(
        "VersionIncomplete",
        f"{store.describe()}: no complete version (versions {listing.all} lack "
        f"{MANIFEST_NAME}){UNVERIFIED_HINT}",
    )


def _download_version(
    store: ModelStore, version: int, dest: Path, manifest_text: str | None
) -> tuple[int, int]:
    """Fetch version files into ``dest`` and check them; returns (files, bytes)."""
    dest.mkdir(parents=True, exist_ok=True)
    if manifest_text is not None:
        try:
            expected: dict[str, str] | None = parse_manifest(manifest_text)
        except LayoutError as err:
            raise StorageError("ChecksumMismatch", f"{store.describe()}/{version}: {err}") from None
        files = sorted(expected)
    else:
        expected = None
        files = store.list_files(version)
    total = 0
    for relative in files:
        # Checked before anything is written: an unverified listing may hold any key.
        target = contained(dest, relative, where=f"{store.describe()}/{version}")
        try:
            got = store.download(f"{version}/{relative}", target)
        except MissingObjectError:
            raise StorageError(
                "VersionIncomplete",
                f"{store.describe()}: {version}/{relative} is listed but missing",
            ) from None
        if expected is not None and got.sha256 != expected[relative]:
            raise StorageError(
                "ChecksumMismatch",
                f"{store.describe()}/{version}/{relative}: sha256 {got.sha256} does not match "
                f"{MANIFEST_NAME} ({expected[relative]})",
            )
        total += got.size
    if manifest_text is not None:
        (dest / MANIFEST_NAME).write_text(manifest_text)
    else:
        # Unverified source: record what was fetched, so the local copy is
        # still a complete version that later pulls can check.
        seal_version_dir(dest)
    return len(files), total


def _model_config(store: ModelStore, version_dir: Path) -> bytes | None:
    """The config to install: the version's own, else the model-level one, else none."""
    own = version_dir / CONFIG_NAME
    if own.is_file():
        return own.read_bytes()
    try:
        return store.read_bytes(CONFIG_NAME)
    except MissingObjectError:
        return None  # Triton may auto-complete the config (e.g. ONNX)


def _prepare_config(
    raw: bytes | None,
    overrides: RuntimeOverrides | None,
    model_format: str | None,
    where: str,
) -> bytes | None:
    """The model-level config to install: checked against the format, runtime applied."""
    if (overrides is None or overrides.is_empty()) and model_format in (None, "triton"):
        return raw  # nothing to check or apply: no need to parse
    if raw is None:
        raise StorageError(
            "InvalidConfig",
            f"{where}: no {CONFIG_NAME} to check the format or apply settings to; the model "
            f"needs a Triton {CONFIG_NAME} (`modelops package-model` writes one)",
        )
    try:
        text = raw.decode()
        if model_format is not None and not format_matches(text, model_format):
            raise StorageError(
                "FormatMismatch",
                f"{where}: the model is declared {model_format!r} but its {CONFIG_NAME} "
                f"runs {config_runtime(text) or 'no platform/backend'!r}",
            )
        if overrides is not None:
            text = patch_config(text, overrides)
    except (ConfigError, UnicodeDecodeError) as err:
        raise StorageError("InvalidConfig", f"{where}: {err}") from None
    return text.encode()


def _already_installed(version_dir: Path, manifest_text: str | None) -> bool:
    if manifest_text is None or not (version_dir / MANIFEST_NAME).is_file():
        return False
    if (version_dir / MANIFEST_NAME).read_text() != manifest_text:
        return False
    try:
        verify_version_dir(version_dir)
    except (ManifestMismatchError, LayoutError, OSError):
        return False
    return True


def _remove_aside(path: Path) -> None:
    """Remove a directory Triton may be reading: hide it with a rename first, then delete."""
    if not path.exists():
        return
    hidden = path.parent / f".tmp-old-{path.name}-{os.getpid()}"
    os.rename(path, hidden)
    shutil.rmtree(hidden, ignore_errors=True)


def _finish_existing(
    model_dir: Path, version: int, config: bytes | None, record: bytes, prune: bool
) -> None:
    """After version ``version`` is in place: config, install record, other versions."""
    if config is not None:
        current = model_dir / CONFIG_NAME
        if not current.is_file() or current.read_bytes() != config:
            write_file_atomic(current, config)
    write_file_atomic(model_dir / INSTALLED_NAME, record)
    if prune:
        for entry in model_dir.iterdir():
            number = parse_version_dir(entry.name)
            if number is not None and number != version and entry.is_dir():
                _remove_aside(entry)


def _clean_stale_staging(repository: Path, name: str) -> None:
    """Remove staging left by an earlier pull of this model that was killed mid-way.

    Triton treats every directory in the repository root as a model, so a
    leftover ``.tmp-<name>@*`` there would make it fail to start.
    """
    stale = list(repository.glob(f"{STAGING_PREFIX}{name}@*"))
    model_dir = repository / name
    if model_dir.is_dir():
        stale += model_dir.glob(f"{STAGING_PREFIX}*")
    for path in stale:
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)


def _record(outcome: PullResult) -> bytes:
    data = asdict(outcome) | {"pulledAt": datetime.now(UTC).isoformat(timespec="seconds")}
    return (json.dumps(data, sort_keys=True) + "\n").encode()


def pull_model(
    uri: str,
    repository: str | Path,
    version: str | int = "latest",
    *,
    model_name: str | None = None,
    pvc_root: str | Path | None = None,
    allow_unverified: bool = False,
    prune: bool = True,
    overrides: RuntimeOverrides | None = None,
    model_format: str | None = None,
    s3_client: Any | None = None,
) -> PullResult:
    """Install ``version`` (``"latest"`` or a number) of the model at ``uri`` into
    ``repository/<model_name>``; raises StorageError with a reason on failure.

    ``overrides`` (the deployment's runtime settings) are applied to the
    installed ``config.pbtxt`` (the version's own copy stays as published);
    ``model_format`` (torchscript, onnx, ...) is checked against the config.
    """
    location = parse_storage_uri(uri)
    name = _check_model_name(model_name or default_model_name(location))
    try:
        requested = parse_version_request(version)
    except LayoutError as err:
        raise StorageError("InvalidArgument", str(err)) from None
    store = open_store(location, pvc_root=pvc_root, s3_client=s3_client)
    chosen, has_manifest = _choose_version(store, requested, allow_unverified)

    manifest_text: str | None = None
    if has_manifest:
        try:
            manifest_text = store.read_bytes(
                f"{chosen}/{MANIFEST_NAME}", limit=MAX_MANIFEST_BYTES
            ).decode()
        except (MissingObjectError, UnicodeDecodeError) as err:
            raise StorageError(
                "VersionIncomplete", f"{store.describe()}/{chosen}/{MANIFEST_NAME}: {err}"
            ) from None

    repository = Path(repository)
    repository.mkdir(parents=True, exist_ok=True)
    model_dir = repository / name
    installed = model_dir / str(chosen)
    _clean_stale_staging(repository, name)

    def result(downloaded: bool, files: int, size: int) -> PullResult:
        return PullResult(
            model=name,
            version=chosen,
            source=store.describe(),
            path=str(model_dir),
            verified=manifest_text is not None,
            downloaded=downloaded,
            manifest_sha256=(
                hashlib.sha256(manifest_text.encode()).hexdigest() if manifest_text else None
            ),
            files=files,
            bytes=size,
        )

    if _already_installed(installed, manifest_text):
        present = [p for p in installed.rglob("*") if p.is_file() and p.name != MANIFEST_NAME]
        outcome = result(False, len(present), sum(p.stat().st_size for p in present))
        config = _prepare_config(
            _model_config(store, installed), overrides, model_format, store.describe()
        )
        _finish_existing(model_dir, chosen, config, _record(outcome), prune)
        return outcome

    new_model = not model_dir.exists()
    # A new model is staged whole beside its final place (<repo>/.tmp-<name>@*/<N>/...);
    # a new version of a present model inside it (<repo>/<name>/.tmp-*/...).
    staging = new_staging_dir(repository, f"{name}@") if new_model else new_staging_dir(model_dir)
    version_dest = staging / str(chosen) if new_model else staging
    try:
        files, size = _download_version(store, chosen, version_dest, manifest_text)
        config = _prepare_config(
            _model_config(store, version_dest), overrides, model_format, store.describe()
        )
        outcome = result(True, files, size)
        if new_model:
            if config is not None:
                (staging / CONFIG_NAME).write_bytes(config)
            (staging / INSTALLED_NAME).write_bytes(_record(outcome))
            fsync_tree(staging)
            os.rename(staging, model_dir)
            fsync_dir(repository)
        else:
            fsync_tree(staging)
            _remove_aside(installed)
            os.rename(staging, installed)
            _finish_existing(model_dir, chosen, config, _record(outcome), prune)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return outcome
