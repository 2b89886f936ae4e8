"""`modelops train`: train a model with distributed PyTorch and publish it as a Triton model.

Outside a torchrun worker (no RANK/WORLD_SIZE in the environment) the
command starts itself under ``torchrun`` (see :mod:`modelops.trainer.launch`);
inside one it trains (see :mod:`modelops.trainer.worker`). This module
imports neither torch nor the storage clients, so ``modelops --help`` and
the launcher stay fast; the worker imports them.

The training module contract is in :mod:`modelops.trainer.contract` and
docs/training.md; the result line in :mod:`modelops.trainer.result`.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys

from modelops.trainer.result import (
    default_termination_log,
    error_document,
    render_message,
    write_termination_log,
)

TARGETS = ("python", "libtorch")
INSTANCE_KINDS = ("gpu", "cpu")

log = logging.getLogger("modelops.trainer")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--entrypoint",
        required=True,
        metavar="MODULE",
        help="training module defining build() and load_dataset(), "
        "e.g. modelops.trainer.examples.tabular",
    )
    parser.add_argument("--dataset", required=True, metavar="URI", help="passed to load_dataset()")
    parser.add_argument(
        "--output",
        required=True,
        metavar="URI",
        help="model directory to publish version N+1 to (s3://, gs://, file://, pvc://)",
    )
    parser.add_argument(
        "--model-name",
        metavar="NAME",
        help="Triton model name (default: the last segment of --output)",
    )
    parser.add_argument(
        "--checkpoint-dir",
        required=True,
        metavar="DIR",
        help="per-epoch checkpoints; a run resumes from the newest one here",
    )
    parser.add_argument(
        "--hp",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="hyperparameter (repeatable); the runner reads epochs, batch_size, seed, "
        "val_fraction, the training module the rest",
    )
    parser.add_argument(
        "--nproc-per-node",
        metavar="N",
        help="worker processes on this node (default: $NPROC_PER_NODE, else 1)",
    )
    parser.add_argument(
        "--termination-log",
        default=default_termination_log(),
        metavar="PATH",
        help="where to write the result JSON for the operator "
        "(default: /dev/termination-log when writable; '' for none)",
    )
    parser.add_argument(
        "--target",
        choices=TARGETS,
        default="python",
        help="Triton backend: python (TorchScript in the python backend, any Triton, CPU "
        "or GPU) or libtorch (Triton's PyTorch backend, GPU images); default %(default)s",
    )
    parser.add_argument(
        "--instance-kind",
        choices=INSTANCE_KINDS,
        help="Triton instance kind packaged in config.pbtxt (default: the training "
        "module's runtime settings, else gpu); a ModelDeployment may override it",
    )
    parser.add_argument(
        "--keep-checkpoints",
        type=int,
        default=2,
        metavar="N",
        help="newest checkpoints to keep (default %(default)s)",
    )


def worker_argv(args: argparse.Namespace) -> list[str]:
    """The flags that reproduce ``args`` for the worker processes torchrun starts."""
    argv = [
        "--entrypoint", args.entrypoint,
        "--dataset", args.dataset,
        "--output", args.output,
        "--checkpoint-dir", args.checkpoint_dir,
        "--termination-log", args.termination_log,
        "--target", args.target,
        "--keep-checkpoints", str(args.keep_checkpoints),
    ]  # fmt: skip
    if args.model_name:
        argv += ["--model-name", args.model_name]
    if args.instance_kind:
        argv += ["--instance-kind", args.instance_kind]
    for item in args.hp:
        # "--hp=k=v" keeps a value that starts with "-" from reading as a flag.
        argv.append(f"--hp={item}")
    return argv


def check_arguments(args: argparse.Namespace) -> str | None:
    """What is wrong with ``args`` (checked before any process starts), or None."""
    from modelops.storage.errors import StorageError
    from modelops.storage.uri import default_model_name, parse_storage_uri
    from modelops.trainer.hparams import HParamError, HParams, parse_hparams
    from modelops.trainer.settings import LoopSettings

    try:
        LoopSettings.from_hparams(HParams(parse_hparams(args.hp)))
        name = args.model_name or default_model_name(parse_storage_uri(args.output))
    except (HParamError, StorageError) as err:
        return str(err)
    if not name or "/" in name or name.startswith("."):
        return f"invalid model name {name!r}"
    if args.keep_checkpoints < 1:
        return "--keep-checkpoints must be >= 1"
    return None


def run(args: argparse.Namespace) -> int:
    from modelops.trainer.launch import in_worker

    if in_worker(os.environ):
        from modelops.trainer.worker import run_worker

        return run_worker(args)
    return launch(args)


def launch(args: argparse.Namespace) -> int:
    from modelops.trainer.launch import (
        LaunchError,
        environment_summary,
        run_torchrun,
        topology_from_env,
        torchrun_command,
        worker_environment,
    )

    logging.basicConfig(level=logging.INFO, format="%(asctime)s launcher %(message)s")
    problem = check_arguments(args)
    try:
        topology = topology_from_env(os.environ, args.nproc_per_node)
    except LaunchError as err:
        problem = problem or str(err)
    if problem:
        print(f"modelops train: {problem}", file=sys.stderr)
        write_termination_log(
            args.termination_log, render_message(error_document("InvalidArgument", problem))
        )
        return 2
    command = torchrun_command(topology, worker_argv(args))
    env = worker_environment(topology, os.environ)
    log.info(
        "%s, %s threads per worker: %s",
        environment_summary(),
        env["OMP_NUM_THREADS"],
        " ".join(command),
    )
    code = run_torchrun(command, env)
    if code != 0:
        _report_unexplained_failure(args.termination_log, code)
    return code


def _report_unexplained_failure(path: str, code: int) -> None:
    """A worker killed outright (OOM killer) leaves no message: say at least how it ended."""
    try:
        if not path or os.path.getsize(path) > 0:
            return
    except OSError:
        return
    message = f"torchrun exited with status {code}"
    if code > 128:
        message += f" (a process was killed by signal {code - 128}, e.g. out of memory)"
    write_termination_log(path, render_message(error_document("TrainingFailed", message)))
