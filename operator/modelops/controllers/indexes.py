"""What the operator remembers of every watched object, and how it reads it.

Each store (controllers/stores.py, fed by kube/informer.py) keeps a
projection (``modelops.render.projections``), never the body, keyed by the
owner the object belongs to. Only objects the operator owns are listed and
watched (a server-side label selector), so Secrets, ConfigMaps and other
tenants' objects are never listed or cached (KServe OOMs caching every Secret
of a big cluster, kserve#3467).

`WATCHES` says what is watched: one list+watch per resource, fanned out to
the stores that pick their objects by label (pods feed both the
ModelDeployment and the TrainingJob pod stores). `MD_STORES` / `TJ_STORES`
say which stores each reconcile reads: a reconcile waits only for those to be
listed (its barrier), and a resource that is not served (KEDA's ScaledObject
without KEDA) counts as listed, empty.

``Indexes`` reads them: one consistent-enough look at an owner's children,
taken at the start of a reconcile.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from modelops.api import constants as c
from modelops.api.conversion import to_v1alpha1, version_of
from modelops.api.kinds import (
    CONFIG_MAP,
    DEPLOYMENT,
    HPA,
    JOB,
    MODEL_DEPLOYMENT_STORED,
    PDB,
    POD,
    REPLICA_SET,
    RESOURCE_CLAIM,
    RESOURCE_CLAIM_TEMPLATE,
    SCALED_OBJECT,
    SERVICE,
    TRAINING_JOB_STORED,
    Kind,
)
from modelops.controllers.stores import IndexFn, Select, Store
from modelops.render import projections as p
from modelops.render.slots import child_key, extra_child_names

Key = tuple[str, str]
# Label requirements: a value, or None for "present with any value".
MANAGED: dict[str, str | None] = {
    c.LABEL_MANAGED_BY: c.MANAGED_BY,
    c.LABEL_MODEL_DEPLOYMENT: None,
}
OWNED_BY_MD: dict[str, str | None] = {c.LABEL_MODEL_DEPLOYMENT: None}
OWNED_BY_TJ: dict[str, str | None] = {c.LABEL_TRAINING_JOB: None}
# The server-side selector of every child watch: the operator's own objects only.
MANAGED_SELECTOR = f"{c.LABEL_MANAGED_BY}={c.MANAGED_BY}"


def has_labels(required: Mapping[str, str | None]) -> Select:
    def select(labels: Mapping[str, str]) -> bool:
        return all(k in labels and (v is None or labels[k] == v) for k, v in required.items())

    return select


def _md_key(namespace: str, labels: Mapping[str, str]) -> Key:
    return (namespace, labels.get(c.LABEL_MODEL_DEPLOYMENT, ""))


# -- index functions: object -> {key: projection} ---------------------------------------


def as_read(body: Mapping[str, Any]) -> dict[str, Any]:
    """A ModelDeployment or TrainingJob as the reconciles read it: projected, in v1alpha1.

    The objects are watched in their storage version (api/kinds.py) and
    converted here, once per event, by the functions the conversion webhook
    serves, so the store holds exactly what a v1alpha1 watch would deliver.
    """
    projected = p.project_custom_object(body)
    return to_v1alpha1(projected) if version_of(projected) == c.STORAGE_VERSION else projected


def md_index(namespace: str, name: str, body: Mapping[str, Any], **_: Any) -> dict:
    return {(namespace, name): as_read(body)}


def _child_index(name: str, project: Callable[[Mapping[str, Any]], dict]) -> Callable[..., dict]:
    """An index of one ModelDeployment child kind: (namespace, owner name) -> projection."""

    def index(namespace: str, labels: Mapping[str, str], body: Mapping[str, Any], **_: Any) -> dict:
        return {_md_key(namespace, labels): project(body)}

    index.__name__ = name
    return index


md_deployments = _child_index("md_deployments", p.project_deployment)
md_services = _child_index("md_services", p.project_owned)
md_configmaps = _child_index("md_configmaps", p.project_owned)
md_hpas = _child_index("md_hpas", p.project_autoscaler)
md_pdbs = _child_index("md_pdbs", p.project_owned)
md_claim_templates = _child_index("md_claim_templates", p.project_claim_template)
md_scaled_objects = _child_index("md_scaled_objects", p.project_autoscaler)
# The claims made for the pods from the GPU claim template carry the template's
# labels (render/dra.py), so the same server-side selector as the pods finds
# them; their owner is the pod, so they are read, never written.
md_claims = _child_index("md_claims", p.project_claim)
md_pods = _child_index("md_pods", p.project_pod)


# The serving Deployments' ReplicaSets carry the pod template's labels, so the same
# server-side selector as the pods finds them; read only, for the owner chain that
# decides whose sidecars may give evidence (render/evidence.py).
md_replicasets = _child_index("md_replicasets", p.project_replica_set)


def tj_index(namespace: str, name: str, body: Mapping[str, Any], **_: Any) -> dict:
    return {(namespace, name): as_read(body)}


def tj_by_md(namespace: str, name: str, spec: Mapping[str, Any], **_: Any) -> dict | None:
    """TrainingJobs by the ModelDeployment they feed: (namespace, md name) -> tj name.

    A ModelDeployment reconcile reads its trainings through this, instead of
    scanning every TrainingJob of the cluster. spec.modelDeploymentRef is
    spelled the same in both versions, so the stored form is read as it is."""
    ref = (spec.get("modelDeploymentRef") or {}).get("name")
    return {(namespace, ref): name} if ref else None


def _tj_child_index(name: str, project: Callable[[Mapping[str, Any]], dict]) -> Callable[..., dict]:
    def index(namespace: str, labels: Mapping[str, str], body: Mapping[str, Any], **_: Any) -> dict:
        return {(namespace, labels[c.LABEL_TRAINING_JOB]): project(body)}

    index.__name__ = name
    return index


tj_jobs = _tj_child_index("tj_jobs", p.project_job)
tj_pods = _tj_child_index("tj_pods", p.project_pod)
tj_claim_templates = _tj_child_index("tj_claim_templates", p.project_claim_template)
tj_services = _tj_child_index("tj_services", p.project_owned)


def indexer(fn: Callable[..., dict | None]) -> IndexFn:
    """An index function (keyword arguments, a one-entry dict) as a store's IndexFn."""

    def index(body: Mapping[str, Any]) -> tuple[Key, Any] | None:
        meta = body.get("metadata") or {}
        found = fn(
            namespace=meta.get("namespace") or "",
            name=meta.get("name") or "",
            labels=meta.get("labels") or {},
            spec=body.get("spec") or {},
            body=body,
        )
        return next(iter(found.items()), None) if found else None

    return index


# -- what is watched, and which store each watch feeds ------------------------------------


@dataclass(frozen=True)
class StoreSpec:
    name: str
    index: Callable[..., dict | None]
    labels: Mapping[str, str | None]

    def build(self) -> Store:
        return Store(self.name, indexer(self.index), has_labels(self.labels))


@dataclass(frozen=True)
class Watch:
    kind: Kind
    label_selector: str
    stores: tuple[StoreSpec, ...]
    # Served only where an optional component is installed (its CRD may come
    # and go while the operator runs): watched only while its CRD exists.
    optional_crd: str | None = None


WATCHES: tuple[Watch, ...] = (
    Watch(MODEL_DEPLOYMENT_STORED, "", (StoreSpec("md_index", md_index, {}),)),
    Watch(
        TRAINING_JOB_STORED,
        "",
        (StoreSpec("tj_index", tj_index, {}), StoreSpec("tj_by_md", tj_by_md, {})),
    ),
    Watch(DEPLOYMENT, MANAGED_SELECTOR, (StoreSpec("md_deployments", md_deployments, MANAGED),)),
    Watch(
        SERVICE,
        MANAGED_SELECTOR,
        (
            StoreSpec("md_services", md_services, MANAGED),
            StoreSpec("tj_services", tj_services, OWNED_BY_TJ),
        ),
    ),
    Watch(CONFIG_MAP, MANAGED_SELECTOR, (StoreSpec("md_configmaps", md_configmaps, MANAGED),)),
    Watch(HPA, MANAGED_SELECTOR, (StoreSpec("md_hpas", md_hpas, MANAGED),)),
    Watch(PDB, MANAGED_SELECTOR, (StoreSpec("md_pdbs", md_pdbs, MANAGED),)),
    Watch(
        RESOURCE_CLAIM_TEMPLATE,
        MANAGED_SELECTOR,
        (
            StoreSpec("md_claim_templates", md_claim_templates, MANAGED),
            StoreSpec("tj_claim_templates", tj_claim_templates, OWNED_BY_TJ),
        ),
    ),
    Watch(RESOURCE_CLAIM, MANAGED_SELECTOR, (StoreSpec("md_claims", md_claims, OWNED_BY_MD),)),
    Watch(
        POD,
        MANAGED_SELECTOR,
        (
            StoreSpec("md_pods", md_pods, OWNED_BY_MD),
            StoreSpec("tj_pods", tj_pods, OWNED_BY_TJ),
        ),
    ),
    Watch(
        REPLICA_SET,
        MANAGED_SELECTOR,
        (StoreSpec("md_replicasets", md_replicasets, OWNED_BY_MD),),
    ),
    Watch(JOB, MANAGED_SELECTOR, (StoreSpec("tj_jobs", tj_jobs, OWNED_BY_TJ),)),
    Watch(
        SCALED_OBJECT,
        MANAGED_SELECTOR,
        (StoreSpec("md_scaled_objects", md_scaled_objects, MANAGED),),
        optional_crd=f"{SCALED_OBJECT.plural}.{SCALED_OBJECT.group}",
    ),
)

MD_STORES = frozenset(
    {
        "md_index",
        "md_deployments",
        "md_services",
        "md_configmaps",
        "md_hpas",
        "md_pdbs",
        "md_claim_templates",
        "md_scaled_objects",
        "md_claims",
        "md_pods",
        "md_replicasets",
        "tj_index",  # its trainings (trainings_for)
        "tj_by_md",
    }
)
TJ_STORES = frozenset({"tj_index", "tj_jobs", "tj_pods", "tj_services", "tj_claim_templates"})
INDEX_NAMES = tuple(spec.name for watch in WATCHES for spec in watch.stores)
MD_CHILD_INDEXES = {
    DEPLOYMENT.kind: "md_deployments",
    SERVICE.kind: "md_services",
    CONFIG_MAP.kind: "md_configmaps",
    HPA.kind: "md_hpas",
    PDB.kind: "md_pdbs",
    RESOURCE_CLAIM_TEMPLATE.kind: "md_claim_templates",
    SCALED_OBJECT.kind: "md_scaled_objects",
}


@dataclass
class Indexes:
    """Read access to the stores by name (anything with ``get(key)`` -> list and
    ``keys()``: the informer stores, or plain dicts in tests)."""

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
