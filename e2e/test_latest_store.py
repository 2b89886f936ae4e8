"""Under `version: latest`, a version written into the model store by hand (no
TrainingJob) is found by the operator and judged by the rollout strategy.

Real pieces: the API server, the operator (its own ServiceAccount's RBAC: it gets
the credentials Secret by name), an S3 endpoint that enforces authentication
(moto; the operator has no AWS credentials of its own, only the Secret's), two
Triton servers and their drift-monitor sidecars deciding the shadow analysis.
Simulated: only the pods (KWOK) and what a kubelet does for them (the Node
thread of e2e/test_gated_rollout.py maps each simulated pod to the sidecar of
the version its pod template asks for: a pod asking for `latest` would be served
by nobody, so a pod that resolves the version itself cannot pass unnoticed).
"""

from __future__ import annotations

import hashlib
import time
import uuid
from typing import Any

import pytest
from tests.support.cluster import Cluster, wait_for
from tests.support.operator import OperatorProcess, condition, get_md, wait_ready
from tests.support.s3 import S3Server
from tests.support.triton_server import TritonServer

from e2e.test_gated_rollout import (  # noqa: F401 (module fixtures used by name)
    SHADOW,
    Load,
    Node,
    candidate_triton,
    rollout_of,
    set_mode,
    sidecars,
    stable_triton,
)
from modelops.render.gating.lineage import manifest_digest

pytestmark = [pytest.mark.cluster, pytest.mark.triton]

SECRET = "store-keys"


def write_by_hand(server: S3Server, bucket: str, version: int, prefix: str = "clf") -> bytes:
    """A version as a person copying files would leave it: the model file, then its
    SHA256SUMS (what makes it complete); returns the manifest."""
    s3 = server.client()
    body = f"model {version}".encode()
    s3.put_object(Bucket=bucket, Key=f"{prefix}/{version}/model.pt", Body=body)
    manifest = f"{hashlib.sha256(body).hexdigest()}  model.pt\n".encode()
    s3.put_object(Bucket=bucket, Key=f"{prefix}/{version}/SHA256SUMS", Body=manifest)
    return manifest


def model_version_of_pods(cluster: Cluster, namespace: str, name: str) -> dict[str, str]:
    pods = cluster.core.list_namespaced_pod(
        namespace, label_selector=f"modelops.io/model-deployment={name}"
    ).items
    return {
        p.metadata.name: (p.metadata.annotations or {}).get("modelops.io/model-version", "")
        for p in pods
        if p.metadata.deletion_timestamp is None
    }


@pytest.fixture
def store(cluster: Cluster, s3_server: S3Server, namespace: str) -> tuple[str, str]:
    """A bucket holding version 1, and the Secret with its keys in ``namespace``."""
    bucket = f"models-{uuid.uuid4().hex[:8]}"
    s3_server.client().create_bucket(Bucket=bucket)
    write_by_hand(s3_server, bucket, 1)
    cluster.apply(
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": SECRET},
            "stringData": {
                "AWS_ACCESS_KEY_ID": s3_server.access_key,
                "AWS_SECRET_ACCESS_KEY": s3_server.secret_key,
                "AWS_ENDPOINT_URL": s3_server.endpoint,
                "AWS_REGION": "us-east-1",
            },
        },
        namespace,
    )
    return bucket, f"s3://{bucket}/clf"


def latest_md(name: str, uri: str) -> dict[str, Any]:
    return {
        "apiVersion": "modelops.io/v1alpha1",
        "kind": "ModelDeployment",
        "metadata": {"name": name},
        "spec": {
            "model": {
                "storageUri": uri,
                "version": "latest",
                "name": "clf",
                "credentialsSecretRef": {"name": SECRET},
            },
            "resources": {"gpu": {"count": 1}, "cpu": "1", "memory": "2Gi"},
            "replicas": 1,
            "rollout": SHADOW,
        },
    }


def test_a_version_written_by_hand_is_judged_and_a_rejected_one_never_served(
    cluster: Cluster,
    operator: OperatorProcess,
    namespace: str,
    s3_server: S3Server,
    store: tuple[str, str],
    sidecars: dict[str, Any],  # noqa: F811
    candidate_triton: TritonServer,  # noqa: F811
):
    bucket, uri = store
    name = "by-hand"
    set_mode(candidate_triton, "differ")  # version 2 answers differently: must be refused
    with Node(cluster, namespace, name, sidecars):
        cluster.apply(latest_md(name, uri), namespace)
        md = wait_ready(cluster, namespace, name)
        # The operator listed the store with the Secret's keys and gave the pods the
        # number: status names what the replicas serve.
        assert condition(md, "StoreListed").get("reason") == "Listed", md["status"]
        assert md["status"].get("servedVersion") == "1", md["status"]
        assert set(model_version_of_pods(cluster, namespace, name).values()) == {"1"}
        wait_for(
            lambda: rollout_of(cluster, namespace, name).get("phase") == "Idle",
            timeout=60,
            what="version 1 stable",
        )
        # Someone copies version 2 into the store: no TrainingJob, no spec change.
        manifest = write_by_hand(s3_server, bucket, 2)
        with Load(sidecars["1"].url) as load:
            wait_for(
                lambda: rollout_of(cluster, namespace, name).get("candidate") == "2",
                timeout=60,
                what="the operator to find version 2 in the store",
            )

            def rolled_back() -> dict | None:
                r = rollout_of(cluster, namespace, name)
                return r if r.get("phase") == "RolledBack" else None

            final = wait_for(rolled_back, timeout=180, what="the shadow analysis' verdict")
        assert final["stable"] == "1" and "minAgreement" in final["message"], final
        assert load.wrong == 0, "a client got an answer from the candidate"
        entry = get_md(cluster, namespace, name)["status"]["history"][0]
        assert (entry["version"], entry["outcome"]) == ("2", "RolledBack")
        assert entry["source"] == {"kind": "Latest"}
        assert entry["checksum"] == manifest_digest(manifest)

        # A stable replica restarts: it asks for the version status names, never for
        # `latest`, so the rejected version 2 (still the newest in the store) stays out.
        [pod] = [p for p, v in model_version_of_pods(cluster, namespace, name).items() if v]
        cluster.core.delete_namespaced_pod(pod, namespace, grace_period_seconds=0)

        def replaced() -> dict[str, str] | None:
            versions = model_version_of_pods(cluster, namespace, name)
            return versions if versions and pod not in versions else None

        assert set(wait_for(replaced, timeout=60, what="a replacement pod").values()) == {"1"}
        # Several listings later the rejected version is still not tried again.
        seen = set()
        for _ in range(5):
            time.sleep(2)  # MODELOPS_STORE_INTERVAL_SECONDS (e2e/conftest.py)
            r = rollout_of(cluster, namespace, name)
            seen.add((r.get("candidate"), r.get("stable")))
            assert r.get("phase") not in ("Waiting", "Shadow", "Canary", "Promoting"), r
        assert seen == {(None, "1")}, seen
        deployments = {
            d.metadata.name for d in cluster.apps.list_namespaced_deployment(namespace).items
        }
        assert deployments == {name}, "no candidate Deployment for the rejected version"
        md = wait_ready(cluster, namespace, name)
        assert md["status"].get("servedVersion") == "1"
