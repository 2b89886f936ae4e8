"""A model at zero wakes on its first requests, on the real node.

Real pieces: the sample served by the project's images on node `real-1`
(kubelet, containerd, kube-proxy, CoreDNS); the operator, which marks the
Service of a model that may reach zero and reports ScaledToZero; the activator
(`modelops activator`, a local process on the host address the node's pods
reach, authenticated with the ServiceAccount of manifests/activator/) which
adds its own EndpointSlice to the Service while no replica is ready; a client
pod sending a burst of HTTP inference through the Service's DNS name.

What stands in for what: the model is taken to zero with `kubectl scale
--replicas=0`, which is what KEDA does after its cooldown; KEDA itself is not
run here (a cold build of it takes tens of minutes; e2e/test_wake_keda_real.py
runs it when cached). The hold timeout is tested with an activator whose timeout
(2 s) no cold start can beat.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from tests.support.cluster import Cluster, wait_for
from tests.support.operator import OperatorProcess, wait_ready
from tests.support.project_images import ProjectImages
from tests.support.real_node import RealNode
from tests.support.real_sample import NAME, credentials_secret, publish_model
from tests.support.s3 import S3Server
from tests.support.wake import (
    ACTIVATOR_ACCOUNT,
    ActivatorProcess,
    Reasons,
    install_activator_rbac,
    no_pods,
    pod_timeline,
    run_burst,
    running_activator,
    scale_deployment,
    serving_pod,
    slice_exists,
    wake_sample,
    waking_operator,
    zero_reason,
)

pytestmark = [pytest.mark.cluster, pytest.mark.torch, pytest.mark.slow]

QUEUE_LIMIT = 8
BEYOND = 4  # requests past the queue limit in the same burst
RETRY_AFTER_S = 5


@pytest.fixture(scope="module")
def published(pod_store: S3Server, tmp_path_factory: pytest.TempPathFactory) -> Any:
    return publish_model(pod_store, tmp_path_factory.mktemp("model"))


@pytest.fixture(scope="module")
def activator(
    installed: Cluster, real_node: RealNode, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ActivatorProcess]:
    with running_activator(
        installed,
        real_node.host_ip,
        tmp_path_factory.mktemp("activator"),
        queue_limit=QUEUE_LIMIT,
        timeout_s=300,
        retry_after_s=RETRY_AFTER_S,
    ) as proc:
        yield proc


@pytest.fixture(scope="module")
def wake_operator(
    operator: OperatorProcess, activator: ActivatorProcess
) -> Iterator[OperatorProcess]:
    with waking_operator(operator, activator) as op:
        yield op


@pytest.fixture(scope="module")
def sleeping(
    cluster: Cluster,
    wake_operator: OperatorProcess,
    real_node: RealNode,
    project_images: ProjectImages,
    pod_store: S3Server,
    published: Any,
) -> Iterator[str]:
    """The sample served once (images on the node, as for a model that has run
    before), then taken to zero; yields its namespace."""
    namespace = f"wake-{int(time.time()) % 100000}"
    cluster.kubectl("create", "namespace", namespace)
    try:
        cluster.apply(credentials_secret(namespace, pod_store))
        cluster.apply(wake_sample(namespace, real_node))
        wait_ready(cluster, namespace, NAME, timeout=420)
        scale_deployment(cluster, namespace, 0)
        wait_for(lambda: no_pods(cluster, namespace), timeout=120, what="the pods to go")
        yield namespace
    finally:
        cluster.kubectl("delete", "namespace", namespace, "--wait=false", check=False)


def test_a_burst_at_zero_is_held_and_all_of_it_answered_once_a_replica_is_ready(
    cluster: Cluster,
    sleeping: str,
    activator: ActivatorProcess,
    real_node: RealNode,
    project_images: ProjectImages,
    published: Any,
):
    namespace = sleeping
    # At zero: the activator is in the Service's path and status says why.
    wait_for(lambda: slice_exists(cluster, namespace), timeout=60, what="the activator's slice")
    wait_for(
        lambda: zero_reason(cluster, namespace) == "True/WakeOnRequest",
        timeout=60,
        what="ScaledToZero True/WakeOnRequest",
    )

    host = f"{NAME}.{namespace}.svc"
    with Reasons(cluster, namespace) as reasons:
        burst = run_burst(
            cluster, namespace, real_node, project_images.operator, host, QUEUE_LIMIT + BEYOND
        )
        wait_for(
            lambda: reasons.seen[-1:] == ["False/Serving"],
            timeout=60,
            what="ScaledToZero False/Serving",
        )
    results = burst["r"]
    statuses = [r[0] for r in results]
    print(f"statuses {statuses}; ScaledToZero went {' -> '.join(reasons.seen)}")
    print(f"activator: {activator.activity(namespace, NAME)}")
    # None lost: every request has an answer, a 200 for each one held ...
    assert 0 not in statuses, results
    answered = [r for r in results if r[0] == 200]
    refused = [r for r in results if r[0] == 503]
    assert len(answered) == QUEUE_LIMIT and len(refused) == BEYOND, statuses
    # ... with the model's own output,
    x = np.asarray(burst["x"], dtype=np.float32)
    import torch

    with torch.no_grad():
        expected = published(torch.from_numpy(x)).numpy().ravel()
    for r in answered:
        np.testing.assert_allclose(np.asarray(r[2], dtype=np.float32), expected, rtol=1e-5)
    # ... and the ones beyond the queue limit at once, told when to come back.
    slowest_held = min(r[4] for r in answered)
    for r in refused:
        assert r[1] == str(RETRY_AFTER_S)
        assert r[4] < slowest_held
    wake = activator.activity(namespace, NAME)["lastWake"]
    assert wake["scaledAfterS"] is not None and wake["readyAfterS"] >= wake["scaledAfterS"]
    # The status went through the wake in order, without flapping.
    assert reasons.seen == ["True/WakeOnRequest", "False/Waking", "False/Serving"], reasons.seen
    print_breakdown(cluster, namespace, answered, wake, lost=QUEUE_LIMIT - len(answered))

    # With a replica ready the activator leaves the path: its slice goes, and
    # requests reach the pod without it (it forwards none of them).
    wait_for(lambda: not slice_exists(cluster, namespace), timeout=60, what="the slice to go")
    forwarded = activator.activity(namespace, NAME)["forwarded"]
    again = run_burst(cluster, namespace, real_node, project_images.operator, host, 3)
    assert [r[0] for r in again["r"]] == [200] * 3
    assert activator.activity(namespace, NAME)["forwarded"] == forwarded


def print_breakdown(
    cluster: Cluster, namespace: str, answered: list, wake: dict, lost: int
) -> None:
    """The figures bench/autoscaling/wake.py collects. Wall clocks: the client pod,
    the API server and this process share this machine's clock; the pod's times
    have the API's one-second resolution."""
    pod = serving_pod(cluster, namespace)
    assert pod is not None
    t = pod_timeline(pod)
    first = min(answered, key=lambda r: r[3])
    sent, done = first[3], first[3] + first[4]
    print(f"first request at zero -> its answer: {done - sent:.1f}s")
    print(f"scale decision (request held -> Deployment scaled): {wake['scaledAfterS']:.1f}s")
    if t["created"] is not None and t["started"] is not None:
        print(
            f"pod start (created -> Triton started, model pull included): "
            f"{t['started'] - t['created']:.1f}s"
        )
    if t["pulled"] is not None and t["created"] is not None:
        print(
            f"  of which model pull (created -> pull-model done): {t['pulled'] - t['created']:.1f}s"
        )
    if t["started"] is not None and t["ready"] is not None:
        print(f"model load (Triton started -> Ready): {t['ready'] - t['started']:.1f}s")
    if t["ready"] is not None:
        print(f"release (Ready -> first answer): {done - t['ready']:.1f}s")
    print(f"requests lost: {lost}")


def test_back_at_zero_the_activator_returns_to_the_path(
    cluster: Cluster, sleeping: str, activator: ActivatorProcess
):
    """What KEDA does after the cooldown (here by hand, see the module docstring):
    the replicas go, and the activator's slice is back before the next request."""
    namespace = sleeping
    scale_deployment(cluster, namespace, 0)
    wait_for(lambda: no_pods(cluster, namespace), timeout=120, what="the pods to go")
    wait_for(lambda: slice_exists(cluster, namespace), timeout=60, what="the activator's slice")
    wait_for(
        lambda: zero_reason(cluster, namespace) == "True/WakeOnRequest",
        timeout=60,
        what="ScaledToZero True/WakeOnRequest",
    )


def test_a_request_held_past_the_timeout_gets_503_with_retry_after(
    cluster: Cluster,
    sleeping: str,
    activator: ActivatorProcess,
    real_node: RealNode,
    project_images: ProjectImages,
    tmp_path: Path,
):
    """At zero again (the test above), an activator whose hold timeout (2 s) is
    shorter than any cold start: the held requests are answered 503 with
    Retry-After when it runs out, through kube-proxy as the client sees it, and
    the wake it started goes on."""
    namespace = sleeping
    activator.stop()  # one activator per Service: they would share its slice
    with running_activator(
        cluster, real_node.host_ip, tmp_path, timeout_s=2, retry_after_s=RETRY_AFTER_S
    ) as impatient:
        wait_for(
            lambda: impatient.url.rsplit(":", 1)[1] in own_slice_ports(cluster, namespace),
            timeout=60,
            what="the slice to name the new activator",
        )
        burst = run_burst(
            cluster, namespace, real_node, project_images.operator, f"{NAME}.{namespace}.svc", 2
        )
        results = burst["r"]
        assert [(r[0], r[1]) for r in results] == [(503, str(RETRY_AFTER_S))] * 2, results
        # Held for the timeout, not refused at once, and not much longer.
        assert all(2 <= r[4] < 30 for r in results), results
        # The wake went on: the Deployment was asked for a replica.
        wait_for(
            lambda: zero_reason(cluster, namespace) in ("False/Waking", "False/Serving"),
            timeout=60,
            what="ScaledToZero to leave WakeOnRequest",
        )


def own_slice_ports(cluster: Cluster, namespace: str) -> str:
    return cluster.kubectl(
        "get", "endpointslice", "-n", namespace, f"{NAME}-wake",
        "-o", "jsonpath={.ports[*].port}", check=False,
    ).stdout  # fmt: skip


def test_the_manifest_grants_what_the_activator_uses(installed: Cluster, tmp_path: Path):
    """The activator's ServiceAccount may do exactly its job: scale Deployments,
    manage EndpointSlices, read Services; not read Secrets."""
    install_activator_rbac(installed)
    ns, name = ACTIVATOR_ACCOUNT
    who = f"--as=system:serviceaccount:{ns}:{name}"
    for verb, resource, allowed in [
        ("patch", "deployments.apps", "yes"),
        ("create", "endpointslices.discovery.k8s.io", "yes"),
        ("delete", "endpointslices.discovery.k8s.io", "yes"),
        ("list", "services", "yes"),
        ("get", "secrets", "no"),
        ("delete", "deployments.apps", "no"),
    ]:
        out = installed.kubectl("auth", "can-i", verb, resource, "-A", who, check=False)
        assert out.stdout.strip() == allowed, (verb, resource, out.stdout, out.stderr)
