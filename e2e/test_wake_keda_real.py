"""KEDA and the activator together: KEDA takes an idle model to zero, a request
wakes it through the activator, and KEDA takes it back to zero after the cooldown.

Real pieces: everything of e2e/test_wake_real.py, plus KEDA built from its Go
module (tests/support/keda.py) evaluating the rendered ScaledObject: the
Prometheus trigger against the local metrics stack (which has no series of
real pods: inactive, as for an idle model) and the activator's metrics-api
trigger on the requests it holds.

Runs when KEDA is built (`make keda`, about 14 min cold on 2 cores; the keda
fixture skips with that reason otherwise), like e2e/test_keda_real.py.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
from kubernetes.client.exceptions import ApiException
from tests.support.cluster import Cluster, wait_for
from tests.support.keda import NOT_CACHED, Keda, cached_build
from tests.support.metrics import MetricsStack
from tests.support.operator import OperatorProcess
from tests.support.project_images import ProjectImages
from tests.support.real_node import RealNode
from tests.support.real_sample import NAME, credentials_secret, publish_model
from tests.support.s3 import S3Server
from tests.support.wake import (
    ActivatorProcess,
    no_pods,
    run_burst,
    running_activator,
    slice_exists,
    wake_sample,
    waking_operator,
    zero_reason,
)

pytestmark = [pytest.mark.cluster, pytest.mark.torch, pytest.mark.keda, pytest.mark.slow]

COOLDOWN_S = 20


@pytest.fixture(scope="module")
def keda(cluster: Cluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Keda]:
    build = cached_build()
    if build is None:
        pytest.skip(NOT_CACHED)
    installed = Keda(cluster, build, tmp_path_factory.mktemp("keda"))
    try:
        installed.start()
        installed.wait_available()
        yield installed
    finally:
        installed.stop()


@pytest.fixture(scope="module")
def activator(
    installed: Cluster, real_node: RealNode, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ActivatorProcess]:
    with running_activator(
        installed, real_node.host_ip, tmp_path_factory.mktemp("activator")
    ) as proc:
        yield proc


@pytest.fixture(scope="module")
def keda_wake_operator(
    operator: OperatorProcess, activator: ActivatorProcess, metrics_stack: MetricsStack
) -> Iterator[OperatorProcess]:
    with waking_operator(
        operator, activator, MODELOPS_PROMETHEUS_ADDRESS=metrics_stack.prometheus_url
    ) as op:
        yield op


def scaled_object(cluster: Cluster, namespace: str) -> dict[str, Any] | None:
    """The model's ScaledObject; None until the operator has created it."""
    try:
        return cluster.custom.get_namespaced_custom_object(
            "keda.sh", "v1alpha1", namespace, "scaledobjects", NAME
        )
    except ApiException as err:
        if err.status == 404:
            return None
        raise


def at_zero(cluster: Cluster, namespace: str) -> bool:
    return zero_reason(cluster, namespace) == "True/WakeOnRequest" and no_pods(cluster, namespace)


def test_keda_takes_a_woken_model_back_to_zero_after_the_cooldown(
    cluster: Cluster,
    keda: Keda,
    keda_wake_operator: OperatorProcess,
    activator: ActivatorProcess,
    real_node: RealNode,
    project_images: ProjectImages,
    pod_store: S3Server,
    tmp_path_factory: pytest.TempPathFactory,
):
    publish_model(pod_store, tmp_path_factory.mktemp("model"))
    namespace = f"wake-keda-{int(time.time()) % 100000}"
    cluster.kubectl("create", "namespace", namespace)
    try:
        cluster.apply(credentials_secret(namespace, pod_store))
        cluster.apply(wake_sample(namespace, real_node, cooldown_s=COOLDOWN_S))
        so: dict[str, Any] = wait_for(
            lambda: scaled_object(cluster, namespace), timeout=120, what="the ScaledObject"
        )
        assert [t["type"] for t in so["spec"]["triggers"]] == ["prometheus", "metrics-api"]
        # Idle from the start: KEDA takes it to zero.
        wait_for(lambda: at_zero(cluster, namespace), timeout=300, interval=1, what="zero")
        wait_for(lambda: slice_exists(cluster, namespace), timeout=60, what="activator slice")

        burst = run_burst(
            cluster, namespace, real_node, project_images.operator, f"{NAME}.{namespace}.svc", 3
        )
        assert [r[0] for r in burst["r"]] == [200] * 3, burst["r"]
        answered = time.monotonic()
        wait_for(
            lambda: at_zero(cluster, namespace),
            timeout=420,
            interval=1,
            what="KEDA to take the model back to zero after the cooldown",
        )
        print(
            f"woken -> back to zero: {time.monotonic() - answered:.1f}s (cooldownSeconds "
            f"{COOLDOWN_S}, activator linger 60s, KEDA polling 30s)"
        )
        wait_for(lambda: slice_exists(cluster, namespace), timeout=60, what="activator slice")
    finally:
        cluster.kubectl("delete", "namespace", namespace, "--wait=false", check=False)
