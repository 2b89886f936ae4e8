"""Which versions the model store holds, listed off the reconcile path with back-off.

Under `spec.model.version: latest` every version must go through the rollout
strategy, including one published by something other than a TrainingJob (a
person, another pipeline). So the operator lists the store itself
(modelops.storage, the same code the pods pull with): the newest *complete*
version (one with its SHA256SUMS manifest) and the manifest digests of the
versions it is asked about, which the lineage records as what was judged.

Like the sidecar client, a reconcile never waits: :meth:`StoreWatcher.view`
returns the last listing and asks for a refresh when it is older than
``interval_s``; a failed listing (no credentials, the store unreachable) is
retried with exponential back-off up to ``max_backoff_s`` and the last good
listing stays in use. A finished listing that changed something queues the
ModelDeployment's reconcile (``on_ready``). Stores the operator cannot reach
by design (pvc://: the claim is mounted in the pods only) are not listed: the
planner falls back to resolving `latest` by what the pods loaded.
"""

from __future__ import annotations

import concurrent.futures
import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

from modelops.render.gating.lineage import manifest_digest
from modelops.storage.errors import StorageError
from modelops.storage.stores import open_store
from modelops.storage.uri import PvcLocation, parse_storage_uri
from modelops.triton.layout import MANIFEST_NAME

log = logging.getLogger("modelops.store")
Key = tuple[str, str]


@dataclass(frozen=True)
class StoreView:
    """newest: the newest complete version (None: none yet); digests: version -> its
    manifest digest ("sha256:<hex>") for the versions asked about and the newest."""

    newest: str | None = None
    digests: Mapping[str, str] = field(default_factory=dict)

    def as_observed(self) -> dict[str, object]:
        return {"newest": self.newest, "digests": dict(self.digests)}


@dataclass
class _Entry:
    uri: str
    view: StoreView | None = None
    fetched_at: float = -1e18
    failures: int = 0
    wanted: frozenset[str] = frozenset()


@dataclass
class StoreWatcher:
    interval_s: float = 60.0
    max_backoff_s: float = 600.0
    workers: int = 2
    on_ready: Callable[[Key], None] | None = None
    # Tests and benches: how a store is opened.
    opener: Callable[[str], object] = open_store
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _entries: dict[Key, _Entry] = field(default_factory=dict)
    _in_flight: set[Key] = field(default_factory=set)
    _pool: concurrent.futures.ThreadPoolExecutor | None = None

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None

    def forget(self, namespace: str, name: str) -> None:
        with self._lock:
            self._entries.pop((namespace, name), None)

    def view(
        self, namespace: str, name: str, uri: str, want: Iterable[str] = ()
    ) -> StoreView | None:
        """The last listing of ``uri`` (None before the first, or when the operator
        cannot list it); asks for a refresh when due. want: versions whose digests the
        caller needs (the candidate, the stable version)."""
        if not listable(uri):
            return None
        key = (namespace, name)
        wanted = frozenset(v for v in want if v and v.isdigit())
        now = time.monotonic()
        with self._lock:
            entry = self._entries.get(key)
            if entry is None or entry.uri != uri:
                entry = self._entries[key] = _Entry(uri)
            delay = min(self.max_backoff_s, self.interval_s * (2**entry.failures))
            missing = wanted - set((entry.view.digests if entry.view else {}).keys())
            due = now - entry.fetched_at >= (delay if entry.failures else self.interval_s)
            entry.wanted = entry.wanted | wanted
            start = (due or (missing and entry.failures == 0)) and key not in self._in_flight
            if start:
                self._in_flight.add(key)
            view = entry.view
        if start:
            self._submit(key, uri, entry.wanted)
        return view

    def _submit(self, key: Key, uri: str, wanted: frozenset[str]) -> None:
        with self._lock:
            if self._pool is None:
                self._pool = concurrent.futures.ThreadPoolExecutor(
                    self.workers, thread_name_prefix="store-list"
                )
            pool = self._pool
        pool.submit(self._list, key, uri, wanted)

    def _list(self, key: Key, uri: str, wanted: frozenset[str]) -> None:
        view: StoreView | None = None
        try:
            store = self.opener(uri)
            listing = store.list_versions()  # type: ignore[attr-defined]
            complete = sorted(int(v) for v in listing.complete)
            newest = str(complete[-1]) if complete else None
            digests: dict[str, str] = {}
            for version in {*wanted, *([newest] if newest else [])}:
                if int(version) in complete:
                    manifest = store.read_bytes(f"{version}/{MANIFEST_NAME}")  # type: ignore[attr-defined]
                    digests[version] = manifest_digest(manifest)
            view = StoreView(newest, digests)
        except (StorageError, LookupError, OSError, ValueError) as err:
            log.info("%s/%s: listing %s failed (backing off): %s", *key, uri, err)
        except Exception:  # a bug or a client library's own error: back off, keep serving
            log.exception("%s/%s: listing %s failed", *key, uri)
        changed = False
        with self._lock:
            self._in_flight.discard(key)
            entry = self._entries.get(key)
            if entry is not None and entry.uri == uri:
                entry.fetched_at = time.monotonic()
                if view is None:
                    entry.failures += 1
                else:
                    changed = view != entry.view
                    entry.view, entry.failures = view, 0
        if changed and self.on_ready is not None:
            self.on_ready(key)


def listable(uri: str) -> bool:
    """Whether the operator itself can list the store (pvc:// claims are mounted in the
    pods only)."""
    try:
        return not isinstance(parse_storage_uri(uri), PvcLocation)
    except (StorageError, ValueError):
        return False


__all__ = ["StoreView", "StoreWatcher", "listable"]
