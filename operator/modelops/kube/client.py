"""A thin, synchronous wrapper over the official kubernetes client.

The official client is synchronous; kopf runs sync handlers in its thread
pool (sized in controllers/settings.py), so every call here blocks one worker
thread and nothing else. One instance is shared by all handlers: the
underlying urllib3 pool is thread-safe.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import kubernetes
from prometheus_client import Counter

FIELD_MANAGER = "modelops"
log = logging.getLogger("modelops.kube")

API_REQUESTS = Counter(
    "modelops_api_requests_total",
    "Requests the operator sent to the Kubernetes API server, by verb.",
    ["verb"],
)

# How long an answer about an optional API (KEDA, Prometheus Operator) is
# trusted. Short, so a CRD installed after the operator started is noticed
# without a restart; long enough that a reconcile storm asks once.
DISCOVERY_TTL_SECONDS = 30.0
REQUEST_TIMEOUT_S = 60


def object_path(api_version: str, kind: str, namespace: str | None, name: str) -> str:
    """REST path of one object. Every kind modelops manages pluralises as kind + 's'."""
    plural = kind.lower() + "s"
    prefix = "/api/v1" if api_version == "v1" else f"/apis/{api_version}"
    scope = f"/namespaces/{namespace}" if namespace else ""
    return f"{prefix}{scope}/{plural}/{name}"


class Kube:
    """Server-side apply, status patches, reads and API discovery."""

    def __init__(self, api_client: kubernetes.client.ApiClient | None = None) -> None:
        self.api_client = api_client or _default_api_client()
        self._api_cache: dict[tuple[str, str], tuple[float, bool]] = {}

    # Plain REST on the generated client's transport: the kinds modelops
    # manages are known in advance, so no discovery client (whose cache is
    # neither thread-safe nor cheap to refresh) is needed.
    def _request(
        self,
        method: str,
        path: str,
        *,
        query: list[tuple[str, str]] | None = None,
        body: Any = None,
        content_type: str = "application/json",
    ) -> dict[str, Any]:
        # The transport JSON-encodes bodies only for JSON content types; an
        # apply patch (application/apply-patch+yaml) must arrive as text, and
        # JSON is valid YAML.
        payload = json.dumps(body) if body is not None and "json" not in content_type else body
        method, url, headers, payload, _ = self.api_client.param_serialize(
            method,
            path,
            query_params=query or [],
            header_params={"Content-Type": content_type, "Accept": "application/json"},
            body=payload,
            auth_settings=["BearerToken"],
        )
        response = self.api_client.call_api(
            method, url, header_params=headers, body=payload, _request_timeout=REQUEST_TIMEOUT_S
        )
        response.read()
        if response.status >= 400:
            raise kubernetes.client.ApiException(http_resp=response)
        return json.loads(response.data) if response.data else {}

    def apply(self, obj: dict[str, Any], field_manager: str = FIELD_MANAGER) -> dict[str, Any]:
        """Server-side apply ``obj`` (as the modelops field manager); returns the live object."""
        meta = obj["metadata"]
        API_REQUESTS.labels("apply").inc()
        return self._request(
            "PATCH",
            object_path(obj["apiVersion"], obj["kind"], meta.get("namespace"), meta["name"]),
            query=[("fieldManager", field_manager), ("force", "true")],
            body=obj,
            content_type="application/apply-patch+yaml",
        )

    def create(self, obj: dict[str, Any]) -> dict[str, Any]:
        """Create ``obj``; raises ApiException 409 when it exists already."""
        meta = obj["metadata"]
        API_REQUESTS.labels("create").inc()
        path = object_path(obj["apiVersion"], obj["kind"], meta.get("namespace"), "")
        return self._request(
            "POST", path.rstrip("/"), query=[("fieldManager", FIELD_MANAGER)], body=obj
        )

    def merge_patch(
        self, api_version: str, kind: str, name: str, namespace: str | None, patch: dict
    ) -> dict[str, Any]:
        API_REQUESTS.labels("patch").inc()
        return self._request(
            "PATCH",
            object_path(api_version, kind, namespace, name),
            query=[("fieldManager", FIELD_MANAGER)],
            body=patch,
            content_type="application/merge-patch+json",
        )

    def get(self, api_version: str, kind: str, name: str, namespace: str | None) -> dict | None:
        API_REQUESTS.labels("get").inc()
        try:
            return self._request("GET", object_path(api_version, kind, namespace, name))
        except kubernetes.client.ApiException as err:
            if err.status == 404:
                return None
            raise

    def delete(self, api_version: str, kind: str, name: str, namespace: str | None) -> bool:
        """Delete if present; returns whether something was deleted.

        A kind the cluster does not serve (KEDA absent) has nothing to delete.
        """
        API_REQUESTS.labels("delete").inc()
        try:
            self._request(
                "DELETE",
                object_path(api_version, kind, namespace, name),
                body={"propagationPolicy": "Background"},
            )
        except kubernetes.client.ApiException as err:
            if err.status == 404:
                return False
            raise
        return True

    def patch_status(
        self,
        group: str,
        version: str,
        plural: str,
        namespace: str,
        name: str,
        status: dict[str, Any],
    ) -> dict[str, Any]:
        """Merge-patch the status subresource of a custom object."""
        API_REQUESTS.labels("patch_status").inc()
        api = kubernetes.client.CustomObjectsApi(self.api_client)
        return api.patch_namespaced_custom_object_status(
            group,
            version,
            namespace,
            plural,
            name,
            {"status": status},
            field_manager=FIELD_MANAGER,
        )

    def list_events(self, namespace: str, field_selector: str) -> list[dict[str, Any]]:
        """Events of one namespace matching a field selector (never watched, never cached)."""
        API_REQUESTS.labels("list").inc()
        events = kubernetes.client.CoreV1Api(self.api_client).list_namespaced_event(
            namespace, field_selector=field_selector, limit=500
        )
        return [self.api_client.sanitize_for_serialization(e) for e in events.items]

    def post_event(
        self, involved: Mapping[str, Any], type_: str, reason: str, message: str
    ) -> None:
        """Record a core/v1 Event about ``involved`` (best effort: never raises)."""
        meta = involved["metadata"]
        now = datetime.now(UTC)
        event = kubernetes.client.CoreV1Event(
            metadata=kubernetes.client.V1ObjectMeta(
                generate_name=f"{meta['name']}.", namespace=meta["namespace"]
            ),
            involved_object=kubernetes.client.V1ObjectReference(
                api_version=involved.get("apiVersion"),
                kind=involved.get("kind"),
                name=meta["name"],
                namespace=meta["namespace"],
                uid=meta.get("uid"),
                resource_version=meta.get("resourceVersion"),
            ),
            type=type_,
            reason=reason,
            message=message[:1024],
            first_timestamp=now,
            last_timestamp=now,
            count=1,
            source=kubernetes.client.V1EventSource(component=FIELD_MANAGER),
            reporting_component=FIELD_MANAGER,
        )
        API_REQUESTS.labels("create_event").inc()
        try:
            kubernetes.client.CoreV1Api(self.api_client).create_namespaced_event(
                meta["namespace"], event
            )
        except kubernetes.client.ApiException as err:
            log.warning("could not record event %s on %s: %s", reason, meta["name"], err.reason)

    def forget_api_cache(self) -> None:
        """Drop cached discovery answers (an optional CRD was added or removed)."""
        self._api_cache.clear()

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
