"""modelops.logs: the JSON and text formatters and the reconcile context."""

from __future__ import annotations

import json
import logging
import sys
import threading

import pytest

from modelops import logs


def _record(msg: str = "applied %s", *args: object, **extra: object) -> logging.LogRecord:
    record = logging.LogRecord("modelops.actuator", logging.INFO, __file__, 1, msg, args, None)
    record.__dict__.update(extra)
    return record


def _filtered(record: logging.LogRecord) -> logging.LogRecord:
    assert logs.ContextFilter().filter(record)
    return record


def test_json_line_outside_a_reconcile_has_no_context_fields():
    line = json.loads(logs.JsonFormatter().format(_filtered(_record("applied %s", "x"))))
    assert line["msg"] == "applied x"
    assert line["level"] == "INFO"
    assert line["logger"] == "modelops.actuator"
    assert line["time"].endswith("+00:00")
    assert not set(logs.CONTEXT_FIELDS) & set(line)


def test_json_line_inside_a_reconcile_names_object_namespace_id_and_decision():
    with logs.reconciling("ModelDeployment", "team-a", "fraud") as rec:
        record = _filtered(_record(decision="apply Deployment fraud"))
    line = json.loads(logs.JsonFormatter().format(record))
    assert line["object"] == "ModelDeployment/fraud"
    assert line["namespace"] == "team-a"
    assert line["reconcile_id"] == rec.id
    assert len(rec.id) == 12
    assert line["decision"] == "apply Deployment fraud"


def test_json_line_carries_the_traceback_and_survives_odd_values():
    try:
        raise ValueError("boom")
    except ValueError:
        record = _record("failed %s", object(), decision={"a": 1})
        record.exc_info = sys.exc_info()
    line = json.loads(logs.JsonFormatter().format(record))
    assert "ValueError: boom" in line["error"]
    assert line["decision"] == {"a": 1}
    assert "\n" not in logs.JsonFormatter().format(record)  # one line per record


def test_text_line_adds_the_context_as_a_suffix():
    with logs.reconciling("TrainingJob", "ns", "job") as rec:
        text = logs.TextFormatter().format(_filtered(_record("x", decision="no change")))
    assert text.endswith(f"x [TrainingJob/job ns=ns rid={rec.id}] decision: no change")
    assert (
        logs.TextFormatter()
        .format(_filtered(_record("plain")))
        .endswith("modelops.actuator: plain")
    )


def test_the_context_ends_with_the_reconcile_and_ids_differ():
    with logs.reconciling("ModelDeployment", "a", "b") as first:
        assert logs.event_annotations() == {logs.EVENT_ANNOTATION: first.id}
    assert logs.current() is None
    assert logs.event_annotations() == {}
    with logs.reconciling("ModelDeployment", "a", "b") as second:
        assert second.id != first.id


def test_threads_do_not_see_each_others_reconcile():
    seen: list[object] = []
    with logs.reconciling("ModelDeployment", "a", "b"):
        thread = threading.Thread(target=lambda: seen.append(logs.current()))
        thread.start()
        thread.join()
    assert seen == [None]


def test_configure_refuses_an_unknown_format():
    with pytest.raises(ValueError, match="log format"):
        logs.configure("xml")
