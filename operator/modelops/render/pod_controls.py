"""The user's pod controls (api/pod_controls.py) applied to a pod template the operator rendered.

Serving pods (every slot: stable and candidate) and training pods (master and
workers: one Job template) get them the same way, last, once the operator's
own template is complete, so that what the operator needs is known and can
win:

- pod level, for every container: podMetadata labels and annotations,
  imagePullSecrets (on the pod itself, so they work whichever ServiceAccount
  the pod runs as, the namespace's default included), volumes, affinity,
  topologySpreadConstraints (a constraint without a labelSelector counts this
  object's own pods);
- main container only (Triton, or the trainer): volumeMounts, the env the user
  wrote (the renderers put it there; literal and valueFrom alike) and
  cpuLimit. The drift sidecar handles untrusted inference traffic and the
  puller / reference fetcher hold the storage credentials: neither gets the
  user's mounts or variables (least privilege; they run the operator's code,
  which reads nothing of the user's).

The operator's own labels, annotations, volumes, mounts and variables win: a
user's entry that would replace or shadow one of them is refused
(`PodControlsCollision`, naming the field), never silently dropped, since a
volume or variable that quietly goes missing breaks the user's container in a
way no condition would explain. The planners turn the refusal into the
InvalidSpec condition and apply nothing. Keys the operator or the workload
controllers own (the `modelops.io/` prefix, the Deployment's pod-template-hash,
the Job controller's labels) are refused even where this template does not set
them yet, so a refusal never depends on the rollout's state.

Pure: dicts in, dicts out.
"""

from __future__ import annotations

import copy
import posixpath
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

from modelops.api import constants as c
from modelops.api.pod_controls import PodControls

# Label / annotation keys the workload controllers write on the pods they create.
CONTROLLER_KEYS = frozenset(
    {"pod-template-hash", "job-name", "controller-uid", "batch.kubernetes.io/job-name"}
)
CONTROLLER_PREFIXES = ("batch.kubernetes.io/",)


class PodControlsCollision(ValueError):
    """A pod control collides with what the operator sets; ``field`` names it."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field


def _owned_key(key: str) -> bool:
    """A key of the operator's prefix (modelops.io/...) or a workload controller's.
    Subdomains (e.g. sim.modelops.io/, which the test cluster's KWOK stages read) stay
    the user's: the operator writes none."""
    return (
        key.startswith(c.GROUP + "/")
        or key in CONTROLLER_KEYS
        or key.startswith(CONTROLLER_PREFIXES)
    )


def _merge_keys(ours: dict[str, str], theirs: Mapping[str, str], field: str) -> dict[str, str]:
    for key, value in sorted(theirs.items()):
        if _owned_key(key) or (key in ours and ours[key] != value):
            raise PodControlsCollision(
                f"{field}[{key}]", f"{key} is the operator's key on these pods; remove it"
            )
    return {**ours, **theirs}


def _overlaps(a: str, b: str) -> bool:
    """One path is the other or lies beneath it (a mount there would hide the other)."""
    a, b = posixpath.normpath(a), posixpath.normpath(b)
    return a == b or a.startswith(b.rstrip("/") + "/") or b.startswith(a.rstrip("/") + "/")


def _container(pod: dict[str, Any], name: str) -> dict[str, Any]:
    for container in pod.get("containers") or []:
        if container.get("name") == name:
            return container
    raise ValueError(f"no container {name} in the pod")  # a renderer's bug, not user input


def _volumes(pod: dict[str, Any], controls: PodControls) -> None:
    ours = {v["name"] for v in pod.get("volumes") or []}
    for i, volume in enumerate(controls.volumes):
        if volume["name"] in ours:
            raise PodControlsCollision(
                f"spec.volumes[{i}].name",
                f"{volume['name']} is a volume of the operator's in these pods; rename it",
            )
    if controls.volumes:
        pod["volumes"] = [*(pod.get("volumes") or []), *copy.deepcopy(controls.volumes)]


def _mounts(container: dict[str, Any], controls: PodControls) -> None:
    ours = [m["mountPath"] for m in container.get("volumeMounts") or []]
    for i, mount in enumerate(controls.volume_mounts):
        clash = next((p for p in ours if _overlaps(mount["mountPath"], p)), None)
        if clash is not None:
            raise PodControlsCollision(
                f"{controls.mounts_path}[{i}].mountPath",
                f"{mount['mountPath']} overlaps the operator's mount {clash} in container "
                f"{container['name']}; mount elsewhere",
            )
    if controls.volume_mounts:
        container["volumeMounts"] = [
            *(container.get("volumeMounts") or []),
            *copy.deepcopy(controls.volume_mounts),
        ]


def _env(container: dict[str, Any], controls: PodControls) -> None:
    """The renderers put the user's variables in; any name twice means one of them is
    also the operator's (the CRD refuses the reserved names it can list)."""
    counts = Counter(e.get("name") for e in container.get("env") or [])
    for i, var in enumerate(controls.env or []):
        if counts[var["name"]] > 1:
            raise PodControlsCollision(
                f"{controls.env_path}[{i}].name",
                f"{var['name']} is set by the operator in container {container['name']}",
            )


def _spread(
    constraints: Sequence[Mapping[str, Any]], own: Mapping[str, str]
) -> list[dict[str, Any]]:
    out = []
    for constraint in constraints:
        entry = copy.deepcopy(dict(constraint))
        # Unset, a constraint would count no pods at all (core/v1 semantics); the API
        # documents "this object's own pods".
        entry.setdefault("labelSelector", {"matchLabels": dict(own)})
        out.append(entry)
    return out


def apply_pod_controls(
    template: dict[str, Any],
    controls: PodControls,
    *,
    container: str,
    own_pods: Mapping[str, str],
) -> dict[str, Any]:
    """``template`` (a pod template: metadata and spec) with ``controls`` applied, in place
    and returned. container: the main container's name; own_pods: labels selecting
    this object's pods (the default selector of a topology spread constraint).
    Raises PodControlsCollision naming the field that collides."""
    meta = template.setdefault("metadata", {})
    pod = template["spec"]
    labels = _merge_keys(
        dict(meta.get("labels") or {}), controls.labels, f"{controls.metadata_path}.labels"
    )
    annotations = _merge_keys(
        dict(meta.get("annotations") or {}),
        controls.annotations,
        f"{controls.metadata_path}.annotations",
    )
    if labels:
        meta["labels"] = labels
    if annotations:
        meta["annotations"] = annotations
    _volumes(pod, controls)
    main = _container(pod, container)
    _mounts(main, controls)
    _env(main, controls)
    if controls.cpu_limit is not None:
        limits = main.setdefault("resources", {}).setdefault("limits", {})
        limits["cpu"] = controls.cpu_limit
    if controls.image_pull_secrets:
        pod["imagePullSecrets"] = copy.deepcopy(controls.image_pull_secrets)
    if controls.affinity:
        pod["affinity"] = copy.deepcopy(controls.affinity)
    if controls.topology_spread_constraints:
        pod["topologySpreadConstraints"] = _spread(controls.topology_spread_constraints, own_pods)
    return template
