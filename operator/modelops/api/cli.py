"""`modelops crds`: print or write the generated CRDs (and the API reference)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .crd import KINDS, build_versioned_crd, crd_files, service_client_config, to_yaml
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
        "--conversion-webhook-service",
        metavar="NAMESPACE/NAME",
        help="print the CRDs serving v1alpha1 and v1beta1 (the storage version), converted by "
        "the operator's webhook behind this Service on port 443 (docs/api-versions.md)",
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
        out[args.docs.with_name("api-v1beta1.md")] = api_reference("v1beta1")
    return out


def versioned_crds(service: str) -> str:
    """The v1alpha1 + v1beta1 CRDs whose conversion webhook is `namespace/name`."""
    namespace, _, name = service.partition("/")
    if not namespace or not name:
        raise SystemExit("--conversion-webhook-service: expected NAMESPACE/NAME")
    config = service_client_config(namespace, name)
    return "".join(to_yaml(build_versioned_crd(kind, config)) for kind in KINDS)


def run(args: argparse.Namespace) -> int:
    if args.conversion_webhook_service:
        sys.stdout.write(versioned_crds(args.conversion_webhook_service))
        return 0
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
