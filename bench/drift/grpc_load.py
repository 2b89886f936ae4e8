"""The gRPC half of the drift-sidecar overhead benchmark (used by overhead.py).

Load: closed-loop clients, each on its own HTTP/2 connection (a channel with
a local subchannel pool), calling ``inference.GRPCInferenceService/ModelInfer``
with pre-serialised ``ModelInferRequest`` messages whose tensor is in
``raw_input_contents`` (what ``tritonclient.grpc`` sends). The client side
uses grpc.aio with bytes in and out, so no protobuf work is done per call:
on a small machine the load generator shares the cores with Triton and the
sidecar and must stay cheap.

Direct runs go to Triton's gRPC port, sidecar runs to the sidecar's gRPC
proxy, which forwards to that same Triton port.
"""

from __future__ import annotations

import asyncio
import time

import grpc
import numpy as np
from common import MODEL, N_FEATURES, LoadResult
from tritonclient.grpc import service_pb2

MODEL_INFER = "/inference.GRPCInferenceService/ModelInfer"


def grpc_sidecar_args(triton_grpc_url: str, port: int) -> tuple[str, ...]:
    """Flags that make the sidecar proxy Triton's gRPC port on ``port``."""
    return ("--grpc-upstream", triton_grpc_url, "--grpc-port", str(port))


def infer_messages(batch: int, n: int = 4096) -> list[bytes]:
    """Serialised ModelInferRequests, raw little-endian FP32 tensors of ``batch`` x 20."""
    rng = np.random.default_rng(0)
    out = []
    for _ in range(n):
        x = rng.normal(size=(batch, N_FEATURES)).astype("<f4")
        req = service_pb2.ModelInferRequest(model_name=MODEL)
        req.inputs.add(name="INPUT0", datatype="FP32", shape=[batch, N_FEATURES])
        req.outputs.add(name="OUTPUT0")
        req.raw_input_contents.append(x.tobytes())
        out.append(req.SerializeToString())
    return out


async def _client(
    address: str,
    messages: list[bytes],
    stop_at: float,
    lat: list[float],
    statuses: dict[int, int],
    offset: int,
) -> int:
    # A local subchannel pool gives every client its own connection, like the
    # HTTP load's one keep-alive connection per client.
    async with grpc.aio.insecure_channel(
        address, options=[("grpc.use_local_subchannel_pool", 1)]
    ) as channel:
        call = channel.unary_unary(MODEL_INFER)
        n, i, errors = len(messages), offset, 0
        clock = time.perf_counter
        while clock() < stop_at:
            t0 = clock()
            try:
                await call(messages[i % n], timeout=30)
                code = 0
            except grpc.aio.AioRpcError as exc:
                code = exc.code().value[0]
                errors += 1
            i += 1
            lat.append(clock() - t0)
            statuses[code] = statuses.get(code, 0) + 1
    return errors


async def run_grpc_load(
    address: str, messages: list[bytes], concurrency: int, seconds: float, warmup: float = 0.5
) -> LoadResult:
    """``concurrency`` closed-loop gRPC clients for ``seconds`` (after ``warmup``)."""
    if warmup > 0:
        await run_grpc_load(address, messages, concurrency, warmup, warmup=0)
    lat: list[float] = []
    statuses: dict[int, int] = {}
    t0 = time.perf_counter()
    stop_at = t0 + seconds
    errors = await asyncio.gather(
        *(
            _client(address, messages, stop_at, lat, statuses, k * len(messages) // concurrency)
            for k in range(concurrency)
        )
    )
    elapsed = time.perf_counter() - t0
    return LoadResult(len(lat), elapsed, np.asarray(lat), sum(errors), statuses)


def grpc_targets(triton_grpc_url: str, sidecar_grpc_port: int) -> dict[str, str]:
    return {"direct": triton_grpc_url, "sidecar": f"127.0.0.1:{sidecar_grpc_port}"}
