"""The in-pod agent of in-place rollouts: the traffic file drives this pod's Triton.

It runs in the sidecar (a thread of its own: pulls and loads take seconds to
minutes and must never touch the event loop) and reads the same traffic file as
the proxy. What the operator writes there, and what the agent does:

- ``"stage": "8"``: fetch version 8 with the init container's puller into the
  model repository as ``<model>.candidate`` (on disk only) and report its size,
  so the operator can check that it fits before anything is loaded;
- ``"candidate": {"version": "8", "inPlace": {...}}``: fetch if needed, then load
  it into Triton beside the stable model;
- ``"promote": "8"`` (with that candidate): make it the served model
  (:func:`modelops.commands.inplace.promote`; no restart);
- ``"served": "8"`` (no candidate): the version this pod must serve, when not the
  template's (after an in-place promotion, which leaves the template alone). A pod
  whose Triton serves another one (it promoted, then the promotion was rolled back)
  swaps back the same way a promotion swaps;
- anything else (no candidate, a separate one, another version): a candidate
  still loaded or staged here is unloaded and removed (the rollback).

What it did and what the pod has is reported through :meth:`InPlaceAgent.document`
(``GET /rollout`` under ``agent``): the staged version and its size, the pod's
memory (:func:`modelops.commands.inplace.memory_report`), the last error. A
failure is reported and retried on the next change or after ``retry_seconds``,
never raised into the sidecar.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from modelops.commands import inplace as triton_inplace
from modelops.modeldir.layout import parse_version_dir

log = logging.getLogger("modelops.drift.inplace_agent")

_MAX_FILE = 1024 * 1024
MEMORY_EVERY = 10.0  # seconds between two readings of the pod's memory


@dataclass(frozen=True)
class Wanted:
    """What the traffic file asks of this pod's Triton."""

    stage: int | None = None  # fetch this version (not loaded)
    load: int | None = None  # fetch and load it as the candidate
    promote: int | None = None  # make it the served model

    @property
    def version(self) -> int | None:
        return self.promote or self.load or self.stage


def _number(value: Any) -> int | None:
    text = str(value) if isinstance(value, (str, int)) and not isinstance(value, bool) else ""
    return int(text) if text.isdigit() and 0 < int(text) < 10**9 else None


def served_version(content: bytes, template_version: str) -> str:
    """The version this pod must serve once no rollout is in flight: the traffic file's
    ``served`` (the operator writes it after an in-place promotion that status names,
    render/inplace.py), else the pod template's (the init container's) version."""
    try:
        doc = json.loads(content or b"{}")
    except ValueError:
        return template_version
    served = _number(doc.get("served")) if isinstance(doc, dict) else None
    return str(served) if served is not None else template_version


def wanted(content: bytes, own_version: str, serving: str | None = None) -> Wanted:
    """What ``content`` (the traffic file) asks of the sidecar of a pod whose template
    names ``own_version`` and whose Triton serves ``serving`` (default: what the file
    says it serves)."""
    served = served_version(content, own_version)
    serving = serving or served
    try:
        doc = json.loads(content or b"{}")
    except ValueError:
        return Wanted()
    if not isinstance(doc, dict):
        return Wanted()
    cand = doc.get("candidate")
    stage = _number(doc.get("stage"))
    if isinstance(cand, dict) and isinstance(cand.get("inPlace"), dict):
        version = _number(cand.get("version"))
        if version is None or str(version) == serving:
            return Wanted()
        promote = _number(doc.get("promote"))
        if promote == version:
            return Wanted(promote=version)
        return Wanted(load=version)
    if stage is not None and str(stage) != serving:
        return Wanted(stage=stage)
    if served != serving:
        # Triton serves another version than the one status names: a promotion rolled
        # back after this pod promoted (promotionDeadline), or one completed while this
        # pod missed it. The same swap as a promotion brings the named one back.
        return Wanted(promote=int(served))
    return Wanted()


class InPlaceAgent:
    def __init__(
        self,
        *,
        traffic_file: str,
        repository: Path,
        model: str,
        model_uri: str,
        triton_url: str,
        own_version: str,
        metrics_url: str | None = None,
        poll_seconds: float = 1.0,
        retry_seconds: float = 30.0,
        pull: Callable[..., tuple[Path, int]] = triton_inplace.pull_candidate,
        pull_kwargs: dict[str, Any] | None = None,
    ) -> None:
        self.traffic_file = Path(traffic_file)
        self.repository = repository
        self.model = model
        self.model_uri = model_uri
        self.triton_url = triton_url
        self.own_version = own_version  # the pod template's version
        # What this pod's Triton serves: from the model repository at the first look (the
        # init container pulled the file's served version), then set by each promotion.
        self.serving: str | None = None
        self.metrics_url = metrics_url
        self.poll_seconds = poll_seconds
        self.retry_seconds = retry_seconds
        self.pull = pull
        self.pull_kwargs = pull_kwargs or {}
        # What this pod has (written by the agent thread, read by the admin handler).
        self.staged: tuple[int, int] | None = None  # (version, bytes)
        self.loaded: int | None = None
        self.promoted: int | None = None
        self.error: str | None = None
        self.error_version: int | None = None  # the version the error is about
        self._tried: Wanted | None = None
        self.memory = triton_inplace.MemoryReport()
        self._done: Wanted | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- the loop ------------------------------------------------------------------------

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="inplace-agent", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        t, self._thread = self._thread, None
        if t is not None:
            t.join(10)

    def _run(self) -> None:
        last_try = memory_at = float("-inf")
        while not self._stop.wait(self.poll_seconds):
            if time.monotonic() - memory_at >= MEMORY_EVERY:
                # Read here, never on the event loop: Triton's metrics are an HTTP call.
                self.memory = triton_inplace.memory_report(self.metrics_url)
                memory_at = time.monotonic()
            try:
                content = self.traffic_file.read_bytes()[:_MAX_FILE]
            except OSError:
                content = b""
            if self.serving is None:
                self.serving = self._on_disk() or served_version(content, self.own_version)
            want = wanted(content, self.own_version, self.serving)
            if want == self._done:
                continue
            # A failed step is retried after retry_seconds; anything new is tried at once.
            if want == self._tried and time.monotonic() - last_try < self.retry_seconds:
                continue
            self._tried, last_try = want, time.monotonic()
            try:
                self.step(want)
            except Exception as exc:  # reported in GET /rollout, retried; never fatal
                self.error = f"{type(exc).__name__}: {exc}"[:1000]
                self.error_version = want.version
                log.warning("in-place agent: version %s: %s", want.version, self.error)

    # -- one reconciliation of this pod's Triton with what is wanted -------------------------

    def step(self, want: Wanted) -> None:
        """Bring this pod's Triton to ``want`` (blocking; the agent thread's work)."""
        version = want.version
        if version is None or (self.staged and self.staged[0] != version):
            self._roll_back()
        if version is None:
            self._finish(want)
            return
        if self.promoted == version and self.serving == str(version):
            self._finish(want)
            return
        if self.staged is None:
            _, size = self.pull(
                self.model_uri, self.repository, self.model, version, **self.pull_kwargs
            )
            self.staged = (version, size)
            log.info("in-place agent: staged version %d (%d bytes)", version, size)
        if (want.load or want.promote) and self.loaded != version:
            triton_inplace.load_candidate(self.triton_url, self.model)
            self.loaded = version
            log.info("in-place agent: loaded version %d beside the stable model", version)
        if want.promote:
            triton_inplace.promote(self.triton_url, self.repository, self.model, version)
            self.promoted, self.loaded, self.staged = version, None, None
            self.serving = str(version)
            log.info("in-place agent: version %d is the served model", version)
        self._finish(want)

    def _on_disk(self) -> str | None:
        """The version Triton serves: the highest version directory of ``<model>`` (what
        the init container pulled, or the last promotion left; Triton's default policy
        serves the latest), so a file that changed since the pod started is not taken
        for what it serves."""
        try:
            found = [
                n
                for e in (self.repository / self.model).iterdir()
                if e.is_dir() and (n := parse_version_dir(e.name))
            ]
        except OSError:
            return None
        return str(max(found)) if found else None

    def _finish(self, want: Wanted) -> None:
        self._done = want
        self.error = self.error_version = None

    def _roll_back(self) -> None:
        cand_dir = self.repository / triton_inplace.candidate_model(self.model)
        if self.loaded is not None or cand_dir.exists():
            triton_inplace.roll_back(self.triton_url, self.repository, self.model)
            log.info("in-place agent: candidate unloaded and removed")
        self.loaded = None
        self.staged = None

    # -- the report ------------------------------------------------------------------------

    def document(self) -> dict[str, Any]:
        """The agent's report (event loop: only attributes, no I/O)."""
        return {
            "staged": {"version": str(self.staged[0]), "bytes": self.staged[1]}
            if self.staged
            else None,
            "promoted": str(self.promoted) if self.promoted is not None else None,
            "serving": self.serving,
            "memory": self.memory.to_json(),
            "error": self.error,
            "errorVersion": str(self.error_version) if self.error_version else None,
        }


__all__ = ["InPlaceAgent", "Wanted", "served_version", "wanted"]
