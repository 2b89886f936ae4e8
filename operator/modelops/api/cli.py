"""`modelops crds`: print or write the generated CRDs (and the API reference)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .crd import crd_files
from .docs import api_reference


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--output-dir",
        type=Path,
        help="write one <group>_<plural>.yaml per CRD into this directory (e.g. crds/) "
        "instead of printing them",
    )
    parser.add_argument(
        "--docs",
        type=Path,
        help="also write the Markdown API reference to this file (e.g. docs/api.md)",
    )
    parser.add_argument(
        "--check",
        action="store_true",
        help="write nothing; exit 1 if the files under --output-dir / --docs are stale",
    )


def _outputs(args: argparse.Namespace) -> dict[Path, str]:
    out: dict[Path, str] = {}
    if args.output_dir is not None:
        out.update({args.output_dir / name: text for name, text in crd_files().items()})
    if args.docs is not None:
        out[args.docs] = api_reference()
    return out


def run(args: argparse.Namespace) -> int:
    outputs = _outputs(args)
    if args.output_dir is None and not args.check:
        # Multi-document stream, ready for `modelops crds | kubectl apply -f -`.
        sys.stdout.write("".join(crd_files().values()))
    if args.check:
        stale = [p for p, text in outputs.items() if not p.exists() or p.read_text() != text]
        for path in stale:
            print(f"stale: {path} (run `make crds`)", file=sys.stderr)
        return 1 if stale else 0
    for path, text in outputs.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        print(f"wrote {path}", file=sys.stderr)
    return 0
