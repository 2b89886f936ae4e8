"""The modelops operator as a local process, run with the RBAC of manifests/.

The operator authenticates with a token of the `modelops-operator`
ServiceAccount (TokenRequest API), so every test that uses it also proves the
ClusterRole in manifests/install/rbac.yaml is enough.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from tests.support.cluster import REPO, Cluster, wait_for
from tests.support.conversion import install_crds

INSTALL = REPO / "manifests" / "install"
CRDS = REPO / "crds"
SERVICE_ACCOUNT = ("modelops-system", "modelops-operator")


def install(cluster: Cluster) -> None:
    """CRDs, namespace, RBAC and tenant roles (not the operator Deployment: the tests
    run the operator as a local process). The CRDs are crds/ with this process's
    conversion webhook in place of the operator's Service (tests/support/conversion.py)."""
    install_crds(cluster)
    for name in ("namespace.yaml", "rbac.yaml", "tenant-roles.yaml"):
        cluster.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(INSTALL / name))


def service_account_kubeconfig(
    cluster: Cluster, path: Path, account: tuple[str, str] | None = None
) -> Path:
    """A kubeconfig that authenticates as a ServiceAccount (namespace, name):
    SERVICE_ACCOUNT (the operator's, looked up at call time: tests patch it)
    unless told otherwise."""
    namespace, name = account or SERVICE_ACCOUNT
    token = cluster.kubectl(
        "create", "token", name, "-n", namespace, "--duration=6h"
    ).stdout.strip()
    admin = yaml.safe_load(cluster.kubeconfig.read_text())
    context = next(c for c in admin["contexts"] if c["name"] == admin["current-context"])
    cluster_entry = next(c for c in admin["clusters"] if c["name"] == context["context"]["cluster"])
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [cluster_entry],
        "users": [{"name": name, "user": {"token": token}}],
        "contexts": [{"name": name, "context": {"cluster": cluster_entry["name"], "user": name}}],
        "current-context": name,
    }
    path.write_text(yaml.safe_dump(config))
    return path


# prctl(2): the signal a child gets when the thread that started it ends.
_PR_SET_PDEATHSIG = 1
_PRCTL = getattr(ctypes.CDLL(ctypes.util.find_library("c") or None), "prctl", None)


def _die_with_parent() -> None:
    """preexec_fn: SIGTERM when the test process goes, however it goes.

    The operator runs in a session of its own (so that stop() can signal its whole
    group), which also keeps it alive when the test process is killed before its
    fixtures are torn down (a timeout's SIGTERM, SIGKILL). Such an orphan kept
    reconciling the cluster beside the next run's operator: two writers with
    different settings applied two templates of one Deployment in turn, several times
    a second. prctl is resolved before the fork; only the call runs in the child."""
    if _PRCTL is not None:
        _PRCTL(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class OperatorProcess:
    kubeconfig: Path
    log_path: Path
    extra_env: dict[str, str] = field(default_factory=dict)
    metrics_port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None
    # `modelops run` arguments after the fixed ones: one replica by default;
    # ["--leader-elect"] for a replica that takes part in leader election.
    args: list[str] = field(default_factory=lambda: ["--standalone"])

    def start(self) -> OperatorProcess:
        env = dict(
            os.environ,
            KUBECONFIG=str(self.kubeconfig),
            MODELOPS_METRICS_PORT=str(self.metrics_port),
            **self.extra_env,
        )
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "modelops.cli", "run", "--liveness", "", *self.args],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=_die_with_parent if _PRCTL is not None else None,
        )
        wait_for(self._serving_metrics, timeout=60, what="the operator's metrics endpoint")
        return self

    def _serving_metrics(self) -> bool:
        if self.proc is None or self.proc.poll() is not None:
            raise AssertionError(f"operator exited; log:\n{self.log_tail()}")
        try:
            self.metrics()
        except OSError:
            return False
        return True

    def metrics(self) -> str:
        url = f"http://127.0.0.1:{self.metrics_port}/metrics"
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.read().decode()

    def metric(self, name: str, **labels: str) -> float:
        """Sum of the samples of ``name`` whose labels include ``labels``."""
        total = 0.0
        for line in self.metrics().splitlines():
            if not line.startswith(name + "{") and not line.startswith(name + " "):
                continue
            head, value = line.rsplit(" ", 1)
            if all(f'{k}="{v}"' in head for k, v in labels.items()):
                total += float(value)
        return total

    def kill(self) -> None:
        """SIGKILL: the crash case, no graceful shutdown."""
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.kill()

    def writes(self) -> list[Write]:
        """Every write this process sent, from its log (MODELOPS_LOG_WRITES=true)."""
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        out = []
        for line in text.splitlines():
            found = _WRITE.search(line)
            if found:
                verb, kind, obj, who, at = found.groups()
                out.append(Write(verb, kind, obj, who, float(at)))
        return out

    def log_tail(self, lines: int = 60) -> str:
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        return "\n".join(text.splitlines()[-lines:])


@dataclass(frozen=True)
class Write:
    verb: str
    kind: str
    obj: str  # namespace/name
    identity: str
    at: float  # wall-clock time.time() when it was sent


# The line Kube logs before every write (modelops.kube.client, MODELOPS_LOG_WRITES).
_WRITE = re.compile(r"write (\S+) (\S+) (\S+) by (\S+) at ([0-9.]+)")


def wait_ready(cluster: Cluster, namespace: str, name: str, timeout: float = 90) -> dict:
    def ready() -> dict | None:
        md = get_md(cluster, namespace, name)
        conds = {c["type"]: c for c in (md.get("status") or {}).get("conditions", [])}
        ok = conds.get("Ready", {}).get("status") == "True"
        current = (md.get("status") or {}).get("observedGeneration") == md["metadata"]["generation"]
        return md if ok and current else None

    try:
        return wait_for(ready, timeout=timeout, what=f"ModelDeployment {namespace}/{name} Ready")
    except AssertionError as err:
        status = yaml.safe_dump(get_md(cluster, namespace, name).get("status"))
        raise AssertionError(f"{err}\nlast status:\n{status}") from None


def get_md(cluster: Cluster, namespace: str, name: str) -> dict:
    return cluster.custom.get_namespaced_custom_object(
        "modelops.io", "v1alpha1", namespace, "modeldeployments", name
    )


def condition(md: dict, ctype: str) -> dict:
    return next(
        (c for c in (md.get("status") or {}).get("conditions", []) if c["type"] == ctype), {}
    )


def now() -> float:
    return time.monotonic()


@contextlib.contextmanager
def restarted_with(operator: OperatorProcess, env: Mapping[str, str]) -> Iterator[OperatorProcess]:
    """The operator restarted with `env` added (settings it reads at start, such as
    MODELOPS_ACTIVATOR_URL), then restarted as it was before."""
    before = {key: operator.extra_env.get(key) for key in env}
    operator.stop()
    operator.extra_env.update(env)
    operator.start()
    try:
        yield operator
    finally:
        operator.stop()
        for key, value in before.items():
            if value is None:
                operator.extra_env.pop(key, None)
            else:
                operator.extra_env[key] = value
        operator.start()
