"""Sidecar overhead: the same traffic straight to Triton and through the drift-monitor.

Starts tritonserver (nvidia-pytriton's binary, CPU, python backend, a model
that sums 20 features) and the sidecar as a subprocess (`python -m
modelops.cli drift-monitor`), then, for each client count, alternates direct
and sidecar runs over several rounds so slow drifts in machine load hit both
sides alike. Clients are closed-loop (send, wait for the answer, repeat) over
keep-alive connections, with binary-tensor requests as tritonclient sends
them (``--json`` for plain JSON bodies).

Reported: throughput (median over rounds), p50/p99 latency (pooled),
the ratios, the added latency, and the sidecar's own CPU time per request
(independent of how many cores the machine has).

    python bench/drift/overhead.py [--seconds 5] [--rounds 3] [--clients 1,8]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shlex
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

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

from modelops.drift.reference import build_reference
from modelops.triton.local_server import TritonServer, free_ports


def _bodies(host: str, port: int, use_json: bool, batch: int, n: int = 4096) -> list[bytes]:
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
    ap.add_argument("--output", help="also write the results as JSON here")
    args = ap.parse_args()
    clients = [int(c) for c in args.clients.split(",")]
    command = "python bench/drift/overhead.py " + shlex.join(sys.argv[1:])

    with tempfile.TemporaryDirectory(prefix="bench-drift-") as tmp:
        tmpd = Path(tmp)
        repo = write_model_repository(tmpd / "repo", args.instances)
        ref_path = tmpd / "reference.json"
        build_reference(np.random.default_rng(1).normal(size=(10_000, N_FEATURES))).save(ref_path)
        print(f"machine: {machine()}", flush=True)
        with TritonServer(repo) as triton:
            port, admin = free_ports(2)
            with sidecar_process(
                triton.http_url,
                ref_path,
                port,
                admin,
                "--model",
                MODEL,
                "--method",
                args.method,
                "--window",
                str(args.window),
            ) as sidecar:
                targets = {
                    "direct": ("127.0.0.1", triton.http_port),
                    "sidecar": ("127.0.0.1", port),
                }
                bodies = {k: _bodies(h, p, args.json, args.batch) for k, (h, p) in targets.items()}
                results: dict[int, dict[str, list[LoadResult]]] = {}
                sidecar_cpu: dict[int, tuple[float, int]] = {}
                for c in clients:
                    results[c] = {"direct": [], "sidecar": []}
                    cpu_total, req_total = 0.0, 0
                    for _ in range(args.rounds):
                        for name in ("direct", "sidecar"):
                            h, p = targets[name]
                            before = cpu_seconds(sidecar.pid)
                            r = asyncio.run(run_load(h, p, bodies[name], c, args.seconds))
                            if name == "sidecar":
                                cpu_total += cpu_seconds(sidecar.pid) - before
                                req_total += r.requests
                            if r.errors:
                                raise SystemExit(f"{name}: {r.errors} failed requests {r.statuses}")
                            results[c][name].append(r)
                            print(
                                f"  clients={c} {name:<7} {r.throughput:8.0f} req/s "
                                f"p50={r.pct(50) * 1e3:.3f} ms p99={r.pct(99) * 1e3:.3f} ms",
                                flush=True,
                            )
                    sidecar_cpu[c] = (cpu_total, req_total)
                drift = get_json(f"http://127.0.0.1:{admin}/drift")

    rows = []
    print()
    print(f"command: {command}")
    print(
        f"payload: {args.batch} x {N_FEATURES} FP32 per request, "
        f"{'JSON' if args.json else 'binary tensor'} body; Triton python backend, "
        f"{args.instances} instance(s); sidecar method={args.method} window={args.window}"
    )
    print()
    header = (
        f"{'clients':>7} | {'direct req/s':>12} | {'sidecar req/s':>13} | {'ratio':>5} | "
        f"{'direct p50':>10} | {'sidecar p50':>11} | {'added p50':>9} | "
        f"{'direct p99':>10} | {'sidecar p99':>11} | {'added p99':>9} | {'sidecar CPU/req':>15}"
    )
    print(header)
    print("-" * len(header))
    for c in clients:
        d, s = _pooled(results[c]["direct"]), _pooled(results[c]["sidecar"])
        d_tp = float(np.median([r.throughput for r in results[c]["direct"]]))
        s_tp = float(np.median([r.throughput for r in results[c]["sidecar"]]))
        cpu, nreq = sidecar_cpu[c]
        row = {
            "clients": c,
            "direct_rps": d_tp,
            "sidecar_rps": s_tp,
            "throughput_ratio": s_tp / d_tp,
            "direct_p50_ms": d.pct(50) * 1e3,
            "sidecar_p50_ms": s.pct(50) * 1e3,
            "added_p50_ms": (s.pct(50) - d.pct(50)) * 1e3,
            "direct_p99_ms": d.pct(99) * 1e3,
            "sidecar_p99_ms": s.pct(99) * 1e3,
            "added_p99_ms": (s.pct(99) - d.pct(99)) * 1e3,
            "sidecar_cpu_us_per_request": cpu / max(nreq, 1) * 1e6,
        }
        rows.append(row)
        print(
            f"{c:>7} | {d_tp:>12.0f} | {s_tp:>13.0f} | {row['throughput_ratio']:>5.2f} | "
            f"{row['direct_p50_ms']:>7.3f} ms | {row['sidecar_p50_ms']:>8.3f} ms | "
            f"{row['added_p50_ms']:>6.3f} ms | {row['direct_p99_ms']:>7.3f} ms | "
            f"{row['sidecar_p99_ms']:>8.3f} ms | {row['added_p99_ms']:>6.3f} ms | "
            f"{row['sidecar_cpu_us_per_request']:>12.0f} us"
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


if __name__ == "__main__":
    sys.exit(main())
