"""ModelDeployment (modelops.io/v1beta1): v1alpha1 with one convention and the pod controls.

What changes from v1alpha1 (api/conversion.py converts both ways, losslessly):

- enums are CamelCase: model.format (Triton, TorchScript, ONNX, TensorRT,
  Python), autoscaling.engine (HPA, KEDA), autoscaling.metric.type (CPU,
  QueueTime, Concurrency, GPUUtilization), driftMonitor.method (KSZ, PSI, JS, KS);
- every duration is a Go duration string (api/durations.py), so the unit
  leaves the field name: runtime.dynamicBatching.maxQueueDelay,
  autoscaling.cooldown, autoscaling.scaleDownStabilization,
  rollout.surgeTimeout;
- rollout.surgeTimeoutSeconds meant two things; now rollout.surgeTimeout
  (a Direct rollout's switch to in-place replacement) and
  rollout.schedulingTimeout (how long a candidate may wait for a node before
  the rollout is Stalled);
- resources.cpuLimit: a CPU limit apart from the request (cpu);
- pod controls: podMetadata, imagePullSecrets, volumes,
  runtime.volumeMounts, env from Secrets/ConfigMaps (runtime.env[].valueFrom),
  scheduling.affinity, scheduling.topologySpreadConstraints
  (scheduling.priorityClassName was already there);
- runtime.image is kept whatever its value (v1alpha1 read a value equal to a
  former schema default as unset);
- status.servedVersion (comma-separated) is status.servedVersions, a list.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from pydantic import ConfigDict, Field

from .. import constants as c
from .. import durations
from .. import modeldeployment as a
from ..base import (
    PRESERVE_UNKNOWN,
    ApiModel,
    ParsedObject,
    Quantity,
    cel,
    map_list,
    plain,
    sub_object,
    validations,
)
from ..durations import DURATION, DURATION_MS
from . import pod
from .derive import derive

# v1alpha1 spelling -> v1beta1 spelling of every enum that changed.
FORMATS = {
    "triton": "Triton",
    "torchscript": "TorchScript",
    "onnx": "ONNX",
    "tensorrt": "TensorRT",
    "python": "Python",
}
ENGINES = {"hpa": "HPA", "keda": "KEDA"}
METRIC_TYPES = {
    "cpu": "CPU",
    "queue-time": "QueueTime",
    "concurrency": "Concurrency",
    "gpu-utilization": "GPUUtilization",
}
DRIFT_METHODS = {"ksz": "KSZ", "psi": "PSI", "js": "JS", "ks": "KS"}

ModelFormat = Literal["Triton", "TorchScript", "ONNX", "TensorRT", "Python"]
Engine = Literal["HPA", "KEDA"]
MetricType = Literal["CPU", "QueueTime", "Concurrency", "GPUUtilization"]
DriftMethod = Literal["KSZ", "PSI", "JS", "KS"]


def _duration(default: str | None, description: str, pattern: str = DURATION_MS, **kw: Any) -> Any:
    return Field(default=default, max_length=32, pattern=pattern, description=description, **kw)


class ModelSource(a.ModelSource):
    __doc__ = a.ModelSource.__doc__

    format: ModelFormat = Field(
        default="Triton",
        description="Format of the stored model. Every format needs a Triton config.pbtxt "
        "beside the versions (or in the version directory); the operator writes none. "
        "Triton: served with its config.pbtxt as is. TorchScript, ONNX, TensorRT, Python: "
        "the config.pbtxt must run that backend (checked at pull; FormatMismatch otherwise), "
        "and spec.runtime settings are applied to it. `modelops package-model --publish` "
        "writes a TorchScript or ONNX file as such a model (docs/training.md).",
    )


class DynamicBatching(ApiModel):
    """Triton dynamic batching: groups requests that arrive close together."""

    @property
    def max_queue_delay_microseconds(self) -> int:
        """What Triton's model configuration takes."""
        return durations.whole_microseconds(self.max_queue_delay)

    max_queue_delay: str = _duration(
        "0s",
        "Longest time a request waits in the queue for others to batch with, as a duration "
        "(e.g. 100us, 2ms); at most 10s.",
        pattern=DURATION,
        json_schema_extra=validations(
            cel("duration(self) <= duration('10s')", "maxQueueDelay is at most 10s"),
        ),
    )


_RESERVED_ENV_RULE = cel(
    f"self.all(e, !e.name.startsWith('{c.RESERVED_ENV_PREFIX}') && "
    + " && ".join(f"e.name != '{n}'" for n in c.RESERVED_ENV_NAMES)
    + ")",
    f"env names starting with {c.RESERVED_ENV_PREFIX} and "
    + ", ".join(c.RESERVED_ENV_NAMES)
    + " are reserved by the operator",
)


class Runtime(a.Runtime):
    __doc__ = a.Runtime.__doc__

    image: str | None = Field(
        default=None,
        min_length=1,
        max_length=512,
        description="Triton Inference Server image, for this ModelDeployment only; kept as "
        "written, whatever its value. Unset: the operator's default image (its "
        "--triton-image setting, Helm value defaultImages.triton), so moving the fleet to "
        "a new Triton release is one operator setting.",
    )
    dynamic_batching: DynamicBatching | None = Field(
        default=None,
        description="Enables Triton's dynamic batcher when present; needs maxBatchSize > 0.",
    )
    env: list[pod.EnvVar] | None = Field(
        default=None,
        max_length=64,
        json_schema_extra=map_list("name", **validations(_RESERVED_ENV_RULE)),
        description="Extra environment variables of the Triton container, literal or from a "
        f"Secret or ConfigMap key. Names starting with {c.RESERVED_ENV_PREFIX} and "
        + ", ".join(c.RESERVED_ENV_NAMES)
        + " are reserved.",
    )
    volume_mounts: list[pod.VolumeMount] | None = pod.volume_mounts_field(
        "Triton", pod.SERVING_MOUNT_PATHS
    )


class Resources(a.Resources):
    """Compute resources of each Triton replica."""

    model_config = ConfigDict(
        json_schema_extra=validations(
            cel(
                "!has(self.cpuLimit) || quantity(string(self.cpuLimit))"
                ".compareTo(quantity(string(self.cpu))) >= 0",
                "cpuLimit must not be below cpu (the request)",
                field_path=".cpuLimit",
            ),
        )
    )

    cpu: Quantity = Field(
        default=c.DEFAULT_CPU,
        description='CPU request of the Triton container, e.g. 4 or "500m" (fractions must '
        "be quoted strings); also its limit unless cpuLimit is set.",
    )
    cpu_limit: Quantity | None = Field(
        default=None,
        description="CPU limit of the Triton container when it differs from the request "
        "(the pod is then Burstable, not Guaranteed). Unset: equal to cpu.",
    )


class AutoscalingMetric(a.AutoscalingMetric):
    __doc__ = a.AutoscalingMetric.__doc__
    model_config = ConfigDict(
        json_schema_extra=validations(
            cel(
                "!(self.type in ['CPU', 'GPUUtilization']) || self.target <= 100",
                "target is a percentage (1-100) for the CPU and GPUUtilization metrics",
                field_path=".target",
            ),
        )
    )

    type: MetricType = Field(
        description="CPU: CPU utilisation of the Triton container. QueueTime: time requests "
        "wait in Triton's scheduler queue. Concurrency: requests in flight per replica. "
        "GPUUtilization: GPU utilisation from the NVIDIA DCGM exporter. QueueTime and "
        "Concurrency need prometheus-adapter (engine HPA) or KEDA; GPUUtilization needs "
        "dcgm-exporter as well.",
    )
    target: int = Field(
        ge=1,
        le=100_000_000,
        description="Per-replica target; the unit depends on type. CPU: average utilisation "
        "in percent of the CPU request (1-100). QueueTime: average microseconds of queue time "
        "per request. Concurrency: average in-flight requests per replica. GPUUtilization: "
        "average percent of DCGM_FI_DEV_GPU_UTIL (1-100).",
    )


_Autoscaling = derive(
    a.Autoscaling,
    "Autoscaling",
    replace={
        "engine": {
            "engine": (
                Engine,
                Field(
                    default="HPA",
                    description="HPA: a HorizontalPodAutoscaler (autoscaling/v2) on the Triton "
                    "Deployment. KEDA: a KEDA ScaledObject with a Prometheus trigger (KEDA "
                    "must be installed).",
                ),
            )
        },
        "metric": {
            "metric": (AutoscalingMetric, Field(description="Metric to scale on and its target."))
        },
        "cooldown_seconds": {
            "cooldown": (
                str | None,
                _duration(
                    None,
                    "engine KEDA only: how long the trigger must stay inactive before KEDA "
                    "scales to minReplicas 0 (KEDA's cooldownPeriod; 5m when unset); at most "
                    "24h, in whole seconds.",
                    json_schema_extra=validations(
                        cel("duration(self) <= duration('24h')", "cooldown is at most 24h"),
                    ),
                ),
            )
        },
        "scale_down_stabilization_seconds": {
            "scale_down_stabilization": (
                str | None,
                _duration(
                    None,
                    "How long the metric must stay low before replicas are removed (the "
                    "autoscaler scales in to the highest recommendation of this window); at "
                    "most 1h, in whole seconds. Unset keeps Kubernetes' default (5m).",
                    json_schema_extra=validations(
                        cel(
                            "duration(self) <= duration('1h')",
                            "scaleDownStabilization is at most 1h",
                        ),
                    ),
                ),
            )
        },
    },
    json_schema_extra=validations(
        cel(
            "self.minReplicas <= self.maxReplicas",
            "minReplicas must not exceed maxReplicas",
            field_path=".minReplicas",
        ),
        cel(
            "self.minReplicas > 0 || self.engine == 'KEDA'",
            "minReplicas 0 (scale to zero) needs engine KEDA",
            field_path=".minReplicas",
        ),
        cel(
            "self.minReplicas > 0 || self.metric.type != 'CPU'",
            "minReplicas 0 cannot wake up on the CPU metric: with no pods there is no CPU to "
            "measure",
            field_path=".minReplicas",
        ),
        cel(
            "!has(self.cooldown) || self.engine == 'KEDA'",
            "cooldown is KEDA's: it needs engine KEDA",
            field_path=".cooldown",
        ),
    ),
)

_Rollout = derive(
    a.Rollout,
    "Rollout",
    replace={
        "surge_timeout_seconds": {
            "surge_timeout": (
                str,
                _duration(
                    "1m",
                    "Direct: when a surge pod stays unschedulable (e.g. Insufficient "
                    "nvidia.com/gpu) for longer than this, the operator finishes the rollout "
                    "replacing pods in place (maxSurge 0, maxUnavailable 1) instead of waiting "
                    "for a GPU that never frees up; status.rollout says so. 0s switches at "
                    "once. At most 24h.",
                    json_schema_extra=validations(
                        cel("duration(self) <= duration('24h')", "surgeTimeout is at most 24h"),
                    ),
                ),
            ),
            "scheduling_timeout": (
                str,
                _duration(
                    "1m",
                    "How long a pod may wait for a node before the ModelDeployment turns "
                    "Stalled (reason Unschedulable, or CandidateUnschedulable for a Shadow or "
                    "Canary candidate, which keeps waiting; the stable version is never scaled "
                    "down for it). At most 24h.",
                    json_schema_extra=validations(
                        cel(
                            "duration(self) <= duration('24h')",
                            "schedulingTimeout is at most 24h",
                        ),
                    ),
                ),
            ),
        }
    },
)


class Autoscaling(_Autoscaling):  # type: ignore[valid-type,misc]
    __doc__ = a.Autoscaling.__doc__

    @property
    def cooldown_seconds(self) -> int | None:
        """KEDA's cooldownPeriod."""
        return None if self.cooldown is None else durations.whole_seconds(self.cooldown)

    @property
    def scale_down_stabilization_seconds(self) -> int | None:
        """The HPA's stabilizationWindowSeconds."""
        if self.scale_down_stabilization is None:
            return None
        return durations.whole_seconds(self.scale_down_stabilization)


class Rollout(_Rollout):  # type: ignore[valid-type,misc]
    __doc__ = a.Rollout.__doc__

    @property
    def surge_timeout_seconds(self) -> int:
        return durations.whole_seconds(self.surge_timeout)

    @property
    def scheduling_timeout_seconds(self) -> int:
        return durations.whole_seconds(self.scheduling_timeout)


class Scheduling(a.Scheduling):
    """Where the pods may run, on top of what resources.gpu implies."""

    affinity: pod.Affinity | None = Field(
        default=None, description="Node and pod affinity (core/v1 Affinity)."
    )
    topology_spread_constraints: list[pod.TopologySpreadConstraint] | None = Field(
        default=None,
        max_length=8,
        json_schema_extra=map_list("topologyKey", "whenUnsatisfiable"),
        description="How the pods spread over zones or nodes (core/v1).",
    )


class Retrain(a.Retrain):
    __doc__ = a.Retrain.__doc__

    training_job_template: dict[str, Any] = Field(
        json_schema_extra=PRESERVE_UNKNOWN,
        description="Spec of the TrainingJob (modelops.io/v1beta1) created when drift is "
        "detected; its output.storageUri should be this model's storageUri so that version "
        '"latest" picks the result up.',
    )

    cooldown: str = _duration(
        "6h",
        "Least time between two retrainings started by drift, as a duration (e.g. 30m, 6h, 1h30m).",
    )


class DriftMonitor(a.DriftMonitor):
    __doc__ = a.DriftMonitor.__doc__
    model_config = ConfigDict(
        json_schema_extra=validations(
            cel(
                "!self.enabled || has(self.reference)",
                "reference is required when the drift monitor is enabled",
                field_path=".reference",
            ),
            cel(
                "!has(self.threshold) || self.method == 'PSI' || self.threshold <= 1.0",
                "for JS (a divergence in [0, 1]) and KS/KSZ (a false-alarm probability) the "
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

    method: DriftMethod = Field(
        default="KSZ",
        description="Test per input feature: KSZ (KS and mean-shift z-test, false-alarm "
        "probability spent over windows), PSI (population stability index), JS "
        "(Jensen-Shannon divergence, base 2) or KS (two-sample Kolmogorov-Smirnov test).",
    )
    retrain: Retrain | None = Field(
        default=None, description="Retrain automatically when drift is detected."
    )


class ModelDeploymentSpec(a.ModelDeploymentSpec):
    __doc__ = a.ModelDeploymentSpec.__doc__
    model_config = ConfigDict(
        json_schema_extra=pod.with_rules(
            a.ModelDeploymentSpec.model_config.get("json_schema_extra"),
            pod.mounts_name_volumes("self.runtime.volumeMounts", ".runtime.volumeMounts"),
        )
    )

    model: ModelSource = Field(description="The model to serve.")
    runtime: Runtime = sub_object(Runtime, "Triton Inference Server settings.")
    resources: Resources = sub_object(Resources, "Compute resources of each replica.")
    autoscaling: Autoscaling | None = Field(  # type: ignore[valid-type]
        default=None, description="Scale replicas on a metric; replaces spec.replicas."
    )
    rollout: Rollout = sub_object(  # type: ignore[valid-type]
        Rollout,
        "How new versions roll out: Direct, or gated (Shadow, Canary) with analysis, "
        "automatic promotion or rollback (docs/rollouts.md).",
    )
    scheduling: Scheduling | None = Field(
        default=None,
        description="Node selection, affinity, topology spread, tolerations and priority.",
    )
    drift_monitor: DriftMonitor | None = Field(
        default=None, description="Input-drift monitoring and automatic retraining."
    )
    pod_metadata: pod.PodMetadata | None = Field(
        default=None,
        description="Extra labels and annotations of the Triton pods (e.g. cost allocation, "
        "service-mesh opt-outs). A key the operator sets with another value is refused.",
    )
    image_pull_secrets: list[pod.LocalObjectReference] | None = pod.IMAGE_PULL_SECRETS_FIELD
    volumes: list[pod.Volume] | None = pod.volumes_field("Triton", pod.SERVING_VOLUMES)


class ServedVersion(ApiModel):
    """A model version the ready pods serve."""

    version: str = Field(max_length=64, description="The version.")


ModelDeploymentStatus = derive(
    a.ModelDeploymentStatus,
    "ModelDeploymentStatus",
    replace={
        "served_version": {
            "served_versions": (
                list[ServedVersion] | None,
                Field(
                    default=None,
                    max_length=a.MAX_LOADED_VERSIONS,
                    description="Model versions the ready pods serve, one entry per version "
                    "(several while a rollout is under way).",
                ),
            )
        }
    },
)


class ModelDeployment(ParsedObject):
    """A parsed v1beta1 ModelDeployment; `from_body` converts a v1alpha1 body first."""

    spec: ModelDeploymentSpec

    @classmethod
    def from_body(cls, body: Mapping[str, Any]) -> ModelDeployment:
        return super().from_body(edge(body))

    @property
    def model_name(self) -> str:
        return self.spec.model.name or self.metadata.name


ROOT_VALIDATIONS = a.ROOT_VALIDATIONS


def edge(body: Mapping[str, Any]) -> Mapping[str, Any]:
    """A body as v1beta1: a v1alpha1 one (or one with no apiVersion, as tests and
    templates write them) converted, where the operator's reading starts."""
    from ..conversion import V1BETA1, to_v1beta1, version_of  # conversion imports this module

    data = plain(body)
    if version_of(data) == V1BETA1:
        return data
    return to_v1beta1({**data, "apiVersion": f"{c.GROUP}/v1alpha1", "kind": c.MD_KIND})
