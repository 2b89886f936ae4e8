"""``modelops pull-model``: install one version of a model into a Triton model repository.

Runs as the init container of a ModelDeployment's pods. On success prints one
JSON line (model, version, source, path, manifest_sha256, ...) and writes the
same record to ``<repository>/<model>/.modelops-version``. On failure prints
``modelops pull-model: error: <Reason>: <message>`` as its last line and
exits 1. With ``--termination-log`` (e.g. /dev/termination-log) the JSON or
the ``<Reason>: <message>`` line is also written there, so the operator can
read the outcome, including the resolved version, from the pod status.

Runtime options (``--max-batch-size`` ...) are applied to the installed
``config.pbtxt``, so the deployment's Triton settings win over the packaged ones.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from modelops.commands.pull import pull_model
from modelops.redact import redact
from modelops.storage.errors import StorageError
from modelops.storage.uri import PVC_MOUNT_ROOT_ENV
from modelops.triton.config_patch import GPU_KINDS, RuntimeOverrides

FORMATS = ("torchscript", "onnx", "tensorrt", "python", "triton")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "uri",
        nargs="?",
        help="model directory: s3://, gs://, https://, file:// or pvc://claim/path",
    )
    parser.add_argument("--uri", dest="uri_option", metavar="URI", help="same as the argument")
    parser.add_argument(
        "--repository", type=Path, required=True, help="local Triton model repository"
    )
    parser.add_argument("--version", default="latest", help="'latest' (default) or a number")
    parser.add_argument("--model-name", help="name in the repository (default: last URI segment)")
    parser.add_argument(
        "--format",
        choices=FORMATS,
        help="declared model format; the pulled config must serve it (triton: any)",
    )
    parser.add_argument(
        "--pvc-mount-root",
        type=Path,
        help=f"where pvc:// claims are mounted (default: ${PVC_MOUNT_ROOT_ENV} or /mnt/pvc)",
    )
    parser.add_argument(
        "--allow-unverified",
        action="store_true",
        help="accept versions without SHA256SUMS (models not published by modelops)",
    )
    parser.add_argument(
        "--keep-other-versions",
        action="store_true",
        help="do not remove other versions already in the repository",
    )
    parser.add_argument(
        "--served-version-file",
        type=Path,
        help='a traffic file (JSON): its "served" version, when it names one, replaces '
        "--version (placement InPlace: the version a promotion made the served one)",
    )
    parser.add_argument("--termination-log", type=Path, help="also write the outcome here")
    runtime = parser.add_argument_group("runtime settings applied to config.pbtxt")
    runtime.add_argument("--max-batch-size", type=int)
    runtime.add_argument("--dynamic-batching-delay-us", type=int, metavar="MICROSECONDS")
    runtime.add_argument("--instances-per-gpu", type=int, metavar="N")
    runtime.add_argument("--gpus", type=int, metavar="N", help="0 runs the instances on CPU")
    runtime.add_argument(
        "--gpu-instance-kind",
        choices=GPU_KINDS,
        default="gpu",
        help="with --gpus > 0: gpu (KIND_GPU; no CUDA device fails the load) or auto "
        "(KIND_AUTO: the GPUs Triton sees, else the CPU; for GPU resources without a "
        "CUDA device, as on the local real node)",
    )


def _write_termination_log(path: Path | None, text: str) -> None:
    if path is None:
        return
    try:
        path.write_text(text + "\n")
    except OSError as err:
        print(f"modelops pull-model: cannot write {path}: {err}", file=sys.stderr)


def _fail(args: argparse.Namespace, line: str) -> int:
    line = redact(" ".join(line.split()))
    print(f"modelops pull-model: error: {line}", file=sys.stderr)
    _write_termination_log(args.termination_log, line)
    return 1


_MAX_TRAFFIC_FILE = 1024 * 1024


def served_version(path: Path | None) -> str | None:
    """The ``served`` version of the traffic file at ``path``: None when there is no file
    (the ConfigMap is optional), it names none, or it is not a small JSON object with a
    version number there (then --version stands: the template's, never a guess)."""
    if path is None:
        return None
    try:
        with path.open("rb") as f:
            data = f.read(_MAX_TRAFFIC_FILE + 1)
        doc = json.loads(data or b"{}") if len(data) <= _MAX_TRAFFIC_FILE else None
    except (OSError, ValueError):
        return None
    served = doc.get("served") if isinstance(doc, dict) else None
    text = str(served) if isinstance(served, (str, int)) and not isinstance(served, bool) else ""
    return text if text.isdigit() and len(text) < 10 else None


def run(args: argparse.Namespace) -> int:
    if (args.uri is None) == (args.uri_option is None):
        return _fail(args, "InvalidArgument: give the model URI once (argument or --uri)")
    negative = [
        name
        for name in ("max_batch_size", "dynamic_batching_delay_us", "gpus")
        if (getattr(args, name) or 0) < 0
    ]
    if negative or (args.instances_per_gpu is not None and args.instances_per_gpu < 1):
        return _fail(args, "InvalidArgument: runtime settings must be non-negative counts")
    overrides = RuntimeOverrides(
        max_batch_size=args.max_batch_size,
        max_queue_delay_microseconds=args.dynamic_batching_delay_us,
        instance_count=args.instances_per_gpu,
        gpus=args.gpus,
        gpu_kind=args.gpu_instance_kind,
    )
    version = served_version(args.served_version_file) or args.version
    try:
        outcome = pull_model(
            args.uri or args.uri_option,
            args.repository,
            version,
            model_name=args.model_name,
            pvc_root=args.pvc_mount_root,
            allow_unverified=args.allow_unverified,
            prune=not args.keep_other_versions,
            overrides=overrides,
            model_format=args.format,
        )
    except StorageError as err:
        return _fail(args, err.one_line())
    except OSError as err:
        # Local disk trouble (full volume, read-only mount) rather than storage.
        return _fail(args, f"LocalIOError: {err}")
    text = outcome.to_json()
    print(text)
    action = "pulled" if outcome.downloaded else "already present:"
    print(
        f"modelops pull-model: {action} {outcome.source} version {outcome.version} "
        f"-> {outcome.path} ({outcome.files} files, {outcome.bytes} bytes)",
        file=sys.stderr,
    )
    _write_termination_log(args.termination_log, text)
    return 0
