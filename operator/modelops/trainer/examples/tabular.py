"""Example training module: an MLP that classifies rows of 20 float features into 2 classes.

Run it with::

    modelops train --entrypoint modelops.trainer.examples.tabular \\
        --dataset 'synthetic://tabular?rows=20000&seed=1' \\
        --output file:///tmp/models/tabular --model-name tabular \\
        --checkpoint-dir /tmp/ckpt --hp epochs=5 --nproc-per-node 2

Hyperparameters (besides the runner's ``epochs``, ``batch_size``, ``seed``,
``val_fraction``): ``hidden`` (units per hidden layer, 64), ``layers`` (hidden
layers, 2), ``lr`` (Adam learning rate, 0.003), ``weight_decay`` (0).

Triton serves it as ``INPUT__0`` (FP32, [20]) -> ``OUTPUT__0`` (FP32, [2],
class probabilities). The ``NAME__<index>`` names are what Triton's PyTorch
(libtorch) backend expects, so the same names work for both packaging
targets; the drift sidecar reads the features from ``INPUT__0``.
"""

from __future__ import annotations

import torch
from torch import nn

from modelops.trainer.contract import TrainingSpec
from modelops.trainer.examples.tabular_data import N_CLASSES, N_FEATURES, load_table
from modelops.trainer.hparams import HParams
from modelops.triton.config import ModelSignature, RuntimeSettings, TensorSpec

SIGNATURE = ModelSignature(
    inputs=(TensorSpec(name="INPUT__0", dtype="fp32", dims=(N_FEATURES,)),),
    outputs=(TensorSpec(name="OUTPUT__0", dtype="fp32", dims=(N_CLASSES,)),),
)


def make_model(hidden: int = 64, layers: int = 2) -> nn.Module:
    """Linear -> ReLU blocks, then a linear layer to class logits."""
    blocks: list[nn.Module] = []
    width = N_FEATURES
    for _ in range(layers):
        blocks += [nn.Linear(width, hidden), nn.ReLU()]
        width = hidden
    blocks.append(nn.Linear(width, N_CLASSES))
    return nn.Sequential(*blocks)


def with_softmax(model: nn.Module) -> nn.Module:
    """Serve probabilities: clients and the drift dashboards read them without a softmax."""
    return nn.Sequential(model, nn.Softmax(dim=1))


def build(hparams: HParams) -> TrainingSpec:
    lr = hparams.get_float("lr", 3e-3)
    weight_decay = hparams.get_float("weight_decay", 0.0)
    return TrainingSpec(
        model=make_model(hparams.get_int("hidden", 64), hparams.get_int("layers", 2)),
        loss_fn=nn.functional.cross_entropy,
        optimizer=lambda params: torch.optim.Adam(params, lr=lr, weight_decay=weight_decay),
        signature=SIGNATURE,
        serving=with_softmax,
        feature_names=[f"f{i}" for i in range(N_FEATURES)],
        runtime=RuntimeSettings(max_batch_size=256, max_queue_delay_microseconds=100),
    )


def load_dataset(uri: str, hparams: HParams) -> tuple[torch.Tensor, torch.Tensor]:
    features, labels = load_table(uri)
    return torch.from_numpy(features), torch.from_numpy(labels)
