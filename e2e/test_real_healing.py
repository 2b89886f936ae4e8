"""Self-healing and readiness truth of the served sample on the real node, and the
drift sidecar's memory limit under abuse, on real pods.

- Triton's process is SIGKILLed from the host (as a crash or the OOM killer would
  end it; a container's init ignores SIGKILL sent from inside its own pid
  namespace, so ``kubectl exec ... kill`` could not do it): the kubelet restarts
  the container, and the ModelDeployment says Ready=False while the container
  is not ready and Ready=True again after its probes pass.
- The sidecar, under its default memory limit, takes the abuse cases of
  tests/drift/test_sidecar_abuse.py that a pod can send through the Service
  (hundreds of half-sent heads, incomplete 64 MiB bodies, a 53 MiB request): it
  is not OOM-killed (the kernel's cgroup says what it peaked at) and still answers.
- A memory limit lowered through ``spec.driftMonitor.resources`` is enforced: the
  kernel OOM-kills the sidecar and the ModelDeployment's status names OOMKilled.

The sample's changes for the real node are tests/support/real_sample.py's.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from tests.support import real_cgroup
from tests.support.cluster import Cluster, wait_for
from tests.support.models import torch_reference
from tests.support.operator import OperatorProcess, condition, get_md, wait_ready
from tests.support.project_images import ProjectImages
from tests.support.real_node import RealNode
from tests.support.real_sample import (
    NAME,
    REPORT,
    credentials_secret,
    pod_output,
    publish_model,
    run_client,
    sample_for_the_real_node,
)
from tests.support.s3 import S3Server

pytestmark = [pytest.mark.cluster, pytest.mark.torch, pytest.mark.slow]

TRITON = "triton"
SIDECAR = "drift-monitor"
MIB = 1024 * 1024


@pytest.fixture(scope="module")
def published(pod_store: S3Server, tmp_path_factory: pytest.TempPathFactory) -> Any:
    return publish_model(pod_store, tmp_path_factory.mktemp("model"))


@pytest.fixture(scope="module")
def served(
    cluster: Cluster,
    operator: OperatorProcess,
    real_node: RealNode,
    project_images: ProjectImages,
    pod_store: S3Server,
    published: Any,
) -> Iterator[str]:
    namespace = f"heal-{int(time.time()) % 100000}"
    cluster.kubectl("create", "namespace", namespace)
    try:
        cluster.apply(credentials_secret(namespace, pod_store))
        # The sidecar keeps its default resources: its default memory limit is
        # the bound under test.
        cluster.apply(sample_for_the_real_node(namespace, real_node))
        wait_ready(cluster, namespace, NAME, timeout=420)
        yield namespace
    finally:
        cluster.kubectl("delete", "namespace", namespace, "--wait=false", check=False)


@pytest.fixture(scope="module")
def client_namespace(cluster: Cluster) -> Iterator[str]:
    namespace = f"healc-{int(time.time()) % 100000}"
    cluster.kubectl("create", "namespace", namespace)
    yield namespace
    cluster.kubectl("delete", "namespace", namespace, "--wait=false", check=False)


def the_pod(cluster: Cluster, namespace: str) -> Any:
    pods = [
        p
        for p in cluster.core.list_namespaced_pod(
            namespace, label_selector=f"modelops.io/model-deployment={NAME}"
        ).items
        if p.status.phase == "Running" and p.metadata.deletion_timestamp is None
    ]
    assert len(pods) == 1, [p.metadata.name for p in pods]
    return pods[0]


def status_of(pod: Any, container: str) -> Any:
    [cs] = [s for s in pod.status.container_statuses if s.name == container]
    return cs


def ready_status(cluster: Cluster, namespace: str) -> str | None:
    return condition(get_md(cluster, namespace, NAME), "Ready").get("status")


def test_a_killed_triton_is_restarted_and_the_status_follows_its_readiness(
    cluster: Cluster, served: str
) -> None:
    namespace = served
    pod = the_pod(cluster, namespace)
    restarts = status_of(pod, TRITON).restart_count
    assert ready_status(cluster, namespace) == "True"

    killed_at = time.monotonic()
    real_cgroup.kill_container_init(pod, TRITON)

    # Polled (not a fixed sleep): the operator must notice the kubelet's report.
    wait_for(
        lambda: ready_status(cluster, namespace) == "False",
        timeout=60,
        interval=0.25,
        what="Ready=False while Triton is down",
    )
    not_ready_after = time.monotonic() - killed_at
    md = get_md(cluster, namespace, NAME)
    print(f"\nReady=False {not_ready_after:.1f}s after the kill: {condition(md, 'Ready')}")
    # While Ready is False the container really is not ready (the status is not
    # ahead of the kubelet).
    assert not status_of(the_pod(cluster, namespace), TRITON).ready

    wait_for(
        lambda: ready_status(cluster, namespace) == "True",
        timeout=300,
        interval=0.5,
        what="Ready=True again after the restart",
    )
    ready_after = time.monotonic() - killed_at
    print(f"Ready=True again {ready_after:.1f}s after the kill")

    after = the_pod(cluster, namespace)
    assert after.metadata.uid == pod.metadata.uid, "the pod was replaced, not restarted"
    triton = status_of(after, TRITON)
    assert triton.restart_count == restarts + 1, triton
    assert triton.ready
    assert triton.last_state.terminated is not None, triton
    # 137: killed by SIGKILL (128 + 9), which the kubelet reports as the exit code.
    assert triton.last_state.terminated.exit_code == 137, triton.last_state
    assert status_of(after, SIDECAR).restart_count == 0


# What a hostile client in another pod sends the sidecar through the Service: the
# cases of tests/drift/test_sidecar_abuse.py that do not need a misbehaving
# upstream (here the upstream is the real Triton). Prints what each got back.
ABUSE = r"""
import json, socket, sys, time
host = sys.argv[1]
MIB = 1024 * 1024
out = {}

def connect():
    s = socket.create_connection((host, 8000), timeout=30)
    return s

def head(length, extra=""):
    return (f"POST /v2/models/fraud-detector/infer HTTP/1.1\r\nHost: x\r\n"
            f"Content-Type: application/json\r\nContent-Length: {length}\r\n{extra}\r\n").encode()

def status(s):
    s.settimeout(60)
    try:
        data = s.recv(4096)
    except OSError as e:
        return f"error {type(e).__name__}"
    return data.split(b"\r\n", 1)[0].decode(errors="replace") or "closed"

# 300 heads, each half sent and held open.
held = []
for _ in range(300):
    try:
        s = connect()
        s.sendall(b"POST /v2/models/fraud-detector/infer HTTP/1.1\r\nHost: x\r\n")
        held.append(s)
    except OSError:
        break
out["partial_heads_held"] = len(held)
time.sleep(3)
for s in held:
    s.close()

# Six 64 MiB bodies, each sent half and abandoned (all at once).
chunk = b" " * MIB
bodies = []
for _ in range(6):
    s = connect()
    s.sendall(head(64 * MIB))
    try:
        for _ in range(32):
            s.sendall(chunk)
    except OSError as e:
        out.setdefault("incomplete_body_errors", []).append(type(e).__name__)
    bodies.append(s)
time.sleep(2)
for s in bodies:
    s.close()
out["incomplete_bodies"] = len(bodies)

# A 53 MiB JSON request, complete: streamed through, not held.
row = "[" + ",".join(["0.5"] * 4) + "]"
rows = 53 * MIB // (len(row) + 1)
data = ",".join([row] * rows)
body = ('{"inputs":[{"name":"x","shape":[%d,4],"datatype":"FP32","data":[%s]}]}'
        % (rows, data)).encode()
s = connect()
s.sendall(head(len(body), "Connection: close\r\n"))
s.sendall(body)
out["big_request"] = status(s)
s.close()
print(json.dumps(out))
report(out)
"""


def run_abuse(
    cluster: Cluster, namespace: str, node: RealNode, image: str, host: str
) -> dict[str, Any]:
    name = f"abuse-{int(time.time() * 1000) % 10**8}"
    cluster.apply(
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": name, "namespace": namespace},
            "spec": node.pod_spec(
                restartPolicy="Never",
                containers=[
                    {
                        "name": "abuse",
                        "image": image,
                        "imagePullPolicy": "Never",
                        "command": ["python", "-c", REPORT + ABUSE, host],
                    }
                ],
            ),
        }
    )

    def finished() -> str | None:
        phase = cluster.core.read_namespaced_pod(name, namespace).status.phase
        return phase if phase in ("Succeeded", "Failed") else None

    phase = wait_for(finished, timeout=300, what=f"abuse pod {name}")
    try:
        assert phase == "Succeeded", cluster.core.read_namespaced_pod(name, namespace).status
        return json.loads(pod_output(cluster, name, namespace))
    finally:
        cluster.core.delete_namespaced_pod(name, namespace, grace_period_seconds=0)


def test_the_sidecar_stays_under_its_memory_limit_under_abuse_and_keeps_answering(
    cluster: Cluster,
    served: str,
    published: Any,
    real_node: RealNode,
    project_images: ProjectImages,
    client_namespace: str,
) -> None:
    namespace = served
    host = f"{NAME}.{namespace}.svc.cluster.local"
    pod = the_pod(cluster, namespace)
    before = real_cgroup.memory(pod, SIDECAR)
    assert before["limit"] == 384 * MIB, before  # the default limit, enforced by the kernel

    got = run_abuse(cluster, client_namespace, real_node, project_images.operator, host)
    print(f"\nabuse answers: {got}")
    after_pod = the_pod(cluster, namespace)
    mem = real_cgroup.memory(after_pod, SIDECAR)
    print(
        f"sidecar memory: limit {mem['limit'] / MIB:.0f} MiB, peak {mem['peak'] / MIB:.1f} MiB "
        f"(before the abuse {before['peak'] / MIB:.1f} MiB), rss now {mem['rss'] / MIB:.1f} MiB"
    )
    assert got["partial_heads_held"] > 0
    assert got["big_request"].startswith("HTTP/1.1 "), got

    sidecar = status_of(after_pod, SIDECAR)
    assert after_pod.metadata.uid == pod.metadata.uid
    assert sidecar.restart_count == 0, sidecar
    assert sidecar.last_state.terminated is None, sidecar.last_state
    assert sidecar.ready
    assert mem["peak"] < mem["limit"]

    # And it still answers, correctly, over both protocols.
    out = run_client(cluster, client_namespace, real_node, project_images.operator, host)
    expected = torch_reference(published, np.array(out["x"], dtype=np.float32))
    np.testing.assert_allclose(np.array(out["http"]), expected, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(np.array(out["grpc"]), expected, rtol=1e-5, atol=1e-5)


def test_a_lowered_sidecar_memory_limit_is_enforced_and_named_in_the_status(
    cluster: Cluster, served: str, real_node: RealNode
) -> None:
    namespace = served
    old = the_pod(cluster, namespace)
    # A rollout's surge pod does not fit beside the serving one on 2 cores (the
    # pull-model init container alone reserves 1 CPU), so the sample is deleted and
    # applied again, its sidecar limited below what its Python process needs to
    # start: the kernel must kill it.
    cluster.kubectl("delete", "md", NAME, "-n", namespace, "--wait=true", "--timeout=120s")
    wait_for(
        lambda: (
            not cluster.core.list_namespaced_pod(
                namespace, label_selector=f"modelops.io/model-deployment={NAME}"
            ).items
        ),
        timeout=120,
        what="the old pod gone",
    )
    md = sample_for_the_real_node(namespace, real_node)
    amounts = {"cpu": "300m", "memory": "32Mi"}
    md["spec"]["driftMonitor"]["resources"] = {"requests": amounts, "limits": amounts}
    cluster.apply(md)

    def oom_in_status() -> dict | None:
        md = get_md(cluster, namespace, NAME)
        return md if "OOMKilled" in json.dumps(md.get("status") or {}) else None

    md = wait_for(oom_in_status, timeout=300, interval=2, what="OOMKilled in the status")
    named = [c for c in md["status"].get("conditions", []) if "OOMKilled" in c.get("message", "")]
    print(f"\nconditions naming OOMKilled: {named}")
    assert named, md["status"]

    # The kernel's word, from the new pod's container status.
    pods = cluster.core.list_namespaced_pod(
        namespace, label_selector=f"modelops.io/model-deployment={NAME}"
    ).items
    new = [p for p in pods if p.metadata.uid != old.metadata.uid]
    assert new, "no pod of the new template"
    killed = [
        cs
        for p in new
        for cs in (p.status.container_statuses or []) + (p.status.init_container_statuses or [])
        if (cs.last_state.terminated and cs.last_state.terminated.reason == "OOMKilled")
        or (cs.state.terminated and cs.state.terminated.reason == "OOMKilled")
    ]
    assert killed, [p.status.container_statuses for p in new]
    print(f"OOMKilled containers: {[(cs.name, cs.restart_count) for cs in killed]}")
