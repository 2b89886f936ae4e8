"""The sidecars' traffic settings: a ConfigMap the pods mount.

The stable pods' sidecars read `traffic.json` to know whether to mirror a
share of requests to the candidate (Shadow) or let it answer a share of them
(Canary), where the candidate is, and how to compare answers. A ConfigMap
(rather than a call to every sidecar) keeps the setting declarative: it is
a child like the others, healed when changed, visible with kubectl, and a
restarted sidecar reads it again. The kubelet refreshes mounted ConfigMaps
within its sync period (about a minute), which bounds how fast a step's
traffic change reaches the pods; analysis only counts what the sidecars
report, so the lag delays a step but never skews it.

Pure: the rendered object only.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from modelops.api import constants as c
from modelops.api.modeldeployment import ModelDeployment

from .meta import child_metadata
from .slots import candidate_service_name, traffic_config_name


def traffic_settings(
    md: ModelDeployment,
    *,
    candidate_version: str | None,
    mirror_percent: int,
    canary_weight: int,
    epoch: str | None = None,
) -> dict[str, Any]:
    """traffic.json: {} without a candidate; the candidate's address and shares otherwise.
    epoch: the attempt (status.rollout.epoch), so a version rolled back and tried again
    under the same number starts its figures from zero; the version when not given."""
    if candidate_version is None:
        return {}
    host = f"{candidate_service_name(md.name)}.{md.namespace}.svc"
    return {
        "epoch": epoch or candidate_version,
        "candidate": {
            "version": candidate_version,
            "http": f"http://{host}:{c.TRITON_HTTP_PORT}",
            "grpc": f"{host}:{c.TRITON_GRPC_PORT}",
        },
        "mirrorPercent": mirror_percent,
        "canaryWeight": canary_weight,
        "agreement": md.spec.rollout.analysis.agreement.to_dict(),
    }


def render_traffic_config(md: ModelDeployment, settings: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": child_metadata(md, traffic_config_name(md.name)),
        "data": {c.TRAFFIC_FILE_KEY: json.dumps(dict(settings), sort_keys=True)},
    }
