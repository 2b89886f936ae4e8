"""ModelDeployment (modelops.io/v1alpha1): serve one model on NVIDIA Triton.

These models are the single source of truth for the CRD schema (including
defaults and CEL rules), for `docs/api.md`, and for the parsed spec the
renderers read. Descriptions are what `kubectl explain` shows; every field
has one.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import ConfigDict, Field

from . import constants as c
from .base import (
    DNS1035_LABEL,
    DNS1123_SUBDOMAIN,
    GO_DURATION,
    KOPF_STATUS_FIELD,
    LABEL_VALUE,
    PRESERVE_UNKNOWN,
    QUALIFIED_NAME,
    STORAGE_URI,
    STORAGE_URI_RULES,
    ApiModel,
    ParsedObject,
    Quantity,
    cel,
    cel_regex,
    map_list,
    sub_object,
    validations,
)
from .pod_controls import PodControls
from .rollout import MAX_HISTORY, HistoryEntry, Rollout, RolloutStatus
from .types import Condition, EnvVar, SecretReference, Toleration

# --- spec.model ---------------------------------------------------------------

ModelFormat = Literal["torchscript", "onnx", "tensorrt", "python", "triton"]


class ModelSource(ApiModel):
    """Where the model lives and which version to serve."""

    storage_uri: str = Field(
        max_length=2048,
        pattern=STORAGE_URI,
        json_schema_extra=validations(*STORAGE_URI_RULES),
        description="Location of the model repository: s3://bucket/prefix, gs://bucket/prefix, "
        "https://host/path, pvc://<claim>/<path> (a PersistentVolumeClaim in this namespace, "
        "mounted read-only) or file:///path (a path inside the pod). Below it, each model "
        "version lives in a numbered directory, as in a Triton model repository.",
    )
    format: ModelFormat = Field(
        default="triton",
        description="Format of the stored model. Every format needs a Triton config.pbtxt "
        "beside the versions (or in the version directory); the operator writes none. "
        "triton: served with its config.pbtxt as is. torchscript, onnx, tensorrt, python: "
        "the config.pbtxt must run that backend (checked at pull; FormatMismatch otherwise), "
        "and spec.runtime settings are applied to it. `modelops package-model --publish` "
        "writes a TorchScript or ONNX file as such a model, with its config.pbtxt and "
        "SHA256SUMS (docs/training.md, Publishing a model).",
    )
    version: str = Field(
        default="latest",
        max_length=10,
        pattern=r"^(latest|[1-9][0-9]{0,8})$",
        description='Model version to serve: a positive integer as a string (quote it: "3") '
        'pins one. "latest" follows the newest version published by a succeeded TrainingJob '
        "whose modelDeploymentRef names this ModelDeployment and whose output.storageUri is "
        "this storageUri, and the newest complete version (one with its SHA256SUMS) that "
        "the operator finds when it lists storageUri itself, with the keys of "
        "credentialsSecretRef, whoever published it: each rolls out through spec.rollout "
        "without a Git commit, and the pods are given the resolved number "
        "(status.desiredVersion), never latest, so a restarting replica cannot pick up a "
        "version status does not name. Where the operator cannot list (pvc://, mounted in "
        "the pods only; or while the StoreListed condition is False and no version was "
        "recorded yet), the pods resolve latest once and the version they loaded is "
        "recorded (status.loadedVersions shows what each replica loaded).",
    )
    name: str | None = Field(
        default=None,
        max_length=63,
        pattern=r"^[a-zA-Z0-9]([-a-zA-Z0-9_.]*[a-zA-Z0-9])?$",
        description="Model name inside Triton (the path segment in /v2/models/<name>). "
        "Defaults to metadata.name.",
    )
    credentials_secret_ref: SecretReference | None = Field(
        default=None,
        description="Secret whose keys (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, "
        "AWS_ENDPOINT_URL, AWS_REGION, ...) become environment variables of the init "
        "containers that download from storageUri and driftMonitor.reference.uri; never of "
        "Triton or the drift monitor, which handle requests. The operator reads its S3 keys "
        "too (get by name, in this namespace) to list storageUri as the pods would.",
    )
    verify_checksums: bool = Field(
        default=True,
        description="Serve only versions that carry a SHA256SUMS manifest and check every "
        "file against it. modelops writes the manifest when it publishes a version: a "
        "TrainingJob's output, or `modelops package-model --publish <storageUri>` for a model "
        "made elsewhere (docs/training.md, Publishing a model). Set false to also serve "
        "versions uploaded by other tools, without a manifest.",
    )


# --- spec.runtime ---------------------------------------------------------------


class DynamicBatching(ApiModel):
    """Triton dynamic batching: groups requests that arrive close together."""

    max_queue_delay_microseconds: int = Field(
        default=0,
        ge=0,
        le=10_000_000,
        description="Longest time a request waits in the queue for others to batch with, "
        "in microseconds.",
    )


_FLAG_ALTERNATIVES = "|".join(c.RESERVED_TRITON_FLAGS)


class Runtime(ApiModel):
    """Triton Inference Server settings; all optional with defaults that work."""

    model_config = ConfigDict(
        json_schema_extra=validations(
            cel(
                "!has(self.dynamicBatching) || !has(self.maxBatchSize) || self.maxBatchSize > 0",
                "dynamicBatching needs maxBatchSize greater than 0",
                field_path=".dynamicBatching",
            ),
        )
    )

    image: str | None = Field(
        default=None,
        min_length=1,
        max_length=512,
        description="Triton Inference Server image, for this ModelDeployment only. Unset: "
        "the operator's default image (its --triton-image setting, Helm value "
        "defaultImages.triton; a pinned NGC release unless the platform team chose "
        "another), so moving the fleet to a new Triton release or a registry mirror is "
        "one operator setting, and every ModelDeployment without an image of its own rolls "
        "out to it. A value equal to a former default of this field ("
        + ", ".join(c.FORMER_DEFAULT_TRITON_IMAGES)
        + ") counts as unset; pin that release by digest.",
    )
    image_pull_policy: Literal["Always", "IfNotPresent", "Never"] | None = Field(
        default=None,
        description="Pull policy of the Triton image; Kubernetes' default applies when unset.",
    )
    max_batch_size: int | None = Field(
        default=None,
        ge=0,
        le=1_048_576,
        description="max_batch_size of the Triton model configuration; 0 disables batching. "
        "Unset keeps the value of a triton-format model's own config.pbtxt (0 for "
        "generated configurations).",
    )
    dynamic_batching: DynamicBatching | None = Field(
        default=None,
        description="Enables Triton's dynamic batcher when present; needs maxBatchSize > 0.",
    )
    instances_per_gpu: int = Field(
        default=1,
        ge=1,
        le=16,
        description="Model instances Triton runs on each GPU (on the CPU when "
        "resources.gpu.count is 0); more instances overlap requests on one GPU.",
    )
    args: list[Annotated[str, Field(max_length=1024, description="One argument.")]] | None = Field(
        default=None,
        max_length=32,
        json_schema_extra=validations(
            cel(
                f"self.all(a, !a.matches('^--({_FLAG_ALTERNATIVES})(=|$)'))",
                "args may not set --model-repository, --model-store, --model-control-mode, "
                "--http-port, --grpc-port or --metrics-port: the operator sets them",
            ),
        ),
        description="Extra tritonserver command-line arguments, e.g. --log-verbose=1.",
    )
    env: list[EnvVar] | None = Field(
        default=None,
        max_length=64,
        json_schema_extra=map_list(
            "name",
            **validations(
                cel(
                    f"self.all(e, !e.name.startsWith('{c.RESERVED_ENV_PREFIX}') && "
                    + " && ".join(f"e.name != '{n}'" for n in c.RESERVED_ENV_NAMES)
                    + ")",
                    f"env names starting with {c.RESERVED_ENV_PREFIX} and "
                    + ", ".join(c.RESERVED_ENV_NAMES)
                    + " are reserved by the operator",
                ),
            ),
        ),
        description="Extra environment variables of the Triton container. Names starting "
        f"with {c.RESERVED_ENV_PREFIX} and " + ", ".join(c.RESERVED_ENV_NAMES) + " are reserved.",
    )


# --- spec.resources -------------------------------------------------------------


# Names NVIDIA's DRA driver gives its products (productName, from NVML: "NVIDIA H100
# 80GB HBM3", "NVIDIA L4"). The value is spliced into a CEL selector, so quotes and
# backslashes are kept out by the pattern.
GPU_PRODUCT_NAME = r"^[A-Za-z0-9][-A-Za-z0-9 ._()/+]*$"
DEFAULT_DEVICE_CLASS = "gpu.nvidia.com"
MAX_GPU_ALTERNATIVES = 8  # the API server's limit on firstAvailable subrequests


class GpuAlternative(ApiModel):
    """One way to satisfy the GPU request through DRA; the first that fits is allocated."""

    name: str = Field(
        max_length=63,
        pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$",
        description="Name of this alternative (a DNS label, e.g. h100). It names the "
        "subrequest in the ResourceClaim and is what status.gpu reports as allocated.",
    )
    count: int | None = Field(
        default=None,
        ge=1,
        le=16,
        description="GPUs per replica with this alternative. Defaults to resources.gpu.count.",
    )
    product: str | None = Field(
        default=None,
        max_length=128,
        pattern=GPU_PRODUCT_NAME,
        description="GPU model, as NVIDIA's DRA driver publishes it in the productName "
        "device attribute (e.g. NVIDIA H100 80GB HBM3, NVIDIA L4; spaces, not the dashes of "
        "the nvidia.com/gpu.product node label). Unset: any product.",
    )
    min_memory: Quantity | None = Field(
        default=None,
        description="Least GPU memory per device (the driver's memory capacity), e.g. 40Gi. "
        "Unset: any amount.",
    )


GpuAllocation = Literal["DevicePlugin", "DRA"]
# The CRD's default `{}` for resources.gpu is checked before its fields are defaulted.
DRA_SELECTED = "(has(self.allocation) && self.allocation == 'DRA')"
_DRA = DRA_SELECTED


class GpuResources(ApiModel):
    """GPUs per replica."""

    model_config = ConfigDict(
        json_schema_extra=validations(
            cel(
                "!has(self.product) || self.count > 0",
                "product needs count greater than 0",
                field_path=".product",
            ),
            cel(
                f"!{_DRA} || (has(self.alternatives) && self.alternatives.size() > 0)",
                "allocation DRA needs at least one entry in alternatives",
                field_path=".alternatives",
            ),
            cel(
                f"{_DRA} || !has(self.alternatives)",
                "alternatives are only used with allocation DRA",
                field_path=".alternatives",
            ),
            cel(
                f"{_DRA} || !has(self.deviceClassName)",
                "deviceClassName is only used with allocation DRA",
                field_path=".deviceClassName",
            ),
            cel(
                f"!{_DRA} || !has(self.count) || self.count > 0",
                "allocation DRA needs count greater than 0 (count 0 runs on CPU only)",
                field_path=".count",
            ),
            cel(
                f"!{_DRA} || !has(self.product)",
                "product is the device-plugin node label; with allocation DRA name the product "
                "in alternatives[].product",
                field_path=".product",
            ),
        )
    )

    count: int = Field(
        default=1,
        ge=0,
        le=16,
        description="GPUs per replica: nvidia.com/gpu devices (container limit) with "
        "allocation DevicePlugin, the default count of each alternative with allocation DRA. "
        "0 runs on CPU only.",
    )
    product: str | None = Field(
        default=None,
        max_length=63,
        pattern=LABEL_VALUE,
        description="GPU model the pods must land on, as the nvidia.com/gpu.product node label "
        "spells it (e.g. NVIDIA-H100-80GB-HBM3); becomes a node selector. Allocation "
        "DevicePlugin only.",
    )
    allocation: GpuAllocation = Field(
        default="DevicePlugin",
        description="How the GPUs are obtained. DevicePlugin: the nvidia.com/gpu extended "
        "resource of NVIDIA's device plugin (a container limit; product becomes a node "
        "selector). DRA: Dynamic Resource Allocation (resource.k8s.io/v1) through NVIDIA's "
        "DRA driver: the operator renders a ResourceClaimTemplate from alternatives, the "
        "scheduler allocates the first alternative that fits, and status.gpu reports which "
        '(docs/api.md, "Device plugin or DRA: when to use which").',
    )
    alternatives: list[GpuAlternative] | None = Field(
        default=None,
        max_length=MAX_GPU_ALTERNATIVES,
        json_schema_extra=map_list("name"),
        description="Allocation DRA: the acceptable GPU configurations in order of "
        'preference, e.g. one H100, else two L4 ("firstAvailable" of the ResourceClaim). '
        f"At most {MAX_GPU_ALTERNATIVES}.",
    )
    device_class_name: str | None = Field(
        default=None,
        max_length=253,
        pattern=DNS1123_SUBDOMAIN,
        description="Allocation DRA: the DeviceClass the devices come from. Defaults to "
        f"{DEFAULT_DEVICE_CLASS} (NVIDIA's DRA driver, full GPUs).",
    )

    @property
    def dra(self) -> bool:
        """Whether the GPUs come through Dynamic Resource Allocation."""
        return self.allocation == "DRA" and self.count > 0

    def per_pod(self, alternative: GpuAlternative | None = None) -> int:
        """GPUs one pod gets: count, or with DRA the given (else the first) alternative's."""
        if not self.dra or not self.alternatives:
            return self.count
        chosen = alternative or self.alternatives[0]
        return chosen.count or self.count


class Resources(ApiModel):
    """Compute resources of each Triton replica."""

    gpu: GpuResources = sub_object(GpuResources, "GPUs per replica.")
    cpu: Quantity = Field(
        default=c.DEFAULT_CPU,
        description="CPU of the Triton container, request and limit (Guaranteed QoS), e.g. 4 or "
        '"500m" (fractions must be quoted strings).',
    )
    memory: Quantity = Field(
        default=c.DEFAULT_MEMORY,
        description="Memory of the Triton container, request and limit, e.g. 16Gi. The model, "
        "Triton's pinned host buffers and /dev/shm (Python backend) all count against it.",
    )


# --- spec.autoscaling -----------------------------------------------------------

MetricType = Literal["cpu", "queue-time", "concurrency", "gpu-utilization"]


class AutoscalingMetric(ApiModel):
    """The signal the autoscaler follows and its per-replica target."""

    model_config = ConfigDict(
        json_schema_extra=validations(
            cel(
                "!(self.type in ['cpu', 'gpu-utilization']) || self.target <= 100",
                "target is a percentage (1-100) for the cpu and gpu-utilization metrics",
                field_path=".target",
            ),
        )
    )

    type: MetricType = Field(
        description="cpu: CPU utilisation of the Triton container. queue-time: time requests "
        "wait in Triton's scheduler queue. concurrency: requests in flight per replica. "
        "gpu-utilization: GPU utilisation from the NVIDIA DCGM exporter. queue-time and "
        "concurrency need prometheus-adapter (engine hpa, see "
        "manifests/prometheus-adapter-rules.yaml) or KEDA; gpu-utilization needs "
        "dcgm-exporter as well.",
    )
    target: int = Field(
        ge=1,
        le=100_000_000,
        description="Per-replica target; the unit depends on type. cpu: average utilisation in "
        "percent of the CPU request (1-100). queue-time: average microseconds of queue time per "
        "request, rate(nv_inference_queue_duration_us) / rate(nv_inference_request_success). "
        "concurrency: average in-flight requests per replica, rate(nv_inference_request_"
        "duration_us) / 1e6 (Little's law). gpu-utilization: average percent of "
        "DCGM_FI_DEV_GPU_UTIL (1-100).",
    )


class Autoscaling(ApiModel):
    """Horizontal autoscaling of the Triton replicas; spec.replicas is ignored when set."""

    model_config = ConfigDict(
        json_schema_extra=validations(
            cel(
                "self.minReplicas <= self.maxReplicas",
                "minReplicas must not exceed maxReplicas",
                field_path=".minReplicas",
            ),
            cel(
                "self.minReplicas > 0 || self.engine == 'keda'",
                "minReplicas 0 (scale to zero) needs engine keda",
                field_path=".minReplicas",
            ),
            cel(
                "self.minReplicas > 0 || self.metric.type != 'cpu'",
                "minReplicas 0 cannot wake up on the cpu metric: with no pods there is no CPU "
                "to measure",
                field_path=".minReplicas",
            ),
            cel(
                "!has(self.cooldownSeconds) || self.engine == 'keda'",
                "cooldownSeconds is KEDA's: it needs engine keda",
                field_path=".cooldownSeconds",
            ),
        )
    )

    min_replicas: int = Field(
        default=1,
        ge=0,
        le=1000,
        description="Fewest replicas. 0 (scale to zero) needs engine keda; note that Triton's "
        "own metrics vanish with the last pod, so scaling up from zero needs traffic seen "
        "elsewhere.",
    )
    max_replicas: int = Field(
        ge=1,
        le=1000,
        description="Most replicas; bounds the GPUs this model can take.",
    )
    engine: Literal["hpa", "keda"] = Field(
        default="hpa",
        description="hpa: a HorizontalPodAutoscaler (autoscaling/v2) on the Triton Deployment. "
        "keda: a KEDA ScaledObject with a Prometheus trigger (KEDA must be installed; "
        "status condition AutoscalerReady says KEDANotInstalled otherwise).",
    )
    metric: AutoscalingMetric = Field(description="Metric to scale on and its target.")
    cooldown_seconds: int | None = Field(
        default=None,
        ge=0,
        le=86_400,
        description="engine keda only: how long the trigger must stay inactive before KEDA "
        "scales to minReplicas 0 (KEDA's cooldownPeriod; KEDA's default, 300, when unset). "
        "Shorter frees GPUs sooner after the last request; the next request then waits for a "
        "pod to start and load the model.",
    )
    scale_down_stabilization_seconds: int | None = Field(
        default=None,
        ge=0,
        le=3600,
        description="How long the metric must stay low before replicas are removed: the "
        "autoscaler scales in to the highest recommendation of this window. Unset keeps "
        "Kubernetes' default (300 s), which rides out short lulls in traffic at the price of "
        "GPUs held for five minutes after a burst.",
    )


# --- spec.scheduling ------------------------------------------------------------


_LABEL_VALUE_FIELD = Field(max_length=63, pattern=LABEL_VALUE, description="A node label value.")


class Scheduling(ApiModel):
    """Where the pods may run, on top of what resources.gpu implies.

    Affinity is deliberately not offered yet: nodeSelector plus gpu.product
    covers GPU placement, and a typed affinity schema is large; ask if needed.
    """

    node_selector: dict[str, Annotated[str, _LABEL_VALUE_FIELD]] | None = Field(
        default=None,
        max_length=32,
        json_schema_extra=validations(
            cel(
                f"self.all(k, k.size() <= 317 && k.matches('{cel_regex(QUALIFIED_NAME)}'))",
                "node selector keys must be label keys such as example.com/pool",
            ),
        ),
        description="Node labels the pods require, added to the nvidia.com/gpu.product "
        "selector that resources.gpu.product implies.",
    )
    tolerations: list[Toleration] | None = Field(
        default=None,
        max_length=32,
        description="Tolerations added to the nvidia.com/gpu:NoSchedule toleration the "
        "operator sets when GPUs are requested.",
    )
    priority_class_name: str | None = Field(
        default=None,
        max_length=253,
        pattern=DNS1123_SUBDOMAIN,
        description="PriorityClass of the pods, e.g. to let serving preempt batch training.",
    )


# --- spec.driftMonitor ----------------------------------------------------------


class DriftReference(ApiModel):
    """Reference data the live inputs are compared with."""

    uri: str = Field(
        max_length=2048,
        pattern=STORAGE_URI,
        json_schema_extra=validations(*STORAGE_URI_RULES),
        description="Location of the reference statistics or sample (e.g. "
        "s3://models/fraud/reference.npz, built by `modelops drift-reference`); same schemes "
        "and credentials as model.storageUri.",
    )


class Retrain(ApiModel):
    """Closes the loop: drift starts a TrainingJob whose output is served next."""

    training_job_template: dict[str, Any] = Field(
        json_schema_extra=PRESERVE_UNKNOWN,
        description="Spec of the TrainingJob (modelops.io/v1alpha1) created when drift is "
        "detected; its output.storageUri should be this model's storageUri so that version "
        '"latest" picks the result up.',
    )
    cooldown: str = Field(
        default="6h",
        max_length=32,
        pattern=GO_DURATION,
        description="Least time between two retrainings started by drift, as a Go duration "
        "(e.g. 30m, 6h, 1h30m).",
    )


class DriftAmounts(ApiModel):
    """CPU and memory of the drift-monitor container (one of requests or limits)."""

    cpu: Quantity = Field(
        default=c.DEFAULT_DRIFT_CPU,
        description='CPU, e.g. 1 or "500m" (fractions must be quoted strings).',
    )
    memory: Quantity = Field(
        default=c.DEFAULT_DRIFT_MEMORY,
        description="Memory, e.g. 384Mi.",
    )


class DriftResources(ApiModel):
    """Requests and limits of the drift-monitor container."""

    requests: DriftAmounts = sub_object(
        DriftAmounts,
        "What the scheduler reserves for the sidecar. Defaults equal the limits, which keeps "
        "the pod's Guaranteed QoS when Triton's container has it.",
    )
    limits: DriftAmounts = sub_object(
        DriftAmounts,
        "The most the sidecar may use. The default 384Mi is sized from its measured bound: "
        "with its default connection, buffer and queue limits the sidecar's RSS stays under "
        "256 MiB whatever clients send, and the rest covers kernel socket buffers. The default "
        "CPU (1) serves several thousand requests per second (about 100-300 microseconds of "
        "CPU per request, statistics included).",
    )


class DriftMonitor(ApiModel):
    """A sidecar in front of Triton that compares live inputs with reference data."""

    model_config = ConfigDict(
        json_schema_extra=validations(
            cel(
                "!self.enabled || has(self.reference)",
                "reference is required when the drift monitor is enabled",
                field_path=".reference",
            ),
            cel(
                "!has(self.threshold) || self.method == 'psi' || self.threshold <= 1.0",
                "for js (a divergence in [0, 1]) and ks (a false-alarm probability) the "
                "threshold must be at most 1",
                field_path=".threshold",
            ),
            cel(
                "!has(self.retrain) || self.enabled",
                "retrain needs the drift monitor enabled",
                field_path=".retrain",
            ),
        )
    )

    enabled: bool = Field(
        default=False,
        description="Run the drift-monitor sidecar. Inference traffic on the Service's http "
        "and grpc ports then passes through it, and the model's infer requests of both "
        "protocols (HTTP, and gRPC ModelInfer / ModelStreamInfer) are observed for drift.",
    )
    reference: DriftReference | None = Field(
        default=None,
        description="Reference data; required when enabled.",
    )
    method: Literal["ksz", "psi", "js", "ks"] = Field(
        default="ksz",
        description="Test per input feature: ksz (KS and mean-shift z-test, false-alarm "
        "probability spent over windows: threshold bounds false alarms over the monitor's "
        "life), psi (population stability index), js (Jensen-Shannon divergence, base 2) "
        "or ks (two-sample Kolmogorov-Smirnov test).",
    )
    threshold: float | None = Field(
        default=None,
        gt=0,
        le=100,
        description="For psi and js: a feature drifts when its score exceeds this. For ks: "
        "the family-wise false-alarm probability per window (alpha); for ksz: over all "
        "windows of a sidecar's life. Unset uses the method's default: psi 0.2, js 0.04, "
        "ks and ksz 0.001.",
    )
    window: int = Field(
        default=1000,
        ge=100,
        le=1_000_000,
        description="Requests per evaluation window.",
    )
    retrain: Retrain | None = Field(
        default=None,
        description="Retrain automatically when drift is detected.",
    )
    resources: DriftResources = sub_object(
        DriftResources,
        "CPU and memory requests and limits of the drift-monitor sidecar container.",
    )


# --- spec -----------------------------------------------------------------------

# On a spec with `resources` and `scheduling` (every kind that runs GPU pods):
# the product is one field, so two sources cannot disagree.
GPU_PRODUCT_NOT_IN_NODE_SELECTOR = cel(
    "!has(self.resources) || !has(self.resources.gpu) "
    "|| !has(self.resources.gpu.product) || !has(self.scheduling) "
    "|| !has(self.scheduling.nodeSelector) "
    "|| !('nvidia.com/gpu.product' in self.scheduling.nodeSelector)",
    "set the GPU product in resources.gpu.product, not in nodeSelector",
    field_path=".scheduling.nodeSelector",
)


class ModelDeploymentSpec(ApiModel):
    """Desired state of a ModelDeployment."""

    model_config = ConfigDict(json_schema_extra=validations(GPU_PRODUCT_NOT_IN_NODE_SELECTOR))

    model: ModelSource = Field(description="The model to serve.")
    runtime: Runtime = sub_object(Runtime, "Triton Inference Server settings.")
    resources: Resources = sub_object(Resources, "Compute resources of each replica.")
    replicas: int = Field(
        default=1,
        ge=0,
        le=1000,
        description="Number of Triton replicas. Ignored when autoscaling is set (the "
        "autoscaler owns the count then).",
    )
    autoscaling: Autoscaling | None = Field(
        default=None,
        description="Scale replicas on a metric; replaces spec.replicas.",
    )
    rollout: Rollout = sub_object(
        Rollout,
        "How new versions roll out: Direct, or gated (Shadow, Canary) with analysis, "
        "automatic promotion or rollback (docs/rollouts.md).",
    )
    scheduling: Scheduling | None = Field(
        default=None, description="Node selection, tolerations and priority."
    )
    service_account_name: str | None = Field(
        default=None,
        max_length=253,
        pattern=DNS1123_SUBDOMAIN,
        description="ServiceAccount of the pods (e.g. for cloud workload identity to reach "
        "storage). Its API token is not mounted: Triton does not talk to the API server.",
    )
    drift_monitor: DriftMonitor | None = Field(
        default=None, description="Input-drift monitoring and automatic retraining."
    )


# --- status ---------------------------------------------------------------------


class Endpoints(ApiModel):
    """In-cluster addresses of the model's Service."""

    http: str | None = Field(
        default=None, description="KServe v2 / Triton HTTP base URL, e.g. http://name.ns.svc:8000."
    )
    grpc: str | None = Field(
        default=None, description="Triton gRPC address (host:port), e.g. name.ns.svc:8001."
    )
    metrics: str | None = Field(
        default=None,
        description="Prometheus metrics URL of Triton, e.g. http://name.ns.svc:8002/metrics.",
    )


class FeatureDrift(ApiModel):
    """Drift score of one input feature."""

    name: str = Field(max_length=256, description="Feature (input tensor or column) name.")
    score: float = Field(description="Drift score of this feature.")


class DriftStatus(ApiModel):
    """Result of the latest drift evaluation."""

    score: float | None = Field(default=None, description="Highest feature score in the window.")
    drifted: bool | None = Field(default=None, description="Whether score exceeds the threshold.")
    since: str | None = Field(
        default=None,
        json_schema_extra={"format": "date-time"},
        description="When drift was first detected (unset while not drifted).",
    )
    features: list[FeatureDrift] | None = Field(
        default=None,
        max_length=32,
        description="Scores of the most drifted features, highest first (at most 32).",
    )
    windows: int | None = Field(
        default=None,
        ge=0,
        description="Merged windows judged against this reference. The false-alarm budget is "
        "spent over them, so a restarted operator goes on from here instead of from 1.",
    )
    reference: str | None = Field(
        default=None,
        max_length=64,
        description="Digest of the reference the windows were judged against; a new one "
        "starts the count over.",
    )
    sidecars: list[Annotated[str, Field(max_length=64, description="A sidecar id.")]] | None = (
        Field(
            default=None,
            max_length=64,
            description="Drift monitors whose rows were judged up to the last window; after an "
            "operator restart their next report is a baseline, so no row is counted twice.",
        )
    )


class RetrainStatus(ApiModel):
    """The drift -> retrain loop's last action."""

    training_job: str | None = Field(
        default=None, max_length=253, description="The TrainingJob drift started last."
    )
    last_triggered_time: str | None = Field(
        default=None,
        max_length=64,
        description="When drift last started a TrainingJob (RFC 3339); the cooldown counts "
        "from here.",
    )
    count: int | None = Field(default=None, description="TrainingJobs started by drift so far.")


class GpuAllocated(ApiModel):
    """The GPUs one pod was granted through DRA."""

    pod: str = Field(max_length=253, description="The pod.")
    claim: str | None = Field(
        default=None, max_length=253, description="The ResourceClaim made for the pod."
    )
    alternative: str = Field(
        max_length=63, description="Name of the alternative the scheduler allocated."
    )
    devices: list[Annotated[str, Field(max_length=512, description="pool/device")]] | None = Field(
        default=None,
        max_length=16,
        description="The devices, as <pool>/<device> (NVIDIA's driver names its pools "
        "after the node, e.g. gpu-node-3/gpu-0).",
    )


class GpuStatus(ApiModel):
    """How the GPUs were obtained; with DRA, which alternative each pod was granted."""

    allocation: GpuAllocation = Field(description="DRA (only reported for DRA).")
    allocated: list[GpuAllocated] | None = Field(
        default=None,
        max_length=1000,
        description="One entry per pod whose claim is allocated, by pod name.",
    )
    summary: str | None = Field(
        default=None,
        max_length=1024,
        description='Pods per allocated alternative, e.g. "h100: 2, l4: 1".',
    )


MAX_LOADED_VERSIONS = 8
MAX_LOADED_PODS = 16


class LoadedVersion(ApiModel):
    """A model version some ready replicas loaded."""

    version: str = Field(max_length=64, description="The version Triton reports READY.")
    replicas: int = Field(description="How many ready replicas loaded it.")
    pods: list[Annotated[str, Field(max_length=253, description="A pod name.")]] | None = Field(
        default=None,
        max_length=MAX_LOADED_PODS,
        description=f"Those replicas' pod names (the first {MAX_LOADED_PODS}, sorted).",
    )


class ModelDeploymentStatus(ApiModel):
    """Observed state of a ModelDeployment, written by the operator only."""

    observed_generation: int | None = Field(
        default=None, description="metadata.generation the status was computed for."
    )
    conditions: list[Condition] | None = Field(
        default=None,
        max_length=16,
        json_schema_extra=map_list("type"),
        description="Ready, Reconciling, Stalled (kstatus), and Scheduled, ModelLoaded, "
        "AutoscalerReady, Drifted.",
    )
    replicas: int | None = Field(default=None, description="Triton pods (all versions).")
    ready_replicas: int | None = Field(default=None, description="Triton pods ready to serve.")
    updated_replicas: int | None = Field(
        default=None, description="Triton pods running the current pod template."
    )
    selector: str | None = Field(
        default=None, description="Label selector of the pods (for the scale subresource)."
    )
    gpus: int | None = Field(
        default=None,
        description="GPUs requested by all Triton pods (with allocation DRA: the GPUs "
        "allocated to their claims).",
    )
    gpu: GpuStatus | None = Field(
        default=None,
        description="With allocation DRA: which alternative each pod's claim was granted.",
    )
    served_version: str | None = Field(
        default=None,
        description="Model version(s) the ready pods serve; comma-separated while several do.",
    )
    desired_version: str | None = Field(
        default=None,
        description="Model version being rolled out (the resolved spec.model.version).",
    )
    loaded_versions: list[LoadedVersion] | None = Field(
        default=None,
        max_length=MAX_LOADED_VERSIONS,
        description="The model versions the ready replicas' Triton servers report loaded "
        "(their repository index), each with how many replicas and which: what actually "
        "serves, as opposed to what the pod templates ask for.",
    )
    endpoints: Endpoints | None = Field(default=None, description="Where to send requests.")
    drift: DriftStatus | None = Field(default=None, description="Latest drift evaluation.")
    rollout: RolloutStatus | None = Field(
        default=None, description="Rollout state: stable and candidate versions, phase, analysis."
    )
    history: list[HistoryEntry] | None = Field(
        default=None,
        max_length=MAX_HISTORY,
        description="Lineage of the versions rolled out, newest first (at most "
        f"{MAX_HISTORY}): where each came from, its checksum, when it started serving, and "
        "whether it was promoted or rolled back and why.",
    )
    retrain: RetrainStatus | None = Field(
        default=None, description="Retraining started by drift (spec.driftMonitor.retrain)."
    )
    kopf: dict[str, Any] | None = KOPF_STATUS_FIELD


# --- the object -----------------------------------------------------------------


class ModelDeployment(ParsedObject):
    """A parsed ModelDeployment: metadata the renderers need plus the typed spec."""

    spec: ModelDeploymentSpec
    # The v1beta1 pod controls, attached by api/intake.py (empty when parsed otherwise).
    pod_controls: PodControls = Field(default_factory=PodControls)
    # v1beta1's spec.rollout.schedulingTimeout in seconds, attached by api/intake.py.
    # None (a v1alpha1 object): surgeTimeoutSeconds means it too, as v1alpha1 says.
    scheduling_timeout_override: int | None = None

    @property
    def scheduling_timeout_seconds(self) -> int:
        """How long a pod may wait for a node before the object turns Stalled
        (Unschedulable, or CandidateUnschedulable for a gated candidate)."""
        if self.scheduling_timeout_override is not None:
            return self.scheduling_timeout_override
        return self.spec.rollout.surge_timeout_seconds

    @property
    def model_name(self) -> str:
        """The model's name inside Triton."""
        return self.spec.model.name or self.metadata.name


# The root-level rule may only read metadata.name (CEL's view of metadata).
ROOT_VALIDATIONS = [
    cel(
        f"self.metadata.name.size() <= 63 && self.metadata.name.matches('{DNS1035_LABEL}')",
        "metadata.name must be a DNS-1035 label (lower-case letters, digits and '-', starting "
        "with a letter, at most 63 characters): it names the Service and the pods' labels",
    ),
]
