"""The serving pod of a ModelDeployment with ``spec.rollout.placement: InPlace``. Pure.

What an in-place candidate needs from the pods that serve (modelops.commands.inplace,
modelops.drift.inplace_agent):

- Triton in explicit model control, loading only the served model at start
  (``--model-control-mode=explicit --load-model=<model>``): the candidate is
  loaded and unloaded through the repository API, and a candidate left on disk
  by a restart is never loaded by itself; readiness is the served model's
  (``/v2/models/<model>/ready``), not the server's;
- the sidecar runs the in-place agent: the model repository mounted writable,
  the model's storage URI and the store's credentials (as the init container
  has them), the pull settings the init container applies (so a candidate gets
  the same runtime settings as the stable version), Triton's metrics URL (GPU
  memory for the fit check).

- the init container pulls the version the traffic file names as ``served`` when
  it names one (``--served-version-file``, the traffic ConfigMap mounted): after an
  in-place promotion the template keeps its version (render/inplace.py,
  pin_template), so a pod that starts then starts on the promoted version, and one
  that starts after a rolled-back promotion on the stable one.

Only the placement changes the pod: a ModelDeployment without it renders as before.
"""

from __future__ import annotations

import json
import posixpath
from typing import Any

from modelops.api import constants as c
from modelops.api.modeldeployment import ModelDeployment

from .containers import credentials


def runtime_settings(md: ModelDeployment) -> str:
    """The init container's pull settings as the agent's ``--candidate-runtime`` JSON."""
    runtime = md.spec.runtime
    doc: dict[str, Any] = {
        "format": md.spec.model.format,
        "instancesPerGpu": runtime.instances_per_gpu,
        "gpus": md.spec.resources.gpu.count,
    }
    if runtime.max_batch_size is not None:
        doc["maxBatchSize"] = runtime.max_batch_size
    if runtime.dynamic_batching is not None:
        doc["maxQueueDelayMicroseconds"] = runtime.dynamic_batching.max_queue_delay_microseconds
    return json.dumps(doc, sort_keys=True, separators=(",", ":"))


def apply(
    md: ModelDeployment,
    triton: dict[str, Any],
    sidecar: dict[str, Any],
    *,
    repository: str,
    source_mount: dict[str, Any] | None,
) -> None:
    """Turn the rendered Triton and sidecar containers into in-place ones (in place)."""
    triton["args"] = [a for a in triton["args"] if not a.startswith("--model-control-mode=")] + [
        "--model-control-mode=explicit",
        f"--load-model={md.model_name}",
    ]
    # Ready means the served model is ready. Not /v2/health/ready: in explicit mode Triton
    # reports the server not ready for good once any model was unloaded or failed to
    # load, which every in-place promotion and rollback does to the candidate
    # (tests/drift/test_inplace_rollout.py checks both paths on a real Triton).
    # (Model names are URL-safe: spec.model.name's pattern, or a DNS label.)
    ready = f"/v2/models/{md.model_name}/ready"
    for container in (triton, sidecar):
        probe = container.get("readinessProbe") or {}
        if "httpGet" in probe:
            container["readinessProbe"] = {**probe, "httpGet": {**probe["httpGet"], "path": ready}}
    args = [
        "--model-repository", repository,
        "--model-name", md.model_name,
        "--model-uri", md.spec.model.storage_uri,
        "--triton-metrics", f"http://127.0.0.1:{c.TRITON_METRICS_PORT}/metrics",
        "--candidate-runtime", runtime_settings(md),
    ]  # fmt: skip
    if not md.spec.model.verify_checksums:
        args.append("--allow-unverified")
    sidecar["args"] = [*sidecar["args"], *args]
    mounts = [{"name": "models", "mountPath": repository}]
    if source_mount:
        mounts.append(source_mount)
    sidecar["volumeMounts"] = [*sidecar.get("volumeMounts", []), *mounts]
    env_from = credentials(md)
    if env_from:
        sidecar["envFrom"] = [*sidecar.get("envFrom", []), *env_from]


def apply_to_pull(pull: dict[str, Any], *, traffic_volume: str) -> None:
    """The init container reads the served version from the projected traffic file
    (in place). The kubelet mounts every volume before the first init container runs."""
    path = posixpath.join(c.TRAFFIC_MOUNT_DIR, c.TRAFFIC_FILE_KEY)
    pull["args"] = [*pull["args"], "--served-version-file", path]
    mount = {"name": traffic_volume, "mountPath": c.TRAFFIC_MOUNT_DIR, "readOnly": True}
    pull["volumeMounts"] = [*pull.get("volumeMounts", []), mount]


__all__ = ["apply", "apply_to_pull", "runtime_settings"]
