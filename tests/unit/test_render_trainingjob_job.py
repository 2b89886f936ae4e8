"""render_job, render_headless_service, suspend_patch: a TrainingJob's children."""

from __future__ import annotations

import argparse
from types import MappingProxyType
from typing import Any

import pytest
from pydantic import ValidationError

from modelops.api import constants as c
from modelops.render.training import (
    attempt_of,
    latest_attempt,
    render_headless_service,
    render_job,
    suspend_patch,
)
from tests.unit.test_render_trainingjob_fixtures import UID, job, tj_body

OWNER = {
    "apiVersion": "modelops.io/v1alpha1",
    "kind": "TrainingJob",
    "name": "fraud-retrain",
    "uid": UID,
    "controller": True,
    "blockOwnerDeletion": True,
}
LABELS = {
    "app.kubernetes.io/name": "trainer",
    "app.kubernetes.io/instance": "fraud-retrain",
    "app.kubernetes.io/managed-by": "modelops",
    "modelops.io/training-job": "fraud-retrain",
}


def pod_spec(obj: dict[str, Any]) -> dict[str, Any]:
    return obj["spec"]["template"]["spec"]


def trainer(obj: dict[str, Any]) -> dict[str, Any]:
    [container] = pod_spec(obj)["containers"]
    assert container["name"] == "trainer"
    return container


def env(obj: dict[str, Any]) -> dict[str, Any]:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in trainer(obj)["env"]}


def mounts(obj: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {m["mountPath"]: m for m in trainer(obj)["volumeMounts"]}


def volumes(obj: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {v["name"]: v for v in pod_spec(obj)["volumes"]}


# --- the Job ------------------------------------------------------------------------------


def test_identity_labels_owner_and_attempt():
    rendered = render_job(tj_body(), attempt=2)
    assert (rendered["apiVersion"], rendered["kind"]) == ("batch/v1", "Job")
    meta = rendered["metadata"]
    assert (meta["name"], meta["namespace"]) == ("fraud-retrain-a2", "ml")
    assert meta["labels"] == LABELS
    assert meta["annotations"] == {"modelops.io/attempt": "2"}
    assert meta["ownerReferences"] == [OWNER]
    template = rendered["spec"]["template"]["metadata"]
    assert template["labels"] == LABELS
    assert template["annotations"]["modelops.io/attempt"] == "2"
    assert attempt_of(rendered) == 2


def test_one_pod_per_node_indexed_by_rank():
    spec = render_job(tj_body(nodes=4))["spec"]
    assert spec["completionMode"] == "Indexed"
    assert spec["completions"] == spec["parallelism"] == 4
    assert pod_spec(render_job(tj_body()))["restartPolicy"] == "Never"


def test_whole_group_restart_policy_fails_the_attempt_on_any_failure():
    spec = render_job(tj_body(backoffLimit=7))["spec"]
    # spec.backoffLimit counts whole-group restarts done by the operator, not pod retries.
    assert spec["backoffLimit"] == 0
    rules = spec["podFailurePolicy"]["rules"]
    assert all(rule["action"] == "FailJob" for rule in rules)
    assert {"containerName": "trainer", "operator": "NotIn", "values": [0]} in [
        rule.get("onExitCodes") for rule in rules
    ]
    assert [{"type": "DisruptionTarget", "status": "True"}] in [
        rule.get("onPodConditions") for rule in rules
    ]
    assert "backoffLimitPerIndex" not in spec


def test_rendezvous_environment():
    values = env(render_job(tj_body(nodes=3, procsPerNode=8), attempt=1))
    assert values["NNODES"] == "3"
    assert values["NPROC_PER_NODE"] == "8"
    assert values["NODE_RANK"] == {
        "fieldRef": {
            "fieldPath": "metadata.annotations['batch.kubernetes.io/job-completion-index']"
        }
    }
    # Rank 0 of this attempt, through the headless Service (pod subdomain).
    assert values["MASTER_ADDR"] == "fraud-retrain-a1-0.fraud-retrain-workers"
    assert values["MASTER_PORT"] == "29500"
    assert values["MODELOPS_ATTEMPT"] == "1"
    assert pod_spec(render_job(tj_body()))["subdomain"] == "fraud-retrain-workers"
    ports = trainer(render_job(tj_body()))["ports"]
    assert ports == [{"name": "rendezvous", "containerPort": 29500, "protocol": "TCP"}]


def test_every_variable_the_operator_sets_is_one_the_crd_refuses_from_users():
    reserved = set(c.RESERVED_TRAINING_ENV_NAMES)
    prefixes = c.RESERVED_TRAINING_ENV_PREFIXES
    for name in env(render_job(tj_body())):
        if name in ("PYTHONUNBUFFERED", "HOME"):  # defaults the user may override
            continue
        assert name in reserved or name.startswith(prefixes), name


def test_user_env_follows_and_may_override_pythonunbuffered():
    user = [{"name": "NCCL_DEBUG", "value": "INFO"}, {"name": "PYTHONUNBUFFERED", "value": "0"}]
    names = [e["name"] for e in trainer(render_job(tj_body(env=user)))["env"]]
    assert names[-2:] == ["NCCL_DEBUG", "PYTHONUNBUFFERED"]
    assert names.count("PYTHONUNBUFFERED") == 1
    assert env(render_job(tj_body()))["PYTHONUNBUFFERED"] == "1"


def test_command_is_modelops_train_with_the_spec_s_flags():
    body = tj_body(
        hyperparameters={"lr": "0.001", "epochs": "5", "note": "-a=b"},
        modelDeploymentRef={"name": "fraud-detector"},
    )
    container = trainer(render_job(body))
    assert container["image"] == "ghcr.io/modelops/modelops-trainer:0.2.0"
    assert container["command"] == ["modelops"]
    assert container["args"] == [
        "train",
        "--entrypoint",
        "modelops.trainer.examples.tabular",
        "--dataset",
        "s3://data/fraud/2026-11",
        "--output",
        "s3://models/fraud",
        "--model-name",
        "fraud-detector",
        "--checkpoint-dir",
        "/checkpoints",
        # Sorted, one token each: a value starting with "-" stays a value.
        "--hp=epochs=5",
        "--hp=lr=0.001",
        "--hp=note=-a=b",
    ]


def _parse_with_the_trainer_cli(args: list[str]) -> argparse.Namespace:
    from modelops.trainer import cli as trainer_cli

    parser = argparse.ArgumentParser(prog="modelops train")
    trainer_cli.add_arguments(parser)
    assert args[0] == "train"
    return parser.parse_args(args[1:])


def test_the_trainer_cli_understands_the_rendered_command():
    body = tj_body(
        hyperparameters={"epochs": "5"},
        args=["--keep-checkpoints=5", "--target=libtorch"],
        output={"storageUri": "s3://models/fraud", "modelName": "fraud_v2"},
    )
    parsed = _parse_with_the_trainer_cli(trainer(render_job(body))["args"])
    assert parsed.entrypoint == "modelops.trainer.examples.tabular"
    assert (parsed.dataset, parsed.output) == ("s3://data/fraud/2026-11", "s3://models/fraud")
    assert (parsed.model_name, parsed.checkpoint_dir) == ("fraud_v2", "/checkpoints")
    assert parsed.hp == ["epochs=5"]
    assert (parsed.keep_checkpoints, parsed.target) == (5, "libtorch")


def test_user_args_come_first_so_the_operator_s_flags_win():
    # The CRD refuses --output; an abbreviation it cannot foresee still loses.
    body = tj_body(args=["--out=s3://elsewhere", "--keep-checkpoints=3"])
    args = trainer(render_job(body))["args"]
    assert args[1:3] == ["--out=s3://elsewhere", "--keep-checkpoints=3"]
    assert _parse_with_the_trainer_cli(args).output == "s3://models/fraud"


def test_model_name_defaults():
    def name(**spec: Any) -> str:
        args = trainer(render_job(tj_body(**spec)))["args"]
        return args[args.index("--model-name") + 1]

    assert name() == "fraud-retrain"
    assert name(modelDeploymentRef={"name": "fraud-detector"}) == "fraud-detector"
    assert (
        name(
            modelDeploymentRef={"name": "fraud-detector"},
            output={"storageUri": "s3://m", "modelName": "fraud"},
        )
        == "fraud"
    )


def test_gpu_resources_toleration_and_product_selector():
    body = tj_body(
        resources={
            "gpu": {"count": 8, "product": "NVIDIA-H100-80GB-HBM3"},
            "cpu": 32,
            "memory": "256Gi",
        },
        scheduling={
            "nodeSelector": {"example.com/pool": "training"},
            "tolerations": [{"key": "spot", "operator": "Exists", "effect": "NoSchedule"}],
            "priorityClassName": "batch-low",
        },
        serviceAccountName="trainer",
    )
    rendered = render_job(body)
    assert trainer(rendered)["resources"] == {
        "requests": {"cpu": "32", "memory": "256Gi"},
        "limits": {"cpu": "32", "memory": "256Gi", "nvidia.com/gpu": "8"},
    }
    spec = pod_spec(rendered)
    assert spec["nodeSelector"] == {
        "example.com/pool": "training",
        "nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3",
    }
    assert spec["tolerations"] == [
        {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"},
        {"key": "spot", "operator": "Exists", "effect": "NoSchedule"},
    ]
    assert spec["priorityClassName"] == "batch-low"
    assert spec["serviceAccountName"] == "trainer"


def test_cpu_only_training_has_no_gpu_limit_toleration_or_selector():
    rendered = render_job(tj_body(resources={"gpu": {"count": 0}, "cpu": "4", "memory": "4Gi"}))
    assert "nvidia.com/gpu" not in trainer(rendered)["resources"]["limits"]
    assert "tolerations" not in pod_spec(rendered)
    assert "nodeSelector" not in pod_spec(rendered)


def test_pod_security_restricted_and_no_api_token():
    spec = pod_spec(render_job(tj_body()))
    assert spec["automountServiceAccountToken"] is False
    assert spec["securityContext"]["runAsNonRoot"] is True
    assert spec["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    sc = trainer(render_job(tj_body()))["securityContext"]
    assert sc["allowPrivilegeEscalation"] is False
    assert sc["capabilities"] == {"drop": ["ALL"]}
    assert sc["runAsNonRoot"] is True and sc["runAsUser"] > 0
    for volume in spec["volumes"]:
        assert set(volume) & {"emptyDir", "persistentVolumeClaim"}, "no hostPath or other types"


def test_default_volumes_checkpoints_and_shared_memory():
    rendered = render_job(tj_body())
    assert volumes(rendered) == {
        "checkpoints": {"name": "checkpoints", "emptyDir": {}},
        "shm": {"name": "shm", "emptyDir": {"medium": "Memory"}},
        "scratch": {"name": "scratch", "emptyDir": {}},
    }
    assert mounts(rendered) == {
        "/checkpoints": {"name": "checkpoints", "mountPath": "/checkpoints"},
        "/dev/shm": {"name": "shm", "mountPath": "/dev/shm"},
        # The root filesystem is read-only: torchrun, torch's caches (HOME) write here.
        "/tmp": {"name": "scratch", "mountPath": "/tmp", "subPath": "trainer"},
    }
    assert trainer(rendered)["securityContext"]["readOnlyRootFilesystem"] is True
    assert env(rendered)["HOME"] == "/tmp"
    assert trainer(rendered)["terminationMessagePolicy"] == "FallbackToLogsOnError"


def test_pvc_dataset_read_only_output_read_write_checkpoints_on_a_claim():
    body = tj_body(
        dataset={"uri": "pvc://datasets/fraud/2026-11"},
        output={"storageUri": "pvc://models/fraud"},
        checkpoints={"storageUri": "pvc://scratch/fraud-retrain"},
    )
    rendered = render_job(body)
    claims = {
        v["persistentVolumeClaim"]["claimName"]: v["persistentVolumeClaim"]["readOnly"]
        for v in volumes(rendered).values()
        if "persistentVolumeClaim" in v
    }
    assert claims == {"datasets": True, "models": False, "scratch": False}
    assert mounts(rendered)["/mnt/dataset"]["readOnly"] is True
    assert mounts(rendered)["/mnt/output"]["readOnly"] is False
    assert mounts(rendered)["/checkpoints"]["readOnly"] is False
    args = trainer(rendered)["args"]
    assert args[args.index("--dataset") + 1] == "file:///mnt/dataset/fraud/2026-11"
    assert args[args.index("--output") + 1] == "file:///mnt/output/fraud"
    assert args[args.index("--checkpoint-dir") + 1] == "/checkpoints/fraud-retrain"


def test_one_claim_for_dataset_and_output_is_one_read_write_volume():
    body = tj_body(
        dataset={"uri": "pvc://shared/data"}, output={"storageUri": "pvc://shared/models"}
    )
    rendered = render_job(body)
    pvcs = [v for v in volumes(rendered).values() if "persistentVolumeClaim" in v]
    assert pvcs == [
        {"name": "dataset", "persistentVolumeClaim": {"claimName": "shared", "readOnly": False}}
    ]
    assert mounts(rendered)["/mnt/dataset"] == {
        "name": "dataset",
        "mountPath": "/mnt/dataset",
        "readOnly": True,
    }
    assert mounts(rendered)["/mnt/output"]["name"] == "dataset"
    assert mounts(rendered)["/mnt/output"]["readOnly"] is False


def test_credentials_image_pull_policy():
    rendered = render_job(
        tj_body(
            credentialsSecretRef={"name": "s3-creds"},
            image="registry.example.com/ml/trainer:7",
            imagePullPolicy="Always",
        )
    )
    container = trainer(rendered)
    assert container["envFrom"] == [{"secretRef": {"name": "s3-creds"}}]
    assert container["image"] == "registry.example.com/ml/trainer:7"
    assert container["imagePullPolicy"] == "Always"
    assert "envFrom" not in trainer(render_job(tj_body()))


def test_run_policy_fields():
    spec = render_job(tj_body(activeDeadlineSeconds=7200, ttlSecondsAfterFinished=86400))["spec"]
    assert spec["activeDeadlineSeconds"] == 7200
    assert spec["ttlSecondsAfterFinished"] == 86400
    assert spec["suspend"] is False
    plain = render_job(tj_body())["spec"]
    assert "activeDeadlineSeconds" not in plain and "ttlSecondsAfterFinished" not in plain


def test_job_ttl_below_the_floor_is_refused_not_raised():
    # The operator must see how an attempt ended; 0 is refused by the API, naming the
    # field, instead of being silently turned into 300.
    assert (
        render_job(tj_body(ttlSecondsAfterFinished=300))["spec"]["ttlSecondsAfterFinished"] == 300
    )
    with pytest.raises(ValidationError, match=r"ttl_?[sS]econds_?[aA]fter_?[fF]inished"):
        render_job(tj_body(ttlSecondsAfterFinished=0))


def test_deadline_covers_all_attempts():
    body = tj_body(activeDeadlineSeconds=7200)
    assert render_job(body, attempt=1, elapsed_seconds=7000)["spec"]["activeDeadlineSeconds"] == 200
    # Past the deadline the Job still gets a positive value and fails at once.
    assert render_job(body, attempt=2, elapsed_seconds=9000)["spec"]["activeDeadlineSeconds"] == 1


def test_suspend_and_kueue_queue():
    assert render_job(tj_body(suspend=True))["spec"]["suspend"] is True
    queued = render_job(tj_body(queueName="gpu-queue"))
    assert queued["metadata"]["labels"]["kueue.x-k8s.io/queue-name"] == "gpu-queue"
    # Created suspended: Kueue admits it by un-suspending.
    assert queued["spec"]["suspend"] is True
    assert "kueue.x-k8s.io/queue-name" not in queued["spec"]["template"]["metadata"]["labels"]


@pytest.mark.parametrize(
    ("spec", "live_suspend", "patch"),
    [
        ({"suspend": True}, False, {"spec": {"suspend": True}}),
        ({"suspend": True}, True, None),
        ({"suspend": False}, True, {"spec": {"suspend": False}}),
        ({"suspend": False}, False, None),
        # With a queue, un-suspending is Kueue's admission: never fight it.
        ({"suspend": False, "queueName": "gpu-queue"}, True, None),
        ({"suspend": True, "queueName": "gpu-queue"}, False, {"spec": {"suspend": True}}),
    ],
)
def test_suspend_patch(spec, live_suspend, patch):
    live = job(0)
    live["spec"]["suspend"] = live_suspend
    assert suspend_patch(tj_body(**spec), live) == patch


def test_latest_attempt_recovers_the_counter():
    assert latest_attempt([job(0), job(2), job(1)]) == 2
    assert latest_attempt([]) is None
    unlabelled = job(0)
    del unlabelled["metadata"]["annotations"]
    assert attempt_of(unlabelled) is None


# --- the headless Service -------------------------------------------------------------------


def test_headless_service_for_the_rendezvous():
    svc = render_headless_service(tj_body())
    assert (svc["apiVersion"], svc["kind"]) == ("v1", "Service")
    # Not the TrainingJob's own name: a ModelDeployment of that name owns that Service.
    assert svc["metadata"]["name"] == "fraud-retrain-workers"
    assert svc["metadata"]["ownerReferences"] == [OWNER]
    assert svc["spec"] == {
        "clusterIP": "None",
        "selector": {"modelops.io/training-job": "fraud-retrain"},
        "publishNotReadyAddresses": True,
        "ports": [{"name": "rendezvous", "port": 29500, "targetPort": 29500, "protocol": "TCP"}],
    }
    pod_labels = render_job(tj_body())["spec"]["template"]["metadata"]["labels"]
    assert svc["spec"]["selector"].items() <= pod_labels.items()


# --- properties of every rendering ------------------------------------------------------------


def _walk(value: Any, path: str = "") -> list[str]:
    bad = []
    if value is None:
        bad.append(path)
    elif isinstance(value, dict):
        if not value and not path.endswith("emptyDir"):
            bad.append(path)
        for k, v in value.items():
            bad += _walk(v, f"{path}.{k}")
    elif isinstance(value, list):
        if not value:
            bad.append(path)
        for i, v in enumerate(value):
            bad += _walk(v, f"{path}[{i}]")
    return bad


@pytest.mark.parametrize(
    "body",
    [
        tj_body(),
        tj_body(
            queueName="q",
            env=[{"name": "A", "value": "1"}],
            args=["--target=libtorch"],
            hyperparameters={"a": "1"},
            checkpoints={"storageUri": "pvc://scratch/x"},
            scheduling={"tolerations": [{"operator": "Exists"}]},
            activeDeadlineSeconds=60,
        ),
        tj_body(resources={"gpu": {"count": 0}, "cpu": "1", "memory": "1Gi"}),
    ],
    ids=["minimal", "everything", "cpu-only"],
)
def test_no_nulls_or_empty_containers(body):
    assert _walk(render_job(body)) == []
    assert _walk(render_headless_service(body)) == []


def test_rendering_is_deterministic_and_accepts_kopf_like_mappings():
    def freeze(v: Any) -> Any:
        if isinstance(v, dict):
            return MappingProxyType({k: freeze(x) for k, x in v.items()})
        if isinstance(v, list):
            return tuple(freeze(x) for x in v)
        return v

    assert render_job(freeze(tj_body())) == render_job(tj_body())
    assert render_headless_service(freeze(tj_body())) == render_headless_service(tj_body())


# --- spec.command: an existing torchrun script, run as it is ---------------------------

RANK_FROM_INDEX = {
    "fieldRef": {"fieldPath": f"metadata.annotations['{c.ANNOTATION_COMPLETION_INDEX}']"}
}


def test_every_pod_gets_the_kubeflow_pytorchjob_environment():
    for body in (tj_body(), tj_body(command=["torchrun", "train.py"])):
        got = env(render_job(body, attempt=1))
        assert got["PET_NNODES"] == "2"
        assert got["PET_NPROC_PER_NODE"] == "1"
        assert got["PET_NODE_RANK"] == RANK_FROM_INDEX
        assert (
            got["PET_MASTER_ADDR"]
            == got["MASTER_ADDR"]
            == "fraud-retrain-a1-0.fraud-retrain-workers"
        )
        assert got["PET_MASTER_PORT"] == got["MASTER_PORT"] == "29500"


def test_command_runs_unchanged_under_the_publishing_wrapper():
    rendered = render_job(
        tj_body(command=["torchrun", "--nproc-per-node=1", "train.py", "--lr=0.1"])
    )
    container = trainer(rendered)
    assert container["command"] == ["modelops"]
    assert container["args"] == [
        "train-script", "--output", "s3://models/fraud", "--model-name", "fraud-retrain",
        "--", "torchrun", "--nproc-per-node=1", "train.py", "--lr=0.1",
    ]  # fmt: skip
    got = env(rendered)
    # One process per node: the pod is a rank, as torchrun would make it.
    assert (got["WORLD_SIZE"], got["RANK"], got["LOCAL_RANK"]) == ("2", RANK_FROM_INDEX, "0")
    assert got["MODELOPS_OUTPUT_DIR"] == "/output"
    assert got["MODELOPS_DATASET_URI"] == "s3://data/fraud/2026-11"
    assert mounts(rendered)["/output"] == {"name": "model-output", "mountPath": "/output"}
    assert volumes(rendered)["model-output"] == {"name": "model-output", "emptyDir": {}}


def test_rank_variables_only_where_torchrun_would_set_them():
    # Several processes per node: torchrun sets RANK per process; the pod must not.
    got = env(render_job(tj_body(command=["torchrun", "train.py"], procsPerNode=4)))
    assert "RANK" not in got and "WORLD_SIZE" not in got and "LOCAL_RANK" not in got
    # modelops train starts torchrun itself; RANK would make it skip that.
    got = env(render_job(tj_body()))
    assert "RANK" not in got and "WORLD_SIZE" not in got and "MODELOPS_OUTPUT_DIR" not in got
