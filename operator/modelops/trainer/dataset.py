"""What ``load_dataset`` returned, made into train/validation sets and sharded loaders.

Every rank loads the whole dataset and takes its shard through the sampler,
so the split must be identical on every rank: it is a permutation seeded by
the ``seed`` hyperparameter only.

In-memory arrays become a TensorDataset and are fetched a whole batch per
index operation (a BatchSampler as the sampler, automatic batching off)
instead of row by row and stacked, which is most of the input cost for
small tabular models.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import torch
from torch.utils.data import BatchSampler, DataLoader, Dataset, Sampler, Subset, TensorDataset

from modelops.trainer.contract import ContractError

# Rows used for the drift reference and at most this many: quantiles of 50k
# rows are stable well beyond the 20 bins a reference keeps.
REFERENCE_ROWS = 50_000


def as_dataset(loaded: Any, module: str) -> Dataset:
    """A torch Dataset from ``(features, labels)`` arrays or a Dataset as-is."""
    if isinstance(loaded, Dataset):
        return loaded
    if isinstance(loaded, tuple | list) and len(loaded) == 2:
        # torch.as_tensor shares memory with numpy arrays and leaves tensors alone.
        features, labels = (
            torch.as_tensor(np.asarray(a)) if not torch.is_tensor(a) else a for a in loaded
        )
        if features.shape[0] != labels.shape[0] or features.shape[0] == 0:
            raise ContractError(
                f"{module}.load_dataset(): {features.shape[0]} feature rows "
                f"for {labels.shape[0]} labels"
            )
        return TensorDataset(features, labels)
    raise ContractError(
        f"{module}.load_dataset() returned {type(loaded).__name__}; "
        "expected (features, labels) or a torch Dataset"
    )


def split_dataset(
    dataset: Dataset, val_fraction: float, seed: int
) -> tuple[Dataset, Dataset | None]:
    """(train, validation or None), by a seeded permutation of the rows."""
    n = len(dataset)  # type: ignore[arg-type]
    n_val = round(n * val_fraction)
    if n_val == 0:
        return dataset, None
    if n_val >= n:
        raise ContractError(f"val_fraction={val_fraction} leaves no training rows out of {n}")
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    train_idx, val_idx = order[n_val:], order[:n_val]
    if isinstance(dataset, TensorDataset):
        # Copies of the rows: contiguous tensors keep batch indexing fast.
        return (
            TensorDataset(*(t[train_idx] for t in dataset.tensors)),
            TensorDataset(*(t[val_idx] for t in dataset.tensors)),
        )
    return Subset(dataset, train_idx.tolist()), Subset(dataset, val_idx.tolist())


def make_loader(dataset: Dataset, sampler: Sampler[int], batch_size: int) -> DataLoader:
    if isinstance(dataset, TensorDataset):
        batches = BatchSampler(sampler, batch_size, drop_last=False)
        return DataLoader(dataset, batch_size=None, sampler=batches)
    return DataLoader(dataset, batch_size=batch_size, sampler=sampler)


class ShardSampler(Sampler[int]):
    """Rows ``rank, rank + world, ...`` in order: every row exactly once over all ranks.

    Used for evaluation, where DistributedSampler's padding (repeating rows so
    every rank gets as many) would count some rows twice.
    """

    def __init__(self, size: int, rank: int, world_size: int) -> None:
        self.indices = range(rank, size, world_size)

    def __iter__(self) -> Iterator[int]:
        return iter(self.indices)

    def __len__(self) -> int:
        return len(self.indices)


def first_features(dataset: Dataset, rows: int = 2) -> torch.Tensor:
    """A small batch of inputs (for tracing the model at export)."""
    if isinstance(dataset, TensorDataset):
        return dataset.tensors[0][:rows]
    count = min(rows, len(dataset))  # type: ignore[arg-type]
    return torch.stack([torch.as_tensor(dataset[i][0]) for i in range(count)])


def feature_sample(dataset: Dataset, seed: int, limit: int = REFERENCE_ROWS) -> np.ndarray:
    """Up to ``limit`` rows of training features as a 2-D float array (for the drift reference).

    Inputs with more than one axis per row are flattened; the drift sidecar
    reads features along a request's last axis, which agrees for the usual
    ``[batch, features]`` tabular input.
    """
    n = len(dataset)  # type: ignore[arg-type]
    rows = torch.arange(n)
    if n > limit:
        rows = torch.randperm(n, generator=torch.Generator().manual_seed(seed))[:limit].sort()[0]
    if isinstance(dataset, TensorDataset):
        features = dataset.tensors[0][rows]
    else:
        features = torch.stack([torch.as_tensor(dataset[int(i)][0]) for i in rows])
    return features.reshape(features.shape[0], -1).to(torch.float64).cpu().numpy()
