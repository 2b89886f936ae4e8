"""The operator's informer stores: projections of watched objects, by the key a
reconcile looks them up with (the owner's namespace and name).

Pure bookkeeping, no I/O: an informer (kube/informer.py) feeds a store the
objects it lists and the events it watches; the store answers what changed
for whom (`Change`: an owner key and what happened), which is what the work
queue is fed with. One watch may feed several stores (pods feed the
ModelDeployment pods store and the TrainingJob pods store), each picking its
objects by label (``select``).

- A store keeps projections (render/projections.py), never bodies.
- An update whose projection did not change (a pod's status field the planner
  never reads, or only the resourceVersion of an object with a generation) is
  stored but reported as no change: nothing a reconcile reads moved, so
  nothing is queued.
- `replace` (a relist) reports the objects that appeared, changed or
  disappeared since the store last heard of them, so deletes missed while the
  watch was down are not lost.
- Reads may come from reconcile threads while the informer's thread writes:
  one lock around both; reads return copies of the lists, never live views.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

Key = tuple[str, str]
ObjectKey = tuple[str, str]  # the object's own (namespace, name)
IndexFn = Callable[[Mapping[str, Any]], tuple[Key, Any] | None]
Select = Callable[[Mapping[str, str]], bool]

ADDED, MODIFIED, DELETED = "ADDED", "MODIFIED", "DELETED"


@dataclass(frozen=True)
class Change:
    key: Key
    type: str  # ADDED, MODIFIED or DELETED (of the object, as seen under this key)
    resource_version: str | None = None


def _everything(_: Mapping[str, str]) -> bool:
    return True


def _object_key(obj: Mapping[str, Any]) -> ObjectKey:
    meta = obj.get("metadata") or {}
    return (meta.get("namespace") or "", meta.get("name") or "")


def _version(obj: Mapping[str, Any]) -> str | None:
    return (obj.get("metadata") or {}).get("resourceVersion")


def _same(a: Any, b: Any) -> bool:
    """Nothing a reconcile reads changed: equal projections, or equal but for the
    resourceVersion of an object that has a generation.

    The resourceVersion counts where there is no generation: for a Service or
    ConfigMap it is what shows an edit made behind the operator's back
    (render/ownership.py's fingerprint). Where a generation exists, it moves
    on every spec edit and the resourceVersion is not read."""
    if a == b:
        return True
    if not (isinstance(a, Mapping) and isinstance(b, Mapping)):
        return False
    meta_a, meta_b = a.get("metadata"), b.get("metadata")
    if not (isinstance(meta_a, Mapping) and isinstance(meta_b, Mapping)):
        return False
    if meta_a.get("generation") is None or meta_b.get("generation") is None:
        return False
    strip = "resourceVersion"
    return {**a, "metadata": {k: v for k, v in meta_a.items() if k != strip}} == {
        **b,
        "metadata": {k: v for k, v in meta_b.items() if k != strip},
    }


class Store:
    """Projections of one resource by key; `synced` once its first full list is in."""

    def __init__(self, name: str, index: IndexFn, select: Select = _everything) -> None:
        self.name = name
        self._index = index
        self._select = select
        self._objects: dict[ObjectKey, tuple[Key, Any]] = {}
        self._by_key: dict[Key, dict[ObjectKey, Any]] = {}
        self._lock = threading.Lock()
        self.synced = False

    # -- writes (the informer's thread) -------------------------------------------

    def upsert(self, obj: Mapping[str, Any]) -> list[Change]:
        with self._lock:
            return self._upsert(obj)

    def delete(self, obj: Mapping[str, Any]) -> list[Change]:
        with self._lock:
            return self._drop(_object_key(obj), _version(obj))

    def replace(self, namespace: str | None, objects: Iterable[Mapping[str, Any]]) -> list[Change]:
        """A full list of ``namespace`` (None: of every namespace): what is not in it is gone."""
        relist = self.relist(namespace)
        changes: list[Change] = []
        for obj in objects:
            changes.extend(relist.add(obj))
        return changes + relist.finish()

    def relist(self, namespace: str | None) -> Relist:
        """A full list of ``namespace`` taken in as it arrives (see `Relist`)."""
        return Relist(self, namespace)

    def clear(self, namespace: str | None = None) -> list[Change]:
        """Forget every object (of ``namespace``): its kind is no longer served.
        The store stays synced: handlers that use it go on, seeing none."""
        return self.replace(namespace, ())

    # -- reads (any thread) -----------------------------------------------------------

    def get(self, key: Key, default: Any = None) -> list[Any] | Any:
        with self._lock:
            found = self._by_key.get(key)
            return list(found.values()) if found else default

    def keys(self) -> list[Key]:
        with self._lock:
            return list(self._by_key)

    def __len__(self) -> int:
        with self._lock:
            return len(self._objects)

    # -- internals (lock held) --------------------------------------------------------

    def _upsert(self, obj: Mapping[str, Any]) -> list[Change]:
        okey = _object_key(obj)
        labels = (obj.get("metadata") or {}).get("labels") or {}
        entry = self._index(obj) if self._select(labels) else None
        version = _version(obj)
        if entry is None:  # not (or no longer) one of ours: a label was removed
            return self._drop(okey, version)
        key, value = entry
        old = self._objects.get(okey)
        changes: list[Change] = []
        if old is not None and old[0] != key:
            changes.extend(self._drop(okey, version))  # moved to another owner
            old = None
        self._objects[okey] = (key, value)
        self._by_key.setdefault(key, {})[okey] = value
        if old is None:
            changes.append(Change(key, ADDED, version))
        elif not _same(old[1], value):
            changes.append(Change(key, MODIFIED, version))
        return changes

    def _drop_unseen(self, namespace: str | None, seen: set[ObjectKey]) -> list[Change]:
        changes: list[Change] = []
        for okey in [k for k in self._objects if namespace in (None, k[0])]:
            if okey not in seen:
                changes.extend(self._drop(okey, None))
        return changes

    def _drop(self, okey: ObjectKey, version: str | None) -> list[Change]:
        old = self._objects.pop(okey, None)
        if old is None:
            return []
        key = old[0]
        siblings = self._by_key.get(key)
        if siblings is not None:
            siblings.pop(okey, None)
            if not siblings:
                del self._by_key[key]
        return [Change(key, DELETED, version)]


class Relist:
    """A full list entering a store one object at a time, so that the store, not the
    list, holds the objects: only the projection of each body is kept.

    Each object is upserted as it comes (it is a real state of that object, so a
    reconcile that reads the store meanwhile sees nothing false); what the list
    did not contain is dropped by `finish`, and only then, so a list that failed
    half-way drops nothing. `finish` also marks the store synced.
    """

    def __init__(self, store: Store, namespace: str | None) -> None:
        self._store = store
        self._namespace = namespace
        self._seen: set[ObjectKey] = set()

    def add(self, obj: Mapping[str, Any]) -> list[Change]:
        self._seen.add(_object_key(obj))
        with self._store._lock:
            return self._store._upsert(obj)

    def finish(self) -> list[Change]:
        with self._store._lock:
            changes = self._store._drop_unseen(self._namespace, self._seen)
            self._store.synced = True
        return changes
