"""`modelops run`: the operator process."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--namespace",
        "-n",
        action="append",
        default=[],
        help="watch only this namespace (repeatable); default: $MODELOPS_NAMESPACES "
        "(comma-separated), else all namespaces",
    )
    parser.add_argument(
        "--peering",
        default=os.environ.get("MODELOPS_PEERING", "modelops"),
        help="kopf peering name shared by the replicas of one operator (default: modelops)",
    )
    parser.add_argument(
        "--priority",
        type=int,
        default=int(os.environ.get("MODELOPS_PRIORITY", "0")),
        help="peering priority: of two running replicas the higher one works",
    )
    parser.add_argument("--standalone", action="store_true", help="no peering (one replica)")
    parser.add_argument(
        "--liveness",
        default=os.environ.get("MODELOPS_LIVENESS", "http://0.0.0.0:8081/healthz"),
        help="kopf liveness endpoint for the pod's probe ('' to disable)",
    )
    parser.add_argument("--verbose", "-v", action="store_true")


def run(args: argparse.Namespace) -> int:
    import kopf

    # Importing registers the handlers on kopf's default registry.
    from modelops.controllers import operator  # noqa: F401

    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    if not args.verbose:
        # kopf logs every handler call at INFO: thousands of lines a minute while
        # a large fleet rolls out. The operator logs what matters itself.
        logging.getLogger("kopf.objects").setLevel(logging.WARNING)
    namespaces = args.namespace or _env_namespaces()
    asyncio.run(
        kopf.operator(
            clusterwide=not namespaces,
            namespaces=namespaces,
            standalone=args.standalone,
            peering_name=None if args.standalone else args.peering,
            priority=args.priority,
            liveness_endpoint=args.liveness or None,
        )
    )
    return 0


def _env_namespaces() -> list[str]:
    """$MODELOPS_NAMESPACES: the namespaced install's list, e.g. "team-a,team-b"."""
    return [n.strip() for n in os.environ.get("MODELOPS_NAMESPACES", "").split(",") if n.strip()]
