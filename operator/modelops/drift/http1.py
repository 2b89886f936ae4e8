"""HTTP/1.1 message framing for the proxy (RFC 9112): pure functions, no I/O.

Why not aiohttp on the hot path: a general web framework builds request
objects, header multidicts and response objects for every request, which
measured at ~0.5 ms of CPU per proxied request on a busy 2-core machine; the
proxy needs only the framing (where does this message end?) and a handful of
header values, and forwards everything else as the bytes it received.

Strictness where it matters for a proxy: a proxy and its upstream
disagreeing on where a message ends (or on which host it is for) is how
request smuggling works, so whatever two parsers could read differently is
refused (400/501) instead of guessed at:

- both ``Content-Length`` and ``Transfer-Encoding``, several different
  ``Content-Length`` values, a transfer coding other than exactly
  ``chunked``, ``Transfer-Encoding`` on an HTTP/1.0 request;
- chunk sizes that are not plain hex digits (``0x3``, ``+3``, ``0_3``,
  `` 3`` and 17+ digits all fail; Python's ``int(x, 16)`` accepts several);
- obsolete line folding, bare LF or CR, control characters (other than
  HTAB) in header values, anything but visible ASCII in the request target;
- an HTTP/1.1 request without exactly one ``Host`` (RFC 9112 3.2);
- ``Connection`` naming ``Host``, a framing field or ``Content-Encoding``:
  those fields are kept, never dropped as hop-by-hop.

Request heads are parsed by llhttp (``httptools``, uvicorn's parser), with
the checks above that llhttp leaves to the application done on the fields it
delivers (:func:`parse_request`, :class:`RequestHead`); Triton's response
heads and chunked bodies in both directions use the Python code here.
``bench/drift/http_parser.py`` decided it: the proxy's whole job on a
tritonclient infer request head (syntax, framing, Host and
Transfer-Encoding checks, the fields it reads, the head it sends upstream),
best of 5 x 50,000 on a 2-core machine shared with other work (load 7-9),
three runs::

    hand-written checks        41.96  31.23  19.92 us per head
    llhttp + checks (now)      21.04  22.67  14.20 us per head
    httptools, pairs joined    14.71  12.85  17.44 us per head (uvicorn style)

and on the 26-case smuggling suite (the malformed requests of
``tests/unit/test_drift_proxy_protocol.py``) all three refuse 26/26; llhttp
alone refuses 22 (it lets a missing or a second Host, ``gzip, chunked`` and
``Transfer-Encoding`` on HTTP/1.0 through).
"""

from __future__ import annotations

import http
import re

import httptools

MAX_HEAD_BYTES = 64 * 1024
MAX_HEADERS = 128
# 16 hex digits is 2**64; anything longer is an attack on integer parsing.
_CHUNK_SIZE_RE = re.compile(rb"([0-9A-Fa-f]{1,16})(?:[ \t]*;[^\x00-\x08\x0a-\x1f\x7f]*)?")
_BARE_LF_RE = re.compile(rb"(?<!\r)\n|\r(?!\n|$)")
# Visible ASCII, the only bytes a request target may hold.
_TARGET_CHARS = bytes(range(0x21, 0x7F))
# Never removed because Connection lists them: dropping any of these would
# make the proxy and Triton read the message differently.
PROTECTED_FIELDS = frozenset(
    {
        b"host",
        b"content-length",
        b"transfer-encoding",
        b"content-encoding",
        b"content-type",
        b"inference-header-content-length",
    }
)

_TOKEN_CHARS = b"!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"


class ProtocolError(Exception):
    """A message the proxy will not forward; ``status`` is what the client gets."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


# A head is a start line and zero or more "token: value" lines, CRLF separated.
# Field values may hold HTAB and obs-text but no other control character
# (checked in parse_head by one regex search, in C).
# Deleting every allowed byte must leave exactly the CRLF line breaks (no other
# control character, no bare CR or LF); every line after the first must start
# with "token:" (no space before the colon, no folding). Two passes in C.
_ALLOWED_BYTES = bytes(b for b in range(256) if b == 0x09 or 0x20 <= b != 0x7F)
_CRLF = b"\r\n"
_BAD_FIELD_RE = re.compile(rb"\r\n(?![!#$%&'*+\-.^_`|~0-9A-Za-z]+:)")
_HOP_NAMES = (
    b"connection", b"keep-alive", b"proxy-connection", b"proxy-authenticate",
    b"proxy-authorization", b"te", b"trailer", b"transfer-encoding", b"upgrade",
)  # fmt: skip


def _drop_re(names: tuple[bytes, ...]) -> re.Pattern[bytes]:
    alternatives = b"|".join(re.escape(n) for n in names)
    # Matched against the lower-cased head; the spans cut the raw one (same length).
    return re.compile(rb"\r\n(?:" + alternatives + rb"):[^\r\n]*")


_REQUEST_DROP_RE = _drop_re((*_HOP_NAMES, b"content-length", b"expect"))
_RESPONSE_DROP_RE = _drop_re(_HOP_NAMES)


_NO_TOKENS: frozenset[bytes] = frozenset()
_KEEP_CLOSE = frozenset({b"close", b"keep-alive"})
_COMMON_TOKENS = {
    b"keep-alive": frozenset({b"keep-alive"}),
    b"Keep-Alive": frozenset({b"keep-alive"}),
    b"close": frozenset({b"close"}),
    b"Close": frozenset({b"close"}),
}


def hop_fields(tokens: frozenset[bytes]) -> frozenset[bytes]:
    """The fields named in ``Connection`` that go with the hop; never a protected
    one (Host, framing, encoding), and keep-alive/close are not field names."""
    if not tokens or tokens <= _KEEP_CLOSE:
        return _NO_TOKENS
    return tokens - _KEEP_CLOSE - PROTECTED_FIELDS


class Head:
    """A parsed message head. Fields are looked up lazily in the raw bytes.

    ``raw`` is the head as received without the final blank line; ``lower`` is
    the same bytes lower-cased, used to find field names case-insensitively.
    """

    __slots__ = ("_tokens", "lower", "raw", "start")

    def __init__(self, raw: bytes) -> None:
        self.raw = raw
        self.lower = raw.lower()
        end = raw.find(b"\r\n")
        self.start = raw if end < 0 else raw[:end]
        self._tokens: frozenset[bytes] | None = None

    def get_all(self, name: bytes) -> list[bytes]:
        """Values of every ``name`` field (``name`` lower-case), in order, stripped."""
        key = b"\r\n" + name + b":"
        lower, raw = self.lower, self.raw
        i = lower.find(key)
        if i < 0:
            return []
        out = []
        while i >= 0:
            j = lower.find(b"\r\n", i + 2)
            out.append(raw[i + len(key) : j if j >= 0 else len(raw)].strip(b" \t"))
            i = lower.find(key, i + 2)
        return out

    def get(self, name: bytes) -> bytes | None:
        values = self.get_all(name)
        return values[0] if values else None

    def connection_tokens(self) -> frozenset[bytes]:
        tokens = self._tokens
        if tokens is None:
            if b"\r\nconnection:" not in self.lower:
                tokens = _NO_TOKENS
            else:
                values = self.get_all(b"connection")
                if len(values) == 1 and values[0] in _COMMON_TOKENS:
                    tokens = _COMMON_TOKENS[values[0]]
                else:
                    tokens = frozenset(t.strip().lower() for v in values for t in v.split(b","))
            self._tokens = tokens
        return tokens

    def hop_fields(self) -> frozenset[bytes]:
        """Extra fields ``Connection`` asks to drop (never a protected one)."""
        return hop_fields(self.connection_tokens())

    def without(self, pattern: re.Pattern[bytes], extra: frozenset[bytes]) -> bytes:
        """The raw head minus fields matching ``pattern`` and fields named in ``extra``."""
        raw = self.raw
        spans = [m.span() for m in pattern.finditer(self.lower)]
        if spans:
            parts, pos = [], 0
            for a, b in spans:
                parts.append(raw[pos:a])
                pos = b
            parts.append(raw[pos:])
            out = b"".join(parts)
        else:
            out = raw
        if extra:  # rare: a Connection header listing other fields to drop
            lines = out.split(b"\r\n")
            out = b"\r\n".join(
                [lines[0]]
                + [ln for ln in lines[1:] if ln.partition(b":")[0].strip().lower() not in extra]
            )
        return out


def parse_head(data: bytes) -> Head:
    """Parse a message head (everything before the blank line, CRLF separated)."""
    lines = data.count(b"\r\n")
    if lines > MAX_HEADERS:
        raise ProtocolError(431, "too many header fields")
    if data.translate(None, _ALLOWED_BYTES) != _CRLF * lines or _BAD_FIELD_RE.search(data):
        raise ProtocolError(400, "malformed header field")
    return Head(data)


class RequestLine:
    """Method, target and version of a request (a plain class: built per request)."""

    __slots__ = ("method", "path", "target", "version")

    def __init__(self, method: str, target: str, version: bytes) -> None:
        self.method = method
        self.target = target
        self.version = version  # b"HTTP/1.1" or b"HTTP/1.0"
        self.path = target.partition("?")[0]

    def __eq__(self, other: object) -> bool:
        return isinstance(other, RequestLine) and (
            (self.method, self.target, self.version) == (other.method, other.target, other.version)
        )

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"RequestLine({self.method!r}, {self.target!r}, {self.version!r})"


def find_bare_line_break(data: bytes | bytearray) -> bool:
    """Whether ``data`` holds a LF without its CR or a CR without its LF."""
    return _BARE_LF_RE.search(data) is not None


_REQUEST_LINE_RE = re.compile(rb"([!#$%&'*+\-.^_`|~0-9A-Za-z]+) ([\x21-\x7e]+) (HTTP/1\.[01])")


def parse_request_line(start: bytes) -> RequestLine:
    m = _REQUEST_LINE_RE.fullmatch(start)
    if m is not None:  # the usual case, in one C call
        method, target, version = m.groups()
        return RequestLine(method.decode("ascii"), target.decode("ascii"), version)
    parts = start.split(b" ")
    if len(parts) != 3 or not parts[0] or not parts[1]:
        raise ProtocolError(400, "malformed request line")
    method, target, version = parts
    if method.translate(None, _TOKEN_CHARS):
        raise ProtocolError(400, "malformed method")
    if version not in (b"HTTP/1.1", b"HTTP/1.0"):
        raise ProtocolError(505, "only HTTP/1.0 and HTTP/1.1 are supported")
    if target.translate(None, _TARGET_CHARS):
        raise ProtocolError(400, "control or non-ASCII character in the request target")
    return RequestLine(method.decode("ascii"), target.decode("ascii"), version)


class RequestHead:
    """A request head as llhttp delivered it: the start line and (name, value) pairs.

    Same lookups as :class:`Head`; the head sent upstream is rebuilt from the
    pairs (``Name: value``, one space), without the hop-by-hop fields.
    """

    __slots__ = ("_tokens", "done", "fields", "pairs", "start", "url")

    def __init__(self, start: bytes) -> None:
        self.start = start
        self.url = b""
        self.pairs: list[tuple[bytes, bytes]] = []
        self.fields: dict[bytes, list[bytes]] = {}  # lower-case name -> stripped values
        self.done = False
        self._tokens: frozenset[bytes] | None = None

    # llhttp callbacks
    def on_url(self, url: bytes) -> None:
        self.url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        self.pairs.append((name, value))
        key = name.lower()
        found = self.fields.get(key)
        if found is None:
            self.fields[key] = [value.strip(b" \t")]
        else:
            found.append(value.strip(b" \t"))

    def on_headers_complete(self) -> None:
        self.done = True

    # the Head interface
    def get_all(self, name: bytes) -> list[bytes]:
        return self.fields.get(name, [])

    def get(self, name: bytes) -> bytes | None:
        found = self.fields.get(name)
        return found[0] if found else None

    def connection_tokens(self) -> frozenset[bytes]:
        tokens = self._tokens
        if tokens is None:
            values = self.fields.get(b"connection")
            if not values:
                tokens = _NO_TOKENS
            elif len(values) == 1 and values[0] in _COMMON_TOKENS:
                tokens = _COMMON_TOKENS[values[0]]
            else:
                tokens = frozenset(t.strip().lower() for v in values for t in v.split(b","))
            self._tokens = tokens
        return tokens

    def hop_fields(self) -> frozenset[bytes]:
        """Extra fields ``Connection`` asks to drop (never a protected one)."""
        return hop_fields(self.connection_tokens())

    def without_names(self, names: frozenset[bytes]) -> bytes:
        """The start line and every field not named in ``names`` (lower-case)."""
        parts = [self.start]
        for n, v in self.pairs:
            if n.lower() not in names:
                parts.append(n + b": " + v)
        return b"\r\n".join(parts)


_REQUEST_HOP = frozenset((*_HOP_NAMES, b"content-length", b"expect"))


def parse_request(data: bytes) -> tuple[RequestLine, RequestHead]:
    """Request line and head of ``data``, a complete request head with its blank line.

    llhttp (``httptools``) validates the syntax: it is faster than the
    checks above in Python (see the module docstring) and as strict on the
    smuggling suite once :func:`check_request_head` and
    :func:`request_framing` add what llhttp leaves to the application.
    """
    end = data.find(b"\r\n")
    start = data[:end] if end >= 0 else data
    if not start.endswith((b" HTTP/1.1", b" HTTP/1.0")):
        if start.count(b" ") == 2 and start.rpartition(b" ")[2].startswith(b"HTTP/"):
            raise ProtocolError(505, "only HTTP/1.0 and HTTP/1.1 are supported")
        raise ProtocolError(400, "malformed request line")
    if data.count(b"\r\n") > MAX_HEADERS + 1:
        raise ProtocolError(431, "too many header fields")
    cb = RequestHead(start)
    parser = httptools.HttpRequestParser(cb)
    try:
        parser.feed_data(data)
    except httptools.HttpParserUpgrade:
        pass  # Upgrade is hop-by-hop: it is dropped, the request is proxied as is
    except httptools.HttpParserError as exc:
        if b"\r\ntransfer-encoding:" in data.lower():
            request_framing(Head(data[:-4]))  # the precise answer (501) for a coding
        raise ProtocolError(400, f"malformed request head ({exc})") from None
    if not cb.done:
        raise ProtocolError(400, "malformed request head")
    target = cb.url
    if target.translate(None, _TARGET_CHARS) or not target:
        raise ProtocolError(400, "control or non-ASCII character in the request target")
    method = start[: start.find(b" ")]
    line = RequestLine(method.decode("ascii"), target.decode("ascii"), start[-8:])
    return line, cb


def check_request_head(line: RequestLine, head: Head | RequestHead) -> None:
    """Fields two HTTP parsers could read differently (RFC 9112 3.2, 6.1)."""
    hosts = len(head.get_all(b"host"))
    if hosts > 1:
        raise ProtocolError(400, "more than one Host field")
    if hosts == 0 and line.version == b"HTTP/1.1":
        raise ProtocolError(400, "HTTP/1.1 request without a Host field")
    if line.version == b"HTTP/1.0" and head.get_all(b"transfer-encoding"):
        raise ProtocolError(400, "Transfer-Encoding in an HTTP/1.0 request")


def parse_status_line(start: bytes) -> int:
    parts = start.split(b" ", 2)
    if len(parts) < 2 or not parts[0].startswith(b"HTTP/1.") or len(parts[1]) != 3:
        raise ProtocolError(502, "malformed status line from upstream")
    try:
        return int(parts[1])
    except ValueError:
        raise ProtocolError(502, "malformed status code from upstream") from None


def _content_length(head: Head | RequestHead, status_if_bad: int) -> int | None:
    found = head.get_all(b"content-length")
    if not found:
        return None
    if len(found) == 1 and found[0].isdigit() and len(found[0]) <= 18:
        return int(found[0])  # the usual case
    # "Content-Length: 5, 5" and repeated equal fields are legal; different values are not.
    vals = {v.strip() for f in found for v in f.split(b",")}
    if len(vals) != 1:
        raise ProtocolError(status_if_bad, "conflicting Content-Length")
    (v,) = vals
    if not v.isdigit() or len(v) > 18:
        raise ProtocolError(status_if_bad, "invalid Content-Length")
    return int(v)


def _is_chunked(head: Head, status_if_bad: int) -> bool | None:
    """None: no Transfer-Encoding; True: chunked last; False: something else last."""
    te = head.get_all(b"transfer-encoding")
    if not te:
        return None
    codings = [c.strip().lower() for v in te for c in v.split(b",") if c.strip()]
    return bool(codings) and codings[-1] == b"chunked"


def request_framing(head: Head | RequestHead) -> tuple[str, int]:
    """("length", n) or ("chunked", 0) for a request body.

    Only ``Transfer-Encoding: chunked`` alone is accepted: the body is
    de-chunked and sent on with a Content-Length, so any other coding
    (``gzip, chunked``) would reach Triton undone and unannounced.
    """
    te = head.get_all(b"transfer-encoding")
    length = _content_length(head, 400)
    if te:
        if length is not None:
            raise ProtocolError(400, "both Content-Length and Transfer-Encoding")
        codings = [c.strip().lower() for v in te for c in v.split(b",")]
        if codings != [b"chunked"]:
            if b"chunked" in codings:
                raise ProtocolError(400, "Transfer-Encoding other than a single chunked")
            raise ProtocolError(501, "unsupported Transfer-Encoding")
        return "chunked", 0
    return "length", length or 0


def response_framing(head: Head, status: int, request_method: str) -> tuple[str, int]:
    """("length", n), ("chunked", 0) or ("close", 0) for a response body (RFC 9112 6.3)."""
    if request_method == "HEAD" or status in (204, 304) or 100 <= status < 200:
        return "length", 0
    chunked = _is_chunked(head, 502)
    if chunked:
        return "chunked", 0
    if chunked is False:
        return "close", 0
    length = _content_length(head, 502)
    return ("length", length) if length is not None else ("close", 0)


class ChunkedDecoder:
    """Incremental ``Transfer-Encoding: chunked`` parser.

    ``feed(buf)`` consumes what it can from the front of ``buf`` and returns
    the number of bytes consumed (the caller deletes them, or forwards them
    verbatim when streaming). With ``keep_body`` the decoded payload collects
    in ``body``; ``done`` turns true after the last chunk and its trailers.
    """

    def __init__(self, keep_body: bool = True, max_body: int | None = None) -> None:
        self.keep_body = keep_body
        self.max_body = max_body
        self.body = bytearray()
        self.size = 0  # decoded payload bytes so far
        self.done = False
        self._state = "size"  # size | data | data_crlf | trailer
        self._remaining = 0

    def feed(self, buf: bytes | bytearray) -> int:
        pos, n = 0, len(buf)
        while pos < n and not self.done:
            if self._state == "size":
                end = buf.find(b"\r\n", pos)
                if end < 0:
                    if n - pos > 1024:
                        raise ProtocolError(400, "chunk size line too long")
                    if buf.find(b"\n", pos) >= 0:
                        raise ProtocolError(400, "bare LF in a chunk size line")
                    break
                m = _CHUNK_SIZE_RE.fullmatch(buf, pos, end)
                if m is None:
                    raise ProtocolError(400, "invalid chunk size")
                size = int(m.group(1), 16)
                pos = end + 2
                if size == 0:
                    self._state = "trailer"
                else:
                    self.size += size
                    if self.max_body is not None and self.size > self.max_body:
                        raise ProtocolError(413, "body too large")
                    self._remaining = size
                    self._state = "data"
            elif self._state == "data":
                take = min(self._remaining, n - pos)
                if self.keep_body:
                    self.body += buf[pos : pos + take]
                pos += take
                self._remaining -= take
                if self._remaining == 0:
                    self._state = "data_crlf"
            elif self._state == "data_crlf":
                if n - pos < 2:
                    break
                if buf[pos : pos + 2] != b"\r\n":
                    raise ProtocolError(400, "missing CRLF after chunk data")
                pos += 2
                self._state = "size"
            else:  # trailer fields, ended by an empty line
                end = buf.find(b"\r\n", pos)
                if end < 0:
                    if n - pos > MAX_HEAD_BYTES:
                        raise ProtocolError(400, "trailer section too long")
                    break
                if end == pos:
                    self.done = True
                pos = end + 2
        return pos


def upstream_request_head(line: RequestLine, head: Head | RequestHead, body_length: int) -> bytes:
    """The request head to send upstream: as received, minus hop-by-hop fields.

    The body is always sent with a Content-Length (a chunked request body has
    been decoded by then); ``Expect`` is answered by the proxy itself.
    """
    if isinstance(head, RequestHead):
        extra = head.hop_fields()
        out = head.without_names(_REQUEST_HOP | extra if extra else _REQUEST_HOP)
    else:
        out = head.without(_REQUEST_DROP_RE, head.hop_fields())
    if body_length or line.method in ("POST", "PUT", "PATCH"):
        return out + b"\r\nContent-Length: %d\r\n\r\n" % body_length
    return out + b"\r\n\r\n"


def client_response_head(head: Head, close: bool, chunked: bool) -> bytes:
    """The response head for the client: as received, minus hop-by-hop fields.

    ``chunked`` keeps ``Transfer-Encoding: chunked`` because the body is
    streamed to the client exactly as it arrives (framing included).
    """
    out = head.without(_RESPONSE_DROP_RE, head.hop_fields())
    if chunked:
        out += b"\r\nTransfer-Encoding: chunked"
    if close:
        out += b"\r\nConnection: close"
    return out + b"\r\n\r\n"


def simple_response(
    status: int,
    body: bytes,
    content_type: bytes = b"application/json",
    close: bool = False,
    extra: tuple[bytes, ...] = (),
) -> bytes:
    """A complete response generated by the proxy itself (errors, 100 Continue)."""
    try:
        reason = http.HTTPStatus(status).phrase.encode()
    except ValueError:
        reason = b"Unknown"
    lines = [b"HTTP/1.1 %d %s" % (status, reason)]
    if status >= 200:
        lines.append(b"Content-Type: " + content_type)
        lines.append(b"Content-Length: %d" % len(body))
    lines.extend(extra)
    if close:
        lines.append(b"Connection: close")
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


def keep_alive(version: bytes, head: Head | RequestHead) -> bool:
    """Whether the connection stays open after this message (RFC 9112 9.3)."""
    tokens = head.connection_tokens()
    if b"close" in tokens:
        return False
    if version == b"HTTP/1.0":
        return b"keep-alive" in tokens
    return True
