"""Socket settings shared by the HTTP and gRPC relays."""

from __future__ import annotations

import asyncio
import contextlib
import socket


def nodelay(transport: asyncio.BaseTransport) -> None:
    """TCP_NODELAY: a relay writes whole answers at once; Nagle would only add delay."""
    sock = transport.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
