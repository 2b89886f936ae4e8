"""The sidecar's pure rollout parts: traffic file, selection, answers, figures."""

from __future__ import annotations

import gzip
import json
import struct

import numpy as np
import pytest

from modelops.drift.figures import LATENCY_BOUNDS, RolloutFigures
from modelops.drift.outputs import (
    Answer,
    OutputError,
    compare_answers,
    parse_infer_response,
    read_answer,
)
from modelops.drift.traffic import (
    NO_ROLLOUT,
    Agreement,
    Candidate,
    PercentSelector,
    TrafficError,
    TrafficSettings,
    parse_traffic,
)
from modelops.drift.traffic_plane import CompareWorker, Rollout, TrafficWatcher, ready_versions

FULL = {
    "epoch": "8",
    "candidate": {"version": "8", "http": "http://fraud-b.ml.svc:8000", "grpc": "fraud-b:8001"},
    "mirrorPercent": 10,
    "canaryWeight": 0,
    "agreement": {"mode": "RelativeTolerance", "tolerance": 0.02},
}

# -- the traffic file ------------------------------------------------------------------


def test_full_settings() -> None:
    s = parse_traffic(json.dumps(FULL))
    assert s == TrafficSettings(
        epoch="8",
        candidate=Candidate("8", "http://fraud-b.ml.svc:8000", "fraud-b:8001"),
        mirror_percent=10.0,
        canary_weight=0.0,
        agreement=Agreement("RelativeTolerance", 0.02),
    )
    assert s.candidate is not None and s.candidate.http_address == ("fraud-b.ml.svc", 8000)


@pytest.mark.parametrize("content", [b"", b"  \n", b"{}", "{}"])
def test_empty_means_no_rollout(content: bytes | str) -> None:
    assert parse_traffic(content) == NO_ROLLOUT


def test_defaults_and_numeric_versions() -> None:
    s = parse_traffic(json.dumps({"candidate": {"version": 9, "http": "http://b:8000"}}))
    assert s.epoch == "9"  # the candidate version when no epoch is given
    assert s.agreement == Agreement("Argmax", None)
    assert s.mirror_percent == s.canary_weight == 0


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        ("[1]", "JSON object"),
        ("{", "not JSON"),
        ({"mirrorPercent": 10}, "need a candidate"),
        ({**FULL, "mirrorPercent": 101}, "mirrorPercent must be in [0, 100]"),
        ({**FULL, "canaryWeight": -1}, "canaryWeight must be in [0, 100]"),
        ({**FULL, "canaryWeight": "10"}, "canaryWeight must be a number"),
        ({**FULL, "mirrorPercent": True}, "mirrorPercent must be a number"),
        ({**FULL, "candidate": {"version": "8"}}, "candidate.http must be a string"),
        ({**FULL, "candidate": {"version": "8", "http": "https://b:1"}}, "http://host:port"),
        ({**FULL, "candidate": {"version": "", "http": "http://b:1"}}, "must not be empty"),
        ({**FULL, "candidate": "b"}, "candidate must be an object"),
        ({**FULL, "agreement": {"mode": "Exact"}}, "agreement.mode must be one of"),
        ({**FULL, "agreement": {"mode": "Argmax", "tolerance": 0.1}}, "RelativeTolerance only"),
        ({**FULL, "agreement": {"mode": "RelativeTolerance", "tolerance": 0}}, "> 0"),
        ({**FULL, "epoch": ["8"]}, "epoch must be a string"),
    ],
)
def test_invalid_settings_name_the_field(doc: object, message: str) -> None:
    text = doc if isinstance(doc, str) else json.dumps(doc)
    with pytest.raises(TrafficError, match=message.replace("[", r"\[").replace("]", r"\]")):
        parse_traffic(text)


def test_roles() -> None:
    s = parse_traffic(json.dumps({**FULL, "canaryWeight": 0, "mirrorPercent": 10}))
    assert s.role("7") == "stable" and s.acts("7")
    assert s.role("8") == "candidate" and not s.acts("8")  # loop prevention
    assert s.role("") == "stable"
    quiet = parse_traffic(json.dumps({**FULL, "mirrorPercent": 0}))
    assert not quiet.acts("7")  # a candidate, but nothing to mirror or split
    assert not NO_ROLLOUT.acts("7") and NO_ROLLOUT.role("7") == "stable"


# -- selection -------------------------------------------------------------------------


@pytest.mark.parametrize("percent", [0, 1, 10, 30, 33.3, 50, 99, 100])
def test_selector_takes_the_share_exactly_and_evenly(percent: float) -> None:
    sel = PercentSelector(percent)
    taken = [sel.take() for _ in range(1000)]
    assert abs(sum(taken) - percent * 10) <= 1
    if 0 < percent <= 50:
        # evenly spread: no two picks closer than 100 / percent - 1 calls
        picks = [i for i, t in enumerate(taken) if t]
        assert min(np.diff(picks)) >= int(100 / percent)


# -- reading answers -------------------------------------------------------------------


def json_answer(outputs: dict[str, np.ndarray], datatype: str = "FP32") -> bytes:
    return json.dumps(
        {
            "model_name": "m",
            "outputs": [
                {
                    "name": n,
                    "datatype": datatype,
                    "shape": list(a.shape),
                    "data": a.ravel().tolist(),
                }
                for n, a in outputs.items()
            ],
        }
    ).encode()


def binary_answer(outputs: dict[str, np.ndarray]) -> tuple[bytes, int]:
    """As Triton answers tritonclient: JSON header, then raw output bytes."""
    meta, raws = [], []
    for n, a in outputs.items():
        raw = a.astype("<f4").tobytes()
        meta.append(
            {
                "name": n,
                "datatype": "FP32",
                "shape": list(a.shape),
                "parameters": {"binary_data_size": len(raw)},
            }
        )
        raws.append(raw)
    head = json.dumps({"model_name": "m", "outputs": meta}).encode()
    return head + b"".join(raws), len(head)


def test_json_and_binary_answers_read_the_same() -> None:
    x = np.arange(6, dtype=np.float32).reshape(2, 3)
    y = np.array([[1.5], [2.5]], dtype=np.float32)
    body, hl = binary_answer({"scores": x, "value": y})
    a = parse_infer_response(body, hl)
    b = parse_infer_response(json_answer({"scores": x, "value": y}))
    for t in (a, b):
        np.testing.assert_array_equal(t["scores"], x)
        np.testing.assert_array_equal(t["value"], y)


def test_bytes_outputs_json_and_binary() -> None:
    doc = {"outputs": [{"name": "label", "datatype": "BYTES", "shape": [2], "data": ["a", "bc"]}]}
    assert list(parse_infer_response(json.dumps(doc).encode())["label"]) == [b"a", b"bc"]
    raw = struct.pack("<I", 1) + b"a" + struct.pack("<I", 2) + b"bc"
    head = json.dumps(
        {
            "outputs": [
                {
                    "name": "label",
                    "datatype": "BYTES",
                    "shape": [2],
                    "parameters": {"binary_data_size": len(raw)},
                }
            ]
        }
    ).encode()
    assert list(parse_infer_response(head + raw, len(head))["label"]) == [b"a", b"bc"]


@pytest.mark.parametrize(
    ("body", "hl"),
    [
        (b"not json", None),
        (b'{"error": "model not ready"}', None),
        (b'{"outputs": [{"name": "o", "datatype": "FP32", "shape": [3], "data": [1]}]}', None),
        (b'{"outputs": [{"name": "o", "datatype": "FP32", "shape": [1],'
         b' "parameters": {"binary_data_size": 8}}]}', None),
        (b"{}", 10),
        (b'{"outputs": [{"name": "o", "datatype": "NOPE", "shape": [1], "data": [1]}]}', None),
    ],
)  # fmt: skip
def test_unreadable_answers_raise_output_error(body: bytes, hl: int | None) -> None:
    with pytest.raises(OutputError):
        parse_infer_response(body, hl)


def test_read_answer_undoes_gzip_and_chunking() -> None:
    x = np.array([[0.1, 0.9]], dtype=np.float32)
    body = gzip.compress(json_answer({"o": x}))
    chunked = b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body)
    got = read_answer(Answer(chunked, None, "gzip", True), 1 << 20)
    np.testing.assert_array_equal(got["o"], x)
    with pytest.raises(OutputError):  # decompressed size above the cap
        read_answer(Answer(body, None, "gzip", False), 10)


def test_compare_answers_rules() -> None:
    s = np.array([[0.1, 0.7, 0.2], [0.5, 0.3, 0.2]], dtype=np.float32)
    stable = Answer(json_answer({"scores": s}))
    scaled, hl = binary_answer({"scores": s * 2})
    same_class = Answer(scaled, hl)
    flipped = Answer(json_answer({"scores": -s}))
    renamed = Answer(json_answer({"probs": s}))
    kw = {"mode": "Argmax", "tolerance": None, "max_bytes": 1 << 20}
    assert compare_answers(stable, same_class, **kw) is True
    assert compare_answers(stable, flipped, **kw) is False
    assert compare_answers(stable, renamed, **kw) is False  # a name mismatch disagrees
    assert compare_answers(stable, Answer(b"garbage"), **kw) is False  # broken candidate
    assert compare_answers(Answer(b"garbage"), stable, **kw) is None  # nothing to compare
    tol = {"mode": "RelativeTolerance", "tolerance": 0.01, "max_bytes": 1 << 20}
    assert compare_answers(stable, same_class, **tol) is False
    near = Answer(json_answer({"scores": s * 1.001}))
    assert compare_answers(stable, near, **tol) is True


# -- figures ---------------------------------------------------------------------------


def test_figures_accumulate_prometheus_style() -> None:
    f = RolloutFigures("8")
    for seconds, status in ((0.001, 200), (0.005, 200), (0.02, 500), (3.0, 200), (60.0, 0)):
        f.observe(status, seconds)
    doc = f.document(version="7", role="stable", loaded={"m": ["7"]})
    assert doc["requests"] == 5 and doc["errors"] == 2
    b = doc["latencyBuckets"]
    assert list(b)[-1] == "+Inf" and len(b) == len(LATENCY_BOUNDS) + 1
    assert b["0.005"] == 2  # le: an observation equal to the bound is in it
    assert b["0.01"] == 2 and b["0.025"] == 3 and b["2.5"] == 3 and b["5"] == 4
    assert b["10"] == 4 and b["+Inf"] == 5
    counts = list(b.values())
    assert counts == sorted(counts)  # cumulative
    assert doc["version"] == "7" and doc["epoch"] == "8" and doc["role"] == "stable"
    assert doc["loaded"] == {"m": ["7"]}


def test_merge_figures_reads_the_document() -> None:
    from modelops.render.gating.build_inputs import merge_figures

    stable = RolloutFigures("8")
    for _ in range(100):
        stable.observe(200, 0.004)
    # 12 copies sent, 2 failed at the candidate (errors, not disagreement), 10 compared
    stable.mirrored, stable.mirror_errors, stable.compared, stable.agreed = 12, 2, 10, 9
    cand = RolloutFigures("8")
    for i in range(10):
        cand.observe(500 if i == 0 else 200, 0.2)
    merged = merge_figures(
        [stable.document(version="7", role="stable", loaded={})],
        [cand.document(version="8", role="candidate", loaded={})],
    )
    # The candidate is judged from both sides: it counted 1 error itself, the stable
    # sidecars saw 2 of their copies fail there; the larger count stands.
    assert merged.stable.requests == 100 and merged.candidate.errors == 2
    assert merged.mirrored == 10 and merged.agreed == 9  # agreement 0.9, not 9/12
    assert (merged.stable.latency_p99_s or 1) <= 0.005
    assert 0.1 < (merged.candidate.latency_p99_s or 0) <= 0.25


def test_epoch_change_resets_and_late_results_stay_in_their_epoch() -> None:
    r = Rollout("7")
    r.apply(parse_traffic(json.dumps(FULL)))
    assert r.acting and r.role == "stable"
    old = r.figures
    old.observe(200, 0.01)
    old.mirrored += 1
    r.apply(parse_traffic(json.dumps({**FULL, "mirrorPercent": 20})))
    assert r.figures is old  # same epoch: new share, same counters
    r.apply(parse_traffic(json.dumps({**FULL, "epoch": "9"})))
    assert r.figures is not old and r.figures.requests == 0 and r.figures.epoch == "9"
    # a comparison that finishes after the switch counts in the epoch it started in
    worker = CompareWorker(1 << 20)
    s = Answer(json_answer({"o": np.array([[1.0, 2.0]])}))
    worker.run_one(old, s, s, "Argmax", None)
    worker.run_one(old, s, None, "Argmax", None)  # the candidate's answer was too large
    assert (old.compared, old.agreed, old.not_compared) == (1, 1, 1)
    assert r.figures.compared == 0
    r.apply(NO_ROLLOUT)
    assert not r.acting and r.role == "stable"


def test_candidate_sidecar_never_acts() -> None:
    r = Rollout("8")
    r.apply(parse_traffic(json.dumps({**FULL, "canaryWeight": 50})))
    assert r.role == "candidate" and not r.acting


def test_watcher_keeps_last_good_settings(tmp_path, caplog) -> None:
    path = tmp_path / "traffic.json"
    applied: list[TrafficSettings] = []
    w = TrafficWatcher(str(path), applied.append)
    assert w.check() == NO_ROLLOUT  # a missing file: no rollout
    assert w.check() is None  # nothing changed since
    path.write_text(json.dumps(FULL))
    good = w.check()
    assert good is not None and good.mirror_percent == 10
    assert w.check() is None  # unchanged content
    path.write_text('{"mirrorPercent": 500}')
    assert w.check() is None and w.errors == 1
    assert w.check() is None and w.errors == 1  # logged once per change
    assert "keeping the last good settings" in caplog.text
    path.write_text("")
    assert w.check() == NO_ROLLOUT


def test_ready_versions_from_the_repository_index() -> None:
    index = [
        {"name": "fraud", "version": "10", "state": "READY"},
        {"name": "fraud", "version": "9", "state": "READY"},
        {"name": "fraud", "version": "8", "state": "UNAVAILABLE"},
        {"name": "other"},
    ]
    assert ready_versions(index) == {"fraud": ["9", "10"]}
    assert ready_versions({"error": "x"}) == {}


def test_model_version_from_the_downward_api_variable(monkeypatch) -> None:
    import argparse

    from modelops.drift import cli

    def parse(*argv: str) -> argparse.Namespace:
        parser = argparse.ArgumentParser()
        cli.add_arguments(parser)
        return parser.parse_args(list(argv))

    monkeypatch.delenv("MODELOPS_DRIFT_MODEL_VERSION", raising=False)
    monkeypatch.setenv("MODELOPS_MODEL_VERSION", "7")
    args = parse()
    assert args.model_version == "7"
    assert args.traffic_file == "/etc/modelops/traffic/traffic.json"
    assert (args.mirror_max_in_flight, args.mirror_timeout) == (16, 10.0)
    assert parse("--model-version", "8").model_version == "8"
    with pytest.raises(SystemExit):
        parse("--mirror-max-in-flight", "0")
