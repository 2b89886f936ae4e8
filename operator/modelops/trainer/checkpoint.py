"""Per-epoch checkpoints in ``--checkpoint-dir``: atomic writes, newest-first selection.

Layout: ``<dir>/epoch-000003.pt`` holds the state after 3 completed epochs.
Only rank 0 reads or writes the directory (the runner broadcasts what it
loads), so on several nodes it only has to exist on the first one; it should
be a volume that outlives the pod (a PVC) for a restarted pod to resume.

A checkpoint is written to a hidden temporary file in the same directory,
flushed, then renamed over its final name, so a crash mid-write leaves a
temporary file (removed on the next start) and never a truncated checkpoint
under a real name. The newest ``keep`` checkpoints are kept; should the newest
still fail to load (a disk problem), the one before it is tried.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

_NAME = re.compile(r"epoch-(\d{6,})\.pt")
TEMP_PREFIX = ".tmp-"
FORMAT = 1


def checkpoint_name(epoch: int) -> str:
    if epoch < 1:
        raise ValueError(f"a checkpoint follows a completed epoch (>= 1), got {epoch}")
    return f"epoch-{epoch:06d}.pt"


def checkpoint_epochs(names: Iterable[str]) -> list[tuple[int, str]]:
    """(epoch, file name) of every checkpoint among ``names``, newest first.

    Temporary files, other files and malformed names are not checkpoints.
    """
    found = []
    for name in names:
        match = _NAME.fullmatch(name)
        if match and int(match.group(1)) >= 1:
            found.append((int(match.group(1)), name))
    return sorted(found, reverse=True)


def _listing(directory: Path) -> list[str]:
    return [p.name for p in directory.iterdir() if p.is_file()] if directory.is_dir() else []


def remove_temporaries(directory: Path) -> None:
    """Delete half-written checkpoints left by a process that died while saving."""
    for name in _listing(directory):
        if name.startswith(TEMP_PREFIX):
            with contextlib.suppress(FileNotFoundError):
                (directory / name).unlink()


def save_checkpoint(directory: Path, epoch: int, state: dict[str, Any], keep: int = 2) -> Path:
    """Write ``state`` as the checkpoint after ``epoch`` atomically; prune to ``keep`` newest."""
    import torch

    directory.mkdir(parents=True, exist_ok=True)
    final = directory / checkpoint_name(epoch)
    fd, tmp = tempfile.mkstemp(prefix=TEMP_PREFIX, suffix=".pt", dir=directory)
    try:
        with os.fdopen(fd, "wb") as handle:
            torch.save({**state, "format": FORMAT, "epoch": epoch}, handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, final)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    # The rename itself must reach the disk before an older checkpoint is deleted.
    dir_fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
    for _, name in checkpoint_epochs(_listing(directory))[keep:]:
        with contextlib.suppress(FileNotFoundError):
            (directory / name).unlink()
    return final


def load_latest(directory: Path) -> dict[str, Any] | None:
    """The newest checkpoint that loads, or None when there is none."""
    import torch

    for epoch, name in checkpoint_epochs(_listing(directory)):
        try:
            # weights_only: a checkpoint directory may be shared, so never unpickle code.
            state = torch.load(directory / name, map_location="cpu", weights_only=True)
        except Exception as err:  # torch raises several types for a damaged file
            log.warning("checkpoint %s does not load (%s); trying an older one", name, err)
            continue
        if not isinstance(state, dict) or state.get("format") != FORMAT:
            log.warning("checkpoint %s has an unknown format; trying an older one", name)
            continue
        if state.get("epoch") != epoch:
            log.warning("checkpoint %s says epoch %s; skipping it", name, state.get("epoch"))
            continue
        return state
    return None
