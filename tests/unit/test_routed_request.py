"""The rollout's choice for one HTTP infer request and the stable answer kept for its
mirror (modelops.drift.routed_request), on a real Rollout with real settings; the
proxy's tests drive the same code through sockets (tests/drift/test_sidecar_rollout.py)."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any, cast

from modelops.drift.http1 import Head, parse_request
from modelops.drift.routed_request import RoutedRequest, route
from modelops.drift.traffic import Candidate, TrafficSettings
from modelops.drift.traffic_plane import Rollout

INFER = b"POST /v2/models/m/infer HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n"
ANSWER_HEAD = b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\nInference-Header-Content-Length: 2"
# The end of a request reads only the proxy's in-place route (none here) and, for a
# kept 200 answer, starts the mirror through it (the socket tests cover that).
NO_PROXY = cast(Any, SimpleNamespace(inplace=None))


def _rollout(
    mirror: float = 0.0,
    weight: float = 0.0,
    self_compare: float = 0.0,
    in_flight: int = 16,
    max_answer: int = 1024,
) -> Rollout:
    rollout = Rollout("7", mirror_max_in_flight=in_flight, max_answer_bytes=max_answer)
    rollout.apply(
        TrafficSettings(
            epoch="8",
            candidate=Candidate("8", "http://cand:8000", "cand:8001"),
            mirror_percent=mirror,
            canary_weight=weight,
            self_compare_percent=self_compare,
        )
    )
    assert rollout.acting
    return rollout


def _route(rollout: Rollout, raw: bytes = INFER, streamed: bool = False) -> RoutedRequest | None:
    _, head = parse_request(raw)
    return route(rollout, head, candidate_reachable=True, streamed=streamed, now=0.0)


def test_a_full_split_sends_every_request_to_the_candidate() -> None:
    routed = _route(_rollout(weight=100))
    assert routed is not None and routed.split and routed.capture is None


def test_a_mirrored_request_keeps_the_answer_past_its_head() -> None:
    rollout = _rollout(mirror=100)
    routed = _route(rollout)
    assert routed is not None and not routed.split and routed.capture is not None
    assert rollout.mirrors_in_flight == 1
    client_head = b"HTTP/1.1 200 OK\r\n\r\n"
    routed.response_head(Head(ANSWER_HEAD), "length", len(client_head))
    # The client's head and the first body bytes can come in one write.
    routed.keep(client_head + b"ab", b"")
    routed.keep(b"c", b"d")
    assert bytes(routed.capture or b"") == b"abcd"
    assert routed.answer == (2, None, False)


def test_an_answer_above_the_cap_drops_the_mirror_and_frees_its_slot() -> None:
    rollout = _rollout(mirror=100, max_answer=16)
    routed = _route(rollout)
    assert routed is not None
    routed.response_head(Head(ANSWER_HEAD), "length", 0)
    routed.keep(b"x" * 10, b"")
    routed.keep(b"x" * 10, b"")
    assert routed.capture is None
    assert rollout.figures.mirror_dropped == 1 and rollout.mirrors_in_flight == 0
    routed.keep(b"more", b"")  # nothing kept any more, nothing counted twice
    assert rollout.figures.mirror_dropped == 1


def test_a_streamed_body_is_never_mirrored() -> None:
    rollout = _rollout(mirror=100)
    routed = _route(rollout, streamed=True)
    assert routed is not None and routed.capture is None
    assert rollout.figures.mirror_dropped == 1 and rollout.mirrors_in_flight == 0


def test_requests_from_another_sidecar_are_left_alone() -> None:
    rollout = _rollout(mirror=100, weight=50)
    for field in (b"X-Modelops-Mirror: 1", b"X-Modelops-Split: 1"):
        raw = INFER[:-2] + field + b"\r\n\r\n"
        assert _route(rollout, raw) is None
    assert rollout.mirrors_in_flight == 0


def test_the_in_flight_cap_bounds_kept_answers() -> None:
    rollout = _rollout(mirror=100, in_flight=2)
    kept = [_route(rollout) for _ in range(3)]
    assert [r is not None and r.capture is not None for r in kept] == [True, True, False]
    assert rollout.figures.mirror_dropped == 1


def test_a_client_that_leaves_ends_its_mirror_once() -> None:
    rollout = _rollout(mirror=100)
    routed = _route(rollout)
    assert routed is not None
    routed.abandon()
    routed.abandon()
    assert rollout.mirrors_in_flight == 0


def test_the_end_counts_the_candidates_answer_or_the_stable_one() -> None:
    rollout = _rollout(weight=100)
    split = _route(rollout)
    assert split is not None
    line, head = parse_request(INFER)
    split.end(NO_PROXY, 200, 0.01, (line, head, b"{}"), by_candidate=True)
    assert rollout.figures.split == 1
    # A split the candidate failed was answered by this pod: a stable answer.
    fell_back = _route(rollout)
    assert fell_back is not None
    fell_back.end(NO_PROXY, 200, 0.01, (line, head, b"{}"), by_candidate=False)
    assert rollout.figures.split == 1
    assert rollout.figures.requests == 1


def test_a_failed_stable_answer_is_not_mirrored() -> None:
    rollout = _rollout(mirror=100)
    routed = _route(rollout)
    assert routed is not None
    routed.response_head(Head(b"HTTP/1.1 500 Internal Server Error"), "length", 0)
    line, head = parse_request(INFER)
    routed.end(NO_PROXY, 500, 0.01, (line, head, b"{}"), by_candidate=False)
    assert rollout.mirrors_in_flight == 0 and rollout.figures.mirrored == 0
