"""The TrainingJob reconcile shell against the recording in-memory API: the order of
writes (status before the attempt's Job) and each scenario's call count."""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime
from typing import Any

from modelops.api.kinds import JOB, SERVICE, TRAINING_JOB
from modelops.controllers import indexes as ix
from modelops.controllers.tj_reconcile import TrainingJobController
from tests.support.fake_kube import FakeKube
from tests.unit.test_render_trainingjob_fixtures import tj_body

NOW = datetime(2026, 11, 25, 12, 0, 0, tzinfo=UTC)
KEY = ("ml", "fraud-retrain")


def views_of(kube: FakeKube) -> dict[str, Any]:
    views: dict[str, Any] = defaultdict(lambda: defaultdict(list))
    for (kind, namespace, name), obj in kube.objects.items():
        labels = obj["metadata"].get("labels") or {}
        if kind == TRAINING_JOB:
            for fn in (ix.tj_index,):
                for key, value in fn(namespace=namespace, name=name, body=obj).items():
                    views[fn.__name__][key].append(value)
        elif "modelops.io/training-job" in labels:
            fn = {JOB: ix.tj_jobs, SERVICE: ix.tj_services}.get(kind)
            if fn is not None:
                for key, value in fn(namespace=namespace, labels=labels, body=obj).items():
                    views[fn.__name__][key].append(value)
    return views


def harness() -> tuple[FakeKube, TrainingJobController]:
    kube = FakeKube()
    body = tj_body()
    kube.put(body, uid=body["metadata"]["uid"])
    return kube, TrainingJobController(kube=kube, indexes=ix.Indexes({}), clock=lambda: NOW)


def reconcile(kube: FakeKube, controller: TrainingJobController):
    controller.indexes = ix.Indexes(views_of(kube))
    kube.reset_calls()
    return controller.reconcile(KEY)


def test_first_reconcile_records_the_attempt_before_creating_its_job():
    kube, controller = harness()
    reconcile(kube, controller)
    verbs = [(c.verb, c.kind) for c in kube.calls if c.verb != "post_event"]
    assert verbs == [
        ("apply", "Service"),
        ("patch_status", "TrainingJob"),
        ("create", "Job"),
    ]
    assert kube.live(JOB, "ml", "fraud-retrain-a0") is not None


def test_second_reconcile_without_change_makes_no_call():
    kube, controller = harness()
    reconcile(kube, controller)
    reconcile(kube, controller)  # status of the created Job: Creating -> waiting
    reconcile(kube, controller)
    assert kube.count() == 0


def test_deleted_rendezvous_service_is_recreated_and_the_job_is_not():
    kube, controller = harness()
    reconcile(kube, controller)
    del kube.objects[(SERVICE, "ml", "fraud-retrain-workers")]
    reconcile(kube, controller)
    assert kube.count("apply", "Service") == 1
    assert kube.count("create", "Job") == 0
    assert kube.live(SERVICE, "ml", "fraud-retrain-workers") is not None
