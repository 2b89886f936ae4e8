"""The real tritonserver serves a modelops-packaged model with a read-only root filesystem.

The pods the operator renders run Triton with readOnlyRootFilesystem: true
and write only to their volumes: /tmp (the scratch emptyDir, HOME there),
/dev/shm, and the model repository (read-only for Triton). This test gives
the real server exactly that: in a private mount namespace (unshare -m) the
root filesystem is remounted read-only, a scratch directory is bound on
/tmp, the model repository read-only on /mnt. If Triton or its python
backend wrote anywhere else, the model would not load.
"""

from __future__ import annotations

import json
import shlex
import shutil
import subprocess
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import tritonclient.http as httpclient

from modelops.triton.config import ModelSignature, RuntimeSettings, TensorSpec
from modelops.triton.packaging import package_torchscript
from tests.support.models import script_linear, torch_reference
from tests.support.mounts import scratch_on_tmp
from tests.support.triton_server import free_port, prepare_backend_directory

REPO = Path(__file__).resolve().parents[2]

pytestmark = [pytest.mark.triton, pytest.mark.torch, pytest.mark.slow]


def _can_unshare() -> bool:
    if shutil.which("unshare") is None:
        return False
    probe = subprocess.run(
        ["unshare", "-m", "sh", "-c", "mount --make-rprivate / && mount -o remount,bind,ro /"],
        capture_output=True,
        timeout=10,
    )
    return probe.returncode == 0


def test_triton_loads_and_serves_with_only_its_volumes_writable(triton_install, tmp_path):
    if not _can_unshare():
        # Needs CAP_SYS_ADMIN for a private mount namespace; the render tests and the
        # e2e admission test still cover the pod spec itself.
        pytest.skip("cannot create a private mount namespace here (unshare -m)")
    module = script_linear(tmp_path / "linear.pt", seed=3)
    signature = ModelSignature(
        inputs=(TensorSpec.parse("x:fp32:4"),), outputs=(TensorSpec.parse("y:fp32:2"),)
    )
    repo = tmp_path / "repo"
    package_torchscript(
        tmp_path / "linear.pt", repo, "linear", signature, RuntimeSettings(instance_kind="cpu")
    )
    work = tmp_path / "work"
    backends = prepare_backend_directory(triton_install, work)
    if backends.is_relative_to(work):  # built here (a stub beside the python backend)
        backends = Path("/srv") / backends.relative_to(work)
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    http = free_port()
    argv = [
        str(triton_install.binary),
        "--model-repository=/mnt",
        f"--backend-directory={backends}",
        f"--http-port={http}",
        f"--grpc-port={free_port()}",
        f"--metrics-port={free_port()}",
        "--model-control-mode=none",
        "--exit-timeout-secs=5",
    ]
    if triton_install.caches_dir is not None:
        argv.append(f"--cache-directory={triton_install.caches_dir}")
    # Binds first (their sources live under /tmp, which the scratch then covers),
    # the read-only root last: the repository on /mnt and the backend directory
    # built for this install on /srv, both read-only; the scratch on /tmp.
    script = " && ".join(
        [
            "mount --make-rprivate /",
            f"mount --bind {shlex.quote(str(repo))} /mnt",
            "mount -o remount,bind,ro /mnt",
            f"mount --bind {shlex.quote(str(work))} /srv",
            "mount -o remount,bind,ro /srv",
            # A checkout under /tmp (its editable install) stays visible.
            *scratch_on_tmp(scratch, [REPO]),
            "mount -o remount,bind,ro /",
            # The shape really holds: the root refuses writes, /tmp takes them.
            "! touch /.modelops-probe 2>/dev/null",
            "! touch /mnt/.modelops-probe 2>/dev/null",
            "touch /tmp/.modelops-probe",
            "exec " + " ".join(shlex.quote(a) for a in argv),
        ]
    )
    env = triton_install.environment({"PATH": "/usr/bin:/bin", "HOME": "/tmp"})
    log = tmp_path / "tritonserver.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            ["unshare", "-m", "sh", "-c", script], env=env, stdout=out, stderr=subprocess.STDOUT
        )
    try:
        deadline = time.monotonic() + 120
        while True:
            assert proc.poll() is None, log.read_text()[-4000:]
            try:
                with urllib.request.urlopen(
                    f"http://127.0.0.1:{http}/v2/health/ready", timeout=1
                ) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            assert time.monotonic() < deadline, log.read_text()[-4000:]
            time.sleep(0.2)
        client = httpclient.InferenceServerClient(f"127.0.0.1:{http}")
        x = np.random.default_rng(0).standard_normal((3, 4)).astype(np.float32)
        inp = httpclient.InferInput("x", [3, 4], "FP32")
        inp.set_data_from_numpy(x)
        y = client.infer("linear", [inp]).as_numpy("y")
        np.testing.assert_allclose(y, torch_reference(module, x), rtol=1e-5, atol=1e-5)
        metadata = json.loads(
            urllib.request.urlopen(f"http://127.0.0.1:{http}/v2/models/linear").read()
        )
        assert metadata["versions"] == ["1"]
        assert (scratch / ".modelops-probe").exists() and not (repo / ".modelops-probe").exists()
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
