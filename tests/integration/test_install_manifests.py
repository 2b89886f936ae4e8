"""The documented plain-manifest install, exactly as written, on a new cluster.

    kubectl apply --server-side -f crds/ -f manifests/install/

kubectl maps every object of one invocation to its API before applying any,
so this line used to fail on a fresh cluster when manifests/install/ held an
object whose CRD the same command creates. This test starts a
cluster of its own (the session's cluster has the CRDs already, which would
hide the problem), runs the line, runs the operator with the Deployment's own
command line and a token of its ServiceAccount, and checks that it takes the
leader Lease (RBAC for it included), serves the conversion webhook the CRDs name
(its Service routed to the process) and serves the sample.
"""

from __future__ import annotations

import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tests.chart.test_chart_install import PodProcess, rbac_denials
from tests.support.cluster import CLUSTER_SCRIPT, REPO, Cluster, wait_for
from tests.support.conversion import route_service_to_host, wait_converting
from tests.support.operator import service_account_kubeconfig, wait_ready

pytestmark = pytest.mark.cluster

LINE = ["kubectl", "apply", "--server-side", "-f", "crds/", "-f", "manifests/install/"]
SAMPLE = REPO / "manifests" / "samples" / "modeldeployment.yaml"


@pytest.fixture(scope="module")
def fresh() -> Iterator[Cluster]:
    """A cluster nobody has installed anything into."""
    name = f"fresh-{uuid.uuid4().hex[:6]}"
    up = subprocess.run(
        [str(CLUSTER_SCRIPT), "up", name], capture_output=True, text=True, timeout=600
    )
    try:
        assert up.returncode == 0, up.stderr[-3000:]
        kubeconfig = Path(up.stdout.strip().splitlines()[-1])
        bin_dir = subprocess.run(
            [str(REPO / "hack" / "controlplane" / "build.sh")],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        yield Cluster(kubeconfig=kubeconfig, bin_dir=Path(bin_dir))
    finally:
        subprocess.run([str(CLUSTER_SCRIPT), "down", name], capture_output=True, timeout=300)


def run_line(cluster: Cluster) -> subprocess.CompletedProcess[str]:
    return subprocess.run(LINE, cwd=REPO, env=cluster.env, capture_output=True, text=True)


def test_the_documented_line_installs_everything_in_one_go(fresh: Cluster, tmp_path: Path):
    assert not fresh.kubectl("get", "crd", "-o", "name").stdout.strip(), "not a fresh cluster"
    proc = run_line(fresh)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "error" not in proc.stderr.lower(), proc.stderr
    fresh.kubectl("wait", "--for=condition=Established", "crd", "--all", "--timeout=60s")
    for args in (
        ("get", "crd", "modeldeployments.modelops.io", "trainingjobs.modelops.io"),
        ("get", "clusterrole", "modelops-operator", "modelops-edit", "modelops-view"),
        ("get", "clusterrolebinding", "modelops-operator"),
        ("get", "-n", "modelops-system", "serviceaccount/modelops-operator"),
        ("get", "-n", "modelops-system", "deployment/modelops-operator"),
        ("get", "-n", "modelops-system", "service/modelops-operator-metrics"),
        ("get", "-n", "modelops-system", "poddisruptionbudget/modelops-operator"),
        ("get", "-n", "modelops-system", "role/modelops-operator-leader-election"),
    ):
        fresh.kubectl(*args)

    # The operator pod's exact command line (args and env), run here, as its
    # ServiceAccount: it takes the Lease and serves the sample.
    kubeconfig = service_account_kubeconfig(fresh, tmp_path / "operator.kubeconfig")
    deployment = fresh.apps.read_namespaced_deployment("modelops-operator", "modelops-system")
    # The CRDs convert through Service modelops-webhook; its endpoint is this
    # process's webhook (the Deployment's pods on KWOK's nodes run nothing).
    fresh.kubectl("scale", "deployment", "modelops-operator", "-n", "modelops-system",
                  "--replicas=0")  # fmt: skip
    operator = PodProcess(deployment, kubeconfig, tmp_path / "operator.log")
    try:
        assert operator.webhook_port is not None
        route_service_to_host(fresh, "modelops-system", "modelops-webhook", [operator.webhook_port])
        wait_converting(fresh, timeout=120)
        assert "--leader-elect" in operator.args
        holder = wait_for(
            lambda: _lease_holder(fresh),
            timeout=90,
            what="the operator holding Lease modelops-system/modelops-operator",
        )
        assert operator.logged(f"{holder} acquired the Lease")
        fresh.kubectl("create", "namespace", "ml")
        fresh.apply(yaml.safe_load(SAMPLE.read_text()), "ml")
        try:
            wait_ready(fresh, "ml", "fraud-detector", timeout=120)
        except AssertionError as err:
            raise AssertionError(f"{err}\noperator log:\n{operator.tail()}") from None
        # The serving pods run the operator's default Triton image (not written
        # into the object: the CRD has no default for it).
        md = fresh.custom.get_namespaced_custom_object(
            "modelops.io", "v1alpha1", "ml", "modeldeployments", "fraud-detector"
        )
        assert "image" not in md["spec"]["runtime"]
        serving = fresh.apps.read_namespaced_deployment("fraud-detector", "ml")
        triton = next(c for c in serving.spec.template.spec.containers if c.name == "triton")
        assert triton.image == operator.env["MODELOPS_TRITON_IMAGE"]

        # The same line again (an upgrade in place) changes nothing and fails nothing
        # (the replicas as written first: another value would be a conflict).
        fresh.kubectl("scale", "deployment", "modelops-operator", "-n", "modelops-system",
                      "--replicas=2")  # fmt: skip
        again = run_line(fresh)
        assert again.returncode == 0, again.stdout + again.stderr
    finally:
        operator.stop()
    assert not rbac_denials(operator.log)


def _lease_holder(cluster: Cluster) -> str | None:
    proc = cluster.kubectl(
        "get", "lease", "-n", "modelops-system", "modelops-operator", "-o", "yaml", check=False
    )
    if proc.returncode != 0:
        return None
    return (yaml.safe_load(proc.stdout).get("spec") or {}).get("holderIdentity") or None
