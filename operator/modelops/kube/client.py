"""A thin, synchronous wrapper over the official kubernetes client.

The official client is synchronous; callers run it in a thread pool, so each
call blocks one worker thread and nothing else. One instance is shared by all
callers: the underlying urllib3 pool is thread-safe.

Every call raises `modelops.kube.errors` types, never the client's
ApiException, and every request is counted in `API_REQUESTS` by verb (the
benchmark's requests-per-object figure).

Object verbs (apply, create, get, merge_patch, delete) are plain REST on the
client's `ApiClient.param_serialize` + `call_api`, the same two public calls
the client's own `kubernetes.dynamic.DynamicClient.request` is built on:
- no single public method covers every kind: `CustomObjectsApi` builds
  `/apis/{group}/...` paths only (not the core group's Service), and the typed
  APIs have one method per kind (`patch_namespaced_service`, ...);
- the typed APIs turn each answer into model objects that would be turned
  back into dicts for the renderers, CPU spent on every reconcile;
- `DynamicClient` adds API discovery on start-up and a cache file, which the
  kinds registry (`modelops.api.kinds`) makes unnecessary.
Requests with one fixed target (status of a custom object, Events, API
discovery) use the typed public methods.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import os
import time
from collections.abc import Callable, Collection, Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import kubernetes
import urllib3
from prometheus_client import Counter

from modelops.api.kinds import EVENT, LEASE, SECRET, Kind, kind_of_object

from . import errors

FIELD_MANAGER = "modelops"
log = logging.getLogger("modelops.kube")
WRITE_LOG = logging.getLogger("modelops.kube.writes")

API_REQUESTS = Counter(
    "modelops_api_requests_total",
    "Requests the operator sent to the Kubernetes API server, by verb.",
    ["verb"],
)

# How long an answer about an optional API (KEDA, Prometheus Operator) is
# trusted. Short, so a CRD installed after the operator started is noticed
# without a restart; long enough that a reconcile storm asks once.
DISCOVERY_TTL_SECONDS = 30.0
REQUEST_TIMEOUT_S = 60.0
# Objects per page of a list (the API server's own default chunk size for
# its watch cache is 500 too).
LIST_PAGE_SIZE = 500
# How long the API server keeps one watch open; with bookmarks, resuming
# after it costs one request and no list.
WATCH_TIMEOUT_S = 300

# The most of a Secret's answer read (the API server allows 1 MiB): storage credentials
# are a few hundred bytes; a bigger object is refused, not buffered.
SECRET_MAX_BYTES = 64 * 1024

# An apply with this resourceVersion only ever creates (see Kube.apply).
NEVER_A_RESOURCE_VERSION = str(2**64 - 1)

_JSON = "application/json"
_APPLY = "application/apply-patch+yaml"
_MERGE = "application/merge-patch+json"


def object_path(kind: Kind, namespace: str | None, name: str | None = None) -> str:
    """REST path of one object (or, without ``name``, of its collection)."""
    if kind.namespaced and not namespace:
        raise ValueError(f"{kind.kind} is namespaced: a namespace is needed")
    if not kind.namespaced and namespace:
        raise ValueError(f"{kind.kind} is cluster-scoped: no namespace")
    prefix = "/api/v1" if kind.api_version == "v1" else f"/apis/{kind.api_version}"
    scope = f"/namespaces/{namespace}" if namespace else ""
    suffix = f"/{name}" if name else ""
    return f"{prefix}{scope}/{kind.plural}{suffix}"


def _collection_path(kind: Kind, namespace: str | None) -> str:
    """A collection to list or watch: one namespace's, or (None) every namespace's."""
    if namespace is None and kind.namespaced:
        prefix = "/api/v1" if kind.api_version == "v1" else f"/apis/{kind.api_version}"
        return f"{prefix}/{kind.plural}"
    return object_path(kind, namespace)


def _lines(raw: Any) -> Iterator[bytes]:
    """The newline-separated JSON documents of a watch stream, as they arrive."""
    pending = b""
    for chunk in raw.stream(amt=65536, decode_content=True):
        pending += chunk
        *complete, pending = pending.split(b"\n")
        for line in complete:
            if line.strip():
                yield line
    if pending.strip():
        yield pending


def _resource(kind: Kind) -> str:
    """How the API server names a resource in messages: "services", "deployments.apps"."""
    return f"{kind.plural}.{kind.group}" if kind.group else kind.plural


class Kube:
    """Server-side apply, create, delete with preconditions, status patches, events, discovery."""

    def __init__(
        self,
        api_client: kubernetes.client.ApiClient | None = None,
        *,
        discovery_ttl_s: float = DISCOVERY_TTL_SECONDS,
        request_timeout_s: float = REQUEST_TIMEOUT_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.api_client = api_client or _default_api_client()
        self._core = kubernetes.client.CoreV1Api(self.api_client)
        self._custom = kubernetes.client.CustomObjectsApi(self.api_client)
        self._discovery_ttl_s = discovery_ttl_s
        self._timeout = request_timeout_s
        self._clock = clock
        self._api_cache: dict[Kind, tuple[float, bool]] = {}
        # Set by leader election (controllers/leader.py): called before every
        # write, raises errors.NotLeader when this process may not write. None:
        # no leader election (one replica), every write goes.
        self.fence: Callable[[], None] | None = None
        # Who this process is in the write log (the Lease holder identity).
        self.identity = ""
        # One log line per write (verb, object, identity, wall time): the audit
        # the failover test reads to show no object was written by two leaders.
        self.log_writes = os.environ.get("MODELOPS_LOG_WRITES", "") == "true"

    def _write(self, verb: str, kind: Kind, namespace: str | None, name: str | None) -> None:
        """Every write passes here first: the leader fence, then the write log."""
        if self.fence is not None:
            self.fence()
        if self.log_writes:
            WRITE_LOG.info(
                "write %s %s %s/%s by %s at %.3f",
                verb,
                kind.kind,
                namespace or "",
                name or "",
                self.identity or "-",
                time.time(),
            )

    # -- object verbs --------------------------------------------------------------

    def apply(
        self,
        obj: Mapping[str, Any],
        *,
        uid_precondition: str | None = None,
        create_only: bool = False,
        force: bool = True,
        field_manager: str = FIELD_MANAGER,
    ) -> dict[str, Any]:
        """Server-side apply ``obj``; returns the live object. One request in every case.

        ``uid_precondition``: apply only onto the object with this uid (the one
        the index shows as ours). Sent as metadata.uid; PreconditionFailed when
        the live object has another uid, and also when none exists (the API
        server never creates an object for an apply that names a uid).
        ``create_only``: create the object, AlreadyExists when the name is
        taken (by anyone); unlike `create`, the fields are owned as applied
        fields, so a later apply that drops one removes it.
        ``force``: take over fields another field manager set (False: Conflict
        whose causes name the contested fields).
        """
        if uid_precondition is not None and create_only:
            raise ValueError("an object cannot both exist with a uid and not exist")
        kind = kind_of_object(obj)
        meta = obj["metadata"]
        self._write("apply", kind, meta.get("namespace"), meta["name"])
        body = dict(obj)  # a copy: the caller's object is left as it was
        if uid_precondition is not None:
            body["metadata"] = {**meta, "uid": uid_precondition}
        elif create_only:
            # An apply carrying a resourceVersion creates the object when it
            # is absent and is refused (409, "the object has been modified")
            # unless the live object has exactly that version; etcd revisions
            # are int64, so this one never matches. See test_kube_client.py.
            body["metadata"] = {**meta, "resourceVersion": NEVER_A_RESOURCE_VERSION}
        API_REQUESTS.labels("apply").inc()
        try:
            # Sent as a JSON string: JSON is YAML, and a string body skips the
            # client's recursive sanitising of the whole manifest.
            return self._request(
                "PATCH",
                object_path(kind, meta.get("namespace"), meta["name"]),
                query=[("fieldManager", field_manager), ("force", "true" if force else "false")],
                body=json.dumps(body),
                content_type=_APPLY,
            )
        except errors.Invalid as err:
            if uid_precondition is not None and "metadata.uid" in err.fields:
                # Another object lives under this name: the API server words it
                # as an attempt to change an immutable field.
                raise errors.PreconditionFailed(
                    err.reason, err.message, err.status, err.causes
                ) from err
            raise
        except errors.Conflict as err:
            if create_only and not err.precondition_failed:
                raise errors.AlreadyExists(
                    "AlreadyExists",
                    f'{_resource(kind)} "{meta["name"]}" already exists',
                    err.status,
                ) from err
            raise

    def create(self, obj: Mapping[str, Any]) -> dict[str, Any]:
        """Create ``obj``; AlreadyExists when its name is taken. Returns the live object.

        The API server records its fields as set by an update, not an apply: a
        later apply that drops one of them leaves it in place. For an object the
        operator goes on applying, use ``apply(obj, create_only=True)``.
        """
        kind = kind_of_object(obj)
        self._write("create", kind, obj["metadata"].get("namespace"), obj["metadata"].get("name"))
        API_REQUESTS.labels("create").inc()
        return self._request(
            "POST",
            object_path(kind, obj["metadata"].get("namespace")),
            query=[("fieldManager", FIELD_MANAGER)],
            body=dict(obj),  # the client serialises dicts, not other mappings
        )

    def get(self, kind: Kind, namespace: str | None, name: str) -> dict[str, Any] | None:
        """The live object, or None when it does not exist."""
        API_REQUESTS.labels("get").inc()
        try:
            return self._request("GET", object_path(kind, namespace, name))
        except errors.NotFound:
            return None

    def merge_patch(
        self, kind: Kind, namespace: str | None, name: str, patch: Mapping[str, Any]
    ) -> dict[str, Any]:
        """JSON merge patch (RFC 7386) of an object; NotFound when it does not exist."""
        self._write("patch", kind, namespace, name)
        API_REQUESTS.labels("patch").inc()
        return self._request(
            "PATCH",
            object_path(kind, namespace, name),
            query=[("fieldManager", FIELD_MANAGER)],
            body=dict(patch),
            content_type=_MERGE,
        )

    def delete(self, kind: Kind, namespace: str | None, name: str, *, uid: str) -> bool:
        """Delete the object named ``name`` if, and only if, its uid is ``uid``.

        Returns False when nothing by that name exists (or the cluster does not
        serve the kind, e.g. KEDA absent). Raises PreconditionFailed when the
        name now belongs to another object (re-created, or never ours). Owned
        objects (pods of a Deployment) are deleted in the background.
        """
        self._write("delete", kind, namespace, name)
        API_REQUESTS.labels("delete").inc()
        try:
            self._request(
                "DELETE",
                object_path(kind, namespace, name),
                body={"preconditions": {"uid": uid}, "propagationPolicy": "Background"},
            )
        except errors.NotFound:
            return False
        return True

    # -- typed single-purpose calls ----------------------------------------------------

    def patch_status(
        self, kind: Kind, namespace: str | None, name: str, status: Mapping[str, Any]
    ) -> dict[str, Any]:
        """Merge-patch the status subresource of a custom object.

        ``status`` is the merge patch of `.status` (what render.merge_patch.status_patch
        returns): keys set to None are removed. Returns the live object.
        """
        if not kind.group:
            raise ValueError(f"{kind.kind}: the status of core kinds is not the operator's")
        self._write("patch_status", kind, namespace, name)
        API_REQUESTS.labels("patch_status").inc()
        body = {"status": dict(status)}
        common: dict[str, Any] = {
            "field_manager": FIELD_MANAGER,
            "_content_type": _MERGE,
            "_request_timeout": self._timeout,
        }
        with _translated():
            if kind.namespaced:
                if not namespace:
                    raise ValueError(f"{kind.kind} is namespaced: a namespace is needed")
                return self._custom.patch_namespaced_custom_object_status(
                    kind.group, kind.version, namespace, kind.plural, name, body, **common
                )
            return self._custom.patch_cluster_custom_object_status(
                kind.group, kind.version, kind.plural, name, body, **common
            )

    def list_events(self, namespace: str, field_selector: str) -> list[dict[str, Any]]:
        """Events of one namespace matching a field selector (never watched, never cached)."""
        API_REQUESTS.labels("list").inc()
        with _translated():
            response = self._core.list_namespaced_event(
                namespace,
                field_selector=field_selector,
                limit=500,
                _preload_content=False,  # raw JSON: no model objects to convert back
                _request_timeout=self._timeout,
            )
        return list(json.loads(response.data).get("items") or [])

    def post_event(
        self,
        involved: Mapping[str, Any],
        type_: str,
        reason: str,
        message: str,
        annotations: Mapping[str, str] | None = None,
    ) -> None:
        """Record a core/v1 Event about ``involved`` (best effort: never raises a
        KubeError; NotLeader, like every write, when this process may not write)."""
        meta = involved["metadata"]
        self._write("create_event", EVENT, meta["namespace"], meta["name"])
        now = datetime.now(UTC)
        event = kubernetes.client.CoreV1Event(
            metadata=kubernetes.client.V1ObjectMeta(
                generate_name=f"{meta['name']}.",
                namespace=meta["namespace"],
                annotations=dict(annotations) if annotations else None,
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
            with _translated():
                self._core.create_namespaced_event(
                    meta["namespace"],
                    event,
                    _preload_content=False,
                    _request_timeout=self._timeout,
                ).read()  # the answer is not needed; reading it frees the connection
        except errors.KubeError as err:
            log.warning("could not record event %s on %s: %s", reason, meta["name"], err)

    # -- list and watch (the informers: kube/informer.py) ----------------------------

    def list_objects(
        self,
        kind: Kind,
        namespace: str | None,
        *,
        label_selector: str = "",
        field_selector: str = "",
        page_size: int = LIST_PAGE_SIZE,
    ) -> tuple[list[dict[str, Any]], str]:
        """Every object of ``kind`` (in ``namespace``, or all namespaces with None) that
        the selectors match, and the list's resourceVersion to watch from (see
        `list_pages`, which this gathers)."""
        items: list[dict[str, Any]] = []
        version = ""
        for page, page_version in self.list_pages(
            kind,
            namespace,
            label_selector=label_selector,
            field_selector=field_selector,
            page_size=page_size,
        ):
            items.extend(page)
            version = page_version  # "" until the last page
        return items, version

    def list_pages(
        self,
        kind: Kind,
        namespace: str | None,
        *,
        label_selector: str = "",
        field_selector: str = "",
        page_size: int = LIST_PAGE_SIZE,
    ) -> Iterator[tuple[list[dict[str, Any]], str]]:
        """The list, one page at a time: (objects, the list's resourceVersion on its
        last page, "" before).

        Paged (``limit``/``continue``), so one answer never holds a big fleet's pods,
        and handed on page by page, so a caller that keeps projections never holds
        every full body at once (an operator restart at 3,000 ModelDeployments lists
        six resources of 3,000 objects together). The pages of one list are one
        consistent snapshot. NotFound: the cluster does not serve the kind (yet).
        Gone: a page's continue token expired (list again).
        """
        token = ""
        while True:
            query = [("limit", str(page_size))]
            if label_selector:
                query.append(("labelSelector", label_selector))
            if field_selector:
                query.append(("fieldSelector", field_selector))
            if token:
                query.append(("continue", token))
            API_REQUESTS.labels("list").inc()
            page = self._request("GET", _collection_path(kind, namespace), query=query)
            items = page.get("items") or []
            for item in items:
                # The items of a list carry no apiVersion and kind (the list
                # does); a watched object does. Stores see one shape.
                item.setdefault("apiVersion", kind.api_version)
                item.setdefault("kind", kind.kind)
            meta = page.get("metadata") or {}
            token = meta.get("continue") or ""
            if not token:
                yield items, str(meta.get("resourceVersion") or "")
                return
            yield items, ""

    def watch_objects(
        self,
        kind: Kind,
        namespace: str | None,
        *,
        resource_version: str,
        label_selector: str = "",
        field_selector: str = "",
        timeout_s: int = WATCH_TIMEOUT_S,
    ) -> Iterator[tuple[str, dict[str, Any]]]:
        """The changes after ``resource_version``: (type, object) pairs, BOOKMARK
        included (its object carries only the resourceVersion reached).

        Ends when the server closes the watch (after ``timeout_s``, or when the
        kind stops being served); the caller watches again from the last version
        it saw. Raises Gone when that version is compacted (an HTTP 410, or an
        ERROR event with code 410 inside the stream).
        """
        query = [
            ("watch", "true"),
            ("resourceVersion", resource_version),
            ("allowWatchBookmarks", "true"),
            ("timeoutSeconds", str(timeout_s)),
        ]
        if label_selector:
            query.append(("labelSelector", label_selector))
        if field_selector:
            query.append(("fieldSelector", field_selector))
        API_REQUESTS.labels("watch").inc()
        method, url, headers, _, _ = self.api_client.param_serialize(
            "GET",
            _collection_path(kind, namespace),
            query_params=query,
            header_params={"Accept": _JSON},
            auth_settings=["BearerToken"],
        )
        with _translated():
            # A read timeout past the server's own: a silent connection (a proxy
            # that dropped it) ends the watch instead of hanging forever.
            response = self.api_client.call_api(
                method, url, header_params=headers, _request_timeout=(10, timeout_s + 30)
            )
        if response.status >= 400:
            raise errors.from_status(
                response.status, response.read(), http_reason=response.reason or ""
            )
        raw = response.response  # urllib3's, not preloaded: read as it streams
        ended = False
        try:
            with _translated():
                for line in _lines(raw):
                    event = json.loads(line)
                    type_, obj = event.get("type"), event.get("object") or {}
                    if type_ == "ERROR":
                        code = int(obj.get("code") or 500)
                        raise errors.from_status(code, obj)
                    yield str(type_), obj
            ended = True
        finally:
            if not ended:
                # Left mid-stream: the connection still carries the rest of the
                # watch, so it is closed rather than handed to the next request.
                raw.close()
            raw.release_conn()

    # -- the leader election record (never fenced: it is how a replica becomes leader) --

    def get_lease(self, namespace: str, name: str) -> dict[str, Any] | None:
        API_REQUESTS.labels("get").inc()
        try:
            return self._request("GET", object_path(LEASE, namespace, name))
        except errors.NotFound:
            return None

    def create_lease(self, lease: Mapping[str, Any]) -> dict[str, Any]:
        """AlreadyExists when another replica created it first."""
        API_REQUESTS.labels("create").inc()
        return self._request(
            "POST", object_path(LEASE, lease["metadata"]["namespace"]), body=dict(lease)
        )

    def replace_lease(self, lease: Mapping[str, Any]) -> dict[str, Any]:
        """PUT carrying the resourceVersion read: Conflict when someone wrote in between
        (the optimistic lock two candidates race on)."""
        meta = lease["metadata"]
        API_REQUESTS.labels("update").inc()
        return self._request(
            "PUT", object_path(LEASE, meta["namespace"], meta["name"]), body=dict(lease)
        )

    # -- storage credentials (read only, by name) -------------------------------------

    def read_secret(
        self, namespace: str, name: str, keys: Collection[str], *, max_bytes: int = SECRET_MAX_BYTES
    ) -> dict[str, str] | None:
        """The values of ``keys`` that Secret ``namespace``/``name`` holds, decoded; None
        when it does not exist. Only those keys are decoded and kept, values are never
        logged, and an answer larger than ``max_bytes`` is refused unread
        (KubeError "SecretTooLarge"), as is a value that is not UTF-8 text
        ("InvalidSecret"). Forbidden when RBAC does not let the operator get it."""
        API_REQUESTS.labels("get").inc()
        method, url, headers, _, _ = self.api_client.param_serialize(
            "GET",
            object_path(SECRET, namespace, name),
            header_params={"Accept": _JSON},
            auth_settings=["BearerToken"],
        )
        with _translated():
            response = self.api_client.call_api(
                method, url, header_params=headers, _request_timeout=self._timeout
            )
            raw = response.response  # not preloaded: read no more than the cap
            data = b""
            try:
                data = raw.read(max_bytes + 1)
            finally:
                if len(data) > max_bytes:
                    raw.close()  # the rest is unread: this connection cannot be reused
                raw.release_conn()
        if response.status == 404:
            return None
        if response.status >= 400:
            raise errors.from_status(response.status, data, http_reason=response.reason or "")
        where = f"Secret {namespace}/{name}"
        if len(data) > max_bytes:
            raise errors.KubeError("SecretTooLarge", f"{where} is over {max_bytes} bytes", 0)
        try:
            stored = json.loads(data).get("data") or {}
            return {
                key: base64.b64decode(stored[key], validate=True).decode()
                for key in keys
                if isinstance(stored.get(key), str)
            }
        except (ValueError, binascii.Error, AttributeError):  # UnicodeDecodeError is a ValueError
            # Say which object, never what it holds.
            raise errors.KubeError(
                "InvalidSecret", f"{where}: a value is not UTF-8 text", 0
            ) from None

    # -- discovery ------------------------------------------------------------------

    def api_available(self, kind: Kind) -> bool:
        """Whether the cluster serves ``kind`` (cached for `discovery_ttl_s`)."""
        now = self._clock()
        cached = self._api_cache.get(kind)
        if cached and now - cached[0] < self._discovery_ttl_s:
            return cached[1]
        API_REQUESTS.labels("discovery").inc()
        try:
            with _translated():
                if kind.group:
                    found = self._custom.get_api_resources(
                        kind.group, kind.version, _request_timeout=self._timeout
                    )
                else:
                    found = self._core.get_api_resources(_request_timeout=self._timeout)
            available = any(r.kind == kind.kind for r in found.resources)
        except errors.NotFound:
            available = False
        self._api_cache[kind] = (now, available)
        return available

    def forget_api_cache(self) -> None:
        """Drop cached discovery answers (an optional CRD was added or removed)."""
        self._api_cache.clear()

    # -- transport ------------------------------------------------------------------

    def _request(
        self,
        method: str,
        path: str,
        *,
        query: list[tuple[str, str]] | None = None,
        body: Any = None,
        content_type: str = _JSON,
    ) -> dict[str, Any]:
        method, url, headers, payload, _ = self.api_client.param_serialize(
            method,
            path,
            query_params=query or [],
            header_params={"Content-Type": content_type, "Accept": _JSON},
            body=body,
            auth_settings=["BearerToken"],
        )
        with _translated():
            response = self.api_client.call_api(
                method, url, header_params=headers, body=payload, _request_timeout=self._timeout
            )
            data = response.read()
        if response.status >= 400:
            raise errors.from_status(response.status, data, http_reason=response.reason or "")
        return json.loads(data) if data else {}


@contextmanager
def _translated() -> Iterator[None]:
    """Turn the client's and urllib3's exceptions into modelops.kube errors."""
    try:
        yield
    except kubernetes.client.ApiException as exc:
        if not exc.status:  # no HTTP answer (e.g. a TLS failure)
            raise errors.unreachable(exc) from exc
        raise errors.from_status(exc.status, exc.body, http_reason=exc.reason or "") from exc
    except urllib3.exceptions.HTTPError as exc:  # refused, reset, timed out
        raise errors.unreachable(exc) from exc


# Connections kept to the API server. Reconciles run on several threads at once
# (controllers.settings.workers); the client's default pool (5 per CPU) would
# make the extra threads queue for a connection.
CONNECTION_POOL_SIZE = 64


def from_kubeconfig(config_file: str | None = None, context: str | None = None) -> tuple[Kube, str]:
    """A Kube for a command run by a person (the kubectl plugin): the kubeconfig as
    kubectl reads it ($KUBECONFIG, else ~/.kube/config) and its context's namespace
    ("default" when the context names none)."""
    try:
        contexts, active = kubernetes.config.list_kube_config_contexts(config_file=config_file)
        chosen = next((c for c in contexts if c["name"] == context), None) if context else active
        if chosen is None:
            raise kubernetes.config.ConfigException(f"no context {context!r} in the kubeconfig")
        api_client = kubernetes.config.new_client_from_config(
            config_file=config_file, context=chosen["name"]
        )
    except kubernetes.config.ConfigException as err:
        raise errors.KubeError("InvalidKubeconfig", str(err), 0) from None
    namespace = (chosen.get("context") or {}).get("namespace") or "default"
    return Kube(api_client), namespace


def _default_api_client() -> kubernetes.client.ApiClient:
    try:
        kubernetes.config.load_incluster_config()
    except kubernetes.config.ConfigException:
        kubernetes.config.load_kube_config()
    configuration = kubernetes.client.Configuration.get_default_copy()
    configuration.connection_pool_maxsize = CONNECTION_POOL_SIZE
    return kubernetes.client.ApiClient(configuration)
