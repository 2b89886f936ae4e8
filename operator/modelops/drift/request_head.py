"""What the HTTP proxy derives from a request head's bytes alone, computed once per head.

Holds :class:`ParsedHead` (llhttp parse, the smuggling checks, framing, the
head sent upstream, whether it is a KServe v2 infer call, the statistics
parser) and the bounds of the proxy's parsed-head caches, which Triton's
response heads (:mod:`modelops.drift.upstream_pool`) and the heads sent to
clients (:mod:`modelops.drift.proxy`) share. Pure: no I/O, no connection
state; reading a head off a socket, its size and time limits, and the cache
itself (``DriftProxy.heads``) are the client connection's
(:mod:`modelops.drift.proxy`).
"""

from __future__ import annotations

import re
import urllib.parse
from typing import Any

from modelops.drift.http1 import (
    check_request_head,
    keep_alive,
    parse_request,
    request_framing,
    upstream_request_head,
)
from modelops.drift.metrics import classify_endpoint
from modelops.drift.payload import HttpParser

INFER_PATH = re.compile(r"^/v2/models/([^/]+)(?:/versions/[^/]+)?/infer$")

# Request heads remembered with what the proxy derived from them, and the largest kept.
HEAD_CACHE = 256
HEAD_CACHE_BYTES = 4096
_UNSET: Any = object()


class ParsedHead:
    """A request head and everything the proxy derives from its bytes alone.

    Clients send the same head bytes again and again (tritonclient's heads
    differ only when the body length does), and what the proxy reads from a
    head depends on nothing but those bytes, so it is computed once per
    distinct head and kept (:attr:`DriftProxy.heads`, bounded): llhttp, the
    smuggling checks, framing, the head sent upstream and the statistics
    parser are skipped for a head seen before. A head that fails a check is
    never kept, so it fails again every time.
    """

    __slots__ = (
        "close",
        "endpoint",
        "expect",
        "framing",
        "head",
        "infer",
        "line",
        "parser",
        "remaining",
        "up_head",
        "up_length",
    )

    def __init__(self, raw: bytes) -> None:
        line, head = parse_request(raw)
        self.endpoint = classify_endpoint(line.path)
        check_request_head(line, head)
        self.framing, self.remaining = request_framing(head)
        self.line, self.head = line, head
        self.close = not keep_alive(line.version, head)
        expect = head.get(b"expect")
        self.expect = expect is not None and expect.lower() == b"100-continue"
        # An inference call (KServe v2 infer over POST): the only requests that
        # count in rollout figures, are mirrored or split, and feed statistics.
        self.infer = line.method == "POST" and INFER_PATH.match(line.path) is not None
        self.up_length = -1
        self.up_head = b""
        self.parser: HttpParser | None = _UNSET

    def upstream_head(self, body_length: int) -> bytes:
        if body_length != self.up_length:
            self.up_head = upstream_request_head(self.line, self.head, body_length)
            self.up_length = body_length
        return self.up_head

    def stats_parser(self, model: str | None, max_bytes: int) -> HttpParser | None:
        """The statistics parser of this head's bodies; None: not the watched model."""
        parser = self.parser
        if parser is _UNSET:
            parser = None
            m = INFER_PATH.match(self.line.path)
            if m is not None and (model is None or urllib.parse.unquote(m.group(1)) == model):
                hl = self.head.get(b"inference-header-content-length")
                try:
                    header_length = int(hl) if hl is not None else None
                except ValueError:
                    header_length = -1  # becomes a "decode" skip, off the hot path
                enc = self.head.get(b"content-encoding")
                encoding = enc.decode("latin-1") if enc else None
                parser = HttpParser(header_length, encoding, max_bytes)
            self.parser = parser
        return parser


def parsed_head(cache: dict[bytes, ParsedHead], raw: bytes) -> ParsedHead:
    """``raw``'s ParsedHead, made and kept in ``cache`` (bounded: cleared when full,
    so many distinct heads start it over rather than grow it)."""
    parsed = ParsedHead(raw)
    if len(raw) <= HEAD_CACHE_BYTES:
        if len(cache) >= HEAD_CACHE:
            cache.clear()
        cache[raw] = parsed
    return parsed
