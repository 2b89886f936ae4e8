"""End-to-end fixtures: the operator, installed with the manifests' RBAC and
run as a local process, against the session's cluster."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.support.cluster import Cluster
from tests.support.operator import (
    OperatorProcess,
    free_port,
    install,
    service_account_kubeconfig,
)


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
    operator is pointed at the one real sidecar (a local process) instead.
    """
    return free_port()


@pytest.fixture(scope="session")
def operator(
    operator_kubeconfig: Path, tmp_path_factory: pytest.TempPathFactory, drift_admin_port: int
) -> Iterator[OperatorProcess]:
    log = tmp_path_factory.mktemp("op-log") / "operator.log"
    op = OperatorProcess(
        kubeconfig=operator_kubeconfig,
        log_path=log,
        extra_env={"MODELOPS_DRIFT_URL": f"http://127.0.0.1:{drift_admin_port}/drift"},
    ).start()
    try:
        yield op
    finally:
        op.stop()
