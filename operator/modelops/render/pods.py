"""Reading Pod, Deployment and Event dicts: what is wrong, what is ready, since when.

Pure helpers for status derivation and the rollout decision. Messages are
built only from stable fields (no ages, no restart counts) so that an
unchanged situation yields an unchanged status and no write.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from modelops.api import constants as c
from modelops.redact import redact

MESSAGE_LIMIT = 1024
# The init containers whose failures get reasons of their own. Named here, in the
# shared pod reader, and used by the renderers (deployment, drift_sidecar), so
# that reading a pod does not depend on one kind's rendering.
PULL_CONTAINER = "pull-model"
FETCH_CONTAINER = "fetch-reference"
IMAGE_PULL_REASONS = {"ErrImagePull", "ImagePullBackOff", "InvalidImageName", "ErrImageNeverPull"}
CONFIG_REASONS = {"CreateContainerConfigError", "CreateContainerError", "RunContainerError"}
# A container restarted this often without becoming ready counts as crash-looping
# even in the moments between back-offs when the kubelet says "running".
CRASH_RESTARTS = 3


@dataclass(frozen=True)
class PodProblem:
    """Why a pod cannot make progress."""

    reason: str
    message: str
    pod: str
    container: str = ""


# --- generic access ------------------------------------------------------------


def get(obj: Mapping[str, Any] | None, *path: str, default: Any = None) -> Any:
    """Nested lookup that tolerates missing levels."""
    cur: Any = obj
    for key in path:
        if not isinstance(cur, Mapping) or key not in cur:
            return default
        cur = cur[key]
    return cur


def parse_time(value: Any) -> datetime | None:
    if not value:
        return None
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    text = str(value).replace("Z", "+00:00")
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def format_time(value: datetime) -> str:
    """RFC 3339 in UTC, whole seconds, as metav1.Time serialises."""
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def truncate(text: str, limit: int = MESSAGE_LIMIT) -> str:
    """A status message: one line, URIs redacted (a termination message or an event may
    quote a URI with credentials or a signature), at most ``limit`` characters."""
    text = redact(" ".join(text.split()))
    return text if len(text) <= limit else text[: limit - 3] + "..."


def condition(obj: Mapping[str, Any] | None, ctype: str) -> Mapping[str, Any] | None:
    for cond in get(obj, "status", "conditions", default=[]) or []:
        if cond.get("type") == ctype:
            return cond
    return None


def resolve_int_or_percent(value: int | str, total: int, *, round_up: bool) -> int:
    """Like the Deployment controller: maxSurge rounds up, maxUnavailable down."""
    if isinstance(value, int):
        return value
    fraction = int(value.rstrip("%")) * total / 100
    return math.ceil(fraction) if round_up else math.floor(fraction)


# --- pods -----------------------------------------------------------------------


def pod_name(pod: Mapping[str, Any]) -> str:
    return get(pod, "metadata", "name", default="")


def live(pods: Iterable[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """Pods that count: not being deleted and not finished (evicted pods are Failed)."""
    out = [
        p
        for p in pods
        if not get(p, "metadata", "deletionTimestamp")
        and get(p, "status", "phase") not in ("Succeeded", "Failed")
    ]
    return sorted(out, key=pod_name)


def is_ready(pod: Mapping[str, Any]) -> bool:
    cond = condition(pod, "Ready")
    return bool(cond and cond.get("status") == "True")


def is_scheduled(pod: Mapping[str, Any]) -> bool:
    cond = condition(pod, "PodScheduled")
    return bool(get(pod, "spec", "nodeName")) or bool(cond and cond.get("status") == "True")


def version(pod: Mapping[str, Any]) -> str | None:
    return get(pod, "metadata", "annotations", c.ANNOTATION_MODEL_VERSION)


def template_hash(pod: Mapping[str, Any]) -> str | None:
    return get(pod, "metadata", "labels", "pod-template-hash")


def unschedulable(pod: Mapping[str, Any]) -> tuple[str, datetime | None] | None:
    """(scheduler message, since) for a pod the scheduler cannot place."""
    cond = condition(pod, "PodScheduled")
    if not cond or cond.get("status") != "False" or cond.get("reason") != "Unschedulable":
        return None
    since = parse_time(cond.get("lastTransitionTime")) or parse_time(
        get(pod, "metadata", "creationTimestamp")
    )
    return truncate(cond.get("message") or "Unschedulable"), since


def _statuses(pod: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    status = pod.get("status") or {}
    return list(status.get("initContainerStatuses") or []) + list(
        status.get("containerStatuses") or []
    )


def _crash_message(cs: Mapping[str, Any]) -> str:
    name = cs.get("name", "?")
    term = get(cs, "lastState", "terminated") or get(cs, "state", "terminated") or {}
    text = f"container {name} keeps crashing"
    if term:
        text += f": last exit {term.get('reason', 'Error')} (code {term.get('exitCode', '?')})"
        if term.get("message"):
            # With FallbackToLogsOnError this is the tail of the log: the actual error.
            text += ": " + truncate(term["message"], 600)
    return text


def container_problem(
    pod: Mapping[str, Any], events: Iterable[Mapping[str, Any]] = ()
) -> PodProblem | None:
    """The first blocking container problem of a pod, if any."""
    name = pod_name(pod)
    for cs in _statuses(pod):
        cname = cs.get("name", "?")
        waiting = get(cs, "state", "waiting") or {}
        reason = waiting.get("reason")
        if reason in IMAGE_PULL_REASONS:
            # ErrImagePull and ImagePullBackOff alternate; report one reason, and
            # the pull error itself from the pod's events when there is one.
            detail = _latest_event_message(events, name, "Failed", prefix="Failed to pull")
            msg = f"container {cname} cannot pull image {cs.get('image', '')}"
            text = truncate(msg + (f": {detail}" if detail else ""))
            return PodProblem("ImagePullBackOff", text, name, cname)
        if reason in CONFIG_REASONS:
            msg = f"container {cname}: {waiting.get('message') or reason}"
            return PodProblem(reason, truncate(msg), name, cname)
        crashing = reason == "CrashLoopBackOff" or (
            (cs.get("restartCount") or 0) >= CRASH_RESTARTS
            and not cs.get("ready")
            and get(cs, "lastState", "terminated", "exitCode", default=0) != 0
        )
        if crashing:
            why = {
                PULL_CONTAINER: "ModelPullFailed",
                FETCH_CONTAINER: "ReferencePullFailed",
            }.get(cname, "CrashLoopBackOff")
            return PodProblem(why, truncate(_crash_message(cs)), name, cname)
    return None


def init_running(pod: Mapping[str, Any]) -> bool:
    """Whether the model is still being downloaded (pull container not done)."""
    for cs in get(pod, "status", "initContainerStatuses", default=[]) or []:
        if cs.get("name") == PULL_CONTAINER and not get(cs, "state", "terminated"):
            return True
    return False


# --- events ---------------------------------------------------------------------


def event_time(event: Mapping[str, Any]) -> datetime | None:
    return (
        parse_time(get(event, "series", "lastObservedTime"))
        or parse_time(event.get("lastTimestamp"))
        or parse_time(event.get("eventTime"))
        or parse_time(get(event, "metadata", "creationTimestamp"))
    )


def _latest_event_message(
    events: Iterable[Mapping[str, Any]], pod: str, reason: str, *, prefix: str = ""
) -> str | None:
    matching = [
        e
        for e in events
        if get(e, "involvedObject", "kind") == "Pod"
        and get(e, "involvedObject", "name") == pod
        and e.get("reason") == reason
        and (e.get("message") or "").startswith(prefix)
    ]
    if not matching:
        return None
    latest = max(matching, key=lambda e: event_time(e) or datetime.min.replace(tzinfo=UTC))
    return truncate(latest.get("message") or "", 600)


def recent_events(
    events: Iterable[Mapping[str, Any]], *, kind: str, reason: str, now: datetime, within_s: int
) -> list[Mapping[str, Any]]:
    """Events of a reason on objects of a kind seen in the last `within_s` seconds, newest first."""
    out = []
    for e in events:
        when = event_time(e)
        if (
            get(e, "involvedObject", "kind") == kind
            and e.get("reason") == reason
            and when is not None
            and (now - when).total_seconds() <= within_s
        ):
            out.append((when, e))
    return [e for _, e in sorted(out, key=lambda pair: pair[0], reverse=True)]
