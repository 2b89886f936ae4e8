"""The store watcher against real model stores (a local directory; moto's S3 server
with authentication enforced): listing off the reconcile path, digests of the
manifests, back-off on failure, the credentials Secret the ModelDeployment names
(read through the in-memory API; tests/integration/test_kube_client.py reads one
from the real API server)."""

from __future__ import annotations

import base64
import os
import threading
import uuid
from pathlib import Path

import pytest

from modelops.controllers.store_watcher import StoreWatcher, listable
from modelops.kube import errors as kube_errors
from modelops.render.gating.lineage import manifest_digest
from modelops.storage.endpoints import parse_allowlist
from tests.support.fake_kube import FakeKube
from tests.support.s3 import S3Server


def publish(root: Path, version: int, manifest: bytes | None = b"abc  model.onnx\n") -> None:
    (root / str(version)).mkdir(parents=True)
    if manifest is not None:  # without it the version is still being written
        (root / str(version) / "SHA256SUMS").write_bytes(manifest)


def watcher_with_signal(**kw: float) -> tuple[StoreWatcher, threading.Event]:
    done = threading.Event()
    return StoreWatcher(on_ready=lambda key: done.set(), **kw), done  # type: ignore[arg-type]


def test_newest_complete_version_and_its_digest_are_listed_in_the_background(tmp_path: Path):
    publish(tmp_path, 1)
    publish(tmp_path, 2, b"def  model.onnx\n")
    publish(tmp_path, 3, None)  # incomplete: not a version yet
    watcher, done = watcher_with_signal(interval_s=3600)
    uri = f"file://{tmp_path}"
    try:
        assert watcher.view("ml", "m", uri, want=["1"]) is None  # never waits
        assert done.wait(5)
        view = watcher.view("ml", "m", uri, want=["1"])
        assert view is not None and view.newest == "2"
        assert view.digests == {
            "1": manifest_digest(b"abc  model.onnx\n"),
            "2": manifest_digest(b"def  model.onnx\n"),
        }
        # A version published by hand appears at the next listing.
        publish(tmp_path, 4, b"ghi  model.onnx\n")
        done.clear()
        watcher.interval_s = 0
        watcher.view("ml", "m", uri)
        assert done.wait(5)
        assert watcher.view("ml", "m", uri).newest == "4"  # type: ignore[union-attr]
    finally:
        watcher.close()


def test_a_failing_listing_backs_off_and_keeps_the_last_good_one(tmp_path: Path):
    calls = []
    boom = threading.Event()

    def opener(uri: str, env: object):
        calls.append(uri)
        boom.set()
        raise OSError("store unreachable")

    watcher = StoreWatcher(interval_s=1, max_backoff_s=3600, opener=opener)
    try:
        assert watcher.view("ml", "m", f"file://{tmp_path}") is None
        assert boom.wait(5)
        for _ in range(50):
            if watcher._entries[("ml", "m")].failures:
                break
            threading.Event().wait(0.02)
        # Backing off: asking again right away does not list again.
        watcher.view("ml", "m", f"file://{tmp_path}")
        threading.Event().wait(0.2)
        assert len(calls) == 1
    finally:
        watcher.close()


def test_claims_mounted_only_in_the_pods_are_not_listed():
    assert not listable("pvc://models/fraud")
    assert listable("s3://bucket/fraud") and listable("file:///models/fraud")
    assert StoreWatcher().view("ml", "m", "pvc://models/fraud") is None


# -- credentials: the Secret the ModelDeployment names, against a real S3 endpoint --------


def s3_secret(server: S3Server, name: str = "store-keys", **override: str) -> dict:
    keys = {
        "AWS_ACCESS_KEY_ID": server.access_key,
        "AWS_SECRET_ACCESS_KEY": server.secret_key,
        "AWS_ENDPOINT_URL": server.endpoint,
        "AWS_REGION": "us-east-1",
        "UNRELATED": "never read",
    }
    keys.update(override)
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name, "namespace": "ml"},
        "data": {k: base64.b64encode(v.encode()).decode() for k, v in keys.items()},
    }


def listed(watcher: StoreWatcher, done: threading.Event, uri: str, secret: str | None):
    watcher.view("ml", "m", uri, secret=secret)
    assert done.wait(30), "the listing never finished"
    return watcher.view("ml", "m", uri, secret=secret)


@pytest.fixture
def s3_store(s3_server: S3Server, tmp_path: Path) -> str:
    """Versions 1 and 2 (complete) of a model in a bucket of the auth-enforcing moto."""
    client = s3_server.client()
    bucket = f"models-{uuid.uuid4().hex[:8]}"
    client.create_bucket(Bucket=bucket)
    for version in (1, 2):
        publish(tmp_path, version, f"{version:064x}  model.pt\n".encode())
        client.put_object(Bucket=bucket, Key=f"fraud/{version}/model.pt", Body=b"x")
        client.put_object(
            Bucket=bucket,
            Key=f"fraud/{version}/SHA256SUMS",
            Body=(tmp_path / str(version) / "SHA256SUMS").read_bytes(),
        )
    return f"s3://{bucket}/fraud"


def test_the_store_is_listed_with_the_keys_of_the_named_secret(
    s3_server: S3Server, s3_store: str, monkeypatch: pytest.MonkeyPatch
):
    # The operator's own environment has no credentials: only the Secret's can work.
    for var in list(os.environ):
        if var.startswith("AWS_"):
            monkeypatch.delenv(var)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    kube = FakeKube()
    kube.put(s3_secret(s3_server))
    done = threading.Event()
    watcher = StoreWatcher(
        interval_s=3600,
        secrets=kube.read_secret,
        on_ready=lambda key: done.set(),
        allowed_endpoints=parse_allowlist(s3_server.endpoint),
    )
    try:
        view = listed(watcher, done, s3_store, "store-keys")
        assert view is not None and view.error is None, view
        assert view.newest == "2"
        assert view.digests["2"] == manifest_digest(f"{2:064x}  model.pt\n".encode())
        assert kube.count("get", "Secret") == 1  # by name, in the ModelDeployment's namespace
    finally:
        watcher.close()


@pytest.mark.parametrize(
    ("secret", "fault", "reason"),
    [
        ("absent", None, "SecretNotFound"),
        (
            "store-keys",
            kube_errors.Forbidden("Forbidden", "secrets is forbidden", 403),
            "SecretForbidden",
        ),
        ("store-keys", kube_errors.KubeError("SecretTooLarge", "too big", 0), "SecretTooLarge"),
        ("wrong-keys", None, "AccessDenied"),
        (None, None, "NoCredentials"),
    ],
)
def test_a_listing_that_cannot_be_made_says_why_and_never_shows_the_keys(
    s3_server: S3Server,
    s3_store: str,
    monkeypatch: pytest.MonkeyPatch,
    secret: str | None,
    fault: Exception | None,
    reason: str,
):
    for var in list(os.environ):
        if var.startswith("AWS_"):
            monkeypatch.delenv(var)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    # Without a Secret the operator's ambient credentials are used: here it has none,
    # and boto3 reaches the endpoint only through the environment.
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3_server.endpoint)
    kube = FakeKube()
    kube.put(s3_secret(s3_server))
    wrong = s3_secret(s3_server, "wrong-keys", AWS_SECRET_ACCESS_KEY="not-the-secret-key")
    kube.put(wrong)
    if fault is not None:
        kube.fail(fault, verb="get", kind="Secret")  # type: ignore[arg-type]
    done = threading.Event()
    watcher = StoreWatcher(
        interval_s=3600, secrets=kube.read_secret, on_ready=lambda key: done.set()
    )
    try:
        view = listed(watcher, done, s3_store, secret)
        assert view is not None and view.error is not None, view
        assert view.error.reason == reason, view.error
        assert view.newest is None  # nothing listed: nothing to roll
        for value in (s3_server.secret_key, "not-the-secret-key"):
            assert value not in view.error.message
    finally:
        watcher.close()


def test_an_endpoint_the_secret_names_is_dialled_only_when_the_operator_allows_it(
    s3_server: S3Server, s3_store: str, monkeypatch: pytest.MonkeyPatch
):
    """A tenant's Secret points the operator's listing at an address of its choosing:
    refused with EndpointNotAllowed and no request sent, unless configured."""
    for var in list(os.environ):
        if var.startswith("AWS_"):
            monkeypatch.delenv(var)
    kube = FakeKube()
    # Where the tenant points the operator: a port on loopback the test listens on,
    # to see that nothing is sent there.
    import socket

    trap = socket.socket()
    trap.bind(("127.0.0.1", 0))
    trap.listen(1)
    trap.settimeout(0.5)
    elsewhere = f"http://127.0.0.1:{trap.getsockname()[1]}"
    kube.put(s3_secret(s3_server, "elsewhere", AWS_ENDPOINT_URL=elsewhere))
    kube.put(s3_secret(s3_server))
    allowed = parse_allowlist(s3_server.endpoint)
    for secret, reason in (("elsewhere", "EndpointNotAllowed"), ("store-keys", None)):
        done = threading.Event()
        watcher = StoreWatcher(
            interval_s=3600,
            secrets=kube.read_secret,
            on_ready=lambda key, done=done: done.set(),
            allowed_endpoints=allowed,
        )
        try:
            view = listed(watcher, done, s3_store, secret)
            assert view is not None
            if reason is None:
                assert view.error is None and view.newest == "2", view
            else:
                assert view.error is not None and view.error.reason == reason, view
                assert "MODELOPS_STORE_ENDPOINTS" in view.error.message
                with pytest.raises(TimeoutError):
                    trap.accept()  # the operator never connected
        finally:
            watcher.close()
    trap.close()


@pytest.mark.parametrize(
    ("allowlist", "endpoint", "allowed"),
    [
        ("http://127.0.0.1", "http://127.0.0.1:9000", True),  # no port: any port
        ("https://minio.store.svc:9000", "https://minio.store.svc:9000/", True),
        ("https://minio.store.svc:9000", "https://minio.store.svc:9001", False),
        ("https://minio.store.svc", "http://minio.store.svc", False),  # scheme differs
        ("https://MinIO.store.svc", "https://minio.store.svc", True),
        ("https://s3.example.com:443", "https://s3.example.com", True),  # default port
        ("", "http://169.254.169.254", False),
        ("http://127.0.0.1", "file:///etc/passwd", False),
    ],
)
def test_the_endpoint_allowlist(allowlist: str, endpoint: str, allowed: bool):
    from modelops.storage.endpoints import endpoint_allowed

    assert endpoint_allowed(endpoint, parse_allowlist(allowlist)) is allowed


def test_an_allowlist_entry_that_is_not_an_origin_stops_the_start():
    with pytest.raises(ValueError, match="MODELOPS_STORE_ENDPOINTS"):
        parse_allowlist("https://ok.example, minio:9000")


def test_a_manifest_or_listing_past_its_bound_is_refused_not_read(
    s3_server: S3Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    """Reads of the untrusted store are bounded: a ranged GET for a manifest (S3 and a
    local directory alike), a key count for a listing."""
    from modelops.storage import base
    from modelops.storage.errors import StorageError
    from modelops.storage.stores import open_store
    from modelops.storage.uri import parse_storage_uri

    client = s3_server.client()
    bucket = f"big-{uuid.uuid4().hex[:8]}"
    client.create_bucket(Bucket=bucket)
    client.put_object(Bucket=bucket, Key="m/1/SHA256SUMS", Body=b"x" * 5000)
    (tmp_path / "1").mkdir()
    (tmp_path / "1" / "SHA256SUMS").write_bytes(b"x" * 5000)
    from modelops.storage.s3 import make_s3_client

    s3 = open_store(
        parse_storage_uri(f"s3://{bucket}/m"),
        s3_client=make_s3_client(env=dict(s3_server.env())),
    )
    local = open_store(parse_storage_uri(f"file://{tmp_path}"))
    for store in (s3, local):
        assert store.read_bytes("1/SHA256SUMS", limit=5000) == b"x" * 5000
        with pytest.raises(StorageError) as err:
            store.read_bytes("1/SHA256SUMS", limit=4999)
        assert err.value.reason == "ObjectTooLarge"
    for i in range(4):
        client.put_object(Bucket=bucket, Key=f"m/{i + 2}/f", Body=b"")
    monkeypatch.setattr(base, "MAX_LISTED_KEYS", 3)
    with pytest.raises(StorageError) as err:
        s3.list_versions()
    assert err.value.reason == "ListingTooLarge"


def test_the_metrics_a_version_was_published_with_are_read_when_its_manifest_seals_them(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
):
    """`modelops package-model --metrics` seals metrics.json into the version; the watcher
    reads it back for the versions it is asked about (what the evalMetric gate compares a
    candidate with when the stable version has no TrainingJob lineage). A metrics.json
    the manifest does not seal (added afterwards, or altered) is not believed."""
    from modelops.cli import main

    model = tmp_path / "model.pt"
    model.write_bytes(b"torchscript bytes")  # packaging never loads it
    metrics = tmp_path / "metrics.json"
    metrics.write_text('{"valAccuracy": 0.91, "valLoss": 0.3}')
    store = tmp_path / "store" / "fraud"
    common = ["--name", "fraud", "--input", "x:fp32:4", "--output", "y:fp32:2", "--kind", "cpu"]
    publish_to = ["--publish", f"file://{store}"]
    assert main(["package-model", str(model), *common, "--metrics", str(metrics), *publish_to]) == 0
    assert main(["package-model", str(model), *common, *publish_to]) == 0  # version 2: none
    capsys.readouterr()
    (store / "2" / "metrics.json").write_text('{"valAccuracy": 0.99}')  # not sealed: ignored
    watcher, done = watcher_with_signal(interval_s=3600)
    uri = f"file://{store}"
    try:
        watcher.view("ml", "m", uri, want=["1", "2"])
        assert done.wait(5)
        view = watcher.view("ml", "m", uri, want=["1", "2"])
        assert view is not None and view.newest == "2"
        assert view.metrics == {"1": {"valAccuracy": 0.91, "valLoss": 0.3}}
        assert view.as_observed()["metrics"] == {"1": {"valAccuracy": 0.91, "valLoss": 0.3}}
    finally:
        watcher.close()
