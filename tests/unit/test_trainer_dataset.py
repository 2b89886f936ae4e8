"""Train/validation split, sharding and feature samples (real torch, no process group)."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from modelops.trainer.contract import ContractError  # noqa: E402
from modelops.trainer.dataset import (  # noqa: E402
    ShardSampler,
    as_dataset,
    feature_sample,
    first_features,
    make_loader,
    split_dataset,
)

pytestmark = pytest.mark.torch


class Rows(torch.utils.data.Dataset):
    """A map-style dataset that is not a TensorDataset (the generic path)."""

    def __init__(self, n: int) -> None:
        self.n = n

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int):
        return torch.full((3,), float(i)), i % 2


def test_arrays_become_a_tensor_dataset_and_bad_returns_are_named():
    ds = as_dataset((np.zeros((4, 3), np.float32), np.arange(4)), "m")
    assert isinstance(ds, torch.utils.data.TensorDataset) and len(ds) == 4
    rows = Rows(3)
    assert as_dataset(rows, "m") is rows
    with pytest.raises(ContractError, match="3 feature rows for 2 labels"):
        as_dataset((np.zeros((3, 2)), np.zeros(2)), "m")
    with pytest.raises(ContractError, match=r"m.load_dataset\(\) returned dict"):
        as_dataset({}, "m")


@pytest.mark.parametrize(
    "make",
    [lambda: as_dataset((torch.arange(100.0)[:, None], torch.arange(100)), "m"), lambda: Rows(100)],
)
def test_split_is_seeded_disjoint_and_complete(make):
    train, val = split_dataset(make(), 0.2, seed=3)
    train2, val2 = split_dataset(make(), 0.2, seed=3)
    _, val3 = split_dataset(make(), 0.2, seed=4)
    labels = lambda ds: sorted(int(ds[i][0][0]) for i in range(len(ds)))  # noqa: E731
    assert (len(train), len(val)) == (80, 20)
    assert labels(val) == labels(val2) and labels(val) != labels(val3)
    assert sorted(labels(train) + labels(val)) == list(range(100))
    assert labels(train2) == labels(train)


def test_no_validation_split_and_too_much():
    ds = Rows(10)
    assert split_dataset(ds, 0.0, 0) == (ds, None)
    with pytest.raises(ContractError, match="no training rows"):
        split_dataset(Rows(1), 0.9, 0)


def test_shards_cover_every_row_exactly_once():
    shards = [list(ShardSampler(11, rank, 3)) for rank in range(3)]
    assert sorted(i for shard in shards for i in shard) == list(range(11))
    assert [len(s) for s in shards] == [4, 4, 3]


@pytest.mark.parametrize(
    "ds", [as_dataset((torch.arange(10.0)[:, None], torch.arange(10)), "m"), Rows(10)]
)
def test_loaders_yield_whole_batches_either_way(ds):
    batches = list(make_loader(ds, ShardSampler(10, 0, 1), batch_size=4))
    assert [b[0].shape[0] for b in batches] == [4, 4, 2]
    assert torch.equal(
        torch.cat([b[1] for b in batches]), torch.as_tensor([ds[i][1] for i in range(10)])
    )


def test_first_features_and_reference_sample():
    ds = as_dataset((torch.arange(12.0).reshape(6, 2), torch.zeros(6)), "m")
    assert torch.equal(first_features(ds), torch.tensor([[0.0, 1.0], [2.0, 3.0]]))
    assert first_features(Rows(5)).shape == (2, 3)
    sample = feature_sample(ds, seed=0, limit=4)
    assert sample.shape == (4, 2) and sample.dtype == np.float64
    assert feature_sample(Rows(5), seed=0).shape == (5, 3)
