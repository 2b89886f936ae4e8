"""``modelops pull-file``: copy one file named by a storage URI to a local path.

The fetch-reference init container of a ModelDeployment with a drift
reference in an object store (s3://, gs://) runs it with the storage
credentials, so the sidecar, which handles requests, never holds them. The
file appears at ``--output`` complete or not at all (written beside it, then
renamed). On failure the last line is ``modelops pull-file: error: <Reason>:
<message>``, also written to ``--termination-log``; URIs in it are redacted.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import sys
import tempfile
from pathlib import Path

from modelops.redact import redact
from modelops.storage.errors import StorageError
from modelops.storage.fetch import DataFileNotFoundError, fetch_data_file


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--uri", required=True, help="the file: s3://, gs://, https://, file://")
    parser.add_argument("--output", type=Path, required=True, help="local path to write")
    parser.add_argument("--termination-log", type=Path, help="also write an error here")


def run(args: argparse.Namespace) -> int:
    output: Path = args.output
    try:
        output.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=output.parent, prefix=".tmp-pull-") as work:
            fetched = fetch_data_file(args.uri, work)
            staged = Path(work) / ".staged"
            shutil.copyfile(fetched, staged)
            os.replace(staged, output)
    except DataFileNotFoundError as err:
        return _fail(args, f"NotFound: {err}")
    except StorageError as err:
        return _fail(args, err.one_line())
    except OSError as err:
        return _fail(args, f"LocalIOError: {err}")
    print(f"modelops pull-file: {redact(args.uri)} -> {output}", file=sys.stderr)
    return 0


def _fail(args: argparse.Namespace, line: str) -> int:
    line = redact(" ".join(line.split()))
    print(f"modelops pull-file: error: {line}", file=sys.stderr)
    if args.termination_log is not None:
        # Best effort: the error is on stderr (the log tail) either way.
        with contextlib.suppress(OSError):
            args.termination_log.write_text(line + "\n")
    return 1
