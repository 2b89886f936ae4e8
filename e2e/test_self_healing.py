"""Edits made behind the operator's back are put right, and status tells the truth
meanwhile: each outside edit, its time to heal, and what Ready said while broken."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import pytest
from tests.support.cluster import Cluster, wait_for
from tests.support.operator import OperatorProcess, condition, get_md, wait_ready

from e2e.test_modeldeployment import md

pytestmark = pytest.mark.cluster

# The operator reacts to the watch event of the edit, typically within a second;
# the limit leaves room for a busy 2-core machine. Each test prints its figure.
HEAL_LIMIT_S = 20.0
AUTOSCALED = {"minReplicas": 2, "maxReplicas": 4, "metric": {"type": "cpu", "target": 80}}


def kubectl_json(cluster: Cluster, namespace: str, *args: str) -> dict[str, Any]:
    return json.loads(cluster.kubectl("get", *args, "-n", namespace, "-o", "json").stdout)


def exists(cluster: Cluster, namespace: str, kind: str, name: str) -> dict[str, Any] | None:
    proc = cluster.kubectl("get", kind, name, "-n", namespace, "-o", "json", check=False)
    return json.loads(proc.stdout) if proc.returncode == 0 else None


def warnings_about(cluster: Cluster, namespace: str, name: str) -> dict[str, str]:
    """reason -> message of the Warning events the operator posted about the object."""
    events = kubectl_json(
        cluster,
        namespace,
        "events",
        f"--field-selector=involvedObject.name={name},involvedObject.kind=ModelDeployment",
    )["items"]
    return {e["reason"]: e["message"] for e in events if e["type"] == "Warning"}


def warned(cluster: Cluster, namespace: str, name: str, *reasons: str) -> None:
    """Wait for a Warning with one of ``reasons``. The reconcile that heals applies the
    child before it writes status and posts the event, so right after the heal Ready
    can still be the True from before: the event is waited for, not read once."""
    wait_for(
        lambda: set(reasons) & warnings_about(cluster, namespace, name).keys(),
        timeout=HEAL_LIMIT_S,
        what=f"a Warning {' or '.join(reasons)} about {name}",
    )


def heal(
    cluster: Cluster, namespace: str, name: str, healed: Callable[[], bool]
) -> tuple[float, set[tuple[str, str]]]:
    """Seconds until ``healed()``, and every (Ready status, reason) seen meanwhile."""
    start = time.monotonic()
    seen: set[tuple[str, str]] = set()

    def probe() -> bool:
        ready = condition(get_md(cluster, namespace, name), "Ready")
        seen.add((ready.get("status", "?"), ready.get("reason", "?")))
        return healed()

    wait_for(probe, timeout=HEAL_LIMIT_S, interval=0.1, what=f"{name} healed")
    took = time.monotonic() - start
    print(f"healed in {took:.2f}s; Ready seen meanwhile: {sorted(seen)}")
    return took, seen


@pytest.fixture
def serving(cluster: Cluster, operator: OperatorProcess, namespace: str) -> Callable[..., str]:
    def make(name: str = "heal", **spec: Any) -> str:
        cluster.apply(md(name, **spec), namespace)
        wait_ready(cluster, namespace, name)
        return name

    return make


@pytest.mark.parametrize(
    ("kind", "spec"),
    [
        ("service", {}),
        ("deployment", {}),
        ("horizontalpodautoscaler", {"autoscaling": AUTOSCALED}),
        ("poddisruptionbudget", {"replicas": 2}),
    ],
)
def test_deleted_child_is_recreated(cluster, namespace, serving, kind, spec):
    name = serving(**spec)
    before = exists(cluster, namespace, kind, name)["metadata"]["uid"]
    cluster.kubectl("delete", kind, name, "-n", namespace, "--wait=false")

    def recreated() -> bool:
        live = exists(cluster, namespace, kind, name)
        return bool(live) and live["metadata"]["uid"] != before

    heal(cluster, namespace, name, recreated)
    if kind == "deployment":
        # Nothing served until the new Deployment's pods were up: Ready said so, with a
        # Warning. Which reason depends on whether a reconcile looked while the Deployment
        # was gone (DeploymentMissing) or only once its replacement existed with no pod
        # available yet (InsufficientReplicas); both say nothing serves.
        warned(cluster, namespace, name, "DeploymentMissing", "InsufficientReplicas")
    wait_ready(cluster, namespace, name)


def test_deployment_scaled_to_zero_is_restored_and_never_reported_serving(
    cluster, namespace, serving
):
    name = serving()
    cluster.kubectl("scale", "deployment", name, "-n", namespace, "--replicas=0")
    heal(
        cluster,
        namespace,
        name,
        lambda: kubectl_json(cluster, namespace, "deployment", name)["spec"]["replicas"] == 1,
    )
    # While it was at zero, Ready said so: the transition to False is recorded as an
    # event. (Its message is "scaled to 0 replicas outside the operator", or "0/1
    # replicas available" when the pods' deletion was seen before the scale; the
    # wording is unit-tested in tests/unit/test_md_planner.py.)
    warned(cluster, namespace, name, "InsufficientReplicas")
    live = wait_ready(cluster, namespace, name)
    assert live["status"]["servedVersion"] == "1"


def test_scaled_to_zero_under_an_hpa_is_brought_back_to_min_replicas(cluster, namespace, serving):
    name = serving(autoscaling=AUTOSCALED)
    cluster.kubectl("scale", "deployment", name, "-n", namespace, "--replicas=0")
    heal(
        cluster,
        namespace,
        name,
        lambda: kubectl_json(cluster, namespace, "deployment", name)["spec"]["replicas"] >= 2,
    )
    warned(cluster, namespace, name, "InsufficientReplicas")
    wait_ready(cluster, namespace, name)


@pytest.mark.parametrize(
    ("what", "patch", "check"),
    [
        (
            "image",
            [{"op": "replace", "path": "/spec/template/spec/containers/0/image", "value": "x:1"}],
            lambda d: d["spec"]["template"]["spec"]["containers"][0]["image"] != "x:1",
        ),
        (
            "probes",
            [
                {
                    "op": "replace",
                    "path": "/spec/template/spec/containers/0/readinessProbe/httpGet/path",
                    "value": "/nowhere",
                }
            ],
            lambda d: (
                d["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]["httpGet"]["path"]
                != "/nowhere"
            ),
        ),
    ],
)
def test_edited_deployment_is_reverted(cluster, namespace, serving, what, patch, check):
    name = serving()
    cluster.kubectl(
        "patch", "deployment", name, "-n", namespace, "--type=json", "-p", json.dumps(patch)
    )
    heal(
        cluster,
        namespace,
        name,
        lambda: check(kubectl_json(cluster, namespace, "deployment", name)),
    )
    wait_ready(cluster, namespace, name)


def test_edited_service_ports_are_reverted(cluster, namespace, serving):
    name = serving()
    ports = kubectl_json(cluster, namespace, "service", name)["spec"]["ports"]
    patch = [{"op": "replace", "path": "/spec/ports/0/port", "value": 9999}]
    cluster.kubectl(
        "patch", "service", name, "-n", namespace, "--type=json", "-p", json.dumps(patch)
    )
    heal(
        cluster,
        namespace,
        name,
        lambda: (
            kubectl_json(cluster, namespace, "service", name)["spec"]["ports"][0]["port"]
            == ports[0]["port"]
        ),
    )


@pytest.mark.parametrize("kind", ["service", "deployment"])
def test_removed_owner_reference_is_put_back(cluster, namespace, serving, kind):
    name = serving()
    patch = [{"op": "remove", "path": "/metadata/ownerReferences"}]
    cluster.kubectl("patch", kind, name, "-n", namespace, "--type=json", "-p", json.dumps(patch))
    heal(
        cluster,
        namespace,
        name,
        lambda: bool(
            kubectl_json(cluster, namespace, kind, name)["metadata"].get("ownerReferences")
        ),
    )


def test_object_made_by_hand_is_never_taken_over(cluster, operator, namespace):
    hand_made = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "taken", "labels": {"team": "other"}},
        "spec": {"ports": [{"port": 1234}], "selector": {"app": "other"}},
    }
    cluster.apply(hand_made, namespace)
    cluster.apply(md("taken"), namespace)

    def stalled() -> dict | None:
        live = get_md(cluster, namespace, "taken")
        return live if condition(live, "Stalled").get("reason") == "OwnershipConflict" else None

    live = wait_for(stalled, timeout=60, what="Stalled with OwnershipConflict")
    assert f"Service {namespace}/taken" in condition(live, "Stalled")["message"]
    assert condition(live, "Ready")["status"] == "False"
    service = kubectl_json(cluster, namespace, "service", "taken")
    assert service["spec"]["ports"][0]["port"] == 1234
    assert not service["metadata"].get("ownerReferences")
    # Once the name is free, the ModelDeployment gets its Service (within the back-off).
    cluster.kubectl("delete", "service", "taken", "-n", namespace)
    wait_ready(cluster, namespace, "taken", timeout=120)
