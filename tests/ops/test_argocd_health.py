"""The Argo CD health scripts in deploy/argocd, run by a real Lua 5.1 interpreter.

Argo CD evaluates health.lua with gopher-lua, a Lua 5.1 implementation, in a
VM that offers the base, string, table and math libraries. Each script runs
here under PUC Lua 5.1 and LuaJIT 2.1 (both through lupa) in an environment
holding only those, so a Lua 5.2+ construct or a call into os/io fails.

The ModelDeployment objects carry statuses computed by derive_status from
the same cluster objects as tests/unit/test_render_status.py, one per rollout
stage, so the scripts are checked against what the operator really writes.
"""

from __future__ import annotations

import copy
import importlib.util
import json
import sys
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from modelops.api.conditions import TRAINING_JOB_CONDITIONS
from modelops.api.crd import MODEL_DEPLOYMENT, TRAINING_JOB, root_schema
from modelops.render.gating import (
    CandidatePods,
    ObservedFigures,
    Target,
    VersionFigures,
    decide_gated_rollout,
)
from modelops.render.status import derive_status
from modelops.render.training.status import derive_trainingjob_status
from tests.unit.test_render_fixtures import (
    GPU_MESSAGE,
    NOW,
    crash,
    deployment,
    md_body,
    pod,
    waiting,
)

REPO = Path(__file__).resolve().parents[2]
MD_STATUS_SCHEMA = root_schema(MODEL_DEPLOYMENT)["properties"]["status"]
ARGOCD = REPO / "deploy" / "argocd"
FIXTURES = Path(__file__).resolve().parent / "fixtures" / "argocd"
MD_SCRIPT = ARGOCD / "modeldeployment-health.lua"
TJ_SCRIPT = ARGOCD / "trainingjob-health.lua"
ARGOCD_STATUSES = {"Healthy", "Progressing", "Degraded", "Suspended", "Missing", "Unknown"}

# What Argo CD's Lua VM offers a health script (base, string, table, math).
SANDBOX = """
return function(src, obj)
  local fn, err = loadstring(src, "=health.lua")
  if fn == nil then error(err) end
  local env = {
    obj = obj, ipairs = ipairs, pairs = pairs, next = next, type = type,
    tostring = tostring, tonumber = tonumber, select = select, unpack = unpack,
    error = error, pcall = pcall, string = string, table = table, math = math,
  }
  setfenv(fn, env)
  local hs = fn()
  local leaked = {}
  for k, _ in pairs(env) do
    if k ~= "obj" and _G[k] == nil then table.insert(leaked, k) end
  end
  return hs, table.concat(leaked, ",")
end
"""


def _runtimes() -> list[Any]:
    import lupa.lua51
    import lupa.luajit21

    return [lupa.lua51.LuaRuntime(), lupa.luajit21.LuaRuntime()]


RUNTIMES = _runtimes()


def _to_lua(runtime: Any, value: Any) -> Any:
    if isinstance(value, dict):
        return runtime.table_from({k: _to_lua(runtime, v) for k, v in value.items()})
    if isinstance(value, list):
        return runtime.table_from([_to_lua(runtime, v) for v in value])
    return value


def health(script: Path, obj: dict[str, Any]) -> dict[str, str]:
    """Argo CD's verdict on obj, which must be the same in every runtime."""
    results = []
    for runtime in RUNTIMES:
        runner = runtime.execute(SANDBOX)
        hs, leaked = runner(script.read_text(), _to_lua(runtime, copy.deepcopy(obj)))
        assert leaked == "", f"{script.name} sets globals: {leaked}"
        assert hs is not None, f"{script.name} returned nothing"
        out = {str(k): v for k, v in hs.items()}
        assert set(out) == {"status", "message"}, out
        assert out["status"] in ARGOCD_STATUSES, out
        assert isinstance(out["message"], str) and out["message"], out
        results.append(out)
    assert all(r == results[0] for r in results), results
    return results[0]


# --- ModelDeployment: statuses from derive_status -----------------------------------


def md_object(
    *,
    body: dict[str, Any] | None = None,
    dep: dict[str, Any] | None = None,
    pods: list[dict[str, Any]] | None = None,
    drift: dict[str, Any] | None = None,
    rollout: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The ModelDeployment as Argo CD sees it after the operator wrote its status."""
    obj = body or md_body()
    obj = copy.deepcopy(obj)
    obj["status"] = derive_status(
        obj,
        deployment=dep,
        pods=pods or [],
        events=[],
        autoscaler=None,
        keda_missing=False,
        drift=drift,
        now=NOW,
        previous_conditions=None,
        rollout=rollout,
    )
    return obj


def _new_pod(**kw: Any) -> dict[str, Any]:
    return pod("fraud-5c4b7d9e8-q7w2z", version="4", template_hash="5c4b7d9e8", **kw)


def _old_pod() -> dict[str, Any]:
    return pod("fraud-7d9f8c6b5-x2x4q", version="3")


def _cond(obj: dict[str, Any], ctype: str) -> dict[str, Any]:
    return next(c for c in obj["status"]["conditions"] if c["type"] == ctype)


# name -> (object builder, expected Argo CD status, text the message must contain)
STAGES: dict[str, tuple[Callable[[], dict[str, Any]], str, str]] = {
    "new: Deployment not created yet": (
        lambda: md_object(dep=None),
        "Progressing",
        "Creating: creating the Triton Deployment",
    ),
    "first pods downloading the model": (
        lambda: md_object(dep=deployment(ready=0, available=0), pods=[pod(pulling=True)]),
        "Progressing",
        "ScalingUp: 0/1 replicas available; downloading the model",
    ),
    "first pods loading the model": (
        lambda: md_object(dep=deployment(ready=0, available=0), pods=[pod(loading=True)]),
        "Progressing",
        "ScalingUp: 0/1 replicas available; loading the model",
    ),
    "rolling: replaced in place, nothing serves": (
        lambda: md_object(
            dep=deployment(replicas=1, updated=1, ready=0, version="4"),
            pods=[_new_pod(loading=True)],
            rollout={"replaceInPlace": True, "reason": "surge pod found no GPU"},
        ),
        "Progressing",
        "ReplacingInPlace: surge pod found no GPU",
    ),
    "serving version 3 while rolling out 4": (
        lambda: md_object(
            dep=deployment(replicas=2, updated=1, ready=1, version="4"),
            pods=[_old_pod(), _new_pod(loading=True)],
        ),
        "Progressing",
        "RollingOut: rolling out version 4: 1/1 replicas updated; loading the model",
    ),
    "surge pod waiting for a GPU within the grace period": (
        lambda: md_object(
            dep=deployment(replicas=2, updated=1, ready=1, version="4"),
            pods=[_old_pod(), _new_pod(unschedulable=GPU_MESSAGE, unschedulable_for=30)],
        ),
        "Progressing",
        "waiting for a node: 0/6 nodes are available",
    ),
    "ready": (
        lambda: md_object(dep=deployment(), pods=[pod()]),
        "Healthy",
        "serving model fraud version 3 on 1/1 replicas",
    ),
    "ready after the rollout": (
        lambda: md_object(dep=deployment(version="4"), pods=[_new_pod()]),
        "Healthy",
        "serving model fraud version 4 on 1/1 replicas",
    ),
    "scaled to zero": (
        lambda: md_object(body=md_body(replicas=0), dep=deployment(desired=0, replicas=0, ready=0)),
        "Healthy",
        "scaled to zero replicas",
    ),
    "unschedulable beyond the grace period": (
        lambda: md_object(
            dep=deployment(ready=0, available=0),
            pods=[pod(unschedulable=GPU_MESSAGE, unschedulable_for=120)],
        ),
        "Degraded",
        "Unschedulable: " + GPU_MESSAGE,
    ),
    "Triton in a crash loop": (
        lambda: md_object(dep=deployment(ready=0, available=0), pods=[pod(triton=crash())]),
        "Degraded",
        "CrashLoopBackOff: pod fraud-7d9f8c6b5-x2x4q: container triton keeps crashing",
    ),
    "new version crash-loops while the old one serves": (
        lambda: md_object(
            dep=deployment(replicas=2, updated=1, ready=1, version="4"),
            pods=[_old_pod(), _new_pod(triton=crash("OOMKilled", 137))],
        ),
        "Degraded",
        "CrashLoopBackOff: pod fraud-5c4b7d9e8-q7w2z: container triton keeps crashing: "
        "last exit OOMKilled (code 137)",
    ),
    "image cannot be pulled": (
        lambda: md_object(
            dep=deployment(ready=0, available=0),
            pods=[pod(triton=waiting("ImagePullBackOff", 'Back-off pulling image "x"'))],
        ),
        "Degraded",
        "ImagePullBackOff: ",
    ),
    "ready and drifted": (
        lambda: md_object(
            body=md_body(
                driftMonitor={
                    "enabled": True,
                    "reference": {"uri": "s3://models/fraud/reference.json"},
                    "threshold": 0.2,
                }
            ),
            dep=deployment(),
            pods=[pod()],
            drift={"score": 0.31, "drifted": True, "features": {"amount": 0.31}},
        ),
        "Healthy",
        "serving model fraud version 3 on 1/1 replicas; input drift detected (ksz score 0.31",
    ),
}


@pytest.mark.parametrize("stage", list(STAGES))
def test_modeldeployment_rollout_stages(stage):
    build, expected, text = STAGES[stage]
    obj = build()
    hs = health(MD_SCRIPT, obj)
    assert hs["status"] == expected, (hs, obj["status"]["conditions"])
    assert text in hs["message"], hs


@pytest.mark.parametrize("stage", list(STAGES))
def test_modeldeployment_verdict_agrees_with_kstatus(stage):
    """Argo CD's verdict is the kstatus reading of the conditions, whatever the stage."""
    obj = STAGES[stage][0]()
    status = {c["type"]: c["status"] for c in obj["status"]["conditions"]}
    hs = health(MD_SCRIPT, obj)
    if status["Stalled"] == "True":
        assert hs["status"] == "Degraded"
        assert _cond(obj, "Stalled")["message"] in hs["message"]
    elif status["Reconciling"] == "True" or status["Ready"] != "True":
        assert hs["status"] == "Progressing"
    else:
        assert hs["status"] == "Healthy"
        assert hs["message"].startswith(_cond(obj, "Ready")["message"])


def test_modeldeployment_without_status_is_progressing():
    hs = health(MD_SCRIPT, md_body())
    assert hs == {
        "status": "Progressing",
        "message": "Waiting for the modelops operator to report status",
    }
    obj = md_body()
    obj["status"] = {"kopf": {"progress": {}}}  # only kopf's bookkeeping so far
    assert health(MD_SCRIPT, obj)["status"] == "Progressing"


@pytest.mark.parametrize("observed", [3, None])
def test_modeldeployment_status_of_an_older_generation_is_progressing(observed):
    """A spec edit is not Healthy (nor Degraded) until the operator has seen it."""
    for build in (STAGES["ready"][0], STAGES["Triton in a crash loop"][0]):
        obj = build()
        assert obj["metadata"]["generation"] == 4
        if observed is None:
            del obj["status"]["observedGeneration"]
        else:
            obj["status"]["observedGeneration"] = observed
        hs = health(MD_SCRIPT, obj)
        assert hs == {
            "status": "Progressing",
            "message": "Waiting for the modelops operator to observe generation 4",
        }


def test_modeldeployment_observed_newer_generation_is_fine():
    obj = STAGES["ready"][0]()
    obj["status"]["observedGeneration"] = 5  # e.g. read from a stale cache
    assert health(MD_SCRIPT, obj)["status"] == "Healthy"


def test_modeldeployment_not_ready_without_a_cause_is_progressing():
    obj = STAGES["ready"][0]()
    ready = _cond(obj, "Ready")
    ready.update(status="False", reason="InsufficientReplicas", message="0/1 replicas available")
    hs = health(MD_SCRIPT, obj)
    assert hs == {
        "status": "Progressing",
        "message": "InsufficientReplicas: 0/1 replicas available",
    }


def test_modeldeployment_without_ready_condition_is_progressing():
    obj = STAGES["ready"][0]()
    obj["status"]["conditions"] = [c for c in obj["status"]["conditions"] if c["type"] != "Ready"]
    assert health(MD_SCRIPT, obj) == {
        "status": "Progressing",
        "message": "Waiting for the Ready condition",
    }


def test_modeldeployment_condition_without_message_or_reason():
    obj = STAGES["Triton in a crash loop"][0]()
    stalled = _cond(obj, "Stalled")
    stalled["message"] = ""
    assert health(MD_SCRIPT, obj)["message"] == "CrashLoopBackOff: no progress possible"
    del stalled["reason"]
    assert health(MD_SCRIPT, obj)["message"] == "no progress possible"


# --- ModelDeployment: gated rollouts (status.rollout from decide_gated_rollout) --------

GATED = {
    "strategy": "Shadow",
    "shadow": {"mirrorPercent": 10, "duration": "10m"},
    "analysis": {"minRequests": 100, "minAgreement": 0.95},
    "maxSurge": 1,
    "maxUnavailable": 0,
    "surgeTimeoutSeconds": 60,
}


def gated_object(
    *ticks: tuple[float, CandidatePods, ObservedFigures | None],
    rollout: dict[str, Any] | None = None,
    version: str = "latest",
) -> dict[str, Any]:
    """A serving ModelDeployment (version 3 stable, Ready) whose status.rollout is what
    the gated-rollout decision wrote after the given ticks, candidate version 4."""
    rollout = rollout or GATED
    body = md_body(rollout=rollout)
    body["spec"]["model"]["version"] = version
    obj = md_object(body=body, dep=deployment(), pods=[pod()])
    previous: dict[str, Any] | None = {"phase": "Idle", "stable": "3"}
    history: list[dict[str, Any]] = []
    for minutes, pods, figures in ticks:
        plan = decide_gated_rollout(
            body,
            target=Target("4", {"kind": "Latest"}),
            previous=previous,
            history=history,
            figures=figures,
            candidate=pods,
            replicas=1,
            serving="3",
            now=NOW + timedelta(minutes=minutes),
        )
        previous, history = plan.status, plan.history
    obj["status"]["rollout"] = previous
    obj["status"]["history"] = history
    jsonschema.Draft4Validator(MD_STATUS_SCHEMA).validate(obj["status"])
    return obj


_READY = CandidatePods(desired=1, ready=1)
_START = (0.0, CandidatePods(desired=1, ready=0), None)
_SHADOW = (1.0, _READY, ObservedFigures())


def _figures(mirrored: int, agreed: int) -> ObservedFigures:
    return ObservedFigures(
        stable=VersionFigures(mirrored * 10, 0, 0.1),
        candidate=VersionFigures(mirrored, 0, 0.1),
        mirrored=mirrored,
        agreed=agreed,
    )


GATED_STAGES: dict[str, tuple[Callable[[], dict[str, Any]], str, str]] = {
    "candidate starting": (
        lambda: gated_object(_START),
        "Progressing",
        "Waiting: candidate version 4 starting: 0/1 pods ready",
    ),
    "shadow analysis": (
        lambda: gated_object(_START, _SHADOW, (3.0, _READY, _figures(40, 40))),
        "Progressing",
        "Shadow: shadow (step 1/1): mirroring 10% of requests to version 4",
    ),
    "promoting": (
        lambda: gated_object(
            _START, _SHADOW, (12.0, CandidatePods(desired=1, ready=0), _figures(1000, 1000))
        ),
        "Progressing",
        "Promoting: promoting version 4 over 3",
    ),
    "paused": (
        lambda: gated_object(
            _START,
            _SHADOW,
            (3.0, _READY, _figures(40, 40)),
            rollout={**GATED, "control": {"paused": True}},
        ),
        "Suspended",
        "Paused: paused by spec.rollout.control.paused",
    ),
    "promoted": (
        lambda: gated_object(_START, _SHADOW, (12.0, _READY, _figures(1000, 1000))),
        "Healthy",
        "serving model fraud version 3 on 1/1 replicas",
    ),
    "rolled back, following latest": (
        lambda: gated_object(_START, _SHADOW, (12.0, _READY, _figures(412, 334))),
        "Healthy",
        "rolled back version 4: agreement 0.811 < minAgreement 0.95 over 412 mirrored "
        "requests (at most 0.87",
    ),
    "rolled back, pinned by the spec": (
        lambda: gated_object(_START, _SHADOW, (12.0, _READY, _figures(412, 334)), version="4"),
        "Degraded",
        "RolledBack: spec.model.version pins version 4, which was rolled back: rolled back "
        "version 4: agreement 0.811 < minAgreement 0.95",
    ),
}


@pytest.mark.parametrize("stage", list(GATED_STAGES))
def test_modeldeployment_gated_rollout_stages(stage):
    build, expected, text = GATED_STAGES[stage]
    obj = build()
    hs = health(MD_SCRIPT, obj)
    assert hs["status"] == expected, (hs, obj["status"]["rollout"])
    assert text in hs["message"], hs


def test_stalled_candidate_is_degraded_with_the_schedulers_words():
    """The controller turns plan.stalled into Stalled=True; Argo CD then says Degraded."""
    stuck = CandidatePods(desired=1, ready=0, unschedulable=GPU_MESSAGE, unschedulable_since=NOW)
    obj = gated_object(_START, (5.0, stuck, None))
    assert obj["status"]["rollout"]["stalled"] is True
    stalled = _cond(obj, "Stalled")
    stalled.update(
        status="True", reason="CandidateUnschedulable", message=obj["status"]["rollout"]["message"]
    )
    hs = health(MD_SCRIPT, obj)
    assert hs["status"] == "Degraded" and GPU_MESSAGE in hs["message"]


def test_rollout_phase_does_not_hide_an_older_generation():
    obj = GATED_STAGES["shadow analysis"][0]()
    obj["status"]["observedGeneration"] = 3
    assert health(MD_SCRIPT, obj)["status"] == "Progressing"
    assert "observe generation 4" in health(MD_SCRIPT, obj)["message"]


# --- TrainingJob: statuses from derive_trainingjob_status ----------------------------

TJ_STATUS_SCHEMA = root_schema(TRAINING_JOB)["properties"]["status"]
STARTED = "2026-11-25T11:00:00Z"


def tj_body(**spec: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "apiVersion": "modelops.io/v1alpha1",
        "kind": "TrainingJob",
        "metadata": {"name": "fraud-retrain", "namespace": "ml", "generation": 2, "uid": "7c1e"},
        "spec": {
            "entrypoint": "modelops.trainer.examples.tabular",
            "nodes": 2,
            "procsPerNode": 1,
            "dataset": {"uri": "s3://data/fraud/2026-11"},
            "output": {"storageUri": "s3://models/fraud"},
            "backoffLimit": 1,
            "suspend": False,
        },
    }
    body["spec"].update(spec)
    return body


def batch_job(attempt: int = 0, *conditions: tuple[str, str, str], suspend: bool = False):
    """The Indexed Job of one attempt, with (type, reason, message) True conditions."""
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": f"fraud-retrain-a{attempt}", "namespace": "ml"},
        "spec": {"suspend": suspend, "completionMode": "Indexed", "completions": 2},
        "status": {
            "startTime": STARTED,
            "conditions": [
                {
                    "type": t,
                    "status": "True",
                    "reason": r,
                    "message": m,
                    "lastTransitionTime": "2026-11-25T11:50:00Z",
                }
                for t, r, m in conditions
            ],
        },
    }


def trainer_pod(
    rank: int,
    attempt: int = 0,
    *,
    phase: str = "Running",
    exited: dict[str, Any] | None = None,
    unschedulable: str | None = None,
) -> dict[str, Any]:
    state = {"terminated": exited} if exited else {"running": {"startedAt": STARTED}}
    pod: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": f"fraud-retrain-a{attempt}-{rank}-k7q2x",
            "namespace": "ml",
            "labels": {"batch.kubernetes.io/job-name": f"fraud-retrain-a{attempt}"},
            "annotations": {"batch.kubernetes.io/job-completion-index": str(rank)},
        },
        "spec": {"nodeName": "gpu-h100-0", "containers": [{"name": "trainer"}]},
        "status": {
            "phase": phase,
            "conditions": [{"type": "PodScheduled", "status": "True"}],
            "containerStatuses": [
                {"name": "trainer", "ready": phase == "Running", "restartCount": 0, "state": state}
            ],
        },
    }
    if unschedulable:
        del pod["spec"]["nodeName"]
        pod["status"] = {
            "phase": "Pending",
            "conditions": [
                {
                    "type": "PodScheduled",
                    "status": "False",
                    "reason": "Unschedulable",
                    "message": unschedulable,
                    "lastTransitionTime": STARTED,
                }
            ],
        }
    return pod


def tj_object(body: dict[str, Any] | None = None, **inputs: Any) -> dict[str, Any]:
    """The TrainingJob as Argo CD sees it after the operator wrote its status."""
    obj = copy.deepcopy(body or tj_body())
    inputs.setdefault("pods", [])
    inputs.setdefault("previous_status", None)
    inputs.setdefault("restarts", 0)
    status = derive_trainingjob_status(obj, now=NOW, **inputs)
    jsonschema.Draft4Validator(TJ_STATUS_SCHEMA).validate(status)
    for c in status["conditions"]:
        assert c["reason"] in TRAINING_JOB_CONDITIONS[c["type"]][1], (c["type"], c["reason"])
    obj["status"] = status
    return obj


PUBLISHED = {
    "exitCode": 0,
    "reason": "Completed",
    "finishedAt": "2026-11-25T11:55:00Z",
    "message": json.dumps({"outputVersion": 8, "metrics": {"loss": 0.021}}),
}
OOM = {"exitCode": 137, "reason": "OOMKilled", "finishedAt": "2026-11-25T11:55:00Z"}
ERROR = {"exitCode": 1, "reason": "Error", "finishedAt": "2026-11-25T11:56:00Z"}
BACKOFF = ("Failed", "BackoffLimitExceeded", "Job has reached the specified backoff limit")

TJ_STAGES: dict[str, tuple[Callable[[], dict[str, Any]], str, str]] = {
    "creating the Job": (
        lambda: tj_object(job=None),
        "Progressing",
        "Creating: creating Job fraud-retrain-a0",
    ),
    "running": (
        lambda: tj_object(job=batch_job(0), pods=[trainer_pod(0), trainer_pod(1)]),
        "Progressing",
        "AllNodesRunning: training on 2 nodes x 1 processes (world size 2), attempt 0",
    ),
    "waiting for a GPU node is not a stall": (
        lambda: tj_object(
            job=batch_job(0),
            pods=[trainer_pod(0), trainer_pod(1, unschedulable=GPU_MESSAGE)],
        ),
        "Progressing",
        "WaitingForNodes: 1/2 nodes running; waiting for a node: " + GPU_MESSAGE,
    ),
    "suspended": (
        lambda: tj_object(tj_body(suspend=True), job=batch_job(0, suspend=True)),
        "Suspended",
        "Suspended: spec.suspend is set",
    ),
    "waiting for Kueue admission": (
        lambda: tj_object(tj_body(queueName="gpu-queue"), job=batch_job(0, suspend=True)),
        "Suspended",
        "WaitingForAdmission: waiting for Kueue to admit the Job from queue gpu-queue",
    ),
    "suspending: pods still stopping": (
        lambda: tj_object(
            tj_body(suspend=True),
            job=batch_job(0, suspend=True),
            pods=[trainer_pod(0), trainer_pod(1)],
        ),
        "Progressing",
        "Suspending: spec.suspend is set: stopping 2 pods",
    ),
    "succeeded": (
        lambda: tj_object(
            job=batch_job(0, ("Complete", "CompletionsReached", "")),
            pods=[
                trainer_pod(0, phase="Succeeded", exited=PUBLISHED),
                trainer_pod(1, phase="Succeeded", exited={**PUBLISHED, "message": ""}),
            ],
        ),
        "Healthy",
        "Succeeded: training finished; published model fraud-retrain version 8",
    ),
    "failed: backoffLimit used up": (
        lambda: tj_object(
            job=batch_job(1, BACKOFF),
            pods=[
                trainer_pod(0, 1, phase="Failed", exited=ERROR),
                trainer_pod(1, 1, phase="Failed", exited=OOM),
            ],
            restarts=1,
        ),
        "Degraded",
        "BackoffLimitExceeded: attempt 1 failed and all 1 restarts of spec.backoffLimit are "
        "used: rank 1 (pod fraud-retrain-a1-1-k7q2x)",
    ),
    "restarting after a failed node": (
        lambda: tj_object(
            job=batch_job(0, BACKOFF),
            pods=[trainer_pod(0, phase="Failed", exited=ERROR), trainer_pod(1)],
        ),
        "Progressing",
        "Restarting: attempt 0 failed: rank 0",
    ),
}


@pytest.mark.parametrize("stage", list(TJ_STAGES))
def test_trainingjob_stages(stage):
    build, expected, text = TJ_STAGES[stage]
    obj = build()
    hs = health(TJ_SCRIPT, obj)
    assert hs["status"] == expected, (hs, obj["status"])
    assert text in hs["message"], hs


def test_trainingjob_failure_names_the_rank_and_the_reason():
    obj = TJ_STAGES["failed: backoffLimit used up"][0]()
    message = health(TJ_SCRIPT, obj)["message"]
    assert "rank 1" in message and "OOMKilled" in message, message


def _tj_status(phase: str | None, conditions: dict[str, tuple[str, str, str]], **extra: Any):
    """A hand-written status: {type: (status, reason, message)} (corner cases)."""
    obj = tj_body()
    status: dict[str, Any] = {"observedGeneration": 2, **extra}
    if phase:
        status["phase"] = phase
    if conditions:
        status["conditions"] = [
            {"type": t, "status": s, "reason": r, "message": m, "lastTransitionTime": STARTED}
            for t, (s, r, m) in conditions.items()
        ]
    obj["status"] = status
    return obj


OOM_POD = {"rank": 1, "pod": "fraud-retrain-a3-1", "attempt": 3, "reason": "OOMKilled"}

TJ_CORNERS: dict[str, tuple[dict[str, Any], str, str]] = {
    "no status": (tj_body(), "Progressing", "Waiting for the modelops operator to report status"),
    "phase only: Running": (_tj_status("Running", {}), "Progressing", "phase Running"),
    "phase only: Suspended": (_tj_status("Suspended", {}), "Suspended", "suspended"),
    "phase only: Succeeded": (
        _tj_status("Succeeded", {}, outputVersion="8"),
        "Healthy",
        "training succeeded (output version 8)",
    ),
    "phase only: Failed": (_tj_status("Failed", {}), "Degraded", "training failed"),
    "phase and an empty condition list": (
        {**tj_body(), "status": {"observedGeneration": 2, "phase": "Failed", "conditions": []}},
        "Degraded",
        "training failed",
    ),
    "failure message without the rank: from failedPods": (
        _tj_status(
            "Failed",
            {"Failed": ("True", "DeadlineExceeded", "spec.activeDeadlineSeconds (7200s) passed")},
            failedPods=[{**OOM_POD, "exitCode": 137}],
        ),
        "Degraded",
        "DeadlineExceeded: spec.activeDeadlineSeconds (7200s) passed; first failure: "
        "rank 1 (pod fraud-retrain-a3-1) OOMKilled, exit code 137",
    ),
    "failedPods entry without rank or exit code": (
        _tj_status(
            "Failed",
            {"Failed": ("True", "BackoffLimitExceeded", "")},
            failedPods=[{"pod": "fraud-retrain-a3-1", "attempt": 3, "reason": "Evicted"}],
        ),
        "Degraded",
        "BackoffLimitExceeded: training failed; first failure: pod fraud-retrain-a3-1 Evicted",
    ),
    "stalled without Failed": (
        _tj_status(
            "Pending",
            {
                "Stalled": ("True", "ImagePullBackOff", 'Back-off pulling image "trainer:9.9"'),
                "Failed": ("False", "NoFailure", "the job has not failed"),
            },
        ),
        "Degraded",
        'ImagePullBackOff: Back-off pulling image "trainer:9.9"',
    ),
    "Failed wins over contradicting conditions": (
        _tj_status(
            "Running",
            {
                "Failed": ("True", "DeadlineExceeded", "spec.activeDeadlineSeconds passed"),
                "Running": ("True", "AllNodesRunning", "still reported"),
                "Suspended": ("True", "Suspended", "also"),
                "Ready": ("True", "Succeeded", "contradicts Failed"),
            },
        ),
        "Degraded",
        "DeadlineExceeded: spec.activeDeadlineSeconds passed",
    ),
    "conditions without Ready, Running or Reconciling": (
        _tj_status(None, {"Created": ("True", "JobCreated", "Job fraud-retrain-a0")}),
        "Progressing",
        "phase unknown",
    ),
}


@pytest.mark.parametrize("case", list(TJ_CORNERS))
def test_trainingjob_corner_cases(case):
    obj, expected, message = TJ_CORNERS[case]
    assert health(TJ_SCRIPT, obj) == {"status": expected, "message": message}


@pytest.mark.parametrize("observed", [1, None])
def test_trainingjob_status_of_an_older_generation_is_progressing(observed):
    """Setting spec.suspend (or any edit) bumps the generation: Progressing until the
    operator has written a status for it, whatever the old status said."""
    for stage in ("running", "succeeded", "failed: backoffLimit used up"):
        obj = TJ_STAGES[stage][0]()
        if observed is None:
            del obj["status"]["observedGeneration"]
        else:
            obj["status"]["observedGeneration"] = observed
        assert health(TJ_SCRIPT, obj) == {
            "status": "Progressing",
            "message": "Waiting for the modelops operator to observe generation 2",
        }


# --- fixtures captured from a cluster ------------------------------------------------


def _captured() -> list[Path]:
    return sorted(FIXTURES.glob("*.yaml")) if FIXTURES.is_dir() else []


@pytest.mark.parametrize("path", _captured(), ids=lambda p: p.name)
def test_captured_objects(path):
    """Objects saved from a cluster, with the verdict they must get (`expect`)."""
    doc = yaml.safe_load(path.read_text())
    obj, expect = doc["object"], doc["expect"]
    script = {"ModelDeployment": MD_SCRIPT, "TrainingJob": TJ_SCRIPT}[obj["kind"]]
    hs = health(script, obj)
    assert hs["status"] == expect["status"], hs
    assert expect.get("messageContains", "") in hs["message"], hs


# --- argocd-cm snippet ---------------------------------------------------------------


def _generator() -> Any:
    spec = importlib.util.spec_from_file_location("argocd_generate_cm", ARGOCD / "generate_cm.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_argocd_cm_embeds_the_current_scripts_verbatim():
    cm = yaml.safe_load((ARGOCD / "argocd-cm.yaml").read_text())
    assert cm["kind"] == "ConfigMap" and cm["metadata"]["name"] == "argocd-cm"
    assert cm["data"] == {
        "resource.customizations.health.modelops.io_ModelDeployment": MD_SCRIPT.read_text(),
        "resource.customizations.health.modelops.io_TrainingJob": TJ_SCRIPT.read_text(),
    }, "stale: run python deploy/argocd/generate_cm.py"


def test_argocd_cm_is_what_the_generator_writes():
    gen = _generator()
    assert (ARGOCD / "argocd-cm.yaml").read_text() == gen.render(), (
        "stale: run python deploy/argocd/generate_cm.py"
    )
    assert gen.main(["--check"]) == 0


def test_generator_rejects_scripts_yaml_cannot_carry_verbatim():
    gen = _generator()
    with pytest.raises(ValueError):
        gen._block("hs = {}\n\n", "    ")
    with pytest.raises(ValueError):
        gen._block("  indented = 1\n", "    ")
