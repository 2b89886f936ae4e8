"""The `modelops` command: one entry point for every process the project runs.

Each subcommand lives beside the code it drives and is imported only when it
is chosen, so `modelops run` (the operator) never imports torch, and the
sidecar never imports kopf.
"""

from __future__ import annotations

import argparse
import importlib
import sys

# subcommand -> (module providing `add_arguments(parser)` and `run(args) -> int`, help)
SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "run": ("modelops.controllers.cli", "run the operator against the current kubeconfig"),
    "crds": ("modelops.api.cli", "print the CustomResourceDefinitions generated from the API"),
    "migrate-storage": (
        "modelops.controllers.storage_migration",
        "rewrite modelops objects in their CRD's storage version (after an API upgrade)",
    ),
    "pull-model": (
        "modelops.commands.pull_cli",
        "fetch a model version into a Triton model repository",
    ),
    "pull-file": ("modelops.storage.file_cli", "copy one file from storage to a local path"),
    "package-model": (
        "modelops.commands.package_cli",
        "write a TorchScript/ONNX model as a Triton model",
    ),
    "drift-monitor": ("modelops.drift.cli", "run the drift-monitor sidecar in front of Triton"),
    "activator": ("modelops.wake.cli", "hold requests for models at zero and wake them"),
    "drift-reference": ("modelops.drift.reference_cli", "build drift reference statistics"),
    "train": ("modelops.trainer.cli", "run a training entrypoint under torchrun"),
    "train-script": (
        "modelops.trainer.script",
        "run a training command unchanged (e.g. torchrun train.py), then publish its model",
    ),
    "version": ("modelops.version", "print the version of modelops"),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="modelops", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (_, help_text) in SUBCOMMANDS.items():
        sub.add_parser(name, help=help_text, add_help=False)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    if not argv or argv[0] not in SUBCOMMANDS:
        parser.parse_args(argv)  # prints usage / the error and exits
        return 2
    name, rest = argv[0], argv[1:]
    module = importlib.import_module(SUBCOMMANDS[name][0])
    sub_parser = argparse.ArgumentParser(prog=f"modelops {name}", description=SUBCOMMANDS[name][1])
    module.add_arguments(sub_parser)
    return int(module.run(sub_parser.parse_args(rest)) or 0)


if __name__ == "__main__":
    sys.exit(main())
