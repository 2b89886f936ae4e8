"""The real node's NetworkPolicy agent (``hack/netpol/netpol.sh``: kube-router's
firewall in the node's network namespace) and its test program ``netcheck``
(hack/netpol/images/netcheck), for the NetworkPolicy e2e and benchmark.

A netcheck pod serves HTTP/1.1 and h2c on the ports it is given, and on
``/probe`` connects to another pod, so that a test on the host can make
pod-to-pod connections across the node's bridge and read what happened.
"""

from __future__ import annotations

import json
import subprocess
import urllib.parse
import urllib.request
from dataclasses import dataclass
from typing import Any

from tests.support.cluster import REPO, TEST_CLUSTER_NAME, Cluster, wait_for
from tests.support.real_node import RealNode, Unavailable

NETPOL_SCRIPT = REPO / "hack" / "netpol" / "netpol.sh"
# The port each client pod takes the probe requests on.
CLIENT_PORT = 9000
# A refused connection (kube-router rejects) answers at once; a dropped one
# takes this long to count as closed.
PROBE_TIMEOUT = "2s"
# Probe answers are one small JSON object.
MAX_ANSWER = 64 << 10


def find_policy_agent(cluster_name: str = TEST_CLUSTER_NAME) -> str:
    """The netcheck image's reference, where the agent runs.

    Raises ``Unavailable`` where this machine cannot run the agent,
    ``AssertionError`` where it can but the agent is not running.
    """
    proc = subprocess.run(
        [str(NETPOL_SCRIPT), "info", cluster_name], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, f"netpol.sh info failed: {proc.stderr.strip()}"
    info = json.loads(proc.stdout)
    if info["unavailable"]:
        raise Unavailable(f"no NetworkPolicy agent on this machine: {info['unavailable']}")
    assert not info["broken"], f"the NetworkPolicy agent did not come up: {info['broken']}"
    assert info["running"], f"kube-router is not running (log: {info['log']})"
    return str(info["image"])


@dataclass(frozen=True)
class Client:
    """A netcheck pod that connects to other pods when asked."""

    name: str
    ip: str

    def probe(self, addr: str, mode: str = "tcp") -> dict[str, Any]:
        """Connect from this pod to ``addr`` (tcp, http or h2); the pod's JSON answer."""
        query = urllib.parse.urlencode({"addr": addr, "mode": mode, "timeout": PROBE_TIMEOUT})
        url = f"http://{self.ip}:{CLIENT_PORT}/probe?{query}"
        with urllib.request.urlopen(url, timeout=10) as resp:
            answer = json.loads(resp.read(MAX_ANSWER))
        assert isinstance(answer, dict) and "ok" in answer, answer
        return answer


def run_netcheck(
    cluster: Cluster,
    real_node: RealNode,
    image: str,
    namespace: str,
    name: str,
    ports: tuple[int, ...],
    labels: dict[str, str],
) -> str:
    """A netcheck pod serving ``ports`` on the real node; returns its IP once Ready."""
    spec = real_node.pod_spec(
        containers=[
            {
                "name": "netcheck",
                "image": image,
                "imagePullPolicy": "Never",
                "args": ["serve", *map(str, ports)],
                "ports": [{"containerPort": p} for p in ports],
                # The kubelet's probe comes from the node itself, which the
                # policy agent lets through.
                "readinessProbe": {"tcpSocket": {"port": ports[0]}, "periodSeconds": 1},
                "securityContext": {"allowPrivilegeEscalation": False, "runAsNonRoot": True},
            }
        ],
        terminationGracePeriodSeconds=1,
    )
    cluster.core.create_namespaced_pod(
        namespace,
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": name, "labels": labels},
            "spec": spec,
        },
    )

    def ready() -> str | None:
        pod = cluster.core.read_namespaced_pod(name, namespace)
        up = any(x.type == "Ready" and x.status == "True" for x in pod.status.conditions or [])
        return pod.status.pod_ip if up else None

    return wait_for(ready, timeout=90, what=f"pod {namespace}/{name} Ready")


def run_client(
    cluster: Cluster, real_node: RealNode, image: str, namespace: str, name: str,
    labels: dict[str, str] | None = None,
) -> Client:  # fmt: skip
    """A netcheck client pod in ``namespace``."""
    ip = run_netcheck(cluster, real_node, image, namespace, name, (CLIENT_PORT,), labels or {})
    return Client(name, ip)
