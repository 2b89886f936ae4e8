"""The serving pod of placement InPlace (render/inplace_pod.py) and the agent's flags."""

from __future__ import annotations

import json
from typing import Any

from modelops.drift.cli import pull_settings
from modelops.render.deployment import render_deployment
from modelops.triton.config_patch import RuntimeOverrides
from tests.unit.test_render_fixtures import md_body


def body(placement: str | None) -> dict[str, Any]:
    rollout: dict[str, Any] = {"strategy": "Shadow", "shadow": {"mirrorPercent": 10}}
    if placement:
        rollout["placement"] = placement
    b = md_body(rollout=rollout)
    b["spec"]["model"]["credentialsSecretRef"] = {"name": "s3-creds"}
    b["spec"]["model"]["verifyChecksums"] = False
    return b


def containers(placement: str | None) -> dict[str, dict[str, Any]]:
    dep = render_deployment(body(placement), operator_image="op:1", model_version="7")
    return {c["name"]: c for c in dep["spec"]["template"]["spec"]["containers"]}


def test_in_place_pods_run_triton_in_explicit_mode_and_the_agent_in_the_sidecar() -> None:
    cs = containers("InPlace")
    triton, sidecar = cs["triton"], cs["drift-monitor"]
    assert "--model-control-mode=explicit" in triton["args"]
    assert "--load-model=fraud" in triton["args"]
    assert "--model-control-mode=none" not in triton["args"]
    args = sidecar["args"]
    flag = {a: args[i + 1] for i, a in enumerate(args[:-1]) if a.startswith("--")}
    assert flag["--model-repository"] == "/models" and flag["--model-name"] == "fraud"
    assert flag["--model-uri"] == "s3://models/fraud"
    assert flag["--triton-metrics"].endswith("/metrics")
    assert json.loads(flag["--candidate-runtime"]) == {
        "format": "triton", "gpus": 1, "instancesPerGpu": 1
    }  # fmt: skip
    assert "--allow-unverified" in args
    models = [m for m in sidecar["volumeMounts"] if m["name"] == "models"]
    assert models == [{"name": "models", "mountPath": "/models"}]  # writable
    assert {"secretRef": {"name": "s3-creds"}} in sidecar["envFrom"]
    # Triton itself still reads the repository read-only.
    assert next(m for m in triton["volumeMounts"] if m["name"] == "models")["readOnly"]


def test_separate_pods_are_unchanged() -> None:
    assert containers("Separate") == containers(None)
    triton = containers(None)["triton"]
    assert "--model-control-mode=none" in triton["args"]


def test_pull_settings_from_the_flags() -> None:
    out = pull_settings('{"format":"onnx","gpus":1,"instancesPerGpu":2,"maxBatchSize":8}', True)
    assert out == {
        "allow_unverified": True,
        "model_format": "onnx",
        "overrides": RuntimeOverrides(max_batch_size=8, instance_count=2, gpus=1),
    }
    assert pull_settings("", False) == {"allow_unverified": False}


def test_in_place_readiness_is_the_served_models() -> None:
    in_place, separate = containers("InPlace"), containers(None)
    for name in ("triton", "drift-monitor"):
        assert in_place[name]["readinessProbe"]["httpGet"]["path"] == "/v2/models/fraud/ready"
        assert separate[name]["readinessProbe"]["httpGet"]["path"] == "/v2/health/ready"


def init_containers(placement: str | None, version: str = "7") -> dict[str, dict[str, Any]]:
    dep = render_deployment(body(placement), operator_image="op:1", model_version=version)
    return {c["name"]: c for c in dep["spec"]["template"]["spec"]["initContainers"]}


def test_in_place_init_container_pulls_the_served_version_named_in_the_traffic_file() -> None:
    pull = init_containers("InPlace")["pull-model"]
    args = pull["args"]
    assert args[args.index("--served-version-file") + 1] == "/etc/modelops/traffic/traffic.json"
    assert args[args.index("--version") + 1] == "7"  # when the file names none
    traffic = next(m for m in pull["volumeMounts"] if m["name"] == "traffic")
    assert traffic == {"name": "traffic", "mountPath": "/etc/modelops/traffic", "readOnly": True}
    # Separate pods pull the template's version only.
    separate = init_containers("Separate")["pull-model"]
    assert "--served-version-file" not in separate["args"]
    assert init_containers("Separate") == init_containers(None)


def test_pull_model_reads_the_served_version_from_the_traffic_file(tmp_path) -> None:
    from modelops.commands.pull_cli import served_version

    f = tmp_path / "traffic.json"
    assert served_version(f) is None  # no ConfigMap yet (optional volume)
    assert served_version(None) is None
    for content, expected in [
        ('{"served": "8"}', "8"),
        ('{"served": 8, "candidate": {"version": "9", "inPlace": {}}}', "8"),
        ("{}", None),
        ('{"served": "../8"}', None),
        ('{"served": true}', None),
        ("[1]", None),
        ("not json", None),
        ('{"served": "' + "9" * 20 + '"}', None),
        ('{"served": "8", "pad": "' + "x" * (1 << 20) + '"}', None),  # over the size cap
    ]:
        f.write_text(content)
        assert served_version(f) == expected, content
