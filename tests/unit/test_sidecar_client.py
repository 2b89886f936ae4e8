"""The sidecar client against real sockets: deadlines, size cap, schema, and a
reconcile that never waits for a pod.

The "sidecars" here are small real HTTP servers on 127.0.0.1 (one answers
well, one drips its answer a byte a second, one answers too much, one answers
something that is not a /rollout document); the client finds them through
MODELOPS_SIDECAR_MAP's file format, as in the e2e tests.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from modelops.controllers.sidecar_client import SidecarClient, Unanswered, exchange

DOC = {"epoch": "2.1", "sidecar": "abc", "requests": 10, "errors": 0, "mirrored": 3}


class Server:
    """One-connection-at-a-time HTTP/1.0 server on a thread; ``answer(conn)`` writes
    the reply."""

    def __init__(self, answer: Callable[[socket.socket], None]) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.answer = answer
        self.stop = threading.Event()
        self.threads: list[threading.Thread] = []
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _run(self) -> None:
        while not self.stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            t = threading.Thread(target=self._serve, args=(conn,), daemon=True)
            t.start()
            self.threads.append(t)

    def _serve(self, conn: socket.socket) -> None:
        with conn:
            conn.settimeout(2)
            try:
                data = b""
                while b"\r\n\r\n" not in data:
                    chunk = conn.recv(4096)
                    if not chunk:
                        return
                    data += chunk
                self.answer(conn)
            except OSError:
                pass  # the client hung up (its deadline)

    def close(self) -> None:
        self.stop.set()
        self.sock.close()
        self.thread.join(timeout=2)
        for t in self.threads:
            t.join(timeout=3)


def reply(body: bytes, status: str = "200 OK") -> Callable[[socket.socket], None]:
    def answer(conn: socket.socket) -> None:
        conn.sendall(
            f"HTTP/1.0 {status}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n".encode()
            + body
        )

    return answer


def drip(stop: threading.Event) -> Callable[[socket.socket], None]:
    """The whole answer, one byte a second: every read gets something, so a per-read
    timeout would never fire."""

    def answer(conn: socket.socket) -> None:
        payload = reply(json.dumps(DOC).encode())
        buf: list[bytes] = []

        class Collect:
            def sendall(self, data: bytes) -> None:
                buf.append(data)

        payload(Collect())  # type: ignore[arg-type]
        for byte in b"".join(buf):
            if stop.wait(1.0):
                return
            conn.sendall(bytes([byte]))

    return answer


@pytest.fixture
def servers() -> Iterator[dict[str, Server]]:
    stop = threading.Event()
    found = {
        "good": Server(reply(json.dumps(DOC).encode())),
        "drip": Server(drip(stop)),
        "huge": Server(reply(b'{"requests": 1, "pad": "' + b"x" * 200_000 + b'"}')),
        "wrong": Server(reply(json.dumps({"requests": "many"}).encode())),
        "error": Server(reply(b"{}", "500 Internal Server Error")),
    }
    yield found
    stop.set()
    for server in found.values():
        server.close()


def pods(*names: str) -> list[dict]:
    return [{"metadata": {"name": n, "uid": f"uid-{n}"}, "status": {}} for n in names]


def client_for(tmp_path: Path, mapping: dict[str, str], **kw: float) -> SidecarClient:
    path = tmp_path / "map.json"
    path.write_text(json.dumps(mapping))
    return SidecarClient(map_file=path, **kw)  # type: ignore[arg-type]


def test_a_dripping_answer_is_cut_at_the_deadline_not_read_forever(servers):
    start = time.monotonic()
    with pytest.raises(Unanswered, match="within the deadline"):
        exchange(f"{servers['drip'].url}/rollout", deadline=start + 1.5, max_bytes=1 << 20)
    # A per-read timeout would have waited ~100 s (a byte a second); the total deadline
    # ends the exchange at 1.5 s (allowance for a loaded machine).
    assert time.monotonic() - start < 3.0


def test_reading_stops_at_the_size_cap(servers):
    with pytest.raises(Unanswered, match="larger than 1000 bytes"):
        exchange(f"{servers['huge'].url}/rollout", deadline=time.monotonic() + 5, max_bytes=1000)
    body = exchange(f"{servers['good'].url}/rollout", deadline=time.monotonic() + 5, max_bytes=1000)
    assert json.loads(body) == DOC


def test_a_non_200_answer_is_no_answer(servers):
    with pytest.raises(Unanswered, match="500"):
        exchange(f"{servers['error'].url}/x", deadline=time.monotonic() + 5, max_bytes=1000)


def test_a_poll_reads_in_the_background_and_names_the_pods_that_gave_nothing(servers, tmp_path):
    mapping = {f"ml/{name}": s.url for name, s in servers.items()}
    ready: list[tuple[str, str]] = []
    done = threading.Event()
    client = client_for(
        tmp_path, mapping, pod_deadline_s=1.0, poll_deadline_s=1.5, max_bytes=100_000
    )
    client.on_ready = lambda key: (ready.append(key), done.set())
    try:
        asked = pods("good", "drip", "huge", "wrong", "error", "unmapped")
        start = time.monotonic()
        first = client.rollout("ml", "m", asked)
        # The reconcile does not wait: the first look has nothing yet.
        assert time.monotonic() - start < 0.5
        assert first.documents == {} and first.fetched_at is None
        assert done.wait(5), "the poll did not finish by its deadline"
        assert ready == [("ml", "m")]
        snap = client.rollout("ml", "m", asked)
        assert snap.documents == {"good": DOC}
        assert "within the deadline" in snap.unanswered["drip"]
        assert "larger than 100000 bytes" in snap.unanswered["huge"]
        assert "schema: requests" in snap.unanswered["wrong"]
        assert "500" in snap.unanswered["error"]
        # A pod the map does not name is asked at its own IP (a pod that really
        # runs); this one has none yet.
        assert "no pod IP" in snap.unanswered["unmapped"]
        # Fresh: no new poll is started until min_interval_s has passed.
        done.clear()
        client.rollout("ml", "m", asked)
        assert not done.wait(0.5)
    finally:
        client.close()


def test_one_modeldeployments_dripping_pods_do_not_delay_anothers_figures(servers, tmp_path):
    mapping = {"slow/d1": servers["drip"].url, "slow/d2": servers["drip"].url}
    mapping["fast/g"] = servers["good"].url
    finished: dict[tuple[str, str], float] = {}
    both = threading.Event()

    def on_ready(key: tuple[str, str]) -> None:
        finished[key] = time.monotonic()
        if len(finished) == 2:
            both.set()

    client = client_for(tmp_path, mapping, pod_deadline_s=2.0, poll_deadline_s=2.0)
    client.on_ready = on_ready
    try:
        start = time.monotonic()
        client.rollout("slow", "m", pods("d1", "d2"))
        client.rollout("fast", "m", pods("g"))
        assert both.wait(6)
        # The fast ModelDeployment's poll ends long before the slow one's deadline.
        assert finished[("fast", "m")] - start < 1.0
        assert finished[("slow", "m")] - start >= 1.9
        assert client.rollout("fast", "m", pods("g")).documents == {"g": DOC}
    finally:
        client.close()


def test_loaded_versions_are_asked_once_per_pod_in_the_background(tmp_path):
    doc = {"requests": 0, "errors": 0, "loaded": {"fraud": ["7"], "other": ["1"]}}
    calls = []

    def answer(conn: socket.socket) -> None:
        calls.append(1)
        reply(json.dumps(doc).encode())(conn)

    server = Server(answer)
    done = threading.Event()
    client = client_for(tmp_path, {"ml/p": server.url})
    client.on_ready = lambda key: done.set()
    try:
        assert client.loaded("ml", "m", "fraud", pods("p")) == {}
        assert done.wait(5)
        assert client.loaded("ml", "m", "fraud", pods("p")) == {"p": ["7"]}
        assert client.loaded("ml", "m", "fraud", pods("p")) == {"p": ["7"]}
        assert len(calls) == 1
    finally:
        client.close()
        server.close()


def test_a_chunked_answer_is_read_too():
    body = json.dumps(DOC).encode()
    chunked = b"".join(
        f"{len(part):x}\r\n".encode() + part + b"\r\n" for part in (body[:7], body[7:])
    )

    def answer(conn: socket.socket) -> None:
        conn.sendall(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + chunked + b"0\r\n\r\n"
        )

    server = Server(answer)
    try:
        raw = exchange(f"{server.url}/rollout", deadline=time.monotonic() + 5, max_bytes=1000)
        assert json.loads(raw) == DOC
    finally:
        server.close()


def test_a_reconcile_never_waits_for_a_dripping_sidecar(servers, tmp_path):
    """The whole ModelDeployment reconcile, with the real client in it, while every pod's
    sidecar drips its answer: the reconcile returns without waiting for any of them."""
    from tests.unit.test_gated_controller import in_shadow

    h = in_shadow()  # a candidate in shadow analysis: figures are wanted every look
    mapping = {
        f"ml/{pod['metadata']['name']}": servers["drip"].url
        for (kind, _, _), pod in h.kube.objects.items()
        if kind.kind == "Pod"
    }
    client = client_for(tmp_path, mapping, pod_deadline_s=3.0, poll_deadline_s=3.0)
    h.controller.sidecars = client
    try:
        start = time.monotonic()
        for _ in range(3):
            h.reconcile()
        assert time.monotonic() - start < 1.0
        assert h.status()["rollout"]["phase"] == "Shadow"
    finally:
        client.close()


def test_drift_histograms_are_read_at_their_path_and_checked_against_their_schema(tmp_path):
    """A real monitor's `/drift/histograms` answer passes the schema and feeds the merged
    decision (render/drift_merge.py); one that is not a histograms document is named."""
    import numpy as np

    from modelops.drift.detectors import DetectorConfig
    from modelops.drift.monitor import DriftMonitor, WindowConfig
    from modelops.drift.reference import build_reference
    from modelops.render.drift_merge import MergedDrift, step

    rng = np.random.default_rng(0)
    ref = build_reference(rng.normal(size=(5000, 4)), bins=10)
    monitor = DriftMonitor(ref, DetectorConfig(), WindowConfig(size=200))
    monitor.add(rng.normal(size=(300, 4)))
    asked: list[bytes] = []

    def histograms(conn: socket.socket) -> None:
        reply(json.dumps(monitor.histograms("s1")).encode())(conn)

    good, wrong = Server(histograms), Server(reply(json.dumps(DOC).encode()))
    original = good._serve

    def serve(conn: socket.socket) -> None:
        asked.append(conn.recv(4096, socket.MSG_PEEK))
        original(conn)

    good._serve = serve  # type: ignore[method-assign]
    done = threading.Event()
    client = client_for(tmp_path, {"ml/a": good.url, "ml/b": wrong.url})
    client.on_ready = lambda key: done.set()
    try:
        client.histograms("ml", "m", pods("a", "b"))
        assert done.wait(5)
        snap = client.histograms("ml", "m", pods("a", "b"))
        assert asked and asked[0].startswith(b"GET /drift/histograms HTTP/1.0")
        assert set(snap.documents) == {"a"}
        assert "schema" in snap.unanswered["b"]
        state = step(MergedDrift(), snap.documents, config=DetectorConfig(), window=200, now="t")
        assert state.refused == {} and state.result is not None
        assert state.result["samples"] == 300
    finally:
        client.close()
        good.close()
        wrong.close()
