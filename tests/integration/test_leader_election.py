"""Two operator replicas on the real API server, one Lease: the standby takes over
when the leader is SIGKILLed, and no object is written by both.

Each replica runs as a local process with the manifests' RBAC (Lease included)
and logs every write it sends with its holder identity and wall time
(MODELOPS_LOG_WRITES): the audit this test reads. The bound is generous (the
lease duration is 15 s; the standby must write within 30 s of the kill); the
measured time is printed. bench/operator/failover.py measures it at scale.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.cluster import Cluster, wait_for
from tests.support.operator import (
    OperatorProcess,
    install,
    service_account_kubeconfig,
    wait_ready,
)

pytestmark = pytest.mark.cluster

FAILOVER_BOUND_S = 30.0


def md(name: str) -> dict[str, Any]:
    return {
        "apiVersion": "modelops.io/v1alpha1",
        "kind": "ModelDeployment",
        "metadata": {"name": name},
        "spec": {
            "model": {"storageUri": f"file:///models/{name}", "version": "1"},
            "resources": {"gpu": {"count": 1}, "cpu": "100m", "memory": "128Mi"},
        },
    }


@pytest.fixture
def replicas(
    cluster: Cluster, namespace: str, tmp_path: Path
) -> Iterator[tuple[OperatorProcess, OperatorProcess]]:
    install(cluster)
    kubeconfig = service_account_kubeconfig(cluster, tmp_path / "kubeconfig")
    # A Lease of this test's own: a rerun never meets a holder left by an earlier one.
    args = [
        "--leader-elect",
        "--leader-elect-id",
        f"modelops-test-{uuid.uuid4().hex[:6]}",
        "--namespace",
        namespace,
    ]
    made = []
    try:
        for name in ("a", "b"):
            op = OperatorProcess(
                kubeconfig=kubeconfig,
                log_path=tmp_path / f"operator-{name}.log",
                extra_env={"MODELOPS_LOG_WRITES": "true", "POD_NAME": f"operator-{name}"},
                args=args,
            )
            made.append(op)
        a, b = made
        a.start()
        wait_for(lambda: _logged(a, "acquired the Lease"), timeout=60, what="a leading")
        b.start()
        wait_for(
            lambda: _logged(b, "ModelDeployment stores listed"),
            timeout=60,
            what="b's stores warm while it stands by",
        )
        yield a, b
    finally:
        for op in made:
            op.stop()


def _logged(op: OperatorProcess, text: str) -> bool:
    return text in op.log_path.read_text(errors="replace")


def test_the_standby_takes_over_after_the_leader_is_killed_and_nothing_is_written_twice(
    cluster: Cluster, namespace: str, replicas: tuple[OperatorProcess, OperatorProcess]
):
    a, b = replicas
    cluster.apply(md("before"), namespace)
    wait_ready(cluster, namespace, "before", timeout=120)
    assert a.writes(), a.log_tail()
    assert b.writes() == [], "the standby wrote while the leader was alive"
    assert not _logged(b, "leading: reconciling")

    a.kill()
    killed_at = time.time()
    # Work only a leader can do: a new object to serve.
    cluster.apply(md("after"), namespace)
    wait_for(b.writes, timeout=60, what="the standby's first write")
    first = min(w.at for w in b.writes())
    failover = first - killed_at
    print(f"\nfailover: leader SIGKILLed -> standby's first write: {failover:.1f}s")
    assert failover < FAILOVER_BOUND_S, b.log_tail()
    wait_ready(cluster, namespace, "after", timeout=120)

    # No double write: everything the old leader wrote came before the new
    # leader's first write, and the new leader wrote nothing before the kill.
    assert max(w.at for w in a.writes()) < first
    assert min(w.at for w in b.writes()) > killed_at
    identities = {w.identity for w in a.writes()} | {w.identity for w in b.writes()}
    assert len(identities) == 2 and all(i.startswith("operator-") for i in identities)
