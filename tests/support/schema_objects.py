"""Seeded random objects drawn from a CRD version's structural schema.

hypothesis is not in the project's environment, so the round-trip properties
use this generator instead: every optional field is present or absent at
random, enums, bounds, list and map sizes come from the schema, and the
strings a conversion interprets (durations, versions, images) come from
tables of valid spellings, including the awkward ones (1h0m5s, "3, 4", a
former default image). A failure prints the seed, which replays it.
"""

from __future__ import annotations

import random
import re
from typing import Any

from modelops.api import constants as c

_DURATION_UNITS = ("h", "m", "s", "ms")


def duration(rng: random.Random, units: tuple[str, ...] = _DURATION_UNITS) -> str:
    parts = rng.sample(units, rng.randint(1, min(3, len(units))))
    order = [u for u in ("h", "m", "s", "ms", "us") if u in parts]
    text = "".join(f"{rng.randint(0, 90)}{u}" for u in order)
    return text if rng.random() < 0.9 else f"{rng.randint(0, 9)}.{rng.randint(1, 9)}{order[0]}"


def _string(rng: random.Random, name: str, node: dict[str, Any]) -> str:
    pattern = node.get("pattern", "")
    if "(ns|us|ms|s|m|h)" in pattern or "(ms|s|m|h)" in pattern or "(h|m|s|ms" in pattern:
        units = ("h", "m", "s", "ms", "us") if "us" in pattern else _DURATION_UNITS
        return duration(rng, units)
    if name == "servedVersion":
        return rng.choice(["3", "3,4", "3, 4", "", "7,8,9", " 5"])
    if name == "image":
        return rng.choice(
            [*c.FORMER_DEFAULT_TRITON_IMAGES, *c.FORMER_DEFAULT_TRAINER_IMAGES, "repo/img:1"]
        )
    if name in ("version", "promote", "abort"):
        return rng.choice(["latest", "1", "42"])
    if node.get("format") == "date-time":
        return "2026-12-07T07:00:00Z"
    if pattern.startswith("^(s3|gs|https|pvc|file)") or name in ("storageUri", "uri"):
        return f"s3://bucket/m{rng.randint(0, 9)}"
    size = rng.randint(1, 8)
    text = "".join(rng.choice("abcdefgh0123") for _ in range(size))
    return "a" + text if not re.match(r"[a-z]", text) else text


def sample(rng: random.Random, node: dict[str, Any], name: str = "", depth: int = 0) -> Any:
    """One value for a structural schema node."""
    if "enum" in node:
        return rng.choice(node["enum"])
    if node.get("x-kubernetes-int-or-string"):
        return rng.choice([rng.randint(0, 5), "25%", "500m", "2"])
    kind = node.get("type")
    if kind == "integer":
        lo = int(node.get("minimum", 0))
        hi = int(min(node.get("maximum", lo + 5000), lo + 100_000))
        return rng.randint(lo, hi)
    if kind == "number":
        lo = float(node.get("minimum", 0))
        return round(rng.uniform(lo + 0.001, min(float(node.get("maximum", lo + 10)), lo + 10)), 3)
    if kind == "boolean":
        return rng.random() < 0.5
    if kind == "string":
        return _string(rng, name, node)
    if kind == "array":
        count = rng.randint(0 if depth else 1, 3)
        items = [sample(rng, node["items"], name, depth + 1) for _ in range(count)]
        keys = node.get("x-kubernetes-list-map-keys")
        if keys:  # a map list: one entry per key
            seen: dict[Any, Any] = {}
            for item in items:
                seen.setdefault(tuple(item.get(k) for k in keys), item)
            items = list(seen.values())
        return items
    if "properties" in node:
        out: dict[str, Any] = {}
        required = set(node.get("required", []))
        for key, sub in node["properties"].items():
            if key in required or rng.random() < (0.6 if depth < 4 else 0.3):
                out[key] = sample(rng, sub, key, depth + 1)
        return out
    if isinstance(node.get("additionalProperties"), dict):
        return {
            f"k{i}": sample(rng, node["additionalProperties"], name, depth + 1)
            for i in range(rng.randint(0, 3))
        }
    if node.get("x-kubernetes-preserve-unknown-fields"):
        return {"free": rng.choice(["x", 1, True, {"nested": [1, 2]}])}
    return {}


def custom_object(
    rng: random.Random, schema: dict[str, Any], api_version: str, kind: str
) -> dict[str, Any]:
    """A whole object (apiVersion, kind, metadata, spec, status) of one CRD version."""
    obj: dict[str, Any] = {
        "apiVersion": api_version,
        "kind": kind,
        "metadata": {"name": f"obj-{rng.randint(0, 10**6)}", "namespace": "ns"},
        "spec": sample(rng, schema["properties"]["spec"], "spec"),
    }
    if rng.random() < 0.3:
        obj["metadata"]["annotations"] = {"team": "a"}
    if rng.random() < 0.7:
        obj["status"] = sample(rng, schema["properties"]["status"], "status")
    return obj
