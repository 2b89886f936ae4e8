"""``modelops package-model``: write a TorchScript/ONNX file as a new Triton model version.

Examples::

    modelops package-model model.pt --name fraud --repository ./repo \\
        --input x:fp32:4 --output y:fp32:2 --kind cpu
    modelops package-model model.pt --name fraud --signature sig.yaml \\
        --publish s3://models/fraud

Prints one JSON line: {"name", "version", "path"} (plus "published" with --publish).
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import sys
import tempfile
from dataclasses import replace
from pathlib import Path

import yaml
from pydantic import ValidationError

from modelops.modeldir.layout import MANIFEST_NAME, LayoutError
from modelops.modeldir.repository import VersionExistsError, write_version
from modelops.storage.errors import StorageError
from modelops.storage.publish import publish_version
from modelops.triton.config import ModelSignature, RuntimeSettings, Target, TensorSpec
from modelops.triton.packaging import PackagedModel, package_onnx, package_torchscript

# What the trainer names it too (modelops.trainer.metrics); the operator reads it back
# for the evalMetric gate (modelops.render.gating.lineage.recorded_metrics).
METRICS_NAME = "metrics.json"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model_file", type=Path, help="TorchScript (.pt) or ONNX (.onnx) file")
    parser.add_argument("--name", required=True, help="Triton model name")
    parser.add_argument(
        "--repository",
        type=Path,
        help="local Triton model repository to write into (default: a temporary one, "
        "which only makes sense with --publish)",
    )
    parser.add_argument(
        "--format",
        choices=["torchscript", "onnx"],
        help="model format (default: from the file suffix, .onnx or TorchScript)",
    )
    parser.add_argument(
        "--target",
        choices=["python", "libtorch"],
        default="python",
        help="TorchScript only: python-backend wrapper (any Triton) or the PyTorch backend",
    )
    sig = parser.add_argument_group("signature (either --signature or --input/--output)")
    sig.add_argument(
        "--signature", type=Path, help="YAML/JSON file: {inputs: [...], outputs: [...]}"
    )
    sig.add_argument("--input", action="append", default=[], metavar="NAME:DTYPE:DIMS")
    sig.add_argument("--output", action="append", default=[], metavar="NAME:DTYPE:DIMS")
    rt = parser.add_argument_group("runtime")
    rt.add_argument("--max-batch-size", type=int, default=RuntimeSettings().max_batch_size)
    rt.add_argument(
        "--max-queue-delay-us",
        type=int,
        default=RuntimeSettings().max_queue_delay_microseconds,
        help="dynamic batching: longest wait for a fuller batch, in microseconds",
    )
    rt.add_argument("--no-dynamic-batching", action="store_true")
    rt.add_argument("--instances", type=int, default=1, help="model instances (per GPU for gpu)")
    rt.add_argument("--kind", choices=["gpu", "cpu"], default="gpu")
    parser.add_argument("--version", type=int, help="version number (default: next free)")
    parser.add_argument(
        "--publish",
        metavar="URI",
        help="also publish the version as the next version at s3://, gs://, file:// or pvc://",
    )
    parser.add_argument(
        "--metrics",
        type=Path,
        metavar="FILE",
        help='JSON object of the model\'s evaluation metrics ({"valAccuracy": 0.91, ...}, '
        "the names a TrainingJob reports), sealed into the version as metrics.json: what a "
        "gated rollout's evalMetric compares the next candidate with",
    )


def _signature(args: argparse.Namespace) -> ModelSignature:
    if args.signature is not None:
        if args.input or args.output:
            raise ValueError("use either --signature or --input/--output, not both")
        return ModelSignature.model_validate(yaml.safe_load(args.signature.read_text()))
    return ModelSignature(
        inputs=tuple(TensorSpec.parse(t) for t in args.input),
        outputs=tuple(TensorSpec.parse(t) for t in args.output),
    )


def _package(args: argparse.Namespace, repository: Path) -> PackagedModel:
    runtime = RuntimeSettings(
        max_batch_size=args.max_batch_size,
        dynamic_batching=not args.no_dynamic_batching,
        max_queue_delay_microseconds=args.max_queue_delay_us,
        instance_count=args.instances,
        instance_kind=args.kind,
    )
    signature = _signature(args)
    fmt = args.format or ("onnx" if args.model_file.suffix == ".onnx" else "torchscript")
    if fmt == "onnx":
        return package_onnx(
            args.model_file, repository, args.name, signature, runtime, version=args.version
        )
    target = Target.PYTHON if args.target == "python" else Target.LIBTORCH
    return package_torchscript(
        args.model_file,
        repository,
        args.name,
        signature,
        runtime,
        target=target,
        version=args.version,
    )


def _metrics_file(path: Path) -> bytes:
    """--metrics: a flat JSON object of finite numbers, as metrics.json content."""
    try:
        document = json.loads(path.read_text())
    except ValueError as err:
        raise ValueError(f"--metrics {path}: not JSON ({err})") from None
    if not isinstance(document, dict) or not document:
        raise ValueError(f"--metrics {path}: must be a JSON object of metric name -> number")
    for name, value in document.items():
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not math.isfinite(value)
        ):
            raise ValueError(f"--metrics {path}: {name} must be a finite number, got {value!r}")
    return (json.dumps({"metrics": document}, indent=1, sort_keys=True) + "\n").encode()


def _package_with_metrics(
    args: argparse.Namespace, repository: Path, scratch: Path, metrics: bytes
) -> PackagedModel:
    """Package into scratch, then write the version into ``repository`` with metrics.json
    beside the model, sealed in one write (a file added after SHA256SUMS would fail
    verification), as the trainer does (modelops.trainer.export)."""
    built = _package(args, scratch / "build")

    def populate(staging: Path) -> None:
        for source in built.version_dir.rglob("*"):
            relative = source.relative_to(built.version_dir)
            if source.is_file() and relative.as_posix() != MANIFEST_NAME:
                (staging / relative).parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(source, staging / relative)
        (staging / METRICS_NAME).write_bytes(metrics)

    model_dir = repository / built.name
    number = write_version(model_dir, populate, version=args.version)
    return replace(built, version=number, model_dir=model_dir)


def run(args: argparse.Namespace) -> int:
    try:
        with tempfile.TemporaryDirectory(prefix="modelops-package-") as scratch:
            repository = args.repository or Path(scratch) / "repository"
            if args.metrics is not None:
                metrics = _metrics_file(args.metrics)
                packaged = _package_with_metrics(args, repository, Path(scratch), metrics)
            else:
                packaged = _package(args, repository)
            result: dict[str, object] = {
                "name": packaged.name,
                "version": packaged.version,
                "path": str(packaged.version_dir),
            }
            if args.publish:
                published = publish_version(packaged.version_dir, args.publish)
                result["published"] = {"uri": args.publish, "version": published}
            if args.repository is None:
                result.pop("path")
    except (ValueError, ValidationError, LayoutError, OSError, VersionExistsError) as err:
        message = str(err).replace("\n", " ")
        print(f"modelops package-model: error: {message}", file=sys.stderr)
        return 1
    except StorageError as err:
        print(f"modelops package-model: error: {err.one_line()}", file=sys.stderr)
        return 1
    print(json.dumps(result))
    return 0
