"""Triggers for ModelDeployments and their children: store changes -> queued keys.

Every watched change queues its owner's key; the reconcile itself runs on the
operator's work queue (``controllers.operator``). A ModelDeployment change is
queued at once; a child's (a pod starting, a Deployment's status moving) a
moment later, so that the burst of events one rollout step produces becomes
one reconcile. Every kind the operator owns is watched, so a child deleted or
edited behind the operator's back is put right within seconds. A change of
the ModelDeployment that is our own status write is not a reason to look again.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from modelops.controllers.stores import DELETED, Change

if TYPE_CHECKING:
    from modelops.controllers.operator import Operator


def on_changes(operator: Operator, store: str, changes: list[Change]) -> None:
    if store == "md_index":
        for change in changes:
            if change.type == DELETED:
                operator.md_deleted(change.key)
            elif not operator.md.delivered(change.key, change.resource_version):
                operator.enqueue_md(change.key)
        return
    # A child of a ModelDeployment (md_pods, md_deployments, md_scaled_objects, ...).
    for change in changes:
        if change.key[1]:
            operator.enqueue_md(change.key, child=True)
