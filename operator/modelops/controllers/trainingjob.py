"""kopf triggers for TrainingJobs and their children: they only queue work."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import kopf

from modelops.api import constants as c
from modelops.api.kinds import RESOURCE_CLAIM_TEMPLATE
from modelops.controllers.indexes import OWNED_BY_TJ, TJ, _group_version


@kopf.on.event(*TJ)
async def tj_event(
    type: str | None, namespace: str, name: str, body: kopf.Body, memo: kopf.Memo, **_: Any
) -> None:
    operator = memo.operator
    key = (namespace, name)
    ref = ((body.get("spec") or {}).get("modelDeploymentRef") or {}).get("name")
    if ref:
        # Its result may be the version the ModelDeployment follows.
        operator.enqueue_md((namespace, ref), child=True)
    if type == "DELETED":
        operator.tj_deleted(key)
    elif not operator.tj.is_own_write(key, body.metadata.get("resourceVersion")):
        operator.enqueue_tj(key)


async def _child_event(namespace: str, labels: Mapping[str, str], memo: kopf.Memo) -> None:
    memo.operator.enqueue_tj((namespace, labels[c.LABEL_TRAINING_JOB]), child=True)


@kopf.on.event("batch", "v1", "jobs", labels=OWNED_BY_TJ)
async def job_event(namespace: str, labels: Mapping[str, str], memo: kopf.Memo, **_: Any) -> None:
    await _child_event(namespace, labels, memo)


@kopf.on.event("", "v1", "pods", labels=OWNED_BY_TJ)
async def tj_pod_event(
    namespace: str, labels: Mapping[str, str], memo: kopf.Memo, **_: Any
) -> None:
    await _child_event(namespace, labels, memo)


@kopf.on.event(
    *_group_version(RESOURCE_CLAIM_TEMPLATE.api_version),
    RESOURCE_CLAIM_TEMPLATE.plural,
    labels=OWNED_BY_TJ,
    id="tj-resourceclaimtemplates",
)
async def tj_claim_template_event(
    namespace: str, labels: Mapping[str, str], memo: kopf.Memo, **_: Any
) -> None:
    await _child_event(namespace, labels, memo)


@kopf.on.event("", "v1", "services", labels=OWNED_BY_TJ)
async def tj_service_event(
    namespace: str, labels: Mapping[str, str], memo: kopf.Memo, **_: Any
) -> None:
    await _child_event(namespace, labels, memo)
