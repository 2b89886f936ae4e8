"""The conversion webhook's certificates (renewal decisions) and its HTTPS server,
on this machine: a real TLS server on 127.0.0.1, called as the API server calls it."""

from __future__ import annotations

import datetime as dt
import http.client
import json
import ssl
import tempfile

import pytest
from cryptography import x509

from modelops.api import constants as c
from modelops.webhook import certs
from modelops.webhook.server import MAX_BODY_BYTES, ConversionServer

NOW = dt.datetime(2026, 12, 7, 8, 0, tzinfo=dt.UTC)
HOSTS = ("modelops-webhook.modelops-system.svc", "127.0.0.1")


def test_a_new_bundle_signs_the_serving_certificate_for_the_hosts():
    bundle = certs.renewed(None, HOSTS, NOW)
    assert bundle is not None
    serving = x509.load_pem_x509_certificate(bundle.tls_cert.encode())
    ca = x509.load_pem_x509_certificate(bundle.ca_certs.encode())
    serving.verify_directly_issued_by(ca)
    assert certs._hosts_of(serving) == set(HOSTS)
    assert certs.Bundle.from_secret_data(bundle.to_secret_data()) == bundle


def test_renewal_happens_at_two_thirds_of_a_life_and_when_hosts_change():
    bundle = certs.renewed(None, HOSTS, NOW)
    assert certs.renewed(bundle, HOSTS, NOW + dt.timedelta(days=59)) is None
    later = certs.renewed(bundle, HOSTS, NOW + dt.timedelta(days=61))
    assert later is not None and later.ca_certs == bundle.ca_certs  # same CA
    moved = certs.renewed(bundle, ("other.ns.svc",), NOW)
    assert moved is not None and moved.ca_certs == bundle.ca_certs
    rotated = certs.renewed(bundle, HOSTS, NOW + dt.timedelta(days=2434))
    assert rotated is not None
    cas = certs._certs(rotated.ca_certs)
    assert len(cas) == 2 and cas[1].subject == certs._certs(bundle.ca_certs)[0].subject


def test_a_damaged_secret_is_made_again():
    assert certs.Bundle.from_secret_data({"tls.crt": "bm9wZQ=="}) is None
    bundle = certs.renewed(None, HOSTS, NOW)
    data = bundle.to_secret_data()
    data["ca.crt"] = "bm9wZQ=="  # "nope"
    assert certs.Bundle.from_secret_data(data) is None


@pytest.fixture
def server():
    bundle = certs.renewed(None, ("127.0.0.1",), dt.datetime.now(dt.UTC))
    srv = ConversionServer("127.0.0.1", 0, bundle.tls_cert, bundle.tls_key)
    srv.start()
    with tempfile.NamedTemporaryFile("w", suffix=".pem") as ca:
        ca.write(bundle.ca_certs)
        ca.flush()
        context = ssl.create_default_context(cafile=ca.name)
        yield srv, context
    srv.stop()


def _post(server, body: bytes, path: str = "/convert") -> tuple[int, dict]:
    srv, context = server
    conn = http.client.HTTPSConnection("127.0.0.1", srv.port, context=context, timeout=10)
    conn.request("POST", path, body=body, headers={"Content-Type": "application/json"})
    response = conn.getresponse()
    return response.status, json.loads(response.read() or b"{}")


def test_the_server_converts_a_review_over_tls_verified_by_the_ca(server):
    review = {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "ConversionReview",
        "request": {
            "uid": "u",
            "desiredAPIVersion": f"{c.GROUP}/v1beta1",
            "objects": [
                {
                    "apiVersion": f"{c.GROUP}/v1alpha1",
                    "kind": c.MD_KIND,
                    "metadata": {"name": "m"},
                    "spec": {"rollout": {"surgeTimeoutSeconds": 30}},
                }
            ],
        },
    }
    status, answer = _post(server, json.dumps(review).encode())
    assert status == 200 and answer["response"]["result"]["status"] == "Success"
    assert answer["response"]["convertedObjects"][0]["spec"]["rollout"]["surgeTimeout"] == "30s"


def test_the_server_refuses_what_is_not_a_review(server):
    assert _post(server, b"{not json")[0] == 400
    assert _post(server, b"{}", path="/other")[0] == 404
    status, answer = _post(server, b"[]")
    assert status == 200 and answer["response"]["result"]["status"] == "Failure"


def test_the_server_refuses_an_oversized_body_before_reading_it(server):
    srv, context = server
    conn = http.client.HTTPSConnection("127.0.0.1", srv.port, context=context, timeout=10)
    conn.putrequest("POST", "/convert")
    conn.putheader("Content-Length", str(MAX_BODY_BYTES + 1))
    conn.endheaders()
    assert conn.getresponse().status == 413


def test_reload_serves_the_new_certificate(server):
    srv, _ = server
    fresh = certs.renewed(None, ("127.0.0.1",), dt.datetime.now(dt.UTC))
    srv.reload(fresh.tls_cert, fresh.tls_key)
    with tempfile.NamedTemporaryFile("w", suffix=".pem") as ca:
        ca.write(fresh.ca_certs)
        ca.flush()
        status, _ = _post((srv, ssl.create_default_context(cafile=ca.name)), b"[]")
    assert status == 200


# --- which CRDs a replica patches -------------------------------------------------------


def _crd(name: str, client_config: dict) -> dict:
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": name},
        "spec": {"conversion": {"strategy": "Webhook", "webhook": {"clientConfig": client_config}}},
    }


def _service(namespace: str, name: str) -> dict:
    return {"service": {"namespace": namespace, "name": name, "path": "/convert", "port": 443}}


def test_a_replica_patches_only_the_crds_that_name_its_own_service():
    from modelops.api.kinds import CUSTOM_RESOURCE_DEFINITION
    from modelops.controllers.conversion import ConversionWebhook, WebhookOptions
    from tests.support.fake_kube import FakeKube

    kube = FakeKube()
    kube.put(_crd("mine.example.io", _service("ops", "modelops-webhook")))
    # Another install's Service, and a URL (an operator outside the cluster, the
    # test harness): our CA there would break their conversions.
    kube.put(_crd("theirs.example.io", _service("team-b", "modelops-webhook")))
    kube.put(_crd("url.example.io", {"url": "https://127.0.0.1:9443/convert"}))
    names = ("mine.example.io", "theirs.example.io", "url.example.io")
    bundle = certs.renewed(None, HOSTS, NOW)
    assert bundle is not None
    hook = ConversionWebhook(
        kube,  # type: ignore[arg-type]
        WebhookOptions("ops", "cert", HOSTS, service=("ops", "modelops-webhook"), crds=names),
    )
    assert hook.patch_crds(bundle) == ["mine.example.io"]
    assert hook.patch_crds(bundle) == []  # already there: no write

    def config(name: str) -> dict:
        live = kube.live(CUSTOM_RESOURCE_DEFINITION, None, name)
        assert live is not None
        return live["spec"]["conversion"]["webhook"]["clientConfig"]

    assert "caBundle" in config("mine.example.io")
    assert "caBundle" not in config("theirs.example.io")
    assert "caBundle" not in config("url.example.io")

    # With --conversion-webhook-url (`make dev`), the operator takes every CRD it is
    # given over: its URL replaces the Service reference.
    outside = ConversionWebhook(
        kube,  # type: ignore[arg-type]
        WebhookOptions(
            "ops", "cert", HOSTS, url="https://127.0.0.1:19443/convert", crds=("mine.example.io",)
        ),
    )
    assert outside.patch_crds(bundle) == ["mine.example.io"]
    assert config("mine.example.io") == {
        "url": "https://127.0.0.1:19443/convert",
        "caBundle": config("mine.example.io")["caBundle"],
    }
