"""Cluster fixtures shared by tests/ and e2e/: one cluster per session, a
fresh namespace per test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.cluster import Cluster, fresh_namespace, start_cluster, stop_cluster
from tests.support.real_node import RealNode, Unavailable, find_real_node


@pytest.fixture(scope="session")
def cluster() -> Iterator[Cluster]:
    c = start_cluster()
    try:
        yield c
    finally:
        stop_cluster(c)


@pytest.fixture
def namespace(cluster: Cluster) -> Iterator[str]:
    yield from fresh_namespace(cluster)


@pytest.fixture(scope="session")
def real_node(cluster: Cluster) -> RealNode:
    """The cluster's real kubelet node; skips only where this machine cannot run one."""
    try:
        return find_real_node(cluster)
    except Unavailable as e:
        pytest.skip(str(e))
