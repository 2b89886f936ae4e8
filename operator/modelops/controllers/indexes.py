"""kopf indexes: what the operator remembers of every watched object.

Each index keeps a projection (``modelops.render.projections``), never the
body, keyed by the owner the object belongs to. Only objects the operator
owns are watched (label-filtered), so Secrets, ConfigMaps and other tenants'
objects are never listed or cached (KServe OOMs caching every Secret of a big
cluster, kserve#3467). The ScaledObject index is declared even without KEDA:
kopf starts its watch when the CRD appears.

``Indexes`` reads them: one consistent-enough look at an owner's children,
taken at the start of a reconcile.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import kopf

from modelops.api import constants as c
from modelops.api.kinds import RESOURCE_CLAIM, Kind
from modelops.render import projections as p
from modelops.render.children import (
    CONFIG_MAP,
    DEPLOYMENT,
    HPA,
    PDB,
    RESOURCE_CLAIM_TEMPLATE,
    SCALED_OBJECT,
    SERVICE,
)
from modelops.render.slots import child_key, extra_child_names

Key = tuple[str, str]
MD = (c.GROUP, c.VERSION, c.MD_PLURAL)
TJ = (c.GROUP, c.VERSION, c.TJ_PLURAL)
MANAGED = {c.LABEL_MANAGED_BY: c.MANAGED_BY, c.LABEL_MODEL_DEPLOYMENT: kopf.PRESENT}
OWNED_BY_MD = {c.LABEL_MODEL_DEPLOYMENT: kopf.PRESENT}
OWNED_BY_TJ = {c.LABEL_TRAINING_JOB: kopf.PRESENT}


def _group_version(api_version: str) -> tuple[str, str]:
    group, _, version = api_version.rpartition("/")
    return group, version


def _md_key(namespace: str, labels: Mapping[str, str]) -> Key:
    return (namespace, labels.get(c.LABEL_MODEL_DEPLOYMENT, ""))


# -- ModelDeployment and its children ------------------------------------------------


@kopf.index(*MD)
def md_index(namespace: str, name: str, body: kopf.Body, **_: Any) -> dict:
    return {(namespace, name): p.project_custom_object(body)}


def _child_index(
    name: str, kind: Kind, project: Callable[[Mapping[str, Any]], dict]
) -> Callable[..., dict]:
    """An index of one child kind: (namespace, owner name) -> projection."""

    def index(namespace: str, labels: Mapping[str, str], body: kopf.Body, **_: Any) -> dict:
        return {_md_key(namespace, labels): project(body)}

    index.__name__ = name
    group, version = _group_version(kind.api_version)
    return kopf.index(group, version, kind.plural, labels=MANAGED, id=name)(index)


md_deployments = _child_index("md_deployments", DEPLOYMENT, p.project_deployment)
md_services = _child_index("md_services", SERVICE, p.project_owned)
md_configmaps = _child_index("md_configmaps", CONFIG_MAP, p.project_owned)
md_hpas = _child_index("md_hpas", HPA, p.project_autoscaler)
md_pdbs = _child_index("md_pdbs", PDB, p.project_owned)
md_claim_templates = _child_index(
    "md_claim_templates", RESOURCE_CLAIM_TEMPLATE, p.project_claim_template
)


# The claims made for the pods from the GPU claim template carry the template's
# labels (render/dra.py), so the same server-side selector as the pods finds
# them; their owner is the pod, so they are read, never written.
@kopf.index(*_group_version(RESOURCE_CLAIM.api_version), RESOURCE_CLAIM.plural, labels=OWNED_BY_MD)
def md_claims(namespace: str, labels: Mapping[str, str], body: kopf.Body, **_: Any) -> dict:
    return {_md_key(namespace, labels): p.project_claim(body)}


@kopf.index("", "v1", "pods", labels=OWNED_BY_MD)
def md_pods(namespace: str, labels: Mapping[str, str], body: kopf.Body, **_: Any) -> dict:
    return {_md_key(namespace, labels): p.project_pod(body)}


# The serving Deployments' ReplicaSets carry the pod template's labels, so the same
# server-side selector as the pods finds them; read only, for the owner chain that
# decides whose sidecars may give evidence (render/evidence.py).
@kopf.index("apps", "v1", "replicasets", labels=OWNED_BY_MD)
def md_replicasets(namespace: str, labels: Mapping[str, str], body: kopf.Body, **_: Any) -> dict:
    return {_md_key(namespace, labels): p.project_replica_set(body)}


# -- TrainingJob and its children ------------------------------------------------------


@kopf.index(*TJ)
def tj_index(namespace: str, name: str, body: kopf.Body, **_: Any) -> dict:
    return {(namespace, name): p.project_custom_object(body)}


@kopf.index(*TJ)
def tj_by_md(namespace: str, name: str, spec: kopf.Spec, **_: Any) -> dict | None:
    """TrainingJobs by the ModelDeployment they feed: (namespace, md name) -> tj name.

    A ModelDeployment reconcile reads its trainings through this, instead of
    scanning every TrainingJob of the cluster."""
    ref = (spec.get("modelDeploymentRef") or {}).get("name")
    return {(namespace, ref): name} if ref else None


@kopf.index("batch", "v1", "jobs", labels=OWNED_BY_TJ)
def tj_jobs(namespace: str, labels: Mapping[str, str], body: kopf.Body, **_: Any) -> dict:
    return {(namespace, labels[c.LABEL_TRAINING_JOB]): p.project_job(body)}


@kopf.index("", "v1", "pods", labels=OWNED_BY_TJ)
def tj_pods(namespace: str, labels: Mapping[str, str], body: kopf.Body, **_: Any) -> dict:
    return {(namespace, labels[c.LABEL_TRAINING_JOB]): p.project_pod(body)}


@kopf.index(
    *_group_version(RESOURCE_CLAIM_TEMPLATE.api_version),
    RESOURCE_CLAIM_TEMPLATE.plural,
    labels=OWNED_BY_TJ,
)
def tj_claim_templates(
    namespace: str, labels: Mapping[str, str], body: kopf.Body, **_: Any
) -> dict:
    return {(namespace, labels[c.LABEL_TRAINING_JOB]): p.project_claim_template(body)}


@kopf.index("", "v1", "services", labels=OWNED_BY_TJ)
def tj_services(namespace: str, labels: Mapping[str, str], body: kopf.Body, **_: Any) -> dict:
    return {(namespace, labels[c.LABEL_TRAINING_JOB]): p.project_owned(body)}


INDEX_NAMES = (
    "md_index",
    "md_deployments",
    "md_services",
    "md_configmaps",
    "md_hpas",
    "md_pdbs",
    "md_claim_templates",
    "md_claims",
    "md_pods",
    "md_replicasets",
    "tj_index",
    "tj_by_md",
    "tj_jobs",
    "tj_pods",
    "tj_services",
    "tj_claim_templates",
)
MD_CHILD_INDEXES = {
    DEPLOYMENT.kind: "md_deployments",
    SERVICE.kind: "md_services",
    CONFIG_MAP.kind: "md_configmaps",
    HPA.kind: "md_hpas",
    PDB.kind: "md_pdbs",
    RESOURCE_CLAIM_TEMPLATE.kind: "md_claim_templates",
}


class OwnedStore:
    """Projections of one child kind by owner, kept by an event handler (not kopf)."""

    def __init__(self) -> None:
        self._by_owner: dict[Key, dict[str, dict[str, Any]]] = {}

    def put(self, owner: Key, name: str, projection: dict[str, Any]) -> None:
        self._by_owner.setdefault(owner, {})[name] = projection

    def drop(self, owner: Key, name: str) -> None:
        children = self._by_owner.get(owner)
        if children is not None:
            children.pop(name, None)
            if not children:
                del self._by_owner[owner]

    def clear(self) -> None:
        self._by_owner.clear()

    def get(self, owner: Key, name: str) -> dict[str, Any] | None:
        return self._by_owner.get(owner, {}).get(name)


@dataclass
class Indexes:
    """Read access to kopf's indexes (live views handed to the start-up handler)
    and to the operator's own store of ScaledObjects."""

    views: Mapping[str, Any]
    scaled_objects: OwnedStore = field(default_factory=OwnedStore)

    def one(self, index: str, key: Key) -> Mapping[str, Any] | None:
        store = self.views.get(index, {}).get(key)
        return next(iter(store), None) if store else None

    def all(self, index: str, key: Key) -> list[Mapping[str, Any]]:
        store = self.views.get(index, {}).get(key)
        return list(store) if store else []

    def keys(self, index: str) -> list[Key]:
        return list(self.views.get(index, {}).keys())

    # -- ModelDeployment --

    def model_deployment(self, key: Key) -> Mapping[str, Any] | None:
        return self.one("md_index", key)

    def md_children(self, key: Key) -> dict[str, Mapping[str, Any] | None]:
        """child key (render/slots.py) -> the live child (or None): the children named
        after the ModelDeployment by kind, the others (slot b's Deployment, the candidate
        Service, the traffic ConfigMap) by Kind/name.

        Objects carrying the label but named otherwise (someone copied the
        labels) are not children; they are ignored here."""
        names = {key[1], *extra_child_names(key[1])}
        out: dict[str, Mapping[str, Any] | None] = {}
        for kind, index in MD_CHILD_INDEXES.items():
            out[kind] = None
            for child in self.all(index, key):
                name = child["metadata"].get("name")
                if name in names:
                    out[child_key(kind, name, key[1])] = child
        out[SCALED_OBJECT.kind] = self.scaled_objects.get(key, key[1])
        return out

    def md_pods(self, key: Key) -> list[Mapping[str, Any]]:
        return self.all("md_pods", key)

    def md_replica_sets(self, key: Key) -> list[Mapping[str, Any]]:
        """The ReplicaSets carrying the ModelDeployment's label (owner checks)."""
        return self.all("md_replicasets", key)

    def md_claims(self, key: Key) -> list[Mapping[str, Any]]:
        """ResourceClaims made for the ModelDeployment's pods (DRA)."""
        return self.all("md_claims", key)

    def trainings_for(self, key: Key) -> list[Mapping[str, Any]]:
        """TrainingJobs whose modelDeploymentRef names this ModelDeployment."""
        out = []
        for name in self.all("tj_by_md", key):
            body = self.one("tj_index", (key[0], name))
            if body is not None:
                out.append(body)
        return out

    # -- TrainingJob --

    def training_job(self, key: Key) -> Mapping[str, Any] | None:
        return self.one("tj_index", key)

    def tj_jobs(self, key: Key) -> list[Mapping[str, Any]]:
        return self.all("tj_jobs", key)

    def tj_pods(self, key: Key) -> list[Mapping[str, Any]]:
        return self.all("tj_pods", key)

    def tj_claim_template(self, key: Key) -> Mapping[str, Any] | None:
        """The TrainingJob's ResourceClaimTemplate (named after it), or None."""
        return next(
            (x for x in self.all("tj_claim_templates", key) if x["metadata"]["name"] == key[1]),
            None,
        )

    def tj_service(self, key: Key, name: str) -> Mapping[str, Any] | None:
        return next(
            (x for x in self.all("tj_services", key) if x["metadata"]["name"] == name), None
        )
