"""The floor of the overhead bench: a bare TCP relay in Python, no parsing at all.

Every byte a client sends goes to the upstream and back, on one upstream
connection per client connection, with the same asyncio protocol callbacks
and backpressure the sidecar uses (and uvloop when the sidecar has it). It
reads no message framing, so it serves HTTP/1.1 and HTTP/2 (gRPC) alike: what
the sidecar costs beyond this relay is the price of what it does with the
bytes (framing, routing, statistics), not of Python's event loop.

    python bench/drift/relay.py LISTEN_PORT UPSTREAM_HOST:PORT [LISTEN_PORT HOST:PORT ...]

Runs until SIGTERM / SIGINT; prints ``ready`` once every port listens.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import socket
import sys
from typing import cast

_HIGH, _LOW = 64 * 1024, 16 * 1024


def _nodelay(transport: asyncio.BaseTransport) -> None:
    sock = transport.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


class _Half(asyncio.Protocol):
    """One side of a relayed connection; ``peer`` is the other side."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.peer: _Half | None = None
        self.pending: list[bytes] = []  # bytes that arrived before the peer was connected

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = t = cast(asyncio.Transport, transport)
        _nodelay(t)
        t.set_write_buffer_limits(_HIGH, _LOW)

    def data_received(self, data: bytes) -> None:
        peer = self.peer
        if peer is None or peer.transport is None:
            self.pending.append(data)
            return
        peer.transport.write(data)

    def connection_lost(self, exc: Exception | None) -> None:
        peer = self.peer
        if peer is not None and peer.transport is not None:
            peer.transport.close()

    # The peer is not reading what we forward: stop reading this side.
    def pause_writing(self) -> None:
        if self.peer is not None and self.peer.transport is not None:
            self.peer.transport.pause_reading()

    def resume_writing(self) -> None:
        if self.peer is not None and self.peer.transport is not None:
            self.peer.transport.resume_reading()


class _Client(_Half):
    def __init__(self, host: str, port: int) -> None:
        super().__init__()
        self.address = host, port

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        cast(asyncio.Transport, transport).pause_reading()
        asyncio.get_running_loop().create_task(self._connect())

    async def _connect(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            _, up = await loop.create_connection(_Half, *self.address)
        except OSError:
            if self.transport is not None:
                self.transport.close()
            return
        up.peer, self.peer = self, up
        assert up.transport is not None and self.transport is not None
        # Either side may have spoken first (an HTTP/2 server sends its SETTINGS
        # as soon as it accepts): pass on what arrived before both were connected.
        for data in self.pending:
            up.transport.write(data)
        for data in up.pending:
            self.transport.write(data)
        self.pending.clear()
        up.pending.clear()
        self.transport.resume_reading()


async def serve(routes: list[tuple[int, str, int]]) -> None:
    loop = asyncio.get_running_loop()
    stop = loop.create_future()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, lambda: stop.done() or stop.set_result(None))
    servers = [
        await loop.create_server(
            lambda h=host, p=port: _Client(h, p), "127.0.0.1", listen, reuse_address=True
        )
        for listen, host, port in routes
    ]
    print("ready", flush=True)
    await stop
    for s in servers:
        s.close()


def main(argv: list[str]) -> int:
    if not argv or len(argv) % 2:
        raise SystemExit(__doc__)
    routes = []
    for listen, target in zip(argv[::2], argv[1::2], strict=True):
        host, _, port = target.rpartition(":")
        routes.append((int(listen), host, int(port)))
    try:
        import uvloop  # the sidecar's loop when installed: the same floor
    except ImportError:
        asyncio.run(serve(routes))
    else:
        uvloop.run(serve(routes))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
