"""Reads the rollout figures the sidecars publish while a candidate runs.

Each serving pod's sidecar answers `GET /rollout` on its admin port with its
counters for the current candidate (requests, errors, latency buckets, and on
the stable side mirrored / agreed counts); the pure layer merges them
(render/gating/observe.py). Like the drift summary, they are pulled pod to
pod, so serving pods need no ServiceAccount.

Addresses: `http://{ip}:{port}` by default. Where pod IPs lead nowhere (the
local test cluster simulates its pods while the sidecars run as local
processes), `MODELOPS_SIDECAR_MAP` names a JSON file mapping
"namespace/pod" to a base URL; it is read again when it changes.
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
from pathlib import Path
from typing import Any

from modelops.api import constants as c

log = logging.getLogger("modelops.rollout")


@dataclass
class RolloutReader:
    map_file: Path | None = None
    timeout_s: float = 2.0
    # Analysis looks at figures every 15 s; pod events come far more often.
    min_interval_s: float = 5.0
    _cache: dict[tuple[str, str], tuple[float, dict[str, dict[str, Any]]]] = field(
        default_factory=dict
    )
    _map: tuple[float, dict[str, str]] = (0.0, {})

    @classmethod
    def from_environment(cls) -> RolloutReader:
        path = os.environ.get("MODELOPS_SIDECAR_MAP")
        return cls(map_file=Path(path) if path else None)

    def __call__(
        self, namespace: str, name: str, pods: Sequence[Mapping[str, Any]]
    ) -> dict[str, dict[str, Any]]:
        """pod name -> its sidecar's /rollout summary (pods that did not answer are left
        out)."""
        key = (namespace, name)
        cached = self._cache.get(key)
        if cached and time.monotonic() - cached[0] < self.min_interval_s:
            return cached[1]
        out: dict[str, dict[str, Any]] = {}
        for pod in pods:
            meta = pod.get("metadata") or {}
            base = self._base_url(namespace, str(meta.get("name")), pod)
            if base is None:
                continue
            summary = self._fetch(f"{base}/rollout")
            if summary is not None:
                out[str(meta.get("name"))] = summary
        self._cache[key] = (time.monotonic(), out)
        return out

    def forget(self, namespace: str, name: str) -> None:
        self._cache.pop((namespace, name), None)

    def _base_url(self, namespace: str, pod_name: str, pod: Mapping[str, Any]) -> str | None:
        if self.map_file is not None:
            return self._mapping().get(f"{namespace}/{pod_name}")
        ip = (pod.get("status") or {}).get("podIP")
        return f"http://{ip}:{c.DRIFT_ADMIN_PORT}" if ip else None

    def _mapping(self) -> dict[str, str]:
        assert self.map_file is not None
        try:
            mtime = self.map_file.stat().st_mtime
        except OSError:
            return {}
        if mtime != self._map[0]:
            try:
                self._map = (mtime, dict(json.loads(self.map_file.read_text())))
            except (OSError, ValueError) as err:
                log.warning("MODELOPS_SIDECAR_MAP %s unreadable: %s", self.map_file, err)
        return self._map[1]

    def _fetch(self, url: str) -> dict[str, Any] | None:
        try:
            with urllib.request.urlopen(url, timeout=self.timeout_s) as response:
                data = json.load(response)
        except (urllib.error.URLError, OSError, ValueError) as err:
            log.debug("rollout figures from %s unavailable: %s", url, err)
            return None
        return data if isinstance(data, dict) else None
