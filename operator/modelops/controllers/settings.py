"""kopf settings shared by every controller, applied once at operator start."""

from __future__ import annotations

import logging
import os
from typing import Any

import kopf

from modelops.api import constants as c
from modelops.api import kinds

# kopf keeps its own bookkeeping (handler progress, the last-handled spec) in
# this subtree of status, which the CRD declares x-kubernetes-preserve-unknown-
# fields. Keeping it out of metadata.annotations means a GitOps tool that
# diffs the object never sees a field it did not write.
KOPF_STATUS_FIELD = "status.kopf"

MANAGED_SELECTOR = f"{c.LABEL_MANAGED_BY}={c.MANAGED_BY}"
WATCHED_CHILDREN = tuple(
    (kind.group, kind.version, kind.plural)
    for kind in (
        kinds.DEPLOYMENT,
        kinds.SERVICE,
        kinds.CONFIG_MAP,
        kinds.HPA,
        kinds.SCALED_OBJECT,
        kinds.PDB,
        kinds.JOB,
        kinds.POD,
        kinds.RESOURCE_CLAIM_TEMPLATE,
        kinds.RESOURCE_CLAIM,
    )
)

# Reconciles at once. Each holds a thread while it waits on the API server
# (the official client is synchronous), so after a mass change throughput is
# workers / API latency: 8 workers at 1,000 objects put a 10-30 s lag on status
# under churn (bench/operator/scale.py), hence 32. The chart's operator.workers
# (values.yaml, README) names this default: keep them in step. Bounded, so a burst queues instead of
# opening hundreds of connections (kube.client.CONNECTION_POOL_SIZE).
DEFAULT_WORKERS = 32


def workers() -> int:
    """Reconciles that may run at once (each holds a thread while it waits on the API)."""
    return int(os.environ.get("MODELOPS_WORKERS", DEFAULT_WORKERS))


def configure(settings: kopf.OperatorSettings, **_: Any) -> None:
    settings.persistence.progress_storage = kopf.StatusProgressStorage(
        field=f"{KOPF_STATUS_FIELD}.progress"
    )
    settings.persistence.diffbase_storage = kopf.StatusDiffBaseStorage(
        field=f"{KOPF_STATUS_FIELD}.diffbase"
    )
    settings.persistence.finalizer = "modelops.io/finalizer"
    # Events are written by the controllers themselves for the transitions
    # an SRE cares about; kopf's per-handler chatter would drown them.
    settings.posting.level = logging.WARNING
    # Reconciles run on the operator's own work queue (controllers.operator);
    # kopf's own handlers are async and only queue keys.
    settings.execution.max_workers = 1
    # A watch that goes silent (a dropped connection through a proxy) is
    # re-established instead of hanging forever.
    settings.watching.server_timeout = 300
    settings.watching.client_timeout = 330
    settings.watching.inactivity_timeout = 600
    # Server-side filtering: only the operator's own children and pods are
    # listed and streamed, not every pod and Service of the cluster (the
    # handlers' `labels=` filters alone would be applied after the fact).
    for group, version, plural in WATCHED_CHILDREN:
        settings.watching.label_selectors[group, version, plural] = MANAGED_SELECTOR
    settings.networking.request_timeout = 60
    settings.networking.connect_timeout = 10
    # Peering: with two replicas the one of higher priority works, the other
    # waits; a replica that stops refreshing its record is gone after this.
    settings.peering.lifetime = 30
    settings.peering.mandatory = False
