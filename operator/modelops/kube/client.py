"""A thin, synchronous wrapper over the official kubernetes client.

The official client is synchronous; kopf runs sync handlers in its thread
pool (sized in controllers/settings.py), so every call here blocks one worker
thread and nothing else. One instance is shared by all handlers: the
underlying urllib3 pool is thread-safe.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import kubernetes
from kubernetes.dynamic import DynamicClient
from kubernetes.dynamic.exceptions import NotFoundError, ResourceNotFoundError
from prometheus_client import Counter

FIELD_MANAGER = "modelops"

API_REQUESTS = Counter(
    "modelops_api_requests_total",
    "Requests the operator sent to the Kubernetes API server, by verb.",
    ["verb"],
)

# How long an answer about an optional API (KEDA, Prometheus Operator) is
# trusted. Short, so a CRD installed after the operator started is noticed
# without a restart; long enough that a reconcile storm asks once.
DISCOVERY_TTL_SECONDS = 30.0


class Kube:
    """Server-side apply, status patches, reads and API discovery."""

    def __init__(self, api_client: kubernetes.client.ApiClient | None = None) -> None:
        self.api_client = api_client or _default_api_client()
        self._dynamic: DynamicClient | None = None
        self._dynamic_lock = threading.Lock()
        self._api_cache: dict[tuple[str, str], tuple[float, bool]] = {}

    @property
    def dynamic(self) -> DynamicClient:
        # Discovery happens on first use, not at import or construction time.
        with self._dynamic_lock:
            if self._dynamic is None:
                self._dynamic = DynamicClient(self.api_client)
            return self._dynamic

    def _resource(self, api_version: str, kind: str) -> Any:
        try:
            return self.dynamic.resources.get(api_version=api_version, kind=kind)
        except ResourceNotFoundError:
            # The discovery cache may predate a CRD installed since; refresh once.
            self.dynamic.resources.invalidate_cache()
            return self.dynamic.resources.get(api_version=api_version, kind=kind)

    def apply(self, obj: dict[str, Any]) -> dict[str, Any]:
        """Server-side apply ``obj`` as the modelops field manager; returns the live object."""
        resource = self._resource(obj["apiVersion"], obj["kind"])
        meta = obj["metadata"]
        API_REQUESTS.labels("apply").inc()
        live = resource.server_side_apply(
            body=obj,
            name=meta["name"],
            namespace=meta.get("namespace"),
            field_manager=FIELD_MANAGER,
            force_conflicts=True,
        )
        return live.to_dict()

    def get(self, api_version: str, kind: str, name: str, namespace: str | None) -> dict | None:
        resource = self._resource(api_version, kind)
        API_REQUESTS.labels("get").inc()
        try:
            return resource.get(name=name, namespace=namespace).to_dict()
        except NotFoundError:
            return None

    def delete(self, api_version: str, kind: str, name: str, namespace: str | None) -> bool:
        """Delete if present; returns whether something was deleted."""
        resource = self._resource(api_version, kind)
        API_REQUESTS.labels("delete").inc()
        try:
            resource.delete(name=name, namespace=namespace, propagation_policy="Background")
        except NotFoundError:
            return False
        return True

    def patch_status(
        self, group: str, version: str, plural: str, namespace: str, name: str,
        status: dict[str, Any],
    ) -> dict[str, Any]:
        """Merge-patch the status subresource of a custom object."""
        API_REQUESTS.labels("patch_status").inc()
        api = kubernetes.client.CustomObjectsApi(self.api_client)
        return api.patch_namespaced_custom_object_status(
            group, version, namespace, plural, {"status": status},
            field_manager=FIELD_MANAGER,
        )

    def list_events(self, namespace: str, involved_name: str) -> list[dict[str, Any]]:
        """Events about one object (used only for pods that are not running)."""
        API_REQUESTS.labels("list").inc()
        events = kubernetes.client.CoreV1Api(self.api_client).list_namespaced_event(
            namespace, field_selector=f"involvedObject.name={involved_name}"
        )
        return [self.api_client.sanitize_for_serialization(e) for e in events.items]

    def api_available(self, group_version: str, kind: str) -> bool:
        """Whether the cluster serves ``kind`` in ``group_version`` (cached briefly)."""
        key = (group_version, kind)
        now = time.monotonic()
        cached = self._api_cache.get(key)
        if cached and now - cached[0] < DISCOVERY_TTL_SECONDS:
            return cached[1]
        API_REQUESTS.labels("discovery").inc()
        group, _, version = group_version.rpartition("/")
        try:
            if group:
                found = kubernetes.client.CustomObjectsApi(self.api_client).get_api_resources(
                    group, version
                )
            else:
                found = kubernetes.client.CoreV1Api(self.api_client).get_api_resources()
            available = any(r.kind == kind for r in found.resources)
        except kubernetes.client.ApiException as err:
            if err.status != 404:
                raise
            available = False
        self._api_cache[key] = (now, available)
        return available


def _default_api_client() -> kubernetes.client.ApiClient:
    try:
        kubernetes.config.load_incluster_config()
    except kubernetes.config.ConfigException:
        kubernetes.config.load_kube_config()
    return kubernetes.client.ApiClient()
