"""The sidecar's side of a gated rollout: settings, selection, figures, comparisons.

- :class:`TrafficWatcher` (a thread) polls the traffic file once a second and
  hands new valid settings to the event loop; an invalid file is logged once
  per distinct content and the last good settings stay.
- :class:`Rollout` (event loop) holds the settings, this epoch's
  :class:`~modelops.drift.figures.RolloutFigures` and the two selectors. The
  proxies check one attribute, ``rollout.acting``, per infer request; it is
  False on a candidate, without a candidate, and when both shares are 0.
- :class:`CompareWorker` decodes both answers of a mirrored request and
  applies the agreement rule in the statistics worker thread, so JSON parsing
  never runs on the event loop. Its jobs are bounded by the mirror cap: a
  mirror counts as in flight until its comparison is done.

Prometheus: :class:`RolloutCollector` renders ``modelops_rollout_sidecar_*``
from the figures at scrape time (nothing per request).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector

from modelops.drift.figures import RolloutFigures, bound_label
from modelops.drift.outputs import Answer, compare_answers
from modelops.drift.traffic import (
    NO_ROLLOUT,
    PercentSelector,
    TrafficError,
    TrafficSettings,
    parse_traffic,
)

log = logging.getLogger("modelops.drift.traffic_plane")

DEFAULT_TRAFFIC_FILE = "/etc/modelops/traffic/traffic.json"
DEFAULT_MIRROR_MAX_IN_FLIGHT = 16
DEFAULT_MIRROR_TIMEOUT = 10.0
_POLL_SECONDS = 1.0
# Circuit breaker on the candidate (split traffic): this many failures in a row
# open it for BREAKER_COOLDOWN seconds, then one request probes it.
BREAKER_FAILURES = 5
BREAKER_COOLDOWN = 10.0


class CircuitBreaker:
    """Stops sending split requests to a candidate that keeps failing them.

    Closed: every split request goes to the candidate. ``failures`` failures in
    a row open it: for ``cooldown`` seconds no split request goes there (this
    pod's Triton answers them). Then one request probes the candidate
    (half-open): its success closes the breaker, its failure opens it again for
    another ``cooldown``; a probe that never reports (its client left) lets the
    next probe through after ``cooldown``. Event loop only.
    """

    def __init__(
        self, failures: int = BREAKER_FAILURES, cooldown: float = BREAKER_COOLDOWN
    ) -> None:
        self.limit = failures
        self.cooldown = cooldown
        self.failures = 0
        self.open_until: float | None = None  # None: closed
        self.half_open = False

    @property
    def closed(self) -> bool:
        return self.open_until is None

    def allows(self, now: float) -> bool:
        if self.open_until is None:
            return True
        if now < self.open_until:
            return False
        self.open_until = now + self.cooldown  # one probe per cooldown
        self.half_open = True
        return True

    def success(self) -> None:
        self.failures = 0
        self.open_until = None
        self.half_open = False

    def failure(self, now: float) -> bool:
        """Count one failure; True when this one opened the breaker."""
        self.failures += 1
        if self.half_open or (self.open_until is None and self.failures >= self.limit):
            self.open_until = now + self.cooldown
            self.half_open = False
            self.failures = 0
            return True
        return False


def _field_value(value: str) -> bytes:
    """A header field value from configuration: visible ASCII only (no CR/LF)."""
    return "".join(c for c in value if "!" <= c <= "~").encode("ascii")


def answer_fields(version: str, epoch: str) -> bytes:
    """``X-Modelops-Version`` / ``X-Modelops-Epoch`` lines for an infer response."""
    out = b""
    if version:
        out += b"X-Modelops-Version: " + _field_value(version) + b"\r\n"
    if epoch:
        out += b"X-Modelops-Epoch: " + _field_value(epoch) + b"\r\n"
    return out


class Rollout:
    """Traffic settings and figures of one sidecar (event-loop side)."""

    def __init__(
        self,
        own_version: str = "",
        *,
        mirror_max_in_flight: int = DEFAULT_MIRROR_MAX_IN_FLIGHT,
        mirror_timeout: float = DEFAULT_MIRROR_TIMEOUT,
        max_answer_bytes: int = 1024 * 1024,
        run_later: Callable[[Callable[[], None]], None] | None = None,
    ) -> None:
        self.own_version = own_version
        # The pod template's version; own_version follows the traffic file's "served" (an
        # in-place promotion changes what this pod serves without a new template).
        self.template_version = own_version
        self.mirror_max_in_flight = mirror_max_in_flight
        self.mirror_timeout = mirror_timeout
        self.max_answer_bytes = max_answer_bytes
        self.settings = NO_ROLLOUT
        self.figures = RolloutFigures("")
        self.role = NO_ROLLOUT.role(own_version)
        self.acting = False  # the one attribute the hot path checks
        self.mirror = PercentSelector(0)
        self.split = PercentSelector(0)
        self.self_compare = PercentSelector(0)
        self.mirrors_started = 0  # event loop only
        self.mirrors_ended = 0  # event loop only: ended without a comparison
        self.worker = CompareWorker(max_answer_bytes, run_later)
        self.on_change: list[Callable[[TrafficSettings], None]] = []
        self.breaker = CircuitBreaker()
        # Header lines naming who answered an infer call: this pod, or the candidate.
        self.answer_fields = answer_fields(own_version, "")
        self.candidate_fields = b""

    @property
    def mirrors_in_flight(self) -> int:
        return self.mirrors_started - self.mirrors_ended - self.worker.finished

    def apply(self, settings: TrafficSettings) -> None:
        """New settings (event loop). A new epoch starts new figures."""
        old = self.settings
        self.settings = settings
        self.own_version = settings.served or self.template_version
        if settings.epoch != old.epoch:
            self.figures = RolloutFigures(settings.epoch)
        self.role = settings.role(self.own_version)
        if settings.mirror_percent != old.mirror_percent:
            self.mirror = PercentSelector(settings.mirror_percent)
        if settings.canary_weight != old.canary_weight:
            self.split = PercentSelector(settings.canary_weight)
        if settings.self_compare_percent != old.self_compare_percent:
            self.self_compare = PercentSelector(settings.self_compare_percent)
        self.acting = settings.acts(self.own_version)
        if settings.candidate != old.candidate or settings.epoch != old.epoch:
            self.breaker = CircuitBreaker()  # a new candidate starts trusted
        self.answer_fields = answer_fields(self.own_version, settings.epoch)
        c = settings.candidate
        self.candidate_fields = answer_fields(c.version, settings.epoch) if c else b""
        for callback in self.on_change:
            callback(settings)
        log.info(
            "traffic settings: epoch %r, role %s, candidate %s, mirror %g%%, split %g%%",
            settings.epoch,
            self.role,
            settings.candidate.http if settings.candidate else "none",
            settings.mirror_percent,
            settings.canary_weight,
        )

    # -- the split, decided and counted here for the HTTP and the gRPC paths alike --

    def choose_split(self, now: float, reachable: bool) -> bool | None:
        """Is this infer request the canary weight's share for the candidate?
        None: not taken (it may still be mirrored); True: the candidate answers it;
        False: taken while the circuit breaker is open, so this pod answers it
        (counted as a fallback) and it is not mirrored either. ``reachable``: the
        path has a way to the candidate (an HTTP pool, a gRPC address)."""
        if not (self.split.percent and self.split.take() and reachable):
            return None
        if self.breaker.allows(now):
            return True
        self.figures.split_fallbacks += 1  # the candidate keeps failing: this pod answers
        return False

    def split_failed(self, now: float, timeout: bool) -> None:
        """The candidate failed a split request (a server error, a reset, no answer
        in time): a candidate error, answered by this pod instead."""
        figures = self.figures
        figures.split_errors += 1
        if timeout:
            figures.split_timeouts += 1
        figures.split_fallbacks += 1
        if self.breaker.failure(now):
            figures.breaker_trips += 1

    def split_answered(self) -> None:
        """The candidate answered a split request."""
        self.figures.split += 1
        self.breaker.success()

    def mirror_slot(self) -> bool:
        """Room for one more mirrored request (counts a drop when there is none)."""
        if self.mirrors_in_flight >= self.mirror_max_in_flight:
            self.figures.mirror_dropped += 1
            return False
        return True

    def compare(
        self,
        figures: RolloutFigures,
        stable: Answer,
        candidate: Answer | None,
        self_compare: bool = False,
    ) -> None:
        """Queue the comparison of a mirrored request's two 200 answers (None: the
        candidate's answer was too large to keep; counted as not compared).
        ``self_compare``: the second answer is this pod's own (the noise floor)."""
        agreement = self.settings.agreement
        self.worker.offer(
            figures, stable, candidate, agreement.mode, agreement.tolerance, self_compare
        )

    def document(self, loaded: dict[str, list[str]]) -> dict[str, object]:
        return self.figures.document(version=self.own_version, role=self.role, loaded=loaded)


class CompareWorker:
    """Compares mirrored answers off the event loop, in a thread that is awake anyway.

    ``run_later`` is the statistics feeder's (:meth:`StatsFeeder.run_later`):
    a thread of its own, woken per job, cost about 300 us of CPU per job in
    wake-ups and GIL hand-overs, five times the comparison. Without one
    (unit tests) jobs run at once.
    """

    def __init__(
        self, max_bytes: int, run_later: Callable[[Callable[[], None]], None] | None = None
    ) -> None:
        self.max_bytes = max_bytes
        self.run_later = run_later
        self.queued = 0  # event loop only
        self.finished = 0  # worker only

    def offer(
        self,
        figures: RolloutFigures,
        stable: Answer,
        candidate: Answer | None,
        mode: str,
        tolerance: float | None,
        self_compare: bool = False,
    ) -> None:
        self.queued += 1
        job = functools.partial(
            self.run_one, figures, stable, candidate, mode, tolerance, self_compare
        )
        if self.run_later is None:
            job()
        else:
            self.run_later(job)

    def run_one(
        self,
        figures: RolloutFigures,
        stable: Answer,
        candidate: Answer | None,
        mode: str,
        tolerance: float | None,
        self_compare: bool = False,
    ) -> None:
        try:
            if candidate is None:
                if not self_compare:
                    figures.not_compared += 1
                return
            try:
                agreed = compare_answers(
                    stable, candidate, mode=mode, tolerance=tolerance, max_bytes=self.max_bytes
                )
            except Exception:  # a bug here must not count as agreement
                log.exception("comparison of a mirrored answer failed")
                agreed = None
            if self_compare:
                if agreed is not None:
                    figures.self_compared += 1
                    figures.self_agreed += bool(agreed)
            elif agreed is None:
                figures.not_compared += 1
            else:
                figures.compared += 1
                if agreed:
                    figures.agreed += 1
        finally:
            self.finished += 1

    @property
    def pending(self) -> int:
        return self.queued - self.finished

    async def drain(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while self.pending and time.monotonic() < deadline:
            await asyncio.sleep(0.005)


class TrafficWatcher:
    """Polls the traffic file once a second in a thread; applies changes on the loop.

    The kubelet swaps a ConfigMap volume's files through a symlink, so a read
    sees either the old or the new content whole. Reading by content (not
    mtime) also catches that swap, whose target files keep their old times.
    """

    def __init__(
        self,
        path: str,
        apply: Callable[[TrafficSettings], None],
        poll_seconds: float = _POLL_SECONDS,
    ) -> None:
        self.path = Path(path) if path else None
        self.apply = apply
        self.poll_seconds = poll_seconds
        self._last: bytes | None = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self.errors = 0

    def read(self) -> bytes:
        if self.path is None:
            return b""
        try:
            return self.path.read_bytes()
        except FileNotFoundError:
            return b""  # no rollout configured (no ConfigMap mounted)
        except OSError as exc:
            raise TrafficError(f"cannot read {self.path}: {exc}") from exc

    def check(self) -> TrafficSettings | None:
        """New valid settings when the file's content changed, else None."""
        try:
            content = self.read()
        except TrafficError as exc:
            marker = str(exc).encode()
            if marker != self._last:
                self._last = marker
                self.errors += 1
                log.error("traffic file: %s; keeping the last good settings", exc)
            return None
        if content == self._last:
            return None
        self._last = content
        try:
            return parse_traffic(content)
        except TrafficError as exc:
            self.errors += 1
            log.error("traffic file %s: %s; keeping the last good settings", self.path, exc)
            return None

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        """Apply the file's current settings now (blocking, at start-up), then poll."""
        self._loop = loop
        first = self.check()
        if first is not None:
            self.apply(first)
        if self.path is None:
            return
        self._thread = threading.Thread(target=self._poll, name="traffic-file", daemon=True)
        self._thread.start()

    def _poll(self) -> None:
        loop = self._loop
        assert loop is not None
        while not self._stop.wait(self.poll_seconds):
            try:
                settings = self.check()
            except Exception:  # never let the watcher die
                log.exception("traffic file check failed")
                continue
            if settings is not None:
                with contextlib.suppress(RuntimeError):  # loop closed at shutdown
                    loop.call_soon_threadsafe(self.apply, settings)

    def stop(self) -> None:
        self._stop.set()
        t, self._thread = self._thread, None
        if t is not None:
            t.join(5.0)


@dataclass
class LoadedCache:
    """Triton's repository index (model -> READY versions), refreshed at most every ``ttl``."""

    ttl: float = 10.0
    value: dict[str, list[str]] | None = None
    at: float = float("-inf")


def ready_versions(index: object) -> dict[str, list[str]]:
    """Model -> READY versions from Triton's ``POST /v2/repository/index`` answer."""
    out: dict[str, list[str]] = {}
    if not isinstance(index, list):
        return out
    for entry in index:
        if not isinstance(entry, dict) or entry.get("state") != "READY":
            continue
        name, version = entry.get("name"), entry.get("version")
        if isinstance(name, str) and version is not None:
            out.setdefault(name, []).append(str(version))
    for versions in out.values():
        versions.sort(key=lambda v: (len(v), v))
    return out


class RolloutCollector(Collector):
    """``modelops_rollout_sidecar_*`` from the current figures, at scrape time."""

    def __init__(self, rollout: Rollout) -> None:
        self.rollout = rollout

    def collect(self) -> Iterator[object]:
        r = self.rollout
        f = r.figures
        labels = ["role", "version"]
        values = [r.role, r.own_version]
        info = GaugeMetricFamily(
            "modelops_rollout_sidecar_info",
            "1 for the sidecar's current role and version; epoch is the rollout's candidate "
            "version (counters restart when it changes).",
            labels=[*labels, "epoch"],
        )
        info.add_metric([*values, f.epoch], 1)
        yield info
        counters = (
            ("requests", "Infer calls answered by this pod's Triton (HTTP and gRPC).", f.requests),
            ("errors", "Of those, non-2xx answers, gRPC errors and failed upstreams.", f.errors),
            ("mirrored", "Infer requests mirrored to the candidate.", f.mirrored),
            ("mirror_dropped", "Mirrors not sent: in-flight cap, or body too large.",
             f.mirror_dropped),
            ("mirror_errors", "Mirrors the candidate failed, answered non-200 or timed out.",
             f.mirror_errors),
            ("compared", "Mirrored requests whose two answers were compared.", f.compared),
            ("agreed", "Compared answers that agree (spec.rollout.analysis.agreement).",
             f.agreed),
            ("split", "Infer requests answered by the candidate (canary weight).", f.split),
            ("split_fallbacks", "Split requests answered here: candidate unreachable.",
             f.split_fallbacks),
        )  # fmt: skip
        for name, doc, value in counters:
            family = CounterMetricFamily(
                f"modelops_rollout_sidecar_{name}", doc + " Since the epoch began.", labels=labels
            )
            family.add_metric(values, value)
            yield family
        hist = HistogramMetricFamily(
            "modelops_rollout_sidecar_latency_seconds",
            "Latency of the infer calls counted in requests, since the epoch began.",
            labels=labels,
        )
        hist.add_metric(
            values,
            [(bound_label(b), n) for b, n in f.cumulative_buckets()],
            sum_value=f.latency_sum,
        )
        yield hist
