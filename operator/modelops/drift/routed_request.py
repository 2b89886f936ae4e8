"""What a gated rollout does with one HTTP infer request while it acts (docs/rollouts.md).

:func:`route` chooses, when the request's head has been read: sent to the
candidate (the weighted split), its answer kept for a mirror to the
candidate, kept for a second call to this pod's own Triton (the noise floor
of the comparison), or left alone. :class:`RoutedRequest` is that choice and
the bytes of Triton's answer kept as they stream to the client (at most
``stats_max_bytes``; above it the mirror is dropped and counted). When the
exchange ends, :meth:`RoutedRequest.end` counts it in the epoch's figures and
starts the mirror.

Not here: relaying the bytes, including to the candidate's pool and back to
this pod's Triton when the candidate fails a split (the client side,
:mod:`modelops.drift.proxy`); the mirrored exchange (:mod:`modelops.drift.mirror`);
the rollout's state and figures (:mod:`modelops.drift.traffic_plane`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from modelops.drift.http1 import Head, RequestHead, RequestLine
from modelops.drift.mirror import answer_fields, start_mirror
from modelops.drift.outputs import Answer
from modelops.drift.traffic import MIRROR_HEADER, SPLIT_HEADER
from modelops.drift.traffic_plane import Rollout

if TYPE_CHECKING:
    from modelops.drift.proxy import DriftProxy


def route(
    rollout: Rollout,
    head: RequestHead,
    *,
    candidate_reachable: bool,
    streamed: bool,
    now: float,
) -> RoutedRequest | None:
    """The rollout's choice for an infer request (``ParsedHead.infer``); None for
    one it may not touch.

    ``streamed``: the body goes to Triton as it arrives (above the statistics
    cap), so it cannot be sent a second time and is never mirrored."""
    if head.get(MIRROR_HEADER) is not None or head.get(SPLIT_HEADER) is not None:
        return None  # sent by another sidecar: never passed on again
    split = rollout.choose_split(now, candidate_reachable)
    if split is not None:
        return RoutedRequest(rollout, split=split)
    routed = RoutedRequest(rollout)
    if rollout.mirror.percent and rollout.mirror.take():
        if streamed:
            rollout.figures.mirror_dropped += 1  # body above the stats cap: not held
        elif rollout.mirror_slot():
            # The slot is taken now, while Triton's answer is being kept: the cap
            # bounds kept answers as well as mirrors on the wire.
            rollout.mirrors_started += 1
            routed.capture = bytearray()
        return routed
    if (
        rollout.self_compare.percent
        and rollout.self_compare.take()
        and not streamed
        and rollout.mirror_slot()
    ):
        rollout.mirrors_started += 1
        routed.capture = bytearray()
        routed.self_compare = True
    return routed


class RoutedRequest:
    """One infer request the acting rollout considered, from its head to its end."""

    __slots__ = ("answer", "capture", "capture_skip", "rollout", "self_compare", "split")

    def __init__(self, rollout: Rollout, *, split: bool = False) -> None:
        self.rollout = rollout
        self.split = split  # chosen for the candidate (the client side picks its pool)
        self.self_compare = False  # the kept answer is compared with a second own one
        self.capture: bytearray | None = None  # Triton's answer, kept for a mirror
        self.capture_skip = 0  # response head bytes at the start of the next send
        self.answer: tuple[int | None, str | None, bool] | None = None  # its header fields

    def response_head(self, head: Head, framing: str, client_head_bytes: int) -> None:
        """Triton's answer starts; the client gets ``client_head_bytes`` of head first."""
        if self.capture is not None:
            self.capture_skip = client_head_bytes
            self.answer = answer_fields(head, framing)

    def keep(self, first: bytes, second: bytes) -> None:
        """Keep what the client is sent of Triton's answer, past its head, up to the
        rollout's ``max_answer_bytes`` (the sidecar's ``stats_max_bytes``)."""
        cap = self.capture
        if cap is None:
            return
        skip = self.capture_skip
        if skip:
            self.capture_skip = max(0, skip - len(first))
            first = first[skip:]
        if len(cap) + len(first) + len(second) > self.rollout.max_answer_bytes:
            self.capture = None  # too large to compare: the mirror is not sent
            self.rollout.figures.mirror_dropped += 1
            self.rollout.mirrors_ended += 1
            return
        cap += first
        cap += second

    def abandon(self) -> None:
        """The client left before the answer ended: no mirror."""
        if self.capture is not None:
            self.capture = None
            self.rollout.mirrors_ended += 1

    def end(
        self,
        proxy: DriftProxy,
        status: int,
        seconds: float,
        request: tuple[RequestLine, RequestHead, bytes],
        *,
        by_candidate: bool,
    ) -> None:
        """The exchange ended with ``status``: counted, and the mirror sent if one was
        kept. ``by_candidate``: the candidate answered. A split request the candidate
        failed was counted against it then, and this pod's Triton answered it instead
        (the client side's fallback): it ends here as a stable answer."""
        rollout = self.rollout
        if by_candidate:
            rollout.split_answered()
            if proxy.inplace is not None:
                proxy.inplace.observe(status, seconds)
            return
        rollout.figures.observe(status, seconds)
        capture, self.capture = self.capture, None
        if capture is None:
            return
        if self.answer is not None and status == 200:
            line, head, body = request
            stable = Answer(bytes(capture), *self.answer)
            start_mirror(proxy, line, head, body, stable, self.self_compare)
        else:
            rollout.mirrors_ended += 1  # only successful requests mirror
