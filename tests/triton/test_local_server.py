"""The local Triton helper against the real tritonserver binary (no torch needed)."""

from __future__ import annotations

import os
import signal
import socket
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import tritonclient.http as httpclient

from tests.support.models import write_doubling_model
from tests.support.triton_server import WHEEL_TRITON_VERSION, TritonServer, TritonStartError

pytestmark = pytest.mark.triton


def group_members(pgid: int) -> list[int]:
    """Live (non-zombie) processes in process group ``pgid``, from /proc."""
    members = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # Fields after the ")" closing the command name: state ppid pgrp ...
        fields = stat.rsplit(")", 1)[1].split()
        if int(fields[2]) == pgid and fields[0] != "Z":
            members.append(int(entry.name))
    return members


def wait_for(predicate, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()


@pytest.fixture(scope="module")
def doubling(triton_factory, tmp_path_factory) -> TritonServer:
    repo = tmp_path_factory.mktemp("repo")
    write_doubling_model(repo)
    return triton_factory(repo)


def test_serves_a_python_model_on_all_endpoints(doubling):
    assert doubling.server_version == WHEEL_TRITON_VERSION
    for url in (f"{doubling.http_url}/v2/health/live", f"{doubling.http_url}/v2/health/ready"):
        with urllib.request.urlopen(url, timeout=5) as resp:
            assert resp.status == 200
    client = httpclient.InferenceServerClient(doubling.http_address)
    x = np.arange(6, dtype=np.float32).reshape(2, 3)
    inp = httpclient.InferInput("INPUT", list(x.shape), "FP32")
    inp.set_data_from_numpy(x)
    np.testing.assert_array_equal(client.infer("double", [inp]).as_numpy("OUTPUT"), x * 2)
    with urllib.request.urlopen(doubling.metrics_url, timeout=5) as resp:
        assert b"nv_inference_request_success" in resp.read()
    assert "Started HTTPService" in doubling.log_path.read_text()


def test_stop_leaves_no_processes(triton_factory, tmp_path):
    write_doubling_model(tmp_path / "repo")
    server = triton_factory(tmp_path / "repo")
    pgid = server.pid
    assert pgid is not None
    # The server and the model's python-backend stub share the server's group.
    assert len(group_members(pgid)) >= 2
    server.stop()
    assert not server.is_running()
    assert wait_for(lambda: not group_members(pgid))
    server.stop()  # idempotent


def test_a_crashed_server_does_not_leave_its_stubs_behind(triton_factory, tmp_path):
    write_doubling_model(tmp_path / "repo")
    server = triton_factory(tmp_path / "repo")
    pgid = server.pid
    assert pgid is not None
    os.kill(pgid, signal.SIGKILL)  # the server dies without shutting its stubs down
    server.stop()
    assert wait_for(lambda: not group_members(pgid))


def test_model_that_fails_to_load_reports_the_log(triton_install, tmp_path):
    broken = (
        "class TritonPythonModel:\n"
        "    def initialize(self, args):\n"
        "        raise RuntimeError('boom-42')\n"
    )
    write_doubling_model(tmp_path / "repo", model_py=broken)
    started = time.monotonic()
    with pytest.raises(TritonStartError) as err:
        TritonServer(tmp_path / "repo", install=triton_install, work_dir=tmp_path / "w").start()
    assert time.monotonic() - started < 30
    assert "boom-42" in str(err.value)
    assert str(tmp_path / "w" / "tritonserver.log") in str(err.value)


def test_explicit_busy_port_is_an_error(triton_install, tmp_path):
    (tmp_path / "repo").mkdir()
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        busy = sock.getsockname()[1]
        server = TritonServer(
            tmp_path / "repo",
            http_port=busy,
            install=triton_install,
            work_dir=tmp_path / "w",
            startup_timeout=20,
        )
        with pytest.raises(TritonStartError, match="exited with code") as err:
            server.start()
    assert f"Socket '127.0.0.1:{busy}' already in use" in str(err.value)
    # The port was chosen by the caller, so picking new ports would not help: one attempt.
    assert server.log_path.read_text().count("--- modelops: starting") == 1


def test_context_manager_and_temporary_work_dir(triton_install, tmp_path):
    (tmp_path / "repo").mkdir()
    with TritonServer(tmp_path / "repo", install=triton_install) as server:
        work = server.log_path.parent
        assert server.is_running()
        assert server.grpc_url == f"127.0.0.1:{server.grpc_port}"
        assert len({server.http_port, server.grpc_port, server.metrics_port}) == 3
    assert not work.exists()  # the helper's own temporary directory is removed


def test_a_picked_port_taken_meanwhile_is_replaced(triton_install, tmp_path, monkeypatch):
    import tests.support.triton_server as local_server

    (tmp_path / "repo").mkdir()
    real_free_ports = local_server.free_ports
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        busy = sock.getsockname()[1]
        calls = []

        def racy_free_ports(count: int, host: str = "127.0.0.1") -> list[int]:
            # The first pick loses the race: another process binds it first.
            calls.append(count)
            ports = real_free_ports(count, host)
            return [busy, *ports[1:]] if len(calls) == 1 else ports

        monkeypatch.setattr(local_server, "free_ports", racy_free_ports)
        server = TritonServer(tmp_path / "repo", install=triton_install, work_dir=tmp_path / "w")
        try:
            server.start()
            assert server.http_port != busy
            assert server.log_path.read_text().count("--- modelops: starting") == 2
        finally:
            server.stop()
