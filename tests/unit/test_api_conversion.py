"""v1alpha1 <-> v1beta1 conversion (api/conversion.py): the mapping, and that it is lossless.

The round trips run over seeded random objects drawn from each version's CRD
schema (tests/support/schema_objects.py); a failure names the seed.
"""

from __future__ import annotations

import copy
import json
import random

import pytest

from modelops.api import constants as c
from modelops.api import conversion as cv
from modelops.api.crd import MODEL_DEPLOYMENT, TRAINING_JOB, build_versioned_crd
from modelops.api.images import triton_image
from modelops.api.v1beta1 import modeldeployment as beta_md
from tests.support.schema_objects import custom_object

SEEDS = range(300)
KINDS = (MODEL_DEPLOYMENT, TRAINING_JOB)


def _schemas(kind):
    crd = build_versioned_crd(kind, {"url": "https://127.0.0.1:1/convert"})
    return {v["name"]: v["schema"]["openAPIV3Schema"] for v in crd["spec"]["versions"]}


SCHEMAS = {k.kind: _schemas(k) for k in KINDS}


def md(spec=None, status=None, version="v1alpha1", **meta):
    obj = {
        "apiVersion": f"{c.GROUP}/{version}",
        "kind": c.MD_KIND,
        "metadata": {"name": "m", "namespace": "ns", **meta},
        "spec": spec or {"model": {"storageUri": "s3://b/m"}},
    }
    if status is not None:
        obj["status"] = status
    return obj


@pytest.mark.parametrize("kind", [k.kind for k in KINDS])
def test_every_v1alpha1_object_round_trips_through_v1beta1(kind):
    for seed in SEEDS:
        rng = random.Random(seed)
        alpha = custom_object(rng, SCHEMAS[kind]["v1alpha1"], f"{c.GROUP}/v1alpha1", kind)
        beta = cv.to_v1beta1(alpha)
        assert beta["apiVersion"] == f"{c.GROUP}/v1beta1"
        assert cv.to_v1alpha1(beta) == alpha, f"seed {seed}"


@pytest.mark.parametrize("kind", [k.kind for k in KINDS])
def test_every_v1beta1_object_round_trips_through_v1alpha1(kind):
    for seed in SEEDS:
        rng = random.Random(10_000 + seed)
        beta = custom_object(rng, SCHEMAS[kind]["v1beta1"], f"{c.GROUP}/v1beta1", kind)
        alpha = cv.to_v1alpha1(beta)
        assert alpha["apiVersion"] == f"{c.GROUP}/v1alpha1"
        assert cv.to_v1beta1(alpha) == beta, f"seed {seed}"


def test_the_generated_objects_reach_the_fields_conversion_rewrites():
    # Guards the property tests against a generator that never draws the
    # interesting fields (the round trip of an empty spec proves nothing).
    seen: set[str] = set()
    for seed in SEEDS:
        alpha = custom_object(
            random.Random(seed), SCHEMAS[c.MD_KIND]["v1alpha1"], c.API_VERSION, c.MD_KIND
        )
        if cv.to_v1beta1(alpha).get("metadata", {}).get("annotations", {}).get(cv.ALPHA_FIELDS):
            seen.add("alpha-annotation")
        text = json.dumps(alpha)
        seen.update(
            k
            for k in (
                "surgeTimeoutSeconds",
                "cooldownSeconds",
                "servedVersion",
                "maxQueueDelayMicroseconds",
                "trainingJobTemplate",
            )
            if k in text
        )
    assert seen >= {
        "surgeTimeoutSeconds",
        "cooldownSeconds",
        "servedVersion",
        "maxQueueDelayMicroseconds",
        "alpha-annotation",
    }


def test_mapping_of_each_changed_field():
    alpha = md(
        {
            "model": {"storageUri": "s3://b/m", "format": "torchscript"},
            "runtime": {"dynamicBatching": {"maxQueueDelayMicroseconds": 2500}},
            "autoscaling": {
                "engine": "keda",
                "minReplicas": 0,
                "maxReplicas": 3,
                "metric": {"type": "queue-time", "target": 500},
                "cooldownSeconds": 90,
                "scaleDownStabilizationSeconds": 3600,
            },
            "rollout": {"surgeTimeoutSeconds": 3605},
            "driftMonitor": {
                "enabled": True,
                "method": "psi",
                "retrain": {"trainingJobTemplate": {"activeDeadlineSeconds": 7200}},
            },
        },
        {"servedVersion": "3,4"},
    )
    beta = cv.to_v1beta1(alpha)
    spec = beta["spec"]
    assert spec["model"]["format"] == "TorchScript"
    assert spec["runtime"]["dynamicBatching"] == {"maxQueueDelay": "2500us"}
    assert spec["autoscaling"]["engine"] == "KEDA"
    assert spec["autoscaling"]["metric"]["type"] == "QueueTime"
    assert spec["autoscaling"]["cooldown"] == "1m30s"
    assert spec["autoscaling"]["scaleDownStabilization"] == "1h"
    assert spec["rollout"] == {"surgeTimeout": "1h5s", "schedulingTimeout": "1h5s"}
    assert spec["driftMonitor"]["method"] == "PSI"
    assert spec["driftMonitor"]["retrain"]["trainingJobTemplate"] == {"activeDeadline": "2h"}
    assert beta["status"] == {"servedVersions": [{"version": "3"}, {"version": "4"}]}
    assert "annotations" not in beta["metadata"]  # nothing lost: no annotation
    assert cv.to_v1alpha1(beta) == alpha


def test_v1beta1_only_fields_survive_a_v1alpha1_client():
    beta = md(
        {
            "model": {"storageUri": "s3://b/m"},
            "rollout": {"surgeTimeout": "1m", "schedulingTimeout": "10m"},
            "resources": {"cpu": "2", "cpuLimit": "4"},
            "imagePullSecrets": [{"name": "regcred"}],
            "runtime": {
                "env": [{"name": "K", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}}]
            },
        },
        version="v1beta1",
    )
    alpha = cv.to_v1alpha1(beta)
    assert alpha["spec"]["rollout"] == {"surgeTimeoutSeconds": 60}
    assert "imagePullSecrets" not in alpha["spec"]
    assert cv.BETA_FIELDS in alpha["metadata"]["annotations"]
    # A v1alpha1 client edits a field both versions have: its edit wins, the rest is restored.
    edited = copy.deepcopy(alpha)
    edited["spec"]["rollout"]["surgeTimeoutSeconds"] = 120
    back = cv.to_v1beta1(edited)
    assert back["spec"]["rollout"] == {"surgeTimeout": "2m", "schedulingTimeout": "10m"}
    assert back["spec"]["imagePullSecrets"] == [{"name": "regcred"}]
    assert back["spec"]["resources"]["cpuLimit"] == "4"
    assert back["spec"]["runtime"]["env"][0]["valueFrom"]["secretKeyRef"]["key"] == "k"


def test_a_stale_saved_spelling_never_overrides_an_edit():
    beta = md(
        {"model": {"storageUri": "s3://b/m"}, "rollout": {"surgeTimeout": "60s"}}, version="v1beta1"
    )
    alpha = cv.to_v1alpha1(beta)
    assert cv.to_v1beta1(alpha) == beta  # "60s", not "1m": the spelling is kept
    alpha["spec"]["rollout"]["surgeTimeoutSeconds"] = 30
    assert cv.to_v1beta1(alpha)["spec"]["rollout"]["surgeTimeout"] == "30s"


def test_runtime_image_equal_to_the_default_is_kept_in_v1beta1():
    """Issue #20: an explicit image equal to the operator's default was read as unset."""
    beta = md(
        {"model": {"storageUri": "s3://b/m"}, "runtime": {"image": c.DEFAULT_TRITON_IMAGE}},
        version="v1beta1",
    )
    image = beta["spec"]["runtime"]["image"]
    assert triton_image(image, "mirror/triton:26", version="v1beta1") == c.DEFAULT_TRITON_IMAGE
    assert triton_image(None, "mirror/triton:26", version="v1beta1") == "mirror/triton:26"
    # v1alpha1 keeps its documented rule (a former schema default reads as unset), and
    # the value survives the trip through v1beta1 for v1alpha1 clients.
    alpha = md(
        {
            "model": {"storageUri": "s3://b/m"},
            "runtime": {"image": c.FORMER_DEFAULT_TRITON_IMAGES[0]},
        }
    )
    up = cv.to_v1beta1(alpha)
    assert "image" not in up["spec"]["runtime"]
    assert cv.to_v1alpha1(up) == alpha


def test_conversion_review():
    alpha = md()
    answer = cv.review(
        {
            "apiVersion": "apiextensions.k8s.io/v1",
            "kind": "ConversionReview",
            "request": {"uid": "u1", "desiredAPIVersion": f"{c.GROUP}/v1beta1", "objects": [alpha]},
        }
    )
    assert answer["response"]["uid"] == "u1"
    assert answer["response"]["result"] == {"status": "Success"}
    assert answer["response"]["convertedObjects"][0]["apiVersion"] == f"{c.GROUP}/v1beta1"
    bad = cv.review({"request": {"uid": "u2", "desiredAPIVersion": "x/v9", "objects": [alpha]}})
    assert bad["response"]["result"]["status"] == "Failure"
    assert "v9" in bad["response"]["result"]["message"]
    assert cv.review({})["response"]["result"]["status"] == "Failure"


def test_group_is_kept():
    alpha = md()
    alpha["apiVersion"] = "test-x.modelops.io/v1alpha1"
    assert cv.to_v1beta1(alpha)["apiVersion"] == "test-x.modelops.io/v1beta1"


def test_the_v1beta1_reference_is_up_to_date():
    from pathlib import Path

    from modelops.api.docs import api_reference

    path = Path(__file__).resolve().parents[2] / "docs" / "api-v1beta1.md"
    assert path.read_text() == api_reference("v1beta1"), "stale: run `make crds`"


def _alpha_corpus() -> list[dict]:
    import yaml

    from tests.docs.blocks import BASES, SAMPLES, all_blocks, is_object
    from tests.integration.invalid_modeldeployments import merge_patch

    out = [d for p in SAMPLES for d in yaml.safe_load_all(p.read_text()) if is_object(d)]
    for block in all_blocks():
        kind = block.fragment_kind
        if kind in (c.MD_KIND, c.TJ_KIND) and not block.is_status:
            out += [merge_patch(BASES[kind], d) for d in block.documents()]
    out.append(
        md(
            {
                "model": {"storageUri": "s3://b/m", "format": "onnx"},
                "runtime": {"maxBatchSize": 4, "dynamicBatching": {"maxQueueDelayMicroseconds": 7}},
                "autoscaling": {
                    "engine": "keda",
                    "minReplicas": 0,
                    "maxReplicas": 2,
                    "metric": {"type": "concurrency", "target": 4},
                    "cooldownSeconds": 45,
                    "scaleDownStabilizationSeconds": 61,
                },
                "rollout": {"surgeTimeoutSeconds": 0},
            }
        )
    )
    return [o for o in out if o["kind"] in (c.MD_KIND, c.TJ_KIND)]


def test_the_v1beta1_edge_reads_what_v1alpha1_says():
    """What the operator will read (v1beta1 models, v1alpha1 bodies converted at the
    edge) means what the v1alpha1 models mean today, field by field."""
    from modelops.api.modeldeployment import ModelDeployment as AlphaMD
    from modelops.api.trainingjob import TrainingJob as AlphaTJ
    from modelops.api.v1beta1.modeldeployment import ModelDeployment as BetaMD
    from modelops.api.v1beta1.trainingjob import TrainingJob as BetaTJ

    corpus = _alpha_corpus()
    assert len(corpus) >= 5
    for obj in corpus:
        obj = {**obj, "metadata": {"name": "x", "namespace": "ns"}}
        if obj["kind"] == c.TJ_KIND:
            a, b = AlphaTJ.from_body(obj).spec, BetaTJ.from_body(obj).spec
            assert a.active_deadline_seconds == b.active_deadline_seconds
            assert a.ttl_seconds_after_finished == b.ttl_seconds_after_finished
            assert (a.nodes, a.resources.cpu) == (b.nodes, b.resources.cpu)
            continue
        a, b = AlphaMD.from_body(obj).spec, BetaMD.from_body(obj).spec
        assert b.model.format == beta_md.FORMATS[a.model.format]
        assert b.rollout.surge_timeout_seconds == a.rollout.surge_timeout_seconds
        assert b.rollout.scheduling_timeout_seconds == a.rollout.surge_timeout_seconds
        assert b.rollout.strategy == a.rollout.strategy
        if a.runtime.dynamic_batching:
            assert (
                b.runtime.dynamic_batching.max_queue_delay_microseconds
                == a.runtime.dynamic_batching.max_queue_delay_microseconds
            )
        if a.autoscaling:
            assert b.autoscaling.engine == beta_md.ENGINES[a.autoscaling.engine]
            assert b.autoscaling.metric.type == beta_md.METRIC_TYPES[a.autoscaling.metric.type]
            assert b.autoscaling.cooldown_seconds == a.autoscaling.cooldown_seconds
            assert (
                b.autoscaling.scale_down_stabilization_seconds
                == a.autoscaling.scale_down_stabilization_seconds
            )
        if a.drift_monitor:
            assert b.drift_monitor.method == beta_md.DRIFT_METHODS[a.drift_monitor.method]
        assert b.replicas == a.replicas
