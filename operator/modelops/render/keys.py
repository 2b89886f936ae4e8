"""How the planners, ownership checks and the actuator name a child: its key. Pure.

A child named after its ModelDeployment is known by its kind; any other by
``Kind/name`` (render/slots.py explains why a ModelDeployment may own two
objects of one kind). A TrainingJob's children carry no ModelDeployment label
and are keyed by their kind. Generic, so that both kinds' planners share it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from modelops.api import constants as c


def child_key(kind: str, name: str, md_name: str) -> str:
    """How the planner refers to a child: its kind, or Kind/name when it is not named
    after its ModelDeployment."""
    return kind if name == md_name else f"{kind}/{name}"


def key_of(obj: Mapping[str, Any]) -> str:
    """child_key of a rendered child (its ModelDeployment from the label). An object
    without that label (a TrainingJob's child) is keyed by its kind."""
    meta = obj.get("metadata") or {}
    owner = (meta.get("labels") or {}).get(c.LABEL_MODEL_DEPLOYMENT)
    if owner is None:
        return str(obj.get("kind"))
    return child_key(str(obj.get("kind")), str(meta.get("name")), owner)
