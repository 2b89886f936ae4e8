"""Two Deployments per ModelDeployment ("slots"), and what each child is called.

A gated rollout (spec.rollout.strategy Shadow or Canary) runs the candidate
version beside the stable one. The two run in *slots* named by letter, not
by role: slot "a" is the Deployment named after the ModelDeployment (the
only one a ModelDeployment had before gated rollouts), slot "b" is
`<name>-b`. Promotion flips which slot is stable in status, so the
candidate's pods become the stable pods without a restart; the next
candidate then goes into the other slot.

Every child is known by a *key*: its kind for the child named after the
ModelDeployment (Deployment of slot a, the Service, the HPA, ...), and
`Kind/name` for the others (`Deployment/<name>-b`, `Service/<name>-candidate`,
`ConfigMap/<name>-traffic`). The planner, ownership checks and the
actuator all speak in keys, so a ModelDeployment may own two objects of
one kind.

Pure: names and small values only.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from modelops.api import constants as c

from .keys import child_key

SLOTS = ("a", "b")


def other(slot: str) -> str:
    return "b" if slot == "a" else "a"


def deployment_name(md_name: str, slot: str) -> str:
    """Slot a keeps the ModelDeployment's own name (Deployments from before slots)."""
    return md_name if slot == "a" else f"{md_name}-{slot}"


def candidate_service_name(md_name: str) -> str:
    return f"{md_name}-candidate"


def traffic_config_name(md_name: str) -> str:
    return f"{md_name}-traffic"


def extra_child_names(md_name: str) -> tuple[str, ...]:
    """Names of children not named after the ModelDeployment itself."""
    return (
        deployment_name(md_name, "b"),
        candidate_service_name(md_name),
        traffic_config_name(md_name),
    )


def deployment_key(md_name: str, slot: str) -> str:
    return child_key("Deployment", deployment_name(md_name, slot), md_name)


def slot_of_pod(pod: Mapping[str, Any]) -> str:
    """The slot a pod belongs to (pods from before slots carry no label: slot a)."""
    labels = (pod.get("metadata") or {}).get("labels") or {}
    return str(labels.get(c.LABEL_SLOT) or "a")


@dataclass(frozen=True)
class Layout:
    """What runs where, decided by the planner for one reconcile.

    stable_version: the version the stable slot renders; stable_replicas None
    keeps the spec's count (or leaves it to the autoscaler); a number while a
    promotion retires old pods. candidate_version None: no candidate slot (its
    Deployment and Service are deleted). service_slot: the main Service selects
    only this slot's pods (while a candidate must not get live traffic from
    the Service); None selects every pod of the ModelDeployment. autoscaler:
    render the HPA / ScaledObject (off while a promotion sets replicas itself).
    traffic: the sidecars' traffic settings (traffic.json).
    """

    stable_version: str
    stable_slot: str = "a"
    stable_replicas: int | None = None
    candidate_version: str | None = None
    candidate_replicas: int = 0
    service_slot: str | None = None
    autoscaler: bool = True
    traffic: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))

    @property
    def candidate_slot(self) -> str:
        return other(self.stable_slot)

    def cache_key(self) -> tuple[Any, ...]:
        return (
            self.stable_version,
            self.stable_slot,
            self.stable_replicas,
            self.candidate_version,
            self.candidate_replicas,
            self.service_slot,
            self.autoscaler,
            tuple(sorted((k, repr(v)) for k, v in self.traffic.items())),
        )
