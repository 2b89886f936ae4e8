"""Gated rollouts under attack: evidence nobody can forge, steer or stall (issue 18).

The real operator against the real API server, real Triton and real sidecar
processes, as in e2e/test_gated_rollout.py, whose harness this module shares:
the pods are KWOK's, mapped to local sidecar processes by the sidecar map
(MODELOPS_SIDECAR_MAP). Why not real pods: each case needs hostile parties
beside a stable and a candidate version (a forging pod, a dripping pod,
abusive clients), and the one real node (2 CPUs) fits one Triton pod and a
candidate at most; what is under test here is the operator's handling of what
pods and clients send, which the mapped processes deliver over the same
HTTP the sidecars' pods would. The hostile parties are small HTTP servers in
the test: what an attacker's pod would run.

The zero-traffic case (progressDeadline with the reason) is
e2e/test_gated_rollout.py::test_zero_traffic_meets_the_progress_deadline_with_the_reason.
"""

from __future__ import annotations

import json
import socket
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from tests.support.cluster import Cluster, wait_for
from tests.support.md_watch import RolloutWatch
from tests.support.operator import OperatorProcess, get_md, wait_ready

from e2e import test_gated_rollout as gated
from e2e.test_gated_rollout import (
    SHADOW,
    Background,
    Node,
    SidecarProcess,
    gated_md,
    roll,
    rollout_of,
    set_mode,
)
from modelops.api.rollout import Analysis
from modelops.render.gating.analysis import Result, evaluate
from modelops.render.gating.build_inputs import merge_figures
from modelops.render.gating.decide import ANALYSIS_INTERVAL_S

pytestmark = [pytest.mark.cluster, pytest.mark.triton]

# The gated e2e's fixtures: its two Triton servers (module-scoped: started again for this
# module) and a sidecar process in front of each.
stable_triton = gated.stable_triton
candidate_triton = gated.candidate_triton
sidecars = gated.sidecars


# -- hostile parties -------------------------------------------------------------------------


class Server:
    """A raw HTTP server on a loopback port: ``answer(conn, request_head)`` per request."""

    def __init__(self, answer: Callable[[socket.socket, bytes], None]) -> None:
        self.answer = answer
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.connections = 0
        self.stop = threading.Event()
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while not self.stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self._one, args=(conn,), daemon=True).start()

    def _one(self, conn: socket.socket) -> None:
        with conn:
            conn.settimeout(10)
            head = b""
            try:
                while b"\r\n\r\n" not in head:
                    data = conn.recv(4096)
                    if not data:
                        return
                    head += data
                self.answer(conn, head)
            except OSError:
                return  # the operator hung up (its deadline): as it should

    def close(self) -> None:
        self.stop.set()
        self.sock.close()


def json_reply(conn: socket.socket, doc: dict[str, Any]) -> None:
    body = json.dumps(doc).encode()
    conn.sendall(
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n"
        b"Content-Length: %d\r\n\r\n%s" % (len(body), body)
    )


def forged_documents(epoch: str) -> dict[str, dict[str, Any]]:
    """Figures that add up on their own and together would promote any candidate: a
    stable side that mirrored 100,000 requests, all agreeing, and a candidate side that
    answered them all, fast and without an error."""
    n = 100_000
    fast = {"0.005": n, "0.01": n, "+Inf": n}
    return {
        "stable": {
            "epoch": epoch, "sidecar": "forged-s", "role": "stable", "requests": n,
            "errors": 0, "latencyBuckets": fast, "mirrored": n, "compared": n, "agreed": n,
        },
        "candidate": {
            "epoch": epoch, "sidecar": "forged-c", "role": "candidate", "requests": n,
            "errors": 0, "latencyBuckets": fast,
        },
    }  # fmt: skip


def current_epoch(traffic_file: Path) -> str:
    try:
        return json.loads(traffic_file.read_text()).get("epoch") or ""
    except (OSError, ValueError):
        return ""


class RealFigures(Background):
    """The real sidecars' `/rollout` documents of the current attempt, kept as they
    grow (to show what the forged figures would have done if they were summed)."""

    interval = 0.5

    def __init__(self, sidecars: dict[str, SidecarProcess], traffic_file: Path) -> None:
        super().__init__()
        self.sidecars, self.traffic_file = sidecars, traffic_file
        self.last: dict[str, dict[str, Any]] = {}

    def tick(self) -> None:
        epoch = current_epoch(self.traffic_file)
        if not epoch:
            return
        for version, sidecar in self.sidecars.items():
            with urllib.request.urlopen(f"{sidecar.admin}/rollout", timeout=5) as r:
                doc = json.loads(r.read())
            if doc.get("epoch") == epoch:
                self.last[version] = doc


def foreign_pod(name: str, md: str, version: str, slot: str) -> dict[str, Any]:
    """A pod anyone allowed to create pods in the namespace can make: the
    ModelDeployment's labels and annotations, on a simulated node."""
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "labels": {
                "app.kubernetes.io/name": "triton",
                "app.kubernetes.io/instance": md,
                "app.kubernetes.io/managed-by": "modelops",
                "modelops.io/model-deployment": md,
                "modelops.io/slot": slot,
            },
            "annotations": {"modelops.io/model-version": version},
        },
        "spec": {
            "nodeSelector": {"type": "kwok"},
            "tolerations": [{"operator": "Exists"}],
            "containers": [{"name": "triton", "image": "forger:1"}],
        },
    }


def foreign_replica_set(name: str, md: str, version: str, slot: str) -> dict[str, Any]:
    """The same pod made by a ReplicaSet of the attacker's (a controller, but not one of
    the ModelDeployment's). Its own labels do not carry the ModelDeployment's, so its
    Deployments do not adopt it; its pods do."""
    pod = foreign_pod(name, md, version, slot)
    template = {
        "metadata": pod["metadata"] | {"labels": {**pod["metadata"]["labels"], "forger": name}}
    }
    template["metadata"].pop("name")
    template["spec"] = pod["spec"]
    return {
        "apiVersion": "apps/v1",
        "kind": "ReplicaSet",
        "metadata": {"name": name, "labels": {"forger": name}},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"forger": name}},
            "template": template,
        },
    }


# -- (a) a pod the ModelDeployment does not own ----------------------------------------------


def test_figures_from_pods_it_does_not_own_cannot_promote_a_bad_candidate(
    cluster: Cluster,
    operator: OperatorProcess,
    namespace: str,
    sidecars: dict[str, SidecarProcess],
    candidate_triton,
):
    """Two foreign pods carry the ModelDeployment's labels (one bare, one made by the
    attacker's own ReplicaSet) and answer `/rollout` with figures that, summed in,
    would promote a candidate whose answers all differ. The owner check leaves them
    out: the candidate is rolled back on the real figures, and both pods are named in
    an EvidenceIgnored event and counted in modelops_evidence_ignored_pods_total."""
    set_mode(candidate_triton, "differ")
    name = "forged"
    traffic = sidecars["1"].traffic_file

    def forge(role: str) -> Callable[[socket.socket, bytes], None]:
        return lambda conn, _head: json_reply(conn, forged_documents(current_epoch(traffic))[role])

    forgers = {"stable": Server(forge("stable")), "candidate": Server(forge("candidate"))}
    cluster.apply(foreign_pod("forger-stable", name, "1", "a"), namespace)
    cluster.apply(foreign_replica_set("forger-cand", name, "2", "b"), namespace)

    def forger_pods() -> dict[str, str] | None:
        pods = cluster.core.list_namespaced_pod(namespace, label_selector="forger").items
        found = {p.metadata.name: "candidate" for p in pods}
        found["forger-stable"] = "stable"
        return found if len(found) == 2 else None

    by_pod = wait_for(forger_pods, timeout=60, what="the attacker's ReplicaSet's pod")
    extra = {f"{namespace}/{pod}": forgers[role].url for pod, role in by_pod.items()}
    try:
        with RealFigures({"1": sidecars["1"], "2": sidecars["2"]}, traffic) as real:
            final, _watch, _load = roll(
                cluster, namespace, name, sidecars, SHADOW, node_extra=extra
            )
        assert final["phase"] == "RolledBack" and final["stable"] == "1", final
        assert "minAgreement 0.9" in final["message"], final["message"]
    finally:
        for server in forgers.values():
            server.close()

    # The forgery was a real threat: summed in, it would have promoted the candidate.
    forged = forged_documents(real.last["1"]["epoch"])
    analysis = Analysis.model_validate(SHADOW["analysis"])
    honest = merge_figures({"s": real.last["1"]}, {"c": real.last["2"]})
    summed = merge_figures(
        {"s": real.last["1"], "forger-stable": forged["stable"]},
        {"c": real.last["2"], "forger-cand": forged["candidate"]},
    )
    assert evaluate(analysis, honest, mirroring=True).result is Result.FAIL
    assert evaluate(analysis, summed, mirroring=True).result is Result.PASS

    def ignored() -> list[str] | None:
        # A pod whose controller is no ReplicaSet the operator knows is left out at once,
        # and named as foreign once it is older than the grace a new pod's ReplicaSet
        # gets to arrive through the watch (60 s, render/evidence.py).
        messages = [
            e.message
            for e in cluster.core.list_namespaced_event(namespace).items
            if e.involved_object.name == name and e.reason == "EvidenceIgnored"
        ]
        named = all(any(f"pod {pod} " in m for m in messages) for pod in by_pod)
        return messages if named else None

    messages = wait_for(ignored, timeout=90, what="both foreign pods named in an event")
    assert any("no controller" in m for m in messages), messages
    assert any("is not a ReplicaSet of forged" in m for m in messages), messages
    # The namespace is this test's own: every count in it is this ModelDeployment's.
    counted = operator.metric("modelops_evidence_ignored_pods_total", namespace=namespace)
    assert counted >= 2, counted


# -- (b) clients cannot steer a verdict ------------------------------------------------------


class Abuse(Background):
    """A client that, once the candidate's attempt has begun, sends the stable sidecar
    what is not inference: GETs (on the infer path too) and infer calls Triton refuses
    (4xx)."""

    interval = 0.05

    def __init__(self, url: str, traffic_file: Path) -> None:
        super().__init__()
        self.url, self.traffic_file = url, traffic_file
        self.gets = self.bad_posts = self.refused = 0

    def _send(self, method: str, path: str, body: bytes | None = None) -> int:
        request = urllib.request.Request(self.url + path, data=body, method=method)
        request.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(request, timeout=5) as r:
                return r.status
        except urllib.error.HTTPError as err:
            return err.code

    def tick(self) -> None:
        if not current_epoch(self.traffic_file):
            return  # only within the attempt: every request it sends is in its figures
        model = "/v2/models/clf"
        for path in (model, f"{model}/ready", f"{model}/infer", f"{model}/config"):
            self._send("GET", path)
            self.gets += 1
        # Wrong input name, wrong shape: Triton answers 400.
        bad = {"inputs": [{"name": "NOPE", "shape": [1, 2], "datatype": "FP32", "data": [1, 2]}]}
        status = self._send("POST", f"{model}/infer", json.dumps(bad).encode())
        self.bad_posts += 1
        self.refused += 400 <= status < 500


# Where a candidate is judged; the figures of these looks are what a verdict follows.
ANALYSIS_PHASES = ("Shadow", "Canary")


def judged_on(watch: RolloutWatch, candidate: str) -> dict[str, Any]:
    """The last status.rollout.analysis with figures written while ``candidate`` was judged
    (the watch saw every status write; the verdict followed this look or a later one that
    the promotion wrote over).

    Only looks of the analysis phases count: once Promoting, the sidecars count a new
    epoch and a look may show its figures from zero for the same candidate."""
    looks = [
        r["analysis"]
        for r in watch.rollouts
        if r.get("candidate") == candidate
        and r.get("phase") in ANALYSIS_PHASES
        and ((r.get("analysis") or {}).get("stable") or {}).get("requests")
    ]
    assert looks, f"no analysis with figures written; phases {watch.phases}"
    return looks[-1]


def test_gets_and_requests_triton_refuses_do_not_move_a_verdict(
    cluster: Cluster,
    operator: OperatorProcess,
    namespace: str,
    sidecars: dict[str, SidecarProcess],
):
    """Beside the ordinary clients, another sends GETs (the infer path included) and infer
    calls Triton refuses with 400, as fast as it can. A 4xx is the client's mistake: it
    is reported apart (clientErrors) and gates nothing; a GET is not inference and is not
    counted at all. The good candidate is promoted as without them, and the stable
    version shows no errors for the abuse (which, counted, would have hidden a
    candidate's own errors behind the stable version's)."""
    name = "abused"
    # With one replica a passing look completes the promotion at once, leaving no
    # analysis in status, so the step lasts longer than one analysis interval: the look
    # after the first interval cannot end it and is written with its figures, whatever
    # the machine's speed. The watch sees every status write; the last look written in
    # Shadow is what the test reads.
    duration = f"{int(ANALYSIS_INTERVAL_S * 2.5)}s"
    rollout = {**SHADOW, "shadow": {"mirrorPercent": 50, "requests": 300, "duration": duration}}
    traffic = sidecars["1"].traffic_file
    with (
        Abuse(sidecars["1"].url, traffic) as abuse,
        RolloutWatch(cluster, namespace, name) as watch,
        RealFigures({"1": sidecars["1"]}, traffic) as real,
    ):
        final, _ready, load = roll(cluster, namespace, name, sidecars, rollout)
    assert final["phase"] == "Idle" and final["stable"] == "2", final
    assert abuse.bad_posts > 10 and abuse.refused == abuse.bad_posts, vars(abuse)
    # What the stable sidecar counted for the attempt: the refused calls apart, no error.
    doc = real.last["1"]
    assert doc["errors"] == 0 and 0 < doc["clientErrors"] <= abuse.bad_posts, doc
    assert doc["requests"] <= load.sent + abuse.bad_posts, (doc, load.sent, vars(abuse))
    seen = judged_on(watch, "2")
    stable = seen["stable"]
    # The refused calls are reported, apart; none counts as an error, on either side.
    assert 0 < stable.get("clientErrors", 0) <= abuse.bad_posts, seen
    assert stable["errors"] == 0 and seen["candidate"]["errors"] == 0, seen
    # Only inference calls count: the GETs (4 per refused call) are in no figure.
    assert stable["requests"] <= load.sent + abuse.bad_posts, (seen, load.sent, vars(abuse))
    assert abuse.gets > load.sent, "the GETs would have shown had they been counted"
    entry = get_md(cluster, namespace, name)["status"]["history"][0]
    assert (entry["version"], entry["outcome"]) == ("2", "Promoted")


# -- (c) a dripping pod stalls nobody --------------------------------------------------------


def drip(conn: socket.socket, _head: bytes) -> None:
    """A 200 answer announced as 1 MB, then one byte a second: every read gets a byte,
    so only a deadline on the whole exchange ends it."""
    conn.sendall(
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 1000000\r\n\r\n"
    )
    for byte in b'{"requests": ' + b"1" * 999_986:
        conn.sendall(bytes([byte]))
        time.sleep(1.0)


def plain_md(name: str, replicas: int) -> dict[str, Any]:
    body = gated_md(name, {"strategy": "Direct"})
    body["spec"]["replicas"] = replicas
    return body


def test_a_pod_that_drips_its_answer_stalls_no_other_reconcile(
    cluster: Cluster,
    operator: OperatorProcess,
    namespace: str,
    tmp_path: Path,
):
    """Every pod of one ModelDeployment (three stable, then a candidate; drift monitored;
    a gated rollout in analysis) answers the operator a byte a second. Meanwhile another
    ModelDeployment is scaled step by step: each change reaches its status
    (observedGeneration) as it would without the drip, the dripping one's own reconciles
    go on, and its status names the pods that did not answer in time."""
    dripper = Server(drip)
    name, other = "dripping", "steady"
    body = gated_md(name, SHADOW)
    body["spec"]["replicas"] = 3
    body["spec"]["driftMonitor"] = {
        "enabled": True,
        "reference": {"uri": "s3://models/clf/reference.npz"},
    }
    drips = SidecarProcess("1", dripper.url, tmp_path / "t.json", tmp_path / "unused.log")
    drips.admin_port = int(dripper.url.rsplit(":", 1)[1])  # every pod's "sidecar" drips
    try:
        with Node(cluster, namespace, name, {"1": drips, "2": drips}):
            cluster.apply(body, namespace)
            cluster.apply(plain_md(other, 1), namespace)
            wait_ready(cluster, namespace, name)
            wait_ready(cluster, namespace, other)
            body["spec"]["model"]["version"] = "2"
            cluster.apply(body, namespace)
            wait_for(
                lambda: rollout_of(cluster, namespace, name).get("phase") == "Shadow",
                timeout=90,
                what="the dripping ModelDeployment's candidate in analysis",
            )
            before = dripper.connections
            lags = []
            for replicas in (2, 3, 2, 1, 2):
                cluster.apply(plain_md(other, replicas), namespace)
                applied = time.monotonic()
                generation = get_md(cluster, namespace, other)["metadata"]["generation"]

                def observed(generation: int = generation) -> bool:
                    status = get_md(cluster, namespace, other).get("status") or {}
                    return status.get("observedGeneration", 0) >= generation

                wait_for(observed, timeout=30, interval=0.1, what=f"{other} at {replicas}")
                lags.append(time.monotonic() - applied)
                time.sleep(3)  # spread over the polls (rollout figures 5 s, drift 10 s)
            print(f"{other}: spec change -> status, while {name}'s pods drip: {lags}")
            assert dripper.connections > before, "the drip was not being asked meanwhile"
            # Without the drip a change shows within a second or two (one reconcile); a
            # reader held by a dripping pod would hold it for minutes.
            assert max(lags) < 10, lags

            def named() -> str | None:
                message = rollout_of(cluster, namespace, name).get("message") or ""
                return message if "did not answer in time" in message else None

            message = wait_for(named, timeout=60, what="the dripping pods named in status")
            assert f"{name}-" in message, message
    finally:
        dripper.close()
