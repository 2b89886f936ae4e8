"""Pods on the real node (``real-1``: kubelet, containerd, kube-proxy, CoreDNS)
do what the simulated KWOK pods only claim: the image runs, the kubelet
probes it, projects and refreshes a ConfigMap, Services route by DNS name, and
the runtime enforces a read-only root filesystem and a memory limit.

The image is ``nodeprobe`` (hack/node/images/nodeprobe), built and imported
by hack/node; each pod reports its outcome in its termination message.
"""

from __future__ import annotations

import ipaddress
import time
import urllib.request
from typing import Any

import pytest
from tests.support.cluster import Cluster, wait_for
from tests.support.real_node import RealNode

pytestmark = pytest.mark.cluster

KWOK_POD_CIDR = ipaddress.ip_network("10.244.0.0/16")


def _container(real_node: RealNode, *args: str, **extra: Any) -> dict[str, Any]:
    return {
        "name": "probe",
        "image": real_node.images["nodeprobe"],
        "imagePullPolicy": "Never",
        "args": list(args),
        **extra,
    }


def _create(cluster: Cluster, namespace: str, name: str, spec: dict[str, Any], labels=None) -> None:
    cluster.core.create_namespaced_pod(
        namespace,
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": name, "labels": labels or {}},
            "spec": spec,
        },
    )


def _pod(cluster: Cluster, namespace: str, name: str) -> Any:
    return cluster.core.read_namespaced_pod(name, namespace)


def _ready(pod: Any) -> bool:
    return any(c.type == "Ready" and c.status == "True" for c in pod.status.conditions or [])


def _terminated(cluster: Cluster, namespace: str, name: str, timeout: float = 90) -> Any:
    def done() -> Any:
        statuses = _pod(cluster, namespace, name).status.container_statuses or []
        return statuses and (statuses[0].state.terminated or statuses[0].last_state.terminated)

    return wait_for(done, timeout=timeout, what=f"pod {name} to terminate")


def _web(cluster: Cluster, namespace: str, real_node: RealNode, greeting: str) -> Any:
    """A nodeprobe server with an HTTP readiness probe and a ConfigMap volume; returns it Ready."""
    cluster.core.create_namespaced_config_map(
        namespace,
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "web"},
            "data": {"greeting": greeting},
        },
    )
    spec = real_node.pod_spec(
        containers=[
            _container(
                real_node,
                "serve",
                ":8080",
                ports=[{"containerPort": 8080}],
                readinessProbe={"httpGet": {"path": "/healthz", "port": 8080}, "periodSeconds": 1},
                volumeMounts=[{"name": "config", "mountPath": "/config"}],
            )
        ],
        volumes=[{"name": "config", "configMap": {"name": "web"}}],
    )
    _create(cluster, namespace, "web", spec, labels={"app": "web"})
    return wait_for(
        lambda: p if _ready(p := _pod(cluster, namespace, "web")) else None,
        timeout=90,
        what="pod web Ready",
    )


def _file(pod_ip: str, path: str) -> str:
    url = f"http://{pod_ip}:8080/file?path={path}"
    with urllib.request.urlopen(url, timeout=5) as resp:
        return resp.read().decode()


def test_a_pod_runs_gets_a_pod_ip_and_its_http_readiness_probe_passes(
    cluster: Cluster, namespace: str, real_node: RealNode
):
    # The same server probed on a port nothing listens on: it runs, yet the
    # kubelet's probe keeps it unready. Ready therefore means the probe passed.
    unready = real_node.pod_spec(
        containers=[
            _container(
                real_node,
                "serve",
                ":8080",
                readinessProbe={"httpGet": {"path": "/healthz", "port": 9999}, "periodSeconds": 1},
            )
        ]
    )
    _create(cluster, namespace, "unready", unready)
    pod = _web(cluster, namespace, real_node, "hello")

    assert pod.spec.node_name == real_node.name
    ip = ipaddress.ip_address(pod.status.pod_ip)
    assert ip in real_node.pod_cidr and ip not in KWOK_POD_CIDR, pod.status.pod_ip
    status = pod.status.container_statuses[0]
    assert status.ready and status.container_id.startswith("containerd://"), status
    # The pod answers on its IP: a process listens there, not a simulation.
    assert _file(pod.status.pod_ip, "/config/greeting") == "hello"

    def unready_running() -> Any:
        p = _pod(cluster, namespace, "unready")
        running = (p.status.container_statuses or [None])[0]
        return p if running and running.state.running else None

    wait_for(unready_running, timeout=60, what="pod unready running")
    time.sleep(5)  # five probe periods
    p = _pod(cluster, namespace, "unready")
    assert not _ready(p), "a readiness probe against a closed port must keep the pod unready"


def test_a_configmap_update_reaches_the_projected_file(
    cluster: Cluster, namespace: str, real_node: RealNode
):
    pod = _web(cluster, namespace, real_node, "v1")
    assert _file(pod.status.pod_ip, "/config/greeting") == "v1"
    start = time.monotonic()
    cluster.core.patch_namespaced_config_map("web", namespace, {"data": {"greeting": "v2"}})
    wait_for(
        lambda: _file(pod.status.pod_ip, "/config/greeting") == "v2",
        timeout=90,
        interval=0.2,
        what="the ConfigMap update in the pod's file",
    )
    # Reported, not asserted tightly: bench/node/pod_ready.py measures it.
    print(f"ConfigMap propagation: {time.monotonic() - start:.1f}s")


def test_a_client_pod_reaches_a_service_by_its_dns_name(
    cluster: Cluster, namespace: str, real_node: RealNode
):
    _web(cluster, namespace, real_node, "through the service")
    cluster.core.create_namespaced_service(
        namespace,
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "web"},
            "spec": {"selector": {"app": "web"}, "ports": [{"port": 80, "targetPort": 8080}]},
        },
    )
    url = f"http://web.{namespace}.svc.cluster.local/file?path=/config/greeting"
    client = real_node.pod_spec(
        restartPolicy="Never", containers=[_container(real_node, "get", url)]
    )
    _create(cluster, namespace, "client", client)
    terminated = _terminated(cluster, namespace, "client")
    assert terminated.exit_code == 0, terminated.message
    assert terminated.message == "through the service"


def test_a_read_only_root_filesystem_refuses_writes(
    cluster: Cluster, namespace: str, real_node: RealNode
):
    for name, read_only in (("ro", True), ("rw", False)):
        spec = real_node.pod_spec(
            restartPolicy="Never",
            containers=[
                _container(
                    real_node,
                    "write",
                    "/written",
                    securityContext={"readOnlyRootFilesystem": read_only},
                )
            ],
        )
        _create(cluster, namespace, name, spec)
    ro = _terminated(cluster, namespace, "ro")
    assert ro.exit_code == 1 and "read-only file system" in ro.message, ro
    rw = _terminated(cluster, namespace, "rw")
    assert rw.exit_code == 0 and rw.message == "write: ok", rw


def test_a_container_over_its_memory_limit_is_oom_killed(
    cluster: Cluster, namespace: str, real_node: RealNode
):
    limits = {"requests": {"memory": "32Mi"}, "limits": {"memory": "32Mi"}}
    for name, mib in (("hog", "256"), ("within", "4")):
        spec = real_node.pod_spec(
            restartPolicy="Never",
            containers=[_container(real_node, "alloc", mib, resources=limits)],
        )
        _create(cluster, namespace, name, spec)
    hog = _terminated(cluster, namespace, "hog")
    assert hog.reason == "OOMKilled", hog

    # The same limit with less to hold keeps running, so the kill was the limit's.
    def within_running() -> Any:
        statuses = _pod(cluster, namespace, "within").status.container_statuses or []
        return statuses and statuses[0].state.running and statuses[0]

    within = wait_for(within_running, timeout=60, what="pod within running")
    time.sleep(2)
    within = _pod(cluster, namespace, "within").status.container_statuses[0]
    assert within.state.running and within.restart_count == 0, within


def test_a_gpu_requesting_pod_is_scheduled_to_the_real_node_and_runs(
    cluster: Cluster, namespace: str, real_node: RealNode
):
    # Through the scheduler (a node selector, not nodeName): the node's
    # nvidia.com/gpu capacity is what lets it fit; the container runs on CPU.
    spec = real_node.pod_spec(
        restartPolicy="Never",
        containers=[
            _container(
                real_node, "write", "/tmp/ran", resources={"limits": {"nvidia.com/gpu": "1"}}
            )
        ],
    )
    del spec["nodeName"]
    spec["nodeSelector"] = {"modelops.io/node-kind": "real"}
    _create(cluster, namespace, "gpu", spec)
    terminated = _terminated(cluster, namespace, "gpu")
    assert terminated.exit_code == 0 and terminated.message == "write: ok", terminated
    assert _pod(cluster, namespace, "gpu").spec.node_name == real_node.name
