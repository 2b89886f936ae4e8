"""The sidecar's HTTP/1.1 request parser next to httptools (llhttp, uvicorn's parser).

Two questions, one run:

- Speed: CPU per request for what the proxy needs from a request head --
  framing, the fields it looks at, the strictness checks, and the head to
  send upstream (hop-by-hop fields removed) -- on the head ``tritonclient``
  sends for a binary-tensor infer request. httptools calls back into Python
  once per URL, header field and body piece, and gives fields as pairs, so
  its side also rebuilds the upstream head from those pairs.
- Strictness: the same malformed and smuggling-shaped requests as
  ``tests/unit/test_drift_proxy_protocol.py``; which ones each parser
  refuses. The httptools side includes, in Python, the checks llhttp does
  not make (one Host, ``Transfer-Encoding`` exactly ``chunked`` and not on
  HTTP/1.0), so both sides do the same job; ``--raw-llhttp`` shows what
  llhttp alone refuses.

Requires ``pip install httptools`` (the ``bench`` extra).

    python bench/drift/http_parser.py [--iterations 200000]
"""

from __future__ import annotations

import argparse
import shlex
import sys
import timeit

try:
    import httptools
except ImportError:  # pragma: no cover - the bench extra
    httptools = None

from modelops.drift.http1 import (
    ChunkedDecoder,
    Head,
    ProtocolError,
    RequestHead,
    RequestLine,
    check_request_head,
    find_bare_line_break,
    keep_alive,
    parse_head,
    parse_request,
    parse_request_line,
    request_framing,
    upstream_request_head,
)

TRITON_HEAD = (
    b"POST /v2/models/sum20/infer HTTP/1.1\r\n"
    b"Host: fraud.ml.svc:8080\r\n"
    b"User-Agent: Python-urllib3/2.2\r\n"
    b"Accept-Encoding: gzip, deflate\r\n"
    b"Accept: */*\r\n"
    b"Connection: keep-alive\r\n"
    b"Content-Type: application/octet-stream\r\n"
    b"Inference-Header-Content-Length: 160\r\n"
    b"Content-Length: 240\r\n\r\n"
)
BODY = b"x" * 240

H = b"POST / HTTP/1.1\r\nHost: x\r\n"
CHUNKED = H + b"Transfer-Encoding: chunked\r\n\r\n"
# Must all be refused (status 400/501/505): the proxy's smuggling suite.
MALFORMED: list[tuple[str, bytes]] = [
    ("garbage", b"GARBAGE\r\n\r\n"),
    ("HTTP/3.0", b"GET / HTTP/3.0\r\nHost: x\r\n\r\n"),
    ("CL and TE", H + b"Content-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"),
    ("TE gzip", H + b"Transfer-Encoding: gzip\r\n\r\n"),
    ("TE gzip, chunked", H + b"Transfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n"),
    ("TE chunked, chunked", H + b"Transfer-Encoding: chunked, chunked\r\n\r\n0\r\n\r\n"),
    ("chunk size ZZ", CHUNKED + b"ZZ\r\n"),
    ("chunk size 0x3", CHUNKED + b"0x3\r\nabc\r\n0\r\n\r\n"),
    ("chunk size +3", CHUNKED + b"+3\r\nabc\r\n0\r\n\r\n"),
    ("chunk size 0_3", CHUNKED + b"0_3\r\nabc\r\n0\r\n\r\n"),
    ("chunk size ' 3'", CHUNKED + b" 3\r\nabc\r\n0\r\n\r\n"),
    ("chunk size 17 digits", CHUNKED + b"1" * 17 + b"\r\n"),
    ("no Host", b"POST / HTTP/1.1\r\nContent-Length: 0\r\n\r\n"),
    ("two Hosts", b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n"),
    ("CTL in target", b"GET /a\x01b HTTP/1.1\r\nHost: x\r\n\r\n"),
    ("DEL in target", b"GET /a\x7fb HTTP/1.1\r\nHost: x\r\n\r\n"),
    ("NUL in value", b"GET / HTTP/1.1\r\nHost: x\r\nX-A: a\x00b\r\n\r\n"),
    ("ESC in value", b"GET / HTTP/1.1\r\nHost: x\r\nX-A: a\x1bb\r\n\r\n"),
    ("bare LF", b"GET / HTTP/1.1\nHost: x\n\n"),
    ("bare LF mid-head", b"GET / HTTP/1.1\r\nHost: x\nX: y\r\n\r\n"),
    ("TE in HTTP/1.0", b"GET / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"),
    ("CL 1e3", H + b"Content-Length: 1e3\r\n\r\n"),
    ("CL 30 digits", H + b"Content-Length: " + b"9" * 30 + b"\r\n\r\n"),
    ("space before colon", b"GET / HTTP/1.1\r\nHost : x\r\n\r\n"),
    ("folded line", b"GET / HTTP/1.1\r\nHost: x\r\nX-A: a\r\n b\r\n\r\n"),
    ("two CLs", H + b"Content-Length: 1\r\nContent-Length: 2\r\n\r\nab"),
]


# -- the sidecar's parser -------------------------------------------------------------------


def _rest(data: bytes, i: int, line: RequestLine, head: Head | RequestHead) -> bytes:
    check_request_head(line, head)
    framing, length = request_framing(head)
    keep_alive(line.version, head)
    head.get(b"inference-header-content-length")
    head.get(b"content-encoding")
    if framing == "chunked":
        d = ChunkedDecoder()
        d.feed(data[i + 4 :])
        if not d.done:
            raise ProtocolError(400, "incomplete chunked body")
        length = d.size
    return upstream_request_head(line, head, length)


def _split(data: bytes) -> int:
    i = data.find(b"\r\n\r\n")
    if i < 0:
        if find_bare_line_break(data):
            raise ProtocolError(400, "bare CR or LF")
        raise ProtocolError(400, "incomplete")
    return i


def hand_written(data: bytes) -> bytes:
    """The proxy's job on a request head, syntax checked in Python; the upstream head."""
    i = _split(data)
    head = parse_head(data[:i])
    return _rest(data, i, parse_request_line(head.start), head)


def llhttp_based(data: bytes) -> bytes:
    """The same job, syntax checked by llhttp (what the proxy runs: http1.parse_request)."""
    i = _split(data)
    line, head = parse_request(data[: i + 4])
    return _rest(data, i, line, head)


# -- httptools -----------------------------------------------------------------------------


class _Collector:
    __slots__ = ("body", "complete", "headers", "url")

    def __init__(self) -> None:
        self.url = b""
        self.headers: list[tuple[bytes, bytes]] = []
        self.body: list[bytes] = []
        self.complete = False

    def on_url(self, url: bytes) -> None:
        self.url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name, value))

    def on_body(self, body: bytes) -> None:
        self.body.append(body)

    def on_message_complete(self) -> None:
        self.complete = True


_HOP = {
    b"connection", b"keep-alive", b"proxy-connection", b"te", b"trailer",
    b"transfer-encoding", b"upgrade", b"content-length", b"expect",
}  # fmt: skip


def with_httptools(data: bytes) -> bytes:
    """The same job with llhttp: parse, the checks llhttp leaves out, the upstream head."""
    c = _Collector()
    p = httptools.HttpRequestParser(c)
    p.feed_data(data)
    if not c.complete:
        raise ProtocolError(400, "incomplete")
    version = p.get_http_version()
    hosts, te, fields = 0, [], {}
    for n, v in c.headers:  # what the proxy reads, and what llhttp does not check
        name = n.lower()
        fields[name] = v
        if name == b"host":
            hosts += 1
        elif name == b"transfer-encoding":
            te.append(v.strip().lower())
    if hosts > 1 or (hosts == 0 and version == "1.1"):
        raise ProtocolError(400, "Host")
    if te and (version == "1.0" or te != [b"chunked"]):
        raise ProtocolError(400, "Transfer-Encoding")
    fields.get(b"inference-header-content-length")
    fields.get(b"content-encoding")
    length = sum(len(b) for b in c.body)
    lines = [b"%s %s HTTP/%s" % (p.get_method(), c.url, version.encode())]
    lines += [n + b": " + v for n, v in c.headers if n.lower() not in _HOP]
    lines.append(b"Content-Length: %d" % length)
    p.should_keep_alive()
    return b"\r\n".join(lines) + b"\r\n\r\n"


def _llhttp_only(data: bytes) -> None:
    c = _Collector()
    httptools.HttpRequestParser(c).feed_data(data)
    if not c.complete:
        raise ProtocolError(400, "incomplete")


def refused(fn, data: bytes) -> bool:  # noqa: ANN001 - either parser
    try:
        fn(data)
    except ProtocolError:
        return True
    except Exception as exc:  # httptools.HttpParserError and friends
        return type(exc).__module__.startswith("httptools")
    return False


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--iterations", type=int, default=200_000)
    ap.add_argument("--repeat", type=int, default=5, help="best of this many timings")
    ap.add_argument("--raw-llhttp", action="store_true", help="strictness of llhttp alone")
    args = ap.parse_args()
    if httptools is None:
        raise SystemExit("httptools is not installed (pip install httptools)")
    print("command: python bench/drift/http_parser.py " + shlex.join(sys.argv[1:]))
    req = TRITON_HEAD + BODY
    assert hand_written(req).startswith(b"POST /v2/models/sum20/infer HTTP/1.1\r\nHost:")
    assert with_httptools(req).startswith(b"POST /v2/models/sum20/infer HTTP/1.1\r\nHost:")
    n = args.iterations
    print(f"httptools {httptools.__version__}, {n} requests per timing, best of {args.repeat}")
    parsers = {
        "hand-written": hand_written,  # the proxy before: every check in Python
        "llhttp+checks": llhttp_based,  # the proxy now
        "httptools": with_httptools,  # httptools as uvicorn uses it, checks added, pairs joined
    }
    for name, fn in parsers.items():
        best = min(timeit.repeat(lambda fn=fn: fn(req), number=n, repeat=args.repeat))
        print(f"  {name:<14} {best / n * 1e6:6.2f} us per request head")
    print()
    if args.raw_llhttp:
        parsers["httptools"] = _llhttp_only
    print(f"{'case':<22} | " + " | ".join(f"{k:<13}" for k in parsers))
    totals = dict.fromkeys(parsers, 0)
    for name, data in MALFORMED:
        cells = []
        for k, fn in parsers.items():
            r = refused(fn, data)
            totals[k] += r
            cells.append(f"{'refused' if r else 'ACCEPTED':<13}")
        print(f"{name:<22} | " + " | ".join(cells))
    print("refused: " + ", ".join(f"{k} {v}/{len(MALFORMED)}" for k, v in totals.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
