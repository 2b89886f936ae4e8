"""Pull and publish through file:// and pvc:// stores (real filesystem, no server)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from modelops.cli import main
from modelops.commands.pull import pull_model
from modelops.modeldir.layout import CONFIG_NAME, INDEX_NAME, INSTALLED_NAME
from modelops.modeldir.repository import copy_into, verify_version_dir, write_version
from modelops.storage.errors import StorageError
from modelops.storage.publish import publish_version
from modelops.triton.config_patch import RuntimeOverrides


def make_version(tmp_path: Path, payload: bytes, config: str = "cfg\n") -> Path:
    """A sealed local version directory, as packaging produces it."""
    staging_repo = tmp_path / "packaged" / payload.hex()
    number = write_version(
        staging_repo, copy_into({"model.pt": payload, "sub/extra.bin": b"e"}), config_text=config
    )
    return staging_repo / str(number)


@pytest.fixture
def store(tmp_path) -> Path:
    """A file:// model directory with versions 1 and 2 published into it."""
    dest = tmp_path / "store" / "fraud"
    assert publish_version(make_version(tmp_path, b"v1", "cfg1\n"), f"file://{dest}") == 1
    assert publish_version(make_version(tmp_path, b"v2", "cfg2\n"), f"file://{dest}") == 2
    return dest


def test_publish_writes_layout_for_http_mirroring(store):
    assert json.loads((store / INDEX_NAME).read_text()) == {"versions": [1, 2]}
    assert (store / CONFIG_NAME).read_text() == "cfg2\n"
    verify_version_dir(store / "2")


def test_publish_refuses_unsealed_or_tampered_dirs(tmp_path, store):
    loose = tmp_path / "loose"
    loose.mkdir()
    (loose / "model.pt").write_bytes(b"x")
    with pytest.raises(StorageError) as err:
        publish_version(loose, f"file://{store}")
    assert err.value.reason == "VersionIncomplete"
    version = make_version(tmp_path, b"v3")
    (version / "model.pt").write_bytes(b"tampered")
    with pytest.raises(StorageError) as err:
        publish_version(version, f"file://{store}")
    assert err.value.reason == "ChecksumMismatch"
    with pytest.raises(StorageError) as err:
        publish_version(make_version(tmp_path, b"v4"), f"file://{store}", version=2)
    assert err.value.reason == "VersionExists"
    assert (store / "2" / "model.pt").read_bytes() == b"v2"


def test_pull_latest(tmp_path, store):
    repo = tmp_path / "repo"
    result = pull_model(f"file://{store}", repo)
    assert (result.model, result.version, result.verified, result.downloaded) == (
        "fraud", 2, True, True,
    )  # fmt: skip
    model = repo / "fraud"
    assert (model / "2" / "model.pt").read_bytes() == b"v2"
    assert (model / "2" / "sub" / "extra.bin").read_bytes() == b"e"
    assert (model / CONFIG_NAME).read_text() == "cfg2\n"
    record = json.loads((model / INSTALLED_NAME).read_text())
    assert record["version"] == 2
    assert record["source"] == f"file://{store}"
    assert record["manifest_sha256"] == result.manifest_sha256
    assert sorted(p.name for p in repo.iterdir()) == ["fraud"]  # no staging left over
    verify_version_dir(model / "2")


def test_pull_pinned_version_replaces_and_prunes(tmp_path, store):
    repo = tmp_path / "repo"
    pull_model(f"file://{store}", repo, "2")
    result = pull_model(f"file://{store}", repo, "1")
    assert result.version == 1
    model = repo / "fraud"
    # Triton serves the newest version present, so the pinned one must be alone.
    assert {p.name for p in model.iterdir()} == {"1", CONFIG_NAME, INSTALLED_NAME}
    assert (model / CONFIG_NAME).read_text() == "cfg1\n"
    kept = pull_model(f"file://{store}", repo, "2", prune=False)
    assert kept.version == 2
    assert {p.name for p in model.iterdir()} >= {"1", "2"}


def test_pull_again_is_a_no_op_unless_damaged(tmp_path, store):
    repo = tmp_path / "repo"
    pull_model(f"file://{store}", repo)
    again = pull_model(f"file://{store}", repo)
    assert again.downloaded is False
    assert again.manifest_sha256 is not None
    (repo / "fraud" / "2" / "model.pt").write_bytes(b"corrupted")
    repaired = pull_model(f"file://{store}", repo)
    assert repaired.downloaded is True
    assert (repo / "fraud" / "2" / "model.pt").read_bytes() == b"v2"


def test_incomplete_newest_version_is_never_pulled(tmp_path, store):
    # Version 3 is being written: files present, no manifest yet.
    (store / "3").mkdir()
    (store / "3" / "model.pt").write_bytes(b"half")
    repo = tmp_path / "repo"
    assert pull_model(f"file://{store}", repo).version == 2
    with pytest.raises(StorageError) as err:
        pull_model(f"file://{store}", repo, "3")
    assert err.value.reason == "VersionIncomplete"
    # ...unless the caller says the source is not a modelops publisher.
    forced = pull_model(f"file://{store}", repo, "3", allow_unverified=True)
    assert (forced.version, forced.verified) == (3, False)
    verify_version_dir(repo / "fraud" / "3")  # sealed locally


def test_corrupt_download_leaves_repository_untouched(tmp_path, store):
    repo = tmp_path / "repo"
    pull_model(f"file://{store}", repo, "1")
    before = {p: p.read_bytes() for p in (repo / "fraud").rglob("*") if p.is_file()}
    (store / "2" / "sub" / "extra.bin").write_bytes(b"bit rot")
    with pytest.raises(StorageError) as err:
        pull_model(f"file://{store}", repo, "2")
    assert err.value.reason == "ChecksumMismatch"
    after = {p: p.read_bytes() for p in (repo / "fraud").rglob("*") if p.is_file()}
    assert after == before
    # Same for a model that was not there yet: nothing appears at all.
    with pytest.raises(StorageError):
        pull_model(f"file://{store}", tmp_path / "fresh", "2")
    assert list((tmp_path / "fresh").iterdir()) == []


def test_missing_things(tmp_path, store):
    cases = [
        (f"file://{tmp_path}/nothing", "latest", "ModelNotFound"),
        (f"file://{store}", "9", "VersionNotFound"),
        (f"file://{store}", "v9", "InvalidArgument"),
    ]
    empty = tmp_path / "empty"
    empty.mkdir()
    cases.append((f"file://{empty}", "latest", "ModelNotFound"))
    for uri, version, reason in cases:
        with pytest.raises(StorageError) as err:
            pull_model(uri, tmp_path / "repo", version)
        assert err.value.reason == reason, uri
    with pytest.raises(StorageError, match=r"complete versions: \[1, 2\]"):
        pull_model(f"file://{store}", tmp_path / "repo", "9")


def test_pvc_uri_resolves_under_the_mount_root(tmp_path):
    mount_root = tmp_path / "mnt"
    (mount_root / "model-store").mkdir(parents=True)  # the mounted claim
    dest = mount_root / "model-store" / "team" / "fraud"
    assert publish_version(make_version(tmp_path, b"p1"), "pvc://model-store/team/fraud",
                           pvc_root=mount_root) == 1  # fmt: skip
    assert (dest / "1" / "model.pt").read_bytes() == b"p1"
    result = pull_model(
        "pvc://model-store/team/fraud", tmp_path / "repo", pvc_root=mount_root, model_name="f"
    )
    assert (result.model, result.version) == ("f", 1)
    assert (tmp_path / "repo" / "f" / "1" / "model.pt").read_bytes() == b"p1"
    with pytest.raises(StorageError, match="not mounted") as err:
        pull_model("pvc://other/fraud", tmp_path / "repo", pvc_root=mount_root)
    assert err.value.reason == "ModelNotFound"


def test_cli_success_json_and_termination_log(tmp_path, store, capsys):
    log = tmp_path / "termination-log"
    rc = main(["pull-model", f"file://{store}", "--repository", str(tmp_path / "repo"),
               "--termination-log", str(log)])  # fmt: skip
    captured = capsys.readouterr()
    assert rc == 0
    result = json.loads(captured.out)
    assert (result["model"], result["version"]) == ("fraud", 2)
    assert json.loads(log.read_text()) == result
    assert "pulled" in captured.err


def test_cli_error_is_one_line_with_reason(tmp_path, store, capsys):
    log = tmp_path / "termination-log"
    rc = main(["pull-model", f"file://{store}", "--repository", str(tmp_path / "repo"),
               "--version", "7", "--termination-log", str(log)])  # fmt: skip
    err = capsys.readouterr().err
    assert rc == 1
    assert err.startswith("modelops pull-model: error: VersionNotFound: ")
    assert err.count("\n") == 1
    assert log.read_text().startswith("VersionNotFound: ")


def test_staging_left_by_a_killed_pull_is_cleaned(tmp_path, store):
    repo = tmp_path / "repo"
    # An earlier init container died mid-download; Triton would try to load this.
    (repo / ".tmp-fraud@abc123" / "2").mkdir(parents=True)
    pull_model(f"file://{store}", repo, "1")
    (repo / "fraud" / ".tmp-xyz").mkdir()
    pull_model(f"file://{store}", repo, "1")  # already installed, still cleans
    assert sorted(p.name for p in repo.iterdir()) == ["fraud"]
    assert not [p for p in (repo / "fraud").iterdir() if p.name.startswith(".tmp-")]


PYTHON_CONFIG = """name: "fraud"
backend: "python"
max_batch_size: 8
input [{ name: "x", data_type: TYPE_FP32, dims: [ 4 ] }]
output [{ name: "y", data_type: TYPE_FP32, dims: [ 2 ] }]
dynamic_batching { max_queue_delay_microseconds: 100 }
instance_group [{ count: 1, kind: KIND_GPU }]
"""


@pytest.fixture
def real_config_store(tmp_path) -> Path:
    dest = tmp_path / "cfgstore" / "fraud"
    publish_version(make_version(tmp_path, b"w", PYTHON_CONFIG), f"file://{dest}")
    return dest


def test_runtime_settings_patch_the_installed_config_only(tmp_path, real_config_store):
    repo = tmp_path / "repo"
    overrides = RuntimeOverrides(max_batch_size=32, max_queue_delay_microseconds=5, gpus=0)
    pull_model(f"file://{real_config_store}", repo, overrides=overrides, model_format="torchscript")
    installed = (repo / "fraud" / CONFIG_NAME).read_text()
    assert "max_batch_size: 32" in installed
    assert "max_queue_delay_microseconds: 5" in installed
    assert "KIND_CPU" in installed
    # The version's own copy stays as published, so it still verifies.
    assert (repo / "fraud" / "1" / CONFIG_NAME).read_text() == PYTHON_CONFIG
    verify_version_dir(repo / "fraud" / "1")


def test_format_mismatch_installs_nothing(tmp_path, real_config_store):
    with pytest.raises(StorageError) as err:
        pull_model(f"file://{real_config_store}", tmp_path / "repo", model_format="onnx")
    assert err.value.reason == "FormatMismatch"
    assert "'python'" in str(err.value)
    assert list((tmp_path / "repo").iterdir()) == []


def test_settings_need_a_parsable_config(tmp_path, store):
    # The `store` fixture's configs are placeholders ("cfg2"), not Triton configs.
    with pytest.raises(StorageError) as err:
        pull_model(f"file://{store}", tmp_path / "repo", overrides=RuntimeOverrides(gpus=1))
    assert err.value.reason == "InvalidConfig"


def test_cli_accepts_the_deployment_arguments(tmp_path, real_config_store, capsys):
    rc = main(["pull-model", "--uri", f"file://{real_config_store}", "--version", "latest",
               "--model-name", "served", "--format", "torchscript",
               "--repository", str(tmp_path / "repo"), "--instances-per-gpu", "2", "--gpus", "1",
               "--max-batch-size", "64", "--dynamic-batching-delay-us", "250"])  # fmt: skip
    assert rc == 0, capsys.readouterr().err
    assert json.loads(capsys.readouterr().out)["model"] == "served"
    installed = (tmp_path / "repo" / "served" / CONFIG_NAME).read_text()
    assert "max_batch_size: 64" in installed
    assert "count: 2\n  kind: KIND_GPU" in installed
    assert main(["pull-model", "--repository", str(tmp_path)]) == 1
    assert "give the model URI once" in capsys.readouterr().err


# --- containment: a source cannot make the pull read or write outside its root ----------


def unverified_version(root: Path, files: dict[str, bytes]) -> None:
    """Version 1 without a manifest (uploaded by another tool)."""
    for name, data in files.items():
        (root / "1" / name).parent.mkdir(parents=True, exist_ok=True)
        (root / "1" / name).write_bytes(data)


@pytest.mark.parametrize("scheme", ["file", "pvc"])
def test_a_symlink_out_of_the_source_is_refused_not_copied(tmp_path, scheme):
    secret = tmp_path / "outside" / "secret.txt"
    secret.parent.mkdir()
    secret.write_bytes(b"the pod's own secret")
    claim_root = tmp_path / "claims"
    model = claim_root / "store" / "fraud"
    unverified_version(model, {"model.pt": b"m"})
    (model / "1" / "stolen.txt").symlink_to(secret)
    uri = f"file://{model}" if scheme == "file" else "pvc://store/fraud"

    with pytest.raises(StorageError) as err:
        pull_model(uri, tmp_path / "repo", allow_unverified=True, pvc_root=claim_root)
    assert err.value.reason == "UnsafePath"
    assert "stolen.txt" in str(err.value) and "outside the model directory" in str(err.value)
    assert not (tmp_path / "repo" / "fraud").exists()
    assert not any(p.read_bytes() == secret.read_bytes() for p in tmp_path.rglob("*.txt")
                   if p.is_file() and not p.is_symlink() and p != secret)  # fmt: skip


def test_a_symlinked_version_directory_out_of_the_source_is_refused(tmp_path):
    elsewhere = tmp_path / "elsewhere" / "1"
    elsewhere.mkdir(parents=True)
    (elsewhere / "model.pt").write_bytes(b"not this model's")
    model = tmp_path / "store" / "fraud"
    model.mkdir(parents=True)
    (model / "1").symlink_to(elsewhere, target_is_directory=True)
    with pytest.raises(StorageError) as err:
        pull_model(f"file://{model}", tmp_path / "repo", allow_unverified=True)
    assert err.value.reason == "UnsafePath"


def test_symlinks_that_stay_inside_the_source_are_followed(tmp_path):
    model = tmp_path / "store" / "fraud"
    unverified_version(model, {"weights/real.pt": b"w"})
    (model / "1" / "model.pt").symlink_to(model / "1" / "weights" / "real.pt")
    result = pull_model(f"file://{model}", tmp_path / "repo", allow_unverified=True)
    assert result.version == 1
    assert (tmp_path / "repo" / "fraud" / "1" / "model.pt").read_bytes() == b"w"
