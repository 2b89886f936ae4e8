"""Which owned children to apply, and which same-named objects are not ours. Pure.

A child is applied when it is missing, when its rendering changed, or when it
was changed behind the operator's back since our last apply: its generation
moved (kinds with a spec/status split), its resourceVersion moved (a Service
has no generation), or its controller reference was removed. An object of a
child's name that this owner does not control, and that this process did not
apply itself, is never adopted or overwritten: it becomes a Failure that
names it.

Two writers of one child (a second operator install watching the same
namespace, an operator process left running by a killed test session, a
controller managing the same object) would each re-apply their own rendering
whenever the other changed it: an endless alternation in which a Deployment
rolls a new ReplicaSet every time. So a child that our applies changed back
after outside edits ``CONTESTED_REVERTS`` times within ``CONTESTED_WINDOW`` is
not applied again until that window has passed; the reconcile reports it as a
``ConflictingWriter`` problem naming the object, and the fight slows to a few
applies per window instead of several a second.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from .keys import key_of
from .plan import Apply, Failure
from .projections import controller_uid

Fingerprint = tuple[Any, ...]

# How many changes back within the window make a child contested. One outside edit
# (kubectl edit, scale) is healed with one apply; a fight with another writer repeats.
CONTESTED_REVERTS = 3
CONTESTED_WINDOW = timedelta(minutes=2)


@dataclass(frozen=True)
class Applied:
    """What this operator process last applied for one owner: the digest of the
    rendered children and, per kind, the fingerprint of the live child that our
    apply returned. Kept in memory; after a restart every child is applied once
    (a no-op for the API server when nothing changed)."""

    digest: str
    fingerprints: Mapping[str, Fingerprint] = field(default_factory=dict)
    # child key -> when our applies changed that child back after someone else changed
    # it (the latest CONTESTED_REVERTS, oldest first): see reverts_after.
    reverts: Mapping[str, tuple[datetime, ...]] = field(default_factory=dict)


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
    now: datetime | None = None,
) -> tuple[list[Apply], list[Failure]]:
    """(applies, conflicts) for the rendered children; ``live`` maps child key
    (render/slots.py) -> object. now: the reconcile's time, for the contested-child
    check (None: no check)."""
    applies: list[Apply] = []
    conflicts: list[Failure] = []
    changed = applied is None or applied.digest != digest
    for child in rendered:
        key = key_of(child)
        current = live.get(key)
        if current is not None and not _ours(current, owner_uid, applied, key):
            conflicts.append(foreign(str(child["kind"]), current))
        elif current is None or changed:
            applies.append(Apply(child, expect_uid=uid_of(current), child=key))
        elif _edited(applied, key, current):
            # Unchanged rendering, changed object: someone else edited it.
            recent = contested(applied, key, now)
            if recent:
                conflicts.append(contested_failure(str(child["kind"]), current, recent))
            else:
                heals = fingerprint(current)
                applies.append(Apply(child, expect_uid=uid_of(current), child=key, heals=heals))
    return applies, conflicts


def contested(applied: Applied | None, key: str, now: datetime | None) -> int:
    """How many times our applies changed ``key`` back within the window before
    ``now``, when that makes it contested (0 otherwise)."""
    if applied is None or now is None:
        return 0
    recent = [t for t in applied.reverts.get(key, ()) if now - t < CONTESTED_WINDOW]
    return len(recent) if len(recent) >= CONTESTED_REVERTS else 0


def contested_failure(kind: str, live: Mapping[str, Any], times: int) -> Failure:
    meta = live.get("metadata") or {}
    minutes = int(CONTESTED_WINDOW.total_seconds() // 60)
    return Failure(
        kind,
        "ConflictingWriter",
        f"{kind} {meta.get('namespace')}/{meta.get('name')} was changed back {times} times "
        f"within {minutes} minutes right after modelops applied it: another writer manages it "
        "(a second operator watching this namespace, or a controller); modelops stops "
        "re-applying it until that writer stops",
    )


def reverts_after(
    before: Applied | None,
    applies: Sequence[Apply],
    fingerprints: Mapping[str, Fingerprint],
    now: datetime,
) -> dict[str, tuple[datetime, ...]]:
    """The reverts to remember once ``applies`` were carried out (``fingerprints``: the
    children as our applies left them). An apply that healed an edited child (its
    ``heals``) changed it back when the object it left differs both from the edited one
    it saw and from the one our previous apply left: a watch that had not yet shown our
    own last apply does not count."""
    out = {k: v[-CONTESTED_REVERTS:] for k, v in (before.reverts if before else {}).items()}
    for action in applies:
        after = fingerprints.get(action.key)
        if action.heals is None or not after:
            continue
        recorded = before.fingerprints.get(action.key) if before else None
        if after != action.heals and after != recorded:
            out[action.key] = (*out.get(action.key, ()), now)[-CONTESTED_REVERTS:]
    return {k: v for k, v in out.items() if v and now - v[-1] < CONTESTED_WINDOW}


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
