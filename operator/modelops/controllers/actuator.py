"""Carries out a Plan through modelops.kube, and reports what could not be done.

This is the only place where a plan meets the API server. It decides
nothing: every choice is in the plan. What it adds is the ownership check
that needs the server's answer: a child the plan expects to be absent is
applied with a uid that no object has, so the API server refuses it when an
object of that name exists (no extra read on the happy path); only then is
the object read, and it is updated only if its controller reference names
the owner.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from modelops.controllers import metrics
from modelops.kube import Kube
from modelops.kube.errors import AlreadyExists, KubeError, PreconditionFailed
from modelops.render.ownership import Fingerprint, fingerprint, foreign
from modelops.render.plan import Apply, Failure, Plan
from modelops.render.projections import controller_uid

log = logging.getLogger("modelops.actuator")


@dataclass
class Outcome:
    """What acting on a plan produced."""

    failures: list[Failure] = field(default_factory=list)
    # kind -> fingerprint of the child as our apply left it (for the next plan).
    fingerprints: dict[str, Fingerprint] = field(default_factory=dict)
    status_resource_version: str | None = None


@dataclass
class Actuator:
    kube: Kube
    kind: str  # of the owner, for metrics and logs

    def act(self, plan: Plan, owner: Mapping[str, Any]) -> Outcome:
        """Applies, deletes, then creates and patches (status first if the plan says so)."""
        out = Outcome()
        for action in plan.applies:
            self._apply(action, owner, out)
        for delete in plan.deletes:
            try:
                self.kube.delete(
                    delete.api_version, delete.kind, delete.name, delete.namespace, uid=delete.uid
                )
            except PreconditionFailed:
                pass  # replaced by someone else meanwhile: not ours to delete
            except KubeError as err:
                out.failures.append(_failure(delete.kind, err))
        if not plan.status_first:
            self._create_and_patch(plan, out)
        return out

    def finish(self, plan: Plan, owner: Mapping[str, Any], out: Outcome) -> None:
        """Write the status patch and post the events; then, for plans that must
        record status before creating, the creates and patches."""
        meta = owner["metadata"]
        if plan.status_patch:
            try:
                live = self.kube.patch_status(
                    owner["apiVersion"],
                    owner["kind"],
                    meta["namespace"],
                    meta["name"],
                    plan.status_patch,
                )
                out.status_resource_version = (live.get("metadata") or {}).get("resourceVersion")
            except KubeError as err:
                # Not fatal: the next reconcile derives the same status again.
                metrics.RECONCILE_ERRORS.labels(self.kind, err.reason).inc()
                log.warning(
                    "status of %s %s/%s not written: %s",
                    self.kind,
                    meta["namespace"],
                    meta["name"],
                    err.message,
                )
                out.failures.append(_failure(self.kind, err))
                return
        for type_, reason, message in plan.events:
            self.kube.post_event(owner, type_, reason, message)
        if plan.status_first:
            self._create_and_patch(plan, out)

    # -- pieces --

    def _create_and_patch(self, plan: Plan, out: Outcome) -> None:
        for create in plan.creates:
            try:
                self.kube.create(dict(create.obj))
            except AlreadyExists:
                pass  # created by an earlier reconcile: names are deterministic
            except KubeError as err:
                out.failures.append(_failure(create.obj["kind"], err))
        for patch in plan.patches:
            try:
                self.kube.merge_patch(
                    patch.api_version, patch.kind, patch.name, patch.namespace, dict(patch.patch)
                )
            except KubeError as err:
                out.failures.append(_failure(patch.kind, err))

    def _apply(self, action: Apply, owner: Mapping[str, Any], out: Outcome) -> None:
        # No uid expected: the object must not exist, and no object has a fresh uuid.
        expect = action.expect_uid or str(uuid.uuid4())
        try:
            live = self.kube.apply(
                dict(action.obj), uid_precondition=expect, field_manager=action.field_manager
            )
        except PreconditionFailed:
            live = self._apply_if_ours(action, owner, out)
            if live is None:
                return
        except KubeError as err:
            out.failures.append(_failure(action.kind, err))
            return
        # The last apply of a kind leaves the generation the next plan compares with.
        out.fingerprints[action.kind] = fingerprint(live) or ()

    def _apply_if_ours(
        self, action: Apply, owner: Mapping[str, Any], out: Outcome
    ) -> dict[str, Any] | None:
        """The object exists with another uid than expected: apply only if the owner
        controls it (e.g. it was re-created by its owner's own earlier reconcile)."""
        obj = action.obj
        meta = obj["metadata"]
        try:
            live = self.kube.get(
                obj["apiVersion"], obj["kind"], meta["name"], meta.get("namespace")
            )
            if live is None:  # gone meanwhile: create it
                return self.kube.apply(
                    dict(obj),
                    uid_precondition=str(uuid.uuid4()),
                    field_manager=action.field_manager,
                )
            if controller_uid(live) != owner["metadata"]["uid"]:
                out.failures.append(foreign(action.kind, live))
                return None
            return self.kube.apply(
                dict(obj),
                uid_precondition=live["metadata"]["uid"],
                field_manager=action.field_manager,
            )
        except KubeError as err:
            out.failures.append(_failure(action.kind, err))
            return None


def _failure(kind: str, err: KubeError) -> Failure:
    return Failure(kind, err.reason or f"HTTP{err.status}", f"{kind}: {err.message}")
