"""The closed loop, as pure decisions: which version "latest" means, and
whether drift should start a TrainingJob now.

`version: latest` follows the TrainingJobs that name this ModelDeployment in
spec.modelDeploymentRef and write to the same storage: the highest
outputVersion of those that succeeded becomes the served version, so a
retrained model rolls out without anyone committing to Git (the choice is
recorded in status.desiredVersion / servedVersion, never in spec). Without
such a result the pods resolve "latest" themselves when they pull.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from modelops.api import constants as c
from modelops.api.conversion import BETA_FIELDS, to_v1alpha1
from modelops.api.modeldeployment import ModelDeployment

from .meta import owner_reference

LABEL_RETRAIN_OF = f"{c.GROUP}/retrain-of"
# Every unit the CRD patterns admit (api.base.GO_DURATION, api.rollout.DURATION):
# a value the API server accepted must never fail here at reconcile time.
_GO_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ns|us|ms|h|m|s)")
_UNIT_SECONDS = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 1e-3, "us": 1e-6, "ns": 1e-9}
# TrainingJob names are limited to 55 characters (its Job names add a suffix).
_TJ_NAME_LIMIT = 55


def parse_go_duration(text: str) -> timedelta:
    """'1h30m' -> 90 minutes (Go durations as the CRD patterns allow them, without µs)."""
    parts = _GO_DURATION_PART.findall(text)
    if not parts or "".join(n + u for n, u in parts) != text:
        raise ValueError(f"not a Go duration: {text!r}")
    return timedelta(seconds=sum(float(n) * _UNIT_SECONDS[u] for n, u in parts))


def _same_storage(a: str, b: str) -> bool:
    return a.rstrip("/") == b.rstrip("/")


def _phase(tj: Mapping[str, Any]) -> str | None:
    return (tj.get("status") or {}).get("phase")


def resolve_model_version(md: ModelDeployment, trainings: Sequence[Mapping[str, Any]]) -> str:
    """The version to roll out: the pinned one, or the newest trained result, or "latest"."""
    if md.spec.model.version != "latest":
        return md.spec.model.version
    versions = []
    for tj in trainings:
        output = ((tj.get("spec") or {}).get("output") or {}).get("storageUri", "")
        produced = (tj.get("status") or {}).get("outputVersion")
        succeeded = _phase(tj) == "Succeeded" and str(produced or "").isdigit()
        if succeeded and _same_storage(output, md.spec.model.storage_uri):
            versions.append(int(produced))
    return str(max(versions)) if versions else "latest"


def plan_retrain(
    md: ModelDeployment,
    *,
    drifted: bool,
    previous: Mapping[str, Any] | None,
    trainings: Sequence[Mapping[str, Any]],
    now: datetime,
) -> dict[str, Any] | None:
    """The TrainingJob to create now, or None.

    At most one retraining is in flight per ModelDeployment, and two are at
    least `cooldown` apart (counted from status.retrain.lastTriggeredTime).
    """
    monitor = md.spec.drift_monitor
    if not drifted or monitor is None or not monitor.enabled or monitor.retrain is None:
        return None
    ours = [t for t in trainings if _labels(t).get(LABEL_RETRAIN_OF) == md.name]
    if any(_phase(t) not in ("Succeeded", "Failed") for t in ours):
        return None
    last = (previous or {}).get("lastTriggeredTime")
    if last:
        since = now - datetime.fromisoformat(last.replace("Z", "+00:00"))
        if since < parse_go_duration(monitor.retrain.cooldown):
            return None
    count = int((previous or {}).get("count") or 0) + 1
    suffix = f"-retrain-{count}"
    name = md.name[: _TJ_NAME_LIMIT - len(suffix)].rstrip("-") + suffix
    spec = dict(monitor.retrain.training_job_template)
    spec["modelDeploymentRef"] = {"name": md.name}
    body = {
        "apiVersion": c.API_VERSION,
        "kind": c.TJ_KIND,
        "metadata": {
            "name": name,
            "namespace": md.namespace,
            "labels": {LABEL_RETRAIN_OF: md.name, c.LABEL_MANAGED_BY: c.MANAGED_BY},
            # Deleting the ModelDeployment also removes the retrainings it started.
            "ownerReferences": [owner_reference(md)],
        },
        "spec": spec,
    }
    carried = _beta_fields(md, body)
    if carried is not None:
        body["metadata"]["annotations"] = {BETA_FIELDS: carried}
    return body


def _beta_fields(md: ModelDeployment, body: Mapping[str, Any]) -> str | None:
    """The template's v1beta1-only fields (its pod controls), as the conversion's annotation
    of the v1alpha1 TrainingJob written here; the API server (or the operator's intake)
    restores them. None when the template has none."""
    template = md.pod_controls.training_job_template
    if template is None:
        return None
    beta = {
        **body,
        "apiVersion": f"{c.GROUP}/v1beta1",
        "spec": {**template, "modelDeploymentRef": {"name": md.name}},
    }
    annotations = to_v1alpha1(beta).get("metadata", {}).get("annotations") or {}
    return annotations.get(BETA_FIELDS)


def _labels(obj: Mapping[str, Any]) -> Mapping[str, str]:
    return (obj.get("metadata") or {}).get("labels") or {}
