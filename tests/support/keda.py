"""KEDA, built from its Go module (hack/keda/build.sh), run as local processes.

What runs is upstream KEDA: its operator (the ScaledObject controller, which
owns the 0 <-> 1 step itself and creates an HPA for 1 <-> N) and its metrics
API server, registered as `v1beta1.external.metrics.k8s.io` through the API
server's aggregation layer so that the HPA controller in kube-controller-manager
reads KEDA's metrics the way it does in a real cluster. The release's own CRDs
are applied. What is local rather than in-cluster:

- both processes run here with the cluster's admin kubeconfig, not in pods
  with KEDA's service account (the local nodes are simulated and run nothing);
- certificates: one CA and one serving/client certificate made here, as KEDA's
  cert rotation would make them (its gRPC link between adapter and operator is
  mutual TLS; the aggregation layer checks the adapter against the CA bundle
  of the APIService);
- the adapter's Service has no pods: an EndpointSlice points at this machine's
  address, which the API server dials with aggregator routing on (a loopback
  address is refused by EndpointSlice validation).

The admission webhooks (cmd/webhooks) are not run: KEDA works without them,
they only reject invalid ScaledObjects earlier.
"""

from __future__ import annotations

import base64
import datetime
import ipaddress
import os
import signal
import socket
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from tests.support.cluster import REPO, Cluster, wait_for
from tests.support.operator import free_port

BUILD_SCRIPT = REPO / "hack" / "keda" / "build.sh"
NAMESPACE = "keda"
ADAPTER_SERVICE = "keda-metrics-apiserver"
OPERATOR_SERVICE = "keda-operator"
APISERVICE = "v1beta1.external.metrics.k8s.io"
NOT_CACHED = (
    "KEDA is not built: `make keda` builds it from its Go module (tens of minutes cold), "
    "after which these tests run"
)


@dataclass(frozen=True)
class KedaBuild:
    """A built KEDA: the two binaries and the release's CRDs."""

    root: Path

    @property
    def operator(self) -> Path:
        return self.root / "bin" / "keda"

    @property
    def adapter(self) -> Path:
        return self.root / "bin" / "keda-adapter"

    @property
    def crds(self) -> list[Path]:
        return sorted((self.root / "crd").glob("*.yaml"))

    @property
    def version(self) -> str:
        return (self.root / "VERSION").read_text().strip()


def cached_build() -> KedaBuild | None:
    """The cached KEDA build, or None when it has not been built (never builds)."""
    proc = subprocess.run(
        [str(BUILD_SCRIPT), "--cached"], capture_output=True, text=True, check=False
    )
    if proc.returncode != 0 or not proc.stdout.strip():
        return None
    return KedaBuild(Path(proc.stdout.strip().splitlines()[-1]))


def host_address() -> str:
    """This machine's address on its default route: what the API server can dial."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        # connect() on UDP sends nothing; it only picks the outgoing interface.
        s.connect(("192.0.2.1", 9))
        return s.getsockname()[0]


def write_certificates(directory: Path, hosts: list[str], ips: list[str]) -> bytes:
    """ca.crt, tls.crt and tls.key in ``directory`` (KEDA's file names); returns the CA PEM.

    One leaf serves both ends, as KEDA's own cert rotation does: the operator's
    gRPC server, the adapter's gRPC client certificate and the adapter's HTTPS.
    """
    directory.mkdir(parents=True, exist_ok=True)
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "modelops-test KEDA CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
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
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    names: list[x509.GeneralName] = [x509.DNSName(h) for h in hosts]
    names += [x509.IPAddress(ipaddress.ip_address(ip)) for ip in ips]
    leaf = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hosts[0])]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(
            x509.ExtendedKeyUsage(
                [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
            ),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    ca_pem = ca.public_bytes(serialization.Encoding.PEM)
    (directory / "ca.crt").write_bytes(ca_pem)
    (directory / "tls.crt").write_bytes(leaf.public_bytes(serialization.Encoding.PEM))
    (directory / "tls.key").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return ca_pem


@dataclass
class _Process:
    name: str
    argv: list[str]
    env: dict[str, str]
    log_path: Path
    proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            self.argv,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def alive(self) -> bool:
        if self.proc is None or self.proc.poll() is not None:
            raise AssertionError(f"{self.name} exited; log:\n{self.log_tail()}")
        return True

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)

    def log_tail(self, lines: int = 40) -> str:
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        return "\n".join(text.splitlines()[-lines:])


@dataclass
class Keda:
    """KEDA installed on ``cluster``: CRDs, operator and metrics API server.

    ``start()`` is what a `helm install keda` does, and ``stop()`` the
    uninstall, CRDs included, so the cluster is left as it was found.
    """

    cluster: Cluster
    build: KedaBuild
    work_dir: Path
    processes: list[_Process] = field(default_factory=list)
    started: bool = False
    adapter_port: int = 0

    def start(self) -> Keda:
        if self.started:
            return self
        self.started = True
        self._apply_crds()
        self._ensure_namespace()
        address = host_address()
        certs = self.work_dir / "certs"
        ca = write_certificates(
            certs,
            hosts=[
                f"{ADAPTER_SERVICE}.{NAMESPACE}.svc",
                f"{OPERATOR_SERVICE}.{NAMESPACE}.svc.cluster.local",
                "localhost",
            ],
            ips=["127.0.0.1", address],
        )
        grpc_port = free_port()
        env = dict(
            os.environ,
            KUBECONFIG=str(self.cluster.kubeconfig),
            WATCH_NAMESPACE="",
            POD_NAMESPACE=NAMESPACE,
            KEDA_CLUSTER_OBJECT_NAMESPACE=NAMESPACE,
        )
        kubeconfig = str(self.cluster.kubeconfig)
        operator = _Process(
            "keda operator",
            [
                str(self.build.operator),
                f"--kubeconfig={kubeconfig}",
                f"--cert-dir={certs}",
                f"--metrics-bind-address=127.0.0.1:{free_port()}",
                f"--health-probe-bind-address=127.0.0.1:{free_port()}",
                f"--metrics-service-bind-address=127.0.0.1:{grpc_port}",
                f"--ca-dir={certs}",
                "--zap-log-level=info",
            ],
            env,
            self.work_dir / "keda-operator.log",
        )
        self.processes.append(operator)
        operator.start()
        self.adapter_port = free_port()
        adapter = _Process(
            "keda metrics adapter",
            [
                str(self.build.adapter),
                f"--kubeconfig={kubeconfig}",
                f"--lister-kubeconfig={kubeconfig}",
                f"--authentication-kubeconfig={kubeconfig}",
                f"--authorization-kubeconfig={kubeconfig}",
                f"--secure-port={self.adapter_port}",
                f"--bind-address={address}",
                f"--cert-dir={certs}",
                f"--tls-cert-file={certs / 'tls.crt'}",
                f"--tls-private-key-file={certs / 'tls.key'}",
                f"--port={free_port()}",
                f"--metrics-service-address=127.0.0.1:{grpc_port}",
                "--zap-log-level=info",
            ],
            env,
            self.work_dir / "keda-adapter.log",
        )
        self.processes.append(adapter)
        adapter.start()
        self._register_apiservice(address, ca)
        return self

    def wait_available(self, timeout: float = 120) -> None:
        """Until the aggregation layer reports KEDA's metrics API available."""

        def available() -> bool:
            for p in self.processes:
                p.alive()
            obj = self.cluster.kubectl("get", "apiservice", APISERVICE, "-o", "yaml", check=False)
            if obj.returncode != 0:
                return False
            conds = (yaml.safe_load(obj.stdout).get("status") or {}).get("conditions") or []
            return any(c["type"] == "Available" and c["status"] == "True" for c in conds)

        wait_for(available, timeout=timeout, interval=1, what=f"APIService {APISERVICE} Available")

    def stop(self) -> None:
        if not self.started:
            return
        # Every ScaledObject carries KEDA's finalizer: KEDA must still run to
        # release them, or the CRDs (and the tests' namespaces) never go away.
        self.cluster.kubectl(
            "delete", "scaledobjects.keda.sh", "--all", "--all-namespaces", "--timeout=60s",
            check=False,
        )  # fmt: skip
        for p in reversed(self.processes):
            p.stop()
        self.processes.clear()
        self._release_leftovers()
        self.cluster.kubectl("delete", "apiservice", APISERVICE, "--ignore-not-found", check=False)
        for crd in self.build.crds:
            self.cluster.kubectl(
                "delete", "-f", str(crd), "--ignore-not-found", "--timeout=60s", check=False
            )
        self.cluster.kubectl(
            "delete", "namespace", NAMESPACE, "--ignore-not-found", "--wait=false", check=False
        )
        self.started = False

    def logs(self) -> str:
        return "\n".join(f"--- {p.name}\n{p.log_tail()}" for p in self.processes)

    def _release_leftovers(self) -> None:
        """Drop KEDA's finalizer from ScaledObjects that KEDA did not release in time
        (e.g. one the modelops operator re-created while its namespace was going)."""
        listed = self.cluster.kubectl(
            "get", "scaledobjects.keda.sh", "--all-namespaces", "-o", "json", check=False
        )
        if listed.returncode != 0:
            return
        for item in yaml.safe_load(listed.stdout).get("items", []):
            meta = item["metadata"]
            self.cluster.kubectl(
                "patch", "scaledobject", meta["name"], "-n", meta["namespace"],
                "--type=merge", "-p", '{"metadata":{"finalizers":null}}',
                check=False,
            )  # fmt: skip

    def _apply_crds(self) -> None:
        for crd in self.build.crds:
            self.cluster.kubectl("apply", "--server-side", "-f", str(crd))
        self.cluster.kubectl(
            "wait", "--for=condition=Established", "--timeout=60s",
            *(f"crd/{_crd_name(p)}" for p in self.build.crds),
        )  # fmt: skip

    def _ensure_namespace(self) -> None:
        namespace = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}}
        self.cluster.apply(namespace)

    def _register_apiservice(self, address: str, ca: bytes) -> None:
        port = self.adapter_port
        objects: list[dict[str, Any]] = [
            {
                "apiVersion": "v1",
                "kind": "Service",
                "metadata": {"name": ADAPTER_SERVICE, "namespace": NAMESPACE},
                # No selector: the endpoints are this machine, listed below.
                "spec": {"ports": [{"name": "https", "port": 443, "targetPort": port}]},
            },
            {
                "apiVersion": "discovery.k8s.io/v1",
                "kind": "EndpointSlice",
                "metadata": {
                    "name": f"{ADAPTER_SERVICE}-local",
                    "namespace": NAMESPACE,
                    "labels": {"kubernetes.io/service-name": ADAPTER_SERVICE},
                },
                "addressType": "IPv4",
                "ports": [{"name": "https", "port": port, "protocol": "TCP"}],
                "endpoints": [{"addresses": [address], "conditions": {"ready": True}}],
            },
            {
                "apiVersion": "apiregistration.k8s.io/v1",
                "kind": "APIService",
                "metadata": {"name": APISERVICE},
                "spec": {
                    "group": "external.metrics.k8s.io",
                    "version": "v1beta1",
                    "service": {"name": ADAPTER_SERVICE, "namespace": NAMESPACE, "port": 443},
                    "caBundle": base64.b64encode(ca).decode(),
                    "groupPriorityMinimum": 100,
                    "versionPriority": 100,
                },
            },
        ]
        for obj in objects:
            self.cluster.apply(obj)


def _crd_name(path: Path) -> str:
    return yaml.safe_load(path.read_text())["metadata"]["name"]
