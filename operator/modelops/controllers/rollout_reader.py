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
from modelops.render.pods import is_ready

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
    # pod uid -> the versions its Triton loaded. Triton runs with model-control-mode
    # none: what a pod loaded at start never changes, so each pod is asked once.
    _loaded: dict[tuple[str, str], dict[str, list[str]]] = field(default_factory=dict)
    _failed: dict[tuple[str, str], dict[str, float]] = field(default_factory=dict)
    retry_s: float = 30.0

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
        self._loaded.pop((namespace, name), None)
        self._failed.pop((namespace, name), None)

    def loaded(
        self, namespace: str, name: str, model: str, pods: Sequence[Mapping[str, Any]]
    ) -> dict[str, list[str]]:
        """pod name -> the versions of ``model`` its Triton reports READY, for the ready
        pods that answered (from the sidecar's /rollout when the map names the pod,
        else Triton's repository index on the pod's http port)."""
        out: dict[str, list[str]] = {}
        known = self._loaded.get((namespace, name), {})
        failed = self._failed.get((namespace, name), {})
        kept: dict[str, list[str]] = {}  # pods that are gone are dropped here
        retry: dict[str, float] = {}
        now = time.monotonic()
        for pod in pods:
            meta = pod.get("metadata") or {}
            uid, pod_name = str(meta.get("uid") or ""), str(meta.get("name"))
            if uid in known:
                kept[uid] = out[pod_name] = known[uid]
                continue
            if not is_ready(pod) or now - failed.get(uid, -1e9) < self.retry_s:
                if uid in failed:
                    retry[uid] = failed[uid]
                continue
            versions = self._ask(namespace, pod_name, pod, model)
            if versions is None:
                retry[uid] = now
                continue
            kept[uid] = out[pod_name] = versions
        self._loaded[(namespace, name)] = kept
        self._failed[(namespace, name)] = retry
        return out

    def _ask(
        self, namespace: str, name: str, pod: Mapping[str, Any], model: str
    ) -> list[str] | None:
        if self.map_file is not None:
            base = self._mapping().get(f"{namespace}/{name}")
            summary = self._fetch(f"{base}/rollout") if base else None
            if summary is None:
                return None
            return sorted(str(v) for v in (summary.get("loaded") or {}).get(model) or [])
        ip = (pod.get("status") or {}).get("podIP")
        if not ip:
            return None
        index = self._post(f"http://{ip}:{c.TRITON_HTTP_PORT}/v2/repository/index")
        if not isinstance(index, list):
            return None
        return sorted(
            str(m.get("version"))
            for m in index
            if isinstance(m, dict) and m.get("name") == model and m.get("state") == "READY"
        )

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

    def _post(self, url: str) -> Any:
        request = urllib.request.Request(url, data=b"{}", method="POST")
        request.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_s) as response:
                return json.load(response)
        except (urllib.error.URLError, OSError, ValueError) as err:
            log.debug("repository index from %s unavailable: %s", url, err)
            return None

    def _fetch(self, url: str) -> dict[str, Any] | None:
        try:
            with urllib.request.urlopen(url, timeout=self.timeout_s) as response:
                data = json.load(response)
        except (urllib.error.URLError, OSError, ValueError) as err:
            log.debug("rollout figures from %s unavailable: %s", url, err)
            return None
        return data if isinstance(data, dict) else None
