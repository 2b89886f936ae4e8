"""kopf handlers for ModelDeployment: thin triggers around the reconciler.

What is watched (and so cached by kopf) is only what the operator owns:
ModelDeployments, and Deployments / HPAs / ScaledObjects / pods carrying the
modelops labels. Secrets, ConfigMaps and other namespaces' noise are never
listed (KServe OOMs caching every Secret of a big cluster, kserve#3467).

Every trigger funnels into `reconcile_key`, which reads the current snapshot
from the indexes: a Deployment or pod event re-derives the owner's status,
a ModelDeployment event also re-renders it.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import kopf

from modelops.api import constants as c
from modelops.controllers.runtime import RUNTIME

MD = (c.GROUP, c.VERSION, c.MD_PLURAL)
MANAGED = {c.LABEL_MANAGED_BY: c.MANAGED_BY}
OWNED_BY_MD = {c.LABEL_MODEL_DEPLOYMENT: kopf.PRESENT}
log = logging.getLogger("modelops.modeldeployment")


# -- indexes: kopf keeps them current from label-filtered watches -------------


@kopf.index(*MD)
def md_index(namespace: str, name: str, body: kopf.Body, **_: Any) -> dict:
    return {(namespace, name): body}


@kopf.index("apps", "v1", "deployments", labels=MANAGED)
def md_deployments(namespace: str, labels: Mapping[str, str], body: kopf.Body, **_: Any) -> dict:
    return {(namespace, labels.get(c.LABEL_MODEL_DEPLOYMENT)): body}


@kopf.index("", "v1", "pods", labels=OWNED_BY_MD)
def md_pods(namespace: str, labels: Mapping[str, str], body: kopf.Body, **_: Any) -> dict:
    return {(namespace, labels[c.LABEL_MODEL_DEPLOYMENT]): body}


@kopf.index("autoscaling", "v2", "horizontalpodautoscalers", labels=MANAGED)
def md_hpas(namespace: str, labels: Mapping[str, str], body: kopf.Body, **_: Any) -> dict:
    return {(namespace, labels.get(c.LABEL_MODEL_DEPLOYMENT)): body}


# -- triggers ---------------------------------------------------------------------


@kopf.on.event(*MD)
def md_event(type: str | None, namespace: str, name: str, **kwargs: Any) -> None:
    if type == "DELETED":
        # Children go with the owner through garbage collection (owner references).
        RUNTIME.md.forget((namespace, name))
        return
    RUNTIME.reconcile_md((namespace, name))


@kopf.on.event("apps", "v1", "deployments", labels=MANAGED)
def deployment_event(namespace: str, labels: Mapping[str, str], **_: Any) -> None:
    RUNTIME.reconcile_md((namespace, labels.get(c.LABEL_MODEL_DEPLOYMENT, "")))


@kopf.on.event("", "v1", "pods", labels=OWNED_BY_MD)
def pod_event(namespace: str, labels: Mapping[str, str], **_: Any) -> None:
    RUNTIME.reconcile_md((namespace, labels[c.LABEL_MODEL_DEPLOYMENT]))


@kopf.on.event("autoscaling", "v2", "horizontalpodautoscalers", labels=MANAGED)
def hpa_event(namespace: str, labels: Mapping[str, str], **_: Any) -> None:
    RUNTIME.reconcile_md((namespace, labels.get(c.LABEL_MODEL_DEPLOYMENT, "")))


@kopf.on.event(
    "apiextensions.k8s.io",
    "v1",
    "customresourcedefinitions",
    when=lambda name, **_: name == "scaledobjects.keda.sh",
)
def keda_crd_event(**_: Any) -> None:
    """KEDA installed (or removed) after the operator started: re-render what uses it."""
    RUNTIME.kube.forget_api_cache()
    for key in RUNTIME.md_keys():
        RUNTIME.reconcile_md(key)
