"""The KServe v2 gRPC proxy in front of Triton (``inference.GRPCInferenceService``).

Clients keep using Triton's gRPC port; the sidecar serves it and forwards
every call to Triton's own gRPC endpoint inside the pod. Messages travel as
bytes: the server side is a grpcio generic handler and the Triton side a
channel whose multi-callables have no serializers, so nothing is parsed or
re-serialised on the hot path (gRPC compression is undone and redone by
grpc's core, as for any gRPC hop).

What passes through:

- every method of the service, unary or streaming: the unary ones as
  unary calls, ``ModelStreamInfer`` (and any method this proxy does not
  know, e.g. ``grpc.health.v1.Health``) as a bidirectional stream, which
  carries any cardinality;
- request metadata (minus ``grpc-*`` and ``user-agent``, which belong to
  each hop), response initial and trailing metadata, status codes and
  details exactly as Triton set them;
- the client's deadline: the upstream call gets the time the client has
  left, so Triton stops working for a client that stopped waiting; a client
  that cancels cancels the upstream call too.

When Triton cannot be reached the client gets ``UNAVAILABLE`` (grpc's own
status for a failed connection), the same as talking to a stopped Triton.

Bounds (all configurable): messages over ``max_message_bytes`` are refused
with ``RESOURCE_EXHAUSTED`` in either direction; at most
``max_concurrent_rpcs`` calls are in flight (more get ``RESOURCE_EXHAUSTED``
at once), and each HTTP/2 connection may open at most
``max_streams_per_connection`` streams (the client queues the rest). So the
messages held in memory are at most ``max_concurrent_rpcs x
max_message_bytes``; a stream holds one message per direction at a time,
because a read from one side waits for the write to the other (HTTP/2 flow
control does the rest).

Observation: a successful ``ModelInfer`` whose first field names the watched
model (:func:`~modelops.drift.grpc_payload.leading_model_name`) is offered,
as bytes, to the statistics feeder, which parses it in its worker thread. In
``ModelStreamInfer`` each request message is paired with the next response
in order (Triton answers a non-decoupled model in order) and offered when
that response carries no error; a decoupled model's several responses per
request make this pairing approximate, which only affects which requests
are sampled.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import functools
import logging
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Protocol

import grpc
from prometheus_client import CollectorRegistry, Counter, Histogram
from tritonclient.grpc import service_pb2

from modelops.drift.grpc_payload import leading_model_name, model_infer_parser
from modelops.drift.payload import Parser

log = logging.getLogger("modelops.drift.grpc")

SERVICE = "inference.GRPCInferenceService"
MODEL_INFER = f"/{SERVICE}/ModelInfer"
MODEL_STREAM_INFER = f"/{SERVICE}/ModelStreamInfer"

_SERVICE_DESCRIPTOR = service_pb2.DESCRIPTOR.services_by_name["GRPCInferenceService"]
# Method name -> unary (neither side streams). From Triton's own descriptor,
# so a method added to the protocol is proxied with the right shape.
UNARY_METHODS: dict[str, bool] = {
    m.name: not (m.client_streaming or m.server_streaming) for m in _SERVICE_DESCRIPTOR.methods
}
METHOD_LABELS = (*UNARY_METHODS, "other")
CODE_LABELS = tuple(code.name for code in grpc.StatusCode)

# Request metadata that belongs to one hop: grpc sets these itself.
_HOP_KEYS = frozenset({"user-agent", "te", "content-type", "host"})
# Request messages of one stream kept for pairing with their responses.
_STREAM_PENDING = 64
# Localhost upstream: reconnect quickly after a Triton restart instead of
# grpc's default backoff of up to two minutes.
_RECONNECT_OPTIONS = (
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.min_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 1000),
)

Metadata = Sequence[tuple[str, str | bytes]]


class Feeder(Protocol):
    """The statistics feeder: takes a payload and the function that parses it."""

    def offer(self, payload: bytes, parse: Parser) -> None: ...


@dataclass(frozen=True)
class GrpcProxyConfig:
    upstream: str = "127.0.0.1:8001"  # Triton's gRPC endpoint, host:port
    model: str | None = None  # only this model's ModelInfer requests are observed; None = all
    max_message_bytes: int = 64 * 1024 * 1024
    max_concurrent_rpcs: int = 256
    max_streams_per_connection: int = 100
    # Cap on the messages one stream keeps waiting for their response.
    stream_pending: int = _STREAM_PENDING


class GrpcMetrics:
    """``modelops_proxy_grpc_*``: calls by method and status code (fixed label sets)."""

    def __init__(self, registry: CollectorRegistry | None) -> None:
        self.calls = Counter(
            "modelops_proxy_grpc_requests",
            "gRPC calls proxied to Triton, by method and final status code.",
            ["method", "code"],
            registry=registry,
        )
        self.duration = Histogram(
            "modelops_proxy_grpc_request_duration_seconds",
            "Time from receiving a gRPC call to its end (a stream: its whole life), by method.",
            ["method"],
            buckets=(0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10),
            registry=registry,
        )
        # Children resolved once: .labels() costs microseconds per call.
        self._calls = {(m, c): self.calls.labels(m, c) for m in METHOD_LABELS for c in CODE_LABELS}
        self._duration = {m: self.duration.labels(m) for m in METHOD_LABELS}

    def observe(self, method: str, code: grpc.StatusCode, seconds: float) -> None:
        self._calls[(method, code.name)].inc()
        self._duration[method].observe(seconds)


def forward_metadata(metadata: Metadata | None) -> tuple[tuple[str, str | bytes], ...]:
    """The client's metadata as sent on to Triton (hop-by-hop keys removed)."""
    if not metadata:
        return ()
    return tuple(
        (k, v)
        for k, v in metadata
        if k not in _HOP_KEYS and not k.startswith("grpc-") and not k.startswith(":")
    )


def _upstream_error(exc: grpc.aio.AioRpcError) -> tuple[grpc.StatusCode, str, Metadata]:
    return exc.code(), exc.details() or "", tuple(exc.trailing_metadata() or ())


class GrpcProxy:
    def __init__(
        self,
        config: GrpcProxyConfig,
        feeder: Feeder | None = None,
        registry: CollectorRegistry | None = None,
    ) -> None:
        self.config = config
        self.feeder = feeder
        self.metrics = GrpcMetrics(registry)
        self._parse = model_infer_parser(config.model)
        self._model = config.model.encode() if config.model is not None else None
        self._server: grpc.aio.Server | None = None
        self._channel: grpc.aio.Channel | None = None
        self._handlers: dict[str, grpc.RpcMethodHandler] = {}

    # -- lifecycle -------------------------------------------------------------

    async def start(self, host: str = "0.0.0.0", port: int = 8081) -> int:
        """Open the channel to Triton and serve; returns the bound port (0 picks one)."""
        cfg = self.config
        size = cfg.max_message_bytes
        self._channel = grpc.aio.insecure_channel(
            cfg.upstream,
            options=[
                ("grpc.max_send_message_length", size),
                ("grpc.max_receive_message_length", size),
                *_RECONNECT_OPTIONS,
            ],
        )
        for name, unary in UNARY_METHODS.items():
            self._handlers[f"/{SERVICE}/{name}"] = self._method_handler(f"/{SERVICE}/{name}", unary)
        self._server = grpc.aio.server(
            maximum_concurrent_rpcs=cfg.max_concurrent_rpcs,
            options=[
                ("grpc.max_send_message_length", size),
                ("grpc.max_receive_message_length", size),
                ("grpc.max_concurrent_streams", cfg.max_streams_per_connection),
                ("grpc.so_reuseport", 0),
            ],
        )
        self._server.add_generic_rpc_handlers((_Router(self),))
        bound = self._server.add_insecure_port(f"{_host(host)}:{port}")
        if bound == 0:
            raise OSError(f"cannot listen for gRPC on {host}:{port}")
        await self._server.start()
        return bound

    async def stop(self, grace: float = 5.0) -> None:
        if self._server is not None:
            await self._server.stop(grace)
            self._server = None
        if self._channel is not None:
            await self._channel.close()
            self._channel = None

    # -- handlers ----------------------------------------------------------------

    def handler(self, method: str) -> grpc.RpcMethodHandler:
        known = self._handlers.get(method)
        if known is not None:
            return known
        # Not part of Triton's inference service (e.g. grpc.health.v1): a
        # bidirectional stream carries a call of any shape. Built per call, so
        # client-chosen names never accumulate in memory.
        return self._method_handler(method, unary=False)

    def _method_handler(self, method: str, unary: bool) -> grpc.RpcMethodHandler:
        assert self._channel is not None
        label = method.rsplit("/", 1)[-1] if method.startswith(f"/{SERVICE}/") else "other"
        if unary:
            upstream_unary = self._channel.unary_unary(method)
            observe = method == MODEL_INFER and self.feeder is not None

            async def unary_call(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
                return await self._unary(label, upstream_unary, observe, request, context)

            return grpc.unary_unary_rpc_method_handler(unary_call)
        upstream_stream = self._channel.stream_stream(method)
        observe = method == MODEL_STREAM_INFER and self.feeder is not None

        # A partial of the async generator method: grpc recognises it as one
        # (no extra generator layer per message).
        stream_call = functools.partial(self._stream, label, upstream_stream, observe)
        return grpc.stream_stream_rpc_method_handler(stream_call)

    def _watched(self, message: bytes) -> bool:
        if self._model is None:
            return True
        name = leading_model_name(message)
        return name is None or name == self._model  # None: the parser decides

    async def _unary(
        self,
        label: str,
        upstream: grpc.aio.UnaryUnaryMultiCallable,
        observe: bool,
        request: bytes,
        context: grpc.aio.ServicerContext,
    ) -> bytes:
        t0 = time.perf_counter()
        call = upstream(
            request,
            metadata=forward_metadata(context.invocation_metadata()),
            timeout=context.time_remaining(),
        )
        try:
            response: bytes = await call
        except grpc.aio.AioRpcError as exc:
            code, details, trailing = _upstream_error(exc)
            self.metrics.observe(label, code, time.perf_counter() - t0)
            await context.abort(code, details, trailing)
            raise  # not reached: abort raises
        except asyncio.CancelledError:
            call.cancel()  # the client went away: so does the upstream call
            self.metrics.observe(label, grpc.StatusCode.CANCELLED, time.perf_counter() - t0)
            raise
        initial = await call.initial_metadata()
        if initial:
            await context.send_initial_metadata(initial)
        trailing = await call.trailing_metadata()
        if trailing:
            context.set_trailing_metadata(tuple(trailing))
        if observe and self._watched(request):
            assert self.feeder is not None
            self.feeder.offer(request, self._parse)
        self.metrics.observe(label, grpc.StatusCode.OK, time.perf_counter() - t0)
        return response

    async def _stream(
        self,
        label: str,
        upstream: grpc.aio.StreamStreamMultiCallable,
        observe: bool,
        requests: AsyncIterator[bytes],
        context: grpc.aio.ServicerContext,
    ) -> AsyncIterator[bytes]:
        t0 = time.perf_counter()
        code = grpc.StatusCode.OK
        call = upstream(
            metadata=forward_metadata(context.invocation_metadata()),
            timeout=context.time_remaining(),
        )
        pending: collections.deque[bytes | None] | None = (
            collections.deque(maxlen=self.config.stream_pending) if observe else None
        )

        async def pump() -> None:
            # Client -> Triton. call.write waits for Triton's flow control, so a
            # slow Triton slows the reads from the client.
            try:
                async for message in requests:
                    if pending is not None:
                        pending.append(message if self._watched(message) else None)
                    await call.write(message)
                await call.done_writing()
            except (grpc.aio.AioRpcError, asyncio.InvalidStateError):
                pass  # the upstream call ended: its status reaches the client below

        writer = asyncio.get_running_loop().create_task(pump())
        try:
            initial = await call.initial_metadata()
            if initial:
                await context.send_initial_metadata(initial)
            async for response in call:
                if pending:
                    message = pending.popleft()
                    # ModelStreamInferResponse.error_message is field 1: an error
                    # response starts with its tag (0x0A), a good one with field 2.
                    if message is not None and response[:1] != b"\n":
                        assert self.feeder is not None
                        self.feeder.offer(message, self._parse)
                yield response  # waits for the client's flow control
            trailing = await call.trailing_metadata()
            if trailing:
                context.set_trailing_metadata(tuple(trailing))
        except grpc.aio.AioRpcError as exc:
            code, details, trailing_md = _upstream_error(exc)
            context.set_code(code)
            context.set_details(details)
            if trailing_md:
                context.set_trailing_metadata(tuple(trailing_md))
        except asyncio.CancelledError:
            code = grpc.StatusCode.CANCELLED
            raise
        finally:
            writer.cancel()
            call.cancel()  # no-op when it already finished
            with contextlib.suppress(asyncio.CancelledError):
                await writer
            self.metrics.observe(label, code, time.perf_counter() - t0)


class _Router(grpc.GenericRpcHandler):
    def __init__(self, proxy: GrpcProxy) -> None:
        self.proxy = proxy

    def service(self, handler_call_details: grpc.HandlerCallDetails) -> grpc.RpcMethodHandler:
        return self.proxy.handler(handler_call_details.method)


def _host(host: str) -> str:
    return f"[{host}]" if ":" in host and not host.startswith("[") else host
