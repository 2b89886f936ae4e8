"""Tenant roles on the real API server: modelops-edit / modelops-view (manifests/install/
tenant-roles.yaml) are aggregated by the controller manager into the built-in `edit`,
`admin` and `view` ClusterRoles, so a user bound to `edit` in one namespace can manage
ModelDeployments and TrainingJobs there and nowhere else, and a `view` user can read
them but not write. Requests are made as those users (kubectl --as impersonation: the
API server authorizes them exactly as it would the real users).
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator

import pytest
import yaml

from tests.support.cluster import REPO, Cluster, fresh_namespace, wait_for
from tests.support.operator import install

pytestmark = pytest.mark.cluster

TENANT_ROLES = REPO / "manifests" / "install" / "tenant-roles.yaml"
SAMPLE_MD = REPO / "manifests" / "samples" / "modeldeployment.yaml"
SAMPLE_TJ = REPO / "manifests" / "samples" / "trainingjob.yaml"


@pytest.fixture(scope="module")
def installed(cluster: Cluster) -> Cluster:
    install(cluster)  # CRDs, RBAC and the tenant roles of manifests/install
    return cluster


@pytest.fixture(scope="module")
def namespaces(installed: Cluster) -> Iterator[tuple[str, str]]:
    cluster = installed
    with (
        contextlib.closing(fresh_namespace(cluster)) as one,
        contextlib.closing(fresh_namespace(cluster)) as two,
    ):
        yield next(one), next(two)


def bind(cluster: Cluster, namespace: str, role: str, user: str) -> None:
    """A RoleBinding of the built-in ClusterRole `role` to `user` in `namespace`: the
    only permission the user has (its group is bound to nothing)."""
    cluster.kubectl(
        "create", "rolebinding", f"{user}-{role}", "-n", namespace,
        f"--clusterrole={role}", f"--user={user}",
    )  # fmt: skip


def as_user(cluster: Cluster, user: str, group: str, *args: str, input: str | None = None):
    return cluster.kubectl("--as", user, "--as-group", group, *args, input=input, check=False)


def can(
    cluster: Cluster, user: str, group: str, verb: str, resource: str, ns: str, *extra: str
) -> bool:
    proc = as_user(cluster, user, group, "auth", "can-i", verb, resource, "-n", ns, *extra)
    return proc.stdout.strip() == "yes"


def manifest(path, name: str) -> str:
    body = yaml.safe_load(path.read_text())
    body["metadata"]["name"] = name
    return yaml.safe_dump(body)


def test_the_tenant_roles_carry_the_aggregation_labels(installed: Cluster):
    cluster = installed

    edit = yaml.safe_load(
        cluster.kubectl("get", "clusterrole", "modelops-edit", "-o", "yaml").stdout
    )
    view = yaml.safe_load(
        cluster.kubectl("get", "clusterrole", "modelops-view", "-o", "yaml").stdout
    )
    assert edit["metadata"]["labels"]["rbac.authorization.k8s.io/aggregate-to-edit"] == "true"
    assert edit["metadata"]["labels"]["rbac.authorization.k8s.io/aggregate-to-admin"] == "true"
    assert view["metadata"]["labels"]["rbac.authorization.k8s.io/aggregate-to-view"] == "true"


def test_an_edit_user_creates_in_its_namespace_only(cluster: Cluster, namespaces):
    mine, other = namespaces
    user, group = f"alice-{uuid.uuid4().hex[:6]}", "ml-team"
    bind(cluster, mine, "edit", user)
    # The aggregation controller copies modelops-edit's rules into `edit`
    # asynchronously; until then even the built-in role is not enough.
    wait_for(
        lambda: can(cluster, user, group, "create", "modeldeployments.modelops.io", mine),
        timeout=60,
        what="`edit` to include modelops-edit's rules",
    )
    for resource in ("modeldeployments.modelops.io", "trainingjobs.modelops.io"):
        for verb in ("create", "get", "list", "watch", "update", "patch", "delete"):
            assert can(cluster, user, group, verb, resource, mine), (verb, resource)
        assert not can(cluster, user, group, "create", resource, other), resource
    # Status is the operator's.
    for verb in ("patch", "update"):
        assert not can(
            cluster, user, group, verb, "modeldeployments.modelops.io", mine, "--subresource=status"
        )
    assert can(
        cluster, user, group, "get", "modeldeployments.modelops.io", mine, "--subresource=status"
    )

    # Real writes, as the user: admitted where bound, refused elsewhere.
    md, tj = manifest(SAMPLE_MD, "tenant-md"), manifest(SAMPLE_TJ, "tenant-tj")
    for body in (md, tj):
        ok = as_user(cluster, user, group, "create", "-n", mine, "-f", "-", input=body)
        assert ok.returncode == 0, ok.stderr
        refused = as_user(cluster, user, group, "create", "-n", other, "-f", "-", input=body)
        assert refused.returncode != 0 and "Forbidden" in refused.stderr, refused.stderr
        assert f'User "{user}" cannot create resource' in refused.stderr, refused.stderr
    live = as_user(cluster, user, group, "get", "md", "tenant-md", "-n", mine, "-o", "name")
    assert live.stdout.strip() == "modeldeployment.modelops.io/tenant-md"
    deleted = as_user(cluster, user, group, "delete", "tj", "tenant-tj", "-n", mine)
    assert deleted.returncode == 0, deleted.stderr


def test_a_view_user_reads_but_cannot_write(cluster: Cluster, namespaces):
    mine, _ = namespaces
    user, group = f"bob-{uuid.uuid4().hex[:6]}", "auditors"
    bind(cluster, mine, "view", user)
    wait_for(
        lambda: can(cluster, user, group, "list", "modeldeployments.modelops.io", mine),
        timeout=60,
        what="`view` to include modelops-view's rules",
    )
    cluster.apply(manifest(SAMPLE_MD, "viewed-md"), mine)
    got = as_user(cluster, user, group, "get", "md", "viewed-md", "-n", mine, "-o", "name")
    assert got.returncode == 0 and got.stdout.strip() == "modeldeployment.modelops.io/viewed-md"
    listed = as_user(cluster, user, group, "get", "tj", "-n", mine)
    assert listed.returncode == 0, listed.stderr
    for verb in ("create", "update", "patch", "delete"):
        assert not can(cluster, user, group, verb, "modeldeployments.modelops.io", mine), verb
    refused = as_user(
        cluster, user, group, "create", "-n", mine, "-f", "-",
        input=manifest(SAMPLE_MD, "not-allowed"),
    )  # fmt: skip
    assert refused.returncode != 0 and "Forbidden" in refused.stderr, refused.stderr
