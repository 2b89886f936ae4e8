"""A real Google Cloud Storage API for tests: fake-gcs-server, built from its Go module.

hack/fake-gcs/build.sh builds it into ~/.cache/modelops (minutes cold, then
cached; `make tools` runs it). The server runs in its own process with an
in-memory backend and speaks the GCS JSON and upload APIs over plain HTTP;
the official google-cloud-storage client reaches it through
STORAGE_EMULATOR_HOST, with anonymous credentials (the client's own emulator
mode). It does not check credentials, so AccessDenied is not reproduced here.

Register with ``pytest_plugins = ["tests.support.gcs"]`` or import the fixtures.
"""

from __future__ import annotations

import os
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.support.cluster import REPO
from tests.support.triton_server import free_port

BUILD = REPO / "hack" / "fake-gcs" / "build.sh"
GCS_ENV_PREFIXES = ("STORAGE_EMULATOR_HOST", "GOOGLE_", "CLOUDSDK_", "MODELOPS_GCS_")


def build_fake_gcs() -> Path:
    """The fake-gcs-server binary; builds it on first use (minutes), then from the cache."""
    proc = subprocess.run([str(BUILD)], capture_output=True, text=True, timeout=1800)
    if proc.returncode != 0:
        raise AssertionError(f"hack/fake-gcs/build.sh failed:\n{proc.stderr[-3000:]}")
    return Path(proc.stdout.strip().splitlines()[-1]) / "fake-gcs-server"


@dataclass
class GcsServer:
    endpoint: str  # http://127.0.0.1:<port>
    process: subprocess.Popen[bytes] = field(repr=False)

    def env(self, **overrides: str) -> dict[str, str]:
        """Environment for a process that should use this server (as a pod would)."""
        env = {k: v for k, v in os.environ.items() if not k.startswith(GCS_ENV_PREFIXES)}
        env.update(
            STORAGE_EMULATOR_HOST=self.endpoint,
            # Never fall back to a developer's gcloud config or the GCE metadata server.
            CLOUDSDK_CONFIG="/nonexistent",
            NO_GCE_CHECK="True",
            MODELOPS_GCS_RETRY_SECONDS="3",
        )
        env.update(overrides)
        return env

    def client(self) -> Any:
        from google.auth.credentials import AnonymousCredentials
        from google.cloud import storage

        return storage.Client(
            project="test",
            credentials=AnonymousCredentials(),
            client_options={"api_endpoint": self.endpoint},
        )


def start_gcs_server(work_dir: Path) -> GcsServer:
    binary = build_fake_gcs()
    port = free_port()
    endpoint = f"http://127.0.0.1:{port}"
    log = work_dir / "fake-gcs.log"
    # -public-host / -external-url: media links the server hands out point back at it.
    argv = [
        str(binary),
        "-scheme", "http",
        "-host", "127.0.0.1",
        "-port", str(port),
        "-backend", "memory",
        "-public-host", f"127.0.0.1:{port}",
        "-external-url", endpoint,
        "-log-level", "warn",
    ]  # fmt: skip
    with open(log, "wb") as out:
        process = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 30
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"fake-gcs-server exited: {log.read_text()[-2000:]}")
        try:
            with urllib.request.urlopen(f"{endpoint}/storage/v1/b", timeout=1):
                break
        except urllib.error.HTTPError:
            break  # it answers
        except OSError:
            if time.monotonic() > deadline:
                process.kill()
                raise RuntimeError(f"fake-gcs-server not up: {log.read_text()[-2000:]}") from None
            time.sleep(0.1)
    return GcsServer(endpoint, process)


def stop_gcs_server(server: GcsServer) -> None:
    server.process.terminate()
    try:
        server.process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        server.process.kill()
        server.process.wait()


@pytest.fixture(scope="session")
def gcs_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GcsServer]:
    server = start_gcs_server(tmp_path_factory.mktemp("fake-gcs"))
    try:
        yield server
    finally:
        stop_gcs_server(server)


@pytest.fixture
def gcs_env(gcs_server: GcsServer, monkeypatch: pytest.MonkeyPatch) -> GcsServer:
    """Point this process's Google environment at the test server (for in-process calls)."""
    for name in list(os.environ):
        if name.startswith(GCS_ENV_PREFIXES):
            monkeypatch.delenv(name)
    for name, value in gcs_server.env().items():
        if name.startswith(GCS_ENV_PREFIXES) or name in ("NO_GCE_CHECK",):
            monkeypatch.setenv(name, value)
    return gcs_server
