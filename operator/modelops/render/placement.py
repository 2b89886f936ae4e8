"""Where a GPU pod may run and what it asks for: shared by every kind that runs GPU pods.

Both ModelDeployment and TrainingJob carry the same `resources` and
`scheduling` types, so the node selector, tolerations and container
resources come out the same way for Triton replicas and training nodes.
"""

from __future__ import annotations

from typing import Any

from modelops.api.modeldeployment import Resources, Scheduling

GPU_RESOURCE = "nvidia.com/gpu"
GPU_PRODUCT_LABEL = "nvidia.com/gpu.product"


def node_selector(resources: Resources, scheduling: Scheduling | None) -> dict[str, str]:
    """The user's node selector plus the GPU product label, sorted for stable output."""
    selector: dict[str, str] = {}
    if scheduling is not None and scheduling.node_selector:
        selector.update(scheduling.node_selector)
    gpu = resources.gpu
    if gpu.product and gpu.count > 0:
        selector[GPU_PRODUCT_LABEL] = gpu.product
    return dict(sorted(selector.items()))


def tolerations(resources: Resources, scheduling: Scheduling | None) -> list[dict[str, Any]]:
    """The GPU taint toleration (when GPUs are requested) plus the user's tolerations."""
    out: list[dict[str, Any]] = []
    if resources.gpu.count > 0:
        # GPU nodes are commonly tainted nvidia.com/gpu:NoSchedule to keep
        # CPU-only pods off them (the GPU operator and cloud GPU pools do this).
        out.append({"key": GPU_RESOURCE, "operator": "Exists", "effect": "NoSchedule"})
    if scheduling is not None:
        out += [t.to_dict() for t in scheduling.tolerations or []]
    return out


def container_resources(resources: Resources) -> dict[str, Any]:
    """requests == limits for CPU and memory (Guaranteed QoS), GPUs as a limit."""
    requests = {"cpu": str(resources.cpu), "memory": str(resources.memory)}
    limits = dict(requests)
    if resources.gpu.count > 0 and not resources.gpu.dra:  # DRA: a claim (render/dra.py)
        # Extended resources are requested through limits; the API server
        # copies the value into requests.
        limits[GPU_RESOURCE] = str(resources.gpu.count)
    return {"requests": requests, "limits": limits}
