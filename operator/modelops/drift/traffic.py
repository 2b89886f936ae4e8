"""The rollout's traffic settings as the sidecar reads them, and request selection. Pure.

The operator writes them into the ConfigMap ``<md>-traffic`` (key
``traffic.json``), mounted into every serving pod; the sidecar re-reads the
file when it changes (:mod:`modelops.drift.traffic_plane`). Content::

    {"epoch": "8",
     "candidate": {"version": "8", "http": "http://fraud-b.ml.svc:8000",
                   "grpc": "fraud-b.ml.svc:8001"},
     "mirrorPercent": 10,
     "canaryWeight": 0,
     "agreement": {"mode": "Argmax"}}      # or {"mode": "RelativeTolerance", "tolerance": 0.01}

An in-place candidate (spec.rollout.placement InPlace, :mod:`modelops.drift.inplace`)
runs in this pod's own Triton: ``"candidate": {"version": "8", "inPlace":
{"liveLimit": 8, "priority": true}}`` (no ``http``/``grpc``).

An empty file, a missing file or ``{}`` means no rollout. Anything else that
does not follow the shape raises :class:`TrafficError` naming the field, so
the sidecar can log it and keep its last good settings.

Selection is a counter, not a random draw: ``PercentSelector(30)`` takes
exactly 3 requests of every 10, spread evenly, which makes the share exact
over any window and costs one addition per request.
"""

from __future__ import annotations

import json
import math
import urllib.parse
from dataclasses import dataclass
from typing import Any

from modelops.drift.agreement import AGREEMENT_MODES

# Header the stable sidecar sets on what it sends to the candidate; a sidecar
# never mirrors or splits a request that carries one (no loops).
MIRROR_HEADER = b"x-modelops-mirror"
SPLIT_HEADER = b"x-modelops-split"

STABLE, CANDIDATE = "stable", "candidate"


class TrafficError(ValueError):
    """The traffic file does not describe valid settings."""


@dataclass(frozen=True)
class InPlace:
    """Settings of an in-place candidate: live requests in flight to Triton at which
    mirrored copies are shed (0: only the mirror cap), and whether copies carry
    Triton's lower request priority."""

    live_limit: int = 0
    priority: bool = True


@dataclass(frozen=True)
class Candidate:
    version: str
    http: str  # http://host:port of the candidate's Service (its sidecar)
    grpc: str | None = None  # host:port of its gRPC endpoint: gRPC ModelInfer mirrors go there
    in_place: InPlace | None = None  # runs in this pod's own Triton (http unused)

    @property
    def http_address(self) -> tuple[str, int]:
        return http_address(self.http)


@dataclass(frozen=True)
class Agreement:
    mode: str = "Argmax"
    tolerance: float | None = None


@dataclass(frozen=True)
class TrafficSettings:
    epoch: str = ""
    candidate: Candidate | None = None
    mirror_percent: float = 0.0
    canary_weight: float = 0.0
    agreement: Agreement = Agreement()
    # Noise floor (issue 18): this share of infer calls is sent a second time to
    # this pod's own Triton and the two answers compared (stable vs stable).
    self_compare_percent: float = 0.0
    # Placement InPlace (render/inplace.py, served_version): the version this pod's Triton
    # serves when it differs from the pod template's, after an in-place promotion; the
    # init container pulls it and the sidecar answers as it. "" = the template's.
    served: str = ""

    def role(self, own_version: str) -> str:
        """``candidate`` when this pod serves the candidate version, else ``stable``."""
        c = self.candidate
        return CANDIDATE if c is not None and own_version and c.version == own_version else STABLE

    def acts(self, own_version: str) -> bool:
        """Whether a sidecar of ``own_version`` mirrors, splits or self-compares anything."""
        if self.role(own_version) != STABLE:
            return False
        if self.self_compare_percent > 0:
            return True
        return self.candidate is not None and (self.mirror_percent > 0 or self.canary_weight > 0)


NO_ROLLOUT = TrafficSettings()


def http_address(url: str) -> tuple[str, int]:
    u = urllib.parse.urlsplit(url)
    if u.scheme != "http" or not u.hostname or u.path not in ("", "/") or u.query:
        raise TrafficError(f"candidate.http must look like http://host:port, got {url!r}")
    try:
        port = u.port or 80
    except ValueError as exc:
        raise TrafficError(f"candidate.http has a bad port: {url!r}") from exc
    return u.hostname, port


def _version(value: Any, field: str) -> str:
    # Versions are numbers in object stores; accept 8 as well as "8".
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise TrafficError(f"{field} must be a string, got {value!r}")
    text = str(value).strip()
    if not text:
        raise TrafficError(f"{field} must not be empty")
    return text


def _percent(doc: dict[str, Any], field: str) -> float:
    value = doc.get(field, 0)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise TrafficError(f"{field} must be a number in [0, 100], got {value!r}")
    if not 0 <= value <= 100:
        raise TrafficError(f"{field} must be in [0, 100], got {value!r}")
    return float(value)


def _in_place(value: Any) -> InPlace:
    if not isinstance(value, dict):
        raise TrafficError(f"candidate.inPlace must be an object, got {value!r}")
    limit = value.get("liveLimit", 0)
    if isinstance(limit, bool) or not isinstance(limit, int) or not 0 <= limit <= 65536:
        raise TrafficError(f"candidate.inPlace.liveLimit must be an integer 0-65536: {limit!r}")
    priority = value.get("priority", True)
    if not isinstance(priority, bool):
        raise TrafficError(f"candidate.inPlace.priority must be true or false: {priority!r}")
    return InPlace(limit, priority)


def _candidate(value: Any) -> Candidate:
    if not isinstance(value, dict):
        raise TrafficError(f"candidate must be an object, got {value!r}")
    version = _version(value.get("version"), "candidate.version")
    if value.get("inPlace") is not None:
        return Candidate(version, "", None, _in_place(value["inPlace"]))
    http = value.get("http")
    if not isinstance(http, str):
        raise TrafficError(f"candidate.http must be a string, got {http!r}")
    http_address(http)
    grpc = value.get("grpc")
    if grpc is not None and not isinstance(grpc, str):
        raise TrafficError(f"candidate.grpc must be a string, got {grpc!r}")
    return Candidate(version, http, grpc or None)


def _agreement(value: Any) -> Agreement:
    if value is None:
        return Agreement()
    if not isinstance(value, dict):
        raise TrafficError(f"agreement must be an object, got {value!r}")
    mode = value.get("mode", "Argmax")
    if mode not in AGREEMENT_MODES:
        raise TrafficError(f"agreement.mode must be one of {', '.join(AGREEMENT_MODES)}: {mode!r}")
    tol = value.get("tolerance")
    if tol is not None:
        if isinstance(tol, bool) or not isinstance(tol, (int, float)) or not tol > 0:
            raise TrafficError(f"agreement.tolerance must be a number > 0, got {tol!r}")
        if mode != "RelativeTolerance":
            raise TrafficError("agreement.tolerance applies to mode RelativeTolerance only")
        tol = float(tol)
    return Agreement(mode, tol)


def parse_traffic(content: bytes | str) -> TrafficSettings:
    """Settings from the traffic file's content; :class:`TrafficError` when invalid."""
    if isinstance(content, bytes):
        try:
            content = content.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise TrafficError("traffic file is not UTF-8") from exc
    if not content.strip():
        return NO_ROLLOUT
    try:
        doc = json.loads(content)
    except ValueError as exc:
        raise TrafficError(f"traffic file is not JSON: {exc}") from exc
    if not isinstance(doc, dict):
        raise TrafficError("traffic file must hold a JSON object")
    if not doc:
        return NO_ROLLOUT
    candidate = _candidate(doc["candidate"]) if doc.get("candidate") is not None else None
    mirror = _percent(doc, "mirrorPercent")
    weight = _percent(doc, "canaryWeight")
    if candidate is None and (mirror or weight):
        raise TrafficError("mirrorPercent / canaryWeight above 0 need a candidate")
    epoch_value = doc.get("epoch")
    if epoch_value is None:
        epoch = candidate.version if candidate is not None else ""
    else:
        epoch = _version(epoch_value, "epoch")
    return TrafficSettings(
        epoch,
        candidate,
        mirror,
        weight,
        _agreement(doc.get("agreement")),
        _percent(doc, "selfComparePercent"),
        _version(doc["served"], "served") if doc.get("served") is not None else "",
    )


class PercentSelector:
    """Takes ``percent`` % of calls, evenly spread (a Bresenham-style accumulator)."""

    __slots__ = ("_acc", "percent")

    def __init__(self, percent: float) -> None:
        self.percent = percent
        self._acc = 0.0

    def take(self) -> bool:
        acc = self._acc + self.percent
        if acc >= 100.0:
            self._acc = acc - 100.0
            return True
        self._acc = acc
        return False
