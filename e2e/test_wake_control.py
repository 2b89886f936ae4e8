"""The activator's control loop against the real API server, with simulated pods.

Real: the API server (EndpointSlice validation, RBAC of manifests/activator/
through the activator's ServiceAccount token), the EndpointSlice controller,
the operator marking the Service and reporting ScaledToZero, the activator
process. Simulated: the pods (KWOK marks them Ready; they serve nothing), so
the held request's forward is not checked here: e2e/test_wake_real.py does
the data path with real pods on the real node.
"""

from __future__ import annotations

import contextlib
import threading
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
from tests.support.cluster import Cluster, wait_for
from tests.support.keda import host_address
from tests.support.operator import OperatorProcess
from tests.support.wake import (
    ActivatorProcess,
    running_activator,
    slice_exists,
    waking_operator,
    zero_reason,
)

pytestmark = [pytest.mark.cluster, pytest.mark.slow]

NAME = "sleepy"


@pytest.fixture(scope="module")
def activator(
    installed: Cluster, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ActivatorProcess]:
    # A slice may not name a loopback address: this machine's own.
    work = tmp_path_factory.mktemp("activator")
    with running_activator(installed, host_address(), work) as proc:
        yield proc


@pytest.fixture(scope="module")
def wake_operator(
    operator: OperatorProcess, activator: ActivatorProcess
) -> Iterator[OperatorProcess]:
    with waking_operator(operator, activator) as op:
        yield op


def sleepy_md() -> dict[str, Any]:
    return {
        "apiVersion": "modelops.io/v1alpha1",
        "kind": "ModelDeployment",
        "metadata": {"name": NAME},
        "spec": {
            "model": {"storageUri": f"file:///models/{NAME}", "version": "1", "name": "m"},
            "resources": {"gpu": {"count": 1}, "cpu": "1", "memory": "2Gi"},
            "autoscaling": {
                "engine": "keda",
                "minReplicas": 0,
                "maxReplicas": 1,
                "metric": {"type": "concurrency", "target": 2},
            },
        },
    }


def replicas(cluster: Cluster, namespace: str) -> int | None:
    return cluster.apps.read_namespaced_deployment(NAME, namespace).spec.replicas


def test_at_zero_the_activator_joins_the_service_wakes_the_model_and_leaves(
    cluster: Cluster, wake_operator: OperatorProcess, activator: ActivatorProcess, namespace: str
):
    cluster.apply(sleepy_md(), namespace)
    service = wait_for(
        lambda: (
            cluster.core.read_namespaced_service(NAME, namespace)
            if own_labels(cluster, namespace).get("modelops.io/wake") == "on"
            else None
        ),
        timeout=60,
        what="the Service marked for the activator",
    )
    assert service.metadata.annotations["modelops.io/wake-deployment"] == NAME
    # KEDA's scale to zero, by hand (KEDA is not run here).
    cluster.kubectl("scale", "deployment", NAME, "-n", namespace, "--replicas=0")
    wait_for(
        lambda: slice_exists(cluster, namespace, NAME), timeout=60, what="the activator's slice"
    )
    live = cluster.kubectl(
        "get", "endpointslice", "-n", namespace, f"{NAME}-wake", "-o", "jsonpath={.endpoints}"
    ).stdout
    assert activator.host in live
    wait_for(
        lambda: zero_reason(cluster, namespace, NAME) == "True/WakeOnRequest",
        timeout=60,
        what="ScaledToZero True/WakeOnRequest",
    )

    # A request for the model, as kube-proxy would deliver it: held, and it scales up.
    def send() -> None:
        req = urllib.request.Request(
            f"{activator.url}/v2/models/m/infer",
            data=b"{}",
            headers={"Host": f"{NAME}.{namespace}.svc:8000"},
        )
        # The simulated pod serves nothing; the forward is not checked here.
        with contextlib.suppress(OSError):
            urllib.request.urlopen(req, timeout=30).read()

    threading.Thread(target=send, daemon=True).start()
    wait_for(lambda: replicas(cluster, namespace) == 1, timeout=30, what="the activator's 0 -> 1")
    seen = wait_for(
        lambda: (
            activator.activity(namespace, NAME).get("lastWake", {}).get("scaledAfterS") is not None
        ),
        timeout=30,
        what="the wake recorded",
    )
    assert seen
    # KWOK's pod turns Ready: the activator leaves the path, status says Serving.
    wait_for(lambda: not slice_exists(cluster, namespace, NAME), timeout=90, what="the slice to go")
    wait_for(
        lambda: zero_reason(cluster, namespace, NAME) == "False/Serving",
        timeout=60,
        what="ScaledToZero False/Serving",
    )


def own_labels(cluster: Cluster, namespace: str) -> dict[str, str]:
    try:
        return cluster.core.read_namespaced_service(NAME, namespace).metadata.labels or {}
    except Exception:  # not created yet
        return {}
