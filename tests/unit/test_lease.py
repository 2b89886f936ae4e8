"""Leader election: the pure decisions (render/lease.py), the elector loop against the
recording fake (controllers/leader.py), and the write fence."""

from __future__ import annotations

import asyncio
import base64
import json
from datetime import UTC, datetime, timedelta

import pytest

from modelops.api.kinds import SERVICE
from modelops.controllers.actuator import Actuator
from modelops.controllers.leader import LeaderElector
from modelops.controllers.operator import lease_owner
from modelops.kube.errors import NotLeader
from modelops.render import lease as L
from modelops.render.plan import Apply, Plan
from tests.support.clock import FakeClock
from tests.support.fake_kube import FakeKube
from tests.support.kube_contract import service

CONFIG = L.LeaseConfig()
WALL = datetime(2026, 12, 7, 4, 0, 0, tzinfo=UTC)


def record(holder: str, renew: datetime = WALL, rv: str = "1", transitions: int = 0) -> L.Record:
    return L.Record(
        holder=holder,
        lease_duration_s=15,
        acquire_time=L.micro_time(WALL),
        renew_time=L.micro_time(renew),
        transitions=transitions,
        resource_version=rv,
    )


# -- decisions ------------------------------------------------------------------------


def test_defaults_are_controller_runtimes():
    assert (CONFIG.lease_duration_s, CONFIG.renew_deadline_s, CONFIG.retry_period_s) == (15, 10, 2)


@pytest.mark.parametrize(
    "durations",
    [(10, 10, 2), (15, 10, 9), (15, 10, 0)],
    ids=["lease-not-longer-than-renew", "renew-too-close-to-retry", "no-retry"],
)
def test_inconsistent_durations_are_refused(durations):
    lease, renew, retry = durations
    with pytest.raises(ValueError):
        L.LeaseConfig(lease, renew, retry)


def test_no_lease_is_created_with_us_as_holder():
    d = L.decide(L.observe(None, None, 0.0), "a", 0.0, WALL, CONFIG)
    assert d.action == "create" and d.takeover
    assert d.spec["holderIdentity"] == "a"
    assert d.spec["leaseDurationSeconds"] == 15
    assert d.spec["renewTime"] == "2026-12-07T04:00:00.000000Z"


def test_the_holder_renews_keeping_its_acquire_time():
    obs = L.observe(None, record("a"), 0.0)
    later = WALL + timedelta(seconds=2)
    d = L.decide(obs, "a", 2.0, later, CONFIG)
    assert d.action == "update" and not d.takeover
    assert d.spec["acquireTime"] == L.micro_time(WALL)
    assert d.spec["renewTime"] == L.micro_time(later)


def test_a_candidate_waits_while_the_holder_keeps_renewing():
    obs = L.observe(None, record("a", rv="1"), 0.0)
    for t in range(2, 60, 2):  # the holder renews every 2 s: the record changes
        renewed = record("a", WALL + timedelta(seconds=t), rv=str(t))
        obs = L.observe(obs, renewed, float(t))
        assert L.decide(obs, "b", float(t), WALL, CONFIG).action == "wait"


def test_a_candidate_takes_over_once_the_record_stopped_changing_for_the_lease_duration():
    obs = L.observe(None, record("a", transitions=3), 100.0)
    assert L.decide(obs, "b", 114.9, WALL, CONFIG).action == "wait"
    obs = L.observe(obs, record("a", transitions=3), 110.0)  # read again, unchanged
    assert obs.since == 100.0
    d = L.decide(obs, "b", 115.0, WALL, CONFIG)
    assert d.action == "update" and d.takeover
    assert d.spec["holderIdentity"] == "b"
    assert d.spec["leaseTransitions"] == 4
    assert d.spec["acquireTime"] == d.spec["renewTime"]


def test_a_released_lease_is_taken_at_once():
    released = L.released(record("a"), "a", WALL)
    assert released["holderIdentity"] == ""
    gone = L.Record.of({"spec": released, "metadata": {"resourceVersion": "9"}})
    obs = L.observe(None, gone, 50.0)
    assert L.decide(obs, "b", 50.0, WALL, CONFIG).takeover
    assert L.released(record("a"), "b", WALL) is None  # only the holder releases


@pytest.mark.parametrize("skew_s", [-3600, 3600], ids=["holder-clock-behind", "holder-clock-ahead"])
def test_the_holders_wall_clock_does_not_matter(skew_s):
    """renewTime comes from the holder's clock: a candidate never compares it with
    its own. A skewed renewTime neither expires a live lease nor keeps a dead one."""
    skewed = WALL + timedelta(seconds=skew_s)
    obs = L.observe(None, record("a", skewed, rv="1"), 0.0)
    obs = L.observe(obs, record("a", skewed + timedelta(seconds=2), rv="2"), 2.0)
    assert L.decide(obs, "b", 16.0, WALL, CONFIG).action == "wait"  # 14 s since it changed
    assert L.decide(obs, "b", 17.0, WALL, CONFIG).takeover


def test_the_fence_closes_at_the_renew_deadline_before_anyone_may_take_over():
    assert not L.may_write(None, 0.0, CONFIG)
    assert L.may_write(100.0, 109.9, CONFIG)
    assert not L.may_write(100.0, 110.0, CONFIG)
    # A candidate saw the renewal sent at 100 no earlier than 100: its takeover
    # comes at >= 115, after the fence closed.
    assert CONFIG.lease_duration_s - CONFIG.renew_deadline_s >= 5


# -- the elector against the fake ---------------------------------------------------------


def elector(kube: FakeKube, identity: str, clock: FakeClock, lost: list[str]) -> LeaderElector:
    return LeaderElector(
        kube,
        "modelops-system",
        "modelops-operator",
        identity,
        CONFIG,
        on_lost=lambda: lost.append(identity),
        clock=clock.monotonic,
        wall=lambda: WALL,
    )


def test_one_acquires_the_other_waits_then_takes_over_when_renewals_stop():
    asyncio.run(_takeover())


async def _takeover() -> None:
    kube, clock, lost = FakeKube(), FakeClock(), []
    a, b = elector(kube, "a", clock, lost), elector(kube, "b", clock, lost)
    await a.step()
    await b.step()
    assert a.is_leader and not b.is_leader
    a.check()
    with pytest.raises(NotLeader):
        b.check()
    for _ in range(5):  # a renews every 2 s, b keeps waiting
        clock.advance(2)
        await a.step()
        await b.step()
    assert a.is_leader and not b.is_leader
    # a stops renewing (SIGKILLed). Its own fence closes 10 s after its last renewal...
    clock.advance(10)
    with pytest.raises(NotLeader):
        a.check()
    # ...and b takes over 15 s after it last saw the record change.
    await b.step()
    assert not b.is_leader
    clock.advance(5)
    await b.step()
    assert b.is_leader
    b.check()
    lease = kube.leases[("modelops-system", "modelops-operator")]
    assert lease["spec"]["holderIdentity"] == "b"
    assert lease["spec"]["leaseTransitions"] == 1
    # a comes back (it was only paused): it sees b holds the lease and gives up.
    await a.step()
    assert lost == ["a"] and not a.is_leader


def test_the_leader_that_cannot_renew_stops_at_the_renew_deadline():
    asyncio.run(_cannot_renew())


async def _cannot_renew() -> None:
    from modelops.kube import errors

    kube, clock, lost = FakeKube(), FakeClock(), []
    a = elector(kube, "a", clock, lost)
    await a.step()
    kube.fail(errors.Unavailable("Unreachable", "refused", 0), verb="get", times=100)
    for _ in range(4):
        clock.advance(2)
        await a.step()
    assert a.is_leader and not lost  # 8 s without renewal: still within the deadline
    clock.advance(2)
    await a.step()
    assert lost == ["a"]
    with pytest.raises(NotLeader):
        a.check()


def test_release_lets_the_standby_take_over_at_its_next_look():
    asyncio.run(_release())


async def _release() -> None:
    kube, clock, lost = FakeKube(), FakeClock(), []
    a, b = elector(kube, "a", clock, lost), elector(kube, "b", clock, lost)
    await a.step()
    await b.step()
    await a.release()
    with pytest.raises(NotLeader):
        a.check()
    clock.advance(2)
    await b.step()
    assert b.is_leader


def test_release_after_a_renewal_the_loop_did_not_see_still_hands_the_lease_back():
    asyncio.run(_release_after_unseen_renewal())


async def _release_after_unseen_renewal() -> None:
    """Shutdown cancels the loop while a renewal runs on the Lease executor: the
    renewal lands (a new resourceVersion) after the loop last observed the Lease.
    The release must not be built on that stale record (a 409 left the standby to
    wait out the whole lease, seen with the operator pods on a real node)."""
    kube, clock, lost = FakeKube(), FakeClock(), []
    a, b = elector(kube, "a", clock, lost), elector(kube, "b", clock, lost)
    await a.step()
    await b.step()
    key = ("modelops-system", "modelops-operator")
    # The in-flight renewal, landing behind the loop's back.
    kube.replace_lease(kube.get_lease(*key))
    await a.release()
    assert kube.leases[key]["spec"]["holderIdentity"] == ""
    clock.advance(2)
    await b.step()
    assert b.is_leader


def test_release_leaves_a_lease_someone_else_holds_alone():
    asyncio.run(_release_not_ours())


async def _release_not_ours() -> None:
    kube, clock, lost = FakeKube(), FakeClock(), []
    a = elector(kube, "a", clock, lost)
    await a.step()
    key = ("modelops-system", "modelops-operator")
    taken = kube.get_lease(*key)
    taken["spec"]["holderIdentity"] = "b"
    kube.replace_lease(taken)
    await a.release()
    assert kube.leases[key]["spec"]["holderIdentity"] == "b"


def test_a_fenced_write_stops_the_actuator_at_the_first_refused_request():
    """NotLeader is not a KubeError: the actuator does not record it as a failure and
    go on with the next action; it stops."""
    kube = FakeKube()
    fenced = []

    def fence() -> None:
        fenced.append(True)
        raise NotLeader("not the leader")

    kube.fence = fence
    owner = {
        "kind": "ModelDeployment",
        "apiVersion": "modelops.io/v1alpha1",
        "metadata": {"name": "md", "namespace": "ml", "uid": "u"},
    }
    applies = [Apply(obj=service("ml", f"s{i}"), expect_uid=None) for i in range(3)]
    plan = Plan(applies=applies)
    with pytest.raises(NotLeader):
        Actuator(kube, "ModelDeployment").act(plan, owner)
    assert fenced == [True]
    assert kube.count() == 0 and kube.live(SERVICE, "ml", "s0") is None


# -- the Lease owned by the replicas' ServiceAccount ------------------------------------
# Uninstalling the chart deletes the RBAC and the ServiceAccount before the pods stop,
# so the release on shutdown is refused; the garbage collector deletes a Lease owned by
# the ServiceAccount instead (tests/integration/test_lease_owner.py, on the real API server).

SA_UID = "6f1c2b8e-0d3a-4c55-9a51-2a8f0e7c1d22"


def jwt(claims: dict) -> str:
    def part(doc: dict) -> str:
        return base64.urlsafe_b64encode(json.dumps(doc).encode()).decode().rstrip("=")

    return f"{part({'alg': 'RS256'})}.{part(claims)}.c2lnbmF0dXJl"


BOUND = {
    "iss": "https://kubernetes.default.svc.cluster.local",
    "sub": "system:serviceaccount:ops:modelops-operator",
    "kubernetes.io": {
        "namespace": "ops",
        "pod": {"name": "modelops-operator-7d9-abc", "uid": "pod-uid"},
        "serviceaccount": {"name": "modelops-operator", "uid": SA_UID},
    },
}
OWNER = {"apiVersion": "v1", "kind": "ServiceAccount", "name": "modelops-operator", "uid": SA_UID}


def test_the_owner_is_the_service_account_named_by_the_pods_bound_token():
    assert L.service_account_owner(jwt(BOUND) + "\n", "ops") == OWNER


def test_a_legacy_secret_token_names_the_service_account_too():
    legacy = {
        "kubernetes.io/serviceaccount/namespace": "ops",
        "kubernetes.io/serviceaccount/service-account.name": "modelops-operator",
        "kubernetes.io/serviceaccount/service-account.uid": SA_UID,
    }
    assert L.service_account_owner(jwt(legacy), "ops") == OWNER


@pytest.mark.parametrize(
    "token",
    [
        "",
        "not-a-jwt",
        "a.b.c",  # payload not base64 JSON
        jwt({"sub": "someone"}),  # no service account claims
        jwt({"kubernetes.io": {"namespace": "ops", "serviceaccount": {"name": "x"}}}),  # no uid
        jwt(["a", "list"]),  # type: ignore[arg-type]
    ],
)
def test_a_token_that_names_no_service_account_gives_no_owner(token):
    assert L.service_account_owner(token, "ops") is None


def test_no_owner_across_namespaces():
    """An owner must be in its dependent's namespace (the GC ignores others)."""
    assert L.service_account_owner(jwt(BOUND), "modelops-system") is None


def test_lease_owner_reads_the_token_file(tmp_path):
    token = tmp_path / "token"
    token.write_text(jwt(BOUND))
    assert lease_owner("ops", str(token)) == OWNER
    assert lease_owner("ops", str(tmp_path / "missing")) is None


def test_every_write_carries_the_owner_create_renew_and_release():
    asyncio.run(_owned())


async def _owned() -> None:
    kube, clock, lost = FakeKube(), FakeClock(), []
    a = elector(kube, "a", clock, lost)
    a.owner = OWNER
    key = ("modelops-system", "modelops-operator")
    await a.step()  # create
    assert kube.leases[key]["metadata"]["ownerReferences"] == [OWNER]
    clock.advance(2)
    await a.step()  # renew (a PUT replaces the whole object)
    assert kube.leases[key]["metadata"]["ownerReferences"] == [OWNER]
    await a.release()
    assert kube.leases[key]["spec"]["holderIdentity"] == ""
    assert kube.leases[key]["metadata"]["ownerReferences"] == [OWNER]


def test_a_replica_without_an_owner_keeps_the_owner_the_lease_has():
    """One replica run from a kubeconfig (no token) must not strip the owner."""
    asyncio.run(_kept())


async def _kept() -> None:
    kube, clock, lost = FakeKube(), FakeClock(), []
    a, b = elector(kube, "a", clock, lost), elector(kube, "b", clock, lost)
    a.owner = OWNER
    key = ("modelops-system", "modelops-operator")
    await a.step()
    await a.release()
    clock.advance(2)
    await b.step()  # b takes the released lease over, writing no owner of its own
    assert b.is_leader
    assert kube.leases[key]["metadata"]["ownerReferences"] == [OWNER]


def test_an_owner_the_cluster_refuses_is_dropped_and_the_replica_still_leads():
    """OwnerReferencesPermissionEnforcement with a Role lacking delete: 403."""
    asyncio.run(_refused_owner())


async def _refused_owner() -> None:
    from modelops.kube import errors

    kube, clock, lost = FakeKube(), FakeClock(), []
    a = elector(kube, "a", clock, lost)
    a.owner = OWNER
    kube.fail(errors.Forbidden("Forbidden", "cannot set an ownerRef", 403), verb="create_lease")
    await a.step()
    assert not a.is_leader and a.owner is None
    clock.advance(2)
    await a.step()
    assert a.is_leader
    key = ("modelops-system", "modelops-operator")
    assert "ownerReferences" not in kube.leases[key]["metadata"]
