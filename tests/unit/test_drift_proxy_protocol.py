"""Wire-level behaviour of the proxy, driven with raw sockets (no HTTP client library).

Chunked request bodies, Expect: 100-continue, pipelining, streamed (chunked)
responses, HTTP/1.0 clients, malformed requests, and retrying a request that
hit a keep-alive connection Triton had just closed.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable

import numpy as np
import pytest
from aiohttp import web

from modelops.drift.detectors import DetectorConfig
from modelops.drift.metrics import DriftMetrics
from modelops.drift.monitor import DriftMonitor, WindowConfig
from modelops.drift.proxy import DriftProxy, ProxyConfig
from modelops.drift.reference import build_reference

LOOP = "asyncio"


@pytest.fixture(autouse=True, params=["asyncio", "uvloop"])
def event_loop_kind(request):
    """Run every scenario on both loops: the sidecar uses uvloop when it is installed."""
    global LOOP
    LOOP = request.param
    yield
    LOOP = "asyncio"


def _arun(main: Callable[[], Awaitable[None]]) -> None:
    if LOOP == "uvloop":
        pytest.importorskip("uvloop").run(main())
    else:
        asyncio.run(main())


def _upstream_app(log: list[tuple[str, bytes, dict]]) -> web.Application:
    async def echo(request: web.Request) -> web.Response:
        body = await request.read()
        log.append((request.raw_path, body, dict(request.headers)))
        return web.json_response({"len": len(body), "path": request.raw_path})

    async def stream(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        resp.enable_chunked_encoding()
        await resp.prepare(request)
        for i in range(3):
            await resp.write(f"data: {i}\n\n".encode())
            await asyncio.sleep(0.2)
        await resp.write_eof()
        return resp

    app = web.Application()
    app.router.add_route("*", "/stream", stream)
    app.router.add_route("*", "/{tail:.*}", echo)
    return app


async def _serve(app: web.Application) -> tuple[web.AppRunner, int]:
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    return runner, site._server.sockets[0].getsockname()[1]


async def _start_proxy(upstream_port: int, **cfg: object) -> tuple[DriftProxy, int]:
    ref = build_reference(np.random.default_rng(0).normal(size=(500, 2)), bins=5)
    metrics = DriftMetrics("", ref.names)
    monitor = DriftMonitor(ref, DetectorConfig(), WindowConfig(size=100))
    proxy = DriftProxy(
        ProxyConfig(upstream=f"http://127.0.0.1:{upstream_port}", **cfg), monitor, metrics
    )
    port, _ = await proxy.start("127.0.0.1", 0, admin_port=0)
    return proxy, port


async def _read_response(reader: asyncio.StreamReader) -> tuple[int, dict[str, str], bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {k.lower(): v.strip() for k, _, v in (ln.partition(":") for ln in lines[1:] if ln)}
    if "content-length" in headers:
        body = await reader.readexactly(int(headers["content-length"]))
    elif headers.get("transfer-encoding") == "chunked":
        body = b""
        while True:
            size = int((await reader.readuntil(b"\r\n")).strip(), 16)
            chunk = await reader.readexactly(size + 2)
            body += chunk[:-2]
            if size == 0:
                await reader.readuntil(b"\r\n") if not chunk.endswith(b"\r\n") else None
                break
    else:
        body = await reader.read()
    return status, headers, body


Scenario = Callable[[int, DriftProxy, list], Awaitable[None]]


def _run(scenario: Scenario, **cfg: object) -> None:
    async def main() -> None:
        log: list = []
        runner, up_port = await _serve(_upstream_app(log))
        proxy, port = await _start_proxy(up_port, **cfg)
        try:
            await asyncio.wait_for(scenario(port, proxy, log), 20)
        finally:
            await proxy.stop()
            await runner.cleanup()

    _arun(main)


def test_chunked_request_body_is_forwarded_dechunked():
    async def scenario(port, proxy, log):
        r, w = await asyncio.open_connection("127.0.0.1", port)
        w.write(
            b"POST /v2/models/m/infer HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"4\r\nabcd\r\n3\r\nefg\r\n0\r\n\r\n"
        )
        status, _, body = await _read_response(r)
        assert status == 200 and json.loads(body)["len"] == 7
        _, got, hdrs = log[-1]
        assert got == b"abcdefg" and hdrs["Content-Length"] == "7"
        assert "Transfer-Encoding" not in hdrs
        w.close()

    _run(scenario)


def test_expect_100_continue_is_answered_by_the_proxy():
    async def scenario(port, proxy, log):
        r, w = await asyncio.open_connection("127.0.0.1", port)
        w.write(b"POST /x HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n")
        interim = await r.readuntil(b"\r\n\r\n")
        assert interim == b"HTTP/1.1 100 Continue\r\n\r\n"
        w.write(b"hello")
        status, _, body = await _read_response(r)
        assert status == 200 and json.loads(body)["len"] == 5
        assert "Expect" not in log[-1][2]
        w.close()

    _run(scenario)


def test_pipelined_requests_come_back_in_order_on_one_connection():
    async def scenario(port, proxy, log):
        r, w = await asyncio.open_connection("127.0.0.1", port)
        w.write(
            b"".join(
                b"POST /p%d HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % (i, i) + b"x" * i
                for i in range(1, 6)
            )
        )
        for i in range(1, 6):
            status, _, body = await _read_response(r)
            assert status == 200 and json.loads(body) == {"len": i, "path": f"/p{i}"}
        w.close()

    _run(scenario)


def test_chunked_responses_are_streamed_not_buffered():
    async def scenario(port, proxy, log):
        r, w = await asyncio.open_connection("127.0.0.1", port)
        w.write(b"GET /stream HTTP/1.1\r\nHost: x\r\n\r\n")
        head = await r.readuntil(b"\r\n\r\n")
        assert b"Transfer-Encoding: chunked" in head and b"text/event-stream" in head
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        await r.readuntil(b"data: 0\n\n")  # the first chunk
        assert loop.time() - t0 < 0.3  # arrived before the upstream finished (~0.6 s)
        rest = b""
        while not rest.endswith(b"0\r\n\r\n"):
            rest += await r.read(1024)
        assert b"data: 2" in rest
        # The connection is still usable afterwards.
        w.write(b"GET /again HTTP/1.1\r\nHost: x\r\n\r\n")
        status, _, body = await _read_response(r)
        assert status == 200 and json.loads(body)["path"] == "/again"
        w.close()

    _run(scenario)


def test_http10_client_gets_connection_close():
    async def scenario(port, proxy, log):
        r, w = await asyncio.open_connection("127.0.0.1", port)
        w.write(b"GET /old HTTP/1.0\r\n\r\n")
        data = await r.read()  # server closes after the response
        assert data.startswith(b"HTTP/1.") and b" 200 " in data.split(b"\r\n")[0]
        assert b'"path": "/old"' in data
        w.close()

    _run(scenario)


H = b"POST / HTTP/1.1\r\nHost: x\r\n"


@pytest.mark.parametrize(
    ("request_bytes", "status"),
    [
        (b"GARBAGE\r\n\r\n", 400),
        (b"GET / HTTP/3.0\r\n\r\n", 505),
        (H + b"Content-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n", 400),
        (H + b"Transfer-Encoding: gzip\r\n\r\n", 501),
        (H + b"Transfer-Encoding: gzip, chunked\r\n\r\n", 400),
        (H + b"Transfer-Encoding: chunked, chunked\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\nX: " + b"a" * 70_000 + b"\r\n\r\n", 431),
        (H + b"Transfer-Encoding: chunked\r\n\r\nZZ\r\n", 400),
        # Chunk sizes Python's int(x, 16) would read, and a size line with a space.
        (H + b"Transfer-Encoding: chunked\r\n\r\n0x3\r\nabc\r\n0\r\n\r\n", 400),
        (H + b"Transfer-Encoding: chunked\r\n\r\n+3\r\nabc\r\n0\r\n\r\n", 400),
        (H + b"Transfer-Encoding: chunked\r\n\r\n0_3\r\nabc\r\n0\r\n\r\n", 400),
        (H + b"Transfer-Encoding: chunked\r\n\r\n 3\r\nabc\r\n0\r\n\r\n", 400),
        (H + b"Transfer-Encoding: chunked\r\n\r\n" + b"1" * 17 + b"\r\n", 400),
        # Host: none, or two.
        (b"POST / HTTP/1.1\r\nContent-Length: 0\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400),
        # Control characters in the target or in a value; a bare LF.
        (b"GET /a\x01b HTTP/1.1\r\nHost: x\r\n\r\n", 400),
        (b"GET /a\x7fb HTTP/1.1\r\nHost: x\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\nHost: x\r\nX-A: a\x00b\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\nHost: x\r\nX-A: a\x1bb\r\n\r\n", 400),
        (b"GET / HTTP/1.1\nHost: x\n\n", 400),
        (b"GET / HTTP/1.1\r\nHost: x\nX: y\r\n", 400),
        (b"GET / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400),
        (H + b"Content-Length: 1e3\r\n\r\n", 400),
        (H + b"Content-Length: " + b"9" * 30 + b"\r\n\r\n", 400),
    ],
)
def test_malformed_requests_get_an_error_and_the_proxy_keeps_serving(request_bytes, status):
    async def scenario(port, proxy, log):
        r, w = await asyncio.open_connection("127.0.0.1", port)
        w.write(request_bytes)
        got, headers, body = await _read_response(r)
        assert got == status and headers["connection"] == "close"
        assert "error" in json.loads(body)
        w.close()
        assert log == []  # nothing reached Triton
        r2, w2 = await asyncio.open_connection("127.0.0.1", port)
        w2.write(b"GET /ok HTTP/1.1\r\nHost: x\r\n\r\n")
        assert (await _read_response(r2))[0] == 200
        w2.close()

    _run(scenario)


def test_head_request_has_no_body():
    async def scenario(port, proxy, log):
        r, w = await asyncio.open_connection("127.0.0.1", port)
        w.write(b"HEAD /h HTTP/1.1\r\nHost: x\r\n\r\nGET /after HTTP/1.1\r\nHost: x\r\n\r\n")
        head = await r.readuntil(b"\r\n\r\n")
        assert b" 200 " in head and b"Content-Length" in head
        status, _, body = await _read_response(r)  # the next response follows directly
        assert status == 200 and json.loads(body)["path"] == "/after"
        w.close()

    _run(scenario)


def test_keep_alive_connection_to_upstream_is_reused():
    async def scenario(port, proxy, log):
        r, w = await asyncio.open_connection("127.0.0.1", port)
        for _ in range(5):
            w.write(b"GET /k HTTP/1.1\r\nHost: x\r\n\r\n")
            assert (await _read_response(r))[0] == 200
        assert len(proxy._pool.idle) == 1
        w.close()

    _run(scenario)


def test_request_on_a_connection_triton_just_closed_is_retried_once():
    """Upstream answers the first request on each connection, then closes on the next one."""
    served: list[int] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        served.append(1)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        await writer.drain()
        await reader.readuntil(b"\r\n\r\n")  # a second request: drop it unanswered
        writer.close()

    async def main() -> None:
        server = await asyncio.start_server(handle, "127.0.0.1", 0)
        up_port = server.sockets[0].getsockname()[1]
        proxy, port = await _start_proxy(up_port)
        try:
            r, w = await asyncio.open_connection("127.0.0.1", port)
            for _ in range(3):
                w.write(b"POST /v2/models/m/infer HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n")
                status, _, body = await _read_response(r)
                assert (status, body) == (200, b"ok")
            assert len(served) == 3
            w.close()
        finally:
            await proxy.stop()
            server.close()

    _arun(main)


def test_upstream_that_answers_garbage_gives_502():
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"NOT HTTP AT ALL\r\n\r\n")
        await writer.drain()
        writer.close()

    async def main() -> None:
        server = await asyncio.start_server(handle, "127.0.0.1", 0)
        proxy, port = await _start_proxy(server.sockets[0].getsockname()[1])
        try:
            r, w = await asyncio.open_connection("127.0.0.1", port)
            w.write(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            status, _, body = await _read_response(r)
            assert status == 502 and "status line" in json.loads(body)["error"]
            w.close()
        finally:
            await proxy.stop()
            server.close()

    _arun(main)


def test_bad_upstream_url_is_refused():
    for bad in ("https://x:1", "http://x:1/prefix", "x:1"):
        with pytest.raises(ValueError, match="upstream"):
            ProxyConfig(upstream=bad).upstream_address()
    assert ProxyConfig(upstream="http://triton:8000/").upstream_address() == ("triton", 8000)
