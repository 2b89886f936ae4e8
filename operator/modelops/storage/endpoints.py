"""Which S3 endpoints the operator itself may dial for a tenant (a pure policy).

A ModelDeployment's credentials Secret may name an endpoint (AWS_ENDPOINT_URL,
AWS_ENDPOINT_URL_S3): its pods pull from it, in the tenant's own network
position. The operator lists stores too (controllers/store_watcher.py), from
its own position, and an endpoint chosen by a tenant would let any namespace
make the operator send requests to any address it can reach (another tenant's
service, a cloud metadata endpoint). So the operator dials a Secret's endpoint
only when the operator's configuration allows it: the endpoint of the
operator's own environment, and the origins listed in MODELOPS_STORE_ENDPOINTS
(the chart's `operator.storeEndpoints`). An allowed origin without a port
allows every port of that host.
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Iterable
from dataclasses import dataclass

ENDPOINTS_ENV = "MODELOPS_STORE_ENDPOINTS"


@dataclass(frozen=True)
class Origin:
    scheme: str
    host: str
    port: int | None  # None: any port (in an allowlist entry) / the scheme's default

    def allows(self, other: Origin) -> bool:
        if (self.scheme, self.host) != (other.scheme, other.host):
            return False
        return self.port is None or self.port == other.effective_port()

    def effective_port(self) -> int:
        if self.port is not None:
            return self.port
        return 443 if self.scheme == "https" else 80


def parse_origin(text: str) -> Origin | None:
    """``scheme://host[:port]`` (a path is ignored); None when it is not one."""
    try:
        parts = urllib.parse.urlsplit(text.strip())
        port = parts.port
    except ValueError:
        return None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return None
    return Origin(parts.scheme, parts.hostname.lower(), port)


def parse_allowlist(text: str) -> tuple[Origin, ...]:
    """MODELOPS_STORE_ENDPOINTS: origins separated by commas or whitespace. An entry
    that is not an http(s) origin is an error at start, not a silent gap."""
    origins = []
    for entry in text.replace(",", " ").split():
        origin = parse_origin(entry)
        if origin is None:
            raise ValueError(f"{ENDPOINTS_ENV}: {entry!r} is not an http(s) origin")
        origins.append(origin)
    return tuple(origins)


def endpoint_allowed(endpoint: str, allowed: Iterable[Origin]) -> bool:
    origin = parse_origin(endpoint)
    return origin is not None and any(a.allows(origin) for a in allowed)
