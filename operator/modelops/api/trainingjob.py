"""TrainingJob (modelops.io/v1alpha1): train a model with distributed PyTorch.

One pod per node runs `modelops train`, which starts torchrun with the
entrypoint module; rank 0 writes the trained model as version N+1 of a
Triton model repository (spec.output), where a ModelDeployment following
version "latest" picks it up. The types shared with ModelDeployment
(resources, scheduling, env, tolerations) are reused, not redefined, so a
field means the same in both kinds.

As for ModelDeployment, these models are the single source of truth for the
CRD schema, docs/api.md and the parsed spec the renderers read.
"""

from __future__ import annotations

import copy
from typing import Annotated, Any, Literal

from pydantic import ConfigDict, Field

from . import constants as c
from .base import (
    DNS1035_LABEL,
    DNS1123_LABEL,
    DNS1123_SUBDOMAIN,
    KOPF_STATUS_FIELD,
    NO_QUERY_RULE,
    NO_USERINFO_RULE,
    PVC_URI_RULE,
    STORAGE_URI,
    STORAGE_URI_RULES,
    ApiModel,
    ParsedObject,
    cel,
    map_list,
    reworded,
    sub_object,
    validations,
)
from .modeldeployment import (
    DRA_SELECTED,
    GPU_PRODUCT_NOT_IN_NODE_SELECTOR,
    GpuResources,
    Resources,
    Scheduling,
)
from .pod_controls import PodControls
from .types import Condition, EnvVar, SecretReference

# Floor of spec.ttlSecondsAfterFinished: the operator must see how an attempt
# ended (failed: restart it; succeeded: done) before Kubernetes deletes the Job,
# or it would find no Job and run the attempt again. Refused below it at apply
# time rather than raised silently. Finished pods hold no resources, so keeping
# them a few minutes costs only their API objects.
MIN_JOB_TTL_SECONDS = 300

# The Job of attempt N is `<name>-a<N>` and its pods' hostnames `<name>-a<N>-<rank>`,
# which must fit a DNS label (63): 55 + len("-a100") + len("-63") == 63.
MAX_NAME_LENGTH = 55
MAX_NODES = 64
MAX_PROCS_PER_NODE = 16
MAX_BACKOFF_LIMIT = 100
MAX_HYPERPARAMETERS = 64
MAX_FAILED_PODS = 16
MAX_METRICS = 32

PYTHON_MODULE = r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$"
# A hyperparameter travels as `--hp key=value`: no '=' (nor spaces) in the key.
HYPERPARAMETER_KEY = r"^[A-Za-z_][-A-Za-z0-9_.]*$"
TRITON_MODEL_NAME = r"^[a-zA-Z0-9]([-a-zA-Z0-9_.]*[a-zA-Z0-9])?$"

_FLAG_ALTERNATIVES = "|".join(c.RESERVED_TRAINER_FLAGS)
_RESERVED_FLAGS_TEXT = ", ".join(f"--{f}" for f in c.RESERVED_TRAINER_FLAGS)
_RESERVED_ENV_TEXT = (
    ", ".join(c.RESERVED_TRAINING_ENV_NAMES)
    + " and names starting with "
    + " or ".join(c.RESERVED_TRAINING_ENV_PREFIXES)
)

# --- spec.resources ---------------------------------------------------------------


_REWORD_GPU = reworded(
    GpuResources,
    count="GPUs per node: nvidia.com/gpu devices (container limit) with allocation "
    "DevicePlugin, the default count of the alternative with allocation DRA; usually equal "
    "to procsPerNode. 0 trains on CPU only.",
    product="GPU model the pods must land on, as the nvidia.com/gpu.product node "
    "label spells it (e.g. NVIDIA-H100-80GB-HBM3); becomes a node selector. Allocation "
    "DevicePlugin only.",
    alternatives="Allocation DRA: exactly one alternative, with a product. Each node's "
    "pod gets its own ResourceClaim, and the scheduler decides every claim on its own, so "
    "a prioritized list could give different nodes different products or GPU counts; a "
    "TrainingJob therefore names its product (one decision per job).",
)
# A distributed job needs the same GPUs on every node (see the alternatives text).
_TRAINER_DRA_RULES = [
    cel(
        f"!{DRA_SELECTED} || !has(self.alternatives) || self.alternatives.size() <= 1",
        "a TrainingJob takes exactly one alternative: every node must get the same GPUs, and "
        "alternatives are decided per pod",
        field_path=".alternatives",
    ),
    cel(
        f"!{DRA_SELECTED} || !has(self.alternatives) || self.alternatives.all(a, has(a.product))",
        "with allocation DRA a TrainingJob's alternative needs a product, so that all nodes "
        "train on the same GPU model",
        field_path=".alternatives",
    ),
]


def _trainer_gpu_schema(schema: dict[str, Any]) -> None:
    _REWORD_GPU(schema)
    schema.setdefault("x-kubernetes-validations", []).extend(copy.deepcopy(_TRAINER_DRA_RULES))


class TrainerGpuResources(GpuResources):
    """GPUs per node (each node is one pod)."""

    model_config = ConfigDict(json_schema_extra=_trainer_gpu_schema)


class TrainerResources(Resources):
    """Compute resources of each node's pod (the trainer container)."""

    model_config = ConfigDict(
        json_schema_extra=reworded(
            Resources,
            cpu="CPU of the trainer container, request and limit (Guaranteed QoS), e.g. 16 or "
            '"500m" (fractions must be quoted strings). Data-loader workers run on it.',
            memory="Memory of the trainer container, request and limit, e.g. 64Gi. /dev/shm "
            "(shared memory of data-loader workers and NCCL) counts against it.",
        )
    )

    gpu: TrainerGpuResources = sub_object(TrainerGpuResources, "GPUs per node.")


# --- spec.dataset / spec.output / spec.checkpoints -----------------------------------


# Besides storage URIs, the trainer generates example data itself
# (synthetic://tabular?rows=N&seed=S&shift=X, see modelops.trainer.examples).
DATASET_URI = r"^((s3|gs|https|pvc|file)://[^\s]+|synthetic://[a-z][a-z0-9-]*(\?[^\s]*)?)$"


class Dataset(ApiModel):
    """Training data."""

    uri: str = Field(
        max_length=2048,
        pattern=DATASET_URI,
        json_schema_extra=validations(
            PVC_URI_RULE,
            NO_USERINFO_RULE,
            cel(
                f"self.startsWith('synthetic://') || ({NO_QUERY_RULE['rule']})",
                NO_QUERY_RULE["message"],
            ),
        ),
        description="Location of the training data, passed to the entrypoint as --dataset: "
        "s3://bucket/prefix, gs://bucket/prefix, https://host/path, pvc://<claim>/<path> (a "
        "PersistentVolumeClaim in this namespace, mounted read-only on every node; with more "
        "than one node it must be ReadOnlyMany or ReadWriteMany), file:///path, or "
        "synthetic://<example>?rows=N&seed=S for data the example entrypoints generate.",
    )


class Output(ApiModel):
    """Where the trained model is published."""

    storage_uri: str = Field(
        max_length=2048,
        pattern=STORAGE_URI,
        json_schema_extra=validations(
            *STORAGE_URI_RULES,
            cel(
                "!self.startsWith('https://')",
                "https:// is read-only: write the model to s3://, gs://, pvc:// or file://",
            ),
        ),
        description="Model repository the trained model is written to as the next version "
        "(the highest numbered directory plus one), with a SHA256SUMS manifest. Point it at "
        "a ModelDeployment's spec.model.storageUri: with version latest that deployment rolls "
        "the new version out. s3://, gs://, pvc://<claim>/<path> (mounted read-write on every "
        "node; with more than one node it must be ReadWriteMany) or file:///path.",
    )
    model_name: str | None = Field(
        default=None,
        max_length=63,
        pattern=TRITON_MODEL_NAME,
        description="Model name written into the Triton configuration (config.pbtxt). "
        "Defaults to modelDeploymentRef.name, else metadata.name; set it to the "
        "ModelDeployment's spec.model.name when that one is set.",
    )


class Checkpoints(ApiModel):
    """Persistent checkpoint storage shared by the attempts."""

    storage_uri: str = Field(
        max_length=2048,
        pattern=r"^pvc://[^\s]+$",
        json_schema_extra=validations(*STORAGE_URI_RULES),
        description="pvc://<claim>/<path>: a PersistentVolumeClaim mounted read-write at "
        "/checkpoints on every node (ReadWriteMany with more than one node); the trainer gets "
        "--checkpoint-dir /checkpoints/<path>.",
    )


# --- spec ---------------------------------------------------------------------------


class PodMetadata(ApiModel):
    """Labels and annotations copied onto every worker pod."""

    labels: dict[str, Annotated[str, Field(max_length=63, description="A label value.")]] | None = (
        Field(default=None, max_length=32, description="Labels added to the worker pods.")
    )
    annotations: (
        dict[str, Annotated[str, Field(max_length=4096, description="An annotation value.")]] | None
    ) = Field(default=None, max_length=32, description="Annotations added to the worker pods.")


class ModelDeploymentReference(ApiModel):
    """A ModelDeployment in the same namespace."""

    name: str = Field(
        min_length=1,
        max_length=63,
        pattern=DNS1035_LABEL,
        description="Name of the ModelDeployment.",
    )


_ENV_RULE = cel(
    "self.all(e, "
    + " && ".join(f"!e.name.startsWith('{p}')" for p in c.RESERVED_TRAINING_ENV_PREFIXES)
    + " && "
    + " && ".join(f"e.name != '{n}'" for n in c.RESERVED_TRAINING_ENV_NAMES)
    + ")",
    f"spec.env may not set {_RESERVED_ENV_TEXT}: the operator and torchrun set the "
    "distributed-training environment",
)


class TrainingJobSpec(ApiModel):
    """Desired state of a TrainingJob.

    The run is fixed when an attempt starts: changes to a running TrainingJob
    apply from the next attempt (a restart) on, and a finished one does not run
    again; create a new TrainingJob to retrain. Only suspend acts at once.
    """

    model_config = ConfigDict(
        json_schema_extra=validations(
            GPU_PRODUCT_NOT_IN_NODE_SELECTOR,
            cel(
                f"!has(self.command) || self.entrypoint == '{c.DEFAULT_TRAINING_ENTRYPOINT}'",
                "set either command (a script run as it is) or entrypoint (a training module "
                "for modelops train), not both",
                field_path=".command",
            ),
            cel(
                "!has(self.command) || !has(self.args) && !has(self.hyperparameters)",
                "args and hyperparameters are flags of modelops train: with command, put "
                "them in the command itself",
                field_path=".command",
            ),
        )
    )

    image: str | None = Field(
        default=None,
        min_length=1,
        max_length=512,
        description="Trainer image: it runs `modelops train`, so it must contain the modelops "
        "package with PyTorch; build custom images FROM the default, or install modelops "
        "from its source checkout or a wheel built from it (`pip install "
        "'/path/to/checkout[train]'`; not `pip install modelops`: that name on PyPI is "
        "another project's) plus your training module. Unset: the operator's default "
        "trainer image (its --trainer-image "
        "setting, Helm value defaultImages.trainer), taken when the first attempt starts "
        "and kept by its restarts. A value equal to a former default of this field ("
        + ", ".join(c.FORMER_DEFAULT_TRAINER_IMAGES)
        + ") counts as unset; pin that image by digest.",
    )
    image_pull_policy: Literal["Always", "IfNotPresent", "Never"] | None = Field(
        default=None,
        description="Pull policy of the trainer image; Kubernetes' default applies when unset.",
    )
    entrypoint: str = Field(
        default=c.DEFAULT_TRAINING_ENTRYPOINT,
        max_length=256,
        pattern=PYTHON_MODULE,
        description="Training module, imported by every torchrun process: it defines "
        "build() and load_dataset() (the contract of `modelops train`, see "
        "modelops.trainer.contract), e.g. modelops.trainer.examples.tabular or mypkg.train.",
    )
    command: (
        list[Annotated[str, Field(min_length=1, max_length=1024, description="One word.")]] | None
    ) = Field(
        default=None,
        min_length=1,
        max_length=64,
        description="An existing training command to run unchanged instead of entrypoint, "
        "e.g. [torchrun, train.py] or [python, train.py]: a script written for Kubeflow's "
        "PyTorchJob runs as it is. Each pod gets the environment that runtime sets "
        "(PET_NNODES, PET_NPROC_PER_NODE, PET_NODE_RANK, PET_MASTER_ADDR, PET_MASTER_PORT, "
        "MASTER_ADDR, MASTER_PORT; with procsPerNode 1 also WORLD_SIZE, RANK, LOCAL_RANK) "
        "plus MODELOPS_OUTPUT_DIR: rank 0 writes model.pt (TorchScript) or model.onnx and "
        "signature.json there, and the operator's wrapper publishes it as the next version "
        "of output.storageUri (docs/training.md). Not combined with entrypoint, args or "
        "hyperparameters.",
    )
    args: list[Annotated[str, Field(max_length=1024, description="One argument.")]] | None = Field(
        default=None,
        max_length=32,
        json_schema_extra=validations(
            cel(
                f"self.all(a, !a.matches('^--({_FLAG_ALTERNATIVES})(=|$)'))",
                f"args may not set {_RESERVED_FLAGS_TEXT}: the operator sets them from "
                "the other fields",
            ),
        ),
        description="Extra arguments of `modelops train`, e.g. --target=libtorch, "
        "--instance-kind=cpu or --keep-checkpoints=5. The flags the operator derives from "
        f"other fields ({_RESERVED_FLAGS_TEXT}) are refused, and follow these args so "
        "they win anyway.",
    )
    nodes: int = Field(
        default=1,
        ge=1,
        le=MAX_NODES,
        description="Pods (one per node) that train together; each is one torchrun node, "
        "its node rank being the pod's Job completion index.",
    )
    procs_per_node: int = Field(
        default=1,
        ge=1,
        le=MAX_PROCS_PER_NODE,
        description="Processes torchrun starts in each pod (--nproc-per-node), usually one "
        "per GPU. The world size is nodes * procsPerNode.",
    )
    resources: TrainerResources = sub_object(
        TrainerResources, "Compute resources of each node's pod."
    )
    dataset: Dataset = Field(description="The training data.")
    output: Output = Field(description="Where the trained model is published.")
    checkpoints: Checkpoints | None = Field(
        default=None,
        description="Persistent checkpoints. Without it /checkpoints is an emptyDir: it "
        "lives as long as the pod, so a restart (a new attempt) starts from scratch.",
    )
    credentials_secret_ref: SecretReference | None = Field(
        default=None,
        description="Secret whose keys (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, "
        "AWS_ENDPOINT_URL, AWS_REGION, ...) become environment variables of the trainer, "
        "to read the dataset and write the output. Without it the pods' ambient "
        "credentials apply (IRSA, workload identity).",
    )
    hyperparameters: (
        dict[str, Annotated[str, Field(max_length=1024, description="A value.")]] | None
    ) = Field(
        default=None,
        max_length=MAX_HYPERPARAMETERS,
        json_schema_extra=validations(
            cel(
                f"self.all(k, k.size() <= 63 && k.matches('{HYPERPARAMETER_KEY}'))",
                "hyperparameter names must start with a letter or '_' and contain only "
                "letters, digits, '_', '-' and '.' (at most 63 characters)",
            ),
        ),
        description='Hyperparameters as strings (quote numbers: epochs: "5"), passed to '
        "`modelops train` as --hp=name=value in name order. The runner reads epochs, "
        "batch_size, seed and val_fraction; the training module the rest.",
    )
    backoff_limit: int = Field(
        default=3,
        ge=0,
        le=MAX_BACKOFF_LIMIT,
        description="Whole-group restarts after a failed attempt before the TrainingJob "
        "fails. torchrun cannot take one node back into a running rendezvous, so any "
        "failed pod fails the attempt and the operator starts all nodes again as a new "
        "Job (<name>-a<attempt>); status.restarts counts them.",
    )
    active_deadline_seconds: int | None = Field(
        default=None,
        ge=1,
        description="Longest time the TrainingJob may run, all attempts together, counted "
        "from status.startTime; then it fails with reason DeadlineExceeded and is not "
        "restarted.",
    )
    ttl_seconds_after_finished: int | None = Field(
        default=None,
        ge=MIN_JOB_TTL_SECONDS,
        description="Seconds after an attempt's Job finishes before Kubernetes deletes it "
        f"and its pods (logs included); at least {MIN_JOB_TTL_SECONDS} (a smaller value is "
        "refused), so that the operator always sees how an attempt ended. The TrainingJob "
        "and its status stay, so GitOps tools do not recreate it. Unset keeps the Jobs "
        "until the TrainingJob is deleted.",
    )
    suspend: bool = Field(
        default=False,
        description="Keep the TrainingJob from running; setting it on a running one stops "
        "its pods (the attempt starts over on resume, from its checkpoints). With "
        "queueName the Job is also created suspended and Kueue admits it.",
    )
    queue_name: str | None = Field(
        default=None,
        max_length=63,
        pattern=DNS1123_LABEL,
        description="Kueue LocalQueue that admits the Job (label kueue.x-k8s.io/queue-name). "
        "Kueue admits all nodes at once (gang admission), and quota decides when it runs.",
    )
    env: list[EnvVar] | None = Field(
        default=None,
        max_length=64,
        json_schema_extra=map_list("name", **validations(_ENV_RULE)),
        description=f"Extra environment variables of the trainer. {_RESERVED_ENV_TEXT} are "
        "reserved.",
    )
    scheduling: Scheduling | None = Field(
        default=None, description="Node selection, tolerations and priority."
    )
    pod_metadata: PodMetadata | None = Field(
        default=None,
        description="Extra labels and annotations for the worker pods (e.g. cost allocation, "
        "sidecar injection opt-outs). A key the operator sets itself, given another value, "
        "is refused (Stalled, InvalidSpec).",
    )
    service_account_name: str | None = Field(
        default=None,
        max_length=253,
        pattern=DNS1123_SUBDOMAIN,
        description="ServiceAccount of the pods (e.g. for cloud workload identity to reach "
        "storage). Its API token is not mounted: the trainer does not talk to the API server.",
    )
    model_deployment_ref: ModelDeploymentReference | None = Field(
        default=None,
        description="The ModelDeployment this job retrains: the default output.modelName, and "
        "how that deployment finds this job. When the job succeeds and its output.storageUri "
        "is the deployment's storageUri, a deployment following version latest resolves "
        "latest to the version this job published and rolls it out (with lineage in "
        "status.history); a deployment with a pinned version ignores it.",
    )


# --- status -------------------------------------------------------------------------

Phase = Literal["Pending", "Suspended", "Running", "Succeeded", "Failed"]


class FailedPod(ApiModel):
    """A node's pod that failed, and why."""

    rank: int | None = Field(default=None, description="Node rank (the Job completion index).")
    pod: str = Field(description="Name of the pod.")
    attempt: int = Field(description="Attempt the pod belonged to (0 for the first).")
    reason: str = Field(
        description="Why it failed: the container's exit reason (Error, OOMKilled, ...) or "
        "the pod's (Evicted, DeadlineExceeded, ...)."
    )
    exit_code: int | None = Field(
        default=None, description="Exit code of the trainer container, when it exited."
    )
    message: str | None = Field(
        default=None,
        description="The trainer's termination message, or the last lines of its log.",
    )


class TrainingJobStatus(ApiModel):
    """Observed state of a TrainingJob, written by the operator only."""

    observed_generation: int | None = Field(
        default=None, description="metadata.generation the status was computed for."
    )
    phase: Phase | None = Field(
        default=None,
        description="Summary for kubectl get: Pending (creating, waiting for nodes or "
        "restarting), Suspended, Running (every node's pod runs), Succeeded or Failed.",
    )
    conditions: list[Condition] | None = Field(
        default=None,
        max_length=16,
        json_schema_extra=map_list("type"),
        description="Ready, Reconciling, Stalled (kstatus), and Created, Running, Succeeded, "
        "Failed, Suspended. For a batch job Ready means finished successfully.",
    )
    job_name: str | None = Field(
        default=None, description="Name of the current attempt's Job (<name>-a<attempt>)."
    )
    start_time: str | None = Field(
        default=None,
        json_schema_extra={"format": "date-time"},
        description="When the first attempt's Job started.",
    )
    completion_time: str | None = Field(
        default=None,
        json_schema_extra={"format": "date-time"},
        description="When the TrainingJob succeeded or failed for good.",
    )
    active_nodes: int | None = Field(
        default=None, description="Pods of the current attempt that are running."
    )
    gpus: int | None = Field(
        default=None, description="GPUs held by the current attempt's pods that have not ended."
    )
    restarts: int | None = Field(
        default=None,
        description="Whole-group restarts so far (the current attempt's number).",
    )
    failed_pods: list[FailedPod] | None = Field(
        default=None,
        max_length=MAX_FAILED_PODS,
        description="Pods of the latest failed attempt, first failure first (at most "
        f"{MAX_FAILED_PODS}).",
    )
    output_version: str | None = Field(
        default=None, description="Model version the training published under output.storageUri."
    )
    metrics: dict[str, Annotated[float, Field(description="A metric's value.")]] | None = Field(
        default=None,
        max_length=MAX_METRICS,
        description="Final metrics the trainer reported, e.g. loss (at most "
        f"{MAX_METRICS}, rounded to 6 significant digits).",
    )
    kopf: dict[str, Any] | None = KOPF_STATUS_FIELD


# --- the object -----------------------------------------------------------------------


class TrainingJob(ParsedObject):
    """A parsed TrainingJob: metadata the renderers need plus the typed spec."""

    spec: TrainingJobSpec
    # The v1beta1 pod controls, attached by api/intake.py (empty when parsed otherwise).
    pod_controls: PodControls = Field(default_factory=lambda: PodControls(kind=c.TJ_KIND))

    @property
    def model_name(self) -> str:
        """The model's name in the Triton configuration the trainer writes."""
        if self.spec.output.model_name:
            return self.spec.output.model_name
        ref = self.spec.model_deployment_ref
        return ref.name if ref else self.metadata.name


# The root-level rule may only read metadata.name (CEL's view of metadata).
ROOT_VALIDATIONS = [
    cel(
        f"self.metadata.name.size() <= {MAX_NAME_LENGTH} "
        f"&& self.metadata.name.matches('{DNS1035_LABEL}')",
        "metadata.name must be a DNS-1035 label of at most "
        f"{MAX_NAME_LENGTH} characters (lower-case letters, digits and '-', starting with a "
        "letter): the pods' hostnames <name>-a<attempt>-<rank> must fit 63 characters",
    ),
]
