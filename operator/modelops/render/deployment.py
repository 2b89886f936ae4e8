"""The Triton Deployment of a ModelDeployment.

Pod shape: an init container (`modelops pull-model`) writes the requested
model version into an emptyDir Triton model repository at /models; Triton
serves it; optionally the drift-monitor sidecar proxies HTTP and gRPC
inference in front of Triton (see drift_sidecar.py); Triton's gRPC then
listens on the pod's loopback only, so every gRPC call passes the sidecar
(its HTTP port stays on the pod IP for the kubelet's probes). Every container passes the Pod
Security "restricted" profile.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from modelops.api import constants as c
from modelops.api.images import triton_image
from modelops.api.modeldeployment import ModelDeployment

from . import inplace_pod
from .containers import (
    TERMINATION_LOG,
    credentials,
    fixed_resources,
    http_probe,
    pod_security_context,
    scratch_volume,
    security_context,
    with_scratch,
)
from .dra import apply_to_pod
from .drift_sidecar import (
    TERMINATION_GRACE_SECONDS,
    TRAFFIC_VOLUME,
    TRITON_PRESTOP_SECONDS,
    drift_parts,
    prestop_sleep,
    sidecar_enabled,
)
from .meta import as_md, child_metadata, labels, selector_labels
from .placement import container_resources, node_selector, tolerations
from .pod_controls import apply_pod_controls
from .pods import PULL_CONTAINER
from .slots import deployment_name
from .sources import PodSource, pod_source

MODEL_REPOSITORY = "/models"
TRITON_CONTAINER = "triton"

# Big models take minutes to download and load, and Triton opens its ports
# only after loading. The startup probe allows 30 minutes before liveness
# starts counting; the progress deadline matches it so that a slow load is
# not reported as a stalled rollout.
STARTUP_PROBE_PERIOD = 10
STARTUP_PROBE_FAILURES = 180
PROGRESS_DEADLINE_SECONDS = STARTUP_PROBE_PERIOD * STARTUP_PROBE_FAILURES


def render_deployment(
    md: ModelDeployment | Mapping[str, Any],
    *,
    operator_image: str,
    model_version: str,
    replace_in_place: bool = False,
    replicas: int | None = None,
    triton_image: str = c.DEFAULT_TRITON_IMAGE,
    slot: str = "a",
    gpu_instance_kind: str = "gpu",
) -> dict[str, Any]:
    """The apps/v1 Deployment serving the model in ``slot`` (render/slots.py).

    triton_image: the operator's default Triton image, used unless
      spec.runtime.image names another (see api/images.py). It is part of the pod
      template, so a new default rolls the pods of every ModelDeployment that
      follows it, through the same rollout as any template change.

    model_version: the resolved version to serve (e.g. "7"); it is passed to
      the pull container and recorded as a pod-template annotation, so a new
      version rolls the pods even when nothing else changes.
    replace_in_place: roll out with maxSurge 0 / maxUnavailable 1 (set by the
      controller when a surge pod cannot get a GPU, see decide_rollout).
    replicas: explicit replica count. By default spec.replicas, or no
      `replicas` field at all under autoscaling: the field must be left to the
      HPA/KEDA, or every apply would reset the autoscaler's decision. The
      controller may pass the live count once when autoscaling is switched
      on, so that dropping the field does not fall back to the default of 1.
    """
    md = as_md(md)
    spec: dict[str, Any] = {}
    count = replicas
    if count is None and md.spec.autoscaling is None:
        count = md.spec.replicas
    if count is not None:
        spec["replicas"] = count
    # Slot a keeps the selector Deployments had before slots (selectors are immutable);
    # slot b's adds the slot label. The two overlap, which the Deployment controller
    # tolerates: it only counts ReplicaSets it controls (controller references).
    selector = selector_labels(md)
    if slot != "a":
        selector = {**selector, c.LABEL_SLOT: slot}
    spec.update(
        {
            "selector": {"matchLabels": selector},
            "strategy": _strategy(md, replace_in_place),
            "progressDeadlineSeconds": PROGRESS_DEADLINE_SECONDS,
            "template": {
                "metadata": {
                    "labels": {**labels(md), c.LABEL_SLOT: slot},
                    "annotations": {
                        c.ANNOTATION_MODEL_VERSION: model_version,
                        "kubectl.kubernetes.io/default-container": TRITON_CONTAINER,
                    },
                },
                "spec": _pod_spec(
                    md, operator_image, model_version, triton_image, gpu_instance_kind
                ),
            },
        }
    )
    apply_to_pod(md, spec["template"]["spec"], spec["template"], TRITON_CONTAINER)  # DRA GPUs
    # The user's pod controls last, over the complete template, so that the
    # operator's own entries are known and win (a collision is refused).
    # A spread constraint counts the ModelDeployment's pods of both slots by default.
    apply_pod_controls(
        spec["template"], md.pod_controls, container=TRITON_CONTAINER, own_pods=selector_labels(md)
    )
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": child_metadata(md, deployment_name(md.name, slot)),
        "spec": spec,
    }


def _strategy(md: ModelDeployment, replace_in_place: bool) -> dict[str, Any]:
    rollout = md.spec.rollout
    if replace_in_place:
        surge, unavailable = 0, 1
    else:
        surge, unavailable = rollout.max_surge, rollout.max_unavailable
    return {
        "type": "RollingUpdate",
        "rollingUpdate": {"maxSurge": surge, "maxUnavailable": unavailable},
    }


def _pod_spec(
    md: ModelDeployment,
    operator_image: str,
    model_version: str,
    triton_image: str,
    gpu_instance_kind: str = "gpu",
) -> dict[str, Any]:
    source = pod_source(
        md.spec.model.storage_uri, volume_name="model-source", mount_path="/mnt/model"
    )
    drift = drift_parts(md, operator_image)
    volumes: list[dict[str, Any]] = [
        {"name": "models", "emptyDir": {}},
        # Triton's Python backend exchanges tensors through /dev/shm; the
        # runtime's default 64Mi is far too small. Memory-backed, so it counts
        # against the container memory limit.
        {"name": "shm", "emptyDir": {"medium": "Memory"}},
    ]
    if source.volume:
        volumes.append(source.volume)
    volumes += drift.volumes

    containers = [_triton_container(md, triton_image), *drift.containers]
    if md.spec.rollout.placement == "InPlace" and len(containers) > 1:
        # The candidate runs inside these pods (render/inplace_pod.py).
        inplace_pod.apply(
            md,
            containers[0],
            containers[1],
            repository=MODEL_REPOSITORY,
            source_mount=source.mount,
        )
    pull = _pull_container(md, operator_image, model_version, source, gpu_instance_kind)
    if md.spec.rollout.placement == "InPlace" and len(containers) > 1:
        inplace_pod.apply_to_pull(pull, traffic_volume=TRAFFIC_VOLUME)
    pod: dict[str, Any] = {
        # Triton never calls the API server; no token in the pod.
        "automountServiceAccountToken": False,
        "securityContext": pod_security_context(),
        "initContainers": [
            with_scratch(c)
            for c in (
                pull,
                *drift.init_containers,
            )
        ],
        "containers": [with_scratch(c) for c in containers],
        "volumes": [*volumes, scratch_volume()],
    }
    if drift.containers:
        # preStop sleeps, the sidecar's drain, Triton's stop (see drift_sidecar).
        pod["terminationGracePeriodSeconds"] = TERMINATION_GRACE_SECONDS
    if md.spec.service_account_name:
        pod["serviceAccountName"] = md.spec.service_account_name
    scheduling = md.spec.scheduling
    if scheduling is not None and scheduling.priority_class_name:
        pod["priorityClassName"] = scheduling.priority_class_name
    selector = node_selector(md.spec.resources, scheduling)
    if selector:
        pod["nodeSelector"] = selector
    tolerated = tolerations(md.spec.resources, scheduling)
    if tolerated:
        pod["tolerations"] = tolerated
    return pod


def _pull_container(
    md: ModelDeployment,
    operator_image: str,
    model_version: str,
    source: PodSource,
    gpu_instance_kind: str = "gpu",
) -> dict[str, Any]:
    runtime = md.spec.runtime
    args = [
        "pull-model",
        "--uri",
        source.uri,
        "--version",
        model_version,
        "--model-name",
        md.model_name,
        "--format",
        md.spec.model.format,
        "--repository",
        MODEL_REPOSITORY,
        # The outcome (resolved version, or the error) lands in the pod status.
        "--termination-log",
        TERMINATION_LOG,
        # The pull step patches config.pbtxt, so the Triton settings that
        # live in the model configuration travel with it.
        "--instances-per-gpu",
        str(runtime.instances_per_gpu),
        "--gpus",
        str(md.spec.resources.gpu.count),
    ]
    if gpu_instance_kind != "gpu" and md.spec.resources.gpu.count:
        # The operator's setting for GPU resources without a CUDA device behind
        # them (MODELOPS_GPU_INSTANCE_KIND=auto); only then, so that no other
        # pod template changes.
        args += ["--gpu-instance-kind", gpu_instance_kind]
    if runtime.max_batch_size is not None:
        args += ["--max-batch-size", str(runtime.max_batch_size)]
    if runtime.dynamic_batching is not None:
        args += [
            "--dynamic-batching-delay-us",
            str(runtime.dynamic_batching.max_queue_delay_microseconds),
        ]
    if not md.spec.model.verify_checksums:
        args.append("--allow-unverified")
    mounts = [{"name": "models", "mountPath": MODEL_REPOSITORY}]
    if source.mount:
        mounts.append(source.mount)
    container: dict[str, Any] = {
        "name": PULL_CONTAINER,
        "image": operator_image,
        "command": ["modelops"],
        "args": args,
        # A download and a checksum: I/O bound. An init container's request counts
        # as the pod's when larger than its containers' sum, so a whole CPU here kept a
        # gated rollout's candidate from starting beside the stable pod on a small node.
        "resources": fixed_resources("500m", "1Gi"),
        "volumeMounts": mounts,
        # On a crash without a termination log, the last log lines land in the
        # pod status instead, so a wrong bucket or key still reaches the
        # ModelDeployment's conditions.
        "terminationMessagePolicy": "FallbackToLogsOnError",
        "securityContext": security_context(),
    }
    env_from = credentials(md)
    if env_from:
        container["envFrom"] = env_from
    return container


def _triton_container(md: ModelDeployment, default_image: str) -> dict[str, Any]:
    runtime = md.spec.runtime
    args = [
        f"--model-repository={MODEL_REPOSITORY}",
        "--model-control-mode=none",
        f"--http-port={c.TRITON_HTTP_PORT}",
        f"--grpc-port={c.TRITON_GRPC_PORT}",
        f"--metrics-port={c.TRITON_METRICS_PORT}",
    ]
    drift = sidecar_enabled(md)
    if drift:
        # Only the sidecar (same pod, loopback) talks gRPC to Triton.
        args.append("--grpc-address=127.0.0.1")
    args += runtime.args or []
    ports = [
        {"name": "http", "containerPort": c.TRITON_HTTP_PORT, "protocol": "TCP"},
        {"name": "grpc", "containerPort": c.TRITON_GRPC_PORT, "protocol": "TCP"},
        {"name": "metrics", "containerPort": c.TRITON_METRICS_PORT, "protocol": "TCP"},
    ]
    if drift:
        ports = [p for p in ports if p["name"] != "grpc"]  # not reachable from outside the pod
    container: dict[str, Any] = {
        "name": TRITON_CONTAINER,
        "image": md.pod_controls.image or triton_image(runtime.image, default_image),
        "command": ["tritonserver"],
        "args": args,
        "ports": ports,
        "resources": container_resources(md.spec.resources),
        "startupProbe": http_probe(
            "/v2/health/live", "http", period=STARTUP_PROBE_PERIOD, failures=STARTUP_PROBE_FAILURES
        ),
        "livenessProbe": http_probe("/v2/health/live", "http", period=10, failures=3),
        # Ready only when every model in the repository is loaded
        # (Triton's --strict-readiness default): ready pod == model loaded.
        "readinessProbe": http_probe("/v2/health/ready", "http", period=5, failures=3),
        "volumeMounts": [
            {"name": "models", "mountPath": MODEL_REPOSITORY, "readOnly": True},
            {"name": "shm", "mountPath": "/dev/shm"},
        ],
        "terminationMessagePolicy": "FallbackToLogsOnError",
        "securityContext": security_context(),
    }
    if drift:
        # Keeps serving while the sidecar drains the calls in flight.
        container["lifecycle"] = prestop_sleep(TRITON_PRESTOP_SECONDS)
    if runtime.image_pull_policy:
        container["imagePullPolicy"] = runtime.image_pull_policy
    # Through the intake (api/intake.py) the v1beta1 env, valueFrom entries included.
    env = md.pod_controls.env
    if env is None:
        env = [e.to_dict() for e in runtime.env or []]
    if env:
        container["env"] = [dict(e) for e in env]
    return container
