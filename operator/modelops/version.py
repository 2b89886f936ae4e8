"""`modelops version`: the version of the running modelops package."""

from __future__ import annotations

import argparse
import json
import platform

import modelops


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--output",
        "-o",
        choices=("text", "json"),
        default="text",
        help='text: the version alone; json: {"version": ..., "python": ...}',
    )


def run(args: argparse.Namespace) -> int:
    # The imported package's own version (pyproject.toml's, a unit test keeps
    # them equal), not the installed distribution's metadata, which an
    # editable install or PYTHONPATH checkout can leave behind the code.
    if args.output == "json":
        print(json.dumps({"version": modelops.__version__, "python": platform.python_version()}))
    else:
        print(modelops.__version__)
    return 0
