"""Leader election decisions on a coordination.k8s.io/v1 Lease: pure, no I/O.

The I/O loop is controllers/leader.py; this module says, from the Lease as
last read and the local clock, what to write and whether this replica may
write to the cluster at all. The rules are client-go's leaderelection (which
controller-runtime, Kueue, the Kubeflow trainer and KServe use), with its
default durations:

- lease duration 15 s: how long a candidate waits, after it last saw the
  record change, before it takes the lease over;
- renew deadline 10 s: how long the leader keeps acting without a successful
  renewal; past it, it stops writing (the fence) and gives up;
- retry period 2 s: how often the leader renews and a candidate looks.

Clock skew: a candidate never compares the Lease's renewTime (written by the
holder's wall clock) with its own clock. It notes, on its own monotonic
clock, when it saw the record change (`observe`); the lease is expired when
that record has not changed for leaseDurationSeconds. The leader fences on
its own monotonic clock too, from the moment it *sent* its last successful
renewal: any candidate saw that renewal no earlier, so the candidate's
takeover (>= 15 s later) comes after the leader's fence (10 s) by at least the
5 s margin, whatever the wall clocks say.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

LEASE_API_VERSION = "coordination.k8s.io/v1"


@dataclass(frozen=True)
class LeaseConfig:
    lease_duration_s: float = 15.0
    renew_deadline_s: float = 10.0
    retry_period_s: float = 2.0

    def __post_init__(self) -> None:
        # client-go's own checks (JitterFactor 1.2 on the retry period).
        if not self.lease_duration_s > self.renew_deadline_s:
            raise ValueError("the lease duration must be longer than the renew deadline")
        if not self.renew_deadline_s > 1.2 * self.retry_period_s:
            raise ValueError("the renew deadline must be longer than 1.2 x the retry period")
        if self.retry_period_s <= 0:
            raise ValueError("the retry period must be positive")


@dataclass(frozen=True)
class Record:
    """What a Lease says (its spec) and which version of it was read."""

    holder: str
    lease_duration_s: float
    acquire_time: str | None
    renew_time: str | None
    transitions: int
    resource_version: str | None

    @staticmethod
    def of(lease: Mapping[str, Any]) -> Record:
        spec = lease.get("spec") or {}
        return Record(
            holder=str(spec.get("holderIdentity") or ""),
            lease_duration_s=float(spec.get("leaseDurationSeconds") or 0),
            acquire_time=spec.get("acquireTime"),
            renew_time=spec.get("renewTime"),
            transitions=int(spec.get("leaseTransitions") or 0),
            resource_version=(lease.get("metadata") or {}).get("resourceVersion"),
        )

    def same_as(self, other: Record) -> bool:
        """Nobody wrote it in between: the same spec at the same resourceVersion
        (client-go compares the spec only; any write, even one that leaves the spec
        as it was, shows the writer alive, so the version counts too)."""
        return self == other


@dataclass(frozen=True)
class Observation:
    """The Lease as last read (None: there is none) and, on this replica's monotonic
    clock, when it was first seen as it is now."""

    record: Record | None
    since: float


def observe(previous: Observation | None, record: Record | None, now: float) -> Observation:
    if previous is not None and _unchanged(previous.record, record):
        return previous  # keep the first sighting
    return Observation(record, now)


def _unchanged(a: Record | None, b: Record | None) -> bool:
    if a is None or b is None:
        return a is b
    return a.same_as(b)


@dataclass(frozen=True)
class Decision:
    """What to do now: "create" the Lease, "update" it (renew or take over), or "wait".
    ``spec`` is the Lease spec to write; ``takeover`` says the holder changes."""

    action: str
    spec: dict[str, Any] | None = None
    takeover: bool = False


def expired(obs: Observation, now: float, config: LeaseConfig) -> bool:
    """Nobody holds it, or its record has not changed for the holder's lease duration."""
    record = obs.record
    if record is None or not record.holder:
        return True
    duration = record.lease_duration_s or config.lease_duration_s
    return now >= obs.since + duration


def decide(
    obs: Observation, identity: str, now: float, wall: datetime, config: LeaseConfig
) -> Decision:
    """The next step of ``identity`` given the Lease as observed (``now``: monotonic;
    ``wall``: the time written into the Lease, informative only)."""
    stamp = micro_time(wall)
    duration = round(config.lease_duration_s)
    record = obs.record
    if record is None:
        return Decision(
            "create",
            {
                "holderIdentity": identity,
                "leaseDurationSeconds": duration,
                "acquireTime": stamp,
                "renewTime": stamp,
                "leaseTransitions": 0,
            },
            takeover=True,
        )
    if record.holder == identity:
        return Decision("update", _spec(record, identity, duration, record.acquire_time, stamp))
    if expired(obs, now, config):
        transitions = record.transitions + (1 if record.holder else 0)
        spec = _spec(record, identity, duration, stamp, stamp)
        spec["leaseTransitions"] = transitions
        return Decision("update", spec, takeover=True)
    return Decision("wait")


def released(record: Record, identity: str, wall: datetime) -> dict[str, Any] | None:
    """The spec that hands the lease back on a clean shutdown (the standby takes
    it at its next look instead of waiting out the lease); None if not ours."""
    if record.holder != identity:
        return None
    return {
        "holderIdentity": "",
        "leaseDurationSeconds": 1,
        "acquireTime": record.acquire_time,
        "renewTime": micro_time(wall),
        "leaseTransitions": record.transitions,
    }


def may_write(renewed_at: float | None, now: float, config: LeaseConfig) -> bool:
    """The fence: this replica renewed (the renewal *sent* at ``renewed_at``, on the
    monotonic clock) less than the renew deadline ago."""
    return renewed_at is not None and now < renewed_at + config.renew_deadline_s


def lease_object(
    namespace: str,
    name: str,
    spec: Mapping[str, Any],
    resource_version: str | None = None,
    owners: Sequence[Mapping[str, Any]] = (),
) -> dict[str, Any]:
    meta: dict[str, Any] = {
        "name": name,
        "namespace": namespace,
        "labels": {"app.kubernetes.io/part-of": "modelops"},
    }
    if resource_version:
        meta["resourceVersion"] = resource_version
    if owners:
        meta["ownerReferences"] = [dict(owner) for owner in owners]
    return {"apiVersion": LEASE_API_VERSION, "kind": "Lease", "metadata": meta, "spec": dict(spec)}


def lease_owners(
    own: Mapping[str, Any] | None, lease: Mapping[str, Any] | None
) -> list[dict[str, Any]]:
    """The ownerReferences to write: this replica's owner when it has one, else
    those the Lease already carries (a PUT without them would drop them)."""
    if own is not None:
        return [dict(own)]
    existing = ((lease or {}).get("metadata") or {}).get("ownerReferences") or []
    return [dict(owner) for owner in existing if isinstance(owner, Mapping)]


def service_account_owner(token: str, lease_namespace: str) -> dict[str, Any] | None:
    """The ownerReference that ties the Lease to the replicas' ServiceAccount, read
    from the pod's own ServiceAccount token (a JWT; its claims name the account
    and its uid); None when the token says nothing usable or the account lives in
    another namespace (an owner must share its dependent's namespace).

    Why an owner: uninstalling the chart deletes the RBAC and the ServiceAccount
    right after the Deployment, before the pods get their SIGTERM, so the
    leader's release on shutdown is refused (401/403) and a reinstall would wait
    out the lease. With the ServiceAccount as owner the garbage collector deletes
    the Lease with the installation. The signature is not checked: the token is
    this pod's own, and a wrong owner can only get the Lease deleted early (it is
    then created again)."""
    parts = token.strip().split(".")
    if len(parts) != 3:
        return None
    try:
        payload = base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4))
        claims = json.loads(payload)
    except (binascii.Error, ValueError):
        return None
    if not isinstance(claims, dict):
        return None
    bound = claims.get("kubernetes.io")
    if isinstance(bound, dict) and isinstance(bound.get("serviceaccount"), dict):
        # A bound (projected) token, what pods get since Kubernetes 1.22.
        namespace = bound.get("namespace")
        name, uid = bound["serviceaccount"].get("name"), bound["serviceaccount"].get("uid")
    else:
        # A legacy Secret-based token.
        namespace = claims.get("kubernetes.io/serviceaccount/namespace")
        name = claims.get("kubernetes.io/serviceaccount/service-account.name")
        uid = claims.get("kubernetes.io/serviceaccount/service-account.uid")
    if not all(isinstance(v, str) and v for v in (namespace, name, uid)):
        return None
    if namespace != lease_namespace:
        return None
    # No blockOwnerDeletion: it would need update on serviceaccounts/finalizers.
    return {"apiVersion": "v1", "kind": "ServiceAccount", "name": name, "uid": uid}


def micro_time(wall: datetime) -> str:
    """metav1.MicroTime: RFC 3339 with microseconds, UTC."""
    return wall.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _spec(
    record: Record, identity: str, duration: int, acquired: str | None, renewed: str
) -> dict[str, Any]:
    return {
        "holderIdentity": identity,
        "leaseDurationSeconds": duration,
        "acquireTime": acquired or renewed,
        "renewTime": renewed,
        "leaseTransitions": record.transitions,
    }
