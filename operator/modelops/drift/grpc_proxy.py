"""The KServe v2 gRPC proxy in front of Triton: an HTTP/2 relay that reads along.

Clients keep using Triton's gRPC port; the sidecar accepts each connection,
opens one to Triton's own gRPC endpoint inside the pod, and copies the bytes
both ways unchanged. The HTTP/2 session is the client's with Triton, so every
method of ``inference.GRPCInferenceService`` (unary calls and the
``ModelStreamInfer`` stream), any other service Triton serves
(``grpc.health.v1``), metadata, status codes and details, compression, flow
control and deadlines (``grpc-timeout``, enforced by Triton; a client that
gives up resets the stream, and Triton sees the reset) pass through exactly as
sent. When Triton cannot be reached the client's connection is closed, which
gRPC reports as ``UNAVAILABLE``, as for a stopped Triton.

Why a relay and not a gRPC server plus a gRPC client (grpcio generic
handlers with bytes in and out, the first version of this module): with
messages passed as bytes, grpcio still costs about 1.2-1.5 ms of sidecar CPU
per ``ModelInfer`` on the 2-core development machine (a minimal grpc.aio
passthrough alone 0.9 ms), against 65-110 us for copying the same bytes;
the target is 150 us. See bench/drift/overhead.py.

Reading along: the relay parses the HTTP/2 frames it copies (frame headers
only, except where it looks), and decodes the client's header blocks with
HPACK (``hpack``, the decoder of the python-hyper HTTP/2 stack; every block
must be decoded, in order, to keep its table in step) to learn each stream's
method. For ``ModelInfer`` and ``ModelStreamInfer`` streams it collects the
request messages (gRPC length-prefixed, possibly split over DATA frames) and,
when Triton's answer shows the request succeeded, offers the message bytes
to the statistics feeder, which parses them in its worker thread
(:mod:`~modelops.drift.grpc_payload`):

- ``ModelInfer``: Triton sends a response message only with an OK status
  (an error is a trailers-only answer), so the first response message
  marks success;
- ``ModelStreamInfer``: each request message is paired with the next
  response message in order, and offered when that response has no
  ``error_message`` (a decoupled model's several responses per request make
  the pairing approximate; that only changes which requests are sampled).

A compressed message (``grpc-encoding`` gzip or deflate) is decompressed by
the worker, with the same output cap as HTTP bodies.

Only requests for the watched model are kept: its name is the message's
first field (:func:`~modelops.drift.grpc_payload.leading_model_name`); the
rare message whose name cannot be read that way is kept and the parser
checks it. Header blocks of repeated calls (a few indexed bytes) are
decoded once per HPACK table state, so reading along costs about 35 us per
``ModelInfer`` on the development machine (replayed captured traffic).

Bounds: the relay holds no message; what it buffers is bounded by the
transports' write-buffer limits (reading from one side pauses while the
other side's buffer is full, both ways). Messages kept for statistics until
Triton answers are at most ``stats_max_bytes`` each and ``max_kept_bytes``
together (a message that does not fit is counted as skipped, ``too_large``,
and never buffered), on at most ``max_observed_streams`` streams per
connection. Connections beyond ``max_connections`` are refused (closed).
So the relay holds at most about ``max_connections`` x 0.6 MiB +
``max_kept_bytes`` (56 MiB with the defaults); gRPC clients multiplex their
calls over few connections, so 64 connections serve many clients.
Message size and concurrent-stream limits are Triton's own (its HTTP/2
SETTINGS reach the client unchanged); memory here does not grow with
either. Anything the reader cannot follow (a malformed frame, an HPACK
error) stops the observation of that connection, never the relay.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import struct
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol, cast

import hpack
import numpy as np
from prometheus_client import CollectorRegistry, Counter, Gauge

from modelops.drift.figures import RolloutFigures
from modelops.drift.grpc_payload import leading_model_name, model_infer_parser
from modelops.drift.payload import Parser, decode_body

log = logging.getLogger("modelops.drift.grpc")

SERVICE = "inference.GRPCInferenceService"
MODEL_INFER = f"/{SERVICE}/ModelInfer".encode()
MODEL_STREAM_INFER = f"/{SERVICE}/ModelStreamInfer".encode()
_PATH_LABELS = {MODEL_INFER: "ModelInfer", MODEL_STREAM_INFER: "ModelStreamInfer"}
METHOD_LABELS = ("ModelInfer", "ModelStreamInfer", "other")

_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
# HTTP/2 frame types and flags (RFC 9113 section 6).
_DATA, _HEADERS, _RST_STREAM, _CONTINUATION = 0x0, 0x1, 0x3, 0x9
_END_STREAM, _END_HEADERS, _PADDED, _PRIORITY = 0x1, 0x4, 0x8, 0x20
# A frame header: 24-bit length (as 16 + 8 bits), type, flags, stream id (with its reserved bit).
_FRAME_HEAD = struct.Struct(">HBBBL")
# Largest frame payload either peer may send (SETTINGS_MAX_FRAME_SIZE's ceiling).
_MAX_FRAME = (1 << 24) - 1
# Header blocks above this stop the observation of the connection (Triton's
# own limit on header lists is far smaller).
_MAX_HEADER_BLOCK = 256 * 1024
# HPACK: bytes that are a whole indexed field by themselves (0x80-0xFE), and
# how many header blocks made of them one connection remembers.
_ONE_BYTE_INDEXED = bytes(range(0x80, 0xFF))
_HEADER_CACHE = 64
# Write-buffer high water mark of each side: past it the other side's
# reading pauses until this one drains. With one read (up to 256 KiB with
# uvloop) on top, a connection buffers at most ~0.6 MiB, both ways together.
_WRITE_HIGH = 64 * 1024


class Feeder(Protocol):
    """The statistics feeder: takes a payload and the function that parses it."""

    def offer(self, payload: bytes, parse: Parser) -> None: ...

    def skip(self, reason: str) -> None: ...


@dataclass(frozen=True)
class GrpcProxyConfig:
    upstream: str = "127.0.0.1:8001"  # Triton's gRPC endpoint, host:port
    model: str | None = None  # only this model's infer requests are observed; None = all
    max_connections: int = 64
    connect_timeout: float = 5.0
    stats_max_bytes: int = 1024 * 1024  # larger request messages are not observed
    max_observed_streams: int = 128  # per connection
    # Request messages kept for statistics until Triton answers, all connections together.
    max_kept_bytes: int = 16 * 1024 * 1024

    def upstream_address(self) -> tuple[str, int]:
        host, sep, port = self.upstream.rpartition(":")
        if not sep or not host or not port.isdigit():
            raise ValueError(f"gRPC upstream must look like host:port, got {self.upstream!r}")
        return host.strip("[]"), int(port)


class GrpcMetrics:
    """``modelops_proxy_grpc_*``: connections and calls by method (fixed label sets)."""

    def __init__(self, registry: CollectorRegistry | None) -> None:
        self.calls = Counter(
            "modelops_proxy_grpc_requests",
            "gRPC calls relayed to Triton, by method (ModelInfer, ModelStreamInfer, other).",
            ["method"],
            registry=registry,
        )
        self.connections = Gauge(
            "modelops_proxy_grpc_connections",
            "Client gRPC connections open through the relay.",
            registry=registry,
        )
        self.refused = Counter(
            "modelops_proxy_grpc_refused_connections",
            "Client gRPC connections closed at once: over the limit, or Triton unreachable.",
            ["reason"],
            registry=registry,
        )
        self._calls = {m: self.calls.labels(m) for m in METHOD_LABELS}
        self.refused_limit = self.refused.labels("limit")
        self.refused_upstream = self.refused.labels("upstream")

    def call(self, method: str) -> None:
        self._calls[method].inc()


def _nodelay(transport: asyncio.BaseTransport) -> None:
    sock = transport.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


class _ObserveError(Exception):
    """The byte stream is not HTTP/2 as expected: stop reading along (keep relaying)."""


# -- gRPC messages inside DATA frames ---------------------------------------------------


# (payload, compressed, over cap): payload is the message (or, over the cap,
# its first bytes) when kept, else the message's first byte (None if empty).
_Msg = tuple[bytes | int | None, bool, bool]
_HEAD_KEEP = 256  # bytes kept of a message over the cap: enough for its model name


class _Messages:
    """Splits a stream's DATA bytes into gRPC messages (5-byte prefix, then the message).

    With ``keep`` the message bytes are collected (all of a message up to
    ``cap`` bytes, the first few of a larger one); without, only each
    message's first byte is noted.
    """

    __slots__ = (
        "_body", "_compressed", "_first", "_need", "_over", "_prefix", "cap", "keep", "reserve",
    )  # fmt: skip

    def __init__(self, keep: bool, cap: int, reserve: Callable[[int], bool] | None = None) -> None:
        self.keep, self.cap = keep, cap
        self.reserve = reserve  # asked before keeping a message of n bytes
        self._prefix = bytearray()
        self._need = 0  # bytes of the current message still to come
        self._body = bytearray()
        self._first: int | None = None
        self._compressed = False
        self._over = False

    def feed(self, data: memoryview, out: list[_Msg]) -> None:
        i, n = 0, len(data)
        while i < n:
            if self._need == 0:
                take = min(5 - len(self._prefix), n - i)
                self._prefix += data[i : i + take]
                i += take
                if len(self._prefix) < 5:
                    return
                self._compressed = self._prefix[0] == 1
                self._need = int.from_bytes(self._prefix[1:5], "big")
                self._over = self.keep and (
                    self._need > self.cap
                    or (self.reserve is not None and not self.reserve(self._need))
                )
                self._first = None
                self._body = bytearray()
                self._prefix.clear()
                if self._need == 0:
                    self._emit(out)
                continue
            take = min(self._need, n - i)
            if self._first is None:
                self._first = data[i]
            if self.keep:
                if not self._over:
                    self._body += data[i : i + take]
                elif len(self._body) < _HEAD_KEEP:
                    self._body += data[i : i + min(take, _HEAD_KEEP - len(self._body))]
            self._need -= take
            i += take
            if self._need == 0:
                self._emit(out)

    def _emit(self, out: list[_Msg]) -> None:
        if self.keep:
            out.append((bytes(self._body), self._compressed, self._over))
        else:
            out.append((self._first, self._compressed, False))
        self._body = bytearray()


@dataclass
class _Stream:
    method: str
    encoding: str | None
    requests: _Messages
    responses: _Messages
    # Request messages waiting for their response: the message, (message,
    # grpc-encoding) when compressed, b"" when too large, None when not watched.
    pending: deque[bytes | tuple[bytes, str] | None] = field(default_factory=deque)
    held: int = 0  # bytes reserved for this stream's kept messages
    # Rollout figures: when the call (ModelInfer) or each request message
    # (ModelStreamInfer) arrived, and whether ModelInfer got its response.
    t0: float = 0.0
    arrivals: deque[float] = field(default_factory=deque)
    answered: bool = False


# -- reading frames along ---------------------------------------------------------------------


class _FrameReader:
    """Incremental HTTP/2 frame splitter for one direction of a connection.

    Payloads are collected only for the frames ``want.wanted`` asks for; the
    DATA of a wanted frame goes to ``want.data`` piece by piece as it
    arrives, never buffered here.
    """

    __slots__ = ("_buf", "_flags", "_head", "_keep", "_preface", "_remaining", "_stream", "_type")

    def __init__(self, preface: bool) -> None:
        self._preface = len(_PREFACE) if preface else 0
        self._head = bytearray()
        self._remaining = 0  # payload bytes of the current frame still to come; 0: a header next
        self._type = self._flags = self._stream = 0
        self._buf = bytearray()
        self._keep = False

    def feed(self, data: bytes, want: _Wants) -> None:
        mv = memoryview(data)
        i, n = 0, len(data)
        if self._preface:
            take = min(self._preface, n)
            start = len(_PREFACE) - self._preface
            if mv[:take] != _PREFACE[start : start + take]:
                raise _ObserveError("not an HTTP/2 client preface")
            self._preface -= take
            i = take
        while i < n:
            if self._remaining == 0:
                if not self._head and n - i >= 9:  # a whole frame header in this chunk
                    hi, lo, ftype, flags, sid = _FRAME_HEAD.unpack_from(data, i)
                    i += 9
                else:
                    take = min(9 - len(self._head), n - i)
                    self._head += mv[i : i + take]
                    i += take
                    if len(self._head) < 9:
                        return
                    hi, lo, ftype, flags, sid = _FRAME_HEAD.unpack_from(self._head)
                    self._head = bytearray()
                self._start((hi << 8) | lo, ftype, flags, sid, want)
                continue
            take = min(self._remaining, n - i)
            if self._keep:
                if self._type == _DATA:
                    want.data(self._stream, mv[i : i + take])
                else:
                    self._buf += mv[i : i + take]
            self._remaining -= take
            i += take
            if self._remaining == 0:
                self._end(want)

    def _start(self, length: int, ftype: int, flags: int, sid: int, want: _Wants) -> None:
        if length > _MAX_FRAME:
            raise _ObserveError("frame too large")
        self._type, self._flags, self._stream = ftype, flags, sid & 0x7FFFFFFF
        self._remaining = length
        self._keep = want.wanted(ftype, flags, self._stream)
        if self._keep and ftype != _DATA and length > _MAX_HEADER_BLOCK:
            raise _ObserveError("control frame too large to follow")
        if ftype == _DATA and self._keep and flags & _PADDED:
            raise _ObserveError("padded DATA")  # gRPC peers do not pad; not worth following
        if length == 0:
            self._end(want)

    def _end(self, want: _Wants) -> None:
        if self._keep and self._type != _DATA:
            buf, self._buf = self._buf, bytearray()
            want.frame(self._type, self._flags, self._stream, buf)
        elif self._type == _DATA and self._flags & _END_STREAM:
            want.frame(_DATA, self._flags, self._stream, b"")


class _Wants(Protocol):
    def wanted(self, ftype: int, flags: int, stream: int) -> bool: ...

    def data(self, stream: int, chunk: memoryview) -> None: ...

    def frame(self, ftype: int, flags: int, stream: int, payload: bytes | bytearray) -> None: ...


class _Observer:
    """What one connection's reader does with the frames: the streams worth a look."""

    def __init__(self, relay: GrpcProxy) -> None:
        self.relay = relay
        self.streams: dict[int, _Stream] = {}
        self.decoder = hpack.Decoder()
        # The client's encoder may use the table size Triton allows; Triton
        # enforces its own limit, so any size it accepts is followed here.
        self.decoder.max_allowed_table_size = 1 << 20
        self._cache: dict[bytes, tuple[bytes | None, bytes | None]] = {}
        self._block = bytearray()
        self._block_stream = 0
        self._block_flags = 0
        self.requests = _ClientSide(self)
        self.responses = _ServerSide(self)

    def _decode(self, block: bytes) -> tuple[bytes | None, bytes | None]:
        """(:path, grpc-encoding) of one header block, through a cache when that is exact.

        A block made only of one-byte indexed fields (a repeated call: every
        field already in the tables) leaves the HPACK table as it was, so its
        meaning only changes when another block changes the table; such
        blocks are remembered until then. This is what keeps per-call
        decoding cheap: a client's repeated calls send the same few bytes.
        """
        indexed_only = not block.translate(None, _ONE_BYTE_INDEXED)
        if indexed_only:
            hit = self._cache.get(block)
            if hit is not None:
                return hit
        path = encoding = None
        for name, value in self.decoder.decode(block, raw=True):
            if name == b":path":
                path = value
            elif name == b"grpc-encoding":
                encoding = value
        if not indexed_only:
            self._cache.clear()  # the table may have changed
        elif len(self._cache) < _HEADER_CACHE:
            self._cache[block] = (path, encoding)
        return path, encoding

    def on_headers(self, stream: int, flags: int, block: bytes) -> None:
        path, encoding = self._decode(block)
        label = _PATH_LABELS.get(path or b"", "other")
        relay = self.relay
        relay.metrics.call(label)
        if (
            label == "other"
            or relay.feeder is None
            or stream in self.streams
            or len(self.streams) >= relay.config.max_observed_streams
            or flags & _END_STREAM
        ):
            return
        cap = relay.config.stats_max_bytes
        enc = encoding.decode("latin-1") if encoding else None
        st = _Stream(label, enc, _Messages(True, cap), _Messages(False, 0))
        st.t0 = time.perf_counter()

        def reserve(n: int) -> bool:
            if not relay.reserve(n):
                return False
            st.held += n
            return True

        st.requests.reserve = reserve
        self.streams[stream] = st

    def request_messages(self, st: _Stream, msgs: list[_Msg]) -> None:
        relay = self.relay
        if st.method == "ModelStreamInfer" and relay.figures is not None:
            now = time.perf_counter()
            st.arrivals.extend(now for _ in msgs)
        for payload, compressed, over in msgs:
            if not isinstance(payload, bytes) or (not compressed and not relay.watched(payload)):
                if not over and isinstance(payload, bytes):
                    self._release(st, len(payload))
                st.pending.append(None)  # (a compressed one: the parser checks the model)
            elif over:
                st.pending.append(b"")  # counted as too large once answered
            elif compressed:
                st.pending.append((payload, st.encoding or "identity"))
            else:
                st.pending.append(payload)

    def response_messages(self, st: _Stream, msgs: list[_Msg]) -> None:
        st.answered = True
        figures = self.relay.figures
        if figures is not None and st.method == "ModelStreamInfer":
            now = time.perf_counter()
            for first, _, _ in msgs:
                since = st.arrivals.popleft() if st.arrivals else st.t0
                # error_message (field 1) set: the request failed.
                figures().observe(500 if first == 0x0A else 200, now - since)
        for first, _, _ in msgs:
            if not st.pending:
                break
            message = st.pending.popleft()
            if message:
                self._release(st, len(message[0] if isinstance(message, tuple) else message))
            # ModelStreamInferResponse.error_message is field 1: an error
            # response starts with its tag (0x0A), a good one with field 2.
            if st.method == "ModelStreamInfer" and first == 0x0A:
                continue
            self.relay.offer(message)

    def _release(self, st: _Stream, n: int) -> None:
        st.held -= n
        self.relay.release(n)

    def close_stream(self, stream: int, count: bool = True) -> None:
        st = self.streams.pop(stream, None)
        if st is None:
            return
        if st.held:
            self.relay.release(st.held)  # kept messages never answered, and partial ones
            st.held = 0
        figures = self.relay.figures
        if count and figures is not None:
            # ModelInfer: Triton sends a response message only with status OK
            # (an error is trailers-only); a reset or an unanswered end is an error.
            # ModelStreamInfer: request messages left unanswered at the end failed.
            now = time.perf_counter()
            if st.method == "ModelInfer":
                figures().observe(200 if st.answered else 500, now - st.t0)
            else:
                for since in st.arrivals:
                    figures().observe(500, now - since)

    def close(self) -> None:
        # The connection went away: its streams' ends were not seen, so they are not counted.
        for stream in list(self.streams):
            self.close_stream(stream, count=False)


class _ClientSide:
    """Frames from the client: header blocks (always), DATA of observed streams."""

    def __init__(self, obs: _Observer) -> None:
        self.obs = obs
        self._out: list[_Msg] = []

    def wanted(self, ftype: int, flags: int, stream: int) -> bool:
        if ftype in (_HEADERS, _CONTINUATION):
            return True
        if ftype == _DATA:
            return stream in self.obs.streams
        return ftype == _RST_STREAM

    def data(self, stream: int, chunk: memoryview) -> None:
        st = self.obs.streams.get(stream)
        if st is None:
            return
        out = self._out
        st.requests.feed(chunk, out)
        if out:
            self.obs.request_messages(st, out)
            out.clear()

    def frame(self, ftype: int, flags: int, stream: int, payload: bytes | bytearray) -> None:
        obs = self.obs
        if ftype == _HEADERS:
            block = memoryview(payload)
            if flags & _PADDED:
                pad = block[0]
                block = block[1 : len(block) - pad]
            if flags & _PRIORITY:
                block = block[5:]
            if flags & _END_HEADERS:
                obs.on_headers(stream, flags, block.tobytes())
            else:
                obs._block = bytearray(block)
                obs._block_stream, obs._block_flags = stream, flags
        elif ftype == _CONTINUATION:
            if stream != obs._block_stream:
                raise _ObserveError("CONTINUATION out of sequence")
            obs._block += payload
            if len(obs._block) > _MAX_HEADER_BLOCK:
                raise _ObserveError("header block too large")
            if flags & _END_HEADERS:
                block, obs._block = bytes(obs._block), bytearray()
                obs.on_headers(stream, obs._block_flags, block)
        elif ftype == _RST_STREAM:
            obs.close_stream(stream)


class _ServerSide:
    """Frames from Triton: only the DATA and stream ends of observed streams."""

    def __init__(self, obs: _Observer) -> None:
        self.obs = obs
        self._out: list[_Msg] = []

    def wanted(self, ftype: int, flags: int, stream: int) -> bool:
        if stream not in self.obs.streams:
            return False
        if ftype == _DATA:
            return True
        return ftype == _RST_STREAM or (ftype == _HEADERS and bool(flags & _END_STREAM))

    def data(self, stream: int, chunk: memoryview) -> None:
        st = self.obs.streams.get(stream)
        if st is None:
            return
        out = self._out
        st.responses.feed(chunk, out)
        if out:
            self.obs.response_messages(st, out)
            out.clear()

    def frame(self, ftype: int, flags: int, stream: int, payload: bytes | bytearray) -> None:
        if ftype == _RST_STREAM or flags & _END_STREAM:
            self.obs.close_stream(stream)


# -- the two sides of one relayed connection ---------------------------------------------------


class _Client(asyncio.Protocol):
    def __init__(self, relay: GrpcProxy) -> None:
        self.relay = relay
        self.transport: asyncio.Transport | None = None
        self.upstream: _Upstream | None = None
        self.early: list[bytes] = []  # bytes that came before Triton's connection did
        self.observer: _Observer | None = _Observer(relay) if relay.feeder is not None else None
        self._observer_all = self.observer  # kept after observation stops, to release its bytes
        self.reader = _FrameReader(preface=True)
        self.closed = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        relay = self.relay
        if len(relay._clients) >= relay.config.max_connections:
            relay.metrics.refused_limit.inc()
            self.transport.abort()
            return
        _nodelay(transport)
        self.transport.set_write_buffer_limits(high=_WRITE_HIGH)
        relay._clients.add(self)
        relay.metrics.connections.inc()
        self.transport.pause_reading()  # until Triton's side is open
        task = asyncio.get_running_loop().create_task(self._connect())
        relay._tasks.add(task)
        task.add_done_callback(relay._tasks.discard)

    async def _connect(self) -> None:
        relay = self.relay
        loop = asyncio.get_running_loop()
        try:
            _, up = await asyncio.wait_for(
                loop.create_connection(lambda: _Upstream(self), *relay._address),
                relay.config.connect_timeout,
            )
        except (OSError, TimeoutError) as exc:
            relay.metrics.refused_upstream.inc()
            log.debug("gRPC upstream %s unreachable: %s", relay.config.upstream, exc)
            self.close()
            return
        if self.closed:
            up.close()
            return
        self.upstream = up
        if self.transport is not None:
            self.transport.resume_reading()

    def data_received(self, data: bytes) -> None:
        up = self.upstream
        if up is None or up.transport is None:
            self.early.append(data)
            return
        up.transport.write(data)
        obs = self.observer
        if obs is not None:
            try:
                self.reader.feed(data, obs.requests)
            except (_ObserveError, hpack.HPACKError, ValueError, IndexError) as exc:
                self.relay.observation_lost(exc)
                self.observer = None

    def flush_early(self) -> None:
        early, self.early = self.early, []
        for data in early:
            self.data_received(data)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self._observer_all is not None:
            self._observer_all.close()  # give back what its streams kept
        if self in self.relay._clients:
            self.relay._clients.discard(self)
            self.relay.metrics.connections.dec()
        if self.upstream is not None:
            self.upstream.close()

    # Backpressure: the client reads slowly -> stop reading from Triton.
    def pause_writing(self) -> None:
        if self.upstream is not None and self.upstream.transport is not None:
            self.upstream.transport.pause_reading()

    def resume_writing(self) -> None:
        if self.upstream is not None and self.upstream.transport is not None:
            self.upstream.transport.resume_reading()

    def write(self, data: bytes) -> None:
        if self.transport is not None and not self.closed:
            self.transport.write(data)

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()


class _Upstream(asyncio.Protocol):
    def __init__(self, client: _Client) -> None:
        self.client = client
        self.transport: asyncio.Transport | None = None
        self.reader = _FrameReader(preface=False)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        _nodelay(transport)
        self.transport.set_write_buffer_limits(high=_WRITE_HIGH)
        self.client.upstream = self
        self.client.flush_early()

    def data_received(self, data: bytes) -> None:
        client = self.client
        client.write(data)
        obs = client.observer
        if obs is not None:
            try:
                self.reader.feed(data, obs.responses)
            except (_ObserveError, ValueError, IndexError) as exc:
                client.relay.observation_lost(exc)
                client.observer = None

    def connection_lost(self, exc: Exception | None) -> None:
        self.client.close()

    # Backpressure: Triton reads slowly -> stop reading from the client.
    def pause_writing(self) -> None:
        if self.client.transport is not None:
            self.client.transport.pause_reading()

    def resume_writing(self) -> None:
        if self.client.transport is not None:
            self.client.transport.resume_reading()

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()


# -- the relay ---------------------------------------------------------------------------------


class GrpcProxy:
    def __init__(
        self,
        config: GrpcProxyConfig,
        feeder: Feeder | None = None,
        registry: CollectorRegistry | None = None,
        figures: Callable[[], RolloutFigures] | None = None,
    ) -> None:
        self.config = config
        self.feeder = feeder
        # The current epoch's rollout figures (a getter: the object changes with the epoch).
        self.figures = figures
        self.metrics = GrpcMetrics(registry)
        self._address = config.upstream_address()
        self._parse = model_infer_parser(config.model)
        self._model = config.model.encode() if config.model is not None else None
        self._server: asyncio.AbstractServer | None = None
        self._clients: set[_Client] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._lost_logged = 0.0
        self.kept_bytes = 0

    async def start(self, host: str = "0.0.0.0", port: int = 8081) -> int:
        """Listen; returns the bound port (0 picks a free one)."""
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            lambda: _Client(self), host, port, reuse_address=True, backlog=1024
        )
        return int(self._server.sockets[0].getsockname()[1])

    async def stop(self, grace: float = 5.0) -> None:
        if self._server is not None:
            self._server.close()
            for client in list(self._clients):
                client.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), grace)
            self._server = None
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    def reserve(self, n: int) -> bool:
        """Room for ``n`` more bytes of kept request messages (relay-wide budget)?"""
        if self.kept_bytes + n > self.config.max_kept_bytes:
            return False
        self.kept_bytes += n
        return True

    def release(self, n: int) -> None:
        self.kept_bytes -= n

    def watched(self, message: bytes) -> bool:
        if self._model is None:
            return True
        name = leading_model_name(message)
        return name is None or name == self._model  # None: the parser decides

    def offer(self, message: bytes | tuple[bytes, str] | None) -> None:
        feeder = self.feeder
        if feeder is None or message is None:
            return
        if isinstance(message, tuple):  # compressed: undone in the worker, capped
            payload, encoding = message
            feeder.offer(payload, self._compressed_parser(encoding))
            return
        if not message:
            feeder.skip("too_large")
            return
        feeder.offer(message, self._parse)

    def _compressed_parser(self, encoding: str) -> Parser:
        cap, parse = self.config.stats_max_bytes, self._parse

        def parse_compressed(payload: bytes) -> dict[str, np.ndarray]:
            return parse(decode_body(payload, encoding, cap))

        return parse_compressed

    def observation_lost(self, exc: BaseException) -> None:
        # Once a minute at most: a client that sends garbage must not flood the log.
        now = time.monotonic()
        if now - self._lost_logged > 60:
            self._lost_logged = now
            log.warning("stopped observing a gRPC connection: %s", exc)
