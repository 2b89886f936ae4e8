"""Which owned children to apply, and which same-named objects are not ours. Pure.

A child is applied when it is missing, when its rendering changed, or when it
was changed behind the operator's back since our last apply: its generation
moved (kinds with a spec/status split), its resourceVersion moved (a Service
has no generation), or its controller reference was removed. An object of a
child's name that this owner does not control, and that this process did not
apply itself, is never adopted or overwritten: it becomes a Failure that
names it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from .plan import Apply, Failure
from .projections import controller_uid
from .slots import key_of

Fingerprint = tuple[Any, ...]


@dataclass(frozen=True)
class Applied:
    """What this operator process last applied for one owner: the digest of the
    rendered children and, per kind, the fingerprint of the live child that our
    apply returned. Kept in memory; after a restart every child is applied once
    (a no-op for the API server when nothing changed)."""

    digest: str
    fingerprints: Mapping[str, Fingerprint] = field(default_factory=dict)


def fingerprint(child: Mapping[str, Any] | None) -> Fingerprint | None:
    """What moves when someone edits a child: uid, generation or resourceVersion,
    controller reference."""
    if child is None:
        return None
    meta = child.get("metadata") or {}
    version = meta.get("generation") or meta.get("resourceVersion")
    return (meta.get("uid"), version, controller_uid(child))


def uid_of(live: Mapping[str, Any] | None) -> str | None:
    return None if live is None else (live.get("metadata") or {}).get("uid")


def apply_actions(
    rendered: Sequence[Mapping[str, Any]],
    live: Mapping[str, Mapping[str, Any] | None],
    *,
    owner_uid: str,
    applied: Applied | None,
    digest: str,
) -> tuple[list[Apply], list[Failure]]:
    """(applies, conflicts) for the rendered children; ``live`` maps child key
    (render/slots.py) -> object."""
    applies: list[Apply] = []
    conflicts: list[Failure] = []
    changed = applied is None or applied.digest != digest
    for child in rendered:
        key = key_of(child)
        current = live.get(key)
        if current is not None and not _ours(current, owner_uid, applied, key):
            conflicts.append(foreign(str(child["kind"]), current))
        elif current is None or changed or _edited(applied, key, current):
            applies.append(Apply(child, expect_uid=uid_of(current), child=key))
    return applies, conflicts


def _ours(live: Mapping[str, Any], owner_uid: str, applied: Applied | None, kind: str) -> bool:
    """Controlled by the owner, or applied by this process (someone removed the
    owner reference afterwards; the apply puts it back)."""
    if controller_uid(live) == owner_uid:
        return True
    recorded = applied.fingerprints.get(kind) if applied else None
    return recorded is not None and recorded[0] == uid_of(live)


def _edited(applied: Applied | None, kind: str, live: Mapping[str, Any]) -> bool:
    return applied is None or applied.fingerprints.get(kind) != fingerprint(live)


def foreign(kind: str, live: Mapping[str, Any]) -> Failure:
    """The ownership problem for an object that is not ours, naming it and its owner."""
    meta = live.get("metadata") or {}
    owner = controller_uid(live)
    whose = f"is controlled by another object (uid {owner})" if owner else "has no owner"
    return Failure(
        kind,
        "OwnershipConflict",
        f"{kind} {meta.get('namespace')}/{meta.get('name')} already exists and {whose}; "
        "modelops never adopts or overwrites it: delete or rename it",
    )
