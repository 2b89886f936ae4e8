"""The API server's Status answers become modelops.kube errors a controller can act on.

The bodies are what the real API server answered (recorded from
tests/integration/test_kube_client.py runs); the same mapping is exercised
end to end there.
"""

from __future__ import annotations

import json

import kubernetes
import pytest

from modelops.api.kinds import SERVICE
from modelops.kube import Kube, errors
from modelops.kube.client import object_path


def status(code: int, reason: str, message: str, causes: list | None = None) -> bytes:
    body = {
        "kind": "Status",
        "apiVersion": "v1",
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code,
    }
    if causes is not None:
        body["details"] = {"name": "md", "kind": "services", "causes": causes}
    return json.dumps(body).encode()


@pytest.mark.parametrize(
    ("code", "reason", "message", "cls"),
    [
        (404, "NotFound", 'services "md" not found', errors.NotFound),
        (409, "AlreadyExists", 'services "md" already exists', errors.AlreadyExists),
        (
            409,
            "Conflict",
            'Operation cannot be fulfilled on services "md": Precondition failed: '
            "UID in precondition: a, UID in object meta: b",
            errors.PreconditionFailed,
        ),
        (
            409,
            "Conflict",
            'Operation cannot be fulfilled on services "md": uid mismatch: the provided '
            "object specified uid a, and no existing object was found",
            errors.PreconditionFailed,
        ),
        (
            409,
            "Conflict",
            'Operation cannot be fulfilled on Service "md": the UID in the precondition (a) '
            "does not match the UID in record (b). The object might have been deleted and "
            "then recreated",
            errors.PreconditionFailed,
        ),
        (
            409,
            "Conflict",
            'Operation cannot be fulfilled on deployments.apps "md": the object has been '
            "modified; please apply your changes to the latest version and try again",
            errors.Conflict,
        ),
        (403, "Forbidden", 'namespaces is forbidden: User "x" cannot create', errors.Forbidden),
        (422, "Invalid", 'Service "md" is invalid: spec.ports[0].port', errors.Invalid),
        (429, "TooManyRequests", "too many requests", errors.Unavailable),
        (503, "ServiceUnavailable", "etcd is down", errors.Unavailable),
        (504, "Timeout", "request timed out", errors.Unavailable),
        (500, "InternalError", "webhook panicked", errors.ServerError),
        (400, "BadRequest", "the body of the request was in an unknown format", errors.KubeError),
    ],
)
def test_status_answers_map_to_error_classes(code, reason, message, cls):
    err = errors.from_status(code, status(code, reason, message))
    assert type(err) is cls
    assert (err.status, err.reason, err.message) == (code, reason, message)
    assert isinstance(err, errors.KubeError)
    assert str(err) == f"{code} {reason}: {message}"


def test_only_precondition_failures_say_so():
    assert errors.from_status(
        409, status(409, "Conflict", "Precondition failed: UID")
    ).precondition_failed
    assert not errors.from_status(409, status(409, "AlreadyExists", "x")).precondition_failed
    assert not errors.from_status(409, status(409, "Conflict", "modified")).precondition_failed


def test_invalid_keeps_the_field_paths_of_its_causes():
    err = errors.from_status(
        422,
        status(
            422,
            "Invalid",
            'Service "md" is invalid: [spec.ports[0].port: Invalid value: 0, ...]',
            causes=[
                {
                    "reason": "FieldValueInvalid",
                    "message": "Invalid value: 0: must be between 1 and 65535, inclusive",
                    "field": "spec.ports[0].port",
                },
                {"reason": "FieldValueRequired", "message": "Required value", "field": ""},
            ],
        ),
    )
    assert isinstance(err, errors.Invalid)
    assert err.fields == ("spec.ports[0].port",)
    assert err.causes[0] == errors.Cause(
        "spec.ports[0].port",
        "FieldValueInvalid",
        "Invalid value: 0: must be between 1 and 65535, inclusive",
    )


def test_a_body_that_is_not_a_status_still_gives_a_usable_error():
    err = errors.from_status(502, b"<html>bad gateway</html>", http_reason="Bad Gateway")
    assert type(err) is errors.ServerError
    # The reason is one word, as conditions and metric labels need it.
    assert (err.reason, err.message) == ("BadGateway", "Bad Gateway")
    err = errors.from_status(404, b"404 page not found", http_reason="Not Found")
    assert type(err) is errors.NotFound and err.reason == "NotFound"
    err = errors.from_status(418, None)
    assert (err.reason, err.message, err.status) == ("HTTP418", "HTTP 418", 418)


def test_an_unreachable_server_is_unavailable():
    # A real connection to a port nobody listens on: refused at once.
    config = kubernetes.client.Configuration()
    config.host = "http://127.0.0.1:9"
    config.retries = False
    kube = Kube(kubernetes.client.ApiClient(config), request_timeout_s=5)
    with pytest.raises(errors.Unavailable) as refused:
        kube.get(SERVICE, "ns", "md")
    assert refused.value.status == 0
    assert refused.value.reason == "Unreachable"
    with pytest.raises(errors.Unavailable):
        kube.list_events("ns", "type=Warning")
    with pytest.raises(errors.Unavailable):
        kube.apply(
            {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "md", "namespace": "ns"}}
        )
    with pytest.raises(errors.Unavailable):
        kube.api_available(SERVICE)
    kube.post_event(  # never raises
        {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "md", "namespace": "ns"}},
        "Warning",
        "X",
        "y",
    )
    assert object_path(SERVICE, "ns", "md") == "/api/v1/namespaces/ns/services/md"
