"""The KServe v2 HTTP proxy in front of Triton, and the sidecar's own endpoints.

Hot path: plain asyncio protocols and :mod:`modelops.drift.http1` framing. A
request is read off the client connection, its head is forwarded as received
minus hop-by-hop fields (a chunked body is de-chunked and sent with a
Content-Length; ``Expect: 100-continue`` is answered here), over a pooled
keep-alive connection to Triton; Triton's response head and body go back to
the client as received (status line, every end-to-end header including
``Content-Encoding`` and ``Inference-Header-Content-Length``, body bytes).
Chunked or close-delimited responses (e.g. ``generate_stream``) are streamed
through as they arrive. Nothing is decompressed, re-encoded or re-serialised.

Only a successful ``POST /v2/models/{name}[/versions/{v}]/infer`` is looked
at, and only after its response was written: the body (already in memory) is
offered to :class:`~modelops.drift.feeder.StatsFeeder`, which drops it (and
counts the drop) when its queue is full rather than slow anything down.

Errors: what Triton answers (bad JSON, wrong dtype or shape, unknown model)
passes back untouched. The proxy's own errors use Triton's error shape
``{"error": "..."}``: 400/431/501/505 for requests it cannot frame, 413 for a
body over ``max_body_bytes``, 502 when Triton cannot be reached or breaks the
protocol, 504 when Triton does not answer within ``upstream_timeout``
(seconds without a byte from Triton).

A pooled connection that Triton closed while idle can fail the first request
sent on it before any byte comes back; that request is retried once on a
fresh connection (Triton closed it, so it never ran the request).

The sidecar's own endpoints (``/metrics``, ``/drift``, ``/healthz``) are a small
aiohttp app on a separate port: not on the hot path, and never mixed with
Triton's URL space.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
import socket
import time
import urllib.parse
from dataclasses import dataclass
from typing import Any, cast

from aiohttp import web

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
    RequestLine,
    client_response_head,
    keep_alive,
    parse_head,
    parse_request_line,
    parse_status_line,
    request_framing,
    response_framing,
    simple_response,
    upstream_request_head,
)
from modelops.drift.metrics import CONTENT_TYPE, DriftMetrics, classify_endpoint
from modelops.drift.monitor import DriftMonitor
from modelops.drift.payload import http_parser

log = logging.getLogger("modelops.drift.proxy")

_INFER_PATH = re.compile(r"^/v2/models/([^/]+)(?:/versions/[^/]+)?/infer$")
# Bodies above this are written separately from their head instead of being
# concatenated (a copy) into one write.
_COALESCE_LIMIT = 64 * 1024


@dataclass(frozen=True)
class ProxyConfig:
    upstream: str = "http://127.0.0.1:8000"
    model: str | None = None  # only this model's requests feed the monitor; None = all
    input_name: str | None = None
    max_body_bytes: int = 64 * 1024 * 1024
    upstream_timeout: float = 300.0
    connect_timeout: float = 5.0
    max_connections: int = 256
    stats_queue_bytes: int = DEFAULT_MAX_QUEUE_BYTES
    stats_max_bytes: int = DEFAULT_MAX_PAYLOAD_BYTES
    stats_cpu_share: float = DEFAULT_CPU_SHARE
    sample_rate: float = 1.0

    def upstream_address(self) -> tuple[str, int]:
        u = urllib.parse.urlsplit(self.upstream)
        if u.scheme != "http" or not u.hostname or u.path not in ("", "/") or u.query:
            raise ValueError(f"upstream must look like http://host:port, got {self.upstream!r}")
        return u.hostname, u.port or 80


def _error_body(message: str) -> bytes:
    return json.dumps({"error": message}).encode()


class UpstreamClosedError(ConnectionError):
    def __init__(self, got_bytes: bool) -> None:
        super().__init__("Triton closed the connection" + (" mid-response" if got_bytes else ""))
        self.got_bytes = got_bytes


@dataclass
class _Response:
    status: int
    head: Head
    body: bytes | None  # None when it was streamed to the client


def _nodelay(transport: asyncio.BaseTransport) -> None:
    sock = transport.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


# -- the Triton side -----------------------------------------------------------------


class _Upstream(asyncio.Protocol):
    """One keep-alive connection to Triton carrying one exchange at a time."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.alive = True
        self.reusable = True
        self.buf = bytearray()
        self._waiter: asyncio.Future[_Response] | None = None
        self._sink: _Downstream | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._timeout = 0.0
        self._method = "GET"
        self._head: Head | None = None
        self._status = 0
        self._framing = "length"
        self._length = 0
        self._decoder: ChunkedDecoder | None = None
        self._got_bytes = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports do not subclass asyncio.Transport, hence the cast.
        self.transport = cast(asyncio.Transport, transport)
        _nodelay(transport)

    def connection_lost(self, exc: Exception | None) -> None:
        self.alive = False
        w = self._waiter
        if w is not None and not w.done():
            if self._framing == "close" and self._head is not None:
                self._finish(None)  # a close-delimited body ends here
            else:
                self._fail(UpstreamClosedError(self._got_bytes))

    def close(self) -> None:
        self.alive = False
        if self.transport is not None:
            self.transport.close()

    def exchange(
        self, data: list[bytes], method: str, sink: _Downstream, timeout: float
    ) -> asyncio.Future[_Response]:
        assert self.transport is not None
        loop = asyncio.get_running_loop()
        self._waiter = loop.create_future()
        self._sink, self._method, self._timeout = sink, method, timeout
        self._head, self._decoder, self._got_bytes = None, None, False
        self._framing, self._length = "length", 0
        self.buf.clear()
        self._timer = loop.call_later(timeout, self._on_timeout)
        if len(data) == 1:
            self.transport.write(data[0])
        else:
            self.transport.writelines(data)
        return self._waiter

    def _on_timeout(self) -> None:
        self._fail(TimeoutError())
        self.close()

    def _fail(self, exc: BaseException) -> None:
        self.reusable = False
        if self._timer is not None:
            self._timer.cancel()
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_exception(exc)

    def _finish(self, body: bytes | None) -> None:
        if self._timer is not None:
            self._timer.cancel()
        assert self._waiter is not None and self._head is not None
        if not self._waiter.done():
            self._waiter.set_result(_Response(self._status, self._head, body))

    def data_received(self, data: bytes) -> None:
        w = self._waiter
        if w is None or w.done():
            self.close()  # bytes nobody asked for: this connection is out of sync
            return
        self._got_bytes = True
        self.buf += data
        try:
            self._advance()
        except ProtocolError as err:
            self._fail(err)
            self.close()

    def _advance(self) -> None:
        buf = self.buf
        if self._head is None:
            while True:
                i = buf.find(b"\r\n\r\n")
                if i < 0:
                    if len(buf) > MAX_HEAD_BYTES:
                        raise ProtocolError(502, "response head from Triton too large")
                    return
                head = parse_head(bytes(buf[:i]))
                status = parse_status_line(head.start)
                del buf[: i + 4]
                if not 100 <= status < 200:
                    break  # 1xx are interim: the real response follows
            self._head, self._status = head, status
            self._framing, self._length = response_framing(head, status, self._method)
            version = head.start[:8]
            self.reusable = keep_alive(version, head) and self._framing != "close"
            if self._framing != "length":
                assert self._sink is not None
                self._decoder = ChunkedDecoder(keep_body=False)
                self._sink.start_stream(head, chunked=self._framing == "chunked")
        if self._framing == "length":
            n = self._length
            if len(buf) >= n:
                if len(buf) > n:
                    self.reusable = False  # more than it announced: do not trust it again
                self._finish(bytes(buf[:n]) if len(buf) > n else bytes(buf))
            return
        # Streaming: forward bytes as they come; each byte from Triton re-arms the timer.
        assert self._sink is not None and self._timer is not None
        self._timer.cancel()
        self._timer = asyncio.get_running_loop().call_later(self._timeout, self._on_timeout)
        if self._framing == "chunked":
            assert self._decoder is not None
            used = self._decoder.feed(buf)
            self._sink.stream(bytes(buf[:used]))
            del buf[:used]
            if self._decoder.done:
                if buf:
                    self.reusable = False
                self._finish(None)
        else:
            self._sink.stream(bytes(buf))
            buf.clear()


class _Pool:
    def __init__(self, host: str, port: int, limit: int, connect_timeout: float) -> None:
        self.host, self.port = host, port
        self.connect_timeout = connect_timeout
        self.idle: list[_Upstream] = []
        self._sem = asyncio.Semaphore(limit)

    async def acquire(self) -> tuple[_Upstream, bool]:
        """A connection and whether it was reused from the pool."""
        await self._sem.acquire()
        while self.idle:
            conn = self.idle.pop()
            if conn.alive:
                conn.reusable = True
                return conn, True
        loop = asyncio.get_running_loop()
        try:
            _, conn = await asyncio.wait_for(
                loop.create_connection(_Upstream, self.host, self.port), self.connect_timeout
            )
        except BaseException:
            self._sem.release()
            raise
        return conn, False

    def release(self, conn: _Upstream) -> None:
        self._sem.release()
        if conn.alive and conn.reusable:
            self.idle.append(conn)
        else:
            conn.close()

    def close(self) -> None:
        for conn in self.idle:
            conn.close()
        self.idle.clear()


# -- the client side -------------------------------------------------------------------


class _Downstream(asyncio.Protocol):
    """One client connection: requests are handled one after the other (pipelining-safe)."""

    def __init__(self, proxy: DriftProxy) -> None:
        self.proxy = proxy
        self.transport: asyncio.Transport | None = None
        self.buf = bytearray()
        self.busy = False
        self.closed = False
        self.paused = False
        self.streaming = False
        self.close_after = False
        self._line: RequestLine | None = None
        self._head: Head | None = None
        self._framing = "length"
        self._length = 0
        self._decoder: ChunkedDecoder | None = None

    # asyncio callbacks

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports do not subclass asyncio.Transport, hence the cast.
        self.transport = cast(asyncio.Transport, transport)
        _nodelay(transport)
        self.proxy._clients.add(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.proxy._clients.discard(self)

    def data_received(self, data: bytes) -> None:
        self.buf += data
        if not self.busy:
            self._next()
        elif not self.paused and len(self.buf) > self.proxy.config.max_body_bytes + MAX_HEAD_BYTES:
            assert self.transport is not None
            self.transport.pause_reading()  # a pipelining client far ahead of us
            self.paused = True

    # output used by the exchange

    def write(self, data: bytes) -> None:
        if not self.closed and self.transport is not None:
            self.transport.write(data)

    def start_stream(self, head: Head, chunked: bool) -> None:
        self.streaming = True
        if not chunked:
            self.close_after = True  # the body ends when the connection does
        self.write(client_response_head(head, close=self.close_after, chunked=chunked))

    def stream(self, data: bytes) -> None:
        if data:
            self.write(data)

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()

    # request parsing

    def _next(self) -> None:
        try:
            req = self._parse()
        except ProtocolError as err:
            line = self._line
            self.proxy.metrics.observe_request(
                err.status, classify_endpoint(line.path) if line else "other", 0.0
            )
            self.write(simple_response(err.status, _error_body(err.message), close=True))
            self.close()
            return
        if req is None:
            return
        self.busy = True
        task = asyncio.get_running_loop().create_task(self._handle(*req))
        self.proxy._tasks.add(task)
        task.add_done_callback(self.proxy._tasks.discard)

    def _parse(self) -> tuple[RequestLine, Head, bytes] | None:
        buf = self.buf
        max_body = self.proxy.config.max_body_bytes
        if self._head is None:
            while buf.startswith(b"\r\n"):  # RFC 9112 2.2: ignore empty lines before a request
                del buf[:2]
            i = buf.find(b"\r\n\r\n")
            if i < 0 or i > MAX_HEAD_BYTES:
                if len(buf) > MAX_HEAD_BYTES:
                    raise ProtocolError(431, "request head too large")
                return None
            head = parse_head(bytes(buf[:i]))
            self._line = parse_request_line(head.start)
            del buf[: i + 4]
            self._framing, self._length = request_framing(head)
            if self._length > max_body:
                raise ProtocolError(
                    413,
                    f"request body of {self._length} bytes exceeds the proxy limit of "
                    f"{max_body} bytes",
                )
            self._decoder = (
                ChunkedDecoder(max_body=max_body) if self._framing == "chunked" else None
            )
            self._head = head
            expect = head.get(b"expect")
            has_body = self._framing == "chunked" or self._length > 0
            if expect is not None and expect.lower() == b"100-continue" and has_body and not buf:
                self.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        if self._decoder is None:
            n = self._length
            if len(buf) < n:
                return None
            body = bytes(buf[:n])
            del buf[:n]
        else:
            try:
                used = self._decoder.feed(buf)
            except ProtocolError as err:
                if err.status == 413:
                    err.message = f"request body exceeds the proxy limit of {max_body} bytes"
                raise
            del buf[:used]
            if not self._decoder.done:
                return None
            body = bytes(self._decoder.body)
        line, head = self._line, self._head
        assert line is not None
        self._head = self._decoder = None
        return line, head, body

    async def _handle(self, line: RequestLine, head: Head, body: bytes) -> None:
        t0 = time.perf_counter()
        endpoint = classify_endpoint(line.path)
        close = not keep_alive(line.version, head)
        self.streaming = self.close_after = False
        self.close_after = close
        status = 500
        try:
            status = await self.proxy._exchange(self, line, head, body)
        except Exception:
            log.exception("proxying %s %s failed", line.method, line.path)
            status = 500
            if not self.streaming:
                self.write(simple_response(500, _error_body("drift-monitor proxy error")))
            self.close_after = True
        finally:
            self.proxy.metrics.observe_request(status, endpoint, time.perf_counter() - t0)
        self.busy = False
        if self.close_after or self.closed:
            self.close()
            return
        if self.paused and self.transport is not None:
            self.paused = False
            self.transport.resume_reading()
        if self.buf:
            self._next()


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
        self._pool: _Pool | None = None
        self._server: asyncio.AbstractServer | None = None
        self._admin: web.AppRunner | None = None
        self._clients: set[_Downstream] = set()
        self._tasks: set[asyncio.Task[None]] = set()

    # -- lifecycle -----------------------------------------------------------

    async def start(
        self,
        host: str = "0.0.0.0",
        port: int = 8080,
        admin_host: str | None = None,
        admin_port: int = 8090,
    ) -> tuple[int, int]:
        """Start both servers; returns the bound (proxy, admin) ports (0 picks a free one)."""
        loop = asyncio.get_running_loop()
        cfg = self.config
        self._pool = _Pool(*self._address, cfg.max_connections, cfg.connect_timeout)
        self.feeder.start()
        self._server = await loop.create_server(
            lambda: _Downstream(self), host, port, reuse_address=True, backlog=1024
        )
        bound = self._server.sockets[0].getsockname()[1]
        self._admin = web.AppRunner(self.admin_app(), access_log=None, handle_signals=False)
        await self._admin.setup()
        site = web.TCPSite(self._admin, admin_host or host, admin_port, reuse_address=True)
        await site.start()
        sockets = getattr(site._server, "sockets", None) or []  # the port when admin_port == 0
        admin_bound = sockets[0].getsockname()[1] if sockets else admin_port
        return bound, admin_bound

    async def stop(self) -> None:
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
        if self._admin is not None:
            await self._admin.cleanup()
            self._admin = None
        await self.feeder.stop()
        if self._pool is not None:
            self._pool.close()

    # -- one exchange ----------------------------------------------------------

    async def _exchange(self, down: _Downstream, line: RequestLine, head: Head, body: bytes) -> int:
        assert self._pool is not None
        cfg = self.config
        req_head = upstream_request_head(line, head, len(body))
        data = [req_head, body] if len(body) > _COALESCE_LIMIT else [req_head + body]
        upstream = cfg.upstream
        resp: _Response | None = None
        for attempt in (0, 1):
            try:
                conn, reused = await self._pool.acquire()
            except (OSError, TimeoutError) as exc:
                reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else "timeout"
                msg = f"Triton at {upstream} is unreachable: {reason}"
                down.write(simple_response(502, _error_body(msg)))
                return 502
            try:
                resp = await conn.exchange(data, line.method, down, cfg.upstream_timeout)
            except UpstreamClosedError as exc:
                self._pool.release(conn)
                if reused and not exc.got_bytes and attempt == 0:
                    continue  # a stale keep-alive connection: Triton never saw the request
                if down.streaming:
                    down.close_after = True
                    return 502
                down.write(simple_response(502, _error_body(f"Triton at {upstream}: {exc}")))
                return 502
            except TimeoutError:
                self._pool.release(conn)
                if down.streaming:
                    down.close_after = True
                    return 504
                down.write(
                    simple_response(
                        504,
                        _error_body(
                            f"Triton at {upstream} did not answer in time "
                            f"({cfg.upstream_timeout:g}s)"
                        ),
                    )
                )
                return 504
            except ProtocolError as err:
                self._pool.release(conn)
                if down.streaming:
                    down.close_after = True
                    return 502
                down.write(simple_response(502, _error_body(f"Triton at {upstream}: {err}")))
                return 502
            self._pool.release(conn)
            break
        assert resp is not None
        if resp.body is None:  # streamed
            return resp.status
        out = client_response_head(resp.head, close=down.close_after, chunked=False)
        if len(resp.body) > _COALESCE_LIMIT:
            down.write(out)
            down.write(resp.body)
        else:
            down.write(out + resp.body)
        if resp.status == 200 and line.method == "POST":
            self._maybe_sample(line, head, body)
        return resp.status

    def _maybe_sample(self, line: RequestLine, head: Head, body: bytes) -> None:
        m = _INFER_PATH.match(line.path)
        if m is None:
            return
        model = self.config.model
        if model is not None and urllib.parse.unquote(m.group(1)) != model:
            return
        hl = head.get(b"inference-header-content-length")
        try:
            header_length = int(hl) if hl is not None else None
        except ValueError:
            header_length = -1  # becomes a "decode" skip, off the hot path
        enc = head.get(b"content-encoding")
        parse = http_parser(
            header_length, enc.decode("latin-1") if enc else None, self.config.stats_max_bytes
        )
        self.feeder.offer(body, parse)

    # -- admin endpoints ----------------------------------------------------------

    def admin_app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/metrics", self._metrics)
        app.router.add_get("/drift", self._drift)
        app.router.add_get("/healthz", self._healthz)
        return app

    async def _metrics(self, request: web.Request) -> web.Response:
        self.metrics.queue_depth_m.set(self.feeder.queued)
        return web.Response(body=self.metrics.render(), headers={"Content-Type": CONTENT_TYPE})

    def summary(self) -> dict[str, Any]:
        doc = self.monitor.summary(self.config.model or "")
        doc["samples"].update(
            {
                "dropped": self.feeder.dropped,
                "skipped": sum(self.feeder.skipped.values()),
                "queued": self.feeder.queued,
            }
        )
        return doc

    async def _drift(self, request: web.Request) -> web.Response:
        return web.json_response(self.summary())

    async def _healthz(self, request: web.Request) -> web.Response:
        return web.json_response({"status": "ok", "features": len(self.monitor.names)})
