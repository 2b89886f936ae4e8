"""TrainingJob reconcile shell: observe -> plan (pure) -> act.

See ``modelops.render.training.planner`` for the decisions, including why the
status is written before the next attempt's Job is created.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from modelops.api import constants as c
from modelops.controllers import metrics
from modelops.controllers.actuator import Actuator
from modelops.controllers.indexes import Indexes, Key, as_read
from modelops.controllers.md_reconcile import Result
from modelops.controllers.own_status import OwnStatus
from modelops.kube import KubeApi
from modelops.render.ownership import Applied
from modelops.render.training import planner
from modelops.render.training.names import SERVICE_SUFFIX

KIND = c.TJ_KIND
log = logging.getLogger("modelops.trainingjob")


@dataclass
class TrainingJobController:
    kube: KubeApi
    indexes: Indexes
    trainer_image: str = c.DEFAULT_TRAINER_IMAGE
    clock: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))
    _applied: dict[Key, Applied] = field(default_factory=dict)
    # Our last status write per object, used until the store has caught up with it.
    _own_status: OwnStatus = field(default_factory=OwnStatus)

    def __post_init__(self) -> None:
        self.actuator = Actuator(self.kube, KIND)

    def forget(self, key: Key) -> None:
        self._applied.pop(key, None)
        self._own_status.forget(key)
        metrics.forget(KIND, *key)

    def known_keys(self) -> list[Key]:
        return self.indexes.keys("tj_index")

    def delivered(self, key: Key, resource_version: str | None) -> bool:
        """As ModelDeploymentController.delivered."""
        return self._own_status.delivered(key, resource_version)

    def model_deployment_of(self, key: Key) -> Key | None:
        """The ModelDeployment a TrainingJob feeds (its result may be the version to serve)."""
        body: Any = self.indexes.training_job(key) or {}
        ref = ((body.get("spec") or {}).get("modelDeploymentRef") or {}).get("name")
        return (key[0], ref) if ref else None

    def reconcile(self, key: Key) -> Result:
        stored = self.indexes.training_job(key)
        if stored is None:
            self.forget(key)
            return Result()
        body = self._own_status.current(key, stored)
        with metrics.RECONCILE_DURATION.labels(KIND).time():
            tj = planner.parse(body)
            obs = planner.Observed(
                body=body,
                jobs=self.indexes.tj_jobs(key),
                pods=self.indexes.tj_pods(key),
                service=self.indexes.tj_service(key, f"{key[1]}{SERVICE_SUFFIX}"),
                now=self.clock(),
                claim_template=self.indexes.tj_claim_template(key),
            )
            plan = planner.plan(obs, tj, self._applied.get(key), self.trainer_image)
            outcome = self.actuator.act(plan, body)
            if outcome.failures:
                plan = planner.revise(obs, plan, outcome.failures)
            self.actuator.finish(plan, body, outcome)
            if outcome.status_object is not None:
                self._own_status.remember(key, body, as_read(outcome.status_object))
            if not outcome.failures:
                previous = self._applied.get(key)
                fingerprints = dict(previous.fingerprints) if previous else {}
                fingerprints.update(outcome.fingerprints)
                self._applied[key] = Applied(plan.digest, fingerprints)
            metrics.export_conditions(KIND, *key, plan.status.get("conditions") or [])
        return Result(plan.requeue_after, plan.failed or bool(outcome.failures))
