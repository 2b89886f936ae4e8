"""Sidecar CPU per gRPC ModelInfer: plain relay, with answer metadata, and mirrored.

Starts tritonserver (the CPU ``sum20`` model of common.py) and the sidecar
three times in turn, each under the same closed-loop gRPC load
(tritonclient's encoding, grpc_load.py):

- ``plain``: no traffic file (the relay reads along: statistics, figures);
- ``named``: ``--model-version`` and a traffic file with an epoch: every
  answer gains ``x-modelops-version`` / ``x-modelops-epoch``;
- ``mirrored``: ``mirrorPercent: 100`` with the candidate's gRPC address set
  to the same Triton, so every call is sent twice and the answers compared.

Reported per configuration: calls, sidecar CPU seconds per call (utime +
stime from /proc, so independent of the machine's core count) and the
difference to the row above: ``mirrored`` minus ``named`` is the CPU one
mirrored request costs (grpcio's aio client, the comparison in the worker).

    python bench/drift/grpc_mirror.py [--seconds 5] [--clients 4]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the repository: tests.support

from common import (
    MODEL,
    N_FEATURES,
    cpu_seconds,
    get_json,
    machine,
    sidecar_process,
    write_model_repository,
)
from grpc_load import grpc_sidecar_args, infer_messages, run_grpc_load
from tests.support.triton_server import TritonServer, free_ports

from modelops.drift.reference import build_reference


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--clients", type=int, default=4)
    ap.add_argument("--batch", type=int, default=1)
    args = ap.parse_args()
    print(f"machine: {machine()}", flush=True)
    with tempfile.TemporaryDirectory(prefix="bench-grpc-mirror-") as tmp:
        tmpd = Path(tmp)
        repo = write_model_repository(tmpd / "repo", 2)
        ref = tmpd / "reference.json"
        build_reference(np.random.default_rng(1).normal(size=(10_000, N_FEATURES))).save(ref)
        messages = infer_messages(args.batch)
        with TritonServer(repo) as triton:
            grpc_address = triton.grpc_url.rpartition("/")[2]
            candidate = {"version": "8", "http": "http://127.0.0.1:9", "grpc": grpc_address}
            configs = {
                "plain": None,
                "named": {"epoch": "b"},
                "mirrored": {"epoch": "b", "mirrorPercent": 100, "candidate": candidate},
            }
            rows, previous = [], None
            for name, traffic in configs.items():
                port, admin, grpc_port = free_ports(3)
                extra = ["--model", MODEL, *grpc_sidecar_args(triton.grpc_url, grpc_port)]
                if traffic is not None:
                    path = tmpd / f"{name}.json"
                    path.write_text(json.dumps(traffic))
                    extra += ["--traffic-file", str(path), "--model-version", "7"]
                with sidecar_process(triton.http_url, ref, port, admin, *extra) as proc:
                    time.sleep(1.5)  # the traffic file is read once a second
                    target = f"127.0.0.1:{grpc_port}"
                    asyncio.run(run_grpc_load(target, messages, args.clients, 1.0, warmup=0))
                    cpu0 = cpu_seconds(proc.pid)
                    result = asyncio.run(
                        run_grpc_load(target, messages, args.clients, args.seconds, warmup=0)
                    )
                    time.sleep(1.0)  # mirrors and comparisons still in flight
                    cpu = cpu_seconds(proc.pid) - cpu0
                    doc = get_json(f"http://127.0.0.1:{admin}/rollout")
                per_call = cpu / result.requests * 1e6
                delta = "" if previous is None else f"{per_call - previous:+.0f}"
                rows.append((name, result.requests, result.errors, per_call, delta, doc))
                previous = per_call
    print(f"{'config':<10} {'calls':>7} {'errors':>6} {'CPU us/call':>12} {'delta':>7}  mirror")
    for name, n, errors, per_call, delta, doc in rows:
        mirror = f"mirrored {doc['mirrored']} compared {doc['compared']} agreed {doc['agreed']}"
        print(f"{name:<10} {n:>7} {errors:>6} {per_call:>12.0f} {delta:>7}  {mirror}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
