"""Between the proxy and the monitor: a queue bounded in bytes and one worker thread.

The proxy hands over each payload worth a look together with the function
that reads it (:meth:`StatsFeeder.offer`): the HTTP proxy passes a request
body and :func:`modelops.drift.payload.http_parser`; any other front end
(gRPC) passes its own bytes and parser. ``offer`` costs a lock and an append
on the event loop; everything else -- decompression, JSON, numpy, binning,
window evaluation -- happens in the worker thread, so a large or hostile body
can slow the statistics but never the proxy.

Bounds, each counted when it bites (never logged per request):

- a payload above ``max_payload_bytes`` is not queued (skipped, ``too_large``);
- the queue holds at most ``max_queue_bytes`` of payloads; past that new ones
  are dropped (``modelops_drift_dropped_samples``);
- the worker may use at most ``cpu_share`` of one core, measured with its
  own thread CPU clock over a short burst allowance; past that payloads are
  dropped too. This is what keeps the proxy's share of the GIL: C code such
  as ``json.loads`` holds the GIL for its whole call, so a thread busy
  parsing large JSON bodies back to back would otherwise stall the event
  loop for as long as it works. (numpy's bulk operations release the GIL;
  binary tensors, tritonclient's default, cost little either way.)

Parse failures of any kind become skips with a reason (``SkipSample``);
the worker itself never dies of one.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import random
import threading
import time

from modelops.drift.metrics import DriftMetrics
from modelops.drift.monitor import DriftMonitor
from modelops.drift.payload import FeatureMapper, Parser, SkipSample, guarded

log = logging.getLogger("modelops.drift.feeder")

DEFAULT_MAX_PAYLOAD_BYTES = 1024 * 1024
DEFAULT_MAX_QUEUE_BYTES = 16 * 1024 * 1024
DEFAULT_CPU_SHARE = 0.25
# CPU seconds the worker may spend in one go above its share (one large JSON body).
_BURST_SECONDS = 0.05


class StatsFeeder:
    def __init__(
        self,
        monitor: DriftMonitor,
        metrics: DriftMetrics,
        input_name: str | None = None,
        max_queue_bytes: int = DEFAULT_MAX_QUEUE_BYTES,
        sample_rate: float = 1.0,
        max_payload_bytes: int = DEFAULT_MAX_PAYLOAD_BYTES,
        cpu_share: float = DEFAULT_CPU_SHARE,
    ) -> None:
        self.monitor = monitor
        self.metrics = metrics
        self.sample_rate = sample_rate
        self.max_queue_bytes = max_queue_bytes
        self.max_payload_bytes = max_payload_bytes
        self.cpu_share = cpu_share
        self.mapper = FeatureMapper(monitor.names, input_name)
        self._queue: collections.deque[tuple[bytes, Parser]] = collections.deque()
        self._cond = threading.Condition(threading.Lock())
        self.queued_bytes = 0
        self.pending = 0  # queued + being processed
        self.dropped = 0
        self.skipped: dict[str, int] = {}
        self.processed = 0
        self._debt = 0.0  # CPU seconds used above the allowance, at time _debt_at
        self._debt_at = time.monotonic()
        self._thread: threading.Thread | None = None
        self._stopping = False

    # -- hot path (event loop) -----------------------------------------------------

    def offer(self, payload: bytes, parse: Parser) -> None:
        """Queue ``payload`` for ``parse`` in the worker. Never blocks, never raises.

        ``parse`` runs in the worker thread; it returns the payload's numeric
        input tensors by name and may raise :class:`SkipSample`.
        """
        if self.sample_rate < 1.0 and random.random() >= self.sample_rate:
            return
        n = len(payload)
        if n > self.max_payload_bytes:
            self.skip("too_large")
            return
        if self._debt > _BURST_SECONDS and self._current_debt() > _BURST_SECONDS:
            self._drop()
            return
        with self._cond:
            if self.queued_bytes + n > self.max_queue_bytes:
                full = True
            else:
                full = False
                self._queue.append((payload, parse))
                self.queued_bytes += n
                self.pending += 1
                self._cond.notify()
        if full:
            self._drop()

    def skip(self, reason: str) -> None:
        """Count a payload that was not looked at, with its reason (thread-safe)."""
        with self._cond:
            self.skipped[reason] = self.skipped.get(reason, 0) + 1
        self.metrics.skipped.labels(self.metrics.model, reason).inc()

    def _drop(self) -> None:
        self.dropped += 1  # only ever written on the event loop
        self.metrics.dropped_m.inc()

    def _current_debt(self) -> float:
        return max(0.0, self._debt - (time.monotonic() - self._debt_at) * self.cpu_share)

    @property
    def queued(self) -> int:
        return len(self._queue)

    # -- lifecycle -------------------------------------------------------------------

    def start(self) -> None:
        if self._thread is not None:
            return
        self._stopping = False
        self._thread = threading.Thread(target=self._work, name="drift-stats", daemon=True)
        self._thread.start()

    async def stop(self) -> None:
        t = self._thread
        if t is None:
            return
        with self._cond:
            self._stopping = True
            self._cond.notify()
        await asyncio.get_running_loop().run_in_executor(None, t.join, 5.0)
        self._thread = None

    async def drain(self, timeout: float = 30.0) -> None:
        """Wait until everything queued so far is processed (tests, shutdown)."""
        deadline = time.monotonic() + timeout
        while self.pending and time.monotonic() < deadline:
            await asyncio.sleep(0.002)

    # -- the worker ------------------------------------------------------------------

    def process(self, payload: bytes, parse: Parser) -> None:
        """Parse one payload and add its rows to the monitor (worker thread, or tests)."""
        try:
            rows = self.mapper.rows(guarded(parse, payload))
        except SkipSample as skip:
            self.skip(skip.reason)
            return
        self.monitor.add(rows)
        self.metrics.samples_m.inc(rows.shape[0])
        self.processed += 1

    def _work(self) -> None:
        window_seconds = self.monitor.window.seconds
        period = max(0.05, min(1.0, window_seconds / 10)) if window_seconds else None
        next_tick = time.monotonic() + period if period else None
        while True:
            with self._cond:
                while not self._queue and not self._stopping:
                    wait = None if next_tick is None else max(0.0, next_tick - time.monotonic())
                    if wait == 0.0:
                        break
                    self._cond.wait(wait)
                if self._stopping:
                    return
                item = self._queue.popleft() if self._queue else None
                if item is not None:
                    self.queued_bytes -= len(item[0])
            if item is not None:
                t0 = time.thread_time()
                try:
                    self.process(*item)
                except Exception:  # a bug in the monitor must never stop the worker
                    self.skip("error")
                finally:
                    with self._cond:
                        self.pending -= 1
                self._charge(time.thread_time() - t0)
            if next_tick is not None and time.monotonic() >= next_tick:
                assert period is not None
                next_tick = time.monotonic() + period
                try:
                    self.monitor.tick()
                except Exception:
                    log.exception("time-based drift evaluation failed")

    def _charge(self, seconds: float) -> None:
        now = time.monotonic()
        debt = max(0.0, self._debt - (now - self._debt_at) * self.cpu_share)
        self._debt, self._debt_at = debt + seconds, now
