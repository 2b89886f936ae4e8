"""A gated rollout's mirrored HTTP infer requests: a copy to the candidate, kept to compare.

Holds :func:`start_mirror` (whether a request the stable Triton answered with
200 is copied, and the copy's head: ``X-Modelops-Mirror``, re-targeted at the
in-place candidate where there is one), :class:`Mirror` (the copy's exchange
on a candidate connection, its answer kept up to ``stats_max_bytes``, ended by
the comparison or a counted mirror error) and :func:`answer_fields` (the
header fields of an answer the comparison needs, stable or candidate).

Not here: choosing which requests are mirrored or split and keeping the
stable answer as it streams to the client (:mod:`modelops.drift.routed_request`),
the candidate's pool of connections (the proxy,
on each traffic-file change), the comparison itself and the figures
(:mod:`modelops.drift.traffic_plane`). The gRPC relay mirrors through its own
grpcio client (:mod:`modelops.drift.grpc_proxy`).
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from modelops.drift.http1 import Head, RequestHead, RequestLine, upstream_request_head
from modelops.drift.outputs import Answer
from modelops.drift.upstream_pool import Pool, Upstream

if TYPE_CHECKING:
    from modelops.drift.proxy import DriftProxy

# Field added to what goes to the candidate (replacing the head's final CRLF).
MIRROR_FIELD = b"X-Modelops-Mirror: 1\r\n\r\n"


def answer_fields(head: Head, framing: str) -> tuple[int | None, str | None, bool]:
    """(Inference-Header-Content-Length, Content-Encoding, chunked) of a response head."""
    hl = head.get(b"inference-header-content-length")
    try:
        header_length = int(hl) if hl is not None else None
    except ValueError:
        header_length = -1  # unreadable: the comparison says so, off the loop
    enc = head.get(b"content-encoding")
    return header_length, enc.decode("latin-1") if enc else None, framing == "chunked"


def start_mirror(
    proxy: DriftProxy,
    line: RequestLine,
    head: RequestHead,
    body: bytes,
    stable: Answer,
    self_compare: bool = False,
) -> None:
    """Send a copy of a request the stable Triton answered with 200 to the candidate
    (``self_compare``: to the same Triton once more, for the noise floor)."""
    rollout = proxy.rollout
    pool = proxy._pool if self_compare else proxy.candidate_pool
    if pool is None or not rollout.acting:
        rollout.mirrors_ended += 1  # the rollout ended while this request was in flight
        return
    if len(body) > proxy.config.stats_max_bytes:
        # A chunked body is known whole only now: above the cap it is not mirrored.
        rollout.figures.mirror_dropped += 1
        rollout.mirrors_ended += 1
        return
    # Its slot was taken when the request was chosen (routed_request.route).
    request = upstream_request_head(line, head, len(body))[:-2] + MIRROR_FIELD
    if proxy.inplace is not None and not self_compare:
        assert proxy._pool is not None
        if not proxy.inplace.target.admits(proxy._pool.active):
            rollout.figures.mirror_dropped += 1  # shed first: live requests are queued
            rollout.mirrors_ended += 1
            return
        request, body = proxy.inplace.target.mirror_request(request, body)
    mirror = Mirror(proxy, pool, request, body, stable, self_compare)
    if not self_compare:
        rollout.figures.mirrored += 1
    proxy._mirrors.add(mirror)
    mirror.start()


class Mirror:
    """One copy of an infer request sent to the candidate; its answer is kept for comparison.

    It owns its candidate connection the way a client connection does (the
    same ``Upstream`` calls it back) but writes nowhere: the client got the
    stable answer already. Ends by queuing the comparison, or by counting a
    mirror error (non-200, failure, ``mirror_timeout``).
    """

    def __init__(
        self,
        proxy: DriftProxy,
        pool: Pool,
        request: bytes,
        body: bytes,
        stable: Answer,
        self_compare: bool = False,
    ) -> None:
        self.proxy = proxy
        self.pool = pool
        self.self_compare = self_compare  # to this pod's own Triton: the noise floor
        self.figures = proxy.rollout.figures  # this epoch's, even if it ends in the next
        self.request, self.body, self.stable = request, body, stable
        assert proxy._loop is not None
        self.clock = proxy._loop.time
        self.started = self.clock()
        self.up: Upstream | None = None
        self.capture = bytearray()
        self.too_large = False
        self.answer: tuple[int | None, str | None, bool] = (None, None, False)
        self.retried = False
        self.ended = False

    def start(self) -> None:
        conn = self.pool.try_acquire()
        if conn is not None:
            self._send(conn)
        elif self.pool.reserve():
            task = asyncio.get_running_loop().create_task(self._connect())
            self.proxy._tasks.add(task)
            task.add_done_callback(self.proxy._tasks.discard)
        else:
            self._end(0)

    async def _connect(self) -> None:
        try:
            conn = await self.pool.connect()
        except (OSError, TimeoutError):
            self._end(0)
            return
        if self.ended:  # timed out meanwhile
            self.proxy._pool_release(conn)
            return
        self._send(conn)

    def _send(self, conn: Upstream) -> None:
        assert conn.transport is not None
        self.up = conn
        conn.begin(self, "POST", self.clock())
        conn.transport.writelines([self.request, self.body])

    # -- what Upstream calls ----------------------------------------------------------

    def response_head(self, head: Head, framing: str) -> bytes:
        self.answer = answer_fields(head, framing)
        return b""

    def send(self, first: bytes, second: bytes) -> None:
        if self.too_large:
            return
        if len(self.capture) + len(first) + len(second) > self.proxy.config.stats_max_bytes:
            self.too_large = True
            self.capture = bytearray()
            return
        self.capture += first
        self.capture += second

    def exchange_done(self, conn: Upstream) -> None:
        self.up = None
        self.proxy._pool_release(conn)
        self._end(conn.status)

    def upstream_failed(self, conn: Upstream, kind: str, detail: str = "") -> None:
        self.up = None
        conn.owner = None
        retry = kind == "closed" and conn.reused and not conn.got_bytes and not self.retried
        conn.reusable = False
        self.proxy._pool_release(conn)
        if retry and not self.ended:
            self.retried = True  # a pooled connection the candidate had closed
            self.capture = bytearray()
            self.start()
            return
        self._end(0)

    def pause_client_reading(self) -> None:
        pass  # the body is in memory already: nothing to hold back

    def resume_client_reading(self) -> None:
        pass

    # -- the end -------------------------------------------------------------------------

    def check_timeout(self, now: float) -> None:
        if not self.ended and now - self.started > self.proxy.rollout.mirror_timeout:
            if not self.self_compare:
                self.figures.mirror_timeouts += 1
            up, self.up = self.up, None
            if up is not None:
                up.owner = None
                up.reusable = False
                up.close()
                self.proxy._pool_release(up)
            self._end(0)

    def _end(self, status: int) -> None:
        if self.ended:
            return
        self.ended = True
        proxy = self.proxy
        proxy._mirrors.discard(self)
        rollout = proxy.rollout
        if proxy.inplace is not None and not self.self_compare:
            proxy.inplace.observe(status, self.clock() - self.started)
        if status == 200:
            # Counted as ended by the worker, which may say "not compared".
            candidate = None if self.too_large else Answer(bytes(self.capture), *self.answer)
            rollout.compare(self.figures, self.stable, candidate, self.self_compare)
        else:
            if not self.self_compare:
                self.figures.mirror_errors += 1
            rollout.mirrors_ended += 1
        self.request = self.body = b""
        self.capture = bytearray()
