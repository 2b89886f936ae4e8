"""The training loop: DDP model, sharded batches, per-epoch metrics, checkpointable state.

Its settings (epochs, batch size, seed) are in :mod:`modelops.trainer.settings`.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import Dataset, DistributedSampler

from modelops.trainer.contract import TrainingSpec
from modelops.trainer.dataset import ShardSampler, make_loader
from modelops.trainer.distributed import DistContext, all_sum, gather_to_main
from modelops.trainer.settings import LoopSettings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class EpochRecord:
    """Metrics of one epoch, summed over all ranks."""

    epoch: int
    loss: float
    accuracy: float | None
    val_loss: float | None
    val_accuracy: float | None
    samples: int
    seconds: float  # training steps only, not validation

    def to_dict(self) -> dict[str, Any]:
        """camelCase, like every JSON document the trainer writes."""
        return {_CAMEL.get(k, k): v for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> EpochRecord:
        snake = {v: k for k, v in _CAMEL.items()}
        return cls(**{snake.get(k, k): v for k, v in data.items()})


_CAMEL = {"val_loss": "valLoss", "val_accuracy": "valAccuracy"}


def _is_classification(outputs: torch.Tensor, labels: torch.Tensor) -> bool:
    """Accuracy is reported when the model emits per-class scores for integer labels."""
    return outputs.ndim == 2 and labels.ndim == 1 and not labels.is_floating_point()


def _rng_state() -> dict[str, Any]:
    legacy = np.random.get_state(legacy=False)
    return {
        "python": random.getstate(),
        # The key as a list: checkpoints load with weights_only=True, which refuses ndarrays.
        "numpy": {
            **legacy,
            "state": {"key": legacy["state"]["key"].tolist(), "pos": legacy["state"]["pos"]},
        },
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
    }


def _set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    legacy = state["numpy"]
    key = np.asarray(legacy["state"]["key"], dtype=np.uint32)
    np.random.set_state({**legacy, "state": {"key": key, "pos": legacy["state"]["pos"]}})
    torch.set_rng_state(state["torch"])
    if state.get("cuda") is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


class Trainer:
    """Owns the DDP-wrapped model, the optimizer and the loaders of one rank."""

    def __init__(
        self,
        context: DistContext,
        spec: TrainingSpec,
        train_set: Dataset,
        val_set: Dataset | None,
        settings: LoopSettings,
        resume: dict[str, Any] | None = None,
    ) -> None:
        self.context = context
        self.settings = settings
        self.loss_fn = spec.loss_fn
        model = spec.model
        if resume is not None:
            model.load_state_dict(resume["model"])
        model.to(context.device)
        # DDP broadcasts rank 0's parameters here, so every rank starts equal.
        device_ids = [context.local_rank] if context.device.type == "cuda" else None
        self.model = DistributedDataParallel(model, device_ids=device_ids)
        self.optimizer = spec.optimizer(self.model.parameters())
        self.history: list[EpochRecord] = []
        self.start_epoch = 0
        if resume is not None:
            self.optimizer.load_state_dict(resume["optimizer"])
            self.history = [EpochRecord.from_dict(r) for r in resume.get("history", [])]
            self.start_epoch = int(resume["epoch"])
            rng = resume.get("rng") or []
            if len(rng) == context.world_size:
                _set_rng_state(rng[context.rank])
            else:
                log.warning(
                    "world size changed (%d -> %d): RNG streams restart",
                    len(rng),
                    context.world_size,
                )
        self.train_size = len(train_set)  # type: ignore[arg-type]
        self.sampler = DistributedSampler(
            train_set,
            num_replicas=context.world_size,
            rank=context.rank,
            shuffle=True,
            seed=settings.seed,
        )
        self.train_loader = make_loader(train_set, self.sampler, settings.batch_size)
        self.val_loader = (
            make_loader(
                val_set,
                ShardSampler(len(val_set), context.rank, context.world_size),  # type: ignore[arg-type]
                settings.batch_size,
            )
            if val_set is not None
            else None
        )

    @property
    def module(self) -> torch.nn.Module:
        """The trained model without its DDP wrapper."""
        return self.model.module

    def run(self, on_epoch_end: Callable[[EpochRecord], None]) -> list[EpochRecord]:
        """Train from ``start_epoch`` to ``epochs``; ``on_epoch_end`` runs on every rank."""
        for epoch in range(self.start_epoch, self.settings.epochs):
            record = self.run_epoch(epoch)
            self.history.append(record)
            if self.context.is_main:
                log.info(
                    "epoch %d/%d loss=%.4f accuracy=%s val_loss=%s val_accuracy=%s %.0f samples/s",
                    record.epoch,
                    self.settings.epochs,
                    record.loss,
                    _fmt(record.accuracy),
                    _fmt(record.val_loss),
                    _fmt(record.val_accuracy),
                    record.samples / max(record.seconds, 1e-9),
                )
            on_epoch_end(record)
        return self.history

    def run_epoch(self, epoch: int) -> EpochRecord:
        device = self.context.device
        self.model.train()
        self.sampler.set_epoch(epoch)  # a different shuffle each epoch, the same on all ranks
        # Sums stay on the device: .item() per step would stall a GPU every step.
        loss_sum = torch.zeros((), dtype=torch.float64, device=device)
        correct = torch.zeros((), dtype=torch.float64, device=device)
        rows = 0
        classification = False
        started = time.perf_counter()
        for features, labels in self.train_loader:
            features = features.to(device, non_blocking=True)
            labels = labels.to(device, non_blocking=True)
            self.optimizer.zero_grad(set_to_none=True)
            outputs = self.model(features)
            loss = self.loss_fn(outputs, labels)
            loss.backward()  # DDP all-reduces the gradients during backward
            self.optimizer.step()
            n = labels.shape[0]
            rows += n
            loss_sum += loss.detach().double() * n
            if _is_classification(outputs, labels):
                classification = True
                correct += (outputs.detach().argmax(dim=1) == labels).sum()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        seconds = time.perf_counter() - started
        total_loss, total_correct, total_rows, total_seconds = all_sum(
            self.context, [loss_sum, correct, float(rows), seconds]
        )
        val_loss, val_accuracy = self.evaluate()
        return EpochRecord(
            epoch=epoch + 1,
            loss=total_loss / total_rows,
            accuracy=total_correct / total_rows if classification else None,
            val_loss=val_loss,
            val_accuracy=val_accuracy,
            # Padding rows of the sampler are trained on but not counted.
            samples=self.train_size,
            seconds=total_seconds / self.context.world_size,
        )

    @torch.no_grad()
    def evaluate(self) -> tuple[float | None, float | None]:
        """Validation loss and accuracy over the whole held-out set (every row once)."""
        if self.val_loader is None:
            return None, None
        device = self.context.device
        # The unwrapped module: DDP's forward may run collectives, and ranks
        # can hold different numbers of validation batches.
        module = self.module
        module.eval()
        loss_sum = torch.zeros((), dtype=torch.float64, device=device)
        correct = torch.zeros((), dtype=torch.float64, device=device)
        rows = 0
        classification = False
        for features, labels in self.val_loader:
            features, labels = features.to(device), labels.to(device)
            outputs = module(features)
            n = labels.shape[0]
            rows += n
            loss_sum += self.loss_fn(outputs, labels).double() * n
            if _is_classification(outputs, labels):
                classification = True
                correct += (outputs.argmax(dim=1) == labels).sum()
        total_loss, total_correct, total_rows, any_classification = all_sum(
            self.context, [loss_sum, correct, float(rows), float(classification)]
        )
        module.train()
        if total_rows == 0:
            return None, None
        accuracy = total_correct / total_rows if any_classification else None
        return total_loss / total_rows, accuracy

    def state(self) -> dict[str, Any] | None:
        """Checkpoint content on rank 0 (None elsewhere); every rank must call it."""
        rng = gather_to_main(self.context, _rng_state())
        if not self.context.is_main:
            return None
        return {
            "model": self.module.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "rng": rng,
            "history": [r.to_dict() for r in self.history],
            "world_size": self.context.world_size,
        }


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"
