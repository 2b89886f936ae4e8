"""A gated rollout with real candidate pods on the real node, under real client traffic.

Nothing stands in for the kubelet or the network here (compare
e2e/test_gated_rollout.py, which maps simulated pods to local processes): the
shipped sample (adapted by tests/support/real_sample.py) serves version 1 on
node ``real-1`` with a Shadow strategy; version 2 is published to the S3 store
the pods pull from and the spec asks for it; the candidate's pods start on the
real node (init container pull, Triton load, the kubelet's probes); the kubelet
projects the ``<name>-traffic`` ConfigMap into the stable pods, whose sidecars
then mirror every request over the pod network to the candidate Service by its
DNS name; the operator reads both sides' figures from the pods' IPs and decides.
A client pod sends HTTP and gRPC inference through the Service the whole time
and prints every failure: a promotion (which retires the old stable pods under that
load), a rollback, or an abort under canary must cost it nothing; and an abort must
stop the candidate's traffic within 5 s of the spec change (its Triton's request
counter, read from the pod, stops moving).

The gates are looser than the defaults (errors within 0.05, agreement 0.9) so
the sequential verdicts come after about 150 requests rather than 800: the
client sends a few per second on this 2-core machine.
"""

from __future__ import annotations

import contextlib
import json
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from tests.support.client_session import client_session
from tests.support.cluster import Cluster, wait_for
from tests.support.md_watch import RolloutWatch
from tests.support.models import LINEAR_SIGNATURE, script_linear
from tests.support.operator import OperatorProcess, get_md, wait_ready
from tests.support.project_images import ProjectImages
from tests.support.real_node import RealNode
from tests.support.real_sample import (
    NAME,
    credentials_secret,
    publish_model,
    sample_for_the_real_node,
)
from tests.support.s3 import S3Server

from modelops.api.constants import LABEL_SLOT
from modelops.storage.publish import publish_version as publish
from modelops.triton.config import RuntimeSettings
from modelops.triton.packaging import package_torchscript

# Past the suite's 600 s: the first test also waits for version 1's cold start (image
# import, the pull from S3, Triton's load) and then the candidate's, on 2 busy cores.
pytestmark = [
    pytest.mark.cluster,
    pytest.mark.torch,
    pytest.mark.slow,
    # The two templates once seen here came from a second operator process left running
    # by a killed session (tests/unit/test_render_contested.py); the waits below are
    # bounded, so a hang costs at most this.
    pytest.mark.timeout(1500),
]

SHADOW = {
    "strategy": "Shadow",
    # Every request is mirrored: the most evidence per client request.
    "shadow": {"mirrorPercent": 100, "requests": 100},
    "analysis": {
        "minRequests": 100,
        "minAgreement": 0.9,
        "maxErrorRateIncrease": 0.05,
        # A bad candidate that never gathers evidence fails the test, not the wait.
        "progressDeadline": "6m",
    },
}

# The client pod's program: HTTP and gRPC inference in turn through the Service by its
# DNS name, a few per second, until `seconds` pass. It serves its tally (and every
# failure) on port 8080, which the test reads from the pod's IP at any time: the pod's
# log is not dependable here (kubelets of other local clusters on this machine share
# /var/log/pods and remove each other's pod log directories).
LOOP = """
import json, sys, threading, time
from http.server import BaseHTTPRequestHandler, HTTPServer
import numpy as np
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient

host, seconds = sys.argv[1], float(sys.argv[2])
rng = np.random.default_rng(2)
http = httpclient.InferenceServerClient(f"{host}:8000", network_timeout=30)
grpc = grpcclient.InferenceServerClient(f"{host}:8001")
sent = errors = 0
versions = {}
failures = []


class Tally(BaseHTTPRequestHandler):
    def do_GET(self):
        body = json.dumps({"sent": sent, "errors": errors, "versions": versions,
                           "failures": failures[-50:]}).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


threading.Thread(target=HTTPServer(("", 8080), Tally).serve_forever, daemon=True).start()
start = time.monotonic()
report = 0.0
while time.monotonic() - start < seconds:
    x = rng.standard_normal((8, 4)).astype(np.float32)
    try:
        if sent % 2:
            inp = grpcclient.InferInput("x", list(x.shape), "FP32")
            inp.set_data_from_numpy(x)
            answer = grpc.infer("fraud-detector", [inp], client_timeout=30)
            version = answer.get_response().model_version
        else:
            inp = httpclient.InferInput("x", list(x.shape), "FP32")
            inp.set_data_from_numpy(x)
            answer = http.infer("fraud-detector", [inp])
            version = answer.get_response().get("model_version")
        if answer.as_numpy("y").shape != (8, 2):
            raise ValueError(f"answer of shape {answer.as_numpy('y').shape}")
        versions[version] = versions.get(version, 0) + 1
    except Exception as err:
        errors += 1
        kind = "grpc" if sent % 2 else "http"
        failures.append(f"{kind} #{sent}: {type(err).__name__}: {err}"[:500])
        print(json.dumps({"error": f"{kind}: {type(err).__name__}: {err}"[:500], "at": sent}),
              flush=True)
    sent += 1
    if time.monotonic() >= report:
        print(json.dumps({"sent": sent, "errors": errors, "versions": versions}), flush=True)
        report = time.monotonic() + 2
    time.sleep(0.1)
print(json.dumps({"sent": sent, "errors": errors, "versions": versions, "done": True}),
      flush=True)
"""


class LoopClient:
    """The client pod on the real node; ``tally()`` reads its log."""

    def __init__(
        self, cluster: Cluster, namespace: str, node: RealNode, image: str, host: str
    ) -> None:
        self.cluster, self.namespace = cluster, namespace
        self.name = f"loop-{int(time.time() * 1000) % 10**8}"
        restricted = {
            "allowPrivilegeEscalation": False,
            "runAsNonRoot": True,
            "runAsUser": 1000,
            "capabilities": {"drop": ["ALL"]},
            "seccompProfile": {"type": "RuntimeDefault"},
        }
        self.pod = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": self.name, "namespace": namespace},
            "spec": node.pod_spec(
                restartPolicy="Never",
                containers=[
                    {
                        "name": "client",
                        "image": image,
                        "imagePullPolicy": "Never",
                        "command": ["python", "-c", LOOP, host, "1500"],
                        "securityContext": restricted,
                    }
                ],
            ),
        }

    def start(self) -> LoopClient:
        self.cluster.apply(self.pod)
        # Running and past its first answer: the service answers before the rollout starts.
        wait_for(lambda: self.tally().get("versions") or None, timeout=120, what="the loop client")
        return self

    def tally(self) -> dict[str, Any]:
        ip = self.cluster.core.read_namespaced_pod(self.name, self.namespace).status.pod_ip
        if not ip:
            return {}
        try:
            with urllib.request.urlopen(f"http://{ip}:8080/", timeout=5) as answer:
                return json.loads(answer.read(1 << 20))
        except OSError:
            return {}

    def failures(self) -> list[str]:
        return list(self.tally().get("failures", []))

    def phase(self) -> str:
        return self.cluster.core.read_namespaced_pod(self.name, self.namespace).status.phase

    def stop(self) -> None:
        self.cluster.core.delete_namespaced_pod(self.name, self.namespace, grace_period_seconds=0)


def rollout_of(md: dict[str, Any]) -> dict[str, Any]:
    return (md.get("status") or {}).get("rollout") or {}


@contextlib.contextmanager
def serving_version_one(
    cluster: Cluster, real_node: RealNode, pod_store: S3Server, work: Path, rollout: dict[str, Any]
) -> Iterator[tuple[str, dict[str, Any]]]:
    """Version 1 of the sample served by one pod on the real node, pinned by spec, its
    rollouts as ``rollout`` says; (namespace, body), the namespace deleted afterwards."""
    publish_model(pod_store, work, seed=11)
    namespace = f"realgate-{int(time.time() * 1000) % 10**8}"
    cluster.kubectl("create", "namespace", namespace)
    body = sample_for_the_real_node(namespace, real_node)
    body["spec"]["model"]["version"] = "1"
    body["spec"]["rollout"] = {**body["spec"]["rollout"], **rollout}
    # One replica, not scaled: there is no metrics adapter for the queue-time metric
    # here, and the 2-core machine holds one stable and one candidate pod.
    body["spec"].pop("autoscaling", None)
    body["spec"]["replicas"] = 1
    # The real node has this machine's 2 CPUs, and a candidate runs beside the stable pod:
    # Triton and the sidecar ask for little (each pod still reserves the 1 CPU of its
    # model-pull init container).
    body["spec"]["resources"]["cpu"] = "300m"
    body["spec"]["driftMonitor"]["resources"] = {
        "requests": {"cpu": "100m", "memory": "384Mi"},
        "limits": {"cpu": "1", "memory": "384Mi"},
    }
    try:
        cluster.apply(credentials_secret(namespace, pod_store))
        cluster.apply(body)
        wait_ready(cluster, namespace, NAME, timeout=420)
        wait_for(
            lambda: rollout_of(get_md(cluster, namespace, NAME)).get("stable") == "1",
            timeout=60,
            what="version 1 stable",
        )
        yield namespace, body
    finally:
        cluster.kubectl("delete", "namespace", namespace, "--wait=false", check=False)


@pytest.fixture(scope="module")
def served(
    cluster: Cluster,
    operator: OperatorProcess,
    real_node: RealNode,
    project_images: ProjectImages,
    pod_store: S3Server,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[str, dict[str, Any]]]:
    """Version 1 served on the real node with a Shadow strategy, pinned by spec."""
    work = tmp_path_factory.mktemp("v1")
    with serving_version_one(cluster, real_node, pod_store, work, SHADOW) as served:
        yield served


def publish_version(store: S3Server, work: Path, seed: int) -> str:
    """Package a Linear(4, 2) with ``seed``'s weights as the store's next version."""
    script_linear(work / "linear.pt", seed=seed)
    packaged = package_torchscript(
        work / "linear.pt",
        work / "repo",
        NAME,
        LINEAR_SIGNATURE,
        RuntimeSettings(instance_kind="cpu"),
    )
    number = publish(
        packaged.model_dir / str(packaged.version),
        f"s3://models/{NAME}",
        s3_client=store.client(),
    )
    return str(number)


def roll_out(
    cluster: Cluster,
    namespace: str,
    body: dict[str, Any],
    store: S3Server,
    work: Path,
    client: LoopClient,
    seed: int,
) -> tuple[str, dict[str, Any], RolloutWatch, float]:
    """Publish a version with ``seed``'s weights, ask for it, wait for the verdict; returns
    (version, final rollout, the watch that saw every status write, seconds from
    published to verdict)."""
    with RolloutWatch(cluster, namespace, NAME) as watch:
        published = time.monotonic()
        version = publish_version(store, work, seed)
        body["spec"]["model"]["version"] = version
        cluster.apply(body)
        watch.wait(
            lambda r: r.get("candidate") == version,
            timeout=120,
            what=f"version {version} to start as a candidate",
        )
        # Cold start of the candidate's pod (pull, Triton's load) and ~150 requests; the
        # verdict is what comes after the candidate started, not the state before it.
        final = watch.wait(
            lambda r: r.get("phase") in ("Idle", "RolledBack") and not r.get("candidate"),
            timeout=480,
            what=f"a verdict on {version}",
            since=watch.matched + 1,
        )
        elapsed = time.monotonic() - published
        assert client.phase() == "Running", f"the client pod stopped: {client.tally()}"
    return version, final, watch, elapsed


def loop_client(
    cluster: Cluster, namespace: str, node: RealNode, images: ProjectImages
) -> LoopClient:
    """A client of the ModelDeployment's Service by its DNS name, on the real node."""
    host = f"{NAME}.{namespace}.svc.cluster.local"
    return LoopClient(cluster, namespace, node, images.operator, host)


def slot_pods(cluster: Cluster, namespace: str, slot: str) -> list[str]:
    """The pods of ``slot`` that still exist (terminating ones included)."""
    return [
        f"pod/{p.metadata.name}"
        for p in cluster.core.list_namespaced_pod(
            namespace, label_selector=f"modelops.io/model-deployment={NAME},{LABEL_SLOT}={slot}"
        ).items
    ]


def candidate_objects(cluster: Cluster, namespace: str, slot: str) -> list[str]:
    pods = slot_pods(cluster, namespace, slot)
    services = [
        f"service/{s.metadata.name}"
        for s in cluster.core.list_namespaced_service(namespace).items
        if s.metadata.name == f"{NAME}-candidate"
    ]
    return pods + services


def test_a_good_candidate_on_real_pods_is_promoted_with_zero_client_errors(
    cluster: Cluster,
    served: tuple[str, dict[str, Any]],
    pod_store: S3Server,
    real_node: RealNode,
    project_images: ProjectImages,
    tmp_path: Path,
) -> None:
    namespace, body = served
    old_slot = rollout_of(get_md(cluster, namespace, NAME))["stableSlot"]
    with client_session(loop_client(cluster, namespace, real_node, project_images)) as session:
        client = session.client
        # Same weights as version 1: the candidate agrees on every mirrored request.
        version, final, watch, elapsed = roll_out(
            cluster, namespace, body, pod_store, tmp_path, client, seed=11
        )
        print(f"version {version} published -> promoted on real pods: {elapsed:.1f}s")
        assert final["phase"] == "Idle" and final["stable"] == version, final
        # The promoted pods answer the clients now.
        wait_for(
            lambda: client.tally().get("versions", {}).get(version, 0) >= 10,
            timeout=90,
            what=f"the client answered by version {version}",
        )
        # The promotion retires the old stable pods (preStop sleep, the sidecar's drain,
        # Triton's stop) while the client keeps sending: they must be gone, under load.
        retired = time.monotonic()
        wait_for(
            lambda: slot_pods(cluster, namespace, old_slot) == [] or None,
            timeout=120,
            what=f"the retired stable pods of slot {old_slot} gone",
        )
        print(f"old stable pods gone {time.monotonic() - retired:.1f}s after the verdict")
        assert client.phase() == "Running"
    session.assert_unharmed(min_sent=151)
    assert "Shadow" in watch.phases, watch.phases
    assert set(watch.ready) == {"True"}, "Ready dropped during the rollout"
    md = get_md(cluster, namespace, NAME)
    assert md["status"]["servedVersion"] == version, md["status"]
    entry = md["status"]["history"][0]
    assert (entry["version"], entry["outcome"]) == (version, "Promoted"), entry
    assert "agreement" in entry["reason"], entry
    pods = [
        p
        for p in cluster.core.list_namespaced_pod(
            namespace, label_selector=f"modelops.io/model-deployment={NAME}"
        ).items
        if p.metadata.deletion_timestamp is None
    ]
    assert pods and all(p.spec.node_name == real_node.name for p in pods)
    assert {(p.metadata.annotations or {}).get("modelops.io/model-version") for p in pods} == {
        version
    }


def test_a_bad_candidate_on_real_pods_is_rolled_back_and_goes_away(
    cluster: Cluster,
    served: tuple[str, dict[str, Any]],
    pod_store: S3Server,
    real_node: RealNode,
    project_images: ProjectImages,
    tmp_path: Path,
) -> None:
    namespace, body = served
    stable = rollout_of(get_md(cluster, namespace, NAME))
    with client_session(loop_client(cluster, namespace, real_node, project_images)) as session:
        # Different weights: the argmax of some of every 8 rows differs.
        version, final, watch, elapsed = roll_out(
            cluster, namespace, body, pod_store, tmp_path, session.client, seed=99
        )
        print(f"version {version} published -> rolled back on real pods: {elapsed:.1f}s")
        assert final["phase"] == "RolledBack" and final["stable"] == stable["stable"], final
        assert "minAgreement 0.9" in final["message"], final["message"]
        candidate_slot = "b" if stable["stableSlot"] == "a" else "a"
        gone = wait_for(
            lambda: candidate_objects(cluster, namespace, candidate_slot) == [] or None,
            timeout=120,
            what="the candidate's pods and Service gone",
        )
        assert gone
    session.assert_unharmed()
    assert set(session.tally["versions"]) == {stable["stable"]}, session.tally
    assert set(watch.ready) == {"True"}, "Ready dropped during the rollout"
    md = get_md(cluster, namespace, NAME)
    assert md["status"]["servedVersion"] == stable["stable"]
    entry = md["status"]["history"][0]
    assert (entry["version"], entry["outcome"]) == (version, "RolledBack"), entry


def triton_requests(ip: str) -> float | None:
    """Inference requests the Triton of the pod at ``ip`` has answered (its metrics
    port); None when it does not answer (gone)."""
    try:
        with urllib.request.urlopen(f"http://{ip}:8002/metrics", timeout=2) as answer:
            text = answer.read(4 << 20).decode()
    except OSError:
        return None
    total = 0.0
    for line in text.splitlines():
        if line.startswith("nv_inference_request_success{") and f'model="{NAME}"' in line:
            total += float(line.rsplit(" ", 1)[1])
    return total


def test_an_abort_under_canary_stops_candidate_traffic_within_5s_with_no_client_error(
    cluster: Cluster,
    served: tuple[str, dict[str, Any]],
    pod_store: S3Server,
    real_node: RealNode,
    project_images: ProjectImages,
    tmp_path: Path,
) -> None:
    namespace, body = served
    stable = rollout_of(get_md(cluster, namespace, NAME))
    candidate_slot = "b" if stable["stableSlot"] == "a" else "a"
    rollout = {
        k: v
        for k, v in body["spec"]["rollout"].items()
        if k not in ("strategy", "shadow", "analysis", "control")
    }
    # Half of the requests go to the candidate; no verdict before the abort (the step and
    # the gates want far more requests than the test sends).
    body["spec"]["rollout"] = {
        **rollout,
        "strategy": "Canary",
        "canary": {"steps": [{"weight": 50, "requests": 100000}]},
        "analysis": {"minRequests": 100000, "progressDeadline": "6m"},
    }
    with (
        client_session(loop_client(cluster, namespace, real_node, project_images)) as session,
        RolloutWatch(cluster, namespace, NAME) as watch,
    ):
        client = session.client
        version = publish_version(pod_store, tmp_path, seed=11)
        body["spec"]["model"]["version"] = version
        cluster.apply(body)
        watch.wait(
            lambda r: r.get("candidate") == version and r.get("phase") == "Canary",
            timeout=300,
            what=f"version {version} in its canary step",
        )

        def canary_serving() -> str | None:
            for pod in cluster.core.list_namespaced_pod(
                namespace,
                label_selector=f"modelops.io/model-deployment={NAME},{LABEL_SLOT}={candidate_slot}",
            ).items:
                ip = pod.status.pod_ip
                if ip and (triton_requests(ip) or 0) >= 10:
                    return str(ip)
            return None

        # The candidate's cold start, then live requests split to it.
        ip = wait_for(canary_serving, timeout=300, interval=1, what="the canary answering")
        count = triton_requests(ip)
        patched = time.monotonic()
        cluster.custom.patch_namespaced_custom_object(
            "modelops.io",
            "v1alpha1",
            namespace,
            "modeldeployments",
            NAME,
            {"spec": {"rollout": {"control": {"abort": version}}}},
        )
        # The candidate's Triton counter from the patch on: the last time it moved (the
        # end of the read that saw it move: an upper bound on the last request's arrival).
        last_change = patched
        while time.monotonic() - max(last_change, patched) < 15:
            now = triton_requests(ip)
            if now is None:
                break  # the pod is gone: nothing answers through it any more
            if now != count:
                count, last_change = now, time.monotonic()
            time.sleep(0.2)
        stopped = max(0.0, last_change - patched)
        print(f"abort under canary: candidate traffic stopped {stopped:.1f}s after the patch")
        final = watch.wait(
            lambda r: r.get("phase") == "RolledBack",
            timeout=120,
            what="the rollback",
            since=watch.matched + 1,
        )
        assert "aborted by spec.rollout.control.abort" in final["message"], final
        # The client keeps being answered (by the stable version) after the abort.
        sent = client.tally().get("sent", 0)
        wait_for(lambda: client.tally().get("sent", 0) >= sent + 20, timeout=60, what="answers")
    session.assert_unharmed()
    assert stopped <= 5.0, f"candidate traffic went on {stopped:.1f}s after the abort"
