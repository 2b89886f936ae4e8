"""The only package that talks to the Kubernetes API server.

Everything else in modelops renders or derives plain dicts; this package
applies them (server-side apply under one field manager), creates and deletes
with uid preconditions, patches status, records Events and answers the few
questions the controllers ask the cluster. Its errors (`modelops.kube.errors`)
are the only ones callers see: the kubernetes client stays inside.
"""

from modelops.api.kinds import Kind, UnknownKind

from .client import API_REQUESTS, FIELD_MANAGER, Kube, object_path
from .errors import (
    AlreadyExists,
    Cause,
    Conflict,
    Forbidden,
    Invalid,
    KubeError,
    NotFound,
    PreconditionFailed,
    ServerError,
    Unavailable,
)
from .protocol import KubeApi

__all__ = [
    "API_REQUESTS",
    "FIELD_MANAGER",
    "AlreadyExists",
    "Cause",
    "Conflict",
    "Forbidden",
    "Invalid",
    "Kind",
    "Kube",
    "KubeApi",
    "KubeError",
    "NotFound",
    "PreconditionFailed",
    "ServerError",
    "Unavailable",
    "UnknownKind",
    "object_path",
]
