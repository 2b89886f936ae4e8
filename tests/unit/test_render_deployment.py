"""render_deployment: the Triton Deployment, container by container."""

from __future__ import annotations

from typing import Any

import pytest

from modelops.render.deployment import render_deployment
from tests.unit.test_render_fixtures import AUTOSCALING, md_body

IMAGE = "ghcr.io/modelops/operator:0.1.0"
# The sidecar's traffic settings (gated rollouts), from the `<name>-traffic` ConfigMap.
TRAFFIC_MOUNT = {"name": "traffic", "mountPath": "/etc/modelops/traffic", "readOnly": True}
DRIFT = {
    "enabled": True,
    "reference": {"uri": "s3://models/fraud/reference.npz"},
    "method": "ks",
    "threshold": 0.15,
    "window": 5000,
}


def render(body: dict[str, Any] | None = None, **kw: Any) -> dict[str, Any]:
    kw.setdefault("operator_image", IMAGE)
    kw.setdefault("model_version", "7")
    return render_deployment(body or md_body(), **kw)


def pod_spec(dep: dict[str, Any]) -> dict[str, Any]:
    return dep["spec"]["template"]["spec"]


def container(dep: dict[str, Any], name: str) -> dict[str, Any]:
    spec = pod_spec(dep)
    found = [c for c in spec.get("initContainers", []) + spec["containers"] if c["name"] == name]
    assert found, f"no container {name}"
    return found[0]


def arg_value(args: list[str], flag: str) -> str:
    return args[args.index(flag) + 1]


def test_identity_labels_and_owner():
    dep = render()
    assert dep["apiVersion"] == "apps/v1" and dep["kind"] == "Deployment"
    assert dep["metadata"]["name"] == "fraud" and dep["metadata"]["namespace"] == "ml"
    labels = {
        "app.kubernetes.io/name": "triton",
        "app.kubernetes.io/instance": "fraud",
        "app.kubernetes.io/managed-by": "modelops",
        "modelops.io/model-deployment": "fraud",
    }
    assert dep["metadata"]["labels"] == labels
    # Pods also say which slot (of a gated rollout's two Deployments) they belong to.
    assert dep["spec"]["template"]["metadata"]["labels"] == {**labels, "modelops.io/slot": "a"}
    assert dep["spec"]["selector"]["matchLabels"] == {"modelops.io/model-deployment": "fraud"}
    assert dep["spec"]["selector"] == {"matchLabels": {"modelops.io/model-deployment": "fraud"}}
    assert dep["metadata"]["ownerReferences"] == [
        {
            "apiVersion": "modelops.io/v1alpha1",
            "kind": "ModelDeployment",
            "name": "fraud",
            "uid": "5b1f3f0e-2c1a-4d0e-9a57-0c9d8f0f7a11",
            "controller": True,
            "blockOwnerDeletion": True,
        }
    ]
    assert "status" not in dep


def test_model_version_annotation_rolls_the_pods():
    v7 = render(model_version="7")
    v8 = render(model_version="8")
    assert v7["spec"]["template"]["metadata"]["annotations"]["modelops.io/model-version"] == "7"
    assert v7["spec"]["template"] != v8["spec"]["template"]


def test_pull_init_container():
    pull = container(render(), "pull-model")
    assert pull["image"] == IMAGE
    assert pull["command"] == ["modelops"]
    args = pull["args"]
    assert args[0] == "pull-model"
    assert arg_value(args, "--uri") == "s3://models/fraud"
    assert arg_value(args, "--version") == "7"
    assert arg_value(args, "--model-name") == "fraud"
    assert arg_value(args, "--format") == "triton"
    assert arg_value(args, "--repository") == "/models"
    assert arg_value(args, "--termination-log") == "/dev/termination-log"
    assert "--allow-unverified" not in args
    assert arg_value(args, "--instances-per-gpu") == "1"
    assert arg_value(args, "--gpus") == "1"
    assert "--max-batch-size" not in args and "--dynamic-batching-delay-us" not in args
    assert "envFrom" not in pull
    assert {"name": "models", "mountPath": "/models"} in pull["volumeMounts"]
    assert pull["terminationMessagePolicy"] == "FallbackToLogsOnError"


def test_runtime_batching_settings_reach_the_pull_step():
    body = md_body(
        runtime={
            "image": "nvcr.io/nvidia/tritonserver:25.01-py3",
            "instancesPerGpu": 2,
            "maxBatchSize": 64,
            "dynamicBatching": {"maxQueueDelayMicroseconds": 100},
        }
    )
    args = container(render(body), "pull-model")["args"]
    assert arg_value(args, "--max-batch-size") == "64"
    assert arg_value(args, "--dynamic-batching-delay-us") == "100"
    assert arg_value(args, "--instances-per-gpu") == "2"


def test_credentials_go_to_the_pull_container_only():
    body = md_body()
    body["spec"]["model"]["credentialsSecretRef"] = {"name": "s3-creds"}
    dep = render(body)
    assert container(dep, "pull-model")["envFrom"] == [{"secretRef": {"name": "s3-creds"}}]
    assert "envFrom" not in container(dep, "triton")


def test_unverified_versions_only_when_asked():
    body = md_body()
    body["spec"]["model"]["verifyChecksums"] = False
    assert "--allow-unverified" in container(render(body), "pull-model")["args"]


def test_model_name_override():
    body = md_body()
    body["spec"]["model"]["name"] = "fraud_v2"
    assert arg_value(container(render(body), "pull-model")["args"], "--model-name") == "fraud_v2"


def test_triton_container():
    triton = container(render(), "triton")
    assert triton["image"] == "nvcr.io/nvidia/tritonserver:25.01-py3"
    assert triton["command"] == ["tritonserver"]
    assert triton["args"][:5] == [
        "--model-repository=/models",
        "--model-control-mode=none",
        "--http-port=8000",
        "--grpc-port=8001",
        "--metrics-port=8002",
    ]
    assert [(p["name"], p["containerPort"]) for p in triton["ports"]] == [
        ("http", 8000),
        ("grpc", 8001),
        ("metrics", 8002),
    ]
    assert triton["livenessProbe"]["httpGet"] == {"path": "/v2/health/live", "port": "http"}
    assert triton["readinessProbe"]["httpGet"] == {"path": "/v2/health/ready", "port": "http"}
    startup = triton["startupProbe"]
    assert startup["periodSeconds"] * startup["failureThreshold"] >= 1800
    assert triton["resources"] == {
        "requests": {"cpu": "2", "memory": "8Gi"},
        "limits": {"cpu": "2", "memory": "8Gi", "nvidia.com/gpu": "1"},
    }
    mounts = {m["mountPath"]: m for m in triton["volumeMounts"]}
    assert mounts["/models"]["readOnly"] is True
    assert mounts["/dev/shm"]["name"] == "shm"
    assert "imagePullPolicy" not in triton
    assert triton["env"] == [HOME]


def test_user_runtime_settings():
    body = md_body(
        runtime={
            "image": "registry.example.com/tritonserver:custom",
            "imagePullPolicy": "Always",
            "instancesPerGpu": 1,
            "args": ["--log-verbose=1"],
            "env": [{"name": "TF_ENABLE_ONEDNN_OPTS", "value": "0"}],
        },
        resources={"gpu": {"count": 2}, "cpu": 8, "memory": "32Gi"},
    )
    triton = container(render(body), "triton")
    assert triton["image"] == "registry.example.com/tritonserver:custom"
    assert triton["imagePullPolicy"] == "Always"
    assert triton["args"][-1] == "--log-verbose=1"
    assert triton["env"] == [HOME, {"name": "TF_ENABLE_ONEDNN_OPTS", "value": "0"}]
    assert triton["resources"]["limits"] == {"cpu": "8", "memory": "32Gi", "nvidia.com/gpu": "2"}


def test_cpu_only_model_has_no_gpu_limit_toleration_or_selector():
    body = md_body(resources={"gpu": {"count": 0}, "cpu": "2", "memory": "8Gi"})
    dep = render(body)
    assert "nvidia.com/gpu" not in container(dep, "triton")["resources"]["limits"]
    assert "tolerations" not in pod_spec(dep)
    assert "nodeSelector" not in pod_spec(dep)
    assert arg_value(container(dep, "pull-model")["args"], "--gpus") == "0"


def test_gpu_product_selector_toleration_and_user_scheduling():
    body = md_body(
        resources={
            "gpu": {"count": 1, "product": "NVIDIA-H100-80GB-HBM3"},
            "cpu": "2",
            "memory": "8Gi",
        },
        scheduling={
            "nodeSelector": {"pool": "inference"},
            "tolerations": [
                {"key": "dedicated", "operator": "Equal", "value": "ml", "effect": "NoSchedule"},
                {
                    "key": "spot",
                    "operator": "Exists",
                    "effect": "NoExecute",
                    "tolerationSeconds": 30,
                },
            ],
            "priorityClassName": "serving-critical",
        },
        serviceAccountName="triton-reader",
    )
    spec = pod_spec(render(body))
    assert spec["nodeSelector"] == {
        "nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3",
        "pool": "inference",
    }
    assert spec["tolerations"] == [
        {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"},
        {"key": "dedicated", "operator": "Equal", "value": "ml", "effect": "NoSchedule"},
        {"key": "spot", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 30},
    ]
    assert spec["priorityClassName"] == "serving-critical"
    assert spec["serviceAccountName"] == "triton-reader"


def test_every_container_passes_pod_security_restricted():
    body = md_body(driftMonitor=DRIFT)  # s3:// reference: with the fetch init container
    spec = pod_spec(render(body))
    assert spec["automountServiceAccountToken"] is False
    assert spec["securityContext"]["runAsNonRoot"] is True
    assert spec["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    containers = spec["initContainers"] + spec["containers"]
    assert [c["name"] for c in containers] == [
        "pull-model",
        "fetch-reference",
        "triton",
        "drift-monitor",
    ]
    for c in containers:
        sc = c["securityContext"]
        assert sc["allowPrivilegeEscalation"] is False, c["name"]
        assert sc["capabilities"] == {"drop": ["ALL"]}
        assert sc["runAsNonRoot"] is True
        assert sc["runAsUser"] > 0 and sc["runAsGroup"] > 0
        assert sc["seccompProfile"] == {"type": "RuntimeDefault"}
        assert "privileged" not in sc
        # Read-only root; the container writes only to volumes: its own /tmp, HOME there.
        assert sc["readOnlyRootFilesystem"] is True, c["name"]
        assert scratch(c["name"]) in c["volumeMounts"], c["name"]
        assert HOME in c["env"], c["name"]
        # Guaranteed QoS: every container has requests == limits for cpu and memory.
        assert c["resources"]["requests"] == {
            k: v for k, v in c["resources"]["limits"].items() if k in ("cpu", "memory")
        }
    for volume in spec["volumes"]:
        allowed = {"emptyDir", "persistentVolumeClaim", "configMap"}  # restricted PSS allows these
        assert set(volume) & allowed, "no hostPath or other types"


def test_volumes():
    volumes = {v["name"]: v for v in pod_spec(render())["volumes"]}
    assert volumes["models"] == {"name": "models", "emptyDir": {}}
    assert volumes["shm"] == {"name": "shm", "emptyDir": {"medium": "Memory"}}
    assert volumes["scratch"] == {"name": "scratch", "emptyDir": {}}


HOME = {"name": "HOME", "value": "/tmp"}


def scratch(name: str) -> dict:
    return {"name": "scratch", "mountPath": "/tmp", "subPath": name}


def test_a_user_home_is_kept():
    body = md_body(runtime={"env": [{"name": "HOME", "value": "/models"}]})
    assert container(render(body), "triton")["env"] == [{"name": "HOME", "value": "/models"}]


def test_drift_sidecar():
    body = md_body(driftMonitor=DRIFT)
    drift = container(render(body), "drift-monitor")
    assert drift["image"] == IMAGE and drift["command"] == ["modelops"]
    args = drift["args"]
    assert args[0] == "drift-monitor"
    assert arg_value(args, "--port") == "8080"
    assert arg_value(args, "--admin-port") == "8090"
    assert arg_value(args, "--upstream") == "http://127.0.0.1:8000"
    assert arg_value(args, "--grpc-port") == "8081"
    assert arg_value(args, "--grpc-upstream") == "127.0.0.1:8001"
    assert arg_value(args, "--model") == "fraud"
    assert arg_value(args, "--method") == "ks"
    assert arg_value(args, "--threshold") == "0.15"
    assert arg_value(args, "--window") == "5000"
    assert [(p["name"], p["containerPort"]) for p in drift["ports"]] == [
        ("http-proxy", 8080),
        ("grpc-proxy", 8081),
        ("drift-metrics", 8090),
    ]
    assert drift["readinessProbe"]["httpGet"] == {"path": "/v2/health/ready", "port": "http-proxy"}
    # Defaults: requests equal limits, sized from the sidecar's measured memory bound.
    amounts = {"cpu": "1", "memory": "384Mi"}
    assert drift["resources"] == {"requests": amounts, "limits": amounts}


def test_drift_sidecar_resources_are_the_users():
    res = {"requests": {"cpu": "250m", "memory": "256Mi"}, "limits": {"memory": "1Gi"}}
    drift = container(render(md_body(driftMonitor={**DRIFT, "resources": res})), "drift-monitor")
    assert drift["resources"] == {
        "requests": {"cpu": "250m", "memory": "256Mi"},
        "limits": {"cpu": "1", "memory": "1Gi"},
    }


def test_drift_sidecar_takes_over_grpc():
    """Triton's gRPC listens on loopback only: gRPC reaches it through the sidecar."""
    triton = container(render(md_body(driftMonitor=DRIFT)), "triton")
    assert "--grpc-address=127.0.0.1" in triton["args"]
    assert "--grpc-port=8001" in triton["args"]
    assert [p["name"] for p in triton["ports"]] == ["http", "metrics"]
    # The HTTP probes still reach Triton directly.
    assert triton["readinessProbe"]["httpGet"] == {"path": "/v2/health/ready", "port": "http"}
    plain = container(render(), "triton")
    assert not any(a.startswith("--grpc-address") for a in plain["args"])


def test_object_store_reference_is_fetched_by_an_init_container_with_the_credentials():
    body = md_body(driftMonitor=DRIFT)
    body["spec"]["model"]["credentialsSecretRef"] = {"name": "s3-creds"}
    dep = render(body)
    fetch = container(dep, "fetch-reference")
    assert fetch["args"] == [
        "pull-file",
        "--uri",
        "s3://models/fraud/reference.npz",
        "--output",
        "/reference/reference.npz",
        "--termination-log",
        "/dev/termination-log",
    ]
    assert fetch["envFrom"] == [{"secretRef": {"name": "s3-creds"}}]
    assert fetch["volumeMounts"] == [
        {"name": "drift-reference", "mountPath": "/reference"},
        scratch("fetch-reference"),
    ]
    drift = container(dep, "drift-monitor")
    assert arg_value(drift["args"], "--reference") == "/reference/reference.npz"
    assert drift["volumeMounts"] == [
        {"name": "drift-reference", "mountPath": "/reference", "readOnly": True},
        TRAFFIC_MOUNT,
        scratch("drift-monitor"),
    ]
    # The sidecar handles requests: it never holds the storage credentials.
    assert "envFrom" not in drift and "envFrom" not in container(dep, "triton")
    volumes = {v["name"]: v for v in pod_spec(dep)["volumes"]}
    assert volumes["drift-reference"] == {"name": "drift-reference", "emptyDir": {}}


@pytest.mark.parametrize(
    "uri", ["https://models.example.com/fraud/reference.json", "file:///data/reference.json"]
)
def test_http_and_file_references_are_read_by_the_sidecar_itself(uri):
    body = md_body(driftMonitor={**DRIFT, "reference": {"uri": uri}})
    dep = render(body)
    names = [c["name"] for c in pod_spec(dep)["initContainers"]]
    assert names == ["pull-model"]
    assert arg_value(container(dep, "drift-monitor")["args"], "--reference") == uri


def test_drift_threshold_left_to_the_sidecar_default_when_unset():
    drift = {k: v for k, v in DRIFT.items() if k != "threshold"}
    args = container(render(md_body(driftMonitor=drift)), "drift-monitor")["args"]
    assert "--threshold" not in args


def test_a_retired_pod_leaves_the_endpoints_then_drains_before_triton_stops():
    """Issue 18: preStop sleeps take the pod out of the Services first; the sidecar
    drains while Triton still serves; the grace period covers it all."""
    dep = render(md_body(driftMonitor=DRIFT))
    drift, triton = container(dep, "drift-monitor"), container(dep, "triton")
    sidecar_sleep = drift["lifecycle"]["preStop"]["sleep"]["seconds"]
    drain = float(arg_value(drift["args"], "--drain-seconds"))
    triton_sleep = triton["lifecycle"]["preStop"]["sleep"]["seconds"]
    assert sidecar_sleep >= 3 and drain > 0
    assert triton_sleep >= sidecar_sleep + drain  # Triton outlives the drain
    assert pod_spec(dep)["terminationGracePeriodSeconds"] > triton_sleep
    plain = render()
    assert "lifecycle" not in container(plain, "triton")
    assert "terminationGracePeriodSeconds" not in pod_spec(plain)


def test_no_sidecar_when_drift_disabled():
    body = md_body(driftMonitor={**DRIFT, "enabled": False})
    names = [c["name"] for c in pod_spec(render(body))["containers"]]
    assert names == ["triton"]


def test_pvc_sources_are_mounted_read_only_and_passed_as_file_uris():
    body = md_body(driftMonitor={**DRIFT, "reference": {"uri": "pvc://refs/fraud/reference.npz"}})
    body["spec"]["model"]["storageUri"] = "pvc://model-store/fraud"
    body["spec"]["model"]["credentialsSecretRef"] = {"name": "s3-creds"}
    dep = render(body)
    pull = container(dep, "pull-model")
    assert arg_value(pull["args"], "--uri") == "file:///mnt/model/fraud"
    assert {"name": "model-source", "mountPath": "/mnt/model", "readOnly": True} in pull[
        "volumeMounts"
    ]
    drift = container(dep, "drift-monitor")
    assert arg_value(drift["args"], "--reference") == "file:///mnt/reference/fraud/reference.npz"
    assert drift["volumeMounts"] == [
        {"name": "drift-reference", "mountPath": "/mnt/reference", "readOnly": True},
        TRAFFIC_MOUNT,
        scratch("drift-monitor"),
    ]
    assert "envFrom" not in drift  # nothing remote to fetch
    volumes = {v["name"]: v for v in pod_spec(dep)["volumes"]}
    assert volumes["model-source"]["persistentVolumeClaim"] == {
        "claimName": "model-store",
        "readOnly": True,
    }
    assert volumes["drift-reference"]["persistentVolumeClaim"] == {
        "claimName": "refs",
        "readOnly": True,
    }


def test_pvc_root_uri():
    body = md_body()
    body["spec"]["model"]["storageUri"] = "pvc://model-store"
    assert arg_value(container(render(body), "pull-model")["args"], "--uri") == "file:///mnt/model"


def test_replicas_from_spec():
    assert render(md_body(replicas=3))["spec"]["replicas"] == 3
    assert render(md_body(replicas=0))["spec"]["replicas"] == 0


def test_replicas_left_to_the_autoscaler():
    dep = render(md_body(autoscaling=AUTOSCALING))
    assert "replicas" not in dep["spec"]
    # ... unless the controller hands over the live count explicitly.
    assert render(md_body(autoscaling=AUTOSCALING), replicas=5)["spec"]["replicas"] == 5


def test_strategy_from_spec_and_replace_in_place():
    body = md_body(rollout={"maxSurge": "25%", "maxUnavailable": 0, "surgeTimeoutSeconds": 60})
    assert render(body)["spec"]["strategy"] == {
        "type": "RollingUpdate",
        "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": 0},
    }
    assert render(body, replace_in_place=True)["spec"]["strategy"]["rollingUpdate"] == {
        "maxSurge": 0,
        "maxUnavailable": 1,
    }


def test_replace_in_place_does_not_change_the_pod_template():
    # Switching strategy must not start yet another rollout.
    assert render()["spec"]["template"] == render(replace_in_place=True)["spec"]["template"]


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
        md_body(),
        md_body(driftMonitor=DRIFT, autoscaling=AUTOSCALING),
        md_body(resources={"gpu": {"count": 0}, "cpu": "1", "memory": "1Gi"}),
    ],
    ids=["minimal", "everything", "cpu-only"],
)
def test_no_nulls_or_empty_containers_that_would_fight_server_side_apply(body):
    assert _walk(render(body)) == []


def test_accepts_kopf_like_read_only_mappings():
    from types import MappingProxyType

    def freeze(v: Any) -> Any:
        if isinstance(v, dict):
            return MappingProxyType({k: freeze(x) for k, x in v.items()})
        if isinstance(v, list):
            return tuple(freeze(x) for x in v)
        return v

    assert render(freeze(md_body())) == render(md_body())


def test_gpu_pods_pull_step_asks_for_kind_auto_only_when_the_operator_says_so():
    """MODELOPS_GPU_INSTANCE_KIND=auto (GPU resources without a CUDA device, as on the
    local real node): the pull step writes KIND_AUTO; by default nothing changes."""
    gpu = md_body(resources={"gpu": {"count": 1}, "cpu": "2", "memory": "8Gi"})
    auto = container(render(gpu, gpu_instance_kind="auto"), "pull-model")["args"]
    assert arg_value(auto, "--gpu-instance-kind") == "auto"
    assert arg_value(auto, "--gpus") == "1"
    assert "--gpu-instance-kind" not in container(render(gpu), "pull-model")["args"]
    # A CPU model runs on CPU anyway: its template stays as it was.
    cpu = md_body(resources={"gpu": {"count": 0}, "cpu": "2", "memory": "8Gi"})
    assert render(cpu, gpu_instance_kind="auto") == render(cpu)
