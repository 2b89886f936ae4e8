"""The operator's informers: stores (controllers/stores.py) fed by list+watch
threads (kube/informer.py), their changes handed to the event loop.

- One informer per watched resource (and per namespace when the operator
  watches a list of namespaces), fanned out to that resource's stores.
- Store changes are computed on the informer's thread (under the store's
  lock) and handed to the event loop with ``call_soon_threadsafe``, where the
  triggers (controllers/md_triggers.py, tj_triggers.py) queue work: the
  work queue is only ever touched on the loop.
- Barriers: a store is synced once its first list is in (for every namespace
  watched). `wait_synced(names)` is what a reconcile awaits: the
  ModelDeployment reconcile waits for its own stores, not for the
  TrainingJob's Jobs.
- A resource behind an optional CRD (KEDA's ScaledObject) is watched only
  while the CRD exists, which a watch of that one CRD tells: the informer
  starts when the CRD appears and stops when it goes (its store then empties;
  the owners that had objects in it are queued). Until the CRD watch has
  listed once, the store is not synced; once it knows the CRD is absent, the
  store is synced and empty. Only the handlers that read it are concerned.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from modelops.api.kinds import CUSTOM_RESOURCE_DEFINITION
from modelops.controllers.indexes import WATCHES, Watch
from modelops.controllers.stores import Change, Store
from modelops.kube.informer import Informer, WatchApi

log = logging.getLogger("modelops.informers")

# A list's changes are handed to the loop every this many objects (a list page's
# worth), so the first reconciles start while a big list is still arriving.
DELIVER_EVERY = 500

# Called on the event loop with the store's name and what changed in it.
OnChanges = Callable[[str, list[Change]], None]
# Called on the event loop when an optional CRD appears (True) or goes (False).
OnCrd = Callable[[str, bool], None]


class _FanOut:
    """An informer's sink: every store of its watch, then the loop is told."""

    def __init__(self, hub: Informers, watch: Watch, stores: list[Store]) -> None:
        self._hub = hub
        self._watch = watch
        self._stores = stores
        self._listed: set[str | None] = set()

    def replace(self, namespace: str | None, objects: Iterable[dict[str, Any]]) -> None:
        # Each object goes to every store as it arrives, and the changes are handed
        # on page by page; only the complete list drops what it did not contain.
        relists = [(store, store.relist(namespace)) for store in self._stores]
        pending: dict[str, list[Change]] = {store.name: [] for store in self._stores}
        try:
            for count, obj in enumerate(objects, 1):
                for store, relist in relists:
                    pending[store.name].extend(relist.add(obj))
                if count % DELIVER_EVERY == 0:
                    self._deliver(pending)
        except Exception:
            # The list failed on a later page, but what came before it is in the
            # stores: the loop hears of it now, or a complete list, finding those
            # objects unchanged, would never queue their owners.
            self._deliver(pending)
            raise
        self._listed.add(namespace)
        for store, relist in relists:
            pending[store.name].extend(relist.finish())
            # Synced once every namespace this watch covers has been listed.
            store.synced = self._listed >= set(self._hub.namespaces)
        self._deliver(pending, final=True)

    def _deliver(self, pending: dict[str, list[Change]], *, final: bool = False) -> None:
        # The final hand-off goes even without changes: it wakes the barriers.
        for name, changes in pending.items():
            if changes or final:
                self._hub.deliver(name, changes)
                pending[name] = []

    def event(self, type_: str, obj: Mapping[str, Any]) -> None:
        for store in self._stores:
            changes = store.delete(obj) if type_ == "DELETED" else store.upsert(obj)
            if changes:
                self._hub.deliver(store.name, changes)

    def absent(self, namespace: str | None) -> None:
        self.replace(namespace, [])


class _CrdSink:
    """The watch of one optional CRD: starts and stops the informers of its kind."""

    def __init__(self, hub: Informers, watch: Watch) -> None:
        self._hub = hub
        self._watch = watch

    def replace(self, namespace: str | None, objects: Iterable[dict[str, Any]]) -> None:
        self._hub.crd_seen(self._watch, present=next(iter(objects), None) is not None)

    def event(self, type_: str, obj: Mapping[str, Any]) -> None:
        self._hub.crd_seen(self._watch, present=type_ != "DELETED")

    def absent(self, namespace: str | None) -> None:
        self._hub.crd_seen(self._watch, present=False)


@dataclass
class Informers:
    api: WatchApi
    loop: asyncio.AbstractEventLoop
    on_changes: OnChanges
    on_crd: OnCrd | None = None
    # None: every namespace (one cluster-wide watch per resource).
    namespaces: tuple[str | None, ...] = (None,)
    watches: tuple[Watch, ...] = WATCHES
    stores: dict[str, Store] = field(default_factory=dict)
    _informers: dict[Any, list[Informer]] = field(default_factory=dict)
    _crd_informers: list[Informer] = field(default_factory=list)
    _sinks: dict[Any, _FanOut] = field(default_factory=dict)
    _synced: asyncio.Event | None = None
    _stopped: bool = False

    def __post_init__(self) -> None:
        for watch in self.watches:
            built = [spec.build() for spec in watch.stores]
            for store in built:
                self.stores[store.name] = store
            self._sinks[watch.kind] = _FanOut(self, watch, built)

    # -- life cycle (event loop) ----------------------------------------------------------

    def start(self) -> None:
        for watch in self.watches:
            if watch.optional_crd is None:
                self._start(watch)
            else:
                crd = Informer(
                    self.api,
                    CUSTOM_RESOURCE_DEFINITION,
                    None,
                    _CrdSink(self, watch),
                    field_selector=f"metadata.name={watch.optional_crd}",
                )
                self._crd_informers.append(crd)
                crd.start()

    def stop(self) -> None:
        self._stopped = True
        for informer in self._crd_informers:
            informer.stop()
        for informers in self._informers.values():
            for informer in informers:
                informer.stop()
        self._informers.clear()

    def _start(self, watch: Watch) -> None:
        if watch.kind in self._informers or self._stopped:
            return
        informers = [
            Informer(
                self.api,
                watch.kind,
                namespace,
                self._sinks[watch.kind],
                label_selector=watch.label_selector,
            )
            for namespace in self.namespaces
        ]
        self._informers[watch.kind] = informers
        for informer in informers:
            informer.start()

    # -- optional CRDs (an informer's thread) --------------------------------------------

    def crd_seen(self, watch: Watch, *, present: bool) -> None:
        """The CRD of an optional kind exists (or not): start or stop watching it."""
        self.loop.call_soon_threadsafe(self._crd_changed, watch, present)

    def _crd_changed(self, watch: Watch, present: bool) -> None:
        running = self._informers.get(watch.kind)
        if present:
            if running is None:
                log.info("%s is served: watching it", watch.optional_crd)
                self._start(watch)
                if self.on_crd is not None:
                    self.on_crd(watch.optional_crd or "", True)
            else:
                for informer in running:  # e.g. now Established: list again now
                    informer.poke()
            return
        if running is not None:
            log.info("%s is gone: no longer watching it", watch.optional_crd)
            for informer in self._informers.pop(watch.kind):
                informer.stop()
        sink = self._sinks[watch.kind]
        # Empty and synced: the handlers that read it go on without it.
        for store in sink._stores:
            changes = store.clear()
            store.synced = True
            self._changed(store.name, changes)
        if running is not None and self.on_crd is not None:
            self.on_crd(watch.optional_crd or "", False)

    # -- changes (an informer's thread, then the loop) --------------------------------------

    def deliver(self, store: str, changes: list[Change]) -> None:
        self.loop.call_soon_threadsafe(self._changed, store, changes)

    def _changed(self, store: str, changes: list[Change]) -> None:
        if changes:
            self.on_changes(store, changes)
        if self._synced is not None:
            self._synced.set()  # wake the barrier waiters: they check their stores

    # -- barriers (event loop) ---------------------------------------------------------------

    def synced(self, names: Iterable[str]) -> bool:
        return all(self.stores[name].synced for name in names)

    async def wait_synced(self, names: Iterable[str]) -> None:
        """Until every store in ``names`` has its first full list."""
        wanted = tuple(names)
        while not self.synced(wanted):
            if self._synced is None:
                self._synced = asyncio.Event()
            self._synced.clear()
            await self._synced.wait()

    def status(self) -> dict[str, tuple[bool, int]]:
        """store name -> (synced, objects): for logs and the probe."""
        return {name: (store.synced, len(store)) for name, store in self.stores.items()}
