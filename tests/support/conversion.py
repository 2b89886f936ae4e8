"""The shipped CRDs on a test cluster, with a conversion webhook the API server reaches.

crds/ serves v1alpha1 and v1beta1 (the storage version), converted by the
operator's webhook behind the Service modelops-system/modelops-webhook. The
tests run the operator on this host, not in a pod, and the local API server is
a process of this host too, so the harness serves the webhook here: the
package's own server (modelops.webhook.server) in a child process, with a CA
made for it, and installs crds/ with the clientConfig swapped for
`url: https://127.0.0.1:<port>/convert` and that CA. Everything else in the
CRDs is the shipped text.

One webhook per test process and cluster, started by the first `install_crds`
and stopped when the process exits (the child also dies with its parent). A
child process rather than a thread: every read the operator makes (it watches
v1alpha1, objects are stored as v1beta1) is converted, and a test busy in
Python must not hold those up.

MODELOPS_SINGLE_VERSION_CRDS=1 installs the v1alpha1-only CRDs instead (no
webhook), as before v1beta1 was shipped: a fallback for a fresh cluster only
(the API server refuses a v1alpha1-only CRD once objects were stored as
v1beta1), and the tests of v1beta1 itself then fail.

`route_service_to_host` is the other form, the chart's: the API server calls the
webhook through a Service, whose endpoint is an operator process on this host
(the chart's pods on KWOK's nodes run nothing).
"""

from __future__ import annotations

import atexit
import base64
import datetime as dt
import os
import socket
import ssl
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import kubernetes
import yaml

from modelops.api.crd import KINDS, build_crd
from modelops.webhook.certs import Bundle, renewed
from tests.support.cluster import REPO, Cluster, wait_for

CRDS = REPO / "crds"
SINGLE_VERSION_ENV = "MODELOPS_SINGLE_VERSION_CRDS"
# Where the API server dials the harness's webhook (another address for a cluster
# whose API server is not a process of this host).
HOST_ENV = "MODELOPS_TEST_WEBHOOK_HOST"

_SERVE = """
import signal, sys, threading
from modelops.webhook.server import ConversionServer
cert, key, host, port = sys.argv[1:5]
server = ConversionServer(host, int(port), open(cert).read(), open(key).read())
server.start()
print(server.port, flush=True)
signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
threading.Event().wait()
"""


def single_version() -> bool:
    return os.environ.get(SINGLE_VERSION_ENV) == "1"


@dataclass
class HostWebhook:
    """The conversion webhook server, a child process of this one."""

    proc: subprocess.Popen[str]
    bundle: Bundle
    url: str
    directory: tempfile.TemporaryDirectory[str]

    @classmethod
    def start(cls) -> HostWebhook:
        host = os.environ.get(HOST_ENV, "127.0.0.1")
        bundle = renewed(None, (host,), dt.datetime.now(dt.UTC))
        assert bundle is not None
        directory = tempfile.TemporaryDirectory(prefix="modelops-test-webhook-")
        cert, key = Path(directory.name) / "tls.crt", Path(directory.name) / "tls.key"
        cert.write_text(bundle.tls_cert)
        key.touch(mode=0o600)
        key.write_text(bundle.tls_key)
        from tests.support.operator import _die_with_parent

        proc = subprocess.Popen(
            [sys.executable, "-c", _SERVE, str(cert), str(key), host, "0"],
            stdout=subprocess.PIPE,
            text=True,
            preexec_fn=_die_with_parent,
        )
        assert proc.stdout is not None
        line = proc.stdout.readline().strip()
        if not line.isdigit():
            proc.kill()
            raise RuntimeError(f"the test conversion webhook did not start: {line!r}")
        hook = cls(proc, bundle, f"https://{host}:{line}/convert", directory)
        atexit.register(hook.stop)
        return hook

    def client_config(self) -> dict[str, str]:
        return {
            "url": self.url,
            "caBundle": base64.b64encode(self.bundle.ca_bundle.encode()).decode(),
        }

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        self.directory.cleanup()


_HOOKS: dict[Path, HostWebhook] = {}


def host_webhook(cluster: Cluster) -> HostWebhook:
    hook = _HOOKS.get(cluster.kubeconfig)
    if hook is None or hook.proc.poll() is not None:
        hook = _HOOKS[cluster.kubeconfig] = HostWebhook.start()
    return hook


def shipped_crds() -> list[dict]:
    """The CRDs of crds/, as shipped."""
    docs: list[dict] = []
    for path in sorted(CRDS.glob("*.yaml")):
        docs += [d for d in yaml.safe_load_all(path.read_text()) if d]
    return docs


def with_client_config(crd: dict, config: dict) -> dict:
    """`crd` with its conversion webhook reached through `config` instead."""
    crd = yaml.safe_load(yaml.safe_dump(crd))
    crd["spec"]["conversion"]["webhook"]["clientConfig"] = dict(config)
    return crd


def harness_crds(cluster: Cluster) -> list[dict]:
    """What `install_crds` installs: crds/ reached through the harness's webhook (or
    the v1alpha1-only CRDs, MODELOPS_SINGLE_VERSION_CRDS=1)."""
    if single_version():
        return [build_crd(kind) for kind in KINDS]
    config = host_webhook(cluster).client_config()
    return [with_client_config(crd, config) for crd in shipped_crds()]


def install_crds(cluster: Cluster, crds: list[dict] | None = None) -> None:
    """The modelops CRDs on `cluster` (`harness_crds`, or these variants of them), each
    replaced whole, Established; returns once the API server converts through them."""
    wanted = harness_crds(cluster) if crds is None else crds
    for crd in wanted:
        put_crd(cluster, crd)
    cluster.kubectl(
        "wait", "--for=condition=Established", "--timeout=60s",
        *(f"crd/{crd['metadata']['name']}" for crd in wanted),
    )  # fmt: skip
    if not single_version():
        wait_converting(cluster)


def put_crd(cluster: Cluster, crd: dict) -> None:
    """Create or replace (PUT) a CRD: the result is exactly `crd`, whoever wrote the
    one before (a chart release's server-side apply, another clientConfig)."""
    api = kubernetes.client.ApiextensionsV1Api(cluster.api_client)
    name = crd["metadata"]["name"]
    for _ in range(5):
        try:
            live = api.read_custom_resource_definition(name)
        except kubernetes.client.ApiException as err:
            if err.status != 404:
                raise
            api.create_custom_resource_definition(crd)
            return
        body = {
            **crd,
            "metadata": {**crd["metadata"], "resourceVersion": live.metadata.resource_version},
        }
        try:
            api.replace_custom_resource_definition(name, body)
            return
        except kubernetes.client.ApiException as err:
            if err.status != 409:
                raise
    raise AssertionError(f"CRD {name} kept changing while it was replaced")


def wait_converting(cluster: Cluster, timeout: float = 60) -> None:
    """Until the API server converts through the CRDs' webhook (it rebuilds its client
    for a CRD asynchronously after a clientConfig change)."""
    probe = {
        "apiVersion": "modelops.io/v1alpha1",
        "kind": "TrainingJob",
        "metadata": {"name": "conversion-probe"},
        "spec": {
            "dataset": {"uri": "synthetic://tabular?rows=10"},
            "output": {"storageUri": "s3://models/probe"},
        },
    }

    def converts() -> bool:
        try:
            cluster.custom.create_namespaced_custom_object(
                "modelops.io", "v1alpha1", "default", "trainingjobs", probe, dry_run="All"
            )
        except kubernetes.client.ApiException:
            return False
        return True

    wait_for(
        converts, timeout=timeout, interval=0.3, what="the API server converting modelops objects"
    )


# -- the Service form ----------------------------------------------------------------


def host_address() -> str:
    """This host's first non-loopback IPv4 address (the API server refuses loopback
    endpoints), as hack/cluster/cluster.sh finds it for metrics-server."""
    proc = subprocess.run(
        ["ip", "-4", "-o", "addr", "show", "scope", "global"], capture_output=True, text=True
    )
    for line in proc.stdout.splitlines():
        fields = line.split()
        if "inet" in fields:
            return fields[fields.index("inet") + 1].split("/")[0]
    raise AssertionError("no non-loopback IPv4 address for the API server to reach")


def route_service_to_host(cluster: Cluster, namespace: str, service: str, ports: list[int]) -> None:
    """Endpoints of `service` (port name `webhook`) at this host, one per port: the
    operator processes that stand in for its pods. The pods of KWOK's nodes must not
    be endpoints too (scale their Deployment to 0)."""
    address = host_address()
    for i, port in enumerate(ports):
        cluster.apply(
            {
                "apiVersion": "discovery.k8s.io/v1",
                "kind": "EndpointSlice",
                "metadata": {
                    "name": f"{service}-host-{i}",
                    "namespace": namespace,
                    "labels": {"kubernetes.io/service-name": service},
                },
                "addressType": "IPv4",
                "ports": [{"name": "webhook", "port": port, "protocol": "TCP"}],
                "endpoints": [{"addresses": [address], "conditions": {"ready": True}}],
            }
        )


def use_service(cluster: Cluster, namespace: str, service: str) -> None:
    """The session's CRDs converted through `service` (the chart's form) instead of the
    harness's URL, without a caBundle: the operator behind the Service patches in its
    own. `install_crds` goes back."""
    config = {"service": {"namespace": namespace, "name": service, "path": "/convert", "port": 443}}
    for crd in shipped_crds():
        put_crd(cluster, with_client_config(crd, config))


def convert_directly(port: int, server_name: str, ca_pem: str, address: str = "127.0.0.1") -> dict:
    """A ConversionReview sent to one webhook replica (not through the Service),
    verified against `ca_pem` under the Service's name: that replica answers."""
    import http.client
    import json

    context = ssl.create_default_context(cadata=ca_pem)
    review = {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "ConversionReview",
        "request": {
            "uid": "direct",
            "desiredAPIVersion": "modelops.io/v1beta1",
            "objects": [
                {
                    "apiVersion": "modelops.io/v1alpha1",
                    "kind": "TrainingJob",
                    "metadata": {"name": "direct"},
                    "spec": {"activeDeadlineSeconds": 7200},
                }
            ],
        },
    }
    deadline = time.monotonic() + 30
    while True:
        try:
            sock = socket.create_connection((address, port), timeout=5)
            break
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.3)
    conn = http.client.HTTPSConnection(server_name, port, context=context, timeout=10)
    conn.sock = context.wrap_socket(sock, server_hostname=server_name)
    conn.request("POST", "/convert", json.dumps(review), {"Content-Type": "application/json"})
    return json.loads(conn.getresponse().read())
