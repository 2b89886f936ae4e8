"""Operator settings: the number of workers, and kopf's, applied once at start."""

from __future__ import annotations

import logging
import os
from typing import Any

import kopf

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
    """kopf runs the process (start-up, cleanup, signals, the liveness probe) and
    watches nothing: the informers (controllers/informers.py) do, and the Lease
    (controllers/leader.py) decides which replica works."""
    # Events are written by the controllers themselves for the transitions
    # an SRE cares about; kopf's per-handler chatter would drown them.
    settings.posting.level = logging.WARNING
    settings.networking.request_timeout = 60
    settings.networking.connect_timeout = 10
