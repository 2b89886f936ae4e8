"""The conversion webhook the operator serves, with the real API server calling it.

The kinds are installed under a group of their own per test
(<random>.conversion.modelops.io): breaking this group's webhook on purpose
(the migration test does) touches nobody else. The last test uses the shipped
CRDs of crds/ themselves, as the whole session does (tests/support/conversion.py).
The webhook is the operator's own code (controllers/conversion.py: certificate in a Secret, caBundle
patched into the CRDs, HTTPS server), run in this process on 127.0.0.1 where
the local kube-apiserver reaches it by URL; in a cluster the chart's Service
takes the URL's place.
"""

from __future__ import annotations

import base64
import copy
import datetime as dt
import uuid
from collections.abc import Iterator

import kubernetes
import pytest
import yaml

from modelops.api import constants as c
from modelops.api import conversion as cv
from modelops.api.crd import MODEL_DEPLOYMENT, TRAINING_JOB, build_crd, build_versioned_crd
from modelops.controllers.conversion import ConversionWebhook, WebhookOptions
from modelops.controllers.storage_migration import migrate
from modelops.kube import Kube
from modelops.webhook.certs import _certs
from tests.support.cluster import Cluster, fresh_namespace, wait_for
from tests.support.conversion import install_crds, shipped_crds
from tests.support.operator import OperatorProcess, free_port, install

pytestmark = pytest.mark.cluster

KINDS = (MODEL_DEPLOYMENT, TRAINING_JOB)
DEAD_URL = "https://127.0.0.1:1/convert"  # nothing listens on port 1


class Group:
    """A group with the modelops kinds, served through the test's webhook."""

    def __init__(self, cluster: Cluster, webhook: ConversionWebhook | None, url: str) -> None:
        self.cluster = cluster
        self.webhook = webhook
        self.url = url
        self.name = f"g{uuid.uuid4().hex[:8]}.conversion.modelops.io"
        self.crd_names = tuple(f"{k.plural}.{self.name}" for k in KINDS)

    def install_v1alpha1_only(self) -> None:
        for kind in KINDS:
            crd = build_crd(kind)
            crd["metadata"]["name"] = f"{kind.plural}.{self.name}"
            crd["spec"]["group"] = self.name
            self._apply(crd)

    def install_versioned(self) -> None:
        for kind in KINDS:
            self._apply(build_versioned_crd(kind, {"url": self.url}, group=self.name))
        if self.webhook is None:
            return  # an operator process patches the caBundle itself
        # What the operator does at start-up and on every refresh.
        self.webhook.options = WebhookOptions(
            **{**self.webhook.options.__dict__, "crds": self.crd_names}
        )
        assert self.webhook.bundle is not None
        self.webhook.patch_crds(self.webhook.bundle)

    def _apply(self, crd: dict) -> None:
        self.cluster.kubectl(
            "apply", "--server-side", "--force-conflicts", "-f", "-", input=yaml.safe_dump(crd)
        )

        def established() -> bool:
            conditions = (
                self.crd_named(crd["metadata"]["name"]).get("status", {}).get("conditions") or []
            )
            return any(x["type"] == "Established" and x["status"] == "True" for x in conditions)

        wait_for(established, timeout=60, what=f"{crd['metadata']['name']} Established")

    def set_url(self, url: str) -> None:
        for name in self.crd_names:
            self.cluster.kubectl(
                "patch",
                "crd",
                name,
                "--type=merge",
                "-p",
                f'{{"spec":{{"conversion":{{"webhook":{{"clientConfig":{{"url":"{url}"}}}}}}}}}}',
            )

    def crd(self, kind) -> dict:
        return self.crd_named(f"{kind.plural}.{self.name}")

    def crd_named(self, name: str) -> dict:
        api = kubernetes.client.ApiextensionsV1Api(self.cluster.api_client)
        return self.cluster.api_client.sanitize_for_serialization(
            api.read_custom_resource_definition(name)
        )

    # -- objects at a version --

    def create(self, obj: dict, version: str, namespace: str) -> dict:
        kind = MODEL_DEPLOYMENT if obj["kind"] == c.MD_KIND else TRAINING_JOB
        body = {**copy.deepcopy(obj), "apiVersion": f"{self.name}/{version}"}
        return self.cluster.custom.create_namespaced_custom_object(
            self.name, version, namespace, kind.plural, body
        )

    def get(self, kind, name: str, version: str, namespace: str) -> dict:
        return self.cluster.custom.get_namespaced_custom_object(
            self.name, version, namespace, kind.plural, name
        )

    def replace(self, obj: dict, version: str, namespace: str) -> dict:
        kind = MODEL_DEPLOYMENT if obj["kind"] == c.MD_KIND else TRAINING_JOB
        return self.cluster.custom.replace_namespaced_custom_object(
            self.name, version, namespace, kind.plural, obj["metadata"]["name"], obj
        )

    def delete(self) -> None:
        for name in self.crd_names:
            self.cluster.kubectl("delete", "crd", name, "--ignore-not-found", "--wait=false")


@pytest.fixture(scope="module")
def webhook(cluster: Cluster) -> Iterator[tuple[ConversionWebhook, str]]:
    namespaces = fresh_namespace(cluster)
    secret_namespace = next(namespaces)
    port = free_port()
    hook = ConversionWebhook(
        Kube(cluster.api_client),
        WebhookOptions(
            secret_namespace=secret_namespace,
            secret_name="modelops-conversion-webhook",
            hosts=("127.0.0.1",),
            port=port,
            bind="127.0.0.1",
            crds=(),
        ),
    )
    hook.start()
    try:
        yield hook, f"https://127.0.0.1:{port}/convert"
    finally:
        hook.stop()
        next(namespaces, None)


@pytest.fixture
def group(cluster: Cluster, webhook) -> Iterator[Group]:
    g = Group(cluster, *webhook)
    try:
        yield g
    finally:
        g.delete()


def md_v1alpha1(name: str) -> dict:
    return {
        "apiVersion": f"{c.GROUP}/v1alpha1",
        "kind": c.MD_KIND,
        "metadata": {"name": name},
        "spec": {
            "model": {"storageUri": "s3://models/fraud", "format": "torchscript"},
            "runtime": {"maxBatchSize": 8, "dynamicBatching": {"maxQueueDelayMicroseconds": 250}},
            "autoscaling": {
                "engine": "keda",
                "minReplicas": 0,
                "maxReplicas": 4,
                "metric": {"type": "queue-time", "target": 5000},
                "cooldownSeconds": 120,
            },
            "rollout": {"surgeTimeoutSeconds": 90},
            "driftMonitor": {
                "enabled": True,
                "method": "psi",
                "reference": {"uri": "s3://models/fraud/reference.npz"},
            },
        },
    }


def tj_v1alpha1(name: str) -> dict:
    return {
        "apiVersion": f"{c.GROUP}/v1alpha1",
        "kind": c.TJ_KIND,
        "metadata": {"name": name},
        "spec": {
            "dataset": {"uri": "synthetic://tabular?rows=100"},
            "output": {"storageUri": "s3://models/fraud"},
            "activeDeadlineSeconds": 7200,
            "ttlSecondsAfterFinished": 600,
        },
    }


def ready(group: Group, namespace: str) -> None:
    """Until the API server trusts the webhook's certificate (the CRD's caBundle was
    just patched; its conversion client is rebuilt from the CRD asynchronously)."""

    def converts() -> bool:
        try:
            group.cluster.custom.create_namespaced_custom_object(
                group.name,
                "v1alpha1",
                namespace,
                "trainingjobs",
                {**tj_v1alpha1("probe"), "apiVersion": f"{group.name}/v1alpha1"},
                dry_run="All",
            )
        except kubernetes.client.ApiException:
            return False
        return True

    wait_for(converts, timeout=60, what="the API server converting through the webhook")


def test_v1alpha1_objects_read_as_v1beta1_and_back(group: Group, namespace: str):
    group.install_versioned()
    ready(group, namespace)

    created = group.create(md_v1alpha1("fraud"), "v1alpha1", namespace)
    beta = group.get(MODEL_DEPLOYMENT, "fraud", "v1beta1", namespace)
    spec = beta["spec"]
    assert spec["model"]["format"] == "TorchScript"
    assert spec["runtime"]["dynamicBatching"] == {"maxQueueDelay": "250us"}
    assert spec["autoscaling"]["engine"] == "KEDA"
    assert spec["autoscaling"]["metric"]["type"] == "QueueTime"
    assert spec["autoscaling"]["cooldown"] == "2m"
    assert spec["rollout"]["surgeTimeout"] == spec["rollout"]["schedulingTimeout"] == "1m30s"
    assert spec["driftMonitor"]["method"] == "PSI"
    # Stored as v1beta1 and read back as v1alpha1: what was created, unchanged.
    again = group.get(MODEL_DEPLOYMENT, "fraud", "v1alpha1", namespace)
    assert again["spec"] == created["spec"]
    assert "annotations" not in again["metadata"]

    # The status converts too: servedVersion (a string) <-> servedVersions (a list).
    group.cluster.custom.patch_namespaced_custom_object_status(
        group.name,
        "v1alpha1",
        namespace,
        "modeldeployments",
        "fraud",
        {"status": {"servedVersion": "3,4"}},
    )
    status = group.get(MODEL_DEPLOYMENT, "fraud", "v1beta1", namespace)["status"]
    assert status["servedVersions"] == [{"version": "3"}, {"version": "4"}]
    assert group.get(MODEL_DEPLOYMENT, "fraud", "v1alpha1", namespace)["status"] == {
        "servedVersion": "3,4"
    }

    tj = group.create(tj_v1alpha1("train"), "v1alpha1", namespace)
    tj_beta = group.get(TRAINING_JOB, "train", "v1beta1", namespace)["spec"]
    assert (tj_beta["activeDeadline"], tj_beta["ttlAfterFinished"]) == ("2h", "10m")
    assert group.get(TRAINING_JOB, "train", "v1alpha1", namespace)["spec"] == tj["spec"]

    # kubectl's printer column reads the list (its first entry: columns print one value).
    table = group.cluster.kubectl(
        "get",
        f"modeldeployments.{group.name}",
        "-n",
        namespace,
        "fraud",
        "-o",
        "custom-columns=VERSION:.status.servedVersions[*].version",
    ).stdout
    assert "3,4" in table
    row = group.cluster.kubectl(
        "get", f"modeldeployments.{group.name}", "-n", namespace, "fraud", "--no-headers"
    ).stdout.split()
    assert row[1:2] == ["3"]


def test_v1beta1_only_fields_survive_a_v1alpha1_client(group: Group, namespace: str):
    group.install_versioned()
    ready(group, namespace)
    beta_spec = {
        "model": {"storageUri": "s3://models/fraud"},
        "resources": {"cpu": "2", "cpuLimit": "6"},
        "rollout": {"surgeTimeout": "1m", "schedulingTimeout": "15m"},
        "imagePullSecrets": [{"name": "regcred"}],
        "podMetadata": {"labels": {"team": "fraud"}},
        "volumes": [{"name": "cache", "emptyDir": {"medium": "Memory"}}],
        "runtime": {"volumeMounts": [{"name": "cache", "mountPath": "/cache"}]},
        "scheduling": {
            "topologySpreadConstraints": [
                {
                    "maxSkew": 1,
                    "topologyKey": "topology.kubernetes.io/zone",
                    "whenUnsatisfiable": "ScheduleAnyway",
                }
            ]
        },
    }
    group.create(
        {"kind": c.MD_KIND, "metadata": {"name": "fraud"}, "spec": beta_spec}, "v1beta1", namespace
    )
    alpha = group.get(MODEL_DEPLOYMENT, "fraud", "v1alpha1", namespace)
    assert "imagePullSecrets" not in alpha["spec"]
    assert alpha["spec"]["rollout"]["surgeTimeoutSeconds"] == 60
    assert cv.BETA_FIELDS in alpha["metadata"]["annotations"]

    # A v1alpha1 client (an old GitOps tool, kubectl edit) writes it back with a change.
    alpha["spec"]["replicas"] = 3
    group.replace(alpha, "v1alpha1", namespace)
    beta = group.get(MODEL_DEPLOYMENT, "fraud", "v1beta1", namespace)
    assert beta["spec"]["replicas"] == 3
    for key in ("imagePullSecrets", "podMetadata", "volumes"):
        assert beta["spec"][key] == beta_spec[key]
    assert beta["spec"]["resources"]["cpuLimit"] == "6"
    assert beta["spec"]["rollout"]["schedulingTimeout"] == "15m"
    assert beta["spec"]["runtime"]["volumeMounts"] == beta_spec["runtime"]["volumeMounts"]
    assert cv.ALPHA_FIELDS not in (beta["metadata"].get("annotations") or {})

    # v1beta1 refuses at the door what v1alpha1 never could say wrong.
    with pytest.raises(kubernetes.client.ApiException) as refused:
        group.create(
            {
                "kind": c.MD_KIND,
                "metadata": {"name": "bad"},
                "spec": {
                    "model": {"storageUri": "s3://m/x"},
                    "volumes": [{"name": "root", "hostPath": {"path": "/"}}],
                },
            },
            "v1beta1",
            namespace,
        )
    assert "volume needs exactly one source" in refused.value.body


def test_certificate_rotation_keeps_conversion_working(
    group: Group, namespace: str, webhook, cluster: Cluster
):
    hook, _ = webhook
    group.install_versioned()
    ready(group, namespace)
    group.create(md_v1alpha1("fraud"), "v1alpha1", namespace)
    first = hook.bundle
    assert first is not None
    now = dt.datetime.now(dt.UTC)
    try:
        # The serving certificate at 2/3 of its life: renewed under the same CA.
        hook.clock = lambda: now + dt.timedelta(days=61)
        assert hook.refresh()
        assert hook.bundle.ca_certs == first.ca_certs and hook.bundle.tls_cert != first.tls_cert
        assert group.get(MODEL_DEPLOYMENT, "fraud", "v1beta1", namespace)["spec"]["rollout"]
        # The CA at 2/3 of its life: a new CA, the old one kept in the bundle while valid.
        hook.clock = lambda: now + dt.timedelta(days=2500)
        assert hook.refresh()
        cas = _certs(hook.bundle.ca_certs)
        assert len(cas) == 2 and cas[1].subject == _certs(first.ca_certs)[0].subject
        for name in group.crd_names:
            config = cluster.kubectl(
                "get",
                "crd",
                name,
                "-o",
                "jsonpath={.spec.conversion.webhook.clientConfig.caBundle}",
            ).stdout
            assert base64.b64decode(config).decode() == hook.bundle.ca_certs

        def converts() -> bool:
            try:
                return bool(group.get(MODEL_DEPLOYMENT, "fraud", "v1beta1", namespace))
            except kubernetes.client.ApiException:
                return False

        wait_for(converts, timeout=60, what="conversion with the rotated CA")
    finally:
        # Back to today: the certificates made "in the future" are not valid yet, so
        # they are renewed at once (what a clock corrected backwards needs too).
        hook.clock = lambda: dt.datetime.now(dt.UTC)
        assert hook.refresh()


def test_storage_version_migration(group: Group, namespace: str, webhook):
    _, url = webhook
    # Before the upgrade: v1alpha1 only, objects stored as v1alpha1.
    group.install_v1alpha1_only()
    group.create(md_v1alpha1("fraud"), "v1alpha1", namespace)
    group.create(tj_v1alpha1("train"), "v1alpha1", namespace)

    # The upgrade: v1beta1 served and the storage version, converted by the webhook.
    group.install_versioned()
    ready(group, namespace)
    for kind in KINDS:
        assert group.crd(kind)["status"]["storedVersions"] == ["v1alpha1", "v1beta1"]

    def broken_webhook_shows(kind, name, version: str, ok: bool) -> bool:
        try:
            group.get(kind, name, version, namespace)
        except kubernetes.client.ApiException:
            return not ok
        return ok

    # Still stored as v1alpha1: reading them as v1beta1 needs the webhook.
    group.set_url(DEAD_URL)
    for kind, name in ((MODEL_DEPLOYMENT, "fraud"), (TRAINING_JOB, "train")):
        wait_for(
            lambda kind=kind, name=name: broken_webhook_shows(kind, name, "v1beta1", ok=False),
            timeout=60,
            what=f"{name} read as v1beta1 failing without the webhook",
        )
    group.set_url(url)
    ready(group, namespace)

    kube = Kube(group.cluster.api_client)
    results = [migrate(kube, name) for name in group.crd_names]
    assert [r.objects for r in results] == [1, 1]
    for kind in KINDS:
        assert group.crd(kind)["status"]["storedVersions"] == ["v1beta1"]
    assert migrate(kube, group.crd_names[0]).objects == 0  # done: nothing to do again

    # Now stored as v1beta1: read as v1beta1 without the webhook, and the v1beta1 form.
    group.set_url(DEAD_URL)
    wait_for(
        lambda: broken_webhook_shows(MODEL_DEPLOYMENT, "fraud", "v1alpha1", ok=False),
        timeout=60,
        what="the broken webhook taking effect",
    )
    md = group.get(MODEL_DEPLOYMENT, "fraud", "v1beta1", namespace)
    assert md["spec"]["rollout"]["surgeTimeout"] == "1m30s"
    assert md["spec"]["autoscaling"]["engine"] == "KEDA"
    tj = group.get(TRAINING_JOB, "train", "v1beta1", namespace)
    assert tj["spec"]["activeDeadline"] == "2h"
    group.set_url(url)


def _documented_objects() -> list[dict]:
    """Every ModelDeployment and TrainingJob of the samples and the docs (fragments
    merged into the smallest valid object, as the docs sweep applies them)."""
    from tests.docs.blocks import BASES, SAMPLES, all_blocks, is_object
    from tests.integration.invalid_modeldeployments import merge_patch

    out = []
    for path in SAMPLES:
        out += [d for d in yaml.safe_load_all(path.read_text()) if is_object(d)]
    for block in all_blocks():
        if block.marker and block.marker[0] == "not-applied":
            continue
        kind = block.fragment_kind
        for doc in block.documents():
            if kind in (c.MD_KIND, c.TJ_KIND) and not block.is_status:
                out.append(merge_patch(BASES[kind], doc))
            elif kind is None and is_object(doc):
                out.append(doc)
    return [
        o for o in out if o["kind"] in (c.MD_KIND, c.TJ_KIND) and o["apiVersion"] == c.API_VERSION
    ]


def test_every_documented_object_converts_on_the_api_server(group: Group, namespace: str):
    """Create each as v1alpha1, read it as v1beta1 (which must itself be a valid v1beta1
    object: it is created again through v1beta1, under the v1beta1 schema and CEL rules),
    and read it back as v1alpha1 unchanged."""
    group.install_versioned()
    ready(group, namespace)
    objects = _documented_objects()
    assert len(objects) >= 5, "the samples and docs hold more objects than that"
    for i, obj in enumerate(objects):
        kind = MODEL_DEPLOYMENT if obj["kind"] == c.MD_KIND else TRAINING_JOB
        name = f"doc-{i}"
        body = {**copy.deepcopy(obj), "metadata": {"name": name}}
        created = group.create(body, "v1alpha1", namespace)
        beta = group.get(kind, name, "v1beta1", namespace)
        again = group.create(
            {"kind": obj["kind"], "metadata": {"name": f"{name}-b"}, "spec": beta["spec"]},
            "v1beta1",
            namespace,
        )
        assert again["spec"] == beta["spec"], f"object {i}: v1beta1 defaults differ"
        back = group.get(kind, name, "v1alpha1", namespace)
        assert back["spec"] == created["spec"], f"object {i} changed on the way back"
        assert "annotations" not in back["metadata"], f"object {i}"


def test_the_operator_process_serves_the_webhook_and_migrates_at_start(
    cluster: Cluster, namespace: str, tmp_path
):
    """`modelops run` as deployed, but on the host: it makes its certificate in a Secret
    of its namespace, patches the caBundle (and URL) into the CRDs it is told about, and
    rewrites the objects stored as v1alpha1 before the upgrade."""
    port = free_port()
    url = f"https://127.0.0.1:{port}/convert"
    group = Group(cluster, None, url)
    try:
        group.install_v1alpha1_only()
        group.create(md_v1alpha1("fraud"), "v1alpha1", namespace)
        group.create(tj_v1alpha1("train"), "v1alpha1", namespace)
        group.install_versioned()
        crd_args = [a for name in group.crd_names for a in ("--conversion-webhook-crd", name)]
        op = OperatorProcess(
            kubeconfig=cluster.kubeconfig,
            log_path=tmp_path / "operator.log",
            extra_env={"POD_NAMESPACE": namespace},
            args=[
                "--standalone", "--namespace", namespace,
                "--conversion-webhook-port", str(port),
                "--conversion-webhook-host", "127.0.0.1",
                "--conversion-webhook-url", url,
                *crd_args,
            ],
        ).start()  # fmt: skip
        try:

            def migrated() -> bool:
                return all(group.crd(k)["status"]["storedVersions"] == ["v1beta1"] for k in KINDS)

            wait_for(migrated, timeout=120, what=f"the migration; log:\n{op.log_tail()}")
            secret = cluster.core.read_namespaced_secret("modelops-webhook-cert", namespace)
            ca = base64.b64decode(secret.data["ca.crt"]).decode()
            for kind in KINDS:
                config = group.crd(kind)["spec"]["conversion"]["webhook"]["clientConfig"]
                assert base64.b64decode(config["caBundle"]).decode() == ca
            md = group.get(MODEL_DEPLOYMENT, "fraud", "v1beta1", namespace)
            assert md["spec"]["autoscaling"]["engine"] == "KEDA"
            assert (
                group.get(TRAINING_JOB, "train", "v1beta1", namespace)["spec"]["activeDeadline"]
                == "2h"
            )
        finally:
            op.stop()
    finally:
        group.delete()


def test_the_shipped_crds_store_v1alpha1_writes_as_v1beta1(cluster: Cluster, namespace: str):
    """crds/ as installed for every test (only the clientConfig swapped for the
    harness's URL): a v1alpha1 write is stored as v1beta1 and reads back unchanged
    through both versions."""
    install(cluster)
    api = kubernetes.client.ApiextensionsV1Api(cluster.api_client)
    shipped = {crd["metadata"]["name"]: crd for crd in shipped_crds()}
    for name, crd in shipped.items():
        live = cluster.api_client.sanitize_for_serialization(
            api.read_custom_resource_definition(name)
        )
        assert live["spec"]["versions"] == crd["spec"]["versions"], name
        assert live["spec"]["conversion"]["strategy"] == "Webhook"
        assert "url" in live["spec"]["conversion"]["webhook"]["clientConfig"]

    def create(obj: dict) -> dict:
        kind = MODEL_DEPLOYMENT if obj["kind"] == c.MD_KIND else TRAINING_JOB
        return cluster.custom.create_namespaced_custom_object(
            c.GROUP, "v1alpha1", namespace, kind.plural, obj
        )

    def get(kind, name: str, version: str) -> dict:
        return cluster.custom.get_namespaced_custom_object(
            c.GROUP, version, namespace, kind.plural, name
        )

    md, tj = create(md_v1alpha1("fraud")), create(tj_v1alpha1("train"))
    assert get(MODEL_DEPLOYMENT, "fraud", "v1alpha1")["spec"] == md["spec"]
    assert get(TRAINING_JOB, "train", "v1alpha1")["spec"] == tj["spec"]
    assert get(MODEL_DEPLOYMENT, "fraud", "v1beta1")["spec"]["autoscaling"]["engine"] == "KEDA"

    # Stored as v1beta1: with the webhook unreachable, v1beta1 reads still work (no
    # conversion from storage), v1alpha1 reads do not.
    try:
        for name in shipped:
            cluster.kubectl(
                "patch", "crd", name, "--type=merge", "-p",
                f'{{"spec":{{"conversion":{{"webhook":{{"clientConfig":{{"url":"{DEAD_URL}"}}}}}}}}}}',
            )  # fmt: skip

        def alpha_fails() -> bool:
            try:
                get(MODEL_DEPLOYMENT, "fraud", "v1alpha1")
            except kubernetes.client.ApiException:
                return True
            return False

        wait_for(alpha_fails, timeout=60, what="the dead webhook taking effect")
        assert get(MODEL_DEPLOYMENT, "fraud", "v1beta1")["spec"]["rollout"]["surgeTimeout"] == (
            "1m30s"
        )
        assert get(TRAINING_JOB, "train", "v1beta1")["spec"]["activeDeadline"] == "2h"
    finally:
        install_crds(cluster)  # the harness's URL back, for the rest of the session
    assert get(TRAINING_JOB, "train", "v1alpha1")["spec"] == tj["spec"]


def test_the_evidence_still_needed_is_kept_by_both_versions(cluster: Cluster, namespace: str):
    """What a pending analysis writes (render/gating/decide.py): about how many more
    requests and how long at the rate so far. The schema must keep both, through
    either version, or status would not say what the docs promise."""
    install(cluster)
    plural = MODEL_DEPLOYMENT.plural
    cluster.custom.create_namespaced_custom_object(
        c.GROUP, "v1alpha1", namespace, plural, md_v1alpha1("pending")
    )
    analysis = {"requestsNeeded": 331, "etaSeconds": 113, "verdict": "latency: waiting"}
    cluster.custom.patch_namespaced_custom_object_status(
        c.GROUP, "v1alpha1", namespace, plural, "pending",
        {"status": {"rollout": {"phase": "Shadow", "candidate": "2", "analysis": analysis}}},
    )  # fmt: skip
    for version in ("v1alpha1", "v1beta1"):
        got = cluster.custom.get_namespaced_custom_object(
            c.GROUP, version, namespace, plural, "pending"
        )["status"]["rollout"]["analysis"]
        assert (got.get("requestsNeeded"), got.get("etaSeconds")) == (331, 113), (version, got)
