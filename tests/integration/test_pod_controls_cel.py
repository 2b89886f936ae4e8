"""The pod controls' apply-time rules of the v1beta1 schema, on the real API server.

What the CRD can say on its own is refused at the door, naming the field: a
volume named like one of the operator's, a mount at, above or under one of
the operator's mounts, a mount naming no volume of spec.volumes, a pod label
or annotation key of the operator's prefix or the workload controllers'. (What
depends on the rendered pod, e.g. a label the operator sets with another
value, is the operator's check: Stalled InvalidSpec, e2e/test_pod_controls.py.)

The two-version CRDs are installed under a group of their own; v1beta1 is
their storage version, so creating v1beta1 objects calls no conversion webhook
(the URL points nowhere on purpose: nothing here may need it).
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator
from typing import Any

import kubernetes
import pytest
from e2e.test_pod_controls import beta_md, tj

from tests.integration.test_conversion_webhook import DEAD_URL, Group
from tests.support.cluster import Cluster

pytestmark = pytest.mark.cluster

Edit = Callable[[dict[str, Any]], None]


@pytest.fixture(scope="module")
def group(cluster: Cluster) -> Iterator[Group]:
    g = Group(cluster, None, DEAD_URL)
    g.install_versioned()
    try:
        yield g
    finally:
        g.delete()


def create(group: Group, body: dict[str, Any], namespace: str) -> None:
    group.create(body, "v1beta1", namespace)


def test_an_object_with_every_pod_control_is_accepted(group: Group, namespace: str):
    create(group, beta_md("all"), namespace)
    create(group, tj("all-tj"), namespace)


MD_REFUSED: list[tuple[str, Edit, str]] = [
    (
        "operator-volume",
        lambda s: s["volumes"].append({"name": "shm", "emptyDir": {}}),
        "are the operator's in the Triton pods",
    ),
    (
        "prefixed-volume",
        lambda s: s["volumes"].append({"name": "modelops-x", "emptyDir": {}}),
        "volume names starting with modelops-",
    ),
    (
        "mount-under",
        lambda s: s["runtime"]["volumeMounts"].append({"name": "cache", "mountPath": "/models/x"}),
        "mountPath may not be, contain or lie under the operator's mounts",
    ),
    (
        "mount-above",
        lambda s: s["runtime"]["volumeMounts"].append({"name": "cache", "mountPath": "/dev/"}),
        "mountPath may not be, contain or lie under the operator's mounts",
    ),
    (
        "mount-unknown",
        lambda s: s["runtime"]["volumeMounts"].append({"name": "nope", "mountPath": "/n"}),
        "spec.runtime.volumeMounts: Invalid value",
    ),
    (
        "label",
        lambda s: s["podMetadata"]["labels"].update({"modelops.io/slot": "b"}),
        "spec.podMetadata.labels: Invalid value",
    ),
    (
        "annotation",
        lambda s: s["podMetadata"]["annotations"].update({"pod-template-hash": "x"}),
        "spec.podMetadata.annotations: Invalid value",
    ),
]


@pytest.mark.parametrize(("name", "edit", "message"), MD_REFUSED, ids=[c[0] for c in MD_REFUSED])
def test_a_model_deployment_colliding_with_the_operator_is_refused(
    group: Group, namespace: str, name: str, edit: Edit, message: str
):
    body = beta_md(name)
    edit(body["spec"])
    with pytest.raises(kubernetes.client.ApiException) as err:
        create(group, body, namespace)
    assert err.value.status == 422
    assert message in err.value.body


TJ_REFUSED: list[tuple[str, Edit, str]] = [
    (
        "tj-volume",
        lambda s: s["volumes"].append({"name": "checkpoints", "emptyDir": {}}),
        "are the operator's in the worker pods",
    ),
    (
        "tj-mount",
        lambda s: s["volumeMounts"].append({"name": "cache", "mountPath": "/output"}),
        "mountPath may not be, contain or lie under the operator's mounts",
    ),
    (
        "tj-mount-unknown",
        lambda s: s["volumeMounts"].append({"name": "nope", "mountPath": "/n"}),
        "spec.volumeMounts: Invalid value",
    ),
    (
        "tj-label",
        lambda s: s["podMetadata"]["labels"].update({"batch.kubernetes.io/job-name": "x"}),
        "spec.podMetadata.labels: Invalid value",
    ),
]


@pytest.mark.parametrize(("name", "edit", "message"), TJ_REFUSED, ids=[c[0] for c in TJ_REFUSED])
def test_a_training_job_colliding_with_the_operator_is_refused(
    group: Group, namespace: str, name: str, edit: Edit, message: str
):
    body = copy.deepcopy(tj(name))
    edit(body["spec"])
    with pytest.raises(kubernetes.client.ApiException) as err:
        create(group, body, namespace)
    assert err.value.status == 422
    assert message in err.value.body
