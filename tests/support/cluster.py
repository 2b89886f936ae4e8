"""The local Kubernetes control plane as a pytest resource.

One cluster serves the whole test session. It is, in order of preference:

1. the cluster named by ``MODELOPS_KUBECONFIG`` (any conformant cluster:
   kind, a dev cluster, or the one ``make cluster-up`` started);
2. otherwise a dedicated ``modelops-test`` cluster started through
   ``hack/cluster/cluster.sh`` and deleted when the session ends (set
   ``MODELOPS_KEEP_CLUSTER=1`` to keep it for quicker reruns).
"""

from __future__ import annotations

import os
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import kubernetes
import yaml

REPO = Path(__file__).resolve().parents[2]
CLUSTER_SCRIPT = REPO / "hack" / "cluster" / "cluster.sh"
# Several checkouts on one machine (git worktrees) each run their own test
# cluster by setting MODELOPS_TEST_CLUSTER.
TEST_CLUSTER_NAME = os.environ.get("MODELOPS_TEST_CLUSTER", "modelops-test")

T = TypeVar("T")


@dataclass
class Cluster:
    """A running cluster: its kubeconfig, the binaries, and API clients."""

    kubeconfig: Path
    bin_dir: Path | None
    started_here: bool = False
    api_client: kubernetes.client.ApiClient = field(init=False)

    def __post_init__(self) -> None:
        self.api_client = kubernetes.config.new_client_from_config(str(self.kubeconfig))

    @property
    def core(self) -> kubernetes.client.CoreV1Api:
        return kubernetes.client.CoreV1Api(self.api_client)

    @property
    def apps(self) -> kubernetes.client.AppsV1Api:
        return kubernetes.client.AppsV1Api(self.api_client)

    @property
    def batch(self) -> kubernetes.client.BatchV1Api:
        return kubernetes.client.BatchV1Api(self.api_client)

    @property
    def custom(self) -> kubernetes.client.CustomObjectsApi:
        return kubernetes.client.CustomObjectsApi(self.api_client)

    @property
    def env(self) -> dict[str, str]:
        """Environment for subprocesses (kubectl, the operator) aimed at this cluster."""
        env = dict(os.environ, KUBECONFIG=str(self.kubeconfig))
        if self.bin_dir:
            env["PATH"] = f"{self.bin_dir}{os.pathsep}{env.get('PATH', '')}"
        return env

    def kubectl(
        self, *args: str, input: str | None = None, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        """Run kubectl against this cluster; returns the completed process."""
        proc = subprocess.run(
            ["kubectl", *args],
            input=input,
            capture_output=True,
            text=True,
            env=self.env,
            timeout=120,
        )
        if check and proc.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} failed: {proc.stderr.strip()}")
        return proc

    def apply(self, manifest: dict[str, Any] | str, namespace: str | None = None) -> None:
        body = manifest if isinstance(manifest, str) else yaml.safe_dump(manifest)
        ns = ["-n", namespace] if namespace else []
        self.kubectl("apply", "--server-side", *ns, "-f", "-", input=body)


def start_cluster() -> Cluster:
    external = os.environ.get("MODELOPS_KUBECONFIG")
    if external:
        return Cluster(kubeconfig=Path(external), bin_dir=_bin_dir_if_built())
    proc = subprocess.run(
        [str(CLUSTER_SCRIPT), "up", TEST_CLUSTER_NAME],
        capture_output=True,
        text=True,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"could not start the local cluster:\n{proc.stderr}")
    return Cluster(
        kubeconfig=Path(proc.stdout.strip().splitlines()[-1]),
        bin_dir=_bin_dir_if_built(),
        started_here=True,
    )


def stop_cluster(cluster: Cluster) -> None:
    if cluster.started_here and os.environ.get("MODELOPS_KEEP_CLUSTER") != "1":
        subprocess.run([str(CLUSTER_SCRIPT), "down", TEST_CLUSTER_NAME], capture_output=True)


def _bin_dir_if_built() -> Path | None:
    proc = subprocess.run(
        [str(REPO / "hack" / "controlplane" / "build.sh")],
        capture_output=True,
        text=True,
    )
    return Path(proc.stdout.strip()) if proc.returncode == 0 else None


def fresh_namespace(cluster: Cluster, labels: dict[str, str] | None = None) -> Iterator[str]:
    """Create a uniquely named namespace, yield its name, delete it afterwards."""
    name = f"t-{uuid.uuid4().hex[:8]}"
    body = kubernetes.client.V1Namespace(
        metadata=kubernetes.client.V1ObjectMeta(
            name=name, labels={"modelops.io/test": "true", **(labels or {})}
        )
    )
    cluster.core.create_namespace(body)
    try:
        yield name
    finally:
        cluster.core.delete_namespace(name, propagation_policy="Background")


def wait_for(
    probe: Callable[[], T | None], timeout: float = 60, interval: float = 0.5, what: str = ""
) -> T:
    """Poll ``probe`` until it returns something truthy; fail with ``what`` on timeout."""
    deadline = time.monotonic() + timeout
    last: T | None = None
    while time.monotonic() < deadline:
        last = probe()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what or probe}; last={last!r}")
