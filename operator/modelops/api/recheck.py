"""The CRD's safety rules, checked again in Python before anything is rendered.

The API server enforces these with CEL at apply time, but an object can be
stored without them: created before the rule was added to the CRD (objects
are not re-validated when the CRD changes), or written while validation was
off (an older CRD, a restore from backup). Rendering such an object would,
for example, point Triton at another model repository or override the GPU
assignment, so the reconcilers call :func:`violations` first and refuse the
object with ``Stalled`` (reason InvalidSpec) naming the field, rendering
nothing.

Pure: the same constants the CEL rules are generated from, no I/O.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from . import constants as c
from .modeldeployment import GpuResources, ModelDeployment
from .trainingjob import TrainingJob
from .types import EnvVar

Violation = tuple[str, str]  # (field path, message)

_TRITON_FLAG = re.compile(rf"^--({'|'.join(map(re.escape, c.RESERVED_TRITON_FLAGS))})(=|$)")
_TRAINER_FLAG = re.compile(rf"^--({'|'.join(map(re.escape, c.RESERVED_TRAINER_FLAGS))})(=|$)")
# The same expressions as NO_USERINFO_RULE / NO_QUERY_RULE in api.base.
_USERINFO = re.compile(r"^[a-z0-9]+://[^/?#]*@", re.IGNORECASE)


def _reserved_args(
    args: Sequence[str] | None, pattern: re.Pattern[str], path: str, who: str
) -> list[Violation]:
    return [
        (f"{path}[{i}]", f"{arg.split('=', 1)[0]} is set by the operator ({who}); remove it")
        for i, arg in enumerate(args or [])
        if pattern.search(arg)
    ]


def _reserved_env(
    env: Sequence[EnvVar] | None,
    names: Sequence[str],
    prefixes: Sequence[str],
    path: str,
) -> list[Violation]:
    out = []
    for i, var in enumerate(env or []):
        if var.name in names or var.name.startswith(tuple(prefixes)):
            out.append((f"{path}[{i}].name", f"{var.name} is reserved by the operator"))
    return out


def _uri(uri: str | None, path: str, *, allow_query: bool = False) -> list[Violation]:
    if not uri:
        return []
    if _USERINFO.search(uri):
        return [(path, "URIs must not carry credentials (user:password@host); use a Secret")]
    if not allow_query and ("?" in uri or "#" in uri):
        return [(path, "storage URIs take no query string or fragment")]
    return []


def _gpu(gpu: GpuResources, path: str) -> list[Violation]:
    """DRA without alternatives would render a pod with no GPU at all (and no error)."""
    if gpu.allocation == "DRA" and gpu.count > 0 and not gpu.alternatives:
        return [(f"{path}.alternatives", "allocation DRA needs at least one alternative")]
    return []


def md_violations(md: ModelDeployment) -> list[Violation]:
    spec = md.spec
    out = _gpu(spec.resources.gpu, "spec.resources.gpu")
    out += _reserved_args(spec.runtime.args, _TRITON_FLAG, "spec.runtime.args", "tritonserver")
    out += _reserved_env(
        spec.runtime.env, c.RESERVED_ENV_NAMES, (c.RESERVED_ENV_PREFIX,), "spec.runtime.env"
    )
    out += _uri(spec.model.storage_uri, "spec.model.storageUri")
    drift = spec.drift_monitor
    if drift is not None and drift.reference is not None:
        out += _uri(drift.reference.uri, "spec.driftMonitor.reference.uri")
    return out


def tj_violations(tj: TrainingJob) -> list[Violation]:
    spec = tj.spec
    out = _gpu(spec.resources.gpu, "spec.resources.gpu")
    out += _reserved_args(spec.args, _TRAINER_FLAG, "spec.args", "modelops train")
    out += _reserved_env(
        spec.env,
        c.RESERVED_TRAINING_ENV_NAMES,
        c.RESERVED_TRAINING_ENV_PREFIXES,
        "spec.env",
    )
    out += _uri(
        spec.dataset.uri, "spec.dataset.uri", allow_query=spec.dataset.uri.startswith("synthetic:")
    )
    out += _uri(spec.output.storage_uri, "spec.output.storageUri")
    if spec.output.storage_uri.startswith("https://"):
        out.append(("spec.output.storageUri", "https:// is read-only"))
    if spec.checkpoints is not None:
        out += _uri(spec.checkpoints.storage_uri, "spec.checkpoints.storageUri")
    return out


def violations(obj: ModelDeployment | TrainingJob) -> list[Violation]:
    """(field path, message) for every CRD safety rule ``obj`` breaks; empty when valid."""
    if isinstance(obj, ModelDeployment):
        return md_violations(obj)
    return tj_violations(obj)


def describe(found: Sequence[Violation]) -> str:
    """One message for a condition: every field and what is wrong with it."""
    text = "; ".join(f"{path}: {message}" for path, message in found)
    return (
        f"{text} (the object was stored without the CRD's validation, e.g. before a CRD "
        "upgrade; fix the spec)"
    )
