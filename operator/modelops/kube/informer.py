"""List then watch one resource, for ever: the I/O half of an informer.

An `Informer` keeps a `Sink` (the pure store of controllers/stores.py, behind
whatever notifies the work queue) in step with the API server:

- it lists (paged) and hands the snapshot to ``sink.replace`` page by page (a
  sink keeps projections, so no more than one page of full bodies is held):
  the sink drops what is gone, so a relist after an outage also reports
  deletes missed meanwhile;
- it watches from the list's resourceVersion with bookmarks on: the API server
  sends the version it reached even when nothing of ours changed, so a watch
  resumed after its timeout starts from a recent version and is not answered
  410 Gone just because other objects of the cluster moved on;
- on 410 Gone (the version was compacted) it lists again at once; on any other
  error it waits with capped, jittered back-off and resumes the watch from the
  last version seen (listing only if the list itself failed);
- a kind the cluster does not serve (404: a CRD not installed, or deleted while
  watched) is reported once with ``sink.absent`` (the store empties and counts
  as synced: handlers that use it go on without it), then checked again after
  `absent_recheck_s`, or at once when `poke` is called (a CRD watch saw it).

Each informer runs on its own thread (the kubernetes client is synchronous);
`stop` ends it at the next event or at the end of the current watch. The
steps are methods (`sync_once`) so unit tests drive them one at a time against
the recording fake.
"""

from __future__ import annotations

import logging
import random
import threading
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from prometheus_client import Counter

from modelops.api.kinds import Kind

from . import errors

log = logging.getLogger("modelops.informer")

RELISTS = Counter(
    "modelops_informer_relists_total",
    "Lists of a resource after the first, by resource and cause (gone, error, absent).",
    ["resource", "cause"],
)

BASE_BACKOFF_S = 0.5
MAX_BACKOFF_S = 30.0
ABSENT_RECHECK_S = 30.0
WATCH_TIMEOUT_S = 300


class WatchApi(Protocol):
    """What an informer needs of modelops.kube (`Kube` and the fake both have it)."""

    def list_pages(
        self,
        kind: Kind,
        namespace: str | None,
        *,
        label_selector: str = "",
        field_selector: str = "",
    ) -> Iterator[tuple[list[dict[str, Any]], str]]: ...

    def watch_objects(
        self,
        kind: Kind,
        namespace: str | None,
        *,
        resource_version: str,
        label_selector: str = "",
        field_selector: str = "",
        timeout_s: int = WATCH_TIMEOUT_S,
    ) -> Iterator[tuple[str, dict[str, Any]]]: ...


class Sink(Protocol):
    """Where an informer's findings go (called on the informer's thread)."""

    def replace(self, namespace: str | None, objects: Iterable[dict[str, Any]]) -> None:
        """A full list: these are all the objects (of this namespace, None: all).

        ``objects`` arrive as the list's pages do and are read once: a sink keeps
        what it needs of each and lets the body go. Should a later page fail, the
        error comes out of the iteration and the list is not complete: the sink
        must not take what it did not see for gone."""

    def event(self, type_: str, obj: Mapping[str, Any]) -> None:
        """ADDED, MODIFIED or DELETED, in the order the API server sent them."""

    def absent(self, namespace: str | None) -> None:
        """The cluster does not serve the kind: nothing of it exists."""


class _Listed:
    """A list's objects as its pages arrive; after the last page, the list's
    resourceVersion and how many objects it had."""

    def __init__(self, pages: Iterator[tuple[list[dict[str, Any]], str]]) -> None:
        self._pages = pages
        self.resource_version = ""
        self.count = 0

    def __iter__(self) -> Iterator[dict[str, Any]]:
        for items, version in self._pages:
            self.count += len(items)
            self.resource_version = version
            yield from items


@dataclass
class Informer:
    api: WatchApi
    kind: Kind
    namespace: str | None
    sink: Sink
    label_selector: str = ""
    field_selector: str = ""
    watch_timeout_s: int = WATCH_TIMEOUT_S
    absent_recheck_s: float = ABSENT_RECHECK_S
    rng: random.Random = field(default_factory=random.Random)
    # The version the next watch starts from; "" means: list first.
    resource_version: str = ""
    failures: int = 0
    is_absent: bool = False
    _stop: threading.Event = field(default_factory=threading.Event)
    _poke: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    @property
    def name(self) -> str:
        where = self.namespace or "*"
        return f"{self.kind.plural}.{self.kind.group or 'core'}@{where}"

    # -- one step ---------------------------------------------------------------

    def sync_once(self) -> float:
        """List if needed, then follow one watch until it ends; returns how long to
        wait before the next step (0: go on at once)."""
        try:
            if not self.resource_version:
                self._list()
            self._watch()
        except errors.Gone:
            # Compacted: only a new list says what happened meanwhile.
            log.info(
                "%s: resourceVersion %s is gone; listing again", self.name, self.resource_version
            )
            RELISTS.labels(self.name, "gone").inc()
            self.resource_version = ""
            return 0.0
        except errors.NotFound:
            if not self.is_absent:
                log.info("%s: not served by the cluster; waiting for it", self.name)
                self.is_absent = True
                self.sink.absent(self.namespace)
            self.resource_version = ""
            return self.absent_recheck_s
        except errors.KubeError as err:
            self.failures += 1
            delay = self._backoff()
            log.warning("%s: %s; again in %.1fs", self.name, err, delay)
            if not self.resource_version:
                RELISTS.labels(self.name, "error").inc()
            return delay
        self.failures = 0
        return 0.0

    def _list(self) -> None:
        pages = self.api.list_pages(
            self.kind,
            self.namespace,
            label_selector=self.label_selector,
            field_selector=self.field_selector,
        )
        listed = _Listed(pages)
        self.sink.replace(self.namespace, listed)
        for _ in listed:
            pass  # a sink that stopped reading early: the version comes with the last page
        if self.is_absent:
            log.info("%s: now served; %d objects", self.name, listed.count)
            RELISTS.labels(self.name, "absent").inc()
        self.is_absent = False
        self.resource_version = listed.resource_version

    def _watch(self) -> None:
        stream = self.api.watch_objects(
            self.kind,
            self.namespace,
            resource_version=self.resource_version,
            label_selector=self.label_selector,
            field_selector=self.field_selector,
            timeout_s=self.watch_timeout_s,
        )
        for type_, obj in stream:
            if self._stop.is_set():
                return  # stopped: the store is not this informer's any more
            version = (obj.get("metadata") or {}).get("resourceVersion")
            if type_ != "BOOKMARK":
                self.sink.event(type_, obj)
            if version:
                self.resource_version = str(version)
            self.failures = 0

    def _backoff(self) -> float:
        delay = min(MAX_BACKOFF_S, BASE_BACKOFF_S * 2 ** min(self.failures - 1, 16))
        return delay * (1 + self.rng.uniform(-0.2, 0.2))

    # -- the thread ---------------------------------------------------------------

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name=f"informer {self.name}", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """End the thread (at the next event, or when the current watch ends)."""
        self._stop.set()
        self._poke.set()

    def poke(self) -> None:
        """Try again now (the kind may be served now: its CRD was seen)."""
        self._poke.set()

    @property
    def stopped(self) -> bool:
        return self._stop.is_set()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                wait = self.sync_once()
            except Exception:  # a bug must not end the informer silently for ever
                log.exception("%s: unexpected failure", self.name)
                self.failures += 1
                self.resource_version = ""
                wait = self._backoff()
            if wait > 0:
                self._poke.wait(wait)
                self._poke.clear()
