"""meta/v1 Conditions as every modelops kind writes them.

Shared by the ModelDeployment and TrainingJob status derivations so that both
follow the same rule: lastTransitionTime moves only when a condition's status
does, and the same situation yields byte-identical conditions (no write).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from .pods import format_time, truncate


def new_condition(ctype: str, status: bool | None, reason: str, message: str) -> dict[str, Any]:
    """A condition without its timestamps (None means Unknown)."""
    value = "Unknown" if status is None else ("True" if status else "False")
    return {"type": ctype, "status": value, "reason": reason, "message": truncate(message)}


def stamp_conditions(
    conditions: list[dict[str, Any]],
    previous: Sequence[Mapping[str, Any]] | None,
    generation: int,
    now: datetime,
    *,
    order: Sequence[str],
) -> list[dict[str, Any]]:
    """Add observedGeneration and lastTransitionTime, keeping the old time when the
    status did not change (meta/v1 Condition semantics); sorted by `order`."""
    before = {c.get("type"): c for c in previous or []}
    out = []
    for cond in sorted(conditions, key=lambda c: order.index(c["type"])):
        old = before.get(cond["type"])
        moved = old is None or old.get("status") != cond["status"]
        when = (
            format_time(now)
            if moved or not old.get("lastTransitionTime")
            else old["lastTransitionTime"]
        )
        out.append(
            {
                "type": cond["type"],
                "status": cond["status"],
                "observedGeneration": generation,
                "lastTransitionTime": when,
                "reason": cond["reason"],
                "message": cond["message"],
            }
        )
    return out


def set_condition(
    conditions: Sequence[Mapping[str, Any]],
    previous: Sequence[Mapping[str, Any]] | None,
    ctype: str,
    status: bool,
    reason: str,
    message: str,
    now: datetime,
) -> list[dict[str, Any]]:
    """``conditions`` with ``ctype`` replaced (lastTransitionTime kept when its status
    was already this one in ``previous``)."""
    value = "True" if status else "False"
    prior = next((c for c in previous or [] if c.get("type") == ctype), None)
    since = (
        prior["lastTransitionTime"]
        if prior and prior.get("status") == value and prior.get("lastTransitionTime")
        else format_time(now)
    )
    out = []
    for cond in conditions:
        cond = dict(cond)
        if cond["type"] == ctype:
            cond.update(
                status=value, reason=reason, message=truncate(message), lastTransitionTime=since
            )
        out.append(cond)
    return out


# The kstatus conditions a blocking problem forces, whatever the rest says.
_FORCED = ("Ready", "Stalled", "Reconciling")


def force_conditions(
    conditions: Sequence[Mapping[str, Any]],
    previous: Sequence[Mapping[str, Any]] | None,
    reason: str,
    message: str,
    now: datetime,
) -> list[dict[str, Any]]:
    """Conditions saying that a problem blocks all progress: Ready False, Stalled
    True, Reconciling False, each with ``reason``; the other conditions as they are.
    lastTransitionTime is kept when a forced condition already had that status."""
    before = {cond["type"]: cond for cond in previous or []}
    forced = {
        "Ready": ("False", reason, message),
        "Stalled": ("True", reason, message),
        "Reconciling": ("False", reason, "not progressing until the problem is fixed"),
    }
    present = {cond["type"] for cond in conditions}
    out: list[dict[str, Any]] = []
    for cond in list(conditions) + [{"type": t} for t in _FORCED if t not in present]:
        ctype = cond["type"]
        if ctype not in forced:
            out.append(dict(cond))
            continue
        status, why, text = forced[ctype]
        prior = before.get(ctype)
        since = (
            prior["lastTransitionTime"]
            if prior and prior.get("status") == status and prior.get("lastTransitionTime")
            else format_time(now)
        )
        forced_cond = {
            "type": ctype,
            "status": status,
            "reason": why,
            "message": truncate(text, 1024),
            "lastTransitionTime": since,
        }
        if "observedGeneration" in cond:
            forced_cond["observedGeneration"] = cond["observedGeneration"]
        out.append(forced_cond)
    return out
