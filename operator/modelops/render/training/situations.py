"""Where a TrainingJob stands (a Situation) and the conditions each situation implies.

One row per situation keeps the eight conditions consistent with each other:
kstatus Ready/Reconciling/Stalled never contradict the domain conditions,
because both come from the same row.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..conditions import new_condition


@dataclass(frozen=True)
class Situation:
    """Where the TrainingJob stands: one of the rows of _CONDITIONS."""

    kind: str
    message: str
    reason: str = ""  # for kinds whose reason varies (Failed, Stalled, Suspended)


# The situation's own reason or message, in the table below.
OWN = "*"
_STALLED_NO = (False, "AsExpected", "no blocking problem")
_NOT_FINISHED = (False, "NotFinished", "the job has not finished")
_NOT_FAILED = (False, "NoFailure", "the job has not failed")
_NOT_SUSPENDED = (False, "NotSuspended", "the job is not suspended")

Row = tuple[bool, str, str]
# situation kind -> (phase, rows of Ready, Reconciling, Stalled, Running, Succeeded,
# Failed, Suspended as (status, reason, message)).
_CONDITIONS: dict[str, tuple[str, tuple[Row, ...]]] = {
    "Succeeded": (
        "Succeeded",
        (
            (True, "Succeeded", OWN),
            (False, "Finished", OWN),
            _STALLED_NO,
            (False, "Completed", OWN),
            (True, "Completed", OWN),
            _NOT_FAILED,
            _NOT_SUSPENDED,
        ),
    ),
    "Failed": (
        "Failed",
        (
            (False, OWN, OWN),
            (False, "Finished", OWN),
            (True, OWN, OWN),
            (False, "Failed", OWN),
            (False, "Failed", OWN),
            (True, OWN, OWN),
            _NOT_SUSPENDED,
        ),
    ),
    "Restarting": (
        "Pending",
        (
            (False, "Restarting", OWN),
            (True, "Restarting", OWN),
            _STALLED_NO,
            (False, "Restarting", OWN),
            _NOT_FINISHED,
            (False, "Restarting", OWN),
            _NOT_SUSPENDED,
        ),
    ),
    "NodeFailed": (
        "Pending",
        (
            (False, "NodeFailed", OWN),
            (True, "NodeFailed", OWN),
            _STALLED_NO,
            (False, "NodeFailed", OWN),
            _NOT_FINISHED,
            (False, "NodeFailed", OWN),
            _NOT_SUSPENDED,
        ),
    ),
    "Creating": (
        "Pending",
        (
            (False, "Creating", OWN),
            (True, "Creating", OWN),
            _STALLED_NO,
            (False, "NotStarted", OWN),
            _NOT_FINISHED,
            _NOT_FAILED,
            _NOT_SUSPENDED,
        ),
    ),
    "Suspended": (
        "Suspended",
        (
            (False, OWN, OWN),
            (False, "Suspended", OWN),
            _STALLED_NO,
            (False, "Suspended", OWN),
            _NOT_FINISHED,
            _NOT_FAILED,
            (True, OWN, OWN),
        ),
    ),
    "Suspending": (
        "Suspended",
        (
            (False, "Suspending", OWN),
            (True, "Suspending", OWN),
            _STALLED_NO,
            (False, "Suspended", OWN),
            _NOT_FINISHED,
            _NOT_FAILED,
            (False, "Suspending", OWN),
        ),
    ),
    "Stalled": (
        "Pending",
        (
            (False, OWN, OWN),
            (False, "Stalled", "no progress is possible: see Stalled"),
            (True, OWN, OWN),
            (False, "Starting", OWN),
            _NOT_FINISHED,
            _NOT_FAILED,
            _NOT_SUSPENDED,
        ),
    ),
    "WaitingForNodes": (
        "Pending",
        (
            (False, "WaitingForNodes", OWN),
            (True, "WaitingForNodes", OWN),
            _STALLED_NO,
            (False, "WaitingForNodes", OWN),
            _NOT_FINISHED,
            _NOT_FAILED,
            _NOT_SUSPENDED,
        ),
    ),
    "Starting": (
        "Pending",
        (
            (False, "Starting", OWN),
            (True, "Starting", OWN),
            _STALLED_NO,
            (False, "Starting", OWN),
            _NOT_FINISHED,
            _NOT_FAILED,
            _NOT_SUSPENDED,
        ),
    ),
    "Running": (
        "Running",
        (
            (False, "Running", OWN),
            (True, "Running", OWN),
            _STALLED_NO,
            (True, "AllNodesRunning", OWN),
            _NOT_FINISHED,
            _NOT_FAILED,
            _NOT_SUSPENDED,
        ),
    ),
}
CONDITION_TYPES = ("Ready", "Reconciling", "Stalled", "Running", "Succeeded", "Failed", "Suspended")


def conditions_of(situation: Situation) -> tuple[str, list[dict[str, Any]]]:
    """(phase, conditions without timestamps) of a situation; Created is the caller's."""
    phase, rows = _CONDITIONS[situation.kind]
    conditions = [
        new_condition(
            ctype,
            status,
            situation.reason if reason == OWN else reason,
            situation.message if message == OWN else message,
        )
        for ctype, (status, reason, message) in zip(CONDITION_TYPES, rows, strict=True)
    ]
    return phase, conditions
