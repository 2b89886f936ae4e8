"""The one place the operator talks to serving pods: the sidecars' admin port.

Rollout figures (`GET /rollout`), drift histograms (`GET /drift/histograms`) and what each
replica's Triton loaded are pulled pod to pod (serving pods need no
ServiceAccount). Those pods are untrusted input, and a reconcile must never
wait on them, so:

- **Off the reconcile path.** A reconcile only reads the cache
  (:meth:`SidecarClient.rollout`, :meth:`drift`, :meth:`loaded`) and, when the
  cache is older than ``min_interval_s`` or asks about other pods, requests a
  refresh; a small thread pool of its own does the HTTP, and when a poll is
  complete ``on_ready(key)`` queues that ModelDeployment's reconcile again.
  One ModelDeployment's slow pods delay only its own figures, never another's
  reconcile.
- **Deadlines**: a total deadline per pod (connect, send, every byte of the
  answer) and per poll; a pod that has not answered in time is skipped and
  named (``Snapshot.unanswered``) so status can say so. The deadline is the
  whole exchange's, not a per-read timeout: a pod that drips its answer a byte
  a second is cut at the deadline like one that never answers.
- **Size cap**: reading stops at ``max_bytes`` (the answer is dropped).
- **Schema**: every answer is validated (pydantic models below) before anyone
  reads it; what does not fit is skipped with the reason.

Only owner-checked pods are ever asked (render/evidence.py; the controller
passes nothing else).

Addresses: `http://{podIP}:{admin port}` by default. Where pod IPs lead nowhere
(the local test cluster's simulated pods, whose sidecars run as local
processes), `MODELOPS_SIDECAR_MAP` names a JSON file mapping "namespace/pod" to
the base URL of that pod's sidecar admin port; it is read again when it
changes. It is the only address override, and only for the pods it names:
the others (pods on a real node) are asked at their own IP.
"""

from __future__ import annotations

import concurrent.futures
import json
import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

import pydantic
from pydantic import BaseModel, ConfigDict, StrictFloat, StrictInt, StrictStr

from modelops.api import constants as c

log = logging.getLogger("modelops.sidecars")
Key = tuple[str, str]

# --- what the sidecars may answer ---------------------------------------------------------


class _Document(BaseModel):
    # Unknown keys are kept (a newer sidecar may add figures); known ones must have
    # their type. Semantic checks (agreed <= compared, ...) are render/gating/build_inputs.py's.
    model_config = ConfigDict(extra="allow")


class RolloutDocument(_Document):
    """`GET /rollout` (docs/rollouts.md, "Figures")."""

    epoch: StrictStr | None = None
    sidecar: StrictStr | None = None
    version: StrictStr | None = None
    role: StrictStr | None = None
    requests: StrictInt = 0
    errors: StrictInt = 0
    clientErrors: StrictInt | None = None
    latencyBuckets: dict[str, StrictInt] | None = None
    latencySum: StrictFloat | StrictInt | None = None
    mirrored: StrictInt | None = None
    compared: StrictInt | None = None
    agreed: StrictInt | None = None
    notCompared: StrictInt | None = None
    mirrorDropped: StrictInt | None = None
    mirrorErrors: StrictInt | None = None
    mirrorTimeouts: StrictInt | None = None
    split: StrictInt | None = None
    splitErrors: StrictInt | None = None
    splitFallbacks: StrictInt | None = None
    splitTimeouts: StrictInt | None = None
    breakerTrips: StrictInt | None = None
    selfCompared: StrictInt | None = None
    selfAgreed: StrictInt | None = None
    loaded: dict[str, list[StrictStr]] | None = None
    # In-place rollouts (modelops.drift.inplace / inplace_agent): the candidate's figures
    # as this pod's Triton answered them, and the in-pod agent's report.
    inPlace: RolloutDocument | None = None
    agent: AgentDocument | None = None


class StagedVersion(_Document):
    version: StrictStr
    bytes: StrictInt


class AgentDocument(_Document):
    """The in-place agent's report under `agent` in `GET /rollout`."""

    staged: StagedVersion | None = None
    promoted: StrictStr | None = None
    memory: dict[str, StrictInt | None] | None = None
    error: StrictStr | None = None
    errorVersion: StrictStr | None = None


RolloutDocument.model_rebuild()


class ReferenceBins(_Document):
    bins: list[StrictInt]
    var: StrictFloat | StrictInt


class HistogramFeature(_Document):
    name: StrictStr
    center: StrictFloat | StrictInt
    bins: list[StrictInt]
    n: StrictInt
    nonfinite: StrictInt
    sum: StrictFloat | StrictInt
    sumsq: StrictFloat | StrictInt
    reference: ReferenceBins


class HistogramsDocument(_Document):
    """`GET /drift/histograms` (modelops.drift.monitor.histograms). Whether the figures
    add up is render/drift_merge.py's to check."""

    schema_: Literal["modelops.drift.histograms/v1"] = pydantic.Field(alias="schema")
    sidecar: StrictStr
    rows: StrictInt
    features: list[HistogramFeature]


class IndexEntry(_Document):
    """One model of Triton's `POST /v2/repository/index`."""

    name: StrictStr
    version: StrictStr | None = None
    state: StrictStr | None = None


INDEX = pydantic.TypeAdapter(list[IndexEntry])

# --- one bounded HTTP exchange ---------------------------------------------------------------


class Unanswered(Exception):
    """A pod that did not give a usable answer in time; the message says why."""


def exchange(
    url: str, *, deadline: float, max_bytes: int, method: str = "GET", body: bytes = b""
) -> bytes:
    """The body of a 200 answer to one HTTP/1.0 request, read by ``deadline``
    (time.monotonic) at the latest and at most ``max_bytes`` long.

    HTTP/1.0 with `Connection: close`: the answer ends when the connection does, so
    no keep-alive or chunked framing is needed, and reading is one loop whose every
    wait is bounded by what is left of the deadline."""
    parts = urlsplit(url)
    if parts.scheme != "http" or not parts.hostname:
        raise Unanswered(f"not an http:// address: {url}")
    port = parts.port or 80
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")

    def left() -> float:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise Unanswered("no complete answer within the deadline")
        return remaining

    try:
        with socket.create_connection((parts.hostname, port), timeout=left()) as sock:
            head = (
                f"{method} {path} HTTP/1.0\r\nHost: {parts.hostname}:{port}\r\n"
                f"Accept: application/json\r\nConnection: close\r\n"
                + (f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n")
                * bool(body)
                + "\r\n"
            ).encode()
            sock.settimeout(left())
            sock.sendall(head + body)
            limit = max_bytes + 16 * 1024  # the body's cap, plus room for the headers
            received = bytearray()
            while True:
                sock.settimeout(left())
                chunk = sock.recv(65536)
                if not chunk:
                    break
                received += chunk
                if len(received) > limit:
                    raise Unanswered(f"answer larger than {max_bytes} bytes")
    except TimeoutError as err:
        raise Unanswered("no complete answer within the deadline") from err
    except OSError as err:
        raise Unanswered(f"unreachable: {err}") from err
    header, sep, content = bytes(received).partition(b"\r\n\r\n")
    if not sep:
        raise Unanswered("the answer ended inside its headers")
    status_line = header.split(b"\r\n", 1)[0].decode("latin-1")
    fields = status_line.split(" ", 2)
    if len(fields) < 2 or fields[1] != "200":
        raise Unanswered(f"answered {status_line[:80]!r}")
    if b"transfer-encoding: chunked" in header.lower():
        content = _dechunk(content)  # not expected for HTTP/1.0, but harmless to read
    if len(content) > max_bytes:
        raise Unanswered(f"answer larger than {max_bytes} bytes")
    return content


def _dechunk(data: bytes) -> bytes:
    out = bytearray()
    while True:
        size_line, sep, data = data.partition(b"\r\n")
        try:
            size = int(size_line.split(b";", 1)[0].strip() or b"x", 16)
        except ValueError as err:
            raise Unanswered("a chunked answer that does not parse") from err
        if not sep or size == 0:
            return bytes(out)
        out += data[:size]
        data = data[size + 2 :]


# --- the client ------------------------------------------------------------------------------

# Drift is read as histograms only: the operator merges the replicas' counts before
# one decision (render/drift_merge.py), never the replicas' own verdicts.
_PATHS = {"rollout": "/rollout", "histograms": "/drift/histograms"}
_MODELS: dict[str, type[_Document]] = {
    "rollout": RolloutDocument,
    "histograms": HistogramsDocument,
}


@dataclass(frozen=True)
class Snapshot:
    """The last complete poll of one ModelDeployment's sidecars: pod name -> validated
    document, pod name -> why it gave none; fetched_at: time.monotonic() of the poll's
    end (None before the first poll)."""

    documents: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    unanswered: Mapping[str, str] = field(default_factory=dict)
    fetched_at: float | None = None


def _names(pods: Sequence[Mapping[str, Any]]) -> frozenset[str]:
    return frozenset(str((p.get("metadata") or {}).get("name")) for p in pods)


@dataclass
class SidecarClient:
    map_file: Path | None = None
    # A whole exchange with one pod, and a whole poll of one ModelDeployment.
    pod_deadline_s: float = 2.0
    poll_deadline_s: float = 5.0
    max_bytes: int = 1 << 20
    # Figures are analysed every 15 s; pod events come far more often.
    min_interval_s: float = 5.0
    drift_interval_s: float = 10.0
    # A pod whose Triton could not say what it loaded is asked again after this long.
    retry_s: float = 30.0
    workers: int = 8
    # Called (from a pool thread) when a poll finished: queue that key's reconcile.
    on_ready: Callable[[Key], None] | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _cache: dict[tuple[str, Key], tuple[frozenset[str], Snapshot]] = field(default_factory=dict)
    _in_flight: set[tuple[str, Key]] = field(default_factory=set)
    # (key) -> pod uid -> versions its Triton loaded (asked once per pod: Triton runs with
    # model-control-mode none, what a pod loaded at start never changes).
    _loaded: dict[Key, dict[str, list[str]]] = field(default_factory=dict)
    _loaded_failed: dict[Key, dict[str, float]] = field(default_factory=dict)
    _loaded_asking: set[tuple[Key, str]] = field(default_factory=set)
    _map: tuple[float, dict[str, str]] = (0.0, {})
    _pool: concurrent.futures.ThreadPoolExecutor | None = None
    _fetch_pool: concurrent.futures.ThreadPoolExecutor | None = None

    @classmethod
    def from_environment(cls) -> SidecarClient:
        path = os.environ.get("MODELOPS_SIDECAR_MAP")
        return cls(map_file=Path(path) if path else None)

    def close(self) -> None:
        """Stop the pools (running exchanges end by their deadlines)."""
        for pool in (self._pool, self._fetch_pool):
            if pool is not None:
                pool.shutdown(wait=False, cancel_futures=True)
        self._pool = self._fetch_pool = None

    def forget(self, namespace: str, name: str) -> None:
        key = (namespace, name)
        with self._lock:
            for kind in _PATHS:
                self._cache.pop((kind, key), None)
            self._loaded.pop(key, None)
            self._loaded_failed.pop(key, None)

    # -- what a reconcile calls: cache reads, never a wait --

    def rollout(self, namespace: str, name: str, pods: Sequence[Mapping[str, Any]]) -> Snapshot:
        """The last `/rollout` documents of these pods (refreshed in the background)."""
        return self._snapshot("rollout", (namespace, name), pods, self.min_interval_s)

    def histograms(self, namespace: str, name: str, pods: Sequence[Mapping[str, Any]]) -> Snapshot:
        """The pods' last `/drift/histograms` documents (refreshed in the background),
        merged into one drift decision by render/drift_merge.py."""
        return self._snapshot("histograms", (namespace, name), pods, self.drift_interval_s)

    def loaded(
        self, namespace: str, name: str, model: str, pods: Sequence[Mapping[str, Any]]
    ) -> dict[str, list[str]]:
        """pod name -> the versions of ``model`` its Triton reports READY, for the pods
        that answered so far; the others are asked in the background."""
        key = (namespace, name)
        now = time.monotonic()
        out: dict[str, list[str]] = {}
        ask: list[Mapping[str, Any]] = []
        with self._lock:
            known = self._loaded.setdefault(key, {})
            failed = self._loaded_failed.setdefault(key, {})
            uids = {str((p.get("metadata") or {}).get("uid") or "") for p in pods}
            for gone in set(known) - uids:  # pods that are gone are dropped
                known.pop(gone, None)
            for gone in set(failed) - uids:
                failed.pop(gone, None)
            for pod in pods:
                meta = pod.get("metadata") or {}
                uid = str(meta.get("uid") or "")
                if uid in known:
                    out[str(meta.get("name"))] = known[uid]
                elif now - failed.get(uid, -1e9) >= self.retry_s and (
                    (key, uid) not in self._loaded_asking
                ):
                    self._loaded_asking.add((key, uid))
                    ask.append(pod)
        for pod in ask:
            self._submit(self._ask_loaded, key, model, pod)
        return out

    # -- the background side --

    def _snapshot(
        self, kind: str, key: Key, pods: Sequence[Mapping[str, Any]], interval: float
    ) -> Snapshot:
        names = _names(pods)
        with self._lock:
            asked, snap = self._cache.get((kind, key), (frozenset(), Snapshot()))
            stale = (
                snap.fetched_at is None
                or time.monotonic() - snap.fetched_at >= interval
                or asked != names
            )
            start = stale and bool(names) and (kind, key) not in self._in_flight
            if start:
                self._in_flight.add((kind, key))
        if start:
            self._submit(self._poll, kind, key, list(pods))
        return Snapshot(
            {n: d for n, d in snap.documents.items() if n in names},
            {n: w for n, w in snap.unanswered.items() if n in names},
            snap.fetched_at,
        )

    def _submit(self, fn: Callable[..., None], *args: Any) -> None:
        with self._lock:
            if self._pool is None:
                # Polls (one per ModelDeployment at a time) wait on their pods' exchanges,
                # which run in a pool of their own, so a poll never waits for a thread
                # that another poll's waiting holds.
                self._pool = concurrent.futures.ThreadPoolExecutor(
                    self.workers, thread_name_prefix="sidecar-poll"
                )
            pool = self._pool
        pool.submit(self._guarded, fn, *args)

    def _fetchers(self) -> concurrent.futures.ThreadPoolExecutor:
        with self._lock:
            if self._fetch_pool is None:
                self._fetch_pool = concurrent.futures.ThreadPoolExecutor(
                    2 * self.workers, thread_name_prefix="sidecar-fetch"
                )
            return self._fetch_pool

    @staticmethod
    def _guarded(fn: Callable[..., None], *args: Any) -> None:
        try:
            fn(*args)
        except Exception:  # a bug here must not kill the pool's thread silently
            log.exception("sidecar poll failed")

    def _poll(self, kind: str, key: Key, pods: list[Mapping[str, Any]]) -> None:
        """One poll: every pod asked at once (threads of their own), each within its own
        deadline and all within the poll's; whoever has not answered by then is named."""
        start = time.monotonic()
        poll_deadline = start + self.poll_deadline_s
        documents: dict[str, dict[str, Any]] = {}
        unanswered: dict[str, str] = {}
        try:
            futures = {}
            for pod in pods:
                name = str((pod.get("metadata") or {}).get("name"))
                deadline = min(start + self.pod_deadline_s, poll_deadline)
                futures[name] = self._fetchers().submit(
                    self._fetch, kind, key[0], name, pod, deadline
                )
            concurrent.futures.wait(
                futures.values(), timeout=max(0.0, poll_deadline - time.monotonic())
            )
            for name, future in futures.items():
                result = (
                    future.result() if future.done() else "no answer within the poll's deadline"
                )
                if isinstance(result, dict):
                    documents[name] = result
                else:
                    unanswered[name] = result
        finally:
            with self._lock:
                self._cache[(kind, key)] = (
                    _names(pods),
                    Snapshot(documents, unanswered, time.monotonic()),
                )
                self._in_flight.discard((kind, key))
        for name, why in unanswered.items():
            log.info("%s/%s: sidecar of pod %s skipped (%s): %s", *key, name, kind, why)
        if self.on_ready is not None:
            self.on_ready(key)

    def _fetch(
        self, kind: str, namespace: str, name: str, pod: Mapping[str, Any], deadline: float
    ) -> dict[str, Any] | str:
        """One pod's validated document, or why there is none."""
        try:
            base = self._base_url(namespace, name, pod)
            raw = exchange(f"{base}{_PATHS[kind]}", deadline=deadline, max_bytes=self.max_bytes)
            model = _MODELS[kind]
            return model.model_validate_json(raw).model_dump(exclude_none=True, by_alias=True)
        except Unanswered as err:
            return str(err)
        except pydantic.ValidationError as err:
            first = err.errors()[0]
            where = ".".join(str(p) for p in first["loc"]) or "document"
            return f"answer does not fit the schema: {where}: {first['msg']}"

    def _ask_loaded(self, key: Key, model: str, pod: Mapping[str, Any]) -> None:
        meta = pod.get("metadata") or {}
        uid, name = str(meta.get("uid") or ""), str(meta.get("name"))
        deadline = time.monotonic() + self.pod_deadline_s
        versions: list[str] | None = None
        try:
            if self._mapped(key[0], name) is not None:
                raw = exchange(
                    f"{self._base_url(key[0], name, pod)}/rollout",
                    deadline=deadline,
                    max_bytes=self.max_bytes,
                )
                doc = RolloutDocument.model_validate_json(raw)
                versions = sorted((doc.loaded or {}).get(model) or [])
            else:
                ip = (pod.get("status") or {}).get("podIP")
                if not ip:
                    raise Unanswered("no pod IP")
                raw = exchange(
                    f"http://{ip}:{c.TRITON_HTTP_PORT}/v2/repository/index",
                    deadline=deadline,
                    max_bytes=self.max_bytes,
                    method="POST",
                    body=b"{}",
                )
                versions = sorted(
                    str(m.version)
                    for m in INDEX.validate_json(raw)
                    if m.name == model and m.state == "READY"
                )
        except (Unanswered, pydantic.ValidationError) as err:
            log.debug("%s/%s: loaded versions of pod %s unavailable: %s", *key, name, err)
        with self._lock:
            self._loaded_asking.discard((key, uid))
            if versions is None:
                self._loaded_failed.setdefault(key, {})[uid] = time.monotonic()
            else:
                self._loaded.setdefault(key, {})[uid] = versions
        if versions is not None and self.on_ready is not None:
            self.on_ready(key)

    def _mapped(self, namespace: str, name: str) -> str | None:
        """The map's address for this pod; None where the map does not name it (a
        pod that really runs is reached at its own IP)."""
        if self.map_file is None:
            return None
        return self._mapping().get(f"{namespace}/{name}") or None

    def _base_url(self, namespace: str, name: str, pod: Mapping[str, Any]) -> str:
        base = self._mapped(namespace, name)
        if base is not None:
            return base.rstrip("/")
        ip = (pod.get("status") or {}).get("podIP")
        if not ip:
            raise Unanswered("no pod IP")
        return f"http://{ip}:{c.DRIFT_ADMIN_PORT}"

    def _mapping(self) -> dict[str, str]:
        assert self.map_file is not None
        try:
            mtime = self.map_file.stat().st_mtime
        except OSError:
            return {}
        with self._lock:
            if mtime != self._map[0]:
                try:
                    self._map = (mtime, dict(json.loads(self.map_file.read_text())))
                except (OSError, ValueError) as err:
                    log.warning("MODELOPS_SIDECAR_MAP %s unreadable: %s", self.map_file, err)
            return self._map[1]


__all__ = [
    "HistogramsDocument",
    "RolloutDocument",
    "SidecarClient",
    "Snapshot",
    "Unanswered",
    "exchange",
]
