"""gs:// with the official google-cloud-storage client against a real GCS API
(fake-gcs-server built from its Go module): the same guarantees as s3://."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import uuid
from pathlib import Path

import pytest

from modelops.commands.pull import pull_model
from modelops.modeldir.layout import CONFIG_NAME, INDEX_NAME, MANIFEST_NAME
from modelops.modeldir.repository import copy_into, verify_version_dir, write_version
from modelops.storage.errors import StorageError
from modelops.storage.publish import publish_version
from tests.support.gcs import GcsServer
from tests.support.triton_server import free_port


def modelops(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """Run the real `modelops` command in a fresh process, as an init container would."""
    return subprocess.run(
        [sys.executable, "-m", "modelops.cli", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )


def sealed_version(tmp_path: Path, payload: bytes) -> Path:
    repo = tmp_path / "local" / uuid.uuid4().hex
    number = write_version(repo, copy_into({"model.pt": payload}), config_text="cfg\n")
    return repo / str(number)


@pytest.fixture
def bucket(gcs_server: GcsServer) -> str:
    name = f"models-{uuid.uuid4().hex[:12]}"
    gcs_server.client().create_bucket(name)
    return name


@pytest.fixture
def published(gcs_env: GcsServer, bucket: str, tmp_path: Path) -> str:
    """gs:// URI of a model with versions 1 (b"one") and 2 (b"two")."""
    uri = f"gs://{bucket}/team/fraud"
    assert publish_version(sealed_version(tmp_path, b"one"), uri) == 1
    assert publish_version(sealed_version(tmp_path, b"two"), uri) == 2
    return uri


def put(server: GcsServer, bucket: str, name: str, data: bytes) -> None:
    server.client().bucket(bucket).blob(name).upload_from_string(data)


def test_publish_writes_the_layout(gcs_server, bucket, published):
    client = gcs_server.client()
    names = sorted(b.name for b in client.list_blobs(bucket, prefix="team/fraud/"))
    assert f"team/fraud/2/{MANIFEST_NAME}" in names
    assert f"team/fraud/{CONFIG_NAME}" in names
    index = client.bucket(bucket).blob(f"team/fraud/{INDEX_NAME}").download_as_bytes()
    assert json.loads(index) == {"versions": [1, 2]}


def test_pull_latest_and_pinned(gcs_env, published, tmp_path):
    result = pull_model(published, tmp_path / "repo")
    assert (result.model, result.version, result.verified) == ("fraud", 2, True)
    assert result.source == published
    assert (tmp_path / "repo" / "fraud" / "2" / "model.pt").read_bytes() == b"two"
    verify_version_dir(tmp_path / "repo" / "fraud" / "2")
    assert pull_model(published, tmp_path / "repo", 1).version == 1
    assert (tmp_path / "repo" / "fraud" / "1" / "model.pt").read_bytes() == b"one"


def test_incomplete_version_is_not_latest(gcs_server, gcs_env, bucket, published, tmp_path):
    # A publisher is half-way through version 3: files uploaded, manifest not yet.
    put(gcs_server, bucket, "team/fraud/3/model.pt", b"half")
    assert pull_model(published, tmp_path / "repo").version == 2
    with pytest.raises(StorageError) as err:
        pull_model(published, tmp_path / "repo", 3)
    assert err.value.reason == "VersionIncomplete"
    # The next publisher does not reuse the number being written.
    assert publish_version(sealed_version(tmp_path, b"four"), published) == 4


def test_tampered_object_is_rejected_and_nothing_installed(
    gcs_server, gcs_env, bucket, published, tmp_path
):
    put(gcs_server, bucket, "team/fraud/2/model.pt", b"evil")
    with pytest.raises(StorageError) as err:
        pull_model(published, tmp_path / "repo")
    assert err.value.reason == "ChecksumMismatch"
    assert "sha256" in str(err.value)
    assert list((tmp_path / "repo").iterdir()) == []


def test_concurrent_publishers_get_distinct_versions(gcs_env, bucket, tmp_path):
    uri = f"gs://{bucket}/race"
    dirs = [sealed_version(tmp_path, f"w{i}".encode()) for i in range(4)]
    numbers: list[int] = []
    errors: list[BaseException] = []

    def publish(d: Path) -> None:
        try:
            numbers.append(publish_version(d, uri))
        except BaseException as e:
            errors.append(e)

    threads = [threading.Thread(target=publish, args=(d,)) for d in dirs]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert sorted(numbers) == [1, 2, 3, 4]
    for n in numbers:
        pull_model(uri, tmp_path / "repo", n)  # each verifies against its manifest


def test_explicit_existing_version_is_refused(gcs_env, published, tmp_path):
    with pytest.raises(StorageError) as err:
        publish_version(sealed_version(tmp_path, b"x"), published, version=2)
    assert err.value.reason == "VersionExists"


@pytest.mark.parametrize("key", ["1/../../../escaped.txt", "1//{root}/escaped-abs.txt"])
def test_unverified_keys_cannot_escape_the_staging_directory(
    gcs_server, gcs_env, bucket, tmp_path, key
):
    target = tmp_path / "abs"
    target.mkdir()
    put(gcs_server, bucket, "evil/1/model.pt", b"m")
    put(gcs_server, bucket, "evil/" + key.format(root=str(target).lstrip("/")), b"pwned")
    repo = tmp_path / "deep" / "er" / "repo"
    with pytest.raises(StorageError) as err:
        pull_model(f"gs://{bucket}/evil", repo, allow_unverified=True)
    assert err.value.reason == "UnsafePath"
    assert not (target / "escaped-abs.txt").exists()
    assert list(tmp_path.rglob("escaped*")) == []
    assert list(repo.iterdir()) == []


def test_unverified_version_is_pulled_and_sealed_locally(gcs_server, gcs_env, bucket, tmp_path):
    put(gcs_server, bucket, "other/4/model.pt", b"foreign")
    put(gcs_server, bucket, "other/4/sub/extra.bin", b"e")
    with pytest.raises(StorageError) as err:
        pull_model(f"gs://{bucket}/other", tmp_path / "repo")
    assert err.value.reason == "VersionIncomplete"
    result = pull_model(f"gs://{bucket}/other", tmp_path / "repo", allow_unverified=True)
    assert (result.version, result.verified, result.files) == (4, False, 2)
    verify_version_dir(tmp_path / "repo" / "other" / "4")


@pytest.mark.parametrize(
    ("case", "reason"),
    [
        ("no-bucket", "BucketNotFound"),
        ("no-version", "VersionNotFound"),
        ("no-model", "ModelNotFound"),
        ("no-credentials", "NoCredentials"),
        ("unreachable", "EndpointUnreachable"),
    ],
)
def test_pull_model_command_errors(gcs_server, bucket, published, tmp_path, case, reason):
    uri, version, env = published, "latest", gcs_server.env()
    if case == "no-bucket":
        uri = "gs://no-such-bucket-here/fraud"
    elif case == "no-version":
        version = "9"
    elif case == "no-model":
        uri = f"gs://{bucket}/nothing/here"
    elif case == "no-credentials":
        # Real GCS (no emulator) and no credentials anywhere in the environment.
        env = {k: v for k, v in env.items() if k != "STORAGE_EMULATOR_HOST"}
        env["GOOGLE_APPLICATION_CREDENTIALS"] = str(tmp_path / "missing-key.json")
    elif case == "unreachable":
        env = gcs_server.env(STORAGE_EMULATOR_HOST=f"http://127.0.0.1:{free_port()}")
    log = tmp_path / "termination-log"
    proc = modelops(
        "pull-model", uri, "--repository", str(tmp_path / "repo"), "--version", version,
        "--termination-log", str(log), env=env,
    )  # fmt: skip
    assert proc.returncode == 1, proc.stdout
    assert proc.stdout == ""
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith(f"modelops pull-model: error: {reason}: "), lines[0]
    assert log.read_text().startswith(f"{reason}: ")
    assert not (tmp_path / "repo" / "fraud").exists()


def test_package_model_publishes_to_gcs_for_the_trainer_path(gcs_server, bucket, tmp_path):
    """The trainer publishes with the same publish_version: through the CLI, in a fresh process."""
    pytest.importorskip("torch")
    from tests.support.models import script_linear

    path = tmp_path / "linear.pt"
    script_linear(path, seed=1)
    uri = f"gs://{bucket}/models/linear"
    proc = modelops(
        "package-model", str(path), "--name", "linear", "--input", "x:fp32:4",
        "--output", "y:fp32:2", "--publish", uri, env=gcs_server.env(),
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["published"]["version"] == 1
    pulled = modelops(
        "pull-model", "--uri", uri, "--repository", str(tmp_path / "repo"),
        env=gcs_server.env(),
    )  # fmt: skip
    assert pulled.returncode == 0, pulled.stderr
    assert json.loads(pulled.stdout)["verified"] is True


def test_the_version_claim_is_a_create_only_write(gcs_env, bucket):
    """What keeps concurrent publishers apart: a second claim of a number loses."""
    from modelops.storage.gcs import GcsStore
    from modelops.storage.uri import GcsLocation

    store = GcsStore(GcsLocation(bucket, "claims"))
    assert store._put("7/.modelops-claim", b"", exclusive=True) is True
    assert store._put("7/.modelops-claim", b"", exclusive=True) is False


def test_pull_file_fetches_a_drift_reference_for_the_sidecar(gcs_server, bucket, tmp_path):
    """`modelops pull-file`, the fetch-reference init container's command, from gs://."""
    put(gcs_server, bucket, "models/fraud/reference.json", b'{"features": []}')
    out = tmp_path / "reference" / "reference.json"
    proc = modelops(
        "pull-file", "--uri", f"gs://{bucket}/models/fraud/reference.json", "--output", str(out),
        env=gcs_server.env(),
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert out.read_bytes() == b'{"features": []}'
    assert [p.name for p in out.parent.iterdir()] == ["reference.json"]  # no staging left
    log = tmp_path / "termination-log"
    missing = modelops(
        "pull-file", "--uri", f"gs://{bucket}/models/fraud/nope.json", "--output", str(out),
        "--termination-log", str(log), env=gcs_server.env(),
    )  # fmt: skip
    assert missing.returncode == 1
    assert log.read_text().startswith("NotFound: ")


def test_access_denied_is_reported_as_such(gcs_server, tmp_path):
    """fake-gcs-server does not check credentials, so a 403 comes from a stand-in
    endpoint that refuses every request the way GCS does (same status and JSON error);
    the client and the pull path are the real ones."""
    import http.server

    class Refuse(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = json.dumps({"error": {"code": 403, "message": "caller does not have "
                               "storage.objects.list access to the bucket"}}).encode()  # fmt: skip
            self.send_response(403)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Refuse)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        env = gcs_server.env(STORAGE_EMULATOR_HOST=f"http://127.0.0.1:{server.server_port}")
        log = tmp_path / "termination-log"
        proc = modelops(
            "pull-model", "gs://private/fraud", "--repository", str(tmp_path / "repo"),
            "--termination-log", str(log), env=env,
        )  # fmt: skip
    finally:
        server.shutdown()
    assert proc.returncode == 1
    assert log.read_text().startswith("AccessDenied: "), log.read_text()


def test_a_read_past_its_limit_is_refused_after_a_ranged_transfer(gcs_server, gcs_env, bucket):
    """The operator reads a manifest with a limit: the store is untrusted input."""
    from modelops.storage.gcs import GcsStore
    from modelops.storage.uri import GcsLocation

    put(gcs_server, bucket, "big/1/SHA256SUMS", b"x" * 5000)
    store = GcsStore(GcsLocation(bucket, "big"))
    assert store.read_bytes("1/SHA256SUMS", limit=5000) == b"x" * 5000
    with pytest.raises(StorageError) as err:
        store.read_bytes("1/SHA256SUMS", limit=4999)
    assert err.value.reason == "ObjectTooLarge"
    assert store.read_bytes("1/SHA256SUMS") == b"x" * 5000  # no limit: the whole object
