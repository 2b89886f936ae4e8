"""The only package that talks to the Kubernetes API server.

Everything else in modelops renders or derives plain dicts; this package
applies them (server-side apply under one field manager), patches status,
and answers the few questions the controllers need to ask the cluster.
"""

from modelops.kube.client import FIELD_MANAGER, Kube

__all__ = ["FIELD_MANAGER", "Kube"]
