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
