"""Mount commands for tests that give a real process a pod's filesystem shape.

A pod's scratch volume is mounted on /tmp. Binding a scratch directory over
the host's /tmp hides everything under it, which breaks a checkout that lies
under /tmp (its editable install and scripts vanish from the process's view).
The paths the process still needs are bound into the scratch first, then the
scratch is bound recursively over /tmp, so they stay where they were.
"""

from __future__ import annotations

import shlex
from collections.abc import Iterable
from pathlib import Path

TMP = Path("/tmp")


def scratch_on_tmp(scratch: Path, keep: Iterable[Path]) -> list[str]:
    """Shell commands that put ``scratch`` on /tmp while every path in ``keep`` that
    lies under /tmp stays visible at its own path. Creates the mount points now."""
    commands = []
    for path in {p.resolve() for p in keep}:
        if not path.is_relative_to(TMP):
            continue
        target = scratch / path.relative_to(TMP)
        target.mkdir(parents=True, exist_ok=True)
        commands.append(f"mount --bind {shlex.quote(str(path))} {shlex.quote(str(target))}")
    commands.append(f"mount --rbind {shlex.quote(str(scratch))} /tmp")
    return commands
