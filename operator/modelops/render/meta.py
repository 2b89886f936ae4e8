"""Names, labels and owner references shared by every child of a ModelDeployment."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from modelops.api import constants as c
from modelops.api.intake import read_model_deployment
from modelops.api.modeldeployment import ModelDeployment


def as_md(md: ModelDeployment | Mapping[str, Any]) -> ModelDeployment:
    """Accept either a parsed ModelDeployment or the raw object (e.g. kopf's body), read
    through the one intake (v1alpha1 or v1beta1, pod controls attached)."""
    return md if isinstance(md, ModelDeployment) else read_model_deployment(md)


def selector_labels(md: ModelDeployment) -> dict[str, str]:
    """The pod selector. Deployment selectors are immutable, so this must never change;
    one label unique to modelops keeps foreign pods out of the Service."""
    return {c.LABEL_MODEL_DEPLOYMENT: md.name}


def selector_string(md: ModelDeployment) -> str:
    """The selector as status.selector carries it for the scale subresource."""
    return ",".join(f"{k}={v}" for k, v in selector_labels(md).items())


def labels(md: ModelDeployment) -> dict[str, str]:
    """Labels of every child and of the pods.

    The ModelDeployment's own labels are not copied: GitOps tools track their
    objects by label or annotation, and children carrying the parent's
    tracking label would show up as extraneous resources of the application.
    """
    return {
        c.LABEL_NAME: "triton",
        c.LABEL_INSTANCE: md.name,
        c.LABEL_MANAGED_BY: c.MANAGED_BY,
        c.LABEL_MODEL_DEPLOYMENT: md.name,
    }


def controller_reference(kind: str, name: str, uid: str) -> dict[str, Any]:
    """Controller reference to a modelops object: deleting it garbage-collects the child."""
    return {
        "apiVersion": c.API_VERSION,
        "kind": kind,
        "name": name,
        "uid": uid,
        "controller": True,
        "blockOwnerDeletion": True,
    }


def owner_reference(md: ModelDeployment) -> dict[str, Any]:
    """Controller reference: deleting the ModelDeployment garbage-collects the child."""
    return controller_reference(c.MD_KIND, md.name, md.metadata.uid)


def child_metadata(md: ModelDeployment, name: str | None = None) -> dict[str, Any]:
    """metadata of a namespaced child named after the ModelDeployment."""
    return {
        "name": name or md.name,
        "namespace": md.namespace,
        "labels": labels(md),
        "ownerReferences": [owner_reference(md)],
    }


def service_host(md: ModelDeployment) -> str:
    # `.svc` without the cluster domain resolves in every cluster, whatever its domain.
    return f"{md.name}.{md.namespace}.svc"


def endpoints(md: ModelDeployment) -> dict[str, str]:
    """status.endpoints: in-cluster addresses of the Service."""
    host = service_host(md)
    return {
        "http": f"http://{host}:{c.TRITON_HTTP_PORT}",
        "grpc": f"{host}:{c.TRITON_GRPC_PORT}",
        "metrics": f"http://{host}:{c.TRITON_METRICS_PORT}/metrics",
    }
