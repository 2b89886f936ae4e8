"""Publish to and pull from a real S3 endpoint (moto server with auth enforced), then serve."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import uuid
from pathlib import Path

import numpy as np
import pytest
import tritonclient.http as httpclient

from modelops.commands.pull import pull_model
from modelops.modeldir.layout import CONFIG_NAME, INDEX_NAME, MANIFEST_NAME
from modelops.modeldir.repository import copy_into, verify_version_dir, write_version
from modelops.storage.errors import StorageError
from modelops.storage.publish import publish_version
from tests.support.models import script_linear, torch_reference
from tests.support.s3 import S3Server
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
def bucket(s3_server: S3Server) -> str:
    name = f"models-{uuid.uuid4().hex[:12]}"
    s3_server.client().create_bucket(Bucket=name)
    return name


@pytest.fixture
def published(s3_env: S3Server, bucket: str, tmp_path: Path) -> str:
    """s3:// URI of a model with versions 1 (b"one") and 2 (b"two")."""
    uri = f"s3://{bucket}/team/fraud"
    assert publish_version(sealed_version(tmp_path, b"one"), uri) == 1
    assert publish_version(sealed_version(tmp_path, b"two"), uri) == 2
    return uri


def test_publish_writes_the_layout(s3_server, bucket, published):
    client = s3_server.client()
    keys = sorted(
        o["Key"] for o in client.list_objects_v2(Bucket=bucket, Prefix="team/fraud/")["Contents"]
    )
    assert f"team/fraud/2/{MANIFEST_NAME}" in keys
    assert f"team/fraud/{CONFIG_NAME}" in keys
    index = client.get_object(Bucket=bucket, Key=f"team/fraud/{INDEX_NAME}")["Body"].read()
    assert json.loads(index) == {"versions": [1, 2]}


def test_pull_latest_and_pinned(s3_env, published, tmp_path):
    result = pull_model(published, tmp_path / "repo")
    assert (result.model, result.version, result.verified) == ("fraud", 2, True)
    assert (tmp_path / "repo" / "fraud" / "2" / "model.pt").read_bytes() == b"two"
    verify_version_dir(tmp_path / "repo" / "fraud" / "2")
    assert pull_model(published, tmp_path / "repo", 1).version == 1
    assert (tmp_path / "repo" / "fraud" / "1" / "model.pt").read_bytes() == b"one"


def test_incomplete_version_is_not_latest(s3_server, s3_env, bucket, published, tmp_path):
    # A publisher is half-way through version 3: files uploaded, manifest not yet.
    s3_server.client().put_object(Bucket=bucket, Key="team/fraud/3/model.pt", Body=b"half")
    assert pull_model(published, tmp_path / "repo").version == 2
    with pytest.raises(StorageError) as err:
        pull_model(published, tmp_path / "repo", 3)
    assert err.value.reason == "VersionIncomplete"
    # The next publisher does not reuse the number being written.
    assert publish_version(sealed_version(tmp_path, b"four"), published) == 4


def test_tampered_object_is_rejected_and_nothing_installed(
    s3_server, s3_env, bucket, published, tmp_path
):
    s3_server.client().put_object(Bucket=bucket, Key="team/fraud/2/model.pt", Body=b"evil")
    with pytest.raises(StorageError) as err:
        pull_model(published, tmp_path / "repo")
    assert err.value.reason == "ChecksumMismatch"
    assert list((tmp_path / "repo").iterdir()) == []


def test_concurrent_publishers_get_distinct_versions(s3_env, bucket, tmp_path):
    uri = f"s3://{bucket}/race"
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


def test_explicit_existing_version_is_refused(s3_env, published, tmp_path):
    with pytest.raises(StorageError) as err:
        publish_version(sealed_version(tmp_path, b"x"), published, version=2)
    assert err.value.reason == "VersionExists"


@pytest.mark.parametrize(
    ("case", "reason"),
    [
        ("no-bucket", "BucketNotFound"),
        ("no-version", "VersionNotFound"),
        ("no-model", "ModelNotFound"),
        ("unknown-key", "AccessDenied"),
        ("wrong-secret", "AccessDenied"),
        ("no-credentials", "NoCredentials"),
        ("unreachable", "EndpointUnreachable"),
    ],
)
def test_pull_model_command_errors(s3_server, bucket, published, tmp_path, case, reason):
    uri, version, env = published, "latest", s3_server.env()
    if case == "no-bucket":
        uri = "s3://no-such-bucket-here/fraud"
    elif case == "no-version":
        version = "9"
    elif case == "no-model":
        uri = f"s3://{bucket}/nothing/here"
    elif case == "unknown-key":
        env = s3_server.env(AWS_ACCESS_KEY_ID="AKIAUNKNOWNUNKNOWN00")
    elif case == "wrong-secret":
        env = s3_server.env(AWS_SECRET_ACCESS_KEY="not-the-secret")
    elif case == "no-credentials":
        env = {k: v for k, v in s3_server.env().items() if not k.endswith(("_KEY_ID", "_KEY"))}
    elif case == "unreachable":
        env = s3_server.env(AWS_ENDPOINT_URL=f"http://127.0.0.1:{free_port()}")
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


@pytest.mark.triton
@pytest.mark.torch
def test_package_publish_pull_and_serve(s3_server, bucket, tmp_path, triton_factory):
    """The whole path a retrained model takes: package-model --publish, pull-model, Triton."""
    uri = f"s3://{bucket}/models/linear"
    modules = {}
    for version, seed in ((1, 1), (2, 2)):
        path = tmp_path / f"linear-{seed}.pt"
        modules[version] = script_linear(path, seed=seed)
        proc = modelops(
            "package-model", str(path), "--name", "linear", "--input", "x:fp32:4",
            "--output", "y:fp32:2", "--publish", uri, env=s3_server.env(),
        )  # fmt: skip
        assert proc.returncode == 0, proc.stderr
        assert json.loads(proc.stdout)["published"]["version"] == version

    repo = tmp_path / "repo"
    # Packaged for GPUs (the default); the deployment's settings move it to CPU.
    proc = modelops(
        "pull-model", "--uri", uri, "--repository", str(repo), "--format", "torchscript",
        "--gpus", "0", "--max-batch-size", "4",
        env=s3_server.env(),
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    pulled = json.loads(proc.stdout)
    assert (pulled["model"], pulled["version"], pulled["verified"]) == ("linear", 2, True)
    assert json.loads((repo / "linear" / ".modelops-version").read_text())["version"] == 2

    server = triton_factory(repo)
    client = httpclient.InferenceServerClient(server.http_address)
    assert client.get_model_metadata("linear")["versions"] == ["2"]
    config = client.get_model_config("linear")
    assert config["max_batch_size"] == 4
    assert config["instance_group"][0]["kind"] == "KIND_CPU"
    x = np.random.default_rng(3).standard_normal((4, 4)).astype(np.float32)
    inp = httpclient.InferInput("x", [4, 4], "FP32")
    inp.set_data_from_numpy(x)
    y = client.infer("linear", [inp]).as_numpy("y")
    np.testing.assert_allclose(y, torch_reference(modules[2], x), rtol=1e-6, atol=1e-6)
    assert not np.allclose(y, torch_reference(modules[1], x))  # really the newest version


@pytest.mark.parametrize("key", ["1/../../../escaped.txt", "1//{root}/escaped-abs.txt"])
def test_unverified_keys_cannot_escape_the_staging_directory(
    s3_server, s3_env, bucket, tmp_path, key
):
    """verifyChecksums: false lists keys the pull does not control; none may leave staging."""
    target = tmp_path / "abs"
    target.mkdir()
    client = s3_server.client()
    client.put_object(Bucket=bucket, Key="evil/1/model.pt", Body=b"m")
    client.put_object(
        Bucket=bucket, Key="evil/" + key.format(root=str(target).lstrip("/")), Body=b"pwned"
    )
    repo = tmp_path / "deep" / "er" / "repo"
    with pytest.raises(StorageError) as err:
        pull_model(f"s3://{bucket}/evil", repo, allow_unverified=True)
    assert err.value.reason == "UnsafePath"
    assert "refusing" in str(err.value)
    assert not (target / "escaped-abs.txt").exists()
    assert [p for p in tmp_path.rglob("escaped*")] == []
    assert not (repo / "evil").exists()  # nothing installed, staging removed
    assert [p.name for p in repo.iterdir()] == []
