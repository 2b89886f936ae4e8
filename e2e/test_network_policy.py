"""The chart's NetworkPolicies enforced by a real implementation: kube-router's
firewall on the real node (hack/netpol/netpol.sh; the bridge CNI alone enforces
nothing).

A stand-in serving pod (``netcheck``, hack/netpol/images/netcheck) listens on
the ports a ModelDeployment's pod has: Triton's HTTP/gRPC/metrics ports, the
drift monitor's HTTP and gRPC proxies and its admin port. Client pods in other
namespaces connect to it (each client is a netcheck too: the test asks it over
HTTP to connect, so every connection is a pod-to-pod one across the node's
bridge, as between real workloads). The policies are the chart's own, rendered
by helm with the serving namespace and a monitoring namespace allowed to the
admin port.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from tests.chart.helm import Helm, build_helm
from tests.support.cluster import Cluster, fresh_namespace, wait_for
from tests.support.netpol import Client, find_policy_agent, run_client, run_netcheck
from tests.support.real_node import RealNode, Unavailable

from modelops.api import constants as c

pytestmark = pytest.mark.cluster

RELEASE = "modelops"
# The chart's operator pod labels (templates/_helpers.tpl modelops.selectorLabels).
OPERATOR_LABELS = {
    "app.kubernetes.io/name": "modelops-operator",
    "app.kubernetes.io/instance": RELEASE,
}
# A port the serving pod listens on that no rule of the policy names: closed
# once the pod is selected, which shows the policy isolates the pod rather
# than only closing the admin port.
UNLISTED_PORT = 8500
SERVER_PORTS = (
    c.TRITON_HTTP_PORT,
    c.TRITON_GRPC_PORT,
    c.TRITON_METRICS_PORT,
    c.DRIFT_PROXY_PORT,
    c.DRIFT_GRPC_PROXY_PORT,
    c.DRIFT_ADMIN_PORT,
    UNLISTED_PORT,
)


@pytest.fixture(scope="module")
def helm(tmp_path_factory: pytest.TempPathFactory) -> Helm:
    return Helm(binary=build_helm(), home=tmp_path_factory.mktemp("helm-home"))


@dataclass(frozen=True)
class Setup:
    serving: str  # the namespace of the serving pod and of the policies
    server_ip: str
    clients: dict[str, Client]
    policies: list[dict[str, Any]]


@pytest.fixture
def setup(cluster: Cluster, real_node: RealNode, helm: Helm, tmp_path: Path) -> Iterator[Setup]:
    try:
        image = find_policy_agent()
    except Unavailable as e:
        pytest.skip(str(e))
    with contextlib.ExitStack() as stack:

        def new_namespace() -> str:
            gen = fresh_namespace(cluster)
            ns = next(gen)
            stack.callback(lambda: next(gen, None))
            return ns

        serving, operator, other, monitoring = (new_namespace() for _ in range(4))
        server_ip = run_netcheck(
            cluster, real_node, image, serving, "server", SERVER_PORTS,
            {c.LABEL_MODEL_DEPLOYMENT: "web"},
        )  # fmt: skip
        where = {
            # The operator's pod: the chart's admin-port peer.
            "operator": (operator, OPERATOR_LABELS),
            # The operator's namespace, but not its pod.
            "operator-ns": (operator, {"app": "other"}),
            # Prometheus' namespace, allowed through networkPolicy.adminPortFrom.
            "monitoring": (monitoring, {}),
            # Another tenant's namespace.
            "other": (other, {}),
            # A neighbour in the serving namespace itself.
            "same-ns": (serving, {"app": "neighbour"}),
        }
        clients = {
            key: run_client(cluster, real_node, image, ns, f"client-{key}", labels)
            for key, (ns, labels) in where.items()
        }
        docs = helm.template(
            "networkPolicy.enabled=true",
            f"networkPolicy.namespaces={{{serving}}}",
            release=RELEASE,
            namespace=operator,
            values={
                "networkPolicy": {
                    "adminPortFrom": [
                        {
                            "namespaceSelector": {
                                "matchLabels": {"kubernetes.io/metadata.name": monitoring}
                            }
                        }
                    ]
                }
            },
            tmp=tmp_path,
        )
        policies = [d for d in docs if d["kind"] == "NetworkPolicy"]
        assert {p["metadata"]["namespace"] for p in policies} == {serving}
        yield Setup(serving, server_ip, clients, policies)


def _reach(setup: Setup, client: str, port: int, mode: str = "tcp") -> dict[str, Any]:
    return setup.clients[client].probe(f"{setup.server_ip}:{port}", mode)


def _blocked(setup: Setup, client: str, port: int) -> bool:
    return not _reach(setup, client, port)["ok"]


def test_the_charts_policies_close_the_admin_port_to_all_but_the_operator_and_monitoring(
    cluster: Cluster, setup: Setup
):
    admin = c.DRIFT_ADMIN_PORT
    # Without a policy the node enforces nothing: every client reaches every port.
    for client in setup.clients:
        for port in (admin, UNLISTED_PORT):
            assert _reach(setup, client, port)["ok"], (client, port, _reach(setup, client, port))

    for policy in setup.policies:
        cluster.apply(policy)
    # kube-router applies a policy on its watch event; wait for it, then check.
    wait_for(lambda: _blocked(setup, "other", admin), timeout=60, what="the admin port to close")

    # Admin port: only the operator's pods and the allowed monitoring namespace.
    assert _reach(setup, "operator", admin)["ok"]
    assert _reach(setup, "monitoring", admin)["ok"]
    for client in ("other", "same-ns", "operator-ns"):
        result = _reach(setup, client, admin)
        assert not result["ok"], (client, result)

    # Serving ports stay open to a client of any namespace, spoken as clients do.
    other = "other"
    for port in (c.TRITON_HTTP_PORT, c.DRIFT_PROXY_PORT, c.TRITON_METRICS_PORT):
        result = _reach(setup, other, port, "http")
        assert result == {"ok": True, "proto": "HTTP/1.1", "port": port}, result
    # gRPC's transport (HTTP/2 with prior knowledge) on Triton's gRPC port and
    # on the drift monitor's gRPC relay, which the Service's grpc port targets.
    for port in (c.TRITON_GRPC_PORT, c.DRIFT_GRPC_PROXY_PORT):
        result = _reach(setup, other, port, "h2")
        assert result == {"ok": True, "proto": "HTTP/2.0", "port": port}, result
    # A port no rule names is closed: the pod is isolated, not just one port.
    assert _blocked(setup, other, UNLISTED_PORT)

    # Enforcement is live: without the policies the admin port opens again.
    for policy in setup.policies:
        cluster.kubectl(
            "delete",
            "networkpolicy",
            "-n",
            setup.serving,
            policy["metadata"]["name"],
            "--wait=true",
        )
    wait_for(
        lambda: _reach(setup, "other", admin)["ok"], timeout=60, what="the admin port to reopen"
    )
    assert _reach(setup, "same-ns", admin)["ok"]
    assert _reach(setup, other, UNLISTED_PORT)["ok"]
