"""The shipped samples reach what their comments promise.

- manifests/samples/modeldeployment.yaml serves on the real node:
  e2e/test_real_serving.py (Ready, inference over HTTP and gRPC, drift in status).
- manifests/samples/trainingjob.yaml retrains the model the gated sample serves and
  publishes the next version into its store; manifests/samples/modeldeployment-gated.yaml
  runs that version as a candidate (shadow, then canary steps), its evalMetric gate
  reading a metric the trainer really reports, and promotes it: this module.

Real pieces here: the API server, the operator (its own RBAC), an S3 endpoint that
enforces authentication (moto) with the samples' credentials Secret, the real
trainer (`modelops train`, run on this machine as the TrainingJob's pods would run
it), two Triton servers with their drift-monitor sidecars deciding the analysis.
Simulated: the pods (KWOK), and the kubelet's part (e2e/test_gated_rollout.py's
Node); the Triton servers serve the test's models, not the trained one (loading
the trained TorchScript is e2e/test_real_serving.py's and tests/triton's job).

What the test changes in the samples, and why (nothing else):
- the store: a bucket of the local S3 endpoint, with the credentials Secret the
  samples show commented out (the endpoint enforces authentication);
- the MD's spec.model.name: the Triton model name the test's servers serve;
- the MD's replicas, 1 instead of 3: one sidecar process stands for every simulated
  stable pod, so 3 pods would report its figures three times (which the operator
  refuses as inconsistent with what the candidate counted);
- the gated sample's durations and request counts, scaled from half an hour of
  production traffic to the seconds this test's load gives (and its mirrorPercent,
  10 -> 100, for the same reason: the latency gate's sequential test needs about a
  thousand candidate requests to show that at most 1% are slow, which 10% of one
  client's requests on a loaded 2-core machine take minutes to give), and its error-rate and
  latency bounds widened to what a few hundred requests on a shared 2-core
  machine can decide (the sequential tests would need thousands of requests at
  0.005; a cold candidate sidecar's first answers on a loaded 2-core machine put
  its p99 several times the stable one's, so maxLatencyP99Ratio is 50 here);
- the TrainingJob: a synthetic dataset instead of s3://data/fraud/2026-11, and
  its pods held Running (KWOK) while the trainer runs on this machine.

Version 1, the stable version the retrained one is judged against, is published by
hand the way docs/rollouts.md says a version from outside a TrainingJob is:
`modelops package-model --metrics --publish`, its evaluation metrics sealed into the
version as metrics.json, which the operator reads back so that the sample's evalMetric
gate compares the trainer's valAccuracy with the stable version's.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest
import yaml
from tests.support.cluster import REPO, Cluster, wait_for
from tests.support.md_watch import RolloutWatch
from tests.support.operator import OperatorProcess, condition, get_md, wait_ready
from tests.support.rollout_models import MODEL
from tests.support.s3 import S3Server

from e2e.test_drift_status import _act_as_kubelet_finishing
from e2e.test_gated_rollout import (  # noqa: F401 (module fixtures used by name)
    Load,
    Node,
    candidate_triton,
    sidecars,
    stable_triton,
)
from e2e.test_latest_store import model_version_of_pods

pytestmark = [pytest.mark.cluster, pytest.mark.triton, pytest.mark.torch]

SAMPLES = REPO / "manifests" / "samples"
STABLE_VAL_ACCURACY = 0.6
SECRET = "model-store-credentials"  # the name the samples' comments give
DATASET = "synthetic://tabular?rows=4000&seed=3"


def load(name: str) -> dict[str, Any]:
    [doc] = [d for d in yaml.safe_load_all((SAMPLES / name).read_text()) if d]
    return doc


def gated_sample(uri: str) -> dict[str, Any]:
    md = load("modeldeployment-gated.yaml")
    model = md["spec"]["model"]
    assert model["version"] == "latest"
    model.update(storageUri=uri, name=MODEL, credentialsSecretRef={"name": SECRET})
    # One sidecar process stands for every simulated stable pod (Node): with 3 replicas
    # its figures would be counted three times and, rightly, refused as inconsistent.
    md["spec"]["replicas"] = 1
    rollout = md["spec"]["rollout"]
    rollout["shadow"].update(duration="5s", requests=20, mirrorPercent=100)
    step1, step2 = rollout["canary"]["steps"]
    step1["duration"] = "5s"
    step2["requests"] = 20
    rollout["analysis"].update(minRequests=20, maxErrorRateIncrease=0.05, maxLatencyP99Ratio=50)
    return md


def training_sample(uri: str) -> dict[str, Any]:
    tj = load("trainingjob.yaml")
    spec = tj["spec"]
    spec["dataset"]["uri"] = DATASET
    spec["output"]["storageUri"] = uri
    spec["credentialsSecretRef"] = {"name": SECRET}
    spec["hyperparameters"]["epochs"] = "2"
    spec["podMetadata"] = {"annotations": {"sim.modelops.io/result": "Hold"}}
    return tj


def publish_by_hand(s3: S3Server, uri: str, metrics: dict[str, float], tmp_path: Path) -> None:
    """A version published from outside a TrainingJob, with its evaluation metrics, as
    docs/rollouts.md describes: `modelops package-model --metrics --publish`. The model
    file is opaque bytes: packaging never loads it and the pods here are simulated."""
    model = tmp_path / "v1" / "model.pt"
    model.parent.mkdir(parents=True)
    model.write_bytes(b"version 1, trained elsewhere")
    (model.parent / "metrics.json").write_text(json.dumps(metrics))
    published = subprocess.run(
        [
            sys.executable, "-m", "modelops.cli", "package-model", str(model),
            "--name", "fraud-detector", "--kind", "cpu",
            "--input", "INPUT0:fp32:4", "--output", "SCORES:fp32:3",
            "--metrics", str(model.parent / "metrics.json"),
            "--publish", uri,
        ],
        capture_output=True, text=True, timeout=120, env={**os.environ, **s3.env()},
    )  # fmt: skip
    assert published.returncode == 0, published.stderr[-3000:]
    assert json.loads(published.stdout)["published"]["version"] == 1, published.stdout


def train_as_the_pods(
    cluster: Cluster, namespace: str, tj: dict[str, Any], s3: S3Server, tmp_path: Path
) -> None:
    """Once every pod of the TrainingJob runs: the real trainer, on this machine, with
    the Secret's keys (as the pods' environment would have them); then every pod ends
    as the kubelet would end it, rank 0 with the trainer's result."""
    name, nodes = tj["metadata"]["name"], tj["spec"]["nodes"]

    def running() -> list | None:
        pods = cluster.core.list_namespaced_pod(
            namespace, label_selector=f"modelops.io/training-job={name}"
        ).items
        up = [p for p in pods if p.status.phase == "Running"]
        return up if len(up) == nodes else None

    pods = wait_for(running, timeout=90, what=f"{nodes} training pods running")
    termination = tmp_path / "termination-log"
    trained = subprocess.run(
        [
            sys.executable, "-m", "modelops.cli", "train",
            "--entrypoint", tj["spec"]["entrypoint"],
            "--dataset", DATASET,
            "--output", tj["spec"]["output"]["storageUri"],
            "--model-name", tj["spec"]["modelDeploymentRef"]["name"],
            "--checkpoint-dir", str(tmp_path / "ckpt"),
            "--nproc-per-node", "1",
            "--hp=epochs=2",
            "--termination-log", str(termination),
            "--instance-kind", "cpu",
        ],
        capture_output=True, text=True, timeout=300,
        env={**s3.env(), "OMP_NUM_THREADS": "1"},
    )  # fmt: skip
    assert trained.returncode == 0, trained.stderr[-3000:]
    result = termination.read_text().strip()
    for pod in sorted(pods, key=lambda p: p.metadata.name):
        key = "batch.kubernetes.io/job-completion-index"
        index = (pod.metadata.annotations or {}).get(key) or (pod.metadata.labels or {}).get(key)
        rank0 = index == "0"
        _act_as_kubelet_finishing(cluster, namespace, pod, result if rank0 else "")


def test_the_training_sample_retrains_and_the_gated_sample_promotes_on_evidence(
    cluster: Cluster,
    operator: OperatorProcess,
    namespace: str,
    s3_server: S3Server,
    sidecars: dict[str, Any],  # noqa: F811
    tmp_path: Path,
):
    bucket = f"models-{uuid.uuid4().hex[:8]}"
    s3_server.client().create_bucket(Bucket=bucket)
    uri = f"s3://{bucket}/fraud-detector"
    # An earlier, weaker model: the retrained one must not regress from it by more than
    # the sample's maxRegression (0.005); the trainer reaches about 0.9 on this dataset.
    publish_by_hand(s3_server, uri, {"valAccuracy": STABLE_VAL_ACCURACY, "valLoss": 0.6}, tmp_path)
    cluster.apply(
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": SECRET},
            "stringData": {k: v for k, v in s3_server.env().items() if k.startswith("AWS_")},
        },
        namespace,
    )
    md = gated_sample(uri)
    name = md["metadata"]["name"]
    with Node(cluster, namespace, name, sidecars), RolloutWatch(cluster, namespace, name) as watch:
        cluster.apply(md, namespace)
        served = wait_ready(cluster, namespace, name)
        assert served["status"].get("servedVersion") == "1", served["status"]
        watch.wait(
            lambda r: r.get("phase") == "Idle" and r.get("stable") == "1",
            timeout=120,
            what="version 1 stable",
        )
        tj = training_sample(uri)
        assert tj["spec"]["modelDeploymentRef"]["name"] == name
        cluster.apply(tj, namespace)
        train_as_the_pods(cluster, namespace, tj, s3_server, tmp_path)
        with Load(sidecars["1"].url) as load:
            watch.wait(
                lambda r: r.get("candidate") == "2",
                timeout=180,
                what="the retrained version to start as a candidate",
            )
            ready_since = len(watch.ready)
            # Generous: about a thousand candidate requests decide the latency gate; on
            # a loaded machine the one client may send a fraction of its usual rate.
            final = watch.wait(
                lambda r: r.get("stable") == "2" and r.get("phase") == "Idle",
                timeout=600,
                what="the retrained version promoted",
                since=watch.matched + 1,
            )
    assert set(watch.ready[ready_since:]) <= {"True"}, "Ready dropped during the rollout"
    assert {"Shadow", "Canary"} <= set(watch.phases), watch.phases
    # The evalMetric gate compared the trainer's figure with the stable version's
    # published one (not "nothing recorded").
    judged = [
        r["analysis"]["verdict"]
        for r in watch.rollouts
        if r.get("candidate") == "2" and "verdict" in (r.get("analysis") or {})
    ]
    assert judged and all(
        f"vs stable {STABLE_VAL_ACCURACY}" in v for v in judged if "eval metric" in v
    ), judged
    assert any("eval metric valAccuracy" in v for v in judged), judged
    # Canary steps answer clients from the candidate by design: the load is there for
    # the figures, not to check whose answers clients got (e2e/test_gated_rollout.py).
    assert load.sent > 0
    tj_live = cluster.custom.get_namespaced_custom_object(
        "modelops.io", "v1alpha1", namespace, "trainingjobs", tj["metadata"]["name"]
    )
    assert condition(tj_live, "Ready").get("status") == "True", tj_live.get("status")
    md_live = get_md(cluster, namespace, name)
    entry = md_live["status"]["history"][0]
    assert (entry["version"], entry["outcome"]) == ("2", "Promoted"), entry
    assert entry["source"]["kind"] == "TrainingJob"
    # The sample's evalMetric gate read a metric the trainer reported.
    gate = md_live["spec"]["rollout"]["analysis"]["evalMetric"]["name"]
    assert isinstance(entry["source"]["metrics"].get(gate), float), entry["source"]
    assert final["stableSlot"] == "b"
    wait_for(
        lambda: set(model_version_of_pods(cluster, namespace, name).values()) == {"2"},
        timeout=60,
        what="only pods of version 2 left",
    )
