"""Storage URI parsing (pure)."""

from __future__ import annotations

from pathlib import Path

import pytest

from modelops.storage.errors import StorageError
from modelops.storage.uri import (
    FileLocation,
    GcsLocation,
    HttpLocation,
    PvcLocation,
    S3Location,
    default_model_name,
    parse_storage_uri,
    pvc_mount_root,
)


@pytest.mark.parametrize(
    ("uri", "expected"),
    [
        ("s3://models/fraud", S3Location("models", "fraud")),
        ("s3://models/team/fraud/", S3Location("models", "team/fraud")),
        ("s3://models", S3Location("models", "")),
        ("S3://models//a//b", S3Location("models", "a/b")),
        ("https://host:8443/m/fraud/", HttpLocation("https://host:8443/m/fraud")),
        ("http://svc.ns.svc/fraud", HttpLocation("http://svc.ns.svc/fraud")),
        ("file:///srv/models/fraud", FileLocation(Path("/srv/models/fraud"))),
        ("file://localhost/srv/m%20x", FileLocation(Path("/srv/m x"))),
        ("pvc://model-store/team/fraud", PvcLocation("model-store", "team/fraud")),
        ("pvc://store", PvcLocation("store", "")),
        ("gs://models/team/fraud/", GcsLocation("models", "team/fraud")),
        ("gs://models", GcsLocation("models", "")),
    ],
)
def test_parse(uri, expected):
    assert parse_storage_uri(uri) == expected


@pytest.mark.parametrize(
    ("uri", "reason"),
    [
        ("", "InvalidUri"),
        ("/just/a/path", "InvalidUri"),
        ("s3://", "InvalidUri"),
        ("s3://user@bucket/x", "InvalidUri"),
        ("s3://b/../x", "InvalidUri"),
        ("s3://b/x?versionId=3", "InvalidUri"),
        ("https:///nohost", "InvalidUri"),
        ("file://host/x", "InvalidUri"),
        ("file:relative", "InvalidUri"),
        ("pvc://Upper/x", "InvalidUri"),
        ("pvc:///x", "InvalidUri"),
        ("pvc://claim/./x", "InvalidUri"),
        ("gs://", "InvalidUri"),
        ("gs://b/x/../../y", "InvalidUri"),
        ("https://user:pass@host/m", "InvalidUri"),
        ("https://token@host/m", "InvalidUri"),
        ("gs://user@bucket/x", "InvalidUri"),
        ("ftp://host/x", "UnsupportedScheme"),
    ],
)
def test_parse_rejects(uri, reason):
    with pytest.raises(StorageError) as err:
        parse_storage_uri(uri)
    assert err.value.reason == reason
    assert "pass" not in str(err.value) and "token" not in str(err.value)


def test_invalid_uri_messages_do_not_echo_a_signature():
    with pytest.raises(StorageError) as err:
        parse_storage_uri("https://h/m/1/model.pt?X-Amz-Signature=deadbeef")
    assert err.value.reason == "InvalidUri"
    assert "deadbeef" not in str(err.value)
    assert "https://h/m/1/model.pt?REDACTED" in str(err.value)


def test_s3_keys_and_display():
    assert S3Location("b", "p/q").key("3/model.pt") == "p/q/3/model.pt"
    assert S3Location("b", "").key("index.json") == "index.json"
    assert str(S3Location("b", "p")) == "s3://b/p"
    assert GcsLocation("b", "p").key("3/x") == "p/3/x"
    assert str(GcsLocation("b", "")) == "gs://b"
    assert HttpLocation("https://h/m").url("1/SHA256SUMS") == "https://h/m/1/SHA256SUMS"


def test_pvc_paths(monkeypatch):
    location = PvcLocation("store", "team/fraud")
    assert location.local_path(Path("/mnt/pvc")) == Path("/mnt/pvc/store/team/fraud")
    assert PvcLocation("store", "").local_path(Path("/m")) == Path("/m/store")
    monkeypatch.delenv("MODELOPS_PVC_MOUNT_ROOT", raising=False)
    assert pvc_mount_root() == Path("/mnt/pvc")
    monkeypatch.setenv("MODELOPS_PVC_MOUNT_ROOT", "/data")
    assert pvc_mount_root() == Path("/data")
    assert pvc_mount_root("/explicit") == Path("/explicit")


@pytest.mark.parametrize(
    ("uri", "name"),
    [
        ("s3://models/team/fraud", "fraud"),
        ("https://h/x/fraud/", "fraud"),
        ("file:///srv/fraud", "fraud"),
        ("pvc://store/fraud", "fraud"),
        ("pvc://store", "store"),
    ],
)
def test_default_model_name(uri, name):
    assert default_model_name(parse_storage_uri(uri)) == name


def test_default_model_name_needs_a_path():
    with pytest.raises(StorageError, match="cannot derive a model name"):
        default_model_name(parse_storage_uri("s3://bucket"))


def test_error_one_line():
    err = StorageError("AccessDenied", "denied\n  twice")
    assert err.one_line() == "AccessDenied: denied twice"
