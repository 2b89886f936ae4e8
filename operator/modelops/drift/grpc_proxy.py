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

Triton's header blocks are decoded too (their own HPACK table, the same
per-table-state cache), for issue 18:

- rollout figures: a ``ModelInfer`` counts by Triton's ``grpc-status``: OK, a
  client's fault (INVALID_ARGUMENT, NOT_FOUND, ...; ``clientErrors``, not
  gating), or an error users feel (UNAVAILABLE, INTERNAL, ..., or no status:
  a reset, a deadline the client gave up on). Other methods never count;
- the first header block of each ``ModelInfer`` answer (headers, or trailers
  of an error answer) gains ``x-modelops-version`` / ``x-modelops-epoch``,
  appended as HPACK literals *without indexing*: they leave the client's
  table untouched, so Triton's encoder and the client's decoder stay in step.
  Only that frame is held back until whole; every other byte passes as read;
- drain (SIGTERM): each client gets a GOAWAY (last stream 2^31-1, NO_ERROR:
  no new streams, every open one served) inserted between two of Triton's
  frames; a connection closes once its streams have all ended.

- the canary split: a ``ModelInfer`` the canary weight gives to the
  candidate still reaches Triton, but Triton's answer frames are held back
  and replaced by the candidate's answer (see :class:`_Split`); the decision,
  the figures and the circuit breaker are :class:`~modelops.drift.traffic_plane.Rollout`'s,
  shared with the HTTP proxy. Every call can be split, a connection's first
  included: the client's first SETTINGS frame tells Triton to keep no HPACK
  table for its answers (:mod:`~modelops.drift.h2_settings`), so no answer's
  header block changes the client's table and each can be held back;
- in place (``placement: InPlace``): mirrors and splits go to this pod's own
  Triton, the request message re-targeted at ``<model>.candidate`` and copies
  at Triton's lower priority, shed first under the live limit, and counted in
  the in-place figures: :class:`~modelops.drift.inplace.InPlaceTarget`'s
  decisions and :class:`~modelops.drift.inplace.InPlaceRoute`'s figures, the
  HTTP proxy's own.

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
import struct
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol, cast

import hpack
import numpy as np
from prometheus_client import CollectorRegistry, Counter, Gauge

from modelops.drift.figures import RolloutFigures
from modelops.drift.grpc_payload import leading_model_name, model_infer_parser
from modelops.drift.h2_settings import FirstSettings
from modelops.drift.inplace import InPlaceError, InPlaceRoute
from modelops.drift.outputs import Answer
from modelops.drift.payload import Parser, decode_body
from modelops.drift.traffic import MIRROR_HEADER, SPLIT_HEADER
from modelops.drift.traffic_plane import Rollout
from modelops.drift.transport import nodelay

log = logging.getLogger("modelops.drift.grpc")

SERVICE = "inference.GRPCInferenceService"
MODEL_INFER = f"/{SERVICE}/ModelInfer".encode()
MODEL_STREAM_INFER = f"/{SERVICE}/ModelStreamInfer".encode()
_PATH_LABELS = {MODEL_INFER: "ModelInfer", MODEL_STREAM_INFER: "ModelStreamInfer"}
METHOD_LABELS = ("ModelInfer", "ModelStreamInfer", "other")

_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
# HTTP/2 frame types and flags (RFC 9113 section 6).
_DATA, _HEADERS, _RST_STREAM, _GOAWAY, _WINDOW_UPDATE, _CONTINUATION = 0x0, 0x1, 0x3, 0x7, 0x8, 0x9
_END_STREAM, _END_HEADERS, _PADDED, _PRIORITY = 0x1, 0x4, 0x8, 0x20
# Triton's DATA held back for one split call at most (below the 64 KiB initial
# stream window); a longer answer passes on, unsplit.
_SPLIT_HOLD_MAX = 32 * 1024
# The frames of a split call's answer that are held back (see _Split).
_HELD_TYPES = frozenset({_DATA, _HEADERS, _CONTINUATION, _RST_STREAM})
# A frame header: 24-bit length (as 16 + 8 bits), type, flags, stream id (with its reserved bit).
_FRAME_HEAD = struct.Struct(">HBBBL")
# Largest frame payload either peer may send (SETTINGS_MAX_FRAME_SIZE's ceiling).
_MAX_FRAME = (1 << 24) - 1
# Header blocks above this stop the observation of the connection (Triton's
# own limit on header lists is far smaller).
_MAX_HEADER_BLOCK = 256 * 1024
# HPACK: how many header blocks that leave the table as it is one connection
# remembers the meaning of (per direction).
_HEADER_CACHE = 64
# Write-buffer high water mark of each side: past it the other side's
# reading pauses until this one drains. With one read (up to 256 KiB with
# uvloop) on top, a connection buffers at most ~0.6 MiB, both ways together.
_WRITE_HIGH = 64 * 1024
# The client's SETTINGS_MAX_FRAME_SIZE is not followed: a header frame grows
# by the answer's metadata only while it stays within the protocol's default.
_DEFAULT_MAX_FRAME = 16384
# Drain: a connection with no open stream is closed after this quiet time.
_DRAIN_QUIET = 0.2
# Graceful shutdown (RFC 9113 section 6.8): "no new streams", every stream the
# client opened is still served (last stream id 2^31-1, NO_ERROR).
_GOAWAY_FRAME = struct.pack(">HBBBLLL", 0, 8, _GOAWAY, 0, 0, 0x7FFFFFFF, 0)
# gRPC status codes that are the caller's fault (counted in clientErrors, not
# errors): INVALID_ARGUMENT, NOT_FOUND, ALREADY_EXISTS, PERMISSION_DENIED,
# FAILED_PRECONDITION, OUT_OF_RANGE, UNAUTHENTICATED.
CLIENT_FAULT_CODES = frozenset({3, 5, 6, 7, 9, 11, 16})


def status_class(grpc_status: int | None) -> int:
    """The HTTP-like status the rollout figures count for a ModelInfer's grpc-status:
    200 for OK, 400 for a client's fault, 500 for the server's, 0 for no status
    (a reset, a connection gone: no answer)."""
    if grpc_status is None:
        return 0
    if grpc_status == 0:
        return 200
    return 400 if grpc_status in CLIENT_FAULT_CODES else 500


def _hpack_int(value: int, prefix_bits: int, first: int) -> bytes:
    limit = (1 << prefix_bits) - 1
    if value < limit:
        return bytes([first | value])
    out, value = bytearray([first | limit]), value - limit
    while value >= 128:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _literal(name: bytes, value: bytes) -> bytes:
    # "Literal Header Field without Indexing, new name" (RFC 7541 6.2.2): it
    # leaves the client's HPACK table untouched, so Triton's encoder and the
    # client's decoder stay in step although the relay added it.
    return b"\x00" + _hpack_int(len(name), 7, 0) + name + _hpack_int(len(value), 7, 0) + value


def _visible(value: str) -> bytes:
    return "".join(c for c in value if "!" <= c <= "~").encode("ascii")


def answer_metadata(version: str, epoch: str) -> bytes:
    """``x-modelops-version`` / ``x-modelops-epoch`` as HPACK bytes for a ModelInfer answer."""
    out = b""
    if version:
        out += _literal(b"x-modelops-version", _visible(version))
    if epoch:
        out += _literal(b"x-modelops-epoch", _visible(epoch))
    return out


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
    headed: bool = False  # Triton's first header block for the stream was seen
    status: int | None = None  # grpc-status of Triton's answer
    # Mirroring (a ModelInfer chosen for the candidate): the request and
    # Triton's answer, each whole and uncompressed, else ``mirror_drop``.
    mirror: RolloutFigures | None = None  # the figures of the epoch that chose it
    mirror_request: bytes | None = None
    mirror_answer: bytes | None = None
    mirror_drop: bool = False
    split: _Split | None = None  # the candidate answers it (canary weight)
    live: bool = False  # counted in the relay's live ModelInfer calls in flight


@dataclass(eq=False)
class _Split:
    """A ModelInfer the canary weight gives to the candidate.

    The call still goes to Triton (the relay does not touch the client's
    bytes: its HPACK table and flow-control windows stay the client's and
    Triton's), and Triton's answer frames are held back; the request message
    goes to the candidate through grpcio at the same time. When both have
    answered, the client gets Triton's header blocks (re-encoded as HPACK
    literals without indexing, which leave the client's table as it is) with
    the candidate's message in the DATA frames, padded to exactly the bytes
    Triton's DATA took of the client's flow-control windows, so that Triton's
    window accounting stays exact. When the candidate fails (a server-side
    status, no answer in time: a candidate error, as for HTTP), answers with a
    client's-fault status, or its answer is longer than Triton's (it would
    overrun the window Triton accounted for), the client gets Triton's own
    answer as Triton sent it: the fallback costs no second call. A header block
    of Triton's that changes the HPACK table cannot be held back (later blocks
    refer to its entries): the frames are then passed on at once and the
    split is given up (a fallback, not a candidate error).
    """

    figures: RolloutFigures  # the figures of the epoch that chose it
    t0: float
    frames: list[tuple[int, int, bytes]] = field(default_factory=list)  # Triton's, held
    blocks: list[list[tuple[bytes, bytes]] | None] = field(default_factory=list)  # None: raw
    data_len: int = 0  # flow-controlled bytes of Triton's DATA frames
    reserved: int = 0  # of the relay's kept-bytes budget
    status: int | None = None  # Triton's grpc-status
    give_up: bool = False  # a table-changing block: pass everything on now
    triton_done: bool = False
    outcome: str | None = None  # the candidate's: ok, error, timeout, client
    answer: bytes | None = None
    task: asyncio.Task[None] | None = None
    route: InPlaceRoute | None = None  # the candidate runs in this pod's Triton


# -- reading frames along ---------------------------------------------------------------------


class _FrameReader:
    """Incremental HTTP/2 frame splitter for one direction of a connection.

    Payloads are collected only for the frames ``want.wanted`` asks for; the
    DATA of a wanted frame goes to ``want.data`` piece by piece as it
    arrives, never buffered here.
    """

    __slots__ = (
        "_buf", "_flags", "_head", "_held", "_keep", "_length", "_preface", "_raw", "_remaining",
        "_rewritten", "_stream", "_swallow", "_target", "_type", "frames", "swallowing",
    )  # fmt: skip

    def __init__(self, preface: bool) -> None:
        self._preface = len(_PREFACE) if preface else 0
        self._head = bytearray()
        self._remaining = 0  # payload bytes of the current frame still to come; 0: a header next
        self._type = self._flags = self._stream = 0
        self._buf = bytearray()
        self._keep = False
        # Rewriting (the Triton side only, with ``out``): metadata appended to
        # the frame being read (b"": none), the rewritten frame once read, and
        # the bytes of earlier reads not yet passed on (a frame head cut by a
        # read's end, or a frame to rewrite, until it is whole).
        self._target = b""
        self._rewritten: bytes | None = None
        self._held = bytearray()
        self.frames = 0  # frames read: after the first, Triton's preface is through
        # Streams whose frames are held back whole (split calls, the Triton side with
        # ``out`` only): each such frame goes to ``want.held``, which says what to pass
        # on in its place. Empty: nothing is looked up.
        self.swallowing: dict[int, Any] = {}
        self._swallow = False
        self._raw = bytearray()
        self._length = 0

    def at_boundary(self) -> bool:
        """Between two frames, with nothing held back: a frame may be inserted here."""
        return self._remaining == 0 and not self._head and not self._held and self.frames > 0

    def feed(self, data: bytes, want: _Wants, out: list[bytes | memoryview] | None = None) -> None:
        """Read ``data`` along. With ``out``, the bytes to pass on are appended to it
        instead of being passed on by the caller: the same bytes, except that the
        header blocks ``want.target`` names grow by its metadata, and that a frame
        head or a frame to rewrite cut by the end of ``data`` waits for the next
        read. If reading fails, ``out`` still gets every byte, unchanged."""
        mv = memoryview(data)
        i, n = 0, len(data)
        emit = 0  # with out: data[emit:] (after self._held) is not in out yet
        if self._preface:
            take = min(self._preface, n)
            start = len(_PREFACE) - self._preface
            if mv[:take] != _PREFACE[start : start + take]:
                raise _ObserveError("not an HTTP/2 client preface")
            self._preface -= take
            i = take
        try:
            while i < n:
                if self._remaining == 0:
                    hstart = i
                    began_here = not self._head
                    if began_here and n - i >= 9:  # a whole frame header in this chunk
                        hi, lo, ftype, flags, sid = _FRAME_HEAD.unpack_from(data, i)
                        i += 9
                    else:
                        take = min(9 - len(self._head), n - i)
                        self._head += mv[i : i + take]
                        i += take
                        if len(self._head) < 9:
                            if out is not None:  # keep the cut head back
                                if began_here:
                                    if self._held:
                                        out.append(bytes(self._held))
                                    out.append(mv[emit:hstart])
                                    self._held = bytearray(mv[hstart:n])
                                else:
                                    self._held += mv[emit:n]
                                emit = n
                            return
                        hi, lo, ftype, flags, sid = _FRAME_HEAD.unpack_from(self._head)
                        self._head = bytearray()
                    self.frames += 1
                    length = (hi << 8) | lo
                    self._start(length, ftype, flags, sid, want)
                    if out is not None:
                        if self._target or self._swallow:
                            # Hold the frame back from its head on, until it is whole.
                            if hstart > emit:
                                out.append(mv[emit:hstart])
                                emit = hstart
                        elif not began_here and self._held:
                            out.append(bytes(self._held))  # the cut head of a plain frame
                            self._held = bytearray()
                    if length == 0:
                        self._end(want)
                else:
                    take = min(self._remaining, n - i)
                    if self._keep:
                        if self._type == _DATA:
                            want.data(self._stream, mv[i : i + take])
                        else:
                            self._buf += mv[i : i + take]
                    if self._swallow:
                        self._raw += mv[i : i + take]
                    self._remaining -= take
                    i += take
                    if self._remaining == 0:
                        self._end(want)
                if self._rewritten is not None:
                    if out is not None:
                        out.append(self._rewritten)
                        self._held = bytearray()
                        emit = i
                    self._rewritten = None
        except BaseException:
            if out is not None:
                if self._held:
                    out.append(bytes(self._held))
                out.append(mv[emit:])
                self._held = bytearray()
            raise
        if out is not None:
            if self._target or self._swallow:
                self._held += mv[emit:n]
            else:
                if self._held:
                    out.append(bytes(self._held))
                    self._held = bytearray()
                out.append(mv[emit:n])

    def _start(self, length: int, ftype: int, flags: int, sid: int, want: _Wants) -> None:
        if length > _MAX_FRAME:
            raise _ObserveError("frame too large")
        self._type, self._flags, self._stream = ftype, flags, sid & 0x7FFFFFFF
        self._remaining = self._length = length
        self._keep = want.wanted(ftype, flags, self._stream)
        swallowing = self.swallowing
        # WINDOW_UPDATEs always pass at once: the client may need them to send the rest
        # of the request that Triton's answer (and so the release of the held frames)
        # waits for.
        self._swallow = bool(swallowing) and self._stream in swallowing and ftype in _HELD_TYPES
        if self._swallow:
            self._raw = bytearray(_FRAME_HEAD.pack(length >> 8, length & 0xFF, ftype, flags, sid))
        if self._keep and ftype != _DATA and length > _MAX_HEADER_BLOCK:
            raise _ObserveError("control frame too large to follow")
        if ftype == _DATA and self._keep and flags & _PADDED:
            raise _ObserveError("padded DATA")  # gRPC peers do not pad; not worth following
        if (
            self._keep
            and flags & _END_HEADERS
            and ftype in (_HEADERS, _CONTINUATION)
            and not self._swallow
        ):
            self._target = want.target(self._stream)

    def _end(self, want: _Wants) -> None:
        if self._swallow:
            self._swallow = False
            self._end_frame(want)
            raw, self._raw = bytes(self._raw), bytearray()
            self._rewritten = want.held(self._type, self._flags, self._stream, raw, self._length)
            return
        self._end_frame(want)

    def _end_frame(self, want: _Wants) -> None:
        if self._keep and self._type != _DATA:
            buf, self._buf = self._buf, bytearray()
            want.frame(self._type, self._flags, self._stream, buf)
            if self._target:
                self._rewritten = _grown(self._type, self._flags, self._stream, buf, self._target)
                self._target = b""
        elif self._type == _DATA and self._flags & _END_STREAM:
            want.frame(_DATA, self._flags, self._stream, b"")


def _grown(ftype: int, flags: int, stream: int, payload: bytes | bytearray, extra: bytes) -> bytes:
    """A header frame (the last of its block) with ``extra`` appended to its block."""
    body = memoryview(payload)
    new_flags = flags
    if ftype == _HEADERS and flags & _PADDED:  # the padding goes: allowed, and simpler
        pad = body[0]
        body = body[1 : len(body) - pad]
        new_flags &= ~_PADDED
    length = len(body) + len(extra)
    if length > _DEFAULT_MAX_FRAME:  # unchanged: the client may not take a larger frame
        n = len(payload)
        return _FRAME_HEAD.pack(n >> 8, n & 0xFF, ftype, flags, stream) + bytes(payload)
    return _FRAME_HEAD.pack(length >> 8, length & 0xFF, ftype, new_flags, stream) + body + extra


def _header_frames(stream: int, block: bytes, end_stream: bool) -> bytes:
    """A header block as HEADERS (+ CONTINUATION) frames within the default frame size."""
    out = bytearray()
    first = True
    while True:
        piece, block = block[:_DEFAULT_MAX_FRAME], block[_DEFAULT_MAX_FRAME:]
        flags = (_END_HEADERS if not block else 0) | (_END_STREAM if first and end_stream else 0)
        n = len(piece)
        out += _FRAME_HEAD.pack(
            n >> 8, n & 0xFF, _HEADERS if first else _CONTINUATION, flags, stream
        )
        out += piece
        first = False
        if not block:
            return bytes(out)


def _data_frames(stream: int, message: bytes) -> bytes:
    """``message`` in DATA frames within the default frame size (unpadded: grpc-core
    refuses padded DATA)."""
    out = bytearray()
    for i in range(0, len(message), _DEFAULT_MAX_FRAME):
        piece = message[i : i + _DEFAULT_MAX_FRAME]
        out += _FRAME_HEAD.pack(len(piece) >> 8, len(piece) & 0xFF, _DATA, 0, stream) + piece
    return bytes(out)


def _window_update(increment: int) -> bytes:
    """A connection-level WINDOW_UPDATE (stream 0)."""
    return _FRAME_HEAD.pack(0, 4, _WINDOW_UPDATE, 0, 0) + increment.to_bytes(4, "big")


def _assemble(stream: int, sp: _Split, body: bytes | None, meta: bytes) -> bytes:
    """Triton's held frames for the client, in order: header blocks re-encoded as
    literals without indexing (the first one with ``meta``) unless kept raw, DATA as
    Triton sent it, or ``body`` in its place (padded to Triton's DATA length)."""
    out = bytearray()
    blocks = iter(sp.blocks)
    current: list[tuple[int, int, bytes]] = []
    first_block = True
    data_done = False
    for ftype, flags, raw in sp.frames:
        if ftype in (_HEADERS, _CONTINUATION):
            current.append((ftype, flags, raw))
            if not flags & _END_HEADERS:
                continue
            fields = next(blocks, None)
            extra = meta if first_block else b""
            first_block = False
            if fields is None:  # passed as Triton sent it (with the metadata appended)
                if extra:
                    lt, lf, lraw = current[-1]
                    current[-1] = (lt, lf, _grown(lt, lf, stream, lraw[9:], extra))
                out += b"".join(r for _, _, r in current)
            else:
                block = b"".join(_literal(n, v) for n, v in fields) + extra
                out += _header_frames(stream, block, bool(current[0][1] & _END_STREAM))
            current = []
        elif ftype == _DATA and body is not None:
            if not data_done:
                out += _data_frames(stream, body)
                data_done = True
        else:
            out += raw
    return bytes(out)


class _Wants(Protocol):
    def wanted(self, ftype: int, flags: int, stream: int) -> bool: ...

    def data(self, stream: int, chunk: memoryview) -> None: ...

    def frame(self, ftype: int, flags: int, stream: int, payload: bytes | bytearray) -> None: ...

    def target(self, stream: int) -> bytes: ...

    def held(self, ftype: int, flags: int, stream: int, raw: bytes, length: int) -> bytes: ...


def _request_fields(fields: list[tuple[bytes, bytes]]) -> tuple[bytes | None, bytes | None, bool]:
    path = encoding = None
    forwarded = False
    for name, value in fields:
        if name == b":path":
            path = value
        elif name == b"grpc-encoding":
            encoding = value
        elif name in (MIRROR_HEADER, SPLIT_HEADER):
            forwarded = True
    return path, encoding, forwarded


def _grpc_status(fields: list[tuple[bytes, bytes]]) -> int | None:
    status = None
    for name, value in fields:
        if name == b"grpc-status":
            status = int(value) if value.isdigit() else 2  # unparsable: UNKNOWN
    return status


class _Blocks:
    """One direction's HPACK decoder, and what its repeated header blocks meant.

    A block that leaves the dynamic table as it found it (a repeated call: every
    field already in the tables, or literals that are not indexed, which is all
    Triton sends once told that the client's table holds nothing, see
    :mod:`~modelops.drift.h2_settings`) means the same each time it comes while
    the table stays as it is; such blocks are remembered until a block changes
    the table. This is what keeps per-call decoding cheap: repeated calls and
    answers send the same bytes. Every other block is decoded, in order, to keep
    the table in step.
    """

    def __init__(self, meaning: Callable[[list[tuple[bytes, bytes]]], Any]) -> None:
        self.decoder = hpack.Decoder()
        # The client's encoder may use the table size Triton allows; Triton
        # enforces its own limit, so any size it accepts is followed here.
        self.decoder.max_allowed_table_size = 1 << 20
        self.meaning = meaning
        self._cache: dict[bytes, Any] = {}

    def _entries(self) -> tuple[int, int]:
        # What the table holds, cheaply: an insertion puts a new tuple first
        # (hpack's HeaderTable.add), and the one it displaces stays alive in the
        # table, so its id cannot be reused by the new one.
        entries = self.decoder.header_table.dynamic_entries
        return len(entries), id(entries[0]) if entries else 0

    def read(self, block: bytes) -> Any:
        hit = self._cache.get(block)
        if hit is not None:
            return hit[0]
        table = self.decoder.header_table
        before = self._entries(), table.maxsize
        value = self.meaning(self.decoder.decode(block, raw=True))
        if (self._entries(), table.maxsize) != before:
            self._cache.clear()  # the table changed: what other blocks mean may have too
        elif len(self._cache) < _HEADER_CACHE and not _size_update(block):
            self._cache[block] = (value,)
        return value

    def fields(self, block: bytes) -> tuple[list[tuple[bytes, bytes]], bool]:
        """Every field of a block, and whether it inserted into the table (a size
        update alone does not count: re-encoded without it, the block leaves the
        client's decoder a table at least as large as Triton's encoder uses)."""
        before = self._entries()
        maxsize = self.decoder.header_table.maxsize
        fields = self.decoder.decode(block, raw=True)
        changed = self._entries() != before
        if changed or self.decoder.header_table.maxsize != maxsize:
            self._cache.clear()
        return fields, changed


def _size_update(block: bytes) -> bool:
    """Whether a header block starts with a dynamic table size update (RFC 7541 6.3)."""
    return bool(block) and block[0] & 0xE0 == 0x20


class _Observer:
    """What one connection's reader does with the frames: the streams worth a look."""

    def __init__(self, relay: GrpcProxy) -> None:
        self.relay = relay
        self.streams: dict[int, _Stream] = {}
        self.requests_hpack = _Blocks(_request_fields)
        # Triton's header blocks, decoded too: their grpc-status tells a
        # client's fault from a server's (the same caching as the client's).
        self.responses_hpack = _Blocks(_grpc_status)
        self.open: set[int] = set()  # streams of any method not ended yet (for the drain)
        # ModelInfer calls the candidate answers (stream -> split); the Triton side's
        # reader holds their frames back (it shares this dict).
        self.splits: dict[int, _Split] = {}
        self.client: _Client | None = None  # where answers put together later are written
        self.requests = _ClientSide(self)
        self.responses = _ServerSide(self)

    def _decode(self, block: bytes) -> tuple[bytes | None, bytes | None, bool]:
        """(:path, grpc-encoding, sent by another sidecar as a mirror or a split) of
        one of the client's header blocks."""
        path, encoding, forwarded = self.requests_hpack.read(block)
        return path, encoding, forwarded

    def on_response_headers(self, stream: int, flags: int, block: bytes) -> None:
        sp = self.splits.get(stream)
        if sp is not None:
            self._split_headers(sp, block)
            status = sp.status
        else:
            status = self.responses_hpack.read(block)
        st = self.streams.get(stream)
        if st is not None:
            st.headed = True
            if status is not None:
                st.status = status
        if flags & _END_STREAM:
            self.open.discard(stream)
            self.close_stream(stream)

    def _split_headers(self, sp: _Split, block: bytes) -> None:
        """Decode one of Triton's header blocks of a split call and keep its fields for
        re-encoding; a block that changes the HPACK table must pass on as it is."""
        fields, changed = self.responses_hpack.fields(block)
        if changed:
            sp.give_up = True
        sp.blocks.append(None if sp.give_up else fields)
        for name, value in fields:
            if name == b"grpc-status":
                sp.status = int(value) if value.isdigit() else 2

    def held(self, ftype: int, flags: int, stream: int, raw: bytes, length: int) -> bytes:
        """A frame of Triton's for a split call, kept; returns what passes on in its
        place now (nothing, or the whole answer once it is complete)."""
        sp = self.splits.get(stream)
        if sp is None:
            return raw
        sp.frames.append((ftype, flags, raw))
        if ftype == _DATA:
            sp.data_len += length
            # Held DATA is bounded: within the kept-bytes budget, and below the 64 KiB
            # stream window every gRPC client grants at least (past the window Triton
            # would wait for a WINDOW_UPDATE the client sends only for what it got).
            if sp.data_len > _SPLIT_HOLD_MAX or not self.relay.reserve(length):
                sp.give_up = True
            else:
                sp.reserved += length
        if sp.give_up:
            return self.finish_split(stream, sp, give_up=True)
        if ftype == _RST_STREAM or stream not in self.streams:  # Triton's answer is complete
            sp.triton_done = True
            if sp.outcome is not None:
                return self.finish_split(stream, sp)
        return b""

    def finish_split(self, stream: int, sp: _Split, give_up: bool = False) -> bytes:
        """The split call's answer for the client, counted: the candidate's message in
        Triton's frames, or Triton's own answer (fallback)."""
        self.splits.pop(stream, None)
        self._release_split(sp)
        if sp.task is not None and not sp.task.done():
            sp.task.cancel()
        st = self.streams.get(stream)
        if st is not None:  # given up before Triton's answer ended: counted as Triton's then
            st.split = None
        relay = self.relay
        rollout = relay.rollout
        assert rollout is not None
        body = None
        if not give_up and sp.outcome == "ok" and sp.status == 0 and sp.answer is not None:
            message = b"\x00" + len(sp.answer).to_bytes(4, "big") + sp.answer
            ends_in_data = any(f == _DATA and fl & _END_STREAM for f, fl, _ in sp.frames)
            if len(message) <= sp.data_len and not ends_in_data:
                body = message
            elif not ends_in_data:
                relay.answer_too_long(len(message) - sp.data_len)
        now = asyncio.get_running_loop().time()
        if body is not None:
            rollout.split_answered()
            if sp.data_len > len(body) and self.client is not None:
                # Triton counted its longer DATA against the client's connection window,
                # the client will give back only what it got: the difference is given
                # back to Triton here, so that both keep the same account.
                self.client.inject_upstream(_window_update(sp.data_len - len(body)))
            candidate = rollout.settings.candidate
            meta = answer_metadata(candidate.version if candidate else "", rollout.settings.epoch)
        else:
            if sp.outcome in ("error", "timeout") and not give_up:
                rollout.split_failed(now, timeout=sp.outcome == "timeout")
            else:  # given up, its answer too long, or a client's fault: not the candidate's
                rollout.figures.split_fallbacks += 1
            if st is None:
                sp.figures.observe(status_class(sp.status), time.perf_counter() - sp.t0)
            meta = relay.answer_metadata()
        return _assemble(stream, sp, body, meta)

    def split_answered(self, stream: int, sp: _Split) -> None:
        """The candidate's call ended (event loop, after Triton's frames or before)."""
        if sp.triton_done and self.splits.get(stream) is sp and self.client is not None:
            self.client.inject(self.finish_split(stream, sp))

    def target(self, stream: int) -> bytes:
        """Metadata to add to Triton's first header block of this stream (b"": none)."""
        st = self.streams.get(stream)
        if st is None or st.headed or st.method != "ModelInfer":
            return b""
        return self.relay.answer_metadata()

    def on_headers(self, stream: int, flags: int, block: bytes) -> None:
        path, encoding, mirrored = self._decode(block)
        if stream in self.open:
            return  # trailers from the client: not a new call
        self.open.add(stream)
        label = _PATH_LABELS.get(path or b"", "other")
        relay = self.relay
        relay.metrics.call(label)
        if (
            label == "other"
            or (relay.feeder is None and relay.figures is None)
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
        if label == "ModelInfer":
            st.live = True
            relay.live += 1
        # Sent by another sidecar (a mirror, a split): never passed on again.
        if label == "ModelInfer" and not mirrored and not relay.choose_split(self, stream, st):
            relay.choose_mirror(st)

    def request_messages(self, st: _Stream, msgs: list[_Msg]) -> None:
        relay = self.relay
        sp = st.split
        if sp is not None and sp.task is None and sp.outcome is None:
            payload, compressed, over = msgs[0]
            if isinstance(payload, bytes) and not (compressed or over):
                relay.start_split(self, sp, payload)
            else:  # compressed, or above the caps: Triton's answer is the client's
                self._abandon_split(st)
        if st.method == "ModelStreamInfer" and relay.figures is not None:
            now = time.perf_counter()
            st.arrivals.extend(now for _ in msgs)
        if st.mirror is not None:
            for payload, compressed, over in msgs:
                if (
                    st.mirror_request is None
                    and isinstance(payload, bytes)
                    and not (compressed or over)
                ):
                    st.mirror_request = payload
                else:  # compressed, above the cap, or a second message
                    st.mirror_drop = True
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
        if st.mirror is not None:
            for payload, compressed, over in msgs:
                if (
                    st.mirror_answer is None
                    and isinstance(payload, bytes)
                    and not (compressed or over)
                ):
                    st.mirror_answer = payload
                else:
                    st.mirror_drop = True
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

    def _abandon_split(self, st: _Stream) -> None:
        sp = st.split
        st.split = None
        for stream, found in list(self.splits.items()):
            if found is sp and self.client is not None:
                self.client.inject(self.finish_split(stream, found, give_up=True))

    def client_reset(self, stream: int) -> None:
        """The client reset a stream: a split call's answer is no one's any more."""
        sp = self.splits.pop(stream, None)
        if sp is not None:
            self._release_split(sp)
            if sp.task is not None:
                sp.task.cancel()

    def _release_split(self, sp: _Split) -> None:
        self.relay.release(sp.reserved)
        sp.reserved = 0

    def close_stream(self, stream: int, count: bool = True) -> None:
        st = self.streams.pop(stream, None)
        if st is None:
            return
        if st.held:
            self.relay.release(st.held)  # kept messages never answered, and partial ones
            st.held = 0
        if st.live:
            st.live = False
            self.relay.live -= 1
        if st.mirror is not None:
            self.relay.end_mirror(st, answered=count and st.status == 0)
        figures = self.relay.figures
        if count and figures is not None and st.split is None:  # a split counts when it ends
            # ModelInfer: by Triton's grpc-status (a client's fault is apart); a
            # reset or an end without status is no answer, an error.
            # ModelStreamInfer: request messages left unanswered at the end failed.
            now = time.perf_counter()
            if st.method == "ModelInfer":
                figures().observe(status_class(st.status), now - st.t0)
            else:
                for since in st.arrivals:
                    figures().observe(500, now - since)

    def close(self) -> None:
        # The connection went away: its streams' ends were not seen, so they are not counted.
        for stream in list(self.streams):
            self.close_stream(stream, count=False)
        for stream in list(self.splits):
            self.client_reset(stream)


class _Side:
    """One direction's frames: header blocks put together from HEADERS and
    CONTINUATION frames (for ``block``), the other frames' ends (for ``other``)."""

    def __init__(self, obs: _Observer) -> None:
        self.obs = obs
        self._out: list[_Msg] = []
        self._block = bytearray()
        self._block_stream = 0
        self._block_flags = 0

    def block(self, stream: int, flags: int, block: bytes) -> None:
        raise NotImplementedError

    def other(self, ftype: int, flags: int, stream: int) -> None:
        raise NotImplementedError

    def frame(self, ftype: int, flags: int, stream: int, payload: bytes | bytearray) -> None:
        if ftype == _HEADERS:
            block = memoryview(payload)
            if flags & _PADDED:
                pad = block[0]
                block = block[1 : len(block) - pad]
            if flags & _PRIORITY:
                block = block[5:]
            if flags & _END_HEADERS:
                self.block(stream, flags, block.tobytes())
            else:
                self._block = bytearray(block)
                self._block_stream, self._block_flags = stream, flags
        elif ftype == _CONTINUATION:
            if stream != self._block_stream:
                raise _ObserveError("CONTINUATION out of sequence")
            self._block += payload
            if len(self._block) > _MAX_HEADER_BLOCK:
                raise _ObserveError("header block too large")
            if flags & _END_HEADERS:
                block, self._block = bytes(self._block), bytearray()
                self.block(stream, self._block_flags, block)
        else:
            self.other(ftype, flags, stream)


class _ClientSide(_Side):
    """Frames from the client: header blocks (always), DATA of observed streams."""

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

    def target(self, stream: int) -> bytes:
        return b""

    def block(self, stream: int, flags: int, block: bytes) -> None:
        self.obs.on_headers(stream, flags, block)

    def other(self, ftype: int, flags: int, stream: int) -> None:
        if ftype == _RST_STREAM:
            obs = self.obs
            obs.open.discard(stream)
            obs.client_reset(stream)
            obs.close_stream(stream)

    def held(self, ftype: int, flags: int, stream: int, raw: bytes, length: int) -> bytes:
        return raw  # the client's frames are never held


class _ServerSide(_Side):
    """Frames from Triton: header blocks and resets (always), DATA of observed streams."""

    def wanted(self, ftype: int, flags: int, stream: int) -> bool:
        if ftype == _DATA:
            return stream in self.obs.streams
        return ftype in (_HEADERS, _CONTINUATION, _RST_STREAM)

    def target(self, stream: int) -> bytes:
        return self.obs.target(stream)

    def held(self, ftype: int, flags: int, stream: int, raw: bytes, length: int) -> bytes:
        return self.obs.held(ftype, flags, stream, raw, length)

    def data(self, stream: int, chunk: memoryview) -> None:
        st = self.obs.streams.get(stream)
        if st is None:
            return
        out = self._out
        st.responses.feed(chunk, out)
        if out:
            self.obs.response_messages(st, out)
            out.clear()

    def block(self, stream: int, flags: int, block: bytes) -> None:
        self.obs.on_response_headers(stream, flags, block)

    def other(self, ftype: int, flags: int, stream: int) -> None:
        if ftype == _RST_STREAM or flags & _END_STREAM:  # a reset, or DATA ending the stream
            obs = self.obs
            obs.open.discard(stream)
            obs.close_stream(stream)


# -- the two sides of one relayed connection ---------------------------------------------------


class _Client(asyncio.Protocol):
    def __init__(self, relay: GrpcProxy) -> None:
        self.relay = relay
        self.transport: asyncio.Transport | None = None
        self.upstream: _Upstream | None = None
        self.early: list[bytes] = []  # bytes that came before Triton's connection did
        self.observer: _Observer | None = _Observer(relay) if relay.feeder is not None else None
        if self.observer is not None:
            self.observer.client = self
        self._observer_all = self.observer  # kept after observation stops, to release its bytes
        # Answers of split calls put together after Triton's frames went by: they wait
        # for a frame boundary of Triton's byte stream.
        self.injections: list[bytes] = []
        self.upstream_injections: list[bytes] = []  # the same, for Triton
        self.reader = _FrameReader(preface=True)
        # The client's first SETTINGS frame tells Triton to keep no HPACK table for its
        # answers, so that a split call's answer can be held back from the connection's
        # first call on (see modelops.drift.h2_settings).
        self.first_settings = (
            FirstSettings() if self.observer is not None and relay.rollout is not None else None
        )
        self.closed = False
        # Drain: a GOAWAY waits for a frame boundary of Triton's byte stream.
        self.goaway_pending = False
        self.goaway_sent = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        relay = self.relay
        if len(relay._clients) >= relay.config.max_connections:
            relay.metrics.refused_limit.inc()
            self.transport.abort()
            return
        nodelay(transport)
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
        first = self.first_settings
        if first is not None:
            data = first.feed(data)
            if first.done:
                self.first_settings = None
            if not data:
                return
        up.transport.write(data)
        obs = self.observer
        if obs is not None:
            try:
                self.reader.feed(data, obs.requests)
            except (_ObserveError, hpack.HPACKError, ValueError, IndexError) as exc:
                self.relay.observation_lost(exc)
                self.observer = None
                if obs.splits:  # answers held back that can no longer be put together
                    self.close()
                return
            if self.upstream_injections and self.reader.at_boundary():
                for frames in self.upstream_injections:
                    up.transport.write(frames)
                self.upstream_injections.clear()

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

    def start_drain(self) -> None:
        """Tell the client to open no new streams here, once the bytes allow it."""
        up = self.upstream
        if self.goaway_sent or self.closed:
            return
        if up is None or self.observer is None:
            return  # no frame boundary known: the drain's deadline closes it
        if up.reader.at_boundary():
            self.send_goaway()
        else:
            self.goaway_pending = True

    def send_goaway(self) -> None:
        self.goaway_pending = False
        self.goaway_sent = True
        self.write(_GOAWAY_FRAME)

    def inject_upstream(self, data: bytes) -> None:
        """Frames of our own for Triton, written between two of the client's frames."""
        up = self.upstream
        if up is None or up.transport is None:
            return
        if not self.upstream_injections and self.reader.at_boundary():
            up.transport.write(data)
        else:
            self.upstream_injections.append(data)

    def inject(self, data: bytes) -> None:
        """Frames of our own for the client, written between two of Triton's frames."""
        if not data:
            return
        up = self.upstream
        if up is not None and not self.injections and up.reader.at_boundary():
            self.write(data)
        else:
            self.injections.append(data)

    def idle(self) -> bool:
        """After the GOAWAY, no stream left open (nothing left to answer)."""
        return self.goaway_sent and self.observer is not None and not self.observer.open


class _Upstream(asyncio.Protocol):
    def __init__(self, client: _Client) -> None:
        self.client = client
        self.transport: asyncio.Transport | None = None
        self.reader = _FrameReader(preface=False)
        if client.observer is not None:
            self.reader.swallowing = client.observer.splits

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        nodelay(transport)
        self.transport.set_write_buffer_limits(high=_WRITE_HIGH)
        self.client.upstream = self
        self.client.flush_early()

    def data_received(self, data: bytes) -> None:
        client = self.client
        obs = client.observer
        if obs is None:
            client.write(data)
            return
        out: list[bytes | memoryview] = []
        try:
            self.reader.feed(data, obs.responses, out)
        except (_ObserveError, hpack.HPACKError, ValueError, IndexError) as exc:
            client.relay.observation_lost(exc)
            client.observer = None
            if obs.splits:  # answers held back that can no longer be put together
                client.close()
                return
        # At most one write per read of Triton's bytes, however many pieces the reader
        # cut them into (around a grown header frame, an answer put together): each
        # write is a send() while the socket keeps up. (strace, 8 clients: 2.2 writes
        # per ModelInfer before and after; Triton's frames mostly come one per read.)
        if len(out) == 1:
            client.write(out[0])
        elif out:
            client.write(b"".join(out))
        if client.injections and self.reader.at_boundary():
            for frames in client.injections:
                client.write(frames)
            client.injections.clear()
        if client.goaway_pending and client.observer is not None and self.reader.at_boundary():
            client.send_goaway()

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
        answer: Callable[[], tuple[str, str]] | None = None,
        rollout: Rollout | None = None,
        inplace: Callable[[], InPlaceRoute | None] | None = None,
    ) -> None:
        self.config = config
        # The in-place candidate's route (the HTTP proxy's, one per epoch): with it,
        # mirrors and splits go to this pod's own Triton under the candidate's model
        # name, copies at the lower priority and shed first, and the candidate's
        # answers are counted in its figures, as for HTTP (modelops.drift.inplace).
        self.inplace = inplace
        self.live = 0  # live ModelInfer calls in flight to Triton (observed ones)
        self.feeder = feeder
        # (version, epoch) that ModelInfer answers name in their metadata.
        self.answer = answer
        self._answer_key: tuple[str, str] = ("", "")
        self._answer_bytes = b""
        # Mirroring ModelInfer to the candidate's gRPC address (traffic file).
        self.rollout = rollout
        self._channel: Any = None  # grpc.aio.Channel to the candidate, made when first needed
        self._channel_address: str | None = None
        self._mirror_call: Any = None
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
        self._long_logged = 0.0
        self.kept_bytes = 0

    async def start(self, host: str = "0.0.0.0", port: int = 8081) -> int:
        """Listen; returns the bound port (0 picks a free one)."""
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            lambda: _Client(self), host, port, reuse_address=True, backlog=1024
        )
        return int(self._server.sockets[0].getsockname()[1])

    # -- the canary split (the decision and the figures are the Rollout's, as for HTTP) --------

    def choose_split(self, obs: _Observer, stream: int, st: _Stream) -> bool:
        """Give this ModelInfer to the candidate? True when the canary weight took it
        (the candidate answers it, or this pod while the breaker is open): then it is
        not mirrored either."""
        rollout = self.rollout
        if rollout is None or not rollout.acting or obs.client is None:
            return False
        now = asyncio.get_running_loop().time()
        split = rollout.choose_split(now, self._reachable())
        if split is None:
            return False
        if split:
            sp = _Split(rollout.figures, st.t0)
            sp.route = self.route()
            st.split = sp
            obs.splits[stream] = sp
        return True

    def start_split(self, obs: _Observer, sp: _Split, request: bytes) -> None:
        rollout = self.rollout
        assert rollout is not None
        if sp.route is not None:
            try:
                request = sp.route.target.grpc_split_message(request)
            except InPlaceError as exc:  # not the candidate's fault: Triton's answer stays
                log.debug("gRPC split in place not possible: %s", exc)
                sp.outcome = "client"
                return
        address = self._candidate_address()
        try:
            assert address is not None
            call = self._mirror_stub(address, rollout.max_answer_bytes)
        except Exception as exc:  # e.g. an address grpc refuses: the candidate's failure
            log.warning("gRPC split to %r not possible: %s", address, exc)
            sp.outcome = "error"
            return
        task = asyncio.get_running_loop().create_task(self._split(obs, sp, call, request))
        sp.task = task
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _split(self, obs: _Observer, sp: _Split, call: Any, request: bytes) -> None:
        import grpc

        rollout = self.rollout
        assert rollout is not None
        try:
            answer = await call(
                request, timeout=rollout.mirror_timeout, metadata=((SPLIT_HEADER.decode(), "1"),)
            )
            sp.answer = answer if sp.route is None else sp.route.target.grpc_split_answer(answer)
            sp.outcome, status = "ok", 200
        except grpc.aio.AioRpcError as exc:
            code = exc.code()
            status = status_class(code.value[0])
            if code == grpc.StatusCode.DEADLINE_EXCEEDED:
                sp.outcome, status = "timeout", 0
            elif status == 400:
                sp.outcome = "client"
            else:  # a server-side status, or its answer above the cap
                sp.outcome = "error"
        except asyncio.CancelledError:
            raise
        except Exception:  # anything else is the candidate failing too
            sp.outcome, status = "error", 500
        if sp.route is not None:  # in place: this sidecar counts the candidate's answers
            sp.route.observe(status, time.perf_counter() - sp.t0)
        for stream, found in list(obs.splits.items()):
            if found is sp:
                obs.split_answered(stream, sp)

    # -- mirroring -----------------------------------------------------------------------------

    def choose_mirror(self, st: _Stream) -> None:
        """Mirror this ModelInfer? (the traffic file's share, within the in-flight cap)."""
        rollout = self.rollout
        if rollout is None or not rollout.acting or not rollout.mirror.percent:
            return
        if not self._reachable() or not rollout.mirror.take():
            return
        # The slot is taken now, while Triton's answer is kept: the cap bounds
        # kept answers as well as mirrors on the wire (as for HTTP).
        if rollout.mirror_slot():
            rollout.mirrors_started += 1
            st.mirror = rollout.figures
            st.responses = _Messages(True, rollout.max_answer_bytes)

    def end_mirror(self, st: _Stream, answered: bool) -> None:
        """The stream ended: send the request to the candidate when Triton answered OK."""
        rollout, figures = self.rollout, st.mirror
        assert rollout is not None and figures is not None
        request, stable = st.mirror_request, st.mirror_answer
        address = self._candidate_address()
        if (
            not answered
            or request is None
            or stable is None
            or st.mirror_drop
            or address is None
            or not rollout.acting
        ):
            if answered and (st.mirror_drop or request is None or stable is None):
                figures.mirror_dropped += 1  # above the caps, or compressed
            rollout.mirrors_ended += 1  # only successful calls mirror
            return
        route = self.route()
        if route is not None:
            # The same decision as the HTTP path's: copies are shed first while the
            # live calls in flight to this Triton reach the in-place limit.
            if not route.target.admits(self.live):
                figures.mirror_dropped += 1
                rollout.mirrors_ended += 1
                return
            try:
                request = route.target.grpc_mirror_message(request)
            except InPlaceError as exc:  # a message that cannot be re-targeted: not sent
                log.debug("gRPC mirror in place not possible: %s", exc)
                figures.mirror_dropped += 1
                rollout.mirrors_ended += 1
                return
        try:
            call = self._mirror_stub(address, rollout.max_answer_bytes)
        except Exception as exc:  # e.g. an address grpc refuses
            log.warning("gRPC mirror to %r not possible: %s", address, exc)
            figures.mirror_errors += 1
            rollout.mirrors_ended += 1
            return
        figures.mirrored += 1
        task = asyncio.get_running_loop().create_task(
            self._mirror(call, figures, request, stable, rollout, route)
        )
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def route(self) -> InPlaceRoute | None:
        """The in-place candidate's route of the current epoch (None: separate, or none)."""
        return self.inplace() if self.inplace is not None else None

    def _candidate_address(self) -> str | None:
        """Where the candidate's gRPC calls go: this pod's own Triton when it runs in
        place, else the traffic file's gRPC address (None: nowhere over gRPC)."""
        if self.route() is not None:
            return self.config.upstream
        assert self.rollout is not None
        candidate = self.rollout.settings.candidate
        return candidate.grpc if candidate is not None and candidate.grpc else None

    def _reachable(self) -> bool:
        return self._candidate_address() is not None

    def _mirror_stub(self, address: str, max_answer: int) -> Any:
        if address != self._channel_address:
            import grpc  # only a mirroring sidecar loads grpcio

            old = self._channel
            if old is not None:
                task = asyncio.get_running_loop().create_task(old.close())
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)
            self._channel = grpc.aio.insecure_channel(
                address, options=[("grpc.max_receive_message_length", max_answer)]
            )
            self._channel_address = address
            # Bytes in, bytes out: no serializers, the request goes as the client sent it.
            self._mirror_call = self._channel.unary_unary(MODEL_INFER.decode())
        return self._mirror_call

    async def _mirror(
        self,
        call: Any,
        figures: RolloutFigures,
        request: bytes,
        stable: bytes,
        rollout: Rollout,
        route: InPlaceRoute | None = None,
    ) -> None:
        import grpc

        t0 = time.perf_counter()
        try:
            answer = await call(
                request, timeout=rollout.mirror_timeout, metadata=((MIRROR_HEADER.decode(), "1"),)
            )
        except asyncio.CancelledError:
            rollout.mirrors_ended += 1
            raise
        except grpc.aio.AioRpcError as exc:
            code = exc.code()
            if code == grpc.StatusCode.RESOURCE_EXHAUSTED:  # its answer above the cap
                if route is not None:
                    route.observe(200, time.perf_counter() - t0)
                rollout.compare(figures, Answer(stable, grpc=True), None)
                return
            figures.mirror_errors += 1
            timeout = code == grpc.StatusCode.DEADLINE_EXCEEDED
            if timeout:
                figures.mirror_timeouts += 1
            if route is not None:  # in place: the candidate's own figures (as for HTTP)
                route.observe(
                    0 if timeout else status_class(code.value[0]), time.perf_counter() - t0
                )
            rollout.mirrors_ended += 1
            return
        except Exception:  # anything else is the candidate failing too
            figures.mirror_errors += 1
            if route is not None:
                route.observe(500, time.perf_counter() - t0)
            rollout.mirrors_ended += 1
            return
        if route is not None:
            route.observe(200, time.perf_counter() - t0)
        # Counted as ended by the worker, which also compares.
        rollout.compare(figures, Answer(stable, grpc=True), Answer(answer, grpc=True))

    def answer_metadata(self) -> bytes:
        if self.answer is None:
            return b""
        key = self.answer()
        if key != self._answer_key:
            self._answer_key, self._answer_bytes = key, answer_metadata(*key)
        return self._answer_bytes

    async def drain(self, grace: float) -> None:
        """SIGTERM: stop accepting, send each client a GOAWAY (at a frame boundary
        of Triton's bytes), close each connection once its streams have all ended
        (and stayed so for a moment: a stream the client opened as the GOAWAY
        travelled still arrives), for at most ``grace`` seconds. ``stop`` follows."""
        loop = asyncio.get_running_loop()
        if self._server is not None:
            self._server.close()
        deadline = loop.time() + grace
        idle_since: dict[_Client, float] = {}
        while self._clients and loop.time() < deadline:
            now = loop.time()
            for client in list(self._clients):
                client.start_drain()
                if not client.idle():
                    idle_since.pop(client, None)
                elif now - idle_since.setdefault(client, now) >= _DRAIN_QUIET:
                    client.close()
            await asyncio.sleep(0.02)
        if self._clients:
            log.warning(
                "drain: %d gRPC connection(s) still busy after %gs", len(self._clients), grace
            )

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
        if self._channel is not None:
            await self._channel.close()
            self._channel = self._channel_address = None

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

    def answer_too_long(self, excess: int) -> None:
        # Once a minute at most, like the observation losses.
        now = time.monotonic()
        if now - self._long_logged > 60:
            self._long_logged = now
            log.warning(
                "gRPC split: the candidate's answer is %d bytes longer than the stable one; "
                "it cannot take more of the client's flow-control window than Triton's "
                "answer took, so the stable answer is given (counted as a fallback)",
                excess,
            )

    def observation_lost(self, exc: BaseException) -> None:
        # Once a minute at most: a client that sends garbage must not flood the log.
        now = time.monotonic()
        if now - self._lost_logged > 60:
            self._lost_logged = now
            log.warning("stopped observing a gRPC connection: %s", exc)
