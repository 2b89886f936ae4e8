"""The status write of either kind: a JSON merge patch from live status to derived status. Pure.

Generic (ModelDeployment and TrainingJob statuses alike), so that both planners
use it without one kind's modules depending on the other's.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

# Owned by the operator framework, never by derive_status.
FOREIGN_KEYS = frozenset({"kopf"})


def status_patch(previous: Mapping[str, Any] | None, desired: Mapping[str, Any]) -> dict[str, Any]:
    """JSON merge patch (RFC 7386) turning the live status into `desired`.

    Keys derive_status no longer sets become None (deleted), which a plain
    merge of `desired` would leave behind (e.g. servedVersion once no pod is
    ready). Empty when nothing changed: the controller then writes nothing.
    status.kopf is left alone.
    """
    return _diff(previous or {}, desired, top=True)


def _diff(old: Mapping[str, Any], new: Mapping[str, Any], *, top: bool = False) -> dict[str, Any]:
    patch: dict[str, Any] = {}
    for key in old:
        if key not in new and not (top and key in FOREIGN_KEYS):
            patch[key] = None
    for key, value in new.items():
        before = old.get(key)
        if isinstance(value, Mapping) and isinstance(before, Mapping):
            sub = _diff(before, value)
            if sub:
                patch[key] = sub
        elif before != value:
            # Lists (conditions) are replaced whole, as merge patch does.
            patch[key] = value
    return patch
