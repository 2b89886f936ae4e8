"""In-place rollouts in the data plane: where a mirrored or split request goes. Pure.

With ``spec.rollout.placement: InPlace`` the candidate version runs inside the
serving pod's own Triton, loaded beside the stable model under a *sibling
model name*, ``<model>.candidate`` (:func:`candidate_model`), with the version
as its numbered subdirectory. The sidecar then mirrors (shadow) or splits
(canary) to its own Triton, rewriting the infer target of those requests only
to ``/v2/models/<model>.candidate/versions/<v>/infer``.

Why a sibling name and not a second version of the same model: Triton answers
an infer call that names no version with the highest loaded version, so a
candidate loaded as ``<model>/8`` beside ``<model>/7`` would take every
unversioned live call, over HTTP and over gRPC (where the relay copies bytes
and cannot re-target a message). Pinning every live call to the stable version
would put a rewrite on the hot path of every request; loading the candidate
under its own name leaves live calls untouched, and changing ``<model>``'s
version policy to add a version would also reload the stable version.

gRPC ModelInfer calls are re-targeted the same way, in the request message
(:mod:`modelops.drift.grpc_retarget`: ``model_name`` / ``model_version`` and
``parameters["priority"]``), with the same shedding decision (:meth:`InPlaceTarget.admits`)
and the same figures (:class:`InPlaceRoute`), by the gRPC relay.

Mirrored copies carry Triton's request ``priority`` (:data:`MIRROR_PRIORITY`,
the lowest of the candidate config's two levels, see
:func:`modelops.commands.inplace.candidate_config`), so in the candidate's queue
live split requests go first. Triton queues are per model version, so that
priority does not order the copies against the stable version's requests; what
protects those is the sidecar shedding copies first
(:class:`InPlaceTarget.admits`: none while the live requests in flight to
Triton reach ``live_limit``, then the usual in-flight cap).
"""

from __future__ import annotations

import contextlib
import json
import re
import urllib.parse
from dataclasses import dataclass
from typing import Any

from modelops.drift.figures import RolloutFigures
from modelops.drift.grpc_retarget import (
    MessageError,
    model_name,
    retarget_message,
    with_model_name,
)
from modelops.drift.traffic import TrafficSettings

CANDIDATE_SUFFIX = ".candidate"
# Triton priority levels of the candidate's config: 1 (highest) for live split
# requests (Triton's default level is set to it), 2 for mirrored copies.
LIVE_PRIORITY = 1
MIRROR_PRIORITY = 2
PRIORITY_LEVELS = 2

_INFER_TARGET = re.compile(r"^/v2/models/([^/?]+)(?:/versions/[^/?]+)?/infer(\?.*)?$")
_IHCL = b"inference-header-content-length"


class InPlaceError(ValueError):
    """A request that cannot be re-targeted (the caller sends it unchanged or not at all)."""


def candidate_model(model: str) -> str:
    """The name the candidate version of ``model`` is loaded under in the same Triton."""
    return model + CANDIDATE_SUFFIX


def is_candidate_model(name: str) -> bool:
    return name.endswith(CANDIDATE_SUFFIX)


def candidate_target(target: str, version: str) -> str:
    """``/v2/models/<m>[/versions/<x>]/infer[?q]`` -> the candidate's versioned target.

    Raises :class:`InPlaceError` for anything that is not an infer target."""
    m = _INFER_TARGET.match(target)
    if m is None:
        raise InPlaceError(f"not an infer target: {target[:200]!r}")
    model = urllib.parse.unquote(m.group(1))
    name = urllib.parse.quote(candidate_model(model), safe="")
    return f"/v2/models/{name}/versions/{urllib.parse.quote(version, safe='')}/infer" + (
        m.group(2) or ""
    )


def retarget_head(head: bytes, version: str) -> bytes:
    """An upstream request head (start line first) re-targeted at the candidate."""
    start, sep, rest = head.partition(b"\r\n")
    parts = start.split(b" ")
    if len(parts) != 3:
        raise InPlaceError("malformed request line")
    target = candidate_target(parts[1].decode("latin-1"), version)
    return b" ".join((parts[0], target.encode("latin-1"), parts[2])) + sep + rest


def with_priority(head: bytes, body: bytes, priority: int) -> tuple[bytes, bytes]:
    """``head`` and ``body`` of a KServe v2 HTTP infer request with Triton's request
    ``parameters.priority`` set, lengths fixed (Content-Length, and
    Inference-Header-Content-Length when the binary tensor extension is used).

    Raises :class:`InPlaceError` when the JSON part cannot be read (the copy is then
    sent as it was)."""
    lines = head.split(b"\r\n")
    ihcl_at = -1
    json_len = len(body)
    for i, line in enumerate(lines[1:], 1):
        name, _, value = line.partition(b":")
        if name.strip().lower() == _IHCL:
            try:
                json_len = int(value.strip())
            except ValueError as exc:
                raise InPlaceError("bad Inference-Header-Content-Length") from exc
            ihcl_at = i
    if not 0 <= json_len <= len(body):
        raise InPlaceError("Inference-Header-Content-Length beyond the body")
    try:
        doc = json.loads(body[:json_len])
    except ValueError as exc:
        raise InPlaceError(f"infer request JSON unreadable: {exc}") from exc
    if not isinstance(doc, dict):
        raise InPlaceError("infer request JSON is not an object")
    params = doc.get("parameters")
    if params is None:
        params = doc["parameters"] = {}
    if not isinstance(params, dict):
        raise InPlaceError("infer request parameters is not an object")
    params["priority"] = priority
    header = json.dumps(doc, separators=(",", ":")).encode()
    new_body = header + body[json_len:]
    out = []
    for i, line in enumerate(lines):
        name = line.partition(b":")[0].strip().lower()
        if i == ihcl_at:
            line = b"Inference-Header-Content-Length: %d" % len(header)
        elif i and name == b"content-length":
            line = b"Content-Length: %d" % len(new_body)
        out.append(line)
    return b"\r\n".join(out), new_body


@dataclass(frozen=True)
class InPlaceTarget:
    """Where this sidecar sends the candidate's share when the candidate is in place.

    version: the candidate version; live_limit: live requests in flight to Triton
    at or above which no copy is started (0: no such limit); priority: whether
    copies carry Triton's lower request priority."""

    version: str
    live_limit: int = 0
    priority: bool = True

    def admits(self, live_in_flight: int) -> bool:
        """Whether a mirrored copy may start now: copies are shed first under load."""
        return self.live_limit <= 0 or live_in_flight < self.live_limit

    def mirror_request(self, head: bytes, body: bytes) -> tuple[bytes, bytes]:
        """A mirrored copy's head (without its final blank line's CRLF handling: as
        :func:`modelops.drift.http1.upstream_request_head` builds it) and body."""
        head = retarget_head(head, self.version)
        if self.priority:
            # A copy whose JSON cannot be read goes at the default priority rather
            # than not at all (Triton judges the request itself).
            with contextlib.suppress(InPlaceError):
                head, body = _with_priority_framed(head, body, MIRROR_PRIORITY)
        return head, body

    def split_head(self, head: bytes) -> bytes:
        """A split (live) request's upstream head re-targeted at the candidate."""
        return retarget_head(head, self.version)

    # gRPC ModelInfer: the same targets and priorities, on the request message.

    def grpc_mirror_message(self, message: bytes) -> bytes:
        """A mirrored copy's ModelInferRequest, for the candidate at the copies' priority."""
        return self._grpc(message, MIRROR_PRIORITY if self.priority else None)

    def grpc_split_message(self, message: bytes) -> bytes:
        """A split (live) call's ModelInferRequest, for the candidate (default priority:
        the candidate config's default level is the live one)."""
        return self._grpc(message, None)

    def grpc_split_answer(self, answer: bytes) -> bytes:
        """The candidate's ModelInferResponse to a split call, naming the model the
        client called (``<model>``, not ``<model>.candidate``): what the client asked
        for, and the answer no longer than Triton's for the same call, which the gRPC
        relay needs (the version field and the answer's metadata name the candidate)."""
        try:
            name = model_name(answer)
            if name is None or not is_candidate_model(name):
                return answer
            return with_model_name(answer, name.removesuffix(CANDIDATE_SUFFIX))
        except MessageError:
            return answer  # not ours to mend: the relay judges its length

    def _grpc(self, message: bytes, priority: int | None) -> bytes:
        try:
            name = model_name(message)
            if not name:
                raise InPlaceError("infer request without a model name")
            return retarget_message(message, candidate_model(name), self.version, priority)
        except MessageError as exc:
            raise InPlaceError(str(exc)) from exc


class InPlaceRoute:
    """The in-place candidate of the current epoch and its own figures.

    With a separate candidate its sidecar counts what the candidate answered; in
    place there is no such sidecar, so this one counts the candidate's answers
    (mirrored copies and split requests) apart from the stable ones: ``GET
    /rollout`` reports them under ``inPlace`` in the shape of a candidate
    sidecar's document, which the operator reads as the candidate's figures."""

    __slots__ = ("figures", "target")

    def __init__(self, target: InPlaceTarget, epoch: str) -> None:
        self.target = target
        self.figures = RolloutFigures(epoch)

    def observe(self, status: int, seconds: float) -> None:
        self.figures.observe(status, seconds)

    def document(self, loaded: dict[str, list[str]]) -> dict[str, Any]:
        return self.figures.document(version=self.target.version, role="candidate", loaded=loaded)


def in_place_route(
    settings: TrafficSettings, own_version: str, previous: InPlaceRoute | None
) -> InPlaceRoute | None:
    """The route for ``settings`` on a sidecar of ``own_version``: None unless the
    candidate runs in place and this sidecar acts for it. The previous route is kept
    (with its figures) while the candidate, its settings and the epoch are the same."""
    c = settings.candidate
    if c is None or c.in_place is None or not settings.acts(own_version):
        return None
    target = InPlaceTarget(c.version, c.in_place.live_limit, c.in_place.priority)
    if (
        previous is not None
        and previous.target == target
        and previous.figures.epoch == settings.epoch
    ):
        return previous
    return InPlaceRoute(target, settings.epoch)


def _with_priority_framed(head: bytes, body: bytes, priority: int) -> tuple[bytes, bytes]:
    """:func:`with_priority` for a head that ends with its blank line (CRLF CRLF)."""
    core = head.removesuffix(b"\r\n\r\n")
    if core is head:
        raise InPlaceError("head without its blank line")
    new_head, new_body = with_priority(core, body, priority)
    return new_head + b"\r\n\r\n", new_body


__all__ = [
    "CANDIDATE_SUFFIX",
    "LIVE_PRIORITY",
    "MIRROR_PRIORITY",
    "PRIORITY_LEVELS",
    "InPlaceError",
    "InPlaceRoute",
    "InPlaceTarget",
    "candidate_model",
    "candidate_target",
    "in_place_route",
    "is_candidate_model",
    "retarget_head",
    "with_priority",
]
