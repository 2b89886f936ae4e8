"""Does drift sampling slow the proxy? Large bodies through the sidecar, watched and not.

The sidecar (``python -m modelops.cli drift-monitor``, a subprocess) in front
of a local upstream that reads each body and answers at once (Triton's own
time is not the question). ``--requests`` bodies of about ``--body-kib``
KiB are sent over ``--connections`` keep-alive connections, twice per
round: to the watched model (every body parsed and binned by the statistics
worker, or dropped and counted when it cannot keep up) and to an unwatched
one (the proxy only). Reported: wall time of each (median over rounds), the
ratio, and what the statistics did with the watched bodies.

Body kinds: ``json`` (KServe v2 JSON, the expensive case: ``json.loads``
holds the GIL for its whole call) and ``binary`` (tritonclient's default).
Issue 10's case is 320 x 1 MiB over 8 connections, which took 33.9 s
against 1.2 s before the statistics left the event loop.

    python bench/drift/stats_path.py [--requests 320] [--connections 8]
        [--body-kib 1000] [--rounds 3] [--kind json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shlex
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the repository: tests.support

from common import get_json, machine, sidecar_process
from tests.support.triton_server import free_ports

from modelops.drift.reference import build_reference

N_FEAT = 20


class _Sink(asyncio.Protocol):
    """Reads whole requests (Content-Length framing) and answers each with a tiny 200."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.t = transport
        self.buf = bytearray()
        self.need = -1

    def data_received(self, data: bytes) -> None:
        self.buf += data
        while True:
            if self.need < 0:
                i = self.buf.find(b"\r\n\r\n")
                if i < 0:
                    return
                head = bytes(self.buf[:i]).lower()
                j = head.find(b"content-length:")
                n = int(head[j + 15 :].split(b"\r\n", 1)[0]) if j >= 0 else 0
                del self.buf[: i + 4]
                self.need = n
            if len(self.buf) < self.need:
                return
            del self.buf[: self.need]
            self.need = -1
            self.t.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}")  # type: ignore[attr-defined]


def _serve_upstream(port: int, ready: threading.Event) -> None:
    async def main() -> None:
        await asyncio.get_running_loop().create_server(_Sink, "127.0.0.1", port)
        ready.set()
        await asyncio.Event().wait()

    asyncio.run(main())


def _body(kind: str, kib: int) -> tuple[bytes, str]:
    rng = np.random.default_rng(0)
    if kind == "binary":
        rows = kib * 1024 // (N_FEAT * 4)
        x = rng.normal(size=(rows, N_FEAT)).astype("<f4")
        header = json.dumps(
            {
                "inputs": [
                    {
                        "name": "X",
                        "shape": list(x.shape),
                        "datatype": "FP32",
                        "parameters": {"binary_data_size": x.nbytes},
                    }
                ]
            }
        ).encode()
        return header + x.tobytes(), f"Inference-Header-Content-Length: {len(header)}\r\n"
    x = np.round(rng.normal(size=(100, N_FEAT)), 6)
    rows = kib * 1024 * 100 // len(json.dumps(x.tolist()))
    x = np.round(rng.normal(size=(rows, N_FEAT)), 6)
    inp = {"name": "X", "shape": list(x.shape), "datatype": "FP64", "data": x.tolist()}
    body = json.dumps({"inputs": [inp]}).encode()
    while len(body) > kib * 1024:  # stay under the statistics cap: every body is a sample
        x = x[:-10]
        inp["shape"], inp["data"] = list(x.shape), x.tolist()
        body = json.dumps({"inputs": [inp]}).encode()
    return body, ""


async def _send(port: int, model: str, body: bytes, extra: str, n: int, conns: int) -> float:
    req = (
        f"POST /v2/models/{model}/infer HTTP/1.1\r\nHost: x\r\n{extra}"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode() + body

    async def one(count: int) -> None:
        r, w = await asyncio.open_connection("127.0.0.1", port)
        for _ in range(count):
            w.write(req)
            head = await r.readuntil(b"\r\n\r\n")
            assert head.startswith(b"HTTP/1.1 200"), head
            await r.readexactly(2)
        w.close()

    t0 = time.perf_counter()
    await asyncio.gather(*(one(n // conns) for _ in range(conns)))
    return time.perf_counter() - t0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--requests", type=int, default=320)
    ap.add_argument("--connections", type=int, default=8)
    ap.add_argument("--body-kib", type=int, default=1000, help="body size (under the 1 MiB cap)")
    ap.add_argument("--kind", choices=("json", "binary"), default="json")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--stats-cpu", default="0.5", help="the sidecar's --stats-cpu")
    args = ap.parse_args()
    print("command: python bench/drift/stats_path.py " + shlex.join(sys.argv[1:]))
    print(f"machine: {machine()}")
    body, extra = _body(args.kind, args.body_kib)
    up_port, port, admin = free_ports(3)
    ready = threading.Event()
    threading.Thread(target=_serve_upstream, args=(up_port, ready), daemon=True).start()
    ready.wait(10)
    with tempfile.TemporaryDirectory() as tmp:
        ref = Path(tmp) / "ref.json"
        build_reference(np.random.default_rng(1).normal(size=(5000, N_FEAT))).save(ref)
        upstream = f"http://127.0.0.1:{up_port}"
        extra_args = ("--model", "watched", "--stats-cpu", args.stats_cpu)
        with sidecar_process(upstream, ref, port, admin, *extra_args):
            times: dict[str, list[float]] = {"unwatched": [], "watched": []}
            for _ in range(args.rounds):
                for model in ("unwatched", "watched"):
                    t = asyncio.run(
                        _send(port, model, body, extra, args.requests, args.connections)
                    )
                    times[model].append(t)
                    print(f"  {model:<9} {t:6.2f} s", flush=True)
            time.sleep(1)
            doc = get_json(f"http://127.0.0.1:{admin}/drift")
    u, w = statistics.median(times["unwatched"]), statistics.median(times["watched"])
    print()
    print(
        f"{args.requests} x {len(body) / 1024:.0f} KiB {args.kind} bodies over "
        f"{args.connections} connections: unwatched {u:.2f} s, watched {w:.2f} s, "
        f"ratio {w / u:.2f}"
    )
    s = doc["samples"]
    print(
        f"watched bodies: {s['total']} rows binned, {s['dropped']} requests dropped "
        f"(queue full or worker over its CPU share), {s['skipped']} skipped"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
