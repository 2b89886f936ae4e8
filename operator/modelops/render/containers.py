"""Pieces every container of the serving pod shares."""

from __future__ import annotations

from typing import Any

from modelops.api.modeldeployment import ModelDeployment
from modelops.api.types import SecretReference

# The NGC tritonserver image ships user `triton-server` with uid/gid 1000; the
# operator image must run as a non-root uid as well (any uid works for it).
RUN_AS_USER = 1000

# Where a container writes its outcome for the kubelet to put into
# status.containerStatuses[].lastState.terminated.message; the operator
# copies it into the ModelDeployment's conditions.
TERMINATION_LOG = "/dev/termination-log"


# Every container's root filesystem is read-only; what a process must write
# goes to emptyDirs: its own /tmp (one emptyDir, a subPath per container, so
# containers do not see each other's files), with HOME pointing there for the
# caches libraries keep under ~ (torch, CUDA's JIT cache ~/.nv, pip, Triton's
# python backend). Models, references and checkpoints have volumes of their own.
SCRATCH_VOLUME = "scratch"
SCRATCH_DIR = "/tmp"


def security_context() -> dict[str, Any]:
    """Pod Security "restricted", stated per container so each one passes on its own,
    plus a read-only root filesystem (see SCRATCH_VOLUME for what stays writable)."""
    return {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"]},
        "runAsNonRoot": True,
        "runAsUser": RUN_AS_USER,
        "runAsGroup": RUN_AS_USER,
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def scratch_volume() -> dict[str, Any]:
    return {"name": SCRATCH_VOLUME, "emptyDir": {}}


def with_scratch(container: dict[str, Any]) -> dict[str, Any]:
    """``container`` with its writable /tmp and HOME there (unless the user set HOME)."""
    mounts = list(container.get("volumeMounts") or [])
    mounts.append({"name": SCRATCH_VOLUME, "mountPath": SCRATCH_DIR, "subPath": container["name"]})
    env = list(container.get("env") or [])
    if not any(e.get("name") == "HOME" for e in env):
        # First: the operator's defaults precede the user's variables.
        env.insert(0, {"name": "HOME", "value": SCRATCH_DIR})
    return {**container, "env": env, "volumeMounts": mounts}


def pod_security_context() -> dict[str, Any]:
    return {
        "runAsNonRoot": True,
        "runAsUser": RUN_AS_USER,
        "runAsGroup": RUN_AS_USER,
        "fsGroup": RUN_AS_USER,
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def fixed_resources(cpu: str, memory: str) -> dict[str, Any]:
    # Requests equal limits so that the pod keeps Guaranteed QoS (least likely
    # to be evicted, eligible for exclusive CPUs under the static CPU manager).
    amounts = {"cpu": cpu, "memory": memory}
    return {"requests": dict(amounts), "limits": dict(amounts)}


def secret_env(ref: SecretReference | None) -> list[dict[str, Any]] | None:
    """envFrom of a storage credentials Secret: its keys become environment variables."""
    return [{"secretRef": {"name": ref.name}}] if ref else None


def credentials(md: ModelDeployment) -> list[dict[str, Any]] | None:
    """envFrom of the storage credentials Secret, for download containers only."""
    return secret_env(md.spec.model.credentials_secret_ref)


def http_probe(path: str, port: str, *, period: int, failures: int) -> dict[str, Any]:
    return {
        "httpGet": {"path": path, "port": port},
        "periodSeconds": period,
        "failureThreshold": failures,
        "timeoutSeconds": 5,
    }
