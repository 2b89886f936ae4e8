"""Shared pieces of the drift benchmarks: a tiny Triton model, the sidecar process,
a lean HTTP/1.1 load generator and request bodies.

The load generator speaks raw HTTP/1.1 over asyncio streams (one keep-alive
connection per client) instead of using tritonclient or aiohttp: on a small
machine the client competes for the same cores as Triton and the sidecar, so
it must cost as little CPU per request as possible.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

REPO_ROOT = Path(__file__).resolve().parents[2]
MODEL = "sum20"
N_FEATURES = 20

_CONFIG = f"""name: "{MODEL}"
backend: "python"
max_batch_size: 256
input [ {{ name: "INPUT0", data_type: TYPE_FP32, dims: [ {N_FEATURES} ] }} ]
output [ {{ name: "OUTPUT0", data_type: TYPE_FP32, dims: [ 1 ] }} ]
instance_group [ {{ count: {{count}}, kind: KIND_CPU }} ]
"""

_MODEL_PY = """
import numpy as np
import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    def execute(self, requests):
        responses = []
        for request in requests:
            x = pb_utils.get_input_tensor_by_name(request, "INPUT0").as_numpy()
            y = x.astype(np.float32).sum(axis=-1, keepdims=True)
            responses.append(pb_utils.InferenceResponse([pb_utils.Tensor("OUTPUT0", y)]))
        return responses
"""


def write_model_repository(root: Path, instances: int = 1) -> Path:
    model = root / MODEL
    (model / "1").mkdir(parents=True, exist_ok=True)
    (model / "config.pbtxt").write_text(_CONFIG.replace("{count}", str(instances)))
    (model / "1" / "model.py").write_text(_MODEL_PY)
    return root


def binary_infer_body(x: np.ndarray) -> tuple[bytes, int]:
    """Body and header length in Triton's binary tensor format (tritonclient's default)."""
    raw = np.ascontiguousarray(x, dtype="<f4").tobytes()
    header = json.dumps(
        {
            "inputs": [
                {
                    "name": "INPUT0",
                    "shape": list(x.shape),
                    "datatype": "FP32",
                    "parameters": {"binary_data_size": len(raw)},
                }
            ],
            "outputs": [{"name": "OUTPUT0", "parameters": {"binary_data": True}}],
        },
        separators=(",", ":"),
    ).encode()
    return header + raw, len(header)


def json_infer_body(x: np.ndarray) -> bytes:
    return json.dumps(
        {
            "inputs": [
                {
                    "name": "INPUT0",
                    "shape": list(x.shape),
                    "datatype": "FP32",
                    "data": np.asarray(x, dtype=np.float32).reshape(-1).tolist(),
                }
            ]
        },
        separators=(",", ":"),
    ).encode()


def http_request(host: str, port: int, path: str, body: bytes, header_length: int | None) -> bytes:
    extra = f"Inference-Header-Content-Length: {header_length}\r\n" if header_length else ""
    return (
        f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\n"
        f"Content-Type: application/octet-stream\r\n{extra}Content-Length: {len(body)}\r\n\r\n"
    ).encode() + body


@dataclass
class LoadResult:
    requests: int
    seconds: float
    latencies: np.ndarray  # seconds
    errors: int = 0
    statuses: dict[int, int] = field(default_factory=dict)

    @property
    def throughput(self) -> float:
        return self.requests / self.seconds if self.seconds > 0 else 0.0

    def pct(self, q: float) -> float:
        return float(np.percentile(self.latencies, q)) if self.latencies.size else float("nan")


async def _client(
    host: str,
    port: int,
    requests: list[bytes],
    stop_at: float,
    lat: list[float],
    statuses: dict[int, int],
    offset: int,
) -> int:
    reader, writer = await asyncio.open_connection(host, port)
    n, i, errors = len(requests), offset, 0
    clock = time.perf_counter
    try:
        while clock() < stop_at:
            t0 = clock()
            writer.write(requests[i % n])
            i += 1
            head = await reader.readuntil(b"\r\n\r\n")
            status = int(head[9:12])
            length = 0
            for line in head.split(b"\r\n"):
                if line[:15].lower() == b"content-length:":
                    length = int(line[15:])
                    break
            if length:
                await reader.readexactly(length)
            lat.append(clock() - t0)
            statuses[status] = statuses.get(status, 0) + 1
            if status != 200:
                errors += 1
    finally:
        writer.close()
        with contextlib.suppress(Exception):
            await writer.wait_closed()
    return errors


async def run_load(
    host: str,
    port: int,
    requests: list[bytes],
    concurrency: int,
    seconds: float,
    warmup: float = 0.5,
) -> LoadResult:
    """``concurrency`` closed-loop clients for ``seconds`` (after ``warmup``)."""
    if warmup > 0:
        await run_load(host, port, requests, concurrency, warmup, warmup=0)
    lat: list[float] = []
    statuses: dict[int, int] = {}
    t0 = time.perf_counter()
    stop_at = t0 + seconds
    errors = await asyncio.gather(
        *(
            _client(host, port, requests, stop_at, lat, statuses, k * len(requests) // concurrency)
            for k in range(concurrency)
        )
    )
    elapsed = time.perf_counter() - t0
    return LoadResult(len(lat), elapsed, np.asarray(lat), sum(errors), statuses)


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process (and its reaped children), from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = sum(int(v) for v in fields[11:15])
    return ticks / os.sysconf("SC_CLK_TCK")


@contextlib.contextmanager
def sidecar_process(
    upstream: str,
    reference: Path,
    port: int,
    admin_port: int,
    *extra: str,
    source: Path | None = None,
) -> Iterator[subprocess.Popen[bytes]]:
    """The sidecar as a subprocess; ``source``: run the ``modelops`` package found
    there instead (another checkout's ``operator/`` directory, for before/after rows)."""
    env = None
    if source is not None:
        path = os.environ.get("PYTHONPATH", "")
        env = {**os.environ, "PYTHONPATH": f"{source}{os.pathsep}{path}"}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "modelops.cli",
            "drift-monitor",
            "--reference",
            str(reference),
            "--upstream",
            upstream,
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--admin-port",
            str(admin_port),
            "--log-level",
            "WARNING",
            *extra,
        ],
        cwd=REPO_ROOT,
        env=env,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"drift-monitor exited with {proc.returncode}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{admin_port}/healthz", timeout=1):
                    break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def get_json(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=5) as r:
        return json.loads(r.read())


def machine() -> str:
    load = os.getloadavg()
    return f"{os.cpu_count()} CPUs, load average {load[0]:.1f} (1 min) at start"
