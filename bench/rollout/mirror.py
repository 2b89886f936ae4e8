"""The sidecar's CPU per request with no rollout, while mirroring, and while splitting.

Starts tritonserver (CPU, python backend, the 20-feature model of the drift
benchmarks) and the drift-monitor sidecar as a subprocess with a traffic file,
then alternates settings over several rounds so machine-load drift hits every
setting alike:

- ``off``: ``{}`` (no rollout: the hot path's one attribute check);
- ``mirror``: ``mirrorPercent`` (default 10) to a candidate;
- ``split``: ``canaryWeight`` (default 10) to a candidate.

The candidate is the same Triton's HTTP port (what is measured is the
sidecar's work: choosing, keeping the stable answer, sending the copy,
reading the candidate's answer, comparing in the worker thread). Clients
are closed-loop over keep-alive connections with binary-tensor bodies
(bench/drift/common.py). Reported: sidecar CPU per client request (utime +
stime of the process over the run / requests answered; "loop": its main
thread, the event loop, alone; the rest is the statistics and comparison
workers), the difference to ``off``, that difference per mirrored request,
and the /rollout figures. On a busy machine CPU per request rises when
throughput falls (fewer requests per wake-up), so compare settings within
one run, and prefer ``--percent 100`` for the cost of one mirror.

    python bench/rollout/mirror.py [--seconds 5] [--rounds 3] [--clients 4] [--percent 10]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shlex
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "drift"))
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the repository: tests.support

from common import (
    MODEL,
    N_FEATURES,
    binary_infer_body,
    cpu_seconds,
    get_json,
    http_request,
    machine,
    run_load,
    sidecar_process,
    write_model_repository,
)
from tests.support.triton_server import TritonServer, free_ports

from modelops.drift.reference import build_reference


def loop_cpu_seconds(pid: int) -> float:
    """utime + stime of the process's main thread: the sidecar's event loop."""
    fields = Path(f"/proc/{pid}/task/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def bodies(port: int, batch: int, n: int = 2048) -> list[bytes]:
    rng = np.random.default_rng(0)
    out = []
    for _ in range(n):
        body, hl = binary_infer_body(rng.normal(size=(batch, N_FEATURES)).astype(np.float32))
        out.append(http_request("127.0.0.1", port, f"/v2/models/{MODEL}/infer", body, hl))
    return out


def write_traffic(path: Path, doc: dict) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(doc))
    os.replace(tmp, path)  # atomic, as the kubelet swaps a ConfigMap volume


def settings(name: str, epoch: int, candidate: str, percent: float) -> dict:
    if name == "off":
        return {}
    return {
        "epoch": str(epoch),
        "candidate": {"version": "8", "http": candidate},
        "mirrorPercent": percent if name == "mirror" else 0,
        "canaryWeight": percent if name == "split" else 0,
        "agreement": {"mode": "RelativeTolerance", "tolerance": 0.001},
    }


def wait_epoch(admin: str, epoch: str) -> dict:
    deadline = time.monotonic() + 15
    while True:
        doc = get_json(admin + "/rollout")
        if doc["epoch"] == epoch:
            return doc
        if time.monotonic() > deadline:
            raise SystemExit(f"sidecar did not pick up epoch {epoch!r}: {doc}")
        time.sleep(0.1)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=5.0, help="length of one measured run")
    ap.add_argument("--rounds", type=int, default=3, help="alternations of the settings")
    ap.add_argument("--clients", type=int, default=4, help="closed-loop clients")
    ap.add_argument("--batch", type=int, default=1, help="rows per request")
    ap.add_argument("--percent", type=float, default=10.0, help="mirror percent / canary weight")
    ap.add_argument("--settings", default="off,mirror,split", help="comma-separated")
    args = ap.parse_args()
    command = "python bench/rollout/mirror.py " + shlex.join(sys.argv[1:])
    names = args.settings.split(",")
    totals = {n: {"cpu": 0.0, "loop": 0.0, "requests": 0, "mirrored": 0, "split": 0} for n in names}
    last: dict[str, dict] = {}
    with tempfile.TemporaryDirectory(prefix="bench-rollout-") as tmp:
        tmpd = Path(tmp)
        repo = write_model_repository(tmpd / "repo", instances=2)
        ref = tmpd / "reference.json"
        build_reference(np.random.default_rng(1).normal(size=(10_000, N_FEATURES))).save(ref)
        traffic = tmpd / "traffic.json"
        write_traffic(traffic, {})
        print(f"machine: {machine()}", flush=True)
        with TritonServer(repo) as triton:
            port, admin_port = free_ports(2)
            admin = f"http://127.0.0.1:{admin_port}"
            extra = ("--model", MODEL, "--traffic-file", str(traffic), "--model-version", "7")
            with sidecar_process(triton.http_url, ref, port, admin_port, *extra) as sidecar:
                requests = bodies(port, args.batch)
                epoch = 0
                for _ in range(args.rounds):
                    for name in names:
                        epoch += 1
                        doc = settings(name, epoch, triton.http_url, args.percent)
                        write_traffic(traffic, doc)
                        wait_epoch(admin, doc.get("epoch", ""))
                        before = cpu_seconds(sidecar.pid)
                        loop_before = loop_cpu_seconds(sidecar.pid)
                        r = asyncio.run(run_load("127.0.0.1", port, requests, args.clients,
                                                 args.seconds))  # fmt: skip
                        # Mirrors finish after their client requests: let them land.
                        time.sleep(0.5)
                        used = cpu_seconds(sidecar.pid) - before
                        loop_used = loop_cpu_seconds(sidecar.pid) - loop_before
                        if r.errors:
                            raise SystemExit(f"{name}: {r.errors} failed requests {r.statuses}")
                        fig = get_json(admin + "/rollout")
                        t = totals[name]
                        t["cpu"] += used
                        t["loop"] += loop_used
                        t["requests"] += r.requests
                        t["mirrored"] += fig["mirrored"]
                        t["split"] += fig["split"]
                        last[name] = fig
                        print(
                            f"  {name:<6} {r.throughput:7.0f} req/s  p50={r.pct(50) * 1e3:.3f} ms "
                            f"p99={r.pct(99) * 1e3:.3f} ms  sidecar CPU "
                            f"{used / max(r.requests, 1) * 1e6:.0f} us/req",
                            flush=True,
                        )
    print()
    print(f"command: {command}")
    print(
        f"payload: {args.batch} x {N_FEATURES} FP32 per request, binary tensor body; "
        f"{args.clients} closed-loop clients; Triton python backend, 2 instances; the candidate "
        f"is the same Triton; {args.rounds} rounds of {args.seconds:g} s per setting"
    )
    print()
    base = totals["off"]["cpu"] / max(totals["off"]["requests"], 1) if "off" in totals else None
    header = (
        f"{'setting':<8} | {'requests':>8} | {'mirrored':>8} | {'split':>6} | "
        f"{'CPU/request':>11} | {'loop/request':>12} | {'vs off':>8} | "
        f"{'per mirrored/split':>18}"
    )
    print(header)
    print("-" * len(header))
    for name, t in totals.items():
        per = t["cpu"] / max(t["requests"], 1)
        extra = copies = ""
        if base is not None and name != "off":
            extra = f"{(per - base) * 1e6:+6.0f} us"
            moved = t["mirrored"] or t["split"]
            if moved:
                copies = f"{(t['cpu'] - base * t['requests']) / moved * 1e6:.0f} us"
        print(
            f"{name:<8} | {t['requests']:>8} | {t['mirrored']:>8} | {t['split']:>6} | "
            f"{per * 1e6:>8.0f} us | {t['loop'] / max(t['requests'], 1) * 1e6:>9.0f} us | "
            f"{extra:>8} | {copies:>18}"
        )
    if "mirror" in last:
        m = last["mirror"]
        print()
        print(
            f"last mirror round: mirrored {m['mirrored']}, compared {m['compared']}, agreed "
            f"{m['agreed']}, dropped {m['mirrorDropped']}, errors {m['mirrorErrors']}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
