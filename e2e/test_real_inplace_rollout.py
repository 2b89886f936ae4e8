"""An in-place rollout on a real pod on the real node, under real client traffic.

e2e/test_inplace_rollout.py drives the same placement with KWOK's pods and a local
Triton; here nothing stands in for the kubelet: the sample serves version 1 on node
``real-1`` with ``placement: InPlace``, so its Triton runs in explicit model control
and its sidecar runs the in-place agent. Version 2 is published to the S3 store
and the spec asks for it: the agent pulls it into the running pod's model
repository, loads it beside version 1 as ``<model>.candidate``, the sidecar
mirrors every client request to it, and the operator decides from the figures the
sidecar serves. What the placement promises, checked on the live objects:

- no second Deployment, no new pod, no new GPU request during the whole rollout;
- the promotion swaps the model inside the pod: the same pod uid and unchanged
  restart counts afterwards, and the clients answered by the new version;
- a client pod sending HTTP and gRPC inference the whole time sees no error.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from tests.support.cluster import Cluster, wait_for
from tests.support.operator import OperatorProcess, get_md, wait_ready
from tests.support.project_images import ProjectImages
from tests.support.real_node import RealNode
from tests.support.real_sample import (
    NAME,
    credentials_secret,
    publish_model,
    sample_for_the_real_node,
)
from tests.support.s3 import S3Server

from e2e.test_real_gated_rollout import LoopClient, Watch, publish_version, rollout_of

pytestmark = [pytest.mark.cluster, pytest.mark.torch, pytest.mark.slow, pytest.mark.timeout(1500)]

IN_PLACE = {
    "strategy": "Shadow",
    "placement": "InPlace",
    "shadow": {"mirrorPercent": 100, "requests": 100},
    "analysis": {
        "minRequests": 100,
        "minAgreement": 0.9,
        "maxErrorRateIncrease": 0.05,
        "progressDeadline": "6m",
    },
}


@pytest.fixture(scope="module")
def served_in_place(
    cluster: Cluster,
    operator: OperatorProcess,
    real_node: RealNode,
    project_images: ProjectImages,
    pod_store: S3Server,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[str, dict[str, Any]]]:
    """Version 1 served by one pod on the real node, its rollouts placed in place."""
    publish_model(pod_store, tmp_path_factory.mktemp("v1"), seed=11)
    namespace = f"realinplace-{int(time.time()) % 100000}"
    cluster.kubectl("create", "namespace", namespace)
    body = sample_for_the_real_node(namespace, real_node)
    body["spec"]["model"]["version"] = "1"
    body["spec"]["rollout"] = {**body["spec"]["rollout"], **IN_PLACE}
    body["spec"].pop("autoscaling", None)  # no metrics adapter here: one fixed replica
    body["spec"]["replicas"] = 1
    try:
        cluster.apply(credentials_secret(namespace, pod_store))
        cluster.apply(body)
        wait_ready(cluster, namespace, NAME, timeout=420)
        wait_for(
            lambda: rollout_of(get_md(cluster, namespace, NAME)).get("stable") == "1",
            timeout=60,
            what="version 1 stable",
        )
        yield namespace, body
    finally:
        cluster.kubectl("delete", "namespace", namespace, "--wait=false", check=False)


def serving_pods(cluster: Cluster, namespace: str) -> dict[str, tuple[str, int]]:
    """name -> (uid, total container restarts) of the ModelDeployment's live pods."""
    pods = cluster.core.list_namespaced_pod(
        namespace, label_selector=f"modelops.io/model-deployment={NAME}"
    ).items
    return {
        p.metadata.name: (
            p.metadata.uid,
            sum(s.restart_count for s in (p.status.container_statuses or [])),
        )
        for p in pods
        if p.metadata.deletion_timestamp is None
    }


class Census:
    """Counts, on a thread, the Deployments and pods the ModelDeployment ever has."""

    def __init__(self, cluster: Cluster, namespace: str) -> None:
        self.cluster, self.namespace = cluster, namespace
        self.deployments: set[str] = set()
        self.pods: set[str] = set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Census:
        self._thread.start()
        return self

    def __exit__(self, *_: Any) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _run(self) -> None:
        selector = f"modelops.io/model-deployment={NAME}"
        while not self._stop.is_set():
            try:
                apps = self.cluster.apps.list_namespaced_deployment(
                    self.namespace, label_selector=selector
                )
                pods = self.cluster.core.list_namespaced_pod(
                    self.namespace, label_selector=selector
                )
            except Exception as err:  # the API server busy: the next look counts
                print(f"census: {err}")
            else:
                self.deployments |= {d.metadata.name for d in apps.items}
                self.pods |= {p.metadata.uid for p in pods.items}
            self._stop.wait(0.5)


def test_a_good_candidate_in_place_on_a_real_pod_is_promoted_without_a_new_pod(
    cluster: Cluster,
    served_in_place: tuple[str, dict[str, Any]],
    pod_store: S3Server,
    real_node: RealNode,
    project_images: ProjectImages,
    tmp_path: Path,
) -> None:
    namespace, body = served_in_place
    before = serving_pods(cluster, namespace)
    assert len(before) == 1, before
    host = f"{NAME}.{namespace}.svc.cluster.local"
    client = LoopClient(cluster, namespace, real_node, project_images.operator, host).start()
    try:
        with Census(cluster, namespace) as census, Watch(cluster, namespace) as watch:
            # Same weights as version 1: the candidate agrees on every mirrored request.
            version = publish_version(pod_store, tmp_path, seed=11)
            body["spec"]["model"]["version"] = version
            cluster.apply(body)

            placements: set[str] = set()

            def decided() -> dict[str, Any] | None:
                rollout = rollout_of(get_md(cluster, namespace, NAME))
                if rollout.get("candidate") and rollout.get("placement"):
                    placements.add(rollout["placement"])
                if client.phase() != "Running":
                    raise AssertionError(f"the client pod stopped: {client.tally()}")
                done = rollout.get("phase") in ("Idle", "RolledBack") and not rollout.get(
                    "candidate"
                )
                return rollout if done else None

            final = wait_for(decided, timeout=480, interval=1, what=f"a verdict on {version}")
            wait_for(
                lambda: client.tally().get("versions", {}).get(version, 0) >= 10,
                timeout=90,
                what=f"the client answered by version {version}",
            )
        tally = client.tally()
    finally:
        failures = client.failures()
        client.stop()
    print(f"client: {tally}; phases {watch.phases}; census {census.deployments}")
    assert final["phase"] == "Idle" and final["stable"] == version, final
    md = get_md(cluster, namespace, NAME)
    entry = md["status"]["history"][0]
    assert (entry["version"], entry["outcome"]) == (version, "Promoted"), entry
    assert placements == {"InPlace"}, (placements, final)
    # One Deployment and one pod the whole time: the candidate ran in the serving pod.
    assert len(census.deployments) == 1, census.deployments
    assert census.pods == {uid for uid, _ in before.values()}, census.pods
    assert serving_pods(cluster, namespace) == before  # same uid, no restart
    assert failures == [], failures[:20]
    assert tally["errors"] == 0 and tally["sent"] > 100, tally
    assert "Shadow" in watch.phases, watch.phases
    assert watch.ready == {"True"}, "Ready dropped during the rollout"
