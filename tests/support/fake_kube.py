"""An in-memory stand-in for `modelops.kube.Kube` that records every call.

For unit tests of the controllers: objects live in a dict, the fake assigns
uids, generations and resourceVersions the way the API server does, raises the
same `modelops.kube.errors` (NotFound, AlreadyExists, PreconditionFailed with
the API server's own wording), and appends one `Call(verb, kind, namespace,
name)` per request to `calls`, so a test asserts a scenario's API budget:

    kube = FakeKube()
    reconcile(..., kube)
    assert kube.count() == 4
    assert kube.count("apply", "Deployment") == 1

Simplifications, on purpose (tests of those behaviours run against the real
API server in tests/integration/test_kube_client.py):
- apply merges the applied fields into the live object (maps deep-merged,
  lists replaced); field ownership and `force` are not modelled;
- no garbage collection, admission or defaulting; `generation` moves when
  anything outside metadata and status changes;
- discovery answers come from `served`, and are cached until
  `forget_api_cache` (the real client caches them for 30 s).
A fault the test wants (an Invalid apply, a server outage) is queued with
`fail(...)`.

List and watch (for the informers): every stored change is kept in a history
of (resourceVersion, type, object); `watch_objects` replays the history after
the version asked for, then a BOOKMARK at the newest version, and ends (as the
API server does at the watch's timeout). `compact` forgets history the way
etcd compaction does: a watch from an older version raises Gone.
"""

from __future__ import annotations

import base64
import copy
import json
import threading
import time
import uuid
from collections.abc import Collection, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, NamedTuple

from modelops.api.kinds import KINDS, SCALED_OBJECT, SECRET, Kind, kind_of_object
from modelops.kube import errors


class Call(NamedTuple):
    verb: str
    kind: str
    namespace: str | None
    name: str | None


@dataclass
class _Fault:
    verb: str | None
    kind: str | None
    name: str | None
    error: errors.KubeError
    times: int
    skip: int = 0  # matching calls let through first


class FakeKube:
    """The `KubeApi` interface over dicts; every call is recorded in `calls`."""

    def __init__(self, served: set[Kind] | None = None) -> None:
        self.objects: dict[tuple[Kind, str | None, str], dict[str, Any]] = {}
        self.events: list[dict[str, Any]] = []
        self.calls: list[Call] = []
        # KEDA is not installed unless a test says so, as on a bare cluster.
        self.served: set[Kind] = set(KINDS) - {SCALED_OBJECT} if served is None else served
        self._discovered: dict[Kind, bool] = {}
        self._faults: list[_Fault] = []
        # The last configuration `apply` sent per object: the fields it owns.
        self._applied_configs: dict[tuple[Kind, str | None, str], dict[str, Any]] = {}
        self._rv = 0
        self._rv_lock = threading.Lock()  # informer threads read while a test writes
        # A watch with nothing new waits this long before it ends (the real one
        # waits for its timeout): informer threads in tests do not spin.
        self.watch_wait_s = 0.0
        # Objects per list page when the caller does not say (Kube's default).
        self.list_page_size = 500
        # (resourceVersion, type, kind, object copy): what a watch replays.
        self.history: list[tuple[int, str, Kind | None, dict[str, Any]]] = []
        self.compacted = 0
        # Leader election's fence, as on Kube (None: every write goes).
        self.fence: Any = None
        self.leases: dict[tuple[str, str], dict[str, Any]] = {}

    # -- test helpers (not recorded) ------------------------------------------------

    def put(self, obj: Mapping[str, Any], *, uid: str | None = None) -> dict[str, Any]:
        """Store ``obj`` as if someone else had created it; returns the stored copy."""
        kind = kind_of_object(obj)
        live = copy.deepcopy(dict(obj))
        meta = live.setdefault("metadata", {})
        meta["uid"] = uid or meta.get("uid") or str(uuid.uuid4())
        meta.setdefault("generation", 1)
        meta.setdefault("creationTimestamp", _now())
        meta["resourceVersion"] = str(self._bump())
        key = (kind, meta.get("namespace"), meta["name"])
        self._emit("MODIFIED" if key in self.objects else "ADDED", kind, live)
        self.objects[key] = live
        self._applied_configs.pop(key, None)
        return copy.deepcopy(live)

    def remove(self, kind: Kind, namespace: str | None, name: str) -> None:
        """Delete as someone else would (not recorded)."""
        live = self.objects.pop((kind, namespace, name))
        live["metadata"]["resourceVersion"] = str(self._bump())
        self._emit("DELETED", kind, live)

    def compact(self) -> None:
        """Forget the watch history up to now, as etcd compaction does."""
        self.compacted = self._current_rv()
        self.history.clear()

    def touch_other(self, times: int = 1) -> None:
        """Changes the API server makes elsewhere (other objects, other tenants):
        the resourceVersion moves on without an event for our watches."""
        for _ in range(times):
            self.history.append((self._bump(), "OTHER", None, {}))

    def live(self, kind: Kind, namespace: str | None, name: str) -> dict[str, Any] | None:
        """The stored object (a copy), without recording a call."""
        found = self.objects.get((kind, namespace, name))
        return copy.deepcopy(found) if found is not None else None

    def fail(
        self,
        error: errors.KubeError,
        *,
        verb: str | None = None,
        kind: str | None = None,
        name: str | None = None,
        times: int = 1,
        skip: int = 0,
    ) -> None:
        """Make the next ``times`` matching calls raise ``error`` (after being recorded),
        after letting ``skip`` of them through (a list failing on its second page)."""
        self._faults.append(_Fault(verb, kind, name, error, times, skip))

    def count(self, verb: str | None = None, kind: str | None = None) -> int:
        """Recorded calls, all or of one verb and/or kind (the kind's name, e.g. "Service")."""
        return sum(
            1
            for call in self.calls
            if (verb is None or call.verb == verb) and (kind is None or call.kind == kind)
        )

    def reset_calls(self) -> None:
        self.calls.clear()

    # -- KubeApi --------------------------------------------------------------------

    def apply(
        self,
        obj: Mapping[str, Any],
        *,
        uid_precondition: str | None = None,
        create_only: bool = False,
        force: bool = True,
        field_manager: str = "modelops",
    ) -> dict[str, Any]:
        if uid_precondition is not None and create_only:
            raise ValueError("an object cannot both exist with a uid and not exist")
        kind = kind_of_object(obj)
        meta = obj["metadata"]
        namespace, name = meta.get("namespace"), meta["name"]
        self._record("apply", kind, namespace, name)
        self._require_served(kind)
        key = (kind, namespace, name)
        live = self.objects.get(key)
        config = {k: copy.deepcopy(v) for k, v in obj.items() if k != "status"}
        if create_only and live is not None:
            raise errors.AlreadyExists(
                "AlreadyExists", f'{_resource(kind)} "{name}" already exists', 409
            )
        if uid_precondition is not None:
            if live is None:
                # The API server's own answer: it never creates an object for
                # an apply that names a uid.
                raise errors.PreconditionFailed(
                    "Conflict",
                    _conflict_message(
                        kind,
                        name,
                        f"uid mismatch: the provided object specified uid {uid_precondition}, "
                        "and no existing object was found",
                    ),
                    409,
                )
            if live["metadata"]["uid"] != uid_precondition:
                # Answered as an attempt to change an immutable field (422),
                # which Kube.apply reports as PreconditionFailed.
                detail = f'Invalid value: "{uid_precondition}": field is immutable'
                raise errors.PreconditionFailed(
                    "Invalid",
                    f'{_qualified_kind(kind)} "{name}" is invalid: metadata.uid: {detail}',
                    422,
                    (errors.Cause("metadata.uid", "FieldValueInvalid", detail),),
                )
        # Like server-side apply for a single field manager: what the previous
        # apply set and this one leaves out is removed; what `create` or others
        # set stays (create's fields are owned by an update, as on the server).
        previous = self._applied_configs.get(key, {})
        self._applied_configs[key] = config
        if live is None:
            return self._store_new(kind, config)
        merged = _merge(_prune(live, previous, config), config)
        return self._store_update(key, live, merged)

    def create(self, obj: Mapping[str, Any]) -> dict[str, Any]:
        kind = kind_of_object(obj)
        meta = obj["metadata"]
        namespace = meta.get("namespace")
        name = meta.get("name") or f"{meta.get('generateName', '')}{uuid.uuid4().hex[:5]}"
        self._record("create", kind, namespace, name)
        self._require_served(kind)
        if (kind, namespace, name) in self.objects:
            raise errors.AlreadyExists(
                "AlreadyExists", f'{_resource(kind)} "{name}" already exists', 409
            )
        self._applied_configs.pop((kind, namespace, name), None)
        return self._store_new(kind, {**obj, "metadata": {**meta, "name": name}})

    def get(self, kind: Kind, namespace: str | None, name: str) -> dict[str, Any] | None:
        self._record("get", kind, namespace, name)
        return self.live(kind, namespace, name)

    def merge_patch(
        self, kind: Kind, namespace: str | None, name: str, patch: Mapping[str, Any]
    ) -> dict[str, Any]:
        self._record("patch", kind, namespace, name)
        key = (kind, namespace, name)
        live = self._existing(key)
        return self._store_update(key, live, _merge(live, patch, delete_nulls=True))

    def delete(self, kind: Kind, namespace: str | None, name: str, *, uid: str) -> bool:
        self._record("delete", kind, namespace, name)
        key = (kind, namespace, name)
        live = self.objects.get(key)
        if live is None or kind not in self.served:
            return False
        if live["metadata"]["uid"] != uid:
            raise errors.PreconditionFailed(
                "Conflict",
                f'Operation cannot be fulfilled on {_qualified_kind(kind)} "{name}": the UID in '
                f"the precondition ({uid}) does not match the UID in record "
                f"({live['metadata']['uid']}). The object might have been deleted and then "
                "recreated",
                409,
            )
        del self.objects[key]
        self._applied_configs.pop(key, None)
        live["metadata"]["resourceVersion"] = str(self._bump())
        self._emit("DELETED", kind, live)
        return True

    def patch_status(
        self, kind: Kind, namespace: str | None, name: str, status: Mapping[str, Any]
    ) -> dict[str, Any]:
        self._record("patch_status", kind, namespace, name)
        key = (kind, namespace, name)
        live = self._existing(key)
        patched = _merge(live, {"status": dict(status)}, delete_nulls=True)
        patched["metadata"]["generation"] = live["metadata"].get("generation", 1)
        patched["metadata"]["resourceVersion"] = str(self._bump())
        self.objects[key] = patched
        self._emit("MODIFIED", kind, patched)
        return copy.deepcopy(patched)

    def list_events(self, namespace: str, field_selector: str) -> list[dict[str, Any]]:
        self._record("list", _EVENT_KIND, namespace, None)
        return [
            copy.deepcopy(e)
            for e in self.events
            if e["metadata"]["namespace"] == namespace and _selected(e, field_selector)
        ]

    def post_event(
        self,
        involved: Mapping[str, Any],
        type_: str,
        reason: str,
        message: str,
        annotations: Mapping[str, str] | None = None,
    ) -> None:
        meta = involved["metadata"]
        try:
            self._record("create_event", _EVENT_KIND, meta["namespace"], meta["name"])
        except errors.KubeError:
            return  # never raises, like the real one
        self.events.append(
            {
                "metadata": {
                    "namespace": meta["namespace"],
                    "name": f"{meta['name']}.{len(self.events)}",
                    "annotations": dict(annotations or {}),
                },
                "involvedObject": {
                    "apiVersion": involved.get("apiVersion"),
                    "kind": involved.get("kind"),
                    "name": meta["name"],
                    "namespace": meta["namespace"],
                    "uid": meta.get("uid"),
                },
                "type": type_,
                "reason": reason,
                "message": message[:1024],
            }
        )

    def read_secret(
        self, namespace: str, name: str, keys: Collection[str], *, max_bytes: int = 65536
    ) -> dict[str, str] | None:
        self._record("get", SECRET, namespace, name)
        live = self.objects.get((SECRET, namespace, name))
        if live is None:
            return None
        if len(json.dumps(live)) > max_bytes:
            raise errors.KubeError(
                "SecretTooLarge", f"Secret {namespace}/{name} is over {max_bytes} bytes", 0
            )
        data = live.get("data") or {}
        strings = live.get("stringData") or {}  # the API server would have encoded these
        return {
            k: strings[k] if k in strings else base64.b64decode(data[k]).decode()
            for k in keys
            if k in strings or k in data
        }

    def api_available(self, kind: Kind) -> bool:
        if kind not in self._discovered:
            self._record("discovery", kind, None, None)
            self._discovered[kind] = kind in self.served
        return self._discovered[kind]

    def forget_api_cache(self) -> None:
        self._discovered.clear()

    # -- list and watch --------------------------------------------------------------

    def list_objects(
        self,
        kind: Kind,
        namespace: str | None,
        *,
        label_selector: str = "",
        field_selector: str = "",
    ) -> tuple[list[dict[str, Any]], str]:
        self._record("list", kind, namespace, None)
        self._require_served(kind)
        items = [
            copy.deepcopy(obj)
            for (k, ns, _), obj in sorted(self.objects.items(), key=lambda kv: str(kv[0][1:]))
            if k == kind
            and namespace in (None, ns)
            and _labels_match(obj, label_selector)
            and _selected(obj, field_selector)
        ]
        return items, str(self._current_rv())

    def list_pages(
        self,
        kind: Kind,
        namespace: str | None,
        *,
        label_selector: str = "",
        field_selector: str = "",
        page_size: int | None = None,
    ) -> Iterator[tuple[list[dict[str, Any]], str]]:
        """`list_objects` in pages as Kube.list_pages hands them on (one request
        recorded per page; the version comes with the last page)."""
        page_size = page_size or self.list_page_size
        items, version = self.list_objects(
            kind, namespace, label_selector=label_selector, field_selector=field_selector
        )
        pages = [items[i : i + page_size] for i in range(0, len(items), page_size)] or [[]]
        for i, page in enumerate(pages):
            if i:
                self._record("list", kind, namespace, None)
            yield page, version if i == len(pages) - 1 else ""

    def watch_objects(
        self,
        kind: Kind,
        namespace: str | None,
        *,
        resource_version: str,
        label_selector: str = "",
        field_selector: str = "",
        timeout_s: int = 300,
    ) -> Iterator[tuple[str, dict[str, Any]]]:
        self._record("watch", kind, namespace, None)
        self._require_served(kind)
        since = int(resource_version)
        if since < self.compacted:
            raise errors.Gone(
                "Expired", f"too old resource version: {since} ({self.compacted})", 410
            )
        return self._replay(kind, namespace, since, label_selector, field_selector)

    def _replay(
        self, kind: Kind, namespace: str | None, since: int, labels: str, fields: str
    ) -> Iterator[tuple[str, dict[str, Any]]]:
        # One snapshot: the bookmark says exactly how far it went (a change made
        # while this watch waits is for the next watch, not skipped by it).
        snapshot = list(self.history)
        reached = max([since, *(entry[0] for entry in snapshot)])
        for rv, type_, k, obj in snapshot:
            if rv <= since or k != kind:
                continue
            if namespace not in (None, obj["metadata"].get("namespace")):
                continue
            if _labels_match(obj, labels) and _selected(obj, fields):
                yield type_, copy.deepcopy(obj)
        if self.watch_wait_s:
            time.sleep(self.watch_wait_s)
        # What the API server sends with allowWatchBookmarks: the version reached.
        yield "BOOKMARK", {"metadata": {"resourceVersion": str(reached)}}

    # -- the leader election record (unfenced, as on Kube) -------------------------------

    def get_lease(self, namespace: str, name: str) -> dict[str, Any] | None:
        self._record("get", "Lease", namespace, name)
        found = self.leases.get((namespace, name))
        return copy.deepcopy(found) if found is not None else None

    def create_lease(self, lease: Mapping[str, Any]) -> dict[str, Any]:
        meta = lease["metadata"]
        self._record("create_lease", "Lease", meta["namespace"], meta["name"])
        key = (meta["namespace"], meta["name"])
        if key in self.leases:
            raise errors.AlreadyExists("AlreadyExists", f'leases "{key[1]}" already exists', 409)
        stored = copy.deepcopy(dict(lease))
        stored["metadata"]["resourceVersion"] = str(self._bump())
        self.leases[key] = stored
        return copy.deepcopy(stored)

    def replace_lease(self, lease: Mapping[str, Any]) -> dict[str, Any]:
        meta = lease["metadata"]
        self._record("update_lease", "Lease", meta["namespace"], meta["name"])
        key = (meta["namespace"], meta["name"])
        live = self._existing_lease(key)
        if meta.get("resourceVersion") != live["metadata"]["resourceVersion"]:
            raise errors.Conflict(
                "Conflict",
                f'Operation cannot be fulfilled on leases.coordination.k8s.io "{key[1]}": '
                "the object has been modified; please apply your changes to the latest "
                "version and try again",
                409,
            )
        stored = copy.deepcopy(dict(lease))
        stored["metadata"]["resourceVersion"] = str(self._bump())
        self.leases[key] = stored
        return copy.deepcopy(stored)

    def _existing_lease(self, key: tuple[str, str]) -> dict[str, Any]:
        if key not in self.leases:
            raise errors.NotFound(
                "NotFound", f'leases.coordination.k8s.io "{key[1]}" not found', 404
            )
        return self.leases[key]

    # -- internals ----------------------------------------------------------------

    def _emit(self, type_: str, kind: Kind, obj: Mapping[str, Any]) -> None:
        rv = int(obj["metadata"]["resourceVersion"])
        self.history.append((rv, type_, kind, copy.deepcopy(dict(obj))))

    def _current_rv(self) -> int:
        with self._rv_lock:
            return self._rv

    def _bump(self) -> int:
        with self._rv_lock:
            self._rv += 1
            return self._rv

    def _record(self, verb: str, kind: Kind | str, namespace: str | None, name: str | None) -> None:
        if self.fence is not None and verb in _WRITES:
            self.fence()  # refused before it is sent, so not recorded
        kind_name = kind if isinstance(kind, str) else kind.kind
        self.calls.append(Call(verb, kind_name, namespace, name))
        for fault in self._faults:
            if (
                fault.times > 0
                and fault.verb in (None, verb)
                and fault.kind in (None, kind_name)
                and fault.name in (None, name)
            ):
                if fault.skip > 0:
                    fault.skip -= 1
                    continue
                fault.times -= 1
                raise fault.error

    def _require_served(self, kind: Kind) -> None:
        if kind not in self.served:
            raise errors.NotFound(
                "NotFound", "the server could not find the requested resource", 404
            )

    def _existing(self, key: tuple[Kind, str | None, str]) -> dict[str, Any]:
        live = self.objects.get(key)
        if live is None:
            kind, _, name = key
            raise errors.NotFound("NotFound", f'{_resource(kind)} "{name}" not found', 404)
        return live

    def _store_new(self, kind: Kind, obj: Mapping[str, Any]) -> dict[str, Any]:
        live = copy.deepcopy(dict(obj))
        meta = live["metadata"]
        meta.update(
            uid=str(uuid.uuid4()),
            generation=1,
            resourceVersion=str(self._bump()),
            creationTimestamp=_now(),
        )
        self.objects[(kind, meta.get("namespace"), meta["name"])] = live
        self._emit("ADDED", kind, live)
        return copy.deepcopy(live)

    def _store_update(
        self, key: tuple[Kind, str | None, str], live: dict[str, Any], new: dict[str, Any]
    ) -> dict[str, Any]:
        # What only the server sets stays the server's.
        for field in ("uid", "creationTimestamp", "resourceVersion", "generation"):
            if field in live["metadata"]:
                new["metadata"][field] = live["metadata"][field]
        if new != live:
            if _without(new, "metadata", "status") != _without(live, "metadata", "status"):
                new["metadata"]["generation"] = live["metadata"].get("generation", 1) + 1
            new["metadata"]["resourceVersion"] = str(self._bump())
            self._emit("MODIFIED", key[0], new)
        self.objects[key] = new
        return copy.deepcopy(new)


_EVENT_KIND = "Event"
_WRITES = frozenset({"apply", "create", "patch", "delete", "patch_status", "create_event"})


def _conflict_message(kind: Kind, name: str, detail: str) -> str:
    return f'Operation cannot be fulfilled on {_resource(kind)} "{name}": {detail}'


def _resource(kind: Kind) -> str:
    """As the API server names a resource in messages: "services", "deployments.apps"."""
    return kind.plural if not kind.group else f"{kind.plural}.{kind.group}"


def _qualified_kind(kind: Kind) -> str:
    """As the API server names a kind in messages: "Service", "Deployment.apps"."""
    return kind.kind if not kind.group else f"{kind.kind}.{kind.group}"


def _prune(
    live: Mapping[str, Any], previous: Mapping[str, Any], current: Mapping[str, Any]
) -> dict[str, Any]:
    """``live`` without the fields ``previous`` set and ``current`` no longer does."""
    out = copy.deepcopy(dict(live))
    for key, before in previous.items():
        if key not in current:
            out.pop(key, None)
        elif all(isinstance(v, Mapping) for v in (before, current[key], out.get(key))):
            out[key] = _prune(out[key], before, current[key])
    return out


def _merge(
    live: Mapping[str, Any], patch: Mapping[str, Any], *, delete_nulls: bool = False
) -> dict[str, Any]:
    out = copy.deepcopy(dict(live))
    for key, value in patch.items():
        if value is None and delete_nulls:
            out.pop(key, None)
        elif isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = _merge(out[key], value, delete_nulls=delete_nulls)
        else:
            out[key] = copy.deepcopy(value)
    return out


def _without(obj: Mapping[str, Any], *keys: str) -> dict[str, Any]:
    return {k: v for k, v in obj.items() if k not in keys}


def _selected(obj: Mapping[str, Any], selector: str) -> bool:
    """A field selector of `path=value` / `path!=value` terms, comma-separated (ANDed)."""
    for term in filter(None, (t.strip() for t in selector.split(","))):
        negate = "!=" in term
        path, _, wanted = term.partition("!=" if negate else "=")
        wanted = wanted.lstrip("=")
        value: Any = obj
        for part in path.split("."):
            value = value.get(part) if isinstance(value, Mapping) else None
        if (str(value) == wanted) == negate:
            return False
    return True


def _labels_match(obj: Mapping[str, Any], selector: str) -> bool:
    """A label selector of `key=value`, `key!=value` and `key` (exists) terms."""
    labels = (obj.get("metadata") or {}).get("labels") or {}
    for term in filter(None, (t.strip() for t in selector.split(","))):
        if "!=" in term:
            key, _, value = term.partition("!=")
            if labels.get(key) == value:
                return False
        elif "=" in term:
            key, _, value = term.partition("=")
            if labels.get(key) != value.lstrip("="):
                return False
        elif term not in labels:
            return False
    return True


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
