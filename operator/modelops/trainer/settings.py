"""The runner's own hyperparameters (pure: the launcher checks them before torch starts).

Runner hyperparameters (every other key belongs to the training module):

* ``epochs`` (5): total epochs, counting the ones a resumed run already did
* ``batch_size`` (64): rows per step *per process*
* ``seed`` (0): model initialisation, the train/validation split, shuffling
* ``val_fraction`` (0.1): share of rows held out for validation metrics (0: none)
"""

from __future__ import annotations

from dataclasses import dataclass

from modelops.trainer.hparams import HParamError, HParams


@dataclass(frozen=True)
class LoopSettings:
    epochs: int = 5
    batch_size: int = 64
    seed: int = 0
    val_fraction: float = 0.1

    @classmethod
    def from_hparams(cls, hparams: HParams) -> LoopSettings:
        settings = cls(
            epochs=hparams.get_int("epochs", cls.epochs),
            batch_size=hparams.get_int("batch_size", cls.batch_size),
            seed=hparams.get_int("seed", cls.seed),
            val_fraction=hparams.get_float("val_fraction", cls.val_fraction),
        )
        if settings.epochs < 1 or settings.batch_size < 1 or settings.seed < 0:
            raise HParamError("epochs and batch_size must be >= 1, seed >= 0")
        if not 0 <= settings.val_fraction < 1:
            raise HParamError(f"val_fraction must be in [0, 1), got {settings.val_fraction}")
        return settings
