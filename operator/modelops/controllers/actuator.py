"""Carries out a Plan through modelops.kube, and reports what could not be done.

This is the only place where a plan meets the API server. It decides
nothing: every choice is in the plan. What it adds is the ownership check
that needs the server's answer. A child the plan saw is applied with its uid
as a precondition (the API server refuses the apply if the name now belongs
to another object). A child the plan did not see (nothing labelled as ours
has its name) is applied "create only": the API server creates it if the
name is free and refuses otherwise, in one request. Only then is the object
read: one that the owner does not control, made by hand or by someone else,
is reported and left alone.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from modelops import logs
from modelops.api.kinds import kind_of, kind_of_object
from modelops.controllers import metrics
from modelops.kube import KubeApi
from modelops.kube.errors import (
    AlreadyExists,
    Invalid,
    KubeError,
    NotFound,
    PreconditionFailed,
    Unavailable,
)
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
    # What the status patch returned (the object as our write left it), if one was written.
    status_object: Mapping[str, Any] | None = None


@dataclass
class Actuator:
    kube: KubeApi
    kind: str  # of the owner, for metrics and logs

    def act(self, plan: Plan, owner: Mapping[str, Any]) -> Outcome:
        """Applies, deletes, then creates and patches (status first if the plan says so)."""
        out = Outcome()
        for action in plan.applies:
            self._apply(action, owner, out)
        for delete in plan.deletes:
            try:
                self.kube.delete(
                    kind_of(delete.api_version, delete.kind),
                    delete.namespace,
                    delete.name,
                    uid=delete.uid,
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
        # The decision, once per reconcile: INFO when it writes, DEBUG at steady state
        # (every object is looked at again each resync; those lines would be noise).
        log.log(
            logging.INFO if plan.writes or plan.failed else logging.DEBUG,
            "%s %s/%s: %s",
            self.kind,
            meta["namespace"],
            meta["name"],
            plan.decision,
            extra={"decision": plan.decision},
        )
        if plan.status_patch:
            try:
                # In the version the object was read in, not the stored one: an object
                # written in v1alpha1 may hold fields the v1beta1 schema refuses (they
                # travel in an annotation), and a status write is validated against the
                # whole object, so a v1beta1 status write could never say why it is
                # refused (e2e/test_pod_controls.py).
                live = self.kube.patch_status(
                    kind_of_object(owner), meta["namespace"], meta["name"], plan.status_patch
                )
                out.status_object = live
            except NotFound:
                return  # deleted meanwhile: nothing left to tell
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
            self.kube.post_event(owner, type_, reason, message, logs.event_annotations())
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
                    kind_of(patch.api_version, patch.kind), patch.namespace, patch.name, patch.patch
                )
            except KubeError as err:
                out.failures.append(_failure(patch.kind, err))

    def _apply(self, action: Apply, owner: Mapping[str, Any], out: Outcome) -> None:
        try:
            if action.expect_uid is None:
                live = self._create(action, owner, out)
                if live is None:
                    return
            else:
                live = self.kube.apply(
                    action.obj,
                    uid_precondition=action.expect_uid,
                    field_manager=action.field_manager,
                )
        except PreconditionFailed:
            # The object the plan saw was replaced meanwhile; the next reconcile
            # (its watch event is on the way) sees the new one.
            out.failures.append(
                Failure(action.kind, "Conflict", f"{action.kind} {action.name} was replaced")
            )
            return
        except Invalid as err:
            live = self._repair(action, err, out)
            if live is None:
                return
        except KubeError as err:
            out.failures.append(_failure(action.kind, err))
            return
        # The last apply of a child leaves the generation the next plan compares with.
        out.fingerprints[action.key] = fingerprint(live) or ()

    def _create(
        self, action: Apply, owner: Mapping[str, Any], out: Outcome
    ) -> dict[str, Any] | None:
        """A child the plan did not see: create it if the name is free (one request).
        If it is taken, read who holds it: the owner (its index lagged behind) gets
        the apply; anyone else's object is reported and left alone."""
        try:
            return self.kube.apply(action.obj, create_only=True, field_manager=action.field_manager)
        except AlreadyExists:
            pass
        meta = action.obj["metadata"]
        live = self.kube.get(kind_of_object(action.obj), meta.get("namespace"), meta["name"])
        if live is None:  # gone again meanwhile: the next reconcile creates it
            out.failures.append(
                Failure(action.kind, "Conflict", f"{action.kind} {action.name} was deleted")
            )
            return None
        if controller_uid(live) != owner["metadata"].get("uid"):
            out.failures.append(foreign(action.kind, live))
            return None
        return self.kube.apply(
            action.obj, uid_precondition=live["metadata"]["uid"], field_manager=action.field_manager
        )

    def _repair(self, action: Apply, err: KubeError, out: Outcome) -> dict[str, Any] | None:
        """An edit made behind our back can make the apply itself invalid: a Service
        port changed by `kubectl patch` is a new entry of the ports list (keyed by
        port), so merging ours back in duplicates the port's name. Such an object
        is repaired by a merge patch that replaces the spec's lists with ours
        (lists are replaced whole by a merge patch), then applied again. The patched
        fields are then co-owned by an Update entry of our manager, so a field the
        rendering drops later stays on this one object: acceptable for a repair that
        only follows such an outside edit."""
        if action.expect_uid is None or "spec" not in action.obj:
            out.failures.append(_failure(action.kind, err))
            return None
        meta = action.obj["metadata"]
        kind = kind_of_object(action.obj)
        try:
            self.kube.merge_patch(
                kind, meta.get("namespace"), meta["name"], {"spec": action.obj["spec"]}
            )
            return self.kube.apply(
                action.obj, uid_precondition=action.expect_uid, field_manager=action.field_manager
            )
        except KubeError as again:
            out.failures.append(_failure(action.kind, again))
            return None


def _failure(kind: str, err: KubeError) -> Failure:
    return Failure(
        kind,
        err.reason or f"HTTP{err.status}",
        f"{kind}: {err.message}",
        transient=isinstance(err, Unavailable),
    )
