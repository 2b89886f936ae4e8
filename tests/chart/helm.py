"""helm, built from its Go module by hack/helm/build.sh, as a test resource."""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from tests.support.cluster import REPO

CHART = REPO / "charts" / "modelops"
BUILD = REPO / "hack" / "helm" / "build.sh"


def build_helm() -> Path:
    """The helm binary; builds it on first use (minutes), then answers from the cache."""
    proc = subprocess.run([str(BUILD)], capture_output=True, text=True, timeout=1800)
    if proc.returncode != 0:
        raise AssertionError(f"hack/helm/build.sh failed:\n{proc.stderr[-3000:]}")
    return Path(proc.stdout.strip().splitlines()[-1]) / "helm"


@dataclass
class Helm:
    binary: Path
    # Config, cache and data of this helm only: tests never read or write the
    # user's ~/.config/helm (repositories, plugins).
    home: Path
    kubeconfig: Path | None = None

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        for var in ("HELM_CONFIG_HOME", "HELM_CACHE_HOME", "HELM_DATA_HOME"):
            env[var] = str(self.home / var.lower())
        if self.kubeconfig is not None:
            env["KUBECONFIG"] = str(self.kubeconfig)
        return env

    def run(
        self, *args: str, check: bool = True, timeout: float = 180
    ) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(
            [str(self.binary), *args],
            capture_output=True,
            text=True,
            env=self.env(),
            timeout=timeout,
        )
        if check and proc.returncode != 0:
            raise AssertionError(
                f"helm {' '.join(args)} failed ({proc.returncode}):\n{proc.stderr}"
            )
        return proc

    def template(
        self,
        *sets: str,
        release: str = "modelops",
        namespace: str = "modelops-system",
        values: dict[str, Any] | None = None,
        tmp: Path | None = None,
    ) -> list[dict[str, Any]]:
        """`helm template` of the chart, parsed: one dict per rendered object."""
        args = ["template", release, str(CHART), "--namespace", namespace]
        for item in sets:
            args += ["--set", item]
        if values is not None:
            assert tmp is not None, "values files need a directory"
            path = tmp / "values.yaml"
            path.write_text(yaml.safe_dump(values))
            args += ["--values", str(path)]
        return [doc for doc in yaml.safe_load_all(self.run(*args).stdout) if doc]

    def template_error(self, *sets: str, namespace: str = "modelops-system") -> str:
        """stderr of a `helm template` that must fail."""
        args = ["template", "modelops", str(CHART), "--namespace", namespace]
        for item in sets:
            args += ["--set", item]
        proc = self.run(*args, check=False)
        assert proc.returncode != 0, (
            f"helm template {' '.join(sets)} rendered; expected a rejection"
        )
        return proc.stderr


def find(docs: list[dict[str, Any]], kind: str, name: str | None = None) -> dict[str, Any]:
    matches = [
        d for d in docs if d["kind"] == kind and (name is None or d["metadata"]["name"] == name)
    ]
    assert len(matches) == 1, (
        f"expected one {kind} {name or ''}, got {[objname(d) for d in matches]}"
    )
    return matches[0]


def of_kind(docs: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [d for d in docs if d["kind"] == kind]


def objname(doc: dict[str, Any]) -> str:
    ns = doc["metadata"].get("namespace")
    return f"{doc['kind']}/{ns + '/' if ns else ''}{doc['metadata']['name']}"
