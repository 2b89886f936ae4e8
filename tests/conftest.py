"""Shared fixtures: the local cluster (session-wide), a namespace per test,
and the Triton / S3 fixtures from tests/support."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.cluster import Cluster, fresh_namespace, start_cluster, stop_cluster

pytest_plugins = ["tests.support.triton", "tests.support.s3"]


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
