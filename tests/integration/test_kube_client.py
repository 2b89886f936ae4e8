"""modelops.kube against the real API server: what each call does, and how it fails.

What the controllers build on, as kube-apiserver 1.36 answers (these tests
fail if a future version answers otherwise):

- apply with ``uid_precondition`` (sent as metadata.uid) -- one request:
  * onto the object with that uid: applied as usual (metadata.uid is not
    recorded as a field the operator owns);
  * onto an object with another uid: 422 Invalid, cause metadata.uid "field is
    immutable" -> PreconditionFailed; nothing changes;
  * where nothing exists: 409 Conflict "uid mismatch: the provided object
    specified uid <ours>, and no existing object was found" ->
    PreconditionFailed; nothing is created.
  So an apply carrying a (random) uid never creates: it is not "create if absent".
- apply with ``create_only`` (sent as metadata.resourceVersion = 2**64-1) --
  one request: creates the object when absent (fields owned as applied);
  409 Conflict "the object has been modified" when present -> AlreadyExists.
  This is "create only if absent" with no extra request.
- `create` (POST) also refuses a taken name (409 AlreadyExists), but records
  the fields under an *update*: a later apply that drops one leaves it there.
- delete with preconditions.uid: 404 -> False; another uid -> 409 Conflict "the
  UID in the precondition (..) does not match the UID in record (..)" ->
  PreconditionFailed.
"""

from __future__ import annotations

import concurrent.futures
import uuid
from pathlib import Path

import kubernetes
import pytest

from modelops.api.kinds import DEPLOYMENT, MODEL_DEPLOYMENT, NAMESPACE, SCALED_OBJECT, SERVICE
from modelops.kube import API_REQUESTS, Kube, errors
from tests.support.cluster import Cluster
from tests.support.kube_contract import SCENARIOS, deployment, service
from tests.support.operator import install, service_account_kubeconfig

pytestmark = pytest.mark.cluster


@pytest.fixture(scope="module")
def crds(cluster: Cluster) -> Cluster:
    install(cluster)
    return cluster


@pytest.fixture
def kube(crds: Cluster) -> Kube:
    return Kube(crds.api_client)


def requests(verb: str) -> float:
    return API_REQUESTS.labels(verb)._value.get()


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_kube_behaves_as_the_scenarios_say(kube: Kube, namespace: str, name: str):
    SCENARIOS[name](kube, namespace)


# -- what only the real API server shows -----------------------------------------------


def test_apply_with_a_uid_precondition_never_creates(kube: Kube, cluster: Cluster, namespace: str):
    ours = str(uuid.uuid4())
    with pytest.raises(errors.PreconditionFailed) as refused:
        kube.apply(deployment(namespace), uid_precondition=ours)
    assert refused.value.message == (
        'Operation cannot be fulfilled on deployments.apps "dep": uid mismatch: the provided '
        f"object specified uid {ours}, and no existing object was found"
    )
    assert cluster.apps.list_namespaced_deployment(namespace).items == []
    # Created without a precondition, the object gets the server's uid, never ours.
    live = kube.apply(deployment(namespace))
    assert live["metadata"]["uid"] != ours


def test_applying_with_the_live_uid_leaves_the_uid_unowned(kube: Kube, namespace: str):
    uid = kube.apply(service(namespace))["metadata"]["uid"]
    live = kube.apply(service(namespace, team="a"), uid_precondition=uid)
    ours = next(m for m in live["metadata"]["managedFields"] if m["manager"] == "modelops")
    assert "f:uid" not in ours["fieldsV1"]["f:metadata"]
    assert live["metadata"]["labels"] == {"team": "a"}


def test_create_only_apply_owns_its_fields_as_applied(kube: Kube, namespace: str):
    live = kube.apply(service(namespace, team="a"), create_only=True)
    managers = {(m["manager"], m["operation"]) for m in live["metadata"]["managedFields"]}
    assert managers == {("modelops", "Apply")}
    assert live["metadata"]["resourceVersion"] != str(2**64 - 1)


def test_of_two_racing_create_only_applies_exactly_one_creates(kube: Kube, namespace: str):
    def attempt(team: str) -> str:
        try:
            kube.apply(service(namespace, team=team), create_only=True)
        except errors.AlreadyExists:
            return "refused"
        return "created"

    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        outcomes = sorted(pool.map(attempt, ["a", "b"]))
    assert outcomes == ["created", "refused"]


def test_an_invalid_object_names_its_fields(kube: Kube, namespace: str):
    with pytest.raises(errors.Invalid) as refused:
        kube.apply(service(namespace, port=0))
    err = refused.value
    assert (err.status, err.reason) == (422, "Invalid")
    assert "spec.ports[0].port" in err.fields
    assert 'Service "svc" is invalid' in err.message


def test_an_invalid_model_deployment_names_the_field_from_cel(kube: Kube, namespace: str):
    md = {
        "apiVersion": "modelops.io/v1alpha1",
        "kind": "ModelDeployment",
        "metadata": {"name": "md", "namespace": namespace},
        "spec": {
            "model": {"storageUri": "s3://models/fraud", "format": "torchscript"},
            "resources": {"gpu": {"count": 1}},
            "autoscaling": {
                "minReplicas": 9,
                "maxReplicas": 2,
                "metric": {"type": "cpu", "target": 50},
            },
        },
    }
    with pytest.raises(errors.Invalid) as refused:
        kube.create(md)
    assert any(f.startswith("spec.autoscaling") for f in refused.value.fields)


def test_apply_without_force_reports_the_contested_fields(
    kube: Kube, cluster: Cluster, namespace: str
):
    cluster.apply(deployment(namespace, replicas=3), namespace)  # kubectl's field manager
    with pytest.raises(errors.Conflict) as refused:
        kube.apply(deployment(namespace, replicas=1), force=False)
    err = refused.value
    assert not err.precondition_failed
    assert "spec.replicas" in " ".join(c.message + c.field for c in err.causes)
    assert kube.apply(deployment(namespace, replicas=1))["spec"]["replicas"] == 1


def test_forbidden_names_the_verb_and_resource(crds: Cluster, tmp_path: Path):
    operator = Kube(
        kubernetes.config.new_client_from_config(
            str(service_account_kubeconfig(crds, tmp_path / "sa.kubeconfig"))
        )
    )
    name = f"t-{uuid.uuid4().hex[:8]}"
    with pytest.raises(errors.Forbidden) as refused:
        operator.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
    assert refused.value.status == 403
    assert 'cannot create resource "namespaces"' in refused.value.message
    assert operator.api_available(NAMESPACE)  # discovery stays allowed


def test_kinds_the_cluster_does_not_serve(kube: Kube, namespace: str):
    assert kube.api_available(MODEL_DEPLOYMENT)
    assert not kube.api_available(SCALED_OBJECT)  # no KEDA on the test cluster
    so = {
        "apiVersion": "keda.sh/v1alpha1",
        "kind": "ScaledObject",
        "metadata": {"name": "md", "namespace": namespace},
        "spec": {"scaleTargetRef": {"name": "md"}},
    }
    with pytest.raises(errors.NotFound):
        kube.apply(so)
    assert kube.delete(SCALED_OBJECT, namespace, "md", uid=str(uuid.uuid4())) is False
    assert kube.get(SCALED_OBJECT, namespace, "md") is None


def test_discovery_is_asked_once_per_ttl(crds: Cluster):
    now = [0.0]
    kube = Kube(crds.api_client, discovery_ttl_s=30, clock=lambda: now[0])
    before = requests("discovery")
    for _ in range(5):
        assert kube.api_available(DEPLOYMENT)
    assert requests("discovery") - before == 1
    now[0] = 31.0
    kube.api_available(DEPLOYMENT)
    assert requests("discovery") - before == 2
    kube.forget_api_cache()
    kube.api_available(DEPLOYMENT)
    assert requests("discovery") - before == 3


def test_each_call_counts_one_request_of_its_verb(kube: Kube, namespace: str):
    verbs = ("apply", "get", "delete", "create_event", "list")
    before = {v: requests(v) for v in verbs}
    live = kube.apply(service(namespace))
    kube.get(SERVICE, namespace, "svc")
    kube.post_event(live, "Normal", "Applied", "x")
    kube.list_events(namespace, "involvedObject.name=svc")
    kube.delete(SERVICE, namespace, "svc", uid=live["metadata"]["uid"])
    assert {v: requests(v) - before[v] for v in verbs} == dict.fromkeys(verbs, 1)


def test_the_operator_reads_a_named_secret_but_cannot_list_secrets(
    crds: Cluster, kube: Kube, namespace: str, tmp_path: Path
):
    """The storage credentials Secret a ModelDeployment names, as the operator's own
    ServiceAccount reads it (manifests/install/rbac.yaml: get on secrets, by name only):
    only the keys asked for come back; enumerating Secrets is refused; an answer over
    the size cap is refused unread."""
    client = kubernetes.config.new_client_from_config(
        str(service_account_kubeconfig(crds, tmp_path / "sa.kubeconfig"))
    )
    operator = Kube(client)
    crds.apply(
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "store-keys"},
            "stringData": {"AWS_ACCESS_KEY_ID": "AKIDEXAMPLE", "OTHER": "not asked for"},
        },
        namespace,
    )
    got = operator.read_secret(namespace, "store-keys", ["AWS_ACCESS_KEY_ID", "AWS_REGION"])
    assert got == {"AWS_ACCESS_KEY_ID": "AKIDEXAMPLE"}
    assert operator.read_secret(namespace, "absent", ["AWS_ACCESS_KEY_ID"]) is None
    with pytest.raises(kubernetes.client.ApiException) as listing:
        kubernetes.client.CoreV1Api(client).list_namespaced_secret(namespace)
    assert listing.value.status == 403
    crds.apply(
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "big"},
            "stringData": {"AWS_ACCESS_KEY_ID": "x" * 70_000},
        },
        namespace,
    )
    with pytest.raises(errors.KubeError) as refused:
        operator.read_secret(namespace, "big", ["AWS_ACCESS_KEY_ID"])
    assert refused.value.reason == "SecretTooLarge"
    # The connection the refused answer was cut from is not reused mid-body.
    assert operator.read_secret(namespace, "store-keys", ["OTHER"]) == {"OTHER": "not asked for"}
