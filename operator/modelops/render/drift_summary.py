"""One drift result from several replicas' `/drift` summaries. Pure.

The summaries of all owner-checked ready pods (render/evidence.py) are merged:
the worst feature score wins, and the model counts as drifted when any
replica's window says so.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any


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
        pairs = [(k, v.get("score") if isinstance(v, Mapping) else v) for k, v in raw.items()]
    else:
        pairs = [(f.get("name"), f.get("score")) for f in raw if isinstance(f, Mapping)]
    # A score the sidecar could not compute (null: no finite value) says nothing.
    return {str(k): float(v) for k, v in pairs if k is not None and isinstance(v, int | float)}


__all__ = ["merge_summaries"]
