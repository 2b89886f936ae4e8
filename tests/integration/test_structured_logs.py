"""`modelops run --log-format json` against the real API server: the reconcile that
posts an Event writes JSON log lines carrying the same reconcile id, and the
Event carries it in its annotations (modelops.logs.EVENT_ANNOTATION)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from modelops.logs import EVENT_ANNOTATION
from tests.support.cluster import Cluster, wait_for
from tests.support.operator import OperatorProcess, install, service_account_kubeconfig

pytestmark = pytest.mark.cluster

NAME = "logged"


@pytest.fixture(scope="module")
def json_operator(
    cluster: Cluster, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[OperatorProcess]:
    install(cluster)
    home = tmp_path_factory.mktemp("json-op")
    op = OperatorProcess(
        kubeconfig=service_account_kubeconfig(cluster, home / "kubeconfig"),
        log_path=home / "operator.log",
        extra_env={"MODELOPS_LOG_FORMAT": "json"},
    ).start()
    try:
        yield op
    finally:
        op.stop()


def _json_lines(path: Path) -> list[dict]:
    lines = []
    for text in path.read_text(errors="replace").splitlines():
        try:
            lines.append(json.loads(text))
        except json.JSONDecodeError:
            raise AssertionError(f"not a JSON line: {text!r}") from None
    return lines


def test_event_and_log_lines_share_the_reconcile_id(
    cluster: Cluster, json_operator: OperatorProcess, namespace: str
):
    # A Service that is not the operator's holds the name: the reconcile stalls with
    # OwnershipConflict and posts a Warning event, whatever nodes the cluster has.
    cluster.kubectl("create", "service", "clusterip", NAME, "--tcp=8000:8000", "-n", namespace)
    cluster.apply(
        {
            "apiVersion": "modelops.io/v1alpha1",
            "kind": "ModelDeployment",
            "metadata": {"name": NAME},
            "spec": {
                "model": {"storageUri": f"file:///models/{NAME}", "version": "1"},
                "resources": {"gpu": {"count": 1}, "cpu": "1", "memory": "2Gi"},
            },
        },
        namespace,
    )

    def annotated_event() -> dict | None:
        items = cluster.core.list_namespaced_event(
            namespace,
            field_selector=f"involvedObject.name={NAME},involvedObject.kind=ModelDeployment",
        ).items
        for event in items:
            rid = (event.metadata.annotations or {}).get(EVENT_ANNOTATION)
            if rid:
                return {"id": rid, "reason": event.reason}
        return None

    event = wait_for(annotated_event, timeout=90, what="an Event with a reconcile id")
    lines = _json_lines(json_operator.log_path)
    same = [line for line in lines if line.get("reconcile_id") == event["id"]]
    assert same, f"no log line with reconcile_id {event['id']}:\n{json_operator.log_tail()}"
    decision = next(line for line in same if "decision" in line)
    assert decision["object"] == f"ModelDeployment/{NAME}"
    assert decision["namespace"] == namespace
    assert event["reason"] in decision["decision"]
    assert {"time", "level", "logger", "msg"} <= set(decision)
    # Lines outside any reconcile (start-up) carry no reconcile id.
    assert any("reconcile_id" not in line for line in lines)
