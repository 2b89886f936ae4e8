"""`kubectl modelops` against the real API server: the status view compared with a
golden file, and the controls read back from the object they patched.

The ModelDeployment is the gated sample; its status (tests/plugin/
status_shadow.yaml) is written through the status subresource as the operator
would write it, so what the plugin reads went through the CRD's status schema.
Set MODELOPS_UPDATE_GOLDEN=1 to rewrite the golden files after a deliberate
change of the output.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.plugin.objects import GOLDEN, SAMPLE, shadow_status
from tests.support.cluster import Cluster
from tests.support.operator import get_md, install

pytestmark = pytest.mark.cluster

NAME = "fraud-detector"


@pytest.fixture(scope="module")
def crds(cluster: Cluster) -> Cluster:
    install(cluster)
    return cluster


@pytest.fixture
def md(crds: Cluster, namespace: str) -> str:
    crds.kubectl("apply", "-n", namespace, "-f", str(SAMPLE))
    crds.custom.patch_namespaced_custom_object_status(
        "modelops.io",
        "v1alpha1",
        namespace,
        "modeldeployments",
        NAME,
        {"status": shadow_status()},
    )
    return namespace


def plugin(cluster: Cluster, namespace: str, *args: str) -> subprocess.CompletedProcess[str]:
    """The console script, found by kubectl on PATH as a person would run it."""
    script = Path(sys.executable).parent / "kubectl-modelops"
    if not script.exists():
        pytest.fail(f"{script} missing: refresh the editable install (hack/venv.sh)")
    env = dict(cluster.env)
    env["PATH"] = f"{script.parent}{os.pathsep}{env['PATH']}"
    return subprocess.run(
        ["kubectl", "modelops", "-n", namespace, *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )


def _golden(name: str, text: str, namespace: str) -> None:
    text = text.replace(namespace, "<namespace>")
    path = GOLDEN / name
    if os.environ.get("MODELOPS_UPDATE_GOLDEN") == "1":
        path.write_text(text)
    assert text == path.read_text(), f"output differs from {path}:\n{text}"


def test_status_matches_the_golden_view(crds: Cluster, md: str):
    out = plugin(crds, md, "status", NAME)
    assert out.returncode == 0, out.stderr
    _golden("status_shadow.txt", out.stdout, md)


def test_history_and_why_read_the_live_status(crds: Cluster, md: str):
    history = plugin(crds, md, "history", NAME)
    assert history.returncode == 0, history.stderr
    _golden("history.txt", history.stdout, md)
    why = plugin(crds, md, "why", NAME)
    assert why.returncode == 0, why.stderr
    assert f"{md}/{NAME} is ready: Serving." in why.stdout
    assert "It is not stalled" in why.stdout


def test_promote_writes_the_candidate_into_spec_control(crds: Cluster, md: str):
    out = plugin(crds, md, "promote", NAME)
    assert out.returncode == 0, out.stderr
    live = get_md(crds, md, NAME)
    assert live["spec"]["rollout"]["control"]["promote"] == "8"
    assert live["metadata"]["generation"] == 2
    # abort of the same version clears promote (the CRD refuses promote == abort)
    out = plugin(crds, md, "abort", NAME)
    assert out.returncode == 0, out.stderr
    control = get_md(crds, md, NAME)["spec"]["rollout"]["control"]
    assert control.get("abort") == "8"
    assert "promote" not in control


def test_pause_and_resume_toggle_the_spec_field(crds: Cluster, md: str):
    assert plugin(crds, md, "pause", NAME).returncode == 0
    assert get_md(crds, md, NAME)["spec"]["rollout"]["control"]["paused"] is True
    assert plugin(crds, md, "resume", NAME).returncode == 0
    assert get_md(crds, md, NAME)["spec"]["rollout"]["control"]["paused"] is False


def test_print_patch_leaves_the_object_alone(crds: Cluster, md: str):
    out = plugin(crds, md, "pause", NAME, "--print-patch")
    assert out.returncode == 0, out.stderr
    assert yaml.safe_load(out.stdout) == {"spec": {"rollout": {"control": {"paused": True}}}}
    live = get_md(crds, md, NAME)
    assert "control" not in live["spec"]["rollout"]
    assert live["metadata"]["generation"] == 1


def test_errors_are_one_line_not_a_traceback(crds: Cluster, md: str):
    missing = plugin(crds, md, "status", "nope")
    assert missing.returncode == 1
    assert missing.stderr == f"error: ModelDeployment {md}/nope not found\n"
    crds.custom.patch_namespaced_custom_object_status(
        "modelops.io",
        "v1alpha1",
        md,
        "modeldeployments",
        NAME,
        {"status": {"rollout": {"phase": "Idle", "candidate": None}}},
    )
    idle = plugin(crds, md, "promote", NAME)
    assert idle.returncode == 1
    assert "no candidate under analysis (phase Idle)" in idle.stderr
