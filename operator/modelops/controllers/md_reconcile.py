"""ModelDeployment reconcile shell: observe -> plan (pure) -> act.

The shell gathers one observed snapshot from kopf's indexes (and, only when
the plan's inputs need them, Warning events, the KEDA API and the sidecars'
drift summaries), hands it to ``modelops.render.md_planner.plan``, and carries
the plan out through the Actuator. It remembers, per ModelDeployment, what it
applied (so a steady state makes no writes) and the resourceVersion of its
own last status write (so the watch event that write causes is not a reason
to reconcile again).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from modelops.api import constants as c
from modelops.api.conversion import BETA_FIELDS
from modelops.api.modeldeployment import ModelDeployment
from modelops.controllers import metrics
from modelops.controllers.actuator import Actuator, Outcome
from modelops.controllers.indexes import Indexes, Key, as_read
from modelops.controllers.own_status import OwnStatus
from modelops.controllers.sidecar_client import SidecarClient
from modelops.controllers.store_watcher import StoreWatcher, listable
from modelops.kube import KubeApi
from modelops.render import drift_merge, md_planner
from modelops.render.children import DEPLOYMENT, RESOURCE_CLAIM_TEMPLATE, SCALED_OBJECT
from modelops.render.evidence import Sources, evidence_sources
from modelops.render.gating.decide import GATED_PHASES
from modelops.render.gating.ledger import PodLedger, post
from modelops.render.ownership import Applied, reverts_after
from modelops.render.plan import Plan
from modelops.render.pods import format_time
from modelops.render.slots import SLOTS, deployment_key

KIND = c.MD_KIND
# A first listing normally ends within a second and queues the reconcile itself; this
# is the safety net.
FIRST_LISTING_WAIT_S = 5.0
log = logging.getLogger("modelops.modeldeployment")


@dataclass(frozen=True)
class Result:
    """When to look at this object again: after ``requeue_after`` seconds, or with
    back-off when ``failed``."""

    requeue_after: float | None = None
    failed: bool = False


@dataclass
class ModelDeploymentController:
    kube: KubeApi
    indexes: Indexes
    settings: md_planner.Settings
    # The sidecars' figures, drift and loaded versions, read off the reconcile path.
    sidecars: SidecarClient | None = None
    # The model store's versions and manifest digests, listed off the reconcile path.
    store: StoreWatcher | None = None
    clock: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))
    _applied: dict[Key, Applied] = field(default_factory=dict)
    _parsed: dict[Key, tuple[tuple[Any, Any], ModelDeployment | str]] = field(default_factory=dict)
    # Our last status write per object, used until the store has caught up with it.
    _own_status: OwnStatus = field(default_factory=OwnStatus)
    # Per ModelDeployment: rendered children by their inputs (only one worker
    # handles a key at a time, so no lock is needed).
    _renders: dict[Key, dict[Any, Any]] = field(default_factory=dict)
    # Foreign pods already named in an event (each is reported once).
    _ignored: dict[Key, set[str]] = field(default_factory=dict)
    # Per ModelDeployment, per pod: the sidecars' figures of the current epoch with the
    # baselines of restarted sidecars (render/gating/ledger.py).
    _ledgers: dict[Key, dict[str, PodLedger]] = field(default_factory=dict)
    # Per ModelDeployment: the replicas' drift histograms merged so far and the drift
    # decision made on them (render/drift_merge.py).
    _drift: dict[Key, drift_merge.MergedDrift] = field(default_factory=dict)
    # Refusals already named in an event: (pod, reason).
    _refused: dict[Key, set[tuple[str, str]]] = field(default_factory=dict)
    # Seconds until the owner check must look again at a pod whose ReplicaSet was not
    # known (render/evidence.py: Sources.recheck_after_s), from the last observe.
    _recheck: dict[Key, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.actuator = Actuator(self.kube, KIND)

    # -- bookkeeping --

    def forget(self, key: Key) -> None:
        self._applied.pop(key, None)
        self._parsed.pop(key, None)
        self._own_status.forget(key)
        self._renders.pop(key, None)
        self._ignored.pop(key, None)
        self._ledgers.pop(key, None)
        self._drift.pop(key, None)
        self._refused.pop(key, None)
        self._recheck.pop(key, None)
        metrics.forget(KIND, *key)
        metrics.forget_rollout(*key)
        if self.sidecars is not None:
            self.sidecars.forget(*key)
        if self.store is not None:
            self.store.forget(*key)

    def delivered(self, key: Key, resource_version: str | None) -> bool:
        """The store now holds this version of the object; True when it is the one our
        last status patch made (its echo: nothing to reconcile)."""
        return self._own_status.delivered(key, resource_version)

    def known_keys(self) -> list[Key]:
        return self.indexes.keys("md_index")

    # -- the reconcile --

    def reconcile(self, key: Key) -> Result:
        stored = self.indexes.model_deployment(key)
        if stored is None:
            self.forget(key)  # deleted: the children go by garbage collection
            return Result()
        body = self._own_status.current(key, stored)
        with metrics.RECONCILE_DURATION.labels(KIND).time():
            md = self._parse(key, body)
            obs = self.observe(body, md)
            if self._first_listing_pending(md, obs):
                # Nothing serves yet and the store's first listing is under way: wait for
                # it (its end queues this reconcile) rather than start pods that would
                # resolve `latest` themselves, to a version status does not name.
                return Result(requeue_after=FIRST_LISTING_WAIT_S)
            memo = self._renders.setdefault(key, {})
            plan = md_planner.plan(obs, md, self._applied.get(key), self.settings, memo)
            outcome = self.actuator.act(plan, body)
            if outcome.failures:
                plan = md_planner.revise(obs, plan, outcome.failures)
            self.actuator.finish(plan, body, outcome)
            self._remember(key, body, plan, outcome, obs.now)
            metrics.export_conditions(KIND, *key, plan.status.get("conditions") or [])
            if plan.status.get("rollout") is not None:
                metrics.export_rollout(*key, plan.status["rollout"])
        for problem in plan.problems:
            metrics.RECONCILE_ERRORS.labels(KIND, problem.reason).inc()
        requeue = plan.requeue_after
        recheck = self._recheck.pop(key, None)
        if recheck is not None:
            # A pod left out until its ReplicaSet arrives is judged when its grace ends,
            # even if nothing else wakes this object (a foreign pod is named then).
            requeue = recheck if requeue is None else min(requeue, recheck)
        return Result(requeue, plan.failed)

    def observe(self, body: Mapping[str, Any], md: ModelDeployment | str) -> md_planner.Observed:
        key: Key = (body["metadata"]["namespace"], body["metadata"]["name"])
        children = self.indexes.md_children(key)
        pods = self.indexes.md_pods(key)
        now = self.clock()
        # Only sidecars of ready pods this ModelDeployment's Deployments own (by uid) are
        # asked anything; pods that merely carry its labels are not evidence.
        sources = evidence_sources(
            key[1], pods, self.indexes.md_replica_sets(key), children, now=now
        )
        self._report_ignored(body, sources)
        if sources.recheck_after_s is not None:
            self._recheck[key] = sources.recheck_after_s
        else:
            self._recheck.pop(key, None)
        trusted = sources.pods(pods)
        keda = False
        events: list[dict[str, Any]] = []
        drift = None
        claims: list[Mapping[str, Any]] = []
        dra_served = True
        figures = None
        loaded = None
        evidence: dict[str, str] = dict(sources.trusted)
        refused: dict[str, str] = {}
        unanswered: dict[str, str] = {}
        store = None
        if isinstance(md, ModelDeployment):
            if md.spec.resources.gpu.dra:
                dra_served = self.kube.api_available(RESOURCE_CLAIM_TEMPLATE)
                claims = self.indexes.md_claims(key)
            scaling = md.spec.autoscaling
            if scaling is not None and scaling.engine == "keda":
                keda = self.kube.api_available(SCALED_OBJECT)
            if md_planner.wants_events(children.get(DEPLOYMENT.kind), pods):
                listed = self.kube.list_events(key[0], field_selector="type=Warning")
                events = md_planner.events_about(key[1], listed)
            monitor = md.spec.drift_monitor
            if self.sidecars is not None and monitor is not None and monitor.enabled:
                resumed = (body.get("status") or {}).get("drift")
                drift = self._merged_drift(key, monitor, trusted, now, resumed)
            rollout = (body.get("status") or {}).get("rollout") or {}
            if self.store is not None and _lists_store(md):
                # Every version under `latest` is judged, whoever published it; and the
                # lineage records the manifest digest of what was judged. The store is
                # listed with the credentials the pods pull with.
                want = (rollout.get("candidate"), rollout.get("stable"), md.spec.model.version)
                secret = md.spec.model.credentials_secret_ref
                view = self.store.view(
                    key[0],
                    key[1],
                    md.spec.model.storage_uri,
                    want,
                    secret=secret.name if secret else None,
                )
                store = view.as_observed() if view is not None else None
            elif self.store is not None:
                self.store.forget(*key)  # pinned and Direct: nothing to list
            if self.sidecars is not None:
                if rollout.get("phase") in GATED_PHASES:
                    epoch = str(rollout.get("epoch") or rollout.get("candidate") or "")
                    # The last poll's answers; a refresh runs in the background and queues
                    # this reconcile again when it is done.
                    snapshot = self.sidecars.rollout(key[0], key[1], trusted)
                    documents = dict(snapshot.documents)
                    unanswered = dict(snapshot.unanswered)
                    posted = post(self._ledgers.get(key, {}), documents, sources.trusted, epoch)
                    self._ledgers[key] = dict(posted.pods)
                    figures, slots = posted.effective(epoch)
                    # Pods gone since keep their last figures within the epoch.
                    evidence = slots | evidence
                    refused = dict(posted.refused)
                    self._report_refused(body, refused)
                else:
                    self._ledgers.pop(key, None)
                # Asked once per pod: what its Triton actually loaded.
                loaded = self.sidecars.loaded(key[0], key[1], md.model_name, trusted)
        return md_planner.Observed(
            body=body,
            children=children,
            pods=pods,
            now=now,
            trainings=self.indexes.trainings_for(key),
            keda=keda,
            drift=drift,
            events=events,
            claims=claims,
            dra_served=dra_served,
            figures=figures,
            loaded=loaded,
            sources=evidence,
            refused=refused,
            unanswered=unanswered,
            store=store,
        )

    def _first_listing_pending(self, md: ModelDeployment | str, obs: md_planner.Observed) -> bool:
        """Whether this reconcile should wait for the store's first listing: the spec asks
        for `latest` of a store the operator lists, no listing has finished, and no
        Deployment nor recorded version exists yet (afterwards the recorded version is
        served while listings run). A listing ends within the S3 client's timeouts."""
        if self.store is None or not isinstance(md, ModelDeployment) or obs.store is not None:
            return False
        if md.spec.model.version != "latest" or not listable(md.spec.model.storage_uri):
            return False  # a pinned version is what the pods get, listed or not
        if any(obs.children.get(deployment_key(md.name, slot)) is not None for slot in SLOTS):
            return False
        rollout = obs.previous.get("rollout") or {}
        return not str(rollout.get("stable") or "").isdigit()

    def _report_refused(self, body: Mapping[str, Any], refused: Mapping[str, str]) -> None:
        """Count each refusal and name it once in an event (status says it too)."""
        key: Key = (body["metadata"]["namespace"], body["metadata"]["name"])
        seen = self._refused.setdefault(key, set())
        for pod, why in sorted(refused.items()):
            if (pod, why) in seen:
                continue
            seen.add((pod, why))
            metrics.EVIDENCE_REFUSED.labels(*key, "backwards").inc()
            self.kube.post_event(
                body, "Warning", "FiguresRefused", f"figures of pod {pod} refused: {why}"
            )

    def _merged_drift(
        self,
        key: Key,
        monitor: Any,
        trusted: list[Mapping[str, Any]],
        now: datetime,
        written: Any,
    ) -> Mapping[str, Any] | None:
        """One drift decision on the replicas' merged histograms (render/drift_merge.py):
        the last poll's documents are folded in (a poll seen twice adds nothing). The
        first time after a start, the state goes on from ``written`` (status.drift)."""
        assert self.sidecars is not None
        state = self._drift.get(key)
        if state is None:
            try:
                state = drift_merge.resume(written if isinstance(written, Mapping) else None)
            except drift_merge.Refused as err:
                log.warning("%s/%s: drift state in status not resumed: %s", *key, err)
                state = drift_merge.MergedDrift()
        snapshot = self.sidecars.histograms(key[0], key[1], trusted)
        merged = drift_merge.step(
            state,
            snapshot.documents,
            config=drift_merge.detector_config(monitor.method, monitor.threshold),
            window=monitor.window,
            now=format_time(now),
        )
        self._drift[key] = merged
        for pod, why in merged.refused.items():
            log.info("%s/%s: drift histograms of pod %s refused: %s", *key, pod, why)
        return merged.result

    def _report_ignored(self, body: Mapping[str, Any], sources: Sources) -> None:
        """Count and name, once per pod, a pod that carries the labels without being
        owned: someone may be trying to feed the gates."""
        key: Key = (body["metadata"]["namespace"], body["metadata"]["name"])
        seen = self._ignored.setdefault(key, set())
        for pod, why in sorted(sources.ignored.items()):
            if pod in seen:
                continue
            seen.add(pod)
            metrics.EVIDENCE_IGNORED.labels(*key).inc()
            log.warning("%s/%s: pod %s ignored as a source of evidence: %s", *key, pod, why)
            self.kube.post_event(
                body,
                "Warning",
                "EvidenceIgnored",
                f"pod {pod} carries this ModelDeployment's labels but is not owned by its "
                f"Deployments ({why}): its sidecar's figures, drift and loaded versions are "
                "ignored",
            )
        # Pods that are gone are forgotten, so the set stays bounded.
        seen.intersection_update(sources.ignored)

    def _parse(self, key: Key, body: Mapping[str, Any]) -> ModelDeployment | str:
        """Parsed once per spec generation: status-only changes reuse it. The pod controls
        a v1alpha1 write carries in its annotation (api/intake.py) move no generation,
        so the annotation is part of the stamp."""
        meta = body["metadata"]
        beta_fields = (meta.get("annotations") or {}).get(BETA_FIELDS)
        stamp = (meta.get("uid"), meta.get("generation"), beta_fields)
        cached = self._parsed.get(key)
        if cached is not None and cached[0] == stamp:
            return cached[1]
        md = md_planner.parse(body)
        self._parsed[key] = (stamp, md)
        return md

    def _remember(
        self, key: Key, body: Mapping[str, Any], plan: Plan, outcome: Outcome, now: datetime
    ) -> None:
        if outcome.status_object is not None:
            self._own_status.remember(key, body, as_read(outcome.status_object))
        previous = self._applied.get(key)
        fingerprints = dict(previous.fingerprints) if previous else {}
        fingerprints.update(outcome.fingerprints)
        for delete in plan.deletes:
            fingerprints.pop(delete.key, None)
        applied_all = not any(f.kind != c.TJ_KIND for f in outcome.failures)
        # Children our applies changed back after someone else changed them: a second
        # writer is not fought on every change (render/ownership.py).
        reverts = reverts_after(previous, plan.applies, outcome.fingerprints, now)
        # After a failed apply the digest is not recorded: the next reconcile
        # applies again instead of believing the children are as rendered.
        self._applied[key] = Applied(plan.digest if applied_all else "", fingerprints, reverts)


def _lists_store(md: ModelDeployment) -> bool:
    """Whether the store is listed for this ModelDeployment: under `latest` (new versions
    are discovered there) and for gated rollouts (the digest of what is judged)."""
    return md.spec.model.version == "latest" or md.spec.rollout.strategy != "Direct"
