"""KServe v2 infer *responses* -> output tensors, and the agreement of two answers. Pure.

A response is plain JSON (``{"outputs": [{"name", "datatype", "shape",
"data"}]}``) or Triton's binary tensor extension: the
``Inference-Header-Content-Length: H`` response header says the first ``H``
bytes are the JSON header, and every output with
``parameters.binary_data_size`` has its raw little-endian bytes appended in
output order (what tritonclient asks for by default). ``Content-Encoding``
gzip/deflate (when the client accepted it) is undone with the statistics
cap. BYTES tensors compare as arrays of byte strings; BF16 as float32.

Runs in the comparison worker, never on the event loop.
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass
from typing import Any

import numpy as np

from modelops.drift.agreement import answers_agree
from modelops.drift.grpc_payload import parse_model_infer_response
from modelops.drift.http1 import ChunkedDecoder, ProtocolError
from modelops.drift.payload import _DTYPES, SkipSample, decode_body

_LENGTH = struct.Struct("<I")


class OutputError(Exception):
    """The answer's outputs cannot be read."""


@dataclass(frozen=True)
class Answer:
    """One answer as the proxy captured it: an HTTP body as received, or (``grpc``)
    a serialized ``ModelInferResponse``."""

    body: bytes
    header_length: int | None = None  # Inference-Header-Content-Length
    content_encoding: str | None = None
    chunked: bool = False  # body still carries its chunked framing
    grpc: bool = False


def _bytes_elements(raw: memoryview) -> list[bytes]:
    out, pos, n = [], 0, len(raw)
    while pos < n:
        if pos + 4 > n:
            raise OutputError("truncated BYTES element length")
        (size,) = _LENGTH.unpack_from(raw, pos)
        pos += 4
        if pos + size > n:
            raise OutputError("truncated BYTES element")
        out.append(bytes(raw[pos : pos + size]))
        pos += size
    return out


def _tensor(out: dict[str, Any], raw: memoryview | None) -> np.ndarray:
    name, dtype_name, shape = out.get("name"), out.get("datatype"), out.get("shape")
    if not isinstance(shape, list) or not all(isinstance(d, int) and d >= 0 for d in shape):
        raise OutputError(f"output {name!r}: bad shape")
    if dtype_name == "BYTES":
        if raw is not None:
            arr = np.array(_bytes_elements(raw), dtype=object)
        else:
            data = out.get("data")
            items = data if isinstance(data, list) else []
            arr = np.array(
                [x.encode() if isinstance(x, str) else bytes(x) for x in _flatten(items)],
                dtype=object,
            )
    elif dtype_name == "BF16":
        if raw is None:
            arr = np.asarray(out.get("data"), dtype=np.float32).reshape(-1)
        else:
            bits = np.frombuffer(raw, dtype="<u2").astype("<u4") << 16
            arr = bits.view("<f4")
    else:
        dtype = _DTYPES.get(dtype_name) if isinstance(dtype_name, str) else None
        if dtype is None:
            raise OutputError(f"output {name!r}: unknown datatype {dtype_name!r}")
        if raw is not None:
            arr = np.frombuffer(raw, dtype=dtype)
        else:
            arr = np.asarray(out.get("data"), dtype=dtype).reshape(-1)
    try:
        return arr.reshape(shape)
    except ValueError as exc:
        raise OutputError(f"output {name!r}: {exc}") from exc


def _flatten(items: list[Any]) -> list[Any]:
    flat: list[Any] = []
    stack = [iter(items)]
    while stack:
        for x in stack[-1]:
            if isinstance(x, list):
                stack.append(iter(x))
                break
            flat.append(x)
        else:
            stack.pop()
    return flat


def parse_infer_response(body: bytes, header_length: int | None = None) -> dict[str, np.ndarray]:
    """Output tensors of one (decoded, de-chunked) response body, by name."""
    if header_length is not None:
        if not 0 <= header_length <= len(body):
            raise OutputError("bad Inference-Header-Content-Length")
        head, binary = body[:header_length], memoryview(body)[header_length:]
    else:
        head, binary = body, memoryview(b"")
    try:
        doc = json.loads(head)
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise OutputError("response is not JSON") from exc
    outputs = doc.get("outputs") if isinstance(doc, dict) else None
    if not isinstance(outputs, list):
        raise OutputError("response has no outputs")
    tensors: dict[str, np.ndarray] = {}
    offset = 0
    for out in outputs:
        if not isinstance(out, dict) or not isinstance(out.get("name"), str):
            raise OutputError("output without a name")
        params = out.get("parameters")
        size = params.get("binary_data_size") if isinstance(params, dict) else None
        raw = None
        if size is not None:
            if not isinstance(size, int) or size < 0 or offset + size > len(binary):
                raise OutputError("binary_data_size beyond the body")
            raw = binary[offset : offset + size]
            offset += size
        try:
            tensors[out["name"]] = _tensor(out, raw)
        except (ValueError, TypeError, OverflowError) as exc:
            raise OutputError(f"output {out['name']!r}: {exc}") from exc
    return tensors


def read_answer(answer: Answer, max_bytes: int) -> dict[str, np.ndarray]:
    """Outputs of a captured answer: de-chunk, decompress (capped), parse."""
    body = answer.body
    if answer.grpc:
        if len(body) > max_bytes:
            raise OutputError("answer above the cap")
        try:
            return parse_model_infer_response(body)
        except SkipSample as exc:
            raise OutputError(str(exc)) from exc
    if answer.chunked:
        decoder = ChunkedDecoder(keep_body=True, max_body=max_bytes)
        try:
            decoder.feed(body)
        except ProtocolError as exc:
            raise OutputError(f"chunked body: {exc.message}") from exc
        if not decoder.done:
            raise OutputError("chunked body ended early")
        body = bytes(decoder.body)
    try:
        body = decode_body(body, answer.content_encoding, max_bytes)
    except SkipSample as exc:
        raise OutputError(str(exc)) from exc
    return parse_infer_response(body, answer.header_length)


def compare_answers(
    stable: Answer,
    candidate: Answer,
    *,
    mode: str,
    tolerance: float | None,
    max_bytes: int,
) -> bool | None:
    """True / False: the answers agree or not; None: the stable answer is unreadable.

    An unreadable candidate answer (a 200 that is not a KServe v2 response)
    is disagreement: a broken candidate must show in the figures.
    """
    try:
        s = read_answer(stable, max_bytes)
    except (OutputError, MemoryError, RecursionError):
        return None
    try:
        c = read_answer(candidate, max_bytes)
    except (OutputError, MemoryError, RecursionError):
        return False
    return answers_agree(s, c, mode=mode, tolerance=tolerance)
