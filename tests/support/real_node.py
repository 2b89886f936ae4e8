"""The local cluster's real node (``hack/node/node.sh``) as a pytest resource.

``hack/cluster/cluster.sh up`` adds node ``real-1`` (a real kubelet, kube-proxy
and containerd, CoreDNS) wherever this machine can run containers. Tests that
need pods to really run ask for the ``real_node`` fixture: it skips, with the
node script's reason, only where the machine cannot run containers (or the
real node is turned off with ``MODELOPS_REAL_NODES=0``); a machine that can but
whose node is not Ready fails the test instead.
"""

from __future__ import annotations

import ipaddress
import json
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

from tests.support.cluster import REPO, TEST_CLUSTER_NAME, Cluster, wait_for

NODE_SCRIPT = REPO / "hack" / "node" / "node.sh"
# The taint that keeps pods meant for KWOK's simulated nodes off the real node.
TOLERATION = {
    "key": "modelops.io/node-kind",
    "operator": "Equal",
    "value": "real",
    "effect": "NoSchedule",
}


@dataclass(frozen=True)
class RealNode:
    """A Ready real node: its name, the images imported into its runtime, the pod subnet."""

    name: str
    images: dict[str, str]
    pod_cidr: ipaddress.IPv4Network
    # This machine's end of the node's link: what the node's pods reach of the host
    # (the API server, a test's S3 endpoint).
    host_ip: str
    logs: Path

    def pod_spec(self, **spec: object) -> dict[str, object]:
        """A pod spec pinned to this node (tolerating its taint), merged with ``spec``."""
        return {"nodeName": self.name, "tolerations": [TOLERATION], **spec}


class Unavailable(Exception):
    """This machine cannot run the real node; the message says why."""


def find_real_node(cluster: Cluster, cluster_name: str = TEST_CLUSTER_NAME) -> RealNode:
    """The session cluster's real node, waiting for it to be Ready.

    Raises ``Unavailable`` where the machine cannot run one, ``AssertionError``
    where it can but the node is not there.
    """
    if os.environ.get("MODELOPS_REAL_NODES") == "0":
        raise Unavailable("real nodes turned off (MODELOPS_REAL_NODES=0)")
    if os.environ.get("MODELOPS_KUBECONFIG"):
        raise Unavailable(
            "an external cluster (MODELOPS_KUBECONFIG): its nodes are not hack/node's"
        )
    proc = subprocess.run(
        [str(NODE_SCRIPT), "info", cluster_name], capture_output=True, text=True, timeout=60
    )
    if proc.returncode != 0:
        raise AssertionError(f"node.sh info failed: {proc.stderr.strip()}")
    info = json.loads(proc.stdout)
    if info["unavailable"]:
        raise Unavailable(f"this machine cannot run a real node: {info['unavailable']}")
    assert not info["broken"], f"the real node did not come up: {info['broken']}"
    assert info["running"], f"the real node's kubelet is not running (logs: {info['logs']})"

    def ready() -> bool:
        node = cluster.core.read_node(info["node"])
        return any(c.type == "Ready" and c.status == "True" for c in node.status.conditions or [])

    wait_for(ready, timeout=60, what=f"node {info['node']} Ready")
    return RealNode(
        name=info["node"],
        images=info["images"],
        pod_cidr=ipaddress.ip_network(info["pod_cidr"]),
        host_ip=info["host_ip"],
        logs=Path(info["logs"]),
    )
