"""End-to-end fixtures: the operator, installed with the manifests' RBAC and
run as a local process, against the session's cluster."""

from __future__ import annotations

import contextlib
import importlib.metadata
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.support.cluster import Cluster
from tests.support.metrics import MetricsStack, start_metrics_stack, stop_metrics_stack
from tests.support.operator import (
    OperatorProcess,
    free_port,
    install,
    service_account_kubeconfig,
)
from tests.support.real_node import Unavailable, find_real_node


@pytest.fixture(scope="session")
def installed(cluster: Cluster) -> Cluster:
    install(cluster)
    return cluster


@pytest.fixture(scope="session")
def operator_kubeconfig(installed: Cluster, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return service_account_kubeconfig(installed, tmp_path_factory.mktemp("op") / "kubeconfig")


@pytest.fixture(scope="session")
def drift_admin_port() -> int:
    """Where the drift e2e test runs its sidecar's admin endpoint.

    Pods on the local cluster are simulated, so their IPs lead nowhere; the
    test maps its pods to the one real sidecar (a local process) in the
    sidecar map (MODELOPS_SIDECAR_MAP), the operator's only address override.
    """
    return free_port()


@pytest.fixture(scope="session")
def sidecar_map(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Where the operator looks up each simulated pod's sidecar (the gated-rollout e2e
    runs the sidecars as local processes and writes the mapping here)."""
    path = tmp_path_factory.mktemp("sidecars") / "map.json"
    path.write_text("{}")
    os.environ["MODELOPS_SIDECAR_MAP"] = str(path)
    yield path
    os.environ.pop("MODELOPS_SIDECAR_MAP", None)


def local_image(name: str) -> str:
    """The reference hack/images/build.sh gives the image ``name`` of this version."""
    return f"localhost/modelops-{name}:{importlib.metadata.version('modelops')}"


def store_endpoints(cluster: Cluster) -> str:
    """The S3 endpoints the tests' credentials Secrets name: moto on loopback, and moto
    on the real node's host address (tests/support/real_sample.py's pod store), any port."""
    endpoints = ["http://127.0.0.1"]
    # No real node (or a broken one, which its own tests report): its store is unused.
    with contextlib.suppress(Unavailable, AssertionError):
        endpoints.append(f"http://{find_real_node(cluster).host_ip}")
    return ",".join(endpoints)


@pytest.fixture(scope="session")
def operator(
    installed: Cluster,
    operator_kubeconfig: Path,
    tmp_path_factory: pytest.TempPathFactory,
    sidecar_map: Path,
) -> Iterator[OperatorProcess]:
    log = tmp_path_factory.mktemp("op-log") / "operator.log"
    op = OperatorProcess(
        kubeconfig=operator_kubeconfig,
        log_path=log,
        extra_env={
            "MODELOPS_SIDECAR_MAP": str(sidecar_map),
            # A version written into a store by hand is found within seconds, not a
            # minute (e2e/test_latest_store.py).
            "MODELOPS_STORE_INTERVAL_SECONDS": "2",
            # The moto endpoints the tests' Secrets name (the operator refuses others).
            "MODELOPS_STORE_ENDPOINTS": store_endpoints(installed),
            # What pods on the real node run (hack/images/build.sh, imported by the
            # project_images fixture); pods on KWOK's nodes never pull anything.
            "MODELOPS_IMAGE": local_image("operator"),
            "MODELOPS_TRITON_IMAGE": local_image("runtime"),
            # The real node's nvidia.com/gpu are advertised without CUDA behind
            # them: GPU pods' models are KIND_AUTO, so Triton serves them on CPU
            # there (e2e/test_real_serving.py asks for one).
            "MODELOPS_GPU_INSTANCE_KIND": "auto",
        },
    ).start()
    try:
        yield op
    finally:
        op.stop()


@pytest.fixture(scope="module")
def metrics_stack(cluster: Cluster) -> Iterator[MetricsStack]:
    """Prometheus + prometheus-adapter (and the aggregation layer's registrations) for the
    autoscaling e2e modules; a stack `make dev` left running is reused and left alone."""
    stack = start_metrics_stack(cluster)
    try:
        yield stack
    finally:
        stop_metrics_stack(cluster, stack)
