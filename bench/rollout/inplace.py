"""In-place rollouts: what they save, and what a 100% in-place shadow costs the live traffic.

1. Pods and GPUs requested during a gated rollout, InPlace vs Separate, for the
   same ModelDeployment (``--replicas`` replicas of ``--gpus`` GPUs each), from
   the operator's own decision and rendering (render/gating/slot_plan.place -> Layout ->
   the Deployments' nvidia.com/gpu limits): the shadow phase and the promotion.

2. Stable p50/p99 under a load that saturates the server, with the candidate
   loaded in the same Triton (explicit model control; modelops.commands.inplace)
   and the sidecar (its own process) mirroring 100% of the requests to it:

   - ``off``: no rollout (the candidate loaded, no copies);
   - ``shadow``: every request copied, no priority (``inPlace: {priority: false}``);
   - ``shadow+priority``: copies at Triton's lower priority level and shed first
     (``inPlace: {priority: true, liveLimit: N}``: no copy starts while N live
     requests are in flight to Triton).

   The model burns CPU (numpy) for about ``--burn-ms`` per request, one instance
   per version, so stable and candidate compete for the same cores, as two
   versions compete for one GPU. Reported: throughput, p50/p99 of the client
   requests, copies sent and shed, and the ratio to ``off``. Settings alternate
   over ``--rounds`` so machine-load drift hits them alike.

    python bench/rollout/inplace.py [--seconds 4] [--rounds 2] [--clients 4] [--burn-ms 4]
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
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "drift"))
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the repository: tests.support

from common import (
    MODEL,
    N_FEATURES,
    binary_infer_body,
    get_json,
    http_request,
    machine,
    run_load,
    sidecar_process,
)
from tests.support.triton_server import TritonServer, free_ports

from modelops.commands import inplace
from modelops.drift.reference import build_reference

CONFIG = f"""name: "{MODEL}"
backend: "python"
max_batch_size: 256
input [ {{ name: "INPUT0", data_type: TYPE_FP32, dims: [ {N_FEATURES} ] }} ]
output [ {{ name: "OUTPUT0", data_type: TYPE_FP32, dims: [ 1 ] }} ]
instance_group [ {{ count: 1, kind: KIND_CPU }} ]
"""

BURN_PY = """
import time
import numpy as np
import triton_python_backend_utils as pb_utils

BURN = {burn} / 1000.0
M = np.random.default_rng(0).normal(size=(96, 96)).astype(np.float32)


class TritonPythonModel:
    def execute(self, requests):
        out = []
        for r in requests:
            # CPU work, not a sleep: the two versions compete for the cores.
            end = time.thread_time() + BURN
            m = M
            while time.thread_time() < end:
                m = np.tanh(m @ M)
            x = pb_utils.get_input_tensor_by_name(r, "INPUT0").as_numpy()
            y = x.astype(np.float32).sum(axis=-1, keepdims=True)
            out.append(pb_utils.InferenceResponse([pb_utils.Tensor("OUTPUT0", y)]))
        return out
"""


# -- 1. pods and GPUs ---------------------------------------------------------------------


def gpus_requested(replicas: int, gpus: int) -> list[tuple[str, str, int, int]]:
    """(phase, placement, pods, GPUs) from the operator's decision and rendering."""
    from modelops.api.modeldeployment import ModelDeployment
    from modelops.render.gating.slot_plan import place
    from modelops.render.slots import deployment_key

    rows = []
    now = datetime(2026, 12, 7, 8, 0, tzinfo=UTC)
    for placement in ("Separate", "InPlace"):
        rollout: dict = {"strategy": "Shadow", "shadow": {"mirrorPercent": 100}}
        if placement == "InPlace":
            rollout["placement"] = "InPlace"
        md = ModelDeployment.model_validate(
            {
                "apiVersion": "modelops.io/v1alpha1",
                "kind": "ModelDeployment",
                "metadata": {"name": "fraud", "namespace": "ml", "uid": "u1", "generation": 1},
                "spec": {
                    "model": {"storageUri": "s3://models/fraud", "version": "8"},
                    "resources": {"gpu": {"count": gpus}},
                    "replicas": replicas,
                    "rollout": rollout,
                },
            }
        )
        stable = {
            "metadata": {"name": "fraud", "generation": 1},
            "spec": {"replicas": replicas},
            "status": {
                "observedGeneration": 1,
                "replicas": replicas,
                "updatedReplicas": replicas,
                "readyReplicas": replicas,
                "availableReplicas": replicas,
            },
        }
        children = {deployment_key("fraud", "a"): stable}
        previous = {"rollout": {"stable": "7", "stableSlot": "a"}, "servedVersion": "7"}
        memory = {
            f"fraud-{i}": {"gpuTotalBytes": 80 << 30, "gpuUsedBytes": 20 << 30}
            for i in range(replicas)
        }
        p = place(
            md,
            children=children,
            pods=[],
            trainings=[],
            previous=previous,
            figures=None,
            now=now,
            in_place=(2 << 30, memory),
        )
        layout = p.layout
        pods = (layout.stable_replicas or replicas) + (layout.candidate_replicas or 0)
        where = (p.decision.status.get("placement") if p.decision else None) or "Separate"
        rows.append(("shadow", f"{placement} -> {where}", pods, pods * gpus))
    return rows


# -- 2. stable latency during a 100% in-place shadow ---------------------------------------


def write_traffic(path: Path, doc: dict) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(doc))
    os.replace(tmp, path)


def settings(name: str, epoch: int, live_limit: int) -> dict:
    if name == "off":
        return {}
    in_place = (
        {"priority": True, "liveLimit": live_limit} if "priority" in name else {"priority": False}
    )
    return {
        "epoch": str(epoch),
        "candidate": {"version": "2", "inPlace": in_place},
        "mirrorPercent": 100,
        "agreement": {"mode": "RelativeTolerance", "tolerance": 0.001},
    }


def wait_epoch(admin: str, epoch: str) -> None:
    deadline = time.monotonic() + 15
    while get_json(admin + "/rollout")["epoch"] != epoch:
        if time.monotonic() > deadline:
            raise SystemExit(f"sidecar did not pick up epoch {epoch!r}")
        time.sleep(0.1)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=4.0, help="length of one measured run")
    ap.add_argument("--rounds", type=int, default=2, help="alternations of the settings")
    ap.add_argument("--clients", type=int, default=4, help="closed-loop clients (saturating)")
    ap.add_argument("--burn-ms", type=float, default=4.0, help="CPU per request in the model")
    ap.add_argument("--live-limit", type=int, default=1, help="inPlace.liveLimit with priority")
    ap.add_argument("--replicas", type=int, default=4)
    ap.add_argument("--gpus", type=int, default=1, help="GPUs per replica")
    args = ap.parse_args()
    command = "python bench/rollout/inplace.py " + shlex.join(sys.argv[1:])
    print(f"machine: {machine()}", flush=True)

    print()
    print(f"1. pods / GPUs requested during a Shadow rollout, {args.replicas} replicas x "
          f"{args.gpus} GPU, candidate 2 GiB on 80 GiB GPUs with 20 GiB used")  # fmt: skip
    print(f"{'phase':<8} | {'placement':<22} | {'pods':>4} | {'GPUs':>4}")
    for phase, where, pods, gpus in gpus_requested(args.replicas, args.gpus):
        print(f"{phase:<8} | {where:<22} | {pods:>4} | {gpus:>4}")

    print()
    print("2. stable latency, saturating closed-loop load, 100% in-place shadow")
    names = ["off", "shadow", "shadow+priority"]
    totals: dict[str, dict] = {n: {"lat": [], "req": 0, "sec": 0.0, "mirrored": 0, "shed": 0}
                               for n in names}  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="bench-inplace-") as tmp:
        tmpd = Path(tmp)
        repo = tmpd / "repo"
        code = BURN_PY.replace("{burn}", str(args.burn_ms))
        for name, version in ((MODEL, 1), (inplace.candidate_model(MODEL), 2)):
            (repo / name / str(version)).mkdir(parents=True)
            (repo / name / str(version) / "model.py").write_text(code)
        (repo / MODEL / "config.pbtxt").write_text(CONFIG)
        inplace.stage_candidate(repo, MODEL, 2, CONFIG)
        ref = tmpd / "reference.json"
        build_reference(np.random.default_rng(1).normal(size=(5_000, N_FEATURES))).save(ref)
        traffic = tmpd / "traffic.json"
        write_traffic(traffic, {})
        with TritonServer(repo, model_control="explicit", load_models=[MODEL]) as triton:
            inplace.load_candidate(triton.http_url, MODEL)
            port, admin_port = free_ports(2)
            admin = f"http://127.0.0.1:{admin_port}"
            extra = ("--model", MODEL, "--traffic-file", str(traffic), "--model-version", "1",
                     "--sample-rate", "0.01")  # fmt: skip
            rng = np.random.default_rng(0)
            reqs = []
            for _ in range(512):
                body, hl = binary_infer_body(rng.normal(size=(1, N_FEATURES)).astype(np.float32))
                reqs.append(http_request("127.0.0.1", port, f"/v2/models/{MODEL}/infer", body, hl))
            with sidecar_process(triton.http_url, ref, port, admin_port, *extra):
                epoch = 0
                for _ in range(args.rounds):
                    for name in names:
                        epoch += 1
                        doc = settings(name, epoch, args.live_limit)
                        write_traffic(traffic, doc)
                        wait_epoch(admin, doc.get("epoch", ""))
                        r = asyncio.run(
                            run_load("127.0.0.1", port, reqs, args.clients, args.seconds)
                        )
                        if r.errors:
                            raise SystemExit(f"{name}: {r.errors} failed requests {r.statuses}")
                        time.sleep(0.5)  # copies still in flight land
                        fig = get_json(admin + "/rollout")
                        t = totals[name]
                        t["lat"].append(r.latencies)
                        t["req"] += r.requests
                        t["sec"] += r.seconds
                        t["mirrored"] += fig["mirrored"]
                        t["shed"] += fig["mirrorDropped"]
                        print(f"  {name:<16} {r.throughput:6.0f} req/s  p50 {r.pct(50) * 1e3:6.1f}"
                              f" ms  p99 {r.pct(99) * 1e3:6.1f} ms  copies {fig['mirrored']}"
                              f" shed {fig['mirrorDropped']}", flush=True)  # fmt: skip
    print()
    print(f"command: {command}")
    print(f"Triton python backend on CPU, one instance per version, ~{args.burn_ms:g} ms CPU per "
          f"request; {args.clients} closed-loop clients; {args.rounds} rounds of "
          f"{args.seconds:g} s per setting")  # fmt: skip
    header = (f"{'setting':<16} | {'req/s':>6} | {'p50 ms':>7} | {'p99 ms':>7} | "
              f"{'p50 x off':>9} | {'p99 x off':>9} | {'copies':>6} | {'shed':>6}")  # fmt: skip
    print(header)
    print("-" * len(header))
    base50 = base99 = None
    for name, t in totals.items():
        lat = np.concatenate(t["lat"])
        p50, p99 = float(np.percentile(lat, 50)), float(np.percentile(lat, 99))
        if name == "off":
            base50, base99 = p50, p99
        assert base50 is not None and base99 is not None
        print(f"{name:<16} | {t['req'] / t['sec']:6.0f} | {p50 * 1e3:7.1f} | {p99 * 1e3:7.1f} | "
              f"{p50 / base50:9.2f} | {p99 / base99:9.2f} | {t['mirrored']:>6} | "
              f"{t['shed']:>6}")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
