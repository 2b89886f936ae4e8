"""KServe v2 gRPC ``ModelInferRequest`` messages -> input tensors. Pure, no I/O.

The gRPC twin of :func:`modelops.drift.payload.parse_infer_request`: it
returns the numeric inputs of one request by name, shaped as declared, and
raises :class:`~modelops.drift.payload.SkipSample` with the same fixed
reasons for anything it cannot use, so the rows reach the same
:class:`~modelops.drift.payload.FeatureMapper` whatever the protocol.

Tensor data comes in one of two ways (KServe v2 gRPC protocol):

- typed ``contents`` on each input (``fp32_contents``, ``int_contents``...,
  one repeated field per type family, flattened row-major);
- ``raw_input_contents``: one little-endian byte string per input, in input
  order, skipping inputs that live in shared memory. This is what
  ``tritonclient.grpc`` sends (``InferInput.set_data_from_numpy``), and numpy
  reads it without copying.

The message classes are the ones ``tritonclient.grpc`` ships, so the field
numbers are Triton's own. Parsing is the expensive part of observing a gRPC
request; it runs in the statistics worker, never on the proxy's event loop.
The proxy only looks at the first field of the message on the hot path
(:func:`leading_model_name`) to decide whether the request is for the
watched model.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from google.protobuf.message import DecodeError
from tritonclient.grpc import service_pb2

from modelops.drift.payload import (
    PLAN_KEY_BYTES,
    BinaryPlan,
    PlannedParser,
    SkipSample,
    choose_plan,
)

# Triton datatype -> (numpy dtype of its raw bytes, typed-contents field).
# FP16 has no typed field (raw only); BF16 and BYTES are not features.
_TYPES: dict[str, tuple[np.dtype[Any], str | None]] = {
    "BOOL": (np.dtype("?"), "bool_contents"),
    "UINT8": (np.dtype("<u1"), "uint_contents"),
    "UINT16": (np.dtype("<u2"), "uint_contents"),
    "UINT32": (np.dtype("<u4"), "uint_contents"),
    "UINT64": (np.dtype("<u8"), "uint64_contents"),
    "INT8": (np.dtype("<i1"), "int_contents"),
    "INT16": (np.dtype("<i2"), "int_contents"),
    "INT32": (np.dtype("<i4"), "int_contents"),
    "INT64": (np.dtype("<i8"), "int64_contents"),
    "FP16": (np.dtype("<f2"), None),
    "FP32": (np.dtype("<f4"), "fp32_contents"),
    "FP64": (np.dtype("<f8"), "fp64_contents"),
}

# The element type of each typed-contents field: narrower types (INT8 in
# int_contents) are range-checked after reading.
_FIELD_DTYPES: dict[str, np.dtype[Any]] = {
    "bool_contents": np.dtype("?"),
    "int_contents": np.dtype("<i4"),
    "int64_contents": np.dtype("<i8"),
    "uint_contents": np.dtype("<u4"),
    "uint64_contents": np.dtype("<u8"),
    "fp32_contents": np.dtype("<f4"),
    "fp64_contents": np.dtype("<f8"),
}

_SHM_PARAM = "shared_memory_region"

# Wire tag of ModelInferRequest.model_name: field 1, length-delimited.
_MODEL_NAME_TAG = 0x0A


def leading_model_name(message: bytes) -> bytes | None:
    """``model_name`` when it is the first field of the serialized request, else None.

    Every protobuf library writes fields in field-number order, and
    ``model_name`` is field 1, so this reads the name of practically every
    real request from its first bytes without parsing the message. None means
    "unknown" (an empty name, or an unusual encoder), not "no model".
    """
    if len(message) < 2 or message[0] != _MODEL_NAME_TAG:
        return None
    length, shift, i = 0, 0, 1
    while i < len(message) and i <= 5:  # a length varint is at most 5 bytes here
        byte = message[i]
        i += 1
        length |= (byte & 0x7F) << shift
        if byte < 0x80:
            return message[i : i + length] if i + length <= len(message) else None
        shift += 7
    return None


def parse_model_infer(message: bytes) -> dict[str, np.ndarray]:
    """Numeric input tensors of one serialized ``ModelInferRequest``, by name."""
    request = service_pb2.ModelInferRequest()
    try:
        request.ParseFromString(message)
    except (DecodeError, RuntimeError, ValueError) as exc:
        raise SkipSample("decode", "invalid ModelInferRequest") from exc
    raw = request.raw_input_contents
    out: dict[str, np.ndarray] = {}
    raw_index = 0
    for inp in request.inputs:
        in_shm = _SHM_PARAM in inp.parameters
        data: bytes | None = None
        if raw and not in_shm:
            # One raw entry per input not in shared memory, in order; consumed
            # even for a type we skip, since later inputs follow it.
            if raw_index >= len(raw):
                raise SkipSample("decode", "fewer raw_input_contents than inputs")
            if inp.HasField("contents"):
                raise SkipSample("decode", f"{inp.name}: both contents and raw_input_contents")
            data = raw[raw_index]
            raw_index += 1
        kind = _TYPES.get(inp.datatype)
        if kind is None or in_shm:
            continue  # BYTES/BF16 are not features; shared memory has no bytes here
        dtype, field = kind
        shape = list(inp.shape)
        if any(d < 0 for d in shape):
            raise SkipSample("shape", f"{inp.name}: bad shape")
        try:
            if data is not None:
                arr = np.frombuffer(data, dtype=dtype)
            elif field is not None and inp.HasField("contents"):
                arr = np.asarray(getattr(inp.contents, field), dtype=_FIELD_DTYPES[field])
                if arr.dtype != dtype:
                    narrow = arr.astype(dtype)
                    if not np.array_equal(narrow, arr):
                        raise SkipSample("overflow", f"{inp.name}: values outside {inp.datatype}")
                    arr = narrow
            else:
                continue  # no data to look at
            arr = arr.reshape(shape)
        except (ValueError, TypeError, OverflowError) as exc:
            raise SkipSample("shape", f"{inp.name}: {exc}") from exc
        out[inp.name] = arr
    return out


# ModelInferRequest.raw_input_contents: field 7, length-delimited.
_RAW_FIELD = 7


def raw_layout(message: bytes) -> tuple[int, tuple[tuple[int, int], ...]] | None:
    """(where ``raw_input_contents`` begin, (start, end) of each entry) when they are
    the message's last fields, as every protobuf encoder writes them (field-number
    order, and 7 is the last field of ModelInferRequest); None otherwise. Walks the
    top-level field headers only: a few dozen bytecodes per field."""
    n = len(message)
    i = 0
    first = -1
    raws: list[tuple[int, int]] = []
    while i < n:
        tag_at = i
        tag = shift = 0
        while True:  # the tag varint
            if i >= n or shift > 28:
                return None
            byte = message[i]
            i += 1
            tag |= (byte & 0x7F) << shift
            if byte < 0x80:
                break
            shift += 7
        if tag & 7 != 2:  # every ModelInferRequest field is length-delimited
            return None
        length = shift = 0
        while True:
            if i >= n or shift > 35:
                return None
            byte = message[i]
            i += 1
            length |= (byte & 0x7F) << shift
            if byte < 0x80:
                break
            shift += 7
        end = i + length
        if end > n:
            return None
        if tag >> 3 == _RAW_FIELD:
            if first < 0:
                first = tag_at
            raws.append((i, end))
        elif first >= 0:
            return None  # another field after the raw contents: parse it whole
        i = end
    if first < 0:
        return None
    return first, tuple(raws)


class GrpcParser(PlannedParser):
    """:func:`parse_model_infer`, also refusing requests for another model (when
    ``model`` is set). The proxy already filters on :func:`leading_model_name`;
    this catches the rare request whose name it could not read that way.

    Plans (see :class:`~modelops.drift.payload.PlannedParser`): requests whose
    bytes before ``raw_input_contents`` are identical, with raw entries of the
    same lengths, have the same layout; the first is parsed whole.
    """

    __slots__ = ("model",)

    def __init__(self, model: str | None) -> None:
        self.model = model

    def __call__(self, message: bytes) -> dict[str, np.ndarray]:
        model = self.model
        if model is not None and leading_model_name(message) is None:
            request = service_pb2.ModelInferRequest()
            try:
                request.ParseFromString(message)
            except (DecodeError, RuntimeError, ValueError) as exc:
                raise SkipSample("decode", "invalid ModelInferRequest") from exc
            if request.model_name != model:
                raise SkipSample("unmapped", "request for another model")
        return parse_model_infer(message)

    def plan_key(self, message: bytes) -> tuple[object, ...] | None:
        layout = raw_layout(message)
        if layout is None or layout[0] > PLAN_KEY_BYTES:
            return None
        first, raws = layout
        return ("grpc", message[:first], tuple(b - a for a, b in raws))

    def make_plan(
        self, message: bytes, feature_names: Sequence[str], input_name: str | None
    ) -> BinaryPlan | None:
        """The plan of requests laid out like ``message``: only when each input has
        its raw entry (no typed contents, no shared memory) and the full parse
        of ``message`` succeeds, so a sliced request reads exactly like a parsed one."""
        layout = raw_layout(message)
        if layout is None:
            return None
        try:
            self(message)  # any skip (model, shape, decode): no plan, parse each whole
        except Exception:
            return None
        request = service_pb2.ModelInferRequest()
        request.ParseFromString(message)
        raws = layout[1]
        if len(request.inputs) != len(raws) or len(request.raw_input_contents) != len(raws):
            return None
        found: list[tuple[str, BinaryPlan | None, list[int]]] = []
        for inp, (start, end) in zip(request.inputs, raws, strict=True):
            if _SHM_PARAM in inp.parameters or inp.HasField("contents"):
                return None
            kind = _TYPES.get(inp.datatype)
            if kind is None:
                continue
            dtype = kind[0]
            shape = list(inp.shape)
            if math.prod(shape) * dtype.itemsize != end - start:
                return None
            found.append((inp.name, BinaryPlan(start, end, dtype), shape))
        return choose_plan(found, feature_names, input_name)


def model_infer_parser(model: str | None) -> GrpcParser:
    """The :data:`~modelops.drift.payload.Parser` of ModelInfer request messages."""
    return GrpcParser(model)


def parse_model_infer_response(message: bytes) -> dict[str, np.ndarray]:
    """Output tensors of one serialized ``ModelInferResponse``, by name (mirror
    comparisons; the comparison worker runs it). BYTES outputs come back as
    arrays of byte strings, as the HTTP answers' do."""
    response = service_pb2.ModelInferResponse()
    try:
        response.ParseFromString(message)
    except (DecodeError, RuntimeError, ValueError) as exc:
        raise SkipSample("decode", "invalid ModelInferResponse") from exc
    raw = response.raw_output_contents
    if raw and len(raw) != len(response.outputs):
        raise SkipSample("decode", "raw_output_contents do not match the outputs")
    out: dict[str, np.ndarray] = {}
    for i, tensor in enumerate(response.outputs):
        shape = list(tensor.shape)
        try:
            if tensor.datatype == "BYTES":
                if raw:
                    arr = np.array(_bytes_elements(raw[i]), dtype=object)
                else:
                    arr = np.array(list(tensor.contents.bytes_contents), dtype=object)
            else:
                kind = _TYPES.get(tensor.datatype)
                if kind is None:
                    raise SkipSample("decode", f"{tensor.name}: {tensor.datatype}")
                dtype, field = kind
                if raw:
                    arr = np.frombuffer(raw[i], dtype=dtype)
                elif field is not None:
                    arr = np.asarray(getattr(tensor.contents, field), dtype=_FIELD_DTYPES[field])
                else:
                    raise SkipSample("decode", f"{tensor.name}: no data")
            out[tensor.name] = arr.reshape(shape)
        except (ValueError, TypeError) as exc:
            raise SkipSample("shape", f"{tensor.name}: {exc}") from exc
    return out


def _bytes_elements(raw: bytes) -> list[bytes]:
    """A BYTES tensor's raw form: each element as a 4-byte little-endian length, then it."""
    out, pos = [], 0
    while pos < len(raw):
        if pos + 4 > len(raw):
            raise ValueError("truncated BYTES element length")
        size = int.from_bytes(raw[pos : pos + 4], "little")
        pos += 4
        if pos + size > len(raw):
            raise ValueError("truncated BYTES element")
        out.append(raw[pos : pos + size])
        pos += size
    return out
