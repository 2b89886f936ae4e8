"""The YAML blocks of the user docs, and what each one is meant to be.

Every ```yaml block of README.md and docs/*.md is one of:

- complete Kubernetes objects (apiVersion and kind): applied as they are;
- a fragment, marked by an HTML comment on the line before the block,
  ``<!-- fragment-of: ModelDeployment -->`` (or TrainingJob, ConfigMap): merged
  (JSON merge patch) into a minimal valid object of that kind, then applied;
  ``<!-- fragment-of: ModelDeployment status -->`` is sent to the status
  subresource of such an object;
- ``<!-- not-applied: reason -->``: shown for reading only (keep these few).

An unmarked block that is not a complete object fails the sweep, so a new
example in the docs is checked by the API server from the day it is written.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from tests.integration import invalid_modeldeployments, invalid_trainingjobs

REPO = Path(__file__).resolve().parents[2]
DOC_FILES = (REPO / "README.md", *sorted((REPO / "docs").glob("*.md")))
SAMPLES = tuple(sorted((REPO / "manifests" / "samples").glob("*.yaml")))

_BLOCK = re.compile(r"^```(ya?ml)[ \t]*\n(.*?)^```[ \t]*$", re.S | re.M)
_MARKER = re.compile(r"<!--\s*(not-applied|fragment-of):\s*(.*?)\s*-->\s*$")

CONFIG_MAP = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "docs-example"}}
# The smallest valid object of each kind a fragment can belong to.
BASES: dict[str, dict[str, Any]] = {
    "ModelDeployment": invalid_modeldeployments.VALID,
    "TrainingJob": invalid_trainingjobs.VALID,
    "ConfigMap": CONFIG_MAP,
}


@dataclass(frozen=True)
class Block:
    path: Path
    line: int  # of the opening fence, 1-based
    text: str
    marker: tuple[str, str] | None  # ("fragment-of", "ModelDeployment status"), ...

    @property
    def where(self) -> str:
        return f"{self.path.relative_to(REPO)}:{self.line}"

    def documents(self) -> list[Any]:
        return [d for d in yaml.safe_load_all(self.text) if d is not None]

    @property
    def fragment_kind(self) -> str | None:
        if self.marker is None or self.marker[0] != "fragment-of":
            return None
        return self.marker[1].split()[0]

    @property
    def is_status(self) -> bool:
        return self.marker is not None and self.marker[1].split()[1:] == ["status"]


def blocks(path: Path) -> list[Block]:
    text = path.read_text()
    out = []
    for match in _BLOCK.finditer(text):
        before = text[: match.start()].rstrip("\n").rsplit("\n", 1)[-1]
        marker = _MARKER.search(before)
        out.append(
            Block(
                path=path,
                line=text.count("\n", 0, match.start()) + 1,
                text=match.group(2),
                marker=(marker.group(1), marker.group(2)) if marker else None,
            )
        )
    return out


def all_blocks() -> list[Block]:
    return [b for path in DOC_FILES for b in blocks(path)]


def is_object(doc: Any) -> bool:
    return isinstance(doc, dict) and bool(doc.get("apiVersion")) and bool(doc.get("kind"))
