"""The conversion webhook's certificates: a self-signed CA and a serving certificate.

Pure (no I/O, the clock passed in): what to keep in the Secret and when to
renew. The operator makes both itself so that no cert-manager is needed: the
CA signs the serving certificate, and the CA alone goes into the CRD's
spec.conversion.webhook.clientConfig.caBundle.

Rotation without an outage: the serving certificate is renewed at two thirds
of its life (signed by the same CA, so nothing changes for the API server).
The CA is renewed at two thirds of its own; until the old CA expires the
caBundle carries both, so a server still presenting a certificate of the old
CA (another replica that has not reloaded yet) stays trusted.
"""

from __future__ import annotations

import base64
import datetime as dt
import ipaddress
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

CA_LIFETIME = dt.timedelta(days=3650)
SERVING_LIFETIME = dt.timedelta(days=90)
# Renew when this share of the lifetime has passed.
RENEW_AT = 2 / 3
# Clocks of the API server and the operator may disagree a little.
BACKDATE = dt.timedelta(minutes=5)

# Secret keys: the usual kubernetes.io/tls pair plus the CA.
TLS_CERT = "tls.crt"
TLS_KEY = "tls.key"
CA_CERT = "ca.crt"  # the current CA, then any previous one still valid (the bundle)
CA_KEY = "ca.key"
KEYS = (TLS_CERT, TLS_KEY, CA_CERT, CA_KEY)


@dataclass(frozen=True)
class Bundle:
    """PEM texts of the CA (certificates: current first, then a previous one) and the
    serving pair."""

    ca_certs: str
    ca_key: str
    tls_cert: str
    tls_key: str

    @property
    def ca_bundle(self) -> str:
        """What the CRD's caBundle holds (PEM, before base64)."""
        return self.ca_certs

    def to_secret_data(self) -> dict[str, str]:
        """The Secret's data (base64)."""
        values = {
            CA_CERT: self.ca_certs,
            CA_KEY: self.ca_key,
            TLS_CERT: self.tls_cert,
            TLS_KEY: self.tls_key,
        }
        return {k: base64.b64encode(v.encode()).decode() for k, v in values.items()}

    @classmethod
    def from_secret_data(cls, data: Mapping[str, str] | None) -> Bundle | None:
        """The bundle a Secret holds, or None when it lacks a key or does not parse."""
        if not data or any(k not in data for k in KEYS):
            return None
        try:
            text = {k: base64.b64decode(data[k], validate=True).decode() for k in KEYS}
            bundle = cls(text[CA_CERT], text[CA_KEY], text[TLS_CERT], text[TLS_KEY])
            _certs(bundle.ca_certs)
            _certs(bundle.tls_cert)
            serialization.load_pem_private_key(bundle.ca_key.encode(), None)
            serialization.load_pem_private_key(bundle.tls_key.encode(), None)
        except ValueError:
            return None
        return bundle


def _certs(pem: str) -> list[x509.Certificate]:
    certs = x509.load_pem_x509_certificates(pem.encode())
    if not certs:
        raise ValueError("no certificate")
    return certs


def _key_pem(key: ec.EllipticCurvePrivateKey) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()


def _cert_pem(cert: x509.Certificate) -> str:
    return cert.public_bytes(serialization.Encoding.PEM).decode()


def _ca(now: dt.datetime) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name(
        [x509.NameAttribute(NameOID.COMMON_NAME, f"modelops-webhook-ca-{now:%Y%m%d%H%M%S}")]
    )
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - BACKDATE)
        .not_valid_after(now + CA_LIFETIME)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .sign(key, hashes.SHA256())
    )
    return cert, key


def _serving(
    ca: x509.Certificate,
    ca_key: ec.EllipticCurvePrivateKey,
    hosts: Sequence[str],
    now: dt.datetime,
) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    names: list[x509.GeneralName] = []
    for host in hosts:
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            names.append(x509.DNSName(host))
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hosts[0])]))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - BACKDATE)
        .not_valid_after(now + SERVING_LIFETIME)
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    return cert, key


def _due(cert: x509.Certificate, now: dt.datetime) -> bool:
    """Past two thirds of its life, or not valid yet (a clock that was wrong when it was
    made, a Secret restored from elsewhere)."""
    start, end = cert.not_valid_before_utc, cert.not_valid_after_utc
    return now < start or now >= start + (end - start) * RENEW_AT


def _hosts_of(cert: x509.Certificate) -> set[str]:
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return set()
    return {str(n) for n in san.get_values_for_type(x509.DNSName)} | {
        str(n) for n in san.get_values_for_type(x509.IPAddress)
    }


def renewed(current: Bundle | None, hosts: Sequence[str], now: dt.datetime) -> Bundle | None:
    """The bundle to store instead of `current`, or None when `current` is still good.

    `hosts`: the DNS names (e.g. the Service's <name>.<namespace>.svc) and IP
    addresses the API server reaches the webhook by.
    """
    if not hosts:
        raise ValueError("the serving certificate needs at least one host")
    if current is None:
        ca, ca_key = _ca(now)
        cert, key = _serving(ca, ca_key, hosts, now)
        return Bundle(_cert_pem(ca), _key_pem(ca_key), _cert_pem(cert), _key_pem(key))
    cas = _certs(current.ca_certs)
    ca = cas[0]
    ca_key = serialization.load_pem_private_key(current.ca_key.encode(), None)
    if not isinstance(ca_key, ec.EllipticCurvePrivateKey):
        return renewed(None, hosts, now)
    serving = _certs(current.tls_cert)[0]
    new_ca = _due(ca, now)
    if new_ca:
        ca, ca_key = _ca(now)
    elif not (
        _due(serving, now) or _hosts_of(serving) != set(hosts) or serving.issuer != ca.subject
    ):
        return None
    cert, key = _serving(ca, ca_key, hosts, now)
    # The bundle: the current CA, then the CAs before it that are still valid.
    keep = [c for c in cas if c.not_valid_after_utc > now and c.subject != ca.subject]
    ca_pem = "".join(_cert_pem(c) for c in [ca, *keep[:1]])
    return Bundle(ca_pem, _key_pem(ca_key), _cert_pem(cert), _key_pem(key))
