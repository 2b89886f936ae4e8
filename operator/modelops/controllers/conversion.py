"""Wiring of the conversion webhook: its certificate in a Secret, the CRDs' caBundle, the server.

Every replica serves the webhook (the API server may call any of them through
the Service, leader or not), so the writes here are not fenced by the
leader's Lease: they are idempotent and guarded by resourceVersion instead.
The first replica to find no certificate (or one due for renewal) writes
the new one; the others read it on their next refresh and reload.
"""

from __future__ import annotations

import base64
import datetime as dt
import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from modelops.api import constants as c
from modelops.api.kinds import CUSTOM_RESOURCE_DEFINITION, SECRET
from modelops.kube import Kube, errors
from modelops.webhook.certs import Bundle, renewed
from modelops.webhook.server import PATH, ConversionServer

log = logging.getLogger("modelops.conversion")

# How often each replica looks at the Secret (renewal by any replica, rotation due).
REFRESH_S = 600.0
DEFAULT_CRDS = (f"{c.MD_PLURAL}.{c.GROUP}", f"{c.TJ_PLURAL}.{c.GROUP}")
# The write-log identity of the webhook's client (MODELOPS_LOG_WRITES): its writes
# are every replica's, not the leader's.
WEBHOOK_IDENTITY = "conversion-webhook"


@dataclass(frozen=True)
class WebhookOptions:
    """Where the webhook listens and how the API server reaches it."""

    secret_namespace: str
    secret_name: str
    # DNS names and IP addresses in the serving certificate (the Service's
    # <name>.<namespace>.svc in a cluster, 127.0.0.1 for an operator on the host).
    hosts: tuple[str, ...]
    port: int = 9443
    bind: str = "0.0.0.0"
    crds: tuple[str, ...] = DEFAULT_CRDS
    # Set clientConfig.url to this (an operator outside the cluster); None keeps
    # the CRD's own clientConfig (the chart's Service reference) and patches only
    # the caBundle.
    url: str | None = None
    # (namespace, name) of the Service the CRDs name in a cluster. A CRD whose
    # clientConfig names another Service (another install of the operator) or a
    # URL is left alone: patching our CA into it would break that install's
    # conversions. None: every CRD of `crds` is ours.
    service: tuple[str, str] | None = None


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class ConversionWebhook:
    """Certificate upkeep and the HTTPS server of one replica."""

    def __init__(
        self,
        kube: Kube,
        options: WebhookOptions,
        *,
        clock: Callable[[], dt.datetime] = _utcnow,
    ) -> None:
        self.kube = kube
        self.options = options
        self.clock = clock
        self.server: ConversionServer | None = None
        self.bundle: Bundle | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- the certificate ----------------------------------------------------------

    def ensure_certificate(self) -> Bundle:
        """The bundle in the Secret, made or renewed first when needed."""
        ns, name = self.options.secret_namespace, self.options.secret_name
        for _ in range(3):  # lost a race with another replica: read its write
            secret = self.kube.get(SECRET, ns, name)
            current = Bundle.from_secret_data((secret or {}).get("data"))
            new = renewed(current, self.options.hosts, self.clock())
            if new is None and current is not None:
                return current
            assert new is not None
            try:
                if secret is None:
                    self.kube.create(
                        {
                            "apiVersion": "v1",
                            "kind": "Secret",
                            "metadata": {
                                "name": name,
                                "namespace": ns,
                                "labels": {c.LABEL_MANAGED_BY: c.MANAGED_BY},
                            },
                            "type": "Opaque",
                            "data": new.to_secret_data(),
                        }
                    )
                else:
                    self.kube.merge_patch(
                        SECRET,
                        ns,
                        name,
                        {
                            "metadata": {"resourceVersion": secret["metadata"]["resourceVersion"]},
                            "data": new.to_secret_data(),
                        },
                    )
            except (errors.AlreadyExists, errors.Conflict):
                continue
            log.info(
                "conversion webhook certificate %s in Secret %s/%s",
                "renewed" if current else "made",
                ns,
                name,
            )
            return new
        raise RuntimeError(f"could not write Secret {ns}/{name}: it keeps changing")

    def patch_crds(self, bundle: Bundle) -> list[str]:
        """Put the CA bundle (and the url, when set) into each CRD's webhook clientConfig;
        the names of the CRDs changed."""
        ca = base64.b64encode(bundle.ca_bundle.encode()).decode()
        changed = []
        for crd_name in self.options.crds:
            crd = self.kube.get(CUSTOM_RESOURCE_DEFINITION, None, crd_name)
            conversion = ((crd or {}).get("spec") or {}).get("conversion") or {}
            if conversion.get("strategy") != "Webhook":
                continue  # a v1alpha1-only CRD (before the upgrade): nothing to serve
            config = (conversion.get("webhook") or {}).get("clientConfig") or {}
            if not self._ours(config):
                continue
            want: dict[str, str | None] = {"caBundle": ca}
            if self.options.url:
                want["url"] = self.options.url
                # url and service are exclusive; null removes it in a merge patch.
                if config.get("service") is not None:
                    want["service"] = None
            if all(config.get(k) == v for k, v in want.items()):
                continue
            self.kube.merge_patch(
                CUSTOM_RESOURCE_DEFINITION,
                None,
                crd_name,
                {"spec": {"conversion": {"webhook": {"clientConfig": want}}}},
            )
            changed.append(crd_name)
        return changed

    def _ours(self, config: dict) -> bool:
        """Whether a CRD's clientConfig leads to this webhook."""
        service = config.get("service")
        if self.options.url:
            # An operator outside the cluster (`make dev`) takes the CRDs over:
            # its URL replaces the Service reference (want() below).
            return True
        if self.options.service is None:
            return True
        if service is None:
            return False
        return (service.get("namespace"), service.get("name")) == self.options.service

    # -- the server ---------------------------------------------------------------

    def start(self) -> None:
        """Serve with the stored certificate, patch the CRDs, then keep both fresh."""
        bundle = self.ensure_certificate()
        self.server = ConversionServer(
            self.options.bind, self.options.port, bundle.tls_cert, bundle.tls_key
        )
        self.server.start()
        self.bundle = bundle
        self.patch_crds(bundle)
        log.info("conversion webhook on %s:%d%s", self.options.bind, self.server.port, PATH)

    def refresh(self) -> bool:
        """Renew or pick up a renewed certificate; True when the served one changed."""
        bundle = self.ensure_certificate()
        if bundle == self.bundle:
            self.patch_crds(bundle)  # a CRD re-applied by the chart lost its caBundle
            return False
        assert self.server is not None
        self.server.reload(bundle.tls_cert, bundle.tls_key)
        self.bundle = bundle
        self.patch_crds(bundle)
        return True

    def run_refresh(self, interval_s: float = REFRESH_S) -> None:
        """`refresh` every interval_s on a thread, until `stop`."""

        def loop() -> None:
            while not self._stop.wait(interval_s):
                try:
                    self.refresh()
                except Exception:  # the next round tries again; serving goes on
                    log.exception("conversion webhook certificate refresh failed")

        self._thread = threading.Thread(target=loop, name="conversion-cert", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self.server is not None:
            self.server.stop()
            self.server = None


def service_hosts(namespace: str, service: str) -> tuple[str, ...]:
    """The names the API server may use for a Service."""
    return (f"{service}.{namespace}.svc", f"{service}.{namespace}.svc.cluster.local")


def hosts_from(values: Sequence[str]) -> tuple[str, ...]:
    return tuple(v for v in values if v)
