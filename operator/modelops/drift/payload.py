"""KServe v2 / Triton inference request bodies -> feature rows. Pure, no I/O.

Bodies come in two shapes:

- plain JSON: ``{"inputs": [{"name", "shape", "datatype", "data"}, ...]}``
  with ``data`` flat or nested in row-major order;
- Triton's binary tensor extension: the request carries an
  ``Inference-Header-Content-Length: H`` header, the first ``H`` bytes are
  the JSON header, and every input whose ``parameters.binary_data_size`` is
  set has its raw little-endian bytes appended in input order. This is what
  ``tritonclient.http`` sends by default, so it is read here too (for numeric
  types numpy can view without copying).

Anything unreadable raises :class:`SkipSample` with a short, fixed reason
(it becomes a metric label, so the set must stay small); the proxy has
already answered the client by then, so a skip only costs statistics.
Failures Python itself raises on hostile input (an integer too large for its
dtype, JSON nested deeper than the recursion limit, an allocation that does
not fit) become skips too, so that no request can reach the error log.

Parsing runs in the statistics worker thread (see
:mod:`~modelops.drift.feeder`), never on the proxy's event loop; a
:data:`Parser` is what the proxy hands over with each payload.

Rows are mapped onto the reference's features in one of two ways:

- one tensor holds all features along its last axis (``[batch, F]`` or
  ``[F]``): chosen with ``input_name``, or the first numeric input whose last
  dimension equals the number of features;
- one input per feature, named like the features (``[batch]`` or
  ``[batch, 1]`` each), used when every feature name is an input name.
"""

from __future__ import annotations

import json
import math
import zlib
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

# Triton datatypes numpy reads directly. BF16 and BYTES are not features.
_DTYPES: dict[str, np.dtype[Any]] = {
    "BOOL": np.dtype("?"),
    "UINT8": np.dtype("<u1"),
    "UINT16": np.dtype("<u2"),
    "UINT32": np.dtype("<u4"),
    "UINT64": np.dtype("<u8"),
    "INT8": np.dtype("<i1"),
    "INT16": np.dtype("<i2"),
    "INT32": np.dtype("<i4"),
    "INT64": np.dtype("<i8"),
    "FP16": np.dtype("<f2"),
    "FP32": np.dtype("<f4"),
    "FP64": np.dtype("<f8"),
}

SKIP_REASONS = (
    "decode",  # not a KServe v2 request body
    "encoding",  # unknown or corrupt Content-Encoding
    "unmapped",  # no input matches the reference features
    "shape",  # shapes that do not fit the data or the features
    "too_large",  # body (or its decompressed form) above the statistics cap
    "overflow",  # a number too large for its declared datatype
    "recursion",  # JSON nested deeper than Python's recursion limit
    "memory",  # an allocation that did not fit
    "error",  # anything else a parser raised (a bug, counted not logged)
)

# A payload in, tensors by input name out; runs in the statistics worker.
Parser = Callable[[bytes], "dict[str, np.ndarray]"]


class SkipSample(Exception):
    """Not an error: this request's inputs are not usable as features."""

    def __init__(self, reason: str, detail: str = "") -> None:
        assert reason in SKIP_REASONS, reason
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason


def decode_body(body: bytes, content_encoding: str | None, max_bytes: int | None = None) -> bytes:
    """Undo the request compression tritonclient can apply (gzip / deflate).

    The output is capped at ``max_bytes``: a small gzip body can expand a
    thousandfold, so decompression stops one byte past the cap and the
    request is skipped as ``too_large`` instead of filling memory.
    """
    enc = (content_encoding or "").strip().lower()
    if enc in ("", "identity"):
        return body
    if enc == "gzip":
        wbits = 16 + zlib.MAX_WBITS
    elif enc == "deflate":
        wbits = zlib.MAX_WBITS
    else:
        raise SkipSample("encoding", enc)
    d = zlib.decompressobj(wbits=wbits)
    limit = max_bytes + 1 if max_bytes is not None else 0
    try:
        out = d.decompress(body, limit)
    except zlib.error as exc:
        raise SkipSample("encoding", str(exc)) from exc
    if max_bytes is not None and (len(out) > max_bytes or d.unconsumed_tail):
        raise SkipSample("too_large", f"decompressed body above {max_bytes} bytes")
    if not d.eof:
        raise SkipSample("encoding", "truncated compressed body")
    return out


# Longest layout key (a binary request's JSON header, a gRPC request without its
# tensors) the statistics worker remembers a plan for.
PLAN_KEY_BYTES = 4096


class PlannedParser:
    """A :data:`Parser` whose payloads often share one layout (see :class:`BinaryPlan`).

    ``plan_key`` names a payload's layout cheaply (None: no plan, parse it
    whole); ``make_plan`` reads where the features lie in a payload of that
    layout, once. Payloads with equal keys have their features at the same
    offsets, so the worker slices the others instead of parsing them.
    """

    __slots__ = ()

    def __call__(self, payload: bytes) -> dict[str, np.ndarray]:
        raise NotImplementedError

    def plan_key(self, payload: bytes) -> tuple[object, ...] | None:
        return None

    def make_plan(
        self, payload: bytes, feature_names: Sequence[str], input_name: str | None
    ) -> BinaryPlan | None:
        return None


class HttpParser(PlannedParser):
    """The :data:`Parser` of one HTTP infer request body (called later, in the worker).

    A class rather than a closure so that the proxy can build it once per
    distinct request head and the worker can recognise bodies it may read
    by :func:`binary_plan` (identity-encoded binary tensors) without parsing
    their JSON header again.
    """

    __slots__ = ("content_encoding", "header_length", "max_bytes")

    def __init__(
        self, header_length: int | None, content_encoding: str | None, max_bytes: int | None
    ) -> None:
        self.header_length = header_length
        self.content_encoding = content_encoding
        self.max_bytes = max_bytes

    def __call__(self, body: bytes) -> dict[str, np.ndarray]:
        body = decode_body(body, self.content_encoding, self.max_bytes)
        return parse_infer_request(body, self.header_length)

    def plan_key(self, payload: bytes) -> tuple[object, ...] | None:
        hl = self.header_length
        if not self.plain_binary or hl is None or not 0 < hl <= min(len(payload), PLAN_KEY_BYTES):
            return None
        return ("http", payload[:hl], len(payload))

    def make_plan(
        self, payload: bytes, feature_names: Sequence[str], input_name: str | None
    ) -> BinaryPlan | None:
        hl = self.header_length
        assert hl is not None
        try:
            self(payload)  # a body that would be skipped gets no plan: each is parsed whole
        except Exception:
            return None
        return binary_plan(payload[:hl], len(payload), feature_names, input_name)

    @property
    def plain_binary(self) -> bool:
        """Binary tensors, not compressed: a body :func:`binary_plan` may describe."""
        enc = self.content_encoding
        return self.header_length is not None and (
            enc is None or enc.strip().lower() in ("", "identity")
        )


def http_parser(
    header_length: int | None, content_encoding: str | None, max_bytes: int | None = None
) -> HttpParser:
    """The :data:`Parser` of one HTTP infer request body (run later, in the worker)."""
    return HttpParser(header_length, content_encoding, max_bytes)


class BinaryPlan:
    """Where the feature tensor lies in every body with one binary request header.

    Bodies with byte-identical JSON headers and the same length have their
    tensors at the same offsets, so the statistics worker reads the header of
    the first one and then only slices the bytes of the others (tritonclient
    sends the same header for every request of one shape).
    """

    __slots__ = ("dtype", "end", "start")

    def __init__(self, start: int, end: int, dtype: np.dtype[Any]) -> None:
        self.start, self.end, self.dtype = start, end, dtype


def binary_plan(
    header: bytes, body_length: int, feature_names: Sequence[str], input_name: str | None
) -> BinaryPlan | None:
    """The plan of bodies with this binary ``header``, or None when a body of this
    kind is not one plain binary tensor holding every feature (then each body is
    parsed whole, which also gives the skip reason). Equivalent, by construction,
    to :func:`parse_infer_request` followed by :class:`FeatureMapper` on such bodies.
    """
    try:
        doc = json.loads(header)
    except (ValueError, UnicodeDecodeError, RecursionError):
        return None
    inputs = doc.get("inputs") if isinstance(doc, dict) else None
    if not isinstance(inputs, list):
        return None
    base = len(header)
    offset = 0
    found: list[tuple[str, BinaryPlan | None, list[int]]] = []
    for inp in inputs:
        if not isinstance(inp, dict):
            return None
        name, dtype_name, shape = inp.get("name"), inp.get("datatype"), inp.get("shape")
        params = inp.get("parameters") or {}
        size = params.get("binary_data_size") if isinstance(params, dict) else None
        start = offset
        if size is not None:
            if not isinstance(size, int) or size < 0 or base + offset + size > body_length:
                return None
            offset += size
        dtype = _DTYPES.get(dtype_name) if isinstance(dtype_name, str) else None
        if dtype is None or not isinstance(name, str):
            continue
        if not isinstance(shape, list) or not all(isinstance(d, int) and d >= 0 for d in shape):
            return None
        if size is None:
            if "data" in inp:
                return None  # a JSON tensor: the whole parse decides
            continue
        if math.prod(shape) * dtype.itemsize != size:
            return None
        found.append((name, BinaryPlan(base + start, base + start + size, dtype), shape))
    return choose_plan(found, feature_names, input_name)


def choose_plan(
    found: list[tuple[str, BinaryPlan | None, list[int]]],
    feature_names: Sequence[str],
    input_name: str | None,
) -> BinaryPlan | None:
    """The one tensor :class:`FeatureMapper` would take, from (name, plan, shape) of
    every numeric input in order; None when it would take several (one input per
    feature), none, or when names repeat."""
    nf = len(feature_names)
    names = [n for n, _, _ in found]
    if input_name is not None:
        chosen = [f for f in found if f[0] == input_name]
    elif all(n in names for n in feature_names):
        return None  # one input per feature: the whole parse
    else:
        chosen = [f for f in found if len(f[2]) >= 1 and f[2][-1] == nf][:1]
    if len(chosen) != 1 or len(set(names)) != len(names):
        return None
    _, plan, shape = chosen[0]
    if not shape or shape[-1] != nf:
        return None
    return plan


def guarded(parse: Parser, payload: bytes) -> dict[str, np.ndarray]:
    """``parse(payload)`` with every failure turned into a :class:`SkipSample`."""
    try:
        return parse(payload)
    except SkipSample:
        raise
    except OverflowError as exc:
        raise SkipSample("overflow", str(exc)) from exc
    except RecursionError as exc:
        raise SkipSample("recursion") from exc
    except MemoryError as exc:
        raise SkipSample("memory") from exc
    except Exception as exc:
        raise SkipSample("error", f"{type(exc).__name__}: {exc}") from exc


def parse_infer_request(body: bytes, header_length: int | None) -> dict[str, np.ndarray]:
    """Numeric input tensors of one request, by name, shaped as declared."""
    if header_length is not None:
        if not 0 <= header_length <= len(body):
            raise SkipSample("decode", "bad Inference-Header-Content-Length")
        header_bytes, binary = body[:header_length], memoryview(body)[header_length:]
    else:
        header_bytes, binary = body, memoryview(b"")
    try:
        doc = json.loads(header_bytes)
    except (ValueError, UnicodeDecodeError) as exc:
        raise SkipSample("decode", "invalid JSON") from exc
    if not isinstance(doc, dict) or not isinstance(doc.get("inputs"), list):
        raise SkipSample("decode", "no inputs")

    out: dict[str, np.ndarray] = {}
    offset = 0
    for inp in doc["inputs"]:
        if not isinstance(inp, dict):
            raise SkipSample("decode", "input is not an object")
        name, dtype_name, shape = inp.get("name"), inp.get("datatype"), inp.get("shape")
        params = inp.get("parameters") or {}
        if not isinstance(params, dict):
            params = {}
        size = params.get("binary_data_size")
        raw: memoryview | None = None
        if size is not None:
            # Consume the bytes even for a type we skip: later inputs follow it.
            if not isinstance(size, int) or size < 0 or offset + size > len(binary):
                raise SkipSample("decode", "binary_data_size beyond body")
            raw = binary[offset : offset + size]
            offset += size
        dtype = _DTYPES.get(dtype_name) if isinstance(dtype_name, str) else None
        if dtype is None or not isinstance(name, str):
            continue
        if not isinstance(shape, list) or not all(isinstance(d, int) and d >= 0 for d in shape):
            raise SkipSample("shape", f"{name}: bad shape")
        try:
            if raw is not None:
                arr = np.frombuffer(raw, dtype=dtype)
            elif "data" in inp:
                arr = np.asarray(inp["data"], dtype=dtype).reshape(-1)
            else:
                continue  # shared-memory input: no bytes to look at
            arr = arr.reshape(shape)
        except (ValueError, TypeError) as exc:
            raise SkipSample("shape", f"{name}: {exc}") from exc
        out[name] = arr
    return out


class FeatureMapper:
    """Turns the tensors of one request into a [rows, features] float64 array."""

    def __init__(self, feature_names: Sequence[str], input_name: str | None = None) -> None:
        self.names = list(feature_names)
        self.input_name = input_name

    def rows(self, tensors: dict[str, np.ndarray]) -> np.ndarray:
        nf = len(self.names)
        if self.input_name is not None:
            arr = tensors.get(self.input_name)
            if arr is None:
                raise SkipSample("unmapped", f"no numeric input {self.input_name!r}")
            return self._from_tensor(arr)
        if all(n in tensors for n in self.names):
            return self._from_inputs(tensors)
        for arr in tensors.values():
            if arr.ndim >= 1 and arr.shape[-1] == nf:
                return self._from_tensor(arr)
        raise SkipSample("unmapped", "no input matches the reference features")

    def _from_tensor(self, arr: np.ndarray) -> np.ndarray:
        nf = len(self.names)
        if arr.ndim == 0 or arr.shape[-1] != nf:
            raise SkipSample("shape", f"last dimension {arr.shape} != {nf} features")
        return arr.reshape(-1, nf).astype(np.float64, copy=False)

    def _from_inputs(self, tensors: dict[str, np.ndarray]) -> np.ndarray:
        cols = []
        for n in self.names:
            a = tensors[n]
            if a.ndim == 2 and a.shape[1] == 1:
                a = a[:, 0]
            elif a.ndim == 0:
                a = a.reshape(1)
            if a.ndim != 1:
                raise SkipSample("shape", f"{n}: per-feature input must be [batch] or [batch, 1]")
            cols.append(a)
        if len({c.shape[0] for c in cols}) != 1:
            raise SkipSample("shape", "per-feature inputs differ in batch size")
        return np.stack(cols, axis=1).astype(np.float64, copy=False)
