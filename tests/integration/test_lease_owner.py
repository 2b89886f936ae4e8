"""The leader Lease goes with the installation, on the real API server.

Uninstalling the chart deletes the Deployment, then at once its RBAC and its
ServiceAccount; the pods get their SIGTERM after that, so the leader's release
is refused (its token no longer authenticates) and the Lease used to stay held
for a lease duration, which a reinstall then waited out. The Lease is owned by
the replicas' ServiceAccount (named by the pod's own token), so the garbage
collector deletes it with the ServiceAccount.

The token here is a real one, issued by the API server's TokenRequest for the
ServiceAccount, as the kubelet projects it into the pod.
"""

from __future__ import annotations

import asyncio
import uuid

import pytest

from modelops.controllers.leader import LeaderElector
from modelops.kube import Kube
from modelops.render.lease import LeaseConfig, service_account_owner
from tests.support.cluster import Cluster, wait_for

pytestmark = pytest.mark.cluster


def _token(cluster: Cluster, namespace: str, name: str) -> str:
    request = {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": {}}
    issued = cluster.core.create_namespaced_service_account_token(name, namespace, request)
    return issued.status.token


def test_the_lease_owned_by_the_service_account_is_collected_with_it(
    cluster: Cluster, namespace: str
):
    account = f"modelops-operator-{uuid.uuid4().hex[:6]}"
    created = cluster.core.create_namespaced_service_account(
        namespace, {"metadata": {"name": account}}
    )
    owner = service_account_owner(_token(cluster, namespace, account), namespace)
    assert owner == {
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "name": account,
        "uid": created.metadata.uid,
    }
    kube = Kube(cluster.api_client)
    elector = LeaderElector(kube, namespace, "modelops-operator", "a", LeaseConfig(), owner=owner)
    asyncio.run(elector.step())  # create
    asyncio.run(elector.step())  # renew: the PUT keeps the owner
    assert elector.is_leader
    lease = kube.get_lease(namespace, "modelops-operator")
    assert lease is not None and lease["spec"]["holderIdentity"] == "a"
    assert lease["metadata"]["ownerReferences"] == [owner]

    # What `helm uninstall` does before the pods stop.
    cluster.core.delete_namespaced_service_account(account, namespace)
    wait_for(
        lambda: kube.get_lease(namespace, "modelops-operator") is None,
        timeout=60,
        what="the Lease collected with its ServiceAccount",
    )
