"""The activator's few API calls, through modelops.kube (synchronous: the
activator runs them in a thread, off its event loop)."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from modelops.api.kinds import DEPLOYMENT, ENDPOINT_SLICE, SERVICE
from modelops.kube import errors
from modelops.kube.client import Kube
from modelops.render.wake import (
    LABEL_SERVICE_NAME,
    LABEL_WAKE,
    WAKE_ON,
    WakeTarget,
    activator_slice,
    deployment_owned_by,
    slice_name,
    wake_target,
)

log = logging.getLogger(__name__)
FIELD_MANAGER = "modelops-activator"


class WakeCluster:
    """Marked Services, their EndpointSlices, the activator's own slice, scale-ups."""

    def __init__(self, kube: Kube, namespaces: tuple[str, ...] = ()) -> None:
        self.kube = kube
        # Empty: every namespace (a ClusterRole); else only these (a Role in
        # each, as a namespaced install of the chart grants).
        self.namespaces = namespaces

    def targets(self) -> list[WakeTarget]:
        services: list[dict[str, Any]] = []
        for namespace in self.namespaces or (None,):
            items, _ = self.kube.list_objects(
                SERVICE, namespace, label_selector=f"{LABEL_WAKE}={WAKE_ON}"
            )
            services += items
        return [t for s in services if (t := wake_target(s)) is not None]

    def slices(self, target: WakeTarget) -> list[dict[str, Any]]:
        items, _ = self.kube.list_objects(
            ENDPOINT_SLICE,
            target.namespace,
            label_selector=f"{LABEL_SERVICE_NAME}={target.service}",
        )
        return items

    def put_slice(self, target: WakeTarget, ip: str, port: int) -> None:
        self.kube.apply(activator_slice(target, ip, port), field_manager=FIELD_MANAGER)

    def drop_slice(self, target: WakeTarget, live: Mapping[str, Any]) -> None:
        uid = (live.get("metadata") or {}).get("uid")
        if uid:
            self.kube.delete(ENDPOINT_SLICE, target.namespace, slice_name(target.service), uid=uid)

    def scale_from_zero(self, target: WakeTarget) -> bool:
        """Ask the Deployment for one replica if it has none; True when asked.

        Only the Deployment controlled by the ModelDeployment that controls the
        Service is touched (a marked Service is an untrusted claim)."""
        live = self.kube.get(DEPLOYMENT, target.namespace, target.deployment)
        if live is None or not deployment_owned_by(live, target.owner_uid):
            log.warning(
                "not scaling %s/%s: not controlled by the Service's ModelDeployment",
                target.namespace,
                target.deployment,
            )
            return False
        if (live.get("spec") or {}).get("replicas") != 0:
            return False
        try:
            self.kube.merge_patch(
                DEPLOYMENT, target.namespace, target.deployment, {"spec": {"replicas": 1}}
            )
        except errors.KubeError as err:
            log.warning("scaling %s/%s from zero: %s", target.namespace, target.deployment, err)
            return False
        return True
