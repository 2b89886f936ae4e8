"""Log lines an SRE can query: which object, which reconcile, what was decided.

A reconcile runs under `reconciling(kind, namespace, name)`, which sets a
context variable (not a parameter threaded through every call): every log
record made inside it, in any module, carries the object, its namespace and a
short reconcile id, and the Events the reconcile posts carry the same id in the
annotation `EVENT_ANNOTATION`, so `kubectl get events -o yaml` leads to the
log lines of the reconcile that emitted them. A reconcile runs on one worker
thread from start to end; `reconciling` resets the variable on exit, so the
next reconcile on that thread starts clean.

`modelops run --log-format json` selects `JsonFormatter` (one JSON object a
line); the default `TextFormatter` is for people and adds the same context
as a short suffix. The formatters are pure: a LogRecord in, a line out.
"""

from __future__ import annotations

import contextvars
import json
import logging
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime

EVENT_ANNOTATION = "modelops.io/reconcile-id"
FORMATS = ("text", "json")
# Record attributes a JSON line carries besides time, level, logger and message;
# set by ContextFilter, or by a caller through `extra={"decision": ...}`.
CONTEXT_FIELDS = ("object", "namespace", "reconcile_id", "decision")


@dataclass(frozen=True)
class Reconcile:
    """The reconcile under way on this thread."""

    id: str
    kind: str
    namespace: str
    name: str

    @property
    def object(self) -> str:
        return f"{self.kind}/{self.name}"


_CURRENT: contextvars.ContextVar[Reconcile | None] = contextvars.ContextVar(
    "modelops_reconcile", default=None
)


def new_id() -> str:
    """12 hex digits: unique enough among one operator's reconciles, short in a log."""
    return secrets.token_hex(6)


@contextmanager
def reconciling(kind: str, namespace: str, name: str) -> Iterator[Reconcile]:
    """Mark the code inside as one reconcile of ``kind`` ``namespace``/``name``."""
    current = Reconcile(new_id(), kind, namespace, name)
    token = _CURRENT.set(current)
    try:
        yield current
    finally:
        _CURRENT.reset(token)


def current() -> Reconcile | None:
    return _CURRENT.get()


def event_annotations() -> dict[str, str]:
    """Annotations for an Event posted now: the reconcile id, if inside one."""
    rec = _CURRENT.get()
    return {EVENT_ANNOTATION: rec.id} if rec else {}


class ContextFilter(logging.Filter):
    """Copies the current reconcile (if any) onto each record it lets through."""

    def filter(self, record: logging.LogRecord) -> bool:
        rec = _CURRENT.get()
        if rec is not None:
            record.object = getattr(record, "object", rec.object)
            record.namespace = getattr(record, "namespace", rec.namespace)
            record.reconcile_id = rec.id
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time (RFC 3339, UTC), level, logger, msg, the
    reconcile context when there is one, and the traceback as `error`."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for name in CONTEXT_FIELDS:
            value = getattr(record, name, None)
            if value is not None:
                line[name] = value
        if record.exc_info:
            line["error"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str, ensure_ascii=False)


class TextFormatter(logging.Formatter):
    """The classic line, with `[ModelDeployment/x ns=... rid=...]` when inside a reconcile."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def formatMessage(self, record: logging.LogRecord) -> str:
        text = super().formatMessage(record)
        rid = getattr(record, "reconcile_id", None)
        if rid is not None:
            text += f" [{record.object} ns={record.namespace} rid={rid}]"
        decision = getattr(record, "decision", None)
        if decision is not None and decision not in text:
            text += f" decision: {decision}"
        return text


def configure(log_format: str = "text", level: int = logging.INFO) -> None:
    """The root logger's one handler (stderr) with the chosen format and the context filter."""
    if log_format not in FORMATS:
        raise ValueError(f"log format must be one of {FORMATS}, not {log_format!r}")
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter() if log_format == "json" else TextFormatter())
    # On the handler, not a logger: records of every logger (kopf's too) pass here.
    handler.addFilter(ContextFilter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    # Python's warnings too, so that a JSON log stays one object per line.
    logging.captureWarnings(True)
