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

Credentials: the store is listed with the same credentials the pods pull with,
the keys of the Secret ``spec.model.credentialsSecretRef`` names (read by name,
in the ModelDeployment's own namespace, at every listing so a rotated Secret is
picked up; only the S3 keys are kept, in memory, never logged). Without a Secret
the operator's own ambient credentials are used. An endpoint the Secret names is
dialled only when the operator's configuration allows it (storage/endpoints.py:
a tenant must not make the operator send requests to any address it can reach);
otherwise the listing fails with EndpointNotAllowed. What is read is bounded: a
manifest by MAX_MANIFEST_BYTES, a listing by MAX_LISTED_KEYS. A listing that fails says why
(``StoreView.error``: a reason and a redacted message), which status shows as
the StoreListed condition; the last good listing stays in use meanwhile.
"""

from __future__ import annotations

import concurrent.futures
import logging
import os
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace

from modelops.kube import errors as kube_errors
from modelops.modeldir.layout import MANIFEST_NAME
from modelops.redact import redact
from modelops.render.gating.lineage import (
    MAX_METRICS_FILE_BYTES,
    METRICS_FILE,
    listed_digest,
    manifest_digest,
    recorded_metrics,
)
from modelops.storage.base import MAX_MANIFEST_BYTES
from modelops.storage.endpoints import ENDPOINTS_ENV, Origin, endpoint_allowed, parse_allowlist
from modelops.storage.errors import StorageError
from modelops.storage.stores import open_store
from modelops.storage.uri import PvcLocation, S3Location, parse_storage_uri

log = logging.getLogger("modelops.store")
Key = tuple[str, str]
# Reads the keys of a Secret: (namespace, name, keys) -> their values, None when the
# Secret does not exist; raises modelops.kube errors (Forbidden when RBAC denies it).
SecretReader = Callable[[str, str, Sequence[str]], Mapping[str, str] | None]
DEFAULT_INTERVAL_S = 60.0
INTERVAL_ENV = "MODELOPS_STORE_INTERVAL_SECONDS"
# How much of a failure's text reaches status.
MAX_MESSAGE = 400


@dataclass(frozen=True)
class ListingError:
    """Why the last listing failed: a CamelCase reason for a condition, and a message
    with URIs and the Secret's values redacted."""

    reason: str
    message: str


@dataclass(frozen=True)
class StoreView:
    """newest: the newest complete version (None: none yet); digests: version -> its
    manifest digest ("sha256:<hex>") for the versions asked about and the newest;
    error: why the latest listing failed (newest and digests are then the last good
    listing's, or empty)."""

    newest: str | None = None
    digests: Mapping[str, str] = field(default_factory=dict)
    error: ListingError | None = None
    # version -> the metrics it was published with (its sealed metrics.json), for the
    # versions asked about that have one (lineage.recorded_metrics).
    metrics: Mapping[str, Mapping[str, float]] = field(default_factory=dict)

    def as_observed(self) -> dict[str, object]:
        observed: dict[str, object] = {"newest": self.newest, "digests": dict(self.digests)}
        if self.metrics:
            observed["metrics"] = {v: dict(m) for v, m in self.metrics.items()}
        if self.error is not None:
            observed["error"] = {"reason": self.error.reason, "message": self.error.message}
        return observed


@dataclass
class _Entry:
    uri: str
    secret: str | None = None
    view: StoreView | None = None
    fetched_at: float = -1e18
    failures: int = 0
    wanted: frozenset[str] = frozenset()


def open_with(uri: str, env: Mapping[str, str] | None) -> object:
    """The store at ``uri``, for S3 with a client made from ``env`` (the Secret's keys;
    None: the operator's own environment). GCS and HTTP(S) stores use the operator's
    ambient credentials: a GCS key in a Secret is a file the pods mount, not an
    environment value the operator could use."""
    location = parse_storage_uri(uri)
    if isinstance(location, S3Location) and env is not None:
        from modelops.storage.s3 import make_s3_client

        return open_store(location, s3_client=make_s3_client(env=env))
    return open_store(location)


@dataclass
class StoreWatcher:
    interval_s: float = DEFAULT_INTERVAL_S
    max_backoff_s: float = 600.0
    workers: int = 2
    on_ready: Callable[[Key], None] | None = None
    # Reads the credentials Secret a ModelDeployment names (modelops.kube read_secret);
    # None: no Secret can be read, a ModelDeployment that names one is not listed.
    secrets: SecretReader | None = None
    # Tests and benches: how a store is opened, with the Secret's keys (or None).
    opener: Callable[[str, Mapping[str, str] | None], object] = open_with
    # Endpoints a Secret may point the operator at, besides the operator's own
    # (MODELOPS_STORE_ENDPOINTS; storage/endpoints.py says why).
    allowed_endpoints: tuple[Origin, ...] = ()
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _entries: dict[Key, _Entry] = field(default_factory=dict)
    _in_flight: set[Key] = field(default_factory=set)
    _pool: concurrent.futures.ThreadPoolExecutor | None = None
    _ticker: threading.Thread | None = None
    _stop: threading.Event = field(default_factory=threading.Event)

    @classmethod
    def from_environment(cls, secrets: SecretReader | None = None) -> StoreWatcher:
        """MODELOPS_STORE_INTERVAL_SECONDS: how often each store is listed (default 60);
        MODELOPS_STORE_ENDPOINTS: the S3 endpoints a Secret may name (raises ValueError on
        an entry that is not an http(s) origin)."""
        interval = float(os.environ.get(INTERVAL_ENV) or DEFAULT_INTERVAL_S)
        allowed = parse_allowlist(os.environ.get(ENDPOINTS_ENV, ""))
        return cls(interval_s=interval, secrets=secrets, allowed_endpoints=allowed)

    def close(self) -> None:
        self._stop.set()
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None

    def forget(self, namespace: str, name: str) -> None:
        with self._lock:
            self._entries.pop((namespace, name), None)

    def view(
        self,
        namespace: str,
        name: str,
        uri: str,
        want: Iterable[str] = (),
        secret: str | None = None,
    ) -> StoreView | None:
        """The last listing of ``uri`` (None before the first has finished, or when the
        operator cannot list it by design); asks for a refresh when due. want: versions
        whose digests the caller needs (the candidate, the stable version); secret: the
        credentials Secret in ``namespace`` the pods pull with."""
        if not listable(uri):
            return None
        key = (namespace, name)
        wanted = frozenset(v for v in want if v and v.isdigit())
        now = time.monotonic()
        with self._lock:
            entry = self._entries.get(key)
            if entry is None or entry.uri != uri or entry.secret != secret:
                entry = self._entries[key] = _Entry(uri, secret)
            missing = wanted - set((entry.view.digests if entry.view else {}).keys())
            due = now - entry.fetched_at >= self._delay(entry)
            entry.wanted = entry.wanted | wanted
            start = (due or (missing and entry.failures == 0)) and key not in self._in_flight
            if start:
                self._in_flight.add(key)
            view = entry.view
        if start:
            self._submit(key, uri, secret, entry.wanted)
        return view

    def _delay(self, entry: _Entry) -> float:
        """How long after its last listing a store is listed again (lock held)."""
        if entry.failures:
            return min(self.max_backoff_s, self.interval_s * (2**entry.failures))
        return self.interval_s

    def _submit(self, key: Key, uri: str, secret: str | None, wanted: frozenset[str]) -> None:
        with self._lock:
            if self._pool is None:
                self._pool = concurrent.futures.ThreadPoolExecutor(
                    self.workers, thread_name_prefix="store-list"
                )
            if self._ticker is None:
                self._ticker = threading.Thread(target=self._tick, name="store-ticker", daemon=True)
                self._ticker.start()
            pool = self._pool
        pool.submit(self._list, key, uri, secret, wanted)

    def _tick(self) -> None:
        """List every known store again when due, whether or not anything reconciles it:
        a version copied into a store by hand is found within ``interval_s`` (and queues
        a reconcile only when the listing changed)."""
        while not self._stop.wait(min(1.0, self.interval_s / 2)):
            now = time.monotonic()
            due: list[tuple[Key, str, str | None, frozenset[str]]] = []
            with self._lock:
                for key, entry in self._entries.items():
                    if key not in self._in_flight and now - entry.fetched_at >= self._delay(entry):
                        self._in_flight.add(key)
                        due.append((key, entry.uri, entry.secret, entry.wanted))
            for args in due:
                try:
                    self._submit(*args)
                except RuntimeError:  # the pool was shut down: closing
                    return

    def _credentials(self, namespace: str, secret: str | None) -> Mapping[str, str] | None:
        """The Secret's S3 keys (None without a Secret); ``_Failed`` says why not."""
        if secret is None:
            return None
        if self.secrets is None:
            raise _Failed("SecretUnreadable", f"Secret {namespace}/{secret}: no reader")
        from modelops.storage.s3 import CREDENTIAL_KEYS

        where = f"credentials Secret {namespace}/{secret}"
        try:
            values = self.secrets(namespace, secret, CREDENTIAL_KEYS)
        except kube_errors.Forbidden:
            raise _Failed(
                "SecretForbidden",
                f"the operator may not get {where} (RBAC: get on secrets)",
            ) from None
        except kube_errors.KubeError as err:
            reason = err.reason if err.reason in ("SecretTooLarge", "InvalidSecret") else ""
            raise _Failed(reason or "SecretUnreadable", f"{where}: {err.message}") from None
        if values is None:
            raise _Failed("SecretNotFound", f"{where} does not exist")
        self._check_endpoint(values, where)
        return values

    def _check_endpoint(self, values: Mapping[str, str], where: str) -> None:
        """Refuses an endpoint the Secret names unless it is the operator's own or allowed."""
        from modelops.storage.s3 import s3_endpoint

        endpoint = s3_endpoint(values)
        if endpoint is None:
            return
        own = parse_allowlist(s3_endpoint(dict(os.environ)) or "")
        if not endpoint_allowed(endpoint, (*own, *self.allowed_endpoints)):
            raise _Failed(
                "EndpointNotAllowed",
                f"{where} names the S3 endpoint {endpoint} that the operator may not dial; "
                f"add its origin to "
                f"the operator's {ENDPOINTS_ENV} (chart: operator.storeEndpoints)",
            )

    def _list(self, key: Key, uri: str, secret: str | None, wanted: frozenset[str]) -> None:
        view: StoreView | None = None
        failure: ListingError | None = None
        env: Mapping[str, str] | None = None
        try:
            # Only an S3 client is configured from the Secret (see open_with).
            s3 = isinstance(parse_storage_uri(uri), S3Location)
            env = self._credentials(key[0], secret) if s3 else None
            store = self.opener(uri, env)
            listing = store.list_versions()  # type: ignore[attr-defined]
            complete = sorted(int(v) for v in listing.complete)
            newest = str(complete[-1]) if complete else None
            digests: dict[str, str] = {}
            recorded: dict[str, dict[str, float]] = {}
            for version in {*wanted, *([newest] if newest else [])}:
                if int(version) in complete:
                    manifest = store.read_bytes(  # type: ignore[attr-defined]
                        f"{version}/{MANIFEST_NAME}", limit=MAX_MANIFEST_BYTES
                    )
                    digests[version] = manifest_digest(manifest)
                    metrics = _published_metrics(store, version, manifest)
                    if metrics:
                        recorded[version] = metrics
            view = StoreView(newest, digests, metrics=recorded)
        except _Failed as err:
            failure = _error(err.reason, str(err), env)
        except StorageError as err:
            failure = _error(err.reason, str(err), env)
        except (LookupError, OSError, ValueError) as err:
            failure = _error("ListFailed", f"{type(err).__name__}: {err}", env)
        except Exception as err:  # a bug or a client library's own error: back off, keep serving
            failure = _error("ListFailed", f"{type(err).__name__}: {err}", env)
        if failure is not None:
            # Never the exception itself: a client library's text may quote what it was
            # given; the message is redacted of the Secret's values.
            log.info("%s/%s: listing failed (backing off): %s", *key, failure.message)
        changed = False
        with self._lock:
            self._in_flight.discard(key)
            entry = self._entries.get(key)
            if entry is not None and entry.uri == uri and entry.secret == secret:
                entry.fetched_at = time.monotonic()
                if failure is not None:
                    entry.failures += 1
                    last = entry.view or StoreView()
                    failed = replace(last, error=failure)
                    changed = failed != entry.view
                    entry.view = failed
                else:
                    changed = view != entry.view
                    entry.view, entry.failures = view, 0
        if changed and self.on_ready is not None:
            self.on_ready(key)


def _published_metrics(store: object, version: str, manifest: bytes) -> dict[str, float] | None:
    """The version's sealed metrics.json, when its manifest lists one (a version without
    it, or one whose file does not match the manifest, has none)."""
    if listed_digest(manifest, METRICS_FILE) is None:
        return None
    try:
        data = store.read_bytes(  # type: ignore[attr-defined]
            f"{version}/{METRICS_FILE}", limit=MAX_METRICS_FILE_BYTES
        )
    except (StorageError, LookupError, OSError):
        # Missing or unreadable: the gate then has nothing recorded to compare with.
        return None
    return recorded_metrics(manifest, data)


class _Failed(Exception):
    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


def _error(reason: str, message: str, env: Mapping[str, str] | None) -> ListingError:
    """A failure for status: URIs redacted, the Secret's keys and tokens masked (a client
    library's message may quote an access key id), at most MAX_MESSAGE characters."""
    text = redact(message)
    secrets = [v for k, v in (env or {}).items() if k.endswith(("_KEY", "_KEY_ID", "_TOKEN"))]
    for value in sorted(secrets, key=len, reverse=True):
        if len(value) >= 4:
            text = text.replace(value, "***")
    return ListingError(reason, text[:MAX_MESSAGE])


def listable(uri: str) -> bool:
    """Whether the operator itself can list the store (pvc:// claims are mounted in the
    pods only)."""
    try:
        return not isinstance(parse_storage_uri(uri), PvcLocation)
    except (StorageError, ValueError):
        return False


__all__ = ["ListingError", "StoreView", "StoreWatcher", "listable", "open_with"]
