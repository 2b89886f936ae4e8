"""NetworkPolicy created -> enforced, and deleted -> lifted, on the real node.

On the local cluster's real node, where kube-router's network policy
controller enforces NetworkPolicies (hack/netpol/netpol.sh): a netcheck
server pod and a client pod in two namespaces; each run creates a policy that
admits only its own namespace to the server, and times, from the create call,
until the client's connection is refused (created -> enforced); then deletes
it and times until the client connects again (deleted -> lifted). Each is
kube-router's watch of the API plus its iptables/ipset sync. The client is
polled every 50 ms (a refused connection answers at once).

Run: .venv/bin/python bench/netpol/enforce.py [--runs 5]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from tests.support.cluster import Cluster, start_cluster, stop_cluster  # noqa: E402
from tests.support.netpol import find_policy_agent, run_client, run_netcheck  # noqa: E402
from tests.support.real_node import Unavailable, find_real_node  # noqa: E402

PORT = 8090
POLL = 0.05


def _policy(name: str, namespace: str) -> dict:
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "podSelector": {"matchLabels": {"app": "bench-server"}},
            "policyTypes": ["Ingress"],
            "ingress": [{"from": [{"podSelector": {}}]}],
        },
    }


def _until(ok: bool, probe, timeout: float = 60) -> float:  # noqa: ANN001
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if probe()["ok"] is ok:
            return time.monotonic() - start
        time.sleep(POLL)
    raise TimeoutError(f"the connection did not become ok={ok} in {timeout}s")


def _namespace(cluster: Cluster) -> str:
    name = f"bench-{uuid.uuid4().hex[:8]}"
    cluster.core.create_namespace({"metadata": {"name": name}})
    return name


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    cluster = start_cluster()
    namespaces: list[str] = []
    try:
        try:
            real_node = find_real_node(cluster)
            image = find_policy_agent()
        except Unavailable as e:
            print(json.dumps({"bench": "netpol_enforce", "skipped": str(e)}))
            return 0
        server_ns, client_ns = _namespace(cluster), _namespace(cluster)
        namespaces += [server_ns, client_ns]
        ip = run_netcheck(
            cluster, real_node, image, server_ns, "server", (PORT,), {"app": "bench-server"}
        )
        client = run_client(cluster, real_node, image, client_ns, "client")

        def probe() -> dict:
            return client.probe(f"{ip}:{PORT}")

        assert probe()["ok"], "the client cannot reach the server before any policy"
        enforced, lifted = [], []
        for i in range(args.runs):
            name = f"only-own-namespace-{i}"
            cluster.apply(_policy(name, server_ns))
            enforced.append(_until(False, probe))
            cluster.kubectl("delete", "networkpolicy", "-n", server_ns, name)
            lifted.append(_until(True, probe))
        for label, values in (("created_to_enforced_s", enforced), ("deleted_to_lifted_s", lifted)):
            print(
                json.dumps(
                    {
                        "bench": "netpol_enforce",
                        "metric": label,
                        "runs": len(values),
                        "median": round(statistics.median(values), 3),
                        "max": round(max(values), 3),
                    }
                )
            )
        return 0
    finally:
        for ns in namespaces:
            cluster.core.delete_namespace(ns, propagation_policy="Background")
        stop_cluster(cluster)


if __name__ == "__main__":
    sys.exit(main())
