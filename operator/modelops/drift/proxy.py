"""The KServe v2 HTTP proxy in front of Triton: its configuration, client side and server.

Hot path: plain asyncio protocols driven by callbacks (no task, no future
per request) and :mod:`modelops.drift.http1` framing. A request's head is
forwarded as received minus hop-by-hop fields over a pooled keep-alive
connection to Triton; Triton's response goes back to the client as received
(status line, every end-to-end header including ``Content-Encoding`` and
``Inference-Header-Content-Length``, body bytes), streamed as it arrives
whatever its framing. Nothing is decompressed, re-encoded or re-serialised.

Bounded by construction. Whatever clients (or Triton) send, memory stays
within a sum of configured limits:

- at most ``max_clients`` client connections; one more gets 503 with
  ``Retry-After`` and is closed;
- a request head must arrive within ``header_timeout`` (and fit 64 KiB), a
  body may pause at most ``body_timeout``, a keep-alive connection may idle
  ``idle_timeout``; past any of them the client gets 408 and is closed;
- request bodies up to ``stats_max_bytes`` (and chunked bodies, which are
  de-chunked) are buffered, since they are what drift statistics read; all
  buffered bodies together stay under ``max_buffered_bytes``, and a request
  that would pass it gets 503 with ``Retry-After``. Larger length-framed
  bodies are streamed to Triton and never held whole;
- backpressure both ways: while Triton's socket is full the client is not
  read, and while the client's socket is full Triton is not read
  (``pause_writing``/``resume_writing`` -> ``pause_reading``), so one
  connection holds at most a transport buffer (64 KiB high-water mark) plus
  one socket read (256 KiB) per direction. A client that reads nothing of
  its response for ``body_timeout`` is disconnected;
- the statistics queue is bounded in bytes and the worker works off the
  event loop (:mod:`modelops.drift.feeder`); decompression stops at
  ``stats_max_bytes``;
- the caches of parsed heads (request heads, Triton's response heads, the
  heads sent to clients; see :class:`~modelops.drift.request_head.ParsedHead`)
  and the worker's layout plans hold at most 256 entries of at most 4 KiB
  keys each: under 5 MiB together.

With the defaults (256 clients, 64 MiB buffered, 16 MiB statistics queue,
1 MiB statistics cap) the bound is about 60 MiB of interpreter, numpy and
aiohttp + 64 MiB buffered bodies + 16 MiB queued samples + ~16 MiB for the
sample being parsed + 256 x 320 KiB of transport buffers (only if every
connection streams at once to a reader that does not read) = 236 MiB, under
the 256 MiB target; ``spec.driftMonitor.resources`` defaults to a 384Mi limit
for head room (the memory cgroup also charges kernel socket buffers).
``tests/drift/test_sidecar_abuse.py`` measures the real process against each
abuse case of issue 10 (a 53 MiB JSON body, six stalled 64 MiB bodies, a
gzip bomb, 150 MiB responses to a client that never reads, 300 slow heads,
20,000 requests): peak RSS 62-65 MiB in each, 89 MiB under a stream of
1 MiB JSON bodies being sampled (issue 19 re-measured both before and after
its changes on one machine: 75-78 MiB in each case, 104 MiB before and
107 MiB after under the 1 MiB JSON stream).

Only a successful ``POST /v2/models/{name}[/versions/{v}]/infer`` with a
buffered body is looked at, after its response was written: the body is
offered to :class:`~modelops.drift.feeder.StatsFeeder` with
:func:`~modelops.drift.payload.http_parser`. Streamed (large) bodies are
counted as skipped, reason ``too_large``.

Errors: what Triton answers (bad JSON, wrong dtype or shape, unknown model)
passes back untouched. The proxy's own errors use Triton's error shape
``{"error": "..."}``: 400/431/501/505 for requests it cannot frame, 408 for
timeouts, 413 for a body over ``max_body_bytes``, 503 past a capacity limit,
502 when Triton cannot be reached or breaks the protocol, 504 when Triton
does not answer within ``upstream_timeout`` (seconds without a byte from
Triton). Once a response has started streaming, a failure can only close
the client connection.

A pooled connection that Triton closed while idle can fail the first request
sent on it before any byte comes back; a buffered request is retried once on
a fresh connection (Triton closed it, so it never ran the request).

Timeouts are checked by one sweep over all connections a few times a
second rather than a timer per request: re-arming a timer on every read
would cost more than the rest of the hot path.

Gated rollouts (:mod:`modelops.drift.traffic_plane`; docs/rollouts.md): while the
traffic file names a candidate and this sidecar is stable, an infer request
chosen for the weighted split is sent to the candidate's pool of connections
instead of Triton's (same framing, limits and backpressure; if the candidate
cannot be connected to, Triton answers), and one chosen for mirroring keeps a
copy of Triton's answer as it streams to the client, then a
:class:`~modelops.drift.mirror.Mirror` sends the request to the candidate and
hands both answers to the comparison worker. Mirrors are bounded by
``mirror_max_in_flight`` (counted from the choice to the end of the
comparison) and ``stats_max_bytes`` per body and answer: 16 x 3 MiB with the
defaults, on top of the bound above. Every infer exchange ends in the
per-epoch figures of ``GET /rollout``.

The sidecar's own endpoints (``/metrics``, ``/drift``, ``/healthz``, ``/rollout``)
are a small aiohttp app on a separate port (:mod:`modelops.drift.admin_endpoints`):
not on the hot path, and never mixed with Triton's URL space.

This module holds :class:`ProxyConfig`, the client side (``_Downstream``: reading
requests within the limits above, relaying each to Triton or the candidate and
the answer back, the timeout checks) and :class:`DriftProxy` (servers, sweep,
drain, the candidate's pool, statistics). The rest is one concern per module:
:mod:`~modelops.drift.request_head` (what a request head's bytes say, cached),
:mod:`~modelops.drift.upstream_pool` (connections to Triton and their pools),
:mod:`~modelops.drift.routed_request` (the rollout's choice for one infer request:
split, mirror or noise floor, and the answer kept for the mirror),
:mod:`~modelops.drift.mirror` (mirrored requests) and
:mod:`~modelops.drift.admin_endpoints`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
import urllib.parse
from dataclasses import dataclass
from typing import Any, cast

from modelops.drift.admin_endpoints import AdminEndpoints
from modelops.drift.feeder import (
    DEFAULT_CPU_SHARE,
    DEFAULT_MAX_PAYLOAD_BYTES,
    DEFAULT_MAX_QUEUE_BYTES,
    StatsFeeder,
)
from modelops.drift.http1 import (
    MAX_HEAD_BYTES,
    ChunkedDecoder,
    Head,
    ProtocolError,
    RequestHead,
    RequestLine,
    client_response_head,
    find_bare_line_break,
    simple_response,
)
from modelops.drift.inplace import InPlaceRoute, in_place_route
from modelops.drift.metrics import DriftMetrics
from modelops.drift.mirror import Mirror
from modelops.drift.monitor import DriftMonitor
from modelops.drift.request_head import HEAD_CACHE, HEAD_CACHE_BYTES, ParsedHead, parsed_head
from modelops.drift.routed_request import RoutedRequest, route
from modelops.drift.traffic import TrafficSettings
from modelops.drift.traffic_plane import (
    DEFAULT_MIRROR_MAX_IN_FLIGHT,
    DEFAULT_MIRROR_TIMEOUT,
    Rollout,
    RolloutCollector,
    TrafficWatcher,
)
from modelops.drift.transport import nodelay
from modelops.drift.upstream_pool import (
    BODY,
    CLOSED,
    COALESCE_LIMIT,
    HEAD,
    IDLE,
    WAIT,
    WRITE_HIGH,
    WRITE_LOW,
    Pool,
    Upstream,
)

log = logging.getLogger("modelops.drift.proxy")

# Field added to what goes to the candidate (replacing the head's final CRLF).
_SPLIT_FIELD = b"X-Modelops-Split: 1\r\n\r\n"


@dataclass(frozen=True)
class ProxyConfig:
    upstream: str = "http://127.0.0.1:8000"
    model: str | None = None  # only this model's requests feed the monitor; None = all
    input_name: str | None = None
    max_body_bytes: int = 64 * 1024 * 1024
    upstream_timeout: float = 300.0
    connect_timeout: float = 5.0
    max_connections: int = 256  # pooled connections to Triton
    max_clients: int = 256
    max_buffered_bytes: int = 64 * 1024 * 1024
    header_timeout: float = 10.0
    body_timeout: float = 30.0
    idle_timeout: float = 60.0
    retry_after: int = 1
    stats_queue_bytes: int = DEFAULT_MAX_QUEUE_BYTES
    stats_max_bytes: int = DEFAULT_MAX_PAYLOAD_BYTES
    stats_cpu_share: float = DEFAULT_CPU_SHARE
    sample_rate: float = 1.0
    # Gated rollouts (see modelops.drift.traffic_plane): "" = no traffic file.
    model_version: str = ""
    traffic_file: str = ""
    mirror_max_in_flight: int = DEFAULT_MIRROR_MAX_IN_FLIGHT
    mirror_timeout: float = DEFAULT_MIRROR_TIMEOUT

    def upstream_address(self) -> tuple[str, int]:
        u = urllib.parse.urlsplit(self.upstream)
        if u.scheme != "http" or not u.hostname or u.path not in ("", "/") or u.query:
            raise ValueError(f"upstream must look like http://host:port, got {self.upstream!r}")
        return u.hostname, u.port or 80

    @property
    def sweep_period(self) -> float:
        shortest = min(
            self.header_timeout, self.body_timeout, self.idle_timeout, self.upstream_timeout
        )
        return max(0.02, min(0.5, shortest / 5))


# (Triton's head, close, chunked, fields added) -> the head the client gets.
_ClientHeadKey = tuple[bytes, bool, bool, bytes]
_CLIENT_HEADS: dict[_ClientHeadKey, bytes] = {}


def _client_head(head: Head, key: _ClientHeadKey) -> bytes:
    """Triton's response head as the client gets it, made and kept (bounded)."""
    _, close, chunked, fields = key
    out = client_response_head(head, close=close, chunked=chunked)
    if fields:
        out = out[:-2] + fields + b"\r\n"
    if len(head.raw) <= HEAD_CACHE_BYTES:
        if len(_CLIENT_HEADS) >= HEAD_CACHE:
            _CLIENT_HEADS.clear()  # many distinct heads: start over rather than grow
        _CLIENT_HEADS[key] = out
    return out


def _upstream_error(
    kind: str, detail: str, upstream: str, timeout: float, got_bytes: bool
) -> tuple[int, str]:
    """The status and message for a client whose request Triton failed (``kind``:
    timeout, protocol or closed; see ``Upstream``)."""
    if kind == "timeout":
        return 504, f"Triton at {upstream} did not answer in time ({timeout:g}s)"
    if kind == "protocol":
        return 502, f"Triton at {upstream}: {detail}"
    mid = " mid-response" if got_bytes else ""
    return 502, f"Triton at {upstream}: Triton closed the connection{mid}"


def _error_body(message: str) -> bytes:
    return json.dumps({"error": message}).encode()


# -- the client side -------------------------------------------------------------------


class _Downstream(asyncio.Protocol):
    """One client connection: requests are handled one after the other (pipelining-safe)."""

    def __init__(self, proxy: DriftProxy) -> None:
        self.proxy = proxy
        self.cfg = proxy.config
        assert proxy._loop is not None
        self.clock = proxy._loop.time
        self.transport: asyncio.Transport | None = None
        self.buf = bytearray()
        self.phase = IDLE
        self.since = proxy.now  # start of the current phase (loop time)
        self.last = self.since  # last byte from the client
        self.reading_paused = False  # by us, for backpressure
        self.write_blocked_at: float | None = None  # the client stopped reading
        self.up: Upstream | None = None
        self.close_after = False
        self.response_started = False
        # the request being read / proxied
        self.line: RequestLine | None = None
        self.head: RequestHead | None = None
        self.parsed: ParsedHead | None = None
        self.framing = "length"
        self.remaining = 0  # body bytes still to come (length framing)
        self.decoder: ChunkedDecoder | None = None
        self.streaming_body = False  # body goes to Triton as it arrives (bytes still due)
        self.streamed = False  # this request's body is streamed, not buffered
        self.retried = False
        self.body = b""
        self.upstream_data: list[bytes] = []
        self.reserved = 0  # bytes counted in proxy.buffered for this request
        self.t0 = 0.0
        self.endpoint = "other"
        # Gated rollout, set only for an infer request while the rollout acts:
        self.routed: RoutedRequest | None = None  # the rollout's choice for it
        self.split_pool: Pool | None = None  # the candidate answers it
        self.split_failed = False  # the candidate answered 5xx: its answer is dropped

    # -- asyncio callbacks ------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports do not subclass asyncio.Transport, hence the cast.
        self.transport = t = cast(asyncio.Transport, transport)
        proxy = self.proxy
        if len(proxy._clients) >= self.cfg.max_clients:
            proxy.rejected("connections")
            t.write(proxy.unavailable("too many connections"))
            t.close()
            self.phase = CLOSED
            return
        nodelay(t)
        t.set_write_buffer_limits(WRITE_HIGH, WRITE_LOW)
        proxy._clients.add(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self.phase = CLOSED
        self.proxy._clients.discard(self)
        self._unreserve()
        if self.routed is not None:
            self.routed.abandon()
        up, self.up = self.up, None
        if up is not None:
            up.reusable = False  # the response has nowhere to go
            self.proxy._pool_release(up)

    def data_received(self, data: bytes) -> None:
        phase = self.phase
        if phase == CLOSED:
            return
        self.last = self.clock()
        if self.streaming_body and phase == WAIT:
            self._stream_body(data)
            return
        self.buf += data
        if phase == WAIT:
            if len(self.buf) > MAX_HEAD_BYTES:
                self.pause_client_reading()  # a pipelining client far ahead of us
            return
        self._advance()

    # Backpressure: the client not reading our response -> stop reading Triton.
    def pause_writing(self) -> None:
        self.write_blocked_at = self.clock()
        if self.up is not None:
            self.up.pause()

    def resume_writing(self) -> None:
        self.write_blocked_at = None
        if self.up is not None:
            self.up.resume()
        elif self.phase == IDLE and self.buf:  # pipelined requests held back meanwhile
            self.resume_client_reading()
            self._advance()

    def pause_client_reading(self) -> None:
        if not self.reading_paused and self.phase != CLOSED and self.transport is not None:
            self.reading_paused = True
            self.transport.pause_reading()

    def resume_client_reading(self) -> None:
        if self.reading_paused and self.phase != CLOSED and self.transport is not None:
            self.reading_paused = False
            self.last = self.clock()
            self.transport.resume_reading()

    # -- output --------------------------------------------------------------------

    def write(self, data: bytes) -> None:
        if self.phase != CLOSED and self.transport is not None:
            self.transport.write(data)

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()
        self.phase = CLOSED

    def fail(self, status: int, message: str, *extra: bytes) -> None:
        """Answer with the proxy's own error and close the connection."""
        self.proxy.metrics.observe_request(status, self.endpoint, 0.0)
        if status == 503:
            extra = (*extra, self.proxy.retry_after)
        self.write(simple_response(status, _error_body(message), close=True, extra=extra))
        self.close()

    # -- reading requests ------------------------------------------------------------

    def _advance(self) -> None:
        try:
            if self.phase != BODY and not self._read_head():
                return
            self._read_body()
        except ProtocolError as err:
            self.fail(err.status, err.message)

    def _read_head(self) -> bool:
        buf = self.buf
        while buf.startswith(b"\r\n"):  # RFC 9112 2.2: ignore empty lines before a request
            del buf[:2]
        if not buf:
            return False
        if self.phase == IDLE:
            self.phase, self.since = HEAD, self.clock()
            self.endpoint = "other"
        i = buf.find(b"\r\n\r\n")
        if i < 0 or i > MAX_HEAD_BYTES:
            if len(buf) > MAX_HEAD_BYTES:
                raise ProtocolError(431, "request head too large")
            if find_bare_line_break(buf):
                raise ProtocolError(400, "bare CR or LF in the request head")
            return False
        raw = bytes(buf[: i + 4])
        parsed = self.proxy.heads.get(raw) or parsed_head(self.proxy.heads, raw)
        line, head = parsed.line, parsed.head
        self.parsed = parsed
        self.endpoint = parsed.endpoint
        del buf[: i + 4]
        self.framing, self.remaining = parsed.framing, parsed.remaining
        self.line, self.head = line, head
        self.t0 = time.perf_counter()
        self.phase, self.since = BODY, self.clock()
        self.decoder, self.streaming_body, self.streamed, self.body = None, False, False, b""
        self.close_after = parsed.close
        self.response_started = False
        cfg = self.cfg
        proxy = self.proxy
        if self.remaining > cfg.max_body_bytes:
            raise ProtocolError(
                413,
                f"request body of {self.remaining} bytes exceeds the proxy limit of "
                f"{cfg.max_body_bytes} bytes",
            )
        if self.framing == "chunked":
            self.decoder = ChunkedDecoder(max_body=cfg.max_body_bytes)
        elif self.remaining > cfg.stats_max_bytes:
            self.streaming_body = self.streamed = True
        elif self.remaining:
            self._reserve(self.remaining)
        if parsed.infer and proxy.rollout.acting:
            routed = self.routed = route(
                proxy.rollout,
                head,
                candidate_reachable=proxy.candidate_pool is not None,
                streamed=self.streamed,
                now=self.clock(),
            )
            if routed is not None and routed.split:
                self.split_pool = proxy.candidate_pool
        has_body = self.framing == "chunked" or self.remaining > 0
        if parsed.expect and has_body and not buf:
            self.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        return True

    def _reserve(self, n: int) -> None:
        proxy = self.proxy
        if proxy.buffered + n > self.cfg.max_buffered_bytes:
            proxy.rejected("buffered_bytes")
            raise ProtocolError(503, "the proxy is buffering too much data; retry later")
        proxy.buffered += n
        self.reserved += n

    def _unreserve(self) -> None:
        if self.reserved:
            self.proxy.buffered -= self.reserved
            self.reserved = 0

    def _read_body(self) -> None:
        """Move the body along; sends the request to Triton once it is complete."""
        buf = self.buf
        if self.streaming_body:
            self.phase = WAIT
            self.start_upstream()
            return
        if self.decoder is None:
            n = self.remaining
            if len(buf) < n:
                return
            if len(buf) == n:
                self.body = bytes(buf)
                buf.clear()
            else:
                self.body = bytes(buf[:n])
                del buf[:n]
        else:
            d = self.decoder
            try:
                used = d.feed(buf)
            except ProtocolError as err:
                if err.status == 413:
                    err.message = (
                        f"request body exceeds the proxy limit of {self.cfg.max_body_bytes} bytes"
                    )
                raise
            del buf[:used]
            if d.size > self.reserved:
                self._reserve(d.size - self.reserved)
            if not d.done:
                return
            self.body = bytes(d.body)
            self.decoder = None
        self.phase = WAIT
        self.start_upstream()  # the rest of buf waits for this exchange to finish

    def _stream_body(self, data: bytes) -> None:
        """A large length-framed body: straight on to Triton."""
        up = self.up
        n = self.remaining
        if up is None:  # still connecting: hold it (reading is paused meanwhile)
            self.buf += data
            return
        if len(data) > n:
            self.buf += data[n:]
            data = data[:n]
        self.remaining = n - len(data)
        if data and up.transport is not None:
            up.transport.write(data)
        if self.remaining == 0:
            self.streaming_body = False

    # -- one exchange --------------------------------------------------------------

    def start_upstream(self) -> None:
        """Send the current request to Triton on a pooled or new connection."""
        proxy = self.proxy
        pool = self.split_pool or proxy._pool
        assert pool is not None and self.line is not None and self.head is not None
        conn = pool.try_acquire()
        if conn is not None:
            self._send_request(conn)
            return
        if self.streaming_body:
            self.pause_client_reading()  # until the connection is there
        if not pool.reserve():
            pool.waiters.append(self)
            return
        task = asyncio.get_running_loop().create_task(self._connect(pool))
        proxy._tasks.add(task)
        task.add_done_callback(proxy._tasks.discard)

    async def _connect(self, pool: Pool) -> None:
        try:
            conn = await pool.connect()
        except (OSError, TimeoutError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else "timeout"
            if self.split_pool is not None and self.phase == WAIT:
                # The candidate cannot be reached: this pod's Triton answers instead.
                self._split_failed(timeout=reason == "timeout")
                return
            self._finish_error(502, f"Triton at {pool.url} is unreachable: {reason}")
            return
        if self.phase != WAIT:  # the client went away meanwhile
            self.proxy._pool_release(conn)
            return
        self._send_request(conn)

    def _send_request(self, conn: Upstream) -> None:
        assert self.line is not None and self.head is not None and conn.transport is not None
        self.up = conn
        conn.begin(self, self.line.method, self.clock())
        parsed = self.parsed
        assert parsed is not None
        if self.streaming_body:
            head = parsed.upstream_head(self.remaining)
            if self.split_pool is not None:
                head = self._split_head(head)
            conn.transport.write(head)
            pending, self.buf = bytes(self.buf), bytearray()
            self._stream_body(pending)
            self.resume_client_reading()
            return
        body = self.body
        head = parsed.upstream_head(len(body))
        if self.split_pool is not None:
            head = self._split_head(head)
        if len(body) > COALESCE_LIMIT:
            conn.transport.writelines([head, body])
        else:
            conn.transport.write(head + body)

    def _split_head(self, head: bytes) -> bytes:
        head = head[:-2] + _SPLIT_FIELD
        inplace = self.proxy.inplace
        return head if inplace is None else inplace.target.split_head(head)

    def response_head(self, head: Head, framing: str) -> bytes:
        up = self.up
        if (
            self.split_pool is not None
            and up is not None
            and up.status >= 500
            and not self.streamed
        ):
            # The candidate failed this split request: the client never sees it;
            # this pod's Triton answers instead (inference is idempotent).
            self.split_failed = True
            return b""
        self.response_started = True
        if framing == "close":
            self.close_after = True  # the body ends when the connection does
        if self.streaming_body:
            self.close_after = True  # Triton answered before the whole body: cannot resync
        fields = b""
        parsed = self.parsed
        if parsed is not None and parsed.infer:
            # Which version answered, under which rollout epoch (issue 18). A split
            # answer carries the candidate sidecar's own fields already.
            rollout = self.proxy.rollout
            if self.split_pool is None:
                fields = rollout.answer_fields
            elif b"\r\nx-modelops-version:" not in head.lower:
                fields = rollout.candidate_fields
        key = (head.raw, self.close_after, framing == "chunked", fields)
        out = _CLIENT_HEADS.get(key) or _client_head(head, key)
        if self.routed is not None:
            self.routed.response_head(head, framing, len(out))
        return out

    def send(self, first: bytes, second: bytes) -> None:
        t = self.transport
        if self.phase == CLOSED or t is None or self.split_failed:
            return
        if self.routed is not None:
            self.routed.keep(first, second)
        if second:
            if first:
                t.writelines([first, second])
            else:
                t.write(second)
        elif first:
            t.write(first)

    def exchange_done(self, conn: Upstream) -> None:
        status = conn.status
        if self.streaming_body:  # Triton answered without reading the whole body
            conn.reusable = False
            self.close_after = True
        self.up = None
        self.proxy._pool_release(conn)
        if self.split_failed:
            self._split_failed(timeout=False)
            return
        parsed = self.parsed
        assert parsed is not None
        if status == 200 and parsed.infer:
            self.proxy.sample(parsed, self.body, self.streamed)
        self._end_request(status)

    def upstream_failed(self, conn: Upstream, kind: str, detail: str = "") -> None:
        """Triton closed, broke the protocol or timed out before the response ended."""
        self.up = None
        conn.owner = None
        got_bytes = conn.got_bytes
        # A pooled connection Triton closed while idle: it never saw the request,
        # which can be sent again if it is still in memory.
        retry = kind == "closed" and conn.reused and not got_bytes and not self.streamed
        conn.reusable = False
        self.proxy._pool_release(conn)
        upstream = self.split_pool.url if self.split_pool is not None else self.cfg.upstream
        if retry and self.phase == WAIT and not self.retried:
            self.retried = True
            self.start_upstream()
            return
        if (
            self.split_pool is not None
            and self.phase == WAIT
            and not self.response_started
            and not self.streamed
        ):
            self._split_failed(timeout=kind == "split_timeout")
            return
        timeout = self.cfg.upstream_timeout
        self._finish_error(*_upstream_error(kind, detail, upstream, timeout, got_bytes))

    def _split_failed(self, timeout: bool) -> None:
        """The candidate failed a split request (5xx, reset, no answer in time):
        counted against it, and sent to this pod's Triton instead."""
        self.proxy.rollout.split_failed(self.clock(), timeout)
        if self.proxy.inplace is not None:
            self.proxy.inplace.observe(0 if timeout else 500, time.perf_counter() - self.t0)
        self.split_failed = False
        self.split_pool = None
        self.retried = False
        self.start_upstream()

    def _finish_error(self, status: int, message: str) -> None:
        if self.phase == CLOSED:
            return
        if self.response_started or self.streaming_body:
            self.close_after = True  # too late for an error response: cut the connection
        else:
            self.write(simple_response(status, _error_body(message)))
        self._end_request(status)

    def _end_request(self, status: int) -> None:
        seconds = time.perf_counter() - self.t0
        proxy = self.proxy
        proxy.metrics.observe_request(status, self.endpoint, seconds)
        parsed = self.parsed
        if parsed is not None and parsed.infer:
            routed = self.routed
            if routed is not None:
                assert self.line is not None and self.head is not None
                request = (self.line, self.head, self.body)
                by_candidate = self.split_pool is not None
                routed.end(proxy, status, seconds, request, by_candidate=by_candidate)
                self.routed = self.split_pool = None
            else:
                proxy.rollout.figures.observe(status, seconds)
        self._unreserve()
        self.body = b""
        self.retried = self.streaming_body = False
        if self.close_after or self.phase == CLOSED or proxy.draining:
            self.close()
            return
        self.phase, self.since = IDLE, self.clock()
        if self.write_blocked_at is not None:
            # The client is not reading its responses: take no new request
            # until it does (resume_writing), so responses cannot pile up.
            self.pause_client_reading()
            return
        self.resume_client_reading()
        if self.buf:
            self._advance()

    # -- timeouts (called by the proxy's sweep) ------------------------------------

    def check_timeouts(self, now: float) -> None:
        cfg = self.cfg
        if self.phase == CLOSED:
            return
        blocked = self.write_blocked_at
        if blocked is not None and now - blocked > cfg.body_timeout:
            self.proxy.timed_out("client_read")
            # abort, not close: close would wait for the client to read what is buffered.
            # connection_lost then releases the upstream connection (not for reuse).
            self.phase = CLOSED
            if self.transport is not None:
                self.transport.abort()
            return
        phase = self.phase
        if phase == IDLE:
            if now - self.since > cfg.idle_timeout:
                self.proxy.timed_out("idle")
                self.fail(408, "idle connection closed")
        elif phase == HEAD:
            if now - self.since > cfg.header_timeout:
                self.proxy.timed_out("header")
                self.fail(408, f"request head not received within {cfg.header_timeout:g}s")
        elif (
            phase == BODY or (self.streaming_body and not self.reading_paused)
        ) and now - self.last > cfg.body_timeout:
            self.proxy.timed_out("body")
            if self.up is not None:
                self.up.reusable = False
            if self.response_started:
                self.close()
            else:
                self.fail(408, f"request body stalled for {cfg.body_timeout:g}s")
        if self.phase == WAIT:
            up = self.up
            if up is None or up.reading_paused:
                return
            if (
                self.split_pool is not None
                and not self.response_started
                and now - up.last > self.proxy.rollout.mirror_timeout
            ):
                self.proxy.timed_out("split")
                up.close()
                self.upstream_failed(up, "split_timeout")
            elif now - up.last > cfg.upstream_timeout:
                up.close()
                self.upstream_failed(up, "timeout")


# -- the sidecar -------------------------------------------------------------------------


class DriftProxy:
    def __init__(self, config: ProxyConfig, monitor: DriftMonitor, metrics: DriftMetrics) -> None:
        self.config = config
        self.monitor = monitor
        self.metrics = metrics
        self._address = config.upstream_address()
        self.feeder = StatsFeeder(
            monitor,
            metrics,
            config.input_name,
            max_queue_bytes=config.stats_queue_bytes,
            sample_rate=config.sample_rate,
            max_payload_bytes=config.stats_max_bytes,
            cpu_share=config.stats_cpu_share,
        )
        self._pool: Pool | None = None
        self._server: asyncio.AbstractServer | None = None
        self.admin = AdminEndpoints(self)  # /metrics, /drift, /healthz, /rollout
        self._clients: set[_Downstream] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._sweeper: asyncio.TimerHandle | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self.buffered = 0  # request body bytes held, all connections together
        self.now = 0.0  # loop time, refreshed by the sweep and on each read
        self.retry_after = b"Retry-After: %d" % config.retry_after
        self.heads: dict[bytes, ParsedHead] = {}  # see ParsedHead
        self.draining = False  # SIGTERM received: every connection closes after its response
        # Gated rollouts: settings from the traffic file, figures for GET /rollout.
        self.rollout = Rollout(
            config.model_version,
            mirror_max_in_flight=config.mirror_max_in_flight,
            mirror_timeout=config.mirror_timeout,
            max_answer_bytes=config.stats_max_bytes,
            run_later=self.feeder.run_later,
        )
        self.rollout.on_change.append(self._candidate_changed)
        self.traffic = TrafficWatcher(config.traffic_file, self.rollout.apply)
        self.candidate_pool: Pool | None = None
        self.inplace: InPlaceRoute | None = None  # the candidate runs in this pod's Triton
        self.agent: Any = None  # modelops.drift.inplace_agent.InPlaceAgent, set by the CLI
        self._mirrors: set[Mirror] = set()
        metrics.registry.register(RolloutCollector(self.rollout))

    # -- lifecycle -----------------------------------------------------------

    async def start(
        self,
        host: str = "0.0.0.0",
        port: int = 8080,
        admin_host: str | None = None,
        admin_port: int = 8090,
    ) -> tuple[int, int]:
        """Start both servers; returns the bound (proxy, admin) ports (0 picks a free one)."""
        loop = self._loop = asyncio.get_running_loop()
        cfg = self.config
        self.now = loop.time()
        self._pool = Pool(*self._address, cfg.max_connections, cfg.connect_timeout, cfg.upstream)
        self.traffic.start(loop)
        self.feeder.start()
        self._server = await loop.create_server(
            self._protocol, host, port, reuse_address=True, backlog=1024
        )
        bound = self._server.sockets[0].getsockname()[1]
        admin_bound = await self.admin.start(admin_host or host, admin_port)
        self._sweep()
        return bound, admin_bound

    def _protocol(self) -> _Downstream:
        assert self._loop is not None
        self.now = self._loop.time()
        return _Downstream(self)

    def _sweep(self) -> None:
        loop = self._loop
        assert loop is not None
        self.now = now = loop.time()
        for client in list(self._clients):
            try:
                client.check_timeouts(now)
            except Exception:  # a bug here must not stop the sweep
                log.exception("timeout check failed")
                client.close()
        if self._mirrors:
            for mirror in list(self._mirrors):
                mirror.check_timeout(now)
        self._sweeper = loop.call_later(self.config.sweep_period, self._sweep)

    async def drain(self, grace: float) -> None:
        """SIGTERM: stop accepting connections, let every request in progress (and
        every mirror) finish, for at most ``grace`` seconds; idle keep-alive
        connections are closed, busy ones close after their response (which
        says ``Connection: close`` when it has not started yet). ``stop`` follows."""
        loop = asyncio.get_running_loop()
        self.draining = True
        if self._server is not None:
            self._server.close()  # the listening socket goes now; connections stay
        deadline = loop.time() + grace
        while True:
            for client in list(self._clients):
                if client.phase == IDLE and not client.buf:
                    client.close()
                else:
                    client.close_after = True
            if (not self._clients and not self._mirrors) or loop.time() >= deadline:
                break
            await asyncio.sleep(0.02)
        if self._clients:
            log.warning("drain: %d connection(s) still busy after %gs", len(self._clients), grace)

    async def stop(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
            self._sweeper = None
        if self._server is not None:
            self._server.close()
            for client in list(self._clients):
                client.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 5)
            self._server = None
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.admin.stop()
        self.traffic.stop()
        await self.feeder.stop()
        if self._pool is not None:
            self._pool.close()
        if self.candidate_pool is not None:
            self.candidate_pool.close()

    # -- helpers for the connections ----------------------------------------------

    def _pool_release(self, conn: Upstream) -> None:
        pool = conn.pool or self._pool
        if pool is not None:
            pool.release(conn)

    # -- gated rollouts ----------------------------------------------------------------

    def _candidate_changed(self, settings: TrafficSettings) -> None:
        """A pool of connections to the candidate while this sidecar mirrors or splits."""
        address = None
        self.inplace = in_place_route(settings, self.rollout.own_version, self.inplace)
        if self.inplace is not None:
            address = self._address  # this pod's own Triton, a pool of its own
        elif settings.acts(self.rollout.own_version) and settings.candidate is not None:
            address = settings.candidate.http_address
        old = self.candidate_pool
        if old is not None and address == (old.host, old.port):
            return
        if old is not None:
            old.retired = True  # busy connections close when their exchange ends
            old.close()
        self.candidate_pool = None
        if address is not None:
            assert settings.candidate is not None
            cfg = self.config
            self.candidate_pool = Pool(
                *address,
                cfg.max_connections,
                cfg.connect_timeout,
                settings.candidate.http or cfg.upstream,
            )

    def unavailable(self, why: str) -> bytes:
        return simple_response(
            503, _error_body(f"{why}; retry later"), close=True, extra=(self.retry_after,)
        )

    def rejected(self, reason: str) -> None:
        self.metrics.rejected.labels(reason).inc()

    def timed_out(self, reason: str) -> None:
        self.metrics.timeouts.labels(reason).inc()

    def sample(self, parsed: ParsedHead, body: bytes, streamed: bool) -> None:
        """Offer a successful infer request's body to the statistics (hot path: an
        append to the feeder's queue; the parser is the head's, built once)."""
        parser = parsed.stats_parser(self.config.model, self.config.stats_max_bytes)
        if parser is None:
            return
        if streamed:
            self.feeder.skip("too_large")
            return
        self.feeder.offer(body, parser)
