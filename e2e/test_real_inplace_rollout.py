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

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from tests.support.client_session import client_session
from tests.support.cluster import Cluster, wait_for
from tests.support.operator import OperatorProcess, get_md
from tests.support.project_images import ProjectImages
from tests.support.real_node import RealNode
from tests.support.real_sample import NAME
from tests.support.s3 import S3Server

from e2e.test_gated_rollout import Background
from e2e.test_real_gated_rollout import loop_client, roll_out, serving_version_one

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
    work = tmp_path_factory.mktemp("v1")
    with serving_version_one(cluster, real_node, pod_store, work, IN_PLACE) as served:
        yield served


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


class Census(Background):
    """Every Deployment and pod (by uid) the ModelDeployment has while it runs."""

    interval = 0.5

    def __init__(self, cluster: Cluster, namespace: str) -> None:
        super().__init__()
        self.cluster, self.namespace = cluster, namespace
        self.deployments: set[str] = set()
        self.pods: set[str] = set()

    def tick(self) -> None:
        selector = f"modelops.io/model-deployment={NAME}"
        apps = self.cluster.apps.list_namespaced_deployment(self.namespace, label_selector=selector)
        pods = self.cluster.core.list_namespaced_pod(self.namespace, label_selector=selector)
        self.deployments |= {d.metadata.name for d in apps.items}
        self.pods |= {p.metadata.uid for p in pods.items}


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
    client = loop_client(cluster, namespace, real_node, project_images)
    with client_session(client) as session, Census(cluster, namespace) as census:
        # Same weights as version 1: the candidate agrees on every mirrored request.
        version, final, watch, elapsed = roll_out(
            cluster, namespace, body, pod_store, tmp_path, client, seed=11
        )
        print(f"version {version} published -> promoted in place: {elapsed:.1f}s")
        wait_for(
            lambda: client.tally().get("versions", {}).get(version, 0) >= 10,
            timeout=90,
            what=f"the client answered by version {version}",
        )
    print(f"phases {watch.phases}; deployments {census.deployments}")
    assert final["phase"] == "Idle" and final["stable"] == version, final
    placements = {
        r["placement"] for r in watch.rollouts if r.get("candidate") == version and "placement" in r
    }
    assert placements == {"InPlace"}, placements
    entry = get_md(cluster, namespace, NAME)["status"]["history"][0]
    assert (entry["version"], entry["outcome"]) == (version, "Promoted"), entry
    # One Deployment and one pod the whole time: the candidate ran in the serving pod.
    assert len(census.deployments) == 1, census.deployments
    assert census.pods == {uid for uid, _ in before.values()}, census.pods
    assert serving_pods(cluster, namespace) == before  # same uid, no restart
    session.assert_unharmed(min_sent=101)
    assert "Shadow" in watch.phases, watch.phases
    assert set(watch.ready) == {"True"}, "Ready dropped during the rollout"
