"""The errors of modelops.kube: what the API server said, in the package's own types.

Callers catch these, never `kubernetes.client.ApiException`: the boundary
keeps the client library (and its exception's raw HTTP body) inside `kube/`.
Every error carries the API server's own `reason` (a metav1.StatusReason such
as "AlreadyExists", "Invalid", "Conflict"), its human `message` and the HTTP
`status`; the class says what a controller can do about it.

    KubeError                 anything the API server (or the way to it) refused
    ├── NotFound              404: the object, or the whole kind (CRD absent)
    ├── Conflict              409
    │   ├── AlreadyExists     create (or create-only apply) of a name that exists
    │   └── PreconditionFailed  a uid precondition did not hold: the name is another object's
    ├── Forbidden             403 (RBAC, admission webhooks, quota)
    ├── Gone                  410: a watch or list from a resourceVersion etcd has compacted
    ├── Invalid               422: schema / CEL / immutable field; `causes` name the fields
    └── ServerError           5xx
        └── Unavailable       the server could not answer now (429, 503, 504, no
                              connection, timeout): retry with backoff

    NotLeader                 not a KubeError: this process may not write (see below)
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Cause:
    """One entry of a Status' details.causes: which field, and what was wrong with it."""

    field: str
    reason: str
    message: str


class KubeError(Exception):
    """The API server refused a request, or could not be reached."""

    def __init__(
        self,
        reason: str,
        message: str,
        status: int,
        causes: tuple[Cause, ...] = (),
    ) -> None:
        super().__init__(f"{status} {reason}: {message}")
        self.reason = reason
        self.message = message
        self.status = status
        self.causes = causes

    @property
    def fields(self) -> tuple[str, ...]:
        """The field paths the causes name (e.g. "spec.replicas"), in order, without blanks."""
        return tuple(c.field for c in self.causes if c.field)


class NotFound(KubeError):
    """404: no such object, or the cluster does not serve the kind (an optional CRD)."""


class Conflict(KubeError):
    """409: the object changed under us, exists already, or a precondition failed."""

    @property
    def precondition_failed(self) -> bool:
        return isinstance(self, PreconditionFailed)


class AlreadyExists(Conflict):
    """409 AlreadyExists: create of a name that is taken."""


class PreconditionFailed(Conflict):
    """The live object is not the one the request named (another uid, or none).

    Raised for a delete whose preconditions.uid differs from the live object's
    uid (409), for an apply naming a uid where no object exists (409), and for
    an apply naming a uid other than the live object's: the API server answers
    that one with 422 Invalid "metadata.uid: ... field is immutable", which
    `Kube.apply` reports as this class (status and reason stay the server's).
    """


class Forbidden(KubeError):
    """403: RBAC, an admission webhook or a quota refused the request."""


class Gone(KubeError):
    """410: the resourceVersion a watch (or list) started from is older than etcd keeps:
    the watcher must list again."""


class Invalid(KubeError):
    """422: the object fails validation (schema, CEL rule, immutable field)."""


class ServerError(KubeError):
    """5xx: the API server failed to handle the request."""


class Unavailable(ServerError):
    """The API server could not answer now (throttled, overloaded, unreachable): retry later."""


# Texts the API server puts in a 409's message when a precondition does not
# hold; the reason of those 409s is the generic "Conflict", so the message is
# the only thing that tells them apart from an optimistic-concurrency conflict.
# (kube-apiserver 1.36: "uid mismatch: the provided object specified uid ..."
# for an apply naming a uid where no object exists; "the UID in the
# precondition (...) does not match the UID in record (...)" for a delete;
# "Precondition failed: UID in precondition: ..." from the storage layer.)
_PRECONDITION_MARKERS = ("Precondition failed", "uid mismatch", "in the precondition")
_RETRYABLE_STATUSES = frozenset({429, 503, 504})


def from_status(
    status: int, body: bytes | str | Mapping[str, Any] | None, *, http_reason: str = ""
) -> KubeError:
    """The error for an HTTP ``status`` answered with ``body`` (ideally a metav1.Status)."""
    doc = _status_document(body)
    # An answer without a metav1.Status (e.g. "404 page not found" for a group
    # whose CRD was just deleted) has only the HTTP phrase; as a reason it must
    # be one CamelCase word, like the API server's own (conditions require it).
    reason = str(doc.get("reason") or _reason_word(http_reason) or f"HTTP{status}")
    message = str(doc.get("message") or http_reason or _text(body) or f"HTTP {status}")
    details = doc.get("details") if isinstance(doc.get("details"), Mapping) else {}
    causes = tuple(
        Cause(
            field=str(c.get("field") or ""),
            reason=str(c.get("reason") or ""),
            message=str(c.get("message") or ""),
        )
        for c in details.get("causes") or ()
        if isinstance(c, Mapping)
    )
    return error_class(status, reason, message)(reason, message, status, causes)


def _reason_word(phrase: str) -> str:
    """An HTTP reason phrase as a reason: "Not Found" -> "NotFound"."""
    word = re.sub(r"[^A-Za-z0-9]", "", phrase.title())
    return word if word[:1].isalpha() else ""


def error_class(status: int, reason: str, message: str) -> type[KubeError]:
    """Which KubeError subclass an answer maps to (status first, then the reason)."""
    if status == 404:
        return NotFound
    if status == 409:
        if reason == "AlreadyExists":
            return AlreadyExists
        if any(marker in message for marker in _PRECONDITION_MARKERS):
            return PreconditionFailed
        return Conflict
    if status == 403:
        return Forbidden
    if status == 422:
        return Invalid
    if status == 410:
        return Gone
    if status in _RETRYABLE_STATUSES:
        return Unavailable
    if status >= 500:
        return ServerError
    return KubeError


class NotLeader(Exception):
    """A write refused before it was sent: this process does not hold the leader Lease
    (or its last renewal is older than the renew deadline, so another replica may
    hold it by now).

    Deliberately not a KubeError: callers that handle API errors (record a
    failure, go on with the next action) must not handle this one. It means
    "stop": the reconcile is abandoned at its first refused write."""


def unreachable(err: BaseException) -> Unavailable:
    """The error for a request that got no HTTP answer (connection refused, timeout)."""
    return Unavailable("Unreachable", f"{type(err).__name__}: {err}", 0)


def _status_document(body: bytes | str | Mapping[str, Any] | None) -> Mapping[str, Any]:
    if isinstance(body, Mapping):
        return body
    if not body:
        return {}
    try:
        doc = json.loads(body)
    except (TypeError, ValueError):
        return {}
    return doc if isinstance(doc, Mapping) else {}


def _text(body: bytes | str | Mapping[str, Any] | None) -> str:
    if isinstance(body, bytes):
        return body.decode("utf-8", "replace")[:500]
    return body[:500] if isinstance(body, str) else ""
