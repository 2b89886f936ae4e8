"""Operator start-up and shutdown: settings, the API client, the reconcilers,
the metrics endpoint and the requeue scheduler."""

from __future__ import annotations

import asyncio
import os
from dataclasses import astuple
from typing import Any

import kopf
from prometheus_client import start_http_server

from modelops.api.images import ImageDefaults
from modelops.controllers import (
    modeldeployment,  # noqa: F401  (registers the handlers)
    trainingjob,
)
from modelops.controllers.drift_reader import DriftReader
from modelops.controllers.reconciler import ModelDeploymentReconciler
from modelops.controllers.runtime import RUNTIME
from modelops.controllers.settings import configure
from modelops.kube import Kube
from modelops.render import DEFAULT_PROMETHEUS_ADDRESS

DEFAULT_OPERATOR_IMAGE = "ghcr.io/modelops/modelops:0.1.0"
# The default Triton and trainer images (`modelops run` sets them from its flags).
IMAGE_DEFAULTS = ImageDefaults.from_environ()
_tasks: list[asyncio.Task[None]] = []


@kopf.on.startup()
async def startup(settings: kopf.OperatorSettings, logger: Any, **kwargs: Any) -> None:
    configure(settings)
    # kopf hands every index to start-up handlers; they are live views, kept
    # here so that requeued reconciles read the same snapshots handlers do.
    RUNTIME.indices = {
        k: kwargs[k]
        for k in (
            "md_index",
            "md_deployments",
            "md_pods",
            "md_hpas",
            "tj_index",
            "tj_jobs",
            "tj_pods",
        )
    }
    RUNTIME.kube = Kube()
    RUNTIME.md = ModelDeploymentReconciler(
        RUNTIME.kube,
        operator_image=os.environ.get("MODELOPS_IMAGE", DEFAULT_OPERATOR_IMAGE),
        prometheus_address=os.environ.get(
            "MODELOPS_PROMETHEUS_ADDRESS", DEFAULT_PROMETHEUS_ADDRESS
        ),
        drift_reader=DriftReader.from_environment(),
        triton_image=IMAGE_DEFAULTS.triton,
    )
    RUNTIME.tj = trainingjob.TrainingJobReconciler(
        RUNTIME.kube, trainer_image=IMAGE_DEFAULTS.trainer
    )
    logger.info("default images: triton %s, trainer %s", *astuple(IMAGE_DEFAULTS))
    port = int(os.environ.get("MODELOPS_METRICS_PORT", "8080"))
    if port:
        start_http_server(port)
        logger.info("metrics on :%d/metrics", port)
    _tasks.append(asyncio.create_task(RUNTIME.run_requeues()))


@kopf.on.cleanup()
async def cleanup(**_: Any) -> None:
    for task in _tasks:
        task.cancel()
    _tasks.clear()
