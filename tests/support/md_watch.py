"""A watch on one ModelDeployment that keeps every status.rollout it was written with.

Polling a rollout under load misses states: a shadow phase that decided within one
poll interval is never seen, and a test then races the operator. A watch delivers
every update the API server stores, in order, so a test can wait for a state
(event-driven, no poll interval) and afterwards assert on the exact figures a
verdict was built from (the last analysis written before the phase changed).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import kubernetes

from .cluster import Cluster

GROUP, VERSION, PLURAL = "modelops.io", "v1alpha1", "modeldeployments"

Rollout = dict[str, Any]


def rollout_of(md: dict[str, Any]) -> Rollout:
    return (md.get("status") or {}).get("rollout") or {}


class RolloutWatch:
    """Records every distinct (status.rollout, Ready) the ModelDeployment ``name`` had.

    Use as a context manager; :meth:`wait` blocks until a recorded rollout satisfies a
    predicate (checked on every update as it arrives)."""

    def __init__(self, cluster: Cluster, namespace: str, name: str) -> None:
        self.cluster, self.namespace, self.name = cluster, namespace, name
        self.rollouts: list[Rollout] = []
        self.ready: list[str] = []
        self.errors: list[str] = []
        self._cond = threading.Condition()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"watch-{name}", daemon=True)
        self._watch: kubernetes.watch.Watch | None = None
        # The index of the rollout the last wait returned.
        self.matched = -1

    def __enter__(self) -> RolloutWatch:
        self._thread.start()
        return self

    def __exit__(self, *_: Any) -> None:
        self._stop.set()
        if self._watch is not None:
            self._watch.stop()
        self._thread.join(timeout=15)

    @property
    def phases(self) -> list[str]:
        """The phases in the order they were written, repeats collapsed."""
        out: list[str] = []
        for r in self.rollouts:
            phase = r.get("phase")
            if phase and (not out or out[-1] != phase):
                out.append(phase)
        return out

    def last_in(self, phase: str) -> Rollout | None:
        """The last rollout written while in ``phase``: what the next transition was
        decided on."""
        return next((r for r in reversed(self.rollouts) if r.get("phase") == phase), None)

    def wait(
        self,
        predicate: Callable[[Rollout], bool],
        timeout: float,
        what: str = "",
        *,
        since: int = 0,
    ) -> Rollout:
        """The first recorded rollout from index ``since`` on (0: the start of the watch)
        that satisfies ``predicate``; fails after ``timeout`` seconds with the last one
        seen. ``matched`` is then its index: pass ``matched + 1`` as ``since`` to wait
        for what comes after it (not for a state the object had before)."""
        deadline = time.monotonic() + timeout
        checked = since
        with self._cond:
            while True:
                for i, r in enumerate(self.rollouts[checked:], start=checked):
                    if predicate(r):
                        self.matched = i
                        return r
                checked = max(checked, len(self.rollouts))
                left = deadline - time.monotonic()
                if left <= 0:
                    last = self.rollouts[-1] if self.rollouts else None
                    raise AssertionError(
                        f"timed out after {timeout}s waiting for {what}; phases "
                        f"{self.phases}; last rollout: {last}; watch errors: {self.errors[-3:]}"
                    )
                self._cond.wait(min(left, 5.0))

    def _record(self, md: dict[str, Any]) -> None:
        rollout = rollout_of(md)
        ready = next(
            (
                c.get("status", "Unknown")
                for c in (md.get("status") or {}).get("conditions") or []
                if c.get("type") == "Ready"
            ),
            None,
        )
        with self._cond:
            if rollout and (not self.rollouts or self.rollouts[-1] != rollout):
                self.rollouts.append(rollout)
            if ready is not None:
                self.ready.append(ready)
            self._cond.notify_all()

    def _run(self) -> None:
        custom = self.cluster.custom
        while not self._stop.is_set():
            # A fresh list first: the state at (re)start, then every update after it.
            try:
                listed = custom.list_namespaced_custom_object(
                    GROUP, VERSION, self.namespace, PLURAL,
                    field_selector=f"metadata.name={self.name}",
                )  # fmt: skip
                for item in listed.get("items") or []:
                    self._record(item)
                self._watch = kubernetes.watch.Watch()
                for event in self._watch.stream(
                    custom.list_namespaced_custom_object,
                    GROUP, VERSION, self.namespace, PLURAL,
                    field_selector=f"metadata.name={self.name}",
                    resource_version=listed["metadata"]["resourceVersion"],
                    timeout_seconds=60,
                ):  # fmt: skip
                    if self._stop.is_set():
                        return
                    if event.get("type") in ("ADDED", "MODIFIED"):
                        self._record(event["object"])
            except Exception as err:  # the API server busy or the watch expired: restart
                self.errors.append(f"{type(err).__name__}: {err}"[:300])
                self._stop.wait(0.5)
