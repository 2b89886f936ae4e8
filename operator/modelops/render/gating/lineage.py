"""Lineage: where a served version came from, as status.history entries.

TrainingJobs are garbage-collected (ttlSecondsAfterFinished); the history
entry keeps what an SRE needs to answer "which model serves, where did it come
from, who trained it on what, and why was it promoted" after they are gone:
the TrainingJob's name and uid, its dataset URI, a digest of its
hyperparameters, its reported metrics, the version's checksum digest, and the
outcome with its reason. Entries are camelCase dicts as the API server stores
them (modelops.api.rollout.HistoryEntry).
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from modelops.api.rollout import MAX_HISTORY, MAX_METRICS

from ..pods import format_time


def digest(data: bytes) -> str:
    """sha256:<hex> of some bytes (the form status carries digests in)."""
    return "sha256:" + hashlib.sha256(data).hexdigest()


def hyperparameters_digest(hyperparameters: Mapping[str, Any] | None) -> str:
    """Digest of a hyperparameter map, independent of key order: two runs with the same
    settings have the same digest whatever order their YAML listed them in."""
    canonical = json.dumps(dict(hyperparameters or {}), sort_keys=True, separators=(",", ":"))
    return digest(canonical.encode())


def manifest_digest(sha256sums: bytes) -> str:
    """The version's checksum digest: sha256 of its SHA256SUMS manifest, which lists every
    file's own digest, so one value identifies the whole version's content."""
    return digest(sha256sums)


def source_from_training_job(body: Mapping[str, Any]) -> dict[str, Any]:
    """The `source` of a version a TrainingJob published (the TrainingJob object as read)."""
    meta = body.get("metadata") or {}
    spec = body.get("spec") or {}
    status = body.get("status") or {}
    ref: dict[str, Any] = {"name": meta.get("name", "")}
    if meta.get("uid"):
        ref["uid"] = meta["uid"]
    source: dict[str, Any] = {
        "kind": "TrainingJob",
        "trainingJob": ref,
        "hyperparametersDigest": hyperparameters_digest(spec.get("hyperparameters")),
    }
    dataset = (spec.get("dataset") or {}).get("uri")
    if dataset:
        source["datasetUri"] = dataset
    metrics = status.get("metrics")
    if metrics:
        # Bounded like TrainingJob.status.metrics; sorted so the entry is deterministic.
        source["metrics"] = {k: float(metrics[k]) for k in sorted(metrics)[:MAX_METRICS]}
    return source


# A version's metrics file, as the trainer writes it (modelops.trainer.metrics) and
# `modelops package-model --metrics` publishes it; read by the operator for the
# evalMetric gate when the lineage has no metrics for the stable version.
METRICS_FILE = "metrics.json"
MAX_METRICS_FILE_BYTES = 256 * 1024


def listed_digest(manifest: bytes, path: str) -> str | None:
    """The sha256 hex a SHA256SUMS manifest lists for ``path`` (None: not listed)."""
    for line in manifest.decode("utf-8", "replace").splitlines():
        digest_hex, _, name = line.strip().partition("  ")
        if name.lstrip("*") == path and len(digest_hex) == 64:
            return digest_hex.lower()
    return None


def recorded_metrics(manifest: bytes, data: bytes) -> dict[str, float] | None:
    """The metrics a version was published with: its ``metrics.json`` (the trainer's
    document, whose ``metrics`` holds the flat summary, or a flat ``{name: number}``),
    only when the version's manifest lists that file with this content (what the
    manifest seals is what was judged), at most MAX_METRICS_FILE_BYTES, numbers only,
    at most MAX_METRICS names. None when any of that does not hold."""
    if len(data) > MAX_METRICS_FILE_BYTES:
        return None
    if listed_digest(manifest, METRICS_FILE) != hashlib.sha256(data).hexdigest():
        return None
    try:
        document = json.loads(data)
    except ValueError:
        return None
    if not isinstance(document, dict):
        return None
    flat = document.get("metrics") if isinstance(document.get("metrics"), dict) else document
    out: dict[str, float] = {}
    for name in sorted(flat):
        value = flat[name]
        if isinstance(value, bool) or not isinstance(value, int | float):
            continue
        if isinstance(name, str) and 0 < len(name) <= 63 and math.isfinite(value):
            out[name] = float(value)
    return dict(list(out.items())[:MAX_METRICS]) or None


def with_recorded_metrics(
    source: Mapping[str, Any] | None, metrics: Mapping[str, float] | None
) -> dict[str, Any] | None:
    """A lineage source completed with the metrics its version was published with, when
    the source records none itself (a version published by hand or by a TrainingJob
    that is gone): what the evalMetric gate compares a candidate with."""
    if not metrics or (source and source.get("metrics")):
        return dict(source) if source is not None else None
    return {**(source or {"kind": "Latest"}), "metrics": dict(metrics)}


def pinned_source() -> dict[str, Any]:
    """The `source` of a version spec.model.version names."""
    return {"kind": "PinnedBySpec"}


def latest_source() -> dict[str, Any]:
    """The `source` of a version "latest" resolved to with no TrainingJob known for it
    (uploaded by another tool, or its TrainingJob is gone)."""
    return {"kind": "Latest"}


def history_entry(
    version: str,
    source: Mapping[str, Any],
    *,
    outcome: str,
    reason: str,
    now: datetime,
    checksum: str | None = None,
    serving_since: datetime | None = None,
    epoch: str | None = None,
) -> dict[str, Any]:
    """One status.history entry. outcome: Promoted, RolledBack or Superseded. checksum:
    the manifest digest of what was judged; epoch: the attempt whose figures judged it."""
    entry: dict[str, Any] = {"version": version, "source": dict(source)}
    if checksum:
        entry["checksum"] = checksum
    if epoch:
        entry["epoch"] = epoch
    if serving_since is not None:
        entry["servingSince"] = format_time(serving_since)
    entry["outcome"] = outcome
    entry["reason"] = reason[:1024]
    entry["decidedAt"] = format_time(now)
    return entry


def push(
    history: Sequence[Mapping[str, Any]] | None,
    entry: Mapping[str, Any],
    *,
    limit: int = MAX_HISTORY,
) -> list[dict[str, Any]]:
    """history with entry first, at most `limit` entries (the oldest fall off).

    Idempotent: when the newest entry already records this version with this
    outcome (a reconcile replayed after a restart), history is returned
    unchanged, so a decision taken twice is recorded once.
    """
    old = [dict(e) for e in history or []]
    if (
        old
        and old[0].get("version") == entry.get("version")
        and old[0].get("outcome") == entry.get("outcome")
    ):
        return old[:limit]
    return [dict(entry), *old][:limit]


def find(history: Sequence[Mapping[str, Any]] | None, version: str | None) -> dict | None:
    """The newest entry for a version, or None."""
    if version is None:
        return None
    for e in history or []:
        if e.get("version") == version:
            return dict(e)
    return None
