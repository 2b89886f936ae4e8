"""`modelops run`: the operator process."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os

from modelops import logs
from modelops.api import constants as c
from modelops.api.images import TRAINER_IMAGE_ENV, TRITON_IMAGE_ENV, ImageDefaults


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
        "--create-peering",
        action="store_true",
        default=os.environ.get("MODELOPS_CREATE_PEERING", "") == "true",
        help="create the ClusterKopfPeering record named by --peering when it is missing "
        "(the plain manifests rely on it; the Helm chart ships the record itself)",
    )
    parser.add_argument(
        "--liveness",
        default=os.environ.get("MODELOPS_LIVENESS", "http://0.0.0.0:8081/healthz"),
        help="kopf liveness endpoint for the pod's probe ('' to disable)",
    )
    parser.add_argument(
        "--triton-image",
        default=os.environ.get(TRITON_IMAGE_ENV) or c.DEFAULT_TRITON_IMAGE,
        help="Triton image of every ModelDeployment whose spec.runtime.image is unset "
        f"(env {TRITON_IMAGE_ENV}; default %(default)s)",
    )
    parser.add_argument(
        "--trainer-image",
        default=os.environ.get(TRAINER_IMAGE_ENV) or c.DEFAULT_TRAINER_IMAGE,
        help="trainer image of every TrainingJob whose spec.image is unset "
        f"(env {TRAINER_IMAGE_ENV}; default %(default)s)",
    )
    parser.add_argument(
        "--log-format",
        choices=logs.FORMATS,
        default=os.environ.get("MODELOPS_LOG_FORMAT") or "text",
        help="text (for people) or json (one object a line: time, level, logger, msg, "
        "object, namespace, reconcile_id, decision); env MODELOPS_LOG_FORMAT; "
        "default %(default)s",
    )
    parser.add_argument("--verbose", "-v", action="store_true")


def run(args: argparse.Namespace) -> int:
    import kopf

    # Importing registers the handlers on kopf's default registry.
    from modelops.controllers import operator

    operator.IMAGE_DEFAULTS = ImageDefaults(triton=args.triton_image, trainer=args.trainer_image)

    logs.configure(args.log_format, logging.DEBUG if args.verbose else logging.INFO)
    trace_path = os.environ.get("MODELOPS_TRACEMALLOC")
    if trace_path:
        _trace_memory_to(trace_path)
    if not args.verbose:
        # kopf logs every handler call at INFO: thousands of lines a minute while
        # a large fleet rolls out. The operator logs what matters itself.
        logging.getLogger("kopf.objects").setLevel(logging.WARNING)
    namespaces = args.namespace or _env_namespaces()
    if args.create_peering and not args.standalone and not namespaces:
        # Before kopf starts, so that its first keep-alive finds the record.
        from modelops.kube import Kube
        from modelops.kube.peering import ensure_cluster_peering

        ensure_cluster_peering(Kube(), args.peering)
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


def _trace_memory_to(path: str) -> None:
    """Benchmark aid: trace allocations; on SIGUSR2 write the top sites to ``path``."""
    import signal
    import tracemalloc

    tracemalloc.start()

    def dump(*_: object) -> None:
        snapshot = tracemalloc.take_snapshot()
        total = sum(stat.size for stat in snapshot.statistics("filename"))
        lines = [f"traced: {total / 2**20:.1f} MiB"]
        for stat in snapshot.statistics("filename")[:20]:
            lines.append(f"{stat.size / 2**20:8.1f} MiB  {stat.count:>8} blocks  {stat.traceback}")
        with open(path, "w") as out:
            out.write("\n".join(lines) + "\n")

    signal.signal(signal.SIGUSR2, dump)
