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

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import kopf

from modelops.api import constants as c
from modelops.render import projections as p
from modelops.render.children import DEPLOYMENT, HPA, PDB, SCALED_OBJECT, SERVICE

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


@kopf.index(*_group_version(DEPLOYMENT.api_version), DEPLOYMENT.plural, labels=MANAGED)
def md_deployments(namespace: str, labels: Mapping[str, str], body: kopf.Body, **_: Any) -> dict:
    return {_md_key(namespace, labels): p.project_deployment(body)}


@kopf.index(*_group_version(SERVICE.api_version), SERVICE.plural, labels=MANAGED)
def md_services(namespace: str, labels: Mapping[str, str], body: kopf.Body, **_: Any) -> dict:
    return {_md_key(namespace, labels): p.project_owned(body)}


@kopf.index(*_group_version(HPA.api_version), HPA.plural, labels=MANAGED)
def md_hpas(namespace: str, labels: Mapping[str, str], body: kopf.Body, **_: Any) -> dict:
    return {_md_key(namespace, labels): p.project_autoscaler(body)}


@kopf.index(*_group_version(SCALED_OBJECT.api_version), SCALED_OBJECT.plural, labels=MANAGED)
def md_scaledobjects(namespace: str, labels: Mapping[str, str], body: kopf.Body, **_: Any) -> dict:
    return {_md_key(namespace, labels): p.project_autoscaler(body)}


@kopf.index(*_group_version(PDB.api_version), PDB.plural, labels=MANAGED)
def md_pdbs(namespace: str, labels: Mapping[str, str], body: kopf.Body, **_: Any) -> dict:
    return {_md_key(namespace, labels): p.project_owned(body)}


@kopf.index("", "v1", "pods", labels=OWNED_BY_MD)
def md_pods(namespace: str, labels: Mapping[str, str], body: kopf.Body, **_: Any) -> dict:
    return {_md_key(namespace, labels): p.project_pod(body)}


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


@kopf.index("", "v1", "services", labels=OWNED_BY_TJ)
def tj_services(namespace: str, labels: Mapping[str, str], body: kopf.Body, **_: Any) -> dict:
    return {(namespace, labels[c.LABEL_TRAINING_JOB]): p.project_owned(body)}


INDEX_NAMES = (
    "md_index",
    "md_deployments",
    "md_services",
    "md_hpas",
    "md_scaledobjects",
    "md_pdbs",
    "md_pods",
    "tj_index",
    "tj_by_md",
    "tj_jobs",
    "tj_pods",
    "tj_services",
)
MD_CHILD_INDEXES = {
    DEPLOYMENT.kind: "md_deployments",
    SERVICE.kind: "md_services",
    HPA.kind: "md_hpas",
    SCALED_OBJECT.kind: "md_scaledobjects",
    PDB.kind: "md_pdbs",
}


@dataclass
class Indexes:
    """Read access to kopf's indexes (live views handed to the start-up handler)."""

    views: Mapping[str, Any]

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
        """kind -> the child named after the ModelDeployment (or None).

        Objects carrying the label but named otherwise (someone copied the
        labels) are not children; they are ignored here."""
        out: dict[str, Mapping[str, Any] | None] = {}
        for kind, index in MD_CHILD_INDEXES.items():
            out[kind] = next(
                (x for x in self.all(index, key) if x["metadata"].get("name") == key[1]), None
            )
        return out

    def md_pods(self, key: Key) -> list[Mapping[str, Any]]:
        return self.all("md_pods", key)

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

    def tj_service(self, key: Key, name: str) -> Mapping[str, Any] | None:
        return next(
            (x for x in self.all("tj_services", key) if x["metadata"]["name"] == name), None
        )
