"""The one registry of the Kubernetes kinds modelops reads or writes.

Pure data: `render/` takes its child kinds from here and `kube/` its REST
plurals, so a kind is spelled once. Plurals are never guessed from the kind
name (`HorizontalPodAutoscaler` + "s" happens to work, `Endpoints`,
`NetworkPolicy` or `Ingress` would not): a kind missing here is an error, not
a 404 at run time.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NamedTuple

from . import constants as c


class Kind(NamedTuple):
    """Where a kind lives in the API: its apiVersion, kind, REST plural and scope."""

    api_version: str
    kind: str
    plural: str
    namespaced: bool = True

    @property
    def group(self) -> str:
        """The API group ("" for the core group)."""
        return self.api_version.rpartition("/")[0]

    @property
    def version(self) -> str:
        return self.api_version.rpartition("/")[2]


class UnknownKind(LookupError):
    """A kind modelops does not manage (add it to KINDS; never guess its plural)."""


MODEL_DEPLOYMENT = Kind(c.API_VERSION, c.MD_KIND, c.MD_PLURAL)
TRAINING_JOB = Kind(c.API_VERSION, c.TJ_KIND, c.TJ_PLURAL)
# The same two kinds in their storage version, which the operator lists and
# watches: read in any other version, every object of a list and every watch
# event goes through the conversion webhook, and the API server's cache of that
# version falls behind during a creation storm (measured at 3,000 objects: a
# restart's list refused for almost 5 minutes: "Too large resource version").
# The operator converts in-process (controllers/indexes.py).
MODEL_DEPLOYMENT_STORED = Kind(f"{c.GROUP}/{c.STORAGE_VERSION}", c.MD_KIND, c.MD_PLURAL)
TRAINING_JOB_STORED = Kind(f"{c.GROUP}/{c.STORAGE_VERSION}", c.TJ_KIND, c.TJ_PLURAL)

DEPLOYMENT = Kind("apps/v1", "Deployment", "deployments")
REPLICA_SET = Kind("apps/v1", "ReplicaSet", "replicasets")
SERVICE = Kind("v1", "Service", "services")
CONFIG_MAP = Kind("v1", "ConfigMap", "configmaps")
# Two uses: the conversion webhook's certificates (controllers/conversion.py), and,
# read only and by name, the storage credentials Secret a ModelDeployment names, so
# the operator lists the model store as its pods would (controllers/store_watcher.py).
SECRET = Kind("v1", "Secret", "secrets")
POD = Kind("v1", "Pod", "pods")
EVENT = Kind("v1", "Event", "events")
HPA = Kind("autoscaling/v2", "HorizontalPodAutoscaler", "horizontalpodautoscalers")
PDB = Kind("policy/v1", "PodDisruptionBudget", "poddisruptionbudgets")
JOB = Kind("batch/v1", "Job", "jobs")
# Dynamic Resource Allocation (GA in Kubernetes 1.34): the template is a child
# of a ModelDeployment with spec.resources.gpu.allocation DRA; the claims made
# from it belong to the pods and are only read.
RESOURCE_CLAIM_TEMPLATE = Kind(
    "resource.k8s.io/v1", "ResourceClaimTemplate", "resourceclaimtemplates"
)
RESOURCE_CLAIM = Kind("resource.k8s.io/v1", "ResourceClaim", "resourceclaims")
# The wake activator's own slices (render/wake.py, modelops/wake/).
ENDPOINT_SLICE = Kind("discovery.k8s.io/v1", "EndpointSlice", "endpointslices")
# KEDA's: only served where KEDA is installed (see Kube.api_available).
SCALED_OBJECT = Kind("keda.sh/v1alpha1", "ScaledObject", "scaledobjects")

NAMESPACE = Kind("v1", "Namespace", "namespaces", namespaced=False)
# The leader election record the operator replicas share (controllers/leader.py).
LEASE = Kind("coordination.k8s.io/v1", "Lease", "leases")
CUSTOM_RESOURCE_DEFINITION = Kind(
    "apiextensions.k8s.io/v1",
    "CustomResourceDefinition",
    "customresourcedefinitions",
    namespaced=False,
)

KINDS: tuple[Kind, ...] = (
    MODEL_DEPLOYMENT,
    TRAINING_JOB,
    MODEL_DEPLOYMENT_STORED,
    TRAINING_JOB_STORED,
    DEPLOYMENT,
    REPLICA_SET,
    SERVICE,
    CONFIG_MAP,
    SECRET,
    POD,
    EVENT,
    HPA,
    PDB,
    JOB,
    SCALED_OBJECT,
    ENDPOINT_SLICE,
    RESOURCE_CLAIM_TEMPLATE,
    RESOURCE_CLAIM,
    NAMESPACE,
    CUSTOM_RESOURCE_DEFINITION,
    LEASE,
)

_BY_TYPE = {(k.api_version, k.kind): k for k in KINDS}


def kind_of(api_version: str, kind: str) -> Kind:
    """The registry entry for ``apiVersion``/``kind``; UnknownKind if modelops lacks it."""
    try:
        return _BY_TYPE[(api_version, kind)]
    except KeyError:
        known = ", ".join(sorted(f"{k.api_version}/{k.kind}" for k in KINDS))
        raise UnknownKind(
            f"{api_version}/{kind} is not a kind modelops manages (known: {known})"
        ) from None


def kind_of_object(obj: Mapping[str, Any]) -> Kind:
    """The registry entry for a manifest (a mapping with apiVersion and kind)."""
    if not isinstance(obj, Mapping) or "apiVersion" not in obj or "kind" not in obj:
        raise UnknownKind(f"not a Kubernetes object (no apiVersion/kind): {obj!r:.200}")
    return kind_of(obj["apiVersion"], obj["kind"])
