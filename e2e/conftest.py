"""End-to-end fixtures: the operator, installed with the manifests' RBAC and
run as a local process, against the session's cluster."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.support.cluster import Cluster
from tests.support.operator import OperatorProcess, install, service_account_kubeconfig


@pytest.fixture(scope="session")
def installed(cluster: Cluster) -> Cluster:
    install(cluster)
    return cluster


@pytest.fixture(scope="session")
def operator_kubeconfig(installed: Cluster, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return service_account_kubeconfig(installed, tmp_path_factory.mktemp("op") / "kubeconfig")


@pytest.fixture(scope="session")
def operator(
    operator_kubeconfig: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[OperatorProcess]:
    log = tmp_path_factory.mktemp("op-log") / "operator.log"
    op = OperatorProcess(kubeconfig=operator_kubeconfig, log_path=log).start()
    try:
        yield op
    finally:
        op.stop()
