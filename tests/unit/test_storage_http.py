"""Pulling over HTTP from a real (local, threaded) static file server."""

from __future__ import annotations

import functools
import http.server
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from modelops.commands.pull import pull_model
from modelops.modeldir.repository import copy_into, verify_version_dir, write_version
from modelops.storage.errors import StorageError
from modelops.storage.publish import publish_version
from tests.support.triton_server import free_port

TOKEN = "s3cr3t"


class StaticHandler(http.server.SimpleHTTPRequestHandler):
    """Static files; paths under /private/ need the bearer token."""

    def do_GET(self) -> None:
        if self.path.startswith("/private/"):
            if self.headers.get("Authorization") != f"Bearer {TOKEN}":
                self.send_error(403)
                return
            self.path = self.path[len("/private") :]
        super().do_GET()

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Iterator[tuple[str, Path]]:
    """(base URL, document root) of a static server holding a published model."""
    root = tmp_path_factory.mktemp("site")
    work = tmp_path_factory.mktemp("packaged")
    for payload in (b"one", b"two"):
        number = write_version(
            work / payload.decode(), copy_into({"model.pt": payload}), config_text="cfg\n"
        )
        publish_version(work / payload.decode() / str(number), f"file://{root}/fraud")
    handler = functools.partial(StaticHandler, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", root
    server.shutdown()
    server.server_close()


def test_pull_latest_and_pinned(tmp_path, site):
    base, _ = site
    latest = pull_model(f"{base}/fraud", tmp_path / "repo")
    assert (latest.model, latest.version, latest.verified) == ("fraud", 2, True)
    assert (tmp_path / "repo" / "fraud" / "2" / "model.pt").read_bytes() == b"two"
    verify_version_dir(tmp_path / "repo" / "fraud" / "2")
    pinned = pull_model(f"{base}/fraud/", tmp_path / "repo", 1)
    assert pinned.version == 1
    assert (tmp_path / "repo" / "fraud" / "1" / "model.pt").read_bytes() == b"one"


def test_checksum_mismatch_is_detected(tmp_path, site):
    base, root = site
    path = root / "fraud" / "1" / "model.pt"
    original = path.read_bytes()
    path.write_bytes(b"changed on the server")
    try:
        with pytest.raises(StorageError) as err:
            pull_model(f"{base}/fraud", tmp_path / "repo", 1)
    finally:
        path.write_bytes(original)
    assert err.value.reason == "ChecksumMismatch"
    assert not (tmp_path / "repo" / "fraud").exists()


def test_errors(tmp_path, site):
    base, _ = site
    closed = f"http://127.0.0.1:{free_port()}/fraud"
    cases = [
        (f"{base}/nothing", "latest", "ModelNotFound"),
        (f"{base}/fraud", "5", "VersionNotFound"),
        (closed, "latest", "EndpointUnreachable"),
        (f"{base}/private/fraud", "latest", "AccessDenied"),
    ]
    for uri, version, reason in cases:
        with pytest.raises(StorageError) as err:
            pull_model(uri, tmp_path / "repo", version)
        assert err.value.reason == reason, (uri, str(err.value))


def test_bearer_token(tmp_path, site, monkeypatch):
    base, _ = site
    monkeypatch.setenv("MODELOPS_HTTP_TOKEN", TOKEN)
    assert pull_model(f"{base}/private/fraud", tmp_path / "repo").version == 2


def test_http_is_read_only(tmp_path, site):
    base, _ = site
    number = write_version(tmp_path / "m", copy_into({"w": b"x"}))
    with pytest.raises(StorageError) as err:
        publish_version(tmp_path / "m" / str(number), f"{base}/fraud")
    assert err.value.reason == "UnsupportedScheme"
