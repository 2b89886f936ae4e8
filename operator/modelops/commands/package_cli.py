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
import sys
import tempfile
from pathlib import Path

import yaml
from pydantic import ValidationError

from modelops.modeldir.layout import LayoutError
from modelops.modeldir.repository import VersionExistsError
from modelops.storage.errors import StorageError
from modelops.storage.publish import publish_version
from modelops.triton.config import ModelSignature, RuntimeSettings, Target, TensorSpec
from modelops.triton.packaging import PackagedModel, package_onnx, package_torchscript


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


def run(args: argparse.Namespace) -> int:
    try:
        with tempfile.TemporaryDirectory(prefix="modelops-package-") as scratch:
            packaged = _package(args, args.repository or Path(scratch))
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
