"""HTTP/1.1 framing used by the proxy: heads, bodies, chunked coding, header rewriting."""

from __future__ import annotations

import pytest

from modelops.drift.http1 import (
    ChunkedDecoder,
    ProtocolError,
    check_request_head,
    client_response_head,
    find_bare_line_break,
    keep_alive,
    parse_head,
    parse_request_line,
    parse_status_line,
    request_framing,
    response_framing,
    simple_response,
    upstream_request_head,
)


def _head(text: str):
    return parse_head(text.replace("\n", "\r\n").encode())


def test_parse_head_keeps_raw_bytes_and_finds_fields_case_insensitively():
    h = _head("POST /x HTTP/1.1\nHost: a\nX-Multi: 1\nx-multi:  2 \nContent-Length: 3")
    assert h.start == b"POST /x HTTP/1.1"
    assert h.raw.split(b"\r\n")[2] == b"X-Multi: 1"
    # A name inside a value is not a field.
    assert _head("GET / HTTP/1.1\nX-A: content-length: 9").get(b"content-length") is None
    assert h.get(b"x-multi") == b"1" and h.get_all(b"x-multi") == [b"1", b"2"]
    assert h.get(b"nope") is None and h.get_all(b"nope") == []


@pytest.mark.parametrize(
    "text",
    [
        "GET / HTTP/1.1\nNoColon",
        "GET / HTTP/1.1\n: empty-name",
        "GET / HTTP/1.1\nBad Name: x",
        "GET / HTTP/1.1\nA: b\n folded",
        "GET / HTTP/1.1\nA\x00: b",
        "GET / HTTP/1.1\nA : b",
        "GET / HTTP/1.1\nA: b\rc",
    ],
)
def test_malformed_fields_are_refused(text):
    with pytest.raises(ProtocolError) as err:
        _head(text)
    assert err.value.status == 400


def test_too_many_fields():
    with pytest.raises(ProtocolError) as err:
        _head("GET / HTTP/1.1\n" + "\n".join(f"H{i}: v" for i in range(200)))
    assert err.value.status == 431


def test_request_line():
    rl = parse_request_line(b"POST /v2/models/m/infer?x=1 HTTP/1.1")
    assert (rl.method, rl.target, rl.path) == (
        "POST",
        "/v2/models/m/infer?x=1",
        "/v2/models/m/infer",
    )
    for bad, status in [
        (b"GET /", 400),
        (b"GET  / HTTP/1.1", 400),
        (b"G(T / HTTP/1.1", 400),
        (b"GET / HTTP/2.0", 505),
    ]:
        with pytest.raises(ProtocolError) as err:
            parse_request_line(bad)
        assert err.value.status == status


def test_status_line():
    assert parse_status_line(b"HTTP/1.1 200 OK") == 200
    assert parse_status_line(b"HTTP/1.0 404") == 404
    for bad in (b"HTTP/1.1 2000 X", b"SPDY 200 OK", b"HTTP/1.1 abc"):
        with pytest.raises(ProtocolError):
            parse_status_line(bad)


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ("", ("length", 0)),
        ("Content-Length: 12", ("length", 12)),
        ("Content-Length: 12\nContent-Length: 12", ("length", 12)),
        ("Content-Length: 12, 12", ("length", 12)),
        ("Transfer-Encoding: chunked", ("chunked", 0)),
        ("Transfer-Encoding: Chunked", ("chunked", 0)),
    ],
)
def test_request_framing(fields, expected):
    assert (
        request_framing(_head("POST / HTTP/1.1\n" + fields if fields else "POST / HTTP/1.1"))
        == expected
    )


@pytest.mark.parametrize(
    ("fields", "status"),
    [
        ("Content-Length: 12\nContent-Length: 13", 400),
        ("Content-Length: -1", 400),
        ("Content-Length: 0x10", 400),
        ("Content-Length: 3\nTransfer-Encoding: chunked", 400),  # smuggling vector
        ("Transfer-Encoding: gzip", 501),
        ("Transfer-Encoding: gzip, chunked", 400),  # gzip would reach Triton unannounced
        ("Transfer-Encoding: chunked\nTransfer-Encoding: chunked", 400),
        ("Content-Length: " + "1" * 19, 400),
    ],
)
def test_request_framing_refuses_ambiguity(fields, status):
    with pytest.raises(ProtocolError) as err:
        request_framing(_head("POST / HTTP/1.1\n" + fields))
    assert err.value.status == status


def test_response_framing():
    assert response_framing(_head("HTTP/1.1 200 OK\nContent-Length: 5"), 200, "GET") == (
        "length",
        5,
    )
    assert response_framing(_head("HTTP/1.1 200 OK\nContent-Length: 5"), 200, "HEAD") == (
        "length",
        0,
    )
    assert response_framing(_head("HTTP/1.1 204 No Content"), 204, "GET") == ("length", 0)
    assert response_framing(_head("HTTP/1.1 304 NM"), 304, "GET") == ("length", 0)
    assert response_framing(_head("HTTP/1.1 200 OK\nTransfer-Encoding: chunked"), 200, "GET") == (
        "chunked",
        0,
    )
    assert response_framing(_head("HTTP/1.1 200 OK"), 200, "GET") == ("close", 0)
    with pytest.raises(ProtocolError) as err:
        response_framing(_head("HTTP/1.1 200 OK\nContent-Length: x"), 200, "GET")
    assert err.value.status == 502


def test_chunked_decoder_byte_by_byte_with_extensions_and_trailers():
    wire = b"5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nX-Trailer: t\r\n\r\nNEXT"
    d = ChunkedDecoder()
    buf = bytearray()
    consumed_total = 0
    for i in range(len(wire)):
        buf += wire[i : i + 1]
        used = d.feed(buf)
        del buf[:used]
        consumed_total += used
        if d.done:
            break
    assert d.done and bytes(d.body) == b"hello world" and d.size == 11
    assert wire[consumed_total:] == b"NEXT"  # the next message is left alone


def test_chunked_decoder_scan_mode_and_limits():
    d = ChunkedDecoder(keep_body=False)
    wire = b"a\r\n0123456789\r\n0\r\n\r\n"
    assert d.feed(wire) == len(wire) and d.done and d.body == b"" and d.size == 10
    with pytest.raises(ProtocolError) as err:
        ChunkedDecoder(max_body=5).feed(b"6\r\n")
    assert err.value.status == 413
    for bad in (
        b"zz\r\n",
        b"\r\n",
        b"3\r\nabcX\r\n",
        b"0x3\r\n",
        b"+3\r\n",
        b"0_3\r\n",
        b"-0\r\n",
        b" 3\r\n",
        b"3 \r\n",
        b"3\n",
        b"11111111111111111\r\n",
    ):
        with pytest.raises(ProtocolError):
            ChunkedDecoder().feed(bad)
    with pytest.raises(ProtocolError):
        ChunkedDecoder().feed(b"1" * 2000)  # a size line that never ends


def test_chunk_extensions_with_whitespace_before_the_semicolon_are_allowed():
    d = ChunkedDecoder()
    assert d.feed(b"3 ;ext\r\nabc\r\n0\r\n\r\n") and bytes(d.body) == b"abc"


def test_connection_never_removes_host_or_framing_fields():
    h = _head(
        "POST /x HTTP/1.1\nHost: a\nConnection: host, content-length, "
        "inference-header-content-length, content-encoding, x-hop\nX-Hop: 1\n"
        "Inference-Header-Content-Length: 4\nContent-Encoding: gzip\nContent-Length: 9"
    )
    out = upstream_request_head(parse_request_line(h.start), h, 9)
    assert out == (
        b"POST /x HTTP/1.1\r\nHost: a\r\nInference-Header-Content-Length: 4\r\n"
        b"Content-Encoding: gzip\r\nContent-Length: 9\r\n\r\n"
    )
    r = _head("HTTP/1.1 200 OK\nConnection: content-length\nContent-Length: 2")
    assert b"Content-Length: 2" in client_response_head(r, close=False, chunked=False)


@pytest.mark.parametrize(
    ("text", "status"),
    [
        ("GET / HTTP/1.1", 400),
        ("GET / HTTP/1.1\nHost: a\nhost: b", 400),
        ("POST / HTTP/1.0\nTransfer-Encoding: chunked", 400),
    ],
)
def test_host_and_version_checks(text, status):
    h = _head(text)
    with pytest.raises(ProtocolError) as err:
        check_request_head(parse_request_line(h.start), h)
    assert err.value.status == status


def test_http10_without_host_and_targets():
    h = _head("GET / HTTP/1.0")
    check_request_head(parse_request_line(h.start), h)
    for target in (b"/a b", b"/\x00", b"/\xff", b"/\x7f"):
        with pytest.raises(ProtocolError):
            parse_request_line(b"GET " + target + b" HTTP/1.1")
    assert find_bare_line_break(b"GET / HTTP/1.1\nHost")
    assert find_bare_line_break(b"GET / HTTP/1.1\r\nA: b\rc")
    assert not find_bare_line_break(b"GET / HTTP/1.1\r\nHost: a\r")


def test_connection_listed_fields_are_dropped_too():
    h = _head("GET / HTTP/1.1\nConnection: X-Hop, close\nX-Hop: 1\nX-Keep: 2")
    out = upstream_request_head(parse_request_line(h.start), h, 0)
    assert out == b"GET / HTTP/1.1\r\nX-Keep: 2\r\n\r\n"


def test_upstream_request_head_drops_hop_by_hop_and_fixes_length():
    h = _head(
        "POST /v2/models/m/infer HTTP/1.1\nHost: sidecar:8080\nConnection: keep-alive, X-Secret\n"
        "X-Secret: 1\nKeep-Alive: timeout=5\nTransfer-Encoding: chunked\nExpect: 100-continue\n"
        "Inference-Header-Content-Length: 10\nContent-Type: application/octet-stream"
    )
    out = upstream_request_head(parse_request_line(h.start), h, 42)
    assert out == (
        b"POST /v2/models/m/infer HTTP/1.1\r\nHost: sidecar:8080\r\n"
        b"Inference-Header-Content-Length: 10\r\nContent-Type: application/octet-stream\r\n"
        b"Content-Length: 42\r\n\r\n"
    )
    g = _head("GET /v2/health/ready HTTP/1.1\nHost: x")
    assert upstream_request_head(parse_request_line(g.start), g, 0) == (
        b"GET /v2/health/ready HTTP/1.1\r\nHost: x\r\n\r\n"
    )


def test_client_response_head():
    h = _head(
        "HTTP/1.1 200 OK\nContent-Type: application/json\nConnection: keep-alive\n"
        "Inference-Header-Content-Length: 7\nContent-Length: 20"
    )
    assert client_response_head(h, close=False, chunked=False) == (
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
        b"Inference-Header-Content-Length: 7\r\nContent-Length: 20\r\n\r\n"
    )
    s = _head("HTTP/1.1 200 OK\nTransfer-Encoding: chunked\nContent-Type: text/event-stream")
    assert client_response_head(s, close=True, chunked=True) == (
        b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n"
        b"Connection: close\r\n\r\n"
    )


def test_keep_alive_rules():
    assert keep_alive(b"HTTP/1.1", _head("GET / HTTP/1.1"))
    assert not keep_alive(b"HTTP/1.1", _head("GET / HTTP/1.1\nConnection: close"))
    assert not keep_alive(b"HTTP/1.0", _head("GET / HTTP/1.0"))
    assert keep_alive(b"HTTP/1.0", _head("GET / HTTP/1.0\nConnection: Keep-Alive"))


def test_simple_response():
    r = simple_response(502, b'{"error": "x"}', close=True)
    assert r == (
        b"HTTP/1.1 502 Bad Gateway\r\nContent-Type: application/json\r\nContent-Length: 14\r\n"
        b'Connection: close\r\n\r\n{"error": "x"}'
    )
