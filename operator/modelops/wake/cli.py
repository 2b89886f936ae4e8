"""`modelops activator`: hold requests for models at zero and wake them."""

from __future__ import annotations

import argparse
import logging
import os

from aiohttp import web

from modelops.kube.client import Kube

from .activator import Activator, ActivatorSettings
from .cluster import WakeCluster


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--listen", default="0.0.0.0:8080", help="host:port to serve on")
    parser.add_argument(
        "--advertise",
        default=os.environ.get("POD_IP", ""),
        help="the IP put in the Services' EndpointSlices while at zero (default $POD_IP)",
    )
    parser.add_argument(
        "--advertise-port", type=int, default=None, help="default: the --listen port"
    )
    parser.add_argument(
        "--namespace",
        action="append",
        default=[],
        help="only this namespace; repeat for several (default: every namespace)",
    )
    parser.add_argument("--queue-limit", type=int, default=100, help="held requests per model")
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds a request is held")
    parser.add_argument("--retry-after", type=int, default=5, help="Retry-After of a 503, seconds")
    parser.add_argument("--sync-interval", type=float, default=2.0, help="seconds between syncs")


def run(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    host, _, port = args.listen.rpartition(":")
    if not args.advertise:
        raise SystemExit("--advertise (or $POD_IP) is required: the address kube-proxy sends to")
    settings = ActivatorSettings(
        advertise_ip=args.advertise,
        advertise_port=args.advertise_port or int(port),
        queue_limit=args.queue_limit,
        timeout_s=args.timeout,
        retry_after_s=args.retry_after,
        sync_s=args.sync_interval,
    )
    activator = Activator(WakeCluster(Kube(), tuple(args.namespace)), settings)
    web.run_app(activator.app(), host=host or "0.0.0.0", port=int(port), print=None)
    return 0
