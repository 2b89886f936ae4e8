"""One torchrun worker: join the group, resume, train, and on rank 0 export and publish.

Only rank 0 touches the checkpoint directory and the output storage; what it
reads at start (a checkpoint, or the result of a run that already published)
is broadcast so every rank takes the same path.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

from torch.utils.data import Dataset

from modelops.storage.errors import StorageError
from modelops.storage.publish import publish_version
from modelops.storage.uri import default_model_name, parse_storage_uri
from modelops.trainer.checkpoint import load_latest, remove_temporaries, save_checkpoint
from modelops.trainer.contract import (
    ContractError,
    TrainingSpec,
    check_spec,
    load_training_module,
)
from modelops.trainer.dataset import as_dataset, feature_sample, first_features, split_dataset
from modelops.trainer.distributed import (
    DistContext,
    broadcast_from_main,
    init_distributed,
    leave_together,
    shutdown,
)
from modelops.trainer.export import MODEL_FILE, build_version, trace_for_serving
from modelops.trainer.fetch import DataFileNotFoundError
from modelops.trainer.hparams import HParamError, HParams, parse_hparams
from modelops.trainer.loop import EpochRecord, Trainer, seed_everything
from modelops.trainer.metrics import METRICS_NAME, metrics_document, summary
from modelops.trainer.reference import REFERENCE_NAME, reference_bytes
from modelops.trainer.result import (
    error_document,
    read_result,
    render_message,
    save_result,
    success_document,
    write_termination_log,
)
from modelops.trainer.settings import LoopSettings
from modelops.triton.config import RuntimeSettings, Target

log = logging.getLogger("modelops.trainer")


class ResumeError(ValueError):
    """The checkpoint directory belongs to a different training module."""


def failure_reason(err: BaseException) -> str:
    """The CamelCase reason the operator shows in the TrainingJob's Failed condition."""
    if isinstance(err, StorageError):
        return err.reason
    if isinstance(err, DataFileNotFoundError):
        return "DatasetNotFound"
    if isinstance(err, ContractError):
        return "InvalidTrainingModule"
    if isinstance(err, HParamError):
        return "InvalidHyperparameter"
    if isinstance(err, ResumeError):
        return "CheckpointMismatch"
    return "TrainingFailed"


def _setup_logging(rank: int) -> None:
    # Rank 0 narrates; the others only speak up for problems.
    logging.basicConfig(
        level=logging.INFO if rank == 0 else logging.WARNING,
        format=f"%(asctime)s rank {rank} %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )


def run_worker(args: argparse.Namespace) -> int:
    _setup_logging(int(os.environ.get("RANK", "0")))
    try:
        context = init_distributed()
        try:
            _train(args, context)
            try:
                leave_together()
            except Exception:
                # Only a peer's failure breaks the final barrier, and that peer
                # writes the reason; writing ours would overwrite it.
                log.exception("a peer failed after this rank finished")
                return 1
        finally:
            shutdown()
    except Exception as err:
        log.exception("training failed")
        message = f"{type(err).__name__}: {err}"
        document = error_document(failure_reason(err), message)
        write_termination_log(args.termination_log, render_message(document))
        return 1
    return 0


def _emit(args: argparse.Namespace, document: dict[str, Any]) -> None:
    message = render_message(document)
    print(message, flush=True)
    write_termination_log(args.termination_log, message)


def _train(args: argparse.Namespace, context: DistContext) -> None:
    hparams = HParams(parse_hparams(args.hp))
    settings = LoopSettings.from_hparams(hparams)
    checkpoint_dir = Path(args.checkpoint_dir)
    found: dict[str, Any] | None = None
    if context.is_main:
        remove_temporaries(checkpoint_dir)
        found = {"result": read_result(checkpoint_dir), "checkpoint": load_latest(checkpoint_dir)}
    found = broadcast_from_main(context, found)
    if found["result"] is not None:
        if context.is_main:
            log.info(
                "this run already published version %s; reporting it again",
                found["result"]["outputVersion"],
            )
            _emit(args, found["result"])
        return
    checkpoint = found["checkpoint"]
    if checkpoint is not None and checkpoint.get("entrypoint") != args.entrypoint:
        raise ResumeError(
            f"{checkpoint_dir} holds checkpoints of {checkpoint.get('entrypoint')!r}, "
            f"not {args.entrypoint!r}; use another --checkpoint-dir"
        )

    module = load_training_module(args.entrypoint)
    seed_everything(settings.seed)  # the same initial model on every run with this seed
    spec = check_spec(module.build(hparams), module.name)
    dataset = as_dataset(module.load_dataset(args.dataset, hparams), module.name)
    train_set, val_set = split_dataset(dataset, settings.val_fraction, settings.seed)
    if context.is_main:
        log.info(
            "dataset %s: %d training rows, %d validation rows",
            args.dataset,
            len(train_set),
            len(val_set) if val_set is not None else 0,
        )
        if checkpoint is not None:
            log.info("resuming from the checkpoint after epoch %d", checkpoint["epoch"])
    # From here every rank draws its own random stream (dropout, augmentation).
    seed_everything(settings.seed + context.rank)
    trainer = Trainer(context, spec, train_set, val_set, settings, resume=checkpoint)

    def on_epoch_end(record: EpochRecord) -> None:
        state = trainer.state()  # a collective: every rank calls it
        if state is not None:
            state.update(entrypoint=args.entrypoint, hparams=hparams.as_dict())
            save_checkpoint(checkpoint_dir, record.epoch, state, keep=args.keep_checkpoints)

    history = trainer.run(on_epoch_end)
    if not context.is_main:
        return
    unread = hparams.unread()
    if unread:
        log.warning("hyperparameters nobody read (typos?): %s", ", ".join(unread))
    document = _export_and_publish(args, context, spec, trainer, train_set, history, hparams)
    save_result(checkpoint_dir, document)
    _emit(args, document)


def _export_and_publish(
    args: argparse.Namespace,
    context: DistContext,
    spec: TrainingSpec,
    trainer: Trainer,
    train_set: Dataset,
    history: list[EpochRecord],
    hparams: HParams,
) -> dict[str, Any]:
    """Rank 0: the trained model as a new version in ``--output``; returns the result document."""
    name = args.model_name or default_model_name(parse_storage_uri(args.output))
    start = trainer.start_epoch
    metrics = summary(history, start, trainer.settings.epochs, context.world_size)
    serving = spec.serving(trainer.module) if spec.serving else trainer.module
    runtime = spec.runtime or RuntimeSettings()
    if args.instance_kind:
        runtime = runtime.model_copy(update={"instance_kind": args.instance_kind})
    extra_files = {
        METRICS_NAME: metrics_document(
            metrics,
            history,
            entrypoint=args.entrypoint,
            dataset=args.dataset,
            hyperparameters=hparams.as_dict(),
            backend=context.backend,
            resumed_from_epoch=start,
        ),
        REFERENCE_NAME: reference_bytes(
            feature_sample(train_set, trainer.settings.seed), spec.feature_names
        ),
    }
    target = Target.PYTHON if args.target == "python" else Target.LIBTORCH
    with tempfile.TemporaryDirectory(prefix="modelops-export-") as work:
        model_file = trace_for_serving(serving, first_features(train_set), Path(work) / MODEL_FILE)
        version_dir = build_version(
            model_file, Path(work), name, spec.signature, runtime, target, extra_files
        )
        number = publish_version(version_dir, args.output)
    log.info("published %s version %d to %s", name, number, args.output)
    return success_document(number, args.output, name, metrics, start)
