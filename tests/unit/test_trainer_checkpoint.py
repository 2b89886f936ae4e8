"""Checkpoint naming, selection and atomic save / fallback load."""

from __future__ import annotations

import pytest

from modelops.trainer.checkpoint import (
    checkpoint_epochs,
    checkpoint_name,
    load_latest,
    remove_temporaries,
    save_checkpoint,
)


def test_names_sort_by_epoch_not_by_text():
    assert checkpoint_name(3) == "epoch-000003.pt"
    assert checkpoint_name(1_234_567) == "epoch-1234567.pt"
    with pytest.raises(ValueError, match="completed epoch"):
        checkpoint_name(0)


def test_selection_is_newest_first_and_ignores_everything_else():
    names = [
        "epoch-000002.pt",
        "epoch-000010.pt",
        "epoch-1000000.pt",
        "epoch-000009.pt",
        ".tmp-abc.pt",  # half-written
        "epoch-000011.pt.tmp",
        "epoch-11.pt",  # not zero-padded: not ours
        "epoch-000000.pt",  # epoch 0 is never written
        "result.json",
    ]
    assert checkpoint_epochs(names) == [
        (1_000_000, "epoch-1000000.pt"),
        (10, "epoch-000010.pt"),
        (9, "epoch-000009.pt"),
        (2, "epoch-000002.pt"),
    ]
    assert checkpoint_epochs([]) == []


@pytest.mark.torch
def test_save_prunes_and_load_returns_the_newest(tmp_path):
    import torch

    for epoch in (1, 2, 3):
        save_checkpoint(tmp_path, epoch, {"w": torch.full((2,), float(epoch))}, keep=2)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["epoch-000002.pt", "epoch-000003.pt"]
    state = load_latest(tmp_path)
    assert state is not None and state["epoch"] == 3
    assert torch.equal(state["w"], torch.full((2,), 3.0))


@pytest.mark.torch
def test_damaged_newest_checkpoint_falls_back_to_the_previous_one(tmp_path, caplog):
    import torch

    save_checkpoint(tmp_path, 1, {"w": torch.ones(1)})
    save_checkpoint(tmp_path, 2, {"w": torch.ones(1)})
    (tmp_path / "epoch-000002.pt").write_bytes(b"truncated")
    state = load_latest(tmp_path)
    assert state is not None and state["epoch"] == 1
    assert "epoch-000002.pt does not load" in caplog.text


@pytest.mark.torch
def test_a_checkpoint_renamed_to_another_epoch_is_skipped(tmp_path):
    import torch

    save_checkpoint(tmp_path, 1, {"w": torch.ones(1)})
    (tmp_path / "epoch-000001.pt").rename(tmp_path / "epoch-000005.pt")
    assert load_latest(tmp_path) is None


@pytest.mark.torch
def test_checkpoints_never_unpickle_code(tmp_path):
    import torch

    # A pickled callable would run code at load time: weights_only refuses it.
    torch.save({"format": 1, "epoch": 1, "hook": print}, tmp_path / "epoch-000001.pt")
    assert load_latest(tmp_path) is None


def test_missing_directory_has_no_checkpoint_and_temporaries_are_removed(tmp_path):
    assert load_latest(tmp_path / "absent") is None
    (tmp_path / ".tmp-123.pt").write_bytes(b"half")
    (tmp_path / "epoch-000001.pt").write_bytes(b"keep me")
    remove_temporaries(tmp_path)
    assert [p.name for p in tmp_path.iterdir()] == ["epoch-000001.pt"]
