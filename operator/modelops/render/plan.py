"""What a reconcile decides, as data: the shell executes a Plan and nothing else.

observe -> plan -> act: the controller gathers an observed snapshot, a pure
planner (``render.md_planner``, ``render.training.planner``) returns a Plan,
and the controller carries it out through ``modelops.kube``. The number of
actions in a Plan is the reconcile's API budget, so unit tests can assert it.

Ownership is part of every action: children are applied with the uid of the
object the planner saw (or, for a child that does not exist yet, with the
demand that none exists), and deleted with their uid as a precondition. An
object of the same name that this ModelDeployment does not own is never
adopted, overwritten or deleted.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .keys import key_of

FIELD_MANAGER = "modelops"
# A second field manager that takes over Deployment.spec.replicas at its live
# value when autoscaling is switched on (or a scaled-to-zero Deployment must
# be brought back to the autoscaler's minimum).
REPLICAS_MANAGER = "modelops-replicas-handover"

Event = tuple[str, str, str]  # (type, reason, message)


@dataclass(frozen=True)
class Apply:
    """Server-side apply ``obj``.

    expect_uid: the uid of the live object this apply is meant for; None means
    the object must not exist yet (the shell turns an existing object of that
    name into an ownership problem instead of taking it over).
    """

    obj: Mapping[str, Any]
    expect_uid: str | None
    field_manager: str = FIELD_MANAGER
    # The child's key (render/slots.py); by default from the object's name and label.
    child: str | None = None
    # Set when the apply heals an edit made behind our back: the fingerprint of the
    # edited object (render/ownership.py counts the applies that change it back).
    heals: tuple[Any, ...] | None = None

    @property
    def kind(self) -> str:
        return str(self.obj["kind"])

    @property
    def key(self) -> str:
        return self.child or key_of(self.obj)

    @property
    def name(self) -> str:
        return str(self.obj["metadata"]["name"])


@dataclass(frozen=True)
class Delete:
    """Delete a child, only if its uid is still ``uid`` (a precondition)."""

    api_version: str
    kind: str
    namespace: str
    name: str
    uid: str
    child: str | None = None  # the child's key (render/slots.py); default: the kind

    @property
    def key(self) -> str:
        return self.child or self.kind


@dataclass(frozen=True)
class Create:
    """Create ``obj``; an AlreadyExists answer counts as success (idempotent name)."""

    obj: Mapping[str, Any]


@dataclass(frozen=True)
class Patch:
    """Merge-patch a child the operator owns (e.g. suspending a Job)."""

    api_version: str
    kind: str
    namespace: str
    name: str
    patch: Mapping[str, Any]


@dataclass(frozen=True)
class Failure:
    """An action the shell could not carry out, or a conflict found while planning."""

    kind: str  # the kind of object concerned (Service, TrainingJob, ...)
    reason: str  # CamelCase, becomes the condition reason
    message: str
    # The API server could not answer now (no connection, 429, 503, 504): the
    # operator's own trouble, retried with back-off, never a condition on the
    # object (an API-server restart would otherwise flip every object's Ready).
    transient: bool = False


@dataclass
class Plan:
    """Everything one reconcile does, in order: applies, deletes, creates, patches,
    then the status patch and events."""

    applies: list[Apply] = field(default_factory=list)
    deletes: list[Delete] = field(default_factory=list)
    creates: list[Create] = field(default_factory=list)
    patches: list[Patch] = field(default_factory=list)
    status: dict[str, Any] = field(default_factory=dict)  # the whole desired status
    status_patch: dict[str, Any] = field(default_factory=dict)  # {} -> nothing to write
    events: list[Event] = field(default_factory=list)
    # How many of ``events`` the planner decided itself (rollout steps, retraining);
    # the rest are transitions of the status conditions, derived again on revision.
    planned_events: int = 0
    requeue_after: float | None = None
    failed: bool = False  # retry with back-off rather than after requeue_after
    problems: list[Failure] = field(default_factory=list)
    digest: str = ""  # of the rendered children, recorded once they are applied
    # Write the status before creating anything (TrainingJob attempts: a crash
    # in between must not skip or repeat an attempt).
    status_first: bool = False

    @property
    def decision(self) -> str:
        """What this plan does, in one short line for the logs ("apply Deployment
        fraud; status Ready=True/Serving; requeue 30s"); "no change" at steady state."""
        parts = []
        for verb, items in (
            ("apply", [f"{a.kind} {a.name}" for a in self.applies]),
            ("delete", [f"{d.kind} {d.name}" for d in self.deletes]),
            ("create", [str(c.obj.get("kind")) for c in self.creates]),
            ("patch", [f"{p.kind} {p.name}" for p in self.patches]),
            ("event", [e[1] for e in self.events]),
        ):
            if items:
                parts.append(f"{verb} {', '.join(items)}")
        if self.status_patch:
            ready = next(
                (c for c in self.status.get("conditions") or [] if c.get("type") == "Ready"), None
            )
            parts.append(
                f"status Ready={ready.get('status')}/{ready.get('reason')}" if ready else "status"
            )
        if self.failed:
            parts.append("retry with back-off")
        elif self.requeue_after is not None:
            parts.append(f"requeue {self.requeue_after:g}s")
        return "; ".join(parts) or "no change"

    @property
    def writes(self) -> int:
        """API writes this plan makes (events included): its budget."""
        return (
            len(self.applies)
            + len(self.deletes)
            + len(self.creates)
            + len(self.patches)
            + (1 if self.status_patch else 0)
            + len(self.events)
        )
