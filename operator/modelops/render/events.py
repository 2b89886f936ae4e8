"""Kubernetes Events for the condition transitions an SRE wants in `kubectl describe`."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from .plan import Event


def transition_events(
    old: Sequence[Mapping[str, Any]], new: Sequence[Mapping[str, Any]]
) -> list[Event]:
    """One event per condition whose (status, reason) changed in a way worth telling:
    Ready turning True or False, Stalled turning True, Drifted turning True."""
    before = {cond["type"]: cond for cond in old}
    out: list[Event] = []
    for cond in new:
        prior = before.get(cond["type"])
        changed = prior is None or (prior.get("status"), prior.get("reason")) != (
            cond["status"],
            cond.get("reason"),
        )
        if not changed:
            continue
        ctype, status = cond["type"], cond["status"]
        if ctype == "Ready" and status == "True":
            out.append(("Normal", cond.get("reason") or "Ready", cond.get("message", "")))
        elif ctype == "Stalled" and status == "True":
            out.append(("Warning", cond.get("reason") or "Stalled", cond.get("message", "")))
        elif ctype == "Drifted" and status == "True":
            out.append(("Warning", "DriftDetected", cond.get("message", "")))
        elif ctype == "Ready" and status == "False" and prior is not None:
            out.append(("Warning", cond.get("reason") or "NotReady", cond.get("message", "")))
    return out
