"""The autoscaler of the Triton Deployment: an HPA or a KEDA ScaledObject.

Both target the Deployment (not the ModelDeployment's scale subresource): the
autoscaler then writes the Deployment's replicas, and the user's spec, which
GitOps owns, is never changed behind Git's back.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from modelops.api.modeldeployment import Autoscaling, ModelDeployment

from .deployment import TRITON_CONTAINER
from .meta import as_md, child_metadata
from .metrics import METRICS, keda_query
from .wake import wake_enabled, wake_trigger

# Where KEDA's Prometheus trigger sends its queries unless the operator is
# configured otherwise (the prometheus-operator's default Service name).
DEFAULT_PROMETHEUS_ADDRESS = "http://prometheus-operated.monitoring.svc:9090"


def render_autoscaler(
    md: ModelDeployment | Mapping[str, Any],
    *,
    prometheus_address: str = DEFAULT_PROMETHEUS_ADDRESS,
    deployment: str | None = None,
    activator_url: str | None = None,
) -> dict[str, Any] | None:
    """HorizontalPodAutoscaler or ScaledObject `<name>`, or None without autoscaling.

    deployment: the Deployment it scales (the stable slot's; default `<name>`).
    activator_url: the wake activator; a ScaledObject that may go to zero then
    also follows the requests it holds (render/wake.py)."""
    md = as_md(md)
    scaling = md.spec.autoscaling
    if scaling is None:
        return None
    if scaling.engine == "keda":
        scaled = _scaled_object(md, scaling, prometheus_address, deployment)
        if activator_url and wake_enabled(md):
            scaled["spec"]["triggers"].append(wake_trigger(md, activator_url))
        return scaled
    return _hpa(md, scaling, deployment)


def _target_ref(md: ModelDeployment, deployment: str | None) -> dict[str, str]:
    return {"apiVersion": "apps/v1", "kind": "Deployment", "name": deployment or md.name}


def _hpa(md: ModelDeployment, scaling: Autoscaling, deployment: str | None) -> dict[str, Any]:
    metric = METRICS[scaling.metric.type]
    target = scaling.metric.target
    if metric.pod_metric is None:
        # The Triton container's CPU only: the sidecar's CPU would dilute it.
        hpa_metric: dict[str, Any] = {
            "type": "ContainerResource",
            "containerResource": {
                "name": "cpu",
                "container": TRITON_CONTAINER,
                "target": {"type": "Utilization", "averageUtilization": target},
            },
        }
    else:
        # Pods metrics come from prometheus-adapter (see metrics.py); the HPA
        # averages them over the pods and compares with the target.
        hpa_metric = {
            "type": "Pods",
            "pods": {
                "metric": {"name": metric.pod_metric},
                "target": {"type": "AverageValue", "averageValue": str(target)},
            },
        }
    spec: dict[str, Any] = {
        "scaleTargetRef": _target_ref(md, deployment),
        "minReplicas": scaling.min_replicas,
        "maxReplicas": scaling.max_replicas,
        "metrics": [hpa_metric],
    }
    behavior = _behavior(scaling)
    if behavior:
        spec["behavior"] = behavior
    return {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": child_metadata(md),
        "spec": spec,
    }


def _behavior(scaling: Autoscaling) -> dict[str, Any] | None:
    """The HPA's `behavior`, or None to keep Kubernetes' defaults.

    Only the scale-down stabilization window is configurable; the scale-down
    policies themselves stay at the defaults (remove up to all surplus replicas
    per period once the window allows it).
    """
    if scaling.scale_down_stabilization_seconds is None:
        return None
    return {"scaleDown": {"stabilizationWindowSeconds": scaling.scale_down_stabilization_seconds}}


def _scaled_object(
    md: ModelDeployment, scaling: Autoscaling, prometheus_address: str, deployment: str | None
) -> dict[str, Any]:
    metric = METRICS[scaling.metric.type]
    target = str(scaling.metric.target)
    if metric.keda_query is None:
        trigger: dict[str, Any] = {
            "type": "cpu",
            "metricType": "Utilization",
            "metadata": {"value": target, "containerName": TRITON_CONTAINER},
        }
    else:
        trigger = {
            "type": "prometheus",
            "metricType": metric.keda_metric_type,
            "metadata": {
                "serverAddress": prometheus_address,
                "query": keda_query(metric, md.namespace, md.name),
                "threshold": target,
            },
        }
    spec: dict[str, Any] = {
        "scaleTargetRef": _target_ref(md, deployment),
        "minReplicaCount": scaling.min_replicas,
        "maxReplicaCount": scaling.max_replicas,
        "triggers": [trigger],
    }
    if scaling.cooldown_seconds is not None:
        spec["cooldownPeriod"] = scaling.cooldown_seconds
    behavior = _behavior(scaling)
    if behavior:
        # KEDA passes this through to the HPA it creates.
        spec["advanced"] = {"horizontalPodAutoscalerConfig": {"behavior": behavior}}
    return {
        "apiVersion": "keda.sh/v1alpha1",
        "kind": "ScaledObject",
        "metadata": child_metadata(md),
        "spec": spec,
    }
