"""The kopf peering record the operator replicas share, created when missing.

kopf keeps its replicas' liveness and priorities in the status of a
ClusterKopfPeering, but does not create that object. Shipping it as a manifest
breaks a one-shot `kubectl apply -f crds/ -f manifests/install/`: kubectl maps
every object to its API before applying any, and the ClusterKopfPeering kind
does not exist until its CRD (in the same invocation) is established. So the
plain-manifest operator creates its own record (`modelops run
--create-peering`); the Helm chart ships it as a template instead, because
Helm installs the peering CRD from the chart's crds/ before any template.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from modelops.api.kinds import CLUSTER_KOPF_PEERING
from modelops.kube.errors import AlreadyExists, NotFound
from modelops.kube.protocol import KubeApi

log = logging.getLogger("modelops.peering")

PEERING_API_VERSION = CLUSTER_KOPF_PEERING.api_version
PEERING_KIND = CLUSTER_KOPF_PEERING.kind


def peering_record(name: str) -> dict:
    return {
        "apiVersion": PEERING_API_VERSION,
        "kind": PEERING_KIND,
        "metadata": {"name": name, "labels": {"app.kubernetes.io/part-of": "modelops"}},
    }


def ensure_cluster_peering(
    kube: KubeApi,
    name: str,
    *,
    timeout_s: float = 45.0,
    interval_s: float = 2.0,
    sleep: Callable[[float], None] = time.sleep,
) -> str:
    """Create the ClusterKopfPeering `name` unless it exists.

    Returns "created", "exists" or "unavailable" (its CRD was still not served
    after timeout_s: right after a one-shot apply the CRD may take a moment to
    be established, hence the retries). Any other API error is raised.
    """
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            kube.create(peering_record(name))
            log.info("created the peering record ClusterKopfPeering/%s", name)
            return "created"
        except AlreadyExists:
            return "exists"
        except NotFound:
            # Right after a one-shot apply the CRD may not be served yet.
            if time.monotonic() >= deadline:
                log.warning(
                    "ClusterKopfPeering is not served (is crds/kopf.dev_clusterkopfpeerings"
                    ".yaml applied?); running without the peering record %s",
                    name,
                )
                return "unavailable"
        sleep(interval_s)
