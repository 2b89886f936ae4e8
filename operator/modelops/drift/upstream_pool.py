"""The HTTP proxy's connections to Triton (and to a rollout's candidate): one exchange each.

Holds :class:`Upstream` (one keep-alive connection: writes go straight to its
transport, the response is parsed with :mod:`modelops.drift.http1` and handed
piece by piece to the connection's current owner) and :class:`Pool` (idle
connections to one address, a cap on all of them, and the clients waiting
for a slot), with the transport settings both sides of the proxy use and the
cache of Triton's parsed response heads.

Not here: what a response means to its owner (relayed to a client,
:mod:`modelops.drift.proxy`; kept for a comparison, :mod:`modelops.drift.mirror`),
timeouts (the owner's sweep checks :attr:`Upstream.last`), and which pool a
request goes to (the rollout's split decision, in the proxy).
"""

from __future__ import annotations

import asyncio
import collections
from collections.abc import Callable
from typing import Protocol, cast

from modelops.drift.http1 import (
    MAX_HEAD_BYTES,
    ChunkedDecoder,
    Head,
    ProtocolError,
    keep_alive,
    parse_head,
    parse_status_line,
    response_framing,
)
from modelops.drift.request_head import HEAD_CACHE, HEAD_CACHE_BYTES
from modelops.drift.transport import nodelay

# Bodies above this are written separately from their head instead of being
# concatenated (a copy) into one write.
COALESCE_LIMIT = 64 * 1024
# Transport write buffer: pause the other side above HIGH, resume below LOW.
WRITE_HIGH = 64 * 1024
WRITE_LOW = 16 * 1024

# Client connection phases (the proxy's client side); here, below it, because
# a pool hands a freed slot only to a client still in WAIT.
IDLE, HEAD, BODY, WAIT, CLOSED = range(5)

# Response heads from Triton (and the candidate) by (bytes, request method):
# (head, status, framing, length, reusable). Pure functions of those bytes,
# kept like request heads (see modelops.drift.request_head); Triton's heads repeat exactly.
_RESPONSE_HEADS: dict[tuple[bytes, str], tuple[Head, int, str, int, bool]] = {}


class Owner(Protocol):
    """Whoever an exchange belongs to: a client connection, or a mirror."""

    clock: Callable[[], float]

    def response_head(self, head: Head, framing: str) -> bytes: ...

    def send(self, first: bytes, second: bytes) -> None: ...

    def exchange_done(self, conn: Upstream) -> None: ...

    def upstream_failed(self, conn: Upstream, kind: str, detail: str = "") -> None: ...

    def pause_client_reading(self) -> None: ...

    def resume_client_reading(self) -> None: ...


class Waiter(Protocol):
    """A client connection queued for a connection or a slot of a full pool."""

    phase: int
    up: Upstream | None

    def start_upstream(self) -> None: ...


class Upstream(asyncio.Protocol):
    """One keep-alive connection to Triton carrying one exchange at a time.

    It parses the response and hands it, piece by piece, to its current
    ``owner`` (the client connection the exchange belongs to, or a mirror).
    """

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.owner: Owner | None = None
        self.pool: Pool | None = None  # the pool it belongs to (Triton's or the candidate's)
        self.alive = True
        self.reusable = True
        self.reused = False
        self.buf = bytearray()
        self.last = 0.0  # loop time of the last byte from Triton (or of the request)
        self.got_bytes = False
        self.method = "GET"
        self.head: Head | None = None
        self.status = 0
        self.framing = "length"
        self.remaining = 0
        self.decoder: ChunkedDecoder | None = None
        self.reading_paused = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports do not subclass asyncio.Transport, hence the cast.
        self.transport = t = cast(asyncio.Transport, transport)
        nodelay(t)
        t.set_write_buffer_limits(WRITE_HIGH, WRITE_LOW)

    def connection_lost(self, exc: Exception | None) -> None:
        self.alive = False
        owner = self.owner
        if owner is not None:
            if self.framing == "close" and self.head is not None:
                self._done()  # a close-delimited body ends here
            else:
                owner.upstream_failed(self, "closed")

    # Backpressure: Triton not reading our request body -> stop reading the client.
    def pause_writing(self) -> None:
        if self.owner is not None:
            self.owner.pause_client_reading()

    def resume_writing(self) -> None:
        if self.owner is not None:
            self.owner.resume_client_reading()

    def pause(self) -> None:
        if not self.reading_paused and self.transport is not None and self.alive:
            self.reading_paused = True
            self.transport.pause_reading()

    def resume(self) -> None:
        if self.reading_paused and self.transport is not None and self.alive:
            self.reading_paused = False
            self.transport.resume_reading()

    def close(self) -> None:
        self.alive = False
        self.owner = None
        if self.transport is not None:
            self.transport.close()

    def begin(self, owner: Owner, method: str, now: float) -> None:
        self.owner, self.method, self.last = owner, method, now
        self.head, self.decoder, self.got_bytes = None, None, False
        self.framing, self.remaining = "length", 0
        self.buf.clear()

    def data_received(self, data: bytes) -> None:
        owner = self.owner
        if owner is None:
            self.close()  # bytes nobody asked for: this connection is out of sync
            return
        self.got_bytes = True
        self.last = owner.clock()
        try:
            if self.head is None:
                self._on_head_data(data)
            else:
                self._on_body_data(data)
        except ProtocolError as err:
            self.reusable = False
            owner.upstream_failed(self, "protocol", err.message)

    def _on_head_data(self, data: bytes) -> None:
        buf = self.buf
        if buf:
            buf += data
            data = bytes(buf)
            buf.clear()
        while True:
            i = data.find(b"\r\n\r\n")
            if i < 0:
                if len(data) > MAX_HEAD_BYTES:
                    raise ProtocolError(502, "response head from Triton too large")
                buf += data
                return
            raw = data[:i]
            data = data[i + 4 :]
            known = _RESPONSE_HEADS.get((raw, self.method))
            if known is not None:
                head, status, framing, remaining, reusable = known
                break
            head = parse_head(raw)
            status = parse_status_line(head.start)
            if not 100 <= status < 200:
                framing, remaining = response_framing(head, status, self.method)
                reusable = keep_alive(head.start[:8], head) and framing != "close"
                if len(raw) <= HEAD_CACHE_BYTES:
                    if len(_RESPONSE_HEADS) >= HEAD_CACHE:
                        _RESPONSE_HEADS.clear()
                    _RESPONSE_HEADS[(raw, self.method)] = (
                        head, status, framing, remaining, reusable
                    )  # fmt: skip
                break  # 1xx are interim: the real response follows
        self.head, self.status = head, status
        self.framing, self.remaining, self.reusable = framing, remaining, reusable
        owner = self.owner
        assert owner is not None
        out = owner.response_head(head, self.framing)
        if self.framing == "length":
            n = self.remaining
            if len(data) >= n:
                if len(data) > n:
                    self.reusable = False  # more than it announced: do not trust it again
                    data = data[:n]
                if n <= COALESCE_LIMIT:
                    owner.send(out + data, b"")
                else:
                    owner.send(out, data)
                self._done()
                return
            self.remaining -= len(data)
            owner.send(out, data)
            return
        if self.framing == "chunked":
            self.decoder = ChunkedDecoder(keep_body=False)
        owner.send(out, b"")
        if data:
            self._on_body_data(data)

    def _on_body_data(self, data: bytes) -> None:
        owner = self.owner
        assert owner is not None
        if self.framing == "length":
            n = self.remaining
            if len(data) >= n:
                if len(data) > n:
                    self.reusable = False
                owner.send(data[:n] if len(data) > n else data, b"")
                self._done()
            else:
                self.remaining = n - len(data)
                owner.send(data, b"")
        elif self.framing == "chunked":
            assert self.decoder is not None
            used = self.decoder.feed(data)
            owner.send(data[:used] if used < len(data) else data, b"")
            if self.decoder.done:
                if used < len(data):
                    self.reusable = False
                self._done()
        else:
            owner.send(data, b"")

    def _done(self) -> None:
        owner, self.owner = self.owner, None
        self.resume()
        if owner is not None:
            owner.exchange_done(self)


class Pool:
    """Idle keep-alive connections to Triton and a cap on all of them."""

    def __init__(
        self, host: str, port: int, limit: int, connect_timeout: float, url: str = ""
    ) -> None:
        self.host, self.port = host, port
        self.url = url or f"http://{host}:{port}"
        self.retired = False  # replaced (a new candidate): connections close when released
        self.limit = limit
        self.connect_timeout = connect_timeout
        self.idle: list[Upstream] = []
        self.active = 0
        self.waiters: collections.deque[Waiter] = collections.deque()

    def try_acquire(self) -> Upstream | None:
        """An idle connection, or None (then ``connect`` or wait)."""
        while self.idle:
            conn = self.idle.pop()
            if conn.alive:
                conn.reusable, conn.reused = True, True
                self.active += 1
                return conn
        return None

    def reserve(self) -> bool:
        """Take a slot for a new connection; False when all ``limit`` are in use."""
        if self.active + len(self.idle) >= self.limit:
            return False
        self.active += 1
        return True

    async def connect(self) -> Upstream:
        """A new connection, in a slot taken with ``reserve``."""
        loop = asyncio.get_running_loop()
        try:
            _, conn = await asyncio.wait_for(
                loop.create_connection(Upstream, self.host, self.port), self.connect_timeout
            )
        except BaseException:
            self.active -= 1
            self._wake()
            raise
        conn.reused = False
        conn.pool = self
        return conn

    def release(self, conn: Upstream) -> None:
        self.active -= 1
        conn.owner = None
        if conn.alive and conn.reusable and not self.retired:
            self.idle.append(conn)
        else:
            conn.close()
        self._wake()

    def _wake(self) -> None:
        """Give a freed connection or slot to the first client still waiting."""
        while self.waiters and (self.idle or self.active + len(self.idle) < self.limit):
            waiter = self.waiters.popleft()
            if waiter.phase == WAIT and waiter.up is None:
                waiter.start_upstream()
                break

    def close(self) -> None:
        for conn in self.idle:
            conn.close()
        self.idle.clear()
