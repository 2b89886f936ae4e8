"""Fixtures of the Helm chart tests."""

from __future__ import annotations

import pytest

from tests.chart.helm import Helm, build_helm


@pytest.fixture(scope="session")
def helm(tmp_path_factory: pytest.TempPathFactory) -> Helm:
    return Helm(binary=build_helm(), home=tmp_path_factory.mktemp("helm-home"))
