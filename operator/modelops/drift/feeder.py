"""Between the proxy and the monitor: a queue bounded in bytes and one worker thread.

The proxy hands over each payload worth a look together with the function
that reads it (:meth:`StatsFeeder.offer`): the HTTP proxy passes a request
body and :func:`modelops.drift.payload.http_parser`; any other front end
(gRPC) passes its own bytes and parser. ``offer`` is an append to a deque on
the event loop; everything else -- decompression, JSON, numpy, binning,
window evaluation -- happens in the worker thread, so a large or hostile body
can slow the statistics but never the proxy.

The worker is not woken per payload: it wakes every ``batch_seconds``
(20 ms) and takes whatever has queued as one batch, handing the GIL back
every 0.5 ms of work. Waking a thread per request costs a dozen futex calls
and a GIL hand-over each time (measured: ~15 futex calls per request and
about twice the sidecar's CPU per request); one wake-up per batch costs
that once per 20 ms, whatever the request rate (``wakeups`` and ``batches``
count them; a test holds it at a few per 1,000 requests).

A batch is read with as little Python per payload as possible: HTTP
binary tensor bodies (tritonclient's default) whose JSON header is
byte-identical to one seen before, and gRPC ModelInfer messages that match
one seen before up to their ``raw_input_contents``, are not parsed again;
the worker slices their tensor bytes at the offsets it found the first time
(:class:`~modelops.drift.payload.PlannedParser`) and turns the whole batch
into one array, one window update and one metric increment. Any other payload is
parsed whole, as before. The statistics are the same either way (every
row of every sampled request).

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

The same thread runs other off-loop jobs (:meth:`StatsFeeder.run_later`: the
comparison of mirrored answers during a gated rollout). A second thread woken
per job cost about 300 us of CPU per job in wake-ups and GIL hand-overs
(bench/rollout/mirror.py), against ~60 us for the comparison itself; this
thread is awake anyway. Jobs are bounded by their producer (the mirror cap),
not by this queue, and are not charged to the statistics' CPU share.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import random
import threading
import time
from collections.abc import Callable

import numpy as np

from modelops.drift.metrics import DriftMetrics
from modelops.drift.monitor import DriftMonitor
from modelops.drift.payload import (
    BinaryPlan,
    FeatureMapper,
    Parser,
    PlannedParser,
    SkipSample,
    guarded,
)

log = logging.getLogger("modelops.drift.feeder")

DEFAULT_MAX_PAYLOAD_BYTES = 1024 * 1024
DEFAULT_MAX_QUEUE_BYTES = 16 * 1024 * 1024
DEFAULT_CPU_SHARE = 0.5
# CPU seconds the worker may spend in one go above its share (one large JSON body).
_BURST_SECONDS = 0.25
# How often the worker wakes up and takes what has queued as one batch.
_BATCH_SECONDS = 0.02
# Layouts whose plan is remembered.
_PLANS = 256
# Worker CPU time between two explicit GIL hand-overs: the longest the event
# loop waits for the GIL because of statistics (a hand-over per payload would
# cost more in futex calls than the parsing itself).
_SLICE_SECONDS = 0.0005
# Payload bytes taken from the queue in one go (see _work_batch).
_CHUNK_BYTES = 64 * 1024


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
        # deque append/popleft are atomic: no lock between the loop and the worker.
        self._queue: collections.deque[tuple[bytes, Parser]] = collections.deque()
        self._jobs: collections.deque[Callable[[], None]] = collections.deque()
        self._lock = threading.Lock()  # only for the skip counts
        self._bytes_in = 0  # written by the loop only
        self._bytes_out = 0  # written by the worker only
        self._items_in = 0
        self._items_out = 0
        self.dropped = 0
        self.skipped: dict[str, int] = {}
        self.processed = 0
        self._debt = 0.0  # CPU seconds used above the allowance, at time _debt_at
        self._debt_at = time.monotonic()
        self._thread: threading.Thread | None = None
        self._stopping = False
        self.poll_seconds = _BATCH_SECONDS
        self.wakeups = 0  # worker wake-ups (worker only; read by tests and /metrics)
        self.batches = 0  # wake-ups that found payloads
        # layout key (PlannedParser.plan_key) -> where the features are; worker only.
        self._plans: dict[tuple[object, ...], BinaryPlan | None] = {}

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
        if self._bytes_in - self._bytes_out + n > self.max_queue_bytes:
            self._drop()
            return
        self._bytes_in += n
        self._items_in += 1
        self._queue.append((payload, parse))

    def run_later(self, job: Callable[[], None]) -> None:
        """Run ``job`` in the worker thread (it must not raise; it is not charged)."""
        self._jobs.append(job)

    def skip(self, reason: str) -> None:
        """Count a payload that was not looked at, with its reason (thread-safe)."""
        with self._lock:
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

    @property
    def queued_bytes(self) -> int:
        return self._bytes_in - self._bytes_out

    @property
    def pending(self) -> int:
        """Payloads queued or being processed."""
        return self._items_in - self._items_out

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
        self._stopping = True
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
        rows = self._rows(payload, parse)
        if rows is not None:
            self._add(rows, 1)

    def _rows(self, payload: bytes, parse: Parser) -> np.ndarray | None:
        try:
            return self.mapper.rows(guarded(parse, payload))
        except SkipSample as skip:
            self.skip(skip.reason)
            return None

    def _add(self, rows: np.ndarray, payloads: int) -> None:
        self.monitor.add(rows)
        self.metrics.samples_m.inc(rows.shape[0])
        self.processed += payloads

    def _plan(self, payload: bytes, parse: PlannedParser) -> BinaryPlan | None:
        key = parse.plan_key(payload)
        if key is None:
            return None
        plans = self._plans
        try:
            return plans[key]
        except KeyError:
            pass
        plan = parse.make_plan(payload, self.mapper.names, self.mapper.input_name)
        if len(plans) >= _PLANS:
            plans.clear()  # new shapes all the time: start over rather than grow
        plans[key] = plan
        return plan

    def process_batch(self, batch: list[tuple[bytes, Parser]]) -> None:
        """Every payload of ``batch`` into the monitor, with one window update for
        the payloads read by plan (worker thread, or tests)."""
        nf = len(self.mapper.names)
        blocks: list[np.ndarray] = []
        slices: list[bytes] = []
        dtype: np.dtype | None = None
        n = 0
        for payload, parse in batch:
            plan = None
            if isinstance(parse, PlannedParser):
                try:
                    plan = self._plan(payload, parse)
                except Exception:  # a plan is only a shortcut: the full parse decides
                    plan = None
            if plan is not None:
                if plan.dtype != dtype and slices:
                    blocks.append(_from_slices(slices, dtype, nf))
                    slices = []
                dtype = plan.dtype
                slices.append(payload[plan.start : plan.end])
                n += 1
                continue
            try:
                rows = self._rows(payload, parse)
            except Exception:  # a bug in a parser must never stop the worker
                self.skip("error")
                continue
            if rows is not None:
                blocks.append(rows)
                n += 1
        if slices:
            blocks.append(_from_slices(slices, dtype, nf))
        if not blocks:
            return
        rows = blocks[0] if len(blocks) == 1 else np.concatenate(blocks)
        try:
            self._add(rows, n)
        except Exception:  # a bug in the monitor must never stop the worker
            log.exception("drift statistics update failed")

    def _work(self) -> None:
        window_seconds = self.monitor.window.seconds
        period = max(0.05, min(1.0, window_seconds / 10)) if window_seconds else None
        next_tick = time.monotonic() + period if period else None
        queue, jobs = self._queue, self._jobs
        while not self._stopping:
            time.sleep(self.poll_seconds)
            self.wakeups += 1
            while jobs and not self._stopping:
                job = jobs.popleft()
                try:
                    job()
                except Exception:  # a bug in a job must never stop the statistics
                    log.exception("off-loop job failed")
            if queue:
                self.batches += 1
                self._work_batch(queue)
            if next_tick is not None and time.monotonic() >= next_tick:
                assert period is not None
                next_tick = time.monotonic() + period
                try:
                    self.monitor.tick()
                except Exception:
                    log.exception("time-based drift evaluation failed")

    def _work_batch(self, queue: collections.deque[tuple[bytes, Parser]]) -> None:
        """What has queued, in chunks; the GIL goes back to the event loop after every
        0.5 ms of CPU. Each chunk is charged to the CPU share."""
        slice_end = time.thread_time() + _SLICE_SECONDS
        while queue and not self._stopping:
            t0 = time.thread_time()
            batch: list[tuple[bytes, Parser]] = []
            size = 0
            # A chunk ends at 16 payloads or 64 KiB: read by plan that is microseconds,
            # parsed whole (a 1 MiB JSON body: ~20 ms holding the GIL) it is one payload.
            while queue and len(batch) < 16 and size < _CHUNK_BYTES:
                item = queue.popleft()
                batch.append(item)
                size += len(item[0])
            self.process_batch(batch)
            self._bytes_out += size
            self._items_out += len(batch)
            t1 = time.thread_time()
            self._charge(t1 - t0)
            if t1 > slice_end and queue:
                time.sleep(0)  # hand the GIL back to the event loop
                slice_end = time.thread_time() + _SLICE_SECONDS

    def _charge(self, seconds: float) -> None:
        now = time.monotonic()
        debt = max(0.0, self._debt - (now - self._debt_at) * self.cpu_share)
        self._debt, self._debt_at = debt + seconds, now


def _from_slices(slices: list[bytes], dtype: np.dtype | None, nf: int) -> np.ndarray:
    data = slices[0] if len(slices) == 1 else b"".join(slices)
    return np.frombuffer(data, dtype=dtype).reshape(-1, nf).astype(np.float64)
