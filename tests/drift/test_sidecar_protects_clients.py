"""Clients never pay for a candidate, and every answer names who gave it (issue 18).

The stable side is the real Triton (``sum20``) behind an in-process sidecar
reading a traffic file. The failing candidate is a stand-in: a raw socket
server that answers 503, resets the connection, or never answers, on
demand; a real Triton cannot be made to fail in these three ways at will,
and what the sidecar sees of a candidate is exactly such a socket. A second
test retires a real sidecar process with SIGTERM while requests are in
flight to the real Triton's slow model.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from modelops.api.rollout import Analysis
from modelops.render.gating.analysis import Result, evaluate
from modelops.render.gating.build_inputs import merge_figures
from tests.drift.conftest import (
    MODEL,
    N_FEATURES,
    REPO_ROOT,
    SLOW_MODEL,
    SLOW_SECONDS,
    Sidecar,
    http_get,
    http_post,
    wait_healthy,
)
from tests.support.triton_server import free_ports

pytestmark = [pytest.mark.triton, pytest.mark.timeout(180)]


class FailingCandidate:
    """A candidate that fails every request it reads: ``503``, ``reset`` or ``hang``."""

    def __init__(self, mode: str) -> None:
        self.mode = mode
        self.requests = 0
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self._held: list[socket.socket] = []
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._conn, args=(conn,), daemon=True).start()

    def _conn(self, conn: socket.socket) -> None:
        buf = b""
        while True:
            try:
                data = conn.recv(65536)
            except OSError:
                return
            if not data:
                conn.close()
                return
            buf += data
            head, sep, rest = buf.partition(b"\r\n\r\n")
            if not sep:
                continue
            length = 0
            for line in head.split(b"\r\n"):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":")[1])
            if len(rest) < length:
                continue
            buf = rest[length:]
            self.requests += 1
            if self.mode == "503":
                body = b'{"error":"overloaded"}'
                conn.sendall(
                    b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
                    b"Content-Length: %d\r\n\r\n%s" % (len(body), body)
                )
            elif self.mode == "reset":
                conn.setsockopt(
                    socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00"
                )
                conn.close()
                return
            else:  # hang: read, never answer
                self._held.append(conn)

    def close(self) -> None:
        self.sock.close()
        for c in self._held:
            c.close()


def _infer_body(x: np.ndarray) -> bytes:
    return json.dumps(
        {"inputs": [{"name": "INPUT0", "shape": list(x.shape), "datatype": "FP32",
                     "data": x.reshape(-1).tolist()}]}
    ).encode()  # fmt: skip


@pytest.fixture
def stable(triton, reference_path: Path, tmp_path: Path) -> Iterator[tuple[Sidecar, Path]]:
    traffic = tmp_path / "traffic.json"
    traffic.write_text("{}")
    args = [
        "--reference", str(reference_path), "--upstream", triton.http_url, "--model", MODEL,
        "--traffic-file", str(traffic), "--model-version", "7", "--mirror-timeout", "1",
    ]  # fmt: skip
    with Sidecar(args) as sc:
        yield sc, traffic


def _use(sc: Sidecar, traffic: Path, doc: dict) -> None:
    tmp = traffic.with_name(".t")
    tmp.write_text(json.dumps(doc))
    os.replace(tmp, traffic)
    deadline = time.monotonic() + 10
    while _rollout(sc)["epoch"] != doc["epoch"]:
        assert time.monotonic() < deadline, "traffic file not applied"
        time.sleep(0.05)


def _rollout(sc: Sidecar) -> dict:
    return json.loads(http_get(sc.admin_url + "/rollout")[1])


def _split_all(url: str, epoch: str) -> dict:
    return {"epoch": epoch, "candidate": {"version": "8", "http": url}, "canaryWeight": 100}


@pytest.mark.parametrize("mode", ["503", "reset", "hang"])
def test_failed_split_requests_are_answered_by_stable_and_the_breaker_opens(stable, mode):
    sc, traffic = stable
    cand = FailingCandidate(mode)
    try:
        _use(sc, traffic, _split_all(cand.url, f"e-{mode}"))
        x = np.arange(N_FEATURES, dtype=np.float32)[None, :]
        n = 40  # enough stable answers for the gate below to compare with
        for _ in range(n):
            status, body, headers = http_post(f"{sc.url}/v2/models/{MODEL}/infer", _infer_body(x))
            # Every client got the stable version's answer, never the candidate's failure.
            assert status == 200, body
            assert json.loads(body)["outputs"][0]["data"] == [float(x.sum())]
            assert headers["X-Modelops-Version"] == "7"
            assert headers["X-Modelops-Epoch"] == f"e-{mode}"
        doc = _rollout(sc)
        # The first 5 failures open the breaker; the other requests never reach the candidate.
        assert cand.requests == 5
        assert doc["splitErrors"] == 5 and doc["breakerTrips"] == 1
        assert doc["splitTimeouts"] == (5 if mode == "hang" else 0)
        assert doc["splitFallbacks"] == n and doc["split"] == 0
        assert doc["requests"] == n and doc["errors"] == 0
        assert doc["sidecar"] and doc["clientErrors"] == 0
        # The operator's reading of these figures: the stable pod's are accepted (split
        # and splitErrors are disjoint) and the canary fails its error gate at once, long
        # before minRequests (#18: once, they were refused and no verdict ever came).
        figures = merge_figures({"stable-0": doc}, {})
        assert figures.refused == () and figures.consistent
        analysis = Analysis.model_validate({"minRequests": 100, "maxErrorRateIncrease": 0.05})
        verdict = evaluate(analysis, figures, mirroring=False)
        assert verdict.result is Result.FAIL, verdict.text
        assert "maxErrorRateIncrease 0.05" in verdict.text
    finally:
        cand.close()


def test_only_inference_calls_count_and_client_errors_do_not_gate(stable):
    sc, traffic = stable
    _use(sc, traffic, {"epoch": "e1"})
    url = f"{sc.url}/v2/models/{MODEL}"
    x = np.ones((1, N_FEATURES), np.float32)
    assert http_post(f"{url}/infer", _infer_body(x))[0] == 200
    assert http_post(f"{url}/infer", b'{"inputs": []}')[0] == 400  # Triton refuses: 4xx
    for path in ("", "/ready", "/config"):  # GETs: not inference calls
        assert http_get(url + path)[0] == 200
    status, _, headers = http_post(f"{url}/infer", _infer_body(x))
    assert status == 200 and headers["X-Modelops-Version"] == "7"
    ready = urllib.request.urlopen(f"{sc.url}/v2/health/ready", timeout=5)
    assert "X-Modelops-Version" not in ready.headers  # only inference answers carry it
    doc = _rollout(sc)
    assert doc["requests"] == 3 and doc["errors"] == 0 and doc["clientErrors"] == 1
    assert doc["latencyBuckets"]["+Inf"] == 3
    assert set(doc) >= {"sidecar", "mirrorTimeouts", "splitTimeouts", "clientErrors"}


def test_chunked_bodies_above_the_cap_are_not_mirrored(triton, reference_path, tmp_path):
    """Mirroring honours the statistics cap for chunked bodies too (known whole only
    at their end); the client still gets its answer."""
    cand = FailingCandidate("hang")
    traffic = tmp_path / "traffic.json"
    traffic.write_text("{}")
    args = [
        "--reference", str(reference_path), "--upstream", triton.http_url, "--model", MODEL,
        "--traffic-file", str(traffic), "--model-version", "7", "--stats-max-bytes", "2048",
    ]  # fmt: skip
    try:
        with Sidecar(args) as sc:
            _use(sc, traffic, {"epoch": "m", "candidate": {"version": "8", "http": cand.url},
                               "mirrorPercent": 100})  # fmt: skip
            body = _infer_body(np.random.default_rng(0).normal(size=(40, N_FEATURES)))
            assert len(body) > 2048
            chunks = b"".join(
                b"%x\r\n%s\r\n" % (len(body[i : i + 1000]), body[i : i + 1000])
                for i in range(0, len(body), 1000)
            )
            host, port = sc.url.removeprefix("http://").split(":")
            with socket.create_connection((host, int(port)), timeout=10) as s:
                s.sendall(
                    f"POST /v2/models/{MODEL}/infer HTTP/1.1\r\nHost: x\r\n"
                    "Transfer-Encoding: chunked\r\n\r\n".encode()
                    + chunks
                    + b"0\r\n\r\n"
                )
                assert s.recv(65536).startswith(b"HTTP/1.1 200 ")
            time.sleep(0.2)
            doc = _rollout(sc)
            assert doc["mirrorDropped"] == 1 and doc["mirrored"] == 0 and cand.requests == 0
    finally:
        cand.close()


def test_sigterm_drains_requests_in_flight_with_zero_client_errors(triton, reference_path):
    """A pod retired by a promotion: SIGTERM while slow requests are in flight; every
    one is answered, new connections are refused, and the process exits 0."""
    port, admin = free_ports(2)
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "modelops.cli", "drift-monitor", "--reference", str(reference_path),
         "--upstream", triton.http_url, "--host", "127.0.0.1", "--port", str(port),
         "--admin-port", str(admin), "--drain-seconds", "15"],
        cwd=REPO_ROOT, env=env, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        wait_healthy(f"http://127.0.0.1:{admin}", proc)
        results: list[int] = []
        body = json.dumps(
            {"inputs": [{"name": "INPUT0", "shape": [1], "datatype": "FP32", "data": [1.0]}]}
        ).encode()

        def call() -> None:
            status, _, _ = http_post(
                f"http://127.0.0.1:{port}/v2/models/{SLOW_MODEL}/infer", body, timeout=60
            )
            results.append(status)

        threads = [threading.Thread(target=call) for _ in range(3)]
        for t in threads:
            t.start()
        time.sleep(1.0)  # the requests are with Triton now (it takes SLOW_SECONDS per batch)
        t0 = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        time.sleep(0.3)
        with pytest.raises(OSError):  # no longer accepting
            socket.create_connection(("127.0.0.1", port), timeout=2).close()
        for t in threads:
            t.join(60)
        assert results == [200, 200, 200]
        assert proc.wait(30) == 0
        # It waited for the answers (the slow model serves one batch at a time).
        assert time.monotonic() - t0 >= SLOW_SECONDS - 1.5
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_self_compare_measures_the_noise_floor_against_the_own_triton(stable):
    """selfComparePercent: a share of calls answered twice by this pod's own Triton
    and compared (a deterministic model agrees with itself every time)."""
    sc, traffic = stable
    _use(sc, traffic, {"epoch": "noise", "selfComparePercent": 50})
    x = np.random.default_rng(4).normal(size=(2, N_FEATURES)).astype(np.float32)
    for _ in range(10):
        status, _, headers = http_post(f"{sc.url}/v2/models/{MODEL}/infer", _infer_body(x))
        assert status == 200 and headers["X-Modelops-Epoch"] == "noise"
    deadline = time.monotonic() + 10
    while (doc := _rollout(sc))["selfCompared"] < 5 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert doc["selfCompared"] == doc["selfAgreed"] == 5
    assert doc["requests"] == 10 and doc["mirrored"] == doc["compared"] == 0
