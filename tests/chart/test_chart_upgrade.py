"""`helm upgrade` on the real control plane: from the real previous release of the
chart (extracted from git history) with the command docs/install.md gives, the
CRDs upgrade with the chart (and survive uninstall); and a new default Triton
image rolls every ModelDeployment that does not name its own image, and no other.

The second test runs the operator as the chart's Deployment runs it: its exact
command line and environment (read back from the API server after each helm
command), with a token of the chart's ServiceAccount, restarted after the
upgrade as the Deployment's new pod would be. The serving pods are simulated
(KWOK), the rollout itself is the Deployment controller's.
"""

from __future__ import annotations

import contextlib
import io
import subprocess
import tarfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import kubernetes
import pytest
import yaml

import tests.support.operator as operator_support
from modelops.api import constants as c
from tests.chart.helm import CHART, Helm
from tests.chart.test_chart_install import PodProcess, rbac_denials
from tests.support.cluster import REPO, Cluster, fresh_namespace, wait_for
from tests.support.conversion import install_crds, route_service_to_host, wait_converting
from tests.support.operator import service_account_kubeconfig, wait_ready

pytestmark = pytest.mark.cluster

MD_CRD = "modeldeployments.modelops.io"
MODELOPS_CRDS = (MD_CRD, "trainingjobs.modelops.io")
SAMPLE = REPO / "manifests" / "samples" / "modeldeployment.yaml"
HELM_OWNERSHIP = (
    "meta.helm.sh/release-name",
    "meta.helm.sh/release-namespace",
    "helm.sh/resource-policy",
)


def chart_helm(cluster: Cluster, helm: Helm) -> Helm:
    return Helm(binary=helm.binary, home=helm.home, kubeconfig=cluster.kubeconfig)


@contextlib.contextmanager
def release_namespace(cluster: Cluster) -> Iterator[str]:
    name = f"modelops-helm-{uuid.uuid4().hex[:8]}"
    cluster.core.create_namespace(
        kubernetes.client.V1Namespace(
            metadata=kubernetes.client.V1ObjectMeta(name=name, labels={"modelops.io/test": "true"})
        )
    )
    try:
        yield name
    finally:
        cluster.core.delete_namespace(name, propagation_policy="Background")


def release_the_crds(cluster: Cluster) -> None:
    """Back to the state the rest of the session expects: the current CRDs with the
    harness's webhook, owned by no release (so the next `helm install` is not
    refused). install_crds replaces them whole, Helm's annotations and labels too."""
    install_crds(cluster)
    for name in MODELOPS_CRDS:
        live = crd(cluster, name)["metadata"]
        assert not set(HELM_OWNERSHIP) & set(live.get("annotations") or {}), live


def crd(cluster: Cluster, name: str) -> dict[str, Any]:
    return yaml.safe_load(cluster.kubectl("get", "crd", name, "-o", "yaml").stdout)


# Chart releases, by the commit that was released (CHANGELOG.md). 0.1.0 is the
# first-parent commit before the branch that started [Unreleased] was merged
# (CRDs still in the chart's crds/ directory, images still CRD defaults).
RELEASES = {"0.1.0": "fa51725f10216cf8ef26c08104ce679095ec20e1"}
# A field the previous release's ModelDeployment CRD does not declare.
NEW_FIELD = ("rollout", "analysis")


def chart_version(chart: Path) -> str:
    return str(yaml.safe_load((chart / "Chart.yaml").read_text())["version"])


def previous_release() -> tuple[str, str]:
    """(version, commit) of the newest release older than the working tree's chart.
    While the working tree still says 0.1.0 (changes not yet released), 0.1.0 is
    the release it upgrades from."""
    current = Version(chart_version(CHART))
    older = [v for v in RELEASES if Version(v) < current] or [
        v for v in RELEASES if Version(v) == current
    ]
    version = max(older, key=Version)
    return version, RELEASES[version]


class Version(tuple):
    """ "0.10.1" > "0.9.0": compared as numbers."""

    def __new__(cls, text: str) -> Version:
        return super().__new__(cls, (int(p) for p in text.split("-")[0].split(".")))


def released_chart(tmp: Path) -> tuple[Path, str]:
    """charts/modelops exactly as released, extracted from git history."""
    version, commit = previous_release()
    archive = subprocess.run(
        ["git", "-C", str(REPO), "archive", "--format=tar", commit, "charts/modelops"],
        capture_output=True,
    )
    if archive.returncode != 0:
        pytest.fail(
            f"chart {version} ({commit}) is not in this clone's history "
            f"(a shallow clone? git fetch --unshallow): {archive.stderr.decode()}"
        )
    with tarfile.open(fileobj=io.BytesIO(archive.stdout)) as tar:
        tar.extractall(tmp, filter="data")
    chart = tmp / "charts" / "modelops"
    assert chart_version(chart) == version
    return chart, version


def md_with_new_field(name: str) -> str:
    body = yaml.safe_load(SAMPLE.read_text())
    body["metadata"]["name"] = name
    body["spec"]["rollout"]["analysis"] = {"minRequests": 250}
    return yaml.safe_dump(body)


def rollout_properties(cluster: Cluster) -> dict[str, Any]:
    spec = crd(cluster, MD_CRD)["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    return spec["properties"]["spec"]["properties"]["rollout"]["properties"]


def operator_env(cluster: Cluster, namespace: str, release: str) -> dict[str, str]:
    deployment = cluster.apps.read_namespaced_deployment(f"{release}-operator", namespace)
    [container] = deployment.spec.template.spec.containers
    return {e.name: e.value for e in container.env or []}


def test_upgrade_from_the_real_previous_release_with_the_documented_command(
    cluster: Cluster, helm: Helm, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    h = chart_helm(cluster, helm)
    old, old_version = released_chart(tmp_path)
    # The cluster as that release left it: its CRDs from the chart's crds/ directory
    # (Helm installs those once and never upgrades them, so they are applied here).
    # The session's CRDs go first: they store v1beta1, which a v1alpha1-only CRD
    # cannot replace (status.storedVersions must stay served).
    cluster.kubectl("delete", "crd", *MODELOPS_CRDS, "--ignore-not-found", "--wait=true")
    for path in sorted((old / "crds").glob("modelops.io_*.yaml")):
        cluster.kubectl("create", "-f", str(path))
    cluster.kubectl("wait", "--for=condition=Established", "--timeout=60s",
                    *(f"crd/{n}" for n in MODELOPS_CRDS))  # fmt: skip
    processes: list[PodProcess] = []
    try:
        with (
            release_namespace(cluster) as ns,
            contextlib.closing(fresh_namespace(cluster)) as workloads,
        ):
            apps = next(workloads)
            name = ns
            h.run("install", name, str(old), "-n", ns, "--wait", "--timeout", "90s")
            assert "analysis" not in rollout_properties(cluster)
            # The previous release predates the default images as a setting.
            assert "MODELOPS_TRITON_IMAGE" not in operator_env(cluster, ns, name)
            # The API server refuses the field the old CRD does not declare.
            refused = cluster.kubectl(
                "apply", "--server-side", "--validate=strict", "-n", apps, "-f", "-",
                input=md_with_new_field("with-new-field"), check=False,
            )  # fmt: skip
            assert refused.returncode != 0, refused.stdout
            assert "analysis" in refused.stderr, refused.stderr
            # An object of the old release, stored as v1alpha1.
            legacy = yaml.safe_load(SAMPLE.read_text())
            legacy["metadata"]["name"] = "legacy"
            cluster.apply(legacy, apps)
            before = cluster.custom.get_namespaced_custom_object(
                "modelops.io", "v1alpha1", apps, "modeldeployments", "legacy"
            )

            # Exactly the command docs/install.md gives for an upgrade from 0.1.0.
            h.run(
                "upgrade", name, str(CHART), "-n", ns,
                "--reset-then-reuse-values", "--take-ownership",
                "--wait", "--timeout", "90s",
            )  # fmt: skip
            live = crd(cluster, MD_CRD)
            # Both versions served, v1beta1 stored, converted by this release's webhook.
            assert {v["name"]: v["storage"] for v in live["spec"]["versions"]} == {
                "v1alpha1": False,
                "v1beta1": True,
            }
            webhook = f"{name}-webhook"
            assert live["spec"]["conversion"]["webhook"]["clientConfig"]["service"] == {
                "namespace": ns, "name": webhook, "path": "/convert", "port": 443,
            }  # fmt: skip
            # The operator as the new Deployment runs it, its webhook the Service's
            # endpoint (the chart's pods on KWOK's nodes run nothing: scaled to 0).
            cluster.kubectl("scale", "deployment", f"{name}-operator", "-n", ns, "--replicas=0")
            monkeypatch.setattr(operator_support, "SERVICE_ACCOUNT", (ns, f"{name}-operator"))
            kubeconfig = service_account_kubeconfig(cluster, tmp_path / "kubeconfig")
            deployment = cluster.apps.read_namespaced_deployment(f"{name}-operator", ns)
            op = PodProcess(deployment, kubeconfig, tmp_path / "operator.log")
            processes.append(op)
            assert op.webhook_port is not None
            route_service_to_host(cluster, ns, webhook, [op.webhook_port])
            # It made its CA, patched it into the CRDs, and the API server converts
            # through the Service; then it migrated the old objects to v1beta1.
            wait_converting(cluster, timeout=120)
            wait_for(
                lambda: all(
                    crd(cluster, n)["status"]["storedVersions"] == ["v1beta1"]
                    for n in MODELOPS_CRDS
                ),
                timeout=120,
                what=f"the storage migration; log:\n{op.tail()}",
            )
            # The old object reads through v1alpha1 as the same manifest applied now
            # reads (the new CRD's defaults apply on read too), and as v1beta1.
            after = cluster.custom.get_namespaced_custom_object(
                "modelops.io", "v1alpha1", apps, "modeldeployments", "legacy"
            )
            now = cluster.custom.create_namespaced_custom_object(
                "modelops.io", "v1alpha1", apps, "modeldeployments",
                {**legacy, "metadata": {"name": "legacy-now"}}, dry_run="All",
            )  # fmt: skip
            # 0.1.0's CRD defaulted the Triton image into the object; the conversion
            # keeps what was stored.
            assert after["spec"]["runtime"]["image"] == before["spec"]["runtime"]["image"]
            now["spec"]["runtime"]["image"] = before["spec"]["runtime"]["image"]
            assert after["spec"] == now["spec"]
            assert (
                after["spec"]["rollout"]["surgeTimeoutSeconds"]
                == (before["spec"]["rollout"]["surgeTimeoutSeconds"])
            )
            beta = cluster.custom.get_namespaced_custom_object(
                "modelops.io", "v1beta1", apps, "modeldeployments", "legacy"
            )
            assert before["spec"]["model"]["format"] == "torchscript"
            assert beta["spec"]["model"]["format"] == "TorchScript"
            assert beta["spec"]["model"]["storageUri"] == before["spec"]["model"]["storageUri"]
            assert "analysis" in rollout_properties(cluster)
            assert live["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
            assert live["metadata"]["annotations"]["meta.helm.sh/release-name"] == name
            assert live["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "Helm"
            # Values the new chart adds are there (--reuse-values would have dropped
            # them, keeping the old release's values whole).
            assert operator_env(cluster, ns, name)["MODELOPS_TRITON_IMAGE"] == (
                c.DEFAULT_TRITON_IMAGE
            )
            # The same object is accepted now, and the field is stored.
            cluster.kubectl(
                "apply", "--server-side", "--validate=strict", "-n", apps, "-f", "-",
                input=md_with_new_field("with-new-field"),
            )  # fmt: skip
            stored = cluster.custom.get_namespaced_custom_object(
                "modelops.io", "v1alpha1", apps, "modeldeployments", "with-new-field"
            )
            assert stored["spec"]["rollout"]["analysis"]["minRequests"] == 250
            history = h.run("history", name, "-n", ns, "-o", "yaml").stdout
            assert [r["chart"] for r in yaml.safe_load(history)] == [
                f"modelops-{old_version}",
                f"modelops-{chart_version(CHART)}",
            ]

            op.stop()
            h.run("uninstall", name, "-n", ns, "--wait")
            # resource-policy keep: the CRDs stay, and so does every object of them
            # (read in the storage version: with the operator gone, nothing converts).
            for name_ in MODELOPS_CRDS:
                assert crd(cluster, name_)["metadata"]["name"] == name_
            for md_name in ("with-new-field", "legacy"):
                assert cluster.custom.get_namespaced_custom_object(
                    "modelops.io", "v1beta1", apps, "modeldeployments", md_name
                )
            assert not h.run("list", "-n", ns, "-q").stdout.strip()
    except AssertionError as err:
        logs = "\n".join(f"--- {p.log.name}\n{p.tail()}" for p in processes)
        raise AssertionError(f"{err}\n{logs}") from None
    finally:
        for process in processes:
            process.stop()
        release_the_crds(cluster)
    for process in processes:
        assert not rbac_denials(process.log)


def test_the_previous_release_is_older_or_the_unreleased_base():
    version, commit = previous_release()
    assert Version(version) <= Version(chart_version(CHART))
    assert len(commit) == 40


# --- the default Triton image as a Helm value ---------------------------------------

NEW_TRITON = "registry.example/mirror/nvidia/tritonserver:25.08-py3"
PINNED = "registry.example/team/triton-custom:24.12"


def model_deployment(name: str, image: str | None) -> dict[str, Any]:
    body = yaml.safe_load(SAMPLE.read_text())
    body["metadata"]["name"] = name
    # Fixed replicas: the rollout is then the Deployment controller's alone.
    body["spec"].pop("autoscaling", None)
    body["spec"]["replicas"] = 2
    if image is not None:
        body["spec"]["runtime"]["image"] = image
    return body


def serving(cluster: Cluster, namespace: str, name: str) -> Any:
    return cluster.apps.read_namespaced_deployment(name, namespace)


def triton_image(deployment: Any) -> str:
    return next(x.image for x in deployment.spec.template.spec.containers if x.name == "triton")


def rolled_out(cluster: Cluster, namespace: str, name: str, image: str) -> Any:
    """The Deployment once every replica runs the pod template with `image`."""
    d = serving(cluster, namespace, name)
    s = d.status
    done = (
        triton_image(d) == image
        and s.observed_generation == d.metadata.generation
        and s.updated_replicas == d.spec.replicas
        and s.ready_replicas == d.spec.replicas
        and (s.replicas or 0) == d.spec.replicas
    )
    return d if done else None


def replica_set_images(cluster: Cluster, namespace: str, name: str) -> dict[str, int]:
    """Triton image -> replicas, over the ReplicaSets of one serving Deployment."""
    sets = cluster.apps.list_namespaced_replica_set(
        namespace, label_selector=f"{c.LABEL_MODEL_DEPLOYMENT}={name}"
    ).items
    out: dict[str, int] = {}
    for rs in sets:
        image = next(x.image for x in rs.spec.template.spec.containers if x.name == "triton")
        out[image] = out.get(image, 0) + (rs.spec.replicas or 0)
    return out


def test_a_new_default_triton_image_rolls_every_follower_and_no_override(
    cluster: Cluster,
    helm: Helm,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
):
    h = chart_helm(cluster, helm)
    operator_support.install(cluster)  # the session's CRDs (crds.install=false below)
    processes: list[PodProcess] = []
    with (
        release_namespace(cluster) as ns,
        contextlib.closing(fresh_namespace(cluster)) as workloads,
    ):
        apps, name = next(workloads), ns
        h.run(
            "install", name, str(CHART), "-n", ns, "--set", "crds.install=false",
            "--wait", "--timeout", "90s",
        )  # fmt: skip
        monkeypatch.setattr(operator_support, "SERVICE_ACCOUNT", (ns, f"{name}-operator"))
        kubeconfig = service_account_kubeconfig(cluster, tmp_path / "kubeconfig")

        def start_operator(log: str) -> PodProcess:
            deployment = cluster.apps.read_namespaced_deployment(f"{name}-operator", ns)
            process = PodProcess(deployment, kubeconfig, tmp_path / log)
            processes.append(process)
            return process

        try:
            before = start_operator("before.log")
            assert before.env["MODELOPS_TRITON_IMAGE"] == c.DEFAULT_TRITON_IMAGE
            objects = {
                "follower": None,
                # Created by 0.1.0, whose CRD default admission wrote into the object.
                "legacy": "nvcr.io/nvidia/tritonserver:25.01-py3",
                "pinned": PINNED,
            }
            for md_name, image in objects.items():
                cluster.apply(model_deployment(md_name, image), apps)
            for md_name in objects:
                wait_ready(cluster, apps, md_name, timeout=120)
            images = {n: triton_image(serving(cluster, apps, n)) for n in objects}
            assert images == {
                "follower": c.DEFAULT_TRITON_IMAGE,
                "legacy": c.DEFAULT_TRITON_IMAGE,
                "pinned": PINNED,
            }
            generation = {n: serving(cluster, apps, n).metadata.generation for n in objects}

            # One value for the whole fleet.
            h.run(
                "upgrade", name, str(CHART), "-n", ns, "--reset-then-reuse-values",
                "--set", f"defaultImages.triton={NEW_TRITON}", "--wait", "--timeout", "90s",
            )  # fmt: skip
            before.stop()
            after = start_operator("after.log")  # the Deployment's new pod
            assert after.env["MODELOPS_TRITON_IMAGE"] == NEW_TRITON

            for md_name in ("follower", "legacy"):
                wait_for(
                    lambda n=md_name: rolled_out(cluster, apps, n, NEW_TRITON),
                    timeout=180,
                    what=f"{md_name} to roll out {NEW_TRITON}",
                )
                # A rolling update of the Deployment: a new ReplicaSet with the new
                # image took over, the old one is scaled to zero (surge first,
                # maxUnavailable 0, as the ModelDeployment's rollout says).
                assert replica_set_images(cluster, apps, md_name) == {
                    c.DEFAULT_TRITON_IMAGE: 0,
                    NEW_TRITON: 2,
                }
                wait_ready(cluster, apps, md_name, timeout=60)
                md = operator_support.get_md(cluster, apps, md_name)
                # The image is still not written into the object.
                assert md["spec"]["runtime"].get("image") == objects[md_name]

            # The override is left alone: same template, no new ReplicaSet.
            pinned = serving(cluster, apps, "pinned")
            assert triton_image(pinned) == PINNED
            assert pinned.metadata.generation == generation["pinned"]
            assert replica_set_images(cluster, apps, "pinned") == {PINNED: 2}
        except AssertionError as err:
            logs = "\n".join(f"--- {p.log.name}\n{p.tail()}" for p in processes)
            raise AssertionError(f"{err}\n{logs}") from None
        finally:
            for process in processes:
                process.stop()
            h.run("uninstall", name, "-n", ns, "--wait", check=False)
    for process in processes:
        assert not rbac_denials(process.log)
