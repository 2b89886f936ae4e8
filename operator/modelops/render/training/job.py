"""The Indexed Job of one TrainingJob attempt.

Shape: `completionMode: Indexed` with completions = parallelism = nodes, so
there is exactly one pod per node and the completion index is the node rank.
Each pod runs `modelops train`, which starts torchrun from the environment
set here (NNODES, NPROC_PER_NODE, NODE_RANK, MASTER_ADDR, MASTER_PORT).

Restarts (see restart.py): torchrun's rendezvous cannot take one node back
into a running group, so the Job never replaces a pod. backoffLimit 0 plus a
podFailurePolicy that fails the Job on any non-zero exit or disruption ends
the whole attempt at the first failure; the operator then creates the next
attempt's Job (`<name>-a<N+1>`) while status.restarts < spec.backoffLimit.

The controller creates each attempt's Job once and does not re-apply it: a
running Job's pod template is immutable, Kueue edits the template and
`suspend` of the Jobs it admits, and activeDeadlineSeconds is computed at
creation. The one live change is suspend (`suspend_patch`).
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping
from typing import Any

from modelops.api import constants as c
from modelops.api.images import trainer_image
from modelops.api.trainingjob import TrainingJob

from ..containers import (
    pod_security_context,
    scratch_volume,
    secret_env,
    security_context,
    with_scratch,
)
from ..dra import claim_pod
from ..placement import container_resources, node_selector, tolerations
from ..pod_controls import apply_pod_controls
from ..pods import get
from ..sources import PodSource, pod_source
from .gpu_claims import render_claim_template
from .names import (
    as_tj,
    attempt_of,
    child_metadata,
    job_name,
    labels,
    master_addr,
    selector_labels,
    service_name,
)

TRAINER_CONTAINER = "trainer"
CHECKPOINT_DIR = "/checkpoints"
DATASET_MOUNT = "/mnt/dataset"
OUTPUT_MOUNT = "/mnt/output"

# podFailurePolicy: end the attempt at the first failed pod, whatever failed it.
POD_FAILURE_POLICY: dict[str, Any] = {
    "rules": [
        {
            "action": "FailJob",
            "onExitCodes": {
                "containerName": TRAINER_CONTAINER,
                "operator": "NotIn",
                "values": [0],
            },
        },
        # Preemption, eviction, node drain: the rest of the group cannot go on
        # without this node either.
        {"action": "FailJob", "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}]},
    ]
}


def render_job(
    tj: TrainingJob | Mapping[str, Any],
    *,
    attempt: int = 0,
    elapsed_seconds: int = 0,
    image: str = c.DEFAULT_TRAINER_IMAGE,
    earlier_jobs: Iterable[Mapping[str, Any]] = (),
) -> dict[str, Any]:
    """The batch/v1 Job of attempt `attempt` (0 for the first, status.restarts later).

    image: the operator's default trainer image, used when spec.image names none
      (api/images.py).
    earlier_jobs: the TrainingJob's Jobs still in the cluster. Without a spec.image,
      a restart runs the image its latest earlier attempt ran, so an operator
      upgrade in the middle of a run never changes the code that reads its
      checkpoints; only a new TrainingJob picks up a new default.

    elapsed_seconds: how long the TrainingJob has run so far (now - status.startTime,
      see `elapsed_seconds`); subtracted from spec.activeDeadlineSeconds so that the
      deadline bounds all attempts together, as a Job's deadline bounds its retries.
    """
    tj = as_tj(tj)
    spec = tj.spec
    name = job_name(tj, attempt)
    metadata = child_metadata(tj, name)
    metadata["annotations"] = {c.ANNOTATION_ATTEMPT: str(attempt)}
    if spec.queue_name:
        metadata["labels"][c.LABEL_KUEUE_QUEUE] = spec.queue_name
    job_spec: dict[str, Any] = {
        "completionMode": "Indexed",
        "completions": spec.nodes,
        "parallelism": spec.nodes,
        "backoffLimit": 0,
        "podFailurePolicy": copy.deepcopy(POD_FAILURE_POLICY),
        # Kueue admits a Job by un-suspending it, so a queued Job starts suspended.
        "suspend": spec.suspend or spec.queue_name is not None,
    }
    if spec.active_deadline_seconds is not None:
        job_spec["activeDeadlineSeconds"] = max(1, spec.active_deadline_seconds - elapsed_seconds)
    if spec.ttl_seconds_after_finished is not None:
        # At least MIN_JOB_TTL_SECONDS: the API refuses less (api/trainingjob.py).
        job_spec["ttlSecondsAfterFinished"] = spec.ttl_seconds_after_finished
    extra = spec.pod_metadata
    job_spec["template"] = {
        "metadata": {
            # The user's keys first, so the operator's selectors and markers win.
            "labels": {**((extra and extra.labels) or {}), **labels(tj)},
            "annotations": {
                **((extra and extra.annotations) or {}),
                c.ANNOTATION_ATTEMPT: str(attempt),
                "kubectl.kubernetes.io/default-container": TRAINER_CONTAINER,
            },
        },
        "spec": _pod_spec(tj, attempt, _image(tj, image, earlier_jobs, attempt)),
    }
    template = job_spec["template"]
    claim_pod(render_claim_template(tj), template["spec"], template, TRAINER_CONTAINER)  # DRA
    # The user's pod controls last: the operator's entries win, a collision is refused.
    apply_pod_controls(
        template, tj.pod_controls, container=TRAINER_CONTAINER, own_pods=selector_labels(tj)
    )
    return {"apiVersion": "batch/v1", "kind": "Job", "metadata": metadata, "spec": job_spec}


def suspend_patch(
    tj: TrainingJob | Mapping[str, Any], job: Mapping[str, Any]
) -> dict[str, Any] | None:
    """Merge patch that makes a live Job follow spec.suspend, or None if it does.

    With a queueName the operator only ever suspends: un-suspending is Kueue's
    admission decision, and re-asserting suspend over it would fight Kueue.
    """
    tj = as_tj(tj)
    live = bool(get(job, "spec", "suspend"))
    if tj.spec.suspend and not live:
        return {"spec": {"suspend": True}}
    if not tj.spec.suspend and live and tj.spec.queue_name is None:
        return {"spec": {"suspend": False}}
    return None


# --- the pod ---------------------------------------------------------------------------


def _image(
    tj: TrainingJob, default: str, earlier_jobs: Iterable[Mapping[str, Any]], attempt: int
) -> str:
    earlier = sorted(
        (j for j in earlier_jobs if (attempt_of(j) or 0) < attempt and image_of(j)),
        key=lambda j: attempt_of(j) or 0,
    )
    if earlier:
        default = image_of(earlier[-1]) or default
    return tj.pod_controls.image or trainer_image(tj.spec.image, default)


def image_of(job: Mapping[str, Any]) -> str | None:
    """The image of a Job's trainer container (matched by name: a container a
    webhook added is never taken for it)."""
    for container in get(job, "spec", "template", "spec", "containers") or []:
        if container.get("name") == TRAINER_CONTAINER:
            return container.get("image")
    return None


def _pod_spec(tj: TrainingJob, attempt: int, image: str) -> dict[str, Any]:
    spec = tj.spec
    dataset = pod_source(spec.dataset.uri, volume_name="dataset", mount_path=DATASET_MOUNT)
    output = pod_source(
        spec.output.storage_uri, volume_name="output", mount_path=OUTPUT_MOUNT, read_only=False
    )
    checkpoints = _checkpoints(tj)
    volumes, mounts = _claims([checkpoints, dataset, output])
    volumes.append(
        # NCCL and data-loader workers exchange tensors through /dev/shm; the
        # runtime's default 64Mi is far too small. Memory-backed, so it counts
        # against the container memory limit.
        {"name": "shm", "emptyDir": {"medium": "Memory"}}
    )
    mounts.append({"name": "shm", "mountPath": "/dev/shm"})
    if checkpoints.volume is None:
        volumes.insert(0, {"name": "checkpoints", "emptyDir": {}})
        mounts.insert(0, {"name": "checkpoints", "mountPath": CHECKPOINT_DIR})
    if spec.command:
        # Where the script leaves its model for the wrapper to publish (MODELOPS_OUTPUT_DIR).
        volumes.append({"name": "model-output", "emptyDir": {}})
        mounts.append({"name": "model-output", "mountPath": c.SCRIPT_OUTPUT_DIR})

    pod: dict[str, Any] = {
        # One failed node ends the attempt (see module docstring); never restart in place.
        "restartPolicy": "Never",
        # With the headless Service of this name, `<hostname>.<subdomain>` resolves.
        "subdomain": service_name(tj),
        # The trainer never calls the API server; no token in the pod.
        "automountServiceAccountToken": False,
        "securityContext": pod_security_context(),
        "containers": [
            with_scratch(_trainer(tj, attempt, image, dataset, output, checkpoints, mounts))
        ],
        "volumes": [*volumes, scratch_volume()],
    }
    if spec.service_account_name:
        pod["serviceAccountName"] = spec.service_account_name
    scheduling = spec.scheduling
    if scheduling is not None and scheduling.priority_class_name:
        pod["priorityClassName"] = scheduling.priority_class_name
    selector = node_selector(spec.resources, scheduling)
    if selector:
        pod["nodeSelector"] = selector
    tolerated = tolerations(spec.resources, scheduling)
    if tolerated:
        pod["tolerations"] = tolerated
    return pod


def _checkpoints(tj: TrainingJob) -> PodSource:
    """/checkpoints: a PVC when spec.checkpoints is set (it outlives the attempt),
    else an emptyDir added by the caller (it lives as long as the pod)."""
    if tj.spec.checkpoints is None:
        return PodSource(uri=f"file://{CHECKPOINT_DIR}")
    return pod_source(
        tj.spec.checkpoints.storage_uri,
        volume_name="checkpoints",
        mount_path=CHECKPOINT_DIR,
        read_only=False,
    )


def _claims(sources: list[PodSource]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Volumes and mounts of the pvc:// sources, one volume per claim.

    Dataset, output and checkpoints often live on one claim (pvc://shared/data,
    pvc://shared/models); the claim becomes one volume, read-write when any
    source writes to it, and each source keeps its own mount and mode.
    """
    volumes: dict[str, dict[str, Any]] = {}
    mounts: list[dict[str, Any]] = []
    for source in sources:
        if source.volume is None or source.mount is None:
            continue
        claim = source.volume["persistentVolumeClaim"]["claimName"]
        volume = volumes.setdefault(claim, source.volume)
        if not source.mount["readOnly"]:
            volume["persistentVolumeClaim"]["readOnly"] = False
        mounts.append({**source.mount, "name": volume["name"]})
    return list(volumes.values()), mounts


def _trainer(
    tj: TrainingJob,
    attempt: int,
    image: str,
    dataset: PodSource,
    output: PodSource,
    checkpoints: PodSource,
    mounts: list[dict[str, Any]],
) -> dict[str, Any]:
    spec = tj.spec
    if spec.command:
        args = _script_args(tj, output)
    else:
        args = _train_args(tj, dataset, output, checkpoints)
    container: dict[str, Any] = {
        "name": TRAINER_CONTAINER,
        "image": image,
        "command": ["modelops"],
        "args": args,
        "env": _env(tj, attempt, dataset),
        "ports": [{"name": "rendezvous", "containerPort": c.RENDEZVOUS_PORT, "protocol": "TCP"}],
        "resources": container_resources(spec.resources),
        "volumeMounts": mounts,
        # A crash without a termination message puts the last log lines into the
        # pod status, from where they reach status.failedPods and the conditions.
        "terminationMessagePolicy": "FallbackToLogsOnError",
        "securityContext": security_context(),
    }
    if spec.image_pull_policy:
        container["imagePullPolicy"] = spec.image_pull_policy
    env_from = secret_env(spec.credentials_secret_ref)
    if env_from:
        container["envFrom"] = env_from
    return container


def _script_args(tj: TrainingJob, output: PodSource) -> list[str]:
    """`modelops train-script`: the user's command unchanged, then publish its model."""
    assert tj.spec.command
    return [
        "train-script",
        "--output",
        output.uri,
        "--model-name",
        tj.model_name,
        "--",
        *tj.spec.command,
    ]


def _train_args(
    tj: TrainingJob, dataset: PodSource, output: PodSource, checkpoints: PodSource
) -> list[str]:
    spec = tj.spec
    # The user's args first: argparse keeps the last value of a flag, so the
    # operator's flags win even over an abbreviation the CRD cannot foresee.
    args = [
        "train",
        *(spec.args or []),
        "--entrypoint",
        spec.entrypoint,
        "--dataset",
        dataset.uri,
        "--output",
        output.uri,
        "--model-name",
        tj.model_name,
        "--checkpoint-dir",
        checkpoints.uri.removeprefix("file://"),
    ]
    for key, value in sorted((spec.hyperparameters or {}).items()):
        # One token: a value starting with "-" must not read as a flag.
        args.append(f"--hp={key}={value}")
    return args


def _node_rank(name: str) -> dict[str, Any]:
    """``name`` = the pod's completion index, which is its node rank."""
    path = f"metadata.annotations['{c.ANNOTATION_COMPLETION_INDEX}']"
    return {"name": name, "valueFrom": {"fieldRef": {"fieldPath": path}}}


def _env(tj: TrainingJob, attempt: int, dataset: PodSource) -> list[dict[str, Any]]:
    """torchrun's rendezvous settings, then the user's variables (whose names the
    CRD keeps clear of the reserved ones).

    Besides modelops' own names (NNODES, NODE_RANK...), the pod gets what a
    Kubeflow PyTorchJob's pods get: PET_* (torchrun's flags from the
    environment, so a bare `torchrun train.py` joins the group) and, for a
    spec.command run with one process per node, WORLD_SIZE / RANK /
    LOCAL_RANK as torchrun would set them (a bare `python train.py` calling
    init_process_group() is then a rank of its own). `modelops train` starts
    torchrun itself, and RANK in its environment would make it a worker, so
    it never gets those.
    """
    spec = tj.spec
    master, port = master_addr(tj, attempt), str(c.RENDEZVOUS_PORT)
    env: list[dict[str, Any]] = [
        {"name": "NNODES", "value": str(spec.nodes)},
        {"name": "NPROC_PER_NODE", "value": str(spec.procs_per_node)},
        _node_rank("NODE_RANK"),
        {"name": "MASTER_ADDR", "value": master},
        {"name": "MASTER_PORT", "value": port},
        {"name": "PET_NNODES", "value": str(spec.nodes)},
        {"name": "PET_NPROC_PER_NODE", "value": str(spec.procs_per_node)},
        _node_rank("PET_NODE_RANK"),
        {"name": "PET_MASTER_ADDR", "value": master},
        {"name": "PET_MASTER_PORT", "value": port},
        {"name": "MODELOPS_TRAINING_JOB", "value": tj.name},
        {"name": "MODELOPS_ATTEMPT", "value": str(attempt)},
    ]
    if spec.command:
        if spec.procs_per_node == 1:
            env += [
                {"name": "WORLD_SIZE", "value": str(spec.nodes)},
                _node_rank("RANK"),
                {"name": "LOCAL_RANK", "value": "0"},
                {"name": "LOCAL_WORLD_SIZE", "value": "1"},
            ]
        env += [
            {"name": "MODELOPS_OUTPUT_DIR", "value": c.SCRIPT_OUTPUT_DIR},
            {"name": "MODELOPS_DATASET_URI", "value": dataset.uri},
            {"name": "MODELOPS_CHECKPOINT_DIR", "value": CHECKPOINT_DIR},
        ]
    # Through the intake (api/intake.py) the v1beta1 env, valueFrom entries included.
    controls_env = tj.pod_controls.env
    user = (
        [dict(e) for e in controls_env]
        if controls_env is not None
        else [e.to_dict() for e in spec.env or []]
    )
    if not any(e["name"] == "PYTHONUNBUFFERED" for e in user):
        # Unbuffered output keeps the log tail (FallbackToLogsOnError) current.
        env.append({"name": "PYTHONUNBUFFERED", "value": "1"})
    return env + user
