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
HPACK to learn each stream's method. For ``ModelInfer`` and
``ModelStreamInfer`` streams it collects the request messages and, when
Triton's answer shows the request succeeded, offers the message bytes to the
statistics feeder, which parses them in its worker thread
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
  appended as HPACK literals *without indexing*, which leave the client's
  table untouched. Only that frame is held back until whole; every other
  byte passes as read;
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
checks it. Header blocks of repeated calls are decoded once per HPACK table
state (:class:`~modelops.drift.h2_wire.Blocks`), so reading along costs
about 35 us per ``ModelInfer`` on the development machine (replayed
captured traffic).

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

This module holds the relay: the two sides of each connection, what is done
with the frames read along (the streams watched, their messages, the split
calls' answers held back and put together), mirrors and splits to the
candidate, and what it counts (its metrics, the rollout figures). The bytes
themselves (HTTP/2 frames, HPACK, gRPC message framing, and why each is read
or written the way it is) are :mod:`~modelops.drift.h2_wire`'s.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
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
from modelops.drift.h2_wire import (
    CONTINUATION,
    DATA,
    END_HEADERS,
    END_STREAM,
    GOAWAY_FRAME,
    HEADERS,
    MAX_HEADER_BLOCK,
    PADDED,
    PRIORITY,
    RST_STREAM,
    Blocks,
    FrameReader,
    Messages,
    Msg,
    ObserveError,
    answer_metadata,
    data_frames,
    grown,
    grpc_status,
    header_frames,
    literal,
    window_update,
)
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

# Triton's DATA held back for one split call at most (below the 64 KiB initial
# stream window); a longer answer passes on, unsplit.
_SPLIT_HOLD_MAX = 32 * 1024
# Write-buffer high water mark of each side: past it the other side's
# reading pauses until this one drains. With one read (up to 256 KiB with
# uvloop) on top, a connection buffers at most ~0.6 MiB, both ways together.
_WRITE_HIGH = 64 * 1024
# Drain: a connection with no open stream is closed after this quiet time.
_DRAIN_QUIET = 0.2
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


@dataclass
class _Stream:
    method: str
    encoding: str | None
    requests: Messages
    responses: Messages
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
        if ftype in (HEADERS, CONTINUATION):
            current.append((ftype, flags, raw))
            if not flags & END_HEADERS:
                continue
            fields = next(blocks, None)
            extra = meta if first_block else b""
            first_block = False
            if fields is None:  # passed as Triton sent it (with the metadata appended)
                if extra:
                    lt, lf, lraw = current[-1]
                    current[-1] = (lt, lf, grown(lt, lf, stream, lraw[9:], extra))
                out += b"".join(r for _, _, r in current)
            else:
                block = b"".join(literal(n, v) for n, v in fields) + extra
                out += header_frames(stream, block, bool(current[0][1] & END_STREAM))
            current = []
        elif ftype == DATA and body is not None:
            if not data_done:
                out += data_frames(stream, body)
                data_done = True
        else:
            out += raw
    return bytes(out)


# -- reading along: what is done with the frames read ------------------------------------------


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


class _Observer:
    """What one connection's reader does with the frames: the streams worth a look."""

    def __init__(self, relay: GrpcProxy) -> None:
        self.relay = relay
        self.streams: dict[int, _Stream] = {}
        self.requests_hpack = Blocks(_request_fields)
        # Triton's header blocks, decoded too: their grpc-status tells a
        # client's fault from a server's (the same caching as the client's).
        self.responses_hpack = Blocks(grpc_status)
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
        if flags & END_STREAM:
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
        if ftype == DATA:
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
        if ftype == RST_STREAM or stream not in self.streams:  # Triton's answer is complete
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
            ends_in_data = any(f == DATA and fl & END_STREAM for f, fl, _ in sp.frames)
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
                self.client.inject_upstream(window_update(sp.data_len - len(body)))
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
            or flags & END_STREAM
        ):
            return
        cap = relay.config.stats_max_bytes
        enc = encoding.decode("latin-1") if encoding else None
        st = _Stream(label, enc, Messages(True, cap), Messages(False, 0))
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

    def request_messages(self, st: _Stream, msgs: list[Msg]) -> None:
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

    def response_messages(self, st: _Stream, msgs: list[Msg]) -> None:
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
        self._out: list[Msg] = []
        self._block = bytearray()
        self._block_stream = 0
        self._block_flags = 0

    def block(self, stream: int, flags: int, block: bytes) -> None:
        raise NotImplementedError

    def other(self, ftype: int, flags: int, stream: int) -> None:
        raise NotImplementedError

    def frame(self, ftype: int, flags: int, stream: int, payload: bytes | bytearray) -> None:
        if ftype == HEADERS:
            block = memoryview(payload)
            if flags & PADDED:
                pad = block[0]
                block = block[1 : len(block) - pad]
            if flags & PRIORITY:
                block = block[5:]
            if flags & END_HEADERS:
                self.block(stream, flags, block.tobytes())
            else:
                self._block = bytearray(block)
                self._block_stream, self._block_flags = stream, flags
        elif ftype == CONTINUATION:
            if stream != self._block_stream:
                raise ObserveError("CONTINUATION out of sequence")
            self._block += payload
            if len(self._block) > MAX_HEADER_BLOCK:
                raise ObserveError("header block too large")
            if flags & END_HEADERS:
                block, self._block = bytes(self._block), bytearray()
                self.block(stream, self._block_flags, block)
        else:
            self.other(ftype, flags, stream)


class _ClientSide(_Side):
    """Frames from the client: header blocks (always), DATA of observed streams."""

    def wanted(self, ftype: int, flags: int, stream: int) -> bool:
        if ftype in (HEADERS, CONTINUATION):
            return True
        if ftype == DATA:
            return stream in self.obs.streams
        return ftype == RST_STREAM

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
        if ftype == RST_STREAM:
            obs = self.obs
            obs.open.discard(stream)
            obs.client_reset(stream)
            obs.close_stream(stream)

    def held(self, ftype: int, flags: int, stream: int, raw: bytes, length: int) -> bytes:
        return raw  # the client's frames are never held


class _ServerSide(_Side):
    """Frames from Triton: header blocks and resets (always), DATA of observed streams."""

    def wanted(self, ftype: int, flags: int, stream: int) -> bool:
        if ftype == DATA:
            return stream in self.obs.streams
        return ftype in (HEADERS, CONTINUATION, RST_STREAM)

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
        if ftype == RST_STREAM or flags & END_STREAM:  # a reset, or DATA ending the stream
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
        self.reader = FrameReader(preface=True)
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
            except (ObserveError, hpack.HPACKError, ValueError, IndexError) as exc:
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
        self.write(GOAWAY_FRAME)

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
        self.reader = FrameReader(preface=False)
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
        except (ObserveError, hpack.HPACKError, ValueError, IndexError) as exc:
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
            st.responses = Messages(True, rollout.max_answer_bytes)

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
