"""kopf triggers for ModelDeployments and their children: they only queue work.

Every watched change queues its owner's key; the reconcile itself runs on the
operator's work queue (``controllers.operator``). A ModelDeployment change is
queued at once; a child's (a pod starting, a Deployment's status moving) a
moment later, so that the burst of events one rollout step produces becomes
one reconcile. Every kind the operator owns is watched, so a child deleted or
edited behind the operator's back is put right within seconds.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import kopf

from modelops.api import constants as c
from modelops.api.kinds import RESOURCE_CLAIM
from modelops.controllers.indexes import MANAGED, MD, OWNED_BY_MD, _group_version
from modelops.render.children import (
    CONFIG_MAP,
    DEPLOYMENT,
    HPA,
    PDB,
    RESOURCE_CLAIM_TEMPLATE,
    SCALED_OBJECT,
    SERVICE,
)
from modelops.render.projections import project_autoscaler


@kopf.on.event(*MD)
async def md_event(
    type: str | None, namespace: str, name: str, body: kopf.Body, memo: kopf.Memo, **_: Any
) -> None:
    operator = memo.operator
    key = (namespace, name)
    if type == "DELETED":
        operator.md_deleted(key)
    elif not operator.md.is_own_write(key, body.metadata.get("resourceVersion")):
        operator.enqueue_md(key)


async def child_event(namespace: str, labels: Mapping[str, str], memo: kopf.Memo, **_: Any) -> None:
    owner = labels.get(c.LABEL_MODEL_DEPLOYMENT)
    if owner:
        memo.operator.enqueue_md((namespace, owner), child=True)


for _kind in (DEPLOYMENT, SERVICE, CONFIG_MAP, HPA, PDB, RESOURCE_CLAIM_TEMPLATE):
    kopf.on.event(
        *_group_version(_kind.api_version), _kind.plural, labels=MANAGED, id=f"{_kind.plural}"
    )(child_event)
kopf.on.event("", "v1", "pods", labels=OWNED_BY_MD, id="pods")(child_event)
# A claim's allocation is written before its pod is bound: status.gpu follows it.
kopf.on.event(
    *_group_version(RESOURCE_CLAIM.api_version),
    RESOURCE_CLAIM.plural,
    labels=OWNED_BY_MD,
    id="resourceclaims",
)(child_event)


@kopf.on.event(*_group_version(SCALED_OBJECT.api_version), SCALED_OBJECT.plural, labels=MANAGED)
async def scaled_object_event(
    type: str | None,
    namespace: str,
    name: str,
    labels: Mapping[str, str],
    body: kopf.Body,
    memo: kopf.Memo,
    **_: Any,
) -> None:
    """ScaledObjects are kept by this handler, not a kopf index (see controllers.indexes)."""
    owner = (namespace, labels.get(c.LABEL_MODEL_DEPLOYMENT, ""))
    store = memo.operator.md.indexes.scaled_objects
    if type == "DELETED":
        store.drop(owner, name)
    else:
        store.put(owner, name, project_autoscaler(body))
    memo.operator.enqueue_md(owner, child=True)


@kopf.on.event(
    "apiextensions.k8s.io",
    "v1",
    "customresourcedefinitions",
    when=lambda name, **_: name == f"{SCALED_OBJECT.plural}.keda.sh",
)
async def keda_crd_event(type: str | None, memo: kopf.Memo, **_: Any) -> None:
    """KEDA installed (or removed) after the operator started: re-render what uses it."""
    if type == "DELETED":
        memo.operator.md.indexes.scaled_objects.clear()
    memo.operator.keda_changed()
