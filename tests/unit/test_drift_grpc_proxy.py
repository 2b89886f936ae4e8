"""The gRPC relay against a small grpc.aio upstream that records what reaches it.

A stand-in upstream is used here because what Triton receives (the metadata
and deadline of each call) cannot be read back from the real Triton; the
behaviour against the real Triton is in tests/drift/test_sidecar_grpc.py.
The frame reader is also driven byte by byte with hand-built HTTP/2 frames.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc
import hpack
import numpy as np
import pytest
from prometheus_client import CollectorRegistry
from tritonclient.grpc import service_pb2

from modelops.drift.grpc_proxy import (
    SERVICE,
    GrpcProxy,
    GrpcProxyConfig,
)

MODEL_INFER = f"/{SERVICE}/ModelInfer"
MODEL_STREAM_INFER = f"/{SERVICE}/ModelStreamInfer"

RUN: Callable[[Any], None] = asyncio.run


@pytest.fixture(autouse=True, params=["asyncio", "uvloop"])
def event_loop_kind(request):
    """Both loops: the sidecar runs on uvloop when it is installed."""
    global RUN
    import uvloop

    RUN = asyncio.run if request.param == "asyncio" else uvloop.run
    yield
    RUN = asyncio.run


class Upstream:
    """Echoes requests; metadata keys steer errors and delays."""

    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []
        self.cancelled = asyncio.Event()
        self.server = grpc.aio.server()
        self.server.add_generic_rpc_handlers((self,))
        self.port = self.server.add_insecure_port("127.0.0.1:0")

    def service(self, details: grpc.HandlerCallDetails) -> grpc.RpcMethodHandler | None:
        if details.method == MODEL_STREAM_INFER:
            return grpc.stream_stream_rpc_method_handler(self._stream)
        if details.method == "/x.Big/Stream":
            return grpc.unary_stream_rpc_method_handler(self._big)
        if details.method.startswith(f"/{SERVICE}/") or details.method == "/x.Other/Echo":
            return grpc.unary_unary_rpc_method_handler(self._unary)
        return None

    async def _unary(self, request: bytes, context: grpc.aio.ServicerContext) -> bytes:
        md = dict(context.invocation_metadata())
        self.calls.append({"metadata": md, "remaining": context.time_remaining(), "req": request})
        await context.send_initial_metadata((("x-initial", "i"),))
        context.set_trailing_metadata((("x-trailing", "t"), ("x-bin", b"\x00\x01")))
        if "sleep" in md:
            try:
                await asyncio.sleep(float(md["sleep"]))
            except asyncio.CancelledError:
                self.cancelled.set()
                raise
        if "fail" in md:
            await context.abort(
                grpc.StatusCode.INVALID_ARGUMENT, "bad input: " + md["fail"], (("x-why", "w"),)
            )
        return request[::-1]

    async def _big(self, request: bytes, context: grpc.aio.ServicerContext) -> AsyncIterator[bytes]:
        self.big_sent = 0
        chunk = b"z" * (1024 * 1024)
        for _ in range(200):
            yield chunk
            self.big_sent += 1

    async def _stream(
        self, requests: AsyncIterator[bytes], context: grpc.aio.ServicerContext
    ) -> AsyncIterator[bytes]:
        self.calls.append({"metadata": dict(context.invocation_metadata()), "stream": True})
        async for message in requests:
            if message == b"boom":
                context.set_code(grpc.StatusCode.FAILED_PRECONDITION)
                context.set_details("stream broke")
                return
            ok = service_pb2.ModelStreamInferResponse(
                infer_response=service_pb2.ModelInferResponse(id="1")
            )
            err = service_pb2.ModelStreamInferResponse(error_message="no")
            yield (err if message.endswith(b"bad") else ok).SerializeToString()


class Offers:
    """The feeder's interface: records what the proxy offers and skips."""

    def __init__(self) -> None:
        self.payloads: list[bytes] = []
        self.parsers: list[Callable[[bytes], Any]] = []
        self.skipped: list[str] = []

    def offer(self, payload: bytes, parse: Callable[[bytes], Any]) -> None:
        self.payloads.append(payload)
        self.parsers.append(parse)

    def skip(self, reason: str) -> None:
        self.skipped.append(reason)


def _run(body: Callable[..., Awaitable[None]], **config: Any) -> None:
    async def main() -> None:
        up = Upstream()
        await up.server.start()
        offers = Offers()
        proxy = GrpcProxy(
            GrpcProxyConfig(upstream=f"127.0.0.1:{up.port}", **config), offers, CollectorRegistry()
        )
        port = await proxy.start("127.0.0.1", 0)
        proxy.port = port
        channel = grpc.aio.insecure_channel(
            f"127.0.0.1:{port}", options=[("grpc.use_local_subchannel_pool", 1)]
        )
        try:
            await body(channel, up, offers, proxy)
        finally:
            await channel.close()
            await proxy.stop(0)
            await up.server.stop(0)

    RUN(main())


def _infer_request(model: str, x: np.ndarray) -> bytes:
    req = service_pb2.ModelInferRequest(model_name=model)
    inp = req.inputs.add(name="INPUT0", datatype="FP32", shape=list(x.shape))
    del inp  # data travels in raw_input_contents, as tritonclient sends it
    req.raw_input_contents.append(x.astype("<f4").tobytes())
    return req.SerializeToString()


def test_unary_passes_bytes_metadata_and_deadline_through():
    async def body(channel, up, offers, proxy):
        call = channel.unary_unary(MODEL_INFER)(
            b"abc", metadata=(("x-user", "u"), ("x-raw-bin", b"\xff\x00")), timeout=7
        )
        assert await call == b"cba"
        assert ("x-initial", "i") in tuple(await call.initial_metadata())
        trailing = tuple(await call.trailing_metadata())
        assert ("x-trailing", "t") in trailing and ("x-bin", b"\x00\x01") in trailing
        seen = up.calls[-1]
        assert seen["metadata"]["x-user"] == "u" and seen["metadata"]["x-raw-bin"] == b"\xff\x00"
        # The client's remaining time, not grpc's "no deadline".
        assert seen["remaining"] is not None and 5 < seen["remaining"] <= 7
        await channel.unary_unary(f"/{SERVICE}/ServerLive")(b"")
        assert up.calls[-1]["remaining"] is None  # no client deadline, none upstream

    _run(body)


def test_errors_keep_code_details_and_trailing_metadata():
    async def body(channel, up, offers, proxy):
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await channel.unary_unary(MODEL_INFER)(b"x", metadata=(("fail", "shape"),))
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert err.value.details() == "bad input: shape"
        assert ("x-why", "w") in tuple(err.value.trailing_metadata())
        assert offers.payloads == []  # a failed request is not observed

    _run(body)


def test_deadline_expires_upstream_and_cancellation_reaches_it():
    async def body(channel, up, offers, proxy):
        t0 = time.monotonic()
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await channel.unary_unary(MODEL_INFER)(b"x", metadata=(("sleep", "5"),), timeout=0.3)
        assert err.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
        assert time.monotonic() - t0 < 2
        await asyncio.wait_for(up.cancelled.wait(), 2)  # Triton stops working on it too
        up.cancelled.clear()
        call = channel.unary_unary(MODEL_INFER)(b"x", metadata=(("sleep", "5"),))
        await asyncio.sleep(0.3)
        call.cancel()
        await asyncio.wait_for(up.cancelled.wait(), 2)

    _run(body)


def test_model_infer_offered_for_the_watched_model_only():
    async def body(channel, up, offers, proxy):
        x = np.ones((1, 4), dtype=np.float32)
        infer = channel.unary_unary(MODEL_INFER)
        mine, other = _infer_request("fraud", x), _infer_request("other", x)
        await infer(mine)
        await infer(other)
        await channel.unary_unary(f"/{SERVICE}/ModelMetadata")(mine)
        assert offers.payloads == [mine]

    _run(body, model="fraud")


def test_stream_forwards_both_ways_and_offers_successful_requests():
    async def body(channel, up, offers, proxy):
        x = np.ones((1, 4), dtype=np.float32)
        good, bad = _infer_request("fraud", x), _infer_request("fraud", x) + b"bad"
        call = channel.stream_stream(MODEL_STREAM_INFER)(metadata=(("x-s", "1"),))
        for m in (good, bad, good):
            await call.write(m)
        await call.done_writing()
        responses = [service_pb2.ModelStreamInferResponse.FromString(r) async for r in call]
        assert [r.error_message for r in responses] == ["", "no", ""]
        assert await call.code() == grpc.StatusCode.OK
        assert up.calls[-1]["metadata"]["x-s"] == "1"
        assert offers.payloads == [good, good]

        call = channel.stream_stream(MODEL_STREAM_INFER)()
        await call.write(good)
        await call.write(b"boom")
        with pytest.raises(grpc.aio.AioRpcError) as err:
            async for _ in call:
                pass
        assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert err.value.details() == "stream broke"

    _run(body, model="fraud")


def test_methods_outside_the_service_pass_through_and_unknown_ones_fail_as_upstream():
    async def body(channel, up, offers, proxy):
        assert await channel.unary_unary("/x.Other/Echo")(b"hi") == b"ih"
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await channel.unary_unary("/x.Nope/Nope")(b"hi")
        assert err.value.code() == grpc.StatusCode.UNIMPLEMENTED

    _run(body)


def test_large_and_compressed_requests_are_relayed_but_not_kept():
    async def body(channel, up, offers, proxy):
        x = np.ones((1, 4), dtype=np.float32)
        big = _infer_request("fraud", np.ones((64, 4), dtype=np.float32))  # over 512 bytes
        infer = channel.unary_unary(MODEL_INFER)
        assert await infer(big) == big[::-1]
        assert offers.skipped == ["too_large"] and offers.payloads == []
        small = _infer_request("fraud", x)
        assert await infer(small) == small[::-1]
        assert offers.payloads == [small]
        # gzip on the wire: undone by the parser the worker gets, under the same cap.
        zeros = _infer_request("fraud", np.zeros((16, 4), dtype=np.float32))
        assert await infer(zeros, compression=grpc.Compression.Gzip) == zeros[::-1]
        assert len(offers.payloads) == 2
        assert offers.payloads[1] != zeros  # compressed bytes...
        tensors = offers.parsers[1](offers.payloads[1])  # ...that parse to the tensor
        np.testing.assert_array_equal(tensors["INPUT0"], np.zeros((16, 4), dtype=np.float32))

    _run(body, model="fraud", stats_max_bytes=512)


def test_connection_limit():
    async def body(channel, up, offers, proxy):
        assert await channel.unary_unary(f"/{SERVICE}/ServerLive")(b"") == b""
        async with grpc.aio.insecure_channel(
            f"127.0.0.1:{proxy.port}", options=[("grpc.use_local_subchannel_pool", 1)]
        ) as second:
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await second.unary_unary(f"/{SERVICE}/ServerLive")(b"", timeout=5)
            assert err.value.code() == grpc.StatusCode.UNAVAILABLE
        assert await channel.unary_unary(f"/{SERVICE}/ServerLive")(b"") == b""  # first still up

    _run(body, max_connections=1)


def test_upstream_down_is_unavailable():
    async def main() -> None:
        from tests.support.triton_server import free_port

        proxy = GrpcProxy(GrpcProxyConfig(upstream=f"127.0.0.1:{free_port()}"), None)
        port = await proxy.start("127.0.0.1", 0)
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await channel.unary_unary(f"/{SERVICE}/ServerLive")(b"", timeout=5)
            assert err.value.code() == grpc.StatusCode.UNAVAILABLE
        await proxy.stop(0)

    RUN(main())


# -- the frame reader, byte by byte ------------------------------------------------------


def _frame(ftype: int, flags: int, stream: int, payload: bytes) -> bytes:
    return (
        len(payload).to_bytes(3, "big")
        + bytes([ftype, flags])
        + stream.to_bytes(4, "big")
        + payload
    )


def _grpc_message(message: bytes) -> bytes:
    return b"\x00" + len(message).to_bytes(4, "big") + message


def _conversation(model: str) -> tuple[bytes, bytes, list[bytes]]:
    """Client and server bytes of three calls on one connection, and the watched requests."""
    enc = hpack.Encoder()
    x = np.arange(8, dtype=np.float32).reshape(2, 4)

    def request_headers(path: str) -> bytes:
        return enc.encode(
            [(":method", "POST"), (":scheme", "http"), (":path", path), (":authority", "t"),
             ("content-type", "application/grpc"), ("te", "trailers"), ("grpc-timeout", "5S")]
        )  # fmt: skip

    infer1, infer3 = _infer_request(model, x), _infer_request(model, x + 1)
    # Encoded in wire order: the encoder's table follows the connection.
    block1 = request_headers(MODEL_INFER)
    block3 = request_headers(MODEL_INFER)
    block5 = request_headers(f"/{SERVICE}/ModelMetadata")
    block7 = request_headers(MODEL_INFER)
    body3 = _grpc_message(infer3)
    client = (
        b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
        + _frame(0x4, 0, 0, b"")  # SETTINGS
        + _frame(0x1, 0x4, 1, block1)
        + _frame(0x0, 0x1, 1, _grpc_message(infer1))
        # stream 3: its header block in HEADERS + CONTINUATION, its message over two DATA frames
        + _frame(0x1, 0x20, 3, b"\x00\x00\x00\x00\x10" + block3[:3])  # PRIORITY fields first
        + _frame(0x9, 0x4, 3, block3[3:])
        + _frame(0x8, 0, 0, b"\x00\x00\x10\x00")  # WINDOW_UPDATE
        + _frame(0x0, 0, 3, body3[:7])
        + _frame(0x0, 0x1, 3, body3[7:])
        # stream 5: another method, not looked at
        + _frame(0x1, 0x4, 5, block5)
        + _frame(0x0, 0x1, 5, _grpc_message(infer1))
        # stream 7: a request Triton refuses (trailers only, no message)
        + _frame(0x1, 0x4, 7, block7)
        + _frame(0x0, 0x1, 7, _grpc_message(infer1))
    )
    senc = hpack.Encoder()  # encoded in wire order too: the relay decodes Triton's blocks

    def ok_head() -> bytes:
        return senc.encode([(":status", "200"), ("content-type", "application/grpc")])

    server = b"".join(
        [
            _frame(0x4, 0, 0, b""),
            _frame(0x1, 0x4, 1, ok_head()),
            _frame(0x0, 0, 1, _grpc_message(b"\x12\x02ok")),
            _frame(0x1, 0x5, 1, senc.encode([("grpc-status", "0")])),
            _frame(0x1, 0x5, 7, senc.encode([(":status", "200"), ("grpc-status", "3")])),
            _frame(0x1, 0x4, 3, ok_head()),
            _frame(0x0, 0, 3, _grpc_message(b"\x12\x02ok")[:3]),
            _frame(0x0, 0, 3, _grpc_message(b"\x12\x02ok")[3:]),
            _frame(0x1, 0x5, 3, senc.encode([("grpc-status", "0")])),
            _frame(0x1, 0x4, 5, ok_head()),
            _frame(0x0, 0, 5, _grpc_message(b"meta")),
            _frame(0x1, 0x5, 5, senc.encode([("grpc-status", "0")])),
        ]
    )
    return client, server, [infer1, infer3]


@pytest.mark.parametrize("chunk", [1, 2, 5, 9, 13, 4096])
def test_frame_reader_follows_any_split(chunk, event_loop_kind):
    from modelops.drift.grpc_proxy import _Observer
    from modelops.drift.h2_wire import FrameReader

    client, server, watched = _conversation("fraud")
    offers = Offers()
    proxy = GrpcProxy(GrpcProxyConfig(model="fraud"), offers, CollectorRegistry())
    obs = _Observer(proxy)
    creader, sreader = FrameReader(preface=True), FrameReader(preface=False)
    for i in range(0, len(client), chunk):
        creader.feed(client[i : i + chunk], obs.requests)
    for i in range(0, len(server), chunk):
        sreader.feed(server[i : i + chunk], obs.responses)
    assert offers.payloads == watched
    assert obs.streams == {}  # every stream ended
    assert proxy.kept_bytes == 0  # and gave back what it kept
    assert proxy.metrics._calls["ModelInfer"]._value.get() == 3
    assert proxy.metrics._calls["other"]._value.get() == 1


def test_frame_reader_stops_on_a_stream_that_is_not_http2():
    from modelops.drift.grpc_proxy import _Observer
    from modelops.drift.h2_wire import FrameReader, ObserveError

    obs = _Observer(GrpcProxy(GrpcProxyConfig(), Offers(), CollectorRegistry()))
    with pytest.raises(ObserveError):
        FrameReader(preface=True).feed(b"GET / HTTP/1.1\r\n\r\n", obs.requests)


def test_header_cache_follows_the_hpack_table():
    """The same indexed bytes mean another path once a new entry shifted the table."""
    from modelops.drift.grpc_proxy import _Observer

    obs = _Observer(GrpcProxy(GrpcProxyConfig(), Offers(), CollectorRegistry()))
    enc = hpack.Encoder()
    a, b = f"/{SERVICE}/ModelInfer", f"/{SERVICE}/ModelMetadata"
    first_a, again_a = enc.encode([(":path", a)]), enc.encode([(":path", a)])
    first_b, again_b = enc.encode([(":path", b)]), enc.encode([(":path", b)])
    assert again_a == again_b  # the newest dynamic entry, both times
    assert obs._decode(first_a)[0] == a.encode()
    assert obs._decode(again_a)[0] == a.encode()
    assert obs._decode(again_a)[0] == a.encode()  # from the cache
    assert obs._decode(first_b)[0] == b.encode()
    assert obs._decode(again_b)[0] == b.encode()  # not the cached meaning


def test_blocks_without_a_table_are_cached_and_never_count_as_changing_it():
    """Triton told the client keeps no table (drift/h2_settings.py): its answers' blocks
    leave the table empty, each is decoded once, and a held split answer's block is
    not a table change (so it can be held back); a block that inserts still is."""
    from modelops.drift.h2_wire import Blocks, grpc_status

    blocks = Blocks(grpc_status)
    decoded = []
    decode = blocks.decoder.decode
    blocks.decoder.decode = lambda block, raw: decoded.append(block) or decode(block, raw=raw)
    enc = hpack.Encoder()
    enc.header_table_size = 0  # as Triton's encoder after the client's rewritten SETTINGS
    head = [(":status", "200"), ("content-type", "application/grpc")]
    first = enc.encode(head)  # starts with the size update
    again, ok, failed = (
        enc.encode(head),
        enc.encode([("grpc-status", "0")]),
        enc.encode([("grpc-status", "14")]),
    )
    _, changed = blocks.fields(first)
    assert not changed
    for _ in range(3):
        assert blocks.read(again) is None and blocks.read(ok) == 0 and blocks.read(failed) == 14
    assert len(decoded) == 4  # the first block, then each other one once
    assert blocks.fields(again) == (
        [(b":status", b"200"), (b"content-type", b"application/grpc")],
        False,
    )
    inserting = hpack.Encoder().encode([("x-new", "1")])  # a table of 4096 bytes again
    blocks.decoder.header_table_size = 4096
    assert blocks.fields(inserting)[1] is True


def test_kept_bytes_budget_is_shared_and_given_back():
    async def body(channel, up, offers, proxy):
        x = np.ones((8, 4), dtype=np.float32)  # a ~150-byte message
        infer = channel.unary_unary(MODEL_INFER)
        msg = _infer_request("fraud", x)
        assert len(msg) < 200
        assert await infer(msg) == msg[::-1]
        assert offers.payloads == [msg] and proxy.kept_bytes == 0
        # An open stream holds its messages until answered; past the budget,
        # further messages are relayed but not kept.
        call = channel.stream_stream(MODEL_STREAM_INFER)()
        await call.write(msg)  # the fake upstream answers each message at once
        await call.done_writing()
        assert len([r async for r in call]) == 1
        assert proxy.kept_bytes == 0

    _run(body, model="fraud", max_kept_bytes=200)


def test_kept_bytes_budget_refuses_what_does_not_fit():
    from modelops.drift.h2_wire import Messages

    budget = {"left": 100}

    def reserve(n: int) -> bool:
        if n > budget["left"]:
            return False
        budget["left"] -= n
        return True

    m = Messages(True, 1000, reserve)
    out: list = []
    m.feed(memoryview(b"\x00\x00\x00\x00\x50" + b"a" * 80), out)  # fits: kept
    m.feed(memoryview(b"\x00\x00\x00\x00\x50" + b"b" * 80), out)  # does not: head only
    assert out[0] == (b"a" * 80, False, False)
    assert out[1][2] is True and budget["left"] == 20


def test_cli_builds_the_relay_only_when_told_where_triton_grpc_is(tmp_path):
    import argparse

    from modelops.drift import cli
    from modelops.drift.reference import build_reference

    ref = tmp_path / "ref.json"
    build_reference(np.random.default_rng(0).normal(size=(100, 2))).save(ref)

    def parse(*argv: str) -> argparse.Namespace:
        p = argparse.ArgumentParser()
        cli.add_arguments(p)
        return p.parse_args(["--reference", str(ref), *argv])

    http = cli.build_proxy(parse())
    assert cli.build_grpc_proxy(parse(), http) is None  # off unless configured
    args = parse("--grpc-upstream", "127.0.0.1:8001", "--model", "m", "--stats-max-bytes", "99")
    relay = cli.build_grpc_proxy(args, http)
    assert relay is not None and relay.feeder is http.feeder  # one set of drift windows
    assert (relay.config.model, relay.config.stats_max_bytes) == ("m", 99)
    assert args.grpc_port == 8081
    assert cli.run(parse("--grpc-upstream", "no-port-here", "--port", "0")) == 2


def test_a_client_that_never_reads_is_not_buffered_for():
    """Triton's side pauses while the client's side is full: the relay's buffers stay small."""

    async def body(channel, up, offers, proxy):
        enc = hpack.Encoder()
        headers = enc.encode(
            [(":method", "POST"), (":scheme", "http"), (":path", "/x.Big/Stream"),
             (":authority", "t"), ("content-type", "application/grpc"), ("te", "trailers")]
        )  # fmt: skip
        big_window = (1 << 31) - 1
        settings = (4).to_bytes(2, "big") + big_window.to_bytes(4, "big")  # INITIAL_WINDOW_SIZE
        hello = (
            b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
            + _frame(0x4, 0, 0, settings)
            + _frame(0x8, 0, 0, (big_window - 65535).to_bytes(4, "big"))  # connection window
            + _frame(0x1, 0x4, 1, headers)
            + _frame(0x0, 0x1, 1, _grpc_message(b""))
        )
        _reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
        writer.write(hello)
        await writer.drain()
        # Flow control allows 2 GiB; the upstream would send 200 MiB if it could.
        await asyncio.sleep(2.0)
        (client,) = [c for c in proxy._clients if c.transport is not None]
        buffered = client.transport.get_write_buffer_size()
        assert buffered < 4 * 1024 * 1024, buffered
        assert 0 < up.big_sent < 100  # it started, and is held back, not sent into our memory
        writer.close()

    _run(body)


def _frames(data: bytes) -> list[tuple[int, int, int, bytes]]:
    out, i = [], 0
    while i < len(data):
        n = int.from_bytes(data[i : i + 3], "big")
        sid = int.from_bytes(data[i + 5 : i + 9], "big")
        out.append((data[i + 3], data[i + 4], sid, data[i + 9 : i + 9 + n]))
        i += 9 + n
    return out


def _relay_server_side(proxy: GrpcProxy, client: bytes, server: bytes, chunk: int) -> bytes:
    from modelops.drift.grpc_proxy import _Observer
    from modelops.drift.h2_wire import FrameReader

    obs = _Observer(proxy)
    creader, sreader = FrameReader(preface=True), FrameReader(preface=False)
    for i in range(0, len(client), chunk):
        creader.feed(client[i : i + chunk], obs.requests)
    out: list = []
    for i in range(0, len(server), chunk):
        sreader.feed(server[i : i + chunk], obs.responses, out)
    assert sreader.at_boundary()
    return b"".join(bytes(piece) for piece in out)


@pytest.mark.parametrize("chunk", [1, 2, 5, 9, 13, 4096])
def test_model_infer_answers_gain_version_and_epoch_and_are_classified(chunk, event_loop_kind):
    from modelops.drift.figures import RolloutFigures

    client, server, _ = _conversation("fraud")
    figures = RolloutFigures("e1")
    proxy = GrpcProxy(
        GrpcProxyConfig(model="fraud"), Offers(), CollectorRegistry(),
        lambda: figures, lambda: ("7", "e1"),
    )  # fmt: skip
    relayed = _relay_server_side(proxy, client, server, chunk)
    # The client decodes Triton's blocks plus the added fields with one table: in step.
    dec = hpack.Decoder()
    first_block: dict[int, dict[str, str]] = {}
    for ftype, _, sid, payload in _frames(relayed):
        if ftype == 0x1:
            fields = dict(dec.decode(payload))
            first_block.setdefault(sid, fields)
    for sid in (1, 3, 7):  # ModelInfer: answered, answered, refused (trailers only)
        assert first_block[sid]["x-modelops-version"] == "7"
        assert first_block[sid]["x-modelops-epoch"] == "e1"
    assert "x-modelops-version" not in first_block[5]  # ModelMetadata
    assert first_block[7]["grpc-status"] == "3"
    # Everything else is what Triton sent.
    strip = [f for f in _frames(relayed) if f[0] != 0x1]
    assert strip == [f for f in _frames(server) if f[0] != 0x1]
    # Two answered, one refused for a client's fault (INVALID_ARGUMENT).
    assert (figures.requests, figures.errors, figures.client_errors) == (3, 0, 1)


def test_without_metadata_the_bytes_pass_unchanged():
    client, server, _ = _conversation("fraud")
    proxy = GrpcProxy(GrpcProxyConfig(model="fraud"), Offers(), CollectorRegistry())
    for chunk in (1, 7, 4096):
        assert _relay_server_side(proxy, client, server, chunk) == server


def test_a_reader_that_gives_up_still_passes_every_byte():
    from modelops.drift.grpc_proxy import _Observer
    from modelops.drift.h2_wire import FrameReader, ObserveError

    client, _, _ = _conversation("fraud")
    proxy = GrpcProxy(
        GrpcProxyConfig(model="fraud"), Offers(), CollectorRegistry(), answer=lambda: ("7", "")
    )
    obs = _Observer(proxy)
    creader = FrameReader(preface=True)
    creader.feed(client, obs.requests)
    # A header block of stream 1 cut by a read, then a CONTINUATION of another stream.
    enc = hpack.Encoder()
    block = enc.encode([(":status", "200")])
    bad = _frame(0x4, 0, 0, b"") + _frame(0x1, 0, 1, block) + _frame(0x9, 0x4, 3, b"\x88")
    sreader, out = FrameReader(preface=False), []
    sreader.feed(bad[:12], obs.responses, out)
    with pytest.raises(ObserveError):
        sreader.feed(bad[12:], obs.responses, out)
    assert b"".join(bytes(p) for p in out) == bad


@pytest.mark.parametrize(
    ("status", "expected"), [(None, 0), (0, 200), (3, 400), (5, 400), (16, 400), (14, 500),
                             (13, 500), (4, 500), (2, 500), (8, 500)],
)  # fmt: skip
def test_grpc_status_classes(status, expected):
    from modelops.drift.grpc_proxy import status_class

    assert status_class(status) == expected
