"""The last step of every plan: status, its patch, and the events that go with it."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from .conditions import force_conditions
from .events import transition_events
from .merge_patch import status_patch
from .plan import Failure, Plan


def conclude(
    out: Plan,
    previous: Mapping[str, Any],
    status: dict[str, Any],
    problems: Sequence[Failure],
    now: datetime,
) -> Plan:
    """Fill ``out`` with ``status`` (problems forced into the kstatus conditions),
    the merge patch from ``previous``, and the transition events of that patch.

    When every problem is transient (the API server could not answer), nothing
    is written: what the status would claim was not done, and the object's
    conditions are no place for the operator's own connection trouble; the
    reconcile is retried with back-off."""
    if problems and all(p.transient for p in problems):
        out.failed = True
        out.problems = list(problems)
        out.status = status
        out.status_patch = {}
        out.events = []
        return out
    problems = [p for p in problems if not p.transient]
    if problems:
        status["conditions"] = force_conditions(
            status.get("conditions") or [],
            previous.get("conditions"),
            problems[0].reason,
            "; ".join(p.message for p in problems),
            now,
        )
        out.failed = True
    out.problems = list(problems)
    out.status = status
    out.status_patch = status_patch(previous, status)
    if out.status_patch:
        out.events += transition_events(previous.get("conditions") or [], status["conditions"])
    return out


def digest(objs: Any) -> str:
    """Stable digest of rendered objects (key order does not matter)."""
    return hashlib.sha256(json.dumps(objs, sort_keys=True).encode()).hexdigest()
