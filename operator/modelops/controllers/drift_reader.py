"""Reads the drift summary the sidecars publish, for the ModelDeployment status.

Least privilege: the operator pulls `GET /drift` from each ready pod's admin
port (plain pod-to-pod HTTP, no RBAC at all) instead of giving every serving
pod a ServiceAccount that may patch ModelDeployment status. The summaries of
all ready pods are merged: the worst feature score wins, and the model counts
as drifted when any replica's window says so.

`MODELOPS_DRIFT_URL` overrides the address template ({ip}, {port},
{namespace}, {name}, {pod}) — used where pod IPs are not routable from the
operator, e.g. the local test cluster whose pods are simulated while the
sidecar runs as a local process.
"""

from __future__ import annotations

import json
import logging
import os
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from modelops.api import constants as c
from modelops.api.modeldeployment import ModelDeployment
from modelops.render.pods import is_ready

log = logging.getLogger("modelops.drift")
DEFAULT_URL = "http://{ip}:{port}/drift"


@dataclass
class DriftReader:
    url_template: str = DEFAULT_URL
    timeout_s: float = 2.0
    # Pod events arrive far more often than drift windows close; polling each
    # ModelDeployment's sidecars at most this often keeps reconciles cheap.
    min_interval_s: float = 10.0
    _cache: dict[tuple[str, str], tuple[float, dict[str, Any] | None]] = field(default_factory=dict)

    @classmethod
    def from_environment(cls) -> DriftReader:
        return cls(url_template=os.environ.get("MODELOPS_DRIFT_URL", DEFAULT_URL))

    def __call__(
        self, md: ModelDeployment, pods: Sequence[Mapping[str, Any]]
    ) -> dict[str, Any] | None:
        key = (md.namespace, md.name)
        cached = self._cache.get(key)
        if cached and time.monotonic() - cached[0] < self.min_interval_s:
            return cached[1]
        result = self._read(md, pods)
        self._cache[key] = (time.monotonic(), result)
        return result

    def _read(
        self, md: ModelDeployment, pods: Sequence[Mapping[str, Any]]
    ) -> dict[str, Any] | None:
        summaries = []
        for pod in pods:
            ip = (pod.get("status") or {}).get("podIP")
            if not ip or not is_ready(pod):
                continue
            url = self.url_template.format(
                ip=ip,
                port=c.DRIFT_ADMIN_PORT,
                namespace=md.namespace,
                name=md.name,
                pod=pod["metadata"]["name"],
            )
            summary = self._fetch(url)
            if summary is not None:
                summaries.append(summary)
        return merge_summaries(summaries)

    def _fetch(self, url: str) -> dict[str, Any] | None:
        try:
            with urllib.request.urlopen(url, timeout=self.timeout_s) as response:
                return json.load(response)
        except (urllib.error.URLError, OSError, ValueError) as err:
            log.debug("drift summary from %s unavailable: %s", url, err)
            return None


def merge_summaries(summaries: Sequence[Mapping[str, Any]]) -> dict[str, Any] | None:
    """One drift result from several replicas' summaries (None when there are none)."""
    if not summaries:
        return None
    features: dict[str, float] = {}
    for summary in summaries:
        for name, score in _feature_scores(summary).items():
            features[name] = max(score, features.get(name, float("-inf")))
    drifted = [s for s in summaries if s.get("drifted")]
    since = sorted(str(s["since"]) for s in drifted if s.get("since"))
    merged: dict[str, Any] = {
        "score": max(float(s.get("score") or 0.0) for s in summaries),
        "drifted": bool(drifted),
        "features": features,
    }
    if since:
        merged["since"] = since[0]  # RFC 3339 UTC strings sort chronologically
    for key in ("method", "threshold"):
        if summaries[0].get(key) is not None:
            merged[key] = summaries[0][key]
    return merged


def _feature_scores(summary: Mapping[str, Any]) -> dict[str, float]:
    raw = summary.get("features") or {}
    if isinstance(raw, Mapping):
        return {str(k): float(v["score"] if isinstance(v, Mapping) else v) for k, v in raw.items()}
    return {str(f["name"]): float(f["score"]) for f in raw if "name" in f}
