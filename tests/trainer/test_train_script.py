"""spec.command: a Kubeflow-style DDP script runs unchanged under `modelops train-script`.

The pods' container (command, args, env) comes from the real renderer; each
node runs as a local process, with the pod DNS name of node 0 mapped to
127.0.0.1 (the e2e test does the same with pods from the API server).
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from modelops.api import constants as c
from modelops.commands.pull import pull_model
from modelops.render.training import render_job
from tests.support import pod_process
from tests.support.cluster import REPO
from tests.support.mounts import scratch_on_tmp
from tests.support.triton_server import free_port
from tests.unit.test_render_trainingjob_fixtures import tj_body

pytestmark = [pytest.mark.torch, pytest.mark.slow]

SCRIPT = REPO / "tests" / "trainer" / "scripts" / "kubeflow_ddp.py"
TRUE_W = [[1.0, -2.0, 0.5, 3.0], [0.0, 1.0, -1.0, 2.0]]


def run_nodes(
    tmp_path: Path, command: list[str], nodes: int, output: str, timeout: float = 240
) -> list[tuple[int, str, Path]]:
    body = tj_body(command=command, nodes=nodes, output={"storageUri": output})
    body["spec"].pop("entrypoint")
    [container] = render_job(body)["spec"]["template"]["spec"]["containers"]
    port = str(free_port())
    procs = []
    for rank in range(nodes):
        pod = tmp_path / f"node-{rank}"
        (pod / "output").mkdir(parents=True)
        (pod / "tmp").mkdir()
        overrides = {
            "MASTER_ADDR": "127.0.0.1",
            "PET_MASTER_ADDR": "127.0.0.1",
            "MASTER_PORT": port,
            "PET_MASTER_PORT": port,
            "MODELOPS_OUTPUT_DIR": str(pod / "output"),
            "HOME": str(pod / "tmp"),
        }
        log = pod / "log"
        term = pod / "termination-log"
        term.write_text("")
        annotations = {c.ANNOTATION_COMPLETION_INDEX: str(rank)}
        procs.append(
            (
                pod_process.start(
                    container, annotations, overrides, cwd=REPO, log=log,
                    extra_args=["--termination-log", str(term)],
                ),
                log,
                term,
            )
        )  # fmt: skip
    results = []
    for proc, log, term in procs:
        try:
            code = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            raise AssertionError(log.read_text()[-3000:]) from None
        results.append((code, log.read_text(), term))
    return results


def test_torchrun_script_on_two_nodes_is_published_as_a_version(tmp_path):
    output = f"file://{tmp_path}/models/ddp"
    results = run_nodes(tmp_path, ["torchrun", str(SCRIPT), "--steps", "150"], 2, output)
    for code, log, _ in results:
        assert code == 0, log[-3000:]
    # torchrun took nnodes, node rank and the master from PET_*: one group of two.
    assert "rank 0 of 2: final loss" in results[0][1]
    document = json.loads(results[0][2].read_text())
    assert (document["outputVersion"], document["model"]) == (1, "fraud-retrain")
    assert document["metrics"]["worldSize"] == 2 and document["metrics"]["loss"] < 0.05
    assert results[1][2].read_text() == ""  # node 1 trains, node 0 publishes

    pulled = pull_model(output, tmp_path / "repo")
    assert pulled.verified and pulled.version == 1
    module = torch.jit.load(str(tmp_path / "repo" / "ddp" / "1" / "model.pt"))
    weight = dict(module.named_parameters())["weight"]
    torch.testing.assert_close(weight, torch.tensor(TRUE_W), atol=0.05, rtol=0)


def test_plain_python_script_is_one_rank_per_node(tmp_path):
    output = f"file://{tmp_path}/models/single"
    [(code, log, term)] = run_nodes(tmp_path, ["python", str(SCRIPT), "--steps", "100"], 1, output)
    assert code == 0, log[-3000:]
    assert "rank 0 of 1" in log  # RANK / WORLD_SIZE from the pod, as torchrun would set
    assert json.loads(term.read_text())["outputVersion"] == 1


def test_a_script_that_writes_no_model_fails_with_a_reason(tmp_path):
    lazy = tmp_path / "lazy.py"
    lazy.write_text("print('trained, but saved nothing')\n")
    [(code, log, term)] = run_nodes(
        tmp_path, [sys.executable, str(lazy)], 1, f"file://{tmp_path}/m/x"
    )
    assert code != 0, log
    error = json.loads(term.read_text())["error"]
    assert error["reason"] == "InvalidOutput"
    assert "MODELOPS_OUTPUT_DIR" in error["message"]


def test_a_failing_script_passes_its_status_on(tmp_path):
    crash = tmp_path / "crash.py"
    crash.write_text("raise SystemExit(3)\n")
    [(code, _, term)] = run_nodes(tmp_path, [sys.executable, str(crash)], 1, f"file://{tmp_path}/m")
    assert code == 3
    assert json.loads(term.read_text())["error"]["reason"] == "TrainingFailed"


def test_the_trainer_runs_with_a_read_only_root(tmp_path):
    """The trainer container's readOnlyRootFilesystem, for real: in a private mount
    namespace the root is read-only; /tmp (scratch, HOME), the output emptyDir
    (/srv here) and the model store (/mnt here) are the only writable places."""
    probe = subprocess.run(
        ["unshare", "-m", "sh", "-c", "mount --make-rprivate / && mount -o remount,bind,ro /"],
        capture_output=True,
    )
    if probe.returncode != 0:
        pytest.skip("cannot create a private mount namespace here (unshare -m)")
    body = tj_body(
        command=["python", str(SCRIPT), "--steps", "50"],
        nodes=1,
        output={"storageUri": "file:///mnt/ro"},
    )
    body["spec"].pop("entrypoint")
    [container] = render_job(body)["spec"]["template"]["spec"]["containers"]
    env = pod_process.resolve_env(
        container,
        {c.ANNOTATION_COMPLETION_INDEX: "0"},
        {"MASTER_ADDR": "127.0.0.1", "PET_MASTER_ADDR": "127.0.0.1",
         "MASTER_PORT": str(free_port()), "MODELOPS_OUTPUT_DIR": "/srv"},
    )  # fmt: skip
    assert env["HOME"] == "/tmp"
    env |= {"PATH": f"{pod_process.VENV_BIN}:/usr/bin:/bin", "OMP_NUM_THREADS": "1"}
    env["PYTHONPATH"] = os.environ.get("PYTHONPATH", "")
    argv = pod_process.local_argv(container)
    argv[argv.index("train-script") + 1 : argv.index("train-script") + 1] = [
        "--termination-log", "/srv/termination-log",
    ]  # fmt: skip
    store, output, scratch = (tmp_path / n for n in ("store", "output", "scratch"))
    for d in (store, output, scratch):
        d.mkdir()
    script = " && ".join(
        [
            "mount --make-rprivate /",
            f"mount --bind {shlex.quote(str(store))} /mnt",
            f"mount --bind {shlex.quote(str(output))} /srv",
            # A checkout under /tmp (the script, the editable install) stays visible.
            *scratch_on_tmp(scratch, [REPO]),
            "mount -o remount,bind,ro /",
            "! touch /.modelops-probe 2>/dev/null",
            "exec " + " ".join(shlex.quote(a) for a in argv),
        ]
    )
    proc = subprocess.run(
        ["unshare", "-m", "sh", "-c", script],
        env=env, cwd=REPO, capture_output=True, text=True, timeout=240,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    assert json.loads((output / "termination-log").read_text())["outputVersion"] == 1
    assert pull_model(f"file://{store}/ro", tmp_path / "repo").verified
