"""In-place routing in the sidecar (drift/inplace.py): targets, priority, traffic file."""

from __future__ import annotations

import json

import pytest

from modelops.drift.inplace import (
    MIRROR_PRIORITY,
    InPlaceError,
    InPlaceTarget,
    candidate_target,
    in_place_route,
    retarget_head,
    with_priority,
)
from modelops.drift.traffic import InPlace, TrafficError, parse_traffic


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        ("/v2/models/clf/infer", "/v2/models/clf.candidate/versions/8/infer"),
        ("/v2/models/clf/versions/7/infer", "/v2/models/clf.candidate/versions/8/infer"),
        ("/v2/models/a%20b/infer?x=1", "/v2/models/a%20b.candidate/versions/8/infer?x=1"),
    ],
)
def test_infer_targets_go_to_the_candidate_version(target: str, expected: str) -> None:
    assert candidate_target(target, "8") == expected


@pytest.mark.parametrize("target", ["/v2/models/clf", "/v2/models/clf/ready", "/metrics"])
def test_other_targets_are_refused(target: str) -> None:
    with pytest.raises(InPlaceError):
        candidate_target(target, "8")


def test_retarget_head_changes_only_the_request_line() -> None:
    head = b"POST /v2/models/clf/infer HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n"
    out = retarget_head(head, "8")
    assert out == head.replace(
        b"/v2/models/clf/infer", b"/v2/models/clf.candidate/versions/8/infer"
    )


def test_priority_in_a_json_request() -> None:
    body = json.dumps({"inputs": [{"name": "X", "datatype": "FP32", "shape": [1], "data": [1]}]})
    head = b"POST /v2/models/clf/infer HTTP/1.1\r\nContent-Length: %d" % len(body)
    new_head, new_body = with_priority(head, body.encode(), 2)
    assert json.loads(new_body)["parameters"] == {"priority": 2}
    assert new_head.endswith(b"Content-Length: %d" % len(new_body))


def test_priority_with_binary_tensors_keeps_the_tensor_bytes() -> None:
    header = json.dumps({"inputs": [], "parameters": {"timeout": 5}}).encode()
    tensor = bytes(range(16))
    body = header + tensor
    head = (
        b"POST /v2/models/clf/infer HTTP/1.1\r\nInference-Header-Content-Length: %d\r\n"
        b"Content-Length: %d" % (len(header), len(body))
    )
    new_head, new_body = with_priority(head, body, MIRROR_PRIORITY)
    lines = dict(line.split(b": ", 1) for line in new_head.split(b"\r\n")[1:])
    n = int(lines[b"Inference-Header-Content-Length"])
    assert json.loads(new_body[:n])["parameters"] == {"timeout": 5, "priority": 2}
    assert new_body[n:] == tensor and int(lines[b"Content-Length"]) == len(new_body)


def test_unreadable_json_copy_goes_without_priority() -> None:
    target = InPlaceTarget("8")
    head = b"POST /v2/models/clf/infer HTTP/1.1\r\nContent-Length: 3\r\n\r\n"
    new_head, body = target.mirror_request(head, b"{{{")
    assert body == b"{{{" and b"/v2/models/clf.candidate/versions/8/infer" in new_head


def test_copies_are_shed_at_the_live_limit() -> None:
    assert InPlaceTarget("8", live_limit=4).admits(3)
    assert not InPlaceTarget("8", live_limit=4).admits(4)
    assert InPlaceTarget("8", live_limit=0).admits(10_000)


def test_traffic_file_in_place_candidate() -> None:
    doc = {"epoch": "8.1", "candidate": {"version": "8", "inPlace": {"liveLimit": 4}},
           "mirrorPercent": 100}  # fmt: skip
    settings = parse_traffic(json.dumps(doc))
    assert settings.candidate is not None
    assert settings.candidate.in_place == InPlace(live_limit=4, priority=True)
    route = in_place_route(settings, "7", None)
    assert route is not None and route.target == InPlaceTarget("8", 4, True)
    # Same settings: the same route and its figures; on the candidate side: none.
    assert in_place_route(settings, "7", route) is route
    assert in_place_route(settings, "8", route) is None
    for bad in ({"liveLimit": -1}, {"priority": "yes"}, "on"):
        with pytest.raises(TrafficError, match="inPlace"):
            parse_traffic(json.dumps({**doc, "candidate": {"version": "8", "inPlace": bad}}))


def test_separate_candidate_has_no_route() -> None:
    doc = {"candidate": {"version": "8", "http": "http://c:8000"}, "mirrorPercent": 10}
    assert in_place_route(parse_traffic(json.dumps(doc)), "7", None) is None


def test_what_the_traffic_file_asks_of_the_agent() -> None:
    from modelops.drift.inplace_agent import Wanted, wanted

    cand = {"version": "8", "inPlace": {}}
    assert wanted(b'{"epoch": "8.1", "stage": "8"}', "7") == Wanted(stage=8)
    assert wanted(json.dumps({"candidate": cand}).encode(), "7") == Wanted(load=8)
    promote = json.dumps({"candidate": cand, "promote": "8"}).encode()
    assert wanted(promote, "7") == Wanted(promote=8)
    # A promote naming another version is not this candidate's: it is only loaded.
    assert wanted(json.dumps({"candidate": cand, "promote": "9"}).encode(), "7") == Wanted(load=8)
    # Nothing for the agent: no rollout, a separate candidate, the pod's own version,
    # garbage.
    separate = {"candidate": {"version": "8", "http": "http://c:8000"}}
    for content in (b"", b"{}", json.dumps(separate).encode(), b"[1]", b"{not json"):
        assert wanted(content, "7") == Wanted()
    assert wanted(json.dumps({"candidate": cand}).encode(), "8") == Wanted()
    assert wanted(b'{"stage": "../x"}', "7") == Wanted()


def test_the_agent_follows_the_served_version_both_ways() -> None:
    """``served`` (written once status names a promoted version) is what the pod must
    serve without a rollout: the agent swaps to it when its Triton serves another, up
    after a promotion it missed, down after one rolled back (no ``served``: the
    template's version)."""
    from modelops.drift.inplace_agent import Wanted, served_version, wanted

    served8 = b'{"served": "8"}'
    assert served_version(served8, "7") == "8"
    assert served_version(b"{}", "7") == "7" and served_version(b"{no", "7") == "7"
    assert served_version(b'{"served": "../8"}', "7") == "7"
    # Serving what the file names: nothing to do (a pod started on it by its init
    # container, or one that promoted and completed).
    assert wanted(served8, "7") == Wanted()
    assert wanted(served8, "7", "8") == Wanted()
    assert wanted(b"{}", "7", "7") == Wanted()
    # Serving another one: swap.
    assert wanted(served8, "7", "7") == Wanted(promote=8)
    assert wanted(b"{}", "7", "8") == Wanted(promote=7)
    assert wanted(b'{"served": "7"}', "7", "8") == Wanted(promote=7)
    # A rollout in flight decides against what the pod serves, not the template.
    cand = {"version": "7", "inPlace": {}}
    assert wanted(json.dumps({"candidate": cand, "served": "8"}).encode(), "7", "8") == Wanted(
        load=7
    )
    assert wanted(json.dumps({"candidate": cand}).encode(), "7", "7") == Wanted()
    assert wanted(b'{"stage": "8", "served": "8"}', "7", "8") == Wanted()


def test_the_agent_takes_what_its_triton_serves_from_the_repository(tmp_path) -> None:
    """The version directory the init container pulled (or the last swap left), not the
    traffic file, which may have changed since the pod started."""
    from modelops.drift.inplace_agent import InPlaceAgent

    agent = InPlaceAgent(
        traffic_file=str(tmp_path / "traffic.json"), repository=tmp_path / "models",
        model="clf", model_uri="file:///nowhere", triton_url="http://127.0.0.1:1",
        own_version="7",
    )  # fmt: skip
    assert agent._on_disk() is None  # nothing pulled yet
    (tmp_path / "models" / "clf" / "8").mkdir(parents=True)
    (tmp_path / "models" / "clf" / ".hidden-9").mkdir()
    (tmp_path / "models" / "clf.candidate" / "9").mkdir(parents=True)
    assert agent._on_disk() == "8"
