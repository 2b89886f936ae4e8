"""KEDA scales a ModelDeployment to zero and back, for real.

Real pieces: KEDA built from its Go module (operator and external-metrics API
server, tests/support/keda.py) with the release's CRDs; the aggregation layer
of the local API server serving KEDA's external.metrics.k8s.io; the HPA
controller in kube-controller-manager reading it; the local metrics stack's
Prometheus (hack/metrics/stack.sh) scraping a real tritonserver; the operator
rendering the ScaledObject whose Prometheus trigger KEDA evaluates. Simulated: only the pods (KWOK).

Scale from zero needs a series that exists while no pod does: Triton's own
metrics vanish with the last pod (see spec.autoscaling.minReplicas in
docs/api.md). Here one real tritonserver stands in for that traffic: its
series carry the labels of a pod of the Deployment, so the rendered query sees
its requests whether or not a pod exists. Requests to it are what fires the
trigger.

Runs only when KEDA is built (`make keda`): a cold build takes longer than the
CI budget leaves, so CI runs this module when its cache holds the binaries.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
import tritonclient.http as httpclient
from kubernetes.client.exceptions import ApiException
from tests.drift.conftest import MODEL, N_FEATURES, write_model_repository
from tests.support.cluster import Cluster, wait_for
from tests.support.keda import NOT_CACHED, Keda, cached_build
from tests.support.metrics import (
    MetricsStack,
    attribute,
    forget,
)
from tests.support.operator import OperatorProcess, condition, get_md, restarted_with
from tests.support.triton_server import TritonServer

pytestmark = [pytest.mark.cluster, pytest.mark.triton, pytest.mark.keda, pytest.mark.slow]

# Short enough for a test, long enough that one KEDA polling interval (30 s)
# of quiet is not taken for idleness on its own.
COOLDOWN_S = 15
PROMETHEUS_ENV = "MODELOPS_PROMETHEUS_ADDRESS"


@pytest.fixture(scope="module")
def keda(cluster: Cluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Keda]:
    build = cached_build()
    if build is None:
        pytest.skip(NOT_CACHED)
    installed = Keda(cluster, build, tmp_path_factory.mktemp("keda"))
    try:
        yield installed
    finally:
        installed.stop()


@pytest.fixture(scope="module")
def keda_operator(
    operator: OperatorProcess, metrics_stack: MetricsStack
) -> Iterator[OperatorProcess]:
    """The session's operator, restarted to render the local Prometheus into
    KEDA's triggers (MODELOPS_PROMETHEUS_ADDRESS, read at start), then restored."""
    with restarted_with(operator, {PROMETHEUS_ENV: metrics_stack.prometheus_url}) as op:
        yield op


@pytest.fixture(scope="module")
def triton(triton_factory, tmp_path_factory: pytest.TempPathFactory) -> TritonServer:
    return triton_factory(write_model_repository(tmp_path_factory.mktemp("repo")))


def scale_to_zero_md(name: str) -> dict[str, Any]:
    return {
        "apiVersion": "modelops.io/v1alpha1",
        "kind": "ModelDeployment",
        "metadata": {"name": name},
        "spec": {
            "model": {"storageUri": f"file:///models/{name}", "version": "1", "name": MODEL},
            "resources": {"gpu": {"count": 1}, "cpu": "1", "memory": "2Gi"},
            "autoscaling": {
                "engine": "keda",
                "minReplicas": 0,
                "maxReplicas": 2,
                "cooldownSeconds": COOLDOWN_S,
                # Requests in flight (Little's law over Triton's duration counter):
                # any request at all makes the trigger active.
                "metric": {"type": "concurrency", "target": 2},
            },
        },
    }


def deployment_replicas(cluster: Cluster, namespace: str, name: str) -> int | None:
    """spec.replicas of the Triton Deployment; None before the operator created it."""
    try:
        return cluster.apps.read_namespaced_deployment(name, namespace).spec.replicas
    except ApiException as e:
        if e.status == 404:
            return None
        raise


def scaled_to_zero(cluster: Cluster, namespace: str, name: str) -> dict | None:
    """The live ModelDeployment once its Deployment is at zero and status says so."""
    if deployment_replicas(cluster, namespace, name) != 0:
        return None
    live = get_md(cluster, namespace, name)
    ready = condition(live, "Ready")
    return live if (ready.get("status"), ready.get("reason")) == ("True", "ScaledToZero") else None


def serving(cluster: Cluster, namespace: str, name: str) -> dict | None:
    live = get_md(cluster, namespace, name)
    ready = condition(live, "Ready")
    up = (live.get("status") or {}).get("readyReplicas", 0) >= 1
    serves = (ready.get("status"), ready.get("reason")) == ("True", "Serving")
    return live if up and serves else None


def keda_hpa_exists(cluster: Cluster, namespace: str, name: str) -> bool:
    """KEDA's own HPA, which it creates for the 1 <-> N range."""
    hpas = cluster.kubectl("get", "hpa", "-n", namespace, "-o", "name", check=False)
    return f"horizontalpodautoscaler.autoscaling/keda-hpa-{name}" in hpas.stdout.split()


class Load:
    """Requests to the real Triton from a few threads until stopped."""

    def __init__(self, url: str, threads: int = 4) -> None:
        self.url = url
        self.stopping = threading.Event()
        self.sent = 0
        self.threads = [threading.Thread(target=self._run, daemon=True) for _ in range(threads)]

    def __enter__(self) -> Load:
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stopping.set()
        for t in self.threads:
            t.join(timeout=30)

    def _run(self) -> None:
        client = httpclient.InferenceServerClient(self.url)
        rng = np.random.default_rng()
        while not self.stopping.is_set():
            x = rng.normal(size=(64, N_FEATURES)).astype(np.float32)
            inp = httpclient.InferInput("INPUT0", list(x.shape), "FP32")
            inp.set_data_from_numpy(x)
            client.infer(MODEL, [inp])
            self.sent += 1


def rendered_query(cluster: Cluster, namespace: str, name: str) -> str:
    so = cluster.custom.get_namespaced_custom_object(
        "keda.sh", "v1alpha1", namespace, "scaledobjects", name
    )
    [trigger] = so["spec"]["triggers"]
    return trigger["metadata"]["query"]


def test_keda_installed_later_takes_over_and_scales_an_idle_model_to_zero(
    cluster: Cluster, keda_operator: OperatorProcess, namespace: str, keda: Keda
):
    crd = cluster.kubectl("get", "crd", "scaledobjects.keda.sh", check=False)
    assert crd.returncode != 0, "KEDA's CRDs are already installed: this test installs them"
    cluster.apply(scale_to_zero_md("later"), namespace)

    def reason() -> str | None:
        return condition(get_md(cluster, namespace, "later"), "AutoscalerReady").get("reason")

    wait_for(lambda: reason() == "KEDANotInstalled", timeout=60, what="KEDANotInstalled")

    keda.start()
    keda.wait_available()

    def autoscaler_ready() -> dict | None:
        live = get_md(cluster, namespace, "later")
        return live if condition(live, "AutoscalerReady").get("status") == "True" else None

    live = wait_for(autoscaler_ready, timeout=120, what="AutoscalerReady=True from KEDA")
    assert condition(live, "AutoscalerReady")["reason"] == "ScaledObjectReady"
    wait_for(lambda: keda_hpa_exists(cluster, namespace, "later"), timeout=60, what="keda-hpa")

    # Nothing has been asked of this model: KEDA takes it to zero after the
    # cooldown, and the status says it is at zero by design.
    start = time.monotonic()
    live = wait_for(
        lambda: scaled_to_zero(cluster, namespace, "later"),
        timeout=180,
        interval=1,
        what="KEDA to scale the idle model to zero",
    )
    print(f"keda installed -> idle model at zero: {time.monotonic() - start:.1f}s")
    assert live["status"].get("readyReplicas", 0) == 0
    # The external metric KEDA serves is reachable through the aggregation
    # layer, as the HPA controller reads it.
    raw = cluster.kubectl(
        "get",
        "--raw",
        f"/apis/external.metrics.k8s.io/v1beta1/namespaces/{namespace}/s0-prometheus"
        f"?labelSelector=scaledobject.keda.sh%2Fname%3Dlater",
    )
    assert '"metricName":"s0-prometheus"' in raw.stdout.replace(" ", ""), raw.stdout


def test_idle_model_goes_to_zero_and_a_request_brings_it_back(
    cluster: Cluster,
    keda_operator: OperatorProcess,
    namespace: str,
    keda: Keda,
    metrics_stack: MetricsStack,
    triton: TritonServer,
    request: pytest.FixtureRequest,
):
    keda.start()
    keda.wait_available()
    name = "wake"
    # The stand-in for traffic seen while no pod exists (module docstring).
    standin = f"{name}-standin-0"
    attribute(
        metrics_stack.targets, "triton", namespace, standin, f"{triton.host}:{triton.metrics_port}"
    )
    request.addfinalizer(lambda: forget(metrics_stack.targets, "triton", namespace, standin))
    cluster.apply(scale_to_zero_md(name), namespace)
    wait_for(
        lambda: scaled_to_zero(cluster, namespace, name),
        timeout=240,
        interval=1,
        what="KEDA to scale the idle model to zero",
    )
    query = rendered_query(cluster, namespace, name)

    start = time.monotonic()
    with Load(triton.http_address) as load:
        active = wait_for(
            lambda: [v for r in metrics_stack.query(query) if (v := float(r["value"][1])) > 0],
            timeout=60,
            what=f"the trigger's query to see the load: {query}",
        )
        live = wait_for(
            lambda: serving(cluster, namespace, name),
            timeout=180,
            interval=0.5,
            what="KEDA to bring the model back from zero",
        )
        woke = time.monotonic() - start
        assert load.sent > 0
    stopped = time.monotonic()
    print(f"trigger -> first replica Ready: {woke:.1f}s")
    assert active[0] > 0
    assert live["status"]["readyReplicas"] >= 1
    assert (deployment_replicas(cluster, namespace, name) or 0) >= 1

    live = wait_for(
        lambda: scaled_to_zero(cluster, namespace, name),
        timeout=300,
        interval=1,
        what="KEDA to scale back to zero once the load stopped",
    )
    print(
        f"idle -> zero: {time.monotonic() - stopped:.1f}s "
        f"(cooldownSeconds {COOLDOWN_S}, 1m rate window, KEDA polling 30s)"
    )
    assert live["status"].get("readyReplicas", 0) == 0
