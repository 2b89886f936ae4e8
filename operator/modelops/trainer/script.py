"""`modelops train-script`: run an existing training command unchanged, then publish its model.

A TrainingJob with ``spec.command`` (``torchrun ... train.py``, ``python
train.py``) runs this wrapper in each node's pod. The pod has the
environment a Kubeflow PyTorchJob's pods have (PET_NNODES,
PET_NPROC_PER_NODE, PET_NODE_RANK, PET_MASTER_ADDR, PET_MASTER_PORT, which
torchrun reads as its defaults; plus MASTER_ADDR, MASTER_PORT, and with one
process per node WORLD_SIZE, RANK, LOCAL_RANK as torchrun would set them),
so a script written for that runtime runs as it is.

The contract for the result (docs/training.md): the script's rank 0 writes
into ``$MODELOPS_OUTPUT_DIR``

* ``model.pt`` (TorchScript, ``torch.jit.save``) or ``model.onnx``, and
* ``signature.json``: ``{"inputs": [{"name": "x", "dtype": "fp32", "dims": [4]}],
  "outputs": [...]}`` (dims without the batch dimension), and optionally
* ``metrics.json``: flat ``{"name": number}``, reported in the TrainingJob's status.

When the command exits 0, the wrapper on node rank 0 packages that model as
a Triton model and publishes it as the next version of ``--output``, then
writes the same result line ``modelops train`` writes, which the operator
reads (status.outputVersion). A non-zero exit is passed on with a
termination message saying so. No torch import here: packaging copies files.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

from modelops.trainer.result import (
    default_termination_log,
    error_document,
    render_message,
    success_document,
    write_termination_log,
)

OUTPUT_DIR_ENV = "MODELOPS_OUTPUT_DIR"
SIGNATURE_NAME = "signature.json"
METRICS_NAME = "metrics.json"
MODEL_NAMES = ("model.pt", "model.onnx")
MAX_METRICS = 32

log = logging.getLogger("modelops.trainer.script")


class ScriptOutputError(ValueError):
    """The command succeeded but left no usable model in $MODELOPS_OUTPUT_DIR."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--output", required=True, metavar="URI", help="model directory to publish to"
    )
    parser.add_argument("--model-name", metavar="NAME", help="Triton model name")
    parser.add_argument(
        "--output-dir",
        default=os.environ.get(OUTPUT_DIR_ENV, ""),
        help=f"where the script writes its model (default: ${OUTPUT_DIR_ENV})",
    )
    parser.add_argument(
        "--node-rank",
        type=int,
        default=int(os.environ.get("PET_NODE_RANK") or 0),
        help="this pod's node rank; only node 0 publishes (default: $PET_NODE_RANK)",
    )
    parser.add_argument(
        "--target",
        choices=("python", "libtorch"),
        default="python",
        help="Triton backend for a TorchScript model (default %(default)s)",
    )
    parser.add_argument(
        "--termination-log",
        default=default_termination_log(),
        help="where the result JSON goes (default: /dev/termination-log when writable)",
    )
    parser.add_argument("command", nargs=argparse.REMAINDER, help="-- the training command")


def run(args: argparse.Namespace) -> int:
    from modelops.trainer.launch import run_torchrun

    logging.basicConfig(level=logging.INFO, format="%(asctime)s train-script %(message)s")
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        return _fail(args, "InvalidArgument", "no command given (after --)")
    if not args.output_dir:
        return _fail(
            args, "InvalidArgument", f"no output directory (--output-dir or ${OUTPUT_DIR_ENV})"
        )
    output_dir = Path(args.output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, OUTPUT_DIR_ENV: str(output_dir)}
    log.info("node rank %d: %s", args.node_rank, " ".join(command))
    try:
        # Forwards SIGTERM, so deleting the pod stops the script cleanly.
        code = run_torchrun(command, env)
    except OSError as err:
        return _fail(args, "InvalidArgument", f"cannot run {command[0]!r}: {err}")
    if code != 0:
        why = f"the training command exited with status {code}"
        if code > 128:
            why += f" (killed by signal {code - 128}, e.g. out of memory)"
        return _fail(args, "TrainingFailed", why, code=code)
    if args.node_rank != 0:
        log.info("node rank %d done; node 0 publishes", args.node_rank)
        return 0
    try:
        document = publish_output(output_dir, args.output, args.model_name, args.target)
    except ScriptOutputError as err:
        return _fail(args, "InvalidOutput", str(err))
    except Exception as err:  # storage failures carry a reason of their own
        from modelops.storage.errors import StorageError

        if isinstance(err, StorageError):
            return _fail(args, err.reason, str(err))
        raise
    line = render_message(document)
    print(line, flush=True)
    write_termination_log(args.termination_log, line)
    return 0


def publish_output(
    output_dir: Path, destination: str, model_name: str | None, target: str = "python"
) -> dict[str, Any]:
    """Package what the script left in ``output_dir`` and publish it; the result document."""
    from modelops.storage.publish import publish_version
    from modelops.storage.uri import default_model_name, parse_storage_uri
    from modelops.triton.config import ModelSignature, RuntimeSettings, Target
    from modelops.triton.packaging import package_onnx, package_torchscript

    model = next((output_dir / n for n in MODEL_NAMES if (output_dir / n).is_file()), None)
    if model is None:
        raise ScriptOutputError(
            f"the command exited 0 but wrote no {' or '.join(MODEL_NAMES)} into "
            f"${OUTPUT_DIR_ENV} ({output_dir})"
        )
    try:
        signature = ModelSignature.model_validate_json((output_dir / SIGNATURE_NAME).read_text())
    except FileNotFoundError:
        raise ScriptOutputError(
            f"{model.name} needs {SIGNATURE_NAME} beside it in ${OUTPUT_DIR_ENV} (the input and "
            "output tensors Triton serves)"
        ) from None
    except ValueError as err:
        raise ScriptOutputError(f"{SIGNATURE_NAME}: {err}") from None
    name = model_name or default_model_name(parse_storage_uri(destination))
    with tempfile.TemporaryDirectory(prefix="modelops-script-") as work:
        if model.suffix == ".onnx":
            packaged = package_onnx(model, work, name, signature, RuntimeSettings())
        else:
            backend = Target.PYTHON if target == "python" else Target.LIBTORCH
            packaged = package_torchscript(
                model, work, name, signature, RuntimeSettings(), target=backend
            )
        number = publish_version(packaged.version_dir, destination)
    log.info("published %s version %d to %s", name, number, destination)
    return success_document(number, destination, name, read_metrics(output_dir), 0)


def read_metrics(output_dir: Path) -> dict[str, float | int | None]:
    """The numbers of ``metrics.json``, if the script wrote one (others are ignored)."""
    try:
        raw = json.loads((output_dir / METRICS_NAME).read_text())
    except (OSError, ValueError):
        return {}
    if not isinstance(raw, dict):
        return {}
    numbers = {
        str(k): v
        for k, v in raw.items()
        if isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)
    }
    return dict(sorted(numbers.items())[:MAX_METRICS])


def _fail(args: argparse.Namespace, reason: str, message: str, code: int = 2) -> int:
    print(f"modelops train-script: {reason}: {message}", file=sys.stderr)
    write_termination_log(args.termination_log, render_message(error_document(reason, message)))
    return code
