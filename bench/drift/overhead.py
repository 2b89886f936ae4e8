"""Sidecar overhead: the same traffic straight to Triton and through the drift-monitor.

Starts tritonserver (nvidia-pytriton's binary, CPU, python backend, a model
that sums 20 features) and the sidecar as a subprocess (`python -m
modelops.cli drift-monitor`), then, for each placement, protocol and client
count, alternates direct and sidecar runs over several rounds so slow drifts
in machine load hit both sides alike. Clients are closed-loop (send, wait for
the answer, repeat) over keep-alive connections, with binary-tensor requests
as tritonclient sends them (``--json`` for plain JSON bodies).

Placements (``--placements``):

- ``unpinned``: every process may run on every core;
- ``pinned``: the sidecar on one core (the last), Triton (every thread of
  every process in its tree) and the load generator on the others, with
  ``sched_setaffinity`` (what ``taskset -a`` does). This is the deployment
  shape: the sidecar container with its own CPU.

Protocols: one function per protocol in :data:`PROTOCOLS` returns where to
send (direct and through the sidecar), what to send and how to drive the
load: ``http`` (raw HTTP/1.1, above) and ``grpc`` (``ModelInfer`` with the
tensor in ``raw_input_contents``, as tritonclient.grpc sends it; see
grpc_load.py), run in the same loop, so their rows land in the same table.

Each measurement alternates three targets: ``direct`` (Triton), ``relay``
(``relay.py``, a bare byte-forwarding relay in Python: the floor any Python
sidecar pays) and ``sidecar``. Both the relay and the sidecar are placed
alike (pinned: both on the sidecar's core).

Reported: throughput (median over rounds), p50/p99 latency (pooled),
the ratios, the added latency, and the CPU time per request of the relay and
of the sidecar (independent of how many cores the machine has), with the
load average at the start and end of every measurement: on a shared machine
compare rows of one run only.

    python bench/drift/overhead.py [--seconds 5] [--rounds 3] [--clients 1,8]
        [--placements unpinned,pinned] [--protocols http,grpc]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shlex
import subprocess
import sys
import tempfile
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the repository: tests.support

from common import (
    MODEL,
    N_FEATURES,
    LoadResult,
    binary_infer_body,
    cpu_seconds,
    get_json,
    http_request,
    json_infer_body,
    machine,
    run_load,
    sidecar_process,
    write_model_repository,
)
from grpc_load import grpc_sidecar_args, grpc_targets, infer_messages, run_grpc_load
from tests.support.triton_server import TritonServer, free_ports

from modelops.drift.reference import build_reference

# (target name, concurrency, seconds) -> one measured run
Load = Callable[[str, int, float], Awaitable[LoadResult]]
TARGETS = ["direct", "relay", "sidecar"]


@dataclass
class Protocol:
    """How to load one protocol: ``load("direct" | "sidecar", clients, seconds)``."""

    name: str
    load: Load
    sidecar_args: tuple[str, ...] = ()


def _http_bodies(host: str, port: int, use_json: bool, batch: int, n: int = 4096) -> list[bytes]:
    rng = np.random.default_rng(0)
    out = []
    for _ in range(n):
        x = rng.normal(size=(batch, N_FEATURES)).astype(np.float32)
        if use_json:
            body, hl = json_infer_body(x), None
        else:
            body, hl = binary_infer_body(x)
        out.append(http_request(host, port, f"/v2/models/{MODEL}/infer", body, hl))
    return out


def http_protocol(triton: TritonServer, sidecar_port: int, args: argparse.Namespace) -> Protocol:
    targets = {
        "direct": ("127.0.0.1", triton.http_port),
        "relay": ("127.0.0.1", args.relay_http_port),
        "sidecar": ("127.0.0.1", sidecar_port),
        "before": ("127.0.0.1", args.before_port),
    }
    bodies = {k: _http_bodies(h, p, args.json, args.batch) for k, (h, p) in targets.items()}

    async def load(target: str, clients: int, seconds: float) -> LoadResult:
        h, p = targets[target]
        return await run_load(h, p, bodies[target], clients, seconds)

    return Protocol("http", load)


def grpc_protocol(triton: TritonServer, sidecar_port: int, args: argparse.Namespace) -> Protocol:
    """ModelInfer over gRPC, raw tensors (see grpc_load.py); the sidecar's gRPC port is
    ``args.grpc_port``, the relay in front of Triton's gRPC port."""
    targets = grpc_targets(triton.grpc_url, args.grpc_port)
    targets["relay"] = f"127.0.0.1:{args.relay_grpc_port}"
    targets["before"] = f"127.0.0.1:{args.before_grpc_port}"
    messages = infer_messages(args.batch)

    async def load(target: str, clients: int, seconds: float) -> LoadResult:
        return await run_grpc_load(targets[target], messages, clients, seconds)

    return Protocol("grpc", load)


# name -> factory(triton, sidecar HTTP port, parsed args).
PROTOCOLS: dict[str, Callable[[TritonServer, int, argparse.Namespace], Protocol]] = {
    "http": http_protocol,
    "grpc": grpc_protocol,
}


def _tree(pid: int) -> list[int]:
    """``pid`` and all its descendants."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            children.setdefault(ppid, []).append(int(entry))
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(children.get(p, []))
    return out


def pin(pid: int, cpus: set[int]) -> None:
    """Every thread of ``pid`` and its descendants onto ``cpus`` (like ``taskset -a -p``)."""
    for p in _tree(pid):
        try:
            tids = [int(t) for t in os.listdir(f"/proc/{p}/task")]
        except OSError:
            continue
        for tid in tids:
            with contextlib.suppress(OSError):  # a thread that just exited
                os.sched_setaffinity(tid, cpus)


@contextlib.contextmanager
def relay_process(routes: list[tuple[int, str]]) -> Iterator[subprocess.Popen[bytes]]:
    """relay.py listening on each (port, upstream host:port)."""
    argv = [sys.executable, str(Path(__file__).resolve().parent / "relay.py")]
    for port, target in routes:
        argv += [str(port), target]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE)
    try:
        assert proc.stdout is not None
        if proc.stdout.readline().strip() != b"ready":
            raise RuntimeError(f"relay.py did not start ({proc.wait()})")
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _load() -> str:
    return f"{os.getloadavg()[0]:.1f}"


def _pooled(results: list[LoadResult]) -> LoadResult:
    return LoadResult(
        requests=sum(r.requests for r in results),
        seconds=sum(r.seconds for r in results),
        latencies=np.concatenate([r.latencies for r in results]),
        errors=sum(r.errors for r in results),
    )


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=5.0, help="length of one measured run")
    ap.add_argument("--rounds", type=int, default=3, help="direct/sidecar alternations")
    ap.add_argument("--clients", default="1,8", help="comma-separated concurrency levels")
    ap.add_argument("--batch", type=int, default=1, help="rows per request")
    ap.add_argument("--json", action="store_true", help="plain JSON bodies instead of binary")
    ap.add_argument("--instances", type=int, default=2, help="Triton model instances")
    ap.add_argument("--method", default="ks", help="sidecar drift method")
    ap.add_argument("--window", type=int, default=1000, help="sidecar window (rows)")
    ap.add_argument("--placements", default="unpinned,pinned", help="unpinned and/or pinned")
    ap.add_argument("--protocols", default=",".join(PROTOCOLS), help="comma-separated")
    ap.add_argument("--output", help="also write the results as JSON here")
    ap.add_argument(
        "--sidecar-arg",
        action="append",
        default=[],
        help="extra flag for the sidecar under test (repeat; e.g. --sidecar-arg=--sample-rate=0.1)",
    )
    ap.add_argument(
        "--before",
        type=Path,
        help="another checkout's operator/ directory: its sidecar is measured too, as the "
        "'before' target of the same run (e.g. git archive BASE operator | tar -x -C DIR)",
    )
    args = ap.parse_args()
    clients = [int(c) for c in args.clients.split(",")]
    placements = args.placements.split(",")
    protocols = args.protocols.split(",")
    command = "python bench/drift/overhead.py " + shlex.join(sys.argv[1:])
    all_cpus = os.sched_getaffinity(0)
    if "pinned" in placements and len(all_cpus) < 2:
        raise SystemExit("pinned placement needs at least 2 CPUs")
    sidecar_cpu_set = {max(all_cpus)}
    rest = all_cpus - sidecar_cpu_set

    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-drift-") as tmp:
        tmpd = Path(tmp)
        repo = write_model_repository(tmpd / "repo", args.instances)
        ref_path = tmpd / "reference.json"
        build_reference(np.random.default_rng(1).normal(size=(10_000, N_FEATURES))).save(ref_path)
        print(f"machine: {machine()}", flush=True)
        with TritonServer(repo) as triton:
            ports = free_ports(8)
            port, admin, args.grpc_port, args.relay_http_port, args.relay_grpc_port = ports[:5]
            args.before_port, before_admin, args.before_grpc_port = ports[5:]
            extra = ("--model", MODEL, "--method", args.method, "--window", str(args.window))
            if "grpc" in protocols:
                extra += grpc_sidecar_args(triton.grpc_url, args.grpc_port)
            routes = [
                (args.relay_http_port, f"127.0.0.1:{triton.http_port}"),
                (args.relay_grpc_port, triton.grpc_url.rpartition("/")[2]),
            ]
            before_extra = extra[:6]
            if "grpc" in protocols:
                before_extra += grpc_sidecar_args(triton.grpc_url, args.before_grpc_port)
            with contextlib.ExitStack() as stack:
                sidecar = stack.enter_context(
                    sidecar_process(
                        triton.http_url, ref_path, port, admin, *extra, *args.sidecar_arg
                    )
                )
                relay = stack.enter_context(relay_process(routes))
                pids = {"relay": relay.pid, "sidecar": sidecar.pid}
                if args.before is not None:
                    before = stack.enter_context(
                        sidecar_process(
                            triton.http_url,
                            ref_path,
                            args.before_port,
                            before_admin,
                            *before_extra,
                            source=args.before.resolve(),
                        )
                    )
                    pids["before"] = before.pid
                    TARGETS.insert(2, "before")
                protos = [PROTOCOLS[p](triton, port, args) for p in protocols]
                triton_pid = triton.pid
                assert triton_pid is not None
                for placement in placements:
                    if placement == "pinned":
                        for pid in pids.values():
                            pin(pid, sidecar_cpu_set)
                        pin(triton_pid, rest)
                        os.sched_setaffinity(0, rest)
                    else:
                        for pid in pids.values():
                            pin(pid, all_cpus)
                        pin(triton_pid, all_cpus)
                        os.sched_setaffinity(0, all_cpus)
                    for proto in protos:
                        for c in clients:
                            rows.extend(_measure(proto, placement, c, args, pids))
                os.sched_setaffinity(0, all_cpus)
                drift = get_json(f"http://127.0.0.1:{admin}/drift")

    print()
    print(f"command: {command}")
    print(
        f"payload: {args.batch} x {N_FEATURES} FP32 per request, "
        f"{'JSON' if args.json else 'binary tensor'} body; Triton python backend, "
        f"{args.instances} instance(s); sidecar method={args.method} window={args.window}; "
        f"pinned: sidecar on CPU {sorted(sidecar_cpu_set)}, Triton + load on {sorted(rest)}"
    )
    print()
    header = (
        f"{'placement':<9} | {'proto':<5} | {'clients':>7} | {'target':<7} | {'req/s':>6} | "
        f"{'vs direct':>9} | {'p50':>8} | {'added p50':>9} | {'p99':>8} | {'added p99':>9} | "
        f"{'CPU/req':>8} | {'load':>9}"
    )
    print(header)
    print("-" * len(header))
    for row in rows:
        added50 = "" if row["target"] == "direct" else f"{row['added_p50_ms']:6.3f} ms"
        added99 = "" if row["target"] == "direct" else f"{row['added_p99_ms']:6.3f} ms"
        cpu = "" if row["target"] == "direct" else f"{row['cpu_us_per_request']:5.0f} us"
        print(
            f"{row['placement']:<9} | {row['protocol']:<5} | {row['clients']:>7} | "
            f"{row['target']:<7} | {row['rps']:>6.0f} | {row['throughput_ratio']:>9.2f} | "
            f"{row['p50_ms']:>5.3f} ms | {added50:>9} | {row['p99_ms']:>5.3f} ms | "
            f"{added99:>9} | {cpu:>8} | {row['load']:>9}"
        )
    print()
    print(
        f"sidecar saw {drift['samples']['total']} rows, dropped {drift['samples']['dropped']} "
        f"requests, evaluated {drift['window']['evaluations']} windows, drifted={drift['drifted']}"
    )
    if args.output:
        Path(args.output).write_text(
            json.dumps({"command": command, "machine": machine(), "rows": rows}, indent=1)
        )
    return 0


def _measure(
    proto: Protocol,
    placement: str,
    c: int,
    args: argparse.Namespace,
    pids: dict[str, int],
) -> list[dict[str, float | int | str]]:
    """One row per target; relay and sidecar rows compared with the direct runs
    of the same rounds (the targets alternate within each round)."""
    results: dict[str, list[LoadResult]] = {t: [] for t in TARGETS}
    cpu = dict.fromkeys(TARGETS, 0.0)
    load_start = _load()
    for _ in range(args.rounds):
        for name in TARGETS:
            pid = pids.get(name)
            before = cpu_seconds(pid) if pid else 0.0
            r = asyncio.run(proto.load(name, c, args.seconds))
            if pid:
                cpu[name] += cpu_seconds(pid) - before
            if r.errors:
                raise SystemExit(f"{proto.name} {name}: {r.errors} failed requests {r.statuses}")
            results[name].append(r)
            print(
                f"  {placement} {proto.name} clients={c} {name:<7} {r.throughput:8.0f} req/s "
                f"p50={r.pct(50) * 1e3:.3f} ms p99={r.pct(99) * 1e3:.3f} ms",
                flush=True,
            )
    load = f"{load_start}-{_load()}"
    d = _pooled(results["direct"])
    d_tp = float(np.median([r.throughput for r in results["direct"]]))
    rows: list[dict[str, float | int | str]] = []
    for name in TARGETS:
        s = _pooled(results[name])
        tp = float(np.median([r.throughput for r in results[name]]))
        rows.append(
            {
                "placement": placement,
                "protocol": proto.name,
                "clients": c,
                "target": name,
                "rps": tp,
                "throughput_ratio": tp / d_tp,
                "p50_ms": s.pct(50) * 1e3,
                "added_p50_ms": (s.pct(50) - d.pct(50)) * 1e3,
                "p99_ms": s.pct(99) * 1e3,
                "added_p99_ms": (s.pct(99) - d.pct(99)) * 1e3,
                "cpu_us_per_request": cpu[name] / max(s.requests, 1) * 1e6,
                "load": load,
            }
        )
    return rows


if __name__ == "__main__":
    sys.exit(main())
