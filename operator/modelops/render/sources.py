"""How a storage URI from the spec is reached from inside the pod.

Remote URIs (s3, gs, https) and file:// paths are passed through. A pvc://
URI names a PersistentVolumeClaim, which a container can only read once it is
mounted; the pod mounts the claim read-only and the container gets a file://
URI into the mount, so the download code never needs to know about PVCs.
Writers (a TrainingJob's output) get the same translation on a read-write mount.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

PVC_SCHEME = "pvc://"


@dataclass(frozen=True)
class PodSource:
    """A URI as a container sees it, plus what the pod must mount for it."""

    uri: str
    volume: dict[str, Any] | None = None
    mount: dict[str, Any] | None = None


def pod_source(uri: str, *, volume_name: str, mount_path: str, read_only: bool = True) -> PodSource:
    """Translate a spec URI into what a container in the pod reads (or, with
    read_only=False, writes: a training job's output or checkpoints)."""
    if not uri.startswith(PVC_SCHEME):
        return PodSource(uri=uri)
    claim, _, path = uri[len(PVC_SCHEME) :].partition("/")
    inner = f"{mount_path}/{path}".rstrip("/") if path else mount_path
    return PodSource(
        uri=f"file://{inner}",
        volume={
            "name": volume_name,
            "persistentVolumeClaim": {"claimName": claim, "readOnly": read_only},
        },
        mount={"name": volume_name, "mountPath": mount_path, "readOnly": read_only},
    )
