"""The project's own images (``hack/images/build.sh``) on the real node.

Serving on a real node needs what a user's cluster pulls from a registry: the
operator image (also the init container's and the sidecar's) and the runtime
image (Triton with its python backend, and the modelops CLI). There is no
registry here, so the fixture builds them (cached by content: a warm run only
prints) and imports them into the real node's containerd
(``hack/node/node.sh import``).
"""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.cluster import REPO, TEST_CLUSTER_NAME
from tests.support.real_node import RealNode

BUILD = REPO / "hack" / "images" / "build.sh"
NODE_SCRIPT = REPO / "hack" / "node" / "node.sh"
SERVING = ("operator", "runtime")


@dataclass(frozen=True)
class ProjectImages:
    """References of the images imported into the real node's containerd."""

    operator: str
    runtime: str


def build_images(names: tuple[str, ...] = SERVING) -> dict[str, dict]:
    """Build (or reuse) the images; their entries of images.json by short name."""
    proc = subprocess.run([str(BUILD), *names], capture_output=True, text=True, timeout=3600)
    if proc.returncode != 0:
        raise AssertionError(f"hack/images/build.sh failed:\n{proc.stderr[-4000:]}")
    index = json.loads(Path(proc.stdout.strip().splitlines()[-1]).read_text())
    return {name: index[f"modelops-{name}"] for name in names}


def import_images(entries: dict[str, dict], cluster_name: str = TEST_CLUSTER_NAME) -> None:
    archives = [entry["archive"] for entry in entries.values()]
    proc = subprocess.run(
        [str(NODE_SCRIPT), "import", cluster_name, *archives],
        capture_output=True,
        text=True,
        timeout=900,
    )
    if proc.returncode != 0:
        raise AssertionError(f"node.sh import failed:\n{proc.stderr[-4000:]}")


@pytest.fixture(scope="session")
def project_images(real_node: RealNode) -> ProjectImages:
    entries = build_images()
    import_images(entries)
    return ProjectImages(operator=entries["operator"]["ref"], runtime=entries["runtime"]["ref"])
