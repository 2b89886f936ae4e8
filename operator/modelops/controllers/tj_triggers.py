"""Triggers for TrainingJobs and their children: store changes -> queued keys."""

from __future__ import annotations

from typing import TYPE_CHECKING

from modelops.controllers.stores import DELETED, Change

if TYPE_CHECKING:
    from modelops.controllers.operator import Operator


def on_changes(operator: Operator, store: str, changes: list[Change]) -> None:
    if store == "tj_index":
        for change in changes:
            if change.type == DELETED:
                operator.tj_deleted(change.key)
                continue
            # Its result (status) may be the version the ModelDeployment follows:
            # the ModelDeployment looks again, own status writes included.
            md = operator.tj.model_deployment_of(change.key)
            if md is not None:
                operator.enqueue_md(md, child=True)
            if not operator.tj.delivered(change.key, change.resource_version):
                operator.enqueue_tj(change.key)
        return
    if store == "tj_by_md":
        # A TrainingJob now feeds (or no longer feeds) this ModelDeployment.
        for change in changes:
            operator.enqueue_md(change.key, child=True)
        return
    for change in changes:  # a Job, pod, Service or claim template of a TrainingJob
        operator.enqueue_tj(change.key, child=True)
