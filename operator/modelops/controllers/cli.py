"""`modelops run`: the operator process."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os

from modelops import logs
from modelops.api import constants as c
from modelops.api.images import TRAINER_IMAGE_ENV, TRITON_IMAGE_ENV, ImageDefaults
from modelops.controllers.conversion import (
    DEFAULT_CRDS,
    WebhookOptions,
    hosts_from,
    service_hosts,
)
from modelops.controllers.malloc_arenas import limit_malloc_arenas
from modelops.render.lease import LeaseConfig


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
        "--leader-elect",
        action=argparse.BooleanOptionalAction,
        default=os.environ.get("MODELOPS_LEADER_ELECT", "") == "true",
        help="run as one of several replicas: only the holder of the Lease reconciles and "
        "writes, the others keep their caches warm (env MODELOPS_LEADER_ELECT=true)",
    )
    parser.add_argument(
        "--leader-elect-namespace",
        default=os.environ.get("MODELOPS_LEADER_ELECT_NAMESPACE") or _own_namespace(),
        help="namespace of the Lease (default: the pod's own, else modelops-system)",
    )
    parser.add_argument(
        "--leader-elect-id",
        default=os.environ.get("MODELOPS_LEADER_ELECT_ID", "modelops-operator"),
        help="name of the Lease the replicas of one operator share (default %(default)s)",
    )
    parser.add_argument(
        "--leader-elect-lease-duration",
        type=float,
        default=float(os.environ.get("MODELOPS_LEASE_DURATION_S", "15")),
        help="seconds a standby waits after the last renewal it saw before taking over",
    )
    parser.add_argument(
        "--leader-elect-renew-deadline",
        type=float,
        default=float(os.environ.get("MODELOPS_LEASE_RENEW_DEADLINE_S", "10")),
        help="seconds the leader goes on without a successful renewal before it stops "
        "writing and exits",
    )
    parser.add_argument(
        "--leader-elect-retry-period",
        type=float,
        default=float(os.environ.get("MODELOPS_LEASE_RETRY_PERIOD_S", "2")),
        help="seconds between two looks at the Lease (renewals, takeover attempts)",
    )
    parser.add_argument(
        "--standalone",
        action="store_true",
        help="one replica, no leader election (the default unless --leader-elect)",
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
    webhook = parser.add_argument_group(
        "conversion webhook",
        "serve the v1alpha1 <-> v1beta1 conversion the CRDs call (docs/api-versions.md)",
    )
    webhook.add_argument(
        "--conversion-webhook-port",
        type=int,
        default=int(os.environ.get("MODELOPS_CONVERSION_WEBHOOK_PORT") or 0),
        help="HTTPS port of the conversion webhook (env MODELOPS_CONVERSION_WEBHOOK_PORT; "
        "0, the default, serves none: for CRDs that serve v1alpha1 only)",
    )
    webhook.add_argument(
        "--conversion-webhook-service",
        default=os.environ.get("MODELOPS_CONVERSION_WEBHOOK_SERVICE", "modelops-webhook"),
        help="the Service in the operator's namespace the CRDs name; its DNS names go into "
        "the serving certificate (default %(default)s)",
    )
    webhook.add_argument(
        "--conversion-webhook-secret",
        default=os.environ.get("MODELOPS_CONVERSION_WEBHOOK_SECRET", "modelops-webhook-cert"),
        help="Secret in the operator's namespace holding the CA and serving certificate the "
        "operator makes and rotates (default %(default)s)",
    )
    webhook.add_argument(
        "--conversion-webhook-host",
        action="append",
        default=[],
        help="another DNS name or IP address for the serving certificate (repeatable), "
        "e.g. 127.0.0.1 for an operator run outside the cluster",
    )
    webhook.add_argument(
        "--conversion-webhook-url",
        default=os.environ.get("MODELOPS_CONVERSION_WEBHOOK_URL") or None,
        help="write this URL into the CRDs' clientConfig (an operator outside the cluster, "
        "e.g. https://127.0.0.1:9443/convert); default: keep the CRDs' Service reference",
    )
    webhook.add_argument(
        "--conversion-webhook-crd",
        action="append",
        default=[],
        help="a CRD whose caBundle the operator keeps and whose objects it migrates "
        "(repeatable; default: modeldeployments.modelops.io and trainingjobs.modelops.io)",
    )
    webhook.add_argument(
        "--migrate-storage",
        action=argparse.BooleanOptionalAction,
        default=os.environ.get("MODELOPS_MIGRATE_STORAGE", "true") == "true",
        help="with the webhook on: rewrite objects still stored in an older version in the "
        "CRDs' storage version, then trim status.storedVersions (default on)",
    )
    parser.add_argument("--verbose", "-v", action="store_true")


def run(args: argparse.Namespace) -> int:
    import kopf

    # Importing registers the handlers on kopf's default registry.
    from modelops.controllers import operator

    operator.IMAGE_DEFAULTS = ImageDefaults(triton=args.triton_image, trainer=args.trainer_image)

    logs.configure(args.log_format, logging.DEBUG if args.verbose else logging.INFO)
    limit_malloc_arenas(os.environ)  # before the reconcile pool's threads exist
    trace_path = os.environ.get("MODELOPS_TRACEMALLOC")
    if trace_path:
        _trace_memory_to(trace_path)
    if not args.verbose:
        # kopf logs every handler call at INFO: thousands of lines a minute while
        # a large fleet rolls out. The operator logs what matters itself.
        logging.getLogger("kopf.objects").setLevel(logging.WARNING)
    namespaces = args.namespace or _env_namespaces()
    try:
        lease = LeaseConfig(
            lease_duration_s=args.leader_elect_lease_duration,
            renew_deadline_s=args.leader_elect_renew_deadline,
            retry_period_s=args.leader_elect_retry_period,
        )
    except ValueError as err:
        raise SystemExit(f"modelops run: {err}") from None
    webhook = None
    if args.conversion_webhook_port:
        own = _own_namespace()
        webhook = WebhookOptions(
            secret_namespace=own,
            secret_name=args.conversion_webhook_secret,
            hosts=(
                *service_hosts(own, args.conversion_webhook_service),
                *hosts_from(args.conversion_webhook_host),
            ),
            port=args.conversion_webhook_port,
            url=args.conversion_webhook_url,
            service=(own, args.conversion_webhook_service),
            crds=tuple(args.conversion_webhook_crd) or DEFAULT_CRDS,
        )
    options = operator.Options(
        webhook=webhook,
        migrate_storage=args.migrate_storage,
        namespaces=tuple(namespaces),
        leader_elect=args.leader_elect and not args.standalone,
        lease_namespace=args.leader_elect_namespace,
        lease_name=args.leader_elect_id,
        identity=operator.holder_identity(),
        lease=lease,
    )
    # kopf runs the process and the liveness probe; it watches nothing and does
    # not peer (the Lease decides who works), hence standalone.
    asyncio.run(
        kopf.operator(
            clusterwide=not namespaces,
            namespaces=namespaces,
            standalone=True,
            liveness_endpoint=args.liveness or None,
            memo=kopf.Memo(options=options),
        )
    )
    return 0


def _own_namespace() -> str:
    """The pod's namespace (the downward API's POD_NAMESPACE, or the service account's)."""
    if os.environ.get("POD_NAMESPACE"):
        return os.environ["POD_NAMESPACE"]
    try:
        with open("/var/run/secrets/kubernetes.io/serviceaccount/namespace") as f:
            return f.read().strip() or "modelops-system"
    except OSError:
        return "modelops-system"


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
